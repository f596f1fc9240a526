"""Stage 1 on a Ray cluster: each sub-model's fit and score runs as one Ray task.

The k sub-models are independent, so a cluster with several GPUs trains them at once. Ray
does the scheduling, the placement on GPUs and the retries; this module only maps the
executor contract onto Ray tasks:

- the dataset travels once: it is put into Ray's object store a single time and every task
  receives a reference to it, instead of a pickled copy per task;
- rows are yielded the moment a task finishes (``ray.wait``), so the Purifier writes each
  one to the score cache at once: a run stopped here resumes on any executor, and a finished
  sub-model is never computed again;
- a task that dies (worker crash, out of memory, lost node) or raises is retried
  ``max_retries`` times by Ray; a sub-model that still fails stops the run with
  :class:`SubmodelFailedError` naming it. It is never dropped from the consensus in silence.

Ray is an optional extra (``pip install 'noisyclean[ray]'``); importing this module without
it raises ImportError, which :func:`noisyclean.executors.make_executor` turns into that hint.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import ray

from noisyclean.executors.base import Executor

logger = logging.getLogger(__name__)


class SubmodelFailedError(RuntimeError):
    """A sub-model failed on every attempt Ray was allowed, so the run cannot go on.

    Attributes:
        index: the sub-model (``SubmodelJob.index``) that failed.
        attempts: how many times it was run.
    """

    def __init__(self, index: int, attempts: int, message: str):
        super().__init__(message)
        self.index = index
        self.attempts = attempts


def _with_dataset(job: Any, dataset: Any) -> Any:
    """A copy of ``job`` whose ``dataset`` is replaced (the original job is left untouched)."""
    if dataclasses.is_dataclass(job) and not isinstance(job, type):
        return dataclasses.replace(job, dataset=dataset)
    out = copy.copy(job)
    out.dataset = dataset
    return out


def _call(fn: Callable[[Any], Any], job: Any, has_dataset: bool, dataset: Any) -> Any:
    """The body of every Ray task. Ray resolves ``dataset`` (a top-level ObjectRef argument)
    from the object store before calling, so here it is the dataset itself."""
    if has_dataset:
        job = _with_dataset(job, dataset)
    return fn(job)


_ray_call = ray.remote(_call)


def _describe(exc: BaseException) -> tuple[BaseException, str]:
    """The underlying error of a Ray failure, and a one-line account of it."""
    cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
    root = cause if isinstance(cause, BaseException) else exc
    text = str(root).strip().splitlines()
    first = text[0].rstrip(".") if text else ""
    return root, f"{type(root).__name__}: {first}" if first else type(root).__name__


class RayExecutor(Executor):
    """Run each stage-1 job as a Ray task, on a local Ray instance or an existing cluster.

    Args:
        address: the cluster to connect to (``"auto"`` for one started with ``ray start`` on
            this machine, ``"ray://host:10001"`` for Ray Client, or a GCS address). ``None``
            honours ``RAY_ADDRESS`` and otherwise starts a local Ray instance on this machine.
            If Ray is already initialised in this process, that connection is used as is.
        num_cpus: CPUs each task requests; Ray sets the task's ``OMP_NUM_THREADS`` to it
            (unless it is set already).
        num_gpus: GPUs each task requests (``1`` for one GPU per sub-model, ``0.5`` to pack
            two small sub-models on one GPU). Ray sets ``CUDA_VISIBLE_DEVICES`` for the task,
            so a detector simply uses ``"cuda"``.
        max_retries: how many times a failed task is run again, whether its worker died (a
            crash, ``os._exit``, a lost node) or it raised. ``0`` never retries.
        retry_exceptions: ``True`` retries a task that raised; ``False`` retries only worker
            deaths; a list of exception classes retries only those.
        init_kwargs: extra keyword arguments for ``ray.init`` (``num_cpus`` and
            ``num_gpus`` of a local instance, ``runtime_env`` to ship your detector's code to
            the workers, ``_temp_dir``, ...).
        remote_options: extra per-task options for Ray (``memory``, ``resources``,
            ``accelerator_type``, ``scheduling_strategy``, ``runtime_env``, ...).

    The executor shuts down only what it started: a Ray instance it started (or a
    connection it opened) is closed when :meth:`run` ends; one you started is left running.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        max_retries: int = 2,
        retry_exceptions: bool | Sequence[type[BaseException]] = True,
        init_kwargs: dict[str, Any] | None = None,
        remote_options: dict[str, Any] | None = None,
    ):
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be an integer >= 0, got {max_retries!r}")
        if num_cpus < 0 or num_gpus < 0:
            raise ValueError(
                f"num_cpus and num_gpus must be >= 0, got num_cpus={num_cpus}, "
                f"num_gpus={num_gpus}"
            )
        if not isinstance(retry_exceptions, bool):
            retry_exceptions = list(retry_exceptions)
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.max_retries = max_retries
        self.retry_exceptions = retry_exceptions
        self.init_kwargs = dict(init_kwargs or {})
        self.remote_options = dict(remote_options or {})

    def __repr__(self) -> str:
        return (
            f"RayExecutor(address={self.address!r}, num_cpus={self.num_cpus}, "
            f"num_gpus={self.num_gpus}, max_retries={self.max_retries})"
        )

    # -- connection ---------------------------------------------------------------------
    def _connect(self) -> bool:
        """Make sure Ray is initialised; True when this call did it (and must undo it)."""
        if ray.is_initialized():
            if self.address is not None:
                logger.info("Ray is already initialised in this process; using that "
                            "connection, not address=%r", self.address)
            return False
        kwargs: dict[str, Any] = {}
        if self.address is None:
            kwargs["include_dashboard"] = False  # a local instance for one run needs none
        kwargs.update(self.init_kwargs)
        ray.init(address=self.address, **kwargs)
        return True

    def _check_resources(self, started_locally: bool) -> None:
        """Fail fast when no node could ever run a task, instead of waiting forever."""
        total = ray.cluster_resources()
        if self.num_gpus == 0 and total.get("GPU", 0) > 0:
            logger.warning(
                "the Ray cluster has %s GPU(s) but RayExecutor(num_gpus=0) asks for none: Ray "
                "then neither places tasks on GPUs nor hides them, so a detector that uses CUDA "
                "runs every sub-model on the first GPU. Pass num_gpus=1 (or a fraction).",
                total["GPU"])
        missing = [
            f"{name}={want} per task but the cluster has {total.get(name, 0)}"
            for name, want in (("CPU", self.num_cpus), ("GPU", self.num_gpus))
            if want > total.get(name, 0)
        ]
        if not missing:
            return
        message = (
            f"RayExecutor asks for {'; '.join(missing)}. Lower num_cpus/num_gpus, or run on "
            "a cluster that has them (address=...)."
        )
        if started_locally and self.address is None and not os.environ.get("RAY_ADDRESS"):
            raise RuntimeError(message)  # a local instance never grows
        logger.warning("%s Tasks will wait until an autoscaler adds such nodes.", message)

    # -- running ------------------------------------------------------------------------
    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        if not jobs:
            return
        started = self._connect()
        try:
            self._check_resources(started)
            yield from self._run(fn, jobs)
        finally:
            if started:
                ray.shutdown()

    def _put_datasets(self, jobs: Sequence[Any]) -> dict[int, Any]:
        """One object-store reference per distinct dataset (by identity), put once."""
        refs: dict[int, Any] = {}
        for job in jobs:
            if not hasattr(job, "dataset") or id(job.dataset) in refs:
                continue
            try:
                refs[id(job.dataset)] = ray.put(job.dataset)
            except Exception as exc:
                raise TypeError(
                    f"executor='ray' must send the dataset ({type(job.dataset).__name__}) to "
                    f"the Ray workers, but it cannot be serialised ({exc}). Datasets that "
                    "hold file paths or arrays work; open files, locks and sockets do not."
                ) from exc
        return refs

    def _run(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        refs = self._put_datasets(jobs)
        pending: dict[Any, int] = {}
        for pos, job in enumerate(jobs):
            index = getattr(job, "index", pos)
            options = {
                "num_cpus": self.num_cpus,
                "num_gpus": self.num_gpus,
                "max_retries": self.max_retries,
                "retry_exceptions": self.retry_exceptions,
                "name": f"noisyclean-submodel-{index}",
                **self.remote_options,
            }
            if hasattr(job, "dataset"):
                light = _with_dataset(job, None)
                ref = _ray_call.options(**options).remote(fn, light, True, refs[id(job.dataset)])
            else:
                ref = _ray_call.options(**options).remote(fn, job, False, None)
            pending[ref] = pos
        try:
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                ref = ready[0]
                pos = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    raise self._failure(jobs[pos], pos, exc) from exc
                if isinstance(value, np.ndarray) and not value.flags.writeable:
                    value = value.copy()  # detach from the read-only object-store buffer
                yield pos, value
        finally:
            for ref in pending:  # on an error or an early stop, free the GPUs at once
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # already finished, or the cluster is gone
                    logger.debug("could not cancel a Ray task", exc_info=True)

    def _failure(self, job: Any, pos: int, exc: BaseException) -> SubmodelFailedError:
        index = getattr(job, "index", pos)
        root, reason = _describe(exc)
        raised = isinstance(exc, ray.exceptions.RayTaskError)
        if not raised or self.retry_exceptions is True:
            retried = True
        elif self.retry_exceptions is False:
            retried = False
        else:
            retried = isinstance(root, tuple(self.retry_exceptions))
        if isinstance(exc, ray.exceptions.TaskCancelledError):
            retried = False
        attempts = 1 + self.max_retries if retried else 1
        hint = ""
        if isinstance(root, ImportError) or "No module named" in reason:
            hint = (
                " The Ray workers cannot import the detector's code: install it on every "
                "node, or ship it with init_kwargs={'runtime_env': {'py_modules': [...]}} "
                "(or {'working_dir': ...})."
            )
        message = (
            f"sub-model {index} failed on Ray after {attempts} attempt(s) "
            f"(max_retries={self.max_retries}): {reason}.{hint} The run stops rather than "
            f"leave sub-model {index} out of the consensus. Sub-models that finished are kept "
            "in the score cache when cache_dir is set, so running again after fixing the "
            "cause recomputes only the rest."
        )
        return SubmodelFailedError(index, attempts, message)
