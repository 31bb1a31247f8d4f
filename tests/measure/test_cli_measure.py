"""``opencmr analyze`` and ``opencmr measure`` end to end on phantom studies written to real files."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

runner = CliRunner()


@pytest.fixture(scope="module")
def acdc_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ACDC-style phantom folder holding only ED and ES (no 4D file), with Info.cfg."""
    folder = tmp_path_factory.mktemp("patient") / "phantom"
    write_phantom(make_phantom(PhantomConfig(group="DCM", n_frames=6, n_slices=8, seed=1)), folder)
    (folder / "phantom_4d.nii.gz").unlink()
    return folder


@pytest.fixture(scope="module")
def analyzed(acdc_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "result"
    result = runner.invoke(app, ["analyze", str(acdc_folder), "-o", str(out), "--hr", "72"])
    assert result.exit_code == 0, result.output
    return out


def test_analyze_writes_the_documented_outputs(analyzed: Path, acdc_folder: Path) -> None:
    names = sorted(p.name for p in analyzed.iterdir())
    assert names == [
        "bullseye_thickening.png",
        "bullseye_wall_thickness.png",
        "diagnosis.json",
        "measurements.csv",
        "measurements.json",
        "qc.json",
        "report.html",
        "segmentation_frame01.nii.gz",
        "segmentation_frame03.nii.gz",
        "uncertainty.nii.gz",
    ]
    qc = json.loads((analyzed / "qc.json").read_text())
    assert qc["schema"] == "opencmr.qc/1" and qc["verdict"] in ("pass", "review", "fail") and qc["checks"]
    assert (analyzed / "bullseye_wall_thickness.png").read_bytes()[:4] == b"\x89PNG"
    doc = json.loads((analyzed / "measurements.json").read_text())
    truth = json.loads((acdc_folder / "truth.json").read_text())["truth"]
    assert doc["schema"] == "opencmr.measurements/1" and doc["case"] == "phantom"
    assert (doc["ed_frame"], doc["es_frame"], doc["ed_es_rule"]) == (truth["ed_frame"], truth["es_frame"], "metadata")
    for key in (
        "lv_edv_ml",
        "lv_esv_ml",
        "lv_ef_percent",
        "lv_mass_g",
        "lv_edv_ml_m2",
        "rv_ef_percent",
        "lv_co_l_min",
        "max_wall_thickness_mm",
    ):
        assert isinstance(doc[key], float), key
    # the bundled model on the phantom: close to the analytic truth (the model is not perfect: 10 %, 5 points)
    ed, es = truth["ed_frame"], truth["es_frame"]
    edv, esv = truth["lv_blood_stack_ml"][ed], truth["lv_blood_stack_ml"][es]
    assert doc["lv_edv_ml"] == pytest.approx(edv, rel=0.10)
    assert abs(doc["lv_ef_percent"] - 100 * (edv - esv) / edv) < 5.0
    assert doc["lv_co_l_min"] == pytest.approx(doc["lv_sv_ml"] * 72 / 1000, rel=1e-3)
    # the phantom has no sex in Info.cfg: ranges that depend on sex are only flagged when both sexes agree
    flags = {flag["index"]: flag for flag in doc["flags"]}
    assert doc["sex"] is None and flags["lv_ef_percent"]["sex"] is None
    assert flags["lv_ef_percent"]["status"] == "low" and flags["lv_ef_percent"]["text"].endswith("low for either sex")
    header = (analyzed / "measurements.csv").read_text().splitlines()[0].split(",")
    assert header[0] == "case" and "lv_ef_percent" in header and "ed_es_rule" in header


def test_analyze_never_overwrites_without_permission(analyzed: Path, acdc_folder: Path) -> None:
    before = (analyzed / "measurements.json").stat().st_mtime_ns
    result = runner.invoke(app, ["analyze", str(acdc_folder), "-o", str(analyzed)])
    assert result.exit_code == 1 and "exists" in result.output and "Traceback" not in result.output
    assert (analyzed / "measurements.json").stat().st_mtime_ns == before


def test_analyze_a_cine_draws_the_volume_curve(tmp_path: Path) -> None:
    write_phantom(make_phantom(PhantomConfig(n_frames=4, n_slices=6, seed=2)), tmp_path / "cine")
    result = runner.invoke(app, ["analyze", str(tmp_path / "cine" / "phantom_4d.nii.gz"), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "volume_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert nib.load(tmp_path / "out" / "segmentation.nii.gz").shape[3] == 4
    doc = json.loads((tmp_path / "out" / "measurements.json").read_text())
    assert doc["ed_es_rule"] == "lv-volume-curve" and len(doc["volume_curve"]["lv_blood_pool_ml"]) == 4
    segments = doc["wall_thickness"]["thickening"]["segments"]
    assert sorted(segments, key=int) == [str(k) for k in range(1, 17)]


def test_measure_per_frame_files_agree_with_analyze(analyzed: Path, tmp_path: Path) -> None:
    files = sorted(str(p) for p in analyzed.glob("segmentation_frame*.nii.gz"))
    result = runner.invoke(app, ["measure", *files, "--height", "175", "--weight", "70", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    ours = json.loads((tmp_path / "measurements.json").read_text())
    theirs = json.loads((analyzed / "measurements.json").read_text())
    assert ours["ed_es_rule"] == "two-frames-lv-volume"
    for key in ("lv_edv_ml", "lv_esv_ml", "lv_mass_g", "rv_edv_ml"):
        assert ours[key] == pytest.approx(theirs[key])
    assert ours["bsa_m2"] == pytest.approx(np.sqrt(175 * 70 / 3600), abs=1e-3)
    framed = runner.invoke(app, ["measure", f"0={files[0]}", f"2={files[1]}", "--ed", "0", "--es", "2"])
    assert framed.exit_code == 0 and "rule: metadata" in " ".join(framed.output.split())
    women = runner.invoke(app, ["measure", *files, "--sex", "female"])
    text = " ".join(women.output.split())
    assert women.exit_code == 0 and "low: LVEF" in text and "for women): low" in text and "for men" not in text
    bad = runner.invoke(app, ["measure", *files, "--sex", "X"])
    assert bad.exit_code == 1 and "--sex: unknown sex 'X'" in bad.output


def _write_labels(path: Path, data: np.ndarray, zooms: tuple[float, float, float]) -> Path:
    image = nib.Nifti1Image(data, np.diag([*zooms, 1.0]))
    image.header.set_zooms((*zooms, 1.0)[: data.ndim])
    nib.save(image, path)
    return path


def test_measure_errors_are_one_line(tmp_path: Path) -> None:
    ring = np.zeros((12, 12, 3, 2), np.uint8)
    ring[3:9, 3:9, 1] = 2
    ring[4:8, 4:8, 1, 0] = 3
    ring[5:7, 5:7, 1, 1] = 3
    good = _write_labels(tmp_path / "good.nii.gz", ring, (1.5, 1.5, 10.0))
    assert runner.invoke(app, ["measure", str(good)]).exit_code == 0
    no_spacing = nib.Nifti1Image(ring, None)
    no_spacing.header.set_zooms((0.0, 0.0, 0.0, 1.0))
    no_spacing.header.set_sform(None, code=0)
    no_spacing.header.set_qform(None, code=0)
    nib.save(no_spacing, tmp_path / "nospacing.nii.gz")
    cases = {
        "nospacing.nii.gz": "voxel spacing is missing or invalid",
        "values.nii.gz": "label values [5] are outside",
        "empty.nii.gz": "LV blood pool is empty",
    }
    bad = ring.copy()
    bad[0, 0, 0, 0] = 5
    _write_labels(tmp_path / "values.nii.gz", bad, (1.5, 1.5, 10.0))
    _write_labels(tmp_path / "empty.nii.gz", np.where(ring == 3, 0, ring).astype(np.uint8), (1.5, 1.5, 10.0))
    for name, message in cases.items():
        result = runner.invoke(app, ["measure", str(tmp_path / name)])
        assert result.exit_code == 1, (name, result.output)
        assert message in result.output and name in result.output and "Traceback" not in result.output
