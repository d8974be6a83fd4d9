"""Modbus register ↔ value conversion for every type and byte order.

A Modbus register is 16 bits sent high byte first. Multi-register values are named by where the bytes of the
big-endian value ``A B C D …`` end up: ``ABCD`` = registers in order, high byte first (the spec's
convention); ``CDAB`` = registers in reverse order (word swap, common on meters); ``BADC`` = bytes swapped
within each register; ``DCBA`` = fully little-endian. For a 64-bit value the same rule covers four registers.
Strings are two characters per register, first character in the high byte (``ABCD``/``CDAB``) or the low
byte (``BADC``/``DCBA``); trailing NULs are padding. Values come out as exact Python types: ``int`` for the
integer types (uint64 up to 2**64-1), ``float`` for float32/float64, ``bool``, ``str``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from datafactory.config.modbus import ByteOrder, ModbusType

_FORMATS = {
    ModbusType.INT16: ">h",
    ModbusType.UINT16: ">H",
    ModbusType.INT32: ">i",
    ModbusType.UINT32: ">I",
    ModbusType.FLOAT32: ">f",
    ModbusType.INT64: ">q",
    ModbusType.UINT64: ">Q",
    ModbusType.FLOAT64: ">d",
}
_SWAPS_BYTES = (ByteOrder.BADC, ByteOrder.DCBA)
_SWAPS_WORDS = (ByteOrder.CDAB, ByteOrder.DCBA)


class DecodeError(ValueError):
    """Registers that do not hold a value of the declared type (e.g. a string that is not text)."""


def _to_bytes(registers: list[int], order: ByteOrder, *, words: bool) -> bytes:
    regs = registers[::-1] if words and order in _SWAPS_WORDS else registers
    swap = order in _SWAPS_BYTES
    return b"".join(((r & 0xFF) << 8 | r >> 8).to_bytes(2, "big") if swap else r.to_bytes(2, "big") for r in regs)


def _from_bytes(data: bytes, order: ByteOrder, *, words: bool) -> list[int]:
    swap = order in _SWAPS_BYTES
    regs = [int.from_bytes(data[i : i + 2], "little" if swap else "big") for i in range(0, len(data), 2)]
    return regs[::-1] if words and order in _SWAPS_WORDS else regs


def decode(
    registers: list[int], vtype: ModbusType, order: ByteOrder = ByteOrder.ABCD, bit: int | None = None
) -> int | float | bool | str:
    """The value held by ``registers`` (exactly as many as the type spans)."""
    if bit is not None:
        return bool(registers[0] >> bit & 1)
    if vtype is ModbusType.STRING:
        raw = _to_bytes(registers, order, words=False).rstrip(b"\x00")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DecodeError(f"registers {registers} are not UTF-8 text: {err.reason}") from err
    fmt = _FORMATS[vtype]
    value: int | float = struct.unpack(fmt, _to_bytes(registers, order, words=True))[0]
    return value


def encode(
    value: int | float | bool | str, vtype: ModbusType, order: ByteOrder = ByteOrder.ABCD, length: int = 0
) -> list[int]:
    """The registers that hold ``value`` (the inverse of ``decode``; strings are padded to ``length``)."""
    if vtype is ModbusType.BOOL:
        return [1 if value else 0]
    if vtype is ModbusType.STRING:
        data = str(value).encode("utf-8")
        if len(data) > 2 * length:
            raise ValueError(f"{value!r} does not fit in {length} registers")
        return _from_bytes(data.ljust(2 * length, b"\x00"), order, words=False)
    return _from_bytes(struct.pack(_FORMATS[vtype], value), order, words=True)


# How a whole block of registers is unpacked at once: the block's registers packed high byte first (or low byte
# first, which swaps the bytes of each register), then one struct format per byte order read over those bytes.
# The word-swapped orders are the other image read little-endian: see the module doc for why that is exact.
_IMAGE_AND_ENDIAN = {
    ByteOrder.ABCD: (">", ">"),
    ByteOrder.DCBA: (">", "<"),
    ByteOrder.BADC: ("<", ">"),
    ByteOrder.CDAB: ("<", "<"),
}
_CODES = {t: f[1] for t, f in _FORMATS.items()}
REGISTER_SPAN = {t: struct.calcsize(f) // 2 for t, f in _FORMATS.items()}


def block_unpacker(
    start: int, count: int, values: list[tuple[int, int, ModbusType, ByteOrder]]
) -> tuple[list[int], Callable[[Sequence[int]], tuple[int | float, ...]]]:
    """For the numeric ``values`` (key, address, type, byte order) of a block of ``count`` registers from
    ``start``: the keys it decodes, in the order of its output, and the function decoding a response's registers
    into their values with one ``struct`` call per byte order. A value overlapping an earlier one of its order
    is left out (its key is not in the list): the caller decodes it on its own."""
    parts: list[tuple[struct.Struct, struct.Struct]] = []
    keys: list[int] = []
    for order, (image, endian) in _IMAGE_AND_ENDIAN.items():
        fmt, pos = [endian], start
        for key, address, vtype, _ in sorted((v for v in values if v[3] is order), key=lambda v: v[1]):
            if address < pos:
                continue
            fmt.append("x" * 2 * (address - pos) + _CODES[vtype])
            pos = address + REGISTER_SPAN[vtype]
            keys.append(key)
        if len(fmt) > 1:
            parts.append((struct.Struct(f"{image}{count}H"), struct.Struct("".join(fmt))))
    if len(parts) == 1:
        pack, unpack = parts[0]
        return keys, lambda regs: unpack.unpack_from(pack.pack(*regs))
    return keys, lambda regs: sum((u.unpack_from(p.pack(*regs)) for p, u in parts), ())
