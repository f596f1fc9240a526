"""The whole-image view: how unusual each sample is as a whole, among the others.

Why a second view: the sub-models' consensus judges each sample by detectors trained on
subsets of the same contaminated set. When defects repeat (the same crack in many
images), every subset holds some of them, each sub-model learns them as normal, and the
consensus lets them through. On Magnetic Tile the defect images also differ *as a whole*
(their pooled backbone features sit apart from the normals'), a judgement that needs no
sub-model at all. Dropping a sample when either view ranks it high closed more of the
noisy-to-oracle gap at every noise ratio and cost nothing more on clean data
(docs/benchmarks.md).

The view is the leave-one-out distance of each sample to its ``neighbors``-th nearest other
sample, in embeddings standardised per dimension over the samples being purified. A
sample with a few look-alikes (a repeated defect type) still lies far from the fifth
nearest; normal images, which are many and alike, do not.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from noisyclean import consensus

DEFAULT_NEIGHBORS = 5
WORKING_MEMORY_MB = 64
"""The memory one block of the pairwise distance matrix may use (scikit-learn's
``working_memory``): the whole matrix is never built, so the view stays linear in memory
for large training sets."""


def embeddings_of(detector: Any, dataset: Any) -> np.ndarray:
    """``detector.embed(dataset)``, checked: finite floats, one row per sample."""
    emb = np.asarray(detector.embed(dataset))
    n = len(dataset)
    name = type(detector).__name__
    if emb.ndim != 2 or emb.shape[0] != n or emb.shape[1] < 1:
        raise ValueError(
            f"{name}.embed() returned shape {emb.shape}; it must return one vector per "
            f"sample, shape ({n}, d). Fix embed(), or pass whole_image=False to the Purifier."
        )
    if emb.dtype.kind not in "fiu" or not np.isfinite(emb).all():
        raise ValueError(
            f"{name}.embed() returned non-finite or non-numeric values; it must return finite "
            "floats. Fix embed(), or pass whole_image=False to the Purifier."
        )
    return emb.astype(np.float64, copy=False)


def outlier_scores(embeddings: np.ndarray, neighbors: int = DEFAULT_NEIGHBORS) -> np.ndarray:
    """Each sample's squared distance to its ``neighbors``-th nearest *other* sample
    (:func:`neighbor_distances`, squared). Higher means more unusual as a whole."""
    return neighbor_distances(embeddings, neighbors) ** 2


def neighbor_distances(embeddings: np.ndarray, neighbors: int) -> np.ndarray:
    """Each sample's distance to its ``neighbors``-th nearest *other* sample.

    Embeddings are standardised per dimension first (constant dimensions are left at 0), so
    no channel dominates by its scale. ``neighbors`` is capped at ``n - 1``. The whole-image
    view squares these; tail protection (:mod:`noisyclean.tail`) takes their median as the
    spacing within a mode, so one search serves both.
    """
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    z = standardized(embeddings)
    n = z.shape[0]
    if n < 2:
        return np.zeros(n)
    kth = min(int(neighbors), n - 1)
    # kneighbors() without queries leaves each sample out of its own neighbours
    with config_context(working_memory=WORKING_MEMORY_MB):
        dist, _ = NearestNeighbors(n_neighbors=kth, algorithm="brute").fit(z).kneighbors()
    return dist[:, -1]


def standardized(embeddings: np.ndarray) -> np.ndarray:
    """``embeddings`` as float64, standardised per dimension over the samples (constant
    dimensions are left at 0), so that no channel dominates a distance by its scale."""
    x = np.asarray(embeddings, dtype=np.float64)
    if x.shape[0] == 0:
        return x
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def combine(consensus_scores: np.ndarray, whole_image_scores: np.ndarray) -> np.ndarray:
    """Selection scores: the larger of a sample's rank in the two views, in (0, 1].

    Ranks put both views on one scale whatever their units; the larger one means a sample
    is kept only when *both* views find it ordinary.
    """
    return consensus.largest_rank(consensus_scores, whole_image_scores)
