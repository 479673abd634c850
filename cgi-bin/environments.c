/* cgi-bin/environments.c: /api/v1/environments responder */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "clusters.h"
#include "config.h"
#include "envs.h"
#include "http.h"
#include "jobs.h"
#include "log.h"
#include "validate.h"

#define ENV_VARS_MAX	100
#define ENV_VALUE_MAX	4096
/* Longest key echoed in a 422 field path (the key itself is capped
 * at 128 characters by its pattern; a longer one is cut). */
#define FIELD_KEY_MAX	128

static const char env_not_found[] = "Environment not found";

/* [limits] terminated_retention_hours as an SQL parameter. */
static const char *
retention(struct dp_req *req)
{
	return dp_arena_printf(&req->arena, "%" PRId64,
	    dp_cfg.limits_terminated_retention_hours);
}

/* The Environment object of id (any owner: callers checked it). */
static struct json_object *
env_object(struct dp_req *req, const char *id)
{
	static const char sql[] =
	    "SELECT " DP_ENV_COLS " " DP_ENV_FROM " WHERE e.id = $1";
	struct json_object	*o = NULL;
	PGresult		*r;

	r = dp_db_exec(req->db, sql, 1, (const char *const[]){ id });
	if (dp_db_ok(r) && PQntuples(r) == 1)
		o = dp_env_json(r, 0, 0);
	PQclear(r);
	return o;
}

/* ---- validation of bodies ------------------------------------------------ */

/*
 * A body member: 1 when present and not null (*j), 0 when absent.
 */
static int
member(struct dp_req *req, const char *key, struct json_object **j)
{
	*j = NULL;
	return req->body != NULL &&
	    json_object_object_get_ex(req->body, key, j) && *j != NULL;
}

/*
 * A string member: 1 with s/len, 0 absent, -1 after recording
 * type_error on field.
 */
static int
member_str(struct dp_req *req, const char *key, const char *field,
    const char **s, size_t *len)
{
	struct json_object	*j;

	if (!member(req, key, &j))
		return 0;
	if (!json_object_is_type(j, json_type_string)) {
		dp_req_invalid(req, field, DP_V_TYPE_ERROR, "must be a string");
		return -1;
	}
	*s = json_object_get_string(j);
	*len = (size_t)json_object_get_string_len(j);
	return 1;
}

/* Field "<prefix>.<key>" with key cut to FIELD_KEY_MAX bytes on a UTF-8
 * boundary. */
static const char *
subfield(struct dp_req *req, const char *prefix, const char *key)
{
	size_t	 n = strlen(key);

	if (n > FIELD_KEY_MAX)
		n = dp_env_prefix_chars(key, FIELD_KEY_MAX, FIELD_KEY_MAX);
	return dp_arena_printf(&req->arena, "%s.%.*s", prefix, (int)n, key);
}

/*
 * "resources" or else "resource_limits" (§2.4): each present value is
 * checked against the plan maximum; errors on resources.<key>.  vals[k]
 * is the value as sent or NULL.  Returns false after recording errors.
 */
static bool
check_resources(struct dp_req *req, const struct dp_resources *max,
    const char *vals[DP_RES__MAX])
{
	struct json_object	*o, *v;
	enum dp_vcode		 c;
	const char		*s;
	size_t			 len;
	int64_t			 n;
	bool			 ok = true;
	int			 k;

	for (k = 0; k < DP_RES__MAX; k++)
		vals[k] = NULL;
	if (!member(req, "resources", &o) &&
	    !member(req, "resource_limits", &o))
		return true;
	if (!json_object_is_type(o, json_type_object)) {
		dp_req_invalid(req, "resources", DP_V_TYPE_ERROR,
		    "must be an object");
		return false;
	}
	for (k = 0; k < DP_RES__MAX; k++) {
		if (!json_object_object_get_ex(o, dp_res_keys[k], &v) ||
		    v == NULL)
			continue;
		if (!json_object_is_type(v, json_type_string)) {
			dp_req_invalid(req, subfield(req, "resources",
			    dp_res_keys[k]), DP_V_TYPE_ERROR,
			    "must be a string");
			ok = false;
			continue;
		}
		s = json_object_get_string(v);
		len = (size_t)json_object_get_string_len(v);
		c = dp_env_check_resource((enum dp_res_key)k, s, len,
		    max->v[k], &n);
		if (c != DP_V_OK) {
			dp_req_invalid(req, subfield(req, "resources",
			    dp_res_keys[k]), c, c == DP_V_OUT_OF_RANGE ?
			    "outside the allowed range for your plan" : NULL);
			ok = false;
			continue;
		}
		vals[k] = s;
	}
	return ok;
}

/*
 * environment_variables (env_map); *out = the object (borrowed) or
 * NULL when absent.  Returns false after recording errors.
 */
static bool
check_env_map(struct dp_req *req, struct json_object **out)
{
	struct json_object	*o;
	enum dp_vcode		 c;
	bool			 ok = true;

	*out = NULL;
	if (!member(req, "environment_variables", &o))
		return true;
	if (!json_object_is_type(o, json_type_object)) {
		dp_req_invalid(req, "environment_variables", DP_V_TYPE_ERROR,
		    "must be an object");
		return false;
	}
	if (json_object_object_length(o) > ENV_VARS_MAX) {
		dp_req_invalid(req, "environment_variables", DP_V_TOO_MANY,
		    "at most 100 variables");
		return false;
	}
	json_object_object_foreach(o, k, v) {
		c = dp_check_env_key(k, strlen(k));
		if (c == DP_V_OK && (v == NULL ||
		    !json_object_is_type(v, json_type_string)))
			c = DP_V_TYPE_ERROR;
		if (c == DP_V_OK)
			c = dp_check_text(json_object_get_string(v),
			    (size_t)json_object_get_string_len(v), 0,
			    ENV_VALUE_MAX);
		if (c != DP_V_OK) {
			dp_req_invalid(req, subfield(req,
			    "environment_variables", k), c, NULL);
			ok = false;
		}
	}
	if (ok)
		*out = o;
	return ok;
}

