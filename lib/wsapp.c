/* lib/wsapp.c: what the websocketd programs (ws/terminal, ws/logs) share */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "jwt.h"
#include "log.h"
#include "wsapp.h"

const char *const dp_ws_kind_names[DP_WSK__MAX] = {
	"terminal",	/* DP_WSK_TERMINAL */
	"logs",		/* DP_WSK_LOGS */
	"ssh",		/* DP_WSK_SSH */
};

/*
 * Built twice more: with DP_WSAPP_LIGHT for ws/terminal-pump, only the
 * UTF-8, message and line parts (libc and json-c); with DP_WSAPP_NODB
 * for ws/terminal, everything but the database (no libpq).
 */
#if !defined(DP_WSAPP_LIGHT) && !defined(DP_WSAPP_NODB)
#define WSAPP_DB
#endif

#ifndef DP_WSAPP_LIGHT
/* ---- request ------------------------------------------------------------ */

static bool
device_id_ok(const char *s)
{
	size_t	 i;

	for (i = 0; s[i]; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '.' ||
		    s[i] == '_' || s[i] == '-'))
			return false;
	return i >= 1 && i <= 64;
}

static int
query_int(struct dp_arena *a, const char *qs, const char *name, int64_t min,
    int64_t max, int dflt)
{
	const char	*v = dp_query_get(a, qs, name);
	int64_t		 n;

	if (v == NULL || dp_parse_int64(v, min, max, &n) < 0)
		return dflt;
	return (int)n;
}

void
dp_wsreq_parse(struct dp_wsreq *r, enum dp_ws_kind kind, const char *query,
    const char *seg, const char *authorization)
{
	struct dp_arena	 a = { 0 };
	const char	*qs = query != NULL ? query : "";
	const char	*v;
	bool		 b;

	memset(r, 0, sizeof(*r));
	r->kind = kind;
	if (seg != NULL && dp_is_id(seg))
		memcpy(r->target, seg, sizeof(r->target));
	if ((v = dp_query_get(&a, qs, "token")) != NULL && *v != '\0')
		r->token = dp_xstrdup(v);
	else if (authorization != NULL) {
		while (*authorization == ' ')
			authorization++;
		if (strncasecmp(authorization, "Bearer ", 7) == 0) {
			v = authorization + 7;
			while (*v == ' ')
				v++;
			if (*v != '\0')
				r->token = dp_xstrdup(v);
		}
	}
	if ((v = dp_query_get(&a, qs, "device_id")) != NULL && device_id_ok(v))
		snprintf(r->device_id, sizeof(r->device_id), "%s", v);
	r->cols = query_int(&a, qs, "cols", 10, 500, 80);
	r->rows = query_int(&a, qs, "rows", 5, 200, 24);
	r->lines = query_int(&a, qs, "lines", 0, 1000, 100);
	r->follow = true;
	if ((v = dp_query_get(&a, qs, "follow")) != NULL &&
	    dp_parse_bool(v, &b) == 0)
		r->follow = b;
	dp_arena_release(&a);
}

void
dp_wsreq_release(struct dp_wsreq *r)
{
	if (r->token != NULL) {
		explicit_bzero(r->token, strlen(r->token));
		free(r->token);
	}
	r->token = NULL;
}

int
dp_ws_uri_split(const char *uri, enum dp_ws_kind *kind, char seg[25],
    const char **query)
{
	const char	*p, *q;
	size_t		 n, i;

	seg[0] = '\0';
	*query = NULL;
	if (uri == NULL)
		return -1;
	if (dp_startswith(uri, "/api/v1/ws/"))
		p = uri + 11;
	else if (dp_startswith(uri, "/ws/"))
		p = uri + 4;	/* the legacy alias (CONTRACT §6) */
	else
		return -1;
	if ((q = strchr(p, '?')) != NULL)
		*query = q + 1;
	else
		q = p + strlen(p);
	n = strcspn(p, "/?");
	for (i = 0; i < DP_WSK__MAX; i++)
		if (strlen(dp_ws_kind_names[i]) == n &&
		    strncmp(p, dp_ws_kind_names[i], n) == 0)
			break;
	if (i == DP_WSK__MAX)
		return -1;
	*kind = (enum dp_ws_kind)i;
	p += n;
	if (p == q)
		return 0;
	p++;				/* the '/' */
	n = strcspn(p, "/?");
	if (n == 24 && (p + n == q || (p[n] == '/' && p + n + 1 == q))) {
		memcpy(seg, p, 24);
		seg[24] = '\0';
		if (!dp_is_id(seg))
			seg[0] = '\0';
		return 0;
	}
	/* One more segment at most, then an optional trailing slash ("//"
	 * is an empty segment: no such path). */
	if (p + n == q || (n > 0 && p[n] == '/' && p + n + 1 == q))
		return 0;
	return -1;
}

