"""Raw lake data to typed, deduplicated staging tables."""
