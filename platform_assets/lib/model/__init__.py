"""The nightly photo-popularity model: training from shards, and the manifest that pins it."""
