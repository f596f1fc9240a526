"""CoDeGraph-style community removal (in the mutual view) and TailedCore-style tail
protection: what each finds, and how each joins the Purifier's selection."""

from __future__ import annotations

import numpy as np
import pytest

from noisyclean import Purifier
from noisyclean import community as co
from noisyclean import mutual as mu
from noisyclean import tail as ta
from noisyclean.samples import to_numpy

PATCHES, DIM = 12, 4


@pytest.fixture
def vouching_type():
    """60 normal images of Gaussian patches and 6 defect images that share one far-away
    patch, each copy matched almost exactly by the others (a consistent anomaly)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(66, PATCHES, DIM)).astype(np.float32)
    x[60:, 0] = 8.0 + 0.02 * rng.normal(size=(6, DIM))
    return x, np.r_[np.zeros(60, bool), np.ones(6, bool)]


def test_burnout_marks_the_group_that_matched_a_patch_before_the_jump(vouching_type):
    x, y = vouching_type
    refs = np.arange(len(x))
    dist = mu.image_distances(x, refs, per_image=PATCHES)
    jump, group = co.patch_burnout(dist, refs)
    assert jump[y].min() > 3 * np.median(jump[~y])
    for i in np.flatnonzero(y):  # the other five copies, and nothing else
        assert set(np.flatnonzero(group[i])) == set(np.flatnonzero(y)) - {i}
    np.testing.assert_array_equal(co.communities(dist, refs, refs), y)


def test_the_mutual_view_scores_again_without_the_community(vouching_type):
    x, y = vouching_type
    narrow = {"fraction": 0.05, "references": 66, "reference_patches": PATCHES}
    once = mu.mutual_scores(x, **narrow)  # three images averaged: the copies vouch
    assert not y[np.argsort(-once)[:6]].all()
    twice = mu.mutual_scores(x, community=True, **narrow)
    assert twice[y].min() > 2 * twice[~y].max()


def test_no_community_in_data_without_a_repeated_defect():
    x = np.random.default_rng(2).normal(size=(40, PATCHES, DIM)).astype(np.float32)
    refs = np.arange(40)
    assert not co.communities(mu.image_distances(x, refs, PATCHES), refs, refs).any()


def _modes(rng):
    """A head of 80 samples, a rare mode of 4 far away, and 4 scattered loners."""
    return np.concatenate([rng.normal(size=(80, 8)), 8.0 + 0.2 * rng.normal(size=(4, 8)),
                           rng.normal(size=(4, 8)) * 6.0])


def test_mode_sizes_find_the_rare_mode_and_leave_loners_out():
    emb = _modes(np.random.default_rng(0))
    sizes = ta.mode_sizes(emb, neighbors=5)
    assert (sizes[80:84] == 4).all()
    assert np.median(sizes[:80]) > 60
    np.testing.assert_array_equal(np.flatnonzero(ta.tail_mask(sizes)), np.arange(80, 84))


def test_protected_samples_come_first_in_their_own_order():
    ranking = np.array([4, 0, 3, 1, 2])
    protected = np.array([False, True, False, True, False])
    np.testing.assert_array_equal(ta.protected_first(ranking, protected), [3, 1, 4, 0, 2])


class Embedder:
    """A nearest-neighbour detector on the vectors themselves, with ``embed``."""

    preferred_scoring = "out_of_bag"

    def fit(self, dataset):
        self.bank_ = to_numpy(dataset)
        return self

    def score(self, dataset):
        q = to_numpy(dataset)
        return np.sqrt(((q[:, None] - self.bank_[None]) ** 2).sum(-1)).min(1)

    def embed(self, dataset):
        return to_numpy(dataset)


class Blind(Embedder):
    embed = None


def test_the_purifier_keeps_the_rare_mode_only_with_tail_protection(tmp_path):
    emb = _modes(np.random.default_rng(0))
    plain = Purifier(Embedder, k=3, keep=0.85, progress=False).fit(emb)
    kept = Purifier(Embedder, k=3, keep=0.85, protect_tail=True, progress=False).fit(emb)
    rare = np.arange(80, 84)
    assert not plain.keep_mask_[rare].all()  # the whole-image view drops the rare mode
    assert kept.keep_mask_[rare].all()
    assert kept.n_keep_ == plain.n_keep_
    np.testing.assert_array_equal(np.flatnonzero(kept.tail_mask_), rare)
    assert plain.tail_mask_ is None
    loaded = Purifier.load(kept.save(tmp_path / "run"), detector=Embedder)
    np.testing.assert_array_equal(loaded.tail_mask_, kept.tail_mask_)
    np.testing.assert_array_equal(loaded.ranking_, kept.ranking_)


def test_tail_protection_needs_embed_and_a_bool():
    emb = _modes(np.random.default_rng(0))
    with pytest.raises(ValueError, match="protect_tail=True needs a detector with embed"):
        Purifier(Blind, k=3, protect_tail=True, progress=False).fit(emb)
    with pytest.raises(ValueError, match="protect_tail='yes' must be True"):
        Purifier(Embedder, k=3, protect_tail="yes", progress=False).fit(emb)


def test_a_bad_community_setting_is_named():
    with pytest.raises(ValueError, match="community='yes' must be True or False"):
        mu.validate(True, {"community": "yes"})


def test_the_benchmark_ablations_exist():
    from noisyclean.benchmark import ablation_conditions

    rows = ablation_conditions(["mutual view + community removal (CoDeGraph)",
                                "tail protection (TailedCore)"])
    assert rows[0].purifier == {"mutual": True, "mutual_params": {"community": True}}
    assert rows[1].purifier == {"protect_tail": True}


def test_the_cli_switches_reach_the_purifier(tmp_path):
    import json

    from typer.testing import CliRunner

    from noisyclean.cli import app
    from noisyclean.data import make_texture_dataset

    make_texture_dataset(tmp_path / "data", n_normal=12, n_anomalous=2, image_size=32, seed=1)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "purify", str(tmp_path / "data" / "synthetic"), "--out", str(out), "--image-size", "32",
        "--k", "2", "--quiet", "--community", "--protect-tail"])
    assert result.exit_code == 0, result.output
    config = json.loads((out / "manifest.json").read_text())["config"]
    assert config["mutual"] is True and config["mutual_params"] == {"community": True}
    assert config["protect_tail"] is True
    assert "tail" in np.load(out / "scores.npz", allow_pickle=False)


def test_the_whole_image_view_and_the_tail_share_one_embedding_pass():
    calls = []

    class Counting(Embedder):
        def embed(self, dataset):
            calls.append(len(dataset))
            return super().embed(dataset)

    Purifier(Counting, k=3, protect_tail=True, progress=False).fit(_modes(np.random.default_rng(0)))
    assert calls == [len(_modes(np.random.default_rng(0)))]


def test_mode_sizes_reuse_the_whole_image_views_neighbour_distances():
    """The views compute the k-th neighbour distances once; handing them to mode_sizes gives
    the very modes it finds on its own."""
    from noisyclean.whole_image import neighbor_distances, outlier_scores

    emb = _modes(np.random.default_rng(3))
    dist = neighbor_distances(emb, 5)
    np.testing.assert_array_equal(ta.mode_sizes(emb, 5, dist), ta.mode_sizes(emb, 5))
    np.testing.assert_allclose(outlier_scores(emb, 5), dist ** 2)
