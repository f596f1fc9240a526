"""The Purifier: stage 1 (partition, sub-models, consensus, selection) and stage 2.

It only wires the parts: :mod:`~noisyclean.partition` splits, an
:mod:`~noisyclean.executors` executor runs :func:`~noisyclean.submodel.run_submodel` per
subset, :mod:`~noisyclean.cache` keeps finished rows, :mod:`~noisyclean.consensus`
normalises and aggregates, and :mod:`~noisyclean.selection` keeps the lowest scores.

Every sample is identified by its original index from start to end: subsets are index
arrays into the dataset the user passed, score rows are indexed by those same positions,
and the kept list is returned in original indices. Nothing is ever re-permuted.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean import consensus as consensus_mod
from noisyclean import mutual as mutual_mod
from noisyclean import partition as partition_mod
from noisyclean import selection
from noisyclean import whole_image as whole_image_mod
from noisyclean._io import atomic_save_npz, atomic_write_json, load_npz
from noisyclean.cache import ScoreCache, config_key
from noisyclean.datasets import Subset, fingerprint, sample_ids
from noisyclean.executors import Executor, make_executor
from noisyclean.progress import progress as progress_bar
from noisyclean.protocol import SCORING_MODES, can_embed, preferred_scoring
from noisyclean.submodel import SubmodelJob, build_detector, run_submodel

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SCORES = "scores.npz"
MANIFEST_FORMAT = "noisyclean.purifier/1"


class NotFittedError(RuntimeError):
    """A fitted attribute was used before :meth:`Purifier.fit`."""


class Purifier:
    """Clean a contaminated training set with a consensus of sub-models.

    Args:
        detector: a zero-argument factory returning a fresh detector (a class, a lambda,
            a ``functools.partial``), or the name of a registered detector
            (``noisyclean detectors`` lists them), configured with ``detector_kwargs``.
        k: the number of disjoint subsets (sub-models) for ``partition="disjoint"``.
        keep: a fraction in (0, 1] of the samples to keep, a count, or ``"auto"`` to
            estimate the contamination from the consensus. Ties keep the lower index.
        scoring: ``"all"`` (every sub-model scores every sample, the paper's choice),
            ``"out_of_bag"`` (only sub-models that did not train on a sample score it), or
            ``"auto"`` (the detector's ``preferred_scoring``, ``"all"`` if it declares none).
        normalize: per-sub-model normalisation before aggregation: ``"rank"``,
            ``"zscore"``, ``"robust_zscore"``, ``"minmax"`` or ``None`` (raw scores).
        aggregate: ``"mean"``, ``"median"``, ``"max"``, ``"min"`` or a callable mapping the
            ``(m, n)`` matrix (NaN where unscored) to ``(n,)`` scores.
        partition: ``"disjoint"`` (k random balanced subsets) or a callable
            ``(n, rng) -> list of index arrays`` such as :class:`~noisyclean.partition.RandomBags`.
        seed: seeds the partition and each sub-model (sub-model j gets ``seed`` + j).
        executor: ``"serial"``, ``"process"``, ``"ray"`` or an :class:`Executor`.
        cache_dir: where finished score rows are kept, so an interrupted run resumes.
        progress: show progress (a bar on a terminal, log lines otherwise).
        detector_kwargs: keyword arguments for a detector given by name.
        executor_options: keyword arguments for the executor (``max_workers``, ...).
        refine: refinement rounds after the consensus (0: the paper's single stage 1). Each
            round splits the ``core`` fraction that the current consensus trusts most into
            two halves, trains a detector on each, and lets each score every sample outside
            its half; their consensus replaces the previous one. Detectors trained on an
            almost clean core judge more sharply than sub-models trained on contaminated
            subsets, above all when defects repeat and vouch for each other.
        core: the fraction of samples (lowest current consensus) a refinement round trains on.
        submodel_params: attribute overrides for the stage-1 (and refinement) sub-models,
            never for the final detector. ``"auto"`` (default) applies what the detector's
            ``submodel_params(share)`` suggests (patchknn: a memory bank capped at the
            share of ``coreset_max`` that matches the share of data the sub-model saw, so k
            sub-models on 1/k of the data cost about one model); a dict is applied on top of
            that suggestion (``{"image_score": "max"}`` changes how sub-models score);
            ``None`` trains sub-models exactly like the final detector.
        whole_image: add the whole-image view (:mod:`noisyclean.whole_image`): a sample is
            also ranked by how far it lies from its ``whole_image_neighbors``-th nearest
            other sample in the detector's ``embed`` space, and the selection ranks each
            sample by the larger of its two ranks, so it is kept only when both the
            sub-models and the whole-image view find it ordinary. ``"auto"`` (default) uses
            it when the detector has ``embed`` (``patchknn`` does), ``True`` requires it,
            ``False`` is the paper's recipe (the consensus alone). On Magnetic Tile it
            closed more of the noisy-to-oracle gap at every noise ratio, at no extra cost
            on clean data (docs/benchmarks.md).
        whole_image_neighbors: which nearest other sample the whole-image view measures
            to; repeated defects with fewer look-alikes than this still stand out.
        mutual: add the mutual view (:mod:`noisyclean.mutual`, MuSc's interval average): a
            sample is also ranked by how well its most unusual patches are matched, on
            average, by the closest share of the other samples, so a repeated defect type
            smaller than that share cannot vouch for itself. The selection ranks each
            sample by the largest of its ranks over the views in use. ``False`` (default)
            leaves it out, ``True`` requires a detector with ``patch_embed`` (``patchknn``
            has one), ``"auto"`` uses it when the detector has one.
        mutual_params: keyword arguments for :func:`noisyclean.mutual.mutual_scores`
            (``fraction``, ``references``, ``reference_patches``, ``top``, ``trusted``).

    Fitted attributes (after :meth:`fit`):
        n_samples_, ids_: the number and ids of the samples.
        membership_: ``(m, n)`` bool, row j marks sub-model j's training samples.
        partition_: ``(n,)`` subset id of each sample (disjoint partitions), else ``None``.
        scoring_: the scoring mode actually used.
        scores_: ``(m, n)`` raw scores, NaN where a sub-model did not score a sample. With
            ``refine``, two rows per round follow stage 1's; ``round_`` says which row
            belongs to which round (0: stage 1).
        consensus_: ``(n,)`` aggregated normalised scores; lower is more normal.
        whole_image_: whether the whole-image view took part in the selection.
        whole_image_scores_: ``(n,)`` the whole-image view's distances (``None`` without it).
        mutual_: whether the mutual view took part; mutual_scores_: its ``(n,)`` scores
            (``None`` without it).
        selection_scores_: ``(n,)`` what the selection ranks: ``consensus_``, or with the
            whole-image view the larger of a sample's two ranks (in (0, 1]).
        ranking_: original indices from most normal to most anomalous (by
            ``selection_scores_``).
        n_keep_, keep_indices_, drop_indices_, keep_mask_: the selection, in original indices.
        timings_: seconds spent per phase.
        detector_arguments_: every constructor argument of the detector, defaults
            included, as text (``None`` for a factory that is not a class, a partial of one
            or a registered name). The score cache keys on it, so a changed default never
            resumes from rows scored under the old one.
    """

    def __init__(
        self,
        detector: Callable[[], Any] | str,
        k: int = 3,
        keep: float | int | str = 0.8,
        *,
        scoring: str = "auto",
        normalize: str | None = "rank",
        aggregate: str | Callable[[np.ndarray], np.ndarray] = "mean",
        partition: str | Callable[..., Any] = "disjoint",
        seed: int = 0,
        executor: str | Executor = "serial",
        cache_dir: str | Path | None = None,
        progress: bool = True,
        detector_kwargs: dict[str, Any] | None = None,
        executor_options: dict[str, Any] | None = None,
        refine: int = 0,
        core: float = 0.25,
        submodel_params: dict[str, Any] | str | None = "auto",
        whole_image: bool | str = "auto",
        whole_image_neighbors: int = whole_image_mod.DEFAULT_NEIGHBORS,
        mutual: bool | str = False,
        mutual_params: dict[str, Any] | None = None,
    ):
        self.detector = detector
        self.k = k
        self.keep = keep
        self.scoring = scoring
        self.normalize = normalize
        self.aggregate = aggregate
        self.partition = partition
        self.seed = seed
        self.executor = executor
        self.cache_dir = cache_dir
        self.progress = progress
        self.detector_kwargs = detector_kwargs
        self.executor_options = executor_options
        self.refine = refine
        self.core = core
        self.submodel_params = submodel_params
        self.whole_image = whole_image
        self.whole_image_neighbors = whole_image_neighbors
        self.mutual = mutual
        self.mutual_params = mutual_params

    # -- parameters -------------------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in inspect.signature(Purifier).parameters}

    def __repr__(self) -> str:
        defaults = {
            name: p.default for name, p in inspect.signature(Purifier).parameters.items()
        }
        shown = [
            f"{name}={value!r}" for name, value in self.get_params().items()
            if name == "detector" or value != defaults[name]
        ]
        return f"Purifier({', '.join(shown)})"

    def _validate_params(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, (int, np.integer)):
            raise TypeError(f"k must be an integer >= 2, got {self.k!r}")
        if self.partition == "disjoint" and self.k < 2:
            raise ValueError(
                f"k={self.k}: stage 1 needs at least 2 sub-models to form a consensus; "
                "use k=3 (the paper's choice) or more."
            )
        selection.validate_keep(self.keep)
        if self.scoring not in (*SCORING_MODES, "auto"):
            raise ValueError(
                f"unknown scoring={self.scoring!r}; choose 'all', 'out_of_bag' or 'auto'."
            )
        if self.normalize is not None and self.normalize not in consensus_mod.NORMALIZERS:
            raise ValueError(
                f"unknown normalize={self.normalize!r}; choose one of "
                f"{[*consensus_mod.NORMALIZERS, None]}."
            )
        if not callable(self.aggregate) and self.aggregate not in consensus_mod.AGGREGATORS:
            raise ValueError(
                f"unknown aggregate={self.aggregate!r}; choose one of "
                f"{list(consensus_mod.AGGREGATORS)} or pass a callable."
            )
        if isinstance(self.refine, bool) or not isinstance(self.refine, (int, np.integer)) or \
                self.refine < 0:
            raise ValueError(f"refine must be a number of rounds >= 0, got {self.refine!r}")
        if not 0.0 < float(self.core) < 1.0:
            raise ValueError(
                f"core={self.core} must be a fraction in (0, 1): the share of samples a "
                "refinement round trains on (0.25 trains on the most trusted quarter)."
            )
        if self.submodel_params is not None and self.submodel_params != "auto":
            if not isinstance(self.submodel_params, dict) or not all(
                    isinstance(key, str) for key in self.submodel_params):
                raise ValueError(
                    f"submodel_params={self.submodel_params!r} must be 'auto', None (no "
                    "overrides) or a dict of attribute overrides such as "
                    "{'image_score': 'max'}."
                )
            try:
                json.dumps(self.submodel_params)
            except TypeError as exc:
                raise ValueError(
                    "submodel_params must hold plain JSON values (numbers, strings, lists), "
                    "because they are saved in the manifest and key the score cache."
                ) from exc
        if not (self.whole_image == "auto" or isinstance(self.whole_image, bool)):
            raise ValueError(
                f"whole_image={self.whole_image!r} must be 'auto' (use the whole-image view "
                "when the detector has embed()), True (require it) or False (the paper's "
                "recipe: the sub-models' consensus alone)."
            )
        if isinstance(self.whole_image_neighbors, bool) or not isinstance(
                self.whole_image_neighbors, (int, np.integer)) or self.whole_image_neighbors < 1:
            raise ValueError(
                f"whole_image_neighbors must be an integer >= 1, got "
                f"{self.whole_image_neighbors!r} (5, the default, measures the distance to "
                "each sample's 5th nearest other sample)."
            )
        mutual_mod.validate(self.mutual, self.mutual_params)
        if not (self.partition == "disjoint" or callable(self.partition)):
            raise ValueError(
                f"unknown partition={self.partition!r}; use 'disjoint' or a callable "
                "(n, rng) -> list of index arrays, e.g. noisyclean.partition.RandomBags()."
            )

    def _factory(self) -> Callable[[], Any]:
        if isinstance(self.detector, str):
            from noisyclean.plugins import detector_factory

            return detector_factory(self.detector, **(self.detector_kwargs or {}))
        if self.detector_kwargs:
            raise ValueError(
                "detector_kwargs is only used with a detector name; bake arguments into the "
                "factory instead, e.g. functools.partial(MyDetector, alpha=0.1)."
            )
        if not callable(self.detector):
            raise TypeError(
                f"detector must be a zero-argument factory or a registered name, got "
                f"{type(self.detector).__name__}. Pass the class or a lambda "
                "(Purifier(lambda: MyDetector(...))), not a fitted instance."
            )
        if hasattr(self.detector, "fit") and not inspect.isclass(self.detector):
            raise TypeError(
                f"detector is a {type(self.detector).__name__} instance; the Purifier needs a "
                "factory that makes a fresh one per sub-model, e.g. "
                f"Purifier(lambda: {type(self.detector).__name__}(...))."
            )
        return self.detector

    def _submodel_overrides(self) -> dict[str, Any] | None:
        """What a sub-model job sets on top of its detector's suggestion (``None``: nothing)."""
        if self.submodel_params is None:
            return None
        return {} if self.submodel_params == "auto" else dict(self.submodel_params)

    def _resolve_scoring(self, probe: _Probe) -> str:
        if self.scoring != "auto":
            return self.scoring
        # a class (or a partial of one) declares it; only other factories need an instance,
        # which may be costly to build (a backbone), so it is the last resort
        declared = getattr(probe.cls, "preferred_scoring", "all") if probe.cls else None
        if isinstance(declared, str):
            return preferred_scoring(probe.cls)
        return preferred_scoring(probe.instance())

    def _resolve_whole_image(self, probe: _Probe) -> bool:
        if self.whole_image is False:
            return False
        able = can_embed(probe.cls if probe.cls is not None else probe.instance())
        if self.whole_image is True and not able:
            raise ValueError(
                f"whole_image=True needs a detector with embed(dataset) -> (n, d) whole-image "
                f"vectors, and {probe.name} has none; use whole_image='auto' or False, or add "
                "embed() to the detector (see noisyclean.protocol.Embedder)."
            )
        return able

    def _whole_image_scores(self, probe: _Probe, dataset: Any,
                            cache: ScoreCache | None) -> np.ndarray:
        """The whole-image view's distances; the embeddings are cached beside the rows."""
        n = len(dataset)
        emb = cache.load_array("whole_image_embeddings", n) if cache is not None else None
        if emb is None:
            logger.info("whole-image view: embedding %d samples", n)
            emb = whole_image_mod.embeddings_of(probe.instance(), dataset)
            if cache is not None:
                cache.store_array("whole_image_embeddings", emb)
        return whole_image_mod.outlier_scores(emb, int(self.whole_image_neighbors))

    def _mutual_scores(self, probe: _Probe, dataset: Any,
                       cache: ScoreCache | None) -> np.ndarray | None:
        """The mutual view's scores (``None`` when it is off); cached beside the rows."""
        if not mutual_mod.wanted(self.mutual, probe.cls if probe.cls is not None
                                 else probe.instance(), probe.name):
            return None
        params = mutual_mod.resolved_params(self.mutual_params, self.seed)
        name = "mutual_scores_" + config_key(params)
        scores = cache.load_array(name, len(dataset)) if cache is not None else None
        if scores is None:
            logger.info("mutual view: comparing the patches of %d samples", len(dataset))
            patches = mutual_mod.patch_embeddings_of(probe.instance(), dataset)
            scores = mutual_mod.mutual_scores(patches, **params)
            if cache is not None:
                cache.store_array(name, scores)
        return scores

    def _subsets(self, n: int, rng: np.random.Generator) -> list[np.ndarray]:
        if self.partition == "disjoint":
            if self.k > n:
                raise ValueError(
                    f"k={self.k} sub-models need at least {self.k} samples, but the dataset "
                    f"has {n}; lower k or add data."
                )
            return partition_mod.disjoint(n, int(self.k), rng)
        return partition_mod.validate_subsets(self.partition(n, rng), n)

    # -- stage 1 ------------------------------------------------------------------------
    def fit(self, dataset: Any) -> Purifier:
        """Run stage 1 on ``dataset`` and select the purified samples. Returns ``self``."""
        self._validate_params()
        try:
            n = len(dataset)
        except TypeError as exc:
            raise TypeError(
                f"the dataset ({type(dataset).__name__}) has no len(); pass a list, an array "
                "or a torch Dataset with __len__ and __getitem__."
            ) from exc
        if n == 0:
            raise ValueError("the dataset is empty; there is nothing to purify.")
        t_start = time.perf_counter()
        factory = self._factory()
        probe = _Probe(factory)
        ids = sample_ids(dataset)
        rng = np.random.default_rng(self.seed)
        subsets = self._subsets(n, rng)
        scoring = self._resolve_scoring(probe)
        use_whole_image = self._resolve_whole_image(probe)
        membership = partition_mod.membership_matrix(subsets, n)
        if scoring == "out_of_bag":
            lonely = membership.all(axis=0)
            if lonely.any():
                raise ValueError(
                    f"{int(lonely.sum())} sample(s) are in every subset, so out-of-bag scoring "
                    "cannot score them; use a partition that leaves every sample out at least once."
                )
        jobs = []
        all_idx = np.arange(n)
        for j, train_idx in enumerate(subsets):
            score_idx = all_idx[~membership[j]] if scoring == "out_of_bag" else all_idx
            jobs.append(SubmodelJob(j, factory, dataset, train_idx, score_idx, n, self.seed + j,
                                    self._submodel_overrides()))
        self.detector_arguments_ = resolved_arguments(factory)
        cache_config = {
                "detector": factory_key(factory),
                "detector_arguments": self.detector_arguments_,
                "partition": "disjoint" if self.partition == "disjoint" else factory_key(
                    self.partition),
                "k": int(self.k),
                "seed": int(self.seed),
                "scoring": scoring,
                "n": n,
                "ids": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
                "fingerprint": fingerprint(dataset),
                "submodel_params": self.submodel_params,
        }
        cache = ScoreCache(self.cache_dir, cache_config) if self.cache_dir is not None else None
        t_whole = time.perf_counter()
        whole = self._whole_image_scores(probe, dataset, cache) if use_whole_image else None
        whole_s = time.perf_counter() - t_whole
        t_mutual = time.perf_counter()
        mutual = self._mutual_scores(probe, dataset, cache)
        mutual_s = time.perf_counter() - t_mutual
        scores = self._run(jobs, n, cache)

        self.n_samples_ = n
        self.ids_ = ids
        self.membership_ = membership
        self.partition_ = _partition_labels(membership)
        self.scoring_ = scoring
        self.scores_ = scores
        self.n_submodels_ = len(subsets)
        self.round_ = np.zeros(len(subsets), dtype=np.int64)
        self.whole_image_ = use_whole_image
        self.whole_image_scores_ = whole
        self.mutual_ = mutual is not None
        self.mutual_scores_ = mutual
        self._select()
        t_refine = time.perf_counter()
        for r in range(int(self.refine)):
            self._refine_round(r, factory, dataset, cache_config)
        self.timings_ = {"stage1_s": time.perf_counter() - t_start}
        if self.refine:
            self.timings_["refine_s"] = time.perf_counter() - t_refine
        if use_whole_image:
            self.timings_["whole_image_s"] = whole_s
        if mutual is not None:
            self.timings_["mutual_s"] = mutual_s
        self.versions_ = _versions()
        logger.info(
            "purified %d samples: kept %d, dropped %d (%s scoring, %d sub-models)",
            n, self.n_keep_, n - self.n_keep_, scoring, len(subsets),
        )
        return self

    def _refine_round(self, r: int, factory: Callable[[], Any], dataset: Any,
                      cache_config: dict[str, Any]) -> None:
        """Re-run the consensus with two sub-models trained on halves of the trusted core.

        Each half's detector scores every sample outside its half, so every sample, core
        included, is judged out of bag by a detector that learnt (almost) only normals.
        """
        n = self.n_samples_
        n_core = min(n - 1, max(2, selection.n_to_keep(float(self.core), n)))
        core_idx = np.sort(self.ranking_[:n_core])
        rng = np.random.default_rng([self.seed, r + 1])
        halves = [core_idx[h] for h in partition_mod.disjoint(n_core, 2, rng)]
        member = partition_mod.membership_matrix(halves, n)
        first = self.scores_.shape[0]
        jobs = [SubmodelJob(first + j, factory, dataset, half, np.flatnonzero(~member[j]), n,
                            self.seed + first + j, self._submodel_overrides())
                for j, half in enumerate(halves)]
        cache = None
        if self.cache_dir is not None:
            core_hash = hashlib.sha256(core_idx.tobytes()).hexdigest()
            cache = ScoreCache(self.cache_dir, {**cache_config, "refine_core": core_hash})
        logger.info("refinement round %d: 2 detectors trained on halves of the %d most "
                    "trusted samples re-score all %d", r + 1, n_core, n)
        rows = self._run(jobs, n, cache, description=f"refinement {r + 1}")
        self.scores_ = np.vstack([self.scores_, rows])
        self.membership_ = np.vstack([self.membership_, member])
        self.round_ = np.r_[self.round_, np.full(len(jobs), r + 1)]
        self._select()

    def _run(self, jobs: list[SubmodelJob], n: int, cache: ScoreCache | None,
             description: str = "stage 1: sub-models") -> np.ndarray:
        """Score rows for ``jobs`` (row i belongs to ``jobs[i]``), from cache when finished."""
        scores = np.full((len(jobs), n), np.nan)
        position = {job.index: i for i, job in enumerate(jobs)}
        todo = []
        for job in jobs:
            row = cache.load(job.index, n) if cache is not None else None
            if row is None:
                todo.append(job)
            else:
                scores[position[job.index]] = row
        if cache is not None and len(todo) < len(jobs):
            logger.info("resuming: %d of %d sub-models were already scored in %s",
                        len(jobs) - len(todo), len(jobs), cache.path)
        executor = make_executor(self.executor, **(self.executor_options or {}))
        with progress_bar(len(jobs), description, enabled=self.progress) as advance:
            if len(todo) < len(jobs):
                advance(len(jobs) - len(todo), "(cached)")
            for pos, row in executor.run(run_submodel, todo):
                job = todo[pos]
                scores[position[job.index]] = row
                if cache is not None:
                    cache.store(job.index, row)
                advance(1, f"#{job.index}")
        return scores

    def _select(self) -> None:
        # the last round decides: stage 1 (round 0), or the latest refinement round
        rows = self.scores_[self.round_ == self.round_.max()]
        self.consensus_ = consensus_mod.aggregate(
            consensus_mod.normalize(rows, self.normalize), self.aggregate)
        if self.keep == selection.AUTO:
            robust = consensus_mod.aggregate(consensus_mod.normalize(rows, "robust_zscore"),
                                             "mean")
            self.n_keep_ = selection.estimate_n_keep(robust)
        else:
            self.n_keep_ = selection.n_to_keep(self.keep, self.n_samples_)
        self._rank()
        self.keep_indices_ = np.sort(self.ranking_[: self.n_keep_])
        self.drop_indices_ = np.sort(self.ranking_[self.n_keep_:])
        self.keep_mask_ = np.zeros(self.n_samples_, dtype=bool)
        self.keep_mask_[self.keep_indices_] = True

    def _rank(self) -> None:
        """Rank by the consensus, or by the largest of its rank and each extra view's."""
        views = [self.consensus_]
        if self.whole_image_:
            views.append(self.whole_image_scores_)
        if getattr(self, "mutual_", False):
            views.append(self.mutual_scores_)
        self.selection_scores_ = (
            consensus_mod.aggregate(consensus_mod.normalize(np.vstack(views), "rank"), "max")
            if len(views) > 1 else self.consensus_)
        self.ranking_ = selection.ranking(self.selection_scores_)

    def reselect(self, **params: Any) -> Purifier:
        """Change ``keep``, ``normalize``, ``aggregate`` or ``whole_image`` and select again,
        training nothing. The whole-image view can be switched off, or back on when it was
        computed at :meth:`fit`."""
        self._check_fitted()
        allowed = {"keep", "normalize", "aggregate", "whole_image"}
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(f"reselect only changes {sorted(allowed)}; got {sorted(unknown)}")
        if self.round_.max() > 0 and {"normalize", "aggregate", "whole_image"} & set(params):
            raise ValueError(
                "this Purifier ran refinement rounds on a core chosen with the current "
                "normalize, aggregate and whole_image; changing them needs a new fit (only "
                "keep can change)."
            )
        if params.get("whole_image", False) is not False and self.whole_image_scores_ is None:
            raise ValueError(
                "the whole-image view was not computed at fit (whole_image=False, or a "
                "detector without embed()); fit again with whole_image=True to use it."
            )
        before = {name: getattr(self, name) for name in params}
        for name, value in params.items():
            setattr(self, name, value)
        try:
            self._validate_params()
        except (TypeError, ValueError):
            for name, value in before.items():
                setattr(self, name, value)
            raise
        if "whole_image" in params:
            self.whole_image_ = self.whole_image is not False
        self._select()
        return self

    # -- stage 2 ------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "keep_indices_"):
            raise NotFittedError("this Purifier is not fitted yet; call fit(dataset) first.")

    def _check_same_data(self, dataset: Any) -> None:
        self._check_fitted()
        if len(dataset) != self.n_samples_ or sample_ids(dataset) != self.ids_:
            raise ValueError(
                f"this dataset ({len(dataset)} samples) is not the one the Purifier was fitted "
                f"on ({self.n_samples_} samples, ids differ). Pass the same dataset, in the same "
                "order."
            )

    def subset(self, dataset: Any) -> Subset:
        """The purified view of ``dataset`` (the samples in ``keep_indices_``)."""
        self._check_same_data(dataset)
        return Subset(dataset, self.keep_indices_)

    def fit_final(self, dataset: Any) -> Any:
        """Stage 2: train a fresh detector on the purified samples and return it."""
        view = self.subset(dataset)
        start = time.perf_counter()
        detector = build_detector(self._factory(), "the final detector")
        logger.info("stage 2: training the final detector on %d purified samples", len(view))
        detector.fit(view)
        self.final_detector_ = detector
        self.timings_["stage2_s"] = time.perf_counter() - start
        return detector

    # -- persistence --------------------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        return {
            "detector": self.detector if isinstance(self.detector, str) else factory_key(
                self.detector),
            "detector_is_name": isinstance(self.detector, str),
            "detector_kwargs": self.detector_kwargs,
            "k": int(self.k),
            "keep": self.keep,
            "scoring": self.scoring,
            "normalize": self.normalize,
            "aggregate": self.aggregate if isinstance(self.aggregate, str) else factory_key(
                self.aggregate),
            "partition": self.partition if isinstance(self.partition, str) else repr(
                self.partition),
            "seed": int(self.seed),
            "executor": self.executor if isinstance(self.executor, str) else repr(self.executor),
            "refine": int(self.refine),
            "core": float(self.core),
            "submodel_params": self.submodel_params,
            "whole_image": self.whole_image,
            "whole_image_neighbors": int(self.whole_image_neighbors),
            "mutual": self.mutual,
            "mutual_params": self.mutual_params,
        }

    def manifest(self) -> dict[str, Any]:
        """What :meth:`save` writes as JSON: configuration, versions, ids and the selection."""
        self._check_fitted()
        return {
            "format": MANIFEST_FORMAT,
            "config": self._config(),
            "detector_arguments": self.detector_arguments_,
            "versions": self.versions_,
            "seed": int(self.seed),
            "scoring": self.scoring_,
            "whole_image": bool(self.whole_image_),
            "mutual": bool(self.mutual_),
            "n_samples": int(self.n_samples_),
            "n_keep": int(self.n_keep_),
            "n_submodels": int(self.n_submodels_),
            "timings": self.timings_,
            "ids": self.ids_,
            "keep_indices": self.keep_indices_.tolist(),
            "drop_indices": self.drop_indices_.tolist(),
        }

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``manifest.json`` and ``scores.npz`` into the folder ``path``, atomically."""
        out = Path(path)
        manifest = self.manifest()
        if extra:
            manifest.update(extra)
        whole = {} if self.whole_image_scores_ is None else {
            "whole_image": self.whole_image_scores_}
        if self.mutual_scores_ is not None:
            whole["mutual"] = self.mutual_scores_
        atomic_save_npz(out / SCORES, scores=self.scores_, membership=self.membership_,
                        consensus=self.consensus_, round=self.round_, **whole)
        atomic_write_json(out / MANIFEST, manifest)
        return out

    @classmethod
    def load(cls, path: str | Path, detector: Callable[[], Any] | str | None = None) -> Purifier:
        """Read a saved Purifier. Nothing is unpickled: JSON and ``allow_pickle=False``.

        A detector given by name is restored; a factory cannot be stored, so pass
        ``detector=`` to call :meth:`fit_final` on a loaded Purifier built from one.
        """
        folder = Path(path)
        manifest_path = folder / MANIFEST
        if not manifest_path.exists():
            raise FileNotFoundError(
                f"{manifest_path} does not exist; point load() at a folder written by "
                "Purifier.save() or `noisyclean purify --out`."
            )
        import json

        manifest = json.loads(manifest_path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{manifest_path} is not a noisyclean Purifier manifest.")
        cfg = manifest["config"]
        if detector is None:
            detector = cfg["detector"] if cfg["detector_is_name"] else _unrestorable(cfg)
        agg = cfg["aggregate"] if cfg["aggregate"] in consensus_mod.AGGREGATORS else "mean"
        obj = cls(
            detector, k=cfg["k"], keep=cfg["keep"], scoring=cfg["scoring"],
            normalize=cfg["normalize"], aggregate=agg, seed=cfg["seed"],
            detector_kwargs=cfg["detector_kwargs"] if cfg["detector_is_name"] else None,
            refine=cfg.get("refine", 0), core=cfg.get("core", 0.25),
            submodel_params=cfg.get("submodel_params", "auto"),
            # saved before the whole-image view existed: the consensus alone chose
            whole_image=cfg.get("whole_image", False),
            whole_image_neighbors=cfg.get("whole_image_neighbors",
                                          whole_image_mod.DEFAULT_NEIGHBORS),
            mutual=cfg.get("mutual", False), mutual_params=cfg.get("mutual_params"),
        )
        arrays = load_npz(folder / SCORES)
        obj.n_samples_ = int(manifest["n_samples"])
        obj.ids_ = list(manifest["ids"])
        obj.membership_ = arrays["membership"].astype(bool)
        obj.n_submodels_ = int(manifest.get("n_submodels", obj.membership_.shape[0]))
        obj.round_ = arrays.get("round", np.zeros(obj.membership_.shape[0], dtype=np.int64))
        obj.partition_ = _partition_labels(obj.membership_[: obj.n_submodels_])
        obj.scoring_ = manifest["scoring"]
        obj.scores_ = arrays["scores"]
        obj.consensus_ = arrays["consensus"]
        obj.n_keep_ = int(manifest["n_keep"])
        obj.whole_image_scores_ = arrays.get("whole_image")
        obj.whole_image_ = bool(manifest.get("whole_image", False))
        obj.mutual_scores_ = arrays.get("mutual")
        obj.mutual_ = bool(manifest.get("mutual", False))
        obj._rank()
        obj.keep_indices_ = np.asarray(manifest["keep_indices"], dtype=np.int64)
        obj.drop_indices_ = np.asarray(manifest["drop_indices"], dtype=np.int64)
        obj.keep_mask_ = np.zeros(obj.n_samples_, dtype=bool)
        obj.keep_mask_[obj.keep_indices_] = True
        obj.timings_ = dict(manifest.get("timings", {}))
        obj.versions_ = dict(manifest.get("versions", {}))
        obj.detector_arguments_ = manifest.get("detector_arguments")
        return obj

    def report(self, dataset: Any, path: str | Path, **options: Any) -> Path:
        """Write the HTML report of this run (see :mod:`noisyclean.report`)."""
        from noisyclean.report import write_report

        return write_report(self, dataset, path, **options)


class _Probe:
    """Answers questions about the detector a factory makes, building one at most once.

    A class (or a partial of one, or a registered name) answers from the class; any other
    factory must be called, and a detector may be costly to build (a backbone), so the one
    instance is kept for every question and for computing the whole-image view.
    """

    def __init__(self, factory: Callable[[], Any]):
        self.factory = factory
        self.cls = factory_class(factory)
        self.name = getattr(self.cls, "__name__", None) or factory_key(factory)
        self._instance: Any = None

    def instance(self) -> Any:
        if self._instance is None:
            self._instance = build_detector(self.factory, "the detector")
            self.name = type(self._instance).__name__
        return self._instance


def factory_class(factory: Any) -> type | None:
    """The detector class a factory makes, when it is known without calling the factory."""
    target, _, _ = _unwrap(factory)
    return target if inspect.isclass(target) else None


def _unwrap(factory: Any) -> tuple[Any, tuple[Any, ...], dict[str, Any]]:
    """What a factory calls, with the positional and keyword arguments it adds: a partial
    or a registered name's :class:`~noisyclean.plugins.BoundFactory` are looked through."""
    from noisyclean.plugins import BoundFactory

    if isinstance(factory, functools.partial):
        return factory.func, factory.args, dict(factory.keywords)
    if isinstance(factory, BoundFactory):
        return factory.cls, (), dict(factory.kwargs)
    return factory, (), {}


def _unrestorable(cfg: dict[str, Any]) -> Callable[[], Any]:
    def missing() -> Any:
        raise RuntimeError(
            f"this Purifier was saved with the detector factory {cfg['detector']}, which "
            "cannot be stored in JSON; pass it again: Purifier.load(path, detector=factory)."
        )

    return missing


def _partition_labels(membership: np.ndarray) -> np.ndarray | None:
    """``(n,)`` subset id per sample when every sample is in exactly one subset."""
    if not (membership.sum(axis=0) == 1).all():
        return None
    return membership.argmax(axis=0)


def factory_key(obj: Any) -> str:
    """A description of a factory that is stable across runs (cache keys, manifests).

    ``repr`` of a lambda holds a memory address, so functions are named by module,
    qualified name and a hash of their code; partials by their function and arguments.
    """
    if isinstance(obj, functools.partial):
        args = ", ".join([*map(repr, obj.args), *(f"{k}={v!r}" for k, v in obj.keywords.items())])
        return f"partial({factory_key(obj.func)}, {args})"
    if inspect.isclass(obj):
        return f"{obj.__module__}.{obj.__qualname__}"
    code = getattr(obj, "__code__", None)
    if code is not None:
        digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()[:12]
        return f"{obj.__module__}.{obj.__qualname__}#{digest}"
    return _stable_repr(obj)


def _stable_repr(obj: Any) -> str:
    """``repr(obj)``, or its type's name when the repr holds a memory address."""
    text = repr(obj)
    if " at 0x" in text:
        return f"{type(obj).__module__}.{type(obj).__qualname__}"
    return text


def resolved_arguments(factory: Any) -> dict[str, str] | None:
    """Every argument a factory passes to its detector's constructor, defaults included.

    Why: a cache key or manifest that records only the arguments given would not notice a
    changed default (after an upgrade, say), and a resumed run would then mix scores from
    two different detectors. Known for classes, partials of classes and registered names;
    ``None`` for other callables, whose code hash in :func:`factory_key` is all there is.
    """
    target, args, kwargs = _unwrap(factory)
    if not inspect.isclass(target):
        return None
    try:
        bound = inspect.signature(target).bind_partial(*args, **kwargs)
    except (TypeError, ValueError):  # no introspectable signature, or arguments it refuses
        return None
    bound.apply_defaults()
    return {name: _stable_repr(value) for name, value in bound.arguments.items()}


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for dist in ("noisyclean", "numpy", "scikit-learn", "torch", "timm", "anomalib"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            continue
    return out
