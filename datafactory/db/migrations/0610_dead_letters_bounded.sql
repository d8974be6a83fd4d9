-- Dead letters are bounded and de-duplicated (issue 15). A row keeps the first DEAD_LETTER_PREFIX_BYTES (4096,
-- ingest/dead_letters.py) of the payload, the payload's full size and SHA-256, and stands for one distinct dead
-- letter: the same message delivered again (a broker redelivery, a gateway re-sending it) increments
-- `deliveries` and moves `last_seen` instead of adding a row. `fingerprint` is what "the same" means:
-- sha256(topic \0 reason \0 sample_index \0 payload_sha256), computed by ingest; rows written by hand may leave
-- it NULL (NULLs never collide in a unique index).

ALTER TABLE dead_letters
    ADD COLUMN IF NOT EXISTS payload_size   bigint,
    ADD COLUMN IF NOT EXISTS payload_sha256 bytea,
    ADD COLUMN IF NOT EXISTS fingerprint    bytea,
    ADD COLUMN IF NOT EXISTS deliveries     bigint NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS last_seen      timestamptz;

-- Existing rows: measure, fingerprint, fold repeats into their first row, then cut the payloads to the prefix.
UPDATE dead_letters SET payload_size = length(payload), payload_sha256 = sha256(payload)
WHERE payload IS NOT NULL AND payload_sha256 IS NULL;
UPDATE dead_letters SET fingerprint = sha256(
        convert_to(topic, 'UTF8') || '\x00'::bytea || convert_to(reason, 'UTF8') || '\x00'::bytea
        || convert_to(coalesce(sample_index::text, ''), 'UTF8') || '\x00'::bytea || payload_sha256)
WHERE payload_sha256 IS NOT NULL AND fingerprint IS NULL;
UPDATE dead_letters SET last_seen = received_at WHERE last_seen IS NULL;
WITH repeats AS (
    SELECT fingerprint, min(id) AS keep, count(*) AS n, max(received_at) AS newest
    FROM dead_letters WHERE fingerprint IS NOT NULL GROUP BY fingerprint HAVING count(*) > 1
), folded AS (
    UPDATE dead_letters d SET deliveries = r.n, last_seen = r.newest FROM repeats r WHERE d.id = r.keep
    RETURNING d.fingerprint, d.id
)
DELETE FROM dead_letters d USING folded f WHERE d.fingerprint = f.fingerprint AND d.id <> f.id;
UPDATE dead_letters SET payload = substring(payload FROM 1 FOR 4096) WHERE length(payload) > 4096;

ALTER TABLE dead_letters ALTER COLUMN last_seen SET DEFAULT now(), ALTER COLUMN last_seen SET NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS dead_letters_fingerprint ON dead_letters (fingerprint);
CREATE INDEX IF NOT EXISTS dead_letters_last_seen ON dead_letters (last_seen);

-- Per reason: distinct dead letters, the newest arrival and deliveries (every time one arrived). Replaced in place
-- (new column last) so grants on the view survive.
CREATE OR REPLACE VIEW dead_letter_counts AS
SELECT reason, count(*) AS count, max(last_seen) AS last_seen, sum(deliveries)::bigint AS deliveries
FROM dead_letters
GROUP BY reason;
