"""The mutual view: MuSc's interval average, how it joins the selection, and its persistence."""

from __future__ import annotations

import numpy as np
import pytest

from noisyclean import Purifier
from noisyclean import mutual as mu
from noisyclean.samples import to_numpy

PATCHES, DIM = 12, 4


class TinyPatchCore:
    """A memory bank of every training patch; an image scores its worst patch's distance to
    the bank. Samples are flattened ``(PATCHES, DIM)`` patch sets, which ``patch_embed``
    returns as they are."""

    preferred_scoring = "out_of_bag"
    patch_embed_calls = 0

    def fit(self, dataset):
        self.bank_ = to_numpy(dataset).reshape(-1, DIM)
        return self

    def score(self, dataset):
        x = to_numpy(dataset).reshape(-1, DIM)
        d = np.sqrt(((x[:, None] - self.bank_[None]) ** 2).sum(-1)).min(1)
        return d.reshape(-1, PATCHES).max(1)

    def patch_embed(self, dataset):
        type(self).patch_embed_calls += 1
        return to_numpy(dataset).reshape(len(dataset), PATCHES, DIM)


class NoPatches(TinyPatchCore):
    patch_embed = None


@pytest.fixture
def repeated_defect_type():
    """60 normal images of Gaussian patches and 9 defect images that share one far-away
    patch (a repeated defect type: every copy matches the others)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(69, PATCHES, DIM))
    x[60:, 0] = 6.0 + 0.05 * rng.normal(size=(9, DIM))
    y = np.r_[np.zeros(60, bool), np.ones(9, bool)]
    order = rng.permutation(69)
    return x[order].reshape(69, -1), y[order]


def _auroc(y, s):
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(y, s)


def test_the_interval_average_finds_a_defect_type_the_nearest_image_misses(
        repeated_defect_type):
    x, y = repeated_defect_type
    patches = x.reshape(len(x), PATCHES, DIM)
    full = {"references": 69, "reference_patches": PATCHES}
    nearest = mu.mutual_scores(patches, fraction=1 / 68, **full)
    interval = mu.mutual_scores(patches, fraction=0.3, **full)
    assert _auroc(y, nearest) < 0.75  # each copy is matched by another copy
    assert y[np.argsort(-interval)[:9]].all()  # 20 images averaged: the 8 copies cannot hide it


def test_interval_scores_follow_the_definition():
    rng = np.random.default_rng(3)
    patches = rng.normal(size=(7, 5, 3)).astype(np.float32)
    refs = np.arange(7)
    dist = mu.image_distances(patches, refs, per_image=5)
    expected = np.empty((7, 5, 7))
    for i in range(7):
        for j in range(7):
            pair = np.sqrt(((patches[i][:, None] - patches[j][None]) ** 2).sum(-1))
            expected[i, :, j] = np.inf if i == j else pair.min(1)
    np.testing.assert_allclose(dist.astype(np.float64), expected, rtol=2e-3, atol=2e-3)
    scores = mu.interval_scores(dist, refs, fraction=0.5, top=0.4)  # 3 of 6 others, top 2
    closest = np.sort(expected, axis=2)[:, :, :3].mean(2)
    want = np.sort(closest, axis=1)[:, -2:].mean(1)
    np.testing.assert_allclose(scores, want, rtol=2e-3, atol=2e-3)


def test_trusted_references_score_again_without_the_flagged_images(repeated_defect_type):
    x, y = repeated_defect_type
    patches = x.reshape(len(x), PATCHES, DIM)
    # 10 images averaged: the 8 other copies still pull some of them below a normal ...
    narrow = {"fraction": 0.15, "references": 69, "reference_patches": PATCHES}
    once = mu.mutual_scores(patches, **narrow)
    assert not y[np.argsort(-once)[:9]].all()
    # ... but the first pass ranks them high, so against the trusted half none can vouch
    twice = mu.mutual_scores(patches, trusted=0.5, **narrow)
    assert twice[y].min() > 2 * twice[~y].max()


def test_the_purifier_drops_the_repeated_type_only_with_the_mutual_view(repeated_defect_type):
    x, y = repeated_defect_type
    params = {"references": 69, "reference_patches": PATCHES}
    recipe = Purifier(TinyPatchCore, k=3, keep=0.7, progress=False).fit(x)
    mutual = Purifier(TinyPatchCore, k=3, keep=0.7, mutual=True, mutual_params=params,
                      progress=False).fit(x)
    assert not recipe.mutual_ and recipe.mutual_scores_ is None
    assert y[recipe.drop_indices_].sum() < 9  # the copies in every subset vouch for each other
    assert y[mutual.drop_indices_].sum() == 9
    np.testing.assert_array_equal(recipe.scores_, mutual.scores_)  # the same sub-models
    assert "mutual_s" in mutual.timings_


def test_auto_follows_the_detector_and_true_requires_patch_embed(repeated_defect_type):
    x, _ = repeated_defect_type
    assert not Purifier(NoPatches, k=3, mutual="auto", progress=False).fit(x).mutual_
    assert Purifier(TinyPatchCore, k=3, mutual="auto", progress=False).fit(x).mutual_
    with pytest.raises(ValueError, match="mutual=True needs a detector with patch_embed"):
        Purifier(NoPatches, k=3, mutual=True, progress=False).fit(x)


@pytest.mark.parametrize("kwargs, match", [
    ({"mutual": "yes"}, "mutual='yes' must be"),
    ({"mutual": True, "mutual_params": {"fraction": 0}}, "fraction=0 must lie in"),
    ({"mutual": True, "mutual_params": {"width": 3}}, "keys among"),
    ({"mutual": True, "mutual_params": {"references": 1}}, "references=1 must be"),
    ({"mutual": True, "mutual_params": {"trusted": 1.0}}, "trusted=1.0 must be None"),
])
def test_bad_mutual_settings(repeated_defect_type, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Purifier(TinyPatchCore, progress=False, **kwargs).fit(repeated_defect_type[0])


def test_a_bad_patch_embedding_is_named():
    class Flat(TinyPatchCore):
        def patch_embed(self, dataset):
            return np.zeros((len(dataset), 3))

    with pytest.raises(ValueError, match=r"Flat.patch_embed\(\) returned shape"):
        Purifier(Flat, k=3, mutual=True, progress=False).fit(np.zeros((9, PATCHES * DIM)))


def test_save_and_load_keep_the_view(repeated_defect_type, tmp_path):
    x, _ = repeated_defect_type
    p = Purifier(TinyPatchCore, k=3, mutual=True, mutual_params={"fraction": 0.2},
                 progress=False).fit(x)
    p.save(tmp_path / "run")
    q = Purifier.load(tmp_path / "run", detector=TinyPatchCore)
    assert q.mutual_ and q.mutual_params == {"fraction": 0.2}
    np.testing.assert_array_equal(q.mutual_scores_, p.mutual_scores_)
    np.testing.assert_array_equal(q.ranking_, p.ranking_)
    np.testing.assert_array_equal(q.reselect(keep=0.5).keep_indices_,
                                  p.reselect(keep=0.5).keep_indices_)


def test_a_resumed_run_reuses_the_mutual_scores(repeated_defect_type, tmp_path):
    x, _ = repeated_defect_type
    TinyPatchCore.patch_embed_calls = 0
    first = Purifier(TinyPatchCore, k=3, mutual=True, cache_dir=tmp_path,
                     progress=False).fit(x)
    again = Purifier(TinyPatchCore, k=3, mutual=True, cache_dir=tmp_path,
                     progress=False).fit(x)
    assert TinyPatchCore.patch_embed_calls == 1
    np.testing.assert_array_equal(first.mutual_scores_, again.mutual_scores_)
    other = Purifier(TinyPatchCore, k=3, mutual=True, mutual_params={"fraction": 0.1},
                     cache_dir=tmp_path, progress=False).fit(x)
    assert TinyPatchCore.patch_embed_calls == 2  # other parameters, other scores
    assert not np.array_equal(first.mutual_scores_, other.mutual_scores_)


def test_patchknn_patch_embed_gives_the_features_its_memory_bank_is_built_from():
    torch = pytest.importorskip("torch")
    pytest.importorskip("timm")
    from noisyclean.detectors.patchknn import PatchKNN

    images = [torch.from_numpy(a) for a in
              np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)]
    detector = PatchKNN(pretrained=False, feature_dim=8, coreset_ratio=None,
                        coreset_max=None, feature_cache=False)
    patches = detector.patch_embed(images)  # no fit needed
    assert patches.shape == (3, 16, 8) and patches.dtype == np.float32
    bank = detector.fit(images).memory_bank_.numpy()  # every patch, in order, projected
    np.testing.assert_allclose(patches.reshape(-1, 8), bank, rtol=1e-5, atol=1e-6)


def test_the_benchmark_ablations_of_the_mutual_view_run(repeated_defect_type):
    from noisyclean.benchmark import ablation_conditions

    x, y = repeated_defect_type
    entries = [c for c in ablation_conditions() if (c.purifier or {}).get("mutual")
               and "community" not in (c.purifier.get("mutual_params") or {})]
    assert len(entries) == 2
    found = []
    for condition in entries:
        p = Purifier(TinyPatchCore, progress=False, **condition.purifier).fit(x)
        assert p.mutual_ and np.isfinite(p.mutual_scores_).all()
        found.append(y[p.drop_indices_].sum())
    # 30 % of 68 images is more than the 8 look-alikes; 10 % is not
    assert found[0] > found[1]
