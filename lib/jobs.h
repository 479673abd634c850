/* lib/jobs.h: the job queue (table jobs, LISTEN/NOTIFY devpocket_jobs) */
#ifndef DP_JOBS_H
#define DP_JOBS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "db.h"
#include "util.h"

/* The NOTIFY channel; the payload of a notification is the job's kind. */
#define DP_JOBS_CHANNEL		"devpocket_jobs"
/* Longest kind name accepted by dp_job_enqueue. */
#define DP_JOB_KIND_MAX		64
/* Largest payload accepted by dp_job_enqueue, in bytes. */
#define DP_JOB_PAYLOAD_MAX	(256 * 1024)

/*
 * Return values of a job handler: DP_JOB_OK, DP_JOB_RETRY (transient
 * failure: the job is queued again with backoff until max_attempts) or
 * DP_JOB_PERMANENT (the job can never succeed, e.g. a malformed payload:
 * it is marked failed at once).  On failure the handler fills err->msg,
 * which becomes the job's last_error; it must not hold secrets.
 */
#define DP_JOB_OK		0
#define DP_JOB_RETRY		(-1)
#define DP_JOB_PERMANENT	(-2)

/*
 * One kind of job and its handler.  The handler runs outside any
 * transaction on the worker's connection; it may open and commit its
 * own.  A transaction it leaves open is rolled back.
 */
struct dp_job_kind {
	const char	*kind;
	int		(*run)(struct dp_db *, const char *payload_json,
			    struct dp_err *);
};

/*
 * Queue a job of kind with payload_json (a JSON object; NULL is "{}") to
 * run no earlier than delay_seconds from now (negative is 0), and NOTIFY
 * DP_JOBS_CHANNEL.  Both statements run inside the caller's transaction
 * when one is open, so the job commits (and the notification is sent)
 * atomically with the caller's state change; a failure then leaves the
 * transaction aborted for the caller to roll back.  Outside a
 * transaction a failed NOTIFY is only a warning (workers also poll).
 * Returns 0, or -1 (bad kind, payload not JSON or too big, database
 * error; database errors are logged by lib/db.c).
 */
int	 dp_job_enqueue(struct dp_db *, const char *kind,
	    const char *payload_json, int64_t delay_seconds);

/*
 * Queue a "mail" job: the payload {"to","subject","body"} is built with
 * json-c.  Same transaction rules and returns as dp_job_enqueue.  The
 * body may carry a token: the payload is wiped when the job finishes.
 */
int	 dp_job_enqueue_mail(struct dp_db *, const char *to,
	    const char *subject, const char *body);

/*
 * Claim one ready job whose kind is in kinds[0..n-1] (FOR UPDATE SKIP
 * LOCKED, so any number of workers on any number of hosts can share the
 * table), run its handler outside any transaction, and record the
 * outcome: done; or queued again after min(2^attempts * 5 s, 1 h) with
 * last_error; or failed when attempts reached max_attempts or the handler
 * said DP_JOB_PERMANENT.  When a "mail" job finishes (done or failed) its
 * payload is replaced by {} because it may carry tokens.  Logs one line
 * per job: kind, id, outcome, duration (never the payload).  The caller
 * must not have a transaction open.  Returns 1 if a job ran (whatever
 * its outcome), 0 if none was ready, -1 on a database error.
 */
int	 dp_jobs_claim_and_run(struct dp_db *, const struct dp_job_kind *,
	    size_t n, const char *worker_id);

/*
 * Requeue jobs left 'running' for more than stale_seconds (their worker
 * died); those that already used max_attempts become 'failed'.  Returns
 * the number of jobs touched, or -1.
 */
int	 dp_jobs_recover(struct dp_db *, int stale_seconds);

/*
 * Retention: delete refresh tokens expired for more than a day, email
 * tokens expired or used more than a day ago, login sessions revoked
 * more than auth_refresh_ttl + 1 day ago, rate windows that have ended,
 * done jobs older than 7 days and failed jobs older than 30 days.
 * Returns the number of rows deleted, or -1 (the statements are
 * independent: the ones before a failure stay done).
 */
int	 dp_jobs_purge(struct dp_db *, const struct dp_config *);

/*
 * Handler of the built-in kind "mail": payload {"to","subject","body"}
 * (strings) → dp_mail_compose with dp_cfg.mail_from → dp_mail_deliver
 * with dp_cfg.  A payload that is not such an object, or a message that
 * cannot be composed, is DP_JOB_PERMANENT; a delivery failure is
 * DP_JOB_RETRY.
 */
int	 dp_job_mail(struct dp_db *, const char *payload_json, struct dp_err *);

#endif