#endif /* !DP_WSAPP_LIGHT */

#ifdef WSAPP_DB
/*
 * A statement run once by this process, not prepared: one round trip
 * instead of two (prepare, then execute) on a connection that lives for
 * one socket's start.  Logged on failure; the caller PQclears.
 */
static PGresult *
exec_once(struct dp_db *db, const char *sql, int n, const char *const *p)
{
	PGconn		*c = dp_db_conn(db);
	PGresult	*r = PQexecParams(c, sql, n, NULL, p, NULL, NULL, 0);
	const char	*m;

	if (!dp_db_ok(r)) {
		m = r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(c);
		dp_error("database: %.*s", (int)strcspn(m, "\n"), m);
	}
	return r;
}

/* ---- token, session ----------------------------------------------------- */

int
dp_wsapp_session_alive(struct dp_db *db, const struct dp_wsuser *u,
    const char *slot)
{
	static const char sql[] =
	    "WITH w AS (UPDATE ws_connections SET seen_at = now() "
	    "WHERE id = $3 RETURNING id) "
	    "SELECT EXISTS (SELECT 1 FROM login_sessions s JOIN users u "
	    "ON u.id = s.user_id WHERE s.id = $1 AND u.id = $2 AND "
	    "s.revoked_at IS NULL AND u.is_active AND u.deleted_at IS NULL), "
	    "EXISTS (SELECT 1 FROM w)";
	const char	*p[3] = { u->sid, u->id, slot };
	PGresult	*r = dp_db_exec(db, sql, 3, p);
	int		 rc = -1;

	if (dp_db_ok(r) && PQntuples(r) == 1)
		rc = PQgetvalue(r, 0, 0)[0] != 't' ? 0 :
		    PQgetvalue(r, 0, 1)[0] != 't' ? 2 : 1;
	PQclear(r);
	return rc;
}

/* ---- environment -------------------------------------------------------- */

/*
 * The login session sid unrevoked, its user (sub, or whoever holds it
 * when NULL) active, and the environment, owned by that user and not
 * purged, in one statement.
 */
static int
admit_row(struct dp_db *db, bool prepared, const char *sid, const char *sub,
    const char *env_id, struct dp_wsuser *u, struct dp_wsenv *e,
    struct dp_err *err)
{
	static const char sql[] =
	    "SELECT u.is_verified, e.id, e.name, e.template_name, e.status, "
	    "e.installation_completed, e.docker_image, e.port, c.id, "
	    "c.provider, c.endpoint, c.kube_config_sealed, u.id "
	    "FROM login_sessions s JOIN users u ON u.id = s.user_id "
	    "LEFT JOIN (environments e "
	    "JOIN clusters c ON c.id = e.cluster_id) "
	    "ON e.id = $3 AND e.user_id = u.id AND (e.status <> 'terminated' "
	    "OR e.terminated_at IS NULL OR e.terminated_at > now() - "
	    "make_interval(hours => $4::int)) "
	    "WHERE s.id = $1 AND ($2::text IS NULL OR u.id = $2) "
	    "AND s.revoked_at IS NULL AND u.is_active AND u.deleted_at IS NULL";
	char		 hours[24];
	const char	*p[4];
	PGresult	*r = NULL;
	int64_t		 port;
	int		 rc = 0;

