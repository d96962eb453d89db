"""`diff_versions`: what changed between two data versions, and its two renderings (a table to
read, JSON for scripts).

Partitions come from the `.dvc` hashes alone: equal hashes are equal bytes, so an unchanged
partition is never read. Only changed, added and removed partitions are read (from the DVC cache
or the remote), so a diff costs time in proportion to what changed, not to the window.

The shift figures compare the samples only A holds with the samples only B holds, as whole
partitions: A's versions of the changed and removed days against B's versions of the changed and
added days, one value per photo (its label; a feature's value from its first view that does not
hide it). Unchanged days are in both windows: they would only dilute the figure, and counting
them would mean reading the whole window.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from platform_assets.lib.diff.objects import ObjectSource
from platform_assets.lib.diff.samples import PartitionSamples, SampleDiff, compare, read_partition
from platform_assets.lib.diff.shift import Shift, shift
from platform_assets.lib.diff.versions import DataVersion, resolve
from platform_assets.lib.registry import Registry
from platform_assets.lib.shards.tabular import TABULAR

LISTED = 8  # photo ids a table line shows; --json lists them all


@dataclass(frozen=True)
class Side:
    name: str
    rev: str
    commit: str
    model_id: str | None
    partitions: int


@dataclass(frozen=True)
class PartitionChange:
    day: str
    status: str  # unchanged | changed | added | removed
    md5_a: str | None
    md5_b: str | None
    samples_a: int | None  # None: not read (unchanged, or absent on that side)
    samples_b: int | None
    samples: SampleDiff | None  # changed partitions only


@dataclass(frozen=True)
class MetricChange:
    metric: str
    a: float | int | str | None
    b: float | int | str | None
    change: float | None


@dataclass(frozen=True)
class DataDiff:
    a: Side
    b: Side
    partitions: list[PartitionChange]
    shift: list[Shift]  # the label first, then each tabular feature
    metrics: list[MetricChange]
    seconds: float

    def count(self, status: str) -> int:
        return sum(p.status == status for p in self.partitions)

    def total(self, what: str) -> int:
        """Samples added, removed or changed over the changed partitions (whole added/removed
        partitions count as added/removed samples)."""
        whole = {"added_samples": ("added", "samples_b"), "removed_samples": ("removed", "samples_a")}
        total = sum(getattr(p.samples, what) for p in self.partitions if p.samples)
        if what in whole:
            status, side = whole[what]
            total += sum(getattr(p, side) for p in self.partitions if p.status == status)
        return total

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def _status(a: str | None, b: str | None) -> str:
    return "added" if a is None else "removed" if b is None else "unchanged" if a == b else "changed"


def _per_photo(parts: list[PartitionSamples], names: list[str]) -> dict[str, np.ndarray]:
    """One value per photo: its label, and each feature from its first view that shows it."""
    values: dict[str, list[np.ndarray]] = {name: [] for name in ["label", *names]}
    for p in parts:
        _, first = np.unique(p.photo_id, return_index=True)
        values["label"].append(p.label[first])
        for i, name in enumerate(names):
            shown = np.flatnonzero(p.mask[:, i] > 0)
            _, first_shown = np.unique(p.photo_id[shown], return_index=True)
            values[name].append(p.features[shown[first_shown], i])
    return {name: np.concatenate(v) if v else np.zeros(0) for name, v in values.items()}


def _metrics(a: dict, b: dict) -> list[MetricChange]:
    def number(v: object) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    return [
        MetricChange(k, a.get(k), b.get(k), round(b[k] - a[k], 6) if number(a.get(k)) and number(b.get(k)) else None)
        for k in sorted(set(a) | set(b))
    ]


def diff_versions(registry: Registry, a: str, b: str, shard_cache: Path | None = None) -> DataDiff:
    """What changed from `a` to `b` (model ids, model tags or registry revisions)."""

    started = time.perf_counter()
    source = ObjectSource.of(registry, shard_cache)
    va, vb = resolve(registry, source, a), resolve(registry, source, b)
    partitions, only_a, only_b = [], [], []
    for day in sorted(set(va.partitions) | set(vb.partitions)):
        md5_a, md5_b = va.partitions.get(day), vb.partitions.get(day)
        status = _status(md5_a, md5_b)
        if status == "unchanged":
            partitions.append(PartitionChange(day, status, md5_a, md5_b, None, None, None))
            continue
        whole = status != "changed"  # added or removed: no sample-by-sample comparison, no digests
        read_a = read_partition(source, source.partition(md5_a), not whole) if md5_a else None
        read_b = read_partition(source, source.partition(md5_b), not whole) if md5_b else None
        only_a += [read_a] if read_a else []
        only_b += [read_b] if read_b else []
        partitions.append(
            PartitionChange(
                day,
                status,
                md5_a,
                md5_b,
                len(read_a.photo_id) if read_a else None,
                len(read_b.photo_id) if read_b else None,
                compare(read_a, read_b) if read_a and read_b else None,
            )
        )
    values_a, values_b = _per_photo(only_a, TABULAR), _per_photo(only_b, TABULAR)
    shifts = [shift(name, values_a[name], values_b[name]) for name in values_a]
    return DataDiff(
        _side(va),
        _side(vb),
        partitions,
        shifts,
        _metrics(va.metrics, vb.metrics),
        round(time.perf_counter() - started, 3),
    )


def _side(v: DataVersion) -> Side:
    return Side(v.name, v.rev, v.commit, v.model_id, len(v.partitions))


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:LISTED])
    return shown + (f", … ({len(ids) - LISTED} more)" if len(ids) > LISTED else "")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in [header, *rows]]


def _num(v: object) -> str:
    return "-" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def render(d: DataDiff) -> str:
    """The readable table: partitions, samples by photo id, shift, metrics."""
    lines = [f"A: {d.a.rev} ({d.a.commit[:10]}, {d.a.partitions} partitions)"]
    lines += [f"B: {d.b.rev} ({d.b.commit[:10]}, {d.b.partitions} partitions)", ""]
    counts = ", ".join(f"{d.count(s)} {s}" for s in ("changed", "added", "removed", "unchanged"))
    lines += [f"partitions: {counts}"]
    rows = [
        [
            p.day,
            p.status,
            _num(p.samples_a),
            _num(p.samples_b),
            _num(p.samples.added_samples if p.samples else None),
            _num(p.samples.removed_samples if p.samples else None),
            _num(p.samples.changed_samples if p.samples else None),
            (p.md5_a or "-")[:8],
            (p.md5_b or "-")[:8],
        ]
        for p in d.partitions
        if p.status != "unchanged"
    ]
    if rows:
        lines += _table(["day", "status", "samples A", "samples B", "+", "-", "changed", "md5 A", "md5 B"], rows)
    for p in d.partitions:
        if p.samples:
            s = p.samples
            columns = ", ".join(f"{c} {n}" for c, n in sorted(s.changed_columns.items(), key=lambda x: -x[1]))
            lines += [
                "",
                f"{p.day}: photos +{len(s.added_photos)} -{len(s.removed_photos)} changed {len(s.changed_photos)}",
                f"  added:   {_ids(s.added_photos) or '-'}",
                f"  removed: {_ids(s.removed_photos) or '-'}",
                f"  changed: {_ids([c.photo_id for c in s.changed_photos]) or '-'}",
                f"  columns (samples changed): {columns or '-'}",
            ]
    moved = sorted(d.shift, key=lambda s: -(s.psi or 0))
    lines += [
        "",
        f"shift: A's {d.count('changed')} changed + {d.count('removed')} removed partitions vs B's "
        f"{d.count('changed')} changed + {d.count('added')} added (one value per photo)",
    ]
    lines += _table(
        ["feature", "n A", "n B", "mean A", "mean B", "PSI", "KS"],
        [[s.name, str(s.n_a), str(s.n_b), _num(s.mean_a), _num(s.mean_b), _num(s.psi), _num(s.ks)] for s in moved],
    )
    if d.metrics:
        lines += [
            "",
            *_table(
                ["metric", "A", "B", "change"], [[m.metric, _num(m.a), _num(m.b), _num(m.change)] for m in d.metrics]
            ),
        ]
    return "\n".join(lines)
