-- A different value (or quality) for a (signal, time) already stored: the stored row stays, and the conflict is
-- kept visible here with both values. A byte-identical redelivery is no conflict and is not recorded.
-- Values are text in their exact form (float64 in shortest round-trip form, integers in decimal, uint64 as the
-- unsigned number, bool as true/false, strings as they are; NULL for a value-less bad-quality marker).
-- One row per distinct conflicting sample: the same conflicting message redelivered is recorded once.

CREATE TABLE IF NOT EXISTS sample_conflicts (
    id               bigserial PRIMARY KEY,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    worker           text NOT NULL DEFAULT '',
    signal_id        integer NOT NULL,
    time             timestamptz NOT NULL,
    value_type       text NOT NULL,
    stored_value     text,
    stored_quality   integer NOT NULL,
    received_value   text,
    received_quality integer NOT NULL,
    UNIQUE NULLS NOT DISTINCT (signal_id, time, value_type, received_value, received_quality)
);
CREATE INDEX IF NOT EXISTS sample_conflicts_recorded ON sample_conflicts (recorded_at);
