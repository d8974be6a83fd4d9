"""Register-read responses that pymodbus decodes in one ``struct`` call, registered on each client the adapter opens.

pymodbus 3.16 decodes a holding- or input-register response one register at a time (a slice, an unpack and an
append each) and then formats the whole response, all its registers included, into a debug message whether or
not debug logging is on. At 2,000 registers polled back to back that was a fifth of the gateway's CPU. These
subclasses keep pymodbus's checks and its ``registers`` list, and say only their size in ``str``.
``ModbusClientMixin.register`` is pymodbus's own way to give a function code a response class.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import ReadHoldingRegistersResponse, ReadInputRegistersResponse

_UNPACKERS: dict[int, struct.Struct] = {}


def _registers(data: bytes, function_code: int) -> list[int]:
    byte_count = int(data[0])
    if byte_count >= len(data):  # pymodbus's own check: the count says more than the frame holds
        raise ModbusIOException(f"byte_count {byte_count} > length of packet {len(data)}", function_code=function_code)
    n = byte_count // 2
    unpacker = _UNPACKERS.get(n)
    if unpacker is None:
        unpacker = _UNPACKERS[n] = struct.Struct(f">{n}H")
    return list(unpacker.unpack_from(data, 1))


class _OneUnpack:
    registers: Sequence[int]
    function_code: int
    dev_id: int
    transaction_id: int

    def decode(self, data: bytes) -> None:
        self.registers = _registers(data, self.function_code)

    def __str__(self) -> str:
        name = type(self).__name__
        return f"{name}(dev_id={self.dev_id}, transaction_id={self.transaction_id}, count={len(self.registers)})"


class FastHoldingRegisters(_OneUnpack, ReadHoldingRegistersResponse):
    pass


class FastInputRegisters(_OneUnpack, ReadInputRegistersResponse):
    pass


def register_fast_responses(client: AsyncModbusTcpClient | AsyncModbusSerialClient) -> None:
    client.register(FastHoldingRegisters)
    client.register(FastInputRegisters)
