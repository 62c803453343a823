"""One warning per process per bridge: a misconfiguration is said once, and never raised into a logging call."""

from __future__ import annotations

import contextlib
import warnings
from typing import Final

__all__ = ["warn_once", "warned"]

warned: Final[set[str]] = set()
"""The bridges that have warned in this process."""


def warn_once(bridge: str, message: str) -> None:
    """Warn *message* as a ``RuntimeWarning``, unless *bridge* already warned in this process."""
    if bridge in warned:
        return
    warned.add(bridge)
    with contextlib.suppress(Exception):  # a warnings filter set to "error" must not fail the caller
        warnings.warn(message, RuntimeWarning, stacklevel=3)
