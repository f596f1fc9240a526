"""Outlier scores of training patches among the patches at the same position (SoftPatch)."""

from __future__ import annotations

from typing import Any


def patch_outlier_scores(x: Any, method: str = "lof", n_neighbors: int = 6) -> Any:
    """An outlier score per training patch ``(n, P)`` from patches ``(n, P, D)``.

    Each patch is compared only with the patches at the same position ``p`` in the other
    ``n - 1`` images (SoftPatch's patch-level view): a defect is rare at a position, while
    normal texture repeats. Scores are ratios, about 1 for inliers and larger for outliers:

    - ``"lof"``: the local outlier factor (:func:`local_outlier_factor`).
    - ``"knn"``: the mean distance to the ``n_neighbors`` nearest other images' patches,
      divided by the median of that distance at the position.
    """
    import torch

    if method not in ("lof", "knn"):
        raise ValueError(f"unknown patch_denoise method {method!r}; use 'lof' or 'knn'")
    n, p, _ = x.shape
    k = max(1, min(int(n_neighbors), n - 1))
    per_pos = x.permute(1, 0, 2).contiguous()  # (P, n, D)
    out = torch.empty(n, p, dtype=torch.float32)
    step = max(1, int(2**24 // (n * n)))  # bound each (b, n, n) distance block
    for s in range(0, p, step):
        block = per_pos[s : s + step].float()
        d = torch.cdist(block, block)  # (b, n, n)
        d.diagonal(dim1=1, dim2=2).fill_(float("inf"))
        nn_d, nn_i = d.topk(k, dim=2, largest=False)  # (b, n, k)
        if method == "knn":
            score = nn_d.mean(dim=2)
            score = score / score.median(dim=1, keepdim=True).values.clamp_min(1e-12)
        else:
            score = local_outlier_factor(nn_d, nn_i)
        out[:, s : s + step] = score.T
    return out


def local_outlier_factor(nn_d: Any, nn_i: Any) -> Any:
    """The local outlier factor of each point from its k nearest neighbours.

    ``nn_d``, ``nn_i``: ``(..., n, k)`` distances and indices of each point's neighbours
    (itself excluded), ascending. Breunig et al. (2000): the reachability distance of ``a``
    from ``b`` is ``max(k-distance(b), d(a, b))``; the local reachability density of ``a`` is
    the inverse of its mean reachability distance; LOF is the neighbours' mean density over
    ``a``'s own, about 1 inside a cluster and larger for outliers. Written batched (one batch
    row per patch position) because a scikit-learn fit per position is far slower.
    """
    import torch

    k_dist = nn_d[..., -1]  # (..., n)
    neighbour_k_dist = torch.gather(
        k_dist.unsqueeze(-2).expand(*nn_i.shape[:-1], k_dist.shape[-1]), -1, nn_i
    )
    reach = torch.maximum(nn_d, neighbour_k_dist)
    lrd = 1.0 / (reach.mean(dim=-1) + 1e-10)  # (..., n)
    neighbour_lrd = torch.gather(
        lrd.unsqueeze(-2).expand(*nn_i.shape[:-1], lrd.shape[-1]), -1, nn_i
    )
    return neighbour_lrd.mean(dim=-1) / lrd
