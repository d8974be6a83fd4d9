"""What the demo shows while it runs: samples published on the broker and what the database holds.

``PublishedCounter`` subscribes (MQTT 3.1.1, QoS 0, so it works with every broker kind and never holds up the
pipeline) to the plant's data topics and counts the samples in each batch. ``database_snapshot`` reads the
counts the summary reports; each query is cheap at demo scale.
"""

from __future__ import annotations

import os
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.db.connect import connect
from datafactory.errors import DataFactoryError

# Distinct keys kept for the "unique published" figure: a few minutes of demo, not an unbounded run.
_MAX_TRACKED = 2_000_000


class PublishedCounter:
    """Counts samples in data messages below ``df/v1/<enterprise>/#`` (a passive observer)."""

    def __init__(self, mqtt_url: str, enterprise: str) -> None:
        parts = urlsplit(mqtt_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._filter = f"df/v1/{enterprise}/+/+/+/+/data" if enterprise else "df/v1/+/+/+/+/+/data"
        self._lock = threading.Lock()
        self.samples = 0
        self.messages = 0
        self._keys: set[tuple[str, str, object]] = set()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"df-demo-observer-{uuid.uuid4().hex[:8]}")
        if parts.username:
            password = parts.password or os.environ.get("DATAFACTORY_MQTT_PASSWORD")
            self._client.username_pw_set(parts.username, password)
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: object, _p: object) -> None:
        client.subscribe(self._filter, qos=0)

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = orjson.loads(msg.payload)
            items = doc.get("samples", []) if isinstance(doc, dict) else []
        except orjson.JSONDecodeError:
            items = []  # not ours to judge: ingest dead-letters it
        keys = set()
        for item in items if isinstance(items, list) else []:
            if isinstance(item, list) and len(item) >= 2 and isinstance(item[0], str):
                keys.add((msg.topic, item[0], item[1]))
        with self._lock:
            self.samples += len(items)
            self.messages += 1
            if len(self._keys) < _MAX_TRACKED:
                self._keys |= keys

    @property
    def unique_samples(self) -> int | None:
        """Distinct (cell, signal, time) published; None past the tracking limit. The database keys samples the
        same way, so a sample sent twice (a gateway re-reading values after reconnecting) is stored once."""
        with self._lock:
            return len(self._keys) if len(self._keys) < _MAX_TRACKED else None

    def start(self) -> None:
        self._client.connect_async(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@dataclass
class DatabaseSnapshot:
    signals: int = 0
    samples: int = 0
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    newest_sample: datetime | None = None
    oldest_sample: datetime | None = None
    error: str = ""

    def since(self, baseline: DatabaseSnapshot) -> DatabaseSnapshot:
        """What was added after ``baseline`` (a database the demo ran on before keeps its earlier samples)."""
        reasons = {
            reason: count - baseline.dead_letter_reasons.get(reason, 0)
            for reason, count in self.dead_letter_reasons.items()
            if count > baseline.dead_letter_reasons.get(reason, 0)
        }
        return DatabaseSnapshot(
            signals=self.signals,
            samples=self.samples - baseline.samples,
            dead_letters=self.dead_letters - baseline.dead_letters,
            dead_letter_reasons=reasons,
            newest_sample=self.newest_sample,
            oldest_sample=self.oldest_sample,
            error=self.error or baseline.error,
        )


def database_snapshot(
    database_url: str, enterprise: str, *, reasons: bool = False, span_from: datetime | None = None
) -> DatabaseSnapshot:
    """Counts for one enterprise (all enterprises if empty); errors are reported in ``.error``, not raised.
    The oldest/newest sample times consider samples from ``span_from`` on (this run's simulated start)."""
    snap = DatabaseSnapshot()
    try:
        with connect(database_url, autocommit=True, application_name="datafactory-demo") as conn:
            plant_clause = "p.enterprise = %(e)s OR %(e)s = ''"
            row = conn.execute(
                f"SELECT count(*) FROM signals s JOIN plants p ON p.id = s.plant_id WHERE {plant_clause}",
                {"e": enterprise},
            ).fetchone()
            snap.signals = int(row[0]) if row else 0
            row = conn.execute(
                "SELECT count(*), min(x.time) FILTER (WHERE x.time >= %(f)s),"
                " max(x.time) FILTER (WHERE x.time >= %(f)s) FROM samples x JOIN signals s ON s.id = x.signal_id"
                f" JOIN plants p ON p.id = s.plant_id WHERE {plant_clause}",
                {"e": enterprise, "f": span_from or datetime(1970, 1, 1, tzinfo=UTC)},
            ).fetchone()
            if row:
                snap.samples, snap.oldest_sample, snap.newest_sample = int(row[0]), row[1], row[2]
            # Dead letters of a plant whose topic could not even be parsed have no plant_id: count them all.
            row = conn.execute("SELECT count(*) FROM dead_letters").fetchone()
            snap.dead_letters = int(row[0]) if row else 0
            if reasons:
                snap.dead_letter_reasons = dict(
                    conn.execute("SELECT reason, count(*) FROM dead_letters GROUP BY 1 ORDER BY 2 DESC").fetchall()
                )
    except (psycopg.Error, OSError, DataFactoryError) as err:
        # The live line shows the problem and the demo carries on: the database may be restarting.
        text = str(err).strip()
        snap.error = text.splitlines()[0] if text else type(err).__name__
    return snap
