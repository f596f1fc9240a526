"""Turning noisyclean image datasets into the batches anomalib models expect.

A noisyclean image dataset yields ``(3, H, W)`` float tensors, ImageNet-normalised by
default (the convention its feature detectors share). anomalib models expect the opposite:
raw ``[0, 1]`` images, which their ``PreProcessor`` resizes and normalises itself. Feeding
normalised tensors would normalise twice, so the normalisation is undone here, exactly (it
is affine), before anomalib sees the images.

Which normalisation a dataset used is read from its ``normalize`` attribute or its
``transform.normalize`` (noisyclean's ``ImageTransform``), of the dataset or, for a view, of
its root: ``None`` means ``[0, 1]`` images, a ``(mean, std)`` pair or ``"imagenet"`` means
that normalisation. A dataset that says nothing (a plain list of
tensors) is taken to follow noisyclean's convention, ImageNet; pass
``input_normalization=None`` to the detector for raw ``[0, 1]`` tensors.
"""

from __future__ import annotations

import os
from typing import Any

from noisyclean.samples import root_dataset

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
AUTO = "auto"

Stats = tuple[tuple[float, ...], tuple[float, ...]]
_MISSING = object()


def parse_normalization(value: Any) -> Stats | None:
    """``None``, ``"imagenet"``, a ``(mean, std)`` pair or a torchvision ``Normalize``."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.lower() == "imagenet":
            return IMAGENET_MEAN, IMAGENET_STD
        raise ValueError(
            f"unknown input normalization {value!r}; use 'imagenet', None (images in [0, 1]), "
            "'auto' or a (mean, std) pair."
        )
    mean, std = getattr(value, "mean", _MISSING), getattr(value, "std", _MISSING)
    if mean is _MISSING or std is _MISSING:
        try:
            mean, std = value
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"cannot read an input normalization from {value!r}; give None, 'imagenet' or "
                "a (mean, std) pair of 3-sequences."
            ) from exc
    stats = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if len(stats[0]) != 3 or len(stats[1]) != 3 or min(stats[1]) <= 0:
        raise ValueError(f"a normalization needs 3 means and 3 positive stds, got {value!r}")
    return stats


def dataset_normalization(dataset: Any, requested: Any = AUTO) -> Stats | None:
    """The normalisation to undo for ``dataset`` (see the module docstring).

    With ``"auto"``, the dataset (or the root of a view) is asked, in this order: its
    ``normalize`` attribute, then its ``transform.normalize`` (noisyclean's
    ``ImageTransform``). A dataset that declares neither is taken to be ImageNet-normalised.
    """
    if not (isinstance(requested, str) and requested == AUTO):
        return parse_normalization(requested)
    for candidate in (dataset, root_dataset(dataset)):
        for owner in (candidate, getattr(candidate, "transform", None)):
            declared = getattr(owner, "normalize", _MISSING) if owner is not None else _MISSING
            if declared is _MISSING or (callable(declared) and not hasattr(declared, "mean")):
                continue  # absent, or a method that happens to be called "normalize"
            return parse_normalization(declared)
    return IMAGENET_MEAN, IMAGENET_STD


class RawImages:
    """``dataset`` as ``[0, 1]`` float tensors ``(3, H, W)``: what anomalib wants.

    A torch-style map dataset (``__len__`` and ``__getitem__``), so a ``DataLoader`` with
    workers can read it. ``uint8`` items are scaled by 1/255 and never de-normalised.
    """

    def __init__(self, dataset: Any, stats: Stats | None):
        self.dataset = dataset
        self.stats = stats

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        import torch

        item = self.dataset[index]
        if isinstance(item, (tuple, list, dict)):
            raise TypeError(
                f"sample {index} is a {type(item).__name__}; a noisyclean image dataset yields "
                "the image tensor (3, H, W) alone. Wrap your dataset so that __getitem__ "
                "returns only the image."
            )
        x = torch.as_tensor(item)
        if x.ndim != 3 or x.shape[0] != 3:
            raise ValueError(
                f"sample {index} has shape {tuple(x.shape)}; anomalib models need RGB image "
                "tensors of shape (3, H, W)."
            )
        if x.dtype == torch.uint8:
            return x.float().div_(255.0)
        x = x.float()
        if self.stats is not None:
            mean = torch.tensor(self.stats[0], dtype=x.dtype).view(3, 1, 1)
            std = torch.tensor(self.stats[1], dtype=x.dtype).view(3, 1, 1)
            x = x * std + mean
        return x


class TrainItems:
    """:class:`RawImages` as anomalib ``ImageItem``\\ s (label 0), for ``Engine.fit``."""

    def __init__(self, images: RawImages):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Any:
        import torch
        from anomalib.data import ImageItem

        return ImageItem(image=self.images[index], gt_label=torch.tensor(0))


def available_cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def default_num_workers() -> int:
    """Loader workers for this machine: none on 1-2 cores (they only add overhead there),
    else half the cores, at most 8, leaving the rest to the model's own threads."""
    n = available_cpus()
    return 0 if n <= 2 else min(8, n // 2)

