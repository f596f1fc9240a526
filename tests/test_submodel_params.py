"""Stage-1 sub-models may be cheaper than the final detector: ``submodel_params``."""

from __future__ import annotations

import math

import numpy as np
import pytest

from noisyclean import Purifier
from noisyclean.protocol import apply_params, set_constructor_params, submodel_params

SEEN: list[tuple[str, float, int]] = []  # (role, bank, training size) of every fit


class ShrinkingDetector:
    """A toy memory bank whose sub-models ask for a bank proportional to their share."""

    def __init__(self, bank: float = 100.0, extra: int = 0):
        self.bank = bank
        self.extra = extra

    def submodel_params(self, share: float) -> dict:
        return {"bank": self.bank * share}

    def fit(self, dataset):
        self.train_ = np.asarray(dataset, dtype=float)
        SEEN.append(("fit", self.bank, len(self.train_)))
        return self

    def score(self, dataset):
        x = np.asarray(dataset, dtype=float)
        return np.abs(x[:, 0] - self.train_[:, 0].mean())


class WithSetParams(ShrinkingDetector):
    def set_params(self, **params):
        SEEN.append(("set_params", params.get("bank", -1.0), 0))
        for name, value in params.items():
            setattr(self, name, value)
        return self


@pytest.fixture(autouse=True)
def _clear():
    SEEN.clear()


def _data(n=60):
    return np.random.default_rng(0).normal(size=(n, 1))


def test_auto_applies_the_detector_suggestion_to_sub_models_only():
    p = Purifier(ShrinkingDetector, k=3, progress=False).fit(_data())
    sub_fits = [s for s in SEEN if s[0] == "fit"]
    assert [(bank, n) for _, bank, n in sub_fits] == [(pytest.approx(100 * 20 / 60), 20)] * 3
    SEEN.clear()
    final = p.fit_final(_data())
    assert final.bank == 100.0 and SEEN == [("fit", 100.0, 48)]


def test_a_dict_adds_to_the_suggestion_and_none_disables_it():
    Purifier(ShrinkingDetector, k=3, submodel_params={"bank": 7.0}, progress=False).fit(_data())
    assert {bank for _, bank, _ in SEEN} == {7.0}
    SEEN.clear()
    Purifier(ShrinkingDetector, k=3, submodel_params={"extra": 1}, progress=False).fit(_data())
    assert [bank for _, bank, _ in SEEN] == [pytest.approx(100 * 20 / 60)] * 3
    SEEN.clear()
    Purifier(ShrinkingDetector, k=3, submodel_params=None, progress=False).fit(_data())
    assert {bank for _, bank, _ in SEEN} == {100.0}


def test_set_params_is_used_when_the_detector_has_it():
    Purifier(WithSetParams, k=2, progress=False).fit(_data())
    assert [s[0] for s in SEEN] == ["set_params", "fit", "set_params", "fit"]


def test_bad_overrides_get_clear_errors():
    with pytest.raises(ValueError, match=r"no parameter\(s\) \[.epochs.\]"):
        Purifier(ShrinkingDetector, submodel_params={"epochs": 3}, progress=False).fit(_data())
    with pytest.raises(ValueError, match="'auto', None"):
        Purifier(ShrinkingDetector, submodel_params="small", progress=False).fit(_data())
    with pytest.raises(ValueError, match="JSON"):
        Purifier(ShrinkingDetector, submodel_params={"bank": object()}, progress=False).fit(
            _data())

    class Broken(ShrinkingDetector):
        def submodel_params(self, share):
            return [("bank", 1)]

    with pytest.raises(TypeError, match="must return a dict"):
        submodel_params(Broken(), 0.5)


def test_helpers_without_a_suggestion():
    class Plain:
        alpha = 1

    assert submodel_params(Plain(), 0.3) == {}
    assert apply_params(Plain(), {}, "x").alpha == 1


def test_changed_overrides_do_not_reuse_cached_rows(tmp_path):
    x = _data()
    Purifier(ShrinkingDetector, cache_dir=tmp_path, progress=False).fit(x)
    n_fits = len(SEEN)
    Purifier(ShrinkingDetector, cache_dir=tmp_path, submodel_params={"bank": 3.0},
             progress=False).fit(x)
    assert len(SEEN) == 2 * n_fits  # retrained, not resumed from the other setting's rows


