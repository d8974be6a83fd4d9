"""Decode Sparkplug B payloads exactly: compressed envelopes, every 3.0 datatype, templates, properties.

``unwrap(raw)`` parses a payload and, when its ``uuid`` is ``SPBV1.0_COMPRESSED``, inflates the body (DEFLATE —
zlib-wrapped as Tahu writes it, or raw — or GZIP, chosen by the envelope's ``algorithm`` metric, DEFLATE when
absent) and parses the inner payload; it raises ``Undecodable`` naming what is wrong. The inflated size is
bounded (``MAX_INFLATED_BYTES``) so a compression bomb is refused, not expanded.

``metric_value(datatype, metric)`` turns one value into the exact Python value:

* Int8/Int16/Int32 arrive in the unsigned 32-bit ``int_value``. Common clients (Tahu Java and JavaScript) write
  a negative value as 32-bit two's complement (Int8 −1 → 0xFFFFFFFF); some C clients write it in the type's own
  width (Int8 −1 → 0xFF). Both read back as −1: a value ≥ 2³¹ is 32-bit two's complement, a value in
  [2^(bits−1), 2^bits) is bits-wide two's complement; anything else outside the type's range is refused.
* Int64 arrives as 64-bit two's complement in ``long_value``. UInt8/16/32/64 are range-checked; UInt32 (and any
  integer type) is accepted in either ``int_value`` or ``long_value`` because implementations differ.
* Float is the float32 widened exactly to a Python float; Double is bit-exact; Boolean a bool.
* String, Text and UUID are the string as sent. DateTime is the int milliseconds since the epoch, as sent.
* Bytes, File, DataSet, PropertySet(List) as a metric value and unknown datatypes are refused with a reason
  (dead-lettered by the adapter): they are not time-series values. Templates are flattened by ``flatten``.
* ``is_null`` → None.

``properties(metric)`` reads the metric's PropertySet into a plain dict (scalars only), from which the adapter
takes the engineering unit (keys ``engUnit``, ``engUnits``, ``unit``, ``units``) and the description
(``description``, ``documentation``, ``tooltip``), case-insensitively.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from gateway.sparkplug_proto import (
    BOOLEAN,
    BYTES,
    DATASET,
    DATATYPE_NAMES,
    DATETIME,
    DOUBLE,
    FILE,
    FLOAT,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    TEMPLATE,
    TEXT,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    UUID,
    Payload,
)

COMPRESSED_UUID = "SPBV1.0_COMPRESSED"
MAX_INFLATED_BYTES = 16 * 1024 * 1024
MAX_TEMPLATE_DEPTH = 8

_SIGNED_BITS = {INT8: 8, INT16: 16, INT32: 32, INT64: 64}
_UNSIGNED_BITS = {UINT8: 8, UINT16: 16, UINT32: 32, UINT64: 64, DATETIME: 64}
_STRINGS = {STRING, TEXT, UUID}
UNIT_KEYS = ("engunit", "engunits", "unit", "units")
DESCRIPTION_KEYS = ("description", "documentation", "tooltip")


class Undecodable(ValueError):
    """A payload or a metric value that cannot be read exactly. ``reason`` is a short code for counters."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def _parse(raw: bytes) -> Any:
    try:
        return Payload.FromString(raw)
    except DecodeError as err:
        raise Undecodable("not_protobuf", f"not a Sparkplug B payload: {err}") from err


def _inflate(body: bytes, wbits: int) -> bytes:
    d = zlib.decompressobj(wbits)
    out = d.decompress(body, MAX_INFLATED_BYTES)
    if d.unconsumed_tail:
        raise Undecodable("too_large", f"compressed body inflates past {MAX_INFLATED_BYTES} bytes")
    if not d.eof:
        raise zlib.error("truncated compressed body")
    return out


def unwrap(raw: bytes) -> Any:
    """The payload, with a compressed envelope (DEFLATE or GZIP) already unwrapped."""
    outer, inner = envelope(raw)
    return outer if inner is None else inner_payload(inner)


def envelope(raw: bytes) -> tuple[Any, bytes | None]:
    """The parsed payload and, when it is a compressed envelope, its inflated body (else None)."""
    outer = _parse(raw)
    if outer.uuid != COMPRESSED_UUID:
        return outer, None
    algorithm = "DEFLATE"
    for m in outer.metrics:
        if m.name == "algorithm" and m.WhichOneof("value") == "string_value":
            algorithm = m.string_value.upper()
    body = bytes(outer.body)
    try:
        if algorithm == "GZIP":
            inner = _inflate(body, 31)
        elif algorithm == "DEFLATE":
            try:
                inner = _inflate(body, 15)  # zlib-wrapped: what Tahu (Java's Deflater, JavaScript's pako) writes
            except zlib.error:
                inner = _inflate(body, -15)  # raw DEFLATE, as some clients write it
        else:
            raise Undecodable("unknown_compression", f"compression algorithm {algorithm!r} is not DEFLATE or GZIP")
    except zlib.error as err:
        raise Undecodable("bad_compression", f"{algorithm} body does not inflate: {err}") from err
    return outer, inner


def inner_payload(inner: bytes) -> Any:
    """The payload an envelope's inflated body holds (never another envelope)."""
    payload = _parse(inner)
    if payload.uuid == COMPRESSED_UUID:
        raise Undecodable("bad_compression", "a compressed payload inside a compressed payload")
    return payload


def _int_field(metric: Any, which: str | None, datatype: int) -> tuple[int, int]:
    """(value, width of the field it came in) for an integer datatype."""
    if which == "int_value":
        return int(metric.int_value), 32
    if which == "long_value":
        return int(metric.long_value), 64
    raise Undecodable("value_field_mismatch", f"{DATATYPE_NAMES[datatype]} value is in {which}, not an integer field")


