-- sql/010_env_status_changes.sql: every status change, for the logs sockets
--
-- ws/logs compared the status at each poll (every 500 ms, or at a log
-- entry's notification) with the last one it had seen, so a status that
-- lasted less than that (creating, in a quick restart on the local
-- driver) was never sent; CONTRACT §3.3 wants a status message for every
-- change.  Each change is now a row, numbered from environment_logs'
-- sequence: a socket reads the changes and the entries in one order (both
-- are written under the environment's row lock, so they commit in id
-- order), and a change notifies as an entry does (008).

CREATE TABLE environment_status_changes (
	id		bigint PRIMARY KEY
			DEFAULT nextval('environment_logs_id_seq'),
	environment_id	text NOT NULL REFERENCES environments (id)
			ON DELETE CASCADE,
	status		text NOT NULL,
	at		timestamptz NOT NULL
);
CREATE INDEX environment_status_changes_env
    ON environment_status_changes (environment_id, id);
-- The worker's retention purge (lib/jobs.c).
CREATE INDEX environment_status_changes_at
    ON environment_status_changes (at);

-- The change's time is the row's updated_at, as the status message's
-- timestamp was.
CREATE FUNCTION devpocket_env_status_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO environment_status_changes (environment_id, status, at)
	    VALUES (NEW.id, NEW.status, coalesce(NEW.updated_at, now()));
	PERFORM pg_notify('devpocket_env_logs', NEW.id);
	RETURN NULL;
END;
$$;

CREATE TRIGGER environments_status_change AFTER UPDATE OF status
    ON environments FOR EACH ROW
    WHEN (OLD.status IS DISTINCT FROM NEW.status)
    EXECUTE FUNCTION devpocket_env_status_change();
