"""Sparkplug B source adapter (config ``kind: sparkplug``): the edge nodes and devices of one Sparkplug group.

Topics ``spBv1.0/<group>/<NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH>/<edge node>[/<device>]``. Every payload is
unwrapped first (``gateway.sparkplug_decode``: DEFLATE/GZIP envelopes), then handled by the per-node state
machine documented in docs/gateway.md ("Sparkplug B host"):

* NBIRTH: the node is born with the birth's bdSeq; its sequence number restarts from the birth's; every device
  must birth again. Births announce names, aliases, datatypes and properties (unit, description); the bound
  metrics, learned signals and the declared types births imply live in ``gateway.sparkplug_metrics``.
* NDATA/DBIRTH/DDATA/DDEATH of an unborn node or device are dropped, counted (``unborn_data``) and answered
  with a rebirth request. A missing sequence number is a gap (``seq_gaps``) answered with a rebirth request.
* A payload that cannot be decoded is counted (``undecodable``) and dead-lettered with its reason in the status;
  it is assumed to have used one sequence number, so it never shows up as a gap.
* Rebirth requests (NCMD ``Node Control/Rebirth``) go through ``RebirthThrottle``: at most one outstanding,
  a hold-off, a hard ceiling per minute per node.
* NDEATH is honoured only when its bdSeq matches the live NBIRTH's (else ``stale_deaths``); NDEATH and DDEATH
  write comm-lost markers only for the bound metrics born in that session, at the death's timestamp (or the
  receive time when that timestamp precedes data already delivered).
* With ``primary_host_id`` the adapter is a Sparkplug 3.0 primary host: retained ``spBv1.0/STATE/<id>``
  ``{"online": true, "timestamp": T}`` after subscribing, the same with ``false`` as its MQTT will.

Raises only ``datafactory.errors.ConnectionLost``; paho errors are translated in ``gateway.mqtt_session``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson

from datafactory.config.models import SignalBinding, SparkplugSource
from datafactory.contract.quality import BAD_NO_COMMUNICATION
from datafactory.contract.sample import Sample, now_us
from datafactory.errors import ConnectionLost
from gateway.mqtt_session import MqttFedSource, MqttSession, Will
from gateway.sources import Reading
from gateway.sparkplug_decode import Undecodable, envelope, inner_payload
from gateway.sparkplug_fast import decode_fast
from gateway.sparkplug_metrics import Decoding, MetricTable
from gateway.sparkplug_proto import BOOLEAN, Payload
from gateway.sparkplug_state import NodeState, RebirthThrottle

_log = logging.getLogger(__name__)
NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
_SEQ_KINDS = frozenset(("NBIRTH", "NDATA", "DBIRTH", "DDATA", "DDEATH"))
_DATA_KINDS = frozenset(("NDATA", "DDATA"))
_LOG_INTERVAL_S = 10.0


def _bd_seq(msg: Any) -> int | None:
    for m in msg.metrics:
        if m.name == "bdSeq":
            which = m.WhichOneof("value")
            if which in ("long_value", "int_value"):
                return int(getattr(m, which))
    return None


class SparkplugAdapter(MqttFedSource):
    def __init__(self, config: SparkplugSource, *, mqtt_url: str, types_file: Path | None = None) -> None:
        self.id = config.id
        self.config = config
        self.url = config.broker_url or mqtt_url
        self.rejected = 0  # metric values refused (dead-lettered per node with the reason)
        self.undecodable = 0
        self.seq_gaps = 0
        self.rebirth_requests = 0
        self.stale_deaths = 0
        self.unborn_data = 0
        self.nodes_over_limit = 0
        self.table = MetricTable(config, types_file=types_file)
        self.nodes: dict[str, NodeState] = {}
        self.on_meta_change: Callable[[], None] | None = None  # set by the runner: bindings gained unit/signals
        self._session: MqttSession | None = None
        self._queue: asyncio.Queue[list[Reading]] = asyncio.Queue()
        self._state_ts = 0
        self._last_log = 0.0

    # ---- what the runner reads -----------------------------------------------------------------------------
    def bindings(self) -> list[SignalBinding]:
        return self.table.bindings()

    def counters(self) -> dict[str, int]:
        return {
            "rejected": self.rejected,
            "undecodable": self.undecodable,
            "seq_gaps": self.seq_gaps,
            "rebirth_requests": self.rebirth_requests,
            "stale_deaths": self.stale_deaths,
            "unborn_data": self.unborn_data,
            "nodes_over_limit": self.nodes_over_limit,
            "learned": self.table.learned,
            "learn_refused": self.table.learn_refused,
        }

    def details(self) -> dict[str, Any]:
        """Per-node and per-device state for the status topic (``sources.<id>.nodes``)."""
        return {"nodes": {n: s.as_dict() for n, s in sorted(self.nodes.items())}}

    # ---- session -------------------------------------------------------------------------------------------
    def _state_topic(self) -> str:
        return f"{NAMESPACE}/STATE/{self.config.primary_host_id}"

    def _state_payload(self, online: bool) -> bytes:
        return orjson.dumps({"online": online, "timestamp": self._state_ts})

    async def open(self) -> None:
        host = self.config.primary_host_id
        will = None
        if host:
            self._state_ts = int(time.time() * 1000)  # birth and will carry the same timestamp (Sparkplug 3.0)
            will = Will(self._state_topic(), self._state_payload(False), qos=1, retain=True)
        session = await self._connect(
            "df-spb", self.config.username_env, self.config.password_env, on_message=self._on_message, will=will
        )
        nodes = sorted({m.edge_node for m in self.config.metrics})
        learn = self.config.learn
        if not nodes or (learn is not None and not learn.edge_nodes):
            nodes = ["+"]
        elif learn is not None:
            nodes = sorted(set(nodes) | set(learn.edge_nodes))
        for node in nodes:
            await session.subscribe(f"{NAMESPACE}/{self.config.group_id}/+/{node}/#", qos=1)
        if host:
            await session.subscribe(self._state_topic(), qos=1)
            session.publish(self._state_topic(), self._state_payload(True), qos=1, retain=True)
        for node in nodes:  # we have no birth certificates yet: ask every known node to announce itself
            if node != "+":
                state = self._node(node)
                if state is not None:
                    self._request_rebirth(node, state, "gateway connected")

    async def close(self) -> None:
        session = self._session
        if session is not None and self.config.primary_host_id and not session.lost.is_set():
            with contextlib.suppress(ConnectionLost):  # a graceful DISCONNECT suppresses the will: say it ourselves
                session.publish(self._state_topic(), self._state_payload(False), qos=1, retain=True)
                await asyncio.sleep(0.1)
        await super().close()

    def _node(self, node_id: str) -> NodeState | None:
        node = self.nodes.get(node_id)
        if node is None:
            if len(self.nodes) >= self.config.max_nodes:
                self.nodes_over_limit += 1
                return None
            throttle = RebirthThrottle(self.config.rebirth_holdoff_s, self.config.rebirth_max_per_minute)
            node = self.nodes[node_id] = NodeState(throttle)
        return node

    # ---- message handling ----------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        parts = topic.split("/")
        if len(parts) == 3 and parts[1] == "STATE":
            self._on_state(topic, payload)
            return
        if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[1] != self.config.group_id:
            return
        kind, node_id = parts[2], parts[3]
        device = parts[4] if len(parts) == 5 else ""
        if kind not in _SEQ_KINDS and kind != "NDEATH":
            return  # NCMD, DCMD: ours or another host's commands
        node = self._node(node_id)
        if node is None:
            return
        received = now_us()
        lean = kind in _DATA_KINDS and node.born  # born data may take the fast path, compressed or not
        if lean and self._lean(node_id, device, node, payload, received):
            return
        try:
            msg, inner = envelope(payload)
            if inner is not None:
                if lean and self._lean(node_id, device, node, inner, received):
                    return
                msg = inner_payload(inner)
        except Undecodable as err:
            self.undecodable += 1
            node.undecodable += 1
            node.dead_letter(err.reason, f"{topic}: {err.detail}")
            if kind in _SEQ_KINDS:
                node.lost_seqs += 1
            self._log(f"{topic}: undecodable payload ({err}); {self.undecodable} so far")
            return
        if kind == "NBIRTH":
            self._on_nbirth(node_id, node, msg, received)
        elif kind == "NDEATH":
            self._on_ndeath(node_id, node, msg, received)
        elif not node.born:
            self._unborn(node_id, node, topic)
        else:
            self._check_seq(node_id, node, int(msg.seq) if msg.HasField("seq") else None)
            dev = node.devices.get(device)
            if kind == "DBIRTH":
                self._on_birth(node_id, device, node, msg, received)
            elif kind == "DDEATH":
                if dev is None or not dev.born:
                    return  # a device we never saw born has nothing to mark
                dev.born = False
                dev.deaths += 1
                self._comm_lost(node, [dev.born_bound], msg, received)
            elif dev is None or not dev.born:
                self._unborn(node_id, node, topic)
            else:
                self._emit(node_id, device, node, msg, received, birth=False)

    def _on_state(self, topic: str, payload: bytes) -> None:
        """Our own STATE: if a will (ours from a previous session, or a forged one) says offline, say online."""
        session = self._session
        if topic != self._state_topic() or session is None or not self.config.primary_host_id:
            return
        try:
            doc = orjson.loads(payload)
        except orjson.JSONDecodeError:
            doc = None
        if not (isinstance(doc, dict) and doc.get("online") is True and doc.get("timestamp") == self._state_ts):
            with contextlib.suppress(ConnectionLost):
                session.publish(topic, self._state_payload(True), qos=1, retain=True)

    def _on_nbirth(self, node_id: str, node: NodeState, msg: Any, received: int) -> None:
        node.born = True
        node.births += 1
        node.bd_seq = _bd_seq(msg)
        node.seq = int(msg.seq) if msg.HasField("seq") else 0
        node.lost_seqs = 0
        node.throttle.answered()
        for dev in node.devices.values():  # a new node session: every device has to birth again
            dev.born = False
        self._on_birth(node_id, "", node, msg, received)

    def _on_ndeath(self, node_id: str, node: NodeState, msg: Any, received: int) -> None:
        bd = _bd_seq(msg)
        if not node.born or (node.bd_seq is not None and bd != node.bd_seq):
            node.stale_deaths += 1
            self.stale_deaths += 1
            self._log(f"node {node_id}: NDEATH bdSeq {bd} ignored, the live session's is {node.bd_seq}")
            return
        node.born = False
        node.deaths += 1
        live = [d.born_bound for d in node.devices.values() if d.born]
        for dev in node.devices.values():
            if dev.born:
                dev.born = False
                dev.deaths += 1
        self._comm_lost(node, live, msg, received)

    def _unborn(self, node_id: str, node: NodeState, topic: str) -> None:
        node.unborn_data += 1
        self.unborn_data += 1
        self._request_rebirth(node_id, node, f"{topic} from an unborn node or device")

    def _check_seq(self, node_id: str, node: NodeState, seq: int | None) -> None:
        if seq is None:
            return
        allowed = {(node.seq + 1 + k) % 256 for k in range(node.lost_seqs + 1)}
        node.seq, node.lost_seqs = seq, 0
        if seq not in allowed:
            node.seq_gaps += 1
            self.seq_gaps += 1
            self._log(f"node {node_id} sent seq {seq}, expected {min(allowed)}; messages were lost")
            if self.config.rebirth_on_gap:
                self._request_rebirth(node_id, node, "sequence gap")

    def _on_birth(self, node_id: str, device: str, node: NodeState, msg: Any, received: int) -> None:
        dev = node.device(device)
        dev.born = True
        dev.births += 1
        dev.aliases, dev.types, dev.born_bound = {}, {}, {}
        self._emit(node_id, device, node, msg, received, birth=True)

    def _lean(self, node_id: str, device: str, node: NodeState, raw: bytes, received: int) -> bool:
        """Data of a born device on a fast path (``gateway.sparkplug_fast``): handled here, True."""
        dev = node.devices.get(device)
        fast = decode_fast(self.table.normalisers, dev, raw, received) if dev is not None and dev.born else None
        if fast is None:
            return False
        seq, result = fast
        self._check_seq(node_id, node, seq)
        self._deliver(node_id, device, node, result)
        return True

    def _emit(self, node_id: str, device: str, node: NodeState, msg: Any, received: int, *, birth: bool) -> None:
        self._deliver(
            node_id, device, node, self.table.decode(node_id, device, node.devices[device], msg, received, birth=birth)
        )

    def _deliver(self, node_id: str, device: str, node: NodeState, result: Decoding) -> None:
        node.last_time_us = max(node.last_time_us, result.newest_us)
        for r in result.refused:
            self.rejected += 1
            node.dead_letter(r.reason, f"{node_id}/{device or '-'} {r.name}: {r.detail}")
        if result.refused:
            self._log(f"node {node_id}: {len(result.refused)} metric value(s) refused, e.g. {node.last_dead_letter}")
        if result.meta_changed and self.on_meta_change is not None:
            self.on_meta_change()  # before the data, so ingest knows the signals' types and meta first
        if result.out:
            self._queue.put_nowait(result.out)

    def _comm_lost(self, node: NodeState, born: list[dict[str, int]], msg: Any, received: int) -> None:
        """Markers for the bound metrics born in the session that died, at the death's own timestamp — unless
        that precedes data already delivered (a will composed at connect time), then at the receive time."""
        t = int(msg.timestamp) * 1000 if msg.HasField("timestamp") else 0
        if t <= node.last_time_us:
            t = max(received, node.last_time_us + 1)
        out: list[Reading] = []
        for indices in born:
            for i in indices.values():
                m = self.table.metrics[i]
                out.append((m.cell, Sample(m.signal, t, float("nan"), BAD_NO_COMMUNICATION)))
        if out:
            self._queue.put_nowait(out)

    def _request_rebirth(self, node_id: str, node: NodeState, why: str) -> None:
        session = self._session
        if session is None or not node.throttle.allow(time.monotonic(), why):
            return
        cmd = Payload(timestamp=int(time.time() * 1000))
        cmd.metrics.add(name=REBIRTH_METRIC, datatype=BOOLEAN, boolean_value=True)
        topic = f"{NAMESPACE}/{self.config.group_id}/NCMD/{node_id}"
        try:
            session.publish(topic, cmd.SerializeToString(), qos=0)
        except ConnectionLost:
            return  # the stream notices the lost session
        node.rebirth_requests += 1
        self.rebirth_requests += 1
        _log.info("source %s: requested a rebirth from node %s (%s)", self.id, node_id, why)

    def _log(self, text: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= _LOG_INTERVAL_S:
            self._last_log = now
            _log.warning("source %s: %s", self.id, text)

    def _retry_pending(self) -> None:
        """Send the rebirth requests the throttle withheld, once it allows them (called every 0.5 s)."""
        for node_id, node in self.nodes.items():
            why = node.throttle.pending
            if why is not None:
                self._request_rebirth(node_id, node, why)

    async def stream(self) -> AsyncIterator[list[Reading]]:
        session = self._session
        if session is None:
            raise ConnectionLost(self.url, "not open")
        next_retry = time.monotonic() + 0.5
        while True:
            if session.lost.is_set():
                raise ConnectionLost(self.url, session.lost_reason)
            if time.monotonic() >= next_retry:
                next_retry = time.monotonic() + 0.5
                self._retry_pending()
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=0.5)
            except TimeoutError:
                continue
            yield item


def create(config: SparkplugSource, *, mqtt_url: str, state_dir: Path) -> SparkplugAdapter:
    return SparkplugAdapter(config, mqtt_url=mqtt_url, types_file=state_dir / f"{config.id}.sparkplug-types.json")
