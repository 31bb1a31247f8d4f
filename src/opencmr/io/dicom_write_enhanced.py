"""Write a cine study as one Enhanced MR Image multi-frame file, as recent scanners export it.

The file is an Enhanced MR Image Storage object (SOP Class
1.2.840.10008.5.1.4.1.1.4.1) holding every slice and phase as frames [1]_.
What a classic series spreads over file headers lives in functional groups
[2]_: the geometry shared by all frames (pixel spacing, orientation, rescale)
in the Shared Functional Groups Sequence, and the position, cardiac phase and
dimension indices of each frame in the Per-frame Functional Groups Sequence.
The frames can be stored in any order (``frame_order``), so that a reader
must sort them by their functional groups, never by their place in the file.

The shared helpers (patient/study/series attributes, planes, stored values,
timing, compression) come from :mod:`opencmr.io.dicom_write`.

References
----------
.. [1] DICOM PS3.3, A.36.2 Enhanced MR Image IOD.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_A.36.2.html
.. [2] DICOM PS3.3, C.7.6.16 Multi-frame Functional Groups Module and
   C.7.6.17 Multi-frame Dimension Module.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.16.html
.. [3] DICOM PS3.3, C.8.13 Enhanced MR Image, MR Pulse Sequence and the MR
   functional group macros.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.8.13.html
.. [4] DICOM PS3.3, C.7.6.18.1 Cardiac Synchronization Module.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.7.6.18.html
"""

from __future__ import annotations

import datetime as _dt
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset
from pydicom.uid import UID, generate_uid

from opencmr.io.dicom_write import (
    _add_pixels,
    _add_window,
    _check_transfer_syntax,
    _cine_timing,
    _common_dataset,
    _compress,
    _Context,
    _context,
    _ds,
    _ds_list,
    _Plane,
    _prepare_folder,
    _sax_series,
    _save_all,
    _Series,
    _stack_planes,
    _storable,
    _Stored,
    _Timing,
)
from opencmr.io.study import CineStudy

__all__ = ["ENHANCED_MR_IMAGE_STORAGE", "FrameOrder", "write_dicom_enhanced_cine"]

ENHANCED_MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4.1"
"""SOP Class UID of Enhanced MR Image Storage."""

_IMAGE_TYPE = ("ORIGINAL", "PRIMARY", "CINE", "NONE")
_BREATH_HOLD_S = 10.0
"""Time between the acquisitions of two slices (one breath-hold each), for the acquisition date-times."""

_DIMENSIONS = (
    ("StackID", "stack"),
    ("InStackPositionNumber", "slice position in the stack"),
    ("TemporalPositionIndex", "cardiac phase"),
)
"""Dimension index pointers (all in the Frame Content Sequence) and their labels."""


class FrameOrder(str, Enum):
    """Order of the frames in the file."""

    SLICE_MAJOR = "slice-major"
    """Every phase of slice 0, then every phase of slice 1, ..."""
    TIME_MAJOR = "time-major"
    """Every slice of phase 0, then every slice of phase 1, ..."""
    SHUFFLED = "shuffled"
    """A seeded random permutation."""


def _parse_frame_order(value: str | FrameOrder) -> FrameOrder:
    try:
        return FrameOrder(value)
    except ValueError:
        choices = ", ".join(repr(o.value) for o in FrameOrder)
        raise ValueError(f"frame_order must be one of {choices}, got {value!r}") from None


def _frame_order(n_slices: int, n_frames: int, order: FrameOrder, seed: int) -> list[tuple[int, int]]:
    """The ``(slice, frame)`` of each frame of the file, in file order."""
    slice_major = [(s, f) for s in range(n_slices) for f in range(n_frames)]
    if order is FrameOrder.SLICE_MAJOR:
        return slice_major
    if order is FrameOrder.TIME_MAJOR:
        return [(s, f) for f in range(n_frames) for s in range(n_slices)]
    return [slice_major[i] for i in np.random.default_rng(seed).permutation(len(slice_major))]


def _item(**attributes: Any) -> Dataset:
    """A sequence item with the given attributes (keywords of the DICOM dictionary)."""
    item = Dataset()
    for keyword, value in attributes.items():
        setattr(item, keyword, value)
    return item


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def _datetime(moment: _dt.datetime) -> str:
    """A DICOM DT value with microseconds."""
    return moment.strftime("%Y%m%d%H%M%S.%f")


def _start(ctx: _Context) -> _dt.datetime:
    return _dt.datetime.strptime(ctx.date + ctx.time, "%Y%m%d%H%M%S")


def _image_description(ds: Dataset) -> None:
    """Common CT/MR and MR Image Description macros, at image or frame level [3]_."""
    ds.PixelPresentation = "MONOCHROME"
    ds.VolumetricProperties = "VOLUME"
    ds.VolumeBasedCalculationTechnique = "NONE"
    ds.ComplexImageComponent = "MAGNITUDE"
    ds.AcquisitionContrast = "UNKNOWN"


