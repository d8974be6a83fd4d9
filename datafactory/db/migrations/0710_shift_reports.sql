-- Shift hand-over reports (owned by alerting/report): one row per plant and shift written, so that
-- `datafactory report shift --every` sends each shift's report once, also across restarts.
CREATE TABLE IF NOT EXISTS shift_reports (
    plant_id     integer NOT NULL,
    shift_name   text NOT NULL,
    shift_start  timestamptz NOT NULL,
    shift_end    timestamptz NOT NULL,
    language     text NOT NULL,
    files        jsonb NOT NULL DEFAULT '[]'::jsonb,   -- paths written (HTML, PDF, CSV)
    queued       integer NOT NULL DEFAULT 0,           -- notifications put in alert_outbox for the receivers
    sent         boolean NOT NULL DEFAULT false,       -- made for its receivers (--send / --every), not only written
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plant_id, shift_name, shift_start)
);
