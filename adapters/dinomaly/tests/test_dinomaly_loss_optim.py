"""Hard-mining loss, p schedule, learning-rate schedule and StableAdamW against hand values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from noisyclean_dinomaly.loss import easy_point_mask, hard_mining_cosine_loss, p_schedule
from noisyclean_dinomaly.optim import StableAdamW, lr_schedule

# One image, four points, two channels. Per-point cosine distances to the target (1, 0):
#   (1, 0) -> 0;  (1, 1) -> 1 - 1/sqrt2 ~ 0.293;  (0, 1) -> 1;  (-1, 0) -> 2.
TARGET = [[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]]
RECON = [[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [-1.0, 0.0]]


def global_cos_grad(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """d/db of 1 - a.b / (|a||b|) for flattened vectors."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return -(a / (na * nb) - (a @ b) * b / (na * nb**3))


def test_loss_value_is_the_global_cosine_distance():
    a = torch.tensor([TARGET])
    b = torch.tensor([RECON], requires_grad=True)
    # flattened: a = (1,0,1,0,1,0,1,0), b = (1,0,1,1,0,1,-1,0): a.b = 1, |a| = 2, |b| = sqrt5
    expected = 1 - 1 / (2 * math.sqrt(5))
    loss = hard_mining_cosine_loss([a], [b], p=0.5)
    assert loss.item() == pytest.approx(expected, abs=1e-7)
    # two identical groups average to the same value
    loss2 = hard_mining_cosine_loss([a, a], [b, b], p=0.5)
    assert loss2.item() == pytest.approx(expected, abs=1e-7)


def test_easiest_points_get_a_tenth_of_the_gradient():
    a = torch.tensor([TARGET])
    b = torch.tensor([RECON], requires_grad=True)
    # p = 0.5: k = floor(4 * 0.5) = 2, threshold = 2nd largest distance = 1;
    # points strictly below it (distances 0 and 0.293) are easy.
    easy = easy_point_mask(a, b, 0.5)
    assert easy.tolist() == [[True, True, False, False]]
    hard_mining_cosine_loss([a], [b], p=0.5, factor=0.1).backward()
    g = global_cos_grad(np.array(TARGET).ravel(), np.array(RECON).ravel()).reshape(4, 2)
    g[:2] *= 0.1
    np.testing.assert_allclose(b.grad[0].numpy(), g, rtol=1e-5, atol=1e-7)


def test_p_zero_leaves_the_gradient_alone():
    a = torch.tensor([TARGET])
    b = torch.tensor([RECON], requires_grad=True)
    assert not easy_point_mask(a, b, 0.0).any()
    hard_mining_cosine_loss([a], [b], p=0.0).backward()
    g = global_cos_grad(np.array(TARGET).ravel(), np.array(RECON).ravel()).reshape(4, 2)
    np.testing.assert_allclose(b.grad[0].numpy(), g, rtol=1e-5, atol=1e-7)


def test_p_ramps_linearly_to_09_over_1000_steps():
    assert p_schedule(0) == 0.0
    assert p_schedule(500) == pytest.approx(0.45)
    assert p_schedule(999) == pytest.approx(0.8991)
    assert p_schedule(1000) == pytest.approx(0.9)
    assert p_schedule(4000) == pytest.approx(0.9)


def test_lr_warms_up_from_zero_then_decays_by_cosine_to_2e_4():
    lrs = lr_schedule(5000)
    assert len(lrs) == 5000
    assert lrs[0] == 0.0
    assert lrs[1] == pytest.approx(2e-3 / 99)  # linspace(0, 2e-3, 100)
    assert lrs[99] == pytest.approx(2e-3)
    assert lrs[100] == pytest.approx(2e-3)  # cosine starts at the base value
    mid = 100 + 2450  # half-way through the 4900 cosine steps
    assert lrs[mid] == pytest.approx(2e-4 + 0.5 * 1.8e-3)
    assert lrs[-1] == pytest.approx(2e-4 + 0.9e-3 * (1 + math.cos(math.pi * 4899 / 4900)))
    assert np.all(np.diff(lrs[100:]) <= 0)
    assert lr_schedule(3, warmup_steps=100).tolist() == pytest.approx([0, 2e-3 / 99, 4e-3 / 99])


def _hand_stable_adamw(p, grads, lr, wd, betas, eps, amsgrad):
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    for t, g in enumerate(grads, start=1):
        p = p * (1 - lr * wd)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        vmax = np.maximum(vmax, v)
        vh = vmax if amsgrad else v
        denom = np.sqrt(vh) / np.sqrt(1 - betas[1] ** t) + eps
        rms = np.sqrt(np.mean((g / denom) ** 2))
        scale = max(1.0, rms)
        p = p - lr / (1 - betas[0] ** t) / scale * m / denom
    return p


@pytest.mark.parametrize("amsgrad", [True, False])
def test_stable_adamw_matches_its_update_rule(amsgrad):
    p0 = np.array([0.5, -1.0, 2.0, 0.1])
    # a large second gradient makes RMS(g / denom) exceed 1, so update clipping acts
    grads = [np.array([0.1, -0.2, 0.3, 0.0]), np.array([5.0, 0.01, -3.0, 2.0]),
             np.array([0.01, 0.02, 0.03, 0.04])]
    w = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = StableAdamW([w], lr=2e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-4,
                      amsgrad=amsgrad)
    for g in grads:
        w.grad = torch.tensor(g)
        opt.step()
    expected = _hand_stable_adamw(p0, grads, 2e-3, 1e-4, (0.9, 0.999), 1e-8, amsgrad)
    np.testing.assert_allclose(w.detach().numpy(), expected, rtol=1e-12, atol=1e-15)
