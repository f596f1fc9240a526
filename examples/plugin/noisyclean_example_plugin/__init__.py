"""An example noisyclean plugin: registers the ``example-zscore`` detector.

noisyclean finds this module through the ``noisyclean`` entry-point group declared in
``pyproject.toml`` and calls :func:`register_detectors`. The factory is given as a
``"module:attribute"`` string, so ``noisyclean detectors`` can list the detector without
importing its code (which matters when a detector imports torch).
"""

from __future__ import annotations

import noisyclean

__version__ = "0.1.0"


@noisyclean.hookimpl
def register_detectors(register):
    register(
        "example-zscore",
        "noisyclean_example_plugin.detector:ZScoreDetector",
        description="Per-pixel z-score against the training mean (example plugin).",
    )
