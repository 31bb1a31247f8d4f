"""DICOM SR output: real phantom DICOM, measured on its truth labels, written as a TID 1500 report, checked by dciodvfy and read back."""

from __future__ import annotations

import shutil
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from opencmr.errors import InputError, OutputError
from opencmr.io.dicom_seg import source_images, write_dicom_seg
from opencmr.io.dicom_sr import write_dicom_sr
from opencmr.io.read import read_study
from opencmr.io.study import CineStudy, LabelMap
from opencmr.labels import Label
from opencmr.measure.function import Measurements, Subject, measure_function
from opencmr.phantom import Phantom, PhantomConfig, make_phantom, write_phantom
from tests.io.test_dicom_seg import DCIODVFY, _dciodvfy, _dicom_study

COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
CYCLE_POINT = "272518008"  # (SCT) Cardiac Cycle Point
DIVISOR = "125308"  # (DCM) Measurement Divisor
ED, ES = "416190007", "416430001"  # (SCT) End diastole, End Systole
METHOD = "370129005"  # (SCT) Measurement Method

# key: (group, (code, scheme), unit, cardiac phase, indexed by BSA)
EXPECTED = {
    "lv_edv_ml": ("LV blood pool", ("8821-1", "LN"), "ml", ED, False),
    "lv_esv_ml": ("LV blood pool", ("8823-7", "LN"), "ml", ES, False),
    "lv_sv_ml": ("LV blood pool", ("90096001", "SCT"), "ml", None, False),
    "lv_ef_percent": ("LV blood pool", ("8811-2", "LN"), "%", None, False),
    "lv_edv_ml_m2": ("LV blood pool", ("8821-1", "LN"), "ml/m2", ED, True),
    "lv_esv_ml_m2": ("LV blood pool", ("8823-7", "LN"), "ml/m2", ES, True),
    "lv_sv_ml_m2": ("LV blood pool", ("277381004", "SCT"), "ml/m2", None, False),
    "lv_co_l_min": ("LV blood pool", ("82799009", "SCT"), "l/min", None, False),
    "lv_co_l_min_m2": ("LV blood pool", ("54993008", "SCT"), "l/min/m2", None, False),
    "rv_edv_ml": ("RV blood pool", ("8822-9", "LN"), "ml", ED, False),
    "rv_esv_ml": ("RV blood pool", ("8824-5", "LN"), "ml", ES, False),
    "rv_sv_ml": ("RV blood pool", ("90096001", "SCT"), "ml", None, False),
    "rv_ef_percent": ("RV blood pool", ("8818-7", "LN"), "%", None, False),
    "rv_edv_ml_m2": ("RV blood pool", ("8822-9", "LN"), "ml/m2", ED, True),
    "rv_esv_ml_m2": ("RV blood pool", ("8824-5", "LN"), "ml/m2", ES, True),
    "rv_sv_ml_m2": ("RV blood pool", ("277381004", "SCT"), "ml/m2", None, False),
    "lv_mass_g": ("LV myocardium", ("18087-7", "LN"), "g", ED, False),
    "lv_myocardial_volume_ed_ml": ("LV myocardium", ("118565006", "SCT"), "ml", ED, False),
    "lv_mass_g_m2": ("LV myocardium", ("18087-7", "LN"), "g/m2", ED, True),
}
#: values with a Measurement Method (how the volume was computed)
VOLUMES = {"lv_edv_ml", "lv_esv_ml", "lv_edv_ml_m2", "lv_esv_ml_m2", "lv_myocardial_volume_ed_ml"}
VOLUMES |= {key.replace("lv_", "rv_") for key in VOLUMES if "myocardial" not in key}
SITES = {"LV blood pool": "87878005", "RV blood pool": "53085002", "LV myocardium": "49848007"}
SEGMENTS = {"LV blood pool": int(Label.LV_BLOOD_POOL), "RV blood pool": 1, "LV myocardium": 2}


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    config = PhantomConfig(
        n_frames=3, n_slices=4, matrix=(48, 40), pixel_spacing_mm=6.0, inplane_samples=1, through_plane_samples=1
    )
    return make_phantom(config)


def _measure(labels: LabelMap) -> Measurements:
    return measure_function(labels, Subject(height_cm=175, weight_kg=70, heart_rate_bpm=60))


def _groups(path: Path, volumetric: bool = False) -> dict[str, object]:
    """The measurement groups of an SR by tracking identifier."""
    sr = hd.sr.srread(path)
    content = sr.content
    groups = content.get_volumetric_roi_measurement_groups() if volumetric else content.get_image_measurement_groups()
    return {group.tracking_identifier: group for group in groups}


