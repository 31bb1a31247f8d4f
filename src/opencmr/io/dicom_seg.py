"""DICOM Segmentation output: the label map of a DICOM study as a SEG instance that references its source images.

:func:`write_dicom_seg` stores a :class:`~opencmr.io.study.LabelMap` computed
from a study read from DICOM as one binary Segmentation Storage instance [1]_
built with highdicom [2]_: one segment per structure (RV blood pool, LV
myocardium, LV blood pool; segment number = label value), coded with SNOMED CT
concepts of the DICOM context groups, and one frame per structure, slice and
labelled cardiac phase. Every frame references, in its Derivation Image
Sequence, the source image (or frame of an enhanced multi-frame image) it was
computed from; the phases are a temporal dimension (Frame Content Temporal
Position Index). :func:`read_dicom_seg` maps such an instance back onto the
study grid through those references, so a round trip is exact.

highdicom builds the instance for the first labelled phase (segment
descriptions, algorithm identification, plane geometry, dimension index,
common instance references); the further phases are added as frames with the
same spatial layout, because highdicom refuses two frames at one position.

Segment codes (category "Anatomical Structure", SCT 91723000; types from
DICOM CID 7151 / CID 12305 as pydicom lists them): RV blood pool "Right
ventricle" (SCT 53085002), LV myocardium "Left Ventricle Myocardium"
(SCT 49848007), LV blood pool "Left ventricle" (SCT 87878005). The DICOM
context groups hold no concept for a ventricular cavity; the segment labels
and descriptions say that the ventricle segments are blood pools.

References
----------
.. [1] DICOM PS3.3, A.51 Segmentation IOD, C.8.20 Segmentation modules and
   C.7.6.17 Multi-frame Dimension Module.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_A.51.html
.. [2] C. P. Bridge et al., "Highdicom: a Python library for standardized
   encoding of image annotations and machine learning model outputs in
   pathology and radiology", J. Digit. Imaging 35, 2022,
   doi:10.1007/s10278-022-00683-y
"""

from __future__ import annotations

import copy
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.tag import Tag

from opencmr.errors import InputError, describe_exception
from opencmr.io._atomic import atomic_output, check_writable
from opencmr.io.dicom.headers import images_from_dataset
from opencmr.io.dicom.sources import Source, is_zip_archive
from opencmr.io.study import CineStudy, LabelMap
from opencmr.labels import STRUCTURES, Label

__all__ = [
    "SEGMENT_CODES",
    "SourceImages",
    "read_dicom_seg",
    "referenced_image_key",
    "require_dicom",
    "segment_label",
    "source_images",
    "write_dicom_seg",
]

#: Segmented property type of each structure (category: Anatomical Structure, SCT 91723000).
SEGMENT_CODES = {
    Label.RV_BLOOD_POOL: codes.SCT.RightVentricle,
    Label.LV_MYOCARDIUM: codes.SCT.LeftVentricleMyocardium,
    Label.LV_BLOOD_POOL: codes.SCT.LeftVentricle,
}
_LABEL_OF_CODE = {(c.value, c.scheme_designator): label for label, c in SEGMENT_CODES.items()}

_SEGMENT_TEXT = {
    Label.RV_BLOOD_POOL: ("RV blood pool", "right ventricular cavity (blood pool)"),
    Label.LV_MYOCARDIUM: ("LV myocardium", "left ventricular myocardium"),
    Label.LV_BLOOD_POOL: ("LV blood pool", "left ventricular cavity (blood pool), papillary muscles included"),
}

_FRAME_CONTENT = Tag("FrameContentSequence")
_TEMPORAL_POSITION = Tag("TemporalPositionIndex")
_FRAME_REF = re.compile(r"(?P<file>.*)#(?P<frame>\d+)")


# --------------------------------------------------------------------------- source images


