"""A plain folder of images, the input of ``noisyclean purify``.

Every image under the folder (recursively, in sorted order) is a sample; its id is its path
relative to the folder. Masks are optional and matched to images by name, either from a
separate mask folder or by a file-name pattern beside each image.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noisyclean.data.base import ANOMALY, NORMAL, UNKNOWN, ImageDataset, Sample, make_transform
from noisyclean.data.errors import DataError, MaskMismatchError
from noisyclean.data.files import (
    IMAGE_EXTENSIONS,
    OnError,
    Validate,
    list_files,
    normalize_extensions,
    relative_id,
)
from noisyclean.data.transforms import ImageTransform

_STEM = "{stem}"
logger = logging.getLogger(__name__)


def _norm(path: Path) -> str:
    return os.path.normcase(os.path.normpath(os.path.abspath(path)))


def _check_folder(path: Path, what: str) -> None:
    if not path.exists():
        raise DataError(f"the {what} {path} does not exist; check the path")
    if not path.is_dir():
        raise DataError(f"the {what} {path} is a file, not a folder; give the folder that "
                        "holds the images")


def _strip_suffix(key: str, suffix: str) -> str:
    return key[: -len(suffix)] if suffix and key.endswith(suffix) else key


def _match_mask_folder(
    images: list[Path],
    root: Path,
    mask_root: Path,
    extensions: Sequence[str],
    mask_suffix: str,
    check_orphans: bool = True,
) -> dict[Path, Path]:
    """Pair images with masks in ``mask_root``.

    A mask pairs with an image when their paths, relative to their own folders and without
    the file ending (and without ``mask_suffix`` on the mask), are equal, as in MVTec AD's
    ``test/crack/000.png`` and ``ground_truth/crack/000_mask.png``. When that fails, a mask
    pairs by file stem alone, provided the stem is unique among both images and masks.
    """
    masks = list_files(mask_root, extensions)
    by_key: dict[str, Path] = {}
    for m in masks:
        rel = relative_id(m, mask_root)
        key = _strip_suffix(rel.rsplit(".", 1)[0], mask_suffix)
        if key in by_key:
            raise MaskMismatchError(
                f"masks {by_key[key]} and {m} both belong to the image '{key}'; keep one"
            )
        by_key[key] = m
    mask_stems = Counter(k.rsplit("/", 1)[-1] for k in by_key)
    by_stem = {k.rsplit("/", 1)[-1]: m for k, m in by_key.items()
               if mask_stems[k.rsplit("/", 1)[-1]] == 1}
    image_stems = Counter(p.stem for p in images)
    pairs: dict[Path, Path] = {}
    used: set[str] = set()
    for img in images:
        key = relative_id(img, root).rsplit(".", 1)[0]
        m = by_key.get(key)
        if m is None and image_stems[img.stem] == 1:
            m = by_stem.get(img.stem)
        if m is not None:
            pairs[img] = m
            used.add(_norm(m))
    orphans = [m for m in masks if _norm(m) not in used] if check_orphans else []
    if orphans:
        shown = ", ".join(str(m) for m in orphans[:5])
        more = f" and {len(orphans) - 5} more" if len(orphans) > 5 else ""
        raise MaskMismatchError(
            f"{len(orphans)} mask(s) in {mask_root} have no image in {root}: {shown}{more}. "
            "A mask must share its image's name (relative path without the file ending; a "
            f"'{mask_suffix}' ending on the mask name is allowed). Remove or rename them."
        )
    return pairs


def _pattern_regex(pattern: str) -> re.Pattern[str] | None:
    """A regex for mask file names made by ``pattern`` (only for patterns without folders)."""
    if "/" in pattern or "\\" in pattern:
        return None
    before, after = pattern.split(_STEM, 1)
    return re.compile(re.escape(before) + "(.+)" + re.escape(after), re.IGNORECASE)


def _match_mask_pattern(
    candidates: list[Path], pattern: str
) -> tuple[list[Path], dict[Path, Path]]:
    """Split ``candidates`` into images and masks named ``pattern`` beside them.

    A file is a mask when ``pattern`` applied to another file's stem names it (so with
    ``"{stem}.png"``, ``x.png`` beside ``x.jpg`` is the mask of ``x.jpg``). A file that looks
    like a mask (for ``"{stem}_mask.png"``: any ``*_mask.png``) but whose image is absent is
    an error rather than being taken for an image.
    """
    pairs: dict[Path, Path] = {}
    for c in candidates:
        m = Path(os.path.normpath(c.parent / pattern.format(stem=c.stem)))
        if _norm(m) != _norm(c) and m.is_file():
            pairs[c] = m
    mask_keys = {_norm(m) for m in pairs.values()}
    images = [c for c in candidates if _norm(c) not in mask_keys]
    pairs = {img: m for img, m in pairs.items() if _norm(img) not in mask_keys}
    regex = _pattern_regex(pattern)
    if regex is not None:
        orphans = []
        for c in images:
            hit = regex.fullmatch(c.name)
            if hit and hit.group(1) != c.stem and c not in pairs:
                orphans.append(c)
        if orphans:
            shown = ", ".join(str(m) for m in orphans[:5])
            raise MaskMismatchError(
                f"{len(orphans)} file(s) are named like masks ('{pattern}') but have no "
                f"image beside them: {shown}. Add the images or remove these masks."
            )
    return images, pairs


def read_image_list(path: str | os.PathLike) -> list[str]:
    """The entries of a list file (``purified.txt``): one path a line, relative to the data
    folder; blank lines and lines starting with ``#`` are ignored."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.strip() for line in fh]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read the image list {path}: {exc}") from None
    return [line for line in lines if line and not line.startswith("#")]


