"""Config model of ``kind: s7``: Siemens S7 PLCs (S7-300/400/1200/1500 over ISO-on-TCP, port 102).

Addresses are written the way integrators write them in STEP 7 / TIA Portal:

* data blocks: ``DB10.DBX2.3`` (bit), ``DB10.DBB4`` (byte), ``DB10.DBW6`` (word), ``DB10.DBD8`` (double word);
* flags, inputs, outputs: ``M0.1``, ``MB4``, ``MW6``, ``MD8``, ``I0.0``/``IW2``, ``Q1.7``/``QD4``;
* an optional ``:TYPE`` reinterprets the bytes: ``DB10.DBD4:REAL``, ``MW2:INT``, ``DB1.DBB8:LREAL``,
  ``DB1.DBB20:STRING[16]`` (an S7 STRING: max-length byte, length byte, then up to 16 characters).

Without a type, X is BOOL, B is BYTE, W is WORD and D is DWORD. The width letter must fit the type (``DBW``
for INT/WORD, ``DBD`` for DINT/DWORD/REAL); LREAL and STRING start at a byte address (``DBB``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, Field

from datafactory.config.base import Name, StrictModel
from datafactory.config.signals import SignalBinding, SourceConfig
from datafactory.contract.values import SignalType


class S7Area(StrEnum):
    DB = "DB"
    M = "M"
    I = "I"  # noqa: E741 - the S7 name of the process-image inputs
    Q = "Q"


class S7Type(StrEnum):
    BOOL = "BOOL"
    BYTE = "BYTE"
    WORD = "WORD"
    DWORD = "DWORD"
    INT = "INT"
    DINT = "DINT"
    REAL = "REAL"
    LREAL = "LREAL"
    STRING = "STRING"


TYPE_SIZE = {
    S7Type.BYTE: 1,
    S7Type.WORD: 2,
    S7Type.INT: 2,
    S7Type.DWORD: 4,
    S7Type.DINT: 4,
    S7Type.REAL: 4,
    S7Type.LREAL: 8,
}
_WIDTH_TYPE = {"X": S7Type.BOOL, "B": S7Type.BYTE, "W": S7Type.WORD, "D": S7Type.DWORD}
_WIDTH_SIZE = {"B": 1, "W": 2, "D": 4}
_DB_RE = re.compile(r"^DB(?P<db>\d+)\.DB(?P<w>[XBWD])(?P<byte>\d+)(?:\.(?P<bit>\d+))?(?::(?P<type>.+))?$")
_AREA_RE = re.compile(r"^(?P<area>[MIQ])(?P<w>[BWD]?)(?P<byte>\d+)(?:\.(?P<bit>\d+))?(?::(?P<type>.+))?$")
_STRING_RE = re.compile(r"^STRING\[(\d+)\]$")


@dataclass(frozen=True, slots=True)
class S7Address:
    """A parsed address: where the value's bytes are and how to read them."""

    area: S7Area
    db: int
    start: int  # byte offset
    bit: int  # 0-7 for BOOL, else 0
    type: S7Type
    size: int  # bytes read: 1 for BOOL, 2 + max length for STRING
    max_length: int = 0  # STRING only


