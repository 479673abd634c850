-- sql/007_ws_drop_activity.sql: a dead terminal row's drop counts as its
-- socket's close
--
-- CONTRACT §4.4 counts a terminal socket's close as activity.  A socket
-- whose program died (SIGKILL, a host's reboot) closes nothing itself: its
-- row is dropped later as dead (devpocket_ws_drop, 006), and until now that
-- left last_activity as it was, so an environment whose terminal had been
-- quiet for long was auto-stopped at once after the drop instead of the
-- idle limit after the close.  The drop now marks the environments of the
-- terminal rows it drops.

CREATE OR REPLACE FUNCTION devpocket_ws_drop(uid text, dead text[])
RETURNS void
LANGUAGE sql VOLATILE AS $$
	WITH d AS (DELETE FROM ws_connections c WHERE c.user_id = uid
	    AND c.id = ANY (dead)
	    RETURNING c.session_id, c.kind, c.environment_id),
	a AS (UPDATE environments e SET last_activity = now()
	    WHERE e.id IN (SELECT environment_id FROM d
	    WHERE kind = 'terminal'))
	UPDATE terminal_sessions s SET active = false, ended_at = now(),
	    close_code = 1006 WHERE s.id IN (SELECT session_id FROM d)
	    AND s.active;
$$;