	snprintf(hours, sizeof(hours), "%lld",
	    (long long)dp_cfg.limits_terminated_retention_hours);
	p[0] = sid;
	p[1] = sub;
	/* Not an id: no environment (the query finds none for ""). */
	p[2] = env_id != NULL && dp_is_id(env_id) ? env_id : "";
	p[3] = hours;
	r = prepared ? dp_db_exec(db, sql, 4, p) : exec_once(db, sql, 4, p);
	if (!dp_db_ok(r)) {
		dp_err_set(err, 1, "database failure");
		rc = -1;
		goto out;
	}
	if (PQntuples(r) != 1) {
		dp_err_set(err, 0, "session revoked or user inactive");
		goto out;
	}
	snprintf(u->id, sizeof(u->id), "%s", PQgetvalue(r, 0, 12));
	snprintf(u->sid, sizeof(u->sid), "%s", sid);
	u->verified = PQgetvalue(r, 0, 0)[0] == 't';
	rc = 1;
	if (PQgetisnull(r, 0, 1))
		goto out;
	snprintf(e->id, sizeof(e->id), "%s", PQgetvalue(r, 0, 1));
	e->name = dp_xstrdup(PQgetvalue(r, 0, 2));
	e->template = dp_xstrdup(PQgetvalue(r, 0, 3));
	e->status = dp_xstrdup(PQgetvalue(r, 0, 4));
	e->installation_completed = PQgetvalue(r, 0, 5)[0] == 't';
	e->image = dp_xstrdup(PQgetvalue(r, 0, 6));
	if (dp_parse_int64(PQgetvalue(r, 0, 7), 0, 65535, &port) == 0)
		e->port = (int)port;
	e->cluster_id = dp_xstrdup(PQgetvalue(r, 0, 8));
	e->provider = dp_xstrdup(PQgetvalue(r, 0, 9));
	if (!PQgetisnull(r, 0, 10))
		e->endpoint = dp_xstrdup(PQgetvalue(r, 0, 10));
	if (!PQgetisnull(r, 0, 11))
		e->kube_sealed = dp_xstrdup(PQgetvalue(r, 0, 11));
out:
	PQclear(r);
	return rc;
}

/* The token (its JWT checked here), then admit_row for its claims. */
int
dp_wsapp_admit(struct dp_db *db, bool prepared, const char *token,
    const char *env_id, struct dp_wsuser *u, struct dp_wsenv *e,
    struct dp_err *err)
{
	const struct dp_buf	*key = dp_auth_key();
	struct dp_access_claims	 c;

	memset(u, 0, sizeof(*u));
	memset(e, 0, sizeof(*e));
	if (token == NULL) {
		dp_err_set(err, 0, "no token");
		return 0;
	}
	if (key == NULL || db == NULL) {
		dp_err_set(err, 1, "no key or database");
		return -1;
	}
	if (dp_jwt_verify_access(token, key->s, key->len, dp_cfg.auth_issuer,
	    (int64_t)dp_now(), &c, err) < 0) {
		err->code = 0;
		return 0;
	}
	return admit_row(db, prepared, c.sid, c.sub, env_id, u, e, err);
}

int
dp_wsapp_resume(struct dp_db *db, const char *sid, const char *env_id,
    struct dp_wsuser *u, struct dp_wsenv *e, struct dp_err *err)
{
	memset(u, 0, sizeof(*u));
	memset(e, 0, sizeof(*e));
	if (db == NULL || !dp_is_id(sid)) {
		dp_err_set(err, 1, "no database or session");
		return -1;
	}
	return admit_row(db, false, sid, NULL, env_id, u, e, err);
}

#endif /* WSAPP_DB */

#ifndef DP_WSAPP_LIGHT
void
dp_wsapp_env_release(struct dp_wsenv *e)
{
	free(e->name);
	free(e->template);
	free(e->status);
	free(e->image);
	free(e->cluster_id);
	free(e->provider);
	free(e->endpoint);
	free(e->kube_sealed);
	memset(e, 0, sizeof(*e));
}

struct json_object *
dp_wsapp_env_json(const struct dp_wsenv *e, bool pty)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "id", e->id);
	dp_json_str(o, "name", e->name);
	dp_json_str(o, "template", e->template);
	dp_json_str(o, "status", e->status);
	dp_json_bool(o, "installation_completed", e->installation_completed);
	dp_json_bool(o, "pty_enabled", pty);
	return o;
}

const char *
dp_wsapp_status_reason(const char *status)
{
	if (status == NULL || strcmp(status, "terminated") == 0)
		return "Environment terminated";
	if (strcmp(status, "stopped") == 0)
		return "Environment stopped";
	if (strcmp(status, "error") == 0)
		return "Environment error";
	/* creating, installing: a restart (or start) is under way. */
	return "Environment restarting";
}

#endif /* !DP_WSAPP_LIGHT */

#ifdef WSAPP_DB
/* ---- slots -------------------------------------------------------------- */

static const char *
hostname(void)
{
	static char	 h[256];

	if (h[0] == '\0' && (gethostname(h, sizeof(h) - 1) < 0 || !h[0]))
		snprintf(h, sizeof(h), "localhost");
	return h;
}

static bool
pid_alive(const char *s)
{
	int64_t	 pid;

	if (dp_parse_int64(s, 1, INT32_MAX, &pid) < 0)
		return false;
	return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}


/*
 * Rows with what says whether their process is gone: columns id, pid,
 * reserved (a reservation, pid 0, is alive for DP_WS_RESERVE_S seconds),
 * user_id, stale (not seen for devpocket_ws_stale(), sql/009_ws_seen.sql:
 * dead whatever its host).  HOST_ROWS: this host's.
 */
