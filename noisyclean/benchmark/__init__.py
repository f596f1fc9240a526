"""The benchmark: noisy vs oracle vs purified training on Magnetic Tile and PIPED.

For each data set, noise ratio and seed, :func:`noisyclean.data.make_noisy_split` holds out a
fixed test set and contaminates the training set to the ratio (the shares per data set are in
:mod:`~noisyclean.benchmark.datasets`). Then each condition trains the default image detector
and is scored on the same test set:

- ``noisy``: train on the whole contaminated training set;
- ``oracle``: train on its true normals only;
- ``noisyclean``: the Purifier with its defaults, then stage 2;
- ``paper recipe``: the paper's recipe, the sub-models' consensus alone;
- ``reference``: the paper's released setting (in-bag scoring, mean of raw scores, keep 0.2);
- ablations: named variants of the Purifier's or the detector's arguments
  (:data:`~noisyclean.benchmark.conditions.ABLATIONS`), in their own compact table.

The package, one job per module: :mod:`~noisyclean.benchmark.settings` (the default grid
and its 2-core budget), :mod:`~noisyclean.benchmark.conditions` (what is compared),
:mod:`~noisyclean.benchmark.datasets` (the data sets and their splits),
:mod:`~noisyclean.benchmark.grid` (the run loop and the rows),
:mod:`~noisyclean.benchmark.summary` (means, gap closed, paired wins),
:mod:`~noisyclean.benchmark.tables` and :mod:`~noisyclean.benchmark.page` (the Markdown
page), :mod:`~noisyclean.benchmark.cost` (cold timing).
"""

from noisyclean.benchmark.conditions import (
    ABLATIONS,
    DEFAULT_STRATEGY,
    PAPER_RECIPE,
    REFERENCE,
    Condition,
    ablation_conditions,
    backbone_conditions,
    default_conditions,
)
from noisyclean.benchmark.cost import cold_timing, cold_timings
from noisyclean.benchmark.datasets import (
    BenchmarkDataset,
    grid_splits,
    magnetic_tile,
    piped,
    select_datasets,
)
from noisyclean.benchmark.grid import (
    purification_diagnostics,
    row_key,
    run_benchmark,
    run_condition,
    separation_auroc,
)
from noisyclean.benchmark.page import (
    ablation_section,
    cost_section,
    is_benchmark_page,
    is_rows_file,
    machine_description,
    read_rows,
    write_markdown,
)
from noisyclean.benchmark.settings import (
    BUDGET_DETECTOR_KWARGS,
    BUDGET_IMAGE_SIZE,
    NOISE_RATIOS,
    PIPED_IMAGE_SIZE,
    SEEDS,
)
from noisyclean.benchmark.summary import (
    METRIC_COLUMNS,
    change_from_oracle,
    gap_closed,
    paired_wins,
    rows_of,
    summarize,
)
from noisyclean.benchmark.tables import (
    ablation_table,
    diagnostic_table,
    headline_table,
    markdown_table,
)

__all__ = [
    "ABLATIONS",
    "BUDGET_DETECTOR_KWARGS",
    "BUDGET_IMAGE_SIZE",
    "DEFAULT_STRATEGY",
    "METRIC_COLUMNS",
    "NOISE_RATIOS",
    "PAPER_RECIPE",
    "PIPED_IMAGE_SIZE",
    "REFERENCE",
    "SEEDS",
    "BenchmarkDataset",
    "Condition",
    "ablation_conditions",
    "ablation_section",
    "ablation_table",
    "backbone_conditions",
    "change_from_oracle",
    "cold_timing",
    "cold_timings",
    "cost_section",
    "default_conditions",
    "diagnostic_table",
    "gap_closed",
    "grid_splits",
    "headline_table",
    "is_benchmark_page",
    "is_rows_file",
    "machine_description",
    "magnetic_tile",
    "markdown_table",
    "paired_wins",
    "piped",
    "purification_diagnostics",
    "read_rows",
    "row_key",
    "rows_of",
    "run_benchmark",
    "run_condition",
    "select_datasets",
    "separation_auroc",
    "summarize",
    "write_markdown",
]
