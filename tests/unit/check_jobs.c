/* tests/unit/check_jobs.c: the job queue against a real PostgreSQL */
/*
 * Needs DP_TEST_DB (a libpq conninfo, e.g. from tests/pgtmp.sh start DIR).
 * Every run works in a private schema built from sql/NNN_*.sql (override
 * the folder with DP_SQL_DIR) and drops it at the end, so several test
 * programs can share one database.  Without DP_TEST_DB the program prints
 * a note and passes.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>

#include "config.h"
#include "db.h"
#include "jobs.h"
#include "lifecycle.h"
#include "log.h"
#include "util.h"
#include "pgschema.h"

static const char	*conninfo;
static char		 schema[64];
static struct dp_db	*db;

/* --- helpers ------------------------------------------------------------ */

static struct dp_db *
connect_schema(void)
{
	struct dp_err	 err = { 0 };
	struct dp_db	*d;
	const char	*p[1] = { schema };

	d = dp_db_open(conninfo, &err);
	ck_assert_msg(d != NULL, "connect: %s", err.msg);
	ck_assert_int_eq(dp_db_run(d,
	    "SELECT set_config('search_path', $1, false)", 1, p), 0);
	return d;
}

/* Run sql (no parameters) and return the first value as a new string. */
static char *
qs(struct dp_db *d, const char *sql)
{
	PGresult	*r = dp_db_simple(d, sql);
	char		*v;

	ck_assert_msg(dp_db_ok(r), "%s: %s", sql, PQresultErrorMessage(r));
	ck_assert_msg(PQntuples(r) == 1, "%s: %d rows", sql, PQntuples(r));
	v = dp_xstrdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static int64_t
qi(struct dp_db *d, const char *sql)
{
	char	*s = qs(d, sql);
	int64_t	 v;

	ck_assert_msg(dp_parse_int64(s, INT64_MIN, INT64_MAX, &v) == 0,
	    "%s: not a number: %s", sql, s);
	free(s);
	return v;
}

static void
run(struct dp_db *d, const char *sql)
{
	PGresult	*r = dp_db_simple(d, sql);

	ck_assert_msg(dp_db_ok(r), "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

static void
ck_str(struct dp_db *d, const char *sql, const char *want)
{
	char	*got = qs(d, sql);

	ck_assert_msg(strcmp(got, want) == 0, "%s: got '%s', want '%s'", sql,
	    got, want);
	free(got);
}

/* --- handlers ----------------------------------------------------------- */

static int	 calls;

static int
h_ok(struct dp_db *d, const char *payload, struct dp_err *err)
{
	(void)d;
	(void)payload;
	(void)err;
	calls++;
	return DP_JOB_OK;
}

static int
h_retry(struct dp_db *d, const char *payload, struct dp_err *err)
{
	(void)d;
	(void)payload;
	calls++;
	/* Control characters and invalid UTF-8 must not reach the table. */
	dp_err_set(err, 7, "smtp said \x01\xff\xfe no\nway");
	return DP_JOB_RETRY;
}

static int
h_silent(struct dp_db *d, const char *payload, struct dp_err *err)
{
	(void)d;
	(void)payload;
	(void)err;
	calls++;
	return 42;	/* not a DP_JOB_* value: counts as a retry */
}

static int
h_perm(struct dp_db *d, const char *payload, struct dp_err *err)
{
	(void)d;
	(void)payload;
	calls++;
	dp_err_set(err, 0, "bad payload");
	return DP_JOB_PERMANENT;
}

/* Leaves a transaction open with an insert that must be rolled back. */
static int
h_open_txn(struct dp_db *d, const char *payload, struct dp_err *err)
{
	(void)payload;
	(void)err;
	calls++;
	if (dp_db_begin(d) == -1)
		return DP_JOB_RETRY;
	if (dp_db_run(d, "INSERT INTO ran_log (n) VALUES (-1)", 0, NULL) == -1)
		return DP_JOB_RETRY;
	return DP_JOB_OK;
}

/* Simulates the job being recovered from under the worker. */
static int
h_stolen(struct dp_db *d, const char *payload, struct dp_err *err)
{
	(void)payload;
	(void)err;
	calls++;
	usleep(20000);
	return dp_jobs_recover(d, 0) == 1 ? DP_JOB_OK : DP_JOB_PERMANENT;
}

/* Records payload.n in ran_log; a duplicate run fails on the primary key. */
static int
h_log(struct dp_db *d, const char *payload, struct dp_err *err)
{
	const char	*p[1] = { payload };

	calls++;
	if (dp_db_run(d, "INSERT INTO ran_log (n) "
	    "SELECT ($1::jsonb->>'n')::integer", 1, p) == -1) {
		dp_err_set(err, 0, "ran twice");
		return DP_JOB_RETRY;
	}
	return DP_JOB_OK;
}

/* --- fixtures ----------------------------------------------------------- */

static void
setup(void)
{
	db = connect_schema();
	run(db, "TRUNCATE jobs, users, rate_windows, ran_log CASCADE");
	calls = 0;
}

static void
teardown(void)
{
	dp_db_free(db);
	db = NULL;
}

/*
 * The migrations: ./sql when run from the checkout, else <exe>/../../sql
 * (the program is build/tests/check_jobs).
 */
static const char *
sql_dir(void)
{
	static char	 buf[4096];
	struct stat	 st;
	ssize_t		 n;
	char		*slash;
	int		 i;

	if (stat("sql", &st) == 0 && S_ISDIR(st.st_mode))
		return "sql";
	n = readlink("/proc/self/exe", buf, sizeof(buf) - 16);
	if (n <= 0)
		return "sql";
	buf[n] = '\0';
	for (i = 0; i < 3; i++) {
		if ((slash = strrchr(buf, '/')) == NULL)
			return "sql";
		*slash = '\0';
	}
	memcpy(buf + strlen(buf), "/sql", 5);
	return buf;
}

/* Build the private schema from the migrations; 0 or -1. */
static int
make_schema(void)
{
	const char	*dir = getenv("DP_SQL_DIR");

	if (dir == NULL)
		dir = sql_dir();
	(void)snprintf(schema, sizeof(schema), "check_jobs_%ld", (long)getpid());
	return pgschema_create("check_jobs", conninfo, dir, schema, "CREATE TABLE ran_log (n integer PRIMARY KEY)");
}

static void
drop_schema(void)
{
	pgschema_drop(conninfo, schema);
}

/* --- tests -------------------------------------------------------------- */

START_TEST(test_jobs_enqueue_rollback)
{
	ck_assert_int_eq(dp_db_begin(db), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "mail", "{\"to\":\"a@b.cd\"}", 0),
	    0);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs"), 1);
	dp_db_rollback(db);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs"), 0);
}
END_TEST

/*
 * A failed statement inside a transaction is the server answering: the
 * ping that tells 503 (database down) from 500 must say so, not run a
 * query that the aborted transaction can only refuse.
 */
START_TEST(test_jobs_db_ping_failed_txn)
{
	PGresult	*r;

	ck_assert_int_eq(dp_db_begin(db), 0);
	r = dp_db_exec(db, "SELECT 1 / 0", 0, NULL);
	ck_assert(!dp_db_ok(r));
	PQclear(r);
	ck_assert(dp_db_ping(db));
	dp_db_rollback(db);
	ck_assert(dp_db_ping(db));
}
END_TEST

/*
 * The environment job lock as pg_locks shows it (keys of either sign),
 * and gone with a connection that dropped: the check that asks
 * reconnects and says so, and the connection works again.
 */
START_TEST(test_jobs_env_lock_lost)
{
	static const char lock[] =
	    "SELECT pg_advisory_lock(hashtextextended('devpocket-env:' || $1, 0))";
	static const char unlock[] =
	    "SELECT pg_advisory_unlock(hashtextextended('devpocket-env:' || $1, 0))";
	static const char *const ids[] = { "000000000000000000000000",
	    "0123456789abcdef01234567", "ffffffffffffffffffffffff",
	    "5a5a5a5a5a5a5a5a5a5a5a5a", "c0ffeec0ffeec0ffeec0ffee" };
	struct dp_db	*d = connect_schema();
	char		 pid[24];
	const char	*p[1];
	size_t		 i;
	int		 neg = 0;

	for (i = 0; i < DP_NITEMS(ids); i++) {
		p[0] = ids[i];
		ck_assert(!dp_env_lock_held(d, ids[i]));
		ck_assert_int_eq(dp_db_run(d, lock, 1, p), 0);
		ck_assert_msg(dp_env_lock_held(d, ids[i]), "%s", ids[i]);
		ck_assert(!dp_env_lock_held(db, ids[i]));	/* not ours */
		ck_assert(!dp_env_lock_held(d, ids[(i + 1) %
		    DP_NITEMS(ids)]));
		ck_assert_int_eq(dp_db_run(d, unlock, 1, p), 0);
		ck_assert(!dp_env_lock_held(d, ids[i]));
	}
	/* Both signs of key were seen. */
	for (i = 0; i < DP_NITEMS(ids); i++) {
		char	 q[160];

		snprintf(q, sizeof(q), "SELECT (hashtextextended("
		    "'devpocket-env:%s', 0) < 0)::int", ids[i]);
		neg += (int)qi(d, q);
	}
	ck_assert(neg > 0 && neg < (int)DP_NITEMS(ids));

	p[0] = ids[1];
	ck_assert_int_eq(dp_db_run(d, lock, 1, p), 0);
	ck_assert(dp_env_lock_held(d, ids[1]));
	snprintf(pid, sizeof(pid), "%lld",
	    (long long)qi(d, "SELECT pg_backend_pid()"));
	p[0] = pid;
	ck_assert_int_eq(dp_db_run(db, "SELECT pg_terminate_backend($1::int, "
	    "5000)", 1, p), 0);
	ck_assert(!dp_env_lock_held(d, ids[1]));
	ck_assert_int_eq(qi(d, "SELECT 1"), 1);
	dp_db_free(d);
}
END_TEST

/* The notification is sent at commit, not before, and names the kind. */
START_TEST(test_jobs_enqueue_commit_notifies)
{
	struct dp_db	*l = connect_schema();
	PGconn		*lc = dp_db_conn(l);
	PGnotify	*nf;

	run(l, "LISTEN devpocket_jobs");
	ck_assert_int_eq(dp_db_begin(db), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "test_ok", NULL, 0), 0);
	usleep(100000);
	ck_assert_int_eq(PQconsumeInput(lc), 1);
	nf = PQnotifies(lc);
	ck_assert_msg(nf == NULL, "notified before commit");
	ck_assert_int_eq(dp_db_commit(db), 0);
	usleep(100000);
	ck_assert_int_eq(PQconsumeInput(lc), 1);
	nf = PQnotifies(lc);
	ck_assert_ptr_nonnull(nf);
	ck_assert_str_eq(nf->relname, "devpocket_jobs");
	ck_assert_str_eq(nf->extra, "test_ok");
	PQfreemem(nf);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs "
	    "WHERE state = 'queued' AND payload = '{}' AND attempts = 0"), 1);
	dp_db_free(l);
}
END_TEST

