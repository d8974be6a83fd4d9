"""Typed samples through a real broker and a real worker into PostgreSQL: every value read back bit for bit,
values of the wrong type dead-lettered with signal and types, conflicting values recorded, declared type changes
recorded. Messages are raw JSON from a plain paho client (a third-party MQTT producer), not our encoder."""

from __future__ import annotations

import math
import struct
from typing import Any

import orjson
import psycopg
import pytest

from datafactory.contract.sample import datetime_to_us, now_us
from datafactory.contract.topics import TopicKind
from datafactory.contract.values import MAX_STRING_BYTES
from tests.test_ingest_support import Publisher, cell, count, start_worker, wait_until

pytestmark = pytest.mark.integration

BAD_NO_COMMUNICATION = 0x80310000
TYPES = {
    "i64": "int64",
    "u64": "uint64",
    "f64": "float64",
    "flag": "bool",
    "text": "string",
}
AT_LIMIT = "é" * (MAX_STRING_BYTES // 2)  # 2-byte characters: exactly MAX_STRING_BYTES bytes of UTF-8
VALUES: dict[str, list[Any]] = {
    "i64": [-(2**63), 2**63 - 1, 2**53 + 1, -1, 0],
    "u64": [2**64 - 1, 2**63, 2**53 + 1, 0],
    "f64": [5e-324, 1.7976931348623157e308, -1.7976931348623157e308, -0.0, 0.1, 2.2250738585072014e-308],
    "flag": [True, False],
    "text": ["", "温度传感器 三号线", "𝄞 🙂 𠜎", AT_LIMIT, 'quote " and \\ and \n'],
}


def _meta(names: dict[str, str]) -> bytes:
    signals = [{"name": n, "meaning": "generic", "unit": "", "description": "", "type": t} for n, t in names.items()]
    return orjson.dumps({"fmt": "df-meta/1", "gw": "gw-1", "cell": {}, "signals": signals})


def _data(samples: list[list[Any]]) -> bytes:
    # orjson writes Python ints as JSON integers and floats with a fraction or exponent: the JSON kinds df-json/2
    # reads the types from, exactly as a third-party producer would send them.
    return orjson.dumps({"fmt": "df-json/2", "gw": "gw-1", "seq": 1, "samples": samples})


def _bits(v: Any) -> Any:
    return ("f", struct.pack(">d", v)) if type(v) is float else (type(v).__name__, v)


def _read_back(db_url: str) -> dict[str, list[tuple[int, Any, int]]]:
    """(time_us, typed value, unsigned quality) per signal, from the sample_values view."""
    out: dict[str, list[tuple[int, Any, int]]] = {}
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT sp.signal, v.time, v.value_type, v.value, v.value_int, v.value_bool, v.value_text, v.quality"
            " FROM sample_values v JOIN signal_paths sp ON sp.signal_id = v.signal_id ORDER BY 1, 2"
        ).fetchall()
    for signal, t, vtype, value, value_int, value_bool, value_text, quality in rows:
        typed: Any = {
            "float64": value,
            "int64": None if value_int is None else int(value_int),
            "uint64": None if value_int is None else int(value_int),
            "bool": value_bool,
            "string": value_text,
        }[vtype]
        assert vtype == TYPES[signal], (signal, vtype)
        out.setdefault(signal, []).append((datetime_to_us(t), typed, quality & 0xFFFFFFFF))
    return out


