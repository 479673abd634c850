-- sql/008_env_logs_notify.sql: a new log entry wakes the logs sockets
--
-- ws/logs LISTENs on devpocket_env_logs and polls at once when the payload
-- is its environment's id, but nothing sent the notification: live entries
-- waited for its 500 ms poll.  Every insert now notifies (at commit, and
-- once per environment and transaction: PostgreSQL folds equal payloads).

CREATE OR REPLACE FUNCTION devpocket_env_logs_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('devpocket_env_logs', NEW.environment_id);
	RETURN NULL;
END;
$$;

CREATE TRIGGER environment_logs_notify AFTER INSERT ON environment_logs
    FOR EACH ROW EXECUTE FUNCTION devpocket_env_logs_notify();
