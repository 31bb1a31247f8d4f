"""Pictures of a meta-analysis: paired forest plot of sensitivity and specificity.

Each function is self-contained (its own figure, written atomically, PNG or
SVG by the file suffix, refusing to overwrite unless asked).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.io._atomic import atomic_output
from opencmr.meta.per_study import PerStudy
from opencmr.meta.pooling import Pooled

__all__ = ["plot_paired_forest"]

_FORMATS = {".png": "png", ".svg": "svg"}


def _format_of(path: Path) -> str:
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: the plot is written as PNG or SVG; use a .png or .svg file name")
    return fmt


def _pooled_pair(pooled: Any, model: str) -> tuple[Pooled, Pooled] | None:
    if pooled is None:
        return None
    if isinstance(pooled, tuple | list):
        sens, spec = pooled
        return sens, spec
    if model not in ("fixed", "random"):
        raise ValueError(f"model must be 'fixed' or 'random', got {model!r}")
    return getattr(pooled.sensitivity, model), getattr(pooled.specificity, model)


def plot_paired_forest(
    per_study: PerStudy,
    pooled: Any,
    path: str | os.PathLike[str],
    *,
    model: str = "random",
    title: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Forest plot of sensitivity | specificity side by side, one row per study, the pooled estimate as a diamond.

    Parameters
    ----------
    per_study : PerStudy
        Per-study estimates and CIs (:func:`opencmr.meta.per_study.per_study`).
    pooled : UnivariateDta or (Pooled, Pooled) or None
        The pooled sensitivity and specificity: a
        :class:`~opencmr.meta.univariate.UnivariateDta` (its ``model``
        estimates are drawn), a pair of :class:`~opencmr.meta.pooling.Pooled`,
        or None for no summary row.
    path : str or PathLike
        ``.png`` or ``.svg``.
    model : {"random", "fixed"}
        Which pooled estimate of a ``UnivariateDta`` to draw.
    title : str, optional
    overwrite : bool
        Replace an existing file (default: refuse).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    ValueError
        Unsupported file suffix.
    OutputError
        The file exists (and ``overwrite`` is False) or cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    target = Path(path)
    fmt = _format_of(target)
    pair = _pooled_pair(pooled, model)
    k = per_study.k
    rows = np.arange(k)[::-1] + (2 if pair else 0)  # study i at height rows[i]; the summary at 0
    height = 0.32 * (len(rows) + (2 if pair else 0)) + 1.4
    fig, axes = plt.subplots(1, 2, figsize=(11, height), dpi=120, sharey=True)
    panels = (
        ("Sensitivity", per_study.sensitivity, per_study.sensitivity_ci, pair[0] if pair else None),
        ("Specificity", per_study.specificity, per_study.specificity_ci, pair[1] if pair else None),
    )
    for ax, (name, est, ci, summary) in zip(axes, panels):
        ax.hlines(rows, ci[:, 0], ci[:, 1], color="0.25", linewidth=1.1)
        ax.plot(est, rows, "s", color="#2471a3", markersize=5)
        for y, e, (lo, hi) in zip(rows, est, ci):
            ax.text(
                1.03,
                y,
                f"{e:.2f} [{lo:.2f}, {hi:.2f}]",
                transform=ax.get_yaxis_transform(),
                va="center",
                ha="left",
                fontsize=8,
                family="monospace",
            )
        if summary is not None:
            value, (lo, hi) = summary.value, summary.value_ci
            ax.add_patch(
                Polygon(
                    [(lo, 0), (value, 0.35), (hi, 0), (value, -0.35)],
                    closed=True,
                    facecolor="#c0392b",
                    edgecolor="#7b241c",
                )
            )
            ax.axvline(value, color="#c0392b", linestyle=":", linewidth=0.8)
            ax.text(
                1.03,
                0,
                f"{value:.2f} [{lo:.2f}, {hi:.2f}]",
                transform=ax.get_yaxis_transform(),
                va="center",
                ha="left",
                fontsize=8,
                family="monospace",
                fontweight="bold",
            )
        ax.text(
            1.03,
            max(rows) + 1,
            f"estimate [{round(100 * per_study.level)}% CI]",
            transform=ax.get_yaxis_transform(),
            va="center",
            ha="left",
            fontsize=8,
            color="0.3",
        )
        ax.set_xlim(0, 1)
        ax.set_xlabel(name)
        ax.grid(axis="x", alpha=0.3)
        ax.tick_params(axis="y", length=0)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
    labels = list(per_study.ids)
    ticks = list(rows)
    if pair:
        kind = "random effects, DL" if "DerSimonian" in pair[0].method else pair[0].method
        labels.append(f"Pooled ({kind})")
        ticks.append(0)
    axes[0].set_yticks(ticks, labels, fontsize=8)
    axes[0].set_ylim(-1 if pair else -0.8, max(ticks) + 1.6)
    level = round(100 * per_study.level)
    fig.suptitle(
        title or f"Sensitivity and specificity with {level}% CIs ({per_study.proportion_ci.value})", fontsize=11
    )
    fig.subplots_adjust(
        left=0.2, right=0.86, wspace=0.42, bottom=max(0.06, 0.7 / height), top=1 - max(0.05, 0.55 / height)
    )
    with atomic_output(target, overwrite) as tmp:
        fig.savefig(tmp, format=fmt)
    plt.close(fig)
    return target
