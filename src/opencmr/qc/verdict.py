"""The QC verdict of a study and of each slice: ``pass``, ``review`` or ``fail``, with the reasons in words.

The verdict combines the plausibility checks (:mod:`opencmr.qc.checks`) with
the segmentation's uncertainty (:mod:`opencmr.qc.uncertainty`): the worst
check decides, and a study or slice whose mean predictive entropy over the heart
exceeds :data:`STUDY_ENTROPY_REVIEW` / :data:`SLICE_ENTROPY_REVIEW` is raised to
``review`` at least. ``qc.json`` (schema ``opencmr.qc/1``) holds ``verdict``,
``reasons``, ``slices`` (per frame and slice: ``verdict`` and reasons),
``checks`` and ``uncertainty``.

With uncertainty maps that carry the soft-Dice sums (what
:func:`opencmr.analysis.analyze_study` and ``opencmr segment --qc`` compute),
the verdict is **calibrated on real studies**:

* the **estimated Dice** is a linear calibration of the soft Dice between the
  network's probabilities and its labels
  (:attr:`~opencmr.qc.uncertainty.UncertaintyScores.expected_dice_mean`),
  ``clip(a + b * soft_dice, 0, 1)`` with :data:`DICE_CALIBRATION`, fitted by
  least squares to the true mean Dice of 370 studies: the 10 held-out ACDC
  validation patients, unperturbed and under 13 perturbations at 3 severities
  (``python benchmarks/robustness.py --uncertainty --fit-calibration``).
  Leave-one-patient-out, its mean absolute error is 0.022 and it ranks studies
  with true Dice < 0.80 above the others with an AUROC of 0.90;
* a study whose estimated Dice is below :data:`ESTIMATED_DICE_REVIEW` goes to
  ``review``, below :data:`ESTIMATED_DICE_FAIL` (images the network does not
  recognise as a heart) to ``fail``; ``qc_score`` = 1 - estimated Dice orders studies for review;
* checks at ``fail`` fail the study; checks at ``review`` raise it to review,
  except the slice-level findings in :data:`MINOR_CHECKS` (a fragment, an
  abrupt change of cavity area, a basal slice that may not reach the base,
  ghosting), which the benchmark showed on most well-segmented studies and
  which did not predict a poor Dice beyond the estimate: they are listed in
  ``findings`` and in the per-slice verdicts instead.

Without the soft-Dice sums (a segmentation given, not computed), the worst
check decides, and a study or slice whose mean predictive entropy over the
heart exceeds :data:`STUDY_ENTROPY_REVIEW` / :data:`SLICE_ENTROPY_REVIEW` is
raised to ``review`` (thresholds set on the synthetic phantoms: mean heart
entropy 0.09 on clean images, 0.12-0.24 with heavy noise).

The calibration belongs to the bundled model: another model's probabilities
need their own (rerun the benchmark with ``--model``).
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

__all__ = [
    "DICE_CALIBRATION", "ESTIMATED_DICE_FAIL", "ESTIMATED_DICE_REVIEW", "MINOR_CHECKS", "SCHEMA", "SLICE_ENTROPY_REVIEW",
    "STUDY_ENTROPY_REVIEW", "QcReport", "estimated_dice", "qc_report", "write_qc_json",
]

SCHEMA = "opencmr.qc/1"
STUDY_ENTROPY_REVIEW = 0.15
"""Mean normalised entropy over the heart above which a study is sent to review (provisional, see module docstring)."""
SLICE_ENTROPY_REVIEW = 0.25
"""The same for one slice (a slice's mean is noisier than the study's, hence higher)."""
DICE_CALIBRATION = (-1.325, 2.363)
"""Intercept and slope mapping the soft Dice to the estimated Dice (see the module docstring); fitted for the
bundled segmentation model opencmr-acdc-unet25d-v3 (v2's were (-1.509, 2.566)): refit for any other model."""
ESTIMATED_DICE_REVIEW = 0.87
"""Estimated Dice below which a study is sent to review. On the benchmark (model v3) it flagged 11 of the 12
studies with a true Dice below 0.80 and 16 % of those above 0.90; the unperturbed studies it flagged were three
of the four validation patients with the lowest true Dice (0.85-0.87). (Model v2: 12 of 13, 17 %.)"""
ESTIMATED_DICE_FAIL = 0.5
"""Estimated Dice below which a study fails: far below any cardiac study of the benchmark (lowest 0.73, under
severe perturbations); what images that are not a cardiac short-axis cine at all give (a head MR: 0.0)."""
MINOR_CHECKS = frozenset({"fragments_2d", "area_jump", "coverage_base", "ghosting"})
"""Checks whose ``review`` findings do not raise a study's verdict when the estimated Dice is known."""


@dataclass(frozen=True)
class QcReport:
    """Verdict, reasons, per-slice verdicts, the checks and the uncertainty scores of one study."""

    verdict: Status
    reasons: tuple[str, ...]
    slices: tuple[dict[str, Any], ...]
    checks: tuple[Check, ...]
    uncertainty: UncertaintyScores | None = None
    notes: tuple[str, ...] = field(default=())
    findings: tuple[str, ...] = field(default=())
    estimated_dice: float | None = None

    @property
    def qc_score(self) -> float | None:
        """1 - estimated Dice: higher means more likely to need correction (None without an estimate)."""
        return None if self.estimated_dice is None else 1.0 - self.estimated_dice

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
            "findings": list(self.findings),
            "estimated_dice": None if self.estimated_dice is None else round(self.estimated_dice, 4),
            "qc_score": None if self.qc_score is None else round(self.qc_score, 4),
            "slices": list(self.slices),
            "checks": [c.to_dict() for c in self.checks],
            "uncertainty": None if self.uncertainty is None else self.uncertainty.to_dict(),
            "thresholds": {
                "study_entropy_review": STUDY_ENTROPY_REVIEW,
                "slice_entropy_review": SLICE_ENTROPY_REVIEW,
                "estimated_dice_review": ESTIMATED_DICE_REVIEW,
                "estimated_dice_fail": ESTIMATED_DICE_FAIL,
                "dice_calibration": list(DICE_CALIBRATION),
            },
            "notes": list(self.notes),
        }


