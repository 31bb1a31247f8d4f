"""Write a cine study as classic DICOM MR series, plus decoy series, as scanners export them.

The files are single-frame MR Image Storage objects (SOP Class
1.2.840.10008.5.1.4.1.1.4), explicit VR little endian or compressed with a
lossless transfer syntax (RLE, JPEG-LS, JPEG 2000), with the Patient, General
Study, General Series, Frame of Reference, General Equipment, General Image,
Image Plane, Image Pixel, MR Image and SOP Common modules filled in. They let
the DICOM reader (:mod:`opencmr.io.dicom`) be tested on real files, and give
phantom studies a form any DICOM viewer or PACS accepts.

One cine can be written in the layouts scanners export:

* :func:`write_dicom_cine` -- one series holding every slice and phase;
* :func:`write_dicom_cine_per_slice` -- one series per slice position (one
  breath-hold each, with its own RR interval);
* :func:`opencmr.io.dicom_write_enhanced.write_dicom_enhanced_cine` -- one
  Enhanced MR multi-frame file;
* :func:`write_dicom_fileset` -- any of these copied into a DICOM File-set with
  a DICOMDIR (the CD/USB layout).

:func:`write_dicom_localizer` and :func:`write_dicom_long_axis_cine` write
decoy series (a three-plane localiser, a single-position 4-chamber-like cine)
into the same study, the series a reader must recognise and ignore.

References
----------
.. [1] DICOM PS3.3, A.4 MR Image IOD and C.8.3.1 MR Image Module.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_A.4.html
.. [2] DICOM PS3.3, C.7.6.2 Image Plane Module.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.2.html
.. [3] DICOM PS3.10, 7.1 DICOM File Meta Information.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part10/chapter_7.html
.. [4] pydicom, Compressing Pixel Data (encoders and their plugins).
   https://pydicom.github.io/pydicom/stable/guides/user/image_data_compression.html
.. [5] DICOM PS3.10, 8 DICOM File Service (File-sets and the DICOMDIR), and
   PS3.3, F Basic Directory Information Object Definition.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part10/chapter_8.html
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filereader import read_file_meta_info
from pydicom.fileset import FileSet
from pydicom.misc import is_dicom
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    MediaStorageDirectoryStorage,
    RLELossless,
    generate_uid,
)
from pydicom.valuerep import DSfloat

from opencmr import __version__
from opencmr.errors import OutputError
from opencmr.io._atomic import atomic_output
from opencmr.io.study import CineStudy

__all__ = [
    "COMPRESSIONS",
    "MR_IMAGE_STORAGE",
    "write_dicom_cine",
    "write_dicom_cine_per_slice",
    "write_dicom_fileset",
    "write_dicom_localizer",
    "write_dicom_long_axis_cine",
]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
"""SOP Class UID of (classic, single-frame) MR Image Storage."""

COMPRESSIONS: dict[str, str] = {"rle": RLELossless, "jpeg-ls": JPEGLSLossless, "jpeg2000": JPEG2000Lossless}
"""The lossless transfer syntaxes the writers encode, by short name (as command-line options name them)."""

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DEFAULT_RR_MS = 1000.0
_ORTHOGONAL_TOL = 1e-4
_J2K_MIN_SIDE = 32


@dataclass(frozen=True)
class _Context:
    """Patient, study and frame-of-reference attributes shared by every series of one study."""

    patient_id: str
    patient_name: str
    sex: str
    size_m: float | None
    weight_kg: float | None
    study_uid: str
    frame_of_reference_uid: str
    date: str
    time: str


@dataclass(frozen=True)
class _Plane:
    """One image plane in LPS millimetres (DICOM Image Plane Module)."""

    position: np.ndarray
    row_direction: np.ndarray
    col_direction: np.ndarray
    pixel_spacing: tuple[float, float]
    """(between rows, between columns), as DICOM PixelSpacing."""

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.row_direction, self.col_direction)


@dataclass(frozen=True)
class _Series:
    """General Series and MR acquisition attributes of one series."""

    uid: str
    number: int
    description: str
    image_type: tuple[str, ...]
    slice_thickness_mm: float
    spacing_between_slices_mm: float | None = None


def _ds(value: float) -> DSfloat:
    """A Decimal String value that fits the 16-character limit of VR DS."""
    return DSfloat(float(value), auto_format=True)


def _ds_list(values: Iterable[float]) -> list[DSfloat]:
    return [_ds(v) for v in values]


def _context(
    study: CineStudy,
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str | None,
    frame_of_reference_uid: str | None,
) -> _Context:
    meta = study.metadata
    now = _dt.datetime.now()
    sex = (meta.sex or "").strip().upper()[:1]
    return _Context(
        patient_id=patient_id,
        patient_name=patient_name,
        sex=sex if sex in {"M", "F", "O"} else "",
        size_m=None if meta.height_cm is None else meta.height_cm / 100.0,
        weight_kg=meta.weight_kg,
        study_uid=study_uid or generate_uid(),
        frame_of_reference_uid=frame_of_reference_uid or generate_uid(),
        date=now.strftime("%Y%m%d"),
        time=now.strftime("%H%M%S"),
    )


def _file_meta(sop_class: str, sop_uid: str) -> FileMetaDataset:
    """File Meta Information [3]_ of an explicit VR little endian file."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationVersionName = f"OPENCMR_{__version__}"[:16]
    return meta


