"""Sparkplug B host discipline on the real broker: undecodable payloads are counted, never a gap; rebirth requests
stay under the ceiling (and the same stream without a ceiling exceeds it); a stale NDEATH changes nothing; the
primary host's STATE birth is retained and its will replaces it after an abrupt disconnect."""

from __future__ import annotations

import asyncio
import gzip
import math
import threading
import time
import zlib
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.config.models import SparkplugSource
from datafactory.contract.quality import BAD_NO_COMMUNICATION
from gateway.sources.sparkplug import SparkplugAdapter
from gateway.sparkplug_decode import COMPRESSED_UUID, Undecodable, metric_value, unwrap
from gateway.sparkplug_proto import DOUBLE, INT8, INT16, STRING, UINT32, UINT64, Payload
from tests.support.gateway_env import GatewayThread, collect, plant

CELL = "assembly/line-1/asm-01"
pytestmark = pytest.mark.integration


class Raw:
    """A bare MQTT client that publishes hand-made Sparkplug messages and counts the NCMDs it receives."""

    def __init__(self, port: int, group: str) -> None:
        self.group = group
        self.ncmds: list[float] = []
        self.lock = threading.Lock()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"raw-{group}")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"spBv1.0/{group}/NCMD/#", qos=0)
        self.client.loop_start()
        time.sleep(0.3)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        with self.lock:
            self.ncmds.append(time.monotonic())

    def send(self, kind: str, payload: bytes | Any, node: str = "n1", device: str = "") -> None:
        raw = payload if isinstance(payload, bytes) else payload.SerializeToString()
        topic = f"spBv1.0/{self.group}/{kind}/{node}" + (f"/{device}" if device else "")
        self.client.publish(topic, raw, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _birth(bd_seq: int, power: float) -> Any:
    p = Payload(timestamp=int(time.time() * 1000), seq=0)
    p.metrics.add(name="bdSeq", datatype=UINT64, long_value=bd_seq)
    p.metrics.add(name="Power", alias=1, datatype=DOUBLE, double_value=power)
    return p


def _data(seq: int, power: float) -> Any:
    p = Payload(timestamp=int(time.time() * 1000), seq=seq)
    p.metrics.add(alias=1, datatype=DOUBLE, double_value=power)
    return p


def _source(enterprise: str, mqtt_url: str, **kw: Any) -> dict[str, Any]:
    metric = {"edge_node": "n1", "metric": "Power", "cell": CELL, "signal": "power", "meaning": "power_kw"}
    return {"kind": "sparkplug", "id": "spb", "broker_url": mqtt_url, "group_id": enterprise, "metrics": [metric], **kw}


def test_compressed_envelopes_and_narrow_signed_ints_decode() -> None:
    inner = Payload(seq=9)
    inner.metrics.add(name="i8", datatype=INT8, int_value=0xFFFFFFFF)  # Tahu: 32-bit two's complement
    inner.metrics.add(name="i16", datatype=INT16, int_value=0x8000)  # some C clients: the type's own width
    inner.metrics.add(name="u32", datatype=UINT32, long_value=0xFFFFFFFF)  # UInt32 in long_value
    inner.metrics.add(name="s", datatype=STRING, string_value="")
    body = inner.SerializeToString()
    for algorithm, packed in (
        ("DEFLATE", zlib.compress(body)),
        ("GZIP", gzip.compress(body)),
        (None, zlib.compress(body)),
    ):
        outer = Payload(uuid=COMPRESSED_UUID, body=packed)
        if algorithm:
            outer.metrics.add(name="algorithm", datatype=STRING, string_value=algorithm)
        got = unwrap(outer.SerializeToString())
        assert got.seq == 9
        assert [metric_value(m.datatype, m) for m in got.metrics] == [-1, -32768, 4294967295, ""]
    bomb = Payload(uuid=COMPRESSED_UUID, body=zlib.compress(b"\0" * (20 * 1024 * 1024)))
    with pytest.raises(Undecodable, match="too_large"):
        unwrap(bomb.SerializeToString())
    with pytest.raises(Undecodable, match="not_protobuf"):
        unwrap(b"\xff\xff\xff")


def _count_rebirths(mqtt_url: str, enterprise: str, tmp_path: Any, **kw: Any) -> tuple[int, dict[str, Any]]:
    """200 messages from a node that never births (half of them undecodable) for 3 s; NCMDs the node received."""
    port = int(mqtt_url.rsplit(":", 1)[1])
    cfg = plant(enterprise, sources=[_source(enterprise, mqtt_url, rebirth_holdoff_s=0, **kw)], cells=[CELL])
    raw = Raw(port, enterprise)
    try:
        with GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw:
            time.sleep(1.0)
            for i in range(200):
                raw.send("NDATA", b"\x0a\xff garbage" if i % 2 else _data(i % 256, float(i)))
                time.sleep(0.015)
            time.sleep(0.5)
            adapter = gw.gateway._sources["spb"].adapter
            details = adapter.details()["nodes"]["n1"]
        with raw.lock:
            return len(raw.ncmds), details
    finally:
        raw.close()


def test_rebirth_requests_stay_under_the_ceiling(mqtt_url, enterprise, tmp_path) -> None:
    sent, node = _count_rebirths(mqtt_url, enterprise, tmp_path, rebirth_max_per_minute=3)
    assert sent == 3  # the one on connect and two more; 100 unborn messages asked
    assert node["undecodable"] == 100 and node["unborn_data"] == 100 and node["seq_gaps"] == 0
    assert node["rebirth_requests"] == 3 and node["rebirths_suppressed"] >= 1
    assert node["dead_letters"] == {"not_protobuf": 100}


def test_without_a_ceiling_the_same_stream_floods(mqtt_url, enterprise, tmp_path) -> None:
    sent, node = _count_rebirths(mqtt_url, enterprise, tmp_path, rebirth_max_per_minute=None)
    assert node["rebirths_suppressed"] == 0
    assert sent > 50  # the unprotected path: one request per unborn message


def test_undecodable_payloads_are_not_sequence_gaps(mqtt_url, enterprise, tmp_path) -> None:
    port = int(mqtt_url.rsplit(":", 1)[1])
    cfg = plant(enterprise, sources=[_source(enterprise, mqtt_url)], cells=[CELL])
    raw = Raw(port, enterprise)
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/data") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            time.sleep(0.5)
            raw.send("NBIRTH", _birth(1, 0.0))
            for seq in range(1, 40):  # every third message is corrupt; its sequence number is not seen
                raw.send("NDATA", b"\x12\x05\xff" if seq % 3 == 0 else _data(seq, float(seq)))
            expected = [0.0] + [float(s) for s in range(1, 40) if s % 3]
            assert col.wait_for(lambda: [s.value for _, s in col.data_samples()] == expected)
            node = gw.gateway._sources["spb"].adapter.details()["nodes"]["n1"]
            assert node["undecodable"] == 13 and node["seq_gaps"] == 0 and node["state"] == "born"
    finally:
        raw.close()


def test_stale_ndeath_changes_nothing_and_the_live_one_marks_at_its_timestamp(mqtt_url, enterprise, tmp_path) -> None:
    port = int(mqtt_url.rsplit(":", 1)[1])
    cfg = plant(enterprise, sources=[_source(enterprise, mqtt_url)], cells=[CELL])
    raw = Raw(port, enterprise)
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/data") as col,
            collect(mqtt_url, f"df/v1/{enterprise}/+/_gw/+/status") as status,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):
            time.sleep(0.5)
            raw.send("NBIRTH", _birth(5, 1.0))
            stale = Payload(timestamp=int(time.time() * 1000))
            stale.metrics.add(name="bdSeq", datatype=UINT64, long_value=4)  # a previous session's death
            raw.send("NDEATH", stale)
            raw.send("NDATA", _data(1, 2.0))
            assert col.wait_for(lambda: [s.value for _, s in col.data_samples()] == [1.0, 2.0])

            def node() -> dict[str, Any]:
                last = status.last("/status")
                return orjson.loads(last)["sources"]["spb"]["nodes"]["n1"] if last else {}

            assert status.wait_for(lambda: node().get("stale_deaths") == 1)
            assert node()["state"] == "born" and node()["bd_seq"] == 5
            assert not any(s.quality for _, s in col.data_samples())
            death_ms = int(time.time() * 1000) + 5
            live = Payload(timestamp=death_ms)
            live.metrics.add(name="bdSeq", datatype=UINT64, long_value=5)
            raw.send("NDEATH", live)
            assert col.wait_for(lambda: len(col.data_samples()) == 3)
            marker = col.data_samples()[-1][1]
            assert marker.quality == BAD_NO_COMMUNICATION
            assert isinstance(marker.value, float) and math.isnan(marker.value)
            assert marker.time_us == death_ms * 1000
            assert status.wait_for(lambda: node().get("state") == "dead")
    finally:
        raw.close()


