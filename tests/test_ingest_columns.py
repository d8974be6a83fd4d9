"""The columnar fast path agrees with the contract's decoder, and column packing with row packing (no network)."""

from __future__ import annotations

import math
import struct

import numpy as np
import orjson
import pytest

from datafactory.contract.payload import decode_batch, encode_batch
from datafactory.contract.sample import Sample
from datafactory.db.samples import ROW, ROW_NULL_VALUE, pack_columns, pack_rows_us
from datafactory.errors import ContractError
from ingest.columns import decode_columns, fast_columns, fast_decode

T = 1_763_900_000_000_000
WINDOW = {"min_us": T - 10**12, "max_us": T + 10**12}

PAYLOADS = [
    encode_batch([Sample("power", T + i, i * 0.5, i % 3) for i in range(50)]),
    encode_batch([Sample("a", T, 1.0, 0xFFFFFFFF), Sample("b", T + 1, -1e300, 0x80000000)]),
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, 3, 0], ["b", T, 2.5, 0]]}),  # integer value
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, 3]]}),  # quality omitted
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, None, 0x80310000]]}),  # comm-lost marker
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, True, 0], ["b", T, 1.0, 0]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [["A", T, 1.0, 0]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T - 10**13, 1.0, 0], ["a", T, 1.0, 0]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, 1.0, -1]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, 1.0, 2**32]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", float(T), 1.0, 0]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, 1.0, 0, 0]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [[1, T, 1.0, 0]]}),
    orjson.dumps({"fmt": "df-json/1", "samples": [], "gw": "g"}),
    orjson.dumps({"fmt": "df-json/1", "samples": [["a", T, 1.0, 0]], "seq": "x"}),
    f'{{"fmt":"df-json/1","samples":[["a",{T},NaN,0],["a",{T + 1},1e999,0],["a",{T + 2},1.0,0]]}}'.encode(),
    b'{"fmt":"df-json/1","samples":[["a",1,1.0,0]',
    # Numbers at and beyond the limits of the typed decoder: 64-bit times and qualities, huge integer values.
    f'{{"fmt":"df-json/1","samples":[["a",{2**70},1.0,0],["b",{T},1.0,0]]}}'.encode(),
    f'{{"fmt":"df-json/1","samples":[["a",{T},1.0,{2**64}],["b",{T},1.0,0]]}}'.encode(),
    f'{{"fmt":"df-json/1","samples":[["a",{T},{2**70},0],["b",{T},{10**400},0]]}}'.encode(),
    f'{{"fmt":"df-json/1","samples":[["a",{T},-0.0,0],["b",{T},1E2,0],["c",{T},-1.7976931348623157e308,0]]}}'.encode(),
    # Strings the typed decoder refuses: a lone surrogate escape, invalid UTF-8, a null envelope member.
    f'{{"fmt":"df-json/1","samples":[["\\ud800",{T},1.0,0]]}}'.encode(),
    b'{"fmt":"df-json/1","samples":[["\xed\xa0\x80",1,1.0,0]]}',
    f'{{"fmt":"df-json/1","gw":null,"samples":[["a",{T},1.0,0]]}}'.encode(),
    f'{{"fmt":"df-json/1","seq":true,"samples":[["a",{T},1.0,0]]}}'.encode(),
    f'{{"fmt":"df-json/1","extra":{{"x":[1]}},"samples":[["a",{T},1.0,0]]}}'.encode(),
    b"[1, 2]",
    # df-json/2 typed values: the fast path splits them from the floats exactly as the contract's decoder reads
    # them; anything at or past a limit (2^64, an over-long string, an escaped quote, null) goes the exact way.
    orjson.dumps(
        {
            "fmt": "df-json/2",
            "samples": [
                ["a", T, 1.5, 0],
                ["b", T, 2**64 - 1, 0],
                ["c", T, -(2**63), 0],
                ["d", T, True, 0],
                ["e", T, "温度 𝄞", 0],
                ["f", T, "", 0],
                ["g", T, "é" * 512, 0],
                ["h", T, 7, 0],
            ],
        }
    ),
    f'{{"fmt":"df-json/2","samples":[["a",{T},{2**64},0],["b",{T},1.0,0]]}}'.encode(),
    f'{{"fmt":"df-json/2","samples":[["a",{T},{-(2**63) - 1},0]]}}'.encode(),
    orjson.dumps({"fmt": "df-json/2", "samples": [["a", T, "é" * 512 + "x", 0], ["b", T, 1.0, 0]]}),
    orjson.dumps({"fmt": "df-json/2", "samples": [["a", T, 'say "hi"', 0]]}),
    orjson.dumps({"fmt": "df-json/2", "samples": [["a", T, None, 0x80310000], ["b", T, "x", 0]]}),
    orjson.dumps({"fmt": "df-json/2", "samples": [["a", T, "x", 0], ["A", T, "y", 0]]}),
    orjson.dumps({"fmt": "df-json/2", "samples": [["a", T, "only", 0]]}),
]


