"""What purification costs: plain training against stage 1 + stage 2, from empty caches.

A user who trains once pays for every image's features; so does a user who purifies first.
Each side here gets its own empty :class:`~noisyclean.feature_cache.FeatureCache`, so the
ratio is the real extra cost of purification.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from noisyclean.benchmark.datasets import BenchmarkDataset, magnetic_tile
from noisyclean.purifier import Purifier
from noisyclean.samples import Subset


def cold_timing(
    root: str | Path | None = None,
    *,
    dataset: BenchmarkDataset | None = None,
    noise_ratio: float = 0.2,
    seed: int = 0,
    image_size: int | None = None,
    detector_kwargs: dict[str, Any] | None = None,
    purifier_kwargs: dict[str, Any] | None = None,
    repeats: int = 2,
) -> dict[str, Any]:
    """Wall time of plain training against stage 1 + stage 2, each from an empty cache.

    Args:
        root: the Magnetic Tile folder, when ``dataset`` is not given.
        dataset: the benchmark data set to time on (default: Magnetic Tile).
        image_size: ``None`` keeps the data set's own size.

    Why ``repeats``: the first repetition pays one-time costs of the process (the allocator
    growing, kernels chosen for new shapes) on whichever side runs first, which made plain
    training look 40 % slower than it is. The last repetition is the steady state, and is
    what this returns (``first_ratio`` keeps the first for the record).
    """
    from noisyclean.feature_cache import FeatureCache
    from noisyclean.plugins import detector_factory

    spec = dataset if dataset is not None else magnetic_tile(root)
    data = spec.load(image_size or spec.image_size)
    split = spec.split(data, noise_ratio, seed)
    train = Subset(data, split.train_indices)

    def factory() -> Callable[[], Any]:
        return detector_factory("patchknn", **{**(detector_kwargs or {}),
                                               "feature_cache": FeatureCache()})

    runs = []
    for _ in range(max(1, int(repeats))):
        start = time.perf_counter()
        factory()().fit(train)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        purifier = Purifier(factory(), seed=seed, progress=False,
                            **(purifier_kwargs or {})).fit(train)
        stage1 = time.perf_counter() - start
        purifier.fit_final(train)
        both = time.perf_counter() - start
        runs.append({"plain_s": plain, "stage1_s": stage1, "stage2_s": both - stage1,
                     "ratio": both / plain})
    return {**runs[-1], "first_ratio": runs[0]["ratio"], "repeats": float(len(runs)),
            "n_train": float(len(train)), "noise": float(noise_ratio), "seed": float(seed),
            "dataset": spec.name}


def cold_timings(datasets: Sequence[BenchmarkDataset], **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`cold_timing` on the first data set of each family (Magnetic Tile, the first
    PIPED class): one measurement per kind of data, not one per class."""
    firsts: dict[str, BenchmarkDataset] = {}
    for spec in datasets:
        firsts.setdefault(spec.family, spec)
    return [cold_timing(dataset=spec, **kwargs) for spec in firsts.values()]
