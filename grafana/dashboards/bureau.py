"""City industry bureau: sector output and growth, towns and parks, energy intensity, operating rate, early
warnings — read ONLY from the bureau's disclosure-controlled views (``bureau_v_*``, migration 0201) through the
``bureau`` data source, so no panel can show a figure that disclosure control suppressed.

Suppressed cells arrive with NULL measures and ``suppressed = true``; tables show them as "suppressed" rather than
as zero. Months are ``date``s (first day); time-series panels plot them as timestamps. Output values are in 万元
(10,000 yuan), energy intensity in tce per 万元, growth rates as fractions.
"""

from __future__ import annotations

from grafana import styles
from grafana.model import Dashboard, DatasourceRef, Mapping_, Panel, Query, Row, Step, Variable

BUREAU_DS = DatasourceRef("df-bureau")
UID = "df-bureau-overview"
WAN_YUAN = "suffix: 万元"
INTENSITY = "suffix: tce/万元"
GROWTH_STEPS = (Step(None, "red"), Step(-0.05, "orange"), Step(0, "#73BF69"), Step(0.05, "green"))
OPERATING_STEPS = (Step(None, "red"), Step(0.8, "orange"), Step(0.9, "green"))
SUPPRESSED = (Mapping_("suppressed", "text", value="true"), Mapping_("", "transparent", value="false"))

MONTH = Variable("month", "Month", "query", """
    SELECT to_char(month, 'YYYY-MM-DD') AS __value, to_char(month, 'YYYY-MM') AS __text
    FROM bureau_v_city ORDER BY month DESC
""", sort=0)
DIVISION = Variable("division", "Industry division", "query", """
    SELECT DISTINCT division AS __value, division || ' ' || coalesce(division_name, '') AS __text
    FROM bureau_v_industry WHERE level = 'division'
    ORDER BY 1
""", multi=True, include_all=True)

MEASURE_COLUMNS = """
    enterprises, output_value AS "output", yoy_growth AS "YoY", ytd_growth AS "YTD growth",
    energy_intensity AS "energy intensity", operating_rate AS "operating rate", suppressed
"""
TABLE_OVERRIDES = (
    styles.unit_override("enterprises", "none"), styles.unit_override("output", WAN_YUAN),
    styles.thresholds_override("YoY", GROWTH_STEPS), styles.unit_override("YoY", "percentunit"),
    styles.unit_override("YTD growth", "percentunit"), styles.unit_override("energy intensity", INTENSITY),
    styles.thresholds_override("operating rate", OPERATING_STEPS), styles.unit_override("operating rate",
                                                                                        "percentunit"),
)
SELECTED_MONTH = "month = '${month}'::date"

CITY_NOW = Panel(
    "City, selected month", "stat",
    (Query(f"""
        SELECT output_value AS "output", yoy_growth AS "YoY", energy_intensity AS "energy intensity",
               operating_rate AS "operating rate", enterprises
        FROM bureau_v_city WHERE {SELECTED_MONTH}
    """),),
    width=24, height=5, decimals=1,
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value",
             "graphMode": "none", "textMode": "value_and_name"},
    overrides=(
        styles.unit_override("output", WAN_YUAN), styles.unit_override("energy intensity", INTENSITY),
        {"matcher": {"id": "byName", "options": "YoY"},
         "properties": [{"id": "unit", "value": "percentunit"}, {"id": "thresholds", "value": {
             "mode": "absolute", "steps": [{"value": s.value, "color": s.color} for s in GROWTH_STEPS]}}]},
        styles.unit_override("operating rate", "percentunit"), styles.unit_override("enterprises", "none"),
    ),
)

CITY_TREND = Panel(
    "City output and year-on-year growth", "timeseries",
    (Query("""
        SELECT month::timestamptz AS time, output_value AS "output", yoy_growth AS "YoY"
        FROM bureau_v_city WHERE $__timeFilter(month::timestamptz)
        ORDER BY 1
    """, format="time_series"),),
    width=12, height=8, unit=WAN_YUAN, decimals=0,
    custom={"drawStyle": "line", "lineWidth": 2, "showPoints": "always", "pointSize": 5},
    overrides=({"matcher": {"id": "byName", "options": "YoY"},
                "properties": [{"id": "unit", "value": "percentunit"}, {"id": "custom.axisPlacement", "value": "right"},
                               {"id": "custom.drawStyle", "value": "bars"}, {"id": "custom.fillOpacity", "value": 40},
                               {"id": "decimals", "value": 1}]},),
)

FORECAST = Panel(
    "Output forecast by sector", "timeseries",
    (Query("""
        SELECT f.month::timestamptz AS time, f.scope AS metric, f.forecast AS value
        FROM bureau_v_forecasts f
        WHERE f.scope_kind = 'division' AND f.scope IN (${division:sqlstring})
          AND f.made_for = (SELECT max(made_for) FROM bureau_v_forecasts)
        ORDER BY 1
    """, format="time_series"),),
    width=12, height=8, unit=WAN_YUAN, decimals=0, color_mode="palette-classic",
    description="Seasonal forecast of the coming months made from the newest analysed month, per division.",
    custom={"drawStyle": "line", "lineWidth": 2, "lineStyle": {"fill": "dash", "dash": [10, 10]}},
)

