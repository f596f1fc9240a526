"""Gallery thumbnails: a dataset item back to pixels, an anomaly map on top, a mask outline.

Thumbnails are made from ``dataset[i]``, the very tensor the detector saw, so an anomaly map
(always at the item's size) lands exactly on its pixels whatever resize or crop the dataset
applied. The dataset's normalisation is undone when it is known (a noisyclean
:class:`~noisyclean.data.ImageTransform`); otherwise each image is stretched to its own range.
Items that are not images (feature vectors) have no thumbnail.
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import numpy as np

from noisyclean.samples import root_dataset

MASK_COLOUR = (57, 255, 20)
"""Ground-truth outlines are drawn in this bright green, a colour no heat map uses."""


def normalisation_of(dataset: Any) -> tuple[np.ndarray, np.ndarray] | str | None:
    """``(mean, std)`` the dataset's items were normalised with, ``None`` for none, or
    ``"unknown"`` when the dataset does not say (then thumbnails are range-stretched)."""
    from noisyclean.data.transforms import IMAGENET_MEAN, IMAGENET_STD, ImageTransform

    transform = getattr(root_dataset(dataset), "transform", None)
    if not isinstance(transform, ImageTransform):
        return "unknown"
    norm = transform.normalize
    if norm is None:
        return None
    if norm == "imagenet":
        return np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD)
    return np.asarray(norm[0]), np.asarray(norm[1])


def item_to_rgb(item: Any, norm: tuple[np.ndarray, np.ndarray] | str | None) -> np.ndarray | None:
    """An ``(H, W, 3)`` uint8 picture of a dataset item, or ``None`` when it is no image.

    Accepts ``(3, H, W)``/``(1, H, W)`` tensors or arrays, ``(H, W, 3)`` arrays, ``(H, W)``
    greyscale and PIL images, alone or first in an ``(image, target)`` pair.
    """
    if isinstance(item, (tuple, list)) and item:  # (image, target) pairs of torch datasets
        item = item[0]
    if hasattr(item, "detach"):
        item = item.detach().cpu()
    arr = np.asarray(item)
    if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2 and min(arr.shape) >= 4:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 4:
        return None
    arr = arr[:, :, :3]
    if arr.dtype == np.uint8:
        out = arr
    else:
        x = arr.astype(np.float64)
        if isinstance(norm, tuple) and x.shape[2] == 3:
            x = x * norm[1] + norm[0]
        lo, hi = float(np.nanmin(x)), float(np.nanmax(x))
        if norm == "unknown" and not (lo >= 0.0 and hi <= 1.0):
            x = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
        out = np.round(np.clip(np.nan_to_num(x), 0.0, 1.0) * 255.0).astype(np.uint8)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    return np.ascontiguousarray(out)


def map_scale(maps: list[np.ndarray]) -> tuple[float, float]:
    """One colour scale for every map in a gallery, so that maps compare across images.

    From the 90th percentile of all their pixels (most of the surface shows no colour, so
    the picture stays readable) to the highest 99.9th percentile of any one map.
    """
    finite = [m[np.isfinite(m)] for m in maps if m is not None and np.isfinite(m).any()]
    if not finite:
        return 0.0, 1.0
    sample = np.concatenate([f[:: max(1, f.size // 20_000)] for f in finite])
    lo = float(np.percentile(sample, 90))
    hi = max(float(np.percentile(f, 99.9)) for f in finite)
    return lo, hi if hi > lo else lo + 1.0


def _resize(rgb: np.ndarray, size: int, aspect: float | None = None) -> Any:
    """At most ``size`` pixels on the longest side; with ``aspect`` (the original width over
    height) the picture is given its original shape back, which a square resize took away."""
    from PIL import Image

    im = Image.fromarray(rgb)
    w, h = im.size
    if aspect is not None and aspect > 0:
        longest = min(size, max(w, h))
        w, h = (longest, longest / aspect) if aspect >= 1 else (longest * aspect, longest)
    scale = min(1.0, size / max(w, h))
    target = (max(1, round(w * scale)), max(1, round(h * scale)))
    return im if target == im.size else im.resize(target, Image.Resampling.LANCZOS)


def original_aspect(dataset: Any, i: int) -> float | None:
    """Width over height of sample ``i``'s image file, when the dataset's transform only
    resized it (a crop shows part of the image, whose shape is then the crop's)."""
    paths = getattr(dataset, "paths", None)
    crop = getattr(getattr(dataset, "transform", None), "crop_size", None)
    path = paths[i] if paths is not None and crop is None else None
    if not isinstance(path, (str, os.PathLike)):  # in-memory images have no file
        return None
    from PIL import Image

    try:
        with Image.open(path) as im:  # reads the header only
            return im.size[0] / im.size[1]
    except (OSError, ValueError, ZeroDivisionError):
        return None


def _resize_plane(plane: np.ndarray, wh: tuple[int, int], nearest: bool) -> np.ndarray:
    from PIL import Image

    resample = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    im = Image.fromarray(plane.astype(np.float32), mode="F").resize(wh, resample)
    return np.asarray(im, dtype=np.float64)


def overlay(base: Any, amap: np.ndarray, scale: tuple[float, float]) -> Any:
    """``base`` (PIL RGB) with the anomaly map drawn over it in the ``inferno`` colours
    (red to yellow); the map is opaque where it is high and transparent where it is low."""
    from matplotlib import colormaps
    from PIL import Image

    a = _resize_plane(np.nan_to_num(np.asarray(amap, dtype=np.float64)), base.size, False)
    lo, hi = scale
    v = np.clip((a - lo) / (hi - lo), 0.0, 1.0)
    colour = colormaps["inferno"](0.35 + 0.65 * v)[:, :, :3]
    alpha = (0.75 * np.sqrt(v))[:, :, None]
    mixed = np.asarray(base, dtype=np.float64) / 255.0 * (1 - alpha) + colour * alpha
    return Image.fromarray(np.round(mixed * 255).astype(np.uint8))


def outline(image: Any, mask: np.ndarray) -> Any:
    """``image`` (PIL RGB) with the boundary of the boolean ``mask`` drawn on it."""
    from PIL import Image

    m = _resize_plane(np.asarray(mask, dtype=np.float32), image.size, True) > 0.5
    if not m.any():
        return image
    inner = m.copy()
    inner[1:, :] &= m[:-1, :]
    inner[:-1, :] &= m[1:, :]
    inner[:, 1:] &= m[:, :-1]
    inner[:, :-1] &= m[:, 1:]
    edge = m & ~inner
    arr = np.array(image)
    arr[edge] = MASK_COLOUR
    return Image.fromarray(arr)


def encode(image: Any, fmt: str = "JPEG", quality: int = 82) -> bytes:
    """PIL image -> JPEG (thumbnails; small) or PNG bytes."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        image.save(buf, format="JPEG", quality=quality, optimize=True)
    else:
        image.save(buf, format=fmt, optimize=True)
    return buf.getvalue()


def data_uri(data: bytes, mime: str) -> str:
    """Bytes as a ``data:`` URI, so the HTML needs no other file and no network."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail(rgb: np.ndarray, size: int, amap: np.ndarray | None = None,
              scale: tuple[float, float] = (0.0, 1.0),
              mask: np.ndarray | None = None,
              aspect: float | None = None) -> tuple[str, str | None]:
    """The gallery pictures of one sample as data URIs: ``(image, image_with_map)``.

    The ground-truth ``mask``, when given, is outlined on both; the second picture is
    ``None`` without a map.
    """
    base = _resize(rgb, size, aspect)
    plain = outline(base, mask) if mask is not None else base
    with_map = None
    if amap is not None:
        shown = overlay(base, amap, scale)
        if mask is not None:
            shown = outline(shown, mask)
        with_map = data_uri(encode(shown), "image/jpeg")
    return data_uri(encode(plain), "image/jpeg"), with_map
