/* lib/db.h: one PostgreSQL connection per process, lazily prepared statements */
#ifndef DP_DB_H
#define DP_DB_H

#include <stdbool.h>
#include <libpq-fe.h>

#include "util.h"

struct dp_db;

/* Connect (conninfo or URI); NULL with err on failure. */
struct dp_db	*dp_db_open(const char *conninfo, struct dp_err *err);
void		 dp_db_free(struct dp_db *);
/* The raw connection (LISTEN, PQconsumeInput, …). */
PGconn		*dp_db_conn(struct dp_db *);

/*
 * Run sql with n text parameters (NULL = SQL NULL).  The statement is
 * prepared on first use on this connection and reused after (the sql
 * pointer's text is the key).  When the connection was lost and no
 * transaction is open, it reconnects and re-prepares once.  Never returns
 * NULL: on failure the result has status PGRES_FATAL_ERROR.  The caller
 * PQclears it.  Failures other than integrity violations (SQLSTATE class
 * 23) are logged here and counted in dp_db_errors.
 */
PGresult	*dp_db_exec(struct dp_db *, const char *sql, int n,
		    const char *const *params);
/* Plain statement without parameters and without preparing (BEGIN, DDL). */
PGresult	*dp_db_simple(struct dp_db *, const char *sql);
/* Run sql and PQclear; 0 when it succeeded. */
int		 dp_db_run(struct dp_db *, const char *sql, int n,
		    const char *const *params);
int		 dp_db_begin(struct dp_db *);
int		 dp_db_commit(struct dp_db *);
/* Rolls back if a transaction is open; safe to call any time. */
void		 dp_db_rollback(struct dp_db *);
bool		 dp_db_ok(const PGresult *);
/* Five-character SQLSTATE or "" */
const char	*dp_db_sqlstate(const PGresult *);
/* True when the connection is usable (SELECT 1 round trip). */
bool		 dp_db_ping(struct dp_db *);
/* Value of row r, column c, or NULL when SQL NULL. */
const char	*dp_db_val(const PGresult *, int r, int c);

/* Number of logged database failures of this process. */
extern unsigned long dp_db_errors;

#endif
