"""One cache of per-sample features, shared by every sub-model and the final model.

Stage 1 trains k sub-models on the same images, and stage 2 trains one more. A frozen
backbone gives the same features each time, so computing them once per image (not once per
image per sub-model per epoch) is the largest saving stage 1 has. Entries are keyed by a
``namespace`` (the backbone and its preprocessing: anything that changes the features) and
the sample id. The cache keeps at most ``max_bytes`` in memory, evicting the least recently
used, and, with ``directory``, also keeps every entry on disk as ``.npy`` (written
atomically, read back with ``allow_pickle=False``), so separate processes and resumed runs
share it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

DEFAULT_MAX_BYTES = 4 * 1024**3


class FeatureCache:
    """A bounded, optionally disk-backed map ``(namespace, sample id) -> np.ndarray``."""

    def __init__(
        self, max_bytes: int = DEFAULT_MAX_BYTES, directory: str | os.PathLike | None = None
    ):
        self.max_bytes = int(max_bytes)
        self.directory = Path(directory) if directory is not None else None
        self._store: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    # -- single entries -------------------------------------------------------------
    def _path(self, namespace: str, sid: str) -> Path:
        assert self.directory is not None
        ns = hashlib.sha256(namespace.encode()).hexdigest()[:16]
        key = hashlib.sha256(sid.encode()).hexdigest()[:32]
        return self.directory / ns / f"{key}.npy"

    def get(self, namespace: str, sid: str) -> np.ndarray | None:
        with self._lock:
            value = self._store.get((namespace, sid))
            if value is not None:
                self._store.move_to_end((namespace, sid))
                return value
        if self.directory is not None:
            path = self._path(namespace, sid)
            if path.exists():
                value = np.load(path, allow_pickle=False)
                self._remember(namespace, sid, value)
                return value
        return None

    def put(self, namespace: str, sid: str, value: np.ndarray) -> None:
        value = np.ascontiguousarray(value)
        if self.directory is not None:
            path = self._path(namespace, sid)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as fh:
                    np.save(fh, value, allow_pickle=False)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        self._remember(namespace, sid, value)

    def _remember(self, namespace: str, sid: str, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._store.pop((namespace, sid), None)
            if old is not None:
                self._bytes -= old.nbytes
            self._store[(namespace, sid)] = value
            self._bytes += value.nbytes
            while self._bytes > self.max_bytes and self._store:
                _, evicted = self._store.popitem(last=False)
                self._bytes -= evicted.nbytes

    # -- batches --------------------------------------------------------------------
    def get_or_compute(
        self,
        namespace: str,
        ids: Sequence[str],
        compute: Callable[[list[int]], Sequence[np.ndarray] | np.ndarray],
    ) -> list[np.ndarray]:
        """Features for ``ids``, computing only the missing ones.

        ``compute(positions)`` receives the positions (into ``ids``) that were not cached and
        returns their features in that order. The result lists one array per id.
        """
        out: list[np.ndarray | None] = [self.get(namespace, sid) for sid in ids]
        missing = [i for i, v in enumerate(out) if v is None]
        self.hits += len(ids) - len(missing)
        self.misses += len(missing)
        if missing:
            computed = compute(missing)
            if len(computed) != len(missing):
                raise RuntimeError(
                    f"feature function returned {len(computed)} results for {len(missing)} samples"
                )
            for pos, value in zip(missing, computed):
                value = np.asarray(value)
                self.put(namespace, ids[pos], value)
                out[pos] = value
        return out  # type: ignore[return-value]

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._store)

    def clear(self) -> None:
        with self._lock:
            self._store.clear()
            self._bytes = 0


_DEFAULT: FeatureCache | None = None


def default_feature_cache() -> FeatureCache:
    """The process-wide cache that detectors use unless given their own.

    Its memory budget comes from ``NOISYCLEAN_FEATURE_CACHE_BYTES`` (default 4 GiB) and its
    optional disk folder from ``NOISYCLEAN_FEATURE_CACHE_DIR``.
    """
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = FeatureCache(
            max_bytes=int(os.environ.get("NOISYCLEAN_FEATURE_CACHE_BYTES", DEFAULT_MAX_BYTES)),
            directory=os.environ.get("NOISYCLEAN_FEATURE_CACHE_DIR") or None,
        )
    return _DEFAULT
