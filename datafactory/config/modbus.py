"""Config model of ``kind: modbus``: Modbus TCP or RTU devices polled in poll groups.

Addresses are the 0-based protocol (PDU) addresses a device manual lists next to its 1-based "40001" form:
holding register 40001 is ``table: holding_register, address: 0``. A value spans as many registers as its
type needs; ``byte_order`` says how its bytes sit in them (``ABCD`` = Modbus big-endian, ``CDAB`` = word
swapped, ``BADC`` = bytes swapped within each word, ``DCBA`` = little-endian).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import Field

from datafactory.config.base import Name, StrictModel
from datafactory.config.signals import SignalBinding, SourceConfig
from datafactory.contract.values import SignalType


class ModbusTable(StrEnum):
    COIL = "coil"
    DISCRETE_INPUT = "discrete_input"
    INPUT_REGISTER = "input_register"
    HOLDING_REGISTER = "holding_register"


class ModbusType(StrEnum):
    BOOL = "bool"
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"


class ByteOrder(StrEnum):
    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


class ModbusTransport(StrEnum):
    TCP = "tcp"
    RTU = "rtu"


REGISTER_COUNT = {
    ModbusType.INT16: 1,
    ModbusType.UINT16: 1,
    ModbusType.INT32: 2,
    ModbusType.UINT32: 2,
    ModbusType.FLOAT32: 2,
    ModbusType.INT64: 4,
    ModbusType.UINT64: 4,
    ModbusType.FLOAT64: 4,
}
BIT_TABLES = (ModbusTable.COIL, ModbusTable.DISCRETE_INPUT)
SIGNAL_TYPE = {
    ModbusType.BOOL: SignalType.BOOL,
    ModbusType.STRING: SignalType.STRING,
    ModbusType.FLOAT32: SignalType.FLOAT64,
    ModbusType.FLOAT64: SignalType.FLOAT64,
    ModbusType.UINT64: SignalType.UINT64,
}
"""The contract type of each register type (the other integers are int64, which holds them exactly)."""


class ModbusRegister(SignalBinding):
    unit_id: int = Field(default=1, ge=0, le=255, description="Unit (slave) id of the device behind the connection.")
    table: ModbusTable = Field(description="coil, discrete_input, input_register or holding_register.")
    address: int = Field(ge=0, le=65535, description="0-based protocol address (holding register 40001 is 0).")
    data_type: ModbusType | None = Field(
        default=None,
        description="Value type; default bool for coils and discrete inputs, uint16 for registers, bool with 'bit'.",
    )
    bit: int | None = Field(
        default=None, ge=0, le=15, description="Bit field: bit number (0 = least significant) of a 16-bit register."
    )
    length: int = Field(default=0, ge=0, le=123, description="Registers of a string (2 characters each).")
    byte_order: ByteOrder = Field(default=ByteOrder.ABCD, description="ABCD, CDAB, BADC or DCBA.")
    poll_group: str = Field(default="default", description="Name of the poll group that reads this value.")

    def value_type(self) -> ModbusType:
        """The declared type, or the default for the table (a bit field is a bool)."""
        if self.data_type is not None:
            return self.data_type
        return ModbusType.BOOL if self.table in BIT_TABLES or self.bit is not None else ModbusType.UINT16

    def natural_type(self) -> SignalType:
        vt = self.value_type()
        natural = SIGNAL_TYPE.get(vt, SignalType.INT64)
        if natural in (SignalType.INT64, SignalType.UINT64) and not self.scales_to_integers():
            return SignalType.FLOAT64
        return natural

    def register_count(self) -> int:
        """How many registers (or bits, in a bit table) this value spans."""
        vt = self.value_type()
        if self.table in BIT_TABLES or vt is ModbusType.BOOL:
            return 1
        if vt is ModbusType.STRING:
            return self.length
        return REGISTER_COUNT[vt]


class ModbusDevice(StrictModel):
    unit_id: int = Field(ge=0, le=255, description="Unit (slave) id.")
    max_registers_per_request: int = Field(
        default=125, ge=1, le=125, description="Most registers this device answers in one read (spec: 125)."
    )
    max_bits_per_request: int = Field(
        default=2000, ge=1, le=2000, description="Most coils/discrete inputs in one read (spec: 2000)."
    )
    max_gap: int = Field(
        default=0, ge=0, le=100, description="Unused registers a read may span to join two values into one request."
    )


class ModbusPollGroup(StrictModel):
    name: Name = Field(description="Poll group name that registers refer to.")
    interval_ms: float = Field(default=1000, ge=1, description="How often the group's values are read.")


class ModbusSource(SourceConfig):
    bindings_key: ClassVar[str] = "registers"

    kind: Literal["modbus"] = Field(description="Poll Modbus TCP or RTU devices.")
    id: Name = Field(description="Source name, unique in this config.")
    transport: ModbusTransport = Field(default=ModbusTransport.TCP, description="tcp or rtu (serial line).")
    host: str = Field(default="127.0.0.1", description="TCP: device or Modbus gateway host.")
    port: int = Field(default=502, ge=1, le=65535, description="TCP: port.")
    serial_port: str = Field(default="", description="RTU: serial device, e.g. '/dev/ttyUSB0'.")
    baudrate: int = Field(default=9600, ge=300, description="RTU: line speed (bit/s).")
    parity: Literal["N", "E", "O"] = Field(default="E", description="RTU: parity (the spec's default is even).")
    stopbits: Literal[1, 2] = Field(default=1, description="RTU: stop bits.")
    timeout_s: float = Field(default=1.0, gt=0, le=60, description="Response timeout per request.")
    retries: int = Field(default=1, ge=0, le=10, description="Retries of a request that timed out.")
    report: Literal["change", "every_poll"] = Field(
        default="change", description="Publish a value when it changed (and on quality changes) or on every poll."
    )
    devices: list[ModbusDevice] = Field(
        default_factory=list, description="Per-unit request limits; units not listed use the spec's limits."
    )
    poll_groups: list[ModbusPollGroup] = Field(
        default_factory=lambda: [ModbusPollGroup(name="default")],
        description="Poll groups with their own interval; 'default' (1 s) unless listed.",
    )
    registers: list[ModbusRegister] = Field(default_factory=list, description="Values to read and what they mean.")

    def semantic_problems(self) -> list[tuple[str, str]]:
        problems: list[tuple[str, str]] = []
        if self.transport is ModbusTransport.RTU and not self.serial_port:
            problems.append(("serial_port", "transport 'rtu' needs serial_port (e.g. '/dev/ttyUSB0')"))
        groups = {g.name for g in self.poll_groups}
        units = [d.unit_id for d in self.devices]
        for i, d in enumerate(self.devices):
            if units.count(d.unit_id) > 1:
                problems.append((f"devices[{i}].unit_id", f"unit {d.unit_id} is listed twice"))
        for j, r in enumerate(self.registers):
            where = f"registers[{j}]"
            vt = r.value_type()
            if r.poll_group not in groups:
                problems.append((f"{where}.poll_group", f"poll group {r.poll_group!r} is not in poll_groups"))
            if r.table in BIT_TABLES:
                if vt is not ModbusType.BOOL:
                    problems.append((f"{where}.data_type", f"a {r.table.value} is a single bit: its type is 'bool'"))
                if r.bit is not None:
                    problems.append((f"{where}.bit", f"a {r.table.value} has no bit fields"))
                continue
            if vt is ModbusType.BOOL and r.bit is None:
                problems.append((f"{where}.bit", "data_type 'bool' on a register needs 'bit' (0-15)"))
            if r.bit is not None and vt is not ModbusType.BOOL:
                problems.append((f"{where}.data_type", "a bit field is a 'bool'"))
            if vt is ModbusType.STRING and r.length == 0:
                problems.append((f"{where}.length", "a string needs its length in registers"))
            if vt is not ModbusType.STRING and r.length:
                problems.append((f"{where}.length", "only strings have a length"))
            if r.address + r.register_count() > 65536:
                problems.append((f"{where}.address", "the value runs past register 65535"))
        return problems
