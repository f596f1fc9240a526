"""Anomaly maps, smoothing and image scores against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from noisyclean_dinomaly.maps import anomaly_maps, gaussian_kernel, smooth, top_mean


def test_map_is_one_minus_cosine_averaged_over_groups():
    # grid 2x2, 2 channels. Group 0 target (1, 0) everywhere; reconstructions with known
    # cosines 1, 1/sqrt2, 0, -1 -> distances 0, 1 - 1/sqrt2, 1, 2.
    t0 = torch.tensor([[[1.0, 0.0]] * 4])
    r0 = torch.tensor([[[2.0, 0.0], [1.0, 1.0], [0.0, 3.0], [-1.0, 0.0]]])
    # group 1: perfect reconstruction except the last patch (distance 1)
    t1 = torch.tensor([[[0.0, 1.0]] * 4])
    r1 = torch.tensor([[[0.0, 1.0], [0.0, 2.0], [0.0, 5.0], [1.0, 0.0]]])
    amap = anomaly_maps([t0, t1], [r0, r1], grid=(2, 2), crop_size=2, map_size=None, sigma=0)
    d = 1 - 1 / math.sqrt(2)
    expected = [[(0 + 0) / 2, (d + 0) / 2], [(1 + 0) / 2, (2 + 1) / 2]]
    np.testing.assert_allclose(amap[0].numpy(), expected, rtol=1e-6)


def test_upsampling_is_bilinear_with_aligned_corners():
    # a 1x2 -> 2x2 grid of distances 0 and 1, upsampled to 3x3: the middle column is 0.5
    t = torch.tensor([[[1.0, 0.0]] * 4])
    r = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]])
    amap = anomaly_maps([t], [r], grid=(2, 2), crop_size=3, map_size=None, sigma=0)
    np.testing.assert_allclose(amap[0].numpy(), [[0, 0.5, 1]] * 3, atol=1e-6)


def test_gaussian_is_the_normalised_5x5_sigma_4_kernel():
    k = gaussian_kernel(5, 4.0).numpy()
    xs = np.arange(5) - 2
    w = np.exp(-(xs[:, None] ** 2 + xs[None, :] ** 2) / (2 * 16.0))
    np.testing.assert_allclose(k, w / w.sum(), rtol=1e-6)
    assert k.sum() == pytest.approx(1.0)
    # a unit impulse in the middle of a 7x7 map spreads into exactly the kernel
    delta = torch.zeros(1, 1, 7, 7)
    delta[0, 0, 3, 3] = 1.0
    out = smooth(delta, 4.0, 5)[0, 0].numpy()
    np.testing.assert_allclose(out[1:6, 1:6], w / w.sum(), rtol=1e-6)
    assert out[0].sum() == 0
    # zero padding: a constant map loses mass at the border, keeps it in the centre
    ones = smooth(torch.ones(1, 1, 7, 7), 4.0, 5)[0, 0]
    assert ones[3, 3].item() == pytest.approx(1.0)
    assert ones[0, 0].item() == pytest.approx(float(k[2:, 2:].sum()))


def test_map_is_resized_to_map_size():
    t = torch.randn(3, 4, 8)
    amap = anomaly_maps([t, t], [t, -t], grid=(2, 2), crop_size=28, map_size=16)
    assert amap.shape == (3, 16, 16)


def test_score_is_the_mean_of_the_top_one_percent():
    # 20 x 20 = 400 pixels -> the top 4
    m = torch.zeros(2, 20, 20)
    m[0, 0, :6] = torch.tensor([9.0, 7.0, 5.0, 3.0, 1.0, 0.5])
    m[1, 5, 5] = 4.0
    np.testing.assert_allclose(top_mean(m, 0.01).numpy(), [(9 + 7 + 5 + 3) / 4, 1.0])
    # fewer than 100 pixels: still the single maximum
    small = torch.arange(9.0).reshape(1, 3, 3)
    assert top_mean(small, 0.01).item() == 8.0
    assert top_mean(small, 0.0).item() == 8.0
    # 256 x 256: floor(655.36) = 655 pixels, as the reference's int()
    big = torch.zeros(1, 256, 256)
    big.view(-1)[:656] = 1.0
    assert top_mean(big, 0.01).item() == 1.0
