"""Which offline backbone should ``patchknn`` see through? (issue 13, item 3)

For every backbone of :mod:`noisyclean.backbones` (and two mixes of feature levels), on
Magnetic Tile and on the four PIPED development classes, with the benchmark's protocol
(:func:`noisyclean.data.make_noisy_split`) and budget (160 px, 64 projected channels, a
3,000-patch bank), noise 0.1, 0.2 and 0.4 and seeds 0, 1, 2, this trains:

- ``noisy`` and ``oracle`` through :func:`noisyclean.benchmark.run_condition`;
- the default Purifier, then stage 2, recording the final image AUROC and the selection
  AUROC (how well ``selection_scores_`` separates the training defects from the training
  normals: what purification controls directly).

Every comparison is paired by split: the same dataset, class, noise and seed for each
backbone. ``--cost`` also times each backbone's feature extraction per image from an empty
cache; the summary adds stage 1 + 2 and plain training (features cached, from the rows) to
get the whole purification's cost per image and its ratio to one plain training, both from
empty caches (what :func:`noisyclean.benchmark.cold_timing` measures in one go on a quiet
machine; here the machine was shared, so the parts were timed where they were cheap).

Run from the repository root (rows are appended to the JSON as they come, and a rerun skips
the rows it already has). The committed rows came from several such processes side by side,
each with its own rows file, e.g.::

    NOISYCLEAN_FEATURE_CACHE_DIR=/work/scratch/featcache-backbones \\
        python benchmarks/backbones_study.py --rows benchmarks/backbones-rows-mtd-c.json \\
        --datasets mtd --configs "lite1 3+4" --conditions selection oracle --threads 2
    python benchmarks/backbones_study.py --cost --cost-json benchmarks/backbones-cost.json
    python benchmarks/backbones_study.py --summary --rows benchmarks/backbones-rows-piped.json \\
        --more-rows benchmarks/backbones-rows-mtd-[abcd].json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
from noisyclean.datasets import Subset

from noisyclean.benchmark import (
    BUDGET_DETECTOR_KWARGS,
    BUDGET_IMAGE_SIZE,
    Condition,
    _test_metrics,
    gap_closed,
    run_condition,
    summarize,
)
from noisyclean.data import (
    PIPED,
    MagneticTile,
    defect_types_of,
    labels_of,
    make_noisy_split,
    piped_classes,
)
from noisyclean.metrics import purification_report
from noisyclean.metrics.image import image_auroc
from noisyclean.plugins import detector_factory
from noisyclean.purifier import Purifier

MTD_ROOT = "/work/shared/data/magnetic-tile"
PIPED_ROOT = "/work/shared/data/piped-dev"
NOISES = (0.1, 0.2, 0.4)
SEEDS = (0, 1, 2)
DEFAULT = "lite0 2+3 (default)"
CONFIGS: dict[str, dict[str, Any]] = {
    DEFAULT: {"backbone": "efficientnet_lite0", "layers": (2, 3)},
    "lite1 2+3": {"backbone": "efficientnet_lite1", "layers": (2, 3)},
    "lite2 2+3": {"backbone": "efficientnet_lite2", "layers": (2, 3)},
    "mobilenet_v2 2+3": {"backbone": "mobilenet_v2", "layers": (2, 3)},
    "lite1 3+4": {"backbone": "efficientnet_lite1", "layers": (3, 4)},
    "lite0 1+2+3": {"backbone": "efficientnet_lite0", "layers": (1, 2, 3)},
}


def datasets() -> dict[str, Any]:
    """Magnetic Tile and each PIPED class, at the benchmark's image size."""
    out: dict[str, Any] = {"mtd": MagneticTile(MTD_ROOT, image_size=BUDGET_IMAGE_SIZE)}
    for cls in piped_classes(PIPED_ROOT):
        out[f"piped/{cls}"] = PIPED(PIPED_ROOT, cls, image_size=BUDGET_IMAGE_SIZE)
    return out


