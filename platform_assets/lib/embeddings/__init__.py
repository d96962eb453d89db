"""Photo and title embeddings with torch: on CUDA with bf16 when present, on CPU threads otherwise."""
