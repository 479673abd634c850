/* lib/lifecycle.c: the worker's side of environments: jobs and the reconcile loop */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "driver.h"
#include "envs.h"
#include "http.h"
#include "jobs.h"
#include "lifecycle.h"
#include "log.h"
#include "util.h"
#include "wsapp.h"

/*
 * dp_driver_get refers to the drivers weakly; a strong reference here
 * links the local driver into every program that runs lifecycle jobs.
 * The kubernetes driver joins this list when lib/driver_k8s.c exists.
 */
const struct dp_driver *const dp_lifecycle_drivers[] = {
	&dp_driver_local,
};

#define STATUS_EVERY_MS		10000
#define PURGE_EVERY_MS		60000
#define STATUS_BATCH		2000	/* running environments a pass */
#define WS_CHECK_EVERY_MS	60000
/* Seconds after becoming running before the first metric sample: the
 * driver measures cpu between two calls, primed at the transition. */
#define FIRST_SAMPLE_S		"3"
#define BATCH			500

enum op {
	OP_PROVISION,
	OP_START,
	OP_RESTART,
	OP_STOP,
	OP_DESTROY,
};

static const char *const op_kinds[] = {
	"env.provision",	/* OP_PROVISION */
	"env.start",		/* OP_START */
	"env.restart",		/* OP_RESTART */
	"env.stop",		/* OP_STOP */
	"env.destroy",		/* OP_DESTROY */
};

/* ---- small helpers -------------------------------------------------------- */

/*
 * Environments whose driver just failed a reconcile call (cluster
 * unreachable, say) are left alone for a while: one warning a minute,
 * not one every pass.  A small table is enough; when full, the oldest
 * entry goes.
 */
#define QUIET_MS	60000
#define QUIET_MAX	256
static struct {
	char	 id[25];
	int64_t	 until;
} quiet[QUIET_MAX];

static bool
is_quiet(const char *id)
{
	int64_t	 now = dp_mono_ms();
	size_t	 i;

	for (i = 0; i < QUIET_MAX; i++)
		if (quiet[i].until > now && strcmp(quiet[i].id, id) == 0)
			return true;
	return false;
}

static void
set_quiet(const char *id)
{
	size_t	 i, old = 0;

	for (i = 0; i < QUIET_MAX; i++) {
		if (strcmp(quiet[i].id, id) == 0 || quiet[i].until == 0) {
			old = i;
			break;
		}
		if (quiet[i].until < quiet[old].until)
			old = i;
	}
	(void)snprintf(quiet[old].id, sizeof(quiet[old].id), "%s", id);
	quiet[old].until = dp_mono_ms() + QUIET_MS;
}

static int64_t
val_int(const PGresult *r, int row, int c)
{
	const char	*s = dp_db_val(r, row, c);
	int64_t		 v = 0;

	if (s == NULL || dp_parse_int64(s, INT64_MIN, INT64_MAX, &v) < 0)
		v = 0;
	return v;
}

/* Ids of the first column of sql (no parameters or one). */
static PGresult *
pick(struct dp_db *db, const char *sql, int n, const char *const *p)
{
	PGresult	*r = dp_db_exec(db, sql, n, p);

	if (!dp_db_ok(r)) {
		PQclear(r);
		r = NULL;
	}
	return r;
}

static const char *
num(char *buf, size_t n, int64_t v)
{
	(void)snprintf(buf, n, "%" PRId64, v);
	return buf;
}

/* ---- jobs ----------------------------------------------------------------- */

