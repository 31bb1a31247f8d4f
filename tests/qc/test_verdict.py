"""The QC verdict: checks and uncertainty combined, per study and per slice; qc.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from opencmr.qc.checks import Check, Status
from opencmr.qc.uncertainty import UncertaintyScores
from opencmr.qc.verdict import SLICE_ENTROPY_REVIEW, STUDY_ENTROPY_REVIEW, qc_report, write_qc_json


def _scores(study: float, slices: list[float]) -> UncertaintyScores:
    per_slice = np.array([slices])
    structures = {k: study for k in ("lv", "myo", "rv")}
    arrays = {k: per_slice[0] for k in ("lv", "myo", "rv")}
    return UncertaintyScores(
        frame_numbers=(0,),
        threshold=0.3,
        n_views=2,
        study=study,
        disagreement=0.0,
        uncertain_fraction=0.0,
        frame=np.array([study]),
        slice=per_slice,
        structures=structures,
        structure_uncertain_fraction=structures,
        structure_frame={k: np.array([study]) for k in structures},
        structure_slice={k: per_slice for k in arrays},
    )


def test_worst_check_decides_and_reasons_are_merged_over_frames() -> None:
    checks = [
        Check(
            "fragments", Status.REVIEW, "the LV myocardium is split into several pieces on slice 9 (frame 0)", (9,), 0
        ),
        Check(
            "fragments", Status.REVIEW, "the LV myocardium is split into several pieces on slice 9 (frame 3)", (9,), 3
        ),
        Check("ed_es", Status.PASS, "LV volume at ED exceeds ES"),
    ]
    report = qc_report(checks)
    assert report.verdict is Status.REVIEW
    assert report.reasons == ("the LV myocardium is split into several pieces on slice 9 (frames 0, 3)",)
    assert [(s["frame"], s["slice"], s["verdict"]) for s in report.slices] == [(0, 9, "review"), (3, 9, "review")]
    failing = qc_report([*checks, Check("limits", Status.FAIL, "LVEF 95 % is outside 5-85 %")])
    assert failing.verdict is Status.FAIL and "LVEF 95 %" in failing.reasons[-1]
    assert qc_report([Check("ok", Status.PASS, "fine")]).verdict is Status.PASS


def test_uncertainty_raises_the_verdict_to_review() -> None:
    calm = qc_report([], _scores(STUDY_ENTROPY_REVIEW / 2, [0.01, 0.02]))
    assert calm.verdict is Status.PASS and calm.slices == ()
    unsure = qc_report([], _scores(STUDY_ENTROPY_REVIEW + 0.05, [0.05, SLICE_ENTROPY_REVIEW + 0.1]))
    assert unsure.verdict is Status.REVIEW and "uncertain segmentation" in unsure.reasons[0]
    assert [(s["slice"], s["verdict"]) for s in unsure.slices] == [(1, "review")]
    assert qc_report([Check("x", Status.FAIL, "bad")], _scores(0.5, [0.5])).verdict is Status.FAIL  # never lowered


def test_qc_json_schema(tmp_path: Path) -> None:
    report = qc_report([Check("ok", Status.PASS, "fine")], _scores(0.05, [0.05]))
    data = json.loads(write_qc_json(report, tmp_path / "qc.json").read_text())
    assert data["schema"] == "opencmr.qc/1" and data["verdict"] == "pass"
    assert data["uncertainty"]["study"]["entropy"] == 0.05 and data["checks"][0]["status"] == "pass"


def _calibrated(soft_dice: float) -> UncertaintyScores:
    """Scores carrying a soft Dice (as the uncertainty path of segment_study gives), so the estimate exists."""
    import dataclasses

    return dataclasses.replace(_scores(0.05, [0.05, 0.05]), expected_dice={k: soft_dice for k in ("lv", "myo", "rv")})


def test_estimated_dice_is_the_calibrated_soft_dice_and_decides_review() -> None:
    from opencmr.qc.verdict import DICE_CALIBRATION, ESTIMATED_DICE_REVIEW, estimated_dice

    a, b = DICE_CALIBRATION
    soft_good = (0.93 - a) / b  # estimate 0.93
    soft_poor = (ESTIMATED_DICE_REVIEW - 0.05 - a) / b
    assert estimated_dice(_calibrated(soft_good)) == pytest.approx(0.93)
    assert estimated_dice(_calibrated(0.0)) == 0.0  # clipped to [0, 1]
    assert estimated_dice(_scores(0.05, [0.05])) is None  # no soft Dice: no estimate
    good = qc_report([], _calibrated(soft_good))
    assert good.verdict is Status.PASS and good.qc_score == pytest.approx(0.07)
    poor = qc_report([], _calibrated(soft_poor))
    assert poor.verdict is Status.REVIEW and "estimated Dice" in poor.reasons[0]
    doc = poor.to_dict()
    assert doc["estimated_dice"] == pytest.approx(ESTIMATED_DICE_REVIEW - 0.05, abs=1e-4)
    assert doc["qc_score"] == pytest.approx(0.05 + 1 - ESTIMATED_DICE_REVIEW, abs=1e-4)


def test_minor_findings_are_listed_without_raising_a_well_estimated_study() -> None:
    from opencmr.qc.verdict import DICE_CALIBRATION

    a, b = DICE_CALIBRATION
    soft_good = (0.93 - a) / b
    minor = Check(
        "fragments_2d", Status.REVIEW, "the RV blood pool is split into several pieces on slice 3 (frame 0)", (3,), 0
    )
    report = qc_report([minor], _calibrated(soft_good))
    assert report.verdict is Status.PASS and report.reasons == ()
    assert report.findings == ("the RV blood pool is split into several pieces on slice 3 (frame 0)",)
    assert [(s["slice"], s["verdict"]) for s in report.slices] == [(3, "review")]  # still flagged on its slice
    # without an estimate the same finding decides, as before
    assert qc_report([minor], _scores(0.05, [0.05])).verdict is Status.REVIEW
    # a major review check or any fail still decides
    major = Check("limits", Status.REVIEW, "RVEF 80 % is high")
    assert qc_report([minor, major], _calibrated(soft_good)).verdict is Status.REVIEW
    assert qc_report([minor, Check("coverage", Status.FAIL, "no LV")], _calibrated(soft_good)).verdict is Status.FAIL


def test_minor_checks_name_real_checks() -> None:
    """Every name in MINOR_CHECKS is a check that run_checks can emit (a renamed check must not slip out)."""
    import inspect

    import opencmr.qc.checks as checks
    from opencmr.qc.verdict import MINOR_CHECKS

    source = inspect.getsource(checks)
    for name in MINOR_CHECKS:
        assert f'"{name}"' in source, name
