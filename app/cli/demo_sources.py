"""What the mixed demo plant's summary adds: which protocol each machine spoke and how many samples each source
kind stored in this run. Both come from the run's own plant config (which source binds which cell and signal)
and from the database (samples per cell and signal since the run's simulated start), never from counters."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.harness.pipeline import Pipeline

_ENTRY_KEYS = ("nodes", "mappings", "registers", "items", "metrics")


def bound_kinds(plant: dict[str, Any]) -> dict[tuple[str, str], str]:
    """(cell path, signal) → the source kind that reads it, from the plant config document."""
    kinds: dict[tuple[str, str], str] = {}
    for src in plant.get("sources", []):
        kind = str(src.get("kind", "?"))
        if kind == "modbus" and src.get("transport") == "rtu":
            kind = "modbus rtu"
        for key in _ENTRY_KEYS:
            for entry in src.get(key, []) or []:
                if isinstance(entry, dict) and "cell" in entry and "signal" in entry:
                    kinds[(str(entry["cell"]), str(entry["signal"]))] = kind
    return kinds


def machine_protocols(plant: dict[str, Any]) -> dict[str, str]:
    """cell path → the protocol(s) its signals come over, in config order."""
    out: dict[str, list[str]] = {}
    for (cell, _signal), kind in bound_kinds(plant).items():
        kinds = out.setdefault(cell, [])
        if kind not in kinds:
            kinds.append(kind)
    return {cell: "+".join(kinds) for cell, kinds in out.items()}


def samples_by_kind(
    database_url: str, enterprise: str, plant: dict[str, Any], since: datetime | None
) -> tuple[dict[str, int], str | None]:
    """Samples stored at or after ``since`` per source kind (every configured kind is listed, with 0 if it
    stored none), and the database error if the count could not be read."""
    import psycopg

    kinds = bound_kinds(plant)
    totals: Counter[str] = Counter({kind: 0 for kind in kinds.values()})
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            rows = conn.execute(
                """SELECT sp.area || '/' || sp.line || '/' || sp.cell, sp.signal, count(*)
                   FROM samples x JOIN signal_paths sp ON sp.signal_id = x.signal_id
                   WHERE sp.enterprise = %s AND (%s::timestamptz IS NULL OR x.time >= %s)
                   GROUP BY 1, 2""",
                (enterprise, since, since),
            ).fetchall()
    except psycopg.Error as err:
        return dict(totals), str(err).strip().splitlines()[0]
    for cell, signal, count in rows:
        totals[kinds.get((str(cell), str(signal)), "unconfigured")] += int(count)
    return dict(totals), None


def source_lines(pipeline: Pipeline) -> list[str]:
    """Summary lines for a plant read over several protocols (nothing for a single-protocol plant): per source
    kind, the samples stored since the run's simulated start and the machines read over it."""
    kinds = bound_kinds(pipeline.plant)
    if len(set(kinds.values())) < 2:
        return []
    totals, error = samples_by_kind(pipeline.database_url, pipeline.enterprise_id, pipeline.plant, pipeline.sim_start)
    if error:
        return [f"  samples per source  not read: {error}"]
    machines: dict[str, list[str]] = {}
    for cell, protocol in machine_protocols(pipeline.plant).items():
        machines.setdefault(protocol, []).append(cell)
    out = ["  samples per source  (stored by this run, per protocol, with the machines read over it)"]
    for kind, count in sorted(totals.items()):
        cells = ", ".join(machines.get(kind, [])) or "—"
        out.append(f"    {kind:<12}{count:>9}{'  NONE STORED' if count == 0 else ''}  {cells}")
    return out
