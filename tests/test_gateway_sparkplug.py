"""Sparkplug B source against a simulated edge node on the real broker: births, data by alias, a sequence gap
answered with an NCMD rebirth request, death markers; exactly the published (bound) metrics arrive."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.contract.quality import BAD_NO_COMMUNICATION
from datafactory.contract.values import Value
from gateway.sparkplug_decode import metric_value
from gateway.sparkplug_proto import DOUBLE, FLOAT, INT32, INT64, Payload
from tests.support.gateway_env import GatewayThread, collect, plant

CELL = "assembly/line-1/asm-01"


def test_payload_round_trip_and_signed_values() -> None:
    p = Payload(timestamp=1_700_000_000_000, seq=7)
    p.metrics.add(name="a", alias=1, datatype=INT32, int_value=(1 << 32) - 5)
    p.metrics.add(name="b", alias=2, datatype=INT64, long_value=(1 << 64) - 1)
    p.metrics.add(name="c", alias=3, datatype=DOUBLE, is_null=True)
    q = Payload.FromString(p.SerializeToString())
    assert q.seq == 7 and [metric_value(m.datatype, m) for m in q.metrics] == [-5, -1, None]


class EdgeNode:
    """A Sparkplug edge node with one device; answers NCMD rebirth requests with NBIRTH + DBIRTH."""

    def __init__(self, port: int, group: str) -> None:
        self.group, self.seq, self.bd_seq = group, 0, 0
        self.power, self.temperature, self.count = 10.0, 20.0, -3
        self.rebirth_requests = 0
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{group}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"spBv1.0/{group}/NCMD/n1", qos=0)
        self.client.loop_start()

    def _topic(self, kind: str, device: str = "") -> str:
        return f"spBv1.0/{self.group}/{kind}/n1" + (f"/{device}" if device else "")

    def _send(self, kind: str, payload: Any, device: str = "", seq: int | None = None) -> None:
        payload.seq = self.seq if seq is None else seq
        self.seq = (payload.seq + 1) % 256
        payload.timestamp = int(time.time() * 1000)
        self.client.publish(self._topic(kind, device), payload.SerializeToString(), qos=0)  # also runs in callbacks

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        cmd = Payload.FromString(msg.payload)
        if any(m.name == "Node Control/Rebirth" and m.boolean_value for m in cmd.metrics):
            with self.lock:
                self.rebirth_requests += 1
                self.birth()

    def birth(self) -> None:
        self.seq = 0
        nb = Payload()
        nb.metrics.add(name="bdSeq", datatype=INT64, long_value=self.bd_seq)
        nb.metrics.add(name="Power/Active", alias=1, datatype=DOUBLE, double_value=self.power)
        nb.metrics.add(name="Unbound", alias=2, datatype=DOUBLE, double_value=99.0)
        self._send("NBIRTH", nb)
        db = Payload()
        db.metrics.add(name="Temperature", alias=3, datatype=FLOAT, float_value=self.temperature)
        db.metrics.add(name="Count", alias=4, datatype=INT32, int_value=self.count & 0xFFFFFFFF)
        self._send("DBIRTH", db, "d1")

    def node_data(self, power: float, *, skip: int = 0) -> None:
        with self.lock:
            self.power = power
            p = Payload()
            p.metrics.add(alias=1, datatype=DOUBLE, double_value=power)  # alias only, as Sparkplug data does
            p.metrics.add(alias=2, datatype=DOUBLE, double_value=98.0)
            self._send("NDATA", p, seq=(self.seq + skip) % 256)

    def device_data(self, temperature: float, count: int) -> None:
        with self.lock:
            self.temperature, self.count = temperature, count
            p = Payload()
            p.metrics.add(alias=3, datatype=FLOAT, float_value=temperature)
            p.metrics.add(alias=4, datatype=INT32, int_value=count & 0xFFFFFFFF)
            self._send("DDATA", p, "d1")

    def death(self) -> None:
        p = Payload()
        p.metrics.add(name="bdSeq", datatype=INT64, long_value=self.bd_seq)
        self.client.publish(self._topic("NDEATH"), p.SerializeToString(), qos=0).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.mark.integration
def test_sparkplug_births_data_gap_rebirth_and_death(tmp_path, mqtt_url, enterprise) -> None:
    port = int(mqtt_url.rsplit(":", 1)[1])
    metric = {"edge_node": "n1", "cell": CELL}
    source = {
        "kind": "sparkplug",
        "id": "spb",
        "broker_url": mqtt_url,
        "group_id": enterprise,
        "rebirth_holdoff_s": 1.0,
        "metrics": [
            {**metric, "metric": "Power/Active", "signal": "power", "meaning": "power_kw", "unit": "kW"},
            {**metric, "device": "d1", "metric": "Temperature", "signal": "temperature", "meaning": "temperature"},
            {**metric, "device": "d1", "metric": "Count", "signal": "count", "meaning": "generic"},
        ],
    }
    cfg = plant(enterprise, sources=[source], cells=[CELL])
    edge = EdgeNode(port, enterprise)
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/data") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):

            def values(signal: str) -> list[Value]:
                return [s.value for _, s in col.data_samples() if s.signal == signal]

            # The gateway knows no birth certificate yet, so it asks for one; the node answers with births.
            assert col.wait_for(lambda: values("count") == [-3.0]), col.data_samples()
            assert edge.rebirth_requests == 1
            edge.node_data(11.0)
            edge.device_data(21.5, -5)
            assert col.wait_for(lambda: values("count") == [-3.0, -5.0])
            edge.node_data(12.0, skip=1)  # seq 4 never arrives: a gap → rebirth request → fresh births
            assert col.wait_for(lambda: edge.rebirth_requests == 2)
            assert col.wait_for(lambda: values("count") == [-3.0, -5.0, -5.0])
            edge.death()
            assert col.wait_for(lambda: any(s.quality == BAD_NO_COMMUNICATION for _, s in col.data_samples()))
            time.sleep(0.3)
            samples = col.data_samples()
            assert {s.signal for _, s in samples} == {"power", "temperature", "count"}  # "Unbound" never arrives
            good = lambda sig: [s.value for _, s in samples if s.signal == sig and s.quality == 0]  # noqa: E731
            assert good("power") == [10.0, 11.0, 12.0, 12.0]  # birth, data, the gap message itself, rebirth
            assert good("temperature") == [20.0, 21.5, 21.5]
            assert good("count") == [-3.0, -5.0, -5.0]
            markers = [s for _, s in samples if s.quality == BAD_NO_COMMUNICATION]
            assert sorted(s.signal for s in markers) == ["count", "power", "temperature"]
            assert all(isinstance(s.value, float) and math.isnan(s.value) for s in markers)
    finally:
        edge.close()
