"""The summary ROC plot of a bivariate (Reitsma) meta-analysis, as mada's ``plot.reitsma`` draws it.

Study points (area proportional to the number of subjects), the
Rutter-Gatsonis SROC curve over the observed FPR range, the summary point
with its confidence region and the prediction region, in FPR
(1 - specificity) against sensitivity; optional labelled extra points (for
example this software's own cross-validated operating point) on the plot of
the literature.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from opencmr.io._atomic import atomic_output
from opencmr.meta.bivariate import Reitsma
from opencmr.meta.data import DtaStudies

__all__ = ["plot_sroc"]

_FORMATS = {".png": "png", ".svg": "svg"}


def plot_sroc(
    result: Reitsma,
    studies: DtaStudies,
    path: str | os.PathLike[str],
    *,
    extra_points: Mapping[str, tuple[float, float]] | None = None,
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Draw the SROC plot of ``result`` fitted to ``studies`` and write it as PNG or SVG (by suffix).

    Parameters
    ----------
    result : Reitsma
        A fit without covariate (a meta-regression has no single SROC curve).
    studies : DtaStudies
        The studies it was fitted to (their uncorrected sensitivity and FPR are plotted).
    path : str or PathLike
        ``.png`` or ``.svg``; written atomically.
    extra_points : mapping of str to (sensitivity, fpr), optional
        Labelled points to add, e.g. ``{"opencmr (ACDC CV)": (0.93, 0.05)}``.
    title : str, optional
    overwrite : bool
        Replace an existing file (refused by default).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        A meta-regression result, studies that do not match the result, an
        unknown suffix, or extra points outside [0, 1].
    OutputError
        ``path`` exists and ``overwrite`` is False, or cannot be written.
    """
    target = Path(path)
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"{target}: the SROC plot is written as .png or .svg, not {target.suffix or 'no suffix'!r}")
    if result.sensitivity is None or result.confidence_region is None:
        raise ValueError("the SROC plot needs a fit without covariate (a meta-regression has no single summary point)")
    if tuple(studies.ids) != tuple(result.ids):
        raise ValueError("the studies are not those the result was fitted to")
    extra = dict(extra_points or {})
    for label, (sens, fpr) in extra.items():
        if not (0 <= sens <= 1 and 0 <= fpr <= 1):
            raise ValueError(f"extra point {label!r}: sensitivity {sens} and FPR {fpr} must lie in [0, 1]")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = studies.counts()
    n = counts.sum(axis=1)
    sens_i = counts[:, 0] / (counts[:, 0] + counts[:, 2])
    fpr_i = counts[:, 1] / (counts[:, 1] + counts[:, 3])
    sizes = 20 + 280 * n / n.max()

    fig, ax = plt.subplots(figsize=(5.6, 5.6), dpi=120)
    ax.scatter(
        fpr_i,
        sens_i,
        s=sizes,
        facecolors="none",
        edgecolors="0.35",
        linewidths=1,
        label=f"studies (k = {studies.k}; area ~ n)",
        zorder=2,
        clip_on=False,
    )
    lo, hi = result.observed_fpr_range
    if result.hsroc is not None and np.isfinite(result.hsroc.beta) and hi > lo:
        grid = np.linspace(max(lo, 1e-4), min(hi, 1 - 1e-4), 200)
        auc = f", AUC {result.auc:.3f}" if result.auc is not None else ""
        ax.plot(grid, result.sroc(grid), color="#1f4e79", linewidth=2, label=f"SROC (Rutter-Gatsonis{auc})", zorder=3)
    percent = f"{100 * result.level:g}%"
    ax.plot(*result.confidence_region.T, color="#c0392b", linewidth=1.5, label=f"{percent} confidence region", zorder=3)
    ax.plot(
        *result.prediction_region.T,
        color="#c0392b",
        linewidth=1.2,
        linestyle="--",
        label=f"{percent} prediction region",
        zorder=3,
    )
    ax.plot(
        result.fpr.estimate,
        result.sensitivity.estimate,
        marker="D",
        color="#c0392b",
        markersize=8,
        linestyle="none",
        zorder=4,
        label=f"summary: sens {result.sensitivity.estimate:.2f}, spec {result.specificity.estimate:.2f}",
    )
    markers = ["*", "P", "X", "^", "v", "s"]
    colours = ["#e67e22", "#27ae60", "#8e44ad", "#16a085", "#d35400", "#2c3e50"]
    for i, (label, (sens, fpr)) in enumerate(extra.items()):
        ax.plot(
            fpr,
            sens,
            marker=markers[i % len(markers)],
            color=colours[i % len(colours)],
            markersize=13,
            markeredgecolor="black",
            markeredgewidth=0.6,
            linestyle="none",
            label=label,
            zorder=5,
        )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_aspect("equal")
    ax.set_xlabel("false positive rate (1 - specificity)")
    ax.set_ylabel("sensitivity")
    method = result.method.value.upper()
    ax.set_title(title or f"Bivariate model (Reitsma, {method}): summary ROC", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7.5, frameon=True, framealpha=0.9, markerscale=0.6)
    fig.tight_layout()
    with atomic_output(target, overwrite) as tmp:
        fig.savefig(tmp, format=fmt)
    plt.close(fig)
    return target
