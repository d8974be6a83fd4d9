"""The simulated plant as a real OPC-UA server (asyncua) plus its MQTT-native utility meter; with a
``FieldbusPlan``, some machines are served over Modbus TCP and S7 instead (``simulator.fieldbus``).

Namespace ``urn:datafactory:simulator`` (index 2); folders area/line/cell; one variable per signal with node id
``ns=2;s=<area>.<line>.<cell>.<signal>`` (Double, the state Int32). The model's samples are replayed in real time
× ``speed``; each write carries the SIMULATED time as SourceTimestamp. A value is written only when it changes,
and every write is counted per signal in ``emitted`` (and recorded by the optional recorder), which is what
end-to-end tests compare a database against.

    server = SimulatorServer(model, port=None, speed=60)
    await server.start()          # serving and replaying
    ...
    await server.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import socket
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import cast

from asyncua import Server, ua

from datafactory.contract.sample import us_to_datetime
from datafactory.errors import ConnectionLost
from simulator.fieldbus import FieldbusMachines, FieldbusPlan
from simulator.layout import NAMESPACE_URI, SIG_STATE, SIGNALS_PER_MACHINE
from simulator.model import PlantModel
from simulator.mqtt_device import MeterPublisher
from simulator.plant_config import meter_topic as default_meter_topic
from simulator.truth import EmittedSink

log = logging.getLogger(__name__)
_FLUSH_S = 1.0
_BATCH = 2000


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class SimulatorServer:
    def __init__(
        self,
        model: PlantModel,
        *,
        host: str = "127.0.0.1",
        port: int | None = 4840,
        speed: float = 1.0,
        mqtt_url: str | None = None,
        device_topic_prefix: str = "sim",
        meter_topic: str | None = None,
        recorder: EmittedSink | None = None,
        autoplay: bool = True,
        fieldbus: FieldbusPlan | None = None,
    ) -> None:
        """``port`` 0/None picks a free port; without ``mqtt_url`` the utility meter is not published. The meter
        publishes to ``meter_topic``, by default ``<device_topic_prefix>/<enterprise>/utilities/main-meter``."""
        if speed <= 0:
            raise ValueError(f"speed must be positive, got {speed}")
        self.model = model
        self.host = host
        self.port = port or free_port(host)
        self.speed = speed
        self.recorder = recorder
        self.autoplay = autoplay
        self.emitted: dict[str, int] = {}  # writes / publishes per 'area/line/cell/signal'
        self.sim_time_us = model.start_us
        topic = meter_topic or default_meter_topic(device_topic_prefix, model.layout)
        self._meter = MeterPublisher(mqtt_url, topic) if mqtt_url else None
        self._server: Server | None = None
        self._nodes: list[ua.NodeId | None] = []
        self._last: list[float | None] = []
        self._samples: Iterator[tuple[int, int, float]] | None = None
        self._pending: tuple[int, int, float] | None = None
        self._task: asyncio.Task[None] | None = None
        self._done = asyncio.Event()
        self._meter_kw: tuple[int | None, float] = (None, 0.0)
        self._initial_meter: list[tuple[int, int, float]] = []
        self._fetch: asyncio.Future[list[tuple[int, int, float]]] | None = None
        wanted = fieldbus is not None and (fieldbus.protocols or fieldbus.meter_serial)
        self.fieldbus = FieldbusMachines(model.layout, fieldbus) if fieldbus is not None and wanted else None

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/datafactory/sim/"

    @property
    def meter_topic(self) -> str | None:
        return self._meter.topic if self._meter else None

    @property
    def meter_published(self) -> int:
        return self._meter.published if self._meter else 0

    async def start(self) -> None:
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("datafactory simulator")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        idx = await server.register_namespace(NAMESPACE_URI)
        if idx != 2:
            raise RuntimeError(f"namespace {NAMESPACE_URI} got index {idx}; node ids assume 2")
        self._samples = self.model.samples()
        initial = self._initial_values()
        await self._build_address_space(server, initial)
        try:
            await server.start()
        except OSError as err:
            raise ConnectionLost(self.endpoint, f"cannot listen: {err}") from err
        if self.fieldbus is not None:
            try:
                await asyncio.to_thread(self.fieldbus.start)
            except OSError as err:
                await server.stop()
                raise ConnectionLost("modbus/s7 simulator", f"cannot listen: {err}") from err
        self._server = server
        if self._meter is not None:
            self._meter.start()
        if self.autoplay:
            self.play()

    def play(self) -> None:
        """Start replaying the model in real time × speed (``start`` does it unless ``autoplay=False``)."""
        if self._task is None:
            for i, t_us, value in self._initial_meter:
                self._meter_sample(i, t_us, value)
            self._initial_meter = []
            self._task = asyncio.create_task(self._replay(), name="simulator-replay")

    async def wait_done(self, timeout: float | None = None) -> None:
        """Wait until a finite model has been replayed to its end; raise what stopped the replay if it failed."""
        await asyncio.wait_for(self._done.wait(), timeout)
        task = self._task
        if task is not None and task.done() and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._fetch is not None:  # let the worker finish its batch before anyone reads the model's truth
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._fetch)
            self._fetch = None
        if self._meter is not None:
            await asyncio.to_thread(self._meter.stop)
        if self._server is not None:
            await self._server.stop()
            self._server = None
        if self.fieldbus is not None:
            await asyncio.to_thread(self.fieldbus.stop)
        if self.recorder is not None:
            self.recorder.flush()

    # ---- address space ---------------------------------------------------------------------------------------
    def _initial_values(self) -> dict[int, tuple[int, float]]:
        """The model's samples at the start time become the variables' initial values (counted as emitted)."""
        assert self._samples is not None
        out: dict[int, tuple[int, float]] = {}
        for item in self._samples:
            if item[0] != self.model.start_us:
                self._pending = item
                break
            out[item[1]] = (item[0], item[2])
        return out

    async def _build_address_space(self, server: Server, initial: dict[int, tuple[int, float]]) -> None:
        folders: dict[str, object] = {}
        keys = self.model.signal_keys
        machine_signals = len(self.model.layout.machines) * SIGNALS_PER_MACHINE
        self._last = [None] * len(keys)
        self._nodes = [None] * len(keys)
        fieldbus = self.fieldbus
        for i, (cell_path, signal) in enumerate(keys[:machine_signals]):
            if fieldbus is not None and fieldbus.serves(i):
                t_us, value = initial.get(i, (self.model.start_us, 0.0))
                fieldbus.write(i, value)
                if i in initial:
                    self._count(i, t_us, value)
                continue
            parent = await self._folder(server, folders, cell_path)
            is_state = i % SIGNALS_PER_MACHINE == SIG_STATE
            vtype = ua.VariantType.Int32 if is_state else ua.VariantType.Double
            t_us, value = initial.get(i, (self.model.start_us, 0.0))
            nid = _node(f"{cell_path.replace('/', '.')}.{signal}")
            initial_value = int(value) if is_state else value
            var = await parent.add_variable(nid, signal, initial_value, vtype)  # type: ignore[attr-defined]
            self._nodes[i] = var.nodeid
            if i in initial:
                await server.write_attribute_value(var.nodeid, self._datavalue(value, vtype, t_us))
                self._count(i, t_us, value)
        # The meter's first reading is published when replay starts, not now: plain MQTT keeps nothing for a
        # subscriber that connects later, so a reading sent before play() would reach nobody.
        self._initial_meter = [(i, *initial[i]) for i in range(machine_signals, len(keys)) if i in initial]
        if fieldbus is not None and fieldbus.meter_store is not None:  # registers hold it for the first poll
            for i, t_us, value in self._initial_meter:
                self._meter_sample(i, t_us, value)
            self._initial_meter = []

    async def _folder(self, server: Server, folders: dict[str, object], cell_path: str) -> object:
        parent: object = server.nodes.objects
        path = ""
        for part in cell_path.split("/"):
            path = f"{path}.{part}" if path else part
            if path not in folders:
                folders[path] = await parent.add_folder(_node(path), part)  # type: ignore[attr-defined]
            parent = folders[path]
        return parent

    @staticmethod
    def _datavalue(value: float, vtype: ua.VariantType, t_us: int) -> ua.DataValue:
        v = int(value) if vtype is ua.VariantType.Int32 else value
        return ua.DataValue(
            ua.Variant(v, vtype),
            SourceTimestamp=cast(ua.DateTime, us_to_datetime(t_us)),
            ServerTimestamp=cast(ua.DateTime, datetime.now(UTC)),
        )

    def _count(self, i: int, t_us: int, value: float) -> None:
        cell_path, signal = self.model.signal_keys[i]
        key = f"{cell_path}/{signal}"
        self.emitted[key] = self.emitted.get(key, 0) + 1
        self._last[i] = value
        if self.recorder is not None:
            self.recorder.add(cell_path, signal, t_us, value)

    # ---- replay ----------------------------------------------------------------------------------------------
    async def _replay(self) -> None:
        assert self._samples is not None and self._server is not None
        server = self._server
        start_us = self.model.start_us
        real0 = time.monotonic()
        last_flush = real0
        machine_signals = len(self.model.layout.machines) * SIGNALS_PER_MACHINE
        fieldbus = self.fieldbus
        samples = self._samples
        if self._pending is not None:
            samples = _prepend(self._pending, samples)
            self._pending = None
        try:
            async for t_us, i, value in self._prefetched(samples):
                due = real0 + (t_us - start_us) / 1e6 / self.speed
                now = time.monotonic()
                if self.recorder is not None and now - last_flush > _FLUSH_S:
                    self.recorder.flush()
                    last_flush = now
                if due > now:
                    await asyncio.sleep(due - now)
                self.sim_time_us = t_us
                if i >= machine_signals:
                    self._meter_sample(i, t_us, value)
                    continue
                if self._last[i] == value:
                    continue  # unchanged: OPC-UA would not report it, so it is not emitted
                if fieldbus is not None and fieldbus.serves(i):
                    fieldbus.write(i, value)
                    self._count(i, t_us, value)
                    continue
                vtype = ua.VariantType.Int32 if i % SIGNALS_PER_MACHINE == SIG_STATE else ua.VariantType.Double
                node = self._nodes[i]
                assert node is not None
                await server.write_attribute_value(node, self._datavalue(value, vtype, t_us))
                self._count(i, t_us, value)
        finally:
            self._done.set()  # also on failure, so nobody waits forever; wait_done raises the error
            if self.recorder is not None:
                self.recorder.flush()

    async def _prefetched(self, samples: Iterator[tuple[int, int, float]]) -> AsyncIterator[tuple[int, int, float]]:
        """The model runs in a worker thread, one batch ahead: simulating a long calendar segment of many
        machines takes CPU seconds, and the OPC-UA server must keep answering meanwhile."""
        loop = asyncio.get_running_loop()

        def take() -> list[tuple[int, int, float]]:
            return list(itertools.islice(samples, _BATCH))

        self._fetch = loop.run_in_executor(None, take)
        while True:
            batch = await self._fetch
            if not batch:
                return
            self._fetch = loop.run_in_executor(None, take)
            for item in batch:
                yield item

    def _meter_sample(self, i: int, t_us: int, value: float) -> None:
        """Meter power and energy arrive as a pair at each meter tick; publish the pair as one JSON message."""
        signal = self.model.signal_keys[i][1]
        if signal == "power":
            self._meter_kw = (t_us, value)
            return
        kw_t, kw = self._meter_kw
        if kw_t != t_us:
            return
        fieldbus = self.fieldbus
        if fieldbus is not None and fieldbus.meter_store is not None:  # the meter on Modbus RTU: polled registers
            fieldbus.write_meter(kw, value)
            for j, v in ((i - 1, kw), (i, value)):
                if self._last[j] != v:  # an unchanged register is not a new reading for a poller
                    self._count(j, t_us, v)
            return
        if self._meter is None:
            return
        self._meter.publish(t_us, kw, value)
        self._count(i - 1, t_us, kw)
        self._count(i, t_us, value)


def _node(identifier: str) -> ua.NodeId:
    return ua.NodeId.from_string(f"ns=2;s={identifier}")


def _prepend(first: tuple[int, int, float], rest: Iterator[tuple[int, int, float]]) -> Iterator[tuple[int, int, float]]:
    yield first
    yield from rest
