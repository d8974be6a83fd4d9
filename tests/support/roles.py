"""Acting as a database role the way its login would.

``SET ROLE`` switches privileges but not the role's login settings: a plant role logs in with
``search_path = df_plant_views, …`` so that on TimescaleDB ``FROM samples`` reads its filtered view. Tests that
act as a role must apply that search path too, or they test a session no real login has. Also the plant (one
cell, one signal) and the clean-up of plant roles that the tenancy tests share.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from datafactory.db import registry


def act_as(conn: psycopg.Connection, role: str) -> None:
    """SET ROLE plus the role's own login settings (search_path) for this database."""
    rows = conn.execute(
        "SELECT unnest(setconfig) FROM pg_db_role_setting WHERE setrole = %s::regrole"
        " AND setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))"
        " ORDER BY setdatabase",
        (role,),
    ).fetchall()
    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    for (setting,) in rows:
        name, _, value = str(setting).partition("=")
        if name == "search_path":
            conn.execute(sql.SQL("SET search_path = {}").format(sql.SQL(value)))  # the role's own setting


def reset_role(conn: psycopg.Connection) -> None:
    conn.execute("RESET ROLE")
    conn.execute("RESET search_path")


def one(conn: psycopg.Connection, query: str, params: tuple[Any, ...] = ()) -> Any:
    row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def role_of(conn: psycopg.Connection, plant_id: int) -> str:
    return str(one(conn, "SELECT role FROM plant_roles WHERE plant_id = %s", (plant_id,)))


def make_plant(conn: psycopg.Connection, enterprise: str, site: str) -> dict[str, int]:
    plant_id = registry.upsert_plant(conn, enterprise, site)
    cell_id = registry.upsert_cell(conn, plant_id, "area", "line", "cell")
    signal_id = registry.upsert_signal(conn, plant_id, cell_id, "power", meaning="power_kw")
    return {"plant_id": plant_id, "cell_id": cell_id, "signal_id": signal_id}


def drop_plant_roles(db_url: str) -> None:
    """Plant roles are cluster-wide; drop this test's so parallel runs do not accumulate them."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for (role,) in conn.execute("SELECT role FROM plant_roles").fetchall():
            conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
