"""``datafactory demo``: run the simulated plant end to end and print what happened.

Services: ``DATAFACTORY_DATABASE_URL`` / ``DATAFACTORY_MQTT_URL`` when set; else PostgreSQL on 127.0.0.1:5432 and
Mosquitto on 127.0.0.1:1883 when they answer; else private ones under the state directory (``--embedded`` forces
that). Then: migrate the schema, start ingest, the simulator and a gateway as child processes, show a live line,
stop after ``--duration``, run analytics, print a summary. Ctrl-C stops everything cleanly at any point.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click

from app.harness.children import run_once
from app.harness.observer import DatabaseSnapshot, PublishedCounter, database_snapshot
from app.harness.pipeline import DEMO_CONFIG, Pipeline, subcommand_available
from app.harness.selection import Services, resolve_services
from datafactory.db.migrate import migrate
from datafactory.errors import DataFactoryError
from datafactory.settings import Settings, get_settings, redact_url

_DRAIN_TIMEOUT_S = 20.0
_FIRST_SAMPLES_TIMEOUT_S = 90.0
_ANALYTICS_TIMEOUT_S = 180.0


class _Stop:
    """Set by SIGINT/SIGTERM: the demo leaves its loop and cleans up. A second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        click.echo("\nstopping… (Ctrl-C again to abort)", err=True)

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.requested and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


@dataclass(frozen=True)
class _Options:
    duration: float
    speed: float
    config_path: Path
    enterprise: str | None
    analytics: bool


OeeRow = tuple[str, float | None, float | None, float | None, float | None]


@dataclass
class _Result:
    wall_s: float
    snapshot: DatabaseSnapshot
    published: int
    unique: int | None
    run_s: float
    analytics: str
    oee: list[OeeRow]
    interrupted: bool
    crashed: dict[str, str]
    earlier_samples: int


@click.command()
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds of wall time the plant runs.")
@click.option("--speed", type=float, default=10.0, show_default=True, help="Simulated seconds per wall second.")
@click.option("--embedded", is_flag=True, help="Use private PostgreSQL and broker under the state dir, never others.")
@click.option("--state-dir", type=click.Path(path_type=Path), default=None, help="Default: DATAFACTORY_STATE_DIR, .df")
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=DEMO_CONFIG, show_default=True,
    help="Plant config the simulator serves and the gateway reads.",
)
@click.option("--enterprise", default=None, help="Publish as this enterprise id (keeps demos sharing a broker apart).")
@click.option("--analytics/--no-analytics", default=True, show_default=True, help="Run analytics at the end.")
@click.option(
    "--keep-services", is_flag=True, help="Leave the embedded PostgreSQL and broker running to explore the data."
)
def demo(
    *,
    duration: float, speed: float, embedded: bool, state_dir: Path | None, config_path: Path,
    enterprise: str | None, analytics: bool, keep_services: bool,
) -> None:
    """Run the simulated plant end to end (simulator → gateway → broker → ingest → database → analytics)."""
    settings = get_settings()
    state = state_dir or settings.state_dir
    stop = _Stop()
    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    services: Services | None = None
    exit_code = 0
    keep = False
    try:
        click.echo("==> services", err=True)
        services = resolve_services(state, embedded=embedded)
        _describe_services(services)
        click.echo("==> db migrate", err=True)
        result = migrate(services.database_url, Settings(database_url=services.database_url))
        backend = "TimescaleDB" if result.timescale else "plain PostgreSQL (partitioned samples)"
        click.echo(f"    {backend}; applied {len(result.applied)} migration(s)", err=True)
        options = _Options(duration, speed, config_path, enterprise, analytics)
        outcome, pipeline = _run(services, state, options, stop)
        if not outcome.interrupted and (outcome.crashed or pipeline.unavailable or outcome.snapshot.samples == 0):
            exit_code = 1
        keep = keep_services and not outcome.interrupted and exit_code == 0
        _summary(services, pipeline, outcome, keep=keep)
    except DataFactoryError as err:
        raise click.ClickException(str(err)) from err
    finally:
        if services is not None and not keep:
            services.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if exit_code:
        raise SystemExit(exit_code)  # a failed or missing stage, or nothing stored: scripts must notice


def _describe_services(services: Services) -> None:
    click.echo(f"    database: {redact_url(services.database_url)} ({services.database_origin})", err=True)
    click.echo(f"    broker:   {services.mqtt_url} ({services.mqtt_origin}, {services.describe_broker()})", err=True)
    if not services.mqtt_v5:
        click.echo(
            "    note: Mosquitto is not installed, so the embedded pure-Python broker (amqtt) is in use: fine for a "
            "demo, but production should use Mosquitto (apt-get install mosquitto). amqtt speaks MQTT 3.1.1 only, "
            "so ingest runs without MQTT 5's receive maximum and session expiry, and amqtt neither queues messages "
            "for an ingest worker that is away nor keeps anything across its own restart.", err=True,
        )


