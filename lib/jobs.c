/* lib/jobs.c: the job queue (table jobs, LISTEN/NOTIFY devpocket_jobs) */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "jobs.h"
#include "log.h"
#include "mail.h"
#include "util.h"

/* Ten years: a longer delay is a bug in the caller, not a plan. */
#define DELAY_MAX	(10LL * 365 * 24 * 3600)
/* JSON nesting accepted in a mail payload (it is a flat object). */
#define MAIL_DEPTH	4

static const char sql_enqueue[] =
    "INSERT INTO jobs (kind, payload, run_at, max_attempts) "
    "SELECT $1, p, now() + $3::double precision * interval '1 second', "
    "$4::int FROM (SELECT $2::jsonb AS p) AS s "
    "WHERE jsonb_typeof(p) = 'object' RETURNING id";

/*
 * Attempts of a job; a mail's ride out a relay's outage of hours (the
 * backoff reaches its hour at the tenth: 24 attempts span about 16 h)
 * instead of losing the message (and its link) after 21 minutes.
 */
#define JOB_ATTEMPTS	8
#define MAIL_ATTEMPTS	24

static const char sql_notify[] =
    "SELECT pg_notify('" DP_JOBS_CHANNEL "', $1)";

/*
 * The oldest ready job of a kind this worker knows.  SKIP LOCKED lets
 * concurrent workers pass over a row another one is claiming.
 */
static const char sql_claim[] =
    "UPDATE jobs SET state = 'running', locked_at = now(), locked_by = $1, "
    "attempts = attempts + 1, updated_at = now() "
    "WHERE id = (SELECT id FROM jobs WHERE state = 'queued' "
    "AND run_at <= now() AND kind = ANY (string_to_array($2, ',')) "
    "ORDER BY run_at, id FOR UPDATE SKIP LOCKED LIMIT 1) "
    "RETURNING id, kind, payload::text, attempts, max_attempts";

/* The kinds whose payload may carry secrets are wiped when finished. */
static const char sql_done[] =
    "UPDATE jobs SET state = 'done', locked_at = NULL, locked_by = NULL, "
    "last_error = NULL, updated_at = now(), "
    "payload = CASE WHEN kind = 'mail' THEN '{}'::jsonb ELSE payload END "
    "WHERE id = $1 AND state = 'running' AND locked_by = $2";

/* $4: the failure is permanent. */
static const char sql_fail[] =
    "UPDATE jobs SET "
    "state = CASE WHEN $4::boolean OR attempts >= max_attempts "
    "THEN 'failed' ELSE 'queued' END, "
    "run_at = CASE WHEN $4::boolean OR attempts >= max_attempts THEN run_at "
    "ELSE now() + least(power(2, least(attempts, 30)) * 5, 3600) "
    "* interval '1 second' END, "
    "payload = CASE WHEN kind = 'mail' AND "
    "($4::boolean OR attempts >= max_attempts) "
    "THEN '{}'::jsonb ELSE payload END, "
    "locked_at = NULL, locked_by = NULL, last_error = $3, updated_at = now() "
    "WHERE id = $1 AND state = 'running' AND locked_by = $2 "
    "RETURNING state, "
    "greatest(0, ceil(extract(epoch FROM run_at - now())))::bigint";

static const char sql_recover[] =
    "UPDATE jobs SET "
    "state = CASE WHEN attempts >= max_attempts THEN 'failed' "
    "ELSE 'queued' END, "
    "payload = CASE WHEN kind = 'mail' AND attempts >= max_attempts "
    "THEN '{}'::jsonb ELSE payload END, "
    "locked_at = NULL, locked_by = NULL, run_at = now(), updated_at = now(), "
    "last_error = 'worker lost while running the job (stale lock)' "
    "WHERE state = 'running' "
    "AND locked_at < now() - $1::double precision * interval '1 second'";

/*
 * Retention.  Consumed refresh tokens are kept until they expire: reuse
 * detection needs them.  A revoked login session is useless once every
 * token it could have issued has expired.  Ended terminal sessions go
 * after [limits] session_retention_days (CONTRACT §1.10); environment
 * status changes after a day.  Each
 * statement's $1, if any, is its arg: the refresh TTL in seconds, or the
 * session retention in days.
 */
