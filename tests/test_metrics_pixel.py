"""Pixel-level metrics against slow, obviously-correct reference implementations.

The AUPRO reference follows the MVTec AD definition literally: for each threshold it builds
the binary prediction, labels the ground-truth regions with ``scipy.ndimage.label``, averages
the per-region overlap, and integrates the (FPR, PRO) points with the trapezoidal rule up to
FPR 0.3, interpolating the curve at 0.3.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, roc_auc_score

from noisyclean.metrics import (
    aupro,
    pixel_ap,
    pixel_auroc,
    pixel_f1_max,
    pixel_metrics,
)

# --------------------------------------------------------------------------- references


def ref_auroc(labels, scores):
    """Share of (defect, normal) pixel pairs ranked correctly, ties counting one half."""
    labels = np.asarray(labels, bool)
    pos, neg = np.asarray(scores)[labels], np.asarray(scores)[~labels]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(wins) / (pos.size * neg.size)


def ref_ap(labels, scores):
    """Sum over distinct thresholds (descending) of (recall gain) × precision."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores)
    ap, prev_recall = 0.0, 0.0
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        tp = int((pred & labels).sum())
        recall = tp / int(labels.sum())
        ap += (recall - prev_recall) * tp / int(pred.sum())
        prev_recall = recall
    return ap


def ref_f1_max(labels, scores):
    """Best F1 = 2TP / (2TP + FP + FN) over every threshold ``score >= t``."""
    labels, scores = np.asarray(labels, bool), np.asarray(scores)
    best = 0.0
    for t in np.unique(scores):
        pred = scores >= t
        tp = int((pred & labels).sum())
        best = max(best, 2 * tp / (int(pred.sum()) + int(labels.sum())))
    return best


def ref_aupro(masks, maps, max_fpr=0.3, thresholds=None, connectivity=8):
    """AUPRO by explicit thresholds (default: every distinct score) and region labelling."""
    structure = np.ones((3, 3)) if connectivity == 8 else None  # None: scipy's 4-connectivity
    regions = []  # (image index, boolean region mask)
    for i, mask in enumerate(masks):
        labelled, n = ndimage.label(mask, structure=structure)
        regions += [(i, labelled == k) for k in range(1, n + 1)]
    normal_pixels = sum(int((~np.asarray(m, bool)).sum()) for m in masks)
    if thresholds is None:
        thresholds = np.unique(np.concatenate([np.ravel(a) for a in maps]))
    xs, ys = [0.0], [0.0]
    for t in sorted(thresholds, reverse=True):
        preds = [np.asarray(a) >= t for a in maps]
        fp = sum(int((p & ~np.asarray(m, bool)).sum()) for p, m in zip(preds, masks, strict=True))
        overlaps = [preds[i][region].mean() for i, region in regions]
        xs.append(fp / normal_pixels)
        ys.append(float(np.mean(overlaps)))
    xs, ys = np.array(xs), np.array(ys)
    inside = xs <= max_fpr
    x_in, y_in = list(xs[inside]), list(ys[inside])
    if x_in[-1] < max_fpr:
        j = int(np.argmax(xs > max_fpr))  # first point beyond the limit
        x0, y0, x1, y1 = x_in[-1], y_in[-1], xs[j], ys[j]
        x_in.append(max_fpr)
        y_in.append(y0 + (y1 - y0) * (max_fpr - x0) / (x1 - x0))
    return float(np.trapezoid(y_in, x_in)) / max_fpr