/*
 * name (§2.4), lowercased into the arena: 1 with *name, 0 absent, -1
 * after recording an error.
 */
static int
check_name(struct dp_req *req, bool required, const char **name)
{
	const char	*s;
	char		*low;
	size_t		 len;
	enum dp_vcode	 c;
	int		 rc;

	*name = NULL;
	if ((rc = member_str(req, "name", "name", &s, &len)) <= 0) {
		if (rc == 0 && required) {
			dp_req_invalid(req, "name", DP_V_MISSING,
			    "field required");
			rc = -1;
		}
		return rc;
	}
	low = dp_req_alloc(req, len + 1);
	if ((c = dp_check_env_name(s, len, low)) != DP_V_OK) {
		dp_req_invalid(req, "name", c, NULL);
		return -1;
	}
	*name = low;
	return 1;
}

/*
 * description text(500): 1 with *s (NULL when sent as ""), 0 absent,
 * -1 after an error.
 */
static int
check_description(struct dp_req *req, const char **desc)
{
	const char	*s;
	size_t		 len;
	enum dp_vcode	 c;
	int		 rc;

	*desc = NULL;
	if ((rc = member_str(req, "description", "description", &s, &len))
	    <= 0)
		return rc;
	if (len == 0)
		return 1;
	if ((c = dp_check_text(s, len, 0, 500)) != DP_V_OK) {
		dp_req_invalid(req, "description", c, NULL);
		return -1;
	}
	*desc = s;
	return 1;
}

static int
plan_resources(struct dp_req *req, struct dp_resources *def,
    struct dp_resources *max)
{
	int	 plan = req->user->plan;

	if (plan < 0 || plan >= DP_PLAN__MAX)
		plan = DP_PLAN_FREE;
	return dp_env_plan_resources(&dp_cfg.plans[plan], def, max);
}

/* A JSON object as jsonb parameter text (arena). */
static const char *
json_param(struct dp_req *req, struct json_object *o)
{
	return dp_req_strdup(req,
	    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
}

/* ---- lifecycle effects ------------------------------------------------------ */

static const struct effect {
	const char	*sql;
	const char	*log;
	const char	*job;
} effects[DP_EFF__MAX] = {
	[DP_EFF_STOP] = {
	    "UPDATE environments SET status = 'stopped', "
	    "generation = generation + 1, running_since = NULL, "
	    "updated_at = now() WHERE id = $1 RETURNING generation",
	    "Environment stopped", "env.stop" },
	[DP_EFF_START] = {
	    "UPDATE environments SET status = 'creating', "
	    "generation = generation + 1, installation_completed = false, "
	    "install_log_offset = 0, install_started_at = NULL, "
	    "running_since = NULL, updated_at = now() WHERE id = $1 "
	    "RETURNING generation",
	    "Environment starting", "env.start" },
	[DP_EFF_RESTART] = {
	    "UPDATE environments SET status = 'creating', "
	    "generation = generation + 1, installation_completed = false, "
	    "install_log_offset = 0, install_started_at = NULL, "
	    "running_since = NULL, updated_at = now() WHERE id = $1 "
	    "RETURNING generation",
	    "Environment restarting", "env.restart" },
	[DP_EFF_ERROR] = {
	    "UPDATE environments SET status = 'error', "
	    "generation = generation + 1, running_since = NULL, "
	    "updated_at = now() WHERE id = $1 RETURNING generation",
	    "Environment marked as failed", "env.stop" },
	[DP_EFF_DELETE] = {
	    "UPDATE environments SET status = 'terminated', "
	    "terminated_at = now(), generation = generation + 1, "
	    "running_since = NULL, updated_at = now() WHERE id = $1 "
	    "RETURNING generation",
	    "Environment terminated", "env.destroy" },
};

/*
 * Apply a status effect to environment id (locked by the caller) in the
 * open transaction: the new status, a system log entry, the job.  0 or
 * -1 (database failure).
 */
static int
apply_effect(struct dp_req *req, const char *id, enum dp_env_effect e)
{
	const struct effect	*ef;
	PGresult		*r;
	int64_t			 gen;
	int			 rc = -1;

	if (e >= DP_EFF__MAX || (ef = &effects[e])->sql == NULL)
		return 0;
	r = dp_db_exec(req->db, ef->sql, 1, (const char *const[]){ id });
	if (!dp_db_ok(r) || PQntuples(r) != 1 ||
	    dp_parse_int64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &gen) < 0)
		goto out;
	if (dp_env_log(req->db, id, "info", "system", ef->log) < 0 ||
	    dp_env_enqueue(req->db, ef->job, id, gen) < 0)
		goto out;
	rc = 0;
out:
	PQclear(r);
	return rc;
}

/*
 * Lock the caller's visible environment id: 1 with *r (status, name,
 * description, resources, environment_variables, generation), 0 when
 * not found, -1 on failure.
 */
static int
lock_env(struct dp_req *req, const char *id, PGresult **out)
{
	static const char sql[] =
	    "SELECT e.status, e.name, e.description, e.resources, "
	    "e.environment_variables, e.generation FROM environments e "
	    "WHERE e.id = $1 AND e.user_id = $2 AND " DP_ENV_VISIBLE(3)
	    " FOR UPDATE";
	PGresult	*r;

	*out = NULL;
	if (!dp_is_id(id))
		return 0;
	r = dp_db_exec(req->db, sql, 3, (const char *const[]){ id,
	    req->user->id, retention(req) });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return -1;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		return 0;
	}
	*out = r;
	return 1;
}

/* ---- POST /environments ------------------------------------------------- */

/* Template of id_or_name (active or beta): 1 with *out row (id, cpu,
 * memory, storage), 0 none, -1 failure. */
