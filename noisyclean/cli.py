"""The ``noisyclean`` command line. Every command is a thin face over a documented call."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

import noisyclean
from noisyclean.cli_errors import OneLineUsageErrors, in_cli_words, one_line
from noisyclean.outdir import OutputFolderError, check_own_target

app = typer.Typer(
    name="noisyclean",
    cls=OneLineUsageErrors,
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
    # our own messages at INFO; other libraries' (faiss, lightning) only when they warn
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("noisyclean").setLevel(logging.DEBUG if verbose else logging.INFO)


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


class _UserError(Exception):
    """Raised by commands for input problems: shown as one clear line, no traceback."""


def _fail_clearly(exc: Exception) -> None:
    message = one_line(in_cli_words(str(exc)))
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code=2) from exc


def _quiet(quiet: bool) -> None:
    """``-q``: no progress and no INFO lines; warnings and errors still show."""
    if quiet:
        logging.getLogger("noisyclean").setLevel(logging.WARNING)


_ARGV: list[str] | None = None


def _command_line() -> str:
    """The command as the user typed it, quoted for a shell (to repeat it)."""
    import shlex
    import sys

    args = _ARGV if _ARGV is not None else sys.argv[1:]
    return "noisyclean " + shlex.join(args)


def _json_option(text: str | None, name: str) -> dict:
    if not text:
        return {}
    import json

    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _UserError(
            f"{name} must be a JSON object, e.g. '{{\"n_neighbors\": 3}}': {exc}") from exc
    if not isinstance(value, dict):
        raise _UserError(f"{name} must be a JSON object, got {text!r}")
    return value


def _keep_value(text: str) -> float | int | str:
    if text == "auto":
        return text
    try:  # digits stay an integer, which the Purifier refuses as ambiguous, saying why
        return int(text) if text.isdigit() else float(text)
    except ValueError as exc:
        raise _UserError(
            f"--keep {text!r}: give a fraction such as 0.8 or 'auto' (--keep-count takes a "
            "number of images)") from exc


WHOLE_IMAGE_CHOICES = {"auto": "auto", "on": True, "off": False}


def _whole_image_value(text: str) -> bool | str:
    try:
        return WHOLE_IMAGE_CHOICES[text.lower()]
    except KeyError:
        raise _UserError(
            f"--whole-image {text!r}: give 'auto' (when the detector has embed()), 'on' or "
            "'off' (the paper's recipe: the sub-models' consensus alone)") from None


USER_ERRORS = (_UserError, ValueError, TypeError, FileNotFoundError, ImportError, KeyError)


@app.command("purify")
def purify_cmd(
    data_dir: Annotated[Path, typer.Argument(help="Folder of training images (read only).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (outside DATA_DIR).")],
    detector: Annotated[str, typer.Option(help="A registered detector name.")] = "patchknn",
    k: Annotated[int, typer.Option(help="Number of sub-models (disjoint subsets).")] = 3,
    keep: Annotated[str, typer.Option(
        help="The fraction of images to keep, in (0, 1] (1.0 keeps all), or 'auto'. A whole "
             "number is refused as ambiguous: use --keep-count for a number of images.")
                    ] = "0.8",
    keep_count: Annotated[int | None, typer.Option(
        "--keep-count", help="Keep this many images (replaces --keep).")] = None,
    scoring: Annotated[str, typer.Option(help="all, out_of_bag or auto.")] = "auto",
    normalize: Annotated[str, typer.Option(help="rank, zscore, robust_zscore, minmax, none.")
                         ] = "rank",
    aggregate: Annotated[str, typer.Option(help="mean, median, max or min.")] = "mean",
    whole_image: Annotated[str, typer.Option(
        "--whole-image", help="Also drop images that are unusual as a whole: auto (when the "
        "detector has embed(), as patchknn), on, or off (the paper's recipe).")] = "auto",
    mutual: Annotated[bool, typer.Option(
        "--mutual", help="Also rank by the mutual view (MuSc's interval average over the "
        "closest 30 % of images); opt-in, see docs/concepts.md.")] = False,
    community: Annotated[bool, typer.Option(
        "--community", help="With the mutual view, score again without CoDeGraph-style "
        "consistent-anomaly communities (implies --mutual).")] = False,
    protect_tail: Annotated[bool, typer.Option(
        "--protect-tail", help="Keep the images of rare whole-image modes (TailedCore-style "
        "tail protection).")] = False,
    seed: Annotated[int, typer.Option(help="Seeds the partition and the sub-models.")] = 0,
    executor: Annotated[str, typer.Option(help="serial, process or ray.")] = "serial",
    executor_options: Annotated[str | None, typer.Option(
        "--executor-options", help="JSON object for the executor, e.g. "
        "'{\"address\": \"auto\", \"num_gpus\": 1}' for Ray.")] = None,
    image_size: Annotated[int, typer.Option(help="Images are resized to this size.")] = 224,
    masks: Annotated[str | None, typer.Option(
        help="Masks: a folder, or a name pattern beside each image such as '{stem}.png'. "
             "Masks are never used for training; they let the report show regions.")] = None,
    skip_bad: Annotated[bool, typer.Option("--skip-bad", help="Skip unreadable images "
                                           "with a warning instead of stopping.")] = False,
    detector_kwargs: Annotated[str | None, typer.Option(
        "--detector-kwargs", help="JSON object of detector arguments.")] = None,
    no_resume: Annotated[bool, typer.Option("--no-resume", help="Do not cache finished "
                                            "sub-models in OUT/cache.")] = False,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the results of an earlier run in OUT (files noisyclean "
        "did not write are never replaced).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Purify DATA_DIR: write purified.txt, dropped.txt, scores.csv and manifest.json to OUT.

    Running the same command again after an interruption resumes from OUT/cache. Image
    names that a line-based list cannot hold (line breaks, leading or trailing spaces, a
    leading '#') are refused before any work.
    """
    import warnings

    from noisyclean.runs import purify_folder

    _quiet(quiet)
    try:
        with warnings.catch_warnings():  # skipped files are listed once, below
            warnings.filterwarnings("ignore", message="skipping ", category=UserWarning)
            result = purify_folder(
                data_dir, out, detector=detector,
                detector_kwargs=_json_option(detector_kwargs, "--detector-kwargs"),
                image_size=image_size, masks=masks, on_error="skip" if skip_bad else "raise",
                resume=not no_resume, overwrite=overwrite, k=k, keep=_keep_value(keep),
                keep_count=keep_count, scoring=scoring,
                normalize=None if normalize.lower() == "none" else normalize, aggregate=aggregate,
                whole_image=_whole_image_value(whole_image), seed=seed, executor=executor,
                mutual=mutual or community,
                mutual_params={"community": True} if community else None,
                protect_tail=protect_tail, progress=not quiet,
                executor_options=_json_option(executor_options, "--executor-options") or None,
            )
    except USER_ERRORS as exc:
        _fail_clearly(exc)
    except KeyboardInterrupt:
        _interrupted(out, resume=not no_resume)
    for path, why in result.dataset.skipped:
        typer.secho(f"skipped unreadable {path}: {why}", err=True, fg=typer.colors.YELLOW)
    p = result.purifier
    typer.echo(result.summary)
    typer.echo(f"kept {p.n_keep_} of {p.n_samples_} images; dropped {p.n_samples_ - p.n_keep_}."
               f" Results in {out}")


