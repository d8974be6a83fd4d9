"""The signal registry: plants, cells and signals, upserted idempotently.

Ingest registers what gateways announce on meta topics; the simulator's backfill and ``config deploy`` register
from a plant config. Identifiers are passed as parameters, never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
import psycopg

from datafactory.config.models import PlantConfig
from datafactory.contract.meanings import Meaning


def upsert_plant(
    conn: psycopg.Connection,
    enterprise: str,
    site: str,
    *,
    name: str | None = None,
    timezone: str | None = None,
    info: dict[str, Any] | None = None,
) -> int:
    """Return the plant id, creating the plant if needed; given attributes overwrite stored ones."""
    row = conn.execute(
        """
        INSERT INTO plants (enterprise, site, name, timezone, enterprise_info)
        VALUES (%s, %s, coalesce(%s, ''), coalesce(%s, 'Asia/Shanghai'), coalesce(%s::jsonb, '{}'::jsonb))
        ON CONFLICT (enterprise, site) DO UPDATE SET
            name = coalesce(%s, plants.name),
            timezone = coalesce(%s, plants.timezone),
            enterprise_info = coalesce(%s::jsonb, plants.enterprise_info)
        RETURNING id
        """,
        (enterprise, site, name, timezone, _json(info), name, timezone, _json(info)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def upsert_cell(
    conn: psycopg.Connection,
    plant_id: int,
    area: str,
    line: str,
    cell: str,
    *,
    name: str | None = None,
    attributes: dict[str, Any] | None = None,
) -> int:
    row = conn.execute(
        """
        INSERT INTO cells (plant_id, area, line, cell, name, attributes)
        VALUES (%s, %s, %s, %s, coalesce(%s, ''), coalesce(%s::jsonb, '{}'::jsonb))
        ON CONFLICT (plant_id, area, line, cell) DO UPDATE SET
            name = coalesce(%s, cells.name),
            attributes = coalesce(%s::jsonb, cells.attributes)
        RETURNING id
        """,
        (plant_id, area, line, cell, name, _json(attributes), name, _json(attributes)),
    ).fetchone()
    assert row is not None
    return int(row[0])


def upsert_signal(
    conn: psycopg.Connection,
    plant_id: int,
    cell_id: int,
    name: str,
    *,
    meaning: Meaning | str = Meaning.GENERIC,
    unit: str = "",
    description: str = "",
    registered_by: str = "meta",
) -> int:
    row = conn.execute(
        """
        INSERT INTO signals (plant_id, cell_id, name, meaning, unit, description, registered_by)
        VALUES (%s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (cell_id, name) DO UPDATE SET
            meaning = EXCLUDED.meaning, unit = EXCLUDED.unit, description = EXCLUDED.description,
            updated_at = CASE WHEN (signals.meaning, signals.unit, signals.description)
                                   IS DISTINCT FROM (EXCLUDED.meaning, EXCLUDED.unit, EXCLUDED.description)
                              THEN now() ELSE signals.updated_at END
        RETURNING id
        """,
        (plant_id, cell_id, name, str(meaning), unit, description, registered_by),
    ).fetchone()
    assert row is not None
    return int(row[0])


def upsert_signals(
    conn: psycopg.Connection,
    plant_id: int,
    cell_id: int,
    signals: Iterable[tuple[str, Meaning | str, str, str]],
    *,
    registered_by: str = "meta",
) -> dict[str, int]:
    """``upsert_signal`` for many ``(name, meaning, unit, description)`` of one cell in one statement.
    Names must be distinct. Returns signal ids by name."""
    rows = list(signals)
    if not rows:
        return {}
    names, meanings, units, descriptions = (list(col) for col in zip(*rows, strict=True))
    result = conn.execute(
        """
        INSERT INTO signals (plant_id, cell_id, name, meaning, unit, description, registered_by)
        SELECT %s, %s, n, m, u, d, %s FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[]) AS x(n, m, u, d)
        ON CONFLICT (cell_id, name) DO UPDATE SET
            meaning = EXCLUDED.meaning, unit = EXCLUDED.unit, description = EXCLUDED.description,
            updated_at = CASE WHEN (signals.meaning, signals.unit, signals.description)
                                   IS DISTINCT FROM (EXCLUDED.meaning, EXCLUDED.unit, EXCLUDED.description)
                              THEN now() ELSE signals.updated_at END
        RETURNING name, id
        """,
        (plant_id, cell_id, registered_by, names, [str(m) for m in meanings], units, descriptions),
    ).fetchall()
    return {str(name): int(signal_id) for name, signal_id in result}


def ensure_signal(
    conn: psycopg.Connection, plant_id: int, cell_id: int, name: str, *, registered_by: str = "auto"
) -> int:
    """Return the signal's id, registering it with meaning generic if it does not exist (a stored meaning,
    unit or description is never overwritten, unlike ``upsert_signal``)."""
    row = conn.execute(
        """
        INSERT INTO signals (plant_id, cell_id, name, registered_by) VALUES (%s, %s, %s, %s)
        ON CONFLICT (cell_id, name) DO NOTHING
        RETURNING id
        """,
        (plant_id, cell_id, name, registered_by),
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT id FROM signals WHERE cell_id = %s AND name = %s", (cell_id, name)).fetchone()
    assert row is not None
    return int(row[0])


def upsert_plant_from_config(conn: psycopg.Connection, cfg: PlantConfig) -> int:
    """The plant row a config describes (name, time zone, enterprise attributes): what ``register_config``,
    ingest (on a deployed config) and ``db roles --config`` all create."""
    ent = cfg.enterprise
    return upsert_plant(
        conn,
        ent.id,
        cfg.site.id,
        name=cfg.site.name or ent.name,
        timezone=ent.timezone,
        info=ent.model_dump(mode="json"),
    )


def register_config(conn: psycopg.Connection, cfg: PlantConfig, *, registered_by: str = "config") -> dict[str, int]:
    """Register a plant config's plant, cells and signals. Returns signal ids by 'area/line/cell/signal'."""
    plant_id = upsert_plant_from_config(conn, cfg)
    cell_ids: dict[str, int] = {}
    for path, cell in cfg.cell_paths().items():
        area, line, cell_id = path.split("/")
        attrs = cell.model_dump(mode="json", exclude={"id", "name"}, exclude_none=True)
        cell_ids[path] = upsert_cell(conn, plant_id, area, line, cell_id, name=cell.name, attributes=attrs)
    out: dict[str, int] = {}
    for b in cfg.bindings():
        out[f"{b.cell}/{b.signal}"] = upsert_signal(
            conn,
            plant_id,
            cell_ids[b.cell],
            b.signal,
            meaning=b.meaning,
            unit=b.unit,
            description=b.description,
            registered_by=registered_by,
        )
    return out


def signal_ids(conn: psycopg.Connection, enterprise: str, site: str) -> dict[str, int]:
    """Signal ids of one plant by 'area/line/cell/signal'."""
    rows = conn.execute(
        "SELECT area || '/' || line || '/' || cell || '/' || signal, signal_id FROM signal_paths"
        " WHERE enterprise = %s AND site = %s",
        (enterprise, site),
    ).fetchall()
    return {r[0]: int(r[1]) for r in rows}


def _json(value: dict[str, Any] | None) -> str | None:
    return None if value is None else orjson.dumps(value).decode()
