"""The hash a photo's content (its image bytes, its title) is known by: the embeddings key their
rows on it, and the image readers compute it as they read (`images.batches`)."""

from __future__ import annotations

import hashlib


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]