def test_primary_host_state_birth_and_will(mqtt_url, enterprise) -> None:
    host = f"host-{enterprise}"
    config = SparkplugSource.model_validate(_source(enterprise, mqtt_url, primary_host_id=host))

    async def run() -> None:
        adapter = SparkplugAdapter(config, mqtt_url=mqtt_url)
        await adapter.open()
        assert adapter._session is not None
        with collect(mqtt_url, f"spBv1.0/STATE/{host}") as col:
            assert col.wait_for(lambda: col.last(host) is not None, 5)
            birth = orjson.loads(col.last(host) or b"")
            assert birth["online"] is True and isinstance(birth["timestamp"], int)
            # Retained: a subscriber that comes after the birth gets it from the broker. (``col`` may have
            # subscribed before the birth was published and got it live, without the retain flag.)
            with collect(mqtt_url, f"spBv1.0/STATE/{host}") as after:
                assert after.wait_for(lambda: after.last(host) is not None, 5)
                assert after.messages[0][2]
            client = adapter._session._client
            assert client is not None
            sock = client.socket()
            assert sock is not None  # the adapter is connected, so its client has a socket
            sock.close()  # abrupt: no DISCONNECT, so the broker publishes the will
            assert col.wait_for(lambda: orjson.loads(col.last(host) or b"{}").get("online") is False, 10)
            assert orjson.loads(col.last(host) or b"")["timestamp"] == birth["timestamp"]
        await adapter.close()
        with collect(mqtt_url, f"spBv1.0/STATE/{host}") as late:  # the will is retained too
            assert late.wait_for(lambda: late.last(host) is not None, 5)
            assert orjson.loads(late.last(host) or b"")["online"] is False
        from paho.mqtt import publish

        publish.single(f"spBv1.0/STATE/{host}", b"", retain=True, hostname="127.0.0.1",
                       port=int(mqtt_url.rsplit(":", 1)[1]))  # fmt: skip

    asyncio.run(run())