#define ROWS \
	"SELECT id, pid, pid = 0 AND started_at > now() - " \
	"make_interval(secs => $2::int), user_id, " \
	"seen_at < now() - devpocket_ws_stale() FROM ws_connections "
#define HOST_ROWS	ROWS "WHERE host = $1"

/*
 * Rows from..to-1 of r (ROWS: this host's, or stale) whose process is
 * gone, as an array literal in dead ("{id,...}"); their count.
 */
static int
dead_of(const PGresult *r, int from, int to, struct dp_buf *dead)
{
	int	 i, n = 0;

	/* Ids are [0-9a-f]: an array literal without quoting. */
	dp_buf_reset(dead);
	dp_buf_addc(dead, '{');
	for (i = from; i < to; i++) {
		if (!dp_is_id(PQgetvalue(r, i, 0)))
			continue;
		if (PQgetvalue(r, i, 4)[0] != 't' &&
		    (PQgetvalue(r, i, 2)[0] == 't' ||
		    pid_alive(PQgetvalue(r, i, 1))))
			continue;
		if (n++ > 0)
			dp_buf_addc(dead, ',');
		dp_buf_adds(dead, PQgetvalue(r, i, 0));
	}
	dp_buf_addc(dead, '}');
	return n;
}

/* This host's rows of the user whose process is gone (dead_of); -1. */
static int
dead_rows(struct dp_db *db, bool prepared, const char *user_id,
    struct dp_buf *dead)
{
	static const char mine[] = HOST_ROWS " AND user_id = $3";
	char		 ttl[24];
	const char	*p[3];
	PGresult	*r;
	int		 n = -1;

	snprintf(ttl, sizeof(ttl), "%d", DP_WS_RESERVE_S);
	p[0] = hostname();
	p[1] = ttl;
	p[2] = user_id;
	r = prepared ? dp_db_exec(db, mine, 3, p) : exec_once(db, mine, 3, p);
	if (dp_db_ok(r))
		n = dead_of(r, 0, PQntuples(r), dead);
	PQclear(r);
	return n;
}

/*
 * devpocket_ws_slot (sql/005_ws_slot.sql, replaced by 006_ws_drop.sql)
 * in one round trip: under the user's lock it drops the dead rows, ends
 * their sessions, counts in a statement of its own (its snapshot sees
 * every slot committed under the lock) and inserts.  1 taken, 0 at the
 * limit, -1.
 */
static int
slot_call(struct dp_db *db, bool prepared, const char *const p[10])
{
	static const char take[] =
	    "SELECT devpocket_ws_slot($1, $2, $3, $4, $5::int, $6, $7::bigint, "
	    "$8::text[], $9, $10)";
	PGresult	*r;
	int		 rc = -1;

	r = prepared ? dp_db_exec(db, take, 10, p) : exec_once(db, take, 10, p);
	if (dp_db_ok(r) && PQntuples(r) == 1)
		rc = PQgetvalue(r, 0, 0)[0] == 't';
	PQclear(r);
	return rc;
}

/*
 * A socket's own slot (pid, per-socket program: unprepared) lists the
 * dead rows first, so that they go now.  A reservation (pid 0, the auth
 * responder: prepared, and before an upgrade: quick) tries without them
 * and lists them only at the limit; its claim drops them afterwards.
 */
static int
slot_insert(struct dp_db *db, bool prepared, const char *user_id,
    enum dp_ws_kind kind, const char *env_id, int pid, const char *device,
    int64_t limit, char slot[25], char session[25])
{
	struct dp_buf	 dead = { 0 };
	char		 spid[24], lim[24];
	const char	*p[10];
	int		 rc = -1;

	dp_new_id(slot);
	if (session != NULL)
		dp_new_id(session);
	dp_buf_adds(&dead, "{}");
	if (pid != 0 && dead_rows(db, prepared, user_id, &dead) < 0)
		goto out;
	snprintf(spid, sizeof(spid), "%d", pid);
	snprintf(lim, sizeof(lim), "%lld", (long long)limit);
	p[0] = slot;
	p[1] = user_id;
	p[2] = dp_ws_kind_names[kind];
	p[3] = env_id;
	p[4] = spid;
	p[5] = hostname();
	p[6] = lim;
	p[7] = dead.s;
	p[8] = session;
	p[9] = device != NULL && device[0] != '\0' ? device : NULL;
	rc = slot_call(db, prepared, p);
	if (rc == 0 && pid == 0 && dead_rows(db, prepared, user_id, &dead) > 0) {
		p[7] = dead.s;
		rc = slot_call(db, prepared, p);
	}
out:
	dp_buf_release(&dead);
	return rc;
}

