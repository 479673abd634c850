-- sql/011_environment_usage.sql: each environment's newest metric sample
--
-- An Environment's cpu_usage, memory_usage and storage_usage (CONTRACT
-- §1.3) are those of its newest sample when it is running and the sample
-- is at most 5 minutes old.  Every read of an Environment (the list
-- above all) found that sample with a LATERAL subquery on metric_samples:
-- a nested loop, a limit and a backward index scan per row, whose
-- executor start cost more than the rest of the list statement did.  The
-- newest sample is now a row of its own, kept by a trigger on every
-- insert into metric_samples (whoever inserts), and read by a plain join
-- on its key.  A row per environment, in a table of its own: keeping it
-- locks no environment row beyond the foreign key's share lock that the
-- sample itself takes.

CREATE TABLE environment_usage (
	environment_id	text PRIMARY KEY REFERENCES environments (id)
			ON DELETE CASCADE,
	ts		timestamptz NOT NULL,
	cpu_usage	double precision NOT NULL,
	memory_usage	double precision NOT NULL,
	storage_usage	bigint NOT NULL
);

-- No sample may come between the copy and the trigger.  Only samples a
-- read would show (at most 5 minutes old) are copied: the table keeps
-- up to 8 days of them, and the next sample makes the row anyway.
LOCK TABLE metric_samples IN SHARE MODE;
INSERT INTO environment_usage (environment_id, ts, cpu_usage, memory_usage,
    storage_usage)
    SELECT DISTINCT ON (environment_id) environment_id, ts, cpu_usage,
    memory_usage, storage_usage FROM metric_samples
    WHERE ts > now() - interval '5 minutes'
    ORDER BY environment_id, ts DESC;

-- An older sample inserted after a newer one (a backfill) leaves the
-- newer in place.
CREATE FUNCTION devpocket_env_usage() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO environment_usage AS u (environment_id, ts, cpu_usage,
	    memory_usage, storage_usage)
	    VALUES (NEW.environment_id, NEW.ts, NEW.cpu_usage,
	    NEW.memory_usage, NEW.storage_usage)
	    ON CONFLICT (environment_id) DO UPDATE SET ts = EXCLUDED.ts,
	    cpu_usage = EXCLUDED.cpu_usage,
	    memory_usage = EXCLUDED.memory_usage,
	    storage_usage = EXCLUDED.storage_usage
	    WHERE u.ts <= EXCLUDED.ts;
	RETURN NULL;
END;
$$;

CREATE TRIGGER metric_samples_usage AFTER INSERT ON metric_samples
    FOR EACH ROW EXECUTE FUNCTION devpocket_env_usage();
