"""Dinomaly's training loss: global cosine distance with hard-point mining.

For each group the loss is ``1 - cos`` between the *whole* flattened target and
reconstruction of each image (one cosine per image, not per patch), averaged over the batch
and then over the groups. This "global" form lets the decoder be loose about individual
patches. Hard mining then tilts training toward the points it reconstructs worst: the
gradient reaching the ``p`` fraction of points with the smallest per-point cosine distance
is multiplied by ``factor`` (0.1), and ``p`` ramps from 0 to 0.9 over the first 1,000 steps
(``global_cosine_hm_percent`` and the training loop of the reference). The loss *value* is
unchanged by mining; only its gradient is.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

from noisyclean_dinomaly import config


def p_schedule(
    step: int,
    p_final: float = config.HARD_MINING_P,
    ramp_steps: int = config.HARD_MINING_RAMP_STEPS,
) -> float:
    """The mined fraction at ``step`` (0-based): ``min(p_final * step / ramp_steps, p_final)``."""
    if ramp_steps <= 0:
        return p_final
    return min(p_final * step / ramp_steps, p_final)


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the backward multiplies the incoming gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(scale)
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        (scale,) = ctx.saved_tensors
        return grad * scale, None


def easy_point_mask(target: torch.Tensor, recon: torch.Tensor, p: float) -> torch.Tensor:
    """``(B, N)`` True at the points whose gradient is damped.

    Points are ranked by ``1 - cos`` over channels; with ``k = floor(B*N * (1 - p))`` the
    threshold is the ``k``-th largest distance and the points *strictly* below it are easy
    (the reference's ``point_dist < thresh``). ``p = 0`` damps nothing.
    """
    with torch.no_grad():
        dist = 1.0 - F.cosine_similarity(target.float(), recon.float(), dim=-1)
        flat = dist.reshape(-1)
        k = int(flat.numel() * (1.0 - p))
        if k >= flat.numel():
            return torch.zeros_like(dist, dtype=torch.bool)
        k = max(k, 1)
        thresh = flat.topk(k).values[-1]
        return dist < thresh


def hard_mining_cosine_loss(
    targets: Sequence[torch.Tensor],
    recons: Sequence[torch.Tensor],
    p: float,
    factor: float = config.HARD_MINING_FACTOR,
) -> torch.Tensor:
    """The mean over groups of the batch-mean global cosine distance, with mined gradients.

    ``targets`` and ``recons`` hold one ``(B, N, C)`` tensor per group; targets are treated
    as constants (the encoder is frozen).
    """
    if len(targets) != len(recons) or not targets:
        raise ValueError("targets and reconstructions must be non-empty lists of equal length")
    total = recons[0].new_zeros((), dtype=torch.float32)
    for a, b in zip(targets, recons):
        a = a.detach().float()
        b = b.float()
        if b.requires_grad and p > 0 and factor != 1.0:
            easy = easy_point_mask(a, b, p)
            scale = torch.where(easy, factor, 1.0).to(b.dtype).unsqueeze(-1)
            b = _ScaleGrad.apply(b, scale)
        cos = F.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)
        total = total + (1.0 - cos).mean()
    return total / len(targets)
