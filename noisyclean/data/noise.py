"""The contamination protocol: a noisy training set and a disjoint test set from labelled data.

Definition (what :func:`make_noisy_split` builds, exactly):

1. **Test set.** A random ``test_normal_fraction`` of the normals, and a random
   ``test_anomaly_fraction`` of the anomalies *of each defect type* (stratified), are held
   out for testing. Counts are rounded half up: 0.5 × 57 anomalies of a type gives 29. For
   a given seed the test set does not depend on ``noise_ratio``, so runs at different
   noise ratios (and the oracle) are evaluated on the same images.
2. **Training set.** All remaining normals (``N`` of them) plus ``a`` anomalies, where the
   noise ratio is, as in Real-IAD's FUIAD setting, the anomaly fraction of the *training
   set*: ``a / (N + a)``. ``a`` is the integer that brings ``a / (N + a)`` closest to
   ``noise_ratio`` (ties go to the smaller ``a``).
3. **Drawing the anomalies.** The ``a`` anomalies are drawn from the anomalies that were
   not held out (or, with ``overlap=True``, from the held-out test anomalies themselves),
   stratified by defect type: each type gets its share of ``a`` in proportion to its
   available count, by the largest-remainder method, and the anomalies within a type are
   drawn at random.
4. **Not enough anomalies.** If fewer than ``a`` anomalies are available, then with
   ``on_shortage="reduce_normals"`` (the default) every available anomaly is used and the
   training normals are cut (at random) to the count that brings the ratio closest to
   ``noise_ratio``; the cut normals are in neither set. With ``on_shortage="raise"`` a
   :class:`~noisyclean.data.errors.DataError` says how many anomalies were needed and how
   many there were. (On Magnetic Tile with the defaults, 666 normals stay for training
   and 194 anomalies are outside the test set; noise 0.4 would need 444, so the training
   set has 291 normals and 194 anomalies. Noise 0.1 and 0.2 need 74 and 167.)

``overlap=True`` follows SoftPatch (Jiang et al., NeurIPS 2022, ``--overlap``): SoftPatch
draws its noise anomalies from the test set and, with ``--overlap``, leaves the test set
whole, so every injected training anomaly is also a test sample. Here that means the
injected anomalies are drawn from the held-out test anomalies and stay in the test set;
with ``test_anomaly_fraction=1.0`` this is SoftPatch's protocol. Two differences remain:
SoftPatch counts its noise relative to the normals (``int(s × N)`` anomalies, so its ``s``
is ``r / (1 - r)`` in the FUIAD definition used here) and does not stratify by type.

All indices are positions in the original dataset, sorted ascending. Train and test are
disjoint unless ``overlap=True``. The same inputs and seed give the same split on every
machine (numpy's ``default_rng``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from noisyclean.data.errors import DataError

UNTYPED = "anomaly"
"""The defect type given to anomalies whose type is ``None``."""


def _round_half_up(x: float) -> int:
    return math.floor(x + 0.5 + 1e-9)


def _ratio_error(a: int, n: int, ratio: float) -> float:
    return abs(a / (n + a) - ratio) if n + a else math.inf


def best_anomaly_count(n_normal: int, ratio: float) -> int:
    """The ``a`` that brings ``a / (n_normal + a)`` closest to ``ratio`` (ties: smaller)."""
    if ratio <= 0:
        return 0
    x = ratio * n_normal / (1.0 - ratio)
    lo = math.floor(x)
    return min((lo, lo + 1), key=lambda a: (_ratio_error(a, n_normal, ratio), a))


def best_normal_count(n_anomaly: int, ratio: float, n_max: int) -> int:
    """The ``n`` in ``[1, n_max]`` that brings ``n_anomaly / (n + n_anomaly)`` closest to
    ``ratio`` (ties: larger ``n``, to keep more training data)."""
    y = n_anomaly * (1.0 - ratio) / ratio
    lo = min(max(math.floor(y), 1), n_max)
    hi = min(max(math.ceil(y), 1), n_max)
    return min((hi, lo), key=lambda n: (_ratio_error(n_anomaly, n, ratio), -n))


def _largest_remainder(total: int, sizes: Sequence[int]) -> list[int]:
    """Split ``total`` over groups in proportion to ``sizes``; never above a group's size."""
    pool = sum(sizes)
    if total == 0 or pool == 0:
        return [0] * len(sizes)
    quotas = [total * s / pool for s in sizes]
    alloc = [math.floor(q) for q in quotas]
    order = sorted(range(len(sizes)), key=lambda i: (-(quotas[i] - alloc[i]), i))
    for i in order[: total - sum(alloc)]:
        alloc[i] += 1
    return alloc


