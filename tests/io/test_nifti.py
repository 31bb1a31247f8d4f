from __future__ import annotations

import gzip
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opencmr.errors import InputError, OutputError
from opencmr.io.nifti import read_nifti, write_label_map, write_study_nifti
from opencmr.io.study import LabelMap
from tests.conftest import blob_labels, oblique_affine

SHAPE = (24, 20, 4)  # x (cols), y (rows), slices


def test_3d_image_becomes_one_frame(write_nifti) -> None:
    data = np.random.default_rng(0).random(SHAPE).astype(np.float32)
    study = read_nifti(write_nifti("img.nii.gz", data))
    assert study.image.shape == (1, 4, 20, 24)
    # array[f, s, r, c] == nifti[c, r, s]
    assert study.image[0, 2, 5, 7] == pytest.approx(data[7, 5, 2])
    assert study.spacing == pytest.approx((8.0, 1.4, 1.4))
    assert study.frame_numbers == (0,)


def test_4d_image_keeps_frames_and_frame_interval(tmp_path: Path) -> None:
    data = np.zeros(SHAPE + (5,), dtype=np.float32)
    for t in range(5):
        data[..., t] = t
    img = nib.Nifti1Image(data, oblique_affine())
    img.header.set_zooms((1.4, 1.4, 8.0, 40.0))
    img.header.set_xyzt_units("mm", "msec")
    nib.save(img, str(tmp_path / "cine.nii.gz"))
    study = read_nifti(tmp_path / "cine.nii.gz")
    assert study.image.shape == (5, 4, 20, 24)
    assert [float(study.image[t].mean()) for t in range(5)] == [0, 1, 2, 3, 4]
    assert study.frame_times_ms == pytest.approx((0, 40, 80, 120, 160))


def test_label_round_trip_keeps_shape_and_affine_exactly(write_nifti, tmp_path: Path) -> None:
    image_path = write_nifti("img.nii.gz", np.ones(SHAPE, dtype=np.float32))
    label_path = write_nifti("gt.nii.gz", blob_labels(SHAPE), dtype=np.uint8)
    study = read_nifti(image_path, labels=label_path)
    assert study.labels is not None
    out = write_label_map(study.labels, tmp_path / "out" / "seg.nii.gz")
    written, original = nib.load(str(out)), nib.load(str(image_path))
    assert written.shape == original.shape
    np.testing.assert_array_equal(written.affine, original.affine)
    np.testing.assert_array_equal(np.asarray(written.dataobj), blob_labels(SHAPE))
    assert written.get_data_dtype() == np.uint8


def test_label_map_per_frame_of_cine(write_nifti, tmp_path: Path) -> None:
    image_path = write_nifti("cine.nii.gz", np.ones(SHAPE + (3,), dtype=np.float32))
    ed = write_nifti("ed.nii.gz", blob_labels(SHAPE), dtype=np.uint8)
    es = write_nifti("es.nii.gz", blob_labels(SHAPE, shift=1), dtype=np.uint8)
    study = read_nifti(image_path, labels={0: ed, 2: es})
    assert study.labels is not None and study.labels.frame_numbers == (0, 2)
    out = write_label_map(study.labels, tmp_path / "es_out.nii.gz", frame=2)
    np.testing.assert_array_equal(np.asarray(nib.load(str(out)).dataobj), blob_labels(SHAPE, shift=1))
    both = write_label_map(study.labels, tmp_path / "both.nii.gz")
    assert nib.load(str(both)).shape == SHAPE + (2,)


def test_study_round_trip_4d(write_nifti, tmp_path: Path) -> None:
    data = np.random.default_rng(1).integers(0, 3000, size=SHAPE + (3,)).astype(np.float32)
    study = read_nifti(write_nifti("cine.nii.gz", data))
    back = read_nifti(write_study_nifti(study, tmp_path / "again.nii.gz"))
    np.testing.assert_array_equal(back.image, study.image)
    np.testing.assert_allclose(back.geometry.affine, study.geometry.affine, atol=1e-6)


def test_writers_refuse_to_overwrite(write_nifti, tmp_path: Path) -> None:
    study = read_nifti(write_nifti("img.nii.gz", np.ones(SHAPE, np.float32)), labels=None)
    labels = LabelMap(np.zeros((1, 4, 20, 24), np.uint8), study.geometry, (0,))
    target = tmp_path / "seg.nii.gz"
    target.write_bytes(b"user data")
    with pytest.raises(OutputError, match="already exists"):
        write_label_map(labels, target)
    assert target.read_bytes() == b"user data"
    write_label_map(labels, target, overwrite=True)
    assert nib.load(str(target)).shape == SHAPE