enum purge_arg { P_NONE, P_REFRESH_TTL, P_SESSION_DAYS };
static const struct {
	const char	*sql;
	enum purge_arg	 arg;
} sql_purge[] = {
	{ "DELETE FROM refresh_tokens WHERE expires_at < now() - "
	    "interval '1 day'", P_NONE },
	{ "DELETE FROM email_tokens WHERE expires_at < now() - "
	    "interval '1 day' OR used_at < now() - interval '1 day'", P_NONE },
	{ "DELETE FROM login_sessions WHERE revoked_at < now() - "
	    "($1::double precision * interval '1 second') - interval '1 day'",
	    P_REFRESH_TTL },
	{ "DELETE FROM rate_windows "
	    "WHERE window_start + window_len < extract(epoch FROM now())",
	    P_NONE },
	{ "DELETE FROM jobs WHERE state = 'done' "
	    "AND updated_at < now() - interval '7 days'", P_NONE },
	{ "DELETE FROM jobs WHERE state = 'failed' "
	    "AND updated_at < now() - interval '30 days'", P_NONE },
	/* Read by logs sockets within a poll or two (sql/010). */
	{ "DELETE FROM environment_status_changes WHERE at < now() - "
	    "interval '1 day'", P_NONE },
	{ "DELETE FROM terminal_sessions WHERE NOT active AND ended_at < "
	    "now() - $1::double precision * interval '1 day'",
	    P_SESSION_DAYS },
};

static bool
kind_ok(const char *kind)
{
	size_t	 len;

	if (kind == NULL || (len = strlen(kind)) == 0 || len > DP_JOB_KIND_MAX)
		return false;
	/* The claim query splits the kind list on commas. */
	return strchr(kind, ',') == NULL;
}

static bool
in_transaction(struct dp_db *db)
{
	PGTransactionStatusType	 st = PQtransactionStatus(dp_db_conn(db));

	return st == PQTRANS_INTRANS || st == PQTRANS_INERROR ||
	    st == PQTRANS_ACTIVE;
}

int
dp_job_enqueue(struct dp_db *db, const char *kind, const char *payload_json,
    int64_t delay_seconds)
{
	const char	*params[4];
	char		 delay[32], attempts[16];
	PGresult	*r = NULL;
	bool		 txn;
	int		 rc = -1;

	if (!kind_ok(kind)) {
		dp_error("job enqueue: invalid kind");
		goto out;
	}
	if (payload_json == NULL)
		payload_json = "{}";
	if (strlen(payload_json) > DP_JOB_PAYLOAD_MAX) {
		dp_error("job enqueue: %s payload too large", kind);
		goto out;
	}
	if (delay_seconds < 0)
		delay_seconds = 0;
	if (delay_seconds > DELAY_MAX)
		delay_seconds = DELAY_MAX;
	(void)snprintf(delay, sizeof(delay), "%" PRId64, delay_seconds);

	txn = in_transaction(db);
	params[0] = kind;
	params[1] = payload_json;
	params[2] = delay;
	(void)snprintf(attempts, sizeof(attempts), "%d",
	    strcmp(kind, "mail") == 0 ? MAIL_ATTEMPTS : JOB_ATTEMPTS);
	params[3] = attempts;
	r = dp_db_exec(db, sql_enqueue, 4, params);
	if (!dp_db_ok(r))
		goto out;
	if (PQntuples(r) != 1) {
		dp_error("job enqueue: %s payload is not a JSON object", kind);
		goto out;
	}
	PQclear(r);
	r = dp_db_exec(db, sql_notify, 1, params);
	if (!dp_db_ok(r)) {
		/*
		 * Inside a transaction the failure aborted it: the job is
		 * not queued.  Outside, the job is committed and a worker
		 * finds it at its next poll.
		 */
		if (txn)
			goto out;
		dp_warn("job enqueue: NOTIFY failed; %s job waits for a poll",
		    kind);
	}
	rc = 0;
out:
	PQclear(r);
	return rc;
}

int
dp_job_enqueue_mail(struct dp_db *db, const char *to, const char *subject,
    const char *body)
{
	json_object	*o;
	unsigned char	 rnd[16];
	char		 mid[sizeof(rnd) * 2 + 1];
	int		 rc = -1;

	o = json_object_new_object();
	if (to == NULL || subject == NULL || body == NULL) {
		dp_error("job enqueue: mail without to, subject or body");
		goto out;
	}
	dp_random(rnd, sizeof(rnd));
	dp_hex(mid, rnd, sizeof(rnd));
	json_object_object_add(o, "to", json_object_new_string(to));
	json_object_object_add(o, "subject", json_object_new_string(subject));
	json_object_object_add(o, "body", json_object_new_string(body));
	json_object_object_add(o, "message_id", json_object_new_string(mid));
	rc = dp_job_enqueue(db, "mail",
	    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0);
out:
	json_object_put(o);
	return rc;
}

/* Keep printable ASCII only: last_error must be valid UTF-8 for PostgreSQL. */
static void
clean_error(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			*s = '?';
}

