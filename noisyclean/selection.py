"""Which samples to keep, given the consensus.

Ties are broken by original index (the earlier sample is kept first), so the selection is
a pure function of the consensus and never depends on the order sub-models finished in.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np

AUTO = "auto"
AUTO_Z_THRESHOLD = 3.5
"""Iglewicz and Hoaglin's cut-off for a modified z-score: beyond it a sample is an outlier."""


def ranking(consensus: np.ndarray) -> np.ndarray:
    """Original indices from most normal to most anomalous (ties: lower index first)."""
    return np.lexsort((np.arange(consensus.size), consensus))


def validate_keep(keep: object) -> None:
    """Accept a fraction in (0, 1] or ``"auto"``; refuse integers, which read two ways.

    Why no integer: ``keep=1`` reads as "keep everything" to some and "keep one sample" to
    others, and either reading silently bites the other. A fraction is always a float
    (``1.0`` keeps all); a count goes through its own parameter, ``keep_count``.
    """
    if isinstance(keep, str):
        if keep != AUTO:
            raise ValueError(f"keep={keep!r} is not understood; use a fraction such as 0.8, "
                             "or 'auto' (keep_count= takes a number of samples).")
        return
    if isinstance(keep, bool) or not isinstance(keep, Real):
        raise TypeError(f"keep must be a fraction in (0, 1] or 'auto'; got {keep!r}")
    if isinstance(keep, Integral):
        if keep < 1:
            raise ValueError(f"keep={keep} keeps nothing; give a fraction in (0, 1].")
        hint = ("write keep=1.0 to keep every sample, or keep_count=1 to keep one"
                if keep == 1 else f"for a number of samples use keep_count={keep}")
        raise ValueError(f"keep={keep} is an integer, which is ambiguous: keep takes a "
                         f"fraction in (0, 1]; {hint}.")
    if not 0.0 < float(keep) <= 1.0 or math.isnan(float(keep)):
        raise ValueError(
            f"keep={keep} is out of range: a fraction must lie in (0, 1] (0.8 keeps the 80 % "
            "lowest-scoring samples); keep_count= keeps a number of samples."
        )


def validate_keep_count(count: object, n: int | None = None) -> None:
    """Accept ``None`` (no count) or an integer in [1, n]."""
    if count is None:
        return
    if isinstance(count, bool) or not isinstance(count, Integral) or count < 1:
        raise ValueError(f"keep_count={count!r} must be a whole number of samples >= 1.")
    if n is not None and count > n:
        raise ValueError(f"keep_count={count} asks for more samples than the {n} in the "
                         "dataset; lower it, or give a fraction with keep=.")


def n_to_keep(keep: float, n: int, count: int | None = None) -> int:
    """How many samples to keep of ``n``: ``count`` when given, else the fraction ``keep``
    of them, rounded half up, at least one."""
    if count is not None:
        validate_keep_count(count, n)
        return int(count)
    validate_keep(keep)
    return max(1, min(n, math.floor(float(keep) * n + 0.5)))


def estimate_n_keep(robust_consensus: np.ndarray, z_threshold: float = AUTO_Z_THRESHOLD) -> int:
    """Estimate how many samples are normal from a robustly standardised consensus.

    Samples whose modified z-score (median and MAD) exceeds ``z_threshold`` count as
    contamination. On clean data almost nothing crosses it, so clean data loses almost
    nothing; on contaminated data the anomalies' consistently high scores do.
    """
    c = np.asarray(robust_consensus, dtype=np.float64)
    med = np.median(c)
    mad = 1.4826 * np.median(np.abs(c - med))
    if mad <= 0:
        return c.size
    z = (c - med) / mad
    return max(1, int(np.sum(z <= z_threshold)))
