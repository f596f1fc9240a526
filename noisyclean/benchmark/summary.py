"""The numbers the page reports, computed from rows: means over seeds, the gap closed, wins.

Functions here take the rows of one data set, or of a family (every PIPED class): there the
mean over all rows is the mean over the classes of their means over seeds, because every
class runs the same seeds. Rows are selected with :func:`rows_of`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from noisyclean.benchmark.conditions import NOISY, ORACLE, baseline_name
from noisyclean.benchmark.datasets import family_of

METRIC_COLUMNS = (
    ("image_auroc", "image AUROC"), ("image_ap", "image AP"), ("image_f1_max", "image F1-max"),
    ("pixel_auroc", "pixel AUROC"), ("pixel_aupro", "AUPRO"),
    ("selection_auroc", "selection AUROC"), ("consensus_auroc", "consensus AUROC"),
    ("kept_anomaly_fraction", "kept anomaly frac."), ("anomaly_recall", "anomaly recall"),
    ("stage1_s", "stage 1 s"), ("stage2_s", "stage 2 s"), ("plain_s", "plain s"),
)

Summary = dict[tuple[float, str], dict[str, tuple[float, float, int]]]


def rows_of(rows: Iterable[dict[str, Any]], dataset: str) -> list[dict[str, Any]]:
    """The rows of ``dataset``: one data set's name, or a family (``"piped"``) for all of
    its data sets. Rows without ``dataset`` (older files) count as Magnetic Tile."""
    def name(r: dict[str, Any]) -> str:
        return r.get("dataset", "magnetic-tile")

    if "/" in dataset:
        return [r for r in rows if name(r) == dataset]
    return [r for r in rows if family_of(name(r)) == dataset]


def summarize(rows: Sequence[dict[str, Any]]) -> Summary:
    """Mean, standard deviation and count over the rows, per (noise, condition) and metric;
    NaN values (no anomaly to recall at noise 0) are left out."""
    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["noise"], r["condition"]), []).append(r)
    out: Summary = {}
    for key, group in groups.items():
        stats = {}
        for col, _ in METRIC_COLUMNS:
            vals = np.array([g[col] for g in group if g.get(col) is not None], float)
            vals = vals[~np.isnan(vals)]
            if vals.size:
                stats[col] = (float(vals.mean()), float(vals.std()), int(vals.size))
        out[key] = stats
    return out


def mean_of(summary: Summary, noise: float, condition: str,
            column: str = "image_auroc") -> float | None:
    """The mean of ``column`` for ``condition`` at ``noise``, or ``None`` when not run."""
    stats = summary.get((noise, condition), {})
    return stats[column][0] if column in stats else None


def baselines_of(summary: Summary, condition: str) -> tuple[str, str]:
    """The noisy and oracle conditions ``condition`` is measured against: its own when the
    grid ran them (an ablation that changes the detector), else the default ones."""
    own = baseline_name(condition, NOISY), baseline_name(condition, ORACLE)
    if any(key[1] == own[0] for key in summary):
        return own
    return NOISY, ORACLE


def gap_closed(summary: Summary, noise: float, condition: str) -> float | None:
    """The share of the noisy-to-oracle image-AUROC gap that ``condition`` closes; ``None``
    when a side did not run or there is no gap (noise 0)."""
    noisy_name, oracle_name = baselines_of(summary, condition)
    noisy = mean_of(summary, noise, noisy_name)
    oracle = mean_of(summary, noise, oracle_name)
    ours = mean_of(summary, noise, condition)
    if noisy is None or oracle is None or ours is None:
        return None
    gap = oracle - noisy
    return None if abs(gap) < 1e-9 else (ours - noisy) / gap


def change_from_oracle(summary: Summary, noise: float, condition: str) -> float | None:
    """``condition``'s image AUROC minus the oracle's (the loss on clean data, when negative)."""
    oracle = mean_of(summary, noise, baselines_of(summary, condition)[1])
    ours = mean_of(summary, noise, condition)
    return None if oracle is None or ours is None else ours - oracle


def paired_wins(rows: Sequence[dict[str, Any]], condition: str, against: str,
                noises: Iterable[float] | None = None,
                column: str = "image_auroc") -> tuple[int, int, float] | None:
    """Split by split (same data set, noise ratio and seed), how often ``condition`` beats
    ``against`` on ``column``: ``(wins, splits, mean difference)``; ``None`` if no split has
    both. ``noises`` limits the splits (default: the contaminated ones, noise > 0)."""
    def by_split(name: str) -> dict[tuple, float]:
        return {(r.get("dataset"), r["noise"], r["seed"]): float(r[column]) for r in rows
                if r["condition"] == name and r.get(column) is not None}

    ours, theirs = by_split(condition), by_split(against)
    allowed = None if noises is None else set(noises)
    keys = [k for k in ours if k in theirs
            and (k[1] in allowed if allowed is not None else k[1] > 0)]
    if not keys:
        return None
    diffs = np.array([ours[k] - theirs[k] for k in keys])
    return int((diffs > 0).sum()), len(keys), float(diffs.mean())
