"""What ``opencmr serve`` is told: one frozen :class:`ServiceConfig`, checked when it is made."""

from __future__ import annotations

import ipaddress
import math
import os
from dataclasses import dataclass
from pathlib import Path

from opencmr.errors import OpenCMRError
from opencmr.qc.orientation_mode import orientation_mode

__all__ = ["ServiceConfig", "ServiceConfigError", "is_loopback", "read_token_file"]

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class ServiceConfigError(OpenCMRError):
    """The service cannot start with this configuration (the message says why and what to do)."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost).

    >>> is_loopback("127.0.0.1"), is_loopback("::1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, True, False)
    """
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def read_token_file(path: str | os.PathLike[str]) -> str:
    """The token in a file (surrounding whitespace removed).

    Raises
    ------
    ServiceConfigError
        The file cannot be read or is empty.
    """
    p = Path(path)
    try:
        token = p.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ServiceConfigError(f"{p}: cannot read the token file ({type(exc).__name__})") from None
    if not token:
        raise ServiceConfigError(f"{p}: the token file is empty")
    return token


@dataclass(frozen=True)
class ServiceConfig:
    """Configuration of the REST service and web viewer.

    Parameters
    ----------
    data_dir : Path
        Where uploads, results and one ``job.json`` per job are kept
        (``DATA_DIR/jobs/<id>/``); jobs found there are listed after a restart.
    host, port : str, int
        Address to listen on. Anything but loopback requires ``token``.
    token : str, optional
        Bearer token every API request must carry (``Authorization: Bearer
        TOKEN``); required off loopback, enforced on loopback when given.
    max_upload_mb : float
        Largest accepted request body; larger uploads get 413 before they are read.
    workers : int
        Analyses that run at once, each in its own process.
    max_jobs_waiting : int
        Jobs queued or running at most; further uploads get 503 with ``Retry-After``.
    max_files : int
        Most files in an uploaded zip.
    max_uncompressed_mb : float
        Largest total uncompressed size of an uploaded zip.
    max_compression_ratio : float
        Largest uncompressed/compressed ratio of any zip member and of the whole
        zip (zip bombs reach thousands; DICOM and NIfTI rarely exceed 20).
    max_image_mb : float
        Largest voxel data of one NIfTI image as its header declares it (a
        ``.nii.gz`` claiming more is refused before it is inflated).
    tta, orientation : bool, str
        Passed to :class:`~opencmr.analysis.AnalysisOptions`.
    torch_threads : int, optional
        PyTorch threads per analysis; default: the CPU count divided by ``workers``.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_upload_mb: float = 1024.0
    workers: int = 1
    max_jobs_waiting: int = 32
    max_files: int = 20000
    max_uncompressed_mb: float = 8192.0
    max_compression_ratio: float = 200.0
    max_image_mb: float = 2048.0
    tta: bool = True
    orientation: str = "correct"
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir))
        if self.token is not None and not self.token.strip():
            raise ServiceConfigError("the token is empty")
        if self.token is None and not is_loopback(self.host):
            raise ServiceConfigError(
                f"refusing to listen on {self.host!r} without a token: anyone who can reach it could upload studies "
                "and read results. Give --token TOKEN or --token-file FILE (clients then send "
                "'Authorization: Bearer TOKEN'), or listen on 127.0.0.1"
            )
        if not 0 < self.port < 65536:
            raise ServiceConfigError(f"port must be 1-65535, got {self.port}")
        for name in ("max_upload_mb", "max_uncompressed_mb", "max_compression_ratio", "max_image_mb"):
            if not (getattr(self, name) > 0 and math.isfinite(getattr(self, name))):
                raise ServiceConfigError(f"{name} must be a positive number, got {getattr(self, name)}")
        for name in ("workers", "max_jobs_waiting", "max_files"):
            if getattr(self, name) < 1:
                raise ServiceConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ServiceConfigError(f"torch_threads must be at least 1, got {self.torch_threads}")
        try:
            orientation_mode(self.orientation)
        except ValueError as exc:
            raise ServiceConfigError(str(exc)) from None

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def threads_per_job(self) -> int:
        """PyTorch threads each analysis uses."""
        if self.torch_threads is not None:
            return self.torch_threads
        return max(1, (os.cpu_count() or 1) // self.workers)

    def __repr__(self) -> str:  # never print the token
        token = None if self.token is None else "***"
        return (
            f"ServiceConfig(data_dir={str(self.data_dir)!r}, host={self.host!r}, port={self.port}, token={token}, "
            f"workers={self.workers}, max_upload_mb={self.max_upload_mb})"
        )
