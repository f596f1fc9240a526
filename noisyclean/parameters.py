"""The checks on a Purifier's constructor arguments, run by ``fit`` and ``reselect``.

They run before any work, so a wrong argument costs nothing and its message names the
argument and what it accepts. They are kept apart from the Purifier so that the class
reads as the method (stage 1, refinement, selection, stage 2) rather than as its checks.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from noisyclean import consensus as consensus_mod
from noisyclean import mutual, selection
from noisyclean.protocol import SCORING_MODES


def validate(purifier: Any) -> None:
    """Check every constructor argument of ``purifier``; raise TypeError or ValueError."""
    if isinstance(purifier.k, bool) or not isinstance(purifier.k, (int, np.integer)):
        raise TypeError(f"k must be an integer >= 2, got {purifier.k!r}")
    if purifier.partition == "disjoint" and purifier.k < 2:
        raise ValueError(
            f"k={purifier.k}: stage 1 needs at least 2 sub-models to form a consensus; "
            "use k=3 (the paper's choice) or more."
        )
    selection.validate_keep(purifier.keep)
    selection.validate_keep_count(purifier.keep_count)
    if purifier.scoring not in (*SCORING_MODES, "auto"):
        raise ValueError(
            f"unknown scoring={purifier.scoring!r}; choose 'all', 'out_of_bag' or 'auto'."
        )
    if purifier.normalize is not None and purifier.normalize not in consensus_mod.NORMALIZERS:
        raise ValueError(
            f"unknown normalize={purifier.normalize!r}; choose one of "
            f"{[*consensus_mod.NORMALIZERS, None]}."
        )
    if not callable(purifier.aggregate) and purifier.aggregate not in consensus_mod.AGGREGATORS:
        raise ValueError(
            f"unknown aggregate={purifier.aggregate!r}; choose one of "
            f"{list(consensus_mod.AGGREGATORS)} or pass a callable."
        )
    if isinstance(purifier.refine, bool) or not isinstance(purifier.refine, (int, np.integer)) or \
            purifier.refine < 0:
        raise ValueError(f"refine must be a number of rounds >= 0, got {purifier.refine!r}")
    if not 0.0 < float(purifier.core) < 1.0:
        raise ValueError(
            f"core={purifier.core} must be a fraction in (0, 1): the share of samples a "
            "refinement round trains on (0.25 trains on the most trusted quarter)."
        )
    if purifier.submodel_params is not None and purifier.submodel_params != "auto":
        if not isinstance(purifier.submodel_params, dict) or not all(
                isinstance(key, str) for key in purifier.submodel_params):
            raise ValueError(
                f"submodel_params={purifier.submodel_params!r} must be 'auto', None (no "
                "overrides) or a dict of attribute overrides such as "
                "{'image_score': 'max'}."
            )
        try:
            json.dumps(purifier.submodel_params)
        except TypeError as exc:
            raise ValueError(
                "submodel_params must hold plain JSON values (numbers, strings, lists), "
                "because they are saved in the manifest and key the score cache."
            ) from exc
    if not (purifier.whole_image == "auto" or isinstance(purifier.whole_image, bool)):
        raise ValueError(
            f"whole_image={purifier.whole_image!r} must be 'auto' (use the whole-image view "
            "when the detector has embed()), True (require it) or False (the paper's "
            "recipe: the sub-models' consensus alone)."
        )
    neighbors = purifier.whole_image_neighbors
    if isinstance(neighbors, bool) or not isinstance(neighbors, (int, np.integer)) or \
            neighbors < 1:
        raise ValueError(
            f"whole_image_neighbors must be an integer >= 1, got "
            f"{purifier.whole_image_neighbors!r} (5, the default, measures the distance to "
            "each sample's 5th nearest other sample)."
        )
    mutual.validate(purifier.mutual, purifier.mutual_params)
    if not isinstance(purifier.protect_tail, bool):
        raise ValueError(f"protect_tail={purifier.protect_tail!r} must be True (keep the "
                         "samples of rare whole-image modes) or False.")
    if not (purifier.partition == "disjoint" or callable(purifier.partition)):
        raise ValueError(
            f"unknown partition={purifier.partition!r}; use 'disjoint' or a callable "
            "(n, rng) -> list of index arrays, e.g. noisyclean.partition.RandomBags()."
        )

