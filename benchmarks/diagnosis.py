"""Train and benchmark the diagnosis model on the shared ACDC patients (cross-validated, from predicted segmentations).

Run ``python benchmarks/diagnosis.py [--data ../shared/data/acdc/training] [--fold-models DIR] [--features CACHE.json]
[--save MODEL.json]``.

1. Features of every patient from the expert segmentation and from a predicted
   segmentation (:func:`opencmr.diagnose.train.collect_features`; cached in
   ``--features`` because segmenting 80 patients takes minutes). With
   ``--fold-models DIR`` (``folds.json`` and ``fold{k}.pt`` from
   ``scripts/cv_train.py``) each patient is segmented by the fold model that
   never saw it (out-of-fold); without it, by the bundled model, which saw 70
   of the 80 patients in training (optimistic).
2. Candidates compared by 5-fold cross-validation (the segmentation folds when
   given), stratified by group and grouped by patient, scored on the rows from
   *predicted* segmentations only: logistic regression at several strengths,
   random forest, gradient boosting.
3. The chosen logistic regression is fitted on all rows, its temperature on the
   cross-validated predictions; ``--save`` writes the JSON model.
4. Printed: accuracy, per-class sensitivity and specificity with Wilson 95%
   CIs, one-vs-rest AUC with bootstrap CIs, Brier score and ECE of the
   *nested* cross-validated, calibrated predictions (C and temperature chosen
   inside each outer training fold; :mod:`opencmr.evaluate.classification`).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from opencmr.diagnose.model import GROUPS
from opencmr.diagnose.train import (
    FeatureTable,
    _accuracy_log_loss,
    _sklearn_candidates,
    collect_features,
    cross_validated_proba,
    fit_logistic,
    fit_temperature,
    logistic_fitter,
    nested_cross_validated_proba,
    sklearn_fitter,
)

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/acdc/training")
    parser.add_argument("--features", default="runs/diagnosis_features.json", help="feature cache (read or written)")
    parser.add_argument("--save", default=None, help="write the fitted model here (JSON)")
    parser.add_argument(
        "--fold-models", default=None,
        help="folder with folds.json and fold{k}.pt (scripts/cv_train.py): out-of-fold segmentations, and the "
        "classifier's cross-validation on the same folds",
    )
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=2000)
    args = parser.parse_args()
    console = Console(width=150)
    cache = Path(args.features)
    fold_of = None
    if args.fold_models:
        fold_of = json.loads((Path(args.fold_models) / "folds.json").read_text())["folds"]
        args.folds = len(set(fold_of.values()))
    if cache.is_file():
        table = FeatureTable.from_dict(json.loads(cache.read_text()))
    else:
        from opencmr.segment.model import load_model

        folders = sorted(p for p in Path(args.data).iterdir() if p.is_dir())
        if not folders:
            sys.exit(f"no patient folders in {args.data}")
        if fold_of is None:
            segmenter = load_model()
        else:
            models = {k: load_model(Path(args.fold_models) / f"fold{k}.pt") for k in sorted(set(fold_of.values()))}
            segmenter = {p: models[k] for p, k in fold_of.items()}
        table = collect_features(folders, segmenter)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(table.to_dict()))
    predicted = np.array([s == "predicted" for s in table.sources])
    truth = [g for g, p in zip(table.groups, predicted) if p]

    candidates = {f"logistic regression, C={c}": logistic_fitter(c) for c in C_GRID}
    candidates.update({name: sklearn_fitter(make) for name, make in _sklearn_candidates().items()})
    results = {}
    compare = Table(
        title=f"Cross-validated ({args.folds} folds, by patient) on predicted segmentations of {len(truth)} patients"
    )
    for column in ("candidate", "accuracy", "log loss"):
        compare.add_column(column)
    for name, fitter in candidates.items():
        proba = cross_validated_proba(table, fitter, args.folds, args.seed, fold_of)[predicted]
        results[name] = (*_accuracy_log_loss(proba, truth), proba)
        compare.add_row(name, f"{results[name][0]:.3f}", f"{results[name][1]:.3f}")
    console.print(compare)

    logistic = {n: r for n, r in results.items() if n.startswith("logistic")}
    chosen = min(logistic, key=lambda n: (-logistic[n][0], logistic[n][1]))
    c = float(chosen.split("C=")[1])
    oof = logistic[chosen][2]
    temperature = fit_temperature(np.log(np.clip(oof, 1e-12, 1.0)), truth)
    z = np.log(np.clip(oof, 1e-12, 1.0)) / temperature
    calibrated = np.exp(z - z.max(axis=1, keepdims=True))
    calibrated /= calibrated.sum(axis=1, keepdims=True)
    console.print(
        f"chosen: {chosen} (best logistic regression by accuracy, then log loss); temperature {temperature:.3f}"
    )

    nested, choices = nested_cross_validated_proba(table, C_GRID, args.folds, args.seed, fold_of)
    console.print(
        "nested cross-validation (C and temperature chosen inside each outer training fold): "
        + ", ".join(f"fold {c['fold']}: C={c['c']}, T={c['temperature']:.2f}" for c in choices)
    )
    report = _report(console, truth, nested[predicted], args.n_boot, args.seed)
    if args.save:
        info = {
            "name": "opencmr-acdc-diagnosis-v2" if fold_of is not None else "opencmr-acdc-diagnosis",
            "training_data": f"{len(set(table.patients))} ACDC training patients, expert and "
            + ("out-of-fold predicted segmentations (5 fold segmentation models)" if fold_of is not None
               else "predicted segmentations (bundled model)"),
            "classifier": f"multinomial logistic regression, L2, C={c}, standardised features",
            "temperature_fitted_on": "cross-validated predictions from predicted segmentations",
            "cross_validation": {
                "folds": args.folds,
                "seed": args.seed,
                "fold_assignment": "segmentation folds (folds.json)" if fold_of is not None else "seeded, stratified",
                "reported": "nested: C and temperature chosen inside each outer training fold",
                "nested_choices": choices,
                "candidates": {n: {"accuracy": r[0], "log_loss": r[1]} for n, r in results.items()},
                **report,
            },
        }
        model = fit_logistic(table.x, list(table.groups), c, info)
        model = type(model)(**{**model.__dict__, "temperature": temperature})
        console.print(f"wrote {model.save(args.save, overwrite=True)}")


def _report(console: Console, truth: list[str], proba: np.ndarray, n_boot: int, seed: int) -> dict:
    try:
        from opencmr.evaluate.classification import evaluate_classification
    except ImportError:  # pragma: no cover - the evaluation module is part of the package
        accuracy, log_loss = _accuracy_log_loss(proba, truth)
        console.print(f"calibrated cross-validated accuracy {accuracy:.3f}, log loss {log_loss:.3f}")
        return {"accuracy": accuracy, "log_loss": log_loss}
    report = evaluate_classification(truth, proba, GROUPS, n_boot=n_boot, seed=seed)
    data = report.to_dict()
    acc = data["accuracy"]
    table = Table(
        title=f"Calibrated cross-validated predictions: accuracy {acc['estimate']:.3f} "
        f"({acc['ci'][0]:.3f}-{acc['ci'][1]:.3f}), Brier {data['brier']:.3f}, ECE {data['ece']:.3f}"
    )
    for column in ("group", "TP/FP/FN/TN", "sensitivity (95% CI)", "specificity (95% CI)", "AUC (95% CI)"):
        table.add_column(column)
    for group in GROUPS:
        row = data["per_class"][group]
        sens, spec = row["sensitivity"], row["specificity"]
        table.add_row(
            group,
            f"{row['tp']}/{row['fp']}/{row['fn']}/{row['tn']}",
            f"{sens['estimate']:.3f} ({sens['ci'][0]:.3f}-{sens['ci'][1]:.3f})",
            f"{spec['estimate']:.3f} ({spec['ci'][0]:.3f}-{spec['ci'][1]:.3f})",
            f"{row['auc']:.3f} ({row['ci'][0]:.3f}-{row['ci'][1]:.3f})",
        )
    console.print(table)
    console.print("targets (issue 5): accuracy >= 0.92, per-class sensitivity >= 0.85 and specificity >= 0.95")
    return {k: v for k, v in data.items() if k in ("accuracy", "per_class", "brier", "ece", "auc", "confusion_matrix")}


def _plain(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


if __name__ == "__main__":
    main()
