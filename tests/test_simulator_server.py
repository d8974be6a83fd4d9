"""The live simulator against a real asyncua Client and the real Mosquitto broker."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
import pytest
from asyncua import Client

from datafactory.contract.sample import datetime_to_us
from simulator import EmittedRecorder, PlantModel, SimOptions, demo_layout, load_emitted
from simulator.server import SimulatorServer

pytestmark = pytest.mark.integration

START = datetime(2026, 9, 7, 2, 0, tzinfo=UTC)  # Monday 10:00 in Dongguan, mid day shift
WATCHED = (
    "machining/line-1/cnc-01/state",
    "machining/line-1/cnc-01/total_count",
    "machining/line-1/cnc-01/power",
    "assembly/line-1/asm-02/vibration",
    "assembly/line-1/asm-02/good_count",
)


def _node_id(key: str) -> str:
    cell_path, signal = key.rsplit("/", 1)
    return f"ns=2;s={cell_path.replace('/', '.')}.{signal}"


class _Collector:
    def __init__(self) -> None:
        self.got: dict[str, list[tuple[int, float]]] = {}

    def datachange_notification(self, node, val, data) -> None:
        ts = data.monitored_item.Value.SourceTimestamp
        self.got.setdefault(node.nodeid.to_string(), []).append((datetime_to_us(ts), float(val)))


def _meter_subscriber(url: str, topic: str) -> tuple[mqtt.Client, list[dict], threading.Event]:
    parts = urlsplit(url)
    received: list[dict] = []
    subscribed = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.on_message = lambda c, u, msg: received.append(orjson.loads(msg.payload))
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    return client, received, subscribed


def test_client_receives_exactly_the_emitted_values_with_simulated_timestamps(tmp_path, mqtt_url, enterprise):
    asyncio.run(_receive_exactly_the_emitted_values(tmp_path, mqtt_url, enterprise))


async def _receive_exactly_the_emitted_values(tmp_path, mqtt_url, enterprise):
    model = PlantModel(demo_layout(), SimOptions(seed=5), start=START, end=START + timedelta(seconds=240))
    truth_file = tmp_path / "emitted.sqlite"
    recorder = EmittedRecorder(truth_file)
    server = SimulatorServer(
        model,
        port=None,
        speed=60.0,
        mqtt_url=mqtt_url,
        device_topic_prefix=enterprise,
        recorder=recorder,
        autoplay=False,
    )
    assert server.meter_topic == f"{enterprise}/demo-precision/utilities/main-meter"
    mqtt_client, meter_msgs, subscribed = _meter_subscriber(mqtt_url, server.meter_topic)
    await server.start()
    try:
        assert server.endpoint.startswith("opc.tcp://127.0.0.1:")
        collector = _Collector()
        async with Client(server.endpoint) as client:
            assert await client.get_namespace_index("urn:datafactory:simulator") == 2
            cell = client.get_node("ns=2;s=machining.line-1.cnc-01")
            names = {(await c.read_browse_name()).Name for c in await cell.get_children()}
            assert names == {
                "state",
                "good_count",
                "reject_count",
                "total_count",
                "power",
                "energy",
                "vibration",
                "temperature",
            }
            sub = await client.create_subscription(50, collector)
            await sub.subscribe_data_change([client.get_node(_node_id(k)) for k in WATCHED], queuesize=1000)
            await asyncio.to_thread(subscribed.wait, 10)
            server.play()
            await server.wait_done(timeout=60)
            await asyncio.sleep(1.0)  # the last publish cycle
    finally:
        await server.stop()
        recorder.close()
        await asyncio.sleep(0.3)
        mqtt_client.loop_stop()
        mqtt_client.disconnect()

    emitted = load_emitted(truth_file)
    for key in WATCHED:
        assert collector.got[_node_id(key)] == emitted[key], key
        assert server.emitted[key] == len(emitted[key])
    # analog values every 5 simulated seconds over 4 minutes, plus state changes for power
    assert len(emitted["assembly/line-1/asm-02/vibration"]) == 48
    # a value is written only when it changes: the state holds for minutes, so far fewer writes than ticks
    assert 1 <= server.emitted["machining/line-1/cnc-01/state"] < 10
    assert emitted["machining/line-1/cnc-01/state"][0] == (datetime_to_us(START), 100.0)
    assert all(t >= datetime_to_us(START) for series in emitted.values() for t, _ in series)
    # the MQTT meter: every published message arrived, each equal to what was recorded as emitted
    assert server.meter_published == len(emitted["utilities/main/main-meter/power"]) == 24
    assert len(meter_msgs) == server.meter_published
    assert [(m["ts"] * 1000, m["kw"]) for m in meter_msgs] == emitted["utilities/main/main-meter/power"]
    assert [(m["ts"] * 1000, m["kwh"]) for m in meter_msgs] == emitted["utilities/main/main-meter/energy"]


def test_simulate_run_cli_records_the_emitted_values_and_truth(tmp_path, db_url, mqtt_url, enterprise):
    """`datafactory simulate run` as a user starts it: finite duration, truth file and database truth."""
    import subprocess
    import sys

    import psycopg

    truth_file = tmp_path / "truth.sqlite"
    args = [
        sys.executable, "-m", "app.cli.main", "simulate", "run", "--port", "0", "--speed", "200",
        "--duration", "600", "--start", "2026-09-07T03:55:00Z", "--truth-file", str(truth_file),
        "--database-url", db_url, "--mqtt-url", mqtt_url, "--device-topic-prefix", enterprise,
    ]  # fmt: skip
    proc = subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "OPC-UA server opc.tcp://127.0.0.1:" in proc.stdout
    summary = orjson.loads(proc.stdout.strip().splitlines()[-1])
    emitted = load_emitted(truth_file)
    assert summary["emitted"] == sum(len(v) for v in emitted.values())
    assert summary["meter_messages"] == len(emitted["utilities/main/main-meter/power"]) == 60
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM sim_truth_emitted").fetchone()
        assert row is not None and row[0] == summary["emitted"]
        # 12:00 local is the break: every machine has a state interval 300 starting at 04:00 UTC
        breaks = conn.execute(
            "SELECT count(*) FROM sim_truth_states WHERE state_code = 300 AND time = '2026-09-07T04:00:00Z'"
        ).fetchone()
        assert breaks is not None and breaks[0] == 8