def _interrupted(out: Path, resume: bool) -> None:
    """Ctrl-C: say what is saved and the exact command that picks up from there."""
    rows = sorted((out / "cache").glob("*/submodel_*.npy")) if resume else []
    if rows:
        done = f"{len(rows)} finished sub-model score row(s) are saved in {out / 'cache'}"
    else:
        done = "no sub-model had finished, so nothing is saved yet"
    typer.secho(f"interrupted: {done}. Run the same command to resume:", err=True,
                fg=typer.colors.YELLOW)
    typer.echo(f"  {_command_line()}", err=True)
    raise typer.Exit(code=130)


@app.command("evaluate")
def evaluate_cmd(
    data_dir: Annotated[Path, typer.Argument(help="Folder of training images.")],
    test_dir: Annotated[Path, typer.Argument(help="Test folder: one sub-folder per label.")],
    train_list: Annotated[Path | None, typer.Option(
        help="Train only on these images (e.g. OUT/purified.txt), relative to DATA_DIR.")] = None,
    detector: Annotated[str, typer.Option(help="A registered detector name.")] = "patchknn",
    normal_dirs: Annotated[str, typer.Option(help="Comma-separated test sub-folders that "
                                             "hold normals.")] = "good",
    test_masks: Annotated[str | None, typer.Option(
        help="Test masks: a folder or a pattern such as '{stem}.png'.")
                          ] = None,
    image_size: Annotated[int, typer.Option(help="Images are resized to this size.")] = 224,
    detector_kwargs: Annotated[str | None, typer.Option(
        "--detector-kwargs", help="JSON object of detector arguments.")] = None,
) -> None:
    """Train the final detector (on a purified list, if given) and report test metrics."""
    from noisyclean.runs import evaluate

    try:
        metrics = evaluate(
            data_dir, test_dir, train_list=train_list, detector=detector,
            detector_kwargs=_json_option(detector_kwargs, "--detector-kwargs"),
            image_size=image_size, normal_dirs=[d for d in normal_dirs.split(",") if d],
            test_masks=test_masks,
        )
    except USER_ERRORS as exc:
        _fail_clearly(exc)
    for name, value in metrics.items():
        typer.echo(f"{name:>16}: {value:.4f}")


