"""The benchmark across data sets: selection, the PIPED split protocol, rows, the page."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")
from PIL import Image
from test_data_piped import inverted_mask

from noisyclean.benchmark import (
    ABLATIONS,
    ablation_conditions,
    default_conditions,
    gap_closed,
    grid_splits,
    headline_table,
    paired_wins,
    run_benchmark,
    select_datasets,
    summarize,
    write_markdown,
)
from noisyclean.cli import app
from noisyclean.data import DataError, find_piped_root, labels_of, piped_classes


def _image(path: Path, value: float, seed: int, blob: bool = False) -> None:
    """A 16 px RGB patch of level ``value`` with a little noise and, on a defect, a bright
    blob placed by ``seed``: defects unlike the normals and unlike each other."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = np.full((16, 16, 3), value, float) + rng.normal(0, 4, (16, 16, 3))
    if blob:
        r, c = rng.integers(0, 11, 2)
        arr[r:r + 5, c:c + 5] = 250
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path, format="BMP")


def tiny_piped(root: Path, classes=("PA_A", "PA_B"), n: int = 12) -> Path:
    """A PIPED copy with ``n`` normals and ``n`` defects per class, masks inverted."""
    for c in classes:
        for k in range(n):
            _image(root / c / "NoDefects" / f"{c}_S_ND_01_{k + 1}.bmp", 100, k)
            _image(root / c / "Defects" / f"{c}_S_D_02_{k + 1}.bmp", 100, 100 + k, blob=True)
            inverted_mask(root / c / "Defects" / "GroundThruth" / f"{c}_S_GT_02_{k + 1}.bmp")
    return root


# -- choosing data sets ------------------------------------------------------------------------
def test_select_datasets_names_families_and_classes(tmp_path: Path):
    root = tiny_piped(tmp_path)
    both = select_datasets("piped", piped_root=root)
    assert [d.name for d in both] == ["piped/PA_A", "piped/PA_B"]
    assert {d.family for d in both} == {"piped"}
    one = select_datasets("piped/PA_B, piped", piped_root=root)
    assert [d.name for d in one] == ["piped/PA_B", "piped/PA_A"]  # no repeats
    with pytest.raises(ValueError, match="no PIPED class 'PA_Z'.*PA_A, PA_B"):
        select_datasets("piped/PA_Z", piped_root=root)
    with pytest.raises(ValueError, match="unknown data set 'mvtec'"):
        select_datasets("mvtec", piped_root=root)
    with pytest.raises(DataError, match="does not exist"):
        select_datasets("magnetic-tile", mtd_root=tmp_path / "absent")


def test_piped_split_protocol_on_a_tiny_copy(tmp_path: Path):
    """A third of the normals and half of the defects held out, the same at every noise."""
    spec = select_datasets("piped/PA_A", piped_root=tiny_piped(tmp_path, ("PA_A",)))[0]
    data = spec.load(16)
    splits = {noise: spec.split(data, noise, seed=1) for noise in (0.0, 0.1, 0.2, 0.4)}
    tests = {tuple(s.test_indices) for s in splits.values()}
    assert len(tests) == 1  # one fixed test set per seed
    s = splits[0.4]
    assert (s.n_test_normal, s.n_test_anomaly, s.n_train_normal) == (4, 6, 8)
    assert not set(s.train_indices) & set(s.test_indices)
    assert splits[0.0].n_train_anomaly == 0


@pytest.mark.realdata
@pytest.mark.skipif(find_piped_root() is None or not find_piped_root().is_dir(),
                    reason="PIPED data not present")
def test_piped_split_protocol_on_the_real_classes():
    for spec in select_datasets("piped"):
        data = spec.load(spec.image_size)
        labels = labels_of(data)
        test = None
        for noise, defects in ((0.0, 0), (0.1, 4), (0.2, 8), (0.4, 21)):
            split = spec.split(data, noise, seed=2)
            test = split.test_indices if test is None else test
            assert np.array_equal(split.test_indices, test)
            assert (split.n_test_normal, split.n_test_anomaly) == (16, 24)
            assert (split.n_train_normal, split.n_train_anomaly) == (32, defects)
            assert not split.normals_reduced
            assert (labels[split.train_indices] == 1).sum() == defects
    assert len(select_datasets("piped")) == len(piped_classes())


