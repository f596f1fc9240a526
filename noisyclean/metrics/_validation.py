"""Input checks shared by the metric modules.

Every metric refuses ambiguous input instead of guessing: a label of ``-1`` (unknown), a
mask stored as 0/255, a NaN score or a test set with a single class would otherwise give a
number that looks plausible and is wrong. The messages say what was found and how to fix it.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def as_binary(values: Any, name: str) -> np.ndarray:
    """``values`` as a boolean array; only ``bool`` or the numbers 0 and 1 are accepted."""
    arr = np.asarray(values)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be boolean or 0/1 numbers, got dtype {arr.dtype}.")
    if arr.size:
        if arr.dtype.kind == "f" and np.isnan(arr).any():
            raise ValueError(f"{name} contains NaN; it must hold only 0/1 or True/False.")
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            found = np.unique(arr[bad])[:5].tolist()
            hint = ""
            if -1 in found:
                hint = " -1 means 'unknown label': evaluate only samples whose label is known."
            elif any(v == 255 for v in found):
                hint = " Masks stored as 0/255 must be binarised first, e.g. mask > 0."
            else:
                hint = " Binarise it first, e.g. values > 0.5."
            raise ValueError(
                f"{name} must hold only 0/1 or True/False, but it contains {found}.{hint}"
            )
    return arr != 0


def as_scores(values: Any, name: str, dtype: type = np.float64) -> np.ndarray:
    """``values`` as a finite float array of ``dtype``; NaN or infinity is an error."""
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be real numbers, got dtype {arr.dtype}.")
    arr = arr.astype(dtype, copy=False)
    finite = np.isfinite(arr)
    if not finite.all():
        n_nan = int(np.isnan(arr).sum())
        n_inf = int(arr.size - finite.sum()) - n_nan
        raise ValueError(
            f"{name} contains {n_nan} NaN and {n_inf} infinite value(s); every score must be "
            "finite. A NaN usually means the detector diverged or an input image was empty."
        )
    return arr


def check_1d_pair(labels: np.ndarray, scores: np.ndarray, what: str) -> None:
    """Both arrays are 1-D, non-empty and of the same length."""
    for arr, name in ((labels, "labels"), (scores, "scores")):
        if arr.ndim != 1:
            raise ValueError(f"{what}: {name} must be 1-D, got shape {arr.shape}.")
    if labels.shape != scores.shape:
        raise ValueError(
            f"{what}: labels has {labels.shape[0]} entries but scores has {scores.shape[0]}; "
            "they must describe the same samples in the same order."
        )
    if labels.size == 0:
        raise ValueError(f"{what}: there are no samples to evaluate.")


def check_both_classes(n_pos: int, n_neg: int, what: str, unit: str = "sample") -> None:
    """Ranking metrics need at least one positive and one negative."""
    if n_pos == 0 or n_neg == 0:
        present = "anomalous" if n_neg == 0 else "normal"
        raise ValueError(
            f"{what} is undefined: every {unit} is {present} "
            f"({n_pos} anomalous, {n_neg} normal). Evaluate on a set that contains both "
            "normal and anomalous examples."
        )
