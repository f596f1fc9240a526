"""The HTML report of a purification of real Magnetic Tile images.

Builds a training set of Magnetic Tile images (160 px) with 10 % defects (the noise protocol of
:func:`noisyclean.data.make_noisy_split`), purifies it with ``patchknn``, trains the final
detector on what was kept (it draws the anomaly maps of the dropped images) and writes the
report. This is the run behind ``docs/img/report-mtd.png``. Run from a checkout::

    python examples/report_mtd.py --out /tmp/mtd-report

The data is found through ``NOISYCLEAN_MTD_ROOT`` or ``../shared/data/magnetic-tile``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from noisyclean import Purifier
from noisyclean.data import MagneticTile, defect_types_of, labels_of, make_noisy_split


def run(out: Path, noise: float = 0.1, test_normal_fraction: float = 0.6, image_size: int = 160,
        keep: float = 0.85, seed: int = 0) -> Path:
    """Purify a contaminated Magnetic Tile split and write ``out/report.html``."""
    data = MagneticTile(image_size=image_size)
    split = make_noisy_split(labels_of(data), defect_types_of(data), noise, seed=seed,
                             test_normal_fraction=test_normal_fraction)
    logging.getLogger(__name__).info("split: %s", split)
    train = data.subset(split.train_indices)
    start = time.perf_counter()
    # 160 px and a 5 % coreset keep this to minutes on a laptop CPU; the cache lets an
    # interrupted run resume (NOISYCLEAN_FEATURE_CACHE_DIR also keeps the features)
    purifier = Purifier("patchknn", k=3, keep=keep, seed=seed, cache_dir=out / "cache",
                        detector_kwargs={"coreset_ratio": 0.05, "seed": seed}).fit(train)
    purifier.fit_final(train)
    logging.getLogger(__name__).info("purified and trained in %.0f s",
                                     time.perf_counter() - start)
    return purifier.report(train, out / "report.html",
                           title="noisyclean report: Magnetic Tile, 10 % defects, patchknn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("mtd-report"))
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    path = run(args.out, noise=args.noise, seed=args.seed)
    logging.getLogger(__name__).info("report: %s", path)


if __name__ == "__main__":
    main()
