"""Conformance: every source kind behaves the same against its real peer.

Parameterised over every kind in the registry (a new kind without a peer here fails
``test_every_registered_kind_has_a_peer``). Peers: asyncua's server (opcua), a private Mosquitto
(mqtt_json, sparkplug), pymodbus's server (modbus), python-snap7's server (s7). Each kind must show:
construction does no I/O; open/close twice; close never raises (before open, twice, after peer death);
bindings are the config's; a value the peer produces arrives; peer death raises ``ConnectionLost`` from the
stream; bad peer data is counted where the kind can receive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.harness.broker import MosquittoBroker
from datafactory.config.loader import validate_document
from datafactory.config.modbus import ModbusTable, ModbusType
from datafactory.config.models import SOURCE_KINDS
from datafactory.errors import ConnectionLost
from gateway.sources import SourceAdapter, create_adapter
from gateway.sparkplug_proto import Payload
from simulator.modbus_server import ModbusDeviceServer, RegisterStore
from simulator.s7_server import S7DeviceServer
from tests.support.gateway_env import OpcUaTestServer, free_port, plant_doc

pytestmark = pytest.mark.integration

CELL = "press/line-1/press-01"
BINDING = {"cell": CELL, "signal": "power", "meaning": "power_kw", "unit": "kW"}


class Peer:
    """A real server of one source kind: start, make it produce a value, kill it, and the source config."""

    kind: str
    bad_data_counter: str | None = None

    def start(self, tmp: Path) -> None: ...
    def source(self, port: int | None = None) -> dict[str, Any]:
        raise NotImplementedError  # every peer kind names its own source config

    def produce(self, value: float) -> None: ...
    def produce_bad(self) -> None: ...
    def kill(self) -> None: ...
    def revive(self) -> None:
        """The peer back on the same address after ``kill`` (a device powered on again)."""


class OpcUaPeer(Peer):
    kind = "opcua"

    def start(self, tmp: Path) -> None:
        self.server = OpcUaTestServer(free_port(), {"Power": 0.0}).start()

    def revive(self) -> None:
        self.server = OpcUaTestServer(self.server.port, {"Power": 0.0}).start()

    def source(self, port: int | None = None) -> dict[str, Any]:
        endpoint = f"opc.tcp://127.0.0.1:{port}/" if port else self.server.endpoint
        return {
            "kind": "opcua",
            "id": "src",
            "endpoint": endpoint,
            "security": {"policy": "none", "mode": "none"},
            "publishing_interval_ms": 50,
            "sampling_interval_ms": 20,
            "keepalive_timeout_s": 2,
            "nodes": [{"node_id": "ns=2;s=Power", **BINDING}],
        }

    def produce(self, value: float) -> None:
        self.server.write("Power", value)

    def kill(self) -> None:
        self.server.close()


class _MqttPeer(Peer):
    def start(self, tmp: Path) -> None:
        self.broker = MosquittoBroker(port=free_port(), data_dir=tmp / "broker")
        self.broker.start()
        self._connect()

    def _connect(self) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2)
        self.client.connect("127.0.0.1", self.broker.port)
        self.client.loop_start()

    def revive(self) -> None:
        self.broker.start()
        self._connect()

    def url(self, port: int | None) -> str:
        return f"mqtt://127.0.0.1:{port or self.broker.port}"

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(5)

    def kill(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
        self.broker.kill()


class MqttJsonPeer(_MqttPeer):
    kind = "mqtt_json"
    bad_data_counter = "rejected"

    def source(self, port: int | None = None) -> dict[str, Any]:
        mapping = {"topic": "dev/power", "value_path": "kw", **BINDING}
        return {"kind": "mqtt_json", "id": "src", "broker_url": self.url(port), "mappings": [mapping]}

    def produce(self, value: float) -> None:
        self.publish("dev/power", f'{{"kw": {value}}}'.encode())

    def produce_bad(self) -> None:
        self.publish("dev/power", b"not json{")


class SparkplugPeer(_MqttPeer):
    kind = "sparkplug"
    bad_data_counter = "undecodable"
    seq = 0

    def source(self, port: int | None = None) -> dict[str, Any]:
        metric = {"edge_node": "edge-1", "metric": "Power", **BINDING}
        return {"kind": "sparkplug", "id": "src", "broker_url": self.url(port), "group_id": "g", "metrics": [metric]}

    def produce(self, value: float) -> None:
        msg = Payload(timestamp=int(time.time() * 1000), seq=0)
        msg.metrics.add(name="Power", alias=1, datatype=10, double_value=value)  # 10 = Double
        self.publish("spBv1.0/g/NBIRTH/edge-1", msg.SerializeToString())

    def produce_bad(self) -> None:
        self.publish("spBv1.0/g/NDATA/edge-1", b"\xff\xff\xff garbage")


class ModbusPeer(Peer):
    kind = "modbus"
    bad_data_counter = "bad_values"

    def start(self, tmp: Path) -> None:
        self.store = RegisterStore([1])
        self.server = ModbusDeviceServer(self.store, port=free_port()).start()

    def source(self, port: int | None = None) -> dict[str, Any]:
        regs = [
            {"table": "holding_register", "address": 0, "data_type": "float32", **BINDING},
            {"table": "holding_register", "address": 10, "data_type": "string", "length": 1, **BINDING}
            | {"signal": "name", "meaning": "generic"},
        ]
        return {
            "kind": "modbus",
            "id": "src",
            "port": port or self.server.port,
            "timeout_s": 0.5,
            "retries": 0,
            "poll_groups": [{"name": "default", "interval_ms": 50}],
            "registers": regs,
        }

    def produce(self, value: float) -> None:
        self.store.set_value(1, ModbusTable.HOLDING_REGISTER, 0, value, ModbusType.FLOAT32)

    def produce_bad(self) -> None:
        self.store.tables[1][ModbusTable.HOLDING_REGISTER][10] = 0xFFFF  # not UTF-8

    def kill(self) -> None:
        self.server.close()

    def revive(self) -> None:
        self.server = ModbusDeviceServer(self.store, port=self.server.port).start()


class S7Peer(Peer):
    kind = "s7"
    bad_data_counter = "bad_values"

    def start(self, tmp: Path) -> None:
        self.server = S7DeviceServer(free_port(), dbs={10: 32}).start()

    def source(self, port: int | None = None) -> dict[str, Any]:
        items = [
            {"address": "DB10.DBD4:REAL", **BINDING},
            {"address": "DB10.DBB8:STRING[2]", **BINDING} | {"signal": "name", "meaning": "generic"},
        ]
        return {
            "kind": "s7",
            "id": "src",
            "host": "127.0.0.1",
            "port": port or self.server.port,
            "timeout_s": 1,
            "poll_groups": [{"name": "default", "interval_ms": 50}],
            "items": items,
        }

    def produce(self, value: float) -> None:
        self.server.write("DB10.DBD4:REAL", value)

    def produce_bad(self) -> None:
        self.server.dbs[10][8:10] = bytes([2, 7])  # current length 7 > maximum 2

    def kill(self) -> None:
        self.server.stop()

    def revive(self) -> None:
        self.server = S7DeviceServer(self.server.port, dbs={10: 32}).start()


PEERS: dict[str, type[Peer]] = {p.kind: p for p in (OpcUaPeer, MqttJsonPeer, SparkplugPeer, ModbusPeer, S7Peer)}


def test_every_registered_kind_has_a_peer() -> None:
    assert set(PEERS) == set(SOURCE_KINDS)


def _config(source: dict[str, Any]) -> Any:
    return validate_document(plant_doc("acme", sources=[source], cells=[CELL])).sources[0]


def _adapter(source: dict[str, Any], tmp: Path) -> SourceAdapter:
    return create_adapter(_config(source), mqtt_url="mqtt://127.0.0.1:1", state_dir=tmp)


async def _first_value(adapter: SourceAdapter, value: float, timeout: float = 10.0) -> bool:
    async def wait() -> bool:
        async for readings in adapter.stream():
            if any(s.signal == "power" and s.value == value for _, s in readings):
                return True
        return False

    try:
        return await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        return False


@contextlib.contextmanager
def running_peer(kind: str, tmp: Path) -> Iterator[Peer]:
    """The real peer of ``kind``, started; killed afterwards unless the test already did."""
    p = PEERS[kind]()
    p.start(tmp)
    try:
        yield p
    finally:
        with contextlib.suppress(Exception):  # already killed by the test
            p.kill()


@pytest.fixture(params=sorted(PEERS))
def peer(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Peer]:
    with running_peer(request.param, tmp_path) as p:
        yield p


def test_construction_does_no_io_and_close_before_open_never_raises(peer: Peer, tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.settimeout(0.3)
        adapter = _adapter(peer.source(listener.getsockname()[1]), tmp_path)
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody connected: the constructor did no I/O
    asyncio.run(adapter.close())
    asyncio.run(adapter.close())


def test_bindings_are_the_configs(peer: Peer, tmp_path: Path) -> None:
    cfg = _config(peer.source())
    adapter = create_adapter(cfg, mqtt_url="mqtt://127.0.0.1:1", state_dir=tmp_path)
    assert adapter.bindings() == cfg.signal_bindings()


def test_open_close_twice_values_flow_then_peer_death_is_connection_lost(peer: Peer, tmp_path: Path) -> None:
    source = peer.source()

    async def scenario() -> None:
        adapter = _adapter(source, tmp_path)
        for value in (11.5, 12.5):  # open → value → close, twice on fresh adapters as the runner does
            await adapter.open()
            await asyncio.sleep(0.3)  # subscriptions in place before the value is produced
            peer.produce(value)
            assert await _first_value(adapter, value), f"{peer.kind}: {value} did not arrive"
            await adapter.close()
            adapter = _adapter(source, tmp_path)
        await adapter.open()
        await asyncio.sleep(0.3)
        peer.produce(13.5)
        assert await _first_value(adapter, 13.5)
        peer.kill()
        with pytest.raises(ConnectionLost):
            await asyncio.wait_for(_drain(adapter), 15)
        await adapter.close()
        await adapter.close()

    asyncio.run(scenario())


async def _drain(adapter: SourceAdapter) -> None:
    async for _ in adapter.stream():
        pass


def test_bad_peer_data_is_counted_and_the_source_keeps_flowing(peer: Peer, tmp_path: Path) -> None:
    if peer.bad_data_counter is None:
        pytest.skip(f"{peer.kind}: the peer is typed end to end (OPC-UA variants); no malformed data to send")
    counter = peer.bad_data_counter

    async def scenario() -> None:
        adapter = _adapter(peer.source(), tmp_path)
        await adapter.open()
        try:
            await asyncio.sleep(0.3)
            peer.produce_bad()
            peer.produce(21.5)
            assert await _first_value(adapter, 21.5)
            deadline = time.monotonic() + 5
            while adapter.counters()[counter] < 1 and time.monotonic() < deadline:
                await _first_value(adapter, -1.0, timeout=0.2)
            assert adapter.counters()[counter] >= 1
        finally:
            await adapter.close()

    asyncio.run(scenario())
