"""executor="ray" on a real local Ray instance: same results as serial, retries, clear failures.

One Ray instance (2 CPUs) is started for the module and stopped at its end. Ray's files go
to a short temporary folder (unix socket paths are limited to ~107 characters) that is
removed afterwards, and RAY_AUTH_MODE=disabled keeps it from writing ~/.ray.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from noisyclean import Purifier
from noisyclean.executors import make_executor
from noisyclean.samples import root_indices, to_numpy

ray = pytest.importorskip("ray")

from noisyclean.executors.ray import RayExecutor, SubmodelFailedError  # noqa: E402

TESTS = str(Path(__file__).resolve().parent)


# -- detectors and datasets the Ray workers import from this module ---------------------
def _claim(marker: Path) -> bool:
    """True for exactly one caller across all processes: the one that creates ``marker``."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


class FlakyDetector:
    """Distance to the training mean. Logs every fit to ``folder/fits.log`` (shared by all
    workers) and fails on purpose as ``mode`` says:

    ``raise_once`` / ``exit_once``: the first fit of the run raises / kills its process;
    ``raise_sample0`` / ``exit_sample0``: every fit on a subset holding sample 0 fails;
    ``budget``: fits beyond the number in ``folder/budget`` (if that file exists) raise.
    """

    def __init__(self, folder: str, mode: str = "never"):
        self.folder = folder
        self.mode = mode

    def _fail(self) -> None:
        if self.mode.startswith("exit"):
            os._exit(17)  # a dead worker: no exception, no cleanup
        raise RuntimeError("injected failure")

    def fit(self, dataset):
        folder = Path(self.folder)
        has0 = bool((root_indices(dataset) == 0).any())
        with (folder / "fits.log").open("a") as fh:
            fh.write(f"{int(has0)}\n")
        fits = len((folder / "fits.log").read_text().splitlines())
        if self.mode.endswith("_once") and _claim(folder / "failed"):
            self._fail()
        if self.mode.endswith("_sample0") and has0:
            self._fail()
        budget = folder / "budget"
        if self.mode == "budget" and budget.exists() and fits > int(budget.read_text()):
            raise RuntimeError("fit budget exhausted")
        self.mean_ = to_numpy(dataset).mean(axis=0)
        return self

    def score(self, dataset):
        return np.linalg.norm(to_numpy(dataset) - self.mean_, axis=1)


class PickleCountingDataset:
    """Feature vectors that count, in the driver, how often they are serialised."""

    pickles = 0

    def __init__(self, x: np.ndarray):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.x[i]

    def __getstate__(self) -> dict:
        type(self).pickles += 1
        return self.__dict__


def _square(v: int) -> int:
    return v * v


def _fits(folder: Path) -> list[str]:
    log = folder / "fits.log"
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def data() -> np.ndarray:
    rng = np.random.default_rng(0)
    far = rng.normal(size=(8, 4))
    far *= 8 / np.linalg.norm(far, axis=1, keepdims=True)
    return rng.permutation(np.vstack([rng.normal(size=(72, 4)), far]))


@pytest.fixture(scope="module")
def short_tmp():
    """A short private folder for Ray's sockets and logs, removed at the end."""
    path = tempfile.mkdtemp(prefix="nc-ray-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def worker_path():
    """Let Ray workers (started by the raylet, inheriting this environment) import this
    module, whose detectors the tasks unpickle."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (TESTS, old) if p)
    yield
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


@pytest.fixture(scope="module")
def ray_cluster(short_tmp, worker_path):
    """ONE local Ray instance (2 CPUs) shared by the module's tests."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=os.path.join(short_tmp, "shared"),
             logging_level="ERROR", log_to_driver=False)
    yield
    ray.shutdown()


# -- without a cluster ------------------------------------------------------------------
def test_missing_ray_gives_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    monkeypatch.delitem(sys.modules, "noisyclean.executors.ray", raising=False)
    with pytest.raises(ImportError, match=r"pip install 'noisyclean\[ray\]'"):
        make_executor("ray")


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="max_retries"):
        RayExecutor(max_retries=-1)
    with pytest.raises(ValueError, match="num_gpus"):
        RayExecutor(num_gpus=-1)


@pytest.mark.slow
def test_starts_and_stops_its_own_local_instance(short_tmp, worker_path):
    if ray.is_initialized():
        pytest.skip("needs a process where Ray is not initialised yet")
    executor = make_executor("ray", init_kwargs={
        "num_cpus": 2, "_temp_dir": os.path.join(short_tmp, "own"), "logging_level": "ERROR",
        "log_to_driver": False})
    assert isinstance(executor, RayExecutor)
    results = dict(executor.run(_square, [1, 2, 3, 4]))
    assert results == {0: 1, 1: 4, 2: 9, 3: 16}
    assert not ray.is_initialized()  # it started this instance, so it stopped it


# -- on the shared local instance -------------------------------------------------------
def test_same_results_as_serial_and_leaves_the_cluster_running(ray_cluster, data):
    serial = Purifier("knn", k=4, keep=0.8, progress=False).fit(data)
    on_ray = Purifier("knn", k=4, keep=0.8, executor="ray", progress=False).fit(data)
    assert np.array_equal(on_ray.scores_, serial.scores_, equal_nan=True)
    assert np.array_equal(on_ray.keep_indices_, serial.keep_indices_)
    assert ray.is_initialized()  # not started by the executor: not stopped by it


