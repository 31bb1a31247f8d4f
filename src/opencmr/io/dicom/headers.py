"""Image records from DICOM headers: one per classic image file, one per frame of an enhanced multi-frame file.

A classic MR image (MR Image Storage) carries its geometry, timing and
rescaling as top-level attributes. An enhanced MR image (Enhanced MR Image
Storage, the usual export of recent Philips and Siemens systems) holds every
slice and phase of a series as frames of one file, each described by its
per-frame functional groups, with the values common to all frames in the
shared functional groups [1]_. Both become the same :class:`DicomImage`
records, so that ordering and validation are written once.

References
----------
.. [1] DICOM PS3.3, C.7.6.16 Multi-frame Functional Groups Module, and the
   Plane Position (C.7.6.16.2.3), Plane Orientation (C.7.6.16.2.4), Pixel
   Measures (C.7.6.16.2.1), Cardiac Synchronization (C.7.6.16.2.7), Frame
   Content (C.7.6.16.2.2) and Pixel Value Transformation (C.7.6.16.2.9) macros.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.16.html
.. [2] DICOM PS3.3, C.8.3.1 MR Image Module (TriggerTime, NominalInterval).
.. [3] T. L. Chenevert et al., "Errors in quantitative image analysis due to
   platform-dependent image scaling", Translational Oncology 7, 2014,
   doi:10.1593/tlo.13811 (Philips floating-point value FP = (SV * RS + RI) / (RS * SS)).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import UID

from opencmr.errors import InputError
from opencmr.io.dicom.sources import Source

__all__ = ["DicomImage", "declares_image", "images_from_dataset", "integer", "number", "numbers", "text"]

_PHILIPS_CREATOR = "Philips MR Imaging DD 001"
_PHILIPS_SCALE_SLOPE = 0x0E
"""Element offset of MR Scale Slope in the Philips private block (tag (2005,100E))."""


@dataclass(frozen=True, eq=False)
class DicomImage:
    """One 2D image: a classic file, or one frame (``frame``, 0-based) of a multi-frame file."""

    source: Source
    frame: int | None
    dataset: Dataset
    sop_class: str
    series_uid: str
    series_number: int | None
    description: str
    study_uid: str
    patient_id: str
    modality: str
    image_type: tuple[str, ...]
    rows: int | None
    cols: int | None
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    pixel_spacing: tuple[float, ...] | None
    slice_thickness: float | None
    trigger_time: float | None
    rr_interval_ms: float | None
    instance_number: int | None
    temporal_index: int | None
    rescale_slope: float | None
    rescale_intercept: float | None
    vendor_scale: float | None = None
    """Philips private MR Scale Slope (2005,100E) ``SS``: the real value is the rescaled value / (RescaleSlope * SS) [3]_."""

    @property
    def name(self) -> str:
        """File name, with the frame for multi-frame files (for messages)."""
        return self.source.name if self.frame is None else f"{self.source.name} frame {self.frame + 1}"

    @property
    def multiframe(self) -> bool:
        return self.frame is not None


def _values(ds: Dataset, keyword: str) -> list[object] | None:
    """The value(s) of an element as a list, or None when absent or empty."""
    try:
        if keyword not in ds:
            return None
        value = ds[keyword].value
    except Exception:  # noqa: BLE001 - a malformed value counts as missing
        return None
    if value is None or value == "":
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        return [value]
    return list(value)


def numbers(ds: Dataset | None, keyword: str, count: int) -> tuple[float, ...] | None:
    """``count`` finite numbers from a DS/FD element, or None when missing or malformed."""
    if ds is None:
        return None
    values = _values(ds, keyword)
    if values is None or len(values) != count:
        return None
    try:
        found = tuple(float(v) for v in values)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return found if all(np.isfinite(found)) else None


def number(ds: Dataset | None, keyword: str) -> float | None:
    """One finite number, or None."""
    found = numbers(ds, keyword, 1)
    return None if found is None else found[0]


def integer(ds: Dataset | None, keyword: str) -> int | None:
    """One number rounded to an integer, or None."""
    value = number(ds, keyword)
    return None if value is None else round(value)


def text(ds: Dataset | None, keyword: str) -> str:
    """An element as stripped text (multiple values joined by backslashes), empty when absent."""
    if ds is None:
        return ""
    values = _values(ds, keyword)
    return "" if values is None else "\\".join(str(v) for v in values).strip()


def declares_image(ds: Dataset) -> bool:
    """Whether the file meta (or dataset) names an image storage SOP class, e.g. MR Image Storage."""
    meta = getattr(ds, "file_meta", None)
    uid = (meta.get("MediaStorageSOPClassUID") if meta is not None else None) or ds.get("SOPClassUID")
    try:
        return uid is not None and "Image Storage" in UID(str(uid)).name
    except Exception:  # noqa: BLE001 - an unparsable UID names nothing
        return False


def _common(source: Source, ds: Dataset) -> dict[str, object]:
    """Attributes every frame of a file shares."""
    return {
        "source": source,
        "dataset": ds,
        "sop_class": text(ds, "SOPClassUID"),
        "series_uid": text(ds, "SeriesInstanceUID"),
        "series_number": integer(ds, "SeriesNumber"),
        "description": text(ds, "SeriesDescription"),
        "study_uid": text(ds, "StudyInstanceUID"),
        "patient_id": text(ds, "PatientID"),
        "modality": text(ds, "Modality").upper(),
        "image_type": tuple(str(v).strip().upper() for v in (_values(ds, "ImageType") or [])),
        "rows": integer(ds, "Rows"),
        "cols": integer(ds, "Columns"),
    }


def _philips_scale(ds: Dataset | None) -> float | None:
    """Philips' private MR Scale Slope of a dataset or functional-group item, when present and usable."""
    if ds is None:
        return None
    try:
        value = float(ds.get_private_item(0x2005, _PHILIPS_SCALE_SLOPE, _PHILIPS_CREATOR).value)
    except (KeyError, TypeError, ValueError):
        return None
    return value if np.isfinite(value) and value > 0 else None


