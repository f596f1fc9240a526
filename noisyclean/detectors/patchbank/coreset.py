"""A greedy k-center coreset: the few rows that cover a large set of patch features."""

from __future__ import annotations

import math
from typing import Any


def greedy_coreset(
    x: Any,
    n_select: int,
    projection_dim: int | None = 128,
    seed: int = 0,
    device: str = "cpu",
    candidates: int = 512,
) -> Any:
    """Indices of a k-center greedy coreset of the rows of ``x`` ``(M, D)``, in pick order.

    Each step adds the row farthest from everything chosen so far, so the memory bank covers
    the whole feature distribution with few patches. Distances are computed on a Gaussian
    random projection to ``projection_dim`` (as PatchCore does): they approximate the true
    ones well and make each step cheaper. The start row is drawn with ``seed``.

    Why batches: the textbook loop reads all M rows once per pick (a matrix-vector product),
    which is memory-bound and slow on a CPU. Here each round takes the ``candidates`` rows
    farthest from the current centres and runs the greedy steps among them alone, which is
    exact while the best candidate is at least as far as the farthest non-candidate (their
    distances can only shrink). Then one matrix-matrix product updates all M rows for the
    whole batch. The picks are the textbook ones (up to ties and rounding).
    """
    import torch

    m, d = x.shape
    n_select = min(int(n_select), m)
    g = torch.Generator().manual_seed(seed)
    z = x.float()
    if projection_dim is not None and projection_dim < d:
        proj = torch.randn(d, projection_dim, generator=g) / math.sqrt(projection_dim)
        z = z @ proj
    z = z.to(device).contiguous()
    sq = (z * z).sum(dim=1)
    selected: list[int] = [int(torch.randint(m, (1,), generator=g))]
    min_d = _sq_dist_to(z, sq, selected).clamp_min_(0.0)
    min_d[selected] = -1.0
    while len(selected) < n_select:
        t = min(int(candidates), m)
        vals, cand = torch.topk(min_d, min(t + 1, m))
        threshold = float(vals[t]) if vals.numel() > t else -math.inf
        cand, cur = cand[:t], vals[:t].clone()
        cz, csq = z[cand], sq[cand]
        cdist = (csq[:, None] - 2.0 * (cz @ cz.T) + csq[None, :]).clamp_min_(0.0)
        batch: list[int] = []
        while len(selected) + len(batch) < n_select:
            j = int(torch.argmax(cur))
            if float(cur[j]) < 0 or (batch and float(cur[j]) < threshold):
                break
            batch.append(j)
            torch.minimum(cur, cdist[j], out=cur)
            cur[j] = -1.0
        picked = cand[batch]
        selected.extend(int(i) for i in picked)
        torch.minimum(min_d, _sq_dist_to(z, sq, picked).clamp_min_(0.0), out=min_d)
        min_d[picked] = -1.0
    return torch.as_tensor(selected, dtype=torch.long)


def _sq_dist_to(z: Any, sq: Any, centres: Any) -> Any:
    """Squared distance of every row of ``z`` to its nearest row among ``centres`` ``(M,)``."""
    c = z[centres]
    if c.ndim == 1:
        c = c[None]
    d = _sq_dists(z, sq, c)
    return d.min(dim=1).values


def _sq_dists(z: Any, sq: Any, c: Any) -> Any:
    """``|z_i - c_j|²`` ``(M, B)`` through one matrix product."""
    import torch

    csq = (c * c).sum(dim=1)
    return torch.addmm(csq[None, :], z, c.T, alpha=-2.0).add_(sq[:, None])
