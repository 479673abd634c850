/* cgi-bin/health.c: /health*, /api/v1/health, /api/v1/info, /metrics and the 404 fallback */
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "db.h"
#include "http.h"
#include "metrics.h"

/* GET /health, /api/v1/health: 200 always (the process answers). */
static int
health(struct dp_req *req, struct dp_res *res)
{
	struct json_object	*o = json_object_new_object();

	(void)req;
	dp_json_str(o, "status", "healthy");
	dp_json_str(o, "service", "DevPocket API");
	dp_json_str(o, "version", DP_VERSION);
	dp_json_str(o, "environment", dp_cfg.web_environment);
	dp_json_double(o, "timestamp", dp_now());
	return dp_ok(res, 200, o);
}

/* GET /health/ready: 200 ready; 503 not_ready (no detail) without the database. */
static int
health_ready(struct dp_req *req, struct dp_res *res)
{
	struct json_object	*o = json_object_new_object();
	struct json_object	*c = json_object_new_object();
	bool			 up = req->db != NULL && dp_db_ping(req->db);

	dp_json_str(o, "status", up ? "ready" : "not_ready");
	dp_json_str(c, "database", up ? "healthy" : "unhealthy");
	json_object_object_add(o, "checks", c);
	return dp_ok(res, up ? 200 : 503, o);
}

/* GET /health/live: 200. */
static int
health_live(struct dp_req *req, struct dp_res *res)
{
	struct json_object	*o = json_object_new_object();

	(void)req;
	dp_json_str(o, "status", "alive");
	return dp_ok(res, 200, o);
}

/* GET /api/v1/info: 200 features and plan limits. */
static int
info(struct dp_req *req, struct dp_res *res)
{
	static const char *const on[] = { "authentication", "websockets",
	    "rate_limiting", "metrics", "ssh", "ai", "apps" };
	struct json_object	*o = json_object_new_object();
	struct json_object	*f = json_object_new_object();
	struct json_object	*l = json_object_new_object();
	size_t			 i;

	(void)req;
	dp_json_str(o, "name", "DevPocket API");
	dp_json_str(o, "version", DP_VERSION);
	dp_json_str(o, "environment", dp_cfg.web_environment);
	for (i = 0; i < DP_NITEMS(on); i++)
		dp_json_bool(f, on[i], true);
	dp_json_bool(f, "google_oauth", dp_cfg.google_client_ids != NULL &&
	    *dp_cfg.google_client_ids != '\0');
	json_object_object_add(o, "features", f);
	dp_json_int(l, "free_environments",
	    dp_cfg.plans[DP_PLAN_FREE].max_environments);
	dp_json_int(l, "starter_environments",
	    dp_cfg.plans[DP_PLAN_STARTER].max_environments);
	dp_json_int(l, "pro_environments",
	    dp_cfg.plans[DP_PLAN_PRO].max_environments);
	json_object_object_add(o, "limits", l);
	return dp_ok(res, 200, o);
}

/* Gauges by a text column: every known value is printed, 0 when absent. */
static void
gauge(struct dp_req *req, struct dp_buf *out, const char *name,
    const char *help, const char *label, const char *sql,
    const char *const *known)
{
	PGresult	*r = NULL;
	size_t		 i;
	int		 k;
	const char	*v;

	dp_buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	if (req->db != NULL && sql != NULL)
		r = dp_db_exec(req->db, sql, 0, NULL);
	for (i = 0; known[i] != NULL; i++) {
		v = "0";
		for (k = 0; r != NULL && dp_db_ok(r) && k < PQntuples(r); k++)
			if (strcmp(PQgetvalue(r, k, 0), known[i]) == 0)
				v = PQgetvalue(r, k, 1);
		dp_buf_printf(out, "%s{%s=\"%s\"} %s\n", name, label, known[i], v);
	}
	PQclear(r);
}

/* GET /metrics: 200 Prometheus text summed over every process. */
static int
metrics(struct dp_req *req, struct dp_res *res)
{
	static const char *const states[] = { "queued", "running", "done",
	    "failed", NULL };
	static const char *const statuses[] = { "creating", "installing",
	    "running", "stopped", "terminated", "error", NULL };
	static const char *const kinds[] = { "terminal", "logs", "ssh", NULL };
	static const char envs[] =
	    "SELECT status, count(*) FROM environments GROUP BY status";
	PGresult	*r;
	bool		 have_envs = false, have_ws = false;

	res->body.len = 0;
	dp_metrics_render_http(&res->body);
	dp_buf_printf(&res->body, "# HELP devpocket_db_errors_total Database "
	    "failures seen by server processes.\n# TYPE devpocket_db_errors_total "
	    "counter\ndevpocket_db_errors_total %llu\n",
	    dp_metrics_db_errors());
	if (req->db != NULL) {
		r = dp_db_exec(req->db, "SELECT to_regclass('environments') IS "
		    "NOT NULL, to_regclass('ws_connections') IS NOT NULL", 0,
		    NULL);
		if (dp_db_ok(r)) {
			have_envs = PQgetvalue(r, 0, 0)[0] == 't';
			have_ws = PQgetvalue(r, 0, 1)[0] == 't';
		}
		PQclear(r);
	}
	gauge(req, &res->body, "devpocket_jobs", "Jobs by state.", "state",
	    "SELECT state, count(*) FROM jobs GROUP BY state", states);
	gauge(req, &res->body, "devpocket_environments", "Environments by "
	    "status.", "status", have_envs ? envs : NULL, statuses);
	gauge(req, &res->body, "devpocket_websocket_connections", "Open "
	    "WebSocket connections by kind.", "kind", have_ws ?
	    "SELECT kind, count(*) FROM ws_connections GROUP BY kind" : NULL,
	    kinds);
	res->content_type = "text/plain; version=0.0.4; charset=utf-8";
	res->status = 200;
	return 200;
}

static const struct dp_route routes[] = {
	{ DP_GET, "/health", health, NULL, DP_NOLIMIT },
	{ DP_GET, "/health/ready", health_ready, NULL, DP_NOLIMIT },
	{ DP_GET, "/health/live", health_live, NULL, DP_NOLIMIT },
	{ DP_GET, "/metrics", metrics, NULL, DP_NOLIMIT },
	{ DP_GET, "/api/v1/health", health, NULL, DP_NOLIMIT },
	{ DP_GET, "/api/v1/info", info, NULL, DP_NOLIMIT },
};

int
main(int argc, char *argv[])
{
	return dp_serve(argc, argv, "health", routes, DP_NITEMS(routes));
}