def resolve_entries(root: Path, entries: Sequence[str]) -> list[Path]:
    """Turn list entries (paths relative to ``root``) into paths, refusing any that leave it.

    Refused: absolute paths (``/x.png``, ``C:\\x.png``), entries with a ``..`` part, and
    entries that a symbolic link leads outside ``root``. Duplicates are refused too.
    """
    real_root = os.path.realpath(root)
    out: list[Path] = []
    seen: set[str] = set()
    for n, entry in enumerate(entries, 1):
        text = str(entry).strip()
        rel = text.replace("\\", "/")
        if not text:
            raise DataError(f"entry {n} of the image list is empty")
        if rel.startswith("/") or re.match(r"^[A-Za-z]:", rel) or Path(text).is_absolute():
            raise DataError(
                f"entry {n} of the image list, {text!r}, is an absolute path; entries must be "
                f"relative to the data folder {root}"
            )
        if ".." in rel.split("/"):
            raise DataError(
                f"entry {n} of the image list, {text!r}, contains '..'; entries must stay "
                f"inside the data folder {root}"
            )
        path = root / rel
        real = os.path.realpath(path)
        if os.path.commonpath([real, real_root]) != real_root:
            raise DataError(
                f"entry {n} of the image list, {text!r}, leads outside the data folder {root} "
                "(through a symbolic link)"
            )
        key = _norm(path)
        if key in seen:
            raise DataError(f"entry {n} of the image list, {text!r}, appears twice")
        seen.add(key)
        out.append(path)
    return out


