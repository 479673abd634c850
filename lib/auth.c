/* lib/auth.c: bearer authentication, login sessions, token pairs, users */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "http.h"
#include "jobs.h"
#include "jwt.h"
#include "log.h"
#include "outbox.h"

/*
 * The caller (me: the User columns, has_pw, age) and the count of its
 * general window (hit); the statement's SELECT follows.
 */
#define AUTH_WITH \
	"WITH me AS (SELECT " DP_USER_COLS ", " \
	"u.password_hash IS NOT NULL AS has_pw, " \
	"extract(epoch FROM now() - s.authenticated_at)::bigint AS age " \
	"FROM login_sessions s JOIN users u ON u.id = s.user_id " \
	"WHERE s.id = $1 AND u.id = $2 AND s.revoked_at IS NULL " \
	"AND u.is_active AND u.deleted_at IS NULL), " \
	"hit AS (INSERT INTO rate_windows (key, window_start, window_len, " \
	"count) SELECT 'user:' || $2, $3::bigint, $4::int, 1 " \
	"WHERE $5::bool AND EXISTS (SELECT 1 FROM me) " \
	"ON CONFLICT (key, window_start) DO UPDATE " \
	"SET count = rate_windows.count + 1 RETURNING count) "
/* me's columns and the count: where a rider's columns begin. */
#define AUTH_NCOLS	(DP_USER_NCOLS + 3)

/* The statement, with the rider's subquery (built once: one per process). */
static const char *
auth_sql(const struct dp_rider *rider)
{
	static const char		 sql[] =
	    AUTH_WITH "SELECT me.*, (SELECT count FROM hit) FROM me";
	static const struct dp_rider	*made_for;
	static char			*made;
	struct dp_buf			 b = { 0 };

	if (rider == NULL)
		return sql;
	if (made_for == rider)
		return made;
	dp_buf_adds(&b, AUTH_WITH "SELECT me.*, (SELECT count FROM hit), "
	    "x.* FROM me LEFT JOIN LATERAL (");
	dp_buf_adds(&b, rider->sql);
	dp_buf_adds(&b, ") x ON true ORDER BY ");
	dp_buf_adds(&b, rider->order);
	free(made);
	made = dp_buf_detach(&b);
	made_for = rider;
	return made;
}

int
dp_auth_bearer(struct dp_req *req, const char *token, bool count,
    const struct dp_rider *rider, struct dp_user **out)
{
	const char		*sql = auth_sql(rider);
	const struct dp_buf	*key = dp_auth_key();
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };
	struct dp_user		*u;
	char			 ws[24], wl[24];
	const char		*p[5];
	PGresult		*r;
	int			 plan;

	*out = NULL;
	if (key == NULL || req->db == NULL)
		return -1;
	if (dp_jwt_verify_access(token, key->s, key->len, dp_cfg.auth_issuer,
	    (int64_t)dp_now(), &c, &err) < 0)
		return -1;
	dp_ratelimit_window(60, ws, wl);
	p[0] = c.sid;
	p[1] = c.sub;
	p[2] = ws;
	p[3] = wl;
	p[4] = count ? "true" : "false";
	r = dp_db_exec(req->db, sql, 5, p);
	if (!dp_db_ok(r) && rider != NULL) {
		/* The rider's failure is not the caller's: ask without it
		 * (the handler asks its own, and answers its own error). */
		PQclear(r);
		rider = NULL;
		r = dp_db_exec(req->db, auth_sql(NULL), 5, p);
	}
	if (!dp_db_ok(r) || PQntuples(r) < 1 ||
	    (rider == NULL && PQntuples(r) != 1)) {
		PQclear(r);
		return -1;
	}
	u = dp_req_alloc(req, sizeof(*u));
	memset(u, 0, sizeof(*u));
	memcpy(u->id, c.sub, sizeof(u->id));
	memcpy(u->sid, c.sid, sizeof(u->sid));
	u->username = PQgetvalue(r, 0, 1);
	u->email = PQgetvalue(r, 0, 2);
	u->verified = PQgetvalue(r, 0, 7)[0] == 't';
	plan = dp_plan_from_name(PQgetvalue(r, 0, 8));
	u->plan = plan < 0 ? DP_PLAN_FREE : plan;
	u->has_password = PQgetvalue(r, 0, DP_USER_NCOLS)[0] == 't';
	u->auth_age = strtoll(PQgetvalue(r, 0, DP_USER_NCOLS + 1), NULL, 10);
	if (!PQgetisnull(r, 0, DP_USER_NCOLS + 2))
		u->window_count = strtoll(PQgetvalue(r, 0, DP_USER_NCOLS + 2),
		    NULL, 10);
	u->rider = rider != NULL ? AUTH_NCOLS : 0;
	u->row = r;	/* freed with the request */
	*out = u;
	return 0;
}

