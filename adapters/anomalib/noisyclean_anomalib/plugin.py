"""The ``noisyclean`` entry point of this distribution: registers the anomalib detectors.

Factories are given as ``"module:attribute"`` strings, so ``noisyclean detectors`` can list
them without importing anomalib, torch or Lightning (several seconds).
"""

from __future__ import annotations

from typing import Any

import noisyclean

_DETECTORS = {
    "anomalib.patchcore": (
        "noisyclean_anomalib.detector:PatchcoreDetector",
        "anomalib Patchcore, offline EfficientNet-Lite0 backbone (memory bank: out-of-bag)",
    ),
    "anomalib.padim": (
        "noisyclean_anomalib.detector:PadimDetector",
        "anomalib PaDiM, offline EfficientNet-Lite0 backbone (memory bank: out-of-bag)",
    ),
    "anomalib.stfpm": (
        "noisyclean_anomalib.detector:StfpmDetector",
        "anomalib STFPM student-teacher, offline EfficientNet-Lite0 teacher",
    ),
    "anomalib.reverse_distillation": (
        "noisyclean_anomalib.detector:ReverseDistillationDetector",
        "anomalib Reverse Distillation (ResNet): needs backbone_weights= or pre_trained=False",
    ),
    "anomalib.dinomaly": (
        "noisyclean_anomalib.detector:DinomalyDetector",
        "anomalib Dinomaly: needs backbone_weights= a local DINOv2 weight file",
    ),
    "anomalib.model": (
        "noisyclean_anomalib.detector:AnomalibDetector",
        "any anomalib image model: model='Fastflow', plus its arguments",
    ),
}


@noisyclean.hookimpl
def register_detectors(register: Any) -> None:
    for name, (factory, description) in _DETECTORS.items():
        register(name, factory, description=description)
