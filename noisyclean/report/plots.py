"""The report's plots, drawn with matplotlib and returned as PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` directly rather than ``pyplot``:
no global figure state, no GUI backend, and nothing left open when a report is written from
a notebook or a worker thread. Every histogram bins all scores (``numpy`` bins 100,000
values in milliseconds); only the drawing is fixed-size.
"""

from __future__ import annotations

import io
import math

import numpy as np

KEPT, DROPPED, ANOMALY, NORMAL = "#4c78a8", "#e45756", "#d62728", "#54a24b"
IN_BAG, OUT_OF_BAG = "#9ecae9", "#f58518"
MAX_PANELS = 12
"""Sub-model histograms beyond this many are summarised in the text, not drawn."""


def _figure(width: float, height: float):
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError(
            "the report needs matplotlib and jinja2: pip install 'noisyclean[report]'"
        ) from exc
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    return buf.getvalue()


def _bins(values: np.ndarray, most: int = 80) -> np.ndarray:
    """Histogram edges for ``values``: numpy's rule, capped, and never empty."""
    v = values[np.isfinite(values)]
    if v.size == 0 or v.min() == v.max():
        centre = float(v[0]) if v.size else 0.0
        return np.linspace(centre - 0.5, centre + 0.5, 11)
    edges = np.histogram_bin_edges(v, bins="auto")
    if edges.size - 1 > most:
        edges = np.linspace(v.min(), v.max(), most + 1)
    return edges


def consensus_histogram(consensus: np.ndarray, keep_mask: np.ndarray, threshold: float,
                        labels: np.ndarray | None = None, normalize: str | None = None,
                        xlabel: str | None = None) -> bytes:
    """Histogram of every consensus score, split kept/dropped (or normal/anomaly when the
    labels are known), with the keep threshold as a vertical line. ``xlabel`` names what
    was ranked when it is not the consensus alone (the whole-image view's selection)."""
    fig = _figure(7.2, 3.6)
    ax = fig.add_subplot()
    edges = _bins(consensus)
    if labels is not None:
        groups = [(consensus[labels == 0], NORMAL, "normal (true label)"),
                  (consensus[labels == 1], ANOMALY, "anomaly (true label)")]
    else:
        groups = [(consensus[keep_mask], KEPT, "kept"), (consensus[~keep_mask], DROPPED,
                                                          "dropped")]
    ax.hist([g[0] for g in groups], bins=edges, stacked=True, color=[g[1] for g in groups],
            label=[f"{g[2]} ({g[0].size})" for g in groups], edgecolor="white", linewidth=0.3)
    ax.axvline(threshold, color="black", linestyle="--", linewidth=1.4,
               label=f"keep threshold ({threshold:.3g})")
    lo, hi = ax.get_xlim()
    ax.axvspan(threshold, max(hi, threshold), color=DROPPED, alpha=0.08, linewidth=0)
    ax.set_xlim(lo, hi)
    ax.set_xlabel(xlabel or f"consensus score ({normalize or 'raw'} scores, aggregated); "
                  "higher = more anomalous")
    ax.set_ylabel("samples")
    ax.set_ylim(0, ax.get_ylim()[1] * 1.22)  # headroom for the legend
    ax.legend(fontsize=8, loc="upper left", ncol=3, framealpha=0.9, edgecolor="none")
    ax.set_title(f"{'Selection scores' if xlabel else 'Consensus'} over {consensus.size} "
                 "samples: right of the line is dropped", fontsize=10)
    return _png(fig)


def submodel_histograms(scores: np.ndarray, membership: np.ndarray,
                        labels: np.ndarray | None = None) -> bytes:
    """One small histogram of raw scores per sub-model (at most :data:`MAX_PANELS`).

    The samples a sub-model trained on (in-bag) and the others (out-of-bag) are drawn apart:
    the gap between them is the learning bias the method relies on. With labels, the
    anomalies' scores are outlined on top.
    """
    m = min(scores.shape[0], MAX_PANELS)
    cols = min(m, 4)
    rows = math.ceil(m / cols)
    fig = _figure(2.6 * cols + 0.4, 2.1 * rows + 0.3)
    axes = fig.subplots(rows, cols, squeeze=False)
    for j in range(rows * cols):
        ax = axes[j // cols][j % cols]
        if j >= m:
            ax.set_visible(False)
            continue
        row = scores[j]
        seen = ~np.isnan(row)
        edges = _bins(row[seen])
        inbag, oob = row[seen & membership[j]], row[seen & ~membership[j]]
        parts = [(v, c, lab) for v, c, lab in ((inbag, IN_BAG, "in-bag"),
                                               (oob, OUT_OF_BAG, "out-of-bag")) if v.size]
        ax.hist([p[0] for p in parts], bins=edges, color=[p[1] for p in parts],
                label=[p[2] for p in parts], histtype="stepfilled", alpha=0.75)
        if labels is not None and (seen & (labels == 1)).any():
            ax.hist(row[seen & (labels == 1)], bins=edges, histtype="step", color=ANOMALY,
                    linewidth=1.2, label="anomalies")
        ax.set_title(f"sub-model {j} ({int(membership[j].sum())} trained)", fontsize=9)
        ax.tick_params(labelsize=7)
        if j == 0:
            ax.legend(frameon=False, fontsize=7)
    fig.supxlabel("raw score (each sub-model on its own scale)", fontsize=9)
    return _png(fig)


def agreement_heatmap(rho: np.ndarray) -> bytes:
    """The sub-models' Spearman rank correlation matrix as an annotated heat map."""
    m = rho.shape[0]
    side = min(1.6 + 0.55 * m, 7.0)
    fig = _figure(side + 1.0, side)
    ax = fig.add_subplot()
    im = ax.imshow(np.ma.masked_invalid(rho), vmin=-1, vmax=1, cmap="RdYlGn")
    if m <= 12:
        for i in range(m):
            for j in range(m):
                text = "n/a" if not np.isfinite(rho[i, j]) else f"{rho[i, j]:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8)
    ticks = range(m) if m <= 20 else range(0, m, max(1, m // 10))
    ax.set_xticks(list(ticks))
    ax.set_yticks(list(ticks))
    ax.set_xlabel("sub-model")
    ax.set_ylabel("sub-model")
    ax.set_title("Rank agreement (Spearman)", fontsize=10)
    fig.colorbar(im, ax=ax, shrink=0.8)
    return _png(fig)