/* The User object of row r from column c, as JSON text (one layout). */
static void
user_write(struct dp_buf *b, const PGresult *r, int row, int c)
{
	dp_buf_grow(b, 512);	/* what one usually takes */
	dp_buf_addc(b, '{');
	dp_jw_str(b, "id", dp_db_val(r, row, c + 0));
	dp_jw_str(b, "username", dp_db_val(r, row, c + 1));
	dp_jw_str(b, "email", dp_db_val(r, row, c + 2));
	dp_jw_str(b, "full_name", dp_db_val(r, row, c + 3));
	dp_jw_str(b, "preferred_region", dp_db_val(r, row, c + 4));
	dp_jw_str(b, "avatar_url", dp_db_val(r, row, c + 5));
	dp_jw_bool(b, "is_active", PQgetvalue(r, row, c + 6)[0] == 't');
	dp_jw_bool(b, "is_verified", PQgetvalue(r, row, c + 7)[0] == 't');
	dp_jw_str(b, "subscription_plan", dp_db_val(r, row, c + 8));
	dp_jw_ts(b, "created_at", dp_db_val(r, row, c + 9));
	dp_jw_ts(b, "updated_at", dp_db_val(r, row, c + 10));
	dp_jw_ts(b, "last_login", dp_db_val(r, row, c + 11));
	dp_buf_addc(b, '}');
}

/* A body only: written as text, no object per value. */
struct json_object *
dp_user_json_self(const struct dp_user *u)
{
	struct dp_buf	 b = { 0 };

	user_write(&b, u->row, 0, 0);
	return dp_json_raw(&b);
}

/* An object its callers read (register flattens it): the text, parsed. */
struct json_object *
dp_user_json(const PGresult *r, int row, int c)
{
	struct dp_buf		 b = { 0 };
	struct json_object	*o;

	user_write(&b, r, row, c);
	if ((o = dp_json_parse(b.s, b.len, 2)) == NULL) {
		/* Cannot happen with UTF-8 columns: say so if it does. */
		dp_error("a User row's JSON text does not parse");
		o = json_object_new_object();
	}
	dp_buf_release(&b);
	return o;
}

struct json_object *
dp_user_json_by_id(struct dp_db *db, const char *id)
{
	static const char sql[] =
	    "SELECT " DP_USER_COLS " FROM users u WHERE u.id = $1";
	struct json_object	*o = NULL;
	PGresult		*r = dp_db_exec(db, sql, 1, &id);

	if (dp_db_ok(r) && PQntuples(r) == 1)
		o = dp_user_json(r, 0, 0);
	PQclear(r);
	return o;
}

int
dp_auth_session_new(struct dp_db *db, const char *user_id, char sid[25])
{
	static const char sql[] =
	    "INSERT INTO login_sessions (id, user_id) VALUES ($1, $2)";
	const char	*p[2];

	dp_new_id(sid);
	p[0] = sid;
	p[1] = user_id;
	return dp_db_run(db, sql, 2, p);
}

struct json_object *
dp_auth_token_pair(struct dp_db *db, const char *user_id, const char *sid)
{
	static const char sql[] =
	    "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) "
	    "VALUES ($1, $2, now() + make_interval(secs => $3::bigint))";
	const struct dp_buf	*key = dp_auth_key();
	struct json_object	*o = NULL, *user;
	char			 refresh[44], hash[65], ttl[24];
	const char		*p[3] = { hash, sid, ttl };
	char			*access = NULL;

	if (key == NULL)
		return NULL;
	access = dp_jwt_issue_access(key->s, key->len, dp_cfg.auth_issuer,
	    user_id, sid, (int64_t)dp_now(), dp_cfg.auth_access_ttl);
	if (access == NULL)
		goto out;
	dp_token_new(refresh);
	dp_sha256_hex(refresh, strlen(refresh), hash);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)dp_cfg.auth_refresh_ttl);
	if (dp_db_run(db, sql, 3, p) < 0)
		goto out;
	if ((user = dp_user_json_by_id(db, user_id)) == NULL)
		goto out;
	o = json_object_new_object();
	dp_json_str(o, "access_token", access);
	dp_json_str(o, "refresh_token", refresh);
	dp_json_str(o, "token_type", "bearer");
	dp_json_int(o, "expires_in", dp_cfg.auth_access_ttl);
	json_object_object_add(o, "user", user);
