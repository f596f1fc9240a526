"""The MVTec AD layout: ``<category>/train/good``, ``test/<type>``, ``ground_truth/<type>``.

Masks are ``ground_truth/<type>/<stem>_mask.png``; ``good`` images have none. Sample ids are
relative to the MVTec root, for example ``bottle/test/broken_large/000.png``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from noisyclean.data.base import ANOMALY, NORMAL, ImageDataset, Sample, make_transform
from noisyclean.data.errors import LayoutError, MaskMismatchError
from noisyclean.data.files import IMAGE_EXTENSIONS, OnError, Validate, list_files
from noisyclean.data.transforms import ImageTransform

NORMAL_DIR = "good"
SPLITS = ("train", "test", "all")


class MVTecAD(ImageDataset):
    """One MVTec AD category.

    Args:
        root: the MVTec AD folder holding one folder per category.
        category: for example ``"bottle"``.
        split: ``"train"`` (``train/good``, all normal), ``"test"`` (``test/<type>``;
            ``good`` is normal, every other folder an anomaly type with masks), or ``"all"``
            (both, train first: the pool :func:`~noisyclean.data.make_noisy_split` draws
            from for the SoftPatch-style contamination protocol).
        image_size, crop_size, normalize, grayscale_to_rgb, transform, on_error, validate:
            as in :class:`~noisyclean.data.ImageFolder`.

    Raises:
        LayoutError: the category or its ``train``/``test`` folder is missing.
        MaskMismatchError: an anomalous test image has no mask, or a mask no image.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        category: str,
        split: Literal["train", "test", "all"] = "train",
        *,
        image_size: int | tuple[int, int] | None = 224,
        crop_size: int | tuple[int, int] | None = None,
        normalize: Any = "imagenet",
        grayscale_to_rgb: bool = True,
        transform: ImageTransform | None = None,
        on_error: OnError = "raise",
        validate: Validate = "verify",
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        root_path = Path(root).expanduser().absolute()
        cat = root_path / category
        if not cat.is_dir():
            found = sorted(p.name for p in root_path.iterdir() if p.is_dir()) \
                if root_path.is_dir() else []
            raise LayoutError(
                f"no MVTec AD category '{category}' in {root_path}"
                + (f"; categories found: {', '.join(found)}" if found else
                   "; give the folder that holds the category folders")
            )
        self.category = category
        self.split = split
        samples: list[Sample] = []
        if split in ("train", "all"):
            samples += self._train(cat)
        if split in ("test", "all"):
            samples += self._test(cat)
        super().__init__(
            root_path,
            samples,
            transform=make_transform(transform, image_size, crop_size, normalize,
                                     grayscale_to_rgb),
            on_error=on_error,
            validate=validate,
        )

    @staticmethod
    def _train(cat: Path) -> list[Sample]:
        good = cat / "train" / NORMAL_DIR
        if not good.is_dir():
            raise LayoutError(f"MVTec AD category {cat} has no train/{NORMAL_DIR} folder")
        return [Sample(path=p, label=NORMAL) for p in list_files(good, IMAGE_EXTENSIONS)]

    @staticmethod
    def _test(cat: Path) -> list[Sample]:
        test = cat / "test"
        if not test.is_dir():
            raise LayoutError(f"MVTec AD category {cat} has no test folder")
        samples = []
        for type_dir in sorted(p for p in test.iterdir() if p.is_dir()
                               and not p.name.startswith(".")):
            images = list_files(type_dir, IMAGE_EXTENSIONS)
            if type_dir.name == NORMAL_DIR:
                samples += [Sample(path=p, label=NORMAL) for p in images]
                continue
            gt = cat / "ground_truth" / type_dir.name
            masks = {p.stem: p for p in list_files(gt, IMAGE_EXTENSIONS)} if gt.is_dir() else {}
            used = set()
            for p in images:
                mask = masks.get(f"{p.stem}_mask", masks.get(p.stem))
                if mask is None:
                    raise MaskMismatchError(
                        f"anomalous image {p} has no mask; expected "
                        f"{gt / (p.stem + '_mask.png')}"
                    )
                used.add(mask.stem)
                samples.append(Sample(path=p, label=ANOMALY, defect_type=type_dir.name,
                                      mask_path=mask))
            orphans = sorted(set(masks) - used)
            if orphans:
                raise MaskMismatchError(
                    f"masks without an image in {gt}: {', '.join(orphans[:5])}"
                )
        return samples
