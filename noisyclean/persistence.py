"""Saving and loading a fitted Purifier: ``manifest.json`` and ``scores.npz`` in a folder.

The manifest holds the configuration, the versions, the ids and the selection as JSON; the
score matrix, the membership, the consensus and the whole-image distances go to an ``.npz``
read with ``allow_pickle=False``. Nothing is ever unpickled. A detector given by name is
restored by name; a factory cannot be stored in JSON, so :func:`load` asks for it again.
The :class:`~noisyclean.Purifier` methods ``manifest``, ``save`` and ``load`` call these.
"""

from __future__ import annotations

import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from noisyclean import consensus as consensus_mod
from noisyclean import whole_image as whole_image_mod
from noisyclean._io import atomic_save_npz, atomic_write_json
from noisyclean.factories import factory_key
from noisyclean.manifest_check import (
    MANIFEST,
    SCORES,
    keep_settings,
    read_manifest,
    read_scores,
)
from noisyclean.partition import partition_labels

MANIFEST_FORMAT = "noisyclean.purifier/1"

P = TypeVar("P")  # the Purifier class load() builds, so this module need not import it


def config(purifier: Any) -> dict[str, Any]:
    """The constructor arguments as JSON: a factory is stored by its :func:`factory_key`."""
    return {
        "detector": purifier.detector if isinstance(purifier.detector, str) else factory_key(
            purifier.detector),
        "detector_is_name": isinstance(purifier.detector, str),
        "detector_kwargs": purifier.detector_kwargs,
        "k": int(purifier.k),
        "keep": purifier.keep,
        "keep_count": purifier.keep_count,
        "scoring": purifier.scoring,
        "normalize": purifier.normalize,
        "aggregate": purifier.aggregate if isinstance(purifier.aggregate, str) else factory_key(
            purifier.aggregate),
        "partition": purifier.partition if isinstance(purifier.partition, str) else repr(
            purifier.partition),
        "seed": int(purifier.seed),
        "executor": purifier.executor if isinstance(purifier.executor, str) else repr(
            purifier.executor),
        "refine": int(purifier.refine),
        "core": float(purifier.core),
        "submodel_params": purifier.submodel_params,
        "whole_image": purifier.whole_image,
        "whole_image_neighbors": int(purifier.whole_image_neighbors),
        "mutual": purifier.mutual,
        "mutual_params": purifier.mutual_params,
        "protect_tail": bool(purifier.protect_tail),
    }


def manifest(purifier: Any) -> dict[str, Any]:
    """What :func:`save` writes as JSON: configuration, versions, ids and the selection."""
    purifier._check_fitted()
    return {
        "format": MANIFEST_FORMAT,
        "config": config(purifier),
        "detector_arguments": purifier.detector_arguments_,
        "versions": purifier.versions_,
        "seed": int(purifier.seed),
        "scoring": purifier.scoring_,
        "whole_image": bool(purifier.whole_image_),
        "mutual": bool(purifier.mutual_),
        "n_samples": int(purifier.n_samples_),
        "n_keep": int(purifier.n_keep_),
        "n_submodels": int(purifier.n_submodels_),
        "timings": purifier.timings_,
        "ids": purifier.ids_,
        "keep_indices": purifier.keep_indices_.tolist(),
        "drop_indices": purifier.drop_indices_.tolist(),
    }


