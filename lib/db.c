/* lib/db.c: one PostgreSQL connection per process, lazily prepared statements */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "log.h"
#include "metrics.h"

unsigned long dp_db_errors;

/* A statement prepared on this connection, keyed by its SQL text. */
struct stmt {
	char		*sql;
	size_t		 len;
	char		 name[16];
	struct stmt	*next;
};

struct dp_db {
	PGconn		*conn;
	char		*conninfo;
	struct stmt	*stmts;
	unsigned	 nstmts;
};

static void
stmts_clear(struct dp_db *db)
{
	struct stmt	*s, *next;

	for (s = db->stmts; s != NULL; s = next) {
		next = s->next;
		free(s->sql);
		free(s);
	}
	db->stmts = NULL;
	db->nstmts = 0;
}

static void
notice_quiet(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

static PGconn *
connect_db(const char *conninfo, struct dp_err *err)
{
	/* The conninfo (or URI) is expanded from dbname; options, after it,
	 * sets the session time zone without a round trip: timestamps are
	 * rendered as UTC (json.c relies on it). */
	static const char *const keys[] = { "dbname", "options", NULL };
	const char	*vals[] = { conninfo, "-c TimeZone=UTC", NULL };
	PGconn		*c = PQconnectdbParams(keys, vals, 1);

	if (c == NULL) {
		dp_err_set(err, 1, "out of memory connecting to the database");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		dp_err_set(err, 1, "database connection failed: %.*s",
		    (int)strcspn(PQerrorMessage(c), "\n"), PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	PQsetNoticeProcessor(c, notice_quiet, NULL);
	return c;
}

struct dp_db *
dp_db_open(const char *conninfo, struct dp_err *err)
{
	struct dp_db	*db;
	PGconn		*c;

	if ((c = connect_db(conninfo, err)) == NULL)
		return NULL;
	db = dp_xcalloc(1, sizeof(*db));
	db->conn = c;
	db->conninfo = dp_xstrdup(conninfo);
	return db;
}

void
dp_db_free(struct dp_db *db)
{
	if (db == NULL)
		return;
	stmts_clear(db);
	if (db->conn)
		PQfinish(db->conn);
	free(db->conninfo);
	free(db);
}

PGconn *
dp_db_conn(struct dp_db *db)
{
	return db->conn;
}

/* Reconnect after a lost connection; prepared statements start over. */
static int
reconnect(struct dp_db *db)
{
	struct dp_err	 err = { 0 };
	PGconn		*c;

	stmts_clear(db);
	if ((c = connect_db(db->conninfo, &err)) == NULL) {
		dp_error("%s", err.msg);
		return -1;
	}
	PQfinish(db->conn);
	db->conn = c;
	return 0;
}

static void
log_failure(struct dp_db *db, const PGresult *r, const char *what)
{
	const char	*st = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	const char	*msg = r ? PQresultErrorMessage(r) : NULL;

	if (st != NULL && strncmp(st, "23", 2) == 0)
		return;
	dp_db_errors++;
	dp_metrics_db_error();
	if (msg == NULL || *msg == '\0')
		msg = PQerrorMessage(db->conn);
	dp_error("database %s failed (%s): %.*s", what, st ? st : "-",
	    (int)strcspn(msg, "\n"), msg);
}

static PGresult *
failed_result(struct dp_db *db)
{
	PGresult	*r = PQmakeEmptyPGresult(db->conn, PGRES_FATAL_ERROR);

	if (r == NULL)
		abort();
	return r;
}

static bool
connection_lost(struct dp_db *db)
{
	return PQstatus(db->conn) != CONNECTION_OK;
}

/*
 * The statement of this text, moved to the front (a route asks the same
 * few again and again).  The length tells most apart before a byte is
 * compared.
 */
static struct stmt *
find_stmt(struct dp_db *db, const char *sql, size_t len)
{
	struct stmt	*s, **pp;

	for (pp = &db->stmts; (s = *pp) != NULL; pp = &s->next)
		if (s->len == len && memcmp(s->sql, sql, len) == 0) {
			*pp = s->next;
			s->next = db->stmts;
			db->stmts = s;
			return s;
		}
	return NULL;
}

static PGresult *
exec_once(struct dp_db *db, const char *sql, int n,
    const char *const *params, bool *lost)
{
	struct stmt	*s;
	PGresult	*r;
	size_t		 len = strlen(sql);

	*lost = false;
	if ((s = find_stmt(db, sql, len)) == NULL) {
		s = dp_xcalloc(1, sizeof(*s));
		s->sql = dp_xstrdup(sql);
		s->len = len;
		snprintf(s->name, sizeof(s->name), "dp%u", db->nstmts++);
		r = PQprepare(db->conn, s->name, sql, 0, NULL);
		if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
			*lost = connection_lost(db);
			free(s->sql);
			free(s);
			db->nstmts--;
			if (r == NULL)
				r = failed_result(db);
			return r;
		}
		PQclear(r);
		s->next = db->stmts;
		db->stmts = s;
	}
	r = PQexecPrepared(db->conn, s->name, n, params, NULL, NULL, 0);
	if (r == NULL)
		r = failed_result(db);
	if (PQresultStatus(r) == PGRES_FATAL_ERROR)
		*lost = connection_lost(db);
	return r;
}

PGresult *
dp_db_exec(struct dp_db *db, const char *sql, int n, const char *const *params)
{
	PGresult	*r;
	bool		 lost, idle;

	idle = PQtransactionStatus(db->conn) == PQTRANS_IDLE ||
	    PQtransactionStatus(db->conn) == PQTRANS_UNKNOWN;
	r = exec_once(db, sql, n, params, &lost);
	if (lost && idle) {
		PQclear(r);
		if (reconnect(db) == 0)
			r = exec_once(db, sql, n, params, &lost);
		else
			r = failed_result(db);
	}
	if (!dp_db_ok(r))
		log_failure(db, r, "query");
	return r;
}

PGresult *
dp_db_simple(struct dp_db *db, const char *sql)
{
	PGresult	*r;
	bool		 idle;

	idle = PQtransactionStatus(db->conn) == PQTRANS_IDLE ||
	    PQtransactionStatus(db->conn) == PQTRANS_UNKNOWN;
	r = PQexec(db->conn, sql);
	if (r == NULL)
		r = failed_result(db);
	if (PQresultStatus(r) == PGRES_FATAL_ERROR && connection_lost(db) &&
	    idle) {
		PQclear(r);
		if (reconnect(db) == 0 && (r = PQexec(db->conn, sql)) != NULL)
			;
		else
			r = failed_result(db);
	}
	if (!dp_db_ok(r))
		log_failure(db, r, "statement");
	return r;
}

int
dp_db_run(struct dp_db *db, const char *sql, int n, const char *const *params)
{
	PGresult	*r = dp_db_exec(db, sql, n, params);
	int		 rc = dp_db_ok(r) ? 0 : -1;

	PQclear(r);
	return rc;
}

static int
simple_ok(struct dp_db *db, const char *sql)
{
	PGresult	*r = dp_db_simple(db, sql);
	int		 rc = dp_db_ok(r) ? 0 : -1;

	PQclear(r);
	return rc;
}

int
dp_db_begin(struct dp_db *db)
{
	return simple_ok(db, "BEGIN");
}

int
dp_db_commit(struct dp_db *db)
{
	return simple_ok(db, "COMMIT");
}

void
dp_db_rollback(struct dp_db *db)
{
	PGresult	*r;

	if (PQtransactionStatus(db->conn) == PQTRANS_IDLE)
		return;
	if ((r = PQexec(db->conn, "ROLLBACK")) != NULL)
		PQclear(r);
}

bool
dp_db_ok(const PGresult *r)
{
	ExecStatusType	 s;

	if (r == NULL)
		return false;
	s = PQresultStatus(r);
	return s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
}

const char *
dp_db_sqlstate(const PGresult *r)
{
	const char	*s = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

	return s ? s : "";
}

bool
dp_db_ping(struct dp_db *db)
{
	PGresult	*r;
	bool		 ok;

	/* A transaction the server has failed proves it answers (and a
	 * query in it could only fail again). */
	if (PQstatus(db->conn) == CONNECTION_OK &&
	    PQtransactionStatus(db->conn) == PQTRANS_INERROR)
		return true;
	r = dp_db_exec(db, "SELECT 1", 0, NULL);
	ok = dp_db_ok(r);
	PQclear(r);
	return ok;
}

const char *
dp_db_val(const PGresult *r, int row, int col)
{
	if (row >= PQntuples(r) || col >= PQnfields(r) ||
	    PQgetisnull(r, row, col))
		return NULL;
	return PQgetvalue(r, row, col);
}
