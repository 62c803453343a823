"""orjson for the extras it writes exactly as ``json`` does, and faster (the ``orjson`` extra).

A fapilog line is written field by field (see ``jsonline``), so the only work
left to a JSON library is an ``extra`` that is a ``dict`` or a ``list``; orjson
is faster at that than ``json`` from about eight items on, when they are
plain. Its output differs from ``json``'s for some values, and a line must
not depend on which encoder wrote it, so orjson only gets:

- a ``dict`` (``str`` keys), ``list`` or ``tuple`` of at least ``MIN_ITEMS``
  items, each a ``str``, ``int``, ``bool``, ``None`` or a float that both
  write alike (zero, or finite and at least 1e-4 in magnitude: orjson writes
  ``1e-05`` as ``0.00001``, and NaN as ``null``); nested containers,
  subclasses, enums (orjson writes their value), dates... go to ``json``;
- and its output only when it is ASCII without DEL (``json`` escapes
  non-ASCII and DEL; orjson writes them raw); an int beyond 64 bits or a lone
  surrogate makes orjson raise, and ``json`` writes the value instead.

Imported only when a formatter asks for ``encoder="orjson"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Final

import orjson

from fapilog._internal import jsonline

__all__ = ["MIN_ITEMS", "value"]

MIN_ITEMS: Final = 8
"""Below this, json's C encoder (built once, see ``jsonline``) is as fast: orjson's checks cost more than they save."""

_PLAIN: Final[frozenset[type]] = frozenset({str, int, bool, type(None)})
_PLAIN_OR_FLOAT: Final = _PLAIN | {float}
_KEYS: Final[frozenset[type]] = frozenset({str})
_SMALLEST: Final = 1e-4  # below it, repr() switches to 1e-05 and orjson does not


def _plain(items: Iterable[object]) -> bool:
    """Return whether every item of a flat container is one orjson writes exactly as json does."""
    types = set(map(type, items))
    if types <= _PLAIN:
        return True
    if not types <= _PLAIN_OR_FLOAT:
        return False
    return all(item == 0 or _SMALLEST <= abs(item) < math.inf for item in items if type(item) is float)


def _dumps(item: object) -> str | None:
    """Return orjson's JSON for *item*, or ``None`` where it would not be json's."""
    try:
        written = orjson.dumps(item)
    except TypeError:  # orjson.JSONEncodeError is one: an int past 64 bits, a lone surrogate
        return None
    return written.decode("ascii") if written.isascii() and b"\x7f" not in written else None


def value(item: object) -> str:
    """Return *item* as JSON text, byte for byte as ``jsonline.value`` would, by orjson where that is faster."""
    written = None
    if type(item) is dict:
        if len(item) >= MIN_ITEMS and set(map(type, item)) <= _KEYS and _plain(item.values()):
            written = _dumps(item)
    elif type(item) is list or type(item) is tuple:
        if len(item) >= MIN_ITEMS and _plain(item):
            written = _dumps(item)
    return jsonline.value(item) if written is None else written
