"""Dinomaly's training loop, and the batches of frozen-encoder records it runs on.

The detector collects the training set's records (from the shared feature cache, or by
encoding the images at every step as the reference does) and hands a feed of batches to
:func:`optimise`, which runs the steps: StableAdamW with a warm-up-then-cosine learning
rate, the hard-mining cosine loss, gradient clipping.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from noisyclean.progress import progress as progress_bar
from noisyclean_dinomaly.loss import hard_mining_cosine_loss, p_schedule
from noisyclean_dinomaly.optim import StableAdamW, lr_schedule


def index_batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches: a fresh permutation per epoch, dropping the ragged last batch (as
    the reference's ``DataLoader(shuffle=True, drop_last=True)``) unless the dataset is
    smaller than one batch."""
    bs = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=generator)
        for start in range(0, n - bs + 1, bs):
            yield perm[start : start + bs]


class BatchSampler:
    """Feeds a ``DataLoader`` the detector's own (endless) index batches."""

    def __init__(self, batches: Iterator[torch.Tensor]):
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        for idx in self.batches:
            yield idx.tolist()


def gpu_budget(gpu_cache_bytes: int | None, device: torch.device) -> int:
    """The most bytes of training records to keep on the GPU: ``gpu_cache_bytes``, else a
    quarter of the free GPU memory (0 off the GPU)."""
    if gpu_cache_bytes is not None:
        return int(gpu_cache_bytes)
    if device.type != "cuda":
        return 0
    free, _ = torch.cuda.mem_get_info(device)
    return free // 4


def training_feed(records: list[torch.Tensor], batches: Iterator[torch.Tensor],
                  device: torch.device, gpu_budget: int) -> Iterator[torch.Tensor]:
    """Batches of training records on the device, as float32.

    On CUDA the whole set moves to the GPU once when it fits the budget (filled in
    chunks, so host memory never holds a second copy); otherwise each batch is stacked
    in pinned memory and copied asynchronously.
    """
    nbytes = sum(r.numel() * r.element_size() for r in records)
    if device.type == "cuda" and nbytes <= gpu_budget:
        resident = torch.empty((len(records), *records[0].shape), dtype=records[0].dtype,
                               device=device)
        for i in range(0, len(records), 64):
            resident[i : i + 64] = torch.stack(records[i : i + 64]).to(device)
        for idx in batches:
            yield resident[idx.to(device)].float()
        return
    pin = device.type == "cuda"
    for idx in batches:
        batch = torch.stack([records[i] for i in idx.tolist()])
        if pin:
            batch = batch.pin_memory()
        yield batch.to(device, non_blocking=True).float()


def optimise(det: Any, feed: Iterator[torch.Tensor], first: torch.Tensor | None) -> np.ndarray:
    """Run ``det.max_steps`` optimiser steps of ``det.model_`` on the record batches of
    ``feed`` (``first``, when given, is the first batch, already taken from it); returns
    the loss per step.

    ``det`` is the :class:`~noisyclean_dinomaly.detector.Dinomaly` being fitted: its
    settings (learning-rate schedule, StableAdamW, hard mining, clipping, progress) and its
    (possibly compiled) ``_reconstruct`` and ``_autocast``.
    """
    device = det._device
    model = det.model_
    params = model.trainable_parameters()
    opt = StableAdamW(
        params, lr=det.lr, betas=tuple(det.betas), eps=det.eps,
        weight_decay=det.weight_decay, amsgrad=det.amsgrad, clip_threshold=det.update_clip,
    )
    lrs = lr_schedule(det.max_steps, det.lr, det.final_lr, det.warmup_steps)
    losses = torch.zeros(det.max_steps, device=device)
    model.train()
    every = max(1, det.max_steps // 100)
    with progress_bar(det.max_steps, "dinomaly: training", enabled=det.progress) as advance:
        for step in range(det.max_steps):
            rec = first if step == 0 and first is not None else next(feed)
            for group in opt.param_groups:
                group["lr"] = float(lrs[step])
            with det._autocast():
                targets, recon = det._reconstruct(rec)
            p = p_schedule(step, det.hard_mining_p, det.hard_mining_ramp_steps)
            loss = hard_mining_cosine_loss(targets, recon, p, det.hard_mining_factor)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, det.grad_clip)
            opt.step()
            losses[step] = loss.detach()
            if (step + 1) % every == 0 or step + 1 == det.max_steps:
                done = every if (step + 1) % every == 0 else (step + 1) % every
                advance(done, f"loss {losses[step].item():.4f}")
    model.eval()
    return losses.cpu().numpy()  # waits for the device
