"""The Dinomaly network: frozen encoder, noisy bottleneck, linear-attention decoder.

Trainable parameters of the ViT-B configuration (width ``C = 768``, MLP ratio 4, 8 decoder
blocks), all linear layers with biases:

- bottleneck ``C -> 4C -> C``: ``(768*3072 + 3072) + (3072*768 + 768)`` = 4,722,432;
- one decoder block: two LayerNorms ``2 * 2*768`` = 3,072; ``qkv`` ``768*2304 + 2304`` =
  1,771,776; ``proj`` ``768*768 + 768`` = 590,592; MLP ``(768*3072 + 3072) + (3072*768 + 768)``
  = 4,722,432; in all 7,087,872;
- total ``4,722,432 + 8 * 7,087,872`` = **61,425,408**, the reference's count (the reference
  prints it with ``count_parameters`` over ``bottleneck`` and ``decoder``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from noisyclean_dinomaly import config
from noisyclean_dinomaly.encoders import FrozenEncoder, build_encoder
from noisyclean_dinomaly.layers import DecoderBlock, NoisyBottleneck, init_trainable
from noisyclean_dinomaly.maps import anomaly_maps


class DinomalyModel(nn.Module):
    """Dinomaly as one ``nn.Module``; the frozen encoder is ``.encoder``.

    ``forward(images)`` takes ImageNet-normalised ``(B, 3, crop, crop)`` images and returns
    ``(targets, reconstructions)``: two lists with one ``(B, N, C_g)`` tensor per loose
    group. The work is split in two so that encoder outputs can be cached:
    ``record = model.encoder(images)`` (frozen, no gradients) and
    ``model.reconstruct(record)`` (the trainable part).

    Args:
        encoder: a timm model name or alias (``"vit_small"``, ``"vit_base"``,
            ``"vit_large"``, ``"tf_efficientnet_lite0"``, ...). Default: DINOv2 ViT-B/14
            with 4 registers, the reference's encoder.
        weights: a file path (Meta ``.pth`` or timm ``.safetensors``), ``"hub"``,
            ``"pretrained"`` or ``None`` (random, with a warning); see :mod:`.weights`.
        crop_size: the square input size; the ViT's position embeddings are resampled to
            it. Default 392, the reference's crop.
        dropout: bottleneck dropout (0.2; 0.4 for Real-IAD multi-class in the reference).
        target_layers: the ViT blocks to reconstruct (default: the reference's middle
            blocks for the depth: ``[2..9]`` for 12 blocks, ``[4, 6, ..., 18]`` for 24).
        groups: the loose groups as positions in ``target_layers`` (ViT) and in the
            decoder's reversed outputs: ``((0, 1, 2, 3), (4, 5, 6, 7))``. A CNN has one
            group per stage.
        decoder_depth: decoder blocks; default ``len(target_layers)`` (8), as the reference.
        num_heads: decoder heads; default the ViT's own (12 for ViT-B), 8 for a CNN when
            its width allows.
        mlp_ratio, ln_eps, init_std: see :mod:`.config` (4, 1e-8, 0.01).
        out_indices: a CNN encoder's timm feature levels (default ``(2, 3)``).
        cnn_fusion: how a CNN's stages become layers (``"mean"``, the default, or
            ``"concat"``); see :class:`~noisyclean_dinomaly.encoders.FrozenCNNEncoder`.
        encoder_kwargs: extra ``timm.create_model`` arguments (e.g. ``depth`` for tests).
        encoder_module: a ready :class:`~noisyclean_dinomaly.encoders.FrozenEncoder` to use
            instead of building one (lets several models share one frozen encoder).
    """

    def __init__(
        self,
        encoder: str = config.DEFAULT_ENCODER,
        weights: Any = "pretrained",
        crop_size: int = config.CROP_SIZE,
        dropout: float = config.DROPOUT,
        target_layers: Sequence[int] | None = None,
        groups: Sequence[Sequence[int]] = config.GROUPS,
        decoder_depth: int | None = None,
        num_heads: int | None = None,
        mlp_ratio: float = config.MLP_RATIO,
        ln_eps: float = config.LN_EPS,
        init_std: float = config.INIT_STD,
        out_indices: Sequence[int] | None = None,
        cnn_fusion: str = "mean",
        encoder_kwargs: dict[str, Any] | None = None,
        encoder_module: FrozenEncoder | None = None,
    ):
        super().__init__()
        self.crop_size = int(crop_size)
        if encoder_module is None:
            encoder_module = build_encoder(
                encoder,
                weights,
                self.crop_size,
                target_layers=target_layers,
                groups=groups,
                out_indices=out_indices,
                cnn_fusion=cnn_fusion,
                encoder_kwargs=encoder_kwargs,
            )
        self.encoder = encoder_module
        enc = self.encoder
        if decoder_depth is None:
            decoder_depth = len(getattr(enc, "target_layers", ())) or len(config.GROUPS) * 4
        self.groups = tuple(tuple(int(i) for i in g) for g in groups)
        if len(self.groups) != enc.num_groups:
            raise ValueError(
                f"the decoder has {len(self.groups)} groups but the encoder provides "
                f"{enc.num_groups} targets; give one decoder group per encoder stage/group."
            )
        for g in self.groups:
            if not g or max(g) >= decoder_depth or min(g) < 0:
                raise ValueError(
                    f"decoder group {g} is out of range for {decoder_depth} decoder blocks."
                )
        width = enc.width
        heads = int(num_heads or enc.default_heads)
        self.bottleneck = NoisyBottleneck(width, int(width * mlp_ratio), dropout)
        self.decoder = nn.ModuleList(
            DecoderBlock(width, heads, mlp_ratio=mlp_ratio, qkv_bias=True, ln_eps=ln_eps)
            for _ in range(int(decoder_depth))
        )
        init_trainable(self.bottleneck, init_std)
        init_trainable(self.decoder, init_std)

    # -- parameters ------------------------------------------------------------------------
    def trainable_parameters(self) -> list[nn.Parameter]:
        """The bottleneck and decoder parameters (the encoder is frozen)."""
        return [*self.bottleneck.parameters(), *self.decoder.parameters()]

    def num_trainable(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # -- forward ---------------------------------------------------------------------------
    def decode(self, fused: torch.Tensor) -> list[torch.Tensor]:
        """Bottleneck then decoder; one output per group, the mean of its decoder blocks.

        Decoder outputs are taken in reverse order (the first block reconstructs the
        deepest group), as the reference's ``de_list[::-1]``.
        """
        x = self.bottleneck(fused)
        outs = []
        for blk in self.decoder:
            x = blk(x)
            outs.append(x)
        outs = outs[::-1]
        return [torch.stack([outs[i] for i in g], dim=0).mean(dim=0) for g in self.groups]

    def reconstruct(self, record: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """``(targets, reconstructions)`` from an encoder record (cached or fresh)."""
        fused, targets = self.encoder.unpack(record)
        recon = self.encoder.select(self.decode(fused))
        return targets, recon

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        with torch.no_grad():
            record = self.encoder(images)
        return self.reconstruct(record)

    @torch.inference_mode()
    def anomaly_map(
        self,
        images: torch.Tensor,
        map_size: int | None = config.MAP_SIZE,
        sigma: float = config.GAUSSIAN_SIGMA,
        kernel_size: int = config.GAUSSIAN_KERNEL,
    ) -> torch.Tensor:
        """``(B, map_size, map_size)`` maps for a batch of images (dropout off)."""
        was_training = self.training
        self.eval()
        try:
            targets, recon = self(images)
        finally:
            self.train(was_training)
        return anomaly_maps(
            targets, recon, self.encoder.grid, self.crop_size, map_size, sigma, kernel_size
        )
