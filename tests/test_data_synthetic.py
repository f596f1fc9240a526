"""Synthetic texture data: contract, exact masks, determinism, speed, and the round trip to disk."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("skimage")

from noisyclean.data import (
    DEFECT_TYPES,
    DataError,
    ImageFolder,
    ImageTransform,
    InMemoryImageDataset,
    MaskMismatchError,
    defect_types_of,
    labels_of,
    make_noisy_split,
    make_texture_dataset,
    masks_of,
    synthetic,
)


def test_contract_labels_and_masks():
    ds = make_texture_dataset(None, 30, 10, image_size=32, seed=0)
    assert isinstance(ds, InMemoryImageDataset)
    assert len(ds) == 40
    x = ds[0]
    assert tuple(x.shape) == (3, 32, 32) and str(x.dtype) == "torch.float32"
    labels = labels_of(ds)
    assert (labels == 0).sum() == 30 and (labels == 1).sum() == 10
    types = Counter(t for t in defect_types_of(ds) if t)
    assert types == {"scratch": 3, "blob": 3, "colour": 2, "cutpaste": 2}
    assert len(set(ds.ids)) == 40
    assert all(i.startswith("synthetic/") and i.endswith(".png") for i in ds.ids)
    for i in range(len(ds)):
        kind = ds.ids[i].split("/")[1].rsplit("_", 1)[0]
        assert kind == (ds.defect_types[i] or "normal")
    m = masks_of(ds)
    assert m.shape == (40, 32, 32) and m.dtype == bool
    assert (m[labels == 1].sum(axis=(1, 2)) > 0).all()
    assert not m[labels == 0].any()
    unshuffled = make_texture_dataset(None, 30, 10, image_size=32, seed=0, shuffle=False)
    assert labels_of(unshuffled).tolist() == [0] * 30 + [1] * 10
    assert labels.tolist() != labels_of(unshuffled).tolist()


@pytest.mark.parametrize("kind", DEFECT_TYPES)
def test_masks_are_exact(kind: str):
    rng = np.random.default_rng(7)
    tex = synthetic.load_texture("brick")
    others = [synthetic.load_texture("gravel")]
    for _ in range(10):
        grey = synthetic._normal(tex, 64, rng)
        if kind == "cutpaste":
            out, mask = synthetic._cutpaste(grey, rng, others, rotate=False)
        else:
            out, mask = {"scratch": synthetic._scratch, "blob": synthetic._blob,
                         "colour": synthetic._colour}[kind](grey, rng)
        before = np.repeat(grey[..., None], 3, axis=2)
        changed = np.abs(out - before).max(axis=2) > 1e-6
        assert mask.any()
        assert not changed[~mask].any()  # nothing changes outside the mask
        assert changed[mask].mean() > 0.9  # and nearly every masked pixel does change


def test_deterministic_per_seed_and_cache_keys():
    a = make_texture_dataset(None, 5, 4, image_size=24, seed=3)
    b = make_texture_dataset(None, 5, 4, image_size=24, seed=3)
    c = make_texture_dataset(None, 5, 4, image_size=24, seed=4)
    assert a.ids == b.ids
    for i in range(len(a)):
        np.testing.assert_array_equal(a.array(i), b.array(i))
    assert a.cache_key == b.cache_key
    assert a.cache_key != c.cache_key
    assert any(not np.array_equal(a.array(i), c.array(c.ids.index(a.ids[i])))
               for i in range(len(a)))


def test_fast_enough_for_the_demo():
    make_texture_dataset(None, 2, 2, image_size=16)  # warm the texture loader
    t0 = time.perf_counter()
    ds = make_texture_dataset(None, 300, 60, image_size=128, seed=0)
    elapsed = time.perf_counter() - t0
    assert len(ds) == 360
    assert elapsed < 5.0, f"generating 360 images took {elapsed:.2f} s"


def test_write_and_read_back_with_image_folder(tmp_path: Path):
    ds = make_texture_dataset(tmp_path / "out", 6, 4, image_size=32, seed=1)
    out = tmp_path / "out"
    back = ImageFolder(out, masks=out / "masks", image_size=None)
    assert sorted(back.ids) == sorted(ds.ids)
    for i, sid in enumerate(back.ids):
        j = ds.ids.index(sid)
        np.testing.assert_allclose(back[i].numpy(), ds[j].numpy(), atol=1e-6)
        np.testing.assert_array_equal(back.mask(i), ds.mask(j))
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 10
    by_id = {r["id"]: r for r in rows}
    for sid, lab, t in zip(ds.ids, ds.labels, ds.defect_types):
        assert int(by_id[sid]["label"]) == lab
        assert by_id[sid]["defect_type"] == (t or "")
    assert not list(out.rglob(".tmp-*"))
    with pytest.raises(DataError, match="not empty"):
        ds.write(out)
    ds.write(out, overwrite=True)


def test_other_preprocessing_and_noise_protocol():
    ds = make_texture_dataset(None, 40, 20, image_size=32, seed=2,
                              transform=ImageTransform(image_size=16, normalize=None))
    assert tuple(ds[0].shape) == (3, 16, 16)
    assert 0.0 <= float(ds[0].min()) and float(ds[0].max()) <= 1.0
    assert ds.mask(0).shape == (16, 16)
    split = make_noisy_split(labels_of(ds), defect_types_of(ds), 0.1, seed=0)
    assert split.n_train_anomaly == 3 and split.n_train_normal == 28


def test_single_texture_and_bad_arguments():
    ds = make_texture_dataset(None, 1, 2, image_size=16, textures=("gravel",),
                              defect_types=("cutpaste",))
    assert ds.summary()["defect_types"] == {"cutpaste": 2}
    with pytest.raises(ValueError, match="texture"):
        make_texture_dataset(None, 1, 1, textures=("marble",))
    with pytest.raises(ValueError, match="defect_types"):
        make_texture_dataset(None, 1, 1, defect_types=("dent",))
    with pytest.raises(ValueError, match="not both 0"):
        make_texture_dataset(None, 0, 0)


def test_in_memory_dataset_validation():
    img = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(MaskMismatchError, match="shape"):
        InMemoryImageDataset([img], ["a.png"], masks=[np.zeros((4, 4), bool)])
    with pytest.raises(ValueError, match=r"\.\."):
        InMemoryImageDataset([img], ["../a.png"])
    with pytest.raises(DataError, match="duplicate"):
        InMemoryImageDataset([img, img], ["a.png", "a.png"])
    ds = InMemoryImageDataset([np.full((8, 8), 0.5)], ["a.png"], image_size=None, normalize=None)
    np.testing.assert_allclose(ds[0].numpy(), 128 / 255, atol=1e-6)
    assert ds.root is None and ds.paths == [None]
    assert (labels_of(ds) == -1).all()
