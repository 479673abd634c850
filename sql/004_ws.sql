-- sql/004_ws.sql: WebSocket connection slots and terminal sessions

-- One row per open socket (ws/terminal, ws/logs, ws/ssh), inserted when the
-- socket takes its slot and deleted when it ends.  The per-user cap
-- ([limits] ws_per_user) is taken under a per-user advisory lock (see
-- lib/wsapp.c), so concurrent sockets of one user are counted exactly.  pid
-- and host let a later socket on the same host (and the worker) drop the
-- rows of processes that died without cleaning up.  An environment with a
-- terminal row here counts as active for idle auto-stop (CONTRACT §4.4).
CREATE TABLE ws_connections (
	id		text PRIMARY KEY,
	user_id		text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	kind		text NOT NULL CHECK (kind IN ('terminal', 'logs', 'ssh')),
	environment_id	text REFERENCES environments (id) ON DELETE CASCADE,
	ssh_profile_id	text,
	session_id	text,		-- terminal_sessions.id (terminal, ssh)
	pid		integer NOT NULL,
	host		text NOT NULL,
	started_at	timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ws_connections_user ON ws_connections (user_id);
CREATE INDEX ws_connections_env ON ws_connections (environment_id)
    WHERE environment_id IS NOT NULL;
CREATE INDEX ws_connections_host ON ws_connections (host, pid);

-- CONTRACT §1.10: one row per terminal or SSH socket.  Not tied to the
-- environment by a foreign key: sessions outlive a purged environment
-- ([limits] session_retention_days after ended_at).  Deleting an active
-- row (DELETE /sessions/{id}) makes its socket close with 1000 "Session
-- terminated" at its next check.
CREATE TABLE terminal_sessions (
	id		text PRIMARY KEY,
	user_id		text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	type		text NOT NULL CHECK (type IN ('environment', 'ssh')),
	environment_id	text,
	ssh_profile_id	text,
	device_id	text,
	active		boolean NOT NULL DEFAULT true,
	started_at	timestamptz NOT NULL DEFAULT now(),
	ended_at	timestamptz,
	bytes_in	bigint NOT NULL DEFAULT 0,
	bytes_out	bigint NOT NULL DEFAULT 0,
	close_code	integer,
	CHECK ((environment_id IS NULL) <> (ssh_profile_id IS NULL))
);
CREATE INDEX terminal_sessions_user ON terminal_sessions
    (user_id, started_at DESC, id);
CREATE INDEX terminal_sessions_ended ON terminal_sessions (ended_at)
    WHERE ended_at IS NOT NULL;