def test_the_dataset_is_serialised_once_not_once_per_task(ray_cluster, data):
    dataset = PickleCountingDataset(data)
    PickleCountingDataset.pickles = 0
    p = Purifier("knn", k=4, executor="ray", progress=False).fit(dataset)
    assert PickleCountingDataset.pickles == 1
    expected = Purifier("knn", k=4, progress=False).fit(data)
    assert np.array_equal(p.scores_, expected.scores_, equal_nan=True)


@pytest.mark.parametrize("mode", ["raise_once", "exit_once"])
def test_a_task_that_fails_once_is_retried_and_the_run_completes(ray_cluster, data, tmp_path,
                                                                 mode):
    serial = Purifier(functools.partial(FlakyDetector, str(tmp_path)), k=3,
                      progress=False).fit(data)
    (tmp_path / "fits.log").unlink()
    on_ray = Purifier(functools.partial(FlakyDetector, str(tmp_path), mode), k=3,
                      executor="ray", executor_options={"max_retries": 1},
                      progress=False).fit(data)
    assert (tmp_path / "failed").exists()   # the failure did happen
    assert len(_fits(tmp_path)) == 3 + 1    # one sub-model ran twice, the others once
    assert np.array_equal(on_ray.scores_, serial.scores_, equal_nan=True)
    assert np.array_equal(on_ray.keep_indices_, serial.keep_indices_)


@pytest.mark.parametrize("mode", ["raise_sample0", "exit_sample0"])
def test_a_sub_model_that_keeps_failing_stops_the_run_naming_it(ray_cluster, data, tmp_path,
                                                                mode):
    owner = int(Purifier(functools.partial(FlakyDetector, str(tmp_path)), k=3,
                         progress=False).fit(data).partition_[0])  # the sub-model of sample 0
    (tmp_path / "fits.log").unlink()
    p = Purifier(functools.partial(FlakyDetector, str(tmp_path), mode), k=3, executor="ray",
                 executor_options={"max_retries": 1}, progress=False)
    with pytest.raises(SubmodelFailedError, match=rf"sub-model {owner} failed on Ray after "
                       r"2 attempt\(s\)") as info:
        p.fit(data)
    assert info.value.index == owner and info.value.attempts == 2
    assert _fits(tmp_path).count("1") == 2  # sample 0's sub-model: first try and one retry
    if mode.startswith("raise"):
        assert "RuntimeError: injected failure" in str(info.value)
    assert not hasattr(p, "scores_")  # no consensus was formed without it


def test_detector_code_the_workers_cannot_import_is_named(ray_cluster, data, tmp_path,
                                                          monkeypatch):
    (tmp_path / "nc_unshipped_detector.py").write_text(
        "class Unshipped:\n"
        "    def fit(self, dataset):\n        return self\n"
        "    def score(self, dataset):\n        return [0.0] * len(dataset)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # importable here, not on the Ray workers
    from nc_unshipped_detector import Unshipped

    p = Purifier(Unshipped, k=2, executor="ray", executor_options={"max_retries": 0},
                 progress=False)
    with pytest.raises(SubmodelFailedError, match="cannot import the detector's code"):
        p.fit(data)
    monkeypatch.delitem(sys.modules, "nc_unshipped_detector")


def test_rows_cached_by_a_serial_run_are_not_recomputed_on_ray(ray_cluster, data, tmp_path):
    folder, cache = tmp_path / "log", tmp_path / "cache"
    folder.mkdir()
    factory = functools.partial(FlakyDetector, str(folder), "budget")
    (folder / "budget").write_text("2")
    with pytest.raises(RuntimeError, match="budget exhausted"):  # serial stops in sub-model 2
        Purifier(factory, k=4, cache_dir=cache, progress=False).fit(data)
    assert len(list(cache.glob("*/submodel_*.npy"))) == 2

    (folder / "budget").unlink()
    (folder / "fits.log").unlink()
    resumed = Purifier(factory, k=4, cache_dir=cache, executor="ray",
                       progress=False).fit(data)
    assert len(_fits(folder)) == 2  # only sub-models 2 and 3 were trained on Ray
    assert len(list(cache.glob("*/submodel_*.npy"))) == 4  # and their rows were cached

    fresh = Purifier(functools.partial(FlakyDetector, str(tmp_path)), k=4,
                     progress=False).fit(data)
    assert np.array_equal(resumed.scores_, fresh.scores_, equal_nan=True)
    assert np.array_equal(resumed.keep_indices_, fresh.keep_indices_)


def test_a_local_instance_without_the_requested_gpus_fails_fast(ray_cluster, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    with pytest.raises(RuntimeError, match=r"GPU=1 per task but the cluster has 0"):
        RayExecutor(num_gpus=1)._check_resources(started_locally=True)
    RayExecutor(num_gpus=0)._check_resources(started_locally=True)  # what fits passes