@app.command("report")
def report_cmd(
    out_dir: Annotated[Path, typer.Argument(help="Output folder of `noisyclean purify`.")],
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="The HTML file to write (default OUT_DIR/report.html).")] = None,
    no_images: Annotated[bool, typer.Option(
        "--no-images", help="Do not read the data folder: plots, tables and ids only.")
                         ] = False,
    max_gallery: Annotated[int, typer.Option(help="Show at most this many dropped images.")
                           ] = 240,
    page_size: Annotated[int, typer.Option(help="Thumbnails per gallery page.")] = 48,
    no_maps: Annotated[bool, typer.Option(
        "--no-maps", help="Do not train the final detector on the kept images to draw "
        "anomaly maps (done by default when the detector can localise).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Write the HTML report of a purify run: what was dropped, why, and how sure it was.

    The page is self-contained (no network); its plots are also saved as PNG files beside it.
    """
    from noisyclean.report import report_from_run

    _quiet(quiet)
    try:
        path = report_from_run(out_dir, out, images=not no_images, maps=not no_maps,
                               max_gallery=max_gallery,
                               page_size=page_size, progress=not quiet)
    except USER_ERRORS as exc:
        _fail_clearly(exc)
    typer.echo(f"report written to {path}")


@app.command("demo")
def demo_cmd(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the purify "
                                             "outputs (lists, scores, manifest) here.")] = None,
    seed: Annotated[int, typer.Option(help="Seeds the data, the split and the Purifier.")] = 0,
    overwrite: Annotated[bool, typer.Option(
        "--overwrite", help="Replace the results of an earlier run in OUT.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Purify a contaminated set of synthetic texture defects and print before and after.

    Offline and self-contained: scikit-image's CC0 textures, the default detector, and
    the Purifier's defaults. Takes a minute or two on a laptop CPU.
    """
    from rich.console import Console

    from noisyclean.demo import render_table, run_demo

    _quiet(quiet)
    console = Console()
    console.print("Building a contaminated training set from CC0 textures, then training "
                  "noisy, purified and oracle detectors...")
    try:
        result = run_demo(seed=seed, out_dir=out, progress=not quiet, overwrite=overwrite)
    except USER_ERRORS as exc:
        _fail_clearly(exc)
    console.print(render_table(result))
    purified = result.rows[1]
    console.print(
        f"Purification dropped {purified['anomaly_recall']:.0%} of the injected anomalies and "
        f"lost {purified['normals_lost']} normal images. Total time {result.seconds:.0f} s.")


@app.command("benchmark")
def benchmark_cmd(
    datasets: Annotated[str, typer.Option(
        help="Comma-separated data sets: magnetic-tile, piped (every class) or "
             "piped/<class>.")] = "magnetic-tile,piped",
    mtd_root: Annotated[Path | None, typer.Option(
        "--mtd-root", "--data",
        help="Magnetic Tile folder (default: $NOISYCLEAN_MTD_ROOT, else "
             "../shared/data/magnetic-tile).")] = None,
    piped_root: Annotated[Path | None, typer.Option(
        "--piped-root",
        help="PIPED folder holding the class folders (default: $NOISYCLEAN_PIPED_ROOT, else "
             "../shared/data/piped-dev).")] = None,
    out: Annotated[Path, typer.Option(help="The Markdown page to write (a file noisyclean did "
                                          "not write is never replaced).")] = Path(
        "docs/benchmarks.md"),
    noise: Annotated[str, typer.Option(help="Comma-separated noise ratios.")] = "0,0.1,0.2,0.4",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds.")] = "0,1,2",
    image_size: Annotated[int | None, typer.Option(
        help="Resize every data set's images to this size (default: the 2-core budget, "
             "Magnetic Tile 160 px, PIPED its own 128 px).")] = None,
    rows_json: Annotated[Path | None, typer.Option(
        "--rows-json", help="Also write every run's row as JSON here.")] = None,
    detector_kwargs: Annotated[str | None, typer.Option(
        "--detector-kwargs",
        help="JSON object of patchknn arguments (default: the budget setting "
             "'{\"feature_dim\": 64, \"coreset_max\": 3000}'; '{}' for patchknn's own).")] = None,
    ablations: Annotated[bool, typer.Option(
        "--ablations", help="Also run every ablation strategy.")] = False,
    ablation_names: Annotated[str | None, typer.Option(
        "--ablation-names",
        help="Also run these ablations only: comma-separated names (see "
             "noisyclean.benchmark.ABLATIONS).")] = None,
    notes: Annotated[Path | None, typer.Option(
        help="A Markdown file appended to the page (analysis, ablation notes).")] = None,
    cost: Annotated[bool, typer.Option(
        help="Also measure the cost of purification from empty feature caches, on the first "
             "data set of each family.")] = True,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Keep the rows already in --rows-json (an earlier run with the same "
                         "settings) and train only the runs they lack.")] = False,
) -> None:
    """Run the benchmark (noisy, oracle, noisyclean, paper recipe, reference) on Magnetic Tile
    and PIPED, and write one page.

    The defaults fit the whole grid into 30 minutes on 2 CPU cores (Magnetic Tile at 160 px,
    64-dimensional features, a 3,000-patch bank); see ``noisyclean.benchmark.settings``.
    """
    import shlex
    import sys
    import time

    from noisyclean._io import atomic_write_json
    from noisyclean.benchmark import (
        BUDGET_DETECTOR_KWARGS,
        ablation_conditions,
        cold_timings,
        default_conditions,
        headline_table,
        is_benchmark_page,
        read_rows,
        run_benchmark,
        select_datasets,
        write_markdown,
    )

    try:
        kwargs = (dict(BUDGET_DETECTOR_KWARGS) if detector_kwargs is None
                  else _json_option(detector_kwargs, "--detector-kwargs"))
        noise_ratios = _number_list(noise, float, "--noise")
        seed_list = _number_list(seeds, int, "--seeds")
    except _UserError as exc:
        _fail_clearly(exc)
    if notes is not None and not notes.is_file():
        _fail_clearly(_UserError(f"--notes {notes} is not a readable file."))
    earlier = (read_rows(rows_json) if rows_json is not None and rows_json.is_file()
               else None)
    try:  # never replace a file noisyclean did not write, and say so before the grid runs
        check_own_target(out, is_benchmark_page, "benchmark page", "--out")
        if rows_json is not None:
            check_own_target(rows_json, lambda _: earlier is not None, "rows JSON",
                             "--rows-json")
    except OutputFolderError as exc:
        _fail_clearly(exc)
    if resume and rows_json is None:
        _fail_clearly(_UserError("--resume needs --rows-json: the file whose rows it keeps."))
    try:
        specs = select_datasets(datasets, mtd_root=mtd_root, piped_root=piped_root)
    except USER_ERRORS as exc:
        _fail_clearly(_UserError(f"--datasets {datasets}: {exc} (folders: --mtd-root, "
                                 "--piped-root)"))
    try:
        extra = (ablation_conditions(ablation_names.split(",")) if ablation_names
                 else ablation_conditions() if ablations else [])
    except ValueError as exc:
        _fail_clearly(_UserError(f"--ablation-names: {exc}"))
    start = time.perf_counter()
    rows: list[dict] = list(earlier or []) if resume else []
    if rows:
        typer.echo(f"resuming: {len(rows)} rows of {rows_json} are kept")

    def keep_row(row: dict) -> None:
        rows.append(row)
        if rows_json is not None:
            atomic_write_json(rows_json, rows)

    try:
        run_benchmark(
            datasets=specs, noise_ratios=noise_ratios, seeds=seed_list,
            image_size=image_size, on_row=keep_row, detector_kwargs=kwargs,
            conditions=default_conditions() + extra, done=list(rows),
        )
        timing = (cold_timings(specs, image_size=image_size, detector_kwargs=kwargs)
                  if cost else None)
    except USER_ERRORS as exc:
        _fail_clearly(exc)
    command = "noisyclean " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    notes_text = ""
    if notes is not None:  # read last, so it can be edited while the grid runs
        try:
            notes_text = notes.read_text(encoding="utf-8")
        except OSError as exc:  # the run's results matter more: write the page without them
            typer.secho(f"warning: cannot read --notes {notes} ({exc}); the page has no notes",
                        err=True, fg=typer.colors.YELLOW)
    write_markdown(rows, out, command=command, seconds=time.perf_counter() - start,
                   notes=notes_text, cost=timing)
    typer.echo(headline_table([r for r in rows if r["condition"] in
                               {c.name for c in default_conditions()}]))
    typer.echo(f"wrote {out}" + (f" and {rows_json}" if rows_json else ""))


def _number_list(text: str, kind: type, flag: str) -> list:
    """``"0,0.1"`` -> ``[0.0, 0.1]``; a bad entry is a user error naming ``flag``."""
    try:
        return [kind(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _UserError(f"{flag} {text!r} is not a comma-separated list of numbers") from None


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``noisyclean`` script; ``argv`` defaults to ``sys.argv[1:]``."""
    global _ARGV
    _ARGV = None if argv is None else list(argv)
    app(args=argv)
