"""The city benchmark's load generator (``benchmarks.city``): plants of the demo plant's shape, each publishing as
its gateway does over its own MQTT connection. Runs in a process of its own; not a benchmark itself.

Per plant: 8 machine cells of 8 signals and the meter cell of 2 (66 signals). Rates: vibration 10 Hz; the three
counters, power and temperature 1 Hz; state and energy every 10 s (report by exception plus heartbeat); meter power
1 Hz, meter energy every 10 s. Every second each cell sends one ``df-json/2`` message (QoS 1) with the samples of
that second, like the gateway's one-second flush. The meter's power sample carries the publish time exactly: the
benchmark's lag probe. With ``flood_factor`` F a plant sends F samples where it would send one.
"""

from __future__ import annotations

import math
import random
import selectors
import time
from collections.abc import Iterable
from multiprocessing.synchronize import Event

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.contract.payload import SignalMeta, encode_batch, encode_meta
from datafactory.contract.sample import Sample
from datafactory.contract.topics import CellPath, TopicKind

MACHINES = 8
# name → samples per second (0.1: one every 10 s)
MACHINE_RATES = {"state": 0.1, "good_count": 1, "reject_count": 1, "total_count": 1, "power": 1, "energy": 0.1,
                 "vibration": 10, "temperature": 1}
METER_CELL = "meter"
PROBE_SIGNAL = "power"
METER_RATES = {PROBE_SIGNAL: 1, "energy": 0.1}
CELLS_PER_PLANT = MACHINES + 1
SIGNALS_PER_PLANT = MACHINES * len(MACHINE_RATES) + len(METER_RATES)
SAMPLES_PER_S_PER_PLANT = MACHINES * sum(MACHINE_RATES.values()) + sum(METER_RATES.values())


def cells(enterprise: str, plant: int) -> list[tuple[CellPath, dict[str, float]]]:
    site = f"plant-{plant:05d}"
    out = [(CellPath(enterprise, site, "area-1", "line-1", f"m{m:02d}"), MACHINE_RATES) for m in range(MACHINES)]
    out.append((CellPath(enterprise, site, "utilities", "main", METER_CELL), METER_RATES))
    return out


class Plant:
    def __init__(self, port: int, enterprise: str, index: int, flood_factor: int) -> None:
        self.index = index
        self.flood = flood_factor if index == 0 else 1
        self.cells = cells(enterprise, index)
        self.topics = [c.topic(TopicKind.DATA) for c, _ in self.cells]
        self.rng = random.Random(index)
        self.counters = [0.0] * MACHINES
        self.seq = 0
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"city-gw-{enterprise}-{index}-{self.rng.randrange(1 << 30):x}",
            protocol=mqtt.MQTTv5,
        )
        self.client.max_inflight_messages_set(100)
        # No network thread per plant: hundreds of threads would spend the generator's CPU on the GIL. One
        # selector loop in ``generate`` reads every plant's socket (PUBACKs); publishes write directly.
        self.client.connect("127.0.0.1", port, keepalive=60)
        for cell, rates in self.cells:
            meta = encode_meta([SignalMeta(name) for name in rates], gateway=f"gw-{index}")
            self.client.publish(cell.topic(TopicKind.META), meta, qos=1, retain=True)

    def tick(self, second: int) -> None:
        now_us = time.time_ns() // 1000
        self.seq += 1
        for c, ((_cell, rates), topic) in enumerate(zip(self.cells, self.topics, strict=True)):
            samples: list[Sample] = []
            for name, rate in rates.items():
                if rate < 1 and (second + c) % round(1 / rate) != 0:
                    continue
                n = max(1, int(rate)) * self.flood
                step = 1_000_000 // n
                for j in range(n):
                    samples.append(Sample(name, now_us - j * step, self._value(c, name, second), 0))
            self.client.publish(topic, encode_batch(samples, gateway=f"gw-{self.index}", seq=self.seq), qos=1)

    def _value(self, cell: int, name: str, second: int) -> float:
        if name.endswith("_count"):
            if cell < MACHINES:
                self.counters[cell] += 1
                return self.counters[cell]
            return 0.0
        if name == "state":
            return float(self.rng.choice((1, 1, 1, 2, 3)))
        if name == "energy":
            return round(1000.0 + second * 0.01, 2)
        if name == "vibration":
            return round(2.0 + 0.5 * math.sin(second / 7) + self.rng.random() * 0.1, 3)
        return round(20 + self.rng.random(), 1)

    def close(self) -> None:
        self.client.disconnect()


def generate(port: int, enterprise: str, plants: Iterable[int], flood_factor: int, stop: Event) -> None:
    """Publish for ``plants`` once a second until ``stop`` is set."""
    started = [Plant(port, enterprise, i, flood_factor) for i in plants]
    selector = selectors.DefaultSelector()
    for plant in started:
        sock = plant.client.socket()
        if sock is not None:
            selector.register(sock, selectors.EVENT_READ, plant.client)
    try:
        second = 0
        next_at = time.monotonic()
        while not stop.is_set():
            for plant in started:
                plant.tick(second)
            for plant in started:
                if plant.client.want_write():
                    plant.client.loop_write()
                plant.client.loop_misc()  # keepalive pings, retries of unacknowledged messages
            second += 1
            next_at += 1.0
            while (delay := next_at - time.monotonic()) > 0 and not stop.is_set():
                for key, _events in selector.select(timeout=min(delay, 0.1)):
                    key.data.loop_read()
    finally:
        for plant in started:
            plant.close()
        selector.close()