def parse_s7_address(text: str) -> S7Address:
    """Parse ``DB10.DBD4:REAL``, ``M0.1``, ``DB5.DBX2.3``…; raise ``ValueError`` naming what is wrong."""
    raw = text.strip().upper()
    m = _DB_RE.match(raw)
    if m:
        area, db = S7Area.DB, int(m["db"])
        if db < 1:
            raise ValueError(f"{text!r}: data block numbers start at 1")
    else:
        m = _AREA_RE.match(raw)
        if not m:
            raise ValueError(
                f"{text!r} is not an S7 address (examples: DB10.DBD4:REAL, DB5.DBX2.3, M0.1, MW2:INT, IB0, QD4)"
            )
        area, db = S7Area(m["area"]), 0
    width = m["w"] or "X"
    start, bit_text, type_text = int(m["byte"]), m["bit"], m["type"]
    if width == "X":
        if bit_text is None:
            raise ValueError(f"{text!r}: a bit address needs '.bit' (e.g. M0.1, DB5.DBX2.3)")
        bit = int(bit_text)
        if bit > 7:
            raise ValueError(f"{text!r}: bit {bit} does not exist; bits are 0-7")
        if type_text not in (None, "BOOL"):
            raise ValueError(f"{text!r}: a bit address is a BOOL")
        return S7Address(area, db, start, bit, S7Type.BOOL, 1)
    if bit_text is not None:
        raise ValueError(f"{text!r}: only bit addresses (X, or M/I/Q without a width) take '.bit'")
    if type_text is None:
        vt = _WIDTH_TYPE[width]
        return S7Address(area, db, start, 0, vt, _WIDTH_SIZE[width])
    sm = _STRING_RE.match(type_text)
    if sm:
        length = int(sm[1])
        if not 1 <= length <= 254:
            raise ValueError(f"{text!r}: an S7 STRING holds 1-254 characters")
        if width != "B":
            raise ValueError(f"{text!r}: a STRING starts at a byte address (DBB, MB, IB, QB)")
        return S7Address(area, db, start, 0, S7Type.STRING, length + 2, length)
    try:
        vt = S7Type(type_text)
    except ValueError:
        known = ", ".join(t.value for t in S7Type if t is not S7Type.STRING)
        raise ValueError(f"{text!r}: unknown type {type_text!r} (known: {known}, STRING[n])") from None
    if vt is S7Type.BOOL or vt is S7Type.STRING:
        raise ValueError(f"{text!r}: {vt.value} needs a bit address / a length (STRING[n])")
    size = TYPE_SIZE[vt]
    if vt is S7Type.LREAL:
        if width != "B":
            raise ValueError(f"{text!r}: an LREAL starts at a byte address (e.g. DB1.DBB8:LREAL)")
    elif _WIDTH_SIZE[width] != size:
        raise ValueError(f"{text!r}: {vt.value} is {size} bytes but {width} addresses {_WIDTH_SIZE[width]}")
    return S7Address(area, db, start, 0, vt, size)


def _valid_address(text: str) -> str:
    parse_s7_address(text)
    return text


class S7Item(SignalBinding):
    address: Annotated[str, AfterValidator(_valid_address)] = Field(
        description="S7 address, e.g. 'DB10.DBD4:REAL', 'DB5.DBX2.3', 'M0.1', 'MW2:INT', 'DB1.DBB20:STRING[16]'."
    )
    poll_group: str = Field(default="default", description="Name of the poll group that reads this value.")

    def parsed(self) -> S7Address:
        return parse_s7_address(self.address)

    def natural_type(self) -> SignalType:
        t = parse_s7_address(self.address).type
        if t is S7Type.BOOL:
            return SignalType.BOOL
        if t is S7Type.STRING:
            return SignalType.STRING
        if t in (S7Type.REAL, S7Type.LREAL) or not self.scales_to_integers():
            return SignalType.FLOAT64
        return SignalType.INT64  # BYTE … DINT: at most 32 bits, exact in int64


class S7PollGroup(StrictModel):
    name: Name = Field(description="Poll group name that items refer to.")
    interval_ms: float = Field(default=1000, ge=1, description="How often the group's items are read.")


class S7ConnectionType(StrEnum):
    PG = "pg"
    OP = "op"
    BASIC = "s7_basic"


class S7Source(SourceConfig):
    bindings_key: ClassVar[str] = "items"

    kind: Literal["s7"] = Field(description="Poll a Siemens S7 PLC (S7comm over ISO-on-TCP).")
    id: Name = Field(description="Source name, unique in this config.")
    host: str = Field(description="PLC host or IP address.")
    port: int = Field(default=102, ge=1, le=65535, description="ISO-on-TCP port.")
    rack: int = Field(default=0, ge=0, le=7, description="Rack of the CPU (0 for S7-1200/1500).")
    slot: int = Field(default=1, ge=0, le=31, description="Slot of the CPU (1 for S7-1200/1500, 2 for S7-300).")
    connection_type: S7ConnectionType = Field(
        default=S7ConnectionType.PG, description="pg (programming device), op (operator panel) or s7_basic."
    )
    timeout_s: float = Field(default=2.0, gt=0, le=60, description="Connect and response timeout.")
    report: Literal["change", "every_poll"] = Field(
        default="change", description="Publish a value when it changed (and on quality changes) or on every poll."
    )
    poll_groups: list[S7PollGroup] = Field(
        default_factory=lambda: [S7PollGroup(name="default")],
        description="Poll groups with their own interval; 'default' (1 s) unless listed.",
    )
    items: list[S7Item] = Field(default_factory=list, description="Addresses to read and what they mean.")

    def semantic_problems(self) -> list[tuple[str, str]]:
        groups = {g.name for g in self.poll_groups}
        return [
            (f"items[{j}].poll_group", f"poll group {it.poll_group!r} is not in poll_groups")
            for j, it in enumerate(self.items)
            if it.poll_group not in groups
        ]
