"""Gateway end to end: an in-process asyncua server → gateway → the real Mosquitto → a subscriber."""

from __future__ import annotations

import math
import time
from typing import Any

import orjson
import pytest

from datafactory.contract.payload import decode_meta
from datafactory.contract.quality import BAD_NO_COMMUNICATION
from tests.support.gateway_env import GatewayThread, OpcUaTestServer, collect, free_port, opcua_source, plant

pytestmark = pytest.mark.integration

CELL = "press/line-1/press-01"


def _opcua_source(endpoint: str, **extra: object) -> dict[str, object]:
    nodes: list[dict[str, Any]] = [
        {
            "node_id": "ns=2;s=Power",
            "cell": CELL,
            "signal": "power",
            "meaning": "power_kw",
            "unit": "kW",
            "scale": 0.001,
            "description": "spindle power",
        },
        {"node_id": "ns=2;s=Running", "cell": CELL, "signal": "running", "meaning": "generic"},
        {
            "node_id": "ns=2;s=Temp",
            "cell": CELL,
            "signal": "temperature",
            "meaning": "temperature",
            "unit": "°C",
            "deadband": {"kind": "absolute", "value": 1.0},
        },
    ]
    return opcua_source(endpoint, nodes, sampling_interval_ms=50, keepalive_timeout_s=3, **extra)


def test_opcua_values_reach_the_broker_scaled_with_meta_and_status(tmp_path, mqtt_url, enterprise) -> None:
    server = OpcUaTestServer(free_port(), {"Power": 0.0, "Running": False, "Temp": 0.0}).start()
    try:
        cfg = plant(enterprise, sources=[_opcua_source(server.endpoint)], cells=[CELL])
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/#") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):
            assert col.wait_for(lambda: any(s.signal == "power" for _, s in col.data_samples()))
            server.write("Power", 12_500.0)
            server.write("Running", True)
            for t in (20.0, 20.4, 20.8, 21.5):  # 20.4 and 20.8 are inside the 1.0 deadband of 20.0
                server.write("Temp", t)

                time.sleep(0.3)
            assert col.wait_for(lambda: any(s.value == 12.5 for _, s in col.data_samples() if s.signal == "power"))
            assert col.wait_for(lambda: any(s.value == 1.0 for _, s in col.data_samples() if s.signal == "running"))
            assert col.wait_for(lambda: 21.5 in [s.value for _, s in col.data_samples() if s.signal == "temperature"])
            temps = [s.value for _, s in col.data_samples() if s.signal == "temperature"]
            assert 20.4 not in temps and 20.8 not in temps and 20.0 in temps
            assert all(c == CELL for c, _ in col.data_samples())

            meta = col.last("/meta")
            assert meta is not None
            decoded = decode_meta(meta)
            assert {s.name for s in decoded.signals} == {"power", "running", "temperature"}
            assert decoded.attributes["ideal_cycle_time_s"] == 2.0
            assert next(s for s in decoded.signals if s.name == "power").description == "spindle power"

            assert col.wait_for(lambda: col.last("_gw/gw-1/status") is not None)
            status = orjson.loads(col.last("_gw/gw-1/status") or b"{}")
            assert status["online"] is True
            assert status["config_version"] == cfg.config_version()
            assert status["sources"]["plc"]["state"] == "connected"

            server.stop()  # the gap must become visible downstream
            assert col.wait_for(
                lambda: any(s.quality == BAD_NO_COMMUNICATION for _, s in col.data_samples()), timeout=20
            )
            markers = [s for _, s in col.data_samples() if s.quality == BAD_NO_COMMUNICATION]
            assert {s.signal for s in markers} == {"power", "running", "temperature"}
            assert all(isinstance(s.value, float) and math.isnan(s.value) for s in markers)
        assert orjson.loads(col.last("_gw/gw-1/status") or b"{}")["online"] is False
    finally:
        server.close()


def _power_values(col) -> list[float]:
    return [s.value for _, s in col.data_samples() if s.signal == "power" and not math.isnan(s.value)]


@pytest.mark.slow
def test_server_restart_resubscribes_and_marks_the_gap(tmp_path, mqtt_url, enterprise) -> None:
    port = free_port()
    names = {"Power": 0.0, "Running": False, "Temp": 0.0}
    server = OpcUaTestServer(port, names).start()
    cfg = plant(enterprise, sources=[_opcua_source(server.endpoint)], cells=[CELL])
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/data") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw,
        ):
            server.write("Power", 1000.0)
            assert col.wait_for(lambda: 1.0 in _power_values(col))
            server.close()
            assert col.wait_for(lambda: any(s.quality == BAD_NO_COMMUNICATION for _, s in col.data_samples()))
            time.sleep(2)
            server = OpcUaTestServer(port, names).start()
            restarted = time.monotonic()
            server.write("Power", 2000.0)
            assert col.wait_for(lambda: 2.0 in _power_values(col), timeout=10), "subscription did not resume in 10 s"
            assert time.monotonic() - restarted < 10
            server.write("Power", 3000.0)
            assert col.wait_for(lambda: 3.0 in _power_values(col))
            samples = [s for _, s in col.data_samples() if s.signal == "power"]
            lost = next(i for i, s in enumerate(samples) if s.quality == BAD_NO_COMMUNICATION)
            assert [s.value for s in samples[:lost]][-1] == 1.0 and 2.0 in [s.value for s in samples[lost:]]
            assert gw.gateway.source_states()["plc"] == "connected"
    finally:
        server.close()


@pytest.mark.slow
def test_stalled_server_is_detected(tmp_path, mqtt_url, enterprise) -> None:
    server = OpcUaTestServer(free_port(), {"Power": 0.0, "Running": False, "Temp": 0.0}).start()
    cfg = plant(enterprise, sources=[_opcua_source(server.endpoint)], cells=[CELL])
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/+/+/+/+/data") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):
            server.write("Power", 1000.0)
            assert col.wait_for(lambda: 1.0 in _power_values(col))
            server.loop.call_soon_threadsafe(time.sleep, 6)  # the server process hangs: no data, no keep-alive
            assert col.wait_for(lambda: any(s.quality == BAD_NO_COMMUNICATION for _, s in col.data_samples()), 12)
            server.write("Power", 4000.0)  # once the server wakes up the gateway reconnects and re-subscribes
            assert col.wait_for(lambda: 4.0 in _power_values(col), timeout=15)
    finally:
        server.close()
