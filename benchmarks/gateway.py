"""Gateway throughput: OPC-UA data changes per second one gateway process delivers to the broker.

    python -m benchmarks.gateway            # 20,000 items at 1 Hz
    python -m benchmarks.gateway --quick    # 2,000 items, shorter

Simulated asyncua servers run in their own processes (items split over ``--servers``), every item changing at
``--rate-hz``, writes spread evenly over each period. Two phases measure against the same servers:

1. **bare client** — a separate process with one asyncua subscription per server that only counts the data
   changes in each publish response: the most asyncua itself can receive on this machine (the reference);
2. **gateway** — ``datafactory gateway run`` as a separate process, with a subscriber on the broker counting
   the samples that arrive (and how far behind their source timestamps they are).

Last stdout line: JSON with items, rate_hz, gateway_changes_per_s, bare_client_changes_per_s, ratio_vs_bare,
gateway_cpu_percent, bare_client_cpu_percent, max_lag_s, cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from datetime import UTC
from typing import Any

import psutil

from benchmarks.gateway_process import measure_gateway, timescaledb

SIGNALS_PER_CELL = 100
PUBLISHING_INTERVAL_MS = 500


# ---- simulated server (own process) -------------------------------------------------------------------
async def serve(port: int, items: int, offset: int, rate_hz: float) -> None:
    from asyncua import Server, ua

    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/bench/")
    server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    ns = await server.register_namespace("urn:datafactory:bench")
    ids = []
    folder: Any = None
    for i in range(offset, offset + items):
        if folder is None or i % SIGNALS_PER_CELL == 0:
            folder = await server.nodes.objects.add_object(ns, f"cell{i // SIGNALS_PER_CELL}")
        var = await folder.add_variable(f"ns={ns};s=b.{i}", f"b{i}", 0.0)
        ids.append(var.nodeid)
    await server.start()
    print("READY", flush=True)
    period = 1.0 / rate_hz
    slices = 20  # spread each period's writes over 20 slices so no client sees one huge burst
    per_slice = (len(ids) + slices - 1) // slices
    value = 0.0
    next_t = time.monotonic()
    while True:
        value += 1.0
        for s in range(slices):
            dv = ua.DataValue(ua.Variant(value, ua.VariantType.Double))
            for nid in ids[s * per_slice : (s + 1) * per_slice]:
                await server.write_attribute_value(nid, dv)
            next_t += period / slices
            await asyncio.sleep(max(0.0, next_t - time.monotonic()))


# ---- bare asyncua client (own process) ----------------------------------------------------------------
async def bare(endpoints: list[str], items_per_server: list[list[str]], warmup: float, duration: float) -> dict:
    from asyncua import Client, ua
    from asyncua.common.subscription import Subscription

    counted = {"n": 0, "lag": 0.0, "measuring": False}

    class Counting(Subscription):
        async def publish_callback(self, publish_result: ua.PublishResult) -> None:
            data = publish_result.NotificationMessage.NotificationData
            if not data or not counted["measuring"]:
                return
            now = time.time()
            for notif in data:
                if isinstance(notif, ua.DataChangeNotification):
                    counted["n"] += len(notif.MonitoredItems)
                    dv = notif.MonitoredItems[-1].Value
                    ts = dv.SourceTimestamp or dv.ServerTimestamp
                    if ts is not None:
                        ts = ts if ts.tzinfo else ts.replace(tzinfo=UTC)  # OPC-UA times are UTC
                        counted["lag"] = max(counted["lag"], now - ts.timestamp())

    clients = []
    for endpoint, node_ids in zip(endpoints, items_per_server, strict=True):
        client = Client(endpoint, timeout=30, watchdog_intervall=30)
        await client.connect()
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=PUBLISHING_INTERVAL_MS,
            RequestedLifetimeCount=300,
            RequestedMaxKeepAliveCount=10,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        sub = Counting(client.uaclient.session, params, handler=None, queue_maxsize=1)
        await sub.init()
        for start in range(0, len(node_ids), 1000):
            reqs = []
            for h, nid in enumerate(node_ids[start : start + 1000], start):
                rv = ua.ReadValueId(NodeId=ua.NodeId.from_string(nid), AttributeId=ua.AttributeIds.Value)
                mp = ua.MonitoringParameters(ClientHandle=h, SamplingInterval=0, QueueSize=10, DiscardOldest=True)
                reqs.append(ua.MonitoredItemCreateRequest(rv, ua.MonitoringMode.Reporting, mp))
            await sub.create_monitored_items(reqs)
        clients.append(client)
    await asyncio.sleep(warmup)
    proc = psutil.Process()
    cpu0, t0 = proc.cpu_times(), time.monotonic()
    counted["measuring"] = True
    await asyncio.sleep(duration)
    counted["measuring"] = False
    cpu1, t1 = proc.cpu_times(), time.monotonic()
    for client in clients:
        await client.disconnect()
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / (t1 - t0) * 100
    return {"changes_per_s": counted["n"] / (t1 - t0), "cpu_percent": cpu, "max_lag_s": counted["lag"]}


# ---- orchestration ------------------------------------------------------------------------------------
def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _node_ids(items: int, servers: int) -> list[list[str]]:
    per = items // servers
    return [[f"ns=2;s=b.{i}" for i in range(k * per, (k + 1) * per)] for k in range(servers)]


def _plant(enterprise: str, endpoints: list[str], node_ids: list[list[str]]) -> dict:
    cells = sorted({int(n.rsplit(".", 1)[1]) // SIGNALS_PER_CELL for ids in node_ids for n in ids})
    sources = []
    for k, (endpoint, ids) in enumerate(zip(endpoints, node_ids, strict=True)):
        nodes = []
        for nid in ids:
            i = int(nid.rsplit(".", 1)[1])
            nodes.append(
                {
                    "node_id": nid,
                    "cell": f"bench/line-1/cell-{i // SIGNALS_PER_CELL}",
                    "signal": f"s{i % SIGNALS_PER_CELL}",
                    "meaning": "generic",
                    "sampling_interval_ms": 0,
                }
            )
        sources.append(
            {
                "kind": "opcua",
                "id": f"sim-{k}",
                "endpoint": endpoint,
                "security": {"policy": "none", "mode": "none"},
                "publishing_interval_ms": PUBLISHING_INTERVAL_MS,
                "keepalive_timeout_s": 30,
                "nodes": nodes,
            }
        )
    return {
        "version": 1,
        "enterprise": {
            "id": enterprise,
            "name": "Benchmark",
            "credit_code": "91350100M000100Y43",
            "industry_code": "C3484",
            "town": "bench",
            "size_class": "small",
            "ownership": "private",
        },
        "site": {"id": "site-1"},
        "gateway": {"id": "gw-bench", "batch_max_samples": 500, "batch_max_ms": 200},
        "areas": [{"id": "bench", "lines": [{"id": "line-1", "cells": [{"id": f"cell-{c}"} for c in cells]}]}],
        "sources": sources,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2,000 items, short phases")
    ap.add_argument("--items", type=int, default=None)
    ap.add_argument("--rate-hz", type=float, default=1.0)
    ap.add_argument("--servers", type=int, default=None, help="simulated server processes")
    ap.add_argument("--duration", type=float, default=None, help="seconds measured per phase")
    ap.add_argument("--serve", nargs=3, type=int, metavar=("PORT", "ITEMS", "OFFSET"), help=argparse.SUPPRESS)
    ap.add_argument("--bare", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve[0], args.serve[1], args.serve[2], args.rate_hz))
        return
    if args.bare:
        spec = json.loads(args.bare)
        node_ids = _node_ids(spec["items"], spec["servers"])
        result = asyncio.run(bare(spec["endpoints"], node_ids, spec["warmup"], spec["duration"]))
        print(json.dumps(result), flush=True)
        return
    run(args)


def run(args: argparse.Namespace) -> None:
    items = args.items or (2_000 if args.quick else 20_000)
    servers = args.servers or (1 if items <= 5_000 else 2)
    duration = args.duration or (15.0 if args.quick else 40.0)
    warmup = 5.0 if args.quick else 10.0
    mqtt_url = os.environ.get("DATAFACTORY_MQTT_URL", "mqtt://127.0.0.1:1883")
    node_ids = _node_ids(items, servers)
    ports = [_free_port() for _ in range(servers)]
    endpoints = [f"opc.tcp://127.0.0.1:{p}/bench/" for p in ports]
    me = [sys.executable, "-m", "benchmarks.gateway", "--rate-hz", str(args.rate_hz)]
    procs: list[subprocess.Popen] = []
    print(f"starting {servers} simulated server(s) with {items} items at {args.rate_hz:g} Hz…", file=sys.stderr)
    try:
        for k, port in enumerate(ports):
            per = len(node_ids[k])
            procs.append(
                subprocess.Popen(
                    [*me, "--serve", str(port), str(per), str(k * per)],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            )
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "READY", "simulated server failed"
        print("phase 1: bare asyncua subscription client…", file=sys.stderr)
        spec = json.dumps(
            {"endpoints": endpoints, "items": items, "servers": servers, "warmup": warmup, "duration": duration}
        )
        out = subprocess.run([*me, "--bare", spec], capture_output=True, text=True, check=True).stdout
        bare_result = json.loads(out.strip().splitlines()[-1])
        print(
            f"  {bare_result['changes_per_s']:.0f} changes/s, CPU {bare_result['cpu_percent']:.0f} %", file=sys.stderr
        )
        print("phase 2: datafactory gateway…", file=sys.stderr)
        gw = _run_gateway(endpoints, node_ids, mqtt_url, warmup, duration)
        print(
            f"  {gw['changes_per_s']:.0f} changes/s, CPU {gw['cpu_percent']:.0f} %, max lag {gw['max_lag_s']:.2f} s",
            file=sys.stderr,
        )
    finally:
        for p in procs:
            p.kill()
            p.wait()
    result = {
        "items": items,
        "rate_hz": args.rate_hz,
        "gateway_changes_per_s": round(gw["changes_per_s"], 1),
        "bare_client_changes_per_s": round(bare_result["changes_per_s"], 1),
        "ratio_vs_bare": round(gw["changes_per_s"] / bare_result["changes_per_s"], 3)
        if bare_result["changes_per_s"]
        else None,
        "gateway_cpu_percent": round(gw["cpu_percent"], 1),
        "bare_client_cpu_percent": round(bare_result["cpu_percent"], 1),
        "max_lag_s": round(gw["max_lag_s"], 3),
        "bare_client_max_lag_s": round(bare_result["max_lag_s"], 3),
        "servers": servers,
        "duration_s": duration,
        "cpu_count": os.cpu_count(),
        "timescaledb": timescaledb(),
    }
    print(f"{'':<24}{'changes/s':>12}{'CPU %':>8}{'max lag s':>11}")
    print(
        f"{'bare asyncua client':<24}{bare_result['changes_per_s']:>12.0f}{bare_result['cpu_percent']:>8.0f}"
        f"{bare_result['max_lag_s']:>11.2f}"
    )
    print(f"{'datafactory gateway':<24}{gw['changes_per_s']:>12.0f}{gw['cpu_percent']:>8.0f}{gw['max_lag_s']:>11.2f}")
    print(json.dumps(result))


def _run_gateway(
    endpoints: list[str], node_ids: list[list[str]], mqtt_url: str, warmup: float, duration: float
) -> dict:
    # 20,000 items: config load and subscription creation take a while before the first data.
    gw = measure_gateway(lambda enterprise: _plant(enterprise, endpoints, node_ids), mqtt_url, warmup_s=warmup,
                         duration_s=duration, start_timeout_s=300)
    print(f"  gateway status: {gw.status.get('samples_per_s')} samples/s in, buffer {gw.status.get('buffer')}",
          file=sys.stderr)
    return {"changes_per_s": gw.per_s, "cpu_percent": gw.cpu_percent, "max_lag_s": gw.max_lag_s}


if __name__ == "__main__":
    main()
