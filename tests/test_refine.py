"""Refinement rounds: a detector trained on the trusted core re-judges everything else."""

from __future__ import annotations

import numpy as np
import pytest
from core_detectors import ValueDetector

from noisyclean import Purifier
from noisyclean.detectors.knn import KNNDetector


@pytest.fixture
def repeated_defects():
    """Normals plus one tight cluster of anomalies: the anomalies vouch for each other."""
    rng = np.random.default_rng(0)
    x = np.vstack([rng.normal(size=(180, 4)), rng.normal(loc=5, scale=0.8, size=(20, 4))])
    y = np.r_[np.zeros(180, bool), np.ones(20, bool)]
    order = rng.permutation(200)
    return x[order], y[order]


def test_refinement_catches_anomalies_that_vouch_for_each_other(repeated_defects):
    x, y = repeated_defects
    plain = Purifier(KNNDetector, k=3, keep=0.8, progress=False).fit(x)
    refined = Purifier(KNNDetector, k=3, keep=0.8, refine=1, progress=False).fit(x)
    assert y[plain.keep_indices_].sum() > 0      # the cluster survives the plain consensus
    assert y[refined.keep_indices_].sum() == 0   # the clean core's detector drops all of it


def test_refinement_rows_core_and_ranking():
    values = np.random.default_rng(1).permutation(40).astype(float)[:, None]
    p = Purifier(ValueDetector, k=2, keep=0.5, refine=2, core=0.25, progress=False).fit(values)
    assert p.scores_.shape == (6, 40) and p.membership_.shape == (6, 40)
    assert p.round_.tolist() == [0, 0, 1, 1, 2, 2]
    assert p.n_submodels_ == 2 and p.partition_ is not None
    halves = p.membership_[-2:]
    assert halves.sum() == 10 and not (halves[0] & halves[1]).any()  # the core, split in two
    assert set(np.flatnonzero(halves.any(0))) == set(np.argsort(values[:, 0])[:10])
    assert np.isnan(p.scores_[-2:][halves]).all()  # out of bag only
    np.testing.assert_array_equal(np.sort(p.keep_indices_),
                                  np.sort(np.argsort(values[:, 0])[:20]))


def test_refined_keep_auto_keeps_clean_data(repeated_defects):
    x, y = repeated_defects
    clean = Purifier(KNNDetector, keep="auto", refine=1, progress=False).fit(x[~y])
    assert clean.n_keep_ >= 0.95 * (~y).sum()
    dirty = Purifier(KNNDetector, keep="auto", refine=1, progress=False).fit(x)
    assert y[dirty.keep_indices_].sum() == 0


def test_refined_runs_save_load_and_resume(tmp_path, repeated_defects):
    x, _ = repeated_defects
    p = Purifier("knn", refine=1, cache_dir=tmp_path / "c", progress=False).fit(x)
    p.save(tmp_path / "run")
    q = Purifier.load(tmp_path / "run")
    np.testing.assert_array_equal(q.keep_indices_, p.keep_indices_)
    assert q.n_submodels_ == 3 and q.refine == 1
    again = Purifier("knn", refine=1, cache_dir=tmp_path / "c", progress=False).fit(x)
    np.testing.assert_array_equal(again.scores_, p.scores_)
    with pytest.raises(ValueError, match="only keep can change"):
        p.reselect(normalize="zscore")
    assert len(p.reselect(keep=0.5).keep_indices_) == 100


@pytest.mark.parametrize(("kwargs", "match"), [({"refine": -1}, "refine"),
                                               ({"core": 1.0}, "core=")])
def test_bad_refinement_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Purifier(KNNDetector, progress=False, **kwargs).fit(np.zeros((30, 2)))
