"""The grid: every condition on every data set, noise ratio and seed, one row per run.

Every image's backbone features are computed once (the process-wide feature cache, keyed by
the data set and its preprocessing), so the conditions differ only in what they train on.
Wall times are measured per condition in the same process; ``plain_s`` is the noisy
condition's training time on the same data.

Beside the final test metrics, a purifying condition's row carries what purification
controls directly: how well its selection scores separate the training defects from the
training normals (``selection_auroc``; ``consensus_auroc`` for the sub-models' consensus
alone), and which share of the training defects it dropped (``anomaly_recall``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from noisyclean.benchmark.conditions import (
    TRAIN_ALL,
    TRAIN_NORMALS,
    Condition,
    default_conditions,
)
from noisyclean.benchmark.datasets import BenchmarkDataset, select_datasets
from noisyclean.benchmark.settings import NOISE_RATIOS, SEEDS
from noisyclean.protocol import scores_and_maps
from noisyclean.purifier import Purifier
from noisyclean.samples import Subset

logger = logging.getLogger("noisyclean.benchmark")


def _test_metrics(model: Any, test: Subset, with_pixels: bool) -> dict[str, float]:
    from noisyclean.data import labels_of, masks_of
    from noisyclean.metrics import image_metrics, pixel_metrics

    scores, maps = scores_and_maps(model, test, maps=with_pixels)
    out = dict(image_metrics(labels_of(test), scores))
    if maps is not None:
        pixel = pixel_metrics(masks_of(test), maps, num_thresholds=1000)
        out["pixel_auroc"], out["pixel_aupro"] = pixel["pixel_auroc"], pixel["pixel_aupro"]
    return out


def separation_auroc(is_anomaly: np.ndarray, scores: np.ndarray | None) -> float:
    """How well ``scores`` (higher: more anomalous) rank the training defects above the
    training normals, as an AUROC; NaN when either is absent (noise 0) or no scores."""
    from noisyclean.metrics import image_auroc

    if scores is None or is_anomaly.all() or not is_anomaly.any():
        return float("nan")
    return float(image_auroc(is_anomaly.astype(np.int8), np.asarray(scores, float)))


def purification_diagnostics(purifier: Purifier, is_anomaly: np.ndarray) -> dict[str, Any]:
    """What the selection did with the training set's defects (see the module's docs)."""
    from noisyclean.metrics import purification_report

    purity = purification_report(is_anomaly, purifier.keep_mask_)
    return {
        "selection_auroc": separation_auroc(is_anomaly, purifier.selection_scores_),
        "consensus_auroc": separation_auroc(is_anomaly, purifier.consensus_),
        "kept_anomaly_fraction": purity["anomaly_fraction_after"],
        "anomaly_recall": purity["anomaly_recall"],
        "n_kept": int(purifier.n_keep_),
    }


def run_condition(
    condition: Condition,
    dataset: Any,
    split: Any,
    factory: Callable[[], Any],
    *,
    seed: int,
    with_pixels: bool = True,
) -> dict[str, Any]:
    """Train and test one condition on one split; return a row of metrics and timings."""
    from noisyclean.data import labels_of

    train = Subset(dataset, split.train_indices)
    test = Subset(dataset, split.test_indices)
    is_anomaly = labels_of(train) == 1
    row: dict[str, Any] = {"condition": condition.name, "n_train": len(train)}
    start = time.perf_counter()
    if condition.train == TRAIN_ALL:
        model = factory().fit(train)
        row["plain_s"] = time.perf_counter() - start
    elif condition.train == TRAIN_NORMALS:
        model = factory().fit(Subset(train, np.flatnonzero(~is_anomaly)))
    else:
        purifier = Purifier(factory, seed=seed, progress=False,
                            **(condition.purifier or {})).fit(train)
        row["stage1_s"] = time.perf_counter() - start
        t2 = time.perf_counter()
        model = purifier.fit_final(train)
        row["stage2_s"] = time.perf_counter() - t2
        row.update(purification_diagnostics(purifier, is_anomaly))
    row.update(_test_metrics(model, test, with_pixels))
    return row


def row_key(row: dict[str, Any]) -> tuple[str, float, int, str]:
    """What identifies a run: its data set, noise ratio, seed and condition."""
    return (str(row.get("dataset", "magnetic-tile")), float(row["noise"]), int(row["seed"]),
            str(row["condition"]))


def run_benchmark(
    root: Any = None,
    *,
    datasets: Sequence[BenchmarkDataset] | None = None,
    noise_ratios: Sequence[float] = NOISE_RATIOS,
    seeds: Sequence[int] = SEEDS,
    conditions: Sequence[Condition] | None = None,
    image_size: int | None = None,
    detector: str = "patchknn",
    detector_kwargs: dict[str, Any] | None = None,
    with_pixels: bool = True,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    done: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Run every condition on every data set, noise ratio and seed; one row per run.

    Args:
        root: the Magnetic Tile folder, when ``datasets`` is not given.
        datasets: what to run on (default: Magnetic Tile and every PIPED class, see
            :func:`~noisyclean.benchmark.datasets.select_datasets`). All are loaded (their
            files listed and checked) before the first training starts.
        image_size: one size for every data set; ``None`` keeps each one's own.
        detector, detector_kwargs: the detector every condition trains (a condition's own
            ``detector_kwargs`` are merged over these).
        on_row: called with each row as soon as it is measured (to save partial results).
        done: rows of an earlier run (the same settings): a run whose data set, noise ratio,
            seed and condition one of them names is not trained again, and the rows returned
            hold only the new ones.

    Returns:
        Rows with ``dataset``, ``noise``, ``seed``, ``condition``, the achieved noise, the
        test metrics, timings, and for purifying conditions the purification diagnostics.
    """
    from noisyclean.plugins import detector_factory

    if datasets is None:
        datasets = select_datasets(mtd_root=root)
    loaded = [(spec, spec.load(image_size or spec.image_size)) for spec in datasets]
    base_kwargs = dict(detector_kwargs or {})
    finished = {row_key(r) for r in done}
    rows = []
    for spec, dataset in loaded:
        for noise in noise_ratios:
            for seed in seeds:
                split = spec.split(dataset, noise, seed)
                for condition in conditions or default_conditions():
                    if row_key({"dataset": spec.name, "noise": noise, "seed": seed,
                                "condition": condition.name}) in finished:
                        continue
                    factory = detector_factory(
                        detector, **{**base_kwargs, **(condition.detector_kwargs or {})})
                    row = {"dataset": spec.name, **run_condition(
                        condition, dataset, split, factory, seed=seed,
                        with_pixels=with_pixels)}
                    row.update(noise=noise, seed=seed, achieved_noise=split.achieved_ratio)
                    rows.append(row)
                    logger.info("%s noise %.1f seed %d %-22s image AUROC %.3f", spec.name,
                                noise, seed, condition.name, row["image_auroc"])
                    if on_row is not None:
                        on_row(row)
    return rows
