"""The MQTT side of a worker: a persistent MQTT 5 session whose messages are acknowledged only on request.

paho-mqtt runs the network loop in its own thread, reading the socket in large chunks (``mqtt_buffered``); each received
message is decoded there (``decode``) and put on a bounded queue for the writer. Nothing is acknowledged automatically
(``manual_ack``): the worker calls ``ack`` after the rows a message carried are committed. The broker keeps at most
``receive_maximum`` unacknowledged messages in flight to us, so a slow database makes the broker hold the backlog, not
our memory, and never sends a packet larger than the contract's ``MAX_PACKET_BYTES`` (MQTT 5 Maximum Packet Size).
A persistent session (``clean_start=False`` with a session expiry) means anything unacknowledged when we crash
or disconnect is redelivered. Raises ``ConnectionLost`` when the first connection or subscription fails.

With ``mqtt_protocol="auto"`` a broker that answers a probing MQTT 5 CONNECT with "Unsupported protocol version"
(``mqtt_probe``; the embedded amqtt broker does, Mosquitto never does) gets an MQTT 3.1.1 session instead:
``clean_session=False`` and the same ack-after-commit, but no receive maximum (the broker decides how much is in
flight; the bounded inbox and TCP push back) and no session expiry. No other answer is a reason to downgrade.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from datafactory.contract.payload import MAX_PACKET_BYTES
from datafactory.contract.sample import now_us
from datafactory.errors import ConnectionLost
from datafactory.settings import redact_url
from ingest.decode import Inbound, decode_message
from ingest.mqtt_buffered import BufferedReadClient
from ingest.mqtt_probe import broker_refuses_mqtt5
from ingest.options import IngestOptions
from ingest.repeats import RepeatLog

log = logging.getLogger(__name__)


class MqttIntake:
    def __init__(self, options: IngestOptions, repeats: RepeatLog | None = None) -> None:
        self.options = options
        self.repeats = repeats or RepeatLog(log)
        # QoS 1 deliveries are bounded by the receive maximum; the slack absorbs QoS 0 messages, beyond which
        # the network thread blocks and TCP pushes back on the broker.
        self.inbox: queue.Queue[Inbound] = queue.Queue(maxsize=options.receive_maximum + 1000)
        self.generation = 0  # incremented on every (re)connect
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._stopping = False
        self.protocol = mqtt.MQTTv311 if options.mqtt_protocol == "3.1.1" else mqtt.MQTTv5
        self._client = self._make_client()

    def _make_client(self) -> BufferedReadClient:
        v311 = self.protocol == mqtt.MQTTv311
        client = BufferedReadClient(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.options.client_id,
            protocol=self.protocol,
            clean_session=False if v311 else None,  # MQTT 5 takes clean_start in connect() instead
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
        client.on_message = self._on_message  # what the fast path leaves to paho (e.g. messages with properties)
        client.on_publish_fast = self._on_publish
        return client

    @property
    def endpoint(self) -> str:
        url = urlsplit(self.options.mqtt_url)
        return f"{url.hostname or '127.0.0.1'}:{url.port or (8883 if url.scheme == 'mqtts' else 1883)}"

    def start(self, timeout_s: float = 15.0) -> None:
        if self.options.mqtt_protocol != "3.1.1" and broker_refuses_mqtt5(
            self.options.mqtt_url, self.options.client_id
        ):
            if self.options.mqtt_protocol == "5":
                raise ConnectionLost(
                    self.endpoint, "the broker does not speak MQTT 5 (mqtt_protocol is 5; 'auto' would use 3.1.1)"
                )
            self.protocol = mqtt.MQTTv311
            self._client = self._make_client()
            self._warn_v311("the broker refused MQTT 5 (unsupported protocol version)")
        elif self.protocol == mqtt.MQTTv311:
            self._warn_v311("mqtt_protocol is 3.1.1")
        self._connect()
        if not self.subscribed.wait(timeout_s):
            self.stop()
            raise ConnectionLost(self.endpoint, f"not subscribed to {self.options.subscriptions()} in {timeout_s} s")

    def _connect(self) -> None:
        url = urlsplit(self.options.mqtt_url)
        host, port = url.hostname or "127.0.0.1", url.port or (8883 if url.scheme == "mqtts" else 1883)
        try:
            if self.protocol == mqtt.MQTTv5:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = self.options.session_expiry_s
                props.ReceiveMaximum = self.options.receive_maximum
                # The broker must not even send us what the contract refuses: no 256 MB message in our memory.
                props.MaximumPacketSize = MAX_PACKET_BYTES
                self._client.connect(host, port, keepalive=30, clean_start=False, properties=props)
            else:
                self._client.connect(host, port, keepalive=30)
        except OSError as err:
            raise ConnectionLost(self.endpoint, f"cannot connect: {err}") from err
        self._client.loop_start()

    def _warn_v311(self, why: str) -> None:
        log.warning(
            "%s: using MQTT 3.1.1 with %s — a persistent session (clean_session=False) and acknowledgement after "
            "commit as with MQTT 5, but no receive maximum (the broker decides how many unacknowledged messages "
            "are in flight; only our bounded inbox pushes back) and no session expiry (the broker keeps the session "
            "until it is cleaned). On the embedded amqtt broker, messages published while this worker is away are "
            "not queued for it and nothing survives a broker restart: use Mosquitto in production",
            why,
            redact_url(self.options.mqtt_url),
        )

    def stop(self, *, end_session: bool = False) -> None:
        """Disconnect. Unacknowledged messages stay with the broker unless ``end_session`` discards the session."""
        self._stopping = True
        if end_session and self._client.is_connected() and self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.DISCONNECT)
            props.SessionExpiryInterval = 0
            self._client.disconnect(properties=props)
        else:
            self._client.disconnect()
        self._client.loop_stop()
        if end_session and self.protocol == mqtt.MQTTv311:
            self._end_v311_session()

    def _end_v311_session(self) -> None:
        """MQTT 3.1.1 has no session expiry: a clean_session=True connection with our client id discards it."""
        url = urlsplit(self.options.mqtt_url)
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.options.client_id,
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if url.username:
            client.username_pw_set(unquote(url.username), self.options.mqtt_password or url.password)
        if url.scheme == "mqtts":
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        try:
            client.connect(url.hostname or "127.0.0.1", url.port or (8883 if url.scheme == "mqtts" else 1883), 10)
            client.loop_start()
            deadline = time.monotonic() + 5
            while not client.is_connected() and time.monotonic() < deadline:
                time.sleep(0.05)
            client.disconnect()
            client.loop_stop()
        except OSError as err:
            log.warning("could not end the MQTT session of %s: %s", self.options.client_id, err)

    def ack_many(self, msgs: Sequence[Inbound]) -> None:
        """Acknowledge a committed batch with one write of its PUBACKs (``BufferedReadClient.ack_many``). A message
        of an older connection is not acknowledged: that connection is gone and the broker will redeliver it."""
        current = [m for m in msgs if m.qos and m.generation == self.generation]
        self._client.ack_many([m.mid for m in current if m.qos == 1])
        for m in current:
            if m.qos == 2:  # never from our QoS 1 subscription; should a broker send one, paho's own PUBCOMP path
                self._client.ack(m.mid, 2)

    # -- paho callbacks (network thread) --------------------------------------------------------------------

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, properties: Any) -> None:
        if reason.is_failure:
            log.warning("broker %s refused the connection: %s", self.endpoint, reason)
            return
        self.generation += 1
        self.connected.set()
        log.info(
            "connected to %s as %s with MQTT %s (session present: %s)",
            self.endpoint,
            self.options.client_id,
            "5" if self.protocol == mqtt.MQTTv5 else "3.1.1",
            flags.session_present,
        )
        if self.protocol == mqtt.MQTTv5:
            client.subscribe([(f, SubscribeOptions(qos=1)) for f in self.options.subscriptions()])
        else:
            client.subscribe([(f, 1) for f in self.options.subscriptions()])

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[ReasonCode], props: Any
    ) -> None:
        # paho reports MQTT 3.1.1 SUBACK codes as reason codes too; 0x80 (failure) is_failure either way.
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
        self._on_publish(bytes(message._topic), bytes(message.payload), message.mid, message.qos, bool(message.dup))

    def _on_publish(self, topic_raw: bytes, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        try:
            topic = topic_raw.decode("utf-8")
        except UnicodeDecodeError:  # brokers should refuse such topics; never let one stop the loop
            topic = topic_raw.decode("utf-8", errors="replace")
        msg = Inbound(
            topic=topic,
            payload=payload,
            mid=mid,
            qos=qos,
            dup=dup,
            generation=self.generation,
            received_us=now_us(),
        )
        decode_message(msg, self.options, self.repeats)
        while True:
            try:
                self.inbox.put(msg, timeout=0.5)
                return
            except queue.Full:
                if self._stopping:
                    return  # not acknowledged: the broker redelivers it to the next session
