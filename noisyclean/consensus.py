"""From a score matrix to one consensus score per sample.

Each sub-model's raw scores live on their own scale (a kNN distance, a reconstruction
error), so they are normalised row by row before they are combined. ``NaN`` marks a sample a
sub-model did not score (out-of-bag scoring); every step here ignores it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

Normalizer = Callable[[np.ndarray], np.ndarray]
Aggregator = Callable[[np.ndarray], np.ndarray]


def _rank(row: np.ndarray) -> np.ndarray:
    """Average ranks scaled to (0, 1]: robust to any monotone change of a sub-model's scale."""
    return rankdata(row) / row.size


def _zscore(row: np.ndarray) -> np.ndarray:
    std = row.std()
    return (row - row.mean()) / (std if std > 0 else 1.0)


def _robust_zscore(row: np.ndarray) -> np.ndarray:
    """Median and MAD: the anomalies being standardised do not inflate the scale."""
    med = np.median(row)
    mad = 1.4826 * np.median(np.abs(row - med))
    if mad <= 0:
        mad = row.std() or 1.0
    return (row - med) / mad


def _minmax(row: np.ndarray) -> np.ndarray:
    lo, hi = row.min(), row.max()
    return (row - lo) / (hi - lo) if hi > lo else np.zeros_like(row)


NORMALIZERS: dict[str, Normalizer] = {
    "rank": _rank,
    "zscore": _zscore,
    "robust_zscore": _robust_zscore,
    "minmax": _minmax,
}


def normalize(scores: np.ndarray, method: str | None) -> np.ndarray:
    """Normalise each row of ``scores`` over the samples it scored (non-NaN entries)."""
    if method is None:
        return scores.astype(np.float64, copy=True)
    if method not in NORMALIZERS:
        raise ValueError(
            f"unknown normalize={method!r}; choose one of {[*NORMALIZERS, None]}."
        )
    fn = NORMALIZERS[method]
    out = np.full(scores.shape, np.nan, dtype=np.float64)
    for j, row in enumerate(scores):
        seen = ~np.isnan(row)
        if seen.any():
            out[j, seen] = fn(row[seen].astype(np.float64))
    return out


def _nan_reduce(fn: Callable[..., np.ndarray]) -> Aggregator:
    def reduce(matrix: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(matrix, axis=0)

    return reduce


AGGREGATORS: dict[str, Aggregator] = {
    "mean": _nan_reduce(np.nanmean),
    "median": _nan_reduce(np.nanmedian),
    "max": _nan_reduce(np.nanmax),
    "min": _nan_reduce(np.nanmin),
}


def aggregate(matrix: np.ndarray, method: str | Aggregator) -> np.ndarray:
    """Combine the normalised ``(m, n)`` matrix into ``(n,)`` consensus scores.

    A callable receives the matrix (with NaN where a sub-model did not score) and must
    return one finite score per sample.
    """
    if callable(method):
        fn = method
    elif method in AGGREGATORS:
        fn = AGGREGATORS[method]
    else:
        raise ValueError(
            f"unknown aggregate={method!r}; choose one of {list(AGGREGATORS)} or pass a "
            "callable (matrix -> scores)."
        )
    unscored = np.isnan(matrix).all(axis=0)
    if unscored.any():
        raise ValueError(
            f"{int(unscored.sum())} sample(s) were scored by no sub-model (e.g. index "
            f"{int(np.flatnonzero(unscored)[0])}). With scoring='out_of_bag' every sample must "
            "be left out of at least one subset: use more subsets or smaller bags."
        )
    out = np.asarray(fn(matrix), dtype=np.float64).reshape(-1)
    if out.shape != (matrix.shape[1],):
        raise ValueError(
            f"the aggregate function returned shape {out.shape}; expected ({matrix.shape[1]},)."
        )
    if not np.isfinite(out).all():
        raise ValueError("the aggregate function returned NaN or inf scores.")
    return out



def largest_rank(*views: np.ndarray) -> np.ndarray:
    """Selection scores over several views: each sample's largest rank, in (0, 1].

    Ranks put every view on one scale whatever its units; the largest one means a sample is
    kept only when *every* view finds it ordinary.
    """
    return aggregate(normalize(np.vstack(views), "rank"), "max")
