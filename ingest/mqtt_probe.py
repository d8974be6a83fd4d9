"""Does the broker speak MQTT 5? One throwaway CONNECT answers it before the worker's real session is opened.

Why not just try the real session: the embedded amqtt broker (MQTT 3.1.1 only) misreads an MQTT 5 CONNECT that
carries properties (ours has Session Expiry and Receive Maximum) and waits for bytes that never come, so that
CONNECT gets no answer at all. A CONNECT without properties, credentials or will is read far enough for amqtt to
answer "unacceptable protocol version" (paho: reason "Unsupported protocol version", 0x84). Any other answer,
including "not authorized", means the broker speaks MQTT 5; no answer means we cannot tell, and the caller keeps
MQTT 5 so that nothing is weakened on a guess.
"""

from __future__ import annotations

import queue
import ssl
import uuid
from typing import Any
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

UNSUPPORTED_PROTOCOL_VERSION = 0x84  # CONNACK reason; paho maps a 3.1.1 broker's return code 1 to it


def broker_refuses_mqtt5(mqtt_url: str, client_id: str, timeout_s: float = 5.0) -> bool:
    """True only if the broker answered an MQTT 5 CONNECT with "Unsupported protocol version"."""
    url = urlsplit(mqtt_url)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"{client_id}-probe-{uuid.uuid4().hex[:6]}",  # never the worker's own session
        protocol=mqtt.MQTTv5,
    )
    if url.scheme == "mqtts":
        client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
    answers: queue.Queue[int] = queue.Queue()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        answers.put(int(reason.value))
        c.disconnect()

    client.on_connect = on_connect
    try:
        # clean_start with no session expiry: the broker forgets the probe when it disconnects.
        client.connect(url.hostname or "127.0.0.1", url.port or (8883 if url.scheme == "mqtts" else 1883), 10)
    except OSError:
        return False  # the real connection reports it
    client.loop_start()
    try:
        return answers.get(timeout=timeout_s) == UNSUPPORTED_PROTOCOL_VERSION
    except queue.Empty:
        return False
    finally:
        client.disconnect()
        client.loop_stop()
