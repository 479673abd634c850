/* cgi-bin/clusters.c: /api/v1/clusters responder (CONTRACT §2.6) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clusters.h"
#include "config.h"
#include "crypto.h"
#include "http.h"
#include "kubeconfig.h"
#include "validate.h"

static const char *const providers[] = { "kubernetes", "local", NULL };
static const char *const statuses[] = { "active", "inactive", "maintenance",
    NULL };

/*
 * Cluster writes are rare admin actions: one transaction-scoped advisory
 * lock serialises them (and environment creations, which take it too),
 * so the name check, the single default and the in-use check of DELETE
 * cannot race each other.
 */
static const char lock_sql[] = DP_CLUSTERS_LOCK_SQL;

static int
begin_locked(struct dp_db *db)
{
	if (dp_db_begin(db) < 0)
		return -1;
	return dp_db_run(db, lock_sql, 0, NULL);
}

/*
 * The field tables below are applied by the handlers (dp_fields_check)
 * rather than by dp_serve, so that the rules that need more than the
 * table (name pattern, https endpoint, kube_config contents) land in the
 * same 422 list (§0.7: one entry per invalid field).
 */
#define check_fields(req, table)	dp_fields_check((req), (table))

/* name: 3–50 chars of [A-Za-z0-9_-] (the lengths are the table's). */
static void
check_name(struct dp_req *req, const struct dp_value *v)
{
	size_t	 i;

	if (!v->present)
		return;
	for (i = 0; i < v->len; i++)
		if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "0123456789_-", v->s[i]) == NULL) {
			dp_req_invalid(req, "name", DP_V_PATTERN,
			    "name may contain only letters, digits, _ and -");
			return;
		}
}

/* endpoint: an https:// url. */
/* The scheme an endpoint must have (a kubeconfig's server too). */
static bool
is_https(const char *s)
{
	return strncasecmp(s, "https://", 8) == 0;
}

static void
check_endpoint(struct dp_req *req, const struct dp_value *v)
{
	if (!v->present)
		return;
	if (dp_check_url(v->s, v->len) != DP_V_OK || !is_https(v->s))
		dp_req_invalid(req, "endpoint", DP_V_INVALID_URL,
		    "endpoint must be an https:// URL");
}

/*
 * kube_config: base64 of a kubeconfig whose current context resolves.
 * The YAML goes to yaml (the caller wipes it) and its connection to kc.
 */
static bool
read_kubeconfig(struct dp_req *req, const struct dp_value *v,
    struct dp_buf *yaml, struct dp_kubeconfig *kc)
{
	struct dp_err	 err = { 0 };

	if (dp_b64_decode(yaml, v->s, v->len, true) < 0) {
		dp_req_invalid(req, "kube_config", DP_V_INVALID_FORMAT,
		    "kube_config is not base64");
		return false;
	}
	if (dp_kubeconfig_parse(yaml->s, yaml->len, kc, &err) < 0) {
		dp_req_invalid(req, "kube_config", DP_V_INVALID_FORMAT,
		    err.msg);
		return false;
	}
	/* Its server may become the endpoint: https:// as that must be
	 * (the token and keystrokes travel to it). */
	if (!is_https(kc->server)) {
		dp_req_invalid(req, "kube_config", DP_V_INVALID_FORMAT,
		    "kubeconfig: server must be an https:// URL");
		return false;
	}
	/* Both would mean no check at all (kubectl refuses them too). */
	if (kc->insecure && kc->ca_data != NULL) {
		dp_req_invalid(req, "kube_config", DP_V_INVALID_FORMAT,
		    "kubeconfig: insecure-skip-tls-verify and "
		    "certificate-authority-data exclude each other");
		return false;
	}
	return true;
}

static int
name_taken(struct dp_req *req, const char *name, const char *self,
    bool *taken)
{
	static const char sql[] =
	    "SELECT 1 FROM clusters WHERE lower(name) = lower($1) "
	    "AND id IS DISTINCT FROM $2";
	PGresult	*r;
	int		 rc = -1;

	r = dp_db_exec(req->db, sql, 2, (const char *const[]){ name, self });
	if (dp_db_ok(r)) {
		*taken = PQntuples(r) > 0;
		rc = 0;
	}
	PQclear(r);
	return rc;
}

