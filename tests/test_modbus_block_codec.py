"""Decoding a whole Modbus register block at once (one struct call per byte order) gives, for every type and
byte order, exactly what decoding each value on its own gives; values it cannot take are left to the caller."""

from __future__ import annotations

import random

from datafactory.config.modbus import ByteOrder, ModbusType
from datafactory.fieldbus.modbus_codec import REGISTER_SPAN, block_unpacker, decode, encode

NUMERIC = list(REGISTER_SPAN)


def _value(rng: random.Random, vtype: ModbusType) -> int | float:
    bits = 16 * REGISTER_SPAN[vtype]
    if vtype is ModbusType.FLOAT32:  # decode(encode(x)) below rounds x to float32
        return rng.choice([-2.5, -0.0, 3.4e38, 1e-45, rng.uniform(-1e6, 1e6)])
    if vtype is ModbusType.FLOAT64:
        return rng.choice([1234.5678901234, -0.0, 5e-324, -1.7976931348623157e308, rng.uniform(-1e9, 1e9)])
    if vtype.value.startswith("u"):
        return rng.randrange(2**bits)
    return rng.randrange(-(2 ** (bits - 1)), 2 ** (bits - 1))


def test_a_block_decodes_as_each_value_does_in_every_type_and_byte_order() -> None:
    rng = random.Random(7)
    for _ in range(200):
        regs: list[int] = []
        values: list[tuple[int, int, ModbusType, ByteOrder]] = []
        expected: dict[int, object] = {}
        for key in range(rng.randrange(1, 30)):
            regs += [rng.randrange(65536) for _ in range(rng.randrange(3))]  # a gap of unused registers
            vtype, order = rng.choice(NUMERIC), rng.choice(list(ByteOrder))
            value = _value(rng, vtype)
            values.append((key, 100 + len(regs), vtype, order))
            regs += encode(value, vtype, order)
            expected[key] = decode(encode(value, vtype, order), vtype, order)
        rng.shuffle(values)  # the caller's order does not matter
        keys, unpack = block_unpacker(100, len(regs), values)
        got = dict(zip(keys, unpack(regs), strict=True))
        assert sorted(keys) == sorted(expected)
        for key, want in expected.items():  # bit for bit, and of the same type (-0.0 stays -0.0)
            assert repr(got[key]) == repr(want) and type(got[key]) is type(want), (key, values)


def test_values_overlapping_another_of_their_order_are_left_to_the_caller() -> None:
    regs = encode(0xDEADBEEF, ModbusType.UINT32)
    values = [(0, 0, ModbusType.UINT32, ByteOrder.ABCD), (1, 1, ModbusType.UINT16, ByteOrder.ABCD),
              (2, 1, ModbusType.UINT16, ByteOrder.CDAB)]  # fmt: skip
    keys, unpack = block_unpacker(0, 2, values)
    assert dict(zip(keys, unpack(regs), strict=True)) == {0: 0xDEADBEEF, 2: 0xBEEF}  # 1 overlaps 0: not taken