int
dp_wsapp_slot_take(struct dp_db *db, const char *user_id,
    enum dp_ws_kind kind, const char *env_id, int64_t limit, char slot[25])
{
	return slot_insert(db, false, user_id, kind, env_id, (int)getpid(),
	    NULL, limit, slot, NULL);
}

int
dp_wsapp_slot_reserve(struct dp_db *db, const char *user_id,
    const char *env_id, const char *device, int64_t limit, char slot[25],
    char session[25])
{
	return slot_insert(db, true, user_id, DP_WSK_TERMINAL, env_id, 0,
	    device, limit, slot, session);
}

/*
 * The claim, with what the reservation left out: the environment marked
 * accessed, and the user's dead rows on this host dropped (their
 * sessions ended).
 */
int
dp_wsapp_slot_claim(struct dp_db *db, const char *slot, int pid)
{
	static const char claim[] =
	    "WITH c AS (UPDATE ws_connections SET pid = $2::int, "
	    "seen_at = now() WHERE id = $1 AND pid IN (0, $2::int) "
	    "AND host = $3 "
	    "RETURNING user_id, environment_id), "
	    "e AS (UPDATE environments SET last_accessed = now(), "
	    "last_activity = now() WHERE id = (SELECT environment_id FROM c)) "
	    "SELECT user_id FROM c";
	static const char drop[] =
	    "SELECT devpocket_ws_drop($1, $2::text[])";
	struct dp_buf	 dead = { 0 };
	char		 spid[24], user[25];
	const char	*p[3];
	PGresult	*r;
	int		 rc = -1;

	snprintf(spid, sizeof(spid), "%d", pid);
	p[0] = slot;
	p[1] = spid;
	p[2] = hostname();
	r = exec_once(db, claim, 3, p);
	if (dp_db_ok(r))
		rc = PQntuples(r) == 1;
	if (rc == 1)
		snprintf(user, sizeof(user), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	if (rc == 1 && dead_rows(db, false, user, &dead) > 0) {
		p[0] = user;
		p[1] = dead.s;
		r = exec_once(db, drop, 2, p);
		PQclear(r);
	}
	dp_buf_release(&dead);
	return rc;
}

int
dp_wsapp_slot_session(struct dp_db *db, const char *slot, const char *sid)
{
	static const char sql[] =
	    "UPDATE ws_connections SET session_id = $2 WHERE id = $1";
	const char	*p[2] = { slot, sid };

	return dp_db_run(db, sql, 2, p);
}

int
dp_wsapp_slot_free(struct dp_db *db, const char *slot)
{
	static const char sql[] = "DELETE FROM ws_connections WHERE id = $1";

	return dp_db_run(db, sql, 1, &slot);
}

/*
 * A user's next socket here drops that user's dead rows; one who does not
 * come back would keep them for ever, holding slots and keeping the
 * environment from its idle stop (§4.4 counts them as open sockets).
 * Other hosts' rows whose process is gone are for those hosts' workers,
 * but rows not seen for devpocket_ws_stale() (sql/009_ws_seen.sql) are
 * dead whatever their host: a host gone for good, or one without a
 * worker, leaves rows no one else would drop.
 */
int
dp_wsapp_sweep(struct dp_db *db)
{
	static const char rows[] = HOST_ROWS
	    " OR seen_at < now() - devpocket_ws_stale() ORDER BY user_id";
	static const char drop[] =
	    "SELECT devpocket_ws_drop($1, $2::text[])";
	struct dp_buf	 dead = { 0 };
	const char	*p[2];
	char		 ttl[24];
	PGresult	*r;
	int		 i, j, n, total = 0;

	snprintf(ttl, sizeof(ttl), "%d", DP_WS_RESERVE_S);
	p[0] = hostname();
	p[1] = ttl;
	r = dp_db_exec(db, rows, 2, p);
	if (!dp_db_ok(r)) {
		PQclear(r);
		return -1;
	}
	/* One statement for every user's rows; a drop per user with dead. */
	for (i = 0; i < PQntuples(r); i = j) {
		for (j = i + 1; j < PQntuples(r) && strcmp(PQgetvalue(r, j,
		    3), PQgetvalue(r, i, 3)) == 0; j++)
			;
		if ((n = dead_of(r, i, j, &dead)) == 0)
			continue;
		p[0] = PQgetvalue(r, i, 3);
		p[1] = dead.s;
		if (dp_db_run(db, drop, 2, p) == 0)
			total += n;
	}
	PQclear(r);
	dp_buf_release(&dead);
	return total;
}

#endif /* WSAPP_DB */

int64_t
dp_wsapp_env_ms(const char *name, int64_t dflt)
{
	const char	*v = getenv(name);
	int64_t		 n;

	if (v == NULL || dp_parse_int64(v, 50, 86400000, &n) < 0)
		return dflt;
	return n;
}

/* ---- UTF-8 -------------------------------------------------------------- */

/*
 * Length of the sequence a lead byte starts (1 for ASCII), 0 when it can
 * start none; lo/hi bound the second byte (RFC 3629 table).
 */
static size_t
seq_len(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c >= 0xe0 && c <= 0xef) {
		if (c == 0xe0)
			*lo = 0xa0;
		if (c == 0xed)
			*hi = 0x9f;
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (c == 0xf0)
			*lo = 0x90;
		if (c == 0xf4)
			*hi = 0x8f;
		return 4;
	}
	return 0;
}

