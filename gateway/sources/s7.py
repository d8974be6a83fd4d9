"""Siemens S7 source adapter (config ``kind: s7``): polls a PLC over S7comm with python-snap7's async client.

Each poll group reads its items in multi-variable read requests packed to the PDU size negotiated at
connect (request: 12 bytes per item; response: 4 bytes plus the data per item, plus fill bytes) and at most
20 items per request. An item too large for one PDU (a long STRING on a 240-byte PDU) is read on its own,
which snap7 splits. Values are decoded by ``datafactory.fieldbus.s7_codec`` to exact Python types.

The PLC answers each item of a multi-read separately: an item it refuses (no such DB, out of range, no
access) becomes the quality in ``ITEM_QUALITY`` for that value only (``refused`` counts them) and the other
items keep flowing; a STRING whose length byte is corrupt is ``Bad_DataEncodingInvalid`` and counted in
``bad_values``. No response within ``timeout_s`` or a failed connection is ``ConnectionLost``.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snap7.async_client import AsyncClient
from snap7.error import S7Error
from snap7.type import Area

from datafactory.config.s7 import S7Address, S7Area, S7ConnectionType, S7Source, S7Type
from datafactory.contract.quality import (
    BAD_COMMUNICATION_ERROR,
    BAD_DATA_ENCODING_INVALID,
    BAD_NODE_ID_UNKNOWN,
    BAD_NOT_READABLE,
    BAD_OUT_OF_RANGE,
    BAD_TYPE_MISMATCH,
)
from datafactory.contract.sample import now_us
from datafactory.contract.values import SignalType
from datafactory.errors import ConnectionLost
from datafactory.fieldbus.s7_codec import CODES as _CODES
from datafactory.fieldbus.s7_codec import DecodeError, decode
from gateway.polling import FastRun, PolledSource, discard, passes_as_read, picker, send_ahead
from gateway.sources import Reading

_log = logging.getLogger(__name__)

ITEM_QUALITY = {
    0x0A: BAD_NODE_ID_UNKNOWN,  # object does not exist (e.g. no such data block)
    0x05: BAD_OUT_OF_RANGE,  # address out of range
    0x03: BAD_NOT_READABLE,  # access denied / protected
    0x06: BAD_TYPE_MISMATCH,  # data type not supported
    0x07: BAD_TYPE_MISMATCH,  # data type inconsistent
}
"""S7 item return code → OPC-UA StatusCode of that value (0xFF is success)."""

MAX_ITEMS_PER_REQUEST = 20
_AREA = {S7Area.DB: Area.DB, S7Area.M: Area.MK, S7Area.I: Area.PE, S7Area.Q: Area.PA}
_CONNECTION_TYPE = {S7ConnectionType.PG: 1, S7ConnectionType.OP: 2, S7ConnectionType.BASIC: 3}
_REQUEST_HEADER = 10 + 2  # S7 job header + function and item count
_RESPONSE_HEADER = 12 + 2  # S7 ack-data header (with error class/code) + function and item count


@dataclass(slots=True)
class _Batch:
    """One multi-read request and how its response is decoded: when every item answers as expected (code 0xFF,
    byte data of its size), one ``struct`` call reads the whole response; plain values (numbers of their natural
    type, unscaled, no deadband) go on as a ``FastRun``, the rest (BOOL, STRING, scaled) item by item."""

    items: list[int]
    layout: struct.Struct
    lengths: tuple[int, ...]  # of each item's data in bits, as a successful response carries them
    fast: FastRun | None
    pick: Callable[[Sequence[Any]], tuple[Any, ...]]  # the fast run's values among the items' values
    others: list[tuple[int, int]]  # (position in the batch, item index): their data, decoded one by one
    specs: list[tuple[int, int, int, int]]  # (area, db, start, size) of each item, as snap7 takes them
    request: bytes  # the multi-read PDU, built once: each send only renumbers it (bytes 4-5 of the S7 header)


def pack_requests(addrs: list[S7Address], indices: list[int], pdu_length: int) -> list[list[int]]:
    """Indices grouped into multi-read requests whose request and response fit ``pdu_length``."""
    batches: list[list[int]] = []
    req = resp = 0
    for i in indices:
        item_resp = 4 + addrs[i].size + (addrs[i].size & 1)
        if _RESPONSE_HEADER + item_resp > pdu_length:
            batches.append([i])  # read alone; snap7 splits it over several PDUs
            req = resp = pdu_length  # nothing joins this one
            continue
        last = batches[-1] if batches else None
        if last is None or len(last) >= MAX_ITEMS_PER_REQUEST or req + 12 > pdu_length or resp + item_resp > pdu_length:
            batches.append([i])
            req, resp = _REQUEST_HEADER + 12, _RESPONSE_HEADER + item_resp
        else:
            last.append(i)
            req, resp = req + 12, resp + item_resp
    return batches


class S7Adapter(PolledSource):
    def __init__(self, config: S7Source, *, batch: bool = True) -> None:
        """``batch=False`` reads every item in a request of its own (what the benchmark compares against)."""
        super().__init__(config, config.items)
        self.batch = batch
        self._items = list(config.items)
        self._addrs = [it.parsed() for it in self._items]
        self._plans: dict[str, list[_Batch]] = {}
        self._client: AsyncClient | None = None
        self.where = f"s7 {config.host}:{config.port} rack {config.rack} slot {config.slot}"
        self.pdu_length = 0

    def counters(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "refused": len(self.refused),
            "bad_values": self.bad_values,
            "overruns": self.overruns,
        }

    async def open(self) -> None:
        cfg = self.config
        client = AsyncClient()
        client.set_connection_type(_CONNECTION_TYPE[cfg.connection_type])
        self._client = client
        try:
            await asyncio.wait_for(client.connect(cfg.host, cfg.rack, cfg.slot, tcp_port=cfg.port), cfg.timeout_s)
        except (S7Error, OSError, TimeoutError) as err:
            raise ConnectionLost(self.where, f"cannot connect: {type(err).__name__}: {err}") from err
        self.pdu_length = int(client.pdu_length)
        self._plans = {
            name: [self._layout(b) for b in (pack_requests(self._addrs, idx, self.pdu_length) if self.batch
                                             else [[i] for i in idx])]
            for name, (_, idx) in self._groups.items()
        }  # fmt: skip

    def _layout(self, items: list[int]) -> _Batch:
        fmt, plain, others = [">"], [], []
        for k, i in enumerate(items):
            a = self._addrs[i]
            natural = SignalType.FLOAT64 if a.type in (S7Type.REAL, S7Type.LREAL) else SignalType.INT64
            if a.type in _CODES and passes_as_read(self._items[i], natural):
                code = _CODES[a.type]
                plain.append(k)
            else:
                code = f"{a.size}s"
                others.append((k, i))
            fmt.append(f"BBH{code}{'x' if a.size & 1 and k < len(items) - 1 else ''}")
        lengths = tuple(8 * self._addrs[i].size for i in items)
        fast = self.fast_run([items[k] for k in plain]) if plain else None
        specs = [(int(_AREA[a.area]), a.db, a.start, a.size) for a in (self._addrs[i] for i in items)]
        assert self._client is not None
        request = self._client.protocol.build_multi_read_request(specs)
        return _Batch(items, struct.Struct("".join(fmt)), lengths, fast, picker(plain), others, specs, request)

    def _first_read(self, group: str) -> Coroutine[Any, Any, tuple[bytes, int]] | None:
        plan = self._plans[group]
        return self._read(plan[0]) if plan else None

    async def _poll(self, group: str, first: asyncio.Task[tuple[bytes, int]] | None) -> list[Reading]:
        out: list[Reading] = []
        plan = self._plans[group]
        ahead = first  # the read of plan[k], already sent
        try:
            for k, batch in enumerate(plan):
                raw, t = await (ahead if ahead is not None else self._read(batch))
                ahead = None
                if k + 1 < len(plan):
                    ahead = await send_ahead(self._read(plan[k + 1]))
                self._emit(batch, raw, t, out)
        finally:
            discard(ahead)
        return out

    async def _read(self, batch: _Batch) -> tuple[bytes, int]:
        """The response's items (per item: return code, transport size, length and data, as S7comm's multi-read
        has them), and when it came (µs)."""
        return await self._request(batch), now_us()

    async def _request(self, batch: _Batch) -> bytes:
        client = self._client
        assert client is not None
        self.requests += 1
        specs = batch.specs
        # asyncio.timeout, not wait_for: the read runs in this task, so cancelling a read sent ahead (at a stop)
        # reaches snap7 directly and whatever it raises then is collected with this task (``discard``), never left
        # in an inner task of wait_for's to be logged as "Task exception was never retrieved".
        try:
            async with asyncio.timeout(self.config.timeout_s):
                if len(specs) == 1 and _RESPONSE_HEADER + 4 + specs[0][3] > self.pdu_length:
                    area, db, start, size = specs[0]  # larger than one PDU: snap7 reads it in pieces
                    data = await client.read_area(Area(area), db, start, size)
                    return struct.pack(">BBH", 0xFF, 0x04, 8 * len(data)) + bytes(data)
                # A real multi-variable read (snap7's async read_multi_vars reads item by item).
                seq = client.protocol._next_sequence().to_bytes(2, "big")
                response = await client._send_receive(batch.request[:4] + seq + batch.request[6:])
        except (S7Error, OSError, TimeoutError) as err:
            raise ConnectionLost(self.where, f"read failed: {type(err).__name__}: {err}") from err
        return bytes(response.get("raw_data", b""))

    def _emit(self, batch: _Batch, raw: bytes, t: int, out: list[Reading]) -> None:
        layout, n = batch.layout, len(batch.items)
        if len(raw) == layout.size:
            values = layout.unpack(raw)
            # Every item answered 0xFF with byte data (transport 0x04) of its size: the layout holds.
            if values[0::4] == (0xFF,) * n and values[1::4] == (0x04,) * n and values[2::4] == batch.lengths:
                items = values[3::4]
                if self.refused:
                    for i in batch.items:
                        self.refused.pop(i, None)
                if batch.fast is not None:
                    self._report_run(batch.fast, batch.pick(items), t, out)
                for k, i in batch.others:
                    self._item(i, 0xFF, items[k], t, out)
                return
        if batch.fast is not None:
            batch.fast.last = None  # not all as expected: item by item, and the next good read reports them again
        for i, (code, data) in zip(batch.items, _split_items(raw, len(batch.items)), strict=True):
            self._item(i, code, data, t, out)

    def _item(self, i: int, code: int, data: bytes, t: int, out: list[Reading]) -> None:
        item = self._items[i]
        raw: object = None
        if code == 0xFF:
            self.refused.pop(i, None)
            try:
                raw = decode(data, self._addrs[i])
                q = 0
            except DecodeError as err:
                self.bad_values += 1
                _log.warning("%s: %s (%s): %s", self.where, item.address, item.signal, err)
                q = BAD_DATA_ENCODING_INVALID
        else:
            q = ITEM_QUALITY.get(code, BAD_COMMUNICATION_ERROR)
            if i not in self.refused:
                _log.warning(
                    "%s: the PLC refused %s (%s): return code 0x%02x", self.where, item.address, item.signal, code
                )
            self.refused[i] = code
        self._report(i, raw, q, t, out)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await asyncio.wait_for(client.disconnect(), 2)
        except (S7Error, OSError, TimeoutError) as err:
            _log.debug("%s: disconnect: %s", self.where, err)


def _split_items(raw: bytes, count: int) -> list[tuple[int, bytes]]:
    """Per-item (return code, data) of a multi-read response (S7comm: code, transport size, length, data, fill)."""
    out: list[tuple[int, bytes]] = []
    offset = 0
    for i in range(count):
        if offset + 4 > len(raw):
            out.extend((0x00, b"") for _ in range(count - i))  # truncated: the rest are bad, not missing
            break
        code, transport, length = raw[offset], raw[offset + 1], struct.unpack(">H", raw[offset + 2 : offset + 4])[0]
        offset += 4
        nbytes = length // 8 if transport in (0x03, 0x04, 0x05) else length
        if code != 0xFF:
            out.append((code, b""))
            continue
        out.append((code, raw[offset : offset + nbytes]))
        offset += nbytes + (nbytes & 1 if i < count - 1 else 0)
    return out


def create(config: S7Source, *, mqtt_url: str, state_dir: Path) -> S7Adapter:
    return S7Adapter(config)
