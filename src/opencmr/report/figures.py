"""The report's pictures as PNG bytes and ``data:`` URIs: segmentation overlays, volume curve, bull's-eyes.

Every picture is drawn with matplotlib on an Agg canvas (no pyplot state for
the overlays) and returned as bytes, so the report embeds it and needs no file
beside it. The volume curve and the bull's-eyes are drawn by the library's own
functions (:func:`opencmr.measure.plots.plot_volume_curve`,
:func:`opencmr.measure.bullseye.plot_bullseye`) into a temporary folder and
read back: one implementation per picture.

Overlays are small on purpose: a heart-centred crop shared by every slice of
the study, drawn at :data:`OVERLAY_PIXELS` pixels, about 25-40 kB per slice.
"""

from __future__ import annotations

import base64
import io
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from opencmr.io.study import CineStudy
from opencmr.labels import Label
from opencmr.measure.function import Measurements

__all__ = [
    "LABEL_COLOURS",
    "OVERLAY_PIXELS",
    "Crop",
    "bullseye_pngs",
    "data_uri",
    "heart_crop",
    "slice_overlay_png",
    "volume_curve_png",
]

#: Width (and height) of one slice overlay in pixels.
OVERLAY_PIXELS = 200

#: Colour of each structure in the overlays and their legend.
LABEL_COLOURS: dict[Label, str] = {
    Label.LV_BLOOD_POOL: "#e74c3c",
    Label.LV_MYOCARDIUM: "#2ecc71",
    Label.RV_BLOOD_POOL: "#3498db",
}

#: Opacity of the structure colours over the image.
FILL_ALPHA = 0.35


def data_uri(png: bytes) -> str:
    """``data:image/png;base64,...`` for embedding PNG bytes in HTML.

    Examples
    --------
    >>> data_uri(b"\\x89PNG")
    'data:image/png;base64,iVBORw=='
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@dataclass(frozen=True)
class Crop:
    """Row and column ranges ``[row0, row1) x [col0, col1)`` of the in-plane grid."""

    row0: int
    row1: int
    col0: int
    col1: int


def heart_crop(
    labels: np.ndarray, shape: tuple[int, int], spacing: tuple[float, float], margin_mm: float = 25.0
) -> Crop:
    """A square (in mm) crop around every labelled voxel of ``labels`` ``(..., rows, cols)``, plus ``margin_mm``.

    The whole grid when nothing is labelled. The crop is clipped to the grid.

    Examples
    --------
    >>> labels = np.zeros((1, 100, 100), np.uint8)
    >>> labels[0, 40:60, 45:55] = 3
    >>> heart_crop(labels, (100, 100), (1.0, 1.0), margin_mm=10)
    Crop(row0=30, row1=70, col0=30, col1=70)
    """
    rows, cols = shape
    found = np.nonzero(np.asarray(labels).reshape(-1, rows, cols).any(axis=0))
    if found[0].size == 0:
        return Crop(0, rows, 0, cols)
    row_mm, col_mm = spacing
    centre = ((found[0].min() + found[0].max() + 1) / 2 * row_mm, (found[1].min() + found[1].max() + 1) / 2 * col_mm)
    half = max((found[0].max() + 1 - found[0].min()) * row_mm, (found[1].max() + 1 - found[1].min()) * col_mm) / 2
    half += margin_mm

    def span(middle_mm: float, step: float, size: int) -> tuple[int, int]:
        lo, hi = int(np.floor((middle_mm - half) / step)), int(np.ceil((middle_mm + half) / step))
        return max(lo, 0), min(hi, size)

    r0, r1 = span(centre[0], row_mm, rows)
    c0, c1 = span(centre[1], col_mm, cols)
    return Crop(r0, r1, c0, c1)


def slice_overlay_png(
    image: np.ndarray,
    labels: np.ndarray | None,
    spacing: tuple[float, float],
    window: tuple[float, float],
    *,
    pixels: int = OVERLAY_PIXELS,
) -> bytes:
    """One slice (``(rows, cols)``, already cropped) in grey with the structures in translucent colour and outlined.

    Parameters
    ----------
    image : numpy.ndarray
        Intensities of the slice.
    labels : numpy.ndarray, optional
        Labels of the same shape (ACDC values); None for the image alone.
    spacing : tuple of float
        ``(row, col)`` spacing in mm: the pixels are drawn with their true aspect.
    window : tuple of float
        Intensities shown as black and white.
    pixels : int
        Width and height of the PNG.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure

    dpi = 100
    fig = Figure(figsize=(pixels / dpi, pixels / dpi), dpi=dpi, facecolor="black")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor("black")
    aspect = spacing[0] / spacing[1]
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], aspect=aspect, interpolation="bilinear")
    if labels is not None:
        overlay = np.zeros((*labels.shape, 4), np.float32)
        for label, colour in LABEL_COLOURS.items():
            mask = labels == int(label)
            if mask.any():
                overlay[mask] = (*to_rgba(colour)[:3], FILL_ALPHA)
                ax.contour(mask.astype(np.float32), levels=[0.5], colors=[colour], linewidths=1.0)
        ax.imshow(overlay, aspect=aspect, interpolation="nearest")
    ax.set_axis_off()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="black")
    return buffer.getvalue()


