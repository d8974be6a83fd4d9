"""Modbus throughput: registers per second one gateway process reads and publishes, against a bare pymodbus client.

    python -m benchmarks.modbus            # 2,000 holding registers (uint16), 5 rounds of 10 s phases
    python -m benchmarks.modbus --quick    # 500 registers, 3 rounds of 4 s phases

A pymodbus TCP server (``simulator.modbus_server``) runs in its own process. Phases against the same server, the
first two alternating for five rounds (three with ``--quick``) (``benchmarks.gateway_process.alternate``):

1. **bare client** — pymodbus's async client reading the registers back to back in blocks of 125 (the spec
   maximum; what the gateway's coalescing produces for contiguous registers): the reference;
2. **gateway** — ``datafactory gateway run`` as its own process, one poll group at 1 ms (so it polls back to
   back), ``report: every_poll``; a subscriber on the broker counts the samples that arrive;
3. **requests** — the gateway's Modbus adapter alone, coalesced and uncoalesced (one request per register),
   counting requests per second.

Last stdout line: JSON with registers, rate_hz (polls per second the gateway achieved), gateway_values_per_s and
bare_client_values_per_s (medians over the rounds), ratio_vs_bare (the median of each round's gateway ÷ bare),
ratio_vs_bare_each, gateway_cpu_us_per_value (the gateway process's CPU time per value published, median),
cpu_steal_percent (CPU time the hypervisor took during the rounds),
requests_per_s, requests_per_s_uncoalesced, cpu_count, timescaledb.
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

BLOCK = 125


def serve(port: int) -> None:
    import logging

    from simulator.modbus_server import ModbusDeviceServer, RegisterStore

    # CRITICAL: pymodbus logs every in-flight request as an error, with a hex dump, when the gateway stops.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)

    server = ModbusDeviceServer(RegisterStore([1]), port=port).start()
    print("READY", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        server.close()


async def bare(port: int, registers: int, duration: float) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    await client.connect()
    n, end = 0, time.monotonic() + duration
    start = time.monotonic()
    while time.monotonic() < end:
        for a in range(0, registers, BLOCK):
            rr = await client.read_holding_registers(a, count=min(BLOCK, registers - a), device_id=1)
            n += len(rr.registers)
    elapsed = time.monotonic() - start
    client.close()
    return n / elapsed


def _source(port: int, registers: int) -> dict[str, Any]:
    return {
        "kind": "modbus",
        "id": "bench",
        "port": port,
        "report": "every_poll",
        "poll_groups": [{"name": "default", "interval_ms": 1}],
        "registers": [
            {
                "table": "holding_register",
                "address": a,
                "cell": POLLED_CELL,
                "signal": f"r{a}",
                "meaning": "generic",
            }
            for a in range(registers)
        ],
    }


def _plant(enterprise: str, port: int, registers: int) -> dict[str, Any]:
    return polled_plant(enterprise, _source(port, registers))


async def adapter_requests(port: int, registers: int, duration: float, *, coalesce: bool) -> float:
    from datafactory.config.loader import validate_document
    from gateway.sources.modbus import ModbusAdapter

    src = validate_document(_plant("acme", port, registers)).sources[0]
    return await requests_per_s(ModbusAdapter(src, coalesce=coalesce), duration)  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 registers, 5 s phases")
    ap.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return
    from tests.support.gateway_env import free_port

    registers, duration, warmup = (500, 4.0, 2.0) if args.quick else (2000, 10.0, 5.0)
    mqtt_url = os.environ.get("DATAFACTORY_MQTT_URL", "mqtt://127.0.0.1:1883")
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "benchmarks.modbus", "--serve", str(port)], stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"READY"
        rounds = alternate(lambda: asyncio.run(bare(port, registers, duration)),
                           lambda enterprise: _plant(enterprise, port, registers), mqtt_url, warmup_s=warmup,
                           duration_s=duration, what="registers", rounds=3 if args.quick else 5).figures()
        req = asyncio.run(adapter_requests(port, registers, duration / 2, coalesce=True))
        req_unc = asyncio.run(adapter_requests(port, registers, duration / 2, coalesce=False))
        print(f"requests/s coalesced {req:,.0f}, uncoalesced {req_unc:,.0f}", file=sys.stderr)
    finally:
        server.terminate()
        server.wait(10)
    print(
        json.dumps(
            {
                "benchmark": "modbus",
                "registers": registers,
                "rate_hz": round(rounds["gateway_values_per_s"] / registers, 2),
                **rounds,
                "requests_per_s": round(req, 1),
                "requests_per_s_uncoalesced": round(req_unc, 1),
                "registers_per_request": BLOCK,
                "cpu_count": os.cpu_count(),
                "timescaledb": timescaledb(),
            }
        )
    )


if __name__ == "__main__":
    main()
