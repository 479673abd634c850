/* lib/clusters.c: cluster rows as JSON, their decrypted connections, probes */
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clusters.h"
#include "config.h"
#include "crypto.h"
#include "http.h"
#include "log.h"
#include "validate.h"

#define GIB	(1024.0 * 1024.0 * 1024.0)

/*
 * A number as JSON with at most 10 significant digits and always a
 * fraction or exponent: json-c's default "%.17g" prints 0.3 as
 * 0.29999999999999999, and some clients refuse "2" where they expect a
 * double.
 */
static struct json_object *
number(double d)
{
	char	 buf[40];
	int	 n;

	n = snprintf(buf, sizeof(buf), "%.10g", d);
	if (n < 0 || (size_t)n >= sizeof(buf) - 2)
		return json_object_new_double(d);
	if (strpbrk(buf, ".eEn") == NULL) {
		buf[n] = '.';
		buf[n + 1] = '0';
		buf[n + 2] = '\0';
	}
	return json_object_new_double_s(d, buf);
}

static struct json_object *
resources(double cpu, double mem, double storage)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "cpu", number(cpu));
	json_object_object_add(o, "memory", number(mem));
	json_object_object_add(o, "storage", number(storage));
	return o;
}

/* A string member of an environment's resources as a number. */
static bool
res_str(struct json_object *o, const char *key, const char **s, size_t *len)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return false;
	*s = json_object_get_string(v);
	*len = (size_t)json_object_get_string_len(v);
	return true;
}

/*
 * Sum the resources (strings as created: "500m", "2Gi") of the
 * environments in the JSON array text agg.  Values that do not parse
 * (none should: they were validated on the way in) count as zero.
 */
static int64_t
sum_used(const char *agg, int64_t *mc, int64_t *mem, int64_t *storage)
{
	struct json_object	*a = agg ? json_tokener_parse(agg) : NULL;
	struct json_object	*e;
	const char		*s;
	size_t			 i, n = 0, len;
	int64_t			 v;

	*mc = *mem = *storage = 0;
	if (a != NULL && json_object_is_type(a, json_type_array))
		n = json_object_array_length(a);
	for (i = 0; i < n; i++) {
		e = json_object_array_get_idx(a, i);
		if (!json_object_is_type(e, json_type_object))
			continue;
		if (res_str(e, "cpu", &s, &len) &&
		    dp_check_cpu(s, len, &v) == DP_V_OK && v <= INT64_MAX - *mc)
			*mc += v;
		if (res_str(e, "memory", &s, &len) &&
		    dp_check_quantity(s, len, 0, &v) == DP_V_OK &&
		    v <= INT64_MAX - *mem)
			*mem += v;
		if (res_str(e, "storage", &s, &len) &&
		    dp_check_quantity(s, len, 0, &v) == DP_V_OK &&
		    v <= INT64_MAX - *storage)
			*storage += v;
	}
	json_object_put(a);
	return (int64_t)n;
}

/* A number member of the capacity object, false when missing. */
static bool
cap_num(struct json_object *o, const char *key, double *d)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_double) ||
	    json_object_is_type(v, json_type_int)))
		return false;
	*d = json_object_get_double(v);
	return true;
}

static double
minus(double a, double b)
{
	return a > b ? a - b : 0.0;
}

