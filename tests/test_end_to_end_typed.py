"""Typed values end to end: a real OPC-UA server (asyncua) → gateway → Mosquitto → ingest → PostgreSQL.

Every OPC-UA variant type the contract carries is written to the server — int64 extremes, uint64 up to 2^64−1,
2^53+1, float64 extremes, booleans, strings (empty, CJK, 4-byte UTF-8, exactly MAX_STRING_BYTES, one byte over)
and a bad-quality value-less status — and every value is read back from the database equal bit for bit, with
the string over the limit dead-lettered (string_too_long), never truncated.
"""

from __future__ import annotations

import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from datafactory.contract.quality import BAD_SHUTDOWN, to_db
from datafactory.contract.sample import datetime_to_us
from datafactory.contract.values import MAX_STRING_BYTES
from ingest.options import IngestOptions
from ingest.worker import IngestWorker
from tests.support.gateway_env import GatewayThread, OpcUaTestServer, free_port, opcua_source, plant

pytestmark = pytest.mark.integration

CELL = "press/line-1/press-01"
BAD_SENSOR_FAILURE = 0x808C0000
AT_LIMIT = "é" * (MAX_STRING_BYTES // 2)
OVER_LIMIT = AT_LIMIT + "x"
# signal → (OPC-UA variant type, declared type, initial value, values written after it)
NODES: dict[str, tuple[str, str, Any, list[Any]]] = {
    "i64": ("Int64", "int64", 0, [-(2**63), 2**63 - 1, 2**53 + 1, -1]),
    "u64": ("UInt64", "uint64", 0, [2**64 - 1, 2**63, 2**53 + 1]),
    "f64": ("Double", "float64", 0.5, [5e-324, 1.7976931348623157e308, -0.0, 0.1]),
    "flag": ("Boolean", "bool", False, [True, False, True]),
    "text": ("String", "string", "start", ["", "温度传感器 三号线", "𝄞 🙂 𠜎", AT_LIMIT, OVER_LIMIT, "after"]),
}


def _source(endpoint: str) -> dict[str, Any]:
    nodes = [{"node_id": f"ns=2;s={name}", "cell": CELL, "signal": name, "meaning": "generic", "signal_type": declared,
              "queue_size": 100} for name, (_, declared, _, _) in NODES.items()]
    return opcua_source(endpoint, nodes, keepalive_timeout_s=5)


def _bits(v: Any) -> Any:
    return ("f", struct.pack(">d", v)) if type(v) is float else (type(v).__name__, v)


def _stored(db_url: str) -> dict[str, list[tuple[Any, int]]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT sp.signal, v.value_type, v.value, v.value_int, v.value_bool, v.value_text, v.quality"
            " FROM sample_values v JOIN signal_paths sp ON sp.signal_id = v.signal_id ORDER BY sp.signal, v.time"
        ).fetchall()
    out: dict[str, list[tuple[Any, int]]] = {}
    for signal, vtype, value, value_int, value_bool, value_text, quality in rows:
        typed = {"float64": value, "bool": value_bool, "string": value_text}.get(
            vtype, None if value_int is None else int(value_int)
        )
        assert vtype == NODES[signal][1]
        out.setdefault(signal, []).append((typed, quality & 0xFFFFFFFF))
    return out


def _count(db_url: str, query: str) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _stop_marked(db_url: str, expected: dict[str, list[tuple[Any, int]]]) -> None:
    """A clean gateway stop ends every signal with a Bad_Shutdown marker (docs/contract.md "Gaps")."""
    query = f"SELECT count(*) FROM sample_values WHERE quality = {to_db(BAD_SHUTDOWN)}"
    _wait(lambda: _count(db_url, query) >= len(expected), 30, "the stop's markers")
    for rows in expected.values():
        rows.append((None, BAD_SHUTDOWN))


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _start_worker(db_url: str, mqtt_url: str, enterprise: str) -> IngestWorker:
    worker = IngestWorker(
        IngestOptions(
            database_url=db_url,
            mqtt_url=mqtt_url,
            topic_filter=f"df/v1/{enterprise}/#",
            worker=f"w-{enterprise}",
            session_expiry_s=300,
            batch_wait_s=0.05,
        )
    )
    worker.start()
    return worker


def _wait_all_stored(db_url: str, expected: dict[str, list[tuple[Any, int]]]) -> None:
    total = sum(len(v) for v in expected.values())
    _wait(
        lambda: (
            _count(db_url, "SELECT count(*) FROM sample_values") >= total
            and _count(db_url, "SELECT count(*) FROM dead_letters") >= 1
        ),
        90,
        "every value stored and the long string dead-lettered",
    )


def _assert_read_back(db_url: str, expected: dict[str, list[tuple[Any, int]]]) -> None:
    """The database holds exactly ``expected``, bit for bit, each signal with the type the gateway declared, no
    (signal, time) twice, and one dead letter: the string over the limit."""
    got = _stored(db_url)
    assert {n: [(_bits(v), q) for v, q in rows] for n, rows in got.items()} == {
        n: [(_bits(v), q) for v, q in rows] for n, rows in expected.items()
    }
    with psycopg.connect(db_url) as conn:
        dead = conn.execute("SELECT reason, detail FROM dead_letters").fetchall()
        types: dict[str, str] = dict(conn.execute("SELECT name, signal_type FROM signals").fetchall())
        keys = conn.execute("SELECT signal_id, time FROM sample_values").fetchall()
    assert [r[0] for r in dead] == ["string_too_long"], dead
    assert types == {name: declared for name, (_, declared, _, _) in NODES.items()}  # from the gateway's meta
    assert len(set(keys)) == len(keys)  # no (signal, time) in both the float64 and the typed table


def test_every_type_from_opcua_reaches_the_database_bit_for_bit(db_url, mqtt_url, enterprise, tmp_path) -> None:
    from asyncua import ua

    initial = {name: ua.Variant(v0, getattr(ua.VariantType, vt)) for name, (vt, _, v0, _) in NODES.items()}
    server = OpcUaTestServer(free_port(), initial).start()
    worker = _start_worker(db_url, mqtt_url, enterprise)
    expected: dict[str, list[tuple[Any, int]]] = {name: [(v0, 0)] for name, (_, _, v0, _) in NODES.items()}
    try:
        cfg = plant(enterprise, sources=[_source(server.endpoint)], cells=[CELL])
        with GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path):
            _wait(lambda: _count(db_url, "SELECT count(*) FROM sample_values") >= len(NODES), 60, "initial values")
            stamp = datetime.now(UTC)
            for name, (vt, _, _, values) in NODES.items():
                for v in [*values, None]:  # None: a bad-quality status without a value
                    stamp += timedelta(milliseconds=3)
                    # Both ignores: asyncua's annotation wants its ua.DateTime (an empty subclass of datetime) for
                    # SourceTimestamp, but it encodes any aware datetime, and ua.DateTime(stamp) is no conversion.
                    if v is None:
                        status = ua.StatusCode(ua.UInt32(BAD_SENSOR_FAILURE))
                        dv = ua.DataValue(StatusCode=status, SourceTimestamp=stamp)  # type: ignore[arg-type]
                        expected[name].append((None, BAD_SENSOR_FAILURE))
                    else:
                        variant = ua.Variant(v, getattr(ua.VariantType, vt))
                        dv = ua.DataValue(variant, SourceTimestamp=stamp)  # type: ignore[arg-type]
                        if v is not OVER_LIMIT:
                            expected[name].append((v, 0))
                    server.call(server.nodes[name].write_value(dv))
                    time.sleep(0.02)
            _wait_all_stored(db_url, expected)
        _stop_marked(db_url, expected)
    finally:
        worker.stop(end_session=True)
        server.close()
    _assert_read_back(db_url, expected)


