"""The command line at the edges, on real runs: output folders that hold things, ``--keep``
against ``--keep-count``, Ctrl-C, ``-q``, skipped files, and the report's maps, shapes and
captions."""

from __future__ import annotations

import base64
import io
import logging
import re
import shutil
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

from noisyclean import Purifier
from noisyclean.cli import app, main

runner = CliRunner()
FAST = ["--image-size", "32", "--k", "2", "--quiet"]
WIDE = (64, 32)  # width, height: the report must keep this shape


@pytest.fixture(scope="module")
def wide_images(tmp_path_factory):
    """Twelve 64x32 pictures of noise; two carry a bright block (the anomalies)."""
    from PIL import Image

    root = tmp_path_factory.mktemp("wide") / "images"
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        pixels = rng.integers(90, 140, size=(WIDE[1], WIDE[0], 3)).astype(np.uint8)
        if i in (3, 8):
            pixels[8:24, 20:44] = 255
        Image.fromarray(pixels).save(root / f"img_{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def first_run(wide_images, tmp_path_factory):
    """``purify --keep-count 7``, then ``report``: the run most tests look at."""
    out = tmp_path_factory.mktemp("runs") / "out"
    result = runner.invoke(app, ["purify", str(wide_images), "--out", str(out),
                                 "--keep-count", "7", *FAST])
    assert result.exit_code == 0, result.output
    report = runner.invoke(app, ["report", str(out), "--quiet"])
    assert report.exit_code == 0, report.output
    return out, result.output


def test_keep_count_keeps_that_many_and_the_folder_line_says_what_happened(first_run):
    out, output = first_run
    assert len((out / "purified.txt").read_text().splitlines()) == 7
    assert output.splitlines()[0] == f"writing the results into the new folder {out}"
    assert Purifier.load(out).keep_count == 7


def test_report_draws_maps_and_says_which_detector_drew_them(first_run):
    html = (first_run[0] / "report.html").read_text()
    assert html.count('class="map"') >= 5  # every dropped picture has its map
    assert "drawn by the final detector (patchknn), trained for this report on the 7 kept" in html


def test_report_thumbnails_keep_the_aspect_ratio(first_run):
    from PIL import Image

    html = (first_run[0] / "report.html").read_text()
    uri = re.search(r'<img class="pic" src="data:image/jpeg;base64,([^"]+)"', html).group(1)
    with Image.open(io.BytesIO(base64.b64decode(uri))) as thumb:
        assert thumb.size[0] == 2 * thumb.size[1]  # 64x32 stays twice as wide as high


def test_report_captions_show_the_score_the_order_follows(first_run):
    out = first_run[0]
    purifier = Purifier.load(out)
    html = (out / "report.html").read_text()
    tiles = re.findall(r'data-index="(\d+)".*?<span class="score"[^>]*>([^<]+)</span>', html,
                       flags=re.S)
    assert tiles
    for index, shown in tiles:
        assert shown == f"{purifier.selection_scores_[int(index)]:.3g}"
    shown_order = [float(s) for _, s in tiles[: 12 - 7]]  # the dropped gallery, in order
    assert shown_order == sorted(shown_order, reverse=True)


def test_rerun_replaces_only_the_earlier_runs_results(first_run, wide_images, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(first_run[0], out)
    (out / "my notes.txt").write_text("mine")
    refused = runner.invoke(app, ["purify", str(wide_images), "--out", str(out), "--keep",
                                  "0.5", *FAST])
    assert refused.exit_code == 2 and "--overwrite" in refused.output
    result = runner.invoke(app, ["purify", str(wide_images), "--out", str(out), "--keep", "0.5",
                                 "--overwrite", *FAST])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].startswith("replacing the earlier run's results in")
    assert len((out / "purified.txt").read_text().splitlines()) == 6
    assert not (out / "report.html").exists() and not (out / "report_plots").exists()
    assert (out / "my notes.txt").read_text() == "mine"


def test_ctrl_c_says_what_finished_and_the_command_that_resumes(wide_images, tmp_path,
                                                                monkeypatch, capsys):
    import noisyclean.purifier as purifier_module

    out = tmp_path / "out"
    args = ["purify", str(wide_images), "--out", str(out), *FAST]
    real = purifier_module.run_submodel
    calls = []

    def interrupted_second(job):
        calls.append(job.index)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(job)

    monkeypatch.setattr(purifier_module, "run_submodel", interrupted_second)
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert f"interrupted: 1 finished sub-model score row(s) are saved in {out / 'cache'}" in err
    assert f"  noisyclean purify {wide_images} --out {out} --image-size 32" in err
    monkeypatch.setattr(purifier_module, "run_submodel", real)
    with pytest.raises(SystemExit) as again:
        main(args)
    assert again.value.code == 0
    assert capsys.readouterr().out.startswith(f"resuming the interrupted run in {out}")


def test_quiet_means_no_info_lines(wide_images, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    result = runner.invoke(app, ["purify", str(wide_images), "--out", str(tmp_path / "out"),
                                 *FAST])
    assert result.exit_code == 0, result.output
    assert [r.getMessage() for r in caplog.records
            if r.name.startswith("noisyclean") and r.levelno < logging.WARNING] == []


def test_skipped_files_are_listed_once_without_python_warnings(wide_images, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(wide_images, data)
    (data / "broken.png").write_bytes(b"not a png")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = runner.invoke(app, ["purify", str(data), "--out", str(tmp_path / "out"),
                                     "--skip-bad", *FAST])
    assert result.exit_code == 0, result.output
    assert [str(w.message) for w in caught if "broken.png" in str(w.message)] == []
    listed = [line for line in result.output.splitlines() if "broken.png" in line]
    assert listed == [f"skipped unreadable {data / 'broken.png'}: not an image file Pillow "
                      "can identify"]
