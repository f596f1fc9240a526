"""The checks a fit can make before any work: the count to keep, the executor, the detector.

Why a module of its own: a mistake found after the first features are extracted costs the
user minutes (and leaves a half-filled score cache behind), while every check here needs
only the arguments and the dataset's size. :meth:`~noisyclean.Purifier.fit` calls
:func:`check_before_fit` right after it knows the number of samples.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from noisyclean import selection
from noisyclean.executors import Executor, make_executor

EXECUTOR_NAMES = ("serial", "process", "ray")


def check_executor(spec: Any, options: dict[str, Any] | None) -> None:
    """Refuse an unknown executor name, options it does not take, or Ray when absent.

    Ray is only looked up (starting it may take seconds or join a cluster); the others are
    built, which checks their options and costs nothing.
    """
    if isinstance(spec, Executor):
        return
    if spec not in EXECUTOR_NAMES:
        raise ValueError(f"unknown executor={spec!r}; choose one of {', '.join(EXECUTOR_NAMES)} "
                         "or pass an Executor instance.")
    if spec == "ray":
        if importlib.util.find_spec("ray") is None:
            raise ImportError(
                "executor='ray' needs Ray: install it with `pip install 'noisyclean[ray]'`.")
        return
    try:
        make_executor(spec, **(options or {}))
    except TypeError as exc:
        raise ValueError(f"executor_options={options!r} do not fit executor={spec!r}: "
                         f"{exc}") from None


def check_detector(probe: Any, detector_kwargs: dict[str, Any] | None) -> None:
    """Build the detector once, so that arguments it refuses are reported now.

    The instance is the probe's, kept for the whole-image view, so this costs nothing more
    than that view would. With ``detector_kwargs`` a refusal names them.
    """
    try:
        probe.instance()
    except (TypeError, ValueError) as exc:
        if not detector_kwargs:
            raise
        raise ValueError(
            f"detector_kwargs={detector_kwargs!r} are not accepted by {probe.name}: {exc}"
        ) from None


def check_before_fit(purifier: Any, probe: Any, n: int) -> None:
    """Everything :meth:`~noisyclean.Purifier.fit` can check before extracting features."""
    selection.validate_keep_count(purifier.keep_count, n)
    check_executor(purifier.executor, purifier.executor_options)
    check_detector(probe, purifier.detector_kwargs if isinstance(purifier.detector, str)
                   else None)
