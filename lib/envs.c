/* lib/envs.c: environments: statuses, transitions, resources, JSON, driver specs */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "crypto.h"
#include "db.h"
#include "driver.h"
#include "envs.h"
#include "http.h"
#include "jobs.h"
#include "log.h"
#include "util.h"
#include "validate.h"

const char *const dp_env_status_names[DP_ENV__MAX + 1] = {
	"creating",	/* DP_ENV_CREATING */
	"installing",	/* DP_ENV_INSTALLING */
	"running",	/* DP_ENV_RUNNING */
	"stopped",	/* DP_ENV_STOPPED */
	"terminated",	/* DP_ENV_TERMINATED */
	"error",	/* DP_ENV_ERROR */
	NULL
};

const char *const dp_env_effect_names[DP_EFF__MAX] = {
	"none",		/* DP_EFF_NONE */
	"accept",	/* DP_EFF_ACCEPT */
	"stop",		/* DP_EFF_STOP */
	"start",	/* DP_EFF_START */
	"restart",	/* DP_EFF_RESTART */
	"error",	/* DP_EFF_ERROR */
	"delete",	/* DP_EFF_DELETE */
	"invalid",	/* DP_EFF_INVALID */
};

const char *const dp_res_keys[DP_RES__MAX] = {
	"cpu",		/* DP_RES_CPU */
	"memory",	/* DP_RES_MEMORY */
	"storage",	/* DP_RES_STORAGE */
};

const int64_t dp_res_min[DP_RES__MAX] = {
	100,			/* DP_RES_CPU: 100m */
	128LL << 20,		/* DP_RES_MEMORY: 128Mi */
	1LL << 30,		/* DP_RES_STORAGE: 1Gi */
};

int
dp_env_status_from_name(const char *s)
{
	int	 i, rc = -1;

	for (i = 0; s != NULL && i < DP_ENV__MAX; i++)
		if (strcmp(s, dp_env_status_names[i]) == 0) {
			rc = i;
			break;
		}
	return rc;
}

/*
 * The PUT status table of CONTRACT §2.4: rows are the current status,
 * columns the requested one.
 */
#define N	DP_EFF_NONE
#define A	DP_EFF_ACCEPT
#define S	DP_EFF_STOP
#define G	DP_EFF_START
#define E	DP_EFF_ERROR
#define D	DP_EFF_DELETE
#define X	DP_EFF_INVALID
static const unsigned char transitions[DP_ENV__MAX][DP_ENV__MAX] = {
	/* to:		 creat inst  run   stop  term  error */
	/* creating */	{ N,    X,    A,    X,    X,    E },
	/* installing */{ X,    N,    X,    S,    D,    E },
	/* running */	{ X,    X,    N,    S,    D,    E },
	/* stopped */	{ X,    X,    G,    N,    D,    X },
	/* terminated */{ X,    X,    X,    X,    N,    X },
	/* error */	{ X,    X,    G,    X,    D,    N },
};
#undef N
#undef A
#undef S
#undef G
#undef E
#undef D
#undef X

enum dp_env_effect
dp_env_transition(enum dp_env_status from, enum dp_env_status to)
{
	enum dp_env_effect	 e = DP_EFF_INVALID;

	if ((int)from >= 0 && from < DP_ENV__MAX && (int)to >= 0 &&
	    to < DP_ENV__MAX)
		e = (enum dp_env_effect)transitions[from][to];
	return e;
}

bool
dp_env_action_allowed(enum dp_env_action a, enum dp_env_status st)
{
	bool	 ok = false;

	switch (a) {
	case DP_ACT_START:
		ok = st == DP_ENV_STOPPED || st == DP_ENV_ERROR;
		break;
	case DP_ACT_STOP:
		ok = st == DP_ENV_RUNNING || st == DP_ENV_INSTALLING;
		break;
	case DP_ACT_RESTART:
		ok = st == DP_ENV_RUNNING || st == DP_ENV_STOPPED ||
		    st == DP_ENV_ERROR;
		break;
	default:
		break;
	}
	return ok;
}

/* ---- resources ---------------------------------------------------------- */

