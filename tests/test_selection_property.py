"""keep_indices_ are the keep lowest consensus scores, in original indices.

The reference implementation permutes twice and then indexes the training set with positions
of the concatenated score array; the same property check must reject it.
"""

from __future__ import annotations

import numpy as np
from core_detectors import ValueDetector
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyclean import Purifier
from noisyclean.selection import n_to_keep


def lowest(values: np.ndarray, n_keep: int) -> set[int]:
    return set(np.argsort(values, kind="stable")[:n_keep].tolist())


def reference_double_permutation(values: np.ndarray, k: int, keep: float, seed: int) -> set[int]:
    """The reference code's selection logic, as described in shared/paper/reference-facts.md."""
    n = len(values)
    perm = np.random.default_rng(seed).permutation(n)
    shuffled = values[perm]                              # Subset(data, perm)
    size = n // k
    chunks = [perm[i * size:(i + 1) * size] for i in range(k - 1)] + [perm[(k - 1) * size:]]
    scores = np.concatenate([shuffled[c] for c in chunks])  # Subset(Subset(data, perm), perm[c])
    top = np.argsort(scores)[: n_to_keep(keep, n)]       # positions in the score array
    return set(top.tolist())                             # used as indices into the data


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(6, 120),
    k=st.integers(2, 5),
    keep=st.floats(0.1, 1.0),
    seed=st.integers(0, 10_000),
    data_seed=st.integers(0, 10_000),
)
def test_keep_indices_are_the_lowest_consensus(n, k, keep, seed, data_seed):
    k = min(k, n)
    values = np.random.default_rng(data_seed).permutation(n).astype(float)  # shuffled, distinct
    p = Purifier(ValueDetector, k=k, keep=keep, seed=seed, progress=False).fit(values[:, None])
    n_keep = n_to_keep(keep, n)
    assert set(p.keep_indices_.tolist()) == lowest(p.consensus_, n_keep)
    # the consensus ranks samples exactly as their true values do, so the kept samples are
    # the truly lowest ones, identified by their original positions
    assert set(p.keep_indices_.tolist()) == lowest(values, n_keep)
    assert np.all(np.diff(p.keep_indices_) > 0)
    assert sorted([*p.keep_indices_, *p.drop_indices_]) == list(range(n))
    assert p.keep_mask_.sum() == n_keep and p.keep_mask_[p.keep_indices_].all()


def test_the_property_rejects_the_reference_double_permutation():
    rng = np.random.default_rng(3)
    failures = 0
    for trial in range(20):
        values = rng.permutation(60).astype(float)
        if reference_double_permutation(values, k=3, keep=0.2, seed=trial) != lowest(values, 12):
            failures += 1
    assert failures >= 18  # the reference keeps a near-random subset


def test_ties_keep_the_lower_index():
    values = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])[:, None]
    p = Purifier(ValueDetector, k=2, keep_count=3, progress=False).fit(values)
    assert p.keep_indices_.tolist() == [0, 1, 4]
