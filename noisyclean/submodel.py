"""One stage-1 job: train a fresh detector on a subset, score the samples it must score.

This function is all an executor runs, so serial, process and distributed executors give
the same rows by construction: the job carries its own seed and its own indices.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from noisyclean.protocol import apply_params, submodel_params
from noisyclean.samples import Subset


@dataclass
class SubmodelJob:
    """Everything sub-model ``index`` needs: where it trains, what it scores, its seed."""

    index: int
    factory: Callable[[], Any]
    dataset: Any
    train_indices: np.ndarray
    score_indices: np.ndarray
    n: int
    seed: int
    params: dict[str, Any] | None = None  # set after the detector's suggestion; None: nothing


def seed_everything(seed: int) -> None:
    """Seed Python, numpy's legacy global state and torch (only if torch is in use)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - detectors that use the global state
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.manual_seed(seed)


def check_scores(scores: Any, expected: int, who: str) -> np.ndarray:
    """Validate a detector's ``score`` output, naming the culprit when it is wrong."""
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim != 1 or arr.shape[0] != expected:
        arr = arr.reshape(-1) if arr.size == expected else arr
    if arr.ndim != 1 or arr.shape[0] != expected:
        raise ValueError(
            f"{who} returned scores of shape {np.shape(scores)} for {expected} samples; "
            "Detector.score(dataset) must return one score per sample, shape (len(dataset),)."
        )
    bad = ~np.isfinite(arr)
    if bad.any():
        n_nan = int(np.isnan(arr).sum())
        raise ValueError(
            f"{who} returned {int(bad.sum())} non-finite score(s) ({n_nan} NaN, "
            f"{int(bad.sum()) - n_nan} inf) out of {expected}. Scores must be finite floats; "
            "check the detector's training (e.g. too few samples for its settings)."
        )
    return arr


def build_detector(factory: Callable[[], Any], who: str) -> Any:
    detector = factory()
    if not all(callable(getattr(detector, name, None)) for name in ("fit", "score")):
        raise TypeError(
            f"the detector factory for {who} returned {type(detector).__name__}, which has no "
            "fit(dataset) and score(dataset) methods; see the Detector protocol."
        )
    return detector


def run_submodel(job: SubmodelJob) -> np.ndarray:
    """Train sub-model ``job.index`` and return its ``(n,)`` score row (NaN where unscored)."""
    who = f"sub-model {job.index}"
    seed_everything(job.seed)
    detector = build_detector(job.factory, who)
    if job.params is not None:
        share = len(job.train_indices) / max(1, job.n)
        apply_params(detector, {**submodel_params(detector, share), **job.params}, who)
    detector.fit(Subset(job.dataset, job.train_indices))
    scores = detector.score(Subset(job.dataset, job.score_indices))
    row = np.full(job.n, np.nan, dtype=np.float64)
    row[job.score_indices] = check_scores(scores, len(job.score_indices), who)
    return row