enum dp_vcode
dp_env_check_resource(enum dp_res_key k, const char *s, size_t len,
    int64_t max, int64_t *out)
{
	enum dp_vcode	 c = DP_V_PATTERN;
	int64_t		 v = 0;

	switch (k) {
	case DP_RES_CPU:
		c = dp_check_cpu(s, len, &v);
		break;
	case DP_RES_MEMORY:
	case DP_RES_STORAGE:
		c = dp_check_quantity(s, len, dp_res_min[k], &v);
		break;
	default:
		break;
	}
	if (c == DP_V_OK && v > max)
		c = DP_V_OUT_OF_RANGE;
	if (c == DP_V_OK)
		*out = v;
	return c;
}

int
dp_env_parse_resource(enum dp_res_key k, const char *s, int64_t *out)
{
	enum dp_vcode	 c = DP_V_PATTERN;
	size_t		 len;
	int64_t		 v = 0;
	char		 num[32];
	int		 rc = -1;

	if (s == NULL)
		goto out;
	len = strlen(s);
	if (k == DP_RES_CPU) {
		c = dp_check_cpu(s, len, &v);
		/* Below the request minimum, e.g. a configured "50m". */
		if (c == DP_V_OUT_OF_RANGE && len >= 2 && len < sizeof(num) &&
		    s[len - 1] == 'm') {
			memcpy(num, s, len - 1);
			num[len - 1] = '\0';
			if (num[0] >= '0' && num[0] <= '9' &&
			    dp_parse_int64(num, 1, INT64_MAX, &v) == 0)
				c = DP_V_OK;
		}
	} else if (k == DP_RES_MEMORY || k == DP_RES_STORAGE)
		c = dp_check_quantity(s, len, 1, &v);
	if (c != DP_V_OK || v <= 0)
		goto out;
	*out = v;
	rc = 0;
out:
	return rc;
}

int
dp_env_plan_resources(const struct dp_plan_limits *pl,
    struct dp_resources *def, struct dp_resources *max)
{
	int	 rc = -1;

	if (dp_env_parse_resource(DP_RES_CPU, pl->default_cpu,
	    &def->v[DP_RES_CPU]) < 0 ||
	    dp_env_parse_resource(DP_RES_MEMORY, pl->default_memory,
	    &def->v[DP_RES_MEMORY]) < 0 ||
	    dp_env_parse_resource(DP_RES_STORAGE, pl->default_storage,
	    &def->v[DP_RES_STORAGE]) < 0 ||
	    dp_env_parse_resource(DP_RES_CPU, pl->max_cpu,
	    &max->v[DP_RES_CPU]) < 0 ||
	    dp_env_parse_resource(DP_RES_MEMORY, pl->max_memory,
	    &max->v[DP_RES_MEMORY]) < 0 ||
	    dp_env_parse_resource(DP_RES_STORAGE, pl->max_storage,
	    &max->v[DP_RES_STORAGE]) < 0)
		goto out;
	rc = 0;
out:
	return rc;
}

void
dp_env_default_resources(const struct dp_resources *tmpl,
    const struct dp_resources *pdef, const struct dp_resources *pmax,
    struct dp_resources *out)
{
	int64_t	 v;
	int	 k;

	for (k = 0; k < DP_RES__MAX; k++) {
		v = pdef->v[k];
		if (tmpl != NULL && tmpl->v[k] > v)
			v = tmpl->v[k];
		if (v > pmax->v[k])
			v = pmax->v[k];
		out->v[k] = v;
	}
}

void
dp_env_format_resource(enum dp_res_key k, int64_t v, char *out, size_t n)
{
	if (k == DP_RES_CPU)
		dp_format_cpu(v, out, n);
	else
		dp_format_quantity(v, out, n);
}

/* ---- JSON ----------------------------------------------------------------- */

static int64_t
col_int(const PGresult *r, int row, int c)
{
	const char	*s = dp_db_val(r, row, c);
	int64_t		 v = 0;

	if (s == NULL || dp_parse_int64(s, INT64_MIN, INT64_MAX, &v) < 0)
		v = 0;
	return v;
}

