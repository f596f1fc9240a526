"""The image dataset contract shared by every layout (folder, MVTec AD, Real-IAD, MTD).

An item is only the image tensor. Labels, defect types and masks are read through
separate accessors that exist for evaluation: they never travel with the image, so no
detector can learn from them by accident.

Layouts (:mod:`~noisyclean.data.folder`, :mod:`~noisyclean.data.mvtec`, ...) only decide
which files belong and how they are labelled, as a list of :class:`Sample` records. Loading,
checking, transforms, masks and error messages live here, once.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean.data.errors import (
    CorruptImageError,
    DataError,
    EmptyDatasetError,
    MaskMismatchError,
)
from noisyclean.data.files import (
    OnError,
    Validate,
    check_image,
    check_on_error,
    handle_bad_file,
    relative_id,
)
from noisyclean.data.transforms import ImageTransform
from noisyclean.samples import Subset, require_one_size, root_dataset, root_indices

NORMAL, ANOMALY, UNKNOWN = 0, 1, -1


@dataclass(frozen=True)
class Sample:
    """One image as a layout lists it: where it is, and what evaluation may know about it."""

    path: Path
    label: int = UNKNOWN
    defect_type: str | None = None
    mask_path: Path | None = None


def make_transform(
    transform: ImageTransform | None,
    image_size: Any = 224,
    crop_size: Any = None,
    normalize: Any = "imagenet",
    grayscale_to_rgb: bool = True,
) -> ImageTransform:
    """``transform`` when given (it replaces the other arguments), else one built from them."""
    if transform is not None:
        if not isinstance(transform, ImageTransform):
            raise TypeError(
                f"transform must be a noisyclean.data.ImageTransform; got {type(transform)!r}"
            )
        return transform
    return ImageTransform(image_size=image_size, crop_size=crop_size, normalize=normalize,
                          grayscale_to_rgb=grayscale_to_rgb)


class ImageDataset:
    """Base class: a list of image files under ``root``, with optional masks and labels.

    Subclasses (layouts) only decide which files belong and how they are labelled; loading,
    transforms, masks and errors live here once. Every file is checked when the dataset is
    built (see :func:`noisyclean.data.files.check_image`), so a corrupt image is reported
    before any training starts. Nothing is ever written under ``root``.

    Attributes:
        root: the data folder (never written to).
        paths: absolute image paths, in dataset order.
        ids: each path relative to ``root`` in POSIX form: the stable sample id.
        labels: ``int8`` array, 0 normal, 1 anomaly, -1 unknown. For evaluation only.
        defect_types: the defect type of each sample (``None`` for normals or unknown).
        mask_paths: the mask file of each sample, or ``None``.
        sizes: the original ``(height, width)`` of each image.
        transform: turns a PIL image into a ``(3, H, W)`` float tensor (and masks alike).
        skipped: ``(path, reason)`` of every file left out by ``on_error="skip"``.
    """

    root: Path | None
    paths: list[Path | None]
    ids: list[str]
    labels: np.ndarray
    defect_types: list[str | None]
    mask_paths: list[Path | None]
    sizes: list[tuple[int, int]]
    transform: ImageTransform
    skipped: list[tuple[str, str]]

    def __init__(
        self,
        root: str | os.PathLike,
        samples: Sequence[Sample],
        *,
        transform: ImageTransform | None = None,
        on_error: OnError = "raise",
        validate: Validate = "verify",
    ):
        check_on_error(on_error)
        self.root = Path(root).expanduser().absolute()
        self.transform = make_transform(transform)
        self.on_error = on_error
        self.skipped = []
        kept: list[tuple[Sample, tuple[int, int], str]] = []
        for sample in samples:
            sid = relative_id(Path(sample.path), self.root)
            try:
                size = check_image(Path(sample.path), validate)
                if sample.mask_path is not None:
                    try:
                        mask_size = check_image(Path(sample.mask_path), validate)
                    except CorruptImageError as exc:
                        raise CorruptImageError(
                            sample.path, f"its mask {exc.path} is unreadable: {exc.reason}",
                            hint="Fix or remove the mask, or pass on_error='skip'",
                        ) from None
            except CorruptImageError as exc:
                handle_bad_file(exc, on_error)
                self.skipped.append((str(exc.path), exc.reason))
                continue
            if sample.mask_path is not None and mask_size != size:
                raise MaskMismatchError(
                    f"mask {sample.mask_path} is {mask_size[1]}x{mask_size[0]} pixels but its "
                    f"image {sample.path} is {size[1]}x{size[0]}; a mask must have exactly "
                    "the size of its image"
                )
            kept.append((sample, size, sid))
        if not kept:
            if self.skipped:
                what = (f"all {len(self.skipped)} image(s) were skipped as unreadable; "
                        "see the warnings above")
            else:
                what = f"it holds no image. {self._empty_hint()}"
            raise EmptyDatasetError(f"no usable image in {self.root}: {what}")
        self._set_records(
            paths=[Path(s.path) for s, _, _ in kept],
            ids=[sid for _, _, sid in kept],
            labels=[s.label for s, _, _ in kept],
            defect_types=[s.defect_type for s, _, _ in kept],
            mask_paths=[Path(s.mask_path) if s.mask_path is not None else None
                        for s, _, _ in kept],
            sizes=[size for _, size, _ in kept],
        )

    def _empty_hint(self) -> str:
        """Layouts override this to say what they looked for."""
        return "Check the path and the file endings."

    def _set_records(self, *, paths, ids, labels, defect_types, mask_paths, sizes) -> None:
        n = len(ids)
        if not (len(paths) == len(labels) == len(defect_types) == len(mask_paths)
                == len(sizes) == n):
            raise ValueError("every per-sample list must have one entry per sample")
        dupes = [k for k, c in Counter(ids).items() if c > 1]
        if dupes:
            raise DataError(f"duplicate sample ids {dupes[:5]}: each image may appear once")
        labels_arr = np.asarray(labels, dtype=np.int8).reshape(-1)
        if labels_arr.size and not np.isin(labels_arr, (NORMAL, ANOMALY, UNKNOWN)).all():
            raise ValueError("labels must be 0 (normal), 1 (anomaly) or -1 (unknown)")
        self.paths = list(paths)
        self.ids = list(ids)
        self.labels = labels_arr
        self.defect_types = [None if t is None else str(t) for t in defect_types]
        self.mask_paths = list(mask_paths)
        self.sizes = [(int(h), int(w)) for h, w in sizes]

    # -- the item -----------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.ids)

    def _index(self, index: Any) -> int:
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"dataset index must be an int; got {type(index).__name__}")
        n = len(self)
        i = int(index)
        if i < -n or i >= n:
            raise IndexError(f"index {i} is out of range for a dataset of {n} images")
        return i % n

    def _open_image(self, i: int) -> Any:
        """The PIL image of sample ``i``, fully loaded (subclasses may serve it from memory)."""
        from PIL import Image

        with Image.open(self.paths[i]) as im:
            im.load()
            return im

    def _open_mask(self, i: int) -> Any | None:
        """The PIL mask of sample ``i``, or ``None`` when it has none."""
        from PIL import Image

        path = self.mask_paths[i]
        if path is None:
            return None
        with Image.open(path) as im:
            im.load()
            return im

    def _where(self, i: int, mask: bool = False) -> str:
        path = self.mask_paths[i] if mask else self.paths[i]
        return str(path) if path is not None else self.ids[i]

    def __getitem__(self, index: int) -> Any:  # -> torch.Tensor (3, H, W)
        i = self._index(index)
        try:
            image = self._open_image(i)
        except DataError:
            raise
        except Exception as exc:
            raise CorruptImageError(
                self._where(i), f"reading it failed ({exc})",
                hint="Check the file, or build the dataset with validate='decode' and "
                     "on_error='skip' to find and leave out such files before training",
            ) from exc
        try:
            return self.transform(image)
        except ValueError as exc:
            raise DataError(f"cannot transform image {self._where(i)}: {exc}") from exc

    def mask(self, index: int) -> np.ndarray:
        """The boolean ``(H, W)`` defect mask of sample ``index``, at the transformed size.

        All false when the sample has no mask (normals, or data without masks).
        """
        i = self._index(index)
        try:
            mask = self._open_mask(i)
        except Exception as exc:
            raise CorruptImageError(self._where(i, mask=True), f"reading it failed ({exc})") \
                from exc
        if mask is None:
            return self.transform.empty_mask(self.sizes[i])
        return self.transform.mask(mask)

    def masks(self, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Masks of ``indices`` (all samples by default), stacked as ``(n, H, W)`` bools."""
        idx = range(len(self)) if indices is None else [int(i) for i in np.asarray(indices)]
        out = [self.mask(i) for i in idx]
        if not out:
            return np.zeros((0, 0, 0), dtype=bool)
        require_one_size(out, "masks", "set image_size so that every image is resized to one "
                         "size.")
        return np.stack(out)

    # -- identity -----------------------------------------------------------------------
    def _content_digest(self) -> str:
        """Hash of every file's id, size and modification time: changes when files change."""
        h = hashlib.sha256()
        for sid, path, mpath in zip(self.ids, self.paths, self.mask_paths):
            h.update(sid.encode())
            for p in (path, mpath):
                if p is None:
                    h.update(b"-")
                    continue
                try:
                    st = os.stat(p)
                    h.update(f"|{st.st_size}|{st.st_mtime_ns}".encode())
                except OSError:
                    h.update(b"|missing")
            h.update(b"\0")
        return h.hexdigest()[:16]

    @property
    def cache_key(self) -> str:
        """Identifies the data and the preprocessing; feature caches include it in their
        namespace.

        It joins the layout, the data folder, a digest of the files (ids, sizes, modification
        times) and :attr:`ImageTransform.cache_key`, so two folders with equal file names, an
        edited file, or a changed setting never share cached features, while subsets and
        reruns on unchanged data do.
        """
        if not hasattr(self, "_cache_key"):
            self._cache_key = (
                f"{type(self).__name__}|{self.root}|files={self._content_digest()}|"
                f"{self.transform.cache_key}"
            )
        return self._cache_key

    def subset(self, indices: Sequence[int] | np.ndarray) -> Subset:
        return Subset(self, indices)

    def summary(self) -> dict[str, Any]:
        """Counts for reports: samples, normals, anomalies, unknowns, defect types, skipped."""
        types = Counter(t for t, lab in zip(self.defect_types, self.labels) if lab == ANOMALY)
        return {
            "n": len(self),
            "normal": int((self.labels == NORMAL).sum()),
            "anomaly": int((self.labels == ANOMALY).sum()),
            "unknown": int((self.labels == UNKNOWN).sum()),
            "defect_types": {str(k): int(v) for k, v in sorted(types.items(), key=str)},
            "with_mask": sum(p is not None for p in self.mask_paths),
            "skipped": len(self.skipped),
        }

    def __repr__(self) -> str:
        s = self.summary()
        return (f"{type(self).__name__}(root={str(self.root)!r}, n={s['n']}, "
                f"normal={s['normal']}, anomaly={s['anomaly']}, unknown={s['unknown']})")