out:
	if (access != NULL) {
		explicit_bzero(access, strlen(access));
		free(access);
	}
	explicit_bzero(refresh, sizeof(refresh));
	return o;
}

int
dp_auth_revoke_user(struct dp_db *db, const char *user_id, const char *keep)
{
	static const char sql[] =
	    "UPDATE login_sessions SET revoked_at = now() WHERE user_id = $1 "
	    "AND revoked_at IS NULL AND ($2::text IS NULL OR id <> $2)";
	const char	*p[2] = { user_id, keep };

	return dp_db_run(db, sql, 2, p);
}

/* ---- email links ---------------------------------------------------------- */

/* A new single-use email token of kind for the user; the earlier unused
 * ones of that kind die.  out[44]. */
static int
email_token(struct dp_db *db, const char *user_id, const char *kind,
    int64_t ttl_seconds, char out[44])
{
	static const char kill[] =
	    "UPDATE email_tokens SET used_at = now() WHERE user_id = $1 "
	    "AND kind = $2 AND used_at IS NULL";
	static const char ins[] =
	    "INSERT INTO email_tokens (token_hash, user_id, kind, expires_at) "
	    "VALUES ($1, $2, $3, now() + make_interval(secs => $4::bigint))";
	char		 hash[65], ttl[24];
	const char	*p[4] = { hash, user_id, kind, ttl };

	if (dp_db_run(db, kill, 2, (const char *const[]){ user_id, kind }) < 0)
		return -1;
	dp_token_new(out);
	dp_sha256_hex(out, strlen(out), hash);
	snprintf(ttl, sizeof(ttl), "%lld", (long long)ttl_seconds);
	return dp_db_run(db, ins, 4, p);
}

int
dp_auth_mail_link(struct dp_db *db, const char *user_id, const char *kind,
    int64_t ttl_seconds, const char *to, const char *username,
    const char *path)
{
	struct dp_buf	 link = { 0 };
	char		 tok[44];
	int		 rc;

	if (email_token(db, user_id, kind, ttl_seconds, tok) < 0)
		return -1;
	dp_buf_printf(&link, "%s/%s?token=%s", dp_cfg.mail_frontend_url, path,
	    tok);
	explicit_bzero(tok, sizeof(tok));
	rc = dp_outbox_queue(db, kind, to, (const char *const[]){
	    "link", link.s, "username", username, NULL });
	dp_buf_wipe(&link);
	return rc;
}

int
dp_job_auth_reset(struct dp_db *db, const char *payload, struct dp_err *err)
{
	static const char find[] =
	    "SELECT id, username, email FROM users WHERE lower(email) = $1 "
	    "AND is_active AND deleted_at IS NULL";
	struct json_object	*o, *v;
	PGresult		*r = NULL;
	const char		*email;
	int			 rc = DP_JOB_RETRY;

	if ((o = dp_json_parse(payload, strlen(payload), 4)) == NULL ||
	    !json_object_object_get_ex(o, "email", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		json_object_put(o);
		dp_err_set(err, 0, "malformed payload");
		return DP_JOB_PERMANENT;
	}
	email = json_object_get_string(v);
	if (dp_db_begin(db) < 0)
		goto out;
	r = dp_db_exec(db, find, 1, &email);
	if (!dp_db_ok(r))
		goto out;
	if (PQntuples(r) == 1 && dp_auth_mail_link(db, PQgetvalue(r, 0, 0),
	    "reset", dp_cfg.auth_reset_ttl_minutes * 60, PQgetvalue(r, 0, 2),
	    PQgetvalue(r, 0, 1), "reset-password") < 0)
		goto out;
	if (dp_db_commit(db) == 0)
		rc = DP_JOB_OK;
out:
	if (rc != DP_JOB_OK) {
		dp_db_rollback(db);
		dp_err_set(err, 0, "database error");
	}
	PQclear(r);
	json_object_put(o);
	return rc;
}
