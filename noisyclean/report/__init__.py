"""The HTML report of a purification: what was removed, why, and how sure the sub-models were.

:func:`write_report` renders a fitted :class:`~noisyclean.Purifier` (also reachable as
``purifier.report(dataset, path)``); :func:`report_from_run` rebuilds everything from the
output folder of ``noisyclean purify`` (the ``noisyclean report OUT_DIR`` command). The page is
one self-contained HTML file (no network), and its plots are also written as PNG files.

Modules, one job each: :mod:`.analysis` (the numbers), :mod:`.plots` (matplotlib),
:mod:`.images` (thumbnails and overlays), :mod:`.maps` (where anomaly maps come from),
:mod:`.writer` (assembling the page) and :mod:`.run` (reading a run folder).
"""

from noisyclean.report.run import report_from_run
from noisyclean.report.writer import write_report

__all__ = ["report_from_run", "write_report"]
