-- Analytics results (owned by analytics/; described column by column in docs/analytics.md).
-- Every table: `time` = period start in UTC, `time_end` = period end (exclusive), ids not names, and a
-- plant_id column for row-level security. Rows of a recomputed window are replaced (delete + insert), so
-- re-running a window is idempotent. Ratios are stored for convenience; roll-ups sum the time elements.

-- Machine state intervals derived once from the machine_state samples, mapped to the ISO 22400-2 time model.
CREATE TABLE IF NOT EXISTS state_intervals (
    plant_id      integer NOT NULL,
    cell_id       integer NOT NULL,
    time          timestamptz NOT NULL,
    time_end      timestamptz NOT NULL,
    state_code    integer,                      -- raw code; NULL when there was no (good) data
    category      text NOT NULL,                -- taxonomy: running, reduced_speed, starved, blocked, setup,
                                                -- unplanned_stop, planned_break, planned_no_order,
                                                -- planned_maintenance, no_shift, unknown
    reason        text NOT NULL DEFAULT '',     -- human label of the code, e.g. 'jam', 'mechanical failure'
    time_element  text NOT NULL,                -- apt | adet | asut | adot | pdot (planned downtime) | unknown
    loss          text NOT NULL,                -- six big losses: none, breakdown, setup_adjustment,
                                                -- minor_stop, reduced_speed, idling, planned, unknown
    microstop     boolean NOT NULL DEFAULT false,
    duration_s    double precision NOT NULL,
    PRIMARY KEY (cell_id, time)
);
CREATE INDEX IF NOT EXISTS state_intervals_plant_time ON state_intervals (plant_id, time);

-- OEE per machine and period (hour | shift | day | month), ISO 22400-2 time elements in seconds.
CREATE TABLE IF NOT EXISTS oee (
    plant_id          integer NOT NULL,
    cell_id           integer NOT NULL,
    period            text NOT NULL CHECK (period IN ('hour', 'shift', 'day', 'month')),
    time              timestamptz NOT NULL,
    time_end          timestamptz NOT NULL,
    shift_name        text NOT NULL DEFAULT '',  -- shift rows: 'day' / 'night' …; other periods ''
    calendar_s        double precision NOT NULL, -- period length
    planned_down_s    double precision NOT NULL, -- breaks, no order, planned maintenance, no shift
    pbt_s             double precision NOT NULL, -- planned busy time = apt + adet + asut + adot
    apt_s             double precision NOT NULL, -- actual production time (incl. reduced speed)
    adet_s            double precision NOT NULL, -- actual unit delay time (starved, blocked)
    asut_s            double precision NOT NULL, -- actual unit setup time (changeover)
    adot_s            double precision NOT NULL, -- actual unit down time (unplanned stops)
    unknown_s         double precision NOT NULL, -- no data; excluded from pbt
    microstop_s       double precision NOT NULL,
    microstop_count   integer NOT NULL,
    stop_count        integer NOT NULL,          -- unplanned stops that are not microstops (failures)
    changeover_count  integer NOT NULL,
    total_count       double precision NOT NULL,
    good_count        double precision NOT NULL,
    reject_count      double precision NOT NULL,
    ideal_cycle_time_s double precision,         -- NULL when the cell has none
    ideal_production_s double precision NOT NULL, -- ideal_cycle_time × total_count (summable)
    availability      double precision,          -- apt / pbt
    performance       double precision,          -- ideal_production / apt
    quality           double precision,          -- good / total
    oee               double precision,          -- A × P × Q
    nee               double precision,          -- apt / (pbt − adet) × P × Q
    teep              double precision,          -- OEE × pbt / calendar
    mtbf_s            double precision,          -- apt / stop_count
    mttr_s            double precision,          -- (adot − microstop) / stop_count
    computed_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cell_id, period, time)
);
CREATE INDEX IF NOT EXISTS oee_plant_period_time ON oee (plant_id, period, time);

