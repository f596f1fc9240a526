"""Library code talks through ``logging`` (and the CLI through typer), never bare print()."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _library_files() -> list[Path]:
    files = list((REPO / "noisyclean").rglob("*.py"))
    for package in (REPO / "adapters").glob("*/noisyclean_*"):
        if package.is_dir():
            files += package.rglob("*.py")
    return sorted(files)


def test_no_bare_print_in_the_library():
    offenders = []
    for path in _library_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id == "print"):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}")
    assert len(_library_files()) > 20
    assert not offenders, f"use logging (or typer.echo in the CLI) instead of print: {offenders}"