@dataclass(frozen=True, eq=False)
class SourceImages:
    """The DICOM headers a study's pixels came from, per ``(frame, slice)``.

    Parameters
    ----------
    datasets : tuple of pydicom.dataset.Dataset
        Each source file's header (no pixel data), once.
    index : numpy.ndarray
        ``(frames, slices)`` position in ``datasets`` of each image.
    frame : numpy.ndarray
        ``(frames, slices)`` 1-based frame number inside a multi-frame file,
        0 for a single-frame image.
    """

    datasets: tuple[Dataset, ...]
    index: np.ndarray
    frame: np.ndarray

    def dataset(self, frame: int, slice_: int) -> Dataset:
        """Header of the file holding image ``(frame, slice)`` (array indices, not frame numbers)."""
        return self.datasets[int(self.index[frame, slice_])]

    def key(self, frame: int, slice_: int) -> tuple[str, int]:
        """``(SOPInstanceUID, frame number or 0)`` of image ``(frame, slice)``."""
        return str(self.dataset(frame, slice_).SOPInstanceUID), int(self.frame[frame, slice_])


def require_dicom(study: CineStudy, what: str, instead: str) -> object:
    """Where ``study`` came from (for messages); InputError unless it was read from DICOM with its provenance.

    ``what`` names the object that needs the source images (``"a DICOM SEG"``),
    ``instead`` what the user has instead (``"write NIfTI labels instead"``).
    """
    meta = study.metadata
    where = meta.source if meta.source is not None else "study"
    if meta.source_format != "dicom" or not meta.provenance or "slices" not in meta.provenance:
        kind = meta.source_format or "an unknown source"
        raise InputError(where, f"{what} needs a study read from DICOM (this one was read from {kind}); {instead}")
    return where


def segment_label(item: Dataset) -> Label | None:
    """The structure of a SEG's SegmentSequence item, by its property type code (:data:`SEGMENT_CODES`); None if other."""
    code = item.SegmentedPropertyTypeCodeSequence[0]
    return _LABEL_OF_CODE.get((code.CodeValue, code.CodingSchemeDesignator))


def referenced_image_key(ref: Dataset) -> tuple[str, int]:
    """``(SOP Instance UID, frame number or 0)`` of a Source Image Sequence item (as :meth:`SourceImages.key`)."""
    return str(ref.ReferencedSOPInstanceUID), int(ref.get("ReferencedFrameNumber", 0) or 0)


def _dicom_provenance(study: CineStudy) -> tuple[object, list[dict]]:
    """Where the study came from (:func:`require_dicom`) and its provenance's slices, one file per frame each."""
    where = require_dicom(study, "a DICOM SEG", "write NIfTI labels instead")
    slices = list(study.metadata.provenance["slices"])
    if len(slices) != study.n_slices or any(len(s["files"]) != study.n_frames for s in slices):
        raise InputError(where, "the DICOM provenance does not list one file per frame and slice of the study")
    return where, slices


def _parse_source(text: str, where: object) -> tuple[Source, int]:
    """The :class:`Source` and 1-based frame (0: single-frame) that the reader wrote as ``str(source)[#frame]``."""
    frame = 0
    match = _FRAME_REF.fullmatch(text)
    if match and not Path(text).exists():
        text, frame = match["file"], int(match["frame"])
    if Path(text).is_file():
        return Source(Path(text)), frame
    for found in re.finditer(":", text):  # an archive member: ARCHIVE:MEMBER
        archive = Path(text[: found.start()])
        if archive.is_file() and is_zip_archive(archive):
            return Source(archive, text[found.end() :]), frame
    raise InputError(where, f"source image {text} no longer exists (it was read from there)")