static int
conflict(struct dp_req *req, struct dp_res *res, const char *name)
{
	char	*d = dp_arena_printf(&req->arena,
	    "Cluster with name '%s' already exists", name);

	return dp_fail(res, 409, d);
}

static int
clear_default(struct dp_db *db, const char *except)
{
	static const char sql[] =
	    "UPDATE clusters SET is_default = false, updated_at = now() "
	    "WHERE is_default AND id IS DISTINCT FROM $1";

	return dp_db_run(db, sql, 1, &except);
}

/* Answer with the Cluster object of id after the commit. */
static int
answer(struct dp_req *req, struct dp_res *res, int status, const char *id)
{
	struct json_object	*o;

	if (dp_db_commit(req->db) < 0 ||
	    (o = dp_cluster_json_by_id(req->db, id)) == NULL)
		return dp_fail_db(req, res);
	return dp_ok(res, status, o);
}

/* GET /clusters: 200 [Cluster] by name, X-Total-Count; 422 limit/offset. */
static int
clusters_list(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "SELECT " DP_CLUSTER_COLS ", count(*) OVER () FROM clusters c "
	    "ORDER BY c.name COLLATE \"C\", c.id LIMIT $1 OFFSET $2";
	static const char count_sql[] = "SELECT count(*) FROM clusters";
	struct json_object	*a;
	PGresult		*r;
	int64_t			 limit, offset, total;
	char			 l[24], o[24];
	int			 i, n;

	if (!dp_query_page(req, &limit, &offset))
		return dp_fail_invalid(req, res);
	snprintf(l, sizeof(l), "%lld", (long long)limit);
	snprintf(o, sizeof(o), "%lld", (long long)offset);
	r = dp_db_exec(req->db, sql, 2, (const char *const[]){ l, o });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	n = PQntuples(r);
	if (n > 0)
		total = strtoll(PQgetvalue(r, 0, DP_CLUSTER_NCOLS), NULL, 10);
	else {
		/* Past the end: the window count has no row to ride on. */
		PQclear(r);
		r = dp_db_exec(req->db, count_sql, 0, NULL);
		if (!dp_db_ok(r) || PQntuples(r) != 1) {
			PQclear(r);
			return dp_fail_db(req, res);
		}
		total = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	}
	a = json_object_new_array();
	for (i = 0; i < n; i++)
		json_object_array_add(a, dp_cluster_json(r, i));
	PQclear(r);
	dp_res_total(res, total);
	return dp_ok(res, 200, a);
}

/* Indexes into both field tables; the eighth field differs. */
enum {
	F_NAME, F_REGION, F_DESCRIPTION, F_ENDPOINT, F_IS_DEFAULT,
	F_MAX_ENVIRONMENTS, F_KUBE_CONFIG,
	F_PROVIDER = 7,		/* create_fields */
	F_STATUS = 7		/* update_fields */
};

/*
 * Applied by check_fields.  endpoint and kube_config are plain strings
 * here: whether they are checked at all depends on the provider (both
 * are ignored for local), so the handlers check them.
 */
static const struct dp_field create_fields[] = {
	{ "name", DP_FT_TEXT, DP_F_REQUIRED, 3, 50, NULL },
	{ "region", DP_FT_REGION, DP_F_REQUIRED, 0, 0, NULL },
	{ "description", DP_FT_TEXT, DP_F_EMPTYNULL, 0, 200, NULL },
	{ "endpoint", DP_FT_RAW, DP_F_EMPTYNULL, 0, 4096, NULL },
	{ "is_default", DP_FT_BOOL, 0, 0, 0, NULL },
	{ "max_environments", DP_FT_INT, 0, 1, 1000, NULL },
	{ "kube_config", DP_FT_RAW, DP_F_EMPTYNULL, 0, 1048576, NULL },
	{ "provider", DP_FT_CHOICE, 0, 0, 0, providers },
	{ NULL, 0, 0, 0, 0, NULL }
};

