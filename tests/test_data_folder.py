"""ImageFolder: listing, masks, transforms, errors, and that nothing is written to the data."""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")
from PIL import Image

from noisyclean.data import (
    CorruptImageError,
    DataError,
    EmptyDatasetError,
    ImageFolder,
    ImageTransform,
    MaskMismatchError,
    defect_types_of,
    labels_of,
    masks_of,
)
from noisyclean.samples import Subset


def write_image(path: Path, size=(24, 32), value=None, mode="RGB", fmt=None, seed=0) -> Path:
    """A small random (or constant) image of ``size`` = (height, width)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    h, w = size
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    arr = rng.integers(0, 256, shape, dtype=np.uint8) if value is None \
        else np.full(shape, value, np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


def write_mask(path: Path, size=(24, 32), box=(4, 4, 10, 12)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros(size, np.uint8)
    y0, x0, y1, x1 = box
    arr[y0:y1, x0:x1] = 255
    Image.fromarray(arr).save(path)
    return path


def snapshot(root: Path) -> dict[str, tuple]:
    """Every file and folder under ``root`` (hidden ones too) with size and mtime."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.stat()
            out[str(p.relative_to(root))] = (p.is_dir(), st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    write_image(root / "b" / "img2.png", seed=1)
    write_image(root / "a.jpg", seed=2)
    write_image(root / "b" / "img10.png", seed=3)
    write_image(root / "c" / "deep" / "x.bmp", seed=4)
    (root / "notes.txt").write_text("not an image")
    write_image(root / ".hidden.png", seed=5)
    write_image(root / ".cache" / "y.png", seed=6)
    return root


def test_lists_images_recursively_in_sorted_order(folder: Path):
    ds = ImageFolder(folder, image_size=16)
    assert ds.ids == ["a.jpg", "b/img10.png", "b/img2.png", "c/deep/x.bmp"]
    assert ds.ignored == ["notes.txt"]
    assert [p.name for p in ds.paths] == ["a.jpg", "img10.png", "img2.png", "x.bmp"]
    assert len(ds) == 4
    x = ds[1]
    assert tuple(x.shape) == (3, 16, 16)
    assert str(x.dtype) == "torch.float32"
    assert (labels_of(ds) == -1).all()
    assert ds.sizes[0] == (24, 32)


def test_item_is_only_the_image_tensor(folder: Path):
    import torch

    ds = ImageFolder(folder, image_size=8)
    item = ds[0]
    assert isinstance(item, torch.Tensor)
    loader = torch.utils.data.DataLoader(ds, batch_size=3)
    batch = next(iter(loader))
    assert tuple(batch.shape) == (3, 3, 8, 8)


def test_index_errors(folder: Path):
    ds = ImageFolder(folder, image_size=8)
    assert ds[-1].shape == ds[3].shape
    with pytest.raises(IndexError):
        ds[4]
    with pytest.raises(TypeError):
        ds[1.0]


def test_normalize_none_gives_pixel_values_and_grey_is_replicated(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "grey.png", size=(8, 8), value=51, mode="L")
    ds = ImageFolder(root, image_size=None, normalize=None)
    x = ds[0].numpy()
    assert x.shape == (3, 8, 8)
    np.testing.assert_allclose(x, 51 / 255, atol=1e-6)
    ds = ImageFolder(root, image_size=None)  # imagenet: channels differ after normalising
    x = ds[0].numpy()
    np.testing.assert_allclose(x[0], (0.2 - 0.485) / 0.229, atol=1e-5)
    np.testing.assert_allclose(x[2], (0.2 - 0.406) / 0.225, atol=1e-5)


def test_grayscale_to_rgb_false_refuses_grey(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "grey.png", mode="L")
    ds = ImageFolder(root, grayscale_to_rgb=False, image_size=8)
    with pytest.raises(DataError, match="greyscale"):
        ds[0]


def test_sixteen_bit_grey_is_scaled_not_clipped(tmp_path: Path):
    root = tmp_path / "d"
    root.mkdir()
    Image.fromarray(np.full((4, 4), 32768, np.uint16)).save(root / "x.png")
    x = ImageFolder(root, image_size=None, normalize=None)[0].numpy()
    np.testing.assert_allclose(x, 128 / 255, atol=1 / 255)


def test_rgba_and_palette_become_rgb(tmp_path: Path):
    root = tmp_path / "d"
    root.mkdir()
    Image.new("RGBA", (5, 4), (10, 20, 30, 0)).save(root / "a.png")
    Image.new("P", (5, 4), 3).save(root / "b.png")
    ds = ImageFolder(root, image_size=None, normalize=None)
    np.testing.assert_allclose(ds[0].numpy()[:, 0, 0], np.array([10, 20, 30]) / 255, atol=1e-6)
    assert tuple(ds[1].shape) == (3, 4, 5)


def test_mask_follows_the_image_through_resize_and_crop(tmp_path: Path):
    root = tmp_path / "d"
    img = np.zeros((40, 60, 3), np.uint8)
    img[10:20, 30:50] = 255
    (root).mkdir()
    Image.fromarray(img).save(root / "x.png")
    write_mask(tmp_path / "m" / "x.png", size=(40, 60), box=(10, 30, 20, 50))
    ds = ImageFolder(root, masks=tmp_path / "m", image_size=(20, 30), crop_size=(16, 24),
                     normalize=None)
    x = ds[0].numpy()
    m = ds.mask(0)
    assert m.dtype == bool and m.shape == (16, 24) == x.shape[1:]
    bright = x[0] > 0.5
    assert m.sum() > 0
    assert (bright == m).mean() > 0.97


def test_mask_folder_matching_by_relative_path_and_suffix(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "crack" / "000.png")
    write_image(root / "crack" / "001.png")
    write_image(root / "good" / "000.png")
    write_mask(tmp_path / "gt" / "crack" / "000_mask.png")
    write_mask(tmp_path / "gt" / "crack" / "001_mask.png", box=(0, 0, 24, 32))
    ds = ImageFolder(root, masks=tmp_path / "gt", image_size=None)
    assert ds.mask_paths[0].name == "000_mask.png"
    assert ds.mask_paths[1].name == "001_mask.png"
    assert ds.mask_paths[2] is None
    assert ds.mask(1).all()
    assert not ds.mask(2).any()
    assert masks_of(ds).shape == (3, 24, 32)


def test_mask_folder_inside_root_is_not_read_as_images(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "x.png")
    write_mask(root / "masks" / "x.png")
    ds = ImageFolder(root, masks=root / "masks", image_size=None)
    assert ds.ids == ["x.png"]
    assert ds.mask(0).sum() == 6 * 8


def test_mask_without_image_is_an_error(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "x.png")
    write_mask(tmp_path / "m" / "x.png")
    write_mask(tmp_path / "m" / "ghost.png")
    with pytest.raises(MaskMismatchError, match="ghost"):
        ImageFolder(root, masks=tmp_path / "m")


def test_mask_of_another_size_is_an_error(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "x.png", size=(24, 32))
    write_mask(tmp_path / "m" / "x.png", size=(24, 30))
    with pytest.raises(MaskMismatchError, match=r"x\.png"):
        ImageFolder(root, masks=tmp_path / "m")


def test_missing_mask_folder_is_an_error(tmp_path: Path):
    write_image(tmp_path / "d" / "x.png")
    with pytest.raises(DataError, match="mask folder"):
        ImageFolder(tmp_path / "d", masks=tmp_path / "nope")


def test_mask_pattern_beside_images(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "MT_Crack" / "a.jpg", fmt="JPEG")
    write_mask(root / "MT_Crack" / "a.png")
    write_image(root / "MT_Free" / "b.jpg", fmt="JPEG")
    write_mask(root / "MT_Free" / "b.png", box=(0, 0, 0, 0))
    write_image(root / "MT_Free" / "c.png")  # a png with no jpg twin is an image
    ds = ImageFolder(root, masks="{stem}.png", image_size=None, normal_dirs=["MT_Free"])
    assert ds.ids == ["MT_Crack/a.jpg", "MT_Free/b.jpg", "MT_Free/c.png"]
    assert ds.mask(0).sum() == 48 and not ds.mask(1).any() and ds.mask_paths[2] is None
    assert labels_of(ds).tolist() == [1, 0, 0]
    assert defect_types_of(ds) == ["MT_Crack", None, None]


def test_mask_pattern_orphan_is_an_error(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "a.png")
    write_mask(root / "a_mask.png")
    write_mask(root / "b_mask.png")
    with pytest.raises(MaskMismatchError, match="b_mask"):
        ImageFolder(root, masks="{stem}_mask.png")
    (root / "b_mask.png").unlink()
    ds = ImageFolder(root, masks="{stem}_mask.png")
    assert ds.ids == ["a.png"]


def _corrupt_files(root: Path) -> dict[str, Path]:
    write_image(root / "good.png")
    garbage = root / "garbage.png"
    garbage.write_bytes(b"this is not a png at all" * 10)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(
        buf, format="JPEG")
    trunc_jpg = root / "trunc.jpg"
    trunc_jpg.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), np.uint8)).save(
        buf, format="PNG")
    trunc_png = root / "trunc.png"
    trunc_png.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    empty = root / "empty.jpg"
    empty.write_bytes(b"")
    return {"garbage": garbage, "trunc_jpg": trunc_jpg, "trunc_png": trunc_png, "empty": empty}