START_TEST(test_jobs_enqueue_hostile)
{
	struct dp_buf	 big = { 0 };
	char		 longkind[DP_JOB_KIND_MAX + 2];
	size_t		 i;

	memset(longkind, 'k', sizeof(longkind) - 1);
	longkind[sizeof(longkind) - 1] = '\0';
	ck_assert_int_eq(dp_job_enqueue(db, "", "{}", 0), -1);
	ck_assert_int_eq(dp_job_enqueue(db, NULL, "{}", 0), -1);
	ck_assert_int_eq(dp_job_enqueue(db, "a,b", "{}", 0), -1);
	ck_assert_int_eq(dp_job_enqueue(db, longkind, "{}", 0), -1);
	ck_assert_int_eq(dp_job_enqueue(db, "k", "{\"a\":", 0), -1);
	ck_assert_int_eq(dp_job_enqueue(db, "k", "[1,2]", 0), -1);
	ck_assert_int_eq(dp_job_enqueue(db, "k", "\"str\"", 0), -1);
	ck_assert_int_eq(dp_job_enqueue(db, "k", "{\"a\":\"\xff\xfe\"}", 0),
	    -1);
	ck_assert_int_eq(dp_job_enqueue(db, "k", "{\"a\":\"\\u0000\"}", 0),
	    -1);
	ck_assert_int_eq(dp_job_enqueue(db, "k", "{} {}", 0), -1);
	dp_buf_adds(&big, "{\"a\":\"");
	for (i = 0; i < DP_JOB_PAYLOAD_MAX; i++)
		dp_buf_addc(&big, 'x');
	dp_buf_adds(&big, "\"}");
	ck_assert_int_eq(dp_job_enqueue(db, "k", big.s, 0), -1);
	dp_buf_release(&big);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs"), 0);

	/* A failure inside a transaction leaves it for the caller. */
	ck_assert_int_eq(dp_db_begin(db), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "k", "{\"a\":", 0), -1);
	dp_db_rollback(db);

	/* Negative delays are "now"; huge ones are capped, not overflowed. */
	ck_assert_int_eq(dp_job_enqueue(db, "k", "{}", -5), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "k2", "{}", INT64_MAX), 0);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs "
	    "WHERE kind = 'k' AND run_at <= now()"), 1);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs WHERE kind = 'k2' "
	    "AND run_at > now() + interval '9 years' "
	    "AND run_at < now() + interval '11 years'"), 1);
	ck_assert_int_eq(dp_job_enqueue_mail(db, "a@b.cd", "S \"q\"", "b\n"),
	    0);
	ck_str(db, "SELECT payload->>'subject' FROM jobs WHERE kind = 'mail'",
	    "S \"q\"");
	ck_assert_int_eq(dp_job_enqueue_mail(db, NULL, "s", "b"), -1);
}
END_TEST

