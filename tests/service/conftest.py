"""A real uvicorn server in a thread, a small HTTP client over the standard library, tiny phantom uploads."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opencmr.phantom import PhantomConfig, make_phantom, write_phantom
from opencmr.service import ServiceConfig, create_app

TINY = PhantomConfig(n_frames=3, n_slices=4, matrix=(128, 128), inplane_samples=1, through_plane_samples=1, seed=1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``create_app(config)`` served by uvicorn in a background thread (stopped with :meth:`stop`)."""

    def __init__(self, config: ServiceConfig) -> None:
        import uvicorn

        self.config = config
        self.app = create_app(config)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host=config.host, port=config.port, log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{config.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.body)


def request(url: str, method: str = "GET", body: bytes | None = None, headers: dict[str, str] | None = None,
            timeout: float = 120) -> Reply:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Reply(r.status, r.read(), {k.lower(): v for k, v in r.headers.items()})
    except urllib.error.HTTPError as e:
        return Reply(e.code, e.read(), {k.lower(): v for k, v in e.headers.items()})


def multipart(filename: str, content: bytes, fields: dict[str, str] | None = None) -> tuple[bytes, str]:
    """A multipart/form-data body with one 'file' part and text fields; (body, content type)."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in (fields or {}).items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
    )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def upload(base: str, filename: str, content: bytes, fields: dict[str, str] | None = None,
           headers: dict[str, str] | None = None) -> Reply:
    body, ctype = multipart(filename, content, fields)
    return request(f"{base}/studies", "POST", body, {"Content-Type": ctype, **(headers or {})})


def wait_done(base: str, job_id: str, timeout: float = 600, headers: dict[str, str] | None = None) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = request(f"{base}/studies/{job_id}", headers=headers).json()
        if doc["status"] in ("done", "failed"):
            return doc
        time.sleep(0.5)
    raise TimeoutError(f"job {job_id} did not finish in {timeout} s")


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def phantom_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("service-phantom") / "phantom"
    write_phantom(make_phantom(TINY), folder)
    return folder


@pytest.fixture(scope="session")
def phantom_zip(phantom_folder: Path) -> bytes:
    """A zip of the tiny phantom's 4D NIfTI cine, as a user would upload it."""
    return zip_bytes({"study/phantom_4d.nii.gz": (phantom_folder / "phantom_4d.nii.gz").read_bytes()})


def service_config(data_dir: Path, **changes: Any) -> ServiceConfig:
    """A loopback configuration that keeps tests cheap (no TTA, no orientation check, one worker)."""
    values: dict[str, Any] = {
        "data_dir": data_dir, "port": free_port(), "tta": False, "orientation": "off", "workers": 1, "torch_threads": 1
    }
    values.update(changes)
    return ServiceConfig(**values)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(service_config(tmp_path_factory.mktemp("serve-data"), max_upload_mb=2, max_jobs_waiting=4))
    yield running
    running.stop()
