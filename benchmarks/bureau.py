"""Bureau benchmark: a synthetic city of 10,000 enterprises × 60 months (--quick: 2,000 × 36) in a fresh database,
every month published in order as the bureau would (the whole history, each month with the cross-release
protection and the audit that decides whether to refuse it), the macro analysis of the last month, then every
bureau view/panel query run as the `bureau` role and timed (p50/p95 of repeated runs).

    python -m benchmarks.bureau [--quick] [--enterprises N] [--months M] [--publish-months K] [--repeat R]

Publishing month t audits every release that links to it (the year's releases: year-to-date restarts in January;
growth rates against the year before are checked against that year's publication); `bureau audit` then replays
every release of the whole history (verdicts; ``--exact-audit`` also times the narrowest intervals). The months
are published in one session with a ``ReleaseCache``, so month t reuses the snapshots of months 1…t−1 instead
of rebuilding them from the raw reports. Information loss: the share of non-empty cells hidden before
(single-month pattern) and after (the year-to-date pattern that protects releases jointly), over every
published month.

Targets: p95 < 500 ms per panel, the last month published with its audit plus the whole-history audit < 60 s.
Last stdout line: JSON with enterprises, months, panels, panel_p95_ms_max, slowest_panel, recompute_s (the
slowest month), cpu_count, timescaledb and more.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from datetime import date

import numpy as np
import psycopg

from bureau.statistics.macro_run import run_macro
from bureau.statistics.publish import publish_month
from bureau.statistics.releases import ReleaseCache, audit_history
from bureau.statistics.sdc import SdcParameters
from datafactory.codes.calendar import add_months
from datafactory.db.connect import drop_database, with_database
from datafactory.db.migrate import migrate
from datafactory.settings import get_settings
from simulator.city import DEFAULT_END, simulate

END = DEFAULT_END
# name → (SQL as the bureau role, parameters); what a Grafana bureau dashboard runs.
PANELS: dict[str, tuple[str, tuple[object, ...]]] = {
    "city_trend": ("SELECT month, output_value, output_ytd, yoy_growth, ytd_growth, electricity_index"
                   " FROM bureau_v_city ORDER BY month", ()),
    "city_kpis": ("SELECT enterprises, output_value, output_ytd, yoy_growth, energy_intensity, operating_rate"
                  " FROM bureau_v_city WHERE month = %s", (END,)),
    "division_table": ("SELECT division, division_name, enterprises, output_value, yoy_growth, energy_intensity,"
                       " suppressed FROM bureau_v_industry WHERE month = %s AND level = 'division'"
                       " ORDER BY output_value DESC NULLS LAST", (END,)),
    "group_table": ("SELECT industry_group, group_name, enterprises, output_value, yoy_growth, suppressed"
                    " FROM bureau_v_industry WHERE month = %s AND level = 'group' AND division = '39'", (END,)),
    "division_trend": ("SELECT month, division_name, output_value FROM bureau_v_industry WHERE level = 'division'"
                       " AND division IN ('39', '38', '33') ORDER BY month", ()),
    "town_table": ("SELECT town, enterprises, output_value, yoy_growth, electricity_kwh, suppressed FROM bureau_v_town"
                   " WHERE month = %s AND town <> '*' ORDER BY output_value DESC NULLS LAST", (END,)),
    "town_trend": ("SELECT month, town, output_value, yoy_growth FROM bureau_v_town WHERE town <> '*'"
                   " ORDER BY month, town", ()),
    "park_table": ("SELECT park, enterprises, output_value, yoy_growth, suppressed FROM bureau_v_park"
                   " WHERE month = %s", (END,)),
    "size_mix": ("SELECT size_class, enterprises, output_value, employment FROM bureau_v_size WHERE month = %s",
                 (END,)),
    "ownership_mix": ("SELECT ownership, enterprises, output_value FROM bureau_v_ownership WHERE month = %s", (END,)),
    "above_designated": ("SELECT above_designated, enterprises, output_value, ytd_growth"
                         " FROM bureau_v_above_designated WHERE month = %s", (END,)),
    "division_above": ("SELECT division, division_name, above_designated, enterprises, output_value, suppressed"
                       " FROM bureau_v_division_above WHERE month = %s ORDER BY division, above_designated", (END,)),
    "energy_intensity": ("SELECT month, division, energy_intensity FROM bureau_v_industry WHERE level = 'division'"
                         " AND NOT suppressed ORDER BY month, division", ()),
    "early_warnings": ("SELECT scope_kind, scope, measure, shortfall, yoy_growth FROM bureau_v_early_warnings"
                       " WHERE month = %s ORDER BY shortfall", (END,)),
    "forecasts": ("SELECT scope, month, forecast, lower_95, upper_95 FROM bureau_v_forecasts WHERE made_for = %s"
                  " AND scope_kind = 'division' ORDER BY scope, month", (END,)),
    "nowcasts": ("SELECT scope, nowcast, lower_95, upper_95, electricity_growth FROM bureau_v_nowcasts"
                 " WHERE month = %s", (END,)),
    "seasonal": ("SELECT scope, output_value, seasonally_adjusted, spring_festival_effect FROM bureau_v_seasonal"
                 " WHERE month = %s", (END,)),
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def information_loss(conn: psycopg.Connection) -> dict[str, float]:
    """Share of non-empty cells hidden, before (the single-month pattern, YTD hidden with it) and after (the
    year-to-date pattern protecting releases jointly, growth rates only from published inputs)."""
    row = conn.execute(
        "SELECT avg((suppression IS NOT NULL)::int), avg((output_ytd IS NULL)::int),"
        " avg((suppression IS NULL AND yoy_growth IS NOT NULL)::int) / nullif(avg((suppression IS NULL)::int), 0)"
        " FROM bureau_published_cells WHERE enterprises > 0").fetchone()
    assert row is not None
    return {"suppressed_share": round(float(row[0]), 4), "ytd_hidden_share_before": round(float(row[0]), 4),
            "ytd_hidden_share_after": round(float(row[1]), 4),
            "growth_share_of_published_after": round(float(row[2] or 0.0), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--enterprises", type=int)
    parser.add_argument("--months", type=int)
    parser.add_argument("--publish-months", type=int)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--exact-audit", action="store_true",
                        help="time `bureau audit`'s exact intervals too (two LPs per protected quantity: slow)")
    args = parser.parse_args()
    enterprises = args.enterprises or (2000 if args.quick else 10_000)
    months = args.months or (36 if args.quick else 60)
    publish_n = min(args.publish_months or months, months)

    load_before = os.getloadavg()[0]
    base = get_settings().database_url
    url = with_database(base, f"bench_bureau_{uuid.uuid4().hex[:8]}")
    try:
        result = migrate(url)
        with psycopg.connect(url) as conn:
            started = time.perf_counter()
            simulate(conn, enterprises=enterprises, towns=30, months=months, seed=1, end=END)
            simulate_s = time.perf_counter() - started
            log(f"simulated {enterprises} enterprises × {months} months in {simulate_s:.1f} s")
            recompute: list[float] = []
            cache = ReleaseCache()
            for k in range(publish_n - 1, -1, -1):
                month: date = add_months(END, -k)
                # Includes the audit of every release linked to this one, which decides whether to refuse.
                r = publish_month(conn, month, cache=cache)
                recompute.append(r.seconds)
                log(f"published {month:%Y-%m}: {r.cells} cells, {r.primary} primary, {r.secondary} secondary,"
                    f" {r.ytd_only} YTD-only, {r.seconds:.1f} s")
            loss = information_loss(conn)
            log(f"information loss: {loss}")
            started = time.perf_counter()
            history = audit_history(conn, SdcParameters(), cache, exact=False)
            audit_s = time.perf_counter() - started
            exact_s: float | None = None
            if args.exact_audit:
                started = time.perf_counter()
                exact = audit_history(conn, SdcParameters(), cache)
                exact_s = time.perf_counter() - started
                assert len(exact.exposed) == len(history.exposed), "exact and witness audits disagree"
            log(f"bureau audit of every release: {audit_s:.1f} s, {len(history.quantities)} protected quantities,"
                f" {len(history.exposed) + len(history.ratios)} exposed")
            started = time.perf_counter()
            macro = run_macro(conn, END)
            macro_s = time.perf_counter() - started
            log(f"macro analysis {macro_s:.1f} s: {macro}")
        timings: dict[str, tuple[float, float]] = {}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SET ROLE bureau")
            for name, (query, params) in PANELS.items():
                conn.execute(query, params).fetchall()  # warm
                samples = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    conn.execute(query, params).fetchall()
                    samples.append((time.perf_counter() - t) * 1000)
                timings[name] = (float(np.percentile(samples, 50)), float(np.percentile(samples, 95)))
        log(f"{'panel':<20} {'p50 ms':>8} {'p95 ms':>8}")
        for name, (p50, p95) in timings.items():
            log(f"{name:<20} {p50:8.2f} {p95:8.2f}")
        slowest = max(timings, key=lambda n: timings[n][1])
        print(json.dumps({
            "enterprises": enterprises, "months": months, "panels": len(timings),
            "panel_p95_ms_max": round(timings[slowest][1], 2), "slowest_panel": slowest,
            "recompute_s": round(max(recompute), 2), "recompute_s_median": round(float(np.median(recompute)), 2),
            "published_months": publish_n, "publish_with_audit_s_last": round(recompute[-1], 2),
            "history_audit_s": round(audit_s, 1),
            "history_audit_exact_intervals_s": None if exact_s is None else round(exact_s, 1),
            "publish_last_plus_history_audit_s": round(recompute[-1] + audit_s, 1),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "audited_quantities": len(history.quantities),
            "exposed": len(history.exposed) + len(history.ratios), **loss,
            "simulate_s": round(simulate_s, 1), "macro_s": round(macro_s, 1),
            "cpu_count": os.cpu_count(), "timescaledb": result.timescale,
        }))
    finally:
        drop_database(url)


if __name__ == "__main__":
    main()
