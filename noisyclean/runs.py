"""The Python calls behind ``noisyclean purify`` and ``noisyclean evaluate``.

A purify run reads an image folder (never writing into it), runs the Purifier with a score
cache inside the output folder (so running the same command again after a crash resumes),
and writes plain files a person or another tool can read: the kept and dropped lists, a CSV
of every score, and a JSON manifest.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean._io import atomic_write_text
from noisyclean.line_lists import check_line_safe
from noisyclean.outdir import plan_output
from noisyclean.purifier import MANIFEST_FORMAT, Purifier

logger = logging.getLogger(__name__)

PURIFIED, DROPPED, SCORES_CSV, CACHE = "purified.txt", "dropped.txt", "scores.csv", "cache"


class OutputLocationError(ValueError):
    """The output folder would be inside the data folder."""


def check_out_dir(data_dir: Path, out_dir: Path) -> None:
    """Refuse an output folder inside the data folder: we never write into user data."""
    data, out = data_dir.resolve(), out_dir.resolve()
    if out == data or data in out.parents:
        raise OutputLocationError(
            f"the output folder {out_dir} lies inside the data folder {data_dir}; noisyclean "
            "never writes into a data folder. Choose an output folder outside it."
        )


def _resolved_masks(data_dir: Path, masks: str | Path | None) -> str | None:
    """A mask folder as an absolute path (so a report can find it from anywhere); a name
    pattern such as ``{stem}.png`` as given."""
    if masks is None:
        return None
    text = str(masks)
    return text if "{stem}" in text else str(Path(masks).resolve())


@dataclass
class PurifyResult:
    purifier: Purifier
    dataset: Any
    out_dir: Path
    summary: str = ""
    """One line saying what happened to the output folder (new, resumed, replaced)."""


def write_outputs(purifier: Purifier, dataset: Any, out_dir: Path,
                  extra: dict[str, Any] | None = None) -> None:
    """Write purified.txt, dropped.txt, scores.csv, manifest.json and scores.npz atomically."""
    ids = purifier.ids_
    check_line_safe(ids)
    keep = purifier.keep_mask_
    atomic_write_text(out_dir / PURIFIED, "".join(f"{ids[i]}\n" for i in np.flatnonzero(keep)))
    atomic_write_text(out_dir / DROPPED, "".join(f"{ids[i]}\n" for i in np.flatnonzero(~keep)))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    m = purifier.scores_.shape[0]
    whole = purifier.whole_image_scores_ if purifier.whole_image_ else None
    writer.writerow(["id", *(f"submodel_{j}" for j in range(m)), "consensus",
                     *(["whole_image"] if whole is not None else []), "kept"])
    for i, sid in enumerate(ids):
        row = ["" if np.isnan(s) else f"{s:.6g}" for s in purifier.scores_[:, i]]
        whole_cell = [f"{whole[i]:.6g}"] if whole is not None else []
        writer.writerow([sid, *row, f"{purifier.consensus_[i]:.6g}", *whole_cell, int(keep[i])])
    atomic_write_text(out_dir / SCORES_CSV, buf.getvalue())
    purifier.save(out_dir, extra=extra)


def purify_folder(
    data_dir: str | Path,
    out_dir: str | Path,
    *,
    detector: str = "patchknn",
    detector_kwargs: dict[str, Any] | None = None,
    image_size: int = 224,
    masks: str | Path | None = None,
    on_error: str = "raise",
    resume: bool = True,
    overwrite: bool = False,
    **purifier_kwargs: Any,
) -> PurifyResult:
    """Purify the images in ``data_dir``; write the results into ``out_dir``.

    ``purifier_kwargs`` go to :class:`~noisyclean.Purifier` (``k``, ``keep``, ``scoring``,
    ...). With ``resume`` (the default), finished sub-models are cached in
    ``out_dir/cache`` and a rerun of the same command skips them. A folder that holds an
    earlier finished run is replaced only with ``overwrite``; files noisyclean did not write
    are never replaced (:mod:`noisyclean.outdir`).
    """
    from noisyclean.data import ImageFolder

    data_dir, out_dir = Path(data_dir), Path(out_dir)
    check_out_dir(data_dir, out_dir)
    plan = plan_output(out_dir, MANIFEST_FORMAT, overwrite)
    start = time.perf_counter()
    dataset = ImageFolder(data_dir, masks=masks, image_size=image_size, on_error=on_error)
    check_line_safe(dataset.ids, "the file name")
    t_load = time.perf_counter() - start
    cache_dir = out_dir / CACHE if resume else None
    purifier = Purifier(detector, detector_kwargs=detector_kwargs, cache_dir=cache_dir,
                        **purifier_kwargs).fit(dataset)
    purifier.timings_["load_s"] = t_load
    plan.clear_earlier_run()
    write_outputs(purifier, dataset, out_dir, extra={
        "data_dir": str(data_dir.resolve()),
        "dataset": {"layout": "folder", "image_size": image_size,
                    "masks": _resolved_masks(data_dir, masks),
                    "skipped": [list(s) for s in dataset.skipped]},
    })
    logger.info("wrote %s (%d kept, %d dropped)", out_dir, purifier.n_keep_,
                purifier.n_samples_ - purifier.n_keep_)
    return PurifyResult(purifier, dataset, out_dir, plan.summary)


def evaluate(
    data_dir: str | Path,
    test_dir: str | Path,
    *,
    train_list: str | Path | None = None,
    detector: str = "patchknn",
    detector_kwargs: dict[str, Any] | None = None,
    image_size: int = 224,
    normal_dirs: Sequence[str] = ("good",),
    test_masks: str | Path | None = None,
) -> dict[str, float]:
    """Train ``detector`` on ``data_dir`` (or the images of ``train_list``) and test it.

    List entries are paths relative to ``data_dir``; absolute paths, ``..`` and links that
    lead outside it are refused. The test folder's first-level folders name the labels:
    those in ``normal_dirs`` hold normals, any other holds anomalies. Returns image metrics,
    and pixel metrics when the test set has masks and the detector gives maps.
    """
    from noisyclean.data import ImageFolder, labels_of, masks_of, read_image_list
    from noisyclean.metrics import image_metrics, pixel_metrics
    from noisyclean.plugins import get_detector
    from noisyclean.protocol import scores_and_maps

    files = read_image_list(train_list) if train_list else None
    train_view = ImageFolder(data_dir, image_size=image_size, files=files)
    test = ImageFolder(test_dir, masks=test_masks, image_size=image_size,
                       normal_dirs=list(normal_dirs))
    start = time.perf_counter()
    model = get_detector(detector, **(detector_kwargs or {})).fit(train_view)
    fit_s = time.perf_counter() - start
    labels = labels_of(test)
    result: dict[str, float] = {"n_train": float(len(train_view)), "fit_s": fit_s}
    scores, maps = scores_and_maps(model, test, maps=test_masks is not None)
    result.update(image_metrics(labels, scores))
    if maps is not None:
        result.update(pixel_metrics(masks_of(test), maps))
    return result
