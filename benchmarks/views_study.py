"""Which selection view separates training defects from training normals, on two data sets.

Issue 13 asks for views built for the failures the strategy study found (repeated defect
types vouch for each other; rare normal modes look as rare as a defect type) and for a
``keep="auto"`` that estimates contamination. This study measures them on Magnetic Tile
and on the four PIPED development classes, on the benchmark's own splits
(:func:`noisyclean.data.make_noisy_split`, seeds 0, 1, 2, noise 0 to 0.4).

It computes once, per data set, the distance of every patch of every image to its nearest
patch in every other image, ``D[i, p, j]``, in the benchmark detector's features
(``patchknn`` at 160 px, 64 projected channels; the shared feature cache gives the backbone
features). Every candidate's selection score is then a cheap function of the rows and
columns of ``D`` that belong to a split's training set:

- ``loo1``: the leave-one-out nearest image (the detector's own view of its training set);
- ``musc<X>``: MuSc's interval average (Li et al., ICLR 2024): per patch, the mean of its
  distances to the closest ``X`` % of the other images, not the single nearest; an image
  scores the mean of its top 1 % patches. A defect type with fewer images than ``X`` % of
  the set cannot vouch for itself;
- ``burnout``: CoDeGraph's "neighbour burnout" (arXiv 2510.10456) reduced to its image
  signal (no graph or community detection): the largest jump of the sorted image-distance
  curve of an image's top patches within the closest 30 % (a small community that matches
  it, then nothing);
- ``ref<q>/...``: score again, against a reference set that keeps only the ``q`` most
  normal images by ``musc10`` (each image left out of its own reference set), so that a
  defect type whose members were flagged in the first pass loses its vouchers;
- the library's views from a real ``Purifier`` fit on the split: ``recipe`` (the
  sub-models' consensus), ``global5`` (the whole-image view) and ``default`` (their
  combination, today's default).

For each split and candidate it records the selection AUROC (training defects against
training normals), the anomaly recall at keep 0.8 and at several ``keep="auto"`` rules, and,
for the candidates named in ``--final``, the test image AUROC of the default detector
(``patchknn`` at the benchmark's budget settings) trained on what each kept: the benchmark's
``noisy`` and ``oracle`` conditions come from :func:`noisyclean.benchmark.run_condition`.

Run from the repository root. On 2 cores shared with other jobs (load about 20), Magnetic
Tile's distances took 4 min (kept and resumed), then about 10 min per split, PIPED about
2 min per split; ``--baselines-from`` reuses the benchmark's noisy and oracle rows::

    NOISYCLEAN_FEATURE_CACHE_DIR=/tmp/featcache python benchmarks/views_study.py \\
        --work /tmp/views-study --out benchmarks/views-study.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from noisyclean.datasets import Subset
from sklearn.metrics import roc_auc_score

from noisyclean import selection
from noisyclean._io import atomic_write_json
from noisyclean.benchmark import (
    BUDGET_DETECTOR_KWARGS,
    BUDGET_IMAGE_SIZE,
    Condition,
    _test_metrics,
    run_condition,
)
from noisyclean.data import defect_types_of, labels_of, make_noisy_split
from noisyclean.detectors.patchknn import PatchKNN, greedy_coreset
from noisyclean.plugins import detector_factory
from noisyclean.purifier import Purifier

NOISE_RATIOS = (0.0, 0.1, 0.2, 0.4)
SEEDS = (0, 1, 2)
TOP_PATCHES = 0.01
MUSC_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)
REFERENCE_PATCHES = 64
REFERENCE_IMAGES = 256
"""Each reference image is represented by this many of its 400 patches (the greedy coreset)
and a split scores against the at most 256 fixed random reference images in its training
set: the exact all-pairs distances of Magnetic Tile's 1,344 images took hours on 2 shared
cores. The approximation was not checked against the exact distances."""


def open_dataset(name: str) -> Any:
    from noisyclean.data import PIPED, MagneticTile

    if name == "mtd":
        return MagneticTile(None, image_size=BUDGET_IMAGE_SIZE)
    return PIPED(None, category=name, image_size=BUDGET_IMAGE_SIZE)


def projected_patches(dataset: Any) -> torch.Tensor:
    """``(N, P, 64)``: the budget detector's own projected patch features of every image."""
    det = PatchKNN(**BUDGET_DETECTOR_KWARGS)  # the dataset is already at the budget size
    feats = list(det.patch_features(dataset))
    det.projection_ = det._projection(feats[0].shape[0])
    x = det._patches(feats)
    return x.reshape(x.shape[0], -1, x.shape[-1]).contiguous()


