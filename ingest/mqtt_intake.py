"""The MQTT side of a worker: a persistent MQTT 5 session whose messages are acknowledged only on request.

paho-mqtt runs the network loop in its own thread; each received message is decoded there (``decode``) and put
on a bounded queue for the writer. Nothing is acknowledged automatically (``manual_ack``): the worker calls
``ack`` after the rows a message carried are committed. The broker keeps at most ``receive_maximum``
unacknowledged messages in flight to us, so a slow database makes the broker hold the backlog, not our memory.
A persistent session (``clean_start=False`` with a session expiry) means anything unacknowledged when we crash
or disconnect is redelivered. Raises ``ConnectionLost`` when the first connection or subscription fails.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from datafactory.contract.sample import now_us
from datafactory.errors import ConnectionLost
from ingest.decode import Inbound, decode_message
from ingest.options import IngestOptions

log = logging.getLogger(__name__)


class MqttIntake:
    def __init__(self, options: IngestOptions) -> None:
        self.options = options
        # QoS 1 deliveries are bounded by the receive maximum; the slack absorbs QoS 0 messages, beyond which
        # the network thread blocks and TCP pushes back on the broker.
        self.inbox: queue.Queue[Inbound] = queue.Queue(maxsize=options.receive_maximum + 1000)
        self.generation = 0  # incremented on every (re)connect
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._stopping = False
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.options.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        url = urlsplit(self.options.mqtt_url)
        if url.username:
            client.username_pw_set(unquote(url.username), self.options.mqtt_password or url.password)
        if url.scheme == "mqtts":
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    @property
    def endpoint(self) -> str:
        url = urlsplit(self.options.mqtt_url)
        return f"{url.hostname or '127.0.0.1'}:{url.port or (8883 if url.scheme == 'mqtts' else 1883)}"

    def start(self, timeout_s: float = 15.0) -> None:
        url = urlsplit(self.options.mqtt_url)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.options.session_expiry_s
        props.ReceiveMaximum = self.options.receive_maximum
        try:
            self._client.connect(
                url.hostname or "127.0.0.1",
                url.port or (8883 if url.scheme == "mqtts" else 1883),
                keepalive=30,
                clean_start=False,
                properties=props,
            )
        except OSError as err:
            raise ConnectionLost(self.endpoint, f"cannot connect: {err}") from err
        self._client.loop_start()
        if not self.subscribed.wait(timeout_s):
            self.stop()
            raise ConnectionLost(self.endpoint, f"not subscribed to {self.options.subscriptions()} in {timeout_s} s")

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect. Unacknowledged messages stay with the broker unless ``end_session`` discards the session."""
        self._stopping = True
        if end_session and self._client.is_connected():
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
            self._client.disconnect(properties=props)
        else:
            self._client.disconnect()
        self._client.loop_stop()

    def ack(self, msg: Inbound) -> bool:
        """Acknowledge a message; False if its connection is gone (the broker will redeliver it)."""
        if msg.qos == 0:
            return True
        if msg.generation != self.generation:
            return False
        self._client.ack(msg.mid, msg.qos)
        return True

    # -- paho callbacks (network thread) --------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self.endpoint, reason)
            return
        self.generation += 1
        self.connected.set()
        log.info(
            "connected to %s as %s (session present: %s)", self.endpoint, self.options.client_id, flags.session_present
        )
        options = SubscribeOptions(qos=1)
        client.subscribe([(f, options) for f in self.options.subscriptions()])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            log.error("subscription to %s refused: %s", self.options.subscriptions(), failed)
            return
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any) -> None:
        self.connected.clear()
        if not self._stopping:
            log.warning("disconnected from %s (%s); reconnecting", self.endpoint, reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers should refuse such topics; never let one stop the loop
            topic = bytes(message._topic).decode("utf-8", errors="replace")
        msg = Inbound(
            topic=topic,
            payload=bytes(message.payload),
            mid=message.mid,
            qos=message.qos,
            dup=bool(message.dup),
            generation=self.generation,
            received_us=now_us(),
        )
        decode_message(msg, self.options)
        while True:
            try:
                self.inbox.put(msg, timeout=0.5)
                return
            except queue.Full:
                if self._stopping:
                    return  # not acknowledged: the broker redelivers it to the next session