START_TEST(test_jobs_claim_order)
{
	static const struct dp_job_kind kinds[] = {
		{ "test_ok", h_ok },
		{ "bad,kind", h_ok },		/* ignored: has a comma */
		{ "no_handler", NULL },		/* ignored */
	};
	static const struct dp_job_kind none[] = { { "nothing", h_ok } };

	ck_assert_int_eq(dp_job_enqueue(db, "test_ok", "{\"n\":1}", 0), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "test_ok", "{\"n\":2}", 0), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "test_ok", "{\"n\":3}", 3600), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "other", "{\"n\":4}", 0), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "no_handler", "{\"n\":5}", 0), 0);
	/* n=2 became ready earlier than n=1: run_at order wins over id. */
	run(db, "UPDATE jobs SET run_at = now() - interval '1 minute' "
	    "WHERE payload->>'n' = '2'");
	run(db, "UPDATE jobs SET run_at = now() - interval '1 second' "
	    "WHERE payload->>'n' = '1'");

	ck_assert_int_eq(dp_jobs_claim_and_run(db, none, 1, "w:1"), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 0, "w:1"), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 1);
	ck_str(db, "SELECT string_agg(payload->>'n', ',') FROM jobs "
	    "WHERE state = 'done'", "2");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 1);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 0);
	ck_assert_int_eq(calls, 2);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs WHERE state = "
	    "'done' AND attempts = 1 AND locked_by IS NULL AND "
	    "last_error IS NULL"), 2);
	/* A finished non-mail job keeps its payload. */
	ck_str(db, "SELECT string_agg(payload->>'n', ',' ORDER BY id) FROM jobs "
	    "WHERE state = 'done'", "1,2");
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs "
	    "WHERE state = 'queued'"), 3);
}
END_TEST

