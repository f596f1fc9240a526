"""The executors that run stage-1 jobs on this machine: in turn, or in a process pool."""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any

from noisyclean.executors.base import Executor


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