class ImageFolder(ImageDataset):
    """Every image under ``root``, recursively, sorted by relative path.

    Args:
        root: the image folder. It is only read, never written.
        masks: optional masks. ``None``; a folder (matched by relative path and stem, see
            below); or a name pattern containing ``{stem}``, resolved beside each image
            (``"{stem}.png"`` for Magnetic Tile, ``"{stem}_mask.png"``). With a folder, a
            mask ``m`` pairs with an image when their paths relative to their folders,
            without file endings and without ``mask_suffix`` on the mask, are equal; failing
            that, by a stem unique among images and masks. A mask folder inside ``root`` is
            not read as images. Images without a mask get an all-false mask.
        image_size, crop_size, normalize, grayscale_to_rgb: see
            :class:`~noisyclean.data.ImageTransform`; ignored when ``transform`` is given.
        transform: a ready :class:`~noisyclean.data.ImageTransform`.
        on_error: ``"raise"`` (default): a corrupt or unreadable image stops construction
            with an error naming it. ``"skip"``: it is left out, with a warning naming it.
        validate: how hard files are checked at construction: ``"verify"`` (default,
            cheap), ``"decode"`` (decode every pixel) or ``"none"``.
        extensions: file endings that count as images; other files are ignored.
        mask_suffix: ending of mask names to ignore when matching a mask folder.
        normal_dirs: when given, each image's first folder under ``root`` names its label:
            folders in ``normal_dirs`` hold normals; any other folder holds anomalies of the
            type named by the folder; images directly in ``root`` stay unknown. Without it
            every label is unknown (-1), the usual case for data to be purified.
        files: only these images, in this order, instead of listing the folder: paths
            relative to ``root`` (such as the lines of ``purified.txt``, see
            :func:`read_image_list`). An absolute path, a ``..`` part or a link that leads
            outside ``root`` is refused; a listed file that is missing counts as unreadable
            (``on_error`` applies). Masks of images not listed are not an error here.

    Files without an image ending are left out (their relative paths are in ``ignored``);
    a file with an image ending that is not an image is an error (or skipped).

    Raises:
        DataError: the folder does not exist or holds no image (``EmptyDatasetError``),
            a corrupt image (``CorruptImageError``), masks that do not pair with images or
            differ in size from them (``MaskMismatchError``).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        masks: str | os.PathLike | None = None,
        *,
        image_size: int | tuple[int, int] | None = 224,
        crop_size: int | tuple[int, int] | None = None,
        normalize: Any = "imagenet",
        grayscale_to_rgb: bool = True,
        transform: ImageTransform | None = None,
        on_error: OnError = "raise",
        validate: Validate = "verify",
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        mask_suffix: str = "_mask",
        normal_dirs: Sequence[str] | None = None,
        files: Sequence[str] | None = None,
    ):
        root_path = Path(root).expanduser().absolute()
        _check_folder(root_path, "data folder")
        self._extensions = normalize_extensions(extensions)
        self._from_list = files is not None
        pattern = None
        mask_dir = None
        if masks is not None:
            if isinstance(masks, str) and _STEM in masks:
                pattern = masks
            else:
                mask_dir = Path(masks).expanduser()
                if not mask_dir.is_absolute():
                    mask_dir = Path.cwd() / mask_dir
                mask_dir = mask_dir.absolute()
                _check_folder(mask_dir, "mask folder")
                if _norm(mask_dir) == _norm(root_path):
                    raise DataError(
                        "the mask folder is the data folder itself; keep masks in their own "
                        "folder, or give a name pattern such as masks='{stem}_mask.png'"
                    )
        self.ignored: list[str] = []
        if files is None:
            listed = list_files(root_path, self._extensions,
                                exclude=[mask_dir] if mask_dir is not None else [],
                                ignored=self.ignored)
            if self.ignored:
                logger.info("ignored %d file(s) in %s without an image ending, such as %s",
                            len(self.ignored), root_path, self.ignored[0])
        else:
            listed = resolve_entries(root_path, files)
        if pattern is not None:
            images, pairs = _match_mask_pattern(listed, pattern)
        elif mask_dir is not None:
            images = listed
            pairs = _match_mask_folder(images, root_path, mask_dir, self._extensions, mask_suffix,
                                       check_orphans=files is None)
        else:
            images, pairs = listed, {}
        normal = set(normal_dirs) if normal_dirs is not None else None
        samples = []
        for img in images:
            label, dtype = UNKNOWN, None
            if normal is not None:
                parts = relative_id(img, root_path).split("/")
                if len(parts) > 1:
                    if parts[0] in normal:
                        label = NORMAL
                    else:
                        label, dtype = ANOMALY, parts[0]
            samples.append(Sample(path=img, label=label, defect_type=dtype,
                                  mask_path=pairs.get(img)))
        self.masks_source = pattern if pattern is not None else (
            str(mask_dir) if mask_dir is not None else None)
        super().__init__(
            root_path,
            samples,
            transform=make_transform(transform, image_size, crop_size, normalize,
                                     grayscale_to_rgb),
            on_error=on_error,
            validate=validate,
        )

    def _empty_hint(self) -> str:
        if self._from_list:
            return "The image list names no image."
        others = len(self.ignored)
        ends = ", ".join(self._extensions)
        if others:
            return (f"It holds {others} other file(s), none ending in {ends}; pass "
                    "extensions=... if your images use another ending.")
        return f"Put images ending in {ends} in it (subfolders are searched too)."
