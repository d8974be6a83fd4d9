"""A corpus of malformed and hostile messages sent mid-stream: each lands in dead_letters with the right reason,
every good sample around it is stored, and the worker keeps running."""

from __future__ import annotations

from collections import Counter

import orjson
import psycopg
import pytest

from datafactory.contract.payload import encode_batch
from datafactory.contract.sample import Sample, now_us
from datafactory.contract.topics import TopicKind, gateway_topic
from tests.test_ingest_support import (
    Publisher,
    cell,
    expected,
    make_samples,
    publish_meta,
    publish_samples,
    start_worker,
    stored_samples,
    wait_until,
)

pytestmark = pytest.mark.integration

YEAR_1970_US = 86_400_000_000
YEAR_2200_US = 7_258_118_400_000_000


def _batch(*samples: object, **envelope: object) -> bytes:
    doc: dict[str, object] = {"fmt": "df-json/1", "gw": "gw-1", "seq": 1, "samples": list(samples)}
    doc.update(envelope)
    return orjson.dumps(doc)


def _corpus(enterprise: str, t: int) -> tuple[list[tuple[str, bytes]], list[str], list[Sample]]:
    """(topic, payload) pairs, the dead-letter reasons they must produce, and the good samples among them."""
    data = cell(enterprise).topic(TopicKind.DATA)
    good = [Sample("power", t + 1, 1.5, 0), Sample("power", t + 2, 2.5, 0)]
    marker = Sample("power", t + 3, float("nan"), 0x80310000)  # comm lost: a null value with bad quality is valid
    items: list[tuple[str, bytes, list[str]]] = [
        (data, b'{"fmt":"df-json/1","samples":[["power\xff\xfe",1,1,0]]}', ["malformed_json"]),  # invalid UTF-8
        (data, encode_batch(good)[:-7], ["malformed_json"]),  # truncated
        (data, _batch(["power", t, 1, 0], fmt="df-json/9"), ["bad_format"]),
        # NaN and Infinity beside good samples: only the non-finite samples are rejected.
        (
            data,
            f'{{"fmt":"df-json/1","samples":[["power",{t + 4},NaN,0],["power",{t + 5},7.0,0]]}}'.encode(),
            ["non_finite"],
        ),
        (data, f'{{"fmt":"df-json/1","samples":[["power",{t + 6},-Infinity,0]]}}'.encode(), ["non_finite"]),
        (data, _batch(["power", t, "12.5", 0]), ["wrong_type"]),
        (data, _batch(["power", t, True, 0]), ["wrong_type"]),
        (data, f'{{"fmt":"df-json/1","samples":[["power",{t},1e400,0]]}}'.encode(), ["non_finite"]),
        (data, f'{{"fmt":"df-json/1","samples":[["power",{t},{"9" * 400},0]]}}'.encode(), ["non_finite"]),
        (data, _batch(["power", t, 1.0, -1], ["power", t + 7, 1.0, 2**32]), ["bad_quality", "bad_quality"]),
        (
            data,
            _batch(["power", YEAR_1970_US, 1.0, 0], ["power", YEAR_2200_US, 1.0, 0]),
            ["timestamp_out_of_window", "timestamp_out_of_window"],
        ),
        (data, _batch(*[["power", t + i, 1.0, 0] for i in range(10_001)]), ["oversized"]),
        (data, _batch(["power", t, 1.0, 0], padding="x" * 1_100_000), ["oversized"]),
        (f"df/v1/{enterprise}/site-1/area-1/data", _batch(["power", t, 1.0, 0]), ["bad_topic"]),
        (f"df/v9/{enterprise}/site-1/area-1/line-1/press-1/data", _batch(["power", t, 1.0, 0]), ["bad_topic"]),
        (f"df/v1/{enterprise}/site-1/area-1/line-1/Press_1/data", _batch(["power", t, 1.0, 0]), ["bad_topic"]),
        (f"df/v1/{enterprise}/site-1/area-1/line-1/press-1/blob", _batch(["power", t, 1.0, 0]), ["bad_topic"]),
        (data, b"[1, 2, 3]", ["bad_format"]),  # not an object
        (data, b'"just a string"', ["bad_format"]),
        (data, b'{"fmt":"df-json/1","samples":{"power":1}}', ["bad_envelope"]),
        (data, b'{"fmt":"df-json/1","samples":[]' + b',"x":' * 3000 + b"1" + b"}" * 3000, ["malformed_json"]),
        (
            data,
            _batch({"nested": {"garbage": [1, [2, [3]]]}}, ["power", t, 1, 0, 0]),
            ["bad_sample_shape", "bad_sample_shape"],
        ),
        (
            data,
            _batch([None, t, 1.0, 0], ["Power", t, 1.0, 0], ["", t, 1.0, 0]),
            ["bad_signal_name", "bad_signal_name", "bad_signal_name"],
        ),
        (data, _batch(["power", 1.5e15, 1.0, 0], ["power", t, None, 0]), ["wrong_type", "wrong_type"]),
        (data, b"", ["malformed_json"]),  # empty
        (data, b'{"fmt":"df-json/1","samples":[],"samples":[["power",1,1,0]]}', ["duplicate_key"]),
        (data, _batch(seq="seven"), ["bad_envelope"]),
        (
            cell(enterprise).topic(TopicKind.META),
            b'{"fmt":"df-meta/1","signals":[{"name":"x","meaning":"magic"}]}',
            ["bad_envelope"],
        ),
        (gateway_topic(enterprise, "site-1", "gw-1", TopicKind.STATUS), b'{"online":"yes"}', ["bad_envelope"]),
        # Valid JSON the database refuses (a NUL character in text / jsonb).
        (
            cell(enterprise, "press-2").topic(TopicKind.META),
            b'{"fmt":"df-meta/1","signals":[{"name":"x","description":"a\\u0000b"}]}',
            ["rejected_by_database"],
        ),
        (
            gateway_topic(enterprise, "site-1", "gw-2", TopicKind.STATUS),
            b'{"online":true,"note":"\\u0000"}',
            ["rejected_by_database"],
        ),
        (f"df/v1/{enterprise}/site-2/area-1/line-1/press-1/data", _batch(["power", t, 1.0, 0]), ["foreign_plant"]),
    ]
    pairs = [(topic, payload) for topic, payload, _ in items]
    reasons = [r for _, _, rs in items for r in rs]
    goods = [*good, marker, Sample("power", t + 5, 7.0, 0)]
    pairs.insert(3, (data, encode_batch([*good, marker])))
    return pairs, reasons, goods


