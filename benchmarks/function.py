"""Benchmark: clinical indices from opencmr's segmentation against the expert labels, on held-out ACDC patients.

Run ``python benchmarks/function.py [--data ../shared/data/acdc/training] [--model PATH] [--csv DIR]``.

For each validation patient recorded in the model file (never seen in
training), the ED and ES frames are segmented with the model and measured
(:func:`opencmr.measure.function.measure_function`, ED/ES from Info.cfg), and
the same indices are measured on the expert labels. Printed: per patient the
values side by side, then per index the Bland-Altman bias and 95% limits of
agreement, Pearson r and ICC(A,1) (:mod:`opencmr.evaluate.agreement`).

Targets (issue 4): LVEF bias within +-2 points with limits inside +-8 points
and r >= 0.97; LV mass r >= 0.95. ACDC leaderboard best: EF r 0.993, bias
-0.36 +- 2.69; mass r 0.992 (Bernard et al., IEEE TMI 2018).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from opencmr.evaluate.agreement import agreement_table
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
    parser.add_argument("--csv", default=None, help="write auto.csv and manual.csv here (for opencmr agreement)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console(width=150)
    model = load_segmenter(args.model)
    patients = args.patients or getattr(model, "info", {}).get("validation_patients") or []
    if not patients:
        sys.exit("no patients: pass --patients")
    auto: dict[str, dict[str, float]] = {}
    manual: dict[str, dict[str, float]] = {}
    started = time.perf_counter()
    for name in patients:
        study = read_study(Path(args.data) / name)
        assert study.labels is not None
        meta = study.metadata
        subject = Subject(height_cm=meta.height_cm, weight_kg=meta.weight_kg)
        predicted = segment_study(dataclasses.replace(study, labels=None), model, frames=study.labels.frame_numbers)
        for target, labels in ((auto, predicted), (manual, study.labels)):
            m = measure_function(labels, subject, ed_frame=meta.ed_frame, es_frame=meta.es_frame)
            target[name] = {k: float("nan") if m.values[k] is None else float(m.values[k]) for k in INDICES}
    seconds = time.perf_counter() - started

    side = Table(title=f"{len(patients)} held-out ACDC patients: opencmr (auto) / expert labels (manual)")
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


if __name__ == "__main__":
    main()
