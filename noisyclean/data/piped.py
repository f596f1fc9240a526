"""The PIPED layout (Paper ImPuritiEs Dataset), one paper class per dataset.

``<class>/NoDefects/*.bmp`` holds the normals and ``<class>/Defects/*.bmp`` the patches with
impurities. Their masks live in ``<class>/Defects/GroundThruth/`` (the source spells the
folder so; some classes spell it ``GroundTruth``, and both are accepted), matched by the
trailing ``_<sheet>_<n>`` of the name: ``..._S_D_01_1.bmp`` has the mask ``..._S_GT_01_1.bmp``.

**The masks are inverted**: 1-bit images in which the impurity is 0 (black). They are
inverted when read, so :meth:`~noisyclean.data.ImageDataset.mask` is true on the impurity,
as for every other layout. Sample ids are relative to the PIPED root and start with the
class, for example ``PA_BFT01_TL/Defects/PA_BFT01_TL_S_D_01_1.bmp``.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from noisyclean.data.base import ANOMALY, NORMAL, ImageDataset, Sample, make_transform
from noisyclean.data.errors import DataError, LayoutError, MaskMismatchError
from noisyclean.data.files import OnError, Validate, list_files
from noisyclean.data.transforms import ImageTransform

ENV_VAR = "NOISYCLEAN_PIPED_ROOT"
NORMAL_FOLDER = "NoDefects"
DEFECT_FOLDER = "Defects"
MASK_FOLDERS = ("GroundThruth", "GroundTruth")
IMAGE_ENDING = ".bmp"
DEFECT_TYPE = "impurity"
"""PIPED does not type its impurities; every defect gets this one type."""

_SHEET_AND_NUMBER = re.compile(r"_(\d+_\d+)$")


def find_piped_root() -> Path | None:
    """Where the PIPED data is: ``$NOISYCLEAN_PIPED_ROOT``, else ``<checkout>/../shared/data/
    piped-dev`` when it exists (the development layout), else ``None``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    fallback = Path(__file__).resolve().parents[3] / "shared" / "data" / "piped-dev"
    return fallback if fallback.is_dir() else None


def piped_classes(root: str | os.PathLike | None = None) -> list[str]:
    """The class folders under ``root`` (default :func:`find_piped_root`), sorted: those that
    hold both ``NoDefects`` and ``Defects``."""
    root_path = _resolve_root(root)
    return sorted(p.name for p in root_path.iterdir()
                  if (p / NORMAL_FOLDER).is_dir() and (p / DEFECT_FOLDER).is_dir())


def _resolve_root(root: str | os.PathLike | None) -> Path:
    if root is None:
        root = find_piped_root()
        if root is None:
            raise DataError(
                f"PIPED data not found; pass root=... or set {ENV_VAR} to the folder that "
                "holds the class folders (PA_BFT01_TL, ...)"
            )
    root_path = Path(root).expanduser().absolute()
    if not root_path.is_dir():
        raise DataError(f"the PIPED folder {root_path} does not exist")
    return root_path


def _sheet_key(path: Path) -> str | None:
    """The trailing ``<sheet>_<n>`` of a file name, which pairs a defect with its mask."""
    match = _SHEET_AND_NUMBER.search(path.stem)
    return match.group(1) if match else None


class PIPED(ImageDataset):
    """One PIPED class: its 48 normal and 48 impurity patches (128 x 128 RGB), with masks.

    Args:
        root: the folder holding the class folders; ``None`` uses :func:`find_piped_root`.
        category: the class, for example ``"PA_BFT01_TL"``.
        image_size, crop_size, normalize, grayscale_to_rgb, transform, on_error, validate:
            as in :class:`~noisyclean.data.ImageFolder`.

    Raises:
        LayoutError: the class, its ``NoDefects`` or ``Defects`` folder, or its mask folder
            is missing.
        MaskMismatchError: a defect without its mask, a mask without its defect, or two files
            with the same ``_<sheet>_<n>``.
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        category: str = "PA_BFT01_TL",
        *,
        image_size: int | tuple[int, int] | None = 224,
        crop_size: int | tuple[int, int] | None = None,
        normalize: Any = "imagenet",
        grayscale_to_rgb: bool = True,
        transform: ImageTransform | None = None,
        on_error: OnError = "raise",
        validate: Validate = "verify",
    ):
        root_path = _resolve_root(root)
        cls = root_path / category
        if not (cls / NORMAL_FOLDER).is_dir() or not (cls / DEFECT_FOLDER).is_dir():
            found = piped_classes(root_path)
            raise LayoutError(
                f"no PIPED class '{category}' with {NORMAL_FOLDER}/ and {DEFECT_FOLDER}/ in "
                f"{root_path}"
                + (f"; classes found: {', '.join(found)}" if found else
                   "; give the folder that holds the class folders")
            )
        self.category = category
        normals = [Sample(path=p, label=NORMAL)
                   for p in list_files(cls / NORMAL_FOLDER, (IMAGE_ENDING,))]
        super().__init__(
            root_path,
            normals + self._defects(cls / DEFECT_FOLDER),
            transform=make_transform(transform, image_size, crop_size, normalize,
                                     grayscale_to_rgb),
            on_error=on_error,
            validate=validate,
        )

    @staticmethod
    def _defects(folder: Path) -> list[Sample]:
        mask_dir = next((folder / m for m in MASK_FOLDERS if (folder / m).is_dir()), None)
        if mask_dir is None:
            raise LayoutError(
                f"PIPED defect folder {folder} has no mask folder "
                f"({' or '.join(MASK_FOLDERS)})"
            )
        images = list_files(folder, (IMAGE_ENDING,), exclude=[mask_dir])
        masks = _by_sheet_key(list_files(mask_dir, (IMAGE_ENDING,)))
        keyed = _by_sheet_key(images)
        orphans = sorted(set(masks) - set(keyed))
        if orphans:
            shown = ", ".join(str(masks[k]) for k in orphans[:5])
            raise MaskMismatchError(f"{len(orphans)} mask(s) without a defect image: {shown}")
        missing = sorted(set(keyed) - set(masks))
        if missing:
            shown = ", ".join(str(keyed[k]) for k in missing[:5])
            raise MaskMismatchError(
                f"{len(missing)} defect image(s) without a mask in {mask_dir}: {shown}"
            )
        return [Sample(path=p, label=ANOMALY, defect_type=DEFECT_TYPE,
                       mask_path=masks[_sheet_key(p)]) for p in images]

    def _open_mask(self, i: int) -> Any | None:
        """The mask with the impurity white: PIPED stores it black on white."""
        from PIL import ImageOps

        mask = super()._open_mask(i)
        return None if mask is None else ImageOps.invert(mask.convert("L"))

    def _empty_hint(self) -> str:
        return f"Expected {IMAGE_ENDING} files in {NORMAL_FOLDER}/ and {DEFECT_FOLDER}/."


def _by_sheet_key(paths: list[Path]) -> dict[str | None, Path]:
    """Files by their ``<sheet>_<n>``; a name without one, or a repeated one, is an error."""
    out: dict[str | None, Path] = {}
    for p in paths:
        key = _sheet_key(p)
        if key is None:
            raise MaskMismatchError(
                f"{p} does not end in _<sheet>_<n>, so it cannot be paired with its mask"
            )
        if key in out:
            raise MaskMismatchError(f"{out[key]} and {p} both end in _{key}")
        out[key] = p
    return out
