"""The MQTT-native utility meter: publishes ``{"ts": <epoch_ms>, "kw": x, "kwh": y}`` with QoS 1.

Used by the live simulator; the payload shape is what ``edge_configs/demo-plant.yaml`` maps with ``mqtt_json``.
Raises ``ConnectionLost`` when the broker cannot be reached at start.
"""

from __future__ import annotations

import contextlib
import uuid
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as mqtt

from datafactory.errors import ConnectionLost
from datafactory.settings import redact_url


class MeterPublisher:
    def __init__(self, url: str, topic: str) -> None:
        self.url = url
        self.topic = topic
        self.published = 0
        parts = urlsplit(url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"df-sim-meter-{uuid.uuid4().hex[:8]}", clean_session=True
        )
        if parts.username:
            self._client.username_pw_set(parts.username, parts.password)
        if parts.scheme == "mqtts":
            self._client.tls_set()
        self._last: mqtt.MQTTMessageInfo | None = None

    def start(self) -> None:
        try:
            self._client.connect(self._host, self._port, keepalive=30)
        except OSError as err:
            raise ConnectionLost(redact_url(self.url), f"cannot connect the simulated meter: {err}") from err
        self._client.loop_start()

    def publish(self, time_us: int, kw: float, kwh: float) -> None:
        payload = orjson.dumps({"ts": time_us // 1000, "kw": kw, "kwh": kwh})
        self._last = self._client.publish(self.topic, payload, qos=1)
        self.published += 1

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._last is not None and not self._last.is_published():
            # Not connected any more: the broker will not get the tail, and the count says what was sent.
            with contextlib.suppress(RuntimeError, ValueError):
                self._last.wait_for_publish(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()
