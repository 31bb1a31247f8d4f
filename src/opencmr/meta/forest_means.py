"""Forest plot of a continuous-metric meta-analysis (:class:`~opencmr.meta.continuous.MeanPooling`).

One row per study (estimate and CI; the square's area proportional to its
weight), the pooled estimate as a diamond spanning its CI, and the prediction
interval as a line below it, with labels, ``n``, ``estimate [CI]`` and weights
as text. Everything is drawn on the scale of the metric (back-transformed when
the pooling was on the logit scale).
"""

from __future__ import annotations

import os
from pathlib import Path

from opencmr.io._atomic import atomic_output
from opencmr.meta.continuous import EffectMeasure, MeanPooling

__all__ = ["plot_mean_forest"]

_FORMATS = {".png": "png", ".svg": "svg"}


def plot_mean_forest(
    result: MeanPooling,
    path: str | os.PathLike[str],
    *,
    xlabel: str | None = None,
    title: str | None = None,
    null_value: float | None = None,
    digits: int = 3,
    overwrite: bool = False,
) -> Path:
    """Draw the forest plot of ``result`` to ``path`` (PNG or SVG, by suffix), atomically.

    Parameters
    ----------
    xlabel, title : str, optional
        Axis label (default from the measure) and title (default: k, method, τ², I²).
    null_value : float, optional
        Where to draw a vertical reference line; default 0 for a mean difference, none otherwise.
    digits : int
        Decimals of the numbers printed beside the rows.
    overwrite : bool
        Replace an existing file (refused by default).

    Raises
    ------
    ValueError
        ``path`` does not end in ``.png`` or ``.svg``.
    OutputError
        ``path`` exists and ``overwrite`` is False, or cannot be written.
    """
    target = Path(path)
    fmt = _FORMATS.get(target.suffix.lower())
    if fmt is None:
        raise ValueError(f"{target}: forest plot must be .png or .svg, not {target.suffix or 'no suffix'!r}")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Polygon

    k = result.k
    if null_value is None and result.measure is EffectMeasure.MD:
        null_value = 0.0
    if xlabel is None:
        xlabel = {EffectMeasure.MD: "mean difference", EffectMeasure.MN: "mean"}.get(result.measure, "effect")
        if result.logit:
            xlabel += " (pooled on the logit scale, back-transformed)"
    if title is None:
        title = (
            f"{k} studies, {result.method_label}: τ² = {result.tau2:.3g}"
            f"{' (logit scale)' if result.logit else ''}, I² = {result.i2:.1f}%"
        )

    fmt_num = f"{{:.{digits}f}}"
    study_ci = result.study_ci()
    rows_y = [k - i + 1.0 for i in range(k)]  # studies from the top down to y = 2
    pooled_y, pi_y = 0.8, -0.2
    height = 1.4 + 0.28 * (k + 4)
    fig, ax = plt.subplots(figsize=(9.0, height), dpi=120)

    w_max = max(result.weights)
    for y, est, (low, high), w in zip(rows_y, (result.back_transform(v) for v in result.yi), study_ci, result.weights):
        ax.plot([low, high], [y, y], color="0.25", linewidth=1.0, solid_capstyle="butt")
        ax.scatter([est], [y], marker="s", s=12 + 110 * w / w_max, color="#2471a3", zorder=3, linewidths=0)

    est, (c_low, c_high) = result.estimate, result.estimate_ci
    ax.add_patch(
        Polygon([(c_low, pooled_y), (est, pooled_y + 0.3), (c_high, pooled_y), (est, pooled_y - 0.3)],
                closed=True, color="#c0392b", zorder=3)
    )
    p_low, p_high = result.prediction_interval
    ax.plot([p_low, p_high], [pi_y, pi_y], color="#c0392b", linewidth=1.6)
    ax.plot([p_low, p_low], [pi_y - 0.15, pi_y + 0.15], color="#c0392b", linewidth=1.6)
    ax.plot([p_high, p_high], [pi_y - 0.15, pi_y + 0.15], color="#c0392b", linewidth=1.6)
    ax.axvline(est, color="#c0392b", linestyle=":", linewidth=0.8, zorder=1)
    if null_value is not None:
        ax.axvline(null_value, color="0.4", linestyle="-", linewidth=0.8, zorder=1)
    ax.axhline(1.5, color="0.8", linewidth=0.6)

    pooled_label = f"pooled ({result.method.name})"
    pi_label = f"{round(result.level * 100)}% prediction interval"
    labels = list(result.labels) + [pooled_label, pi_label]
    ax.set_yticks(rows_y + [pooled_y, pi_y], labels=labels, fontsize=8)
    ax.get_yticklabels()[-2].set_fontweight("bold")
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(pi_y - 0.7, k + 2.4)
    for spine in ("left", "right", "top"):
        ax.spines[spine].set_visible(False)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_title(title, fontsize=9, loc="left")

    # the numbers as one monospace column of fixed-width fields, so they line up at any size
    sizes = [str(v) for v in result.n] if result.n is not None else [""] * k
    total = str(sum(result.n)) if result.n is not None else ""
    ests = [fmt_num.format(result.back_transform(v)) for v in result.yi] + [fmt_num.format(est), ""]
    cis = [f"[{fmt_num.format(lo)}, {fmt_num.format(hi)}]" for lo, hi in study_ci]
    cis += [f"[{fmt_num.format(c_low)}, {fmt_num.format(c_high)}]", f"[{fmt_num.format(p_low)}, {fmt_num.format(p_high)}]"]
    weights = [f"{w:.1f}%" for w in result.weights] + ["100%", ""]
    level = round(result.level * 100)
    header = ("n", "estimate", f"{level}% CI", "weight")
    columns = [sizes + [total, ""], ests, cis, weights]
    widths = [max(len(h), *(len(c) for c in col)) for h, col in zip(header, columns)]

    def line(cells: tuple[str, ...] | list[str]) -> str:
        return "  ".join(c.rjust(w) if i != 2 else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    trans = ax.get_yaxis_transform()  # x in axes fraction, y in data
    text = {"transform": trans, "fontsize": 8, "va": "center", "family": "monospace"}
    ax.text(1.02, k + 1.9, line(header), fontweight="bold", **text)
    for i, y in enumerate(rows_y + [pooled_y, pi_y]):
        ax.text(1.02, y, line([col[i] for col in columns]), fontweight="bold" if y == pooled_y else "normal", **text)

    char_in = 8 / 72 * 0.62  # width of a monospace character at 8 pt, inches
    text_in = (sum(widths) + 2 * (len(widths) - 1) + 5) * char_in
    label_in = max(len(s) for s in labels) * char_in * 0.95 + 0.25
    fig.set_size_inches(max(7.0, label_in + text_in + 4.5), height)
    width = fig.get_size_inches()[0]
    fig.subplots_adjust(left=label_in / width, right=1 - text_in / width, top=1 - 0.45 / height, bottom=0.55 / height)
    with atomic_output(target, overwrite) as tmp:
        fig.savefig(tmp, format=fmt)
    plt.close(fig)
    return target
