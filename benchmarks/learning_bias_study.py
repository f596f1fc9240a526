"""Does a stage 1 that *learns* separate the training defects better than a memory bank?

The paper's premise (issue 13, item 4, "the learning bias itself"): a network trained
briefly learns the dominant normal patterns before the rare defects, so its reconstruction
error flags the defects of its own training set. A memory bank (``patchknn``, the default)
has no such bias: it memorises every patch, defects included. This study measures, on the
benchmark's own splits, how well each stage 1 separates the training defects from the
training normals, while the final detector stays the default ``patchknn``:

- ``patchknn``: the default ``Purifier("patchknn")`` at the benchmark's budget settings; its
  ``selection_scores_`` (consensus and whole-image view) and its ``consensus_`` alone;
- ``dinomaly-<S>``: a Purifier whose k=3 sub-models are Dinomaly with the offline
  EfficientNet-Lite0 encoder, each trained for S steps on its third (in-bag scoring, the
  detector's preference); its ``consensus_``;
- ``stfpm-<E>ep`` (``--stfpm-epochs``): anomalib's STFPM student-teacher through the
  anomalib adapter (offline EfficientNet-Lite0 teacher), each sub-model trained E epochs;
- ``max(patchknn, dinomaly-<S>)`` / ``mean(...)``: the rank maximum / rank mean of the
  default's selection scores and that consensus (what a Purifier option would compute).

Per row: the AUROC of the scores for training defects vs training normals, the defect
recall at keep=0.8 (share of the training defects dropped), the wall time of that stage 1,
and, with ``--stage2``, the test image AUROC of ``patchknn`` trained on the kept 80 % and
the share of the noisy-to-oracle gap it closes. Rows are appended to ``--out`` as they
finish, and a rerun skips the (dataset, class, noise, seed, method) rows already there.

Usage (from the repository root, one torch thread)::

    NOISYCLEAN_FEATURE_CACHE_DIR=/work/scratch/featcache \\
    python benchmarks/learning_bias_study.py --dataset piped --noise 0.1 0.2 --seeds 0 \\
        --steps 50 150 400 --stage2 --out benchmarks/learning-bias-study.json
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from noisyclean.datasets import Subset

from noisyclean import Purifier, consensus, selection, whole_image
from noisyclean.benchmark import BUDGET_DETECTOR_KWARGS, BUDGET_IMAGE_SIZE
from noisyclean.data import defect_types_of, labels_of, make_noisy_split
from noisyclean.metrics import image_auroc, purification_report
from noisyclean.plugins import detector_factory

KEEP = 0.8


def datasets(name: str, image_size: int) -> list[tuple[str, Any]]:
    """``(class name, dataset)`` pairs of one benchmark data set."""
    if name == "mtd":
        from noisyclean.data import MagneticTile

        return [("mtd", MagneticTile(image_size=image_size))]
    from noisyclean.data import PIPED
    from noisyclean.data.piped import piped_classes

    return [(c, PIPED(category=c, image_size=image_size)) for c in piped_classes()]


def dinomaly_factory(steps: int, image_size: int) -> Any:
    """Dinomaly with the offline EfficientNet-Lite0 encoder, trained ``steps`` steps.

    Warm-up and hard-mining ramp shrink with the budget as in the adapter's CPU benchmark
    (2 % and 20 % of the steps, the reference's 100 and 1,000 of 5,000).
    """
    from noisyclean_dinomaly import Dinomaly

    return functools.partial(
        Dinomaly, encoder="tf_efficientnet_lite0", weights="pretrained",
        image_size=image_size, crop_size=image_size, max_steps=steps, batch_size=16,
        warmup_steps=max(1, round(steps * 0.02)),
        hard_mining_ramp_steps=max(1, round(steps * 0.2)), device="cpu", progress=False)


def rank_combine(a: np.ndarray, b: np.ndarray, how: str) -> np.ndarray:
    """Rank both score vectors into (0, 1] and take their max or mean per sample."""
    if how == "max":
        return whole_image.combine(a, b)
    return consensus.aggregate(consensus.normalize(np.vstack([a, b]), "rank"), "mean")


def keep_mask_of(scores: np.ndarray) -> np.ndarray:
    ranking = selection.ranking(scores)
    mask = np.zeros(scores.size, dtype=bool)
    mask[ranking[: selection.n_to_keep(KEEP, scores.size)]] = True
    return mask


class Split:
    """One contaminated training set, its test set, and the stage-2 reference points."""

    def __init__(self, dataset: Any, noise: float, seed: int, stage2: bool | set[str]):
        split = make_noisy_split(labels_of(dataset), defect_types_of(dataset), noise,
                                 seed=seed)
        self.train = Subset(dataset, split.train_indices)
        self.test = Subset(dataset, split.test_indices)
        self.is_anomaly = labels_of(self.train) == 1
        self.patchknn = detector_factory("patchknn", **BUDGET_DETECTOR_KWARGS)
        self.stage2 = stage2
        if stage2:
            self.noisy = self.final_auroc(np.arange(len(self.train)))
            self.oracle = self.final_auroc(np.flatnonzero(~self.is_anomaly))

    def final_auroc(self, kept: np.ndarray) -> float:
        """Stage 2: the default ``patchknn`` trained on ``kept``, tested on the test set."""
        model = self.patchknn().fit(Subset(self.train, kept))
        return float(image_auroc(labels_of(self.test), model.score(self.test)))

    def row(self, method: str, scores: np.ndarray,
            seconds: tuple[float, float]) -> dict[str, Any]:
        keep = keep_mask_of(scores)
        out = {
            "method": method,
            "selection_auroc": float(image_auroc(self.is_anomaly.astype(int), scores)),
            "recall_at_keep": purification_report(self.is_anomaly, keep)["anomaly_recall"],
            "stage1_s": seconds[0],
            "stage1_cpu_s": seconds[1],
            "n_train": int(self.is_anomaly.size),
            "n_defects": int(self.is_anomaly.sum()),
        }
        if self.stage2 is True or (self.stage2 and method in self.stage2):
            final = self.final_auroc(np.flatnonzero(keep))
            gap = self.oracle - self.noisy
            out.update(final_auroc=final, noisy_auroc=self.noisy, oracle_auroc=self.oracle,
                       gap_closed=(final - self.noisy) / gap if gap > 0 else float("nan"))
        return out


def purify(factory: Any, train: Subset, seed: int,
           **kwargs: Any) -> tuple[Purifier, tuple[float, float]]:
    """A fitted stage 1 and its (wall, CPU) seconds; on a shared machine the CPU seconds of
    this one-thread process are the steadier measure of cost."""
    wall, cpu = time.perf_counter(), time.process_time()
    purifier = Purifier(factory, k=3, keep=KEEP, seed=seed, progress=False, **kwargs).fit(train)
    return purifier, (time.perf_counter() - wall, time.process_time() - cpu)


def learners(steps: list[int], stfpm_epochs: list[int], image_size: int) -> dict[str, Any]:
    """The stage-1 factories that learn, by method name."""
    out = {f"dinomaly-{s}": dinomaly_factory(s, image_size) for s in steps}
    for e in stfpm_epochs:  # anomalib's STFPM: Lite0 teacher, a student trained e epochs
        out[f"stfpm-{e}ep"] = detector_factory("anomalib.stfpm", image_size=image_size,
                                               max_epochs=e)
    return out


def study_split(split: Split, seed: int, factories: dict[str, Any],
                done: set[str]) -> Iterator[dict[str, Any]]:
    """Rows of one split, yielded as each stage 1 finishes (so they are saved early)."""
    default, default_s = purify(split.patchknn, split.train, seed)
    base = default.selection_scores_
    if "patchknn" not in done:
        yield split.row("patchknn", base, default_s)
        yield split.row("patchknn consensus only", default.consensus_, default_s)
    for name, factory in factories.items():
        if name in done:
            continue
        # sub-models train exactly their budget (no share scaling); the whole-image view
        # would add the frozen encoder's pooled features, which are not learnt, so it is off
        learnt, learnt_s = purify(factory, split.train, seed,
                                  submodel_params=None, whole_image=False)
        yield split.row(name, learnt.consensus_, learnt_s)
        for how in ("max", "mean"):
            yield split.row(f"{how}(patchknn, {name})",
                            rank_combine(base, learnt.consensus_, how),
                            tuple(np.add(default_s, learnt_s)))


def summary(paths: list[str]) -> str:
    """A markdown table: per data set and method, the means over its splits (PIPED: over
    classes), and how many splits each mean covers."""
    rows = [r for p in paths for r in json.loads(Path(p).read_text())]
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["noise"], r["method"]), []).append(r)
    lines = ["| data | noise | method | splits | selection AUROC | recall @0.8 | "
             "stage-1 wall s | stage-1 CPU s | final AUROC | gap closed |", "|" + " --- |" * 10]
    for (data, noise, method), rs in sorted(groups.items(), key=lambda kv: kv[0][:2]):
        def mean(key: str, rs=rs) -> str:
            vals = [r[key] for r in rs if key in r and r[key] == r[key]]
            return f"{np.mean(vals):.3f}" if vals else "-"
        wall, cpu = (mean(key).rsplit(".", 1)[0] for key in ("stage1_s", "stage1_cpu_s"))
        lines.append(f"| {data} | {noise} | {method} | {len(rs)} | {mean('selection_auroc')} | "
                     f"{mean('recall_at_keep')} | {wall} | {cpu} | "
                     f"{mean('final_auroc')} | {mean('gap_closed')} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", choices=("mtd", "piped"), default="piped")
    parser.add_argument("--classes", nargs="*", default=None, help="PIPED classes (all)")
    parser.add_argument("--noise", type=float, nargs="+", default=[0.1, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, nargs="*", default=[50, 150, 400])
    parser.add_argument("--stfpm-epochs", type=int, nargs="*", default=[],
                        help="also anomalib STFPM sub-models trained this many epochs")
    parser.add_argument("--image-size", type=int, default=BUDGET_IMAGE_SIZE)
    parser.add_argument("--stage2", action="store_true",
                        help="train patchknn on each kept set and test it")
    parser.add_argument("--stage2-methods", nargs="*", default=None,
                        help="with --stage2: only these methods (default: all)")
    parser.add_argument("--out", default="benchmarks/learning-bias-study.json")
    parser.add_argument("--summary", nargs="*", default=None,
                        help="print a markdown table of these result files and exit")
    args = parser.parse_args()
    if args.summary is not None:
        print(summary(args.summary))
        return
    torch.set_num_threads(1)
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    for cls, data in datasets(args.dataset, args.image_size):
        if args.classes and cls not in args.classes:
            continue
        for noise in args.noise:
            for seed in args.seeds:
                key = dict(dataset=args.dataset, cls=cls, noise=noise, seed=seed)
                done = {r["method"] for r in rows if all(r[k] == v for k, v in key.items())}
                split = Split(data, noise, seed, set(args.stage2_methods)
                              if args.stage2 and args.stage2_methods else args.stage2)
                factories = learners(args.steps, args.stfpm_epochs, args.image_size)
                for row in study_split(split, seed, factories, done):
                    rows.append({**key, **row})
                    print(json.dumps(rows[-1]), flush=True)
                    tmp = out.with_suffix(".tmp")
                    tmp.write_text(json.dumps(rows, indent=1))
                    tmp.replace(out)


if __name__ == "__main__":
    main()