static int
find_template(struct dp_req *req, const char *s, size_t len, PGresult **out)
{
	static const char sql[] =
	    "SELECT id, default_resources->>'cpu', "
	    "default_resources->>'memory', default_resources->>'storage' "
	    "FROM templates WHERE (id = $1 OR name = $1) "
	    "AND status IN ('active', 'beta') "
	    "ORDER BY (id = $1) DESC LIMIT 1";
	PGresult	*r;

	*out = NULL;
	/* An id or a name is short ASCII: anything else is no template. */
	if (len == 0 || len > 64 || memchr(s, '\0', len) != NULL ||
	    dp_utf8_len(s, len) < 0)
		return 0;
	r = dp_db_exec(req->db, sql, 1, (const char *const[]){ s });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return -1;
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		return 0;
	}
	*out = r;
	return 1;
}

/* Active cluster id: 1 (with room), 2 (full), 0 none, -1 failure. */
static int
find_cluster(struct dp_req *req, const char *s, size_t len)
{
	static const char sql[] =
	    "SELECT (SELECT count(*) FROM environments e WHERE "
	    "e.cluster_id = c.id AND e.status <> 'terminated') < "
	    "c.max_environments FROM clusters c "
	    "WHERE c.id = $1 AND c.status = 'active'";
	PGresult	*r;
	int		 rc;

	if (len != 24 || !dp_is_id(s))
		return 0;
	r = dp_db_exec(req->db, sql, 1, (const char *const[]){ s });
	if (!dp_db_ok(r))
		rc = -1;
	else if (PQntuples(r) != 1)
		rc = 0;
	else
		rc = strcmp(PQgetvalue(r, 0, 0), "t") == 0 ? 1 : 2;
	PQclear(r);
	return rc;
}

/* Placement of §2.4 for region (or NULL): the cluster id or NULL. */
static const char *
place(struct dp_req *req, const char *region, bool *failed)
{
	static const char sql[] =
	    "SELECT c.id FROM clusters c CROSS JOIN LATERAL "
	    "(SELECT count(*) AS n FROM environments e "
	    "WHERE e.cluster_id = c.id AND e.status <> 'terminated') k "
	    "WHERE c.status = 'active' AND k.n < c.max_environments "
	    "ORDER BY CASE WHEN c.region = $1 THEN 0 "
	    "WHEN c.region = $2 THEN 1 ELSE 2 END, c.is_default DESC, k.n, "
	    "c.id LIMIT 1";
	const char	*pref = dp_db_val(req->user->row, 0, 4), *id = NULL;
	PGresult	*r;

	*failed = false;
	r = dp_db_exec(req->db, sql, 2, (const char *const[]){ region, pref });
	if (!dp_db_ok(r))
		*failed = true;
	else if (PQntuples(r) == 1)
		id = dp_req_strdup(req, PQgetvalue(r, 0, 0));
	PQclear(r);
	return id;
}

/*
 * POST /environments: 201 Environment; 422; 403 Environment limit
 * reached…; 409 Environment with this name already exists; 503 No
 * cluster available; 429 (environment creation limiter).
 */
