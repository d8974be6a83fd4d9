"""The live simulated plant until it is stopped: the OPC-UA server (and Modbus/S7, the MQTT meter), recording
what it emits to a SQLite file and/or the database, and the ground truth written when it stops.

``datafactory simulate run`` (``simulator.cli``) parses the options and calls ``serve``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from datetime import timedelta
from pathlib import Path

import click

from datafactory.contract.sample import us_to_datetime
from datafactory.settings import redact_url
from simulator.fieldbus import FieldbusPlan
from simulator.model import PlantModel


async def serve(
    model: PlantModel,
    *,
    host: str,
    port: int,
    speed: float,
    mqtt_url: str | None,
    topic_prefix: str,
    meter_topic: str | None,
    truth_file: Path | None,
    database_url: str | None,
    fieldbus: FieldbusPlan,
) -> None:
    from datafactory.db.connect import connect
    from simulator.server import SimulatorServer
    from simulator.truth import EmittedRecorder, EmittedSink, TeeRecorder
    from simulator.truth_db import PgEmittedRecorder, truth_plant, write_truth

    sinks: list[EmittedSink] = []
    conn = None
    plant_id = 0
    if truth_file is not None:
        sinks.append(EmittedRecorder(truth_file))
    if database_url:
        conn = connect(database_url, application_name="datafactory-simulator")
        plant_id = truth_plant(conn, model.layout)
        conn.commit()
        sinks.append(PgEmittedRecorder(conn, plant_id))
    recorder = TeeRecorder(*sinks) if sinks else None
    server = SimulatorServer(
        model,
        host=host,
        port=port or None,
        speed=speed,
        mqtt_url=mqtt_url,
        device_topic_prefix=topic_prefix,
        meter_topic=meter_topic,
        recorder=recorder,
        fieldbus=fieldbus,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await server.start()
    click.echo(f"OPC-UA server {server.endpoint} ({len(model.signal_keys)} signals, speed ×{server.speed:g})")
    if fieldbus.protocols:
        polled = sorted(fieldbus.protocols.items())
        modbus = [c for c, p in polled if p == "modbus"]
        s7 = [c for c, p in polled if p == "s7"]
        if modbus:
            click.echo(f"Modbus TCP 127.0.0.1:{fieldbus.modbus_port} (units 1-{len(modbus)}): {', '.join(modbus)}")
        if s7:
            click.echo(f"S7 127.0.0.1:{fieldbus.s7_port}: {', '.join(s7)}")
    if server.meter_topic:
        click.echo(f"utility meter publishes to {server.meter_topic} on {redact_url(mqtt_url or '')}")
    click.echo(f"simulated start {us_to_datetime(model.start_us).isoformat()}", err=False)
    sys.stdout.flush()
    done = asyncio.create_task(server.wait_done())
    stopper = asyncio.create_task(stop.wait())
    try:
        finished, _ = await asyncio.wait({done, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if done in finished:
            done.result()  # raises what stopped the replay, if it failed
    finally:
        done.cancel()
        stopper.cancel()
        await server.stop()
        reached = us_to_datetime(server.sim_time_us)
        if conn is not None:
            cells = [m.path for m in model.layout.machines]
            truth = model.truth_until(server.sim_time_us + 1)
            write_truth(conn, plant_id, truth, cells, start=us_to_datetime(model.start_us),
                        end=reached + timedelta(days=30))
            conn.commit()
        if recorder is not None:
            recorder.close()
        if conn is not None:
            conn.close()
    total = sum(server.emitted.values())
    click.echo(json.dumps({"emitted": total, "meter_messages": server.meter_published, "sim_end": reached.isoformat()}))