-- Down time per machine, period and reason (the Pareto), including microstops.
CREATE TABLE IF NOT EXISTS downtime (
    plant_id        integer NOT NULL,
    cell_id         integer NOT NULL,
    period          text NOT NULL CHECK (period IN ('hour', 'shift', 'day', 'month')),
    time            timestamptz NOT NULL,
    time_end        timestamptz NOT NULL,
    state_code      integer NOT NULL,
    category        text NOT NULL,
    reason          text NOT NULL,
    time_element    text NOT NULL,              -- adot, asut or adet: every non-running loss in pbt
    stops           integer NOT NULL,           -- intervals starting in the period
    duration_s      double precision NOT NULL,
    microstops      integer NOT NULL,
    microstop_s     double precision NOT NULL,
    PRIMARY KEY (cell_id, period, time, state_code)
);
CREATE INDEX IF NOT EXISTS downtime_plant_period_time ON downtime (plant_id, period, time);

-- Energy per cell and period.
CREATE TABLE IF NOT EXISTS energy (
    plant_id        integer NOT NULL,
    cell_id         integer NOT NULL,
    period          text NOT NULL CHECK (period IN ('hour', 'shift', 'day', 'month')),
    time            timestamptz NOT NULL,
    time_end        timestamptz NOT NULL,
    shift_name      text NOT NULL DEFAULT '',
    kwh             double precision NOT NULL,
    idle_kwh        double precision NOT NULL,   -- energy while not producing (state not apt)
    kwh_critical    double precision NOT NULL,   -- by time-of-use band
    kwh_peak        double precision NOT NULL,
    kwh_flat        double precision NOT NULL,
    kwh_valley      double precision NOT NULL,
    cost            double precision NOT NULL,   -- currency of the tariff (CNY by default)
    cost_critical   double precision NOT NULL,
    cost_peak       double precision NOT NULL,
    cost_flat       double precision NOT NULL,
    cost_valley     double precision NOT NULL,
    peak_kw_15min   double precision,            -- max 15-min average demand
    avg_kw          double precision,
    load_factor     double precision,            -- avg_kw / peak_kw_15min
    tce             double precision NOT NULL,   -- tonnes of coal equivalent (kwh × kgce/kWh / 1000)
    good_count      double precision NOT NULL,
    sec_kwh_per_unit double precision,           -- kwh / good_count
    source          text NOT NULL,               -- 'meter' (cumulative kWh) or 'power' (integrated kW)
    computed_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cell_id, period, time)
);
CREATE INDEX IF NOT EXISTS energy_plant_period_time ON energy (plant_id, period, time);

