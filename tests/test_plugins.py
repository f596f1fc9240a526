"""Third-party detectors arrive through a real entry point, exactly as built-ins do."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from noisyclean import get_detector, list_detectors
from noisyclean.plugins import UnknownDetectorError, detector_info

PLUGIN = textwrap.dedent('''
    """A third-party noisyclean plugin, installed only as a .dist-info on sys.path."""
    import numpy as np
    import noisyclean

    class NormDetector:
        """Distance from the training mean."""
        def fit(self, dataset):
            self.mean_ = np.mean(np.asarray(dataset, float), axis=0)
            return self
        def score(self, dataset):
            from noisyclean.samples import to_numpy
            return np.linalg.norm(to_numpy(dataset) - self.mean_, axis=1)

    @noisyclean.hookimpl
    def register_detectors(register):
        register("norm", NormDetector, description="Distance from the training mean.")
''')


@pytest.fixture
def plugin_path(tmp_path):
    (tmp_path / "nc_norm_plugin.py").write_text(PLUGIN)
    dist = tmp_path / "nc_norm_plugin-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: nc-norm-plugin\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[noisyclean]\nnorm = nc_norm_plugin\n")
    return tmp_path


def _run(args, plugin_path):
    pythonpath = f"{plugin_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"
    env = {**os.environ, "PYTHONPATH": pythonpath, "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env,
                          check=False)


def test_entry_point_plugin_is_listed_by_the_cli(plugin_path):
    out = _run(["-m", "noisyclean", "detectors"], plugin_path)
    assert out.returncode == 0, out.stderr
    assert "norm" in out.stdout and "nc-norm-plugin 1.2.3" in out.stdout
    assert "Distance from the training mean." in out.stdout
    assert "knn" in out.stdout  # the built-ins still there


def test_entry_point_plugin_is_usable_by_name(plugin_path):
    code = textwrap.dedent("""
        import numpy as np
        from noisyclean import Purifier
        rng = np.random.default_rng(0)
        x = np.vstack([rng.normal(size=(95, 3)), rng.normal(size=(5, 3)) * 20])
        p = Purifier("norm", k=3, keep=0.9, progress=False).fit(x)
        print(sorted(set(range(95, 100)) & set(p.drop_indices_.tolist())))
    """)
    out = _run(["-c", code], plugin_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[95, 96, 97, 98, 99]"


def test_builtins_load_through_the_hook():
    names = {d.name for d in list_detectors()}
    assert {"knn", "gaussian", "patchknn"} <= names
    assert detector_info("knn").distribution.startswith("noisyclean")
    assert get_detector("knn", n_neighbors=2).n_neighbors == 2


def test_unknown_name_is_clear():
    with pytest.raises(UnknownDetectorError) as err:
        get_detector("nope")
    assert "Known detectors:" in str(err.value) and "knn" in str(err.value)
