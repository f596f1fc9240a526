"""Write the benchmark page from rows already measured, training nothing.

For a grid that ran as several commands (data sets run apart, or a run cut short on a loaded
machine): the rows of every file are merged, one per (dataset, noise, seed, condition), the
first file winning, and the page says which commands produced them. Run from the
repository root::

    python benchmarks/render_page.py A.json B.json --command "noisyclean benchmark ..." \\
        --command "noisyclean benchmark ..." --seconds 1800 [--cost COST.json] \\
        [--notes benchmarks/notes.md] [--out docs/benchmarks.md] [--rows-out benchmarks/rows.json]

``--cost`` is a JSON list of :func:`noisyclean.benchmark.cold_timing` results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from noisyclean._io import atomic_write_json
from noisyclean.benchmark import row_key, write_markdown


def merge_rows(files: list[Path]) -> list[dict]:
    """Every file's rows, one per (dataset, noise, seed, condition); the first file wins."""
    merged: dict[tuple, dict] = {}
    for path in files:
        for row in json.loads(path.read_text(encoding="utf-8")):
            merged.setdefault(row_key(row), row)
    return list(merged.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("rows", nargs="+", type=Path, help="rows JSON files")
    parser.add_argument("--command", action="append", required=True,
                        help="a command that produced the rows (repeat for each)")
    parser.add_argument("--seconds", type=float, required=True,
                        help="the wall time of those commands, in seconds")
    parser.add_argument("--cost", type=Path, help="JSON list of cold_timing results")
    parser.add_argument("--notes", type=Path, help="Markdown appended to the page")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks.md"))
    parser.add_argument("--rows-out", type=Path, default=Path("benchmarks/rows.json"))
    args = parser.parse_args()
    rows = merge_rows(args.rows)
    cost = json.loads(args.cost.read_text(encoding="utf-8")) if args.cost else None
    notes = args.notes.read_text(encoding="utf-8") if args.notes else ""
    atomic_write_json(args.rows_out, rows)
    write_markdown(rows, args.out, command="\n".join(args.command), seconds=args.seconds,
                   notes=notes, cost=cost)
    print(f"wrote {args.out} and {args.rows_out} ({len(rows)} rows)")


if __name__ == "__main__":
    main()
