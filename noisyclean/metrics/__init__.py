"""Evaluation metrics: image detection, pixel localisation, and purification quality.

Image level (:mod:`.image`, scikit-learn): :func:`image_auroc`, :func:`image_ap`,
:func:`f1_max`, :func:`image_metrics`.
Pixel level (:mod:`.pixel`, one sort of all pixels): :func:`pixel_auroc`, :func:`pixel_ap`,
:func:`pixel_f1_max`, :func:`aupro` (MVTec AD definition, to FPR 0.3, normalised),
:func:`pixel_metrics`.
Purification (:mod:`.purification`): :func:`purification_report`,
:func:`submodel_selection_counts` (the paper's Figure 4), :func:`selection_size`.

Labels, masks and scores use one convention throughout: 1 / True = anomalous, higher score =
more anomalous. Inputs that would give a silently wrong number (unknown labels, NaN scores,
a single class, mismatched shapes) raise ``ValueError`` saying what to fix.
"""

from noisyclean.metrics.image import f1_max, image_ap, image_auroc, image_metrics
from noisyclean.metrics.pixel import aupro, pixel_ap, pixel_auroc, pixel_f1_max, pixel_metrics
from noisyclean.metrics.purification import (
    purification_report,
    selection_size,
    submodel_selection_counts,
)

__all__ = [
    "aupro",
    "f1_max",
    "image_ap",
    "image_auroc",
    "image_metrics",
    "pixel_ap",
    "pixel_auroc",
    "pixel_f1_max",
    "pixel_metrics",
    "purification_report",
    "selection_size",
    "submodel_selection_counts",
]
