"""Getting images from any dataset into Dinomaly's input: size, normalisation, batches.

Items may be noisyclean image tensors ``(3, H, W)`` (ImageNet-normalised, the library's
default), ``(1, H, W)`` or ``(H, W)`` greyscale tensors, numpy arrays, PIL images, or
``(image, ...)`` tuples from torchvision-style datasets. Each is brought to the model's
input the reference's way: resize to ``image_size`` (square) and centre-crop to
``crop_size``; an item already at ``crop_size`` is taken as preprocessed and left alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from noisyclean_dinomaly import config


def as_image_tensor(item: Any) -> torch.Tensor:
    """One dataset item as a float ``(3, H, W)`` tensor (values untouched, uint8 -> [0, 1])."""
    if isinstance(item, (tuple, list)) and item and not isinstance(item[0], (int, float)):
        item = item[0]
    if not isinstance(item, torch.Tensor):
        if hasattr(item, "mode") and hasattr(item, "size"):  # PIL image
            item = np.asarray(item.convert("RGB"))
        arr = np.asarray(item)
        if arr.ndim == 3 and arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3):
            arr = arr.transpose(2, 0, 1)  # HWC -> CHW
        item = torch.from_numpy(np.ascontiguousarray(arr))
    t = item
    if t.dtype == torch.uint8:
        t = t.float() / 255.0
    elif not t.is_floating_point():
        t = t.float()
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[0] not in (1, 3):
        raise ValueError(
            f"expected an image (3, H, W), (1, H, W) or (H, W); got shape {tuple(t.shape)}"
        )
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    return t.float()


class Preprocessor:
    """Resize + centre crop + normalisation to the model's ImageNet-normalised input.

    Args:
        image_size: the square resize before cropping (448 in the reference).
        crop_size: the centre crop (392 in the reference) and the model's input size.
        input_normalization: how incoming float images are normalised: ``"imagenet"``
            (noisyclean datasets' default) or ``None`` for plain ``[0, 1]`` values.
    """

    def __init__(self, image_size: int, crop_size: int, input_normalization: str | None):
        if crop_size > image_size:
            raise ValueError(f"crop_size {crop_size} is larger than image_size {image_size}")
        if input_normalization not in ("imagenet", None):
            raise ValueError(
                "input_normalization must be 'imagenet' (noisyclean datasets) or None "
                f"(images in [0, 1]); got {input_normalization!r}"
            )
        self.image_size = int(image_size)
        self.crop_size = int(crop_size)
        self.input_normalization = input_normalization
        self._mean = torch.tensor(config.IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(config.IMAGENET_STD).view(3, 1, 1)

    @property
    def key(self) -> str:
        return f"resize{self.image_size}-crop{self.crop_size}-in:{self.input_normalization}"

    def __call__(self, item: Any) -> torch.Tensor:
        t = as_image_tensor(item)
        if self.input_normalization is None:
            t = (t - self._mean) / self._std
        h, w = t.shape[-2:]
        c = self.crop_size
        if (h, w) != (c, c):
            if (h, w) != (self.image_size, self.image_size):
                t = F.interpolate(
                    t[None], size=(self.image_size, self.image_size), mode="bilinear",
                    align_corners=False, antialias=True,
                )[0]
            top = round((self.image_size - c) / 2.0)
            t = t[:, top : top + c, top : top + c]
        return t.contiguous()


def content_id(image: torch.Tensor) -> str:
    """A sample id from the pixels, for datasets without ids (lists, arrays, tensors)."""
    arr = np.ascontiguousarray(image.detach().cpu().numpy())
    h = hashlib.sha1(str(arr.shape).encode())
    h.update(arr.tobytes())
    return "sha1:" + h.hexdigest()


class PreparedImages(torch.utils.data.Dataset):
    """``dataset[positions[i]]`` preprocessed, for a ``DataLoader`` (workers, pinned memory)."""

    def __init__(self, dataset: Any, positions: Sequence[int], preprocess: Preprocessor):
        self.dataset = dataset
        self.positions = list(positions)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.preprocess(self.dataset[int(self.positions[i])])


def image_batches(
    dataset: Any,
    positions: Sequence[int],
    preprocess: Preprocessor,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
):
    """Preprocessed image batches of ``dataset[positions]``, in order."""
    return torch.utils.data.DataLoader(
        PreparedImages(dataset, positions, preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=False,
    )
