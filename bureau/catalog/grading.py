"""Checks that who can read each catalogued relation fits its grade (``datafactory catalog check``).

Readers considered: ``PUBLIC``, the ``bureau`` role and every plant role (``plant_roles``). Platform service roles
(df_admin, df_ingest, df_analytics) run the platform and are inside every grade's boundary.

    grade 3: no PUBLIC, no bureau; a plant role only under row-level security (or a security_invoker view)
    grade 2: no PUBLIC, no bureau, no plant role; shared only through views that are grade-1 entries
    grade 1: anyone
"""

from __future__ import annotations

import psycopg

from bureau.catalog.entries import Entry, build

OUTSIDERS = ("public", "bureau")


def _readers(conn: psycopg.Connection, relation: str, candidates: list[str]) -> set[str]:
    rows = conn.execute(
        "SELECT r FROM unnest(%s::text[]) AS r WHERE has_table_privilege(r, %s::regclass, 'SELECT')",
        (candidates, relation),
    ).fetchall()
    return {r[0] for r in rows}


def violations(conn: psycopg.Connection, entries: list[Entry] | None = None) -> list[str]:
    """One line per (dataset, relation, problem); empty when every grant fits its grade."""
    entries = entries if entries is not None else build(conn)
    plant_roles = [r[0] for r in conn.execute(
        "SELECT DISTINCT role FROM plant_roles r JOIN pg_roles g ON g.rolname = r.role ORDER BY role").fetchall()]
    grades = {rel: e.spec.grade for e in entries for rel in e.columns}
    problems: list[str] = []
    for entry in entries:
        grade = entry.spec.grade
        for relation in entry.columns:
            row = conn.execute(
                "SELECT c.relkind, c.relrowsecurity, coalesce('security_invoker=true' = ANY (c.reloptions)"
                " OR 'security_invoker=on' = ANY (c.reloptions), false) FROM pg_class c"
                " WHERE c.oid = %s::regclass", (relation,)).fetchone()
            if row is None:
                continue
            kind, rls, invoker = row
            readers = _readers(conn, relation, [*OUTSIDERS, *plant_roles])
            plants = readers - set(OUTSIDERS)
            where = f"{entry.name}/{relation} (grade {grade})"
            if grade >= 2 and readers & set(OUTSIDERS):
                problems.append(f"{where} readable by {', '.join(sorted(readers & set(OUTSIDERS)))}")
            if grade == 3 and plants and not (rls or (kind == "v" and invoker)):
                problems.append(f"{where} readable by plant roles without row-level security")
            if grade == 2 and plants:
                problems.append(f"{where} readable by plant roles {', '.join(sorted(plants)[:3])}")
        for view in entry.spec.access_views:
            if view in grades and grades[view] != 1:
                problems.append(f"{entry.name} is shared through {view}, which is not a grade-1 view")
    return problems