def _run(services: Services, state: Path, opts: _Options, stop: _Stop) -> tuple[_Result, Pipeline]:
    pipeline = Pipeline(
        services.database_url, services.mqtt_url, state / "demo", opts.speed, config_source=opts.config_path,
        enterprise=opts.enterprise, duration_s=opts.duration,
    )
    counter: PublishedCounter | None = None
    began = time.monotonic()
    try:
        pipeline.prepare()
        # The database may hold earlier runs: report what this run adds.
        baseline = database_snapshot(services.database_url, pipeline.enterprise_id, reasons=True)
        pipeline.not_before = baseline.newest_sample
        click.echo("==> starting ingest, simulator, gateway", err=True)
        pipeline.start(cancelled=lambda: stop.requested)
        for name, reason in pipeline.unavailable.items():
            click.echo(f"    UNAVAILABLE: {name}: {reason}", err=True)
        counter = PublishedCounter(services.mqtt_url, pipeline.enterprise_id)
        counter.start()
        _wait_for_first_samples(pipeline, counter, stop)
        started = time.monotonic()
        click.echo(f"    logs in {pipeline.work_dir / 'logs'}", err=True)
        while not stop.requested and time.monotonic() - started < opts.duration:
            stop.sleep(2.0)
            _live_line(pipeline, counter, started, baseline)
            if pipeline.failed():
                break
        click.echo("", err=True)
        run_s = time.monotonic() - started
        crashed = pipeline.failed()
        for name, detail in crashed.items():
            click.echo(f"    {name} {detail}", err=True)
        pipeline.stop_producers()
        if not stop.requested:
            _drain(pipeline, stop)
        pipeline.stop()
        wall = time.monotonic() - began
        analytics_state = "skipped"
        if opts.analytics and not stop.requested:
            analytics_state = _analytics(pipeline)
        snap = database_snapshot(
            services.database_url, pipeline.enterprise_id, reasons=True, span_from=pipeline.sim_start
        ).since(baseline)
        return (
            _Result(
                wall_s=wall,
                snapshot=snap,
                published=counter.samples,
                unique=counter.unique_samples,
                run_s=run_s,
                analytics=analytics_state,
                oee=_oee(services.database_url, pipeline.enterprise_id),
                interrupted=stop.requested,
                crashed=crashed,
                earlier_samples=baseline.samples,
            ),
            pipeline,
        )
    finally:
        pipeline.stop()
        if counter is not None:
            counter.stop()


def _wait_for_first_samples(pipeline: Pipeline, counter: PublishedCounter, stop: _Stop) -> None:
    """--duration counts from the first published batch: on a busy machine the OPC-UA server and the gateway's
    session can take many seconds to come up, and that start-up is not the plant running."""
    if "gateway" not in pipeline.children:
        return
    click.echo("    waiting for the first samples…", err=True)
    deadline = time.monotonic() + _FIRST_SAMPLES_TIMEOUT_S
    while not stop.requested and counter.samples == 0 and time.monotonic() < deadline and not pipeline.failed():
        stop.sleep(0.25)


def _live_line(pipeline: Pipeline, counter: PublishedCounter, started: float, baseline: DatabaseSnapshot) -> None:
    snap = database_snapshot(pipeline.database_url, pipeline.enterprise_id, span_from=pipeline.sim_start).since(
        baseline
    )
    elapsed = time.monotonic() - started
    sim = snap.newest_sample.strftime("%Y-%m-%d %H:%M:%S UTC") if snap.newest_sample else "—"
    line = (
        f"  t={elapsed:5.0f}s  sim time {sim}  published {counter.samples:>9,}  stored {snap.samples:>9,}"
        f"  ({snap.samples / max(elapsed, 1e-9):,.0f}/s)  dead letters {snap.dead_letters}"
    )
    if snap.error:
        line += f"  [db: {snap.error[:60]}]"
    if sys.stderr.isatty():  # one line rewritten in place on a terminal, a line per update in a log
        click.echo("\r" + line, nl=False, err=True)
    else:
        click.echo(line, err=True)


def _drain(pipeline: Pipeline, stop: _Stop) -> None:
    """Give ingest time to commit what is still in flight: wait until the stored count stops growing."""
    deadline = time.monotonic() + _DRAIN_TIMEOUT_S
    last = -1
    while time.monotonic() < deadline and not stop.requested and "ingest" in pipeline.children:
        count = database_snapshot(pipeline.database_url, pipeline.enterprise_id).samples
        if count == last:
            return
        last = count
        stop.sleep(1.5)


