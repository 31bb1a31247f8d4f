"""End to end: the phantom's DICOM export through ``opencmr info`` and ``opencmr convert``."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.io.study import Geometry, LabelMap
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

runner = CliRunner()


@pytest.fixture(scope="module")
def dicom_study(tmp_path_factory: pytest.TempPathFactory):
    """A phantom DICOM export whose files are renamed at random and scattered over sub-folders."""
    phantom = make_phantom(PhantomConfig(group="HCM", n_frames=5, n_slices=4, matrix=(40, 48), seed=3))
    # Non-square pixels (1.9 mm between rows, 1.6 mm between columns), so that a swap of DICOM's
    # PixelSpacing (row spacing first) or of the row/column direction cosines cannot go unnoticed.
    affine = np.array(phantom.study.geometry.affine)
    affine[:3, 1] *= 1.9 / 1.6
    geometry = Geometry(affine, phantom.study.geometry.shape, phantom.study.geometry.slice_thickness_mm)
    labels = LabelMap(phantom.study.labels.data, geometry, phantom.study.labels.frame_numbers)
    study = dataclasses.replace(phantom.study, geometry=geometry, labels=labels)
    phantom = dataclasses.replace(phantom, study=study)
    root = tmp_path_factory.mktemp("phantom")
    written = write_phantom(phantom, root / "study", dicom=True)
    dicom = written["dicom"]
    rng = random.Random(0)
    files = sorted(dicom.glob("*.dcm"))
    rng.shuffle(files)
    for i, path in enumerate(files):
        target = dicom / f"sub{i % 3}" / f"{rng.getrandbits(40):x}"  # no extension, random order
        target.parent.mkdir(exist_ok=True)
        path.rename(target)
    return phantom, dicom


def test_info_on_dicom_folder_prints_dimensions_and_spacing(dicom_study) -> None:
    phantom, dicom = dicom_study
    result = runner.invoke(app, ["info", str(dicom)])
    assert result.exit_code == 0, result.output
    assert "5 x 4 x 40 x 48" in result.output
    assert "slice 10, row 1.9, col 1.6" in result.output
    assert "localizer" in result.output  # the decoy series is listed, and not taken
    summary = json.loads(runner.invoke(app, ["info", str(dicom), "--json"]).stdout)
    assert summary["format"] == "dicom"
    assert summary["shape"] == {"frames": 5, "slices": 4, "rows": 40, "cols": 48}
    assert summary["spacing_mm"] == pytest.approx({"slice": 10.0, "row": 1.9, "col": 1.6})
    assert summary["slice_thickness_mm"] == pytest.approx(8.0)
    assert summary["frame_times_ms"] == pytest.approx([0, 200, 400, 600, 800])
    assert sum(s["is_candidate"] for s in summary["series"]) == 1
    assert len(summary["series"]) == 3


def test_convert_gives_4d_nifti_in_ras_with_frames_in_time_order(dicom_study, tmp_path: Path) -> None:
    phantom, dicom = dicom_study
    out = tmp_path / "cine.nii.gz"
    result = runner.invoke(app, ["convert", str(dicom), str(out)])
    assert result.exit_code == 0, result.output
    img = nib.load(str(out))
    assert img.shape == (48, 40, 4, 5)  # x (cols), y (rows), slice, frame
    data = np.asarray(img.dataobj)
    np.testing.assert_array_equal(data.transpose(3, 2, 1, 0), phantom.study.image)
    assert img.header.get_zooms()[3] == pytest.approx(200.0)

    # Independent of opencmr's reader: every image's ImagePositionPatient (LPS) must be where the
    # NIfTI affine puts voxel (0, 0, slice), with x and y negated (RAS), at the right trigger time.
    checked = 0
    for path in dicom.rglob("*"):
        if not path.is_file():
            continue
        ds = pydicom.dcmread(path)
        if ds.SeriesDescription != "cine SAX bSSFP":
            continue
        lps = np.array([float(v) for v in ds.ImagePositionPatient])
        ras = lps * np.array([-1.0, -1.0, 1.0])
        index = np.linalg.solve(img.affine[:3, :3], ras - img.affine[:3, 3])
        assert np.allclose(index[:2], 0.0, atol=1e-3), index
        slice_index = int(round(index[2]))
        assert abs(index[2] - slice_index) < 1e-3
        frame = int(round(float(ds.TriggerTime) / 200.0))
        np.testing.assert_array_equal(data[:, :, slice_index, frame].T, ds.pixel_array)
        flip = np.array([-1.0, -1.0, 1.0])
        row_dir = np.array([float(v) for v in ds.ImageOrientationPatient[:3]]) * flip
        col_dir = np.array([float(v) for v in ds.ImageOrientationPatient[3:]]) * flip
        row_spacing, col_spacing = (float(v) for v in ds.PixelSpacing)
        assert (row_spacing, col_spacing) == pytest.approx((1.9, 1.6))  # PS3.3 C.7.6.2.1.1: between rows first
        np.testing.assert_allclose(img.affine[:3, 0], col_spacing * row_dir, atol=1e-4)  # along a row
        np.testing.assert_allclose(img.affine[:3, 1], row_spacing * col_dir, atol=1e-4)  # down a column
        checked += 1
    assert checked == 20


def test_convert_chooses_series_and_reports_ambiguity(dicom_study, tmp_path: Path) -> None:
    phantom, dicom = dicom_study
    from opencmr.io.dicom_write import write_dicom_cine

    folder = tmp_path / "two"
    write_dicom_cine(phantom.study, folder / "a", series_number=7, study_uid="1.2.3.4")
    write_dicom_cine(phantom.study, folder / "b", series_number=8, study_uid="1.2.3.4")
    result = runner.invoke(app, ["convert", str(folder), str(tmp_path / "x.nii.gz")])
    assert result.exit_code == 1
    assert "several short-axis cine candidates" in result.output and "--series" in result.output
    assert not (tmp_path / "x.nii.gz").exists()
    result = runner.invoke(app, ["convert", str(folder), str(tmp_path / "x.nii.gz"), "--series", "8"])
    assert result.exit_code == 0, result.output


def test_folder_without_cine_series(tmp_path: Path) -> None:
    from opencmr.io.dicom_write import write_dicom_localizer

    phantom = make_phantom(PhantomConfig(n_frames=3, n_slices=3, matrix=(32, 32)))
    write_dicom_localizer(phantom.study, tmp_path / "loc", study_uid="1.2.3")
    result = runner.invoke(app, ["info", str(tmp_path / "loc")])
    assert result.exit_code == 1
    assert "no short-axis cine series found" in result.output and "Traceback" not in result.output


def test_phantom_command_writes_study_and_refuses_to_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "ph"
    args = ["phantom", "--group", "minf", "--out", str(out), "--frames", "4", "--slices", "3"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "MINF phantom" in result.output and (out / "Info.cfg").is_file()
    before = (out / "truth.json").read_bytes()
    result = runner.invoke(app, args + ["--seed", "5"])
    assert result.exit_code == 1 and "--overwrite" in result.output
    assert (out / "truth.json").read_bytes() == before
    result = runner.invoke(app, ["phantom", "--group", "XYZ", "--out", str(tmp_path / "bad")])
    assert result.exit_code == 1 and "unknown diagnostic group" in result.output


def test_reading_reports_progress(dicom_study) -> None:
    from opencmr.io.read import read_study

    phantom, dicom = dicom_study
    calls: list[tuple[str, int, int]] = []
    study = read_study(dicom, progress=lambda stage, done, total: calls.append((stage, done, total)))
    headers = [c for c in calls if c[0] == "headers"]
    pixels = [c for c in calls if c[0] == "pixels"]
    assert headers[-1][1] == headers[-1][2] == len([p for p in dicom.rglob("*") if p.is_file()])
    assert [c[1] for c in pixels] == list(range(1, 21)) and pixels[-1][2] == 20
    np.testing.assert_array_equal(study.image, phantom.study.image)
