-- Resource catalogue support (bureau/catalog/): the freshness of every monitored dataset, the late-data alerts
-- with their lifecycle, and the log of open-data exports. The catalogue itself is generated from the database
-- catalog and the dataset specs in code, so it is not stored here.

-- One row per monitored dataset, replaced by each freshness check (`datafactory catalog freshness`).
-- The platform-health dashboard reads this table.
CREATE TABLE IF NOT EXISTS dataset_freshness (
    dataset      text PRIMARY KEY,
    relation     text NOT NULL,
    of_plant     integer,                  -- plants.id of a per-plant dataset (not `plant_id`: this is platform
                                           -- health data, so `db roles` must not hand its rows to plant roles)
    frequency    text NOT NULL,            -- ISO 8601 duration of the expected update period: PT5M, P1D, P1M
    newest       timestamptz,              -- newest data time (a month's first day for monthly data)
    due          timestamptz,              -- newer data must have arrived by then
    status       text NOT NULL CHECK (status IN ('fresh', 'late', 'empty')),
    lag_s        double precision,         -- seconds past `due` (late) or before it (negative, fresh)
    checked_at   timestamptz NOT NULL
);

-- A late dataset opens one alert; it stays open (or acknowledged) until the data is fresh again, then resolved.
CREATE TABLE IF NOT EXISTS dataset_alerts (
    id              bigserial PRIMARY KEY,
    dataset         text NOT NULL,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    opened_at       timestamptz NOT NULL,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    newest          timestamptz,
    due             timestamptz,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE UNIQUE INDEX IF NOT EXISTS dataset_alerts_one_active ON dataset_alerts (dataset) WHERE status <> 'resolved';

-- Every open-data export (also in the audit trail). Periods are [period_start, period_end).
CREATE TABLE IF NOT EXISTS opendata_exports (
    id            bigserial PRIMARY KEY,
    period        text NOT NULL,           -- '2026-10' or '2026-Q3'
    period_start  date NOT NULL,
    period_end    date NOT NULL,
    key_id        text NOT NULL,           -- id of the pseudonym key used (never the key)
    files         jsonb NOT NULL,          -- file name -> {rows, sha256}
    exported_at   timestamptz NOT NULL DEFAULT now()
);
