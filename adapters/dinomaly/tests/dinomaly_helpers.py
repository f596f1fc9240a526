"""Shared constants of the adapter's tests (a unique module name: other test folders have
their own ``conftest``)."""

TINY_VIT = dict(
    encoder="vit_small_patch14_reg4_dinov2",
    encoder_kwargs=dict(depth=10, embed_dim=32, num_heads=2),
    target_layers=tuple(range(2, 10)),
)
"""A DINOv2-reg4-shaped ViT with 10 blocks of width 32: the reference's layer layout
([2..9], two groups of four), small enough for unit tests."""
