"""The order of one training epoch, shared by every rank and worker, and its resume state.

One global order per (seed, epoch), whatever the world size and worker count:

1. the shards are permuted, and runs of `span_shards` of them form a span: a reader has at
   most a span's shards open at once, which bounds what streaming needs in its cache;
2. a span's blocks (`block_rows` rows of one shard, a Parquet row group as the writer lays
   them out) are permuted, and runs of `window_blocks` blocks form a shuffle window;
3. a window's samples are permuted.

The not-yet-consumed positions of that order are dealt to ranks as equal contiguous slices
(so a rank reads its own shards), the remainder padded by repeating the first positions or
dropped; within a rank, worker w of K makes batches w, w+K, w+2K… of the slice, which is the
order a `DataLoader` yields them in. So after every rank consumed `c` samples, the consumed
set is known from `c` alone, and the state is the positions left: sorted disjoint intervals.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np

Interval = tuple[int, int]  # [start, stop) positions of the epoch order
WINDOW_BLOCKS = 8  # 8 row groups of 1,024: mixes a batch about as well as the 4,096-sample buffer it replaced
SPAN_SHARDS = 4


def length(intervals: list[Interval]) -> int:
    return sum(b - a for a, b in intervals)


def take(intervals: list[Interval], start: int, stop: int) -> list[Interval]:
    """The positions at indices [start, stop) of the sequence the intervals spell."""
    out, seen = [], 0
    for a, b in intervals:
        lo, hi = max(start - seen, 0), min(stop - seen, b - a)
        if lo < hi:
            out.append((a + lo, a + hi))
        seen += b - a
        if seen >= stop:
            break
    return out


def take_wrapped(intervals: list[Interval], start: int, stop: int) -> list[Interval]:
    """`take`, with indices past the end wrapping to the start (padding repeats the first positions)."""
    total, out = length(intervals), []
    while start < stop and total:
        base = start - start % total
        end = min(stop, base + total)
        out += take(intervals, start - base, end - base)
        start = end
    return out


def subtract(intervals: list[Interval], removed: list[Interval]) -> list[Interval]:
    """Positions in `intervals` and not in `removed` (both sorted and disjoint or not)."""
    cuts = sorted(removed)
    out = []
    for a, b in intervals:
        for c, d in cuts:
            if d <= a or c >= b:
                continue
            if c > a:
                out.append((a, c))
            a = max(a, d)
            if a >= b:
                break
        if a < b:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class Deal:
    """How the positions left are split: `world_size` ranks, K workers, batches of `batch_size`."""

    remaining: tuple[Interval, ...]
    world_size: int
    drop_last: bool

    @cached_property
    def per_rank(self) -> int:
        total = length(list(self.remaining))
        return total // self.world_size if self.drop_last else -(-total // self.world_size)

    def rank_slice(self, rank: int) -> list[Interval]:
        m = self.per_rank
        return take_wrapped(list(self.remaining), rank * m, (rank + 1) * m)

    def worker_chunks(self, rank: int, worker: int, workers: int, batch_size: int) -> list[Interval]:
        """The positions worker `worker` of `workers` yields, in order: batches worker, worker+K, …"""
        mine = self.rank_slice(rank)
        if workers == 1:
            return mine
        out: list[Interval] = []
        for start in range(worker * batch_size, self.per_rank, workers * batch_size):
            for a, b in take(mine, start, min(start + batch_size, self.per_rank)):
                if out and out[-1][1] == a:  # a batch that continues the last one's positions
                    out[-1] = (out[-1][0], b)
                else:
                    out.append((a, b))
        return out

    def after(self, consumed: int) -> list[Interval]:
        """The positions left once every rank consumed the first `consumed` samples of its slice."""
        m = self.per_rank
        done = [
            iv for r in range(self.world_size) for iv in take_wrapped(list(self.remaining), r * m, r * m + consumed)
        ]
        return subtract(list(self.remaining), done)


class EpochOrder:
    """Which sample (its index in the concatenated shards) sits at each position of an epoch."""

    def __init__(
        self, shard_rows: list[int], block_rows: int, window_blocks: int, span_shards: int, seed: int, epoch: int
    ) -> None:
        self.key = (seed, epoch)
        first = np.concatenate([[0], np.cumsum(shard_rows)]).astype(np.int64)
        rng = np.random.default_rng([seed, epoch])
        shards = rng.permutation(len(shard_rows))
        self.windows: list[list[tuple[int, int]]] = []  # (first sample, rows) per block
        for s in range(0, len(shards), span_shards):
            blocks = [
                (int(first[i] + r), int(min(block_rows, shard_rows[i] - r)))
                for i in shards[s : s + span_shards]
                for r in range(0, shard_rows[i], block_rows)
            ]
            order = rng.permutation(len(blocks))
            self.windows += [
                [blocks[j] for j in order[w : w + window_blocks]] for w in range(0, len(order), window_blocks)
            ]
        sizes = [sum(rows for _, rows in w) for w in self.windows]
        self.window_first = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._cached: tuple[int, np.ndarray] | None = None

    def _window(self, w: int) -> np.ndarray:
        if self._cached is None or self._cached[0] != w:
            ids = np.concatenate([np.arange(a, a + n, dtype=np.int64) for a, n in self.windows[w]])
            self._cached = (w, np.random.default_rng([*self.key, w]).permutation(ids))
        return self._cached[1]

    def samples(self, intervals: list[Interval]) -> Iterator[np.ndarray]:
        """The sample indices at these positions, in order, a window's piece at a time."""
        for a, b in intervals:
            while a < b:
                w = int(np.searchsorted(self.window_first, a, side="right")) - 1
                end = min(b, int(self.window_first[w + 1]))
                yield self._window(w)[a - self.window_first[w] : end - self.window_first[w]]
                a = end