def _modifiers(measurement: object) -> dict[str, str]:
    """``{concept code: value code}`` of the HAS CONCEPT MOD items of one measurement."""
    item = measurement[0]  # type: ignore[index]
    return {
        m.ConceptNameCodeSequence[0].CodeValue: m.ConceptCodeSequence[0].CodeValue
        for m in item.get("ContentSequence", [])
        if m.RelationshipType == "HAS CONCEPT MOD" and m.ValueType == "CODE"
    }


def _image_keys(items: list) -> set[tuple[str, int]]:
    """``(SOP Instance UID, frame or 0)`` of IMAGE content items."""
    out = set()
    for item in items:
        ref = item.ReferencedSOPSequence[0]
        frames = ref.get("ReferencedFrameNumber")
        if frames is None:
            out.add((ref.ReferencedSOPInstanceUID, 0))
        else:
            out.update(
                (ref.ReferencedSOPInstanceUID, int(f))
                for f in (frames if ref["ReferencedFrameNumber"].VM > 1 else [frames])
            )
    return out


def _phase_keys(study: CineStudy, measurements: Measurements) -> dict[str, set[tuple[str, int]]]:
    sources = source_images(study)
    out = {}
    for phase, frame in (("ed", measurements.phases.ed_frame), ("es", measurements.phases.es_frame)):
        index = study.frame_index(frame)
        out[phase] = {sources.key(index, s) for s in range(study.n_slices)}
    return out


def _evidence(sr: pydicom.Dataset) -> set[str]:
    """SOP Instance UIDs of the Current Requested Procedure Evidence Sequence."""
    return {
        item.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for item in series.ReferencedSOPSequence
    }


def _assert_conformant(path: Path) -> None:
    if DCIODVFY is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed: conformance not checked")
    errors, warnings = _dciodvfy(path)
    assert errors == [], "\n".join(errors + warnings)


def _check_values(groups: dict[str, object], measurements: Measurements) -> None:
    """Every expected key is written once with its code, unit, phase and divisor, equal to measurements.json."""
    row = measurements.row()
    found = set()
    for name, group in groups.items():
        for m in group.get_measurements():  # type: ignore[attr-defined]
            code = (m.name.value, m.name.scheme_designator)
            modifiers = _modifiers(m)
            key = next(
                (
                    k
                    for k, (g, c, unit, phase, indexed) in EXPECTED.items()
                    if g == name
                    and c == code
                    and unit == m.unit.value
                    and modifiers.get(CYCLE_POINT) == phase
                    and (DIVISOR in modifiers) == indexed
                ),
                None,
            )
            assert key is not None, f"unexpected measurement {code} [{m.unit.value}] {modifiers} in {name}"
            assert key not in found
            found.add(key)
            assert m.unit.scheme_designator == "UCUM"
            assert m.value == pytest.approx(row[key], abs=1e-9)
            if EXPECTED[key][4]:
                assert modifiers[DIVISOR] == "8277-6"  # (LN) Body Surface Area
            assert modifiers.get(METHOD) == ("126030" if key in VOLUMES else None)  # (DCM) Sum of segmented voxels
    assert found == {k for k in EXPECTED if row[k] is not None}


@pytest.mark.parametrize("layout", ["single-series", "enhanced"])
def test_sr_values_units_and_source_references(tmp_path: Path, phantom: Phantom, layout: str) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", layout)
    measurements = _measure(labels)
    path = write_dicom_sr(measurements, study, tmp_path / "out" / "report_sr.dcm")
    assert path == tmp_path / "out" / "report_sr.dcm"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report_sr.dcm"]  # no temporary file left

    sr = pydicom.dcmread(path)
    assert sr.SOPClassUID == COMPREHENSIVE_3D_SR and sr.Modality == "SR"
    assert sr.StudyInstanceUID == study.metadata.study_uid and sr.SeriesInstanceUID != study.metadata.series_uid
    assert sr.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report (TID 1500)
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    observer = {i.ConceptNameCodeSequence[0].CodeValue: i for i in sr.ContentSequence}
    assert observer["121005"].ConceptCodeSequence[0].CodeValue == "121007"  # Observer Type: Device
    assert observer["121013"].TextValue == "opencmr"  # Device Observer Name
    assert observer["121058"].ConceptCodeSequence[0].CodeValue == "241620005"  # Procedure reported: Cardiac MRI

    groups = _groups(path)
    assert set(groups) == set(SITES)
    for name, group in groups.items():
        assert [site.value.value for site in group.finding_sites] == [SITES[name]]
    _check_values(groups, measurements)
    ef = next(m for m in groups["LV blood pool"].get_measurements() if m.name.value == "8811-2")
    assert ef.value == round(measurements.values["lv_ef_percent"], 3) and ef.unit.value == "%"
    mass = next(m for m in groups["LV myocardium"].get_measurements() if m.unit.value == "g")
    assert mass.value == round(measurements.values["lv_mass_g"], 3)

    # source images: the ED and ES images of every slice (ED only for the myocardium), and only those
    keys = _phase_keys(study, measurements)
    assert _image_keys(groups["LV blood pool"].source_images) == keys["ed"] | keys["es"]
    assert _image_keys(groups["RV blood pool"].source_images) == keys["ed"] | keys["es"]
    assert _image_keys(groups["LV myocardium"].source_images) == keys["ed"]
    evidence = _evidence(sr)
    assert evidence == {uid for uid, _ in keys["ed"] | keys["es"]}
    written = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in (tmp_path / "in").rglob("*.dcm")
    }
    assert evidence <= written
    if layout == "enhanced":
        assert len(evidence) == 1 and all(frame > 0 for _, frame in keys["ed"])
    _assert_conformant(path)


