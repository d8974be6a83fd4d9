"""Modbus source adapter (config ``kind: modbus``): polls Modbus TCP or RTU devices with pymodbus.

Each poll group runs on its own interval; its values are read in the coalesced blocks of
``gateway.modbus_plan``, one request at a time on the one connection (a serial line or a TCP gateway serves
one request at a time anyway). On RTU the adapter keeps the spec's silent interval between frames (3.5
character times, 1.75 ms above 19200 bit/s). Values are decoded by ``datafactory.fieldbus.modbus_codec`` to
exact Python types, then scaled by the normaliser.

Failures, from small to large:

* a Modbus exception response (the device answered "no") becomes the OPC-UA quality in ``EXCEPTION_QUALITY``
  for the values of that request; exception 02 (illegal data address) on a coalesced block splits it into one
  request per value, so only the refused address goes bad (``refused`` counts them) and the others keep flowing;
* registers that do not hold the declared type (a string that is not UTF-8) → ``Bad_DataEncodingInvalid``,
  counted in ``bad_values`` and logged;
* no response within ``timeout_s`` (after ``retries``) → ``Bad_Timeout`` for that request's values;
* the connection failing, or a whole poll round without a single answer → ``ConnectionLost``: the runner writes
  comm-lost markers and reconnects with backoff.

Scheduling and report-by-change come from ``gateway.polling`` (shared with the S7 source).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Coroutine, Sequence
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException

from datafactory.config.modbus import (
    BIT_TABLES,
    SIGNAL_TYPE,
    ModbusRegister,
    ModbusSource,
    ModbusTable,
    ModbusTransport,
    ModbusType,
)
from datafactory.contract.quality import (
    BAD_COMMUNICATION_ERROR,
    BAD_DATA_ENCODING_INVALID,
    BAD_DEVICE_FAILURE,
    BAD_NODE_ID_UNKNOWN,
    BAD_NOT_CONNECTED,
    BAD_NOT_SUPPORTED,
    BAD_OUT_OF_RANGE,
    BAD_RESOURCE_UNAVAILABLE,
    BAD_TIMEOUT,
)
from datafactory.contract.sample import now_us
from datafactory.contract.values import SignalType
from datafactory.errors import ConnectionLost
from datafactory.fieldbus.modbus_codec import REGISTER_SPAN, DecodeError, block_unpacker, decode
from gateway.modbus_plan import Block, plan_group, split
from gateway.polling import PolledSource, discard, passes_as_read, picker
from gateway.sources import Reading
from gateway.sources.modbus_responses import register_fast_responses

_log = logging.getLogger(__name__)

EXCEPTION_QUALITY = {
    0x01: BAD_NOT_SUPPORTED,  # illegal function: the device has no such table
    0x02: BAD_NODE_ID_UNKNOWN,  # illegal data address: no such register
    0x03: BAD_OUT_OF_RANGE,  # illegal data value (e.g. a count the device does not accept)
    0x04: BAD_DEVICE_FAILURE,  # server device failure
    0x05: BAD_RESOURCE_UNAVAILABLE,  # acknowledge: the device is busy with a long operation
    0x06: BAD_RESOURCE_UNAVAILABLE,  # server device busy
    0x0A: BAD_NOT_CONNECTED,  # gateway path unavailable
    0x0B: BAD_TIMEOUT,  # gateway target device failed to respond
}
"""Modbus exception code → OPC-UA StatusCode of the values the refused request carried."""

_READ = {
    ModbusTable.COIL: "read_coils",
    ModbusTable.DISCRETE_INPUT: "read_discrete_inputs",
    ModbusTable.HOLDING_REGISTER: "read_holding_registers",
    ModbusTable.INPUT_REGISTER: "read_input_registers",
}


def silent_interval_s(baudrate: int) -> float:
    """The RTU inter-frame silence: 3.5 characters of 11 bits, fixed at 1.75 ms above 19200 bit/s (spec §2.5.1.1)."""
    return 0.00175 if baudrate > 19200 else 3.5 * 11 / baudrate


class ModbusAdapter(PolledSource):
    def __init__(self, config: ModbusSource, *, coalesce: bool = True) -> None:
        super().__init__(config, config.registers)
        self.coalesce = coalesce
        self._regs = list(config.registers)
        self._types = [r.value_type() for r in self._regs]
        self._spans = [(r.address, r.register_count()) for r in self._regs]
        self._orders = [r.byte_order for r in self._regs]
        self._bits = [r.bit for r in self._regs]
        # Values that need neither the codec's special cases nor the normaliser — a coil, a number in any byte
        # order, unscaled, without deadband, of its natural type — are decoded a block at a time (one struct
        # call) and go straight into samples: the emit loop runs for every value of every poll, and this is what
        # most devices' register maps hold.
        self._plain = [self._is_plain(r, t) for r, t in zip(self._regs, self._types, strict=True)]
        self._plans: dict[str, list[Block]] = {}
        self._next: asyncio.Task[tuple[int, Sequence[Any], int]] | None = None  # the read chained to the last
        self._chain = 0  # bumped when a plan changes mid-round and at close: reads started before chain no further
        self._client: Any = None
        self._silence = silent_interval_s(config.baudrate) if config.transport is ModbusTransport.RTU else 0.0
        self.where = (
            f"modbus rtu {config.serial_port}"
            if config.transport is ModbusTransport.RTU
            else f"modbus tcp {config.host}:{config.port}"
        )
        self.timeouts = 0
        self.exceptions = 0
        self._last_log = 0.0

    @staticmethod
    def _is_plain(r: ModbusRegister, vtype: ModbusType) -> bool:
        if r.table in BIT_TABLES:
            return passes_as_read(r, SignalType.BOOL)
        natural = SIGNAL_TYPE.get(vtype, SignalType.INT64)
        return vtype in REGISTER_SPAN and r.bit is None and passes_as_read(r, natural)

    def _prepare(self, blocks: list[Block]) -> list[Block]:
        for block in blocks:
            plain = [i for i in block.items if self._plain[i]]
            if plain and block.table in BIT_TABLES:
                block.unpack = picker([self._spans[i][0] - block.start for i in plain])
            elif plain:
                values = [(i, self._spans[i][0], self._types[i], self._orders[i]) for i in plain]
                plain, block.unpack = block_unpacker(block.start, block.count, values)
            block.fast = self.fast_run(plain) if plain else None
            block.decoded = [i for i in block.items if i not in set(plain)]
        return blocks

    def counters(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "timeouts": self.timeouts,
            "exceptions": self.exceptions,
            "refused": len(self.refused),
            "bad_values": self.bad_values,
            "overruns": self.overruns,
        }

    async def open(self) -> None:
        cfg = self.config
        # reconnect_delay=0: pymodbus must not reconnect behind our back; the runner owns reconnection.
        if cfg.transport is ModbusTransport.RTU:
            client: Any = AsyncModbusSerialClient(
                cfg.serial_port,
                baudrate=cfg.baudrate,
                parity=cfg.parity,
                stopbits=cfg.stopbits,
                bytesize=8,
                timeout=cfg.timeout_s,
                retries=cfg.retries,
                reconnect_delay=0,
            )
        else:
            client = AsyncModbusTcpClient(
                cfg.host, port=cfg.port, timeout=cfg.timeout_s, retries=cfg.retries, reconnect_delay=0
            )
        register_fast_responses(client)
        self._client = client
        try:
            connected = await client.connect()
        except (ModbusException, OSError) as err:
            raise ConnectionLost(self.where, f"cannot connect: {err}") from err
        if not connected:
            raise ConnectionLost(self.where, "cannot connect (refused or no such device)")
        indices = {name: idx for name, (_, idx) in self._groups.items()}
        self._plans = {
            name: self._prepare(plan_group(cfg, idx, coalesce=self.coalesce)) for name, idx in indices.items()
        }

    def _first_read(self, group: str) -> Coroutine[Any, Any, tuple[int, Sequence[Any], int]] | None:
        plan = self._plans[group]
        return self._read_chained(plan, 0) if plan else None

    async def _poll(self, group: str, first: asyncio.Task[tuple[int, Sequence[Any], int]] | None) -> list[Reading]:
        out: list[Reading] = []
        plan = self._plans[group]
        answered = False
        i = 0
        ahead = first  # the read of plan[i], already sent
        try:
            while i < len(plan):
                block = plan[i]
                status, values, t = await (ahead if ahead is not None else self._read_chained(plan, i))
                ahead, self._next = self._next, None  # plan[i + 1]'s read, sent when this reply came
                if status == 0x02 and len(block.items) > 1:
                    # find the refused address; the others keep flowing. The read already sent finishes (its
                    # reply must not be taken for the next request's) and is read again in its new place.
                    self._chain += 1
                    if ahead is not None:
                        with contextlib.suppress(ConnectionLost):
                            await ahead
                        ahead = None
                    plan[i : i + 1] = self._prepare(split(block, self._regs))
                    continue
                answered = answered or status != BAD_TIMEOUT
                self._emit(block, status, values, t, out)
                i += 1
        finally:
            discard(ahead)
            discard(self._next)
            self._next = None
        if plan and not answered:
            raise ConnectionLost(self.where, f"no response to any of {len(plan)} requests of poll group {group!r}")
        return out

    async def _read_chained(self, plan: list[Block], i: int) -> tuple[int, Sequence[Any], int]:
        """(0, values) or (exception code 1-255, []) or (Bad_Timeout, []) of ``plan[i]``, and when the reply came
        (µs). The moment the reply is in, ``plan[i + 1]``'s request is sent (its read kept in ``_next``) from this
        task, not from the poll's, which would first have to be woken: two more turns of the event loop per
        request, on the path from one reply to the next request."""
        chain = self._chain
        status, values = await self._request(plan[i])
        t = now_us()
        if i + 1 < len(plan) and chain == self._chain:
            self._next = asyncio.ensure_future(self._read_chained(plan, i + 1))
        return status, values, t

    async def _request(self, block: Block) -> tuple[int, Sequence[Any]]:
        if self._silence:
            await asyncio.sleep(self._silence)
        self.requests += 1
        try:
            rr = await getattr(self._client, _READ[block.table])(block.start, count=block.count, device_id=block.unit)
        except ConnectionException as err:
            raise ConnectionLost(self.where, f"connection failed: {err}") from err
        except ModbusIOException:
            self.timeouts += 1
            if self._client is None or not self._client.connected:
                raise ConnectionLost(self.where, "connection closed by the device") from None
            return BAD_TIMEOUT, []
        except ModbusException as err:  # a malformed or mismatched response
            self.bad_values += len(block.items)
            self._warn(f"unit {block.unit} {block.table.value} {block.start}+{block.count}: bad response: {err}")
            return BAD_COMMUNICATION_ERROR, []
        if rr.isError():
            self.exceptions += 1
            return int(getattr(rr, "exception_code", 0)) or 0xFF, []
        if block.table in BIT_TABLES:
            return 0, rr.bits[: block.count]
        if len(rr.registers) < block.count:
            self.bad_values += len(block.items)
            self._warn(f"unit {block.unit}: asked for {block.count} registers, got {len(rr.registers)}")
            return BAD_COMMUNICATION_ERROR, []
        return 0, rr.registers if len(rr.registers) == block.count else rr.registers[: block.count]

    def _emit(self, block: Block, status: int, values: Sequence[Any], t: int, out: list[Reading]) -> None:
        if status != 0:
            self._emit_refusal(block, status, t, out)
            return
        refused = self.refused
        if refused:
            for i in block.items:
                refused.pop(i, None)
        if block.fast is not None and block.unpack is not None:
            self._report_run(block.fast, block.unpack(values), t, out)
        bits = block.table in BIT_TABLES
        for i in block.decoded:
            address, span = self._spans[i]
            off = address - block.start
            raw: object = None
            q = 0
            try:
                if bits:
                    raw = bool(values[off])
                else:
                    regs = [int(v) for v in values[off : off + span]]
                    raw = decode(regs, self._types[i], self._orders[i], self._bits[i])
            except DecodeError as err:
                reg = self._regs[i]
                self.bad_values += 1
                self._warn(f"{reg.signal} (unit {reg.unit_id} address {reg.address}): {err}")
                q = BAD_DATA_ENCODING_INVALID
            self._report(i, raw, q, t, out)

    def _emit_refusal(self, block: Block, status: int, t: int, out: list[Reading]) -> None:
        """The values of a request the device refused (exception code) or did not answer (a StatusCode)."""
        quality = EXCEPTION_QUALITY.get(status, status if status > 0xFF else BAD_COMMUNICATION_ERROR)
        if block.fast is not None:
            block.fast.last = None  # its values go bad: the next good read reports them again
        for i in block.items:
            if status == 0x02:
                reg = self._regs[i]
                if i not in self.refused:
                    _log.warning(
                        "%s: unit %d refused %s %d (%s/%s): illegal data address",
                        self.where,
                        reg.unit_id,
                        reg.table.value,
                        reg.address,
                        reg.cell,
                        reg.signal,
                    )
                self.refused[i] = status
            self._report(i, None, quality, t, out)

    def _warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= 10.0:
            self._last_log = now
            _log.warning("%s: %s (bad values so far: %d)", self.where, message, self.bad_values)

    async def close(self) -> None:
        self._chain += 1  # a read still in flight (the next round's, sent ahead) chains no further
        discard(self._next)
        self._next = None
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.close()
        except (ModbusException, OSError) as err:  # the connection is already gone
            _log.debug("%s: close: %s", self.where, err)


def create(config: ModbusSource, *, mqtt_url: str, state_dir: Path) -> ModbusAdapter:
    return ModbusAdapter(config)