def reference_patches(x: torch.Tensor, per_image: int) -> torch.Tensor:
    """``(N, R, d)``: each image's ``per_image`` patches chosen by the greedy k-center
    coreset, which covers an image's unusual patches (a defect) first."""
    return torch.stack([x[i, greedy_coreset(x[i], per_image, None, seed=0)]
                        for i in range(x.shape[0])])


class Distances:
    """``d[i, p, c]``: patch p of image i to its nearest reference patch of the reference
    image ``columns[c]``, for every image of a data set and a fixed random set of at most
    ``n_refs`` reference images (MuSc's cheaper variant: a split scores against the
    references that lie in its training set). Computed once and kept (resumable)."""

    def __init__(self, name: str, work: Path, per_image: int = REFERENCE_PATCHES,
                 n_refs: int = REFERENCE_IMAGES, block: int = 4):
        folder = work / f"{name}-r{per_image}-m{n_refs}"
        folder.mkdir(parents=True, exist_ok=True)
        path, done_path = folder / "distances.npy", folder / "distances-done.npy"
        dataset = open_dataset(name)
        n = len(dataset)
        self.columns = np.sort(np.random.default_rng(0).permutation(n)[: min(n_refs, n)])
        if not (done_path.exists() and np.load(done_path).all()):
            self._compute(dataset, path, done_path, per_image, block)
        self.d = np.load(path, mmap_mode="r")
        self.column_of = {int(c): k for k, c in enumerate(self.columns)}

    def _compute(self, dataset: Any, path: Path, done_path: Path, per_image: int,
                 block: int) -> None:
        x = projected_patches(dataset)
        n, p, d = x.shape
        m = len(self.columns)
        bank = reference_patches(x[torch.from_numpy(self.columns)], per_image)
        bank = bank.reshape(-1, d).contiguous()
        bank_sq = (bank * bank).sum(1)
        dist = np.lib.format.open_memmap(path, mode="r+" if path.exists() else "w+",
                                         dtype=np.float16, shape=(n, p, m))
        done = (np.load(done_path) if done_path.exists()
                else np.zeros((n + block - 1) // block, bool))
        start = time.perf_counter()
        for b in np.flatnonzero(~done):
            q = x[b * block:(b + 1) * block].reshape(-1, d)
            d2 = torch.addmm(bank_sq[None] + (q * q).sum(1)[:, None], q, bank.T, alpha=-2)
            nearest = d2.view(-1, m, per_image).amin(2).clamp_min_(0).sqrt_()
            dist[b * block:(b + 1) * block] = nearest.view(-1, p, m).numpy().astype(np.float16)
            done[b] = True
            if b % 25 == 0 or done.all():
                dist.flush()
                np.save(done_path, done)
                print(f"distances: {int(done.sum())}/{done.size} blocks "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)

    def references_in(self, images: np.ndarray) -> np.ndarray:
        """The reference images among ``images`` (dataset indices)."""
        return np.asarray([i for i in images if int(i) in self.column_of], dtype=np.int64)


# -- selection scores from the distances ----------------------------------------------------
def top_mean(patch_scores: torch.Tensor) -> torch.Tensor:
    """An image's score: the mean of its top ``TOP_PATCHES`` patch scores."""
    k = max(1, math.ceil(TOP_PATCHES * patch_scores.shape[1]))
    return patch_scores.topk(k, dim=1).values.mean(1)


def sorted_profiles(dist: Distances, rows: np.ndarray, refs: np.ndarray, chunk: int = 32):
    """Yield ``(start, S)``: for ``rows[start:start+b]``, each patch's distances to every
    reference image in ``refs`` except itself, sorted ascending, ``(b, P, len(refs) - self)``."""
    ref_pos = {int(r): k for k, r in enumerate(refs)}
    cols = np.asarray([dist.column_of[int(r)] for r in refs])
    for s in range(0, len(rows), chunk):
        block_rows = rows[s:s + chunk]
        order = np.argsort(block_rows)
        sorted_rows = block_rows[order]
        block = np.asarray(dist.d[sorted_rows])[:, :, cols]
        block = torch.from_numpy(block.astype(np.float32))[torch.from_numpy(np.argsort(order))]
        selfs = [ref_pos.get(int(r)) for r in block_rows]
        for a, k in enumerate(selfs):
            if k is not None:
                block[a, :, k] = float("inf")
        m = len(refs) - (1 if any(k is not None for k in selfs) else 0)
        yield s, block.sort(dim=2).values[:, :, :m]


def profile_scores(dist: Distances, rows: np.ndarray, refs: np.ndarray) -> dict[str, np.ndarray]:
    """Every distance-profile candidate's image scores for ``rows`` against ``refs``."""
    out: dict[str, list[torch.Tensor]] = {}

    def add(name: str, value: torch.Tensor) -> None:
        out.setdefault(name, []).append(value)

    for _, s in sorted_profiles(dist, rows, refs):
        m = s.shape[2]
        csum = s.cumsum(2)
        add("loo1", top_mean(s[:, :, 0]))
        add("loo3", top_mean(s[:, :, min(2, m - 1)]))
        for frac in MUSC_FRACTIONS:
            width = max(1, round(frac * m))
            add(f"musc{round(frac * 100)}", top_mean(csum[:, :, width - 1] / width))
        # burnout: on each image's top patches (by musc10), the largest step of the log
        # sorted curve within the closest 30 %, over a window of 3 images
        width = max(1, round(0.1 * m))
        musc = csum[:, :, width - 1] / width
        k = max(1, math.ceil(TOP_PATCHES * s.shape[1]))
        top = musc.topk(k, dim=1).indices
        curve = torch.gather(s, 1, top[:, :, None].expand(-1, -1, m)).mean(1)  # (b, m)
        span = max(4, round(0.3 * m))
        logc = curve[:, :span].clamp_min(1e-6).log()
        add("burnout", (logc[:, 3:] - logc[:, :-3]).amax(1))
    return {name: torch.cat(v).numpy().astype(np.float64) for name, v in out.items()}


def ranks(x: np.ndarray) -> np.ndarray:
    return (np.argsort(np.argsort(x, kind="stable"), kind="stable") + 1.0) / len(x)


# -- keep="auto" rules ----------------------------------------------------------------------
def auto_mz(scores: np.ndarray, z: float = selection.AUTO_Z_THRESHOLD) -> int:
    """Today's rule (modified z-score of the scores above 3.5), on log scores."""
    return selection.estimate_n_keep(np.log(np.maximum(scores, 1e-12)), z)


def auto_gmm(scores: np.ndarray, min_separation: float = 2.0) -> int:
    """A two-component Gaussian mixture on log scores: the high component is contamination
    when the two means lie ``min_separation`` pooled standard deviations apart; samples
    whose posterior of the high component exceeds 0.5 are dropped."""
    from sklearn.mixture import GaussianMixture

    x = np.log(np.maximum(scores, 1e-12))[:, None]
    gm = GaussianMixture(2, random_state=0, n_init=3).fit(x)
    hi = int(np.argmax(gm.means_[:, 0]))
    sd = np.sqrt(gm.covariances_.reshape(2))
    gap = abs(gm.means_[1, 0] - gm.means_[0, 0]) / np.sqrt((sd ** 2).mean())
    if gap < min_separation:
        return len(scores)
    drop = gm.predict_proba(x)[:, hi] > 0.5
    return max(1, int((~drop).sum()))


def auto_bic(scores: np.ndarray, min_separation: float = 2.0) -> int:
    """Like :func:`auto_gmm`, but the two components must also explain the log scores
    better than one by the Bayesian information criterion, and the high one must be the
    smaller: on clean data one Gaussian wins and nothing is dropped."""
    from sklearn.mixture import GaussianMixture

    x = np.log(np.maximum(scores, 1e-12))[:, None]
    one = GaussianMixture(1, random_state=0).fit(x)
    two = GaussianMixture(2, random_state=0, n_init=3).fit(x)
    hi = int(np.argmax(two.means_[:, 0]))
    sd = np.sqrt(two.covariances_.reshape(2))
    gap = abs(two.means_[1, 0] - two.means_[0, 0]) / np.sqrt((sd ** 2).mean())
    if two.bic(x) >= one.bic(x) or two.weights_[hi] >= 0.5 or gap < min_separation:
        return len(scores)
    drop = two.predict_proba(x)[:, hi] > 0.5
    return max(1, int((~drop).sum()))


AUTO_RULES = {"mz3.5": auto_mz, "mz2.5": lambda s: auto_mz(s, 2.5), "gmm": auto_gmm,
              "bic": auto_bic}


# -- one split ------------------------------------------------------------------------------
def candidate_scores(dist: Distances, train: np.ndarray, purifier: Purifier,
                     ref_fractions: tuple[float, ...]) -> dict[str, np.ndarray]:
    scores = profile_scores(dist, train, dist.references_in(train))
    scores["recipe"] = purifier.consensus_
    scores["global5"] = purifier.whole_image_scores_
    scores["default"] = purifier.selection_scores_
    for name in ("musc10", "musc30"):
        for other in ("global5", "recipe", "default"):
            scores[f"{name} or {other}"] = np.maximum(ranks(scores[name]), ranks(scores[other]))
    first = scores["musc10"]
    for q in ref_fractions:
        trusted = train[np.sort(selection.ranking(first)[: selection.n_to_keep(q, len(train))])]
        again = profile_scores(dist, train, dist.references_in(trusted))
        for name in ("loo1", "musc10", "musc30"):
            scores[f"ref{round(q * 100)}/{name}"] = again[name]
    return scores


def selection_row(y: np.ndarray, s: np.ndarray) -> dict[str, Any]:
    row: dict[str, Any] = {}
    anomalies = y == 1
    if 0 < anomalies.sum() < len(y):
        row["sel_auroc"] = float(roc_auc_score(y, s))
    order = selection.ranking(s)
    n = len(y)
    for label, n_keep in [("0.8", selection.n_to_keep(0.8, n)),
                          *[(f"auto:{r}", f(s)) for r, f in AUTO_RULES.items()]]:
        dropped = np.zeros(n, bool)
        dropped[order[n_keep:]] = True
        row[f"n_drop@{label}"] = int(dropped.sum())
        row[f"normals_dropped@{label}"] = int((dropped & ~anomalies).sum())
        if anomalies.any():
            row[f"recall@{label}"] = float((dropped & anomalies).sum() / anomalies.sum())
    return row


def final_auroc(dataset: Any, split: Any, factory: Any, kept_positions: np.ndarray) -> float:
    train = Subset(dataset, split.train_indices)
    test = Subset(dataset, split.test_indices)
    model = factory().fit(Subset(train, np.sort(kept_positions)))
    return float(_test_metrics(model, test, with_pixels=False)["image_auroc"])


def run_split(name: str, dataset: Any, dist: Distances, noise: float, seed: int,
              finals: list[str], final_keeps: list[str], score_dir: Path,
              baselines: bool = True) -> list[dict[str, Any]]:
    labels, types = labels_of(dataset), defect_types_of(dataset)
    split = make_noisy_split(labels, types, noise, seed=seed)
    train = np.asarray(split.train_indices)
    y = labels[train]
    factory = detector_factory("patchknn", **BUDGET_DETECTOR_KWARGS)
    base = {"dataset": name, "noise": noise, "seed": seed, "n_train": len(train),
            "n_anomalies": int(y.sum())}
    rows = []
    for cond in (Condition("noisy", train="all"), Condition("oracle", train="normals"))[
            :2 if baselines else 0]:
        r = run_condition(cond, dataset, split, factory, seed=seed, with_pixels=False)
        rows.append({**base, "candidate": cond.name, "final_auroc": r["image_auroc"]})
    t0 = time.perf_counter()
    purifier = Purifier(factory, seed=seed, progress=False).fit(Subset(dataset, train))
    purifier_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = candidate_scores(dist, train, purifier, (0.5, 0.7))
    views_s = time.perf_counter() - t0
    np.savez(score_dir / f"{name}-{noise}-{seed}.npz", y=y, train=train,
             **{k.replace("/", "|"): v for k, v in scores.items()})
    for cand, s in scores.items():
        row = {**base, "candidate": cand, **selection_row(y, s)}
        if cand in finals:
            order = selection.ranking(s)
            for keep in final_keeps:
                n_keep = (selection.n_to_keep(float(keep), len(s)) if keep[0].isdigit()
                          else AUTO_RULES[keep.split(":")[1]](s))
                row[f"final_auroc@{keep}"] = final_auroc(dataset, split, factory,
                                                         order[:n_keep])
        rows.append(row)
    rows.append({**base, "candidate": "_timing", "purifier_s": purifier_s,
                 "all_views_s": views_s})
    return rows


PURIFIER_FINALS = {"default": {}, "musc30 or default": {"mutual": True}}
"""The library's own Purifier for the final AUROC: the default, and the default with the
mutual view (:mod:`noisyclean.mutual`, its defaults: 30 % interval, 128 reference images of
32 patches each), whose selection the study's ``musc30 or default`` approximates."""


def purifier_finals(name: str, dataset: Any, noise: float, seed: int,
                    skip: set[str]) -> list[dict[str, Any]]:
    """Stage 1 and 2 of each :data:`PURIFIER_FINALS` entry on one split, as the benchmark
    runs them (:func:`noisyclean.benchmark.run_condition`, image metrics only)."""
    split = make_noisy_split(labels_of(dataset), defect_types_of(dataset), noise, seed=seed)
    factory = detector_factory("patchknn", **BUDGET_DETECTOR_KWARGS)
    rows = []
    for cand, kwargs in PURIFIER_FINALS.items():
        if cand in skip:
            continue
        r = run_condition(Condition(cand, purifier=kwargs), dataset, split, factory, seed=seed,
                          with_pixels=False)
        rows.append({"dataset": name, "noise": noise, "seed": seed, "candidate": cand,
                     "final_auroc@0.8": r["image_auroc"], "final_recall@0.8":
                     r["anomaly_recall"], "stage1_s": r["stage1_s"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", default="/tmp/views-study")
    parser.add_argument("--out", default="benchmarks/views-study.json")
    parser.add_argument("--datasets", nargs="+", default=["mtd", "PA_BFT01_TL", "PA_BRG02_RL",
                                                          "PA_FVN01_TL", "PA_GLA01_TL"])
    parser.add_argument("--noise", nargs="+", type=float, default=list(NOISE_RATIOS))
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--final", nargs="*", default=["default", "musc10", "musc30",
                                                        "ref50/musc10", "ref70/loo1"])
    parser.add_argument("--final-keeps", nargs="*", default=["0.8", "auto:gmm"])
    parser.add_argument("--baselines-from", metavar="ROWS_JSON",
                        help="take the noisy and oracle rows from a benchmark rows file "
                             "(benchmarks/mtd-rows.json: the same splits and settings) "
                             "instead of training them again")
    parser.add_argument("--purifier-finals", action="store_true",
                        help="train the library's Purifier entries (PURIFIER_FINALS) and the "
                             "final detector on each split; write their final AUROC rows")
    parser.add_argument("--skip-finals", nargs="*", default=[],
                        help="PURIFIER_FINALS entries to leave out (e.g. 'default' when the "
                             "benchmark's rows already give it)")
    parser.add_argument("--summarize", nargs="*", metavar="ROWS_JSON",
                        help="print the markdown tables of these row files and exit")
    args = parser.parse_args()
    if args.summarize:
        rows = [r for f in args.summarize for r in json.loads(Path(f).read_text())]
        print(summary_tables(rows))
        return
    torch.set_num_threads(2)
    if args.purifier_finals:
        out = Path(args.out)
        rows = json.loads(out.read_text()) if out.exists() else []
        for name in args.datasets:
            dataset = open_dataset(name)
            for noise in args.noise:
                for seed in args.seeds:
                    done = {r["candidate"] for r in rows
                            if (r["dataset"], r["noise"], r["seed"]) == (name, noise, seed)}
                    rows += purifier_finals(name, dataset, noise, seed,
                                            done | set(args.skip_finals))
                    atomic_write_json(out, rows)
                    print(f"finals {name} noise {noise} seed {seed}", flush=True)
        return
    (Path(args.work) / "scores").mkdir(parents=True, exist_ok=True)
    out = Path(args.out)
    rows = json.loads(out.read_text()) if out.exists() else []
    done = {(r["dataset"], r["noise"], r["seed"]) for r in rows if r["candidate"] == "_timing"}
    if args.baselines_from and not rows:
        rows = [{"dataset": "mtd", "noise": r["noise"], "seed": r["seed"],
                 "candidate": r["condition"], "final_auroc": r["image_auroc"]}
                for r in json.loads(Path(args.baselines_from).read_text())
                if r["condition"] in ("noisy", "oracle") and r["seed"] in args.seeds
                and r["noise"] in args.noise]
    for name in args.datasets:
        dataset = open_dataset(name)
        dist = Distances(name, Path(args.work))
        for noise in args.noise:
            for seed in args.seeds:
                if (name, noise, seed) in done:
                    continue
                t0 = time.perf_counter()
                rows += run_split(name, dataset, dist, noise, seed, args.final,
                                  args.final_keeps, Path(args.work) / "scores",
                                  baselines=not args.baselines_from)
                atomic_write_json(out, rows)
                print(f"{name} noise {noise} seed {seed}: {time.perf_counter() - t0:.0f} s",
                      flush=True)



# -- summary --------------------------------------------------------------------------------
def group_of(dataset: str) -> str:
    return "mtd" if dataset == "mtd" else "piped"


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    xs = [r[key] for r in rows if key in r]
    return sum(xs) / len(xs) if xs else None


def _fmt(x: float | None, pattern: str = "{:.3f}") -> str:
    return "" if x is None else pattern.format(x)


def _gap(x: float | None, noise: float, noisy: float, oracle: float) -> str:
    """The share of the noisy-to-oracle gap closed (at noise 0: the change in AUROC)."""
    if x is None:
        return ""
    if noise == 0:
        return f"{x - noisy:+.3f}"
    return f"{(x - noisy) / (oracle - noisy):.0%}"


def summary_tables(rows: list[dict[str, Any]], baseline: str = "default") -> str:
    """Markdown: per data set (PIPED: the four classes together) and noise ratio, each
    candidate's mean selection AUROC, recall at keep 0.8 and at the ``mz3.5`` auto rule,
    and where trained, the final image AUROC with the gap closed and its wins against
    ``baseline`` paired by split."""
    from collections import defaultdict

    by: dict[tuple, dict[str, dict[tuple, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:  # rows of one split and candidate from several files are merged
        by[(group_of(r["dataset"]), r["noise"])][r["candidate"]].setdefault(
            (r["dataset"], r["seed"]), {}).update(r)
    lines = []
    for (group, noise) in sorted(by):
        cands = by[(group, noise)]
        noisy = _mean(list(cands["noisy"].values()), "final_auroc")
        oracle = _mean(list(cands["oracle"].values()), "final_auroc")
        if noisy is None or oracle is None:
            continue
        lines += [f"\n#### {group}, noise {noise} (noisy {noisy:.3f}, oracle {oracle:.3f}, "
                  f"{len(cands['noisy'])} splits)\n",
                  "| candidate | selection AUROC | recall@0.8 | drops@auto | recall@auto | "
                  "normals dropped@auto | final@0.8 | gap@0.8 | wins vs default@0.8 |",
                  "|---|---|---|---|---|---|---|---|---|"]
        base = cands.get(baseline, {})
        for cand, splits in cands.items():
            if cand in ("noisy", "oracle", "_timing"):
                continue
            vals = list(splits.values())
            f08 = _mean(vals, "final_auroc@0.8")
            wins = ""
            if f08 is not None and cand != baseline:
                diffs = [r["final_auroc@0.8"] - base[s]["final_auroc@0.8"]
                         for s, r in splits.items()
                         if "final_auroc@0.8" in r and "final_auroc@0.8" in base.get(s, {})]
                if diffs:
                    wins = f"{sum(d > 0 for d in diffs)}/{len(diffs)} ({np.mean(diffs):+.3f})"
            cells = [_fmt(_mean(vals, "sel_auroc")), _fmt(_mean(vals, "recall@0.8"), "{:.2f}"),
                     _fmt(_mean(vals, "n_drop@auto:mz3.5"), "{:.1f}"),
                     _fmt(_mean(vals, "recall@auto:mz3.5"), "{:.2f}"),
                     _fmt(_mean(vals, "normals_dropped@auto:mz3.5"), "{:.1f}"),
                     _fmt(f08), _gap(f08, noise, noisy, oracle), wins]
            lines.append(f"| {cand} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