def test_sr_references_the_segments_of_the_seg(tmp_path: Path, phantom: Phantom) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", "single-series")
    measurements = _measure(labels)
    seg_path = write_dicom_seg(labels, study, tmp_path / "segmentation.dcm")
    seg = pydicom.dcmread(seg_path, stop_before_pixels=True)
    path = write_dicom_sr(measurements, study, tmp_path / "report_sr.dcm", segmentation_path=seg_path)

    groups = _groups(path, volumetric=True)
    assert set(groups) == set(SITES)
    _check_values(groups, measurements)
    keys = _phase_keys(study, measurements)
    for name, group in groups.items():
        ref = group.roi  # type: ignore[attr-defined]
        assert ref is None  # a segment, not a region
        segment = group.referenced_segment  # type: ignore[attr-defined]
        assert segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert segment.referenced_segment_numbers == [SEGMENTS[name]]
        assert segment.referenced_frame_numbers is None  # the whole segment
        assert _image_keys(segment.source_images_for_segmentation) == (
            keys["ed"] if name == "LV myocardium" else keys["ed"] | keys["es"]
        )
    sr = pydicom.dcmread(path)
    evidence = _evidence(sr)
    assert seg.SOPInstanceUID in evidence
    _assert_conformant(path)


def test_rv_group_left_out_when_the_rv_is_not_measured(tmp_path: Path, phantom: Phantom) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", "single-series")
    data = np.where(np.asarray(labels.data) == Label.RV_BLOOD_POOL, 0, labels.data)
    measurements = measure_function(LabelMap(data, labels.geometry, labels.frame_numbers))  # no height/weight either
    assert measurements.values["rv_edv_ml"] is None and measurements.values["lv_edv_ml_m2"] is None
    path = write_dicom_sr(measurements, study, tmp_path / "report_sr.dcm")
    groups = _groups(path)
    assert set(groups) == {"LV blood pool", "LV myocardium"}
    _check_values(groups, measurements)


def test_non_dicom_study_is_refused_by_name(tmp_path: Path, phantom: Phantom) -> None:
    files = write_phantom(phantom, tmp_path / "in")
    study = read_study(files["image_4d"])
    assert phantom.study.labels is not None
    measurements = _measure(phantom.study.labels)
    with pytest.raises(InputError, match="needs a study read from DICOM") as info:
        write_dicom_sr(measurements, study, tmp_path / "report_sr.dcm")
    assert str(files["image_4d"]) in str(info.value)
    assert not (tmp_path / "report_sr.dcm").exists()


def test_existing_output_needs_overwrite(tmp_path: Path, phantom: Phantom) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", "single-series")
    measurements = _measure(labels)
    path = tmp_path / "out" / "report_sr.dcm"
    path.parent.mkdir()
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        write_dicom_sr(measurements, study, path)
    assert path.read_bytes() == b"keep me"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report_sr.dcm"]
    write_dicom_sr(measurements, study, path, overwrite=True)
    assert pydicom.dcmread(path).Modality == "SR"
    assert sorted(p.name for p in path.parent.iterdir()) == ["report_sr.dcm"]


def test_missing_sources_and_wrong_seg_are_named(tmp_path: Path, phantom: Phantom) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", "single-series")
    measurements = _measure(labels)
    out = tmp_path / "out"
    not_a_seg = next((tmp_path / "in").rglob("*.dcm"))
    with pytest.raises(InputError, match="is not a DICOM Segmentation") as info:
        write_dicom_sr(measurements, study, out / "report_sr.dcm", segmentation_path=not_a_seg)
    assert str(not_a_seg) in str(info.value)
    shutil.move(tmp_path / "in", tmp_path / "moved")
    with pytest.raises(InputError, match="no longer exists"):
        write_dicom_sr(measurements, study, out / "report_sr.dcm")
    assert not out.exists() or not any(out.iterdir())
