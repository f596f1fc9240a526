"""The numbers behind the report: threshold, agreement, galleries and purity.

Pure numpy (and :mod:`noisyclean.metrics`), no plotting and no HTML, so every figure the
report shows can be checked in a test and reused by other tools. Everything is computed on
all samples; only the galleries are capped, because a page with 100,000 thumbnails helps
nobody while a histogram of 100,000 scores is as cheap as one of 100.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import rankdata

from noisyclean.metrics import purification_report, submodel_selection_counts


def keep_threshold(consensus: np.ndarray, ranking: np.ndarray, n_keep: int) -> float:
    """The consensus value that separates kept from dropped samples.

    Halfway between the highest kept score and the lowest dropped one, so a line drawn there
    on a histogram falls between the two groups; the highest score when nothing is dropped.
    """
    c = np.asarray(consensus, dtype=np.float64)
    last_kept = c[ranking[n_keep - 1]]
    if n_keep >= c.size:
        return float(last_kept)
    return float((last_kept + c[ranking[n_keep]]) / 2.0)


def spearman_matrix(scores: np.ndarray, min_common: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation between every pair of sub-models, and the samples it used.

    Each pair is compared on the samples both scored (out-of-bag scoring leaves NaN where a
    sub-model trained on a sample). Returns ``(rho, n_common)``, both ``(m, m)``; ``rho`` is
    NaN where fewer than ``min_common`` samples are shared or one side is constant.
    """
    s = np.asarray(scores, dtype=np.float64)
    m = s.shape[0]
    rho = np.full((m, m), np.nan)
    common = np.zeros((m, m), dtype=np.int64)
    seen = ~np.isnan(s)
    for i in range(m):
        for j in range(i, m):
            both = seen[i] & seen[j]
            k = int(both.sum())
            common[i, j] = common[j, i] = k
            if k < min_common:
                continue
            a, b = rankdata(s[i, both]), rankdata(s[j, both])
            sa, sb = a.std(), b.std()
            if sa == 0 or sb == 0:
                continue
            r = float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))
            rho[i, j] = rho[j, i] = min(1.0, max(-1.0, r))
    return rho, common


def mean_off_diagonal(matrix: np.ndarray) -> float:
    """The mean of the finite off-diagonal entries (NaN when there are none)."""
    m = matrix.shape[0]
    off = matrix[~np.eye(m, dtype=bool)]
    off = off[np.isfinite(off)]
    return float(off.mean()) if off.size else math.nan


def percentile_ranks(scores: np.ndarray) -> np.ndarray:
    """Each score's percentile (0-100) among the samples its sub-model scored; NaN stays NaN.

    This is how the galleries show "how sure" every sub-model was about one image: 100 means
    it found no sample more anomalous.
    """
    s = np.asarray(scores, dtype=np.float64)
    out = np.full(s.shape, np.nan)
    for j, row in enumerate(s):
        seen = ~np.isnan(row)
        if seen.any():
            out[j, seen] = 100.0 * rankdata(row[seen], method="max") / seen.sum()
    return out


@dataclass(frozen=True)
class GalleryPlan:
    """Which samples the two galleries show, in display order, and how many were left out."""

    dropped: np.ndarray
    borderline: np.ndarray
    n_dropped_total: int
    n_kept_total: int

    @property
    def all_indices(self) -> np.ndarray:
        return np.concatenate([self.dropped, self.borderline]).astype(np.int64)


def plan_galleries(ranking: np.ndarray, n_keep: int, max_dropped: int,
                   n_borderline: int) -> GalleryPlan:
    """The dropped samples, most anomalous first (at most ``max_dropped``), and the kept
    samples just under the threshold, closest to it first (at most ``n_borderline``)."""
    ranking = np.asarray(ranking, dtype=np.int64)
    dropped = ranking[n_keep:][::-1][: max(0, int(max_dropped))]
    borderline = ranking[:n_keep][::-1][: max(0, int(n_borderline))]
    return GalleryPlan(dropped=dropped, borderline=borderline,
                       n_dropped_total=int(ranking.size - n_keep), n_kept_total=int(n_keep))


@dataclass
class Purity:
    """The purification measured against known labels (only built when every label is known)."""

    summary: dict[str, Any]
    selection: dict[str, Any]
    defect_types: list[dict[str, Any]] = field(default_factory=list)


def known_labels(labels: Any, n: int) -> np.ndarray | None:
    """``labels`` as an ``int`` array when every one of the ``n`` is 0 or 1, else ``None``.

    A single unknown label (-1) makes the anomaly fraction before and after meaningless, so
    the report then leaves the purity table out rather than show a guess.
    """
    if labels is None:
        return None
    y = np.asarray(labels).reshape(-1)
    if y.size != n:
        raise ValueError(
            f"labels has {y.size} entries but the run purified {n} samples; pass one label per "
            "sample, in dataset order (0 normal, 1 anomaly, -1 unknown)."
        )
    if not np.isin(y, (0, 1)).all():
        return None
    return y.astype(np.int64)


def purity(labels: np.ndarray, keep_mask: np.ndarray, scores: np.ndarray,
           consensus: np.ndarray, defect_types: list[str | None] | None = None) -> Purity:
    """Anomaly fraction before and after, recall, and the paper's Figure-4 counts."""
    summary = purification_report(labels, keep_mask)
    fraction = max(int(keep_mask.sum()), 1) / labels.size
    selection = submodel_selection_counts(scores, labels, fraction, consensus=consensus)
    rows: list[dict[str, Any]] = []
    if defect_types is not None:
        types = np.asarray([t if t is not None else "" for t in defect_types], dtype=object)
        for t in sorted({str(t) for t, y in zip(types, labels) if y == 1}):
            sel = (labels == 1) & (types == t)
            total = int(sel.sum())
            dropped = int((sel & ~keep_mask).sum())
            rows.append({"type": t or "(untyped)", "total": total, "dropped": dropped,
                         "kept": total - dropped, "recall": dropped / total if total else math.nan})
    return Purity(summary=summary, selection=selection, defect_types=rows)
