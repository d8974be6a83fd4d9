-- Streaming replicas of this database as the primary sees them, for the platform-health dashboard.
-- pg_stat_replication shows a replica's lag only to superusers and members of pg_read_all_stats, so this is a
-- definer function (owned by whoever migrates: the database owner) that reveals the lag columns and nothing
-- else; db roles grants it to df_admin, the operators' role behind the platform data source.
-- replay_lag is NULL once an idle replica has caught up: then it is 0 if nothing is left to replay.
CREATE OR REPLACE FUNCTION df_replication()
RETURNS TABLE (replica text, client inet, state text, sync_state text, replay_lag_s double precision,
               behind_bytes numeric)
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT r.application_name, r.client_addr, r.state, r.sync_state,
           coalesce(extract(epoch FROM r.replay_lag)::double precision,
                    CASE WHEN pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn) = 0 THEN 0 END),
           pg_wal_lsn_diff(pg_current_wal_lsn(), r.replay_lsn)
    FROM pg_stat_replication r
$$;
REVOKE ALL ON FUNCTION df_replication() FROM PUBLIC;