size_t
dp_utf8_take(struct dp_buf *out, const char *in, size_t n, size_t maxout,
    bool final)
{
	const unsigned char	*p = (const unsigned char *)in;
	unsigned char		 lo, hi;
	size_t			 i = 0, len, k, used = 0, emit;
	bool			 ok;

	while (i < n) {
		len = seq_len(p[i], &lo, &hi);
		ok = len > 0;
		for (k = 1; ok && k < len && i + k < n; k++)
			if (p[i + k] < (k == 1 ? lo : 0x80) ||
			    p[i + k] > (k == 1 ? hi : 0xbf))
				ok = false;
		if (ok && i + len > n && !final)
			break;		/* incomplete tail: wait for more */
		if (ok && i + len > n)
			ok = false;
		emit = ok ? len : 3;
		if (used + emit > maxout)
			break;
		if (ok)
			dp_buf_add(out, p + i, len);
		else
			dp_buf_add(out, "\xef\xbf\xbd", 3);
		used += emit;
		i += ok ? len : 1;
	}
	return i;
}

/* ---- messages ----------------------------------------------------------- */

void
dp_wsapp_msg(struct dp_buf *out, struct json_object *o)
{
	const char	*s;
	size_t		 n = 0;

	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN |
	    JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	dp_buf_add(out, s, n);
	dp_buf_addc(out, '\n');
	json_object_put(o);
}

void
dp_wsapp_error(struct dp_buf *out, const char *m)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "type", "error");
	dp_json_str(o, "message", m);
	dp_json_str(o, "data", m);
	dp_wsapp_msg(out, o);
}

void
dp_wsapp_close(struct dp_buf *out, int code, const char *reason)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "type", "close");
	dp_json_int(o, "code", code);
	dp_json_str(o, "reason", reason);
	dp_wsapp_msg(out, o);
}

void
dp_wsapp_simple(struct dp_buf *out, const char *type)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "type", type);
	dp_wsapp_msg(out, o);
}

void
dp_wsapp_info(struct dp_buf *out, const char *m)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "type", "info");
	dp_json_str(o, "message", m);
	dp_wsapp_msg(out, o);
}

int
dp_wsapp_flush_some(int fd, struct dp_buf *b)
{
	size_t		 off = 0;
	ssize_t		 w;
	int		 rc = 0;

	while (off < b->len) {
		w = write(fd, b->s + off, b->len - off);
		if (w > 0)
			off += (size_t)w;
		else if (w < 0 && errno == EINTR)
			continue;
		else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		else {
			rc = -1;
			off = b->len;
		}
	}
	dp_buf_drop(b, off);
	return rc;
}

int
dp_wsapp_flush_wait(int fd, struct dp_buf *b, int ms)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLOUT };
	int64_t		 end = dp_mono_ms() + ms, left;

	for (;;) {
		if (dp_wsapp_flush_some(fd, b) < 0)
			return -1;
		if (b->len == 0)
			return 0;
		if ((left = end - dp_mono_ms()) <= 0)
			return -1;
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
			return -1;
	}
}

/* ---- input lines -------------------------------------------------------- */

enum jstate { J_WHOLE, J_OPEN, J_BAD };

/*
 * What t's parse of the n bytes at s, the latest it was given, found: a
 * whole JSON object (nothing but blanks after it), the start of one, or
 * not one.
 */
