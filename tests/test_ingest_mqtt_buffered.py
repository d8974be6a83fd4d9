"""The chunked socket reads of the ingest MQTT client (``ingest.mqtt_buffered``), against the real broker.

Every message must arrive whole and in order whatever its size relative to the read buffer (many packets in one
chunk, a packet cut at the end of a chunk, a packet larger than a chunk), with far fewer socket reads than
messages, and a new connection must never be fed bytes buffered from the old one — both through paho's reader
and through the fast path for plain PUBLISH packets (``on_publish_fast``), which must hand over exactly what
paho would (topic, payload, packet id, QoS, dup) and leave every other packet to paho.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sized
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt_buffered import READ_CHUNK, BufferedReadClient
from tests.test_ingest_support import Publisher


class _Counting(BufferedReadClient):
    """Counts the reads that reach the socket (not those served from the buffer) and the fast path's messages."""

    socket_reads = 0
    fast = 0

    def _sock_recv(self, bufsize: int) -> bytes:
        if self.buffered() == 0:
            self.socket_reads += 1
        return super()._sock_recv(bufsize)


def _subscriber(
    mqtt_url: str, topic: str, client_id: str, *, fast: bool = False, qos: int = 1
) -> tuple[_Counting, list[bytes]]:
    url = urlsplit(mqtt_url)
    client = _Counting(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    received: list[bytes] = []
    subscribed = threading.Event()

    def on_connect(c: mqtt.Client, userdata: object, flags: object, reason: object, props: object) -> None:
        c.subscribe(topic, qos=qos)

    def on_fast(topic_raw: bytes, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        assert topic_raw.decode() == topic
        client.fast += 1
        received.append(payload)

    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = lambda c, u, m: received.append(bytes(m.payload))
    if fast:
        client.on_publish_fast = on_fast
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = 60  # a reconnect finds the subscription and the queued messages
    client.connect(url.hostname or "127.0.0.1", url.port or 1883, clean_start=True, properties=props)
    client.loop_start()
    assert subscribed.wait(10), "not subscribed"
    return client, received


def _wait_for(received: Sized, n: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while len(received) < n and time.monotonic() < deadline:
        time.sleep(0.02)


@pytest.mark.parametrize("fast", [False, True], ids=["paho", "fast-path"])
def test_every_message_arrives_whole_and_in_order_with_few_socket_reads(
    mqtt_url: str, enterprise: str, fast: bool
) -> None:
    topic = f"df/v1/{enterprise}/buffered"
    client, received = _subscriber(mqtt_url, topic, f"buf-{uuid.uuid4().hex[:8]}", fast=fast)
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
    if fast:  # all but the packets larger than what was buffered (or cut at a chunk's end) took the fast path
        assert len(payloads) / 2 < client.fast < len(payloads)


@pytest.mark.parametrize("fast", [False, True], ids=["paho", "fast-path"])
def test_a_reconnect_starts_with_an_empty_buffer(mqtt_url: str, enterprise: str, fast: bool) -> None:
    topic = f"df/v1/{enterprise}/buffered"
    client_id = f"buf-{uuid.uuid4().hex[:8]}"
    client, received = _subscriber(mqtt_url, topic, client_id, fast=fast)
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


def test_the_fast_path_takes_plain_publishes_and_leaves_the_rest_to_paho(mqtt_url: str, enterprise: str) -> None:
    """QoS 0 and 1 without properties take the fast path with their QoS; a message with MQTT 5 properties, and a
    QoS 2 one, go through paho with everything intact; each QoS level's order is kept."""
    topic = f"df/v1/{enterprise}/buffered"
    client, received = _subscriber(mqtt_url, topic, f"buf-{uuid.uuid4().hex[:8]}", fast=True, qos=2)
    via_paho: list[tuple[bytes, int, str | None]] = []
    plain_qos: list[int] = []
    fast_cb = client.on_publish_fast
    assert fast_cb is not None

    def on_fast(topic_raw: bytes, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        plain_qos.append(qos)
        assert (mid == 0) == (qos == 0)  # a packet id exactly when QoS > 0
        fast_cb(topic_raw, payload, mid, qos, dup)

    def on_message(c: mqtt.Client, u: object, m: mqtt.MQTTMessage) -> None:
        content_type = getattr(m.properties, "ContentType", None)
        via_paho.append((bytes(m.payload), m.qos, content_type))
        received.append(bytes(m.payload))

    client.on_publish_fast = on_fast
    client.on_message = on_message
    props = Properties(PacketTypes.PUBLISH)
    props.ContentType = "text/plain"
    pub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    url = urlsplit(mqtt_url)
    pub.connect(url.hostname or "127.0.0.1", url.port or 1883)
    pub.loop_start()
    sent = []
    try:
        for i in range(40):
            kind = i % 4
            payload = f"{kind}-{i}".encode()
            sent.append(payload)
            if kind == 2:
                pub.publish(topic, payload, qos=1, properties=props).wait_for_publish(10)
            else:
                pub.publish(topic, payload, qos=(1, 0, 0, 2)[kind]).wait_for_publish(10)
        _wait_for(received, len(sent))
    finally:
        pub.disconnect()
        pub.loop_stop()
        client.disconnect()
        client.loop_stop()
    assert sorted(received) == sorted(sent)
    for kind in b"0123":  # MQTT keeps the order of each QoS level's messages (paho hands QoS 2 over at PUBREL)
        assert [p for p in received if p[0] == kind] == [p for p in sent if p[0] == kind]
    assert sorted(set(plain_qos)) == [0, 1] and len(plain_qos) == 20
    assert sorted((p[:1], q, ct or "") for p, q, ct in via_paho) == sorted(
        [(b"2", 1, "text/plain"), (b"3", 2, "")] * 10
    )


@pytest.mark.parametrize("together", [False, True], ids=["ack", "ack_many"])
def test_fast_path_packet_ids_acknowledge_exactly_their_messages(
    mqtt_url: str, enterprise: str, together: bool
) -> None:
    """Manual acknowledgement with the packet ids the fast path parsed, one by one or in one write: the
    acknowledged messages are gone from the session, the others come back on the next connection, marked as
    redeliveries."""
    topic = f"df/v1/{enterprise}/buffered"
    client_id = f"buf-{uuid.uuid4().hex[:8]}"
    url = urlsplit(mqtt_url)
    got: list[tuple[bytes, int, bool]] = []

    def session(clean: bool) -> BufferedReadClient:
        c = BufferedReadClient(
            callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
            manual_ack=True,
        )  # fmt: skip
        ready = threading.Event()
        c.on_connect = lambda cl, *a: cl.subscribe(topic, qos=1)
        c.on_subscribe = lambda *a: ready.set()
        c.on_publish_fast = lambda t, payload, mid, qos, dup: got.append((payload, mid, dup))
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 60
        c.connect(url.hostname or "127.0.0.1", url.port or 1883, clean_start=clean, properties=props)
        c.loop_start()
        assert ready.wait(10)
        return c

    client = session(True)
    pub = Publisher(mqtt_url)
    sent = [f"m{i}".encode() for i in range(20)]
    try:
        for p in sent:
            pub.publish(topic, p)
        pub.flush()
        _wait_for(got, len(sent))
        assert [p for p, _, _ in got] == sent and not any(dup for _, _, dup in got)
        even = [mid for payload, mid, _ in got if int(payload[1:]) % 2 == 0]
        if together:
            client.ack_many(even)
        else:
            for mid in even:
                client.ack(mid, 1)
        time.sleep(0.5)  # the PUBACKs reach the broker before the connection ends
        client.disconnect()
        client.loop_stop()
        got.clear()
        client = session(False)
        _wait_for(got, 10)
        time.sleep(0.5)  # anything more would arrive now
    finally:
        pub.close()
        client.disconnect()
        client.loop_stop()
    assert sorted(int(p[1:]) for p, _, _ in got) == list(range(1, 20, 2))
    assert all(dup for _, _, dup in got)