def test_every_type_from_a_third_party_client_reads_back_bit_for_bit(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    path = cell(enterprise)
    t0 = now_us() - 60_000_000
    sent: dict[str, list[tuple[int, Any, int]]] = {}
    samples = []
    for name, values in VALUES.items():
        for i, v in enumerate([*values, None]):  # None: a comm-lost marker, no value, bad quality
            q = BAD_NO_COMMUNICATION if v is None else 0
            samples.append([name, t0 + i, v, q])
            sent.setdefault(name, []).append((t0 + i, v, q))
    over = "é" * (MAX_STRING_BYTES // 2) + "x"  # one byte over the limit
    samples.append(["text", t0 + 100, over, 0])
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        pub.publish(path.topic(TopicKind.META), _meta(TYPES), retain=True)
        pub.flush()
        wait_until(lambda: count(db_url, "SELECT count(*) FROM signals") == len(TYPES), what="signals registered")
        pub.publish(path.topic(TopicKind.DATA), _data(samples))
        pub.flush()
        wait_until(lambda: worker.stats.samples_total + worker.stats.dead_letters_total >= len(samples))
    finally:
        pub.close()
        worker.stop(end_session=True)
    got = _read_back(db_url)
    assert {n: [(t, _bits(v), q) for t, v, q in rows] for n, rows in got.items()} == {
        n: [(t, _bits(v), q) for t, v, q in rows] for n, rows in sent.items()
    }
    assert math.copysign(1.0, got["f64"][3][1]) == -1.0  # -0.0 kept its sign
    with psycopg.connect(db_url) as conn:
        # Storage: floats in samples, everything else in samples_typed; 2^64−1 is the bits of −1 there.
        assert conn.execute(
            "SELECT v_int FROM samples_typed t JOIN signals s ON s.id = t.signal_id WHERE s.name = 'u64' AND time = %s",
            (got["u64"][0][0] and _ts(t0),),
        ).fetchone() == (-1,)
        # samples also holds the float64 reading of every typed sample but a string value: what analytics and
        # panels that read numbers see (2^64−1 as its nearest float64, booleans as 0/1, markers as NULL).
        readings: dict[str, list[float | None]] = dict(
            conn.execute(
                "SELECT s.name, array_agg(v.value ORDER BY v.time) FROM samples v JOIN signals s ON s.id = v.signal_id"
                " GROUP BY s.name"
            ).fetchall()
        )
        assert readings["u64"] == [float(v) for v in VALUES["u64"]] + [None]
        assert readings["flag"] == [1.0, 0.0, None] and readings["text"] == [None]
        assert readings["i64"] == [float(v) for v in VALUES["i64"]] + [None]
        dead = conn.execute("SELECT reason, detail FROM dead_letters").fetchall()
    assert [r[0] for r in dead] == ["string_too_long"] and f"{MAX_STRING_BYTES + 1} UTF-8 bytes" in dead[0][1]
    assert worker.stats.dead_letters["string_too_long"] == 1


def _ts(us: int) -> Any:
    from datafactory.contract.sample import us_to_datetime

    return us_to_datetime(us)


def test_a_value_of_another_type_is_a_dead_letter_naming_signal_and_types(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    path = cell(enterprise)
    t0 = now_us() - 60_000_000
    wrong = [
        ["i64", t0, 1.5, 0],  # a float for an int64 signal
        ["i64", t0 + 1, "12", 0],  # a string for an int64 signal
        ["f64", t0 + 2, 2**53 + 1, 0],  # an integer a float64 would round
        ["flag", t0 + 3, 1, 0],  # an integer is no boolean
        ["u64", t0 + 4, -1, 0],  # negative for uint64
        ["text", t0 + 5, True, 0],
        ["text", t0 + 6, "a\x00b", 0],  # PostgreSQL text holds no NUL: it would fail the whole batch's COPY
    ]
    right = [["i64", t0 + 10, 7, 0], ["f64", t0 + 11, 3, 0], ["f64", t0 + 12, 2.5, 0]]  # 3 fits float64 exactly
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        pub.publish(path.topic(TopicKind.META), _meta(TYPES), retain=True)
        pub.flush()
        wait_until(lambda: count(db_url, "SELECT count(*) FROM signals") == len(TYPES), what="signals registered")
        pub.publish(path.topic(TopicKind.DATA), _data(wrong + right))
        pub.flush()
        wait_until(lambda: worker.stats.samples_total + worker.stats.dead_letters_total >= len(wrong) + len(right))
    finally:
        pub.close()
        worker.stop(end_session=True)
    with psycopg.connect(db_url) as conn:
        dead = conn.execute("SELECT reason, detail, sample_index FROM dead_letters ORDER BY sample_index").fetchall()
    assert [(r[0], r[2]) for r in dead] == [("type_mismatch", i) for i in range(len(wrong) - 1)] + [
        ("string_nul", len(wrong) - 1)
    ]
    key = f"{enterprise}/site-1/area-1/line-1/press-1"
    assert dead[0][1] == f"signal {key}/i64 is declared int64 but received a float64 value 1.5"
    assert dead[2][1] == f"signal {key}/f64 is declared float64 but received a integer value 9007199254740993"
    assert "declared bool" in dead[3][1] and "declared uint64" in dead[4][1] and "declared string" in dead[5][1]
    got = _read_back(db_url)
    assert got == {"i64": [(t0 + 10, 7, 0)], "f64": [(t0 + 11, 3.0, 0), (t0 + 12, 2.5, 0)]}


def test_a_different_value_at_a_stored_instant_is_a_recorded_conflict_a_redelivery_is_not(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    path = cell(enterprise)
    t0 = now_us() - 60_000_000
    first = _data([["f64", t0, 0.0, 0], ["text", t0, "A-17", 0], ["u64", t0, 2**64 - 1, 0], ["f64", t0 + 1, 1.0, 0]])
    differs = _data(
        [
            ["f64", t0, -0.0, 0],  # equal to 0.0 for '=', another value bit for bit
            ["text", t0, "A-18", 0],
            ["u64", t0, 2**64 - 1, 0x40000000],  # same value, another quality
            ["f64", t0 + 1, 1.0, 0],  # identical: a duplicate only
        ]
    )
    worker = start_worker(db_url, mqtt_url, enterprise, late_margin_s=3600.0)
    pub = Publisher(mqtt_url)
    try:
        pub.publish(path.topic(TopicKind.META), _meta(TYPES), retain=True)
        pub.publish(path.topic(TopicKind.DATA), first)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= 4, what="first values stored")
        pub.publish(path.topic(TopicKind.DATA), first)  # byte-identical redelivery
        pub.flush()
        wait_until(lambda: worker.stats.duplicates_total >= 4, what="redelivery seen")
        assert worker.stats.conflicts_total == 0
        assert count(db_url, "SELECT count(*) FROM sample_conflicts") == 0
        pub.publish(path.topic(TopicKind.DATA), differs)
        pub.publish(path.topic(TopicKind.DATA), differs)  # the same conflict again is recorded once
        pub.flush()
        wait_until(lambda: worker.stats.conflicts_total >= 3, what="conflicts counted")
        wait_until(lambda: worker.stats.duplicates_total >= 4 + 1 + 4, what="second conflicting message seen")
        wait_until(
            lambda: count(db_url, "SELECT coalesce(max(conflicts_total), 0) FROM ingest_health") >= 3,
            what="conflicts in ingest_health",
        )
    finally:
        pub.close()
        worker.stop(end_session=True)
    assert worker.stats.samples_total == 4
    assert worker.stats.conflicts_total == 3
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT s.name, c.value_type, c.stored_value, c.stored_quality, c.received_value, c.received_quality"
            " FROM sample_conflicts c JOIN signals s ON s.id = c.signal_id ORDER BY s.name"
        ).fetchall()
    assert rows == [
        ("f64", "float64", "0", 0, "-0", 0),
        ("text", "string", "A-17", 0, "A-18", 0),
        ("u64", "uint64", "18446744073709551615", 0, "18446744073709551615", 0x40000000),
    ]
    got = _read_back(db_url)  # the stored rows are the first ones
    assert (got["text"], got["u64"]) == ([(t0, "A-17", 0)], [(t0, 2**64 - 1, 0)])
    assert _bits(got["f64"][0][1]) == _bits(0.0)


def test_a_declared_type_change_is_recorded_and_history_keeps_its_type(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    path = cell(enterprise)
    t0 = now_us() - 60_000_000
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        # Data before any meta: the signal is registered with the type its first value implies.
        pub.publish(path.topic(TopicKind.DATA), _data([["code", t0, 2**64 - 2, 0]]))
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= 1, what="auto-registered value stored")
        assert count(db_url, "SELECT count(*) FROM signals WHERE name = 'code' AND signal_type = 'uint64'") == 1
        pub.publish(path.topic(TopicKind.META), _meta({"code": "string"}), retain=True)
        pub.flush()
        wait_until(lambda: count(db_url, "SELECT count(*) FROM signal_type_changes") == 1, what="type change")
        pub.publish(path.topic(TopicKind.DATA), _data([["code", t0 + 1, "B-2", 0], ["code", t0 + 2, 5, 0]]))
        pub.flush()
        wait_until(lambda: worker.stats.samples_total + worker.stats.dead_letters_total >= 3)
    finally:
        pub.close()
        worker.stop(end_session=True)
    with psycopg.connect(db_url) as conn:
        change = conn.execute("SELECT old_type, new_type, source FROM signal_type_changes").fetchone()
        values = conn.execute("SELECT value_type, value_int, value_text FROM sample_values ORDER BY time").fetchall()
        dead = conn.execute("SELECT reason FROM dead_letters").fetchall()
    assert change == ("uint64", "string", "meta")
    assert [(t, None if i is None else int(i), s) for t, i, s in values] == [
        ("uint64", 2**64 - 2, None),  # stored before the change: still the exact uint64
        ("string", None, "B-2"),
    ]
    assert dead == [("type_mismatch",)]