static enum jstate
jstate_of(struct json_tokener *t, const char *s, size_t n)
{
	struct json_object	*o;
	enum json_tokener_error	 e;
	size_t			 end;

	o = json_tokener_parse_ex(t, s, (int)n);
	e = json_tokener_get_error(t);
	end = json_tokener_get_parse_end(t);
	json_object_put(o);
	if (e == json_tokener_continue)
		return J_OPEN;
	if (e != json_tokener_success)
		return J_BAD;
	while (end < n && strchr(" \t\r", s[end]) != NULL)
		end++;
	return end == n ? J_WHOLE : J_BAD;
}

/*
 * Whether s (n bytes) is a whole JSON object, the start of one, or not.
 * For the start of one, *keep (when not NULL) gets the tokener, which
 * takes the message's next bytes where it stopped: a message split into
 * many lines is parsed once, not again with each line (that was
 * quadratic: 64 KiB of "{" and line ends took seconds).
 */
static enum jstate
jstate(const char *s, size_t n, struct json_tokener **keep)
{
	struct json_tokener	*t;
	enum jstate		 st;
	size_t			 i = 0;

	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
		i++;
	if (i == n || s[i] != '{' || (t = json_tokener_new_ex(32)) == NULL)
		return J_BAD;
	json_tokener_set_flags(t, JSON_TOKENER_STRICT);
	st = jstate_of(t, s, n);
	if (st == J_OPEN && keep != NULL)
		*keep = t;
	else
		json_tokener_free(t);
	return st;
}

/* The message that waited is done with. */
static void
pend_reset(struct dp_wslines *l)
{
	dp_buf_reset(&l->pend);
	l->due = 0;
	if (l->tok != NULL)
		json_tokener_free(l->tok);
	l->tok = NULL;
}

/* A whole line: the messages it ends or holds, to cb. */
static void
line_done(struct dp_wslines *l, const char *s, size_t n, dp_wsline_cb cb,
    void *arg)
{
	const char	*p;
	enum jstate	 st;
	int		 tries;

	if (l->pend.len > 0) {
		if (l->pend.len + 1 + n > DP_WS_LINE_MAX) {
			pend_reset(l);
			cb(arg, NULL, 0, true);
			return;
		}
		dp_buf_addc(&l->pend, '\n');
		dp_buf_add(&l->pend, s, n);
		/* The line end, then the line, where the parse stopped. */
		/* (pend is only kept with its parse, which a line end
		 * cannot complete) */
		st = l->tok != NULL ? jstate_of(l->tok, "\n", 1) : J_BAD;
		if (st == J_OPEN)
			st = jstate_of(l->tok, s, n);
		if (st == J_OPEN)
			return;
		if (st == J_WHOLE) {
			cb(arg, l->pend.s, l->pend.len, false);
			pend_reset(l);
			return;
		}
		/* Not one message: what waited was one of its own. */
		l->pend.len -= 1 + n;
		l->pend.s[l->pend.len] = '\0';
		cb(arg, l->pend.s, l->pend.len, false);
		pend_reset(l);
	}
	if ((st = jstate(s, n, &l->tok)) == J_OPEN) {
		dp_buf_add(&l->pend, s, n);
		return;
	}
	/*
	 * Bytes glued before a message in one read (a binary frame's, a few
	 * tries): not a message, never acted on; then the message.
	 */
	if (st == J_BAD)
		for (p = s + 1, tries = 0; tries < 8 && p < s + n &&
		    (p = memchr(p, '{', (size_t)(s + n - p))) != NULL;
		    p++, tries++)
			if (jstate(p, (size_t)(s + n - p), NULL) == J_WHOLE) {
				cb(arg, NULL, 0, false);
				n -= (size_t)(p - s);
				s = p;
				break;
			}
	cb(arg, s, n, false);
}

void
dp_wslines_release(struct dp_wslines *l)
{
	dp_buf_release(&l->line);
	pend_reset(l);
	dp_buf_release(&l->pend);
}

/* What waited (an open message) goes as it is. */
static void
pend_flush(struct dp_wslines *l, dp_wsline_cb cb, void *arg)
{
	if (l->pend.len > 0)
		cb(arg, l->pend.s, l->pend.len, false);
	pend_reset(l);
}

/*
 * The line ends.  Its bytes before mark came in an earlier read, with no
 * line end: when the line is not one message but the bytes from mark on
 * begin one, those bytes were a frame of their own (binary: websocketd
 * writes it with no line end), and are not acted on.
 */
