"""Registers the ``dinomaly`` detector with noisyclean (entry-point group ``noisyclean``).

The factory is a ``"module:attribute"`` string, so listing detectors never imports torch.
"""

from __future__ import annotations

from noisyclean.hookspecs import hookimpl


@hookimpl
def register_detectors(register) -> None:
    register(
        "dinomaly",
        "noisyclean_dinomaly.detector:Dinomaly",
        description=(
            "Dinomaly (CVPR 2025): frozen DINOv2 ViT, noisy bottleneck, linear-attention "
            "decoder; GPU-first, feature-cached across sub-models "
            "(pip install noisyclean-dinomaly)."
        ),
    )
