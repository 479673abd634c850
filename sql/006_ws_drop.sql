-- sql/006_ws_drop.sql: the dead-row drop as a function of its own
--
-- The slot take (devpocket_ws_slot, 005) and a reservation's claim
-- (lib/wsapp.c) both drop the user's dead rows and end their sessions with
-- 1006: one function, devpocket_ws_drop, that both call.  005 stays as it
-- was first applied (a migration is never edited once applied: databases
-- that ran it would never see the change); this replaces its slot take.

-- Drop the user's dead rows (ids the caller found dead) and end their
-- sessions with 1006.
CREATE OR REPLACE FUNCTION devpocket_ws_drop(uid text, dead text[])
RETURNS void
LANGUAGE sql VOLATILE AS $$
	WITH d AS (DELETE FROM ws_connections c WHERE c.user_id = uid
	    AND c.id = ANY (dead) RETURNING c.session_id)
	UPDATE terminal_sessions s SET active = false, ended_at = now(),
	    close_code = 1006 WHERE s.id IN (SELECT session_id FROM d)
	    AND s.active;
$$;

CREATE OR REPLACE FUNCTION devpocket_ws_slot(slot text, uid text,
    kind text, env text, pid integer, host text, lim bigint, dead text[],
    session text, device text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(hashtextextended('devpocket_ws:' || uid,
	    0));
	IF cardinality(dead) > 0 THEN
		PERFORM devpocket_ws_drop(uid, dead);
	END IF;
	IF (SELECT count(*) FROM ws_connections c WHERE c.user_id = uid)
	    >= lim THEN
		RETURN false;
	END IF;
	INSERT INTO ws_connections (id, user_id, kind, environment_id, pid,
	    host, session_id) VALUES (slot, uid, kind, env, pid, host,
	    session);
	IF session IS NOT NULL THEN
		INSERT INTO terminal_sessions (id, user_id, type,
		    environment_id, device_id) VALUES (session, uid,
		    'environment', env, device);
	END IF;
	RETURN true;
END
$$;
