"""``datafactory report shift``: the shift hand-over report of one plant and shift (HTML, PDF, CSV), sent to the
shift's receivers with ``--send``, or made for every shift as it ends with ``--every``."""

from __future__ import annotations

import logging
import time
from datetime import UTC, date, datetime
from pathlib import Path

import click
import psycopg
from psycopg.types.json import Jsonb

from alerting.delivery import deliver_due
from alerting.engine import Plant, enqueue
from alerting.report import data, html, output
from alerting.service import plants_from
from datafactory.db.connect import connect
from datafactory.errors import DataFactoryError
from datafactory.settings import Settings

log = logging.getLogger(__name__)


def find_plant(conn: psycopg.Connection, label: str, configs: list[Path]) -> Plant:
    plants = plants_from(conn, configs)
    for p in plants:
        if p.label == label:
            return p
    known = ", ".join(sorted(p.label for p in plants)) or "none"
    raise click.BadParameter(f"no plant {label!r} with a config (known: {known})", param_hint="--plant")


def make(conn: psycopg.Connection, plant: Plant, window: data.ShiftWindow, out: Path, langs: list[str], *,
         pdf: bool) -> tuple[data.Report, dict[str, list[Path]]]:
    report = data.load(conn, plant.id, plant.config, window)
    return report, {lang: output.write(report, out, lang, pdf=pdf) for lang in dict.fromkeys(langs)}


def summary(r: data.Report, lang: str) -> str:
    """The message text: the few numbers a chat preview shows (the PDF, where the channel takes files, has it all)."""
    zh = lang == "zh"
    top = r.downtime[0] if r.downtime else None
    open_alerts = sum(1 for a in r.alerts if data.alert_state(a, r.window) != "resolved")
    oee = html.pct(r.plant.oee)
    prev = html.pct(r.previous.oee) if r.previous else "–"
    lines = [f"OEE {oee}（上一班 {prev}）" if zh else f"OEE {oee} (previous shift {prev})",
             (f"可用率 {html.pct(r.plant.availability)} · 性能率 {html.pct(r.plant.performance)} · 质量率 "
              f"{html.pct(r.plant.quality)}") if zh else
             (f"A {html.pct(r.plant.availability)} · P {html.pct(r.plant.performance)} · "
              f"Q {html.pct(r.plant.quality)}")]
    if top:
        lines.append(f"{'主要停机' if zh else 'Top downtime'}: {top['reason']} {top['seconds'] / 60:.0f} "
                     f"{'分钟' if zh else 'min'}")
    kwh = r.energy.get("kwh_per_good_unit")
    if kwh is not None:
        lines.append(f"{'单位良品电耗' if zh else 'Energy per good unit'}: {kwh:.3f} kWh")
    lines.append(f"{'未关闭告警' if zh else 'Open alerts'}: {open_alerts}")
    return "\n".join(lines)


def send(conn: psycopg.Connection, plant: Plant, report: data.Report, files: dict[str, list[Path]]) -> int:
    """Queue the report for the shift's receivers (each in its language, the PDF attached when there is one)."""
    window = report.window
    cfg = plant.config.alerting
    wanted = [n for s in cfg.shift_reports if s.shift == window.name for n in s.receivers]
    title = {"zh": f"交接班报告：{plant.label} {window.day} {window.name}",
             "en": f"Shift report: {plant.label} {window.day} {window.name}"}
    queued = 0
    for lang, paths in files.items():
        receivers = [n for n in wanted if cfg.receiver(n).language.value == lang]
        pdf = next((str(p) for p in paths if p.suffix == ".pdf"), None)
        body = {k: summary(report, k) for k in title}
        queued += enqueue(conn, plant, None, "report", receivers, message={"title": title, "body": body},
                          severity="info", now=datetime.now(UTC), attach=pdf)
    return queued


def _langs(plant: Plant, shift: str, lang: str | None) -> list[str]:
    cfg = plant.config.alerting
    langs = [cfg.receiver(n).language.value for s in cfg.shift_reports if s.shift == shift for n in s.receivers]
    return [lang] if lang else (langs or ["zh"])


