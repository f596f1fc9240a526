"""purify_datamodule and fit_clean on real anomalib datamodules built from test images."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from noisyclean import Purifier

from noisyclean_anomalib import (
    AnomalibSplit,
    PatchcoreDetector,
    fit_clean,
    purify_datamodule,
)

SIZE = 64


def purifier(**kwargs):
    factory = functools.partial(PatchcoreDetector, image_size=SIZE, batch_size=8, num_workers=0)
    return Purifier(factory, k=3, keep=0.8, progress=False, **kwargs)


def paths(dataset) -> list[str]:
    return sorted(dataset.samples["image_path"].astype(str))


def folder(root, **kwargs):
    from anomalib.data import Folder

    return Folder(name="tiles", root=root, normal_dir="train/good", abnormal_dir="test/bad",
                  normal_test_dir="test/good", train_batch_size=8, eval_batch_size=8,
                  num_workers=0, **kwargs)


@pytest.mark.slow
def test_folder_drops_the_injected_anomalies_and_keeps_the_test_split(folder_layout):
    from anomalib.data import Folder

    original = folder(folder_layout, val_split_mode="none")
    reference = folder(folder_layout, val_split_mode="none")
    reference.setup()

    purified = purify_datamodule(original, purifier())

    injected = {str(p) for p in (folder_layout / "train" / "good").glob("inj_*.png")}
    result = purified.purification
    assert set(result.dropped) == injected
    assert result.n_before == 20 and result.n_kept == 16 and result.n_dropped == 4
    assert set(paths(purified.train_data)) == set(result.kept)
    assert not injected & set(paths(purified.train_data))
    # the test split is the one the original datamodule builds, untouched
    assert paths(purified.test_data) == paths(reference.test_data)
    assert list(purified.test_data.samples["label_index"]) == list(
        reference.test_data.samples.sort_values("image_path")["label_index"])
    # same kind of datamodule; the original is left as it was (never set up)
    assert isinstance(purified, Folder) and purified.name == "tiles"
    assert getattr(original, "train_data", None) is None
    # Lightning calls setup() again at fit/test time: the purification sticks...
    purified.setup("fit")
    assert set(paths(purified.train_data)) == set(result.kept)
    # ...even if the splits are rebuilt from scratch
    purified._is_setup = False
    purified.setup("fit")
    assert set(paths(purified.train_data)) == set(result.kept)
    assert paths(purified.test_data) == paths(reference.test_data)
    # the anomalies rank highest in the consensus
    order = np.argsort(result.consensus)[::-1][:4]
    assert {result.paths[i] for i in order} == injected


def test_split_view_reads_images_like_noisyclean(folder_layout):
    dm = folder(folder_layout, val_split_mode="none")
    dm.setup()
    view = AnomalibSplit(dm.train_data, image_size=32)
    assert len(view) == 20 and view.ids == paths(dm.train_data)
    x = view[0]
    assert tuple(x.shape) == (3, 32, 32) and x.min() < 0  # ImageNet-normalised
    assert type(x).__name__ == "Tensor"
    assert set(view.labels.tolist()) == {0}  # the folder calls every training image normal


@pytest.mark.slow
def test_mvtec_datamodule(mvtec_layout):
    from anomalib.data import MVTecAD

    root, injected = mvtec_layout
    dm = MVTecAD(root=root, category="bottle", train_batch_size=8, eval_batch_size=8,
                 num_workers=0)
    reference = MVTecAD(root=root, category="bottle", num_workers=0)
    reference.setup()
    purified = purify_datamodule(dm, purifier())
    assert isinstance(purified, MVTecAD)
    assert set(purified.purification.dropped) == injected
    assert paths(purified.test_data) == paths(reference.test_data)
    assert paths(purified.val_data) == paths(reference.val_data)


@pytest.mark.slow
def test_realiad_fuiad_datamodule(realiad_layout):
    from anomalib.data import RealIAD

    root, json_path, injected = realiad_layout
    dm = RealIAD(root=root, category="audiojack", resolution=256, json_path=json_path,
                 train_batch_size=8, eval_batch_size=8, num_workers=0)
    reference = RealIAD(root=root, category="audiojack", resolution=256, json_path=json_path,
                        num_workers=0)
    reference.setup()
    purified = purify_datamodule(dm, purifier())
    assert isinstance(purified, RealIAD)
    assert set(purified.purification.dropped) == injected
    assert paths(purified.test_data) == paths(reference.test_data)
    # Real-IAD's FUIAD labels are known to anomalib; they were only used to check here
    assert set(purified.train_data.samples["label_index"].tolist()) == {0}


def test_purify_refuses_other_objects():
    with pytest.raises(TypeError, match="anomalib datamodule"):
        purify_datamodule([1, 2, 3], purifier())


class RecordingEngine:
    """Stands in for the user's Engine: records what fit_clean hands it."""

    def __init__(self):
        self.calls = []

    def fit(self, model, datamodule):
        self.calls.append((model, datamodule))


