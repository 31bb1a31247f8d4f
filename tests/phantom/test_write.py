"""Writing a phantom as an ACDC-style folder (and DICOM) that reads back unchanged."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opencmr.errors import OutputError
from opencmr.io import read_acdc_folder
from opencmr.phantom import Phantom, PhantomConfig, make_phantom, write_phantom


@pytest.fixture(scope="module")
def phantom() -> Phantom:
    config = PhantomConfig(group="DCM", seed=4, n_frames=6, n_slices=8, matrix=(48, 48), pixel_spacing_mm=4.0)
    return make_phantom(config)


def test_writes_an_acdc_folder_that_reads_back(phantom: Phantom, tmp_path: Path) -> None:
    out = tmp_path / "patient"
    files = write_phantom(phantom, out)
    ed, es = phantom.truth.ed_frame + 1, phantom.truth.es_frame + 1
    assert files["ed_image"].name == f"phantom_frame{ed:02d}.nii.gz"
    assert files["es_labels"].name == f"phantom_frame{es:02d}_gt.nii.gz"
    expected = {"Info.cfg", "phantom_4d.nii.gz", "phantom_4d_gt.nii.gz", "truth.json"}
    expected |= {f"phantom_frame{f:02d}{gt}.nii.gz" for f in (ed, es) for gt in ("", "_gt")}
    assert {p.name for p in out.iterdir()} == expected
    assert all(path.is_file() for path in files.values())

    meta = phantom.study.metadata
    lines = (out / "Info.cfg").read_text().splitlines()
    assert lines == [
        f"ED: {ed}",
        f"ES: {es}",
        "Group: DCM",
        f"Height: {meta.height_cm:.1f}",
        "NbFrame: 6",
        f"Weight: {meta.weight_kg:.1f}",
    ]

    affine = phantom.study.geometry.affine
    image = nib.load(files["image_4d"])
    assert image.shape == (48, 48, 8, 6)
    np.testing.assert_allclose(image.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(np.asarray(image.dataobj).transpose(3, 2, 1, 0), phantom.study.image)
    labels = nib.load(files["labels_4d"])
    assert labels.shape == (48, 48, 8, 6)
    np.testing.assert_array_equal(np.asarray(labels.dataobj).transpose(3, 2, 1, 0), phantom.study.labels.data)
    es_labels = nib.load(files["es_labels"])
    assert es_labels.shape == (48, 48, 8)
    np.testing.assert_allclose(es_labels.affine, affine, atol=1e-4)
    np.testing.assert_array_equal(
        np.asarray(es_labels.dataobj).transpose(2, 1, 0), phantom.study.labels.frame(es - 1)
    )

    truth = json.loads((out / "truth.json").read_text())
    assert truth["truth"]["lv_edv_ml"] == pytest.approx(phantom.truth.lv_edv_ml, abs=1e-3)
    assert truth["config"]["group"] == "DCM" and truth["patient_id"] == "PHANTOM-DCM-4"

    study = read_acdc_folder(out)
    assert study.n_frames == 6 and study.metadata.ed_frame == ed - 1 and study.metadata.es_frame == es - 1
    assert study.geometry.same_grid(phantom.study.geometry)
    np.testing.assert_array_equal(study.image, phantom.study.image)


def test_refuses_a_non_empty_folder_and_never_deletes_user_files(phantom: Phantom, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="already contains files"):
        write_phantom(phantom, tmp_path)
    with pytest.raises(OutputError, match="did not write"):
        write_phantom(phantom, tmp_path, overwrite=True)
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    assert not (tmp_path / "Info.cfg").exists()
    with pytest.raises(OutputError, match="is a file"):
        write_phantom(phantom, tmp_path / "notes.txt")
    out = tmp_path / "study"
    write_phantom(phantom, out, dicom=True)
    (out / "dicom" / "my_scan.dcm").write_bytes(b"user data")
    with pytest.raises(OutputError, match="my_scan.dcm"):
        write_phantom(phantom, out, dicom=True, overwrite=True)
    assert (out / "dicom" / "my_scan.dcm").read_bytes() == b"user data"


def test_overwrite_replaces_an_earlier_phantom_without_stale_files(phantom: Phantom, tmp_path: Path) -> None:
    other = make_phantom(PhantomConfig(group="HCM", seed=1, n_frames=9, n_slices=3, matrix=(32, 32)))
    write_phantom(other, tmp_path, dicom=True)
    write_phantom(phantom, tmp_path, dicom=True, overwrite=True)
    study = read_acdc_folder(tmp_path)
    assert study.n_frames == 6 and study.metadata.group == phantom.study.metadata.group
    frame_files = sorted(p.name for p in tmp_path.glob("phantom_frame*_gt.nii.gz"))
    assert len(frame_files) == 2
    assert len(list((tmp_path / "dicom").iterdir())) == 8 * 6 + 3 + 6


def test_dicom_export_reads_back_as_the_same_cine(phantom: Phantom, tmp_path: Path) -> None:
    from opencmr.io.dicom import read_dicom_folder

    files = write_phantom(phantom, tmp_path / "p", dicom=True)
    folder = files["dicom"]
    assert len(list(folder.iterdir())) == 8 * 6 + 3 + 6  # cine + localiser + long-axis decoy
    study = read_dicom_folder(folder)
    assert study.geometry.same_grid(phantom.study.geometry)
    np.testing.assert_array_equal(study.image, phantom.study.image)
    assert study.metadata.patient_id == "PHANTOM-DCM-4"