/* A row locked by another transaction is skipped, not waited for. */
START_TEST(test_jobs_skip_locked)
{
	static const struct dp_job_kind kinds[] = { { "test_ok", h_ok } };
	struct dp_db	*other = connect_schema();

	ck_assert_int_eq(dp_job_enqueue(db, "test_ok", "{\"n\":1}", 0), 0);
	ck_assert_int_eq(dp_job_enqueue(db, "test_ok", "{\"n\":2}", 0), 0);
	run(db, "UPDATE jobs SET run_at = now() - interval '1 minute' "
	    "WHERE payload->>'n' = '1'");
	ck_assert_int_eq(dp_db_begin(other), 0);
	run(other, "SELECT id FROM jobs WHERE payload->>'n' = '1' FOR UPDATE");
	run(db, "SET lock_timeout = '2s'");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 1);
	ck_str(db, "SELECT payload->>'n' FROM jobs WHERE state = 'done'", "2");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 0);
	dp_db_rollback(other);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 1);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs "
	    "WHERE state = 'done'"), 2);
	dp_db_free(other);
}
END_TEST

/* Four processes drain 60 jobs: each job runs exactly once. */
START_TEST(test_jobs_concurrent_claims)
{
	static const struct dp_job_kind kinds[] = { { "test_log", h_log } };
	char		 payload[32], wid[32];
	pid_t		 pids[4];
	int		 i, status, rc;

	for (i = 0; i < 60; i++) {
		(void)snprintf(payload, sizeof(payload), "{\"n\":%d}", i);
		ck_assert_int_eq(dp_job_enqueue(db, "test_log", payload, 0), 0);
	}
	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		ck_assert_int_ne(pids[i], -1);
		if (pids[i] == 0) {
			struct dp_err	 err = { 0 };
			struct dp_db	*d = dp_db_open(conninfo, &err);
			const char	*p[1] = { schema };

			if (d == NULL || dp_db_run(d, "SELECT set_config("
			    "'search_path', $1, false)", 1, p) == -1)
				_exit(2);
			(void)snprintf(wid, sizeof(wid), "w:%d", i);
			while ((rc = dp_jobs_claim_and_run(d, kinds, 1,
			    wid)) == 1)
				;
			dp_db_free(d);
			_exit(rc == 0 ? 0 : 1);
		}
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM ran_log"), 60);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs "
	    "WHERE state = 'done' AND attempts = 1"), 60);
}
END_TEST

