"""Line and machine detail: state timeline, downtime Pareto, microstops, cycle time, counts, raw signals with
control limits, remaining useful life.

With machine = All it is the line view; pick one machine for its detail. State, downtime and counts come from the
analytics tables; the raw-signal panels read ``samples`` downsampled with ``date_bin`` at ``$__interval`` (never
finer than the panel's minimum interval, the raw period) and filter on ``signal_id`` first, so every scan is a
range on the (signal_id, time) primary key.
"""

from __future__ import annotations

from grafana import styles
from grafana.dashboards import plant_variables as pv
from grafana.model import Dashboard, Panel, Query, Row

SELECTED = f"c.id IN {pv.SELECTED_MACHINES}"
HOURLY = f"o.period = 'hour' AND $__timeFilter(o.time) AND o.cell_id IN {pv.SELECTED_MACHINES}"


# A line has dozens of machines: 400 points per series keep a 30-day, all-machine panel at ~15k rows (a 2 h step)
# while a single machine's day still resolves to 5 minutes.
MANY_SERIES_POINTS = 400
ROLLUP_FROM_MS = 3_600_000  # at a ≥ 1 h interval the hourly roll-up has every point the panel can draw


def raw_signal_query(meaning: str, label: str) -> Query:
    """Downsampled raw samples of the selected machines' signals of one meaning; one series per machine.

    Two branches, exactly one of which runs: Grafana substitutes ``$__interval_ms`` by a number, so the planner
    folds ``3600000 >= 3600000`` to a constant and drops the other branch before execution. Short ranges average
    the raw samples; long ones average the hourly roll-up (weighted by its sample counts).
    """
    signals = f"""(SELECT s2.id FROM signals s2 WHERE s2.cell_id IN {pv.SELECTED_MACHINES}
                AND s2.meaning = '{meaning}')"""
    return Query(f"""
        SELECT {pv.BIN.format(col="r.time")} AS time, {pv.SERIES} || ' {label}' AS metric,
               sum(r.avg * r.n) / nullif(sum(r.n), 0) AS value
        FROM samples_hourly r
        JOIN signals s ON s.id = r.signal_id
        JOIN cells c ON c.id = s.cell_id
        WHERE $__interval_ms >= {ROLLUP_FROM_MS} AND r.signal_id IN {signals} AND $__timeFilter(r.time)
        GROUP BY 1, 2
        UNION ALL
        SELECT {pv.BIN.format(col="x.time")}, {pv.SERIES} || ' {label}', avg(x.value)
        FROM samples x
        JOIN signals s ON s.id = x.signal_id
        JOIN cells c ON c.id = s.cell_id
        WHERE $__interval_ms < {ROLLUP_FROM_MS} AND x.signal_id IN {signals} AND $__timeFilter(x.time)
        GROUP BY 1, 2
        ORDER BY 1, 2
    """, format="time_series")


STATE_TIMELINE = Panel(
    "State timeline", "state-timeline",
    (Query(f"""
        SELECT si.time AS time, {pv.SERIES} AS metric, si.state_code AS value
        FROM state_intervals si JOIN cells c ON c.id = si.cell_id
        WHERE si.cell_id IN {pv.SELECTED_MACHINES}
          AND si.time < $__timeTo() AND si.time_end > $__timeFrom()
          AND si.time > $__timeFrom()::timestamptz - interval '14 days'
          AND si.duration_s * 1000 >= $__interval_ms / 10
        ORDER BY 1
    """, format="time_series"),),
    width=24, height=9, mappings=styles.STATE_MAPPINGS, color_mode="thresholds",
    max_data_points=MANY_SERIES_POINTS,
    description="State intervals per machine (ISO 22400 time model). Intervals under a tenth of a pixel "
                "($__interval / 10) are left out: zoom in to see microstops.",
    options={"mergeValues": True, "showValue": "never", "alignValue": "left", "rowHeight": 0.85,
             "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
    custom={"fillOpacity": 85, "lineWidth": 0, "spanNulls": True},
)

PARETO = Panel(
    "Downtime Pareto", "barchart",
    (Query(f"""
        SELECT d.reason || ' (' || d.time_element || ')' AS reason, sum(d.duration_s) / 3600.0 AS hours
        FROM downtime d
        WHERE d.cell_id IN {pv.SELECTED_MACHINES} AND d.period = 'hour' AND $__timeFilter(d.time)
        GROUP BY 1 ORDER BY 2 DESC
    """),),
    width=12, height=9, unit="h", decimals=1, color_mode="fixed",
    description="Every non-running loss inside planned busy time, longest first (adot down, asut setup, adet delay).",
    options={"orientation": "horizontal", "xField": "reason", "showValue": "auto", "barWidth": 0.8,
             "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"}},
    custom={"fillOpacity": 80},
    overrides=(styles.colour_override("hours", "red"),),
)

