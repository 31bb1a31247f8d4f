"""Jobs: one folder and one ``job.json`` per uploaded study, analysed in a bounded pool of processes.

Layout of ``DATA_DIR/jobs/<id>/``::

    job.json      the :class:`JobRecord` (written atomically)
    upload/       the unpacked upload (:mod:`opencmr.service.uploads`)
    results/      what :func:`opencmr.analysis.analyze_study` wrote
    viewer.npz    8-bit image and labels for the web viewer (:mod:`opencmr.service.slices`)

Analyses run in ``workers`` spawned processes (a crash or a leak in one never
takes the service down, and matplotlib and PyTorch are not shared between
threads); each limits PyTorch to its share of the cores. A job found queued or
running when the service starts (it was stopped mid-way) is queued again.

When a worker process dies (the out-of-memory killer, a crash in native code),
the pool is broken; once all its processes are gone, :class:`JobManager`
fails only the jobs that had started (their record says ``running``) and
queues the others again, under the same id, on a fresh pool (see
:class:`JobManager`).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import logging
import multiprocessing
import os
import secrets
import shutil
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CRASH_MESSAGE",
    "MAX_UNEXPLAINED_CRASHES",
    "JobManager",
    "JobRecord",
    "JobStatus",
    "JobStore",
    "QueueFull",
    "new_job_id",
    "run_job",
    "utc_now",
]

log = logging.getLogger("opencmr.service")

JOB_JSON = "job.json"
UPLOAD_DIR = "upload"
RESULTS_DIR = "results"
VIEWER_NPZ = "viewer.npz"

#: The error of a job whose worker process died under it.
CRASH_MESSAGE = "the analysis process stopped unexpectedly (out of memory?)"
#: Pool breakages with no job running that a waiting job survives (requeued); the next one fails it.
MAX_UNEXPLAINED_CRASHES = 2


class JobStatus(str, enum.Enum):
    """Where a job stands."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class QueueFull(Exception):
    """As many jobs as allowed are queued or running."""


def new_job_id() -> str:
    """A random job id (32 hex digits from :mod:`secrets`), unguessable and free of patient information."""
    return secrets.token_hex(16)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class JobRecord:
    """What ``job.json`` holds. ``study_path`` is relative to the job folder and never leaves the service."""

    id: str
    status: JobStatus
    created: str
    input_format: str
    upload_bytes: int
    study_path: str
    options: dict[str, Any] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    duration_s: float | None = None
    qc_verdict: str | None = None
    diagnosis_group: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        doc = dataclasses.asdict(self)
        doc["status"] = self.status.value
        return doc

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> JobRecord:
        """The record of a ``job.json`` document."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in doc.items() if k in names}
        values["status"] = JobStatus(values["status"])
        return cls(**values)


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    os.replace(tmp, path)


class JobStore:
    """Job folders under ``DATA_DIR/jobs``: the records on disk are the truth, so a restart loses nothing."""

    def __init__(self, data_dir: Path) -> None:
        self.root = Path(data_dir) / "jobs"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def folder(self, job_id: str) -> Path:
        """The folder of a job (ids are hex, so this never leaves ``root``)."""
        if not (len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)):
            raise KeyError(job_id)
        return self.root / job_id

    def save(self, record: JobRecord) -> None:
        """Write a record (atomically)."""
        with self._lock:
            folder = self.folder(record.id)
            folder.mkdir(parents=True, exist_ok=True)
            _write_json_atomic(folder / JOB_JSON, record.to_json())

    def get(self, job_id: str) -> JobRecord:
        """The record of a job; KeyError when there is none."""
        try:
            path = self.folder(job_id) / JOB_JSON
            return JobRecord.from_json(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            raise KeyError(job_id) from None

    def update(self, job_id: str, **changes: Any) -> JobRecord:
        """Change fields of a stored record and return the new one."""
        with self._lock:
            record = dataclasses.replace(self.get(job_id), **changes)
            _write_json_atomic(self.folder(job_id) / JOB_JSON, record.to_json())
            return record

    def list(self) -> list[JobRecord]:
        """Every readable record, newest first."""
        records = []
        for child in self.root.iterdir():
            if child.is_dir():
                try:
                    records.append(self.get(child.name))
                except KeyError:
                    continue
        return sorted(records, key=lambda r: (r.created, r.id), reverse=True)

    def delete(self, job_id: str) -> None:
        """Remove a job's folder."""
        shutil.rmtree(self.folder(job_id), ignore_errors=True)