SECTORS = Panel(
    "Sectors (GB/T 4754 divisions), selected month", "table",
    (Query(f"""
        SELECT division, division_name AS "name", {MEASURE_COLUMNS}
        FROM bureau_v_industry
        WHERE {SELECTED_MONTH} AND level = 'division' AND division IN (${{division:sqlstring}})
        ORDER BY output_value DESC NULLS LAST
    """),),
    width=24, height=9, decimals=1, mappings=SUPPRESSED, overrides=TABLE_OVERRIDES,
    description="Cells that fail disclosure control (too few enterprises, one dominant, or derivable by "
                "subtraction) are suppressed, never shown.",
)

SECTOR_GROWTH = Panel(
    "Year-on-year output growth by sector", "barchart",
    (Query(f"""
        SELECT division || ' ' || coalesce(division_name, '') AS sector, yoy_growth AS "YoY"
        FROM bureau_v_industry
        WHERE {SELECTED_MONTH} AND level = 'division' AND division IN (${{division:sqlstring}})
          AND yoy_growth IS NOT NULL
        ORDER BY yoy_growth
    """),),
    width=12, height=9, unit="percentunit", decimals=1, steps=GROWTH_STEPS, color_mode="thresholds",
    options={"orientation": "horizontal", "xField": "sector", "showValue": "auto",
             "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"}},
)

SECTOR_INTENSITY = Panel(
    "Energy intensity by sector", "barchart",
    (Query(f"""
        SELECT division || ' ' || coalesce(division_name, '') AS sector, energy_intensity AS "tce per 万元"
        FROM bureau_v_industry
        WHERE {SELECTED_MONTH} AND level = 'division' AND division IN (${{division:sqlstring}})
          AND energy_intensity IS NOT NULL
        ORDER BY energy_intensity DESC
    """),),
    width=12, height=9, unit=INTENSITY, decimals=3, color_mode="continuous-GrYlRd",
    options={"orientation": "horizontal", "xField": "sector", "showValue": "auto",
             "legend": {"showLegend": False, "displayMode": "list", "placement": "bottom"}},
)

TOWNS = Panel(
    "Towns, selected month", "table",
    (Query(f"""
        SELECT town, {MEASURE_COLUMNS}
        FROM bureau_v_town WHERE {SELECTED_MONTH} AND town <> '*'
        ORDER BY output_value DESC NULLS LAST
    """),),
    width=12, height=10, decimals=1, mappings=SUPPRESSED, overrides=TABLE_OVERRIDES,
)

PARKS = Panel(
    "Industrial parks, selected month", "table",
    (Query(f"""
        SELECT park, {MEASURE_COLUMNS}
        FROM bureau_v_park WHERE {SELECTED_MONTH} AND park <> '*'
        ORDER BY output_value DESC NULLS LAST
    """),),
    width=12, height=10, decimals=1, mappings=SUPPRESSED, overrides=TABLE_OVERRIDES,
)

OPERATING = Panel(
    "Operating rate by town (connected enterprises)", "bargauge",
    (Query(f"""
        SELECT town, operating_rate AS "operating rate"
        FROM bureau_v_town WHERE {SELECTED_MONTH} AND town <> '*' AND operating_rate IS NOT NULL
        ORDER BY operating_rate
    """),),
    width=12, height=9, unit="percentunit", decimals=0, min=0, max=1, steps=OPERATING_STEPS,
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": True}, "orientation": "horizontal",
             "displayMode": "lcd", "showUnfilled": True},
    description="Share of platform-connected enterprises producing this month.",
)

WARNINGS = Panel(
    "Early warnings", "table",
    (Query("""
        SELECT month::timestamptz AS "month", scope_kind AS "kind", scope, measure, actual, expected,
               lower_bound AS "lower bound", shortfall, yoy_growth AS "YoY"
        FROM bureau_v_early_warnings
        WHERE $__timeFilter(month::timestamptz)
        ORDER BY month DESC, shortfall
    """),),
    width=12, height=9, decimals=1,
    description="A sector or town whose output or electricity fell below the lower bound of its seasonal forecast.",
    overrides=(styles.thresholds_override("shortfall", (Step(None, "red"), Step(-0.05, "orange"))),
               styles.unit_override("shortfall", "percentunit"), styles.unit_override("YoY", "percentunit"),
               styles.unit_override("month", "dateTimeAsIsoNoDateIfToday")),
)

DASHBOARD = Dashboard(
    uid=UID,
    title="City industry",
    folder="bureau",
    description="Sector output and growth, towns and parks, energy intensity, operating rate and early warnings "
                "from the bureau's disclosure-controlled statistics.",
    datasource=BUREAU_DS,
    variables=(MONTH, DIVISION),
    tags=("datafactory", "bureau"),
    time_from="now-3y",
    refresh="",
    rows=(
        Row("City", (CITY_NOW, CITY_TREND, FORECAST)),
        Row("Sectors", (SECTORS, SECTOR_GROWTH, SECTOR_INTENSITY)),
        Row("Towns and parks", (TOWNS, PARKS, OPERATING, WARNINGS)),
    ),
)
