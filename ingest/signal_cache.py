"""Signal ids for (cell, signal name), cached in memory, registered on meta messages or automatically.

Lookups hit the database once per cell; afterwards a data message resolves its signals with dict lookups, and
a gateway that publishes the same signals in the same order message after message (the usual case) resolves
them with one lookup of the whole tuple of names.
Every write goes through ``datafactory.db.registry`` inside the writer's batch transaction, so the cache is
only trusted after that transaction commits: the writer calls ``clear()`` whenever a batch rolls back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import psycopg

from datafactory.contract.payload import CellMeta
from datafactory.contract.topics import CellPath
from datafactory.contract.values import SignalType
from datafactory.db import registry

_ID_ARRAYS_MAX = 1024  # distinct name tuples remembered per cell; past it the memo starts afresh


@dataclass(slots=True)
class CellEntry:
    plant_id: int
    cell_id: int
    signals: dict[str, int] = field(default_factory=dict)
    types: dict[str, SignalType] = field(default_factory=dict)  # declared types (float64 when absent)
    _id_arrays: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)
    _float_only: dict[tuple[str, ...], bool] = field(default_factory=dict)

    def type_of(self, name: str) -> SignalType:
        return self.types.get(name, SignalType.FLOAT64)

    def all_float(self, names: tuple[str, ...]) -> bool:
        """Whether every one of ``names`` is declared float64: the float lane then takes the message as it is."""
        known = self._float_only.get(names)
        if known is None:
            types = self.types
            known = all(types.get(n, SignalType.FLOAT64) is SignalType.FLOAT64 for n in set(names))
            if len(self._float_only) >= _ID_ARRAYS_MAX:
                self._float_only.clear()
            self._float_only[names] = known
        return known

    def signal_ids(self, names: tuple[str, ...]) -> np.ndarray | None:
        """The signal ids (int32) of ``names`` in order, or None if any of them is not registered."""
        ids = self._id_arrays.get(names)
        if ids is None:
            try:
                ids = np.fromiter(map(self.signals.__getitem__, names), np.int32, len(names))
            except KeyError:
                return None
            ids.flags.writeable = False
            if len(self._id_arrays) >= _ID_ARRAYS_MAX:
                self._id_arrays.clear()
            self._id_arrays[names] = ids
        return ids

    def add_signals(self, ids: dict[str, int], types: dict[str, SignalType] | None = None) -> None:
        self.signals.update(ids)
        if types:
            self.types.update(types)
        self._id_arrays.clear()  # an id never changes for a name, but stay obviously right
        self._float_only.clear()


class SignalCache:
    def __init__(self) -> None:
        self._plants: dict[tuple[str, str], int] = {}
        self._cells: dict[str, CellEntry] = {}

    def clear(self) -> None:
        self._plants.clear()
        self._cells.clear()

    def cached_plant_id(self, enterprise: str, site: str) -> int | None:
        return self._plants.get((enterprise, site))

    def plant_id(self, conn: psycopg.Connection, enterprise: str, site: str, *, create: bool = True) -> int | None:
        key = (enterprise, site)
        if key in self._plants:
            return self._plants[key]
        row = conn.execute("SELECT id FROM plants WHERE enterprise = %s AND site = %s", key).fetchone()
        if row is not None:
            plant_id = int(row[0])
        elif create:
            plant_id = registry.upsert_plant(conn, enterprise, site)
        else:
            return None
        self._plants[key] = plant_id
        return plant_id

    def cell(self, conn: psycopg.Connection, path: CellPath, *, create: bool = True) -> CellEntry | None:
        entry = self._cells.get(path.key)
        if entry is not None:
            return entry
        plant_id = self.plant_id(conn, path.enterprise, path.site, create=create)
        if plant_id is None:
            return None
        row = conn.execute(
            "SELECT id FROM cells WHERE plant_id = %s AND area = %s AND line = %s AND cell = %s",
            (plant_id, path.area, path.line, path.cell),
        ).fetchone()
        if row is not None:
            cell_id = int(row[0])
        elif create:
            cell_id = registry.upsert_cell(conn, plant_id, path.area, path.line, path.cell)
        else:
            return None
        entry = CellEntry(plant_id, cell_id)
        for name, signal_id, signal_type in conn.execute(
            "SELECT name, id, signal_type FROM signals WHERE cell_id = %s", (cell_id,)
        ):
            entry.signals[name] = int(signal_id)
            entry.types[name] = SignalType(signal_type)
        self._cells[path.key] = entry
        return entry

    def register_missing(
        self,
        conn: psycopg.Connection,
        entry: CellEntry,
        names: Iterable[str],
        inferred: Mapping[str, SignalType] | None = None,
    ) -> None:
        """Auto-register signals seen in data before any meta announced them (meaning generic), each with the
        type its first value implies (``inferred``; float64 when absent). The types stored win: another worker
        may have registered a signal first."""
        new = sorted(set(names) - entry.signals.keys())
        if not new:
            return
        inferred = inferred or {}
        ids = {
            name: registry.ensure_signal(
                conn, entry.plant_id, entry.cell_id, name, signal_type=inferred.get(name, SignalType.FLOAT64)
            )
            for name in new
        }
        rows = conn.execute("SELECT name, signal_type FROM signals WHERE id = ANY(%s)", (list(ids.values()),))
        entry.add_signals(ids, {str(name): SignalType(t) for name, t in rows})

    def apply_meta(self, conn: psycopg.Connection, path: CellPath, meta: CellMeta) -> int:
        """Upsert the cell (with its attributes) and every announced signal. Returns the number of signals."""
        plant_id = self.plant_id(conn, path.enterprise, path.site)
        assert plant_id is not None
        attributes: dict[str, Any] = dict(meta.attributes)
        name = attributes.pop("name", None)
        cell_id = registry.upsert_cell(
            conn,
            plant_id,
            path.area,
            path.line,
            path.cell,
            name=name if isinstance(name, str) else None,
            attributes=attributes or None,  # an empty 'cell' object keeps what a deployed config registered
        )
        entry = self._cells.get(path.key) or CellEntry(plant_id, cell_id)
        announced = {s.name: (s.name, s.meaning, s.unit, s.description, s.type) for s in meta.signals}  # last wins
        entry.add_signals(
            registry.upsert_signals(conn, plant_id, cell_id, announced.values()),
            {name: row[4] for name, row in announced.items()},
        )
        self._cells[path.key] = entry
        return len(meta.signals)