START_TEST(test_jobs_backoff)
{
	static const struct dp_job_kind kinds[] = {
		{ "test_retry", h_retry },
		{ "test_silent", h_silent },
	};

	ck_assert_int_eq(dp_job_enqueue(db, "test_retry", "{}", 0), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 2, "w:1"), 1);
	ck_assert_int_eq(calls, 1);
	ck_str(db, "SELECT state || ' ' || attempts || ' ' || "
	    "coalesce(locked_by, '-') FROM jobs", "queued 1 -");
	ck_str(db, "SELECT last_error FROM jobs", "smtp said ??? no?way");
	/* First retry after 2^1 * 5 s. */
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs WHERE run_at "
	    "BETWEEN now() + interval '9 s' AND now() + interval '11 s'"), 1);
	/* Not ready yet. */
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 2, "w:1"), 0);
	run(db, "UPDATE jobs SET run_at = now()");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 2, "w:1"), 1);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs WHERE attempts = 2 "
	    "AND run_at BETWEEN now() + interval '19 s' "
	    "AND now() + interval '21 s'"), 1);
	/* The delay is capped at one hour. */
	run(db, "UPDATE jobs SET run_at = now(), attempts = 6, "
	    "max_attempts = 100");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 2, "w:1"), 1);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs WHERE attempts = 7 "
	    "AND run_at BETWEEN now() + interval '639 s' "
	    "AND now() + interval '641 s'"), 1);
	run(db, "UPDATE jobs SET run_at = now(), attempts = 60");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 2, "w:1"), 1);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM jobs WHERE attempts = 61 "
	    "AND state = 'queued' AND run_at BETWEEN now() + interval '3599 s' "
	    "AND now() + interval '3601 s'"), 1);

	/* A handler failing without a message still leaves a reason. */
	run(db, "TRUNCATE jobs");
	ck_assert_int_eq(dp_job_enqueue(db, "test_silent", "{}", 0), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 2, "w:1"), 1);
	ck_str(db, "SELECT state || ': ' || last_error FROM jobs",
	    "queued: handler failed without a reason");
}
END_TEST

START_TEST(test_jobs_max_attempts)
{
	static const struct dp_job_kind kinds[] = {
		{ "mail", h_retry },
		{ "test_perm", h_perm },
		{ "test_retry", h_retry },
	};

	ck_assert_int_eq(dp_job_enqueue(db, "test_retry", "{\"keep\":1}", 0),
	    0);
	run(db, "UPDATE jobs SET max_attempts = 2");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 1);
	ck_str(db, "SELECT state FROM jobs", "queued");
	run(db, "UPDATE jobs SET run_at = now()");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 1);
	ck_str(db, "SELECT state || ' ' || attempts || ' ' || payload::text "
	    "FROM jobs", "failed 2 {\"keep\": 1}");
	/* Failed is final. */
	run(db, "UPDATE jobs SET run_at = now()");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 0);

	/* A permanent failure needs one attempt. */
	run(db, "TRUNCATE jobs");
	ck_assert_int_eq(dp_job_enqueue(db, "test_perm", "{}", 0), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 1);
	ck_str(db, "SELECT state || ' ' || attempts || ' ' || last_error "
	    "FROM jobs", "failed 1 bad payload");

	/* Mail payloads carry tokens: wiped when finally failed... */
	run(db, "TRUNCATE jobs");
	ck_assert_int_eq(dp_job_enqueue(db, "mail", "{\"body\":\"tok\"}", 0),
	    0);
	run(db, "UPDATE jobs SET max_attempts = 1");
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 1);
	ck_str(db, "SELECT state || ' ' || payload::text FROM jobs",
	    "failed {}");
	/* ...but kept while a retry still needs them. */
	run(db, "TRUNCATE jobs");
	ck_assert_int_eq(dp_job_enqueue(db, "mail", "{\"body\":\"tok\"}", 0),
	    0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 3, "w:1"), 1);
	ck_str(db, "SELECT state || ' ' || (payload->>'body') FROM jobs",
	    "queued tok");
}
END_TEST

START_TEST(test_jobs_mail_done_wipes)
{
	static const struct dp_job_kind kinds[] = { { "mail", h_ok } };

	ck_assert_int_eq(dp_job_enqueue_mail(db, "a@b.cd", "s", "token xyz"),
	    0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 1);
	ck_str(db, "SELECT state || ' ' || payload::text FROM jobs",
	    "done {}");
}
END_TEST

START_TEST(test_jobs_handler_txn_rolled_back)
{
	static const struct dp_job_kind kinds[] = { { "t", h_open_txn } };

	ck_assert_int_eq(dp_job_enqueue(db, "t", "{}", 0), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 1);
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM ran_log"), 0);
	ck_str(db, "SELECT state FROM jobs", "done");

	/* Claiming inside the caller's transaction is refused. */
	ck_assert_int_eq(dp_job_enqueue(db, "t", "{}", 0), 0);
	ck_assert_int_eq(dp_db_begin(db), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), -1);
	dp_db_rollback(db);
	ck_assert_int_eq(calls, 1);
}
END_TEST

