"""Worker processes that die for real: only the running job fails, waiting jobs are queued again and finish.

No mock of the pool: the tests run :class:`JobManager` with real spawned
workers on the tiny phantom and kill a worker with SIGKILL (as the
out-of-memory killer would), or give the workers a setting their initializer
refuses, so that every pool breaks before any job starts.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from opencmr.service.jobs import (
    CRASH_MESSAGE,
    MAX_UNEXPLAINED_CRASHES,
    UPLOAD_DIR,
    JobManager,
    JobRecord,
    JobStatus,
    JobStore,
    new_job_id,
    utc_now,
)

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

CHEAP = {"tta": False, "orientation": "off"}
ENDED = (JobStatus.DONE, JobStatus.FAILED)


def make_job(store: JobStore, phantom_folder: Path) -> JobRecord:
    """A saved, queued job whose upload is the tiny phantom's 4D NIfTI cine."""
    job_id = new_job_id()
    upload = store.folder(job_id) / UPLOAD_DIR
    upload.mkdir(parents=True)
    study = upload / "study.nii.gz"
    shutil.copyfile(phantom_folder / "phantom_4d.nii.gz", study)
    record = JobRecord(
        id=job_id,
        status=JobStatus.QUEUED,
        created=utc_now(),
        input_format="nifti",
        upload_bytes=study.stat().st_size,
        study_path=f"{UPLOAD_DIR}/study.nii.gz",
    )
    store.save(record)
    return record


def wait_for(check: Callable[[], JobRecord | None], timeout: float, what: str) -> JobRecord:
    """Poll ``check`` until it returns a record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found is not None:
            return found
        time.sleep(0.02)
    raise TimeoutError(f"{what} did not happen in {timeout} s")


def when(store: JobStore, job_id: str, statuses: tuple[JobStatus, ...]) -> Callable[[], JobRecord | None]:
    def check() -> JobRecord | None:
        record = store.get(job_id)
        return record if record.status in statuses else None

    return check


def requeue_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "queued again" in r.getMessage()]


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "data")


@pytest.fixture
def manager(store: JobStore) -> Iterator[JobManager]:
    running = JobManager(store, workers=1, max_waiting=8, torch_threads=1, analysis_options=CHEAP)
    yield running
    running.shutdown()


def test_killed_worker_fails_only_its_job_and_the_waiting_job_finishes(
    manager: JobManager, store: JobStore, phantom_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="opencmr.service")
    first, second = make_job(store, phantom_folder), make_job(store, phantom_folder)
    manager.submit(first)
    manager.submit(second)
    wait_for(when(store, first.id, (JobStatus.RUNNING, *ENDED)), 300, "the first job starting")
    assert store.get(first.id).status is JobStatus.RUNNING, "the first job ended before its worker could be killed"
    assert store.get(second.id).status is JobStatus.QUEUED
    broken = manager._executor
    assert broken is not None
    pids = list(broken._processes)  # the pool's worker processes, by pid
    assert len(pids) == 1
    os.kill(pids[0], signal.SIGKILL)

    failed = wait_for(when(store, first.id, ENDED), 120, "the first job ending")
    assert failed.status is JobStatus.FAILED and failed.error == CRASH_MESSAGE and failed.finished is not None
    done = wait_for(when(store, second.id, ENDED), 600, "the second job ending")
    assert done.status is JobStatus.DONE, done.error
    assert done.id == second.id and done.started is not None and done.qc_verdict in ("pass", "review", "fail")
    assert (store.folder(second.id) / "results" / "measurements.json").is_file()

    assert manager._executor is not None and manager._executor is not broken  # a fresh pool ran the second job
    assert len(requeue_logs(caplog)) == 1  # queued again once, by one of the broken pool's callbacks
    assert manager.waiting == 0 and not manager.is_active(first.id) and not manager.is_active(second.id)


def test_workers_that_never_start_do_not_requeue_jobs_forever(
    store: JobStore, phantom_folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """torch.set_num_threads(0) raises in every worker's initializer: each pool breaks with no job running."""
    caplog.set_level(logging.INFO, logger="opencmr.service")
    manager = JobManager(store, workers=1, max_waiting=8, torch_threads=0, analysis_options=CHEAP)
    try:
        job = make_job(store, phantom_folder)
        manager.submit(job)
        ended = wait_for(when(store, job.id, ENDED), 300, "the job ending")
    finally:
        manager.shutdown()
    assert ended.status is JobStatus.FAILED and ended.started is None
    assert ended.error is not None and ended.error.startswith(CRASH_MESSAGE)
    assert f"stopped {MAX_UNEXPLAINED_CRASHES + 1} times before this job could start" in ended.error
    assert len(requeue_logs(caplog)) == MAX_UNEXPLAINED_CRASHES
    assert manager.waiting == 0


