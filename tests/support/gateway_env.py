"""Test support for gateway tests: free ports, an in-process asyncua server, an MQTT collector, configs."""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from datafactory.config.loader import validate_document
from datafactory.config.models import PlantConfig
from datafactory.contract.payload import decode_batch
from datafactory.contract.sample import Sample


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def plant_doc(
    enterprise: str, *, sources: list[dict[str, Any]], cells: list[str], gateway: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A minimal valid plant config document with the given 'area/line/cell' paths."""
    areas: dict[str, dict[str, list[str]]] = {}
    for path in cells:
        area, line, cell = path.split("/")
        areas.setdefault(area, {}).setdefault(line, []).append(cell)
    return {
        "version": 1,
        "enterprise": {
            "id": enterprise,
            "name": "测试企业",
            "credit_code": "91350100M000100Y43",
            "industry_code": "C3484",
            "town": "松山湖",
            "size_class": "small",
            "ownership": "private",
        },
        "site": {"id": "site-1"},
        "gateway": {"id": "gw-1", "batch_max_ms": 100, "status_interval_s": 1, **(gateway or {})},
        "areas": [
            {
                "id": a,
                "lines": [
                    {"id": ln, "cells": [{"id": c, "ideal_cycle_time_s": 2.0, "machine_class": "press"} for c in cs]}
                    for ln, cs in lines.items()
                ],
            }
            for a, lines in areas.items()
        ],
        "sources": sources,
    }


def opcua_source(endpoint: str, nodes: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    """An OPC-UA source ``plc`` for a local test server: policy none, publishing every 100 ms, items sampled at every
    change; ``fields`` add or override any source field."""
    return {"kind": "opcua", "id": "plc", "endpoint": endpoint, "security": {"policy": "none", "mode": "none"},
            "publishing_interval_ms": 100, "sampling_interval_ms": 0, "nodes": nodes, **fields}


def generic_nodes(names: Iterable[str], cell: str, **fields: Any) -> list[dict[str, Any]]:
    """Nodes ``ns=2;s=<name>`` of meaning generic, signal named ``<name>`` in lower case."""
    return [{"node_id": f"ns=2;s={n}", "cell": cell, "signal": n.lower(), "meaning": "generic", **fields}
            for n in names]


def plant(enterprise: str, **kw: Any) -> PlantConfig:
    return validate_document(plant_doc(enterprise, **kw))


@dataclass
class Collector:
    """Subscribes to a topic filter on a real broker and keeps every message, decoded where it is data."""

    messages: list[tuple[str, bytes, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def data_samples(self) -> list[tuple[str, Sample]]:
        out: list[tuple[str, Sample]] = []
        with self.lock:
            msgs = list(self.messages)
        for topic, payload, _ in msgs:
            if topic.endswith("/data") and payload:
                cell = "/".join(topic.split("/")[4:7])
                # On the wire a missing value is null (None once decoded); the gateway's tests compare with its
                # in-memory marker, NaN.
                out.extend(
                    (cell, s._replace(value=math.nan) if s.value is None else s)
                    for s in decode_batch(payload).batch.samples
                )
        return out

    def last(self, suffix: str) -> bytes | None:
        with self.lock:
            for topic, payload, _ in reversed(self.messages):
                if topic.endswith(suffix) and payload:  # an empty payload is a cleared retained message
                    return payload
        return None

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return bool(predicate())


@contextmanager
def collect(mqtt_url: str, topic_filter: str, *, client_id: str = "", clean: bool = True) -> Iterator[Collector]:
    from urllib.parse import urlsplit

    parts = urlsplit(mqtt_url)
    col = Collector()
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
    ready = threading.Event()

    def on_connect(c: paho.Client, u: Any, f: Any, rc: Any, p: Any) -> None:
        c.subscribe(topic_filter, qos=1)

    def on_subscribe(c: paho.Client, u: Any, mid: Any, rcs: Any, p: Any) -> None:
        ready.set()

    def on_message(c: paho.Client, u: Any, msg: paho.MQTTMessage) -> None:
        with col.lock:
            col.messages.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.reconnect_delay_set(min_delay=1, max_delay=1)  # fault tests restart the broker: come back quickly
    client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    client.loop_start()
    assert ready.wait(10), "collector could not subscribe"
    try:
        yield col
    finally:
        client.disconnect()
        client.loop_stop()


class OpcUaTestServer:
    """An asyncua server running in its own thread and event loop, with float variables under ns 2."""

    def __init__(self, port: int, names: list[str] | dict[str, Any], **security: Any) -> None:
        self.port = port
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/df-test/"
        self.names = names if isinstance(names, dict) else dict.fromkeys(names, 0.0)
        self.security = security
        self.loop = asyncio.new_event_loop()
        self.server: Any = None
        self.nodes: dict[str, Any] = {}
        self.ns = 2
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def call(self, coro: Any, timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _start(self) -> None:
        from asyncua import Server, ua

        server = Server(user_manager=self.security.get("user_manager"))
        await server.init()
        server.set_endpoint(self.endpoint)
        if self.security.get("setup") is not None:
            await self.security["setup"](server)
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.ns = await server.register_namespace("urn:datafactory:test")
        objects = server.nodes.objects
        folder = await objects.add_object(self.ns, "Plant")
        for name, initial in self.names.items():
            var = await folder.add_variable(f"ns={self.ns};s={name}", name, initial)
            self.nodes[name] = var
        await server.start()
        self.server = server

    def start(self) -> OpcUaTestServer:
        self.call(self._start())
        return self

    def write(self, name: str, value: Any) -> None:
        self.call(self.nodes[name].write_value(value))

    def stop(self) -> None:
        if self.server is not None:
            self.call(self.server.stop())
            self.server = None

    def close(self) -> None:
        self.stop()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


class GatewayThread:
    """A ``gateway.runner.Gateway`` running in its own thread and event loop (stopped on exit)."""

    def __init__(self, config: PlantConfig, *, mqtt_url: str, state_dir: Any) -> None:
        from gateway.runner import Gateway

        self.loop = asyncio.new_event_loop()
        self.gateway: Any = None
        self._config, self._mqtt_url, self._state_dir = config, mqtt_url, state_dir
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._ready = threading.Event()
        self._gateway_cls = Gateway
        self.error: BaseException | None = None

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def main() -> None:
            self._stop = asyncio.Event()
            self.gateway = self._gateway_cls(self._config, mqtt_url=self._mqtt_url, state_dir=self._state_dir)
            self._ready.set()
            await self.gateway.run(self._stop)

        try:
            self.loop.run_until_complete(main())
        except BaseException as err:  # surfaced to the test
            self.error = err
            self._ready.set()

    def __enter__(self) -> GatewayThread:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(20)
        assert not self._thread.is_alive(), "gateway did not stop"
        clear_retained(self._mqtt_url, self._config.enterprise.id)


def clear_retained(mqtt_url: str, enterprise: str) -> None:
    """Remove the retained meta/status/config messages a test gateway left on the (shared) broker."""
    from urllib.parse import urlsplit

    parts = urlsplit(mqtt_url)
    topics: list[str] = []
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.on_message = lambda c, u, m: topics.append(m.topic) if m.retain and m.payload else None
    try:
        client.connect(parts.hostname or "127.0.0.1", parts.port or 1883)
    except OSError:
        return  # a private broker that is already gone
    client.loop_start()
    client.subscribe(f"df/v1/{enterprise}/#")
    time.sleep(0.5)
    for topic in topics:
        client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


class CounterWriter:
    """Writes 1, 2, 3, … to every named variable of an ``OpcUaTestServer`` at ``rate_hz`` in a thread."""

    def __init__(self, server: OpcUaTestServer, names: list[str], rate_hz: float) -> None:
        self.server, self.names, self.period = server, names, 1.0 / rate_hz
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        from asyncua import ua

        async def write_all(value: float) -> None:
            for name in self.names:
                await self.server.nodes[name].write_value(ua.DataValue(ua.Variant(value, ua.VariantType.Double)))

        next_t = time.monotonic()
        while not self._stop.is_set():
            self.server.call(write_all(float(self.count + 1)))
            self.count += 1
            next_t += self.period
            time.sleep(max(0.0, next_t - time.monotonic()))

    def __enter__(self) -> CounterWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
