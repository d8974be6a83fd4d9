"""A Modbus TCP/RTU device served by pymodbus's server, with registers we set and requests we count.

pymodbus's own protocol stack (framing, function codes, exception responses) answers; only the data store is
ours: a dict of tables per unit id, so the simulator can write machine values into it, a test can make an
address refuse (exception 02) or a unit fail (exception 04), and every read request is counted per unit and
function code — the number a coalescing test compares.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from datafactory.config.modbus import ByteOrder, ModbusTable, ModbusType
from datafactory.fieldbus.modbus_codec import encode

_FC_TABLE = {
    1: ModbusTable.COIL,
    5: ModbusTable.COIL,
    15: ModbusTable.COIL,
    2: ModbusTable.DISCRETE_INPUT,
    3: ModbusTable.HOLDING_REGISTER,
    6: ModbusTable.HOLDING_REGISTER,
    16: ModbusTable.HOLDING_REGISTER,
    4: ModbusTable.INPUT_REGISTER,
}
TABLE_SIZE = 65536


class RegisterStore(ModbusServerContext):
    """The data of several units behind one server (a Modbus TCP gateway with serial devices behind it)."""

    def __init__(self, unit_ids: Sequence[int]) -> None:
        # Deliberately not calling the base initialiser: it builds pymodbus's deprecated simulator objects. The
        # server accepts a context that answers async_getValues/async_setValues/device_ids itself.
        self.old_simulator = True
        self.simdevices = []
        self.tables: dict[int, dict[ModbusTable, list[int]]] = {
            u: {t: [0] * TABLE_SIZE for t in ModbusTable} for u in unit_ids
        }
        self.refused: set[tuple[int, ModbusTable, int]] = set()  # (unit, table, address) answered with exception 02
        self.failing_units: set[int] = set()  # answered with exception 04 (server device failure)
        self.requests: Counter[tuple[int, int]] = Counter()  # (unit, function code) → read requests served
        self.lock = threading.Lock()

    def set_value(
        self,
        unit: int,
        table: ModbusTable,
        address: int,
        value: int | float | bool | str,
        vtype: ModbusType,
        *,
        order: ByteOrder = ByteOrder.ABCD,
        length: int = 0,
    ) -> None:
        regs = encode(value, vtype, order, length)
        with self.lock:
            self.tables[unit][table][address : address + len(regs)] = regs

    def set_bit(self, unit: int, table: ModbusTable, address: int, bit: int, on: bool) -> None:
        with self.lock:
            regs = self.tables[unit][table]
            regs[address] = regs[address] | (1 << bit) if on else regs[address] & ~(1 << bit)

    def read_requests(self, unit: int | None = None) -> int:
        with self.lock:
            return sum(n for (u, fc), n in self.requests.items() if fc in (1, 2, 3, 4) and unit in (None, u))

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        units = self.tables.get(device_id)
        if units is None:
            return ExcCodes.GATEWAY_NO_RESPONSE
        if device_id in self.failing_units:
            return ExcCodes.DEVICE_FAILURE
        table = _FC_TABLE.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if address + count > TABLE_SIZE:
            return ExcCodes.ILLEGAL_ADDRESS
        with self.lock:
            self.requests[(device_id, func_code)] += 1
            if any((device_id, table, a) in self.refused for a in range(address, address + count)):
                return ExcCodes.ILLEGAL_ADDRESS
            values = units[table][address : address + count]
        if table in (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT):
            return [bool(v) for v in values]
        return values

    async def async_setValues(
        self, device_id: int, func_code: int, address: int, values: Sequence[int] | Sequence[bool]
    ) -> ExcCodes | None:
        table = _FC_TABLE.get(func_code)
        if device_id not in self.tables or table is None or address + len(values) > TABLE_SIZE:
            return ExcCodes.ILLEGAL_ADDRESS
        with self.lock:
            self.tables[device_id][table][address : address + len(values)] = [int(v) for v in values]
        return None

    def device_ids(self) -> list[int]:
        return list(self.tables)


class ModbusDeviceServer:
    """A pymodbus TCP (or RTU, on a serial device path) server in its own thread and event loop."""

    def __init__(
        self, store: RegisterStore, *, port: int = 0, serial_port: str = "", baudrate: int = 19200, parity: str = "N"
    ) -> None:
        self.store = store
        self.port = port
        self.serial_port = serial_port
        self.baudrate = baudrate
        self.parity = parity
        self.loop = asyncio.new_event_loop()
        self._server: Any = None
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="modbus-server")
        self._thread.start()

    def _call(self, coro: Any, timeout: float = 10) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        if self.serial_port:
            server: Any = ModbusSerialServer(
                self.store,
                port=self.serial_port,
                baudrate=self.baudrate,
                parity=self.parity,
                ignore_missing_devices=True,
            )
        else:
            server = ModbusTcpServer(self.store, address=("127.0.0.1", self.port), ignore_missing_devices=True)
        await server.listen()
        self._server = server

    def start(self) -> ModbusDeviceServer:
        self._call(self._start())
        return self

    def stop(self) -> None:
        """Stop serving and drop every client connection (a device powered off)."""
        if self._server is not None:
            self._call(self._server.shutdown())
            self._server = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    def __enter__(self) -> ModbusDeviceServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
