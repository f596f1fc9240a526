"""noisyclean: purify contaminated training sets for unsupervised anomaly detection.

Implements and extends *Leveraging Learning Bias for Noisy Anomaly Detection* (Zhang et
al.): stage 1 trains sub-models on subsets of the training set and keeps the samples they
agree are normal; stage 2 trains the final detector on those.
"""

from __future__ import annotations

from noisyclean import _moved
from noisyclean.hookspecs import hookimpl
from noisyclean.plugins import (
    DetectorInfo,
    UnknownDetectorError,
    get_detector,
    list_detectors,
)
from noisyclean.protocol import Dataset, Detector, Embedder, Localizer
from noisyclean.purifier import NotFittedError, Purifier, set_report_writer
from noisyclean.samples import Subset, sample_ids

_moved.install()


def _write_report(purifier: Purifier, dataset: object, path: object, **options: object) -> object:
    """``Purifier.report``: the report is imported on first use (see ``set_report_writer``)."""
    from noisyclean.report import write_report

    return write_report(purifier, dataset, path, **options)


set_report_writer(_write_report)

try:
    from importlib.metadata import PackageNotFoundError, version

    __version__ = version("noisyclean")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "Dataset",
    "Detector",
    "DetectorInfo",
    "Embedder",
    "Localizer",
    "NotFittedError",
    "Purifier",
    "Subset",
    "UnknownDetectorError",
    "__version__",
    "get_detector",
    "hookimpl",
    "list_detectors",
    "sample_ids",
]
