"""MQTT JSON source adapter (config ``kind: mqtt_json``): devices that publish JSON documents over MQTT.

Each mapping names a topic filter (``+``/``#`` allowed), dotted paths into the JSON document for the value,
the timestamp and the quality (``data.kw``, ``readings.0.value``), and how the timestamp is written
(``epoch_s|epoch_ms|epoch_us|iso8601|receive_time``). A message is parsed once however many mappings match.
A message that is not JSON, a missing path, or an ISO timestamp without a UTC offset is skipped, counted in
``rejected`` and logged (at most every 10 s) — bad device input never stops the source.

Raises only ``datafactory.errors.ConnectionLost``; paho errors are translated in ``gateway.mqtt_session``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from paho.mqtt.client import topic_matches_sub

from datafactory.config.models import MqttJsonMapping, MqttJsonSource, SignalBinding, TimestampFormat
from datafactory.contract.quality import BAD
from datafactory.contract.sample import datetime_to_us, now_us
from gateway.mqtt_session import MqttFedSource, MqttSession
from gateway.normalise import Normaliser
from gateway.sources import Reading

_log = logging.getLogger(__name__)
_MISSING = object()
_TOPIC_CACHE_MAX = 10_000


class _Rejected(ValueError):
    """A message or a value in it that cannot become a sample."""


def dotted(doc: Any, path: str) -> Any:
    """``doc`` at a dotted path; integer parts index arrays. Returns ``_MISSING`` when absent."""
    node = doc
    for part in path.split("."):
        if isinstance(node, dict):
            node = node.get(part, _MISSING)
        elif isinstance(node, list) and part.lstrip("-").isdigit():
            i = int(part)
            node = node[i] if -len(node) <= i < len(node) else _MISSING
        else:
            return _MISSING
        if node is _MISSING:
            return _MISSING
    return node


def parse_timestamp(raw: Any, fmt: TimestampFormat, received_us: int) -> int:
    """A device timestamp as µs since the epoch (UTC)."""
    if fmt is TimestampFormat.RECEIVE_TIME:
        return received_us
    if fmt is TimestampFormat.ISO8601:
        if not isinstance(raw, str):
            raise _Rejected(f"timestamp {raw!r} is not an ISO 8601 string")
        try:
            dt = datetime.fromisoformat(raw)
        except ValueError as err:
            raise _Rejected(f"timestamp {raw!r} is not ISO 8601") from err
        if dt.tzinfo is None:
            raise _Rejected(f"timestamp {raw!r} has no UTC offset; a naive time is ambiguous")
        return datetime_to_us(dt)
    if isinstance(raw, str):
        try:
            raw = float(raw)
        except ValueError as err:
            raise _Rejected(f"timestamp {raw!r} is not a number") from err
    if type(raw) not in (int, float):
        raise _Rejected(f"timestamp {raw!r} is not a number")
    factor = {TimestampFormat.EPOCH_S: 1_000_000, TimestampFormat.EPOCH_MS: 1_000, TimestampFormat.EPOCH_US: 1}[fmt]
    return round(raw * factor)


class MqttJsonAdapter(MqttFedSource):
    def __init__(self, config: MqttJsonSource, *, mqtt_url: str) -> None:
        self.id = config.id
        self.config = config
        self.url = config.broker_url or mqtt_url
        self.rejected = 0
        self._mappings = list(config.mappings)
        self._normalisers = [Normaliser(m) for m in self._mappings]
        self._matches: dict[str, list[int]] = {}
        self._session: MqttSession | None = None
        self._queue: asyncio.Queue[list[Reading]] = asyncio.Queue()
        self._last_reject_log = 0.0

    def bindings(self) -> list[SignalBinding]:
        return list(self._mappings)

    def counters(self) -> dict[str, int]:
        return {"rejected": self.rejected}

    async def open(self) -> None:
        session = await self._connect(
            "df-src", self.config.username_env, self.config.password_env, on_message=self._on_message
        )
        for topic_filter in sorted({m.topic for m in self._mappings}):
            await session.subscribe(topic_filter, qos=1)

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        indices = self._matches.get(topic)
        if indices is None:
            indices = [i for i, m in enumerate(self._mappings) if topic_matches_sub(m.topic, topic)]
            if len(self._matches) < _TOPIC_CACHE_MAX:
                self._matches[topic] = indices
        if not indices:
            return
        received = now_us()
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError as err:
            self._reject(topic, f"payload is not JSON: {err}", len(indices))
            return
        out: list[Reading] = []
        for i in indices:
            mapping = self._mappings[i]
            try:
                sample = self._convert(mapping, self._normalisers[i], doc, received)
            except _Rejected as err:
                self._reject(topic, f"{mapping.signal}: {err}", 1)
                continue
            if sample is not None:
                out.append((mapping.cell, sample))
        if out:
            self._queue.put_nowait(out)

    def _convert(self, m: MqttJsonMapping, norm: Normaliser, doc: Any, received: int) -> Any:
        raw = dotted(doc, m.value_path)
        if raw is _MISSING:
            raise _Rejected(f"no value at {m.value_path!r}")
        t = received
        if m.timestamp_path:
            ts = dotted(doc, m.timestamp_path)
            if ts is _MISSING:
                raise _Rejected(f"no timestamp at {m.timestamp_path!r}")
            t = parse_timestamp(ts, m.timestamp_format, received)
        quality = 0
        if m.quality_path:
            q = dotted(doc, m.quality_path)
            quality = q if type(q) is int and 0 <= q <= 0xFFFFFFFF else BAD
        return norm.apply(raw, t, quality)

    def _reject(self, topic: str, reason: str, n: int) -> None:
        self.rejected += n
        now = time.monotonic()
        if now - self._last_reject_log >= 10.0:
            self._last_reject_log = now
            _log.warning(
                "source %s: message on %s skipped: %s (%d skipped so far)", self.id, topic, reason, self.rejected
            )


def create(config: MqttJsonSource, *, mqtt_url: str, state_dir: Path) -> MqttJsonAdapter:
    return MqttJsonAdapter(config, mqtt_url=mqtt_url)
