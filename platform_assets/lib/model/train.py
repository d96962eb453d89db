"""Train and evaluate the popularity model from training shards, deterministically on CPU:
seeded, and on a fixed thread count (`device.reproducible`), so any core count gives the
same weights and predictions.

The model is an MLP over the image embedding, the title embedding and the tabular features
(hidden cells zeroed, with their mask); the baseline is the same MLP over the tabular
features alone. The holdout is time-based: the last day of the window.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn as nn

from platform_assets.lib.batches import rebatched
from platform_assets.lib.shards.reader import ShardDataset, ShardLoader, local_shards, shard_paths
from platform_assets.lib.torch_device import reproducible


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 8
    batch_size: int = 256
    learning_rate: float = 1e-3
    seed: int = 0


def _inputs(batch: dict, use_embeddings: bool) -> torch.Tensor:
    tab = [batch["features"].float(), batch["feature_mask"].float()]
    tab[0] = torch.sign(tab[0]) * torch.log1p(tab[0].abs())
    parts = ([batch["image_embedding"].float(), batch["title_embedding"].float()] if use_embeddings else []) + tab
    return torch.cat(parts, dim=1)


def make_model(dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 1))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3:
        return float("nan")
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def fit(train_dirs: list[Path], config: TrainConfig, use_embeddings: bool) -> nn.Module:
    with reproducible(algorithms=True):  # MKL may split a matmul by thread count (not seen at these sizes)
        return _fit(train_dirs, config, use_embeddings)


def _fit(train_dirs: list[Path], config: TrainConfig, use_embeddings: bool) -> nn.Module:
    torch.manual_seed(config.seed)
    dataset = ShardDataset(local_shards(train_dirs), seed=config.seed, pixels=False)
    loader = ShardLoader(dataset, batch_size=config.batch_size)
    model, opt = None, None
    for epoch in range(config.epochs):
        dataset.set_epoch(epoch)
        for batch in loader:
            x, y = _inputs(batch, use_embeddings), batch["label"].float()
            if model is None:
                model = make_model(x.shape[1])
                opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
            loss = nn.functional.mse_loss(model(x).squeeze(1), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    if model is None:
        raise ValueError("no training samples in the window: materialize shards for earlier days")
    return model.eval()


HOLDOUT_INPUTS = ("image_embedding", "title_embedding", "features", "feature_mask")


HOLDOUT_BATCH_ROWS = 8192  # photos predicted at a time (a day that fits is predicted in one batch)


def holdout(holdout_dir: Path, model: nn.Module, use_embeddings: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(photo ids, predictions, labels) on the holdout day's first view of each photo,
    `HOLDOUT_BATCH_ROWS` photos at a time. Only those rows and the model's columns are read, a
    shard at a time: a 100,000-photo day's augmented pixels are 3 GB, and reading them whole
    took the nightly run to 5.8 GB; its first views' vectors alone were a gigabyte."""
    columns = ["photo_id", "label", *HOLDOUT_INPUTS]
    shards = (pq.read_table(p, columns=columns, filters=[("view", "=", 0)]) for p in shard_paths([holdout_dir]))
    ids, preds, labels = [], [], []
    for table in rebatched(shards, HOLDOUT_BATCH_ROWS):
        batch = {
            name: torch.from_numpy(table[name].combine_chunks().values.to_numpy().reshape(table.num_rows, -1).copy())
            for name in HOLDOUT_INPUTS
        }
        with torch.no_grad(), reproducible():
            preds.append(model(_inputs(batch, use_embeddings)).squeeze(1).numpy())
        ids.append(table["photo_id"].to_numpy())
        labels.append(table["label"].to_numpy())
    if not ids:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
    return np.concatenate(ids), np.concatenate(preds), np.concatenate(labels)
