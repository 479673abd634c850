/* tests/unit/pgschema.h: a private schema built from sql/ for the Check
 * programs that need PostgreSQL (DP_TEST_DB), so several can share one
 * database.  Header-only: each test program is one translation unit. */
#ifndef DP_TEST_PGSCHEMA_H
#define DP_TEST_PGSCHEMA_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "util.h"

static int
pgschema_is_migration(const struct dirent *d)
{
	size_t	 n = strlen(d->d_name);

	return n > 8 && d->d_name[0] >= '0' && d->d_name[0] <= '9' &&
	    strcmp(d->d_name + n - 4, ".sql") == 0;
}

static int
pgschema_name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/*
 * Create schema on conninfo and apply every migration of dir in it, then
 * extra (one more statement, or NULL).  who prefixes the messages.
 * Returns 0 or -1 (after printing why).
 */
static int
pgschema_create(const char *who, const char *conninfo, const char *dir,
    const char *schema, const char *extra)
{
	struct dp_err	 err = { 0 };
	struct dirent	**ents = NULL;
	struct dp_db	*d;
	struct dp_buf	 b = { 0 }, path = { 0 };
	const char	*p[1] = { schema };
	PGresult	*r;
	FILE		*f;
	char		 chunk[4096];
	size_t		 got;
	int		 i, n = 0, rc = -1;

	if ((d = dp_db_open(conninfo, &err)) == NULL) {
		fprintf(stderr, "%s: %s\n", who, err.msg);
		return -1;
	}
	if (dp_db_run(d, "SELECT set_config('search_path', $1, false)", 1,
	    p) == -1)
		goto out;
	/* format('%I') quotes the identifier: no SQL is built in C. */
	r = dp_db_exec(d, "SELECT format('CREATE SCHEMA %I', $1::text)", 1, p);
	if (!dp_db_ok(r)) {
		PQclear(r);
		goto out;
	}
	dp_buf_adds(&b, PQgetvalue(r, 0, 0));
	PQclear(r);
	r = dp_db_simple(d, b.s);
	if (!dp_db_ok(r)) {
		PQclear(r);
		goto out;
	}
	PQclear(r);
	if ((n = scandir(dir, &ents, pgschema_is_migration,
	    pgschema_name_cmp)) <= 0) {
		fprintf(stderr, "%s: no migrations in %s\n", who, dir);
		goto out;
	}
	for (i = 0; i < n; i++) {
		dp_buf_reset(&b);
		dp_buf_reset(&path);
		dp_buf_printf(&path, "%s/%s", dir, ents[i]->d_name);
		if ((f = fopen(path.s, "r")) == NULL) {
			fprintf(stderr, "%s: %s: %s\n", who, path.s,
			    strerror(errno));
			goto out;
		}
		while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
			dp_buf_add(&b, chunk, got);
		fclose(f);
		r = dp_db_simple(d, b.s);
		if (!dp_db_ok(r)) {
			fprintf(stderr, "%s: %s: %s", who, path.s,
			    PQresultErrorMessage(r));
			PQclear(r);
			goto out;
		}
		PQclear(r);
	}
	if (extra != NULL && dp_db_run(d, extra, 0, NULL) == -1)
		goto out;
	rc = 0;
out:
	if (ents != NULL) {
		for (i = 0; i < n; i++)
			free(ents[i]);
		free(ents);
	}
	dp_buf_release(&b);
	dp_buf_release(&path);
	dp_db_free(d);
	return rc;
}

/* Drop schema and everything in it (best effort). */
static void
pgschema_drop(const char *conninfo, const char *schema)
{
	struct dp_err	 err = { 0 };
	struct dp_db	*d;
	const char	*p[1] = { schema };
	PGresult	*r;

	if ((d = dp_db_open(conninfo, &err)) == NULL)
		return;
	r = dp_db_exec(d, "SELECT format('DROP SCHEMA %I CASCADE', $1::text)",
	    1, p);
	if (dp_db_ok(r))
		PQclear(dp_db_simple(d, PQgetvalue(r, 0, 0)));
	PQclear(r);
	dp_db_free(d);
}

#endif
