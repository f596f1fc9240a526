"""Consistent-anomaly communities: images whose unusual patches only a small group matches.

Why: a repeated defect type vouches for itself. Each crack's unusual patches are matched by
the other cracks, so a nearest-neighbour score, and even MuSc's interval average when the
type is large enough, calls them ordinary. CoDeGraph (Le-Gia et al., arXiv 2510.10456)
reads the signature of such a group in the sorted distances of an image's unusual patches
to the other images: low for the few members of its group, then a sudden jump once the
group is used up ("neighbour burnout"). It links each image to the members of its group,
finds communities in that graph, and scores again without them, so the group loses its
vouchers.

This module is that idea on the mutual view's distances (:func:`noisyclean.mutual.
image_distances`), written from the description, not from the authors' code: a patch's
*burnout* is the largest rise of the log of its sorted distances to the references within
the closest ``span`` of them (over ``window`` steps), and an image's is its largest patch
burnout; an image is *suspicious* when its burnout is an outlier among all images
(modified z-score above ``z``; its own score is not asked, because a group that vouches for
itself scores low); it links to the references that matched that patch before the jump;
the connected groups of two or more linked images are the communities. Graph communities
are connected components here (no Leiden step): the groups are small, their links sparse.

Measured on Magnetic Tile and PIPED (``benchmarks/views-study.md``), burnout is *larger*
for normal images than for defects: a rare normal mode has the same signature as a small
defect type. The benchmark's ablation row shows what removing the communities does.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SPAN = 0.3
DEFAULT_WINDOW = 3
DEFAULT_Z = 3.5


def patch_burnout(dist: np.ndarray, columns: np.ndarray, span: float = DEFAULT_SPAN,
                  window: int = DEFAULT_WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Each image's burnout and the references that matched it before.

    Per patch, its distances to the reference columns are sorted, and its burnout is the
    largest rise of their log within the closest ``span`` share, over ``window`` steps. An
    image's burnout is that of its patch with the largest one. Returns ``(jump, group)``:
    ``jump`` ``(n,)``, and ``group`` ``(n, m)`` bool, the reference columns (positions in
    ``columns``) its burnt-out patch was matched by before the jump.
    """
    n = dist.shape[0]
    m = len(columns)
    width = min(m - 1, max(window + 1, round(float(span) * (m - 1))))
    jump = np.zeros(n)
    group = np.zeros((n, m), dtype=bool)
    if width <= window:
        return jump, group
    for i in range(n):
        block = dist[i][:, columns].astype(np.float32)
        order = np.argsort(block, axis=1, kind="stable")[:, :width]
        logc = np.log(np.clip(np.take_along_axis(block, order, axis=1), 1e-6, None))
        rises = logc[:, window:] - logc[:, :-window]
        row, start = np.unravel_index(int(np.argmax(rises)), rises.shape)
        jump[i] = rises[row, start]
        steps = np.diff(logc[row, start:start + window + 1])
        last = start + int(np.argmax(steps))  # the last reference before the jump
        group[i, order[row, : last + 1]] = True
    return jump, group


def communities(dist: np.ndarray, refs: np.ndarray, columns: np.ndarray,
                span: float = DEFAULT_SPAN,
                window: int = DEFAULT_WINDOW, z: float = DEFAULT_Z) -> np.ndarray:
    """``(n,)`` bool: the images in a consistent-anomaly community.

    Args:
        dist: ``(n, P, m)`` distances of each patch to each reference image (``inf`` for
            the image itself).
        refs: ``(m,)`` the image index of each reference column.
        columns: the reference columns in use.
    """
    n = dist.shape[0]
    jump, group = patch_burnout(dist, columns, span, window)
    median = np.median(jump)
    mad = np.median(np.abs(jump - median))
    robust_z = 0.6745 * (jump - median) / mad if mad > 0 else np.zeros(n)
    ref_images = np.asarray(refs)[np.asarray(columns)]
    sources, targets = [], []
    for i in np.flatnonzero(robust_z > z):
        members = ref_images[group[i]]
        members = members[members != i]
        sources.append(np.full(len(members), i))
        targets.append(members)
    if not sources:
        return np.zeros(n, dtype=bool)
    return _in_groups(np.concatenate(sources), np.concatenate(targets), n)


def _in_groups(sources: np.ndarray, targets: np.ndarray, n: int) -> np.ndarray:
    """Whether each of ``n`` nodes lies in a connected group of two or more nodes, given the
    links ``sources[k] - targets[k]`` (a sparse graph: never an ``n x n`` matrix)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    links = coo_matrix((np.ones(len(sources), dtype=bool), (sources, targets)), shape=(n, n))
    _, labels = connected_components(links, directed=False)
    sizes = np.bincount(labels)
    return sizes[labels] >= 2
