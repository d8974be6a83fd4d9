"""The signal registry: plants, cells and signals, upserted idempotently.

Ingest registers what gateways announce on meta topics; the simulator's backfill and ``config deploy`` register
from a plant config. Identifiers are passed as parameters, never formatted into SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import orjson
import psycopg

from datafactory.config.models import PlantConfig
from datafactory.contract.meanings import Meaning
from datafactory.contract.values import SignalType


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
    signal_type: SignalType | None = None,
) -> int:
    """Register or update one signal. A declared ``signal_type`` is set on a new signal; on an existing one a
    different type is a recorded change (``set_signal_types``), None leaves the stored type alone."""
    row = conn.execute(
        """
        INSERT INTO signals (plant_id, cell_id, name, meaning, unit, description, registered_by, signal_type)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (cell_id, name) DO UPDATE SET
            meaning = EXCLUDED.meaning, unit = EXCLUDED.unit, description = EXCLUDED.description,
            updated_at = CASE WHEN (signals.meaning, signals.unit, signals.description)
                                   IS DISTINCT FROM (EXCLUDED.meaning, EXCLUDED.unit, EXCLUDED.description)
                              THEN now() ELSE signals.updated_at END
        RETURNING id
        """,
        (plant_id, cell_id, name, str(meaning), unit, description, registered_by, (signal_type or "float64")),
    ).fetchone()
    assert row is not None
    signal_id = int(row[0])
    if signal_type is not None:
        set_signal_types(conn, {signal_id: signal_type}, source=registered_by)
    return signal_id


def upsert_signals(
    conn: psycopg.Connection,
    plant_id: int,
    cell_id: int,
    signals: Iterable[tuple[str, Meaning | str, str, str, SignalType]],
    *,
    registered_by: str = "meta",
) -> dict[str, int]:
    """``upsert_signal`` for many ``(name, meaning, unit, description, signal_type)`` of one cell in one
    statement. Names must be distinct. Returns signal ids by name."""
    rows = list(signals)
    if not rows:
        return {}
    names, meanings, units, descriptions, types = (list(col) for col in zip(*rows, strict=True))
    result = conn.execute(
        """
        INSERT INTO signals (plant_id, cell_id, name, meaning, unit, description, registered_by, signal_type)
        SELECT %s, %s, n, m, u, d, %s, t
        FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) AS x(n, m, u, d, t)
        ON CONFLICT (cell_id, name) DO UPDATE SET
            meaning = EXCLUDED.meaning, unit = EXCLUDED.unit, description = EXCLUDED.description,
            updated_at = CASE WHEN (signals.meaning, signals.unit, signals.description)
                                   IS DISTINCT FROM (EXCLUDED.meaning, EXCLUDED.unit, EXCLUDED.description)
                              THEN now() ELSE signals.updated_at END
        RETURNING name, id
        """,
        (plant_id, cell_id, registered_by, names, [str(m) for m in meanings], units, descriptions, types),
    ).fetchall()
    ids = {str(name): int(signal_id) for name, signal_id in result}
    set_signal_types(conn, {ids[n]: SignalType(t) for n, t in zip(names, types, strict=True)}, source=registered_by)
    return ids


def set_signal_types(
    conn: psycopg.Connection, types: Mapping[int, SignalType], *, source: str
) -> list[tuple[int, str, str]]:
    """Declare the types of existing signals; each actual change is recorded in ``signal_type_changes``.

    Samples already stored keep their own type (``samples_typed.value_type``): a change is never a conversion
    of history. Returns the changes as (signal id, old type, new type)."""
    if not types:
        return []
    rows = conn.execute(
        """
        WITH wanted AS (SELECT * FROM unnest(%s::int4[], %s::text[]) AS w(id, t)),
        old AS (
            SELECT s.id, s.signal_type AS old_type, w.t FROM signals s JOIN wanted w ON w.id = s.id
            WHERE s.signal_type <> w.t FOR UPDATE OF s
        ),
        changed AS (UPDATE signals s SET signal_type = old.t, updated_at = now() FROM old WHERE s.id = old.id)
        INSERT INTO signal_type_changes (signal_id, old_type, new_type, source)
        SELECT id, old_type, t, %s FROM old
        RETURNING signal_id, old_type, new_type
        """,
        (list(types), [str(t) for t in types.values()], source),
    ).fetchall()
    return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


def ensure_signal(
    conn: psycopg.Connection,
    plant_id: int,
    cell_id: int,
    name: str,
    *,
    registered_by: str = "auto",
    signal_type: SignalType = SignalType.FLOAT64,
) -> int:
    """Return the signal's id, registering it with meaning generic and ``signal_type`` if it does not exist (a
    stored meaning, unit, description or type is never overwritten, unlike ``upsert_signal``)."""
    row = conn.execute(
        """
        INSERT INTO signals (plant_id, cell_id, name, registered_by, signal_type) VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (cell_id, name) DO NOTHING
        RETURNING id
        """,
        (plant_id, cell_id, name, registered_by, str(signal_type)),
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
            signal_type=b.declared_type(),
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