def intensity_window(image: np.ndarray) -> tuple[float, float]:
    """Percentiles 1 and 99.5 of ``image``: the grey scale shared by the slices of a phase."""
    lo, hi = np.percentile(np.asarray(image, dtype=np.float64), (1.0, 99.5))
    return float(lo), float(max(hi, lo + 1e-6))


def phase_overlays(study: CineStudy, frame: int, crop: Crop) -> list[bytes]:
    """PNG of every slice of ``frame`` (an acquisition frame number) with its labels, in slice order."""
    volume = study.frame(frame)
    labels = None
    if study.labels is not None and frame in study.labels.frame_numbers:
        labels = study.labels.frame(frame)
    window = intensity_window(volume[:, crop.row0 : crop.row1, crop.col0 : crop.col1])
    spacing = study.geometry.pixel_spacing_mm
    return [
        slice_overlay_png(
            volume[s, crop.row0 : crop.row1, crop.col0 : crop.col1],
            None if labels is None else labels[s, crop.row0 : crop.row1, crop.col0 : crop.col1],
            spacing,
            window,
        )
        for s in range(volume.shape[0])
    ]


def volume_curve_png(measurements: Measurements, frame_times_ms: Sequence[float] | None) -> bytes | None:
    """The volume curve drawn by :func:`~opencmr.measure.plots.plot_volume_curve`, or None below three frames."""
    from opencmr.measure.plots import plot_volume_curve

    curve = measurements.curve
    if len(curve.frame_numbers) < 3:
        return None
    times = None
    if frame_times_ms is not None and len(frame_times_ms) == len(curve.frame_numbers):
        times = frame_times_ms
    with tempfile.TemporaryDirectory() as folder:
        path = plot_volume_curve(curve, measurements.phases, Path(folder) / "curve.png", frame_times_ms=times)
        return path.read_bytes()


def bullseye_pngs(measurements: Measurements) -> dict[str, bytes]:
    """End-diastolic wall thickness and systolic thickening bull's-eyes (empty when thickness was not measured).

    Drawn with the same titles, units and colour scales as ``opencmr analyze``'s PNG files.
    """
    from opencmr.measure.bullseye import plot_bullseye

    thickening = measurements.thickening
    if thickening is None:
        return {}
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        thickness = plot_bullseye(
            thickening.ed.mean_mm, base / "thickness.png", "End-diastolic wall thickness", "mm", vmin=0.0
        )
        percent = plot_bullseye(
            thickening.percent, base / "thickening.png", "Systolic wall thickening", "%", cmap="RdYlGn"
        )
        return {"wall_thickness": thickness.read_bytes(), "thickening": percent.read_bytes()}
