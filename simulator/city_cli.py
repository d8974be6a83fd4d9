"""``datafactory city simulate``: write a synthetic city of enterprises into the bureau's tables."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from datafactory.db.connect import connect
from datafactory.settings import get_settings


@click.group()
def city() -> None:
    """Synthetic city of enterprises for the bureau."""


@city.command("simulate")
@click.option("--enterprises", help="Enterprises in the synthetic city.", default=2000, show_default=True)
@click.option("--towns", help="Towns (districts) they are spread over.", default=30, show_default=True)
@click.option("--months", help="Months of monthly reports, ending at --end.", default=36, show_default=True)
@click.option("--seed", help="Random seed; the same seed gives the same city.", default=1, show_default=True)
@click.option("--end", type=click.DateTime(["%Y-%m"]), default="2026-10", show_default=True,
              help="Last month (YYYY-MM).")
@click.option(
    "--plant-config", type=click.Path(path_type=Path, dir_okay=False), default=None,
    help="Plant config of the real, platform-metered enterprise the city includes [default: the demo plant's].",
)
@click.option("--no-plant", is_flag=True, help="Include no real plant: every enterprise is simulated.")
def simulate_cmd(*, enterprises: int, towns: int, months: int, seed: int, end: datetime, plant_config: Path | None,
                 no_plant: bool) -> None:
    """Write a synthetic city (registry, reports, planted events) into the bureau tables."""
    from simulator.city import DEMO_CONFIG, simulate

    if plant_config is not None and not plant_config.is_file():
        raise click.BadParameter(f"{plant_config} does not exist", param_hint="--plant-config")
    real = None if no_plant else (plant_config or DEMO_CONFIG)
    with connect(get_settings().database_url) as conn:
        truth = simulate(conn, enterprises=enterprises, towns=towns, months=months, seed=seed, end=end.date(),
                         plant_config=real)
    click.echo(f"{truth.enterprises} enterprises, {truth.first_month:%Y-%m}–{truth.last_month:%Y-%m}; planted:"
               f" division {truth.decline_division} −15 % from {truth.decline_month:%Y-%m}, park {truth.growth_park}"
               f" growing from {truth.growth_month:%Y-%m}")
