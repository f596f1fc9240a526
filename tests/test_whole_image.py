"""The whole-image view: its distances, how it joins the consensus, and its persistence."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from core_detectors import TwoViewDetector, ValueDetector
from scipy.spatial.distance import cdist

from noisyclean import Purifier
from noisyclean import whole_image as wi
from noisyclean.protocol import Embedder


@pytest.fixture
def repeated_defects():
    """80 normals and 16 anomalies that share one value in column 0 (so they vouch for each
    other) but each lie far out, in its own direction, in the embedded columns."""
    rng = np.random.default_rng(0)
    normals = rng.normal(size=(80, 4))
    far = rng.normal(size=(16, 3))
    far *= 8 / np.linalg.norm(far, axis=1, keepdims=True)
    anomalies = np.c_[np.full(16, 0.3), far]
    x = np.vstack([normals, anomalies])
    y = np.r_[np.zeros(80, bool), np.ones(16, bool)]
    order = rng.permutation(96)
    return x[order], y[order]


def _direct_outlier_scores(x, kth):
    """The definition, written out: standardise, all pairwise distances, leave oneself out."""
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1)
    d = cdist(z, z, "sqeuclidean")
    np.fill_diagonal(d, np.inf)
    return np.sort(d, axis=1)[:, kth - 1]


@pytest.mark.parametrize("kth", [1, 5])
def test_outlier_scores_match_the_definition_in_small_chunks(monkeypatch, kth):
    x = np.random.default_rng(1).normal(size=(37, 6)) * [1, 10, 100, 1, 1, 0.1]
    expected = _direct_outlier_scores(x, kth)
    np.testing.assert_allclose(wi.outlier_scores(x, kth), expected, rtol=1e-9, atol=1e-9)
    monkeypatch.setattr(wi, "WORKING_MEMORY_MB", 8 * 37 * 4 / 1024**2)  # four rows a block
    np.testing.assert_allclose(wi.outlier_scores(x, kth), expected, rtol=1e-9, atol=1e-9)


def test_outlier_scores_edge_cases():
    assert wi.outlier_scores(np.ones((1, 3))).tolist() == [0.0]
    x = np.c_[np.arange(4.0), np.zeros(4)]  # a constant column is no reason to be unusual
    scores = wi.outlier_scores(x, neighbors=50)  # capped at n - 1
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores, _direct_outlier_scores(x, 3))


def test_combine_keeps_only_what_both_views_find_ordinary():
    consensus = np.array([0.1, 0.2, 0.9, 0.3])
    whole = np.array([5.0, 1.0, 2.0, 9.0])
    combined = wi.combine(consensus, whole)
    np.testing.assert_allclose(combined, [0.75, 0.5, 1.0, 1.0])  # the larger rank / n


def test_the_whole_image_view_finds_repeated_defects_the_consensus_misses(repeated_defects):
    x, y = repeated_defects
    recipe = Purifier(TwoViewDetector, k=3, keep=0.8, whole_image=False, progress=False).fit(x)
    default = Purifier(TwoViewDetector, k=3, keep=0.8, progress=False).fit(x)
    assert not recipe.whole_image_ and recipe.whole_image_scores_ is None
    assert default.whole_image_ and default.whole_image_scores_.shape == (96,)
    # the copies in every subset make them look normal to every sub-model
    assert y[recipe.drop_indices_].sum() == 0
    # as a whole they stand out: the view ranks all 16 above every normal
    assert y[np.argsort(-default.whole_image_scores_)[:16]].all()
    # each view's top ranks share the 19 drops, so the view alone finds 9 of them here
    assert y[default.drop_indices_].sum() >= 8
    wider = Purifier(TwoViewDetector, k=3, keep=0.6, progress=False).fit(x)
    assert y[wider.drop_indices_].sum() == 16  # with 38 drops, every one of them
    # the same sub-models: only the selection differs
    np.testing.assert_array_equal(recipe.scores_, default.scores_)
    expected = wi.combine(default.consensus_, default.whole_image_scores_)
    np.testing.assert_array_equal(default.selection_scores_, expected)
    assert (expected[default.keep_indices_].max()
            <= expected[default.drop_indices_].min())


def test_auto_follows_the_detector_and_true_requires_embed(repeated_defects):
    x, _ = repeated_defects
    assert isinstance(TwoViewDetector(), Embedder)
    assert not isinstance(ValueDetector(), Embedder)
    plain = Purifier(ValueDetector, k=3, progress=False).fit(x)
    assert not plain.whole_image_ and plain.whole_image_scores_ is None
    np.testing.assert_array_equal(plain.selection_scores_, plain.consensus_)
    with pytest.raises(ValueError, match="whole_image=True needs a detector with embed"):
        Purifier(ValueDetector, whole_image=True, progress=False).fit(x)
    # factories that are not classes are asked through one instance
    lam = Purifier(lambda: TwoViewDetector(), k=3, progress=False).fit(x)
    part = Purifier(functools.partial(TwoViewDetector), k=3, progress=False).fit(x)
    assert lam.whole_image_ and part.whole_image_
    np.testing.assert_array_equal(lam.keep_indices_, part.keep_indices_)


@pytest.mark.parametrize("kwargs, match", [
    ({"whole_image": "yes"}, "whole_image='yes' must be"),
    ({"whole_image_neighbors": 0}, "whole_image_neighbors must be an integer >= 1"),
    ({"whole_image_neighbors": 2.5}, "whole_image_neighbors must be an integer >= 1"),
    ({"whole_image_neighbors": True}, "whole_image_neighbors must be an integer >= 1"),
])
def test_bad_whole_image_settings(repeated_defects, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Purifier(TwoViewDetector, progress=False, **kwargs).fit(repeated_defects[0])


def test_a_bad_embedding_is_named():
    class Flat(TwoViewDetector):
        def embed(self, dataset):
            return np.zeros(len(dataset))

    class Holes(TwoViewDetector):
        def embed(self, dataset):
            return np.full((len(dataset), 2), np.nan)

    x = np.random.default_rng(0).normal(size=(12, 3))
    with pytest.raises(ValueError, match=r"Flat.embed\(\) returned shape \(12,\)"):
        Purifier(Flat, progress=False).fit(x)
    with pytest.raises(ValueError, match=r"Holes.embed\(\) returned non-finite"):
        Purifier(Holes, progress=False).fit(x)


def test_samples_are_tracked_by_identity_in_any_order(repeated_defects):
    x, _ = repeated_defects
    fitted = Purifier(TwoViewDetector, k=3, progress=False).fit(x)
    perm = np.random.default_rng(5).permutation(len(x))
    shuffled = Purifier(TwoViewDetector, k=3, progress=False).fit(x[perm])
    # the whole-image distances belong to the samples, whatever their order
    np.testing.assert_allclose(shuffled.whole_image_scores_, fitted.whole_image_scores_[perm])


def test_reselect_switches_the_view_without_training(repeated_defects):
    x, _ = repeated_defects
    p = Purifier(TwoViewDetector, k=3, progress=False).fit(x)
    with_view = p.keep_indices_.copy()
    recipe = Purifier(TwoViewDetector, k=3, whole_image=False, progress=False).fit(x)
    p.reselect(whole_image=False)
    assert not p.whole_image_
    np.testing.assert_array_equal(p.keep_indices_, recipe.keep_indices_)
    p.reselect(whole_image="auto")
    np.testing.assert_array_equal(p.keep_indices_, with_view)
    with pytest.raises(ValueError, match="not computed at fit"):
        recipe.reselect(whole_image=True)
    with pytest.raises(ValueError, match="whole_image='no' must be"):
        p.reselect(whole_image="no")
    assert p.whole_image == "auto"  # a refused change leaves the old value
    refined = Purifier(TwoViewDetector, k=3, refine=1, progress=False).fit(x)
    with pytest.raises(ValueError, match="refinement rounds"):
        refined.reselect(whole_image=False)


def test_save_and_load_keep_the_view(repeated_defects, tmp_path):
    x, _ = repeated_defects
    p = Purifier(TwoViewDetector, k=3, whole_image_neighbors=3, progress=False).fit(x)
    p.save(tmp_path / "run")
    q = Purifier.load(tmp_path / "run", detector=TwoViewDetector)
    assert q.whole_image_ and q.whole_image_neighbors == 3
    np.testing.assert_array_equal(q.whole_image_scores_, p.whole_image_scores_)
    np.testing.assert_array_equal(q.ranking_, p.ranking_)
    np.testing.assert_array_equal(q.keep_indices_, p.keep_indices_)
    q.reselect(keep=0.5)
    np.testing.assert_array_equal(q.keep_indices_, p.reselect(keep=0.5).keep_indices_)


def test_a_resumed_run_reuses_the_embeddings(repeated_defects, tmp_path):
    x, _ = repeated_defects
    TwoViewDetector.embed_calls = 0
    first = Purifier(TwoViewDetector, k=3, cache_dir=tmp_path, progress=False).fit(x)
    again = Purifier(TwoViewDetector, k=3, cache_dir=tmp_path, whole_image_neighbors=3,
                     progress=False).fit(x)
    assert TwoViewDetector.embed_calls == 1
    np.testing.assert_array_equal(first.scores_, again.scores_)
    assert not np.array_equal(first.whole_image_scores_, again.whole_image_scores_)


def test_the_report_shows_what_the_selection_ranked(repeated_defects, tmp_path):
    from noisyclean.report import write_report

    x, _ = repeated_defects
    with_view = Purifier(TwoViewDetector, k=3, progress=False).fit(x)
    html = " ".join(write_report(with_view, None, tmp_path / "view.html").read_text().split())
    assert "With the whole-image view, the plot shows what was ranked" in html
    # the keep threshold is drawn on the selection scores, between the kept and the dropped
    scores, kept = with_view.selection_scores_, with_view.keep_mask_
    cut = (scores[kept].max() + scores[~kept].min()) / 2
    assert f'<div class="v">{cut:.3g}</div>' in html
    recipe = Purifier(TwoViewDetector, k=3, whole_image=False, progress=False).fit(x)
    assert "whole-image" not in write_report(recipe, None, tmp_path / "r.html").read_text()
