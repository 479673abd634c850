/* cgi-bin/users.c: /api/v1/users responder (the caller's own account) */
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "envs.h"
#include "http.h"
#include "password.h"

/* GET /users/me: 200 User. */
static int
users_me(struct dp_req *req, struct dp_res *res)
{
	return dp_ok(res, 200, dp_user_json_self(req->user));
}

static const struct dp_field update_fields[] = {
	{ "full_name", DP_FT_TEXT, DP_F_EMPTYNULL, 0, 100, NULL },
	{ "username", DP_FT_USERNAME, 0, 0, 0, NULL },
	{ "avatar_url", DP_FT_URL, DP_F_EMPTYNULL, 0, 0, NULL },
	{ "preferred_region", DP_FT_REGION, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/*
 * PUT /users/me: 200 User; 409 Username already taken; 422.  Absent
 * fields keep their values; "" clears full_name and avatar_url.
 */
static int
users_update(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "UPDATE users SET "
	    "full_name = CASE WHEN $2 THEN $3 ELSE full_name END, "
	    "username = coalesce($4, username), "
	    "avatar_url = CASE WHEN $5 THEN $6 ELSE avatar_url END, "
	    "preferred_region = coalesce($7, preferred_region), "
	    "updated_at = CASE WHEN $2 OR $5 OR $4 IS NOT NULL OR "
	    "$7 IS NOT NULL THEN now() ELSE updated_at END "
	    "WHERE id = $1";
	static const char taken[] =
	    "SELECT 1 FROM users WHERE lower(username) = lower($1) AND id <> $2";
	const struct dp_value	*fn = DP_IN(req, 0), *un = DP_IN(req, 1),
				*av = DP_IN(req, 2), *rg = DP_IN(req, 3);
	struct json_object	*o;
	const char		*p[7];
	PGresult		*r;

	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	if (un->present) {
		r = dp_db_exec(req->db, taken, 2, (const char *const[]){ un->s,
		    req->user->id });
		if (!dp_db_ok(r)) {
			PQclear(r);
			return dp_fail_db(req, res);
		}
		if (PQntuples(r) > 0) {
			PQclear(r);
			return dp_fail(res, 409, "Username already taken");
		}
		PQclear(r);
	}
	p[0] = req->user->id;
	p[1] = (fn->present || fn->cleared) ? "true" : "false";
	p[2] = fn->present ? fn->s : NULL;
	p[3] = un->present ? un->s : NULL;
	p[4] = (av->present || av->cleared) ? "true" : "false";
	p[5] = av->present ? av->s : NULL;
	p[6] = rg->present ? rg->s : NULL;
	r = dp_db_exec(req->db, sql, 7, p);
	if (!dp_db_ok(r)) {
		bool dup = strcmp(dp_db_sqlstate(r), "23505") == 0;

		PQclear(r);
		if (dup)
			return dp_fail(res, 409, "Username already taken");
		return dp_fail_db(req, res);
	}
	PQclear(r);
	if (dp_db_commit(req->db) < 0 ||
	    (o = dp_user_json_by_id(req->db, req->user->id)) == NULL)
		return dp_fail_db(req, res);
	return dp_ok(res, 200, o);
}

static const struct dp_field delete_fields[] = {
	{ "password", DP_FT_RAW, 0, 0, 4096, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

/*
 * DELETE /users/me: 200; 400 Incorrect password; 403 Please confirm your
 * password.  Soft delete: disabled and anonymised, sessions revoked (their
 * sockets close at their next check), every environment terminated.
 */
static int
users_delete(struct dp_req *req, struct dp_res *res)
{
	static const char get[] =
	    "SELECT password_hash FROM users WHERE id = $1 FOR UPDATE";
	static const char anon[] =
	    "UPDATE users SET username = 'deleted_' || id, "
	    "email = 'deleted_' || id || '@deleted.invalid', full_name = NULL, "
	    "avatar_url = NULL, google_sub = NULL, password_hash = NULL, "
	    "is_active = false, deleted_at = now(), updated_at = now() "
	    "WHERE id = $1";
	/* Mailed links die with the account (a reset would give it a
	 * password again). */
	static const char tokens[] =
	    "DELETE FROM email_tokens WHERE user_id = $1";
	const struct dp_value	*pw = DP_IN(req, 0);
	struct json_object	*o;
	PGresult		*r;
	char			*mcf = NULL;

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
	if (mcf != NULL) {
		if (pw->present) {
			if (!dp_password_check(mcf, pw->s))
				return dp_fail(res, 400, "Incorrect password");
		} else if (req->user->auth_age >
		    dp_cfg.auth_fresh_login_minutes * 60)
			return dp_fail(res, 403, "Please confirm your password");
	}
	if (dp_db_run(req->db, anon, 1, (const char *const[]){ req->user->id })
	    < 0 || dp_db_run(req->db, tokens, 1,
	    (const char *const[]){ req->user->id }) < 0 ||
	    dp_auth_revoke_user(req->db, req->user->id, NULL) < 0 ||
	    dp_envs_terminate_user(req->db, req->user->id) < 0 ||
	    dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	o = json_object_new_object();
	dp_json_str(o, "message", "User account deleted successfully");
	return dp_ok(res, 200, o);
}

#define U	"/api/v1/users"
static const struct dp_route routes[] = {
	{ DP_GET, U "/me", users_me, NULL, DP_AUTH | DP_UNVERIFIED },
	{ DP_PUT, U "/me", users_update, update_fields, DP_AUTH },
	{ DP_DELETE, U "/me", users_delete, delete_fields, DP_AUTH },
};

int
main(int argc, char *argv[])
{
	return dp_serve(argc, argv, "users", routes, DP_NITEMS(routes));
}
