"""Reading real-world DICOM layouts: split series, enhanced multi-frame, compressed, zipped, nested, several studies.

Every layout of one synthetic study must read back to the same array, spacing
and frame order as the study written (issue 10). Vendor files for parsing and
codecs come from the ``pydicom-data`` package (installed, never downloaded).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import JPEG2000Lossless, JPEGLSLossless, RLELossless
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.errors import InputError
from opencmr.io.dicom import read_dicom, scan_dicom_folder
from opencmr.io.dicom.headers import images_from_dataset
from opencmr.io.dicom.reader import _decode
from opencmr.io.dicom.sources import Source
from opencmr.io.dicom_write import (
    write_dicom_cine,
    write_dicom_cine_per_slice,
    write_dicom_fileset,
    write_dicom_localizer,
    write_dicom_long_axis_cine,
)
from opencmr.io.dicom_write_enhanced import write_dicom_enhanced_cine
from opencmr.io.read import read_study
from opencmr.io.study import CineStudy
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom
from tests.io.test_dicom import make_study

STUDY_UID = "1.2.826.0.1.3680043.8.498.1"


@pytest.fixture
def study() -> CineStudy:
    return make_study(pitch=10.0, thickness=8.0)


def _same(read: CineStudy, truth: CineStudy) -> None:
    """Same voxels, same grid, same frame order (the affine may flip the slice axis, as the writer documents)."""
    assert read.image.shape == truth.image.shape
    np.testing.assert_allclose(read.spacing, truth.spacing, atol=1e-3)
    same_order = np.allclose(read.geometry.affine, truth.geometry.affine, atol=1e-3)
    expected = truth.image if same_order else truth.image[:, ::-1]
    np.testing.assert_array_equal(read.image, expected)


def _decoys(study: CineStudy, folder: Path) -> None:
    write_dicom_localizer(study, folder, study_uid=STUDY_UID, series_number=1, overwrite=True)
    write_dicom_long_axis_cine(study, folder, study_uid=STUDY_UID, series_number=3, overwrite=True)


def test_series_per_slice_with_different_rr(tmp_path: Path, study: CineStudy) -> None:
    rr = [900.0, 1000.0, 1100.0, 950.0]
    write_dicom_cine_per_slice(
        study, tmp_path, study_uid=STUDY_UID, first_series_number=20, rr_intervals_ms=rr, shuffle_names=True
    )
    _decoys(study, tmp_path)
    read = read_dicom(tmp_path)
    _same(read, study)
    assert any("RR intervals differ between slices" in note and "900-1100 ms" in note for note in read.metadata.notes)
    # phases aligned by fraction of each slice's cycle: frame times come back as the study's (scaled to the mean RR)
    np.testing.assert_allclose(read.frame_times_ms, np.asarray(study.frame_times_ms) * np.mean(rr) / 1000.0, atol=0.05)
    prov = read.metadata.provenance
    assert [s["number"] for s in prov["series"]] == [20, 21, 22, 23] or [s["number"] for s in prov["series"]] == [
        23,
        22,
        21,
        20,
    ]
    assert sorted(s["rr_interval_ms"] for s in prov["slices"]) == sorted(rr)
    summaries = scan_dicom_folder(tmp_path)
    chosen = [s for s in summaries if s.chosen]
    assert len(chosen) == 1 and chosen[0].assembled and chosen[0].kind == "short-axis cine"
    assert sum(s.kind == "stack slice" for s in summaries) == 4
    assert {s.kind for s in summaries if s.series_number == 3} == {"long-axis cine"}
    # the assembled stack is named by its series range; one slice alone by its number
    np.testing.assert_array_equal(read_dicom(tmp_path, series="20-23").image, read.image)
    assert read_dicom(tmp_path, series="21").image.shape == (study.n_frames, 1, *study.image.shape[2:])


def test_series_per_slice_missing_phase_is_named(tmp_path: Path, study: CineStudy) -> None:
    paths = write_dicom_cine_per_slice(study, tmp_path, study_uid=STUDY_UID)
    paths[study.n_frames + 2].unlink()  # slice 1 loses a phase
    with pytest.raises(InputError, match="no short-axis cine series found") as info:
        read_dicom(tmp_path)
    assert "one series per slice, but different numbers of phases per slice position (5 at most, 4 at" in str(
        info.value
    )


def _at_least_32(study: CineStudy) -> CineStudy:
    """The study tiled to 56 x 64 pixels (OpenJPEG's encoder needs sides of 32 or more)."""
    image = np.tile(study.image, (1, 1, 2, 2))
    geometry = type(study.geometry)(
        study.geometry.affine, (study.n_slices, *image.shape[2:]), study.geometry.slice_thickness_mm
    )
    return dataclasses.replace(study, image=image, geometry=geometry)


@pytest.mark.parametrize("syntax", [RLELossless, JPEGLSLossless, JPEG2000Lossless])
def test_compressed_series(tmp_path: Path, study: CineStudy, syntax: str) -> None:
    study = _at_least_32(study)
    write_dicom_cine(study, tmp_path, study_uid=STUDY_UID, transfer_syntax=syntax)
    assert pydicom.dcmread(next(tmp_path.iterdir())).file_meta.TransferSyntaxUID == syntax
    _same(read_dicom(tmp_path), study)


@pytest.mark.parametrize("order", ["slice-major", "time-major", "shuffled"])
@pytest.mark.parametrize("syntax", [None, RLELossless])
def test_enhanced_multiframe(tmp_path: Path, study: CineStudy, order: str, syntax: str | None) -> None:
    scaled = dataclasses.replace(study, image=study.image * 0.37 - 5.0)
    path = write_dicom_enhanced_cine(
        scaled, tmp_path, study_uid=STUDY_UID, rescale=True, frame_order=order, transfer_syntax=syntax, seed=4
    )
    _decoys(study, tmp_path)
    for source in (path, tmp_path):  # the file alone, or the folder with the decoys
        read = read_study(source)
        assert read.image.shape == scaled.image.shape
        same_order = np.allclose(read.geometry.affine, scaled.geometry.affine, atol=1e-3)
        np.testing.assert_allclose(read.image, scaled.image if same_order else scaled.image[:, ::-1], atol=0.02)
        np.testing.assert_allclose(read.frame_times_ms, study.frame_times_ms, atol=0.01)
    frames = [f.rsplit("#", 1)[1] for s in read.metadata.provenance["slices"] for f in s["files"]]
    assert sorted(map(int, frames)) == list(range(1, study.n_slices * study.n_frames + 1))  # every frame used once


@pytest.mark.parametrize("layout", ["single-series", "series-per-slice", "enhanced"])
def test_phantom_layouts_read_back_to_the_nifti_truth(tmp_path: Path, layout: str) -> None:
    phantom = make_phantom(PhantomConfig(n_frames=3, n_slices=5, matrix=(48, 40), seed=2))
    write_phantom(phantom, tmp_path, dicom=True, dicom_layout=layout)
    truth = read_study(tmp_path / "phantom_4d.nii.gz")  # the NIfTI written beside the DICOM
    read = read_study(tmp_path / "dicom")
    np.testing.assert_allclose(read.geometry.affine, truth.geometry.affine, atol=1e-3)
    np.testing.assert_allclose(read.image, truth.image, atol=1e-3)
    assert read.frame_numbers == truth.frame_numbers


def test_nested_shuffled_zip_and_dicomdir(tmp_path: Path, study: CineStudy) -> None:
    export = tmp_path / "export"
    paths = write_dicom_cine(study, export / "flat", study_uid=STUDY_UID, shuffle_names=True)
    for k, path in enumerate(paths):  # nested folders, no extensions
        target = export / f"DIR{k % 3}" / f"SUB{k % 2}" / path.stem
        target.parent.mkdir(parents=True, exist_ok=True)
        path.rename(target)
    shutil.rmtree(export / "flat")
    (export / "README.txt").write_text("not DICOM")
    (export / ".DS_Store").write_bytes(b"\0\1\2")
    _same(read_dicom(export), study)
    archive = shutil.make_archive(str(tmp_path / "export"), "zip", export)
    read = read_study(archive)
    _same(read, study)
    assert "2 non-DICOM file(s) skipped" in read.metadata.notes
    media = write_dicom_fileset(export, tmp_path / "media")
    assert media.name == "DICOMDIR"
    _same(read_dicom(media.parent), study)


def test_zip_with_unsafe_member_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("../evil.dcm", b"x")
    with pytest.raises(InputError, match="unsafe path"):
        read_study(archive)


def test_several_studies_listed_and_chosen(tmp_path: Path, study: CineStudy) -> None:
    write_dicom_cine(study, tmp_path / "a", study_uid=STUDY_UID, patient_id="ANON1")
    other = make_study(seed=3)
    write_dicom_cine(other, tmp_path / "b", study_uid="1.2.3.9", patient_id="ANON2")
    with pytest.raises(InputError, match="holds 2 studies.*ANON1.*ANON2.*--study"):
        read_dicom(tmp_path)
    _same(read_dicom(tmp_path, study="ANON2"), other)
    _same(read_dicom(tmp_path, study=STUDY_UID), study)
    with pytest.raises(InputError, match="no study with StudyInstanceUID or PatientID 'ANON3'; found: patient ANON1"):
        read_dicom(tmp_path, study="ANON3")


def test_short_axis_chosen_over_an_axial_stack(tmp_path: Path, study: CineStudy) -> None:
    axial = CineStudy(
        image=study.image,
        geometry=type(study.geometry)(np.diag([-1.5, -1.5, 6.0, 1.0]), study.geometry.shape, slice_thickness_mm=6.0),
        metadata=study.metadata,
        frame_times_ms=study.frame_times_ms,
    )
    write_dicom_cine(axial, tmp_path / "axial", study_uid=STUDY_UID, series_number=2, series_description="cine")
    write_dicom_cine(study, tmp_path / "sax", study_uid=STUDY_UID, series_number=8, series_description="cine")
    read = read_dicom(tmp_path)
    _same(read, study)
    kinds = {s.series_number: s.kind for s in scan_dicom_folder(tmp_path)}
    assert kinds == {2: "axial cine stack", 8: "short-axis cine"}
    _same(read_dicom(tmp_path, series="2"), axial)


def test_long_axis_cine_readable_alone(tmp_path: Path, study: CineStudy) -> None:
    _decoys(study, tmp_path)
    lax = read_dicom(tmp_path, series="3")
    assert lax.n_slices == 1 and lax.n_frames >= 2
    with pytest.raises(InputError, match="series 1 'localizer'.*is not a cine: localizer"):
        read_dicom(tmp_path, series="1")


def test_convert_writes_provenance_sidecar(tmp_path: Path, study: CineStudy) -> None:
    write_dicom_cine_per_slice(study, tmp_path / "dicom", study_uid=STUDY_UID, rr_intervals_ms=[950, 1000, 1050, 1000])
    out = tmp_path / "cine.nii.gz"
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "dicom"), str(out)])
    assert result.exit_code == 0, result.output
    sidecar = json.loads((tmp_path / "cine.json").read_text())
    assert sidecar["slice_pitch_mm"] == pytest.approx(10.0) and sidecar["slice_gap_mm"] == pytest.approx(2.0)
    assert len(sidecar["slices"]) == 4 and all(len(s["files"]) == study.n_frames for s in sidecar["slices"])
    assert sorted(s["rr_interval_ms"] for s in sidecar["slices"]) == [950, 1000, 1000, 1050]
    result = CliRunner().invoke(app, ["convert", str(tmp_path / "dicom"), str(out)])
    assert result.exit_code == 1 and "exists" in result.output


