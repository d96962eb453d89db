"""`ShardDataset`: a torch IterableDataset over training shards, for one process or a
DistributedDataParallel job, with exact resume at any world size and worker count.

The epoch order is `order.EpochOrder`, a function of (seed, epoch) alone. Every rank yields
the same number of samples (the remainder padded by repeating or dropped: `drop_last`), so
no rank of a DDP job runs out first and leaves the others waiting. `state_dict()` is the set
of positions not yet consumed; `load_state_dict()` resumes it exactly, each unconsumed sample
once, under any world size and worker count (`ShardLoader`), or under torchdata's
`StatefulDataLoader` with the same worker count it was taken with.

Shards are local files (`local_shards`) or objects on the DVC remote (`remote.remote_shards`);
a reader keeps a shuffle window's blocks and a span's files open, never the whole window of days.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from platform_assets.lib.shards.order import SPAN_SHARDS, WINDOW_BLOCKS, Deal, EpochOrder, Interval, length, take
from platform_assets.lib.shards.writer import ROW_GROUP_ROWS

STATE_VERSION = 1
VECTORS = ("image_embedding", "title_embedding", "features", "feature_mask")


class Shard(Protocol):
    samples: int

    def open(self) -> pa.NativeFile: ...


@dataclass(frozen=True)
class LocalShard:
    path: Path
    samples: int

    def open(self) -> pa.NativeFile:
        return pa.memory_map(str(self.path))


def shard_paths(directories: list[Path]) -> list[Path]:
    """The shards listed in each directory's index.json, in index order."""
    return [shard.path for shard in local_shards(directories)]


def local_shards(directories: list[Path]) -> list[LocalShard]:
    return [
        LocalShard(d / s["name"], s["samples"])
        for d in directories
        for s in json.loads((d / "index.json").read_text())["shards"]
    ]


def _numpy(array: pa.Array, dtype: type, width: int = 1) -> np.ndarray:
    """A view of a null-free fixed-width array's values (`Array.to_numpy` would import pandas)."""
    values = np.frombuffer(array.buffers()[1], dtype)
    return values[array.offset * width : (array.offset + len(array)) * width]


