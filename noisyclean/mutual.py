"""The mutual view: how well each sample's most unusual patches are matched by the others.

Why a third view: the sub-models' consensus and the whole-image view both let a repeated
defect type through, because its members match each other (a crack is matched, patch for
patch, by another crack). MuSc's answer (Li et al., ICLR 2024) is an *interval average*:
score each patch by the mean of its nearest-patch distances to the closest ``fraction`` of
the other images, not by the single nearest. A defect type with fewer members than that
fraction cannot vouch for itself, while a normal patch is matched by most images. An
image's score is the mean of its top ``top`` share of patch scores, so a small defect counts.

Optionally, a second pass scores every image again against fewer reference images: only
those the first pass trusts most (``trusted``, the lowest share), or all but the members of
a consistent-anomaly community (``community``, :mod:`noisyclean.community`). A defect type
whose members were flagged in the first pass then has no look-alike left to match it.

Cost: every image's patches are compared with ``references`` reference images (a fixed
random subset, as MuSc allows), each represented by ``reference_patches`` of its patches
(a greedy k-center coreset, which keeps an image's unusual patches first). The work grows
as ``n × patches × references × reference_patches``; it is linear in ``n``.

The detector provides the patches through :func:`patch_embeddings_of`: an optional
``patch_embed(dataset) -> (n, P, d)`` method (``patchknn`` has one) from a *fixed* feature
extractor, so no ``fit`` is needed and the features come from the shared cache.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from noisyclean import community as community_mod

DEFAULT_FRACTION = 0.3
DEFAULT_REFERENCES = 128
DEFAULT_REFERENCE_PATCHES = 32
DEFAULT_TOP = 0.01
CHUNK_BYTES = 64 * 1024**2
"""The memory one block of query-to-reference distances may use."""


def can_patch_embed(detector: object) -> bool:
    """Whether a detector (or its class) offers ``patch_embed(dataset) -> (n, P, d)``."""
    return callable(getattr(detector, "patch_embed", None))


def patch_embeddings_of(detector: Any, dataset: Any) -> np.ndarray:
    """``detector.patch_embed(dataset)``, checked: finite floats, ``(n, P, d)``."""
    emb = np.asarray(detector.patch_embed(dataset))
    n = len(dataset)
    name = type(detector).__name__
    if emb.ndim != 3 or emb.shape[0] != n or min(emb.shape[1:]) < 1:
        raise ValueError(
            f"{name}.patch_embed() returned shape {emb.shape}; it must return the patch "
            f"features of every sample, shape ({n}, patches, d). Fix patch_embed(), or pass "
            "mutual=False to the Purifier."
        )
    if emb.dtype.kind not in "fiu" or not np.isfinite(emb).all():
        raise ValueError(
            f"{name}.patch_embed() returned non-finite or non-numeric values; it must return "
            "finite floats. Fix patch_embed(), or pass mutual=False to the Purifier."
        )
    return emb.astype(np.float32, copy=False)


def _reference_bank(x: Any, refs: np.ndarray, per_image: int, seed: int) -> Any:
    """``(m, R, d)``: each reference image's ``per_image`` patches by the greedy coreset."""
    import torch

    from noisyclean.detectors.patchknn import greedy_coreset

    per_image = min(int(per_image), x.shape[1])
    return torch.stack([x[int(i)][greedy_coreset(x[int(i)], per_image, None, seed=seed)]
                        for i in refs])


def image_distances(patches: np.ndarray, refs: np.ndarray, per_image: int,
                    seed: int = 0) -> np.ndarray:
    """``(n, P, m)`` float16: each patch's distance to its nearest reference patch of each
    reference image ``refs[c]``; ``inf`` where the reference is the image itself."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32))
    n, p, d = x.shape
    bank = _reference_bank(x, refs, per_image, seed)
    m, r = bank.shape[:2]
    flat = bank.reshape(-1, d)
    flat_sq = (flat * flat).sum(1)
    out = np.empty((n, p, m), dtype=np.float16)
    step = max(1, CHUNK_BYTES // (4 * p * m * r))
    for s in range(0, n, step):
        q = x[s:s + step].reshape(-1, d)
        d2 = torch.addmm(flat_sq[None] + (q * q).sum(1)[:, None], q, flat.T, alpha=-2)
        nearest = d2.view(-1, m, r).amin(2).clamp_min_(0).sqrt_()
        out[s:s + step] = nearest.view(-1, p, m).numpy()
    position = {int(c): k for k, c in enumerate(refs)}
    for i in range(n):
        k = position.get(i)
        if k is not None:
            out[i, :, k] = np.inf
    return out


def patch_interval_scores(dist: np.ndarray, columns: np.ndarray,
                          fraction: float) -> np.ndarray:
    """``(n, P)``: per patch, the mean of its distances to the closest ``fraction`` of the
    reference columns ``columns`` of ``dist`` (the image itself excluded)."""
    import torch

    n, p, _ = dist.shape
    m = len(columns)
    if m < 2:
        raise ValueError("the mutual view needs at least 2 reference images.")
    width = max(1, round(float(fraction) * (m - 1)))
    out = np.empty((n, p), dtype=np.float32)
    cols = torch.as_tensor(np.asarray(columns, dtype=np.int64))
    step = max(1, CHUNK_BYTES // (4 * p * m))
    for s in range(0, n, step):
        block = torch.from_numpy(dist[s:s + step]).index_select(2, cols).float()
        out[s:s + step] = block.topk(width, dim=2, largest=False).values.mean(2).numpy()
    return out


def top_mean(patch_scores: np.ndarray, top: float = DEFAULT_TOP) -> np.ndarray:
    """``(n,)``: each image's mean of its ``top`` share of highest patch scores."""
    k_top = max(1, math.ceil(float(top) * patch_scores.shape[1]))
    return -np.sort(-patch_scores, axis=1)[:, :k_top].mean(axis=1, dtype=np.float64)


