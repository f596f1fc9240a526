"""Pixel-level localisation metrics: AUROC, AP, F1-max and AUPRO.

All four are read off one curve: for every threshold ``t`` (pixel is predicted anomalous when
``map >= t``) the cumulative true positives, false positives and mean per-region overlap.
Building that curve once, with one sort of all pixels, is what keeps :func:`pixel_metrics`
affordable on thousands of large maps; calling scikit-learn three times would sort (and copy
to float64) three times.

AUPRO follows the MVTec AD definition (Bergmann et al., 2021): the ground-truth masks are
split into connected components (8-connectivity, as in the MVTec and ADEval code); at each
threshold PRO is the mean, over all components of all images, of the fraction of the
component's pixels predicted anomalous; FPR is the fraction of normal pixels predicted
anomalous. The PRO-vs-FPR curve, starting at (0, 0), is integrated with the trapezoidal rule
up to ``max_fpr`` (the curve is linearly interpolated there) and divided by ``max_fpr``, so a
perfect localisation scores 1.

Two ways of building the curve:

- ``num_thresholds=None`` (default): exact, one point per distinct score. Memory peaks at
  about 30 bytes per evaluated pixel (0.4 GB for 200 maps of 256×256), on top of the maps.
- ``num_thresholds=B``: ``B`` thresholds evenly spaced between the smallest and largest
  score, accumulated image by image in histograms, so memory is ``O(B)`` plus one image.
  This is the ADEval/anomalib-style approximation, for test sets too large to sort.

``downsample=k`` evaluates every k-th row and column of each image (the same pixels for the
mask and the map), dividing time and memory by ``k**2``. Components are found at full
resolution first, so a thin defect is not split in two by the subsampling; a component none
of whose pixels is sampled drops out of the PRO average.

Maps are evaluated in float32, the precision anomaly maps are produced in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from noisyclean.metrics._validation import as_binary, as_scores, check_both_classes

logger = logging.getLogger(__name__)

_STRUCTURES = {
    4: ndimage.generate_binary_structure(2, 1),
    8: ndimage.generate_binary_structure(2, 2),
}


@dataclass(frozen=True)
class _Curve:
    """Cumulative counts at each threshold, thresholds in descending order."""

    thresholds: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    pro: np.ndarray | None  # mean per-region overlap; None when regions were not computed
    n_pos: int
    n_neg: int
    n_regions: int


# --------------------------------------------------------------------------- input handling


def _as_image_list(values: Any, name: str) -> list[Any]:
    """One 2-D array-like per image, from an ``(n, H, W)`` / ``(n, 1, H, W)`` array or a list."""
    if isinstance(values, (list, tuple)):
        items = list(values)
    else:
        arr = np.asarray(values)
        if arr.ndim == 2:
            items = [arr]
        elif arr.ndim == 3:
            items = list(arr)
        elif arr.ndim == 4 and arr.shape[1] == 1:
            items = list(arr[:, 0])
        else:
            raise ValueError(
                f"{name} must be (n, H, W), (n, 1, H, W), (H, W) or a list of (H, W) arrays; "
                f"got shape {arr.shape}."
            )
    out = []
    for i, item in enumerate(items):
        shape = np.shape(item)
        if len(shape) == 3 and shape[0] == 1:
            item = np.asarray(item)[0]
        elif len(shape) != 2:
            raise ValueError(f"{name}[{i}] must be a 2-D (H, W) array, got shape {shape}.")
        out.append(item)
    return out


def _pairs(masks: Any, maps: Any) -> tuple[list[Any], list[Any]]:
    mask_list = _as_image_list(masks, "masks")
    map_list = _as_image_list(maps, "maps")
    if len(mask_list) != len(map_list):
        raise ValueError(
            f"there are {len(mask_list)} masks but {len(map_list)} anomaly maps; "
            "give one mask per map, in the same order."
        )
    if not mask_list:
        raise ValueError("there are no images to evaluate.")
    for i, (m, a) in enumerate(zip(mask_list, map_list, strict=True)):
        if np.shape(m) != np.shape(a):
            raise ValueError(
                f"image {i}: the mask is {np.shape(m)} but the anomaly map is {np.shape(a)}. "
                "Resize the anomaly maps to the mask resolution (e.g. bilinear "
                "torch.nn.functional.interpolate) before evaluating."
            )
    return mask_list, map_list


def _check_options(downsample: int, num_thresholds: int | None, connectivity: int) -> None:
    if not isinstance(downsample, (int, np.integer)) or downsample < 1:
        raise ValueError(f"downsample must be an integer >= 1, got {downsample!r}.")
    if num_thresholds is not None and (
        not isinstance(num_thresholds, (int, np.integer)) or num_thresholds < 2
    ):
        raise ValueError(
            f"num_thresholds must be None (exact) or an integer >= 2, got {num_thresholds!r}."
        )
    if connectivity not in _STRUCTURES:
        raise ValueError(f"connectivity must be 4 or 8, got {connectivity!r}.")


def _images(
    mask_list: list[Any],
    map_list: list[Any],
    downsample: int,
    connectivity: int | None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]]:
    """Per image: flat float32 scores, flat bool labels, flat region ids, inverse region sizes.

    Region ids are 1..n (0 for normal pixels) and ``inv_sizes[id] = 1 / |region|`` (counted
    after subsampling, ``inv_sizes[0] = 0``). Summing ``inv_sizes[id]`` over the pixels
    predicted anomalous and dividing by the number of regions gives the mean per-region
    overlap. Ids rather than float weights are kept per pixel so the weights stay exact in
    float64 at 4 bytes a pixel. ``connectivity=None`` skips the region labelling.
    """
    for i, (mask, amap) in enumerate(zip(mask_list, map_list, strict=True)):
        m = as_binary(mask, f"masks[{i}]")
        a = as_scores(amap, f"maps[{i}]", dtype=np.float32)
        regions = inv_sizes = None
        if connectivity is not None:
            labelled, n_labels = ndimage.label(m, structure=_STRUCTURES[connectivity])
            regions = labelled[::downsample, ::downsample].ravel().astype(np.int32, copy=False)
            sizes = np.bincount(regions, minlength=n_labels + 1)
            sizes[0] = 0
            inv_sizes = np.zeros(sizes.shape, dtype=np.float64)
            np.divide(1.0, sizes, out=inv_sizes, where=sizes > 0)
        m = m[::downsample, ::downsample].ravel()
        a = a[::downsample, ::downsample].ravel()
        yield a, m, regions, inv_sizes


def _count_regions(inv_sizes: np.ndarray) -> int:
    return int(np.count_nonzero(inv_sizes))


# --------------------------------------------------------------------------- curve building


def _exact_curve(mask_list, map_list, downsample, connectivity) -> _Curve:
    sizes = [
        len(range(0, s[0], downsample)) * len(range(0, s[1], downsample))
        for s in (np.shape(m) for m in mask_list)
    ]
    total = int(sum(sizes))
    if total == 0:
        raise ValueError("the anomaly maps contain no pixels.")
    logger.debug("exact pixel curve over %d pixels of %d images", total, len(sizes))
    scores = np.empty(total, dtype=np.float32)
    labels = np.empty(total, dtype=bool)
    with_regions = connectivity is not None
    id_dtype = np.int64 if total >= 2**31 else np.int32
    region_ids = np.zeros(total, dtype=id_dtype) if with_regions else None
    inv_parts = [np.zeros(1)]  # global id 0: normal pixel, weight 0
    offset = 0
    start = 0
    for a, m, regions, inv in _images(mask_list, map_list, downsample, connectivity):
        stop = start + a.size
        scores[start:stop] = a
        labels[start:stop] = m
        if with_regions:
            region_ids[start:stop] = np.where(regions > 0, regions + offset, 0)
            inv_parts.append(inv[1:])
            offset += inv.size - 1
        start = stop
    inv_sizes = np.concatenate(inv_parts)
    n_regions = _count_regions(inv_sizes)

    n_pos = int(labels.sum())
    # The steps below free each temporary as soon as it is used: the peak is about 30 bytes
    # a pixel, most of it the sort permutation.
    order = np.argsort(scores)[::-1]  # descending; ties are grouped below, order irrelevant
    thresholds = scores[order]
    del scores
    count_dtype = np.int64 if total >= 2**31 else np.int32
    # Last index of each run of equal scores: one curve point per distinct threshold.
    ends = np.flatnonzero(thresholds[1:] != thresholds[:-1]).astype(count_dtype)
    ties = ends.size + 1 < total
    if ties:
        ends = np.append(ends, np.asarray(total - 1, dtype=count_dtype))
        thresholds = thresholds[ends]
    else:
        ends = None

    def at_ends(cumulative: np.ndarray) -> np.ndarray:
        return cumulative[ends] if ties else cumulative

    tps = at_ends(np.cumsum(labels[order], dtype=count_dtype))
    del labels
    fps = (ends + 1) if ties else np.arange(1, total + 1, dtype=count_dtype)
    fps -= tps  # false positives = predicted positives - true positives
    pro = None
    if region_ids is not None:
        ids = region_ids[order]
        del region_ids, order
        weights = inv_sizes[ids]
        del ids
        pro = at_ends(np.cumsum(weights, out=weights))
        pro = pro / n_regions if n_regions else pro
    return _Curve(thresholds, tps, fps, pro, n_pos, total - n_pos, n_regions)


def _binned_curve(mask_list, map_list, downsample, connectivity, num_thresholds) -> _Curve:
    lo, hi = np.inf, -np.inf
    for i, amap in enumerate(map_list):
        a = as_scores(amap, f"maps[{i}]", dtype=np.float32)[::downsample, ::downsample]
        if a.size:
            lo, hi = min(lo, float(a.min())), max(hi, float(a.max()))
    if not np.isfinite(lo):
        raise ValueError("the anomaly maps contain no pixels.")
    # Thresholds ascending; a pixel belongs to bin j when thresholds[j] <= score < thresholds[j+1].
    thresholds = np.linspace(lo, hi, num_thresholds) if hi > lo else np.array([lo])
    n_bins = thresholds.size
    hist_pos = np.zeros(n_bins, dtype=np.int64)
    hist_neg = np.zeros(n_bins, dtype=np.int64)
    hist_w = np.zeros(n_bins, dtype=np.float64)
    n_regions = 0
    for a, m, regions, inv in _images(mask_list, map_list, downsample, connectivity):
        idx = np.searchsorted(thresholds, a.astype(np.float64), side="right") - 1
        hist_pos += np.bincount(idx[m], minlength=n_bins)
        hist_neg += np.bincount(idx[~m], minlength=n_bins)
        if regions is not None:
            hist_w += np.bincount(idx[m], weights=inv[regions[m]], minlength=n_bins)
            n_regions += _count_regions(inv)
    tps = np.cumsum(hist_pos[::-1])
    fps = np.cumsum(hist_neg[::-1])
    pro = None
    if connectivity is not None:
        pro = np.cumsum(hist_w[::-1])
        pro = pro / n_regions if n_regions else pro
    n_pos = int(tps[-1])
    return _Curve(thresholds[::-1], tps, fps, pro, n_pos, int(fps[-1]), n_regions)


def _curve(
    masks: Any,
    maps: Any,
    *,
    num_thresholds: int | None,
    downsample: int,
    what: str,
    connectivity: int | None = None,
) -> _Curve:
    _check_options(downsample, num_thresholds, 8 if connectivity is None else connectivity)
    mask_list, map_list = _pairs(masks, maps)
    if num_thresholds is None:
        curve = _exact_curve(mask_list, map_list, downsample, connectivity)
    else:
        curve = _binned_curve(mask_list, map_list, downsample, connectivity, num_thresholds)
    check_both_classes(curve.n_pos, curve.n_neg, what, unit="pixel")
    return curve


# --------------------------------------------------------------------------- curve → number


# The curve can hold one point per pixel; these work through it in blocks so that turning it
# into numbers never needs more than a few megabytes on top of the curve itself.
_BLOCK = 1 << 20


def _blocks(n: int) -> Iterator[slice]:
    for start in range(0, n, _BLOCK):
        yield slice(start, min(n, start + _BLOCK))


def _trapezoid(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) * 0.5))


def _auroc_from(c: _Curve) -> float:
    area, px, py = 0.0, 0.0, 0.0  # the curve starts at (0, 0)
    for b in _blocks(c.tps.size):
        x = c.fps[b] / c.n_neg
        y = c.tps[b] / c.n_pos
        area += _trapezoid(np.concatenate([[px], x]), np.concatenate([[py], y]))
        px, py = x[-1], y[-1]
    return area


def _ap_from(c: _Curve) -> float:
    ap, prev_recall = 0.0, 0.0
    for b in _blocks(c.tps.size):
        tps = c.tps[b].astype(np.float64)
        predicted = tps + c.fps[b]
        precision = np.divide(tps, predicted, out=np.zeros_like(tps), where=predicted > 0)
        recall = tps / c.n_pos
        ap += float(np.sum(np.diff(recall, prepend=prev_recall) * precision))
        prev_recall = recall[-1]
    return ap


def _f1_from(c: _Curve) -> tuple[float, float]:
    best, best_t = -1.0, float("nan")
    for b in _blocks(c.tps.size):
        tps = c.tps[b].astype(np.float64)
        f1 = 2.0 * tps / (tps + c.fps[b] + c.n_pos)
        i = int(np.argmax(f1))
        if f1[i] > best:
            best, best_t = float(f1[i]), float(c.thresholds[b][i])
    return best, best_t


def _aupro_from(c: _Curve, max_fpr: float) -> float:
    assert c.pro is not None
    if c.n_regions == 0:
        raise ValueError(
            "AUPRO is undefined: no ground-truth region has a pixel left to evaluate "
            "(lower downsample)."
        )
    # Only the points up to the first one beyond max_fpr matter. Where a point lying exactly
    # on max_fpr falls is irrelevant: the curve is continuous there.
    k = int(np.searchsorted(c.fps, max_fpr * c.n_neg, side="right"))
    stop = min(k + 1, c.fps.size)
    x = np.concatenate([[0.0], c.fps[:stop] / c.n_neg])
    y = np.concatenate([[0.0], c.pro[:stop]])
    k = int(np.searchsorted(x, max_fpr, side="right"))  # x[:k] <= max_fpr
    area = _trapezoid(x[:k], y[:k])
    if k < x.size and x[k - 1] < max_fpr:
        frac = (max_fpr - x[k - 1]) / (x[k] - x[k - 1])
        y_end = y[k - 1] + frac * (y[k] - y[k - 1])
        area += (max_fpr - x[k - 1]) * (y[k - 1] + y_end) * 0.5
    return float(area / max_fpr)


def _check_max_fpr(max_fpr: float) -> None:
    if not 0.0 < max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in (0, 1], got {max_fpr!r}.")


# --------------------------------------------------------------------------- public API

Maps = Any  # (n, H, W) / (n, 1, H, W) array, or a sequence of (H, W) arrays
Masks = Any


def pixel_auroc(
    masks: Masks, maps: Maps, *, num_thresholds: int | None = None, downsample: int = 1
) -> float:
    """Area under the ROC curve over all pixels of all images (masks: 1 = defect)."""
    c = _curve(masks, maps, num_thresholds=num_thresholds, downsample=downsample,
               what="pixel AUROC")
    return _auroc_from(c)


def pixel_ap(
    masks: Masks, maps: Maps, *, num_thresholds: int | None = None, downsample: int = 1
) -> float:
    """Average precision over all pixels, ``sum_i (R_i - R_{i-1}) P_i`` as in scikit-learn."""
    c = _curve(masks, maps, num_thresholds=num_thresholds, downsample=downsample,
               what="pixel AP")
    return _ap_from(c)


def pixel_f1_max(
    masks: Masks,
    maps: Maps,
    *,
    num_thresholds: int | None = None,
    downsample: int = 1,
    return_threshold: bool = False,
) -> float | tuple[float, float]:
    """The best pixel F1 over every threshold ``map >= t`` (optionally with that ``t``)."""
    c = _curve(masks, maps, num_thresholds=num_thresholds, downsample=downsample,
               what="pixel F1-max")
    f1, t = _f1_from(c)
    return (f1, t) if return_threshold else f1


def aupro(
    masks: Masks,
    maps: Maps,
    *,
    max_fpr: float = 0.3,
    num_thresholds: int | None = None,
    downsample: int = 1,
    connectivity: int = 8,
) -> float:
    """Normalised area under the per-region-overlap curve up to ``max_fpr`` (MVTec AD).

    See the module docstring for the exact definition. ``connectivity`` (8 or 4) decides
    whether diagonal neighbours belong to the same defect region.
    """
    _check_max_fpr(max_fpr)
    c = _curve(
        masks,
        maps,
        num_thresholds=num_thresholds,
        downsample=downsample,
        connectivity=connectivity,
        what="AUPRO",
    )
    return _aupro_from(c, max_fpr)


def pixel_metrics(
    masks: Masks,
    maps: Maps,
    *,
    max_fpr: float = 0.3,
    num_thresholds: int | None = None,
    downsample: int = 1,
    connectivity: int = 8,
) -> dict[str, float]:
    """All pixel metrics from one pass: ``pixel_auroc``, ``pixel_ap``, ``pixel_f1_max``,
    ``pixel_aupro``."""
    _check_max_fpr(max_fpr)
    c = _curve(
        masks,
        maps,
        num_thresholds=num_thresholds,
        downsample=downsample,
        connectivity=connectivity,
        what="pixel metrics",
    )
    return {
        "pixel_auroc": _auroc_from(c),
        "pixel_ap": _ap_from(c),
        "pixel_f1_max": _f1_from(c)[0],
        "pixel_aupro": _aupro_from(c, max_fpr),
    }


__all__ = [
    "aupro",
    "pixel_ap",
    "pixel_auroc",
    "pixel_f1_max",
    "pixel_metrics",
]
