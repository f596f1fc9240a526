"""The extra views beside the sub-models' consensus, computed once per fit and cached.

A view ranks every sample by one more way of being unusual; the Purifier keeps a sample only
when every view in use finds it ordinary (the largest of its ranks). Each view reads what it
needs from the detector through an optional protocol method (``embed`` for the whole-image
view, ``patch_embed`` for the mutual view), so the Purifier itself knows no backbone. What
a view computes from the data is kept in the run's score cache, so a resumed run does not
extract it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from noisyclean import mutual as mutual_mod
from noisyclean import tail as tail_mod
from noisyclean import whole_image as whole_image_mod
from noisyclean.score_cache import ScoreCache, config_key

logger = logging.getLogger(__name__)


def whole_image_views(probe: Any, dataset: Any, cache: ScoreCache | None, neighbors: int,
                      *, scores: bool, tail: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """What the whole-image embeddings give, each only when asked for: the whole-image
    view's distances (``scores``) and the protected tail samples (``tail``,
    :mod:`noisyclean.tail`). The embeddings are computed once for both and cached beside
    the rows."""
    if not (scores or tail):
        return None, None

    def embed() -> np.ndarray:
        logger.info("whole-image view: embedding %d samples", len(dataset))
        return whole_image_mod.embeddings_of(probe.instance(), dataset)

    emb = _cached(cache, "whole_image_embeddings", len(dataset), embed)
    dist = whole_image_mod.neighbor_distances(emb, int(neighbors))  # one search for both
    return (dist ** 2 if scores else None,
            tail_mod.tail_mask(tail_mod.mode_sizes(emb, int(neighbors), dist)) if tail
            else None)


def mutual_view_scores(probe: Any, dataset: Any, cache: ScoreCache | None, mode: bool | str,
                       params: dict[str, Any] | None, seed: int) -> np.ndarray | None:
    """The mutual view's scores (``None`` when ``mode`` leaves it out); cached beside the
    rows under a name that holds its parameters, so changed parameters compute it anew."""
    if not mutual_mod.wanted(mode, probe.cls if probe.cls is not None else probe.instance(),
                             probe.name):
        return None
    resolved = mutual_mod.resolved_params(params, seed)

    def compare() -> np.ndarray:
        logger.info("mutual view: comparing the patches of %d samples", len(dataset))
        patches = mutual_mod.patch_embeddings_of(probe.instance(), dataset)
        return mutual_mod.mutual_scores(patches, **resolved)

    return _cached(cache, "mutual_scores_" + config_key(resolved), len(dataset), compare)


def _cached(cache: ScoreCache | None, name: str, n: int,
            compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``name``'s array from the run's score cache, else ``compute()`` stored there."""
    found = cache.load_array(name, n) if cache is not None else None
    if found is not None:
        return found
    array = compute()
    if cache is not None:
        cache.store_array(name, array)
    return array