# --------------------------------------------------------------------------- vendor files (pydicom-data)


def _vendor(name: str) -> Path:
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name)
    if path is None:
        pytest.skip(f"{name} is not installed (pip install pydicom-data)")
    return Path(path)


@pytest.mark.parametrize(
    "variant",
    [
        "emri_small_RLE.dcm",
        "emri_small_jpeg_ls_lossless.dcm",
        "emri_small_jpeg_2k_lossless.dcm",
        "emri_small_big_endian.dcm",
    ],
)
def test_vendor_enhanced_mr_decodes_like_uncompressed(variant: str) -> None:
    reference_source = Source(_vendor("emri_small.dcm"))
    reference = _decode(
        images_from_dataset(reference_source, reference_source.read_header())[0], reference_source.read()
    )
    source = Source(_vendor(variant))
    images = images_from_dataset(source, source.read_header())
    assert len(images) == 10 and all(image.multiframe for image in images)
    np.testing.assert_array_equal(_decode(images[0], source.read()), reference)


def test_vendor_classic_mr_jpeg2000_and_jpeg_lossless() -> None:
    uncompressed = Source(_vendor("MR2_UNCR.dcm"))
    compressed = Source(_vendor("MR2_J2KR.dcm"))
    a = _decode(images_from_dataset(uncompressed, uncompressed.read_header())[0], uncompressed.read())
    b = _decode(images_from_dataset(compressed, compressed.read_header())[0], compressed.read())
    np.testing.assert_array_equal(a, b)
    lossless = Source(_vendor("JPEG-LL.dcm"))
    assert _decode(images_from_dataset(lossless, lossless.read_header())[0], lossless.read()).shape == (1, 1024, 256)