def _analytics(pipeline: Pipeline) -> str:
    reason = subcommand_available("analytics", "run")
    if reason is not None:
        return f"unavailable: {reason}"
    click.echo("==> analytics run", err=True)
    args = ["analytics", *(["--enterprise", pipeline.enterprise_id] if pipeline.enterprise_id else []), "run"]
    code = run_once(args, log_path=pipeline.log("analytics"), env=pipeline.env, timeout_s=_ANALYTICS_TIMEOUT_S)
    if code == 0:
        return "done"
    return f"failed (exit {code}; see {pipeline.log('analytics')})"


def _oee(database_url: str, enterprise: str) -> list[OeeRow]:
    """Latest OEE per machine, if analytics produced any."""
    import psycopg

    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                """SELECT DISTINCT ON (o.cell_id) c.area || '/' || c.line || '/' || c.cell,
                          o.availability, o.performance, o.quality, o.oee
                   FROM oee o JOIN cells c ON c.id = o.cell_id JOIN plants p ON p.id = o.plant_id
                   WHERE (p.enterprise = %s OR %s = '') AND o.period IN ('shift', 'hour')
                   ORDER BY o.cell_id, o.period = 'shift' DESC, o.time DESC""",
                (enterprise, enterprise),
            ).fetchall()
    except psycopg.Error:
        return []  # no oee table or no analytics: the summary says so
    return [(str(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


def _pct(value: float | None) -> str:
    return "   —  " if value is None else f"{100 * value:5.1f}%"


def _summary(services: Services, pipeline: Pipeline, r: _Result, *, keep: bool) -> None:
    s = r.snapshot
    out = click.echo
    out("")
    out("SUMMARY" + (" (interrupted)" if r.interrupted else ""))
    out(f"  enterprise          {pipeline.enterprise_id or '—'}")
    out(f"  wall time           {r.wall_s:.1f} s (plant ran {r.run_s:.1f} s at speed {pipeline.speed:g}x)")
    if s.oldest_sample and s.newest_sample:
        out(f"  simulated span      {s.oldest_sample:%Y-%m-%d %H:%M:%S} → {s.newest_sample:%Y-%m-%d %H:%M:%S} UTC")
    out(f"  signals registered  {s.signals}")
    repeats = "" if r.unique is None or r.unique == r.published else f" ({r.unique} distinct; repeats are stored once)"
    out(f"  samples published   {r.published}{repeats}")
    out(f"  samples stored      {s.samples}" + (" (by this run)" if r.earlier_samples else ""))
    out(f"  samples/s           {s.samples / max(r.run_s, 1e-9):.0f} (while the plant ran, {r.run_s:.0f} s)")
    reasons = ", ".join(f"{k}: {v}" for k, v in s.dead_letter_reasons.items())
    out(f"  dead letters        {s.dead_letters}" + (f" ({reasons})" if reasons else ""))
    out(f"  analytics           {r.analytics}")
    for name, reason in pipeline.unavailable.items():
        out(f"  UNAVAILABLE         {name}: {reason}")
    for name, reason in r.crashed.items():
        out(f"  FAILED              {name} {reason} (log: {pipeline.log(name)})")
    if s.error:
        out(f"  database error      {s.error}")
    if r.oee:
        out("  OEE (latest shift per machine)   availability  performance  quality   OEE")
        for cell, a, p, q, o in r.oee:
            out(f"    {cell:<32} {_pct(a):>12} {_pct(p):>12} {_pct(q):>8} {_pct(o):>6}")
    out("")
    out(f"  data      {redact_url(services.database_url)} ({services.database_origin})")
    out(f"  broker    {services.mqtt_url} ({services.mqtt_origin})")
    out(f"  logs      {pipeline.work_dir / 'logs'}")
    if services.owned and keep:
        pids = " ".join(str(service.pid) for service in services.owned)
        out(f"  the embedded services keep running (stop them with: kill {pids})")
    if services.database_origin == "embedded" and not keep:
        out(f"  the embedded PostgreSQL is stopped now; its data stays in {Path(pipeline.work_dir).parent / 'pg'}")
        out("  (--keep-services leaves it running to explore; or use your own via DATAFACTORY_DATABASE_URL)")
    else:
        db = redact_url(services.database_url)
        out("  look at it:")
        out(f"    psql '{db}' -c \"SELECT path, meaning, unit FROM signal_paths ORDER BY path LIMIT 20\"")
        out(
            f"    psql '{db}' -c \"SELECT sp.path, count(*), max(x.time) FROM samples x"
            " JOIN signal_paths sp ON sp.signal_id = x.signal_id GROUP BY 1 ORDER BY 1\""
        )
        out(f"    psql '{db}' -c \"SELECT reason, count(*) FROM dead_letters GROUP BY 1\"")
    out("  dashboards: an existing Grafana: datafactory grafana deploy --url http://127.0.0.1:3000 (data source")
    out("              variables DATAFACTORY_PG_*); or the whole stack: docker compose --profile demo up -d (README)")
    sys.stdout.flush()
