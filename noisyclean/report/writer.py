"""Assemble and write the HTML report of a fitted :class:`~noisyclean.Purifier`.

The page is one self-contained file: plots and thumbnails are embedded as ``data:`` URIs,
styles and the small pager script are inline, and nothing is fetched from a network, so it
can be mailed, archived next to a model, or opened on an air-gapped inspection PC. The plots
are also written as PNG files in a folder beside it, for slides and tickets.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import time
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean._io import atomic_write_bytes, atomic_write_text
from noisyclean.progress import progress as progress_bar
from noisyclean.report import analysis, images, plots
from noisyclean.report.maps import computed_maps, given_maps
from noisyclean.samples import root_dataset, root_indices, sample_ids

logger = logging.getLogger(__name__)

TEMPLATE = "template.html"
MAX_VOTES = 12
"""Sub-models drawn as bars under each thumbnail; more would not fit a 160 px caption."""


def plots_dir(path: Path) -> Path:
    """The folder beside ``report.html`` that holds its PNG plots: ``report_plots/``."""
    return path.with_name(f"{path.stem}_plots")


def _check_fitted(purifier: Any) -> None:
    if not hasattr(purifier, "keep_indices_"):
        from noisyclean.purifier import NotFittedError

        raise NotFittedError(
            "this Purifier is not fitted yet; call fit(dataset) first, or load a finished run "
            "with Purifier.load(folder)."
        )


def _check_dataset(purifier: Any, dataset: Any) -> None:
    if dataset is None:
        return
    if len(dataset) != purifier.n_samples_ or sample_ids(dataset) != list(purifier.ids_):
        raise ValueError(
            f"this dataset ({len(dataset)} samples) is not the one the Purifier was fitted on "
            f"({purifier.n_samples_} samples, ids differ); pass the same dataset, in the same "
            "order, or no dataset to write the report without images."
        )


def _check_destination(path: Path, dataset: Any) -> None:
    data_root = getattr(root_dataset(dataset), "root", None) if dataset is not None else None
    if not isinstance(data_root, (str, Path)):
        return
    data_root = Path(data_root).resolve()
    target = path.resolve()
    if data_root == target.parent or data_root in target.parents:
        raise ValueError(
            f"the report {path} would be written inside the data folder {data_root}; "
            "noisyclean never writes into a data folder. Choose another path."
        )


def _auto_labels(dataset: Any) -> Any:
    if dataset is None or getattr(root_dataset(dataset), "labels", None) is None:
        return None
    from noisyclean.data import labels_of

    return labels_of(dataset)


def _defect_types(dataset: Any) -> list[str | None] | None:
    if dataset is None or getattr(root_dataset(dataset), "defect_types", None) is None:
        return None
    from noisyclean.data import defect_types_of

    return defect_types_of(dataset)


def _mask_reader(dataset: Any):
    """``index -> bool mask or None`` for datasets that carry ground-truth masks (a
    ``mask(i)`` method, as :class:`~noisyclean.data.ImageDataset` has)."""
    root = root_dataset(dataset) if dataset is not None else None
    if not callable(getattr(root, "mask", None)):
        return lambda i: None
    positions = root_indices(dataset)

    def read(i: int) -> np.ndarray | None:
        try:
            m = np.asarray(root.mask(int(positions[i])), dtype=bool)
        except Exception as exc:  # a broken or missing mask must not sink the report
            logger.debug("no mask for sample %d: %s", i, exc)
            return None
        return m if m.ndim == 2 and m.any() else None

    return read


def _is_memory(detector: Any) -> bool:
    from noisyclean.protocol import preferred_scoring

    try:
        return detector is not None and preferred_scoring(detector) == "out_of_bag"
    except ValueError:
        return False


def _label_badge(label: int | None, defect: str | None, kept: bool) -> tuple[str, str]:
    if label is None or label < 0:
        return "", ""
    if label == 1:
        text = f"anomaly · {defect}" if defect else "anomaly"
        return (text + (" (missed)" if kept else ""), "bad" if kept else "anom")
    return ("normal" + ("" if kept else " (lost)"), "good" if kept else "lost")


def _tiles(purifier: Any, dataset: Any, indices: np.ndarray, page_size: int, kept: bool,
           ctx: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for pos, i in enumerate(indices):
        i = int(i)
        thumb = ctx["thumbs"].get(i, (None, None))
        lab = None if ctx["labels"] is None else int(ctx["labels"][i])
        defect = None if ctx["defects"] is None else ctx["defects"][i]
        badge, badge_class = _label_badge(lab, defect, kept)
        votes = [None if np.isnan(v) else round(float(v)) for v in ctx["pct"][:MAX_VOTES, i]]
        out.append({
            "index": i, "id": purifier.ids_[i], "page": pos // page_size,
            "rank": int(ctx["anomaly_rank"][i]), "consensus": float(purifier.consensus_[i]),
            "score": float(purifier.selection_scores_[i]),
            "src": thumb[0], "src_map": thumb[1], "badge": badge, "badge_class": badge_class,
            "votes": votes,
        })
    return out


def _make_thumbs(dataset: Any, indices: np.ndarray, maps: dict[int, np.ndarray],
                 size: int, show_progress: bool) -> dict[int, tuple[str | None, str | None]]:
    if dataset is None or indices.size == 0:
        return {}
    norm = images.normalisation_of(dataset)
    masks = _mask_reader(dataset)
    scale = images.map_scale(list(maps.values()))
    thumbs: dict[int, tuple[str | None, str | None]] = {}
    # about ten updates in all: one log line per thumbnail would flood a non-TTY log
    step = max(1, int(indices.size) // 10)
    failures: list[tuple[int, Exception]] = []
    with progress_bar(int(indices.size), "report: thumbnails", enabled=show_progress) as advance:
        for pos, i in enumerate(indices, 1):
            i = int(i)
            try:
                rgb = images.item_to_rgb(dataset[i], norm)
            except Exception as exc:  # an unreadable file shows as a placeholder
                failures.append((i, exc))
                rgb = None
            if rgb is not None:
                thumbs[i] = images.thumbnail(rgb, size, maps.get(i), scale, masks(i),
                                             images.original_aspect(dataset, i))
            if pos % step == 0 or pos == indices.size:
                advance(pos % step or step)
    if failures:
        first, exc = failures[0]
        logger.warning("%d gallery picture(s) could not be read and show as placeholders; "
                       "the first, sample %d (%s): %s", len(failures), first,
                       sample_ids(dataset)[first], exc)
    return thumbs


def _rows(mapping: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, value in mapping.items():
        if isinstance(value, float):
            text = f"{value:.4g}"
        elif isinstance(value, (dict, list, tuple)):
            text = json.dumps(value, default=str)
        else:
            text = "—" if value is None else str(value)
        rows.append((str(key), text))
    return rows


def _render(context: dict[str, Any]) -> str:
    try:
        import jinja2
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the report needs matplotlib and jinja2: pip install 'noisyclean[report]'"
        ) from exc
    source = resources.files("noisyclean.report").joinpath(TEMPLATE).read_text("utf-8")
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env.from_string(source).render(**context)


def write_report(
    purifier: Any,
    dataset: Any = None,
    path: str | Path = "report.html",
    *,
    labels: Any = None,
    maps: Any = None,
    detector: Any = None,
    max_gallery: int = 240,
    n_borderline: int = 48,
    page_size: int = 48,
    thumb_size: int = 160,
    title: str | None = None,
    run_info: dict[str, Any] | None = None,
    progress: bool | None = None,
) -> Path:
    """Write the HTML report of a fitted purifier to ``path``; returns the path.

    Args:
        purifier: a fitted (or loaded) :class:`~noisyclean.Purifier`.
        dataset: the dataset it was fitted on, for the thumbnails, labels and masks. ``None``
            writes the report without images.
        path: the HTML file. Its plots also go to ``<stem>_plots/*.png`` beside it.
        labels: true labels (0 normal, 1 anomaly, -1 unknown), for evaluation. By default
            read from the dataset (:func:`noisyclean.data.labels_of`); ``False`` hides them.
            The purity table appears only when every label is known.
        maps: anomaly maps for the galleries: an ``(n, H, W)`` array, ``{index: (H, W)}``,
            ``False`` for none, or ``None`` to compute them with ``detector`` (default: the
            purifier's final detector from :meth:`~noisyclean.Purifier.fit_final`, when it
            has ``score_maps``).
        detector: a fitted detector with ``score_maps`` to draw the maps with.
        max_gallery: at most this many dropped images are shown (most anomalous first).
        n_borderline: this many kept images just under the threshold are shown.
        page_size: thumbnails per gallery page (the page switches pages without reloading).
        thumb_size: the longest side of a thumbnail, in pixels.
        title: the page title.
        run_info: extra facts shown under "Run" (the data folder, its settings, ...).
        progress: show a progress bar; defaults to the purifier's ``progress`` setting.
    """
    start = time.perf_counter()
    _check_fitted(purifier)
    _check_dataset(purifier, dataset)
    if page_size < 1 or max_gallery < 0 or n_borderline < 0 or thumb_size < 16:
        raise ValueError(
            f"page_size ({page_size}) must be >= 1, max_gallery ({max_gallery}) and "
            f"n_borderline ({n_borderline}) >= 0, thumb_size ({thumb_size}) >= 16"
        )
    path = Path(path)
    _check_destination(path, dataset)
    show_progress = bool(getattr(purifier, "progress", True) if progress is None else progress)
    n = int(purifier.n_samples_)
    scores = np.asarray(purifier.scores_, dtype=np.float64)
    # what the selection ranked: the consensus, or with the whole-image view the larger rank
    ranked = np.asarray(purifier.selection_scores_, dtype=np.float64)
    keep_mask = np.asarray(purifier.keep_mask_, dtype=bool)
    membership = np.asarray(purifier.membership_, dtype=bool)
    ranking = np.asarray(purifier.ranking_, dtype=np.int64)
    n_keep = int(purifier.n_keep_)

    raw_labels = None if labels is False else (
        _auto_labels(dataset) if labels is None else np.asarray(labels).reshape(-1))
    y = analysis.known_labels(raw_labels, n)
    if raw_labels is not None and (np.asarray(raw_labels) < 0).all():
        raw_labels = None  # a folder without label sub-folders: nothing is known
    defects = _defect_types(dataset) if raw_labels is not None else None
    threshold = analysis.keep_threshold(ranked, ranking, n_keep)
    rho, common = analysis.spearman_matrix(scores)
    pct = analysis.percentile_ranks(scores)
    anomaly_rank = np.empty(n, dtype=np.int64)
    anomaly_rank[ranking[::-1]] = np.arange(1, n + 1)
    plan = analysis.plan_galleries(ranking, n_keep, max_gallery, n_borderline)

    norm_name = purifier.normalize if isinstance(purifier.normalize, str) or \
        purifier.normalize is None else "custom"
    pngs = {
        "consensus": plots.consensus_histogram(
            ranked, keep_mask, threshold, y, norm_name,
            xlabel=("the larger of the consensus and whole-image ranks; higher = more "
                    "anomalous") if purifier.whole_image_ else None),
        "submodels": plots.submodel_histograms(scores, membership, y),
        "agreement": plots.agreement_heatmap(rho),
    }
    folder = plots_dir(path)
    for name, data in pngs.items():
        atomic_write_bytes(folder / f"{name}.png", data)

    map_s = 0.0
    if maps is False:
        gallery_maps: dict[int, np.ndarray] = {}
    elif maps is not None:
        gallery_maps = given_maps(maps, plan.all_indices, n)
    elif detector is not None:
        gallery_maps, map_s = computed_maps(detector, dataset, plan.all_indices, strict=True)
    else:
        final = getattr(purifier, "final_detector_", None)
        # The final detector trained on the kept images: a memory bank maps its own training
        # images as flawless, so only the dropped ones get maps from it.
        mapped = plan.dropped if _is_memory(final) else plan.all_indices
        gallery_maps, map_s = computed_maps(final, dataset, mapped, strict=False)
    thumbs = _make_thumbs(dataset, plan.all_indices, gallery_maps, thumb_size, show_progress)

    ctx = {"thumbs": thumbs, "labels": raw_labels, "defects": defects, "pct": pct,
           "anomaly_rank": anomaly_rank}
    galleries = [
        {"key": "dropped", "title": "Dropped images",
         "note": (f"{plan.dropped.size} of {plan.n_dropped_total} dropped images, most "
                  "anomalous first." + (" Raise max_gallery to see more."
                                         if plan.dropped.size < plan.n_dropped_total else "")),
         "tiles": _tiles(purifier, dataset, plan.dropped, page_size, False, ctx)},
        {"key": "borderline", "title": "Borderline kept images",
         "note": (f"The {plan.borderline.size} kept images closest to the threshold, closest "
                  "first: if defects show up here, keep less."),
         "tiles": _tiles(purifier, dataset, plan.borderline, page_size, True, ctx)},
    ]
    for g in galleries:
        g["pages"] = max(1, -(-len(g["tiles"]) // page_size))
        g["has_maps"] = any(t["src_map"] for t in g["tiles"])
    if gallery_maps and not galleries[1]["has_maps"] and galleries[1]["tiles"]:
        galleries[1]["note"] += (" No anomaly maps here: the final detector keeps its training "
                                 "images in memory, so it would map these kept ones as flawless.")

    purity = None
    if y is not None:
        purity = analysis.purity(y, keep_mask, scores, ranked, defects)
    if raw_labels is None:
        purity_note = "No labels: the dataset carries none, so purity cannot be measured."
    elif y is None:
        unknown = int((np.asarray(raw_labels) < 0).sum())
        purity_note = (f"{unknown} of {n} labels are unknown, so the anomaly fraction before "
                       "and after cannot be measured; the table is left out.")
    else:
        purity_note = ""

    manifest = purifier.manifest()
    timings = dict(getattr(purifier, "timings_", {}) or {})
    if map_s:
        timings["report_maps_s"] = map_s
    timings["report_s"] = time.perf_counter() - start
    context = {
        "title": title or f"noisyclean report: {manifest['config'].get('detector')}",
        "generated": _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "n": n, "n_keep": n_keep, "n_drop": n - n_keep, "threshold": threshold,
        "config": manifest["config"], "scoring": manifest["scoring"], "seed": manifest["seed"],
        "whole_image": bool(manifest.get("whole_image", False)),
        "m": int(scores.shape[0]), "has_images": dataset is not None,
        "has_maps": bool(gallery_maps),
        "plots": {k: {"uri": images.data_uri(v, "image/png"),
                      "file": f"{folder.name}/{k}.png"} for k, v in pngs.items()},
        "n_panels": min(scores.shape[0], plots.MAX_PANELS),
        "mean_rho": analysis.mean_off_diagonal(rho),
        "min_common": int(common[~np.eye(len(common), dtype=bool)].min()) if len(common) > 1
        else n,
        "galleries": galleries, "page_size": page_size,
        "purity": purity, "purity_note": purity_note,
        "config_rows": _rows(manifest["config"]),
        "version_rows": _rows(manifest["versions"]),
        "timing_rows": _rows(timings),
        "run_rows": _rows(run_info or {}),
    }
    html = _render(context)
    atomic_write_text(path, html)
    logger.info("wrote the report %s (%.1f MB) and its plots in %s", path,
                len(html) / 1e6, folder)
    return path
