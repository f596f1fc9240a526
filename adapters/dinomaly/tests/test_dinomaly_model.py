"""The architecture: parameter counts, frozen encoder, records, groups, dropped tokens."""

from __future__ import annotations

import pytest
import torch
from dinomaly_helpers import TINY_VIT
from noisyclean_dinomaly import DinomalyModel
from noisyclean_dinomaly.layers import DecoderBlock, LinearAttention, NoisyBottleneck


def expected_trainable(width: int, blocks: int = 8, ratio: int = 4) -> int:
    """The reference's trainable count for decoder width ``C``, all layers with biases.

    bottleneck: ``C*rC + rC + rC*C + C``; one decoder block: two LayerNorms ``2 * 2C``,
    qkv ``C*3C + 3C``, proj ``C*C + C`` and an MLP like the bottleneck's.
    """
    c, h = width, ratio * width
    mlp = c * h + h + h * c + c
    block = 2 * 2 * c + (c * 3 * c + 3 * c) + (c * c + c) + mlp
    return mlp + blocks * block


def test_vit_base_trainable_count_equals_the_reference():
    # 4,722,432 (bottleneck 768->3072->768 with biases) + 8 * 7,087,872 (decoder blocks).
    assert expected_trainable(768) == 61_425_408
    with torch.device("meta"):  # the real module graph, without allocating 86M weights
        model = DinomalyModel("vit_base_patch14_reg4_dinov2", weights=None)
    assert model.num_trainable() == 61_425_408
    assert sum(p.numel() for p in model.bottleneck.parameters()) == 4_722_432
    assert all(sum(p.numel() for p in b.parameters()) == 7_087_872 for b in model.decoder)
    assert len(model.decoder) == 8
    assert model.encoder.target_layers == (2, 3, 4, 5, 6, 7, 8, 9)
    assert model.encoder.num_prefix == 5  # class token + 4 registers
    assert model.encoder.grid == (28, 28)  # 392 / 14
    assert all(not p.requires_grad for p in model.encoder.parameters())


def test_vit_small_and_large_follow_the_reference_layout():
    with torch.device("meta"):
        small = DinomalyModel("vit_small", weights=None)
        large = DinomalyModel("vit_large", weights=None)
    assert small.num_trainable() == expected_trainable(384) == 15_377_280
    assert small.decoder[0].attn.num_heads == 6
    assert large.encoder.target_layers == (4, 6, 8, 10, 12, 14, 16, 18)
    assert large.num_trainable() == expected_trainable(1024)


def test_layers_are_the_reference_layers():
    blk = DecoderBlock(24, 2)
    assert blk.norm1.eps == 1e-8 and blk.norm2.eps == 1e-8
    assert blk.attn.qkv.bias is not None
    bott = NoisyBottleneck(8, 32, 0.2)
    assert bott.fc1.bias is not None and bott.fc2.bias is not None
    # dropout acts on the input, the hidden layer and the output: in eval mode it is off
    bott.eval()
    x = torch.randn(2, 8)
    ref = bott.fc2(torch.nn.functional.gelu(bott.fc1(x)))
    torch.testing.assert_close(bott(x), ref)


def test_linear_attention_matches_its_formula():
    torch.manual_seed(0)
    attn = LinearAttention(8, num_heads=2)
    x = torch.randn(1, 5, 8)
    q, k, v = attn.qkv(x).reshape(1, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    q, k = torch.nn.functional.elu(q) + 1, torch.nn.functional.elu(k) + 1
    # token i attends to j with weight q_i.k_j / sum_j q_i.k_j (the elu+1 kernel)
    w = q @ k.transpose(-2, -1)
    w = w / w.sum(-1, keepdim=True)
    expected = attn.proj((w @ v).transpose(1, 2).reshape(1, 5, 8))
    torch.testing.assert_close(attn(x), expected, rtol=1e-5, atol=1e-6)


def test_init_is_trunc_normal_with_std_001():
    torch.manual_seed(0)
    model = DinomalyModel(**TINY_VIT, weights=None, crop_size=28)
    w = torch.cat([b.mlp[0].weight.flatten() for b in model.decoder])
    assert w.abs().max() <= 0.03 + 1e-7
    assert 0.007 < w.std() < 0.011  # a normal cut at 3 std keeps ~0.986 of its std
    assert all(torch.all(b.mlp[0].bias == 0) for b in model.decoder)


def test_records_hold_fused_tokens_and_group_targets_without_prefix_tokens():
    torch.manual_seed(0)
    model = DinomalyModel(**TINY_VIT, weights=None, crop_size=28).eval()
    x = torch.randn(2, 3, 28, 28)
    vit = model.encoder.backbone
    with torch.no_grad():
        record = model.encoder(x)
        # independent path: run the timm blocks by hand
        t = vit.norm_pre(vit._pos_embed(vit.patch_embed(x)))
        outs = []
        for blk in vit.blocks:
            t = blk(t)
            outs.append(t)
    layers = [outs[i] for i in range(2, 10)]
    fused = torch.stack(layers).mean(0)  # all 5 + 4 tokens
    g0 = torch.stack(layers[:4]).mean(0)[:, 5:]
    g1 = torch.stack(layers[4:]).mean(0)[:, 5:]
    assert record.shape == (2, 9 + 4 + 4, 32)
    dec_in, targets = model.encoder.unpack(record)
    torch.testing.assert_close(dec_in, fused)
    torch.testing.assert_close(targets[0], g0)
    torch.testing.assert_close(targets[1], g1)
    _, rc = model(x)
    assert [t.shape for t in rc] == [(2, 4, 32), (2, 4, 32)]


def test_decoder_groups_average_reversed_blocks():
    torch.manual_seed(0)
    model = DinomalyModel(**TINY_VIT, weights=None, crop_size=28).eval()
    x = torch.randn(2, 9, 32)
    with torch.no_grad():
        groups = model.decode(x)
        h = model.bottleneck(x)
        outs = []
        for blk in model.decoder:
            h = blk(h)
            outs.append(h)
    # group 0 (shallow encoder layers) <- the last four decoder blocks
    torch.testing.assert_close(groups[0], torch.stack(outs[4:]).mean(0))
    torch.testing.assert_close(groups[1], torch.stack(outs[:4]).mean(0))


def test_encoder_stays_frozen_and_in_eval_mode():
    model = DinomalyModel(**TINY_VIT, weights=None, crop_size=28)
    model.train()
    assert model.training and model.decoder.training
    assert not model.encoder.training and not model.encoder.backbone.training
    assert {id(p) for p in model.trainable_parameters()} == {
        id(p) for p in model.parameters() if p.requires_grad
    }


def test_bad_configuration_fails_clearly():
    with pytest.raises(ValueError, match="target_layers"):
        DinomalyModel(**{**TINY_VIT, "target_layers": (2, 3, 11)}, weights=None, crop_size=28)
    with pytest.raises(ValueError, match="num_heads"):
        DinomalyModel(**TINY_VIT, weights=None, crop_size=28, num_heads=5)
    with pytest.raises(ValueError, match="unknown encoder"):
        DinomalyModel("no_such_model", weights=None)
