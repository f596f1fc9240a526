"""How many training images community removal flags and tail protection protects, and how
many of them are defects, on the benchmark's own splits (issue 13; cited in
benchmarks/notes.md).

Uses the library's own functions at their defaults (`noisyclean.community.communities` on the
mutual view's distances, 128 reference images x 32 patches; `noisyclean.tail` on the
whole-image embeddings, 5th neighbour) with the benchmark's budget detector. Run from the
repository root (about 30 min on 2 shared cores)::

    python benchmarks/views_diagnostics.py benchmarks/views-diagnostics.json

``--summary`` instead prints the table of rows already written.
"""
import sys

import numpy as np

from noisyclean import community as co
from noisyclean import mutual as mu
from noisyclean import tail as ta
from noisyclean import whole_image as wi
from noisyclean.benchmark.study import run_study
from noisyclean.data import labels_of
from noisyclean.samples import Subset

COUNTS = ("defects", "flagged", "flagged_defects", "protected", "protected_defects")


def study_split(spec, ds, factory, noise: float, seed: int) -> dict:
    det = factory()
    train = Subset(ds, spec.split(ds, noise, seed).train_indices)
    y = labels_of(train) == 1
    patches = mu.patch_embeddings_of(det, train)
    n = len(train)
    rng = np.random.default_rng(seed)
    refs = np.sort(rng.permutation(n)[: min(128, n)])
    dist = mu.image_distances(patches, refs, 32, seed=seed)
    flagged = co.communities(dist, refs, np.arange(len(refs)))
    protected = ta.tail_mask(ta.mode_sizes(wi.embeddings_of(det, train), 5))
    return dict(dataset=spec.name, noise=noise, seed=seed, n=n, defects=int(y.sum()),
                flagged=int(flagged.sum()), flagged_defects=int((flagged & y).sum()),
                protected=int(protected.sum()), protected_defects=int((protected & y).sum()))


def summary(rows: list[dict]) -> str:
    """The counts summed over seeds (and PIPED's classes), per family and noise ratio."""
    lines = ["| data set | noise | " + " | ".join(COUNTS) + " |", "|---" * (2 + len(COUNTS)) + "|"]
    for family in sorted({r["dataset"].split("/")[0] for r in rows}):
        for noise in sorted({r["noise"] for r in rows}):
            group = [r for r in rows
                     if r["dataset"].split("/")[0] == family and r["noise"] == noise]
            lines.append(f"| {family} | {noise} | "
                         + " | ".join(str(sum(r[c] for r in group)) for c in COUNTS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_study(study_split, summary, sys.argv[1:], __file__)