def _philips_private_frame_scale(groups: Dataset | None) -> float | None:
    """MR Scale Slope inside a frame's private Philips sequence (2005,140F), where enhanced exports keep it."""
    if groups is None:
        return None
    for element in groups:
        if element.tag.group == 0x2005 and element.VR == "SQ" and (element.tag.element & 0xFF) == 0x0F:
            for item in element.value:
                found = _philips_scale(item)
                if found is not None:
                    return found
    return None


def _rr_interval(ds: Dataset | None) -> float | None:
    interval = number(ds, "NominalInterval")
    if interval is not None and interval > 0:
        return interval
    rate = number(ds, "HeartRate")
    return 60000.0 / rate if rate is not None and rate > 0 else None


def _classic(source: Source, ds: Dataset) -> DicomImage:
    return DicomImage(
        **_common(source, ds),  # type: ignore[arg-type]
        frame=None,
        position=numbers(ds, "ImagePositionPatient", 3),
        orientation=numbers(ds, "ImageOrientationPatient", 6),
        pixel_spacing=numbers(ds, "PixelSpacing", 2),
        slice_thickness=number(ds, "SliceThickness"),
        trigger_time=number(ds, "TriggerTime"),
        rr_interval_ms=_rr_interval(ds),
        instance_number=integer(ds, "InstanceNumber"),
        temporal_index=integer(ds, "TemporalPositionIdentifier"),
        rescale_slope=number(ds, "RescaleSlope"),
        rescale_intercept=number(ds, "RescaleIntercept"),
        vendor_scale=_philips_scale(ds),
    )


def _item(groups: Dataset | None, keyword: str) -> Dataset | None:
    """The first item of a functional-group macro sequence, or None."""
    if groups is None or keyword not in groups:
        return None
    sequence = groups[keyword].value
    return sequence[0] if sequence else None


def _macro(per_frame: Dataset | None, shared: Dataset | None, keyword: str) -> Dataset | None:
    """A functional-group macro from the frame's own groups, else from the shared groups."""
    return _item(per_frame, keyword) or _item(shared, keyword)


def _enhanced(source: Source, ds: Dataset) -> list[DicomImage]:
    n_frames = integer(ds, "NumberOfFrames") or 1
    shared = _item(ds, "SharedFunctionalGroupsSequence")
    per_frame = list(ds.PerFrameFunctionalGroupsSequence) if "PerFrameFunctionalGroupsSequence" in ds else []
    if per_frame and len(per_frame) != n_frames:
        raise InputError(
            source,
            f"NumberOfFrames is {n_frames} but the file describes {len(per_frame)} frames (corrupt multi-frame header)",
        )
    common = _common(source, ds)
    images = []
    for k in range(n_frames):
        groups = per_frame[k] if k < len(per_frame) else None
        measures = _macro(groups, shared, "PixelMeasuresSequence")
        cardiac = _macro(groups, shared, "CardiacSynchronizationSequence")
        content = _macro(groups, shared, "FrameContentSequence")
        transform = _macro(groups, shared, "PixelValueTransformationSequence")
        rr = number(cardiac, "RRIntervalTimeNominal")
        images.append(
            DicomImage(
                **common,  # type: ignore[arg-type]
                frame=k,
                position=numbers(_macro(groups, shared, "PlanePositionSequence"), "ImagePositionPatient", 3),
                orientation=numbers(_macro(groups, shared, "PlaneOrientationSequence"), "ImageOrientationPatient", 6),
                pixel_spacing=numbers(measures, "PixelSpacing", 2),
                slice_thickness=number(measures, "SliceThickness"),
                trigger_time=number(cardiac, "NominalCardiacTriggerDelayTime"),
                rr_interval_ms=rr if rr is not None and rr > 0 else _rr_interval(ds),
                instance_number=k + 1,
                temporal_index=integer(content, "TemporalPositionIndex"),
                rescale_slope=number(transform, "RescaleSlope")
                if transform is not None
                else number(ds, "RescaleSlope"),
                rescale_intercept=(
                    number(transform, "RescaleIntercept") if transform is not None else number(ds, "RescaleIntercept")
                ),
                vendor_scale=(
                    _philips_scale(transform)
                    or _philips_scale(groups)
                    or _philips_private_frame_scale(groups)
                    or _philips_scale(ds)
                ),
            )
        )
    return images


def images_from_dataset(source: Source, ds: Dataset) -> list[DicomImage]:
    """The image records of one file's header: one for a classic image, one per frame for a multi-frame image."""
    if (integer(ds, "NumberOfFrames") or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        return _enhanced(source, ds)
    return [_classic(source, ds)]
