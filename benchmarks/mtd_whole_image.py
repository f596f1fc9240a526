"""A lead from the strategy study, checked with the real detector: add a whole-image view.

The strategy study found that Magnetic Tile's defect images differ as a whole (their maps
are raised everywhere), and that purifying by the larger of two ranks, the recipe's
consensus and how unusual an image is as a whole, gained on contaminated data without a
loss on clean data. That study used exact full banks. This script checks the same idea
with what the library runs: the Purifier's defaults and ``patchknn`` at the benchmark's
2-core budget, on the benchmark's splits, 3 seeds.

Per noise ratio and seed, it trains and tests on the same images:

- ``noisy``, ``oracle`` and ``noisyclean`` (the default), as ``noisyclean benchmark``;
- ``noisyclean or whole``: the same Purifier's consensus, but each training image's rank is
  the larger of its consensus rank and its rank in ``whole``, the leave-one-out distance to
  its 5th nearest training image in standardised mean backbone features (all 152
  channels); the lowest 80 % by that rank are kept and the final detector trains on them.

Nothing here is part of the library yet; it measures whether it should be. Run from the
repository root (about 6 minutes on 2 cores)::

    python benchmarks/mtd_whole_image.py --out benchmarks/mtd-whole-image.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
from mtd_strategy_study import keep_lowest, uniform_ranks, whole_image_scores  # beside us

from noisyclean import Purifier
from noisyclean._io import atomic_write_json
from noisyclean.benchmark import BUDGET_DETECTOR_KWARGS, BUDGET_IMAGE_SIZE
from noisyclean.data import MagneticTile, defect_types_of, labels_of, make_noisy_split
from noisyclean.datasets import Subset
from noisyclean.detectors.patchknn import PatchKNN
from noisyclean.metrics import image_metrics
from noisyclean.plugins import detector_factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="Magnetic Tile root (default: as the CLI)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/mtd-whole-image.json"))
    parser.add_argument("--noise", default="0,0.1,0.2,0.4")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    dataset = MagneticTile(args.data, image_size=BUDGET_IMAGE_SIZE)
    labels, types = labels_of(dataset), defect_types_of(dataset)
    pooled = PatchKNN().patch_features(dataset).astype(np.float32).mean(axis=(2, 3))
    factory = detector_factory("patchknn", **BUDGET_DETECTOR_KWARGS)
    rows = []
    for noise in (float(v) for v in args.noise.split(",")):
        for seed in (int(v) for v in args.seeds.split(",")):
            split = make_noisy_split(labels, types, noise, seed=seed)
            train_idx = np.asarray(split.train_indices)
            train, test = Subset(dataset, train_idx), Subset(dataset, split.test_indices)
            y = labels[train_idx]
            purifier = Purifier(factory, seed=seed, progress=False).fit(train)
            combined = np.maximum(uniform_ranks(purifier.consensus_),
                                  uniform_ranks(whole_image_scores(pooled[train_idx])))
            kept_sets = {
                "noisy": np.arange(len(train_idx)),
                "oracle": np.flatnonzero(y == 0),
                "noisyclean": purifier.keep_indices_,
                "noisyclean or whole": keep_lowest(np.arange(len(train_idx)), combined, 0.8),
            }
            for condition, kept in kept_sets.items():
                model = factory().fit(Subset(train, kept))
                auroc = image_metrics(labels_of(test), model.score(test))["image_auroc"]
                dropped = np.setdiff1d(np.arange(len(train_idx)), kept)
                recall = float(y[dropped].sum() / y.sum()) if y.sum() else float("nan")
                rows.append({"noise": noise, "seed": seed, "condition": condition,
                             "image_auroc": float(auroc), "anomaly_recall": recall})
                print(json.dumps(rows[-1]), flush=True)
            atomic_write_json(args.out, rows)
    print(summary(rows))


def summary(rows: list[dict]) -> str:
    """Mean image AUROC per condition and noise, with the gap closed (loss at noise 0)."""
    noises = sorted({r["noise"] for r in rows})
    mean = {(n, c): statistics.mean(r["image_auroc"] for r in rows
                                     if r["noise"] == n and r["condition"] == c)
            for n in noises for c in {r["condition"] for r in rows}}
    lines = ["| condition | " + " | ".join(f"noise {n}" for n in noises) + " |",
             "|---|" + "---|" * len(noises)]
    for cond in dict.fromkeys(r["condition"] for r in rows):
        cells = []
        for n in noises:
            ours, noisy, oracle = mean[(n, cond)], mean[(n, "noisy")], mean[(n, "oracle")]
            extra = (f"{ours - oracle:+.3f}" if abs(oracle - noisy) < 1e-9
                     else f"{(ours - noisy) / (oracle - noisy):.0%}")
            cells.append(f"{ours:.3f} ({extra})")
        lines.append(f"| {cond} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