struct json_object *
dp_cluster_json(const PGresult *r, int row)
{
	struct json_object	*o = json_object_new_object(), *cap = NULL;
	const char		*capt;
	double			 cpu, mem, sto, ccpu, cmem, csto;
	int64_t			 n, mc, mb, sb;

	dp_json_str(o, "id", dp_db_val(r, row, 0));
	dp_json_str(o, "name", dp_db_val(r, row, 1));
	dp_json_str(o, "description", dp_db_val(r, row, 2));
	dp_json_str(o, "region", dp_db_val(r, row, 3));
	dp_json_str(o, "provider", dp_db_val(r, row, 4));
	dp_json_str(o, "endpoint", dp_db_val(r, row, 5));
	dp_json_bool(o, "is_default", strcmp(PQgetvalue(r, row, 6), "t") == 0);
	dp_json_int(o, "max_environments", strtoll(PQgetvalue(r, row, 7),
	    NULL, 10));
	dp_json_str(o, "status", dp_db_val(r, row, 8));
	dp_json_bool(o, "active", strcmp(PQgetvalue(r, row, 8), "active") == 0);
	n = sum_used(dp_db_val(r, row, 15), &mc, &mb, &sb);
	dp_json_int(o, "environments_count", n);
	dp_json_int(o, "current_environments", n);
	dp_json_str(o, "health_status", dp_db_val(r, row, 9));
	dp_json_ts(o, "last_health_check", dp_db_val(r, row, 10));
	dp_json_bool(o, "has_kube_config",
	    strcmp(PQgetvalue(r, row, 12), "t") == 0);
	cpu = (double)mc / 1000.0;
	mem = (double)mb / GIB;
	sto = (double)sb / GIB;
	json_object_object_add(o, "used_resources", resources(cpu, mem, sto));
	if ((capt = dp_db_val(r, row, 11)) != NULL)
		cap = json_tokener_parse(capt);
	if (cap != NULL && cap_num(cap, "cpu", &ccpu) &&
	    cap_num(cap, "memory", &cmem) && cap_num(cap, "storage", &csto))
		json_object_object_add(o, "available_resources",
		    resources(minus(ccpu, cpu), minus(cmem, mem),
		    minus(csto, sto)));
	else
		json_object_object_add(o, "available_resources", NULL);
	json_object_put(cap);
	dp_json_ts(o, "created_at", dp_db_val(r, row, 13));
	dp_json_ts(o, "updated_at", dp_db_val(r, row, 14));
	return o;
}

struct json_object *
dp_cluster_json_by_id(struct dp_db *db, const char *id)
{
	static const char sql[] =
	    "SELECT " DP_CLUSTER_COLS " FROM clusters c WHERE c.id = $1";
	struct json_object	*o = NULL;
	PGresult		*r;

	if (id == NULL || !dp_is_id(id))
		return NULL;
	r = dp_db_exec(db, sql, 1, &id);
	if (dp_db_ok(r) && PQntuples(r) == 1)
		o = dp_cluster_json(r, 0);
	PQclear(r);
	return o;
}

/* The secret key; the caller wipes it with dp_buf_wipe. */
static int
secret_key(struct dp_buf *key, struct dp_err *err)
{
	const char	*path = dp_cfg.auth_secret_key_file;

	if (path == NULL || *path == '\0') {
		dp_err_set(err, EACCES, "[auth] secret_key_file is not set");
		return -1;
	}
	if (dp_keyfile_read(path, key, err) < 0) {
		err->code = EACCES;
		return -1;
	}
	return 0;
}

int
dp_cluster_seal(const char *plain, size_t len, struct dp_buf *sealed,
    struct dp_err *err)
{
	struct dp_buf	 key = { 0 };
	struct dp_err	 dummy;
	int		 rc = -1;

	if (err == NULL)
		err = &dummy;
	if (secret_key(&key, err) < 0)
		goto out;
	dp_seal(key.s, key.len, plain, len, sealed);
	rc = 0;
 out:
	dp_buf_wipe(&key);
	return rc;
}

int
dp_cluster_conn_load(struct dp_db *db, const char *cluster_id,
    struct dp_cluster_conn *out, char **kubeconfig_plain, struct dp_err *err)
{
	static const char sql[] =
	    "SELECT id, provider, endpoint, kube_config_sealed FROM clusters "
	    "WHERE id = $1";
	struct dp_buf	 key = { 0 }, plain = { 0 };
	PGresult	*r = NULL;
	const char	*sealed, *ep;
	struct dp_err	 dummy;
	int		 rc = -1;

	if (err == NULL)
		err = &dummy;
	memset(out, 0, sizeof(*out));
	*kubeconfig_plain = NULL;
	if (cluster_id == NULL || !dp_is_id(cluster_id)) {
		dp_err_set(err, ENOENT, "no such cluster");
		goto out;
	}
	r = dp_db_exec(db, sql, 1, &cluster_id);
	if (!dp_db_ok(r)) {
		dp_err_set(err, EIO, "database failure");
		goto out;
	}
	if (PQntuples(r) != 1) {
		dp_err_set(err, ENOENT, "no such cluster");
		goto out;
	}
	if ((sealed = dp_db_val(r, 0, 3)) != NULL) {
		if (secret_key(&key, err) < 0)
			goto out;
		if (dp_open(key.s, key.len, sealed, &plain) < 0) {
			dp_err_set(err, EACCES, "cluster %s: the stored "
			    "kubeconfig does not open with the secret key",
			    cluster_id);
			goto out;
		}
		*kubeconfig_plain = dp_xstrndup(plain.s, plain.len);
	}
	out->id = dp_xstrdup(dp_db_val(r, 0, 0));
	out->provider = dp_xstrdup(dp_db_val(r, 0, 1));
	ep = dp_db_val(r, 0, 2);
	out->endpoint = ep ? dp_xstrdup(ep) : NULL;
	out->kubeconfig = *kubeconfig_plain;
	rc = 0;
 out:
	PQclear(r);
	dp_buf_wipe(&key);
	dp_buf_wipe(&plain);
	return rc;
}

