"""Who owns what in an output folder: noisyclean replaces only what it wrote itself.

Why: users point ``--out`` at folders that already hold things, their own files or an
earlier run. Writing blindly overwrote a user's ``purified.txt`` without a word, and a rerun
with another ``keep`` left the old ``report.html`` beside new lists that contradict it.

The rules, all decided before any work (:func:`plan_output`) and carried out only once the
new results exist (:meth:`OutputPlan.clear_earlier_run`):

- a new or empty folder is used as it is;
- a folder with only a score cache (``cache/``) is an interrupted run, which resumes;
- a folder with an earlier finished run (its ``manifest.json`` carries the noisyclean
  format tag) is replaced only with ``overwrite=True``: its lists, scores, manifest, report
  and plots go, its score cache stays (a rerun with another ``keep`` trains nothing);
- a file noisyclean would write that it did not write (no manifest of ours beside it) is
  never touched: the run is refused, with or without ``overwrite``;
- every other file of the user's stays where it is, untouched.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from noisyclean.manifest_check import MANIFEST, SCORES

RESULT_FILES = ("purified.txt", "dropped.txt", "scores.csv", SCORES, MANIFEST)
REPORT_FILE, REPORT_PLOTS = "report.html", "report_plots"
PLOT_FILES = ("consensus.png", "submodels.png", "agreement.png")
CACHE_DIR = "cache"
REPORT_MARKER = '<meta name="generator" content="noisyclean">'


class OutputFolderError(ValueError):
    """The output folder cannot be written, or holds files noisyclean must not replace."""


def check_writable(out_dir: Path) -> None:
    """Refuse an output path that is a file, lies under a file, or cannot be written.

    The nearest existing folder is probed with a temporary file (removed at once), since
    permission bits do not tell the whole story (read-only mounts, ACLs).
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputFolderError(f"out_dir {out_dir} is a file, not a folder; give a folder "
                                "for the results")
    existing = out_dir
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputFolderError(f"out_dir {out_dir} cannot be created: {existing} is a file")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".noisyclean-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputFolderError(f"out_dir {out_dir} cannot be written ({existing}: "
                                f"{exc.strerror or exc})") from None


def is_our_manifest(path: Path, format_tag: str) -> bool:
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(manifest, dict) and manifest.get("format") == format_tag


def is_our_report(path: Path) -> bool:
    """A report page noisyclean wrote (its template carries a generator tag in the head)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return REPORT_MARKER in fh.read(4096)
    except OSError:
        return False


def _is_score_cache(folder: Path) -> bool:
    """Every entry is a cache key folder that a score cache created (it holds config.json)."""
    return folder.is_dir() and all(
        child.is_dir() and (child / "config.json").is_file() for child in folder.iterdir())


@dataclass
class OutputPlan:
    """What a run will do to its output folder, and the one line that says so."""

    out_dir: Path
    summary: str
    earlier_run: bool = False
    removed: list[str] = field(default_factory=list)

    def clear_earlier_run(self) -> None:
        """Remove the earlier run's report and plots, which would contradict the new lists
        (the lists, scores and manifest are replaced atomically by the new ones)."""
        if not self.earlier_run:
            return
        report = self.out_dir / REPORT_FILE
        if report.is_file() and is_our_report(report):
            report.unlink()
            self.removed.append(REPORT_FILE)
        plots = self.out_dir / REPORT_PLOTS
        for name in PLOT_FILES:
            if (plots / name).is_file():
                (plots / name).unlink()
                self.removed.append(f"{REPORT_PLOTS}/{name}")
        if plots.is_dir() and not any(plots.iterdir()):
            plots.rmdir()


def plan_output(out_dir: Path, format_tag: str, overwrite: bool = False) -> OutputPlan:
    """Decide, before any work, what a run may do in ``out_dir``; refuse what it may not."""
    check_writable(out_dir)
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return OutputPlan(out_dir, f"writing the results into the new folder {out_dir}")
    if is_our_manifest(out_dir / MANIFEST, format_tag):
        if not overwrite:
            raise OutputFolderError(
                f"out_dir {out_dir} holds the results of an earlier noisyclean run; pass "
                "overwrite=True to replace them (its score cache is reused), or choose "
                "another folder")
        return OutputPlan(out_dir, f"replacing the earlier run's results in {out_dir} (lists, "
                          "scores, manifest, report and plots; the score cache is reused)",
                          earlier_run=True)
    theirs = [name for name in (*RESULT_FILES, REPORT_FILE) if (out_dir / name).exists()]
    if (out_dir / REPORT_PLOTS).exists():
        theirs.append(REPORT_PLOTS)
    cache = out_dir / CACHE_DIR
    if cache.exists() and not _is_score_cache(cache):
        theirs.append(CACHE_DIR)
    if theirs:
        raise OutputFolderError(
            f"out_dir {out_dir} already holds {', '.join(theirs)}, which noisyclean did not "
            "write and never replaces; choose a new or empty folder")
    if cache.exists():
        return OutputPlan(out_dir, f"resuming the interrupted run in {out_dir} from its "
                          "score cache")
    return OutputPlan(out_dir, f"writing the results into {out_dir}; the files already "
                      "there are left untouched")


def check_own_target(path: Path, is_ours: Callable[[Path], bool], what: str,
                     option: str) -> None:
    """Refuse, before any work, to replace a file at ``path`` that noisyclean did not write
    (``is_ours`` recognises the ones it did); ``option`` names where to give another path."""
    if path.exists() and not (path.is_file() and is_ours(path)):
        raise OutputFolderError(f"the {what} path {path} holds a file noisyclean did not "
                                f"write; give another path with {option}")


def check_report_target(path: Path) -> None:
    """Refuse to replace an HTML file (or plots) that noisyclean did not write."""
    check_own_target(path, is_our_report, "report", "out=")
