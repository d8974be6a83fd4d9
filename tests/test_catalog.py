"""Resource catalogue, grading and freshness against a real PostgreSQL with two provisioned plants.

One database per module (cloned from the migrated template): two plants with samples, roles and RLS from
``db roles`` (``provision``). The catalogue must cover every relation the bureau, a plant role or PUBLIC can read,
each entry's readers must fit its grade, and a stopped feed must be flagged late within one update period.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import psycopg
import pytest
from click.testing import CliRunner
from psycopg import sql

from bureau.catalog.entries import SCHEMA_PATH, build, to_dcat
from bureau.catalog.freshness import CITY_TZ, acknowledge, assess, check
from bureau.catalog.grading import violations
from bureau.catalog.specs import SPECS, plant_samples_spec
from datafactory.db import registry
from datafactory.db.connect import with_database
from datafactory.db.rls import provision
from tests.conftest import PG_SERVER, _admin
from tests.support.roles import act_as, reset_role

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def plants_db(template_db: str) -> Iterator[tuple[str, dict[str, int]]]:
    """A migrated database with plants A and B (one signal, a few samples each), provisioned roles."""
    name = f"dft_cat_{uuid.uuid4().hex[:8]}"
    with _admin() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name),
                                                                         sql.Identifier(template_db)))
    url = with_database(PG_SERVER, name)
    tag = f"t{uuid.uuid4().hex[:8]}"
    signals: dict[str, int] = {}
    with psycopg.connect(url) as conn:
        for plant in ("a", "b"):
            plant_id = registry.upsert_plant(conn, f"{tag}-{plant}", "site")
            cell_id = registry.upsert_cell(conn, plant_id, "utilities", "main", "meter")
            signal_id = registry.upsert_signal(conn, plant_id, cell_id, "energy", meaning="energy_kwh")
            signals[plant] = signal_id
            signals[f"plant_{plant}"] = plant_id
            for minutes in (30, 20, 10, 0):
                conn.execute("INSERT INTO samples (time, signal_id, value) VALUES (%s, %s, %s)",
                             (T0 - timedelta(minutes=minutes), signal_id, 100.0 - minutes))
        conn.commit()
        provision(conn, actor="test")
    yield url, signals
    with psycopg.connect(url, autocommit=True) as conn:
        for (role,) in conn.execute("SELECT role FROM plant_roles").fetchall():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
    with _admin() as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _plant_roles(conn: psycopg.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT role FROM plant_roles ORDER BY role").fetchall()]


def _readable(conn: psycopg.Connection, role: str) -> set[tuple[str, str]]:
    """(schema, relation) pairs of the public and df_plant_views schemas that ``role`` may SELECT."""
    rows = conn.execute(
        """SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname IN (current_schema(), 'df_plant_views') AND c.relkind IN ('r', 'p', 'v', 'm')
             AND NOT c.relispartition AND has_table_privilege(%s, c.oid, 'SELECT')""",
        (role,),
    ).fetchall()
    return {(r[0], r[1]) for r in rows}


def test_export_validates_and_lists_every_readable_relation(plants_db: Any, tmp_path: Path) -> None:
    url, _ = plants_db
    with psycopg.connect(url) as conn:
        readers = ["bureau", "public", *_plant_roles(conn)]
        readable = set().union(*(_readable(conn, role) for role in readers))
        document = to_dcat(build(conn))
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema)
    listed = {d["df:relation"] for ds in document["dcat:dataset"] for d in ds["dcat:distribution"]}
    assert {"bureau_v_city", "samples", "oee"} <= {r for _, r in readable}  # the check has something to check
    assert {r for _, r in readable} - listed == set()
    # The CLI writes the same, schema-valid document.
    out = tmp_path / "catalog.json"
    result = CliRunner().invoke(_catalog_group(), ["export", "--out", str(out)],
                                env={"DATAFACTORY_DATABASE_URL": url})
    assert result.exit_code == 0, result.output
    jsonschema.validate(json.loads(out.read_text(encoding="utf-8")), schema)
    # A broken document is refused by the committed schema.
    broken = json.loads(out.read_text(encoding="utf-8"))
    broken["dcat:dataset"][0]["df:classification"]["grade"] = 4
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _catalog_group() -> Any:
    from bureau.catalog.cli import catalog

    return catalog


def test_entries_carry_all_fields_and_schema_from_database(plants_db: Any) -> None:
    url, signals = plants_db
    with psycopg.connect(url) as conn:
        entries = {e.name: e for e in build(conn)}
        registry_types: dict[str, str] = dict(conn.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'bureau_reports'"
        ).fetchall())
        enterprise_a = conn.execute("SELECT enterprise FROM plants WHERE id = %s",
                                    (signals["plant_a"],)).fetchone()
    assert enterprise_a is not None
    assert f"samples.{enterprise_a[0]}.site" in entries
    reports = entries["bureau_reports"]
    assert {c.name: c.type for c in reports.columns["bureau_reports"]}["output_value"] == \
        registry_types["output_value"]
    identity = {c.name: c for c in entries["bureau_registry"].columns["bureau_enterprises"]}["credit_code"]
    assert identity.grade >= 2 and identity.category.startswith("enterprise identity")
    for entry in entries.values():
        s = entry.spec
        assert s.provider and s.collection and s.owner and s.deadline and s.category
        assert s.sharing in ("open", "conditional", "not_shared") and s.grade in (1, 2, 3)
        assert all(cols for cols in entry.columns.values()), entry.name


def test_readers_fit_each_grade(plants_db: Any) -> None:
    url, _ = plants_db
    env = {"DATAFACTORY_DATABASE_URL": url}
    checked = CliRunner().invoke(_catalog_group(), ["check"], env=env)
    assert checked.exit_code == 0, checked.output
    with psycopg.connect(url) as conn:
        assert violations(conn) == []
        # The check can fail: a stray grant of a grade-3 table to PUBLIC is caught, then taken back.
        conn.execute("GRANT SELECT ON oee TO PUBLIC")
        assert any(p.startswith("kpi_results/oee") for p in violations(conn))
        conn.rollback()
        # A plant role granted a grade-2 bureau table is caught too.
        conn.execute("GRANT SELECT ON bureau_reports TO df_plant_reader")
        assert any(p.startswith("bureau_reports/bureau_reports") for p in violations(conn))
        conn.rollback()


def test_cli_list_show_and_freshness(plants_db: Any) -> None:
    url, _ = plants_db
    env = {"DATAFACTORY_DATABASE_URL": url}
    listed = CliRunner().invoke(_catalog_group(), ["list"], env=env)
    assert listed.exit_code == 0 and "bureau_reports" in listed.output and "三级" in listed.output
    shown = CliRunner().invoke(_catalog_group(), ["show", "bureau_reports"], env=env)
    assert shown.exit_code == 0
    assert json.loads(shown.output)["df:classification"]["gradeLabel"] == "二级"
    unknown = CliRunner().invoke(_catalog_group(), ["show", "no_such_dataset"], env=env)
    assert unknown.exit_code != 0 and "no_such_dataset" in unknown.output
    fresh = CliRunner().invoke(_catalog_group(), ["freshness", "--now", "2026-11-23T08:01:00+0000"], env=env)
    assert fresh.exit_code == 0 and "monitored dataset(s)" in fresh.output


def test_other_plants_and_bureau_cannot_read_highest_grade(plants_db: Any) -> None:
    url, signals = plants_db
    with psycopg.connect(url) as conn:
        role_a = conn.execute("SELECT role FROM plant_roles WHERE plant_id = %s",
                              (signals["plant_a"],)).fetchone()
        assert role_a is not None
        grade3 = sorted({rel for e in build(conn) if e.spec.grade == 3 for rel in e.columns})
        act_as(conn, role_a[0])
        own = conn.execute("SELECT count(*) FROM samples WHERE signal_id = %s", (signals["a"],)).fetchone()
        other = conn.execute("SELECT count(*) FROM samples WHERE signal_id = %s", (signals["b"],)).fetchone()
        plants_seen = conn.execute("SELECT count(*) FROM plants").fetchone()
        assert own == (4,) and other == (0,) and plants_seen == (1,)
        reset_role(conn)
        conn.execute("SET ROLE bureau")
        for relation in grade3:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(relation)))
        conn.rollback()


def test_stopped_feed_is_flagged_late_within_one_period_then_resolved(plants_db: Any) -> None:
    url, signals = plants_db
    with psycopg.connect(url) as conn:
        enterprise_b = conn.execute("SELECT enterprise FROM plants WHERE id = %s",
                                    (signals["plant_b"],)).fetchone()
        assert enterprise_b is not None
        feed = f"samples.{enterprise_b[0]}.site"
        period = plant_samples_spec(signals["plant_b"], enterprise_b[0], "site").max_age
        assert period is not None
        # Plant A keeps sending; B stopped at T0.
        conn.execute("INSERT INTO samples (time, signal_id, value) VALUES (%s, %s, 1)",
                     (T0 + period * 2, signals["a"]))
        conn.commit()
        half = {f.dataset: f for f in check(conn, T0 + period / 2)}
        assert half[feed].status == "fresh"
        late_at = T0 + period + timedelta(seconds=1)
        results = {f.dataset: f for f in check(conn, late_at)}
        assert results[feed].status == "late" and results[feed].newest == T0
        assert results[feed.replace(enterprise_b[0], enterprise_b[0][:-1] + "a")].status == "fresh"
        row = conn.execute("SELECT status, lag_s FROM dataset_freshness WHERE dataset = %s", (feed,)).fetchone()
        assert row is not None and row[0] == "late" and 0 < row[1] <= 1.5
        alert = conn.execute("SELECT id, status FROM dataset_alerts WHERE dataset = %s", (feed,)).fetchall()
        assert len(alert) == 1 and alert[0][1] == "open"
        check(conn, late_at + timedelta(seconds=30))  # still late: the same alert, not a second one
        assert acknowledge(conn, alert[0][0], "operator")
        assert conn.execute("SELECT count(*) FROM dataset_alerts WHERE dataset = %s", (feed,)).fetchone() == (1,)
        # The feed resumes: the alert is resolved.
        conn.execute("INSERT INTO samples (time, signal_id, value) VALUES (%s, %s, 1)", (late_at, signals["b"]))
        conn.commit()
        resumed = {f.dataset: f for f in check(conn, late_at + timedelta(seconds=2))}
        assert resumed[feed].status == "fresh"
        state = conn.execute("SELECT status, resolved_at IS NOT NULL, acknowledged_by FROM dataset_alerts"
                             " WHERE dataset = %s", (feed,)).fetchone()
        assert state == ("resolved", True, "operator")


def test_monthly_deadline() -> None:
    reports = next(s for s in SPECS if s.name == "bureau_reports")
    newest = datetime(2026, 10, 1, tzinfo=CITY_TZ)  # October present; November due by 15 December
    assert assess(reports, newest, datetime(2026, 12, 15, 23, 0, tzinfo=CITY_TZ)).status == "fresh"
    late = assess(reports, newest, datetime(2026, 12, 16, 0, 0, 1, tzinfo=CITY_TZ))
    assert late.status == "late" and late.due == datetime.combine(date(2026, 12, 16), datetime.min.time(), CITY_TZ)
    assert assess(reports, None, datetime.now(UTC)).status == "empty"
