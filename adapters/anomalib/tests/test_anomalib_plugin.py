"""The detector names resolve through the installed distribution's real entry point."""

from __future__ import annotations

import importlib.metadata as md

import pytest

NAMES = {
    "anomalib.patchcore": "PatchcoreDetector",
    "anomalib.padim": "PadimDetector",
    "anomalib.stfpm": "StfpmDetector",
    "anomalib.reverse_distillation": "ReverseDistillationDetector",
    "anomalib.dinomaly": "DinomalyDetector",
    "anomalib.model": "AnomalibDetector",
}


def test_the_distribution_declares_the_entry_point():
    try:
        dist = md.distribution("noisyclean-anomalib")
    except md.PackageNotFoundError:
        pytest.fail("noisyclean-anomalib is not installed: pip install -e adapters/anomalib")
    points = [ep for ep in dist.entry_points if ep.group == "noisyclean"]
    assert [(ep.name, ep.value) for ep in points] == [("anomalib", "noisyclean_anomalib.plugin")]


def test_names_resolve_through_noisyclean_plugins():
    from noisyclean import plugins

    listed = {info.name: info for info in plugins.list_detectors()}
    for name, cls_name in NAMES.items():
        info = listed[name]
        assert info.distribution.startswith("noisyclean-anomalib ")
        assert isinstance(info.factory, str)  # lazy: listing imports no anomalib
        assert info.load().__name__ == cls_name
        assert info.description


def test_get_detector_builds_a_configured_detector():
    from noisyclean import plugins

    det = plugins.get_detector("anomalib.padim", image_size=64)
    assert type(det).__name__ == "PadimDetector"
    assert det.model_kwargs["backbone"] == "tf_efficientnet_lite0" and det.image_size == 64
    assert plugins.detector_factory("anomalib.patchcore").preferred_scoring == "out_of_bag"
    generic = plugins.get_detector("anomalib.model", model="Stfpm")
    assert generic.preferred_scoring == "all"
