"""``noisyclean demo``: the whole method on a small, self-contained, offline example.

It builds a contaminated training set from scikit-image's bundled CC0 textures with
synthetic defects (exact masks), trains the default detector on it as is ("noisy"), purifies
it and trains again on what was kept ("noisyclean"), trains on the true normals only
("oracle"), and compares the three on a held-out test set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean.outdir import plan_output
from noisyclean.persistence import MANIFEST_FORMAT
from noisyclean.purifier import Purifier
from noisyclean.samples import Subset

logger = logging.getLogger(__name__)


@dataclass
class DemoResult:
    rows: list[dict[str, Any]] = field(default_factory=list)
    purifier: Purifier | None = None
    split: Any = None
    seconds: float = 0.0


def demo_split(*, n_normal: int, n_anomalous: int, image_size: int, noise_ratio: float,
               seed: int) -> tuple[Subset, Subset, Any]:
    """The demo's training and test sets, and the split that made them (deterministic).

    The report of a ``noisyclean demo --out`` run calls this again to show the images.
    """
    from noisyclean.data import defect_types_of, labels_of, make_noisy_split, make_texture_dataset

    data = make_texture_dataset(n_normal=n_normal, n_anomalous=n_anomalous,
                                image_size=image_size, seed=seed)
    split = make_noisy_split(labels_of(data), defect_types_of(data), noise_ratio, seed=seed)
    return Subset(data, split.train_indices), Subset(data, split.test_indices), split


def _evaluate(detector: Any, test: Subset) -> dict[str, float]:
    from noisyclean.data import labels_of, masks_of
    from noisyclean.metrics import image_metrics, pixel_metrics

    out = dict(image_metrics(labels_of(test), detector.score(test)))
    pixel = pixel_metrics(masks_of(test), detector.score_maps(test))
    out["pixel_auroc"] = pixel["pixel_auroc"]
    out["pixel_aupro"] = pixel["pixel_aupro"]
    return out


def run_demo(
    *,
    n_normal: int = 200,
    n_anomalous: int = 80,
    noise_ratio: float = 0.2,
    image_size: int = 96,
    seed: int = 0,
    detector: str = "patchknn",
    detector_kwargs: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    progress: bool = True,
    overwrite: bool = False,
    **purifier_kwargs: Any,
) -> DemoResult:
    """Run the demo and return one row of metrics per condition.

    ``purifier_kwargs`` go to the :class:`~noisyclean.Purifier` (its defaults otherwise).
    With ``out_dir``, the purify outputs (lists, scores, manifest) are written there too,
    under the rules of :mod:`noisyclean.outdir` (an earlier run is replaced only with
    ``overwrite``; files noisyclean did not write never are).
    """
    from noisyclean.data import labels_of
    from noisyclean.metrics import purification_report
    from noisyclean.plugins import detector_factory

    plan = plan_output(Path(out_dir), MANIFEST_FORMAT, overwrite) if out_dir is not None \
        else None
    start = time.perf_counter()
    train, test, split = demo_split(n_normal=n_normal, n_anomalous=n_anomalous,
                                    image_size=image_size, noise_ratio=noise_ratio, seed=seed)
    is_anomaly = labels_of(train) == 1
    factory = detector_factory(detector, **(detector_kwargs or {}))
    result = DemoResult(split=split)

    def row(name: str, model: Any, train_anomaly_fraction: float, seconds: float) -> None:
        metrics = _evaluate(model, test)
        result.rows.append({"condition": name, "train_anomaly_fraction": train_anomaly_fraction,
                            "train_s": seconds, **metrics})

    t = time.perf_counter()
    noisy = factory().fit(train)
    row("noisy (train on everything)", noisy, float(is_anomaly.mean()), time.perf_counter() - t)

    t = time.perf_counter()
    purifier = Purifier(factory, seed=seed, progress=progress, **purifier_kwargs).fit(train)
    final = purifier.fit_final(train)
    purity = purification_report(is_anomaly, purifier.keep_mask_)
    row("noisyclean (purified)", final, purity["anomaly_fraction_after"],
        time.perf_counter() - t)
    result.rows[-1]["anomaly_recall"] = purity["anomaly_recall"]
    result.rows[-1]["normals_lost"] = purity["normals_lost"]

    t = time.perf_counter()
    oracle = factory().fit(Subset(train, np.flatnonzero(~is_anomaly)))
    row("oracle (true normals only)", oracle, 0.0, time.perf_counter() - t)

    result.purifier = purifier
    if plan is not None:
        from noisyclean.runs import write_outputs

        plan.clear_earlier_run()
        write_outputs(purifier, train, Path(out_dir), extra={
            "dataset": {"layout": "demo", "image_size": image_size, "seed": seed,
                        "n_normal": n_normal, "n_anomalous": n_anomalous,
                        "noise_ratio": noise_ratio},
        })
    result.seconds = time.perf_counter() - start
    return result


def render_table(result: DemoResult) -> Any:
    """A rich table of the demo's rows."""
    from rich.table import Table

    table = Table(title="noisyclean demo: synthetic texture defects, "
                        f"{result.split.achieved_ratio:.0%} of the training set anomalous",
                  caption="train s: wall time to train (purified: stage 1 + stage 2). Backbone "
                          "features are computed once and shared, so the first row pays for "
                          "them.")
    for col in ("condition", "train anomalies", "image AUROC", "pixel AUROC", "AUPRO",
                "train s"):
        table.add_column(col, justify="left" if col == "condition" else "right")
    for r in result.rows:
        table.add_row(r["condition"], f"{r['train_anomaly_fraction']:.1%}",
                      f"{r['image_auroc']:.3f}", f"{r['pixel_auroc']:.3f}",
                      f"{r['pixel_aupro']:.3f}", f"{r['train_s']:.1f}")
    return table