def once(url: str, label: str, shift: str, day: date | None, out: Path, lang: str | None, *, pdf: bool,  # noqa: PLR0917
         deliver: bool, configs: list[Path], only_new: bool = False) -> tuple[dict[str, list[Path]], int] | None:
    with connect(url, application_name="datafactory-report") as conn:
        plant = find_plant(conn, label, configs)
        window = (data.shift_window(plant.config, shift, day) if day
                  else data.last_completed(plant.config, shift, datetime.now(UTC)))
        if only_new and conn.execute("SELECT 1 FROM shift_reports WHERE plant_id = %s AND shift_name = %s"
                                     " AND shift_start = %s AND sent", (plant.id, shift, window.start)).fetchone():
            return None
        langs = _langs(plant, shift, lang) if deliver else [lang or "zh"]
        report, files = make(conn, plant, window, out, langs, pdf=pdf)
        queued = send(conn, plant, report, files) if deliver else 0
        conn.execute(
            "INSERT INTO shift_reports (plant_id, shift_name, shift_start, shift_end, language, files, queued, sent)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (plant_id, shift_name, shift_start) DO UPDATE SET"
            " files = EXCLUDED.files, queued = shift_reports.queued + EXCLUDED.queued,"
            " sent = shift_reports.sent OR EXCLUDED.sent, created_at = now()",
            (plant.id, shift, window.start, window.end, ",".join(files),
             Jsonb([str(p) for ps in files.values() for p in ps]), queued, deliver))
        conn.commit()  # the report's notifications and its record together: --every never sends it twice
        if deliver:
            deliver_due(conn, datetime.now(UTC))
    return files, queued


@click.group()
@click.option("--database-url", help="Database [default: DATAFACTORY_DATABASE_URL].")
@click.pass_context
def report(ctx: click.Context, database_url: str | None) -> None:
    """Reports for people: the shift hand-over report."""
    ctx.obj = database_url or Settings().database_url


@report.command("shift")
@click.option("--plant", "label", required=True, help="enterprise/site, as `datafactory gateways` shows it.")
@click.option("--shift", required=True, help="Shift name of the plant's calendar, e.g. day or night.")
@click.option("--date", "day", type=click.DateTime(["%Y-%m-%d"]),
              help="Plant-local date the shift starts on [default: the last shift of that name that has ended].")
@click.option("--lang", type=click.Choice(["zh", "en"]), help="Language [default: zh; with --send, the receivers'].")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("reports"),
              show_default=True, help="Directory for the HTML, PDF and CSV files.")
@click.option("--no-pdf", is_flag=True, help="Do not print the PDF (no Chromium needed).")
@click.option("--send", "deliver", is_flag=True, help="Send it to the shift's receivers (alerting.shift_reports).")
@click.option("--every", type=float, help="Keep running: every this many seconds, report (and send) each shift of "
              "that name once it has ended and analytics has computed it.")
@click.option("--config", "configs", multiple=True, type=click.Path(path_type=Path, exists=True, dir_okay=False),
              help="Plant config file [default: the config the plant's gateway deployed].")
@click.pass_obj
def shift_cmd(url: str, label: str, shift: str, day: datetime | None, lang: str | None, out: Path,  # noqa: PLR0917
              no_pdf: bool, deliver: bool, every: float | None, configs: tuple[Path, ...]) -> None:
    """Write the shift hand-over report: OEE and losses per line and machine against the previous shift and the
    same shift last week, downtime Pareto, scrap, energy per good unit, alerts, data gaps."""
    if every is None:
        try:
            result = once(url, label, shift, day.date() if day else None, out, lang, pdf=not no_pdf,
                          deliver=deliver, configs=list(configs))
        except DataFactoryError as err:
            raise click.ClickException(str(err)) from err
        assert result is not None
        files, queued = result
        for paths in files.values():
            for p in paths:
                click.echo(str(p))
        if deliver:
            click.echo(f"{queued} notification(s) queued for the shift's receivers")
        return
    while True:
        try:
            made = once(url, label, shift, None, out, lang, pdf=not no_pdf, deliver=True, configs=list(configs),
                        only_new=True)
            if made:
                log.info("shift report written: %s", ", ".join(str(p[0]) for p in made[0].values()))
        except data.ReportError as err:
            log.info("no report yet: %s", err)  # typically: analytics has not computed the shift yet
        except DataFactoryError as err:
            log.error("shift report failed, retrying in %.0f s: %s", every, err)
        time.sleep(every)
