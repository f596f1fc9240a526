"""Where stage-1 jobs run. The Purifier only ever calls :meth:`Executor.run`.

An executor takes a function and a list of jobs and yields ``(position, result)`` as each
job finishes, in any order. The Purifier writes every result to the score cache the moment
it arrives, so any executor (serial, a process pool, a Ray cluster) resumes from the same
cache.
"""

from __future__ import annotations

import abc
import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any


class Executor(abc.ABC):
    """Runs independent jobs; yields ``(position, result)`` as they finish."""

    name: str = "executor"

    @abc.abstractmethod
    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Run ``fn(job)`` for every job; an exception in a job propagates to the caller."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class SerialExecutor(Executor):
    """One job after another in this process: the reference every other executor matches."""

    name = "serial"

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        for i, job in enumerate(jobs):
            yield i, fn(job)


def _cuda_device_count() -> int:
    torch = sys.modules.get("torch")
    try:
        return int(torch.cuda.device_count()) if torch is not None else 0
    except Exception:
        return 0


def _init_worker(threads: int, devices: Any) -> None:
    """Limit each worker's threads, and pin it to one GPU when there are GPUs."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(threads)
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get())


class ProcessExecutor(Executor):
    """A pool of worker processes: one per GPU when there are GPUs, else one per core.

    Workers are started with ``spawn`` (safe with torch and CUDA), so the detector factory
    and the dataset must be picklable: use a class or ``functools.partial`` rather than a
    lambda. Results equal the serial executor's because each job carries its own seed.
    """

    name = "process"

    def __init__(self, max_workers: int | None = None, start_method: str = "spawn"):
        self.max_workers = max_workers
        self.start_method = start_method

    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not jobs:
            return
        ctx = mp.get_context(self.start_method)
        gpus = _cuda_device_count()
        workers = self.max_workers or gpus or os.cpu_count() or 1
        workers = max(1, min(workers, len(jobs)))
        devices = None
        if gpus:
            devices = ctx.Manager().Queue()
            for w in range(workers):
                devices.put(w % gpus)
        threads = max(1, (os.cpu_count() or 1) // workers)
        _check_picklable(fn, jobs)
        with ProcessPoolExecutor(
            max_workers=workers, mp_context=ctx, initializer=_init_worker,
            initargs=(threads, devices),
        ) as pool:
            futures = {pool.submit(fn, job): i for i, job in enumerate(jobs)}
            try:
                for fut in as_completed(futures):
                    yield futures[fut], fut.result()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers})"


def _check_picklable(fn: Callable[[Any], Any], jobs: Sequence[Any]) -> None:
    import pickle

    try:
        pickle.dumps((fn, jobs[0]))
    except Exception as exc:
        raise TypeError(
            f"executor='process' must send the detector factory and the dataset to worker "
            f"processes, but they cannot be pickled ({exc}). Use a class or "
            "functools.partial instead of a lambda or local function, or executor='serial'."
        ) from exc


def make_executor(spec: str | Executor, **options: Any) -> Executor:
    """Resolve ``"serial"``, ``"process"``, ``"ray"`` or an :class:`Executor` instance."""
    if isinstance(spec, Executor):
        return spec
    if spec == "serial":
        return SerialExecutor()
    if spec == "process":
        return ProcessExecutor(**options)
    if spec == "ray":
        try:
            from noisyclean.ray_executor import RayExecutor
        except ImportError as exc:
            raise ImportError(
                "executor='ray' needs Ray: install it with `pip install 'noisyclean[ray]'`."
            ) from exc
        return RayExecutor(**options)
    raise ValueError(
        f"unknown executor {spec!r}; choose 'serial', 'process', 'ray' or pass an Executor."
    )
