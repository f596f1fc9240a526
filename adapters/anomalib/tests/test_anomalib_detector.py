"""AnomalibDetector: training, raw scoring, inputs, scoring mode, clean-up, weights."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
from noisyclean.samples import Subset

from noisyclean_anomalib import (
    AnomalibDetector,
    BackboneWeightsError,
    DinomalyDetector,
    PadimDetector,
    PatchcoreDetector,
    StfpmDetector,
)
from noisyclean_anomalib.inputs import IMAGENET_MEAN, IMAGENET_STD, RawImages, dataset_normalization

SIZE = 64


def imagenet(images):
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return [(x - mean) / std for x in images]


def auroc(labels, scores) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


def test_padim_random_weights_fit_score_and_maps(textures):
    images, labels = textures
    data = imagenet(images)  # a plain tensor list, ImageNet-normalised (noisyclean's default)
    train = [data[i] for i in np.flatnonzero(labels == 0)[:12]]
    det = AnomalibDetector("Padim", backbone="resnet18", pre_trained=False, image_size=SIZE,
                           batch_size=8)
    assert det.fit(train) is det
    scores = det.score(data)
    maps = det.score_maps(data)
    assert scores.shape == (len(data),) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    assert maps.shape == (len(data), SIZE, SIZE) and np.isfinite(maps).all()
    # the image score is the maximum of the (unresized) map: the two views agree
    assert np.corrcoef(scores, maps.reshape(len(data), -1).max(axis=1))[0, 1] > 0.99
    both_scores, both_maps = det.score_and_maps(data)  # evaluation's one pass
    np.testing.assert_allclose(both_scores, scores, rtol=1e-6)
    np.testing.assert_allclose(both_maps, maps, rtol=1e-6)


def test_patchcore_raw_scores_rank_defects_above_normals(textures):
    images, labels = textures
    data = imagenet(images)
    normal = np.flatnonzero(labels == 0)
    train = [data[i] for i in normal[:14]]
    held_out = [i for i in range(len(data)) if i not in set(normal[:14])]
    det = PatchcoreDetector(image_size=SIZE, batch_size=8).fit(train)
    scores = det.score([data[i] for i in held_out])
    assert auroc(labels[held_out], scores) >= 0.9
    # raw distances, not anomalib's [0, 1] normalised scores
    assert scores.max() > 1.0


def test_scores_bypass_the_post_processor(textures):
    """A model built with anomalib's post-processor scores exactly like one without."""
    from anomalib.models import Padim

    images, labels = textures
    data = imagenet(images)
    train = [data[i] for i in np.flatnonzero(labels == 0)[:10]]

    def make(post_processor):
        torch.manual_seed(0)
        return Padim(backbone="resnet18", pre_trained=False, post_processor=post_processor,
                     pre_processor=Padim.configure_pre_processor(image_size=(SIZE, SIZE)))

    with_post = AnomalibDetector(functools.partial(make, True), batch_size=8).fit(train)
    without = AnomalibDetector(functools.partial(make, False), batch_size=8).fit(train)
    np.testing.assert_allclose(with_post.score(data), without.score(data), rtol=1e-5)


def test_input_normalization_is_undone(textures):
    images, _ = textures
    raw = images[:3]
    normed = imagenet(raw)
    for got, want in zip(RawImages(normed, dataset_normalization(normed)), raw, strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    as_is = RawImages(raw, dataset_normalization(raw, None))
    torch.testing.assert_close(as_is[0], raw[0])
    as_uint8 = RawImages([(raw[0] * 255).round().to(torch.uint8)], None)
    torch.testing.assert_close(as_uint8[0], raw[0], atol=1 / 255, rtol=0)


def test_normalization_is_read_from_noisyclean_datasets():
    from noisyclean.data import make_texture_dataset

    plain = make_texture_dataset(n_normal=2, n_anomalous=0, image_size=32, normalize=None)
    normed = make_texture_dataset(n_normal=2, n_anomalous=0, image_size=32)
    assert dataset_normalization(plain) is None
    assert dataset_normalization(Subset(plain, [1])) is None
    assert dataset_normalization(normed) == (IMAGENET_MEAN, IMAGENET_STD)
    torch.testing.assert_close(RawImages(normed, dataset_normalization(normed))[0], plain[0],
                               atol=1e-5, rtol=0)


def test_items_must_be_rgb_image_tensors():
    with pytest.raises(TypeError, match="image tensor"):
        RawImages([(torch.zeros(3, 8, 8), 0)], None)[0]
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        RawImages([torch.zeros(1, 8, 8)], None)[0]


def test_preferred_scoring_follows_the_model():
    from anomalib.models import Patchcore
    from noisyclean import Purifier
    from noisyclean.purifier import _Probe

    assert AnomalibDetector("Padim").preferred_scoring == "out_of_bag"
    assert AnomalibDetector("patchcore").preferred_scoring == "out_of_bag"
    assert AnomalibDetector("Stfpm").preferred_scoring == "all"
    assert AnomalibDetector("Padim", scoring="all").preferred_scoring == "all"
    assert PatchcoreDetector.preferred_scoring == "out_of_bag"  # readable on the class
    assert StfpmDetector.preferred_scoring == "all"
    factory = AnomalibDetector(
        lambda: Patchcore(backbone="resnet18", layers=("layer2",), pre_trained=False))
    assert factory.preferred_scoring == "out_of_bag"  # found by building one model
    purifier = Purifier(functools.partial(AnomalibDetector, "Padim"))
    assert purifier._resolve_scoring(_Probe(purifier._factory())) == "out_of_bag"


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="Patchcore"):
        AnomalibDetector("NoSuchModel")


