"""The ``noisyclean`` command line. Every command is a thin face over a documented call."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

import noisyclean

app = typer.Typer(
    name="noisyclean",
    help="Purify contaminated training sets for unsupervised anomaly detection.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"noisyclean {noisyclean.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True,
                           help="Show the version and exit.")
    ] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log more detail.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


@app.command("detectors")
def detectors_cmd() -> None:
    """List the registered detectors, the distribution each came from, and what it does."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="noisyclean detectors")
    table.add_column("name", style="bold")
    table.add_column("distribution")
    table.add_column("description")
    for info in noisyclean.list_detectors():
        table.add_row(info.name, info.distribution, info.description)
    Console(width=140).print(table)


def main() -> None:
    """Entry point of the ``noisyclean`` script."""
    app()