# -- conditions --------------------------------------------------------------------------------
def test_ablations_are_data_and_a_subset_can_be_chosen():
    assert all("," not in c.name for c in ABLATIONS)
    chosen = ablation_conditions([" KEEP AUTO", "max image score everywhere"])
    assert [c.name for c in chosen] == [
        "keep auto", "max image score everywhere", "max image score everywhere: noisy",
        "max image score everywhere: oracle"]
    assert chosen[0].purifier == {"keep": "auto"}  # only the change from the defaults
    assert chosen[2].train == "all" and chosen[3].train == "normals"
    assert chosen[2].detector_kwargs == {"image_score": "max"}
    with pytest.raises(ValueError, match="unknown ablation.*'nope'.*keep auto"):
        ablation_conditions(["nope"])


def test_an_ablation_with_its_own_baselines_is_measured_against_them():
    rows = [{"noise": 0.2, "seed": 0, "condition": c, "image_auroc": a} for c, a in (
        ("noisy", 0.6), ("oracle", 0.9), ("x", 0.8), ("x: noisy", 0.7), ("x: oracle", 0.8))]
    summary = summarize(rows)
    assert gap_closed(summary, 0.2, "x") == pytest.approx(1.0)  # (0.8 - 0.7) / (0.8 - 0.7)


# -- the grid on tiny data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def grid_rows(tmp_path_factory) -> list[dict]:
    root = tiny_piped(tmp_path_factory.mktemp("piped"))
    return run_benchmark(datasets=select_datasets("piped", piped_root=root),
                         noise_ratios=(0.0, 0.4), seeds=(0, 1), image_size=16,
                         detector="knn", with_pixels=False)


def test_grid_rows_carry_their_dataset_and_the_purification_diagnostic(grid_rows):
    n_conditions = len(default_conditions())
    assert len(grid_rows) == 2 * 2 * 2 * n_conditions
    assert {r["dataset"] for r in grid_rows} == {"piped/PA_A", "piped/PA_B"}
    purified = [r for r in grid_rows if r["condition"] == "noisyclean"]
    dirty = [r for r in purified if r["noise"] == 0.4]
    # the blob makes the defects plain: the selection ranks them all above the normals
    assert all(r["selection_auroc"] == pytest.approx(1.0) for r in dirty)
    assert all(0 < r["anomaly_recall"] <= 1 for r in dirty)
    assert all(np.isnan(r["selection_auroc"]) for r in purified if r["noise"] == 0.0)
    noisy = [r for r in grid_rows if r["condition"] == "noisy" and r["noise"] == 0.4]
    assert all(r["n_train"] == 8 + 5 for r in noisy)  # 8 normals + 5 defects: 0.385


def test_the_page_renders_both_data_sets_and_the_diagnostic(grid_rows, tmp_path: Path):
    mtd = [{"dataset": "magnetic-tile", "noise": n, "seed": s, "condition": c,
            "image_auroc": a + 0.01 * s, "selection_auroc": 0.7, "anomaly_recall": 0.5}
           for n in (0.0, 0.4) for s in (0, 1)
           for c, a in (("noisy", 0.9 if n == 0 else 0.5), ("oracle", 0.9),
                        ("noisyclean", 0.88 if n == 0 else 0.8),
                        ("paper recipe", 0.87 if n == 0 else 0.6))]
    rows = mtd + grid_rows
    text = write_markdown(rows, tmp_path / "b.md", command="noisyclean benchmark",
                          seconds=60).read_text()
    assert "## Magnetic Tile" in text and "## PIPED" in text and "### Per class" in text
    headline = text.split("## Headline", 1)[1].split("\n## ", 1)[0]
    # Magnetic Tile: -0.02 on clean data, (0.805 - 0.505) / (0.905 - 0.505) = 75 % at 0.4;
    # paired, the default beats the recipe and noisy training in both contaminated splits
    assert "| Magnetic Tile | -0.020 | 75% | 0.700 | no | 2/2 (+0.200) | 2/2 (+0.300) |" \
        in headline
    assert "| PIPED (mean of 2 classes) |" in headline
    assert "| piped/PA_A |" in headline and "| piped/PA_B |" in headline
    assert "selection AUROC" in text and "consensus AUROC" in text
    piped_wins = paired_wins([r for r in grid_rows], "noisyclean", "noisy")
    assert piped_wins is not None and piped_wins[1] == 4  # 2 classes x 2 seeds at noise 0.4
    assert headline_table(rows).count("\n") == 1 + 4  # header, rule and four data sets


