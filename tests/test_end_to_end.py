"""The whole path: simulator (asyncua server + MQTT meter) → gateway → Mosquitto → ingest → PostgreSQL.

The database must hold exactly what the simulator emitted for the subscribed nodes over the run — the same number
of samples per signal, and for a checked subset the exact values and (simulated) source timestamps.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from datafactory.config import validate_document
from datafactory.config.models import MqttJsonSource, OpcUaSource
from datafactory.contract.sample import datetime_to_us
from gateway.runner import Gateway
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from simulator import PlantModel, SimOptions
from simulator.plant_config import layout_from_config
from simulator.server import SimulatorServer, free_port
from tests.support.end_to_end import MemoryRecorder, stored_good

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "edge_configs" / "demo-plant.yaml"
START = datetime(2026, 9, 8, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Dongguan: machines are working
SIM_SECONDS = 600
CHECKED_CELL = "machining/line-1/cnc-02"


def _plant_config(enterprise: str, port: int, meter_topic: str):
    doc = yaml.safe_load(DEMO_CONFIG.read_text(encoding="utf-8"))
    doc["enterprise"]["id"] = enterprise  # own topic prefix df/v1/<enterprise>/… on the shared broker
    for src in doc["sources"]:
        if src["kind"] == "opcua":
            src["endpoint"] = f"opc.tcp://127.0.0.1:{port}/datafactory/sim/"
            # At 60x speed an analog node changes 12 times per real second; the server queue must hold a whole
            # publishing interval of changes or OPC-UA discards the oldest (that is the protocol, not a loss bug).
            for node in src["nodes"]:
                node["queue_size"] = 200
        else:
            for mapping in src["mappings"]:
                mapping["topic"] = meter_topic
    return validate_document(doc, str(DEMO_CONFIG))


def test_database_holds_exactly_what_the_simulator_emitted(db_url, mqtt_url, enterprise, tmp_path):
    port = free_port()
    meter_topic = f"{enterprise}/meter/utilities/main-meter"
    cfg = _plant_config(enterprise, port, meter_topic)
    model = PlantModel(
        layout_from_config(cfg), SimOptions(seed=11), start=START, end=START + timedelta(seconds=SIM_SECONDS)
    )
    recorder = MemoryRecorder()
    server = SimulatorServer(
        model, port=port, speed=60.0, mqtt_url=mqtt_url, meter_topic=meter_topic, recorder=recorder, autoplay=False
    )
    options = IngestOptions(
        database_url=db_url, mqtt_url=mqtt_url, topic_filter=f"df/v1/{enterprise}/#", worker=f"e2e-{enterprise}"
    )
    with IngestWorker(options):
        asyncio.run(_run(server, Gateway(cfg, mqtt_url=mqtt_url, state_dir=tmp_path), recorder, db_url, enterprise))
    emitted = recorder.emitted
    stored = stored_good(db_url, enterprise)

    subscribed = {f"{n.cell}/{n.signal}" for s in cfg.sources if isinstance(s, OpcUaSource) for n in s.nodes}
    meter = {f"{m.cell}/{m.signal}" for s in cfg.sources if isinstance(s, MqttJsonSource) for m in s.mappings}
    assert subscribed and meter
    assert set(stored) == subscribed | meter
    counts_emitted = {k: len(emitted.get(k, [])) for k in subscribed}
    counts_stored = {k: len(stored.get(k, [])) for k in subscribed}
    assert counts_stored == counts_emitted
    assert sum(counts_stored.values()) > 2000
    for key in (k for k in subscribed if k.startswith(CHECKED_CELL)):
        assert stored[key] == emitted[key], key  # exact values and source timestamps
    for key in meter:  # the MQTT-native meter: one sample per published message and mapped value
        assert len(stored[key]) == server.meter_published
    first_state = stored[f"{CHECKED_CELL}/state"][0]
    assert first_state[0] == datetime_to_us(START)


async def _run(server, gateway, recorder, db_url, enterprise) -> None:
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        deadline = time.monotonic() + 30
        while not all(s == "connected" for s in gateway.source_states().values()):
            assert time.monotonic() < deadline, f"sources not connected: {gateway.source_states()}"
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # monitored items created
        server.play()
        await server.wait_done(timeout=120)
        expected = sum(len(v) for v in recorder.emitted.values())  # the meter's two signals are recorded too
        deadline = time.monotonic() + 60
        while True:
            got = sum(len(v) for v in stored_good(db_url, enterprise).values())
            if got >= expected or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await server.stop()