static int
parse_payload(const char *payload, char id[25], int64_t *gen)
{
	struct json_object	*o, *v;
	int			 rc = -1;

	o = payload != NULL ? json_tokener_parse(payload) : NULL;
	if (o == NULL || !json_object_is_type(o, json_type_object))
		goto out;
	if (!json_object_object_get_ex(o, "id", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !dp_is_id(json_object_get_string(v)))
		goto out;
	memcpy(id, json_object_get_string(v), 25);
	if (!json_object_object_get_ex(o, "generation", &v) ||
	    !json_object_is_type(v, json_type_int))
		goto out;
	*gen = json_object_get_int64(v);
	rc = 0;
out:
	json_object_put(o);
	return rc;
}

/* True when the running job of kind for (id, gen) is on its last attempt. */
static bool
last_attempt(struct dp_db *db, const char *kind, const char *id, int64_t gen)
{
	static const char sql[] =
	    "SELECT attempts >= max_attempts FROM jobs WHERE state = 'running' "
	    "AND kind = $1 AND payload->>'id' = $2 "
	    "AND payload->>'generation' = $3 ORDER BY id DESC LIMIT 1";
	char		 g[32];
	PGresult	*r;
	bool		 last;

	r = dp_db_exec(db, sql, 3, (const char *const[]){ kind, id,
	    num(g, sizeof(g), gen) });
	last = dp_db_ok(r) && PQntuples(r) == 1 &&
	    strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return last;
}

/*
 * The environment failed to provision on the last attempt: error status
 * (if it is still at gen and creating), a system log entry, compute
 * released.  Best effort: failures are logged.
 */
static void
provision_failed(struct dp_db *db, struct dp_env_ctx *ctx, int64_t gen)
{
	static const char sql[] =
	    "UPDATE environments SET status = 'error', "
	    "generation = generation + 1, running_since = NULL, "
	    "updated_at = now() WHERE id = $1 AND generation = $2 "
	    "AND status = 'creating' RETURNING 1";
	struct dp_err	 err = { 0 };
	PGresult	*r;
	char		 g[32];
	int		 ok;

	if (dp_db_begin(db) < 0)
		return;
	/* The entry only with the change (the row then locked, as every
	 * writer of log entries holds it: they commit in id order, which
	 * ws/logs's cursor relies on). */
	r = dp_db_exec(db, sql, 2, (const char *const[]){ ctx->spec.id,
	    num(g, sizeof(g), gen) });
	ok = dp_db_ok(r) && PQntuples(r) == 1 &&
	    dp_env_log(db, ctx->spec.id, "error", "system",
	    "Provisioning failed") == 0 && dp_db_commit(db) == 0;
	PQclear(r);
	if (!ok)
		dp_db_rollback(db);
	if (ctx->drv != NULL && ctx->drv->stop(&ctx->conn, &ctx->spec,
	    &err) < 0)
		dp_warn("environment %s: releasing compute after a failed "
		    "provision: %s", ctx->spec.id, err.msg);
}

/* Compute up: creating → installing for the generation the job had. */
static int
now_installing(struct dp_db *db, const char *id, int64_t gen)
{
	static const char sql[] =
	    "UPDATE environments SET status = 'installing', "
	    "generation = generation + 1, install_started_at = now(), "
	    "install_log_offset = 0, installation_completed = false, "
	    "install_warnings = 0, updated_at = now() "
	    "WHERE id = $1 AND generation = $2 AND status = 'creating'";
	PGresult	*r;
	char		 g[32];
	int		 rc = -1;

	if (dp_db_begin(db) < 0)
		return -1;
	r = dp_db_exec(db, sql, 2, (const char *const[]){ id,
	    num(g, sizeof(g), gen) });
	if (!dp_db_ok(r))
		goto out;
	if (strcmp(PQcmdTuples(r), "1") == 0 &&
	    dp_env_log(db, id, "info", "system",
	    "Compute allocated; running the startup commands") < 0)
		goto out;
	if (dp_db_commit(db) < 0)
		goto out;
	rc = 0;
out:
	PQclear(r);
	dp_db_rollback(db);
	return rc;
}

/* The driver call of op; 0 or -1 with err. */
static int
drive(struct dp_env_ctx *ctx, enum op op, struct dp_err *err)
{
	const struct dp_driver	*d = ctx->drv;
	enum dp_phase		 ph = DP_PHASE_ABSENT;
	int			 rc = -1;

	switch (op) {
	case OP_PROVISION:
		rc = d->provision(&ctx->conn, &ctx->spec, err);
		break;
	case OP_START:
	case OP_RESTART:
		if (d->status(&ctx->conn, &ctx->spec, &ph, err) < 0)
			break;
		/*
		 * Drivers treat a start of running compute as done (a
		 * retried job): a new start must not inherit the old
		 * install, so compute still up is released first.
		 */
		if ((op == OP_RESTART || ph == DP_PHASE_RUNNING ||
		    ph == DP_PHASE_STARTING || ph == DP_PHASE_FAILED) &&
		    ph != DP_PHASE_ABSENT &&
		    d->stop(&ctx->conn, &ctx->spec, err) < 0)
			break;
		rc = ph == DP_PHASE_ABSENT ?
		    d->provision(&ctx->conn, &ctx->spec, err) :
		    d->start(&ctx->conn, &ctx->spec, err);
		break;
	case OP_STOP:
		rc = d->stop(&ctx->conn, &ctx->spec, err);
		break;
	case OP_DESTROY:
		rc = d->destroy(&ctx->conn, &ctx->spec, err);
		break;
	}
	return rc;
}

/* The advisory lock key of environment $1's jobs. */
#define ENV_LOCK_KEY_OF(p) "hashtextextended('devpocket-env:' || " p ", 0)"
#define ENV_LOCK_KEY	ENV_LOCK_KEY_OF("$1")

bool
dp_env_lock_held(struct dp_db *db, const char *id)
{
	/* A bigint key is classid (high half) and objid, objsubid 1. */
	static const char held[] =
	    "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
	    "AND pid = pg_backend_pid() AND granted AND objsubid = 1 AND "
	    "(classid::bigint << 32 | objid::bigint) = " ENV_LOCK_KEY ")";
	PGresult	*r;
	bool		 yes;

	r = dp_db_exec(db, held, 1, (const char *const[]){ id });
	yes = dp_db_ok(r) && PQntuples(r) == 1 &&
	    PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return yes;
}

static int
env_job(struct dp_db *db, const char *payload, enum op op, struct dp_err *err)
{
	static const char lock[] = "SELECT pg_advisory_lock(" ENV_LOCK_KEY ")";
	static const char unlock[] =
	    "SELECT pg_advisory_unlock(" ENV_LOCK_KEY ")";
	struct dp_env_ctx	 ctx;
	struct dp_err		 derr = { 0 };
	char			 id[25];
	int64_t			 gen;
	bool			 locked = false, prov;
	int			 rc = DP_JOB_RETRY, found, r;

	memset(&ctx, 0, sizeof(ctx));
	prov = op == OP_PROVISION || op == OP_START || op == OP_RESTART;
	if (parse_payload(payload, id, &gen) < 0) {
		dp_err_set(err, 0, "malformed payload");
		rc = DP_JOB_PERMANENT;
		goto out;
	}
	if (dp_db_run(db, lock, 1, (const char *const[]){ id }) < 0) {
		dp_err_set(err, 0, "database error taking the environment lock");
		goto out;
	}
	locked = true;
	if ((found = dp_env_ctx_load(db, id, &ctx, err)) < 0)
		goto out;
	if (found == 0) {
		rc = DP_JOB_OK;		/* purged: nothing left to do */
		goto out;
	}
	if (op != OP_DESTROY && (ctx.generation != gen ||
	    (prov && ctx.status != DP_ENV_CREATING))) {
		dp_info("%s %s: generation %" PRId64 " overtaken by %" PRId64
		    " (%s); nothing to do", op_kinds[op], id, gen,
		    ctx.generation, ctx.status >= 0 ?
		    dp_env_status_names[ctx.status] : "?");
		rc = DP_JOB_OK;
		goto out;
	}
	if (ctx.drv == NULL) {
		dp_err_set(err, 0, "no driver for provider %s",
		    ctx.conn.provider ? ctx.conn.provider : "(null)");
		if (prov)
			provision_failed(db, &ctx, gen);
		rc = DP_JOB_PERMANENT;
		goto out;
	}
	r = drive(&ctx, op, &derr);
	/* A connection lost while the driver worked took the lock with it:
	 * another worker may be at this environment now.  Write nothing;
	 * the job runs again under the lock. */
	if (!dp_env_lock_held(db, id)) {
		/* (The unlock stays: should the lock be held after all, a
		 * failed question must not leave it.) */
		dp_err_set(err, 0, "the environment lock was lost (database "
		    "connection dropped) during the driver's work");
		goto out;
	}
	if (r < 0) {
		dp_err_set(err, derr.code, "driver %s: %s", ctx.drv->name,
		    derr.msg);
		if (prov && last_attempt(db, op_kinds[op], id, gen))
			provision_failed(db, &ctx, gen);
		goto out;
	}
	if (prov && now_installing(db, id, gen) < 0) {
		dp_err_set(err, 0, "database error recording the install");
		goto out;
	}
	rc = DP_JOB_OK;
out:
	if (locked)
		(void)dp_db_run(db, unlock, 1, (const char *const[]){ id });
	dp_env_ctx_release(&ctx);
	return rc;
}

int
dp_job_env_provision(struct dp_db *db, const char *p, struct dp_err *err)
{
	return env_job(db, p, OP_PROVISION, err);
}

int
dp_job_env_start(struct dp_db *db, const char *p, struct dp_err *err)
{
	return env_job(db, p, OP_START, err);
}

int
dp_job_env_restart(struct dp_db *db, const char *p, struct dp_err *err)
{
	return env_job(db, p, OP_RESTART, err);
}

int
dp_job_env_stop(struct dp_db *db, const char *p, struct dp_err *err)
{
	return env_job(db, p, OP_STOP, err);
}

int
dp_job_env_destroy(struct dp_db *db, const char *p, struct dp_err *err)
{
	return env_job(db, p, OP_DESTROY, err);
}

/* ---- install log ------------------------------------------------------- */

static void
add_entry(struct json_object *a, const char *level, const char *msg,
    size_t len)
{
	struct json_object	*e;
	struct dp_buf		 clean = { 0 };
	const char		*p;
	size_t			 left, n;

	dp_env_clean_text(&clean, msg, len);
	p = clean.s != NULL ? clean.s : "";
	left = clean.len;
	do {
		n = dp_env_prefix_chars(p, left, DP_ENV_LOG_CHARS);
		e = json_object_new_array();
		json_object_array_add(e, json_object_new_string(level));
		json_object_array_add(e, json_object_new_string_len(p, (int)n));
		json_object_array_add(a, e);
		p += n;
		left -= n;
	} while (left > 0);
	dp_buf_release(&clean);
}

/* "<digits>" at s into *v; the rest after one space into *rest. */
static bool
marker_num(const char *s, size_t len, int64_t *v, const char **rest,
    size_t *rlen)
{
	char	 nb[24];
	size_t	 i = 0;

	while (i < len && i < sizeof(nb) - 1 && s[i] >= '0' && s[i] <= '9') {
		nb[i] = s[i];
		i++;
	}
	nb[i] = '\0';
	if (i == 0 || dp_parse_int64(nb, 0, INT64_MAX, v) < 0)
		return false;
	if (i < len && s[i] == ' ')
		i++;
	*rest = s + i;
	*rlen = len - i;
	return true;
}

static void
parse_marker(const char *m, size_t len, struct json_object *a,
    int64_t *done, char **fail)
{
	struct dp_buf	 b = { 0 };
	const char	*rest;
	size_t		 rlen;
	int64_t		 v;

	if (len >= 5 && memcmp(m, "step ", 5) == 0) {
		dp_buf_adds(&b, "Running step ");
		/* "<i>/<n> <command>" */
		rest = memchr(m + 5, ' ', len - 5);
		if (rest == NULL)
			rest = m + len;
		dp_buf_add(&b, m + 5, (size_t)(rest - (m + 5)));
		dp_buf_adds(&b, ": ");
		if (rest < m + len)
			dp_buf_add(&b, rest + 1, (size_t)(m + len - rest - 1));
		add_entry(a, "info", b.s, b.len);
	} else if (len >= 5 && memcmp(m, "warn ", 5) == 0 &&
	    marker_num(m + 5, len - 5, &v, &rest, &rlen)) {
		dp_buf_printf(&b, "Command failed (exit %" PRId64 "): ", v);
		dp_buf_add(&b, rest, rlen);
		add_entry(a, "warning", b.s, b.len);
	} else if (len >= 4 && memcmp(m, "done", 4) == 0) {
		if (len < 6 || !marker_num(m + 5, len - 5, &v, &rest, &rlen))
			v = 0;
		if (*done < 0)
			*done = v;
	} else if (len >= 4 && memcmp(m, "fail", 4) == 0) {
		if (*fail == NULL) {
			dp_buf_reset(&b);
			dp_env_clean_text(&b, len > 5 ? m + 5 : "",
			    len > 5 ? len - 5 : 0);
			*fail = dp_xstrndup(b.s != NULL ? b.s : "",
			    dp_env_prefix_chars(b.s != NULL ? b.s : "",
			    b.len, 1000));
		}
	}
	/* "begin <n>" and unknown markers carry nothing for the log. */
	dp_buf_release(&b);
}

void
dp_lifecycle_parse_log(const char *buf, size_t len, struct json_object *a,
    int64_t *done, char **fail)
{
	const char	*p = buf, *end = buf + len, *nl;
	size_t		 n, ml = strlen(DP_MARK);

	*done = -1;
	*fail = NULL;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		n = nl != NULL ? (size_t)(nl - p) : (size_t)(end - p);
		if (n > 0 && p[n - 1] == '\r')
			n--;
		if (n >= ml && memcmp(p, DP_MARK, ml) == 0)
			parse_marker(p + ml, n - ml, a, done, fail);
		else if (n > 0 && *done < 0 && *fail == NULL)
			add_entry(a, "info", p, n);
		p = nl != NULL ? nl + 1 : end;
	}
}

