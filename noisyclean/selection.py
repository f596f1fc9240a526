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
    if isinstance(keep, str):
        if keep != AUTO:
            raise ValueError(f"keep={keep!r} is not understood; use a fraction, a count or 'auto'.")
        return
    if isinstance(keep, bool) or not isinstance(keep, Real):
        raise TypeError(f"keep must be a fraction in (0, 1], a count >= 1, or 'auto'; got {keep!r}")
    if isinstance(keep, Integral) and not isinstance(keep, float):
        if keep < 1:
            raise ValueError(
                f"keep={keep} keeps nothing; give a count >= 1 or a fraction in (0, 1]."
            )
        return
    if not 0.0 < float(keep) <= 1.0 or math.isnan(float(keep)):
        raise ValueError(
            f"keep={keep} is out of range: a fraction must lie in (0, 1] (0.8 keeps the 80 % "
            "lowest-scoring samples); an integer count keeps that many."
        )


def n_to_keep(keep: float | int, n: int) -> int:
    """How many samples ``keep`` means for ``n`` samples.

    A fraction keeps ``keep * n`` samples rounded half up, at least one; an integer keeps
    that many.
    """
    validate_keep(keep)
    if isinstance(keep, Integral) and not isinstance(keep, float):
        if keep > n:
            raise ValueError(f"keep={keep} asks for more samples than the {n} in the dataset.")
        return int(keep)
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
