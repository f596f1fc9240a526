"""The benchmark's data sets, and the contamination protocol of each.

Every data set is split by :func:`noisyclean.data.make_noisy_split`: for a seed, a fixed test
set of unseen normals and defects (the same at every noise ratio), and a training set whose
anomaly fraction is the noise ratio (anomalies over training-set size). The oracle trains on
that training set's normals. What differs per data set is only the held-out shares:

- ``magnetic-tile``: 30 % of the 952 normals and half of each of the five defect types; at
  noise 0.4 there are too few defects left, so the training normals are reduced (291 normals
  and 194 defects), as :mod:`noisyclean.data.noise` defines.
- ``piped/<class>``: a third of the 48 normals (16) and half of the 48 impurities (24) for
  test; training holds the other 32 normals and 0, 4, 8 or 21 impurities at noise 0, 0.1,
  0.2 and 0.4 (a ratio of 0, 0.111, 0.2 and 0.396). No normals are reduced.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from noisyclean.benchmark.settings import (
    BUDGET_IMAGE_SIZE,
    NOISE_RATIOS,
    PIPED_IMAGE_SIZE,
    SEEDS,
)

MTD = "magnetic-tile"
PIPED_FAMILY = "piped"
FAMILIES = (MTD, PIPED_FAMILY)
FAMILY_TITLES = {MTD: "Magnetic Tile", PIPED_FAMILY: "PIPED"}


@dataclass(frozen=True)
class BenchmarkDataset:
    """One data set of the benchmark: how to load it, and how to split it.

    Attributes:
        name: ``"magnetic-tile"`` or ``"piped/<class>"``; every row carries it as ``dataset``.
        load: image size -> the labelled :class:`~noisyclean.data.ImageDataset`.
        image_size: the size its images are brought to unless the run sets one.
        test_normal_fraction, test_anomaly_fraction: the held-out shares of the split.
    """

    name: str
    load: Callable[[int], Any]
    image_size: int
    test_normal_fraction: float
    test_anomaly_fraction: float = 0.5

    @property
    def family(self) -> str:
        """``"magnetic-tile"`` or ``"piped"``: what the page groups and averages over."""
        return family_of(self.name)

    def split(self, dataset: Any, noise_ratio: float, seed: int) -> Any:
        """The :class:`~noisyclean.data.NoisySplit` of ``dataset`` at ``noise_ratio``."""
        from noisyclean.data import defect_types_of, labels_of, make_noisy_split

        return make_noisy_split(
            labels_of(dataset), defect_types_of(dataset), noise_ratio, seed=seed,
            test_normal_fraction=self.test_normal_fraction,
            test_anomaly_fraction=self.test_anomaly_fraction)


def family_of(name: str) -> str:
    """The family of a data-set name: the part before the first ``/``."""
    return name.split("/", 1)[0]


def magnetic_tile(root: str | os.PathLike | None = None) -> BenchmarkDataset:
    """Magnetic Tile, from ``root`` (default: :func:`noisyclean.data.find_magnetic_tile_root`)."""
    from noisyclean.data import MagneticTile

    return BenchmarkDataset(MTD, partial(_load, MagneticTile, (root,)), BUDGET_IMAGE_SIZE,
                            test_normal_fraction=0.3)


def piped(root: str | os.PathLike | None = None,
          classes: Sequence[str] | None = None) -> list[BenchmarkDataset]:
    """One data set per PIPED class under ``root`` (default: all classes found)."""
    from noisyclean.data import PIPED, piped_classes

    return [
        BenchmarkDataset(f"{PIPED_FAMILY}/{c}", partial(_load, PIPED, (root, c)),
                         PIPED_IMAGE_SIZE, test_normal_fraction=1 / 3)
        for c in (piped_classes(root) if classes is None else classes)
    ]


def _load(layout: Any, args: tuple, size: int) -> Any:
    """``layout(*args)`` at ``size``: a picklable loader, unlike a lambda."""
    return layout(*args, image_size=size)


def select_datasets(
    names: str | Sequence[str] = FAMILIES,
    *,
    mtd_root: str | os.PathLike | None = None,
    piped_root: str | os.PathLike | None = None,
) -> list[BenchmarkDataset]:
    """The data sets named in ``names``: ``magnetic-tile``, ``piped`` (every class) or
    ``piped/<class>``; a string is split at commas. Nothing is read but the folder listings.

    Raises:
        ValueError: an unknown name or PIPED class.
        noisyclean.data.DataError: a data folder that is not there.
    """
    from noisyclean.data import find_magnetic_tile_root, find_piped_root, piped_classes

    if isinstance(names, str):
        names = names.split(",")
    wanted = [n.strip() for n in names if n.strip()]
    if not wanted:
        raise ValueError(f"no data set named; choose from {', '.join(FAMILIES)}")
    out: list[BenchmarkDataset] = []
    for name in dict.fromkeys(wanted):
        family, _, category = name.partition("/")
        if name == MTD:
            _require_root(mtd_root, find_magnetic_tile_root, "Magnetic Tile",
                          "NOISYCLEAN_MTD_ROOT")
            out.append(magnetic_tile(mtd_root))
        elif family == PIPED_FAMILY:
            _require_root(piped_root, find_piped_root, "PIPED", "NOISYCLEAN_PIPED_ROOT")
            found = piped_classes(piped_root)
            if category and category not in found:
                raise ValueError(f"no PIPED class {category!r}; the classes are "
                                 f"{', '.join(found)}")
            out += piped(piped_root, [category] if category else found)
        else:
            raise ValueError(f"unknown data set {name!r}; choose from {', '.join(FAMILIES)} "
                             f"or {PIPED_FAMILY}/<class>")
    return list({d.name: d for d in out}.values())


def grid_splits(
    names: str | Sequence[str] = FAMILIES,
    noise_ratios: Sequence[float] = NOISE_RATIOS,
    seeds: Sequence[int] = SEEDS,
    **roots: Any,
) -> Iterator[tuple[BenchmarkDataset, Any, float, int]]:
    """Each ``(data set, its loaded samples, noise ratio, seed)`` of the benchmark's grid, in
    the grid's order, each data set loaded once at its benchmark size.

    What the study scripts in ``benchmarks/`` loop over, so that each measures on exactly
    the benchmark's splits (``spec.split(data, noise, seed)``). ``roots`` are
    :func:`select_datasets`' ``mtd_root`` and ``piped_root``.
    """
    for spec in select_datasets(names, **roots):
        data = spec.load(spec.image_size)
        for noise in noise_ratios:
            for seed in seeds:
                yield spec, data, noise, seed


def _require_root(root: Any, find: Callable[[], Any], what: str, env_var: str) -> None:
    from noisyclean.data.roots import resolve_data_root

    resolve_data_root(root, find, what, env_var, "its data")
