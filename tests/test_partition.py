from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyclean.partition import RandomBags, disjoint, membership_matrix, validate_subsets


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 500), k=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_disjoint_is_disjoint_covering_and_balanced(n, k, seed):
    k = min(k, n)
    subsets = disjoint(n, k, np.random.default_rng(seed))
    assert len(subsets) == k
    member = membership_matrix(subsets, n)
    assert (member.sum(axis=0) == 1).all()  # covering and disjoint
    sizes = [len(s) for s in subsets]
    assert max(sizes) - min(sizes) <= 1
    assert all(np.all(np.diff(s) > 0) for s in subsets)


def test_disjoint_is_seeded_and_random():
    a = disjoint(100, 3, np.random.default_rng(1))
    b = disjoint(100, 3, np.random.default_rng(1))
    c = disjoint(100, 3, np.random.default_rng(2))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert not np.array_equal(a[0], np.arange(len(a[0])))


def test_random_bags_balance_coverage():
    bags = RandomBags(n_bags=20, fraction=0.1)(200, np.random.default_rng(0))
    member = membership_matrix(bags, 200)
    assert member.shape == (20, 200)
    assert (member.sum(axis=1) == 20).all()
    assert set(member.sum(axis=0).tolist()) == {2}  # every sample in exactly 2 bags
    assert (~member).sum(axis=0).min() == 18        # and out of bag for 18


def test_custom_partition_is_validated():
    with pytest.raises(ValueError, match="at least 2"):
        validate_subsets([np.arange(5)], 5)
    with pytest.raises(ValueError, match="empty"):
        validate_subsets([np.arange(5), np.array([], int)], 5)
    with pytest.raises(ValueError, match="outside"):
        validate_subsets([np.arange(5), np.array([7])], 5)
