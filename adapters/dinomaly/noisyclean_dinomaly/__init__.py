"""Dinomaly (Guo et al., CVPR 2025) for noisyclean: ``Dinomaly`` and ``DinomalyModel``.

The names are imported lazily, so importing the package (as noisyclean's plugin loader does
to list detectors) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["Dinomaly", "DinomalyModel"]
__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from noisyclean_dinomaly.detector import Dinomaly
    from noisyclean_dinomaly.model import DinomalyModel


def __getattr__(name: str) -> Any:
    if name == "Dinomaly":
        from noisyclean_dinomaly.detector import Dinomaly

        return Dinomaly
    if name == "DinomalyModel":
        from noisyclean_dinomaly.model import DinomalyModel

        return DinomalyModel
    raise AttributeError(f"module 'noisyclean_dinomaly' has no attribute {name!r}")