def _add_patient_and_study(ds: Dataset, ctx: _Context) -> None:
    """Patient and General Study modules."""
    ds.PatientName = ctx.patient_name
    ds.PatientID = ctx.patient_id
    ds.PatientBirthDate = ""
    ds.PatientSex = ctx.sex
    if ctx.size_m is not None:
        ds.PatientSize = _ds(ctx.size_m)
    if ctx.weight_kg is not None:
        ds.PatientWeight = _ds(ctx.weight_kg)
    ds.StudyInstanceUID = ctx.study_uid
    ds.StudyDate = ctx.date
    ds.StudyTime = ctx.time
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = ""
    ds.StudyDescription = "Cardiac MRI"


def _add_series_and_frame_of_reference(ds: Dataset, ctx: _Context, series: _Series) -> None:
    """General Series, Frame of Reference and General Equipment modules."""
    ds.Modality = "MR"
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDescription = series.description
    ds.SeriesDate = ctx.date
    ds.SeriesTime = ctx.time
    ds.PatientPosition = "HFS"
    ds.BodyPartExamined = "HEART"
    ds.FrameOfReferenceUID = ctx.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.Manufacturer = "opencmr phantom"
    ds.ManufacturerModelName = "opencmr"
    ds.SoftwareVersions = __version__
    ds.InstitutionName = ""


def _common_dataset(ctx: _Context, series: _Series, sop_class: str) -> Dataset:
    """SOP Common, patient, study, series, frame of reference and equipment attributes of a new instance."""
    sop_uid = generate_uid()
    ds = Dataset()
    ds.file_meta = _file_meta(sop_class, sop_uid)
    ds.preamble = b"\0" * 128
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = ctx.date
    ds.InstanceCreationTime = ctx.time
    _add_patient_and_study(ds, ctx)
    _add_series_and_frame_of_reference(ds, ctx, series)
    return ds


def _base_dataset(ctx: _Context, series: _Series, instance_number: int) -> Dataset:
    """A classic MR image: :func:`_common_dataset` plus the General Image and acquisition attributes."""
    ds = _common_dataset(ctx, series, MR_IMAGE_STORAGE)
    ds.InstanceNumber = instance_number
    ds.AcquisitionNumber = 1
    ds.ContentDate = ctx.date
    ds.ContentTime = ctx.time
    ds.AcquisitionDate = ctx.date
    ds.AcquisitionTime = ctx.time
    ds.ImageType = list(series.image_type)
    return ds


def _add_mr_module(ds: Dataset, series: _Series, *, gated: bool = True) -> None:
    """MR Image Module attributes of a 2D gradient-echo (bSSFP-like) acquisition [1]_.

    ``gated`` sets ScanOptions ``CG`` (cardiac gating), which makes TriggerTime required.
    """
    ds.ScanningSequence = "GR"
    ds.SequenceVariant = "SS"
    ds.ScanOptions = "CG" if gated else ""
    ds.MRAcquisitionType = "2D"
    ds.SequenceName = "opencmr_bssfp"
    ds.AngioFlag = "N"
    ds.RepetitionTime = _ds(3.0)
    ds.EchoTime = _ds(1.5)
    ds.EchoTrainLength = 1
    ds.NumberOfAverages = _ds(1.0)
    ds.ImagingFrequency = _ds(63.87)
    ds.ImagedNucleus = "1H"
    ds.MagneticFieldStrength = _ds(1.5)
    ds.FlipAngle = _ds(60.0)
    ds.PixelBandwidth = _ds(930.0)
    ds.SliceThickness = _ds(series.slice_thickness_mm)
    if series.spacing_between_slices_mm is not None:
        ds.SpacingBetweenSlices = _ds(series.spacing_between_slices_mm)


def _add_plane(ds: Dataset, plane: _Plane) -> None:
    """Image Plane Module [2]_; SliceLocation is the position along the normal."""
    ds.ImagePositionPatient = _ds_list(plane.position)
    ds.ImageOrientationPatient = _ds_list(np.concatenate([plane.row_direction, plane.col_direction]))
    ds.PixelSpacing = _ds_list(plane.pixel_spacing)
    ds.SliceLocation = _ds(float(plane.position @ plane.normal))


