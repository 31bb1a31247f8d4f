"""One cine written in the layouts scanners export, checked with pydicom alone (not opencmr's reader).

Layouts: one classic series (optionally compressed), one series per slice,
one Enhanced MR multi-frame file, a DICOM File-set with a DICOMDIR, and the
phantom's ``dicom/`` folder in each of them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.fileset import FileSet
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    RLELossless,
)

from opencmr.errors import OutputError
from opencmr.io.dicom_write import (
    write_dicom_cine,
    write_dicom_cine_per_slice,
    write_dicom_fileset,
    write_dicom_localizer,
)
from opencmr.io.dicom_write_enhanced import ENHANCED_MR_IMAGE_STORAGE, write_dicom_enhanced_cine
from opencmr.io.study import CineStudy, Geometry
from opencmr.phantom import Phantom, PhantomConfig, make_phantom, write_phantom
from opencmr.phantom.write import _OWN_FILES

DCIODVFY = shutil.which("dciodvfy")
SYNTAXES = [None, RLELossless, JPEGLSLossless, JPEG2000Lossless]
RR_MS = 900.0


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    config = PhantomConfig(n_frames=3, n_slices=4, matrix=(48, 40), pixel_spacing_mm=6.0, rr_interval_ms=RR_MS, seed=2)
    return make_phantom(config)


@pytest.fixture(scope="module")
def study(phantom: Phantom) -> CineStudy:
    return phantom.study


def _expected_planes(study: CineStudy) -> tuple[np.ndarray, np.ndarray]:
    """(positions [slice, 3], orientation [6]) in LPS, straight from the RAS affine over (col, row, slice)."""
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(study.geometry.affine)
    positions = np.array([lps[:3, 3] + s * lps[:3, 2] for s in range(study.n_slices)])
    row_dir = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    col_dir = lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    return positions, np.concatenate([row_dir, col_dir])


def _errors(path: Path) -> list[str]:
    assert DCIODVFY is not None
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, timeout=60)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def _syntax_of(ds: pydicom.Dataset) -> str:
    return str(ds.file_meta.TransferSyntaxUID)


# --- single series, compressed ---------------------------------------------------------------


@pytest.mark.parametrize("syntax", SYNTAXES)
def test_single_series_decodes_to_the_stored_values(study: CineStudy, syntax: str | None, tmp_path: Path) -> None:
    paths = write_dicom_cine(study, tmp_path, transfer_syntax=syntax)
    positions, orientation = _expected_planes(study)
    assert len(paths) == study.n_slices * study.n_frames
    for index, path in enumerate(paths):
        s, f = divmod(index, study.n_frames)
        ds = pydicom.dcmread(path)
        assert _syntax_of(ds) == (syntax or ExplicitVRLittleEndian)
        assert ds.SOPInstanceUID == ds.file_meta.MediaStorageSOPInstanceUID
        np.testing.assert_array_equal(ds.pixel_array, study.image[f, s])
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], positions[s], atol=1e-3)
        np.testing.assert_allclose([float(v) for v in ds.ImageOrientationPatient], orientation, atol=1e-5)


@pytest.mark.parametrize("syntax", [JPEGLosslessSV1, "1.2.840.10008.1.2.4.57", "1.2.3.4"])
def test_a_syntax_that_cannot_be_encoded_is_refused_before_writing(
    study: CineStudy, syntax: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=re.escape(syntax)) as info:
        write_dicom_cine(study, tmp_path / "a", transfer_syntax=syntax)
    assert "process 14" in str(info.value) and RLELossless in str(info.value)
    with pytest.raises(ValueError, match="cannot write transfer syntax"):
        write_dicom_cine_per_slice(study, tmp_path / "b", transfer_syntax=syntax)
    with pytest.raises(ValueError, match="cannot write transfer syntax"):
        write_dicom_enhanced_cine(study, tmp_path / "c", transfer_syntax=syntax)
    assert not any(tmp_path.iterdir())


def test_jpeg2000_refuses_images_narrower_than_32_pixels(study: CineStudy, tmp_path: Path) -> None:
    """pylibjpeg-openjpeg always uses 6 wavelet resolutions: OpenJPEG then needs 32 pixels per side."""
    narrow = CineStudy(
        study.image[..., :28],
        Geometry(study.geometry.affine, (study.n_slices, study.image.shape[2], 28)),
        study.metadata,
        frame_times_ms=study.frame_times_ms,
    )
    with pytest.raises(ValueError, match="at least 32 pixels"):
        write_dicom_cine(narrow, tmp_path / "a", transfer_syntax=JPEG2000Lossless)
    with pytest.raises(ValueError, match="at least 32 pixels"):
        write_dicom_enhanced_cine(narrow, tmp_path / "b", transfer_syntax=JPEG2000Lossless)
    assert not any(tmp_path.iterdir())
    path = write_dicom_enhanced_cine(narrow, tmp_path / "c", transfer_syntax=JPEGLSLossless)
    slice_major = narrow.image.transpose(1, 0, 2, 3).reshape(-1, *narrow.image.shape[2:])
    np.testing.assert_array_equal(pydicom.dcmread(path).pixel_array, slice_major)


# --- one series per slice ---------------------------------------------------------------------


def test_series_per_slice_has_one_series_and_one_rr_per_slice(study: CineStudy, tmp_path: Path) -> None:
    rrs = [850.0, 900.0, 960.0, 1010.0]
    uids = {"study_uid": "1.2.826.0.1.3680043.8.498.1", "frame_of_reference_uid": "1.2.826.0.1.3680043.8.498.2"}
    paths = write_dicom_cine_per_slice(
        study, tmp_path, first_series_number=20, rr_intervals_ms=rrs, transfer_syntax=JPEGLSLossless, **uids
    )
    positions, _ = _expected_planes(study)
    assert study.frame_times_ms is not None
    series_uids = set()
    for index, path in enumerate(paths):
        s, f = divmod(index, study.n_frames)
        assert path.name == f"S{s:03d}_{f:04d}.dcm"
        ds = pydicom.dcmread(path)
        assert (ds.SeriesNumber, ds.InstanceNumber, ds.SeriesDescription) == (20 + s, f + 1, "cine SAX bSSFP")
        assert (ds.StudyInstanceUID, ds.FrameOfReferenceUID) == (uids["study_uid"], uids["frame_of_reference_uid"])
        series_uids.add((s, ds.SeriesInstanceUID))
        assert ds.NominalInterval == round(rrs[s]) and ds.HeartRate == round(60000 / rrs[s])
        assert float(ds.TriggerTime) == pytest.approx(study.frame_times_ms[f] * rrs[s] / RR_MS, abs=1e-3)
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient], positions[s], atol=1e-3)
        np.testing.assert_array_equal(ds.pixel_array, study.image[f, s])
    assert len(series_uids) == len({uid for _, uid in series_uids}) == study.n_slices


def test_series_per_slice_defaults_to_the_single_series_timing(study: CineStudy, tmp_path: Path) -> None:
    single = write_dicom_cine(study, tmp_path / "single", shuffle_names=True, seed=5)
    per_slice = write_dicom_cine_per_slice(study, tmp_path / "per_slice", shuffle_names=True, seed=5)
    assert not {p.name for p in single} & {p.name for p in per_slice}
    for a, b in zip(single, per_slice, strict=True):
        one, other = pydicom.dcmread(a), pydicom.dcmread(b)
        assert (one.TriggerTime, one.NominalInterval, one.HeartRate) == (
            other.TriggerTime,
            other.NominalInterval,
            other.HeartRate,
        )
        assert one.ImagePositionPatient == other.ImagePositionPatient
    with pytest.raises(ValueError, match="one per slice"):
        write_dicom_cine_per_slice(study, tmp_path / "bad", rr_intervals_ms=[900.0])


# --- enhanced multi-frame -----------------------------------------------------------------------


def _slice_frame(item: pydicom.Dataset) -> tuple[int, int]:
    content = item.FrameContentSequence[0]
    return int(content.InStackPositionNumber) - 1, int(content.TemporalPositionIndex) - 1


@pytest.mark.parametrize("syntax", SYNTAXES)
@pytest.mark.parametrize("frame_order", ["slice-major", "time-major", "shuffled"])
def test_enhanced_frames_are_described_by_their_functional_groups(
    study: CineStudy, frame_order: str, syntax: str | None, tmp_path: Path
) -> None:
    path = write_dicom_enhanced_cine(study, tmp_path, frame_order=frame_order, transfer_syntax=syntax)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE and _syntax_of(ds) == (syntax or ExplicitVRLittleEndian)
    n_slices, n_frames = study.n_slices, study.n_frames
    assert ds.NumberOfFrames == n_slices * n_frames
    positions, orientation = _expected_planes(study)
    shared = ds.SharedFunctionalGroupsSequence[0]
    measures = shared.PixelMeasuresSequence[0]
    np.testing.assert_allclose([float(v) for v in measures.PixelSpacing], study.geometry.pixel_spacing_mm)
    assert float(measures.SpacingBetweenSlices) == pytest.approx(study.geometry.slice_spacing_mm)
    assert float(measures.SliceThickness) == pytest.approx(study.geometry.slice_thickness_mm)
    iop = shared.PlaneOrientationSequence[0].ImageOrientationPatient
    np.testing.assert_allclose([float(v) for v in iop], orientation, atol=1e-5)
    transform = shared.PixelValueTransformationSequence[0]
    assert (float(transform.RescaleSlope), float(transform.RescaleIntercept)) == (1.0, 0.0)
    pointers = [item.DimensionIndexPointer for item in ds.DimensionIndexSequence]
    assert pointers == [pydicom.tag.Tag(k) for k in ("StackID", "InStackPositionNumber", "TemporalPositionIndex")]

    assert study.frame_times_ms is not None
    pixels = ds.pixel_array
    order = [_slice_frame(item) for item in ds.PerFrameFunctionalGroupsSequence]
    for i, (item, (s, f)) in enumerate(zip(ds.PerFrameFunctionalGroupsSequence, order, strict=True)):
        assert list(item.FrameContentSequence[0].DimensionIndexValues) == [1, s + 1, f + 1]
        position = item.PlanePositionSequence[0].ImagePositionPatient
        np.testing.assert_allclose([float(v) for v in position], positions[s], atol=1e-3)
        cardiac = item.CardiacSynchronizationSequence[0]
        assert cardiac.NominalCardiacTriggerDelayTime == pytest.approx(study.frame_times_ms[f])
        assert cardiac.RRIntervalTimeNominal == pytest.approx(RR_MS)
        np.testing.assert_array_equal(pixels[i], study.image[f, s])
    slice_major = [(s, f) for s in range(n_slices) for f in range(n_frames)]
    assert sorted(order) == slice_major
    if frame_order == "slice-major":
        assert order == slice_major
    elif frame_order == "time-major":
        assert order == sorted(slice_major, key=lambda sf: (sf[1], sf[0]))
    else:
        assert order not in (slice_major, sorted(slice_major, key=lambda sf: (sf[1], sf[0])))


def test_enhanced_rescale_and_refusals(study: CineStudy, tmp_path: Path) -> None:
    scaled = CineStudy(study.image * 0.37 - 5.0, study.geometry, study.metadata, frame_times_ms=study.frame_times_ms)
    with pytest.raises(ValueError, match="rescale=True"):
        write_dicom_enhanced_cine(scaled, tmp_path)
    with pytest.raises(ValueError, match="frame_order must be one of"):
        write_dicom_enhanced_cine(study, tmp_path, frame_order="random")
    path = write_dicom_enhanced_cine(scaled, tmp_path, rescale=True, frame_order="time-major")
    ds = pydicom.dcmread(path)
    transform = ds.SharedFunctionalGroupsSequence[0].PixelValueTransformationSequence[0]
    values = ds.pixel_array * float(transform.RescaleSlope) + float(transform.RescaleIntercept)
    order = [_slice_frame(item) for item in ds.PerFrameFunctionalGroupsSequence]
    expected = np.stack([scaled.image[f, s] for s, f in order])
    np.testing.assert_allclose(values, expected, atol=float(transform.RescaleSlope))
    with pytest.raises(OutputError, match="exists"):
        write_dicom_enhanced_cine(study, tmp_path)


@pytest.mark.skipif(DCIODVFY is None, reason="dciodvfy not installed (Debian package dicom3tools)")
@pytest.mark.parametrize("syntax", SYNTAXES)
def test_enhanced_and_per_slice_files_pass_dciodvfy(study: CineStudy, syntax: str | None, tmp_path: Path) -> None:
    enhanced = write_dicom_enhanced_cine(study, tmp_path, frame_order="shuffled", rescale=True, transfer_syntax=syntax)
    assert not _errors(enhanced), _errors(enhanced)
    per_slice = write_dicom_cine_per_slice(study, tmp_path / "per_slice", transfer_syntax=syntax)
    assert not _errors(per_slice[-1]), _errors(per_slice[-1])


# --- DICOM File-set (DICOMDIR) ------------------------------------------------------------------


def test_fileset_lists_every_instance(study: CineStudy, tmp_path: Path) -> None:
    source = tmp_path / "export"
    written = write_dicom_cine_per_slice(study, source / "sax", transfer_syntax=RLELossless, study_uid="1.2.3.4")
    written.append(write_dicom_enhanced_cine(study, source / "enhanced", study_uid="1.2.3.4"))
    written += write_dicom_localizer(study, source / "sax", study_uid="1.2.3.4")
    (source / "notes.txt").write_text("not DICOM")
    expected = {pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID for p in written}

    dicomdir = write_dicom_fileset(source, tmp_path / "cd")
    assert dicomdir == tmp_path / "cd" / "DICOMDIR"
    fileset = FileSet(pydicom.dcmread(dicomdir))
    assert {instance.SOPInstanceUID for instance in fileset} == expected
    files = [p for p in (tmp_path / "cd").rglob("*") if p.is_file() and p.name != "DICOMDIR"]
    assert len(files) == len(expected) and all(p.suffix == "" for p in files)
    for instance in fileset:
        if instance.SOPClassUID == ENHANCED_MR_IMAGE_STORAGE:
            assert instance.load().NumberOfFrames == study.n_slices * study.n_frames

    with pytest.raises(OutputError, match="already contains"):
        write_dicom_fileset(source, tmp_path / "cd")
    with pytest.raises(ValueError, match="inside"):
        write_dicom_fileset(source, source / "cd")
    with pytest.raises(ValueError, match="no DICOM"):
        write_dicom_fileset(tmp_path / "cd" / "nothing", tmp_path / "cd2")


# --- the phantom's dicom/ folder in every layout -------------------------------------------------


def _own(root: Path) -> bool:
    return all(
        any(rule.match(p.relative_to(root).as_posix()) for rule in _OWN_FILES) for p in root.rglob("*") if p.is_file()
    )


@pytest.mark.parametrize(
    ("layout", "n_cine_files"), [("single-series", 12), ("series-per-slice", 12), ("enhanced", 1)]
)
def test_phantom_layouts_are_recognised_by_overwrite(
    phantom: Phantom, layout: str, n_cine_files: int, tmp_path: Path
) -> None:
    n_decoys = 3 + phantom.study.n_frames  # localiser + long-axis cine
    write_phantom(phantom, tmp_path, dicom=True)  # an earlier phantom in the default layout
    for _ in range(2):
        write_phantom(
            phantom, tmp_path, dicom=True, dicom_layout=layout, dicom_transfer_syntax=RLELossless, overwrite=True
        )
        assert _own(tmp_path)
        assert len(list((tmp_path / "dicom").iterdir())) == n_cine_files + n_decoys
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in sorted((tmp_path / "dicom").iterdir())]
    cine = [ds for ds in headers if ds.SeriesNumber >= 5]
    assert len({ds.StudyInstanceUID for ds in headers}) == 1
    assert {_syntax_of(ds) for ds in cine} == {RLELossless}
    if layout == "series-per-slice":
        assert sorted({ds.SeriesNumber for ds in cine}) == [5, 6, 7, 8]
        assert len({(ds.SeriesNumber, ds.NominalInterval) for ds in cine}) == 4
        assert len({ds.NominalInterval for ds in cine}) > 1  # one breath-hold, one RR per slice
    with pytest.raises(ValueError, match="dicom_layout must be one of"):
        write_phantom(phantom, tmp_path / "new", dicom=True, dicom_layout="per-slice")
    assert not (tmp_path / "new").exists()
