/* lib/lifecycle.h: the worker's side of environments: jobs and the reconcile loop */
#ifndef DP_LIFECYCLE_H
#define DP_LIFECYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "db.h"
#include "jobs.h"
#include "util.h"

/*
 * Job handlers (struct dp_job_kind) of the environment kinds.  The
 * payload is {"id": <environment id>, "generation": <int>}: the
 * generation the job was queued for.  A job whose environment has moved
 * on to a later generation does nothing (it was overtaken), except
 * env.destroy, which always releases.  Jobs of one environment run one
 * at a time (a PostgreSQL advisory lock), whichever worker claims them.
 *
 *	env.provision	driver provision, then creating → installing
 *	env.start	driver start (provision when nothing exists; a
 *			compute left running is stopped first), then as above
 *	env.restart	driver stop, then as env.start
 *	env.stop	driver stop (the status was set by the request)
 *	env.destroy	driver destroy
 *
 * A driver error is DP_JOB_RETRY; on the job's last attempt a
 * provisioning kind also moves the environment to error with a system
 * log entry.  A malformed payload is DP_JOB_PERMANENT; an environment
 * that no longer exists is done.  A job whose lock was lost while the
 * driver worked (the database connection dropped) writes nothing and is
 * DP_JOB_RETRY.
 */
int	 dp_job_env_provision(struct dp_db *, const char *, struct dp_err *);
int	 dp_job_env_start(struct dp_db *, const char *, struct dp_err *);
int	 dp_job_env_restart(struct dp_db *, const char *, struct dp_err *);
int	 dp_job_env_stop(struct dp_db *, const char *, struct dp_err *);
int	 dp_job_env_destroy(struct dp_db *, const char *, struct dp_err *);

/*
 * Whether this connection holds environment id's job lock (a lost
 * connection takes its advisory locks with it; the statement that asks
 * reconnects, so the answer is then false).
 */
bool	 dp_env_lock_held(struct dp_db *, const char *id);

/* The five kinds, for a worker's kind table. */
#define DP_LIFECYCLE_KINDS					\
	{ "env.provision",	dp_job_env_provision },		\
	{ "env.start",		dp_job_env_start },		\
	{ "env.restart",	dp_job_env_restart },		\
	{ "env.stop",		dp_job_env_stop },		\
	{ "env.destroy",	dp_job_env_destroy }

/* How often the worker should call dp_lifecycle_reconcile. */
#define DP_RECONCILE_MS		500

/*
 * One reconcile pass (CONTRACT §4.2, §4.4), on a connection without an
 * open transaction.  Every pass: copy new install-log bytes of
 * installing environments into environment_logs and move them to
 * running or error (markers of lib/driver.h, [limits] install_timeout);
 * take metric samples of running environments (the first a few seconds
 * after they became running, then every [limits] metrics_interval).
 * Every 10 s: running environments whose compute the driver reports
 * FAILED or ABSENT become error; idle auto-stop ([limits]
 * idle_stop_minutes).  Every 60 s: purge terminated environments past
 * [limits] terminated_retention_hours (not before their env.destroy job
 * finished) and metric samples older than 8 days.  Each environment is
 * handled in its own transaction with its row locked FOR UPDATE SKIP
 * LOCKED, so workers share the work and a failure (logged) of one
 * environment does not stop the others.  Returns 0, or -1 when the
 * database failed.
 */
int	 dp_lifecycle_reconcile(struct dp_db *);

/*
 * Requeue (or fail, when out of attempts) jobs left 'running' by a
 * worker of this host that no longer exists: locked_by "<host>:<pid>"
 * with pid gone (or equal to this process, which runs jobs one at a
 * time and so holds none while it calls this).  Covers a worker killed
 * and restarted without waiting for the stale timeout of
 * dp_jobs_recover.  Returns the number of jobs touched, or -1.
 */
int	 dp_lifecycle_recover(struct dp_db *, const char *host);

/*
 * Split an install log chunk into log entries: appends [level, message]
 * pairs (install source) to entries (a JSON array) and reports the
 * markers: *done = warnings count at "done" (else -1); *fail = the
 * message of a "fail" marker (heap, caller frees; else NULL).  Lines are
 * cleaned to UTF-8 and split at DP_ENV_LOG_CHARS code points.  Pure; for
 * tests.
 */
void	 dp_lifecycle_parse_log(const char *buf, size_t len,
	    struct json_object *entries, int64_t *done, char **fail);

#endif
