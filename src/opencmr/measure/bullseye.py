"""The AHA bull's-eye plot: one value per myocardial segment, as a colour-mapped polar map (PNG).

Layout (Cerqueira et al. 2002 [1]_): the LV seen from the apex, unrolled into
concentric rings -- basal segments 1-6 outside, mid 7-12, apical 13-16
inside, the apical cap 17 in the centre (drawn only when a value is given).
Segment 1 (basal anterior) is at the top, the septum (2, 3, 8, 9, 14) on the
left, numbering counter-clockwise. The angles are those of the *AHA angle* of
:mod:`opencmr.measure.thickness` (degrees, counter-clockwise from the right:
anterior 90, septum 180, inferior 270, lateral 0), so a segment's wedge is the
range of angles it covers there.

Each segment shows its number and value; segments without a finite value are
grey. matplotlib (not a core dependency of opencmr) draws on an Agg canvas
without touching pyplot's global state.

References
----------
.. [1] M. D. Cerqueira et al., "Standardized myocardial segmentation and
   nomenclature for tomographic imaging of the heart", Circulation 105(4),
   2002, pp. 539-542, doi:10.1161/hc0402.102975 (figure 2, the bull's-eye
   display).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

from opencmr.io._atomic import atomic_output

__all__ = ["NAN_COLOUR", "plot_bullseye", "segment_wedge"]

#: Fill of segments without a finite value.
NAN_COLOUR = "#b3b3b3"

#: Ring radii (inner, outer) of each level in plot units: apical cap, apical, mid, basal.
_RINGS = {"apex": (0.0, 1.0), "apical": (1.0, 2.0), "mid": (2.0, 3.0), "basal": (3.0, 4.0)}


def segment_wedge(segment: int) -> tuple[float, float, float, float]:
    """``(inner radius, outer radius, start deg, end deg)`` of a segment in the bull's-eye.

    Angles are counter-clockwise from the right (anterior 90, septum 180).

    Raises
    ------
    ValueError
        ``segment`` is not 1-17.

    Examples
    --------
    >>> segment_wedge(1)
    (3.0, 4.0, 60.0, 120.0)
    >>> segment_wedge(14)
    (1.0, 2.0, 135.0, 225.0)
    """
    if isinstance(segment, bool) or int(segment) != segment or not 1 <= segment <= 17:
        raise ValueError(f"AHA segments are numbered 1-17, got {segment!r}")
    segment = int(segment)
    if segment == 17:
        return (*_RINGS["apex"], 0.0, 360.0)
    if segment >= 13:
        start = 45.0 + 90.0 * (segment - 13)
        return (*_RINGS["apical"], start, start + 90.0)
    ring = _RINGS["basal"] if segment <= 6 else _RINGS["mid"]
    start = 60.0 + 60.0 * ((segment - 1) % 6)
    return (*ring, start, start + 60.0)


def _checked_values(values: Mapping[int, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for key, value in values.items():
        segment_wedge(key)  # raises for a key that is not a segment
        number = float("nan") if value is None else float(value)
        out[int(key)] = number
    return out


def plot_bullseye(
    values: Mapping[int, float],
    path: str | os.PathLike[str],
    title: str,
    unit: str,
    vmin: float | None = None,
    vmax: float | None = None,
    *,
    cmap: str = "viridis",
    decimals: int = 1,
    overwrite: bool = False,
) -> Path:
    """Draw the AHA bull's-eye of per-segment values and write it as a PNG.

    Parameters
    ----------
    values : mapping of int to float
        Segment number (1-16, optionally 17) to value; missing segments,
        None and NaN are drawn grey without a value.
    path : str or PathLike
        The PNG to write.
    title : str
        Plot title.
    unit : str
        Unit of the values, for the colour-bar label (e.g. ``"mm"``, ``"%"``).
    vmin, vmax : float, optional
        Colour-scale limits; by default the range of the finite values.
    cmap : str
        matplotlib colour map.
    decimals : int
        Decimals of the values written in the segments.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    ValueError
        A key is not a segment number 1-17, or ``vmin >= vmax``.
    ImportError
        matplotlib is not installed (``pip install matplotlib``).
    opencmr.errors.OutputError
        ``path`` exists and ``overwrite`` is False, or cannot be written.
    """
    data = _checked_values(values)
    try:
        from matplotlib import colormaps
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize
        from matplotlib.figure import Figure
        from matplotlib.patches import Wedge
    except ImportError as exc:  # pragma: no cover - matplotlib is installed in the test environment
        raise ImportError("plot_bullseye needs matplotlib: pip install matplotlib") from exc

    finite = [v for v in data.values() if math.isfinite(v)]
    low = vmin if vmin is not None else (min(finite) if finite else 0.0)
    high = vmax if vmax is not None else (max(finite) if finite else 1.0)
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise ValueError(f"vmin must be below vmax, got {vmin} and {vmax}")
    if not high > low:  # one value, or all equal: centre it on the scale
        low, high = low - 0.5, high + 0.5
    norm = Normalize(vmin=low, vmax=high)
    colours = colormaps[cmap]

    fig = Figure(figsize=(5.6, 4.8), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.02, 0.04, 0.74, 0.84))
    ax.set_aspect("equal")
    ax.set_xlim(-4.3, 4.3)
    ax.set_ylim(-4.3, 4.3)
    ax.axis("off")
    segments = list(range(1, 17)) + ([17] if 17 in data else [])
    for segment in segments:
        inner, outer, start, end = segment_wedge(segment)
        value = data.get(segment, float("nan"))
        fill = colours(norm(value)) if math.isfinite(value) else NAN_COLOUR
        ax.add_patch(
            Wedge((0.0, 0.0), outer, start, end, width=outer - inner, facecolor=fill, edgecolor="white", linewidth=1.5)
        )
        middle = math.radians(0.5 * (start + end))
        radius = 0.5 * (inner + outer) if segment != 17 else 0.0
        x, y = radius * math.cos(middle), radius * math.sin(middle)
        label = f"{segment}\n{value:.{decimals}f}" if math.isfinite(value) else f"{segment}\n\u2013"
        red, green, blue = fill[:3] if not isinstance(fill, str) else (0.7, 0.7, 0.7)
        luminance = 0.299 * red + 0.587 * green + 0.114 * blue
        ax.text(x, y, label, ha="center", va="center", fontsize=8, color="black" if luminance > 0.5 else "white")
    if 17 not in data:
        ax.add_patch(Wedge((0.0, 0.0), 1.0, 0.0, 360.0, facecolor="white", edgecolor="0.6", linewidth=0.8))
    for text, (x, y) in (("anterior", (0.0, 4.15)), ("inferior", (0.0, -4.15))):
        ax.text(x, y, text, ha="center", va="bottom" if y > 0 else "top", fontsize=7, color="0.35")
    ax.text(-4.15, 0.0, "septal", ha="right", va="center", fontsize=7, color="0.35", rotation=90)
    ax.text(4.15, 0.0, "lateral", ha="left", va="center", fontsize=7, color="0.35", rotation=90)
    ax.set_title(title, fontsize=10, pad=16)
    scale = fig.add_axes((0.8, 0.12, 0.04, 0.68))
    fig.colorbar(ScalarMappable(norm=norm, cmap=colours), cax=scale, label=unit)
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        fig.savefig(tmp, format="png")
    return target
