"""Tenancy: after `db roles`, a plant role reads only its own rows of EVERY per-plant table, writes nothing, and the
bureau role is refused raw tables. Rows are generated for whatever per-plant tables the schema holds today, so a
table added by another service later is covered without touching this test. Managing the roles themselves
(logins, names, view mode, the CLI, the ingest role): tests/test_security_rls_roles.py."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from datafactory.config import load_config_text
from datafactory.db import plant_views, registry
from datafactory.db.rls import BUREAU_PREFIX, INGEST_TABLES, POLICY_READ, POLICY_SERVICE, discover, provision
from tests.support.roles import act_as, drop_plant_roles, make_plant, one, reset_role, role_of
from tests.test_config import GOOD

pytestmark = pytest.mark.integration
_counter = itertools.count(1)


def _columns(conn: psycopg.Connection, table: str) -> list[tuple[str, str, bool, bool]]:
    """(name, type, required, has_default) in column order."""
    return [
        (r[0], r[1], r[2] == "NO", r[3] is not None or r[4] == "YES" or r[5] != "NEVER")
        for r in conn.execute(
            "SELECT column_name, data_type, is_nullable, column_default, is_identity, is_generated"
            " FROM information_schema.columns c JOIN pg_class r ON r.oid = %s::regclass"
            " JOIN pg_namespace n ON n.oid = r.relnamespace"
            " WHERE c.table_schema = n.nspname AND c.table_name = r.relname ORDER BY ordinal_position",
            (table,),
        )
    ]


def _check_choices(conn: psycopg.Connection, table: str) -> dict[str, str]:
    """For CHECK (col IN ('a', …)) constraints: a valid value per column."""
    out: dict[str, str] = {}
    for (definition,) in conn.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'c'",
        (table,),
    ):
        m = re.search(r"\(?(\w+) = ANY \(+ARRAY\['([^']*)'", definition)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def _foreign_keys(conn: psycopg.Connection, table: str) -> dict[str, tuple[str, str]]:
    rows = conn.execute(
        """SELECT a.attname, cl.relname, af.attname FROM pg_constraint c
           JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
           JOIN pg_class cl ON cl.oid = c.confrelid
           JOIN pg_attribute af ON af.attrelid = c.confrelid AND af.attnum = c.confkey[1]
           WHERE c.conrelid = %s::regclass AND c.contype = 'f' AND array_length(c.conkey, 1) = 1""",
        (table,),
    ).fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def _value(kind: str, n: int, base: datetime) -> Any:
    if kind in ("integer", "bigint", "smallint", "numeric", "double precision", "real"):
        return n
    if kind.startswith("timestamp"):
        return base + timedelta(minutes=n)
    if kind == "date":
        return (base + timedelta(days=31 * n)).date().replace(day=1)
    if kind == "boolean":
        return False
    if kind in ("jsonb", "json"):
        return "{}"
    if kind == "interval":
        return timedelta(minutes=n)
    if kind == "bytea":
        return b"x"
    if kind == "ARRAY":
        return None
    return f"v{n}"


def fill_row(conn: psycopg.Connection, table: str, ids: dict[str, int], depth: int = 0) -> Any:
    """Insert one row with every required column set; referenced parent rows are created the same way."""
    choices, fks = _check_choices(conn, table), _foreign_keys(conn, table)
    base = datetime.now(UTC).replace(microsecond=0)
    names, values = [], []
    for i, (name, kind, required, has_default) in enumerate(_columns(conn, table)):
        if name in ids:
            value: Any = ids[name]
        elif name in fks and required and depth < 3:
            value = fill_row(conn, fks[name][0], ids, depth + 1)
        elif required and not has_default:
            value = choices.get(name) or _value(kind, next(_counter) + i, base)
        else:
            continue
        names.append(sql.Identifier(name))
        values.append(value)
    row = conn.execute(
        sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING *").format(
            sql.Identifier(table), sql.SQL(", ").join(names), sql.SQL(", ").join(sql.Placeholder() * len(names))
        ),
        values,
    ).fetchone()
    assert row is not None
    return row[0]


@pytest.fixture
def two_plants(db_url: str, enterprise: str) -> Iterator[tuple[str, dict[str, int], dict[str, int], set[str]]]:
    """Plants A and B with one row of theirs in every per-plant table; roles provisioned. Yields the tables."""
    with psycopg.connect(db_url) as conn:
        a = make_plant(conn, enterprise, "site-a")
        b = make_plant(conn, enterprise + "-b", "site-b")
        tables = {r.name for r in discover(conn) if r.scope_column is not None}
        for table in sorted(tables - {"plants", "cells", "signals"}):
            for ids in (a, b):
                with conn.transaction():
                    fill_row(conn, table, ids)
        conn.commit()
        provision(conn, actor="test")
    yield db_url, a, b, tables
    drop_plant_roles(db_url)


def _scope_ids(table: str, column: str, ids: dict[str, int]) -> int:
    return ids["plant_id"] if column in ("plant_id", "id") else ids[column]


def test_plant_role_reads_only_its_own_rows_everywhere(two_plants: Any) -> None:
    db_url, a, b, tables = two_plants
    with psycopg.connect(db_url) as conn:
        rels = {r.name: r for r in discover(conn)}
        core = {"plants", "cells", "signals", "samples", "dead_letters", "late_writes", "gateway_status"}
        assert core <= tables and {"plant_roles"}.isdisjoint(tables)
        role_a = role_of(conn, a["plant_id"])
        for table in sorted(tables):
            rel = rels[table]
            column = rel.scope_column
            assert column is not None
            if plant_views.needs_view(conn, table):
                # A TimescaleDB hypertable: readers get the filtered view of the same name, never the table.
                assert one(conn, "SELECT to_regclass(%s) IS NOT NULL", (f"{plant_views.VIEW_SCHEMA}.{table}",))
                assert not one(conn, "SELECT has_table_privilege(%s, %s, 'SELECT')", (role_a, f"public.{table}"))
            else:
                flags = conn.execute(
                    "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = %s::regclass", (table,)
                ).fetchone()
                assert flags == (True, True), f"{table}: RLS not enabled and forced"
                policies = {
                    r[0] for r in conn.execute("SELECT policyname FROM pg_policies WHERE tablename = %s", (table,))
                }
                assert {POLICY_READ, POLICY_SERVICE} <= policies, table
            total = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            assert total is not None and total[0] >= 2, f"{table}: the fixture wrote both plants' rows"
            act_as(conn, role_a)
            try:
                if table.startswith(BUREAU_PREFIX):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                        conn.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(table)))
                    continue
                query = sql.SQL("SELECT {c}, count(*) FROM {t} GROUP BY {c}").format(
                    c=sql.Identifier(column), t=sql.Identifier(table)
                )
                seen: dict[int, int] = dict(conn.execute(query).fetchall())
                assert seen.keys() == {_scope_ids(table, column, a)}, f"{table}: plant A sees {seen}"
                # Even a query naming B's id directly returns nothing.
                other = conn.execute(
                    sql.SQL("SELECT count(*) FROM {} WHERE {} = %s").format(
                        sql.Identifier(table), sql.Identifier(column)
                    ),
                    (_scope_ids(table, column, b),),
                ).fetchone()
                assert other == (0,), f"{table}: plant A reads plant B's rows"
                for ids in (b, a):
                    with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                        fill_row(conn, table, ids)
            finally:
                conn.rollback()
                reset_role(conn)


def test_views_partitions_and_bureau(two_plants: Any) -> None:
    db_url, a, b, tables = two_plants
    with psycopg.connect(db_url) as conn:
        role_a = role_of(conn, a["plant_id"])
        partitions = [r.name for r in discover(conn) if r.is_partition]
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role_a)))
        paths = conn.execute("SELECT DISTINCT plant_id FROM signal_paths").fetchall()
        assert paths == [(a["plant_id"],)], "signal_paths is security_invoker: RLS applies through it"
        for part in partitions:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(sql.SQL("SELECT 1 FROM {}").format(sql.Identifier(part)))
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("SELECT * FROM ingest_health")
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute("INSERT INTO plant_roles (role, plant_id) VALUES (current_user, %s)", (b["plant_id"],))
        # A temporary table cannot shadow the mapping the policy functions read.
        conn.execute("CREATE TEMP TABLE plant_roles (role text, plant_id integer)")
        conn.execute("INSERT INTO plant_roles VALUES (current_user, %s)", (b["plant_id"],))
        assert conn.execute("SELECT count(*) FROM signals WHERE plant_id = %s", (b["plant_id"],)).fetchone() == (0,)
        conn.rollback()
        conn.execute("SET ROLE bureau")
        for table in sorted(tables | {"plants", "cells", "signals", "samples", *partitions}):
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(table)))
        conn.rollback()


def test_writers_see_all_rows_and_reprovisioning_picks_up_new_tables(two_plants: Any) -> None:
    db_url, a, b, tables = two_plants
    with psycopg.connect(db_url) as conn:
        # Each service can write every per-plant table it owns, for any plant (sequences included).
        for table in sorted(tables - {"plants", "cells", "signals"}):
            if table.startswith(BUREAU_PREFIX):
                continue
            writer = "df_ingest" if table in INGEST_TABLES else "df_analytics"
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(writer)))
            for ids in (a, b):
                try:
                    with conn.transaction():
                        fill_row(conn, table, ids)
                except psycopg.errors.UniqueViolation:
                    pass  # privileges and policies let the row in; only the fixture's own row is in the way
            conn.rollback()
        conn.execute("SET ROLE df_ingest")
        registry.register_config(conn, load_config_text(GOOD.replace("id: acme", "id: acme-writer-test")))
        conn.rollback()
        conn.execute("SET ROLE df_ingest")
        assert conn.execute("SELECT count(DISTINCT plant_id) FROM signals").fetchone() == (2,)
        conn.execute("INSERT INTO samples (signal_id, time, value) VALUES (%s, now(), 1)", (b["signal_id"],))
        conn.execute("RESET ROLE")
        conn.execute("CREATE TABLE later_results (plant_id integer NOT NULL, value double precision)")
        conn.execute("INSERT INTO later_results VALUES (%s, 1), (%s, 2)", (a["plant_id"], b["plant_id"]))
        conn.commit()
        report = provision(conn, actor="test")
        again = provision(conn, actor="test")
        assert "later_results" in report.protected and again.roles.created == []
        role_a = role_of(conn, a["plant_id"])
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role_a)))
        assert conn.execute("SELECT plant_id FROM later_results").fetchall() == [(a["plant_id"],)]
        conn.execute("RESET ROLE")
        conn.execute("SET ROLE df_analytics")
        conn.execute("DELETE FROM later_results WHERE plant_id = %s", (b["plant_id"],))
        conn.rollback()


def test_dashboard_query_uses_index_and_prunes_partitions(two_plants: Any) -> None:
    db_url, a, _, _ = two_plants
    with psycopg.connect(db_url) as conn:
        role_a = role_of(conn, a["plant_id"])
        act_as(conn, role_a)
        plan = "\n".join(
            r[0]
            for r in conn.execute(
                "EXPLAIN SELECT time, value FROM samples WHERE signal_id = %s AND time > now() - interval '6 hours'"
                " ORDER BY time",
                (a["signal_id"],),
            )
        )
        assert "InitPlan" in plan, plan  # allowed ids computed once per query, not per row
        assert "Seq Scan" not in plan and re.search(r"Index Cond: .*signal_id = ANY", plan), plan
        conn.rollback()


def _typed_secret(conn: psycopg.Connection, signal_id: int, text: str) -> None:
    conn.execute(
        "INSERT INTO samples_typed (signal_id, time, quality, value_type, v_text) VALUES (%s, now(), 0, 's', %s)",
        (signal_id, text),
    )


def _typed_reads(conn: psycopg.Connection, signal_id: int) -> list[Any]:
    """What the attack reads: another plant's strings, through the table and through the typed-values view."""
    table = conn.execute("SELECT v_text FROM samples_typed WHERE signal_id = %s", (signal_id,)).fetchall()
    view = conn.execute(
        "SELECT value_text FROM sample_values WHERE signal_id = %s AND value_text IS NOT NULL", (signal_id,)
    ).fetchall()
    return [*table, *view]