def test_enhanced_file_without_functional_groups_is_named(tmp_path: Path) -> None:
    shutil.copy(_vendor("emri_small.dcm"), tmp_path / "emri_small.dcm")
    with pytest.raises(
        InputError, match="missing or invalid ImageOrientationPatient \\(no per-frame functional groups\\)"
    ):
        read_study(tmp_path / "emri_small.dcm")


def test_transfer_syntax_without_decoder_is_named(tmp_path: Path) -> None:
    ds = pydicom.dcmread(_vendor("MR2_J2KR.dcm"))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG2 video: no pydicom decoder
    path = tmp_path / "xl.dcm"
    ds.save_as(path, enforce_file_format=True)
    source = Source(path)
    with pytest.raises(
        InputError, match=r"xl\.dcm: pixel data in transfer syntax MPEG2 .*1\.2\.840\.10008\.1\.2\.4\.100\): no decoder"
    ):
        _decode(images_from_dataset(source, source.read_header())[0], source.read())


def test_rescale_applied_per_image(tmp_path: Path, study: CineStudy) -> None:
    paths = write_dicom_cine(study, tmp_path, study_uid=STUDY_UID)
    ds = pydicom.dcmread(paths[0])  # one image stored at half scale with slope 2: same intensities after rescaling
    stored = ds.pixel_array // 2
    ds.PixelData = stored.astype(ds.pixel_array.dtype).tobytes()
    ds.RescaleSlope, ds.RescaleIntercept = 2, 0
    ds.save_as(paths[0])
    read = read_dicom(tmp_path)
    expected = study.image.copy()
    expected[0, 0] = stored * 2.0
    same_order = np.allclose(read.geometry.affine, study.geometry.affine, atol=1e-3)
    np.testing.assert_array_equal(read.image, expected if same_order else expected[:, ::-1])


