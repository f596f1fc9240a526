"""Shared test set-up: offline, deterministic, and the real data located once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

REPO = Path(__file__).resolve().parents[1]


def mtd_root() -> Path | None:
    """The Magnetic Tile data: $NOISYCLEAN_MTD_ROOT, else ../shared/data/magnetic-tile."""
    env = os.environ.get("NOISYCLEAN_MTD_ROOT")
    root = Path(env) if env else REPO.parent / "shared" / "data" / "magnetic-tile"
    return root if (root / "MT_Free").is_dir() else None


@pytest.fixture
def mtd() -> Path:
    root = mtd_root()
    if root is None:
        pytest.skip("Magnetic Tile data not found (set NOISYCLEAN_MTD_ROOT)")
    return root