class _RequeueWitness(logging.Handler):
    """At the moment a job is queued again, notes which of the given processes are still alive."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(level=logging.WARNING)
        self.pids = pids
        self.alive_at_requeue: list[list[int]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "queued again" in record.getMessage():
            self.alive_at_requeue.append([pid for pid in self.pids if _alive(pid)])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_with_two_workers_a_waiting_job_is_queued_again_only_once_the_broken_pool_is_gone(
    store: JobStore, phantom_folder: Path
) -> None:
    """The surviving worker of a broken pool could otherwise take the waiting job and start it a second time."""
    manager = JobManager(store, workers=2, max_waiting=8, torch_threads=1, analysis_options=CHEAP)
    logger = logging.getLogger("opencmr.service")
    witness: _RequeueWitness | None = None
    try:
        first, second, third = (make_job(store, phantom_folder) for _ in range(3))
        for job in (first, second, third):
            manager.submit(job)
        for job in (first, second):
            wait_for(when(store, job.id, (JobStatus.RUNNING, *ENDED)), 300, "the first two jobs starting")
        assert [store.get(job.id).status for job in (first, second)] == [JobStatus.RUNNING] * 2, (
            "a job ended before a worker could be killed"
        )
        broken = manager._executor
        assert broken is not None
        pids = list(broken._processes)
        assert len(pids) == 2
        witness = _RequeueWitness(pids)
        logger.addHandler(witness)
        os.kill(pids[0], signal.SIGKILL)

        for job in (first, second):  # both were running: which one killed its worker cannot be known
            failed = wait_for(when(store, job.id, ENDED), 120, "a running job ending")
            assert failed.status is JobStatus.FAILED and failed.error == CRASH_MESSAGE
        done = wait_for(when(store, third.id, ENDED), 600, "the waiting job ending")
        assert done.status is JobStatus.DONE, done.error
    finally:
        if witness is not None:
            logger.removeHandler(witness)
        manager.shutdown()
    assert witness.alive_at_requeue == [[]]  # queued again once, with no process of the broken pool left
    assert manager._executor is not broken


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")  # the pool thread's, before 3.12
def test_a_job_deleted_while_waiting_does_not_strand_the_others_when_a_worker_dies(
    manager: JobManager, store: JobStore, phantom_folder: Path
) -> None:
    """A cancelled future in a broken pool stops Python 3.11's pool thread half-way (CPython gh-107219).

    One worker: the first job runs, the next two wait in the pool's call queue,
    the fourth (deleted, as ``DELETE /studies/{id}`` does) and the fifth wait in
    its pending list. Then the worker is killed. The jobs after the deleted one
    must still be queued again and finish, not stay pending for ever.
    """
    jobs = [make_job(store, phantom_folder) for _ in range(5)]
    for job in jobs:
        manager.submit(job)
    wait_for(when(store, jobs[0].id, (JobStatus.RUNNING, *ENDED)), 300, "the first job starting")
    time.sleep(0.5)  # the pool moves the next jobs into its call queue
    assert store.get(jobs[0].id).status is JobStatus.RUNNING, "the first job ended before its worker could be killed"
    assert manager.cancel(jobs[3].id), "the fourth job had already left the pool's pending list"
    store.delete(jobs[3].id)
    broken = manager._executor
    assert broken is not None
    os.kill(next(iter(broken._processes)), signal.SIGKILL)

    failed = wait_for(when(store, jobs[0].id, ENDED), 120, "the running job ending")
    assert failed.status is JobStatus.FAILED and failed.error == CRASH_MESSAGE
    for job in (jobs[1], jobs[2], jobs[4]):
        done = wait_for(when(store, job.id, ENDED), 600, "a waiting job ending")
        assert done.status is JobStatus.DONE, done.error
    assert not store.folder(jobs[3].id).exists()
    assert manager.waiting == 0