@pytest.mark.parametrize("raw", PAYLOADS)
def test_columns_agree_with_the_contract_decoder(raw: bytes) -> None:
    try:
        decoded = decode_batch(raw, **WINDOW)
    except ContractError as err:
        with pytest.raises(ContractError) as info:
            decode_columns(raw, **WINDOW)
        assert info.value.reason == err.reason
        return
    columns, typed, rejects = decode_columns(raw, **WINDOW)
    got = [(n, t, float(v), q) for n, t, v, q in zip(*columns, strict=True)]
    want = [s._replace(value=math.nan) if s.value is None else s for s in decoded.batch.samples]
    assert typed == [(i, s) for i, s in enumerate(want) if type(s.value) is not float]
    want = [s for s in want if type(s.value) is float]
    assert [(n, t, q) for n, t, _, q in got] == [(s.signal, s.time_us, s.quality) for s in want]
    assert all(
        a[2] == b.value or (math.isnan(a[2]) and isinstance(b.value, float) and math.isnan(b.value))
        for a, b in zip(got, want, strict=True)
    )
    assert rejects == decoded.rejects


def test_fast_path_splits_typed_values_without_the_exact_decoder() -> None:
    raw = orjson.dumps({"fmt": "df-json/2", "samples": [["a", T, 1.5, 0], ["b", T, 2**64 - 1, 0], ["c", T, "x", 7]]})
    fast = fast_decode(raw, **WINDOW)
    assert fast is not None
    columns, typed = fast
    assert columns[0] == ("a",) and typed == [(1, Sample("b", T, 2**64 - 1, 0)), (2, Sample("c", T, "x", 7))]
    assert fast_decode(orjson.dumps({"fmt": "df-json/2", "samples": [["a", T, 'q"', 0]]}), **WINDOW) is None


def test_fast_path_takes_well_formed_messages_only() -> None:
    assert fast_columns(PAYLOADS[0], **WINDOW) is not None
    assert fast_columns(PAYLOADS[3], **WINDOW) is None  # 3-element samples go the precise way
    assert fast_columns(PAYLOADS[5], **WINDOW) is None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"fmt":"df-json/1","samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","gw":"g","samples":[["a",1,1.0,0],["b",1,2,0]]}',
        b'{"seq":7,"samples":[["a",1,1.0,0]],"fmt":"df-json/1"}',
        b'{ "fmt" : "df-json/1" , "gw" : "g" , "seq" : 1 , "samples" : [ [ "a" , 1 , 1.0 , 0 ] ] }',
    ],
)
def test_fast_path_takes_every_key_layout(raw: bytes) -> None:
    assert fast_columns(raw, min_us=0, max_us=2**62) is not None


@pytest.mark.parametrize(
    "raw",
    [
        b'{"fmt":"df-json/1","fmt":"df-json/1","samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","gw":"g","gw":"h","samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","seq":1,"seq":2,"samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","gw":"g","seq":1,"seq":2,"samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","samples":[["z",1,9.0,0]],"samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","samples":[],"samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","f\u006dt":"df-json/1","samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","gw":"say "hi"","samples":[["a",1,1.0,0]]}',
        b'{"fmt":"df-json/1","note":"x","samples":[["a",1,1.0,0]]}',
    ],
)
def test_fast_path_leaves_repeated_keys_and_odd_strings_to_the_exact_path(raw: bytes) -> None:
    assert fast_columns(raw, min_us=0, max_us=2**62) is None


