"""Data payloads as columns: the fast path for well-formed messages, the contract's decoder for everything else.

``contract.payload.decode_batch`` checks each sample in a Python loop and builds a ``Sample`` per value — the
canonical, precise decoder. Most messages are entirely well-formed, so ``fast_columns`` parses a whole message
with a typed msgspec decoder, which checks every sample's shape and types in C while it parses (``int`` refuses
booleans and floats, ``float`` refuses booleans and out-of-range numbers, JSON has no NaN), and returns its four
columns without any per-sample Python object. What remains — the time window, the quality range, finite values
and valid signal names — is checked on whole columns (``min``/``max``) and on the message's set of names against
a cache of names already found valid. It accepts exactly what ``decode_batch`` would store unchanged; on any
doubt it returns None and ``decode_columns`` falls back to ``decode_batch``, whose rejects say precisely what is
wrong (``tests/test_ingest_columns.py`` checks the two agree).
"""

from __future__ import annotations

import sys

import msgspec

from datafactory.contract.names import is_valid_name
from datafactory.contract.payload import (
    CONTENT_FORMAT,
    MAX_PAYLOAD_BYTES,
    MAX_SAMPLES_PER_BATCH,
    SampleReject,
    decode_batch,
)

# names, time_us, value, unsigned quality — equal-length tuples
Columns = tuple[tuple[str, ...], tuple[int, ...], tuple[float, ...], tuple[int, ...]]
EMPTY: Columns = ((), (), (), ())
_U32 = 0xFFFFFFFF
_FLOAT_MAX = sys.float_info.max
# Signal names already found valid. A plant has thousands of signals, not millions; past the bound the cache
# starts afresh rather than grow with hostile traffic inventing names.
_VALID_NAMES: set[str] = set()
_VALID_NAMES_MAX = 100_000


class _Envelope(msgspec.Struct):
    """A ``df-json/1`` message whose every sample is a full ``[name, time_us, value, quality]``."""

    fmt: str
    samples: list[tuple[str, int, float, int]]
    gw: str = ""
    seq: int = 0


_DECODER = msgspec.json.Decoder(_Envelope)
# Whatever the typed decoder refuses (including invalid UTF-8, which surfaces as UnicodeDecodeError) is left to
# the contract's decoder to explain.
_REFUSED = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, ValueError)


def decode_columns(raw: bytes, *, min_us: int, max_us: int) -> tuple[Columns, list[SampleReject]]:
    """Decode a data message into columns and per-sample rejects; raises ``ContractError`` like decode_batch."""
    fast = fast_columns(raw, min_us=min_us, max_us=max_us)
    if fast is not None:
        return fast, []
    decoded = decode_batch(raw, min_us=min_us, max_us=max_us)
    samples = decoded.batch.samples
    columns: Columns = tuple(zip(*samples, strict=True)) if samples else EMPTY  # type: ignore[assignment]
    return columns, decoded.rejects


def fast_columns(raw: bytes, *, min_us: int, max_us: int) -> Columns | None:
    """Columns of a message whose every sample is a valid ``[name, time_us, number, quality]``; else None."""
    if len(raw) > MAX_PAYLOAD_BYTES or raw[:1] != b"{":
        return None
    try:
        doc = _DECODER.decode(raw)
    except _REFUSED:
        return None
    items = doc.samples
    if doc.fmt != CONTENT_FORMAT or not items or len(items) > MAX_SAMPLES_PER_BATCH:
        return None
    names, times, values, qualities = zip(*items, strict=True)
    if min(times) < min_us or max(times) > max_us or min(qualities) < 0 or max(qualities) > _U32:
        return None
    if min(values) < -_FLOAT_MAX or max(values) > _FLOAT_MAX:  # msgspec refuses these; kept as a guarantee
        return None
    unique = set(names)
    if not unique <= _VALID_NAMES and not _learn_names(unique):
        return None
    return names, times, values, qualities


def _learn_names(names: set[str]) -> bool:
    """True if every name is valid, remembering them; False (remembering nothing) otherwise."""
    if not all(map(is_valid_name, names)):
        return False
    if len(_VALID_NAMES) + len(names) > _VALID_NAMES_MAX:
        _VALID_NAMES.clear()
    _VALID_NAMES.update(names)
    return True