/* Prime the driver's cpu measurement so the first sample has a delta. */
static void
prime_metrics(struct dp_db *db, const char *id)
{
	struct dp_env_ctx	 ctx;
	struct dp_sample	 s;
	struct dp_err		 err = { 0 };

	if (dp_env_ctx_load(db, id, &ctx, &err) == 1 && ctx.drv != NULL &&
	    ctx.drv->metrics != NULL)
		(void)ctx.drv->metrics(&ctx.conn, &ctx.spec, &s, &err);
	dp_env_ctx_release(&ctx);
}

/*
 * One installing environment: copy its log, move its status.  As in
 * status_step, the row is not locked during the driver's call (a pod log
 * from a hung API server: 30 s), the environment's job lock is; the row
 * is locked afterwards, and only if it is still where it was read.
 */
static void
install_step(struct dp_db *db, const char *id)
{
	static const char lock[] =
	    "SELECT install_log_offset, install_started_at < now() - "
	    "$2::double precision * interval '1 second', generation "
	    "FROM environments WHERE id = $1 AND status = 'installing' AND "
	    "pg_try_advisory_xact_lock(" ENV_LOCK_KEY ")";
	static const char still[] =
	    "SELECT 1 FROM environments WHERE id = $1 AND "
	    "status = 'installing' AND generation = $2::bigint AND "
	    "install_log_offset = $3::bigint FOR UPDATE";
	static const char ins[] =
	    "INSERT INTO environment_logs (environment_id, level, message, "
	    "source) SELECT $1, x->>0, x->>1, 'install' FROM "
	    "jsonb_array_elements($2::jsonb) WITH ORDINALITY AS a(x, n) "
	    "ORDER BY n";
	static const char running[] =
	    "UPDATE environments SET status = 'running', "
	    "installation_completed = true, running_since = now(), "
	    "install_warnings = $3, install_log_offset = $2, "
	    "generation = generation + 1, updated_at = now() WHERE id = $1";
	static const char failed[] =
	    "UPDATE environments SET status = 'error', install_log_offset = $2, "
	    "generation = generation + 1, running_since = NULL, "
	    "updated_at = now() WHERE id = $1 RETURNING generation";
	static const char offset[] =
	    "UPDATE environments SET install_log_offset = $2 WHERE id = $1";
	struct dp_env_ctx	 ctx;
	struct dp_err		 err = { 0 };
	struct dp_buf		 log = { 0 };
	struct json_object	*a = NULL;
	PGresult		*r = NULL;
	const char		*why = NULL;
	char			*fail = NULL, tmo[32], nx[32], w[32], gen[32];
	char			 of[32];
	int64_t			 off, next, done = -1;
	bool			 timed_out, ok = false, now_running = false;

	memset(&ctx, 0, sizeof(ctx));
	if (dp_db_begin(db) < 0)
		goto out;
	r = dp_db_exec(db, lock, 2, (const char *const[]){ id,
	    num(tmo, sizeof(tmo), dp_cfg.limits_install_timeout) });
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	off = val_int(r, 0, 0);
	timed_out = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
	(void)snprintf(gen, sizeof(gen), "%s", PQgetvalue(r, 0, 2));
	PQclear(r);
	r = NULL;
	next = off;
	if (dp_env_ctx_load(db, id, &ctx, &err) != 1 || ctx.drv == NULL) {
		/* Its cluster unreadable, say: no log, but the timeout
		 * still ends the install (once a minute a warning). */
		dp_warn("environment %s: cannot load for its install log: %s",
		    id, err.msg[0] ? err.msg : "no driver");
		set_quiet(id);
		if (!timed_out)
			goto out;
	} else if (ctx.drv->install_log(&ctx.conn, &ctx.spec, off, &log, &next,
	    &err) < 0) {
		dp_warn("environment %s: install log: %s", id, err.msg);
		set_quiet(id);
		if (!timed_out)
			goto out;
		next = off;
		dp_buf_reset(&log);
	}
	/* A user's stop or delete meanwhile: its change stands. */
	r = dp_db_exec(db, still, 3, (const char *const[]){ id, gen,
	    num(of, sizeof(of), off) });
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	PQclear(r);
	r = NULL;
	a = json_object_new_array();
	dp_lifecycle_parse_log(log.s != NULL ? log.s : "", log.len, a, &done,
	    &fail);
	if (json_object_array_length(a) > 0 &&
	    dp_db_run(db, ins, 2, (const char *const[]){ id,
	    json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN) }) < 0)
		goto out;
	num(nx, sizeof(nx), next);
	if (done >= 0) {
		if (dp_db_run(db, running, 3, (const char *const[]){ id, nx,
		    num(w, sizeof(w), done > INT32_MAX ? INT32_MAX : done) })
		    < 0 || dp_env_log(db, id, "info", "system",
		    "Environment is running") < 0)
			goto out;
		now_running = true;
	} else if (fail != NULL || timed_out) {
		r = dp_db_exec(db, failed, 2, (const char *const[]){ id, nx });
		if (!dp_db_ok(r) || PQntuples(r) != 1)
			goto out;
		why = fail != NULL ? dp_arena_printf(&ctx.arena,
		    "Installation failed: %s", fail) : "Installation timed out";
		if (dp_env_log(db, id, "error", "system", why) < 0 ||
		    dp_env_enqueue(db, "env.stop", id, val_int(r, 0, 0)) < 0)
			goto out;
	} else if (next != off &&
	    dp_db_run(db, offset, 2, (const char *const[]){ id, nx }) < 0)
		goto out;
	if (dp_db_commit(db) < 0)
		goto out;
	ok = true;
	if (now_running)
		prime_metrics(db, id);
