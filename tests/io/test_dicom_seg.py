"""DICOM SEG output: real phantom DICOM in each layout, labels written as SEG, checked by dciodvfy and read back exactly."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest

from opencmr.errors import InputError, OutputError
from opencmr.io.dicom_seg import SEGMENT_CODES, read_dicom_seg, source_images, write_dicom_seg
from opencmr.io.read import read_study
from opencmr.io.study import CineStudy, LabelMap
from opencmr.labels import Label
from opencmr.phantom import Phantom, PhantomConfig, make_phantom, write_phantom

DCIODVFY = shutil.which("dciodvfy")


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    config = PhantomConfig(
        n_frames=3, n_slices=4, matrix=(48, 40), pixel_spacing_mm=6.0, inplane_samples=1, through_plane_samples=1
    )
    return make_phantom(config)


def _dicom_study(phantom: Phantom, folder: Path, layout: str) -> tuple[CineStudy, LabelMap]:
    """The phantom written as DICOM in ``layout`` and read back, with its truth labels on the read grid."""
    files = write_phantom(phantom, folder, dicom=True, dicom_layout=layout)
    study = read_study(files["dicom"])
    truth = phantom.study
    assert truth.labels is not None
    data = np.asarray(truth.labels.data)
    if not study.geometry.same_grid(truth.geometry):  # the reader orders slices along the normal
        data = data[:, ::-1]
    labels = LabelMap(data, study.geometry, truth.labels.frame_numbers)
    assert study.geometry.same_grid(labels.geometry)
    return study, labels


def _dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """Errors and warnings dciodvfy reports for ``path``."""
    assert DCIODVFY is not None
    run = subprocess.run([DCIODVFY, str(path)], check=False, capture_output=True, text=True, timeout=120)
    lines = (run.stdout + run.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")], [line for line in lines if line.startswith("Warning")]


@pytest.mark.parametrize("layout", ["single-series", "series-per-slice", "enhanced"])
def test_seg_round_trip_references_and_codes(tmp_path: Path, phantom: Phantom, layout: str) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", layout)
    path = write_dicom_seg(labels, study, tmp_path / "out" / "segmentation.dcm")
    assert path == tmp_path / "out" / "segmentation.dcm"

    back = read_dicom_seg(path, study)
    assert back.frame_numbers == labels.frame_numbers
    np.testing.assert_array_equal(back.data, labels.data)
    assert back.geometry.same_grid(study.geometry)

    seg = pydicom.dcmread(path)
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentationType == "BINARY"
    assert seg.Manufacturer == "opencmr" and seg.StudyInstanceUID == study.metadata.study_uid
    assert seg.SeriesInstanceUID != study.metadata.series_uid and seg.SOPInstanceUID
    # one frame per structure, slice and phase, each referencing its own source image
    n_images = study.n_frames * study.n_slices
    assert seg.NumberOfFrames == 3 * n_images
    sources = source_images(study)
    expected = {sources.key(f, s) for f in range(study.n_frames) for s in range(study.n_slices)}
    referenced = []
    for item in seg.PerFrameFunctionalGroupsSequence:
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        referenced.append((ref.ReferencedSOPInstanceUID, int(ref.get("ReferencedFrameNumber", 0))))
    assert set(referenced) == expected and len(set(referenced)) == n_images
    written = {
        str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in (tmp_path / "in").rglob("*.dcm")
    }
    assert {uid for uid, _ in expected} <= written
    listed = {i.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for i in s.ReferencedInstanceSequence}
    assert {uid for uid, _ in expected} <= listed
    if layout == "enhanced":
        assert len({uid for uid, _ in expected}) == 1 and {n for _, n in expected} == set(range(1, n_images + 1))
    if layout == "series-per-slice":
        assert len(seg.ReferencedSeriesSequence) >= study.n_slices

    segments = {int(s.SegmentNumber): s for s in seg.SegmentSequence}
    assert sorted(segments) == [1, 2, 3]
    expected_codes = {
        Label.RV_BLOOD_POOL: ("53085002", "SCT"),
        Label.LV_MYOCARDIUM: ("49848007", "SCT"),
        Label.LV_BLOOD_POOL: ("87878005", "SCT"),
    }
    for label, code in expected_codes.items():
        item = segments[int(label)]
        prop = item.SegmentedPropertyTypeCodeSequence[0]
        assert (prop.CodeValue, prop.CodingSchemeDesignator) == code == (SEGMENT_CODES[label].value, "SCT")
        category = item.SegmentedPropertyCategoryCodeSequence[0]
        assert (category.CodeValue, category.CodingSchemeDesignator) == ("91723000", "SCT")
        assert item.SegmentAlgorithmType == "AUTOMATIC" and item.SegmentAlgorithmName == "opencmr"

    if DCIODVFY is None:
        pytest.skip("dciodvfy (Debian package dicom3tools) is not installed: conformance not checked")
    errors, warnings = _dciodvfy(path)
    assert errors == [], "\n".join(errors + warnings)


def test_subset_of_frames_and_single_frame(tmp_path: Path, phantom: Phantom) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", "single-series")
    for frames in ((0, 2), (1,)):
        subset = LabelMap(np.stack([labels.frame(f) for f in frames]), labels.geometry, frames)
        path = write_dicom_seg(subset, study, tmp_path / f"seg{len(frames)}.dcm")
        back = read_dicom_seg(path, study)
        assert back.frame_numbers == frames
        np.testing.assert_array_equal(back.data, subset.data)
        if DCIODVFY is not None:
            assert _dciodvfy(path)[0] == []


def test_zipped_source(tmp_path: Path, phantom: Phantom) -> None:
    files = write_phantom(phantom, tmp_path / "in", dicom=True)
    archive = Path(shutil.make_archive(str(tmp_path / "export"), "zip", files["dicom"]))
    study = read_study(archive)
    labels = LabelMap(np.zeros((1, *study.geometry.shape), np.uint8), study.geometry, (0,))
    back = read_dicom_seg(write_dicom_seg(labels, study, tmp_path / "seg.dcm"), study)
    np.testing.assert_array_equal(back.data, labels.data)


def test_existing_output_needs_overwrite(tmp_path: Path, phantom: Phantom) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", "single-series")
    path = tmp_path / "segmentation.dcm"
    path.write_bytes(b"keep me")
    with pytest.raises(OutputError, match="already exists"):
        write_dicom_seg(labels, study, path)
    assert path.read_bytes() == b"keep me"
    write_dicom_seg(labels, study, path, overwrite=True)
    assert pydicom.dcmread(path).Modality == "SEG"


def test_non_dicom_study_is_refused_by_name(tmp_path: Path, phantom: Phantom) -> None:
    files = write_phantom(phantom, tmp_path / "in")
    study = read_study(files["image_4d"])
    labels = LabelMap(np.zeros((1, *study.geometry.shape), np.uint8), study.geometry, (0,))
    with pytest.raises(InputError, match="needs a study read from DICOM") as info:
        write_dicom_seg(labels, study, tmp_path / "seg.dcm")
    assert str(files["image_4d"]) in str(info.value)
    assert not (tmp_path / "seg.dcm").exists()


def test_labels_on_another_grid_are_refused(tmp_path: Path, phantom: Phantom) -> None:
    study, _ = _dicom_study(phantom, tmp_path / "in", "single-series")
    other = CineStudy(study.image[:, :, :-1], type(study.geometry)(study.geometry.affine, (4, 47, 40)))
    wrong = LabelMap(np.zeros((1, 4, 47, 40), np.uint8), other.geometry, (0,))
    with pytest.raises(InputError, match="not on the grid"):
        write_dicom_seg(wrong, study, tmp_path / "seg.dcm")


def test_moved_source_files_are_named(tmp_path: Path, phantom: Phantom) -> None:
    study, labels = _dicom_study(phantom, tmp_path / "in", "single-series")
    shutil.move(tmp_path / "in", tmp_path / "moved")
    with pytest.raises(InputError, match="no longer exists"):
        write_dicom_seg(labels, study, tmp_path / "seg.dcm")


def test_analyze_writes_the_seg_for_dicom_input_only(tmp_path: Path, phantom: Phantom) -> None:
    from opencmr.analysis import AnalysisOptions, analyze_study

    study, _ = _dicom_study(phantom, tmp_path / "dicom", "single-series")
    source = Path(study.metadata.source)
    result = analyze_study(source, tmp_path / "out", AnalysisOptions(height_cm=175, weight_kg=70, tta=False))
    assert result.files["segmentation_dicom"] == [tmp_path / "out" / "segmentation.dcm"]
    back = read_dicom_seg(tmp_path / "out" / "segmentation.dcm", study)
    np.testing.assert_array_equal(back.data, result.study.labels.data)
    errors, _ = _dciodvfy(tmp_path / "out" / "segmentation.dcm") if shutil.which("dciodvfy") else ([], [])
    assert errors == []
    # the measurements as a DICOM SR (TID 1500) beside it, referencing the SEG; its EF is measurements.json's
    assert result.files["report_sr_dicom"] == [tmp_path / "out" / "report_sr.dcm"]
    import highdicom as hd

    sr = hd.sr.srread(tmp_path / "out" / "report_sr.dcm")
    assert sr.Modality == "SR"
    groups = {g.tracking_identifier: g for g in sr.content.get_volumetric_roi_measurement_groups()}
    seg_uid = pydicom.dcmread(tmp_path / "out" / "segmentation.dcm").SOPInstanceUID
    assert groups["LV blood pool"].referenced_segment.referenced_sop_instance_uid == seg_uid
    ef = next(m for m in groups["LV blood pool"].get_measurements() if m.name.value == "8811-2")  # LVEF by MR
    assert ef.value == json.loads((tmp_path / "out" / "measurements.json").read_text())["lv_ef_percent"]
    errors, _ = _dciodvfy(tmp_path / "out" / "report_sr.dcm") if shutil.which("dciodvfy") else ([], [])
    assert errors == []

    nifti = tmp_path / "nifti"
    write_phantom(phantom, nifti)
    result = analyze_study(nifti / "phantom_4d.nii.gz", tmp_path / "out2", AnalysisOptions(tta=False))
    assert "segmentation_dicom" not in result.files and not (tmp_path / "out2" / "segmentation.dcm").exists()
    assert "report_sr_dicom" not in result.files and not (tmp_path / "out2" / "report_sr.dcm").exists()


def test_a_source_the_seg_writer_refuses_does_not_stop_the_analysis(tmp_path: Path, phantom: Phantom) -> None:
    """DICOM without PatientID reads fine but highdicom cannot build a SEG: analyze goes on and says why."""
    from opencmr.analysis import AnalysisOptions, analyze_study

    study, _ = _dicom_study(phantom, tmp_path / "dicom", "single-series")
    source = Path(study.metadata.source)
    for path in source.rglob("*.dcm"):
        ds = pydicom.dcmread(path)
        if "PatientID" in ds:
            del ds.PatientID
        ds.save_as(path)
    result = analyze_study(source, tmp_path / "out", AnalysisOptions(height_cm=175, weight_kg=70, tta=False))
    assert "segmentation_dicom" not in result.files and not (tmp_path / "out" / "segmentation.dcm").exists()
    assert any(note.startswith("no segmentation.dcm:") for note in result.qc.notes)
    assert any(note.startswith("no report_sr.dcm:") for note in result.qc.notes)
    assert not (tmp_path / "out" / "report_sr.dcm").exists()
    assert (tmp_path / "out" / "qc.json").is_file() and (tmp_path / "out" / "report.html").is_file()
