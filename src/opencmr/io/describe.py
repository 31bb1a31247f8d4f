"""A JSON-friendly summary of a study, as printed by ``opencmr info``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from opencmr.io.study import CineStudy

__all__ = ["describe_study"]


class _HasToDict(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


def describe_study(study: CineStudy, series_found: Sequence[_HasToDict] | None = None) -> dict[str, Any]:
    """Summarise dimensions, spacing, frames, labels, metadata and (for DICOM) the series found.

    The keys are part of the ``opencmr info --json`` output and stable:
    ``source``, ``format``, ``shape`` (``frames``, ``slices``, ``rows``,
    ``cols``), ``spacing_mm`` (``slice``, ``row``, ``col``),
    ``slice_thickness_mm``, ``frame_numbers``, ``frame_times_ms``,
    ``labelled_frames``, ``intensity`` (``min``, ``max``), ``affine_ras``,
    ``metadata`` and ``series``.
    """
    frames, slices, rows, cols = study.image.shape
    s, r, c = study.spacing
    meta = study.metadata.to_dict()
    return {
        "source": meta["source"],
        "format": meta["source_format"],
        "shape": {"frames": frames, "slices": slices, "rows": rows, "cols": cols},
        "spacing_mm": {"slice": s, "row": r, "col": c},
        "slice_thickness_mm": study.geometry.slice_thickness_mm,
        "frame_numbers": list(study.frame_numbers or ()),
        "frame_times_ms": None if study.frame_times_ms is None else list(study.frame_times_ms),
        "labelled_frames": [] if study.labels is None else list(study.labels.frame_numbers),
        "intensity": {"min": float(np.min(study.image)), "max": float(np.max(study.image))},
        "affine_ras": study.geometry.to_dict()["affine_ras"],
        "metadata": meta,
        "series": None if series_found is None else [item.to_dict() for item in series_found],
    }
