"""Tail protection: keep the members of rare normal modes that the other views would drop.

Why: every view the Purifier uses ranks a sample high when few others look like it. A rare
normal mode (a tile photographed under other light, a product variant) is exactly that, so
purification drops it, and the final detector then flags that mode's test images. TailedCore
(Jung et al., CVPR 2025) answers with the sizes of the modes: it estimates, from whole-image
features, how many samples share each sample's mode, keeps the samples of small modes (the
tail) without judging them, and cleans only the head, where it assumes the defects sit
(a defect changes a few patches, not the whole image, so a defective image shares the mode
of its normal look-alikes).

Written from that description, not from the authors' code. Two samples are linked when
they lie closer than ``r`` in the standardised whole-image embeddings, where ``r`` is the
median distance of a sample to its ``neighbors``-th nearest other sample (the typical
spacing inside a mode); a *mode* is a connected group of linked samples, and its size is
how many it holds. The *tail* is every sample of a mode with at least ``min_members``
members (a mode, not a lone image: a lone outlier is judged as before) and fewer than
``share`` of the largest mode's.

What the Purifier does with it (``Purifier(protect_tail=True)``): tail samples go first in
the keep order, so they are kept whatever the other views say (the kept count is
unchanged; the head loses those places). The benchmark's ablation row measures it.
"""

from __future__ import annotations

import numpy as np

from noisyclean.whole_image import neighbor_distances, standardized

DEFAULT_SHARE = 0.25
DEFAULT_MIN_MEMBERS = 3
WORKING_MEMORY_MB = 64


def mode_sizes(embeddings: np.ndarray, neighbors: int,
               distances: np.ndarray | None = None) -> np.ndarray:
    """``(n,)``: the number of samples in each sample's mode.

    Samples closer than the typical in-mode spacing are linked (the median, over samples,
    of the distance to the ``neighbors``-th nearest other sample, in embeddings
    standardised per dimension); a mode is a connected group of linked samples.
    ``distances``: those per-sample distances, when the caller already has them
    (:func:`noisyclean.whole_image.neighbor_distances`), so that the search is not repeated.
    """
    from scipy.sparse.csgraph import connected_components
    from sklearn import config_context
    from sklearn.neighbors import NearestNeighbors

    z = standardized(embeddings)
    n = z.shape[0]
    if n < 3:
        return np.full(n, n, dtype=np.int64)
    if distances is None:
        distances = neighbor_distances(embeddings, neighbors)
    with config_context(working_memory=WORKING_MEMORY_MB):
        graph = NearestNeighbors(algorithm="brute").fit(z).radius_neighbors_graph(
            radius=float(np.median(distances)))
    _, labels = connected_components(graph, directed=False)
    return np.bincount(labels)[labels]


def tail_mask(sizes: np.ndarray, share: float = DEFAULT_SHARE,
              min_members: int = DEFAULT_MIN_MEMBERS) -> np.ndarray:
    """``(n,)`` bool: the samples of small modes: at least ``min_members`` members, and
    fewer than ``share`` of the largest mode's."""
    sizes = np.asarray(sizes)
    if sizes.size == 0:
        return np.zeros(0, dtype=bool)
    return (sizes >= int(min_members)) & (sizes < float(share) * float(sizes.max()))


def protected_first(ranking: np.ndarray, protected: np.ndarray) -> np.ndarray:
    """``ranking`` with the ``protected`` samples moved to the front, each group in order."""
    ranking = np.asarray(ranking)
    front = protected[ranking]
    return np.concatenate([ranking[front], ranking[~front]])
