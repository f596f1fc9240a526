"""How well a purification worked, measured against the true labels.

Labels are used here only to evaluate a purification after the fact; they never reach the
Purifier. Ratios that divide by zero (no anomalies at noise 0, nothing kept) are ``NaN``
rather than an error, so a benchmark over noise ratios can average them with ``np.nanmean``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from noisyclean.metrics._validation import as_binary


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def purification_report(is_anomaly: Any, keep_mask: Any) -> dict[str, float | int]:
    """Counts and rates of a purification: what was kept, what was dropped.

    Args:
        is_anomaly: ``(n,)`` true labels of the training samples (1 / True = anomaly).
        keep_mask: ``(n,)`` the Purifier's decision (True = kept for stage 2).

    Returns a dict with ``n_samples``, ``n_anomalies``, ``n_normals``, ``n_kept``,
    ``n_dropped``, ``anomalies_kept``, ``anomalies_dropped``, ``normals_kept``,
    ``normals_lost`` (counts) and ``anomaly_fraction_before`` (anomalies / n),
    ``anomaly_fraction_after`` (anomalies kept / kept), ``anomaly_recall`` (share of the
    anomalies that were dropped), ``normals_lost_fraction`` (share of the normals dropped) and
    ``drop_precision`` (share of the dropped samples that are anomalies).
    """
    y = as_binary(is_anomaly, "is_anomaly")
    keep = as_binary(keep_mask, "keep_mask")
    if y.ndim != 1 or keep.ndim != 1 or y.shape != keep.shape:
        raise ValueError(
            f"is_anomaly {y.shape} and keep_mask {keep.shape} must both be 1-D with one entry "
            "per training sample, in the same order."
        )
    n = int(y.size)
    n_anom = int(y.sum())
    n_kept = int(keep.sum())
    anom_kept = int((y & keep).sum())
    normals_kept = n_kept - anom_kept
    n_norm = n - n_anom
    return {
        "n_samples": n,
        "n_anomalies": n_anom,
        "n_normals": n_norm,
        "n_kept": n_kept,
        "n_dropped": n - n_kept,
        "anomalies_kept": anom_kept,
        "anomalies_dropped": n_anom - anom_kept,
        "normals_kept": normals_kept,
        "normals_lost": n_norm - normals_kept,
        "anomaly_fraction_before": _ratio(n_anom, n),
        "anomaly_fraction_after": _ratio(anom_kept, n_kept),
        "anomaly_recall": _ratio(n_anom - anom_kept, n_anom),
        "normals_lost_fraction": _ratio(n_norm - normals_kept, n_norm),
        "drop_precision": _ratio(n_anom - anom_kept, n - n_kept),
    }


def selection_size(n_scored: int, fraction: float) -> int:
    """How many of ``n_scored`` samples a ``fraction`` selects: rounded half up."""
    return min(n_scored, math.floor(fraction * n_scored + 0.5))


def _lowest_counts(row: np.ndarray, y: np.ndarray, fraction: float) -> dict[str, float | int]:
    scored = np.flatnonzero(~np.isnan(row))
    n_select = selection_size(scored.size, fraction)
    # Stable sort: ties are broken by sample order, so the result is reproducible.
    chosen = scored[np.argsort(row[scored], kind="stable")[:n_select]]
    anomalies = int(y[chosen].sum())
    return {
        "n_scored": int(scored.size),
        "anomalies_scored": int(y[scored].sum()),
        "n_selected": int(n_select),
        "normals": int(n_select - anomalies),
        "anomalies": anomalies,
        "anomaly_fraction": _ratio(anomalies, n_select),
    }


def submodel_selection_counts(
    scores: Any,
    is_anomaly: Any,
    fraction: float,
    consensus: Any = None,
) -> dict[str, Any]:
    """Normals and anomalies among each sub-model's own lowest-scoring ``fraction``.

    This is the paper's Figure 4: it shows whether each sub-model alone would already have
    purified the set, and how much the consensus adds.

    Args:
        scores: ``(k, n)`` stage-1 scores, higher = more anomalous; ``NaN`` where sub-model
            ``i`` did not score sample ``j`` (out-of-bag scoring). Each sub-model selects
            among the samples it scored only.
        is_anomaly: ``(n,)`` true labels.
        fraction: the share of scored samples each selection keeps, in ``(0, 1]``; the
            count is rounded half up (:func:`selection_size`).
        consensus: ``(n,)`` the aggregated scores the Purifier used. When omitted, the
            NaN-ignoring mean of the raw scores (the paper's aggregation) stands in.

    Returns ``{"fraction": f, "submodels": [row, ...], "consensus": row}`` where each row has
    ``n_scored``, ``anomalies_scored``, ``n_selected``, ``normals``, ``anomalies`` and
    ``anomaly_fraction``.
    """
    s = np.asarray(scores, dtype=np.float64)
    y = as_binary(is_anomaly, "is_anomaly")
    if s.ndim != 2:
        raise ValueError(f"scores must be (k sub-models, n samples), got shape {s.shape}.")
    if y.ndim != 1 or y.size != s.shape[1]:
        raise ValueError(
            f"is_anomaly has shape {y.shape} but scores cover {s.shape[1]} samples; give one "
            "label per column of scores."
        )
    if np.isinf(s).any():
        raise ValueError("scores contain infinite values; use NaN for 'not scored'.")
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction!r}.")
    if consensus is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns stay NaN
            c = np.nanmean(s, axis=0) if s.shape[0] else np.full(s.shape[1], np.nan)
    else:
        c = np.asarray(consensus, dtype=np.float64)
        if c.shape != (s.shape[1],):
            raise ValueError(
                f"consensus has shape {c.shape}; it must be ({s.shape[1]},), one per sample."
            )
        if np.isinf(c).any():
            raise ValueError("consensus contains infinite values; use NaN for 'not scored'.")
    return {
        "fraction": float(fraction),
        "submodels": [_lowest_counts(row, y, fraction) for row in s],
        "consensus": _lowest_counts(c, y, fraction),
    }
