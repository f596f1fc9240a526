"""Anomaly maps and image scores from targets and reconstructions.

The recipe is the reference's evaluation (``cal_anomaly_maps`` and ``evaluation_batch`` in
``utils.py``): per group, ``1 - cosine`` between target and reconstruction at each patch;
bilinear upsampling (``align_corners=True``) to the crop size; the mean over groups; a
bilinear resize to 256 px; a normalised 5x5 Gaussian of sigma 4 with zero padding. The image
score is the mean of the top 1 % of the smoothed map's pixels, which is steadier than the
maximum on a single noisy pixel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

from noisyclean_dinomaly import config


def gaussian_kernel(kernel_size: int, sigma: float) -> torch.Tensor:
    """A normalised ``(kernel_size, kernel_size)`` Gaussian centred on the middle pixel."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd number; got {kernel_size}")
    x = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    k2 = g[:, None] * g[None, :]
    return (k2 / k2.sum()).float()


def smooth(maps: torch.Tensor, sigma: float, kernel_size: int) -> torch.Tensor:
    """Convolve ``(B, 1, H, W)`` maps with :func:`gaussian_kernel`; zero padding keeps the
    size (and lowers border pixels, as the reference's ``Conv2d(padding=k // 2)`` does)."""
    if sigma <= 0 or kernel_size == 1:
        return maps
    k = gaussian_kernel(kernel_size, sigma).to(maps.device, maps.dtype)[None, None]
    return F.conv2d(maps, k, padding=kernel_size // 2)


def cosine_distance_maps(
    targets: Sequence[torch.Tensor], recons: Sequence[torch.Tensor], grid: tuple[int, int]
) -> list[torch.Tensor]:
    """Per group, ``1 - cos`` over channels at each patch: ``(B, 1, h, w)`` float32 maps."""
    h, w = grid
    out = []
    for a, b in zip(targets, recons):
        d = 1.0 - F.cosine_similarity(a.float(), b.float(), dim=-1)
        out.append(d.reshape(d.shape[0], 1, h, w))
    return out


def anomaly_maps(
    targets: Sequence[torch.Tensor],
    recons: Sequence[torch.Tensor],
    grid: tuple[int, int],
    crop_size: int,
    map_size: int | None = config.MAP_SIZE,
    sigma: float = config.GAUSSIAN_SIGMA,
    kernel_size: int = config.GAUSSIAN_KERNEL,
) -> torch.Tensor:
    """``(B, S, S)`` smoothed anomaly maps; ``S`` is ``map_size`` (or ``crop_size`` if None)."""
    per_group = [
        F.interpolate(d, size=(crop_size, crop_size), mode="bilinear", align_corners=True)
        for d in cosine_distance_maps(targets, recons, grid)
    ]
    amap = torch.cat(per_group, dim=1).mean(dim=1, keepdim=True)
    if map_size is not None and map_size != crop_size:
        amap = F.interpolate(amap, size=(map_size, map_size), mode="bilinear", align_corners=False)
    return smooth(amap, sigma, kernel_size)[:, 0]


def top_mean(maps: torch.Tensor, ratio: float = config.TOP_RATIO) -> torch.Tensor:
    """The mean of the highest ``ratio`` of each map's pixels (at least one pixel).

    ``k = floor(ratio * pixels)``, as the reference's ``int(anomaly_map.shape[1] * max_ratio)``;
    ``ratio=0`` gives the maximum.
    """
    flat = maps.flatten(1)
    k = max(1, math.floor(flat.shape[1] * ratio)) if ratio > 0 else 1
    return flat.topk(k, dim=1).values.mean(dim=1)
