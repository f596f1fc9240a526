"""The MVTec AD, Real-IAD FUIAD and Magnetic Tile layouts on tiny fixtures (and MTD for real)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")
from PIL import Image

from noisyclean.data import (
    DataError,
    LayoutError,
    MagneticTile,
    MaskMismatchError,
    MVTecAD,
    RealIADFUIAD,
    defect_types_of,
    find_magnetic_tile_root,
    labels_of,
    make_noisy_split,
    masks_of,
)


def img(path: Path, size=(20, 24), mode="RGB", seed=0, fmt=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (*size, 3) if mode == "RGB" else size
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)).save(
        path, format=fmt)
    return path


def mask(path: Path, size=(20, 24), rows=slice(2, 6), values=255) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros(size, np.uint8)
    arr[rows] = values
    Image.fromarray(arr).save(path)
    return path


def snapshot(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = (p.stat().st_size, p.stat().st_mtime_ns)
    return out


# -- MVTec AD -------------------------------------------------------------------------------
@pytest.fixture
def mvtec(tmp_path: Path) -> Path:
    root = tmp_path / "mvtec"
    cat = root / "bottle"
    img(cat / "train" / "good" / "000.png", seed=1)
    img(cat / "train" / "good" / "001.png", seed=2)
    img(cat / "test" / "good" / "000.png", seed=3)
    img(cat / "test" / "crack" / "000.png", seed=4)
    img(cat / "test" / "crack" / "001.png", seed=5)
    img(cat / "test" / "broken" / "000.png", seed=6)
    mask(cat / "ground_truth" / "crack" / "000_mask.png")
    mask(cat / "ground_truth" / "crack" / "001_mask.png", rows=slice(0, 20))
    mask(cat / "ground_truth" / "broken" / "000_mask.png", rows=slice(10, 12))
    (root / "cable").mkdir()
    return root


def test_mvtec_train_split(mvtec: Path):
    ds = MVTecAD(mvtec, "bottle", "train", image_size=16)
    assert ds.ids == ["bottle/train/good/000.png", "bottle/train/good/001.png"]
    assert labels_of(ds).tolist() == [0, 0]
    assert tuple(ds[0].shape) == (3, 16, 16)
    assert not masks_of(ds).any()


def test_mvtec_test_split(mvtec: Path):
    ds = MVTecAD(mvtec, "bottle", "test", image_size=None)
    assert ds.ids == ["bottle/test/broken/000.png", "bottle/test/crack/000.png",
                      "bottle/test/crack/001.png", "bottle/test/good/000.png"]
    assert labels_of(ds).tolist() == [1, 1, 1, 0]
    assert defect_types_of(ds) == ["broken", "crack", "crack", None]
    m = masks_of(ds)
    assert m.shape == (4, 20, 24)
    assert m.sum(axis=(1, 2)).tolist() == [2 * 24, 4 * 24, 20 * 24, 0]


def test_mvtec_all_split_and_noise_protocol(mvtec: Path):
    ds = MVTecAD(mvtec, "bottle", "all", image_size=8)
    assert len(ds) == 6 and ds.ids[0].startswith("bottle/train/")
    split = make_noisy_split(labels_of(ds), defect_types_of(ds), 0.0, seed=0)
    assert set(split.train_indices).isdisjoint(split.test_indices)


def test_mvtec_errors(mvtec: Path):
    with pytest.raises(LayoutError, match="bottle, cable"):
        MVTecAD(mvtec, "carpet")
    with pytest.raises(LayoutError, match="train/good"):
        MVTecAD(mvtec, "cable")
    (mvtec / "bottle" / "ground_truth" / "crack" / "001_mask.png").unlink()
    with pytest.raises(MaskMismatchError, match="001.png has no mask"):
        MVTecAD(mvtec, "bottle", "test")
    mask(mvtec / "bottle" / "ground_truth" / "crack" / "001_mask.png")
    mask(mvtec / "bottle" / "ground_truth" / "crack" / "007_mask.png")
    with pytest.raises(MaskMismatchError, match="007_mask"):
        MVTecAD(mvtec, "bottle", "test")
    with pytest.raises(ValueError, match="split"):
        MVTecAD(mvtec, "bottle", "val")


def test_mvtec_mask_size_mismatch(mvtec: Path):
    mask(mvtec / "bottle" / "ground_truth" / "crack" / "000_mask.png", size=(21, 24))
    with pytest.raises(MaskMismatchError, match="000_mask.png"):
        MVTecAD(mvtec, "bottle", "test")


def test_mvtec_reads_without_writing(mvtec: Path):
    before = snapshot(mvtec)
    ds = MVTecAD(mvtec, "bottle", "all", image_size=8)
    for i in range(len(ds)):
        ds[i]
        ds.mask(i)
    assert snapshot(mvtec) == before


# -- Real-IAD FUIAD -------------------------------------------------------------------------
def _realiad(tmp_path: Path, *, jsons_nested: bool = True) -> Path:
    root = tmp_path / "Real-IAD"
    obj = root / "realiad_256" / "toy"
    files = {
        "OK/S0001/toy_0001_OK_C1.jpg": None,
        "OK/S0002/toy_0002_OK_C1.jpg": None,
        "NG/AK/S0010/toy_0010_NG_C1.jpg": "NG/AK/S0010/toy_0010_NG_C1.png",
        "OK/S0003/toy_0003_OK_C1.jpg": None,
        "NG/HS/S0011/toy_0011_NG_C2.jpg": "NG/HS/S0011/toy_0011_NG_C2.png",
        "NG/HS/S0012/toy_0012_NG_C3.jpg": "NG/HS/S0012/toy_0012_NG_C3.png",
    }
    for k, (image, m) in enumerate(files.items()):
        img(obj / image, seed=k, fmt="JPEG")
        if m:
            mask(obj / m)

    def entry(path, m):
        cls = "OK" if m is None else path.split("/")[1]
        return {"category": "toy", "anomaly_class": cls, "image_path": path, "mask_path": m}

    items = [entry(p, m) for p, m in files.items()]
    data = {"meta": {"prefix": "", "normal_class": "OK"}, "train": items[:3], "test": items[3:]}
    jdir = root / "realiad_jsons" / "realiad_jsons_fuiad_0.1" if jsons_nested \
        else root / "realiad_jsons_fuiad_0.1"
    jdir.mkdir(parents=True)
    (jdir / "toy.json").write_text(json.dumps(data))
    return root


def test_realiad_fuiad_by_ratio_and_object(tmp_path: Path):
    root = _realiad(tmp_path)
    before = snapshot(root)
    train = RealIADFUIAD(root, "toy", noise_ratio=0.1, split="train", image_size=None)
    assert train.ids == ["realiad_256/toy/OK/S0001/toy_0001_OK_C1.jpg",
                         "realiad_256/toy/OK/S0002/toy_0002_OK_C1.jpg",
                         "realiad_256/toy/NG/AK/S0010/toy_0010_NG_C1.jpg"]
    assert labels_of(train).tolist() == [0, 0, 1]
    assert defect_types_of(train) == [None, None, "AK"]
    assert train.mask(2).sum() == 4 * 24 and not train.mask(0).any()
    test = RealIADFUIAD(root, "toy", noise_ratio=0.1, split="test", image_size=16)
    assert labels_of(test).tolist() == [0, 1, 1]
    assert defect_types_of(test) == [None, "HS", "HS"]
    assert tuple(test[1].shape) == (3, 16, 16)
    both = RealIADFUIAD(root, "toy", noise_ratio=0.1, split="all", resolution=256)
    assert len(both) == 6
    for i in range(len(both)):
        both[i]
        both.mask(i)
    assert snapshot(root) == before


def test_realiad_flat_json_folder_and_json_path(tmp_path: Path):
    root = _realiad(tmp_path, jsons_nested=False)
    ds = RealIADFUIAD(root, "toy", noise_ratio=0.1)
    assert len(ds) == 3
    ds2 = RealIADFUIAD(root, json_path="realiad_jsons_fuiad_0.1/toy.json", split="test")
    assert ds2.category == "toy" and len(ds2) == 3


def test_realiad_errors(tmp_path: Path):
    root = _realiad(tmp_path)
    with pytest.raises(DataError, match="realiad_jsons_fuiad_0.4"):
        RealIADFUIAD(root, "toy", noise_ratio=0.4)
    with pytest.raises(ValueError, match="json_path"):
        RealIADFUIAD(root, "toy")
    with pytest.raises(DataError, match="realiad_512"):
        RealIADFUIAD(root, "toy", noise_ratio=0.1, resolution=512)
    jfile = root / "realiad_jsons" / "realiad_jsons_fuiad_0.1" / "toy.json"
    data = json.loads(jfile.read_text())
    data["train"][0]["image_path"] = "../../etc/passwd.jpg"
    jfile.write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="relative path"):
        RealIADFUIAD(root, "toy", noise_ratio=0.1)
    data["train"][0] = {"image_path": "x.jpg"}
    jfile.write_text(json.dumps(data))
    with pytest.raises(LayoutError, match="anomaly_class"):
        RealIADFUIAD(root, "toy", noise_ratio=0.1)
    jfile.write_text("{not json")
    with pytest.raises(DataError, match="cannot read"):
        RealIADFUIAD(root, "toy", noise_ratio=0.1)


def test_realiad_missing_image_is_named(tmp_path: Path):
    root = _realiad(tmp_path)
    missing = root / "realiad_256" / "toy" / "OK" / "S0002" / "toy_0002_OK_C1.jpg"
    missing.unlink()
    with pytest.raises(DataError, match="toy_0002_OK_C1.jpg"):
        RealIADFUIAD(root, "toy", noise_ratio=0.1)
    with pytest.warns(UserWarning, match="toy_0002_OK_C1.jpg"):
        ds = RealIADFUIAD(root, "toy", noise_ratio=0.1, on_error="skip")
    assert len(ds) == 2


# -- Magnetic Tile --------------------------------------------------------------------------
def _mtd(tmp_path: Path) -> Path:
    root = tmp_path / "mtd"
    for k in range(3):
        img(root / "MT_Free" / "Imgs" / f"exp0_num_{k}.jpg", mode="L", seed=k, fmt="JPEG")
        mask(root / "MT_Free" / "Imgs" / f"exp0_num_{k}.png", values=0)
    img(root / "MT_Crack" / "Imgs" / "exp1_num_9.jpg", mode="L", seed=9, fmt="JPEG")
    m = np.zeros((20, 24), np.uint8)
    m[0, :] = 127  # anti-aliased edge below the threshold
    m[1, :] = 128
    m[2:5, :] = 255
    Image.fromarray(m).save(root / "MT_Crack" / "Imgs" / "exp1_num_9.png")
    img(root / "MT_Fray" / "Imgs" / "exp2_num_1.jpg", mode="L", seed=5, fmt="JPEG")
    mask(root / "MT_Fray" / "Imgs" / "exp2_num_1.png")
    (root / "README.md").write_text("readme")
    return root


def test_magnetic_tile_fixture(tmp_path: Path):
    root = _mtd(tmp_path)
    before = snapshot(root)
    ds = MagneticTile(root, image_size=None)
    assert ds.ids == ["MT_Crack/Imgs/exp1_num_9.jpg", "MT_Fray/Imgs/exp2_num_1.jpg",
                      "MT_Free/Imgs/exp0_num_0.jpg", "MT_Free/Imgs/exp0_num_1.jpg",
                      "MT_Free/Imgs/exp0_num_2.jpg"]
    assert labels_of(ds).tolist() == [1, 1, 0, 0, 0]
    assert defect_types_of(ds) == ["Crack", "Fray", None, None, None]
    m = ds.mask(0)
    assert m[1:5].all() and not m[0].any() and not m[5:].any()  # threshold at 128
    x = ds[0]
    assert tuple(x.shape) == (3, 20, 24)
    assert (x[0] != x[1]).any()  # ImageNet normalisation differs per channel of the grey copy
    for i in range(len(ds)):
        ds[i]
        ds.mask(i)
    assert snapshot(root) == before


def test_magnetic_tile_errors(tmp_path: Path):
    root = _mtd(tmp_path)
    (root / "MT_Fray" / "Imgs" / "exp2_num_1.png").unlink()
    with pytest.raises(MaskMismatchError, match="exp2_num_1"):
        MagneticTile(root)
    mask(root / "MT_Fray" / "Imgs" / "exp2_num_1.png")
    mask(root / "MT_Fray" / "Imgs" / "lonely.png")
    with pytest.raises(MaskMismatchError, match="lonely.png"):
        MagneticTile(root)
    with pytest.raises(LayoutError, match="MT_Free"):
        MagneticTile(tmp_path)


def test_magnetic_tile_root_from_environment(tmp_path: Path, monkeypatch):
    root = _mtd(tmp_path)
    monkeypatch.setenv("NOISYCLEAN_MTD_ROOT", str(root))
    assert find_magnetic_tile_root() == root
    assert len(MagneticTile(image_size=8)) == 5


def _real_mtd_root() -> Path | None:
    env = os.environ.get("NOISYCLEAN_MTD_ROOT")
    if env:
        return Path(env)
    p = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "magnetic-tile"
    return p if p.is_dir() else None


@pytest.mark.realdata
@pytest.mark.skipif(_real_mtd_root() is None, reason="Magnetic Tile data not present")
def test_magnetic_tile_real_data():
    root = _real_mtd_root()
    before = snapshot(root)
    ds = MagneticTile(root, image_size=64)
    labels = labels_of(ds)
    assert len(ds) == 1344
    assert (labels == 0).sum() == 952 and (labels == 1).sum() == 392
    types = Counter(t for t in defect_types_of(ds) if t is not None)
    assert types == {"Blowhole": 115, "Break": 85, "Crack": 57, "Fray": 32, "Uneven": 103}
    assert all(p is not None for p in ds.mask_paths)
    first_defect = int(np.flatnonzero(labels == 1)[0])
    assert ds.mask(first_defect).shape == (64, 64) and ds.mask(first_defect).any()
    assert not ds.mask(int(np.flatnonzero(labels == 0)[0])).any()
    assert tuple(ds[0].shape) == (3, 64, 64)
    assert len(set(ds.ids)) == 1344
    assert snapshot(root) == before