@pytest.mark.slow
def test_fit_clean_trains_the_users_engine_on_the_purified_split(folder_layout):
    from anomalib.models import Patchcore

    engine = RecordingEngine()
    dm = folder(folder_layout, val_split_mode="none")
    result = fit_clean(
        engine, Patchcore, dm, k=3, keep=0.8,
        detector_kwargs={"backbone": "tf_efficientnet_lite0", "layers": ("blocks.2", "blocks.4"),
                         "image_size": SIZE, "batch_size": 8, "num_workers": 0},
        progress=False,
    )
    assert len(engine.calls) == 1
    model, datamodule = engine.calls[0]
    assert model is result.model and datamodule is result.datamodule
    assert isinstance(model, Patchcore)
    # the final model is the user's configuration: metrics and post-processing stay on
    assert model.post_processor is not None and model.evaluator is not None
    injected = {str(p) for p in (folder_layout / "train" / "good").glob("inj_*.png")}
    assert set(result.purification.dropped) == injected
    assert not injected & set(paths(datamodule.train_data))


@pytest.mark.slow
def test_fit_clean_with_a_real_engine_then_test(folder_layout, tmp_path):
    from anomalib.engine import Engine
    from anomalib.models import Patchcore

    def model():
        return Patchcore(backbone="tf_efficientnet_lite0", layers=("blocks.2", "blocks.4"),
                         pre_processor=Patchcore.configure_pre_processor(image_size=(SIZE, SIZE)))

    engine = Engine(default_root_dir=tmp_path / "results", logger=False, barebones=True,
                    accelerator="cpu", devices=1)
    dm = folder(folder_layout, val_split_mode="same_as_test")
    result = fit_clean(engine, model, dm, k=3, keep=0.8,
                       detector_kwargs={"batch_size": 8, "num_workers": 0}, progress=False)
    metrics = engine.test(result.model, datamodule=result.datamodule)
    assert metrics and metrics[0]["image_AUROC"] >= 0.9


EXAMPLE_CONFIG = Path(__file__).resolve().parents[3] / "examples" / "anomalib_purify.yaml"


def data_parser():
    from anomalib.data import AnomalibDataModule
    from jsonargparse import ActionConfigFile, ArgumentParser

    parser = ArgumentParser()
    parser.add_argument("--config", action=ActionConfigFile)
    parser.add_subclass_arguments(AnomalibDataModule, "data")  # as anomalib's CLI does
    for other in ("seed_everything", "trainer", "model"):
        parser.add_argument(f"--{other}", type=Any, default=None)
    return parser


@pytest.mark.slow
def test_the_yaml_config_purifies_through_jsonargparse(folder_layout):
    parser = data_parser()
    cfg = parser.parse_args([
        "--config", str(EXAMPLE_CONFIG),
        "--data.init_args.datamodule.init_args.root", str(folder_layout),
        "--data.init_args.datamodule.init_args.num_workers", "0",
        "--data.init_args.image_size", str(SIZE),
        "--data.init_args.detector_kwargs", json.dumps(
            {"image_size": SIZE, "batch_size": 8, "num_workers": 0}),
    ])
    datamodule = parser.instantiate_classes(cfg).data
    assert type(datamodule).__name__ == "PurifiedDataModule"
    datamodule.setup("fit")
    injected = {str(p) for p in (folder_layout / "train" / "good").glob("inj_*.png")}
    assert set(datamodule.purification.dropped) == injected
    assert not injected & set(paths(datamodule.train_data))
    assert len(datamodule.test_data) == 6  # 4 normal + 2 anomalous, as laid out
    assert datamodule.name == "my_parts"
    datamodule.setup("test")  # a second setup does not purify again
    assert set(datamodule.purification.dropped) == injected
