"""``datafactory city simulate``: the real plant comes from a plant config (or none), never a hardcoded name."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from datafactory.db.connect import connect
from simulator.city_cli import city

pytestmark = pytest.mark.integration


def test_no_plant_means_every_enterprise_is_simulated(db_url: str) -> None:
    result = CliRunner().invoke(city, ["simulate", "--enterprises", "60", "--months", "13", "--end", "2026-03",
                                       "--no-plant"], env={"DATAFACTORY_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    assert "60 enterprises, 2025-03–2026-03" in result.output
    with connect(db_url) as conn:
        keys = [r[0] for r in conn.execute("SELECT enterprise FROM plants").fetchall()]
    assert keys and all(k.startswith("city-") for k in keys)  # connected plants, none of them the demo plant


def test_the_default_real_plant_is_the_demo_config(db_url: str) -> None:
    result = CliRunner().invoke(city, ["simulate", "--enterprises", "60", "--months", "13"],
                                env={"DATAFACTORY_DATABASE_URL": db_url})
    assert result.exit_code == 0, result.output
    with connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM plants WHERE enterprise = 'demo-precision'").fetchone() == (1,)


def test_a_missing_plant_config_or_a_bad_month_is_one_clear_line(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = CliRunner().invoke(city, ["simulate", "--plant-config", str(missing)],
                                env={"DATAFACTORY_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"})
    assert result.exit_code == 2 and f"{missing} does not exist" in result.output
    result = CliRunner().invoke(city, ["simulate", "--end", "2026-13"])
    assert result.exit_code == 2 and "'2026-13' does not match the format '%Y-%m'" in result.output
