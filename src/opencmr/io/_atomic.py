"""Write outputs so that a failure never leaves a partial file that looks complete."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from opencmr.errors import OutputError

__all__ = ["atomic_output", "check_writable", "write_json"]


def _suffix(path: Path) -> str:
    name = path.name
    for double in (".nii.gz", ".tar.gz"):
        if name.endswith(double):
            return double
    return path.suffix


def check_writable(path: Path, overwrite: bool) -> None:
    """Raise :class:`OutputError` if ``path`` is a folder, or exists and may not be overwritten."""
    if path.is_dir():
        raise OutputError(path, "is a folder, not a file")
    if path.exists() and not overwrite:
        raise OutputError(path, "already exists (use --overwrite to replace it)")


@functools.cache
def _default_mode() -> int:
    """Permissions a plain ``open(path, "w")`` would give: 0o666 less the umask (read once)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextmanager
def atomic_output(path: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    The temporary file keeps the extension of ``path`` (so libraries that infer
    the format from it, like nibabel, behave the same) and is removed if the
    block raises. Without ``overwrite`` the final step is a hard link, which
    fails rather than replace a file that appeared in the meantime. The output
    gets the usual permissions (those of the file it replaces, or 0o666 less
    the umask), not the private mode of a temporary file.

    Raises
    ------
    OutputError
        ``path`` exists (and ``overwrite`` is False) or cannot be written.
    """
    target = Path(path)
    check_writable(target, overwrite)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp_name = tempfile.mkstemp(
            prefix=f".{target.name}.", suffix=".partial" + _suffix(target), dir=target.parent
        )
    except OSError as exc:
        raise OutputError(target, f"cannot be written ({exc.strerror or exc})") from exc
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        yield tmp
        mode = target.stat().st_mode & 0o7777 if target.exists() else _default_mode()
        os.chmod(tmp, mode)
        if overwrite:
            os.replace(tmp, target)
        else:
            try:
                os.link(tmp, target)
            except FileExistsError:
                raise OutputError(target, "already exists (use --overwrite to replace it)") from None
            except OSError:  # file systems without hard links
                check_writable(target, overwrite)
                os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _jsonable(value: object) -> object:
    """``json.dumps`` fallback: numpy scalars and arrays as Python numbers and lists, enums by value, else text."""
    import enum

    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy scalar or array
        return value.tolist()  # type: ignore[attr-defined]
    if isinstance(value, enum.Enum):
        return value.value
    return str(value)


def write_json(path: str | os.PathLike[str], data: object, overwrite: bool = False) -> Path:
    """Write ``data`` as indented JSON, atomically (numpy values and enums converted, see :func:`atomic_output`)."""
    target = Path(path)
    with atomic_output(target, overwrite) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=_jsonable) + "\n")
    return target