void
dp_env_write(struct dp_buf *b, const PGresult *r, int row, int c)
{
	int	 k, i;

	dp_buf_grow(b, 1024);	/* what one usually takes */
	dp_buf_addc(b, '{');
	dp_jw_str(b, "id", dp_db_val(r, row, c + 0));
	dp_jw_str(b, "name", dp_db_val(r, row, c + 1));
	dp_jw_str(b, "description", dp_db_val(r, row, c + 2));
	dp_jw_str(b, "template", dp_db_val(r, row, c + 3));
	dp_jw_str(b, "template_id", dp_db_val(r, row, c + 4));
	dp_jw_str(b, "template_name", dp_db_val(r, row, c + 5));
	dp_jw_str(b, "status", dp_db_val(r, row, c + 6));
	dp_jw_str(b, "docker_image", dp_db_val(r, row, c + 7));
	dp_jw_int(b, "port", col_int(r, row, c + 8));
	dp_jw_int(b, "web_port", col_int(r, row, c + 8));
	dp_jw_str(b, "ssh_port", NULL);
	/* Exactly the three keys, strings (the statement takes them out:
	 * no jsonb to parse), twice. */
	for (i = 0; i < 2; i++) {
		dp_buf_add_jkey(b, i == 0 ? "resources" : "resource_limits");
		dp_buf_addc(b, '{');
		for (k = 0; k < DP_RES__MAX; k++)
			dp_jw_str(b, dp_res_keys[k],
			    dp_db_val(r, row, c + 9 + k));
		dp_buf_addc(b, '}');
	}
	dp_jw_pg_object(b, "environment_variables",
	    dp_db_val(r, row, c + 12));
	dp_jw_bool(b, "installation_completed",
	    strcmp(PQgetvalue(r, row, c + 13), "t") == 0);
	dp_jw_str(b, "external_url", dp_db_val(r, row, c + 14));
	dp_jw_str(b, "cluster_id", dp_db_val(r, row, c + 15));
	dp_jw_str(b, "region", dp_db_val(r, row, c + 16));
	dp_jw_ts(b, "created_at", dp_db_val(r, row, c + 17));
	dp_jw_ts(b, "updated_at", dp_db_val(r, row, c + 18));
	dp_jw_ts(b, "last_accessed", dp_db_val(r, row, c + 19));
	dp_jw_ts(b, "last_activity", dp_db_val(r, row, c + 20));
	dp_jw_pg_double(b, "cpu_usage", dp_db_val(r, row, c + 21));
	dp_jw_pg_double(b, "memory_usage", dp_db_val(r, row, c + 22));
	dp_jw_int(b, "storage_usage", col_int(r, row, c + 23));
	dp_buf_addc(b, '}');
}

struct json_object *
dp_env_json(const PGresult *r, int row, int c)
{
	struct dp_buf	 b = { 0 };

	dp_env_write(&b, r, row, c);
	return dp_json_raw(&b);
}

/* ---- logs ----------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (≤ len bytes), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	size_t	 n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return s[0] == 0 ? 0 : 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n > len)
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return n;
}

void
dp_env_clean_text(struct dp_buf *out, const char *s, size_t len)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, n;

	dp_buf_grow(out, len);
	while (i < len) {
		if ((n = utf8_seq(p + i, len - i)) == 0) {
			dp_buf_add(out, "\xef\xbf\xbd", 3);
			i++;
		} else {
			dp_buf_add(out, p + i, n);
			i += n;
		}
	}
}

size_t
dp_env_prefix_chars(const char *s, size_t len, size_t n)
{
	size_t	 i = 0, chars = 0;

	while (i < len && chars < n) {
		i++;
		while (i < len && ((unsigned char)s[i] & 0xc0) == 0x80)
			i++;
		chars++;
	}
	return i;
}

int
dp_env_log(struct dp_db *db, const char *id, const char *level,
    const char *source, const char *message)
{
	static const char sql[] =
	    "INSERT INTO environment_logs (environment_id, level, message, "
	    "source) VALUES ($1, $2, $3, $4)";
	struct dp_buf	 clean = { 0 };
	const char	*p;
	char		*piece = NULL;
	size_t		 left, n;
	int		 rc = -1;

	dp_env_clean_text(&clean, message, strlen(message));
	p = clean.s != NULL ? clean.s : "";
	left = clean.len;
	do {
		n = dp_env_prefix_chars(p, left, DP_ENV_LOG_CHARS);
		free(piece);
		piece = dp_xstrndup(p, n);
		if (dp_db_run(db, sql, 4, (const char *const[]){ id, level,
		    piece, source }) < 0)
			goto out;
		p += n;
		left -= n;
	} while (left > 0);
	rc = 0;
out:
	free(piece);
	dp_buf_release(&clean);
	return rc;
}

/* ---- jobs ----------------------------------------------------------------- */

