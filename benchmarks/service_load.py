"""Benchmark: concurrent uploads to ``opencmr serve`` on loopback.

Run ``python benchmarks/service_load.py`` (``--uploads 20``, ``--workers 1``,
``--max-jobs-waiting 32``; ``--fast`` turns off test-time augmentation and the
orientation check, as the tests do). A real uvicorn server runs in a background
thread on a free loopback port with a fresh data folder; N clients upload the
same small phantom (a zip of its 4D NIfTI) at once, then poll until every
accepted job has finished. The table counts uploads, accepted, completed and
failed jobs, the error responses by status (only documented limits, 503 when
the queue is full, are expected), jobs lost (accepted but never listed or never
finished) and the wall time from the first upload to the last finished job.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from rich.console import Console
from rich.table import Table

from opencmr.phantom import PhantomConfig, make_phantom, write_phantom
from opencmr.service import ServiceConfig, create_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _phantom_zip(root: Path) -> bytes:
    config = PhantomConfig(n_frames=3, n_slices=6, matrix=(128, 128), inplane_samples=1, through_plane_samples=1)
    write_phantom(make_phantom(config), root / "phantom")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(root / "phantom" / "phantom_4d.nii.gz", "phantom_4d.nii.gz")
    return buffer.getvalue()


def _call(url: str, method: str = "GET", body: bytes | None = None, ctype: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": ctype} if ctype else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers, method=method), timeout=300) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except OSError as e:  # connection refused or reset: counted, never hidden
        return -1, str(e).encode()


def _upload(base: str, content: bytes) -> tuple[int, str | None]:
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="study.zip"\r\n\r\n'.encode()
        + content + f"\r\n--{boundary}--\r\n".encode()
    )
    status, reply = _call(f"{base}/studies", "POST", body, f"multipart/form-data; boundary={boundary}")
    return status, json.loads(reply)["id"] if status == 202 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-jobs-waiting", type=int, default=32)
    parser.add_argument("--fast", action="store_true", help="no TTA, no orientation check")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every job")
    args = parser.parse_args()

    import uvicorn

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        content = _phantom_zip(root)
        config = ServiceConfig(
            data_dir=root / "data", port=_free_port(), workers=args.workers, max_jobs_waiting=args.max_jobs_waiting,
            tta=not args.fast, orientation="off" if args.fast else "correct",
        )
        server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=config.port,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{config.port}"
        start = time.monotonic()
        with ThreadPoolExecutor(args.uploads) as pool:
            replies = list(pool.map(lambda _: _upload(base, content), range(args.uploads)))
        accepted = [job for status, job in replies if job is not None]
        errors = Counter(status for status, job in replies if job is None)
        states: dict[str, str] = {}
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            status, body = _call(f"{base}/studies")
            if status == 200:
                states = {j["id"]: j["status"] for j in json.loads(body)}
                if all(states.get(job) in ("done", "failed") for job in accepted):
                    break
            time.sleep(1)
        wall = time.monotonic() - start
        server.should_exit = True
        thread.join(timeout=30)

    done = sum(states.get(job) == "done" for job in accepted)
    failed = sum(states.get(job) == "failed" for job in accepted)
    lost = sum(states.get(job) not in ("done", "failed") for job in accepted)
    table = Table(title=f"opencmr serve: {args.uploads} concurrent uploads ({len(content) / 1024:.0f} KiB each), "
                  f"{args.workers} worker(s){', --fast' if args.fast else ''}")
    for column in ("uploads", "accepted (202)", "completed", "failed jobs", "lost", "errors by status", "wall s",
                   "jobs/min"):
        table.add_column(column, justify="right")
    table.add_row(
        str(args.uploads), str(len(accepted)), str(done), str(failed), str(lost),
        ", ".join(f"{s}: {n}" for s, n in sorted(errors.items())) or "none",
        f"{wall:.1f}", f"{60 * done / wall:.1f}",
    )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
