"""Batched payloads, formats ``df-json/2`` (typed values, what encoders write) and ``df-json/1`` (still read).

One MQTT message carries many samples of one cell (as Sparkplug B does): per-sample messages cap near 20k/s,
batches of ~100 samples reach 10× that. Data messages::

    {"fmt": "df-json/2", "gw": "gw-1", "seq": 42,
     "samples": [["spindle_power", 1732350000123456, 12.5, 0], ["count", 1732350000123456, 18446744073709551615, 0],
                 ["running", 1732350000123456, true, 0], ["order", 1732350000123456, "A-17", 0]]}

each sample exactly ``[signal, time_us, value, quality]`` (fixed arity) — ``time_us`` integer µs since the Unix
epoch (UTC); ``value`` typed by its JSON kind (see ``contract.values``): a number with a fraction or exponent
is a float64, an integer an exact int64/uint64, ``true``/``false`` a bool, a string a UTF-8 string of at most
``MAX_STRING_BYTES``, ``null`` no value (only with a bad quality, e.g. a comm-lost marker); ``quality`` an
OPC-UA StatusCode. ``df-json/1`` is the same with numbers (read as float64) and null only; its old
optional-quality form ``[signal, time_us, value]`` is refused (``ambiguous_sample``): it cannot be told apart
from a sample whose value is missing. Meta messages (retained) define the cell's signals and their types::

    {"fmt": "df-meta/1", "gw": "gw-1", "cell": {"ideal_cycle_time_s": 2.0},
     "signals": [{"name": "power", "meaning": "power_kw", "unit": "kW", "type": "float64"}]}

A meta larger than ``MAX_MESSAGE_BYTES`` (a cell with 20,000 signals) is paged (``encode_meta_pages``): each page
is a complete meta message with ``"page": [k, n]``, the cell attributes and a share of the signals, retained on
``…/meta`` (page 1) and ``…/meta/k``.

The retained config topic carries ``{"fmt": "df-config/1", "version": "<hash>", "config": {...plant config...}}``.

The format is named in the payload so a binary format can follow; a binary payload will not start with ``{``.
JSON Schema: ``payload.schema.json`` beside this module. ``MAX_MESSAGE_BYTES`` is the one size limit of a
message: the broker config we ship, ingest and the gateway all enforce it.

Decoding validates once per message and per sample with plain Python checks (no pydantic on the hot path).
A malformed message raises ``ContractError``; bad samples inside a good message are returned as rejects so the
good samples around them are still stored.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import orjson

from datafactory.contract.meanings import Meaning
from datafactory.contract.names import is_valid_name
from datafactory.contract.quality import Severity, is_status_code, severity
from datafactory.contract.sample import Sample, SampleRow
from datafactory.contract.topics import MAX_META_PAGES
from datafactory.contract.values import SignalType, Value, value_problem
from datafactory.errors import ContractError

CONTENT_FORMAT_V1 = "df-json/1"
CONTENT_FORMAT_V2 = "df-json/2"
CONTENT_FORMAT = CONTENT_FORMAT_V2  # what the encoders write
CONTENT_FORMATS = (CONTENT_FORMAT_V2, CONTENT_FORMAT_V1)
META_FORMAT = "df-meta/1"
CONFIG_FORMAT = "df-config/1"
# Mosquitto's default message_size_limit is 256 MB; ours is the contract's bound so a hostile payload is
# rejected before it is parsed.
MAX_MESSAGE_BYTES = 1_048_576
MAX_PAYLOAD_BYTES = MAX_MESSAGE_BYTES  # the older name, kept for its importers
# MQTT 5 Maximum Packet Size that ingest announces in CONNECT: the limit counts the whole PUBLISH packet, so the
# payload limit plus the largest topic (65,535 bytes and its length) and room for the fixed header, packet id and
# properties. The broker never sends ingest a packet beyond it; a payload between the two limits still arrives
# and is dead-lettered as oversized (its first bytes kept), so both sides of the limit are visible.
MAX_PACKET_BYTES = MAX_MESSAGE_BYTES + 65_537 + 4096
MAX_SAMPLES_PER_BATCH = 10_000
# A JSON integer beyond this cannot become a float64 (float() would raise OverflowError).
_FLOAT_MAX = sys.float_info.max


@dataclass(slots=True)
class Batch:
    samples: list[Sample]
    gateway: str = ""
    seq: int = 0


@dataclass(frozen=True, slots=True)
class SampleReject:
    """A sample that cannot be stored, with the reason code and a human-readable detail."""

    index: int
    reason: str
    detail: str
    raw: Any


@dataclass(slots=True)
class DecodedBatch:
    batch: Batch
    rejects: list[SampleReject] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class SignalMeta:
    name: str
    meaning: Meaning = Meaning.GENERIC
    unit: str = ""
    description: str = ""
    type: SignalType = SignalType.FLOAT64


@dataclass(slots=True)
class CellMeta:
    signals: list[SignalMeta]
    gateway: str = ""
    # Cell attributes from the plant config (name, ideal_cycle_time_s, machine_class, target_rate_per_hour).
    attributes: dict[str, Any] = field(default_factory=dict)


# msgspec writes a NamedTuple such as Sample as the array it is, natively: a third of the time orjson needs, which
# hands every tuple subclass to a Python-level ``default`` (measured: 54 vs 192 ns per sample). It writes every
# non-finite float as null, as orjson does. Its floats are the same shortest round-trip digits (only the exponent's
# spelling differs: 1e22, not 1e+22).
_BATCH_ENCODER = msgspec.json.Encoder()


def encode_batch(samples: Sequence[SampleRow], *, gateway: str = "", seq: int = 0) -> bytes:
    """A ``df-json/2`` message. A NaN value (the older in-memory comm-lost marker) is written as null, so the rows
    go out as they are (a per-sample check cost half the encoding time)."""
    return _BATCH_ENCODER.encode({"fmt": CONTENT_FORMAT, "gw": gateway, "seq": seq, "samples": samples})


def _signal_doc(s: SignalMeta) -> dict[str, str]:
    return {
        "name": s.name,
        "meaning": str(s.meaning),
        "unit": s.unit,
        "description": s.description,
        "type": s.type.value,
    }


def encode_meta(
    signals: list[SignalMeta],
    *,
    gateway: str = "",
    attributes: dict[str, Any] | None = None,
    page: tuple[int, int] | None = None,
) -> bytes:
    doc: dict[str, Any] = {
        "fmt": META_FORMAT,
        "gw": gateway,
        "cell": attributes or {},
        "signals": [_signal_doc(s) for s in signals],
    }
    if page is not None:
        doc["page"] = list(page)
    return orjson.dumps(doc)


def encode_meta_pages(
    signals: list[SignalMeta],
    *,
    gateway: str = "",
    attributes: dict[str, Any] | None = None,
    limit: int = MAX_MESSAGE_BYTES,
) -> list[bytes]:
    """A cell's meta as messages of at most ``limit`` bytes: one message (no ``page``) when it fits, else pages
    ``[k, n]`` that each carry the cell attributes and a share of the signals, for ``CellPath.meta_page_topic(k)``.

    A meta too large for ``MAX_META_PAGES`` pages, or one signal too large for a message, raises ContractError
    ``oversized``: the caller must say so rather than publish what ingest would dead-letter.
    """
    whole = encode_meta(signals, gateway=gateway, attributes=attributes)
    if len(whole) <= limit:
        return [whole]
    widest = (MAX_META_PAGES, MAX_META_PAGES)
    budget = limit - len(encode_meta([], gateway=gateway, attributes=attributes, page=widest))
    groups: list[list[SignalMeta]] = [[]]
    used = 0
    for s in signals:
        size = len(orjson.dumps(_signal_doc(s))) + 1  # and its comma
        if size > budget:
            raise ContractError("oversized", f"meta of signal {s.name!r} alone is {size} bytes; the limit is {limit}")
        if used + size > budget:
            groups.append([])
            used = 0
        groups[-1].append(s)
        used += size
    if len(groups) > MAX_META_PAGES:
        raise ContractError("oversized", f"meta needs {len(groups)} pages of {limit} bytes; at most {MAX_META_PAGES}")
    n = len(groups)
    return [encode_meta(g, gateway=gateway, attributes=attributes, page=(k, n)) for k, g in enumerate(groups, 1)]


def _load(raw: bytes) -> Any:
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload is {len(raw)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    if not raw:
        raise ContractError("malformed_json", "payload is empty")
    if raw[:1] != b"{":
        raise ContractError("bad_format", f"payload starts with {raw[:1]!r}; only {CONTENT_FORMAT} is supported")
    try:
        # msgspec keeps every JSON integer exact (orjson would read one beyond 64 bits as a rounded float).
        return msgspec.json.decode(raw)
    except RecursionError as err:
        raise ContractError("too_deep", "payload nests deeper than the JSON parser allows") from err
    except (msgspec.DecodeError, UnicodeDecodeError) as err:
        # msgspec follows RFC 8259 strictly. Python's json also accepts NaN/Infinity literals; parse those so the
        # finite samples in the message are kept and only the non-finite ones are dead-lettered.
        try:
            return json.loads(raw)
        except RecursionError as deep:
            raise ContractError("too_deep", "payload nests deeper than the JSON parser allows") from deep
        except (ValueError, UnicodeDecodeError):
            raise ContractError("malformed_json", f"not valid JSON: {err}") from err


def decode_batch(raw: bytes, *, min_us: int | None = None, max_us: int | None = None) -> DecodedBatch:
    """Decode a data message. ``min_us``/``max_us`` bound plausible sample times (absurd timestamps are rejected)."""
    doc = _load(raw)
    if not isinstance(doc, dict):
        raise ContractError("bad_envelope", f"payload is a JSON {type(doc).__name__}, expected an object")
    fmt = doc.get("fmt")
    if fmt not in CONTENT_FORMATS:
        raise ContractError("bad_format", f"fmt is {fmt!r}, expected one of {', '.join(CONTENT_FORMATS)}")
    typed = fmt == CONTENT_FORMAT_V2
    items = doc.get("samples")
    if not isinstance(items, list):
        raise ContractError("bad_envelope", "'samples' is missing or not an array")
    if len(items) > MAX_SAMPLES_PER_BATCH:
        raise ContractError("oversized", f"{len(items)} samples in one message; the limit is {MAX_SAMPLES_PER_BATCH}")
    gateway = doc.get("gw", "")
    seq = doc.get("seq", 0)
    if not isinstance(gateway, str) or not isinstance(seq, int) or isinstance(seq, bool):
        raise ContractError("bad_envelope", "'gw' must be a string and 'seq' an integer")
    samples: list[Sample] = []
    rejects: list[SampleReject] = []
    append = samples.append
    for i, item in enumerate(items):
        # Fast path: the common, well-formed float sample passes these checks in a handful of bytecodes.
        if type(item) is list and len(item) == 4:
            name, t, v, q = item
            if (
                type(name) is str
                and type(t) is int
                and type(v) is float
                and type(q) is int
                and (min_us is None or t >= min_us)
                and (max_us is None or t <= max_us)
                and 0 <= q <= 0xFFFFFFFF
                and math.isfinite(v)
                and is_valid_name(name)
            ):
                append(Sample(name, t, v, q))
                continue
        reject, value = _explain(i, item, min_us, max_us, typed=typed)
        if reject is None:
            append(Sample(item[0], item[1], value, item[3]))
        else:
            rejects.append(reject)
    return DecodedBatch(Batch(samples, gateway, seq), rejects)


def _explain(
    i: int, item: Any, min_us: int | None, max_us: int | None, *, typed: bool
) -> tuple[SampleReject | None, Value]:
    """Say precisely why a sample failed the fast path, or return (None, value) for a valid sample the fast path
    does not take: a typed value, a df-json/1 integer (read as float64) or a null-value marker."""
    if isinstance(item, list) and len(item) == 3 and not typed:
        detail = "df-json/1 [signal, time_us, value] cannot be told from a sample whose value is missing; send 4"
        return SampleReject(i, "ambiguous_sample", detail, item), None
    if not isinstance(item, list) or len(item) != 4:
        return SampleReject(i, "bad_sample_shape", "a sample is exactly [signal, time_us, value, quality]", item), None
    name, t, v, q = item
    if not isinstance(name, str) or not is_valid_name(name):
        return SampleReject(i, "bad_signal_name", f"signal name {name!r} is not a valid name", item), None
    if type(t) is not int:
        detail = f"{name}: time_us must be an integer, got {type(t).__name__}"
        return SampleReject(i, "wrong_type", detail, item), None
    if not is_status_code(q):
        detail = f"{name}: quality {q!r} is not a 32-bit OPC-UA status code"
        return SampleReject(i, "bad_quality", detail, item), None
    if min_us is not None and t < min_us:
        detail = f"{name}: time {t} µs is before the accepted window"
        return SampleReject(i, "timestamp_out_of_window", detail, item), None
    if max_us is not None and t > max_us:
        detail = f"{name}: time {t} µs is after the accepted window"
        return SampleReject(i, "timestamp_out_of_window", detail, item), None
    if v is None:
        if severity(q) is Severity.BAD:
            return None, None
        return SampleReject(i, "wrong_type", f"{name}: value is null but quality {q:#010x} is not bad", item), None
    if not typed:  # df-json/1: numbers only, read as float64
        if type(v) is bool or not isinstance(v, int | float):
            detail = f"{name}: a df-json/1 value must be a number, got {type(v).__name__}"
            return SampleReject(i, "wrong_type", detail, item), None
        if isinstance(v, int) and not -_FLOAT_MAX <= v <= _FLOAT_MAX:
            detail = f"{name}: integer value of {v.bit_length()} bits is beyond the float64 range"
            return SampleReject(i, "non_finite", detail, item), None
    problem = value_problem(v)
    if problem is not None:
        return SampleReject(i, problem[0], f"{name}: {problem[1]}", item), None
    return None, (float(v) if not typed else v)


def decode_meta(raw: bytes) -> CellMeta:
    doc = _load(raw)
    if not isinstance(doc, dict) or doc.get("fmt") != META_FORMAT:
        raise ContractError("bad_format", f"meta payload must be an object with fmt {META_FORMAT!r}")
    items = doc.get("signals")
    if not isinstance(items, list):
        raise ContractError("bad_envelope", "meta 'signals' is missing or not an array")
    page = doc.get("page")
    if page is not None and not (
        isinstance(page, list)
        and len(page) == 2
        and all(type(x) is int for x in page)
        and 1 <= page[0] <= page[1] <= MAX_META_PAGES
    ):
        raise ContractError("bad_envelope", f"meta 'page' must be [k, n] with 1 <= k <= n <= {MAX_META_PAGES}")
    signals = []
    for i, s in enumerate(items):
        if not isinstance(s, dict) or not is_valid_name(s.get("name")):
            raise ContractError("bad_envelope", f"meta signals[{i}] has no valid 'name'")
        try:
            meaning = Meaning(s.get("meaning", "generic"))
        except ValueError as err:
            raise ContractError("bad_envelope", f"meta signals[{i}].meaning {s.get('meaning')!r} is unknown") from err
        try:
            signal_type = SignalType(s.get("type", "float64"))
        except ValueError as err:
            raise ContractError("bad_envelope", f"meta signals[{i}].type {s.get('type')!r} is unknown") from err
        unit, description = str(s.get("unit", "")), str(s.get("description", ""))
        signals.append(SignalMeta(s["name"], meaning, unit, description, signal_type))
    gw = doc.get("gw", "")
    attributes = doc.get("cell", {})
    if not isinstance(attributes, dict):
        raise ContractError("bad_envelope", "meta 'cell' must be an object of cell attributes")
    return CellMeta(signals, gw if isinstance(gw, str) else "", attributes)


def encode_config(config: dict[str, Any], *, version: str) -> bytes:
    """Payload of the retained per-gateway config topic: the validated plant config and its version."""
    return orjson.dumps({"fmt": CONFIG_FORMAT, "version": version, "config": config})


def decode_config(raw: bytes) -> tuple[str, dict[str, Any]]:
    """Return (version, config document). The document still has to pass ``config.validate_document``."""
    doc = _load(raw)
    if not isinstance(doc, dict) or doc.get("fmt") != CONFIG_FORMAT:
        raise ContractError("bad_format", f"config payload must be an object with fmt {CONFIG_FORMAT!r}")
    version, config = doc.get("version"), doc.get("config")
    if not isinstance(version, str) or not isinstance(config, dict):
        raise ContractError("bad_envelope", "config payload needs a string 'version' and an object 'config'")
    return version, config