def purified_row(dataset: Any, split: Any, factory: Any, seed: int) -> dict[str, Any]:
    """The default Purifier and stage 2 on one split, with the selection AUROC."""
    train = Subset(dataset, split.train_indices)
    is_anomaly = labels_of(train) == 1
    start = time.perf_counter()
    purifier = Purifier(factory, seed=seed, progress=False).fit(train)
    row: dict[str, Any] = {"condition": "noisyclean", "n_train": len(train),
                           "stage1_s": time.perf_counter() - start}
    t2 = time.perf_counter()
    model = purifier.fit_final(train)
    row["stage2_s"] = time.perf_counter() - t2
    row["selection_auroc"] = image_auroc(is_anomaly.astype(int), purifier.selection_scores_)
    row["anomaly_recall"] = purification_report(is_anomaly, purifier.keep_mask_)[
        "anomaly_recall"]
    row.update(_test_metrics(model, Subset(dataset, split.test_indices), with_pixels=False))
    return row


def selection_row(dataset: Any, split: Any, factory: Any, seed: int) -> dict[str, Any]:
    """Stage 1 alone: the selection AUROC, where the final model's rows exist already."""
    train = Subset(dataset, split.train_indices)
    is_anomaly = labels_of(train) == 1
    start = time.perf_counter()
    purifier = Purifier(factory, seed=seed, progress=False).fit(train)
    return {"condition": "selection", "n_train": len(train),
            "stage1_s": time.perf_counter() - start,
            "selection_auroc": image_auroc(is_anomaly.astype(int), purifier.selection_scores_)}


BENCHMARK_ROWS = Path(__file__).with_name("mtd-rows.json")
"""The benchmark's Magnetic Tile rows (same protocol and budget, the default detector and
Purifier): the default backbone's noisy, oracle and purified rows on Magnetic Tile are taken
from there (the first split was rerun here and matched to the last digit)."""


def benchmark_default_rows() -> list[dict[str, Any]]:
    rows = json.loads(BENCHMARK_ROWS.read_text())
    return [{**r, "dataset": "mtd", "backbone": DEFAULT, "source": BENCHMARK_ROWS.name}
            for r in rows if r["condition"] in ("noisy", "oracle", "noisyclean")
            and r["noise"] in NOISES]


def _key(row: dict[str, Any]) -> tuple:
    return (row["dataset"], row["backbone"], row["noise"], row["seed"], row["condition"])


def _normals(dataset: Any, split: Any) -> tuple[int, ...]:
    """The training normals of a split: two splits with the same ones share an oracle."""
    labels = labels_of(dataset)
    return tuple(int(i) for i in split.train_indices if labels[i] == 0)


def _write(rows: list[dict[str, Any]], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1))
    tmp.replace(path)


def run(rows_path: Path, configs: list[str], names: list[str] | None,
        only: tuple[str, ...] = ("noisy", "oracle", "noisyclean", "selection")) -> None:
    """Every split of every data set for each config; ``only`` limits the conditions (the
    cheap ones first when time is short: ``selection`` and ``oracle``)."""
    rows = json.loads(rows_path.read_text()) if rows_path.exists() else []
    if DEFAULT in configs and (not names or "mtd" in names):
        known = {_key(r) for r in rows}
        rows += [r for r in benchmark_default_rows() if _key(r) not in known]
    done = {_key(r) for r in rows}
    data = datasets()
    for config in configs:
        oracles: dict[tuple, dict[str, Any]] = {}
        factory = detector_factory("patchknn", **{**BUDGET_DETECTOR_KWARGS, **CONFIGS[config]})
        for name, dataset in data.items():
            if names and not any(name.startswith(n) for n in names):
                continue
            labels, types = labels_of(dataset), defect_types_of(dataset)
            for noise in NOISES:
                for seed in SEEDS:
                    split = make_noisy_split(labels, types, noise, seed=seed)
                    base = {"dataset": name, "backbone": config, "noise": noise, "seed": seed}
                    here = [r for r in rows if _key(r)[:4] == _key({**base, "condition": ""})[:4]]
                    has_selection = any("selection_auroc" in r for r in here)
                    purified = any(r["condition"] == "noisyclean" for r in here)
                    # stage 1 alone only where the purified run will not give the selection
                    need_selection = "selection" in only and not has_selection and (
                        purified or "noisyclean" not in only)
                    conds = [c for c in ("oracle", "noisy", "noisyclean") if c in only]
                    for cond in (["selection"] if need_selection else []) + conds:
                        if _key({**base, "condition": cond}) in done:
                            continue
                        oracle = oracles.get((name, seed, _normals(dataset, split)))
                        if cond == "oracle" and oracle is not None:  # same training set
                            row = {**oracle, "copied_from_noise": oracle["noise"]}
                        elif cond == "selection":
                            row = selection_row(dataset, split, factory, seed)
                        elif cond == "noisyclean":
                            row = purified_row(dataset, split, factory, seed)
                        else:
                            row = run_condition(
                                Condition(cond, train="all" if cond == "noisy" else "normals"),
                                dataset, split, factory, seed=seed, with_pixels=False)
                        row.update(base)
                        if cond == "oracle":
                            oracles.setdefault((name, seed, _normals(dataset, split)), row)
                        rows.append(row)
                        _write(rows, rows_path)
                    mine = [r for r in rows if _key(r)[:4] == _key({**base, "condition": ""})[:4]]
                    if not mine:
                        continue
                    print(f"{config:22s} {name:22s} noise {noise:.1f} seed {seed}: " + ", ".join(
                        f"{r['condition']} {r.get('image_auroc', r.get('selection_auroc')):.3f}"
                        for r in mine), flush=True)