@dataclass(frozen=True)
class NoisySplit:
    """A contaminated training set and a test set, with the counts actually achieved.

    Attributes:
        train_indices: training samples (normals and injected anomalies), ascending.
        test_indices: test samples, ascending.
        injected_indices: the anomalies in the training set, ascending.
        unused_indices: samples in neither set (normals cut for the ratio, anomalies not
            drawn), ascending.
        noise_ratio: the requested anomaly fraction of the training set.
        achieved_ratio: ``n_train_anomaly / len(train_indices)``.
        n_train_normal, n_train_anomaly, n_test_normal, n_test_anomaly: counts.
        train_anomalies_per_type, test_anomalies_per_type: anomaly counts by defect type.
        normals_reduced: whether normals were cut because anomalies ran short.
        overlap, seed, test_normal_fraction, test_anomaly_fraction: the settings.
    """

    train_indices: np.ndarray
    test_indices: np.ndarray
    injected_indices: np.ndarray
    unused_indices: np.ndarray
    noise_ratio: float
    achieved_ratio: float
    n_train_normal: int
    n_train_anomaly: int
    n_test_normal: int
    n_test_anomaly: int
    train_anomalies_per_type: dict[str, int] = field(default_factory=dict)
    test_anomalies_per_type: dict[str, int] = field(default_factory=dict)
    normals_reduced: bool = False
    overlap: bool = False
    seed: int = 0
    test_normal_fraction: float = 0.3
    test_anomaly_fraction: float = 0.5

    def counts(self) -> dict[str, Any]:
        """Every count and setting as JSON-ready values (no index arrays), for manifests."""
        return {
            "noise_ratio": self.noise_ratio,
            "achieved_ratio": self.achieved_ratio,
            "n_train": int(self.train_indices.size),
            "n_train_normal": self.n_train_normal,
            "n_train_anomaly": self.n_train_anomaly,
            "train_anomalies_per_type": dict(self.train_anomalies_per_type),
            "n_test": int(self.test_indices.size),
            "n_test_normal": self.n_test_normal,
            "n_test_anomaly": self.n_test_anomaly,
            "test_anomalies_per_type": dict(self.test_anomalies_per_type),
            "n_unused": int(self.unused_indices.size),
            "normals_reduced": self.normals_reduced,
            "overlap": self.overlap,
            "seed": self.seed,
            "test_normal_fraction": self.test_normal_fraction,
            "test_anomaly_fraction": self.test_anomaly_fraction,
        }

    def __str__(self) -> str:
        per = ", ".join(f"{k} {v}" for k, v in self.train_anomalies_per_type.items())
        return (
            f"train {self.train_indices.size}: {self.n_train_normal} normal + "
            f"{self.n_train_anomaly} anomalous ({per or 'none'}), ratio "
            f"{self.achieved_ratio:.4f} (asked {self.noise_ratio:g}"
            f"{', normals reduced' if self.normals_reduced else ''}); test "
            f"{self.test_indices.size}: {self.n_test_normal} normal + {self.n_test_anomaly} "
            f"anomalous{' (overlapping train)' if self.overlap else ''}"
        )


