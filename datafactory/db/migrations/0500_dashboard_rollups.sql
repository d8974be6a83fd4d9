-- Dashboards: hourly roll-up of raw samples, so raw-signal panels over weeks read ~720 rows per signal instead of
-- every sample (30 days × 36 machines of one signal kind is 1.5 M samples at a 60 s period, 18 M at 5 s).
-- Panels read it when Grafana's $__interval is ≥ 1 h and the raw samples below that (see docs/dashboards.md).
-- Refreshed by df_rollup_samples_hourly(from, to): idempotent (replaces the hours it covers), to be called after
-- each analytics run over the same window. Row-level security applies through signal_id like on samples.

CREATE TABLE IF NOT EXISTS samples_hourly (
    signal_id  integer NOT NULL,
    time       timestamptz NOT NULL,          -- hour start, UTC
    avg        double precision,
    min        double precision,
    max        double precision,
    n          integer NOT NULL,              -- samples with a value in the hour
    PRIMARY KEY (signal_id, time)
);

CREATE OR REPLACE FUNCTION df_rollup_samples_hourly(t_from timestamptz, t_to timestamptz) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_bin('1 hour', t_from, timestamptz '2000-01-01');
    written bigint;
BEGIN
    DELETE FROM samples_hourly WHERE time >= lo AND time < t_to;
    INSERT INTO samples_hourly (signal_id, time, avg, min, max, n)
    SELECT signal_id, date_bin('1 hour', time, timestamptz '2000-01-01'), avg(value), min(value), max(value), count(*)
    FROM samples
    WHERE time >= lo AND time < t_to AND value IS NOT NULL
    GROUP BY 1, 2;
    GET DIAGNOSTICS written = ROW_COUNT;
    RETURN written;
END
$$;
