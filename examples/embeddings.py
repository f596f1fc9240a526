"""Purify a set of embeddings: 2,000 normal vectors and 10 % far, diverse outliers.

Run it with ``python examples/embeddings.py``. It prints the anomaly fraction before and
after purification with the built-in ``knn`` detector, k=3 and keep=0.8.
"""

from __future__ import annotations

import numpy as np

from noisyclean import Purifier


def make_embeddings(n_normal: int = 2000, noise_ratio: float = 0.10, dim: int = 32, seed: int = 0):
    """Normals from one Gaussian; each outlier alone in a random far direction.

    ``noise_ratio`` is anomalies over the whole set, as the contamination protocol defines it.
    The rows are shuffled, so outliers sit anywhere in the array.
    """
    rng = np.random.default_rng(seed)
    n_anomalous = round(noise_ratio * n_normal / (1 - noise_ratio))
    normal = rng.normal(size=(n_normal, dim))
    directions = rng.normal(size=(n_anomalous, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    radius = rng.uniform(8.0, 14.0, size=(n_anomalous, 1))
    outliers = directions * radius + rng.normal(scale=0.5, size=(n_anomalous, dim))
    x = np.vstack([normal, outliers])
    is_anomaly = np.r_[np.zeros(n_normal, bool), np.ones(n_anomalous, bool)]
    order = rng.permutation(len(x))
    return x[order], is_anomaly[order]


def run(seed: int = 0) -> dict[str, float]:
    x, is_anomaly = make_embeddings(seed=seed)
    purifier = Purifier("knn", k=3, keep=0.8, seed=seed, progress=False).fit(x)
    kept = purifier.keep_indices_
    return {
        "n": len(x),
        "anomaly_fraction_before": float(is_anomaly.mean()),
        "anomaly_fraction_after": float(is_anomaly[kept].mean()),
        "kept": len(kept),
        "anomalies_dropped": int(is_anomaly[purifier.drop_indices_].sum()),
        "anomalies_total": int(is_anomaly.sum()),
    }


if __name__ == "__main__":
    stats = run()
    print(f"samples:                {stats['n']}")
    print(f"anomaly fraction before: {stats['anomaly_fraction_before']:.2%}")
    print(f"anomaly fraction after:  {stats['anomaly_fraction_after']:.2%} "
          f"({stats['kept']} kept; {stats['anomalies_dropped']} of "
          f"{stats['anomalies_total']} anomalies dropped)")