@pytest.mark.parametrize("which", ["garbage", "trunc_jpg", "trunc_png", "empty"])
def test_corrupt_file_raises_naming_it(tmp_path: Path, which: str):
    root = tmp_path / "d"
    bad = _corrupt_files(root)
    for name, path in bad.items():
        if name != which:
            path.unlink()
    with pytest.raises(CorruptImageError) as info:
        ImageFolder(root)
    assert str(bad[which]) in str(info.value)
    assert "on_error='skip'" in str(info.value)


def test_corrupt_files_skipped_with_a_warning_each(tmp_path: Path):
    root = tmp_path / "d"
    bad = _corrupt_files(root)
    with pytest.warns(UserWarning) as record:
        ds = ImageFolder(root, on_error="skip", image_size=8)
    messages = " ".join(str(w.message) for w in record)
    for path in bad.values():
        assert str(path) in messages
    assert ds.ids == ["good.png"]
    assert len(ds.skipped) == 4
    assert ds[0].shape[0] == 3


def test_truncated_file_not_validated_fails_clearly_when_read(tmp_path: Path):
    root = tmp_path / "d"
    bad = _corrupt_files(root)
    for name in ("garbage", "empty", "trunc_png"):
        bad[name].unlink()
    ds = ImageFolder(root, validate="none", image_size=8)
    i = ds.ids.index("trunc.jpg")
    with pytest.raises(CorruptImageError, match="trunc.jpg"):
        ds[i]


