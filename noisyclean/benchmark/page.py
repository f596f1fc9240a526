"""The benchmark page: the command, the machine, the headline, one section per data set.

:func:`write_markdown` assembles it from rows: the headline table (every data set), then per
data set family (Magnetic Tile; PIPED, averaged over its classes and also shown per class)
the gap closed, the purification diagnostic and every metric, then the cost of purification,
the ablations when they ran, and the notes.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noisyclean.benchmark.conditions import DEFAULT, main_condition_names
from noisyclean.benchmark.datasets import FAMILY_TITLES, MTD, PIPED_FAMILY, family_of
from noisyclean.benchmark.summary import rows_of
from noisyclean.benchmark.tables import (
    CLEAN_LOSS_LIMIT,
    GAP_GOAL,
    ablation_table,
    diagnostic_table,
    gap_table,
    headline_table,
    markdown_table,
    per_dataset_table,
)

PROTOCOLS = {
    MTD: "30 % of the 952 normals and half of each of the five defect types are held out "
         "for test; at noise 0.4 there are too few defects left, so the training normals "
         "are reduced (291 normals and 194 defects).",
    PIPED_FAMILY: "per class, a third of the 48 normals (16) and half of the 48 impurities "
                  "(24) are held out for test; training holds the other 32 normals and 0, 4, "
                  "8 or 21 impurities at noise 0, 0.1, 0.2 and 0.4. Each class is its own "
                  "data set; the family's numbers are means over its classes.",
}


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def cost_section(cost: dict[str, Any] | Sequence[dict[str, Any]] | None) -> str:
    """The page's paragraph on what purification costs (see
    :func:`~noisyclean.benchmark.cost.cold_timing`): one line per data set timed."""
    if not cost:
        return ""
    timings = [cost] if isinstance(cost, dict) else list(cost)
    first = timings[0]
    lines = []
    for t in timings:
        cells = " | ".join(f"{t[k]:.1f} s" for k in ("plain_s", "stage1_s", "stage2_s"))
        lines.append(f"| {t.get('dataset', MTD)} | {int(t['n_train'])} | {cells} | "
                     f"**{t['ratio']:.2f}×** | {t.get('first_ratio', t['ratio']):.2f}× |")
    return f"""
## Cost of purification

