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
