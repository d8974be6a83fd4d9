"""The gateway's register-read responses decode exactly as pymodbus's own, and one poll's requests return them."""

from __future__ import annotations

import asyncio
import struct

import pytest
from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.decoders import DecodePDU

from gateway.sources.modbus_responses import FastHoldingRegisters, FastInputRegisters


def _decoders() -> tuple[DecodePDU, DecodePDU]:
    ours = DecodePDU(False)
    ours.register(FastHoldingRegisters)
    ours.register(FastInputRegisters)
    return DecodePDU(False), ours


@pytest.mark.parametrize("function_code", [3, 4])
@pytest.mark.parametrize("count", [0, 1, 2, 7, 124, 125])
def test_registers_decode_as_pymodbus_decodes_them(function_code: int, count: int) -> None:
    registers = [(0xFFFF - 37 * i) & 0xFFFF for i in range(count)]
    frame = bytes([function_code, 2 * count]) + struct.pack(f">{count}H", *registers)
    stock, ours = _decoders()
    theirs, mine = stock.decode(frame), ours.decode(frame)
    assert type(mine).__name__.startswith("Fast")
    assert theirs is not None and mine is not None
    assert list(mine.registers) == list(theirs.registers) == registers
    assert mine.function_code == theirs.function_code == function_code
    assert len(str(mine)) < 120  # says its size, never the registers (pymodbus formats it for every reply)


def test_a_frame_shorter_than_its_byte_count_is_refused_like_pymodbus_refuses_it() -> None:
    frame = bytes([3, 10]) + struct.pack(">2H", 1, 2)  # says 10 bytes, holds 4
    with pytest.raises(ModbusIOException, match="byte_count 10"):
        FastHoldingRegisters().decode(frame[1:])
    stock, ours = _decoders()
    assert stock.decode(frame) is None and ours.decode(frame) is None  # the decoder logs and drops both


def test_the_adapter_reads_through_them() -> None:
    from datafactory.config.loader import validate_document
    from datafactory.config.modbus import ModbusTable, ModbusType
    from gateway.sources.modbus import ModbusAdapter
    from simulator.modbus_server import ModbusDeviceServer, RegisterStore
    from tests.support.gateway_env import free_port, plant_doc

    store = RegisterStore([1])
    written = [65535, 0, 4242]
    for address, value in enumerate(written):
        store.set_value(1, ModbusTable.HOLDING_REGISTER, address, value, ModbusType.UINT16)

    async def read_once(port: int) -> tuple[str, list[object]]:
        source = {"kind": "modbus", "id": "m", "port": port, "report": "every_poll",
                  "poll_groups": [{"name": "default", "interval_ms": 50}],
                  "registers": [{"table": "holding_register", "address": a, "cell": "a/l/c", "signal": f"r{a}",
                                 "data_type": "uint16", "meaning": "generic"} for a in range(3)]}  # fmt: skip
        cfg = validate_document(plant_doc("acme", sources=[source], cells=["a/l/c"])).sources[0]
        adapter = ModbusAdapter(cfg)  # type: ignore[arg-type]
        await adapter.open()
        try:
            assert adapter._client is not None
            reply = await adapter._client.read_holding_registers(0, count=3, device_id=1)
            async for readings in adapter.stream():
                return type(reply).__name__, [s.value for _, s in sorted(readings, key=lambda r: r[1].signal)]
        finally:
            await adapter.close()
        raise AssertionError("the stream ended before its first poll")

    with ModbusDeviceServer(store, port=free_port()) as server:
        name, values = asyncio.run(read_once(server.port))
    assert name == "FastHoldingRegisters"
    assert values == written