static int
envs_create(struct dp_req *req, struct dp_res *res)
{
	/* The caller may have been disabled or deleted since the token
	 * check: the user row lock decides. */
	static const char lock_user[] =
	    "SELECT 1 FROM users WHERE id = $1 AND is_active AND "
	    "deleted_at IS NULL FOR UPDATE";
	static const char lock_clusters[] = DP_CLUSTERS_LOCK_SQL;
	static const char count[] =
	    "SELECT count(*) FROM environments WHERE user_id = $1 "
	    "AND status <> 'terminated'";
	static const char taken[] =
	    "SELECT 1 FROM environments WHERE user_id = $1 AND name = $2 "
	    "AND status <> 'terminated'";
	static const char insert[] =
	    "INSERT INTO environments (id, user_id, name, description, "
	    "template_id, docker_image, port, resources, "
	    "environment_variables, cluster_id, status) "
	    "SELECT $1, $2, $3, $4, t.id, t.docker_image, t.default_port, "
	    "$6::jsonb, $7::jsonb, $8, 'creating' FROM templates t "
	    "WHERE t.id = $5 AND t.status IN ('active', 'beta')";
	static const char usage[] =
	    "UPDATE templates SET usage_count = usage_count + 1 "
	    "WHERE id = $1";
	struct dp_resources	 pdef, pmax, tdef, dflt;
	struct json_object	*envmap, *resobj = NULL, *o;
	const char		*name, *desc = NULL, *vals[DP_RES__MAX];
	const char		*tsel = NULL, *csel = NULL, *region = NULL;
	const char		*tmpl_id = NULL, *cluster = NULL;
	const char		*p[8];
	PGresult		*tr = NULL, *r = NULL;
	size_t			 tlen = 0, clen = 0, rlen = 0;
	char			 id[25], buf[32];
	int64_t			 n;
	bool			 failed;
	int			 rc, k, status;

	/* The creation limiter (DP_ENVLIMIT) has counted this attempt. */
	if (plan_resources(req, &pdef, &pmax) < 0)
		return dp_fail_internal(req, res, "plan resources unreadable");

	(void)check_name(req, true, &name);
	if ((rc = member_str(req, "template_id", "template", &tsel,
	    &tlen)) == 0)
		rc = member_str(req, "template", "template", &tsel, &tlen);
	if (rc == 0)
		dp_req_invalid(req, "template", DP_V_MISSING, "field required");
	(void)check_description(req, &desc);
	(void)check_resources(req, &pmax, vals);
	(void)check_env_map(req, &envmap);
	if (member_str(req, "cluster_id", "cluster_id", &csel, &clen) < 0)
		csel = NULL;
	if (member_str(req, "region", "region", &region, &rlen) > 0 &&
	    dp_check_region(region, rlen) != DP_V_OK) {
		dp_req_invalid(req, "region", DP_V_INVALID_CHOICE, NULL);
		region = NULL;
	}
	/* Lookups that are validation too (422, §2.4 first row). */
	if (rc > 0) {
		if ((rc = find_template(req, tsel, tlen, &tr)) < 0)
			return dp_fail_db(req, res);
		if (rc == 0)
			dp_req_invalid(req, "template", DP_V_INVALID_CHOICE,
			    "no such active template");
	}
	status = 0;
	if (csel != NULL) {
		if ((status = find_cluster(req, csel, clen)) < 0) {
			PQclear(tr);
			return dp_fail_db(req, res);
		}
		if (status == 0)
			dp_req_invalid(req, "cluster_id", DP_V_INVALID_CHOICE,
			    "no such active cluster");
	}
	if (dp_req_has_errors(req)) {
		PQclear(tr);
		return dp_fail_invalid(req, res);
	}
	tmpl_id = dp_req_strdup(req, PQgetvalue(tr, 0, 0));
	for (k = 0; k < DP_RES__MAX; k++)
		if (dp_env_parse_resource((enum dp_res_key)k,
		    dp_db_val(tr, 0, 1 + k), &tdef.v[k]) < 0)
			tdef.v[k] = 0;
	PQclear(tr);
	tr = NULL;
	dp_env_default_resources(&tdef, &pdef, &pmax, &dflt);

	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	r = dp_db_exec(req->db, lock_user, 1, (const char *const[]){
	    req->user->id });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	n = PQntuples(r);
	PQclear(r);
	if (n != 1)
		return dp_fail(res, 401, "Could not validate credentials");
	/* Placement counts after this lock, in statements of their own (so
	 * with a snapshot that sees every earlier creation). */
	if (dp_db_run(req->db, lock_clusters, 0, NULL) < 0)
		return dp_fail_db(req, res);
	r = dp_db_exec(req->db, count, 1, (const char *const[]){
	    req->user->id });
	if (!dp_db_ok(r) || PQntuples(r) != 1 ||
	    dp_parse_int64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &n) < 0) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	PQclear(r);
	if (n >= dp_cfg.plans[req->user->plan].max_environments)
		return dp_fail(res, 403, "Environment limit reached. Upgrade "
		    "your plan to create more environments.");
	r = dp_db_exec(req->db, taken, 2, (const char *const[]){
	    req->user->id, name });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	n = PQntuples(r);
	PQclear(r);
	if (n > 0)
		return dp_fail(res, 409,
		    "Environment with this name already exists");
	if (csel != NULL) {
		/* Again under the lock: it may have filled or gone. */
		if ((status = find_cluster(req, csel, clen)) < 0)
			return dp_fail_db(req, res);
		cluster = status == 1 ? csel : NULL;
	} else {
		cluster = place(req, region, &failed);
		if (failed)
			return dp_fail_db(req, res);
	}
	if (cluster == NULL)
		return dp_fail(res, 503, "No cluster available");

	resobj = json_object_new_object();
	for (k = 0; k < DP_RES__MAX; k++) {
		if (vals[k] != NULL)
			dp_json_str(resobj, dp_res_keys[k], vals[k]);
		else {
			dp_env_format_resource((enum dp_res_key)k, dflt.v[k],
			    buf, sizeof(buf));
			dp_json_str(resobj, dp_res_keys[k], buf);
		}
	}
	dp_new_id(id);
	p[0] = id;
	p[1] = req->user->id;
	p[2] = name;
	p[3] = desc;
	p[4] = tmpl_id;
	p[5] = json_param(req, resobj);
	p[6] = envmap != NULL ? json_param(req, envmap) : "{}";
	p[7] = cluster;
	json_object_put(resobj);
	/*
	 * The template's row is locked first (a change of it committed
	 * meanwhile is then what the insert reads, image and port as well
	 * as the copies sql/012 makes), and undone with the rest if the
	 * insert does not happen.
	 */
	if (dp_db_run(req->db, usage, 1, (const char *const[]){ tmpl_id }) < 0)
		return dp_fail_db(req, res);
	r = dp_db_exec(req->db, insert, 8, p);
	if (!dp_db_ok(r)) {
		bool dup = strcmp(dp_db_sqlstate(r), "23505") == 0;

		PQclear(r);
		if (dup)
			return dp_fail(res, 409,
			    "Environment with this name already exists");
		return dp_fail_db(req, res);
	}
	n = strcmp(PQcmdTuples(r), "1") == 0;
	PQclear(r);
	if (!n) {
		/* Deprecated since the check above: as if it never was. */
		dp_req_invalid(req, "template", DP_V_INVALID_CHOICE,
		    "no such active template");
		return dp_fail_invalid(req, res);
	}
	if (dp_env_log(req->db, id, "info", "system", "Environment created") < 0 ||
	    dp_env_enqueue(req->db, "env.provision", id, 1) < 0 ||
	    (o = env_object(req, id)) == NULL)
		return dp_fail_db(req, res);
	if (dp_db_commit(req->db) < 0) {
		json_object_put(o);
		return dp_fail_db(req, res);
	}
	return dp_ok(res, 201, o);
}

/* ---- GET /environments -------------------------------------------------- */

/* What the list statements share with the list's rider (list_rider). */
#define LIST_ALIVE	"e.status <> 'terminated'"
#define LIST_ORDER	"ORDER BY e.created_at DESC, e.id"

/*
 * The list statement for one combination of filters.  Each combination
 * is its own prepared statement with no "$n IS NULL OR …" predicates, so
 * PostgreSQL's generic plan costs what a custom one does and is kept
 * after the fifth execution (a catch-all statement was re-planned on
 * every request, which cost more than running it).  A first page has no
 * OFFSET: an unknown offset makes the generic plan look dearer than a
 * custom one, so OFFSET is only there when the client asks for it.
 * Parameters: $1 user, then status, retention, template, limit, offset
 * as they apply; *np is their number.  count selects the X-Total-Count
 * statement of the same filters instead (without limit and offset).
 */
