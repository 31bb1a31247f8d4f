"""DICOM cine reading and writing, on tiny synthetic studies written to real files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import generate_uid

from opencmr.errors import InputError, OutputError
from opencmr.io.dicom import read_dicom_folder, scan_dicom_folder
from opencmr.io.dicom_write import write_dicom_cine, write_dicom_localizer, write_dicom_long_axis_cine
from opencmr.io.study import CineStudy, Geometry, StudyMetadata

N_FRAMES, N_SLICES, ROWS, COLS = 5, 4, 28, 32
ROW_MM, COL_MM = 1.4, 1.6
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _rotation(ax: float, ay: float, az: float) -> np.ndarray:
    cx, sx, cy, sy, cz, sz = np.cos(ax), np.sin(ax), np.cos(ay), np.sin(ay), np.cos(az), np.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def make_study(pitch: float = 8.0, thickness: float = 8.0, flip_slices: bool = False, seed: int = 0) -> CineStudy:
    """An oblique (double-oblique, like a short-axis stack) cine with integral intensities."""
    rot = _rotation(0.5, -0.7, 0.3)
    row_dir, col_dir = rot[:, 0], rot[:, 1]  # LPS
    normal = np.cross(row_dir, col_dir)
    lps = np.eye(4)
    lps[:3, 0] = COL_MM * row_dir
    lps[:3, 1] = ROW_MM * col_dir
    lps[:3, 2] = (-pitch if flip_slices else pitch) * normal
    lps[:3, 3] = [-20.5, 31.25, 12.0]
    image = np.random.default_rng(seed).integers(0, 4000, size=(N_FRAMES, N_SLICES, ROWS, COLS))
    return CineStudy(
        image=image.astype(np.float32),
        geometry=Geometry(LPS_TO_RAS @ lps, (N_SLICES, ROWS, COLS), slice_thickness_mm=thickness),
        metadata=StudyMetadata(height_cm=175.0, weight_kg=70.5, sex="F", heart_rate_bpm=60.0, n_frames_acquired=25),
        frame_numbers=(0, 1, 2, 3, 4),
        frame_times_ms=(0.0, 40.0, 80.0, 120.0, 160.0),
    )


@pytest.fixture
def study() -> CineStudy:
    return make_study()


@pytest.fixture
def cine_folder(tmp_path: Path, study: CineStudy) -> Path:
    folder = tmp_path / "cine"
    write_dicom_cine(study, folder)
    return folder


def _edit(path: Path, change) -> None:
    ds = pydicom.dcmread(path)
    change(ds)
    ds.save_as(path)


def _raises_naming(path: Path, call, match: str) -> InputError:
    with pytest.raises(InputError, match=match) as info:
        call()
    assert str(path) in str(info.value)
    return info.value


def test_round_trip_with_shuffled_names_and_decoys(tmp_path: Path, study: CineStudy) -> None:
    folder = tmp_path / "export"
    study_uid, for_uid = generate_uid(), generate_uid()
    uids = {"study_uid": study_uid, "frame_of_reference_uid": for_uid}
    write_dicom_cine(study, folder / "sax", **uids, shuffle_names=True, seed=3)
    write_dicom_localizer(study, folder / "loc", **uids)
    write_dicom_long_axis_cine(study, folder / "sax", **uids)
    (folder / "README.txt").write_text("not dicom")

    read = read_dicom_folder(folder)

    np.testing.assert_array_equal(read.image, study.image)
    np.testing.assert_allclose(read.geometry.affine, study.geometry.affine, atol=1e-4)
    np.testing.assert_allclose(read.spacing, (8.0, ROW_MM, COL_MM), atol=1e-6)
    assert read.geometry.slice_thickness_mm == pytest.approx(8.0)
    assert read.frame_times_ms == study.frame_times_ms
    meta = read.metadata
    assert (meta.source_format, meta.patient_id, meta.patient_name) == ("dicom", "PHANTOM", "Phantom^Opencmr")
    assert (meta.study_uid, meta.sex, meta.height_cm, meta.weight_kg) == (study_uid, "F", 175.0, 70.5)
    assert meta.heart_rate_bpm == pytest.approx(60.0)
    assert meta.n_frames_acquired == 25
    assert meta.ed_frame is None and meta.es_frame is None
    notes = " | ".join(meta.notes)
    assert "localizer (ImageType LOCALIZER)" in notes and "single slice position" in notes
    assert "1 non-DICOM file(s) skipped" in notes

    summaries = scan_dicom_folder(folder)
    assert [(s.series_number, s.is_candidate) for s in summaries] == [(1, True), (100, False), (200, False)]
    assert (summaries[0].n_positions, summaries[0].n_phases, summaries[0].n_images) == (N_SLICES, N_FRAMES, 20)
    assert summaries[2].to_dict()["reason"].startswith("single slice position")


def test_file_headers(cine_folder: Path) -> None:
    ds = pydicom.dcmread(cine_folder / "IM_0007.dcm")
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.4" == ds.file_meta.MediaStorageSOPClassUID
    assert (ds.Modality, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == ("MR", 16, 12, 11, 0)
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "M", "NONE"]
    assert (ds.InstanceNumber, float(ds.TriggerTime), ds.CardiacNumberOfImages) == (7, 40.0, 25)
    assert (ds.NominalInterval, ds.HeartRate, float(ds.PatientSize)) == (1000, 60, 1.75)
    assert float(ds.SliceThickness) == 8.0 and float(ds.SpacingBetweenSlices) == pytest.approx(8.0)


def test_slice_axis_against_the_normal_is_read_in_normal_order(tmp_path: Path) -> None:
    study = make_study(flip_slices=True)
    write_dicom_cine(study, tmp_path)
    read = read_dicom_folder(tmp_path)
    np.testing.assert_array_equal(read.image, study.image[:, ::-1])
    voxel = np.array([3.0, 5.0, 1.0, 1.0])
    mirrored = voxel.copy()
    mirrored[2] = N_SLICES - 1 - voxel[2]
    np.testing.assert_allclose(read.geometry.affine @ voxel, study.geometry.affine @ mirrored, atol=1e-4)


def test_slice_gap_uses_position_pitch_and_notes_it(tmp_path: Path) -> None:
    write_dicom_cine(make_study(pitch=10.0, thickness=6.0), tmp_path)
    read = read_dicom_folder(tmp_path)
    assert read.geometry.slice_spacing_mm == pytest.approx(10.0)
    assert read.geometry.slice_thickness_mm == pytest.approx(6.0)
    assert any("slice gap" in note for note in read.metadata.notes)


def test_series_choice_between_two_cines(tmp_path: Path, study: CineStudy) -> None:
    write_dicom_cine(study, tmp_path / "a", series_number=3, series_description="cine SAX", study_uid="1.2.3")
    other = make_study(seed=1)
    write_dicom_cine(
        other, tmp_path / "b", series_number=4, series_description="cine SAX repeat", series_uid="1.2.3.4", study_uid="1.2.3"
    )
    error = _raises_naming(tmp_path, lambda: read_dicom_folder(tmp_path), "--series")
    assert "cine SAX repeat" in str(error) and "4 positions x 5 phases" in str(error)
    np.testing.assert_array_equal(read_dicom_folder(tmp_path, series="4").image, other.image)
    np.testing.assert_array_equal(read_dicom_folder(tmp_path, series="1.2.3.4").image, other.image)
    np.testing.assert_array_equal(read_dicom_folder(tmp_path, series="3").image, study.image)
    _raises_naming(tmp_path, lambda: read_dicom_folder(tmp_path, series="9"), "no series")


def test_rescaled_non_integral_intensities(tmp_path: Path, study: CineStudy) -> None:
    scaled = CineStudy(image=study.image * 0.37 - 5.0, geometry=study.geometry, metadata=study.metadata)
    with pytest.raises(ValueError, match="rescale=True"):
        write_dicom_cine(scaled, tmp_path / "x")
    write_dicom_cine(scaled, tmp_path / "y", rescale=True)
    read = read_dicom_folder(tmp_path / "y")
    np.testing.assert_allclose(read.image, scaled.image, atol=0.02)


def test_writer_refuses_a_folder_with_files(cine_folder: Path, study: CineStudy) -> None:
    with pytest.raises(OutputError, match="already contains files"):
        write_dicom_cine(study, cine_folder)
    write_dicom_cine(study, cine_folder, overwrite=True)


# --------------------------------------------------------------------------- bad inputs


def test_missing_folder(tmp_path: Path) -> None:
    _raises_naming(tmp_path / "nope", lambda: read_dicom_folder(tmp_path / "nope"), "does not exist")


def test_single_file(cine_folder: Path) -> None:
    path = cine_folder / "IM_0001.dcm"
    _raises_naming(path, lambda: read_dicom_folder(path), "give the folder")


def test_empty_folder_and_no_dicom(tmp_path: Path) -> None:
    _raises_naming(tmp_path, lambda: read_dicom_folder(tmp_path), "no DICOM images")
    (tmp_path / "notes.txt").write_text("hello")
    _raises_naming(tmp_path, lambda: read_dicom_folder(tmp_path), "1 non-DICOM")


def test_no_cine_series(tmp_path: Path, study: CineStudy) -> None:
    uid = generate_uid()
    write_dicom_localizer(study, tmp_path, study_uid=uid)
    write_dicom_long_axis_cine(study, tmp_path, study_uid=uid)
    error = _raises_naming(tmp_path, lambda: read_dicom_folder(tmp_path), "no short-axis cine series found")
    assert "localizer" in str(error) and "single slice position" in str(error)


def test_duplicate_image(cine_folder: Path) -> None:
    shutil.copy(cine_folder / "IM_0003.dcm", cine_folder / "COPY.dcm")
    error = _raises_naming(cine_folder, lambda: read_dicom_folder(cine_folder), "duplicate images")
    assert "IM_0003.dcm" in str(error) and "COPY.dcm" in str(error)


def test_missing_slice_in_the_middle(cine_folder: Path) -> None:
    for index in range(N_FRAMES + 1, 2 * N_FRAMES + 1):  # slice 1 of 0..3
        (cine_folder / f"IM_{index:04d}.dcm").unlink()
    error = _raises_naming(cine_folder, lambda: read_dicom_folder(cine_folder), "non-uniform slice positions")
    assert "16.00 mm between slice positions 0 and 1" in str(error) and "missing" in str(error)


def test_missing_phase_at_one_position(cine_folder: Path) -> None:
    (cine_folder / "IM_0012.dcm").unlink()
    _raises_naming(cine_folder, lambda: read_dicom_folder(cine_folder), "different numbers of phases")


def test_mixed_image_sizes(cine_folder: Path) -> None:
    def shrink(ds: pydicom.Dataset) -> None:
        ds.Rows = ROWS - 2
        ds.PixelData = ds.PixelData[: (ROWS - 2) * COLS * 2]

    _edit(cine_folder / "IM_0004.dcm", shrink)
    _raises_naming(cine_folder, lambda: read_dicom_folder(cine_folder), r"mixed image sizes \(26x32, 28x32\)")


def test_mixed_pixel_spacing(cine_folder: Path) -> None:
    _edit(cine_folder / "IM_0004.dcm", lambda ds: setattr(ds, "PixelSpacing", [1.0, 1.0]))
    _raises_naming(cine_folder, lambda: read_dicom_folder(cine_folder), "mixed PixelSpacing")


def test_truncated_file(cine_folder: Path) -> None:
    path = cine_folder / "IM_0009.dcm"
    path.write_bytes(path.read_bytes()[:-100])
    _raises_naming(path, lambda: read_dicom_folder(cine_folder), "truncated")


def test_corrupt_header(cine_folder: Path) -> None:
    path = cine_folder / "IM_0009.dcm"
    path.write_bytes(path.read_bytes()[:400])
    _raises_naming(path, lambda: read_dicom_folder(cine_folder), "truncated|corrupt")


def test_missing_image_position(cine_folder: Path) -> None:
    _edit(cine_folder / "IM_0005.dcm", lambda ds: delattr(ds, "ImagePositionPatient"))
    error = _raises_naming(cine_folder, lambda: read_dicom_folder(cine_folder), "missing or invalid ImagePosition")
    assert "IM_0005.dcm" in str(error)


def test_study_date_is_read_as_an_iso_date(cine_folder: Path) -> None:
    """StudyDate reaches the metadata (and so the report) as YYYY-MM-DD; absent or malformed, it is None."""
    date = pydicom.dcmread(cine_folder / "IM_0001.dcm").StudyDate
    assert read_dicom_folder(cine_folder).metadata.study_date == f"{date[:4]}-{date[4:6]}-{date[6:]}"
    for path in cine_folder.glob("*.dcm"):
        _edit(path, lambda ds: setattr(ds, "StudyDate", "20261340"))  # no 40th of the 13th month
    assert read_dicom_folder(cine_folder).metadata.study_date is None
