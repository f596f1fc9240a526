"""Image-level metrics against slow, obviously-correct reference implementations."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from noisyclean.metrics import f1_max, image_ap, image_auroc, image_metrics

# --------------------------------------------------------------------------- references


def ref_auroc(labels, scores):
    """P(score of a random anomaly > score of a random normal), ties counting one half."""
    pos = [s for y, s in zip(labels, scores, strict=True) if y]
    neg = [s for y, s in zip(labels, scores, strict=True) if not y]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def ref_ap(labels, scores):
    """Sum over distinct thresholds (descending) of (recall gain) × precision."""
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, float)
    ap, prev_recall = 0.0, 0.0
    for t in sorted(set(scores.tolist()), reverse=True):
        pred = scores >= t
        tp = int((pred & labels).sum())
        precision = tp / int(pred.sum())
        recall = tp / int(labels.sum())
        ap += (recall - prev_recall) * precision
        prev_recall = recall
    return ap


def ref_f1_max(labels, scores):
    """Best F1 = 2TP / (2TP + FP + FN) over every threshold ``score >= t``."""
    labels = np.asarray(labels, bool)
    scores = np.asarray(scores, float)
    best = 0.0
    for t in set(scores.tolist()):
        pred = scores >= t
        tp = int((pred & labels).sum())
        fp = int((pred & ~labels).sum())
        fn = int((~pred & labels).sum())
        best = max(best, 2 * tp / (2 * tp + fp + fn))
    return best


def _fixture(seed, n=60, quantise=False):
    rng = np.random.default_rng(seed)
    labels = rng.random(n) < 0.3
    labels[:2] = [True, False]
    scores = rng.normal(size=n) + 1.2 * labels
    if quantise:  # many ties, also between a normal and an anomaly
        scores = np.round(scores * 2) / 2
    return labels, scores


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("quantise", [False, True])
def test_image_metrics_match_references(seed, quantise):
    labels, scores = _fixture(seed, quantise=quantise)
    assert image_auroc(labels, scores) == pytest.approx(ref_auroc(labels, scores), abs=1e-6)
    assert image_ap(labels, scores) == pytest.approx(ref_ap(labels, scores), abs=1e-6)
    assert f1_max(labels, scores) == pytest.approx(ref_f1_max(labels, scores), abs=1e-6)
    got = image_metrics(labels.astype(int), scores)
    assert set(got) == {"image_auroc", "image_ap", "image_f1_max"}
    assert got["image_auroc"] == pytest.approx(ref_auroc(labels, scores), abs=1e-6)
    assert got["image_ap"] == pytest.approx(ref_ap(labels, scores), abs=1e-6)
    assert got["image_f1_max"] == pytest.approx(ref_f1_max(labels, scores), abs=1e-6)


def test_hand_computed_small_case():
    labels = [0, 0, 1, 1, 0, 1]
    scores = [0.1, 0.4, 0.35, 0.8, 0.2, 0.4]
    # pairs (pos, neg): 0.35 beats 0.1, 0.2 (2); 0.8 beats all 3; 0.4 beats 0.1, 0.2, ties 0.4
    assert image_auroc(labels, scores) == pytest.approx((2 + 3 + 2.5) / 9)
    # t=0.8: P=1 R=1/3; t=0.4: P=2/3 R=2/3; t=0.35: P=3/4 R=1
    assert image_ap(labels, scores) == pytest.approx(1 / 3 + (1 / 3) * (2 / 3) + (1 / 3) * 0.75)
    # best at t=0.35: TP=3, FP=1 → F1 = 6/7
    f1, t = f1_max(labels, scores, return_threshold=True)
    assert f1 == pytest.approx(6 / 7)
    assert t == pytest.approx(0.35)


def test_perfect_and_inverted_ranking():
    labels = [0, 0, 1, 1]
    assert image_auroc(labels, [0, 1, 2, 3]) == 1.0
    assert image_auroc(labels, [3, 2, 1, 0]) == 0.0
    assert f1_max(labels, [0, 1, 2, 3]) == 1.0


# --------------------------------------------------------------------------- errors


def test_single_class_is_an_error_that_says_so():
    with pytest.raises(ValueError, match=r"undefined.*every sample is normal"):
        image_auroc([0, 0, 0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"undefined.*every sample is anomalous"):
        image_metrics([1, 1], [0.1, 0.2])


def test_nan_score_is_an_error():
    with pytest.raises(ValueError, match="1 NaN"):
        image_auroc([0, 1, 1], [0.1, np.nan, 0.3])
    with pytest.raises(ValueError, match="infinite"):
        f1_max([0, 1, 1], [0.1, np.inf, 0.3])


def test_mismatched_lengths_and_shapes():
    with pytest.raises(ValueError, match="labels has 3 entries but scores has 2"):
        image_ap([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="must be 1-D"):
        image_auroc([[0, 1]], [[0.1, 0.2]])
    with pytest.raises(ValueError, match="no samples"):
        image_auroc([], [])


def test_unknown_labels_are_refused():
    with pytest.raises(ValueError, match="unknown"):
        image_auroc([0, 1, -1], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="0/1"):
        image_auroc([0, 1, 2], [0.1, 0.2, 0.3])
