"""One MQTT connection (paho-mqtt) bridged to asyncio, shared by the publisher and the MQTT source adapters.

paho runs its network loop in a thread; every callback is handed to the event loop with
``call_soon_threadsafe`` so the rest of the gateway is single-threaded. A session is one connection: paho's own
reconnect is switched off and a lost session is replaced by a new one — the runner owns reconnection, and a
fresh client cannot replay paho's private in-flight queue behind the store-and-forward buffer's back.

paho errors are translated here into ``ConnectionLost``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.errors import ConnectionLost
from datafactory.settings import MQTT_SCHEMES, redact_url

if TYPE_CHECKING:
    from gateway.sources import Reading

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str, *, password: str | None = None) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in MQTT_SCHEMES:
            raise ValueError(f"broker URL {redact_url(url)!r} must start with mqtt:// or mqtts://")
        tls = parts.scheme in ("mqtts", "ssl")
        user = unquote(parts.username) if parts.username else None
        pw = unquote(parts.password) if parts.password else password
        return cls(parts.hostname or "127.0.0.1", parts.port or (8883 if tls else 1883), tls, user, pw)


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttSession:
    """A single connection. ``on_message(topic, payload, retained)`` and ``on_puback(mid)`` run in the loop."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str,
        username: str | None = None,
        password: str | None = None,
        will: Will | None = None,
        max_inflight: int = 64,
        on_message: Callable[[str, bytes, bool], None] | None = None,
        on_puback: Callable[[int], None] | None = None,
    ) -> None:
        self.url = redact_url(url)
        address = BrokerAddress.parse(url, password=password)
        if username is not None:
            address = BrokerAddress(address.host, address.port, address.tls, username, password)
        self.address = address
        self.client_id = client_id
        self.will = will
        self.max_inflight = max_inflight
        self.on_message = on_message
        self.on_puback = on_puback
        self.lost = asyncio.Event()
        self.lost_reason = ""
        self._client: paho.Client | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Future[None] | None = None
        self._subacks: dict[int, asyncio.Future[str | None]] = {}
        self._inbox: deque[tuple[str, bytes, bool]] = deque()  # messages from paho's thread, not yet handled
        self._drain_pending = False

    async def connect(self, timeout_s: float = 10.0) -> None:
        loop = self._loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=True,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(self.max_inflight)
        client.max_queued_messages_set(0)
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        if self.will is not None:
            client.will_set(self.will.topic, self.will.payload, qos=self.will.qos, retain=self.will.retain)
        client.on_connect = self._paho_connect
        client.on_connect_fail = self._paho_connect_fail
        client.on_disconnect = self._paho_disconnect
        client.on_publish = self._paho_publish
        client.on_message = self._paho_message
        client.on_subscribe = self._paho_subscribe
        self._client = client
        # Connect the socket first (in a worker thread) and start paho's network thread only on success: a
        # thread started by connect_async() retries the first connection on its own, behind our back.
        try:
            await asyncio.wait_for(
                asyncio.to_thread(client.connect, self.address.host, self.address.port, 15), timeout_s
            )
            client.loop_start()
            await asyncio.wait_for(asyncio.shield(self._connected), timeout_s)
        except (TimeoutError, OSError, ValueError) as err:
            await self._abandon()
            raise ConnectionLost(self.url, f"cannot connect: {type(err).__name__} {err}".rstrip()) from err
        except ConnectionLost:
            await self._abandon()
            raise

    # paho thread → event loop
    def _call(self, fn: Callable[..., None], *args: object) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)

    def _paho_connect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        self._call(self._connect_result, rc)

    def _paho_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self._call(self._connect_result, "connection failed")

    def _connect_result(self, rc: object) -> None:
        fut = self._connected
        if fut is None or fut.done():
            return
        if getattr(rc, "is_failure", True):
            # Bad user name or password / not authorized (MQTT 5 0x86, 0x87; 3.1.1 4, 5) need an operator.
            auth = getattr(rc, "value", None) in (0x86, 0x87, 4, 5)
            fut.set_exception(ConnectionLost(self.url, f"broker refused the connection: {rc}", retryable=not auth))
        else:
            fut.set_result(None)

    def _paho_disconnect(self, client: paho.Client, userdata: object, flags: object, rc: object, props: object) -> None:
        self._call(self._mark_lost, f"disconnected: {rc}")

    def _mark_lost(self, reason: str) -> None:
        if not self.lost.is_set():
            self.lost_reason = reason
            self.lost.set()
        fut = self._connected
        if fut is not None and not fut.done():
            fut.set_exception(ConnectionLost(self.url, reason))

    def _paho_publish(self, client: paho.Client, userdata: object, mid: int, rc: object, props: object) -> None:
        if self.on_puback is not None:
            self._call(self.on_puback, mid)

    def _paho_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        # One wake-up of the loop for a run of messages, not one per message: each call_soon_threadsafe is a
        # write to the loop's self-pipe, and every system call hands the GIL back to a busy loop thread, so a
        # burst (Sparkplug data) would be read from the socket only as fast as the loop lets go of the GIL.
        if self.on_message is not None:
            self._inbox.append((msg.topic, bytes(msg.payload), bool(msg.retain)))  # bytes(b) is b: no copy
            if not self._drain_pending:
                self._drain_pending = True
                self._call(self._drain)

    def _drain(self) -> None:
        self._drain_pending = False  # first: a message appended from now on schedules another drain
        inbox, on_message = self._inbox, self.on_message
        while inbox and on_message is not None:
            on_message(*inbox.popleft())

    # event loop API
    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Hand a message to paho; return its message id, or raise ConnectionLost if the session is gone."""
        client = self._client
        if client is None or self.lost.is_set():
            raise ConnectionLost(self.url, self.lost_reason or "not connected")
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            self._mark_lost(f"publish failed: {paho.error_string(info.rc)}")
            raise ConnectionLost(self.url, self.lost_reason)
        return int(info.mid)

    async def subscribe(self, topic_filter: str, qos: int = 1, timeout_s: float = 10.0) -> None:
        """Subscribe and wait for the SUBACK, so nothing published after this returns is missed. A SUBACK that
        refuses the subscription (reason code ≥ 0x80, e.g. "Not authorized" from a broker ACL) raises a
        non-retryable ``ConnectionLost`` naming the filter and the broker's reason."""
        client = self._client
        if client is None or self._loop is None:
            raise ConnectionLost(self.url, "not connected")
        fut: asyncio.Future[str | None] = self._loop.create_future()
        rc, mid = client.subscribe(topic_filter, qos=qos)
        if rc != paho.MQTT_ERR_SUCCESS or mid is None:
            self._mark_lost(f"subscribe failed: {paho.error_string(rc)}")
            raise ConnectionLost(self.url, self.lost_reason)
        self._subacks[mid] = fut
        try:
            refused = await asyncio.wait_for(fut, timeout_s)
        except TimeoutError as err:
            raise ConnectionLost(self.url, f"no SUBACK for {topic_filter!r} within {timeout_s:g} s") from err
        finally:
            self._subacks.pop(mid, None)
        if refused is not None:
            raise ConnectionLost(
                self.url, f"the broker refused the subscription to {topic_filter!r}: {refused}", retryable=False
            )

    def _paho_subscribe(self, client: paho.Client, userdata: object, mid: int, rcs: object, props: object) -> None:
        codes = rcs if isinstance(rcs, list) else [rcs]
        refused = next((str(rc) for rc in codes if getattr(rc, "is_failure", False)), None)
        self._call(self._suback, mid, refused)

    def _suback(self, mid: int, refused: str | None) -> None:
        fut = self._subacks.get(mid)
        if fut is not None and not fut.done():
            fut.set_result(refused)

    async def close(self, *, graceful: bool = True) -> None:
        """Disconnect (sending DISCONNECT when ``graceful``, which suppresses the will) and stop the thread."""
        client = self._client
        if client is None:
            return
        if graceful and not self.lost.is_set():
            client.disconnect()
        await self._abandon()

    async def _abandon(self, timeout_s: float = 5.0) -> None:
        """Stop paho's network thread, waiting a bounded time (it is a daemon thread if it lingers)."""
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(asyncio.to_thread(_stop_client, client), timeout_s)
        except TimeoutError:
            _log.warning("MQTT network thread for %s did not stop within %.0f s; abandoned", self.url, timeout_s)


