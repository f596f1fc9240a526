"""Small detectors for the core's tests. Module-level, so the process executor can pickle them."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from noisyclean.samples import root_indices, to_numpy


class ValueDetector:
    """Scores a scalar sample by its own value: the consensus is then known exactly."""

    def fit(self, dataset):
        self.n_fit_ = len(dataset)
        return self

    def score(self, dataset):
        return to_numpy(dataset)[:, 0]


class InBagMarker:
    """Scores its own training samples 1e6 and others by value: in-bag use would show."""

    preferred_scoring = "all"

    def fit(self, dataset):
        self.seen_ = set(root_indices(dataset).tolist())
        return self

    def score(self, dataset):
        values = to_numpy(dataset)[:, 0]
        own = np.array([i in self.seen_ for i in root_indices(dataset).tolist()])
        return np.where(own, 1e6, values)


class CountingDetector:
    """Counts fits in a file (shared across processes); dies on a chosen fit if asked."""

    def __init__(self, counter: str, die_on: int = 0):
        self.counter = Path(counter)
        self.die_on = die_on

    def fit(self, dataset):
        with self.counter.open("a") as fh:
            fh.write("fit\n")
        fits = len(self.counter.read_text().splitlines())
        if self.die_on and fits == self.die_on:
            os._exit(17)  # a killed run: no cleanup, no exception handling
        self.mean_ = to_numpy(dataset).mean(axis=0)
        return self

    def score(self, dataset):
        return np.linalg.norm(to_numpy(dataset) - self.mean_, axis=1)


class BadLength:
    def fit(self, dataset):
        return self

    def score(self, dataset):
        return np.zeros(len(dataset) + 1)


class NonFinite:
    def fit(self, dataset):
        return self

    def score(self, dataset):
        s = np.zeros(len(dataset))
        s[:2] = np.nan
        s[2:3] = np.inf
        return s


class TwoViewDetector:
    """Judges column 0 by the nearest training value, and embeds the other columns.

    Anomalies that repeat one value in column 0 vouch for each other across sub-models (each
    subset holds copies), so only the whole-sample view of the other columns can find them.
    """

    preferred_scoring = "out_of_bag"
    embed_calls = 0  # counted per process, to show that resumed runs reuse the embeddings

    def fit(self, dataset):
        self.bank_ = to_numpy(dataset)[:, 0]
        return self

    def score(self, dataset):
        values = to_numpy(dataset)[:, 0]
        return np.abs(values[:, None] - self.bank_[None, :]).min(axis=1)

    def embed(self, dataset):
        type(self).embed_calls += 1
        return to_numpy(dataset)[:, 1:]
