-- A change of a signal's declared type is an event, not a silent coercion: every change (by a gateway's meta
-- message or a deployed config) is recorded here, and samples already stored keep their own type
-- (samples_typed.value_type), so history is never re-interpreted.

CREATE TABLE IF NOT EXISTS signal_type_changes (
    id           bigserial PRIMARY KEY,
    signal_id    integer NOT NULL REFERENCES signals(id),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    old_type     text NOT NULL,
    new_type     text NOT NULL,
    source       text NOT NULL        -- who declared it: 'meta' (a gateway's meta), 'config', 'simulator'
);
CREATE INDEX IF NOT EXISTS signal_type_changes_signal ON signal_type_changes (signal_id, changed_at);