class _Block:
    """One block's rows as NumPy columns: a sample is then a few slices, not a Parquet read."""

    def __init__(self, table: pa.Table) -> None:
        n = table.num_rows
        batch = table.combine_chunks().to_batches()[0]
        self.image = None
        if "image" in batch.schema.names:
            image = batch.column("image")
            side = int(round((image.type.byte_width // 3) ** 0.5))
            self.image = _numpy(image, np.uint8, image.type.byte_width).reshape(n, 3, side, side)
        self.vectors = {k: _numpy(batch.column(k).flatten(), np.float32).reshape(n, -1) for k in VECTORS}
        self.ids = _numpy(batch.column("photo_id"), np.int64)
        self.views = _numpy(batch.column("view"), np.int16)
        self.labels = _numpy(batch.column("label"), np.float32)

    def sample(self, i: int) -> dict:
        return {
            "photo_id": int(self.ids[i]),
            "view": int(self.views[i]),
            "label": torch.tensor(self.labels[i]),
            **({} if self.image is None else {"image": torch.from_numpy(self.image[i].copy())}),
            **{k: torch.from_numpy(v[i].copy()) for k, v in self.vectors.items()},
        }


class _Blocks:
    """The blocks a reader has decoded, and the shard files it has open, least recent dropped."""

    def __init__(
        self, shards: Sequence[Shard], block_rows: int, keep_blocks: int, keep_files: int, columns: list[str] | None
    ) -> None:
        self.shards, self.block_rows, self.columns = shards, block_rows, columns
        self.keep_blocks, self.keep_files = keep_blocks, keep_files
        self.blocks: OrderedDict[tuple[int, int], _Block] = OrderedDict()
        self.files: OrderedDict[int, pq.ParquetFile] = OrderedDict()

    def _file(self, shard: int) -> pq.ParquetFile:
        if shard not in self.files:
            self.files[shard] = pq.ParquetFile(self.shards[shard].open())
            while len(self.files) > self.keep_files:
                self.files.popitem(last=False)
        self.files.move_to_end(shard)
        return self.files[shard]

    def get(self, shard: int, block: int) -> _Block:
        key = (shard, block)
        if key not in self.blocks:
            f = self._file(shard)
            start, stop = block * self.block_rows, (block + 1) * self.block_rows
            groups, first, rows = [], 0, []
            for g in range(f.metadata.num_row_groups):
                n = f.metadata.row_group(g).num_rows
                if first < stop and first + n > start:
                    groups.append(g)
                    rows.append(first)
                first += n
            table = f.read_row_groups(groups, columns=self.columns).slice(start - rows[0], stop - start)
            self.blocks[key] = _Block(table)
            while len(self.blocks) > self.keep_blocks:
                self.blocks.popitem(last=False)
        self.blocks.move_to_end(key)
        return self.blocks[key]


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardDataset(IterableDataset):
    """Samples of `shards` in the epoch order of (seed, epoch), this rank's equal share.

    `batch_size` must be the DataLoader's (`ShardLoader` sets it): worker w of K makes the
    rank's batches w, w+K, … so the loader yields the rank's share in order. Rank and world
    size default to torch.distributed's when it is initialized."""

    def __init__(
        self,
        shards: Sequence[Shard],
        seed: int = 0,
        epoch: int = 0,
        *,
        batch_size: int = 1,
        drop_last: bool = False,
        block_rows: int = ROW_GROUP_ROWS,
        window_blocks: int = WINDOW_BLOCKS,
        span_shards: int = SPAN_SHARDS,
        rank: int | None = None,
        world_size: int | None = None,
        pixels: bool = True,
    ) -> None:
        self.shards, self.seed, self.batch_size, self.drop_last = list(shards), seed, batch_size, drop_last
        # Without `pixels`, samples lack "image" and blocks read none: 12 KB a sample at 64 px
        # (150 KB at 224 px) that a model of the vectors and features never looks at.
        self.columns = None if pixels else ["photo_id", "view", "label", *VECTORS]
        self.layout = {"block_rows": block_rows, "window_blocks": window_blocks, "span_shards": span_shards}
        world = _world()
        self.rank = world[0] if rank is None else rank
        self.world_size = world[1] if world_size is None else world_size
        self.first = np.concatenate([[0], np.cumsum([s.samples for s in self.shards])]).astype(np.int64)
        self.total = int(self.first[-1])
        self.epoch = epoch
        self._start: list[Interval] = [(0, self.total)]  # positions of the epoch not consumed when iteration starts
        self._worker_state: dict | None = None  # a StatefulDataLoader worker's own position, to resume it
        self._yielded = 0

    def set_epoch(self, epoch: int) -> None:
        """A new epoch starts whole; setting the epoch a loaded state is in keeps its position."""
        if epoch != self.epoch:
            self.epoch, self._start, self._worker_state = epoch, [(0, self.total)], None

    def _deal(self) -> Deal:
        return Deal(tuple(self._start), self.world_size, self.drop_last)

    def __len__(self) -> int:
        """Samples this rank yields this epoch (the same on every rank)."""
        return self._deal().per_rank

    def _worker(self) -> tuple[int, int]:
        info = get_worker_info()
        return (info.id, info.num_workers) if info else (0, 1)

    def _positions(self) -> list[Interval]:
        worker, workers = self._worker()
        positions = self._deal().worker_chunks(self.rank, worker, workers, self.batch_size)
        self._yielded = 0
        if self._worker_state is not None:
            expected = self._worker_key(worker, workers)
            if {k: self._worker_state[k] for k in expected} != expected:
                raise ValueError(
                    f"this state was taken in DataLoader worker {self._worker_state['worker']} of "
                    f"{self._worker_state['workers']} (world size {self._worker_state['world_size']}, batch size "
                    f"{self._worker_state['batch_size']}); resume it with the same settings, or take the state "
                    "from `ShardLoader.state_dict()`, which resumes under any world size and worker count"
                )
            self._yielded = self._worker_state["yielded"]
            positions = take(positions, self._yielded, length(positions))
        return positions

    def _worker_key(self, worker: int, workers: int) -> dict:
        return {
            "worker": worker,
            "workers": workers,
            "rank": self.rank,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "drop_last": self.drop_last,
        }

    def __iter__(self) -> Iterator[dict]:
        positions = self._positions()
        order = EpochOrder([s.samples for s in self.shards], seed=self.seed, epoch=self.epoch, **self.layout)
        block_rows = self.layout["block_rows"]
        blocks = _Blocks(
            self.shards, block_rows, self.layout["window_blocks"] + 2, self.layout["span_shards"] + 1, self.columns
        )
        for ids in order.samples(positions):
            shards = np.searchsorted(self.first, ids, side="right") - 1
            rows = ids - self.first[shards]
            for shard, row in zip(shards.tolist(), rows.tolist(), strict=True):
                sample = blocks.get(shard, row // block_rows).sample(row % block_rows)
                self._yielded += 1
                yield sample

    # --- state ----------------------------------------------------------------------------

    def _state(self, remaining: list[Interval]) -> dict:
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "epoch": self.epoch,
            "samples": self.total,
            "layout": dict(self.layout),
            "remaining": [list(iv) for iv in remaining],
        }

    def state_after(self, consumed: int) -> dict:
        """The global position once every rank consumed `consumed` samples of this epoch."""
        return self._state(self._deal().after(consumed))

    def state_dict(self) -> dict:
        """In the process that iterates (no DataLoader workers): the global position. Inside a
        DataLoader worker (torchdata's StatefulDataLoader asks there): that worker's own position."""
        info = get_worker_info()
        if info is None:
            return self.state_after(self._yielded)
        return {
            **self._state(self._start),
            "worker_state": {**self._worker_key(info.id, info.num_workers), "yielded": self._yielded},
        }

    def load_state_dict(self, state: dict) -> None:
        mine = self._state([])
        for key in ("version", "seed", "samples", "layout"):
            if state.get(key) != mine[key]:
                raise ValueError(
                    f"this state is for another dataset: its {key} is {state.get(key)!r}, this dataset's "
                    f"{mine[key]!r}; build the dataset from the same shards and settings"
                )
        self.epoch = state["epoch"]
        self._start = [tuple(iv) for iv in state["remaining"]]
        self._worker_state = state.get("worker_state")


class ShardLoader(DataLoader):
    """A DataLoader over a `ShardDataset` that counts the samples this rank consumed, so its
    `state_dict()` is the global position: resumable at any world size and worker count."""

    def __init__(self, dataset: ShardDataset, batch_size: int, **kwargs) -> None:
        if kwargs.get("persistent_workers"):
            raise ValueError(
                "ShardLoader(persistent_workers=True): persistent workers keep their first copy of the "
                "dataset, so set_epoch and load_state_dict would never reach them; leave it False"
            )
        dataset.batch_size = batch_size
        super().__init__(dataset, batch_size=batch_size, **kwargs)
        self.consumed = 0

    def __iter__(self) -> Iterator[dict]:
        self.consumed = 0
        for batch in super().__iter__():
            self.consumed += len(batch["photo_id"])
            yield batch

    def state_dict(self) -> dict:
        return self.dataset.state_after(self.consumed)

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)
