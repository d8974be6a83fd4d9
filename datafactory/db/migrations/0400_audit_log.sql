-- Append-only, hash-chained audit trail (datafactory.db.audit).
-- Each row's hash is sha256(prev_hash || canonical row); the chain is built by a BEFORE INSERT trigger under a
-- transaction-scoped advisory lock, so concurrent writers cannot fork it and callers cannot forge seq/prev_hash.
-- UPDATE/DELETE/TRUNCATE are revoked from everyone but the owner, and a trigger refuses them even for the owner
-- (the owner could disable the trigger: that is what `datafactory audit verify` is for).

CREATE TABLE IF NOT EXISTS audit_log (
    seq        bigint PRIMARY KEY,
    time       timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor      text NOT NULL,
    action     text NOT NULL,
    object     text NOT NULL DEFAULT '',
    details    jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash  text NOT NULL,
    hash       text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_time ON audit_log (time);

-- The canonical text of a row: a JSON array whose jsonb text form is deterministic for equal values.
CREATE OR REPLACE FUNCTION df_audit_canonical(seq bigint, t timestamptz, actor text, action text, object text,
                                              details jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT jsonb_build_array(seq, to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
                             actor, action, object, details)::text
$$;

CREATE OR REPLACE FUNCTION df_audit_hash(prev_hash text, canonical text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT encode(sha256(convert_to(prev_hash || canonical, 'UTF8')), 'hex')
$$;

-- SECURITY DEFINER so an inserter needs only INSERT on audit_log (not SELECT) to extend the chain.
CREATE OR REPLACE FUNCTION df_audit_chain() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $$
DECLARE
    last_seq bigint;
    last_hash text;
BEGIN
    PERFORM pg_advisory_xact_lock(1684406272);  -- 0x64660400: "df" + 0400, serialises chain extension
    -- Schema-qualified so a temporary table named audit_log (pg_temp is searched first) cannot fake the head.
    EXECUTE format('SELECT seq, hash FROM %I.audit_log ORDER BY seq DESC LIMIT 1', TG_TABLE_SCHEMA)
        INTO last_seq, last_hash;
    NEW.seq := coalesce(last_seq, 0) + 1;
    NEW.prev_hash := coalesce(last_hash, repeat('0', 64));
    NEW.time := clock_timestamp();
    NEW.object := coalesce(NEW.object, '');
    NEW.details := coalesce(NEW.details, '{}'::jsonb);
    NEW.hash := df_audit_hash(NEW.prev_hash,
                              df_audit_canonical(NEW.seq, NEW.time, NEW.actor, NEW.action, NEW.object, NEW.details));
    RETURN NEW;
END
$$;

CREATE OR REPLACE FUNCTION df_audit_refuse() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_log_chain ON audit_log;
CREATE TRIGGER audit_log_chain BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION df_audit_chain();
DROP TRIGGER IF EXISTS audit_log_no_change ON audit_log;
CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION df_audit_refuse();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log FOR EACH STATEMENT EXECUTE FUNCTION df_audit_refuse();

REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
