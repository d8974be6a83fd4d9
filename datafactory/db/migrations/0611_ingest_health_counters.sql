-- Every counter an ingest worker keeps is exported in its ingest_health row (issue 15); docs/operators.md says
-- what each one means. All are totals since the worker started, like samples_total.
ALTER TABLE ingest_health
    ADD COLUMN IF NOT EXISTS batches_total           bigint NOT NULL DEFAULT 0,
    ADD COLUMN IF NOT EXISTS duplicates_total        bigint NOT NULL DEFAULT 0,  -- byte-identical re-sends, not stored again
    ADD COLUMN IF NOT EXISTS conflicts_total         bigint NOT NULL DEFAULT 0,  -- a different value at a stored (signal, time)
    ADD COLUMN IF NOT EXISTS late_samples_total      bigint NOT NULL DEFAULT 0,  -- recorded in late_writes
    ADD COLUMN IF NOT EXISTS refused_messages_total  bigint NOT NULL DEFAULT 0,  -- messages dead-lettered whole
    ADD COLUMN IF NOT EXISTS rejected_samples_total  bigint NOT NULL DEFAULT 0,  -- single samples dead-lettered
    ADD COLUMN IF NOT EXISTS dead_letters_by_reason  jsonb NOT NULL DEFAULT '{}'::jsonb,  -- reason → count
    ADD COLUMN IF NOT EXISTS database_failures_total bigint NOT NULL DEFAULT 0,  -- failed batch attempts (retried)
    ADD COLUMN IF NOT EXISTS stopped_reason          text;  -- why the worker stopped consuming, if it did
