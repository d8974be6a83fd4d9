"""What the gateway benchmarks share (``gateway``, ``modbus``, ``s7``): ``datafactory gateway run`` as a separate
process on a generated plant config, measured by a subscriber on the broker that counts the samples it publishes;
the polled benchmarks' plant and request-rate measurement; and the machine facts every JSON line reports."""

from __future__ import annotations

import os
import statistics
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
        n, newest_us = count_samples(msg.payload)
        self.seen_any.set()
        if self.measuring and n:
            self.n += n
            self.max_lag = max(self.max_lag, time.time() - newest_us / 1e6)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def count_samples(payload: bytes) -> tuple[int, int]:
    """(samples, time of the last one in µs) of a data message, without building its samples: on these 2-core
    machines this subscriber shares the CPUs with the gateway and the device, and parsing every message whole
    took a fifth of a core. Each sample is a JSON array that opens with ``["`` (its name; a quote inside a string
    is escaped, so no value forms one). The count is taken only when the only strings are the names and the
    envelope's four keys and two values (``fmt``, ``gw``), which the quote count shows; any other message (string
    values, another envelope) is parsed whole."""
    n = payload.count(b'["')
    if n and payload.count(b'"') == 2 * (n + 6):
        last = orjson.loads(payload[payload.rindex(b'["') : payload.rindex(b"]]") + 1])
        return n, int(last[1])
    samples = orjson.loads(payload)["samples"]
    return len(samples), int(samples[-1][1]) if samples else 0


def proc_cpu(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def cpu_ticks() -> tuple[int, int]:
    """(steal, total) jiffies of all CPUs so far, from /proc/stat; (0, 0) where there is none."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return 0, 0
    return fields[7], sum(fields)


def steal_percent(since: tuple[int, int]) -> float | None:
    """The share of CPU time the hypervisor gave to others since ``since`` (``cpu_ticks()``): a virtual machine's
    rates fall with it, and on these machines it came in bursts that stopped both cores at once."""
    steal, total = cpu_ticks()
    if total <= since[1]:
        return None
    return round((steal - since[0]) / (total - since[1]) * 100, 1)


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


@dataclass(frozen=True)
class Rounds:
    """Bare-client and gateway phases measured alternately: the rates are medians, the ratio the median of each
    round's gateway ÷ bare (a round's two phases see the same machine)."""

    bare_rates: list[float]
    gateways: list[GatewayRun]
    steal_percent: float | None

    @property
    def ratios(self) -> list[float]:
        return [g.per_s / b for g, b in zip(self.gateways, self.bare_rates, strict=True)]

    def figures(self) -> dict[str, Any]:
        """The JSON keys the polled benchmarks share."""
        ratios = self.ratios
        return {
            "gateway_values_per_s": round(statistics.median(g.per_s for g in self.gateways)),
            "bare_client_values_per_s": round(statistics.median(self.bare_rates)),
            "ratio_vs_bare": round(statistics.median(ratios), 3),
            "ratio_vs_bare_each": [round(r, 3) for r in ratios],
            "gateway_cpu_us_per_value": round(statistics.median(g.cpu_s / g.samples * 1e6 for g in self.gateways), 2),
            "cpu_steal_percent": self.steal_percent,
        }


ROUNDS = 5  # full runs; --quick runs 3


def alternate(bare: Callable[[], float], plant: Callable[[str], dict[str, Any]], mqtt_url: str, *, warmup_s: float,
              duration_s: float, what: str, rounds: int = ROUNDS) -> Rounds:
    """``rounds`` rounds of one bare phase (``bare()``: the bare client's rate) and one gateway phase
    (``measure_gateway`` on ``plant``). Alternating, because on the 2-core machines the bare rate alone drifted
    by a third within a minute (CPU taken by the hypervisor in bursts): one phase of each measured the drift as
    much as the gateway."""
    ticks = cpu_ticks()
    bare_rates: list[float] = []
    gateways: list[GatewayRun] = []
    for k in range(rounds):
        bare_rates.append(bare())
        gateways.append(measure_gateway(plant, mqtt_url, warmup_s=warmup_s, duration_s=duration_s))
        print(f"round {k + 1}/{rounds}: bare client {bare_rates[-1]:,.0f} {what}/s, gateway "
              f"{gateways[-1].per_s:,.0f} published", file=sys.stderr)  # fmt: skip
    return Rounds(bare_rates, gateways, steal_percent(ticks))
