/* lib/auth.h: bearer authentication, login sessions, token pairs, users */
#ifndef DP_AUTH_H
#define DP_AUTH_H

#include <json-c/json.h>
#include <libpq-fe.h>

#include "db.h"
#include "util.h"

struct dp_req;
struct dp_user;

/* Columns of a User object, in the order dp_user_json reads them. */
#define DP_USER_COLS \
	"u.id, u.username, u.email, u.full_name, u.preferred_region, " \
	"u.avatar_url, u.is_active, u.is_verified, u.subscription_plan, " \
	"u.created_at, u.updated_at, u.last_login"
#define DP_USER_NCOLS	12

/*
 * Check an access token: JWT (dp_jwt_verify_access) and, in one query,
 * that its login session is unrevoked and its user exists and is active;
 * with count, the same statement counts the user's general rate-limit
 * window (user->window_count), and with a rider (or NULL) it asks that
 * too (struct dp_rider): out->rider then says where its columns begin
 * in out->row, which may hold more rows than one; when the statement
 * with the rider fails, it is asked again without (out->rider 0).  0
 * with *out (arena; out->row holds the User columns) set; -1 when
 * invalid or on database failure.
 */
struct dp_rider;
int	 dp_auth_bearer(struct dp_req *, const char *token, bool count,
	    const struct dp_rider *, struct dp_user **out);
/* The authenticated caller's User object (for a body: it serializes
 * only, dp_json_raw). */
struct json_object *dp_user_json_self(const struct dp_user *);
/* User object from row r of a result whose columns start at c (DP_USER_COLS). */
struct json_object *dp_user_json(const PGresult *, int r, int c);
/* User object by id (any state); NULL when missing or on failure. */
struct json_object *dp_user_json_by_id(struct dp_db *, const char *id);
/* New login session for user; 0 or -1.  Runs in the caller's transaction. */
int	 dp_auth_session_new(struct dp_db *, const char *user_id, char sid[25]);
/*
 * Issue an access token and a new refresh token of session sid; returns
 * the Token object (with "user") or NULL on failure.
 */
struct json_object *dp_auth_token_pair(struct dp_db *, const char *user_id,
	    const char *sid);
/* Revoke sessions of user (all, or all but keep_sid when given). */
int	 dp_auth_revoke_user(struct dp_db *, const char *user_id,
	    const char *keep_sid);

/*
 * Queue the mail of template kind (verify, reset) to the user with the
 * link [mail] frontend_url/path?token= of a new single-use token of that
 * kind, valid ttl_seconds; the user's earlier unused ones of it die.
 */
int	 dp_auth_mail_link(struct dp_db *, const char *user_id,
	    const char *kind, int64_t ttl_seconds, const char *to,
	    const char *username, const char *path);
/* Job auth.reset {"email"}: the reset mail when the address is an active
 * account's, nothing else (POST /auth/forgot-password queues it). */
int	 dp_job_auth_reset(struct dp_db *, const char *payload,
	    struct dp_err *);

#endif