def _init_worker(torch_threads: int) -> None:
    import torch

    torch.set_num_threads(torch_threads)


def run_job(job_dir: str, study_path: str, options: dict[str, Any]) -> dict[str, Any]:
    """Analyse one job's study (runs in a worker process); the fields of the record to finish it with.

    The record on disk is marked ``running`` (with ``started``) before
    anything else. Any error ends as ``{"status": "failed", "error": message}``
    with the job folder's path left out of the message. A study with nothing
    measurable is ``done`` with QC verdict ``fail``.
    """
    folder = Path(job_dir)
    record_path = folder / JOB_JSON
    record = JobRecord.from_json(json.loads(record_path.read_text(encoding="utf-8")))
    started = time.monotonic()
    # first of all (before the imports): JobManager tells a started job from a waiting one by this status
    _write_json_atomic(record_path, dataclasses.replace(record, status=JobStatus.RUNNING, started=utc_now()).to_json())

    from opencmr.analysis import AnalysisOptions, analyze_study
    from opencmr.errors import OpenCMRError, describe_exception
    from opencmr.service.slices import write_viewer_data

    try:
        result = analyze_study(folder / study_path, folder / RESULTS_DIR, AnalysisOptions(overwrite=True, **options))
        write_viewer_data(result.study, folder / VIEWER_NPZ)
    except Exception as exc:  # noqa: BLE001 -- any failure ends the job, never the worker
        message = str(exc) if isinstance(exc, OpenCMRError) else describe_exception(exc)
        message = message.replace(str(folder / UPLOAD_DIR), "upload").replace(str(folder), "job")
        return {
            "status": JobStatus.FAILED.value,
            "error": message,
            "error_type": type(exc).__name__,
            "duration_s": round(time.monotonic() - started, 2),
        }
    group = getattr(result.diagnosis, "group", None)
    return {
        "status": JobStatus.DONE.value,
        "qc_verdict": _enum_value(getattr(result.qc, "verdict", None)),
        "diagnosis_group": _enum_value(group),
        "duration_s": round(time.monotonic() - started, 2),
    }


def _enum_value(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value))


@dataclass
class _Active:
    """A job handed to a pool: its future, that pool, and how many pool breakages it has waited through."""

    record: JobRecord
    future: Future[dict[str, Any]]
    executor: ProcessPoolExecutor
    unexplained_crashes: int = 0


def _broke(future: Future[dict[str, Any]]) -> bool:
    """Whether a future ended because its pool broke."""
    return future.done() and not future.cancelled() and isinstance(future.exception(), BrokenProcessPool)


