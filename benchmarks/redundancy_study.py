"""How alike a data set's images are, seen from the training set alone (issue 13).

Dropping normals cost nothing on PIPED (`keep 0.6`: +0.004 on clean data) and 0.078 on
Magnetic Tile. A keep chosen from the data would need to see that difference without labels.
This study measures one candidate signal, a learning curve: split the training set into a
bank half and a probe half at random, build the default detector's memory bank from all of
the bank half and from a random half of it, and score the probe half with both. The ratio of
the probes' scores (half bank over full bank) is near 1 when fewer images already cover the
set (its images are alike) and grows when every image adds appearance of its own. The
median and the 90th percentile of the probes are both reported; defects among the probes
sit in the upper tail, so the median is mostly about the normals.

Run from the repository root (a few minutes on 2 cores with a warm feature cache)::

    python benchmarks/redundancy_study.py benchmarks/redundancy-study.json

``--summary`` instead prints the table of rows already written.
"""
import sys

import numpy as np

from noisyclean.benchmark.study import run_study
from noisyclean.samples import Subset


def probe_scores(factory, train, bank: np.ndarray, probes: np.ndarray) -> np.ndarray:
    """Scores of ``train[probes]`` by the default detector fitted on ``train[bank]``."""
    return factory().fit(Subset(train, bank)).score(Subset(train, probes))


def study_split(spec, ds, factory, noise: float, seed: int) -> dict:
    split = spec.split(ds, noise, seed)
    train = Subset(ds, split.train_indices)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(train))
    bank, probes = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2:])
    half = np.sort(rng.choice(bank, len(bank) // 2, replace=False))
    full_scores = probe_scores(factory, train, bank, probes)
    half_scores = probe_scores(factory, train, half, probes)
    row = dict(dataset=spec.name, noise=noise, seed=seed, n=len(train))
    for name, q in (("median", 50), ("p90", 90)):
        row[f"ratio_{name}"] = float(np.percentile(half_scores, q)
                                     / np.percentile(full_scores, q))
    return row


def summary(rows: list[dict]) -> str:
    """Mean ratios per family and noise ratio, with their range over the splits."""
    lines = ["| data set | noise | median ratio (range) | 90th-percentile ratio (range) |",
             "|---|---|---|---|"]
    for family in sorted({r["dataset"].split("/")[0] for r in rows}):
        for noise in sorted({r["noise"] for r in rows}):
            group = [r for r in rows
                     if r["dataset"].split("/")[0] == family and r["noise"] == noise]
            cells = []
            for key in ("ratio_median", "ratio_p90"):
                v = np.array([r[key] for r in group])
                cells.append(f"{v.mean():.3f} ({v.min():.3f}–{v.max():.3f})")
            lines.append(f"| {family} | {noise} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_study(study_split, summary, sys.argv[1:], __file__)
