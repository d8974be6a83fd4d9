"""Typed sample values: what a device sends is what the platform keeps.

A sample's value is one of five kinds, and each signal declares one ``SignalType``:

=========  ==============  =====================================================================
type       Python value    range
=========  ==============  =====================================================================
float64    ``float``       finite IEEE 754 binary64 (JSON has no NaN/Infinity)
int64      ``int``         −2^63 … 2^63−1, exact
uint64     ``int``         0 … 2^64−1, exact (64-bit counters)
bool       ``bool``        true / false
string     ``str``         UTF-8, at most ``MAX_STRING_BYTES`` encoded bytes
=========  ==============  =====================================================================

``None`` is "no value" and is only valid with a bad-severity quality (a comm-lost marker). ``bool`` is tested
before ``int`` everywhere because Python's ``bool`` is an ``int`` subclass. ``value_problem`` is the one check
of a value against the contract, ``type_problem`` the one check against a signal's declared type.
"""

from __future__ import annotations

import math
from enum import StrEnum

Value = float | int | bool | str | None

INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1
UINT64_MAX = (1 << 64) - 1
# Recipe names, order numbers, alarm texts and operator ids fit easily; a bound keeps one sample from being a
# document. Counted in encoded UTF-8 bytes, the unit storage and the message-size limit are measured in.
MAX_STRING_BYTES = 1024
# Integers a float64 holds exactly: a float64 signal accepts an integer JSON number only inside this range.
FLOAT64_EXACT_INT = 1 << 53


class SignalType(StrEnum):
    FLOAT64 = "float64"
    INT64 = "int64"
    UINT64 = "uint64"
    BOOL = "bool"
    STRING = "string"


def kind_of(value: Value) -> str:
    """The contract's name for a value's kind: float64, integer, bool, string or null."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "bool"
    if type(value) is int:
        return "integer"
    if type(value) is float:
        return "float64"
    if type(value) is str:
        return "string"
    return type(value).__name__


def value_problem(value: object) -> tuple[str, str] | None:
    """(reason, detail) if ``value`` is no valid contract value (ignoring declared types), else None."""
    t = type(value)
    if t is float:
        if not math.isfinite(value):  # type: ignore[arg-type]
            return "non_finite", f"value {value} is not finite"
        return None
    if t is bool or value is None:
        return None
    if t is int:
        if not INT64_MIN <= value <= UINT64_MAX:  # type: ignore[operator]
            return "out_of_range", f"integer of {value.bit_length()} bits is outside -2^63 … 2^64-1"  # type: ignore[attr-defined]
        return None
    if t is str:
        size = len(value.encode("utf-8", "surrogatepass"))  # type: ignore[attr-defined]
        if size > MAX_STRING_BYTES:
            return "string_too_long", f"string of {size} UTF-8 bytes; the limit is {MAX_STRING_BYTES}"
        return None
    return "wrong_type", f"value must be a number, boolean, string or null, got {t.__name__}"


def type_problem(declared: SignalType, value: Value) -> str | None:
    """Why ``value`` does not fit a signal declared ``declared`` (None = it fits). A null always fits: whether
    it is allowed depends on the quality, which the payload decoder checks."""
    if value is None:
        return None
    t = type(value)
    if declared is SignalType.FLOAT64:
        if t is float or (t is int and -FLOAT64_EXACT_INT <= value <= FLOAT64_EXACT_INT):  # type: ignore[operator]
            return None
    elif declared is SignalType.INT64:
        if t is int and INT64_MIN <= value <= INT64_MAX:  # type: ignore[operator]
            return None
    elif declared is SignalType.UINT64:
        if t is int and 0 <= value <= UINT64_MAX:  # type: ignore[operator]
            return None
    elif declared is SignalType.BOOL:
        if t is bool:
            return None
    elif t is str:
        return None
    return f"a {kind_of(value)} value {value!r:.40} does not fit the declared type {declared.value}"


def infer_type(value: Value) -> SignalType | None:
    """The narrowest declared type a value implies (None for null): what an undeclared signal is first seen as."""
    t = type(value)
    if t is float:
        return SignalType.FLOAT64
    if t is bool:
        return SignalType.BOOL
    if t is int:
        return SignalType.INT64 if value <= INT64_MAX else SignalType.UINT64  # type: ignore[operator]
    if t is str:
        return SignalType.STRING
    return None
