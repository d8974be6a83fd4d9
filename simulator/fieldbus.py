"""Simulated machines served over Modbus TCP and S7, from the same model as the OPC-UA ones.

A mixed plant assigns some machines to a fieldbus (``FieldbusPlan``): their signals are written into a pymodbus
server's registers (one unit id per machine, all behind one TCP port, as behind a Modbus TCP gateway) or into
one S7 data block per machine on a snap7 server, instead of OPC-UA variables. The register map is fixed and
documented here, and ``plant_config`` derives the gateway's Modbus and S7 sources from the same map, so the
simulator and the gateway cannot disagree about an address:

=============  =========================  ==========================
signal         Modbus holding registers    S7 (DB ``S7_DB_BASE + k``)
=============  =========================  ==========================
state          0, int16                   ``DBW0:INT``
good_count     1-2, uint32                ``DBD2:DINT``
reject_count   3-4, uint32                ``DBD6:DINT``
total_count    5-6, uint32                ``DBD10:DINT``
power          7-10, float64              ``DBB14:LREAL``
energy         11-14, float64             ``DBB22:LREAL``
vibration      15-18, float64             ``DBB30:LREAL``
temperature    19-22, float64             ``DBB38:LREAL``
=============  =========================  ==========================

Analog values are float64 / LREAL so what the gateway reads is exactly what the model emitted. Polled
protocols carry no source timestamp: the gateway stamps a value when it reads it, so a mixed plant runs at
``speed`` 1, with the simulated clock on the real one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from datafactory.config.modbus import ModbusTable, ModbusType
from simulator.layout import MACHINE_SIGNALS, PlantLayout
from simulator.modbus_server import ModbusDeviceServer, RegisterStore
from simulator.s7_server import S7DeviceServer

MODBUS = "modbus"
S7 = "s7"
METER_UNIT = 1
METER_BAUDRATE = 19200
METER_MAP = {"power": 0, "energy": 4}  # float64 holding registers of the RTU meter (kW, kWh)
S7_DB_BASE = 100
S7_DB_SIZE = 46

_INTEGER_SIGNALS = ("state", "good_count", "reject_count", "total_count")
MODBUS_MAP: dict[str, tuple[int, ModbusType]] = {
    "state": (0, ModbusType.INT16),
    "good_count": (1, ModbusType.UINT32),
    "reject_count": (3, ModbusType.UINT32),
    "total_count": (5, ModbusType.UINT32),
    "power": (7, ModbusType.FLOAT64),
    "energy": (11, ModbusType.FLOAT64),
    "vibration": (15, ModbusType.FLOAT64),
    "temperature": (19, ModbusType.FLOAT64),
}
S7_MAP: dict[str, str] = {
    "state": "DBW0:INT",
    "good_count": "DBD2:DINT",
    "reject_count": "DBD6:DINT",
    "total_count": "DBD10:DINT",
    "power": "DBB14:LREAL",
    "energy": "DBB22:LREAL",
    "vibration": "DBB30:LREAL",
    "temperature": "DBB38:LREAL",
}
assert set(MODBUS_MAP) == set(S7_MAP) == {s.name for s in MACHINE_SIGNALS}
MIXED_DEMO = {  # edge_configs/mixed-plant.yaml: two machines on Modbus TCP, one on S7, the others on OPC-UA
    "machining/line-1/cnc-03": MODBUS,
    "machining/line-1/cnc-04": MODBUS,
    "assembly/line-1/asm-04": S7,
}
MIXED_DEMO_MODBUS_PORT = 5020  # 502 and 102 need root; integrators' simulators use these
MIXED_DEMO_S7_PORT = 10102


@dataclass(frozen=True, slots=True)
class FieldbusPlan:
    """Which machines (cell paths) speak Modbus TCP or S7, and where the two servers listen."""

    @classmethod
    def mixed_demo(cls) -> FieldbusPlan:
        return cls(dict(MIXED_DEMO), modbus_port=MIXED_DEMO_MODBUS_PORT, s7_port=MIXED_DEMO_S7_PORT)

    protocols: dict[str, str] = field(default_factory=dict)  # cell path → MODBUS or S7
    modbus_port: int = 0
    s7_port: int = 0
    # The utility meter on Modbus RTU instead of MQTT: the serial device the simulator serves it on, and the one
    # the gateway reads (the two ends of a null-modem cable, or of a socat pseudo-terminal pair).
    meter_serial: str = ""
    meter_gateway_serial: str = ""

    def unit_id(self, layout: PlantLayout, cell_path: str) -> int:
        """Modbus unit id of a machine: its 1-based position among the plant's Modbus machines."""
        modbus = [m.path for m in layout.machines if self.protocols.get(m.path) == MODBUS]
        return modbus.index(cell_path) + 1

    def s7_db(self, layout: PlantLayout, cell_path: str) -> int:
        s7 = [m.path for m in layout.machines if self.protocols.get(m.path) == S7]
        return S7_DB_BASE + s7.index(cell_path)


