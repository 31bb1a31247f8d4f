"""``analyze_study``'s safety paths: orientation check, a study with nothing measurable, outputs checked up front."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from typer.testing import CliRunner

from opencmr.analysis import AnalysisOptions, analyze_study
from opencmr.cli import app
from opencmr.errors import InputError, OutputError
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

runner = CliRunner()
SUBJECT = {"height_cm": 175.0, "weight_kg": 70.0}


@pytest.fixture(scope="module")
def cine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("cine") / "phantom"
    write_phantom(make_phantom(PhantomConfig(n_frames=2, n_slices=6, seed=1)), folder)
    return folder / "phantom_4d.nii.gz"


@pytest.fixture(scope="module")
def transposed(cine: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same cine with rows and columns swapped in the file (affine columns swapped too: same anatomy)."""
    img = nib.load(cine)
    affine = img.affine.copy()
    affine[:, [0, 1]] = affine[:, [1, 0]]
    path = tmp_path_factory.mktemp("transposed") / "transposed.nii.gz"
    nib.save(nib.Nifti1Image(np.swapaxes(np.asarray(img.dataobj), 0, 1).copy(), affine), path)
    return path


@pytest.fixture(scope="module")
def reference(cine: Path, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    return analyze_study(cine, tmp_path_factory.mktemp("ref"), AnalysisOptions(**SUBJECT))


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean([2 * ((a == k) & (b == k)).sum() / max((a == k).sum() + (b == k).sum(), 1) for k in (1, 2, 3)]))


def test_a_normal_study_passes_the_orientation_check(reference) -> None:  # type: ignore[no-untyped-def]
    check = next(c for c in reference.qc.checks if c.name == "orientation")
    assert check.status.value == "pass"


def test_a_transposed_file_is_segmented_correctly_and_flagged(reference, transposed: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = analyze_study(transposed, tmp_path / "out", AnalysisOptions(**SUBJECT))
    check = next(c for c in result.qc.checks if c.name == "orientation")
    assert check.status.value == "review" and "transpos" in check.reason
    assert result.qc.verdict.value in ("review", "fail")
    labels = result.study.labels.data
    back = np.swapaxes(labels, -1, -2)  # the file's rows/columns swapped back to the reference's
    assert back.shape == reference.study.labels.data.shape
    assert _dice(back, reference.study.labels.data) > 0.98
    assert result.measurements.values["lv_edv_ml"] == pytest.approx(reference.measurements.values["lv_edv_ml"], rel=0.02)


def test_check_mode_refuses_a_transposed_file(transposed: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="transposed"):
        analyze_study(transposed, tmp_path / "out", AnalysisOptions(orientation="check", **SUBJECT))
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="orientation"):
        AnalysisOptions(orientation="sideways")


def test_noise_gets_a_fail_verdict_and_no_measurements(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    image = rng.normal(100, 30, (96, 96, 6, 2)).clip(0).astype(np.float32)
    path = tmp_path / "noise.nii.gz"
    nib.save(nib.Nifti1Image(image, np.diag([1.5, 1.5, 8.0, 1.0])), path)
    result = analyze_study(path, tmp_path / "out", AnalysisOptions(**SUBJECT))
    assert result.measurements is None and result.diagnosis is None
    assert result.qc.verdict.value == "fail"
    assert any("nothing could be measured" in r for r in result.qc.reasons)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "qc.json", "report.html", "segmentation.nii.gz", "uncertainty.nii.gz"
    ]
    doc = json.loads((tmp_path / "out" / "qc.json").read_text())
    assert doc["verdict"] == "fail" and any(c["name"] == "measurable" for c in doc["checks"])

    cli = runner.invoke(app, ["analyze", str(path), "-o", str(tmp_path / "cli"), "--height", "175", "--weight", "70"])
    assert cli.exit_code != 0
    assert "QC: fail" in cli.output and "nothing could be measured" in cli.output and "noise.nii.gz" in cli.output
    assert "Traceback" not in cli.output


def test_an_existing_qc_json_stops_the_run_before_any_work(cine: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "qc.json").write_text("mine")
    with pytest.raises(OutputError, match="qc.json"):
        analyze_study(cine, out, AnalysisOptions(**SUBJECT))
    assert sorted(p.name for p in out.iterdir()) == ["qc.json"]
    assert (out / "qc.json").read_text() == "mine"


def test_segment_with_qc_writes_the_report_and_map_beside_the_labels(cine: Path, tmp_path: Path) -> None:
    output = tmp_path / "seg.nii.gz"
    result = runner.invoke(app, ["segment", str(cine), "-o", str(output), "--qc", "--no-tta"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seg.nii.gz", "seg_qc.json", "seg_uncertainty.nii.gz"]
    doc = json.loads((tmp_path / "seg_qc.json").read_text())
    assert doc["verdict"] in ("pass", "review") and any(c["name"] == "orientation" for c in doc["checks"])
    assert nib.load(tmp_path / "seg_uncertainty.nii.gz").shape[:3] == nib.load(output).shape[:3]
    again = runner.invoke(app, ["segment", str(cine), "-o", str(tmp_path / "other.nii.gz"), "--qc"])
    assert again.exit_code == 0
    (tmp_path / "x_qc.json").write_text("mine")
    refused = runner.invoke(app, ["segment", str(cine), "-o", str(tmp_path / "x.nii.gz"), "--qc"])
    assert refused.exit_code != 0 and "x_qc.json" in refused.output
    assert (tmp_path / "x_qc.json").read_text() == "mine" and not (tmp_path / "x.nii.gz").exists()


def test_another_body_part_fails(tmp_path: Path) -> None:
    """A real head MR slice (matplotlib's sample data, s1045.ima) stacked into a 'cine': not a heart, so fail."""
    from matplotlib import cbook

    with cbook.get_sample_data("s1045.ima.gz") as f:
        head = np.frombuffer(f.read(), np.uint16).reshape(256, 256).astype(np.float32)
    volume = np.stack([np.roll(head, 2 * k, axis=0) for k in range(6)], axis=-1)
    path = tmp_path / "head.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([volume, volume], axis=-1), np.diag([0.9, 0.9, 8.0, 1.0])), path)
    result = analyze_study(path, tmp_path / "out", AnalysisOptions(**SUBJECT))
    assert result.qc.verdict.value == "fail"
    assert result.qc.estimated_dice is not None and result.qc.estimated_dice < 0.5
    assert any("may not be a cardiac short-axis cine" in r for r in result.qc.reasons)