def test_patchknn_caps_its_sub_model_bank_at_its_share():
    pytest.importorskip("torch")
    from noisyclean.detectors.patchknn import PatchKNN

    assert PatchKNN(coreset_max=5000).submodel_params(1 / 3) == {"coreset_max": math.ceil(5000 / 3)}
    assert PatchKNN(coreset_max=None).submodel_params(1 / 3) == {}
    assert PatchKNN().submodel_params(1.0) == {}
    # a sub-model only ranks images: one bank of the scoring levels (same extraction)
    assert PatchKNN(coreset_max=3000, score_layers=(2, 3, 4)).submodel_params(1 / 3) == {
        "coreset_max": 1000, "layers": (2, 3, 4), "score_layers": None}
    assert PatchKNN(score_layers=(3, 4)).submodel_params(1.0) == {}  # would extract again


def test_patchknn_checks_overrides_as_its_constructor_does():
    pytest.importorskip("torch")
    from noisyclean.detectors.patchknn import PatchKNN

    with pytest.raises(ValueError, match="image_score"):
        PatchKNN().set_params(image_score="mean")
    with pytest.raises(ValueError, match="no parameter"):
        PatchKNN().set_params(epochs=3)
    det = PatchKNN().set_params(coreset_max=10, image_score="topk_mean")
    assert (det.coreset_max, det.image_score) == (10, "topk_mean")


def test_patchknn_refuses_numbers_of_the_wrong_type_where_they_are_set():
    pytest.importorskip("torch")
    from noisyclean.detectors.patchknn import PatchKNN

    with pytest.raises(TypeError, match=r"coreset_max must be an integer >= 1 or None, got 'a'"):
        PatchKNN(coreset_max="a")
    with pytest.raises(ValueError, match="coreset_max must be an integer >= 1"):
        PatchKNN(coreset_max=0)
    with pytest.raises(TypeError, match="n_neighbors"):
        PatchKNN(n_neighbors=True)  # a bool is not a count
    with pytest.raises(ValueError, match="sigma must be a number >= 0"):
        PatchKNN(sigma=float("nan"))
    with pytest.raises(ValueError, match="topk must be a number > 0"):
        PatchKNN(topk=0)
    assert PatchKNN(coreset_max=None, coreset_ratio=None, sigma=0).coreset_max is None


def test_a_rejected_override_leaves_the_detector_as_it_was():
    pytest.importorskip("torch")
    from noisyclean.detectors.patchknn import PatchKNN

    det = PatchKNN(coreset_max=100, image_score="max")
    with pytest.raises(TypeError, match="coreset_max"):
        det.set_params(image_score="topk_mean", coreset_max="a")
    assert (det.coreset_max, det.image_score) == (100, "max")
    assert det.set_params(coreset_max=7).coreset_max == 7  # still usable afterwards


def test_set_constructor_params_restores_attributes_the_check_rejects():
    class Strict:
        def __init__(self, alpha=1):
            self.alpha = alpha

        def check(self):
            if self.alpha < 0:
                raise ValueError("alpha must be >= 0")

    det = Strict()
    with pytest.raises(ValueError, match="alpha"):
        set_constructor_params(det, {"alpha": -1}, check=det.check)
    assert det.alpha == 1
    set_constructor_params(det, {"alpha": 5}, check=det.check)
    assert det.alpha == 5


def test_fractions_are_bounded_on_both_sides():
    pytest.importorskip("torch")
    from noisyclean.detectors.patchknn import PatchKNN

    with pytest.raises(ValueError, match=r"topk must be a number > 0 and <= 1, got 2"):
        PatchKNN(topk=2)
    with pytest.raises(ValueError, match=r"denoise_fraction must be a number >= 0 and < 1"):
        PatchKNN(denoise_fraction=1.0)
    assert PatchKNN(topk=1.0, denoise_fraction=0.0).topk == 1.0  # the closed ends are allowed


def test_a_wrongly_typed_override_says_where_it_came_from():
    pytest.importorskip("torch")
    from noisyclean.detectors.patchknn import PatchKNN

    with pytest.raises(TypeError, match=r"sub-model 0: submodel_params: PatchKNN: coreset_max"):
        apply_params(PatchKNN(), {"coreset_max": "a"}, "sub-model 0")
