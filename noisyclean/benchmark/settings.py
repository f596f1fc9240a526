"""The default grid and the 2-core budget it is sized for.

The whole default grid (both data sets, 4 noise ratios x 3 seeds x the default conditions)
and the cost measurement must finish within 30 minutes on 2 CPU cores. The page records the
wall time of every run, so a setting that breaks the budget shows there.
"""

from __future__ import annotations

NOISE_RATIOS = (0.0, 0.1, 0.2, 0.4)
SEEDS = (0, 1, 2)

BUDGET_IMAGE_SIZE = 160
"""Magnetic Tile's images (of varying size, around 200 to 400 px) are resized to this."""

PIPED_IMAGE_SIZE = 128
"""PIPED's patches are 128 x 128 px: the benchmark keeps them at their own size."""

BUDGET_DETECTOR_KWARGS = {"feature_dim": 64, "coreset_max": 3000}
"""The benchmark's default detector settings: patch features projected to 64 dimensions, a
memory bank of at most 3,000 patches. ``patchknn``'s own defaults (224 px in the CLI, all 152
channels, 5,000 patches) cost about eight times more per search; pass ``--image-size 224
--detector-kwargs '{}'``."""
