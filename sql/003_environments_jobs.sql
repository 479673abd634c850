-- sql/003_environments_jobs.sql: what the environment lifecycle adds
-- Startup commands that exited non-zero in the current (or last) start;
-- set when the install log's "done" marker is copied.
ALTER TABLE environments ADD COLUMN install_warnings integer NOT NULL DEFAULT 0;

-- The reconcile loop looks at the transient and running states only.
CREATE INDEX environments_active ON environments (status, updated_at)
    WHERE status IN ('creating', 'installing', 'running');
-- Retention purge of terminated environments.
CREATE INDEX environments_terminated ON environments (terminated_at)
    WHERE status = 'terminated';
-- Pending environment jobs by environment (last attempt, purge guard).
CREATE INDEX jobs_env_pending ON jobs ((payload->>'id'))
    WHERE kind LIKE 'env.%' AND state IN ('queued', 'running');