def source_images(study: CineStudy) -> SourceImages:
    """Re-read the headers (no pixel data) of the DICOM images a study was read from.

    Parameters
    ----------
    study : CineStudy
        As returned by :func:`opencmr.io.read.read_study` for a DICOM folder,
        zip archive or multi-frame file; its provenance lists the file (and
        frame) of every ``(frame, slice)`` image.

    Returns
    -------
    SourceImages

    Raises
    ------
    InputError
        The study was not read from DICOM, or a source file is gone, changed
        or unreadable.
    """
    where, slices = _dicom_provenance(study)
    rows, cols = study.geometry.shape[1:]
    headers: dict[Source, int] = {}
    datasets: list[Dataset] = []
    index = np.zeros((study.n_frames, study.n_slices), np.int64)
    frames = np.zeros_like(index)
    for s, entry in enumerate(slices):
        for f, text in enumerate(entry["files"]):
            source, frame = _parse_source(str(text), where)
            if source not in headers:
                ds = source.read_header()
                if ds is None:
                    raise InputError(source, "is no longer a DICOM file")
                if (int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) != (rows, cols):
                    raise InputError(source, f"is no longer a {rows}x{cols} image (the file changed since reading)")
                if study.metadata.study_uid and ds.get("StudyInstanceUID") != study.metadata.study_uid:
                    raise InputError(source, "belongs to another study (the file changed since reading)")
                headers[source] = len(datasets)
                datasets.append(ds)
            index[f, s], frames[f, s] = headers[source], frame
    return SourceImages(tuple(datasets), index, frames)


# --------------------------------------------------------------------------- writing


def _positions(sources: SourceImages, phase: int) -> np.ndarray:
    """ImagePositionPatient (LPS mm) of each slice of one phase, read as the reader reads it."""
    records: dict[int, list] = {}
    out = []
    for s in range(sources.index.shape[1]):
        ds, frame = sources.dataset(phase, s), int(sources.frame[phase, s])
        if id(ds) not in records:
            records[id(ds)] = images_from_dataset(Source(Path(str(ds.filename or "?"))), ds)
        image = records[id(ds)][frame - 1 if frame else 0]
        if image.position is None:
            raise InputError(str(ds.filename), "source image without ImagePositionPatient")
        out.append([float(v) for v in image.position])
    return np.asarray(out, np.float64)


def _derivation(ds: Dataset, frame: int) -> Dataset:
    """Derivation Image Sequence item: this frame is a segmentation of source image ``ds`` (frame ``frame``)."""
    import highdicom as hd

    source = Dataset()
    source.ReferencedSOPClassUID = ds.SOPClassUID
    source.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    if frame:
        source.ReferencedFrameNumber = frame
    source.PurposeOfReferenceCodeSequence = [
        hd.sr.CodedConcept.from_code(codes.DCM.SourceImageForImageProcessingOperation)
    ]
    source.SpatialLocationsPreserved = "YES"
    item = Dataset()
    item.DerivationCodeSequence = [hd.sr.CodedConcept.from_code(codes.DCM.Segmentation)]
    item.SourceImageSequence = [source]
    return item


def _segment_descriptions(algorithm_name: str, algorithm_version: str, manual: bool) -> list:
    import highdicom as hd

    algorithm = None
    if not manual:
        algorithm = hd.AlgorithmIdentificationSequence(
            name=algorithm_name, family=codes.DCM.ArtificialIntelligence, version=algorithm_version
        )
    kind = hd.seg.SegmentAlgorithmTypeValues.MANUAL if manual else hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC
    descriptions = []
    for label in STRUCTURES:
        description = hd.seg.SegmentDescription(
            segment_number=int(label),
            segment_label=_SEGMENT_TEXT[label][0],
            segmented_property_category=codes.SCT.AnatomicalStructure,
            segmented_property_type=SEGMENT_CODES[label],
            algorithm_type=kind,
            algorithm_identification=algorithm,
        )
        description.SegmentDescription = _SEGMENT_TEXT[label][1]
        descriptions.append(description)
    return descriptions


def _slice_of_frames(seg: Dataset, positions: np.ndarray, where: object) -> list[tuple[int, int]]:
    """``(segment number, slice)`` of every frame highdicom wrote."""
    out = []
    for item in seg.PerFrameFunctionalGroupsSequence:
        segment = int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)
        pos = np.asarray(item.PlanePositionSequence[0].ImagePositionPatient, np.float64)
        distance = np.linalg.norm(positions - pos, axis=1)
        s = int(np.argmin(distance))
        if distance[s] > 1e-2:
            raise InputError(where, f"internal error: a SEG frame at {pos.tolist()} matches no source slice")
        out.append((segment, s))
    return out


