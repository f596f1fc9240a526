"""Frozen encoders: a DINOv2 (or any timm) ViT, or a CNN's feature maps, as Dinomaly targets.

An encoder turns a batch of images into one *record* per image, a ``(L, C)`` float tensor
that holds everything training and scoring need from the frozen network: the decoder's
input and the reconstruction targets of each loose group. Records are what the shared
feature cache stores, so the encoder runs once per image however many sub-models train.

- :class:`FrozenViTEncoder` (the reference): the record is the mean of the middle blocks'
  tokens (class and register tokens included; the decoder sees them, as in the reference)
  followed by one target per group, the mean of that group's blocks with the prefix tokens
  dropped.
- :class:`FrozenCNNEncoder` (a CPU-friendly option): several stages of a CNN are pooled to
  the coarsest grid and concatenated along channels; the record is those tokens, the
  decoder reconstructs all channels, and group ``g`` compares the channels of stage ``g``
  (shallow stages with the last decoder blocks, as the ViT groups do).
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from noisyclean_dinomaly import config
from noisyclean_dinomaly.weights import resolve_weights

logger = logging.getLogger(__name__)


class FrozenEncoder(nn.Module):
    """What :class:`~noisyclean_dinomaly.model.DinomalyModel` needs from an encoder.

    Attributes:
        width: the feature width ``C`` the decoder works at.
        grid: ``(h, w)`` of the patch-token grid.
        num_prefix: tokens before the patch tokens in the decoder input (class, registers).
        num_groups: the number of loose reconstruction groups.
        default_heads: a head count that divides ``width`` (the ViT's own, for ViTs).
        input_mean, input_std: the normalisation the incoming images carry (ImageNet).
        backbone_mean, backbone_std: the normalisation the backbone's weights expect.
    """

    width: int
    grid: tuple[int, int]
    num_prefix: int
    num_groups: int
    default_heads: int

    def __init__(self, backbone: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.backbone = backbone
        backbone.eval()
        for p in backbone.parameters():
            p.requires_grad_(False)
        # Images arrive ImageNet-normalised (the noisyclean dataset default and the
        # reference's transform); weights trained on another normalisation get an affine fix.
        in_mean = torch.tensor(config.IMAGENET_MEAN).view(1, 3, 1, 1)
        in_std = torch.tensor(config.IMAGENET_STD).view(1, 3, 1, 1)
        bb_mean = torch.tensor(tuple(mean), dtype=torch.float32).view(1, 3, 1, 1)
        bb_std = torch.tensor(tuple(std), dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("_scale", in_std / bb_std, persistent=False)
        self.register_buffer("_shift", (in_mean - bb_mean) / bb_std, persistent=False)
        self._same_norm = all(
            abs(a - b) < 1e-7
            for a, b in zip((*config.IMAGENET_MEAN, *config.IMAGENET_STD), (*mean, *std))
        )

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Stay in eval mode: the encoder is frozen (BatchNorm statistics, dropout and all)."""
        return super().train(False)

    def _to_backbone_norm(self, images: torch.Tensor) -> torch.Tensor:
        if self._same_norm:
            return images
        return images * self._scale + self._shift

    @property
    def record_length(self) -> int:
        raise NotImplementedError

    def unpack(self, record: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """``record (B, L, C)`` -> decoder input ``(B, T, C)`` and one target per group."""
        raise NotImplementedError

    def select(self, decoded: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """The decoder's group outputs, cut to the tokens and channels their targets hold."""
        raise NotImplementedError


class FrozenViTEncoder(FrozenEncoder):
    """A frozen timm ViT; records hold the fused middle blocks and the group targets."""

    def __init__(
        self,
        backbone: nn.Module,
        target_layers: Sequence[int],
        groups: Sequence[Sequence[int]],
        mean: Sequence[float],
        std: Sequence[float],
    ):
        super().__init__(backbone, mean, std)
        depth = len(backbone.blocks)
        self.target_layers = tuple(int(i) for i in target_layers)
        layers = self.target_layers
        if not layers or max(layers) >= depth or min(layers) < 0:
            raise ValueError(
                f"target_layers {self.target_layers} do not fit a ViT with {depth} blocks; "
                f"pick block indices in [0, {depth})."
            )
        self.groups = tuple(tuple(int(i) for i in g) for g in groups)
        for g in self.groups:
            if not g or max(g) >= len(self.target_layers) or min(g) < 0:
                raise ValueError(
                    f"group {g} indexes the {len(self.target_layers)} target layers out of "
                    "range; each group lists positions in target_layers."
                )
        self.width = int(backbone.embed_dim)
        self.grid = tuple(int(s) for s in backbone.patch_embed.grid_size)
        self.num_prefix = int(backbone.num_prefix_tokens)
        self.num_groups = len(self.groups)
        self.default_heads = int(backbone.blocks[0].attn.num_heads)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def record_length(self) -> int:
        return self.num_prefix + self.num_patches * (1 + self.num_groups)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        feats = self.backbone.forward_intermediates(
            self._to_backbone_norm(images),
            indices=list(self.target_layers),
            return_prefix_tokens=True,
            norm=False,
            stop_early=True,
            output_fmt="NLC",
            intermediates_only=True,
        )
        if self.num_prefix:
            spatial = [s for s, _ in feats]
            layers = [torch.cat([prefix, s], dim=1) for s, prefix in feats]
        else:
            spatial = layers = list(feats)
        if spatial[0].shape[1] != self.num_patches:
            raise ValueError(
                f"the ViT produced {spatial[0].shape[1]} patch tokens, not {self.num_patches}; "
                f"images must be {self.grid[0] * self.backbone.patch_embed.patch_size[0]} px "
                "square (the crop_size the model was built with)."
            )
        fused = torch.stack(layers, dim=0).mean(dim=0)
        targets = [torch.stack([spatial[i] for i in g], dim=0).mean(dim=0) for g in self.groups]
        return torch.cat([fused, *targets], dim=1)

    def unpack(self, record: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        t = self.num_prefix + self.num_patches
        fused = record[:, :t]
        targets = list(record[:, t:].split(self.num_patches, dim=1))
        return fused, targets

    def select(self, decoded: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        return [d[:, self.num_prefix :] for d in decoded]


class FrozenCNNEncoder(FrozenEncoder):
    """A frozen timm CNN feature extractor; its stages, pooled to one grid, are the layers.

    ``fusion="mean"``: every stage is embedded in one width ``D`` (the widest stage's) by a
    fixed matrix with orthonormal rows, which keeps each stage's inner products and norms,
    hence its cosines, exactly. The decoder input is the mean of the embedded stages and
    group ``g`` reconstructs stage ``g``: the same structure as the ViT, where the input (a
    mean over layers) is not the target, so the decoder cannot just copy it.
    ``fusion="concat"``: the stages are concatenated along channels and group ``g`` compares
    stage ``g``'s channels; the input then equals the target.
    """

    def __init__(
        self,
        backbone: nn.Module,
        crop_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        fusion: str = "mean",
    ):
        super().__init__(backbone, mean, std)
        if fusion not in ("mean", "concat"):
            raise ValueError(f"fusion must be 'mean' or 'concat'; got {fusion!r}")
        self.fusion = fusion
        channels = [int(c) for c in backbone.feature_info.channels()]
        self.channels = tuple(channels)
        with torch.no_grad():
            probe = backbone(torch.zeros(1, 3, crop_size, crop_size))
        self.grid = tuple(int(s) for s in probe[-1].shape[-2:])
        self.num_prefix = 0
        self.num_groups = len(channels)
        if fusion == "concat":
            bounds = [0]
            for c in channels:
                bounds.append(bounds[-1] + c)
            self.slices = tuple((bounds[i], bounds[i + 1]) for i in range(len(channels)))
            self.width = bounds[-1]
        else:
            self.width = max(channels)
            g = torch.Generator().manual_seed(0)
            for i, c in enumerate(channels):
                if c == self.width:
                    emb = torch.eye(c)
                else:  # c orthonormal rows in R^D, from a fixed seed
                    q, _ = torch.linalg.qr(torch.randn(self.width, c, generator=g))
                    emb = q.T.contiguous()
                self.register_buffer(f"embed{i}", emb)
        self.default_heads = next(h for h in (8, 4, 2, 1) if self.width % h == 0)

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    @property
    def record_length(self) -> int:
        n = self.num_patches
        return n if self.fusion == "concat" else n * (1 + self.num_groups)

    def _stages(self, images: torch.Tensor) -> list[torch.Tensor]:
        maps = self.backbone(self._to_backbone_norm(images))
        return [
            (m if tuple(m.shape[-2:]) == self.grid else F.adaptive_avg_pool2d(m, self.grid))
            .flatten(2).transpose(1, 2)
            for m in maps
        ]  # each (B, h*w, c)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        stages = self._stages(images)
        if self.fusion == "concat":
            return torch.cat(stages, dim=-1).contiguous()
        layers = [s @ getattr(self, f"embed{i}").to(s.dtype) for i, s in enumerate(stages)]
        fused = torch.stack(layers, dim=0).mean(dim=0)
        return torch.cat([fused, *layers], dim=1)

    def unpack(self, record: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        if self.fusion == "concat":
            return record, [record[..., a:b] for a, b in self.slices]
        n = self.num_patches
        parts = list(record.split(n, dim=1))
        return parts[0], parts[1:]

    def select(self, decoded: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if self.fusion == "concat":
            return [d[..., a:b] for d, (a, b) in zip(decoded, self.slices)]
        return list(decoded)


# -- construction ----------------------------------------------------------------------------


def encoder_kind(name: str) -> str:
    """``"vit"`` for timm's ViT family (token outputs), ``"cnn"`` for feature-map models."""
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"unknown encoder {name!r}: it is neither a preset ({sorted(config.ENCODER_ALIASES)}) "
            "nor a timm model name (see timm.list_models())."
        )
    module = timm.models.model_entrypoint(name).__module__.rsplit(".", 1)[-1]
    return "vit" if module in config.VIT_MODULES else "cnn"


def build_encoder(
    name: str,
    weights: Any,
    crop_size: int,
    *,
    target_layers: Sequence[int] | None = None,
    groups: Sequence[Sequence[int]] = config.GROUPS,
    out_indices: Sequence[int] | None = None,
    encoder_kwargs: dict[str, Any] | None = None,
    cnn_fusion: str = "mean",
) -> FrozenEncoder:
    """Build the frozen encoder ``name`` (a preset alias or any timm model) with ``weights``.

    ``weights``: a file path (Meta's ``.pth`` layout or timm's ``.safetensors``), ``"hub"``
    (timm's hub; needs internet), ``"pretrained"`` (the offline package weights for
    ``tf_efficientnet_lite0``, timm's hub otherwise) or ``None`` (random, with a warning).
    """
    name = config.ENCODER_ALIASES.get(name, name)
    kind = encoder_kind(name)
    kwargs: dict[str, Any] = dict(encoder_kwargs or {})
    if kind == "vit":
        kwargs.setdefault("img_size", crop_size)
        kwargs.setdefault("num_classes", 0)
    else:
        indices = tuple(out_indices) if out_indices is not None else config.CNN_OUT_INDICES
        kwargs.update(features_only=True, out_indices=indices)
    backbone = resolve_weights(name, weights, kwargs)
    cfg = getattr(backbone, "pretrained_cfg", None) or {}
    mean = tuple(cfg.get("mean", config.IMAGENET_MEAN))
    std = tuple(cfg.get("std", config.IMAGENET_STD))
    if kind == "vit":
        if target_layers is None:
            target_layers = config.default_target_layers(name, len(backbone.blocks))
        return FrozenViTEncoder(backbone, target_layers, groups, mean, std)
    return FrozenCNNEncoder(backbone, crop_size, mean, std, fusion=cnn_fusion)


_SHARED_ENCODERS: weakref.WeakValueDictionary[tuple, FrozenEncoder] = weakref.WeakValueDictionary()
"""Frozen encoders in use, by configuration and device: the sub-models of one process share
one copy (it never changes) instead of loading the weights k + 1 times."""
_LAST_ENCODER: list[FrozenEncoder] = []
"""A strong reference to the most recent encoder, so that it outlives a sub-model that is
discarded before the next one is built (the serial executor does exactly that)."""


def shared_encoder(key: tuple, build: Callable[[], FrozenEncoder]) -> FrozenEncoder:
    """The process's encoder for ``key`` (configuration and device), built on first use.

    Random weights (weights=None) are drawn from a fixed seed, so one configuration is one
    encoder: its cached records and its sharing stay valid.
    """
    enc = _SHARED_ENCODERS.get(key)
    if enc is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            enc = build()
        _SHARED_ENCODERS[key] = enc
    _LAST_ENCODER[:] = [enc]
    return enc

