"""Template variables and SQL filters shared by the plant dashboards (overview, machine, energy, maintenance).

The plant dashboards are generic: the ``datasource`` variable picks a plant's data source (one per plant, logging in
as that plant's row-level-secured role), so the same dashboard shows whichever plant the viewer may see.

Variable formats, always explicit in SQL so multi-value and All behave the same everywhere:
``${plant}`` (single id), ``${machine:csv}`` (cell ids, numeric), ``${line:sqlstring}`` / ``${shift:sqlstring}``
(quoted text). No custom All value is set, so All expands to every option of the variable.
"""

from __future__ import annotations

from grafana.model import PG_TYPE, DatasourceRef, Link, Variable

PLANT_DS = DatasourceRef("${datasource}")
PLANT_DATASOURCE_NAME_PREFIX = "Plant "

DATASOURCE = Variable("datasource", "Plant data source", "datasource", PG_TYPE,
                      regex=f"/^{PLANT_DATASOURCE_NAME_PREFIX}/")
PLANT = Variable("plant", "Plant", "query", """
    SELECT id AS __value, enterprise || '/' || site AS __text FROM plants ORDER BY 2
""")
# Production lines: lines with at least one machine reporting a machine state (not the utility meter's line).
LINE = Variable("line", "Line", "query", """
    SELECT DISTINCT c.area || '/' || c.line AS __value, c.area || '/' || c.line AS __text
    FROM cells c JOIN signals s ON s.cell_id = c.id AND s.meaning = 'machine_state'
    WHERE c.plant_id = ${plant}
    ORDER BY 1
""", multi=True, include_all=True)
# Energy: every line with a metered cell, the utilities included.
ENERGY_LINE = Variable("line", "Line", "query", """
    SELECT DISTINCT c.area || '/' || c.line AS __value, c.area || '/' || c.line AS __text
    FROM cells c JOIN signals s ON s.cell_id = c.id AND s.meaning IN ('energy_kwh', 'power_kw')
    WHERE c.plant_id = ${plant}
    ORDER BY 1
""", multi=True, include_all=True)
MACHINE = Variable("machine", "Machine", "query", """
    SELECT c.id AS __value, c.area || '/' || c.line || '/' || c.cell AS __text
    FROM cells c
    WHERE c.plant_id = ${plant} AND c.area || '/' || c.line IN (${line:sqlstring})
      AND EXISTS (SELECT 1 FROM signals s WHERE s.cell_id = c.id AND s.meaning = 'machine_state')
    ORDER BY 2
""", multi=True, include_all=True)
SHIFT = Variable("shift", "Shift", "query", """
    SELECT DISTINCT shift_name AS __value, shift_name AS __text
    FROM oee WHERE plant_id = ${plant} AND period = 'shift' AND shift_name <> ''
    ORDER BY 1
""", multi=True, include_all=True, refresh=2)

# SQL fragments; ``c`` is always the cells alias.
LINE_OF_CELL = "c.area || '/' || c.line"
IN_LINES = f"{LINE_OF_CELL} IN (${{line:sqlstring}})"
MACHINE_NAME = "c.area || '/' || c.line || '/' || c.cell"
SERIES = f"({MACHINE_NAME})"  # series names: cell names repeat across lines (cnc-01 on every line)
SELECTED_MACHINES = "(${machine:csv})"
SELECTED_SHIFTS = "(${shift:sqlstring})"
# date_bin (PostgreSQL 14+) rather than time_bucket, so the same SQL runs without TimescaleDB.
BIN = "date_bin($__interval_ms * interval '1 millisecond', {col}, timestamptz '2000-01-01')"

UID_OVERVIEW = "df-plant-overview"
UID_MACHINE = "df-machine-detail"
UID_ENERGY = "df-energy"
UID_MAINTENANCE = "df-maintenance"

KEEP = "${datasource:queryparam}&${plant:queryparam}&${__url_time_range}"


def to_machine(cell_id_field: str = "cell_id") -> Link:
    """Data link from a row naming a cell to the machine detail of that machine."""
    return Link("Machine detail", f"/d/{UID_MACHINE}/machine-detail?{KEEP}&var-line=All"
                f"&var-machine=${{__data.fields.{cell_id_field}}}")


def to_line(line_field: str = "line") -> Link:
    return Link("Line detail", f"/d/{UID_MACHINE}/machine-detail?{KEEP}&var-line=${{__data.fields.{line_field}}}"
                "&var-machine=All")


DASHBOARD_LINKS = (
    Link("Plant overview", f"/d/{UID_OVERVIEW}/plant-overview"),
    Link("Line & machine", f"/d/{UID_MACHINE}/machine-detail"),
    Link("Energy", f"/d/{UID_ENERGY}/energy"),
    Link("Maintenance", f"/d/{UID_MAINTENANCE}/maintenance"),
)
