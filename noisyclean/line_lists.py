"""Which sample ids a line-based list (``purified.txt``, ``dropped.txt``) can hold.

Why refuse rather than escape: the lists are read back by people, shell tools
(``xargs``, ``rsync --files-from``) and :func:`noisyclean.data.read_image_list`, which
strips each line and skips blank lines and ``#`` comments. No escape survives all of those,
so an id that would not come back unchanged is refused before any work, naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable


def line_problem(sid: str) -> str | None:
    """Why ``sid`` cannot be one line of a list, or ``None`` when it can."""
    if len(sid.splitlines()) > 1 or sid.endswith(("\n", "\r")):
        return "it holds a line break"
    if sid != sid.strip():
        return "it starts or ends with white space, which list readers strip"
    if sid.startswith("#"):
        return "it starts with '#', which list readers take for a comment"
    return None


def check_line_safe(ids: Iterable[str], what: str = "the sample id") -> None:
    """Refuse the first id that cannot go into a line-based list unchanged."""
    for sid in ids:
        problem = line_problem(sid)
        if problem:
            raise ValueError(f"{what} {sid!r} cannot be written to purified.txt or "
                             f"dropped.txt: {problem}; rename it")
