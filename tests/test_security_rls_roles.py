"""Managing plant roles with `db roles`: login passwords from the environment (never printed or logged), role names
sanitised and unique, view mode for tables that cannot carry row-level security, the CLI registering plants from
configs, and the ingest role's COPY after `db roles`. What a plant role may read is tests/test_security_rls.py."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from datafactory.db import registry, timescale
from datafactory.db import roles as df_roles
from datafactory.db.rls import provision
from tests.support.roles import drop_plant_roles, make_plant, one, role_of
from tests.test_config import GOOD

pytestmark = pytest.mark.integration


def test_login_passwords_come_from_environment(db_url: str, enterprise: str, capsys: Any, caplog: Any) -> None:
    from ops.cli import run_db_roles

    secret = f"pw-{enterprise}-Zx9"
    var = df_roles.plant_password_var(enterprise, "site-a")
    with psycopg.connect(db_url) as conn:
        make_plant(conn, enterprise, "site-a")
        conn.commit()
    mp = pytest.MonkeyPatch()
    mp.setenv("DATAFACTORY_DATABASE_URL", db_url)
    mp.setenv(var, secret)
    try:
        caplog.set_level("DEBUG")
        run_db_roles(login=True)
        role = df_roles.plant_role_name(enterprise, "site-a")
        with psycopg.connect(db_url.replace("postgres@", f"{role}:{secret}@")) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role,)
        with psycopg.connect(db_url) as conn:
            stored = conn.execute("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (role,))
            can_login, verifier = stored.fetchone() or (False, "")
            assert can_login and verifier.startswith("SCRAM-SHA-256$") and secret not in verifier
        out = capsys.readouterr()
        assert role in out.out
        for text in (out.out, out.err, caplog.text):
            assert secret not in text
        with psycopg.connect(db_url) as conn:
            details = conn.execute("SELECT details::text FROM audit_log WHERE action = 'db_roles'").fetchone()
            assert details is not None and secret not in details[0] and role in details[0]
    finally:
        mp.undo()
        drop_plant_roles(db_url)


def test_plant_role_names_are_sanitised_and_unique() -> None:
    assert df_roles.plant_role_name("demo-precision", "dongguan-1") == "df_plant_demo_precision_dongguan_1"
    assert df_roles.plant_role_name("a-b", "c", hashed=True) != df_roles.plant_role_name("a", "b-c", hashed=True)
    long = df_roles.plant_role_name("e" * 64, "s" * 64)
    assert len(long) <= 63 and long != df_roles.plant_role_name("e" * 64, "s" * 63 + "t")
    assert df_roles.plant_password_var("demo-precision", "dongguan-1") == (
        "DF_GRAFANA_PLANT_DEMO_PRECISION_DONGGUAN_1_PASSWORD"
    )


def test_colliding_sanitised_names_get_distinct_roles(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        suffix = uuid.uuid4().hex[:6]
        first = registry.upsert_plant(conn, f"x{suffix}-b", "c")
        second = registry.upsert_plant(conn, f"x{suffix}", "b-c")
        conn.commit()
        report = provision(conn, actor="test")
        roles = {plant: role for role, plant in report.plant_roles.items()}
        assert roles[first] != roles[second] and len(report.plant_roles) == 2
    drop_plant_roles(db_url)


def test_view_mode_for_tables_that_cannot_carry_rls(db_url: str, enterprise: str) -> None:
    """What `db roles` does for TimescaleDB hypertables, forced here on plain PostgreSQL: a plant role logging in
    reads `samples` through its filtered view, unchanged SQL, and cannot touch the table itself."""
    password = f"pw-{uuid.uuid4().hex}"
    with psycopg.connect(db_url) as conn:
        a, b = make_plant(conn, enterprise, "site-a"), make_plant(conn, enterprise + "-b", "site-b")
        now = datetime.now(UTC)
        for ids in (a, b):
            conn.execute("INSERT INTO samples (signal_id, time, value) VALUES (%s, %s, 1)", (ids["signal_id"], now))
        conn.commit()
        var = df_roles.plant_password_var(enterprise, "site-a")
        report = provision(conn, actor="test", login=True, env={var: password}, view_tables=frozenset({"samples"}))
        rollup = ["samples_hourly"] if timescale.continuous_aggregates(conn) else []  # a view on TimescaleDB
        assert sorted(report.viewed) == sorted(["samples", "samples_typed", *rollup])
        assert "samples" not in report.protected
        role = role_of(conn, a["plant_id"])
        # A partition (plain PostgreSQL) or a chunk (TimescaleDB): a reader must not reach it directly either.
        child = str(one(conn, "SELECT inhrelid::regclass::text FROM pg_inherits WHERE inhparent = 'samples'::regclass"
                               " ORDER BY 1 LIMIT 1"))
    try:
        with psycopg.connect(db_url.replace("postgres@", f"{role}:{password}@")) as conn:
            assert conn.execute("SELECT DISTINCT signal_id FROM samples").fetchall() == [(a["signal_id"],)]
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    "EXPLAIN SELECT time, value FROM samples WHERE signal_id = %s AND time > now() - interval '1 hour'",
                    (a["signal_id"],),
                )
            )
            assert re.search(r"Index Cond: .*signal_id = ANY", plan), plan
            for query in ("SELECT 1 FROM public.samples", f"SELECT 1 FROM {child}"):
                with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                    conn.execute(query)
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("INSERT INTO samples (signal_id, time, value) VALUES (%s, now(), 2)", (b["signal_id"],))
    finally:
        drop_plant_roles(db_url)


def test_db_roles_cli_registers_plants_from_configs(db_url: str, enterprise: str, tmp_path: Any) -> None:
    from click.testing import CliRunner

    from app.cli.db_cmd import db

    path = tmp_path / "plant.yaml"
    path.write_text(GOOD.replace("id: acme", f"id: {enterprise}"))
    try:
        result = CliRunner().invoke(db, ["roles", "--config", str(path)], env={"DATAFACTORY_DATABASE_URL": db_url})
        assert result.exit_code == 0, result.output
        role = df_roles.plant_role_name(enterprise, "dg-1")
        assert f"plant role {role}" in result.output
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (role,)).fetchone() == (1,)
    finally:
        drop_plant_roles(db_url)


def test_ingest_role_copies_samples_after_db_roles(db_url: str, enterprise: str) -> None:
    """Ingest logs in as (a member of) df_ingest and writes samples by binary COPY. PostgreSQL refuses COPY FROM
    into a table whose row-level security applies to the writer, whatever the policies allow — the control below
    shows it — so after ``db roles`` the COPY targets must carry no RLS (plant readers get filtered views)."""
    from datafactory.db.samples import copy_rows

    login = f"t_ingest_{uuid.uuid4().hex[:8]}"
    password = f"pw-{uuid.uuid4().hex}"
    with psycopg.connect(db_url) as conn:
        a = make_plant(conn, enterprise, "site-a")
        conn.commit()
        report = provision(conn, actor="test")
        assert {"samples", "samples_typed"} <= set(report.viewed)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {} IN ROLE df_ingest").format(
            sql.Identifier(login), sql.Literal(password)))
        conn.commit()
    as_ingest = db_url.replace("postgres@", f"{login}:{password}@")
    now = datetime.now(UTC)
    try:
        with psycopg.connect(as_ingest) as conn:
            assert copy_rows(conn, [(a["signal_id"], now, 1.5, 0)]) == 1
            conn.commit()
        with psycopg.connect(db_url) as conn:
            assert conn.execute("SELECT value FROM samples WHERE signal_id = %s", (a["signal_id"],)).fetchall() == [
                (1.5,)]
            if timescale.installed(conn):
                return  # a compressed hypertable cannot carry RLS at all: the control below is plain PostgreSQL's
            # Control: with row-level security on samples (what db roles did before), the same COPY is refused.
            conn.execute("ALTER TABLE samples ENABLE ROW LEVEL SECURITY")
            conn.commit()
        with psycopg.connect(as_ingest) as conn, pytest.raises(psycopg.errors.FeatureNotSupported, match="COPY"):
            copy_rows(conn, [(a["signal_id"], now + timedelta(seconds=1), 2.5, 0)])
        with psycopg.connect(db_url) as conn:  # db roles run again takes such RLS off
            provision(conn, actor="test")
            assert one(conn, "SELECT relrowsecurity FROM pg_class WHERE oid = 'samples'::regclass") is False
    finally:
        with psycopg.connect(db_url, autocommit=True) as conn:
            if not timescale.installed(conn):
                conn.execute("ALTER TABLE samples DISABLE ROW LEVEL SECURITY")
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(login)))
        drop_plant_roles(db_url)
