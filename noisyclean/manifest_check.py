"""Reading a saved run back: ``manifest.json`` and ``scores.npz``, checked before use.

Why: a run folder outlives the run. It gets copied, truncated by a full disk, edited by
hand or confused with another tool's ``manifest.json``; used unchecked, such a file fails
deep inside the code with ``KeyError: 'config'`` or an ``IndexError`` that names no file.
Every problem found here is a :class:`ManifestError`: one line naming the file and what is
wrong with it, which the command line shows as a user error.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean._io import load_npz

MANIFEST = "manifest.json"
SCORES = "scores.npz"
"""The two files a saved Purifier (a run folder) holds: the JSON manifest and the arrays."""

CONFIG_KEYS = ("detector", "detector_is_name", "detector_kwargs", "k", "keep", "scoring",
               "normalize", "aggregate", "seed")


class ManifestError(ValueError):
    """A saved run's manifest or score file is damaged, foreign or inconsistent."""


def _index_list(manifest: dict[str, Any], key: str, n: int, path: Path) -> list[int]:
    values = manifest[key]
    if not isinstance(values, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) for i in values):
        raise ManifestError(f"{path}: {key} must be a list of whole numbers")
    outside = [i for i in values if not 0 <= i < n]
    if outside:
        raise ManifestError(f"{path}: {key} holds {outside[0]}, outside the {n} samples "
                            f"(0..{n - 1})")
    return values


def _check_selection(manifest: dict[str, Any], path: Path) -> None:
    n = manifest["n_samples"]
    if not isinstance(n, int) or n < 1:
        raise ManifestError(f"{path}: n_samples must be a whole number >= 1, got {n!r}")
    ids = manifest["ids"]
    if not isinstance(ids, list) or not all(isinstance(s, str) for s in ids):
        raise ManifestError(f"{path}: ids must be a list of strings")
    if len(ids) != n:
        raise ManifestError(f"{path}: it lists {len(ids)} ids for n_samples={n}")
    keep = _index_list(manifest, "keep_indices", n, path)
    drop = _index_list(manifest, "drop_indices", n, path)
    if sorted(keep + drop) != list(range(n)):
        raise ManifestError(f"{path}: keep_indices and drop_indices do not split the {n} "
                            "samples (an index repeats or is missing)")
    if manifest["n_keep"] != len(keep):
        raise ManifestError(f"{path}: n_keep={manifest['n_keep']!r} but keep_indices lists "
                            f"{len(keep)} samples")


def read_manifest(path: str | Path, expected_format: str) -> dict[str, Any]:
    """The manifest at ``path``, checked: valid JSON, our format tag, every key we read,
    and a selection that fits the samples. Raises :class:`ManifestError` otherwise."""
    path = Path(path)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not a text file; is it a manifest?") from None
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{path} is damaged or truncated: not valid JSON ({exc.msg} at "
                            f"line {exc.lineno})") from None
    if not isinstance(manifest, dict):
        raise ManifestError(f"{path} is not a noisyclean manifest: it holds a JSON "
                            f"{type(manifest).__name__}, not an object")
    if manifest.get("format") != expected_format:
        raise ManifestError(f"{path} is not a noisyclean run manifest (format "
                            f"{manifest.get('format')!r}, expected {expected_format!r})")
    missing = [key for key in ("config", "scoring", "n_samples", "n_keep", "ids",
                               "keep_indices", "drop_indices") if key not in manifest]
    if missing:
        raise ManifestError(f"{path} lacks {', '.join(missing)}; it is incomplete")
    config = manifest["config"]
    if not isinstance(config, dict) or any(key not in config for key in CONFIG_KEYS):
        raise ManifestError(f"{path}: its config lacks some of {', '.join(CONFIG_KEYS)}")
    _check_selection(manifest, path)
    return manifest


def keep_settings(config: dict[str, Any]) -> tuple[Any, int | None]:
    """``(keep, keep_count)`` from a saved config. Manifests written before ``keep_count``
    existed stored a count as an integer ``keep``; it comes back as ``keep_count``."""
    keep, count = config["keep"], config.get("keep_count")
    if isinstance(keep, int) and not isinstance(keep, bool) and count is None:
        return 1.0, keep
    return keep, count


def read_scores(path: str | Path, manifest: dict[str, Any]) -> dict[str, np.ndarray]:
    """The arrays of ``scores.npz``, checked against the manifest's number of samples."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path} is missing; the run folder is incomplete")
    try:
        arrays = load_npz(path)
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ManifestError(f"{path} is damaged or not a score file ({exc})") from None
    n = manifest["n_samples"]
    missing = [key for key in ("scores", "membership", "consensus") if key not in arrays]
    if missing:
        raise ManifestError(f"{path} lacks the arrays {', '.join(missing)}")
    scores = arrays["scores"]
    if scores.ndim != 2 or scores.shape[1] != n:
        raise ManifestError(f"{path}: scores has shape {scores.shape}, but the manifest has "
                            f"{n} samples; the two files are from different runs")
    m = scores.shape[0]
    expected = {"membership": (m, n), "consensus": (n,), "whole_image": (n,), "mutual": (n,),
                "tail": (n,), "round": (m,)}
    for key, shape in expected.items():
        if key in arrays and arrays[key].shape != shape:
            raise ManifestError(f"{path}: {key} has shape {arrays[key].shape}, expected "
                                f"{shape}; the file does not belong to this manifest")
    return arrays
