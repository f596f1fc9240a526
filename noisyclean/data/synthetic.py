"""Synthetic defect data from scikit-image's bundled textures, for the demo and for tests.

Normals are random crops of one texture (``skimage.data.brick`` by default, CC0, shipped
inside scikit-image, so nothing is downloaded). Anomalies are normal crops with one
synthetic defect painted in, and the exact mask of the pixels it changed:

- ``scratch``: a thin dark or bright line;
- ``blob``: an ellipse where the texture is darkened or brightened;
- ``colour``: a coloured stain (the textures are grey, so any colour is foreign);
- ``cutpaste``: a rectangle of another texture (``grass``, ``gravel``) pasted in.

Generation is deterministic per seed and fast: about 200 images of 128 px a second.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from noisyclean.data.base import ANOMALY, NORMAL
from noisyclean.data.memory import InMemoryImageDataset
from noisyclean.data.transforms import ImageTransform

TEXTURES = ("brick", "grass", "gravel")
DEFECT_TYPES = ("scratch", "blob", "colour", "cutpaste")
_VERSION = 1


def load_texture(name: str) -> np.ndarray:
    """A bundled scikit-image texture as a float32 ``(512, 512)`` array in ``[0, 1]``."""
    if name not in TEXTURES:
        raise ValueError(f"texture must be one of {TEXTURES}; got {name!r}")
    try:
        import skimage.data
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("synthetic data needs scikit-image: pip install "
                          "'noisyclean[images]'") from exc
    img = np.asarray(getattr(skimage.data, name)(), dtype=np.float32)
    if img.ndim == 3:
        img = img[..., :3].mean(axis=2)
    return img / 255.0


def _fit_texture(tex: np.ndarray, size: int) -> np.ndarray:
    """Upscale ``tex`` (nearest-free, bilinear via PIL) when crops of ``size`` do not fit."""
    if min(tex.shape) >= size + 16:
        return tex
    from PIL import Image

    side = math.ceil((size + 16) / min(tex.shape) * max(tex.shape))
    im = Image.fromarray(np.round(tex * 255).astype(np.uint8)).resize((side, side),
                                                                       Image.Resampling.BILINEAR)
    return np.asarray(im, dtype=np.float32) / 255.0


def _crop(tex: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    y = int(rng.integers(0, tex.shape[0] - size + 1))
    x = int(rng.integers(0, tex.shape[1] - size + 1))
    return tex[y:y + size, x:x + size]


def _normal(tex: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """A grey ``(size, size)`` float crop with a random flip and a slight gain."""
    crop = _crop(tex, size, rng)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    return np.clip(crop * rng.uniform(0.95, 1.05), 0.0, 1.0)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    return yy + 0.5, xx + 0.5


def _ellipse(size: int, rng: np.random.Generator, rmin: float, rmax: float) -> np.ndarray:
    yy, xx = _grid(size)
    ry, rx = rng.uniform(rmin, rmax, 2) * size
    cy, cx = rng.uniform(0.2, 0.8, 2) * size
    t = rng.uniform(0, math.pi)
    dy, dx = yy - cy, xx - cx
    u = dx * math.cos(t) + dy * math.sin(t)
    v = -dx * math.sin(t) + dy * math.cos(t)
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _scratch(grey: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = grey.shape[0]
    yy, xx = _grid(size)
    cy, cx = rng.uniform(0.25, 0.75, 2) * size
    t = rng.uniform(0, math.pi)
    half_len = rng.uniform(0.15, 0.3) * size
    half_w = max(1.0, rng.uniform(0.008, 0.016) * size)
    dy, dx = yy - cy, xx - cx
    along = dx * math.cos(t) + dy * math.sin(t)
    across = -dx * math.sin(t) + dy * math.cos(t)
    mask = (np.abs(along) <= half_len) & (np.abs(across) <= half_w)
    value = rng.uniform(0.02, 0.12) if rng.random() < 0.5 else rng.uniform(0.88, 0.98)
    out = np.repeat(grey[..., None], 3, axis=2)
    out[mask] = value
    return out, mask


def _blob(grey: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = _ellipse(grey.shape[0], rng, 0.07, 0.14)
    out = grey.copy()
    if rng.random() < 0.5:
        out[mask] = out[mask] * rng.uniform(0.3, 0.5)
    else:
        out[mask] = 1.0 - (1.0 - out[mask]) * rng.uniform(0.3, 0.5)
    return np.repeat(out[..., None], 3, axis=2), mask


def _colour(grey: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    mask = _ellipse(grey.shape[0], rng, 0.07, 0.14)
    out = np.repeat(grey[..., None], 3, axis=2)
    hue = rng.uniform(0, 2 * math.pi)
    tint = 0.5 + 0.5 * np.array([math.cos(hue), math.cos(hue - 2.094), math.cos(hue + 2.094)])
    strength = rng.uniform(0.6, 0.8)
    out[mask] = out[mask] * (1 - strength) + tint.astype(np.float32) * strength
    return out, mask


def _cutpaste(grey: np.ndarray, rng: np.random.Generator, sources: Sequence[np.ndarray],
              rotate: bool) -> tuple[np.ndarray, np.ndarray]:
    size = grey.shape[0]
    h, w = (rng.uniform(0.18, 0.3, 2) * size).astype(int)
    y = int(rng.integers(0, size - h + 1))
    x = int(rng.integers(0, size - w + 1))
    src = sources[int(rng.integers(len(sources)))]
    patch = _crop(src, max(h, w), rng)
    if rotate:  # a patch of the normal texture itself: rotate it so it does not blend in
        patch = np.rot90(patch)
    patch = patch[:h, :w]
    out = grey.copy()
    out[y:y + h, x:x + w] = patch
    mask = np.zeros((size, size), dtype=bool)
    mask[y:y + h, x:x + w] = True
    return np.repeat(out[..., None], 3, axis=2), mask


def _to_uint8(img: np.ndarray) -> np.ndarray:
    return np.round(np.clip(img, 0.0, 1.0) * 255.0).astype(np.uint8)


def make_texture_dataset(
    out_dir: str | os.PathLike | None = None,
    n_normal: int = 200,
    n_anomalous: int = 20,
    *,
    image_size: int = 128,
    textures: Sequence[str] = TEXTURES,
    defect_types: Sequence[str] = DEFECT_TYPES,
    seed: int = 0,
    prefix: str = "synthetic",
    shuffle: bool = True,
    transform: ImageTransform | None = None,
    normalize: Any = "imagenet",
    overwrite: bool = False,
) -> InMemoryImageDataset:
    """A contaminated texture dataset with exact defect masks, generated in memory.

    Args:
        out_dir: when given, the images are also written there as PNGs (see
            :meth:`InMemoryImageDataset.write`: ``<out_dir>/<prefix>/*.png``, masks under
            ``<out_dir>/masks/``, and ``labels.csv``).
        n_normal, n_anomalous: how many normal and defective images.
        image_size: the side of the square images, in pixels.
        textures: the first is the normal texture; the others are pasted in by the
            ``cutpaste`` defect (with only one texture, a rotated patch of it is pasted).
        defect_types: which defects to draw from :data:`DEFECT_TYPES`; the anomalies are
            split evenly over them.
        seed: everything is deterministic per seed.
        prefix: the id folder: ids are ``"<prefix>/normal_0001.png"``,
            ``"<prefix>/scratch_0001.png"``...
        shuffle: mix the order of normals and anomalies (the ids still say which is which;
            only evaluation code should read them). Without it normals come first.
        transform, normalize: the preprocessing of the returned dataset; by default no
            resize (the images already have ``image_size``) and ImageNet normalisation.
        overwrite: passed to :meth:`InMemoryImageDataset.write`.

    Returns:
        An :class:`InMemoryImageDataset` with labels, defect types and masks.
    """
    if n_normal < 0 or n_anomalous < 0 or n_normal + n_anomalous == 0:
        raise ValueError("n_normal and n_anomalous must be >= 0, and not both 0")
    if int(image_size) < 8:
        raise ValueError(f"image_size must be at least 8; got {image_size}")
    textures = tuple(textures)
    if not textures:
        raise ValueError(f"textures must name at least one of {TEXTURES}")
    bad = [d for d in defect_types if d not in DEFECT_TYPES]
    if bad or (n_anomalous and not defect_types):
        raise ValueError(f"defect_types must be drawn from {DEFECT_TYPES}; got {defect_types}")
    size = int(image_size)
    texs = [_fit_texture(load_texture(t), size) for t in textures]
    base, others = texs[0], (texs[1:] or texs[:1])
    rng = np.random.default_rng(seed)

    counts = {t: n_anomalous // len(defect_types) for t in defect_types} if n_anomalous else {}
    for t in list(defect_types)[: n_anomalous - sum(counts.values())]:
        counts[t] += 1
    images: list[np.ndarray] = []
    masks: list[np.ndarray | None] = []
    ids: list[str] = []
    labels: list[int] = []
    types: list[str | None] = []
    for k in range(n_normal):
        images.append(_to_uint8(np.repeat(_normal(base, size, rng)[..., None], 3, axis=2)))
        masks.append(None)
        ids.append(f"{prefix}/normal_{k + 1:04d}.png")
        labels.append(NORMAL)
        types.append(None)
    painters = {"scratch": _scratch, "blob": _blob, "colour": _colour}
    for dtype in defect_types:
        for k in range(counts.get(dtype, 0)):
            grey = _normal(base, size, rng)
            if dtype == "cutpaste":
                img, mask = _cutpaste(grey, rng, others, rotate=len(texs) == 1)
            else:
                img, mask = painters[dtype](grey, rng)
            images.append(_to_uint8(img))
            masks.append(mask)
            ids.append(f"{prefix}/{dtype}_{k + 1:04d}.png")
            labels.append(ANOMALY)
            types.append(dtype)
    order = rng.permutation(len(images)) if shuffle else np.arange(len(images))
    config = {"v": _VERSION, "n_normal": n_normal, "n_anomalous": n_anomalous, "size": size,
              "textures": list(textures), "defects": list(defect_types), "seed": seed,
              "prefix": prefix, "shuffle": shuffle}
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]
    key = f"synthetic:{digest}"
    dataset = InMemoryImageDataset(
        [images[i] for i in order],
        [ids[i] for i in order],
        labels=[labels[i] for i in order],
        defect_types=[types[i] for i in order],
        masks=[masks[i] for i in order],
        key=key,
        transform=transform if transform is not None else ImageTransform(
            image_size=None, normalize=normalize),
    )
    if out_dir is not None:
        dataset.write(out_dir, overwrite=overwrite)
    return dataset
