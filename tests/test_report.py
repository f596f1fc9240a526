"""The HTML report: its numbers, its files, the CLI, and the page in a real browser."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image
from scipy.stats import spearmanr
from typer.testing import CliRunner

from noisyclean import Purifier
from noisyclean.cli import app
from noisyclean.data import make_texture_dataset
from noisyclean.report import analysis, report_from_run, write_report
from noisyclean.report.writer import plots_dir

runner = CliRunner()


# -- a small real run --------------------------------------------------------------------
@pytest.fixture(scope="module")
def textures():
    return make_texture_dataset(n_normal=40, n_anomalous=6, image_size=32, seed=1)


@pytest.fixture(scope="module")
def fitted(textures):
    return Purifier("knn", k=3, keep=0.8, progress=False).fit(textures)


class Dom(HTMLParser):
    """Every element with its attributes and the id of the section it sits in."""

    def __init__(self, html: str):
        super().__init__()
        self.elements: list[tuple[str, dict[str, str | None], str | None]] = []
        self.root: dict[str, str | None] = {}
        self._sections: list[str | None] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root = a
        if tag == "section":
            self._sections.append(a.get("id"))
        self.elements.append((tag, a, self._sections[-1] if self._sections else None))

    def handle_endtag(self, tag):
        if tag == "section" and self._sections:
            self._sections.pop()

    def find(self, tag: str, cls: str | None = None, section: str | None = None):
        return [a for t, a, s in self.elements if t == tag
                and (cls is None or cls in (a.get("class") or "").split())
                and (section is None or s == section)]

    def by_id(self, ident: str):
        return [a for _, a, _ in self.elements if a.get("id") == ident]


# -- the numbers --------------------------------------------------------------------------
def test_keep_threshold_lies_between_the_kept_and_the_dropped():
    c = np.array([0.1, 0.9, 0.3, 0.7, 0.5])
    ranking = np.argsort(c, kind="stable")
    thr = analysis.keep_threshold(c, ranking, 3)
    assert c[ranking[:3]].max() < thr < c[ranking[3:]].min()
    assert thr == pytest.approx(0.6)
    assert analysis.keep_threshold(c, ranking, 5) == pytest.approx(0.9)


def test_spearman_matrix_uses_only_samples_both_scored():
    rng = np.random.default_rng(0)
    s = rng.normal(size=(3, 40))
    s[1] = s[0] * 2 + rng.normal(scale=0.1, size=40)
    s[0, :10] = np.nan
    s[2, 30:] = np.nan
    rho, common = analysis.spearman_matrix(s)
    both = ~np.isnan(s[0]) & ~np.isnan(s[2])
    assert common[0, 2] == both.sum() == 20
    assert rho[0, 2] == pytest.approx(spearmanr(s[0, both], s[2, both]).statistic)
    assert rho[0, 1] > 0.9 and np.allclose(np.diag(rho), 1.0)
    assert np.allclose(rho, rho.T, equal_nan=True)


def test_spearman_is_nan_when_too_few_samples_are_shared():
    s = np.array([[1.0, 2.0, np.nan, np.nan], [np.nan, np.nan, 1.0, 2.0]])
    rho, common = analysis.spearman_matrix(s)
    assert common[0, 1] == 0 and np.isnan(rho[0, 1])


def test_galleries_are_capped_and_ordered():
    consensus = np.arange(10, dtype=float)
    ranking = np.argsort(consensus)
    plan = analysis.plan_galleries(ranking, n_keep=6, max_dropped=3, n_borderline=2)
    assert plan.dropped.tolist() == [9, 8, 7]  # most anomalous first
    assert plan.borderline.tolist() == [5, 4]  # closest to the threshold first
    assert plan.n_dropped_total == 4 and plan.n_kept_total == 6


def test_one_unknown_label_hides_the_purity_table():
    assert analysis.known_labels([0, 1, 0], 3).tolist() == [0, 1, 0]
    assert analysis.known_labels([0, -1, 1], 3) is None
    with pytest.raises(ValueError, match="one label per sample"):
        analysis.known_labels([0, 1], 3)


def test_percentile_ranks_keep_nan_for_unscored_samples():
    pct = analysis.percentile_ranks(np.array([[1.0, 3.0, 2.0, np.nan]]))
    assert pct[0, :3].tolist() == pytest.approx([100 / 3, 100.0, 200 / 3])
    assert np.isnan(pct[0, 3])


# -- the page ------------------------------------------------------------------------------
def test_report_of_a_real_run(fitted, textures, tmp_path):
    path = write_report(fitted, textures, tmp_path / "report.html")
    html = path.read_text()
    dom = Dom(html)
    n_drop = fitted.n_samples_ - fitted.n_keep_
    assert len(dom.find("figure", "tile", "dropped")) == n_drop
    assert len(dom.find("figure", "tile", "borderline")) == min(48, fitted.n_keep_)
    # the most anomalous sample comes first
    first = dom.find("figure", "tile", "dropped")[0]
    assert int(first["data-index"]) == int(fitted.ranking_[-1])
    # every gallery picture is an embedded JPEG, every plot an embedded PNG
    pics = dom.find("img", "pic")
    assert pics and all(p["src"].startswith("data:image/jpeg;base64,") for p in pics)
    for plot in ("plot-consensus", "plot-agreement", "plot-submodels"):
        assert dom.by_id(plot)
    # nothing is fetched from elsewhere: no http(s) or protocol-relative resource
    for _, a, _ in dom.elements:
        for key in ("src", "href"):
            v = a.get(key) or ""
            assert not v.startswith(("http:", "https:", "//")), v
    # the PNGs beside it are real images
    for name in ("consensus", "submodels", "agreement"):
        with Image.open(plots_dir(path) / f"{name}.png") as im:
            assert im.size[0] > 300
    # the purity table reports the real fractions
    summary = analysis.purification_report(np.asarray(textures.labels), fitted.keep_mask_)
    assert dom.by_id("purity-table") and dom.by_id("selection-table")
    before = f"{100 * summary['anomaly_fraction_before']:.2f} %"
    assert before in html
    # defect types are listed, with their recall
    assert dom.by_id("defect-table") and "scratch" in html


def test_unknown_labels_leave_the_purity_table_out(fitted, textures, tmp_path):
    labels = np.asarray(textures.labels).copy()
    labels[0] = -1
    html = write_report(fitted, textures, tmp_path / "r.html", labels=labels).read_text()
    assert 'id="purity-table"' not in html and "labels are unknown" in html


def test_galleries_paginate_without_loading_hidden_pages(fitted, textures, tmp_path):
    path = write_report(fitted, textures, tmp_path / "r.html", max_gallery=5, page_size=2,
                        n_borderline=0)
    dom = Dom(path.read_text())
    tiles = dom.find("figure", "tile", "dropped")
    assert len(tiles) == 5 and [t["data-page"] for t in tiles] == ["0", "0", "1", "1", "2"]
    assert all("hidden" in t for t in tiles[2:]) and not any("hidden" in t for t in tiles[:2])
    pics = dom.find("img", "pic", "dropped")
    assert all("src" in p for p in pics[:2]) and all("data-src" in p and "src" not in p
                                                      for p in pics[2:])
    assert dom.find("section", "gallery")[0]["data-pages"] == "3"


def test_maps_from_a_localising_detector_are_overlaid(fitted, textures, tmp_path):
    class Brightness:
        def score_maps(self, data):
            return np.stack([np.asarray(data[i]).mean(axis=0) for i in range(len(data))])

    path = write_report(fitted, textures, tmp_path / "r.html", detector=Brightness())
    dom = Dom(path.read_text())
    assert len(dom.find("img", "map")) == len(dom.find("img", "pic")) > 0

    with pytest.raises(TypeError, match="score_maps"):
        write_report(fitted, textures, tmp_path / "r2.html", detector=object())


def test_report_without_images_and_with_a_wrong_dataset(fitted, textures, tmp_path):
    html = write_report(fitted, None, tmp_path / "r.html").read_text()
    assert "no picture" in html and "data:image/jpeg" not in html
    other = make_texture_dataset(n_normal=10, n_anomalous=2, image_size=32, seed=2)
    with pytest.raises(ValueError, match="not the one the Purifier was fitted on"):
        write_report(fitted, other, tmp_path / "r2.html")


def test_nothing_dropped_still_renders(textures, tmp_path):
    p = Purifier("knn", k=3, keep=1.0, progress=False).fit(textures)
    dom = Dom(write_report(p, textures, tmp_path / "r.html").read_text())
    assert not dom.find("figure", "tile", "dropped")
    assert len(dom.find("figure", "tile", "borderline")) == 46 and dom.by_id("purity-table")


def test_unfitted_purifier_is_refused(tmp_path):
    from noisyclean import NotFittedError

    with pytest.raises(NotFittedError):
        write_report(Purifier("knn"), None, tmp_path / "r.html")


def test_a_hundred_thousand_samples_stay_light(tmp_path):
    """Histograms use every score; galleries are capped, so the page stays small."""
    x = np.random.default_rng(0).normal(size=(100_000, 1))

    class Norm:
        def fit(self, data):
            return self

        def score(self, data):
            return np.abs(np.asarray([data[i] for i in range(len(data))])).ravel()

    purifier = Purifier(Norm, k=3, keep=0.9, progress=False).fit(x)
    path = write_report(purifier, x, tmp_path / "big.html", max_gallery=100, page_size=25)
    dom = Dom(path.read_text())
    assert len(dom.find("figure", "tile", "dropped")) == 100
    assert dom.find("section", "gallery")[0]["data-pages"] == "4"
    assert path.stat().st_size < 2_000_000
    assert "100000 samples" in path.read_text()


def test_report_is_never_written_into_the_data_folder(tmp_path):
    from noisyclean.data import ImageFolder

    make_texture_dataset(tmp_path / "data", n_normal=8, n_anomalous=1, image_size=32)
    ds = ImageFolder(tmp_path / "data", image_size=32)
    p = Purifier("knn", k=2, keep=0.8, progress=False).fit(ds)
    with pytest.raises(ValueError, match="inside the data folder"):
        write_report(p, ds, tmp_path / "data" / "report.html")


# -- from a run folder, and the CLI ---------------------------------------------------------
@pytest.fixture
def run_folder(tmp_path):
    data = tmp_path / "data"
    make_texture_dataset(data, n_normal=24, n_anomalous=4, image_size=32, seed=3)
    out = tmp_path / "out"
    result = runner.invoke(app, ["purify", str(data), "--out", str(out), "--detector", "knn",
                                 "--image-size", "32", "--masks", str(data / "masks"),
                                 "--quiet"])
    assert result.exit_code == 0, result.output
    return data, out


def test_cli_report_of_a_purify_run(run_folder):
    data, out = run_folder
    result = runner.invoke(app, ["report", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    path = out / "report.html"
    assert str(path) in result.output
    dom = Dom(path.read_text())
    assert len(dom.find("figure", "tile", "dropped")) == 28 - round(0.8 * 28)
    assert dom.find("img", "pic")  # pictures read back from the data folder
    assert str(data.resolve()) in path.read_text()  # the run's facts
    assert "No labels" in path.read_text() and not dom.by_id("purity-table")
    assert len(dom.find("img", "pic")) > 0 and "masks" in path.read_text()
    assert (out / "report_plots" / "consensus.png").is_file()


def test_cli_report_without_images_and_errors(run_folder, tmp_path):
    data, out = run_folder
    target = tmp_path / "elsewhere" / "r.html"
    result = runner.invoke(app, ["report", str(out), "--out", str(target), "--no-images", "-q"])
    assert result.exit_code == 0, result.output
    assert "data:image/jpeg" not in target.read_text()
    result = runner.invoke(app, ["report", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "manifest.json" in result.output
    result = runner.invoke(app, ["report", str(out), "--out", str(data / "r.html")])
    assert result.exit_code == 2 and "data folder" in result.output


def test_a_vanished_image_shows_as_a_placeholder(run_folder, caplog):
    data, out = run_folder
    gone = (out / "dropped.txt").read_text().split()[0]
    (data / gone).unlink()
    with caplog.at_level("WARNING"):
        html = report_from_run(out, progress=False).read_text()
    assert html.count("no picture") == 1 and "could not be read" in caplog.text


def test_report_of_a_demo_run_regenerates_its_images(tmp_path):
    from noisyclean.data import defect_types_of, labels_of, make_noisy_split
    from noisyclean.runs import write_outputs
    from noisyclean.samples import Subset

    settings = {"layout": "demo", "image_size": 32, "seed": 4, "n_normal": 30,
                "n_anomalous": 10, "noise_ratio": 0.2}
    data = make_texture_dataset(n_normal=30, n_anomalous=10, image_size=32, seed=4)
    split = make_noisy_split(labels_of(data), defect_types_of(data), 0.2, seed=4)
    train = Subset(data, split.train_indices)
    p = Purifier("knn", k=3, keep=0.8, progress=False).fit(train)
    write_outputs(p, train, tmp_path / "demo", extra={"dataset": settings})
    dom = Dom(report_from_run(tmp_path / "demo", progress=False).read_text())
    assert dom.by_id("purity-table") and dom.find("img", "pic")

    settings["seed"] = 5  # another demo: other ids, refused rather than mislabelled
    write_outputs(p, train, tmp_path / "other", extra={"dataset": settings})
    with pytest.raises(ValueError, match="not the one"):
        report_from_run(tmp_path / "other")


def test_report_from_run_names_a_missing_data_folder(run_folder):
    data, out = run_folder
    moved = data.with_name("moved")
    data.rename(moved)
    with pytest.raises(FileNotFoundError, match="--no-images"):
        report_from_run(out)
    assert report_from_run(out, images=False, progress=False).is_file()


# -- in a real browser -------------------------------------------------------------------------
def _chromium() -> str | None:
    env = os.environ.get("NOISYCLEAN_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _browser(binary: str, *args: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
             "--virtual-time-budget=10000", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )


@pytest.mark.slow
def test_report_renders_in_headless_chromium(fitted, textures, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no chromium on this machine (apt-get install chromium); CI installs it")
    path = write_report(fitted, textures, tmp_path / "report.html", page_size=4,
                        detector=type("Maps", (), {"score_maps": lambda self, d: np.stack(
                            [np.asarray(d[i]).std(axis=0) for i in range(len(d))])})())
    url = path.resolve().as_uri()

    shot = tmp_path / "report.png"
    done = _browser(binary, "--window-size=1366,1800", f"--screenshot={shot}", url)
    assert shot.is_file(), done.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1366, 1800)
        grey = np.asarray(im.convert("L"), dtype=float)
    assert grey.std() > 20  # a rendered page, not a blank one
    if os.environ.get("NOISYCLEAN_REPORT_SCREENSHOT"):
        shutil.copy(shot, os.environ["NOISYCLEAN_REPORT_SCREENSHOT"])

    for fragment in ("", "#all"):
        done = _browser(binary, "--dump-dom", url + fragment)
        assert done.returncode == 0, done.stderr[-2000:]
        dom = Dom(done.stdout)
        root = dom.root
        assert root.get("data-report-state") == "ready", "the page script did not finish"
        assert root.get("data-failed-resources") == "0"
        assert root.get("data-images-broken") == "0"
        assert root.get("data-external-requests") == "0"
        n_drop = fitted.n_samples_ - fitted.n_keep_
        tiles = dom.find("figure", "tile", "dropped")
        assert len(tiles) == n_drop
        visible = [t for t in tiles if "hidden" not in t]
        assert len(visible) == (n_drop if fragment == "#all" else min(4, n_drop))
        shown = [p for p in dom.find("img", "pic") if "src" in p]
        maps = [p for p in dom.find("img", "map") if "src" in p]
        plots = [p for p in dom.find("img") if p.get("src", "").startswith("data:image/png")]
        assert len(plots) == 3 and shown and len(maps) == len(shown)
        assert int(root["data-images-loaded"]) == len(shown) + len(maps) + len(plots)
        assert "hidden" in dom.by_id("load-problems")[0]
