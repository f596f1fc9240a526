"""PatchKNN on the real Magnetic Tile data: image AUROC and where the time goes.

Trains ``patchknn`` on 70 % of the normal tiles (``MT_Free``) and tests on the remaining
normals plus every defect, at 224 px. Prints the image AUROC (and, with ``--pixel``, the
pixel AUROC) and the time spent extracting features versus building the memory bank and
searching it. Run from a checkout::

    python examples/patchknn_mtd.py                      # defaults
    python examples/patchknn_mtd.py --knn-backend faiss  # compare the search backends

The data is found through ``NOISYCLEAN_MTD_ROOT`` or ``../shared/data/magnetic-tile``.
Features go to the process-wide feature cache (set ``NOISYCLEAN_FEATURE_CACHE_DIR`` to keep
them on disk between runs).
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
from sklearn.metrics import roc_auc_score

from noisyclean.data.mtd import MagneticTile
from noisyclean.detectors.patchknn import PatchKNN
from noisyclean.samples import Subset


def split(labels: np.ndarray, train_fraction: float = 0.7, seed: int = 0):
    """Train on a random ``train_fraction`` of the normals; test on the rest and all defects."""
    rng = np.random.default_rng(seed)
    normals = rng.permutation(np.flatnonzero(labels == 0))
    n_train = round(train_fraction * normals.size)
    train = np.sort(normals[:n_train])
    test = np.sort(np.concatenate([normals[n_train:], np.flatnonzero(labels == 1)]))
    return train, test


def run(
    image_size: int = 224, seed: int = 0, pixel: bool = False, **detector_kwargs: Any
) -> dict[str, Any]:
    """Fit on the normals' training split, score the test split; returns the numbers."""
    ds = MagneticTile(image_size=image_size)
    labels = np.asarray(ds.labels)
    train, test = split(labels, seed=seed)
    det = PatchKNN(seed=seed, **detector_kwargs)
    t0 = time.perf_counter()
    det.fit(Subset(ds, train))
    t_fit = time.perf_counter() - t0
    fit_timings = dict(det.timings_)
    t0 = time.perf_counter()
    test_set = Subset(ds, test)
    if pixel:
        maps = det.score_maps(test_set)
        scores = np.array([det._reduce(m) for m in maps])
    else:
        scores = det.score(test_set)
    t_score = time.perf_counter() - t0
    score_timings = dict(det.timings_)
    out: dict[str, Any] = {
        "n_train": int(train.size),
        "n_test": int(test.size),
        "n_test_anomalies": int(labels[test].sum()),
        "memory_bank": int(det.memory_bank_.shape[0]),
        "image_auroc": round(float(roc_auc_score(labels[test], scores)), 4),
        "fit_s": round(t_fit, 2),
        "fit_features_s": round(fit_timings.get("features_s", 0.0), 2),
        "fit_coreset_s": round(fit_timings.get("coreset_s", 0.0), 2),
        "fit_denoise_s": round(fit_timings.get("denoise_s", 0.0), 2),
        "score_s": round(t_score, 2),
        "score_features_s": round(
            score_timings.get("features_s", 0.0) - fit_timings.get("features_s", 0.0), 2
        ),
        "score_knn_s": round(score_timings.get("knn_s", 0.0), 2),
        "score_maps_s": round(score_timings.get("maps_s", 0.0), 2),
    }
    if pixel:
        masks = ds.masks(test)
        out["pixel_auroc"] = round(float(roc_auc_score(masks.reshape(-1), maps.reshape(-1))), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pixel", action="store_true", help="also compute the pixel AUROC")
    parser.add_argument("--knn-backend", default="auto", choices=["auto", "torch", "faiss"])
    parser.add_argument("--cache-dtype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--coreset", default="greedy", choices=["greedy", "random"])
    parser.add_argument("--coreset-ratio", type=float, default=0.1)
    parser.add_argument("--coreset-max", type=int, default=None)
    parser.add_argument("--coreset-pool", type=int, default=None)
    parser.add_argument("--image-score", default="max", choices=["max", "topk_mean"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--patch-denoise", default=None, choices=["lof", "knn"])
    args = parser.parse_args()
    kwargs: dict[str, Any] = dict(
        knn_backend=args.knn_backend,
        cache_dtype=args.cache_dtype,
        coreset=args.coreset,
        coreset_ratio=args.coreset_ratio,
        image_score=args.image_score,
        patch_denoise=args.patch_denoise,
        coreset_pool=args.coreset_pool,
        device=args.device,
    )
    if args.coreset_max is not None:
        kwargs["coreset_max"] = args.coreset_max
    result = run(image_size=args.image_size, seed=args.seed, pixel=args.pixel, **kwargs)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
