"""Encoder weights from synthetic files written here: Meta's layout, safetensors, refusals."""

from __future__ import annotations

import pytest
import timm
import torch
from dinomaly_helpers import TINY_VIT
from noisyclean_dinomaly import DinomalyModel
from noisyclean_dinomaly.weights import RandomWeightsWarning, load_state_dict_file

KW = TINY_VIT["encoder_kwargs"]


def _timm_vit(img_size: int = 28):
    return timm.create_model(
        "vit_small_patch14_reg4_dinov2", pretrained=False, img_size=img_size, num_classes=0, **KW
    ).eval()


def _meta_layout(grid: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in Meta's DINOv2-reg4 ``.pth`` layout for the tiny ViT.

    Meta keeps a position embedding for the class token (``pos_embed`` has ``1 + N`` rows),
    names the registers ``register_tokens`` and ships a ``mask_token``; timm folds the class
    position into ``cls_token`` and calls the registers ``reg_token``.
    """
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, v in _timm_vit().state_dict().items():
        if k in ("cls_token", "reg_token", "pos_embed"):
            continue
        out[k] = torch.randn(v.shape, generator=g) * 0.1
    c = KW["embed_dim"]
    out["cls_token"] = torch.randn(1, 1, c, generator=g)
    out["register_tokens"] = torch.randn(1, 4, c, generator=g)
    out["mask_token"] = torch.randn(1, c, generator=g)
    out["pos_embed"] = torch.randn(1, 1 + grid * grid, c, generator=g) * 0.1
    return out


def test_meta_pth_loads_with_exactly_the_expected_outputs(tmp_path):
    meta = _meta_layout(grid=2)
    path = tmp_path / "dinov2_tiny_reg4_pretrain.pth"
    torch.save(meta, path)

    # the expected encoder, converted by hand
    ref = _timm_vit()
    sd = {k: v for k, v in meta.items() if k not in ("cls_token", "register_tokens",
                                                     "mask_token", "pos_embed")}
    sd["cls_token"] = meta["cls_token"] + meta["pos_embed"][:, 0]
    sd["reg_token"] = meta["register_tokens"]
    sd["pos_embed"] = meta["pos_embed"][:, 1:]
    ref.load_state_dict(sd, strict=True)

    model = DinomalyModel(**TINY_VIT, weights=path, crop_size=28).eval()
    x = torch.randn(3, 3, 28, 28, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        got = model.encoder.backbone.forward_features(x)
        want = ref.forward_features(x)
        assert torch.equal(got, want)
        # and the Dinomaly record built from it: blocks 2..9 of the hand-loaded ViT
        inter = ref.forward_intermediates(x, indices=list(range(2, 10)), norm=False,
                                          output_fmt="NLC", intermediates_only=True)
        assert torch.equal(model.encoder.unpack(model.encoder(x))[1][1],
                           torch.stack(inter[4:]).mean(0))


def test_meta_pth_position_embeddings_are_resampled_to_the_crop(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_meta_layout(grid=4), path)  # a 56 px grid, loaded for 28 px crops
    model = DinomalyModel(**TINY_VIT, weights=path, crop_size=28)
    assert model.encoder.backbone.pos_embed.shape == (1, 4, KW["embed_dim"])
    assert model.encoder.grid == (2, 2)


def test_timm_safetensors_load_exactly(tmp_path):
    from safetensors.torch import save_file

    ref = _timm_vit()
    g = torch.Generator().manual_seed(3)
    sd = {k: torch.randn(v.shape, generator=g) * 0.1 for k, v in ref.state_dict().items()}
    ref.load_state_dict(sd)
    path = tmp_path / "model.safetensors"
    save_file(sd, str(path))
    model = DinomalyModel(**TINY_VIT, weights=path, crop_size=28).eval()
    x = torch.randn(2, 3, 28, 28, generator=g)
    with torch.no_grad():
        assert torch.equal(model.encoder.backbone.forward_features(x), ref.forward_features(x))


class NotATensor:
    pass


def test_files_with_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"w": NotATensor()}, path)
    with pytest.raises(ValueError, match="weights_only"):
        load_state_dict_file(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_state_dict_file(tmp_path / "missing.pth")


def test_wrapped_checkpoints_are_unwrapped(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"model": {"a": torch.ones(2)}}, path)
    assert list(load_state_dict_file(path)) == ["a"]


def test_weights_for_another_architecture_fail_clearly(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(_meta_layout(grid=2), path)
    other = {**TINY_VIT, "encoder_kwargs": {**KW, "embed_dim": 48, "num_heads": 2}}
    with pytest.raises(ValueError, match="do not fit"):
        DinomalyModel(**other, weights=path, crop_size=28)


def test_random_weights_warn_loudly():
    with pytest.warns(RandomWeightsWarning, match="meaningless"):
        DinomalyModel(**TINY_VIT, weights=None, crop_size=28)
