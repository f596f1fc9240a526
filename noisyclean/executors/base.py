"""The executor contract. The Purifier only ever calls :meth:`Executor.run`.

An executor takes a function and a list of jobs and yields ``(position, result)`` as each
job finishes, in any order. The Purifier writes every result to the score cache the moment
it arrives, so any executor (serial, a process pool, a Ray cluster) resumes from the same
cache.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator, Sequence
from typing import Any


class Executor(abc.ABC):
    """Runs independent jobs; yields ``(position, result)`` as they finish."""

    name: str = "executor"

    @abc.abstractmethod
    def run(self, fn: Callable[[Any], Any], jobs: Sequence[Any]) -> Iterator[tuple[int, Any]]:
        """Run ``fn(job)`` for every job; an exception in a job propagates to the caller."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