out:
	if (!ok)
		dp_db_rollback(db);
	json_object_put(a);
	free(fail);
	dp_buf_release(&log);
	PQclear(r);
	dp_env_ctx_release(&ctx);
}

/* ---- running environments ------------------------------------------------- */

/*
 * Running and the driver says the compute is gone (failed, absent, or
 * stopped by something else than us: an operator's scale to 0; our stop
 * leaves running first): error.
 */
static void
status_step(struct dp_db *db, const char *id)
{
	/*
	 * The driver's call may take long (a hung API server: 30 s): the
	 * row is not locked meanwhile (a user's stop or delete would wait
	 * on it), the environment's job lock is, and the change is made
	 * only if the row is still at the generation that was asked about.
	 */
	static const char lock[] =
	    "SELECT generation FROM environments WHERE id = $1 AND "
	    "status = 'running' AND pg_try_advisory_xact_lock(" ENV_LOCK_KEY
	    ")";
	static const char lost[] =
	    "UPDATE environments SET status = 'error', "
	    "generation = generation + 1, running_since = NULL, "
	    "updated_at = now() WHERE id = $1 AND status = 'running' AND "
	    "generation = $2 RETURNING generation";
	struct dp_env_ctx	 ctx;
	struct dp_err		 err = { 0 };
	enum dp_phase		 ph;
	PGresult		*r = NULL;
	char			 gen[32];
	bool			 ok = false;

	memset(&ctx, 0, sizeof(ctx));
	if (dp_db_begin(db) < 0)
		goto out;
	r = dp_db_exec(db, lock, 1, (const char *const[]){ id });
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	(void)snprintf(gen, sizeof(gen), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	r = NULL;
	if (dp_env_ctx_load(db, id, &ctx, &err) != 1 || ctx.drv == NULL)
		goto out;
	if (ctx.drv->status(&ctx.conn, &ctx.spec, &ph, &err) < 0) {
		dp_warn("environment %s: status: %s", id, err.msg);
		set_quiet(id);
		goto out;
	}
	if (ph == DP_PHASE_FAILED || ph == DP_PHASE_ABSENT ||
	    ph == DP_PHASE_STOPPED) {
		r = dp_db_exec(db, lost, 2, (const char *const[]){ id, gen });
		if (!dp_db_ok(r) || PQntuples(r) != 1 ||
		    dp_env_log(db, id, "error", "system",
		    "Environment compute was lost") < 0 ||
		    dp_env_enqueue(db, "env.stop", id, val_int(r, 0, 0)) < 0)
			goto out;
		dp_warn("environment %s: compute %s; status error", id,
		    dp_phase_names[ph]);
	}
	if (dp_db_commit(db) < 0)
		goto out;
	ok = true;
out:
	if (!ok)
		dp_db_rollback(db);
	PQclear(r);
	dp_env_ctx_release(&ctx);
}

#define SAMPLE_DUE \
	"e.status = 'running' AND e.running_since IS NOT NULL AND " \
	"e.running_since < now() - interval '" FIRST_SAMPLE_S " seconds' " \
	"AND NOT EXISTS (SELECT 1 FROM metric_samples m WHERE " \
	"m.environment_id = e.id AND m.ts > greatest(e.running_since, " \
	"now() - $1::double precision * interval '1 second'))"

static void
sample_step(struct dp_db *db, const char *id, const char *interval)
{
	/* (The row is not locked during the driver's call: status_step.) */
	static const char lock[] =
	    "SELECT 1 FROM environments e WHERE e.id = $2 AND " SAMPLE_DUE
	    " AND pg_try_advisory_xact_lock(" ENV_LOCK_KEY_OF("$2") ")";
	static const char ins[] =
	    "INSERT INTO metric_samples (environment_id, cpu_usage, "
	    "memory_usage, storage_usage, network_rx, network_tx) "
	    "VALUES ($1, $2, $3, $4, $5, $6)";
	struct dp_env_ctx	 ctx;
	struct dp_err		 err = { 0 };
	struct dp_sample	 s;
	PGresult		*r = NULL;
	char			 c[64], m[64], st[32], rx[32], tx[32];
	bool			 ok = false;

	memset(&ctx, 0, sizeof(ctx));
	if (dp_db_begin(db) < 0)
		goto out;
	r = dp_db_exec(db, lock, 2, (const char *const[]){ interval, id });
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	if (dp_env_ctx_load(db, id, &ctx, &err) != 1 || ctx.drv == NULL ||
	    ctx.drv->metrics == NULL)
		goto out;
	memset(&s, 0, sizeof(s));
	if (ctx.drv->metrics(&ctx.conn, &ctx.spec, &s, &err) < 0) {
		dp_warn("environment %s: metrics: %s", id, err.msg);
		set_quiet(id);
		goto out;
	}
	/* Percentages stay finite and non-negative for the JSON. */
	if (!(s.cpu_usage >= 0 && s.cpu_usage < 1e9))
		s.cpu_usage = 0;
	if (!(s.memory_usage >= 0 && s.memory_usage < 1e9))
		s.memory_usage = 0;
	(void)snprintf(c, sizeof(c), "%.4f", s.cpu_usage);
	(void)snprintf(m, sizeof(m), "%.4f", s.memory_usage);
	if (dp_db_run(db, ins, 6, (const char *const[]){ id, c, m,
	    num(st, sizeof(st), s.storage_usage < 0 ? 0 : s.storage_usage),
	    num(rx, sizeof(rx), s.network_rx < 0 ? 0 : s.network_rx),
	    num(tx, sizeof(tx), s.network_tx < 0 ? 0 : s.network_tx) }) < 0 ||
	    dp_db_commit(db) < 0)
		goto out;
	ok = true;
out:
	if (!ok)
		dp_db_rollback(db);
	PQclear(r);
	dp_env_ctx_release(&ctx);
}

/*
 * The "no open terminal socket" condition of §4.4 over ws_connections,
 * whose columns are looked up (the table belongs to the ws programs and
 * may not exist): "" when there is no such table, NULL when the
 * question failed (the pass then waits).
 */
static const char *
ws_predicate(struct dp_db *db)
{
	static const char sql[] =
	    "SELECT column_name FROM information_schema.columns "
	    "WHERE table_schema = current_schema() "
	    "AND table_name = 'ws_connections'";
	static char	 pred[512];
	static int64_t	 checked = -WS_CHECK_EVERY_MS;
	PGresult	*r;
	bool		 env = false, kind = false, closed = false, ended = false;
	const char	*c;
	int		 i;

	if (dp_mono_ms() - checked < WS_CHECK_EVERY_MS)
		return pred;
	r = dp_db_exec(db, sql, 0, NULL);
	if (!dp_db_ok(r)) {
		/* Unknown, not "no table": without the open-terminal test
		 * the pass would stop environments in use. */
		PQclear(r);
		return NULL;
	}
	checked = dp_mono_ms();
	for (i = 0; i < PQntuples(r); i++) {
		c = PQgetvalue(r, i, 0);
		env |= strcmp(c, "environment_id") == 0;
		kind |= strcmp(c, "kind") == 0;
		closed |= strcmp(c, "closed_at") == 0;
		ended |= strcmp(c, "ended_at") == 0;
	}
	PQclear(r);
	pred[0] = '\0';
	if (env)
		(void)snprintf(pred, sizeof(pred), " AND NOT EXISTS (SELECT 1 "
		    "FROM ws_connections w WHERE w.environment_id = e.id%s%s%s)",
		    kind ? " AND w.kind = 'terminal'" : "",
		    closed ? " AND w.closed_at IS NULL" : "",
		    ended ? " AND w.ended_at IS NULL" : "");
	return pred;
}

#define IDLE \
	"e.status = 'running' AND greatest(coalesce(e.last_activity, " \
	"'-infinity'), coalesce(e.running_since, '-infinity')) < now() - " \
	"$1::double precision * interval '1 minute'"

static void
idle_pass(struct dp_db *db)
{
	static struct dp_buf	 q1, q2;
	static char		 last[512] = { 1 };
	const char		*pred = ws_predicate(db), *mins, *id;
	struct dp_buf		 msg = { 0 };
	PGresult		*r = NULL, *u;
	char			 m[32];
	int			 i;

	if (dp_cfg.limits_idle_stop_minutes <= 0 || pred == NULL)
		return;
	/* The statements change only when ws_connections appears. */
	if (strcmp(last, pred) != 0) {
		(void)snprintf(last, sizeof(last), "%s", pred);
		dp_buf_reset(&q1);
		dp_buf_printf(&q1, "SELECT e.id FROM environments e WHERE "
		    IDLE "%s ORDER BY e.id LIMIT %d", pred, BATCH);
		dp_buf_reset(&q2);
		dp_buf_printf(&q2, "UPDATE environments e SET status = "
		    "'stopped', generation = generation + 1, running_since = "
		    "NULL, updated_at = now() WHERE e.id = $2 AND " IDLE "%s "
		    "RETURNING e.generation", pred);
	}
	mins = num(m, sizeof(m), dp_cfg.limits_idle_stop_minutes);
	if ((r = pick(db, q1.s, 1, (const char *const[]){ mins })) == NULL)
		return;
	dp_buf_printf(&msg, "Environment stopped after %s minutes of "
	    "inactivity", mins);
	for (i = 0; i < PQntuples(r); i++) {
		id = PQgetvalue(r, i, 0);
		if (dp_db_begin(db) < 0)
			break;
		u = dp_db_exec(db, q2.s, 2, (const char *const[]){ mins, id });
		if (dp_db_ok(u) && PQntuples(u) == 1 &&
		    (dp_env_log(db, id, "info", "system", msg.s) < 0 ||
		    dp_env_enqueue(db, "env.stop", id, val_int(u, 0, 0)) < 0 ||
		    dp_db_commit(db) < 0))
			dp_warn("environment %s: idle stop failed", id);
		else if (dp_db_ok(u) && PQntuples(u) == 1)
			dp_info("environment %s: stopped after %s idle minutes",
			    id, mins);
		PQclear(u);
		dp_db_rollback(db);
	}
	dp_buf_release(&msg);
	PQclear(r);
}

/* The newest env.destroy job of e is in one of the states of $list. */
#define DESTROY_IN(list) \
	"(SELECT j.state FROM jobs j WHERE j.kind = 'env.destroy' AND " \
	"j.payload->>'id' = e.id ORDER BY j.id DESC LIMIT 1) IN " list
#define PURGEABLE \
	"e.status = 'terminated' AND e.terminated_at < now() - " \
	"$1::double precision * interval '1 hour'"

/*
 * Terminated environments past retention go, with their logs and
 * metrics; not while their destroy runs, nor when it failed for good
 * (the compute and home would be left with nothing to retry from):
 * those get a new destroy each pass until one succeeds.
 */
static int
purge_pass(struct dp_db *db)
{
	static const char envs[] =
	    "DELETE FROM environments e WHERE " PURGEABLE " AND NOT "
	    "coalesce(" DESTROY_IN("('queued', 'running', 'failed')")
	    ", false)";
	static const char retry[] =
	    "SELECT e.id, e.generation FROM environments e WHERE " PURGEABLE
	    " AND " DESTROY_IN("('failed')") " ORDER BY e.id LIMIT 100";
	static const char samples[] =
	    "DELETE FROM metric_samples WHERE ts < now() - interval '8 days'";
	PGresult	*r;
	char		 h[32];
	int		 i, rc = 0;

	num(h, sizeof(h), dp_cfg.limits_terminated_retention_hours);
	r = dp_db_exec(db, retry, 1, (const char *const[]){ h });
	for (i = 0; dp_db_ok(r) && i < PQntuples(r); i++) {
		dp_warn("environment %s: its destroy failed; trying again "
		    "before the purge", PQgetvalue(r, i, 0));
		if (dp_env_enqueue(db, "env.destroy", PQgetvalue(r, i, 0),
		    val_int(r, i, 1)) < 0)
			rc = -1;
	}
	PQclear(r);
	r = dp_db_exec(db, envs, 1, (const char *const[]){ h });
	if (!dp_db_ok(r))
		rc = -1;
	else if (strcmp(PQcmdTuples(r), "0") != 0)
		dp_info("purged %s terminated environment(s)", PQcmdTuples(r));
	PQclear(r);
	if (dp_db_run(db, samples, 0, NULL) < 0)
		rc = -1;
	return rc;
}

/*
 * Compute the API says is released, whose release failed for good: a
 * stopped or error environment whose newest stop or destroy job is a
 * failed stop, a terminated one whose newest is a failed destroy (§4.1:
 * stopped, compute released; §2.4: released asynchronously).  Each gets
 * a new job once its last failed RELEASE_RETRY_MIN minutes ago, until
 * one succeeds (before, nothing ran it again: the StatefulSet or the
 * tmux server stayed up, and idle auto-stop no longer saw it).
 */
#define RELEASE_RETRY_MIN	"10"
static void
release_pass(struct dp_db *db)
{
	/* From the failed jobs (few; the done ones are cleared), not
	 * from every stopped environment. */
	static const char sql[] =
	    "SELECT e.id, e.generation, j.kind FROM jobs j JOIN environments e "
	    "ON e.id = j.payload->>'id' WHERE j.state = 'failed' AND j.kind IN "
	    "('env.stop', 'env.destroy') AND j.updated_at < now() - interval '"
	    RELEASE_RETRY_MIN " minutes' AND ((e.status IN ('stopped', "
	    "'error') AND j.kind = 'env.stop') OR (e.status = 'terminated' AND "
	    "j.kind = 'env.destroy')) AND NOT EXISTS (SELECT 1 FROM jobs k "
	    "WHERE k.kind IN ('env.stop', 'env.destroy') AND "
	    "k.payload->>'id' = e.id AND k.id > j.id) ORDER BY j.id LIMIT 100";
	PGresult	*r;
	int		 i;

	r = dp_db_exec(db, sql, 0, NULL);
	for (i = 0; dp_db_ok(r) && i < PQntuples(r); i++) {
		dp_warn("environment %s: its %s failed; trying again",
		    PQgetvalue(r, i, 0), PQgetvalue(r, i, 2));
		(void)dp_env_enqueue(db, PQgetvalue(r, i, 2),
		    PQgetvalue(r, i, 0), val_int(r, i, 1));
	}
	PQclear(r);
}

/*
 * creating for a minute with no provision, start or restart job left to
 * move it: the job failed for good without the driver saying so (its
 * cluster could not be loaded, the database failed, the worker died on
 * every attempt).  §4.2: provisioning failed → error, with its log
 * entry; compute that may be up is stopped.
 */
static void
stuck_pass(struct dp_db *db)
{
	static const char stuck[] =
	    "UPDATE environments e SET status = 'error', generation = "
	    "generation + 1, running_since = NULL, updated_at = now() "
	    "WHERE e.id IN (SELECT e2.id FROM environments e2 WHERE "
	    "e2.status = 'creating' AND e2.updated_at < now() - "
	    "interval '1 minute' AND NOT EXISTS (SELECT 1 FROM jobs j "
	    "WHERE j.kind IN ('env.provision', 'env.start', 'env.restart') "
	    "AND j.state IN ('queued', 'running') AND j.payload->>'id' = "
	    "e2.id) ORDER BY e2.id LIMIT 100 FOR UPDATE SKIP LOCKED) "
	    "AND e.status = 'creating' RETURNING e.id, e.generation";
	PGresult	*r;
	const char	*id;
	int		 i;
	bool		 ok;

	if (dp_db_begin(db) < 0)
		return;
	r = dp_db_exec(db, stuck, 0, NULL);
	ok = dp_db_ok(r);
	for (i = 0; ok && i < PQntuples(r); i++) {
		id = PQgetvalue(r, i, 0);
		ok = dp_env_log(db, id, "error", "system",
		    "Provisioning failed") == 0 && dp_env_enqueue(db,
		    "env.stop", id, val_int(r, i, 1)) == 0;
		if (ok)
			dp_warn("environment %s: provisioning failed (no job "
			    "left to finish it)", id);
	}
	if (!ok || dp_db_commit(db) < 0)
		dp_db_rollback(db);
	PQclear(r);
}

int
dp_lifecycle_reconcile(struct dp_db *db)
{
	static const char installing[] =
	    "SELECT id FROM environments WHERE status = 'installing' "
	    "ORDER BY updated_at, id LIMIT 500";
	/* 2000 a pass, on from the last one's end (all of them, however
	 * many, in turn). */
	static const char running[] =
	    "SELECT id FROM environments WHERE status = 'running' "
	    "AND id > $1 ORDER BY id LIMIT " DP_XSTR(STATUS_BATCH);
	static char	 after[25];
	static const char due[] =
	    "SELECT e.id FROM environments e WHERE " SAMPLE_DUE
	    " ORDER BY e.id LIMIT 500";
	static int64_t	 last_status = -STATUS_EVERY_MS;
	static int64_t	 last_purge = -PURGE_EVERY_MS;
	PGresult	*r;
	char		 iv[32];
	int64_t		 now = dp_mono_ms();
	int		 i, rc = 0;

	if ((r = pick(db, installing, 0, NULL)) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r); i++)
		if (!is_quiet(PQgetvalue(r, i, 0)))
			install_step(db, PQgetvalue(r, i, 0));
	PQclear(r);

	num(iv, sizeof(iv), dp_cfg.limits_metrics_interval);
	if ((r = pick(db, due, 1, (const char *const[]){ iv })) == NULL)
		return -1;
	for (i = 0; i < PQntuples(r); i++)
		if (!is_quiet(PQgetvalue(r, i, 0)))
			sample_step(db, PQgetvalue(r, i, 0), iv);
	PQclear(r);

	if (now - last_status >= STATUS_EVERY_MS) {
		last_status = now;
		if ((r = pick(db, running, 1,
		    (const char *const[]){ after })) == NULL)
			return -1;
		for (i = 0; i < PQntuples(r); i++)
			if (!is_quiet(PQgetvalue(r, i, 0)))
				status_step(db, PQgetvalue(r, i, 0));
		if (PQntuples(r) < STATUS_BATCH)
			after[0] = '\0';
		else
			(void)snprintf(after, sizeof(after), "%s",
			    PQgetvalue(r, PQntuples(r) - 1, 0));
		PQclear(r);
		stuck_pass(db);
		release_pass(db);
		if ((i = dp_wsapp_sweep(db)) > 0)
			dp_info("dropped %d dead WebSocket row(s)", i);
		idle_pass(db);
	}
	if (now - last_purge >= PURGE_EVERY_MS) {
		last_purge = now;
		if (purge_pass(db) < 0)
			rc = -1;
	}
	return rc;
}

