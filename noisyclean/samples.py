"""Generic dataset helpers: sample ids, index views and fingerprints.

Samples are tracked by their original index and id from the first step to the last. The
reference implementation of the paper lost that link (it permuted the data twice, then
indexed the permuted set with positions of a score array), so every view here carries the
original indices with it, and nothing in noisyclean ever re-permutes a dataset.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np


def sample_ids(dataset: Any) -> list[str]:
    """The stable id of every sample: ``dataset.ids`` when present, else its position."""
    ids = getattr(dataset, "ids", None)
    if ids is None:
        return [str(i) for i in range(len(dataset))]
    ids = [str(i) for i in ids]
    if len(ids) != len(dataset):
        raise ValueError(
            f"dataset.ids has {len(ids)} entries but the dataset has {len(dataset)} samples; "
            "give exactly one id per sample."
        )
    if len(set(ids)) != len(ids):
        raise ValueError("dataset.ids holds duplicates; every sample needs a unique id.")
    return ids


def fingerprint(dataset: Any) -> str:
    """A short hash that changes when the samples change.

    With ids, the ids are hashed, together with the root dataset's ``cache_key`` when it has
    one (image datasets put file sizes, modification times and the transform there, so an
    edited image or a new image size changes the fingerprint). Without ids, a numeric
    dataset is hashed by content, so editing a vector invalidates cached scores.
    """
    h = hashlib.sha256()
    if getattr(dataset, "ids", None) is not None:
        h.update(str(getattr(root_dataset(dataset), "cache_key", "")).encode())
        for sid in sample_ids(dataset):
            h.update(sid.encode())
            h.update(b"\0")
        return h.hexdigest()[:16]
    try:
        arr = np.ascontiguousarray(np.asarray(dataset))
    except Exception:
        arr = None
    if arr is not None and arr.dtype != object:
        h.update(str(arr.shape).encode())
        h.update(str(arr.dtype).encode())
        h.update(arr.tobytes())
    else:
        h.update(f"len={len(dataset)}".encode())
    return h.hexdigest()[:16]


class Subset:
    """A read-only view of ``dataset`` at ``indices``, which remembers where it came from.

    ``indices`` are positions in the parent dataset; ``ids`` are the parent's ids at those
    positions. Nested subsets compose, so ``root_indices`` always points into the root
    dataset. Per-sample attributes of the parent (labels, masks) are deliberately not
    forwarded: a view never exposes data of samples outside it.
    """

    def __init__(self, dataset: Any, indices: Sequence[int] | np.ndarray):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"subset indices must lie in [0, {n}); got {idx.min()}..{idx.max()}")
        self.dataset = dataset
        self.indices = idx

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> Any:
        return self.dataset[int(self.indices[i])]

    @property
    def ids(self) -> list[str]:
        parent = sample_ids(self.dataset)
        return [parent[i] for i in self.indices]

    @property
    def root(self) -> Any:
        return self.dataset.root if isinstance(self.dataset, Subset) else self.dataset

    @property
    def root_indices(self) -> np.ndarray:
        if isinstance(self.dataset, Subset):
            return self.dataset.root_indices[self.indices]
        return self.indices

    def __repr__(self) -> str:
        return f"Subset(n={len(self)} of {len(self.dataset)})"


def root_dataset(dataset: Any) -> Any:
    """The dataset a (possibly nested) :class:`Subset` views; the dataset itself otherwise."""
    return dataset.root if isinstance(dataset, Subset) else dataset


def root_indices(dataset: Any) -> np.ndarray:
    """Positions of ``dataset``'s samples in :func:`root_dataset`."""
    if isinstance(dataset, Subset):
        return dataset.root_indices
    return np.arange(len(dataset), dtype=np.int64)


def to_numpy(dataset: Any) -> np.ndarray:
    """Stack a dataset of feature vectors into an ``(n, d)`` float array.

    Views of a numpy array are gathered with one fancy-index instead of ``n`` item reads.
    """
    if isinstance(dataset, np.ndarray):
        arr = dataset
    elif isinstance(dataset, Subset) and isinstance(dataset.root, np.ndarray):
        arr = dataset.root[dataset.root_indices]
    else:
        items = [np.asarray(dataset[i]) for i in range(len(dataset))]
        arr = np.stack(items) if items else np.empty((0, 0))
    arr = np.asarray(arr, dtype=np.float64)
    return arr.reshape(len(arr), -1)


def require_one_size(items: Sequence[Any], what: str, fix: str) -> None:
    """Refuse to stack ``items`` (arrays or tensors) whose shapes differ, saying how to fix it.

    Why one helper: images, masks and maps of different sizes cannot be stacked, and the
    user needs the same two facts each time: which sizes were found, and how to get one.
    """
    shapes = {tuple(x.shape) for x in items}
    if len(shapes) > 1:
        raise ValueError(f"{what} differ in size ({sorted(shapes)}); {fix}")
