"""The noisyclean detector: ``Dinomaly(...).fit(dataset).score(dataset)``.

Training runs by steps (``max_steps``) over the frozen encoder's records. With the feature
cache on (the default) each image goes through the encoder once: its record is stored in
noisyclean's shared :class:`~noisyclean.feature_cache.FeatureCache` under a namespace that
names the encoder, its weights and the preprocessing, and the k sub-models of stage 1 and
the final model of stage 2 all read it. Training then only runs the bottleneck and decoder,
which is where Dinomaly's time goes once the encoder is amortised. On CUDA, records of the
training set live on the GPU when they fit ``gpu_cache_bytes``; the trainable part runs under
bf16 autocast; scoring runs under ``torch.inference_mode``.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch

from noisyclean.feature_cache import FeatureCache, default_feature_cache
from noisyclean.protocol import check_numbers, set_constructor_params
from noisyclean.samples import root_dataset, sample_ids
from noisyclean_dinomaly import config
from noisyclean_dinomaly.data import PreparedImages, Preprocessor, content_id, image_batches
from noisyclean_dinomaly.encoders import FrozenEncoder, build_encoder, shared_encoder
from noisyclean_dinomaly.maps import anomaly_maps, top_mean
from noisyclean_dinomaly.model import DinomalyModel
from noisyclean_dinomaly.training import (
    BatchSampler,
    gpu_budget,
    index_batches,
    optimise,
    training_feed,
)
from noisyclean_dinomaly.weights import weights_tag

logger = logging.getLogger(__name__)

_CACHE_DTYPES = {"float16": torch.float16, "float32": torch.float32}


class NotFittedError(RuntimeError):
    """``score`` or ``score_maps`` was called before ``fit``."""


_NUMERIC_PARAMS = (  # (name, kind, may it be None?); kinds: noisyclean.protocol.NUMBER_KINDS
    ("image_size", "count", False),
    ("crop_size", "count", False),
    ("dropout", "share", False),
    ("max_steps", "count", False),
    ("batch_size", "count", False),
    ("lr", "positive", False),
    ("final_lr", "nonnegative", False),
    ("warmup_steps", "natural", False),
    ("weight_decay", "nonnegative", False),
    ("gaussian_sigma", "nonnegative", False),
    ("top_ratio", "fraction", False),
    ("map_size", "count", True),
    ("gpu_cache_bytes", "count", True),
    ("num_workers", "natural", True),
    ("seed", "integer", True),
)
"""Dinomaly's numeric settings, checked when it is built or its parameters are set."""


