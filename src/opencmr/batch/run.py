"""Run :func:`opencmr.analysis.analyze_study` over a cohort on Dask distributed, resumably.

Each study of the manifest is one task, submitted with ``client.submit`` to a
:class:`distributed.LocalCluster` (worker processes on this machine, the
default) or to an existing cluster (``scheduler``); results are collected with
``as_completed``. A task writes the study's results into ``OUTDIR/<id>`` and
returns a small dict (status, error, seconds, the measurement row, diagnosis
group and probabilities, QC verdict, the worker's peak memory), never image
arrays. With an existing cluster, the workers must see the studies and OUTDIR
at the same paths as this machine (a shared file system).

Files, per study (``OUTDIR/<id>/``): the outputs of ``analyze_study``, then
``batch.json``, written last and atomically with the study's status
(``ok``, ``qc-fail`` or ``error``); ``error.txt`` with the traceback when the
study failed. ``batch.json`` is first written with status ``running`` before
the analysis starts, so that a folder holding it is known to be the batch's
own and may be overwritten when the study is run again.

Resuming: a study whose ``batch.json`` says ``ok`` or ``qc-fail`` for the same
study path is skipped (its row comes from ``batch.json``); a study that failed
or never finished is run again. ``overwrite`` runs every study again.

For the cohort (``OUTDIR``): ``cohort.csv``, one row per study in manifest
order (id, study, status, error, the indices of ``measurements.csv``,
diagnosis group and probabilities, QC verdict and reasons), and
``batch_summary.json`` (counts, failures, seconds, workers), both written
atomically after every run.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opencmr.batch.manifest import Manifest, ManifestEntry
from opencmr.errors import OutputError
from opencmr.qc.orientation_mode import orientation_mode

__all__ = [
    "BATCH_JSON",
    "COHORT_CSV",
    "SUMMARY_JSON",
    "BatchOptions",
    "BatchResult",
    "StudyOutcome",
    "analyze_one",
    "run_batch",
]

BATCH_JSON = "batch.json"
ERROR_TXT = "error.txt"
COHORT_CSV = "cohort.csv"
SUMMARY_JSON = "batch_summary.json"
SCHEMA = "opencmr.batch/1"
SUMMARY_SCHEMA = "opencmr.batch-summary/1"
DONE = ("ok", "qc-fail")
STATUSES = ("ok", "qc-fail", "error")


@dataclass(frozen=True)
class BatchOptions:
    """How to run the cohort.

    Parameters
    ----------
    scheduler : str, optional
        Address of an existing Dask scheduler (``tcp://host:8786``); None starts a
        :class:`~distributed.LocalCluster` of ``workers`` x ``threads_per_worker``.
    workers, threads_per_worker : int
        The local cluster's size (ignored with ``scheduler``).
    processes : bool
        Local workers in separate processes (the default; threads share one
        Python process and its memory).
    torch_threads : int, optional
        PyTorch threads per task. Default: this machine's cores divided by the
        studies that run at once (``workers * threads_per_worker``) for the local
        cluster, 1 on an existing cluster, so workers do not oversubscribe the CPUs.
    overwrite : bool
        Run every study again, replacing its earlier results; by default studies
        already finished are skipped (resume).
    tta, orientation, model, bsa_formula
        As in :class:`~opencmr.analysis.AnalysisOptions`, for every study.
    """

    scheduler: str | None = None
    workers: int = 1
    threads_per_worker: int = 1
    processes: bool = True
    torch_threads: int | None = None
    overwrite: bool = False
    tta: bool = True
    orientation: str = "correct"
    model: Path | None = None
    bsa_formula: str = "mosteller"

    def __post_init__(self) -> None:
        if self.workers < 1 or self.threads_per_worker < 1:
            raise ValueError("workers and threads_per_worker must be at least 1")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError("torch_threads must be at least 1")
        orientation_mode(self.orientation)

    def torch_threads_for_local(self) -> int:
        """Torch threads per task on the local cluster: the CPUs shared by the concurrent tasks."""
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, _cpu_count() // (self.workers * self.threads_per_worker))


@dataclass(frozen=True)
class StudyOutcome:
    """What one study gave: the row of ``cohort.csv`` and the bookkeeping of the run."""

    id: str
    study: str
    status: str
    """``ok``, ``qc-fail`` (ran, QC verdict fail) or ``error`` (see :attr:`error`)."""
    error: str | None = None
    error_type: str | None = None
    seconds: float | None = None
    indices: dict[str, Any] = field(default_factory=dict)
    """The row of ``measurements.csv`` (indices, ED/ES, subject), empty when nothing was measured."""
    diagnosis_group: str | None = None
    diagnosis_probabilities: dict[str, float] = field(default_factory=dict)
    qc_verdict: str | None = None
    qc_reasons: tuple[str, ...] = ()
    peak_rss_mb: float | None = None
    """Peak resident memory of the worker process so far (its whole life, not just this study)."""
    worker: str | None = None
    skipped: bool = False
    """Finished in an earlier run and not run again."""

    def to_dict(self) -> dict[str, Any]:
        document = dataclasses.asdict(self)
        document["qc_reasons"] = list(self.qc_reasons)
        return document

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudyOutcome:
        names = {f.name for f in dataclasses.fields(cls)}
        known = {k: v for k, v in data.items() if k in names}
        known["qc_reasons"] = tuple(known.get("qc_reasons") or ())
        return cls(**known)


@dataclass(frozen=True)
class BatchResult:
    """The outcome of every study in manifest order, and the files written."""

    outcomes: tuple[StudyOutcome, ...]
    cohort_csv: Path
    summary_json: Path
    summary: dict[str, Any]

    @property
    def failures(self) -> tuple[StudyOutcome, ...]:
        return tuple(o for o in self.outcomes if o.status == "error")


# ------------------------------------------------------------------------------------------------ the task


def analyze_one(entry: ManifestEntry, out_dir: str, settings: dict[str, Any]) -> dict[str, Any]:
    """Analyse one study into ``out_dir/<id>`` and return its outcome as a small dict (runs on a worker).

    Never raises for a problem of the study: the error is the outcome, and its
    traceback goes to ``error.txt``. ``settings`` holds ``overwrite``,
    ``torch_threads``, ``tta``, ``orientation``, ``model`` and ``bsa_formula``.
    """
    start = time.perf_counter()
    folder = Path(out_dir) / entry.id
    base = {"id": entry.id, "study": str(entry.study), "worker": _worker_name()}
    try:
        import torch

        torch.set_num_threads(int(settings["torch_threads"]))
        from opencmr.analysis import AnalysisOptions, analyze_study
        from opencmr.measure.body import BsaFormula

        # the folder is the batch's own when it holds batch.json, and may then be overwritten
        owned = (folder / BATCH_JSON).is_file() or bool(settings["overwrite"])
        _write_marker(folder, {**base, "status": "running"}, overwrite=owned)
        options = AnalysisOptions(
            height_cm=entry.height_cm,
            weight_kg=entry.weight_kg,
            sex=entry.sex,
            heart_rate_bpm=entry.hr_bpm,
            bsa_formula=BsaFormula(settings["bsa_formula"]),
            model=None if settings["model"] is None else Path(settings["model"]),
            tta=bool(settings["tta"]),
            orientation=str(settings["orientation"]),
            overwrite=owned,
        )
        result = analyze_study(entry.study, folder, options, progress=None)
        outcome = _success(base, result)
        if (folder / ERROR_TXT).is_file():
            (folder / ERROR_TXT).unlink()  # from an earlier failed run of this study
    except Exception as exc:  # noqa: BLE001 - one failing study never stops the others
        outcome = {
            **base,
            "status": "error",
            "error": _message(exc),
            "error_type": type(exc).__name__,
        }
        _try_write_error(folder, entry, exc)
    outcome["seconds"] = round(time.perf_counter() - start, 3)
    outcome["peak_rss_mb"] = _peak_rss_mb()
    if outcome["status"] == "error" and not (folder / BATCH_JSON).is_file():
        return outcome  # the folder is not the batch's (or cannot be written): leave it as it is
    try:
        _write_marker(folder, {**outcome, "finished": _now()}, overwrite=True)
    except Exception as exc:  # noqa: BLE001
        outcome = {**outcome, "status": "error", "error": f"{folder / BATCH_JSON}: cannot be written ({exc})"}
    return outcome


def _success(base: dict[str, Any], result: Any) -> dict[str, Any]:
    qc = result.qc
    verdict = None if qc is None else qc.verdict.value
    diagnosis = result.diagnosis
    indices = {} if result.measurements is None else result.measurements.row()
    return {
        **base,
        "status": "qc-fail" if result.measurements is None or verdict == "fail" else "ok",
        "error": None,
        "error_type": None,
        "indices": indices,
        "diagnosis_group": None if diagnosis is None else diagnosis.group,
        "diagnosis_probabilities": {}
        if diagnosis is None
        else {k: round(float(v), 4) for k, v in diagnosis.probabilities.items()},
        "qc_verdict": verdict,
        "qc_reasons": [] if qc is None else [str(r) for r in qc.reasons],
    }


def _message(exc: BaseException) -> str:
    """One line for the summary: an OpenCMRError's own message (it names the file), else ``Type: first line``."""
    from opencmr.errors import OpenCMRError, describe_exception

    if isinstance(exc, OpenCMRError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return describe_exception(exc, limit=300)


def _try_write_error(folder: Path, entry: ManifestEntry, exc: BaseException) -> None:
    """``error.txt`` with the traceback, into the batch's own folder only."""
    if not (folder / BATCH_JSON).is_file():
        return
    text = f"study: {entry.study}\nmanifest line: {entry.line}\n\n" + "".join(traceback.format_exception(exc))
    from opencmr.io._atomic import atomic_output

    with contextlib.suppress(Exception), atomic_output(folder / ERROR_TXT, overwrite=True) as tmp:
        tmp.write_text(text)  # on failure: the error itself is still in batch.json and the summary


def _write_marker(folder: Path, document: dict[str, Any], overwrite: bool) -> None:
    from opencmr.io._atomic import write_json

    if folder.exists() and not folder.is_dir():
        raise OutputError(folder, "is a file, not a folder")
    if not overwrite and folder.is_dir() and any(folder.iterdir()):
        raise OutputError(
            folder, "holds files not written by 'opencmr batch'; remove them or run with --overwrite to replace them"
        )
    write_json(folder / BATCH_JSON, {"schema": SCHEMA, **document}, overwrite=overwrite)


def _peak_rss_mb() -> float | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)  # bytes on macOS, KiB on Linux


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------------------ the runner

#: ``on_outcome(outcome, done, total)``, called once per study (skipped ones first).
OnOutcome = Callable[[StudyOutcome, int, int], None]


def run_batch(
    manifest: Manifest,
    out_dir: str | os.PathLike[str],
    options: BatchOptions | None = None,
    on_outcome: OnOutcome | None = None,
) -> BatchResult:
    """Analyse every study of ``manifest`` into ``out_dir`` on Dask and write ``cohort.csv`` and the summary.

    Parameters
    ----------
    manifest : Manifest
        From :func:`~opencmr.batch.manifest.read_manifest`.
    out_dir : str or PathLike
        The cohort's folder (created if needed).
    options : BatchOptions, optional
        Cluster, resume/overwrite and analysis settings.
    on_outcome : callable, optional
        ``on_outcome(outcome, done, total)`` after each study, for progress.

    Returns
    -------
    BatchResult

    Raises
    ------
    OutputError
        ``out_dir`` is a file, or holds a ``cohort.csv`` or ``batch_summary.json``
        that an earlier batch did not write (and ``overwrite`` is False); checked
        before any study runs.
    """
    options = options or BatchOptions()
    out = Path(out_dir)
    manifest_path = getattr(manifest, "path", None)
    if manifest_path is not None:
        for name in (COHORT_CSV, SUMMARY_JSON):
            if (out / name).resolve() == Path(manifest_path).resolve():
                raise OutputError(manifest_path, f"is where the batch writes its {name}: put the manifest elsewhere")
    _check_out_dir(out, options.overwrite)
    started, clock = _now(), time.perf_counter()
    total = len(manifest.entries)
    outcomes: dict[str, StudyOutcome] = {}
    to_run: list[ManifestEntry] = []
    for entry in manifest.entries:
        previous = None if options.overwrite else _finished(out / entry.id, entry)
        if previous is not None:
            outcomes[entry.id] = previous
            if on_outcome is not None:
                on_outcome(previous, len(outcomes), total)
        else:
            to_run.append(entry)
    cluster_info: dict[str, Any] = {"scheduler": options.scheduler or "local", "workers": 0, "threads": 0}
    if to_run:
        cluster_info = _run_on_dask(to_run, out, options, outcomes, on_outcome, total)
    ordered = tuple(outcomes[e.id] for e in manifest.entries)
    seconds = round(time.perf_counter() - clock, 3)
    summary = _summary(manifest, out, ordered, started, seconds, cluster_info, options)
    cohort_csv = write_cohort_csv(ordered, out / COHORT_CSV)
    from opencmr.io._atomic import write_json

    summary_json = write_json(out / SUMMARY_JSON, summary, overwrite=True)
    return BatchResult(ordered, cohort_csv, summary_json, summary)


def _check_out_dir(out: Path, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputError(out, "is a file, not a folder")
    ours = _is_summary(out / SUMMARY_JSON)
    for name in (COHORT_CSV, SUMMARY_JSON):
        target = out / name
        if target.is_dir():
            raise OutputError(target, "is a folder, not a file")
        if target.exists() and not ours and not overwrite:
            raise OutputError(target, "already exists and was not written by 'opencmr batch' (use --overwrite)")


def _is_summary(path: Path) -> bool:
    try:
        return json.loads(path.read_text()).get("schema") == SUMMARY_SCHEMA
    except (OSError, ValueError, AttributeError):
        return False


def _finished(folder: Path, entry: ManifestEntry) -> StudyOutcome | None:
    """The outcome recorded by an earlier run, when it finished (ok or qc-fail) the same study."""
    try:
        document = json.loads((folder / BATCH_JSON).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict) or document.get("status") not in DONE:
        return None
    if document.get("study") != str(entry.study):
        return None  # the manifest now gives another study for this id: run it
    return dataclasses.replace(StudyOutcome.from_dict(document), skipped=True)


def _run_on_dask(
    entries: Sequence[ManifestEntry],
    out: Path,
    options: BatchOptions,
    outcomes: dict[str, StudyOutcome],
    on_outcome: OnOutcome | None,
    total: int,
) -> dict[str, Any]:
    from distributed import Client, LocalCluster, as_completed

    out.mkdir(parents=True, exist_ok=True)
    cluster = None
    if options.scheduler is None:
        cluster = LocalCluster(
            n_workers=options.workers,
            threads_per_worker=options.threads_per_worker,
            processes=options.processes,
            dashboard_address=None,
        )
        try:
            client = Client(cluster)
        except BaseException:
            cluster.close()
            raise
        torch_threads = options.torch_threads_for_local()
    else:
        try:
            client = Client(options.scheduler, timeout="20s")
        except (OSError, TimeoutError) as exc:
            raise OutputError(options.scheduler, f"cannot connect to the Dask scheduler ({exc})") from None
        torch_threads = options.torch_threads or 1
    settings = {
        "overwrite": options.overwrite,
        "torch_threads": torch_threads,
        "tta": options.tta,
        "orientation": options.orientation,
        "model": None if options.model is None else str(Path(options.model).resolve()),
        "bsa_formula": str(options.bsa_formula),
    }
    try:
        workers = client.scheduler_info().get("workers", {})
        info = {
            "scheduler": options.scheduler or "local",
            "workers": len(workers),
            "threads": sum(int(w.get("nthreads", 0)) for w in workers.values()),
            "torch_threads_per_task": torch_threads,
            "processes": options.processes if options.scheduler is None else None,
        }
        futures = {
            client.submit(
                analyze_one,
                entry,
                str(out.resolve()),
                settings,
                key=f"opencmr-batch-{entry.id}-{os.urandom(4).hex()}",
                pure=False,
            ): entry
            for entry in entries
        }
        for future in as_completed(futures):
            entry = futures[future]
            try:
                outcome = StudyOutcome.from_dict(future.result())
            except Exception as exc:  # noqa: BLE001 - the worker died (memory), or the task could not be run
                outcome = StudyOutcome(
                    id=entry.id,
                    study=str(entry.study),
                    status="error",
                    error=_message(exc),
                    error_type=type(exc).__name__,
                )
                _record_lost(out / entry.id, outcome)
            outcomes[entry.id] = outcome
            if on_outcome is not None:
                on_outcome(outcome, len(outcomes), total)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
    return info


def _record_lost(folder: Path, outcome: StudyOutcome) -> None:
    """Mark a study whose task never returned (its worker died) as failed, in the batch's own folder."""
    if not (folder / BATCH_JSON).is_file():
        return
    with contextlib.suppress(Exception):
        _write_marker(folder, {**outcome.to_dict(), "finished": _now()}, overwrite=True)


def _summary(
    manifest: Manifest,
    out: Path,
    outcomes: Sequence[StudyOutcome],
    started: str,
    seconds: float,
    cluster: dict[str, Any],
    options: BatchOptions,
) -> dict[str, Any]:
    ran = [o for o in outcomes if not o.skipped]
    counts = {status: sum(o.status == status for o in outcomes) for status in STATUSES}
    busy = sum(o.seconds or 0.0 for o in ran)
    return {
        "schema": SUMMARY_SCHEMA,
        "manifest": str(manifest.path.resolve()),
        "out_dir": str(out.resolve()),
        "started": started,
        "finished": _now(),
        "seconds": seconds,
        "counts": {"total": len(outcomes), **counts, "ran": len(ran), "skipped": len(outcomes) - len(ran)},
        "studies_per_minute": round(60.0 * len(ran) / seconds, 3) if ran and seconds > 0 else None,
        "study_seconds": {"total": round(busy, 3), "mean": round(busy / len(ran), 3) if ran else None},
        "cluster": cluster,
        "overwrite": options.overwrite,
        "failures": [
            {"id": o.id, "study": o.study, "error": o.error, "error_type": o.error_type}
            for o in outcomes
            if o.status == "error"
        ],
        "studies": [
            {
                "id": o.id,
                "status": o.status,
                "skipped": o.skipped,
                "seconds": o.seconds,
                "peak_rss_mb": o.peak_rss_mb,
                "worker": o.worker,
            }
            for o in outcomes
        ],
    }


def cohort_rows(outcomes: Sequence[StudyOutcome]) -> tuple[list[str], list[dict[str, Any]]]:
    """The header and rows of ``cohort.csv``: index columns in ``measurements.csv`` order, groups sorted."""
    index_columns: dict[str, None] = {}
    groups: dict[str, None] = {}
    for outcome in outcomes:
        index_columns.update(dict.fromkeys(outcome.indices))
        groups.update(dict.fromkeys(outcome.diagnosis_probabilities))
    probability_columns = [f"p_{group}" for group in sorted(groups)]
    header = [
        "id", "study", "status", "error", "error_type", *index_columns, "diagnosis_group", *probability_columns,
        "qc_verdict", "qc_reasons",
    ]  # fmt: skip
    rows = []
    for o in outcomes:
        row: dict[str, Any] = {
            "id": o.id,
            "study": o.study,
            "status": o.status,
            "error": o.error,
            "error_type": o.error_type,
        }
        row.update({name: o.indices.get(name) for name in index_columns})
        row["diagnosis_group"] = o.diagnosis_group
        row.update({f"p_{g}": o.diagnosis_probabilities.get(g) for g in sorted(groups)})
        row["qc_verdict"] = o.qc_verdict
        row["qc_reasons"] = "; ".join(o.qc_reasons)
        rows.append(row)
    return header, rows


def write_cohort_csv(outcomes: Sequence[StudyOutcome], path: str | os.PathLike[str]) -> Path:
    """Write ``cohort.csv`` atomically (replacing the previous run's), empty cells for missing values."""
    from opencmr.io._atomic import atomic_output

    header, rows = cohort_rows(outcomes)
    target = Path(path)
    with atomic_output(target, overwrite=True) as tmp, tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return target
