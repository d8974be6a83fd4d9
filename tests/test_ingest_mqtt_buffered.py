"""The chunked socket reads of the ingest MQTT client (``ingest.mqtt_buffered``), against the real broker.

Every message must arrive whole and in order whatever its size relative to the read buffer (many packets in one
chunk, a packet cut at the end of a chunk, a packet larger than a chunk), with far fewer socket reads than
messages, and a new connection must never be fed bytes buffered from the old one.
"""

from __future__ import annotations

import threading
import time
import uuid
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_buffered import READ_CHUNK, BufferedReadClient
from tests.test_ingest_support import Publisher


class _Counting(BufferedReadClient):
    """Counts the reads that reach the socket (not those served from the buffer)."""

    socket_reads = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self.buffered() == 0:
            self.socket_reads += 1
        return super()._sock_recv(bufsize)


def _subscriber(mqtt_url: str, topic: str, client_id: str) -> tuple[_Counting, list[bytes]]:
    url = urlsplit(mqtt_url)
    client = _Counting(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    received: list[bytes] = []
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        c.subscribe(topic, qos=1)

    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda c, u, m: received.append(bytes(m.payload))
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60  # a reconnect finds the subscription and the queued messages
    client.connect(url.hostname or "127.0.0.1", url.port or 1883, clean_start=True, properties=props)
    client.loop_start()
    assert subscribed.wait(10), "not subscribed"
    return client, received


def _wait_for(received: list[bytes], n: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(received) < n and time.monotonic() < deadline:
        time.sleep(0.02)


def test_every_message_arrives_whole_and_in_order_with_few_socket_reads(mqtt_url: str, enterprise: str) -> None:
    topic = f"df/v1/{enterprise}/buffered"
    client, received = _subscriber(mqtt_url, topic, f"buf-{uuid.uuid4().hex[:8]}")
    # Remaining lengths of one, two and three bytes, and bodies larger than a whole read chunk.
    sizes = [10, 100, 127, 128, 200, 5_000, 16_383, 16_384, READ_CHUNK - 7, READ_CHUNK + 1000, 700_000]
    payloads = [bytes([i % 251]) * sizes[i % len(sizes)] + i.to_bytes(4, "big") for i in range(600)]
    pub = Publisher(mqtt_url)
    try:
        for p in payloads:
            pub.publish(topic, p)
        _wait_for(received, len(payloads))
    finally:
        pub.close()
        client.disconnect()
        client.loop_stop()
    assert received == payloads
    assert client.socket_reads < len(payloads) / 2  # paho alone reads the socket 3-5 times per message


def test_a_reconnect_starts_with_an_empty_buffer(mqtt_url: str, enterprise: str) -> None:
    topic = f"df/v1/{enterprise}/buffered"
    client_id = f"buf-{uuid.uuid4().hex[:8]}"
    client, received = _subscriber(mqtt_url, topic, client_id)
    pub = Publisher(mqtt_url)
    try:
        first = [b"a" * 3000 + i.to_bytes(4, "big") for i in range(300)]
        for p in first:
            pub.publish(topic, p)
        _wait_for(received, len(first))
        assert received == first
        # Cut the connection under paho: it reconnects on a new socket; whatever was buffered from the old one
        # (nothing, or a cut packet) must not be read as the start of the new stream.
        client._rbuf, client._rpos = b"\x30\xff\xff\x7f garbage of the old connection", 0
        old = client._sock
        assert old is not None
        old.close()
        deadline = time.monotonic() + 20
        while (client._sock is None or client._sock is old or not client.is_connected()) and (
            time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert client.is_connected(), "did not reconnect"
        second = [b"b" * 3000 + i.to_bytes(4, "big") for i in range(300)]
        for p in second:
            pub.publish(topic, p)
        _wait_for(received, len(first) + len(second))
    finally:
        pub.close()
        client.disconnect()
        client.loop_stop()
    assert received[len(first) :] == second
