"""Listing image files and checking that they are images, without writing anything.

Listing is recursive and sorted by the POSIX path relative to the root, so the same folder
gives the same order (and the same sample ids) on every machine. Hidden files and folders
(a leading dot, as in ``.DS_Store`` or macOS ``._x.png`` shadows) are never images.

Checking happens when a dataset is built, so a corrupt file is reported before any model
trains. ``"verify"`` (the default) opens each file, runs Pillow's ``verify`` (full chunk and
CRC checks for PNG) and, for JPEG, checks that the end-of-image marker is there, which
catches the usual corruption, a truncated download, at a cost of about 30 µs a file.
``"decode"`` decodes every pixel (about 0.5 ms for a small JPEG) and catches everything.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

from noisyclean.data.errors import CorruptImageError

IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp",
)
"""File endings (case-insensitive) treated as images; other files are left alone."""

Validate = Literal["verify", "decode", "none"]
OnError = Literal["raise", "skip"]
VALIDATE_MODES: tuple[str, ...] = ("verify", "decode", "none")
ON_ERROR_MODES: tuple[str, ...] = ("raise", "skip")

_SKIP_HINT = "Remove or replace the file, or pass on_error='skip' to leave it out with a warning"


def normalize_extensions(extensions: Iterable[str]) -> tuple[str, ...]:
    """``["png", ".JPG"]`` -> ``(".png", ".jpg")``."""
    out = []
    for ext in extensions:
        ext = str(ext).strip().lower()
        if not ext:
            continue
        out.append(ext if ext.startswith(".") else "." + ext)
    if not out:
        raise ValueError("extensions is empty; give at least one file ending such as '.png'")
    return tuple(dict.fromkeys(out))


def has_extension(path: str | os.PathLike, extensions: Sequence[str]) -> bool:
    return os.fspath(path).lower().endswith(tuple(extensions))


def relative_id(path: Path, root: Path) -> str:
    """The sample id of ``path``: its POSIX path relative to ``root``; refuses to escape root."""
    try:
        rel = path.relative_to(root)
    except ValueError:
        raise ValueError(f"{path} is not inside the data folder {root}") from None
    if ".." in rel.parts:
        raise ValueError(f"{path} points outside the data folder {root}")
    return rel.as_posix()


def list_files(
    root: Path,
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    *,
    exclude: Iterable[Path] = (),
    ignored: list[str] | None = None,
) -> list[Path]:
    """Every file under ``root`` with one of ``extensions``, sorted by relative POSIX path.

    Folders in ``exclude`` (for example a mask folder that lives inside the image folder)
    are not entered. Symbolic links to files are followed; links to folders are not, so a
    link cycle cannot hang the listing. When ``ignored`` is a list, the relative paths of
    the (non-hidden) files left out for their ending are appended to it.
    """
    extensions = normalize_extensions(extensions)
    excluded = {os.path.normcase(os.path.abspath(p)) for p in exclude}
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            d for d in dirnames
            if not d.startswith(".")
            and os.path.normcase(os.path.abspath(os.path.join(dirpath, d))) not in excluded
        ]
        for name in filenames:
            if name.startswith("."):
                continue
            if not has_extension(name, extensions):
                if ignored is not None:
                    ignored.append(relative_id(Path(dirpath) / name, root))
                continue
            path = Path(dirpath) / name
            found.append((relative_id(path, root), path))
    found.sort(key=lambda item: item[0])
    return [path for _, path in found]


def _jpeg_is_complete(path: Path) -> bool:
    """A complete JPEG ends with the EOI marker ``FF D9`` (allowing trailing padding)."""
    with open(path, "rb") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        fh.seek(max(0, size - 1024))
        tail = fh.read().rstrip(b"\x00\n\r ")
    return tail.endswith(b"\xff\xd9")


def check_image(path: Path, validate: Validate = "verify") -> tuple[int, int]:
    """Open ``path`` as an image and return its ``(height, width)``.

    Raises:
        CorruptImageError: the file is missing, unreadable, not an image, or (by
            ``validate``) damaged. The message names the file.
    """
    from PIL import Image, UnidentifiedImageError

    if validate not in VALIDATE_MODES:
        raise ValueError(f"validate must be one of {VALIDATE_MODES}; got {validate!r}")
    try:
        with Image.open(path) as im:
            width, height = im.size
            fmt = im.format
            if validate == "verify":
                im.verify()
        if validate == "verify" and fmt == "JPEG" and not _jpeg_is_complete(path):
            raise CorruptImageError(path, "the JPEG data is truncated (no end-of-image marker)",
                                    hint=_SKIP_HINT)
        if validate == "decode":
            with Image.open(path) as im:
                im.load()
    except CorruptImageError:
        raise
    except FileNotFoundError:
        raise CorruptImageError(path, "the file does not exist", hint=_SKIP_HINT) from None
    except PermissionError:
        raise CorruptImageError(path, "permission denied: the file cannot be read",
                                hint=_SKIP_HINT) from None
    except IsADirectoryError:
        raise CorruptImageError(path, "it is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise CorruptImageError(path, "not an image file Pillow can identify",
                                hint=_SKIP_HINT) from None
    except (OSError, SyntaxError, ValueError) as exc:  # Pillow reports damage with these
        raise CorruptImageError(path, f"damaged image data ({exc})", hint=_SKIP_HINT) from None
    if width < 1 or height < 1:
        raise CorruptImageError(path, f"the image has no pixels ({width}x{height})")
    return (height, width)


def handle_bad_file(error: CorruptImageError, on_error: OnError) -> None:
    """Raise ``error`` (``on_error="raise"``) or warn that the file is skipped."""
    if on_error == "raise":
        raise error
    warnings.warn(f"skipping {error.path}: {error.reason}", stacklevel=4)


def check_on_error(on_error: str) -> None:
    if on_error not in ON_ERROR_MODES:
        raise ValueError(f"on_error must be 'raise' or 'skip'; got {on_error!r}")
