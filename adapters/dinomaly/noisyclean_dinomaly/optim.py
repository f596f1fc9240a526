"""StableAdamW and the warm-up + cosine learning-rate schedule of the reference.

StableAdamW is AdamW with decoupled weight decay whose step, per parameter tensor, is
divided by ``max(1, RMS(g / denom) / clip_threshold)``: when the gradient outruns the
second-moment estimate (early steps, sudden spikes) the update is shrunk instead of
exploding. The reference (``optimizers/StableAdamW.py``) also keeps AMSGrad's running
maximum of the second moment; torch-optimi's ``StableAdamW`` has no AMSGrad and clips on a
different statistic, so this small implementation follows the reference's arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import torch

from noisyclean_dinomaly import config


class StableAdamW(torch.optim.Optimizer):
    """AdamW with per-tensor update clipping (and optional AMSGrad).

    One step, for a parameter ``w`` with gradient ``g`` at step ``t``::

        w      <- w * (1 - lr * weight_decay)
        m      <- beta1 * m + (1 - beta1) * g
        v      <- beta2 * v + (1 - beta2) * g**2
        v_hat  <- max(v_hat, v)            (amsgrad; else v_hat = v)
        denom  =  sqrt(v_hat) / sqrt(1 - beta2**t) + eps
        scale  =  max(1, RMS(g / denom) / clip_threshold)
        w      <- w - lr / (1 - beta1**t) / scale * m / denom

    The scale stays a tensor, so no step waits on a device-to-host copy.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | Iterable[dict],
        lr: float = config.LR,
        betas: tuple[float, float] = config.BETAS,
        eps: float = config.EPS,
        weight_decay: float = config.WEIGHT_DECAY,
        amsgrad: bool = config.AMSGRAD,
        clip_threshold: float = config.UPDATE_CLIP,
    ):
        if lr < 0 or eps < 0 or weight_decay < 0 or clip_threshold <= 0:
            raise ValueError("lr, eps and weight_decay must be >= 0 and clip_threshold > 0")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"betas must lie in [0, 1); got {betas}")
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
            clip_threshold=clip_threshold,
        )
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """One step for every parameter with a gradient, batched with ``torch._foreach_*``
        (a few kernels per step instead of a dozen per tensor: the step stays cheap next
        to the decoder on a GPU)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            by_step: dict[int, list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("StableAdamW does not support sparse gradients")
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                    if group["amsgrad"]:
                        state["max_exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                by_step.setdefault(state["step"], []).append(p)
            for t, params in by_step.items():
                self._update(group, params, t)
        return loss

    def _update(self, group: dict, params: list[torch.Tensor], t: int) -> None:
        lr, wd, eps = group["lr"], group["weight_decay"], group["eps"]
        beta1, beta2 = group["betas"]
        grads = [p.grad for p in params]
        m = [self.state[p]["exp_avg"] for p in params]
        v = [self.state[p]["exp_avg_sq"] for p in params]
        torch._foreach_mul_(params, 1.0 - lr * wd)
        torch._foreach_mul_(m, beta1)
        torch._foreach_add_(m, grads, alpha=1.0 - beta1)
        torch._foreach_mul_(v, beta2)
        torch._foreach_addcmul_(v, grads, grads, value=1.0 - beta2)
        if group["amsgrad"]:
            v_hat = [self.state[p]["max_exp_avg_sq"] for p in params]
            torch._foreach_maximum_(v_hat, v)
        else:
            v_hat = v
        denom = torch._foreach_sqrt(v_hat)
        torch._foreach_div_(denom, math.sqrt(1.0 - beta2**t))
        torch._foreach_add_(denom, eps)
        ratio = torch._foreach_div(grads, denom)
        norms = torch.stack(torch._foreach_norm(ratio))
        sizes = torch.tensor([float(p.numel()) for p in params], device=norms.device)
        rms = norms / sizes.sqrt()
        scale = torch.clamp(rms / group["clip_threshold"], min=1.0)
        step_sizes = (lr / (1.0 - beta1**t)) / scale
        update = torch._foreach_div(m, denom)
        torch._foreach_mul_(update, list(step_sizes.to(update[0].dtype).unbind(0)))
        torch._foreach_sub_(params, update)


def lr_schedule(
    total_steps: int,
    base_lr: float = config.LR,
    final_lr: float = config.FINAL_LR,
    warmup_steps: int = config.WARMUP_STEPS,
) -> np.ndarray:
    """The learning rate of each of ``total_steps`` steps (step ``i`` uses entry ``i``).

    Linear warm-up over ``warmup_steps`` entries from 0 to ``base_lr`` (both ends included,
    so step 0 has lr 0 as in the reference), then cosine decay from ``base_lr`` toward
    ``final_lr`` over the remaining steps: ``final + (base - final) * (1 + cos(pi*j/J)) / 2``
    for ``j = 0..J-1``. When ``total_steps <= warmup_steps`` only the warm-up's first steps run.
    """
    warm = np.linspace(0.0, base_lr, warmup_steps) if warmup_steps > 0 else np.zeros(0)
    rest = max(total_steps - warmup_steps, 0)
    j = np.arange(rest)
    cosine = final_lr + 0.5 * (base_lr - final_lr) * (1.0 + np.cos(np.pi * j / max(rest, 1)))
    return np.concatenate([warm, cosine])[:total_steps]
