"""Exact k-nearest-neighbour search of query patches in a memory bank.

:func:`knn_torch` needs nothing beyond torch and runs on any device; :func:`knn_faiss`
searches a faiss index (an optional dependency), which is faster on a CPU.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def knn_torch(queries: Any, bank: Any, k: int, chunk_bytes: int = 64 * 1024**2) -> tuple[Any, Any]:
    """Exact k nearest neighbours by matmul-and-min, in query chunks: ``(dist, idx)`` ``(q, k)``.

    ``|q - m|² = |q|² - 2 q·m + |m|²`` turns the search into one matrix product per chunk,
    which BLAS does far faster than pairwise loops; chunks bound the memory to
    ``chunk_bytes`` for the distance block.
    """
    import torch

    bank_sq = (bank * bank).sum(dim=1)
    rows = max(1, int(chunk_bytes // (4 * max(1, bank.shape[0]))))
    dists, idxs = [], []
    for start in range(0, queries.shape[0], rows):
        q = queries[start : start + rows]
        d2 = torch.addmm(bank_sq[None, :], q, bank.T, alpha=-2.0)
        d2 += (q * q).sum(dim=1, keepdim=True)
        if k == 1:
            val, idx = d2.min(dim=1, keepdim=True)
        else:
            val, idx = d2.topk(k, dim=1, largest=False)
        dists.append(val.clamp_min_(0.0).sqrt_())
        idxs.append(idx)
    return torch.cat(dists), torch.cat(idxs)


def faiss_index(bank: Any) -> Any:
    """An exact (flat L2) faiss index of the memory bank ``(M, D)``."""
    try:
        import faiss
    except ImportError as exc:
        raise ImportError(
            "knn_backend='faiss' needs faiss: pip install faiss-cpu (or use 'torch')"
        ) from exc
    rows = bank.detach().cpu().numpy().astype(np.float32)
    index = faiss.IndexFlatL2(rows.shape[1])
    index.add(rows)
    return index


def knn_faiss(index: Any, queries: Any, k: int) -> tuple[Any, Any]:
    """The ``k`` nearest bank rows of each query in ``index``: ``(dist, idx)`` ``(q, k)``,
    as torch tensors on the queries' device, like :func:`knn_torch`."""
    import torch

    q = np.ascontiguousarray(queries.detach().cpu().numpy(), dtype=np.float32)
    d2, idx = index.search(q, k)
    dist = torch.from_numpy(np.sqrt(np.maximum(d2, 0.0))).to(queries.device)
    return dist, torch.from_numpy(idx).to(queries.device)