def _add_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int) -> None:
    """Image Pixel Module: unsigned 16-bit MONOCHROME2 ``(rows, cols)`` or ``(frames, rows, cols)`` pixels."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = (int(n) for n in pixels.shape[-2:])
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()


def _add_cardiac(ds: Dataset, trigger_ms: float, n_images: int, rr_ms: float) -> None:
    ds.TriggerTime = _ds(trigger_ms)
    ds.CardiacNumberOfImages = n_images
    ds.NominalInterval = int(round(rr_ms))
    ds.HeartRate = int(round(60000.0 / rr_ms))


def _add_window(ds: Dataset, pixels: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> None:
    low, high = float(pixels.min()) * slope + intercept, float(pixels.max()) * slope + intercept
    ds.WindowCenter = _ds((low + high) / 2)
    ds.WindowWidth = _ds(max(high - low, 1.0))


def _stack_planes(study: CineStudy) -> list[_Plane]:
    """The LPS image plane of every slice of ``study`` (RAS affine to LPS, [2]_).

    Raises
    ------
    ValueError
        The in-plane axes of the affine are not orthogonal (DICOM cannot store that).
    """
    lps = _RAS_TO_LPS @ np.asarray(study.geometry.affine, dtype=np.float64)
    col_step, row_step = lps[:3, 0], lps[:3, 1]  # one column further, one row further
    col_spacing, row_spacing = float(np.linalg.norm(col_step)), float(np.linalg.norm(row_step))
    row_dir, col_dir = col_step / col_spacing, row_step / row_spacing
    if abs(float(row_dir @ col_dir)) > _ORTHOGONAL_TOL:
        raise ValueError("the in-plane axes of the affine are not orthogonal; DICOM cannot represent this grid")
    return [
        _Plane(
            position=lps[:3, 3] + s * lps[:3, 2],
            row_direction=row_dir,
            col_direction=col_dir,
            pixel_spacing=(row_spacing, col_spacing),
        )
        for s in range(study.n_slices)
    ]


def _stored_values(image: np.ndarray, rescale: bool) -> tuple[np.ndarray, float, float]:
    """uint16 stored values and the (slope, intercept) that map them back to ``image``.

    Raises
    ------
    ValueError
        ``image`` is not integral in 0..65535 and ``rescale`` is False.
    """
    data = np.asarray(image, dtype=np.float64)
    integral = bool(np.all(np.abs(data - np.round(data)) <= 1e-4))
    in_range = data.size == 0 or (float(data.min()) >= 0 and float(data.max()) <= 65535)
    if integral and in_range:
        return np.round(data).astype(np.uint16), 1.0, 0.0
    if not rescale:
        raise ValueError(
            "image values must be integers in 0..65535 to be stored as uint16 "
            f"(range {data.min():g}..{data.max():g}, integral={integral}); pass rescale=True to store "
            "them with RescaleSlope/RescaleIntercept"
        )
    low, high = float(data.min()), float(data.max())
    slope = (high - low) / 65535.0 if high > low else 1.0
    return np.round((data - low) / slope).astype(np.uint16), slope, low


def _rr_interval(study: CineStudy, rr_interval_ms: float | None) -> float:
    if rr_interval_ms is not None:
        if rr_interval_ms <= 0:
            raise ValueError(f"rr_interval_ms must be positive, got {rr_interval_ms}")
        return float(rr_interval_ms)
    rate = study.metadata.heart_rate_bpm
    return 60000.0 / rate if rate else _DEFAULT_RR_MS


def _trigger_times(study: CineStudy, rr_ms: float, n_acquired: int) -> list[float]:
    if study.frame_times_ms is not None:
        return list(study.frame_times_ms)
    assert study.frame_numbers is not None
    return [f * rr_ms / n_acquired for f in study.frame_numbers]


@dataclass(frozen=True)
class _Timing:
    """Cardiac timing of a cine: RR interval, phases per cycle and the trigger time of each frame."""

    rr_ms: float
    n_acquired: int
    triggers_ms: tuple[float, ...]

    def scaled(self, rr_ms: float) -> _Timing:
        """The same cardiac phases (fractions of the cycle) in a heartbeat of ``rr_ms``."""
        factor = rr_ms / self.rr_ms
        return _Timing(rr_ms, self.n_acquired, tuple(t * factor for t in self.triggers_ms))


def _cine_timing(study: CineStudy, rr_interval_ms: float | None) -> _Timing:
    """Timing written by the cine writers (see ``rr_interval_ms`` of :func:`write_dicom_cine`)."""
    rr = _rr_interval(study, rr_interval_ms)
    n_acquired = study.metadata.n_frames_acquired or study.n_frames
    return _Timing(rr, n_acquired, tuple(_trigger_times(study, rr, n_acquired)))


@dataclass(frozen=True)
class _Stored:
    """uint16 stored values ``[frame, slice, row, col]`` and the rescale mapping them back to intensities."""

    values: np.ndarray
    slope: float
    intercept: float
    rescaled: bool
    """Whether RescaleSlope/RescaleIntercept are written (``rescale`` was asked for)."""

    @property
    def bits(self) -> int:
        """BitsStored: 12 when every value fits, as most scanners store MR images, else 16."""
        return 12 if int(self.values.max(initial=0)) < 4096 else 16


def _storable(study: CineStudy, rescale: bool) -> _Stored:
    values, slope, intercept = _stored_values(study.image, rescale)
    return _Stored(values, slope, intercept, rescale)


def _check_transfer_syntax(transfer_syntax: str | None, study: CineStudy | None = None) -> UID | None:
    """The compressed transfer syntax to encode, or None for Explicit VR Little Endian.

    Raises
    ------
    ValueError
        ``transfer_syntax`` is not one of :data:`COMPRESSIONS` (nor Explicit
        VR Little Endian), or cannot encode the images of ``study`` (see
        :func:`_check_encodable`).
    """
    if transfer_syntax is None or transfer_syntax == ExplicitVRLittleEndian:
        return None
    uid = UID(transfer_syntax)
    if uid in COMPRESSIONS.values():
        if study is not None:
            _check_encodable(uid, study.geometry.shape[1:])
        return uid
    supported = ", ".join(f"{UID(u).name} ({u})" for u in COMPRESSIONS.values())
    name = f" ({uid.name})" if uid.is_transfer_syntax else ""
    raise ValueError(
        f"cannot write transfer syntax {uid}{name}: supported are None "
        f"(Explicit VR Little Endian), {supported}. JPEG Lossless (process 14, {JPEGLosslessSV1}) "
        "can be read but pydicom has no encoder for it"
    )


def _check_encodable(transfer_syntax: UID, shape: tuple[int, int]) -> None:
    """Refuse JPEG 2000 for images with a side under 32 pixels, before anything is written.

    pydicom's only JPEG 2000 encoder, pylibjpeg-openjpeg, always uses 6
    wavelet resolutions, and OpenJPEG needs ``2**5 = 32`` pixels per side for
    them ("Number of resolutions is too high in comparison to the size of
    tiles").
    """
    if transfer_syntax == JPEG2000Lossless and min(shape) < _J2K_MIN_SIDE:
        raise ValueError(
            f"JPEG 2000 Lossless cannot encode {shape[0]} x {shape[1]} pixel images: pydicom's encoder "
            f"(pylibjpeg-openjpeg) uses 6 wavelet resolutions, which need at least {_J2K_MIN_SIDE} pixels "
            "per side; use RLE Lossless or JPEG-LS Lossless for smaller images"
        )


def _compress(ds: Dataset, transfer_syntax: UID | None) -> None:
    """Encode the pixel data of ``ds`` in place (every frame), keeping its SOP Instance UID."""
    if transfer_syntax is not None:
        ds.compress(transfer_syntax, generate_instance_uid=False)


def _random_names(n: int, seed: int | tuple[int, ...]) -> list[str]:
    rng = np.random.default_rng(seed)
    names: list[str] = []
    seen: set[str] = set()
    while len(names) < n:
        name = f"{int(rng.integers(0, 16**8)):08X}"
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def _save_all(items: Sequence[tuple[Path, Dataset]], overwrite: bool) -> list[Path]:
    """Save every dataset through a temporary file; on failure remove those already written."""
    written: list[Path] = []
    try:
        for path, ds in items:
            with atomic_output(path, overwrite=overwrite) as tmp:
                ds.save_as(tmp, enforce_file_format=True)
            written.append(path)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _prepare_folder(folder: Path, must_be_empty: bool, overwrite: bool) -> Path:
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "is a file, not a folder")
    if must_be_empty and not overwrite and folder.exists() and any(folder.iterdir()):
        raise OutputError(folder, "already contains files (use --overwrite to write into it)")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sax_series(study: CineStudy, uid: str, number: int, description: str) -> _Series:
    """The series attributes of a short-axis cine stack."""
    pitch = study.geometry.slice_spacing_mm
    return _Series(
        uid=uid,
        number=number,
        description=description,
        image_type=("ORIGINAL", "PRIMARY", "M", "NONE"),
        slice_thickness_mm=study.geometry.slice_thickness_mm or pitch,
        spacing_between_slices_mm=pitch,
    )


def _cine_image(
    ctx: _Context,
    series: _Series,
    plane: _Plane,
    stored: _Stored,
    frame_slice: tuple[int, int],
    timing: _Timing,
    instance_number: int,
    transfer_syntax: UID | None,
) -> Dataset:
    """One single-frame MR image of a cine: frame ``f`` of slice ``s`` (``frame_slice = (f, s)``)."""
    f, s = frame_slice
    pixels = stored.values[f, s]
    ds = _base_dataset(ctx, series, instance_number)
    _add_mr_module(ds, series)
    _add_plane(ds, plane)
    _add_cardiac(ds, timing.triggers_ms[f], timing.n_acquired, timing.rr_ms)
    _add_pixels(ds, pixels, stored.bits)
    if stored.rescaled:
        ds.RescaleIntercept = _ds(stored.intercept)
        ds.RescaleSlope = _ds(stored.slope)
        ds.RescaleType = "US"
    _add_window(ds, pixels, stored.slope, stored.intercept)
    _compress(ds, transfer_syntax)
    return ds


def _save_in_order(items: list[tuple[Path, Dataset]], shuffle: bool, seed: int, overwrite: bool) -> list[Path]:
    """Save ``items`` (in random order when ``shuffle``) and return their paths in the given order."""
    order = np.random.default_rng(seed).permutation(len(items)) if shuffle else np.arange(len(items))
    _save_all([items[i] for i in order], overwrite)
    return [path for path, _ in items]


def write_dicom_cine(
    study: CineStudy,
    folder: Path,
    *,
    series_number: int = 1,
    series_description: str = "cine SAX bSSFP",
    patient_id: str = "PHANTOM",
    patient_name: str = "Phantom^Opencmr",
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    series_uid: str | None = None,
    rr_interval_ms: float | None = None,
    rescale: bool = False,
    shuffle_names: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    transfer_syntax: str | None = None,
) -> list[Path]:
    """Write ``study`` as a classic DICOM MR cine series, one file per (slice, frame).

    Parameters
    ----------
    study : CineStudy
        The cine to write; intensities must be integers in 0..65535 unless
        ``rescale`` is set.
    folder : pathlib.Path
        Output folder (created if needed).
    series_number, series_description : int, str
        SeriesNumber and SeriesDescription.
    patient_id, patient_name : str
        PatientID and PatientName (``Family^Given``); sex, height and weight
        come from ``study.metadata``.
    study_uid, frame_of_reference_uid, series_uid : str, optional
        UIDs to use (new ones by default). Pass the same ``study_uid`` and
        ``frame_of_reference_uid`` to the decoy writers to put their series
        in the same study and patient space.
    rr_interval_ms : float, optional
        NominalInterval; by default ``60000 / heart_rate_bpm`` from the
        metadata, else 1000 ms. TriggerTime is ``study.frame_times_ms`` when
        known, else ``frame_number * rr / n_frames_acquired``.
    rescale : bool
        Store non-integral or out-of-range intensities as uint16 with
        RescaleSlope/RescaleIntercept (attributes that many vendors add to
        classic MR images, outside the MR Image Module).
    shuffle_names : bool
        Name the files with random hexadecimal names (no extension) and write
        them in random order, so that a reader must sort by headers.
    seed : int
        Seed of the name shuffling.
    overwrite : bool
        Write into a folder that already holds files (files of the same name
        are replaced, others are left as they are).
    transfer_syntax : str, optional
        None (default) for Explicit VR Little Endian, else one of the lossless
        syntaxes of :data:`COMPRESSIONS` (RLE Lossless, JPEG-LS Lossless,
        JPEG 2000 Lossless): each image is compressed with
        :meth:`pydicom.dataset.Dataset.compress` [4]_ and decodes to exactly
        the stored values. JPEG 2000 needs images of at least 32 x 32 pixels.

    Returns
    -------
    list of pathlib.Path
        The files, in (slice, frame) order: ``paths[s * n_frames + f]``.

    Raises
    ------
    ValueError
        Intensities not storable without ``rescale``; an affine whose in-plane
        axes are not orthogonal; a ``transfer_syntax`` that cannot be written
        (JPEG Lossless process 14 among them: pydicom cannot encode it), or
        JPEG 2000 for images with a side under 32 pixels (its encoder's limit).
    OutputError
        ``folder`` is a file, or holds files and ``overwrite`` is False.

    Notes
    -----
    Slices are written in the order of the affine's third axis. A reader
    sorting along ``row_direction x column_direction`` (as
    :func:`opencmr.io.dicom.read_dicom_folder` does) gets the slices back in
    reverse order, with an equivalent affine, when that axis points against
    the normal.
    """
    syntax = _check_transfer_syntax(transfer_syntax, study)
    planes = _stack_planes(study)
    stored = _storable(study, rescale)
    folder = _prepare_folder(folder, must_be_empty=True, overwrite=overwrite)
    ctx = _context(
        study,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    series = _sax_series(study, series_uid or generate_uid(), series_number, series_description)
    timing = _cine_timing(study, rr_interval_ms)
    n_frames, n_files = study.n_frames, study.n_slices * study.n_frames
    names = _random_names(n_files, seed) if shuffle_names else [f"IM_{i + 1:04d}.dcm" for i in range(n_files)]
    items = [
        (
            folder / names[s * n_frames + f],
            _cine_image(ctx, series, plane, stored, (f, s), timing, s * n_frames + f + 1, syntax),
        )
        for s, plane in enumerate(planes)
        for f in range(n_frames)
    ]
    return _save_in_order(items, shuffle_names, seed, overwrite)


def _slice_rr_intervals(rr_intervals_ms: Sequence[float] | None, n_slices: int, default_ms: float) -> list[float]:
    """One positive RR interval per slice (``default_ms`` for every slice when not given)."""
    if rr_intervals_ms is None:
        return [default_ms] * n_slices
    rrs = [float(rr) for rr in rr_intervals_ms]
    if len(rrs) != n_slices or not all(np.isfinite(rr) and rr > 0 for rr in rrs):
        raise ValueError(f"rr_intervals_ms must be {n_slices} positive intervals (one per slice), got {rrs}")
    return rrs


def _per_slice_names(n_slices: int, n_frames: int, shuffle: bool, seed: int) -> list[str]:
    """``S{slice:03d}_{frame:04d}.dcm`` (0-based), or random names from a stream apart from write_dicom_cine's."""
    if shuffle:
        return _random_names(n_slices * n_frames, (seed, 1))
    return [f"S{s:03d}_{f:04d}.dcm" for s in range(n_slices) for f in range(n_frames)]


def write_dicom_cine_per_slice(
    study: CineStudy,
    folder: Path,
    *,
    first_series_number: int = 10,
    series_description: str = "cine SAX bSSFP",
    patient_id: str = "PHANTOM",
    patient_name: str = "Phantom^Opencmr",
    study_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    rr_intervals_ms: Sequence[float] | None = None,
    transfer_syntax: str | None = None,
    shuffle_names: bool = False,
    seed: int = 0,
    overwrite: bool = False,
    series_uids: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``study`` as one classic MR cine series per slice position, as many scanners export a stack.

    Each slice is acquired in its own breath-hold and exported as its own
    series (one position, all phases): slice ``s`` gets SeriesNumber
    ``first_series_number + s`` and its own SeriesInstanceUID, with the same
    SeriesDescription, StudyInstanceUID and FrameOfReferenceUID for all. A
    reader must gather the series back into one stack by geometry.

    Parameters
    ----------
    study : CineStudy
        The cine to write; intensities must be integers in 0..65535.
    folder : pathlib.Path
        Output folder (created if needed).
    first_series_number : int
        SeriesNumber of slice 0.
    series_description : str
        SeriesDescription of every series.
    patient_id, patient_name, study_uid, frame_of_reference_uid : str
        As for :func:`write_dicom_cine`.
    rr_intervals_ms : sequence of float, optional
        The RR interval of each slice's breath-hold (by default the study's,
        as for :func:`write_dicom_cine`): NominalInterval is ``rr_s``,
        HeartRate ``60000 / rr_s`` and the TriggerTime of frame ``f`` is the
        one :func:`write_dicom_cine` writes, scaled by ``rr_s / rr`` (the same
        fraction of the cardiac cycle).
    transfer_syntax : str, optional
        As for :func:`write_dicom_cine`.
    shuffle_names, seed : bool, int
        As for :func:`write_dicom_cine` (the random names differ from its own).
    overwrite : bool
        Write into a folder that already holds files.
    series_uids : sequence of str, optional
        The SeriesInstanceUID of each slice (new ones by default).

    Returns
    -------
    list of pathlib.Path
        The files, in (slice, frame) order: ``paths[s * n_frames + f]``, named
        ``S{slice:03d}_{frame:04d}.dcm`` (0-based) unless ``shuffle_names``.
        InstanceNumber restarts at 1 in each series.

    Raises
    ------
    ValueError
        As for :func:`write_dicom_cine`; ``rr_intervals_ms`` or
        ``series_uids`` not one per slice.
    OutputError
        ``folder`` is a file, or holds files and ``overwrite`` is False.
    """
    syntax = _check_transfer_syntax(transfer_syntax, study)
    planes = _stack_planes(study)
    stored = _storable(study, rescale=False)
    timing = _cine_timing(study, None)
    rrs = _slice_rr_intervals(rr_intervals_ms, study.n_slices, timing.rr_ms)
    uids = list(series_uids) if series_uids is not None else [generate_uid() for _ in planes]
    if len(uids) != study.n_slices:
        raise ValueError(f"need {study.n_slices} series_uids (one per slice), got {len(uids)}")
    folder = _prepare_folder(folder, must_be_empty=True, overwrite=overwrite)
    ctx = _context(
        study,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    n_frames = study.n_frames
    names = _per_slice_names(study.n_slices, n_frames, shuffle_names, seed)
    items: list[tuple[Path, Dataset]] = []
    for s, plane in enumerate(planes):
        series = _sax_series(study, uids[s], first_series_number + s, series_description)
        slice_timing = timing.scaled(rrs[s])
        items += [
            (
                folder / names[s * n_frames + f],
                _cine_image(ctx, series, plane, stored, (f, s), slice_timing, f + 1, syntax),
            )
            for f in range(n_frames)
        ]
    return _save_in_order(items, shuffle_names, seed, overwrite)


def _dicom_files(source: Path) -> list[Path]:
    """Part 10 files (``DICM`` after the preamble) under ``source``, DICOMDIRs excepted, sorted."""
    files = []
    for path in sorted(source.rglob("*")):
        if path.is_file() and is_dicom(path):
            if read_file_meta_info(path).get("MediaStorageSOPClassUID") != MediaStorageDirectoryStorage:
                files.append(path)
    return files


def write_dicom_fileset(source: Path, destination: Path) -> Path:
    """Copy every DICOM file under ``source`` into a DICOM File-set with a DICOMDIR, as on a CD or USB stick.

    The instances are renamed by :class:`pydicom.fileset.FileSet` into nested
    folders of extension-less file IDs (``PT000000/ST000000/SE000000/IM000000``)
    indexed by a ``DICOMDIR`` (Basic Directory IOD) [5]_.

    Parameters
    ----------
    source : pathlib.Path
        Folder searched recursively for DICOM Part 10 files (files with the
        ``DICM`` prefix; other files and DICOMDIRs are skipped).
    destination : pathlib.Path
        Root of the new File-set: created, or an empty folder outside ``source``.

    Returns
    -------
    pathlib.Path
        The DICOMDIR, ``destination / "DICOMDIR"``.

    Raises
    ------
    ValueError
        No DICOM file under ``source``, or ``destination`` inside ``source``.
    OutputError
        ``destination`` is a file or holds files.
    """
    source, destination = Path(source), Path(destination)
    if destination.resolve().is_relative_to(source.resolve()):
        raise ValueError(f"the File-set destination {destination} must not be inside the source {source}")
    files = _dicom_files(source)
    if not files:
        raise ValueError(f"no DICOM Part 10 file under {source}")
    destination = _prepare_folder(destination, must_be_empty=True, overwrite=False)
    fileset = FileSet()
    for path in files:
        fileset.add(path)
    fileset.write(destination)
    return destination / "DICOMDIR"


def _volume_centre_lps(study: CineStudy) -> np.ndarray:
    """Centre of the study's voxel grid in LPS millimetres."""
    s, r, c = study.geometry.shape
    centre = np.asarray(study.geometry.affine) @ np.array([(c - 1) / 2, (r - 1) / 2, (s - 1) / 2, 1.0])
    return (_RAS_TO_LPS @ centre)[:3]


def _centred_plane(
    centre: np.ndarray, row_dir: np.ndarray, col_dir: np.ndarray, shape: tuple[int, int], spacing: float
) -> _Plane:
    """A plane of ``shape`` (rows, cols) pixels of ``spacing`` mm whose centre is ``centre``."""
    rows, cols = shape
    row_dir = np.asarray(row_dir, dtype=np.float64)
    col_dir = np.asarray(col_dir, dtype=np.float64)
    position = centre - (cols - 1) / 2 * spacing * row_dir - (rows - 1) / 2 * spacing * col_dir
    return _Plane(position=position, row_direction=row_dir, col_direction=col_dir, pixel_spacing=(spacing, spacing))


def _ellipse(shape: tuple[int, int], radii: tuple[float, float], value: int) -> np.ndarray:
    rows, cols = shape
    r, c = np.mgrid[:rows, :cols]
    inside = ((r - (rows - 1) / 2) / radii[0]) ** 2 + ((c - (cols - 1) / 2) / radii[1]) ** 2 <= 1
    return np.where(inside, value, 20).astype(np.uint16)


def write_dicom_localizer(
    study: CineStudy,
    folder: Path,
    *,
    study_uid: str,
    frame_of_reference_uid: str | None = None,
    series_number: int = 100,
    series_description: str = "localizer",
    patient_id: str = "PHANTOM",
    patient_name: str = "Phantom^Opencmr",
    field_of_view_mm: float = 350.0,
    overwrite: bool = False,
) -> list[Path]:
    """Write a decoy three-plane localiser series (axial, sagittal, coronal) into ``folder``.

    Parameters
    ----------
    study : CineStudy
        The cine the localiser belongs to: the planes cross at the centre of
        its grid, the matrix is ``max(rows, cols)`` square, and sex, height and
        weight come from its metadata.
    folder : pathlib.Path
        Output folder; it may already hold other series.
    study_uid : str
        StudyInstanceUID (the cine's, to put the localiser in the same study).
    frame_of_reference_uid : str, optional
        The cine's FrameOfReferenceUID (a new one by default).
    series_number, series_description : int, str
        SeriesNumber and SeriesDescription.
    patient_id, patient_name : str
        PatientID and PatientName.
    field_of_view_mm : float
        Square field of view of each plane.
    overwrite : bool
        Replace files of the same name (``LOC_0001.dcm`` ...).

    Returns
    -------
    list of pathlib.Path
        The three files, axial, sagittal, coronal.

    Notes
    -----
    ImageType is ``ORIGINAL\\PRIMARY\\LOCALIZER``, the value by which readers
    recognise localisers; the body is drawn as a bright disc.
    """
    folder = _prepare_folder(folder, must_be_empty=False, overwrite=overwrite)
    ctx = _context(
        study,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    size = max(study.geometry.shape[1:])
    spacing = field_of_view_mm / size
    series = _Series(
        uid=generate_uid(),
        number=series_number,
        description=series_description,
        image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"),
        slice_thickness_mm=8.0,
    )
    centre = _volume_centre_lps(study)
    x, y, z = np.eye(3)
    orientations = [(x, y), (y, -z), (x, -z)]  # axial, sagittal, coronal (LPS)
    pixels = _ellipse((size, size), (size / 3, size / 2.5), 600)
    items = []
    for i, (row_dir, col_dir) in enumerate(orientations):
        ds = _base_dataset(ctx, series, instance_number=i + 1)
        _add_mr_module(ds, series, gated=False)
        _add_plane(ds, _centred_plane(centre, row_dir, col_dir, (size, size), spacing))
        _add_pixels(ds, pixels, 12)
        _add_window(ds, pixels)
        items.append((folder / f"LOC_{i + 1:04d}.dcm", ds))
    return _save_all(items, overwrite)


def write_dicom_long_axis_cine(
    study: CineStudy,
    folder: Path,
    *,
    study_uid: str,
    frame_of_reference_uid: str | None = None,
    series_number: int = 200,
    series_description: str = "cine 4CH",
    patient_id: str = "PHANTOM",
    patient_name: str = "Phantom^Opencmr",
    rr_interval_ms: float | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Write a decoy single-position long-axis cine (a 4-chamber-like plane) into ``folder``.

    Parameters
    ----------
    study : CineStudy
        The short-axis cine: the long-axis plane contains its slice normal and
        its row direction and passes through the centre of its grid; the
        series has as many phases as ``study`` has frames, on the same
        matrix and column spacing.
    folder : pathlib.Path
        Output folder; it may already hold other series.
    study_uid, frame_of_reference_uid : str
        As for :func:`write_dicom_localizer`.
    series_number, series_description : int, str
        SeriesNumber and SeriesDescription.
    patient_id, patient_name : str
        PatientID and PatientName.
    rr_interval_ms : float, optional
        As for :func:`write_dicom_cine`.
    overwrite : bool
        Replace files of the same name (``LAX_0001.dcm`` ...).

    Returns
    -------
    list of pathlib.Path
        One file per phase.

    Notes
    -----
    The image is a simple ellipse whose size follows the cardiac cycle; it is
    meant to be ignored by readers (one slice position), not analysed.
    """
    folder = _prepare_folder(folder, must_be_empty=False, overwrite=overwrite)
    ctx = _context(
        study,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    sax = _stack_planes(study)[0]
    _, rows, cols = study.geometry.shape
    spacing = sax.pixel_spacing[1]
    plane = _centred_plane(_volume_centre_lps(study), sax.row_direction, -sax.normal, (rows, cols), spacing)
    series = _Series(
        uid=generate_uid(),
        number=series_number,
        description=series_description,
        image_type=("ORIGINAL", "PRIMARY", "M", "NONE"),
        slice_thickness_mm=study.geometry.slice_thickness_mm or 8.0,
    )
    timing = _cine_timing(study, rr_interval_ms)
    items = []
    for f in range(study.n_frames):
        squeeze = 1.0 - 0.25 * np.sin(np.pi * f / max(study.n_frames, 1))
        pixels = _ellipse((rows, cols), (rows / 3 * squeeze, cols / 4 * squeeze), 900)
        ds = _base_dataset(ctx, series, instance_number=f + 1)
        _add_mr_module(ds, series)
        _add_plane(ds, plane)
        _add_cardiac(ds, timing.triggers_ms[f], timing.n_acquired, timing.rr_ms)
        _add_pixels(ds, pixels, 12)
        _add_window(ds, pixels)
        items.append((folder / f"LAX_{f + 1:04d}.dcm", ds))
    return _save_all(items, overwrite)