class JobManager:
    """Queues jobs on a bounded process pool and records how they end.

    When a worker process dies, :class:`~concurrent.futures.ProcessPoolExecutor`
    is broken and fails every job queued or running on it. The manager stops
    using that pool at once (new jobs go to a fresh one) and, from a thread of
    its own, waits until every process of the broken pool is gone: its other
    workers could otherwise still take a waiting job and start it while that
    job is queued again elsewhere. Then the records no longer change, and only
    the jobs that had started (their ``job.json`` says ``running``, which
    :func:`run_job` writes first of all) are failed, with
    :data:`CRASH_MESSAGE`; the others are queued again, under the same id and
    still ``queued``, on a fresh pool. With several workers, every job running
    at the time is failed: which one killed its process cannot be known. A
    running job is never queued again, so a study that kills its worker every
    time ends failed. A breakage with no job running (a worker that could not
    even start) is blamed on nobody: a waiting job is queued again after at
    most :data:`MAX_UNEXPLAINED_CRASHES` of those, and fails at the next one,
    so jobs never cycle for ever.

    Parameters
    ----------
    store : JobStore
        Where records live.
    workers : int
        Analyses at once (processes).
    max_waiting : int
        Jobs queued or running at most (:class:`QueueFull` beyond).
    torch_threads : int
        PyTorch threads per analysis.
    analysis_options : dict
        Fixed :class:`~opencmr.analysis.AnalysisOptions` fields (``tta``, ``orientation``).
    """

    def __init__(
        self, store: JobStore, workers: int, max_waiting: int, torch_threads: int, analysis_options: dict[str, Any]
    ) -> None:
        self.store = store
        self.workers = workers
        self.max_waiting = max_waiting
        self.torch_threads = torch_threads
        self.analysis_options = dict(analysis_options)
        self._executor: ProcessPoolExecutor | None = None
        self._jobs: dict[str, _Active] = {}
        self._broken: set[ProcessPoolExecutor] = set()  # broken pools whose jobs are yet to be recovered
        self._lock = threading.Lock()
        self._closed = False

    def _pool(self) -> ProcessPoolExecutor:
        """The current pool, started when there is none (call with the lock held)."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(self.torch_threads,),
            )
        return self._executor

    def _retire(self, executor: ProcessPoolExecutor) -> None:
        """A pool broke: stop using it, and recover its jobs once its processes are gone (call with the lock held).

        Every job of a broken pool reports the breakage, from the pool's own
        management thread: only the first report starts the recovery.
        """
        if self._executor is executor:
            self._executor = None
        if executor in self._broken:
            return
        self._broken.add(executor)
        threading.Thread(target=self._recover, args=(executor,), name="opencmr-pool-recovery", daemon=True).start()

    def _unsettled(self, active: _Active) -> bool:
        """Queued or running, or on a broken pool whose recovery has yet to fail it or queue it again (lock held)."""
        return not active.future.done() or active.executor in self._broken

    @property
    def waiting(self) -> int:
        """Jobs queued or running (counting those of a broken pool that are being recovered)."""
        with self._lock:
            return sum(self._unsettled(active) for active in self._jobs.values())

    def resume(self) -> int:
        """Queue again the jobs a previous run left queued or running; how many."""
        count = 0
        for record in self.store.list():
            if record.status in (JobStatus.QUEUED, JobStatus.RUNNING):
                record = self.store.update(record.id, status=JobStatus.QUEUED, started=None)
                self._submit(record, check_limit=False)
                count += 1
        return count

    def submit(self, record: JobRecord) -> None:
        """Queue a saved job; :class:`QueueFull` when ``max_waiting`` jobs are queued or running."""
        self._submit(record, check_limit=True)

    def _submit(self, record: JobRecord, check_limit: bool) -> None:
        with self._lock:
            if check_limit and sum(self._unsettled(a) for a in self._jobs.values()) >= self.max_waiting:
                raise QueueFull
            future = self._submit_locked(record, unexplained_crashes=0)
        future.add_done_callback(lambda f, job_id=record.id: self._finished(job_id, f))
        log.info("job %s queued (%d bytes, %s)", record.id, record.upload_bytes, record.input_format)

    def _submit_locked(self, record: JobRecord, unexplained_crashes: int) -> Future[dict[str, Any]]:
        """Hand a job to the current pool (call with the lock held; add the done callback after releasing it)."""
        options = {**self.analysis_options, **record.options}
        args = (str(self.store.folder(record.id)), record.study_path, options)
        executor = self._pool()
        try:
            future = executor.submit(run_job, *args)
        except BrokenProcessPool:  # it broke a moment ago; its jobs' callbacks have yet to report it
            self._retire(executor)
            executor = self._pool()
            future = executor.submit(run_job, *args)
        self._jobs[record.id] = _Active(record, future, executor, unexplained_crashes)
        return future

    def _finished(self, job_id: str, future: Future[dict[str, Any]]) -> None:
        """A job's future is done: record how the job ended (a broken pool's jobs are left to its recovery)."""
        if _broke(future):
            with self._lock:
                active = self._jobs.get(job_id)
                if active is not None and active.future is future:
                    self._retire(active.executor)
            return
        with self._lock:
            if self._jobs.get(job_id) is not None and self._jobs[job_id].future is future:
                del self._jobs[job_id]
        if future.cancelled():
            return
        error = future.exception()
        if error is not None:
            outcome = {"status": "failed", "error": f"internal error ({type(error).__name__})"}
        else:
            outcome = future.result()
        self._record(job_id, outcome)

    def _recover(self, executor: ProcessPoolExecutor) -> None:
        """Fail or queue again the jobs of a broken pool, once every one of its processes is gone.

        Runs in its own thread: ``shutdown(wait=True)`` returns when the pool's
        management thread has terminated and joined all its workers (and so
        has reported the breakage to every job), after which no record of the
        pool's jobs changes any more. Before Python 3.12 that thread can stop
        half-way (CPython gh-107219: a job cancelled while waiting in the pool
        makes it raise ``InvalidStateError``), leaving workers alive and later
        jobs' futures pending for ever; the workers are then terminated here
        and those jobs are treated as the pool's other jobs.
        """
        processes = list((getattr(executor, "_processes", None) or {}).values())  # gone after shutdown()
        try:
            executor.shutdown(wait=True)
            for process in processes:
                if process.is_alive():
                    process.terminate()
                process.join(timeout=60)
            self._settle(executor)
        finally:
            with self._lock:
                self._broken.discard(executor)

    def _settle(self, executor: ProcessPoolExecutor) -> None:
        """Fail the started jobs of a broken pool whose processes are all gone; queue the others again."""
        outcomes: list[tuple[str, dict[str, Any]]] = []
        requeued: list[tuple[str, Future[dict[str, Any]]]] = []
        with self._lock:
            jobs = {
                job_id: active
                for job_id, active in self._jobs.items()
                if active.executor is executor and (_broke(active.future) or not active.future.done())
            }
            started = {job_id: self._had_started(job_id) for job_id in jobs}
            log.warning(
                "an analysis process stopped unexpectedly: %d running job(s) failed, %d waiting job(s) to queue again",
                sum(started.values()),
                len(jobs) - sum(started.values()),
            )
            for job_id, active in jobs.items():
                del self._jobs[job_id]
                if not any(started.values()):
                    active.unexplained_crashes += 1
                if started[job_id]:
                    outcomes.append((job_id, {"status": "failed", "error": CRASH_MESSAGE}))
                elif active.unexplained_crashes > MAX_UNEXPLAINED_CRASHES:
                    error = (
                        f"{CRASH_MESSAGE}: the analysis processes stopped {active.unexplained_crashes} times "
                        "before this job could start"
                    )
                    outcomes.append((job_id, {"status": "failed", "error": error}))
                elif not self._closed:  # when closed, it stays queued on disk and resumes at the next start
                    try:
                        record = self.store.update(job_id, status=JobStatus.QUEUED, started=None)
                    except (KeyError, OSError):  # deleted meanwhile
                        continue
                    try:
                        requeued.append((job_id, self._submit_locked(record, active.unexplained_crashes)))
                    except Exception as exc:  # noqa: BLE001 -- no pool can be started: the job must still end
                        outcomes.append(
                            (job_id, {"status": "failed", "error": f"internal error ({type(exc).__name__})"})
                        )
        for job_id, future in requeued:
            log.warning("job %s queued again: an analysis process stopped before the job started", job_id)
            future.add_done_callback(lambda f, job_id=job_id: self._finished(job_id, f))
        for job_id, outcome in outcomes:
            self._record(job_id, outcome)

    def _had_started(self, job_id: str) -> bool:
        """Whether a job's record says it started (False when it was deleted meanwhile)."""
        try:
            return self.store.get(job_id).status is JobStatus.RUNNING
        except KeyError:
            return False

    def _record(self, job_id: str, outcome: dict[str, Any]) -> None:
        """Store how a job ended."""
        error_type = outcome.pop("error_type", None)
        try:
            record = self.store.update(
                job_id, **{**outcome, "status": JobStatus(outcome["status"]), "finished": utc_now()}
            )
        except KeyError:  # deleted meanwhile
            return
        except OSError as exc:  # a full or failing disk: the record stays as it was; say so, and go on
            log.error("job %s: could not record how it ended (%s)", job_id, exc.strerror or exc)
            return
        if record.status is JobStatus.DONE:
            log.info("job %s done in %.1f s (QC %s)", job_id, record.duration_s or 0.0, record.qc_verdict)
        else:  # the type only: messages can quote names from inside the upload
            log.warning("job %s failed after %.1f s (%s)", job_id, record.duration_s or 0.0, error_type or "error")

    def cancel(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it is running (or already finished)."""
        with self._lock:
            active = self._jobs.get(job_id)
        if active is None:
            return True
        return active.future.cancel()

    def is_active(self, job_id: str) -> bool:
        """Whether a job is queued or running in this process (or its broken pool is still being recovered)."""
        with self._lock:
            active = self._jobs.get(job_id)
            return active is not None and self._unsettled(active)

    def shutdown(self) -> None:
        """Stop taking jobs; queued ones stay queued on disk and resume at the next start."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
