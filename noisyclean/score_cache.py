"""Per-sub-model score rows on disk, so that a killed stage 1 resumes where it stopped.

Each finished sub-model's score row is written atomically as soon as it exists, into a
folder named by a hash of everything that determines it: the detector (with every
constructor argument, defaults included, where they can be known), the sub-model overrides,
the partition and its seed, the scoring mode, and the samples (their ids and a content
fingerprint). A run
with any of these changed lands in another folder, so stale scores are never reused.
Normalisation, aggregation and ``keep`` are not part of the key: they only recombine rows,
so changing them reuses every trained sub-model. The whole-image embeddings (see
:mod:`noisyclean.whole_image`) are kept beside the rows, so a resumed run does not extract
them again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean._io import atomic_save_npy, atomic_write_json

FORMAT_VERSION = 1


def config_key(config: dict[str, Any]) -> str:
    """A stable hash of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


class ScoreCache:
    """Rows ``j -> (n,) float array`` under ``directory/<key>/``."""

    def __init__(self, directory: str | os.PathLike, key_config: dict[str, Any]):
        self.key = config_key({"format": FORMAT_VERSION, **key_config})
        self.path = Path(directory) / self.key
        self._config = key_config

    def _row_path(self, j: int) -> Path:
        return self.path / f"submodel_{j:04d}.npy"

    def load(self, j: int, n: int) -> np.ndarray | None:
        """Row ``j`` if it was finished by an earlier run, else ``None``."""
        row = self._read(self._row_path(j))
        return row if row is not None and row.shape == (n,) else None

    def store(self, j: int, row: np.ndarray) -> None:
        self._write(self._row_path(j), row)

    def load_array(self, name: str, rows: int) -> np.ndarray | None:
        """A named float array with ``rows`` rows (the whole-image embeddings), or ``None``."""
        arr = self._read(self.path / f"{name}.npy")
        return arr if arr is not None and arr.ndim >= 1 and arr.shape[0] == rows else None

    def store_array(self, name: str, arr: np.ndarray) -> None:
        self._write(self.path / f"{name}.npy", arr)

    @staticmethod
    def _read(path: Path) -> np.ndarray | None:
        if not path.exists():
            return None
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None  # a damaged file is recomputed, never trusted
        return arr if arr.dtype.kind == "f" else None

    def _write(self, path: Path, arr: np.ndarray) -> None:
        if not (self.path / "config.json").exists():
            atomic_write_json(self.path / "config.json", self._config)
        atomic_save_npy(path, np.asarray(arr, dtype=np.float64))

    def finished(self, m: int, n: int) -> list[int]:
        return [j for j in range(m) if self.load(j, n) is not None]
