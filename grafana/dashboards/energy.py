"""Energy: load profile, peak demand, cost by time-of-use band, specific energy consumption, and the ISO 50006
baseline (expected vs actual with its prediction interval, CUSUM of savings).

Everything reads the analytics ``energy`` rows (hour and day periods) and the baseline tables, except the main-meter
trace, which is raw ``samples`` downsampled with ``date_bin``.
"""

from __future__ import annotations

from grafana import styles
from grafana.dashboards import plant_variables as pv
from grafana.model import Dashboard, Panel, Query, Row, Step

ENERGY_ROWS = f"e.plant_id = ${{plant}} AND $__timeFilter(e.time) AND {pv.IN_LINES}"
BANDS = ("critical", "peak", "flat", "valley")

TOTALS = Panel(
    "Energy in range", "stat",
    (Query(f"""
        SELECT sum(e.kwh) AS "energy", sum(e.cost) AS "cost", sum(e.tce) AS "coal equivalent",
               sum(e.idle_kwh) / nullif(sum(e.kwh), 0) AS "idle share",
               sum(e.kwh) / nullif(sum(e.good_count), 0) AS "kWh per good unit"
        FROM energy e JOIN cells c ON c.id = e.cell_id
        WHERE e.period = 'hour' AND {ENERGY_ROWS}
    """),),
    width=24, height=5, decimals=1,
    description="Idle share: energy drawn while not producing. kWh per good unit over all selected cells.",
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value",
             "graphMode": "none", "textMode": "value_and_name"},
    overrides=(
        styles.unit_override("energy", "kwatth"), styles.unit_override("cost", "currencyCNY"),
        styles.unit_override("coal equivalent", "t"), styles.unit_override("kWh per good unit", "kwatth"),
        {"matcher": {"id": "byName", "options": "idle share"},
         "properties": [{"id": "unit", "value": "percentunit"}, {"id": "thresholds", "value": {
             "mode": "absolute", "steps": [{"value": None, "color": "green"}, {"value": 0.2, "color": "orange"},
                                           {"value": 0.35, "color": "red"}]}}]},
    ),
)

LOAD_PROFILE = Panel(
    "Load profile", "timeseries",
    (
        Query(f"""
            SELECT e.time AS time, {pv.LINE_OF_CELL} AS metric, sum(e.avg_kw) AS value
            FROM energy e JOIN cells c ON c.id = e.cell_id
            WHERE e.period = 'hour' AND {ENERGY_ROWS}
            GROUP BY 1, 2 ORDER BY 1, 2
        """, format="time_series"),
    ),
    width=16, height=9, unit="kwatt", decimals=1, color_mode="palette-classic",
    description="Hourly average demand per line (the utilities line is the plant's main incoming meter).",
    custom={"drawStyle": "line", "lineWidth": 1, "fillOpacity": 15, "showPoints": "never"},
)

PEAKS = Panel(
    "Peak 15-min demand by cell", "bargauge",
    (Query(f"""
        SELECT {pv.MACHINE_NAME} AS cell, max(e.peak_kw_15min) AS "peak"
        FROM energy e JOIN cells c ON c.id = e.cell_id
        WHERE e.period = 'hour' AND {ENERGY_ROWS}
        GROUP BY 1 ORDER BY 2 DESC NULLS LAST LIMIT 12
    """),),
    width=8, height=9, unit="kwatt", decimals=1, color_mode="continuous-GrYlRd",
    description="Highest 15-minute average demand in the range; the demand charge is billed on the plant's peak.",
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True}, "orientation": "horizontal",
             "displayMode": "gradient", "showUnfilled": True},
)

COST_BY_BAND = Panel(
    "Cost by time-of-use band per day", "timeseries",
    (Query(f"""
        SELECT e.time AS time, {", ".join(f'sum(e.cost_{b}) AS "{b}"' for b in BANDS)}
        FROM energy e JOIN cells c ON c.id = e.cell_id
        WHERE e.period = 'day' AND {ENERGY_ROWS}
        GROUP BY 1 ORDER BY 1
    """, format="time_series"),),
    width=16, height=8, unit="currencyCNY", decimals=0,
    custom={"drawStyle": "bars", "fillOpacity": 80, "stacking": {"mode": "normal", "group": "A"}},
    overrides=tuple(styles.colour_override(b, styles.BAND_COLOURS[b]) for b in BANDS),
    description="Plant-local days; bands per the configured tariff (critical peak, peak, flat, valley).",
)

KWH_BY_BAND = Panel(
    "Energy by band", "piechart",
    (Query(f"""
        SELECT {", ".join(f'sum(e.kwh_{b}) AS "{b}"' for b in BANDS)}
        FROM energy e JOIN cells c ON c.id = e.cell_id
        WHERE e.period = 'hour' AND {ENERGY_ROWS}
    """),),
    width=8, height=8, unit="kwatth", decimals=0,
    options={"reduceOptions": {"calcs": ["sum"], "fields": "", "values": False}, "pieType": "donut",
             "displayLabels": ["percent"], "legend": {"showLegend": True, "displayMode": "table",
                                                      "placement": "right", "values": ["value"]}},
    overrides=tuple(styles.colour_override(b, styles.BAND_COLOURS[b]) for b in BANDS),
)

