"""The gateway runner: owns the sources, the batcher, the store-and-forward buffer and the broker session.

Every task (one per source, the broker session, the timers) is owned by one ``Supervisor``: a task that dies
is logged once and restarted, a configuration error stops the gateway (non-zero exit).

Each source task: open → stream readings into the batcher → on ``ConnectionLost`` close, write a comm-lost
marker for every signal of the source (NaN, quality Bad_NoCommunication) so the gap is visible downstream, and
open a fresh adapter, which re-subscribes. Gaps survive the gateway itself (``gateway.gaps``): a durable
watermark per source lets a restart after a crash mark the gap where the record really ends, a clean stop marks
every signal Bad_Shutdown, and after any marker the values re-read at resubscription are recorded at their
arrival time too, so a signal that did not change is known again the moment its source is.

A retryable failure backs off (jittered, 0.5 s doubling to 5 s, state ``disconnected``); one that needs an operator
(identity rejected, certificate untrusted, policy not offered, …; ``ConnectionLost.retryable`` is false) puts the
source into state ``failed`` with the reason and retries only every ``FAILED_RETRY_S`` or when a deployed config
changes the source. The broker session uses the same backoff; on every (re)connect the runner re-publishes each
cell's retained meta and the status, subscribes to its config topic and replays the buffer.

A config published to the gateway's retained config topic (``datafactory config deploy``) is validated and
applied without restart: sources whose config changed are re-opened, the others keep running; an invalid
one is rejected, the reason goes to the status topic and the old config stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
from pathlib import Path
from typing import Any

from datafactory.config.models import PlantConfig, SignalBinding
from datafactory.contract.quality import BAD_NO_COMMUNICATION, BAD_SHUTDOWN
from datafactory.contract.sample import Sample, SampleRow, now_us, us_to_datetime
from datafactory.contract.topics import CellPath, TopicKind, gateway_topic
from datafactory.errors import ConfigError, ConnectionLost, ContractError
from datafactory.settings import get_settings
from gateway.batcher import Batcher
from gateway.buffer import Buffer
from gateway.deploy import accept_deployed
from gateway.gaps import ADVANCE_SQL, GapLedger, Recovered, markers
from gateway.meta_pages import MetaPages, cell_pages
from gateway.mqtt_session import BrokerAddress, MqttSession, Will
from gateway.polling import PolledSource
from gateway.publisher import Publisher
from gateway.source_run import BACKOFF_MAX_S, BACKOFF_MIN_S, FAILED_RETRY_S, SourceRun, signals_of
from gateway.sources import CellRun, Reading, create_adapter
from gateway.status import SourceState, offline_payload, status_payload, utc_now_iso
from gateway.supervisor import Backoff, Supervisor

_log = logging.getLogger(__name__)

WATERMARK_EVERY_S = 0.25
"""How often the timer moves quiet sources' watermarks (appends move it in their own transaction)."""
BROKER_FAILED_RETRY_S = 60.0
"""The platform broker refusing our credentials is retried every minute: data is buffering meanwhile."""