Measured in this run by `noisyclean.benchmark.cold_timing` (noise {first['noise']:.1f}, seed
{int(first['seed'])}): each side starts from an empty feature cache, so both pay for every
image's backbone features once. Both sides ran {int(first.get('repeats', 1))} times in turn;
the table gives the last (steady) repetition, and the first beside it (a first repetition
can be skewed by the process's one-time costs).

| data set | images | plain training | stage 1 | stage 2 | (1 + 2) / plain | first repetition |
|---|---|---|---|---|---|---|
{chr(10).join(lines)}
"""


def ablation_section(rows: Sequence[dict[str, Any]], title: str = "") -> str:
    """One data set's ablation table, with what its cells mean."""
    seeds = sorted({r["seed"] for r in rows})
    return f"""
### Ablations{f': {title}' if title else ''}

Each strategy changes one thing from the default (`{DEFAULT}`); `paper recipe` is the
paper's recipe without the views noisyclean adds. Image AUROC, mean over seeds
{", ".join(map(str, seeds))}, with the share of the noisy-to-oracle gap closed in brackets
(at noise 0, the change against training on everything). A strategy that changes the
detector is measured against its own noisy and oracle rows (`<strategy>: noisy`,
`<strategy>: oracle`). The last column counts the contaminated splits (noise > 0, per data
set and seed) in which the strategy's image AUROC beats the default's, with the mean
difference.

{ablation_table(rows)}
"""


def _seeds_at(rows: Sequence[dict[str, Any]], noise: float) -> str:
    return ", ".join(map(str, sorted({r["seed"] for r in rows if r["noise"] == noise})))


def _family_section(family: str, rows: Sequence[dict[str, Any]]) -> str:
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    title = FAMILY_TITLES.get(family, family)
    averaged = len(names) > 1
    scope = (f"mean over its {len(names)} classes ({', '.join(n.split('/', 1)[1] for n in names)})"
             " and seeds" if averaged else "mean over seeds")
    per_class = f"""
### Per class

Image AUROC per class (mean over seeds), with the gap closed in brackets (at noise 0 the
change against training on everything), and the default's purification diagnostic.

{per_dataset_table(rows)}
""" if averaged else ""
    runs = ", ".join(f"noise {n:.1f}: seeds {_seeds_at(rows, n)}"
                     for n in sorted({r["noise"] for r in rows}))
    return f"""
## {title}

Protocol: {PROTOCOLS.get(family, "as defined by its BenchmarkDataset.")}

Runs: {len(rows)} ({runs}).

### Share of the noisy-to-oracle image-AUROC gap closed ({scope})

At noise 0 there is no gap; the cell gives the change in image AUROC against training on
everything (all normals), which is what purifying clean data costs.

{gap_table(rows)}

### Purification diagnostic ({scope})

What purification controls directly, beside the final result: how well the selection
scores separate the training defects from the training normals (selection AUROC; consensus
AUROC for the sub-models' consensus alone, before any other view), the share of the
training defects dropped (anomaly recall) and the defect share of the kept set.

{diagnostic_table(rows)}
{per_class}
### All metrics ({scope})

{markdown_table(rows)}

Columns: image AUROC, AP and F1-max; pixel AUROC and AUPRO (FPR ≤ 0.3); the purification
diagnostic; stage-1 and stage-2 wall time and the plain (noisy) training time on the same
data, in seconds, with every image's backbone features already in the shared feature cache
after the first condition (the cost with the features included is measured separately).
"""


def write_markdown(rows: Sequence[dict[str, Any]], path: str | Path, *, command: str,
                   seconds: float, notes: str = "",
                   cost: dict[str, Any] | Sequence[dict[str, Any]] | None = None) -> Path:
    """Write the benchmark page: the command, the machine, the headline, one section per
    data set family, the cost of purification, the ablations (when they ran) and ``notes``.

    Rows without ``dataset`` count as Magnetic Tile.
    """
    from noisyclean._io import atomic_write_text

    rows = [{**r, "dataset": r.get("dataset", MTD)} for r in rows]
    main_names = set(main_condition_names())
    main_rows = [r for r in rows if r["condition"] in main_names]
    families = list(dict.fromkeys(family_of(r["dataset"]) for r in rows))
    sections = "".join(_family_section(f, rows_of(main_rows, f)) for f in families)
    ablations = ""
    if any(r["condition"] not in main_names for r in rows):
        ablations = "\n## Ablations\n" + "".join(
            ablation_section(rows_of(rows, f), FAMILY_TITLES.get(f, f)) for f in families)
    seeds = sorted({r["seed"] for r in rows})
    text = PAGE_MARKER + f"""# Benchmarks

Noisy, oracle and purified training on {", ".join(FAMILY_TITLES.get(f, f) for f in families)}.

Command (from the repository root, 2 CPU cores, no GPU):

```bash
{command}
```

Machine: {machine_description()}. Total wall time: {seconds / 60:.1f} min.
Seeds: {seeds}. Each cell is a mean over seeds (and over a family's classes).

Every condition trains the default detector `patchknn` on a contaminated training set built
by `noisyclean.data.make_noisy_split` (noise = anomalies over training-set size, as Real-IAD
FUIAD defines it) and is tested on a fixed test set of unseen normals and defects, the same
at every noise ratio for a seed. `noisy` trains on everything, `oracle` on the training
set's true normals, `{DEFAULT}` purifies with the Purifier's defaults, `paper recipe` with
the paper's recipe (k = 3 disjoint subsets, keep 0.8, out of bag, rank mean, the
consensus alone) and `reference` with the paper's released setting (in-bag, raw-score mean,
keep 0.2).

## Headline

For each data set: the default's change in image AUROC against training on everything at
noise 0, and the share of the noisy-to-oracle gap it closes at each contaminated noise ratio
(from the mean AUROCs); the selection AUROC (how well the selection scores separate the
training defects); whether that meets the goal (at least {GAP_GOAL:.0%} of the gap at every
noise ratio, at most {CLEAN_LOSS_LIMIT} lost on clean data); and, paired by split (the same
data set, noise ratio and seed, noise > 0), in how many splits the default's image AUROC
beats each other condition's, with the mean difference.

{headline_table(main_rows)}
{sections}{cost_section(cost)}{ablations}
{notes}
"""
    return atomic_write_text(path, text)


PAGE_MARKER = "<!-- written by `noisyclean benchmark`: rerun it rather than editing -->\n"


def is_benchmark_page(path: Path) -> bool:
    """A page :func:`write_markdown` wrote: its first line is the generator's marker."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read(len(PAGE_MARKER)) == PAGE_MARKER
    except OSError:
        return False


def read_rows(path: Path) -> list[dict] | None:
    """The rows of a rows JSON the benchmark wrote (a list of rows, each naming its condition
    and noise), or ``None`` when ``path`` holds anything else: one read serves both the check
    that noisyclean wrote the file and ``--resume``'s use of its rows."""
    import json

    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    ours = isinstance(rows, list) and all(
        isinstance(r, dict) and "condition" in r and "noise" in r for r in rows)
    return rows if ours else None


def is_rows_file(path: Path) -> bool:
    """A rows JSON the benchmark wrote (:func:`read_rows` can read it)."""
    return read_rows(path) is not None
