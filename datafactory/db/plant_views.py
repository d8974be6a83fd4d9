"""Per-plant views for tables where row-level security cannot be trusted or cannot be used: TimescaleDB
hypertables, and the tables ingest fills by binary COPY.

TimescaleDB refuses RLS on a hypertable with compression ("cannot enable RLS on hypertables using compression",
timescale/timescaledb#6827), and even without compression its chunks inherit the hypertable's GRANTs but not its
policies, so a reader could query a chunk directly and bypass them (#7830). For such a table ``db roles`` gives
plant readers no right on the table (nor on its chunks) and instead a ``security_barrier`` view of the same name
in the schema ``df_plant_views``, filtered by the same allowed-id expression as the RLS policy:

    CREATE VIEW df_plant_views.samples WITH (security_barrier) AS
        SELECT * FROM public.samples WHERE signal_id = ANY ((SELECT df_allowed_signals())::integer[]);

The view reads the table with its owner's rights, but ``current_user`` inside ``df_allowed_signals()`` is still the
reader, so each plant sees its own rows; ``security_barrier`` keeps a reader's own (non-leakproof) predicates from
running before the filter, while leakproof ones (``=`` and ``<`` on ids and times) still reach the index.
Each plant role logs in with ``search_path = df_plant_views, "$user", <schema>``, so dashboard SQL that says
``FROM samples`` is the same whichever way a table is protected.

The tables ingest fills by binary COPY (``COPY_TARGETS``) are served this way on plain PostgreSQL too: PostgreSQL
refuses ``COPY FROM`` into a table whose row-level security applies to the writer ("COPY FROM not supported with
row-level security"), whatever the policies say, so with RLS on ``samples`` ingest could only write as a superuser
or a BYPASSRLS role. An earlier ``db roles`` that put RLS on them is undone (``drop_row_security``).
"""

from __future__ import annotations

from collections.abc import Iterable

import psycopg
from psycopg import sql

VIEW_SCHEMA = "df_plant_views"
COPY_TARGETS = frozenset({"samples", "samples_typed"})


def needs_view(conn: psycopg.Connection, table: str) -> bool:
    """Whether ``table`` is filled by COPY or has inheritance children that are not declarative partitions
    (TimescaleDB chunks)."""
    if table in COPY_TARGETS:
        return True
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = %s::regclass AND NOT c.relispartition)",
        (table,),
    ).fetchone()
    return bool(row and row[0]) or _is_hypertable(conn, table)


def _is_hypertable(conn: psycopg.Connection, table: str) -> bool:
    if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'").fetchone() is None:
        return False
    row = conn.execute(
        "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_schema = current_schema()"
        " AND hypertable_name = %s",
        (table,),
    ).fetchone()
    return row is not None


def drop_row_security(conn: psycopg.Connection, table: str, policies: Iterable[str]) -> bool:
    """Remove our RLS from a table now served through a view (readers lose the table grant in the same run).
    Whether anything was removed."""
    row = conn.execute("SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", (table,)).fetchone()
    if not (row and row[0]):
        return False
    name = sql.Identifier(table)
    for policy in policies:
        conn.execute(sql.SQL("DROP POLICY IF EXISTS {} ON {}").format(sql.Identifier(policy), name))
    conn.execute(sql.SQL("ALTER TABLE {} NO FORCE ROW LEVEL SECURITY").format(name))
    conn.execute(sql.SQL("ALTER TABLE {} DISABLE ROW LEVEL SECURITY").format(name))
    return True


def protect_with_view(
    conn: psycopg.Connection, table: str, allowed: str, *, reader: str, denied: Iterable[str]
) -> None:
    """(Re)create the filtered view, grant it to ``reader``; revoke the table and its children from ``denied``."""
    schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema is not None
    base = sql.Identifier(schema[0], table)
    view = sql.Identifier(VIEW_SCHEMA, table)
    reader_id = sql.Identifier(reader)
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(VIEW_SCHEMA)))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(sql.Identifier(VIEW_SCHEMA), reader_id))
    # DROP + CREATE rather than REPLACE: the table may have gained or reordered columns since the last run.
    # sample_values is built on the samples views: dropped with them, made again by protect_sample_values.
    if table in COPY_TARGETS:
        conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(VIEW_SCHEMA, "sample_values")))
    conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
    conn.execute(
        sql.SQL("CREATE VIEW {} WITH (security_barrier) AS SELECT * FROM {} WHERE {}").format(
            view,
            base,
            sql.SQL(allowed),  # constant text from rls._ALLOWED, no user input
        )
    )
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(view, reader_id))
    children = conn.execute(
        "SELECT i.inhrelid::regclass::text FROM pg_inherits i WHERE i.inhparent = %s::regclass", (table,)
    ).fetchall()
    targets = [base] + [sql.SQL(c[0]) for c in children]  # regclass text is already quoted and qualified
    roles = sql.SQL(", ").join(sql.Identifier(r) for r in (reader, *denied))
    for target in targets:
        conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(target, roles))


def route_plant_roles(conn: psycopg.Connection, roles: Iterable[str]) -> None:
    """Make unqualified table names of a plant role's own sessions resolve to the filtered views first."""
    row = conn.execute("SELECT current_database(), current_schema()").fetchone()
    assert row is not None
    database, schema = row
    for role in roles:
        conn.execute(
            sql.SQL('ALTER ROLE {} IN DATABASE {} SET search_path = {}, "$user", {}').format(
                sql.Identifier(role), sql.Identifier(database), sql.Identifier(VIEW_SCHEMA), sql.Identifier(schema)
            )
        )


def protect_sample_values(conn: psycopg.Connection, viewed: Iterable[str], *, reader: str) -> None:
    """``sample_values`` for plant readers when ``samples`` or ``samples_typed`` is served through a filtered
    view: the same union, over the filtered views where there are some (and the RLS-protected tables otherwise),
    as an invoker view in ``VIEW_SCHEMA`` so the reader's rights decide."""
    from datafactory.db.samples import sample_values_select

    schema = conn.execute("SELECT current_schema()").fetchone()
    assert schema is not None
    viewed = set(viewed)
    sources = [
        sql.Identifier(VIEW_SCHEMA if table in viewed else schema[0], table) for table in ("samples", "samples_typed")
    ]
    view = sql.Identifier(VIEW_SCHEMA, "sample_values")
    conn.execute(sql.SQL("DROP VIEW IF EXISTS {}").format(view))
    conn.execute(
        sql.SQL("CREATE VIEW {} WITH (security_invoker = true) AS ").format(view) + sample_values_select(*sources)
    )
    conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(view, sql.Identifier(reader)))
