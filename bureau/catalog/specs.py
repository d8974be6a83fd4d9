"""What the catalogue knows about each dataset beyond the database catalog: who provides it, how and how often
it is collected, when it is due, how it is shared, and its classification grade.

Grades follow 《工业数据分类分级指南（试行）》 (MIIT, 2020): three grades by the harm disclosure would cause.

    3 (三级) — the plant's own production-process and equipment data: it never leaves the owning plant's tenant
               (plant roles read it only through row-level security or per-plant views; no bureau, no PUBLIC).
    2 (二级) — enterprise-level figures held by the bureau (registry, monthly reports, metered electricity, raw
               analysis results): shared only through de-identified, disclosure-controlled views.
    1 (一级) — disclosure-controlled aggregates and de-identified exports: may be open.

Tables and views that have no spec here still get an entry, graded by the rules in ``default_spec`` (a per-plant
table is grade 3, a bureau table grade 2, a bureau view grade 1), so a new table is never missing from the
catalogue or silently open.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

Sharing = Literal["open", "conditional", "not_shared"]
Cadence = Literal["continuous", "monthly", "irregular"]

GRADE_LABELS = {1: "一级", 2: "二级", 3: "三级"}
GRADE_ACCESS = {
    1: "may be open; published as open data after disclosure control",
    2: "only through de-identified, disclosure-controlled views (conditional sharing)",
    3: "never leaves the owning plant's tenant",
}
PLANT_PROVIDER = "the connected plant (its edge gateway, via ingest)"
BUREAU_PROVIDER = "city industry bureau (经济和信息化局)"
PLATFORM_PROVIDER = "datafactory platform operators"


@dataclass(frozen=True)
class DatasetSpec:
    """The hand-written part of a catalogue entry; columns and types come from the database."""

    name: str
    title: str
    description: str
    provider: str
    collection: str
    category: str
    grade: int
    sharing: Sharing
    owner: str
    relations: tuple[str, ...]
    cadence: Cadence = "irregular"
    frequency: str = ""               # ISO 8601 duration of the update period ('' when irregular)
    max_age: timedelta | None = None  # continuous: late when the newest data is older than this
    due_day: int = 0                  # monthly: month M is due by day `due_day` of month M+1
    time_column: str = ""             # newest data = max(time_column)
    access_views: tuple[str, ...] = ()
    format: str = "PostgreSQL table"
    plant_id: int | None = None

    @property
    def deadline(self) -> str:
        if self.cadence == "continuous" and self.max_age is not None:
            return f"newest data at most {int(self.max_age.total_seconds())} s old"
        if self.cadence == "monthly":
            return f"a month's data by day {self.due_day} of the following month"
        return "none (updated when the facts change)"

    @property
    def monitored(self) -> bool:
        return self.cadence != "irregular" and bool(self.time_column)


_KPI_TABLES = ("state_intervals", "oee", "downtime", "pdm_health", "alerts")
_ENERGY_TABLES = ("energy", "energy_baseline", "energy_baseline_daily")
_BUREAU_VIEWS_ACCESS = ("bureau_v_city", "bureau_v_industry", "bureau_v_town", "bureau_v_park", "bureau_v_size",
                        "bureau_v_ownership", "bureau_v_above_designated")

SPECS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="platform_operations", title="Platform audit, security and data-health records (平台运维与安全记录)",
        description="The hash-chained audit trail, security alerts, dataset freshness and late-data alerts, and "
                    "applied schema migrations.", provider=PLATFORM_PROVIDER,
        collection="written by the platform services themselves", category="platform operation data (平台运维数据)",
        grade=2, sharing="not_shared", owner=PLATFORM_PROVIDER,
        relations=("audit_log", "security_alerts", "dataset_freshness", "dataset_alerts", "schema_migrations"),
    ),
    DatasetSpec(
        name="plant_registry", title="Plant, cell and signal registry (工厂设备信号目录)",
        description="Connected plants, their cells (machines) and signals with meaning and unit.",
        provider=PLANT_PROVIDER, collection="gateway birth messages and deployed edge configs",
        category="equipment data (设备数据)", grade=3, sharing="not_shared", owner="each plant's enterprise",
        relations=("plants", "cells", "signals", "signal_paths", "plant_configs", "plant_roles"),
    ),
    DatasetSpec(
        name="kpi_results", title="Production KPI results: OEE, downtime, states, maintenance (生产绩效结果)",
        description="OEE per machine and period (ISO 22400-2), downtime Pareto, machine state intervals, "
                    "predictive-maintenance health and alerts, computed by analytics from the plant's samples.",
        provider="datafactory analytics", collection="computed hourly from the raw samples",
        category="production operation data (生产经营数据)", grade=3, sharing="not_shared",
        owner="each plant's enterprise", relations=(*_KPI_TABLES, "oee_line", "oee_plant"),
        cadence="continuous", frequency="PT1H", max_age=timedelta(hours=2), time_column="time",
    ),
    DatasetSpec(
        name="energy_results", title="Energy results and baselines (能耗结果)",
        description="Energy per cell and period, energy baselines and daily savings (ISO 50006 style).",
        provider="datafactory analytics", collection="computed hourly from the plant's energy meters",
        category="production operation data (生产经营数据)", grade=3, sharing="not_shared",
        owner="each plant's enterprise", relations=(*_ENERGY_TABLES, "energy_line"),
        cadence="continuous", frequency="PT1H", max_age=timedelta(hours=2), time_column="time",
    ),
    DatasetSpec(
        name="bureau_registry", title="Enterprise registry (企业名录)",
        description="Enterprises by unified social credit code with attributes as validity intervals: name, "
                    "GB/T 4754-2017 industry, town, park, ownership, employees, revenue, size class.",
        provider=BUREAU_PROVIDER, collection="registry imports (CSV/XLSX) and platform plant links",
        category="enterprise management data (经营管理数据)", grade=2, sharing="conditional",
        owner=BUREAU_PROVIDER, relations=("bureau_enterprises", "bureau_enterprise_versions"),
        access_views=_BUREAU_VIEWS_ACCESS,
    ),
    DatasetSpec(
        name="bureau_reports", title="Enterprise monthly reports (企业月度报表)",
        description="Output, sales, revenue, employment, energy and electricity per enterprise and month, with "
                    "every revision.",
        provider="reporting enterprises, through the bureau", collection="monthly report files imported by the bureau",
        category="enterprise management data (经营管理数据)", grade=2, sharing="conditional",
        owner=BUREAU_PROVIDER, relations=("bureau_reports", "bureau_report_revisions", "bureau_imports"),
        access_views=_BUREAU_VIEWS_ACCESS, cadence="monthly", frequency="P1M", due_day=15, time_column="month",
    ),
    DatasetSpec(
        name="bureau_platform_energy", title="Platform-metered electricity per enterprise (平台计量用电量)",
        description="Monthly electricity of connected enterprises measured by the platform, and whether they "
                    "were operating.", provider="datafactory platform (energy results or raw meters)",
        collection="computed by the bureau's publish run", category="enterprise management data (经营管理数据)",
        grade=2, sharing="conditional", owner=BUREAU_PROVIDER, relations=("bureau_platform_energy",),
        access_views=_BUREAU_VIEWS_ACCESS, cadence="monthly", frequency="P1M", due_day=20, time_column="month",
    ),
    DatasetSpec(
        name="bureau_published", title="Disclosure-controlled statistical tables (统计发布表)",
        description="Published cells by industry, town, park, size, ownership and size threshold with primary and "
                    "secondary suppression; the bureau reads them only through the bureau_v_* views.",
        provider=BUREAU_PROVIDER, collection="computed by `datafactory bureau publish`",
        category="statistical aggregate data (统计汇总数据)", grade=2, sharing="conditional", owner=BUREAU_PROVIDER,
        relations=("bureau_published_cells", "bureau_publish_runs"), access_views=_BUREAU_VIEWS_ACCESS,
        cadence="monthly", frequency="P1M", due_day=25, time_column="month",
    ),
    DatasetSpec(
        name="bureau_macro", title="Macro analysis results (宏观分析结果)",
        description="Seasonal adjustment, forecasts, early warnings and nowcasts per division and town.",
        provider=BUREAU_PROVIDER, collection="computed by `datafactory bureau analyse`",
        category="statistical aggregate data (统计汇总数据)", grade=2, sharing="conditional", owner=BUREAU_PROVIDER,
        relations=("bureau_early_warnings", "bureau_forecasts", "bureau_nowcasts", "bureau_seasonal"),
        access_views=("bureau_v_early_warnings", "bureau_v_forecasts", "bureau_v_nowcasts", "bureau_v_seasonal"),
        cadence="monthly", frequency="P1M", due_day=25, time_column="month",
    ),
    DatasetSpec(
        name="opendata_exports", title="De-identified open data exports (开放数据)",
        description="Log of open-data exports: period, files, row counts, checksums and pseudonym key id.",
        provider=BUREAU_PROVIDER, collection="`datafactory opendata export`",
        category="statistical aggregate data (统计汇总数据)", grade=1, sharing="open", owner=BUREAU_PROVIDER,
        relations=("opendata_exports",), format="CSV and JSON files with metadata",
        cadence="monthly", frequency="P1M", due_day=28, time_column="period_start",
    ),
)


def plant_samples_spec(plant_id: int, enterprise: str, site: str) -> DatasetSpec:
    """One entry per connected plant: its raw samples, the feed whose stop the freshness monitor must see."""
    return DatasetSpec(
        name=f"samples.{enterprise}.{site}", title=f"Raw samples of {enterprise}/{site} (原始采集数据)",
        description="Every signal sample (time, value, OPC-UA quality) of the plant's machines and meters.",
        provider=PLANT_PROVIDER, collection="OPC-UA subscriptions and MQTT devices at the edge gateway, "
        "published over MQTT and written by ingest", category="production process data (生产过程数据)", grade=3,
        sharing="not_shared", owner=f"{enterprise} (plant {site})", relations=("samples",),
        cadence="continuous", frequency="PT5M", max_age=timedelta(minutes=5), time_column="time",
        plant_id=plant_id,
    )


def default_spec(relation: str, *, per_plant: bool, is_view: bool) -> DatasetSpec:
    """An entry for a relation with no spec: graded by who it is about, never open by accident."""
    if relation.startswith("bureau_v_"):
        return DatasetSpec(
            name=relation, title=f"Disclosure-controlled view {relation}",
            description="Published, disclosure-controlled statistics (suppressed cells are NULL with a flag).",
            provider=BUREAU_PROVIDER, collection="view over bureau_published_cells and analysis results",
            category="statistical aggregate data (统计汇总数据)", grade=1, sharing="conditional",
            owner=BUREAU_PROVIDER, relations=(relation,), format="PostgreSQL view (bureau role)",
        )
    if relation.startswith("bureau_"):
        return DatasetSpec(
            name=relation, title=f"Bureau table {relation}", description="Bureau working data.",
            provider=BUREAU_PROVIDER, collection="bureau processing", category="enterprise management data "
            "(经营管理数据)", grade=2, sharing="conditional", owner=BUREAU_PROVIDER, relations=(relation,),
            access_views=_BUREAU_VIEWS_ACCESS,
        )
    if per_plant:
        return DatasetSpec(
            name=relation, title=f"Per-plant data {relation}", description="Data about one plant per row.",
            provider=PLANT_PROVIDER, collection="platform services", category="production operation data "
            "(生产经营数据)", grade=3, sharing="not_shared", owner="each plant's enterprise", relations=(relation,),
            format="PostgreSQL view" if is_view else "PostgreSQL table",
        )
    return DatasetSpec(
        name=relation, title=f"Platform data {relation}", description="Platform operation and security data.",
        provider=PLATFORM_PROVIDER, collection="platform services", category="platform operation data (平台运维数据)",
        grade=2, sharing="not_shared", owner=PLATFORM_PROVIDER, relations=(relation,),
        format="PostgreSQL view" if is_view else "PostgreSQL table",
    )