def make_noisy_split(
    labels: Sequence[int] | np.ndarray,
    defect_types: Sequence[str | None] | None,
    noise_ratio: float,
    *,
    test_normal_fraction: float = 0.3,
    test_anomaly_fraction: float = 0.5,
    overlap: bool = False,
    seed: int = 0,
    on_shortage: Literal["reduce_normals", "raise"] = "reduce_normals",
) -> NoisySplit:
    """Build a training set whose anomaly fraction is ``noise_ratio``, and a test set.

    The exact definition is in this module's documentation (:mod:`noisyclean.data.noise`):
    stratified held-out test set; training anomaly fraction ``a / (N + a)`` as close to
    ``noise_ratio`` as integers allow; anomalies drawn stratified by defect type; normals
    reduced (or an error, with ``on_shortage="raise"``) when anomalies run short;
    ``overlap=True`` draws the training anomalies from the test anomalies, as SoftPatch.

    Args:
        labels: 0 (normal) or 1 (anomaly) per sample; unknown labels (-1) are refused.
        defect_types: the type of each sample (ignored for normals); ``None`` puts all
            anomalies in one type.
        noise_ratio: in ``[0, 1)``.
        test_normal_fraction, test_anomaly_fraction: held-out shares, in ``[0, 1]``.
        overlap: SoftPatch's overlapping protocol (see above).
        seed: the random seed.
        on_shortage: ``"reduce_normals"`` (default) or ``"raise"``.

    Returns:
        A :class:`NoisySplit` with indices into the original samples and achieved counts.

    Example:
        >>> from noisyclean.data import MagneticTile, labels_of, defect_types_of
        >>> data = MagneticTile()                                      # doctest: +SKIP
        >>> split = make_noisy_split(labels_of(data), defect_types_of(data), 0.1, seed=0)
        >>> train, test = data.subset(split.train_indices), data.subset(split.test_indices)
    """
    labels = np.asarray(labels).reshape(-1)
    n = labels.size
    if n == 0:
        raise DataError("no samples to split")
    if not np.isin(labels, (0, 1)).all():
        bad = int((~np.isin(labels, (0, 1))).sum())
        raise DataError(
            f"{bad} sample(s) have a label other than 0 (normal) or 1 (anomaly); the noise "
            "protocol needs labelled data (a layout such as MVTecAD or MagneticTile, or "
            "ImageFolder with normal_dirs=...)"
        )
    if defect_types is None:
        types = [UNTYPED] * n
    else:
        types = [UNTYPED if t is None else str(t) for t in defect_types]
        if len(types) != n:
            raise ValueError(f"defect_types has {len(types)} entries but labels has {n}")
    noise_ratio = float(noise_ratio)
    if not 0.0 <= noise_ratio < 1.0:
        raise ValueError(f"noise_ratio must be in [0, 1); got {noise_ratio}")
    for name, frac in (("test_normal_fraction", test_normal_fraction),
                       ("test_anomaly_fraction", test_anomaly_fraction)):
        if not 0.0 <= float(frac) <= 1.0:
            raise ValueError(f"{name} must be in [0, 1]; got {frac}")
    if on_shortage not in ("reduce_normals", "raise"):
        raise ValueError(f"on_shortage must be 'reduce_normals' or 'raise'; got {on_shortage!r}")

    rng = np.random.default_rng(seed)
    # 1. held-out test set (random draws do not depend on noise_ratio)
    normals = rng.permutation(np.flatnonzero(labels == 0))
    n_test_normal = _round_half_up(test_normal_fraction * normals.size)
    test_normals, pool_normals = normals[:n_test_normal], normals[n_test_normal:]
    anomaly_types = sorted({types[i] for i in np.flatnonzero(labels == 1)})
    type_arr = np.asarray(types, dtype=object)
    test_by_type: dict[str, np.ndarray] = {}
    pool_by_type: dict[str, np.ndarray] = {}
    for t in anomaly_types:
        idx = rng.permutation(np.flatnonzero((labels == 1) & (type_arr == t)))
        k = _round_half_up(test_anomaly_fraction * idx.size)
        test_by_type[t] = idx[:k]
        pool_by_type[t] = idx[:k] if overlap else idx[k:]

    # 2. the anomaly count that gives the ratio
    if pool_normals.size == 0:
        raise DataError(
            f"no normals are left for training ({normals.size} normals, "
            f"test_normal_fraction={test_normal_fraction}); lower test_normal_fraction"
        )
    available = sum(v.size for v in pool_by_type.values())
    n_train_normal = int(pool_normals.size)
    a = best_anomaly_count(n_train_normal, noise_ratio)
    reduced = False
    if a > available:
        where = "held-out test anomalies" if overlap else "anomalies outside the test set"
        if on_shortage == "raise" or available == 0:
            raise DataError(
                f"noise ratio {noise_ratio:g} with {n_train_normal} training normals needs "
                f"{a} anomalies, but only {available} {where} are available; lower the noise "
                "ratio or test_anomaly_fraction"
                + (", or pass on_shortage='reduce_normals' to train on fewer normals"
                   if on_shortage == "raise" and available else "")
            )
        a = available
        n_train_normal = best_normal_count(a, noise_ratio, n_train_normal)
        reduced = n_train_normal < pool_normals.size

    # 3. stratified draw
    alloc = _largest_remainder(a, [pool_by_type[t].size for t in anomaly_types])
    injected_parts = [pool_by_type[t][:k] for t, k in zip(anomaly_types, alloc)]
    injected = np.sort(np.concatenate([np.asarray(p, np.int64) for p in injected_parts]
                                      + [np.zeros(0, np.int64)]))
    train_normals = pool_normals[:n_train_normal]
    train = np.sort(np.concatenate([train_normals, injected]).astype(np.int64))
    test_anoms = np.concatenate([np.asarray(v, np.int64) for v in test_by_type.values()]
                                + [np.zeros(0, np.int64)])
    test = np.sort(np.concatenate([test_normals, test_anoms]).astype(np.int64))
    used = np.zeros(n, dtype=bool)
    used[train] = True
    used[test] = True
    return NoisySplit(
        train_indices=train,
        test_indices=test,
        injected_indices=injected,
        unused_indices=np.flatnonzero(~used).astype(np.int64),
        noise_ratio=noise_ratio,
        achieved_ratio=float(a / train.size),
        n_train_normal=int(n_train_normal),
        n_train_anomaly=int(a),
        n_test_normal=int(test_normals.size),
        n_test_anomaly=int(test_anoms.size),
        train_anomalies_per_type={t: int(k) for t, k in zip(anomaly_types, alloc)},
        test_anomalies_per_type={t: int(test_by_type[t].size) for t in anomaly_types},
        normals_reduced=reduced,
        overlap=bool(overlap),
        seed=int(seed),
        test_normal_fraction=float(test_normal_fraction),
        test_anomaly_fraction=float(test_anomaly_fraction),
    )
