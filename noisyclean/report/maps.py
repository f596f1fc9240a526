"""Where the galleries' anomaly maps come from: given by the caller, or computed.

Stage-1 sub-models are not kept (a run may train dozens), so maps come from either the
caller (``maps=``: an ``(n, H, W)`` array or ``{index: (H, W)}``) or a detector with
``score_maps``: the ``detector=`` argument, else the purifier's final detector when
:meth:`~noisyclean.Purifier.fit_final` was called. Only the gallery samples are mapped, so a
report of 100,000 images costs at most a few hundred maps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from noisyclean.samples import Subset

logger = logging.getLogger(__name__)


def given_maps(maps: Any, indices: np.ndarray, n: int) -> dict[int, np.ndarray]:
    """Pick the gallery samples' maps from what the caller passed."""
    if isinstance(maps, Mapping):
        return {int(i): np.asarray(maps[i], dtype=np.float64) for i in indices
                if i in maps or int(i) in maps}
    arr = np.asarray(maps)
    if arr.ndim != 3 or arr.shape[0] != n:
        raise ValueError(
            f"maps has shape {arr.shape}; pass one (H, W) map per purified sample as an "
            f"({n}, H, W) array, or a dict {{index: (H, W) map}} for some of them."
        )
    return {int(i): np.asarray(arr[i], dtype=np.float64) for i in indices}


def computed_maps(detector: Any, dataset: Any, indices: np.ndarray,
                  strict: bool) -> tuple[dict[int, np.ndarray], float]:
    """``detector.score_maps`` on the gallery samples; ``({}, 0)`` when it cannot.

    With ``strict`` (the caller chose this detector) a failure is raised; otherwise (the
    purifier's own final detector) it is logged and the report goes on without maps.
    """
    if detector is None or dataset is None or indices.size == 0:
        return {}, 0.0
    if not callable(getattr(detector, "score_maps", None)):
        if strict:
            raise TypeError(
                f"{type(detector).__name__} has no score_maps(dataset) method, so it cannot "
                "draw anomaly maps; pass a detector that localises, or maps=..."
            )
        return {}, 0.0
    start = time.perf_counter()
    logger.info("computing anomaly maps for %d gallery images with %s", indices.size,
                type(detector).__name__)
    try:
        out = np.asarray(detector.score_maps(Subset(dataset, indices)), dtype=np.float64)
        if out.ndim != 3 or out.shape[0] != indices.size:
            raise ValueError(
                f"{type(detector).__name__}.score_maps returned shape {out.shape}; expected "
                f"({indices.size}, H, W)"
            )
    except Exception as exc:
        if strict:
            raise
        logger.warning("the final detector's anomaly maps failed (%s); the report shows the "
                       "images without maps", exc)
        return {}, 0.0
    return {int(i): out[k] for k, i in enumerate(indices)}, time.perf_counter() - start