def interval_scores(dist: np.ndarray, columns: np.ndarray, fraction: float,
                    top: float = DEFAULT_TOP) -> np.ndarray:
    """Each image's score against the reference columns ``columns`` of ``dist``: per
    patch, the mean of its distances to the closest ``fraction`` of those references (the
    image itself excluded), then the mean of the image's top ``top`` share of patches."""
    return top_mean(patch_interval_scores(dist, columns, fraction), top)


def mutual_scores(
    patches: np.ndarray,
    fraction: float = DEFAULT_FRACTION,
    *,
    references: int = DEFAULT_REFERENCES,
    reference_patches: int = DEFAULT_REFERENCE_PATCHES,
    top: float = DEFAULT_TOP,
    trusted: float | None = None,
    community: bool = False,
    seed: int = 0,
) -> np.ndarray:
    """The mutual view's scores ``(n,)`` of ``patches`` ``(n, P, d)``; higher is more unusual.

    Args:
        fraction: the share of reference images whose distances a patch averages (MuSc's
            interval); a defect type shared by fewer images than this cannot vouch for itself.
        references: at most this many reference images, drawn at random with ``seed``.
        reference_patches: each reference image is represented by this many of its patches.
        top: the share of an image's patches that make its score.
        trusted: ``None`` for one pass; a fraction in (0, 1) scores again against the
            reference images among the ``trusted`` share the first pass ranked lowest.
        community: score again without the images of a consistent-anomaly community
            (:mod:`noisyclean.community`, CoDeGraph's neighbour burnout) among the
            references.
    """
    x = np.asarray(patches, dtype=np.float32)
    n = x.shape[0]
    if n < 3:
        return np.zeros(n)
    rng = np.random.default_rng(seed)
    refs = np.sort(rng.permutation(n)[: min(int(references), n)])
    dist = image_distances(x, refs, reference_patches, seed=seed)
    all_columns = np.arange(len(refs))
    patch_scores = patch_interval_scores(dist, all_columns, fraction)
    scores = top_mean(patch_scores, top)
    if trusted is None and not community:
        return scores
    usable = np.ones(n, bool)
    if trusted is not None:
        order = np.lexsort((np.arange(n), scores))
        usable[order[max(2, math.floor(float(trusted) * n + 0.5)):]] = False
    if community:
        usable &= ~community_mod.communities(dist, refs, all_columns)
    columns = np.flatnonzero(usable[refs])
    if len(columns) < 2:
        return scores
    return interval_scores(dist, columns, fraction, top)


PARAMS = ("fraction", "references", "reference_patches", "top", "trusted", "community")


def validate(mutual: object, params: object) -> None:
    """Check the Purifier's ``mutual`` and ``mutual_params`` before any work."""
    if not (mutual == "auto" or isinstance(mutual, bool)):
        raise ValueError(
            f"mutual={mutual!r} must be False (off), True (require the mutual view) or "
            "'auto' (use it when the detector has patch_embed())."
        )
    if params is None:
        return
    if not isinstance(params, dict) or set(params) - set(PARAMS):
        raise ValueError(
            f"mutual_params={params!r} must be a dict with keys among {list(PARAMS)}, "
            "e.g. {'fraction': 0.3}."
        )
    fraction = params.get("fraction", DEFAULT_FRACTION)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or \
            not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"mutual_params fraction={fraction!r} must lie in (0, 1] (0.3 "
                         "averages each patch's distances to the closest 30 % of images).")
    for key in ("references", "reference_patches"):
        value = params.get(key, 2)
        if isinstance(value, bool) or not isinstance(value, int) or value < 2:
            raise ValueError(f"mutual_params {key}={value!r} must be an integer >= 2.")
    top = params.get("top", DEFAULT_TOP)
    if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0.0 < top <= 1.0:
        raise ValueError(f"mutual_params top={top!r} must lie in (0, 1].")
    trusted = params.get("trusted")
    if trusted is not None and (isinstance(trusted, bool) or not isinstance(
            trusted, (int, float)) or not 0.0 < float(trusted) < 1.0):
        raise ValueError(f"mutual_params trusted={trusted!r} must be None or lie in (0, 1).")
    if not isinstance(params.get("community", False), bool):
        raise ValueError(f"mutual_params community={params['community']!r} must be True or "
                         "False.")


def wanted(mutual: bool | str, detector: object, name: str) -> bool:
    """Whether the mutual view takes part, given the detector (or its class)."""
    if mutual is False:
        return False
    able = can_patch_embed(detector)
    if mutual is True and not able:
        raise ValueError(
            f"mutual=True needs a detector with patch_embed(dataset) -> (n, patches, d), "
            f"and {name} has none; leave mutual off, or add patch_embed()."
        )
    return able


def resolved_params(params: dict[str, Any] | None, seed: int) -> dict[str, Any]:
    """Every argument of :func:`mutual_scores`, defaults included (they key the cache)."""
    return {"fraction": DEFAULT_FRACTION, "references": DEFAULT_REFERENCES,
            "reference_patches": DEFAULT_REFERENCE_PATCHES, "top": DEFAULT_TOP,
            "trusted": None, "community": False, **(params or {}), "seed": int(seed)}
