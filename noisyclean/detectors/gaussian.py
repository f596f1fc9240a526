"""``gaussian``: Mahalanobis distance under a shrunk Gaussian fit of the training vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.covariance import LedoitWolf

from noisyclean.samples import to_numpy


class GaussianDetector:
    """Mahalanobis distance to a Gaussian with Ledoit-Wolf shrinkage covariance.

    Shrinkage keeps the covariance invertible when a sub-model sees fewer samples than
    dimensions, which is the usual case for a third of a small training set. A Gaussian
    summarises its training set rather than memorising it, so in-bag scores are
    meaningful: ``preferred_scoring = "all"``.
    """

    preferred_scoring = "all"

    def fit(self, dataset: Any) -> GaussianDetector:
        x = to_numpy(dataset)
        if len(x) < 2:
            raise ValueError(
                f"GaussianDetector needs at least 2 training vectors, got {len(x)}."
            )
        self.mean_ = x.mean(axis=0)
        cov = LedoitWolf().fit(x).covariance_
        self.precision_ = np.linalg.pinv(cov)
        return self

    def score(self, dataset: Any) -> np.ndarray:
        if not hasattr(self, "precision_"):
            raise RuntimeError("GaussianDetector is not fitted; call fit(dataset) first.")
        d = to_numpy(dataset) - self.mean_
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", d, self.precision_, d), 0.0))
