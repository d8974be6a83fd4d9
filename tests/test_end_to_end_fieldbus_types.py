"""Every Modbus type in every byte order, every S7 type: device → gateway → Mosquitto → ingest → PostgreSQL,
exact. What the database holds (``sample_values``: the typed value of each sample) is what the device held —
a uint64 of 2^64 − 11 and an int64 of −2^63 + 7 to the last bit, bits and coils as booleans, text as text."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from datafactory.config.modbus import ByteOrder, ModbusTable, ModbusType
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from simulator.modbus_server import ModbusDeviceServer, RegisterStore
from simulator.s7_server import S7DeviceServer
from tests.support.gateway_env import GatewayThread, free_port, plant
from tests.test_gateway_modbus import CASES
from tests.test_gateway_s7 import VALUES

pytestmark = pytest.mark.integration

CELL = "press/line-1/press-01"
HR = ModbusTable.HOLDING_REGISTER


def _binding(signal: str) -> dict[str, Any]:
    return {"cell": CELL, "signal": signal, "meaning": "generic"}


def _typed(db_url: str, enterprise: str) -> dict[str, Any]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            """
            SELECT p.signal, v.value_type, v.value, v.value_int, v.value_bool, v.value_text
            FROM sample_values v JOIN signal_paths p ON p.signal_id = v.signal_id
            WHERE p.enterprise = %s AND df_quality_severity(v.quality) = 'good'
            """,
            (enterprise,),
        ).fetchall()
    out: dict[str, Any] = {}
    for signal, vtype, value, vint, vbool, vtext in rows:
        exact = {"int64": vint, "uint64": vint, "bool": vbool, "string": vtext}.get(vtype, value)
        out[signal] = int(exact) if isinstance(exact, Decimal) else exact
    return out


def test_every_type_and_byte_order_reaches_the_database_exactly(db_url: str, mqtt_url: str, enterprise: str, tmp_path):
    store = RegisterStore([1])
    registers, expected, address = [], {}, 0
    for order in ByteOrder:
        for vtype, value in CASES:
            name = f"{vtype.value}-{order.value.lower()}"
            store.set_value(1, HR, address, value, vtype, order=order)
            registers.append(
                _binding(name) | {"table": "holding_register", "address": address, "data_type": vtype.value}
                | {"byte_order": order.value}
            )  # fmt: skip
            expected[name] = value
            address += 4
    store.set_value(1, HR, 500, "Mould-7 é", ModbusType.STRING, length=6)
    store.set_value(1, ModbusTable.INPUT_REGISTER, 0, 0b1000_0000_0000_0001, ModbusType.UINT16)
    store.tables[1][ModbusTable.COIL][3] = 1
    registers += [
        _binding("recipe") | {"table": "holding_register", "address": 500, "data_type": "string", "length": 6},
        _binding("bit0") | {"table": "input_register", "address": 0, "bit": 0},
        _binding("bit1") | {"table": "input_register", "address": 0, "bit": 1},
        _binding("coil3") | {"table": "coil", "address": 3},
    ]
    expected |= {"recipe": "Mould-7 é", "bit0": True, "bit1": False, "coil3": True}
    s7 = S7DeviceServer(free_port(), dbs={10: 64})
    for address_s7, value in VALUES.items():
        s7.write(address_s7, value)
    s7.write("DB10.DBB30:STRING[8]", "Presse 3")
    items = [_binding(f"s7-{i}") | {"address": a} for i, a in enumerate(VALUES)]
    items.append(_binding("s7-name") | {"address": "DB10.DBB30:STRING[8]"})
    expected |= {f"s7-{i}": v for i, v in enumerate(VALUES.values())} | {"s7-name": "Presse 3"}

    modbus = ModbusDeviceServer(store, port=free_port())
    groups = [{"name": "default", "interval_ms": 100}]
    sources = [
        {"kind": "modbus", "id": "mb", "port": modbus.port, "poll_groups": groups, "registers": registers},
        {"kind": "s7", "id": "plc", "host": "127.0.0.1", "port": s7.port, "poll_groups": groups, "items": items},
    ]
    cfg = plant(enterprise, sources=sources, cells=[CELL])
    options = IngestOptions(
        database_url=db_url, mqtt_url=mqtt_url, topic_filter=f"df/v1/{enterprise}/#", worker=f"types-{enterprise}"
    )
    with modbus, s7, IngestWorker(options), GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path):
        deadline = time.monotonic() + 30
        while len(got := _typed(db_url, enterprise)) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.3)
    assert {k: (v, type(v)) for k, v in got.items()} == {k: (v, type(v)) for k, v in expected.items()}
