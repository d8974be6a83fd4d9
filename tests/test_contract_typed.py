"""Typed sample values (df-json/2): every kind survives encode → decode exactly, the JSON Schema agrees with
the decoder, and the ambiguous df-json/1 3-element form is refused with a reason."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from datafactory.contract import BAD_NO_COMMUNICATION, Sample, SignalMeta, decode_batch, decode_meta, encode_batch
from datafactory.contract.meanings import Meaning
from datafactory.contract.payload import MAX_MESSAGE_BYTES, MAX_PAYLOAD_BYTES, encode_meta
from datafactory.contract.values import MAX_STRING_BYTES, SignalType, infer_type, type_problem
from datafactory.errors import ContractError

SCHEMA = json.loads((Path(__file__).resolve().parents[1] / "datafactory/contract/payload.schema.json").read_text())
T = 1_763_900_000_000_000
AT_LIMIT = "界" * (MAX_STRING_BYTES // 3) + "x" * (MAX_STRING_BYTES % 3)
TYPED_VALUES: list[Any] = [
    -(2**63),
    2**63 - 1,
    2**64 - 1,
    2**53 + 1,
    0,
    5e-324,
    1.7976931348623157e308,
    -0.0,
    True,
    False,
    "",
    "主轴功率",
    "😀𝄞",
    AT_LIMIT,
]


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    return Draft202012Validator(SCHEMA)


def _bits(v: Any) -> Any:
    return (type(v), struct.pack(">d", v)) if type(v) is float else (type(v), v)


def test_every_typed_value_round_trips_bit_for_bit(validator: Draft202012Validator) -> None:
    assert len(AT_LIMIT.encode()) == MAX_STRING_BYTES
    samples = [Sample(f"s{i}", T + i, v, 0) for i, v in enumerate(TYPED_VALUES)]
    samples.append(Sample("lost", T, None, BAD_NO_COMMUNICATION))
    raw = encode_batch(samples, gateway="gw", seq=1)
    assert validator.is_valid(orjson.loads(raw)), [e.message for e in validator.iter_errors(orjson.loads(raw))]
    decoded = decode_batch(raw)
    assert decoded.rejects == []
    assert [_bits(s.value) for s in decoded.batch.samples] == [_bits(s.value) for s in samples]


OVER = [
    ("string_too_long", "x" * (MAX_STRING_BYTES + 1)),
    ("string_too_long", "😀" * (MAX_STRING_BYTES // 4 + 1)),  # bytes, not characters, are counted
    ("out_of_range", 2**64),
    ("out_of_range", -(2**63) - 1),
]


@pytest.mark.parametrize(("reason", "value"), OVER)
def test_values_beyond_the_contract_are_rejected_with_a_reason(reason: str, value: Any) -> None:
    raw = json.dumps({"fmt": "df-json/2", "samples": [["ok", T, 1.5, 0], ["bad", T, value, 0]]}).encode()
    decoded = decode_batch(raw)
    assert [s.signal for s in decoded.batch.samples] == ["ok"]
    assert [r.reason for r in decoded.rejects] == [reason]


def test_schema_refuses_what_the_decoder_refuses(validator: Draft202012Validator) -> None:
    over = {"fmt": "df-json/2", "samples": [["s", T, "x" * (MAX_STRING_BYTES + 1), 0]]}
    three = {"fmt": "df-json/2", "samples": [["s", T, 1.5]]}
    for doc in (over, three):  # 2^64 vs. a float: only the decoder can tell
        assert not validator.is_valid(doc)
        assert decode_batch(json.dumps(doc).encode()).rejects


def test_df_json_1_three_element_form_is_refused_as_ambiguous(validator: Draft202012Validator) -> None:
    doc = {"fmt": "df-json/1", "samples": [["power", T, 2150694912], ["ok", T, 1, 0]]}
    assert not validator.is_valid(doc)
    decoded = decode_batch(json.dumps(doc).encode())
    assert [(r.reason, r.raw[0]) for r in decoded.rejects] == [("ambiguous_sample", "power")]
    assert decoded.batch.samples == [Sample("ok", T, 1.0, 0)]  # a df-json/1 number is read as float64
    assert type(decoded.batch.samples[0].value) is float


def test_df_json_1_still_refuses_strings_and_booleans() -> None:
    raw = b'{"fmt":"df-json/1","samples":[["a",1,"x",0],["b",1,true,0]]}'
    assert [r.reason for r in decode_batch(raw).rejects] == ["wrong_type", "wrong_type"]


def test_meta_carries_the_declared_type() -> None:
    raw = encode_meta([SignalMeta("count", Meaning.GOOD_COUNT, "pcs", "", SignalType.UINT64), SignalMeta("p")])
    assert [s.type for s in decode_meta(raw).signals] == [SignalType.UINT64, SignalType.FLOAT64]
    with pytest.raises(ContractError) as info:
        decode_meta(b'{"fmt":"df-meta/1","signals":[{"name":"p","type":"decimal"}]}')
    assert "type" in info.value.detail


def test_declared_types_accept_exactly_their_values() -> None:
    assert type_problem(SignalType.FLOAT64, 2**53) is None
    assert type_problem(SignalType.FLOAT64, 2**53 + 1) is not None  # would be rounded
    assert type_problem(SignalType.INT64, 2**63) is not None
    assert type_problem(SignalType.UINT64, 2**64 - 1) is None
    assert type_problem(SignalType.UINT64, -1) is not None
    assert type_problem(SignalType.INT64, True) is not None  # a bool is not an integer here
    assert type_problem(SignalType.BOOL, 1) is not None
    assert type_problem(SignalType.STRING, 1.5) is not None
    assert [infer_type(v) for v in (1.0, 2**63, -1, True, "x", None)] == [
        SignalType.FLOAT64,
        SignalType.UINT64,
        SignalType.INT64,
        SignalType.BOOL,
        SignalType.STRING,
        None,
    ]


def test_deep_nesting_is_one_contract_error_not_a_recursion_error() -> None:
    raw = b'{"fmt":"df-json/2","samples":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with pytest.raises(ContractError) as info:
        decode_batch(raw)
    assert info.value.reason in {"too_deep", "malformed_json"}


def test_one_message_size_limit() -> None:
    assert MAX_PAYLOAD_BYTES == MAX_MESSAGE_BYTES
    with pytest.raises(ContractError) as info:
        decode_batch(b"{" + b" " * MAX_MESSAGE_BYTES + b"}")
    assert info.value.reason == "oversized"
