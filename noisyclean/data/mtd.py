"""The Magnetic Tile Defect (MTD) layout.

``MT_<Type>/Imgs/X.jpg`` with its mask ``X.png`` beside it. ``MT_Free`` holds the normals;
every other ``MT_*`` folder holds one defect type, named by the folder without ``MT_``
(Blowhole, Break, Crack, Fray, Uneven). Images are greyscale and of varying size, so the
transform's ``image_size`` (square by default) brings them to one size. Masks are
anti-aliased and thresholded at 128.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from noisyclean.data.base import ANOMALY, NORMAL, ImageDataset, Sample, make_transform
from noisyclean.data.errors import LayoutError, MaskMismatchError
from noisyclean.data.files import OnError, Validate, list_files
from noisyclean.data.roots import find_data_root, resolve_data_root
from noisyclean.data.transforms import ImageTransform

ENV_VAR = "NOISYCLEAN_MTD_ROOT"
NORMAL_FOLDER = "MT_Free"
IMAGE_ENDING = ".jpg"
MASK_ENDING = ".png"


def find_magnetic_tile_root() -> Path | None:
    """Where the MTD data is: ``$NOISYCLEAN_MTD_ROOT``, else ``<checkout>/../shared/data/
    magnetic-tile`` when it exists (the development layout), else ``None``."""
    return find_data_root(ENV_VAR, "magnetic-tile")


class MagneticTile(ImageDataset):
    """All 1344 MTD images: 952 normals and 392 defects of five types, with masks.

    Args:
        root: the folder holding the ``MT_*`` folders; ``None`` uses
            :func:`find_magnetic_tile_root`.
        image_size, crop_size, normalize, grayscale_to_rgb, transform, on_error, validate:
            as in :class:`~noisyclean.data.ImageFolder`.

    Raises:
        LayoutError: no ``MT_*`` folder, or no ``MT_Free``.
        MaskMismatchError: a defect image without its ``.png`` mask, a mask without its
            image, or sizes that differ.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        image_size: int | tuple[int, int] | None = 224,
        crop_size: int | tuple[int, int] | None = None,
        normalize: Any = "imagenet",
        grayscale_to_rgb: bool = True,
        transform: ImageTransform | None = None,
        on_error: OnError = "raise",
        validate: Validate = "verify",
    ):
        root_path = resolve_data_root(root, find_magnetic_tile_root, "Magnetic Tile", ENV_VAR,
                                      "MT_Free, MT_Blowhole, ...")
        folders = sorted(p for p in root_path.iterdir() if p.is_dir() and p.name.startswith("MT_"))
        if not folders or NORMAL_FOLDER not in {p.name for p in folders}:
            raise LayoutError(
                f"{root_path} is not a Magnetic Tile folder: expected MT_Free and MT_<Type> "
                "folders (the layout of github.com/abin24/Magnetic-tile-defect-datasets.)"
            )
        samples: list[Sample] = []
        for folder in folders:
            normal = folder.name == NORMAL_FOLDER
            dtype = None if normal else folder.name[len("MT_"):]
            files = list_files(folder, (IMAGE_ENDING, MASK_ENDING))
            images = [p for p in files if p.suffix.lower() == IMAGE_ENDING]
            masks = {p.with_suffix(""): p for p in files if p.suffix.lower() == MASK_ENDING}
            orphans = set(masks) - {p.with_suffix("") for p in images}
            if orphans:
                shown = ", ".join(str(masks[k]) for k in sorted(orphans)[:5])
                raise MaskMismatchError(
                    f"{len(orphans)} mask(s) without an image: {shown}; each X.png needs its "
                    "X.jpg beside it"
                )
            for img in images:
                mask = masks.get(img.with_suffix(""))
                if mask is None and not normal:
                    raise MaskMismatchError(
                        f"defect image {img} has no mask {img.with_suffix(MASK_ENDING)}"
                    )
                samples.append(Sample(
                    path=img, label=NORMAL if normal else ANOMALY, defect_type=dtype,
                    mask_path=mask,
                ))
        super().__init__(
            root_path,
            samples,
            transform=make_transform(transform, image_size, crop_size, normalize,
                                     grayscale_to_rgb),
            on_error=on_error,
            validate=validate,
        )
