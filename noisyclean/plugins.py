"""The plugin registry: every detector, built-in or third-party, arrives through one hook.

Modelled on ``simonw/llm``: a pluggy ``PluginManager`` loads the built-in plugin modules
and then every module advertised under the ``noisyclean`` entry-point group, and each of
them calls ``register(name, factory)`` from its ``register_detectors`` hook. The built-ins
get no side door, so the path a third-party plugin takes is the path our own tests exercise.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pluggy

from noisyclean import hookspecs

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = hookspecs.PROJECT_NAME
BUILTIN_PLUGINS: tuple[str, ...] = ("noisyclean.detectors",)


class UnknownDetectorError(KeyError):
    """A detector name that no plugin registered."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly instead
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class DetectorInfo:
    """One registered detector: what ``noisyclean detectors`` lists."""

    name: str
    factory: Callable[..., Any] | str
    description: str
    distribution: str

    def load(self) -> Callable[..., Any]:
        """The factory itself, importing a lazy ``"module:attribute"`` reference if needed."""
        if callable(self.factory):
            return self.factory
        module_name, _, attr = self.factory.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise ImportError(
                f"detector {self.name!r} (from {self.distribution}) could not be loaded from "
                f"{self.factory!r}: {exc}. Install its dependencies, e.g. "
                f"`pip install 'noisyclean[images]'` for the built-in image detectors."
            ) from exc
        return obj


pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
pm.add_hookspecs(hookspecs)
_loaded = False
_DIST_OF: dict[int, str] = {}


def _distribution_of(plugin: object) -> str:
    """The distribution that shipped a built-in or directly registered plugin."""
    module = getattr(plugin, "__name__", "")
    if module.startswith("noisyclean."):
        return f"noisyclean {_own_version()}"
    return module or type(plugin).__name__


def _own_version() -> str:
    try:
        return importlib.metadata.version("noisyclean")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


def load_plugins() -> None:
    """Register the built-in plugins and every entry point in the ``noisyclean`` group.

    A third-party plugin that fails to import is logged and skipped, so one broken
    plugin cannot take the CLI down; asking for one of its detectors then fails clearly.
    """
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module_name in BUILTIN_PLUGINS:
        module = importlib.import_module(module_name)
        if not pm.is_registered(module):
            pm.register(module, module_name)
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:
            logger.warning("noisyclean plugin %r could not be loaded: %s", ep.value, exc)
            continue
        pm.register(plugin, name=ep.name)
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _DIST_OF[id(plugin)] = f"{dist.metadata['Name']} {dist.version}"


def _collect() -> dict[str, DetectorInfo]:
    load_plugins()
    found: dict[str, DetectorInfo] = {}
    for plugin in pm.get_plugins():
        impl = getattr(plugin, "register_detectors", None)
        if impl is None:
            continue
        distribution = _DIST_OF.get(id(plugin)) or _distribution_of(plugin)

        def register(
            name: str,
            factory: Callable[..., Any] | str,
            description: str | None = None,
            *,
            _dist: str = distribution,
        ) -> None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"a detector name must be a non-empty string, got {name!r}")
            if name in found:
                raise ValueError(
                    f"detector {name!r} is registered twice: by {found[name].distribution} "
                    f"and by {_dist}. Uninstall one of them or rename the detector."
                )
            doc = description or _first_line(factory)
            found[name] = DetectorInfo(name, factory, doc, _dist)

        impl(register=register)
    return dict(sorted(found.items()))


def _first_line(factory: Callable[..., Any] | str) -> str:
    doc = "" if isinstance(factory, str) else (factory.__doc__ or "")
    return doc.strip().splitlines()[0] if doc.strip() else ""


def list_detectors() -> list[DetectorInfo]:
    """Every registered detector, sorted by name."""
    return list(_collect().values())


def detector_info(name: str) -> DetectorInfo:
    registry = _collect()
    if name not in registry:
        known = ", ".join(registry) or "(none)"
        raise UnknownDetectorError(
            f"unknown detector {name!r}. Known detectors: {known}. Install the plugin that "
            "provides it (e.g. `pip install noisyclean-dinomaly`), or pass a detector factory "
            "instead of a name."
        )
    return registry[name]


def get_detector(name: str, **kwargs: Any) -> Any:
    """A new instance of the detector registered as ``name``, built with ``kwargs``."""
    return detector_info(name).load()(**kwargs)


def detector_factory(name: str, **kwargs: Any) -> Callable[[], Any]:
    """A zero-argument factory for a registered detector (what the Purifier needs)."""
    info = detector_info(name)
    cls = info.load()
    return BoundFactory(cls, kwargs, name)


class BoundFactory:
    """``lambda: cls(**kwargs)``, but picklable so the process executor can ship it, and
    open about its class and arguments (the score cache keys on them, defaults included)."""

    def __init__(self, cls: Callable[..., Any], kwargs: dict[str, Any], name: str):
        self.cls, self.kwargs, self.name = cls, dict(kwargs), name

    def __call__(self) -> Any:
        return self.cls(**self.kwargs)

    @property
    def preferred_scoring(self) -> str | None:
        """The class's declared mode; ``None`` when only an instance can tell (a property)."""
        declared = getattr(self.cls, "preferred_scoring", "all")
        return declared if isinstance(declared, str) else None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"