def test_bad_input_corpus_is_dead_lettered_and_good_samples_kept(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    t = now_us() - 3_600_000_000
    before = make_samples(["power"], 200, start_us=t - 10_000_000)
    after = make_samples(["power"], 200, start_us=t + 1_000_000)
    pairs, reasons, goods = _corpus(enterprise, t)
    assert len(set(reasons)) >= 12 and len(pairs) >= 25
    worker = start_worker(
        db_url,
        mqtt_url,
        enterprise,
        topic_filter=f"df/+/{enterprise}/#",
        allowed_plants=frozenset([f"{enterprise}/site-1"]),
    )
    pub = Publisher(mqtt_url)
    try:
        publish_meta(pub, path, ["power"])
        publish_samples(pub, path, before)
        for topic, payload in pairs:
            pub.publish(topic, payload)
        publish_samples(pub, path, after)
        pub.flush()
        total = len(before) + len(after) + len(goods)
        wait_until(
            lambda: worker.stats.samples_total >= total and worker.stats.dead_letters_total >= len(reasons),
            what="good samples and dead letters",
        )
        assert worker.running
    finally:
        pub.close()
        worker.stop(end_session=True)

    stored = stored_samples(db_url)
    want = expected([*before, *after, *goods])
    assert [s[:2] for s in stored] == [s[:2] for s in want]
    assert [(s[2], s[3]) for s in stored if s[1] != t + 3] == [(s[2], s[3]) for s in want if s[1] != t + 3]
    assert [s[2:] for s in stored if s[1] == t + 3] == [(None, 0x80310000)]  # the comm-lost marker as NULL
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT reason, topic, payload, detail FROM dead_letters").fetchall()
        counts: dict[str, int] = dict(conn.execute("SELECT reason, count FROM dead_letter_counts").fetchall())
    assert Counter(r[0] for r in rows) == Counter(reasons)
    assert all(r[1] and r[2] is not None and r[3] for r in rows)
    assert counts == dict(Counter(reasons))
    assert worker.stats.dead_letters == Counter(reasons)


def test_unknown_signals_are_dead_lettered_when_auto_registration_is_off(
    db_url: str, mqtt_url: str, enterprise: str
) -> None:
    known, unknown_cell = cell(enterprise), cell(enterprise, "lathe-9")
    t = now_us() - 60_000_000
    worker = start_worker(db_url, mqtt_url, enterprise, auto_register=False)
    pub = Publisher(mqtt_url)
    try:
        publish_meta(pub, known, ["power"])
        pub.publish(known.topic(TopicKind.DATA), encode_batch([Sample("power", t, 1.0), Sample("ghost", t, 2.0)]))
        pub.publish(unknown_cell.topic(TopicKind.DATA), encode_batch([Sample("power", t, 3.0)]))
        pub.flush()
        wait_until(lambda: worker.stats.dead_letters_total >= 2 and worker.stats.samples_total >= 1)
    finally:
        pub.close()
        worker.stop(end_session=True)
    assert stored_samples(db_url) == [("power", t, 1.0, 0)]
    assert worker.stats.dead_letters == Counter({"unknown_signal": 2})


def test_unknown_signals_are_registered_automatically(db_url: str, mqtt_url: str, enterprise: str) -> None:
    path = cell(enterprise)
    samples = make_samples(["a", "b"], 10)
    worker = start_worker(db_url, mqtt_url, enterprise)
    pub = Publisher(mqtt_url)
    try:
        publish_samples(pub, path, samples)
        pub.flush()
        wait_until(lambda: worker.stats.samples_total >= len(samples))
    finally:
        pub.close()
        worker.stop(end_session=True)
    assert stored_samples(db_url) == expected(samples)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT name, meaning, registered_by FROM signals ORDER BY name").fetchall()
    assert rows == [("a", "generic", "auto"), ("b", "generic", "auto")]
