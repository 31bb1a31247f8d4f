from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from typer.testing import CliRunner

from opencmr.cli import app
from tests.io.test_acdc import make_patient

runner = CliRunner()


def test_info_acdc_folder_table_and_json(tmp_path: Path) -> None:
    folder = make_patient(tmp_path)
    result = runner.invoke(app, ["info", str(folder)])
    assert result.exit_code == 0, result.output
    assert "2 x 4 x 20 x 24" in result.output
    assert "slice 10, row 1.5, col 1.5" in result.output
    result = runner.invoke(app, ["info", str(folder), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "acdc"
    assert summary["shape"] == {"frames": 2, "slices": 4, "rows": 20, "cols": 24}
    assert summary["spacing_mm"] == {"slice": 10.0, "row": 1.5, "col": 1.5}
    assert summary["metadata"]["ed_frame"] == 0 and summary["metadata"]["es_frame"] == 2
    assert summary["metadata"]["group"] == "HCM"
    assert summary["labelled_frames"] == [0, 2]


def test_bad_input_is_one_line_with_nonzero_exit(tmp_path: Path) -> None:
    result = runner.invoke(app, ["info", str(tmp_path / "absent.nii.gz")])
    assert result.exit_code == 1
    assert "absent.nii.gz: does not exist" in result.output
    assert "Traceback" not in result.output


def test_convert_refuses_non_nifti_output_and_existing_file(tmp_path: Path) -> None:
    folder = make_patient(tmp_path)
    result = runner.invoke(app, ["convert", str(folder), str(tmp_path / "out.txt")])
    assert result.exit_code == 1 and "must end in .nii or .nii.gz" in result.output
    existing = tmp_path / "exists.nii.gz"
    existing.write_bytes(b"keep me")
    result = runner.invoke(app, ["convert", str(folder), str(existing)])
    assert result.exit_code == 1 and "already exists" in result.output
    assert existing.read_bytes() == b"keep me"


def test_convert_acdc_folder_to_4d_nifti(tmp_path: Path) -> None:
    folder = make_patient(tmp_path, with_4d=True)
    out = tmp_path / "cine.nii.gz"
    result = runner.invoke(app, ["convert", str(folder), str(out)])
    assert result.exit_code == 0, result.output
    img = nib.load(str(out))
    assert img.shape == (24, 20, 4, 4)
    np.testing.assert_allclose(img.affine, np.diag([1.5, 1.5, 10.0, 1.0]))


def test_convert_refuses_non_consecutive_frames_and_its_own_input(tmp_path: Path) -> None:
    folder = make_patient(tmp_path)  # ED and ES only: frames 0 and 2
    result = runner.invoke(app, ["convert", str(folder), str(tmp_path / "cine.nii.gz")])
    assert result.exit_code == 1 and "holds only frames [0, 2]" in result.output
    assert not (tmp_path / "cine.nii.gz").exists()
    image = folder / "patient999_frame01.nii.gz"
    before = image.read_bytes()
    result = runner.invoke(app, ["convert", str(image), str(image), "--overwrite"])
    assert result.exit_code == 1 and "is the input itself" in result.output
    assert image.read_bytes() == before


def test_real_process_error_has_no_traceback_and_debug_shows_it(tmp_path: Path) -> None:
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"garbage" * 50)
    command = [sys.executable, "-m", "opencmr.cli"]
    plain = subprocess.run([*command, "info", str(bad)], capture_output=True, text=True, timeout=120)
    assert plain.returncode == 1
    assert "broken.nii.gz: not a readable NIfTI file" in plain.stderr
    assert "Traceback" not in plain.stderr + plain.stdout
    assert len(plain.stderr.strip().splitlines()) == 1
    debug = subprocess.run([*command, "--debug", "info", str(bad)], capture_output=True, text=True, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_info_nifti_cine_with_labels_per_frame(write_nifti) -> None:
    from tests.conftest import blob_labels

    shape = (24, 20, 4)
    cine = write_nifti("cine.nii.gz", np.ones(shape + (3,), np.float32))
    ed = write_nifti("ed.nii.gz", blob_labels(shape), dtype=np.uint8)
    es = write_nifti("es.nii.gz", blob_labels(shape, shift=1), dtype=np.uint8)
    result = runner.invoke(app, ["info", str(cine), "--labels", f"0={ed}", "--labels", f"2={es}", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["labelled_frames"] == [0, 2]
    result = runner.invoke(app, ["info", str(cine), "--labels", str(ed), "--labels", str(es)])
    assert result.exit_code == 1 and "FRAME=FILE" in result.output
    result = runner.invoke(app, ["info", str(cine), "--labels", f"7={ed}"])
    assert result.exit_code == 1 and "labels given for frames [7]" in result.output


def test_info_on_a_real_acdc_patient(acdc_training: Path) -> None:
    folder = acdc_training / "patient001"
    if not folder.is_dir():
        folder = sorted(p for p in acdc_training.iterdir() if p.is_dir())[0]
    header = nib.load(str(sorted(folder.glob("*_frame??.nii.gz"))[0]))
    x, y, z = (float(v) for v in header.header.get_zooms()[:3])
    summary = json.loads(runner.invoke(app, ["info", str(folder), "--json"]).stdout)
    assert summary["shape"]["slices"] == header.shape[2]
    assert (summary["shape"]["rows"], summary["shape"]["cols"]) == (header.shape[1], header.shape[0])
    assert summary["spacing_mm"] == {"slice": z, "row": y, "col": x}
    info = dict(line.split(": ", 1) for line in (folder / "Info.cfg").read_text().splitlines() if line.strip())
    assert summary["metadata"]["ed_frame"] == int(info["ED"]) - 1
    assert summary["metadata"]["es_frame"] == int(info["ES"]) - 1
    assert summary["metadata"]["group"] == info["Group"].strip()


def test_one_line_messages_for_os_and_unexpected_errors() -> None:
    from opencmr.cli import _one_line

    assert _one_line(PermissionError(13, "Permission denied", "/data/x.nii.gz")) == "/data/x.nii.gz: Permission denied"
    message = _one_line(ZeroDivisionError("division by zero"))
    assert message.startswith("unexpected ZeroDivisionError: division by zero") and "--debug" in message
