"""Two more ways to rank the training set, measured before either becomes an option (issue 13).

Both are cheap changes to what the default already computes, and both aim at failures the
benchmark page describes:

- **A self-contrasted image score for the sub-models** (``contrast``): a rare normal mode
  differs from the rest *all over* the image (lighting, texture), so every patch of it scores
  somewhat high; a defect is local, so a few patches score far above the image's own
  typical patch. Each sub-model scores an image by the top of its anomaly map *minus the
  map's median* instead of the top alone; the consensus and the whole-image view are then
  as in the default. Rows ``base/...`` and ``contrast/...``, each with the consensus alone
  (``cons``) and with the whole-image view (``full``, the default's selection).
- **The pooling of the whole-image view** (``pool/<name>``): the view ranks each image by its
  distance to its 5th nearest other image in embeddings that *average* the patch features
  over the grid, which dilutes a local defect. The same view on other poolings of the same
  cached features: ``mean`` (today's), ``std`` (per-channel spread over the grid, which a
  local defect raises), ``meanstd`` (both), ``max`` and ``gem3`` (generalised mean, p = 3).
  Each is measured alone and combined with the consensus as the Purifier combines views
  (each sample's larger rank, ``+cons``; ``mean+cons`` is the default's own selection), and
  by the mean of the two ranks (``+cons mean rank``), a softer rule for when one view is
  the weaker.

For each, per split: the selection AUROC (training defects against training normals) and
the anomaly recall at the default keep of 0.8. Only a variant that separates better on both
data sets would be worth training final detectors for; neither did (benchmarks/notes.md).

Run from the repository root (about 8 min on 2 cores with a warm feature cache)::

    python benchmarks/selection_variants_study.py benchmarks/selection-variants.json

``--summary`` instead prints the table of rows already written.
"""
import sys

import numpy as np

from noisyclean import consensus, selection, whole_image
from noisyclean.benchmark.study import run_study
from noisyclean.data import labels_of
from noisyclean.detectors.patchknn import PatchKNN
from noisyclean.metrics import image_auroc
from noisyclean.plugins import BoundFactory
from noisyclean.purifier import Purifier
from noisyclean.samples import Subset

KEEP = 0.8


class ContrastPatchKNN(PatchKNN):
    """``patchknn`` whose image score is the top of its map minus the map's median."""

    def _reduce(self, amap: np.ndarray) -> float:
        return super()._reduce(amap) - float(np.median(amap))


def poolings(feats: list[np.ndarray]) -> dict[str, np.ndarray]:
    """Whole-image vectors ``(n, C)`` (``(n, 2C)`` for ``meanstd``) from ``(C, h, w)`` maps."""
    f = [x.astype(np.float64) for x in feats]
    mean = np.stack([x.mean(axis=(1, 2)) for x in f])
    std = np.stack([x.std(axis=(1, 2)) for x in f])
    return {"mean": mean, "std": std, "meanstd": np.hstack([mean, std]),
            "max": np.stack([x.max(axis=(1, 2)) for x in f]),
            "gem3": np.stack([np.cbrt((np.clip(x, 0, None) ** 3).mean(axis=(1, 2)))
                              for x in f])}


def recall(scores: np.ndarray, is_anomaly: np.ndarray) -> float:
    """Share of the defects outside the ``KEEP`` lowest-scoring samples."""
    dropped = selection.ranking(scores)[selection.n_to_keep(KEEP, scores.size):]
    return float(is_anomaly[dropped].sum() / is_anomaly.sum())


def study_split(spec, ds, factory, noise: float, seed: int) -> dict:
    row = dict(dataset=spec.name, noise=noise, seed=seed)
    if noise == 0:  # nothing to separate
        return row
    train = Subset(ds, spec.split(ds, noise, seed).train_indices)
    is_anomaly = labels_of(train) == 1

    def measure(name: str, scores: np.ndarray) -> None:
        row[f"{name}/auroc"] = image_auroc(is_anomaly.astype(int), scores)
        row[f"{name}/recall"] = recall(scores, is_anomaly)

    contrast = BoundFactory(ContrastPatchKNN, dict(factory.kwargs), "patchknn-contrast")
    cons = None
    for name, make in (("base", factory), ("contrast", contrast)):
        for view, whole in (("cons", False), ("full", "auto")):
            fitted = Purifier(make, seed=seed, progress=False, whole_image=whole).fit(train)
            measure(f"{name}/{view}", np.asarray(fitted.selection_scores_, float))
            if (name, view) == ("base", "cons"):
                cons = np.asarray(fitted.consensus_, float)
    probe = factory()
    feats, _ = probe._features(train)  # the shared feature cache: no new extraction
    for name, emb in poolings(probe._role_features(feats, "map")).items():
        view = whole_image.outlier_scores(emb)
        measure(f"pool/{name}", view)
        measure(f"pool/{name}+cons", consensus.largest_rank(cons, view))
        measure(f"pool/{name}+cons mean rank",
                consensus.aggregate(consensus.normalize(np.vstack([cons, view]), "rank"),
                                    "mean"))
    return row


def _mean(rows: list[dict], key: str, noise: float) -> str:
    return f"{np.mean([r[key] for r in rows if r['noise'] == noise]):.3f}"


def summary(rows: list[dict]) -> str:
    """Per family and noise ratio: each variant's mean selection AUROC and recall at 0.8."""
    lines = []
    for family in sorted({r["dataset"].split("/")[0] for r in rows}):
        group = [r for r in rows if r["dataset"].split("/")[0] == family and r["noise"] > 0]
        noises = sorted({r["noise"] for r in group})
        names = sorted({k.rsplit("/", 1)[0] for r in group for k in r if k.endswith("/auroc")})
        head = " | ".join(f"AUROC / recall at {n}" for n in noises)
        lines += [f"\n{family}\n", f"| variant | {head} |", "|---" * (1 + len(noises)) + "|"]
        for name in names:
            cells = [" / ".join(_mean(group, f"{name}/{m}", n) for m in ("auroc", "recall"))
                     for n in noises]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_study(study_split, summary, sys.argv[1:], __file__)