class Gateway:
    def __init__(
        self,
        config: PlantConfig,
        *,
        mqtt_url: str | None = None,
        mqtt_password: str | None = None,
        state_dir: Path | None = None,
    ) -> None:
        settings = get_settings()
        self.mqtt_url = mqtt_url or settings.mqtt_url
        self._mqtt_password = mqtt_password or (
            settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        )
        try:
            BrokerAddress.parse(self.mqtt_url)
        except ValueError as err:
            raise ConfigError("--mqtt-url / DATAFACTORY_MQTT_URL", [("mqtt_url", str(err))]) from err
        self.state_dir = state_dir or settings.state_dir
        self.config = config
        self.version = config.config_version()
        self.config_error: str | None = None
        gw = config.gateway
        self.gateway_id = gw.id
        self.enterprise, self.site = config.enterprise.id, config.site.id
        buffer_path = Path(gw.buffer_path) if gw.buffer_path else self.state_dir / f"{gw.id}.buffer.sqlite"
        self.buffer = Buffer(
            buffer_path, max_bytes=int(gw.buffer_max_mb * 1_000_000), overflow=gw.buffer_overflow, gateway=gw.id
        )
        self.publisher = Publisher(self.buffer)
        self.ledger = GapLedger(self.buffer)
        self._recovered: dict[str, Recovered] = {}
        self.batcher = Batcher(max_samples=gw.batch_max_samples, max_ms=gw.batch_max_ms, flush=self._store)
        self.status_topic = gateway_topic(self.enterprise, self.site, gw.id, TopicKind.STATUS)
        self.config_topic = gateway_topic(self.enterprise, self.site, gw.id, TopicKind.CONFIG)
        self._topics: dict[str, str] = {}
        self._sources: dict[str, SourceRun] = {}
        self._session: MqttSession | None = None
        self._meta = MetaPages(self.state_dir / f"{gw.id}.meta-pages.json")
        self._broker_state = SourceState(kind="mqtt")
        self._started = utc_now_iso()
        self._rate = 0.0
        self._reconfigure_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._halt = asyncio.Event()
        self.supervisor = Supervisor(on_fatal=lambda err: self._halt.set())
        self.failed_retry_s = FAILED_RETRY_S
        self.unroutable_samples = 0

    # ---- lifecycle -------------------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop the sources, flush and hand the buffer to the broker briefly.

        Raises the ``ConfigError`` that stopped the gateway early, if one did (the CLI exits non-zero)."""
        self.buffer.open()
        self._route(self.config)
        self._recover_gaps()
        for src in self.config.sources:
            self._start_source(src)
        self.supervisor.spawn("broker", self._run_broker)
        self.supervisor.spawn("timers", self._run_timers)
        _log.info(
            "gateway %s started: config %s, %d sources, buffer %s",
            self.gateway_id,
            self.version,
            len(self._sources),
            self.buffer.path,
        )
        stopped = asyncio.create_task(stop.wait())
        halted = asyncio.create_task(self._halt.wait())
        try:
            await asyncio.wait({stopped, halted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
            halted.cancel()
            await self._shutdown()
        if self.supervisor.fatal is not None:
            raise self.supervisor.fatal

    async def _shutdown(self) -> None:
        await asyncio.gather(*(self._stop_source(sid) for sid in list(self._sources)))
        for run in self._sources.values():
            run.state.set("stopped")
            if run.delivering:
                self._mark_gap(run, BAD_SHUTDOWN)
        self.batcher.flush_all()
        await self.supervisor.cancel("timers")
        if self._session is not None and not self._session.lost.is_set():
            await self.publisher.drain(timeout_s=3.0)
            with contextlib.suppress(ConnectionLost):
                self._session.publish(self.status_topic, self._status(online=False), qos=1, retain=True)
            await asyncio.sleep(0.2)  # let the offline status leave before DISCONNECT
        await self.supervisor.cancel_all()
        self.buffer.close()
        _log.info("gateway %s stopped; %d batches left in the buffer", self.gateway_id, self.buffer.depth_batches)

    def source_states(self) -> dict[str, str]:
        """Connection state of every source and of the broker ("broker")."""
        return {"broker": self._broker_state.state} | {sid: run.state.state for sid, run in self._sources.items()}

    # ---- sources ---------------------------------------------------------------------------------------
    def _start_source(self, src: Any) -> None:
        run = self._sources.get(src.id) or SourceRun(src, SourceState(kind=src.kind))
        run.config = src
        self._sources[src.id] = run
        recovered = self._recovered.pop(src.id, None)
        if recovered is not None:
            run.restamper.expect(recovered.signals, recovered.mark_us)
        self.supervisor.spawn(f"source:{src.id}", lambda: self._run_source(run))

    async def _stop_source(self, source_id: str) -> None:
        await self.supervisor.cancel(f"source:{source_id}")

    async def _run_source(self, run: SourceRun) -> None:
        backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)
        while True:
            adapter = create_adapter(run.config, mqtt_url=self.mqtt_url, state_dir=self.state_dir)
            run.adapter = adapter
            if hasattr(adapter, "on_meta_change"):  # adapters that learn signals or units (Sparkplug births)
                adapter.on_meta_change = lambda run=run: self._meta_changed(run)
            opened = False
            failure: Exception
            try:
                run.state.set("connecting")
                run.state.attempts += 1
                await adapter.open()
                opened = True
                run.state.set("connected")
                self.ledger.connected(run.config.id, signals_of(adapter), now_us())
                run.delivering = True
                run.restamper.connected()
                run.logged_failures.clear()
                self._publish_status()
                backoff.reset()
                _log.info("source %s connected", run.config.id)
                if isinstance(adapter, PolledSource):
                    async for readings, cell_runs in adapter.stream_runs():
                        self._add_round(run, readings, cell_runs)
                else:
                    async for readings in adapter.stream():
                        self.batcher.add(run.restamper.apply(readings))
                raise ConnectionLost(run.config.id, "stream ended")
            except Exception as err:  # ConnectionLost, or a bug in an adapter: neither may stop the gateway
                failure = err
            finally:
                await adapter.close()
            if opened:
                self._mark_gap(run, BAD_NO_COMMUNICATION)
                run.state.reconnects += 1
            delay = run.failed(failure, backoff, opened=opened, failed_retry_s=self.failed_retry_s)
            self._publish_status()
            await asyncio.sleep(delay)

    def _add_round(self, run: SourceRun, readings: list[Reading], cell_runs: list[CellRun]) -> None:
        """A polled round: its readings as any source's, its runs straight into the batches while no marker
        waits for re-read values (``Restamper``), else reading by reading like the rest."""
        restamper = run.restamper
        if readings:
            self.batcher.add(restamper.apply(readings))
        for cell, rows in cell_runs:
            if restamper.pending:
                self.batcher.add(restamper.apply([(cell, Sample(*row)) for row in rows]))
            else:
                self.batcher.add_run(cell, rows)

    def _mark_gap(self, run: SourceRun, quality: int) -> None:
        """One marker per signal: the value is unknown from now until the source delivers again (comm lost,
        or a planned stop), on disk before the ledger says the source's record ends here."""
        t = now_us()
        signals = signals_of(run.adapter) if run.adapter is not None else []
        self.batcher.add(markers(signals, t, quality))
        self.batcher.flush_all()
        self.ledger.closed(run.config.id, t)
        run.delivering = False
        run.restamper.clear()
        run.restamper.expect(signals, t)

    def _recover_gaps(self) -> None:
        """Mark the gap a crash of the previous run left (from each source's watermark), and expect the
        values re-read after every source's last marker."""
        for rec in self.ledger.recover():
            if rec.crashed:
                self.batcher.add(markers(rec.signals, rec.mark_us, BAD_NO_COMMUNICATION))
                self.batcher.flush_all()
                self.ledger.closed(rec.source, rec.mark_us)
                _log.warning(
                    "source %s: the last run ended without a clean stop; its %d signals are marked unknown from "
                    "%s, where the buffered record ends",
                    rec.source,
                    len(rec.signals),
                    us_to_datetime(rec.mark_us).isoformat(timespec="milliseconds"),
                )
            if rec.source in {s.id for s in self.config.sources}:
                self._recovered[rec.source] = rec
            else:
                self.ledger.forget(rec.source)

    def _meta_changed(self, run: SourceRun) -> None:
        if run.delivering and run.adapter is not None:
            self.ledger.signals_changed(run.config.id, signals_of(run.adapter))
        self._publish_meta()

    # ---- batches → buffer → broker --------------------------------------------------------------------
    def _store(self, cell: str, samples: list[SampleRow]) -> None:
        topic = self._topics.get(cell)
        if topic is None:  # cannot happen with a validated config; counted so it would show up
            self.unroutable_samples += len(samples)
            return
        # Every durable sample lies strictly before the watermark, so a crash marker there never precedes one,
        # nor takes the (signal, time) key of one (ingest would keep the sample and drop the marker).
        self.buffer.append(topic, samples, also=(ADVANCE_SQL, (max(map(operator.itemgetter(1), samples)) + 1,)))
        self.publisher.wake()

    def _route(self, config: PlantConfig) -> None:
        ent, site = config.enterprise.id, config.site.id
        self._topics = {key: CellPath(ent, site, *key.split("/")).topic(TopicKind.DATA) for key in config.cell_paths()}

    async def _run_broker(self) -> None:
        backoff = Backoff(BACKOFF_MIN_S, BACKOFF_MAX_S)
        while True:
            session = MqttSession(
                self.mqtt_url,
                client_id=f"df-gw-{self.enterprise}-{self.site}-{self.gateway_id}",
                password=self._mqtt_password,
                will=Will(self.status_topic, offline_payload(self.gateway_id)),
                max_inflight=self.publisher.window,
                on_message=self._on_message,
                on_puback=self.publisher.on_puback,
            )
            try:
                self._broker_state.attempts += 1
                await session.connect()
                self._session = session
                self._broker_state.set("connected")
                backoff.reset()
                _log.info("connected to broker %s; %d batches buffered", session.url, self.buffer.depth_batches)
                await self._subscribe_config(session)
                self._publish_meta()
                self._publish_status()
                await self.publisher.serve(session)
            except ConnectionLost as err:
                delay = backoff.next() if err.retryable else BROKER_FAILED_RETRY_S
                state = "disconnected" if err.retryable else "failed"
                if self._broker_state.state == "connected" or self._broker_state.last_error != str(err):
                    _log.log(
                        logging.WARNING if err.retryable else logging.ERROR,
                        "broker: %s; buffering, retrying in %.1f s",
                        err,
                        delay,
                    )
                self._broker_state.set(state, str(err), retry_in_s=delay)
            finally:
                self._session = None
                await session.close()
            await asyncio.sleep(delay)

    async def _subscribe_config(self, session: MqttSession) -> None:
        """A broker that refuses the config subscription (ACL) leaves data flowing but deployed configs unseen:
        say so in the status rather than pretend the gateway listens."""
        try:
            await session.subscribe(self.config_topic, qos=1)
        except ConnectionLost as err:
            if err.retryable:
                raise
            reason = f"deployed configs cannot reach this gateway: {err}"
            if self.config_error != reason:
                _log.error("%s", reason)
            self.config_error = reason

    async def _run_timers(self) -> None:
        loop = asyncio.get_running_loop()
        tick = max(0.01, self.config.gateway.batch_max_ms / 2000)
        next_status = loop.time() + self.config.gateway.status_interval_s
        last_in, last_t = self.batcher.samples_in, loop.time()
        next_watermark = loop.time()
        while True:
            await asyncio.sleep(tick)
            self.batcher.flush_due()
            now = loop.time()
            if now >= next_watermark:
                self.ledger.advance(self.batcher.durable_until_us())
                next_watermark = now + WATERMARK_EVERY_S
            if now >= next_status:
                self._rate = (self.batcher.samples_in - last_in) / max(now - last_t, 1e-6)
                last_in, last_t = self.batcher.samples_in, now
                self._publish_status()
                next_status = now + self.config.gateway.status_interval_s

    # ---- meta and status -------------------------------------------------------------------------------
    def _publish_meta(self) -> None:
        session = self._session
        if session is None:
            return
        for path, pages in cell_pages(self.config, self._bindings(), gateway=self.gateway_id):
            try:
                self._meta.publish(session, path, pages)
            except ConnectionLost:
                return  # the broker loop notices and re-publishes meta on the next connection

    def _bindings(self) -> list[SignalBinding]:
        """Every signal: the config's, with what a running adapter learned (units, signals from births)."""
        by_key = {(b.cell, b.signal): b for b in self.config.bindings()}
        for run in self._sources.values():
            if run.adapter is not None:
                by_key.update({(b.cell, b.signal): b for b in run.adapter.bindings()})
        return list(by_key.values())

    def _status(self, *, online: bool = True) -> bytes:
        for run in self._sources.values():
            if run.adapter is not None:
                run.state.counters = run.adapter.counters()
                details = getattr(run.adapter, "details", None)
                run.state.details = details() if details is not None else {}
        sources = {"broker": self._broker_state} | {sid: run.state for sid, run in self._sources.items()}
        return status_payload(
            gateway=self.gateway_id,
            started=self._started,
            config_version=self.version,
            config_error=self.config_error,
            samples_per_s=self._rate,
            samples_in=self.batcher.samples_in,
            published_samples=self.publisher.published_samples,
            buffer={
                "batches": self.buffer.depth_batches,
                "samples": self.buffer.depth_samples,
                "bytes": self.buffer.depth_bytes,
                "max_bytes": self.buffer.max_bytes,
            },
            dropped_overflow=self.buffer.dropped_samples,
            sources=sources,
            online=online,
        )

    def _publish_status(self) -> None:
        session = self._session
        if session is None:
            return
        with contextlib.suppress(ConnectionLost):  # the broker loop notices and reconnects
            session.publish(self.status_topic, self._status(), qos=1, retain=True)

    # ---- deployed configs ------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic != self.config_topic or not payload:
            return
        task = asyncio.create_task(self._on_config(payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_config(self, payload: bytes) -> None:
        try:
            ours = (self.enterprise, self.site, self.gateway_id)
            cfg = accept_deployed(payload, topic=self.config_topic, gateway=ours)
        except (ContractError, ConfigError) as err:
            self._reject(f"{err}")
            return
        if cfg.config_version() == self.version:
            if self.config_error is not None:
                self.config_error = None
                self._publish_status()
            return
        await self.apply(cfg)

    def _reject(self, reason: str) -> None:
        _log.error("deployed config rejected, keeping %s: %s", self.version, reason)
        self.config_error = reason
        self._publish_status()

    async def apply(self, cfg: PlantConfig) -> None:
        """Switch to a new config: re-open the sources that changed, keep the rest running."""
        async with self._reconfigure_lock:
            old = {s.id: s for s in self.config.sources}
            new = {s.id: s for s in cfg.sources}
            changed = [sid for sid in old if sid not in new or old[sid] != new[sid]]
            await asyncio.gather(*(self._stop_source(sid) for sid in changed))
            for sid in changed:
                if self._sources[sid].delivering:
                    self._mark_gap(self._sources[sid], BAD_SHUTDOWN)
            self.batcher.flush_all()
            for sid in changed:
                if sid not in new:
                    del self._sources[sid]
                    self.ledger.forget(sid)
            if cfg.gateway.buffer_path != self.config.gateway.buffer_path:
                _log.warning("gateway.buffer_path changed; the new path takes effect when the gateway restarts")
            self.config = cfg
            self.version = cfg.config_version()
            self.config_error = None
            self.batcher.max_samples = cfg.gateway.batch_max_samples
            self.batcher.max_s = cfg.gateway.batch_max_ms / 1000
            self.buffer.max_bytes = int(cfg.gateway.buffer_max_mb * 1_000_000)
            self.buffer.overflow = cfg.gateway.buffer_overflow
            self._route(cfg)
            for sid, src in new.items():
                if sid not in old or sid in changed:
                    self._start_source(src)
                    # Not 'connected' from before the re-open: `config deploy` waits for the new connection.
                    self._sources[sid].state.set("connecting")
            _log.info("applied config %s (re-opened sources: %s)", self.version, ", ".join(changed) or "none")
            self._publish_meta()
            self._publish_status()