START_TEST(test_jobs_recover)
{
	static const struct dp_job_kind kinds[] = { { "t", h_stolen } };

	run(db, "INSERT INTO jobs (kind, state, attempts, locked_at, locked_by)"
	    " VALUES ('a', 'running', 1, now() - interval '1 hour', 'dead:1'),"
	    " ('b', 'running', 1, now() - interval '1 minute', 'live:1'),"
	    " ('c', 'running', 8, now() - interval '1 hour', 'dead:1'),"
	    " ('mail', 'running', 8, now() - interval '1 hour', 'dead:1'),"
	    " ('d', 'queued', 0, NULL, NULL)");
	run(db, "UPDATE jobs SET payload = '{\"body\":\"tok\"}'");
	ck_assert_int_eq(dp_jobs_recover(db, 600), 3);
	ck_str(db, "SELECT string_agg(kind || '=' || state, ',' ORDER BY kind) "
	    "FROM jobs", "a=queued,b=running,c=failed,d=queued,mail=failed");
	ck_str(db, "SELECT coalesce(locked_by, '-') || ' ' || last_error "
	    "FROM jobs WHERE kind = 'a'",
	    "- worker lost while running the job (stale lock)");
	ck_str(db, "SELECT payload::text FROM jobs WHERE kind = 'mail'", "{}");
	ck_assert_int_eq(dp_jobs_recover(db, 600), 0);
	ck_assert_int_eq(dp_jobs_recover(db, -1), 1);	/* b, clamped to 0 */

	/*
	 * A job recovered while its first worker still runs it: that
	 * worker's late outcome must not overwrite the new state.
	 */
	run(db, "TRUNCATE jobs");
	ck_assert_int_eq(dp_job_enqueue(db, "t", "{}", 0), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 1);
	ck_assert_int_eq(calls, 1);
	ck_str(db, "SELECT state || ' ' || attempts FROM jobs", "queued 1");
}
END_TEST

START_TEST(test_jobs_purge)
{
	struct dp_config	 cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.auth_refresh_ttl = 30 * 24 * 3600;
	run(db, "INSERT INTO users (id, username, email) "
	    "VALUES ('u1', 'u1', 'u1@x.io')");
	run(db, "INSERT INTO login_sessions (id, user_id, revoked_at) VALUES "
	    "('s_live', 'u1', NULL), "
	    "('s_recent', 'u1', now() - interval '10 days'), "
	    "('s_old', 'u1', now() - interval '40 days')");
	run(db, "INSERT INTO refresh_tokens (token_hash, session_id, "
	    "expires_at, consumed_at) VALUES "
	    "('r_valid', 's_live', now() + interval '1 day', NULL), "
	    "('r_consumed', 's_live', now() + interval '1 day', now()), "
	    "('r_just_expired', 's_live', now() - interval '1 hour', NULL), "
	    "('r_old', 's_live', now() - interval '2 days', now())");
	run(db, "INSERT INTO email_tokens (token_hash, user_id, kind, "
	    "expires_at, used_at) VALUES "
	    "('e_valid', 'u1', 'verify', now() + interval '1 day', NULL), "
	    "('e_used_now', 'u1', 'verify', now() + interval '1 day', now()), "
	    "('e_used_old', 'u1', 'reset', now() + interval '1 day', "
	    "now() - interval '2 days'), "
	    "('e_expired', 'u1', 'reset', now() - interval '2 days', NULL)");
	run(db, "INSERT INTO rate_windows VALUES "
	    "('k', extract(epoch from now())::bigint - 120, 60, 1), "
	    "('k', extract(epoch from now())::bigint - 10, 60, 1)");
	run(db, "INSERT INTO jobs (kind, state, updated_at) VALUES "
	    "('done_old', 'done', now() - interval '8 days'), "
	    "('done_new', 'done', now() - interval '6 days'), "
	    "('failed_old', 'failed', now() - interval '31 days'), "
	    "('failed_new', 'failed', now() - interval '8 days'), "
	    "('queued_old', 'queued', now() - interval '60 days')");
	/* Ended terminal sessions: [limits] session_retention_days. */
	cfg.limits_session_retention_days = 30;
	run(db, "INSERT INTO terminal_sessions (id, user_id, type, "
	    "environment_id, active, ended_at) VALUES "
	    "('t_live', 'u1', 'environment', 'e', true, NULL), "
	    "('t_recent', 'u1', 'environment', 'e', false, "
	    "now() - interval '29 days'), "
	    "('t_old', 'u1', 'environment', 'e', false, "
	    "now() - interval '31 days')");

	/* Status changes (sql/010, made by the trigger): after a day. */
	run(db, "INSERT INTO templates (id, name, display_name, description, "
	    "category, docker_image, default_resources) VALUES ('tp', 'tp', "
	    "'T', 'd', 'programming_language', 'img', '{}')");
	run(db, "INSERT INTO clusters (id, name, region, provider) VALUES "
	    "('cl', 'cl', 'us-east', 'local')");
	run(db, "INSERT INTO environments (id, user_id, name, template_id, "
	    "docker_image, port, resources, cluster_id) VALUES ('en', 'u1', "
	    "'en', 'tp', 'img', 8080, '{}', 'cl')");
	run(db, "UPDATE environments SET status = 'installing', "
	    "updated_at = now() - interval '25 hours' WHERE id = 'en'");
	run(db, "UPDATE environments SET status = 'running', "
	    "updated_at = now() WHERE id = 'en'");
	ck_str(db, "SELECT string_agg(status, ',' ORDER BY id) FROM "
	    "environment_status_changes", "installing,running");

	ck_assert_int_eq(dp_jobs_purge(db, &cfg), 9);
	ck_str(db, "SELECT string_agg(status, ',' ORDER BY id) FROM "
	    "environment_status_changes", "running");
	ck_str(db, "SELECT string_agg(id, ',' ORDER BY id) FROM "
	    "terminal_sessions", "t_live,t_recent");
	ck_str(db, "SELECT string_agg(token_hash, ',' ORDER BY token_hash) "
	    "FROM refresh_tokens", "r_consumed,r_just_expired,r_valid");
	ck_str(db, "SELECT string_agg(token_hash, ',' ORDER BY token_hash) "
	    "FROM email_tokens", "e_used_now,e_valid");
	ck_str(db, "SELECT string_agg(id, ',' ORDER BY id) FROM login_sessions",
	    "s_live,s_recent");
	ck_assert_int_eq(qi(db, "SELECT count(*) FROM rate_windows"), 1);
	ck_str(db, "SELECT string_agg(kind, ',' ORDER BY kind) FROM jobs",
	    "done_new,failed_new,queued_old");
	ck_assert_int_eq(dp_jobs_purge(db, &cfg), 0);
}
END_TEST

