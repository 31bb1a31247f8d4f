"""Benchmark: ``opencmr analyze`` end to end on this machine (issue 8 targets: ED+ES <= 3 s, 30-frame cine <= 15 s).

Run ``python benchmarks/analyze.py [--repeats 3] [--threads 2] [--slices 10]``.

Two synthetic studies written to real files (:mod:`opencmr.phantom`): an ACDC
folder holding only ED and ES, and a 30-frame cine as one 4D NIfTI, both with
``--slices`` short-axis slices. Each is analysed ``--repeats`` times into a new
folder with :func:`opencmr.analysis.analyze_study` (default options: test-time
augmentation, orientation check, uncertainty, QC, diagnosis, report); the
first run in the process also pays for loading the model (reported apart).
Printed: wall time per study (median), and the share of each stage, from the
progress callback's timestamps.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from opencmr.analysis import AnalysisOptions, analyze_study
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

TARGETS = {"ED+ES": 3.0, "30-frame cine": 15.0}


def _studies(root: Path, slices: int) -> dict[str, Path]:
    edes = root / "edes"
    write_phantom(make_phantom(PhantomConfig(group="NOR", n_frames=20, n_slices=slices, seed=1)), edes)
    (edes / "phantom_4d.nii.gz").unlink()  # ED and ES files only, as ACDC ships them
    cine = root / "cine"
    write_phantom(make_phantom(PhantomConfig(group="NOR", n_frames=30, n_slices=slices, seed=2)), cine)
    return {"ED+ES": edes, "30-frame cine": cine / "phantom_4d.nii.gz"}


def _timed(study: Path, out: Path) -> tuple[float, dict[str, float]]:
    stages: dict[str, float] = {}
    last = [time.perf_counter(), "reading"]

    def progress(stage: str, done: int, total: int) -> None:
        now = time.perf_counter()
        stages[last[1]] = stages.get(last[1], 0.0) + now - last[0]
        last[0], last[1] = now, stage

    start = time.perf_counter()
    last[0] = start
    analyze_study(study, out, AnalysisOptions(height_cm=175, weight_kg=70), progress=progress)
    end = time.perf_counter()
    # after the last frame is segmented: measuring, QC, diagnosis, plots, report.html, writing
    stages["measuring, QC, report"] = end - last[0]
    return end - start, stages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--slices", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    console = Console()
    table = Table(
        title=f"opencmr analyze end to end ({args.threads} threads, {args.slices} slices, median of {args.repeats})"
    )
    for column in ("study", "first run (s, model load included)", "median (s)", "target (s)", "met", "slowest stages"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for name, path in _studies(root, args.slices).items():
            times, stage_sets = [], []
            for k in range(args.repeats + 1):
                seconds, stages = _timed(path, root / f"out_{name}_{k}".replace(" ", "_").replace("+", ""))
                times.append(seconds)
                stage_sets.append(stages)
            median = statistics.median(times[1:])
            stages = stage_sets[-1]
            slowest = ", ".join(f"{s} {v:.1f}" for s, v in sorted(stages.items(), key=lambda kv: -kv[1])[:3])
            table.add_row(name, f"{times[0]:.2f}", f"{median:.2f}", f"{TARGETS[name]:.0f}",
                          "yes" if median <= TARGETS[name] else "NO", slowest)
    console.print(table)


if __name__ == "__main__":
    main()
