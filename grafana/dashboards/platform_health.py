"""Platform health for operators: ingest rate and lag, dead letters by reason, gateway status and buffers, stale
data, late datasets. Uses the platform (admin) data source: it spans every plant.

``ingest_health`` and ``gateway_status`` hold the latest state only (refreshed by the workers and the retained status
topics), so those panels show "now"; dead letters and staleness honour the time range.
``dataset_freshness`` and ``dataset_alerts`` are written by the catalogue's freshness monitor
(``datafactory catalog freshness``, bureau/catalog/freshness.py); they show its last check, so "checked" says how old
that is.
"""

from __future__ import annotations

from grafana import styles
from grafana.model import Dashboard, DatasourceRef, Mapping_, Panel, Query, Row, Step

PLATFORM_DS = DatasourceRef("df-platform")
UID = "df-platform-health"
STALE_AFTER_S = 300
# dataset_freshness.status as read at a glance; "empty" (no data yet) is not alerted, so it is not red either.
FRESHNESS_MAPPINGS: tuple[Mapping_, ...] = (
    Mapping_("ok", "green", value="fresh"),
    Mapping_("LATE", "red", value="late"),
    Mapping_("no data yet", "text", value="empty"),
)
ALERT_MAPPINGS: tuple[Mapping_, ...] = (
    Mapping_("open", "red", value="open"),
    Mapping_("acknowledged", "orange", value="acknowledged"),
)

INGEST_NOW = Panel(
    "Ingest now", "stat",
    (Query("""
        SELECT coalesce(sum(samples_per_s) FILTER (WHERE updated_at > now() - interval '1 minute'), 0)
                   AS "samples/s",
               count(*) FILTER (WHERE updated_at > now() - interval '1 minute') AS "live workers",
               max(lag_s) FILTER (WHERE updated_at > now() - interval '1 minute') AS "lag",
               max(batch_latency_ms) FILTER (WHERE updated_at > now() - interval '1 minute') AS "batch latency"
        FROM ingest_health
    """),),
    width=12, height=5, decimals=0,
    description="Workers that refreshed their health row in the last minute.",
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value",
             "graphMode": "none", "textMode": "value_and_name"},
    overrides=(
        styles.unit_override("samples/s", "short"),
        {"matcher": {"id": "byName", "options": "live workers"},
         "properties": [{"id": "thresholds", "value": {"mode": "absolute", "steps": [
             {"value": None, "color": "red"}, {"value": 1, "color": "green"}]}}]},
        {"matcher": {"id": "byName", "options": "lag"},
         "properties": [{"id": "unit", "value": "s"}, {"id": "thresholds", "value": {"mode": "absolute", "steps": [
             {"value": s.value, "color": s.color} for s in styles.LAG_STEPS]}}]},
        styles.unit_override("batch latency", "ms"),
    ),
)

BACKLOG = Panel(
    "Backlog", "stat",
    (Query("""
        SELECT (SELECT count(*) FROM dead_letters WHERE $__timeFilter(last_seen)) AS "dead letters",
               (SELECT count(*) FROM late_writes WHERE processed_at IS NULL) AS "late writes to reprocess",
               (SELECT count(*) FROM gateway_status WHERE NOT online) AS "gateways offline",
               (SELECT count(*) FROM dataset_alerts WHERE status = 'open') AS "late datasets (open alerts)"
    """),),
    width=12, height=5, decimals=0, steps=styles.ZERO_IS_GOOD,
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "background",
             "graphMode": "none", "textMode": "value_and_name"},
)

