"""Turning one MQTT message into what the writer needs, with no database access.

Runs in the MQTT network thread, so decoding overlaps with the writer's COPY and commit. A message that breaks
the contract is not an exception here: it carries its ``ContractError`` to the writer, which dead-letters it in
the same transaction as the good rows of its batch, before the broker's message is acknowledged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import orjson

from datafactory.contract.payload import (
    MAX_PAYLOAD_BYTES,
    CellMeta,
    SampleReject,
    decode_config,
    decode_meta,
)
from datafactory.contract.topics import ParsedTopic, TopicKind, parse_topic
from datafactory.errors import ContractError
from ingest.columns import EMPTY, Columns, Typed, decode_columns, reject_duplicate_keys
from ingest.options import IngestOptions
from ingest.repeats import RepeatLog

log = logging.getLogger(__name__)
DAY_US = 86_400_000_000
# Every cell publishes on the same few topics over and over; a parsed topic is immutable. Invalid topics raise,
# and exceptions are never cached, so hostile topics cannot fill the cache.
_parse_topic = lru_cache(maxsize=8192)(parse_topic)


@dataclass(slots=True)
class Inbound:
    """One received message: its delivery facts, and either its decoded content or why it cannot be stored."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    generation: int  # which MQTT connection delivered it; an ack is only valid on that connection
    received_us: int
    parsed: ParsedTopic | None = None
    error: ContractError | None = None
    ignored: bool = False  # an empty retained message clears a retained topic: nothing to store
    columns: Columns = EMPTY  # names, times (µs), float64 values (NaN: no value), qualities
    typed: Typed = field(default_factory=list)  # (position, sample) of int, bool and string values (exact)
    rejects: list[SampleReject] = field(default_factory=list)
    days: set[int] = field(default_factory=set)  # days since the epoch (UTC) the samples fall on
    meta: CellMeta | None = None
    config: tuple[str, dict[str, Any]] | None = None
    status: dict[str, Any] | None = None

    @property
    def sample_count(self) -> int:
        return len(self.columns[0]) + len(self.typed)


def decode_message(msg: Inbound, options: IngestOptions, repeats: RepeatLog | None = None) -> Inbound:
    """Fill in ``msg`` from its topic and payload; never raises for bad input.

    An unexpected failure is a bug, but hostile input can trigger it on every message: its traceback is logged
    the first time, later ones of the same kind are counted (``repeats``), and each message is dead-lettered.
    """
    try:
        _decode(msg, options)
    except ContractError as err:
        msg.error = err
    except Exception as err:  # hostile input must never stop the worker; the writer dead-letters it
        kind = type(err).__name__
        (repeats or RepeatLog(log)).report(
            f"undecodable:{kind}",
            logging.ERROR,
            f"unexpected failure decoding a message on {msg.topic[:200]} ({kind}); dead-lettered as undecodable",
            summary=f"unexpected {kind} decoding messages, each dead-lettered as undecodable",
            latest=f"on {msg.topic[:200]}",
            exc_info=err,
        )
        msg.error = ContractError("undecodable", f"{kind}: {str(err)[:500]}")
    return msg


def _decode(msg: Inbound, options: IngestOptions) -> None:
    parsed = _parse_topic(msg.topic)
    msg.parsed = parsed
    if not options.plant_allowed(parsed.enterprise, parsed.site):
        raise ContractError("foreign_plant", f"plant {parsed.enterprise}/{parsed.site} is not in --allowed-plants")
    raw = msg.payload
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise ContractError("oversized", f"payload is {len(raw)} bytes; the limit is {MAX_PAYLOAD_BYTES}")
    if parsed.kind is not TopicKind.DATA and not raw:
        msg.ignored = True
        return
    if parsed.kind is TopicKind.DATA:
        now = msg.received_us
        min_us, max_us = now - int(options.max_past_s * 1e6), now + int(options.max_future_s * 1e6)
        msg.columns, msg.typed, msg.rejects = decode_columns(raw, min_us=min_us, max_us=max_us)
        if len(msg.columns[1]):
            msg.days = _days(msg.columns[1])
        if msg.typed:
            msg.days |= {s.time_us // DAY_US for _, s in msg.typed}
        return
    reject_duplicate_keys(raw)  # meta, status and config messages are rare: always checked exactly
    if parsed.kind is TopicKind.META:
        msg.meta = decode_meta(raw)
    elif parsed.kind is TopicKind.CONFIG:
        msg.config = decode_config(raw)
    else:
        msg.status = _decode_status(raw)


def _days(times: np.ndarray) -> set[int]:
    lo, hi = int(times.min()) // DAY_US, int(times.max()) // DAY_US
    if hi - lo <= 2:
        return set(range(lo, hi + 1))
    return set(np.unique(times // DAY_US).tolist())  # scattered times: only the days actually written


def _decode_status(raw: bytes) -> dict[str, Any]:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise ContractError("malformed_json", f"gateway status is not valid JSON: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("online"), bool):
        raise ContractError("bad_envelope", "gateway status must be an object with a boolean 'online'")
    version = doc.get("config_version")
    if version is not None and not isinstance(version, str):  # optional: absent (e.g. the last will) or null
        raise ContractError("bad_envelope", "gateway status 'config_version' must be a string")
    return doc
