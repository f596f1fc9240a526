"""Purification metrics: the report of one purification, and the paper's Figure 4 counts."""

from __future__ import annotations

import math

import numpy as np
import pytest

from noisyclean.metrics import purification_report, selection_size, submodel_selection_counts


def test_report_hand_computed():
    # 10 samples, anomalies at 1, 4, 7; the purifier keeps 0-5 (drops 6-9)
    is_anomaly = np.zeros(10, bool)
    is_anomaly[[1, 4, 7]] = True
    keep = np.arange(10) < 6
    r = purification_report(is_anomaly, keep)
    assert r["n_samples"] == 10 and r["n_anomalies"] == 3 and r["n_normals"] == 7
    assert r["n_kept"] == 6 and r["n_dropped"] == 4
    assert r["anomalies_kept"] == 2 and r["anomalies_dropped"] == 1
    assert r["normals_kept"] == 4 and r["normals_lost"] == 3
    assert r["anomaly_fraction_before"] == pytest.approx(0.3)
    assert r["anomaly_fraction_after"] == pytest.approx(2 / 6)
    assert r["anomaly_recall"] == pytest.approx(1 / 3)
    assert r["normals_lost_fraction"] == pytest.approx(3 / 7)
    assert r["drop_precision"] == pytest.approx(1 / 4)


def test_report_undefined_ratios_are_nan_not_errors():
    clean = purification_report([0, 0, 0, 0], [1, 1, 0, 1])  # noise ratio 0
    assert math.isnan(clean["anomaly_recall"])
    assert clean["anomaly_fraction_before"] == 0.0 and clean["anomaly_fraction_after"] == 0.0
    assert clean["normals_lost"] == 1
    nothing_kept = purification_report([0, 1], [0, 0])
    assert math.isnan(nothing_kept["anomaly_fraction_after"])
    assert nothing_kept["anomaly_recall"] == 1.0


def test_report_refuses_bad_input():
    with pytest.raises(ValueError, match="same order"):
        purification_report([0, 1, 1], [1, 1])
    with pytest.raises(ValueError, match="unknown"):
        purification_report([0, -1], [1, 1])


def ref_counts(row, is_anomaly, fraction):
    """Sort the scored samples by (score, position); take the first round-half-up(f·m)."""
    scored = [(s, j) for j, s in enumerate(row) if not np.isnan(s)]
    scored.sort()
    m = len(scored)
    take = int(fraction * m + 0.5)
    chosen = [j for _, j in scored[:take]]
    anomalies = sum(bool(is_anomaly[j]) for j in chosen)
    return take, take - anomalies, anomalies


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8, 1.0])
def test_selection_counts_match_reference_with_out_of_bag_nans(fraction):
    rng = np.random.default_rng(0)
    k, n = 3, 40
    is_anomaly = rng.random(n) < 0.25
    scores = rng.normal(size=(k, n)) + 1.5 * is_anomaly
    scores = np.round(scores, 1)  # ties, broken by sample order
    bag = rng.integers(0, k, n)  # out-of-bag: sub-model i did not score its own bag
    for i in range(k):
        scores[i, bag == i] = np.nan
    got = submodel_selection_counts(scores, is_anomaly, fraction)
    assert got["fraction"] == fraction
    for i, row in enumerate(got["submodels"]):
        take, normals, anomalies = ref_counts(scores[i], is_anomaly, fraction)
        assert row["n_scored"] == int((bag != i).sum())
        assert row["anomalies_scored"] == int(is_anomaly[bag != i].sum())
        assert (row["n_selected"], row["normals"], row["anomalies"]) == (take, normals, anomalies)
    # default consensus: mean of the scores each sample received
    consensus = [np.mean(scores[~np.isnan(scores[:, j]), j]) for j in range(n)]
    take, normals, anomalies = ref_counts(consensus, is_anomaly, fraction)
    c = got["consensus"]
    assert (c["n_selected"], c["normals"], c["anomalies"]) == (take, normals, anomalies)
    assert c["anomaly_fraction"] == pytest.approx(anomalies / take)


def test_given_consensus_is_used():
    is_anomaly = np.array([0, 0, 1, 1])
    scores = np.array([[0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]])
    consensus = np.array([0.1, 0.2, 0.9, 0.8])
    got = submodel_selection_counts(scores, is_anomaly, 0.5, consensus=consensus)
    assert [(r["normals"], r["anomalies"]) for r in got["submodels"]] == [(2, 0), (0, 2)]
    assert (got["consensus"]["normals"], got["consensus"]["anomalies"]) == (2, 0)


def test_unscored_everywhere_sample_is_left_out_of_the_consensus():
    scores = np.array([[0.1, np.nan, 0.3], [0.2, np.nan, 0.1]])
    got = submodel_selection_counts(scores, [0, 1, 0], 1.0)
    assert got["consensus"]["n_scored"] == 2
    assert got["consensus"]["anomalies"] == 0


def test_selection_size_rounds_half_up():
    assert [selection_size(10, f) for f in (0.05, 0.15, 0.2, 0.8, 1.0)] == [1, 2, 2, 8, 10]
    assert selection_size(3, 0.2) == 1  # 0.6 → 1
    assert selection_size(0, 0.5) == 0


def test_selection_counts_refuse_bad_input():
    with pytest.raises(ValueError, match=r"\(k sub-models, n samples\)"):
        submodel_selection_counts(np.zeros(4), [0, 1, 0, 1], 0.5)
    with pytest.raises(ValueError, match="one label per column"):
        submodel_selection_counts(np.zeros((2, 4)), [0, 1, 0], 0.5)
    with pytest.raises(ValueError, match="fraction"):
        submodel_selection_counts(np.zeros((2, 4)), [0, 1, 0, 1], 0.0)
    with pytest.raises(ValueError, match="infinite"):
        submodel_selection_counts(np.full((2, 4), np.inf), [0, 1, 0, 1], 0.5)
    with pytest.raises(ValueError, match="one per sample"):
        submodel_selection_counts(np.zeros((2, 4)), [0, 1, 0, 1], 0.5, consensus=np.zeros(3))
