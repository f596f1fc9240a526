"""Old module paths that still import, for one release, with a DeprecationWarning.

Modules renamed so that their names say what they hold (``datasets`` beside the ``data``
package, ``cache`` beside ``feature_cache``) keep their old import path through an import
hook rather than through a stub file left at the old path. Why: a stub at the old path
would make every rename look like an edit to git, so work done on the old file in parallel
would not follow it to its new name; with the old file gone, git sees a rename and merges
such work into the new file.

``import noisyclean.datasets`` (and ``from noisyclean.datasets import Subset``) returns the
module :mod:`noisyclean.samples` itself, so old and new names share one set of objects.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType
from typing import Any

#: old module path -> the module that now holds its contents
MOVED = {
    "noisyclean.datasets": "noisyclean.samples",
    "noisyclean.cache": "noisyclean.score_cache",
    "noisyclean.ray_executor": "noisyclean.executors.ray",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds the old paths in :data:`MOVED` and loads each as the module that replaced it."""

    def __init__(self) -> None:
        self._specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} has moved to {new}; import it from there ({spec.name} will be "
            "removed in the next release).",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        self._specs[new] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module was imported under its new name. The import system
        has just stamped the old name's spec on it; its own spec is put back."""
        module.__spec__ = self._specs[module.__name__]


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (importing :mod:`noisyclean` calls this).

    It goes first, so that a stale file left at an old path (an editable install of an
    older checkout, say) is never imported beside the module that replaced it.
    """
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
