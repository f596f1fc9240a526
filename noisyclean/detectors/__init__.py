"""The built-in detectors, registered through the same hook third-party plugins use."""

from __future__ import annotations

from noisyclean.hookspecs import RegisterDetector, hookimpl


@hookimpl
def register_detectors(register: RegisterDetector) -> None:
    register(
        "knn", "noisyclean.detectors.knn:KNNDetector",
        description="Mean distance to the k nearest training vectors (feature vectors).",
    )
    register(
        "gaussian", "noisyclean.detectors.gaussian:GaussianDetector",
        description="Mahalanobis distance, Ledoit-Wolf shrinkage covariance (feature vectors).",
    )
    register(
        "patchknn", "noisyclean.detectors.patchknn:PatchKNN",
        description="PatchCore-style patch kNN on frozen EfficientNet-Lite0 features (images).",
    )
