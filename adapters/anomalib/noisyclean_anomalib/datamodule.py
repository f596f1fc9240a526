"""Purify the training split of an anomalib datamodule, and train on the result.

anomalib assumes a clean training split. :func:`purify_datamodule` runs noisyclean's stage 1
on the split a datamodule would train on and returns a copy of the datamodule (same class,
same settings, same test split) whose training split holds only the kept images, so an
existing pipeline changes by one line. :func:`fit_clean` adds stage 2 with the user's own
``Engine``, so their callbacks, loggers and checkpoints apply to the final model.

How the split is replaced, and why it sticks: anomalib datamodules build their splits in
``setup()``, which Lightning calls again at the start of ``fit`` and ``test``. The purified
copy is therefore set up once, filtered, marked as set up, and given a ``setup`` that drops
the same images again should anything rebuild the splits. Images are matched by their file
path, which is also the sample id noisyclean records. Only the training split is filtered:
the test split is never read, changed or scored, and a validation split carved out of the
training images (``val_split_mode="from_train"``) is left as it was.
"""

from __future__ import annotations

import copy
import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from noisyclean_anomalib.inputs import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)


class AnomalibSplit:
    """An anomalib dataset (a datamodule's split) as a noisyclean image dataset.

    Items are the image files read as RGB, resized to ``image_size`` and normalised with
    ImageNet statistics (noisyclean's convention, declared in ``normalize`` so that
    :class:`~noisyclean_anomalib.AnomalibDetector` can undo it). The dataset's own
    augmentations are not applied: purification must see every image the same way each
    time. ``ids`` are the image paths; ``labels`` are anomalib's labels, for evaluation
    only (a folder of "normal" training images says 0 for every one of them).
    """

    def __init__(self, dataset: Any, image_size: int | tuple[int, int] = 256,
                 normalize: Any = (IMAGENET_MEAN, IMAGENET_STD)):
        samples = dataset.samples
        self.paths = [Path(p) for p in samples["image_path"].astype(str)]
        self.ids = [str(p) for p in self.paths]
        self.labels = np.asarray(samples["label_index"], dtype=np.int8)
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        self.image_size = size
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Any:
        import torch
        from anomalib.data.utils import read_image
        from torchvision.transforms.v2 import functional as F

        image = read_image(self.paths[index], as_tensor=True)
        image = F.resize(image, list(self.image_size), antialias=True)
        if self.normalize is not None:
            mean, std = self.normalize
            image = (image - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
        return image.as_subclass(torch.Tensor)

    @property
    def cache_key(self) -> str:
        return f"anomalib-split/{self.image_size[0]}x{self.image_size[1]}/{self.normalize}"


@dataclass
class PurificationResult:
    """What :func:`purify_datamodule` kept and dropped from the training split.

    ``paths`` and ``consensus`` follow the training split's original order; lower
    consensus means more normal. ``purifier`` is the fitted Purifier (its ``scores_``,
    ``membership_``, ``save()``...); with a detector that has ``embed``, its
    ``selection_scores_`` are what the selection ranked (the consensus and the whole-image
    view together).
    """

    paths: list[str]
    kept: list[str]
    dropped: list[str]
    consensus: np.ndarray
    purifier: Any = field(repr=False)

    @property
    def n_before(self) -> int:
        return len(self.paths)

    @property
    def n_kept(self) -> int:
        return len(self.kept)

    @property
    def n_dropped(self) -> int:
        return len(self.dropped)

    def summary(self) -> str:
        return (
            f"kept {self.n_kept} of {self.n_before} training images, dropped {self.n_dropped}"
        )


class PurifiedDataModuleMixin:
    """Re-applies the purification whenever the datamodule (re)builds its splits."""

    purification: PurificationResult

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)  # type: ignore[misc]
        _drop_from_train(self, set(self.purification.dropped))


_PURIFIED_CLASSES: dict[type, type] = {}


def _purified_class(base: type) -> type:
    """A subclass of ``base`` with the mixin, named like ``base`` (anomalib uses the class
    name in its result folders) and cached so each datamodule class gets one."""
    if issubclass(base, PurifiedDataModuleMixin):
        return base
    cls = _PURIFIED_CLASSES.get(base)
    if cls is None:
        cls = type(base.__name__, (PurifiedDataModuleMixin, base), {
            "__module__": base.__module__,
            "__qualname__": base.__qualname__,
            "__doc__": f"{base.__name__} whose training split was purified by noisyclean.",
        })
        _PURIFIED_CLASSES[base] = cls
    return cls


def _drop_from_train(datamodule: Any, dropped: set[str]) -> None:
    train = getattr(datamodule, "train_data", None)
    if train is None or not dropped:
        return
    paths = train.samples["image_path"].astype(str)
    keep = np.flatnonzero(~paths.isin(dropped).to_numpy())
    if len(keep) < len(paths):
        datamodule.train_data = train.subsample(keep.tolist())


def _copy_datamodule(datamodule: Any) -> Any:
    """A deep copy that shares nothing with the original, except its Trainer (dropped)."""
    trainer = getattr(datamodule, "trainer", None)
    memo = {id(trainer): None} if trainer is not None else {}
    return copy.deepcopy(datamodule, memo)