def s7_address(db: int, signal: str) -> str:
    return f"DB{db}.{S7_MAP[signal]}"


class FieldbusMachines:
    """The Modbus and S7 servers of a plan, and the write of one machine signal into them."""

    def __init__(self, layout: PlantLayout, plan: FieldbusPlan) -> None:
        self.plan = plan
        signals = [s.name for s in MACHINE_SIGNALS]
        # Per signal index of the model (machines first, 8 signals each): the writer's target, or None (OPC-UA).
        self.targets: list[tuple[str, int, str] | None] = []
        units, dbs = [], {}
        for m in layout.machines:
            protocol = plan.protocols.get(m.path)
            for name in signals:
                if protocol == MODBUS:
                    self.targets.append((MODBUS, plan.unit_id(layout, m.path), name))
                elif protocol == S7:
                    self.targets.append((S7, plan.s7_db(layout, m.path), name))
                else:
                    self.targets.append(None)
            if protocol == MODBUS:
                units.append(plan.unit_id(layout, m.path))
            elif protocol == S7:
                dbs[plan.s7_db(layout, m.path)] = S7_DB_SIZE
        self.store = RegisterStore(units) if units else None
        self.modbus = ModbusDeviceServer(self.store, port=plan.modbus_port) if self.store is not None else None
        self.s7 = S7DeviceServer(plan.s7_port, dbs=dbs) if dbs else None
        self.meter_store = RegisterStore([METER_UNIT]) if plan.meter_serial else None
        self.meter = (
            ModbusDeviceServer(self.meter_store, serial_port=plan.meter_serial, baudrate=METER_BAUDRATE, parity="N")
            if self.meter_store is not None
            else None
        )

    def serves(self, index: int) -> bool:
        return index < len(self.targets) and self.targets[index] is not None

    def write(self, index: int, value: float) -> None:
        target = self.targets[index]
        assert target is not None
        protocol, where, name = target
        v: float | int = int(value) if name in _INTEGER_SIGNALS else value
        if protocol == MODBUS:
            assert self.store is not None
            address, vtype = MODBUS_MAP[name]
            self.store.set_value(where, ModbusTable.HOLDING_REGISTER, address, v, vtype)
        else:
            assert self.s7 is not None
            self.s7.write(s7_address(where, name), v)

    def write_meter(self, kw: float, kwh: float) -> None:
        assert self.meter_store is not None
        for name, value in (("power", kw), ("energy", kwh)):
            self.meter_store.set_value(METER_UNIT, ModbusTable.HOLDING_REGISTER, METER_MAP[name], value,
                                       ModbusType.FLOAT64)  # fmt: skip

    def start(self) -> None:
        if self.meter is not None:
            self.meter.start()
        if self.modbus is not None:
            self.modbus.start()
        if self.s7 is not None:
            self.s7.start()

    def stop(self) -> None:
        if self.meter is not None:
            self.meter.close()
        if self.modbus is not None:
            self.modbus.close()
        if self.s7 is not None:
            self.s7.stop()
