"""The Sparkplug data fast paths (``gateway.sparkplug_fast``: the lean view, recorded layouts) against the general
decoder: for every message they take, the same samples bit for bit; every message outside their shape (names,
nulls, explicit zeros, other types, duplicated or non-minimally encoded fields, changed bytes, …) they leave to
the general decoder. No network."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from datafactory.config.models import SparkplugSource
from gateway.sparkplug_fast import decode_fast
from gateway.sparkplug_metrics import Decoding, MetricTable
from gateway.sparkplug_proto import DOUBLE, FLOAT, INT64, Payload
from gateway.sparkplug_state import DeviceState

CELL = "assembly/line-1/asm-01"
RECEIVED = 1_800_000_000_000_000
NAMES = {"a": (1, DOUBLE), "b": (2, DOUBLE), "f": (3, FLOAT), "band": (4, DOUBLE), "n": (5, INT64), "z": (0, DOUBLE)}


def _table() -> tuple[MetricTable, DeviceState]:
    metrics = [
        {"edge_node": "n1", "metric": name, "cell": CELL, "signal": name, "meaning": "generic"}
        | ({"deadband": {"kind": "absolute", "value": 0.5}} if name == "band" else {})
        for name in NAMES
    ]
    source = SparkplugSource.model_validate({"kind": "sparkplug", "id": "spb", "group_id": "g", "metrics": metrics})
    table = MetricTable(source, types_file=None)
    birth = Payload(timestamp=1_700_000_000_000, seq=0)
    for name, (alias, datatype) in NAMES.items():
        m = birth.metrics.add(name=name, alias=alias, datatype=datatype)
        if datatype == INT64:
            m.long_value = 1
        elif datatype == FLOAT:
            m.float_value = 1.0
        else:
            m.double_value = 1.0
    dev = DeviceState()
    table.decode("n1", "", dev, birth, RECEIVED, birth=True)
    return table, dev


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _data(*metrics: dict[str, Any], timestamp: int | None = 1_700_000_000_500, extra: bytes = b"") -> bytes:
    p = Payload(seq=1)
    if timestamp is not None:
        p.timestamp = timestamp
    for m in metrics:
        p.metrics.add(**m)
    return p.SerializeToString() + extra


def _raw_metric(body: bytes) -> bytes:
    return b"\x12" + _varint(len(body)) + body


T = 1_700_000_000_500
A, B, F, BAND = ({"alias": 1}, {"alias": 2}, {"alias": 3}, {"alias": 4})
TAKEN = {
    "doubles by alias": _data(A | {"double_value": 1.5}, B | {"double_value": -2.25}),
    "with datatypes and timestamps": _data(A | {"datatype": DOUBLE, "timestamp": T + 100, "double_value": 3.0},
                                           B | {"datatype": DOUBLE, "timestamp": T - 100, "double_value": 5e-324}),
    "a float metric": _data(F | {"float_value": 1.401298464324817e-45}, F | {"datatype": FLOAT, "float_value": -0.0}),
    "zeros and a negative zero": _data(A | {"double_value": 0.0}, B | {"double_value": -0.0}),
    "non-finite values": _data(A | {"double_value": float("nan")}, B | {"double_value": float("inf")}),
    "a deadband signal": _data(BAND | {"double_value": 1.2}, A | {"double_value": 7.0}),
    "no payload timestamp": _data(A | {"double_value": 1.0}, timestamp=None),
    "a float sent for a double": _data(A | {"float_value": 0.1}),
}  # fmt: skip
LEFT = {
    "explicit datatype 0": _data(A | {"datatype": 0, "double_value": 1.0}),
    "alias 0": _data({"alias": 0, "double_value": 1.0}),
    "no alias, no name": _data({"double_value": 1.0}),
    "a name": _data({"name": "a", "double_value": 1.0}),
    "a null": _data(A | {"is_null": True}),
    "an Int64 in the message": _data(A | {"double_value": 1.0}, {"alias": 5, "long_value": 9}),
    "an unknown alias": _data({"alias": 99, "double_value": 1.0}),
    "an explicit metric timestamp 0": _data(A | {"timestamp": 0, "double_value": 1.0}),
    "a double declared Int64": _data(A | {"datatype": INT64, "double_value": 1.0}),
    "no value": _data(A),
    "a uuid": _data(A | {"double_value": 1.0}) + b"\x22\x01x",
    "the value twice (last wins)": _data(extra=_raw_metric(b"\x10\x01\x69" + struct.pack("<d", 1.0) + b"\x69"
                                                           + struct.pack("<d", 2.0))),
    "a non-minimal alias varint": _data(extra=_raw_metric(b"\x10\x81\x00\x69" + struct.pack("<d", 4.0))),
    "an is_historical flag": _data(A | {"is_historical": True, "double_value": 1.0}),
}  # fmt: skip


def _bits(result: Decoding) -> list[tuple[Any, ...]]:
    rows = [(cell, s.signal, s.time_us, struct.pack("<d", s.value) if type(s.value) is float else s.value, s.quality)
            for cell, s in result.out]  # fmt: skip
    return sorted(rows, key=repr)


@pytest.mark.parametrize("raw", TAKEN.values(), ids=TAKEN.keys())
def test_the_fast_path_reads_exactly_what_the_general_decoder_reads(raw: bytes) -> None:
    general_table, general_dev = _table()
    general = general_table.decode("n1", "", general_dev, Payload.FromString(raw), RECEIVED, birth=False)
    table, dev = _table()
    fast = decode_fast(table.normalisers, dev, raw, RECEIVED)
    assert fast is not None
    seq, result = fast
    assert not general.refused and _bits(result) == _bits(general) and len(result.out) == len(general.out) > 0
    assert result.newest_us == general.newest_us and seq == 1


@pytest.mark.parametrize("raw", LEFT.values(), ids=LEFT.keys())
def test_anything_else_is_left_to_the_general_decoder(raw: bytes) -> None:
    table, dev = _table()
    Payload.FromString(raw)  # a valid payload: the general decoder reads (or refuses) it
    assert decode_fast(table.normalisers, dev, raw, RECEIVED) is None


def test_a_message_left_half_way_changes_no_deadband_state() -> None:
    table, dev = _table()
    # 1.7 is outside the 0.5 band around the birth's 1.0: passed on once, then suppressed if it came again
    assert (
        decode_fast(table.normalisers, dev, _data(BAND | {"double_value": 1.7}, {"alias": 99, "double_value": 1.0}), 0)
        is None
    )
    fast = decode_fast(table.normalisers, dev, _data(BAND | {"double_value": 1.7}), RECEIVED)
    assert fast is not None and [s.value for _, s in fast[1].out] == [1.7]


def _both(raws: list[bytes]) -> tuple[list[Decoding | None], list[Decoding], DeviceState]:
    """Each message read by a fast table (None where it left the message) and by a general one, in turn."""
    fast_table, fast_dev = _table()
    general_table, general_dev = _table()
    fast: list[Decoding | None] = []
    general = []
    for raw in raws:
        got = decode_fast(fast_table.normalisers, fast_dev, raw, RECEIVED)
        if got is None:
            fast_table.decode("n1", "", fast_dev, Payload.FromString(raw), RECEIVED, birth=False)
        fast.append(None if got is None else got[1])
        general.append(general_table.decode("n1", "", general_dev, Payload.FromString(raw), RECEIVED, birth=False))
    return fast, general, fast_dev


@pytest.mark.parametrize("raw", TAKEN.values(), ids=TAKEN.keys())
def test_a_repeating_message_is_read_from_its_layout_exactly(raw: bytes) -> None:
    fast, general, dev = _both([raw, raw, raw, raw])
    for f, g in zip(fast, general, strict=True):
        assert f is not None and _bits(f) == _bits(g) and f.newest_us == g.newest_us
    doubles = all(m.WhichOneof("value") == "double_value" for m in Payload.FromString(raw).metrics)
    assert (dev.layout is not None) is doubles  # Float values are not recorded


def _series(n: int, **kw: Any) -> list[bytes]:
    """``n`` timer-driven messages: the same metrics in the same order, new values (NaN in the 20th), timestamps
    and seq."""
    out = []
    for k in range(n):
        p = Payload(timestamp=T + k, seq=(120 + k) % 256)
        for alias in (1, 2, 4):
            m = p.metrics.add(alias=alias, double_value=float("nan") if k == 20 else k * 1.5 - alias, **kw)
            if "timestamp" in kw:
                m.timestamp = T + 10 * k + alias
        out.append(p.SerializeToString())
    return out


@pytest.mark.parametrize("kw", [{}, {"datatype": DOUBLE}, {"timestamp": 1}], ids=["bare", "datatypes", "stamps"])
def test_a_series_through_its_layout_equals_the_general_decoder(kw: dict[str, Any]) -> None:
    raws = _series(40, **kw)  # seq 127 → 128 and 255 → 0 change the size: the layout is recorded again
    fast, general, dev = _both(raws)
    assert dev.layout is not None
    for f, g in zip(fast, general, strict=True):
        assert f is not None and _bits(f) == _bits(g) and f.newest_us == g.newest_us


def test_any_changed_byte_is_read_as_the_general_decoder_reads_it_or_left_to_it() -> None:
    import random

    rng = random.Random(16)
    base = _series(3, timestamp=1)
    for _ in range(400):
        raw = bytearray(base[2])
        for _ in range(rng.choice((1, 1, 2))):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
        fast_table, fast_dev = _table()
        general_table, general_dev = _table()
        for r in base[:2]:
            assert decode_fast(fast_table.normalisers, fast_dev, r, RECEIVED) is not None
            general_table.decode("n1", "", general_dev, Payload.FromString(r), RECEIVED, birth=False)
        assert fast_dev.layout is not None
        got = decode_fast(fast_table.normalisers, fast_dev, bytes(raw), RECEIVED)
        if got is None:
            continue
        general = general_table.decode("n1", "", general_dev, Payload.FromString(bytes(raw)), RECEIVED, birth=False)
        assert not general.refused and _bits(got[1]) == _bits(general), raw.hex()
        assert got[1].newest_us == general.newest_us
        msg = Payload.FromString(bytes(raw))
        assert got[0] == (msg.seq if msg.HasField("seq") else None)