def metric_value(datatype: int, metric: Any) -> object:
    """The exact value of a metric (or of a template parameter / property value) of ``datatype``."""
    if getattr(metric, "is_null", False):
        return None
    which = metric.WhichOneof("value")
    if which is None:
        raise Undecodable("no_value", f"{DATATYPE_NAMES.get(datatype, datatype)} metric has no value and no is_null")
    bits = _SIGNED_BITS.get(datatype)
    if bits is not None:
        raw, width = _int_field(metric, which, datatype)
        if raw >= 1 << (width - 1):
            raw -= 1 << width  # two's complement in the width of the field (Tahu's convention)
        elif bits < width and raw >= 1 << (bits - 1) and raw < 1 << bits:
            raw -= 1 << bits  # two's complement in the type's own width (some C clients)
        if not -(1 << (bits - 1)) <= raw < 1 << (bits - 1):
            raise Undecodable("out_of_range", f"{raw} does not fit {DATATYPE_NAMES[datatype]}")
        return raw
    bits = _UNSIGNED_BITS.get(datatype)
    if bits is not None:
        raw, _ = _int_field(metric, which, datatype)
        if raw >= 1 << bits:
            raise Undecodable("out_of_range", f"{raw} does not fit {DATATYPE_NAMES[datatype]}")
        return raw
    if datatype in (FLOAT, DOUBLE):
        if which not in ("float_value", "double_value"):
            raise Undecodable("value_field_mismatch", f"{DATATYPE_NAMES[datatype]} value is in {which}")
        return float(getattr(metric, which))
    if datatype == BOOLEAN:
        if which != "boolean_value":
            raise Undecodable("value_field_mismatch", f"Boolean value is in {which}")
        return bool(metric.boolean_value)
    if datatype in _STRINGS:
        if which != "string_value":
            raise Undecodable("value_field_mismatch", f"{DATATYPE_NAMES[datatype]} value is in {which}")
        return str(metric.string_value)
    if datatype in (BYTES, FILE):
        raise Undecodable("bytes_not_stored", f"{DATATYPE_NAMES[datatype]} metrics are not time-series values")
    if datatype == DATASET:
        raise Undecodable("dataset_not_stored", "DataSet metrics (tables) are not flattened into signals")
    name = DATATYPE_NAMES.get(datatype)
    raise Undecodable("unsupported_datatype", f"datatype {name or datatype} is not a time-series value")


def properties(metric: Any) -> dict[str, object]:
    """The metric's property set as {key: scalar value}; nested sets and unreadable values are left out."""
    if not metric.HasField("properties"):
        return {}
    out: dict[str, object] = {}
    ps = metric.properties
    for key, pv in zip(ps.keys, ps.values, strict=False):
        try:
            out[str(key)] = metric_value(int(pv.type), pv)
        except Undecodable:
            continue
    return out


def unit_and_description(props: dict[str, object]) -> tuple[str, str]:
    lower = {k.lower(): v for k, v in props.items() if isinstance(v, str)}
    unit = next((str(lower[k]) for k in UNIT_KEYS if k in lower), "")
    description = next((str(lower[k]) for k in DESCRIPTION_KEYS if k in lower), "")
    return unit, description


@dataclass(slots=True)
class Decoded:
    """One readable value: the metric's full name (template members as ``<template>/<member>``)."""

    name: str
    datatype: int
    value: object
    timestamp_ms: int | None
    props: dict[str, object] = field(default_factory=dict)


@dataclass(slots=True)
class Refused:
    name: str
    reason: str
    detail: str


def flatten(
    name: str, metric: Any, datatype: int, default_ts: int | None, *, out: list[Decoded], refused: list[Refused]
) -> None:
    """Append the metric's value(s) to ``out``: a template instance becomes one value per member metric (its
    parameters are left out); a template definition is a type, not a value, and is skipped."""
    ts = int(metric.timestamp) if metric.HasField("timestamp") else default_ts
    if datatype != TEMPLATE:
        try:
            out.append(Decoded(name, datatype, metric_value(datatype, metric), ts, properties(metric)))
        except Undecodable as err:
            refused.append(Refused(name, err.reason, err.detail))
        return
    if metric.is_null:
        out.append(Decoded(name, datatype, None, ts))
        return
    if metric.WhichOneof("value") != "template_value":
        refused.append(Refused(name, "value_field_mismatch", "Template value is not a template"))
        return
    _flatten_template(name, metric.template_value, ts, out=out, refused=refused, depth=1)


def _flatten_template(
    prefix: str, template: Any, ts: int | None, *, out: list[Decoded], refused: list[Refused], depth: int
) -> None:
    if template.is_definition:
        return
    if depth > MAX_TEMPLATE_DEPTH:
        refused.append(Refused(prefix, "template_too_deep", f"templates nested deeper than {MAX_TEMPLATE_DEPTH}"))
        return
    for member in template.metrics:
        if not member.HasField("name"):
            refused.append(Refused(prefix, "template_member_unnamed", "a template member metric has no name"))
            continue
        full = f"{prefix}/{member.name}"
        dt = int(member.datatype)
        mts = int(member.timestamp) if member.HasField("timestamp") else ts
        if dt == TEMPLATE and member.WhichOneof("value") == "template_value" and not member.is_null:
            _flatten_template(full, member.template_value, mts, out=out, refused=refused, depth=depth + 1)
        else:
            flatten(full, member, dt, mts, out=out, refused=refused)
