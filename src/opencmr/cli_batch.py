"""``opencmr batch``: analyse a cohort listed in a manifest CSV on Dask distributed (registered by :mod:`opencmr.cli`).

A thin layer over :func:`opencmr.batch.run_batch`: a progress bar while the
studies run, then a table of the failures and the path of ``cohort.csv``.
Like :mod:`opencmr.cli_meta`, this module never imports :mod:`opencmr.cli` at
import time; the error handling and consoles are looked up when the command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from opencmr.cli_errors import cli_errors

__all__ = ["batch"]

@cli_errors
def batch(
    manifest: Annotated[
        Path,
        typer.Argument(
            metavar="MANIFEST.csv",
            help="CSV with a 'study' column (paths, relative to the manifest's folder) and optional id, height_cm, "
            "weight_kg, sex, hr_bpm.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option("--output", "-o", help="Cohort folder: OUTDIR/<id>/ per study, cohort.csv.", show_default=False),
    ],
    scheduler: Annotated[
        str | None,
        typer.Option(
            "--scheduler",
            help="Address of a running Dask scheduler (tcp://host:8786); its workers must see the studies and OUTDIR "
            "at the same paths. Default: a local cluster.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Local worker processes [default: 1].")
    ] = None,
    threads_per_worker: Annotated[
        int | None, typer.Option("--threads-per-worker", min=1, help="Studies at once per local worker [default: 1].")
    ] = None,
    torch_threads: Annotated[
        int | None,
        typer.Option(
            "--torch-threads",
            min=1,
            help="PyTorch threads per study. Default: the CPUs shared by the studies that run at once (local), "
            "1 (--scheduler).",
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite/--resume",
            help="Run every study again, replacing its results; or (the default) skip studies finished earlier "
            "and retry failed ones.",
        ),
    ] = False,
    tta: Annotated[bool, typer.Option("--tta/--no-tta", help="Test-time augmentation in segmentation.")] = True,
    orientation: Annotated[
        str,
        typer.Option("--orientation", help="In-plane orientation check: correct, check (refuse) or off."),
    ] = "correct",
    model: Annotated[
        Path | None, typer.Option("--model", help="Model file (.pt or .onnx); default: the bundled model.")
    ] = None,
    bsa: Annotated[str, typer.Option("--bsa", help="Body-surface-area formula: mosteller or dubois.")] = "mosteller",
) -> None:
    """Analyse every study of a cohort manifest on Dask (a local cluster, or --scheduler), resumably.

    Each study's results go to OUTDIR/<id>/ (as 'opencmr analyze' writes them, plus batch.json, and
    error.txt when it failed); OUTDIR/cohort.csv has one row per study (status, error, indices, diagnosis,
    QC verdict) and OUTDIR/batch_summary.json the counts, failures and timings. A re-run skips finished
    studies and retries failed ones. Exit code 0 when every study ran (a QC fail counts as ran), 1 when
    some study failed.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from opencmr.batch import BatchOptions, read_manifest, run_batch
    from opencmr.cli import console, err_console
    from opencmr.errors import InputError
    from opencmr.qc.orientation_mode import orientation_mode

    if scheduler is not None and (workers is not None or threads_per_worker is not None):
        raise InputError("--scheduler", "--workers and --threads-per-worker size the local cluster; leave them out")
    try:
        orientation_mode(orientation, "")
    except ValueError as exc:
        raise InputError("--orientation", str(exc)) from None
    if bsa.lower() not in ("mosteller", "dubois"):
        raise InputError("--bsa", f"unknown formula {bsa!r}; choose mosteller or dubois")
    cohort = read_manifest(manifest)
    if cohort.ignored_columns:
        console.print(
            f"[yellow]note:[/] {manifest}: columns not used: {', '.join(cohort.ignored_columns)}", highlight=False
        )
    options = BatchOptions(
        scheduler=scheduler,
        workers=workers or 1,
        threads_per_worker=threads_per_worker or 1,
        torch_threads=torch_threads,
        overwrite=overwrite,
        tta=tta,
        orientation=orientation,
        model=model,
        bsa_formula=bsa.lower(),
    )
    failed = 0
    with Progress(
        TextColumn("studies"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[failed]} failed, {task.fields[skipped]} skipped"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("studies", total=len(cohort.entries), failed=0, skipped=0)
        skipped = 0

        def on_outcome(outcome: Any, done: int, total: int) -> None:
            nonlocal failed, skipped
            failed += outcome.status == "error"
            skipped += outcome.skipped
            bar.update(task, completed=done, failed=failed, skipped=skipped)

        result = run_batch(cohort, out, options, on_outcome=on_outcome)
    counts = result.summary["counts"]
    console.print(
        f"{counts['total']} studies: {counts['ok']} ok, {counts['qc-fail']} QC fail, {counts['error']} failed "
        f"({counts['skipped']} finished earlier, skipped) in {result.summary['seconds']:.1f} s",
        highlight=False,
    )
    if result.failures:
        table = Table(title="failed studies", title_justify="left")
        for column in ("id", "error", "type"):
            table.add_column(column, overflow="fold")
        for outcome in result.failures:
            table.add_row(outcome.id, outcome.error or "", outcome.error_type or "")
        console.print(table)
        console.print(f"tracebacks: {out}/<id>/error.txt", highlight=False)
    console.print(f"wrote {result.cohort_csv} and {result.summary_json.name}", highlight=False)
    if result.failures:
        raise typer.Exit(code=1)
