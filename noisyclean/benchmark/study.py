"""What the study scripts in ``benchmarks/`` share: a row per cell of the benchmark's grid.

A study measures something the benchmark's page does not (where the gap goes, how alike a
data set's images are) on exactly the benchmark's splits, with the budget detector. Its
script defines ``study_split(spec, data, factory, noise, seed) -> dict`` and
``summary(rows) -> str`` and hands both to :func:`run_study`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from noisyclean.benchmark.datasets import grid_splits
from noisyclean.benchmark.settings import BUDGET_DETECTOR_KWARGS


def run_study(study_split: Callable[..., dict], summary: Callable[[list[dict]], str],
              argv: Sequence[str], script: str) -> None:
    """``python benchmarks/<script> OUT.json`` runs ``study_split`` on every cell of the grid
    (both data sets, every noise ratio and seed), prints each row, writes the rows to
    ``OUT.json`` atomically and prints ``summary(rows)``; ``--summary ROWS.json`` prints the
    summary of rows already written. Any other command line gets one usage line and exit
    status 2. It speaks through ``typer.echo``, as the CLI does: this is a script's face.
    """
    import typer

    from noisyclean._io import atomic_write_json
    from noisyclean.plugins import detector_factory

    args = list(argv)
    if len(args) == 2 and args[0] == "--summary":
        typer.echo(summary(json.loads(Path(args[1]).read_text(encoding="utf-8"))))
        return
    if len(args) != 1 or args[0].startswith("-"):
        name = Path(script).name
        typer.echo(f"usage: python benchmarks/{name} OUT.json | --summary ROWS.json",
                   err=True)
        sys.exit(2)
    factory = detector_factory("patchknn", **BUDGET_DETECTOR_KWARGS)
    rows: list[dict[str, Any]] = []
    for spec, data, noise, seed in grid_splits():
        rows.append(study_split(spec, data, factory, noise, seed))
        typer.echo(rows[-1])  # progress: each cell's row as it is done
    atomic_write_json(args[0], rows)
    typer.echo(summary(rows))
