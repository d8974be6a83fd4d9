"""A paho client that reads the socket in large chunks instead of a few bytes at a time.

paho reads every packet with three to five ``recv`` calls (the command byte, each byte of the remaining length,
then the body) and goes back to ``select`` after each packet. For a backlog of data messages that is about six
system calls per message, each releasing and re-taking the GIL the writer lanes also need: the network thread
then waits for the GIL several times per message, and the lanes wait for it in turn. Here one ``recv`` takes
whatever the kernel holds (up to ``READ_CHUNK``) and paho's small reads are served from that buffer.

Bytes in our buffer are invisible to ``select``, so ``loop_read`` keeps handling packets until the buffer is
empty; a packet cut at the end of the buffer is finished from the socket (or, if the socket has nothing yet, kept
by paho as a partial packet, exactly as with a short ``recv``). The buffer belongs to one socket: a reconnect
starts with an empty one, never with bytes of the old connection.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

READ_CHUNK = 256 * 1024


class BufferedReadClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._rbuf = b""
        self._rpos = 0
        self._rsock: object = None

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._sock is not self._rsock:  # a new connection: nothing buffered belongs to it
            self._rbuf, self._rpos, self._rsock = b"", 0, self._sock
        buf, pos = self._rbuf, self._rpos
        if pos >= len(buf):
            buf = super()._sock_recv(max(bufsize, READ_CHUNK))  # BlockingIOError and errors pass through
            if not buf:
                return buf  # end of stream: paho sees the connection closed
            pos = 0
        end = min(pos + bufsize, len(buf))
        self._rbuf, self._rpos = buf, end
        return buf[pos:end]

    def buffered(self) -> int:
        """Bytes received from the current socket and not yet handed to paho."""
        return len(self._rbuf) - self._rpos if self._sock is self._rsock else 0

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered():
            rc = super().loop_read(max_packets)
        return rc
