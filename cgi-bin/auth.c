/* cgi-bin/auth.c: /api/v1/auth responder (register, login, tokens, mail flows) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "google.h"
#include "http.h"
#include "jobs.h"
#include "jwt.h"
#include "log.h"
#include "outbox.h"
#include "password.h"
#include "wsapp.h"
#include "wsticket.h"

/* A hash to verify against when the user is unknown, so that timing does
 * not tell which identifiers exist.  Made once per worker. */
static char dummy_hash[128];

static int
hash_password(const char *pw, char *out, size_t n)
{
	return dp_password_hash(pw, (uint64_t)dp_cfg.auth_scrypt_n,
	    (uint32_t)dp_cfg.auth_scrypt_r, (uint32_t)dp_cfg.auth_scrypt_p,
	    out, n);
}

static bool
check_password(const char *mcf, const char *pw)
{
	if (mcf == NULL) {
		if (dummy_hash[0] == '\0' &&
		    hash_password("dummy-Passw0rd", dummy_hash,
		    sizeof(dummy_hash)) < 0)
			return false;
		(void)dp_password_check(dummy_hash, pw);
		return false;
	}
	return dp_password_check(mcf, pw);
}

/* Per-identifier limiter of §0.10 (skipped when the identifier is absent). */
static int
limit_identifier(struct dp_req *req, struct dp_res *res, const char *route,
    const char *ident)
{
	struct dp_buf	 b = { 0 };
	char		*key;
	size_t		 i;
	int		 rc;

	if (ident == NULL || *ident == '\0')
		return 0;
	dp_buf_printf(&b, "id:%s:%s:", route, req->client_ip);
	for (i = 0; ident[i]; i++)
		dp_buf_addc(&b, (ident[i] >= 'A' && ident[i] <= 'Z') ?
		    ident[i] + 32 : ident[i]);
	key = dp_req_strdup(req, b.s);
	dp_buf_release(&b);
	rc = dp_ratelimit(req, res, key, dp_cfg.limits_rate_auth_identifier, 60);
	if (rc < 0)
		return dp_fail_db(req, res);
	return rc;
}

static int
queue_verification(struct dp_db *db, const char *user_id, const char *email,
    const char *username)
{
	return dp_auth_mail_link(db, user_id, "verify",
	    dp_cfg.auth_verify_ttl_hours * 3600, email, username,
	    "verify-email");
}

/* Session + token pair in one transaction already open; answers. */
static int
issue_tokens(struct dp_req *req, struct dp_res *res, const char *user_id,
    int status, struct json_object **extra)
{
	struct json_object	*tok;
	char			 sid[25];

	if (dp_auth_session_new(req->db, user_id, sid) < 0 ||
	    (tok = dp_auth_token_pair(req->db, user_id, sid)) == NULL)
		return dp_fail_db(req, res);
	if (dp_db_commit(req->db) < 0) {
		json_object_put(tok);
		return dp_fail_db(req, res);
	}
	if (extra != NULL)
		*extra = tok;
	return dp_ok(res, status, tok);
}

/* ---- register ----------------------------------------------------------- */

