/* cgi-bin/templates.c: /api/v1/templates responder */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "http.h"
#include "templates.h"

/* POST and PUT bodies share one field order (DP_IN indexes); check_body
 * applies the tables. */
enum {
	F_NAME, F_DISPLAY, F_DESC, F_CATEGORY, F_IMAGE, F_TAGS, F_PORT, F_RES,
	F_ENV, F_STARTUP, F_DOC, F_ICON, F_STATUS, F_VERSION
};

static const char *const create_statuses[] = { "active", "beta", NULL };

#define R	DP_F_REQUIRED
static const struct dp_field create_fields[] = {
	{ "name", DP_FT_TEXT, R, 1, 50, NULL },
	{ "display_name", DP_FT_TEXT, R, 1, 100, NULL },
	{ "description", DP_FT_TEXT, R, 1, 500, NULL },
	{ "category", DP_FT_CHOICE, R, 0, 0, dp_template_categories },
	{ "docker_image", DP_FT_TEXT, R, 1, 255, NULL },
	{ "tags", DP_FT_ARRAY, 0, 0, 0, NULL },
	{ "default_port", DP_FT_INT, 0, 1, 65535, NULL },
	{ "default_resources", DP_FT_OBJECT, 0, 0, 0, NULL },
	{ "environment_variables", DP_FT_OBJECT, 0, 0, 0, NULL },
	{ "startup_commands", DP_FT_ARRAY, 0, 0, 0, NULL },
	{ "documentation_url", DP_FT_URL, DP_F_EMPTYNULL, 0, 0, NULL },
	{ "icon_url", DP_FT_URL, DP_F_EMPTYNULL, 0, 0, NULL },
	{ "status", DP_FT_CHOICE, 0, 0, 0, create_statuses },
	{ "version", DP_FT_TEXT, 0, 1, 50, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};
#undef R

static const struct dp_field update_fields[] = {
	{ "name", DP_FT_TEXT, 0, 1, 50, NULL },
	{ "display_name", DP_FT_TEXT, 0, 1, 100, NULL },
	{ "description", DP_FT_TEXT, 0, 1, 500, NULL },
	{ "category", DP_FT_CHOICE, 0, 0, 0, dp_template_categories },
	{ "docker_image", DP_FT_TEXT, 0, 1, 255, NULL },
	{ "tags", DP_FT_ARRAY, 0, 0, 0, NULL },
	{ "default_port", DP_FT_INT, 0, 1, 65535, NULL },
	{ "default_resources", DP_FT_OBJECT, 0, 0, 0, NULL },
	{ "environment_variables", DP_FT_OBJECT, 0, 0, 0, NULL },
	{ "startup_commands", DP_FT_ARRAY, 0, 0, 0, NULL },
	{ "documentation_url", DP_FT_URL, DP_F_EMPTYNULL, 0, 0, NULL },
	{ "icon_url", DP_FT_URL, DP_F_EMPTYNULL, 0, 0, NULL },
	{ "status", DP_FT_CHOICE, 0, 0, 0, dp_template_statuses },
	{ "version", DP_FT_TEXT, 0, 1, 50, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};


/* The checked composite fields as jsonb texts (arena), NULL if absent. */
struct body {
	const char	*tags, *res, *env, *cmds;
};

static const char *
json_arena(struct dp_req *req, struct json_object *o)
{
	return dp_req_strdup(req, json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* A JSON string of min..max code points at field path; true when valid. */
static bool
check_string(struct dp_req *req, const char *path, struct json_object *j,
    int64_t min, int64_t max)
{
	enum dp_vcode	 c;

	if (!json_object_is_type(j, json_type_string))
		c = DP_V_TYPE_ERROR;
	else
		c = dp_check_text(json_object_get_string(j),
		    (size_t)json_object_get_string_len(j), min, max);
	if (c != DP_V_OK)
		dp_req_invalid(req, path, c, NULL);
	return c == DP_V_OK;
}

/* An array of at most max strings of 1..len chars (tags, commands). */
static const char *
check_list(struct dp_req *req, const char *name, struct json_object *a,
    size_t max, int64_t len)
{
	size_t	 i, n = json_object_array_length(a);
	bool	 ok = true;
	char	*path;

	if (n > max) {
		dp_req_invalid(req, name, DP_V_TOO_MANY, dp_arena_printf(
		    &req->arena, "at most %zu items", max));
		return NULL;
	}
	for (i = 0; i < n; i++) {
		path = dp_arena_printf(&req->arena, "%s.%zu", name, i);
		if (!check_string(req, path, json_object_array_get_idx(a, i), 1,
		    len))
			ok = false;
	}
	return ok ? json_arena(req, a) : NULL;
}

/* resources (§0.3): cpu, memory, storage; missing ones get defaults. */
static const char *
check_resources(struct dp_req *req, struct json_object *o)
{
	static const char *const keys[] = { "cpu", "memory", "storage" };
	static const char *const dflt[] = { "500m", "1Gi", "10Gi" };
	static const int64_t mins[] = { 0, (int64_t)128 << 20,
	    (int64_t)1 << 30 };
	struct json_object	*out = json_object_new_object(), *j;
	enum dp_vcode		 c;
	const char		*s, *text = NULL;
	char			*path;
	int64_t			 v;
	size_t			 i, len;
	bool			 ok = true;

	for (i = 0; i < DP_NITEMS(keys); i++) {
		if (!json_object_object_get_ex(o, keys[i], &j) || j == NULL) {
			dp_json_str(out, keys[i], dflt[i]);
			continue;
		}
		path = dp_arena_printf(&req->arena, "default_resources.%s",
		    keys[i]);
		if (!json_object_is_type(j, json_type_string)) {
			dp_req_invalid(req, path, DP_V_TYPE_ERROR, NULL);
			ok = false;
			continue;
		}
		s = json_object_get_string(j);
		len = (size_t)json_object_get_string_len(j);
		c = i == 0 ? dp_check_cpu(s, len, &v) :
		    dp_check_quantity(s, len, mins[i], &v);
		if (c != DP_V_OK) {
			dp_req_invalid(req, path, c, NULL);
			ok = false;
			continue;
		}
		dp_json_str(out, keys[i], s);
	}
	if (ok)
		text = json_arena(req, out);
	json_object_put(out);
	return text;
}

/* env_map (§0.3). */
static const char *
check_env(struct dp_req *req, struct json_object *o)
{
	enum dp_vcode	 c;
	char		*path;
	bool		 ok = true;

	if (json_object_object_length(o) > DP_TEMPLATE_ENV_MAX) {
		dp_req_invalid(req, "environment_variables", DP_V_TOO_MANY,
		    "at most 100 variables");
		return NULL;
	}
	json_object_object_foreach(o, key, val) {
		path = dp_arena_printf(&req->arena, "environment_variables.%s",
		    key);
		if ((c = dp_check_env_key(key, strlen(key))) != DP_V_OK) {
			dp_req_invalid(req, path, c == DP_V_INVALID_FORMAT ?
			    c : DP_V_PATTERN, "not a variable name");
			ok = false;
		} else if (!check_string(req, path, val, 0,
		    DP_TEMPLATE_ENV_LEN))
			ok = false;
	}
	return ok ? json_arena(req, o) : NULL;
}

/*
 * The body: the field table, then what it cannot express (name and
 * image patterns, the composite fields).  Fills req->in in table order
 * and adds 422 entries; true when all are valid.
 */
static bool
check_body(struct dp_req *req, const struct dp_field *fields,
    struct body *b)
{
	const struct dp_value	*v;
	enum dp_vcode		 c;

	memset(b, 0, sizeof(*b));
	/* The table through the pipeline's checker, then the rest, so that
	 * one 422 lists every invalid field (§0.7). */
	req->in = dp_fields_check(req, fields);
	v = DP_IN(req, F_NAME);
	if (v->present && (c = dp_check_template_name(v->s, v->len)) !=
	    DP_V_OK)
		dp_req_invalid(req, "name", c,
		    "must match ^[a-z0-9][a-z0-9_-]{0,49}$");
	v = DP_IN(req, F_IMAGE);
	if (v->present && (c = dp_check_image_ref(v->s, v->len)) != DP_V_OK)
		dp_req_invalid(req, "docker_image", c,
		    "not a container image reference");
	if ((v = DP_IN(req, F_TAGS))->present)
		b->tags = check_list(req, "tags", v->j, DP_TEMPLATE_TAGS_MAX,
		    DP_TEMPLATE_TAG_LEN);
	if ((v = DP_IN(req, F_RES))->present)
		b->res = check_resources(req, v->j);
	if ((v = DP_IN(req, F_ENV))->present)
		b->env = check_env(req, v->j);
	if ((v = DP_IN(req, F_STARTUP))->present)
		b->cmds = check_list(req, "startup_commands", v->j,
		    DP_TEMPLATE_CMDS_MAX, DP_TEMPLATE_CMD_LEN);
	return !dp_req_has_errors(req);
}

static bool
is_admin(const struct dp_req *req)
{
	return req->user != NULL && req->user->plan == DP_PLAN_ADMIN;
}

static int
conflict(struct dp_req *req, struct dp_res *res, const char *name)
{
	return dp_fail(res, 409, dp_arena_printf(&req->arena,
	    "Template with name '%s' already exists", name));
}

/*
 * GET /templates: 200 [Template] by name, then id; 422 on a bad
 * category, status, limit or offset.  Non-admins never see deprecated
 * templates (status=deprecated gives them []).
 */
static int
templates_list(struct dp_req *req, struct dp_res *res)
{
#define WHERE \
	" FROM templates t WHERE ($1::text IS NULL OR t.category = $1) " \
	"AND ($2::text IS NULL OR t.status = $2) " \
	"AND ($3::boolean OR t.status <> 'deprecated')"
	static const char count[] = "SELECT count(*)::text" WHERE;
	static const char list[] = "SELECT " DP_TEMPLATE_COLS WHERE
	    " ORDER BY t.name COLLATE \"C\", t.id LIMIT $4::integer OFFSET $5::integer";
#undef WHERE
	struct json_object	*a;
	const char		*cat = dp_req_query(req, "category");
	const char		*st = dp_req_query(req, "status");
	const char		*p[5];
	char			 lim[24], off[24];
	int64_t			 limit, offset, total;
	PGresult		*r;
	int			 i;

	if (cat != NULL && dp_check_choice(cat, strlen(cat),
	    dp_template_categories) != DP_V_OK)
		dp_req_invalid(req, "category", DP_V_INVALID_CHOICE,
		    "unknown category");
	if (st != NULL && dp_check_choice(st, strlen(st),
	    dp_template_statuses) != DP_V_OK)
		dp_req_invalid(req, "status", DP_V_INVALID_CHOICE,
		    "unknown status");
	(void)dp_query_page(req, &limit, &offset);
	if (dp_req_has_errors(req))
		return dp_fail_invalid(req, res);
	(void)snprintf(lim, sizeof(lim), "%lld", (long long)limit);
	(void)snprintf(off, sizeof(off), "%lld", (long long)offset);
	p[0] = cat;
	p[1] = st;
	p[2] = is_admin(req) ? "true" : "false";
	p[3] = lim;
	p[4] = off;
	r = dp_db_exec(req->db, count, 3, p);
	if (!dp_db_ok(r) || PQntuples(r) != 1 ||
	    dp_parse_int64(PQgetvalue(r, 0, 0), 0, INT64_MAX, &total) < 0) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	PQclear(r);
	r = dp_db_exec(req->db, list, 5, p);
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	a = json_object_new_array();
	for (i = 0; i < PQntuples(r); i++)
		json_object_array_add(a, dp_template_json(r, i));
	PQclear(r);
	dp_res_total(res, total);
	return dp_ok(res, 200, a);
}

/* GET /templates/{id}: 200 Template; 404 Template not found. */
static int
templates_get(struct dp_req *req, struct dp_res *res)
{
	PGresult	*r;
	int		 rc;

	rc = dp_template_lookup(req->db, req->params[0], is_admin(req), &r);
	if (rc < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, "Template not found");
	rc = dp_ok(res, 200, dp_template_json(r, 0));
	PQclear(r);
	return rc;
}

/* A field sent in the body, or NULL (keeps the old value, or the default). */
static const char *
opt(const struct dp_value *in, int f)
{
	return in[f].present ? in[f].s : NULL;
}

/*
 * The INSERT or UPDATE of a template inside the open transaction, then
 * the answer: status with the Template, 409 for a taken name.
 */
static int
write_template(struct dp_req *req, struct dp_res *res, const char *sql,
    int n, const char *const *p, int status)
{
	PGresult	*r = dp_db_exec(req->db, sql, n, p);
	bool		 dup;
	int		 rc;

	if (!dp_db_ok(r) || PQntuples(r) != 1) {
		dup = strcmp(dp_db_sqlstate(r), "23505") == 0;
		PQclear(r);
		if (dup)
			return conflict(req, res, req->in[F_NAME].s);
		return dp_fail_db(req, res);
	}
	if (dp_db_commit(req->db) < 0) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	rc = dp_ok(res, status, dp_template_json(r, 0));
	PQclear(r);
	return rc;
}

/*
 * POST /templates (admin): 201 Template (usage_count 0); 409 Template
 * with name '<name>' already exists; 422.
 */
static int
templates_create(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "INSERT INTO templates AS t (id, name, display_name, description, "
	    "category, docker_image, tags, default_port, default_resources, "
	    "environment_variables, startup_commands, documentation_url, "
	    "icon_url, status, version) VALUES ($1, $2, $3, $4, $5, $6, "
	    "coalesce($7::jsonb, '[]'), coalesce($8::integer, 8080), "
	    "coalesce($9::jsonb, '{\"cpu\": \"500m\", \"memory\": \"1Gi\", "
	    "\"storage\": \"10Gi\"}'), coalesce($10::jsonb, '{}'), "
	    "coalesce($11::jsonb, '[]'), $12, $13, coalesce($14, 'active'), "
	    "coalesce($15, '1.0.0')) RETURNING " DP_TEMPLATE_COLS;
	const struct dp_value	*in;
	struct body		 b;
	const char		*p[15];
	char			 id[25], port[8];

	if (!check_body(req, create_fields, &b))
		return dp_fail_invalid(req, res);
	in = req->in;
	dp_new_id(id);
	(void)snprintf(port, sizeof(port), "%lld", (long long)in[F_PORT].i);
	p[0] = id;
	p[1] = in[F_NAME].s;
	p[2] = in[F_DISPLAY].s;
	p[3] = in[F_DESC].s;
	p[4] = in[F_CATEGORY].s;
	p[5] = in[F_IMAGE].s;
	p[6] = b.tags;
	p[7] = in[F_PORT].present ? port : NULL;
	p[8] = b.res;
	p[9] = b.env;
	p[10] = b.cmds;
	p[11] = opt(in, F_DOC);
	p[12] = opt(in, F_ICON);
	p[13] = opt(in, F_STATUS);
	p[14] = opt(in, F_VERSION);
	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	return write_template(req, res, sql, 15, p, 201);
}

/*
 * PUT /templates/{id} (admin): 200 Template; 404 Template not found;
 * 409 Template with name '<name>' already exists; 422.  Absent fields
 * keep their values; "" clears documentation_url and icon_url; a sent
 * default_resources replaces the old one (missing values get the
 * defaults); status may be deprecated.
 */
static int
templates_update(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "UPDATE templates AS t SET name = coalesce($2, name), "
	    "display_name = coalesce($3, display_name), "
	    "description = coalesce($4, description), "
	    "category = coalesce($5, category), "
	    "docker_image = coalesce($6, docker_image), "
	    "tags = coalesce($7::jsonb, tags), "
	    "default_port = coalesce($8::integer, default_port), "
	    "default_resources = coalesce($9::jsonb, default_resources), "
	    "environment_variables = coalesce($10::jsonb, "
	    "environment_variables), "
	    "startup_commands = coalesce($11::jsonb, startup_commands), "
	    "documentation_url = CASE WHEN $12::boolean THEN $13 "
	    "ELSE documentation_url END, "
	    "icon_url = CASE WHEN $14::boolean THEN $15 ELSE icon_url END, "
	    "status = coalesce($16, status), "
	    "version = coalesce($17, version), updated_at = now() "
	    "WHERE id = $1 RETURNING " DP_TEMPLATE_COLS;
	const struct dp_value	*in;
	struct body		 b;
	const char		*p[17];
	char			 port[8];
	PGresult		*r;
	int			 rc;

	if (!check_body(req, update_fields, &b))
		return dp_fail_invalid(req, res);
	in = req->in;
	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	rc = dp_template_lookup(req->db, req->params[0], true, &r);
	if (rc < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, "Template not found");
	p[0] = dp_req_strdup(req, PQgetvalue(r, 0, 0));
	PQclear(r);
	(void)snprintf(port, sizeof(port), "%lld", (long long)in[F_PORT].i);
	p[1] = opt(in, F_NAME);
	p[2] = opt(in, F_DISPLAY);
	p[3] = opt(in, F_DESC);
	p[4] = opt(in, F_CATEGORY);
	p[5] = opt(in, F_IMAGE);
	p[6] = b.tags;
	p[7] = in[F_PORT].present ? port : NULL;
	p[8] = b.res;
	p[9] = b.env;
	p[10] = b.cmds;
	p[11] = (in[F_DOC].present || in[F_DOC].cleared) ? "true" : "false";
	p[12] = opt(in, F_DOC);
	p[13] = (in[F_ICON].present || in[F_ICON].cleared) ? "true" : "false";
	p[14] = opt(in, F_ICON);
	p[15] = opt(in, F_STATUS);
	p[16] = opt(in, F_VERSION);
	return write_template(req, res, sql, 17, p, 200);
}

/*
 * DELETE /templates/{id} (admin): 200 {"message"}; 404 Template not
 * found.  The template becomes deprecated: environments made from it
 * keep referring to it.
 */
static int
templates_delete(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "UPDATE templates SET status = 'deprecated', updated_at = now() "
	    "WHERE id = $1";
	struct json_object	*o;
	PGresult		*r;
	const char		*id;
	int			 rc;

	if (dp_db_begin(req->db) < 0)
		return dp_fail_db(req, res);
	rc = dp_template_lookup(req->db, req->params[0], true, &r);
	if (rc < 0)
		return dp_fail_db(req, res);
	if (rc == 0)
		return dp_fail(res, 404, "Template not found");
	id = dp_req_strdup(req, PQgetvalue(r, 0, 0));
	PQclear(r);
	if (dp_db_run(req->db, sql, 1, &id) < 0 || dp_db_commit(req->db) < 0)
		return dp_fail_db(req, res);
	o = json_object_new_object();
	dp_json_str(o, "message", "Template deleted successfully");
	return dp_ok(res, 200, o);
}

/*
 * POST /templates/initialize (admin): 200 {"message", "created",
 * "updated", "skipped", "errors"} from <[web] data_dir>/templates/
 * environments.  One transaction, a savepoint per file
 * (dp_templates_load_dir): an invalid file changes nothing and is in
 * "errors"; a database failure leaves the catalog as it was (500), not
 * half loaded with no report of which half.
 */
static int
templates_initialize(struct dp_req *req, struct dp_res *res)
{
	struct json_object	*o;
	const char		*dir;

	dir = dp_arena_printf(&req->arena, "%s/templates/environments",
	    dp_cfg.web_data_dir);
	o = json_object_new_object();
	dp_json_str(o, "message", "Default templates initialized successfully");
	if (dp_db_begin(req->db) < 0 ||
	    dp_templates_load_dir(req->db, dir, false, o) < 0 ||
	    dp_db_commit(req->db) < 0) {
		dp_db_rollback(req->db);
		json_object_put(o);
		return dp_fail_db(req, res);
	}
	return dp_ok(res, 200, o);
}

#define T	"/api/v1/templates"
static const struct dp_route routes[] = {
	{ DP_GET, T, templates_list, NULL, DP_AUTH },
	{ DP_POST, T, templates_create, NULL, DP_AUTH | DP_ADMIN | DP_BODY },
	{ DP_POST, T "/initialize", templates_initialize, NULL,
	    DP_AUTH | DP_ADMIN },
	{ DP_GET, T "/{id}", templates_get, NULL, DP_AUTH },
	{ DP_PUT, T "/{id}", templates_update, NULL,
	    DP_AUTH | DP_ADMIN | DP_BODY },
	{ DP_DELETE, T "/{id}", templates_delete, NULL, DP_AUTH | DP_ADMIN },
};

int
main(int argc, char *argv[])
{
	return dp_serve(argc, argv, "templates", routes, DP_NITEMS(routes));
}
