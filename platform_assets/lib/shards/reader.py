"""`ShardDataset`: a torch IterableDataset over training shards.

Order is a pure function of (seed, epoch): the shard list is permuted, shards are dealt to
the (rank, worker) readers round-robin, and each reader passes its samples through a seeded
shuffle buffer. `start_sample` resumes a reader's stream after that many samples (with one
worker per rank, the samples that rank has consumed).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import IterableDataset, get_worker_info

from platform_assets.lib.embeddings.images import IMAGE_SIZE


def shard_paths(directories: list[Path]) -> list[Path]:
    """The shards listed in each directory's index.json, in index order."""
    return [d / s["name"] for d in directories for s in json.loads((d / "index.json").read_text())["shards"]]


class ShardDataset(IterableDataset):
    def __init__(
        self,
        shards: list[Path],
        seed: int = 0,
        epoch: int = 0,
        shuffle_buffer: int = 2048,
        start_sample: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.shards, self.seed, self.epoch = list(shards), seed, epoch
        self.shuffle_buffer, self.start_sample = shuffle_buffer, start_sample
        self.rank, self.world_size = rank, world_size

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _reader(self) -> tuple[int, int]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        return self.rank * workers + worker, self.world_size * workers

    def _samples(self, shards: list[Path]) -> Iterator[dict]:
        for path in shards:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=512):
                image = np.frombuffer(b"".join(batch.column("image").to_pylist()), np.uint8)
                n = batch.num_rows
                image = image.reshape(n, 3, IMAGE_SIZE, IMAGE_SIZE)
                fixed = {
                    name: batch.column(name).values.to_numpy().reshape(n, -1)
                    for name in ("image_embedding", "title_embedding", "features", "feature_mask")
                }
                ids = batch.column("photo_id").to_numpy()
                views = batch.column("view").to_numpy()
                labels = batch.column("label").to_numpy()
                for i in range(n):
                    yield {
                        "photo_id": int(ids[i]),
                        "view": int(views[i]),
                        "label": torch.tensor(labels[i]),
                        "image": torch.from_numpy(image[i].copy()),
                        **{k: torch.from_numpy(v[i].copy()) for k, v in fixed.items()},
                    }

    def __iter__(self) -> Iterator[dict]:
        reader, readers = self._reader()
        order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.shards))
        mine = [self.shards[i] for i in order[reader::readers]]
        rng = np.random.default_rng([self.seed, self.epoch, reader])
        buffer: list[dict] = []
        emitted = 0
        for sample in self._samples(mine):
            if len(buffer) < self.shuffle_buffer:
                buffer.append(sample)
                continue
            j = int(rng.integers(len(buffer)))
            out, buffer[j] = buffer[j], sample
            if emitted >= self.start_sample:
                yield out
            emitted += 1
        rng.shuffle(buffer)
        for out in buffer:
            if emitted >= self.start_sample:
                yield out
            emitted += 1
