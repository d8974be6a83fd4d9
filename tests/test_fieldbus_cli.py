"""`datafactory modbus scan` and `datafactory s7 read` against pymodbus's and snap7's servers."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from app.cli.main import cli
from datafactory.config.modbus import ByteOrder, ModbusTable, ModbusType
from simulator.modbus_server import ModbusDeviceServer, RegisterStore
from simulator.s7_server import S7DeviceServer
from tests.support.gateway_env import free_port

pytestmark = pytest.mark.integration


def test_modbus_scan_shows_the_value_in_the_byte_order_it_was_written() -> None:
    store = RegisterStore([1])
    store.set_value(1, ModbusTable.HOLDING_REGISTER, 0, 230.5, ModbusType.FLOAT32, order=ByteOrder.CDAB)
    with ModbusDeviceServer(store, port=free_port()) as server:
        result = CliRunner().invoke(cli, ["modbus", "scan", "127.0.0.1", "--port", str(server.port), "--count", "4"])
    assert result.exit_code == 0, result.output
    float_rows = result.output.split("float32:")[1].splitlines()
    header, first = float_rows[0].split(), float_rows[1].split()
    assert first[header.index("CDAB") + 1] == "230.5"  # +1: the row starts with its address
    assert first[header.index("ABCD") + 1] != "230.5"


def test_modbus_scan_of_a_closed_port_is_one_line_and_exit_1() -> None:
    result = CliRunner().invoke(cli, ["modbus", "scan", "127.0.0.1", "--port", str(free_port())])
    assert result.exit_code == 1 and "cannot connect" in result.output and "Traceback" not in result.output


def test_s7_read_prints_the_value_and_rejects_a_bad_address() -> None:
    with S7DeviceServer(free_port(), dbs={10: 16}) as server:
        server.write("DB10.DBD4:REAL", -2.5)
        ok = CliRunner().invoke(cli, ["s7", "read", "127.0.0.1", "DB10.DBD4:REAL", "--port", str(server.port)])
        bad = CliRunner().invoke(cli, ["s7", "read", "127.0.0.1", "DB10.DBW4:REAL", "--port", str(server.port)])
    assert ok.exit_code == 0 and ok.output.strip() == "-2.5", ok.output
    assert bad.exit_code == 1 and "4 bytes" in bad.output