def save(purifier: Any, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write ``manifest.json`` and ``scores.npz`` into the folder ``path``, atomically."""
    out = Path(path)
    contents = manifest(purifier)
    if extra:
        contents.update(extra)
    whole = {} if purifier.whole_image_scores_ is None else {
        "whole_image": purifier.whole_image_scores_}
    if purifier.mutual_scores_ is not None:
        whole["mutual"] = purifier.mutual_scores_
    if purifier.tail_mask_ is not None:
        whole["tail"] = purifier.tail_mask_
    atomic_save_npz(out / SCORES, scores=purifier.scores_, membership=purifier.membership_,
                    consensus=purifier.consensus_, round=purifier.round_, **whole)
    atomic_write_json(out / MANIFEST, contents)
    return out


def load(cls: type[P], path: str | Path, detector: Callable[[], Any] | str | None = None) -> P:
    """Read a saved Purifier. Nothing is unpickled: JSON and ``allow_pickle=False``.

    A detector given by name is restored; a factory cannot be stored, so pass
    ``detector=`` to call :meth:`fit_final` on a loaded Purifier built from one.
    """
    folder = Path(path)
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{manifest_path} does not exist; point load() at a folder written by "
            "Purifier.save() or `noisyclean purify --out`."
        )
    saved = read_manifest(manifest_path, MANIFEST_FORMAT)
    cfg = saved["config"]
    if detector is None:
        detector = cfg["detector"] if cfg["detector_is_name"] else _unrestorable(cfg)
    keep, keep_count = keep_settings(cfg)
    agg = cfg["aggregate"] if cfg["aggregate"] in consensus_mod.AGGREGATORS else "mean"
    obj = cls(
        detector, k=cfg["k"], keep=keep, keep_count=keep_count, scoring=cfg["scoring"],
        normalize=cfg["normalize"], aggregate=agg, seed=cfg["seed"],
        detector_kwargs=cfg["detector_kwargs"] if cfg["detector_is_name"] else None,
        refine=cfg.get("refine", 0), core=cfg.get("core", 0.25),
        submodel_params=cfg.get("submodel_params", "auto"),
        # saved before the whole-image view existed: the consensus alone chose
        whole_image=cfg.get("whole_image", False),
        whole_image_neighbors=cfg.get("whole_image_neighbors",
                                      whole_image_mod.DEFAULT_NEIGHBORS),
        mutual=cfg.get("mutual", False), mutual_params=cfg.get("mutual_params"),
        protect_tail=cfg.get("protect_tail", False),
    )
    arrays = read_scores(folder / SCORES, saved)
    obj.n_samples_ = int(saved["n_samples"])
    obj.ids_ = list(saved["ids"])
    obj.membership_ = arrays["membership"].astype(bool)
    obj.n_submodels_ = int(saved.get("n_submodels", obj.membership_.shape[0]))
    obj.round_ = arrays.get("round", np.zeros(obj.membership_.shape[0], dtype=np.int64))
    obj.partition_ = partition_labels(obj.membership_[: obj.n_submodels_])
    obj.scoring_ = saved["scoring"]
    obj.scores_ = arrays["scores"]
    obj.consensus_ = arrays["consensus"]
    obj.n_keep_ = int(saved["n_keep"])
    obj.whole_image_scores_ = arrays.get("whole_image")
    obj.whole_image_ = bool(saved.get("whole_image", False))
    obj.mutual_scores_ = arrays.get("mutual")
    obj.mutual_ = bool(saved.get("mutual", False))
    tail = arrays.get("tail")
    obj.tail_mask_ = None if tail is None else tail.astype(bool)
    obj._rank()
    obj.keep_indices_ = np.asarray(saved["keep_indices"], dtype=np.int64)
    obj.drop_indices_ = np.asarray(saved["drop_indices"], dtype=np.int64)
    obj.keep_mask_ = np.zeros(obj.n_samples_, dtype=bool)
    obj.keep_mask_[obj.keep_indices_] = True
    obj.timings_ = dict(saved.get("timings", {}))
    obj.versions_ = dict(saved.get("versions", {}))
    obj.detector_arguments_ = saved.get("detector_arguments")
    return obj


def _unrestorable(cfg: dict[str, Any]) -> Callable[[], Any]:
    def missing() -> Any:
        raise RuntimeError(
            f"this Purifier was saved with the detector factory {cfg['detector']}, which "
            "cannot be stored in JSON; pass it again: Purifier.load(path, detector=factory)."
        )

    return missing


def versions() -> dict[str, str]:
    """The versions of Python and of the libraries a result may depend on, for the manifest."""
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("noisyclean", "numpy", "scikit-learn", "torch", "timm", "anomalib"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out
