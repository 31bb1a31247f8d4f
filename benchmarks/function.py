"""Benchmark: clinical indices from opencmr's segmentation against the expert labels, on held-out ACDC patients.

Run ``python benchmarks/function.py [--data ../shared/data/acdc/training] [--model PATH] [--csv DIR]``.

For each validation patient recorded in the model file (never seen in
training), the ED and ES frames are segmented with the model and measured
(:func:`opencmr.measure.function.measure_function`, ED/ES from Info.cfg), and
the same indices are measured on the expert labels. Printed: per patient the
values side by side, then per index the Bland-Altman bias and 95% limits of
agreement, Pearson r and ICC(A,1) (:mod:`opencmr.evaluate.agreement`).

With ``--folds DIR`` (a cross-validation run of ``scripts/cv_train.py``:
``folds.json`` and ``fold{k}.pt``), every patient in ``folds.json`` is
segmented by the fold model that never saw it: out-of-fold agreement over all
the shared patients, a steadier estimate of the recipe's agreement than 10
patients (the fold models are not the bundled model).

Then, where the LVEF error comes from: the limits of agreement again with the
automatic LV volume of the basal-most (or apical-most) slice replaced by the
expert's, at ED and ES. The basal-most slice is the first slice, from the base,
that either segmentation calls LV in that phase; the base is the end of the
stack where the expert's ED LV is larger. Whether that slice is ventricle or
atrium is the classic ambiguity of short-axis volumetry (Bernard et al. 2018
report most errors at the base).

Targets (issue 4): LVEF bias within +-2 points with limits inside +-8 points
and r >= 0.97; LV mass r >= 0.95. ACDC leaderboard best: EF r 0.993, bias
-0.36 +- 2.69; mass r 0.992 (Bernard et al., IEEE TMI 2018).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from opencmr.evaluate.agreement import agreement_table, bland_altman
from opencmr.labels import Label
from opencmr.io.read import read_study
from opencmr.measure.function import Subject, measure_function
from opencmr.segment.inference import segment_study
from opencmr.segment.model import load_segmenter

INDICES = ("lv_edv_ml", "lv_esv_ml", "lv_ef_percent", "lv_mass_g", "rv_edv_ml", "rv_esv_ml", "rv_ef_percent")
TARGETS = {"lv_ef_percent": "bias within +-2, LoA inside +-8, r >= 0.97", "lv_mass_g": "r >= 0.95"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/acdc/training")
    parser.add_argument("--model", default=None, help="model file (default: the bundled model)")
    parser.add_argument("--patients", nargs="*", help="default: the model's validation patients")
    parser.add_argument("--folds", default=None, help="cross-validation folder (folds.json, fold{k}.pt): out of fold")
    parser.add_argument("--csv", default=None, help="write auto.csv and manual.csv here (for opencmr agreement)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=150)
    if args.folds:
        if args.model:
            sys.exit("--folds and --model exclude each other: the fold models are in the --folds folder")
        folds = json.loads((Path(args.folds) / "folds.json").read_text())["folds"]
        unknown = sorted(set(args.patients or ()) - set(folds))
        if unknown:
            sys.exit(f"not in {args.folds}/folds.json: {', '.join(unknown)}")
        fold_models = {k: load_segmenter(Path(args.folds) / f"fold{k}.pt") for k in sorted(set(folds.values()))}
        model_of = {name: fold_models[k] for name, k in folds.items()}
        patients = args.patients or sorted(folds)
        what = f"{len(patients)} ACDC patients, each segmented by the fold model that never saw it ({args.folds})"
    else:
        model = load_segmenter(args.model)
        patients = args.patients or getattr(model, "info", {}).get("validation_patients") or []
        model_of = dict.fromkeys(patients, model)
        what = f"{len(patients)} held-out ACDC patients"
    if not patients:
        sys.exit("no patients: pass --patients")
    slices: dict[str, dict[str, np.ndarray]] = {}  # per patient: LV mL per slice, (auto, manual) x (ED, ES)
    auto: dict[str, dict[str, float]] = {}
    manual: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for name in patients:
        study = read_study(Path(args.data) / name)
        assert study.labels is not None
        meta = study.metadata
        subject = Subject(height_cm=meta.height_cm, weight_kg=meta.weight_kg)
        predicted = segment_study(
            dataclasses.replace(study, labels=None), model_of[name], frames=study.labels.frame_numbers
        )
        for target, labels in ((auto, predicted), (manual, study.labels)):
            m = measure_function(labels, subject, ed_frame=meta.ed_frame, es_frame=meta.es_frame)
            target[name] = {k: float("nan") if m.values[k] is None else float(m.values[k]) for k in INDICES}
            slices.setdefault(name, {})["auto" if target is auto else "manual"] = _lv_slices(
                labels, (m.phases.ed_frame, m.phases.es_frame)
            )
    seconds = time.perf_counter() - started

    side = Table(title=f"{what}: opencmr (auto) / expert labels (manual)")
    side.add_column("patient")
    for index in INDICES:
        side.add_column(index)
    for name in patients:
        side.add_row(name, *(f"{auto[name][k]:.1f} / {manual[name][k]:.1f}" for k in INDICES))
    console.print(side)

    rows = agreement_table(
        {k: [auto[p][k] for p in patients] for k in INDICES}, {k: [manual[p][k] for p in patients] for k in INDICES}
    )
    table = Table(title="Agreement, auto - manual (Bland-Altman 95% limits, Pearson r, ICC(A,1), MAE)")
    for column in ("index", "n", "bias", "limits of agreement", "r", "ICC(A,1)", "MAE", "target"):
        table.add_column(column)
    for row in rows:
        ba = row.bland_altman
        table.add_row(
            row.index,
            str(row.n),
            f"{ba.bias:+.2f}",
            f"{ba.lower:+.2f} .. {ba.upper:+.2f}",
            f"{row.pearson.r:.3f}",
            f"{row.icc_agreement.value:.3f}",
            f"{row.mae:.2f}",
            TARGETS.get(row.index, ""),
        )
    console.print(table)
    if len(patients) >= 3:  # Bland-Altman limits need 3 pairs
        console.print(_lvef_by_slice_table(slices, patients))
    console.print(
        f"segmentation + measurement: {seconds / len(patients):.2f} s per patient (ED+ES, {args.threads} threads)"
    )
    if args.csv:
        out = Path(args.csv)
        out.mkdir(parents=True, exist_ok=True)
        for file_name, values in (("auto.csv", auto), ("manual.csv", manual)):
            with (out / file_name).open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["case", *INDICES])
                for name in patients:
                    writer.writerow([name, *(f"{values[name][k]:.4f}" for k in INDICES)])
        console.print(
            f"wrote {out / 'auto.csv'} and {out / 'manual.csv'}: opencmr agreement {out / 'auto.csv'} {out / 'manual.csv'}"
        )


def _lv_slices(labels, frames: tuple[int, int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    """LV blood pool mL per slice at ``frames`` (ED, ES): ``(2, slices)``."""
    index = [labels.frame_numbers.index(f) for f in frames]
    return (labels.data[index] == int(Label.LV_BLOOD_POOL)).sum(axis=(2, 3)) * labels.geometry.voxel_volume_ml


def _base_first(lv_ed: np.ndarray) -> bool:
    """Whether the stack starts at the base: the expert's ED LV volume is centred before the middle of its slices.

    The LV is widest at the base and tapers to the apex, so its volume lies towards the basal end (more robust
    than comparing the two end slices, since a basal crescent can be smaller than an apical slice).
    """
    present = np.flatnonzero(lv_ed > 0)
    if present.size == 0:
        return True
    centre = float(np.average(np.arange(lv_ed.size), weights=lv_ed))
    return centre <= (present[0] + present[-1]) / 2


def _end_slice(auto: np.ndarray, manual: np.ndarray, from_base: bool, base_first: bool) -> int | None:
    """The first slice, from the base (or the apex), that either segmentation calls LV (one phase's mL per slice)."""
    present = np.flatnonzero((auto > 0) | (manual > 0))
    if present.size == 0:
        return None
    return int(present[0] if from_base == base_first else present[-1])


def _ef(volumes: np.ndarray) -> float:
    return 100.0 * (1.0 - volumes[1].sum() / volumes[0].sum())


def _lvef_by_slice_table(slices: dict[str, dict[str, np.ndarray]], patients: list[str]) -> Table:
    """LVEF Bland-Altman limits as measured, and with the expert's basal-most or apical-most slice volumes."""
    table = Table(title="Where the LVEF error comes from: auto - manual, with one slice's LV volume taken from the expert")
    for column in ("auto LV volumes", "bias", "limits of agreement", "SD", "patients whose slice is all-or-nothing"):
        table.add_column(column)
    for label, replace in (("as measured", None), ("basal-most slice from the expert", True),
                           ("apical-most slice from the expert", False), ("both from the expert", "both")):
        differences, all_or_nothing = [], 0
        for name in patients:
            auto, manual = slices[name]["auto"].copy(), slices[name]["manual"]
            base_first = _base_first(manual[0])
            flags = []
            for phase in (0, 1):
                for from_base in ((True, False) if replace == "both" else () if replace is None else (replace,)):
                    k = _end_slice(auto[phase], manual[phase], from_base, base_first)
                    if k is not None:
                        flags.append((auto[phase][k] > 0) != (manual[phase][k] > 0))
                        auto[phase][k] = manual[phase][k]
            all_or_nothing += any(flags)
            differences.append(_ef(auto) - _ef(manual))
        ba = bland_altman(np.asarray(differences), np.zeros(len(differences)))
        table.add_row(label, f"{ba.bias:+.2f}", f"{ba.lower:+.2f} .. {ba.upper:+.2f}", f"{ba.sd:.2f}",
                      "" if replace is None else str(all_or_nothing))
    return table


if __name__ == "__main__":
    main()
