"""The detector: fit, score, maps, the shared feature cache, inputs, registration."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from noisyclean_dinomaly import Dinomaly
from noisyclean_dinomaly.data import Preprocessor
from noisyclean_dinomaly.detector import NotFittedError

from noisyclean.feature_cache import FeatureCache
from noisyclean.samples import Subset


class IdDataset:
    """A minimal noisyclean-style dataset: image tensors with ids and a cache key."""

    cache_key = "test-transform/v1"
    root = "/nowhere"

    def __init__(self, images):
        self.images = images
        self.ids = [f"img_{i:03d}.png" for i in range(len(images))]

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i]


def test_fit_lowers_the_loss_and_scores_every_sample(tiny_kwargs, images):
    det = Dinomaly(**{**tiny_kwargs, "max_steps": 30}).fit(images)
    losses = det.loss_history_
    assert losses.shape == (30,)
    assert losses[-5:].mean() < losses[:3].mean() - 0.05
    scores = det.score(images)
    assert scores.shape == (10,) and scores.dtype == np.float64 and np.isfinite(scores).all()
    maps = det.score_maps(images[:3])
    assert maps.shape == (3, 28, 28) and maps.dtype == np.float32
    # the score is the top-1 % mean of the map: floor(0.01 * 28 * 28) = 7 pixels
    top7 = np.sort(maps.reshape(3, -1), axis=1)[:, -7:].mean(1)
    np.testing.assert_allclose(scores[:3], top7, rtol=1e-5)
    # evaluation's one pass gives both, exactly
    both_scores, both_maps = det.score_and_maps(images[:3])
    np.testing.assert_array_equal(both_maps, maps)  # the same batch as score_maps'
    np.testing.assert_allclose(both_scores, top7, rtol=1e-6)


def test_same_seed_same_model(tiny_kwargs, images):
    a = Dinomaly(**tiny_kwargs, feature_cache=FeatureCache()).fit(images).score(images)
    b = Dinomaly(**tiny_kwargs, feature_cache=FeatureCache()).fit(images).score(images)
    np.testing.assert_array_equal(a, b)
    c = Dinomaly(**{**tiny_kwargs, "seed": 1}, feature_cache=FeatureCache()).fit(images)
    assert not np.array_equal(a, c.score(images))


def test_cached_training_equals_encoding_every_step(tiny_kwargs, images):
    cached = Dinomaly(**tiny_kwargs, feature_cache=FeatureCache()).fit(images)
    fresh = Dinomaly(**tiny_kwargs, feature_cache=False).fit(images)
    # the encoder ran once per image with the cache, once per image per step without
    assert cached.encoded_images_ == len(images)
    assert fresh.encoded_images_ == tiny_kwargs["max_steps"] * tiny_kwargs["batch_size"]
    np.testing.assert_allclose(cached.loss_history_, fresh.loss_history_, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(cached.score(images), fresh.score(images), rtol=1e-4, atol=1e-6)


def test_sub_models_and_final_model_share_encoder_work(tiny_kwargs, images):
    data = IdDataset(images)
    cache = FeatureCache()
    subsets = [Subset(data, [0, 1, 2, 3, 4]), Subset(data, [5, 6, 7, 8, 9])]
    dets = [Dinomaly(**tiny_kwargs, feature_cache=cache).fit(s) for s in subsets]
    assert [d.encoded_images_ for d in dets] == [5, 5]
    for d in dets:
        d.score(data)  # stage 1 scores everything: all cached already
    assert [d.encoded_images_ for d in dets] == [5, 5]
    final = Dinomaly(**tiny_kwargs, feature_cache=cache).fit(Subset(data, [0, 2, 4, 6]))
    assert final.encoded_images_ == 0
    assert cache.misses == 10


def test_datasets_without_ids_are_cached_by_content(tiny_kwargs, images):
    cache = FeatureCache()
    det = Dinomaly(**tiny_kwargs, feature_cache=cache).fit(images[:5])
    other = [im.flip(-1) for im in images[:5]]  # same positions, other pixels
    det.score(other)
    assert det.encoded_images_ == 10
    det.score(images[:5])
    assert det.encoded_images_ == 10


def test_float16_cache_changes_scores_only_slightly(tiny_kwargs, images):
    exact = Dinomaly(**tiny_kwargs, feature_cache=FeatureCache()).fit(images).score(images)
    half_kwargs = {**tiny_kwargs, "cache_dtype": "float16"}
    half = Dinomaly(**half_kwargs, feature_cache=FeatureCache()).fit(images).score(images)
    np.testing.assert_allclose(half, exact, rtol=0.05)


def test_inputs_of_any_size_are_resized_and_cropped(tiny_kwargs):
    g = torch.Generator().manual_seed(0)
    mixed = [torch.rand(3, 50, 37, generator=g), torch.rand(1, 28, 28, generator=g),
             torch.rand(3, 32, 32, generator=g), torch.rand(40, 30, generator=g)]
    det = Dinomaly(**tiny_kwargs).fit(mixed)
    assert det.score(mixed).shape == (4,)
    assert det.score(torch.stack([torch.rand(3, 32, 32)] * 2)).shape == (2,)


def test_preprocessor_follows_resize_then_centre_crop():
    pre = Preprocessor(image_size=8, crop_size=4, input_normalization="imagenet")
    img = torch.arange(64.0).reshape(1, 8, 8).expand(3, 8, 8)
    out = pre(img)  # already at image_size: only the centre crop
    torch.testing.assert_close(out, img[:, 2:6, 2:6])
    assert pre(out) is not None and torch.equal(pre(out), out)  # already at crop size
    big = pre(torch.zeros(3, 20, 12))
    assert big.shape == (3, 4, 4)
    unit = Preprocessor(8, 4, input_normalization=None)(torch.ones(3, 4, 4))
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(unit[:, 0, 0], expected)
    u8 = Preprocessor(8, 4, None)(np.full((4, 4, 3), 255, dtype=np.uint8))
    torch.testing.assert_close(u8, unit)


def test_errors_are_clear(tiny_kwargs, images):
    with pytest.raises(NotFittedError, match="fit"):
        Dinomaly(**tiny_kwargs).score(images)
    with pytest.raises(ValueError, match="empty"):
        Dinomaly(**tiny_kwargs).fit([])
    with pytest.raises(ValueError, match="precision"):
        Dinomaly(precision="fp8")
    with pytest.raises(ValueError, match="crop_size"):
        Dinomaly(**{**tiny_kwargs, "crop_size": 40}).fit(images)
    # numeric settings are checked when set, naming the setting, not when training fails
    with pytest.raises(TypeError, match=r"Dinomaly: max_steps must be an integer >= 1, got '5k'"):
        Dinomaly(max_steps="5k")
    with pytest.raises(ValueError, match="lr must be a number > 0"):
        Dinomaly(lr=0.0)
    with pytest.raises(ValueError, match="top_ratio must be a number > 0 and <= 1"):
        Dinomaly(top_ratio=2.0)
    with pytest.raises(ValueError, match="dropout must be a number >= 0 and < 1"):
        Dinomaly(dropout=1.0)
    with pytest.raises(TypeError, match="num_workers must be an integer >= 0 or None"):
        Dinomaly(num_workers=1.5)
    det = Dinomaly(max_steps=10)
    with pytest.raises(ValueError, match="batch_size"):
        det.set_params(max_steps=20, batch_size=0)
    assert det.max_steps == 10  # a rejected change leaves the detector as it was


def test_registered_through_the_noisyclean_entry_point():
    from noisyclean.plugins import detector_info, get_detector

    info = detector_info("dinomaly")
    assert "Dinomaly" in info.description
    det = get_detector("dinomaly", max_steps=3)
    assert isinstance(det, Dinomaly) and det.max_steps == 3
    assert Dinomaly.preferred_scoring == "all"


def test_purifier_runs_dinomaly_sub_models_by_name(tiny_kwargs, images):
    from noisyclean import Purifier

    cache = FeatureCache()
    data = IdDataset(images)
    kwargs = {**tiny_kwargs, "max_steps": 4, "seed": None, "feature_cache": cache}
    purifier = Purifier("dinomaly", k=2, keep=0.6, detector_kwargs=kwargs, progress=False)
    purifier.fit(data)
    assert purifier.scores_.shape == (2, 10) and np.isfinite(purifier.scores_).all()
    assert purifier.keep_indices_.size == 6
    assert cache.misses == 10  # every image encoded once, for both sub-models
    final = purifier.fit_final(data)
    assert final.score(data).shape == (10,)
    assert final.max_steps == 4  # the final model keeps its budget


def test_the_whole_image_view_reuses_the_encoder_records(tiny_kwargs, images):
    from noisyclean import Purifier

    cache = FeatureCache()
    data = IdDataset(images)
    kwargs = {**tiny_kwargs, "max_steps": 2, "feature_cache": cache}
    emb = Dinomaly(**kwargs).embed(data)  # no fit: the encoder is frozen
    assert emb.shape[0] == 10 and emb.ndim == 2 and np.isfinite(emb).all()
    assert cache.misses == 10
    purifier = Purifier("dinomaly", k=2, detector_kwargs=kwargs, progress=False).fit(data)
    assert purifier.whole_image_ and cache.misses == 10  # nothing encoded twice
    fitted = Dinomaly(**kwargs).fit(data)
    np.testing.assert_allclose(fitted.embed(data), emb, rtol=1e-6)


def test_sub_models_train_for_their_share_of_the_steps(tiny_kwargs, images):
    from noisyclean import Purifier

    assert Dinomaly(max_steps=5000).submodel_params(1 / 3) == {"max_steps": 1667}
    assert Dinomaly(max_steps=5000).submodel_params(1.0) == {}
    with pytest.raises(ValueError, match="max_steps"):
        Dinomaly().set_params(max_steps=0)
    with pytest.raises(ValueError, match="no parameter"):
        Dinomaly().set_params(epochs=3)
    made = []

    class Recorded(Dinomaly):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            made.append(self)

    factory = functools.partial(Recorded, **{**tiny_kwargs, "max_steps": 6})
    Purifier(factory, k=2, keep=0.6, progress=False).fit(IdDataset(images))
    trained = [d for d in made if hasattr(d, "loss_history_")]
    assert len(made) == 3  # one more, untrained, only embedded for the whole-image view
    assert [len(d.loss_history_) for d in trained] == [3, 3]  # 5 of 10 images: half the steps
