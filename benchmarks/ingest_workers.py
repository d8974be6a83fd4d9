"""Ingest workers as processes of their own, for the benchmarks that drain a broker with them (ingest, city): the
command line, ending their persistent sessions, waiting for their first health row."""

from __future__ import annotations

import sys
import time

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties


def worker_argv(
    db_url: str,
    broker_url: str,
    name: str,
    share_group: str | None,
    writers: int,
    *,
    enterprise: str = "bench",
    processes: int = 1,
) -> list[str]:
    """``datafactory ingest run`` as a process of its own (with ``processes`` > 1: a service of that many worker
    processes, ``<name>-1`` …), subscribed to the enterprise's topics."""
    argv = [
        sys.executable,
        "-m",
        "app.cli.main",
        "ingest",
        "run",
        "--database-url",
        db_url,
        "--mqtt-url",
        broker_url,
        "--topic-filter",
        f"df/v1/{enterprise}/#",
        "--worker",
        name,
        "--health-interval-s",
        "0.2",
        "--writers",
        str(writers),
        "--processes",
        str(processes),
    ]
    return [*argv, "--share-group", share_group] if share_group else argv


def end_sessions(broker_url: str, names: list[str]) -> None:
    """Discard the workers' persistent sessions, or the broker would keep queueing later runs' messages for them."""
    port = int(broker_url.rsplit(":", 1)[1])
    for name in names:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"df-ingest-{name}", protocol=mqtt.MQTTv5
        )
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 0
        client.connect("127.0.0.1", port, clean_start=True, properties=props)
        client.loop_start()
        deadline = time.monotonic() + 10
        while not client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        client.disconnect()
        client.loop_stop()


def wait_health(db_url: str, workers: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT count(*) FROM ingest_health").fetchone()
        if row and row[0] >= workers:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{workers} ingest worker(s) did not report health within {timeout_s} s")