MICROSTOPS = Panel(
    "Microstops per hour", "timeseries",
    (Query(f"""
        SELECT o.time AS time, 'microstops' AS metric, sum(o.microstop_count) AS value
        FROM oee o WHERE {HOURLY} GROUP BY 1, 2
        UNION ALL
        SELECT o.time, 'failures (stops ≥ threshold)', sum(o.stop_count)
        FROM oee o WHERE {HOURLY} GROUP BY 1, 2
        ORDER BY 1
    """, format="time_series"),),
    width=12, height=9, unit="short", decimals=0,
    description="Unplanned stops shorter than the microstop threshold (default 120 s), and longer stops.",
    custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
    overrides=(styles.colour_override("microstops", "orange"),
               styles.colour_override("failures (stops ≥ threshold)", "red")),
)

CYCLE_TIME = Panel(
    "Cycle time: actual vs ideal", "timeseries",
    (
        Query(f"""
            SELECT o.time AS time, {pv.SERIES} || ' actual' AS metric, o.apt_s / nullif(o.total_count, 0) AS value
            FROM oee o JOIN cells c ON c.id = o.cell_id
            WHERE {HOURLY} AND o.total_count > 0
            ORDER BY 1
        """, format="time_series"),
        Query(f"""
            SELECT o.time AS time, {pv.SERIES} || ' ideal' AS metric, o.ideal_cycle_time_s AS value
            FROM oee o JOIN cells c ON c.id = o.cell_id
            WHERE {HOURLY} AND o.ideal_cycle_time_s IS NOT NULL
            ORDER BY 1
        """, format="time_series", ref_id="B"),
    ),
    width=12, height=8, unit="s", decimals=1,
    description="Run time per unit produced, per hour; dashed: the ideal cycle time.",
    custom={"drawStyle": "line", "lineWidth": 1, "showPoints": "never", "spanNulls": 3_600_000},
    overrides=({"matcher": {"id": "byRegexp", "options": ".* ideal"},
                "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}}]},),
    color_mode="palette-classic",
)

COUNTS = Panel(
    "Good and rejected units per hour", "timeseries",
    (Query(f"""
        SELECT o.time AS time, sum(o.good_count) AS good, sum(o.reject_count) AS rejected
        FROM oee o WHERE {HOURLY}
        GROUP BY 1 ORDER BY 1
    """, format="time_series"),),
    width=12, height=8, unit="short", decimals=0,
    custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
    overrides=(styles.colour_override("good", "green"), styles.colour_override("rejected", "red")),
)

MACHINE_OEE = Panel(
    "OEE by machine", "table",
    (Query(f"""
        SELECT {pv.MACHINE_NAME} AS machine,
               sum(o.apt_s) / nullif(sum(o.pbt_s), 0) AS "Availability",
               sum(o.ideal_production_s) / nullif(sum(o.apt_s), 0) AS "Performance",
               sum(o.good_count) / nullif(sum(o.total_count), 0) AS "Quality",
               sum(o.ideal_production_s * o.good_count / nullif(o.total_count, 0)) / nullif(sum(o.pbt_s), 0) AS "OEE",
               sum(o.microstop_count) AS "Microstops", sum(o.changeover_count) AS "Changeovers",
               sum(o.apt_s) / nullif(sum(o.stop_count), 0) AS "MTBF",
               sum(o.adot_s - o.microstop_s) / nullif(sum(o.stop_count), 0) AS "MTTR",
               c.id AS cell_id
        FROM oee o JOIN cells c ON c.id = o.cell_id
        WHERE o.period = 'shift' AND o.shift_name IN {pv.SELECTED_SHIFTS} AND $__timeFilter(o.time)
          AND {SELECTED}
        GROUP BY c.id, 1 ORDER BY 1
    """),),
    width=24, height=8, unit="percentunit", decimals=1, links=(pv.to_machine(),),
    description="Selected shifts; MTBF = run time ÷ failures, MTTR = failure down time ÷ failures.",
    overrides=(
        styles.thresholds_override("Availability", styles.AVAILABILITY_STEPS),
        styles.thresholds_override("Performance", styles.PERFORMANCE_STEPS),
        styles.thresholds_override("Quality", styles.QUALITY_STEPS),
        styles.thresholds_override("OEE", styles.OEE_STEPS),
        styles.unit_override("Microstops", "none"), styles.unit_override("Changeovers", "none"),
        styles.unit_override("MTBF", "s"), styles.unit_override("MTTR", "s"),
        {"matcher": {"id": "byName", "options": "cell_id"}, "properties": [{"id": "custom.hidden", "value": True}]},
    ),
)

VIBRATION = Panel(
    "Vibration with EWMA control limits", "timeseries",
    (
        raw_signal_query("vibration", "vibration"),
        Query(f"""
            SELECT b.time, {pv.SERIES} || ' ' || b.label AS metric, b.value
            FROM (
                SELECT {pv.BIN.format(col="h.time")} AS time, h.cell_id, k.label, avg(k.value) AS value
                FROM pdm_health h
                CROSS JOIN LATERAL (VALUES ('EWMA', h.ewma), ('UCL', h.ewma_ucl)) k(label, value)
                WHERE h.signal_id IN (SELECT s.id FROM signals s
                                      WHERE s.cell_id IN {pv.SELECTED_MACHINES} AND s.meaning = 'vibration')
                  AND $__timeFilter(h.time)
                GROUP BY 1, 2, 3
            ) b JOIN cells c ON c.id = b.cell_id
            ORDER BY 1
        """, format="time_series", ref_id="B"),
    ),
    width=24, height=9, unit="velocitymms", decimals=2, interval="1m", steps=styles.VIBRATION_STEPS,
    max_data_points=MANY_SERIES_POINTS,
    description="Velocity RMS (mm/s) averaged per $__interval; EWMA and its upper control limit from analytics. "
                "Background bands: ISO 20816 zones.",
    custom={"drawStyle": "line", "lineWidth": 1, "showPoints": "never", "thresholdsStyle": {"mode": "area"},
            "fillOpacity": 0},
    overrides=({"matcher": {"id": "byRegexp", "options": ".* UCL"},
                "properties": [{"id": "custom.lineStyle", "value": {"fill": "dash", "dash": [10, 10]}},
                               {"id": "color", "value": {"mode": "fixed", "fixedColor": "red"}}]},),
    color_mode="palette-classic",
)

TEMPERATURE = Panel(
    "Temperature", "timeseries", (raw_signal_query("temperature", "temperature"),),
    width=12, height=8, unit="celsius", decimals=1, interval="1m", max_data_points=MANY_SERIES_POINTS,
    color_mode="palette-classic",
    custom={"drawStyle": "line", "lineWidth": 1, "showPoints": "never"},
)

POWER = Panel(
    "Power", "timeseries", (raw_signal_query("power_kw", "power"),),
    width=12, height=8, unit="kwatt", decimals=1, interval="1m", max_data_points=MANY_SERIES_POINTS,
    color_mode="palette-classic",
    custom={"drawStyle": "line", "lineWidth": 1, "showPoints": "never", "fillOpacity": 10},
)

RUL = Panel(
    "Health and remaining useful life", "table",
    (Query(f"""
        SELECT {pv.MACHINE_NAME} AS machine, h.zone AS zone, h.value AS "vibration", h.ewma AS "EWMA",
               h.drift AS drift, h.rul_p10_h AS "RUL p10", h.rul_p50_h AS "RUL p50", h.rul_p90_h AS "RUL p90",
               h.time AS "as of"
        FROM cells c
        JOIN signals s ON s.cell_id = c.id AND s.meaning = 'vibration'
        CROSS JOIN LATERAL (
            SELECT * FROM pdm_health p
            WHERE p.signal_id = s.id AND p.time <= $__timeTo()
              AND p.time > $__timeTo()::timestamptz - interval '35 days'
            ORDER BY p.time DESC LIMIT 1
        ) h
        WHERE {SELECTED}
        ORDER BY h.rul_p50_h NULLS LAST, 1
    """),),
    width=24, height=7, mappings=styles.ZONE_MAPPINGS,
    description="Newest health bucket per machine. RUL: hours until the vibration trend reaches the failure "
                "threshold (10th/50th/90th percentile); empty while no degradation trend is detected.",
    overrides=(
        {"matcher": {"id": "byName", "options": "zone"},
         "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}]},
        styles.unit_override("vibration", "velocitymms"), styles.unit_override("EWMA", "velocitymms"),
        styles.thresholds_override("RUL p10", styles.RUL_STEPS), styles.unit_override("RUL p10", "h"),
        styles.thresholds_override("RUL p50", styles.RUL_STEPS), styles.unit_override("RUL p50", "h"),
        styles.unit_override("RUL p90", "h"),
    ),
)

DASHBOARD = Dashboard(
    uid=pv.UID_MACHINE,
    title="Line & machine detail",
    folder="plant",
    description="State timeline, downtime Pareto, microstops, cycle time, counts, raw signals and RUL.",
    datasource=pv.PLANT_DS,
    variables=(pv.DATASOURCE, pv.PLANT, pv.LINE, pv.MACHINE, pv.SHIFT),
    tags=("datafactory", "plant"),
    links=pv.DASHBOARD_LINKS,
    time_from="now-24h",
    rows=(
        Row("States and losses", (STATE_TIMELINE, PARETO, MICROSTOPS)),
        Row("Production", (CYCLE_TIME, COUNTS, MACHINE_OEE)),
        Row("Condition", (VIBRATION, TEMPERATURE, POWER, RUL)),
    ),
)
