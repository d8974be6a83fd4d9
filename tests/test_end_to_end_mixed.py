"""A mixed plant end to end: machines on OPC-UA, on Modbus TCP (two units behind one server) and on S7, the
utility meter on Modbus RTU over a pseudo-terminal pair (on MQTT where socat is missing) → one gateway →
Mosquitto → ingest → PostgreSQL → the analytics' OEE functions; then the Modbus device dies and the gap is
marked in the database for each of its signals.

The simulator serves every machine from the same model, so what it emitted is the ground truth. The database
must hold, per signal, exactly as many samples as were emitted, with the exact values (float64 registers,
LREAL, integer counters); OPC-UA samples also keep their source timestamps. Polled values carry the time the
gateway read them, so the plant runs in real time (speed 1) and the OEE of each Modbus and S7 machine over the
run, computed by the analytics from the database, equals the OEE computed from the emitted values at their
true times to within the polling delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from analytics.counters import increments
from analytics.oee import machine_oee
from analytics.states import state_intervals
from datafactory.config.analytics import AnalyticsConfig
from datafactory.contract.quality import BAD_NO_COMMUNICATION, to_db
from gateway.runner import Gateway
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from simulator import PlantModel, SimOptions
from simulator.fieldbus import MODBUS, S7, FieldbusPlan
from simulator.layout import PlantLayout, machine_spec
from simulator.plant_config import meter_topic as default_meter_topic
from simulator.plant_config import plant_config
from simulator.server import SimulatorServer, free_port
from tests.support.end_to_end import MemoryRecorder, stored_good
from tests.support.working_time import working_timezone

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SIM_SECONDS = 25
LEAD_S = 8  # the simulated run starts this far ahead: every source is connected before the first change
CYCLE_S = 2.0  # short ideal cycles: a machine makes a dozen parts in the run, enough for a performance figure
OPCUA_CELL = "machining/line-1/cnc-01"
PROTOCOLS = {"machining/line-1/cnc-02": MODBUS, "assembly/line-1/asm-01": MODBUS, "assembly/line-1/asm-02": S7}
COUNTERS = ("good_count", "reject_count", "total_count")


def _layout(enterprise: str, tz: str) -> PlantLayout:
    cells = [
        ("machining", "cnc-01", 1),
        ("machining", "cnc-02", 2),
        ("assembly", "asm-01", 1),
        ("assembly", "asm-02", 2),
    ]
    machines = tuple(machine_spec(a, "line-1", c, k, ideal_cycle_time_s=CYCLE_S) for a, c, k in cells)
    return PlantLayout(machines, enterprise=enterprise, timezone=tz)


def _marked(db_url: str, enterprise: str) -> set[str]:
    """Signals with a comm-lost marker (no value, Bad_NoCommunication) in the database."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """
            SELECT DISTINCT p.area || '/' || p.line || '/' || p.cell || '/' || p.signal
            FROM sample_values v JOIN signal_paths p ON p.signal_id = v.signal_id
            WHERE p.enterprise = %s AND v.quality = %s AND v.value IS NULL
            """,
            (enterprise, to_db(BAD_NO_COMMUNICATION)),
        ).fetchall()
    return {r[0] for r in rows}


def _frame(points: list[tuple[int, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {"time": pd.to_datetime([t for t, _ in points], unit="us", utc=True), "value": [v for _, v in points]}
    )


def _oee(series: dict[str, list[tuple[int, float]]], cell: str, start: pd.Timestamp, end: pd.Timestamp) -> dict:
    """Availability, performance and quality of one machine over [start, end), by the analytics' own functions."""
    intervals = state_intervals(_frame(series[f"{cell}/state"]), start, end, AnalyticsConfig())
    periods = pd.DataFrame({"time": [start], "time_end": [end], "shift_name": ["run"]})
    counts = {c: increments(_frame(series[f"{cell}/{c}"])) for c in COUNTERS}
    row = machine_oee(intervals, periods, counts, CYCLE_S).iloc[0]
    return {k: float(row[k]) for k in ("availability", "performance", "quality", "total_count", "apt_s")}


def _quiet_edge(emitted: dict[str, list[tuple[int, float]]], cell: str, around_us: int, step_us: int) -> int:
    """A time near ``around_us`` with no state or counter change within a second before it, so the polling
    delay cannot move a change across the window's edge."""
    changes = sorted(t for s in ("state", *COUNTERS) for t, _ in emitted[f"{cell}/{s}"])
    t = around_us
    while any(t - 1_000_000 <= c <= t for c in changes):
        t += step_us
    return t


