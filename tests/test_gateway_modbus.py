"""Modbus source against pymodbus's real server (TCP, and RTU over a pseudo-terminal pair from socat)."""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from datafactory.config.loader import validate_document
from datafactory.config.modbus import ByteOrder, ModbusSource, ModbusTable, ModbusType
from datafactory.contract.quality import BAD_NO_COMMUNICATION, BAD_TYPE_MISMATCH
from datafactory.errors import ConnectionLost
from gateway.sources.modbus import BAD_DATA_ENCODING_INVALID, BAD_DEVICE_FAILURE, BAD_NODE_ID_UNKNOWN, ModbusAdapter
from simulator.modbus_server import ModbusDeviceServer, RegisterStore
from tests.support.gateway_env import GatewayThread, collect, free_port, plant, plant_doc
from tests.support.polled import by_signal, polls, polls_as_runs

pytestmark = pytest.mark.integration

CELL = "press/line-1/press-01"
HR = ModbusTable.HOLDING_REGISTER

# Values chosen so a wrong byte or word order cannot decode to the same number.
CASES: list[tuple[ModbusType, Any]] = [
    (ModbusType.INT16, -12_345),
    (ModbusType.UINT16, 0xBEEF),
    (ModbusType.INT32, -123_456_789),
    (ModbusType.UINT32, 0xDEADBEEF),
    (ModbusType.FLOAT32, -2.5),
    (ModbusType.INT64, -(2**63) + 7),  # beyond 2^53: a float64 would round them
    (ModbusType.UINT64, 2**64 - 11),
    (ModbusType.FLOAT64, 1234.5678901234),
]


def _source(port: int, registers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "modbus",
        "id": "mb",
        "host": "127.0.0.1",
        "port": port,
        "timeout_s": 0.5,
        "retries": 0,
        "poll_groups": [{"name": "default", "interval_ms": 50}],
        "registers": registers,
        **extra,
    }


def _reg(signal: str, table: str, address: int, **kw: Any) -> dict[str, Any]:
    return {"cell": CELL, "signal": signal, "meaning": "generic", "table": table, "address": address, **kw}


def _config(port: int, registers: list[dict[str, Any]], **extra: Any) -> ModbusSource:
    cfg = validate_document(plant_doc("acme", sources=[_source(port, registers, **extra)], cells=[CELL]))
    src = cfg.sources[0]
    assert isinstance(src, ModbusSource)
    return src


@pytest.fixture
def device() -> Any:
    store = RegisterStore([1, 2])
    server = ModbusDeviceServer(store, port=free_port()).start()
    yield server
    server.close()


# Both ways the runner can read a polled source: readings, and (what ``gateway run`` uses) whole requests as
# rows of plain tuples (``stream_runs``). The assertions are the same for both.
READERS = pytest.mark.parametrize("read", [polls, polls_as_runs], ids=["stream", "stream_runs"])


@READERS
def test_every_type_and_byte_order_decodes_exactly(device: ModbusDeviceServer, read: Any) -> None:
    regs, expected, addr = [], {}, 0
    for order in ByteOrder:
        for vtype, value in CASES:
            name = f"{vtype.value}-{order.value.lower()}"
            device.store.set_value(1, HR, addr, value, vtype, order=order)
            regs.append(_reg(name, "holding_register", addr, data_type=vtype.value, byte_order=order.value))
            expected[name] = value
            addr += 4
    device.store.set_value(1, ModbusTable.INPUT_REGISTER, 0, 0b1010_0000_0000_0001, ModbusType.UINT16)
    regs += [
        _reg("bit0", "input_register", 0, bit=0),
        _reg("bit1", "input_register", 0, bit=1),
        _reg("bit15", "input_register", 0, bit=15),
        _reg("scaled", "holding_register", 500, data_type="int16", scale=0.1, offset=-40),
    ]
    device.store.set_value(1, HR, 500, 655, ModbusType.INT16)
    device.store.tables[1][ModbusTable.COIL][7] = 1
    device.store.tables[2][ModbusTable.DISCRETE_INPUT][3] = 1
    regs += [_reg("coil7", "coil", 7), _reg("coil6", "coil", 6), _reg("di3", "discrete_input", 3, unit_id=2)]
    device.store.set_value(1, HR, 510, "Mould-7 é", ModbusType.STRING, length=6)
    regs.append(_reg("recipe", "holding_register", 510, data_type="string", length=6))
    expected |= {"bit0": True, "bit1": False, "bit15": True, "scaled": 655 * 0.1 - 40, "coil7": True, "coil6": False}
    expected |= {"di3": True, "recipe": "Mould-7 é"}
    got = by_signal(asyncio.run(read(ModbusAdapter(_config(device.port, regs)), 1)))
    # Exact values of the declared types (contract.values): integers stay int, flags bool, text str.
    assert {k: (v[0].value, type(v[0].value)) for k, v in got.items()} == {k: (v, type(v)) for k, v in expected.items()}
    assert all(v[0].quality == 0 for v in got.values())


