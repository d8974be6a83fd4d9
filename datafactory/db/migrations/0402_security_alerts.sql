-- Early warnings of attack or misuse, written by `datafactory audit watch` (ops.detectors).
-- One row per detector, subject and detection window: re-running a detector over the same window adds nothing.
CREATE TABLE IF NOT EXISTS security_alerts (
    id           bigserial PRIMARY KEY,
    time         timestamptz NOT NULL DEFAULT now(),
    detector     text NOT NULL,         -- dead_letter_flood, gateway_rate, acl_denied, auth_failures, unknown_client
    severity     text NOT NULL,         -- warning | critical
    plant_id     integer,               -- when the subject belongs to a known plant
    subject      text NOT NULL,         -- plant enterprise/site, client id, user name or address
    window_start timestamptz NOT NULL,
    window_end   timestamptz NOT NULL,
    observed     double precision NOT NULL,
    baseline     double precision,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    acknowledged_at timestamptz,
    UNIQUE (detector, subject, window_start)
);
CREATE INDEX IF NOT EXISTS security_alerts_time ON security_alerts (time);
