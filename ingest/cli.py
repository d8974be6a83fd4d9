"""``datafactory ingest run``: one ingest worker until SIGINT/SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

import click

from datafactory.db.migrate import require_migrated
from datafactory.errors import ConnectionLost
from datafactory.runtime import settle_heap
from datafactory.settings import get_settings
from ingest.options import MAX_WRITERS, MQTT_PROTOCOLS, IngestOptions, default_worker_name
from ingest.processes import MAX_PROCESSES, orphaned

_log = logging.getLogger(__name__)

_DEFAULTS = IngestOptions()
_SWITCH_INTERVAL_S = 0.001  # how long the GIL holder runs before a waiting thread gets it (see run)


@click.group()
def ingest() -> None:
    """Ingest: MQTT → PostgreSQL."""


@ingest.command()
@click.option("--database-url", default=None, help="PostgreSQL URL [default: DATAFACTORY_DATABASE_URL].")
@click.option("--mqtt-url", default=None, help="Broker URL [default: DATAFACTORY_MQTT_URL].")
@click.option("--topic-filter", default=_DEFAULTS.topic_filter, show_default=True, help="What to ingest.")
@click.option("--share-group", default=None, help="Split data between the workers of this MQTT shared group.")
@click.option("--worker", default=None, help="Worker name, also the MQTT session; keep it stable across restarts.")
@click.option("--batch-samples", default=_DEFAULTS.batch_samples, show_default=True, help="Samples per batch.")
@click.option(
    "--batch-wait-ms",
    default=int(_DEFAULTS.batch_wait_s * 1000),
    show_default=True,
    help="Longest wait for a batch to fill.",
)
@click.option(
    "--receive-maximum",
    default=_DEFAULTS.receive_maximum,
    show_default=True,
    help="Unacknowledged messages the broker may have in flight to this worker.",
)
@click.option(
    "--mqtt-protocol",
    type=click.Choice(MQTT_PROTOCOLS),
    default=_DEFAULTS.mqtt_protocol,
    show_default=True,
    help="auto: MQTT 5, or 3.1.1 (persistent session, in-flight limited by the broker) if the broker lacks 5.",
)
@click.option(
    "--session-expiry-s",
    default=_DEFAULTS.session_expiry_s,
    show_default=True,
    help="How long the broker keeps the session (and its messages) while the worker is away.",
)
@click.option(
    "--auto-register/--no-auto-register",
    default=True,
    show_default=True,
    help="Register unknown signals (meaning generic) instead of dead-lettering their samples.",
)
@click.option(
    "--max-past-days",
    default=_DEFAULTS.max_past_s / 86_400,
    show_default=True,
    help="Samples older than this are dead-lettered.",
)
@click.option(
    "--max-future-s",
    default=_DEFAULTS.max_future_s,
    show_default=True,
    help="Samples further ahead of the clock than this are dead-lettered.",
)
@click.option(
    "--late-margin-s",
    default=_DEFAULTS.late_margin_s,
    show_default=True,
    help="A sample this much older than its signal's newest is recorded in late_writes.",
)
@click.option(
    "--allowed-plants",
    default=None,
    help="Comma-separated 'enterprise' or 'enterprise/site' accepted; others are dead-lettered.",
)
@click.option(
    "--writers",
    default=_DEFAULTS.writers,
    show_default=True,
    type=click.IntRange(1, MAX_WRITERS),
    help="Writer lanes, each with its own database connection, storing batches side by side.",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_PROCESSES),
    help="Worker processes in one MQTT share group (<worker>-1 … -N): one process uses about one core.",
)
@click.option(
    "--health-interval-s",
    default=_DEFAULTS.health_interval_s,
    show_default=True,
    help="How often the ingest_health row is refreshed.",
)
def run(
    *,
    database_url: str | None,
    mqtt_url: str | None,
    topic_filter: str,
    share_group: str | None,
    worker: str | None,
    batch_samples: int,
    batch_wait_ms: int,
    receive_maximum: int,
    mqtt_protocol: str,
    session_expiry_s: int,
    auto_register: bool,
    max_past_days: float,
    max_future_s: float,
    late_margin_s: float,
    allowed_plants: str | None,
    writers: int,
    processes: int,
    health_interval_s: float,
) -> None:
    """Subscribe, validate and store samples; acknowledge each message only after its rows are committed."""
    from ingest.worker import IngestWorker

    settings = get_settings()
    password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
    options = IngestOptions(
        database_url=database_url or settings.database_url,
        mqtt_url=mqtt_url or settings.mqtt_url,
        mqtt_password=password,
        topic_filter=topic_filter,
        share_group=share_group,
        worker=worker or default_worker_name(),
        batch_samples=batch_samples,
        batch_wait_s=batch_wait_ms / 1000,
        receive_maximum=receive_maximum,
        mqtt_protocol=mqtt_protocol,
        session_expiry_s=session_expiry_s,
        auto_register=auto_register,
        max_past_s=max_past_days * 86_400,
        max_future_s=max_future_s,
        late_margin_s=late_margin_s,
        allowed_plants=frozenset(p.strip() for p in allowed_plants.split(",") if p.strip()) if allowed_plants else None,
        writers=writers,
        health_interval_s=health_interval_s,
    )
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # Before any broker connection: on an unmigrated database nothing may be taken, let alone acknowledged.
    # A database that does not answer yet is no reason not to start: the worker holds its session, stores nothing
    # and acknowledges nothing until the database is back (a write into a missing table is a database failure,
    # retried, never acknowledged).
    try:
        require_migrated(options.database_url)
    except ConnectionLost as err:
        _log.warning(
            "the database does not answer yet (%s); starting, nothing is acknowledged until it does", err.detail[:200]
        )
    if processes > 1:
        _run_processes(options, processes, stopping)
        return
    # A writer lane waits on the database several times per batch (BEGIN, the type check, COPY, COMMIT) and each
    # time must take the GIL back from the MQTT thread, which decodes without blocking: with the default 5 ms switch
    # interval that costs up to 5 ms per round trip (a 0.1 ms lookup measured 10 ms), 1 ms makes the lanes' batch
    # 82 -> 72 ms and the float64 benchmark ~9 % faster. Process-wide, so set here for the worker's own process.
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    worker_ = IngestWorker(options)
    settle_heap()  # the worker is built: what it holds now is not garbage (datafactory.runtime)
    try:
        worker_.start()
    except ConnectionLost as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"ingest worker {options.worker} running on {options.subscriptions()}", err=True)
    while not stopping.wait(1.0):
        if orphaned():
            _log.error("the ingest service that started this worker process is gone; stopping")
            break
        if worker_.fatal is not None:
            worker_.stop()
            raise worker_.fatal  # one line, exit 1 (5 for a revoked privilege): nothing unstored was acknowledged
        if not worker_.running:
            raise click.ClickException("a writer lane stopped unexpectedly; see the log")
    worker_.stop()


# Options a child gets from the supervisor itself, not copied from the parent's command line.
_NOT_INHERITED = {"database_url", "mqtt_url", "worker", "share_group", "mqtt_protocol", "processes"}


def _run_processes(options: IngestOptions, processes: int, stopping: threading.Event) -> None:
    """``--processes N``: N workers in one share group, supervised as one service (``ingest.processes``)."""
    from ingest.mqtt_probe import broker_refuses_mqtt5
    from ingest.processes import children, supervise

    if options.mqtt_protocol == "3.1.1":
        raise click.UsageError("--processes above 1 needs MQTT 5 shared subscriptions; --mqtt-protocol is 3.1.1")
    if broker_refuses_mqtt5(options.mqtt_url, f"{options.client_id}-probe"):
        raise click.UsageError(
            "--processes above 1 needs MQTT 5 shared subscriptions and the broker does not speak MQTT 5: use one"
            " process (--processes 1) or an MQTT 5 broker such as Mosquitto"
        )
    ctx = click.get_current_context()
    kids = children(
        worker=options.worker,
        share_group=options.share_group,
        processes=processes,
        options=_inherited_options(ctx),
        verbose=int(ctx.find_root().params.get("verbose") or 0),
    )
    env = {"DATAFACTORY_DATABASE_URL": options.database_url, "DATAFACTORY_MQTT_URL": options.mqtt_url}
    names = ", ".join(kid.worker for kid in kids)
    click.echo(f"ingest service {options.worker}: {processes} processes ({names}) in one share group", err=True)
    supervise(kids, env=env, stopping=stopping)


def _inherited_options(ctx: click.Context) -> list[str]:
    """The parent's ``ingest run`` options as command-line arguments for a child."""
    args: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name in _NOT_INHERITED or param.name is None:
            continue
        value = ctx.params.get(param.name)
        if value is None:
            continue
        if param.is_flag and param.secondary_opts:  # --x/--no-x
            args.append(param.opts[0] if value else param.secondary_opts[0])
        elif not param.is_flag:
            args += [param.opts[0], str(value)]
    return args