SEC = Panel(
    "Specific energy consumption per day", "timeseries",
    (Query(f"""
        SELECT e.time AS time, {pv.LINE_OF_CELL} AS metric, sum(e.kwh) / sum(e.good_count) AS value
        FROM energy e JOIN cells c ON c.id = e.cell_id
        WHERE e.period = 'day' AND {ENERGY_ROWS}
        GROUP BY 1, 2 HAVING sum(e.good_count) > 0 ORDER BY 1, 2
    """, format="time_series"),),
    width=12, height=8, unit="kwatth", decimals=3, color_mode="palette-classic",
    description="kWh per good unit of each producing line (lower is better).",
    custom={"drawStyle": "line", "lineWidth": 2, "showPoints": "always", "pointSize": 5},
)

BASELINE = Panel(
    "Baseline: expected vs actual energy per day", "timeseries",
    (Query("""
        SELECT b.time AS time, b.actual_kwh AS "actual", b.expected_kwh AS "expected",
               b.pi_low_kwh AS "expected low", b.pi_high_kwh AS "expected high"
        FROM energy_baseline_daily b
        WHERE b.plant_id = ${plant} AND $__timeFilter(b.time)
        ORDER BY 1
    """, format="time_series"),),
    width=12, height=8, unit="kwatth", decimals=0,
    description="ISO 50006 baseline model (production and degree-days); shaded: 95 % prediction interval.",
    custom={"drawStyle": "line", "lineWidth": 2, "showPoints": "always", "pointSize": 4},
    overrides=(
        styles.colour_override("actual", "blue"), styles.colour_override("expected", "#B877D9"),
        {"matcher": {"id": "byName", "options": "expected low"},
         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "#B877D9"}},
                        {"id": "custom.lineWidth", "value": 0}, {"id": "custom.hideFrom",
                                                                 "value": {"legend": True, "tooltip": False,
                                                                           "viz": False}}]},
        {"matcher": {"id": "byName", "options": "expected high"},
         "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": "#B877D9"}},
                        {"id": "custom.lineWidth", "value": 0}, {"id": "custom.fillBelowTo", "value": "expected low"},
                        {"id": "custom.fillOpacity", "value": 15},
                        {"id": "custom.hideFrom", "value": {"legend": True, "tooltip": False, "viz": False}}]},
    ),
)

CUSUM = Panel(
    "CUSUM of savings", "timeseries",
    (Query("""
        SELECT b.time AS time, b.cusum_kwh AS "cumulative savings"
        FROM energy_baseline_daily b
        WHERE b.plant_id = ${plant} AND b.phase = 'reporting' AND $__timeFilter(b.time)
        ORDER BY 1
    """, format="time_series"),),
    width=12, height=8, unit="kwatth", decimals=0, steps=(Step(None, "red"), Step(0, "green")),
    description="Expected − actual, summed from the start of the reporting period: rising = saving energy.",
    custom={"drawStyle": "line", "lineWidth": 2, "fillOpacity": 20, "gradientMode": "scheme",
            "thresholdsStyle": {"mode": "line"}},
    color_mode="thresholds",
)

BASELINE_MODEL = Panel(
    "Baseline model", "table",
    (Query("""
        SELECT m.formula, m.n_days AS "days", m.r2 AS "R²", m.cv_rmse AS "CV(RMSE)", m.nmbe AS "NMBE",
               m.meets_ashrae14 AS "meets ASHRAE 14", m.saving_fraction AS "saving", m.saving_kwh AS "saving kWh",
               m.time AS "baseline from", m.time_end AS "reporting from"
        FROM energy_baseline m
        WHERE m.plant_id = ${plant}
    """),),
    width=24, height=4, decimals=3,
    overrides=(
        styles.unit_override("CV(RMSE)", "percentunit"), styles.unit_override("NMBE", "percentunit"),
        styles.unit_override("saving", "percentunit"), styles.unit_override("saving kWh", "kwatth"),
        styles.unit_override("baseline from", "dateTimeAsIso"), styles.unit_override("reporting from",
                                                                                      "dateTimeAsIso"),
    ),
)

DASHBOARD = Dashboard(
    uid=pv.UID_ENERGY,
    title="Energy",
    folder="plant",
    description="Load profile, peak demand, cost by time-of-use band, SEC, baseline and CUSUM.",
    datasource=pv.PLANT_DS,
    variables=(pv.DATASOURCE, pv.PLANT, pv.ENERGY_LINE),
    tags=("datafactory", "plant", "energy"),
    links=pv.DASHBOARD_LINKS,
    time_from="now-30d",
    refresh="5m",
    rows=(
        Row("Use and demand", (TOTALS, LOAD_PROFILE, PEAKS)),
        Row("Cost", (COST_BY_BAND, KWH_BY_BAND)),
        Row("Efficiency", (SEC, BASELINE, CUSUM, BASELINE_MODEL)),
    ),
)
