"""Store-and-forward under faults, on a private Mosquitto: nothing is lost.

* the broker is down for 30 s under steady load → every value arrives after recovery, in order; the only
  duplicates are re-sends of whole batches that were in flight when the broker died (at-least-once);
* the gateway process is SIGKILLed during a broker outage and restarted → everything it had buffered arrives.
"""

from __future__ import annotations

import collections
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from app.harness.broker import MosquittoBroker
from datafactory.contract.quality import BAD_SHUTDOWN
from tests.support.gateway_env import (
    CounterWriter,
    GatewayThread,
    OpcUaTestServer,
    collect,
    free_port,
    generic_nodes,
    opcua_source,
    plant,
    plant_doc,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
CELL = "press/line-1/press-01"
NAMES = ["A", "B", "C"]


def _source(endpoint: str) -> dict:
    return opcua_source(endpoint, generic_nodes(NAMES, CELL, queue_size=100))


def _values(col) -> dict[str, list[float]]:
    out: dict[str, list[float]] = collections.defaultdict(list)
    for _, s in col.data_samples():
        if not math.isnan(s.value):
            out[s.signal].append(s.value)
    return out


@pytest.fixture
def broker(tmp_path):
    b = MosquittoBroker(port=free_port(), data_dir=tmp_path / "broker", extra_config="max_queued_messages 100000")
    b.start()
    yield b
    b.kill()


def test_broker_outage_of_30_s_loses_nothing(tmp_path, broker, enterprise) -> None:
    server = OpcUaTestServer(free_port(), dict.fromkeys(NAMES, 0.0)).start()
    cfg = plant(enterprise, sources=[_source(server.endpoint)], cells=[CELL])
    try:
        with collect(broker.url, f"df/v1/{enterprise}/+/+/+/+/data", client_id=f"sub-{enterprise}", clean=False) as col:
            with GatewayThread(cfg, mqtt_url=broker.url, state_dir=tmp_path) as gw:
                assert col.wait_for(lambda: all(_values(col)[n.lower()] for n in NAMES))  # subscribed: initial values
                with CounterWriter(server, NAMES, rate_hz=20) as writer:
                    assert col.wait_for(lambda: len(_values(col)["a"]) > 20)
                    broker.stop()
                    outage_start = time.monotonic()
                    time.sleep(5)
                    buffered_early = gw.gateway.buffer.depth_samples
                    time.sleep(max(0.0, 30 - (time.monotonic() - outage_start)))
                    buffered = gw.gateway.buffer.depth_samples
                    assert buffered > buffered_early > 0, "samples were not buffered during the outage"
                    assert buffered >= 25 * 20 * len(NAMES) * 0.8  # ~30 s of 3 signals at 20 Hz waited on disk
                    broker.start()
                    # The gateway retries with a backoff of up to ~6 s and then replays what it buffered; it
                    # must be given that time before the clean stop below, or the replay never happens.
                    drained = time.monotonic() + 60
                    while gw.gateway.buffer.depth_samples > 20 * len(NAMES) and time.monotonic() < drained:
                        time.sleep(0.2)
                    assert gw.gateway.buffer.depth_samples <= 20 * len(NAMES), "the buffer did not drain"
                    time.sleep(3)  # steady load continues after recovery
                time.sleep(1.5)  # the last writes reach the gateway with the next publish response
            written = writer.count
            want = [float(i) for i in range(1, written + 1)]

            def complete() -> bool:
                got = _values(col)
                return all(sorted(set(got[n.lower()]) - {0.0}) == want for n in NAMES)

            missing = {k: sorted(set(want) - set(v))[:20] for k, v in _values(col).items()}
            assert col.wait_for(complete, timeout=90), missing  # the replay competes with 2 other test workers
            # At-least-once: a batch the broker had received when it went down, but whose PUBACK never came
            # back, is sent again. Such a re-send is the same stored batch (same seq) — never new samples twice
            # — and there are at most as many as were in flight. Ingest dedupes them by (signal, time).
            seqs = [orjson.loads(p)["seq"] for t, p, _ in col.messages if t.endswith("/data") and p]
            resent = len(seqs) - len(set(seqs))
            assert resent <= gw.gateway.publisher.window
            unique: dict[int, list[list[Any]]] = {}  # seq → its samples, each [signal, time_us, value, quality]
            for t, p, _ in col.messages:
                if t.endswith("/data") and p:
                    unique.setdefault(orjson.loads(p)["seq"], orjson.loads(p)["samples"])
            for n in NAMES:
                mine = [(v, q) for seq in sorted(unique) for sig, _, v, q in unique[seq] if sig == n.lower()]
                assert mine[-1] == (None, BAD_SHUTDOWN)  # the clean stop at the end is marked, after every value
                values = [v for v, _ in mine if v is not None]
                assert len(values) == len(set(values)), f"{n}: the same sample in two different batches"
                assert values == sorted(values), f"{n}: replay out of order"
            assert gw.gateway.buffer.dropped_samples == 0
    finally:
        server.close()


def _buffered_samples(path: Path) -> set[tuple[str, int, float]]:
    conn = sqlite3.connect(path)
    try:
        rows = conn.execute("SELECT payload FROM batches").fetchall()
    finally:
        conn.close()
    return {(s[0], s[1], s[2]) for (payload,) in rows for s in orjson.loads(payload)["samples"]}


def _start_gateway(config: Path, broker_url: str, state_dir: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.cli.main",
            "gateway",
            "run",
            "--config",
            str(config),
            "--mqtt-url",
            broker_url,
            "--state-dir",
            str(state_dir),
        ],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env=os.environ | {"PYTHONPATH": str(Path.cwd())},
    )


def test_sigkill_during_outage_loses_nothing_buffered(tmp_path, broker, enterprise) -> None:
    server = OpcUaTestServer(free_port(), dict.fromkeys(NAMES, 0.0)).start()
    config = tmp_path / "plant.yaml"
    config.write_text(yaml.safe_dump(plant_doc(enterprise, sources=[_source(server.endpoint)], cells=[CELL])))
    state, log = tmp_path / "state", tmp_path / "gateway.log"
    buffer_path = state / "gw-1.buffer.sqlite"
    gateway = _start_gateway(config, broker.url, state, log)
    try:
        with collect(broker.url, f"df/v1/{enterprise}/+/+/+/+/data", client_id=f"sub-{enterprise}", clean=False) as col:
            assert col.wait_for(lambda: all(_values(col)[n.lower()] for n in NAMES), timeout=30), log.read_text()
            with CounterWriter(server, NAMES, rate_hz=20):
                assert col.wait_for(lambda: len(_values(col)["a"]) > 20, timeout=30), log.read_text()
                broker.stop()
                time.sleep(6)
                gateway.send_signal(signal.SIGKILL)
                gateway.wait(10)
            buffered = _buffered_samples(buffer_path)
            assert len(buffered) > 4 * 20 * len(NAMES) * 0.8, "the outage was not buffered on disk"
            broker.start()
            gateway = _start_gateway(config, broker.url, state, log)
            delivered = lambda: {(s.signal, s.time_us, s.value) for _, s in col.data_samples()}  # noqa: E731
            assert col.wait_for(lambda: buffered <= delivered(), timeout=40), len(buffered - delivered())
            got = _values(col)
            for n in NAMES:  # no gap either: every value up to the newest one on disk arrived
                newest = max(v for sig, _, v in buffered if sig == n.lower())
                assert set(got[n.lower()]) >= {float(i) for i in range(1, int(newest) + 1)}
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(15)
        server.close()
