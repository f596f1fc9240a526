"""The contracts every detector and dataset keeps.

noisyclean never looks inside a detector. It needs exactly two calls, ``fit`` and
``score``, and treats everything else (backbones, memory banks, training loops) as the
detector's own business. Keeping the contract this small is what lets any model, ours or a
third party's, serve as a sub-model in stage 1 and as the final model in stage 2.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

ScoringMode = Literal["all", "out_of_bag"]
"""How a sub-model's scores enter the consensus.

``"all"``: every sub-model scores every sample, its own training samples included (the
paper's in-bag scoring). ``"out_of_bag"``: a sample is scored only by the sub-models that did
not train on it; memory-bank detectors need this, because an anomaly in the bank matches
itself at distance zero.
"""

SCORING_MODES: tuple[str, ...] = ("all", "out_of_bag")


@runtime_checkable
class Dataset(Protocol):
    """Anything indexable with a length: a list, a numpy array, a torch ``Dataset``.

    A dataset may also expose ``ids`` (a sequence of unique strings, one per sample). When
    it does, noisyclean tracks samples by those ids in manifests and caches; otherwise the
    position is the id.
    """

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


@runtime_checkable
class Detector(Protocol):
    """An unsupervised anomaly detector.

    ``fit(dataset)`` trains on the samples (all assumed normal) and returns ``self``.
    ``score(dataset)`` returns a float array of shape ``(len(dataset),)``: finite, and higher
    means more anomalous. Scores of different detector instances need not share a scale;
    the Purifier normalises them.

    A detector may declare ``preferred_scoring = "out_of_bag"`` (a class attribute) when
    scoring its own training samples is meaningless, as for memory banks.

    A detector may also define ``submodel_params(share)``, returning attribute overrides that
    make a stage-1 sub-model cheaper (a smaller memory bank, fewer epochs) when it trains on
    ``share`` (a fraction) of the data. A sub-model only ranks the other samples; the
    Purifier applies these overrides unless told otherwise (``Purifier(submodel_params=...)``).
    """

    def fit(self, dataset: Any) -> Detector: ...

    def score(self, dataset: Any) -> np.ndarray: ...


@runtime_checkable
class Localizer(Protocol):
    """A detector that also localises: ``score_maps`` gives ``(n, H, W)`` anomaly maps.

    When its image scores come from the same maps, it may also define
    ``score_and_maps(dataset)`` returning both from one pass over the data; evaluation then
    searches the test set once instead of twice (:func:`scores_and_maps`).
    """

    def score_maps(self, dataset: Any) -> np.ndarray: ...


def scores_and_maps(detector: Any, dataset: Any,
                    maps: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """``(detector.score(dataset), detector.score_maps(dataset))``, in one pass when the
    detector offers ``score_and_maps``. The maps are ``None`` when ``maps`` is false (only
    the scores are computed) or the detector does not localise."""
    if not maps or not callable(getattr(detector, "score_maps", None)):
        return detector.score(dataset), None
    both = getattr(detector, "score_and_maps", None)
    if callable(both):
        return both(dataset)
    return detector.score(dataset), detector.score_maps(dataset)


@runtime_checkable
class Embedder(Protocol):
    """A detector that can also describe each sample as a whole: one vector per sample.

    ``embed(dataset)`` returns a finite float array ``(len(dataset), d)`` from a *fixed*
    feature extractor (a frozen backbone's pooled features, say), so it needs no ``fit`` and
    means the same for every sub-model. The Purifier's whole-image view
    (``Purifier(whole_image=...)``) ranks how far each sample lies from its nearest other
    samples in this space, a judgement that does not depend on which defects the sub-models'
    training subsets happened to contain.
    """

    def embed(self, dataset: Any) -> np.ndarray: ...


def can_embed(detector: object) -> bool:
    """Whether a detector (or its class) offers :class:`Embedder`'s ``embed``."""
    return callable(getattr(detector, "embed", None))


def preferred_scoring(detector: object) -> ScoringMode:
    """The scoring mode a detector (or its class) asks for; ``"all"`` when it says nothing."""
    mode = getattr(detector, "preferred_scoring", "all")
    if mode not in SCORING_MODES:
        raise ValueError(
            f"{type(detector).__name__}.preferred_scoring is {mode!r}; it must be one of "
            f"{SCORING_MODES}."
        )
    return mode  # type: ignore[return-value]


def submodel_params(detector: object, share: float) -> dict[str, Any]:
    """The overrides a detector suggests for a sub-model on ``share`` of the data (or ``{}``)."""
    method = getattr(detector, "submodel_params", None)
    if not callable(method):
        return {}
    params = method(share)
    if not isinstance(params, dict):
        raise TypeError(
            f"{type(detector).__name__}.submodel_params() must return a dict of attribute "
            f"overrides, got {type(params).__name__}."
        )
    return params


def set_constructor_params(
    detector: Any, params: dict[str, Any], check: Callable[[], None] | None = None
) -> None:
    """Set ``params`` as attributes, refusing names the detector's constructor does not take.

    By the scikit-learn convention a constructor only stores its arguments under their own
    names, so setting those attributes is what passing different arguments would have done.
    ``check`` is the detector's own validation, as its constructor runs it; when it raises,
    every attribute gets its old value back, so a rejected change leaves a working detector.
    """
    accepted = _constructor_parameters(type(detector))
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ValueError(
            f"{type(detector).__name__} has no parameter(s) {unknown}; it takes "
            f"{sorted(accepted)}."
        )
    missing = object()
    before = {name: getattr(detector, name, missing) for name in params}
    for name, value in params.items():
        setattr(detector, name, value)
    if check is None:
        return
    try:
        check()
    except Exception:
        for name, value in before.items():
            if value is missing:
                delattr(detector, name)
            else:
                setattr(detector, name, value)
        raise


NUMBER_KINDS = {
    # kind: (integers only?, (lowest, may equal it?), (highest, may equal it?), wording)
    "count": (True, (1, True), None, "an integer >= 1"),
    "integer": (True, None, None, "an integer"),
    "natural": (True, (0, True), None, "an integer >= 0"),
    "positive": (False, (0, False), None, "a number > 0"),
    "nonnegative": (False, (0, True), None, "a number >= 0"),
    "fraction": (False, (0, False), (1, True), "a number > 0 and <= 1"),
    "share": (False, (0, True), (1, False), "a number >= 0 and < 1"),
}


def check_numbers(detector: Any, rules: Sequence[tuple[str, str, bool]]) -> None:
    """Check a detector's numeric settings: ``rules`` holds ``(name, kind, may be None)``.

    Why in the core: a detector's constructor only stores its arguments, so without a check
    ``max_steps="5k"`` or ``coreset_max=True`` is found only when training fails, minutes
    later and with Python's own error. Run from the constructor and ``set_params``, this
    names the setting and what it must be. ``kind`` is a key of :data:`NUMBER_KINDS`.
    """
    owner = type(detector).__name__
    for name, kind, optional in rules:
        value = getattr(detector, name)
        if value is None and optional:
            continue
        integral, low, high, wording = NUMBER_KINDS[kind]
        kinds = (int, np.integer) if integral else (int, float, np.integer, np.floating)
        need = wording + (" or None" if optional else "")
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise TypeError(f"{owner}: {name} must be {need}, got {value!r} "
                            f"({type(value).__name__}).")
        too_low = low is not None and (value < low[0] or (value == low[0] and not low[1]))
        too_high = high is not None and (value > high[0] or (value == high[0] and not high[1]))
        if math.isnan(value) or too_low or too_high:
            raise ValueError(f"{owner}: {name} must be {need}, got {value!r}.")


def _constructor_parameters(cls: type) -> set[str]:
    """The named arguments ``cls(...)`` takes, following ``**kwargs`` up to the parents."""
    names: set[str] = set()
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is object:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]  # without self
        names |= {p.name for p in params
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def apply_params(detector: Any, params: dict[str, Any], who: str) -> Any:
    """Set ``params`` on a fresh detector (``set_params`` when it has one) and return it."""
    if not params:
        return detector
    setter = getattr(detector, "set_params", None)
    try:
        if callable(setter):
            setter(**params)
        else:
            set_constructor_params(detector, params)
    except (ValueError, TypeError) as exc:  # same type, with where it came from
        raise type(exc)(f"{who}: submodel_params: {exc}") from exc
    return detector
