-- Core schema: plants, the signal registry, dead letters, late writes and operational tables.
-- The samples table itself is created by 0002_samples.py (hypertable on TimescaleDB, partitioned otherwise).
-- Times are timestamptz in UTC; the time column is always called "time".

CREATE TABLE IF NOT EXISTS plants (
    id           serial PRIMARY KEY,
    enterprise   text NOT NULL,
    site         text NOT NULL,
    name         text NOT NULL DEFAULT '',
    timezone     text NOT NULL DEFAULT 'Asia/Shanghai',
    enterprise_info jsonb NOT NULL DEFAULT '{}'::jsonb,  -- credit code, industry, town, park … from the config
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (enterprise, site)
);

CREATE TABLE IF NOT EXISTS cells (
    id           serial PRIMARY KEY,
    plant_id     integer NOT NULL REFERENCES plants(id),
    area         text NOT NULL,
    line         text NOT NULL,
    cell         text NOT NULL,
    name         text NOT NULL DEFAULT '',
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb,   -- ideal_cycle_time_s, machine_class, target rate …
    UNIQUE (plant_id, area, line, cell)
);

CREATE TABLE IF NOT EXISTS signals (
    id           serial PRIMARY KEY,
    plant_id     integer NOT NULL REFERENCES plants(id),
    cell_id      integer NOT NULL REFERENCES cells(id),
    name         text NOT NULL,
    meaning      text NOT NULL DEFAULT 'generic',
    unit         text NOT NULL DEFAULT '',
    description  text NOT NULL DEFAULT '',
    registered_by text NOT NULL DEFAULT 'meta',          -- 'meta' (gateway birth), 'config', 'auto'
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (cell_id, name)
);
CREATE INDEX IF NOT EXISTS signals_plant_meaning ON signals (plant_id, meaning);

-- Full path view used by dashboards and analytics.
CREATE OR REPLACE VIEW signal_paths AS
SELECT s.id AS signal_id, p.id AS plant_id, p.enterprise, p.site, c.id AS cell_id, c.area, c.line, c.cell,
       s.name AS signal, s.meaning, s.unit,
       p.enterprise || '/' || p.site || '/' || c.area || '/' || c.line || '/' || c.cell || '/' || s.name AS path
FROM signals s JOIN cells c ON c.id = s.cell_id JOIN plants p ON p.id = s.plant_id;

CREATE TABLE IF NOT EXISTS dead_letters (
    id           bigserial PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    worker       text NOT NULL DEFAULT '',
    topic        text NOT NULL,
    plant_id     integer,                 -- when the topic named a known plant
    reason       text NOT NULL,           -- machine-readable code, e.g. malformed_json, non_finite
    detail       text NOT NULL,           -- human-readable: what exactly is wrong
    payload      bytea,                   -- the raw message (or the offending sample as JSON)
    sample_index integer                  -- index in the batch for per-sample rejects
);
CREATE INDEX IF NOT EXISTS dead_letters_time ON dead_letters (received_at);
CREATE INDEX IF NOT EXISTS dead_letters_reason ON dead_letters (reason, received_at);

-- Samples written for a time that analytics may already have processed (late or out of order).
CREATE TABLE IF NOT EXISTS late_writes (
    id           bigserial PRIMARY KEY,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    signal_id    integer NOT NULL,
    time_from    timestamptz NOT NULL,
    time_to      timestamptz NOT NULL,
    samples      integer NOT NULL,
    processed_at timestamptz
);
CREATE INDEX IF NOT EXISTS late_writes_unprocessed ON late_writes (recorded_at) WHERE processed_at IS NULL;

-- Per ingest worker, refreshed every few seconds.
CREATE TABLE IF NOT EXISTS ingest_health (
    worker          text PRIMARY KEY,
    updated_at      timestamptz NOT NULL,
    started_at      timestamptz NOT NULL,
    samples_total   bigint NOT NULL DEFAULT 0,
    messages_total  bigint NOT NULL DEFAULT 0,
    samples_per_s   double precision NOT NULL DEFAULT 0,
    newest_sample   timestamptz,
    lag_s           double precision,
    batch_latency_ms double precision,
    redeliveries    bigint NOT NULL DEFAULT 0,
    dead_letters_total bigint NOT NULL DEFAULT 0
);

-- Latest retained status of each gateway, as published on its status topic.
CREATE TABLE IF NOT EXISTS gateway_status (
    plant_id     integer NOT NULL REFERENCES plants(id),
    gateway      text NOT NULL,
    online       boolean NOT NULL,
    updated_at   timestamptz NOT NULL,
    config_version text NOT NULL DEFAULT '',
    status       jsonb NOT NULL DEFAULT '{}'::jsonb,
    PRIMARY KEY (plant_id, gateway)
);

-- OPC-UA quality helpers: severity from the 32-bit status code stored as integer.
CREATE OR REPLACE FUNCTION df_quality_severity(q integer) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE ((q::bigint & 4294967295) >> 30) WHEN 0 THEN 'good' WHEN 1 THEN 'uncertain' ELSE 'bad' END
$$;