def test_decode_validation_reads_every_pixel(tmp_path: Path):
    root = tmp_path / "d"
    bad = _corrupt_files(root)
    for name in ("garbage", "empty", "trunc_png"):
        bad[name].unlink()
    with pytest.raises(CorruptImageError, match="trunc.jpg"):
        ImageFolder(root, validate="decode")


def test_empty_folder_is_a_clear_error(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyDatasetError, match="no usable image"):
        ImageFolder(tmp_path / "empty")
    (tmp_path / "txt").mkdir()
    (tmp_path / "txt" / "a.txt").write_text("x")
    with pytest.raises(EmptyDatasetError, match="1 other file"):
        ImageFolder(tmp_path / "txt")


def test_all_skipped_is_a_clear_error(tmp_path: Path):
    root = tmp_path / "d"
    root.mkdir()
    (root / "a.png").write_bytes(b"nope")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(EmptyDatasetError, match="skipped"):
            ImageFolder(root, on_error="skip")


def test_missing_root_and_file_root(tmp_path: Path):
    with pytest.raises(DataError, match="does not exist"):
        ImageFolder(tmp_path / "nope")
    f = write_image(tmp_path / "x.png")
    with pytest.raises(DataError, match="not a folder"):
        ImageFolder(f)


def test_bad_arguments(tmp_path: Path):
    write_image(tmp_path / "d" / "x.png")
    with pytest.raises(ValueError, match="on_error"):
        ImageFolder(tmp_path / "d", on_error="ignore")
    with pytest.raises(ValueError, match="crop_size"):
        ImageFolder(tmp_path / "d", image_size=8, crop_size=16)


def test_nothing_is_written_under_the_root(folder: Path, tmp_path: Path):
    write_mask(tmp_path / "masks" / "a.png")
    before = snapshot(folder)
    ds = ImageFolder(folder, masks=tmp_path / "masks", image_size=8, validate="decode")
    for i in range(len(ds)):
        ds[i]
        ds.mask(i)
    _ = ds.cache_key, masks_of(ds), ds.summary(), repr(ds)
    ImageFolder(folder, masks="{stem}_m.png", image_size=8)
    assert snapshot(folder) == before