# -- accessors for evaluation ----------------------------------------------------------------
def _labelled_root(dataset: Any) -> tuple[Any, np.ndarray]:
    root = root_dataset(dataset)
    if getattr(root, "labels", None) is None:
        raise TypeError(
            f"{type(root).__name__} carries no labels; labels_of, defect_types_of and "
            "masks_of need a noisyclean.data.ImageDataset (or a Subset of one)"
        )
    return root, root_indices(dataset)


def labels_of(dataset: Any) -> np.ndarray:
    """The labels (``int8``: 0 normal, 1 anomaly, -1 unknown) of ``dataset``'s samples.

    Works on an :class:`ImageDataset` or a (nested) :class:`~noisyclean.samples.Subset` of
    one. For evaluation code only: detectors never receive labels.
    """
    root, idx = _labelled_root(dataset)
    return np.asarray(root.labels, dtype=np.int8)[idx]


def defect_types_of(dataset: Any) -> list[str | None]:
    """The defect type of each of ``dataset``'s samples (``None`` for normals/unknown)."""
    root, idx = _labelled_root(dataset)
    types = getattr(root, "defect_types", None)
    if types is None:
        return [None] * len(idx)
    return [types[int(i)] for i in idx]


def masks_of(dataset: Any) -> np.ndarray:
    """The boolean masks of ``dataset``'s samples, ``(n, H, W)``, at the transformed size."""
    root, idx = _labelled_root(dataset)
    if not hasattr(root, "mask"):
        raise TypeError(f"{type(root).__name__} has no masks")
    if isinstance(root, ImageDataset):
        return root.masks(idx)
    return np.stack([np.asarray(root.mask(int(i)), dtype=bool) for i in idx])
