"""Image-level detection metrics: AUROC, average precision and F1-max.

These delegate to scikit-learn, the reference everyone compares against, and add only the
input checks that scikit-learn leaves loose (unknown labels, NaN scores, a single class).
Scores follow the detector protocol: higher means more anomalous.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from noisyclean.metrics._validation import (
    as_binary,
    as_scores,
    check_1d_pair,
    check_both_classes,
)


def _prepare(labels: Any, scores: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
    y = as_binary(labels, "labels")
    s = as_scores(scores, "scores")
    check_1d_pair(y, s, what)
    n_pos = int(y.sum())
    check_both_classes(n_pos, y.size - n_pos, what)
    return y, s


def image_auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve of image scores against labels (1 = anomalous)."""
    y, s = _prepare(labels, scores, "image AUROC")
    return float(roc_auc_score(y, s))


def image_ap(labels: Any, scores: Any) -> float:
    """Average precision, ``sum_i (R_i - R_{i-1}) P_i`` (scikit-learn's step definition)."""
    y, s = _prepare(labels, scores, "image AP")
    return float(average_precision_score(y, s))


def f1_max(
    labels: Any, scores: Any, *, return_threshold: bool = False
) -> float | tuple[float, float]:
    """The best F1 over every threshold ``score >= t``.

    With ``return_threshold=True`` also returns the threshold that reaches it, so a user can
    turn scores into decisions with the operating point the metric reports.
    """
    y, s = _prepare(labels, scores, "image F1-max")
    precision, recall, thresholds = precision_recall_curve(y, s)
    # The last point (precision 1, recall 0) has no threshold and an F1 of 0.
    p, r = precision[:-1], recall[:-1]
    denom = p + r
    f1 = np.divide(2 * p * r, denom, out=np.zeros_like(denom), where=denom > 0)
    best = int(np.argmax(f1))
    if return_threshold:
        return float(f1[best]), float(thresholds[best])
    return float(f1[best])


def image_metrics(labels: Any, scores: Any) -> dict[str, float]:
    """All image-level metrics at once: ``image_auroc``, ``image_ap``, ``image_f1_max``."""
    y, s = _prepare(labels, scores, "image metrics")
    return {
        "image_auroc": image_auroc(y, s),
        "image_ap": image_ap(y, s),
        "image_f1_max": float(f1_max(y, s)),
    }
