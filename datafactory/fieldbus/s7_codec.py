"""S7 bytes ↔ values (big-endian, as the PLC stores them) for the types of ``datafactory.config.s7``.

An S7 STRING is a max-length byte, a current-length byte and the characters (Latin-1, as the classic S7
STRING is single-byte); a current length above the maximum is corrupt data, not a value. Values come out as
exact Python types: ``bool``, ``int`` for BYTE/WORD/DWORD/INT/DINT, ``float`` for REAL/LREAL, ``str``.
"""

from __future__ import annotations

import struct

from datafactory.config.s7 import S7Address, S7Type

_FORMATS = {
    S7Type.BYTE: ">B",
    S7Type.WORD: ">H",
    S7Type.DWORD: ">I",
    S7Type.INT: ">h",
    S7Type.DINT: ">i",
    S7Type.REAL: ">f",
    S7Type.LREAL: ">d",
}

CODES = {t: f[1] for t, f in _FORMATS.items()}
"""The struct code of each numeric type (its format without the byte order), to decode many values at once."""


class DecodeError(ValueError):
    """Bytes that do not hold a value of the address's type."""


def decode(data: bytes | bytearray, addr: S7Address) -> int | float | bool | str:
    if len(data) < addr.size:
        raise DecodeError(f"expected {addr.size} bytes, got {len(data)}")
    if addr.type is S7Type.BOOL:
        return bool(data[0] >> addr.bit & 1)
    if addr.type is S7Type.STRING:
        max_len, cur = data[0], data[1]
        if cur > max_len or cur > addr.max_length:
            raise DecodeError(f"STRING length byte {cur} exceeds its maximum {min(max_len, addr.max_length)}")
        return bytes(data[2 : 2 + cur]).decode("latin-1")
    value: int | float = struct.unpack(_FORMATS[addr.type], bytes(data[: addr.size]))[0]
    return value


def encode_into(buf: bytearray, addr: S7Address, value: int | float | bool | str) -> None:
    """Write ``value`` at its address into a data block / area image ``buf`` (the inverse of ``decode``)."""
    if addr.type is S7Type.BOOL:
        mask = 1 << addr.bit
        buf[addr.start] = buf[addr.start] | mask if value else buf[addr.start] & ~mask
    elif addr.type is S7Type.STRING:
        data = str(value).encode("latin-1")
        if len(data) > addr.max_length:
            raise ValueError(f"{value!r} is longer than STRING[{addr.max_length}]")
        buf[addr.start : addr.start + addr.size] = bytes([addr.max_length, len(data)]) + data.ljust(
            addr.max_length, b"\0"
        )
    else:
        buf[addr.start : addr.start + addr.size] = struct.pack(_FORMATS[addr.type], value)