INGEST_COUNTERS = Panel(
    "Ingest counters", "stat",
    (Query("""
        SELECT coalesce(sum(conflicts_total), 0) AS "conflicts",
               coalesce(sum(duplicates_total), 0) AS "duplicates",
               coalesce(sum(refused_messages_total), 0) AS "refused messages",
               coalesce(sum(rejected_samples_total), 0) AS "rejected samples",
               coalesce(sum(late_samples_total), 0) AS "late samples",
               coalesce(sum(database_failures_total), 0) AS "database failures",
               count(*) FILTER (WHERE stopped_reason IS NOT NULL) AS "stopped workers"
        FROM ingest_health
    """),),
    width=24, height=4, decimals=0,
    description="Totals since each worker started (docs/operators.md, Health). Conflicts are different values for a "
                "(signal, time) already stored, kept in the conflicts table; duplicates are harmless re-sends; a "
                "stopped worker could not write dead letters and left its backlog with the broker.",
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "colorMode": "value",
             "graphMode": "none", "textMode": "value_and_name"},
    overrides=(
        styles.thresholds_override("conflicts", styles.ZERO_IS_GOOD),
        styles.thresholds_override("refused messages", (Step(None, "green"), Step(1, "orange"))),
        styles.thresholds_override("rejected samples", (Step(None, "green"), Step(1, "orange"))),
        styles.thresholds_override("database failures", (Step(None, "green"), Step(1, "orange"))),
        styles.thresholds_override("stopped workers", styles.ZERO_IS_GOOD),
        styles.colour_override("duplicates", "text"), styles.colour_override("late samples", "text"),
    ),
)

WORKERS = Panel(
    "Ingest workers", "table",
    (Query("""
        SELECT worker, updated_at AS "updated", samples_per_s AS "samples/s", lag_s AS "lag",
               batch_latency_ms AS "batch latency", samples_total AS "samples", redeliveries,
               duplicates_total AS "duplicates", conflicts_total AS "conflicts",
               dead_letters_total AS "dead letters", refused_messages_total AS "refused messages",
               rejected_samples_total AS "rejected samples", newest_sample AS "newest sample",
               stopped_reason AS "stopped because"
        FROM ingest_health ORDER BY worker
    """),),
    width=24, height=6, decimals=0,
    overrides=(
        styles.unit_override("updated", "dateTimeFromNow"), styles.unit_override("newest sample", "dateTimeAsIso"),
        styles.thresholds_override("lag", styles.LAG_STEPS), styles.unit_override("lag", "s"),
        styles.unit_override("batch latency", "ms"), styles.unit_override("samples", "short"),
    ),
)

