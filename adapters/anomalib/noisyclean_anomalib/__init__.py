"""noisyclean for anomalib: any anomalib image model as a detector, and clean datamodules.

* :class:`AnomalibDetector` wraps an anomalib image model (``"Padim"``, ``Patchcore``, a
  factory) as a noisyclean detector with raw scores and maps.
* :func:`build_model` builds an anomalib model with offline backbone weights.
* :func:`purify_datamodule` returns a copy of an anomalib datamodule whose training split
  holds only the images stage 1 kept; :func:`fit_clean` also trains the final model with
  the user's own ``Engine``; :class:`PurifiedDataModule` does the same from an anomalib
  YAML config (``data: class_path: noisyclean_anomalib.PurifiedDataModule``).

The detectors are registered under the ``noisyclean`` entry-point group as
``anomalib.patchcore``, ``anomalib.padim``, ``anomalib.stfpm``,
``anomalib.reverse_distillation``, ``anomalib.dinomaly`` and ``anomalib.model``.
"""

from noisyclean_anomalib.datamodule import (
    AnomalibSplit,
    CleanFit,
    PurificationResult,
    fit_clean,
    purify_datamodule,
)
from noisyclean_anomalib.detector import (
    AnomalibDetector,
    DinomalyDetector,
    PadimDetector,
    PatchcoreDetector,
    ReverseDistillationDetector,
    StfpmDetector,
)
from noisyclean_anomalib.models import build_model
from noisyclean_anomalib.weights import BackboneWeightsError


def __getattr__(name: str):
    # PurifiedDataModule subclasses anomalib's datamodule, so defining it imports anomalib
    # (seconds); it is loaded on first use only, e.g. by a config's class_path.
    if name == "PurifiedDataModule":
        from noisyclean_anomalib.wrapped import PurifiedDataModule

        return PurifiedDataModule
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AnomalibDetector",
    "AnomalibSplit",
    "BackboneWeightsError",
    "CleanFit",
    "DinomalyDetector",
    "PadimDetector",
    "PatchcoreDetector",
    "PurificationResult",
    "PurifiedDataModule",
    "ReverseDistillationDetector",
    "StfpmDetector",
    "build_model",
    "fit_clean",
    "purify_datamodule",
]