def _geometry_groups(groups: Dataset, plane: _Plane, series: _Series) -> None:
    """Pixel Measures and Plane Orientation (Patient) functional groups, shared by every frame."""
    measures = _item(PixelSpacing=_ds_list(plane.pixel_spacing), SliceThickness=_ds(series.slice_thickness_mm))
    if series.spacing_between_slices_mm is not None:
        measures.SpacingBetweenSlices = _ds(series.spacing_between_slices_mm)
    groups.PixelMeasuresSequence = [measures]
    orientation = np.concatenate([plane.row_direction, plane.col_direction])
    groups.PlaneOrientationSequence = [_item(ImageOrientationPatient=_ds_list(orientation))]


def _pixel_groups(groups: Dataset, stored: _Stored) -> None:
    """Pixel Value Transformation (identity unless rescaled), Frame VOI LUT and Frame Anatomy groups."""
    groups.PixelValueTransformationSequence = [
        _item(RescaleIntercept=_ds(stored.intercept), RescaleSlope=_ds(stored.slope), RescaleType="US")
    ]
    window = Dataset()
    _add_window(window, stored.values, stored.slope, stored.intercept)
    groups.FrameVOILUTSequence = [window]
    heart = _code("80891009", "SCT", "Heart")
    groups.FrameAnatomySequence = [_item(AnatomicRegionSequence=[heart], FrameLaterality="U")]
    frame_type = _item(FrameType=list(_IMAGE_TYPE))
    _image_description(frame_type)
    groups.MRImageFrameTypeSequence = [frame_type]


def _mr_acquisition_groups(groups: Dataset, rows: int, cols: int) -> None:
    """The MR functional groups required for ORIGINAL images, of a 2D bSSFP cine [3]_."""
    groups.MRTimingAndRelatedParametersSequence = [
        _item(
            RepetitionTime=_ds(3.0),
            FlipAngle=_ds(60.0),
            EchoTrainLength=1,
            RFEchoTrainLength=1,
            GradientEchoTrainLength=1,
            SpecificAbsorptionRateSequence=[
                _item(SpecificAbsorptionRateDefinition="IEC_WHOLE_BODY", SpecificAbsorptionRateValue=0.5)
            ],
            GradientOutputType="DB_DT",
            GradientOutput=_ds(20.0),
            OperatingModeSequence=[
                _item(OperatingModeType=kind, OperatingMode="IEC_NORMAL")
                for kind in ("STATIC FIELD", "RF", "GRADIENT")
            ],
        )
    ]
    groups.MRFOVGeometrySequence = [
        _item(
            InPlanePhaseEncodingDirection="ROW",
            MRAcquisitionFrequencyEncodingSteps=cols,
            MRAcquisitionPhaseEncodingStepsInPlane=rows,
            PercentSampling=_ds(100.0),
            PercentPhaseFieldOfView=_ds(100.0 * rows / cols),
        )
    ]
    groups.MREchoSequence = [_item(EffectiveEchoTime=_ds(1.5))]
    groups.MRModifierSequence = [
        _item(
            InversionRecovery="NO",
            FlowCompensation="NONE",
            Spoiling="NONE",
            T2Preparation="NO",
            SpectrallySelectedExcitation="NONE",
            SpatialPresaturation="NONE",
            PartialFourier="NO",
            ParallelAcquisition="NO",
        )
    ]
    groups.MRImagingModifierSequence = [
        _item(
            MagnetizationTransfer="NONE",
            BloodSignalNulling="NO",
            Tagging="NONE",
            TransmitterFrequency=_ds(63.87),
            PixelBandwidth=_ds(930.0),
        )
    ]
    elements = [_item(MultiCoilElementName=f"H{i}", MultiCoilElementUsed="YES") for i in range(1, 5)]
    groups.MRReceiveCoilSequence = [
        _item(
            ReceiveCoilName="cardiac array",
            ReceiveCoilManufacturerName="",
            ReceiveCoilType="MULTICOIL",
            QuadratureReceiveCoil="NO",
            MultiCoilDefinitionSequence=elements,
        )
    ]
    groups.MRTransmitCoilSequence = [
        _item(TransmitCoilName="body", TransmitCoilManufacturerName="", TransmitCoilType="BODY")
    ]
    groups.MRAveragesSequence = [_item(NumberOfAverages=_ds(1.0))]


def _shared_groups(plane: _Plane, series: _Series, stored: _Stored) -> Dataset:
    """The Shared Functional Groups Sequence item: everything that does not change between frames."""
    groups = Dataset()
    _geometry_groups(groups, plane, series)
    _pixel_groups(groups, stored)
    _mr_acquisition_groups(groups, *stored.values.shape[-2:])
    return groups


