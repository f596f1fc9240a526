"""The contamination protocol: exact ratios, stratification, disjointness, seeds, overlap."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from noisyclean.data import DataError, make_noisy_split
from noisyclean.data.noise import best_anomaly_count, best_normal_count

MTD_TYPES = {"Blowhole": 115, "Break": 85, "Crack": 57, "Fray": 32, "Uneven": 103}


def labelled(n_normal: int, types: dict[str, int], seed: int = 0):
    """Labels and types in a shuffled order, like a real folder listing."""
    labels = [0] * n_normal
    dtypes: list[str | None] = [None] * n_normal
    for t, c in types.items():
        labels += [1] * c
        dtypes += [t] * c
    order = np.random.default_rng(seed).permutation(len(labels))
    return np.asarray(labels)[order], [dtypes[i] for i in order]


def check_invariants(split, labels, types):
    n = len(labels)
    train, test = split.train_indices, split.test_indices
    assert np.all(np.diff(train) > 0) and np.all(np.diff(test) > 0)  # sorted, unique
    if not split.overlap:
        assert set(train).isdisjoint(test)
    else:
        assert set(split.injected_indices) <= set(test)
        assert set(train[labels[train] == 0]).isdisjoint(test)
    covered = set(train) | set(test) | set(split.unused_indices)
    assert covered == set(range(n))
    assert set(split.unused_indices).isdisjoint(set(train) | set(test))
    assert split.n_train_anomaly == int((labels[train] == 1).sum())
    assert split.n_train_normal == int((labels[train] == 0).sum())
    assert split.n_test_anomaly == int((labels[test] == 1).sum())
    assert split.n_test_normal == int((labels[test] == 0).sum())
    assert np.array_equal(split.injected_indices, train[labels[train] == 1])
    assert math.isclose(split.achieved_ratio, split.n_train_anomaly / train.size)
    got = Counter(types[i] for i in split.injected_indices)
    assert {k: v for k, v in split.train_anomalies_per_type.items() if v} == dict(got)


def test_magnetic_tile_counts_at_the_benchmark_ratios():
    labels, types = labelled(952, MTD_TYPES)
    expected = {0.0: (666, 0), 0.1: (666, 74), 0.2: (666, 167), 0.4: (291, 194)}
    for ratio, (normals, anomalies) in expected.items():
        s = make_noisy_split(labels, types, ratio, seed=0)
        check_invariants(s, labels, types)
        assert (s.n_train_normal, s.n_train_anomaly) == (normals, anomalies)
        assert s.n_test_normal == 286
        assert s.test_anomalies_per_type == {"Blowhole": 58, "Break": 43, "Crack": 29,
                                             "Fray": 16, "Uneven": 52}
        assert s.normals_reduced == (ratio == 0.4)
        assert abs(s.achieved_ratio - ratio) < 0.001
    s = make_noisy_split(labels, types, 0.1, seed=0)
    assert s.train_anomalies_per_type == {"Blowhole": 22, "Break": 16, "Crack": 11, "Fray": 6,
                                          "Uneven": 19}
    assert "ratio 0.1000" in str(s)
    assert s.counts()["n_train"] == 740


def test_the_test_set_does_not_depend_on_the_ratio_and_seeds_matter():
    labels, types = labelled(200, {"a": 40, "b": 20})
    splits = [make_noisy_split(labels, types, r, seed=3) for r in (0.0, 0.1, 0.2, 0.4)]
    for s in splits[1:]:
        assert np.array_equal(s.test_indices, splits[0].test_indices)
    again = make_noisy_split(labels, types, 0.2, seed=3)
    assert np.array_equal(again.train_indices, splits[2].train_indices)
    other = make_noisy_split(labels, types, 0.2, seed=4)
    assert not np.array_equal(other.test_indices, splits[2].test_indices)


def test_ratio_is_exact_where_integers_allow():
    labels, types = labelled(100, {"a": 100, "b": 100})
    for ratio, a in ((0.1, 8), (0.2, 18), (0.3, 30), (0.5, 70)):
        s = make_noisy_split(labels, types, ratio, seed=1)
        assert s.n_train_normal == 70
        assert s.n_train_anomaly == a
        best = min(range(0, 200), key=lambda k: abs(k / (70 + k) - ratio))
        assert abs(s.achieved_ratio - ratio) == pytest.approx(abs(best / (70 + best) - ratio))


def test_overlap_follows_softpatch():
    labels, types = labelled(100, {"a": 30, "b": 10})
    s = make_noisy_split(labels, types, 0.1, overlap=True, test_anomaly_fraction=1.0, seed=0)
    check_invariants(s, labels, types)
    assert s.n_test_anomaly == 40  # the whole anomaly set stays in the test set
    assert set(s.injected_indices) <= set(s.test_indices)
    assert s.n_train_anomaly == 8  # 70 normals: 8 / 78 is closest to 0.1
    plain = make_noisy_split(labels, types, 0.1, seed=0)
    assert set(plain.injected_indices).isdisjoint(plain.test_indices)


def test_shortage_raises_when_asked():
    labels, types = labelled(100, {"a": 10})
    with pytest.raises(DataError, match=r"needs 47 anomalies, but only 5"):
        make_noisy_split(labels, types, 0.4, on_shortage="raise")
    s = make_noisy_split(labels, types, 0.4)
    assert (s.n_train_normal, s.n_train_anomaly) == (8, 5)  # 5 / 13 = 0.385, closest
    assert s.normals_reduced
    assert len(s.unused_indices) == 70 - 8
    with pytest.raises(DataError, match="only 0"):
        make_noisy_split(*labelled(10, {}), 0.1)


def test_invalid_inputs():
    labels, types = labelled(10, {"a": 4})
    with pytest.raises(DataError, match="label other than 0"):
        make_noisy_split(np.r_[labels, -1], [*types, None], 0.1)
    with pytest.raises(ValueError, match="noise_ratio"):
        make_noisy_split(labels, types, 1.0)
    with pytest.raises(ValueError, match="test_normal_fraction"):
        make_noisy_split(labels, types, 0.1, test_normal_fraction=1.5)
    with pytest.raises(ValueError, match="defect_types has"):
        make_noisy_split(labels, types[:-1], 0.1)
    with pytest.raises(DataError, match="no normals are left"):
        make_noisy_split(labels, types, 0.1, test_normal_fraction=1.0)


def test_untyped_anomalies_form_one_type():
    labels, _ = labelled(50, {"x": 10})
    s = make_noisy_split(labels, None, 0.1, seed=0)
    assert s.train_anomalies_per_type == {"anomaly": 4}


def test_best_counts_are_optimal():
    for n in range(1, 60):
        for r in (0.01, 0.1, 0.15, 0.2, 0.33, 0.4, 0.5, 0.9):
            a = best_anomaly_count(n, r)
            err = abs(a / (n + a) - r)
            assert all(err <= abs(k / (n + k) - r) + 1e-12 for k in range(0, 20 * n))
            m = best_normal_count(n, r, 500)
            err = abs(n / (m + n) - r)
            assert all(err <= abs(n / (k + n) - r) + 1e-12 for k in range(1, 501))


@settings(max_examples=150, deadline=None)
@given(
    n_normal=st.integers(1, 300),
    type_counts=st.lists(st.integers(0, 40), min_size=1, max_size=4),
    ratio=st.sampled_from([0.0, 0.05, 0.1, 0.2, 0.25, 0.4, 0.6]),
    tnf=st.sampled_from([0.0, 0.3, 0.5]),
    taf=st.sampled_from([0.0, 0.5, 1.0]),
    overlap=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
# anomalies run short, yet keeping every normal is still the closest ratio (found by hypothesis)
@example(n_normal=38, type_counts=[9, 9, 35], ratio=0.6, tnf=0.5, taf=0.5, overlap=True, seed=0)
def test_split_properties(n_normal, type_counts, ratio, tnf, taf, overlap, seed):
    types_spec = {f"t{i}": c for i, c in enumerate(type_counts)}
    labels, types = labelled(n_normal, types_spec, seed=seed % 97)
    try:
        s = make_noisy_split(labels, types, ratio, test_normal_fraction=tnf,
                             test_anomaly_fraction=taf, overlap=overlap, seed=seed)
    except DataError as exc:
        # only allowed when no anomaly (or no normal) is available for training
        msg = str(exc)
        assert "only 0" in msg or "no normals are left" in msg
        return
    check_invariants(s, labels, types)
    # held-out counts: half up of each fraction, per type
    assert s.n_test_normal == math.floor(tnf * n_normal + 0.5 + 1e-9)
    for t, c in types_spec.items():
        assert s.test_anomalies_per_type.get(t, 0) == math.floor(taf * c + 0.5 + 1e-9)
    held = {t: s.test_anomalies_per_type.get(t, 0) for t in types_spec}
    pool = {t: held[t] if overlap else types_spec[t] - held[t] for t in types_spec}
    total = sum(pool.values())
    # the ratio is the best achievable: with every training normal when enough anomalies are
    # available; else with every available anomaly and the best count of normals (which may
    # still be all of them, so normals_reduced says only whether any were left out)
    a, n = s.n_train_anomaly, s.n_train_normal
    pool_normals = n_normal - s.n_test_normal
    if best_anomaly_count(pool_normals, ratio) <= total:
        assert (a, n) == (best_anomaly_count(pool_normals, ratio), pool_normals)
        assert not s.normals_reduced
    else:
        assert a == total
        assert n == best_normal_count(a, ratio, pool_normals)
        assert s.normals_reduced == (n < pool_normals)
    # stratified: each type within one of its proportional share of the available pool
    for t in types_spec:
        share = a * pool[t] / total if total else 0
        assert abs(s.train_anomalies_per_type.get(t, 0) - share) < 1
    # deterministic per seed
    again = make_noisy_split(labels, types, ratio, test_normal_fraction=tnf,
                             test_anomaly_fraction=taf, overlap=overlap, seed=seed)
    assert np.array_equal(again.train_indices, s.train_indices)
    assert np.array_equal(again.test_indices, s.test_indices)