def test_run_folders_are_removed(textures, tmp_path, monkeypatch):
    images, labels = textures
    runs = tmp_path / "runs"
    runs.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    train = [images[i] for i in np.flatnonzero(labels == 0)[:6]]
    det = AnomalibDetector("Padim", backbone="resnet18", pre_trained=False, image_size=SIZE,
                           input_normalization=None, tmp_root=str(runs))
    det.fit(train)
    assert list(runs.iterdir()) == []  # the temporary run folder is gone
    assert list(cwd.iterdir()) == []  # no results/, lightning_logs/ or checkpoints
    assert det.model_._trainer is None  # the Trainer (and its loaders) was let go


def test_lite0_backbone_loads_packaged_weights_and_matching_normalization():
    from noisyclean.features import load_efficientnet_lite0

    model = PadimDetector(image_size=SIZE).build_model()
    extractor = model.model.feature_extractor.feature_extractor
    reference = load_efficientnet_lite0(features_only=False).state_dict()
    for key in ("conv_stem.weight", "blocks.2.0.conv_pw.weight"):
        torch.testing.assert_close(extractor.state_dict()[key], reference[key])
    normalize = model.pre_processor.transform.transforms[-1]
    assert list(normalize.mean) == [0.5, 0.5, 0.5] and list(normalize.std) == [0.5, 0.5, 0.5]


def test_stfpm_teacher_gets_offline_weights_student_stays_random():
    from noisyclean.features import load_efficientnet_lite0

    model = StfpmDetector(image_size=SIZE).build_model()
    reference = load_efficientnet_lite0(features_only=False).state_dict()["conv_stem.weight"]
    teacher = model.model.teacher_model.feature_extractor.state_dict()["conv_stem.weight"]
    student = model.model.student_model.feature_extractor.state_dict()["conv_stem.weight"]
    torch.testing.assert_close(teacher, reference)
    assert not torch.allclose(student, reference)


def test_backbone_weights_from_a_file(tmp_path):
    import timm

    state = timm.create_model("resnet18").state_dict()
    path = tmp_path / "resnet18.pth"
    torch.save(state, path)
    model = AnomalibDetector("Padim", backbone="resnet18", backbone_weights=str(path),
                             image_size=SIZE).build_model()
    got = model.model.feature_extractor.feature_extractor.state_dict()["conv1.weight"]
    torch.testing.assert_close(got, state["conv1.weight"])

    bad = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer1.")}, bad)
    with pytest.raises(BackboneWeightsError, match="lack"):
        AnomalibDetector("Padim", backbone="resnet18", backbone_weights=str(bad)).build_model()
    with pytest.raises(BackboneWeightsError, match="no such file"):
        AnomalibDetector("Padim", backbone="resnet18",
                         backbone_weights=str(tmp_path / "missing.pth")).build_model()


def test_dinomaly_needs_local_weights():
    with pytest.raises(ValueError, match="backbone_weights"):
        DinomalyDetector()


@pytest.mark.slow
def test_dinomaly_builds_from_a_local_dinov2_file(tmp_path):
    import timm

    name = "vit_small_patch14_reg4_dinov2"
    state = timm.create_model(name, pretrained=False).state_dict()
    path = tmp_path / "dinov2_vits14_reg4.pth"
    torch.save(state, path)
    model = DinomalyDetector(encoder_name=name, backbone_weights=str(path)).build_model()
    got = model.model.encoder.feature_extractor.state_dict()["pos_embed"]
    torch.testing.assert_close(got, state["pos_embed"])


@pytest.mark.slow
def test_reverse_distillation_trains_and_scores(textures):
    images, labels = textures
    train = [images[i] for i in np.flatnonzero(labels == 0)[:8]]
    det = AnomalibDetector("reverse_distillation", backbone="resnet18",
                           layers=("layer1", "layer2", "layer3"), pre_trained=False,
                           image_size=SIZE, max_epochs=1, batch_size=4, input_normalization=None)
    assert det.preferred_scoring == "all"
    scores = det.fit(train).score(images)
    assert scores.shape == (len(images),) and np.isfinite(scores).all()