def test_every_type_from_an_mqtt_json_device_reaches_the_database_bit_for_bit(
    db_url, mqtt_url, enterprise, tmp_path
) -> None:
    """The same over the MQTT JSON source: a plain paho client (the device) publishes hand-written JSON, the
    gateway maps it to typed signals, ingest stores it."""
    import orjson
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    dev = f"dev-{enterprise}"
    source = {
        "kind": "mqtt_json",
        "id": "device",
        "broker_url": mqtt_url,
        "mappings": [
            {
                "topic": f"{dev}/{name}",
                "value_path": "v",
                "cell": CELL,
                "signal": name,
                "meaning": "generic",
                "signal_type": declared,
                "timestamp_path": "ts",
                "timestamp_format": "epoch_us",
                "quality_path": "q",
            }
            for name, (_, declared, _, _) in NODES.items()
        ],
    }
    cfg = plant(enterprise, sources=[source], cells=[CELL])
    worker = _start_worker(db_url, mqtt_url, enterprise)
    device = paho.Client(CallbackAPIVersion.VERSION2)
    device.connect("127.0.0.1", int(mqtt_url.rsplit(":", 1)[1]))
    device.loop_start()
    expected: dict[str, list[tuple[Any, int]]] = {}
    t = datetime_to_us(datetime.now(UTC)) - 10_000_000
    try:
        with GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path) as gw:
            _wait(lambda: gw.gateway.source_states().get("device") == "connected", 30, "device source connected")
            for name, (_, _, _, values) in NODES.items():
                for v in [*values, None]:
                    t += 1000
                    q = BAD_SENSOR_FAILURE if v is None else 0
                    # orjson writes exactly what a device would: integers as integers, floats in shortest form.
                    payload = orjson.dumps({"v": v, "ts": t, "q": q})
                    device.publish(f"{dev}/{name}", payload, qos=1).wait_for_publish(10)
                    if v is not OVER_LIMIT:
                        expected.setdefault(name, []).append((v, q))
            _wait_all_stored(db_url, expected)
        _stop_marked(db_url, expected)
    finally:
        device.loop_stop()
        device.disconnect()
        worker.stop(end_session=True)
    _assert_read_back(db_url, expected)