def write_dicom_seg(
    labels: LabelMap,
    study: CineStudy,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    series_number: int | None = None,
    series_description: str = "opencmr segmentation",
    algorithm_name: str = "opencmr",
    algorithm_version: str | None = None,
    manual: bool = False,
) -> Path:
    """Write ``labels`` as a DICOM Segmentation that references the images of ``study``.

    Parameters
    ----------
    labels : LabelMap
        Labels on the study grid (ACDC convention), for any subset of its frames.
    study : CineStudy
        The study the labels were computed from, as :func:`opencmr.io.read.read_study`
        returned it for DICOM input (its source files must still be there).
    path : str or PathLike
        Output file, conventionally ``segmentation.dcm``.
    overwrite : bool
        Replace an existing file.
    series_number : int, optional
        SeriesNumber of the SEG; by default the source's plus 1000.
    series_description : str
        SeriesDescription of the SEG.
    algorithm_name, algorithm_version : str
        Algorithm Identification of each segment (version: opencmr's by default).
    manual : bool
        The labels were drawn by hand (SegmentAlgorithmType MANUAL, no algorithm).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        The study was not read from DICOM (the message names it), its source
        files are gone or changed, or the labels are not on its grid.
    OutputError
        ``path`` exists and ``overwrite`` is False, or cannot be written.

    Examples
    --------
    >>> study = read_study("export/")  # doctest: +SKIP
    >>> write_dicom_seg(labels, study, out_dir / "segmentation.dcm")  # doctest: +SKIP
    """
    import highdicom as hd

    from opencmr import __version__

    target = Path(path)
    where, _ = _dicom_provenance(study)  # before anything is written
    check_writable(target, overwrite)
    if not labels.geometry.same_grid(study.geometry):
        raise InputError(where, "the labels are not on the grid of this study (shape or affine differ)")
    phases = [study.frame_index(f) for f in labels.frame_numbers]
    order = np.argsort(phases)
    phases = [phases[i] for i in order]
    data = np.asarray(labels.data)[order]
    sources = source_images(study)

    first = sources.dataset(phases[0], 0)
    positions = _positions(sources, phases[0])
    others = [ds for ds in sources.datasets if ds is not first]
    descriptions = _segment_descriptions(algorithm_name, algorithm_version or __version__, manual)
    number = series_number
    if number is None:
        number = int(first.get("SeriesNumber") or 0) + 1000
    try:
        seg = hd.seg.Segmentation(
            source_images=[first],
            further_source_images=others or None,
            pixel_array=data[0],
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=hd.UID(),
            series_number=number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="opencmr",
            manufacturer_model_name="opencmr",
            software_versions=__version__,
            device_serial_number="0",
            plane_positions=[hd.PlanePositionSequence(hd.CoordinateSystemNames.PATIENT, p) for p in positions],
            omit_empty_frames=False,
            content_label="CARDIAC",
            content_description="Short-axis cine segmentation (RV, LV myocardium, LV)",
            series_description=series_description,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(
            where, f"cannot build a DICOM SEG from these source images ({describe_exception(exc)})"
        ) from None
    _add_phases(seg, data, phases, sources, positions, where)
    with atomic_output(target, overwrite) as tmp:
        seg.save_as(tmp, enforce_file_format=True)
    return target


def _add_phases(
    seg: Dataset, data: np.ndarray, phases: list[int], sources: SourceImages, positions: np.ndarray, where: object
) -> None:
    """Give every frame its exact source reference and repeat the frame layout for each phase (temporal dimension)."""
    from pydicom.pixels import pack_bits

    layout = _slice_of_frames(seg, positions, where)
    template = list(seg.PerFrameFunctionalGroupsSequence)
    temporal = len(phases) > 1
    if temporal:
        dimension = Dataset()
        dimension.DimensionOrganizationUID = seg.DimensionIndexSequence[0].DimensionOrganizationUID
        dimension.DimensionIndexPointer = _TEMPORAL_POSITION
        dimension.FunctionalGroupPointer = _FRAME_CONTENT
        dimension.DimensionDescriptionLabel = "Temporal Position"
        seg.DimensionIndexSequence.append(dimension)
        if seg.get("DimensionOrganizationType") == "3D":
            seg.DimensionOrganizationType = "3D_TEMPORAL"
    items, planes = [], []
    for t, phase in enumerate(phases):
        for item, (segment, s) in zip(template, layout):
            new = copy.deepcopy(item)
            new.DerivationImageSequence = [_derivation(sources.dataset(phase, s), int(sources.frame[phase, s]))]
            if temporal:
                content = new.FrameContentSequence[0]
                content.DimensionIndexValues = [*content.DimensionIndexValues, t + 1]
                content.TemporalPositionIndex = t + 1
            items.append(new)
            planes.append(data[t, s] == segment)
    seg.PerFrameFunctionalGroupsSequence = items
    seg.NumberOfFrames = len(items)
    seg.PixelData = pack_bits(np.stack(planes).astype(np.uint8))


# --------------------------------------------------------------------------- reading


def read_dicom_seg(path: str | os.PathLike[str], study: CineStudy) -> LabelMap:
    """Read a DICOM SEG written by :func:`write_dicom_seg` back onto the grid of its source study.

    Each frame is placed at the ``(frame, slice)`` of the source image its
    Derivation Image Sequence references; segments are mapped to labels by
    their property type codes (:data:`SEGMENT_CODES`).

    Parameters
    ----------
    path : str or PathLike
        The SEG file.
    study : CineStudy
        The DICOM study it was computed from.

    Returns
    -------
    LabelMap
        The labelled frames (those the SEG references) on the study grid.

    Raises
    ------
    InputError
        The file is not a binary segmentation, references images that are not
        in ``study``, has segments with other codes, or overlapping segments.
    """
    import highdicom as hd

    target = Path(path)
    try:
        seg = hd.seg.segread(target)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file
        raise InputError(target, f"is not a readable DICOM Segmentation ({describe_exception(exc)})") from None
    if seg.SegmentationType != "BINARY":
        raise InputError(target, f"SegmentationType {seg.SegmentationType} (only BINARY is read)")
    value_of: dict[int, int] = {}
    for item in seg.SegmentSequence:
        label = segment_label(item)
        if label is None:
            meaning = item.SegmentedPropertyTypeCodeSequence[0].CodeMeaning
            raise InputError(target, f"segment {item.SegmentNumber} has an unknown property type {meaning}")
        value_of[int(item.SegmentNumber)] = int(label)
    sources = source_images(study)
    where_of = {sources.key(f, s): (f, s) for f in range(study.n_frames) for s in range(study.n_slices)}
    pixels = seg.pixel_array
    if pixels.ndim == 2:
        pixels = pixels[None]
    out = np.zeros((study.n_frames, *study.geometry.shape), np.uint8)
    seen = np.zeros(study.n_frames, bool)
    for k, item in enumerate(seg.PerFrameFunctionalGroupsSequence):
        key = referenced_image_key(item.DerivationImageSequence[0].SourceImageSequence[0])
        if key not in where_of:
            raise InputError(target, f"frame {k + 1} references image {key[0]} that is not in the study")
        f, s = where_of[key]
        value = value_of[int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber)]
        mask = pixels[k] > 0
        if np.any(out[f, s][mask]):
            raise InputError(target, f"segments overlap in frame {k + 1}")
        out[f, s][mask] = value
        seen[f] = True
    frames = np.flatnonzero(seen)
    assert study.frame_numbers is not None
    return LabelMap(out[frames], study.geometry, tuple(study.frame_numbers[i] for i in frames))
