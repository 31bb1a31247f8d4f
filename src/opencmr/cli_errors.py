"""``cli_errors``: the CLI's error handling for commands defined outside :mod:`opencmr.cli`.

:mod:`opencmr.cli` imports the modules holding the ``meta``, ``batch``,
``serve`` and evaluation commands to register them. To keep that import one-way, those
modules never import :mod:`opencmr.cli` at import time: :func:`cli_errors`
looks ``opencmr.cli._user_errors`` up when a command runs (by then
``opencmr.cli`` is fully loaded, whichever module was imported first).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["cli_errors"]

F = TypeVar("F", bound=Callable[..., Any])


def cli_errors(func: F) -> F:
    """``opencmr.cli._user_errors`` applied at call time (one-line errors, exit code 1, ``--debug``)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from opencmr.cli import _user_errors

        return _user_errors(func)(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
