"""``datafactory alerts``: ``run`` (the service), ``list``, ``ack``, ``silence``, ``outbox``, ``retry``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from alerting import engine
from alerting.service import AlertService
from datafactory.db.connect import connect
from datafactory.errors import DataFactoryError
from datafactory.settings import Settings


@click.group()
@click.option("--database-url", help="Database [default: DATAFACTORY_DATABASE_URL].")
@click.pass_context
def alerts(ctx: click.Context, database_url: str | None) -> None:
    """Alert rules from the plant configs: evaluate, notify, acknowledge, silence."""
    ctx.obj = database_url or Settings().database_url


@alerts.command()
@click.option("--config", "configs", multiple=True, type=click.Path(path_type=Path),
              help="Plant config(s) with the rules [default: the configs gateways deployed].")
@click.option("--every", type=float, help="Keep running: one round this many seconds apart.")
@click.pass_obj
def run(url: str, configs: tuple[Path, ...], every: float | None) -> None:
    """Evaluate every rule, move alerts through their lifecycle and send due notifications."""
    svc = AlertService(url, list(configs))
    if every is not None:
        svc.run(every)
        return
    try:
        stats, sent = svc.round()
    except DataFactoryError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"{stats.conditions} conditions, {stats.opened} opened, {stats.fired} fired, {stats.resolved} "
               f"resolved; {sent.sent} sent, {sent.retried} to retry, {sent.failed} failed"
               + (f"; rules not evaluated: {', '.join(stats.failed_rules)}" if stats.failed_rules else ""))


@alerts.command("list")
@click.option("--all", "show_all", is_flag=True, help="Also resolved alerts.")
@click.pass_obj
def list_(url: str, show_all: bool) -> None:
    """Open alerts (id, status, severity, plant, rule, subject, since)."""
    with connect(url) as conn:
        rows = conn.execute(
            "SELECT a.id, a.status, a.severity, p.enterprise || '/' || p.site, a.rule_id, a.subject, a.since,"
            " a.acknowledged_by FROM alert_instances a JOIN plants p ON p.id = a.plant_id"
            " WHERE %s OR a.status <> 'resolved' ORDER BY a.since DESC LIMIT 500", (show_all,)).fetchall()
    for r in rows:
        ack = f" ack by {r[7]}" if r[7] else ""
        click.echo(f"{r[0]:>6} {r[1]:<12} {r[2]:<8} {r[3]} {r[4]} {r[5]} since {r[6]:%Y-%m-%d %H:%M}Z{ack}")


@alerts.command()
@click.argument("alert_id", type=int)
@click.option("--by", required=True, help="Who acknowledges (kept on the alert).")
@click.pass_obj
def ack(url: str, alert_id: int, by: str) -> None:
    """Acknowledge an alert: no more repeats or escalation; it still resolves by itself."""
    with connect(url) as conn:
        ok = engine.acknowledge(conn, alert_id, by, datetime.now(UTC))
        conn.commit()
    if not ok:
        raise click.ClickException(f"alert {alert_id} is not pending or firing; see `datafactory alerts list`")
    click.echo(f"alert {alert_id} acknowledged by {by}")


@alerts.command()
@click.option("--plant", required=True, help="enterprise/site")
@click.option("--rule", default="", help="Rule id ('' = every rule).")
@click.option("--subject", default="", help="Subject, e.g. machining/line-1/cnc-01 ('' = every subject).")
@click.option("--hours", type=float, default=2.0, show_default=True, help="Silence for this long.")
@click.option("--by", required=True, help="Who silences.")
@click.option("--reason", default="", help="Why (kept).")
@click.pass_obj
def silence(url: str, plant: str, rule: str, subject: str, hours: float, by: str, reason: str) -> None:  # noqa: PLR0917
    """No notifications for matching alerts for a while (they are still tracked)."""
    enterprise, _, site = plant.partition("/")
    with connect(url) as conn:
        row = conn.execute("SELECT id FROM plants WHERE enterprise = %s AND site = %s", (enterprise, site)).fetchone()
        if row is None:
            raise click.ClickException(f"no plant {plant!r}: write enterprise/site as `datafactory gateways` shows")
        until = datetime.now(UTC) + timedelta(hours=hours)
        sid = engine.silence(conn, int(row[0]), rule, subject, until=until, by=by, reason=reason)
        conn.commit()
    click.echo(f"silence {sid} until {until:%Y-%m-%d %H:%M}Z")


@alerts.command()
@click.pass_obj
def outbox(url: str) -> None:
    """Notifications not yet sent or failed for good, with their last error."""
    with connect(url) as conn:
        rows = conn.execute("SELECT id, status, receiver, event, attempts, last_error FROM alert_outbox"
                            " WHERE status <> 'sent' ORDER BY id").fetchall()
    for r in rows:
        click.echo(f"{r[0]:>6} {r[1]:<8} {r[2]} {r[3]} attempts={r[4]} {r[5] or ''}")


@alerts.command()
@click.pass_obj
def retry(url: str) -> None:
    """Queue notifications that failed for good once more."""
    with connect(url) as conn:
        n = conn.execute("UPDATE alert_outbox SET status = 'pending', attempts = 0, not_before = now()"
                         " WHERE status = 'failed'").rowcount
        conn.commit()
    click.echo(f"{n} notification(s) queued again")