static void
line_end(struct dp_wslines *l, dp_wsline_cb cb, void *arg)
{
	const char	*s = l->line.s != NULL ? l->line.s : "";
	size_t		 n = l->line.len, m = l->mark;
	enum jstate	 st;

	l->mark = 0;
	if (l->discarding) {
		pend_reset(l);
		if (!l->told)
			cb(arg, NULL, 0, true);
		return;
	}
	if (m > 0 && m < n && l->pend.len == 0 &&
	    jstate(s, n, NULL) != J_WHOLE &&
	    ((st = jstate(s + m, n - m, NULL)) == J_WHOLE || st == J_OPEN)) {
		cb(arg, NULL, 0, false);
		s += m;
		n -= m;
	}
	line_done(l, s, n, cb, arg);
}

void
dp_wsapp_feed_lines(struct dp_wslines *l, const char *p, size_t n,
    dp_wsline_cb cb, void *arg)
{
	const char	*nl;
	size_t		 k;

	while (n > 0) {
		nl = memchr(p, '\n', n);
		k = nl ? (size_t)(nl - p) : n;
		if (!l->discarding) {
			if (l->line.len + k > DP_WS_LINE_MAX) {
				l->discarding = true;
				dp_buf_release(&l->line);
			} else
				dp_buf_add(&l->line, p, k);
		}
		if (nl == NULL)
			break;
		line_end(l, cb, arg);
		l->discarding = l->told = false;
		dp_buf_reset(&l->line);
		p += k + 1;
		n -= k + 1;
	}
	/*
	 * websocketd writes a frame and its line end at once.  What came
	 * with no line end is a binary frame, or the start of a frame
	 * larger than the pipe's atomic write whose rest comes at once; an
	 * open message at the end of what came, with no line begun after
	 * it, is a whole frame (a truncated message) or such a start too.
	 * Each waits DP_WS_PEND_MS (from the last bytes) for more, then
	 * goes as it is (dp_wslines_expire).
	 */
	if (l->line.len > 0 || l->discarding) {
		l->mark = l->line.len;
		l->due = dp_mono_ms() + DP_WS_PEND_MS;
	} else if (l->pend.len == 0)
		l->due = 0;
	else if (l->due == 0)
		l->due = dp_mono_ms() + DP_WS_PEND_MS;
}

void
dp_wslines_expire(struct dp_wslines *l, int64_t now_ms, dp_wsline_cb cb,
    void *arg)
{
	if (l->due == 0 || now_ms < l->due)
		return;
	l->due = 0;
	if (l->discarding) {
		/* Too large, and no line end came: said now, once. */
		if (!l->told)
			cb(arg, NULL, 0, true);
		l->told = true;
		pend_reset(l);
		return;
	}
	pend_flush(l, cb, arg);
	if (l->line.len > 0) {
		/* A frame with no line end: binary (not a message). */
		cb(arg, NULL, 0, false);
		dp_buf_reset(&l->line);
		l->mark = 0;
	}
}

int
dp_wsapp_read_lines(int fd, struct dp_wslines *l, dp_wsline_cb cb, void *arg)
{
	char	 buf[65536];
	ssize_t	 r;

	do
		r = read(fd, buf, sizeof(buf));
	while (r < 0 && errno == EINTR);
	if (r == 0)
		return -1;
	if (r < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -1;
	dp_wsapp_feed_lines(l, buf, (size_t)r, cb, arg);
	return 1;
}

#ifndef DP_WSAPP_LIGHT
/* ---- set-up ------------------------------------------------------------- */

int
dp_wsapp_init(const char *program)
{
	struct dp_err	 err = { 0 };
	const char	*path = dp_config_default_path();

	dp_log_init(program, "json", "info");
	if (dp_config_load(&dp_cfg, path, getenv("DEVPOCKET_CONF") != NULL,
	    &err) < 0) {
		dp_error("configuration: %s", err.msg);
		return -1;
	}
	dp_log_init(program, dp_cfg.web_log_format, dp_cfg.web_log_level);
	return 0;
}

#endif /* !DP_WSAPP_LIGHT */

#ifdef WSAPP_DB
struct dp_db *
dp_wsapp_db_open(void)
{
	struct dp_err	 err = { 0 };
	struct dp_db	*db;
	int		 i;

	/*
	 * Many sockets start or end at once (a client reconnecting its
	 * tabs, a restart): the server's listen queue or its connection
	 * slots may be full for a moment, so try a few times (0.6 s).
	 */
	for (i = 0; (db = dp_db_open(dp_cfg.db_url, &err)) == NULL && i < 4;
	    i++)
		usleep((useconds_t)(40000 << i));
	if (db == NULL)
		dp_error("database: %s", err.msg);
	return db;
}
#endif /* WSAPP_DB */
