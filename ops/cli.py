"""Command line: ``broker config``, ``audit verify|show|watch``, ``backup``, ``restore`` and ``db roles``' body.

Every command here installs the secret-redaction log filter first, so a password from the environment cannot
reach a log line even through a library's error message.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import click

from datafactory.credentials import install_redaction
from datafactory.db.connect import connect
from datafactory.settings import get_settings, redact_url


def actor() -> str:
    """Who is acting: the OS user (the database user is recorded by the server in ``details`` where useful)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def run_db_roles(*, login: bool, configs: tuple[str, ...] = ()) -> None:
    from datafactory.config import load_config
    from datafactory.db.registry import upsert_plant_from_config
    from datafactory.db.rls import provision
    from datafactory.errors import ConfigError

    install_redaction()
    settings = get_settings()
    try:
        plants = [load_config(path) for path in configs]
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    with connect(settings.database_url) as conn:
        for cfg in plants:  # the same plant row `config deploy` and ingest would create
            upsert_plant_from_config(conn, cfg)
        conn.commit()
        report = provision(conn, actor=actor(), login=login)
    click.echo(f"{redact_url(settings.database_url)}: roles provisioned")
    click.echo(f"  created roles: {', '.join(report.roles.created) or 'none'}")
    for role, plant_id in sorted(report.plant_roles.items()):
        click.echo(f"  plant role {role} -> plant {plant_id}")
    click.echo(f"  row-level security on: {', '.join(report.protected)}")
    if report.viewed:
        click.echo(f"  plant roles read through df_plant_views (no RLS possible): {', '.join(report.viewed)}")
    if login:
        click.echo(f"  LOGIN enabled: {', '.join(report.roles.login_enabled) or 'none'}")
        for missing in report.roles.no_password:
            click.echo(f"  left NOLOGIN (password variable not set): {missing}")


@click.group()
def audit() -> None:
    """The hash-chained audit trail and security early warning."""


@audit.command()
def verify() -> None:
    """Recompute the audit chain; exit 1 naming the first rows that were modified or deleted."""
    from datafactory.db.audit import verify as verify_chain

    install_redaction()
    with connect(get_settings().database_url) as conn:
        result = verify_chain(conn)
    if not result.ok:
        for problem in result.problems:
            click.echo(f"TAMPERED {problem}", err=True)
        raise click.exceptions.Exit(1)
    click.echo(f"audit chain intact: {result.rows} row(s), head seq={result.head_seq} hash={result.head_hash}")


@audit.command()
@click.option("--limit", default=20, show_default=True, help="How many of the newest entries.")
def show(limit: int) -> None:
    """Print the newest audit entries as JSON lines."""
    install_redaction()
    with connect(get_settings().database_url) as conn:
        rows = conn.execute(
            "SELECT seq, time, actor, action, object, details, hash FROM audit_log ORDER BY seq DESC LIMIT %s",
            (limit,),
        ).fetchall()
    for seq, time, who, action, obj, details, digest in reversed(rows):
        click.echo(
            json.dumps(
                {
                    "seq": seq,
                    "time": time.isoformat(),
                    "actor": who,
                    "action": action,
                    "object": obj,
                    "details": details,
                    "hash": digest,
                },
                ensure_ascii=False,
            )
        )


@audit.command()
@click.option(
    "--mosquitto-log",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Broker log to scan [default: $DATAFACTORY_SECURITY_MOSQUITTO_LOG].",
)
@click.option(
    "--mosquitto-passwd",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Broker password file: its users are the known ones ($DATAFACTORY_SECURITY_MOSQUITTO_PASSWD).",
)
@click.option("--every", type=float, default=None, help="Repeat every this many seconds [default: run once].")
def watch(mosquitto_log: Path | None, mosquitto_passwd: Path | None, every: float | None) -> None:
    """Run the attack/misuse detectors and record new alerts in security_alerts."""
    import time

    from ops.detectors import WatchSettings, run

    install_redaction()
    settings = WatchSettings()
    if mosquitto_log is not None:
        settings.mosquitto_log = mosquitto_log
    if mosquitto_passwd is not None:
        settings.mosquitto_passwd = mosquitto_passwd
    with connect(get_settings().database_url) as conn:
        while True:
            alerts = run(conn, settings)
            for alert in alerts:
                click.echo(str(alert))
            if every is None:
                click.echo(f"{len(alerts)} new alert(s)")
                return
            time.sleep(every)


