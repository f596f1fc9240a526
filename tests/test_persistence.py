from __future__ import annotations

import json

import numpy as np
import pytest

from noisyclean import Purifier
from noisyclean.detectors.knn import KNNDetector


def _fitted(tmp_path):
    x = np.random.default_rng(0).normal(size=(50, 3))
    return x, Purifier("knn", keep=0.6, progress=False).fit(x)


def test_save_and_load_round_trip(tmp_path):
    x, p = _fitted(tmp_path)
    p.save(tmp_path / "run")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["config"]["detector"] == "knn" and manifest["seed"] == 0
    assert manifest["ids"] == [str(i) for i in range(50)]
    assert "numpy" in manifest["versions"]
    q = Purifier.load(tmp_path / "run")
    for name in ("scores_", "membership_", "consensus_", "keep_indices_", "drop_indices_",
                 "keep_mask_", "ranking_"):
        np.testing.assert_array_equal(getattr(q, name), getattr(p, name))
    assert q.fit_final(x).n_neighbors_ == 5  # a named detector is restored


def test_factory_must_be_given_again(tmp_path):
    x = np.random.default_rng(0).normal(size=(30, 2))
    Purifier(KNNDetector, progress=False).fit(x).save(tmp_path / "run")
    q = Purifier.load(tmp_path / "run")
    with pytest.raises(RuntimeError, match="detector=factory"):
        q.fit_final(x)
    assert Purifier.load(tmp_path / "run", detector=KNNDetector).fit_final(x) is not None


def test_load_never_unpickles(tmp_path):
    _, p = _fitted(tmp_path)
    p.save(tmp_path / "run")
    np.savez(tmp_path / "run" / "scores.npz", scores=np.array([object()], dtype=object),
             membership=p.membership_, consensus=p.consensus_)
    with pytest.raises(ValueError, match="allow_pickle"):
        Purifier.load(tmp_path / "run")


def test_load_explains_a_wrong_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest.json"):
        Purifier.load(tmp_path)