/*
 * POST /clusters: 201 Cluster; 409 Cluster with name '<name>' already
 * exists; 422 (name pattern, endpoint not https, kube_config not base64
 * of a usable kubeconfig).  The kubeconfig is stored sealed; endpoint
 * defaults to its current context's server.  Both are dropped for local.
 */
static int
clusters_create(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "INSERT INTO clusters (id, name, description, region, provider, "
	    "endpoint, is_default, max_environments, kube_config_sealed) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";
	const struct dp_value	*in = check_fields(req, create_fields);
	const struct dp_value	*name = &in[F_NAME],
				*desc = &in[F_DESCRIPTION],
				*ep = &in[F_ENDPOINT],
				*def = &in[F_IS_DEFAULT],
				*maxe = &in[F_MAX_ENVIRONMENTS],
				*kcv = &in[F_KUBE_CONFIG],
				*prov = &in[F_PROVIDER];
	const char		*provider, *endpoint = NULL, *p[9];
	struct dp_kubeconfig	 kc = { 0 };
	struct dp_buf		 yaml = { 0 }, sealed = { 0 };
	struct dp_err		 err = { 0 };
	char			 id[25], maxbuf[24];
	bool			 local, taken;
	int			 rc;

	provider = prov->present ? prov->s : "kubernetes";
	local = strcmp(provider, "local") == 0;
	check_name(req, name);
	if (!local) {
		check_endpoint(req, ep);
		if (ep->present)
			endpoint = ep->s;
		if (kcv->present && read_kubeconfig(req, kcv, &yaml, &kc) &&
		    endpoint == NULL)
			endpoint = kc.server;
	}
	if (dp_req_has_errors(req)) {
		rc = dp_fail_invalid(req, res);
		goto out;
	}
	if (!local && kcv->present &&
	    dp_cluster_seal(yaml.s, yaml.len, &sealed, &err) < 0) {
		rc = dp_fail_internal(req, res, err.msg);
		goto out;
	}
	if (begin_locked(req->db) < 0 ||
	    name_taken(req, name->s, NULL, &taken) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	if (taken) {
		rc = conflict(req, res, name->s);
		goto out;
	}
	if (def->present && def->b && clear_default(req->db, NULL) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	dp_new_id(id);
	snprintf(maxbuf, sizeof(maxbuf), "%lld",
	    (long long)(maxe->present ? maxe->i : 100));
	p[0] = id;
	p[1] = name->s;
	p[2] = desc->present ? desc->s : NULL;
	p[3] = in[F_REGION].s;
	p[4] = provider;
	p[5] = endpoint;
	p[6] = def->present && def->b ? "true" : "false";
	p[7] = maxbuf;
	p[8] = sealed.len > 0 ? sealed.s : NULL;
	if (dp_db_run(req->db, sql, 9, p) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	rc = answer(req, res, 201, id);
 out:
	dp_kubeconfig_release(&kc);
	dp_buf_wipe(&yaml);
	dp_buf_release(&sealed);
	return rc;
}

/*
 * GET /clusters/regions: 200 {"regions":[…]}, the five regions in
 * contract order whatever the clusters are.
 */
static int
clusters_regions(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "SELECT region, count(*) FILTER (WHERE status = 'active'), "
	    "bool_or(is_default) FROM clusters GROUP BY region";
	struct json_object	*o, *a, *e;
	PGresult		*r;
	int64_t			 count;
	bool			 dflt;
	int			 i, n;
	size_t			 k;

	r = dp_db_exec(req->db, sql, 0, NULL);
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	n = PQntuples(r);
	a = json_object_new_array();
	for (k = 0; dp_regions[k] != NULL; k++) {
		count = 0;
		dflt = false;
		for (i = 0; i < n; i++)
			if (strcmp(PQgetvalue(r, i, 0), dp_regions[k]) == 0) {
				count = strtoll(PQgetvalue(r, i, 1), NULL, 10);
				dflt = strcmp(PQgetvalue(r, i, 2), "t") == 0;
			}
		e = json_object_new_object();
		dp_json_str(e, "region", dp_regions[k]);
		dp_json_str(e, "display_name", dp_region_display[k]);
		dp_json_int(e, "cluster_count", count);
		dp_json_bool(e, "available", count > 0);
		dp_json_bool(e, "has_default", dflt);
		json_object_array_add(a, e);
	}
	PQclear(r);
	o = json_object_new_object();
	json_object_object_add(o, "regions", a);
	return dp_ok(res, 200, o);
}

/* GET /clusters/{id}: 200 Cluster; 404 Cluster not found. */
static int
clusters_get(struct dp_req *req, struct dp_res *res)
{
	static const char sql[] =
	    "SELECT " DP_CLUSTER_COLS " FROM clusters c WHERE c.id = $1";
	const char		*id = req->params[0];
	struct json_object	*o;
	PGresult		*r;

	if (!dp_is_id(id))
		return dp_fail(res, 404, "Cluster not found");
	r = dp_db_exec(req->db, sql, 1, &id);
	if (!dp_db_ok(r)) {
		PQclear(r);
		return dp_fail_db(req, res);
	}
	if (PQntuples(r) != 1) {
		PQclear(r);
		return dp_fail(res, 404, "Cluster not found");
	}
	o = dp_cluster_json(r, 0);
	PQclear(r);
	return dp_ok(res, 200, o);
}

static const struct dp_field update_fields[] = {
	{ "name", DP_FT_TEXT, 0, 3, 50, NULL },
	{ "region", DP_FT_REGION, 0, 0, 0, NULL },
	{ "description", DP_FT_TEXT, DP_F_EMPTYNULL, 0, 200, NULL },
	{ "endpoint", DP_FT_RAW, DP_F_EMPTYNULL, 0, 4096, NULL },
	{ "is_default", DP_FT_BOOL, 0, 0, 0, NULL },
	{ "max_environments", DP_FT_INT, 0, 1, 1000, NULL },
	{ "kube_config", DP_FT_RAW, DP_F_EMPTYNULL, 0, 1048576, NULL },
	/* provider cannot change: it is not read. */
	{ "status", DP_FT_CHOICE, 0, 0, 0, statuses },
	{ NULL, 0, 0, 0, 0, NULL }
};

/*
 * PUT /clusters/{id}: 200 Cluster; 404 Cluster not found; 409 Cluster
 * with name '<name>' already exists; 422.  Absent fields keep their
 * values; "" clears description, endpoint and kube_config; a new
 * kube_config without endpoint also sets the endpoint to its server.
 * provider is ignored; for a local cluster endpoint and kube_config are.
 */
static int
clusters_update(struct dp_req *req, struct dp_res *res)
{
	static const char get_sql[] =
	    "SELECT provider FROM clusters WHERE id = $1 FOR UPDATE";
	static const char sql[] =
	    "UPDATE clusters SET name = coalesce($2, name), "
	    "region = coalesce($3, region), "
	    "description = CASE WHEN $4::bool THEN $5 ELSE description END, "
	    "endpoint = CASE WHEN $6::bool THEN $7 ELSE endpoint END, "
	    "is_default = coalesce($8::bool, is_default), "
	    "max_environments = coalesce($9::int, max_environments), "
	    "kube_config_sealed = CASE WHEN $10::bool THEN $11 "
	    "ELSE kube_config_sealed END, "
	    "status = coalesce($12, status), "
	    "updated_at = CASE WHEN $13::bool THEN now() ELSE updated_at END "
	    "WHERE id = $1";
	const char		*id = req->params[0];
	const struct dp_value	*in = check_fields(req, update_fields);
	const struct dp_value	*name = &in[F_NAME],
				*region = &in[F_REGION],
				*desc = &in[F_DESCRIPTION],
				*ep = &in[F_ENDPOINT],
				*def = &in[F_IS_DEFAULT],
				*maxe = &in[F_MAX_ENVIRONMENTS],
				*kcv = &in[F_KUBE_CONFIG],
				*st = &in[F_STATUS];
	const char		*p[13], *endpoint = NULL;
	struct dp_kubeconfig	 kc = { 0 };
	struct dp_buf		 yaml = { 0 }, sealed = { 0 };
	struct dp_err		 err = { 0 };
	PGresult		*r = NULL;
	char			 maxbuf[24];
	bool			 found = false, local = false, taken;
	bool			 ep_set = false, kc_set = false, changed;
	int			 rc;

	/*
	 * The provider decides which fields are checked, so the cluster is
	 * looked up first; but validation answers before the lookup
	 * (§0.9), so an unknown id is 404 only when the body is valid (its
	 * fields checked as a kubernetes cluster's: all of them).
	 */
	check_name(req, name);
	if (dp_is_id(id)) {
		if (begin_locked(req->db) < 0 ||
		    !dp_db_ok(r = dp_db_exec(req->db, get_sql, 1, &id))) {
			rc = dp_fail_db(req, res);
			goto out;
		}
		found = PQntuples(r) == 1;
		local = found && strcmp(PQgetvalue(r, 0, 0), "local") == 0;
	}
	if (!local) {
		check_endpoint(req, ep);
		if (ep->present || ep->cleared) {
			ep_set = true;
			endpoint = ep->present ? ep->s : NULL;
		}
		if (kcv->cleared)
			kc_set = true;
		else if (kcv->present && read_kubeconfig(req, kcv, &yaml,
		    &kc)) {
			kc_set = true;
			if (!ep_set) {
				ep_set = true;
				endpoint = kc.server;
			}
		}
	}
	if (dp_req_has_errors(req)) {
		rc = dp_fail_invalid(req, res);
		goto out;
	}
	if (!found) {
		rc = dp_fail(res, 404, "Cluster not found");
		goto out;
	}
	if (kc_set && yaml.len > 0 &&
	    dp_cluster_seal(yaml.s, yaml.len, &sealed, &err) < 0) {
		rc = dp_fail_internal(req, res, err.msg);
		goto out;
	}
	if (name->present) {
		if (name_taken(req, name->s, id, &taken) < 0) {
			rc = dp_fail_db(req, res);
			goto out;
		}
		if (taken) {
			rc = conflict(req, res, name->s);
			goto out;
		}
	}
	if (def->present && def->b && clear_default(req->db, id) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	changed = name->present || region->present || desc->present ||
	    desc->cleared || ep_set || def->present || maxe->present ||
	    kc_set || st->present;
	snprintf(maxbuf, sizeof(maxbuf), "%lld", (long long)maxe->i);
	p[0] = id;
	p[1] = name->present ? name->s : NULL;
	p[2] = region->present ? region->s : NULL;
	p[3] = desc->present || desc->cleared ? "true" : "false";
	p[4] = desc->present ? desc->s : NULL;
	p[5] = ep_set ? "true" : "false";
	p[6] = endpoint;
	p[7] = def->present ? (def->b ? "true" : "false") : NULL;
	p[8] = maxe->present ? maxbuf : NULL;
	p[9] = kc_set ? "true" : "false";
	p[10] = sealed.len > 0 ? sealed.s : NULL;
	p[11] = st->present ? st->s : NULL;
	p[12] = changed ? "true" : "false";
	if (dp_db_run(req->db, sql, 13, p) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	rc = answer(req, res, 200, id);
 out:
	PQclear(r);
	dp_kubeconfig_release(&kc);
	dp_buf_wipe(&yaml);
	dp_buf_release(&sealed);
	return rc;
}

/*
 * DELETE /clusters/{id}: 204; 404 Cluster not found; 409 Cluster is in
 * use by environments (any non-terminated environment on it, or a
 * terminated one whose destroy has not succeeded: queued, running or
 * failed, it needs the cluster to release the compute and storage).  The
 * terminated environments still kept for their retention period go with
 * the cluster: they reference it and cannot outlive it.
 */
static int
clusters_delete(struct dp_req *req, struct dp_res *res)
{
	static const char get_sql[] =
	    "SELECT EXISTS (SELECT 1 FROM environments e WHERE "
	    "e.cluster_id = c.id AND (e.status <> 'terminated' OR "
	    "coalesce((SELECT j.state FROM jobs j WHERE j.kind = "
	    "'env.destroy' AND j.payload->>'id' = e.id ORDER BY j.id DESC "
	    "LIMIT 1) IN ('queued', 'running', 'failed'), false))) "
	    "FROM clusters c WHERE c.id = $1 FOR UPDATE OF c";
	static const char envs_sql[] =
	    "DELETE FROM environments WHERE cluster_id = $1 "
	    "AND status = 'terminated'";
	static const char del_sql[] = "DELETE FROM clusters WHERE id = $1";
	const char	*id = req->params[0];
	PGresult	*r = NULL;
	int		 rc;

	if (!dp_is_id(id)) {
		rc = dp_fail(res, 404, "Cluster not found");
		goto out;
	}
	if (begin_locked(req->db) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	r = dp_db_exec(req->db, get_sql, 1, &id);
	if (!dp_db_ok(r)) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	if (PQntuples(r) != 1) {
		rc = dp_fail(res, 404, "Cluster not found");
		goto out;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		rc = dp_fail(res, 409, "Cluster is in use by environments");
		goto out;
	}
	if (dp_db_run(req->db, envs_sql, 1, &id) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	PQclear(r);
	r = dp_db_exec(req->db, del_sql, 1, &id);
	if (!dp_db_ok(r)) {
		/* Referenced after all (a row the check could not see). */
		rc = strcmp(dp_db_sqlstate(r), "23503") == 0 ?
		    dp_fail(res, 409, "Cluster is in use by environments") :
		    dp_fail_db(req, res);
		goto out;
	}
	if (dp_db_commit(req->db) < 0) {
		rc = dp_fail_db(req, res);
		goto out;
	}
	rc = dp_no_content(res);
 out:
	PQclear(r);
	return rc;
}

/*
 * GET /clusters/{id}/health: 200 ClusterHealth (also when unhealthy:
 * driver missing, probe failed or over DP_CLUSTER_PROBE_MS); 404
 * Cluster not found.
 */
static int
clusters_health(struct dp_req *req, struct dp_res *res)
{
	const char		*id = req->params[0];
	struct json_object	*o;
	bool			 found;

	if (!dp_is_id(id))
		return dp_fail(res, 404, "Cluster not found");
	o = dp_cluster_health(req->db, id, DP_CLUSTER_PROBE_MS, &found);
	if (o == NULL)
		return found ? dp_fail_db(req, res) :
		    dp_fail(res, 404, "Cluster not found");
	return dp_ok(res, 200, o);
}

#define C	"/api/v1/clusters"
static const struct dp_route routes[] = {
	{ DP_GET, C, clusters_list, NULL, DP_AUTH | DP_ADMIN },
	{ DP_POST, C, clusters_create, NULL, DP_AUTH | DP_ADMIN | DP_BODY },
	{ DP_GET, C "/regions", clusters_regions, NULL, DP_AUTH },
	{ DP_GET, C "/{id}", clusters_get, NULL, DP_AUTH | DP_ADMIN },
	{ DP_PUT, C "/{id}", clusters_update, NULL,
	    DP_AUTH | DP_ADMIN | DP_BODY },
	{ DP_DELETE, C "/{id}", clusters_delete, NULL, DP_AUTH | DP_ADMIN },
	{ DP_GET, C "/{id}/health", clusters_health, NULL,
	    DP_AUTH | DP_ADMIN },
};

int
main(int argc, char *argv[])
{
	return dp_serve(argc, argv, "clusters", routes, DP_NITEMS(routes));
}
