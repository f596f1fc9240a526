"""Where a real data set lives: an environment variable, else the development layout.

Layouts of public data sets (Magnetic Tile, PIPED) find their folder the same way: the
environment variable when it is set, else ``<checkout>/../shared/data/<name>`` when that
exists. One place for that rule keeps their error messages alike.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from noisyclean.data.errors import DataError


def find_data_root(env_var: str, shared_name: str) -> Path | None:
    """``$env_var``, else ``<checkout>/../shared/data/<shared_name>`` when it exists, else
    ``None``."""
    env = os.environ.get(env_var)
    if env:
        return Path(env).expanduser()
    fallback = Path(__file__).resolve().parents[3] / "shared" / "data" / shared_name
    return fallback if fallback.is_dir() else None


def resolve_data_root(root: str | os.PathLike | None, find: Callable[[], Path | None],
                      what: str, env_var: str, holds: str) -> Path:
    """``root`` (or what ``find`` finds) as an absolute folder that exists.

    Raises:
        DataError: nothing found, or a folder that does not exist; the message names
            ``env_var`` and what the folder ``holds``.
    """
    if root is None:
        root = find()
        if root is None:
            raise DataError(f"{what} data not found; pass root=... or set {env_var} to the "
                            f"folder that holds {holds}")
    root_path = Path(root).expanduser().absolute()
    if not root_path.is_dir():
        raise DataError(f"the {what} folder {root_path} does not exist")
    return root_path
