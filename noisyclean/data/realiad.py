"""The Real-IAD FUIAD splits: ``realiad_jsons_fuiad_{0.0,0.1,0.2,0.4}/<object>.json``.

Real-IAD's FUIAD (fully unsupervised industrial anomaly detection) setting ships one JSON
file per object and noise ratio. Its shape, as Real-IAD, anomalib and Dinomaly read it::

    {"meta": {"normal_class": "OK", "prefix": "...", ...},
     "train": [{"category": "audiojack", "anomaly_class": "OK" | "AK" | ...,
                "image_path": "OK/S0001/audiojack_0001_OK_C1_....jpg",
                "mask_path": null | "NG/AK/S0012/..._mask.png"}, ...],
     "test": [...]}

``image_path`` and ``mask_path`` are relative to the object's folder of one resolution,
``realiad_<res>/<object>/``. In the FUIAD files the training list itself contains
anomalies (their share is the noise ratio); their ``anomaly_class`` is kept here as the
label for evaluation only, never handed to a detector.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from noisyclean.data.base import ANOMALY, NORMAL, ImageDataset, Sample, make_transform
from noisyclean.data.errors import DataError, LayoutError
from noisyclean.data.files import OnError, Validate
from noisyclean.data.transforms import ImageTransform

FUIAD_RATIOS = (0.0, 0.1, 0.2, 0.4)
RESOLUTIONS = ("1024", "512", "256", "raw")
SPLITS = ("train", "test", "all")


def fuiad_json_candidates(root: Path, category: str, noise_ratio: float) -> list[Path]:
    """Where the FUIAD JSON of ``category`` at ``noise_ratio`` may lie under ``root``."""
    name = f"realiad_jsons_fuiad_{float(noise_ratio):.1f}"
    return [
        root / "realiad_jsons" / name / f"{category}.json",
        root / name / f"{category}.json",
    ]


def _inside(rel: str, what: str, json_file: Path) -> PurePosixPath:
    p = PurePosixPath(str(rel).replace("\\", "/"))
    if p.is_absolute() or ".." in p.parts or not p.parts:
        raise LayoutError(f"{json_file}: {what} {rel!r} must be a relative path inside the "
                          "object folder")
    return p


class RealIADFUIAD(ImageDataset):
    """One Real-IAD object under a FUIAD JSON split.

    Args:
        root: the Real-IAD folder (holding ``realiad_<res>/`` and ``realiad_jsons/``).
        category: the object, for example ``"audiojack"``. Needed with ``noise_ratio``;
            with ``json_path`` it defaults to the ``category`` field of the entries.
        noise_ratio: one of 0.0, 0.1, 0.2, 0.4: picks
            ``realiad_jsons[/realiad_jsons]_fuiad_<ratio>/<category>.json``.
        json_path: a JSON split file instead (relative paths are relative to ``root``).
        split: ``"train"``, ``"test"`` or ``"all"`` (train then test).
        resolution: ``"1024"``, ``"512"``, ``"256"`` or ``"raw"``; ``None`` takes the first
            of these whose ``realiad_<res>/<category>`` folder exists.
        image_root: the folder the JSON's paths are relative to, when it is not
            ``realiad_<res>/<category>`` (relative paths are relative to ``root``; it must
            lie inside ``root``, because sample ids are relative to ``root``).
        image_size, crop_size, normalize, grayscale_to_rgb, transform, on_error, validate:
            as in :class:`~noisyclean.data.ImageFolder`.

    Labels: ``anomaly_class`` equal to ``meta.normal_class`` (``"OK"``) is normal; any
    other class is an anomaly whose defect type is that class code (``"AK"``, ``"HS"``...).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        category: str | None = None,
        *,
        noise_ratio: float | None = None,
        json_path: str | os.PathLike | None = None,
        split: Literal["train", "test", "all"] = "train",
        resolution: str | int | None = None,
        image_root: str | os.PathLike | None = None,
        image_size: int | tuple[int, int] | None = 224,
        crop_size: int | tuple[int, int] | None = None,
        normalize: Any = "imagenet",
        grayscale_to_rgb: bool = True,
        transform: ImageTransform | None = None,
        on_error: OnError = "raise",
        validate: Validate = "verify",
    ):
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
        root_path = Path(root).expanduser().absolute()
        if not root_path.is_dir():
            raise DataError(f"the Real-IAD folder {root_path} does not exist")
        json_file = self._find_json(root_path, category, noise_ratio, json_path)
        meta, entries = self._read_json(json_file, split)
        category = category or self._category_of(entries, json_file)
        base = self._image_base(root_path, category, resolution, image_root)
        normal_class = str(meta.get("normal_class", "OK"))
        samples = []
        for entry in entries:
            img = base / _inside(entry["image_path"], "image_path", json_file)
            cls = str(entry["anomaly_class"])
            if cls == normal_class:
                samples.append(Sample(path=img, label=NORMAL))
                continue
            mask = entry.get("mask_path")
            samples.append(Sample(
                path=img, label=ANOMALY, defect_type=cls,
                mask_path=base / _inside(mask, "mask_path", json_file) if mask else None,
            ))
        self.category = category
        self.split = split
        self.json_path = json_file
        self.noise_ratio = noise_ratio
        super().__init__(
            root_path,
            samples,
            transform=make_transform(transform, image_size, crop_size, normalize,
                                     grayscale_to_rgb),
            on_error=on_error,
            validate=validate,
        )

    @staticmethod
    def _find_json(root: Path, category: str | None, noise_ratio: float | None,
                   json_path: str | os.PathLike | None) -> Path:
        if json_path is not None:
            if noise_ratio is not None:
                raise ValueError("give json_path or noise_ratio, not both")
            path = Path(json_path).expanduser()
            path = path if path.is_absolute() else root / path
            if not path.is_file():
                raise DataError(f"the JSON split {path} does not exist")
            return path
        if noise_ratio is None or category is None:
            raise ValueError(
                "give json_path=..., or category=... and noise_ratio=... (one of "
                f"{FUIAD_RATIOS}) to pick realiad_jsons_fuiad_<ratio>/<category>.json"
            )
        tried = fuiad_json_candidates(root, category, noise_ratio)
        for path in tried:
            if path.is_file():
                return path
        raise DataError(
            "no FUIAD JSON found; looked for " + ", ".join(str(p) for p in tried)
            + ". Unpack realiad_jsons into the Real-IAD folder, or pass json_path=..."
        )

    @staticmethod
    def _read_json(json_file: Path, split: str) -> tuple[dict, list[dict]]:
        try:
            with open(json_file, encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise DataError(f"cannot read the JSON split {json_file}: {exc}") from None
        if not isinstance(data, dict) or not ({"train", "test"} & set(data)):
            raise LayoutError(f"{json_file} is not a Real-IAD split: it needs 'train' and/or "
                              "'test' lists")
        keys = ("train", "test") if split == "all" else (split,)
        entries: list[dict] = []
        for key in keys:
            part = data.get(key)
            if part is None:
                raise LayoutError(f"{json_file} has no '{key}' list")
            if not isinstance(part, list):
                raise LayoutError(f"{json_file}: '{key}' must be a list of entries")
            for n, entry in enumerate(part):
                if not isinstance(entry, dict) or "image_path" not in entry \
                        or "anomaly_class" not in entry:
                    raise LayoutError(
                        f"{json_file}: entry {n} of '{key}' needs 'image_path' and "
                        "'anomaly_class'"
                    )
            entries += part
        meta = data.get("meta") or {}
        if not isinstance(meta, dict):
            raise LayoutError(f"{json_file}: 'meta' must be an object")
        return meta, entries

    @staticmethod
    def _category_of(entries: list[dict], json_file: Path) -> str:
        cats = {str(e["category"]) for e in entries if e.get("category")}
        if len(cats) == 1:
            return cats.pop()
        if not cats:
            return json_file.stem
        raise LayoutError(f"{json_file} mixes categories {sorted(cats)}; pass category=...")

    @staticmethod
    def _image_base(root: Path, category: str, resolution: str | int | None,
                    image_root: str | os.PathLike | None) -> Path:
        if image_root is not None:
            base = Path(image_root).expanduser()
            base = base if base.is_absolute() else root / base
            if not base.is_dir():
                raise DataError(f"the image folder {base} does not exist")
            return base
        options = [str(resolution)] if resolution is not None else list(RESOLUTIONS)
        tried = [root / f"realiad_{res}" / category for res in options]
        for base in tried:
            if base.is_dir():
                return base
        raise DataError(
            "no Real-IAD image folder found; looked for " + ", ".join(str(p) for p in tried)
            + ". Pass resolution=... or image_root=..."
        )