/* --- the built-in mail handler ------------------------------------------ */

static char	 maildir[64];

static void
mail_setup(void)
{
	struct dp_err	 err = { 0 };

	setup();
	(void)snprintf(maildir, sizeof(maildir), "/tmp/check_jobs_mail.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(maildir));
	dp_config_defaults(&dp_cfg);
	ck_assert_msg(dp_config_set(&dp_cfg, "mail", "transport", "file",
	    &err) == 0, "%s", err.msg);
	ck_assert_msg(dp_config_set(&dp_cfg, "mail", "file_dir", maildir,
	    &err) == 0, "%s", err.msg);
}

static void
mail_teardown(void)
{
	struct dirent	*e;
	DIR		*d;
	char		 p[384];

	if ((d = opendir(maildir)) != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (e->d_name[0] == '.')
				continue;
			(void)snprintf(p, sizeof(p), "%s/%s", maildir,
			    e->d_name);
			(void)unlink(p);
		}
		closedir(d);
	}
	(void)rmdir(maildir);
	dp_config_release(&dp_cfg);
	teardown();
}

/* The one message in maildir, or NULL. */
static char *
read_mail(void)
{
	struct dirent	*e;
	struct dp_buf	 b = { 0 };
	DIR		*d;
	FILE		*f;
	char		 p[384], chunk[1024];
	size_t		 n;
	int		 count = 0;

	ck_assert_ptr_nonnull(d = opendir(maildir));
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		count++;
		(void)snprintf(p, sizeof(p), "%s/%s", maildir, e->d_name);
	}
	closedir(d);
	if (count != 1)
		return NULL;
	ck_assert_ptr_nonnull(f = fopen(p, "r"));
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		dp_buf_add(&b, chunk, n);
	fclose(f);
	return dp_buf_detach(&b);
}

START_TEST(test_jobs_mail_delivers)
{
	static const struct dp_job_kind kinds[] = { { "mail", dp_job_mail } };
	char	*m;

	ck_assert_int_eq(dp_job_enqueue_mail(db, "Bob@Example.org",
	    "Verify your DevPocket email address",
	    "Open http://localhost:3000/verify-email?token=abc\n"), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 1);
	ck_str(db, "SELECT state || ' ' || payload::text FROM jobs",
	    "done {}");
	ck_assert_ptr_nonnull(m = read_mail());
	ck_assert_ptr_nonnull(strstr(m,
	    "Subject: Verify your DevPocket email address"));
	ck_assert_ptr_nonnull(strstr(m, "verify-email?token=abc"));
	ck_assert_ptr_nonnull(strstr(m, "Bob@Example.org"));
	free(m);
}
END_TEST

