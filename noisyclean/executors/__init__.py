"""Where stage-1 jobs run: :mod:`.base` (the contract), :mod:`.local` (serial and a process
pool) and :mod:`.ray` (a Ray cluster, an optional extra).

:func:`make_executor` turns the Purifier's ``executor=`` argument into an executor. The Ray
module is imported only when ``"ray"`` is asked for, so Ray stays optional; it imports
:mod:`.base`, never this module's names, so the package has no import circle.
"""

from __future__ import annotations

from typing import Any

from noisyclean.executors.base import Executor
from noisyclean.executors.local import ProcessExecutor, SerialExecutor

__all__ = ["Executor", "ProcessExecutor", "SerialExecutor", "make_executor"]


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
            from noisyclean.executors.ray import RayExecutor
        except ImportError as exc:
            raise ImportError(
                "executor='ray' needs Ray: install it with `pip install 'noisyclean[ray]'`."
            ) from exc
        return RayExecutor(**options)
    raise ValueError(
        f"unknown executor {spec!r}; choose 'serial', 'process', 'ray' or pass an Executor."
    )
