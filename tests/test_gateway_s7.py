"""S7 source against python-snap7's real server: address syntax, every type, PDU batching, refused items."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from datafactory.config.loader import validate_document
from datafactory.config.s7 import S7Area, S7Source, S7Type, parse_s7_address
from datafactory.contract.quality import BAD_NO_COMMUNICATION, BAD_TYPE_MISMATCH
from datafactory.errors import ConfigError, ConnectionLost
from gateway.sources.s7 import BAD_DATA_ENCODING_INVALID, BAD_NODE_ID_UNKNOWN, S7Adapter, pack_requests
from simulator.s7_server import S7DeviceServer
from tests.support.gateway_env import GatewayThread, collect, free_port, plant, plant_doc
from tests.support.polled import by_signal, polls

pytestmark = pytest.mark.integration

CELL = "press/line-1/press-01"
VALUES: dict[str, Any] = {
    "DB10.DBX2.3": True,
    "DB10.DBX2.4": False,
    "DB10.DBB3": 0xA5,
    "DB10.DBW4": 0xBEEF,
    "DB10.DBW6:INT": -12_345,
    "DB10.DBD8": 0xDEADBEEF,
    "DB10.DBD12:DINT": -123_456_789,
    "DB10.DBD16:REAL": -2.5,
    "DB10.DBB20:LREAL": 1234.5678901234,
    "M0.1": True,
    "MW2:INT": -7,
    "IB0": 0x5A,
    "QD4:DINT": 77_000,
}


def _item(signal: str, address: str, **kw: Any) -> dict[str, Any]:
    return {"cell": CELL, "signal": signal, "meaning": "generic", "address": address, **kw}


def _source(port: int, items: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "s7",
        "id": "plc",
        "host": "127.0.0.1",
        "port": port,
        "timeout_s": 2,
        "poll_groups": [{"name": "default", "interval_ms": 50}],
        "items": items,
        **extra,
    }


def _config(port: int, items: list[dict[str, Any]], **extra: Any) -> S7Source:
    src = validate_document(plant_doc("acme", sources=[_source(port, items, **extra)], cells=[CELL])).sources[0]
    assert isinstance(src, S7Source)
    return src


def test_addresses_parse_as_integrators_write_them() -> None:
    a = parse_s7_address("DB10.DBD4:REAL")
    assert (a.area, a.db, a.start, a.type, a.size) == (S7Area.DB, 10, 4, S7Type.REAL, 4)
    b = parse_s7_address("DB5.DBX2.3")
    assert (b.area, b.db, b.start, b.bit, b.type) == (S7Area.DB, 5, 2, 3, S7Type.BOOL)
    m = parse_s7_address("M0.1")
    assert (m.area, m.start, m.bit) == (S7Area.M, 0, 1)
    s = parse_s7_address("DB1.DBB20:STRING[16]")
    assert (s.type, s.size, s.max_length) == (S7Type.STRING, 18, 16)
    for bad, why in [
        ("DB10.DBW4:REAL", "4 bytes"),
        ("M0.9", "bits are 0-7"),
        ("DB10.DBD4:FLOAT", "unknown type"),
        ("X1.0", "not an S7 address"),
        ("DB1.DBX3", "needs '.bit'"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_s7_address(bad)
    with pytest.raises(ConfigError) as err:
        _config(102, [_item("x", "DB10.DBW4:REAL")])
    assert "sources[0].items[0].address" in dict(err.value.problems)


def test_every_type_decodes_exactly_in_batched_reads() -> None:
    server = S7DeviceServer(free_port(), dbs={10: 64}).start()
    try:
        for address, value in VALUES.items():
            server.write(address, value)
        server.write("DB10.DBB30:STRING[8]", "Mould-7")
        items = [_item(f"s{i}", a) for i, a in enumerate(VALUES)] + [_item("name", "DB10.DBB30:STRING[8]")]
        adapter = S7Adapter(_config(server.port, items, report="every_poll"))
        before = server.read_requests
        got = by_signal(asyncio.run(polls(adapter, 3)))
        expected = {f"s{i}": v for i, v in enumerate(VALUES.values())} | {"name": "Mould-7"}
        # Exact values of the declared types (contract.values): BYTE…DINT int, BOOL bool, STRING str.
        assert {k: (v[0].value, type(v[0].value)) for k, v in got.items()} == {
            k: (v, type(v)) for k, v in expected.items()
        }
        assert all(v[0].quality == 0 for v in got.values())
        # 14 items fit one 480-byte PDU: one multi-variable read per poll, not 14
        assert adapter.pdu_length == 480
        assert (server.read_requests - before) == 3
    finally:
        server.stop()


def test_each_request_built_once_is_sent_with_its_own_pdu_reference() -> None:
    """The multi-read PDU of a batch is built at open and renumbered per send: a PLC (and snap7's stale-reply
    check) matches a reply to its request by that number, so two sends must never share one."""
    server = S7DeviceServer(free_port(), dbs={10: 1024}).start()
    try:
        items = [_item(f"r{i}", f"DB10.DBD{4 * i}:REAL") for i in range(60)]  # 3 requests of 20 items per poll
        for i in range(60):
            server.write(f"DB10.DBD{4 * i}:REAL", float(i))
        adapter = S7Adapter(_config(server.port, items, report="every_poll"))
        sent: list[bytes] = []

        async def run() -> list[list[Any]]:
            await adapter.open()
            assert adapter._client is not None
            real = adapter._client._send_receive

            async def spy(request: bytes, *args: Any, **kw: Any) -> Any:  # the real call, recorded
                sent.append(request)
                return await real(request, *args, **kw)

            adapter._client._send_receive = spy  # type: ignore[method-assign]
            out: list[list[Any]] = []
            try:
                async for readings in adapter.stream():
                    out.append(readings)
                    if len(out) == 3:
                        return out
            finally:
                await adapter.close()
            return out

        got = by_signal(asyncio.run(run()))
        assert {k: [s.value for s in v] for k, v in got.items()} == {f"r{i}": [float(i)] * 3 for i in range(60)}
        references = [int.from_bytes(r[4:6], "big") for r in sent]
        assert len(sent) >= 9 and len(set(references)) == len(references)
        assert [r[:4] + r[6:] for r in sent[:3]] == [r[:4] + r[6:] for r in sent[3:6]]  # the same request, renumbered
    finally:
        server.stop()


def test_pdu_packing_respects_the_negotiated_size_and_item_limit() -> None:
    addrs = [parse_s7_address(f"DB1.DBD{4 * i}:REAL") for i in range(50)]
    batches = pack_requests(addrs, list(range(50)), 240)
    assert [i for b in batches for i in b] == list(range(50))
    for b in batches:
        assert 12 + 12 * len(b) <= 240 and 14 + sum(4 + 4 for _ in b) <= 240 and len(b) <= 20
    assert len(batches) == 3  # 18 + 18 + 14 on a 240-byte PDU (12 bytes of request per item)
    big = [parse_s7_address("DB1.DBB0:STRING[254]")]
    assert pack_requests(big, [0], 240) == [[0]]


def test_a_refused_item_goes_bad_alone_and_bad_strings_are_counted() -> None:
    server = S7DeviceServer(free_port(), dbs={10: 64}).start()
    try:
        server.write("DB10.DBD0:REAL", 3.25)
        server.dbs[10][8:12] = bytes([4, 9, 65, 66])  # STRING[4] whose length byte says 9
        items = [_item("ok", "DB10.DBD0:REAL"), _item("nodb", "DB99.DBW0"), _item("bad", "DB10.DBB8:STRING[4]")]
        adapter = S7Adapter(_config(server.port, items))
        got = by_signal(asyncio.run(polls(adapter, 1)))
        assert got["ok"][0].value == 3.25
        assert got["nodb"][0].quality == BAD_NODE_ID_UNKNOWN and math.isnan(got["nodb"][0].value)
        assert got["bad"][0].quality == BAD_DATA_ENCODING_INVALID
        assert adapter.counters()["refused"] == 1 and adapter.counters()["bad_values"] == 1
    finally:
        server.stop()


def test_report_by_change_of_a_batch_decoded_at_once() -> None:
    """A batch whose items all answer is decoded in one struct call (gateway.polling.FastRun): each value is
    reported when it changes, a REAL that is not a number goes bad alone, the others keep their values."""
    server = S7DeviceServer(free_port(), dbs={10: 64}).start()
    try:
        for k in range(4):
            server.write(f"DB10.DBD{4 * k}:DINT", 100 + k)
        server.write("DB10.DBD16:REAL", math.inf)
        items = [_item(f"d{k}", f"DB10.DBD{4 * k}:DINT") for k in range(4)] + [_item("inf", "DB10.DBD16:REAL")]
        adapter = S7Adapter(_config(server.port, items))
        polled = asyncio.run(polls(adapter, 2, between=lambda _step: server.write("DB10.DBD8:DINT", -5)))
        first, changed = (by_signal([r]) for r in polled)
        assert {k: v[0].value for k, v in first.items() if k != "inf"} == {"d0": 100, "d1": 101, "d2": 102, "d3": 103}
        assert first["inf"][0].quality == BAD_TYPE_MISMATCH and first["d0"][0].quality == 0
        assert set(changed) - {"inf"} == {"d2"} and changed["d2"][0].value == -5
    finally:
        server.stop()


def test_closed_port_raises_connection_lost_and_close_never_raises() -> None:
    adapter = S7Adapter(_config(free_port(), [_item("x", "M0.0")]))
    with pytest.raises(ConnectionLost):
        asyncio.run(adapter.open())
    asyncio.run(adapter.close())
    asyncio.run(adapter.close())


def test_gateway_marks_the_gap_on_plc_death_and_recovers(tmp_path: Path, mqtt_url: str, enterprise: str) -> None:
    port = free_port()
    server = S7DeviceServer(port, dbs={10: 16}).start()
    server.write("DB10.DBD4:REAL", 42.25)
    cfg = plant(enterprise, sources=[_source(port, [_item("power", "DB10.DBD4:REAL")], timeout_s=1)], cells=[CELL])
    try:
        with (
            collect(mqtt_url, f"df/v1/{enterprise}/#") as col,
            GatewayThread(cfg, mqtt_url=mqtt_url, state_dir=tmp_path),
        ):
            assert col.wait_for(lambda: any(s.value == 42.25 for _, s in col.data_samples()))
            server.stop()
            assert col.wait_for(lambda: any(s.quality == BAD_NO_COMMUNICATION for _, s in col.data_samples()))
            server = S7DeviceServer(port, dbs={10: 16}).start()
            server.write("DB10.DBD4:REAL", 43.5)
            assert col.wait_for(lambda: any(s.value == 43.5 for _, s in col.data_samples()), timeout=20)
    finally:
        server.stop()
