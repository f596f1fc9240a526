"""Why purification stalls on Magnetic Tile: a study with exact per-image patch distances.

The benchmark trains real memory banks (coresets), which is slow to repeat for many
strategies. This study computes, once, the distance of every patch of every image to its
nearest patch in every other image, ``D[i, p, j]`` (1,344 × 400 × 1,344 at 160 px, 1.4 GB
on disk). With it, a detector whose memory bank holds all patches of a set ``S`` of images is
a ``min`` over ``j in S``; a patch's distance to its k-th nearest *distinct* image is a
``kthvalue``; leave-one-out scoring masks ``j = i``. So every strategy below is exact for
such a full (coreset-free) bank, and costs seconds.

What it measures, per noise ratio and seed (the benchmark's splits):

- the separability of the training anomalies (AUROC of the purification score against the
  truth) for: a bank of the true normals (an upper bound), the paper's recipe, and
  leave-one-out scoring against everything else with k = 1 and 3 distinct images;
- the test image AUROC of the final detector for: noisy, oracle, the recipe and
  leave-one-out (k = 3) purification at keep 0.8 and 0.7, each with a final score counting
  the 1st, 2nd or 3rd nearest distinct training image (robust final scoring);
- soft down-weighting instead of dropping: every training image stays in the bank, and
  distances to it grow with its consensus rank above the median (``soft/...``);
- purification by each map's max over its median (``recipe÷median``), which asks whether
  defect images differ as a whole;
- purification by how unusual an image is as a whole (``global5``: leave-one-out distance
  to the 5th nearest image in standardised mean features), and by the larger of its rank
  there and its rank in the recipe (``recipe or global5``). This study is where the
  Purifier's whole-image view (now its default) came from, and it computes the view with
  the library's own :func:`noisyclean.whole_image.outlier_scores`;
- with ``--bank-seeds``, for those seeds: a real, size-limited bank of the noisy, oracle and
  recipe-purified sets, chosen by the greedy coreset (3,000 patches, as the benchmark) or
  at random (10,000 patches), to see whether the greedy coreset's taste for outliers is
  what lets defects in (``bank/...``; about a minute per split).

Run from the repository root (about 17 minutes for the distances, which are kept and
resumed, then about 90 s per split on 2 cores)::

    python benchmarks/mtd_strategy_study.py --work /tmp/mtd-study
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from noisyclean import consensus, selection
from noisyclean._io import atomic_write_json
from noisyclean.data import MagneticTile, defect_types_of, labels_of, make_noisy_split
from noisyclean.detectors.patchknn import PatchKNN, greedy_coreset
from noisyclean.partition import disjoint
from noisyclean.whole_image import outlier_scores

IMAGE_SIZE = 160
DIM = 64
BINOMIAL = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]).view(1, 1, 3, 3) / 16


def projected_features(
    root: str | None,
) -> tuple[torch.Tensor, np.ndarray, np.ndarray, int, np.ndarray]:
    """Every image's patch features ``(N, P, 64)`` (a fixed random projection), labels,
    types, the patch grid's width, and each image's mean feature over all 152 channels."""
    dataset = MagneticTile(root, image_size=IMAGE_SIZE)
    feats = PatchKNN(image_size=IMAGE_SIZE).patch_features(dataset)  # (N, C, h, w)
    n, c, h, w = feats.shape
    x = torch.from_numpy(feats.astype(np.float32)).permute(0, 2, 3, 1).reshape(n, h * w, c)
    proj = torch.randn(c, DIM, generator=torch.Generator().manual_seed(1)) / DIM**0.5
    types = np.array([t or "" for t in defect_types_of(dataset)])
    return x @ proj, labels_of(dataset), types, w, feats.astype(np.float32).mean(axis=(2, 3))


def image_distances(x: torch.Tensor, work: Path, block: int = 8) -> np.ndarray:
    """``D[i, p, j]``: patch p of image i to its nearest patch of image j; resumable."""
    n, p, _ = x.shape
    work.mkdir(parents=True, exist_ok=True)
    path, done_path = work / "distances.npy", work / "distances-done.npy"
    mode = "r+" if path.exists() else "w+"
    dist = np.lib.format.open_memmap(path, mode=mode, dtype=np.float16, shape=(n, p, n))
    done = (np.load(done_path, allow_pickle=False) if done_path.exists()
            else np.zeros((n + block - 1) // block, bool))
    bank = x.reshape(-1, x.shape[2]).contiguous()
    bank_sq = (bank * bank).sum(1)
    start = time.perf_counter()
    for b in np.flatnonzero(~done):
        q = x[b * block:(b + 1) * block].reshape(-1, x.shape[2])
        d2 = torch.addmm(bank_sq[None] + (q * q).sum(1)[:, None], q, bank.T, alpha=-2)
        nearest = d2.view(-1, n, p).amin(2).clamp_min_(0).sqrt_()
        dist[b * block:(b + 1) * block] = nearest.view(-1, p, n).numpy().astype(np.float16)
        dist.flush()
        done[b] = True
        tmp = done_path.with_suffix(".tmp.npy")
        np.save(tmp, done)
        os.replace(tmp, done_path)
        print(f"distances: block {int(done.sum())}/{done.size} "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    return np.load(path, mmap_mode="r")


class Study:
    """Scores and AUROCs from the distance tensor, for one split at a time."""

    def __init__(self, dist: np.ndarray, labels: np.ndarray, grid_w: int, x: torch.Tensor,
                 pooled: np.ndarray):
        self.d = torch.from_numpy(np.ascontiguousarray(dist))
        self.y = labels
        self.grid_w = grid_w
        self.global_features = x.mean(1).numpy()  # each image's mean patch feature
        self.pooled = pooled  # each image's mean feature over all 152 channels

    def global_scores(self, images, kth: int = 5) -> np.ndarray:
        """How unusual each of ``images`` is as a whole: the library's whole-image view
        (:func:`noisyclean.whole_image.outlier_scores`)."""
        return outlier_scores(self.pooled[images], kth)

    def patch_scores(self, queries, bank, kth: int = 1) -> torch.Tensor:
        """Each query patch's distance to its kth nearest distinct bank image (not itself)."""
        bank = torch.as_tensor(bank)
        out = torch.empty(len(queries), self.d.shape[1])
        for s in range(0, len(queries), 64):
            q = torch.as_tensor(queries[s:s + 64])
            m = self.d[q][:, :, bank].float()
            m.masked_fill_((q[:, None] == bank[None])[:, None, :], float("inf"))
            out[s:s + 64] = m.kthvalue(kth, dim=2).values if kth > 1 else m.amin(2)
        return out

    def image_scores(self, queries, bank, kth: int = 1) -> np.ndarray:
        """The max of the lightly smoothed patch-score grid, as the detector's image score."""
        return self.smoothed_maps(self.patch_scores(queries, bank, kth)).amax(1).numpy()

    def test_auroc(self, bank, test, kth: int = 1) -> float:
        return float(roc_auc_score(self.y[test], self.image_scores(test, bank, kth)))

    def smoothed_maps(self, patches: torch.Tensor) -> torch.Tensor:
        """Patch-score grids ``(n, P)`` lightly smoothed, flattened back to ``(n, P)``."""
        grid = patches.view(len(patches), 1, -1, self.grid_w)
        padded = torch.nn.functional.pad(grid, (1, 1, 1, 1), mode="replicate")
        return torch.nn.functional.conv2d(padded, BINOMIAL).flatten(1)

    def soft_test_auroc(self, train, penalty: np.ndarray, test) -> float:
        """Test AUROC with every training image in the bank, each image's distances
        increased by its ``penalty``: a suspicious image still counts as normal, only less."""
        bank, pen = torch.as_tensor(train), torch.as_tensor(penalty, dtype=torch.float32)
        scores = []
        for s in range(0, len(test), 64):
            m = self.d[torch.as_tensor(test[s:s + 64])][:, :, bank].float() + pen[None, None]
            scores.append(self.smoothed_maps(m.amin(2)).amax(1))
        return float(roc_auc_score(self.y[test], torch.cat(scores).numpy()))