def _frame_groups(plane: _Plane, slice_frame: tuple[int, int], timing: _Timing, start: _dt.datetime) -> Dataset:
    """The Per-frame Functional Groups Sequence item of frame ``f`` of slice ``s`` (``slice_frame = (s, f)``)."""
    s, f = slice_frame
    trigger = timing.triggers_ms[f]
    acquired = _datetime(start + _dt.timedelta(seconds=_BREATH_HOLD_S * s, milliseconds=trigger))
    groups = Dataset()
    groups.FrameContentSequence = [
        _item(
            FrameAcquisitionDateTime=acquired,
            FrameReferenceDateTime=acquired,
            FrameAcquisitionDuration=timing.rr_ms / timing.n_acquired,
            StackID="1",
            InStackPositionNumber=s + 1,
            TemporalPositionIndex=f + 1,
            DimensionIndexValues=[1, s + 1, f + 1],
        )
    ]
    groups.PlanePositionSequence = [_item(ImagePositionPatient=_ds_list(plane.position))]
    groups.CardiacSynchronizationSequence = [
        _item(
            NominalPercentageOfCardiacPhase=_ds(100.0 * trigger / timing.rr_ms),
            NominalCardiacTriggerDelayTime=trigger,
            ActualCardiacTriggerDelayTime=trigger,
            RRIntervalTimeNominal=timing.rr_ms,
        )
    ]
    return groups


def _add_dimensions(ds: Dataset) -> None:
    """Multi-frame Dimension module: (stack, position in stack, cardiac phase) [2]_."""
    organization = generate_uid()
    ds.DimensionOrganizationSequence = [_item(DimensionOrganizationUID=organization)]
    ds.DimensionOrganizationType = "3D_TEMPORAL"
    ds.DimensionIndexSequence = [
        _item(
            DimensionOrganizationUID=organization,
            DimensionIndexPointer=tag_for_keyword(keyword),
            FunctionalGroupPointer=tag_for_keyword("FrameContentSequence"),
            DimensionDescriptionLabel=label,
        )
        for keyword, label in _DIMENSIONS
    ]


def _add_cardiac_synchronization(ds: Dataset, timing: _Timing) -> None:
    """Cardiac Synchronization module of a retrospectively ECG-gated cine [4]_."""
    ds.CardiacSynchronizationTechnique = "RETROSPECTIVE"
    ds.CardiacSignalSource = "ECG"
    ds.CardiacRRIntervalSpecified = timing.rr_ms
    ds.CardiacBeatRejectionTechnique = "NONE"
    ds.LowRRValue = int(round(timing.rr_ms * 0.8))
    ds.HighRRValue = int(round(timing.rr_ms * 1.2))
    ds.IntervalsAcquired = 0
    ds.IntervalsRejected = 0
    ds.CardiacFramingType = "FORW"


def _add_pulse_sequence(ds: Dataset) -> None:
    """MR Pulse Sequence module of a segmented 2D balanced steady-state free precession cine [3]_."""
    ds.PulseSequenceName = "opencmr_bssfp"
    ds.MRAcquisitionType = "2D"
    ds.EchoPulseSequence = "GRADIENT"
    ds.MultiPlanarExcitation = "NO"
    ds.PhaseContrast = "NO"
    ds.TimeOfFlightContrast = "NO"
    ds.SteadyStatePulseSequence = "TRANSVERSE"  # fully balanced (TrueFISP, FIESTA, balanced FFE)
    ds.EchoPlanarPulseSequence = "NO"
    ds.SaturationRecovery = "NO"
    ds.SpectrallySelectedSuppression = "NONE"
    ds.OversamplingPhase = "NONE"
    ds.GeometryOfKSpaceTraversal = "RECTILINEAR"
    ds.RectilinearPhaseEncodeReordering = "LINEAR"
    ds.SegmentedKSpaceTraversal = "PARTIAL"
    ds.NumberOfKSpaceTrajectories = 1


def _add_enhanced_image(ds: Dataset, ctx: _Context, n_slices: int) -> None:
    """Enhanced MR Image module and MR Image and Spectroscopy Instance macro [3]_."""
    ds.ImageType = list(_IMAGE_TYPE)
    _image_description(ds)
    ds.AcquisitionNumber = 1
    ds.AcquisitionDateTime = _datetime(_start(ctx))
    ds.AcquisitionDuration = _BREATH_HOLD_S * n_slices
    ds.ContentQualification = "RESEARCH"
    ds.ResonantNucleus = "1H"
    ds.KSpaceFiltering = "NONE"
    ds.MagneticFieldStrength = _ds(1.5)
    ds.ApplicableSafetyStandardAgency = "IEC"
    ds.BurnedInAnnotation = "NO"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"


