"""The CPU steps whose outputs are hashed or pinned give the same bits on any core count.

Each step runs in two processes standing for two machines: one pinned to a single core with
1 OpenMP/MKL/torch thread, one with 8 threads (MKL not allowed to use fewer), as a 16-core
machine would run by default. Their outputs — encoder weights, image embeddings of small
batches, title embeddings, augmented pixels, popularity-model weights and predictions — must
be byte-identical. Before the fixed thread count (`device.reproducible`) the encoder
weights, and so its version, the image embeddings, the shards and the model id, differed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from platform_assets.lib.images.augment import augment, draw_params
from platform_assets.lib.torch_device import REPRODUCIBLE_THREADS, reproducible
from platform_assets_tests.support.helpers import synthetic_shards


def _sha(data: bytes | np.ndarray | torch.Tensor) -> str:
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().contiguous().numpy()
    if isinstance(data, np.ndarray):
        data = np.ascontiguousarray(data).tobytes()
    return hashlib.sha256(data).hexdigest()[:16]


def step_outputs(workdir: Path) -> dict:
    """sha256 of each step's output on small fixed inputs (run in the child processes)."""
    from platform_assets.lib.embeddings.image_encoder import load_encoder, train_simclr
    from platform_assets.lib.embeddings.titles import embed_titles
    from platform_assets.lib.images.decode import as_float
    from platform_assets.lib.model.train import TrainConfig, fit, holdout

    out = {"threads": torch.get_num_threads()}
    cpu = torch.device("cpu")
    images = torch.randint(0, 256, (48, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    trained = train_simclr(images, epochs=1, batch_size=24, lr=2e-3, seed=0, device=cpu)
    out["encoder_version"] = trained.version
    out["encoder_losses"] = _sha(np.array(trained.losses))
    encoder = load_encoder(trained.state_dict, cpu)
    with torch.inference_mode():  # small batches: where oneDNN's kernel depends on the thread count
        out["image_embeddings"] = [_sha(encoder(as_float(images[:n]))) for n in (1, 3, 48)]
    out["augmented"] = _sha(augment(images[:5], draw_params(3, list(range(5)), 0)))
    titles = ["Golden sunset", "My cat asleep on the sofa again", "Tacos", "City lights at night", "Beach day"]
    out["title_embeddings"] = [_sha(embed_titles(titles[:n], cpu)) for n in (1, len(titles))]
    dirs = synthetic_shards(workdir)
    model = fit(dirs[:1], TrainConfig(epochs=2, batch_size=64), use_embeddings=True)
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    out["model_weights"] = _sha(buf.getvalue())
    out["model_predictions"] = _sha(holdout(dirs[1], model, use_embeddings=True)[1])
    out["threads_after"] = torch.get_num_threads()
    return out


def _run(threads: int, workdir: Path) -> dict:
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "MKL_DYNAMIC": "FALSE",  # else MKL may use fewer threads than asked on this small machine
        "TOKENIZERS_PARALLELISM": "false",
    }
    pin = ["taskset", "-c", "0"] if threads == 1 and shutil.which("taskset") else []
    cmd = [*pin, sys.executable, __file__, str(threads), str(workdir)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_cpu_steps_are_bit_identical_on_one_and_on_eight_threads(tmp_path) -> None:
    one, eight = _run(1, tmp_path / "one"), _run(8, tmp_path / "eight")
    assert (one.pop("threads"), eight.pop("threads")) == (1, 8)  # the two "machines" really differ
    assert (one.pop("threads_after"), eight.pop("threads_after")) == (1, 8)  # and every step restored it
    assert one == eight


def test_reproducible_restores_the_process_settings() -> None:
    before = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    with reproducible(algorithms=True):
        assert torch.get_num_threads() == REPRODUCIBLE_THREADS
        assert torch.are_deterministic_algorithms_enabled()
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before
    with pytest.raises(RuntimeError), reproducible():
        raise RuntimeError("a failing step")
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == before


if __name__ == "__main__":  # a child of the test: `python test_determinism.py THREADS WORKDIR`
    torch.set_num_threads(int(sys.argv[1]))
    print(json.dumps(step_outputs(Path(sys.argv[2]))))
