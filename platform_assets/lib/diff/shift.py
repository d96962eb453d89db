"""How far a feature's distribution moved between two sets of photos: the population stability
index (PSI) over deciles of the first set, and the two-sample Kolmogorov–Smirnov statistic, with
the counts behind both so a reader can check them.

PSI: bin edges are the 10 %, 20 %, …, 90 % quantiles of A (NumPy's linear interpolation),
duplicates dropped; bin i holds the values in (edge[i-1], edge[i]], the first from -inf and the
last to +inf. With p and q the shares of A and B in a bin, each floored at 1e-4 so an empty bin
stays finite, PSI = Σ (q - p) · ln(q / p). Usual reading: < 0.1 stable, 0.1–0.25 moderate,
> 0.25 a major shift. KS: the largest gap between the two empirical distribution functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BINS = 10
FLOOR = 1e-4


@dataclass(frozen=True)
class Shift:
    name: str
    n_a: int
    n_b: int
    mean_a: float | None
    mean_b: float | None
    psi: float | None  # None: one side has no values
    ks: float | None
    edges: list[float]  # the inner bin edges
    counts_a: list[int]  # values of A in each bin (len(edges) + 1)
    counts_b: list[int]


def psi_bins(a: np.ndarray) -> np.ndarray:
    return np.unique(np.quantile(a, np.arange(1, BINS) / BINS))


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts per bin (edge[i-1], edge[i]]: a value's bin is the number of edges below it."""
    return np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)


def psi(counts_a: np.ndarray, counts_b: np.ndarray) -> float:
    p = np.maximum(counts_a / counts_a.sum(), FLOOR)
    q = np.maximum(counts_b / counts_b.sum(), FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def ks(a: np.ndarray, b: np.ndarray) -> float:
    """sup |F_A - F_B|, evaluated at every observed value (where the supremum is reached)."""
    a, b = np.sort(a), np.sort(b)
    at = np.concatenate([a, b])
    gap = np.searchsorted(a, at, side="right") / len(a) - np.searchsorted(b, at, side="right") / len(b)
    return float(np.abs(gap).max())


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def shift(name: str, a: np.ndarray, b: np.ndarray) -> Shift:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if not len(a) or not len(b):
        return Shift(name, len(a), len(b), _mean(a), _mean(b), None, None, [], [], [])
    edges = psi_bins(a)
    counts_a, counts_b = bin_counts(a, edges), bin_counts(b, edges)
    return Shift(
        name,
        len(a),
        len(b),
        _mean(a),
        _mean(b),
        round(psi(counts_a, counts_b), 6),
        round(ks(a, b), 6),
        edges.tolist(),
        counts_a.tolist(),
        counts_b.tolist(),
    )