def test_codec_round_trip_through_the_server_keeps_uint64_and_strings_exact(device: ModbusDeviceServer) -> None:
    from pymodbus.client import ModbusTcpClient

    from datafactory.fieldbus.modbus_codec import decode

    cases: list[tuple[ModbusType, int | str]] = [
        (ModbusType.UINT64, 2**64 - 1),
        (ModbusType.INT64, -(2**63)),
        (ModbusType.STRING, "Mould-7 é"),
    ]
    client = ModbusTcpClient("127.0.0.1", port=device.port)
    assert client.connect()
    try:
        for order in ByteOrder:
            for vtype, value in cases:
                device.store.set_value(1, HR, 0, value, vtype, order=order, length=8)
                n = 8 if vtype is ModbusType.STRING else 4
                regs = client.read_holding_registers(0, count=n, device_id=1).registers
                decoded = decode(list(regs), vtype, order)
                assert decoded == value and type(decoded) is type(value), (order, vtype)
    finally:
        client.close()


def test_contiguous_values_are_coalesced_within_the_device_limit(device: ModbusDeviceServer) -> None:
    regs = [_reg(f"r{i}", "holding_register", i) for i in range(20)]  # 20 contiguous uint16
    regs += [_reg("f", "holding_register", 20, data_type="float32")]  # 22 registers in all
    regs += [_reg("far", "holding_register", 100)]  # not contiguous: its own request

    def requests_per_poll(**extra: Any) -> float:
        before = device.store.read_requests()
        adapter = ModbusAdapter(_config(device.port, regs, report="every_poll", **extra))
        asyncio.run(polls(adapter, 5))
        return (device.store.read_requests() - before) / 5

    assert requests_per_poll() == 2
    assert requests_per_poll(devices=[{"unit_id": 1, "max_registers_per_request": 8}]) == 4  # 8+8+6 (float kept whole)
    assert requests_per_poll(devices=[{"unit_id": 1, "max_gap": 100}]) == 1
    before = device.store.read_requests()
    asyncio.run(polls(ModbusAdapter(_config(device.port, regs, report="every_poll"), coalesce=False), 5))
    assert (device.store.read_requests() - before) / 5 == len(regs)


def test_a_refused_register_goes_bad_alone_and_the_others_keep_flowing(device: ModbusDeviceServer) -> None:
    for a in range(5):
        device.store.set_value(1, HR, a, 100 + a, ModbusType.UINT16)
    device.store.refused.add((1, HR, 2))
    device.store.failing_units.add(2)
    regs = [_reg(f"r{a}", "holding_register", a) for a in range(5)] + [_reg("u2", "holding_register", 0, unit_id=2)]
    adapter = ModbusAdapter(_config(device.port, regs))
    got = by_signal(asyncio.run(polls(adapter, 3, max_s=1.0)))  # 20 polls in 1 s, values never change
    assert [s.value for s in got["r1"]][:1] == [101] and [s.value for s in got["r4"]][:1] == [104]
    assert got["r2"][0].quality == BAD_NODE_ID_UNKNOWN and math.isnan(got["r2"][0].value)
    assert got["u2"][0].quality == BAD_DEVICE_FAILURE
    assert adapter.counters()["refused"] == 1
    assert len(got["r1"]) == 1  # report by change: the unchanged value is not repeated every poll


@READERS
def test_report_by_change_of_a_block_decoded_at_once(device: ModbusDeviceServer, read: Any) -> None:
    """The values of a block decoded in one call (gateway.polling.FastRun): each is reported when it changes,
    a float that is not a number goes bad alone, and after the device failed every value is reported again."""
    for a in range(4):
        device.store.set_value(1, HR, a, 10 + a, ModbusType.UINT16)
    device.store.set_value(1, HR, 4, -2.5, ModbusType.FLOAT32, order=ByteOrder.CDAB)
    device.store.set_value(1, HR, 100, math.nan, ModbusType.FLOAT32)  # a block of its own
    regs = [_reg(f"r{a}", "holding_register", a) for a in range(4)]
    regs += [_reg("f", "holding_register", 4, data_type="float32", byte_order="CDAB"),
             _reg("nan", "holding_register", 100, data_type="float32")]  # fmt: skip
    adapter = ModbusAdapter(_config(device.port, regs))

    def between(step: int) -> None:
        if step == 1:
            device.store.set_value(1, HR, 2, 99, ModbusType.UINT16)
        elif step == 2:
            device.store.failing_units.add(1)
        elif step == 3:
            device.store.failing_units.discard(1)

    first, changed, failed, back = (by_signal([r]) for r in asyncio.run(read(adapter, 4, between=between)))

    def good(polled: dict[str, list[Any]]) -> dict[str, Any]:
        assert all(v[0].quality == 0 for k, v in polled.items() if k != "nan")
        return {k: v[0].value for k, v in polled.items() if k != "nan"}

    assert good(first) == {"r0": 10, "r1": 11, "r2": 12, "r3": 13, "f": -2.5}
    assert first["nan"][0].quality == BAD_TYPE_MISMATCH  # a NaN is no value: a marker, re-sent while it lasts
    assert set(changed) - {"nan"} == {"r2"} and changed["r2"][0].value == 99
    assert set(failed) == {"r0", "r1", "r2", "r3", "f", "nan"} and {v[0].quality for v in failed.values()} == {
        BAD_DEVICE_FAILURE
    }
    assert good(back) == {"r0": 10, "r1": 11, "r2": 99, "r3": 13, "f": -2.5}


