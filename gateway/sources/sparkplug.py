"""Sparkplug B source adapter (config ``kind: sparkplug``): edge nodes and devices of one Sparkplug group.

Topics ``spBv1.0/<group>/<NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH>/<edge node>[/<device>]``; payloads are
Sparkplug B protobuf (``gateway.sparkplug_proto``). Per edge node the adapter keeps the alias → metric-name
maps announced in NBIRTH/DBIRTH and the message sequence number (0–255, wrapping; NBIRTH resets it to 0).
When a number is skipped it publishes the NCMD ``Node Control/Rebirth`` request, so the node re-announces
itself with current values; data from a node whose birth it has not seen is dropped and answered with the
same request (at most every 5 s per node). It also asks every configured node for a rebirth when it connects,
because births are not retained and it cannot resolve aliases without them. NDEATH/DDEATH write comm-lost
markers (NaN, Bad_NoCommunication) for the bound metrics they cover. Metrics not bound in the config are
ignored. Undecodable payloads are skipped and counted, never fatal.

Raises only ``datafactory.errors.ConnectionLost``; paho errors are translated in ``gateway.mqtt_session``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from datafactory.config.models import SignalBinding, SparkplugSource
from datafactory.contract.quality import BAD, BAD_NO_COMMUNICATION
from datafactory.contract.sample import Sample, now_us
from datafactory.errors import ConnectionLost
from gateway.mqtt_session import MqttFedSource, MqttSession
from gateway.normalise import Normaliser
from gateway.sources import Reading
from gateway.sparkplug_proto import BOOLEAN, Payload, metric_value

_log = logging.getLogger(__name__)
NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
_REBIRTH_MIN_INTERVAL_S = 5.0


@dataclass(slots=True)
class _NodeState:
    born: bool = False
    seq: int = -1
    aliases: dict[str, dict[int, str]] = field(default_factory=dict)  # device ("" = node) → alias → name
    last_rebirth_request: float = 0.0


class SparkplugAdapter(MqttFedSource):
    def __init__(self, config: SparkplugSource, *, mqtt_url: str) -> None:
        self.id = config.id
        self.config = config
        self.url = config.broker_url or mqtt_url
        self.rejected = 0
        self.seq_gaps = 0
        self.rebirth_requests = 0
        self._metrics = list(config.metrics)
        self._normalisers = [Normaliser(m) for m in self._metrics]
        self._index = {(m.edge_node, m.device, m.metric): i for i, m in enumerate(self._metrics)}
        self._nodes: dict[str, _NodeState] = {}
        self._session: MqttSession | None = None
        self._queue: asyncio.Queue[list[Reading]] = asyncio.Queue()

    def bindings(self) -> list[SignalBinding]:
        return list(self._metrics)

    def counters(self) -> dict[str, int]:
        return {"rejected": self.rejected, "seq_gaps": self.seq_gaps, "rebirth_requests": self.rebirth_requests}

    async def open(self) -> None:
        session = await self._connect(
            "df-spb", self.config.username_env, self.config.password_env, on_message=self._on_message
        )
        nodes = sorted({m.edge_node for m in self._metrics}) or ["+"]
        for node in nodes:
            await session.subscribe(f"{NAMESPACE}/{self.config.group_id}/+/{node}/#", qos=1)
        for node in nodes:  # we have no birth certificates yet: ask every node to announce itself
            if node != "+":
                self._request_rebirth(node, self._nodes.setdefault(node, _NodeState()), force=True)

    # ---- message handling -------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        parts = topic.split("/")
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[1] != self.config.group_id:
            return
        kind, node_id = parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else ""
        if kind in ("NCMD", "DCMD", "STATE"):
            return
        try:
            msg = Payload.FromString(payload)
        except DecodeError as err:
            self.rejected += 1
            _log.warning("source %s: %s is not a Sparkplug B payload: %s", self.id, topic, err)
            return
        node = self._nodes.setdefault(node_id, _NodeState())
        received = now_us()
        if kind == "NBIRTH":
            node.born, node.seq, node.aliases = True, int(msg.seq), {}
            self._emit(node_id, "", node, msg, received, birth=True)
        elif kind == "NDEATH":
            node.born = False
            self._comm_lost(node_id, None, received)
        elif kind in ("DBIRTH", "NDATA", "DDATA", "DDEATH"):
            if not node.born:
                self._request_rebirth(node_id, node)
                return
            self._check_seq(node_id, node, int(msg.seq))
            if kind == "DDEATH":
                self._comm_lost(node_id, device, received)
            else:
                self._emit(node_id, device, node, msg, received, birth=kind == "DBIRTH")

    def _check_seq(self, node_id: str, node: _NodeState, seq: int) -> None:
        expected = (node.seq + 1) % 256
        node.seq = seq
        if seq != expected:
            self.seq_gaps += 1
            _log.warning(
                "source %s: node %s sent seq %d, expected %d; messages were lost", self.id, node_id, seq, expected
            )
            if self.config.rebirth_on_gap:  # a gap is one event, never suppressed (unlike unknown-node data)
                self._request_rebirth(node_id, node, force=True)

    def _emit(self, node_id: str, device: str, node: _NodeState, msg: Any, received: int, *, birth: bool) -> None:
        aliases = node.aliases.setdefault(device, {}) if not birth else {}
        if birth:
            node.aliases[device] = aliases
        out: list[Reading] = []
        default_t = int(msg.timestamp) * 1000 if msg.HasField("timestamp") else received
        for m in msg.metrics:
            name = m.name if m.HasField("name") else aliases.get(int(m.alias)) if m.HasField("alias") else None
            if birth and m.HasField("name") and m.HasField("alias"):
                aliases[int(m.alias)] = m.name
            if name is None:
                self.rejected += 1
                continue
            i = self._index.get((node_id, device, name))
            if i is None:
                continue  # not bound in the config
            t = int(m.timestamp) * 1000 if m.HasField("timestamp") else default_t
            quality = BAD if m.is_null else 0
            sample = self._normalisers[i].apply(metric_value(m), t, quality)
            if sample is not None:
                out.append((self._metrics[i].cell, sample))
        if out:
            self._queue.put_nowait(out)

    def _comm_lost(self, node_id: str, device: str | None, t: int) -> None:
        out: list[Reading] = [
            (m.cell, Sample(m.signal, t, float("nan"), BAD_NO_COMMUNICATION))
            for m in self._metrics
            if m.edge_node == node_id and (device is None or m.device == device)
        ]
        if out:
            self._queue.put_nowait(out)

    def _request_rebirth(self, node_id: str, node: _NodeState, *, force: bool = False) -> None:
        now = time.monotonic()
        session = self._session
        if session is None or (not force and now - node.last_rebirth_request < _REBIRTH_MIN_INTERVAL_S):
            return
        node.last_rebirth_request = now
        cmd = Payload(timestamp=int(time.time() * 1000))
        cmd.metrics.add(name=REBIRTH_METRIC, datatype=BOOLEAN, boolean_value=True)
        topic = f"{NAMESPACE}/{self.config.group_id}/NCMD/{node_id}"
        try:
            session.publish(topic, cmd.SerializeToString(), qos=0)
        except ConnectionLost:
            return  # the stream notices the lost session
        self.rebirth_requests += 1
        _log.info("source %s: requested a rebirth from node %s", self.id, node_id)

    # stream() and close() come from MqttFedSource.


def create(config: SparkplugSource, *, mqtt_url: str, state_dir: Path) -> SparkplugAdapter:
    return SparkplugAdapter(config, mqtt_url=mqtt_url)
