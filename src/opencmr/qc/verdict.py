"""The QC verdict of a study and of each slice: ``pass``, ``review`` or ``fail``, with the reasons in words.

The verdict combines the plausibility checks (:mod:`opencmr.qc.checks`) with
the segmentation's uncertainty (:mod:`opencmr.qc.uncertainty`): the worst
check decides, and a study or slice whose mean predictive entropy over the heart
exceeds :data:`STUDY_ENTROPY_REVIEW` / :data:`SLICE_ENTROPY_REVIEW` is raised to
``review`` at least. ``qc.json`` (schema ``opencmr.qc/1``) holds ``verdict``,
``reasons``, ``slices`` (per frame and slice: ``verdict`` and reasons),
``checks`` and ``uncertainty``.

The uncertainty thresholds are provisional: they were set on the synthetic
phantoms (mean heart entropy 0.09 on clean images, 0.12-0.24 with added noise
of 20-40 % of the image maximum) and are to be calibrated on the robustness
evaluation of real studies (issue 7, part 4).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from opencmr.io._atomic import write_json
from opencmr.qc.checks import Check, Status, worst_status
from opencmr.qc.uncertainty import UncertaintyScores

__all__ = ["SCHEMA", "SLICE_ENTROPY_REVIEW", "STUDY_ENTROPY_REVIEW", "QcReport", "qc_report", "write_qc_json"]

SCHEMA = "opencmr.qc/1"
STUDY_ENTROPY_REVIEW = 0.15
"""Mean normalised entropy over the heart above which a study is sent to review (provisional, see module docstring)."""
SLICE_ENTROPY_REVIEW = 0.25
"""The same for one slice (a slice's mean is noisier than the study's, hence higher)."""


@dataclass(frozen=True)
class QcReport:
    """Verdict, reasons, per-slice verdicts, the checks and the uncertainty scores of one study."""

    verdict: Status
    reasons: tuple[str, ...]
    slices: tuple[dict[str, Any], ...]
    checks: tuple[Check, ...]
    uncertainty: UncertaintyScores | None = None
    notes: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "slices": list(self.slices),
            "checks": [c.to_dict() for c in self.checks],
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "thresholds": {"study_entropy_review": STUDY_ENTROPY_REVIEW, "slice_entropy_review": SLICE_ENTROPY_REVIEW},
            "notes": list(self.notes),
        }


def _worse(a: Status, b: Status) -> Status:
    return max(a, b, key=lambda status: status.severity)


def _slice_verdicts(checks: Sequence[Check], scores: UncertaintyScores | None) -> tuple[dict[str, Any], ...]:
    """Per (frame, slice): the worst check that names the slice, raised to review by a high slice entropy."""
    found: dict[tuple[int | None, int], dict[str, Any]] = {}
    for check in checks:
        if check.status is Status.PASS:
            continue
        for s in check.slices:
            entry = found.setdefault(
                (check.frame, int(s)), {"frame": check.frame, "slice": int(s), "verdict": Status.PASS, "reasons": []}
            )
            entry["verdict"] = _worse(entry["verdict"], check.status)
            entry["reasons"].append(check.reason)
    if scores is not None:
        for k, frame in enumerate(scores.frame_numbers):
            for s, value in enumerate(np.asarray(scores.slice[k])):
                if np.isfinite(value) and value > SLICE_ENTROPY_REVIEW:
                    entry = found.setdefault(
                        (frame, s), {"frame": frame, "slice": s, "verdict": Status.PASS, "reasons": []}
                    )
                    entry["verdict"] = _worse(entry["verdict"], Status.REVIEW)
                    entry["reasons"].append(
                        f"uncertain segmentation: mean entropy {value:.2f} over the heart on this slice"
                    )
    ordered = sorted(found.values(), key=lambda e: (e["frame"] is None, e["frame"] or 0, e["slice"]))
    return tuple({**e, "verdict": e["verdict"].value} for e in ordered)


_FRAME_SUFFIX = re.compile(r"^(.*) \(frame (\d+)\)$")


def _merge_frames(reasons: Sequence[str]) -> list[str]:
    """The same finding in several frames as one sentence: "... on slice 9 (frames 0, 2, 3)"."""
    merged: dict[str, list[int]] = {}
    order: list[str] = []
    for reason in reasons:
        match = _FRAME_SUFFIX.match(reason)
        key = match.group(1) if match else reason
        if key not in merged:
            merged[key] = []
            order.append(key)
        if match:
            merged[key].append(int(match.group(2)))
    out = []
    for key in order:
        frames = merged[key]
        if not frames:
            out.append(key)
        else:
            label = "frame" if len(frames) == 1 else "frames"
            out.append(f"{key} ({label} {', '.join(map(str, frames))})")
    return out


def qc_report(checks: Sequence[Check], scores: UncertaintyScores | None = None) -> QcReport:
    """Combine checks and uncertainty into the study verdict, its reasons and the per-slice verdicts."""
    verdict = worst_status(list(checks))
    reasons = _merge_frames([c.reason for c in checks if c.status is not Status.PASS])
    notes: list[str] = []
    if scores is not None and np.isfinite(scores.study) and scores.study > STUDY_ENTROPY_REVIEW:
        verdict = _worse(verdict, Status.REVIEW)
        reasons.append(
            f"uncertain segmentation: mean entropy {scores.study:.2f} over the heart (review above {STUDY_ENTROPY_REVIEW})"
        )
    if scores is None:
        notes.append("no uncertainty maps (segmentation given, not computed): verdict from the checks only")
    return QcReport(
        Status(verdict), tuple(reasons), _slice_verdicts(checks, scores), tuple(checks), scores, tuple(notes)
    )


def write_qc_json(report: QcReport, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``qc.json`` (see the module docstring)."""
    return write_json(path, report.to_dict(), overwrite)
