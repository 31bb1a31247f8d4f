"""The in-plane orientation safety modes that ``analyze``, ``segment``, ``batch`` and the service accept.

A light module (no PyTorch), so that option parsing and configuration can
check a mode without loading the network code; what each mode does is
:func:`opencmr.qc.orientation.segment_oriented`'s.
"""

from __future__ import annotations

__all__ = ["ORIENTATION_MODES", "orientation_mode"]

#: ``"correct"`` (segment a transposed-looking study the way the network expects), ``"check"`` (refuse it), ``"off"``.
ORIENTATION_MODES = ("correct", "check", "off")


def orientation_mode(value: str, name: str = "orientation") -> str:
    """``value`` when it is one of :data:`ORIENTATION_MODES`; a ValueError naming ``name`` otherwise.

    An empty ``name`` leaves it out of the message (for callers that name the option themselves).

    >>> orientation_mode("check")
    'check'
    >>> orientation_mode("sideways", "--orientation")
    Traceback (most recent call last):
    ...
    ValueError: --orientation must be correct, check or off, not 'sideways'
    """
    if value not in ORIENTATION_MODES:
        problem = f"must be correct, check or off, not {value!r}"
        raise ValueError(f"{name} {problem}" if name else problem)
    return value
