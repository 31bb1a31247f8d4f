"""Exceptions that carry a user-facing, one-line message.

Every reader raises :class:`InputError` naming the offending file and the
problem; the CLI prints ``error: <message>`` and exits with a non-zero code
instead of showing a traceback.
"""

from __future__ import annotations

from os import PathLike


class OpenCMRError(Exception):
    """Base class for errors whose message is meant for the user."""


class InputError(OpenCMRError):
    """An input file or folder cannot be used.

    Parameters
    ----------
    path : str or PathLike
        The file or folder at fault.
    problem : str
        What is wrong with it, in words a user can act on.
    """

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OutputError(OpenCMRError):
    """An output cannot be written (for example it exists and overwriting was not allowed)."""

    def __init__(self, path: str | PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def describe_exception(exc: BaseException, limit: int = 200) -> str:
    """``"TypeName: first line of the message"``, for wrapping a library's error in a one-line message."""
    lines = str(exc).strip().splitlines()
    text = f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
    return text[:limit]
