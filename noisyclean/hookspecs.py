"""The plugin hooks noisyclean offers, and the markers plugins use.

A plugin is a module (or object) with functions marked ``@noisyclean.hookimpl`` whose names
match the specifications below. Third parties expose it under the ``noisyclean`` entry-point
group; the built-in detectors are registered through exactly the same hook.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

PROJECT_NAME = "noisyclean"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

RegisterDetector = Callable[..., None]
"""``register(name, factory, description=None)``.

``factory`` is a zero-argument-callable class or function returning a detector, accepting
keyword arguments, or a ``"module:attribute"`` string that is imported only when the
detector is first used (so listing detectors never imports torch).
"""


@hookspec
def register_detectors(register: RegisterDetector) -> Any:
    """Register detectors by calling ``register(name, factory, description=...)``."""