START_TEST(test_jobs_mail_hostile_payload)
{
	static const char *const bad[] = {
		"",
		"{",
		"not json",
		"[\"a@b.cd\",\"s\",\"b\"]",
		"{\"to\":\"a@b.cd\",\"subject\":\"s\"}",
		"{\"to\":42,\"subject\":\"s\",\"body\":\"b\"}",
		"{\"to\":\"a@b.cd\",\"subject\":null,\"body\":\"b\"}",
		"{\"to\":\"a@b.cd\",\"subject\":\"s\",\"body\":[\"b\"]}",
		"{\"to\":\"\",\"subject\":\"s\",\"body\":\"b\"}",
		"{\"to\":\"a@b.cd\",\"subject\":\"s\",\"body\":\"b\"} trailing",
		"{\"to\":\"a@b.cd\",\"subject\":\"s\",\"body\":\"b\","
		    "\"x\":[[[[[[[[[[1]]]]]]]]]]}",
		/* Header injection through the subject or address. */
		"{\"to\":\"a@b.cd\",\"subject\":\"s\\r\\nBcc: x@y.zz\","
		    "\"body\":\"b\"}",
		"{\"to\":\"a@b.cd\\nBcc: x@y.zz\",\"subject\":\"s\","
		    "\"body\":\"b\"}",
	};
	struct dp_err	 err;
	struct dp_buf	 big = { 0 };
	size_t		 i;
	char		*m;

	for (i = 0; i < DP_NITEMS(bad); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_msg(dp_job_mail(db, bad[i], &err) ==
		    DP_JOB_PERMANENT, "payload %zu accepted", i);
		ck_assert_msg(err.msg[0] != '\0', "payload %zu: no reason", i);
	}
	dp_buf_adds(&big, "{\"to\":\"a@b.cd\",\"subject\":\"s\",\"body\":\"");
	for (i = 0; i < DP_JOB_PAYLOAD_MAX; i++)
		dp_buf_addc(&big, 'x');
	dp_buf_adds(&big, "\"}");
	ck_assert_int_eq(dp_job_mail(db, big.s, &err), DP_JOB_PERMANENT);
	dp_buf_release(&big);
	m = read_mail();
	ck_assert_msg(m == NULL, "a hostile payload was delivered");
}
END_TEST

/* A delivery failure is transient: the job is retried. */
START_TEST(test_jobs_mail_delivery_fails)
{
	static const struct dp_job_kind kinds[] = { { "mail", dp_job_mail } };
	struct dp_err	 err = { 0 };

	ck_assert_int_eq(dp_config_set(&dp_cfg, "mail", "file_dir",
	    "/dev/null/check_jobs", &err), 0);
	ck_assert_int_eq(dp_job_enqueue_mail(db, "a@b.cd", "s", "b"), 0);
	ck_assert_int_eq(dp_jobs_claim_and_run(db, kinds, 1, "w:1"), 1);
	ck_str(db, "SELECT state || ' ' || attempts || ' ' || "
	    "(payload->>'to') FROM jobs", "queued 1 a@b.cd");
	ck_str(db, "SELECT (last_error IS NOT NULL)::text FROM jobs", "true");
}
END_TEST

static Suite *
jobs_suite(void)
{
	Suite	*s = suite_create("jobs");
	TCase	*tc;

#define T(name) do {							\
	tc = tcase_create(#name);					\
	tcase_add_checked_fixture(tc, setup, teardown);			\
	tcase_set_timeout(tc, 30);					\
	tcase_add_test(tc, test_jobs_##name);				\
	suite_add_tcase(s, tc);						\
} while (0)
	T(enqueue_rollback);
	T(db_ping_failed_txn);
	T(enqueue_commit_notifies);
	T(enqueue_hostile);
	T(claim_order);
	T(skip_locked);
	T(concurrent_claims);
	T(backoff);
	T(max_attempts);
	T(mail_done_wipes);
	T(handler_txn_rolled_back);
	T(recover);
	T(purge);
#undef T
#define M(name) do {							\
	tc = tcase_create(#name);					\
	tcase_add_checked_fixture(tc, mail_setup, mail_teardown);	\
	tcase_add_test(tc, test_jobs_##name);				\
	suite_add_tcase(s, tc);						\
} while (0)
	M(env_lock_lost);
	M(mail_delivers);
	M(mail_hostile_payload);
	M(mail_delivery_fails);
#undef M
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	if ((conninfo = getenv("DP_TEST_DB")) == NULL || *conninfo == '\0') {
		/* The summary line keeps tests/run-unit.sh's count right. */
		printf("check_jobs: DP_TEST_DB is not set; skipped (needs a "
		    "PostgreSQL: tests/pgtmp.sh start DIR)\n"
		    "100%%: Checks: 0, Failures: 0, Errors: 0\n");
		return 0;
	}
	/* Job lines are expected here; keep only errors unless asked. */
	dp_log_init("check_jobs", "text",
	    getenv("DP_TEST_VERBOSE") != NULL ? "debug" : "error");
	if (make_schema() == -1) {
		drop_schema();
		return 1;
	}
	sr = srunner_create(jobs_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	drop_schema();
	return failed == 0 ? 0 : 1;
}