DEAD_BY_REASON = Panel(
    "Dead letters by reason", "barchart",
    (Query("""
        SELECT reason, count(*) AS "distinct", sum(deliveries) AS "deliveries"
        FROM dead_letters WHERE $__timeFilter(last_seen)
        GROUP BY 1 ORDER BY 3 DESC
    """),),
    width=8, height=8, decimals=0, color_mode="fixed",
    description="Dead letters seen in the range: distinct ones (one row each) and how often they arrived "
                "(redeliveries of the same message count, they do not add rows).",
    options={"orientation": "horizontal", "xField": "reason", "showValue": "auto",
             "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
    overrides=(styles.colour_override("distinct", "orange"), styles.colour_override("deliveries", "red")),
)

DEAD_OVER_TIME = Panel(
    "Dead letters over time", "timeseries",
    (Query("""
        SELECT date_bin($__interval_ms * interval '1 millisecond', received_at, timestamptz '2000-01-01') AS time,
               reason AS metric, count(*) AS value
        FROM dead_letters WHERE $__timeFilter(received_at)
        GROUP BY 1, 2 ORDER BY 1
    """, format="time_series"),),
    width=8, height=8, decimals=0, interval="1m", color_mode="palette-classic",
    description="New dead letters by when they first arrived; a redelivered one counts once (its deliveries are in "
                "the table and in 'Dead letters by reason').",
    custom={"drawStyle": "bars", "fillOpacity": 70, "stacking": {"mode": "normal", "group": "A"}},
)

DEAD_RECENT = Panel(
    "Newest dead letters", "table",
    (Query("""
        SELECT last_seen AS "last seen", reason, topic, deliveries, payload_size AS "size", detail,
               received_at AS "first seen"
        FROM dead_letters WHERE $__timeFilter(last_seen)
        ORDER BY last_seen DESC LIMIT 100
    """),),
    width=8, height=8, decimals=0,
    description="What was wrong, and on which topic. The table keeps the payload's first 4 KiB, its size and SHA-256 "
                "for replay (docs/operators.md, Dead letters).",
    overrides=(styles.unit_override("size", "bytes"),),
)

REPLICAS = Panel(
    "Read replicas", "table",
    (Query("""
        SELECT coalesce(r.replica, '-') AS replica, host(r.client) AS client,
               coalesce(r.state, 'no streaming replica') AS state, r.sync_state AS sync,
               r.replay_lag_s AS "replay lag", r.behind_bytes AS "behind"
        FROM (SELECT 1) AS one LEFT JOIN df_replication() AS r ON true
        ORDER BY 1
    """),),
    width=24, height=5, decimals=1,
    description="Streaming replicas the dashboards and the bureau may read from (docs/operators.md), as the primary "
                "sees them: replay lag is how far a replica's answers are behind the primary; behind is the WAL "
                "not yet replayed there.",
    overrides=(
        styles.unit_override("replay lag", "s"),
        styles.thresholds_override("replay lag", (Step(None, "green"), Step(5, "orange"), Step(60, "red"))),
        styles.unit_override("behind", "bytes"),
    ),
)

GATEWAYS = Panel(
    "Gateways", "table",
    (Query("""
        SELECT p.enterprise || '/' || p.site AS plant, g.gateway, g.online, g.updated_at AS "updated",
               g.config_version AS "config",
               (g.status -> 'buffer' ->> 'samples')::bigint AS "buffered samples",
               (g.status -> 'buffer' ->> 'bytes')::bigint AS "buffer size",
               (g.status -> 'dropped' ->> 'buffer_overflow')::bigint AS "dropped",
               (g.status ->> 'samples_per_s')::float AS "samples/s",
               g.status ->> 'config_error' AS "config error"
        FROM gateway_status g JOIN plants p ON p.id = g.plant_id
        ORDER BY g.online, 1, 2
    """),),
    width=24, height=6, mappings=styles.ONLINE_MAPPINGS,
    description="Latest retained status of every gateway; buffered samples wait in its store-and-forward buffer.",
    overrides=(
        {"matcher": {"id": "byName", "options": "online"},
         "properties": [{"id": "custom.cellOptions", "value": {"type": "color-background", "mode": "basic"}}]},
        styles.unit_override("updated", "dateTimeFromNow"), styles.unit_override("buffer size", "bytes"),
        styles.thresholds_override("buffered samples", (Step(None, "green"), Step(10_000, "orange"))),
        styles.thresholds_override("dropped", styles.ZERO_IS_GOOD),
    ),
)

STALE = Panel(
    "Data freshness by machine", "table",
    (Query(f"""
        SELECT p.enterprise || '/' || p.site AS plant, c.area || '/' || c.line || '/' || c.cell AS cell,
               count(*) AS signals,
               count(*) FILTER (WHERE n.time IS NULL OR n.time < now() - interval '{STALE_AFTER_S} seconds')
                   AS "stale signals",
               max(n.time) AS "newest sample",
               extract(epoch FROM now() - max(n.time)) AS "age"
        FROM signals s
        JOIN cells c ON c.id = s.cell_id
        JOIN plants p ON p.id = s.plant_id
        LEFT JOIN LATERAL (
            SELECT x.time FROM samples x
            WHERE x.signal_id = s.id AND x.time <= $__timeTo() AND x.time > $__timeTo()::timestamptz - interval '7 days'
            ORDER BY x.time DESC LIMIT 1
        ) n ON true
        GROUP BY 1, 2
        ORDER BY "age" DESC NULLS FIRST
    """),),
    width=12, height=10, decimals=0,
    description=f"A signal is stale when its newest sample is older than {STALE_AFTER_S} s (none in the 7 days "
                "before the end of the range counts as stale).",
    overrides=(
        styles.thresholds_override("age", styles.AGE_STEPS), styles.unit_override("age", "s"),
        styles.thresholds_override("stale signals", styles.ZERO_IS_GOOD),
        styles.unit_override("newest sample", "dateTimeAsIso"),
    ),
)

ANALYTICS_FRESHNESS = Panel(
    "Analytics freshness", "table",
    (Query("""
        SELECT p.enterprise || '/' || p.site AS plant, w.job, w.watermark AS "computed up to",
               extract(epoch FROM now() - w.watermark) AS "behind",
               w.updated_at AS "last run"
        FROM analytics_watermarks w JOIN plants p ON p.id = w.plant_id
        ORDER BY "behind" DESC
    """),),
    width=12, height=10, decimals=0,
    description="Results older than the watermark are final; newer data waits for the next analytics run.",
    overrides=(
        styles.thresholds_override("behind", (Step(None, "green"), Step(2 * 3600, "orange"), Step(6 * 3600, "red"))),
        styles.unit_override("behind", "s"), styles.unit_override("last run", "dateTimeFromNow"),
        styles.unit_override("computed up to", "dateTimeAsIso"),
    ),
)

DATASET_FRESHNESS = Panel(
    "Dataset freshness", "table",
    (Query("""
        SELECT f.dataset, p.enterprise || '/' || p.site AS plant, f.status AS "state", f.newest AS "newest data",
               f.due AS "due", f.lag_s AS "past due", f.frequency AS "update period", f.checked_at AS "checked"
        FROM dataset_freshness f LEFT JOIN plants p ON p.id = f.of_plant
        ORDER BY f.status = 'late' DESC, f.lag_s DESC NULLS LAST, f.dataset
    """),),
    width=14, height=9, mappings=FRESHNESS_MAPPINGS,
    description="Each monitored dataset's newest data against its deadline (continuous feeds: newest data plus "
                "their maximum age; monthly data: the due day of the month after next), from the last "
                "`datafactory catalog freshness` check. Past due is negative while a dataset is on time.",
    overrides=(
        styles.cell_colour_override("state"),
        styles.unit_override("newest data", "dateTimeAsIso"), styles.unit_override("due", "dateTimeAsIso"),
        styles.unit_override("past due", "s"), styles.unit_override("checked", "dateTimeFromNow"),
    ),
)

DATASET_ALERTS = Panel(
    "Open dataset alerts", "table",
    (Query("""
        SELECT a.dataset, a.status, a.opened_at AS "opened", a.newest AS "newest data", a.due,
               extract(epoch FROM now() - a.due) AS "late by", a.acknowledged_by AS "acknowledged by", a.id AS "alert"
        FROM dataset_alerts a
        WHERE a.status <> 'resolved'
        ORDER BY a.status = 'open' DESC, a.due
    """),),
    width=10, height=9, decimals=0, mappings=ALERT_MAPPINGS,
    description="Late datasets not yet fresh again. Acknowledge with `datafactory catalog acknowledge ALERT --by "
                "NAME`; an alert resolves itself at the first check that finds its dataset fresh.",
    overrides=(
        styles.cell_colour_override("status"),
        styles.unit_override("opened", "dateTimeFromNow"), styles.unit_override("newest data", "dateTimeAsIso"),
        styles.unit_override("due", "dateTimeAsIso"), styles.unit_override("late by", "s"),
        styles.unit_override("alert", "none"),
    ),
)

DASHBOARD = Dashboard(
    uid=UID,
    title="Platform health",
    folder="platform",
    description="Ingest rate and lag, dead letters, gateways and their buffers, stale data, late datasets.",
    datasource=PLATFORM_DS,
    tags=("datafactory", "platform"),
    time_from="now-24h",
    refresh="30s",
    rows=(
        Row("Ingest", (INGEST_NOW, BACKLOG, INGEST_COUNTERS, WORKERS)),
        Row("Database", (REPLICAS,)),
        Row("Dead letters", (DEAD_BY_REASON, DEAD_OVER_TIME, DEAD_RECENT)),
        Row("Gateways and data", (GATEWAYS, STALE, ANALYTICS_FRESHNESS)),
        Row("Datasets", (DATASET_FRESHNESS, DATASET_ALERTS)),
    ),
)