def test_cache_key_tracks_data_and_preprocessing(tmp_path: Path):
    for name in ("r1", "r2"):
        write_image(tmp_path / name / "x.png")
    a = ImageFolder(tmp_path / "r1", image_size=8)
    assert a.cache_key == ImageFolder(tmp_path / "r1", image_size=8).cache_key
    assert a.cache_key != ImageFolder(tmp_path / "r1", image_size=16).cache_key
    assert a.cache_key != ImageFolder(tmp_path / "r2", image_size=8).cache_key
    write_image(tmp_path / "r1" / "x.png", size=(30, 30), seed=9)
    assert a.cache_key != ImageFolder(tmp_path / "r1", image_size=8).cache_key


def test_normal_dirs_labels(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "good" / "a.png")
    write_image(root / "scratch" / "b.png")
    write_image(root / "loose.png")
    ds = ImageFolder(root, normal_dirs=("good",), image_size=8)
    assert ds.ids == ["good/a.png", "loose.png", "scratch/b.png"]
    assert labels_of(ds).tolist() == [0, -1, 1]
    assert defect_types_of(ds) == [None, None, "scratch"]
    assert ds.summary()["defect_types"] == {"scratch": 1}


def test_accessors_follow_subsets(tmp_path: Path):
    root = tmp_path / "d"
    for k in range(6):
        write_image(root / ("good" if k % 2 else "bad") / f"{k}.png", seed=k)
    write_mask(tmp_path / "m" / "bad" / "0.png")
    ds = ImageFolder(root, masks=tmp_path / "m", normal_dirs=["good"], image_size=None)
    sub = Subset(Subset(ds, [5, 4, 0, 1]), [0, 2])
    idx = sub.root_indices
    assert labels_of(sub).tolist() == ds.labels[idx].tolist()
    assert defect_types_of(sub) == [ds.defect_types[i] for i in idx]
    m = masks_of(sub)
    assert m.shape == (2, 24, 32)
    np.testing.assert_array_equal(m[1], ds.mask(int(idx[1])))
    assert sub.ids == [ds.ids[i] for i in idx]
    with pytest.raises(TypeError, match="labels"):
        labels_of([1, 2, 3])


def test_explicit_transform_object(folder: Path):
    t = ImageTransform(image_size=12, crop_size=10, normalize=None)
    ds = ImageFolder(folder, transform=t)
    assert ds.transform is t
    assert tuple(ds[0].shape) == (3, 10, 10)
    assert ds.mask(0).shape == (10, 10)


def test_image_list_keeps_order_and_refuses_escapes(tmp_path: Path):
    root = tmp_path / "d"
    for name in ("a.png", "b/c.png", "d.png"):
        write_image(root / name)
    write_mask(tmp_path / "m" / "a.png")
    write_mask(tmp_path / "m" / "d.png")  # its image is not listed: fine for a list
    lst = tmp_path / "purified.txt"
    lst.write_text("# kept images\nb/c.png\n\na.png\n")
    from noisyclean.data import read_image_list

    entries = read_image_list(lst)
    assert entries == ["b/c.png", "a.png"]
    ds = ImageFolder(root, masks=tmp_path / "m", files=entries, image_size=8)
    assert ds.ids == ["b/c.png", "a.png"]
    assert ds.mask_paths[1] is not None and ds.mask_paths[0] is None
    for bad, match in ((str(root / "a.png"), "absolute"), ("../d/a.png", r"'\.\.'"),
                       ("b/../a.png", r"'\.\.'"), ("a.png\na.png", "twice")):
        with pytest.raises(DataError, match=match):
            ImageFolder(root, files=bad.split("\n"))
    outside = write_image(tmp_path / "secret.png")
    (root / "link.png").symlink_to(outside)
    with pytest.raises(DataError, match="outside"):
        ImageFolder(root, files=["link.png"])
    with pytest.raises(CorruptImageError, match="missing.png"):
        ImageFolder(root, files=["missing.png"])
    with pytest.raises(EmptyDatasetError, match="list names no image"):
        ImageFolder(root, files=[])


def test_corrupt_mask_names_both_files(tmp_path: Path):
    root = tmp_path / "d"
    write_image(root / "x.png")
    write_image(root / "y.png")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "x.png").write_bytes(b"broken")
    with pytest.raises(CorruptImageError, match=r"x\.png.*its mask .*m/x\.png"):
        ImageFolder(tmp_path / "d", masks=tmp_path / "m")
    with pytest.warns(UserWarning, match="its mask"):
        ds = ImageFolder(tmp_path / "d", masks=tmp_path / "m", on_error="skip")
    assert ds.ids == ["y.png"]
