from __future__ import annotations

import csv
import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from opencmr.errors import InputError, OutputError
from opencmr.evaluate.metrics import MaskStatus
from opencmr.evaluate.segmentation import (
    CSV_COLUMNS,
    STRUCTURES,
    EvaluationRow,
    LabelMapping,
    StructureMetrics,
    evaluate_files,
    evaluate_folders,
    evaluate_volume,
    format_summary,
    summarize,
    write_csv,
)
from opencmr.labels import Label
from tests.conftest import blob_labels, oblique_affine

ACDC_SPACING = (10.0, 1.5, 1.5)
AFFINE = oblique_affine((1.4, 1.4, 8.0))  # spacing (slice, row, col) = (8.0, 1.4, 1.4)
MNMS_SWAP = np.array([0, 3, 2, 1], np.uint8)  # ACDC value -> M&Ms value (and back)


def write_labels(path: Path, volume: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    """Save a ``(slices, rows, cols)`` volume as a NIfTI ``(x, y, z)`` file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.transpose(volume, (2, 1, 0)), affine), str(path))
    return path


def slab(labelled_slices: slice, n_slices: int = 4) -> np.ndarray:
    """ACDC blob labels (LV, MYO, RV) on some slices of a ``(slices, 20, 24)`` volume."""
    volume = np.zeros((n_slices, 20, 24), np.uint8)
    volume[labelled_slices] = np.transpose(blob_labels((24, 20, 1)), (2, 1, 0))
    return volume


def test_structures_are_the_acdc_labels_in_table_order() -> None:
    assert dict(STRUCTURES) == {Label.LV_BLOOD_POOL: "lv", Label.LV_MYOCARDIUM: "myo", Label.RV_BLOOD_POOL: "rv"}
    assert [int(label) for label in STRUCTURES] == [3, 2, 1]


def test_evaluate_volume_per_structure() -> None:
    gt = np.zeros((4, 8, 8), np.uint8)
    gt[0:3, 2:5, 2:5] = 3  # LV: 27 voxels
    gt[:, 6:8, 2:5] = 2  # MYO
    gt[:, 0:2, 0:2] = 1  # RV
    pred = np.zeros_like(gt)
    pred[1:4, 2:5, 2:5] = 3  # LV one slice further: 18 voxels shared
    pred[:, 6:8, 2:5] = 2  # MYO identical, no RV
    result = evaluate_volume(pred, gt, ACDC_SPACING)
    assert list(result) == ["lv", "myo", "rv"]
    lv, myo, rv = result["lv"], result["myo"], result["rv"]
    assert lv.dice == pytest.approx(2 * 18 / 54)
    assert lv.hd_mm == pytest.approx(10.0)
    assert lv.gt_ml == pytest.approx(27 * 10.0 * 1.5 * 1.5 / 1000) and lv.pred_ml == pytest.approx(lv.gt_ml)
    assert (lv.status, lv.pred_empty, lv.gt_empty) == (MaskStatus.OK, False, False)
    assert (myo.dice, myo.hd_mm, myo.hd95_mm, myo.assd_mm) == (1.0, 0.0, 0.0, 0.0)
    assert rv.dice == 0.0 and rv.pred_ml == 0.0 and rv.gt_ml == pytest.approx(16 * 22.5 / 1000)
    assert math.isnan(rv.hd_mm) and math.isnan(rv.hd95_mm) and math.isnan(rv.assd_mm)
    assert (rv.status, rv.pred_empty, rv.gt_empty) == (MaskStatus.PRED_EMPTY, True, False)


def test_evaluate_volume_rejects_bad_arrays() -> None:
    gt = np.zeros((2, 3, 3), np.uint8)
    with pytest.raises(ValueError, match="integer"):
        evaluate_volume(gt.astype(float), gt, ACDC_SPACING)
    with pytest.raises(ValueError, match=r"values \[5\]"):
        evaluate_volume(gt + 5, gt, ACDC_SPACING)
    with pytest.raises(ValueError, match="same shape"):
        evaluate_volume(gt[:1], gt, ACDC_SPACING)


def test_label_mapping_parsing_presets_and_application() -> None:
    mnms = LabelMapping({1: 3, 2: 2, 3: 1})
    for text in ("1=3,2=2,3=1", " MnMs ", "3 = 1, 2=2,1=3"):
        assert LabelMapping.parse(text) == mnms
    assert str(mnms) == "1=3,2=2,3=1"
    np.testing.assert_array_equal(mnms.apply(np.array([0, 1, 2, 3])), [0, 3, 2, 1])
    # values not listed are kept; a value mapped to 0 is dropped
    np.testing.assert_array_equal(LabelMapping.parse("4=0,1=3,3=1").apply(np.array([0, 1, 2, 3, 4])), [0, 3, 2, 1, 0])
    for text, problem in [("1=3,1=2", "mapped twice"), ("1=7", "not ACDC labels"), ("lv=3", "neither a preset"),
                          ("", "neither a preset"), ("1=-1", "neither a preset")]:
        with pytest.raises(ValueError, match=problem):
            LabelMapping.parse(text)


def test_evaluate_files_takes_spacing_from_the_affine(tmp_path: Path) -> None:
    gt = write_labels(tmp_path / "patient001_frame01_gt.nii.gz", slab(slice(1, 3)))
    pred = write_labels(tmp_path / "pred.nii.gz", slab(slice(2, 4)))  # one 8 mm slice further
    rows = evaluate_files(pred, gt, phase="ED")
    assert [(r.case, r.phase) for r in rows] == [("patient001_frame01", "ED")] * 3
    assert [r.structure for r in rows] == ["lv", "myo", "rv"]
    lv_voxels = int(np.count_nonzero(slab(slice(1, 3)) == 3))
    for row in rows:
        assert row.metrics.dice == pytest.approx(0.5)
        assert row.metrics.hd_mm == pytest.approx(8.0) and row.metrics.hd95_mm == pytest.approx(8.0)
    assert rows[0].metrics.gt_ml == pytest.approx(lv_voxels * 1.4 * 1.4 * 8.0 / 1000)
    assert evaluate_files(gt, gt)[0].phase == ""


def test_label_mapping_per_side(tmp_path: Path) -> None:
    acdc = slab(slice(0, 4))
    pred = write_labels(tmp_path / "pred.nii.gz", acdc)
    gt_mnms = write_labels(tmp_path / "gt_mnms.nii.gz", MNMS_SWAP[acdc])
    assert [r.metrics.dice for r in evaluate_files(pred, gt_mnms, gt_mapping="mnms")] == [1.0, 1.0, 1.0]
    unmapped = evaluate_files(pred, gt_mnms)
    assert unmapped[0].metrics.dice == 0.0 and unmapped[1].metrics.dice == 1.0  # LV and RV swapped
    pred_mnms = write_labels(tmp_path / "pred_mnms.nii.gz", MNMS_SWAP[acdc])
    rows = evaluate_files(pred_mnms, gt_mnms, gt_mapping="1=3,2=2,3=1", pred_mapping={1: 3, 2: 2, 3: 1})
    assert [r.metrics.dice for r in rows] == [1.0, 1.0, 1.0]


def test_evaluate_files_rejects_files_that_do_not_match(tmp_path: Path) -> None:
    volume = slab(slice(0, 4))
    gt = write_labels(tmp_path / "case_gt.nii.gz", volume)
    short = write_labels(tmp_path / "short.nii.gz", volume[:3])
    with pytest.raises(InputError, match=r"short\.nii\.gz: shape .* differs from the ground truth .*case_gt\.nii\.gz"):
        evaluate_files(short, gt)
    moved_affine = AFFINE.copy()
    moved_affine[0, 3] += 0.01
    moved = write_labels(tmp_path / "moved.nii.gz", volume, moved_affine)
    with pytest.raises(InputError, match=r"moved\.nii\.gz: affine differs from .*case_gt\.nii\.gz"):
        evaluate_files(moved, gt)
    nearly = AFFINE.copy()
    nearly[0, 3] += 1e-4  # within the 1e-3 mm tolerance
    assert evaluate_files(write_labels(tmp_path / "nearly.nii.gz", volume, nearly), gt)[0].metrics.dice == 1.0
    fraction = write_labels(tmp_path / "fraction.nii.gz", volume.astype(np.float32) * 0.5)
    with pytest.raises(InputError, match=r"fraction\.nii\.gz: label values are not integers"):
        evaluate_files(fraction, gt)
    five = write_labels(tmp_path / "five.nii.gz", np.where(volume == 1, 5, volume).astype(np.uint8))
    with pytest.raises(InputError, match=r"five\.nii\.gz: label values \[5\] are outside"):
        evaluate_files(five, gt)
    with pytest.raises(InputError, match=r"five\.nii\.gz: label values \[5\] are outside .*after mapping 1=3"):
        evaluate_files(gt, five, gt_mapping="mnms")
    cine = tmp_path / "cine.nii.gz"
    nib.save(nib.Nifti1Image(np.stack([np.transpose(volume, (2, 1, 0))] * 2, axis=-1), AFFINE), str(cine))
    with pytest.raises(InputError, match=r"cine\.nii\.gz: has 2 frames"):
        evaluate_files(cine, gt)


def make_acdc_tree(root: Path) -> tuple[Path, Path]:
    """Ground truth as an ACDC training tree, predictions in a flat folder."""
    gt_dir, pred_dir = root / "training", root / "predictions"
    (gt_dir / "patient001").mkdir(parents=True)
    (gt_dir / "patient001" / "Info.cfg").write_text("ED: 1\nES: 12\nGroup: NOR\nNbFrame: 30\n")
    good, shifted = slab(slice(1, 3)), slab(slice(2, 4))
    write_labels(gt_dir / "patient001" / "patient001_frame01_gt.nii.gz", good)
    write_labels(gt_dir / "patient001" / "patient001_frame12_gt.nii.gz", good)
    image = gt_dir / "patient001" / "patient001_frame01.nii.gz"  # an image beside the labels: not ground truth
    nib.save(nib.Nifti1Image(np.full((24, 20, 4), 0.3, np.float32), AFFINE), str(image))
    write_labels(gt_dir / "patient002" / "patient002_frame01_gt.nii.gz", good)  # no Info.cfg
    write_labels(pred_dir / "patient001_frame01.nii.gz", good)  # name without _gt
    write_labels(pred_dir / "patient001_frame12_gt.nii.gz", shifted)  # identical name
    write_labels(pred_dir / "sub" / "patient002_frame01.nii.gz", good)
    write_labels(pred_dir / "patient003_frame01.nii.gz", good)  # no ground truth: ignored
    return pred_dir, gt_dir


def test_evaluate_folders_pairs_files_and_reads_phases(tmp_path: Path) -> None:
    pred_dir, gt_dir = make_acdc_tree(tmp_path)
    rows = evaluate_folders(pred_dir, gt_dir)
    assert len(rows) == 9
    cases = sorted({(r.case, r.phase) for r in rows})
    assert cases == [("patient001_frame01", "ED"), ("patient001_frame12", "ES"), ("patient002_frame01", "")]
    dice = {(r.case, r.structure): r.metrics.dice for r in rows}
    assert dice[("patient001_frame01", "lv")] == 1.0 and dice[("patient002_frame01", "rv")] == 1.0
    assert dice[("patient001_frame12", "lv")] == pytest.approx(0.5)


def test_evaluate_folders_reports_missing_and_ambiguous_predictions(tmp_path: Path) -> None:
    pred_dir, gt_dir = make_acdc_tree(tmp_path)
    (pred_dir / "sub" / "patient002_frame01.nii.gz").unlink()
    (pred_dir / "patient001_frame01.nii.gz").unlink()
    with pytest.raises(InputError, match=r"predictions: no prediction for 2 ground-truth file\(s\): "
                       r"patient001/patient001_frame01_gt\.nii\.gz, patient002/patient002_frame01_gt\.nii\.gz"):
        evaluate_folders(pred_dir, gt_dir)
    write_labels(pred_dir / "patient001_frame01.nii.gz", slab(slice(0, 1)))
    write_labels(pred_dir / "patient002_frame01.nii.gz", slab(slice(0, 1)))
    write_labels(pred_dir / "patient001_frame12.nii.gz", slab(slice(0, 1)))
    with pytest.raises(InputError, match=r"several predictions match patient001_frame12_gt\.nii\.gz"):
        evaluate_folders(pred_dir, gt_dir)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"empty: no NIfTI label files found"):
        evaluate_folders(pred_dir, empty)


def test_evaluate_folders_accepts_identical_names_without_gt_suffix(tmp_path: Path) -> None:
    write_labels(tmp_path / "gt" / "case1.nii.gz", slab(slice(0, 2)))
    write_labels(tmp_path / "pred" / "case1.nii.gz", slab(slice(0, 1)))
    rows = evaluate_folders(tmp_path / "pred", tmp_path / "gt")
    assert [(r.case, r.phase) for r in rows] == [("case1", "")] * 3
    assert rows[0].metrics.dice == pytest.approx(2 / 3)


def row(structure: str, phase: str, dice: float, hd: float) -> EvaluationRow:
    status = MaskStatus.PRED_EMPTY if math.isnan(hd) else MaskStatus.OK
    metrics = StructureMetrics(dice, hd, hd, hd, 1.0, 1.0, status)
    return EvaluationRow("c", phase, structure, metrics)


ROWS = [
    row("rv", "ED", 0.5, 1.0),
    row("lv", "ES", 0.7, 5.0),
    row("lv", "ED", 0.8, 2.0),
    row("lv", "ED", 0.9, math.nan),
    row("lv", "ED", 1.0, 4.0),
]


def test_summarize_gives_nan_aware_mean_and_sd_per_structure_and_phase() -> None:
    summary = summarize(ROWS)
    assert [(s.structure, s.phase, s.n_cases) for s in summary] == [("lv", "ED", 3), ("lv", "ES", 1), ("rv", "ED", 1)]
    lv_ed = summary[0]
    assert (lv_ed.dice.mean, lv_ed.dice.sd, lv_ed.dice.n) == (pytest.approx(0.9), pytest.approx(0.1), 3)
    assert (lv_ed.hd_mm.mean, lv_ed.hd_mm.sd, lv_ed.hd_mm.n) == (pytest.approx(3.0), pytest.approx(math.sqrt(2)), 2)
    assert summary[1].dice.mean == 0.7 and math.isnan(summary[1].dice.sd)  # SD of one value


def test_format_summary_is_a_table_of_structure_and_phase() -> None:
    text = format_summary(summarize(ROWS))
    lines = text.splitlines()
    assert lines[0].split() == ["structure", "phase", "n", "Dice", "HD", "(mm)", "HD95", "(mm)", "ASSD", "(mm)"]
    assert set(lines[1]) == {"-", " "}
    assert lines[2].split()[:6] == ["lv", "ED", "3", "0.900", "±", "0.100"]
    assert "3.00 ± 1.41 (n=2)" in lines[2]
    assert lines[4].split()[:2] == ["rv", "ED"] and len(lines) == 5


def test_write_csv_round_trips_and_does_not_clobber(tmp_path: Path) -> None:
    target = tmp_path / "out" / "metrics.csv"
    assert write_csv(ROWS, target) == target
    with open(target, newline="") as handle:
        records = list(csv.DictReader(handle))
    assert list(records[0]) == list(CSV_COLUMNS)
    assert len(records) == len(ROWS)
    assert records[3]["hd_mm"] == "NaN" and records[3]["status"] == "pred_empty"
    assert float(records[2]["dice"]) == 0.8 and records[2]["structure"] == "lv"
    before = target.read_text()
    with pytest.raises(OutputError, match="already exists"):
        write_csv(ROWS[:1], target)
    assert target.read_text() == before
    write_csv(ROWS[:1], target, overwrite=True)
    assert len(target.read_text().splitlines()) == 2
