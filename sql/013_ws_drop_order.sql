-- devpocket_ws_drop (006, 007) marked the environments of the terminal rows
-- it drops in whatever order its UPDATE met them, while the template and
-- cluster rewrites (012) and the account deletion lock a user's
-- environments in id order: one drop of two or more terminal rows could
-- deadlock with them (PostgreSQL then fails one side).  The drop now locks
-- the environments in id order first.

CREATE OR REPLACE FUNCTION devpocket_ws_drop(uid text, dead text[])
RETURNS void
LANGUAGE sql VOLATILE AS $$
	WITH d AS (DELETE FROM ws_connections c WHERE c.user_id = uid
	    AND c.id = ANY (dead)
	    RETURNING c.session_id, c.kind, c.environment_id),
	a AS (UPDATE environments e SET last_activity = now()
	    WHERE e.id IN (SELECT l.id FROM environments l
	    WHERE l.id IN (SELECT environment_id FROM d
	    WHERE kind = 'terminal') ORDER BY l.id FOR NO KEY UPDATE))
	UPDATE terminal_sessions s SET active = false, ended_at = now(),
	    close_code = 1006 WHERE s.id IN (SELECT session_id FROM d)
	    AND s.active;
$$;
