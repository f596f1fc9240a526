"""Tables and arrays as the Purifier meets them: DataFrames, NaN, inf and text.

Why here and not in the detectors: a detector fed a pandas DataFrame indexes it by column
(``df[0]`` is a ``KeyError``), and NaN or text reach numpy and scikit-learn, whose errors
name no row. :func:`as_samples` turns a DataFrame into rows by position with its index kept
as the ids, and refuses non-finite or non-numeric data naming the rows at fault. Anything
else (image datasets, torch datasets) passes through untouched. pandas is never imported:
a DataFrame is recognised by what it offers (``iloc``, ``index``, ``to_numpy``).
"""

from __future__ import annotations

import hashlib
from numbers import Number
from typing import Any

import numpy as np

MAX_NAMED = 5
"""Rows named in an error; more would not fit one line."""


class TableSamples:
    """The rows of a table as samples: ``samples[i]`` is row ``i`` (by position), ``ids``
    are the table's index labels, and ``cache_key`` changes when any value does."""

    def __init__(self, values: np.ndarray, ids: list[str]):
        self.values = values
        self.ids = ids
        self.cache_key = hashlib.sha256(values.tobytes()).hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> np.ndarray:
        return self.values[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype)


def is_dataframe(data: Any) -> bool:
    """A pandas (or pandas-like) DataFrame, recognised without importing pandas."""
    return all(hasattr(data, name) for name in ("iloc", "index", "columns", "to_numpy"))


def _named(labels: list[Any]) -> str:
    shown = ", ".join(str(x) for x in labels[:MAX_NAMED])
    return shown + (f" and {len(labels) - MAX_NAMED} more" if len(labels) > MAX_NAMED else "")


def check_numeric(values: np.ndarray, row_names: list[Any] | None, what: str) -> np.ndarray:
    """``values`` as a float array; refuses text and NaN or inf, naming the rows."""
    if values.ndim == 0 or len(values) == 0 or values.size == 0:
        return values  # nothing to check; the Purifier says what is missing
    names = row_names if row_names is not None else list(range(len(values)))
    if values.dtype.kind not in "biuf":
        for r, row in enumerate(values.reshape(len(values), -1)):
            for x in row:
                if not isinstance(x, (Number, np.number)):
                    raise TypeError(
                        f"{what} holds non-numeric values (row {names[r]}: {x!r}); detectors "
                        "need numbers: encode or drop such columns, or pass an image dataset "
                        "(noisyclean.data.ImageFolder) for file paths.")
        values = values.astype(np.float64)
    flat = values.reshape(len(values), -1)
    bad = np.flatnonzero(~np.isfinite(flat).all(axis=1)) if flat.dtype.kind == "f" else []
    if len(bad):
        raise ValueError(
            f"{what} holds NaN or inf in {len(bad)} row(s): {_named([names[r] for r in bad])}; "
            "drop or impute them before purifying.")
    return values


def as_samples(data: Any) -> Any:
    """What the Purifier should iterate: a DataFrame becomes :class:`TableSamples`; numeric
    arrays and lists are checked and returned as they are; other datasets pass through."""
    if is_dataframe(data):
        labels = list(data.index)
        if len(set(map(str, labels))) != len(labels):
            raise ValueError("the DataFrame's index holds duplicate labels; give every row a "
                             "unique one (df.reset_index(drop=True) numbers them).")
        values = check_numeric(np.asarray(data.to_numpy()), labels, "the DataFrame")
        return TableSamples(values, [str(x) for x in labels])
    if isinstance(data, np.ndarray):
        check_numeric(data, None, "the array")
        return data
    if isinstance(data, (list, tuple)) and data and isinstance(data[0], (str, bytes)):
        raise TypeError(
            f"the dataset is a list of strings (first: {data[0]!r}); a list must hold numeric "
            "vectors. For image files use noisyclean.data.ImageFolder (or image_dataset).")
    if isinstance(data, (list, tuple)) and data and isinstance(
            data[0], (Number, list, tuple, np.ndarray)):
        try:
            values = np.asarray(data)
        except ValueError:  # ragged rows: the detector will say what it needs
            return data
        check_numeric(values, None, "the dataset")
    return data
