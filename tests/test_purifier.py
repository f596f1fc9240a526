"""The Purifier's behaviour: determinism, out-of-bag scoring, stage 2, validation."""

from __future__ import annotations

import copy
import functools

import numpy as np
import pytest
from core_detectors import BadLength, InBagMarker, NonFinite, ValueDetector

from noisyclean import Purifier, Subset, UnknownDetectorError
from noisyclean.detectors.gaussian import GaussianDetector
from noisyclean.detectors.knn import KNNDetector
from noisyclean.partition import RandomBags


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    far = rng.normal(size=(10, 4))
    far *= 9 / np.linalg.norm(far, axis=1, keepdims=True)  # diverse: each in its own direction
    x = np.vstack([rng.normal(size=(90, 4)), far])
    y = np.r_[np.zeros(90, bool), np.ones(10, bool)]
    order = rng.permutation(100)
    return x[order], y[order]


def test_fit_returns_self_and_sets_attributes(blobs):
    x, y = blobs
    p = Purifier(KNNDetector, k=3, keep=0.8, progress=False)
    assert p.fit(x) is p
    assert p.scores_.shape == (3, 100) and p.membership_.shape == (3, 100)
    assert p.partition_.shape == (100,) and set(p.partition_.tolist()) == {0, 1, 2}
    assert len(p.keep_indices_) == 80 and len(p.drop_indices_) == 20
    assert y[p.drop_indices_].sum() == 10  # every far outlier dropped
    assert p.scoring_ == "out_of_bag"      # knn's declared preference under scoring="auto"


def test_constructor_only_stores(blobs):
    p = Purifier("no-such-detector", k=-5, keep=7.5)
    assert p.k == -5 and p.keep == 7.5 and not hasattr(p, "keep_indices_")


def test_same_seed_same_result_serial_and_process(blobs):
    x, _ = blobs
    serial = Purifier(KNNDetector, seed=4, progress=False).fit(x)
    again = Purifier(KNNDetector, seed=4, progress=False).fit(x)
    process = Purifier(KNNDetector, seed=4, executor="process", progress=False,
                       executor_options={"max_workers": 2}).fit(x)
    other = Purifier(KNNDetector, seed=5, progress=False).fit(x)
    for run in (again, process):
        np.testing.assert_array_equal(run.scores_, serial.scores_)
        np.testing.assert_array_equal(run.keep_indices_, serial.keep_indices_)
    assert not np.array_equal(other.membership_, serial.membership_)


def test_process_executor_explains_unpicklable_factory(blobs):
    x, _ = blobs
    with pytest.raises(TypeError, match="functools.partial"):
        Purifier(lambda: KNNDetector(), executor="process", progress=False).fit(x)


def test_out_of_bag_never_uses_own_samples():
    values = np.random.default_rng(1).permutation(60).astype(float)[:, None]
    p = Purifier(InBagMarker, k=3, keep=0.5, scoring="out_of_bag", normalize=None,
                 progress=False).fit(values)
    assert np.isnan(p.scores_[p.membership_]).all()
    assert np.isfinite(p.scores_[~p.membership_]).all()
    assert p.scores_[~p.membership_].max() < 1e6  # no in-bag sentinel ever entered
    np.testing.assert_allclose(p.consensus_, values[:, 0])
    inbag = Purifier(InBagMarker, k=3, keep=0.5, scoring="all", normalize=None,
                     progress=False).fit(values)
    assert (inbag.scores_[inbag.membership_] == 1e6).all()


def test_bags_partition_with_out_of_bag(blobs):
    x, y = blobs
    p = Purifier(KNNDetector, keep=0.85, partition=RandomBags(n_bags=10, fraction=0.2),
                 progress=False).fit(x)
    assert p.partition_ is None and p.membership_.shape == (10, 100)
    assert y[p.keep_indices_].sum() == 0


def test_keep_auto_loses_little_on_clean_data_and_drops_outliers(blobs):
    x, y = blobs
    dirty = Purifier(KNNDetector, keep="auto", progress=False).fit(x)
    assert y[dirty.keep_indices_].sum() == 0
    clean = Purifier(GaussianDetector, keep="auto", progress=False).fit(x[~y])
    assert clean.n_keep_ >= 0.95 * (~y).sum()


@pytest.mark.parametrize("normalize", ["rank", "zscore", "robust_zscore", "minmax", None])
@pytest.mark.parametrize("aggregate", ["mean", "median", "max", lambda m: np.nanmean(m, 0)])
def test_normalise_and_aggregate_choices(blobs, normalize, aggregate):
    x, y = blobs
    p = Purifier(GaussianDetector, normalize=normalize, aggregate=aggregate,
                 progress=False).fit(x)
    assert y[p.drop_indices_].sum() == 10


