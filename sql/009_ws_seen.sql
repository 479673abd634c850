-- sql/009_ws_seen.sql: a socket's row says when its program was last seen
--
-- A row's process is judged dead by kill(pid, 0) on the row's own host
-- (lib/wsapp.c), so only that host's sockets and worker could drop it.
-- The rows of a host gone for good (or one that runs no worker) then held
-- their users' slots (CONTRACT §3.2) and kept their environments from the
-- idle stop (§4.4) for ever.  Every socket now stamps its row with its
-- periodic check (ws/terminal and ws/logs, every 30 s by default); a row
-- not seen for devpocket_ws_stale() is dead whatever its host, and the
-- slot take (below) and every host's worker (lib/wsapp.c) drop it.

ALTER TABLE ws_connections ADD COLUMN seen_at timestamptz NOT NULL
    DEFAULT now();
CREATE INDEX ws_connections_seen ON ws_connections (seen_at);

-- Twenty missed checks: a socket whose database was away that long finds
-- its row gone at its next check and closes (1011).
CREATE FUNCTION devpocket_ws_stale() RETURNS interval
LANGUAGE sql IMMUTABLE AS $$ SELECT interval '10 minutes' $$;

-- As 006, and the user's rows not seen for devpocket_ws_stale() go with
-- the dead ones the caller found.
CREATE OR REPLACE FUNCTION devpocket_ws_slot(slot text, uid text,
    kind text, env text, pid integer, host text, lim bigint, dead text[],
    session text, device text) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
	PERFORM pg_advisory_xact_lock(hashtextextended('devpocket_ws:' || uid,
	    0));
	dead := dead || ARRAY(SELECT c.id FROM ws_connections c
	    WHERE c.user_id = uid AND c.seen_at < now() - devpocket_ws_stale());
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
