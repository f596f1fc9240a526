"""The report of a finished ``noisyclean purify`` run, rebuilt from its output folder.

Everything but the pixels is in the folder (``manifest.json``, ``scores.npz``); the pixels
are read again from the data folder the manifest names, with the same image size and masks,
and only for the gallery images. The data folder is opened with exactly the purified ids
and no up-front file checks, so a report of 100,000 images does not re-scan the folder; a
file that has gone since shows as a placeholder rather than stopping the report.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

from noisyclean.manifest_check import read_manifest
from noisyclean.outdir import check_report_target
from noisyclean.persistence import MANIFEST, MANIFEST_FORMAT
from noisyclean.purifier import Purifier
from noisyclean.report.recompute import train_map_detector
from noisyclean.report.writer import write_report

logger = logging.getLogger(__name__)

REPORT = "report.html"
MAX_SKIPPED_SHOWN = 20


def _read_manifest(out_dir: Path) -> dict[str, Any]:
    path = out_dir / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; give the output folder of `noisyclean purify --out` "
            "(or of Purifier.save)."
        )
    return read_manifest(path, MANIFEST_FORMAT)


def dataset_of_run(manifest: dict[str, Any], ids: list[str]) -> Any:
    """The run's images, opened as the run opened them, in the purified order.

    Raises ``ValueError`` when the manifest does not say where the data is (a folder written
    by :meth:`Purifier.save` from Python) and ``FileNotFoundError`` when that folder is gone.
    """
    from noisyclean.data import ImageFolder

    data_dir = manifest.get("data_dir")
    settings = manifest.get("dataset") or {}
    layout = settings.get("layout", "folder")
    if layout == "demo":
        return _demo_train_set(settings)
    if layout != "folder":
        raise ValueError(
            f"the run used the {layout!r} layout, which `noisyclean report` cannot reopen; "
            "use purifier.report(dataset, path) from Python, or --no-images."
        )
    if not data_dir:
        raise ValueError(
            "this run folder does not record its data folder (it was written by "
            "Purifier.save, not `noisyclean purify`); write the report from Python with "
            "purifier.report(dataset, path), or without pictures (--no-images)."
        )
    if not Path(data_dir).is_dir():
        raise FileNotFoundError(
            f"the run's data folder {data_dir} is not there any more; mount it again, or "
            "write the report without pictures (--no-images)."
        )
    masks = settings.get("masks")
    if masks and "{stem}" not in masks and not Path(masks).is_dir():
        logger.warning("the run's mask folder %s is not there (run the report from the folder "
                       "you ran purify in); the report shows no masks", masks)
        masks = None
    with warnings.catch_warnings():  # one summary line below instead of one per file
        warnings.simplefilter("ignore", UserWarning)
        present = ImageFolder(
            data_dir, masks=masks, image_size=settings.get("image_size", 224),
            files=list(ids), validate="none", on_error="skip",
        )
    if len(present) == len(ids):
        return present
    logger.warning("%d of the run's %d images are no longer in %s; they show as placeholders",
                   len(ids) - len(present), len(ids), data_dir)
    return _WithGaps(present, ids)


def _demo_train_set(settings: dict[str, Any]) -> Any:
    """The training set of ``noisyclean demo --out``, generated again (it is deterministic).

    The report checks the regenerated ids against the run's, so a demo changed since the run
    is refused rather than shown with the wrong pictures.
    """
    from noisyclean.demo import demo_split

    try:
        train, _, _ = demo_split(**{key: settings[key] for key in (
            "n_normal", "n_anomalous", "image_size", "noise_ratio", "seed")})
    except KeyError as exc:
        message = f"the demo run's manifest lacks the setting {exc}; use --no-images"
        raise ValueError(message) from exc
    return train


class _WithGaps:
    """The run's images at the run's positions, when some files have gone since the run.

    Reading a missing one raises ``FileNotFoundError``, which the report shows as a
    placeholder; everything else (ids, transform, masks) reads through to the folder.
    """

    def __init__(self, present: Any, ids: list[str]):
        self.present = present
        self.ids = list(ids)
        self.transform = present.transform
        where = {sid: k for k, sid in enumerate(present.ids)}
        self._positions = [where.get(sid) for sid in self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def _where(self, i: int) -> int:
        k = self._positions[i]
        if k is None:
            raise FileNotFoundError(f"{self.ids[i]} is no longer in {self.present.root}")
        return k

    def __getitem__(self, i: int) -> Any:
        return self.present[self._where(i)]

    def mask(self, i: int) -> Any:
        return self.present.mask(self._where(i))


def report_from_run(
    out_dir: str | Path,
    path: str | Path | None = None,
    *,
    images: bool = True,
    maps: bool = True,
    **options: Any,
) -> Path:
    """Write the report of the purify run in ``out_dir``; returns the HTML path.

    Args:
        out_dir: the output folder of ``noisyclean purify`` (``manifest.json``,
            ``scores.npz``).
        path: the HTML file; default ``out_dir/report.html``.
        images: read the gallery pictures from the run's data folder. ``False`` writes the
            plots, tables and ids only (for when the data is not at hand).
        maps: when the detector can localise, train the final detector on the kept images
            (:mod:`noisyclean.report.recompute`) and show its anomaly maps; the page says
            which detector drew them.
        options: passed to :func:`~noisyclean.report.write_report` (``max_gallery``,
            ``page_size``, ``labels``, ``progress``, ...).
    """
    from noisyclean.runs import check_out_dir

    out_dir = Path(out_dir)
    manifest = _read_manifest(out_dir)
    purifier = Purifier.load(out_dir)
    target = Path(path) if path is not None else out_dir / REPORT
    check_report_target(target)
    data_dir = manifest.get("data_dir")
    if data_dir:
        check_out_dir(Path(data_dir), target.parent)
    dataset = dataset_of_run(manifest, purifier.ids_) if images else None
    settings = manifest.get("dataset") or {}
    skipped = settings.get("skipped") or []
    run_info: dict[str, Any] = {"run folder": str(out_dir.resolve())}
    if data_dir:
        run_info["data folder"] = data_dir
    for key in ("layout", "image_size", "masks"):
        if key in settings:
            run_info[key] = settings[key]
    if skipped:
        run_info["unreadable files skipped"] = len(skipped)
        run_info["skipped (first)"] = [f"{p}: {why}" for p, why in skipped[:MAX_SKIPPED_SHOWN]]
    if maps and dataset is not None and not isinstance(dataset, _WithGaps) and \
            "maps" not in options and "detector" not in options:
        note = train_map_detector(purifier, dataset)
        if note:
            run_info["anomaly maps"] = note
    options.setdefault("run_info", run_info)
    return write_report(purifier, dataset, target, **options)
