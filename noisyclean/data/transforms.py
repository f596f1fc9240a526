"""Preprocessing shared by images and their masks: resize, centre crop, normalise, grey to RGB.

One object does both, so a mask always lands on exactly the pixels its image lands on. Its
:attr:`ImageTransform.cache_key` is a stable text description: feature caches put it in
their namespace, so changing any setting never reuses features computed under another.

torch and Pillow are imported only when an image is actually transformed, so that building a
transform (or importing :mod:`noisyclean.data`) works without the ``images`` extra.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MASK_THRESHOLD = 128
"""Mask pixels at or above this 8-bit value are defect pixels (anti-aliased edges are common)."""

_INTERPOLATIONS = ("bilinear", "bicubic", "nearest", "lanczos")
_GREY_MODES = frozenset({"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "I;16N", "F"})

Size = tuple[int, int]


def _as_size(value: Any, name: str) -> Size | None:
    """``int`` -> square ``(s, s)``; ``(h, w)`` stays; ``None`` stays."""
    if value is None:
        return None
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        h = w = int(value)
    else:
        try:
            h, w = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name} must be an int (a square side) or a (height, width) pair; got {value!r}"
            ) from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive; got {value!r}")
    return (h, w)


@dataclass(frozen=True)
class ImageTransform:
    """Turns a PIL image into a normalised ``(3, H, W)`` float32 tensor, and a mask into bools.

    Steps, in order: convert to 8-bit RGB (greyscale is replicated to three channels; 16-bit
    greyscale is scaled, not clipped), resize to ``image_size`` (an int means a square, as
    most anomaly-detection code does, so aspect ratios are not kept), centre-crop to
    ``crop_size``, scale to ``[0, 1]`` and normalise with ``normalize``.

    Masks take the same resize (nearest neighbour) and crop, then are thresholded at 128.

    Args:
        image_size: the resized size, ``int`` or ``(height, width)``; ``None`` keeps the
            original size (only sensible when every image has the same size).
        crop_size: centre crop after resizing; ``None`` for no crop.
        normalize: ``"imagenet"``, ``None`` (keep ``[0, 1]``) or ``(mean, std)`` with three
            values each.
        grayscale_to_rgb: replicate greyscale images to three channels. With ``False`` a
            greyscale image is an error, for pipelines that must only ever see colour.
        interpolation: image resampling filter: bilinear (default), bicubic, lanczos or
            nearest. Pillow's filters antialias when shrinking.
    """

    image_size: int | Size | None = 224
    crop_size: int | Size | None = None
    normalize: str | tuple[Any, Any] | None = "imagenet"
    grayscale_to_rgb: bool = True
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        size = _as_size(self.image_size, "image_size")
        crop = _as_size(self.crop_size, "crop_size")
        object.__setattr__(self, "image_size", size)
        object.__setattr__(self, "crop_size", crop)
        if size is not None and crop is not None and (crop[0] > size[0] or crop[1] > size[1]):
            raise ValueError(
                f"crop_size {crop} is larger than image_size {size}; "
                "a centre crop must fit inside the resized image"
            )
        if self.interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"interpolation must be one of {_INTERPOLATIONS}; got {self.interpolation!r}"
            )
        object.__setattr__(self, "normalize", self._check_normalize(self.normalize))

    @staticmethod
    def _check_normalize(value: Any) -> str | tuple[tuple[float, ...], tuple[float, ...]] | None:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "")):
            return None
        if isinstance(value, str):
            if value.lower() != "imagenet":
                raise ValueError(
                    f"normalize must be 'imagenet', None or a (mean, std) pair; got {value!r}"
                )
            return "imagenet"
        try:
            mean, std = value
            mean = tuple(float(v) for v in mean)
            std = tuple(float(v) for v in std)
        except (TypeError, ValueError):
            raise ValueError(
                f"normalize must be 'imagenet', None or a (mean, std) pair; got {value!r}"
            ) from None
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ValueError(f"normalize needs three means and three positive stds; got {value!r}")
        return (mean, std)

    # -- description ------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Every setting as plain JSON-ready values."""
        norm = self.normalize
        return {
            "image_size": list(self.image_size) if self.image_size else None,
            "crop_size": list(self.crop_size) if self.crop_size else None,
            "normalize": norm if norm is None or isinstance(norm, str) else [list(norm[0]),
                                                                             list(norm[1])],
            "grayscale_to_rgb": self.grayscale_to_rgb,
            "interpolation": self.interpolation,
            "mask_threshold": MASK_THRESHOLD,
        }

    @property
    def cache_key(self) -> str:
        """A stable one-line description: equal settings give equal keys, across processes."""
        return "ImageTransform/v1" + json.dumps(self.describe(), sort_keys=True,
                                                separators=(",", ":"))

    # -- geometry ---------------------------------------------------------------------
    def output_size(self, original_hw: Size) -> Size:
        """The ``(H, W)`` an image of size ``original_hw`` has after this transform."""
        h, w = self.image_size or original_hw
        if self.crop_size is not None:
            ch, cw = self.crop_size
            if ch > h or cw > w:
                raise ValueError(
                    f"crop_size {self.crop_size} does not fit an image of size {(h, w)}; "
                    "set image_size or a smaller crop_size"
                )
            return (ch, cw)
        return (h, w)

    def _crop_box(self, hw: Size) -> tuple[int, int, int, int]:
        h, w = hw
        ch, cw = self.output_size(hw) if self.crop_size is not None else (h, w)
        top = round((h - ch) / 2.0)
        left = round((w - cw) / 2.0)
        return (left, top, left + cw, top + ch)

    def _geometry(self, image: Any, resample: int) -> Any:
        if self.image_size is not None:
            h, w = self.image_size
            if image.size != (w, h):
                image = image.resize((w, h), resample=resample)
        if self.crop_size is not None:
            hw = (image.size[1], image.size[0])
            box = self._crop_box(hw)
            if box != (0, 0, hw[1], hw[0]):
                image = image.crop(box)
        return image

    # -- images -----------------------------------------------------------------------
    def to_rgb8(self, image: Any) -> Any:
        """Any PIL image as an 8-bit RGB PIL image (16-bit greyscale scaled to 8 bits)."""
        from PIL import Image

        mode = image.mode
        if mode in _GREY_MODES:
            if not self.grayscale_to_rgb:
                raise ValueError(
                    f"the image is greyscale (mode {mode}) and grayscale_to_rgb is False; "
                    "pass grayscale_to_rgb=True to replicate it to three channels"
                )
            if mode.startswith("I") or mode == "F":
                arr = np.asarray(image, dtype=np.float64)
                top = 1.0 if mode == "F" else 65535.0
                arr = np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
                image = Image.fromarray(arr)
            else:
                image = image.convert("L")
            return image.convert("RGB")
        if mode != "RGB":
            image = image.convert("RGB")
        return image

    def __call__(self, image: Any) -> Any:
        """``PIL.Image`` -> ``torch.FloatTensor`` of shape ``(3, H, W)``."""
        import torch
        from PIL import Image

        resample = {
            "bilinear": Image.Resampling.BILINEAR,
            "bicubic": Image.Resampling.BICUBIC,
            "nearest": Image.Resampling.NEAREST,
            "lanczos": Image.Resampling.LANCZOS,
        }[self.interpolation]
        image = self._geometry(self.to_rgb8(image), resample)
        arr = np.asarray(image, dtype=np.float32) / np.float32(255.0)
        if self.normalize is not None:
            mean, std = (IMAGENET_MEAN, IMAGENET_STD) if self.normalize == "imagenet" \
                else self.normalize
            arr = (arr - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
        return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))

    # -- masks ------------------------------------------------------------------------
    def mask(self, mask: Any) -> np.ndarray:
        """A PIL mask -> bool ``(H, W)`` array aligned with the transformed image.

        Palette and 1-bit masks count every non-zero index as defect; other masks are
        converted to 8-bit grey and thresholded at :data:`MASK_THRESHOLD`.
        """
        from PIL import Image

        if mask.mode == "1":
            mask = Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255)
        elif mask.mode == "P":
            mask = Image.fromarray((np.asarray(mask) > 0).astype(np.uint8) * 255)
        elif mask.mode.startswith("I") or mask.mode == "F":
            arr = np.asarray(mask, dtype=np.float64)
            top = 1.0 if mask.mode == "F" or arr.max(initial=0) <= 1 else (
                255.0 if arr.max(initial=0) <= 255 else 65535.0)
            mask = Image.fromarray(np.clip(arr / top * 255.0, 0, 255).astype(np.uint8))
        elif mask.mode != "L":
            mask = mask.convert("L")
        mask = self._geometry(mask, Image.Resampling.NEAREST)
        return np.asarray(mask) >= MASK_THRESHOLD

    def empty_mask(self, original_hw: Size) -> np.ndarray:
        """An all-false mask of the transformed size, for images without a mask."""
        return np.zeros(self.output_size(original_hw), dtype=bool)
