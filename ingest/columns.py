"""Data payloads as columns: the fast path for well-formed messages, the contract's decoder for everything else.

``contract.payload.decode_batch`` checks each sample in a Python loop and builds a ``Sample`` per value — the
canonical, precise decoder. Most messages are entirely well-formed, so ``fast_columns`` parses a whole message
with a typed msgspec decoder, which checks every sample's shape and types in C while it parses (``int`` refuses
booleans and floats, ``float`` refuses booleans and out-of-range numbers, JSON has no NaN), and returns its four
columns without any per-sample Python object. A payload that passes also repeats no key (``_strings``), so only
the exact path looks for repeated keys (``reject_duplicate_keys``). What remains — the time window, the quality
range, finite values and valid signal names — is checked on whole columns (``min``/``max``) and on the message's
set of names against a cache of names already found valid. It accepts exactly what ``decode_batch`` would store
unchanged; on any doubt it returns None and ``decode_columns`` falls back to ``decode_batch``, whose rejects say
precisely what is wrong (``tests/test_ingest_columns.py`` checks the two agree).

Times, values and qualities leave here as numpy arrays: the conversion runs in the MQTT thread, overlapping
the writer's COPY, so the writer only concatenates arrays.
"""

from __future__ import annotations

import itertools
import json
import math
import sys
from typing import Any

import msgspec
import numpy as np

from datafactory.contract.names import is_valid_name
from datafactory.contract.payload import (
    CONTENT_FORMAT_V2,
    CONTENT_FORMATS,
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    SampleReject,
    decode_batch,
)
from datafactory.contract.sample import Sample
from datafactory.contract.values import FLOAT64_EXACT_INT, INT64_MIN, MAX_STRING_BYTES, UINT64_MAX
from datafactory.errors import ContractError

# Equal-length columns: signal names, times in µs since the Unix epoch (int64), values (float64; NaN only for a
# bad-quality marker without a value) and unsigned 32-bit status codes (int64).
Columns = tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]
EMPTY: Columns = ((), np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int64))
for _column in EMPTY[1:]:
    _column.flags.writeable = False  # shared by every message without samples
_U32 = 0xFFFFFFFF
_FLOAT_MAX = sys.float_info.max
# Signal names already found valid. A plant has thousands of signals, not millions; past the bound the cache
# starts afresh rather than grow with hostile traffic inventing names.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 100_000
_FLOATS = {float}
_NUMBERS = {float, int}


class _Envelope(msgspec.Struct):
    """A ``df-json/2`` (or ``/1``) message whose every sample is a full ``[name, time_us, value, quality]``."""

    fmt: str
    # Each JSON kind stays its own Python type: in df-json/2 the kind is the value's type.
    samples: list[tuple[str, int, float | int | str | bool, int]]
    gw: str | msgspec.UnsetType = msgspec.UNSET  # UNSET when absent: the quote count below needs to know
    seq: int | msgspec.UnsetType = msgspec.UNSET


_DECODER = msgspec.json.Decoder(_Envelope)
# Whatever the typed decoder refuses (including invalid UTF-8, which surfaces as UnicodeDecodeError) is left to
# the contract's decoder to explain.
_REFUSED = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, ValueError)


Typed = list[tuple[int, Sample]]  # (position in the message, sample) of samples with an int, bool or string value


def decode_columns(raw: bytes, *, min_us: int, max_us: int) -> tuple[Columns, Typed, list[SampleReject]]:
    """Decode a data message into float columns, typed samples and per-sample rejects; raises ``ContractError``
    like decode_batch."""
    fast = fast_decode(raw, min_us=min_us, max_us=max_us)
    if fast is not None:
        return fast[0], fast[1], []
    return exact_columns(raw, min_us=min_us, max_us=max_us)


def exact_columns(raw: bytes, *, min_us: int, max_us: int) -> tuple[Columns, Typed, list[SampleReject]]:
    """The contract's decoder: float64 values and value-less markers as columns, every other value (int, bool,
    string) as a ``Sample`` with its exact Python value, which the writer checks against the signal's declared
    type. Slower, and precise about every reject. A payload that repeats a key is refused whole
    (``fast_columns`` never takes one)."""
    reject_duplicate_keys(raw)
    decoded = decode_batch(raw, min_us=min_us, max_us=max_us)
    samples = decoded.batch.samples
    if not samples:
        return EMPTY, [], decoded.rejects
    kept = []
    typed: Typed = []
    rejected = {r.index for r in decoded.rejects}
    positions = (i for i in itertools.count() if i not in rejected)  # the samples' places among the items
    for sample in samples:
        position = next(positions)
        value = sample[2]
        if value is None:
            kept.append(sample._replace(value=math.nan))  # the bad-quality marker: NULL in storage
        elif type(value) is float:
            kept.append(sample)
        else:
            typed.append((position, sample))
    if not kept:
        return EMPTY, typed, decoded.rejects
    names, times, values, qualities = zip(*kept, strict=True)
    return _arrays(names, times, values, qualities), typed, decoded.rejects


