"""Sample quality, following OPC-UA StatusCode semantics (OPC 10000-4 §7.39).

Quality is the full 32-bit StatusCode: bits 31–30 severity (00 good, 01 uncertain, 10 bad), bits 29–16 the
sub-code, bits 15–0 info bits. We keep the whole code so the sub-code survives end to end. In PostgreSQL it is
stored as ``integer`` holding the same 32 bits (two's complement), see ``df_quality_severity()`` in the schema.
"""

from __future__ import annotations

from enum import IntEnum

GOOD = 0x00000000
UNCERTAIN = 0x40000000
BAD = 0x80000000
# The sub-codes the platform sets, named exactly as OPC 10000-4 §7.39 (and asyncua's ``ua.StatusCodes``) name
# them: tests/test_contract.py compares every constant below with asyncua's table.
UNCERTAIN_LAST_USABLE_VALUE = 0x40900000
BAD_RESOURCE_UNAVAILABLE = 0x80040000
BAD_COMMUNICATION_ERROR = 0x80050000
BAD_TIMEOUT = 0x800A0000
BAD_SHUTDOWN = 0x800C0000  # the gateway stopped on purpose (planned-stop marker)
BAD_NO_COMMUNICATION = 0x80310000
BAD_NODE_ID_UNKNOWN = 0x80340000
BAD_DATA_ENCODING_INVALID = 0x80380000
BAD_NOT_READABLE = 0x803A0000
BAD_OUT_OF_RANGE = 0x803C0000
BAD_NOT_SUPPORTED = 0x803D0000
BAD_TYPE_MISMATCH = 0x80740000
BAD_NOT_CONNECTED = 0x808A0000
BAD_DEVICE_FAILURE = 0x808B0000
BAD_SENSOR_FAILURE = 0x808C0000
BAD_OUT_OF_SERVICE = 0x808D0000

_U32 = 0xFFFFFFFF


class Severity(IntEnum):
    GOOD = 0
    UNCERTAIN = 1
    BAD = 2


def severity(code: int) -> Severity:
    """Severity of an OPC-UA status code (accepts the signed 32-bit form stored in the database too)."""
    bits = (code & _U32) >> 30
    return Severity.BAD if bits >= 2 else Severity(bits)


def to_db(code: int) -> int:
    """Unsigned 32-bit status code → signed int32 as stored in PostgreSQL ``integer``."""
    code &= _U32
    return code - (1 << 32) if code & 0x80000000 else code


def from_db(value: int) -> int:
    """Signed int32 from PostgreSQL → unsigned 32-bit status code."""
    return value & _U32


def is_status_code(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _U32