def test_failed_write_leaves_no_partial_file(write_nifti, tmp_path: Path, monkeypatch) -> None:
    study = read_nifti(write_nifti("img.nii.gz", np.ones(SHAPE, np.float32)))

    def broken_save(img, filename):
        Path(filename).write_bytes(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_study_nifti(study, tmp_path / "out.nii.gz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["img.nii.gz"]


# --- bad input -----------------------------------------------------------------------------------------


def test_missing_file() -> None:
    with pytest.raises(InputError, match=r"nope\.nii\.gz: file does not exist"):
        read_nifti("nope.nii.gz")


def test_corrupt_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.nii.gz"
    bad.write_bytes(b"this is not a nifti file at all" * 20)
    with pytest.raises(InputError, match=r"bad\.nii\.gz: not a readable NIfTI"):
        read_nifti(bad)


def test_truncated_file(write_nifti) -> None:
    path = write_nifti("trunc.nii.gz", np.random.default_rng(0).random((40, 40, 8)).astype(np.float32))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(InputError, match=r"trunc\.nii\.gz: .*(truncated|corrupt)"):
        read_nifti(path)


def test_truncated_gzip_stream(write_nifti) -> None:
    path = write_nifti("cut.nii.gz", np.random.default_rng(0).random((40, 40, 8)).astype(np.float32))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 2 // 3])
    with pytest.raises(InputError, match=r"cut\.nii\.gz: "):
        read_nifti(path)


def test_2d_image_is_rejected(write_nifti) -> None:
    path = write_nifti("flat.nii.gz", np.ones((20, 20), np.float32), affine=np.eye(4))
    with pytest.raises(InputError, match=r"flat\.nii\.gz: 2D image"):
        read_nifti(path)


def test_zero_spacing_is_rejected(tmp_path: Path) -> None:
    # nibabel itself would "fix" pixdim 0 to 1 mm on loading; the raw header must be checked
    path = tmp_path / "zero.nii"
    nib.save(nib.Nifti1Image(np.ones((10, 10, 3), np.float32), None), str(path))
    raw = bytearray(path.read_bytes())
    raw[88:92] = struct.pack("<f", 0.0)  # pixdim[3], the slice spacing (NIfTI-1 header offset 76 + 3 * 4)
    path.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"zero\.nii: voxel spacing is missing or invalid"):
        read_nifti(path)


def test_nan_values_are_rejected(write_nifti) -> None:
    data = np.ones(SHAPE, np.float32)
    data[3, 3, 1] = np.nan
    with pytest.raises(InputError, match=r"nan\.nii\.gz: image contains 1 NaN"):
        read_nifti(write_nifti("nan.nii.gz", data))


def test_label_geometry_mismatch(write_nifti) -> None:
    image = write_nifti("img.nii.gz", np.ones(SHAPE, np.float32))
    wrong_shape = write_nifti("gt_shape.nii.gz", blob_labels((24, 20, 3)), dtype=np.uint8)
    with pytest.raises(InputError, match=r"gt_shape\.nii\.gz: label geometry does not match"):
        read_nifti(image, labels=wrong_shape)
    wrong_affine = write_nifti("gt_affine.nii.gz", blob_labels(SHAPE), affine=np.diag([1, 1, 5, 1.0]), dtype=np.uint8)
    with pytest.raises(InputError, match=r"gt_affine\.nii\.gz: label geometry does not match .*affine"):
        read_nifti(image, labels=wrong_affine)


def test_label_values_outside_convention(write_nifti) -> None:
    image = write_nifti("img.nii.gz", np.ones(SHAPE, np.float32))
    labels = blob_labels(SHAPE)
    labels[0, 0, 0] = 7
    with pytest.raises(InputError, match=r"gt\.nii\.gz: label values \[7\]"):
        read_nifti(image, labels=write_nifti("gt.nii.gz", labels, dtype=np.uint8))
    with pytest.raises(InputError, match=r"float_gt\.nii\.gz: label values are not integers"):
        read_nifti(image, labels=write_nifti("float_gt.nii.gz", np.full(SHAPE, 0.5, np.float32)))


def test_outputs_get_normal_permissions_not_the_temporary_private_mode(write_nifti, tmp_path: Path) -> None:
    import os

    study = read_nifti(write_nifti("img.nii.gz", np.ones(SHAPE, np.float32)))
    out = write_study_nifti(study, tmp_path / "out.nii.gz")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
    os.chmod(out, 0o640)
    write_study_nifti(study, out, overwrite=True)
    assert out.stat().st_mode & 0o777 == 0o640


def test_unwritable_output_location_is_a_clear_error(write_nifti, tmp_path: Path) -> None:
    study = read_nifti(write_nifti("img.nii.gz", np.ones(SHAPE, np.float32)))
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(OutputError, match=r"afile/out\.nii\.gz: cannot be written"):
        write_study_nifti(study, blocker / "out.nii.gz")