def measure_cost(configs: list[str], out: Path, n_images: int = 64, rounds: int = 2) -> None:
    """Feature extraction per image, from an empty cache, on the same Magnetic Tile images.

    The backbones take turns for ``rounds`` rounds and each keeps its fastest round, so a
    busy shared machine skews them alike. (The whole purification's cost per image is
    this plus stage 1 and stage 2 with features cached, taken from the study's rows.)
    """
    from noisyclean.feature_cache import FeatureCache

    dataset = MagneticTile(MTD_ROOT, image_size=BUDGET_IMAGE_SIZE)
    images = Subset(dataset, list(range(0, len(dataset), len(dataset) // n_images))[:n_images])
    times: dict[str, list[float]] = {c: [] for c in configs}
    for _ in range(rounds):
        for config in configs:
            kwargs = {**BUDGET_DETECTOR_KWARGS, **CONFIGS[config]}
            detector = detector_factory("patchknn", **kwargs, feature_cache=FeatureCache())()
            detector._backbone()  # built (weights read) outside the timing
            start = time.perf_counter()
            detector.patch_features(images)
            times[config].append(time.perf_counter() - start)
    results = json.loads(out.read_text()) if out.exists() else {}
    for config, t in times.items():
        results[config] = {"extract_ms_per_image": 1000 * min(t) / len(images),
                           "rounds_s": t, "n_images": len(images)}
        print(config, results[config], flush=True)
    out.write_text(json.dumps(results, indent=1))


# -- summary ---------------------------------------------------------------------------------


def _family(dataset: str) -> str:
    return dataset.split("/")[0]


def summary(rows: list[dict[str, Any]], cost: dict[str, Any]) -> str:
    """Markdown tables per data set (PIPED: mean over its classes), paired against the default."""
    lines = []
    for family in sorted({_family(r["dataset"]) for r in rows}):
        fam = [r for r in rows if _family(r["dataset"]) == family]
        configs = [c for c in CONFIGS if any(r["backbone"] == c for r in fam)]
        lines += [f"### {family.upper()}", "",
                  "| backbone | oracle (clean) | noisy 0.1 / 0.2 / 0.4 | purified 0.1 / 0.2 / 0.4 "
                  "| gap closed | selection AUROC | paired vs default (wins/splits): oracle | "
                  "selection | purified | extract ms/img | purify ms/img | purify / plain |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for config in configs:
            mine = [r for r in fam if r["backbone"] == config]
            stats = summarize(mine)
            def auroc(n, c, stats=stats):
                s = stats.get((n, c), {}).get("image_auroc")
                return f"{s[0]:.3f}" if s else "–"
            sel = []
            for n in NOISES:
                v = [r["selection_auroc"] for r in mine
                     if r["noise"] == n and "selection_auroc" in r]
                sel.append(f"{np.mean(v):.3f}" if v else "–")
            gaps = []
            for n in NOISES:
                g = gap_closed(stats, n, "noisyclean")
                gaps.append("–" if g is None else f"{g:.0%}")
            paired = " | ".join((_paired(fam, config, "image_auroc", "oracle"),
                                 _paired(fam, config, "selection_auroc", None),
                                 _paired(fam, config)))
            extract, purify, ratio = _cost_per_image(mine, cost.get(config))
            lines.append(
                f"| {config} | {auroc(0.1, 'oracle')} | "
                + " / ".join(auroc(n, "noisy") for n in NOISES) + " | "
                + " / ".join(auroc(n, "noisyclean") for n in NOISES) + " | "
                + " / ".join(gaps) + " | " + " / ".join(sel) + f" | {paired} | "
                + extract + " | " + purify + " | " + ratio + " |")
        lines.append("")
    return "\n".join(lines)


def _cost_per_image(rows: list[dict[str, Any]], cost: dict[str, Any] | None) -> tuple[str, ...]:
    """Extraction, whole purification (stage 1 + 2) and its ratio to plain training, per
    training image, from empty caches: the timed extraction plus the rows' cached-feature
    stage times (``stage1_s + stage2_s``) and plain training (``plain_s``)."""
    if not cost:
        return ("–", "–", "–")
    extract = cost["extract_ms_per_image"]
    purify = [1000 * (r["stage1_s"] + r["stage2_s"]) / r["n_train"] for r in rows
              if r["condition"] == "noisyclean"]
    plain = [1000 * r["plain_s"] / r["n_train"] for r in rows if r["condition"] == "noisy"]
    if not purify or not plain:
        return (f"{extract:.1f}", "–", "–")
    whole, once = extract + float(np.mean(purify)), extract + float(np.mean(plain))
    return (f"{extract:.1f}", f"{whole:.1f}", f"{whole / once:.2f}×")


def _paired(rows: list[dict[str, Any]], config: str, metric: str = "image_auroc",
            condition: str | None = "noisyclean") -> str:
    """Mean paired difference against the default on the same splits, and wins out of splits.

    ``condition=None`` takes the metric from whichever row of a split has it (the selection
    AUROC comes from a purified row or a stage-1-only row).
    """
    def values(backbone: str) -> dict[tuple, float]:
        return {(r["dataset"], r["noise"], r["seed"]): r[metric] for r in rows
                if r["backbone"] == backbone and metric in r
                and (condition is None or r["condition"] == condition)}

    if config == DEFAULT:
        return "–"
    base, mine = values(DEFAULT), values(config)
    d = np.asarray([v - base[k] for k, v in mine.items() if k in base])
    if not d.size:
        return "–"
    return f"{d.mean():+.3f} ({int((d > 0).sum())}/{d.size})"


def main() -> None:
    import torch

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=Path, default=Path("benchmarks/backbones-rows.json"))
    parser.add_argument("--more-rows", type=Path, nargs="*", default=[],
                        help="other rows files to summarise with --rows (one per process)")
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    parser.add_argument("--datasets", nargs="*", default=None, help="prefixes: mtd, piped")
    parser.add_argument("--conditions", nargs="*",
                        default=["selection", "oracle", "noisy", "noisyclean"],
                        help="run only these (the cheap selection and oracle first)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cost", action="store_true")
    parser.add_argument("--cost-json", type=Path, default=Path("benchmarks/backbones-cost.json"))
    parser.add_argument("--summary", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.summary:
        cost = json.loads(args.cost_json.read_text()) if args.cost_json.exists() else {}
        rows = [r for p in [args.rows, *args.more_rows] for r in json.loads(p.read_text())]
        print(summary(rows, cost))
    elif args.cost:
        measure_cost(args.configs, args.cost_json)
    else:
        run(args.rows, args.configs, args.datasets, tuple(args.conditions))


if __name__ == "__main__":
    main()
