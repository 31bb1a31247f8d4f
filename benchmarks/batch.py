"""Benchmark: cohort throughput of ``opencmr batch`` on a local Dask cluster, by number of workers.

Run ``python benchmarks/batch.py`` (``--studies K``, ``--workers 1 2``; ``--fast`` turns off test-time
augmentation and the orientation check, as the tests do). K phantom studies (ACDC folders) are written
into a temporary folder and analysed once per worker count, each into a fresh output folder, on a
``LocalCluster`` of worker processes with one study at a time per worker and the machine's cores shared
between the workers' PyTorch threads. The table gives studies per minute (wall time of the whole batch,
cluster start included) and the peak resident memory of each worker process.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from opencmr.batch import BatchOptions, read_manifest, run_batch
from opencmr.phantom import PhantomConfig, make_phantom, write_phantom

GROUPS = ("NOR", "DCM", "HCM", "MINF", "RV")


def write_cohort(root: Path, k: int, n_frames: int, n_slices: int) -> Path:
    """K phantom studies of rotating groups and a manifest listing them; the manifest's path."""
    lines = ["study"]
    for i in range(k):
        config = PhantomConfig(group=GROUPS[i % len(GROUPS)], n_frames=n_frames, n_slices=n_slices, seed=i)
        write_phantom(make_phantom(config), root / f"patient{i:03d}")
        lines.append(f"patient{i:03d}")
    manifest = root / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=6, help="phantom studies in the cohort (K)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--frames", type=int, default=10, help="cardiac frames per study")
    parser.add_argument("--slices", type=int, default=8, help="short-axis slices per study")
    parser.add_argument("--fast", action="store_true", help="no test-time augmentation, no orientation check")
    args = parser.parse_args()
    console = Console()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    table = Table(
        title=f"opencmr batch: {args.studies} phantom studies ({args.slices} slices x {args.frames} frames), "
        f"{cores} CPU cores, {'no TTA, no orientation check' if args.fast else 'TTA and orientation check'}",
        title_justify="left",
    )
    for column in (
        "workers",
        "torch threads / study",
        "wall s",
        "studies / min",
        "s / study (mean)",
        "peak RSS / worker (MB)",
        "errors",
    ):
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory(prefix="opencmr-batch-bench-") as tmp:
        root = Path(tmp)
        with console.status(f"writing {args.studies} phantom studies"):
            manifest = read_manifest(write_cohort(root / "studies", args.studies, args.frames, args.slices))
        for workers in args.workers:
            options = BatchOptions(
                workers=workers,
                tta=not args.fast,
                orientation="off" if args.fast else "correct",
            )
            with console.status(f"{workers} worker(s): analysing {args.studies} studies"):
                result = run_batch(manifest, root / f"out-{workers}", options)
            summary = result.summary
            peak: dict[str, float] = defaultdict(float)
            for study in summary["studies"]:
                peak[study["worker"]] = max(peak[study["worker"]], study["peak_rss_mb"] or 0.0)
            table.add_row(
                str(summary["cluster"]["workers"]),
                str(summary["cluster"]["torch_threads_per_task"]),
                f"{summary['seconds']:.1f}",
                f"{summary['studies_per_minute']:.2f}",
                f"{summary['study_seconds']['mean']:.1f}",
                ", ".join(f"{mb:.0f}" for mb in sorted(peak.values())),
                str(summary["counts"]["error"]),
            )
    console.print(table)


if __name__ == "__main__":  # worker processes are spawned: the guard keeps them from running the benchmark
    main()
