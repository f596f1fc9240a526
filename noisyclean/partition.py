"""How stage 1 splits the training set among its sub-models.

A partition is any callable ``(n, rng) -> list of index arrays``. The paper's scheme is
:func:`disjoint`: k random, disjoint, balanced subsets. :class:`RandomBags` instead draws
many small overlapping bags (as MeDS does), so every sample is judged out of bag by many
sub-models that each saw only a small share of the data; repeated defects are then less
likely to sit in every bag and vouch for each other.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Partition = Callable[[int, np.random.Generator], Sequence[np.ndarray]]


def disjoint(n: int, k: int, rng: np.random.Generator) -> list[np.ndarray]:
    """k disjoint random subsets covering ``range(n)``; sizes differ by at most one.

    Each subset is returned sorted, so that sub-models see samples in their original order.
    """
    if not 1 <= k <= n:
        raise ValueError(f"cannot split {n} samples into k={k} non-empty subsets")
    perm = rng.permutation(n)
    return [np.sort(chunk) for chunk in np.array_split(perm, k)]


class Disjoint:
    """The paper's partition as a callable: ``Disjoint(k)(n, rng)``."""

    def __init__(self, k: int):
        self.k = k

    def __call__(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        return disjoint(n, self.k, rng)

    def __repr__(self) -> str:
        return f"Disjoint(k={self.k})"


class RandomBags:
    """``n_bags`` overlapping bags, each holding ``fraction`` of the samples.

    Bags are filled greedily with the samples that have so far appeared in the fewest bags
    (random among ties), so every sample lands in almost exactly
    ``n_bags * fraction`` bags and is out of bag for all the others.
    """

    def __init__(self, n_bags: int = 20, fraction: float = 0.1):
        if n_bags < 2:
            raise ValueError(f"RandomBags needs n_bags >= 2, got {n_bags}")
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"RandomBags fraction must lie in (0, 1), got {fraction}")
        self.n_bags = n_bags
        self.fraction = fraction

    def __call__(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        size = max(1, round(self.fraction * n))
        if size >= n:
            raise ValueError(
                f"RandomBags(fraction={self.fraction}) puts all {n} samples in every bag; "
                "lower the fraction or use more data."
            )
        coverage = np.zeros(n, dtype=np.int64)
        bags = []
        for _ in range(self.n_bags):
            jitter = rng.random(n)
            chosen = np.lexsort((jitter, coverage))[:size]
            coverage[chosen] += 1
            bags.append(np.sort(chosen))
        return bags

    def __repr__(self) -> str:
        return f"RandomBags(n_bags={self.n_bags}, fraction={self.fraction})"


def membership_matrix(subsets: Sequence[np.ndarray], n: int) -> np.ndarray:
    """``(len(subsets), n)`` boolean matrix: row j marks the samples sub-model j trains on."""
    member = np.zeros((len(subsets), n), dtype=bool)
    for j, idx in enumerate(subsets):
        member[j, idx] = True
    return member


def validate_subsets(subsets: Sequence[np.ndarray], n: int) -> list[np.ndarray]:
    """Check a custom partition's output and return it as sorted unique int arrays."""
    out = []
    if len(subsets) < 2:
        raise ValueError(
            f"the partition returned {len(subsets)} subset(s); stage 1 needs at least 2 "
            "sub-models to form a consensus."
        )
    for j, idx in enumerate(subsets):
        arr = np.unique(np.asarray(idx, dtype=np.int64).reshape(-1))
        if arr.size == 0:
            raise ValueError(f"the partition's subset {j} is empty; every sub-model needs data.")
        if arr[0] < 0 or arr[-1] >= n:
            raise ValueError(f"the partition's subset {j} holds indices outside [0, {n}).")
        out.append(arr)
    return out


def partition_labels(membership: np.ndarray) -> np.ndarray | None:
    """``(n,)`` subset id per sample when every sample is in exactly one subset."""
    if not (membership.sum(axis=0) == 1).all():
        return None
    return membership.argmax(axis=0)