/* Comma-joined kind names for the claim query; NULL when there are none. */
static char *
kind_list(const struct dp_job_kind *kinds, size_t n)
{
	struct dp_buf	 b = { 0 };
	size_t		 i;

	for (i = 0; i < n; i++) {
		if (!kind_ok(kinds[i].kind) || kinds[i].run == NULL)
			continue;
		if (b.len > 0)
			dp_buf_addc(&b, ',');
		dp_buf_adds(&b, kinds[i].kind);
	}
	if (b.len == 0) {
		dp_buf_release(&b);
		return NULL;
	}
	return dp_buf_detach(&b);
}

static const struct dp_job_kind *
find_kind(const struct dp_job_kind *kinds, size_t n, const char *kind)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (kinds[i].kind != NULL && kinds[i].run != NULL &&
		    strcmp(kinds[i].kind, kind) == 0)
			return &kinds[i];
	return NULL;
}

/* Record the outcome of a job that ran; 0 or -1 on a database error. */
static int
record(struct dp_db *db, const char *id, const char *kind, const char *wid,
    int attempts, int max_attempts, int hrc, const char *errmsg,
    int64_t ms)
{
	const char	*params[4];
	PGresult	*r = NULL;
	int		 rc = -1;

	params[0] = id;
	params[1] = wid;
	if (hrc == DP_JOB_OK) {
		r = dp_db_exec(db, sql_done, 2, params);
		if (!dp_db_ok(r))
			goto out;
		if (strcmp(PQcmdTuples(r), "1") != 0)
			dp_warn("job %s id=%s: done in %" PRId64 " ms, but the "
			    "job was taken from this worker meanwhile",
			    kind, id, ms);
		else
			dp_info("job %s id=%s attempt %d/%d: done in %"
			    PRId64 " ms", kind, id, attempts, max_attempts, ms);
		rc = 0;
		goto out;
	}
	params[2] = errmsg;
	params[3] = hrc == DP_JOB_PERMANENT ? "true" : "false";
	r = dp_db_exec(db, sql_fail, 4, params);
	if (!dp_db_ok(r))
		goto out;
	if (PQntuples(r) != 1)
		dp_warn("job %s id=%s: error after %" PRId64 " ms, but the job "
		    "was taken from this worker meanwhile: %s", kind, id, ms,
		    errmsg);
	else if (strcmp(PQgetvalue(r, 0, 0), "failed") == 0)
		dp_error("job %s id=%s attempt %d/%d: failed%s after %" PRId64
		    " ms: %s", kind, id, attempts, max_attempts,
		    hrc == DP_JOB_PERMANENT ? " permanently" : "", ms, errmsg);
	else
		dp_warn("job %s id=%s attempt %d/%d: error after %" PRId64
		    " ms, retry in %s s: %s", kind, id, attempts, max_attempts,
		    ms, PQgetvalue(r, 0, 1), errmsg);
	rc = 0;
out:
	PQclear(r);
	return rc;
}

int
dp_jobs_claim_and_run(struct dp_db *db, const struct dp_job_kind *kinds,
    size_t n, const char *worker_id)
{
	const struct dp_job_kind	*k;
	const char	*params[2];
	struct dp_err	 err;
	PGresult	*r = NULL;
	char		*list = NULL, *id = NULL, *kind = NULL, *payload = NULL;
	int64_t		 t0, attempts, max_attempts;
	int		 hrc, rc = -1;

	if (in_transaction(db)) {
		dp_error("jobs: claim called inside a transaction");
		goto out;
	}
	if ((list = kind_list(kinds, n)) == NULL) {
		rc = 0;
		goto out;
	}
	params[0] = worker_id;
	params[1] = list;
	r = dp_db_exec(db, sql_claim, 2, params);
	if (!dp_db_ok(r))
		goto out;
	if (PQntuples(r) == 0) {
		rc = 0;
		goto out;
	}
	id = dp_xstrdup(PQgetvalue(r, 0, 0));
	kind = dp_xstrdup(PQgetvalue(r, 0, 1));
	payload = dp_xstrdup(PQgetvalue(r, 0, 2));
	if (dp_parse_int64(PQgetvalue(r, 0, 3), 0, INT32_MAX, &attempts) == -1)
		attempts = 0;
	if (dp_parse_int64(PQgetvalue(r, 0, 4), 0, INT32_MAX,
	    &max_attempts) == -1)
		max_attempts = 0;
	PQclear(r);
	r = NULL;

	memset(&err, 0, sizeof(err));
	t0 = dp_mono_ms();
	/* The claim query only returns kinds from the table. */
	if ((k = find_kind(kinds, n, kind)) == NULL) {
		hrc = DP_JOB_PERMANENT;
		dp_err_set(&err, 0, "no handler for this kind");
	} else
		hrc = k->run(db, payload, &err);
	if (in_transaction(db))
		dp_db_rollback(db);
	if (hrc != DP_JOB_OK && hrc != DP_JOB_PERMANENT)
		hrc = DP_JOB_RETRY;
	if (hrc != DP_JOB_OK && err.msg[0] == '\0')
		dp_err_set(&err, 0, "handler failed without a reason");
	clean_error(err.msg);
	if (record(db, id, kind, worker_id, (int)attempts, (int)max_attempts,
	    hrc, err.msg, dp_mono_ms() - t0) == -1)
		goto out;
	rc = 1;
out:
	if (payload != NULL) {
		explicit_bzero(payload, strlen(payload));
		free(payload);
	}
	free(id);
	free(kind);
	free(list);
	PQclear(r);
	return rc;
}