def test_births_teach_signals_and_units(mqtt_url, enterprise, tmp_path) -> None:
    from datafactory.contract.payload import decode_meta

    port = int(mqtt_url.rsplit(":", 1)[1])
    src = _source(enterprise, mqtt_url, learn={"cell": CELL, "max_metrics": 1})
    cfg = plant(enterprise, sources=[src], cells=[CELL])
    raw = Raw(port, enterprise)
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/+") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            time.sleep(0.5)
            birth = _birth(1, 3.5)
            birth.metrics[1].properties.keys.append("engUnit")
            birth.metrics[1].properties.values.add(type=STRING, string_value="kW")
            temp = birth.metrics.add(name="Motor/Temp °C", alias=2, datatype=DOUBLE, double_value=41.25)
            temp.properties.keys.append("Documentation")
            temp.properties.values.add(type=STRING, string_value="winding temperature")
            birth.metrics.add(name="Other", alias=3, datatype=DOUBLE, double_value=1.0)  # past max_metrics
            raw.send("NBIRTH", birth)

            def signals() -> dict[str, Any]:
                last = col.last("/meta")
                return {s.name: s for s in decode_meta(last).signals} if last else {}

            assert col.wait_for(lambda: "n1_motor_temp_c" in signals())
            assert signals()["power"].unit == "kW"  # the config left it empty: the birth's property fills it
            assert signals()["n1_motor_temp_c"].description == "winding temperature"
            assert "other" not in signals() and "n1_other" not in signals()
            assert col.wait_for(lambda: {s.signal: s.value for _, s in col.data_samples()} == {
                "power": 3.5, "n1_motor_temp_c": 41.25})  # fmt: skip
            counters = gw.gateway._sources["spb"].adapter.counters()
            assert counters["learned"] == 1 and counters["learn_refused"] == 1
    finally:
        raw.close()
