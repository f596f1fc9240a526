from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

import noisyclean
from noisyclean.cli import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and noisyclean.__version__ in result.output


def test_detectors_lists_names_distributions_and_descriptions():
    result = runner.invoke(app, ["detectors"])
    assert result.exit_code == 0
    for text in ("knn", "gaussian", "patchknn", "noisyclean", "Mahalanobis"):
        assert text in result.output


def test_every_command_has_help():
    for command in [[], *([c.name] for c in app.registered_commands)]:
        result = runner.invoke(app, [*command, "--help"])
        assert result.exit_code == 0 and "Usage" in result.output


def test_python_dash_m_is_the_same_cli():
    out = subprocess.run([sys.executable, "-m", "noisyclean", "--version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == f"noisyclean {noisyclean.__version__}"


def test_benchmark_refuses_a_missing_notes_file_before_any_work(tmp_path):
    out = tmp_path / "page.md"
    result = runner.invoke(app, ["benchmark", "--notes", str(tmp_path / "nope.md"),
                                 "--out", str(out)])
    assert result.exit_code == 2 and "not a readable file" in result.output
    assert not out.exists()


def test_benchmark_rejects_bad_detector_kwargs(tmp_path):
    result = runner.invoke(app, ["benchmark", "--detector-kwargs", "[1]",
                                 "--out", str(tmp_path / "p.md")])
    assert result.exit_code == 2 and "JSON object" in result.output