def test_info_cli_on_zip_and_several_studies(tmp_path: Path, study: CineStudy) -> None:
    write_dicom_cine_per_slice(study, tmp_path / "a", study_uid=STUDY_UID, first_series_number=20)
    _decoys(study, tmp_path / "a")
    archive = shutil.make_archive(str(tmp_path / "export"), "zip", tmp_path / "a")
    result = CliRunner().invoke(app, ["info", archive])
    assert result.exit_code == 0, result.output
    assert "20-23" in result.output and "short-axis cine" in result.output and "long-axis cine" in result.output
    write_dicom_cine(make_study(seed=5), tmp_path / "a" / "other", study_uid="1.2.3.9", patient_id="ANON2")
    result = CliRunner().invoke(app, ["info", str(tmp_path / "a")])
    assert result.exit_code == 1 and "holds 2 studies" in result.output and "Traceback" not in result.output
    result = CliRunner().invoke(app, ["info", str(tmp_path / "a"), "--study", "ANON2", "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["metadata"]["patient_id"] == "ANON2"


def test_philips_scale_slope_makes_differently_scaled_series_agree(tmp_path: Path, study: CineStudy) -> None:
    study = dataclasses.replace(study, image=study.image * 4)  # even values: stored halves are exact
    paths = write_dicom_cine_per_slice(study, tmp_path, study_uid=STUDY_UID)
    for path in paths[: study.n_frames]:  # slice 0 at half scale; RS 3, SS 0.5: FP = 3 SV / (3 x 0.5) = 2 SV
        ds = pydicom.dcmread(path)
        stored = ds.pixel_array // 2
        ds.PixelData = stored.astype(ds.pixel_array.dtype).tobytes()
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 3, 0, "US"
        ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.5)
        ds.save_as(path)
    read = read_dicom(tmp_path)
    _same(read, study)
    assert any("Philips floating-point scaling applied to 5 of 20 images" in note for note in read.metadata.notes)


def test_two_oblique_stacks_need_a_choice(tmp_path: Path, study: CineStudy) -> None:
    rotation = np.eye(4)  # a second double-oblique stack, tilted 34 degrees from the first
    rotation[:3, :3] = np.array([[1, 0, 0], [0, np.cos(0.6), -np.sin(0.6)], [0, np.sin(0.6), np.cos(0.6)]])
    geometry = study.geometry
    tilted = dataclasses.replace(
        study, geometry=type(geometry)(rotation @ geometry.affine, geometry.shape, geometry.slice_thickness_mm)
    )
    write_dicom_cine(study, tmp_path / "a", study_uid=STUDY_UID, series_number=4)
    write_dicom_cine(tilted, tmp_path / "b", study_uid=STUDY_UID, series_number=9)
    with pytest.raises(InputError, match="several short-axis cine candidates.*--series 4.*--series 9"):
        read_dicom(tmp_path)
    _same(read_dicom(tmp_path, series="9"), tilted)
    result = CliRunner().invoke(app, ["info", str(tmp_path)])  # no choice: the table of what was found, then the error
    assert result.exit_code == 1 and "DICOM series found" in result.output and "several short-axis" in result.output


def test_every_layout_gives_the_same_volumes(tmp_path: Path) -> None:
    """Issue 10's acceptance check: ``analyze`` gives the same volumes (0.1 mL) from every layout and codec."""
    from opencmr.analysis import AnalysisOptions, analyze_study
    from opencmr.io.dicom_write import COMPRESSIONS

    phantom = make_phantom(PhantomConfig(n_frames=2, n_slices=6, seed=4))
    keys = ("lv_edv_ml", "lv_esv_ml", "lv_mass_g", "rv_edv_ml", "rv_esv_ml")
    volumes = {}
    for layout, compression in [("single-series", None), ("series-per-slice", "rle"), ("enhanced", "jpeg-ls")]:
        folder = tmp_path / layout
        syntax = COMPRESSIONS[compression] if compression else None
        write_phantom(phantom, folder, dicom=True, dicom_layout=layout, dicom_transfer_syntax=syntax)
        result = analyze_study(folder / "dicom", tmp_path / f"out-{layout}", AnalysisOptions(tta=False))
        volumes[layout] = np.array([result.measurements.values[k] for k in keys])
    reference = volumes["single-series"]
    assert reference[0] > 20.0  # the LV was found
    for layout, found in volumes.items():
        np.testing.assert_allclose(found, reference, atol=0.1, err_msg=layout)


# --------------------------------------------------------------------------- layouts that must not be read silently


def _one_slice_study(study: CineStudy, s: int) -> CineStudy:
    """Slice ``s`` of ``study`` as a one-slice study with the right position."""
    affine = study.geometry.affine.copy()
    affine[:3, 3] = affine[:3, 3] + s * affine[:3, 2]
    geometry = type(study.geometry)(affine, (1, *study.geometry.shape[1:]), study.geometry.slice_thickness_mm)
    return dataclasses.replace(study, image=study.image[:, s : s + 1], geometry=geometry)


def test_transposed_slice_is_not_assembled(tmp_path: Path) -> None:
    square = _at_least_32(make_study(pitch=10.0))
    square = dataclasses.replace(
        square,
        image=square.image[..., :56, :56],
        geometry=type(square.geometry)(square.geometry.affine, (square.n_slices, 56, 56), 8.0),
    )
    for s in range(square.n_slices):
        one = _one_slice_study(square, s)
        if s == 1:  # the same plane, rows and columns swapped: the normal flips, the position stays
            swap = np.eye(4)[[1, 0, 2, 3]]
            one = dataclasses.replace(
                one,
                image=np.swapaxes(one.image, 2, 3),
                geometry=type(one.geometry)(one.geometry.affine @ swap, one.geometry.shape),
            )
        write_dicom_cine(
            one, tmp_path / f"s{s}", study_uid=STUDY_UID, series_number=20 + s, frame_of_reference_uid="1.2.3.7"
        )
    with pytest.raises(InputError, match="no short-axis cine series found"):
        read_dicom(tmp_path)


def test_axial_stack_alone_needs_to_be_named(tmp_path: Path, study: CineStudy) -> None:
    axial = dataclasses.replace(
        study,
        geometry=type(study.geometry)(np.diag([-1.5, -1.5, 6.0, 1.0]), study.geometry.shape, slice_thickness_mm=6.0),
    )
    write_dicom_cine(axial, tmp_path, study_uid=STUDY_UID, series_number=2)
    with pytest.raises(InputError, match="only stacks in patient-axis planes.*axial cine stack.*--series 2"):
        read_dicom(tmp_path)
    _same(read_dicom(tmp_path, series="2"), axial)


def test_two_parallel_single_slice_cines_are_not_a_stack(tmp_path: Path, study: CineStudy) -> None:
    for s in (0, 1):
        write_dicom_cine(
            _one_slice_study(study, s),
            tmp_path / f"s{s}",
            study_uid=STUDY_UID,
            series_number=30 + s,
            frame_of_reference_uid="1.2.3.7",
        )
    with pytest.raises(InputError, match="no short-axis cine series found"):
        read_dicom(tmp_path)
    assert not any(s.assembled for s in scan_dicom_folder(tmp_path))


def test_repeated_slice_is_named_and_a_listed_set_is_assembled(tmp_path: Path, study: CineStudy) -> None:
    paths = write_dicom_cine_per_slice(study, tmp_path / "a", study_uid=STUDY_UID, first_series_number=20)
    again = _one_slice_study(study, 2)
    write_dicom_cine(
        again,
        tmp_path / "b",
        study_uid=STUDY_UID,
        series_number=30,
        frame_of_reference_uid=pydicom.dcmread(paths[0]).FrameOfReferenceUID,
    )
    with pytest.raises(InputError, match=r"slice position .* mm is in several series \(22, 30\)"):
        read_dicom(tmp_path)
    _same(read_dicom(tmp_path, series="20,21,30,23"), study)
    with pytest.raises(InputError, match="cannot be read as one stack.*several series"):
        read_dicom(tmp_path, series="20-23,30")


def test_assembled_stack_without_series_numbers_is_chosen_by_uids(tmp_path: Path, study: CineStudy) -> None:
    paths = write_dicom_cine_per_slice(study, tmp_path, study_uid=STUDY_UID)
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.SeriesNumber
        ds.save_as(path)
    summary = next(s for s in scan_dicom_folder(tmp_path) if s.assembled)
    assert summary.selector == ",".join(summary.members)
    _same(read_dicom(tmp_path, series=summary.selector), study)


def test_philips_scale_slope_in_the_private_per_frame_sequence(tmp_path: Path, study: CineStudy) -> None:
    path = write_dicom_enhanced_cine(dataclasses.replace(study, image=study.image * 4), tmp_path, study_uid=STUDY_UID)
    ds = pydicom.dcmread(path)
    ds.PixelData = (ds.pixel_array // 2).astype(ds.pixel_array.dtype).tobytes()  # stored at half scale, SS 0.5
    for item in ds.PerFrameFunctionalGroupsSequence:
        private = Dataset()
        private.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.5)
        item.private_block(0x2005, "Philips MR Imaging DD 005", create=True).add_new(0x0F, "SQ", [private])
    ds.save_as(path)
    read = read_dicom(path)
    same_order = np.allclose(read.geometry.affine, study.geometry.affine, atol=1e-3)
    np.testing.assert_allclose(read.image, (study.image * 4) if same_order else (study.image * 4)[:, ::-1], atol=1e-3)


def test_enhanced_file_with_a_wrong_frame_count_is_named(tmp_path: Path, study: CineStudy) -> None:
    path = write_dicom_enhanced_cine(study, tmp_path, study_uid=STUDY_UID)
    ds = pydicom.dcmread(path)
    ds.NumberOfFrames = 10**6
    ds.save_as(path)
    with pytest.raises(InputError, match="NumberOfFrames is 1000000 but the file describes 20 frames"):
        read_study(path)
