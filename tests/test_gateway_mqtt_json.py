"""MQTT JSON source: wildcard topics, dotted paths, timestamp formats, scaling; bad input is skipped."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import orjson
import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.config.models import TimestampFormat
from datafactory.contract.sample import datetime_to_us
from gateway.sources.mqtt_json import _MISSING, _Rejected, dotted, parse_timestamp
from tests.support.gateway_env import GatewayThread, collect, plant

CELL = "utilities/main/main-meter"


def test_dotted_paths() -> None:
    doc = {"data": {"kw": 3.5, "list": [{"v": 1}, {"v": 2}]}}
    assert dotted(doc, "data.kw") == 3.5
    assert dotted(doc, "data.list.1.v") == 2
    assert dotted(doc, "data.list.-1.v") == 2
    assert dotted(doc, "data.nope") is _MISSING
    assert dotted(doc, "data.list.7.v") is _MISSING
    assert dotted(doc, "data.kw.x") is _MISSING


def test_timestamp_formats() -> None:
    t = datetime(2026, 11, 23, 8, 0, 0, 123456, tzinfo=UTC)
    us = datetime_to_us(t)
    assert parse_timestamp(us / 1e6, TimestampFormat.EPOCH_S, 0) == us
    assert parse_timestamp(us // 1000, TimestampFormat.EPOCH_MS, 0) == us // 1000 * 1000
    assert parse_timestamp(us, TimestampFormat.EPOCH_US, 0) == us
    assert parse_timestamp("2026-11-23T16:00:00.123456+08:00", TimestampFormat.ISO8601, 0) == us
    assert parse_timestamp("2026-11-23T08:00:00.123456Z", TimestampFormat.ISO8601, 0) == us
    assert parse_timestamp("whatever", TimestampFormat.RECEIVE_TIME, 42) == 42
    with pytest.raises(_Rejected, match="no UTC offset"):
        parse_timestamp("2026-11-23T08:00:00", TimestampFormat.ISO8601, 0)
    with pytest.raises(_Rejected):
        parse_timestamp("soon", TimestampFormat.EPOCH_MS, 0)


@pytest.mark.integration
def test_mqtt_json_device_to_platform(tmp_path, mqtt_url, enterprise) -> None:
    dev = f"dev-{enterprise}"
    source = {
        "kind": "mqtt_json",
        "id": "meter",
        "broker_url": mqtt_url,
        "mappings": [
            {
                "topic": f"{dev}/+/reading",
                "value_path": "data.kw",
                "cell": CELL,
                "signal": "power",
                "meaning": "power_kw",
                "unit": "kW",
                "timestamp_path": "ts",
                "timestamp_format": "epoch_ms",
            },
            {
                "topic": f"{dev}/+/reading",
                "value_path": "data.wh",
                "cell": CELL,
                "signal": "energy",
                "meaning": "energy_kwh",
                "unit": "kWh",
                "scale": 0.001,
                "timestamp_path": "time",
                "timestamp_format": "iso8601",
                "quality_path": "q",
            },
            {"topic": f"{dev}/#", "value_path": "alarm", "cell": CELL, "signal": "alarm", "meaning": "generic"},
        ],
    }
    cfg = plant(enterprise, sources=[source], cells=[CELL])
    pub = paho.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", int(mqtt_url.rsplit(":", 1)[1]))
    pub.loop_start()
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/#") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            assert col.wait_for(lambda: gw.gateway.source_states().get("meter") == "connected")
            pub.publish(f"{dev}/m1/reading", b"not json", qos=1)
            pub.publish(f"{dev}/m1/reading", b'{"data": {"kw": 1}}', qos=1)  # no ts: skipped, counted
            doc = b'{"ts": 1763884800123, "time": "2025-11-23T16:00:00+08:00", "q": 1073741824,'
            pub.publish(f"{dev}/m1/reading", doc + b' "data": {"kw": 7.25, "wh": 123456}}', qos=1)
            pub.publish(f"{dev}/m2/status", b'{"alarm": true}', qos=1)
            assert col.wait_for(lambda: {s.signal for _, s in col.data_samples()} >= {"power", "energy", "alarm"})
            by_signal = {s.signal: s for _, s in col.data_samples()}
            assert by_signal["power"].value == 7.25 and by_signal["power"].time_us == 1763884800123000
            assert by_signal["energy"].value == pytest.approx(123.456)
            assert by_signal["energy"].quality == 0x40000000
            assert by_signal["energy"].time_us == datetime_to_us(datetime(2025, 11, 23, 8, tzinfo=UTC))
            assert by_signal["alarm"].value == 1.0
            assert len([s for _, s in col.data_samples() if s.signal == "power"]) == 1

            def rejected() -> int:
                status = orjson.loads(col.last("_gw/gw-1/status") or b"{}")
                return int(status.get("sources", {}).get("meter", {}).get("rejected", 0))

            # Counted per mapping that could not read its value: "not json" (3 matching mappings), the message
            # without ts/wh/alarm (3) and the good one, which has no "alarm" for the catch-all mapping (1).
            assert col.wait_for(lambda: rejected() == 7)
            time.sleep(0.2)
    finally:
        pub.loop_stop()
        pub.disconnect()