def fast_columns(raw: bytes, *, min_us: int, max_us: int) -> Columns | None:
    """Columns of a message whose every sample is a valid ``[name, time_us, float, quality]``; else None."""
    fast = fast_decode(raw, min_us=min_us, max_us=max_us)
    return None if fast is None or fast[1] else fast[0]


def fast_decode(raw: bytes, *, min_us: int, max_us: int) -> tuple[Columns, Typed] | None:
    """Float columns and typed samples of a message whose every sample is a valid ``[name, time_us, value,
    quality]`` with a float, or (``df-json/2``) an int64/uint64, bool or bounded string value; else None."""
    if len(raw) > MAX_PAYLOAD_BYTES or raw[:1] != b"{":
        return None
    try:
        doc = _DECODER.decode(raw)
    except _REFUSED:
        return None
    items = doc.samples
    if doc.fmt not in CONTENT_FORMATS or not items or len(items) > MAX_SAMPLES_PER_BATCH:
        return None
    names, times, values, qualities = zip(*items, strict=True)
    all_names = names
    if min(times) < min_us or max(times) > max_us or min(qualities) < 0 or max(qualities) > _U32:
        return None
    kinds = set(map(type, values))
    typed: Typed = []
    text_values = 0
    if kinds != _FLOATS:
        if doc.fmt != CONTENT_FORMAT_V2:
            if not kinds <= _NUMBERS:
                return None  # df-json/1 has numbers only: the exact path explains the reject
        else:
            typed = [(i, Sample(*item)) for i, item in enumerate(items) if type(item[2]) is not float]
            for _, sample in typed:
                v = sample[2]
                if type(v) is int:
                    if not INT64_MIN <= v <= UINT64_MAX:
                        return None
                elif type(v) is str:
                    text_values += 1
                    if len(v) * 4 > MAX_STRING_BYTES and len(v.encode("utf-8")) > MAX_STRING_BYTES:
                        return None
            # One pass over the items, not one per column: the float samples, then their columns.
            floats = [item for item in items if type(item[2]) is float]
            names, times, values, qualities = zip(*floats, strict=True) if floats else ((), (), (), ())
    unique = set(all_names)
    if not unique <= _VALID_NAMES and not _learn_names(unique):
        return None
    if raw.count(b'"') != 2 * (_strings(doc, len(items)) + text_values):
        return None  # a repeated key, an unknown member or an escaped quote: the exact path decides
    if not values:
        return EMPTY, typed
    lowest, highest = min(values), max(values)
    if lowest < -_FLOAT_MAX or highest > _FLOAT_MAX:
        return None  # a df-json/1 integer beyond the float64 range
    # A df-json/1 integer is read as a float64 (the contract); beyond 2^53 the exact path says so precisely
    # (a float64 this large is rare and loses nothing by the detour). Compared on the Python numbers, which is
    # the same test as on their float64 conversions (rounding is monotone and 2^53 is exact) without a numpy pass.
    if -lowest >= FLOAT64_EXACT_INT or highest >= FLOAT64_EXACT_INT:
        return None
    return _arrays(names, times, values, qualities), typed


def _strings(doc: _Envelope, samples: int) -> int:
    """How many JSON strings the message holds if no key is repeated and there is no unknown member.

    Every string puts two quote characters in the payload (escaped quotes only add more) and, once the typed
    decode has passed, valid names contain no quote. A repeated key adds at least one string, so a payload
    with exactly twice this many quotes repeats no key — a check that costs one byte count, not a parse.
    """
    has_gw = doc.gw is not msgspec.UNSET
    has_seq = doc.seq is not msgspec.UNSET
    keys = 2 + has_gw + has_seq
    values = 1 + has_gw  # fmt's and gw's values; every sample has one string, its name
    return keys + values + samples


def _arrays(
    names: tuple[str, ...], times: tuple[int, ...], values: tuple[float, ...], qualities: tuple[int, ...]
) -> Columns:
    n = len(names)
    return (
        names,
        np.fromiter(times, np.int64, n),
        np.fromiter(values, np.float64, n),
        np.fromiter(qualities, np.int64, n),
    )


def _learn_names(names: set[str]) -> bool:
    """True if every name is valid, remembering them; False (remembering nothing) otherwise."""
    if not all(map(is_valid_name, names)):
        return False
    if len(_VALID_NAMES) + len(names) > _VALID_NAMES_MAX:
        _VALID_NAMES.clear()
    _VALID_NAMES.update(names)
    return True


def reject_duplicate_keys(raw: bytes) -> None:
    """Raise ``ContractError('duplicate_key')`` if any JSON object in the payload repeats a key: two parsers
    could otherwise read two different messages from it."""

    def check(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in pairs]
        if len(keys) != len(set(keys)):
            dup = next(k for k in keys if keys.count(k) > 1)
            raise ContractError("duplicate_key", f"key {dup!r} appears more than once in one object")
        return dict(pairs)

    try:
        json.loads(raw, object_pairs_hook=check)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return  # not JSON at all: the payload decoder says precisely why
