"""Anomaly maps for the report of a finished run, drawn by a detector trained again.

Why retrain: a run keeps no model (stage 1 may train dozens of sub-models), but the report
promises maps wherever the detector can localise. The report therefore trains the run's
final detector on the kept images, exactly as stage 2 would (:meth:`Purifier.fit_final`),
and says so on the page, so nobody mistakes the maps for the sub-models' own.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def detector_can_localise(purifier: Any) -> bool:
    """Whether the run's detector (a registered name) has ``score_maps``."""
    if not isinstance(purifier.detector, str):
        return False
    from noisyclean.plugins import detector_info

    return callable(getattr(detector_info(purifier.detector).load(), "score_maps", None))


def train_map_detector(purifier: Any, dataset: Any) -> str | None:
    """Train the final detector on the kept images for the maps; the note for the page, or
    ``None`` when the detector cannot localise (then the report has no maps)."""
    if dataset is None or not detector_can_localise(purifier):
        return None
    logger.info("report: training the final detector (%s) on the %d kept images to draw "
                "anomaly maps (--no-maps skips this)", purifier.detector, purifier.n_keep_)
    purifier.fit_final(dataset)
    return (f"drawn by the final detector ({purifier.detector}), trained for this report on "
            f"the {purifier.n_keep_} kept images; the stage-1 sub-models are not kept")
