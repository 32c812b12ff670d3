"""JSON annotation files read without trusting their numbers.

``json.loads`` turns an integer literal into a Python int of any size (``10**400`` later raises
OverflowError wherever it meets ``float``), refuses one of more than 4,300 digits with a bare
ValueError (Python's int-string limit, even in a field nobody reads), and reads ``NaN``,
``Infinity`` and ``1e999`` as non-finite floats. Every annotation JSON the project reads goes
through ``loads`` here: a number that is not a finite float in range refuses the whole file with
``JsonError``, so each reader sees only finite numbers. ``number`` and ``is_int`` apply the same
rule to documents built in memory (and refuse ``true``, which Python counts as the int 1);
``numbers`` to a whole list at once.
"""

from __future__ import annotations

import json
import math
import sys

_SAFE_DIGITS = len(str(int(sys.float_info.max))) - 1  # any integer literal this long is below float's max


class JsonError(ValueError):
    """Bytes that are not UTF-8 JSON with finite numbers only; the message says what is wrong."""


def _shown(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-6:]} ({len(text):,} characters)"


def _int(text: str) -> int:
    """An integer literal, refused when float cannot hold it (checked before ``int`` meets a huge string)."""
    if len(text) <= _SAFE_DIGITS:
        return int(text)
    if math.isfinite(float(text)):
        return int(text)
    raise JsonError(f"the integer {_shown(text)} is out of range (beyond {sys.float_info.max:.4g})")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JsonError(f"the number {_shown(text)} is out of range (not a finite float)")
    return value


def _constant(text: str) -> float:
    raise JsonError(f"{text} is not a number JSON allows (not a finite float)")


def loads(data: bytes | str) -> object:
    """A JSON document (UTF-8, a leading byte-order mark dropped) whose every number is finite and in range."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        return json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except JsonError:
        raise
    except UnicodeDecodeError as exc:
        raise JsonError(f"not valid UTF-8 ({exc.reason} at byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise JsonError(f"not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno})") from exc
    except RecursionError as exc:
        raise JsonError("not valid JSON (nested too deeply)") from exc
    except ValueError as exc:  # any other refusal of a literal by Python's own conversions
        raise JsonError(f"not valid JSON ({type(exc).__name__})") from exc


def is_int(value: object) -> bool:
    """An integer that is not a bool (``True`` is the int 1 to ``isinstance``, never an id here)."""
    return isinstance(value, int) and not isinstance(value, bool)


def number(value: object) -> float | None:
    """``value`` as a finite float, or None when it is not a JSON number in float's range (bools,
    strings, ``nan``, ``inf``, ints beyond ``1.8e308``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        out = float(value)
    except OverflowError:
        return None
    return out if math.isfinite(out) else None


def numbers(values: list) -> tuple[float, ...] | None:
    """``number`` over a whole list at C speed (a COCO export holds millions of coordinates): the
    finite floats, or None when any value is not a number in float's range."""
    if not set(map(type, values)) <= {int, float}:  # the slow way for anything else: bools, strings, subclasses
        out = tuple(number(v) for v in values)
        return None if None in out else out
    try:
        out = tuple(map(float, values))
    except OverflowError:
        return None
    return out if all(map(math.isfinite, out)) else None


__all__ = ["JsonError", "loads", "is_int", "number", "numbers"]
