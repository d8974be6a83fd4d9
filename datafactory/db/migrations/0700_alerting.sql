-- Alerting (owned by alerting/, described in docs/alerting.md): the lifecycle of every rule's alerts, the
-- notification outbox and silences. All state lives here, so a restarted `datafactory alerts run` carries on
-- exactly where the last one stopped: it neither sends a notification twice nor forgets a pending one.

-- One row per alert episode of (plant, rule, subject): pending → firing → acknowledged → resolved.
CREATE TABLE IF NOT EXISTS alert_instances (
    id              bigserial PRIMARY KEY,
    plant_id        integer NOT NULL,
    rule_id         text NOT NULL,
    rule_kind       text NOT NULL,
    subject         text NOT NULL,               -- what the alert is about: cell path, gateway, dataset, worker …
    cell_id         integer,
    severity        text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status          text NOT NULL CHECK (status IN ('pending', 'firing', 'acknowledged', 'resolved')),
    since           timestamptz NOT NULL,        -- when the condition started (data time where known)
    fired_at        timestamptz,
    acknowledged_at timestamptz,
    acknowledged_by text,
    resolved_at     timestamptz,
    last_seen_at    timestamptz NOT NULL,        -- last evaluation that saw the condition
    last_notified_at timestamptz,                -- last firing / repeat notification enqueued
    notify_count    integer NOT NULL DEFAULT 0,
    escalated_at    timestamptz,
    value           double precision,
    summary         jsonb NOT NULL DEFAULT '{}'::jsonb  -- facts the messages are written from
);
-- De-duplication: at most one live episode per plant, rule and subject.
CREATE UNIQUE INDEX IF NOT EXISTS alert_instances_live ON alert_instances (plant_id, rule_id, subject)
    WHERE status <> 'resolved';
CREATE INDEX IF NOT EXISTS alert_instances_plant_since ON alert_instances (plant_id, since);

-- Notifications to send, written in the same transaction as the state change that causes them; a row is
-- 'sent' only after the receiver accepted it, and a failed attempt is retried with back-off.
CREATE TABLE IF NOT EXISTS alert_outbox (
    id              bigserial PRIMARY KEY,
    plant_id        integer NOT NULL,
    instance_id     bigint REFERENCES alert_instances(id),
    event           text NOT NULL,               -- firing | repeat | escalation | resolved | report
    receiver        text NOT NULL,
    url_env         text NOT NULL,               -- environment variable with the receiver's URL (never the URL)
    kind            text NOT NULL,               -- email | wecom | dingtalk | feishu | webhook
    language        text NOT NULL,
    title           text NOT NULL,
    body            text NOT NULL,
    attach          text,                        -- file path sent along (shift report PDF)
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL DEFAULT 10,
    not_before      timestamptz NOT NULL DEFAULT now(),  -- quiet hours and retry back-off
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    sent_at         timestamptz
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox (not_before) WHERE status = 'pending';

-- Silences: no notifications for matching alerts until `until` (they are still tracked and listed).
CREATE TABLE IF NOT EXISTS alert_silences (
    id              bigserial PRIMARY KEY,
    plant_id        integer NOT NULL,
    rule_id         text NOT NULL DEFAULT '',    -- '' = every rule
    subject         text NOT NULL DEFAULT '',    -- '' = every subject
    until           timestamptz NOT NULL,
    created_by      text NOT NULL,
    reason          text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now()
);
