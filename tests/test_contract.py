"""The data contract: topic grammar, names, payload encoding/decoding, quality."""

from __future__ import annotations

import orjson
import pytest

from datafactory.contract import (
    BAD_NO_COMMUNICATION,
    CellPath,
    Sample,
    Severity,
    TopicKind,
    decode_batch,
    encode_batch,
    parse_topic,
    severity,
)
from datafactory.contract.quality import from_db, to_db
from datafactory.contract.topics import gateway_topic
from datafactory.errors import ContractError


def test_topic_round_trip() -> None:
    cell = CellPath("acme", "dg-1", "stamping", "line1", "press-01")
    topic = cell.topic()
    assert topic == "df/v1/acme/dg-1/stamping/line1/press-01/data"
    parsed = parse_topic(topic)
    assert parsed.kind is TopicKind.DATA and parsed.cell == cell
    assert parse_topic(cell.topic(TopicKind.META)).kind is TopicKind.META
    gw = parse_topic(gateway_topic("acme", "dg-1", "gw1", TopicKind.STATUS))
    assert gw.kind is TopicKind.STATUS and gw.gateway == "gw1" and gw.cell is None


@pytest.mark.parametrize(
    ("topic", "fragment"),
    [
        ("df/v2/a/b/c/d/e/data", "version"),
        ("xx/v1/a/b/c/d/e/data", "does not start"),
        ("df/v1/a/b/c/d/data", "levels"),
        ("df/v1/a/B/c/d/e/data", "site 'B'"),
        ("df/v1/a/b/c/d/e/values", "not data/meta"),
        ("df/v1/a/b/_gw/g/reboot", "status/config"),
    ],
)
def test_bad_topics_name_the_problem(topic: str, fragment: str) -> None:
    with pytest.raises(ContractError, match=fragment) as exc:
        parse_topic(topic)
    assert exc.value.reason == "bad_topic"


def test_cell_names_are_validated() -> None:
    with pytest.raises(ValueError, match="cell"):
        CellPath("acme", "s", "a", "l", "Press 01")
    with pytest.raises(ValueError, match="limit is 64"):
        CellPath("a" * 65, "s", "a", "l", "c")


def test_batch_round_trip_keeps_exact_values_and_times() -> None:
    samples = [Sample("power", 1_732_350_000_123_456, 12.345678901234, 0), Sample("state", 1_732_350_000_123_457, 3.0)]
    decoded = decode_batch(encode_batch(samples, gateway="gw1", seq=7))
    assert decoded.rejects == []
    assert decoded.batch.samples == samples
    assert (decoded.batch.gateway, decoded.batch.seq) == ("gw1", 7)


def test_bad_samples_are_rejected_individually_good_ones_kept() -> None:
    raw = (
        b'{"fmt":"df-json/1","samples":[["ok",1,1.5,0],["nan",2,NaN,0],["str",3,"x",0],'
        b'["Bad Name",4,1,0],["q",5,1,-1],["short",6],["lost",7,null,2150694912],["nullgood",8,null,0],'
        b'["late",1,1,0],["ok2",9,2,0]]}'
    )
    decoded = decode_batch(raw, min_us=1, max_us=100)
    kept = [s.signal for s in decoded.batch.samples]
    assert kept[:1] == ["ok"] and "ok2" in kept and "lost" in kept and "late" in kept
    lost = next(s for s in decoded.batch.samples if s.signal == "lost")
    assert lost.value is None and severity(lost.quality) is Severity.BAD  # no value: None, not a NaN
    reasons = {r.raw[0] if isinstance(r.raw, list) and r.raw else None: r.reason for r in decoded.rejects}
    assert reasons == {
        "nan": "non_finite",
        "str": "wrong_type",
        "Bad Name": "bad_signal_name",
        "q": "bad_quality",
        "short": "bad_sample_shape",
        "nullgood": "wrong_type",
    }


def test_time_window_rejects_absurd_timestamps() -> None:
    raw = encode_batch([Sample("a", 10, 1.0), Sample("b", 10**18, 1.0), Sample("c", 50, 1.0)])
    decoded = decode_batch(raw, min_us=5, max_us=100)
    assert [s.signal for s in decoded.batch.samples] == ["a", "c"]
    assert [r.reason for r in decoded.rejects] == ["timestamp_out_of_window"]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "malformed_json"),
        (b"{not json", "malformed_json"),
        (b"[1,2]", "bad_format"),
        (b'{"fmt":"df-json/9","samples":[]}', "bad_format"),
        (b'{"fmt":"df-json/1"}', "bad_envelope"),
        (b'{"fmt":"df-json/1","samples":[],"seq":"x"}', "bad_envelope"),
        (b'{"fmt":"df-json/1","samples":[' + b",".join([b'["a",1,1]'] * 10_001) + b"]}", "oversized"),
        (b"{" + b" " * 1_048_577 + b"}", "oversized"),
    ],
)
def test_malformed_messages(raw: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as exc:
        decode_batch(raw)
    assert exc.value.reason == reason


def test_quality_db_round_trip_keeps_subcode() -> None:
    for code in (0, 0x40900000, BAD_NO_COMMUNICATION, 0xFFFFFFFF):
        assert from_db(to_db(code)) == code
        assert -(2**31) <= to_db(code) < 2**31
    assert severity(to_db(BAD_NO_COMMUNICATION)) is Severity.BAD
    assert orjson.loads(encode_batch([Sample("x", 1, 1.0, 0x40900000)]))["samples"][0][3] == 0x40900000


def test_quality_constants_are_the_opc_ua_codes_of_their_names() -> None:
    """Every named StatusCode in contract.quality equals asyncua's table entry of the same name (OPC 10000-4
    §7.39): BAD_SENSOR_FAILURE once held Bad_OutOfService's code and BAD_OUT_OF_SERVICE Bad_NotConnected's."""
    from asyncua import ua

    from datafactory.contract import quality

    named = {
        name: value
        for name, value in vars(quality).items()
        if name.isupper() and name.startswith(("BAD_", "UNCERTAIN_", "GOOD_")) and isinstance(value, int)
    }
    assert "BAD_SENSOR_FAILURE" in named and "BAD_OUT_OF_SERVICE" in named
    for name, value in named.items():
        spec_name = "".join(part.capitalize() for part in name.split("_"))
        assert getattr(ua.StatusCodes, spec_name) == value, f"{name} = {value:#010x} is not {spec_name}"
