"""Backfill into a real, freshly migrated PostgreSQL database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from app.cli.main import cli
from datafactory.errors import DataFactoryError
from simulator import PlantModel, SimOptions, demo_layout
from simulator.backfill import backfill
from simulator.truth_db import PgEmittedRecorder

pytestmark = pytest.mark.integration

START = datetime(2026, 6, 6, 0, 0, tzinfo=UTC)  # Saturday 08:00 local
END = START + timedelta(days=2)  # Saturday's two shifts, then Sunday without
CELL = "machining/line-1/cnc-03"


def _row(conn: psycopg.Connection, query: str, params: tuple[Any, ...] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row


def _options() -> SimOptions:
    return SimOptions(seed=4, analog_period_s=120, bearing_fault_cell=CELL, energy_saving_at=START + timedelta(days=1))


def test_backfill_writes_every_sample_and_the_ground_truth(db_url):
    layout = demo_layout()
    chunks: list[int] = []
    result = backfill(
        db_url, layout, _options(), start=START, end=END, chunk_rows=20_000, progress=lambda n, t: chunks.append(n)
    )
    expected = PlantModel(layout, _options(), start=START, end=END)
    n_expected = sum(1 for _ in expected.samples())
    truth = expected.truth()
    assert result.samples == n_expected and chunks[-1] == n_expected and len(chunks) > 3
    assert result.signals == 66
    with psycopg.connect(db_url) as conn:
        assert _row(conn, "SELECT count(*) FROM samples")[0] == n_expected
        per_signal: dict[str, int] = dict(
            conn.execute(
                "SELECT sp.area || '/' || sp.line || '/' || sp.cell || '/' || sp.signal, count(*) FROM samples s"
                " JOIN signal_paths sp ON sp.signal_id = s.signal_id GROUP BY 1"
            ).fetchall()
        )
        assert len(per_signal) == 66
        meanings: dict[str, str] = dict(
            conn.execute("SELECT signal, meaning FROM signal_paths WHERE cell = 'cnc-01'").fetchall()
        )
        assert meanings["state"] == "machine_state" and meanings["energy"] == "energy_kwh"
        attrs = _row(conn, "SELECT attributes FROM cells WHERE cell = 'cnc-01'")[0]
        assert attrs["ideal_cycle_time_s"] == layout.machines[0].ideal_cycle_time_s
        assert _row(conn, "SELECT count(*) FROM sim_truth_states")[0] == len(truth.states)
        shifts = _row(
            conn,
            "SELECT count(*), max(abs(planned_busy_s - apt_s - delay_s - setup_s - down_s)),"
            " sum(total_count) - sum(good_count) - sum(reject_count) FROM sim_truth_shift",
        )
        assert shifts[0] == len(truth.shifts) == 2 * 8
        assert shifts[1] < 1e-6 and shifts[2] == 0
        kinds = {r[0] for r in conn.execute("SELECT kind FROM sim_truth_events").fetchall()}
        assert {"energy_saving", "bearing_degradation_onset", "bearing_failure_threshold"} <= kinds
        # the last state value in the database is the truth's last interval
        last = _row(
            conn,
            "SELECT s.value FROM samples s JOIN signal_paths sp ON sp.signal_id = s.signal_id"
            " WHERE sp.cell = 'asm-04' AND sp.signal = 'state' ORDER BY s.time DESC LIMIT 1",
        )[0]
        assert last == [i.state_code for i in truth.states if i.cell_path == "assembly/line-1/asm-04"][-1]
    with pytest.raises(DataFactoryError, match="already exist"):
        backfill(db_url, layout, _options(), start=START, end=END)


def test_backfill_cli_scales_the_plant_and_emitted_truth_is_idempotent(db_url):
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "simulate",
            "backfill",
            "--days",
            "0.5",
            "--start",
            "2026-06-08T00:00:00Z",
            "--machines-per-line",
            "3",
            "--lines-per-area",
            "2",
            "--analog-period-s",
            "300",
            "--database-url",
            db_url,
            "--no-migrate",
            "--energy-meter-reset",
            "assembly/line-2/asm-03@2026-06-08T06:00:00Z",
        ],
    )
    assert res.exit_code == 0, res.output
    with psycopg.connect(db_url) as conn:
        assert _row(conn, "SELECT count(*) FROM cells WHERE cell <> 'main-meter'")[0] == 12
        assert _row(conn, "SELECT count(*) FROM signals")[0] == 12 * 8 + 2
        assert _row(conn, "SELECT count(*) FROM sim_truth_shift")[0] == 12
        n = _row(conn, "SELECT count(*) FROM samples")[0]
        reset = _row(conn, "SELECT cell_path, time FROM sim_truth_events WHERE kind = 'energy_meter_reset'")
        assert reset[0] == "assembly/line-2/asm-03" and reset[1] == datetime(2026, 6, 8, 6, tzinfo=UTC)
    assert f'"samples": {n}' in res.output
    bad = runner.invoke(
        cli, ["simulate", "backfill", "--days", "1", "--bearing-fault", "nope/x/y", "--database-url", db_url]
    )
    assert bad.exit_code != 0 and "not a simulated machine" in bad.output
    # live runs record what they emit; a repeated run over the same simulated instants keeps one copy
    with psycopg.connect(db_url) as conn:
        recorder = PgEmittedRecorder(conn, _row(conn, "SELECT id FROM plants")[0])
        for value in (1.0, 2.0):
            recorder.add(CELL, "power", 1_000_000, value)
            recorder.add(CELL, "energy", 1_000_000, value)
            recorder.flush()
        recorder.close()
        assert _row(conn, "SELECT count(*), sum(value) FROM sim_truth_emitted") == (2, 2.0)


def test_two_simulated_plants_keep_their_own_truth(db_url):
    # The same cell paths in two plants of one database: before migration 0095 the second backfill's truth
    # replaced the first one's (the delete-then-copy of a range matched on cell path only).
    from dataclasses import replace

    start, end = START + timedelta(days=2), START + timedelta(days=2, hours=12)  # a Monday's day shift
    plants = {"plant-a": replace(demo_layout(1), enterprise="plant-a"), "plant-b": replace(demo_layout(1),
                                                                                        enterprise="plant-b")}
    expected = {}
    for seed, (name, layout) in enumerate(plants.items(), start=21):
        opts = SimOptions(seed=seed, analog_period_s=600)
        backfill(db_url, layout, opts, start=start, end=end)
        model = PlantModel(layout, opts, start=start, end=end)
        for _ in model.samples():  # the truth accumulates as the simulation runs
            pass
        expected[name] = model.truth()
    with psycopg.connect(db_url) as conn:
        for name, truth in expected.items():
            got = conn.execute(
                "SELECT t.cell_path, t.total_count, t.good_count FROM sim_truth_shift t JOIN plants p"
                " ON p.id = t.plant_id WHERE p.enterprise = %s ORDER BY 1", (name,)).fetchall()
            assert got == sorted((h.cell_path, h.total_count, h.good_count) for h in truth.shifts)
            states = _row(conn, "SELECT count(*) FROM sim_truth_states t JOIN plants p ON p.id = t.plant_id"
                          " WHERE p.enterprise = %s", (name,))
            assert states[0] == len(truth.states)
        a, b = (sorted((h.cell_path, h.total_count) for h in t.shifts) for t in expected.values())
        assert a != b, "two seeds, two different truths: the check above could tell them apart"


def test_backfill_cli_from_a_plant_config_with_its_time_zone_and_planted_events(db_url, tmp_path):
    import yaml

    from simulator.layout import PlantLayout, machine_spec
    from simulator.plant_config import plant_document

    machines = (machine_spec("machining", "line-9", "m-1", 1, ideal_cycle_time_s=33.0),
                machine_spec("machining", "line-9", "m-2", 2, ideal_cycle_time_s=71.0))
    doc = plant_document(PlantLayout(machines, enterprise="berlin-works", timezone="Europe/Berlin"))
    path = tmp_path / "plant.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    res = CliRunner().invoke(cli, [
        "simulate", "backfill", "--config", str(path), "--seed", "9", "--start", "2026-01-06T09:20:00Z",
        "--days", "1.5", "--analog-period-s", "300", "--database-url", db_url, "--no-migrate",
        "--energy-saving-at", "2026-01-06T23:00:00Z", "--energy-saving-fraction", "0.07",
        "--bearing-fault", "machining/line-9/m-2", "--bearing-onset", "2026-01-06T12:00:00Z", "--bearing-days", "2",
    ])
    assert res.exit_code == 0, res.output
    with psycopg.connect(db_url) as conn:
        cells = conn.execute("SELECT cell, attributes->>'ideal_cycle_time_s' FROM cells WHERE line = 'line-9'"
                             " ORDER BY cell").fetchall()
        assert cells == [("m-1", "33.0"), ("m-2", "71.0")]
        saving = _row(conn, "SELECT time, details->>'fraction' FROM sim_truth_events WHERE kind = 'energy_saving'")
        assert saving == (datetime(2026, 1, 6, 23, tzinfo=UTC), "0.07")
        onset = _row(conn, "SELECT time, details->>'days' FROM sim_truth_events"
                     " WHERE kind = 'bearing_degradation_onset'")
        assert onset == (datetime(2026, 1, 6, 12, tzinfo=UTC), "2.0")
        hours = {r[0] for r in conn.execute(
            "SELECT extract(hour FROM shift_start AT TIME ZONE 'Europe/Berlin')::int FROM sim_truth_shift")}
        assert hours == {8, 20}, "the shift calendar follows the config's time zone"
    bad = CliRunner().invoke(cli, ["simulate", "backfill", "--days", "1", "--energy-saving-fraction", "1.5",
                                   "--database-url", db_url])
    assert bad.exit_code != 0 and "not a fraction" in bad.output
