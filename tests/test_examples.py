from __future__ import annotations

import importlib.util
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_embeddings_example_purifies_below_one_percent():
    stats = _load("embeddings").run()
    assert abs(stats["anomaly_fraction_before"] - 0.10) < 0.005
    assert stats["anomaly_fraction_after"] < 0.01
    assert stats["kept"] == round(0.8 * stats["n"])
