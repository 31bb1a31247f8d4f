"""The study model every opencmr capability works on.

Array layout
------------
Image and label arrays are indexed ``[frame, slice, row, col]``:

* ``frame`` -- cardiac phase, in temporal order;
* ``slice`` -- position along the short-axis slice normal, in the order of the
  third column of the affine (for DICOM input: ascending along
  ``row_direction x column_direction``);
* ``row``, ``col`` -- the in-plane pixel grid (DICOM rows and columns).

This is the NIfTI ``(x, y, z, t)`` array transposed: ``array[f, s, r, c] ==
nifti[c, r, s, f]``.

Geometry
--------
:class:`Geometry` keeps a NIfTI-convention affine that maps the voxel index
``(col, row, slice)`` to patient coordinates in millimetres, RAS+ (DICOM's
LPS coordinates with the first two axes negated). Spacings are derived from
it, so the slice spacing is the distance between slice centres (the position
pitch), which may differ from the slice thickness (a gap between slices).

Label maps are a separate type, :class:`LabelMap`, so that they can never be
intensity-normalised or linearly interpolated by mistake.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.labels import LABEL_VALUES, DiagnosticGroup

__all__ = ["CineStudy", "Geometry", "LabelMap", "StudyMetadata"]


def _read_only(array: np.ndarray) -> np.ndarray:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Geometry:
    """Voxel grid of a short-axis stack in patient space.

    Parameters
    ----------
    affine : numpy.ndarray
        ``(4, 4)`` matrix mapping ``(col, row, slice, 1)`` to RAS+ millimetres.
    shape : tuple of int
        ``(slices, rows, cols)``.
    slice_thickness_mm : float, optional
        Nominal slice thickness when the source records it; independent of the
        slice spacing.
    """

    affine: np.ndarray
    shape: tuple[int, int, int]
    slice_thickness_mm: float | None = None

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {affine.shape}")
        if not np.all(np.isfinite(affine)):
            raise ValueError("affine contains NaN or infinite values")
        if len(self.shape) != 3 or any(int(n) < 1 for n in self.shape):
            raise ValueError(f"shape must be three positive sizes (slices, rows, cols), got {self.shape}")
        norms = np.linalg.norm(affine[:3, :3], axis=0)
        if np.any(norms <= 0) or abs(np.linalg.det(affine[:3, :3])) <= 1e-12:
            raise ValueError(f"affine has a zero voxel size or is singular: spacings {norms.tolist()}")
        object.__setattr__(self, "affine", _read_only(affine))
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing in mm along the array axes ``(slice, row, col)``."""
        col, row, sl = np.linalg.norm(self.affine[:3, :3], axis=0)
        return float(sl), float(row), float(col)

    @property
    def slice_spacing_mm(self) -> float:
        """Distance between the centres of adjacent slices, in mm."""
        return self.spacing[0]

    @property
    def pixel_spacing_mm(self) -> tuple[float, float]:
        """In-plane spacing ``(between rows, between columns)`` in mm, as DICOM PixelSpacing."""
        return self.spacing[1], self.spacing[2]

    @property
    def voxel_volume_ml(self) -> float:
        """Volume of one voxel in millilitres: ``|det(affine[:3, :3])| / 1000`` (spacing product for orthogonal grids)."""
        return float(abs(np.linalg.det(np.asarray(self.affine[:3, :3])))) / 1000.0

    @property
    def directions(self) -> np.ndarray:
        """Unit vectors (RAS+) of the col, row and slice axes, as the columns of a 3x3 matrix."""
        m = np.asarray(self.affine[:3, :3])
        return m / np.linalg.norm(m, axis=0)

    def same_grid(self, other: Geometry, atol: float = 1e-3) -> bool:
        """Whether ``other`` has the same shape and (to ``atol`` mm) the same affine."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol))

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly description (spacing, shape, affine)."""
        return {
            "shape_slices_rows_cols": list(self.shape),
            "spacing_mm_slice_row_col": [round(v, 6) for v in self.spacing],
            "slice_thickness_mm": self.slice_thickness_mm,
            "affine_ras": np.asarray(self.affine).round(6).tolist(),
        }


@dataclass(frozen=True)
class StudyMetadata:
    """What is known about the patient and acquisition.

    Frame indices (``ed_frame``, ``es_frame``) are 0-based acquisition frame
    numbers, the same numbers as :attr:`CineStudy.frame_numbers` (ACDC's
    1-based ``Info.cfg`` values are converted on reading).
    """

    source: Path | None = None
    source_format: str | None = None
    patient_id: str | None = None
    patient_name: str | None = None
    study_uid: str | None = None
    study_date: str | None = None
    """Date of the study as the input records it, ISO ``YYYY-MM-DD`` (DICOM StudyDate); None when it has none."""
    series_uid: str | None = None
    series_description: str | None = None
    height_cm: float | None = None
    weight_kg: float | None = None
    sex: str | None = None
    heart_rate_bpm: float | None = None
    ed_frame: int | None = None
    es_frame: int | None = None
    group: DiagnosticGroup | None = None
    n_frames_acquired: int | None = None
    notes: tuple[str, ...] = ()
    """What the reader found worth reporting (ignored series, gaps, ...)."""
    provenance: Mapping[str, Any] | None = None
    """What a reader used to build the study (DICOM: series, files, geometry, timing; see
    :func:`opencmr.io.dicom.provenance`), JSON-friendly."""

    def to_dict(self) -> dict[str, object]:
        """JSON-friendly dictionary (paths and enums as strings)."""
        out: dict[str, object] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, DiagnosticGroup):
                value = value.value
            elif isinstance(value, tuple):
                value = list(value)
            out[name] = value
        return out


