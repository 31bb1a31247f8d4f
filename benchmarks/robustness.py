"""Benchmark: segmentation accuracy and QC verdicts under graded image perturbations.

Run ``python benchmarks/robustness.py [--data ../shared/data/acdc/training]
[--patients ...] [--perturbations noise blur ...] [--levels mild severe]
[--json OUT.json] [--plot OUT.png] [--no-tta] [--uncertainty]``.

Patients: the validation patients recorded in the bundled model (never seen in
training), their labelled ED and ES frames. Each study is perturbed with
:func:`opencmr.qc.perturb.perturb` (seeded per patient, perturbation and level),
segmented, compared with the (transformed) manual labels (3D Dice per
structure, mean over LV, MYO, RV and both frames) and given a QC verdict
(:func:`opencmr.qc.checks.run_checks` on the study, its segmentation and its
measurements; :func:`opencmr.qc.verdict.qc_report`).

Targets (issue 7):

* Dice drop <= 0.03 under moderate noise, bias field, gamma and intensity scale;
* QC AUROC >= 0.90 for flagging studies with mean Dice < 0.80 (Mann-Whitney
  AUROC of the QC score). With ``--uncertainty`` the score is 1 - estimated
  Dice, its calibration (:data:`opencmr.qc.verdict.DICE_CALIBRATION`) refitted
  leave-one-patient-out so that no patient is scored by a calibration it
  helped fit; without it, the verdict (fail=2, review=1, pass=0);
* >= 90% of those studies marked review or fail;
* <= 10% of studies with mean Dice >= 0.90 marked fail.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from opencmr.analysis import AnalysisOptions, measure_and_check, subject_of
from opencmr.evaluate.classification import roc_auc_binary
from opencmr.evaluate.segmentation import evaluate_volume
from opencmr.io.read import read_study
from opencmr.io.study import CineStudy
from opencmr.qc.perturb import LEVELS, PERTURBATIONS, perturb
from opencmr.segment.inference import segment_study
from opencmr.segment.model import load_model

STRUCTURES = ("lv", "myo", "rv")
SCORE = {"pass": 0, "review": 1, "fail": 2}
STABLE = ("noise", "bias_field", "gamma", "intensity_scale")  # moderate level: Dice drop <= 0.03
MAX_DROP = 0.03
BAD_DICE, GOOD_DICE = 0.80, 0.90


@dataclass(frozen=True)
class Row:
    patient: str
    perturbation: str  # "none" for the unperturbed study
    level: str
    dice: dict[str, float]
    mean_dice: float
    verdict: str
    reasons: list[str]
    seconds: float
    expected_dice: float = math.nan


def _seed(*parts: str) -> int:
    return zlib.crc32("/".join(parts).encode())


def _dice(pred: np.ndarray, gt: np.ndarray, spacing: tuple[float, float, float]) -> dict[str, float]:
    per_frame = [evaluate_volume(p, g, spacing) for p, g in zip(pred, gt, strict=True)]
    return {s: float(np.nanmean([m[s].dice for m in per_frame])) for s in STRUCTURES}


def _verdict(study: CineStudy, labels, uncertainty) -> tuple[str, list[str], float]:
    """Verdict, reasons and the raw soft Dice (NaN without uncertainty maps), as ``opencmr analyze`` assesses."""
    _, report = measure_and_check(study, labels, uncertainty, subject_of(study, AnalysisOptions()))
    scores = report.uncertainty
    expected = scores.expected_dice_mean if scores is not None else math.nan
    return report.verdict.value, list(report.reasons), expected


def evaluate(study: CineStudy, model, patient: str, name: str, level: str, *, tta: bool, uncertainty: bool) -> Row:
    start = time.perf_counter()
    frames = study.labels.frame_numbers
    if uncertainty:
        labels, maps = segment_study(study, model, frames=frames, tta=tta, return_uncertainty=True)
    else:
        labels, maps = segment_study(study, model, frames=frames, tta=tta), None
    dice = _dice(labels.data, study.labels.data, study.spacing)
    verdict, reasons, expected = _verdict(study, labels, maps)
    mean = float(np.nanmean(list(dice.values())))
    return Row(patient, name, level, dice, mean, verdict, reasons, time.perf_counter() - start, expected)


@dataclass(frozen=True)
class Targets:
    stable_drops: dict[str, float]
    auroc: float
    n_bad: int
    bad_flagged: float
    n_good: int
    good_failed: float

    def lines(self) -> list[tuple[str, str, bool | None]]:
        def ok(value: float, good: bool) -> bool | None:
            return None if math.isnan(value) else good

        out = [
            (f"Dice drop, moderate {name} <= {MAX_DROP}", f"{drop:+.3f}", ok(drop, drop <= MAX_DROP))
            for name, drop in self.stable_drops.items()
        ]
        out.append(
            (f"QC AUROC for mean Dice < {BAD_DICE} >= 0.90", f"{self.auroc:.3f}", ok(self.auroc, self.auroc >= 0.90))
        )
        out.append(
            (
                f"Dice < {BAD_DICE} marked review/fail >= 90% (n={self.n_bad})",
                f"{self.bad_flagged:.0%}" if self.n_bad else "n/a",
                ok(self.bad_flagged, self.bad_flagged >= 0.90),
            )
        )
        out.append(
            (
                f"Dice >= {GOOD_DICE} marked fail <= 10% (n={self.n_good})",
                f"{self.good_failed:.0%}" if self.n_good else "n/a",
                ok(self.good_failed, self.good_failed <= 0.10),
            )
        )
        return out


def _baseline(rows: list[Row]) -> dict[str, float]:
    return {r.patient: r.mean_dice for r in rows if r.perturbation == "none"}


def targets(rows: list[Row]) -> Targets:
    base = _baseline(rows)
    drops = {}
    for name in STABLE:
        d = [base[r.patient] - r.mean_dice for r in rows if r.perturbation == name and r.level == "moderate"]
        if d:
            drops[name] = float(np.mean(d))
    dice = np.array([r.mean_dice for r in rows])
    score = np.array([SCORE[r.verdict] for r in rows])
    bad = dice < BAD_DICE
    good = dice >= GOOD_DICE
    soft = np.array([r.expected_dice for r in rows])
    ranking = -loo_estimated_dice(rows) if np.isfinite(soft).all() else score
    return Targets(
        drops,
        roc_auc_binary(bad, ranking) if len(rows) else math.nan,
        int(bad.sum()),
        float(np.mean(score[bad] >= 1)) if bad.any() else math.nan,
        int(good.sum()),
        float(np.mean(score[good] == 2)) if good.any() else math.nan,
    )


def fit_calibration(rows: list[Row]) -> tuple[float, float]:
    """Least-squares intercept and slope of true mean Dice on soft Dice (``opencmr.qc.verdict.DICE_CALIBRATION``)."""
    soft = np.array([r.expected_dice for r in rows])
    dice = np.array([r.mean_dice for r in rows])
    design = np.c_[np.ones(len(soft)), soft]
    (a, b), *_ = np.linalg.lstsq(design, dice, rcond=None)
    return float(a), float(b)


def loo_estimated_dice(rows: list[Row]) -> np.ndarray:
    """Each row's estimated Dice from a calibration fitted without its patient's rows."""
    patients = np.array([r.patient for r in rows])
    soft = np.array([r.expected_dice for r in rows])
    out = np.full(len(rows), np.nan)
    for patient in np.unique(patients):
        held = patients == patient
        others = [r for r, h in zip(rows, held) if not h]
        a, b = fit_calibration(others) if others else (0.0, 1.0)
        out[held] = np.clip(a + b * soft[held], 0.0, 1.0)
    return out


def table(rows: list[Row]) -> Table:
    base = _baseline(rows)
    out = Table(title="Segmentation and QC under perturbations (mean over patients)")
    for column in ("perturbation", "level", "n", "LV", "MYO", "RV", "mean Dice", "drop", "pass", "review", "fail"):
        out.add_column(column, justify="left" if column in ("perturbation", "level") else "right")
    groups: dict[tuple[str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.perturbation, r.level), []).append(r)
    for (name, level), group in groups.items():
        mean = float(np.mean([r.mean_dice for r in group]))
        drop = float(np.mean([base[r.patient] - r.mean_dice for r in group if r.patient in base]))
        verdicts = [r.verdict for r in group]
        out.add_row(
            name,
            level,
            str(len(group)),
            *(f"{np.nanmean([r.dice[s] for r in group]):.3f}" for s in STRUCTURES),
            f"{mean:.3f}",
            "" if name == "none" else f"{drop:+.3f}",
            *(f"{verdicts.count(v) / len(verdicts):.0%}" for v in SCORE),
        )
    return out


def plot(rows: list[Row], levels: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    base = float(np.mean(list(_baseline(rows).values())))
    names = list(dict.fromkeys(r.perturbation for r in rows if r.perturbation != "none"))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    x = np.arange(len(levels) + 1)
    for name in names:
        y = [base] + [np.mean([r.mean_dice for r in rows if r.perturbation == name and r.level == lv]) for lv in levels]
        ax.plot(x, y, marker="o", label=name)
    ax.axhline(BAD_DICE, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xticks(x, ["none", *levels])
    ax.set_ylabel("mean Dice (LV, MYO, RV)")
    ax.set_xlabel("severity")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/acdc/training")
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--patients", nargs="*", help="default: the model's validation patients")
    parser.add_argument("--perturbations", nargs="*", choices=sorted(PERTURBATIONS), help="default: all")
    parser.add_argument("--levels", nargs="*", choices=LEVELS, help="default: all")
    parser.add_argument("--no-tta", action="store_true", help="segment without flip test-time augmentation (faster)")
    parser.add_argument("--uncertainty", action="store_true", help="include uncertainty scores in the verdict")
    parser.add_argument("--json", type=Path, default=None, help="write every row and the targets here")
    parser.add_argument("--plot", type=Path, default=None, help="mean Dice vs level per perturbation (PNG)")
    parser.add_argument(
        "--fit-calibration", action="store_true",
        help="print the soft-Dice -> Dice calibration fitted on all rows (needs --uncertainty)",
    )
    args = parser.parse_args()

    console = Console(width=max(Console().width, 130))
    model = load_model(args.model)
    patients = args.patients or model.info.get("validation_patients") or []
    if not patients:
        sys.exit("no patients: the model records no validation patients; pass --patients")
    names = args.perturbations or list(PERTURBATIONS)
    levels = args.levels or list(LEVELS)
    options = {"tta": not args.no_tta, "uncertainty": args.uncertainty}

    rows: list[Row] = []
    for patient in patients:
        study = read_study(Path(args.data) / patient)
        rows.append(evaluate(study, model, patient, "none", "-", **options))
        for name in names:
            for level in levels:
                rng = np.random.default_rng(_seed(patient, name, level))
                perturbed = perturb(study, name, level, rng)
                row = evaluate(perturbed, model, patient, name, level, **options)
                rows.append(row)
                console.log(
                    f"{patient} {name:>16} {level:>8}: Dice {row.mean_dice:.3f}, {row.verdict} ({row.seconds:.1f} s)"
                )

    console.print(table(rows))
    if args.fit_calibration and rows and np.isfinite([r.expected_dice for r in rows]).all():
        a, b = fit_calibration(rows)
        estimate = loo_estimated_dice(rows)
        mae = float(np.mean(np.abs(estimate - np.array([r.mean_dice for r in rows]))))
        console.print(f"soft Dice -> Dice calibration (all rows): intercept {a:.3f}, slope {b:.3f}; "
                      f"leave-one-patient-out mean absolute error {mae:.3f}")
    result = targets(rows)
    summary = Table(title="Issue 7 targets")
    for column in ("target", "value", "met"):
        summary.add_column(column)
    for text, value, met in result.lines():
        summary.add_row(text, value, {True: "yes", False: "NO", None: "n/a"}[met])
    console.print(summary)

    if args.json:
        payload = {"rows": [asdict(r) for r in rows], "targets": asdict(result), "options": options}
        args.json.write_text(json.dumps(payload, indent=2, default=float))
        console.print(f"wrote {args.json}")
    if args.plot:
        plot(rows, levels, args.plot)
        console.print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