static const char *
list_sql(struct dp_req *req, bool st, bool incl, bool tmpl, bool off,
    bool count, int *np)
{
	/* Built once per process: each request used to print its own. */
	static char	*made[32];
	static int	 made_np[32];
	const char	*where, *tpart = "", *lpart = "", *sql;
	int		 n, i;

	i = st | incl << 1 | tmpl << 2 | off << 3 | count << 4;
	if (made[i] != NULL) {
		*np = made_np[i];
		return made[i];
	}

	if (st) {
		where = "e.status = $2 AND " DP_ENV_VISIBLE(3);
		n = 3;
	} else if (incl) {
		where = DP_ENV_VISIBLE(2);
		n = 2;
	} else {
		where = LIST_ALIVE;
		n = 1;
	}
	if (tmpl) {
		n++;
		tpart = dp_arena_printf(&req->arena,
		    " AND (e.template_id = $%d OR e.template_name = $%d)", n,
		    n);
	}
	if (count)
		sql = dp_arena_printf(&req->arena, "%s WHERE e.user_id = $1 "
		    "AND %s%s", "SELECT count(*) FROM environments e", where,
		    tpart);
	else {
		if (off) {
			lpart = dp_arena_printf(&req->arena,
			    " LIMIT $%d OFFSET $%d", n + 1, n + 2);
			n += 2;
		} else {
			lpart = dp_arena_printf(&req->arena, " LIMIT $%d",
			    n + 1);
			n++;
		}
		sql = dp_arena_printf(&req->arena, "SELECT %s "
		    "%s WHERE e.user_id = $1 AND %s%s " LIST_ORDER "%s",
		    DP_ENV_COLS, DP_ENV_FROM, where, tpart, lpart);
	}
	made[i] = dp_xstrdup(sql);
	made_np[i] = *np = n;
	return made[i];
}

/*
 * GET /environments: 200 [Environment] newest first, X-Total-Count;
 * 422 (status, include_terminated, limit, offset).  A page that is not
 * full says the total itself (offset + its rows); a full page, or none
 * past an offset, asks the count statement.  (A window count(*) OVER ()
 * on every page cost a fifth of the list statement.)  That count is a
 * statement of its own: an environment made or deleted meanwhile can
 * make it disagree with the page by one, as it could with the page
 * before or after anyway.
 */
static int
envs_list(struct dp_req *req, struct dp_res *res)
{
	struct dp_buf		 body = { 0 };
	const char		*st, *field = "status", *tmpl, *sql, *p[6];
	PGresult		*r;
	int64_t			 limit, offset, n = 0;
	bool			 incl;
	int			 i, np, nf, rows, c = 0;

	if ((st = dp_req_query(req, "status")) == NULL &&
	    (st = dp_req_query(req, "status_filter")) != NULL)
		field = "status_filter";
	if (st != NULL && dp_env_status_from_name(st) < 0)
		dp_req_invalid(req, field, DP_V_INVALID_CHOICE, NULL);
	(void)dp_query_bool(req, "include_terminated", false, &incl);
	(void)dp_query_page(req, &limit, &offset);
	if (dp_req_has_errors(req))
		return dp_fail_invalid(req, res);
	if ((tmpl = dp_req_query(req, "template_id")) != NULL &&
	    !dp_utf8_valid(tmpl, strlen(tmpl)))
		tmpl = "";
	/* The parameters in list_sql's order. */
	nf = 0;
	p[nf++] = req->user->id;
	if (st != NULL)
		p[nf++] = st;
	if (st != NULL || incl)
		p[nf++] = retention(req);
	if (tmpl != NULL)
		p[nf++] = tmpl;
	p[nf] = dp_arena_printf(&req->arena, "%" PRId64, limit);
	p[nf + 1] = dp_arena_printf(&req->arena, "%" PRId64, offset);
	if (req->user->rider > 0) {
		/* No query: the first page came with the authentication. */
		r = req->user->row;
		c = req->user->rider;
		rows = PQgetisnull(r, 0, c) ? 0 : PQntuples(r);
	} else {
		sql = list_sql(req, st != NULL, incl, tmpl != NULL,
		    offset > 0, false, &np);
		r = dp_db_exec(req->db, sql, np, p);
		if (!dp_db_ok(r)) {
			PQclear(r);
			return dp_fail_db(req, res);
		}
		rows = PQntuples(r);
	}
	dp_buf_addc(&body, '[');
	for (i = 0; i < rows; i++) {
		if (i > 0)
			dp_buf_addc(&body, ',');
		dp_env_write(&body, r, i, c);
	}
	dp_buf_addc(&body, ']');
	if (r != req->user->row)
		PQclear(r);
	if (rows > 0 && rows < limit)
		n = offset + rows;
	else if (rows == limit || offset > 0) {
		sql = list_sql(req, st != NULL, incl, tmpl != NULL, false,
		    true, &np);
		r = dp_db_exec(req->db, sql, np, p);
		if (!dp_db_ok(r) || PQntuples(r) != 1) {
			PQclear(r);
			dp_buf_release(&body);
			return dp_fail_db(req, res);
		}
		(void)dp_parse_int64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &n);
		PQclear(r);
	}
	dp_res_total(res, n);
	return dp_ok(res, 200, dp_json_raw(&body));
}

/* The first page of GET /environments without a query (dp_http_rider). */
static const struct dp_rider list_rider = {
	envs_list,
	"SELECT " DP_ENV_COLS " " DP_ENV_FROM " WHERE e.user_id = me.id AND "
	LIST_ALIVE " " LIST_ORDER " LIMIT " DP_XSTR(DP_PAGE_LIMIT),
	"x.created_at DESC, x.id"
};

/* ---- /environments/{id} ------------------------------------------------- */

/* GET /environments/{id}: 200 Environment; 404. */
static int
envs_get(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "SELECT " DP_ENV_COLS " " DP_ENV_FROM
	    " WHERE e.id = $1 AND e.user_id = $2 AND " DP_ENV_VISIBLE(3);
	const char	*id = req->params[0];
	PGresult	*r;
	int		 rc;

	if (!dp_is_id(id))
		return dp_fail(res, 404, env_not_found);
	r = dp_db_exec(req->db, sql, 3, (const char *const[]){ id,
	    req->user->id, retention(req) });
	if (!dp_db_ok(r))
		rc = dp_fail_db(req, res);
	else if (PQntuples(r) != 1)
		rc = dp_fail(res, 404, env_not_found);
	else
		rc = dp_ok(res, 200, dp_env_json(r, 0, 0));
	PQclear(r);
	return rc;
}

