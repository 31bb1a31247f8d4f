from __future__ import annotations

import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opencmr.errors import InputError
from opencmr.io.acdc import parse_info_cfg, read_acdc_folder
from opencmr.labels import DiagnosticGroup
from tests.conftest import blob_labels

SHAPE = (24, 20, 4)
INFO = "ED: 1\nES: 3\nGroup: HCM\nHeight: 172.5\nNbFrame: 4\nWeight: 80.0\n"


def make_patient(root: Path, with_4d: bool = False, info: str = INFO) -> Path:
    folder = root / "patient999"
    folder.mkdir()
    (folder / "Info.cfg").write_text(info)
    affine = np.diag([1.5, 1.5, 10.0, 1.0])
    frames = {1: blob_labels(SHAPE), 3: blob_labels(SHAPE, shift=1)}
    for f, labels in frames.items():
        image = labels.astype(np.float32) / 3.0 + f
        nib.save(nib.Nifti1Image(image, affine), str(folder / f"patient999_frame{f:02d}.nii.gz"))
        nib.save(nib.Nifti1Image(labels, affine), str(folder / f"patient999_frame{f:02d}_gt.nii.gz"))
    if with_4d:  # frame t (0-based) of the cine is file frame t + 1
        cine = np.stack([frames.get(t + 1, blob_labels(SHAPE)) / 3.0 + t + 1 for t in range(4)], axis=-1)
        nib.save(nib.Nifti1Image(cine.astype(np.float32), affine), str(folder / "patient999_4d.nii.gz"))
    return folder


def test_frames_only_folder(tmp_path: Path) -> None:
    study = read_acdc_folder(make_patient(tmp_path))
    assert study.image.shape == (2, 4, 20, 24)
    assert study.frame_numbers == (0, 2)
    meta = study.metadata
    assert (meta.ed_frame, meta.es_frame, meta.group) == (0, 2, DiagnosticGroup.HCM)
    assert (meta.height_cm, meta.weight_kg, meta.n_frames_acquired) == (172.5, 80.0, 4)
    assert study.spacing == pytest.approx((10.0, 1.5, 1.5))
    assert study.labels is not None and study.labels.frame_numbers == (0, 2)
    np.testing.assert_array_equal(study.labels.frame(2), np.transpose(blob_labels(SHAPE, shift=1), (2, 1, 0)))
    assert float(study.frame(2).min()) == 3.0  # the ES image is frame 3 (1-based)


def test_folder_with_4d_holds_every_frame(tmp_path: Path) -> None:
    study = read_acdc_folder(make_patient(tmp_path, with_4d=True))
    assert study.image.shape == (4, 4, 20, 24)
    assert study.frame_numbers == (0, 1, 2, 3)
    assert study.labels is not None and study.labels.frame_numbers == (0, 2)
    assert float(study.frame(1).min()) == 2.0


def test_frame_file_inconsistent_with_4d_is_rejected(tmp_path: Path) -> None:
    folder = make_patient(tmp_path, with_4d=True)
    image = folder / "patient999_frame03.nii.gz"
    nib.save(nib.Nifti1Image(blob_labels(SHAPE) / 3.0 + 2.0, np.diag([1.5, 1.5, 10.0, 1.0])), str(image))
    with pytest.raises(InputError, match=r"patient999_frame03\.nii\.gz: image differs from frame 3 of the 4D"):
        read_acdc_folder(folder)


def test_ed_es_must_name_frames_that_are_present(tmp_path: Path) -> None:
    folder = make_patient(tmp_path, info="ED: 1\nES: 2\n")
    with pytest.raises(InputError, match=r"Info\.cfg: ES is frame 2, but the folder holds frames 1, 3"):
        read_acdc_folder(folder)
    (folder / "Info.cfg").write_text("")
    with pytest.raises(InputError, match=r"Info\.cfg: gives no ED or no ES frame"):
        read_acdc_folder(folder)


def test_info_cfg_parsing_and_errors(tmp_path: Path) -> None:
    cfg = tmp_path / "Info.cfg"
    cfg.write_text("ED: 1\nES: 12\nGroup: minf\n")
    info = parse_info_cfg(cfg)
    assert (info.ed, info.es, info.group, info.height_cm) == (1, 12, DiagnosticGroup.MINF, None)
    for text, problem in [
        ("ED: one\n", "ED is not a number"),
        ("ED: 1.5\n", "whole number"),
        ("Group: XYZ\n", "unknown diagnostic group"),
        ("garbage line\n", "line 1 is not 'Key: value'"),
        ("Height: -3\n", "must be positive"),
    ]:
        cfg.write_text(text)
        with pytest.raises(InputError, match=re.escape(str(cfg)) + ".*" + re.escape(problem)):
            parse_info_cfg(cfg)


def test_bad_acdc_folders(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder does not exist"):
        read_acdc_folder(tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "Info.cfg").write_text(INFO)
    with pytest.raises(InputError, match="no ACDC images found"):
        read_acdc_folder(empty)
    folder = make_patient(tmp_path, info="ED: 1\nES: 9\nNbFrame: 4\n")
    with pytest.raises(InputError, match="ES is frame 9, but the folder holds frames 1, 3"):
        read_acdc_folder(folder)


def test_label_geometry_mismatch_in_folder(tmp_path: Path) -> None:
    folder = make_patient(tmp_path)
    gt = folder / "patient999_frame03_gt.nii.gz"
    nib.save(nib.Nifti1Image(blob_labels((24, 20, 5)), np.diag([1.5, 1.5, 10.0, 1.0])), str(gt))
    with pytest.raises(InputError, match=r"patient999_frame03_gt\.nii\.gz: label geometry does not match"):
        read_acdc_folder(folder)


def _info_fields(path: Path) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in path.read_text().splitlines() if line.strip())


@pytest.mark.acdc
def test_reads_every_shared_acdc_patient(acdc_training: Path) -> None:
    patients = sorted(p for p in acdc_training.iterdir() if p.is_dir())
    assert len(patients) >= 1
    for folder in patients:
        study = read_acdc_folder(folder)
        fields = _info_fields(folder / "Info.cfg")
        ed, es = int(fields["ED"]) - 1, int(fields["ES"]) - 1
        assert (study.metadata.ed_frame, study.metadata.es_frame) == (ed, es), folder
        assert study.metadata.group == DiagnosticGroup(fields["Group"].strip()), folder
        assert study.metadata.height_cm == pytest.approx(float(fields["Height"]))
        assert study.metadata.weight_kg == pytest.approx(float(fields["Weight"]))
        header_image = nib.load(str(folder / f"{folder.name}_frame{ed + 1:02d}.nii.gz"))
        x, y, z = header_image.header.get_zooms()[:3]
        assert study.spacing == pytest.approx((z, y, x)), folder
        assert study.image.shape[1:] == header_image.shape[::-1], folder
        assert study.frame_numbers == tuple(sorted({ed, es}))
        assert study.labels is not None and set(study.labels.frame_numbers) == {ed, es}
        for frame in (ed, es):
            present = set(np.unique(study.labels.frame(frame)).tolist())
            assert present == {0, 1, 2, 3}, (folder, frame, present)
        assert 0.5 <= study.spacing[1] <= 2.5 and 4.9 <= study.spacing[0] <= 10.1, folder
