"""``opencmr evaluate``: files and folders in, a summary table and a per-case CSV out."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from opencmr.cli import app
from opencmr.io.nifti import write_label_map
from opencmr.io.study import Geometry, LabelMap

runner = CliRunner()
GEOMETRY = Geometry(np.diag([1.5, 1.5, 10.0, 1.0]), (3, 20, 20))


def _write(path: Path, labels: np.ndarray, geometry: Geometry = GEOMETRY) -> Path:
    return write_label_map(LabelMap(labels[None].astype(np.uint8), geometry, (0,)), path)


def _cases(tmp_path: Path) -> tuple[Path, Path]:
    gt = np.zeros((3, 20, 20), np.uint8)
    gt[:, 5:15, 5:15] = 2
    gt[:, 7:13, 7:13] = 3
    gt[:, 5:15, 1:4] = 1
    pred = gt.copy()
    pred[:, 5:15, 0] = 1  # RV one column wider (1.5 mm)
    return _write(tmp_path / "pred.nii.gz", pred), _write(tmp_path / "gt.nii.gz", gt)


def test_evaluate_files_prints_the_table_and_writes_the_csv(tmp_path: Path) -> None:
    pred, gt = _cases(tmp_path)
    out = tmp_path / "metrics.csv"
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--gt", str(gt), "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "Dice" in result.output and "HD95" in result.output
    rows = {r["structure"]: r for r in csv.DictReader(out.open())}
    assert float(rows["lv"]["dice"]) == 1.0 and float(rows["lv"]["hd_mm"]) == 0.0
    assert float(rows["rv"]["hd_mm"]) == 1.5  # one extra column of 1.5 mm pixels
    # the CSV is never silently replaced
    again = runner.invoke(app, ["evaluate", "--pred", str(pred), "--gt", str(gt), "--csv", str(out)])
    assert again.exit_code == 1 and "already exists" in again.output


def test_evaluate_mismatched_grids_is_a_one_line_error(tmp_path: Path) -> None:
    pred, _ = _cases(tmp_path)
    other = _write(tmp_path / "gt_other.nii.gz", np.zeros((3, 20, 20)), Geometry(np.diag([1.0, 1.0, 10.0, 1.0]), (3, 20, 20)))
    result = runner.invoke(app, ["evaluate", "--pred", str(pred), "--gt", str(other)])
    assert result.exit_code == 1
    assert "error:" in result.output and "Traceback" not in result.output


def test_evaluate_label_mapping_for_mnms_references(tmp_path: Path) -> None:
    pred, gt = _cases(tmp_path)
    gt_labels = np.asarray(__import__("nibabel").load(gt).dataobj).transpose(2, 1, 0)
    mnms = gt_labels.copy()  # M&Ms: 1 LV, 2 MYO, 3 RV
    mnms[gt_labels == 3], mnms[gt_labels == 1] = 1, 3
    mnms_file = _write(tmp_path / "gt_mnms.nii.gz", mnms)
    plain = runner.invoke(app, ["evaluate", "--pred", str(pred), "--gt", str(mnms_file)])
    mapped = runner.invoke(app, ["evaluate", "--pred", str(pred), "--gt", str(mnms_file), "--gt-labels", "mnms"])
    assert plain.exit_code == 0 and mapped.exit_code == 0, plain.output + mapped.output
    assert "1.000 ±" in mapped.output and "0.000 ±" in plain.output