def test_a_plant_role_cannot_read_another_plants_typed_samples(two_plants: Any) -> None:
    """The attack: plant A's role asks for plant B's order numbers by B's signal id. Refused (nothing returned)
    by samples_typed's filtered view and through sample_values; the same query against an unprotected copy
    of the table returns B's rows, so it is the protection that stops it."""
    db_url, a, b, _ = two_plants
    with psycopg.connect(db_url) as conn:
        _typed_secret(conn, a["signal_id"], "order A-1")
        _typed_secret(conn, b["signal_id"], "order B-secret")
        conn.execute("CREATE TABLE unprotected_typed AS SELECT * FROM samples_typed")
        conn.commit()
        role_a = role_of(conn, a["plant_id"])
        conn.execute(sql.SQL("GRANT SELECT ON unprotected_typed TO {}").format(sql.Identifier(role_a)))
        conn.commit()
        act_as(conn, role_a)
        try:
            assert _typed_reads(conn, b["signal_id"]) == []
            assert ("order A-1",) in _typed_reads(conn, a["signal_id"])  # its own rows it does read
            leaked = conn.execute(
                "SELECT v_text FROM unprotected_typed WHERE signal_id = %s AND v_text IS NOT NULL", (b["signal_id"],)
            ).fetchall()
            assert leaked == [("order B-secret",)]
        finally:
            conn.rollback()
            reset_role(conn)
            conn.execute("DROP TABLE unprotected_typed")
            conn.commit()