/* True when the stored jsonb text cur differs from o. */
static bool
json_differs(const char *cur, struct json_object *o)
{
	struct json_object	*c = cur != NULL ? json_tokener_parse(cur) :
				    NULL;
	bool			 d;

	d = c == NULL || !json_object_equal(c, o);
	json_object_put(c);
	return d;
}

/*
 * PUT /environments/{id}: 200 Environment; 422; 404; 400 Cannot
 * transition environment from <cur> to <new>; 400 Cannot modify a
 * terminated environment; 409 Environment with this name already exists.
 */
static int
envs_update(struct dp_req *req, struct dp_res *res)
{
	static const char taken[] =
	    "SELECT 1 FROM environments WHERE user_id = $1 AND name = $2 "
	    "AND status <> 'terminated' AND id <> $3";
	static const char upd[] =
	    "UPDATE environments SET name = coalesce($2, name), "
	    "description = CASE WHEN $3::boolean THEN $4 ELSE description END, "
	    "resources = resources || coalesce($5::jsonb, '{}'::jsonb), "
	    "environment_variables = coalesce($6::jsonb, "
	    "environment_variables), updated_at = now() WHERE id = $1";
	const char		*id = req->params[0], *name, *desc, *st = NULL;
	const char		*vals[DP_RES__MAX], *cur_desc, *p[6];
	struct dp_resources	 pdef, pmax;
	struct json_object	*envmap, *curres = NULL, *v, *resobj = NULL, *o;
	enum dp_env_effect	 eff = DP_EFF_NONE;
	PGresult		*r = NULL, *t;
	size_t			 stlen;
	int			 has_name, has_desc, cur, to = -1, k, rc;
	bool			 chg_name = false, chg_desc = false;
	bool			 chg_res = false, chg_env = false;

	if (plan_resources(req, &pdef, &pmax) < 0)
		return dp_fail_internal(req, res, "plan resources unreadable");
	has_name = check_name(req, false, &name);
	has_desc = check_description(req, &desc);
	(void)check_resources(req, &pmax, vals);
	(void)check_env_map(req, &envmap);
	if ((rc = member_str(req, "status", "status", &st, &stlen)) > 0 &&
	    (dp_check_choice(st, stlen, dp_env_status_names) != DP_V_OK ||
	    (to = dp_env_status_from_name(st)) < 0))
		dp_req_invalid(req, "status", DP_V_INVALID_CHOICE, NULL);
	if (dp_req_has_errors(req))
		return dp_fail_invalid(req, res);

	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	if ((rc = lock_env(req, id, &r)) < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, env_not_found);
	if ((cur = dp_env_status_from_name(PQgetvalue(r, 0, 0))) < 0) {
		rc = dp_fail_internal(req, res, "unknown environment status");
		goto out;
	}
	if (to >= 0)
		eff = dp_env_transition((enum dp_env_status)cur,
		    (enum dp_env_status)to);
	if (eff == DP_EFF_INVALID) {
		rc = dp_fail(res, 400, dp_arena_printf(&req->arena,
		    "Cannot transition environment from %s to %s",
		    PQgetvalue(r, 0, 0), st));
		goto out;
	}
	chg_name = has_name > 0 && strcmp(name, PQgetvalue(r, 0, 1)) != 0;
	cur_desc = dp_db_val(r, 0, 2);
	chg_desc = has_desc > 0 && (desc == NULL ? cur_desc != NULL :
	    cur_desc == NULL || strcmp(desc, cur_desc) != 0);
	curres = json_tokener_parse(PQgetvalue(r, 0, 3));
	resobj = json_object_new_object();
	for (k = 0; k < DP_RES__MAX; k++) {
		if (vals[k] == NULL)
			continue;
		dp_json_str(resobj, dp_res_keys[k], vals[k]);
		if (curres == NULL ||
		    !json_object_object_get_ex(curres, dp_res_keys[k], &v) ||
		    !json_object_is_type(v, json_type_string) ||
		    strcmp(json_object_get_string(v), vals[k]) != 0)
			chg_res = true;
	}
	chg_env = envmap != NULL && json_differs(PQgetvalue(r, 0, 4), envmap);
	if (cur == DP_ENV_TERMINATED &&
	    (chg_name || chg_desc || chg_res || chg_env)) {
		rc = dp_fail(res, 400, "Cannot modify a terminated environment");
		goto out;
	}
	if (chg_name) {
		t = dp_db_exec(req->db, taken, 3, (const char *const[]){
		    req->user->id, name, id });
		if (!dp_db_ok(t)) {
			PQclear(t);
			rc = dp_fail_db(req, res);
			goto out;
		}
		k = PQntuples(t);
		PQclear(t);
		if (k > 0) {
			rc = dp_fail(res, 409,
			    "Environment with this name already exists");
			goto out;
		}
	}
	if (chg_name || chg_desc || chg_res || chg_env) {
		p[0] = id;
		p[1] = chg_name ? name : NULL;
		p[2] = chg_desc ? "true" : "false";
		p[3] = desc;
		p[4] = chg_res ? json_param(req, resobj) : NULL;
		p[5] = chg_env ? json_param(req, envmap) : NULL;
		t = dp_db_exec(req->db, upd, 6, p);
		if (!dp_db_ok(t)) {
			bool dup = strcmp(dp_db_sqlstate(t), "23505") == 0;

			PQclear(t);
			rc = dup ? dp_fail(res, 409, "Environment with this "
			    "name already exists") : dp_fail_db(req, res);
			goto out;
		}
		PQclear(t);
	}
	if (apply_effect(req, id, eff) < 0 ||
	    (o = env_object(req, id)) == NULL) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	if (dp_db_commit(req->db) < 0) {
		json_object_put(o);
		rc = dp_fail_db(req, res);
		goto out;
	}
	rc = dp_ok(res, 200, o);
out:
	json_object_put(curres);
	json_object_put(resobj);
	PQclear(r);
	return rc;
}