static const struct dp_field register_fields[] = {
	{ "username", DP_FT_USERNAME, DP_F_REQUIRED, 0, 0, NULL },
	{ "email", DP_FT_EMAIL, DP_F_REQUIRED, 0, 0, NULL },
	{ "password", DP_FT_PASSWORD, DP_F_REQUIRED, 0, 0, NULL },
	{ "full_name", DP_FT_TEXT, DP_F_EMPTYNULL, 0, 100, NULL },
	{ "preferred_region", DP_FT_REGION, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/*
 * POST /auth/register: 201 Token + flattened User + message; 409 email
 * taken (first), 409 username taken; 422; 429.
 */
static int
auth_register(struct dp_req *req, struct dp_res *res)
{
	static const char exists[] =
	    "SELECT lower(email) = lower($1), lower(username) = lower($2) "
	    "FROM users WHERE lower(email) = lower($1) OR "
	    "lower(username) = lower($2)";
	static const char ins[] =
	    "INSERT INTO users (id, username, email, password_hash, full_name, "
	    "preferred_region) VALUES ($1, $2, $3, $4, $5, "
	    "coalesce($6, 'us-east'))";
	const struct dp_value	*un = DP_IN(req, 0), *em = DP_IN(req, 1),
				*pw = DP_IN(req, 2), *fn = DP_IN(req, 3),
				*rg = DP_IN(req, 4);
	struct json_object	*tok = NULL, *user, *o;
	char			 id[25], hash[128];
	const char		*p[6];
	bool			 email_taken = false, name_taken = false;
	PGresult		*r;
	int			 rc, i;
	struct json_object_iterator it, end;

	if ((rc = limit_identifier(req, res, "register", em->s)) != 0)
		return rc;
	if (hash_password(pw->s, hash, sizeof(hash)) < 0)
		return dp_fail_internal(req, res, "password hashing failed");
	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	p[0] = em->s;
	p[1] = un->s;
	r = dp_db_exec(req->db, exists, 2, p);
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	for (i = 0; i < PQntuples(r); i++) {
		email_taken |= PQgetvalue(r, i, 0)[0] == 't';
		name_taken |= PQgetvalue(r, i, 1)[0] == 't';
	}
	PQclear(r);
	if (email_taken)
		return dp_fail(res, 409, "Email already registered");
	if (name_taken)
		return dp_fail(res, 409, "Username already taken");
	dp_new_id(id);
	p[0] = id;
	p[1] = un->s;
	p[2] = em->s;
	p[3] = hash;
	p[4] = fn->present ? fn->s : NULL;
	p[5] = rg->present ? rg->s : NULL;
	r = dp_db_exec(req->db, ins, 6, p);
	explicit_bzero(hash, sizeof(hash));
	if (!dp_db_ok(r)) {
		const char *st = dp_db_sqlstate(r);
		const char *cn = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);

		PQclear(r);
		if (strcmp(st, "23505") == 0)
			return dp_fail(res, 409, cn && strstr(cn, "email") ?
			    "Email already registered" :
			    "Username already taken");
		return dp_fail_db(req, res);
	}
	PQclear(r);
	if (queue_verification(req->db, id, em->s, un->s) < 0)
		return dp_fail_db(req, res);
	if ((rc = issue_tokens(req, res, id, 201, &tok)) != 201)
		return rc;
	/* The app parses register as a Token whose User is also flattened. */
	json_object_object_get_ex(tok, "user", &user);
	o = json_object_new_object();
	it = json_object_iter_begin(user);
	end = json_object_iter_end(user);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		json_object_object_add(o, json_object_iter_peek_name(&it),
		    json_object_get(json_object_iter_peek_value(&it)));
	it = json_object_iter_begin(tok);
	end = json_object_iter_end(tok);
	for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
		json_object_object_add(o, json_object_iter_peek_name(&it),
		    json_object_get(json_object_iter_peek_value(&it)));
	dp_json_str(o, "message", "Registration successful. Please check your "
	    "email to verify your account.");
	res->json = NULL;
	json_object_put(tok);
	return dp_ok(res, 201, o);
}

/* ---- login -------------------------------------------------------------- */

static const struct dp_field login_fields[] = {
	{ "username_or_email", DP_FT_RAW, 0, 0, 320, NULL },
	{ "email", DP_FT_RAW, 0, 0, 320, NULL },
	{ "username", DP_FT_RAW, 0, 0, 320, NULL },
	{ "password", DP_FT_RAW, DP_F_REQUIRED, 0, 4096, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

static char *
trimmed(struct dp_req *req, const struct dp_value *v)
{
	const char	*s = v->s, *e;

	if (!v->present)
		return NULL;
	e = s + v->len;
	while (s < e && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' ||
	    e[-1] == '\r'))
		e--;
	return dp_arena_strndup(&req->arena, s, (size_t)(e - s));
}

/*
 * POST /auth/login: 200 Token; 401 wrong credentials; 423 locked
 * (+Retry-After); 403 disabled; 403 unverified (gate); 422; 429.
 */
static int
auth_login(struct dp_req *req, struct dp_res *res)
{
	static const char find[] =
	    "SELECT id, password_hash, is_active, is_verified, "
	    "locked_until IS NOT NULL AND locked_until > now(), "
	    "ceil(extract(epoch FROM locked_until - now()))::bigint, "
	    "locked_until IS NOT NULL AND locked_until <= now() "
	    "FROM users WHERE deleted_at IS NULL AND "
	    "(lower(username) = lower($1) OR lower(email) = lower($1)) "
	    "ORDER BY lower(username) = lower($1) DESC LIMIT 1 FOR UPDATE";
	static const char fail[] =
	    "UPDATE users u SET failed_logins = CASE WHEN x.n >= $3::int "
	    "THEN 0 ELSE x.n END, locked_until = CASE WHEN x.n >= $3::int "
	    "THEN now() + make_interval(mins => $4::int) END "
	    "FROM (SELECT CASE WHEN $2::bool THEN 1 ELSE failed_logins + 1 "
	    "END AS n FROM users WHERE id = $1) x WHERE u.id = $1";
	static const char ok[] =
	    "UPDATE users SET failed_logins = 0, locked_until = NULL, "
	    "last_login = now(), password_hash = coalesce($2, password_hash) "
	    "WHERE id = $1";
	char			*ident = NULL, *id = NULL, *mcf = NULL;
	char			 attempts[24], minutes[24], rehash[128];
	const char		*pw = DP_IN(req, 3)->s;
	bool			 active, verified, expired_lock;
	PGresult		*r;
	int			 i, rc;

	for (i = 0; i < 3 && (ident == NULL || *ident == '\0'); i++)
		ident = trimmed(req, DP_IN(req, i));
	if (ident == NULL || *ident == '\0') {
		dp_req_invalid(req, "username_or_email", DP_V_MISSING,
		    "field required");
		return dp_fail_invalid(req, res);
	}
	if ((rc = limit_identifier(req, res, "login", ident)) != 0)
		return rc;
	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	r = dp_db_exec(req->db, find, 1, (const char *const[]){ ident });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	if (PQntuples(r) == 1) {
		id = dp_req_strdup(req, PQgetvalue(r, 0, 0));
		mcf = PQgetisnull(r, 0, 1) ? NULL :
		    dp_req_strdup(req, PQgetvalue(r, 0, 1));
	}
	if (id == NULL || mcf == NULL) {
		PQclear(r);
		(void)check_password(NULL, pw);
		return dp_fail(res, 401, "Incorrect username/email or password");
	}
	active = PQgetvalue(r, 0, 2)[0] == 't';
	verified = PQgetvalue(r, 0, 3)[0] == 't';
	if (PQgetvalue(r, 0, 4)[0] == 't') {
		long long after = strtoll(PQgetvalue(r, 0, 5), NULL, 10);

		PQclear(r);
		dp_res_header(res, "Retry-After", "%lld", after < 1 ? 1 : after);
		return dp_fail(res, 423, "Account is temporarily locked due to "
		    "too many failed attempts");
	}
	expired_lock = PQgetvalue(r, 0, 6)[0] == 't';
	PQclear(r);
	if (!check_password(mcf, pw)) {
		snprintf(attempts, sizeof(attempts), "%lld",
		    (long long)dp_cfg.auth_lockout_attempts);
		snprintf(minutes, sizeof(minutes), "%lld",
		    (long long)dp_cfg.auth_lockout_minutes);
		if (dp_db_run(req->db, fail, 4, (const char *const[]){ id,
		    expired_lock ? "true" : "false", attempts, minutes }) < 0 ||
		    dp_db_commit(req->db) < 0)
			return dp_fail_db(req, res);
		return dp_fail(res, 401, "Incorrect username/email or password");
	}
	if (!active)
		return dp_fail(res, 403, "Account is disabled");
	if (dp_cfg.auth_require_verified_email && !verified)
		return dp_fail(res, 403, "Please verify your email address");
	rehash[0] = '\0';
	if (dp_password_needs_rehash(mcf, (uint64_t)dp_cfg.auth_scrypt_n,
	    (uint32_t)dp_cfg.auth_scrypt_r, (uint32_t)dp_cfg.auth_scrypt_p) &&
	    hash_password(pw, rehash, sizeof(rehash)) < 0)
		rehash[0] = '\0';
	rc = dp_db_run(req->db, ok, 2, (const char *const[]){ id,
	    rehash[0] ? rehash : NULL });
	explicit_bzero(rehash, sizeof(rehash));
	if (rc < 0)
		return dp_fail_db(req, res);
	return issue_tokens(req, res, id, 200, NULL);
}

/* ---- refresh ------------------------------------------------------------ */

static const struct dp_field refresh_fields[] = {
	{ "refresh_token", DP_FT_RAW, DP_F_REQUIRED, 0, 1 << 20, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

static bool
urlsafe_token(const char *s, size_t len)
{
	size_t	 i;

	if (len == 0 || len > 128)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' &&
		    s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') ||
		    s[i] == '-' || s[i] == '_'))
			return false;
	return true;
}

/*
 * POST /auth/refresh: 200 Token (rotated); a consumed token within the
 * grace period gets a fresh pair of the same session, later it revokes
 * the session; 401 Invalid refresh token.
 */
static int
auth_refresh(struct dp_req *req, struct dp_res *res)
{
	static const char find[] =
	    "SELECT t.session_id, s.user_id, t.expires_at > now(), "
	    "t.consumed_at IS NOT NULL, "
	    "coalesce(extract(epoch FROM now() - t.consumed_at), 0), "
	    "s.revoked_at IS NULL AND u.is_active AND u.deleted_at IS NULL "
	    "FROM refresh_tokens t JOIN login_sessions s ON s.id = t.session_id "
	    "JOIN users u ON u.id = s.user_id WHERE t.token_hash = $1 "
	    "FOR UPDATE OF t";
	static const char consume[] =
	    "UPDATE refresh_tokens SET consumed_at = now() WHERE token_hash = $1";
	static const char revoke[] =
	    "UPDATE login_sessions SET revoked_at = now() WHERE id = $1 AND "
	    "revoked_at IS NULL";
	const struct dp_value	*v = DP_IN(req, 0);
	struct json_object	*tok;
	char			 hash[65], *sid, *uid;
	bool			 live, consumed, usable;
	double			 since;
	PGresult		*r;

	if (!urlsafe_token(v->s, v->len))
		return dp_fail(res, 401, "Invalid refresh token");
	dp_sha256_hex(v->s, v->len, hash);
	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	r = dp_db_exec(req->db, find, 1, (const char *const[]){ hash });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		return dp_fail(res, 401, "Invalid refresh token");
	}
	sid = dp_req_strdup(req, PQgetvalue(r, 0, 0));
	uid = dp_req_strdup(req, PQgetvalue(r, 0, 1));
	live = PQgetvalue(r, 0, 2)[0] == 't';
	consumed = PQgetvalue(r, 0, 3)[0] == 't';
	since = strtod(PQgetvalue(r, 0, 4), NULL);
	usable = PQgetvalue(r, 0, 5)[0] == 't';
	PQclear(r);
	if (!usable || !live)
		return dp_fail(res, 401, "Invalid refresh token");
	if (consumed) {
		if (since > (double)dp_cfg.auth_refresh_grace_seconds) {
			/* Reuse after the grace: the family is compromised. */
			if (dp_db_run(req->db, revoke, 1,
			    (const char *const[]){ sid }) < 0 ||
			    dp_db_commit(req->db) < 0)
				return dp_fail_db(req, res);
			dp_warn("refresh token reuse: session %s revoked", sid);
			return dp_fail(res, 401, "Invalid refresh token");
		}
	} else if (dp_db_run(req->db, consume, 1,
	    (const char *const[]){ hash }) < 0)
		return dp_fail_db(req, res);
	if ((tok = dp_auth_token_pair(req->db, uid, sid)) == NULL)
		return dp_fail_db(req, res);
	if (dp_db_commit(req->db) < 0) {
		json_object_put(tok);
		return dp_fail_db(req, res);
	}
	return dp_ok(res, 200, tok);
}

/* ---- logout, me ---------------------------------------------------------- */

/* POST /auth/logout: 200; revokes the current login session. */
static int
auth_logout(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "UPDATE login_sessions SET revoked_at = now() WHERE id = $1";
	struct json_object	*o;

	if (dp_db_run(req->db, sql, 1, (const char *const[]){ req->user->sid })
	    < 0)
		return dp_fail_db(req, res);
	o = json_object_new_object();
	dp_json_str(o, "message", "Successfully logged out");
	return dp_ok(res, 200, o);
}

/* GET /auth/me: 200 User. */
static int
auth_me(struct dp_req *req, struct dp_res *res)
{
	return dp_ok(res, 200, dp_user_json_self(req->user));
}

/* ---- Google --------------------------------------------------------------- */

static const struct dp_field google_fields[] = {
	{ "id_token", DP_FT_RAW, 0, 0, 16384, NULL },
	{ "token", DP_FT_RAW, 0, 0, 16384, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/* Username from the email's local part (§2.2); *out in the arena. */
static int
google_username(struct dp_req *req, const char *email, char **out)
{
	static const char taken[] =
	    "SELECT 1 FROM users WHERE lower(username) = lower($1)";
	char		 base[31], cand[31], sfx[16];
	size_t		 i, n, bl;
	PGresult	*r;
	int		 k, found;

	n = strcspn(email, "@");
	for (i = 0, bl = 0; i < n && bl < 30; i++) {
		char c = email[i];

		base[bl++] = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '_' || c == '-') ? c : '_';
	}
	while (bl < 3)
		base[bl++] = '_';
	base[bl] = '\0';
	for (k = 1; k < 10000; k++) {
		if (k == 1)
			snprintf(cand, sizeof(cand), "%s", base);
		else {
			snprintf(sfx, sizeof(sfx), "_%d", k);
			n = strlen(sfx);
			snprintf(cand, sizeof(cand), "%.*s%s",
			    (int)(bl + n > 30 ? 30 - n : bl), base, sfx);
		}
		r = dp_db_exec(req->db, taken, 1, (const char *const[]){ cand });
		if (!dp_db_ok(r)) {
			PQclear(r);
			return -1;
		}
		found = PQntuples(r);
		PQclear(r);
		if (!found) {
			*out = dp_req_strdup(req, cand);
			return 0;
		}
	}
	return -1;
}

/*
 * POST /auth/google: 200 Token; 503 not configured; 401 Invalid Google
 * token; 403 Account is disabled; 503 keys unavailable.
 */
static int
auth_google(struct dp_req *req, struct dp_res *res)
{
	static const char by_sub[] =
	    "SELECT id, is_active FROM users WHERE google_sub = $1 AND "
	    "deleted_at IS NULL FOR UPDATE";
	static const char by_email[] =
	    "SELECT id, is_active, is_verified FROM users WHERE "
	    "lower(email) = lower($1) AND deleted_at IS NULL FOR UPDATE";
	/*
	 * Google proves the address.  An account that never did was not
	 * necessarily made by its owner (anyone can register any address):
	 * linking it drops its password and its sessions, so that whoever
	 * registered it keeps no way in.
	 */
	static const char link[] =
	    "UPDATE users SET google_sub = $2, is_verified = true, "
	    "password_hash = CASE WHEN is_verified THEN password_hash END, "
	    "updated_at = now() WHERE id = $1";
	static const char create[] =
	    "INSERT INTO users (id, username, email, full_name, avatar_url, "
	    "is_verified, google_sub) VALUES ($1, $2, lower($3), $4, $5, true, "
	    "$6)";
	static const char login[] =
	    "UPDATE users SET last_login = now() WHERE id = $1";
	const struct dp_value		*a = DP_IN(req, 0), *b = DP_IN(req, 1);
	const struct dp_value		*t = a->present ? a : b;
	struct dp_google_claims		 c = { 0 };
	struct dp_err			 err = { 0 };
	enum dp_google_result		 gr;
	char				 id[25], *username;
	bool				 active = true, found = false;
	PGresult			*r;
	int				 tries = 0;

	if (dp_cfg.google_client_ids == NULL || *dp_cfg.google_client_ids == 0)
		return dp_fail(res, 503, "Google sign-in is not configured");
	if (!t->present) {
		dp_req_invalid(req, "id_token", DP_V_MISSING, "field required");
		return dp_fail_invalid(req, res);
	}
	gr = dp_google_verify(t->s, dp_cfg.google_jwks_url,
	    dp_cfg.google_client_ids, dp_cfg.google_timeout, (int64_t)dp_now(),
	    &c, &err);
	if (gr == DP_GOOGLE_UNAVAILABLE) {
		dp_warn("google keys unavailable: %s", err.msg);
		return dp_fail(res, 503,
		    "Google sign-in is temporarily unavailable");
	}
	if (gr != DP_GOOGLE_OK) {
		dp_google_claims_release(&c);
		return dp_fail(res, 401, "Invalid Google token");
	}
again:
	if (dp_db_begin(req->db) < 0)
		goto db;
	r = dp_db_exec(req->db, by_sub, 1, (const char *const[]){ c.sub });
	if (dp_db_ok(r) && PQntuples(r) == 0) {
		PQclear(r);
		r = dp_db_exec(req->db, by_email, 1,
		    (const char *const[]){ c.email });
		if (dp_db_ok(r) && PQntuples(r) == 1 &&
		    (dp_db_run(req->db, link, 2, (const char *const[]){
		    PQgetvalue(r, 0, 0), c.sub }) < 0 ||
		    (PQgetvalue(r, 0, 2)[0] != 't' &&
		    dp_auth_revoke_user(req->db, PQgetvalue(r, 0, 0),
		    NULL) < 0))) {
			PQclear(r);
			goto db;
		}
	}
	if (!dp_db_ok(r)) {
		PQclear(r);
		goto db;
	}
	if (PQntuples(r) == 1) {
		found = true;
		snprintf(id, sizeof(id), "%s", PQgetvalue(r, 0, 0));
		active = PQgetvalue(r, 0, 1)[0] == 't';
	}
	PQclear(r);
	if (!found) {
		if (google_username(req, c.email, &username) < 0)
			goto db;
		dp_new_id(id);
		r = dp_db_exec(req->db, create, 6, (const char *const[]){ id,
		    username, c.email, c.name, c.picture, c.sub });
		if (!dp_db_ok(r)) {
			/* A sign-in of the same new account (or a username
			 * taken) committed meanwhile: once more, it finds it. */
			bool dup = strcmp(dp_db_sqlstate(r), "23505") == 0;

			PQclear(r);
			dp_db_rollback(req->db);
			if (dup && tries++ == 0)
				goto again;
			goto db;
		}
		PQclear(r);
	}
	dp_google_claims_release(&c);
	if (!active) {
		dp_db_rollback(req->db);
		return dp_fail(res, 403, "Account is disabled");
	}
	if (dp_db_run(req->db, login, 1, (const char *const[]){ id }) < 0)
		return dp_fail_db(req, res);
	return issue_tokens(req, res, id, 200, NULL);
db:
	dp_google_claims_release(&c);
	return dp_fail_db(req, res);
}

/* ---- email tokens ------------------------------------------------------- */

static const struct dp_field token_fields[] = {
	{ "token", DP_FT_RAW, DP_F_REQUIRED, 0, 1 << 20, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/* Consume an email token of kind; user id into the arena or NULL. */
static int
consume_email_token(struct dp_req *req, const struct dp_value *v,
    const char *kind, char **uid)
{
	static const char sql[] =
	    "UPDATE email_tokens SET used_at = now() WHERE token_hash = $1 "
	    "AND kind = $2 AND used_at IS NULL AND expires_at > now() "
	    "RETURNING user_id";
	char		 hash[65];
	PGresult	*r;

	*uid = NULL;
	if (!urlsafe_token(v->s, v->len))
		return 0;
	dp_sha256_hex(v->s, v->len, hash);
	r = dp_db_exec(req->db, sql, 2, (const char *const[]){ hash, kind });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return -1;
	}
	if (PQntuples(r) == 1)
		*uid = dp_req_strdup(req, PQgetvalue(r, 0, 0));
	PQclear(r);
	return 0;
}

static int
message(struct dp_res *res, const char *m)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "message", m);
	return dp_ok(res, 200, o);
}

/* POST /auth/verify-email: 200; 400 Invalid or expired verification token. */
static int
auth_verify_email(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "UPDATE users SET is_verified = true, updated_at = now() "
	    "WHERE id = $1 AND deleted_at IS NULL";
	char	*uid;

	if (dp_db_begin(req->db) < 0 ||
	    consume_email_token(req, DP_IN(req, 0), "verify", &uid) < 0)
		return dp_fail_db(req, res);
	if (uid == NULL)
		return dp_fail(res, 400, "Invalid or expired verification token");
	if (dp_db_run(req->db, sql, 1, (const char *const[]){ uid }) < 0 ||
	    dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	return message(res, "Email verified successfully");
}

/* POST /auth/resend-verification: 200 sent / already verified; 429. */
static int
auth_resend(struct dp_req *req, struct dp_res *res)
{
	/* The resend limiter (DP_RESENDLIMIT) has counted this attempt. */
	if (req->user->verified)
		return message(res, "Email already verified");
	if (dp_db_begin(req->db) < 0 ||
	    queue_verification(req->db, req->user->id, req->user->email,
	    req->user->username) < 0 || dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	return message(res, "Verification email sent");
}

static const struct dp_field forgot_fields[] = {
	{ "email", DP_FT_EMAIL, DP_F_REQUIRED, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/* POST /auth/forgot-password: always 200 (never tells if it exists). */
static int
auth_forgot(struct dp_req *req, struct dp_res *res)
{
	const struct dp_value	*em = DP_IN(req, 0);
	struct json_object	*o;
	int			 rc;

	if ((rc = limit_identifier(req, res, "forgot", em->s)) != 0)
		return rc;
	/*
	 * The same work whether the address is an account's or not (§7 row
	 * 26: not even the time may tell): the worker looks it up and mails
	 * (dp_job_auth_reset).
	 */
	o = json_object_new_object();
	dp_json_str(o, "email", em->s);
	rc = dp_db_begin(req->db) < 0 || dp_job_enqueue(req->db, "auth.reset",
	    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0) < 0 ||
	    dp_db_commit(req->db) < 0;
	json_object_put(o);
	if (rc)
		return dp_fail_db(req, res);
	return message(res,
	    "If that email is registered, a reset link has been sent");
}

static int
queue_changed(struct dp_db *db, const char *uid)
{
	static const char sql[] =
	    "SELECT email, username FROM users WHERE id = $1";
	PGresult	*r = dp_db_exec(db, sql, 1, (const char *const[]){ uid });
	int		 rc = -1;

	if (dp_db_ok(r) && PQntuples(r) == 1)
		rc = dp_outbox_queue(db, "password_changed", PQgetvalue(r, 0, 0),
		    (const char *const[]){ "username", PQgetvalue(r, 0, 1),
		    NULL });
	PQclear(r);
	return rc;
}

static const struct dp_field reset_fields[] = {
	{ "token", DP_FT_RAW, DP_F_REQUIRED, 0, 1 << 20, NULL },
	{ "new_password", DP_FT_PASSWORD, DP_F_REQUIRED, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/* POST /auth/reset-password: 200; 400 Invalid or expired reset token. */
static int
auth_reset(struct dp_req *req, struct dp_res *res)
{
	/* Not for an account disabled (or deleted) since the mail. */
	static const char sql[] =
	    "UPDATE users SET password_hash = $2, is_verified = true, "
	    "failed_logins = 0, locked_until = NULL, updated_at = now() "
	    "WHERE id = $1 AND is_active AND deleted_at IS NULL";
	PGresult	*r;
	char		 hash[128], *uid;
	int		 rc;

	if (hash_password(DP_IN(req, 1)->s, hash, sizeof(hash)) < 0)
		return dp_fail_internal(req, res, "password hashing failed");
	if (dp_db_begin(req->db) < 0 ||
	    consume_email_token(req, DP_IN(req, 0), "reset", &uid) < 0)
		return dp_fail_db(req, res);
	if (uid == NULL)
		return dp_fail(res, 400, "Invalid or expired reset token");
	r = dp_db_exec(req->db, sql, 2, (const char *const[]){ uid, hash });
	explicit_bzero(hash, sizeof(hash));
	rc = dp_db_ok(r) ? (strcmp(PQcmdTuples(r), "1") == 0 ? 0 : 1) : -1;
	PQclear(r);
	if (rc == 1)
		return dp_fail(res, 400, "Invalid or expired reset token");
	if (rc < 0 || dp_auth_revoke_user(req->db, uid, NULL) < 0 ||
	    queue_changed(req->db, uid) < 0 || dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	return message(res, "Password reset successfully");
}

static const struct dp_field change_fields[] = {
	{ "current_password", DP_FT_RAW, DP_F_REQUIRED, 0, 4096, NULL },
	{ "new_password", DP_FT_PASSWORD, DP_F_REQUIRED, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/* POST /auth/change-password: 200; 400 Current password is incorrect. */
static int
auth_change(struct dp_req *req, struct dp_res *res)
{
	static const char get[] =
	    "SELECT password_hash FROM users WHERE id = $1 FOR UPDATE";
	static const char set[] =
	    "UPDATE users SET password_hash = $2, updated_at = now() "
	    "WHERE id = $1";
	char		 hash[128], *mcf = NULL;
	PGresult	*r;
	int		 rc;

	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	r = dp_db_exec(req->db, get, 1, (const char *const[]){ req->user->id });
	if (!dp_db_ok(r) || PQntuples(r) != 1) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	if (!PQgetisnull(r, 0, 0))
		mcf = dp_req_strdup(req, PQgetvalue(r, 0, 0));
	PQclear(r);
	if (!check_password(mcf, DP_IN(req, 0)->s))
		return dp_fail(res, 400, "Current password is incorrect");
	if (hash_password(DP_IN(req, 1)->s, hash, sizeof(hash)) < 0)
		return dp_fail_internal(req, res, "password hashing failed");
	rc = dp_db_run(req->db, set, 2, (const char *const[]){ req->user->id,
	    hash });
	explicit_bzero(hash, sizeof(hash));
	if (rc < 0 || dp_auth_revoke_user(req->db, req->user->id,
	    req->user->sid) < 0 || queue_changed(req->db, req->user->id) < 0 ||
	    dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	return message(res, "Password changed successfully");
}

/* ---- WebSocket pre-upgrade check ---------------------------------------- */

/* A refusal the web server turns into the client's answer: nginx reads
 * the detail from this header (auth_request drops the body). */
static int
ws_deny(struct dp_res *res, int status, const char *detail)
{
	dp_res_header(res, "X-DevPocket-Detail", "%s", detail);
	return dp_fail(res, status, detail);
}

/*
 * The URI of the socket to authorise.  nginx's auth_request sends it in
 * X-Original-URI.  lighttpd's FastCGI authorizer sends the client's
 * request itself, so there X-Original-URI would be the client's own
 * header and is ignored: the URI is the rewritten target (REDIRECT_URI,
 * after the /ws/terminal alias), else the client's (REQUEST_URI).
 */
static const char *
ws_original_uri(struct dp_req *req)
{
	const char	*role = dp_req_param(req, "FCGI_ROLE");
	const char	*uri;

	if (role == NULL || strcmp(role, "AUTHORIZER") != 0)
		return dp_req_header(req, "X-Original-URI");
	if ((uri = dp_req_param(req, "REDIRECT_URI")) == NULL)
		uri = dp_req_param(req, "REQUEST_URI");
	return uri;
}

/*
 * An allowed terminal socket behind nginx (its pre-upgrade location sets
 * DP_WS_TICKET; clients cannot set FastCGI parameters): reserve the slot,
 * start the session row and hand ws/terminal the ticket in
 * X-DevPocket-Ticket, so that it attaches without asking PostgreSQL
 * (lib/wsticket.h).  Only for a real upgrade (a reservation otherwise
 * waits DP_WS_RESERVE_S seconds for nobody) and the local driver (the
 * only one ws/terminal links).  No ticket on failure: ws/terminal then
 * admits the socket itself.
 */
static void
ws_ticket(struct dp_req *req, struct dp_res *res, const struct dp_wsreq *wr,
    const struct dp_wsuser *u, const struct dp_wsenv *e)
{
	const struct dp_buf	*key = dp_auth_key();
	const char		*on = dp_req_param(req, "DP_WS_TICKET");
	const char		*up = dp_req_header(req, "Upgrade");
	struct dp_wsticket	 t;
	struct dp_buf		 b = { 0 };
	int			 r;

	if (on == NULL || strcmp(on, "on") != 0 || up == NULL ||
	    !dp_strieq(up, "websocket") || strcmp(e->provider, "local") != 0 ||
	    key == NULL || wr->token == NULL)
		return;
	memset(&t, 0, sizeof(t));
	r = dp_wsapp_slot_reserve(req->db, u->id, e->id, wr->device_id,
	    dp_cfg.limits_ws_per_user, t.slot, t.session);
	if (r < 0)
		return;
	if (r == 0)
		t.slot[0] = t.session[0] = '\0';
	t.kind = DP_WSK_TERMINAL;
	t.user = *u;
	t.env = *e;	/* borrowed: not released here */
	t.exp = (int64_t)dp_now() + DP_WSTICKET_TTL;
	dp_wsticket_make(&b, key->s, key->len, wr->token, &t);
	dp_res_header(res, "X-DevPocket-Ticket", "%s", b.s);
	dp_buf_release(&b);
}

/*
 * GET /auth/authorize-ws: may the socket in X-Original-URI (the original
 * request URI, set by nginx), or the request itself under lighttpd's
 * FastCGI authorizer, open (CONTRACT §3.2)?  Token from its `token`
 * query parameter, else Authorization.  In order: 401 Authentication
 * failed; 403 Please verify your email address; 403 Environment not
 * found / SSH profile not found; 403 Environment not running
 * (terminal); 204 allowed (200 as an authorizer, lib/http.c).  404 for
 * a path that is no socket; 503 when the database is down.  Never rate
 * limited: it only reads.
 */
static int
auth_authorize_ws(struct dp_req *req, struct dp_res *res)
{
	struct dp_wsreq		 wr;
	struct dp_wsuser	 u;
	struct dp_wsenv		 e;
	struct dp_err		 err = { 0 };
	enum dp_ws_kind		 kind;
	const char		*query;
	char			 seg[25];
	int			 rc, r;

	if (dp_ws_uri_split(ws_original_uri(req), &kind, seg, &query) < 0)
		return dp_fail(res, 404, "Not Found");
	if (req->db == NULL)
		return dp_fail(res, 503, "Service temporarily unavailable");
	dp_wsreq_parse(&wr, kind, query, seg, dp_req_header(req,
	    "Authorization"));
	if ((r = dp_wsapp_admit(req->db, true, wr.token, wr.target, &u, &e,
	    &err)) <= 0) {
		rc = r < 0 ? dp_fail_db(req, res) :
		    ws_deny(res, 401, "Authentication failed");
		goto out;
	}
	if (dp_cfg.auth_require_verified_email && !u.verified) {
		rc = ws_deny(res, 403, "Please verify your email address");
		goto out;
	}
	if (kind == DP_WSK_SSH) {
		/* SSH profiles do not exist yet. */
		rc = ws_deny(res, 403, "SSH profile not found");
		goto out;
	}
	if (e.id[0] == '\0')
		rc = ws_deny(res, 403, "Environment not found");
	else if (kind == DP_WSK_TERMINAL && strcmp(e.status, "running") != 0)
		rc = ws_deny(res, 403, "Environment not running");
	else {
		if (kind == DP_WSK_TERMINAL)
			ws_ticket(req, res, &wr, &u, &e);
		rc = dp_no_content(res);
	}
out:
	dp_wsapp_env_release(&e);
	dp_wsreq_release(&wr);
	return rc;
}

#define A	"/api/v1/auth"
static const struct dp_route routes[] = {
	{ DP_POST, A "/register", auth_register, register_fields, DP_AUTHLIMIT },
	{ DP_POST, A "/login", auth_login, login_fields, DP_AUTHLIMIT | DP_FORM },
	{ DP_POST, A "/refresh", auth_refresh, refresh_fields, DP_AUTHLIMIT },
	{ DP_POST, A "/logout", auth_logout, NULL, DP_AUTH | DP_UNVERIFIED },
	{ DP_GET, A "/me", auth_me, NULL, DP_AUTH | DP_UNVERIFIED },
	{ DP_POST, A "/google", auth_google, google_fields, DP_AUTHLIMIT },
	{ DP_POST, A "/verify-email", auth_verify_email, token_fields,
	    DP_AUTHLIMIT },
	{ DP_POST, A "/resend-verification", auth_resend, NULL,
	    DP_AUTH | DP_UNVERIFIED | DP_RESENDLIMIT },
	{ DP_POST, A "/forgot-password", auth_forgot, forgot_fields,
	    DP_AUTHLIMIT },
	{ DP_POST, A "/reset-password", auth_reset, reset_fields, DP_AUTHLIMIT },
	{ DP_POST, A "/change-password", auth_change, change_fields, DP_AUTH },
	{ DP_GET, A "/authorize-ws", auth_authorize_ws, NULL, DP_NOLIMIT },
};

int
main(int argc, char *argv[])
{
	return dp_serve(argc, argv, "auth", routes, DP_NITEMS(routes));
}