def _as_purifier(purifier: Any) -> Any:
    from noisyclean import Purifier

    if isinstance(purifier, Purifier):
        return purifier
    if isinstance(purifier, str) or callable(purifier):
        return Purifier(purifier)
    raise TypeError(
        f"purifier must be a noisyclean Purifier, a detector name or a detector factory; got "
        f"{type(purifier).__name__}."
    )


def purify_datamodule(
    datamodule: Any, purifier: Any, *, image_size: int | tuple[int, int] = 256
) -> Any:
    """Stage 1 on ``datamodule``'s training split; a copy that trains on the kept images.

    Args:
        datamodule: any anomalib image datamodule (``Folder``, ``MVTecAD``, ``RealIAD``...).
            It is not modified. Data that must be downloaded should be prepared first
            (``datamodule.prepare_data()``).
        purifier: a :class:`noisyclean.Purifier` (fitted here on the training split), or a
            detector name or factory for a default ``Purifier``.
        image_size: the size images are resized to for purification.

    Returns:
        A datamodule of the same class and settings, already set up, whose ``train_data``
        holds only the kept images; its test (and validation) split is the one the
        original builds. ``.purification`` is a :class:`PurificationResult`.
    """
    from anomalib.data import AnomalibDataModule

    if not isinstance(datamodule, AnomalibDataModule):
        raise TypeError(
            f"purify_datamodule needs an anomalib datamodule (Folder, MVTecAD, RealIAD...), "
            f"got {type(datamodule).__name__}."
        )
    purifier = _as_purifier(purifier)
    purified = _copy_datamodule(datamodule)
    if getattr(purified, "train_data", None) is None:
        purified.setup()
    view = AnomalibSplit(purified.train_data, image_size=image_size)
    if len(view) == 0:
        raise ValueError(f"{type(datamodule).__name__} has an empty training split.")
    purifier.fit(view)
    keep = np.asarray(purifier.keep_indices_, dtype=np.int64)
    drop = np.asarray(purifier.drop_indices_, dtype=np.int64)
    result = PurificationResult(
        paths=list(view.ids),
        kept=[view.ids[i] for i in keep],
        dropped=[view.ids[i] for i in drop],
        consensus=np.asarray(purifier.consensus_, dtype=np.float64),
        purifier=purifier,
    )
    purified.train_data = purified.train_data.subsample(keep.tolist())
    purified.__class__ = _purified_class(type(datamodule))
    purified.purification = result
    # anomalib's setup() rebuilds the splits unless it was marked done; keep ours.
    purified._is_setup = True
    logger.info("purify_datamodule(%s): %s", type(datamodule).__name__, result.summary())
    return purified


class CleanFit(NamedTuple):
    """What :func:`fit_clean` returns."""

    model: Any
    datamodule: Any

    @property
    def purification(self) -> PurificationResult:
        return self.datamodule.purification


def fit_clean(
    engine: Any,
    model_factory: Any,
    datamodule: Any,
    k: int = 3,
    keep: float | int | str = 0.8,
    *,
    detector_kwargs: dict[str, Any] | None = None,
    image_size: int | tuple[int, int] = 256,
    **purifier_kwargs: Any,
) -> CleanFit:
    """Purify ``datamodule``'s training split, then ``engine.fit`` a fresh model on it.

    Stage 1 trains ``k`` sub-models made by ``model_factory`` (each in a throw-away library
    engine, with raw scores), keeps the ``keep`` most normal images, and stage 2 is the
    user's own ``engine.fit(model, datamodule=purified)``: their callbacks, loggers and
    checkpoints apply to the final model only.

    Args:
        engine: the user's anomalib ``Engine`` for the final model.
        model_factory: an anomalib model class, its name, or a zero-argument factory
            returning a fresh model (``lambda: Patchcore(backbone=...)``).
        datamodule: any anomalib image datamodule; it is not modified.
        k, keep: as for :class:`noisyclean.Purifier`.
        detector_kwargs: for the sub-models' :class:`AnomalibDetector` (``max_epochs``,
            ``backbone_weights``, ``accelerator``...). ``backbone_weights`` also applies
            when the final model is built.
        image_size: the size images are resized to for stage 1.
        **purifier_kwargs: more :class:`noisyclean.Purifier` arguments (``scoring``,
            ``normalize``, ``seed``, ``cache_dir``...).

    Returns:
        ``CleanFit(model, datamodule)``: the trained final model and the purified
        datamodule (``.purification`` says what was dropped), ready for ``engine.test``.
    """
    from noisyclean import Purifier

    from noisyclean_anomalib.detector import AnomalibDetector

    detector_kwargs = dict(detector_kwargs or {})
    factory = functools.partial(AnomalibDetector, model_factory, **detector_kwargs)
    purifier = Purifier(factory, k=k, keep=keep, **purifier_kwargs)
    purified = purify_datamodule(datamodule, purifier, image_size=image_size)
    model = factory().build_final_model()
    engine.fit(model=model, datamodule=purified)
    return CleanFit(model, purified)
