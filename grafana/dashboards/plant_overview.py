"""Plant overview: OEE and its factors per line, what every machine is doing now, output against target, alerts.

Reads the analytics results (``oee`` shift rows, ``alerts``); only "current state" touches ``samples``, one
index probe per machine (newest state sample before the end of the range).
Ratios over a range are recomputed from summed time elements and counts (never averaged percentages).
"""

from __future__ import annotations

from grafana import styles
from grafana.dashboards import plant_variables as pv
from grafana.model import Dashboard, Panel, Query, Row

OEE_FACTORS = """
    sum(o.apt_s) / nullif(sum(o.pbt_s), 0) AS "Availability",
    sum(o.ideal_production_s) / nullif(sum(o.apt_s), 0) AS "Performance",
    sum(o.good_count) / nullif(sum(o.total_count), 0) AS "Quality",
    (sum(o.apt_s) / nullif(sum(o.pbt_s), 0)) * (sum(o.ideal_production_s) / nullif(sum(o.apt_s), 0))
        * (sum(o.good_count) / nullif(sum(o.total_count), 0)) AS "OEE"
"""
SHIFT_ROWS = f"""
    o.plant_id = ${{plant}} AND o.period = 'shift' AND o.shift_name IN {pv.SELECTED_SHIFTS}
      AND $__timeFilter(o.time) AND o.ideal_cycle_time_s IS NOT NULL AND {pv.IN_LINES}
"""
FACTOR_OVERRIDES = (
    styles.thresholds_override("Availability", styles.AVAILABILITY_STEPS),
    styles.thresholds_override("Performance", styles.PERFORMANCE_STEPS),
    styles.thresholds_override("Quality", styles.QUALITY_STEPS),
    styles.thresholds_override("OEE", styles.OEE_STEPS),
)


PLANT_OEE = Panel(
    "OEE = Availability × Performance × Quality", "stat",
    (Query(f"""
        SELECT {OEE_FACTORS}
        FROM oee o JOIN cells c ON c.id = o.cell_id
        WHERE {SHIFT_ROWS}
    """),),
    width=12, height=6, unit="percentunit", decimals=1, min=0, max=1, steps=styles.OEE_STEPS,
    description="Selected lines and shifts over the time range, from summed ISO 22400 time elements.",
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background",
             "graphMode": "none", "textMode": "value_and_name", "orientation": "horizontal"},
    overrides=FACTOR_OVERRIDES,
)

OUTPUT_TOTAL = Panel(
    "Good output vs target", "bargauge",
    (Query(f"""
        SELECT {pv.LINE_OF_CELL} AS line,
               sum(o.good_count) / nullif(sum(o.pbt_s / 3600.0 * (c.attributes ->> 'target_rate_per_hour')::float), 0)
                   AS "of target"
        FROM oee o JOIN cells c ON c.id = o.cell_id
        WHERE {SHIFT_ROWS}
        GROUP BY 1 ORDER BY 1
    """),),
    width=12, height=6, unit="percentunit", decimals=0, min=0, max=1.2,
    steps=(styles.Step(None, "red"), styles.Step(0.9, "orange"), styles.Step(1.0, "green")),
    description="Good units ÷ (target rate per hour × planned busy hours), per line.",
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True}, "orientation": "horizontal",
             "displayMode": "gradient", "showUnfilled": True},
)

OEE_BY_LINE = Panel(
    "OEE by line", "table",
    (Query(f"""
        SELECT {pv.LINE_OF_CELL} AS line, {OEE_FACTORS},
               sum(o.good_count) AS "Good", sum(o.reject_count) AS "Rejects",
               sum(o.pbt_s / 3600.0 * (c.attributes ->> 'target_rate_per_hour')::float) AS "Target"
        FROM oee o JOIN cells c ON c.id = o.cell_id
        WHERE {SHIFT_ROWS}
        GROUP BY 1 ORDER BY 1
    """),),
    width=24, height=6, unit="percentunit", decimals=1, links=(pv.to_line(),),
    overrides=(*FACTOR_OVERRIDES, styles.unit_override("Good", "none"), styles.unit_override("Rejects", "none"),
               styles.unit_override("Target", "none")),
    description="Click a line for its state timeline, downtime Pareto and machines.",
)