def estimated_dice(scores: UncertaintyScores | None) -> float | None:
    """The calibrated Dice estimate from the soft Dice (None without soft-Dice sums or when it is undefined)."""
    if scores is None or not scores.expected_dice:
        return None
    soft = scores.expected_dice_mean
    if not np.isfinite(soft):
        return None
    a, b = DICE_CALIBRATION
    return float(np.clip(a + b * soft, 0.0, 1.0))


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
    """Combine checks and uncertainty into the study verdict, its reasons and the per-slice verdicts.

    See the module docstring for the two regimes (with and without an estimated Dice).
    """
    estimate = estimated_dice(scores)
    notes: list[str] = []
    findings: list[str] = []
    if estimate is None:
        verdict = worst_status(list(checks))
        reasons = _merge_frames([c.reason for c in checks if c.status is not Status.PASS])
        if scores is not None and np.isfinite(scores.study) and scores.study > STUDY_ENTROPY_REVIEW:
            verdict = _worse(verdict, Status.REVIEW)
            reasons.append(
                f"uncertain segmentation: mean entropy {scores.study:.2f} over the heart "
                f"(review above {STUDY_ENTROPY_REVIEW})"
            )
        if scores is None:
            notes.append("no uncertainty maps (segmentation given, not computed): verdict from the checks only")
    else:
        deciding = [
            c for c in checks if c.status is Status.FAIL or (c.status is Status.REVIEW and c.name not in MINOR_CHECKS)
        ]
        minor = [c for c in checks if c.status is Status.REVIEW and c.name in MINOR_CHECKS]
        verdict = worst_status(deciding)
        reasons = _merge_frames([c.reason for c in deciding])
        findings = _merge_frames([c.reason for c in minor])
        if estimate < ESTIMATED_DICE_FAIL:
            verdict = Status.FAIL
            reasons.append(
                f"the estimated Dice of the segmentation is {estimate:.2f} (fail below {ESTIMATED_DICE_FAIL}): "
                "the network does not recognise the image; it may not be a cardiac short-axis cine"
            )
        elif estimate < ESTIMATED_DICE_REVIEW:
            verdict = _worse(verdict, Status.REVIEW)
            reasons.append(
                f"the estimated Dice of the segmentation is {estimate:.2f} (review below {ESTIMATED_DICE_REVIEW}): "
                "the network is unsure of its contours"
            )
    return QcReport(
        Status(verdict), tuple(reasons), _slice_verdicts(checks, scores), tuple(checks), scores, tuple(notes),
        tuple(findings), estimate,
    )


def write_qc_json(report: QcReport, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``qc.json`` (see the module docstring)."""
    return write_json(path, report.to_dict(), overwrite)