def _fixture(seed, n=4, size=12, quantise=False):
    """Masks with several regions (one diagonal-only pair), maps correlated with them."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((n, size, size), bool)
    for i in range(n - 1):  # the last image is normal
        for _ in range(rng.integers(1, 3)):
            r, c = rng.integers(0, size - 3, 2)
            h, w = rng.integers(1, 4, 2)
            masks[i, r : r + h, c : c + w] = True
    masks[0, size - 2, size - 2] = masks[0, size - 1, size - 1] = True  # touch diagonally
    maps = (rng.random(masks.shape) + 0.6 * masks).astype(np.float32)
    if quantise:  # exact binary fractions: many ties, also across normal and defect pixels
        maps = (np.floor(maps * 8) / 8).astype(np.float32)
    return masks, maps


def _flat(masks, maps):
    return np.concatenate([np.ravel(m) for m in masks]), np.concatenate([np.ravel(a) for a in maps])


# --------------------------------------------------------------------------- agreement


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("quantise", [False, True])
def test_exact_metrics_match_references(seed, quantise):
    masks, maps = _fixture(seed, quantise=quantise)
    y, s = _flat(masks, maps)
    got = pixel_metrics(masks, maps)
    assert got["pixel_auroc"] == pytest.approx(ref_auroc(y, s), abs=1e-6)
    assert got["pixel_ap"] == pytest.approx(ref_ap(y, s), abs=1e-6)
    assert got["pixel_f1_max"] == pytest.approx(ref_f1_max(y, s), abs=1e-6)
    assert got["pixel_aupro"] == pytest.approx(ref_aupro(masks, maps), abs=1e-6)
    # the single-metric functions give the same numbers, and agree with scikit-learn
    assert pixel_auroc(masks, maps) == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert pixel_ap(masks, maps) == pytest.approx(average_precision_score(y, s), abs=1e-9)
    assert pixel_f1_max(masks, maps) == got["pixel_f1_max"]
    assert aupro(masks, maps) == got["pixel_aupro"]


@pytest.mark.parametrize("max_fpr", [0.05, 0.3, 1.0])
def test_aupro_other_limits_and_4_connectivity(max_fpr):
    masks, maps = _fixture(7)
    assert aupro(masks, maps, max_fpr=max_fpr) == pytest.approx(
        ref_aupro(masks, maps, max_fpr=max_fpr), abs=1e-6
    )
    assert aupro(masks, maps, max_fpr=max_fpr, connectivity=4) == pytest.approx(
        ref_aupro(masks, maps, max_fpr=max_fpr, connectivity=4), abs=1e-6
    )


def test_binned_curve_agrees_with_exact_reference():
    masks, maps = _fixture(3, n=5, size=24)
    y, s = _flat(masks, maps)
    got = pixel_metrics(masks, maps, num_thresholds=20_000)
    assert got["pixel_aupro"] == pytest.approx(ref_aupro(masks, maps), abs=1e-3)
    assert got["pixel_auroc"] == pytest.approx(ref_auroc(y, s), abs=1e-3)
    assert got["pixel_ap"] == pytest.approx(ref_ap(y, s), abs=1e-3)
    assert got["pixel_f1_max"] == pytest.approx(ref_f1_max(y, s), abs=1e-3)


def test_binned_curve_on_the_score_grid_is_exact():
    # scores are multiples of 1/8 in [0, 1.5]: thresholds linspace(0, 1.5, 13) hit every one
    masks, maps = _fixture(4, quantise=True)
    assert maps.min() == 0.0 and maps.max() == 1.5
    exact = pixel_metrics(masks, maps)
    binned = pixel_metrics(masks, maps, num_thresholds=13)
    for key in exact:
        assert binned[key] == pytest.approx(exact[key], abs=1e-9)


def test_aupro_with_few_reference_thresholds_still_within_1e_3():
    # the MVTec-style reference on an evenly spaced grid converges to the exact value
    masks, maps = _fixture(5, n=3, size=16)
    grid = np.linspace(maps.min(), maps.max(), 4000)
    assert aupro(masks, maps) == pytest.approx(ref_aupro(masks, maps, thresholds=grid), abs=1e-3)


# --------------------------------------------------------------------------- hand-computed


def _hand_case():
    """10 normal pixels; region A (2 px, image 0), region B (2 px touching diagonally, image 1).

    Thresholds from the top: 0.95 hits A once → (FPR 0, PRO 1/4); 0.9 a normal → (0.1, 1/4);
    0.85 hits B once → (0.1, 1/2); 0.8 a normal → (0.2, 1/2); 0.7 ties two normals with A's
    second pixel → (0.4, 3/4). Up to FPR 0.3 (PRO 0.625 there by interpolation):
    0.1·0.25 + 0.1·0.5 + 0.1·(0.5 + 0.625)/2 = 0.13125, / 0.3 = 0.4375.
    With 4-connectivity B is two regions, PRO runs 1/6, 1/6, 1/2, 1/2, 2/3 and the area is
    (4 + 12 + 13) / 240, / 0.3 = 29/72.
    """
    m0 = np.array([[1, 1, 0], [0, 0, 0]], bool)
    a0 = np.array([[0.95, 0.7, 0.9], [0.7, 0.1, 0.1]], np.float32)
    m1 = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], bool)
    a1 = np.array([[0.85, 0.8, 0.7, 0.2], [0.1, 0.05, 0.1, 0.1]], np.float32)
    return [m0, m1], [a0, a1]


def test_hand_computed_aupro():
    masks, maps = _hand_case()  # images of different sizes, given as lists
    assert aupro(masks, maps) == pytest.approx(0.4375, abs=1e-12)
    assert aupro(masks, maps, connectivity=4) == pytest.approx(29 / 72, abs=1e-12)
    assert ref_aupro(masks, maps) == pytest.approx(0.4375, abs=1e-12)
    assert ref_aupro(masks, maps, connectivity=4) == pytest.approx(29 / 72, abs=1e-12)


def test_downsample_keeps_regions_found_at_full_resolution():
    # A U-shape joined by row 1; every other row/column drops row 1, leaving two arms apart.
    mask = np.zeros((5, 5), bool)
    mask[:, 0] = True  # left arm, sampled at rows 0, 2, 4
    mask[1, :] = True  # the joint, not sampled
    mask[:3, 4] = True  # right arm, sampled at rows 0, 2
    amap = np.zeros((5, 5), np.float32)
    amap[:, 0] = 1.0
    # Sampled: 5 defect pixels of ONE region, 4 normal pixels at score 0. The curve goes
    # (0, 0) → (0, 3/5) → (1, 1): PRO(0.3) = 0.72, area 0.3·(0.6 + 0.72)/2, / 0.3 = 0.66.
    # Had the arms been labelled after subsampling, PRO would start at 1/2 (0.575).
    assert aupro([mask], [amap], downsample=2) == pytest.approx(0.66, abs=1e-12)
    assert ref_aupro([mask[::2, ::2]], [amap[::2, ::2]]) == pytest.approx(0.575, abs=1e-12)


def test_downsample_equals_evaluating_the_strided_pixels():
    masks, maps = _fixture(8, size=16)
    y, s = _flat(masks[:, ::2, ::2], maps[:, ::2, ::2])
    got = pixel_metrics(masks, maps, downsample=2)
    assert got["pixel_auroc"] == pytest.approx(ref_auroc(y, s), abs=1e-6)
    assert got["pixel_ap"] == pytest.approx(ref_ap(y, s), abs=1e-6)


def test_perfect_localisation_scores_one():
    masks, _ = _fixture(2)
    maps = masks.astype(np.float32)
    got = pixel_metrics(masks, maps)
    assert got == pytest.approx(
        {"pixel_auroc": 1.0, "pixel_ap": 1.0, "pixel_f1_max": 1.0, "pixel_aupro": 1.0}
    )


def test_input_layouts_are_equivalent():
    masks, maps = _fixture(1)
    base = pixel_metrics(masks, maps)
    assert pixel_metrics(masks[:, None], maps[:, None]) == base  # (n, 1, H, W)
    assert pixel_metrics(list(masks.astype(np.uint8)), list(maps.astype(np.float64))) == base
    f1, t = pixel_f1_max(masks, maps, return_threshold=True)
    pred = maps >= t
    assert 2 * (pred & masks).sum() / (pred.sum() + masks.sum()) == pytest.approx(f1)


# --------------------------------------------------------------------------- ADEval


def test_aupro_agrees_with_adeval():
    adeval = pytest.importorskip("adeval")
    masks, maps = _fixture(6, n=4, size=32)
    p_auroc, _, p_aupro = adeval.auroc_aupr_aupro(maps, masks.astype(np.uint8))
    got = pixel_metrics(masks, maps)
    # ADEval bins scores into 1000 strips and interpolates at 0.3 with its own rule.
    assert got["pixel_aupro"] == pytest.approx(p_aupro, abs=2e-3)
    assert got["pixel_auroc"] == pytest.approx(p_auroc, abs=2e-3)


# --------------------------------------------------------------------------- errors


def test_no_defect_pixel_is_an_error_that_says_so():
    masks = np.zeros((2, 4, 4), bool)
    maps = np.random.default_rng(0).random((2, 4, 4))
    with pytest.raises(ValueError, match=r"undefined.*every pixel is normal"):
        pixel_auroc(masks, maps)
    with pytest.raises(ValueError, match="AUPRO is undefined"):
        aupro(masks, maps)
    with pytest.raises(ValueError, match="every pixel is anomalous"):
        pixel_metrics(~masks, maps)


def test_shape_and_count_mismatches():
    masks, maps = _fixture(0)
    with pytest.raises(ValueError, match="image 0: the mask is \\(12, 12\\) but the anomaly map"):
        pixel_metrics(masks, maps[:, :8])
    with pytest.raises(ValueError, match="4 masks but 3 anomaly maps"):
        aupro(masks, maps[:3])
    with pytest.raises(ValueError, match="must be \\(n, H, W\\)"):
        pixel_auroc(masks.ravel(), maps.ravel())


def test_nan_and_bad_masks_are_refused():
    masks, maps = _fixture(0)
    maps = maps.copy()
    maps[2, 3, 3] = np.nan
    with pytest.raises(ValueError, match=r"maps\[2\] contains 1 NaN"):
        pixel_metrics(masks, maps)
    with pytest.raises(ValueError, match=r"maps\[2\] contains 1 NaN"):
        pixel_metrics(masks, maps, num_thresholds=100)
    with pytest.raises(ValueError, match="0/255"):
        pixel_auroc(masks.astype(np.uint8) * 255, np.nan_to_num(maps))


def test_bad_options_are_refused():
    masks, maps = _fixture(0)
    with pytest.raises(ValueError, match="max_fpr"):
        aupro(masks, maps, max_fpr=0.0)
    with pytest.raises(ValueError, match="downsample"):
        pixel_metrics(masks, maps, downsample=0)
    with pytest.raises(ValueError, match="num_thresholds"):
        pixel_metrics(masks, maps, num_thresholds=1)
    with pytest.raises(ValueError, match="connectivity"):
        aupro(masks, maps, connectivity=6)
    with pytest.raises(ValueError, match="connectivity"):
        pixel_metrics(masks, maps, connectivity=0)
    with pytest.raises(ValueError, match="no pixels"):
        pixel_auroc(np.zeros((2, 0, 3), bool), np.zeros((2, 0, 3)))
