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
    ``metadata``, ``series`` and ``provenance`` (DICOM input: what was read).
    """
    frames, slices, rows, cols = study.image.shape
    s, r, c = study.spacing
    meta = study.metadata.to_dict()
    provenance = meta.pop("provenance", None)
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
        "series": _series(study, series_found),
        "provenance": None if provenance is None else {k: v for k, v in provenance.items() if k != "series_found"},
    }


def _series(study: CineStudy, series_found: Sequence[_HasToDict] | None) -> list[dict[str, Any]] | None:
    """The series found: as given, else from the DICOM reader's provenance record."""
    if series_found is not None:
        return [item.to_dict() for item in series_found]
    provenance = study.metadata.provenance or {}
    found = provenance.get("series_found")
    return None if found is None else list(found)
