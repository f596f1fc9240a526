"""From a grid of patch distances to an anomaly map: bilinear upsampling and a Gaussian blur."""

from __future__ import annotations

import functools
from typing import Any


def gaussian_kernel1d(sigma: float) -> Any:
    """A normalised 1-D Gaussian truncated at 4 sigma (scipy's default truncation)."""
    import torch

    radius = _blur_radius(sigma)
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def upsample_and_smooth(grid: Any, size: tuple[int, int], sigma: float) -> Any:
    """Bilinearly upsample ``(b, 1, h, w)`` distance grids to ``size`` and blur: ``(b, H, W)``.

    The blur (Gaussian, reflect padding when the map is large enough, else replicate) removes
    the blockiness of the patch grid and the single-patch spikes that make a map's max noisy.

    Why matrices: upsampling and blurring are both linear and act on rows and columns
    separately, so the whole step is ``A_h @ grid @ A_w.T`` with two small per-axis operators
    ``(H, h)`` and ``(W, w)``. Two tiny matrix products replace full-resolution convolutions
    and give the same maps up to float rounding. Every training image of stage 1 needs a map:
    on Magnetic Tile (833 images, 160 px) this cut stage 1 from 10.5 s to 7.8 s.
    """
    import torch

    h, w = int(grid.shape[-2]), int(grid.shape[-1])
    H, W = (int(size[0]), int(size[1]))
    mode = "reflect" if min(H, W) > _blur_radius(sigma) else "replicate"
    a_h = _axis_operator(h, H, float(sigma), mode).to(device=grid.device, dtype=grid.dtype)
    a_w = _axis_operator(w, W, float(sigma), mode).to(device=grid.device, dtype=grid.dtype)
    return torch.matmul(torch.matmul(a_h, grid[:, 0]), a_w.T)


def _blur_radius(sigma: float) -> int:
    """The Gaussian's half-width in pixels (4 sigma, at least 1); 0 when there is no blur."""
    return max(1, int(4.0 * sigma + 0.5)) if sigma and sigma > 0 else 0


@functools.lru_cache(maxsize=64)
def _axis_operator(n_in: int, n_out: int, sigma: float, mode: str) -> Any:
    """The ``(n_out, n_in)`` matrix of 1-D linear upsampling then Gaussian blur along one axis.

    Built by pushing the identity through the very operations it stands for (``interpolate``
    with ``align_corners=False``, padding, a 1-D convolution), so it cannot drift from them.
    """
    import torch
    import torch.nn.functional as F

    basis = torch.eye(n_in, dtype=torch.float64).unsqueeze(1)  # (n_in, 1, n_in)
    out = F.interpolate(basis, size=n_out, mode="linear", align_corners=False)
    if sigma > 0:
        r = _blur_radius(sigma)
        out = F.pad(out, (r, r), mode=mode)
        out = F.conv1d(out, gaussian_kernel1d(sigma).double().view(1, 1, -1))
    return out[:, 0].T.contiguous().float()
