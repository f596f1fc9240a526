"""Images held in memory, behind the same contract as the folder datasets.

Used for generated data (the synthetic textures of ``noisyclean demo``) and for callers
that already hold arrays. Items, masks, transforms and accessors behave exactly as for
:class:`~noisyclean.data.ImageFolder`; only the pixels come from arrays instead of files.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from noisyclean.data.base import UNKNOWN, ImageDataset, make_transform
from noisyclean.data.errors import DataError, MaskMismatchError
from noisyclean.data.transforms import ImageTransform

MASK_FOLDER = "masks"
LABELS_FILE = "labels.csv"


def _as_uint8_image(arr: Any, sid: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
        raise ValueError(f"image {sid}: expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); "
                         f"got shape {a.shape}")
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.dtype != np.uint8:
        if np.issubdtype(a.dtype, np.floating):
            if a.size and (np.nanmin(a) < 0 or np.nanmax(a) > 1):
                raise ValueError(f"image {sid}: float pixels must lie in [0, 1]")
            a = np.round(np.nan_to_num(a) * 255).astype(np.uint8)
        else:
            raise ValueError(f"image {sid}: pixels must be uint8 or floats in [0, 1]; "
                             f"got {a.dtype}")
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"image {sid} has no pixels")
    return np.ascontiguousarray(a)


def _atomic_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".png")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(buf.getvalue())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class InMemoryImageDataset(ImageDataset):
    """An :class:`~noisyclean.data.ImageDataset` whose pixels are numpy arrays.

    Args:
        images: one array per sample: ``(H, W)`` grey or ``(H, W, 3)`` RGB (``(H, W, 4)``
            drops alpha), ``uint8`` or floats in ``[0, 1]``.
        ids: unique ids, POSIX-path-like (``"synthetic/normal_0001.png"``).
        labels: 0 / 1 / -1 per sample (default: unknown). For evaluation only.
        defect_types: per sample, ``None`` for normals.
        masks: per sample a bool ``(H, W)`` array or ``None``.
        key: identifies the content for feature caches; by default a hash of the pixels.
        image_size, crop_size, normalize, grayscale_to_rgb, transform: as for
            :class:`~noisyclean.data.ImageFolder`.

    ``root`` is ``None`` and ``paths`` / ``mask_paths`` hold ``None``: nothing is on disk
    until :meth:`write` puts it there.
    """

    def __init__(
        self,
        images: Sequence[Any],
        ids: Sequence[str],
        labels: Sequence[int] | np.ndarray | None = None,
        defect_types: Sequence[str | None] | None = None,
        masks: Sequence[np.ndarray | None] | None = None,
        *,
        key: str | None = None,
        image_size: int | tuple[int, int] | None = 224,
        crop_size: int | tuple[int, int] | None = None,
        normalize: Any = "imagenet",
        grayscale_to_rgb: bool = True,
        transform: ImageTransform | None = None,
    ):
        n = len(images)
        if n == 0:
            raise DataError("an in-memory dataset needs at least one image")
        ids = [str(s) for s in ids]
        for sid in ids:
            p = PurePosixPath(sid)
            if p.is_absolute() or ".." in p.parts or not p.parts:
                raise ValueError(f"id {sid!r} must be a relative path without '..'")
        labels = [UNKNOWN] * n if labels is None else list(np.asarray(labels).reshape(-1))
        defect_types = [None] * n if defect_types is None else list(defect_types)
        masks = [None] * n if masks is None else list(masks)
        if not (len(ids) == len(labels) == len(defect_types) == len(masks) == n):
            raise ValueError("images, ids, labels, defect_types and masks need one entry each")
        self._images = [_as_uint8_image(im, sid) for im, sid in zip(images, ids)]
        self._masks: list[np.ndarray | None] = []
        for im, m, sid in zip(self._images, masks, ids):
            if m is None:
                self._masks.append(None)
                continue
            m = np.asarray(m).astype(bool)
            if m.shape != im.shape[:2]:
                raise MaskMismatchError(
                    f"mask of {sid} has shape {m.shape} but its image is {im.shape[:2]}"
                )
            self._masks.append(np.ascontiguousarray(m))
        self.root = None
        self.transform = make_transform(transform, image_size, crop_size, normalize,
                                        grayscale_to_rgb)
        self.on_error = "raise"
        self.skipped = []
        self._set_records(
            paths=[None] * n, ids=ids, labels=labels, defect_types=defect_types,
            mask_paths=[None] * n, sizes=[im.shape[:2] for im in self._images],
        )
        self._key = key if key is not None else self._hash_content()

    def _hash_content(self) -> str:
        h = hashlib.sha256()
        for sid, im, m in zip(self.ids, self._images, self._masks):
            h.update(sid.encode())
            h.update(str(im.shape).encode())
            h.update(im.tobytes())
            h.update(b"-" if m is None else np.packbits(m).tobytes())
        return "sha256:" + h.hexdigest()[:16]

    def _open_image(self, i: int) -> Any:
        from PIL import Image

        return Image.fromarray(self._images[i])

    def _open_mask(self, i: int) -> Any | None:
        from PIL import Image

        m = self._masks[i]
        return None if m is None else Image.fromarray(m.astype(np.uint8) * 255)

    def array(self, index: int) -> np.ndarray:
        """The raw ``uint8`` pixels of sample ``index`` (before any transform)."""
        return self._images[self._index(index)]

    def raw_mask(self, index: int) -> np.ndarray:
        """The mask of sample ``index`` at the original size (all false when it has none)."""
        i = self._index(index)
        m = self._masks[i]
        return np.zeros(self._images[i].shape[:2], bool) if m is None else m

    @property
    def cache_key(self) -> str:
        return f"{type(self).__name__}|{self._key}|{self.transform.cache_key}"

    def write(self, out_dir: str | os.PathLike, *, overwrite: bool = False) -> Path:
        """Write every image as a PNG at ``out_dir/<id>``, masks at ``out_dir/masks/<id>``,
        and ``out_dir/labels.csv`` (``id,label,defect_type``). Returns ``out_dir``.

        ``ImageFolder(out_dir, masks=out_dir / "masks")`` then reads back the same ids,
        pixels and masks. Each file is written atomically. An existing non-empty folder is
        refused unless ``overwrite=True`` (which replaces only the files named here).
        """
        out = Path(out_dir).expanduser().absolute()
        if out.exists() and not out.is_dir():
            raise DataError(f"{out} is a file; give a folder to write the images into")
        if out.is_dir() and any(out.iterdir()) and not overwrite:
            raise DataError(f"{out} is not empty; choose a new folder or pass overwrite=True")
        for sid, im, m in zip(self.ids, self._images, self._masks):
            rel = PurePosixPath(sid).with_suffix(".png")
            _atomic_png(im, out / rel)
            if m is not None:
                _atomic_png(m.astype(np.uint8) * 255, out / MASK_FOLDER / rel)
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["id", "label", "defect_type"])
        for sid, lab, t in zip(self.ids, self.labels, self.defect_types):
            writer.writerow([str(PurePosixPath(sid).with_suffix(".png")), int(lab), t or ""])
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".tmp-", suffix=".csv")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(buf.getvalue())
            os.replace(tmp, out / LABELS_FILE)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return out

    def __repr__(self) -> str:
        s = self.summary()
        return (f"{type(self).__name__}(n={s['n']}, normal={s['normal']}, "
                f"anomaly={s['anomaly']}, unknown={s['unknown']})")
