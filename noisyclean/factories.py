"""What a detector factory makes, and a description of it that is stable across runs.

The Purifier takes a detector as a factory (a class, a ``functools.partial``, a lambda or a
registered name), which :func:`make_factory` checks. The score cache key and the manifest
need to describe that factory the same way in every run (:func:`factory_key`,
:func:`resolved_arguments`), and stage 1 needs to ask what the detector prefers and can do
(its scoring mode, whether it embeds) without building a costly detector (:class:`_Probe`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
from collections.abc import Callable
from typing import Any

from noisyclean.protocol import can_embed, preferred_scoring
from noisyclean.submodel import build_detector


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

    def scoring(self, requested: str) -> str:
        """The scoring mode for ``requested`` (``"auto"``: what the detector prefers)."""
        if requested != "auto":
            return requested
        # a class (or a partial of one) declares it; only other factories need an instance,
        # which may be costly to build (a backbone), so it is the last resort
        declared = getattr(self.cls, "preferred_scoring", "all") if self.cls else None
        if isinstance(declared, str):
            return preferred_scoring(self.cls)
        return preferred_scoring(self.instance())

    def uses_whole_image(self, requested: bool | str) -> bool:
        """Whether the whole-image view takes part (``"auto"``: when the detector can embed)."""
        if requested is False:
            return False
        able = can_embed(self.cls if self.cls is not None else self.instance())
        if requested is True and not able:
            raise ValueError(
                f"whole_image=True needs a detector with embed(dataset) -> (n, d) whole-image "
                f"vectors, and {self.name} has none; use whole_image='auto' or False, or add "
                "embed() to the detector (see noisyclean.protocol.Embedder)."
            )
        return able


def make_factory(detector: Callable[[], Any] | str,
                 detector_kwargs: dict[str, Any] | None) -> Callable[[], Any]:
    """The zero-argument factory the Purifier's ``detector`` argument stands for: a
    registered name with its ``detector_kwargs``, or the factory itself once checked."""
    if isinstance(detector, str):
        from noisyclean.plugins import detector_factory

        return detector_factory(detector, **(detector_kwargs or {}))
    if detector_kwargs:
        raise ValueError(
            "detector_kwargs is only used with a detector name; bake arguments into the "
            "factory instead, e.g. functools.partial(MyDetector, alpha=0.1)."
        )
    if not callable(detector):
        raise TypeError(
            f"detector must be a zero-argument factory or a registered name, got "
            f"{type(detector).__name__}. Pass the class or a lambda "
            "(Purifier(lambda: MyDetector(...))), not a fitted instance."
        )
    if hasattr(detector, "fit") and not inspect.isclass(detector):
        raise TypeError(
            f"detector is a {type(detector).__name__} instance; the Purifier needs a "
            "factory that makes a fresh one per sub-model, e.g. "
            f"Purifier(lambda: {type(detector).__name__}(...))."
        )
    return detector


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