def test_reselect_trains_nothing(blobs):
    x, _ = blobs
    p = Purifier(KNNDetector, progress=False).fit(x)
    scores = p.scores_.copy()
    p.reselect(keep=0.5, aggregate="median")
    assert len(p.keep_indices_) == 50
    np.testing.assert_array_equal(p.scores_, scores)


def test_stage_two_trains_on_exactly_the_kept_samples(blobs):
    x, _ = blobs
    p = Purifier(ValueDetector, keep=0.7, progress=False).fit(x)
    final = p.fit_final(x)
    assert final.n_fit_ == 70
    view = p.subset(x)
    assert isinstance(view, Subset)
    np.testing.assert_array_equal(view.indices, p.keep_indices_)
    np.testing.assert_array_equal(np.stack([view[i] for i in range(len(view))]),
                                  x[p.keep_indices_])
    with pytest.raises(ValueError, match="not the one"):
        p.subset(x[:50])


def test_ids_follow_the_samples():
    class Named(list):
        @property
        def ids(self):
            return [f"img_{v[0]:03.0f}.png" for v in self]

    values = Named(np.random.default_rng(2).permutation(30).astype(float)[:, None])
    p = Purifier(ValueDetector, k=3, keep_count=10, progress=False).fit(values)
    kept_ids = sorted(p.subset(values).ids)
    assert kept_ids == [f"img_{v:03d}.png" for v in range(10)]
    assert p.ids_ == values.ids


def test_registered_name_with_kwargs(blobs):
    x, y = blobs
    kwargs = {"n_neighbors": 3}
    p = Purifier("knn", detector_kwargs=kwargs, progress=False).fit(x)
    assert y[p.drop_indices_].sum() == 10 and kwargs == {"n_neighbors": 3}


def test_partial_factory(blobs):
    x, _ = blobs
    p = Purifier(functools.partial(KNNDetector, n_neighbors=2), progress=False).fit(x)
    assert p.scoring_ == "out_of_bag"  # read from the partial's class, KNNDetector
    assert len(p.keep_indices_) == 80


# -- validation: every bad input gets a clear error, and nothing passed in is changed ------
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"k": 1}, ValueError, "at least 2 sub-models"),
        ({"k": 500}, ValueError, "need at least 500 samples"),
        ({"keep": 0}, ValueError, "keeps nothing"),
        ({"keep": 1.5}, ValueError, "out of range"),
        ({"keep": -0.2}, ValueError, "out of range"),
        ({"keep": "most"}, ValueError, "not understood"),
        ({"keep": True}, TypeError, "fraction"),
        ({"keep": 101}, ValueError, "keep_count=101"),
        ({"keep": 1}, ValueError, "write keep=1.0 to keep every sample"),
        ({"keep_count": 101}, ValueError, "more samples than"),
        ({"keep_count": 0}, ValueError, "whole number of samples >= 1"),
        ({"keep_count": 2.5}, ValueError, "whole number of samples >= 1"),
        ({"scoring": "inbag"}, ValueError, "unknown scoring"),
        ({"normalize": "l2"}, ValueError, "unknown normalize"),
        ({"aggregate": "sum"}, ValueError, "unknown aggregate"),
        ({"partition": "overlapping"}, ValueError, "unknown partition"),
        ({"executor": "threads"}, ValueError, "unknown executor"),
    ],
)
def test_bad_parameters(blobs, kwargs, error, match):
    x, _ = blobs
    with pytest.raises(error, match=match):
        Purifier(KNNDetector, progress=False, **kwargs).fit(x)


def test_empty_dataset():
    with pytest.raises(ValueError, match="empty"):
        Purifier(KNNDetector, progress=False).fit(np.empty((0, 3)))


def test_bad_scores_name_the_submodel_and_count(blobs):
    x, _ = blobs
    with pytest.raises(ValueError, match=r"sub-model 0 returned scores of shape \(101,\)"):
        Purifier(BadLength, scoring="all", progress=False).fit(x)
    bad = r"sub-model 0 returned 3 non-finite score\(s\) \(2 NaN, 1 inf\)"
    with pytest.raises(ValueError, match=bad):
        Purifier(NonFinite, scoring="all", progress=False).fit(x)


def test_unknown_detector_lists_the_known():
    with pytest.raises(UnknownDetectorError, match="Known detectors: .*gaussian, knn"):
        Purifier("resnet-magic", progress=False).fit(np.zeros((10, 2)))


def test_instance_instead_of_factory(blobs):
    x, _ = blobs
    with pytest.raises(TypeError, match="factory"):
        Purifier(KNNDetector(), progress=False).fit(x)


def test_nothing_passed_is_modified(blobs):
    x, _ = blobs
    before = copy.deepcopy(x)
    kwargs = {"n_neighbors": 4}
    Purifier("knn", detector_kwargs=kwargs, progress=False).fit(x)
    np.testing.assert_array_equal(x, before)
    assert kwargs == {"n_neighbors": 4}
