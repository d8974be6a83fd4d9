-- Ingest: deployed gateway configs as announced on the retained config topic, and the dead-letter summary
-- dashboards show.

CREATE TABLE IF NOT EXISTS plant_configs (
    plant_id     integer NOT NULL REFERENCES plants(id),
    gateway      text NOT NULL,
    version      text NOT NULL,          -- the config's version hash
    config       jsonb NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (plant_id, gateway, version)
);

CREATE OR REPLACE VIEW dead_letter_counts AS
SELECT reason, count(*) AS count, max(received_at) AS last_seen
FROM dead_letters
GROUP BY reason;
