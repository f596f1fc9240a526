"""Shared fixtures: a tiny ViT configuration that trains in well under a second on a CPU."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never wait on a hub lookup

import pytest
import torch
from dinomaly_helpers import TINY_VIT


@pytest.fixture(autouse=True)
def _quiet_random_weights(recwarn):
    """Tests use random weights on purpose; the warning is asserted where it matters."""
    yield


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These models are tiny: one thread beats two (and spin-waiting) on a shared CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def tiny_kwargs():
    """Detector arguments for a few-step run on 28 px crops (a 2x2 patch grid)."""
    return dict(
        **TINY_VIT,
        weights=None,
        image_size=32,
        crop_size=28,
        max_steps=12,
        batch_size=4,
        warmup_steps=2,
        hard_mining_ramp_steps=6,
        map_size=None,
        device="cpu",
        progress=False,
        seed=0,
        cache_dtype="float32",
    )


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 32, 32, generator=g) for _ in range(10)]