def _enhanced_dataset(ctx: _Context, series: _Series, timing: _Timing, n_slices: int) -> Dataset:
    """Every module of the Enhanced MR Image IOD but the pixels and the functional groups [1]_."""
    ds = _common_dataset(ctx, series, ENHANCED_MR_IMAGE_STORAGE)
    ds.DeviceSerialNumber = "0001"  # Enhanced General Equipment
    ds.InstanceNumber = 1
    ds.ContentDate = ctx.date
    ds.ContentTime = ctx.time
    _add_enhanced_image(ds, ctx, n_slices)
    _add_pulse_sequence(ds)
    _add_cardiac_synchronization(ds, timing)
    ds.AcquisitionContextSequence = []
    _add_dimensions(ds)
    return ds


def _add_frames(
    ds: Dataset,
    planes: list[_Plane],
    stored: _Stored,
    order: list[tuple[int, int]],
    timing: _Timing,
    start: _dt.datetime,
) -> None:
    """Per-frame functional groups and pixel data of the frames, in file order."""
    ds.PerFrameFunctionalGroupsSequence = [_frame_groups(planes[s], (s, f), timing, start) for s, f in order]
    pixels = np.stack([stored.values[f, s] for s, f in order])
    _add_pixels(ds, pixels, stored.bits)
    ds.NumberOfFrames = len(order)


def write_dicom_enhanced_cine(
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
    frame_order: str = "slice-major",
    transfer_syntax: str | None = None,
    file_name: str = "ENH_0001.dcm",
    overwrite: bool = False,
    seed: int = 0,
) -> Path:
    """Write ``study`` as one Enhanced MR Image Storage file holding every slice and phase as frames.

    Parameters
    ----------
    study : CineStudy
        The cine to write; intensities must be integers in 0..65535 unless
        ``rescale`` is set.
    folder : pathlib.Path
        Output folder (created if needed); it may already hold other series.
    series_number, series_description : int, str
        SeriesNumber and SeriesDescription.
    patient_id, patient_name : str
        As for :func:`~opencmr.io.dicom_write.write_dicom_cine`.
    study_uid, frame_of_reference_uid, series_uid : str, optional
        As for :func:`~opencmr.io.dicom_write.write_dicom_cine`.
    rr_interval_ms : float, optional
        RRIntervalTimeNominal of every frame; the NominalCardiacTriggerDelayTime
        of each frame is the TriggerTime
        :func:`~opencmr.io.dicom_write.write_dicom_cine` would write.
    rescale : bool
        Store non-integral or out-of-range intensities as uint16 with a
        RescaleSlope/RescaleIntercept in the shared Pixel Value
        Transformation group (an identity transformation otherwise).
    frame_order : {"slice-major", "time-major", "shuffled"}
        Order of the frames in the file: every phase of slice 0 first, every
        slice of phase 0 first, or a random permutation drawn from ``seed``.
    transfer_syntax : str, optional
        As for :func:`~opencmr.io.dicom_write.write_dicom_cine`: every frame
        is compressed into the encapsulated pixel data.
    file_name : str
        Name of the file in ``folder``.
    overwrite : bool
        Replace a file of the same name.
    seed : int
        Seed of the ``"shuffled"`` frame order.

    Returns
    -------
    pathlib.Path
        The file.

    Raises
    ------
    ValueError
        As for :func:`~opencmr.io.dicom_write.write_dicom_cine`; an unknown
        ``frame_order``.
    OutputError
        ``folder`` is a file, or the file exists and ``overwrite`` is False.

    Notes
    -----
    Frame ``f`` of slice ``s`` has StackID ``"1"``, InStackPositionNumber
    ``s + 1`` (slices in the order of the affine's third axis),
    TemporalPositionIndex ``f + 1`` and DimensionIndexValues
    ``[1, s + 1, f + 1]`` over the dimensions (StackID,
    InStackPositionNumber, TemporalPositionIndex).
    """
    order = _parse_frame_order(frame_order)
    syntax: UID | None = _check_transfer_syntax(transfer_syntax, study)
    planes = _stack_planes(study)
    stored = _storable(study, rescale)
    folder = _prepare_folder(folder, must_be_empty=False, overwrite=overwrite)
    ctx = _context(
        study,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        frame_of_reference_uid=frame_of_reference_uid,
    )
    series = _sax_series(study, series_uid or generate_uid(), series_number, series_description)
    timing = _cine_timing(study, rr_interval_ms)
    ds = _enhanced_dataset(ctx, series, timing, study.n_slices)
    ds.SharedFunctionalGroupsSequence = [_shared_groups(planes[0], series, stored)]
    frames = _frame_order(study.n_slices, study.n_frames, order, seed)
    _add_frames(ds, planes, stored, frames, timing, _start(ctx))
    _compress(ds, syntax)
    return _save_all([(folder / file_name, ds)], overwrite)[0]
