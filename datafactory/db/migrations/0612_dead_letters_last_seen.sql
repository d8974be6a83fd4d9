-- A dead letter written without last_seen (by hand, by a restore of an older dump, by a test) was last seen when
-- it was received, not at insert time: otherwise an old row would look like a fresh arrival to the dead-letter
-- flood detector and the dashboards. Ingest always sets last_seen itself.
ALTER TABLE dead_letters ALTER COLUMN last_seen DROP DEFAULT;

CREATE OR REPLACE FUNCTION df_dead_letter_last_seen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_seen := coalesce(NEW.last_seen, NEW.received_at);
    RETURN NEW;
END
$$;

DROP TRIGGER IF EXISTS dead_letters_last_seen ON dead_letters;
CREATE TRIGGER dead_letters_last_seen BEFORE INSERT ON dead_letters
    FOR EACH ROW EXECUTE FUNCTION df_dead_letter_last_seen();
