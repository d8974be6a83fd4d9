"""Sparkplug B source adapter (config ``kind: sparkplug``): the edge nodes and devices of one Sparkplug group.

Topics ``spBv1.0/<group>/<NBIRTH|NDATA|NDEATH|DBIRTH|DDATA|DDEATH>/<edge node>[/<device>]``. Every payload is
unwrapped first (``gateway.sparkplug_decode``: DEFLATE/GZIP envelopes), then handled by the per-node state
machine documented in docs/gateway.md ("Sparkplug B host"):

* NBIRTH: the node is born with the birth's bdSeq; its sequence number restarts from the birth's; every device
  must birth again. Births announce names, aliases, datatypes and properties (unit, description).
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
from math import isfinite
from pathlib import Path
from typing import Any

import orjson

from datafactory.config.models import SignalBinding, SparkplugMetric, SparkplugSource
from datafactory.contract.quality import BAD, BAD_NO_COMMUNICATION
from datafactory.contract.sample import Sample, now_us
from datafactory.errors import ConnectionLost
from gateway.mqtt_session import MqttFedSource, MqttSession, Will
from gateway.normalise import Normaliser
from gateway.sources import Reading
from gateway.sparkplug_decode import Decoded, Refused, Undecodable, flatten, unit_and_description, unwrap
from gateway.sparkplug_proto import BOOLEAN, DOUBLE, FLOAT, TEMPLATE, Payload
from gateway.sparkplug_state import NodeState, RebirthThrottle, binding_with, learned_name

_log = logging.getLogger(__name__)
NAMESPACE = "spBv1.0"
REBIRTH_METRIC = "Node Control/Rebirth"
_SEQ_KINDS = frozenset(("NBIRTH", "NDATA", "DBIRTH", "DDATA", "DDEATH"))
_LOG_INTERVAL_S = 10.0
_FLOAT_FIELDS = frozenset(("double_value", "float_value"))
_FLOAT_TYPES = frozenset((DOUBLE, FLOAT))
_new_sample = tuple.__new__  # Sample(...) without the Python-level __new__ of a NamedTuple


def _bd_seq(msg: Any) -> int | None:
    for m in msg.metrics:
        if m.name == "bdSeq":
            which = m.WhichOneof("value")
            if which in ("long_value", "int_value"):
                return int(getattr(m, which))
    return None


class SparkplugAdapter(MqttFedSource):
    def __init__(self, config: SparkplugSource, *, mqtt_url: str) -> None:
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
        self.learn_refused = 0
        self._metrics: list[SignalBinding] = list(config.metrics)
        self._normalisers = [Normaliser(m) for m in self._metrics]
        self._index = {(m.edge_node, m.device, m.metric): i for i, m in enumerate(config.metrics)}
        self._taken: dict[str, set[str]] = {}
        for m in config.metrics:
            self._taken.setdefault(m.cell, set()).add(m.signal)
        self._learned = 0
        self.nodes: dict[str, NodeState] = {}
        self.on_meta_change: Callable[[], None] | None = None  # set by the runner: bindings gained unit/signals
        self._session: MqttSession | None = None
        self._queue: asyncio.Queue[list[Reading]] = asyncio.Queue()
        self._state_ts = 0
        self._last_log = 0.0
        self._learned_pending = False

    # ---- what the runner reads -----------------------------------------------------------------------------
    def bindings(self) -> list[SignalBinding]:
        return list(self._metrics)

    def counters(self) -> dict[str, int]:
        return {
            "rejected": self.rejected,
            "undecodable": self.undecodable,
            "seq_gaps": self.seq_gaps,
            "rebirth_requests": self.rebirth_requests,
            "stale_deaths": self.stale_deaths,
            "unborn_data": self.unborn_data,
            "nodes_over_limit": self.nodes_over_limit,
            "learned": self._learned,
            "learn_refused": self.learn_refused,
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
        try:
            msg = unwrap(payload)
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
            self._check_seq(node_id, node, msg)
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

    def _check_seq(self, node_id: str, node: NodeState, msg: Any) -> None:
        if not msg.HasField("seq"):
            return
        seq = int(msg.seq)
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

    def _emit(self, node_id: str, device: str, node: NodeState, msg: Any, received: int, *, birth: bool) -> None:
        dev = node.devices[device]
        aliases, types, index = dev.aliases, dev.types, self._index
        default_ts = int(msg.timestamp) if msg.HasField("timestamp") else None
        default_us = default_ts * 1000 if default_ts is not None else received
        decoded: list[Decoded] = []
        refused: list[Refused] = []
        out: list[Reading] = []
        meta_changed = False
        norms, newest = self._normalisers, 0
        fast = dev.float_aliases if not birth else {}
        for m in msg.metrics:
            if fast:
                # Fast path for the common data message: a Float/Double by alias, no name, datatype from the birth.
                # A field left at its default (0) is looked at again with HasField: absent and explicit 0 differ.
                which = m.WhichOneof("value")
                if which in _FLOAT_FIELDS:
                    alias, dt = m.alias, m.datatype
                    i = fast.get(alias)
                    if (
                        i is not None
                        and (alias or m.HasField("alias"))
                        and (dt in _FLOAT_TYPES or (dt == 0 and not m.HasField("datatype")))
                        and not m.HasField("name")
                        and not m.is_null
                    ):
                        ts = m.timestamp
                        t = ts * 1000 if ts or m.HasField("timestamp") else default_us
                        newest = max(newest, t)
                        norm, v = norms[i], getattr(m, which)
                        if norm.passthrough and isfinite(v):  # what apply() returns, without the call
                            out.append((norm.cell, _new_sample(Sample, (norm.signal, t, v, 0))))
                            continue
                        sample = norm.apply(v, t)
                        if sample is not None:
                            out.append((norm.cell, sample))
                        continue
            if m.HasField("name"):
                name = m.name
            elif m.HasField("alias") and int(m.alias) in aliases:
                name = aliases[int(m.alias)]
            else:
                refused.append(Refused(f"alias {m.alias}", "unknown_alias", "no name and no alias known from a birth"))
                continue
            if birth:
                types[name] = int(m.datatype)
                if m.HasField("alias"):
                    aliases[int(m.alias)] = name
            datatype = int(m.datatype) if m.HasField("datatype") else types.get(name)
            if datatype is None:
                refused.append(Refused(name, "unknown_datatype", "no datatype here nor in the birth"))
                continue
            if datatype == TEMPLATE:
                flatten(name, m, datatype, default_ts, out=decoded, refused=refused)
                continue
            key = (node_id, device, name)
            if key not in index and not (birth and self._learn(node_id, device, name)):
                continue  # not bound: not decoded, never stored
            flatten(name, m, datatype, default_ts, out=decoded, refused=refused)
        node.last_time_us = max(node.last_time_us, newest)
        if birth:
            dev.float_aliases = {
                a: i
                for a, name in aliases.items()
                if types.get(name) in _FLOAT_TYPES and (i := index.get((node_id, device, name))) is not None
            }
        for d in decoded:
            i = index.get((node_id, device, d.name))
            if i is None and birth and self._learn(node_id, device, d.name):
                i = index[(node_id, device, d.name)]
            if i is None:
                continue
            if birth:
                dev.born_bound[d.name] = i
                if d.props:
                    unit, description = unit_and_description(d.props)
                    updated = binding_with(self._metrics[i], unit, description)
                    if updated is not self._metrics[i]:
                        self._metrics[i], meta_changed = updated, True
            t = d.timestamp_ms * 1000 if d.timestamp_ms is not None else received
            node.last_time_us = max(node.last_time_us, t)
            sample = self._normalisers[i].apply(d.value, t, BAD if d.value is None else 0)
            if sample is not None:
                out.append((self._metrics[i].cell, sample))
        for r in refused:
            self.rejected += 1
            node.dead_letter(r.reason, f"{node_id}/{device or '-'} {r.name}: {r.detail}")
        if refused:
            self._log(f"node {node_id}: {len(refused)} metric value(s) refused, e.g. {node.last_dead_letter}")
        if meta_changed or (birth and self._learned_pending):
            self._learned_pending = False
            if self.on_meta_change is not None:
                self.on_meta_change()  # before the data, so ingest knows the signals' meta first
        if out:
            self._queue.put_nowait(out)

    def _learn(self, node_id: str, device: str, name: str) -> bool:
        learn = self.config.learn
        if learn is None or (learn.edge_nodes and node_id not in learn.edge_nodes):
            return False
        if name == "bdSeq" or name.startswith("Node Control/"):
            return False
        if self._learned >= learn.max_metrics:
            self.learn_refused += 1
            return False
        taken = self._taken.setdefault(learn.cell, set())
        signal = learned_name(node_id, device, name, taken)
        if signal is None:
            self.learn_refused += 1
            return False
        binding = SparkplugMetric(
            edge_node=node_id, device=device, metric=name, cell=learn.cell, signal=signal, meaning=learn.meaning
        )
        taken.add(signal)
        self._index[(node_id, device, name)] = len(self._metrics)
        self._metrics.append(binding)
        self._normalisers.append(Normaliser(binding))
        self._learned += 1
        self._learned_pending = True
        return True

    def _comm_lost(self, node: NodeState, born: list[dict[str, int]], msg: Any, received: int) -> None:
        """Markers for the bound metrics born in the session that died, at the death's own timestamp — unless
        that precedes data already delivered (a will composed at connect time), then at the receive time."""
        t = int(msg.timestamp) * 1000 if msg.HasField("timestamp") else 0
        if t <= node.last_time_us:
            t = max(received, node.last_time_us + 1)
        out: list[Reading] = []
        for indices in born:
            for i in indices.values():
                m = self._metrics[i]
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
    return SparkplugAdapter(config, mqtt_url=mqtt_url)