def test_registers_that_are_not_text_are_counted_bad_data(device: ModbusDeviceServer) -> None:
    device.store.tables[1][HR][0:2] = [0xFFFE, 0x4142]
    adapter = ModbusAdapter(_config(device.port, [_reg("name", "holding_register", 0, data_type="string", length=2)]))
    got = by_signal(asyncio.run(polls(adapter, 1)))
    assert got["name"][0].quality == BAD_DATA_ENCODING_INVALID
    assert adapter.counters()["bad_values"] == 1


def test_closed_port_and_dead_peer_raise_connection_lost() -> None:
    adapter = ModbusAdapter(_config(free_port(), [_reg("x", "holding_register", 0)]))
    with pytest.raises(ConnectionLost):
        asyncio.run(adapter.open())
    asyncio.run(adapter.close())
    asyncio.run(adapter.close())


def test_gateway_publishes_marks_the_gap_on_peer_death_and_recovers(
    tmp_path: Path, mqtt_url: str, enterprise: str
) -> None:
    port = free_port()
    store = RegisterStore([1])
    store.set_value(1, HR, 0, 42.25, ModbusType.FLOAT32, order=ByteOrder.CDAB)
    server = ModbusDeviceServer(store, port=port).start()
    regs = [_reg("power", "holding_register", 0, data_type="float32", byte_order="CDAB", unit="kW")]
    cfg = plant(enterprise, sources=[_source(port, regs)], cells=[CELL])
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/#") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):
            assert col.wait_for(lambda: any(s.value == 42.25 for _, s in col.data_samples()))
            server.stop()
            assert col.wait_for(lambda: any(s.quality == BAD_NO_COMMUNICATION for _, s in col.data_samples()))
            store.set_value(1, HR, 0, 43.5, ModbusType.FLOAT32, order=ByteOrder.CDAB)
            server = ModbusDeviceServer(store, port=port).start()
            assert col.wait_for(lambda: any(s.value == 43.5 for _, s in col.data_samples()), timeout=20)
            values = [s.value for _, s in col.data_samples()]
            gap = next(i for i, s in enumerate(col.data_samples()) if s[1].quality == BAD_NO_COMMUNICATION)
            assert values.index(43.5) > gap
    finally:
        server.close()


@pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat (Debian package socat)")
def test_rtu_over_a_pseudo_terminal_pair(tmp_path: Path) -> None:
    a, b = tmp_path / "ttyA", tmp_path / "ttyB"
    socat = subprocess.Popen(["socat", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"])
    try:
        deadline = time.monotonic() + 5
        while not (a.exists() and b.exists()) and time.monotonic() < deadline:
            time.sleep(0.05)
        store = RegisterStore([3])
        store.set_value(3, HR, 10, -7.75, ModbusType.FLOAT32)
        store.set_value(3, ModbusTable.INPUT_REGISTER, 0, 0xCAFE, ModbusType.UINT16)
        server = ModbusDeviceServer(store, serial_port=str(b), baudrate=19200).start()
        try:
            regs = [
                _reg("t", "holding_register", 10, unit_id=3, data_type="float32"),
                _reg("w", "input_register", 0, unit_id=3),
            ]
            extra = {"transport": "rtu", "serial_port": str(a), "baudrate": 19200, "parity": "N", "timeout_s": 1.0}
            got = by_signal(asyncio.run(polls(ModbusAdapter(_config(502, regs, **extra)), 1)))
            assert got["t"][0].value == -7.75 and got["w"][0].value == 0xCAFE
            assert store.read_requests(3) == 2
        finally:
            server.close()
    finally:
        socat.terminate()
        socat.wait(5)
