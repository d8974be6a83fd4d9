"""``datafactory demo``: run the simulated plant end to end and print what happened.

Services: ``DATAFACTORY_DATABASE_URL`` / ``DATAFACTORY_MQTT_URL`` when set; else PostgreSQL on 127.0.0.1:5432 and
Mosquitto on 127.0.0.1:1883 when they answer; else private ones under the state directory (``--embedded`` forces
that). Then: migrate the schema, start ingest, the simulator and a gateway as child processes, show a live line,
stop after ``--duration`` (or when simulated time would pass the wall clock), run analytics, print a summary
of this run (app.cli.demo_summary). Ctrl-C stops everything cleanly at any point and exits 130.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import click

from app.cli.demo_summary import RunResult, database_now, latest_oee, print_summary
from app.harness.children import run_once
from app.harness.observer import DatabaseSnapshot, PublishedCounter, database_snapshot
from app.harness.pipeline import DEMO_CONFIG, MIXED_CONFIG, Pipeline, subcommand_available
from app.harness.selection import Services, resolve_services
from datafactory.db.migrate import migrate
from datafactory.errors import DataFactoryError
from datafactory.settings import Settings, get_settings, redact_url

_DRAIN_TIMEOUT_S = 20.0
_TICK_S = 2.0
_FIRST_SAMPLES_TIMEOUT_S = 90.0
_ANALYTICS_TIMEOUT_S = 180.0
# --plant: the config each plant runs and its default speed. The mixed plant's Modbus/S7 machines are stamped
# by the gateway's clock when it polls them, so it runs in real time.
_PLANTS = {"demo": (DEMO_CONFIG, 10.0), "mixed": (MIXED_CONFIG, 1.0)}


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


@click.command()
@click.option("--duration", type=float, default=60.0, show_default=True, help="Seconds of wall time the plant runs.")
@click.option(
    "--plant", type=click.Choice(sorted(_PLANTS)), default="demo", show_default=True,
    help="demo: OPC-UA machines and an MQTT meter at 10x; mixed: OPC-UA, Modbus TCP and S7 machines and the MQTT "
    "meter, in real time.",
)
@click.option(
    "--speed", type=float, default=None,
    help="Simulated seconds per wall second [default: 10; the mixed plant runs only at 1].",
)
@click.option("--embedded", is_flag=True, help="Use private PostgreSQL and broker under the state dir, never others.")
@click.option(
    "--state-dir", type=click.Path(path_type=Path), default=None,
    help="State directory [default: DATAFACTORY_STATE_DIR, else .df]",
)
@click.option(
    "--config", "config_path", type=click.Path(path_type=Path), default=None,
    help=f"Plant config the simulator serves and the gateway reads [default: {DEMO_CONFIG}; {MIXED_CONFIG} with "
    "--plant mixed].",
)
@click.option("--enterprise", default=None, help="Publish as this enterprise id (keeps demos sharing a broker apart).")
@click.option("--analytics/--no-analytics", default=True, show_default=True, help="Run analytics at the end.")
@click.option(
    "--keep-services", is_flag=True, help="Leave the embedded PostgreSQL and broker running to explore the data."
)
def demo(
    *,
    duration: float, plant: str, speed: float | None, embedded: bool, state_dir: Path | None,
    config_path: Path | None, enterprise: str | None, analytics: bool, keep_services: bool,
) -> None:
    """Run the simulated plant end to end (simulator → gateway → broker → ingest → database → analytics)."""
    plant_config, default_speed = _PLANTS[plant]
    config_path = config_path or plant_config
    speed = default_speed if speed is None else speed
    if plant == "mixed" and speed != 1:
        # Checked before any service starts: ``simulate run`` would refuse it only once everything is up.
        raise click.BadParameter(
            "the mixed plant's Modbus and S7 machines are stamped by the gateway's clock when it polls them, so "
            "it runs in real time: use --speed 1 (or leave --speed out)", param_hint="--speed",
        )
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
        print_summary(services, pipeline, outcome, keep=keep)
        if outcome.interrupted:
            exit_code = 130  # interrupted (README "Command line"): a script must not take this run as complete
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


def _run(services: Services, state: Path, opts: _Options, stop: _Stop) -> tuple[RunResult, Pipeline]:
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
        if pipeline.overlap_until is not None and pipeline.sim_start is not None:
            click.echo(
                f"    note: an earlier run stored data up to {pipeline.overlap_until:%Y-%m-%d %H:%M:%S} UTC; simulated "
                f"time starts at {pipeline.sim_start:%H:%M:%S} so that it ends behind the wall clock, not ahead of it "
                "(samples at times already stored are kept once)", err=True,
            )
        for name, reason in pipeline.unavailable.items():
            click.echo(f"    UNAVAILABLE: {name}: {reason}", err=True)
        counter = PublishedCounter(services.mqtt_url, pipeline.enterprise_id)
        counter.start()
        _wait_for_first_samples(pipeline, counter, stop)
        started = time.monotonic()
        click.echo(f"    logs in {pipeline.work_dir / 'logs'}", err=True)
        caught_up = False
        while not stop.requested and time.monotonic() - started < opts.duration:
            stop.sleep(_TICK_S)
            _live_line(pipeline, counter, started, baseline)
            if pipeline.failed():
                break
            # Simulated time must not pass the wall clock (data from the future misleads every view of it):
            # stop before the next tick would cross it.
            clock = pipeline.sim_clock()
            # A real-time plant's clock is the wall clock by construction.
            ahead = clock is not None and clock + timedelta(seconds=1.5 * _TICK_S * pipeline.speed) >= datetime.now(UTC)
            if ahead and not pipeline.realtime:
                caught_up = True
                break
        if caught_up:
            click.echo("\n    the simulated clock reached the wall clock: the plant stops here, not ahead of it",
                       err=True)
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
        wall_end = datetime.now(UTC)
        analytics_began = database_now(services.database_url)
        if stop.requested:
            analytics_state = "skipped (interrupted)"
        elif not opts.analytics:
            analytics_state = "skipped (--no-analytics)"
        elif analytics_began is None:
            analytics_state = "skipped (the database does not answer)"
        else:
            analytics_state = _analytics(pipeline)
        snap = database_snapshot(
            services.database_url, pipeline.enterprise_id, reasons=True, span_from=pipeline.sim_start
        ).since(baseline)
        oee = latest_oee(services.database_url, pipeline.enterprise_id, analytics_began) if analytics_began else []
        return (
            RunResult(
                wall_s=wall,
                snapshot=snap,
                published=counter.samples,
                unique=counter.unique_samples,
                run_s=run_s,
                analytics=analytics_state,
                oee=oee if analytics_state == "done" else [],
                interrupted=stop.requested,
                crashed=crashed,
                earlier_samples=baseline.samples,
                sim_start=pipeline.sim_start,
                sim_end=pipeline.sim_clock(),
                overlap_until=pipeline.overlap_until,
                wall_end=wall_end,
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
    clock = pipeline.sim_clock()  # the simulator's clock: stored data may include an earlier run's later times
    sim = clock.strftime("%Y-%m-%d %H:%M:%S UTC") if clock else "—"
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
