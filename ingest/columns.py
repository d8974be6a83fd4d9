"""Data payloads as columns: the fast path for well-formed messages, the contract's decoder for everything else.

``contract.payload.decode_batch`` checks each sample in a Python loop and builds a ``Sample`` per value — the
canonical, precise decoder. Most messages are entirely well-formed, so ``fast_columns`` first checks a whole
message at once with C-level builtins (``zip``, ``map``, ``set``, ``min``/``max``) over the parsed JSON and
returns its four columns without any per-sample Python object. It accepts exactly what ``decode_batch`` would
store unchanged; on any doubt it returns None and ``decode_columns`` falls back to ``decode_batch``, whose
rejects say precisely what is wrong (``tests/test_ingest_columns.py`` checks the two agree).
"""

from __future__ import annotations

from typing import Any

import orjson

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
_NUMBER_TYPES = frozenset((int, float))
_U32 = 0xFFFFFFFF


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
        doc: Any = orjson.loads(raw)  # strict JSON: no NaN/Infinity, integers within 64 bits
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or doc.get("fmt") != CONTENT_FORMAT:
        return None
    items = doc.get("samples")
    if type(items) is not list or not items or len(items) > MAX_SAMPLES_PER_BATCH:
        return None
    if type(doc.get("gw", "")) is not str or type(doc.get("seq", 0)) is not int:
        return None
    if set(map(type, items)) != {list} or set(map(len, items)) != {4}:
        return None
    names, times, values, qualities = zip(*items, strict=True)
    if (
        set(map(type, names)) != {str}
        or set(map(type, times)) != {int}
        or set(map(type, qualities)) != {int}
        or not set(map(type, values)) <= _NUMBER_TYPES  # bool is its own type, so it falls back
    ):
        return None
    if min(times) < min_us or max(times) > max_us or min(qualities) < 0 or max(qualities) > _U32:
        return None
    if not all(map(is_valid_name, set(names))):
        return None
    return names, times, values, qualities
