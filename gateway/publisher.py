"""Deliver the store-and-forward buffer to the broker, in order, at QoS 1.

Over one connected session, ``serve`` keeps up to ``window`` batches in flight (256: a busy broker answers
PUBACKs late, and a small window then caps throughput), oldest first, and deletes each
from the buffer when its PUBACK arrives. When the session is lost, whatever was in flight stays in the buffer
and the next session starts again from the oldest stored batch — at-least-once delivery: a batch whose PUBACK
was lost with the connection is sent twice, and ingest dedupes by (signal, time).
"""

from __future__ import annotations

import asyncio
import contextlib

from datafactory.errors import ConnectionLost
from gateway.buffer import Buffer, StoredBatch
from gateway.mqtt_session import MqttSession


class Publisher:
    def __init__(self, buffer: Buffer, *, window: int = 256) -> None:
        self.buffer = buffer
        self.window = window
        self.published_samples = 0
        self.published_batches = 0
        self._wake = asyncio.Event()
        self._in_flight: dict[int, StoredBatch] = {}
        self._acked: list[StoredBatch] = []

    def wake(self) -> None:
        """Something was appended to the buffer."""
        self._wake.set()

    def on_puback(self, mid: int) -> None:
        batch = self._in_flight.pop(mid, None)
        if batch is not None:  # other mids are meta/status messages
            self._acked.append(batch)
            self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    async def serve(self, session: MqttSession) -> None:
        """Publish until the session is lost (then raise ``ConnectionLost``); cancel to stop."""
        self._in_flight.clear()
        self._acked.clear()
        last_id = 0
        try:
            while True:
                if session.lost.is_set():
                    raise ConnectionLost(session.url, session.lost_reason)
                self._settle()
                room = self.window - len(self._in_flight)
                if room > 0:
                    for batch in self.buffer.pending(last_id, room):
                        mid = session.publish(batch.topic, batch.payload, qos=1)
                        self._in_flight[mid] = batch
                        last_id = batch.id
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=0.2)
        finally:
            self._settle()
            self._in_flight.clear()

    def _settle(self) -> None:
        if not self._acked:
            return
        acked, self._acked = self._acked, []
        self.buffer.delete(acked)
        self.published_batches += len(acked)
        self.published_samples += sum(b.samples for b in acked)

    async def drain(self, timeout_s: float) -> None:
        """Wait until the buffer is empty and nothing is in flight, or ``timeout_s`` passed (used at shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while (self.buffer.depth_batches or self._in_flight) and loop.time() < deadline:
            await asyncio.sleep(0.05)
