"""The web viewer's data: the study as 8-bit slices with its labels, and PNGs rendered from them.

After an analysis the worker stores ``viewer.npz``: the image windowed to
8 bits (0.5th to 99.5th percentile of the whole cine) and the predicted labels,
both ``(frames, slices, rows, cols)``, with the pixel spacing, so that the
service renders a slice without reading the study again.
"""

from __future__ import annotations

import functools
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.labels import Label

__all__ = [
    "OVERLAY_COLOURS",
    "ViewerData",
    "load_viewer_data",
    "render_blended_png",
    "render_image_png",
    "render_overlay_png",
    "write_viewer_data",
]

#: RGBA of each label in the overlay (the viewer's legend uses the same colours).
OVERLAY_COLOURS: dict[str, tuple[int, int, int, int]] = {
    "lv": (230, 57, 70, 150),  # LV blood pool: red
    "myo": (46, 196, 182, 150),  # myocardium: teal
    "rv": (69, 123, 230, 150),  # RV blood pool: blue
}
_LABEL_VALUES = {"lv": int(Label.LV_BLOOD_POOL), "myo": int(Label.LV_MYOCARDIUM), "rv": int(Label.RV_BLOOD_POOL)}


@dataclass(frozen=True)
class ViewerData:
    """8-bit image and labels of a finished job."""

    image: np.ndarray
    """``(frames, slices, rows, cols)`` uint8."""
    labels: np.ndarray
    """``(frames, slices, rows, cols)`` uint8 (zeros in frames without labels)."""
    labelled: np.ndarray
    """``(frames,)`` bool: which frames have labels."""
    frame_numbers: np.ndarray
    pixel_spacing_mm: tuple[float, float]
    ed_index: int | None
    es_index: int | None

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """``(frames, slices, rows, cols)``."""
        return tuple(int(n) for n in self.image.shape)  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        """What the viewer needs to lay out its sliders."""
        frames, slices, rows, cols = self.shape
        return {
            "n_frames": frames,
            "n_slices": slices,
            "rows": rows,
            "cols": cols,
            "pixel_spacing_mm": list(self.pixel_spacing_mm),
            "frame_numbers": [int(f) for f in self.frame_numbers],
            "labelled_frames": [i for i in range(frames) if self.labelled[i]],
            "ed_index": self.ed_index,
            "es_index": self.es_index,
            "overlay_colours": {k: list(v) for k, v in OVERLAY_COLOURS.items()},
        }


def write_viewer_data(study: Any, path: Path) -> Path:
    """Store a segmented :class:`~opencmr.io.study.CineStudy` for the viewer (``viewer.npz``)."""
    image = np.asarray(study.image, dtype=np.float32)
    lo, hi = np.percentile(image, [0.5, 99.5])
    scaled = np.clip((image - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)
    image8 = np.round(scaled * 255).astype(np.uint8)
    labels = np.zeros(image.shape, dtype=np.uint8)
    labelled = np.zeros(image.shape[0], dtype=bool)
    frames = list(study.frame_numbers)
    if study.labels is not None:
        for k, number in enumerate(study.labels.frame_numbers):
            i = frames.index(number)
            labels[i] = np.asarray(study.labels.data[k], dtype=np.uint8)
            labelled[i] = True
    meta = study.metadata

    def index_of(frame: int | None) -> int:
        return frames.index(frame) if frame is not None and frame in frames else -1

    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(
        tmp,
        image=image8,
        labels=labels,
        labelled=labelled,
        frame_numbers=np.asarray(frames, dtype=np.int32),
        pixel_spacing_mm=np.asarray(study.geometry.pixel_spacing_mm, dtype=np.float64),
        ed_es=np.asarray([index_of(meta.ed_frame), index_of(meta.es_frame)], dtype=np.int32),
    )
    os.replace(tmp, path)
    return path


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime_ns: int) -> ViewerData:
    with np.load(path) as z:
        ed, es = (int(v) for v in z["ed_es"])
        return ViewerData(
            image=z["image"],
            labels=z["labels"],
            labelled=z["labelled"],
            frame_numbers=z["frame_numbers"],
            pixel_spacing_mm=(float(z["pixel_spacing_mm"][0]), float(z["pixel_spacing_mm"][1])),
            ed_index=None if ed < 0 else ed,
            es_index=None if es < 0 else es,
        )


def load_viewer_data(path: Path) -> ViewerData:
    """Read ``viewer.npz`` (the last few are kept in memory); FileNotFoundError when absent."""
    return _load(str(path), path.stat().st_mtime_ns)


def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=False, compress_level=3)
    return buffer.getvalue()


def render_image_png(data: ViewerData, frame: int, slice_: int) -> bytes:
    """One slice of one frame as an 8-bit grey PNG (rows down, columns across)."""
    return _png(np.ascontiguousarray(data.image[frame, slice_]))


def render_overlay_png(data: ViewerData, frame: int, slice_: int, show: tuple[str, ...] = ("lv", "myo", "rv")) -> bytes:
    """The labels of one slice as an RGBA PNG, transparent where unlabelled or not in ``show``."""
    labels = data.labels[frame, slice_]
    rgba = np.zeros((*labels.shape, 4), dtype=np.uint8)
    for name in show:
        rgba[labels == _LABEL_VALUES[name]] = OVERLAY_COLOURS[name]
    return _png(rgba)


def render_blended_png(data: ViewerData, frame: int, slice_: int) -> bytes:
    """One slice as an RGB PNG with every label blended in with its overlay colour."""
    rgb = np.repeat(data.image[frame, slice_].astype(np.float32)[..., None], 3, axis=2)
    labels = data.labels[frame, slice_]
    for name, value in _LABEL_VALUES.items():
        r, g, b, a = OVERLAY_COLOURS[name]
        mask = labels == value
        rgb[mask] = rgb[mask] * (1 - a / 255) + np.array([r, g, b], dtype=np.float32) * (a / 255)
    return _png(np.round(rgb).astype(np.uint8))