def test_cli_refuses_unknown_data_sets_and_ablations_before_any_work(tmp_path: Path):
    from typer.testing import CliRunner

    out = tmp_path / "page.md"
    result = CliRunner().invoke(app, ["benchmark", "--datasets", "mvtec", "--out", str(out)])
    assert result.exit_code == 2 and "--datasets" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, [
        "benchmark", "--datasets", "piped", "--piped-root", str(tiny_piped(tmp_path / "p")),
        "--ablation-names", "keep auto,nope", "--out", str(out)])
    assert result.exit_code == 2 and "--ablation-names" in result.output and "nope" in \
        result.output
    assert not out.exists()


def test_a_resumed_grid_trains_only_what_the_rows_lack(tmp_path: Path):
    from typer.testing import CliRunner

    root = tiny_piped(tmp_path / "p")
    specs = select_datasets("piped/PA_A", piped_root=root)
    first = run_benchmark(datasets=specs, noise_ratios=(0.4,), seeds=(0,), image_size=16,
                          detector="knn", with_pixels=False)
    assert len(first) == len(default_conditions())
    again = run_benchmark(datasets=specs, noise_ratios=(0.4,), seeds=(0, 1), image_size=16,
                          detector="knn", with_pixels=False, done=first)
    assert {r["seed"] for r in again} == {1} and len(again) == len(first)

    rows_json, page = tmp_path / "rows.json", tmp_path / "page.md"
    args = ["benchmark", "--datasets", "piped/PA_A", "--piped-root", str(root), "--seeds", "0",
            "--noise", "0.4", "--no-cost", "--image-size", "16", "--out", str(page),
            "--rows-json", str(rows_json)]
    assert CliRunner().invoke(app, args).exit_code == 0
    written = rows_json.read_text()
    result = CliRunner().invoke(app, [*args, "--resume", "--ablation-names", "keep 0.6"])
    assert result.exit_code == 0 and "resuming: 5 rows" in result.output
    import json

    rows = json.loads(rows_json.read_text())
    assert json.dumps(rows[:5]) == json.dumps(json.loads(written))  # kept as they were
    assert [r["condition"] for r in rows[5:]] == ["keep 0.6"]


def test_resume_without_rows_json_is_refused_before_any_work(tmp_path: Path):
    from typer.testing import CliRunner

    page = tmp_path / "page.md"
    result = CliRunner().invoke(app, ["benchmark", "--resume", "--out", str(page)])
    assert result.exit_code == 2 and "--resume needs --rows-json" in result.output
    assert "Traceback" not in result.output and not page.exists()


def test_grid_splits_walk_the_benchmark_grid_loading_each_data_set_once(tmp_path: Path):
    root = tiny_piped(tmp_path)
    walked = list(grid_splits("piped", noise_ratios=(0.0, 0.2), seeds=(0, 1), piped_root=root))
    assert [(s.name, n, seed) for s, _, n, seed in walked] == [
        (c, n, seed) for c in ("piped/PA_A", "piped/PA_B") for n in (0.0, 0.2) for seed in (0, 1)]
    assert len({id(data) for _, data, _, _ in walked}) == 2  # one load per data set
    spec, data, noise, seed = walked[3]
    split = spec.split(data, noise, seed)  # the benchmark's own split of that cell
    assert len(split.train_indices) > 0 and len(data) == 24


def test_a_study_script_reads_its_command_line_before_any_work(tmp_path: Path, capsys):
    from noisyclean.benchmark.study import run_study

    def never(*_):
        raise AssertionError("no split may be studied on a wrong command line")

    for argv in ([], ["a.json", "b.json"], ["--summary"], ["--rows", "x.json"]):
        with pytest.raises(SystemExit) as info:
            run_study(never, never, argv, "benchmarks/x_study.py")
        assert info.value.code == 2
        assert capsys.readouterr().err.strip() == (
            "usage: python benchmarks/x_study.py OUT.json | --summary ROWS.json")
    rows = tmp_path / "rows.json"
    rows.write_text('[{"noise": 0.1}, {"noise": 0.2}]', encoding="utf-8")
    run_study(never, lambda r: f"{len(r)} rows", ["--summary", str(rows)], "x_study.py")
    assert capsys.readouterr().out.strip() == "2 rows"
