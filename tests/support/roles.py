"""Acting as a database role the way its login would.

``SET ROLE`` switches privileges but not the role's login settings: a plant role logs in with
``search_path = df_plant_views, …`` so that on TimescaleDB ``FROM samples`` reads its filtered view. Tests that
act as a role must apply that search path too, or they test a session no real login has.
"""

from __future__ import annotations

import psycopg
from psycopg import sql


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
