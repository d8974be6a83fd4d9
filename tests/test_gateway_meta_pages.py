"""A cell's meta larger than one message is paged, never dropped (issue 15): the contract's pages and topics, a
data batch split to the limit in the gateway buffer, and a 20,000-signal cell from gateway to database."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlsplit

import orjson
import paho.mqtt.client as paho
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.config.models import OverflowPolicy
from datafactory.contract.meanings import Meaning
from datafactory.contract.payload import (
    MAX_MESSAGE_BYTES,
    SignalMeta,
    decode_batch,
    decode_meta,
    encode_meta,
    encode_meta_pages,
)
from datafactory.contract.sample import Sample, now_us
from datafactory.contract.topics import MAX_META_PAGES, CellPath, TopicKind, parse_topic
from datafactory.errors import ContractError
from gateway.buffer import Buffer
from tests.support.gateway_env import GatewayThread, clear_retained, plant
from tests.test_ingest_support import count, start_worker, wait_until

CELL = "area-1/line-1/press-1"


def _signals(n: int) -> list[SignalMeta]:
    return [
        SignalMeta(f"sig_{i:05d}", Meaning.GENERIC, f"u{i % 7}", f"描述 {i}: spindle zone {i % 13} sensor")
        for i in range(n)
    ]


def test_meta_that_fits_is_one_message_and_larger_meta_is_paged_within_the_limit() -> None:
    signals = _signals(400)
    attrs = {"name": "Press 1", "ideal_cycle_time_s": 2.0}
    assert encode_meta_pages(signals, gateway="gw", attributes=attrs) == [
        encode_meta(signals, gateway="gw", attributes=attrs)
    ]
    limit = 8_000
    pages = encode_meta_pages(signals, gateway="gw", attributes=attrs, limit=limit)
    assert len(pages) > 3 and all(len(p) <= limit for p in pages)
    decoded = [decode_meta(p) for p in pages]
    assert [orjson.loads(p)["page"] for p in pages] == [[k, len(pages)] for k in range(1, len(pages) + 1)]
    assert [s for m in decoded for s in m.signals] == signals  # every signal once, in order
    assert all(m.attributes == attrs and m.gateway == "gw" for m in decoded)
    with pytest.raises(ContractError, match="pages"):
        encode_meta_pages(_signals(5000), limit=4_000)  # more than MAX_META_PAGES pages
    with pytest.raises(ContractError, match="alone"):
        encode_meta_pages([SignalMeta("big", description="x" * 5000)], limit=4_000)
    bad_page = orjson.loads(pages[0]) | {"page": [0, 2]}
    with pytest.raises(ContractError, match="page"):
        decode_meta(orjson.dumps(bad_page))


def test_meta_page_topics_parse_as_meta_and_nothing_else_does() -> None:
    path = CellPath("acme", "site-1", "a", "l", "c")
    assert path.meta_page_topic(1) == path.topic(TopicKind.META)
    for k in (2, 17, MAX_META_PAGES):
        parsed = parse_topic(path.meta_page_topic(k))
        assert parsed.kind is TopicKind.META and parsed.cell == path
    for level in ("1", "01", str(MAX_META_PAGES + 1), "x", "²", ""):
        with pytest.raises(ContractError):
            parse_topic(f"{path.topic(TopicKind.META)}/{level}")
    with pytest.raises(ContractError):
        parse_topic(f"{path.topic(TopicKind.DATA)}/2")


def test_a_batch_over_the_message_limit_is_stored_as_halves_that_fit(tmp_path: Path) -> None:
    buffer = Buffer(
        tmp_path / "buf.db", max_bytes=64 * MAX_MESSAGE_BYTES, overflow=OverflowPolicy.DROP_NEWEST, gateway="gw"
    )
    buffer.open()
    t = now_us()
    samples = [Sample(f"s{i % 10}", t + i, 1.5 * i, 0) for i in range(9_000)]
    samples += [Sample("order", t + i, "A-17 " + "主" * 300, 0) for i in range(3_000)]  # ~2.7 MB of strings
    buffer.append("df/v1/acme/site-1/a/l/c/data", samples)
    stored = buffer.pending(0, 100)
    assert len(stored) > 1 and all(len(b.payload) <= MAX_MESSAGE_BYTES for b in stored)
    assert [s for b in stored for s in decode_batch(b.payload).batch.samples] == samples
    buffer.close()


@pytest.mark.integration
def test_a_20000_signal_cell_keeps_every_unit_and_description(
    tmp_path: Path, db_url: str, mqtt_url: str, enterprise: str
) -> None:
    signals = _signals(20_000)
    assert len(encode_meta(signals)) > MAX_MESSAGE_BYTES  # one message would be refused and its meaning lost
    mappings = [
        {"topic": f"dev-{enterprise}/big", "value_path": s.name, "cell": CELL, "signal": s.name, "meaning": "generic",
         "unit": s.unit, "description": s.description}
        for s in signals
    ]  # fmt: skip
    cfg = plant(enterprise, sources=[{"kind": "mqtt_json", "id": "big", "mappings": mappings}], cells=[CELL])
    small = plant(enterprise, sources=[{"kind": "mqtt_json", "id": "big", "mappings": mappings[:10]}], cells=[CELL])
    worker = start_worker(db_url, mqtt_url, enterprise)
    try:
        with _KeepRetained(cfg, mqtt_url=mqtt_url, state_dir=tmp_path):
            wait_until(lambda: count(db_url, "SELECT count(*) FROM signals WHERE registered_by = 'meta'") == 20_000,
                       120, "every signal registered from meta")  # fmt: skip
        pages = _retained_meta_pages(mqtt_url, enterprise)
        # A restarted gateway whose cell shrank to one message clears the pages it no longer uses.
        with _KeepRetained(small, mqtt_url=mqtt_url, state_dir=tmp_path):
            wait_until(lambda: _retained_meta_pages(mqtt_url, enterprise) == [1], 30, "old pages cleared")
    finally:
        worker.stop()
        clear_retained(mqtt_url, enterprise)
    assert pages == [1, 2, 3]
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT name, unit, description FROM signals ORDER BY name").fetchall()
    assert rows == [(s.name, s.unit, s.description) for s in signals]
    assert count(db_url, "SELECT count(*) FROM dead_letters") == 0


class _KeepRetained(GatewayThread):
    """Stops the gateway but leaves its retained messages on the broker, as a real gateway restart does."""

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "gateway did not stop"


def _retained_meta_pages(mqtt_url: str, enterprise: str) -> list[int]:
    """The page numbers of the cell's meta retained on the broker right now."""
    found: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: found.append(m.topic) if m.retain and m.payload else None
    url = urlsplit(mqtt_url)
    client.connect(url.hostname or "127.0.0.1", url.port or 1883)
    client.loop_start()
    client.subscribe(f"df/v1/{enterprise}/site-1/{CELL}/meta/#")
    time.sleep(0.7)
    client.disconnect()
    client.loop_stop()
    return sorted(1 if t.endswith("/meta") else int(t.rsplit("/", 1)[1]) for t in found)
