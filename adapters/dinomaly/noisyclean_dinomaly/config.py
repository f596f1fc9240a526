"""Every default of the adapter, each with the place it comes from.

"the reference" is Dinomaly's public code, ``guojiajeremy/Dinomaly`` (CVPR 2025): the
per-class training scripts ``dinomaly_{mvtec,visa,realiad,mpdd}_sep.py`` (the setting LLBNAD
trains sub-models in), ``models/uad.py`` (``ViTill``), ``models/vision_transformer.py``
(``bMlp``, ``LinearAttention2``, ``Block``), ``utils.py`` (loss, schedule, maps) and
``optimizers/StableAdamW.py``. Values were read from that code; none of it is copied.
"""

from __future__ import annotations

from collections.abc import Sequence

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
"""Input normalisation: the reference's ``get_data_transforms`` and noisyclean's datasets."""

DEFAULT_ENCODER = "vit_base_patch14_reg4_dinov2"
"""DINOv2 ViT-B/14 with 4 registers: the reference's ``encoder_name = 'dinov2reg_vit_base_14'``."""

ENCODER_ALIASES = {
    "vit_small": "vit_small_patch14_reg4_dinov2",
    "vit_base": "vit_base_patch14_reg4_dinov2",
    "vit_large": "vit_large_patch14_reg4_dinov2",
    "dinov2reg_vit_small_14": "vit_small_patch14_reg4_dinov2",
    "dinov2reg_vit_base_14": "vit_base_patch14_reg4_dinov2",
    "dinov2reg_vit_large_14": "vit_large_patch14_reg4_dinov2",
    "efficientnet_lite0": "tf_efficientnet_lite0",
}
"""Short names, and the reference's own encoder names, for the timm models."""

VIT_MODULES = frozenset({"vision_transformer", "eva"})
"""timm modules whose models produce tokens through ``forward_intermediates``."""

TARGET_LAYERS_BY_DEPTH = {
    12: (2, 3, 4, 5, 6, 7, 8, 9),
    24: (4, 6, 8, 10, 12, 14, 16, 18),
}
"""The middle blocks the reference reconstructs: ``[2..9]`` for ViT-S and ViT-B (12 blocks),
``[4, 6, ..., 18]`` for ViT-L (24 blocks); the ``target_layers`` lines of the ``_sep`` scripts."""

GROUPS = ((0, 1, 2, 3), (4, 5, 6, 7))
"""Loose reconstruction in two groups of four layers: ``fuse_layer_encoder`` and
``fuse_layer_decoder`` in the reference scripts."""

CNN_OUT_INDICES = (2, 3)
"""timm feature levels of a CNN encoder: strides 8 and 16 (40 and 112 channels for
EfficientNet-Lite0), the mid-level maps PatchCore-style methods use. Not from the reference
(which only uses ViTs): this is the CPU option's own choice."""

IMAGE_SIZE = 448
CROP_SIZE = 392
"""``Resize((448, 448))`` then ``CenterCrop(392)``: ``image_size``/``crop_size`` in every script."""

DROPOUT = 0.2
"""Bottleneck dropout: ``bMlp(..., drop=0.2)`` in the per-class and MVTec/VisA scripts; the
Real-IAD multi-class script uses 0.4."""

MLP_RATIO = 4.0
"""Bottleneck hidden width and decoder MLP ratio: ``bMlp(embed_dim, embed_dim * 4, ...)`` and
``Block(mlp_ratio=4.)``."""

LN_EPS = 1e-8
"""Decoder LayerNorm epsilon: ``partial(nn.LayerNorm, eps=1e-8)``."""

INIT_STD = 0.01
"""Trunc-normal std of the trainable linear layers (cut at ±3 std): ``trunc_normal_(m.weight,
std=0.01, a=-0.03, b=0.03)``."""

MAX_STEPS = 5000
"""Training iterations: ``total_iters = 5000`` in the per-class scripts (10k and 50k are the
multi-class MVTec/VisA and Real-IAD budgets)."""

BATCH_SIZE = 16
"""``batch_size = 16`` in every script."""

LR = 2e-3
FINAL_LR = 2e-4
WARMUP_STEPS = 100
"""``WarmCosineScheduler(base_value=2e-3, final_value=2e-4, warmup_iters=100)``: linear
warm-up from 0, then cosine decay over the remaining iterations."""

WEIGHT_DECAY = 1e-4
BETAS = (0.9, 0.999)
EPS = 1e-8
"""``StableAdamW(lr=2e-3, betas=(0.9, 0.999), weight_decay=1e-4, amsgrad=True, eps=1e-8)`` in
the per-class scripts (the multi-class scripts use ``eps=1e-10``)."""

AMSGRAD = True
"""``amsgrad=True`` in every script."""

UPDATE_CLIP = 1.0
"""StableAdamW's per-tensor update-RMS clip, ``clip_threshold=1.0`` (its default)."""

GRAD_CLIP = 0.1
"""``nn.utils.clip_grad_norm(trainable.parameters(), max_norm=0.1)``."""

HARD_MINING_P = 0.9
HARD_MINING_RAMP_STEPS = 1000
HARD_MINING_FACTOR = 0.1
"""``p = min(0.9 * it / 1000, 0.9)`` and ``global_cosine_hm_percent(en, de, p=p, factor=0.1)``:
the gradient of the easiest ``p`` of points is scaled by 0.1."""

MAP_SIZE = 256
"""Anomaly maps are computed at the crop size, then resized to 256 before smoothing:
``evaluation_batch(..., resize_mask=256)``."""

GAUSSIAN_SIGMA = 4.0
GAUSSIAN_KERNEL = 5
"""``get_gaussian_kernel(kernel_size=5, sigma=4)``: a normalised 5x5 Gaussian, zero padding."""

TOP_RATIO = 0.01
"""The image score is the mean of the top 1 % of map pixels: ``max_ratio=0.01``."""


def default_target_layers(name: str, depth: int) -> Sequence[int]:
    """The reference's middle blocks for a ViT of ``depth`` blocks, or a clear error."""
    try:
        return TARGET_LAYERS_BY_DEPTH[depth]
    except KeyError:
        raise ValueError(
            f"no default target_layers for {name!r} with {depth} blocks (the reference only "
            f"defines them for 12 and 24 blocks); pass target_layers=[...] (8 block indices "
            "for the default two groups of four)."
        ) from None
