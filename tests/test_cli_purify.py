"""``noisyclean purify`` and ``evaluate`` on real files: outputs, errors, no writes, resume."""

from __future__ import annotations

import csv
import json
import logging

import pytest
from typer.testing import CliRunner

from noisyclean.cli import app
from noisyclean.data import make_texture_dataset
from noisyclean.runs import purify_folder

runner = CliRunner()
FAST = ["--image-size", "64", "--k", "3", "--quiet"]


def _snapshot(folder):
    return sorted((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("src")
    make_texture_dataset(root, n_normal=24, n_anomalous=6, image_size=64, seed=3)
    return root / "synthetic"  # the images; masks and labels.csv live beside it


def test_purify_writes_the_promised_files_and_nothing_into_the_data(image_dir, tmp_path):
    before = _snapshot(image_dir)
    out = tmp_path / "out"
    result = runner.invoke(app, ["purify", str(image_dir), "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert _snapshot(image_dir) == before
    kept = (out / "purified.txt").read_text().splitlines()
    dropped = (out / "dropped.txt").read_text().splitlines()
    images = sorted(p.relative_to(image_dir).as_posix() for p in image_dir.iterdir())
    assert sorted(kept + dropped) == images and len(kept) == 24
    assert kept == sorted(kept)  # input order (the folder is read in sorted order)
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert [r["id"] for r in rows] == images
    assert {r["id"] for r in rows if r["kept"] == "1"} == set(kept)
    assert set(rows[0]) == {"id", "submodel_0", "submodel_1", "submodel_2", "consensus",
                            "whole_image", "kept"}  # patchknn embeds: the view is on
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["detector"] == "patchknn" and manifest["seed"] == 0
    assert manifest["whole_image"] is True
    assert "stage1_s" in manifest["timings"] and "numpy" in manifest["versions"]


def test_whole_image_off_is_the_papers_recipe(image_dir, tmp_path):
    out = tmp_path / "out"
    result = runner.invoke(app, ["purify", str(image_dir), "--out", str(out),
                                 "--whole-image", "off", *FAST])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader((out / "scores.csv").open()))
    assert "whole_image" not in rows[0]
    # the recipe keeps the lowest consensus scores
    consensus = sorted(float(r["consensus"]) for r in rows)
    kept = [float(r["consensus"]) for r in rows if r["kept"] == "1"]
    assert max(kept) <= consensus[len(kept) - 1]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["whole_image"] is False and manifest["config"]["whole_image"] is False


def test_a_rerun_resumes_from_the_cache(image_dir, tmp_path, caplog):
    purify_folder(image_dir, tmp_path / "out", image_size=64, progress=False)
    with caplog.at_level(logging.INFO, logger="noisyclean"):  # a finished run: replace it
        purify_folder(image_dir, tmp_path / "out", image_size=64, progress=False,
                      overwrite=True)
    assert "resuming: 3 of 3 sub-models were already scored" in caplog.text


def test_output_inside_the_data_folder_is_refused(image_dir):
    result = runner.invoke(app, ["purify", str(image_dir), "--out", str(image_dir / "o"), *FAST])
    assert result.exit_code == 2 and "never writes into a data folder" in result.output
    assert not (image_dir / "o").exists()


def test_bad_folders_get_clear_errors(tmp_path, image_dir):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(app, ["purify", str(empty), "--out", str(tmp_path / "o1"), *FAST])
    assert result.exit_code == 2 and "no usable image" in result.output

    broken = tmp_path / "broken"
    broken.mkdir()
    for p in sorted(image_dir.iterdir())[:12]:
        (broken / p.name).write_bytes(p.read_bytes())
    (broken / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    result = runner.invoke(app, ["purify", str(broken), "--out", str(tmp_path / "o2"), *FAST])
    assert result.exit_code == 2 and "zz_corrupt.png" in result.output
    skipped = runner.invoke(app, ["purify", str(broken), "--out", str(tmp_path / "o3"),
                                  "--skip-bad", *FAST])
    assert skipped.exit_code == 0, skipped.output
    assert "zz_corrupt.png" not in (tmp_path / "o3" / "purified.txt").read_text()

    missing = runner.invoke(app, ["purify", str(tmp_path / "nope"), "--out", str(tmp_path / "o4")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_bad_options_are_clear(image_dir, tmp_path):
    result = runner.invoke(app, ["purify", str(image_dir), "--out", str(tmp_path / "o"),
                                 "--keep", "lots", *FAST])
    assert result.exit_code == 2 and "--keep" in result.output
    result = runner.invoke(app, ["purify", str(image_dir), "--out", str(tmp_path / "o"),
                                 "--detector-kwargs", "[1]", *FAST])
    assert result.exit_code == 2 and "JSON object" in result.output
    result = runner.invoke(app, ["purify", str(image_dir), "--out", str(tmp_path / "o"),
                                 "--whole-image", "maybe", *FAST])
    assert result.exit_code == 2 and "--whole-image 'maybe'" in result.output
    assert not (tmp_path / "o").exists()


def test_evaluate_refuses_lists_that_leave_the_data_folder(image_dir, tmp_path):
    bad = tmp_path / "list.txt"
    bad.write_text("../labels.csv\n")
    result = runner.invoke(app, ["evaluate", str(image_dir), str(image_dir),
                                 "--train-list", str(bad), "--image-size", "64"])
    assert result.exit_code == 2 and "labels.csv" in result.output


def test_evaluate_trains_on_the_purified_list_and_reports_metrics(image_dir, tmp_path):
    out = tmp_path / "out"
    assert runner.invoke(app, ["purify", str(image_dir), "--out", str(out), *FAST]).exit_code == 0
    test_dir = tmp_path / "test"
    for p in sorted(image_dir.iterdir()):
        label = "good" if p.name.startswith("normal") else "defect"
        (test_dir / label).mkdir(parents=True, exist_ok=True)
        (test_dir / label / p.name).write_bytes(p.read_bytes())
    result = runner.invoke(app, ["evaluate", str(image_dir), str(test_dir), "--train-list",
                                 str(out / "purified.txt"), "--image-size", "64"])
    assert result.exit_code == 0, result.output
    assert "image_auroc" in result.output and "n_train: 24.0000" in result.output


def test_evaluate_with_test_masks_reports_pixel_metrics(image_dir, tmp_path):
    """Scores and maps come from one pass (protocol.scores_and_maps) and both are reported."""
    masks_src = image_dir.parent / "masks" / image_dir.name
    test_dir, masks = tmp_path / "test", tmp_path / "masks"
    masks.mkdir()
    for p in sorted(image_dir.iterdir()):
        label = "good" if p.name.startswith("normal") else "defect"
        (test_dir / label).mkdir(parents=True, exist_ok=True)
        (test_dir / label / p.name).write_bytes(p.read_bytes())
        if label == "defect":
            (masks / p.name).write_bytes((masks_src / p.name).read_bytes())
    normals = [p.name for p in sorted(image_dir.iterdir()) if p.name.startswith("normal")]
    train_list = tmp_path / "normals.txt"
    train_list.write_text("\n".join(normals[:16]) + "\n")
    result = runner.invoke(app, ["evaluate", str(image_dir), str(test_dir), "--train-list",
                                 str(train_list), "--image-size", "64", "--test-masks",
                                 str(masks)])
    assert result.exit_code == 0, result.output
    values = dict(line.split(":") for line in result.output.splitlines() if ":" in line)
    assert float(values["image_auroc".rjust(16)]) > 0.9
    assert float(values["pixel_auroc".rjust(16)]) > 0.9
