"""``datafactory demo --plant mixed`` against the shared services: OPC-UA, Modbus TCP and S7 machines and the
utility meter in real time, with a summary that the database bears out (samples per source kind, OEE per
machine, the Modbus and S7 machines included).

The plant runs on the wall clock, so the test cannot pick its simulated day: it runs the shipped plant in a time
zone where now is inside a worked shift in which no machine has a planned stop (tests/support/working_time.py),
and so expects availability for every machine, on a Sunday in Dongguan too."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import yaml

from app.cli.demo_sources import bound_kinds
from datafactory.config.loader import validate_document
from simulator.plant_config import layout_from_config
from tests.support.working_time import planned_stops, working_timezone
from tests.test_demo import _demo, _field, _finish

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.integration, pytest.mark.slow]
DURATION_S = 20
WINDOW_S = 120  # the run's simulated time, start-up included, that must be planned production for every machine


def _plant_in_a_working_zone(tmp_path: Path) -> tuple[Path, dict]:
    """The shipped mixed plant, its time zone one in which every machine is in planned production now."""
    plant = yaml.safe_load((ROOT / "edge_configs/mixed-plant.yaml").read_text(encoding="utf-8"))
    now = datetime.now(UTC)

    def all_planned_to_work(tz: str) -> bool:
        plant["enterprise"]["timezone"] = tz
        return not planned_stops(layout_from_config(validate_document(plant)), now, WINDOW_S)

    plant["enterprise"]["timezone"] = working_timezone(now, all_planned_to_work)
    path = tmp_path / "mixed-plant.yaml"
    path.write_text(yaml.safe_dump(plant, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path, plant


def test_mixed_demo_summary_matches_the_database(tmp_path: Path, db_url: str, mqtt_url: str, enterprise: str) -> None:
    env = {"DATAFACTORY_DATABASE_URL": db_url, "DATAFACTORY_MQTT_URL": mqtt_url}
    config, plant = _plant_in_a_working_zone(tmp_path)
    args = ("--plant", "mixed", "--config", str(config), "--duration", str(DURATION_S), "--enterprise", enterprise)
    proc = _demo(tmp_path, *args, env=env)
    out, err = _finish(proc, timeout=240)
    assert proc.returncode == 0, f"{out}\n{err[-3000:]}"
    assert "at 1x" in out  # the plant ran in real time

    kinds = bound_kinds(plant)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT sp.area || '/' || sp.line || '/' || sp.cell, sp.signal, count(*), max(x.time)"
            " FROM samples x JOIN signal_paths sp ON sp.signal_id = x.signal_id WHERE sp.enterprise = %s"
            " GROUP BY 1, 2", (enterprise,),
        ).fetchall()
        oee_cells = {
            str(r[0]) for r in conn.execute(
                "SELECT DISTINCT c.area || '/' || c.line || '/' || c.cell FROM oee o JOIN cells c ON c.id = o.cell_id"
                " JOIN plants p ON p.id = o.plant_id WHERE p.enterprise = %s", (enterprise,),
            ).fetchall()
        }
    per_kind: dict[str, int] = {}
    for cell, signal, count, newest in rows:
        per_kind[kinds[(cell, signal)]] = per_kind.get(kinds[(cell, signal)], 0) + int(count)
        assert newest <= datetime.now(UTC) + timedelta(seconds=1)  # nothing from the future
    assert set(per_kind) == set(kinds.values()) == {"opcua", "mqtt_json", "modbus", "s7"}
    for kind, count in per_kind.items():
        assert count > 0
        match = re.search(rf"^    {re.escape(kind)}\s+(\d+)  ", out, re.MULTILINE)
        assert match, f"no '{kind}' line in the summary:\n{out}"
        assert int(match.group(1)) == count, kind
    assert _field(out, "samples stored") == sum(per_kind.values())

    # OEE for every machine, the polled ones included, in the database and in the summary: each was planned to
    # work, so each row has its availability, not a dash.
    polled = {cell for (cell, signal), kind in kinds.items() if kind in ("modbus", "s7") and signal == "state"}
    assert {kinds[(cell, "state")] for cell in polled} == {"modbus", "s7"}
    assert polled <= oee_cells
    machines = {cell for (cell, signal), kind in kinds.items() if signal == "state"}
    for cell in machines:
        row = re.search(rf"^    {re.escape(cell)} \S+\s+(\S+)", out, re.MULTILINE)
        assert row, f"no OEE line for {cell}:\n{out}"
        assert re.fullmatch(r"\d+\.\d%", row.group(1)), f"no availability for {cell}:\n{out}"
    assert "incomplete shift" in out  # a 20 s run never completes its shift


def test_mixed_demo_refuses_another_speed_before_starting_anything(tmp_path: Path) -> None:
    proc = _demo(tmp_path, "--plant", "mixed", "--speed", "10")
    out, err = _finish(proc, timeout=60)
    assert proc.returncode == 2, f"{out}\n{err}"
    assert "--speed" in err and "real time" in err and "==> services" not in err
    assert not (tmp_path / "state").exists()