void
dp_cluster_conn_release(struct dp_cluster_conn *cc, char *kubeconfig_plain)
{
	if (kubeconfig_plain != NULL) {
		explicit_bzero(kubeconfig_plain, strlen(kubeconfig_plain));
		free(kubeconfig_plain);
	}
	if (cc == NULL)
		return;
	free((char *)cc->id);
	free((char *)cc->provider);
	free((char *)cc->endpoint);
	memset(cc, 0, sizeof(*cc));
}

/* What the probe child sends back through the pipe. */
struct probe_msg {
	int		 rc;
	struct dp_probe	 pr;
	struct dp_err	 err;
};

static int
read_full(int fd, void *buf, size_t len, int64_t deadline)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	size_t		 got = 0;
	ssize_t		 n;
	int64_t		 left;

	while (got < len) {
		if ((left = deadline - dp_mono_ms()) <= 0)
			return -1;
		if (poll(&pfd, 1, (int)(left > 1000 ? 1000 : left)) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/*
 * Run drv->probe in a child process and wait at most timeout_ms for its
 * answer.  A driver's own timeouts should make this bound unnecessary;
 * it is here so that one stuck probe (DNS, a half-open TCP connection, a
 * wedged tmux) cannot hold a responder worker for longer.  The child
 * leads its own process group so that whatever it started dies with it.
 */
static int
probe_bounded(const struct dp_driver *drv, const struct dp_cluster_conn *cc,
    int timeout_ms, struct dp_probe *pr, struct dp_err *err)
{
	struct probe_msg	 m;
	int			 fds[2] = { -1, -1 }, rc = -1, st;
	pid_t			 pid = -1;
	ssize_t			 n;
	size_t			 off;

	if (pipe2(fds, O_CLOEXEC) < 0) {
		dp_err_set(err, errno, "pipe: %s", strerror(errno));
		goto out;
	}
	if ((pid = fork()) < 0) {
		dp_err_set(err, errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		setpgid(0, 0);
		signal(SIGTERM, SIG_DFL);
		signal(SIGINT, SIG_DFL);
		close(fds[0]);
		memset(&m, 0, sizeof(m));
		m.rc = drv->probe(cc, &m.pr, &m.err);
		m.err.msg[sizeof(m.err.msg) - 1] = '\0';
		for (off = 0; off < sizeof(m); off += (size_t)n) {
			n = write(fds[1], (char *)&m + off, sizeof(m) - off);
			if (n < 0 && errno == EINTR)
				n = 0;
			else if (n <= 0)
				_exit(1);
		}
		_exit(0);
	}
	setpgid(pid, pid);	/* whichever of the two runs first */
	close(fds[1]);
	fds[1] = -1;
	if (read_full(fds[0], &m, sizeof(m), dp_mono_ms() + timeout_ms) < 0) {
		kill(-pid, SIGKILL);
		kill(pid, SIGKILL);
		dp_err_set(err, ETIMEDOUT, "Health check timed out after %d s",
		    (timeout_ms + 999) / 1000);
		goto out;
	}
	*pr = m.pr;
	if (m.rc != 0) {
		*err = m.err;
		if (err->msg[0] == '\0')
			dp_err_set(err, EIO, "Probe failed");
		goto out;
	}
	rc = 0;
 out:
	if (fds[0] >= 0)
		close(fds[0]);
	if (fds[1] >= 0)
		close(fds[1]);
	if (pid > 0) {
		/* A child that answered exits at once; reap it. */
		kill(-pid, SIGKILL);
		while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
			;
	}
	return rc;
}

/* The capacity object stored on success: numbers, or null when unknown. */
static char *
capacity_text(const struct dp_probe *pr)
{
	struct json_object	*o;
	char			*s;

	if (pr->cpu_cores < 0 || pr->memory_gib < 0 || pr->storage_gib < 0)
		return NULL;
	o = resources(pr->cpu_cores, pr->memory_gib, pr->storage_gib);
	s = dp_xstrdup(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return s;
}

struct json_object *
dp_cluster_health(struct dp_db *db, const char *id, int timeout_ms,
    bool *found)
{
	static const char ok_sql[] =
	    "UPDATE clusters SET health_status = 'healthy', "
	    "last_health_check = now(), node_count = $2::int, "
	    "capacity = coalesce($3::jsonb, capacity) WHERE id = $1 "
	    "RETURNING last_health_check";
	static const char bad_sql[] =
	    "UPDATE clusters SET health_status = 'unhealthy', "
	    "last_health_check = now() WHERE id = $1 "
	    "RETURNING last_health_check";
	struct dp_cluster_conn	 cc;
	const struct dp_driver	*drv;
	struct dp_probe		 pr = { 0, -1, -1, -1, -1 };
	struct dp_err		 err = { 0 };
	struct json_object	*o = NULL;
	PGresult		*r = NULL;
	const char		*p[3];
	char			*kc = NULL, *cap = NULL, nodes[24];
	bool			 loaded = false, healthy = false;
	int64_t			 t0, ms;

	*found = false;
	if (dp_cluster_conn_load(db, id, &cc, &kc, &err) < 0) {
		if (err.code == ENOENT)
			goto out;
		*found = true;
		if (err.code == EIO)
			goto out;
		/* The key is unreadable or the ciphertext is damaged: the
		 * cluster cannot be reached, which is what unhealthy means. */
		dp_error("cluster %s: %s", id, err.msg);
		dp_err_set(&err, EACCES, "The stored kubeconfig cannot be "
		    "decrypted");
	} else {
		*found = true;
		loaded = true;
	}
	t0 = dp_mono_ms();
	if (loaded) {
		drv = dp_driver_get(cc.provider);
		if (drv == NULL || drv->probe == NULL)
			dp_err_set(&err, ENOSYS, "No %s driver is available "
			    "in this build", cc.provider);
		else if (probe_bounded(drv, &cc, timeout_ms, &pr, &err) == 0)
			healthy = true;
	}
	ms = pr.response_time_ms > 0 ? pr.response_time_ms :
	    dp_mono_ms() - t0;
	if (healthy) {
		snprintf(nodes, sizeof(nodes), "%lld",
		    (long long)(pr.node_count >= 0 ? pr.node_count : 0));
		cap = capacity_text(&pr);
		p[0] = id;
		p[1] = pr.node_count >= 0 ? nodes : NULL;
		p[2] = cap;
		r = dp_db_exec(db, ok_sql, 3, p);
	} else
		r = dp_db_exec(db, bad_sql, 1, &id);
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	o = json_object_new_object();
	dp_json_str(o, "cluster_id", id);
	dp_json_str(o, "status", healthy ? "healthy" : "unhealthy");
	dp_json_str(o, "message", healthy ? "Cluster is healthy" : err.msg);
	dp_json_ts(o, "last_check", dp_db_val(r, 0, 0));
	dp_json_ts(o, "last_checked", dp_db_val(r, 0, 0));
	dp_json_int(o, "response_time_ms", ms);
	dp_json_str(o, "error_message", healthy ? NULL : err.msg);
	if (healthy && pr.node_count >= 0)
		dp_json_int(o, "node_count", pr.node_count);
	else
		json_object_object_add(o, "node_count", NULL);
 out:
	PQclear(r);
	free(cap);
	if (loaded)
		dp_cluster_conn_release(&cc, kc);
	return o;
}

int
dp_clusters_ensure_local(struct dp_db *db, const char *region)
{
	static const char sql[] =
	    "INSERT INTO clusters (id, name, description, region, provider, "
	    "is_default) SELECT $1, 'local', 'Environments on this host', $2, "
	    "'local', NOT EXISTS (SELECT 1 FROM clusters WHERE is_default) "
	    "WHERE NOT EXISTS (SELECT 1 FROM clusters "
	    "WHERE lower(name) = 'local') ON CONFLICT DO NOTHING";
	PGresult	*r;
	char		 id[25];
	const char	*p[2];
	int		 rc = -1;

	if (region == NULL)
		region = "us-east";
	if (dp_check_region(region, strlen(region)) != DP_V_OK) {
		dp_error("ensure-local: unknown region %.32s", region);
		return -1;
	}
	dp_new_id(id);
	p[0] = id;
	p[1] = region;
	r = dp_db_exec(db, sql, 2, p);
	if (dp_db_ok(r))
		rc = strcmp(PQcmdTuples(r), "1") == 0 ? 1 : 0;
	PQclear(r);
	return rc;
}