-- ISO 50006 energy baseline model per plant (the newest fit), with ASHRAE Guideline 14 diagnostics.
CREATE TABLE IF NOT EXISTS energy_baseline (
    plant_id        integer PRIMARY KEY,
    time            timestamptz NOT NULL,        -- baseline period start
    time_end        timestamptz NOT NULL,        -- baseline period end = reporting period start
    reporting_end   timestamptz,
    formula         text NOT NULL,               -- e.g. 'kwh ~ production + hdd'
    params          jsonb NOT NULL,              -- coefficient name → value
    pvalues         jsonb NOT NULL,
    n_days          integer NOT NULL,
    r2              double precision NOT NULL,
    cv_rmse         double precision NOT NULL,   -- fraction, e.g. 0.05
    nmbe            double precision NOT NULL,   -- fraction
    meets_ashrae14  boolean NOT NULL,            -- daily: cv_rmse ≤ 0.25? see docs; monthly limits 0.15/0.05
    saving_fraction double precision,            -- 1 − actual / expected over the reporting period
    saving_kwh      double precision,
    computed_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS energy_baseline_daily (
    plant_id        integer NOT NULL,
    time            timestamptz NOT NULL,        -- plant-local day start, in UTC
    time_end        timestamptz NOT NULL,
    phase           text NOT NULL CHECK (phase IN ('baseline', 'reporting')),
    actual_kwh      double precision NOT NULL,
    production      double precision NOT NULL,   -- good units
    hdd             double precision,            -- heating degree-days (NULL without a temperature signal)
    cdd             double precision,
    expected_kwh    double precision NOT NULL,
    pi_low_kwh      double precision NOT NULL,   -- 95 % prediction interval
    pi_high_kwh     double precision NOT NULL,
    savings_kwh     double precision NOT NULL,   -- expected − actual
    cusum_kwh       double precision NOT NULL,   -- cumulative savings since the reporting period started
    PRIMARY KEY (plant_id, time)
);

-- Predictive-maintenance health per monitored signal and bucket.
CREATE TABLE IF NOT EXISTS pdm_health (
    plant_id        integer NOT NULL,
    cell_id         integer NOT NULL,
    signal_id       integer NOT NULL,
    time            timestamptz NOT NULL,
    time_end        timestamptz NOT NULL,
    value           double precision NOT NULL,   -- bucket mean (vibration RMS mm/s, temperature …)
    baseline_mean   double precision,
    baseline_sd     double precision,
    ewma            double precision,
    ewma_ucl        double precision,
    ewma_lcl        double precision,
    cusum_pos       double precision,
    cusum_neg       double precision,
    cusum_h         double precision,            -- decision interval
    we_rule         integer,                     -- first Western Electric rule violated (1–4), NULL if none
    drift           boolean NOT NULL DEFAULT false,
    zone            text,                        -- ISO 20816 zone A/B/C/D (vibration only)
    failure_threshold double precision,
    rul_p10_h       double precision,            -- remaining useful life, hours
    rul_p50_h       double precision,
    rul_p90_h       double precision,
    PRIMARY KEY (signal_id, time)
);
CREATE INDEX IF NOT EXISTS pdm_health_plant_time ON pdm_health (plant_id, time);

-- Alerts with a lifecycle: one row per episode, raised → updated … → cleared.
CREATE TABLE IF NOT EXISTS alerts (
    id              bigserial PRIMARY KEY,
    plant_id        integer NOT NULL,
    cell_id         integer NOT NULL,
    signal_id       integer,
    kind            text NOT NULL,               -- e.g. 'pdm_drift'
    time            timestamptz NOT NULL,        -- raised at
    time_end        timestamptz,                 -- cleared at (NULL while active)
    status          text NOT NULL CHECK (status IN ('raised', 'updated', 'cleared')),
    severity        text NOT NULL,               -- warning | critical
    updated_at      timestamptz NOT NULL,        -- data time of the last update
    update_count    integer NOT NULL DEFAULT 0,
    message         text NOT NULL,
    value           double precision,            -- latest health value
    zone            text,
    rul_p10_h       double precision,
    rul_p50_h       double precision,
    rul_p90_h       double precision,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_one_active ON alerts (signal_id, kind) WHERE status <> 'cleared';
CREATE INDEX IF NOT EXISTS alerts_plant_time ON alerts (plant_id, time);

-- Incremental processing: everything before `watermark` has been computed for this plant and job.
CREATE TABLE IF NOT EXISTS analytics_watermarks (
    plant_id        integer NOT NULL,
    job             text NOT NULL,
    watermark       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plant_id, job)
);

-- Roll-ups: SUM time elements and counts, then divide. Never average percentages.
CREATE OR REPLACE VIEW oee_line AS
WITH s AS (
    SELECT o.plant_id, c.area, c.line, o.period, o.time, max(o.time_end) AS time_end, max(o.shift_name) AS shift_name,
           count(*) AS machines, sum(o.calendar_s) AS calendar_s, sum(o.planned_down_s) AS planned_down_s,
           sum(o.pbt_s) AS pbt_s, sum(o.apt_s) AS apt_s, sum(o.adet_s) AS adet_s, sum(o.asut_s) AS asut_s,
           sum(o.adot_s) AS adot_s, sum(o.microstop_s) AS microstop_s, sum(o.microstop_count) AS microstop_count,
           sum(o.stop_count) AS stop_count, sum(o.total_count) AS total_count, sum(o.good_count) AS good_count,
           sum(o.reject_count) AS reject_count, sum(o.ideal_production_s) AS ideal_production_s
    FROM oee o JOIN cells c ON c.id = o.cell_id
    WHERE o.ideal_cycle_time_s IS NOT NULL
    GROUP BY o.plant_id, c.area, c.line, o.period, o.time
)
SELECT s.*,
       s.apt_s / nullif(s.pbt_s, 0) AS availability,
       s.ideal_production_s / nullif(s.apt_s, 0) AS performance,
       s.good_count / nullif(s.total_count, 0) AS quality,
       (s.apt_s / nullif(s.pbt_s, 0)) * (s.ideal_production_s / nullif(s.apt_s, 0))
           * (s.good_count / nullif(s.total_count, 0)) AS oee,
       s.ideal_production_s * (s.good_count / nullif(s.total_count, 0)) / nullif(s.pbt_s - s.adet_s, 0) AS nee,
       s.ideal_production_s * (s.good_count / nullif(s.total_count, 0)) / nullif(s.calendar_s, 0) AS teep
FROM s;

CREATE OR REPLACE VIEW oee_plant AS
WITH s AS (
    SELECT o.plant_id, o.period, o.time, max(o.time_end) AS time_end, max(o.shift_name) AS shift_name,
           count(*) AS machines, sum(o.calendar_s) AS calendar_s, sum(o.planned_down_s) AS planned_down_s,
           sum(o.pbt_s) AS pbt_s, sum(o.apt_s) AS apt_s, sum(o.adet_s) AS adet_s, sum(o.asut_s) AS asut_s,
           sum(o.adot_s) AS adot_s, sum(o.microstop_s) AS microstop_s, sum(o.microstop_count) AS microstop_count,
           sum(o.stop_count) AS stop_count, sum(o.total_count) AS total_count, sum(o.good_count) AS good_count,
           sum(o.reject_count) AS reject_count, sum(o.ideal_production_s) AS ideal_production_s
    FROM oee o
    WHERE o.ideal_cycle_time_s IS NOT NULL
    GROUP BY o.plant_id, o.period, o.time
)
SELECT s.*,
       s.apt_s / nullif(s.pbt_s, 0) AS availability,
       s.ideal_production_s / nullif(s.apt_s, 0) AS performance,
       s.good_count / nullif(s.total_count, 0) AS quality,
       (s.apt_s / nullif(s.pbt_s, 0)) * (s.ideal_production_s / nullif(s.apt_s, 0))
           * (s.good_count / nullif(s.total_count, 0)) AS oee,
       s.ideal_production_s * (s.good_count / nullif(s.total_count, 0)) / nullif(s.pbt_s - s.adet_s, 0) AS nee,
       s.ideal_production_s * (s.good_count / nullif(s.total_count, 0)) / nullif(s.calendar_s, 0) AS teep
FROM s;

CREATE OR REPLACE VIEW energy_line AS
SELECT e.plant_id, c.area, c.line, e.period, e.time, max(e.time_end) AS time_end, max(e.shift_name) AS shift_name,
       sum(e.kwh) AS kwh, sum(e.idle_kwh) AS idle_kwh, sum(e.kwh_critical) AS kwh_critical,
       sum(e.kwh_peak) AS kwh_peak, sum(e.kwh_flat) AS kwh_flat, sum(e.kwh_valley) AS kwh_valley,
       sum(e.cost) AS cost, sum(e.cost_critical) AS cost_critical, sum(e.cost_peak) AS cost_peak,
       sum(e.cost_flat) AS cost_flat, sum(e.cost_valley) AS cost_valley, sum(e.tce) AS tce,
       sum(e.good_count) AS good_count, sum(e.kwh) / nullif(sum(e.good_count), 0) AS sec_kwh_per_unit
FROM energy e JOIN cells c ON c.id = e.cell_id
GROUP BY e.plant_id, c.area, c.line, e.period, e.time;
