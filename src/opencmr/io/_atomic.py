"""Write outputs so that a failure never leaves a partial file that looks complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opencmr.errors import OutputError

__all__ = ["atomic_output", "check_writable"]


def _suffix(path: Path) -> str:
    name = path.name
    for double in (".nii.gz", ".tar.gz"):
        if name.endswith(double):
            return double
    return path.suffix


def check_writable(path: Path, overwrite: bool) -> None:
    """Raise :class:`OutputError` if ``path`` exists and may not be overwritten."""
    if path.exists() and not overwrite:
        raise OutputError(path, "already exists (use --overwrite to replace it)")
    if path.exists() and path.is_dir():
        raise OutputError(path, "is a folder, not a file")


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary file keeps the extension of ``path`` (so libraries that infer
    the format from it, like nibabel, behave the same), and is removed if the
    block raises.
    """
    target = Path(path)
    check_writable(target, overwrite)
    if not target.parent.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial" + _suffix(target), dir=target.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