int
dp_lifecycle_recover(struct dp_db *db, const char *host)
{
	static const char owners[] =
	    "SELECT DISTINCT locked_by FROM jobs WHERE state = 'running' "
	    "AND left(locked_by, length($1) + 1) = $1 || ':'";
	static const char requeue[] =
	    "UPDATE jobs SET "
	    "state = CASE WHEN attempts >= max_attempts THEN 'failed' "
	    "ELSE 'queued' END, "
	    "payload = CASE WHEN kind = 'mail' AND attempts >= max_attempts "
	    "THEN '{}'::jsonb ELSE payload END, "
	    "locked_at = NULL, locked_by = NULL, run_at = now(), "
	    "updated_at = now(), "
	    "last_error = 'worker died while running the job' "
	    "WHERE state = 'running' AND locked_by = $1";
	PGresult	*r, *u;
	const char	*who, *colon;
	int64_t		 pid, n;
	int		 i, total = 0;

	r = dp_db_exec(db, owners, 1, (const char *const[]){ host });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return -1;
	}
	for (i = 0; i < PQntuples(r); i++) {
		who = PQgetvalue(r, i, 0);
		if ((colon = strrchr(who, ':')) == NULL ||
		    dp_parse_int64(colon + 1, 1, INT32_MAX, &pid) < 0)
			continue;
		if ((pid_t)pid != getpid() &&
		    (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
			continue;
		u = dp_db_exec(db, requeue, 1, (const char *const[]){ who });
		if (dp_db_ok(u) &&
		    dp_parse_int64(PQcmdTuples(u), 0, INT32_MAX, &n) == 0 &&
		    n > 0) {
			dp_warn("jobs: requeued %" PRId64 " job(s) of the dead "
			    "worker %s", n, who);
			total += (int)n;
		}
		PQclear(u);
	}
	PQclear(r);
	return total;
}
