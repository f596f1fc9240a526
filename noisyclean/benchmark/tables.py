"""The page's Markdown tables, each built from rows (see :mod:`noisyclean.benchmark.summary`).

Every table takes the rows of one data set or family; :func:`headline_table` takes them all.
A cell is a mean over seeds (and, for a family, over its data sets).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from noisyclean.benchmark.conditions import (
    DEFAULT,
    NOISY,
    ORACLE,
    PAPER,
    REFERENCE_NAME,
    is_baseline,
)
from noisyclean.benchmark.datasets import FAMILY_TITLES, family_of
from noisyclean.benchmark.summary import (
    METRIC_COLUMNS,
    change_from_oracle,
    gap_closed,
    mean_of,
    paired_wins,
    rows_of,
    summarize,
)

GAP_GOAL, CLEAN_LOSS_LIMIT = 0.8, 0.01
"""Issue 13's bar: close 80 % of the gap at every noise ratio, lose at most 0.01 on clean data."""


def _line(cells: Sequence[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _header(cells: Sequence[str]) -> list[str]:
    return [_line(cells), "|" + "---|" * len(cells)]


def _noises(rows: Sequence[dict[str, Any]]) -> list[float]:
    return sorted({r["noise"] for r in rows})


def _conditions(rows: Sequence[dict[str, Any]], purifying_only: bool = True) -> list[str]:
    names = dict.fromkeys(r["condition"] for r in rows)
    return [c for c in names if not (purifying_only and is_baseline(c))]


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def gap_or_change(summary: dict, noise: float, condition: str, auroc_suffix: str = "") -> str:
    """The share of the gap closed, or at noise 0 (no gap) the change against the oracle."""
    gap = gap_closed(summary, noise, condition)
    if gap is not None:
        return f"{gap:.0%}"
    change = change_from_oracle(summary, noise, condition)
    return "n/a" if change is None else f"{change:+.3f}{auroc_suffix}"


def auroc_with_gap(summary: dict, noise: float, condition: str) -> str:
    """``condition``'s mean image AUROC with the gap closed (or the change) in brackets."""
    auroc = mean_of(summary, noise, condition)
    return "" if auroc is None else f"{auroc:.3f} ({gap_or_change(summary, noise, condition)})"


def wins_cell(result: tuple[int, int, float] | None) -> str:
    """``wins/splits (mean difference)``, or empty when no split had both conditions."""
    return "" if result is None else f"{result[0]}/{result[1]} ({result[2]:+.3f})"


def gap_table(rows: Sequence[dict[str, Any]]) -> str:
    """Per purifying condition and noise: the share of the gap closed (the change in image
    AUROC at noise 0)."""
    summary, noises = summarize(rows), _noises(rows)
    lines = _header(["condition", *(f"noise {n:.1f}" for n in noises)])
    for cond in _conditions(rows):
        lines.append(_line([cond, *(gap_or_change(summary, n, cond, " AUROC") for n in noises)]))
    return "\n".join(lines)


def diagnostic_table(rows: Sequence[dict[str, Any]]) -> str:
    """The purification diagnostic beside the final result, per condition and contaminated
    noise ratio: final image AUROC and gap closed; how well the selection scores (and the
    sub-models' consensus alone) separate the training defects from the training normals;
    the share of the training defects dropped, and the defect share of what was kept."""
    summary = summarize(rows)
    lines = _header(["condition", "noise", "final image AUROC", "gap closed",
                     "selection AUROC", "consensus AUROC", "anomaly recall",
                     "kept anomaly frac."])
    for cond in _conditions(rows):
        for n in (n for n in _noises(rows) if n > 0):
            if (n, cond) not in summary:
                continue
            lines.append(_line([
                cond, f"{n:.1f}", _fmt(mean_of(summary, n, cond), ".3f"),
                gap_or_change(summary, n, cond),
                *(_fmt(mean_of(summary, n, cond, col), ".3f") for col in (
                    "selection_auroc", "consensus_auroc", "anomaly_recall",
                    "kept_anomaly_fraction")),
            ]))
    return "\n".join(lines)


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of mean ± std per noise ratio and condition, every metric."""
    summary = summarize(rows)
    lines = _header(["noise", "condition", *(label for _, label in METRIC_COLUMNS),
                     "gap closed"])
    for noise in _noises(rows):
        for cond in _conditions(rows, purifying_only=False):
            stats = summary.get((noise, cond))
            if not stats:
                continue
            cells = [f"{noise:.1f}", cond]
            for col, _ in METRIC_COLUMNS:
                digits = 1 if col.endswith("_s") else 3
                cells.append(f"{stats[col][0]:.{digits}f} ± {stats[col][1]:.{digits}f}"
                             if col in stats else "")
            gap = None if is_baseline(cond) else gap_closed(summary, noise, cond)
            cells.append(_fmt(gap, ".0%"))
            lines.append(_line(cells))
    return "\n".join(lines)


def per_dataset_table(rows: Sequence[dict[str, Any]]) -> str:
    """One line per data set of a family and noise ratio: the baselines' and the main
    purifying conditions' image AUROC (gap closed), with the default's diagnostic."""
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    shown = [c for c in (DEFAULT, PAPER, REFERENCE_NAME) if any(
        r["condition"] == c for r in rows)]
    lines = _header(["data set", "noise", NOISY, ORACLE, *shown,
                     f"{DEFAULT} selection AUROC", f"{DEFAULT} anomaly recall"])
    for name in names:
        summary = summarize(rows_of(rows, name))
        for n in _noises(rows):
            cells = [name, f"{n:.1f}", *(_fmt(mean_of(summary, n, c), ".3f")
                                         for c in (NOISY, ORACLE))]
            cells += [auroc_with_gap(summary, n, cond) for cond in shown]
            cells += [_fmt(mean_of(summary, n, DEFAULT, col), ".3f")
                      for col in ("selection_auroc", "anomaly_recall")]
            lines.append(_line(cells))
    return "\n".join(lines)


def _headline_groups(rows: Sequence[dict[str, Any]]) -> list[tuple[str, list[dict]]]:
    """(label, rows) per family, then per data set of families with several."""
    names = list(dict.fromkeys(r.get("dataset", "magnetic-tile") for r in rows))
    groups = []
    for family in dict.fromkeys(family_of(n) for n in names):
        members = [n for n in names if family_of(n) == family]
        title = FAMILY_TITLES.get(family, family)
        if len(members) > 1:
            title += f" (mean of {len(members)} classes)"
        groups.append((title, rows_of(rows, family)))
        if len(members) > 1:
            groups += [(n, rows_of(rows, n)) for n in members]
    return groups


def headline_table(rows: Sequence[dict[str, Any]], condition: str = DEFAULT) -> str:
    """Per data set: ``condition``'s change at noise 0 and gap closed at each contaminated
    noise ratio, its selection AUROC, whether it meets issue 13's bar, and, paired by split,
    how often it beats the paper's recipe, noisy training and the released setting."""
    noises = _noises(rows)
    dirty = [n for n in noises if n > 0]
    against = [c for c in (PAPER, NOISY, REFERENCE_NAME) if any(
        r["condition"] == c for r in rows)]
    lines = _header([
        "data set", *(["change at noise 0.0"] if 0.0 in noises else []),
        *(f"gap closed at {n:.1f}" for n in dirty),
        "selection AUROC at " + " / ".join(f"{n:.1f}" for n in dirty),
        "meets the bar", *(f"beats {c} (paired)" for c in against)])
    for title, group in _headline_groups(rows):
        summary = summarize(group)
        change = change_from_oracle(summary, 0.0, condition) if 0.0 in noises else None
        gaps = [gap_closed(summary, n, condition) for n in dirty]
        met = (all(g is not None and g >= GAP_GOAL for g in gaps)
               and (change is None or change >= -CLEAN_LOSS_LIMIT))
        cells = [title, *([_fmt(change, "+.3f")] if 0.0 in noises else []),
                 *(_fmt(g, ".0%") for g in gaps),
                 " / ".join(_fmt(mean_of(summary, n, condition, "selection_auroc"), ".3f")
                            for n in dirty),
                 "yes" if met else "no",
                 *(wins_cell(paired_wins(group, condition, c)) for c in against)]
        lines.append(_line(cells))
    return "\n".join(lines)


def ablation_table(rows: Sequence[dict[str, Any]]) -> str:
    """Image AUROC of every condition, with the gap it closes, in one compact table.

    Each cell is the mean over seeds with, in brackets, the share of the noisy-to-oracle gap
    closed (at noise 0, where there is no gap, the change against training on everything).
    Then, at noise 0.2 (the middle of the grid) when it ran, the selection AUROC, the
    anomaly recall and the stage-1 seconds; last, paired by split over the contaminated
    splits, how often the condition beats the default.
    """
    summary = summarize(rows)
    noises = _noises(rows)
    mid = 0.2 if 0.2 in noises else noises[-1]
    lines = _header(["strategy", *(f"noise {n:.1f}" for n in noises),
                     f"selection AUROC at {mid:.1f}", f"anomaly recall at {mid:.1f}",
                     f"stage 1 s at {mid:.1f}", f"beats {DEFAULT} (paired)"])
    for cond in _conditions(rows, purifying_only=False):
        if is_baseline(cond):
            cells = [_fmt(mean_of(summary, n, cond), ".3f") for n in noises]
            lines.append(_line([cond, *cells, "", "", "", ""]))
            continue
        cells = [auroc_with_gap(summary, n, cond) for n in noises]
        wins = "" if cond == DEFAULT else wins_cell(paired_wins(rows, cond, DEFAULT))
        at_mid = [_fmt(mean_of(summary, mid, cond, col), f".{digits}f") for col, digits in
                  (("selection_auroc", 3), ("anomaly_recall", 2), ("stage1_s", 1))]
        lines.append(_line([cond, *cells, *at_mid, wins]))
    return "\n".join(lines)
