"""What the gateway benchmarks share (``gateway``, ``modbus``, ``s7``): ``datafactory gateway run`` as a separate
process on a generated plant config, measured by a subscriber on the broker that counts the samples it publishes;
the polled benchmarks' plant and request-rate measurement; and the machine facts every JSON line reports."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psutil
import yaml


class BrokerCounter:
    """Counts samples arriving on the broker and their lag behind the source timestamp."""

    def __init__(self, mqtt_url: str, topic_filter: str) -> None:
        import paho.mqtt.client as paho
        from paho.mqtt.enums import CallbackAPIVersion

        self.n = 0
        self.status: dict[str, Any] = {}
        self.max_lag = 0.0
        self.measuring = False
        self.seen_any = threading.Event()
        parts = urlsplit(mqtt_url)
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{uuid.uuid4().hex[:6]}")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic_filter, qos=1)
        self.client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        if msg.topic.endswith("/status") and msg.payload:
            self.status = orjson.loads(msg.payload)
        if not msg.topic.endswith("/data"):
            return
        samples = orjson.loads(msg.payload)["samples"]
        self.seen_any.set()
        if self.measuring and samples:
            self.n += len(samples)
            self.max_lag = max(self.max_lag, time.time() - samples[-1][1] / 1e6)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def proc_cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def timescaledb() -> bool | None:
    """Whether the server offers TimescaleDB (reported in every JSON line), or None when it cannot be asked."""
    try:
        import psycopg

        url = os.environ.get("DATAFACTORY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
            return bool(row and row[0])
    except Exception:  # the gateway benchmarks do not need the database; just report what we could see
        return None


def clear_retained(mqtt_url: str, enterprise: str) -> None:
    """Remove the retained meta/status messages this run left on the shared broker."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    parts = urlsplit(mqtt_url)
    topics: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: topics.append(m.topic) if m.retain else None
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    client.subscribe(f"df/v1/{enterprise}/#")
    time.sleep(1.0)
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


@dataclass(frozen=True)
class GatewayRun:
    samples: int  # published while measuring
    elapsed_s: float
    cpu_s: float  # the gateway process's user + system time while measuring
    max_lag_s: float  # of a batch's newest sample behind its source timestamp
    status: dict[str, Any] = field(default_factory=dict)  # the gateway's last status message

    @property
    def per_s(self) -> float:
        return self.samples / self.elapsed_s

    @property
    def cpu_percent(self) -> float:
        return self.cpu_s / self.elapsed_s * 100


def measure_gateway(plant: Callable[[str], dict[str, Any]], mqtt_url: str, *, warmup_s: float, duration_s: float,
                    start_timeout_s: float = 60.0) -> GatewayRun:
    """Run ``datafactory gateway run`` on ``plant(enterprise)`` (a fresh enterprise id, so nothing else on the
    shared broker is counted) and count what it publishes for ``duration_s`` after the first data and a warm-up."""
    enterprise = f"bench{uuid.uuid4().hex[:8]}"
    counter = BrokerCounter(mqtt_url, f"df/v1/{enterprise}/#")
    try:
        with tempfile.TemporaryDirectory(prefix="df-bench-gw-") as tmp:
            config = Path(tmp) / "plant.yaml"
            config.write_text(yaml.safe_dump(plant(enterprise), allow_unicode=True))
            log_path = Path(tmp) / "gateway.log"
            with log_path.open("wb") as log:
                cmd = [sys.executable, "-m", "app.cli.main", "gateway", "run", "--config", str(config),
                       "--mqtt-url", mqtt_url, "--state-dir", tmp]
                gw = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
                try:
                    if not counter.seen_any.wait(start_timeout_s):
                        raise RuntimeError(f"the gateway delivered nothing; log: {log_path.read_text()[-2000:]}")
                    time.sleep(warmup_s)
                    proc = psutil.Process(gw.pid)
                    cpu0, t0 = proc_cpu(proc), time.monotonic()
                    counter.n, counter.measuring = 0, True
                    time.sleep(duration_s)
                    counter.measuring = False
                    cpu1, t1 = proc_cpu(proc), time.monotonic()
                    return GatewayRun(counter.n, t1 - t0, cpu1 - cpu0, counter.max_lag, dict(counter.status))
                finally:
                    gw.terminate()
                    gw.wait(30)
    finally:
        counter.close()
        clear_retained(mqtt_url, enterprise)


POLLED_CELL = "bench/line-1/cell-1"


def polled_plant(enterprise: str, source: dict[str, Any]) -> dict[str, Any]:
    """The plant config of a polled benchmark (Modbus, S7): one source, every item on one cell, large batches."""
    from tests.support.gateway_env import plant_doc

    doc = plant_doc(enterprise, sources=[source], cells=[POLLED_CELL])
    doc["gateway"] |= {"batch_max_samples": 5000, "status_interval_s": 2}
    return doc


async def requests_per_s(adapter: Any, duration: float) -> float:
    """Requests per second a polled source adapter sends while its stream is read for ``duration`` seconds."""
    await adapter.open()
    start = time.monotonic()
    async for _ in adapter.stream():
        if time.monotonic() - start >= duration:
            break
    elapsed = time.monotonic() - start
    await adapter.close()
    return float(adapter.requests / elapsed)
