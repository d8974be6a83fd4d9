"""Maintenance alerts: the alert lifecycle (raised → updated → cleared), machine health charts (EWMA against its
control limit, CUSUM against its decision interval, ISO 20816 zone) and remaining useful life.

Reads the analytics ``alerts`` and ``pdm_health`` tables only.
"""

from __future__ import annotations

from grafana import styles
from grafana.dashboards import machine_detail
from grafana.dashboards import plant_variables as pv
from grafana.model import Dashboard, Panel, Query, Row

IN_RANGE = "a.time <= $__timeTo() AND (a.time_end IS NULL OR a.time_end >= $__timeFrom())"

ACTIVE = Panel(
    "Alerts", "stat",
    (Query(f"""
        SELECT count(*) FILTER (WHERE a.status <> 'cleared' AND a.severity = 'critical') AS "active critical",
               count(*) FILTER (WHERE a.status <> 'cleared' AND a.severity <> 'critical') AS "active warning",
               count(*) AS "in range"
        FROM alerts a
        WHERE a.plant_id = ${{plant}} AND a.cell_id IN {pv.SELECTED_MACHINES} AND {IN_RANGE}
    """),),
    width=8, height=6, decimals=0, steps=styles.ZERO_IS_GOOD,
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background",
             "graphMode": "none", "textMode": "value_and_name", "orientation": "vertical"},
    overrides=({"matcher": {"id": "byName", "options": "in range"},
                "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "text"}}]},),
)

ALERT_LOG = Panel(
    "Alert log", "table",
    (Query(f"""
        SELECT a.time AS raised, a.time_end AS cleared, {pv.MACHINE_NAME} AS machine, a.kind, a.severity, a.status,
               a.update_count AS updates, a.message, a.value AS "health value", a.zone,
               a.rul_p10_h AS "RUL p10", a.rul_p50_h AS "RUL p50", a.rul_p90_h AS "RUL p90", c.id AS cell_id
        FROM alerts a JOIN cells c ON c.id = a.cell_id
        WHERE a.plant_id = ${{plant}} AND a.cell_id IN {pv.SELECTED_MACHINES} AND {IN_RANGE}
        ORDER BY a.status = 'cleared', a.time DESC
        LIMIT 200
    """),),
    width=16, height=6, mappings=(*styles.SEVERITY_MAPPINGS, *styles.ZONE_MAPPINGS), links=(pv.to_machine(),),
    description="One row per alert episode; active first. Click for the machine's signals.",
    overrides=(
        {"matcher": {"id": "byName", "options": "severity"},
         "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}]},
        styles.unit_override("RUL p10", "h"), styles.unit_override("RUL p50", "h"),
        styles.unit_override("RUL p90", "h"),
        {"matcher": {"id": "byName", "options": "cell_id"}, "properties": [{"id": "custom.hidden", "value": True}]},
    ),
)

VIBRATION_SIGNALS = f"""h.signal_id IN (SELECT s.id FROM signals s
                          WHERE s.cell_id IN {pv.SELECTED_MACHINES} AND s.meaning = 'vibration')"""

EWMA = Panel(
    "Vibration EWMA against its control limit", "timeseries",
    (Query(f"""
        SELECT b.time, {pv.SERIES} || ' ' || b.label AS metric, b.value
        FROM (
            SELECT {pv.BIN.format(col="h.time")} AS time, h.cell_id, k.label, avg(k.value) AS value
            FROM pdm_health h
            CROSS JOIN LATERAL (VALUES ('EWMA', h.ewma), ('UCL', h.ewma_ucl)) k(label, value)
            WHERE {VIBRATION_SIGNALS} AND $__timeFilter(h.time)
            GROUP BY 1, 2, 3
        ) b JOIN cells c ON c.id = b.cell_id
        ORDER BY 1
    """, format="time_series"),),
    width=12, height=9, unit="velocitymms", decimals=2, color_mode="palette-classic",
    max_data_points=machine_detail.MANY_SERIES_POINTS,
    description="Drift is flagged when the EWMA leaves its limits. Background: ISO 20816 zones (C/D at 4.5 mm/s "
                "is the default failure threshold used for RUL).",
    steps=styles.VIBRATION_STEPS,
    custom={"drawStyle": "line", "lineWidth": 1, "showPoints": "never", "thresholdsStyle": {"mode": "area"}},
    overrides=(
        {"matcher": {"id": "byRegexp", "options": ".* UCL"},
         "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]},
    ),
)

CUSUM = Panel(
    "Vibration CUSUM against its decision interval", "timeseries",
    (Query(f"""
        SELECT {pv.BIN.format(col="h.time")} AS time, {pv.SERIES} AS metric,
               max(h.cusum_pos / nullif(h.cusum_h, 0)) AS value
        FROM pdm_health h JOIN cells c ON c.id = h.cell_id
        WHERE {VIBRATION_SIGNALS} AND $__timeFilter(h.time)
        GROUP BY 1, 2 ORDER BY 1
    """, format="time_series"),),
    width=12, height=9, unit="percentunit", decimals=0, color_mode="palette-classic",
    max_data_points=machine_detail.MANY_SERIES_POINTS,
    steps=(styles.Step(None, "green"), styles.Step(1.0, "red")),
    description="Upper CUSUM as a fraction of the decision interval h: above 100 % the mean has shifted up.",
    custom={"drawStyle": "line", "lineWidth": 1, "showPoints": "never", "thresholdsStyle": {"mode": "dashed"}},
)

ZONES = Panel(
    "ISO 20816 zone over time", "state-timeline",
    (Query(f"""
        SELECT {pv.BIN.format(col="h.time")} AS time, {pv.SERIES} AS metric, max(h.zone) AS value
        FROM pdm_health h JOIN cells c ON c.id = h.cell_id
        WHERE {VIBRATION_SIGNALS} AND $__timeFilter(h.time) AND h.zone IS NOT NULL
        GROUP BY 1, 2 ORDER BY 1
    """, format="time_series"),),
    width=24, height=7, mappings=styles.ZONE_MAPPINGS, color_mode="thresholds",
    max_data_points=machine_detail.MANY_SERIES_POINTS,
    options={"mergeValues": True, "showValue": "auto", "alignValue": "left", "rowHeight": 0.85,
             "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
    custom={"fillOpacity": 85, "lineWidth": 0, "spanNulls": True},
)

DASHBOARD = Dashboard(
    uid=pv.UID_MAINTENANCE,
    title="Maintenance",
    folder="plant",
    description="Predictive-maintenance alerts, machine health trends and remaining useful life.",
    datasource=pv.PLANT_DS,
    variables=(pv.DATASOURCE, pv.PLANT, pv.LINE, pv.MACHINE),
    tags=("datafactory", "plant", "maintenance"),
    links=pv.DASHBOARD_LINKS,
    time_from="now-7d",
    rows=(
        Row("Alerts", (ACTIVE, ALERT_LOG, machine_detail.RUL)),
        Row("Health", (EWMA, CUSUM, ZONES)),
    ),
)
