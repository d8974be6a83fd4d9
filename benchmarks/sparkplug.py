"""Sparkplug B host throughput: metrics decoded and published per second by one gateway process.

An edge node (a paho client in this process) births ``--metrics-per-message`` Double metrics with aliases,
then publishes ``--messages`` NDATA messages carrying all of them by alias, at QoS 1, as fast as the broker
takes them. Three phases on a private Mosquitto with unbounded per-client queues (``DATAFACTORY_MQTT_URL``, when
set, instead), each timed from the first data message published to the last
metric delivered:

1. bare: a bare paho subscriber in its own process receives the NDATA messages and counts their metrics
   (decoding nothing) — the rate this machine's broker and one Python MQTT client can move them;
2. gateway, uncompressed: one gateway process (``gateway.runner.Gateway``) decodes every metric, normalises,
   batches, buffers on disk and publishes to the platform topics; a counting subscriber sees every sample;
3. gateway, compressed: the same messages as DEFLATE ``SPBV1.0_COMPRESSED`` envelopes.

A phase ends when every metric arrived, or when nothing arrived for ``STALL_S``: a broker whose per-client queue
overflows drops messages, and the run then says so (``all_delivered`` false) instead of waiting for them.

Last stdout line: JSON with ``metrics``, ``metrics_per_s``, ``metrics_per_s_compressed``,
``bare_subscriber_metrics_per_s``, ``ratio_vs_bare`` (uncompressed ÷ bare), ``all_delivered``, ``seq_gaps`` (the
gateway's count of lost messages, per gateway phase), ``load_avg_1m``, ``cpu_count``, ``timescaledb``.
``--quick`` runs a tenth of the messages.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from app.harness.broker import MosquittoBroker
from gateway.mqtt_session import BrokerAddress
from gateway.sparkplug_decode import COMPRESSED_UUID
from gateway.sparkplug_proto import DOUBLE, STRING, UINT64, Payload

CELL = "bench/line-1/node-1"
STALL_S = 15.0


def _messages(group: str, per_message: int, count: int, *, compressed: bool) -> tuple[bytes, list[bytes]]:
    birth = Payload(timestamp=int(time.time() * 1000), seq=0)
    birth.metrics.add(name="bdSeq", datatype=UINT64, long_value=0)
    for i in range(per_message):
        birth.metrics.add(name=f"m{i}", alias=i + 1, datatype=DOUBLE, double_value=0.0)
    out: list[bytes] = []
    t0 = int(time.time() * 1000) - count
    for k in range(count):
        p = Payload(timestamp=t0 + k, seq=(k + 1) % 256)
        for i in range(per_message):
            p.metrics.add(alias=i + 1, double_value=k + i / 1000)  # datatype from the birth, as nodes send it
        raw = p.SerializeToString()
        if compressed:
            env = Payload(uuid=COMPRESSED_UUID, body=zlib.compress(raw))
            env.metrics.add(name="algorithm", datatype=STRING, string_value="DEFLATE")
            raw = env.SerializeToString()
        out.append(raw)
    return birth.SerializeToString(), out


def _client(host: str, port: int, name: str) -> paho.Client:
    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"{name}-{uuid.uuid4().hex[:6]}")
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(host, port)
    c.loop_start()
    return c


def _publish_all(client: paho.Client, topic: str, payloads: list[bytes]) -> None:
    infos = [client.publish(topic, p, qos=1) for p in payloads]
    for info in infos:
        info.wait_for_publish(60)


def _wait_quiet(done: threading.Event, latest: Any, *, stall_s: float = STALL_S) -> None:
    """Until ``done`` is set, or nothing new arrived for ``stall_s`` (``latest()`` is the newest arrival time):
    messages the broker dropped never come, and a run that lost some must end and say so, not wait forever."""
    start = time.time()
    while not done.wait(0.5):
        if time.time() - max(latest(), start) > stall_s:
            return


def _bare_child(host: str, port: int, topic: str, *, expected: int, per_message: int, q: Any) -> None:
    got = 0
    done = threading.Event()
    last = 0.0

    def on_message(c: Any, u: Any, msg: Any) -> None:
        nonlocal got, last
        got += 1
        last = time.time()
        if got >= expected:
            done.set()

    c = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bare-{uuid.uuid4().hex[:6]}")
    c.on_message = on_message
    c.connect(host, port)
    c.subscribe(topic, qos=1)
    c.loop_start()
    q.put("ready")
    _wait_quiet(done, lambda: last)
    q.put((got * per_message, last))
    c.loop_stop()
    c.disconnect()


def _gateway_child(doc: dict[str, Any], url: str, state_dir: str, stop_after_s: float) -> None:
    from datafactory.config.loader import validate_document
    from gateway.runner import Gateway

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(stop_after_s, stop.set)
        await Gateway(validate_document(doc), mqtt_url=url, state_dir=Path(state_dir)).run(stop)

    asyncio.run(main())


def _plant(enterprise: str, group: str, url: str, per_message: int) -> dict[str, Any]:
    metrics = [
        {"edge_node": "n1", "metric": f"m{i}", "cell": CELL, "signal": f"m{i}", "meaning": "generic"}
        for i in range(per_message)
    ]
    return {
        "version": 1,
        "enterprise": {"id": enterprise, "name": "基准", "credit_code": "91350100M000100Y43",
                       "industry_code": "C3484", "town": "松山湖", "size_class": "small", "ownership": "private"},
        "site": {"id": "site-1"},
        "gateway": {"id": "gw-1", "batch_max_samples": 5000, "batch_max_ms": 50, "status_interval_s": 1},
        "areas": [{"id": "bench", "lines": [{"id": "line-1", "cells": [{"id": "node-1"}]}]}],
        "sources": [{"kind": "sparkplug", "id": "spb", "broker_url": url, "group_id": group,
                     "rebirth_holdoff_s": 5, "metrics": metrics}],
    }  # fmt: skip


def _gateway_phase(args: argparse.Namespace, url: str, *, compressed: bool) -> tuple[int, float, int]:
    broker = BrokerAddress.parse(url)
    host, port = broker.host, broker.port
    enterprise = f"b{uuid.uuid4().hex[:8]}"
    group = f"bench-{enterprise}"
    birth, payloads = _messages(group, args.metrics_per_message, args.messages, compressed=compressed)
    expected = args.metrics_per_message * (args.messages + 1)  # the birth's values count too
    seen = 0
    done = threading.Event()
    last = 0.0
    counters: dict[str, int] = {}

    def on_message(c: Any, u: Any, msg: Any) -> None:
        nonlocal seen, last
        if msg.topic.endswith("/status"):  # the gateway's own count of lost messages (sequence gaps)
            counters.update(orjson.loads(msg.payload).get("sources", {}).get("spb", {}))
            return
        seen += len(orjson.loads(msg.payload)["samples"])
        last = time.time()
        if seen >= expected:
            done.set()

    counter = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"count-{enterprise}")
    counter.on_message = on_message
    counter.connect(host, port)
    counter.subscribe(f"df/v1/{enterprise}/+/+/+/+/data", qos=1)
    counter.subscribe(f"df/v1/{enterprise}/+/_gw/+/status", qos=1)
    counter.loop_start()
    node = _client(host, port, "edge")
    with tempfile.TemporaryDirectory() as state:
        ctx = mp.get_context("spawn")
        proc = ctx.Process(target=_gateway_child, args=(_plant(enterprise, group, url, args.metrics_per_message),
                                                        url, state, 600.0))  # fmt: skip
        proc.start()
        time.sleep(4.0)  # the gateway connects and subscribes (its rebirth request finds nobody yet)
        node.publish(f"spBv1.0/{group}/NBIRTH/n1", birth, qos=1).wait_for_publish(10)
        time.sleep(0.5)
        t0 = time.time()
        _publish_all(node, f"spBv1.0/{group}/NDATA/n1", payloads)
        _wait_quiet(done, lambda: last)
        rate = (seen - args.metrics_per_message) / max(last - t0, 1e-6)
        time.sleep(1.5)  # one more status (every 1 s) with the final counters
        proc.terminate()
        proc.join(10)
    node.loop_stop()
    node.disconnect()
    counter.loop_stop()
    counter.disconnect()
    return seen, rate, int(counters.get("seq_gaps", 0))


def _bare_phase(args: argparse.Namespace, url: str) -> tuple[int, float]:
    broker = BrokerAddress.parse(url)
    host, port = broker.host, broker.port
    group = f"bench-bare-{uuid.uuid4().hex[:8]}"
    _, payloads = _messages(group, args.metrics_per_message, args.messages, compressed=False)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    topic = f"spBv1.0/{group}/NDATA/n1"
    proc = ctx.Process(
        target=_bare_child,
        args=(host, port, topic),
        kwargs={"expected": len(payloads), "per_message": args.metrics_per_message, "q": q},
    )
    proc.start()
    q.get(timeout=30)
    time.sleep(0.5)
    node = _client(host, port, "edge")
    t0 = time.time()
    _publish_all(node, topic, payloads)
    metrics, last = q.get(timeout=600)
    proc.join(10)
    node.loop_stop()
    node.disconnect()
    return metrics, float(metrics / max(last - t0, 1e-6))


def _timescaledb() -> bool | None:
    try:
        import psycopg

        url = os.environ.get("DATAFACTORY_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'").fetchone()
            return bool(row and row[0])
    except Exception:  # the benchmark does not need the database; report what we could see
        return None


@contextlib.contextmanager
def _broker(workdir: Path) -> Iterator[str]:
    """A private Mosquitto whose per-client queue is unbounded: the node publishes a phase's messages as fast as
    the broker takes them, far faster than any subscriber that decodes them drains them, and the shared broker's
    default queue (1,000 messages per client) then drops the overflow, so the gateway would be measured on what
    was left. ``DATAFACTORY_MQTT_URL``, when set, is used as it is (its queue limits are its own)."""
    url = os.environ.get("DATAFACTORY_MQTT_URL")
    if url:
        yield url
        return
    config = "max_queued_messages 0\nmax_inflight_messages 0\n"
    with MosquittoBroker(data_dir=workdir / "mq", extra_config=config, persistence=False) as broker:
        yield broker.url


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="a tenth of the messages (< 2 min)")
    ap.add_argument("--messages", type=int, default=2000, help="NDATA messages per phase")
    ap.add_argument("--metrics-per-message", type=int, default=500, help="metrics in every message")
    args = ap.parse_args()
    if args.quick:
        args.messages = max(50, args.messages // 10)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="df-bench-spb-") as tmp, _broker(Path(tmp)) as url:
        seen_bare, bare = _bare_phase(args, url)
        print(f"bare paho subscriber: {bare:,.0f} metrics/s ({seen_bare} metrics)", file=sys.stderr)
        seen, plain, gaps = _gateway_phase(args, url, compressed=False)
        print(f"gateway, uncompressed: {plain:,.0f} metrics/s ({seen} samples, {gaps} seq gaps)", file=sys.stderr)
        seen_c, packed, gaps_c = _gateway_phase(args, url, compressed=True)
        print(f"gateway, DEFLATE: {packed:,.0f} metrics/s ({seen_c} samples, {gaps_c} seq gaps)", file=sys.stderr)
    total = args.messages * args.metrics_per_message
    result = {
        "benchmark": "sparkplug",
        "metrics": total,
        "metrics_per_message": args.metrics_per_message,
        "metrics_per_s": round(plain),
        "metrics_per_s_compressed": round(packed),
        "bare_subscriber_metrics_per_s": round(bare),
        "ratio_vs_bare": round(plain / bare, 3) if bare else None,
        "all_delivered": seen >= total and seen_c >= total and seen_bare >= total,
        # messages the broker dropped before the gateway read them (its sequence gaps), per gateway phase
        "seq_gaps": [gaps, gaps_c],
        "load_avg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # before and after: shared box
        "cpu_count": os.cpu_count(),
        "timescaledb": _timescaledb(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