def _stop_client(client: paho.Client) -> None:
    # disconnect() moves paho to DISCONNECTING, the only state in which its loop also exits while QoS 1
    # messages are still unacknowledged; on a dead connection it merely changes the state.
    client.disconnect()
    client.loop_stop()
    sock = client.socket()
    if sock is not None:
        sock.close()  # an abandoned session must not linger half-open and keep its client id busy


class MqttFedSource:
    """Common part of the adapters that read a broker (``mqtt_json``, ``sparkplug``): credentials from the
    environment, one session, and messages handed from paho's thread to ``stream()`` through a queue.

    Subclasses set ``id``, ``url``, ``_queue`` and call ``_connect``; their ``_on_message`` fills the queue.
    """

    id: str
    url: str
    _session: MqttSession | None
    _queue: asyncio.Queue[list[Reading]]

    async def _connect(
        self,
        client_prefix: str,
        username_env: str | None,
        password_env: str | None,
        on_message: Callable[[str, bytes, bool], None],
        will: Will | None = None,
    ) -> MqttSession:
        for env in (username_env, password_env):
            if env is not None and env not in os.environ:
                raise ConnectionLost(self.url, f"environment variable {env} is not set", retryable=False)
        try:
            session = MqttSession(
                self.url,
                client_id=f"{client_prefix}-{self.id}-{uuid.uuid4().hex[:8]}",
                username=os.environ[username_env] if username_env else None,
                password=os.environ[password_env] if password_env else None,
                on_message=on_message,
                will=will,
            )
        except ValueError as err:  # a broker_url that is no MQTT URL: retrying cannot fix it
            raise ConnectionLost(redact_url(self.url), str(err), retryable=False) from err
        self._session = session
        await session.connect()
        return session

    async def stream(self) -> AsyncIterator[list[Reading]]:
        session = self._session
        if session is None:
            raise ConnectionLost(self.url, "not open")
        while True:
            if session.lost.is_set():
                raise ConnectionLost(self.url, session.lost_reason)
            try:
                item = await asyncio.wait_for(self._queue.get(), timeout=0.5)
            except TimeoutError:
                continue
            yield item

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
