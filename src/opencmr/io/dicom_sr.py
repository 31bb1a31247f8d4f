"""DICOM Structured Report output: the cardiac function measurements of a DICOM study as a TID 1500 Measurement Report.

:func:`write_dicom_sr` stores the :class:`~opencmr.measure.function.Measurements`
of a study read from DICOM as one Comprehensive 3D SR instance [1]_ built with
highdicom [2]_, whose content is the "Measurement Report" template TID 1500 [3]_:

* the observer is a device (TID 1004: the algorithm's name, a device UID
  derived from its name and version); the algorithm's name, version and
  parameters (volume method, myocardial density, ED/ES rule, BSA formula, ED
  and ES frames) are also given as Algorithm Identification (TID 4019) in every
  group, and its version as the SR's Software Versions;
* one measurement group per structure, identified by a Tracking Identifier and
  a Finding Site (the SNOMED CT codes of the DICOM SEG,
  :data:`opencmr.io.dicom_seg.SEGMENT_CODES`):
  LV blood pool (EDV, ESV, SV, EF, cardiac output and their BSA-indexed values),
  RV blood pool (EDV, ESV, SV, EF, indexed values; left out when the RV is not
  measured) and LV myocardium (LV mass, myocardial volume at ED, indexed mass).
  Without a SEG the group is a "Measurement and Qualitative Evaluation Group"
  (TID 1501) that references, as its source images, the images of the cardiac
  phases its values were measured in (ED and ES for the ventricles, ED for the
  myocardium). With the SEG written alongside (``segmentation_path``), the
  group is a "Volumetric ROI Measurements" group (TID 1411), the TID 1500
  group for measurements of a region given as a segment: it references the
  structure's segment in the SEG (the whole segment: PS3.3 Table 10-3 allows
  no frame numbers beside a segment number; the writer checks that the
  segment has frames derived from those phases' images — a SEG leaves out
  the images where a structure is absent, so not every image has one) and,
  as its source images for
  segmentation, the same images. The SEG and the source images are listed as
  evidence (Current Requested Procedure Evidence Sequence);
* every value a numeric measurement (TID 300) with a UCUM unit [4]_, rounded
  like ``measurements.json`` (3 decimals); values that are None (not
  computable) are left out.

Codes (all standard; no private coding scheme is needed):

=====================  ==========================================================
LV / RV EDV            LN 8821-1 / 8822-9 "Left/Right Ventricular ED Volume" (CID 3835 Cardiac Volume Measurement)
LV / RV ESV            LN 8823-7 / 8824-5 "Left/Right Ventricular ES Volume" (CID 3835)
stroke volume          SCT 90096001 "Stroke Volume" (CID 3835), ventricle given by the group's finding site
LV / RV EF             LN 8811-2 / 8818-7 "Left/Right ventricular ejection fraction by MR"
                       (CID 3833 Cardiac Ejection Fraction; 8810-4 / 8817-9 "by CT" for CT sources)
SV index               SCT 277381004 "Stroke Index" (CID 12239 Cardiac Output Property)
cardiac output, index  SCT 82799009 "Cardiac Output", SCT 54993008 "Cardiac Index" (CID 12239)
LV mass                LN 18087-7 "Left Ventricle Mass" (CID 12203 Left Ventricle Other Measurement)
myocardial volume      SCT 118565006 "Volume" (CID 7472 Volume Measurement) at the myocardium finding site
procedure reported     SCT 241620005 "Cardiac MRI" (241547009 "Cardiac CT" for CT sources; CID 3757)
=====================  ==========================================================

Post-coordination (HAS CONCEPT MOD, TID 300 $ModType/$ModValue), following
the DICOM guidance for cardiac measurements [5]_:

* cardiac phase: "Cardiac Cycle Point" (SCT 272518008) = "End diastole"
  (SCT 416190007) or "End Systole" (SCT 416430001) from CID 12233 "Cardiac
  Phase", on every value taken in one phase (volumes, mass). The LOINC ED/ES
  volume codes already name the phase; the modifier is repeated there so that
  every phase-specific value says its phase the same way. SV, EF and cardiac
  output span both phases and have none;
* BSA-indexed values without a pre-coordinated code (EDV, ESV, LV mass per
  m²): the concept of the plain value with "Measurement Divisor" (DCM 125308)
  = body surface area (LN 8277-6 "BSA") and a per-m² unit, as in PS3.17 Annex CCCC;
* how volumes were computed: "Measurement Method" (SCT 370129005) = "Sum of
  segmented voxel method for volume" (DCM 126030) or "Integration of sum of
  closed areas on contiguous slices method for volume" (DCM 122503), from CID
  7474 "General Volume Calculation Method".

References
----------
.. [1] DICOM PS3.3, A.35.13 Comprehensive 3D SR IOD.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_A.35.13.html
.. [2] C. P. Bridge et al., "Highdicom: a Python library for standardized
   encoding of image annotations and machine learning model outputs in
   pathology and radiology", J. Digit. Imaging 35, 2022,
   doi:10.1007/s10278-022-00683-y; SR guide:
   https://highdicom.readthedocs.io/en/latest/tid1500.html
.. [3] DICOM PS3.16, TID 1500 Measurement Report, TID 1501 Measurement and
   Qualitative Evaluation Group, TID 1411 Volumetric ROI Measurements and
   Qualitative Evaluations, TID 300 Measurement, TID 1004 Device Observer
   Identifying Attributes, TID 4019 Algorithm Identification.
   https://dicom.nema.org/medical/dicom/current/output/chtml/part16/chapter_A.html
.. [4] G. Schadow and C. J. McDonald, "The Unified Code for Units of
   Measure", Regenstrief Institute. https://ucum.org/ucum ; DICOM PS3.16
   section 7.2.2 (units of measurement in SR).
.. [5] DICOM PS3.17, Annex CCCC "Populating the Simplified Echo Procedure
   Report Template" (Cardiac Cycle Point, Measurement Divisor "Body Surface
   Area"), and PS3.16 CID 12233 "Cardiac Phase".
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pydicom
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import SegmentationStorage, generate_uid

from opencmr.errors import InputError, describe_exception
from opencmr.io._atomic import atomic_output, check_writable
from opencmr.io.dicom_seg import (
    SEGMENT_CODES,
    SourceImages,
    referenced_image_key,
    require_dicom,
    segment_label,
    source_images,
)
from opencmr.io.study import CineStudy
from opencmr.labels import Label
from opencmr.measure.function import MYOCARDIAL_DENSITY_G_ML, Measurements

if TYPE_CHECKING:
    import highdicom as hd

__all__ = ["CARDIAC_CYCLE_POINT", "write_dicom_sr"]

# --------------------------------------------------------------------------- codes

#: Concept modifier for the cardiac phase of a value (DICOM PS3.17 Annex CCCC; SNOMED CT 272518008, SRT R-4089A).
CARDIAC_CYCLE_POINT = Code("272518008", "SCT", "Cardiac Cycle Point")
_PHASE = {
    "ed": codes.SCT.EndDiastole,  # SCT 416190007 "End diastole", CID 12233 Cardiac Phase
    "es": codes.SCT.EndSystole,  # SCT 416430001 "End Systole", CID 12233 Cardiac Phase
}
_DIVISOR = codes.DCM.MeasurementDivisor  # DCM 125308 "Measurement Divisor" (PS3.17 Annex CCCC)
_BSA = codes.LN.BSA  # LN 8277-6 "BSA" (body surface area; CID 3455 Index Method)
_METHOD = {
    "voxels": codes.DCM.SumOfSegmentedVoxelMethodForVolume,  # DCM 126030, CID 7474
    # DCM 122503, CID 7474 General Volume Calculation Method
    "slice-summation": codes.DCM.IntegrationOfSumOfClosedAreasOnContiguousSlicesMethodForVolume,
}

_LV_EDV = codes.LN.LeftVentricularEDVolume  # LN 8821-1, CID 3835 Cardiac Volume Measurement
_LV_ESV = codes.LN.LeftVentricularESVolume  # LN 8823-7, CID 3835
_RV_EDV = codes.LN.RightVentricularEDVolume  # LN 8822-9, CID 3835
_RV_ESV = codes.LN.RightVentricularESVolume  # LN 8824-5, CID 3835
_STROKE_VOLUME = codes.SCT.StrokeVolume  # SCT 90096001, CID 3835
_STROKE_INDEX = codes.SCT.StrokeIndex  # SCT 277381004, CID 12239 Cardiac Output Property
_CARDIAC_OUTPUT = codes.SCT.CardiacOutput  # SCT 82799009, CID 12239
_CARDIAC_INDEX = codes.SCT.CardiacIndex  # SCT 54993008, CID 12239
_LV_MASS = codes.LN.LeftVentricleMass  # LN 18087-7, CID 12203 Left Ventricle Other Measurement
_VOLUME = codes.SCT.Volume  # SCT 118565006, CID 7472 Volume Measurement
_PROCEDURE = {  # TID 1500 Procedure Reported (DCID 100, extended with CID 3757 Cardiovascular Procedure)
    "MR": codes.SCT.CardiacMRI,  # SCT 241620005 "Cardiac MRI"
    "CT": codes.SCT.CardiacCT,  # SCT 241547009 "Cardiac CT"
}
_EJECTION_FRACTION = {  # CID 3833 Cardiac Ejection Fraction
    ("lv", "MR"): codes.LN.LeftVentricularEjectionFractionByMR,  # LN 8811-2
    ("rv", "MR"): codes.LN.RightVentricularEjectionFractionByMR,  # LN 8818-7
    ("lv", "CT"): codes.LN.LeftVentricularEjectionFractionByCT,  # LN 8810-4
    ("rv", "CT"): codes.LN.RightVentricularEjectionFractionByCT,  # LN 8817-9
}

# UCUM units (case-sensitive codes; DICOM PS3.16 section 7.2.2)
_ML = Code("ml", "UCUM", "milliliter")
_ML_M2 = Code("ml/m2", "UCUM", "milliliter per square meter")
_G = Code("g", "UCUM", "gram")
_G_M2 = Code("g/m2", "UCUM", "gram per square meter")
_PERCENT = codes.UCUM.Percent  # "%"
_L_MIN = Code("l/min", "UCUM", "liter per minute")
_L_MIN_M2 = Code("l/min/m2", "UCUM", "liter per minute per square meter")


@dataclass(frozen=True)
class _Value:
    """One measurements.json key as a TID 300 measurement."""

    key: str
    name: Code | str  # a code, or "ef" for the ejection fraction code of the ventricle and modality
    unit: Code
    phase: str | None = None  # "ed" / "es": Cardiac Cycle Point
    indexed: bool = False  # Measurement Divisor: BSA
    volume: bool = False  # Measurement Method: the volume method


def _ventricle(prefix: str, edv: Code, esv: Code) -> tuple[_Value, ...]:
    values = (
        _Value(f"{prefix}_edv_ml", edv, _ML, "ed", volume=True),
        _Value(f"{prefix}_esv_ml", esv, _ML, "es", volume=True),
        _Value(f"{prefix}_sv_ml", _STROKE_VOLUME, _ML),
        _Value(f"{prefix}_ef_percent", "ef", _PERCENT),
        _Value(f"{prefix}_edv_ml_m2", edv, _ML_M2, "ed", indexed=True, volume=True),
        _Value(f"{prefix}_esv_ml_m2", esv, _ML_M2, "es", indexed=True, volume=True),
        _Value(f"{prefix}_sv_ml_m2", _STROKE_INDEX, _ML_M2),
    )
    if prefix == "lv":
        values += (_Value("lv_co_l_min", _CARDIAC_OUTPUT, _L_MIN), _Value("lv_co_l_min_m2", _CARDIAC_INDEX, _L_MIN_M2))
    return values


@dataclass(frozen=True)
class _Group:
    label: Label
    name: str  # Tracking Identifier
    phases: tuple[str, ...]  # the cardiac phases whose images the values come from
    values: tuple[_Value, ...]


_GROUPS = (
    _Group(Label.LV_BLOOD_POOL, "LV blood pool", ("ed", "es"), _ventricle("lv", _LV_EDV, _LV_ESV)),
    _Group(Label.RV_BLOOD_POOL, "RV blood pool", ("ed", "es"), _ventricle("rv", _RV_EDV, _RV_ESV)),
    _Group(
        Label.LV_MYOCARDIUM,
        "LV myocardium",
        ("ed",),
        (
            _Value("lv_mass_g", _LV_MASS, _G, "ed"),
            _Value("lv_myocardial_volume_ed_ml", _VOLUME, _ML, "ed", volume=True),
            _Value("lv_mass_g_m2", _LV_MASS, _G_M2, "ed", indexed=True),
        ),
    ),
)


# --------------------------------------------------------------------------- inputs


def _phase_images(
    study: CineStudy, measurements: Measurements, sources: SourceImages, where: object
) -> dict[str, list[tuple[Dataset, int]]]:
    """``{"ed": [(dataset, frame number or 0), ...], "es": [...]}``: the source image of every slice in each phase."""
    out = {}
    for phase, frame in (("ed", measurements.phases.ed_frame), ("es", measurements.phases.es_frame)):
        try:
            index = study.frame_index(frame)
        except KeyError:
            raise InputError(
                where, f"the {phase.upper()} frame {frame} of the measurements is not in this study"
            ) from None
        out[phase] = [(sources.dataset(index, s), int(sources.frame[index, s])) for s in range(study.n_slices)]
    return out


def _by_instance(images: Sequence[tuple[Dataset, int]]) -> list[tuple[Dataset, list[int]]]:
    """The images grouped per SOP instance, in order: ``[(dataset, [frame numbers] or []), ...]``."""
    grouped: dict[str, tuple[Dataset, list[int]]] = {}
    for ds, frame in images:
        entry = grouped.setdefault(str(ds.SOPInstanceUID), (ds, []))
        if frame and frame not in entry[1]:
            entry[1].append(frame)
    return [(ds, sorted(frames)) for ds, frames in grouped.values()]


@dataclass(frozen=True)
class _Seg:
    """The header of the SEG written alongside, and the segment number of each structure."""

    path: Path
    dataset: Dataset
    numbers: dict[Label, int]


def _read_seg(path: Path, study_uid: str) -> _Seg:
    """Read the SEG's header; find each structure's segment by its property type code (:data:`SEGMENT_CODES`)."""
    try:
        seg = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # noqa: BLE001 - any parser failure is a bad file
        raise InputError(path, f"is not a readable DICOM file ({describe_exception(exc)})") from None
    if seg.get("SOPClassUID") != SegmentationStorage:
        raise InputError(path, "is not a DICOM Segmentation (SOP Class UID differs)")
    if seg.get("StudyInstanceUID") != study_uid:
        raise InputError(path, "is the segmentation of another study (Study Instance UID differs)")
    numbers: dict[Label, int] = {}
    for item in seg.get("SegmentSequence", []):
        label = segment_label(item)
        if label is not None:
            numbers[label] = int(item.SegmentNumber)
    return _Seg(path, seg, numbers)


def _seg_frames(seg: Dataset, segment: int, keys: set[tuple[str, int]]) -> list[int]:
    """1-based SEG frames of ``segment`` derived from one of the source images ``keys`` ((SOP UID, frame))."""
    frames = []
    for number, item in enumerate(seg.get("PerFrameFunctionalGroupsSequence", []), start=1):
        if int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber) != segment:
            continue
        for derivation in item.get("DerivationImageSequence", []):
            for ref in derivation.get("SourceImageSequence", []):
                if referenced_image_key(ref) in keys:
                    frames.append(number)
    return sorted(set(frames))


# --------------------------------------------------------------------------- content


def _measurement(value: _Value, number: float, name: Code, method: Code) -> hd.sr.Measurement:
    """TID 300 with the Cardiac Cycle Point and Measurement Divisor modifiers (first, as TID 300 row 2)."""
    import highdicom as hd

    measurement = hd.sr.Measurement(name=name, value=number, unit=value.unit, method=method if value.volume else None)
    modifiers = []
    if value.phase is not None:
        modifiers.append(
            hd.sr.CodeContentItem(
                CARDIAC_CYCLE_POINT, _PHASE[value.phase], hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD
            )
        )
    if value.indexed:
        modifiers.append(hd.sr.CodeContentItem(_DIVISOR, _BSA, hd.sr.RelationshipTypeValues.HAS_CONCEPT_MOD))
    if modifiers:
        item = measurement[0]
        item.ContentSequence = hd.sr.ContentSequence([*modifiers, *item.get("ContentSequence", [])])
    return measurement


def _modality(image: Dataset) -> str:
    """``"CT"`` for CT sources, else ``"MR"``: picks the codes that name a modality (EF, procedure)."""
    return "CT" if image.get("Modality") == "CT" else "MR"


def _measurements(group: _Group, measurements: Measurements, modality: str) -> list[hd.sr.Measurement]:
    method = _METHOD.get(measurements.curve.method.value, _METHOD["voxels"])
    prefix = "rv" if group.label == Label.RV_BLOOD_POOL else "lv"
    out = []
    for value in group.values:
        number = measurements.values.get(value.key)
        if number is None or not math.isfinite(number):
            continue
        name = value.name
        if not isinstance(name, Code):  # "ef"
            name = _EJECTION_FRACTION[prefix, modality]
        out.append(_measurement(value, round(float(number), 3), name, method))
    return out


def _algorithm_parameters(measurements: Measurements) -> list[str]:
    phases = measurements.phases
    return [
        f"volume method: {measurements.curve.method.value}",
        f"myocardial density: {MYOCARDIAL_DENSITY_G_ML} g/mL",
        f"ED/ES: frames {phases.ed_frame}/{phases.es_frame} (0-based), rule {phases.rule.value}",
        f"BSA formula: {measurements.subject.bsa_formula.value}",
    ]


def _group(
    group: _Group,
    items: list[hd.sr.Measurement],
    images: dict[str, list[tuple[Dataset, int]]],
    algorithm: hd.sr.AlgorithmIdentification,
    seg: _Seg | None,
) -> hd.sr.MeasurementsAndQualitativeEvaluations | hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    """The TID 1501 (no SEG) or TID 1411 (SEG) measurement group of one structure."""
    import highdicom as hd

    phase_images = [image for phase in group.phases for image in images[phase]]
    common = {
        "tracking_identifier": hd.sr.TrackingIdentifier(uid=hd.UID(), identifier=group.name),
        "finding_sites": [hd.sr.FindingSite(SEGMENT_CODES[group.label])],
        "algorithm_id": algorithm,
        "measurements": items,
    }
    if seg is None:
        sources = [
            hd.sr.SourceImageForMeasurementGroup.from_source_image(ds, frames or None)
            for ds, frames in _by_instance(phase_images)
        ]
        return hd.sr.MeasurementsAndQualitativeEvaluations(source_images=sources, **common)
    number = seg.numbers.get(group.label)
    if number is None:
        raise InputError(seg.path, f"has no segment for the {group.name} ({SEGMENT_CODES[group.label].meaning})")
    if not _seg_frames(seg.dataset, number, {(str(ds.SOPInstanceUID), frame) for ds, frame in phase_images}):
        phases = " and ".join(p.upper() for p in group.phases)
        raise InputError(seg.path, f"does not segment the {group.name} in the {phases} images of this study")
    # the whole segment: PS3.3 Table 10-3 forbids Referenced Frame Number beside Referenced Segment Number
    segment = hd.sr.ReferencedSegment(
        sop_class_uid=seg.dataset.SOPClassUID,
        sop_instance_uid=seg.dataset.SOPInstanceUID,
        segment_number=number,
        source_images=[
            hd.sr.SourceImageForSegmentation.from_source_image(ds, frames or None)
            for ds, frames in _by_instance(phase_images)
        ],
    )
    return hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(referenced_segment=segment, **common)


# --------------------------------------------------------------------------- writing


def write_dicom_sr(
    measurements: Measurements,
    study: CineStudy,
    path: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    segmentation_path: str | os.PathLike[str] | None = None,
    series_number: int | None = None,
    series_description: str = "opencmr cardiac function",
    algorithm_name: str = "opencmr",
    algorithm_version: str | None = None,
) -> Path:
    """Write ``measurements`` as a DICOM SR Measurement Report that references the images of ``study``.

    See the module docstring for the content, codes and units.

    Parameters
    ----------
    measurements : Measurements
        As :func:`opencmr.measure.function.measure_function` returned them for
        labels of ``study`` (their ED and ES frames must be frames of it).
    study : CineStudy
        The study, as :func:`opencmr.io.read.read_study` returned it for DICOM
        input (its source files must still be there).
    path : str or PathLike
        Output file, conventionally ``report_sr.dcm``.
    overwrite : bool
        Replace an existing file.
    segmentation_path : str or PathLike, optional
        The DICOM SEG of the same labels (:func:`opencmr.io.dicom_seg.write_dicom_seg`):
        each group then references its segment (TID 1411) and the SEG is evidence.
    series_number : int, optional
        SeriesNumber of the SR; by default the source's plus 2000 (the SEG's is plus 1000).
    series_description : str
        SeriesDescription of the SR.
    algorithm_name, algorithm_version : str
        The device observer and Algorithm Identification (version: opencmr's by default).

    Returns
    -------
    pathlib.Path
        ``path``.

    Raises
    ------
    InputError
        The study was not read from DICOM (the message names it), its source
        files are gone or changed, the measurements' ED/ES frames are not in
        it, the source headers lack what an SR must copy (e.g. PatientID), or
        ``segmentation_path`` is not a SEG of this study's structures at ED/ES.
    OutputError
        ``path`` exists and ``overwrite`` is False, or cannot be written.

    Examples
    --------
    >>> study = read_study("export/")  # doctest: +SKIP
    >>> write_dicom_sr(measurements, study, out_dir / "report_sr.dcm")  # doctest: +SKIP
    """
    import highdicom as hd

    from opencmr import __version__

    target = Path(path)
    where = require_dicom(study, "a DICOM SR", "measurements.json holds the measurements instead")
    check_writable(target, overwrite)
    version = algorithm_version or __version__
    sources = source_images(study)
    images = _phase_images(study, measurements, sources, where)
    first = images["ed"][0][0]
    seg = None
    if segmentation_path is not None:
        seg = _read_seg(Path(segmentation_path), str(first.StudyInstanceUID))
    modality = _modality(first)
    evidence = [ds for ds, _ in _by_instance(images["ed"] + images["es"])] + ([seg.dataset] if seg else [])
    number = series_number
    if number is None:
        number = int(first.get("SeriesNumber") or 0) + 2000
    try:  # highdicom validates as it builds: anything it refuses is this study's problem, named as such
        algorithm = hd.sr.AlgorithmIdentification(
            name=algorithm_name, version=version, parameters=_algorithm_parameters(measurements)
        )
        groups = []
        for group in _GROUPS:
            items = _measurements(group, measurements, modality)
            if items:  # the RV group is left out when the RV is not measured
                groups.append(_group(group, items, images, algorithm, seg))
        device = hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=["opencmr device observer", algorithm_name, version]),
            name=algorithm_name,
            manufacturer_name="opencmr",
            model_name=algorithm_name,
        )
        context = hd.sr.ObservationContext(
            observer_device_context=hd.sr.ObserverContext(
                observer_type=codes.DCM.Device, observer_identifying_attributes=device
            )
        )
        report = hd.sr.MeasurementReport(
            observation_context=context,
            procedure_reported=_PROCEDURE[modality],
            imaging_measurements=groups,
            title=codes.DCM.ImagingMeasurementReport,  # DCM 126000, CID 7021
        )
        sr = hd.sr.Comprehensive3DSR(
            evidence=evidence,
            content=report,
            series_instance_uid=hd.UID(),
            series_number=number,
            sop_instance_uid=hd.UID(),
            instance_number=1,
            manufacturer="opencmr",
            is_complete=True,
            is_final=False,  # automated values, not reviewed: PRELIMINARY, UNVERIFIED
            series_description=series_description,
            manufacturer_model_name=algorithm_name,
            software_versions=version,
        )
    except (ValueError, TypeError, AttributeError) as exc:
        raise InputError(
            where, f"cannot build a DICOM SR from these source images ({describe_exception(exc)})"
        ) from None
    with atomic_output(target, overwrite) as tmp:
        sr.save_as(tmp, enforce_file_format=True)
    return target