def test_typed_values_in_view_mode_are_scoped_too(db_url: str, enterprise: str) -> None:
    """On TimescaleDB both sample tables are served through filtered views (forced here): sample_values for a
    plant role is then built over those views and still shows only its own plant's rows."""
    with psycopg.connect(db_url) as conn:
        a, b = make_plant(conn, enterprise, "site-a"), make_plant(conn, enterprise + "-b", "site-b")
        for ids, text in ((a, "A"), (b, "B")):
            _typed_secret(conn, ids["signal_id"], text)
            conn.execute(
                "INSERT INTO samples (signal_id, time, value) VALUES (%s, now() - interval '1 minute', 1)",
                (ids["signal_id"],),
            )
        conn.commit()
        report = provision(conn, actor="test", view_tables=frozenset({"samples", "samples_typed"}))
        assert {"samples", "samples_typed"} <= set(report.viewed)
        role = role_of(conn, a["plant_id"])
        act_as(conn, role)
        try:
            rows = conn.execute("SELECT signal_id, value_type, value_text FROM sample_values ORDER BY 2").fetchall()
            assert rows == [(a["signal_id"], "float64", None), (a["signal_id"], "string", "A")]
            assert _typed_reads(conn, b["signal_id"]) == []
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("SELECT 1 FROM public.samples_typed")
        finally:
            conn.rollback()
            reset_role(conn)
    drop_plant_roles(db_url)


