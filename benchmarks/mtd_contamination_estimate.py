"""Can the whole-image view tell how contaminated a training set is? (On Magnetic Tile: no.)

``keep="auto"`` would lose nothing on clean data and still drop the defects of a dirty set
if something in the data told how many defects there are. The sub-models' consensus does
not (docs/benchmarks.md). This script asks the same of the whole-image view: on each of the
benchmark's splits (noise 0, 0.1, 0.2 and 0.4; seeds 0, 1 and 2; 160 px) it counts the
training images whose whole-image distance has a modified z-score above ``keep="auto"``'s
cut-off (3.5), and how many of the images the view ranks highest, as many as there are
defects, are defects. Run from the repository root (about 2 minutes on 2 cores)::

    python benchmarks/mtd_contamination_estimate.py
"""

from __future__ import annotations

import argparse

import numpy as np

from noisyclean.benchmark import BUDGET_IMAGE_SIZE
from noisyclean.data import MagneticTile, defect_types_of, labels_of, make_noisy_split
from noisyclean.detectors.patchknn import PatchKNN
from noisyclean.selection import AUTO_Z_THRESHOLD, estimate_n_keep
from noisyclean.whole_image import outlier_scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="Magnetic Tile root (default: as the CLI)")
    args = parser.parse_args()
    dataset = MagneticTile(args.data, image_size=BUDGET_IMAGE_SIZE)
    embeddings = PatchKNN().embed(dataset)
    labels, types = labels_of(dataset), defect_types_of(dataset)
    print("| noise | seed | training images | defects | flagged (z > 3.5) | "
          "defects among the top-ranked |")
    print("|---|---|---|---|---|---|")
    for noise in (0.0, 0.1, 0.2, 0.4):
        for seed in (0, 1, 2):
            train = np.asarray(make_noisy_split(labels, types, noise, seed=seed).train_indices)
            scores = outlier_scores(embeddings[train])
            y = labels[train]
            flagged = len(train) - estimate_n_keep(scores, AUTO_Z_THRESHOLD)
            n_defects = int(y.sum())
            top = np.argsort(-scores)[:n_defects]
            precision = f"{y[top].mean():.2f}" if n_defects else "-"
            print(f"| {noise} | {seed} | {len(train)} | {n_defects} | {flagged} | {precision} |")


if __name__ == "__main__":
    main()
