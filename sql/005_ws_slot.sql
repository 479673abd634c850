-- sql/005_ws_slot.sql: a socket's slot in one round trip
--
-- lib/wsapp.c takes a slot (ws_connections, CONTRACT §3.2) under a per-user
-- advisory lock, then counts.  The count must see every slot committed
-- under the lock, so it cannot share a statement (and its snapshot) with
-- the lock; as separate statements the take cost BEGIN, the lock, the
-- insert and COMMIT.  In a VOLATILE PL/pgSQL function each statement takes
-- a new snapshot, so one call does it all.  The caller lists this host's
-- rows first and passes those whose process is gone (dead); their
-- sessions end with 1006.  pid 0 is a reservation (authorize-ws, which
-- also starts the session row: session and device non-NULL).  True when
-- the slot was taken, false at the limit.
CREATE FUNCTION devpocket_ws_slot(slot text, uid text, kind text,
    env text, pid integer, host text, lim bigint, dead text[],
    session text, device text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(hashtextextended('devpocket_ws:' || uid,
	    0));
	WITH d AS (DELETE FROM ws_connections c WHERE c.user_id = uid
	    AND c.id = ANY (dead) RETURNING c.session_id)
	UPDATE terminal_sessions s SET active = false, ended_at = now(),
	    close_code = 1006 WHERE s.id IN (SELECT session_id FROM d)
	    AND s.active;
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
