"""The trainable parts of Dinomaly: the noisy bottleneck and the linear-attention decoder.

Each piece mirrors the reference architecture (``guojiajeremy/Dinomaly``,
``models/vision_transformer.py``: ``bMlp``, ``LinearAttention2`` and ``Block``) closely enough
that the trainable parameter count matches it exactly; the code is our own.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class NoisyBottleneck(nn.Module):
    """``dim -> hidden -> dim`` MLP with the *same* dropout on its input, hidden layer and output.

    The dropout is Dinomaly's "noisy bottleneck": it perturbs the fused encoder features so
    the decoder cannot learn an identity mapping, which would reconstruct anomalies as well
    as normal patterns. Both linear layers carry biases, as in the reference ``bMlp``
    (anomalib's port drops them, which changes the parameter count).
    """

    def __init__(self, dim: int, hidden: int, dropout: float):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.drop(x)
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class LinearAttention(nn.Module):
    """Multi-head linear attention with the ``elu(x) + 1`` feature map.

    Softmax attention lets each token copy its own (possibly anomalous) input; the linear
    kernel spreads attention over the whole image, which Dinomaly shows is what stops the
    decoder from "leaking" identity. Cost is linear in the token count. The kernel products
    run in float32 even under bf16 autocast: the per-head ``d x d`` sums over hundreds of
    tokens are where low precision would hurt, and they are cheap.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(
                f"decoder width {dim} is not divisible by num_heads={num_heads}; choose a "
                "num_heads that divides the encoder's feature width."
            )
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).float().unbind(0)  # each (b, heads, n, d)
        q = F.elu(q) + 1.0
        k = F.elu(k) + 1.0
        with torch.autocast(device_type=x.device.type, enabled=False):
            kv = k.transpose(-2, -1) @ v  # (b, heads, d, d)
            norm = q @ k.sum(dim=-2, keepdim=True).transpose(-2, -1)  # (b, heads, n, 1)
            out = (q @ kv) / norm
        out = out.transpose(1, 2).reshape(b, n, c).to(x.dtype)
        return self.proj(out)


class DecoderBlock(nn.Module):
    """A pre-norm transformer block whose attention is :class:`LinearAttention`.

    ``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``; the MLP is ``dim -> mlp_ratio * dim ->
    dim`` with GELU, and the LayerNorms use the reference's ``eps=1e-8``.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        ln_eps: float = 1e-8,
    ):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim, eps=ln_eps)
        self.attn = LinearAttention(dim, num_heads, qkv_bias=qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=ln_eps)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def init_trainable(module: nn.Module, std: float) -> None:
    """Trunc-normal(std) linear weights cut at ±3 std, zero biases, unit LayerNorms.

    This is the reference's initialisation of the bottleneck and decoder (``trunc_normal_``
    with ``std=0.01, a=-0.03, b=0.03``); small weights make the decoder start near a
    constant map, so early training is driven by the reconstruction loss and not by noise.
    """
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=std, a=-3 * std, b=3 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
