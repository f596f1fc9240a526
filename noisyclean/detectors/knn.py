"""``knn``: the mean distance to the k nearest training vectors."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.neighbors import NearestNeighbors

from noisyclean.samples import to_numpy


class KNNDetector:
    """Mean Euclidean distance to the ``n_neighbors`` nearest training vectors.

    A memory of the training set: a training sample is its own nearest neighbour, so its
    in-bag score is biased low. Hence ``preferred_scoring = "out_of_bag"``.
    """

    preferred_scoring = "out_of_bag"

    def __init__(self, n_neighbors: int = 5):
        self.n_neighbors = n_neighbors

    def fit(self, dataset: Any) -> KNNDetector:
        x = to_numpy(dataset)
        if len(x) == 0:
            raise ValueError("KNNDetector.fit got an empty dataset.")
        self.n_neighbors_ = min(self.n_neighbors, len(x))
        self.index_ = NearestNeighbors(n_neighbors=self.n_neighbors_).fit(x)
        return self

    def score(self, dataset: Any) -> np.ndarray:
        if not hasattr(self, "index_"):
            raise RuntimeError("KNNDetector is not fitted; call fit(dataset) first.")
        x = to_numpy(dataset)
        if len(x) == 0:
            return np.empty(0)
        dist, _ = self.index_.kneighbors(x)
        return dist.mean(axis=1)
