"""S7 throughput: items per second one gateway process reads and publishes, against a bare snap7 client.

    python -m benchmarks.s7            # 1,000 REAL items in one data block, 5 rounds of 10 s phases
    python -m benchmarks.s7 --quick    # 200 items, 3 rounds of 4 s phases

python-snap7's server (``simulator.s7_server``) runs in its own process. Phases against the same server, the first
two alternating for five rounds (three with ``--quick``) (``benchmarks.gateway_process.alternate``):

1. **bare client** — snap7's async client sending the same multi-variable read requests back to back (20 items
   each, packed to the negotiated PDU, which is what the gateway sends) and taking the replies, without
   decoding them: the reference;
2. **gateway** — ``datafactory gateway run`` as its own process, one poll group at 1 ms (so it polls back to
   back), ``report: every_poll``; a subscriber on the broker counts the samples that arrive;
3. **requests** — the gateway's S7 adapter alone, batched and unbatched (one item per request), counting
   requests per second.

Last stdout line: JSON with items, rate_hz (polls per second the gateway achieved), gateway_values_per_s and
bare_client_values_per_s (medians), ratio_vs_bare (the median of the rounds' ratios), ratio_vs_bare_each,
gateway_cpu_us_per_value, cpu_steal_percent, requests_per_s, requests_per_s_uncoalesced, items_per_request,
cpu_count, timescaledb.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

from benchmarks.gateway_process import (
    POLLED_CELL,
    alternate,
    polled_plant,
    requests_per_s,
    timescaledb,
)

DB = 1


def _address(i: int) -> str:
    return f"DB{DB}.DBD{4 * i}:REAL"


def serve(port: int, items: int) -> None:
    from simulator.s7_server import S7DeviceServer

    server = S7DeviceServer(port, dbs={DB: 4 * items}).start()
    for i in range(items):
        server.write(_address(i), float(i) + 0.5)
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.stop()


async def bare(port: int, items: int, duration: float) -> tuple[float, int]:
    """Items per second and items per request of snap7's client sending the gateway's requests."""
    from snap7.async_client import AsyncClient
    from snap7.type import Area

    from datafactory.config.s7 import parse_s7_address
    from gateway.sources.s7 import pack_requests

    client = AsyncClient()
    await client.connect("127.0.0.1", 0, 1, tcp_port=port)
    addrs = [parse_s7_address(_address(i)) for i in range(items)]
    batches = pack_requests(addrs, list(range(items)), int(client.pdu_length))
    requests = [
        client.protocol.build_multi_read_request([(int(Area.DB), a.db, a.start, a.size) for a in (addrs[i] for i in b)])
        for b in batches
    ]
    n, end = 0, time.monotonic() + duration
    start = time.monotonic()
    while time.monotonic() < end:
        for request, batch in zip(requests, batches, strict=True):
            await client._send_receive(request)
            n += len(batch)
    elapsed = time.monotonic() - start
    await client.disconnect()
    return n / elapsed, max(len(b) for b in batches)


def _source(port: int, items: int) -> dict[str, Any]:
    return {
        "kind": "s7",
        "id": "bench",
        "host": "127.0.0.1",
        "port": port,
        "report": "every_poll",
        "poll_groups": [{"name": "default", "interval_ms": 1}],
        "items": [
            {"address": _address(i), "cell": POLLED_CELL, "signal": f"v{i}", "meaning": "generic"}
            for i in range(items)
        ],
    }


def _plant(enterprise: str, port: int, items: int) -> dict[str, Any]:
    return polled_plant(enterprise, _source(port, items))


async def adapter_requests(port: int, items: int, duration: float, *, batch: bool) -> float:
    from datafactory.config.loader import validate_document
    from gateway.sources.s7 import S7Adapter

    src = validate_document(_plant("acme", port, items)).sources[0]
    return await requests_per_s(S7Adapter(src, batch=batch), duration)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="200 items, 5 s phases")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--items", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.items)
        return
    from tests.support.gateway_env import free_port

    items, duration, warmup = (200, 4.0, 2.0) if args.quick else (1000, 10.0, 5.0)
    mqtt_url = os.environ.get("DATAFACTORY_MQTT_URL", "mqtt://127.0.0.1:1883")
    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.s7", "--serve", str(port), "--items", str(items)]
    server = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"READY"
        per_request = 0

        def bare_phase() -> float:
            nonlocal per_request
            rate, per_request = asyncio.run(bare(port, items, duration))
            return rate

        rounds = alternate(bare_phase, lambda enterprise: _plant(enterprise, port, items), mqtt_url, warmup_s=warmup,
                           duration_s=duration, what="items", rounds=3 if args.quick else 5).figures()
        req = asyncio.run(adapter_requests(port, items, duration / 2, batch=True))
        req_unbatched = asyncio.run(adapter_requests(port, items, duration / 2, batch=False))
        print(f"requests/s batched {req:,.0f}, one item per request {req_unbatched:,.0f}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    print(
        json.dumps(
            {
                "benchmark": "s7",
                "items": items,
                "rate_hz": round(rounds["gateway_values_per_s"] / items, 2),
                **rounds,
                "requests_per_s": round(req, 1),
                "requests_per_s_uncoalesced": round(req_unbatched, 1),
                "items_per_request": per_request,
                "cpu_count": os.cpu_count(),
                "timescaledb": timescaledb(),
            }
        )
    )


if __name__ == "__main__":
    main()
