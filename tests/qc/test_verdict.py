"""The QC verdict: checks and uncertainty combined, per study and per slice; qc.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

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