int
dp_env_enqueue(struct dp_db *db, const char *kind, const char *id,
    int64_t generation)
{
	struct json_object	*o = json_object_new_object();
	int			 rc;

	dp_json_str(o, "id", id);
	dp_json_int(o, "generation", generation);
	rc = dp_job_enqueue(db, kind,
	    json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN), 0);
	json_object_put(o);
	return rc;
}

int
dp_envs_terminate_user(struct dp_db *db, const char *user_id)
{
	static const char sql[] =
	    "UPDATE environments SET status = 'terminated', "
	    "terminated_at = now(), generation = generation + 1, "
	    "running_since = NULL, updated_at = now() "
	    /* Locked in id order, as sql/012's rewrites lock them. */
	    "WHERE id IN (SELECT id FROM environments WHERE user_id = $1 "
	    "AND status <> 'terminated' ORDER BY id FOR NO KEY UPDATE) "
	    "RETURNING id, generation";
	PGresult	*r;
	const char	*id;
	int64_t		 gen;
	int		 i, n = -1;

	r = dp_db_exec(db, sql, 1, (const char *const[]){ user_id });
	if (!dp_db_ok(r))
		goto out;
	for (i = 0; i < PQntuples(r); i++) {
		id = PQgetvalue(r, i, 0);
		gen = col_int(r, i, 1);
		if (dp_env_log(db, id, "info", "system",
		    "Environment terminated") < 0 ||
		    dp_env_enqueue(db, "env.destroy", id, gen) < 0)
			goto out;
	}
	n = PQntuples(r);
out:
	PQclear(r);
	return n;
}

/* ---- driver context ------------------------------------------------------- */

/* Strings of a JSON array (non-strings skipped) into the arena. */
static const char *const *
str_array(struct dp_arena *a, const char *json, size_t *n)
{
	struct json_object	*o = json != NULL ? json_tokener_parse(json) :
				    NULL, *v;
	const char		**out = NULL;
	size_t			 i, len;

	*n = 0;
	if (o == NULL || !json_object_is_type(o, json_type_array))
		goto out;
	len = json_object_array_length(o);
	out = dp_arena_alloc(a, (len + 1) * sizeof(*out));
	for (i = 0; i < len; i++) {
		v = json_object_array_get_idx(o, i);
		if (json_object_is_type(v, json_type_string))
			out[(*n)++] = dp_arena_strdup(a,
			    json_object_get_string(v));
	}
	out[*n] = NULL;
out:
	json_object_put(o);
	return out;
}

/* "KEY=VALUE" of a JSON object of strings into the arena. */
static const char *const *
env_array(struct dp_arena *a, const char *json, size_t *n)
{
	struct json_object	*o = json != NULL ? json_tokener_parse(json) :
				    NULL;
	const char		**out = NULL;
	size_t			 len;

	*n = 0;
	if (o == NULL || !json_object_is_type(o, json_type_object))
		goto out;
	len = (size_t)json_object_object_length(o);
	out = dp_arena_alloc(a, (len + 1) * sizeof(*out));
	json_object_object_foreach(o, k, v) {
		if (json_object_is_type(v, json_type_string))
			out[(*n)++] = dp_arena_printf(a, "%s=%s", k,
			    json_object_get_string(v));
	}
	out[*n] = NULL;
out:
	json_object_put(o);
	return out;
}

