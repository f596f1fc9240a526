"""The command line misused: every case exits with status 2 and one readable line naming the
flag, prints no traceback, leaves no ``OUT/cache`` behind, and changes nothing the user owns.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time

import numpy as np
import pytest
from typer.testing import CliRunner

from noisyclean import Purifier
from noisyclean.cli import app
from noisyclean.data import make_texture_dataset

runner = CliRunner()
FAST = ["--image-size", "32", "--k", "2", "--quiet"]


def _hashes(*folders):
    """Every file under ``folders`` (the user's), with its content hash."""
    out = {}
    for folder in folders:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("misuse")
    make_texture_dataset(root, n_normal=8, n_anomalous=2, image_size=32, seed=1)
    return root / "synthetic"


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A finished run folder (manifest.json, scores.npz) to damage."""
    folder = tmp_path_factory.mktemp("saved") / "run"
    x = np.random.default_rng(0).normal(size=(20, 3))
    Purifier("knn", k=2, progress=False).fit(x).save(folder)
    return folder


def misuse(args, *owned, flag):
    """Run ``noisyclean ARGS``; check the misuse contract; return the error line."""
    before = _hashes(*owned)
    start = time.perf_counter()
    result = runner.invoke(app, args)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert flag in lines[0], lines[0]
    assert _hashes(*owned) == before  # nothing the user owns changed
    assert time.perf_counter() - start < 30  # found before any training
    return lines[0]


def test_out_pointing_at_a_file(images, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("mine")
    line = misuse(["purify", str(images), "--out", str(target), *FAST], images, tmp_path,
                  flag="--out")
    assert "is a file" in line


def test_out_under_a_file(images, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    misuse(["purify", str(images), "--out", str(tmp_path / "notes.txt" / "run"), *FAST],
           images, tmp_path, flag="--out")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs /proc")
def test_out_that_cannot_be_written(images):
    line = misuse(["purify", str(images), "--out", "/proc/self/noisyclean-run", *FAST], images,
                  flag="--out")
    assert "cannot be written" in line


def test_out_holding_the_users_own_results_file(images, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "purified.txt").write_text("my own list\n")
    line = misuse(["purify", str(images), "--out", str(out), "--overwrite", *FAST], images, out,
                  flag="--out")
    assert "purified.txt" in line and "did not write" in line
    assert not (out / "cache").exists()


def test_out_holding_an_earlier_run_needs_overwrite(images, tmp_path, saved_run):
    out = tmp_path / "out"
    shutil.copytree(saved_run, out)
    (out / "report.html").write_text('<meta name="generator" content="noisyclean">')
    line = misuse(["purify", str(images), "--out", str(out), *FAST], images, out,
                  flag="--overwrite")
    assert "earlier noisyclean run" in line and "--out" in line


@pytest.mark.parametrize(("args", "flag", "says"), [
    (["purify", "--kep", "0.5"], "--kep", "No such option"),
    (["purify", "IMAGES", "--out", "OUT", "--k", "three"], "--k", "valid integer"),
    (["purify"], "data_dir", "Missing argument"),
    (["purfy", "IMAGES"], "purfy", "No such command"),
])
def test_mistakes_click_catches_are_one_line_too(images, tmp_path, args, flag, says):
    """Typos caught while parsing, before any command runs, read like every other error."""
    args = [str(images) if a == "IMAGES" else str(tmp_path / "out") if a == "OUT" else a
            for a in args]
    line = misuse(args, images, flag=flag)
    assert says in line and "--help'" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("keep", "says"), [
    ("1", "write --keep 1.0 to keep every sample, or --keep-count 1"),
    ("5", "--keep-count 5"),
    ("1.5", "out of range"),
    ("most", "--keep-count"),
])
def test_ambiguous_or_bad_keep(images, tmp_path, keep, says):
    out = tmp_path / "out"
    line = misuse(["purify", str(images), "--out", str(out), "--keep", keep, *FAST], images,
                  flag="--keep")
    assert says in line and "keep=" not in line and "keep_count" not in line
    assert not out.exists()


def test_keep_count_larger_than_the_data(images, tmp_path):
    out = tmp_path / "out"
    line = misuse(["purify", str(images), "--out", str(out), "--keep-count", "500", *FAST],
                  images, flag="--keep-count 500")
    assert "10 in the dataset" in line
    assert not (out / "cache").exists()


def test_unknown_executor(images, tmp_path):
    out = tmp_path / "out"
    line = misuse(["purify", str(images), "--out", str(out), "--executor", "gpu", *FAST],
                  images, flag="--executor 'gpu'")
    assert "serial" in line
    assert not (out / "cache").exists()


@pytest.mark.parametrize("kwargs", ['{"no_such_argument": 1}', '{"image_score": "loudest"}'])
def test_detector_arguments_it_refuses(images, tmp_path, kwargs):
    out = tmp_path / "out"
    misuse(["purify", str(images), "--out", str(out), "--detector-kwargs", kwargs, *FAST],
           images, flag="--detector-kwargs")
    assert not (out / "cache").exists()


def test_unreadable_image_names_the_cli_flag(images, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(images, data)
    (data / "broken.png").write_bytes(b"not a png")
    line = misuse(["purify", str(data), "--out", str(tmp_path / "out"), *FAST], data,
                  flag="--skip-bad")
    assert "on_error" not in line


def test_file_name_with_a_line_break(images, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(images, data)
    first = sorted(data.iterdir())[0]
    first.rename(data / "two\nlines.png")
    line = misuse(["purify", str(data), "--out", str(tmp_path / "out"), *FAST], data,
                  flag="two\\nlines.png")
    assert "line break" in line and not (tmp_path / "out").exists()


def _damaged(saved_run, tmp_path, name, damage):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    damage(run / name)
    return run


def _edit_manifest(**changes):
    def edit(path):
        manifest = json.loads(path.read_text())
        manifest.update(changes)
        path.write_text(json.dumps(manifest))
    return edit


@pytest.mark.parametrize(("name", "damage", "says"), [
    ("manifest.json", lambda p: p.write_text(p.read_text()[:40]), "damaged or truncated"),
    ("manifest.json", lambda p: p.write_text("[1, 2]"), "not a noisyclean manifest"),
    ("manifest.json", lambda p: p.write_text('{"format": "another-tool/3"}'),
     "not a noisyclean run manifest"),
    ("manifest.json", _edit_manifest(config={}), "config lacks"),
    ("manifest.json", _edit_manifest(keep_indices=[0, 1, 99]), "outside the 20 samples"),
    ("scores.npz", lambda p: p.write_bytes(p.read_bytes()[:100]), "damaged"),
    ("scores.npz", lambda p: np.savez(p, scores=np.zeros((2, 7)), membership=np.zeros((2, 7)),
                                      consensus=np.zeros(7)), "different runs"),
])
def test_damaged_run_folder(saved_run, tmp_path, name, damage, says):
    run = _damaged(saved_run, tmp_path, name, damage)
    line = misuse(["report", str(run), "--no-images", "--quiet"], run, flag=name)
    assert says in line
    assert not (run / "report.html").exists()


def test_report_never_replaces_a_foreign_html(saved_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(saved_run, run)
    (run / "report.html").write_text("<html>my notes</html>")
    misuse(["report", str(run), "--no-images", "--quiet"], run, flag="report.html")


def test_demo_never_overwrites_the_users_results(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "scores.csv").write_text("mine\n")
    before = _hashes(out)
    result = runner.invoke(app, ["demo", "--out", str(out), "--quiet"])
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(errors) == 1 and "--out" in errors[0] and "scores.csv" in errors[0]
    assert _hashes(out) == before


@pytest.mark.parametrize("flag", ["--out", "--rows-json"])
def test_benchmark_never_replaces_a_users_file(tmp_path, flag):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.md").write_text("# My notes\n")
    args = ["benchmark", "--datasets", "piped", "--seeds", "0", "--no-cost",
            "--out", str(tmp_path / "page.md")]
    misuse([*args, flag, str(mine / "notes.md")], mine, flag=flag)


def test_benchmark_may_replace_its_own_page_and_rows(tmp_path):
    from noisyclean.benchmark import is_benchmark_page, is_rows_file, read_rows, write_markdown

    rows = [{"dataset": "piped/x", "noise": 0.0, "seed": 0, "condition": "noisy",
             "image_auroc": 0.9}]
    page = write_markdown(rows, tmp_path / "page.md", command="c", seconds=1.0)
    (tmp_path / "rows.json").write_text(json.dumps(rows))
    assert is_benchmark_page(page) and is_rows_file(tmp_path / "rows.json")
    (tmp_path / "other.md").write_text("# Benchmarks\n\nmy own page\n")
    (tmp_path / "other.json").write_text(json.dumps([{"mine": 1}]))
    assert not is_benchmark_page(tmp_path / "other.md")
    assert not is_rows_file(tmp_path / "other.json")
    assert read_rows(tmp_path / "rows.json") == rows  # what --resume keeps, read once
    assert read_rows(tmp_path / "other.json") is None
    assert read_rows(tmp_path / "missing.json") is None


def test_tail_protection_with_a_detector_that_cannot_embed(images, tmp_path):
    out = tmp_path / "out"
    line = misuse(["purify", str(images), "--out", str(out), "--detector", "knn",
                   "--protect-tail", *FAST], images, flag="--protect-tail")
    assert "embed" in line and "protect_tail" not in line and "leave --protect-tail off" in line
    assert not (out / "cache").exists()


def test_community_removal_with_a_detector_without_patches(images, tmp_path):
    line = misuse(["purify", str(images), "--out", str(tmp_path / "out"), "--detector", "knn",
                   "--community", *FAST], images, flag="--mutual")
    assert "leave --mutual off" in line and "'auto'" not in line