@dataclass(frozen=True, eq=False)
class LabelMap:
    """Integer label maps (ACDC convention, see :mod:`opencmr.labels`) for some frames of a study.

    Parameters
    ----------
    data : numpy.ndarray
        ``(n_labelled_frames, slices, rows, cols)`` integer array.
    geometry : Geometry
        The grid the labels live on.
    frame_numbers : sequence of int
        Acquisition frame number (0-based) of each labelled frame.
    """

    data: np.ndarray
    geometry: Geometry
    frame_numbers: tuple[int, ...]

    def __post_init__(self) -> None:
        data = np.asarray(self.data)
        if data.ndim != 4:
            raise ValueError(f"label data must be 4D (frames, slices, rows, cols), got {data.ndim}D")
        if data.shape[1:] != self.geometry.shape:
            raise ValueError(f"label shape {data.shape[1:]} does not match geometry shape {self.geometry.shape}")
        if not np.issubdtype(data.dtype, np.integer):
            raise ValueError(f"label data must be integer, got {data.dtype}")
        present = set(np.unique(data).tolist())
        if not present <= LABEL_VALUES:
            raise ValueError(f"label values {sorted(present - LABEL_VALUES)} are not in {sorted(LABEL_VALUES)}")
        frames = tuple(int(f) for f in self.frame_numbers)
        if len(frames) != data.shape[0] or len(set(frames)) != len(frames):
            raise ValueError(f"need one distinct frame number per labelled frame, got {frames} for {data.shape[0]}")
        object.__setattr__(self, "data", _read_only(data.astype(np.uint8, copy=False)))
        object.__setattr__(self, "frame_numbers", frames)

    def frame(self, frame_number: int) -> np.ndarray:
        """The ``(slices, rows, cols)`` label volume of one acquisition frame."""
        try:
            return self.data[self.frame_numbers.index(frame_number)]
        except ValueError:
            raise KeyError(f"frame {frame_number} is not labelled (labelled: {self.frame_numbers})") from None


@dataclass(frozen=True, eq=False)
class CineStudy:
    """A short-axis cine study: intensities, geometry, timing, metadata and optional labels.

    Parameters
    ----------
    image : numpy.ndarray
        ``(frames, slices, rows, cols)`` intensities (stored as float32; raw
        scanner values are kept, see :mod:`opencmr.preprocess.intensity`).
    geometry : Geometry
        Voxel grid and patient-space affine.
    metadata : StudyMetadata
        Patient and acquisition information.
    frame_numbers : sequence of int, optional
        Acquisition frame number (0-based) of each frame; ``range(frames)`` by
        default. An ACDC folder without its 4D file holds only ED and ES, e.g.
        ``(0, 11)``.
    frame_times_ms : sequence of float, optional
        Time of each frame after the R wave (DICOM TriggerTime), when known.
    labels : LabelMap, optional
        Manual or predicted segmentation on the same grid.
    """

    image: np.ndarray
    geometry: Geometry
    metadata: StudyMetadata = field(default_factory=StudyMetadata)
    frame_numbers: tuple[int, ...] | None = None
    frame_times_ms: tuple[float, ...] | None = None
    labels: LabelMap | None = None

    def __post_init__(self) -> None:
        image = np.asarray(self.image)
        if image.ndim != 4:
            raise ValueError(f"image must be 4D (frames, slices, rows, cols), got {image.ndim}D")
        if image.shape[1:] != self.geometry.shape:
            raise ValueError(f"image shape {image.shape[1:]} does not match geometry shape {self.geometry.shape}")
        if not np.all(np.isfinite(image)):
            raise ValueError("image contains NaN or infinite values")
        object.__setattr__(self, "image", _read_only(image.astype(np.float32, copy=False)))
        n = image.shape[0]
        frames = tuple(range(n)) if self.frame_numbers is None else tuple(int(f) for f in self.frame_numbers)
        if len(frames) != n or list(frames) != sorted(set(frames)):
            raise ValueError(f"frame_numbers must be {n} increasing distinct numbers, got {frames}")
        object.__setattr__(self, "frame_numbers", frames)
        if self.frame_times_ms is not None:
            times = tuple(float(t) for t in self.frame_times_ms)
            if len(times) != n:
                raise ValueError(f"need {n} frame times, got {len(times)}")
            object.__setattr__(self, "frame_times_ms", times)
        if self.labels is not None:
            if not self.labels.geometry.same_grid(self.geometry):
                raise ValueError("labels are not on the image grid (shape or affine differ)")
            missing = set(self.labels.frame_numbers) - set(frames)
            if missing:
                raise ValueError(f"labelled frames {sorted(missing)} are not among the image frames {frames}")

    @property
    def n_frames(self) -> int:
        """Number of frames held (not necessarily all acquired frames)."""
        return int(self.image.shape[0])

    @property
    def n_slices(self) -> int:
        """Number of short-axis slices."""
        return int(self.image.shape[1])

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel spacing ``(slice, row, col)`` in mm."""
        return self.geometry.spacing

    def frame_index(self, frame_number: int) -> int:
        """Position along the frame axis of an acquisition frame number."""
        assert self.frame_numbers is not None
        try:
            return self.frame_numbers.index(frame_number)
        except ValueError:
            raise KeyError(f"frame {frame_number} is not in this study (frames: {self.frame_numbers})") from None

    def frame(self, frame_number: int) -> np.ndarray:
        """The ``(slices, rows, cols)`` image of one acquisition frame."""
        return self.image[self.frame_index(frame_number)]

