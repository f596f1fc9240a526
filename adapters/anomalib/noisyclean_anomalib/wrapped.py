"""A datamodule that purifies another one: purification from an anomalib YAML config.

anomalib's command line (``anomalib train --config ...``) builds its datamodule from a
``class_path`` and ``init_args`` with jsonargparse; it has no place for a function call such
as :func:`~noisyclean_anomalib.purify_datamodule`. :class:`PurifiedDataModule` is that call
as a datamodule class: it takes the user's datamodule as an argument and, on the first
``setup``, runs stage 1 on its training split and serves the purified splits. So a config
only wraps its ``data`` entry (see ``examples/anomalib_purify.yaml``).
"""

from __future__ import annotations

from typing import Any

from anomalib.data import AnomalibDataModule

from noisyclean_anomalib.datamodule import PurificationResult, purify_datamodule


class PurifiedDataModule(AnomalibDataModule):
    """``datamodule`` with its training split purified by noisyclean on first ``setup``.

    Args:
        datamodule: the anomalib datamodule to purify (``Folder``, ``MVTecAD``, ...). Batch
            sizes, workers and augmentations are taken from it.
        detector: a registered noisyclean detector (``noisyclean detectors`` lists them),
            e.g. ``"anomalib.patchcore"``.
        k, keep, scoring, seed: as for :class:`noisyclean.Purifier`.
        detector_kwargs: arguments for the detector, e.g. ``{"image_size": 128}``.
        image_size: the size images are resized to for stage 1.

    After ``setup``, ``purification`` is the :class:`PurificationResult`.
    """

    def __init__(
        self,
        datamodule: AnomalibDataModule,
        detector: str = "anomalib.patchcore",
        k: int = 3,
        keep: float = 0.8,
        scoring: str = "auto",
        seed: int = 0,
        detector_kwargs: dict[str, Any] | None = None,
        image_size: int = 256,
    ) -> None:
        super().__init__(
            train_batch_size=datamodule.train_batch_size,
            eval_batch_size=datamodule.eval_batch_size,
            num_workers=datamodule.num_workers,
            train_augmentations=datamodule.train_augmentations,
            val_augmentations=datamodule.val_augmentations,
            test_augmentations=datamodule.test_augmentations,
            seed=datamodule.seed,
        )
        self.datamodule = datamodule
        self.detector = detector
        self.k = k
        self.keep = keep
        self.scoring = scoring
        self.purify_seed = seed
        self.detector_kwargs = dict(detector_kwargs or {})
        self.image_size = image_size
        self._purified: Any = None

    @property
    def name(self) -> str:
        return self.datamodule.name

    @property
    def category(self) -> str:
        return self.datamodule.category

    @category.setter
    def category(self, category: str) -> None:
        self.datamodule.category = category

    @property
    def purification(self) -> PurificationResult:
        if self._purified is None:
            raise AttributeError("not purified yet; call setup() first.")
        return self._purified.purification

    def _setup(self, _stage: str | None = None) -> None:  # pragma: no cover - never called
        raise NotImplementedError("PurifiedDataModule builds its splits in setup().")

    def setup(self, stage: str | None = None) -> None:
        """Purify once, then serve the purified datamodule's splits."""
        if self._purified is None:
            from noisyclean import Purifier

            purifier = Purifier(self.detector, k=self.k, keep=self.keep, scoring=self.scoring,
                                seed=self.purify_seed, detector_kwargs=self.detector_kwargs)
            self._purified = purify_datamodule(self.datamodule, purifier,
                                               image_size=self.image_size)
        self._purified.setup(stage)
        self.train_data = self._purified.train_data
        self.test_data = self._purified.test_data
        if getattr(self._purified, "val_data", None) is not None:
            self.val_data = self._purified.val_data
        self._update_augmentations()