/* DELETE /environments/{id}: 204 (also when already terminated); 404. */
static int
envs_delete(struct dp_req *req, struct dp_res *res)
{
	const char	*id = req->params[0];
	PGresult	*r;
	int		 rc;

	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	if ((rc = lock_env(req, id, &r)) < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, env_not_found);
	rc = strcmp(PQgetvalue(r, 0, 0), "terminated") == 0;
	PQclear(r);
	if (!rc && apply_effect(req, id, DP_EFF_DELETE) < 0)
		return dp_fail_db(req, res);
	if (dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	return dp_no_content(res);
}

/* The three POST actions: their effect, 200 texts and 400 texts. */
static int
envs_action(struct dp_req *req, struct dp_res *res, enum dp_env_action a)
{
	static const struct {
		enum dp_env_effect	 eff;
		const char		*message, *status;
	} acts[DP_ACT__MAX] = {
		{ DP_EFF_START, "Environment start initiated", "creating" },
		{ DP_EFF_STOP, "Environment stop initiated", "stopped" },
		{ DP_EFF_RESTART, "Environment restart initiated", "creating" },
	};
	struct json_object	*o;
	const char		*id = req->params[0], *cur;
	PGresult		*r;
	int			 rc, st;

	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	if ((rc = lock_env(req, id, &r)) < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, env_not_found);
	cur = dp_req_strdup(req, PQgetvalue(r, 0, 0));
	PQclear(r);
	st = dp_env_status_from_name(cur);
	if (st < 0 || !dp_env_action_allowed(a, (enum dp_env_status)st)) {
		if (a == DP_ACT_START)
			return dp_fail(res, 400,
			    "Environment is not in stopped state");
		if (a == DP_ACT_STOP)
			return dp_fail(res, 400, "Environment is not running");
		return dp_fail(res, 400, dp_arena_printf(&req->arena,
		    "Environment in %s state cannot be restarted", cur));
	}
	if (apply_effect(req, id, acts[a].eff) < 0 ||
	    dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	o = json_object_new_object();
	dp_json_str(o, "message", acts[a].message);
	dp_json_str(o, "status", acts[a].status);
	return dp_ok(res, 200, o);
}

/* POST /environments/{id}/start: 200; 404; 400 Environment is not in
 * stopped state. */
static int
envs_start(struct dp_req *req, struct dp_res *res)
{
	return envs_action(req, res, DP_ACT_START);
}

/* POST /environments/{id}/stop: 200; 404; 400 Environment is not running. */
static int
envs_stop(struct dp_req *req, struct dp_res *res)
{
	return envs_action(req, res, DP_ACT_STOP);
}

/* POST /environments/{id}/restart: 200; 404; 400 Environment in <status>
 * state cannot be restarted. */
static int
envs_restart(struct dp_req *req, struct dp_res *res)
{
	return envs_action(req, res, DP_ACT_RESTART);
}

/* The caller's visible environment id: 1 with its name, 0, -1. */
static int
find_env(struct dp_req *req, const char *id, const char **name)
{
	static const char sql[] =
	    "SELECT e.name FROM environments e WHERE e.id = $1 "
	    "AND e.user_id = $2 AND " DP_ENV_VISIBLE(3);
	PGresult	*r;
	int		 rc;

	if (!dp_is_id(id))
		return 0;
	r = dp_db_exec(req->db, sql, 3, (const char *const[]){ id,
	    req->user->id, retention(req) });
	if (!dp_db_ok(r))
		rc = -1;
	else if (PQntuples(r) != 1)
		rc = 0;
	else {
		*name = dp_req_strdup(req, PQgetvalue(r, 0, 0));
		rc = 1;
	}
	PQclear(r);
	return rc;
}

static void
sample_json(struct json_object *o, const PGresult *r, int row, bool top)
{
	const char	*ts = dp_db_val(r, row, 0);

	dp_json_ts(o, "timestamp", ts);
	dp_json_double(o, "cpu_usage", strtod(PQgetvalue(r, row, 1), NULL));
	dp_json_double(o, "memory_usage", strtod(PQgetvalue(r, row, 2), NULL));
	dp_json_int(o, "storage_usage", strtoll(PQgetvalue(r, row, 3),
	    NULL, 10));
	if (top) {
		dp_json_int(o, "disk_usage", strtoll(PQgetvalue(r, row, 3),
		    NULL, 10));
		dp_json_int(o, "network_in", strtoll(PQgetvalue(r, row, 4),
		    NULL, 10));
		dp_json_int(o, "network_out", strtoll(PQgetvalue(r, row, 5),
		    NULL, 10));
	} else {
		dp_json_int(o, "network_rx", strtoll(PQgetvalue(r, row, 4),
		    NULL, 10));
		dp_json_int(o, "network_tx", strtoll(PQgetvalue(r, row, 5),
		    NULL, 10));
	}
}

/*
 * The samples' and entries' own statements check the owner ($2) too, not
 * only find_env before them: what the caller reads is never another
 * user's, whatever the code before the statement does.
 */
#define OWNED \
	"EXISTS (SELECT 1 FROM environments o WHERE o.id = $1 AND " \
	"o.user_id = $2)"

/*
 * GET /environments/{id}/metrics: 200 metrics body; 422 hours; 404.
 * Samples of the last `hours` hours averaged into buckets of
 * ⌈hours/24⌉ minutes aligned to the window start.
 */
static int
envs_metrics(struct dp_req *req, struct dp_res *res)
{
	static const char buckets[] =
	    "WITH w AS (SELECT now() - $3::double precision * "
	    "interval '1 hour' AS start) "
	    "SELECT max(m.ts), avg(m.cpu_usage), avg(m.memory_usage), "
	    "round(avg(m.storage_usage))::bigint, sum(m.network_rx)::bigint, "
	    "sum(m.network_tx)::bigint FROM metric_samples m, w "
	    "WHERE m.environment_id = $1 AND " OWNED " AND m.ts >= w.start "
	    "GROUP BY floor(extract(epoch FROM m.ts - w.start) / "
	    "($4::double precision * 60)) ORDER BY 1";
	static const char newest[] =
	    "SELECT ts, cpu_usage, memory_usage, storage_usage, network_rx, "
	    "network_tx FROM metric_samples WHERE environment_id = $1 "
	    "AND " OWNED " AND ts >= now() - $3::double precision * "
	    "interval '1 hour' ORDER BY ts DESC LIMIT 1";
	struct json_object	*o, *a, *s;
	const char		*id = req->params[0], *name, *p[4];
	PGresult		*r;
	int64_t			 hours;
	int			 i, rc;

	if (!dp_query_int(req, "hours", 1, 168, 24, &hours))
		return dp_fail_invalid(req, res);
	if ((rc = find_env(req, id, &name)) < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, env_not_found);
	p[0] = id;
	p[1] = req->user->id;
	p[2] = dp_arena_printf(&req->arena, "%" PRId64, hours);
	p[3] = dp_arena_printf(&req->arena, "%" PRId64, (hours + 23) / 24);
	r = dp_db_exec(req->db, buckets, 4, p);
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	o = json_object_new_object();
	dp_json_str(o, "environment_id", id);
	a = json_object_new_array();
	for (i = 0; i < PQntuples(r); i++) {
		s = json_object_new_object();
		sample_json(s, r, i, false);
		json_object_array_add(a, s);
	}
	PQclear(r);
	json_object_object_add(o, "metrics", a);
	r = dp_db_exec(req->db, newest, 3, p);
	if (!dp_db_ok(r)) {
		PQclear(r);
		json_object_put(o);
		return dp_fail_db(req, res);
	}
	if (PQntuples(r) == 1)
		sample_json(o, r, 0, true);
	else {
		dp_json_double(o, "cpu_usage", 0);
		dp_json_double(o, "memory_usage", 0);
		dp_json_int(o, "storage_usage", 0);
		dp_json_int(o, "disk_usage", 0);
		dp_json_int(o, "network_in", 0);
		dp_json_int(o, "network_out", 0);
		json_object_object_add(o, "timestamp", NULL);
	}
	PQclear(r);
	return dp_ok(res, 200, o);
}

/*
 * GET /environments/{id}/logs: 200 logs body; 422 lines; 404; 400
 * Invalid timestamp format… (since).
 */
static int
envs_logs(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "SELECT ts, level, message, source FROM (SELECT id, ts, level, "
	    "message, source FROM environment_logs WHERE environment_id = $1 "
	    "AND " OWNED " AND ($3::bigint IS NULL OR ts >= "
	    "'epoch'::timestamptz + $3::bigint * interval '1 microsecond') "
	    "ORDER BY ts DESC, id DESC LIMIT $4::integer + 1) x "
	    "ORDER BY ts, id";
	struct json_object	*o, *a, *e;
	const char		*id = req->params[0], *name, *since, *p[4];
	PGresult		*r;
	int64_t			 lines, usec;
	int			 i, first, n, rc;

	if (!dp_query_int(req, "lines", 1, 1000, 100, &lines))
		return dp_fail_invalid(req, res);
	if ((rc = find_env(req, id, &name)) < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, env_not_found);
	p[2] = NULL;
	if ((since = dp_req_query(req, "since")) != NULL) {
		if (dp_check_timestamp(since, strlen(since), &usec) != DP_V_OK)
			return dp_fail(res, 400, "Invalid timestamp format. "
			    "Use ISO format (e.g., 2024-01-01T12:00:00Z)");
		p[2] = dp_arena_printf(&req->arena, "%" PRId64, usec);
	}
	p[0] = id;
	p[1] = req->user->id;
	p[3] = dp_arena_printf(&req->arena, "%" PRId64, lines);
	r = dp_db_exec(req->db, sql, 4, p);
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	n = PQntuples(r);
	first = n > lines ? 1 : 0;
	a = json_object_new_array();
	for (i = first; i < n; i++) {
		e = json_object_new_object();
		dp_json_ts(e, "timestamp", PQgetvalue(r, i, 0));
		dp_json_str(e, "level", PQgetvalue(r, i, 1));
		dp_json_str(e, "message", PQgetvalue(r, i, 2));
		dp_json_str(e, "source", PQgetvalue(r, i, 3));
		json_object_array_add(a, e);
	}
	PQclear(r);
	o = json_object_new_object();
	dp_json_str(o, "environment_id", id);
	dp_json_str(o, "environment_name", name);
	json_object_object_add(o, "logs", a);
	dp_json_int(o, "total_lines", n - first);
	dp_json_int(o, "total", n - first);
	dp_json_bool(o, "has_more", first == 1);
	return dp_ok(res, 200, o);
}

#define E	"/api/v1/environments"
static const struct dp_route routes[] = {
	{ DP_POST, E, envs_create, NULL, DP_AUTH | DP_BODY | DP_ENVLIMIT },
	{ DP_GET, E, envs_list, NULL, DP_AUTH },
	{ DP_GET, E "/{id}", envs_get, NULL, DP_AUTH },
	{ DP_PUT, E "/{id}", envs_update, NULL, DP_AUTH | DP_BODY },
	{ DP_DELETE, E "/{id}", envs_delete, NULL, DP_AUTH },
	{ DP_POST, E "/{id}/start", envs_start, NULL, DP_AUTH },
	{ DP_POST, E "/{id}/stop", envs_stop, NULL, DP_AUTH },
	{ DP_POST, E "/{id}/restart", envs_restart, NULL, DP_AUTH },
	{ DP_GET, E "/{id}/metrics", envs_metrics, NULL, DP_AUTH },
	{ DP_GET, E "/{id}/logs", envs_logs, NULL, DP_AUTH },
};

int
main(int argc, char *argv[])
{
	dp_http_rider(&list_rider);
	return dp_serve(argc, argv, "environments", routes, DP_NITEMS(routes));
}
