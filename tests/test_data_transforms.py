"""ImageTransform: settings, cache keys, geometry and mask handling."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
from PIL import Image

from noisyclean.data import ImageTransform


def test_cache_key_is_stable_and_sensitive():
    a = ImageTransform(image_size=224)
    assert a.cache_key == ImageTransform(image_size=(224, 224)).cache_key
    keys = {
        a.cache_key,
        ImageTransform(image_size=256).cache_key,
        ImageTransform(image_size=256, crop_size=224).cache_key,
        ImageTransform(normalize=None).cache_key,
        ImageTransform(normalize=((0.5,) * 3, (0.5,) * 3)).cache_key,
        ImageTransform(grayscale_to_rgb=False).cache_key,
        ImageTransform(interpolation="bicubic").cache_key,
    }
    assert len(keys) == 7
    assert "\n" not in a.cache_key
    assert a.describe()["image_size"] == [224, 224]


@pytest.mark.parametrize("kwargs, match", [
    ({"image_size": 0}, "positive"),
    ({"image_size": "big"}, "image_size"),
    ({"image_size": 8, "crop_size": (4, 9)}, "larger"),
    ({"normalize": "cifar"}, "normalize"),
    ({"normalize": ((0.5, 0.5), (1, 1))}, "three"),
    ({"interpolation": "area"}, "interpolation"),
])
def test_invalid_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageTransform(**kwargs)


def test_output_size_and_crop_without_resize():
    t = ImageTransform(image_size=None, crop_size=4, normalize=None)
    assert t.output_size((10, 12)) == (4, 4)
    with pytest.raises(ValueError, match="does not fit"):
        t.output_size((3, 12))
    arr = np.arange(10 * 12, dtype=np.uint8).reshape(10, 12)
    x = t(Image.fromarray(arr)).numpy()
    np.testing.assert_allclose(x[0], arr[3:7, 4:8] / 255, atol=1e-6)


def test_non_square_resize():
    t = ImageTransform(image_size=(6, 10), normalize=None)
    x = t(Image.new("RGB", (30, 30), (255, 0, 0)))
    assert tuple(x.shape) == (3, 6, 10)
    assert t.mask(Image.new("L", (30, 30), 255)).shape == (6, 10)


def test_mask_threshold_and_modes():
    t = ImageTransform(image_size=None)
    arr = np.array([[0, 127, 128, 255]], np.uint8)
    assert t.mask(Image.fromarray(arr)).tolist() == [[False, False, True, True]]
    assert t.mask(Image.fromarray(arr > 0)).tolist() == [[False, True, True, True]]  # mode "1"
    pal = Image.fromarray(np.array([[0, 1, 2, 0]], np.uint8)).convert("P")
    pal.putpalette([0, 0, 0, 10, 0, 0, 0, 0, 5] + [0] * 759)
    assert t.mask(pal).tolist() == [[False, True, True, False]]
    rgb = Image.fromarray(np.stack([arr] * 3, axis=2))
    assert t.mask(rgb).tolist() == [[False, False, True, True]]
    assert not t.empty_mask((3, 5)).any() and t.empty_mask((3, 5)).shape == (3, 5)


def test_mask_resize_is_nearest():
    t = ImageTransform(image_size=4)
    arr = np.zeros((8, 8), np.uint8)
    arr[:, 4:] = 255
    m = t.mask(Image.fromarray(arr))
    assert m.tolist() == [[False, False, True, True]] * 4
