"""``example-zscore``: how far each pixel is from the training images' mean, in standard
deviations.

A deliberately small detector that keeps the whole noisyclean contract: ``fit`` returns
``self``, ``score`` gives one float per sample (higher = more anomalous), and
``score_maps`` gives one ``(H, W)`` map per image, so reports can overlay it. It suits
aligned images (a part always photographed in the same pose); for textures use ``patchknn``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def _stack(dataset: Any) -> np.ndarray:
    """Every item of ``dataset`` (arrays or CPU tensors) as one float array ``(n, ...)``."""
    items = [np.asarray(dataset[i], dtype=np.float64) for i in range(len(dataset))]
    if not items:
        return np.empty((0,))
    shapes = {x.shape for x in items}
    if len(shapes) > 1:
        raise ValueError(
            f"example-zscore needs items of one shape; got {sorted(shapes)[:3]}. Resize the "
            "images to one size (image_size=...) first."
        )
    return np.stack(items)


class ZScoreDetector:
    """Per-pixel z-scores against the training mean and standard deviation.

    Args:
        top_fraction: an image's score is the mean of its highest ``top_fraction`` of
            pixels (of its z-score map), so one small defect is enough to stand out.
        eps: added to the standard deviation, so constant pixels do not divide by zero.
    """

    # The mean and spread barely move when one training image is left out, so scoring
    # the training images themselves ("in-bag") is fair; the Purifier uses this default.
    preferred_scoring = "all"

    def __init__(self, top_fraction: float = 0.01, eps: float = 1e-3):
        if not 0.0 < top_fraction <= 1.0:
            raise ValueError(f"top_fraction must be in (0, 1]; got {top_fraction!r}")
        if eps <= 0:
            raise ValueError(f"eps must be positive; got {eps!r}")
        self.top_fraction = top_fraction
        self.eps = eps

    def fit(self, dataset: Any) -> ZScoreDetector:
        x = _stack(dataset)
        if x.shape[0] == 0:
            raise ValueError("example-zscore cannot be fitted on an empty dataset")
        self.mean_ = x.mean(axis=0)
        self.std_ = x.std(axis=0) + self.eps
        return self

    def _z(self, dataset: Any) -> np.ndarray:
        if not hasattr(self, "mean_"):
            raise RuntimeError("example-zscore is not fitted; call fit(dataset) first")
        x = _stack(dataset)
        if x.shape[0] == 0:
            return np.empty((0, *self.mean_.shape))
        if x.shape[1:] != self.mean_.shape:
            raise ValueError(
                f"items have shape {x.shape[1:]} but the detector was fitted on "
                f"{self.mean_.shape}; use the same preprocessing for both"
            )
        return np.abs(x - self.mean_) / self.std_

    def score_maps(self, dataset: Any) -> np.ndarray:
        """``(n, H, W)``: the z-score of every pixel, averaged over the colour channels."""
        z = self._z(dataset)
        if z.ndim != 4:
            raise ValueError("score_maps needs image items of shape (channels, H, W)")
        return z.mean(axis=1)

    def score(self, dataset: Any) -> np.ndarray:
        z = self._z(dataset)
        flat = (z.mean(axis=1) if z.ndim == 4 else z).reshape(z.shape[0], -1)
        if flat.shape[0] == 0:
            return np.empty(0)
        k = max(1, math.ceil(self.top_fraction * flat.shape[1]))
        return np.sort(flat, axis=1)[:, -k:].mean(axis=1)
