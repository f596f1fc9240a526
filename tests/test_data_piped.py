"""The PIPED layout on a tiny synthetic copy written here, and on the real data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("PIL")
from PIL import Image
from test_data_layouts import img, snapshot

from noisyclean.data import (
    PIPED,
    DataError,
    LayoutError,
    MaskMismatchError,
    defect_types_of,
    find_piped_root,
    labels_of,
    piped_classes,
)

SIZE = (16, 16)
IMPURITY = (slice(3, 7), slice(5, 9))


def inverted_mask(path: Path) -> Path:
    """A PIPED mask as the source stores it: 1-bit, impurity black (0) on white (1)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.ones(SIZE, bool)
    arr[IMPURITY] = False
    Image.fromarray(arr).convert("1").save(path)
    return path


def write_class(root: Path, name: str = "PA_TEST01_TL", mask_folder: str = "GroundThruth",
                normals: int = 3, defects: int = 2) -> Path:
    cls = root / name
    for k in range(normals):
        img(cls / "NoDefects" / f"{name}_S_ND_01_{k + 1}.bmp", size=SIZE, seed=k, fmt="BMP")
    for k in range(defects):
        img(cls / "Defects" / f"{name}_S_D_02_{k + 1}.bmp", size=SIZE, seed=10 + k, fmt="BMP")
        inverted_mask(cls / "Defects" / mask_folder / f"{name}_S_GT_02_{k + 1}.bmp")
    return cls


def test_piped_layout_labels_ids_and_inverted_masks(tmp_path: Path):
    write_class(tmp_path)
    (tmp_path / "README.md").write_text("not a class")
    before = snapshot(tmp_path)
    ds = PIPED(tmp_path, "PA_TEST01_TL", image_size=None)
    assert ds.ids == [f"PA_TEST01_TL/NoDefects/PA_TEST01_TL_S_ND_01_{k}.bmp" for k in (1, 2, 3)] \
        + [f"PA_TEST01_TL/Defects/PA_TEST01_TL_S_D_02_{k}.bmp" for k in (1, 2)]
    assert labels_of(ds).tolist() == [0, 0, 0, 1, 1]
    assert defect_types_of(ds) == [None, None, None, "impurity", "impurity"]
    expected = np.zeros(SIZE, bool)
    expected[IMPURITY] = True
    assert np.array_equal(ds.mask(3), expected)  # the black impurity is the defect
    assert not ds.mask(0).any()
    assert tuple(ds[4].shape) == (3, *SIZE)
    assert PIPED(tmp_path, "PA_TEST01_TL", image_size=None).ids == ds.ids  # stable
    assert snapshot(tmp_path) == before


def test_piped_accepts_both_spellings_of_the_mask_folder(tmp_path: Path):
    write_class(tmp_path, "PA_A", mask_folder="GroundThruth")
    write_class(tmp_path, "PA_B", mask_folder="GroundTruth")
    assert piped_classes(tmp_path) == ["PA_A", "PA_B"]
    assert PIPED(tmp_path, "PA_B", image_size=8).mask(4).any()


def test_piped_errors(tmp_path: Path):
    cls = write_class(tmp_path)
    with pytest.raises(LayoutError, match="classes found: PA_TEST01_TL"):
        PIPED(tmp_path, "PA_NOPE")
    (cls / "Defects" / "GroundThruth" / "PA_TEST01_TL_S_GT_02_2.bmp").unlink()
    with pytest.raises(MaskMismatchError, match="without a mask.*S_D_02_2"):
        PIPED(tmp_path, "PA_TEST01_TL")
    inverted_mask(cls / "Defects" / "GroundThruth" / "PA_TEST01_TL_S_GT_02_2.bmp")
    inverted_mask(cls / "Defects" / "GroundThruth" / "PA_TEST01_TL_S_GT_09_9.bmp")
    with pytest.raises(MaskMismatchError, match="without a defect image.*GT_09_9"):
        PIPED(tmp_path, "PA_TEST01_TL")
    with pytest.raises(DataError, match="does not exist"):
        PIPED(tmp_path / "absent", "PA_TEST01_TL")


def test_piped_root_from_environment(tmp_path: Path, monkeypatch):
    write_class(tmp_path)
    monkeypatch.setenv("NOISYCLEAN_PIPED_ROOT", str(tmp_path))
    assert find_piped_root() == tmp_path
    assert len(PIPED(category="PA_TEST01_TL", image_size=8)) == 5


def _real_piped_root() -> Path | None:
    root = find_piped_root()
    return root if root is not None and root.is_dir() and piped_classes(root) else None


@pytest.mark.realdata
@pytest.mark.skipif(_real_piped_root() is None, reason="PIPED data not present")
def test_piped_real_data():
    root = _real_piped_root()
    before = snapshot(root)
    assert piped_classes(root) == ["PA_BFT01_TL", "PA_BRG02_RL", "PA_FVN01_TL", "PA_GLA01_TL"]
    for category in piped_classes(root):
        ds = PIPED(root, category, image_size=None)
        labels = labels_of(ds)
        assert len(ds) == 96 and (labels == 0).sum() == 48 and (labels == 1).sum() == 48
        assert len(set(ds.ids)) == 96 and all(i.startswith(category + "/") for i in ds.ids)
        defects = np.flatnonzero(labels == 1)
        masks = ds.masks(defects)
        assert masks.shape == (48, 128, 128)
        # impurities are small once inverted: every mask marks some pixels, none most of them
        assert masks.any(axis=(1, 2)).all() and masks.mean() < 0.2
        assert tuple(ds[0].shape) == (3, 128, 128)
    assert snapshot(root) == before