def test_a_repeated_key_is_dead_lettered_however_it_is_spelt() -> None:
    from ingest.decode import Inbound, decode_message
    from ingest.options import IngestOptions

    for raw in (
        b'{"fmt":"df-json/1","seq":1,"seq":2,"samples":[["a",%d,1.0,0]]}' % T,
        b'{"fmt":"df-json/1","f\u006dt":"df-json/1","samples":[["a",%d,1.0,0]]}' % T,
    ):
        msg = Inbound("df/v1/e/s/a/l/c/data", raw, mid=1, qos=1, dup=False, generation=1, received_us=T)
        decode_message(msg, IngestOptions())
        assert msg.error is not None and msg.error.reason == "duplicate_key", raw


def test_learnt_names_do_not_let_an_invalid_name_through() -> None:
    good = orjson.dumps({"fmt": "df-json/1", "samples": [["pump-1", T, 1.0, 0], ["pump-2", T, 2.0, 0]]})
    assert fast_columns(good, **WINDOW) is not None  # both names are now known valid
    bad = orjson.dumps({"fmt": "df-json/1", "samples": [["pump-1", T, 1.0, 0], ["Pump 2", T, 2.0, 0]]})
    assert fast_columns(bad, **WINDOW) is None
    columns, _, rejects = decode_columns(bad, **WINDOW)
    assert columns[0] == ("pump-1",) and [r.reason for r in rejects] == ["bad_signal_name"]


def test_column_packing_equals_row_packing() -> None:
    items = [(7, T + i, i * 1.5 if i % 5 else math.nan, (0x80310000 if i % 5 == 0 else i)) for i in range(40)]
    sids, times, values, qualities = (np.array(col) for col in zip(*items, strict=True))
    packed = pack_columns(sids.astype(np.int32), times.astype(np.int64), values.astype(np.float64), qualities)
    assert sorted(_rows(packed)) == sorted(_rows(pack_rows_us(items)))


def _rows(data: bytes) -> list[bytes]:
    rows, i = [], 0
    while i < len(data):
        (value_len,) = struct.unpack_from(">i", data, i + 22)
        size = ROW.size if value_len == 8 else ROW_NULL_VALUE.size
        rows.append(data[i : i + size])
        i += size
    return rows


def test_deep_nesting_is_a_contract_reject_and_typed_values_stay_exact() -> None:
    deep = b'{"fmt":"df-json/2","samples":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ContractError) as info:
        decode_columns(deep, **WINDOW)
    assert info.value.reason == "too_deep"  # a dead letter with a reason, not an "undecodable" traceback
    t = WINDOW["min_us"] + 1
    raw = (
        b'{"fmt":"df-json/2","samples":[["a",%d,9007199254740993,0],["b",%d,"x",0],["x",%d,1.5,-1],["c",%d,true,0],'
        b'["d",%d,2.5,0],["e",%d,5,0]]}' % (t, t, t, t, t, t)
    )
    assert fast_columns(raw, **WINDOW) is None
    columns, typed, rejects = decode_columns(raw, **WINDOW)
    assert columns[0] == ("d",) and columns[2].tolist() == [2.5]
    # Positions count the message's items, the rejected one included: a dead letter names the right sample.
    assert [(i, s.signal, s.value) for i, s in typed] == [
        (0, "a", 9007199254740993),
        (1, "b", "x"),
        (3, "c", True),
        (5, "e", 5),
    ]
    assert type(typed[2][1].value) is bool and type(typed[3][1].value) is int
    assert [(r.index, r.reason) for r in rejects] == [(2, "bad_quality")]


def test_a_df_json_2_integer_leaves_the_fast_path_a_df_json_1_integer_does_not() -> None:
    t = WINDOW["min_us"] + 1
    assert fast_columns(b'{"fmt":"df-json/2","samples":[["a",%d,5,0]]}' % t, **WINDOW) is None
    columns = fast_columns(b'{"fmt":"df-json/1","samples":[["a",%d,5,0]]}' % t, **WINDOW)
    assert columns is not None and columns[2].tolist() == [5.0]
