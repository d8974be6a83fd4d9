-- Ground truth keyed by plant: two simulated plants in one database keep their own truth (their cell paths may be
-- the same, e.g. machining/line-1/cnc-01 in both). Rows written before this migration belong to the database's
-- only plant; where there are several (or none), their plant cannot be known and they are dropped — truth that
-- may be another plant's is no truth.
DO $$
DECLARE
    t text;
    only_plant integer;
BEGIN
    SELECT CASE WHEN count(*) = 1 THEN min(id) END INTO only_plant FROM plants;
    FOREACH t IN ARRAY ARRAY['sim_truth_states', 'sim_truth_shift', 'sim_truth_events', 'sim_truth_emitted'] LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN IF NOT EXISTS plant_id integer REFERENCES plants(id) ON DELETE CASCADE', t);
        EXECUTE format('UPDATE %I SET plant_id = $1 WHERE plant_id IS NULL', t) USING only_plant;
        EXECUTE format('DELETE FROM %I WHERE plant_id IS NULL', t);
        EXECUTE format('ALTER TABLE %I ALTER COLUMN plant_id SET NOT NULL', t);
    END LOOP;
END $$;

ALTER TABLE sim_truth_states DROP CONSTRAINT IF EXISTS sim_truth_states_pkey,
    ADD PRIMARY KEY (plant_id, cell_path, time);
ALTER TABLE sim_truth_shift DROP CONSTRAINT IF EXISTS sim_truth_shift_pkey,
    ADD PRIMARY KEY (plant_id, cell_path, shift_start);
ALTER TABLE sim_truth_emitted DROP CONSTRAINT IF EXISTS sim_truth_emitted_pkey,
    ADD PRIMARY KEY (plant_id, cell_path, signal, time);
DROP INDEX IF EXISTS sim_truth_events_kind;
CREATE INDEX IF NOT EXISTS sim_truth_events_plant_kind ON sim_truth_events (plant_id, kind, time);