def neighbour_purity(features: np.ndarray, y: np.ndarray, k: int = 10) -> float:
    """The share of anomalies among the k nearest images (standardised mean features) of the
    anomalies: the anomaly fraction if defects were scattered, more if they cluster."""
    z = (features - features.mean(0)) / (features.std(0) + 1e-6)
    d = ((z[:, None] - z[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    return float(y[nearest[y == 1]].mean())


def bank_test_auroc(study: Study, x: torch.Tensor, images, test, size: int, how: str,
                    seed: int) -> float:
    """Test AUROC of a real memory bank of ``size`` patches from ``images``' patches,
    picked by the greedy k-center coreset (``"greedy"``) or uniformly (``"random"``)."""
    patches = x[torch.as_tensor(images)].reshape(-1, x.shape[2])
    if how == "greedy":
        bank = patches[greedy_coreset(patches, size, 64, seed=seed)]
    else:
        gen = torch.Generator().manual_seed(seed)
        bank = patches[torch.randperm(len(patches), generator=gen)[:size]]
    bank_sq = (bank * bank).sum(1)
    scores = []
    for s in range(0, len(test), 32):
        q = x[torch.as_tensor(test[s:s + 32])]
        flat = q.reshape(-1, x.shape[2])
        d2 = torch.addmm(bank_sq[None] + (flat * flat).sum(1)[:, None], flat, bank.T, alpha=-2)
        nearest = d2.amin(1).clamp_min_(0).sqrt_().view(len(q), -1)
        scores.append(study.smoothed_maps(nearest).amax(1))
    return float(roc_auc_score(study.y[test], torch.cat(scores).numpy()))


def uniform_ranks(scores: np.ndarray) -> np.ndarray:
    """Ranks scaled into (0, 1): comparable across scores of any scale."""
    return (np.argsort(np.argsort(scores)) + 0.5) / len(scores)


def keep_lowest(train: np.ndarray, scores: np.ndarray, keep: float) -> np.ndarray:
    """The Purifier's selection: the lowest ``keep`` share, ties to the lower index."""
    order = selection.ranking(np.asarray(scores))
    return np.sort(train[order[: selection.n_to_keep(keep, len(scores))]])


def run_split(study: Study, labels, types, noise: float, seed: int,
              x: torch.Tensor | None = None) -> dict[str, float]:
    split = make_noisy_split(labels, types, noise, seed=seed)
    train, test = np.asarray(split.train_indices), np.asarray(split.test_indices)
    y = labels[train]
    n = len(train)
    rows = np.full((3, n), np.nan)
    spread = np.full((3, n), np.nan)  # each map's max over its median
    mean_rows = np.full((3, n), np.nan)  # each map's mean
    for j, sub in enumerate(disjoint(n, 3, np.random.default_rng(seed))):
        oob = np.setdiff1d(np.arange(n), sub)
        maps = study.smoothed_maps(study.patch_scores(train[oob], train[sub]))
        rows[j, oob] = maps.amax(1).numpy()
        spread[j, oob] = (maps.amax(1) / maps.median(1).values).numpy()
        mean_rows[j, oob] = maps.mean(1).numpy()
    recipe = consensus.aggregate(consensus.normalize(rows, "rank"), "mean")
    whole = study.global_scores(train)
    purification = {
        "recipe": recipe,
        "loo3": study.image_scores(train, train, 3),
        "global5": whole,
        # an image is dropped when either view finds it unusual: its patches (the recipe)
        # or its appearance as a whole (the defect images are raised as a whole)
        "recipe or global5": np.maximum(uniform_ranks(recipe), uniform_ranks(whole)),
    }
    out = {"noisy": study.test_auroc(train, test), "oracle": study.test_auroc(train[y == 0], test)}
    for kth in (2, 3):
        out[f"noisy/k{kth}"] = study.test_auroc(train, test, kth)
    for name, scores in purification.items():
        for keep in (0.8, 0.7):
            kept = keep_lowest(train, scores, keep)
            for kth in (1, 2, 3):
                out[f"{name}@{keep}/k{kth}"] = study.test_auroc(kept, test, kth)
    kept = keep_lowest(train, consensus.aggregate(consensus.normalize(spread, "rank"), "mean"),
                       0.8)
    out["recipe÷median@0.8/k1"] = study.test_auroc(kept, test)
    # soft down-weighting: a penalty, in units of a typical distance, that grows from 0 at
    # the median consensus rank to `weight` at the top
    rank = uniform_ranks(recipe)
    scale = float(study.d[torch.as_tensor(train[:50])][:, :, torch.as_tensor(train)]
                  .float().median())
    for weight in (1.0, 2.0):
        penalty = weight * scale * np.clip(2 * rank - 1, 0, None)
        out[f"soft/hinge x{weight:g}"] = study.soft_test_auroc(train, penalty, test)
    if x is not None:
        kept = keep_lowest(train, recipe, 0.8)
        for name, images in (("noisy", train), ("oracle", train[y == 0]), ("recipe@0.8", kept)):
            for how, size in (("greedy", 3000), ("random", 10000)):
                out[f"bank/{name} {how} {size}"] = bank_test_auroc(
                    study, x, images, test, size, how, seed)
    if 0 < y.sum() < n:
        out["sep/true-normals"] = roc_auc_score(y, study.image_scores(train, train[y == 0]))
        # is a defect image's whole map raised, or only its defect? max over median of the map
        patches = study.patch_scores(train, train[y == 0])
        out["sep/true-normals max÷median"] = roc_auc_score(
            y, (patches.amax(1) / patches.median(1).values).numpy())
        out["sep/true-normals 10th image"] = roc_auc_score(
            y, study.image_scores(train, train[y == 0], 10))
        out["anomalies among an anomaly's 10 nearest images"] = neighbour_purity(
            study.global_features[train], y)
        out["sep/true-normals map mean"] = roc_auc_score(y, patches.mean(1).numpy())
        out["sep/recipe"] = roc_auc_score(y, purification["recipe"])
        out["sep/recipe map mean"] = roc_auc_score(
            y, consensus.aggregate(consensus.normalize(mean_rows, "rank"), "mean"))
        out["sep/loo1"] = roc_auc_score(y, study.image_scores(train, train, 1))
        out["sep/loo3"] = roc_auc_score(y, purification["loo3"])
        out["sep/global5"] = roc_auc_score(y, whole)
        out["sep/recipe or global5"] = roc_auc_score(y, purification["recipe or global5"])
    return {k: float(v) for k, v in out.items()}


def summary_table(results: dict[str, dict[str, float]], noises, seeds) -> str:
    """Mean test AUROC per strategy and noise; the share of the gap closed (loss at 0)."""
    names = [k for k in results[f"{noises[0]}/{seeds[0]}"] if not k.startswith("sep/")
             and not k.startswith("anomalies") and not k.startswith("bank/")]
    lines = ["| strategy | " + " | ".join(f"noise {n}" for n in noises) + " |",
             "|---|" + "---|" * len(noises)]
    for name in names:
        cells = []
        for noise in noises:
            ours, noisy, oracle = (statistics.mean(results[f"{noise}/{s}"][key] for s in seeds)
                                   for key in (name, "noisy", "oracle"))
            if noise == 0:
                cells.append(f"{ours:.3f} ({ours - oracle:+.3f})")
            else:
                cells.append(f"{ours:.3f} ({(ours - noisy) / (oracle - noisy):+.0%})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def bank_table(results: dict[str, dict[str, float]], noises, seeds) -> str:
    """Test AUROC of the real, size-limited banks, for the seeds that ran them."""
    ran = [s for s in seeds if any(k.startswith("bank/") for k in results[f"{noises[0]}/{s}"])]
    if not ran:
        return ""
    keys = [k for k in results[f"{noises[0]}/{ran[0]}"] if k.startswith("bank/")]
    label = f"seed{'s' if len(ran) > 1 else ''} {', '.join(map(str, ran))}"
    lines = [f"| bank ({label}) | "
             + " | ".join(f"noise {n}" for n in noises) + " |", "|---|" + "---|" * len(noises)]
    for key in keys:
        cells = [f"{statistics.mean(results[f'{n}/{s}'][key] for s in ran):.3f}" for n in noises]
        lines.append(f"| {key.removeprefix('bank/')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def diagnostics_table(results: dict[str, dict[str, float]], noises, seeds) -> str:
    """Mean over seeds of each separability diagnostic, at the noise ratios that have defects."""
    noisy = [n for n in noises if n > 0]
    first = results[f"{noisy[0]}/{seeds[0]}"]
    keys = [k for k in first if k.startswith("sep/") or k.startswith("anomalies")]
    lines = ["| diagnostic | " + " | ".join(f"noise {n}" for n in noisy) + " |",
             "|---|" + "---|" * len(noisy)]
    for key in keys:
        cells = [f"{statistics.mean(results[f'{n}/{s}'][key] for s in seeds):.3f}"
                 for n in noisy]
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", default=None, help="Magnetic Tile root (default: as the CLI)")
    parser.add_argument("--work", type=Path, required=True, help="where the distances live")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/mtd-strategy-study.json"))
    parser.add_argument("--noise", default="0,0.1,0.2,0.4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--bank-seeds", default="0",
                        help="seeds that also compare real greedy and random banks ('' for none)")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    x, labels, types, grid_w, pooled = projected_features(args.data)
    study = Study(image_distances(x, args.work), labels, grid_w, x, pooled)
    noises = [float(v) for v in args.noise.split(",")]
    seeds = [int(v) for v in args.seeds.split(",")]
    bank_seeds = {int(v) for v in args.bank_seeds.split(",") if v.strip()}
    results = {}
    for seed in seeds:
        for noise in noises:
            results[f"{noise}/{seed}"] = run_split(study, labels, types, noise, seed,
                                                   x if seed in bank_seeds else None)
            print(f"noise {noise} seed {seed}:", json.dumps(
                {k: round(v, 3) for k, v in results[f'{noise}/{seed}'].items()}), flush=True)
            atomic_write_json(args.out, results)
    print(summary_table(results, noises, seeds))
    print()
    print(bank_table(results, noises, seeds))
    if any(n > 0 for n in noises):
        print()
        print(diagnostics_table(results, noises, seeds))


if __name__ == "__main__":
    main()
