"""The Purifier: stage 1 (partition, sub-models, consensus, selection) and stage 2.

It only wires the parts: :mod:`~noisyclean.partition` splits, an
:mod:`~noisyclean.executors` executor runs :func:`~noisyclean.submodel.run_submodel` per
subset, :mod:`~noisyclean.score_cache` keeps finished rows, :mod:`~noisyclean.consensus`
normalises and aggregates, and :mod:`~noisyclean.selection` keeps the lowest scores.
Its helpers each have a module: :mod:`~noisyclean.parameters` checks the arguments,
:mod:`~noisyclean.factories` checks and describes the detector factory, and
:mod:`~noisyclean.persistence` saves and loads a fitted Purifier.

Every sample is identified by its original index from start to end: subsets are index
arrays into the dataset the user passed, score rows are indexed by those same positions,
and the kept list is returned in original indices. Nothing is ever re-permuted.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from noisyclean import consensus as consensus_mod
from noisyclean import parameters, persistence, preflight, selection, views
from noisyclean import partition as partition_mod
from noisyclean import tail as tail_mod
from noisyclean import whole_image as whole_image_mod
from noisyclean.executors import Executor, make_executor

# the names not used here are re-exported: they lived here until noisyclean.factories and
# noisyclean.persistence took over factory introspection and saving
from noisyclean.factories import (  # noqa: F401
    _Probe,
    _stable_repr,
    _unwrap,
    factory_class,
    factory_key,
    make_factory,
    resolved_arguments,
)
from noisyclean.persistence import MANIFEST, MANIFEST_FORMAT, SCORES  # noqa: F401
from noisyclean.progress import progress as progress_bar
from noisyclean.samples import Subset, fingerprint, sample_ids
from noisyclean.score_cache import ScoreCache
from noisyclean.submodel import SubmodelJob, build_detector, run_submodel
from noisyclean.tabular import as_samples

logger = logging.getLogger(__name__)


class NotFittedError(RuntimeError):
    """A fitted attribute was used before :meth:`Purifier.fit`."""


class Purifier:
    """Clean a contaminated training set with a consensus of sub-models.

    Args:
        detector: a zero-argument factory returning a fresh detector (a class, a lambda,
            a ``functools.partial``), or the name of a registered detector
            (``noisyclean detectors`` lists them), configured with ``detector_kwargs``.
        k: the number of disjoint subsets (sub-models) for ``partition="disjoint"``.
        keep: a fraction in (0, 1] of the samples to keep (a float: ``1.0`` keeps all), or
            ``"auto"`` to estimate the contamination from the consensus. An integer is
            refused as ambiguous (does ``1`` mean all, or one?). Ties keep the lower index.
        keep_count: keep this many samples instead (an integer >= 1); when given, it
            replaces ``keep``.
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
            has one), ``"auto"`` uses it when the detector has one. Off by default: on both
            benchmark data sets it separated the training defects slightly better but
            trained a slightly worse final detector (benchmarks/views-study.md).
        mutual_params: keyword arguments for :func:`noisyclean.mutual.mutual_scores`
            (``fraction``, ``references``, ``reference_patches``, ``top``, ``trusted``,
            ``community``: score again without CoDeGraph-style consistent-anomaly
            communities, :mod:`noisyclean.community`).
        protect_tail: keep the samples of rare whole-image modes whatever the other views
            say (TailedCore's tail, :mod:`noisyclean.tail`); needs a detector with
            ``embed``. Off by default: see the benchmark's ablation row.

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
        tail_mask_: ``(n,)`` bool, the protected tail samples (``None`` without
            ``protect_tail``).
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
        keep: float | str = 0.8,
        *,
        keep_count: int | None = None,
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
        protect_tail: bool = False,
    ):
        self.detector = detector
        self.k = k
        self.keep = keep
        self.keep_count = keep_count
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
        self.protect_tail = protect_tail

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

    def _factory(self) -> Callable[[], Any]:
        return make_factory(self.detector, self.detector_kwargs)

    def _resolve_scoring(self, probe: _Probe) -> str:
        return probe.scoring(self.scoring)

    def _submodel_overrides(self) -> dict[str, Any] | None:
        """What a sub-model job sets on top of its detector's suggestion (``None``: nothing)."""
        if self.submodel_params is None:
            return None
        return {} if self.submodel_params == "auto" else dict(self.submodel_params)

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
        parameters.validate(self)
        dataset = as_samples(dataset)
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
        preflight.check_before_fit(self, probe, n)
        ids = sample_ids(dataset)
        rng = np.random.default_rng(self.seed)
        subsets = self._subsets(n, rng)
        scoring = self._resolve_scoring(probe)
        use_whole_image = probe.uses_whole_image(self.whole_image)
        if self.protect_tail and not probe.uses_whole_image("auto"):
            raise ValueError(
                f"protect_tail=True needs a detector with embed(dataset) -> (n, d) whole-image "
                f"vectors, and {probe.name} has none; leave protect_tail off or add embed()."
            )
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
        whole, tail = views.whole_image_views(probe, dataset, cache, self.whole_image_neighbors,
                                              scores=use_whole_image, tail=self.protect_tail)
        whole_s = time.perf_counter() - t_whole
        t_mutual = time.perf_counter()
        mutual = views.mutual_view_scores(probe, dataset, cache, self.mutual,
                                          self.mutual_params, self.seed)
        mutual_s = time.perf_counter() - t_mutual
        scores = self._run(jobs, n, cache)

        self.n_samples_ = n
        self.ids_ = ids
        self.membership_ = membership
        self.partition_ = partition_mod.partition_labels(membership)
        self.scoring_ = scoring
        self.scores_ = scores
        self.n_submodels_ = len(subsets)
        self.round_ = np.zeros(len(subsets), dtype=np.int64)
        self.whole_image_ = use_whole_image
        self.whole_image_scores_ = whole
        self.mutual_ = mutual is not None
        self.mutual_scores_ = mutual
        self.tail_mask_ = tail
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
        self.versions_ = persistence.versions()
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
        if self.keep == selection.AUTO and self.keep_count is None:
            robust = consensus_mod.aggregate(consensus_mod.normalize(rows, "robust_zscore"),
                                             "mean")
            self.n_keep_ = selection.estimate_n_keep(robust)
        else:
            self.n_keep_ = selection.n_to_keep(self.keep, self.n_samples_, self.keep_count)
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
        if self.mutual_:
            views.append(self.mutual_scores_)
        self.selection_scores_ = (
            consensus_mod.largest_rank(*views) if len(views) > 1 else self.consensus_)
        self.ranking_ = selection.ranking(self.selection_scores_)
        if self.tail_mask_ is not None:
            self.ranking_ = tail_mod.protected_first(self.ranking_, self.tail_mask_)

    def reselect(self, **params: Any) -> Purifier:
        """Change ``keep``, ``normalize``, ``aggregate`` or ``whole_image`` and select again,
        training nothing. The whole-image view can be switched off, or back on when it was
        computed at :meth:`fit`."""
        self._check_fitted()
        allowed = {"keep", "keep_count", "normalize", "aggregate", "whole_image"}
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
        if "keep" in params:  # a new fraction replaces a count given before
            params.setdefault("keep_count", None)
        before = {name: getattr(self, name) for name in params}
        for name, value in params.items():
            setattr(self, name, value)
        try:
            parameters.validate(self)
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
        dataset = as_samples(dataset)
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

    # -- persistence (noisyclean.persistence) --------------------------------------------
    def manifest(self) -> dict[str, Any]:
        """What :meth:`save` writes as JSON: configuration, versions, ids and the selection."""
        return persistence.manifest(self)

    def save(self, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write ``manifest.json`` and ``scores.npz`` into the folder ``path``, atomically."""
        return persistence.save(self, path, extra)

    @classmethod
    def load(cls, path: str | Path, detector: Callable[[], Any] | str | None = None) -> Purifier:
        """Read a saved Purifier. Nothing is unpickled: JSON and ``allow_pickle=False``.

        A detector given by name is restored; a factory cannot be stored, so pass
        ``detector=`` to call :meth:`fit_final` on a loaded Purifier built from one.
        """
        return persistence.load(cls, path, detector)

    # -- the report (a face above this module: see set_report_writer) ---------------------
    def report(self, dataset: Any, path: str | Path, **options: Any) -> Path:
        """Write the HTML report of this run (see :mod:`noisyclean.report`)."""
        if _report_writer is None:
            raise RuntimeError(
                "no report writer is registered; import noisyclean (the package registers "
                "noisyclean.report.write_report) or call noisyclean.report.write_report("
                "purifier, dataset, path)."
            )
        return _report_writer(self, dataset, path, **options)


ReportWriter = Callable[..., Path]
_report_writer: ReportWriter | None = None


def set_report_writer(writer: ReportWriter) -> None:
    """Make :meth:`Purifier.report` call ``writer(purifier, dataset, path, **options)``.

    Why a registry: the report is a face that reads a fitted Purifier, so it sits above
    this module, and an import of it from here would close a circle (purifier -> report ->
    purifier). The package's ``__init__`` (the public face) registers
    :func:`noisyclean.report.write_report` here, importing it only when a report is asked
    for, so ``purifier.report(dataset, path)`` keeps working and importing the Purifier
    does not import the report's plotting stack.
    """
    global _report_writer
    _report_writer = writer