@contextlib.contextmanager
def _serial_pair(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two pseudo-terminals joined like a null-modem cable (socat), or ("", "") without socat."""
    if shutil.which("socat") is None:
        yield "", ""
        return
    a, b = tmp_path / "ttyGW", tmp_path / "ttyMeter"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"])
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        yield str(a), str(b)
    finally:
        socat.terminate()
        socat.wait(5)


def test_mixed_plant_end_to_end(db_url: str, mqtt_url: str, enterprise: str, tmp_path: Path) -> None:
    with _serial_pair(tmp_path) as (gateway_tty, meter_tty):
        _mixed_plant(db_url, mqtt_url, enterprise, tmp_path, gateway_tty=gateway_tty, meter_tty=meter_tty)


def _mixed_plant(db_url: str, mqtt_url: str, enterprise: str, tmp_path: Path, *, gateway_tty: str,
                 meter_tty: str) -> None:  # fmt: skip
    """With socat the utility meter is on Modbus RTU over a pseudo-terminal pair, else on MQTT."""
    start = datetime.now(UTC) + timedelta(seconds=LEAD_S)
    layout = _layout(enterprise, working_timezone(start))
    plan = FieldbusPlan(
        PROTOCOLS, modbus_port=free_port(), s7_port=free_port(), meter_serial=meter_tty,
        meter_gateway_serial=gateway_tty,
    )  # fmt: skip
    port = free_port()
    prefix = f"sim-{enterprise}"  # the meter on this test's own topic
    meter_topic = default_meter_topic(prefix, layout)
    endpoint = f"opc.tcp://127.0.0.1:{port}/datafactory/sim/"
    cfg = plant_config(layout, endpoint=endpoint, topic_prefix=prefix, fieldbus=plan, poll_interval_ms=100)
    meter_kind = "modbus" if meter_tty else "mqtt_json"
    assert sorted(s.kind for s in cfg.sources) == sorted(["modbus", meter_kind, "opcua", "s7"])
    model = PlantModel(layout, SimOptions(seed=5, analog_period_s=1.0), start=start,
                       end=start + timedelta(seconds=SIM_SECONDS))  # fmt: skip
    recorder = MemoryRecorder()
    server = SimulatorServer(
        model,
        port=port,
        speed=1.0,
        mqtt_url=mqtt_url,
        meter_topic=meter_topic,
        recorder=recorder,
        fieldbus=plan,
        autoplay=False,
    )
    options = IngestOptions(
        database_url=db_url, mqtt_url=mqtt_url, topic_filter=f"df/v1/{enterprise}/#", worker=f"mix-{enterprise}"
    )
    with IngestWorker(options):
        gateway = Gateway(cfg, mqtt_url=mqtt_url, state_dir=tmp_path)
        asyncio.run(_run(server, gateway, recorder, db_url, enterprise, start=start))
    emitted, stored = recorder.emitted, stored_good(db_url, enterprise)

    # Every signal of every source, as many samples as were emitted, with the exact values.
    assert set(stored) == set(emitted)
    assert {k: len(v) for k, v in stored.items()} == {k: len(v) for k, v in emitted.items()}
    for key, points in emitted.items():
        assert [v for _, v in stored[key]] == [v for _, v in points], key
        if key.startswith(OPCUA_CELL):
            assert stored[key] == points, key  # OPC-UA keeps the source timestamps too
    polled = [k for k in emitted if k.rsplit("/", 1)[0] in PROTOCOLS]
    assert len(polled) == 3 * 8 and sum(len(emitted[k]) for k in polled) > 3 * 4 * 20  # analog: one change a second
    for key in polled:  # stamped when read: after the change, within the polling delay (the initial value is
        # read before the run starts, so it is left out)
        lags = [(ts - te) / 1e6 for (ts, _), (te, _) in zip(stored[key][1:], emitted[key][1:], strict=True)]
        assert all(-0.5 < lag < 3.0 for lag in lags), (key, lags)

    # OEE of each polled machine from the database equals the OEE of what the machine did.
    for cell in PROTOCOLS:
        ws = _quiet_edge(emitted, cell, model.start_us + 5_000_000, 200_000)
        we = _quiet_edge(emitted, cell, model.start_us + (SIM_SECONDS - 3) * 1_000_000, 200_000)
        window = pd.Timestamp(ws, unit="us", tz="UTC"), pd.Timestamp(we, unit="us", tz="UTC")
        truth, ours = _oee(emitted, cell, *window), _oee(stored, cell, *window)
        assert truth["total_count"] >= 3, (cell, truth)  # the machine worked during the run
        assert ours["total_count"] == truth["total_count"] and ours["quality"] == truth["quality"], (cell, ours, truth)
        for ratio in ("availability", "performance"):
            assert abs(ours[ratio] - truth[ratio]) <= 0.03, (cell, ratio, ours, truth)


async def _run(server, gateway, recorder, db_url, enterprise, *, start: datetime) -> None:
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(gateway.run(stop))
    try:
        deadline = time.monotonic() + 20
        while not all(s == "connected" for s in gateway.source_states().values()):
            assert time.monotonic() < deadline, f"sources not connected: {gateway.source_states()}"
            await asyncio.sleep(0.1)
        lead = (start - datetime.now(UTC)).total_seconds()
        assert lead > 1.0, f"connecting took {LEAD_S - lead:.1f} s, longer than the lead"
        await asyncio.sleep(lead)  # simulated time on the real clock: polled values are stamped by it
        server.play()
        await server.wait_done(timeout=SIM_SECONDS + 30)
        await asyncio.sleep(1.0)  # the last values polled
        expected = sum(len(v) for v in recorder.emitted.values())
        deadline = time.monotonic() + 30
        while sum(len(v) for v in stored_good(db_url, enterprise).values()) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        # The Modbus device dies: the gap is marked in the database for each of its signals, the others flow on.
        modbus = {f"{b.cell}/{b.signal}" for src in gateway.config.sources if src.id == "modbus"
                  for b in src.signal_bindings()}  # fmt: skip
        assert server.fieldbus is not None and server.fieldbus.modbus is not None
        await asyncio.to_thread(server.fieldbus.modbus.stop)
        deadline = time.monotonic() + 20
        while not modbus <= _marked(db_url, enterprise) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        assert _marked(db_url, enterprise) == modbus
        assert gateway.source_states()["plc"] == "connected"
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await server.stop()