int
dp_jobs_recover(struct dp_db *db, int stale_seconds)
{
	const char	*params[1];
	char		 secs[32];
	PGresult	*r;
	int64_t		 n;
	int		 rc = -1;

	if (stale_seconds < 0)
		stale_seconds = 0;
	(void)snprintf(secs, sizeof(secs), "%d", stale_seconds);
	params[0] = secs;
	r = dp_db_exec(db, sql_recover, 1, params);
	if (!dp_db_ok(r))
		goto out;
	if (dp_parse_int64(PQcmdTuples(r), 0, INT32_MAX, &n) == -1)
		n = 0;
	if (n > 0)
		dp_warn("jobs: requeued %" PRId64 " job(s) of lost workers", n);
	rc = (int)n;
out:
	PQclear(r);
	return rc;
}

int
dp_jobs_purge(struct dp_db *db, const struct dp_config *cfg)
{
	const char	*args[3], *p[1];
	char		 ttl[32], days[32];
	PGresult	*r = NULL;
	int64_t		 n, total = 0;
	size_t		 i;
	int		 rc = -1;

	(void)snprintf(ttl, sizeof(ttl), "%" PRId64,
	    cfg->auth_refresh_ttl > 0 ? cfg->auth_refresh_ttl : 0);
	(void)snprintf(days, sizeof(days), "%" PRId64,
	    cfg->limits_session_retention_days > 0 ?
	    cfg->limits_session_retention_days : 30);
	args[P_NONE] = NULL;
	args[P_REFRESH_TTL] = ttl;
	args[P_SESSION_DAYS] = days;
	for (i = 0; i < DP_NITEMS(sql_purge); i++) {
		p[0] = args[sql_purge[i].arg];
		r = dp_db_exec(db, sql_purge[i].sql,
		    sql_purge[i].arg != P_NONE ? 1 : 0, p);
		if (!dp_db_ok(r))
			goto out;
		if (dp_parse_int64(PQcmdTuples(r), 0, INT32_MAX, &n) == 0)
			total += n;
		PQclear(r);
		r = NULL;
	}
	if (total > 0)
		dp_info("jobs: retention purge deleted %" PRId64 " row(s)",
		    total);
	rc = total > INT32_MAX ? INT32_MAX : (int)total;
out:
	PQclear(r);
	return rc;
}

/* The string member key of o, or NULL when absent or not a string. */
static const char *
member_string(json_object *o, const char *key)
{
	json_object	*v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

int
dp_job_mail(struct dp_db *db, const char *payload_json, struct dp_err *err)
{
	struct json_tokener	*tok = NULL;
	struct dp_buf	 msg = { 0 };
	json_object	*o = NULL;
	const char	*to, *subject, *body;
	size_t		 len = strlen(payload_json);
	int		 rc = DP_JOB_PERMANENT;

	(void)db;
	if (len > DP_JOB_PAYLOAD_MAX) {
		dp_err_set(err, 0, "mail payload too large");
		goto out;
	}
	tok = json_tokener_new_ex(MAIL_DEPTH);
	if (tok == NULL) {
		dp_err_set(err, 0, "out of memory");
		rc = DP_JOB_RETRY;
		goto out;
	}
	o = json_tokener_parse_ex(tok, payload_json, (int)len);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(o, json_type_object)) {
		dp_err_set(err, 0, "mail payload is not a JSON object");
		goto out;
	}
	to = member_string(o, "to");
	subject = member_string(o, "subject");
	body = member_string(o, "body");
	if (to == NULL || subject == NULL || body == NULL || *to == '\0') {
		dp_err_set(err, 0, "mail payload needs string to, subject "
		    "and body");
		goto out;
	}
	if (dp_mail_compose_id(&msg, dp_cfg.mail_from, to, subject, body,
	    member_string(o, "message_id"), err) == -1)
		goto out;
	switch (dp_mail_deliver(&dp_cfg, to, &msg, err)) {
	case 0:
		break;
	case DP_MAIL_REFUSED:
		goto out;		/* permanent */
	default:
		rc = DP_JOB_RETRY;
		goto out;
	}
	rc = DP_JOB_OK;
out:
	dp_buf_wipe(&msg);
	json_object_put(o);
	if (tok != NULL)
		json_tokener_free(tok);
	return rc;
}
