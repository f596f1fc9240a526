"""Progress for long steps: a live bar on a terminal, log lines everywhere else.

A bar in a CI log or a file is noise, so the live display appears only when standard error
is a terminal; otherwise each finished step is one ``logging`` line. ``enabled=False``
(``--quiet``) silences both.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger("noisyclean")


@contextmanager
def progress(total: int, description: str, enabled: bool = True) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, note="")``; render a bar (TTY) or log each step."""
    if not enabled:
        yield lambda n=1, note="": None
        return
    if sys.stderr.isatty():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TimeRemainingColumn(), transient=False,
        ) as bar:
            task = bar.add_task(description, total=total)

            def advance(n: int = 1, note: str = "") -> None:
                bar.update(task, advance=n, description=f"{description} {note}".strip())

            yield advance
        return
    done = 0

    def log_step(n: int = 1, note: str = "") -> None:
        nonlocal done
        done += n
        logger.info("%s: %d/%d%s", description, done, total, f" {note}" if note else "")

    yield log_step
