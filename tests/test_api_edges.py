"""The API at the edges: tables, NaN and text, the keep rule, and damaged run folders."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from noisyclean import Purifier
from noisyclean.manifest_check import ManifestError

pd = pytest.importorskip("pandas")


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    values = rng.normal(size=(30, 3))
    values[[4, 17]] += 12.0  # two rows far from the rest
    return pd.DataFrame(values, columns=["a", "b", "c"],
                        index=[f"part-{i:02d}" for i in range(30)])


def test_dataframe_rows_by_position_with_the_index_as_ids(table):
    p = Purifier("knn", k=3, keep=0.9, progress=False).fit(table)
    assert p.ids_ == list(table.index)
    dropped = {p.ids_[i] for i in p.drop_indices_}
    assert {"part-04", "part-17"} <= dropped
    assert p.subset(table).ids == [p.ids_[i] for i in p.keep_indices_]
    assert p.fit_final(table) is not None


def test_dataframe_with_nan_names_the_rows(table):
    table.iloc[5, 1] = np.nan
    table.iloc[9, 0] = np.inf
    with pytest.raises(ValueError, match=r"NaN or inf in 2 row\(s\): part-05, part-09"):
        Purifier("knn", progress=False).fit(table)


def test_array_with_nan_names_the_positions():
    x = np.random.default_rng(1).normal(size=(20, 2))
    x[[3, 11], 0] = np.nan
    with pytest.raises(ValueError, match=r"the array holds NaN or inf in 2 row\(s\): 3, 11"):
        Purifier("knn", progress=False).fit(x)


def test_text_in_a_table_is_refused_clearly(table):
    table["label"] = "ok"
    with pytest.raises(TypeError, match=r"non-numeric values \(row part-00: 'ok'\)"):
        Purifier("knn", progress=False).fit(table)


def test_list_of_strings_is_refused_clearly():
    with pytest.raises(TypeError, match="list of strings.*ImageFolder"):
        Purifier("knn", progress=False).fit(["a.png", "b.png", "c.png"])


def test_duplicate_index_labels_are_refused(table):
    table.index = ["same"] * len(table)
    with pytest.raises(ValueError, match="duplicate labels"):
        Purifier("knn", progress=False).fit(table)


def test_keep_one_is_refused_and_the_count_is_separate():
    x = np.random.default_rng(2).normal(size=(12, 2))
    with pytest.raises(ValueError, match=r"write keep=1\.0 to keep every sample, or keep_count=1"):
        Purifier("knn", keep=1, progress=False).fit(x)
    assert Purifier("knn", keep=1.0, progress=False).fit(x).n_keep_ == 12
    counted = Purifier("knn", keep_count=1, progress=False).fit(x)
    assert counted.n_keep_ == 1
    assert counted.reselect(keep=0.5).n_keep_ == 6 and counted.keep_count is None
    assert counted.reselect(keep_count=4).n_keep_ == 4


def test_keep_count_survives_save_and_load(tmp_path):
    x = np.random.default_rng(3).normal(size=(12, 2))
    Purifier("knn", keep_count=5, progress=False).fit(x).save(tmp_path / "run")
    loaded = Purifier.load(tmp_path / "run")
    assert loaded.keep_count == 5 and loaded.n_keep_ == 5


@pytest.fixture
def saved(tmp_path):
    x = np.random.default_rng(4).normal(size=(15, 2))
    Purifier("knn", progress=False).fit(x).save(tmp_path / "run")
    return tmp_path / "run"


@pytest.mark.parametrize(("change", "says"), [
    ({"n_samples": 14}, "lists 15 ids for n_samples=14"),
    ({"drop_indices": [0]}, "do not split the 15 samples"),
    ({"n_keep": 3}, "n_keep=3 but keep_indices lists 12"),
    ({"ids": "abc"}, "ids must be a list of strings"),
])
def test_load_names_the_file_and_what_is_wrong(saved, change, says):
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest.update(change)
    (saved / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ManifestError, match=f"{saved / 'manifest.json'}.*{says}"):
        Purifier.load(saved)


def test_load_refuses_a_score_file_from_another_run(saved, tmp_path):
    other = tmp_path / "other"
    Purifier("knn", progress=False).fit(np.zeros((9, 2)) + np.arange(9)[:, None]).save(other)
    shutil.copy(other / "scores.npz", saved / "scores.npz")
    with pytest.raises(ManifestError, match="scores.npz: scores has shape"):
        Purifier.load(saved)


def test_a_count_saved_as_an_integer_keep_loads_as_keep_count(saved):
    manifest = json.loads((saved / "manifest.json").read_text())
    manifest["config"]["keep"] = 12
    del manifest["config"]["keep_count"]
    (saved / "manifest.json").write_text(json.dumps(manifest))
    loaded = Purifier.load(saved)
    assert (loaded.keep, loaded.keep_count) == (1.0, 12)
    assert loaded.reselect(normalize="zscore").n_keep_ == 12