class Dinomaly:
    """Dinomaly (Guo et al., CVPR 2025) as a noisyclean detector.

    Every default is the reference's per-class setting (``guojiajeremy/Dinomaly``,
    ``dinomaly_*_sep.py``); :mod:`noisyclean_dinomaly.config` cites each one.

    Model:
        encoder: timm model or alias; DINOv2 ViT-B/14 reg4 (the reference), also
            ``"vit_small"``, ``"vit_large"``, any timm ViT, or a CNN such as
            ``"tf_efficientnet_lite0"`` (runs on a CPU with offline ImageNet weights).
        weights: file path (Meta ``.pth`` / timm ``.safetensors``), ``"hub"``,
            ``"pretrained"`` (offline package weights for EfficientNet-Lite0, the hub for
            others) or ``None`` (random: a loud warning, meaningless scores).
        image_size, crop_size: resize to 448 then centre-crop 392 (the reference).
        dropout: bottleneck dropout, 0.2 (0.4 for Real-IAD multi-class).
        target_layers, groups, num_heads, out_indices, cnn_fusion, encoder_kwargs: see
            :class:`~noisyclean_dinomaly.model.DinomalyModel`.
        mlp_ratio, ln_eps, init_std: 4, 1e-8, 0.01 (the reference).

    Training:
        max_steps: optimiser steps, 5000 (the reference's per-class budget).
        batch_size: 16 (the reference).
        lr, final_lr, warmup_steps: 2e-3, 2e-4, 100: linear warm-up then cosine decay.
        weight_decay, betas, eps, amsgrad, update_clip: StableAdamW's 1e-4, (0.9, 0.999),
            1e-8, True, 1.0.
        grad_clip: gradient-norm clip, 0.1.
        hard_mining_p, hard_mining_ramp_steps, hard_mining_factor: 0.9, 1000, 0.1.

    Scoring:
        map_size: maps are resized to 256 px (the reference's evaluation); ``None`` keeps
            the crop size.
        gaussian_sigma, gaussian_kernel: 4 and 5.
        top_ratio: the image score is the mean of the top 1 % of map pixels.

    Runtime:
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
        precision: ``"auto"`` (bf16 autocast on CUDA, fp32 elsewhere), ``"bf16"``, ``"fp32"``.
        input_normalization: how dataset images are normalised: ``"imagenet"`` (noisyclean
            datasets) or ``None`` (values in [0, 1]).
        feature_cache: ``True`` (noisyclean's process-wide cache; its budget and disk folder
            come from ``NOISYCLEAN_FEATURE_CACHE_BYTES`` / ``NOISYCLEAN_FEATURE_CACHE_DIR``), a
            :class:`~noisyclean.feature_cache.FeatureCache`, or ``False`` (encode every
            batch, as the reference does).
        cache_dtype: ``"float16"`` halves the memory of cached records; ``"float32"`` keeps
            them exact.
        gpu_cache_bytes: the most bytes of training records kept on the GPU (default: a
            quarter of the free GPU memory); larger sets stream from host memory.
        num_workers: ``DataLoader`` workers for image loading (default: 0 on CPU, up to 8
            with CUDA); batches use pinned memory with CUDA.
        compile: ``torch.compile`` the encoder and the trainable part (opt-in).
        seed: seeds initialisation, dropout and batch order; ``None`` draws it from torch's
            global generator (which the Purifier seeds per sub-model).
        progress: show a progress bar (terminal) or log lines; ``False`` is quiet.

    Fitted attributes: ``model_`` (:class:`DinomalyModel`), ``loss_history_`` (per step),
    ``encoded_images_`` (images this detector pushed through the encoder), and timings:
    ``fit_seconds_`` (all of ``fit``), ``records_seconds_`` (collecting the training set's
    records, encoding the uncached ones), ``train_seconds_`` (the optimisation steps).
    """

    preferred_scoring = "all"
    """Dinomaly reconstructs; it does not memorise its training images, so in-bag scores
    are meaningful (the paper scores every sample with every sub-model)."""

    def __init__(
        self,
        encoder: str = config.DEFAULT_ENCODER,
        weights: Any = "pretrained",
        image_size: int = config.IMAGE_SIZE,
        crop_size: int = config.CROP_SIZE,
        dropout: float = config.DROPOUT,
        max_steps: int = config.MAX_STEPS,
        batch_size: int = config.BATCH_SIZE,
        device: str = "auto",
        *,
        precision: str = "auto",
        lr: float = config.LR,
        final_lr: float = config.FINAL_LR,
        warmup_steps: int = config.WARMUP_STEPS,
        weight_decay: float = config.WEIGHT_DECAY,
        betas: tuple[float, float] = config.BETAS,
        eps: float = config.EPS,
        amsgrad: bool = config.AMSGRAD,
        update_clip: float = config.UPDATE_CLIP,
        grad_clip: float = config.GRAD_CLIP,
        hard_mining_p: float = config.HARD_MINING_P,
        hard_mining_ramp_steps: int = config.HARD_MINING_RAMP_STEPS,
        hard_mining_factor: float = config.HARD_MINING_FACTOR,
        target_layers: Sequence[int] | None = None,
        groups: Sequence[Sequence[int]] = config.GROUPS,
        num_heads: int | None = None,
        mlp_ratio: float = config.MLP_RATIO,
        ln_eps: float = config.LN_EPS,
        init_std: float = config.INIT_STD,
        out_indices: Sequence[int] | None = None,
        cnn_fusion: str = "mean",
        encoder_kwargs: dict[str, Any] | None = None,
        map_size: int | None = config.MAP_SIZE,
        gaussian_sigma: float = config.GAUSSIAN_SIGMA,
        gaussian_kernel: int = config.GAUSSIAN_KERNEL,
        top_ratio: float = config.TOP_RATIO,
        input_normalization: str | None = "imagenet",
        feature_cache: bool | FeatureCache = True,
        cache_dtype: str = "float16",
        gpu_cache_bytes: int | None = None,
        num_workers: int | None = None,
        compile: bool = False,
        seed: int | None = None,
        progress: bool = True,
    ):
        self.encoder = encoder
        self.weights = weights
        self.image_size = image_size
        self.crop_size = crop_size
        self.dropout = dropout
        self.max_steps = max_steps
        self.batch_size = batch_size
        self.device = device
        self.precision = precision
        self.lr = lr
        self.final_lr = final_lr
        self.warmup_steps = warmup_steps
        self.weight_decay = weight_decay
        self.betas = betas
        self.eps = eps
        self.amsgrad = amsgrad
        self.update_clip = update_clip
        self.grad_clip = grad_clip
        self.hard_mining_p = hard_mining_p
        self.hard_mining_ramp_steps = hard_mining_ramp_steps
        self.hard_mining_factor = hard_mining_factor
        self.target_layers = target_layers
        self.groups = groups
        self.num_heads = num_heads
        self.mlp_ratio = mlp_ratio
        self.ln_eps = ln_eps
        self.init_std = init_std
        self.out_indices = out_indices
        self.cnn_fusion = cnn_fusion
        self.encoder_kwargs = encoder_kwargs
        self.map_size = map_size
        self.gaussian_sigma = gaussian_sigma
        self.gaussian_kernel = gaussian_kernel
        self.top_ratio = top_ratio
        self.input_normalization = input_normalization
        self.feature_cache = feature_cache
        self.cache_dtype = cache_dtype
        self.gpu_cache_bytes = gpu_cache_bytes
        self.num_workers = num_workers
        self.compile = compile
        self.seed = seed
        self.progress = progress
        self.encoded_images_ = 0
        self._check_params()

    def _check_params(self) -> None:
        check_numbers(self, _NUMERIC_PARAMS)
        if self.precision not in ("auto", "bf16", "fp32"):
            raise ValueError(
                f"precision must be 'auto', 'bf16' or 'fp32'; got {self.precision!r}")
        if self.cache_dtype not in _CACHE_DTYPES:
            raise ValueError(
                f"cache_dtype must be one of {sorted(_CACHE_DTYPES)}; got {self.cache_dtype!r}"
            )

    def set_params(self, **params: Any) -> Dinomaly:
        """Change constructor parameters, checked as the constructor checks them.

        The Purifier sets ``submodel_params`` through this, so a bad override fails as
        clearly as the same argument given to the constructor.
        """
        set_constructor_params(self, params, check=self._check_params)
        return self

    def submodel_params(self, share: float) -> dict[str, Any]:
        """Overrides for a stage-1 sub-model trained on ``share`` of the data: fewer steps.

        Why: training runs by steps, so a sub-model on a third of the images would otherwise
        take as long as the final model and stage 1 would cost k trainings. With
        ``max_steps`` scaled by ``share``, each image is seen as often as in the final model
        and stage 1 costs about one training. A short budget also suits the method: a
        sub-model only has to learn the dominant normal appearance (the learning bias), and
        the reference code trained its sub-models far shorter than its final model.
        """
        if not 0.0 < share < 1.0:
            return {}
        return {"max_steps": max(1, math.ceil(self.max_steps * share))}

    def __repr__(self) -> str:
        return (
            f"Dinomaly(encoder={self.encoder!r}, crop_size={self.crop_size}, "
            f"max_steps={self.max_steps}, batch_size={self.batch_size})"
        )

    # -- runtime settings ------------------------------------------------------------------
    @property
    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    @property
    def _bf16(self) -> bool:
        if self.precision == "auto":
            return self._device.type == "cuda"
        return self.precision == "bf16"

    def _autocast(self):
        return torch.autocast(self._device.type, dtype=torch.bfloat16, enabled=self._bf16)

    @property
    def _workers(self) -> int:
        if self.num_workers is not None:
            return int(self.num_workers)
        return min(8, os.cpu_count() or 1) if self._device.type == "cuda" else 0

    @property
    def _cache(self) -> FeatureCache | None:
        if self.feature_cache is False or self.feature_cache is None:
            return None
        if self.feature_cache is True:
            return default_feature_cache()
        return self.feature_cache

    def _encoder_key(self) -> str:
        """Everything that changes a record, except the dataset and its preprocessing."""
        return "|".join(
            [
                "dinomaly/v1",
                config.ENCODER_ALIASES.get(self.encoder, self.encoder),
                weights_tag(self.weights),
                f"crop{self.crop_size}",
                f"layers{tuple(self.target_layers) if self.target_layers else 'default'}",
                f"groups{tuple(tuple(g) for g in self.groups)}",
                f"out{tuple(self.out_indices) if self.out_indices else 'default'}",
                f"fusion:{self.cnn_fusion}",
                f"kw{sorted((self.encoder_kwargs or {}).items())}",
                "bf16" if self._bf16 else "fp32",
                self.cache_dtype,
            ]
        )

    # -- model -----------------------------------------------------------------------------
    def _shared_encoder(self) -> FrozenEncoder:
        return shared_encoder(
            (self._encoder_key(), str(self._device)),
            lambda: build_encoder(
                self.encoder,
                self.weights,
                self.crop_size,
                target_layers=self.target_layers,
                groups=self.groups,
                out_indices=self.out_indices,
                cnn_fusion=self.cnn_fusion,
                encoder_kwargs=self.encoder_kwargs,
            ).to(self._device),
        )

    def _build(self, seed: int) -> None:
        encoder = self._shared_encoder()
        torch.manual_seed(seed)  # the trainable part's init does not depend on sharing
        self.model_ = DinomalyModel(
            crop_size=self.crop_size,
            dropout=self.dropout,
            groups=self.groups,
            num_heads=self.num_heads,
            mlp_ratio=self.mlp_ratio,
            ln_eps=self.ln_eps,
            init_std=self.init_std,
            encoder_module=encoder,
        ).to(self._device)
        self.preprocess_ = Preprocessor(self.image_size, self.crop_size, self.input_normalization)
        encode = self.model_.encoder
        reconstruct = self.model_.reconstruct
        if self.compile:
            encode = torch.compile(encode)
            reconstruct = torch.compile(reconstruct)
        self._encode = encode
        self._reconstruct = reconstruct

    def embed(self, dataset: Any) -> np.ndarray:
        """Whole-image vectors ``(n, C)``: each image's frozen-encoder record averaged over
        its tokens.

        The encoder is frozen, so this needs no ``fit``, and the records go through the
        shared feature cache: the Purifier's whole-image view
        (:mod:`noisyclean.whole_image`) costs stage 1 no extra encoder pass.
        """
        if not hasattr(self, "model_"):  # the encoder and preprocessing ``fit`` would use
            self.preprocess_ = Preprocessor(self.image_size, self.crop_size,
                                            self.input_normalization)
            self._encode = self._shared_encoder()
        n = len(dataset)
        records = self._records(dataset, range(n), self._namespace(dataset))
        return np.stack([r.float().mean(dim=0).numpy() for r in records]) if n else \
            np.empty((0, 0), dtype=np.float32)

    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError("this Dinomaly is not fitted yet; call fit(dataset) first.")

    # -- records ---------------------------------------------------------------------------
    def _namespace(self, dataset: Any) -> tuple[str, list[str]]:
        """The cache namespace for ``dataset`` and its sample ids.

        Datasets with ids (noisyclean datasets and their subsets) are keyed by id and by the
        root's ``cache_key`` (its preprocessing); anything else is keyed by pixel content.
        """
        root = root_dataset(dataset)
        base = f"{self._encoder_key()}|{self.preprocess_.key}"
        if getattr(root, "ids", None) is not None:
            key = getattr(root, "cache_key", None) or type(root).__qualname__
            where = getattr(root, "root", "")
            return f"{base}|ids|{where}|{key}", sample_ids(dataset)
        ids = [content_id(self.preprocess_(dataset[i])) for i in range(len(dataset))]
        return f"{base}|content", ids

    def _encode_positions(self, dataset: Any, positions: Sequence[int]) -> list[torch.Tensor]:
        """Run the encoder over ``dataset[positions]``; one CPU record per image."""
        out: list[torch.Tensor] = []
        dtype = _CACHE_DTYPES[self.cache_dtype]
        loader = image_batches(
            dataset, positions, self.preprocess_, self.batch_size, self._workers,
            pin_memory=self._device.type == "cuda",
        )
        for images in loader:
            rec = self._encode_batch(images).to("cpu", dtype)
            if dtype == torch.float16 and not torch.isfinite(rec).all():
                raise OverflowError(
                    "encoder features overflow float16 (|x| > 65504); pass "
                    "cache_dtype='float32' to cache them at full range."
                )
            out.extend(rec.unbind(0))
        return out

    def _encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        """Records of one image batch on the device (no autograd: the encoder is frozen;
        ``no_grad`` rather than ``inference_mode`` so records can feed training)."""
        with torch.no_grad(), self._autocast():
            rec = self._encode(images.to(self._device, non_blocking=True))
        self.encoded_images_ += images.shape[0]
        return rec

    def _records(
        self, dataset: Any, positions: Sequence[int], ns: tuple[str, list[str]] | None
    ) -> list[torch.Tensor]:
        """One ``(L, C)`` CPU record per position, from the cache when possible.

        Cached records come back as views of the cache's arrays, not copies, so a training
        set is held in host memory once.
        """
        cache = self._cache
        if cache is None or ns is None:
            return self._encode_positions(dataset, positions)
        namespace, ids = ns
        wanted = [ids[p] for p in positions]

        def compute(missing: list[int]) -> list[np.ndarray]:
            recs = self._encode_positions(dataset, [positions[i] for i in missing])
            return [r.numpy() for r in recs]

        return [torch.from_numpy(a) for a in cache.get_or_compute(namespace, wanted, compute)]

    # -- training --------------------------------------------------------------------------
    def fit(self, dataset: Any) -> Dinomaly:
        """Train on ``dataset`` (all samples taken as normal) for ``max_steps`` steps."""
        n = len(dataset)
        if n == 0:
            raise ValueError("cannot fit Dinomaly on an empty dataset")
        start = time.perf_counter()
        seed = self.seed
        if seed is None:
            seed = int(torch.randint(0, 2**31 - 1, ()).item())
        dev = self._device
        devices = [dev.index if dev.index is not None else torch.cuda.current_device()] \
            if dev.type == "cuda" else []
        with torch.random.fork_rng(devices=devices, device_type=dev.type):
            self._build(seed)
            self._train(dataset, n, seed)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    def _train(self, dataset: Any, n: int, seed: int) -> None:
        device = self._device
        generator = torch.Generator().manual_seed(seed)
        batches = index_batches(n, self.batch_size, generator)
        t0 = time.perf_counter()
        if self._cache is not None:
            records = self._records(dataset, range(n), self._namespace(dataset))
            feed: Iterator[torch.Tensor] = training_feed(
                records, batches, device, gpu_budget(self.gpu_cache_bytes, device))
            first = next(feed)  # starts the feed: a GPU-resident set is uploaded here
        else:  # the reference's way: images through the encoder at every step
            loader = torch.utils.data.DataLoader(
                PreparedImages(dataset, range(n), self.preprocess_),
                batch_sampler=BatchSampler(batches),
                num_workers=self._workers,
                pin_memory=device.type == "cuda",
            )
            feed = (self._encode_batch(images).float() for images in loader)
            first = None
        t1 = time.perf_counter()
        self.loss_history_ = optimise(self, feed, first)
        self.records_seconds_ = t1 - t0
        self.train_seconds_ = time.perf_counter() - t1
        logger.info(
            "dinomaly: %d steps on %d images, loss %.4f -> %.4f",
            self.max_steps, n, self.loss_history_[0], self.loss_history_[-1],
        )

    # -- scoring ---------------------------------------------------------------------------
    def _iter_maps(self, dataset: Any) -> Iterator[torch.Tensor]:
        """Anomaly maps of ``dataset`` in order, one batch at a time (on the device)."""
        self._check_fitted()
        model = self.model_
        model.eval()
        device = self._device
        n = len(dataset)
        ns = self._namespace(dataset) if self._cache is not None else None
        chunk = self.batch_size * 16
        for c0 in range(0, n, chunk):
            records = self._records(dataset, range(c0, min(c0 + chunk, n)), ns)
            for b0 in range(0, len(records), self.batch_size):
                rec = torch.stack(records[b0 : b0 + self.batch_size]).to(device).float()
                with torch.inference_mode(), self._autocast():
                    targets, recon = self._reconstruct(rec)
                    yield anomaly_maps(
                        targets, recon, model.encoder.grid, self.crop_size, self.map_size,
                        self.gaussian_sigma, self.gaussian_kernel,
                    )

    def score(self, dataset: Any) -> np.ndarray:
        """``(n,)`` anomaly scores, higher is more anomalous: the top-1 % mean of each map."""
        return self._collect(dataset, scores=True, maps=False)[0]

    def score_maps(self, dataset: Any) -> np.ndarray:
        """``(n, S, S)`` float32 anomaly maps (``S = map_size``, or the crop size)."""
        return self._collect(dataset, scores=False, maps=True)[1]

    def score_and_maps(self, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(score(dataset), score_maps(dataset))`` from one pass through the encoder and
        decoder, as evaluation wants both."""
        return self._collect(dataset, scores=True, maps=True)

    def _collect(self, dataset: Any, scores: bool, maps: bool) -> tuple[Any, Any]:
        """One pass over :meth:`_iter_maps`, keeping the image scores and/or the maps on the
        CPU (a scoring pass holds no maps: stage 1 scores whole training sets)."""
        kept_scores, kept_maps = [], []
        for m in self._iter_maps(dataset):
            if scores:
                kept_scores.append(top_mean(m, self.top_ratio).float().cpu())
            if maps:
                kept_maps.append(m.float().cpu())
        size = self.map_size or self.crop_size
        all_scores = (torch.cat(kept_scores).numpy().astype(np.float64) if kept_scores
                      else np.zeros(0, dtype=np.float64))
        all_maps = (torch.cat(kept_maps).numpy() if kept_maps
                    else np.zeros((0, size, size), dtype=np.float32))
        return (all_scores if scores else None), (all_maps if maps else None)

