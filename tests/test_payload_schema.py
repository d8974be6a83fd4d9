"""The committed JSON Schema of the MQTT payloads agrees with the encoders and the decoders of the contract."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from datafactory.contract import (
    BAD_NO_COMMUNICATION,
    NAME_PATTERN,
    UNCERTAIN_LAST_USABLE_VALUE,
    Sample,
    SignalMeta,
    decode_batch,
    decode_config,
    decode_meta,
    encode_batch,
    encode_config,
    encode_meta,
)
from datafactory.contract.meanings import Meaning
from datafactory.contract.payload import MAX_SAMPLES_PER_BATCH
from datafactory.errors import ContractError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "datafactory" / "contract" / "payload.schema.json"


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _doc(raw: bytes) -> Any:
    return orjson.loads(raw)


def test_schema_constants_match_the_code(validator: Draft202012Validator) -> None:
    defs = validator.schema["$defs"]
    assert defs["name"]["pattern"] == NAME_PATTERN
    assert defs["signal"]["properties"]["meaning"]["enum"] == [m.value for m in Meaning]
    assert defs["batch"]["properties"]["samples"]["maxItems"] == MAX_SAMPLES_PER_BATCH


def test_encoded_payloads_validate(validator: Draft202012Validator) -> None:
    batch = encode_batch(
        [
            Sample("power", 1_732_350_000_123_456, 12.5),
            Sample("state", 1_732_350_000_123_456, 100.0, 0),
            Sample("vibration", 1_732_350_001_000_000, 2.25, UNCERTAIN_LAST_USABLE_VALUE),
            Sample("temperature", 1_732_350_002_000_000, math.nan, BAD_NO_COMMUNICATION),  # comm-lost marker
        ],
        gateway="gw-1",
        seq=42,
    )
    meta = encode_meta(
        [SignalMeta(m.value.replace("_", "-"), m, "u", f"a {m} signal") for m in Meaning],
        gateway="gw-1",
        attributes={"name": "CNC 1", "ideal_cycle_time_s": 2.0, "machine_class": "x", "target_rate_per_hour": 1500},
    )
    config = encode_config({"enterprise": {"id": "acme"}, "sources": []}, version="3f2a9c")
    for raw in (batch, meta, config, encode_batch([]), encode_meta([])):
        errors = [e.message for e in validator.iter_errors(_doc(raw))]
        assert errors == [], raw
    # …and what validates decodes without a single reject.
    assert decode_batch(batch).rejects == []
    assert len(decode_meta(meta).signals) == len(Meaning)
    assert decode_config(config)[0] == "3f2a9c"


def _batch(*samples: list[Any], **envelope: Any) -> dict[str, Any]:
    return {"fmt": "df-json/1", "gw": "gw-1", "seq": 1, "samples": list(samples), **envelope}


INVALID_BATCHES = {
    "bad_signal_name": _batch(["Spindle Power", 1, 1.0, 0]),
    "float_time": _batch(["power", 1.5, 1.0, 0]),
    "string_value": _batch(["power", 1, "12.5", 0]),
    "negative_quality": _batch(["power", 1, 1.0, -1]),
    "quality_beyond_32_bits": _batch(["power", 1, 1.0, 2**32]),
    "five_elements": _batch(["power", 1, 1.0, 0, "extra"]),
    "null_value_with_good_quality": _batch(["power", 1, None, 0]),
}


@pytest.mark.parametrize("doc", INVALID_BATCHES.values(), ids=INVALID_BATCHES.keys())
def test_invalid_samples_fail_the_schema_and_are_rejected_by_the_decoder(
    validator: Draft202012Validator, doc: dict[str, Any]
) -> None:
    assert not validator.is_valid(doc)
    decoded = decode_batch(json.dumps(doc).encode())
    assert len(decoded.rejects) == 1
    assert decoded.batch.samples == []


INVALID_DOCUMENTS = {
    "unknown_fmt": {"fmt": "df-json/9", "samples": []},
    "missing_samples": {"fmt": "df-json/1", "gw": "g"},
    "unknown_envelope_key": _batch(samples_count=0),
    "too_many_samples": _batch(*[["p", i, 1.0, 0] for i in range(MAX_SAMPLES_PER_BATCH + 1)]),
    "meta_unknown_meaning": {"fmt": "df-meta/1", "signals": [{"name": "p", "meaning": "horsepower"}]},
    "meta_signal_without_name": {"fmt": "df-meta/1", "signals": [{"unit": "kW"}]},
    "config_without_version": {"fmt": "df-config/1", "config": {}},
    "config_not_an_object": {"fmt": "df-config/1", "version": "v", "config": []},
}


@pytest.mark.parametrize("doc", INVALID_DOCUMENTS.values(), ids=INVALID_DOCUMENTS.keys())
def test_invalid_documents_fail_the_schema(validator: Draft202012Validator, doc: dict[str, Any]) -> None:
    assert not validator.is_valid(doc)


@pytest.mark.parametrize(
    ("decode", "doc"),
    [
        (decode_batch, INVALID_DOCUMENTS["unknown_fmt"]),
        (decode_batch, INVALID_DOCUMENTS["missing_samples"]),
        (decode_batch, INVALID_DOCUMENTS["too_many_samples"]),
        (decode_meta, INVALID_DOCUMENTS["meta_unknown_meaning"]),
        (decode_meta, INVALID_DOCUMENTS["meta_signal_without_name"]),
        (decode_config, INVALID_DOCUMENTS["config_without_version"]),
        (decode_config, INVALID_DOCUMENTS["config_not_an_object"]),
    ],
)
def test_documents_the_schema_refuses_are_refused_by_the_decoders_too(decode: Any, doc: dict[str, Any]) -> None:
    with pytest.raises(ContractError):
        decode(json.dumps(doc).encode())
