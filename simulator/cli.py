"""``datafactory simulate run|backfill``: the live simulated plant, or months of history straight into the DB."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from datafactory.errors import DataFactoryError
from datafactory.settings import get_settings, redact_url
from simulator.fieldbus import FieldbusPlan
from simulator.layout import PlantLayout, demo_layout
from simulator.live import serve
from simulator.model import PlantModel, SimOptions
from simulator.shift_calendar import ShiftCalendar


def _parse_time(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise click.BadParameter(f"{value!r} is not an ISO 8601 time", param_hint=what) from err
    if dt.tzinfo is None:
        raise click.BadParameter(f"{value!r} has no time zone (add Z or +08:00)", param_hint=what)
    return dt.astimezone(UTC)


def _layout(machines_per_line: int, lines_per_area: int) -> PlantLayout:
    try:
        return demo_layout(machines_per_line, lines_per_area)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--machines-per-line/--lines-per-area") from err


def _from_config(path: Path) -> tuple[PlantLayout, int | None, str | None, ShiftCalendar, FieldbusPlan]:
    from urllib.parse import urlsplit

    from datafactory.config.loader import load_config
    from datafactory.config.models import OpcUaSource
    from simulator.plant_config import configured_meter_topic, fieldbus_from_config, layout_from_config
    from simulator.shift_calendar import from_config

    try:
        cfg = load_config(path)
        layout = layout_from_config(cfg)
    except DataFactoryError as err:
        raise click.ClickException(str(err)) from err
    port = next((urlsplit(s.endpoint).port for s in cfg.sources if isinstance(s, OpcUaSource)), None)
    calendar = from_config(cfg.analytics.calendar, layout.timezone)
    return layout, port, configured_meter_topic(cfg), calendar, fieldbus_from_config(cfg)


def _check_cell(layout: PlantLayout, cell: str | None, what: str) -> None:
    if cell is not None and cell not in {m.path for m in layout.machines}:
        known = ", ".join(m.path for m in layout.machines[:4])
        raise click.BadParameter(f"{cell!r} is not a simulated machine (e.g. {known}, …)", param_hint=what)


def _sim_options(
    layout: PlantLayout,
    *,
    seed: int,
    analog_period_s: float,
    energy_saving_at: str | None,
    bearing_fault: str | None,
    energy_meter_reset: str | None,
    energy_saving_fraction: float = 0.10,
    bearing_onset: str | None = None,
    bearing_days: float | None = None,
    calendar: ShiftCalendar | None = None,
) -> SimOptions:
    _check_cell(layout, bearing_fault, "--bearing-fault")
    reset_cell, reset_at = None, None
    if energy_meter_reset:
        reset_cell, _, when = energy_meter_reset.partition("@")
        _check_cell(layout, reset_cell, "--energy-meter-reset")
        reset_at = _parse_time(when, "--energy-meter-reset")
    if not 0.0 <= energy_saving_fraction < 1.0:
        raise click.BadParameter(f"{energy_saving_fraction} is not a fraction in [0, 1)",
                                 param_hint="--energy-saving-fraction")
    if bearing_days is not None and bearing_days <= 0:
        raise click.BadParameter(f"{bearing_days} is not a positive number of days", param_hint="--bearing-days")
    return SimOptions(
        seed=seed,
        analog_period_s=analog_period_s,
        energy_saving_at=_parse_time(energy_saving_at, "--energy-saving-at"),
        energy_saving_fraction=energy_saving_fraction,
        bearing_fault_cell=bearing_fault,
        bearing_onset=_parse_time(bearing_onset, "--bearing-onset"),
        bearing_days_to_threshold=bearing_days,
        energy_reset_cell=reset_cell,
        energy_reset_at=reset_at,
        calendar=calendar or ShiftCalendar(timezone=layout.timezone),
    )


@click.group()
def simulate() -> None:
    """The simulated plant: live OPC-UA server + MQTT meter, or a database backfill."""


_plant_options = [
    click.option("--seed", type=int, default=1, show_default=True, help="Random seed; same seed, same plant."),
    click.option("--machines-per-line", type=int, default=4, show_default=True, help="Machines on each line."),
    click.option("--lines-per-area", type=int, default=1, show_default=True, help="Lines in each area."),
    click.option("--energy-saving-at", help="ISO time from which all power drops by a fraction (planted event)."),
    click.option("--bearing-fault", "bearing_fault", help="Cell path 'area/line/cell' whose bearing degrades."),
    click.option(
        "--energy-meter-reset", help="'area/line/cell@ISO-time': that machine's energy meter restarts from 0 then."
    ),
]


def _with_plant_options(f):  # type: ignore[no-untyped-def]
    for opt in reversed(_plant_options):
        f = opt(f)
    return f


@simulate.command()
@_with_plant_options
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Serve the machines of this plant config (its endpoint port and meter topic) instead of the demo plant.",
)
@click.option("--speed", type=float, default=1.0, show_default=True, help="Simulated seconds per real second.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the OPC-UA server listens on.")
@click.option("--port", type=int, help="OPC-UA port; 0 picks a free one [default: the config's, else 4840].")
@click.option("--mqtt-url", help="Broker for the utility meter [default: DATAFACTORY_MQTT_URL].")
@click.option("--no-meter", is_flag=True, help="Do not publish the MQTT utility meter.")
@click.option("--device-topic-prefix", help="First level of the meter topic [default: the config's, else sim].")
@click.option("--duration", type=float, help="Stop after this many SIMULATED seconds [default: run until stopped].")
@click.option("--start", "start_iso", help="Simulated start time, ISO 8601 [default: now].")
@click.option("--analog-period-s", type=float, default=5.0, show_default=True, help="Analog sample period.")
@click.option("--truth-file", type=click.Path(path_type=Path), help="SQLite file recording every emitted value.")
@click.option("--database-url", help="Also record emitted values and ground truth in this database.")
def run(
    *,
    seed: int,
    machines_per_line: int,
    lines_per_area: int,
    energy_saving_at: str | None,
    bearing_fault: str | None,
    energy_meter_reset: str | None,
    config_path: Path | None,
    speed: float,
    host: str,
    port: int | None,
    mqtt_url: str | None,
    no_meter: bool,
    device_topic_prefix: str | None,
    duration: float | None,
    start_iso: str | None,
    analog_period_s: float,
    truth_file: Path | None,
    database_url: str | None,
) -> None:
    """Serve the simulated plant on OPC-UA and publish the utility meter over MQTT, in real time × SPEED.

    --duration and --start are simulated time; values carry the simulated time as their source timestamp.
    """
    layout = _layout(machines_per_line, lines_per_area)
    topic = None
    calendar = None
    fieldbus = FieldbusPlan()
    if config_path is not None:
        layout, config_port, config_topic, calendar, fieldbus = _from_config(config_path)
        port = config_port if port is None else port
        topic = None if device_topic_prefix else config_topic
    if fieldbus.protocols and speed != 1:
        # Modbus and S7 carry no source timestamp: the gateway stamps values when it reads them, so simulated
        # time running faster than the clock would put those machines' samples at the wrong times.
        raise click.BadParameter(
            f"{len(fieldbus.protocols)} machines of this config are polled (Modbus/S7) and are stamped by the "
            "gateway's clock: run them at --speed 1",
            param_hint="--speed",
        )
    start = _parse_time(start_iso, "--start") or datetime.now(UTC).replace(microsecond=0)
    end = start + timedelta(seconds=duration) if duration else None
    options = _sim_options(
        layout,
        seed=seed,
        analog_period_s=analog_period_s,
        energy_saving_at=energy_saving_at,
        bearing_fault=bearing_fault,
        energy_meter_reset=energy_meter_reset,
        calendar=calendar,
    )
    model = PlantModel(layout, options, start=start, end=end)
    meter_url = None if no_meter else (mqtt_url or get_settings().mqtt_url)
    try:
        asyncio.run(
            serve(
                model,
                host=host,
                port=4840 if port is None else port,
                speed=speed,
                mqtt_url=meter_url,
                topic_prefix=device_topic_prefix or "sim",
                meter_topic=topic,
                truth_file=truth_file,
                database_url=database_url,
                fieldbus=fieldbus,
            )
        )
    except DataFactoryError as err:
        raise click.ClickException(str(err)) from err


@simulate.command()
@_with_plant_options
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Simulate the machines of this plant config (its time zone, cells, ideal cycle times, the shifts of its"
    " analytics.calendar) instead of the demo.",
)
@click.option("--energy-saving-fraction", type=float, default=0.10, show_default=True,
              help="Size of the planted saving of --energy-saving-at (fraction of all power).")
@click.option("--bearing-onset", help="ISO time the --bearing-fault degradation starts [default: drawn].")
@click.option("--bearing-days", type=float, help="Days from onset to the failure threshold [default: 5–10, drawn].")
@click.option("--days", type=float, required=True, help="Length of the simulated period in days.")
@click.option("--start", "start_iso", help="Start of the period, ISO 8601 [default: END − DAYS].")
@click.option("--end", "end_iso", help="End of the period, ISO 8601 [default: now, to the hour].")
@click.option("--analog-period-s", type=float, default=60.0, show_default=True, help="Analog sample period.")
@click.option("--database-url", help="Target database [default: DATAFACTORY_DATABASE_URL].")
@click.option("--no-migrate", is_flag=True, help="Do not run migrations first.")
def backfill(
    *,
    seed: int,
    machines_per_line: int,
    lines_per_area: int,
    energy_saving_at: str | None,
    bearing_fault: str | None,
    energy_meter_reset: str | None,
    config_path: Path | None,
    energy_saving_fraction: float,
    bearing_onset: str | None,
    bearing_days: float | None,
    days: float,
    start_iso: str | None,
    end_iso: str | None,
    analog_period_s: float,
    database_url: str | None,
    no_migrate: bool,
) -> None:
    """Simulate DAYS of history and write samples and ground truth straight into the database."""
    from datafactory.db.migrate import migrate
    from simulator.backfill import backfill as run_backfill

    layout, calendar = _layout(machines_per_line, lines_per_area), None
    if config_path is not None:
        layout, _port, _topic, calendar, _fieldbus = _from_config(config_path)
    options = _sim_options(
        layout,
        seed=seed,
        analog_period_s=analog_period_s,
        energy_saving_at=energy_saving_at,
        bearing_fault=bearing_fault,
        energy_meter_reset=energy_meter_reset,
        energy_saving_fraction=energy_saving_fraction,
        bearing_onset=bearing_onset,
        bearing_days=bearing_days,
        calendar=calendar,
    )
    start = _parse_time(start_iso, "--start")
    end = _parse_time(end_iso, "--end")
    if start is None:
        end = end or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        start = end - timedelta(days=days)
    else:
        end = start + timedelta(days=days)
    url = database_url or get_settings().database_url
    t0 = time.perf_counter()

    def progress(n: int, upto: datetime) -> None:
        rate = n / max(time.perf_counter() - t0, 1e-9)
        click.echo(f"  {n:>12,} samples up to {upto:%Y-%m-%d %H:%M}Z  ({rate:,.0f}/s)", err=True)

    click.echo(
        f"backfill {len(layout.machines)} machines, {start.isoformat()} → {end.isoformat()} into {redact_url(url)}",
        err=True,
    )
    try:
        if not no_migrate:
            migrate(url)
        result = run_backfill(url, layout, options, start=start, end=end, progress=progress)
    except DataFactoryError as err:
        raise click.ClickException(str(err)) from err
    click.echo(
        f"wrote {result.samples:,} samples of {result.signals} signals in {result.seconds:.1f} s "
        f"({result.samples_per_s:,.0f}/s); truth: {result.states} state intervals, {result.shifts} shift rows, "
        f"{result.events} events",
        err=True,
    )
    click.echo(
        json.dumps(
            {
                "samples": result.samples,
                "signals": result.signals,
                "seconds": round(result.seconds, 2),
                "samples_per_s": round(result.samples_per_s),
                "states": result.states,
                "shifts": result.shifts,
                "events": result.events,
                "start": start.isoformat(),
                "end": end.isoformat(),
            }
        )
    )
