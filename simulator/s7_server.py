"""An S7 PLC served by python-snap7's server (pure Python S7comm over ISO-on-TCP), with requests counted.

The data blocks, flags (M), inputs (I) and outputs (Q) are bytearrays registered with the server, so the
simulator writes machine values straight into them; ``read_requests`` counts the read PDUs the server
answered (single- and multi-variable), the number a batching test compares.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from snap7.server import Server
from snap7.type import SrvArea

from datafactory.config.s7 import S7Area, parse_s7_address
from datafactory.fieldbus.s7_codec import encode_into

_SRV_AREA = {S7Area.M: SrvArea.MK, S7Area.I: SrvArea.PE, S7Area.Q: SrvArea.PA}


class _CountingServer(Server):
    """snap7's server, counting the read requests it handles."""

    def __init__(self) -> None:
        super().__init__(log=False)
        self.read_requests = 0
        self.count_lock = threading.Lock()

    def _handle_read_area(self, request: dict[str, Any], client_address: tuple[str, int]) -> bytes:
        with self.count_lock:  # also keeps a read from seeing half of a value being written (an 8-byte LREAL)
            self.read_requests += 1
            return super()._handle_read_area(request, client_address)  # single- and multi-item reads come here


class S7DeviceServer:
    """A snap7 server on 127.0.0.1:``port`` with the given data blocks (number → size) and M/I/Q images."""

    def __init__(self, port: int, *, dbs: dict[int, int], area_size: int = 256) -> None:
        self.port = port
        self.dbs = {n: bytearray(size) for n, size in dbs.items()}
        self.areas = {a: bytearray(area_size) for a in _SRV_AREA}
        self._server: _CountingServer | None = None
        logging.getLogger("snap7").setLevel(logging.WARNING)

    def write(self, address: str, value: int | float | bool | str) -> None:
        addr = parse_s7_address(address)
        buf = self.dbs[addr.db] if addr.area is S7Area.DB else self.areas[addr.area]
        server = self._server
        if server is None:
            encode_into(buf, addr, value)
            return
        with server.count_lock:
            encode_into(buf, addr, value)

    @property
    def read_requests(self) -> int:
        return self._server.read_requests if self._server is not None else 0

    def start(self) -> S7DeviceServer:
        server = _CountingServer()
        for n, buf in self.dbs.items():
            server.register_area(SrvArea.DB, n, buf)
        for area, buf in self.areas.items():
            server.register_area(_SRV_AREA[area], 0, buf)
        server.start_to("127.0.0.1", self.port)
        self._server = server
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop()
            server.destroy()

    def __enter__(self) -> S7DeviceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
