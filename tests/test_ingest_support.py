"""Shared helpers of the ingest tests: a QoS 1 publisher, a worker factory, and readers of what was stored.

Collected by pytest as a module without tests; the ingest test modules import from it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.contract.payload import SignalMeta, encode_batch, encode_meta
from datafactory.contract.sample import Sample, datetime_to_us, now_us
from datafactory.contract.topics import CellPath, TopicKind
from ingest import IngestOptions, IngestWorker


class Publisher:
    """A plain MQTT client (version 5 unless told otherwise) publishing at QoS 1 and waiting until the broker
    has every message."""

    def __init__(self, mqtt_url: str, *, protocol: mqtt.MQTTProtocolVersion = mqtt.MQTTv5) -> None:
        url = urlsplit(mqtt_url)
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"test-pub-{uuid.uuid4().hex[:8]}",
            protocol=protocol,
        )
        self.client.max_inflight_messages_set(200)
        self.client.max_queued_messages_set(0)
        self.client.connect(url.hostname or "127.0.0.1", url.port or 1883)
        self.client.loop_start()
        self._pending: list[mqtt.MQTTMessageInfo] = []

    def publish(self, topic: str, payload: bytes, *, retain: bool = False, qos: int = 1) -> None:
        self._pending.append(self.client.publish(topic, payload, qos=qos, retain=retain))

    def flush(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        for info in self._pending:
            info.wait_for_publish(max(deadline - time.monotonic(), 0.1))
            assert info.is_published(), "the broker did not acknowledge a publish"
        self._pending.clear()

    def close(self) -> None:
        self.flush()
        self.client.disconnect()
        self.client.loop_stop()


def cell(enterprise: str, name: str = "press-1") -> CellPath:
    return CellPath(enterprise, "site-1", "area-1", "line-1", name)


def publish_meta(pub: Publisher, path: CellPath, names: Iterable[str]) -> None:
    signals = [SignalMeta(n, unit="kW") for n in names]
    pub.publish(
        path.topic(TopicKind.META),
        encode_meta(signals, gateway="gw-1", attributes={"ideal_cycle_time_s": 2.0}),
        retain=True,
    )


def make_samples(names: list[str], n: int, *, start_us: int | None = None, step_us: int = 1000) -> list[Sample]:
    """n samples per signal at distinct, exactly representable times and values."""
    start = now_us() - 600_000_000 if start_us is None else start_us
    return [Sample(name, start + i * step_us, i * 0.25 + k, i % 3) for i in range(n) for k, name in enumerate(names)]


def publish_samples(pub: Publisher, path: CellPath, samples: list[Sample], per_message: int = 100) -> None:
    for i in range(0, len(samples), per_message):
        pub.publish(path.topic(TopicKind.DATA), encode_batch(samples[i : i + per_message], gateway="gw-1", seq=i))


def worker_options(db_url: str, mqtt_url: str, enterprise: str, **overrides: object) -> IngestOptions:
    values: dict[str, object] = {
        "database_url": db_url,
        "mqtt_url": mqtt_url,
        "topic_filter": f"df/v1/{enterprise}/#",
        "worker": f"w-{enterprise}",
        "session_expiry_s": 300,
        "health_interval_s": 0.5,
        "batch_wait_s": 0.05,
    }
    values.update(overrides)
    return IngestOptions(**values)  # type: ignore[arg-type]


def start_worker(db_url: str, mqtt_url: str, enterprise: str, **overrides: object) -> IngestWorker:
    worker = IngestWorker(worker_options(db_url, mqtt_url, enterprise, **overrides))
    worker.start()
    return worker


def wait_until(predicate: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def stored_samples(db_url: str) -> list[tuple[str, int, float | None, int]]:
    """(signal, time_us, value, unsigned quality) of every stored sample, ordered."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT sp.signal, s.time, s.value, s.quality FROM samples s JOIN signal_paths sp ON sp.signal_id ="
            " s.signal_id ORDER BY 1, 2"
        ).fetchall()
    return [(r[0], datetime_to_us(r[1]), r[2], r[3] & 0xFFFFFFFF) for r in rows]


def count(db_url: str, sql: str, params: tuple[object, ...] = ()) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def expected(samples: Iterable[Sample]) -> list[tuple[str, int, float | int | bool | str | None, int]]:
    """What the database should hold for ``samples``, in ``stored_samples``' order (a sample's value is typed)."""
    return sorted((s.signal, s.time_us, s.value, s.quality) for s in samples)