@click.command()
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), required=True, help="Dump file.")
@click.option("--compress", type=click.IntRange(0, 9), default=None, help="pg_dump compression level [default: 6].")
def backup(out: Path, compress: int | None) -> None:
    """Dump the database (pg_dump -Fc) and write FILE.manifest.json with per-table row counts and checksums."""
    from ops.backup import backup as run_backup

    install_redaction()
    result = run_backup(get_settings().database_url, out, actor=actor(), compress=compress)
    rows = sum(t["rows"] for t in result.tables.values())
    click.echo(f"{result.dump}: {result.bytes} bytes, {len(result.tables)} tables, {rows} rows, {result.seconds:.1f} s")
    click.echo(f"manifest: {result.manifest}")


@click.command()
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Dump file written by `datafactory backup` (its .manifest.json beside it).",
)
@click.option("--database-url", required=True, help="URL of a NEW database to restore into (created if missing).")
@click.option("--jobs", default=2, show_default=True, help="Parallel pg_restore jobs.")
def restore(source: Path, database_url: str, jobs: int) -> None:
    """Restore a backup into a fresh database and verify it against the manifest; exit 1 on any mismatch."""
    from ops.backup import RestoreError
    from ops.backup import restore as run_restore

    install_redaction()
    try:
        result = run_restore(source, database_url, actor=actor(), jobs=jobs)
    except RestoreError as err:
        click.echo(f"RESTORE FAILED: {err}", err=True)
        raise click.exceptions.Exit(1) from None
    click.echo(
        f"restored {result.database}: {result.tables} tables verified (counts and checksums) in {result.seconds:.1f} s"
    )


@click.group()
def broker() -> None:
    """Mosquitto configuration: credentials and ACLs generated from plant configs."""


@broker.command("config")
@click.option(
    "--config",
    "configs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Plant config (repeatable; a shell glob after it works too).",
)
@click.argument("more", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="Output directory.")
@click.option("--port", default=1883, show_default=True, help="Plain MQTT listener port.")
@click.option("--bind", default=None, help="Bind the plain listener to this address (e.g. 127.0.0.1 with TLS).")
@click.option(
    "--install-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where the files will live on the broker host (paths in mosquitto.conf); default --out.",
)
@click.option(
    "--log-file", type=click.Path(path_type=Path), default=None, help="Broker log [default: DIR/mosquitto.log]."
)
@click.option(
    "--tls-cert", type=click.Path(path_type=Path), default=None, help="Server certificate: adds listener 8883."
)
@click.option("--tls-key", type=click.Path(path_type=Path), default=None, help="Private key of --tls-cert.")
@click.option("--cafile", type=click.Path(path_type=Path), default=None, help="CA bundle for client certificates.")
@click.option("--tls-port", default=8883, show_default=True, help="TLS listener port.")
@click.option(
    "--debug-log/--no-debug-log",
    default=True,
    show_default=True,
    help="Log at debug level: needed to see refused publishes (verbose).",
)
def broker_config(  # noqa: PLR0917 - click passes options positionally
    configs: tuple[Path, ...],
    more: tuple[Path, ...],
    out: Path,
    port: int,
    bind: str | None,
    install_dir: Path | None,
    log_file: Path | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    cafile: Path | None,
    tls_port: int,
    debug_log: bool,
) -> None:
    """Write mosquitto.conf, passwd and acl for the gateways of the given plant configs.

    Passwords are read from DF_MQTT_PASSWORD_<USER> (or …_FILE); none is ever printed.
    """
    from datafactory.config import load_config
    from datafactory.errors import ConfigError
    from ops.broker_config import TlsOptions, password_var, write_broker_config

    install_redaction()
    paths = [*configs, *more]
    if not paths:
        raise click.UsageError("give at least one plant config (--config FILE)")
    if (tls_cert is None) != (tls_key is None):
        raise click.UsageError("--tls-cert and --tls-key go together")
    tls = TlsOptions(tls_cert, tls_key, cafile, tls_port) if tls_cert and tls_key else None
    try:
        files = write_broker_config(
            [load_config(p) for p in paths],
            out,
            port=port,
            bind=bind,
            install_dir=install_dir,
            log_file=log_file,
            tls=tls,
            debug_log=debug_log,
        )
    except ConfigError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {files.conf}, {files.passwd} (mode 0600), {files.acl}")
    for user in files.users:
        click.echo(f"  user {user}  (password from ${password_var(user)})")
    for user in files.skipped:
        click.echo(f"  skipped optional user {user}: ${password_var(user)} is not set")
