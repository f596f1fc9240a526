"""The example plugin is installed, registered by name, and usable end to end."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

import noisyclean
from noisyclean import Purifier

NAME = "example-zscore"
DIST = "noisyclean-example-plugin"


def _images(n_normal: int = 45, n_anomalous: int = 5, size: int = 16, seed: int = 0):
    """Aligned grey images with noise; the anomalies carry a bright 3x3 spot."""
    rng = np.random.default_rng(seed)
    x = 0.5 + 0.03 * rng.standard_normal((n_normal + n_anomalous, 3, size, size))
    spots = []
    for i in range(n_normal, n_normal + n_anomalous):
        r, c = rng.integers(2, size - 5, 2)
        x[i, :, r:r + 3, c:c + 3] = 1.0
        spots.append((int(r) + 1, int(c) + 1))
    return x.astype(np.float32), np.arange(n_normal, n_normal + n_anomalous), spots


def test_the_distribution_is_installed_and_declares_the_entry_point():
    try:
        dist = importlib.metadata.distribution(DIST)
    except importlib.metadata.PackageNotFoundError:
        pytest.fail(f"{DIST} is not installed; run `pip install -e examples/plugin` "
                    "(`make install` does it)")
    eps = [ep for ep in dist.entry_points if ep.group == "noisyclean"]
    assert [(ep.name, ep.value) for ep in eps] == [("example", "noisyclean_example_plugin")]


def test_the_detector_is_listed_with_its_distribution():
    info = {d.name: d for d in noisyclean.list_detectors()}[NAME]
    assert info.distribution == f"{DIST} 0.1.0"
    assert "z-score" in info.description


def test_the_cli_lists_it():
    from typer.testing import CliRunner

    from noisyclean.cli import app

    result = CliRunner().invoke(app, ["detectors"])
    assert result.exit_code == 0 and NAME in result.output


def test_get_detector_scores_and_maps_by_name():
    x, anomalies, spots = _images()
    det = noisyclean.get_detector(NAME, top_fraction=0.05).fit(x[:45])
    scores = det.score(x)
    assert scores.shape == (50,)
    assert scores[anomalies].min() > scores[:45].max()
    maps = det.score_maps(x[anomalies])
    assert maps.shape == (5, 16, 16)
    for m, spot in zip(maps, spots):
        assert np.unravel_index(m.argmax(), m.shape) in {
            (spot[0] + dr, spot[1] + dc) for dr in (-1, 0, 1) for dc in (-1, 0, 1)}


def test_the_purifier_uses_it_by_name_and_drops_the_spots():
    x, anomalies, _ = _images()
    purifier = Purifier(NAME, k=3, keep=0.9, progress=False,
                        detector_kwargs={"top_fraction": 0.05}).fit(x)
    assert purifier.scoring_ == "all"  # the detector's declared preference
    assert set(anomalies) <= set(purifier.drop_indices_.tolist())
    final = purifier.fit_final(x)
    assert final.score(x[anomalies]).min() > final.score(x[purifier.keep_indices_]).max()


def test_clear_errors():
    from noisyclean_example_plugin.detector import ZScoreDetector

    with pytest.raises(ValueError, match="top_fraction"):
        ZScoreDetector(top_fraction=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        ZScoreDetector().score(np.zeros((2, 3)))
    det = ZScoreDetector().fit(np.zeros((4, 3, 8, 8)))
    with pytest.raises(ValueError, match="same preprocessing"):
        det.score(np.zeros((2, 3, 4, 4)))