static const char *
adup(struct dp_arena *a, const char *s)
{
	return s != NULL ? dp_arena_strdup(a, s) : NULL;
}

int
dp_env_ctx_load(struct dp_db *db, const char *id, struct dp_env_ctx *ctx,
    struct dp_err *err)
{
	static const char sql[] =
	    "SELECT e.id, e.user_id, e.name, e.docker_image, e.port, "
	    "e.resources->>'cpu', e.resources->>'memory', "
	    "e.resources->>'storage', e.status, e.generation, "
	    "e.install_log_offset, c.id, c.provider, c.endpoint, "
	    "c.kube_config_sealed, "
	    "CASE WHEN c.provider = 'local' AND "
	    "t.local_startup_commands IS NOT NULL AND "
	    "jsonb_typeof(t.local_startup_commands) = 'array' "
	    "THEN t.local_startup_commands ELSE t.startup_commands END, "
	    "t.environment_variables || e.environment_variables "
	    "FROM environments e JOIN templates t ON t.id = e.template_id "
	    "JOIN clusters c ON c.id = e.cluster_id WHERE e.id = $1";
	struct dp_env_spec	*sp = &ctx->spec;
	struct dp_arena		*a = &ctx->arena;
	struct dp_buf		 key = { 0 };
	PGresult		*r;
	const char		*sealed;
	int64_t			 v;
	int			 rc = -1;

	memset(ctx, 0, sizeof(*ctx));
	r = dp_db_exec(db, sql, 1, (const char *const[]){ id });
	if (!dp_db_ok(r)) {
		dp_err_set(err, 0, "database error loading the environment");
		goto out;
	}
	if (PQntuples(r) != 1) {
		rc = 0;
		goto out;
	}
	sp->id = adup(a, dp_db_val(r, 0, 0));
	sp->user_id = adup(a, dp_db_val(r, 0, 1));
	sp->name = adup(a, dp_db_val(r, 0, 2));
	sp->image = adup(a, dp_db_val(r, 0, 3));
	sp->port = (int)col_int(r, 0, 4);
	if (dp_env_parse_resource(DP_RES_CPU, dp_db_val(r, 0, 5), &v) == 0)
		sp->cpu_millicores = v;
	if (dp_env_parse_resource(DP_RES_MEMORY, dp_db_val(r, 0, 6), &v) == 0)
		sp->memory_bytes = v;
	if (dp_env_parse_resource(DP_RES_STORAGE, dp_db_val(r, 0, 7), &v) == 0)
		sp->storage_bytes = v;
	ctx->status = dp_env_status_from_name(dp_db_val(r, 0, 8));
	ctx->generation = col_int(r, 0, 9);
	ctx->install_log_offset = col_int(r, 0, 10);
	ctx->conn.id = adup(a, dp_db_val(r, 0, 11));
	ctx->conn.provider = adup(a, dp_db_val(r, 0, 12));
	ctx->conn.endpoint = adup(a, dp_db_val(r, 0, 13));
	sp->commands = str_array(a, dp_db_val(r, 0, 15), &sp->ncommands);
	sp->env = env_array(a, dp_db_val(r, 0, 16), &sp->nenv);
	ctx->drv = dp_driver_get(ctx->conn.provider);
	if ((sealed = dp_db_val(r, 0, 14)) != NULL) {
		if (dp_keyfile_read(dp_cfg.auth_secret_key_file, &key,
		    err) < 0)
			goto out;
		if (dp_open(key.s, key.len, sealed, &ctx->kubeconfig) < 0) {
			dp_err_set(err, 0, "cluster %s: the kubeconfig does "
			    "not open with the secret key", ctx->conn.id);
			goto out;
		}
		ctx->conn.kubeconfig = ctx->kubeconfig.s;
	}
	rc = 1;
out:
	dp_buf_wipe(&key);
	PQclear(r);
	return rc;
}

void
dp_env_ctx_release(struct dp_env_ctx *ctx)
{
	dp_buf_wipe(&ctx->kubeconfig);
	dp_arena_release(&ctx->arena);
	memset(ctx, 0, sizeof(*ctx));
}