GOOD_PER_HOUR = Panel(
    "Good output per hour by line", "timeseries",
    (Query(f"""
        SELECT o.time AS time, {pv.LINE_OF_CELL} AS metric, sum(o.good_count) AS value
        FROM oee o JOIN cells c ON c.id = o.cell_id
        WHERE o.plant_id = ${{plant}} AND o.period = 'hour' AND $__timeFilter(o.time) AND {pv.IN_LINES}
        GROUP BY 1, 2 ORDER BY 1
    """, format="time_series"),),
    width=12, height=8, unit="short", decimals=0,
    custom={"drawStyle": "bars", "fillOpacity": 60, "stacking": {"mode": "normal", "group": "A"}, "lineWidth": 1},
    color_mode="palette-classic",
)

OEE_TREND = Panel(
    "OEE per shift by line", "timeseries",
    (Query(f"""
        SELECT o.time AS time, {pv.LINE_OF_CELL} AS metric,
               sum(o.ideal_production_s * o.good_count / nullif(o.total_count, 0)) / nullif(sum(o.pbt_s), 0) AS value
        FROM oee o JOIN cells c ON c.id = o.cell_id
        WHERE {SHIFT_ROWS}
        GROUP BY 1, 2 ORDER BY 1
    """, format="time_series"),),
    width=12, height=8, unit="percentunit", decimals=1, min=0, max=1, steps=styles.OEE_STEPS,
    custom={"drawStyle": "line", "lineWidth": 2, "pointSize": 5, "showPoints": "always", "spanNulls": False,
            "thresholdsStyle": {"mode": "dashed"}},
    color_mode="palette-classic",
    description="OEE = good units × ideal cycle time ÷ planned busy time (dashed: 60 % and 85 %).",
)

CURRENT_STATES = Panel(
    "Machine states now", "table",
    (Query(f"""
        SELECT {pv.MACHINE_NAME} AS machine, last.value AS state, last.time AS "since", c.id AS cell_id
        FROM cells c
        JOIN signals s ON s.cell_id = c.id AND s.meaning = 'machine_state'
        CROSS JOIN LATERAL (
            SELECT x.value, x.time FROM samples x
            WHERE x.signal_id = s.id AND x.time <= $__timeTo()
              AND x.time > $__timeTo()::timestamptz - interval '35 days'
            ORDER BY x.time DESC LIMIT 1
        ) last
        WHERE c.plant_id = ${{plant}} AND {pv.IN_LINES}
        ORDER BY 1
    """),),
    width=12, height=10, mappings=styles.STATE_MAPPINGS, links=(pv.to_machine(),),
    description="Newest state sample of each machine at the end of the time range. Click for machine detail.",
    overrides=(
        {"matcher": {"id": "byName", "options": "state"},
         "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}]},
        {"matcher": {"id": "byName", "options": "since"}, "properties": [{"id": "unit", "value": "dateTimeFromNow"}]},
        {"matcher": {"id": "byName", "options": "cell_id"}, "properties": [{"id": "custom.hidden", "value": True}]},
    ),
)

ALERTS = Panel(
    "Maintenance alerts", "table",
    (Query(f"""
        SELECT a.time AS raised, {pv.MACHINE_NAME} AS machine, a.severity, a.status, a.message,
               a.rul_p50_h AS "RUL p50 (h)", c.id AS cell_id
        FROM alerts a JOIN cells c ON c.id = a.cell_id
        WHERE a.plant_id = ${{plant}} AND a.time <= $__timeTo() AND (a.time_end IS NULL OR a.time_end >= $__timeFrom())
          AND {pv.IN_LINES}
        ORDER BY a.status = 'cleared', a.time DESC
        LIMIT 50
    """),),
    width=12, height=10, mappings=styles.SEVERITY_MAPPINGS, links=(pv.to_machine(),),
    description="Alerts active during the time range, active ones first.",
    overrides=(
        {"matcher": {"id": "byName", "options": "severity"},
         "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}]},
        {"matcher": {"id": "byName", "options": "cell_id"}, "properties": [{"id": "custom.hidden", "value": True}]},
        {"matcher": {"id": "byName", "options": "RUL p50 (h)"}, "properties": [{"id": "unit", "value": "h"}]},
    ),
)

DASHBOARD = Dashboard(
    uid=pv.UID_OVERVIEW,
    title="Plant overview",
    folder="plant",
    description="OEE per line, machine states, output vs target and alerts for one plant.",
    datasource=pv.PLANT_DS,
    variables=(pv.DATASOURCE, pv.PLANT, pv.LINE, pv.SHIFT),
    tags=("datafactory", "plant"),
    links=pv.DASHBOARD_LINKS,
    time_from="now-7d",
    rows=(
        Row("Overall", (PLANT_OEE, OUTPUT_TOTAL, OEE_BY_LINE)),
        Row("Trend", (OEE_TREND, GOOD_PER_HOUR)),
        Row("Now", (CURRENT_STATES, ALERTS)),
    ),
)
