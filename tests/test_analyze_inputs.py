"""``opencmr analyze`` inputs beyond one path: an ED/ES pair of NIfTI files, and no study (the bundled example)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.errors import InputError
from opencmr.io.read import read_ed_es_pair
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

runner = CliRunner()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pair") / "phantom"
    write_phantom(make_phantom(PhantomConfig(group="NOR", n_frames=6, n_slices=6, seed=3)), out)
    return out


def _ed_es(folder: Path) -> tuple[Path, Path]:
    frames = sorted(p for p in folder.glob("phantom_frame*.nii.gz") if not p.name.endswith("_gt.nii.gz"))
    return frames[0], frames[1]


def test_a_pair_reads_as_two_frames_with_ed_and_es(folder: Path) -> None:
    ed, es = _ed_es(folder)
    study = read_ed_es_pair(ed, es)
    assert study.frame_numbers == (0, 1) and study.metadata.ed_frame == 0 and study.metadata.es_frame == 1
    np.testing.assert_array_equal(study.image[1], np.asarray(read_ed_es_pair(es, ed).image[0]))


def test_a_pair_on_different_grids_or_a_4d_file_is_refused(folder: Path, tmp_path: Path) -> None:
    ed, es = _ed_es(folder)
    img = nib.load(es)
    shifted = tmp_path / "es_other_grid.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-2], img.affine), shifted)
    with pytest.raises(InputError, match="es_other_grid.nii.gz: is not on the grid of the ED image"):
        read_ed_es_pair(ed, shifted)
    with pytest.raises(InputError, match="must be 3D, but it has"):
        read_ed_es_pair(folder / "phantom_4d.nii.gz", es)


def test_analyze_a_pair_end_to_end(folder: Path, tmp_path: Path) -> None:
    ed, es = _ed_es(folder)
    result = runner.invoke(
        app, ["analyze", str(ed), str(es), "-o", str(tmp_path / "out"), "--height", "175", "--weight", "70", "--no-tta"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads((tmp_path / "out" / "measurements.json").read_text())
    assert doc["ed_frame"] == 0 and doc["es_frame"] == 1 and doc["ed_es_rule"] == "metadata"
    truth = json.loads((folder / "truth.json").read_text())["truth"]
    assert doc["lv_edv_ml"] == pytest.approx(max(truth["lv_blood_ml"]), rel=0.1)
    assert (tmp_path / "out" / "report.html").is_file()
    three = runner.invoke(app, ["analyze", str(ed), str(es), str(ed), "-o", str(tmp_path / "x")])
    assert three.exit_code != 0 and "not 3 paths" in re.sub(r"[\s│╭╮╰╯─]+", " ", three.output)


def test_analyze_without_a_study_runs_the_bundled_example(tmp_path: Path) -> None:
    result = runner.invoke(app, ["analyze", "-o", str(tmp_path / "out"), "--no-tta", "--orientation", "off"])
    assert result.exit_code == 0, result.output
    assert "bundled example study" in result.output
    assert (tmp_path / "out" / "example_input" / "dicom").is_dir()
    for name in ("report.html", "measurements.json", "qc.json", "segmentation.dcm", "report_sr.dcm", "diagnosis.json"):
        assert (tmp_path / "out" / name).is_file(), name
    # the example's DICOM carries a StudyDate: the report shows it instead of "not recorded"
    import pydicom

    first = next((tmp_path / "out" / "example_input" / "dicom").rglob("*.dcm"))
    date = pydicom.dcmread(first).StudyDate
    report = (tmp_path / "out" / "report.html").read_text()
    assert re.search(rf"Study date</[^>]+>\s*<[^>]+>{date[:4]}-{date[4:6]}-{date[6:]}<", report), "study date"
    assert json.loads((tmp_path / "out" / "diagnosis.json").read_text())["group"] == "DCM"
