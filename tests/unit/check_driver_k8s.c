/* tests/unit/check_driver_k8s.c: the kubernetes driver and lib/k8s.c
 * against tests/fake-kube/fake_kube.py (HTTPS, schema-validating) */
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>

#include "crypto.h"
#include "driver.h"
#include "k8s.h"
#include "util.h"
#include "ws.h"

#define TOKEN	"s3cret-token-for-tests"

static pid_t	 fake_pid = -1;
static int	 fake_port;
static char	 tmpdir[] = "/tmp/check_k8s.XXXXXX";
static char	*kc_token;	/* token + CA */

/* ---- files and the fake */

static char *
slurp(const char *path)
{
	struct dp_buf	 b = { 0 };
	char		 chunk[4096];
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY)) == -1)
		return NULL;
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		dp_buf_add(&b, chunk, (size_t)n);
	close(fd);
	if (b.s == NULL)
		dp_buf_adds(&b, "");
	return dp_buf_detach(&b);
}

static void
write_file(const char *path, const char *s)
{
	FILE	*f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	fputs(s, f);
	fclose(f);
}

/* tests/fake-kube/fake_kube.py from the cwd or from the program's path. */
static const char *
fake_script(void)
{
	static char	 buf[PATH_MAX];
	const char	*rel = "tests/fake-kube/fake_kube.py";
	ssize_t		 n;
	char		*slash;
	int		 i;

	if (getenv("DP_FAKE_KUBE") != NULL)
		return getenv("DP_FAKE_KUBE");
	if (access(rel, R_OK) == 0)
		return rel;
	n = readlink("/proc/self/exe", buf, sizeof(buf) - 64);
	if (n <= 0)
		return rel;
	buf[n] = '\0';
	for (i = 0; i < 3; i++) {
		if ((slash = strrchr(buf, '/')) == NULL)
			return rel;
		*slash = '\0';
	}
	memcpy(buf + strlen(buf), "/", 2);
	memcpy(buf + strlen(buf), rel, strlen(rel) + 1);
	return buf;
}

static int
start_fake(void)
{
	char	 line[128], *p;
	int	 pfd[2];
	size_t	 len = 0;
	ssize_t	 n;

	if (pipe(pfd) == -1)
		return -1;
	fake_pid = fork();
	if (fake_pid == -1)
		return -1;
	if (fake_pid == 0) {
		char *const argv[] = { "python3", (char *)fake_script(),
		    "--port", "0", "--token", TOKEN, "--certs-dir", tmpdir,
		    "--require-field-manager", "--start-delay", "0.4", NULL };

		/* The fake goes when this program does, even on a crash. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pfd[1], 1);
		close(pfd[0]);
		close(pfd[1]);
		execvp("python3", argv);
		_exit(127);
	}
	close(pfd[1]);
	/* "READY <port>\n", read byte by byte so nothing else is eaten. */
	while (len < sizeof(line) - 1 && (n = read(pfd[0], line + len, 1)) == 1)
		if (line[len++] == '\n')
			break;
	close(pfd[0]);
	line[len] = '\0';
	if (strncmp(line, "READY ", 6) != 0)
		return -1;
	fake_port = (int)strtol(line + 6, &p, 10);
	return fake_port > 0 ? 0 : -1;
}

static void
stop_fake(void)
{
	if (fake_pid > 0) {
		kill(fake_pid, SIGTERM);
		waitpid(fake_pid, NULL, 0);
	}
}

/*
 * A kubeconfig for the fake.  token NULL: none; ca: embed the fake's CA;
 * cert: the fake's client certificate and key; insecure: skip checks.
 */
static char *
kubeconfig(const char *token, bool ca, bool cert, bool insecure)
{
	struct dp_buf	 b = { 0 };
	char		 path[PATH_MAX];
	char		*pem;

	dp_buf_printf(&b, "apiVersion: v1\nkind: Config\nclusters:\n"
	    "- name: fake\n  cluster:\n    server: https://127.0.0.1:%d\n",
	    fake_port);
	if (ca) {
		snprintf(path, sizeof(path), "%s/ca.crt", tmpdir);
		/* No ck_assert: main calls this outside a test. */
		if ((pem = slurp(path)) == NULL)
			abort();
		dp_buf_adds(&b, "    certificate-authority-data: ");
		dp_b64_encode(&b, pem, strlen(pem));
		dp_buf_adds(&b, "\n");
		free(pem);
	}
	if (insecure)
		dp_buf_adds(&b, "    insecure-skip-tls-verify: true\n");
	dp_buf_adds(&b, "users:\n- name: u\n  user:\n");
	if (token != NULL)
		dp_buf_printf(&b, "    token: %s\n", token);
	if (cert) {
		snprintf(path, sizeof(path), "%s/client.crt", tmpdir);
		if ((pem = slurp(path)) == NULL)
			abort();
		dp_buf_adds(&b, "    client-certificate-data: ");
		dp_b64_encode(&b, pem, strlen(pem));
		free(pem);
		snprintf(path, sizeof(path), "%s/client.key", tmpdir);
		if ((pem = slurp(path)) == NULL)
			abort();
		dp_buf_adds(&b, "\n    client-key-data: ");
		dp_b64_encode(&b, pem, strlen(pem));
		dp_buf_adds(&b, "\n");
		free(pem);
	}
	if (token == NULL && !cert)
		dp_buf_adds(&b, "    {}\n");
	dp_buf_adds(&b, "contexts:\n- name: c\n  context:\n    cluster: fake\n"
	    "    user: u\ncurrent-context: c\n");
	return dp_buf_detach(&b);
}

static struct dp_cluster_conn
conn_of(const char *kc)
{
	struct dp_cluster_conn	 cc = { "c0ffee", "kubernetes", NULL, kc };

	return cc;
}

static struct dp_k8s *
client(void)
{
	struct dp_err	 err = { 0 };
	struct dp_k8s	*k;

	k = dp_k8s_new(kc_token, strlen(kc_token), NULL, &err);
	ck_assert_msg(k != NULL, "%s", err.msg);
	return k;
}

/* GET path from the fake; the HTTP status, *out the JSON (may be NULL). */
static long
kget(const char *path, json_object **out)
{
	struct dp_k8s		*k = client();
	struct dp_k8s_resp	 r;
	struct dp_err		 err = { 0 };
	long			 st;

	ck_assert_msg(dp_k8s_request(k, "GET", path, NULL, NULL, 0, &r,
	    &err) == 0, "%s", err.msg);
	st = r.status;
	if (out != NULL) {
		*out = r.json;
		r.json = NULL;
	}
	dp_k8s_resp_release(&r);
	dp_k8s_free(k);
	return st;
}

static void
kpost(const char *path)
{
	struct dp_k8s		*k = client();
	struct dp_k8s_resp	 r;
	struct dp_err		 err = { 0 };

	ck_assert_msg(dp_k8s_request(k, "POST", path, NULL, "{}", 2, &r,
	    &err) == 0, "%s", err.msg);
	ck_assert_int_eq(r.status, 200);
	dp_k8s_resp_release(&r);
	dp_k8s_free(k);
}

static json_object *
requests(void)
{
	json_object	*o = NULL;

	ck_assert_int_eq(kget("/_requests", &o), 200);
	ck_assert(json_object_is_type(o, json_type_array));
	return o;
}

static json_object *
jg(json_object *o, const char *dotted)
{
	char	 key[128], *dot, *p;

	snprintf(key, sizeof(key), "%s", dotted);
	for (p = key; o != NULL && p != NULL; p = dot) {
		if ((dot = strchr(p, '|')) != NULL)
			*dot++ = '\0';
		if (json_object_is_type(o, json_type_array))
			o = json_object_array_get_idx(o, (size_t)atol(p));
		else if (!json_object_is_type(o, json_type_object) ||
		    !json_object_object_get_ex(o, p, &o))
			return NULL;
	}
	return o;
}

/* The string at a |-separated path of keys and indexes, or NULL. */
static const char *
js(json_object *o, const char *dotted)
{
	o = jg(o, dotted);
	return o == NULL ? NULL : json_object_get_string(o);
}

/* Every request the driver made since the reset was accepted. */
static void
assert_all_accepted(json_object *reqs)
{
	size_t	 i;
	int	 st;
	json_object *r, *q;

	for (i = 0; i < json_object_array_length(reqs); i++) {
		r = json_object_array_get_idx(reqs, i);
		st = json_object_get_int(jg(r, "status"));
		ck_assert_msg(st != 400 && st != 415 && st != 422 && st != 401,
		    "%s %s answered %d", js(r, "method"), js(r, "path"), st);
		if (strcmp(js(r, "method"), "GET") != 0 &&
		    strcmp(js(r, "method"), "DELETE") != 0) {
			q = jg(r, "query|fieldManager|0");
			ck_assert_msg(q != NULL && strcmp(json_object_get_string(q),
			    "devpocket") == 0, "%s %s without fieldManager",
			    js(r, "method"), js(r, "path"));
		}
	}
}

/* The body of the first request with method and path, or NULL. */
static json_object *
body_of(json_object *reqs, const char *method, const char *path, int *count)
{
	json_object	*r, *found = NULL;
	size_t		 i;
	int		 n = 0;

	for (i = 0; i < json_object_array_length(reqs); i++) {
		r = json_object_array_get_idx(reqs, i);
		if (strcmp(js(r, "method"), method) == 0 &&
		    strcmp(js(r, "path"), path) == 0) {
			if (found == NULL)
				found = jg(r, "body");
			n++;
		}
	}
	if (count != NULL)
		*count = n;
	return found;
}

/* rm -rf dir, through an argv array. */
static int
rm_rf(const char *dir)
{
	pid_t	 pid;
	int	 st;

	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		execlp("rm", "rm", "-rf", "--", dir, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &st, 0) == -1)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- environments */

static const char *const cmds[] = {
	"echo hello from $GREETING",
	"false",
	"pwd",
	"echo run >> \"$HOME/runs\"; wc -l < \"$HOME/runs\" | tr -d ' ' | "
	    "sed 's/^/runs=/'",
	"printf 'it'\\''s\\nmulti\\n'",
};
static const char *const envs[] = { "GREETING=world", "EMPTY=",
    "GREETING=k8s" };

static struct dp_env_spec
spec_of(const char *uid, const char *eid)
{
	struct dp_env_spec	 s;

	memset(&s, 0, sizeof(s));
	s.id = eid;
	s.user_id = uid;
	s.name = "test";
	s.image = "debian:12-slim";
	s.port = 8080;
	s.cpu_millicores = 500;
	s.memory_bytes = (int64_t)1 << 30;
	s.storage_bytes = (int64_t)5 << 30;
	s.commands = cmds;
	s.ncommands = DP_NITEMS(cmds);
	s.env = envs;
	s.nenv = DP_NITEMS(envs);
	return s;
}

static enum dp_phase
phase_of(const struct dp_cluster_conn *cc, const struct dp_env_spec *s)
{
	struct dp_err	 err = { 0 };
	enum dp_phase	 ph = DP_PHASE__MAX;

	ck_assert_msg(dp_driver_kubernetes.status(cc, s, &ph, &err) == 0,
	    "%s", err.msg);
	return ph;
}

/* Poll until the phase is want (10 s); returns the phases seen first. */
static unsigned
wait_phase(const struct dp_cluster_conn *cc, const struct dp_env_spec *s,
    enum dp_phase want)
{
	enum dp_phase	 ph;
	unsigned	 seen = 0;
	int		 i;

	for (i = 0; i < 200; i++) {
		ph = phase_of(cc, s);
		if (ph == want)
			return seen;
		seen |= 1u << ph;
		usleep(50 * 1000);
	}
	ck_abort_msg("phase %s never reached (seen mask %x)",
	    dp_phase_names[want], seen);
	return seen;
}

/* The install log until its done marker (10 s), from offset 0. */
static char *
wait_log(const struct dp_cluster_conn *cc, const struct dp_env_spec *s,
    const char *until)
{
	struct dp_buf	 b = { 0 };
	struct dp_err	 err = { 0 };
	int64_t		 off = 0, next;
	int		 i;

	for (i = 0; i < 200; i++) {
		ck_assert_msg(dp_driver_kubernetes.install_log(cc, s, off, &b,
		    &next, &err) == 0, "%s", err.msg);
		ck_assert_int_ge(next, off);
		ck_assert_int_eq((int64_t)b.len, next);
		/* Whole lines only. */
		ck_assert(b.len == 0 || b.s[b.len - 1] == '\n');
		off = next;
		if (b.s != NULL && strstr(b.s, until) != NULL)
			return dp_buf_detach(&b);
		usleep(50 * 1000);
	}
	ck_abort_msg("log never showed %s: %s", until, b.s ? b.s : "");
	return NULL;
}

static void
path_ns(char *buf, size_t n, const char *uid, const char *rest)
{
	snprintf(buf, n, "%s/namespaces/devpocket-u-%s/%s",
	    dp_startswith(rest, "statefulsets") ? "/apis/apps/v1" :
	    dp_startswith(rest, "networkpolicies") ?
	    "/apis/networking.k8s.io/v1" : "/api/v1", uid, rest);
}

/*
 * Run argv (URL-encoded already) in the pod by exec over WebSocket with
 * v5.channel.k8s.io, no tty; stdout into out, the status JSON into st.
 */
static void
exec_in(const char *pod_path, const char *query, struct dp_buf *out,
    struct dp_buf *st)
{
	struct dp_k8s	*k = client();
	struct dp_ws	*ws;
	struct dp_ws_msg m;
	struct dp_err	 err = { 0 };
	struct dp_buf	 path = { 0 };
	const char	*url, *auth, *hdrs[2] = { NULL, NULL };
	char		 proto[64] = "";
	void		*c;
	int		 status, i, r;

	dp_buf_printf(&path, "%s/exec?container=env&stdout=true&stderr=true&%s",
	    pod_path, query);
	c = dp_k8s_ws_handle(k, path.s, &url, &auth, &err);
	ck_assert_msg(c != NULL, "%s", err.msg);
	ck_assert(dp_startswith(url, "wss://127.0.0.1:"));
	hdrs[0] = auth;
	ws = dp_ws_connect_curl(c, url, hdrs, "v5.channel.k8s.io, "
	    "v4.channel.k8s.io", proto, sizeof(proto), 5000, &status, NULL,
	    &err);
	ck_assert_msg(ws != NULL, "exec: %d %s", status, err.msg);
	ck_assert_str_eq(proto, "v5.channel.k8s.io");
	for (i = 0; i < 200; i++) {
		r = dp_ws_recv(ws, 5000, &m, &err);
		if (r <= 0 || m.opcode == DP_WS_CLOSE)
			break;
		if (m.opcode != DP_WS_BINARY || m.len == 0)
			continue;
		if (m.data[0] == 1)
			dp_buf_add(out, m.data + 1, m.len - 1);
		else if (m.data[0] == 3)
			dp_buf_add(st, m.data + 1, m.len - 1);
	}
	dp_ws_free(ws);
	dp_buf_release(&path);
	dp_k8s_free(k);
	if (st->s == NULL)
		dp_buf_adds(st, "");
	if (out->s == NULL)
		dp_buf_adds(out, "");
}

/* ---- tests */

START_TEST(test_driver_k8s_provision_objects)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0001";
	const char		*eid = "bbbbbbbbbbbbbbbbbbbb0001";
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 s = spec_of(uid, eid);
	struct dp_err		 err = { 0 };
	json_object		*reqs, *b, *c0, *e;
	char			 p[256];
	int			 n;

	kpost("/_reset");
	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &s, &err) == 0,
	    "%s", err.msg);
	reqs = requests();
	assert_all_accepted(reqs);

	b = body_of(reqs, "POST", "/api/v1/namespaces", &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(js(b, "metadata|name"),
	    "devpocket-u-aaaaaaaaaaaaaaaaaaaa0001");
	ck_assert_str_eq(js(b, "metadata|labels|pod-security.kubernetes.io/"
	    "enforce"), "baseline");
	ck_assert_str_eq(js(b, "metadata|labels|app.kubernetes.io/managed-by"),
	    "devpocket");

	path_ns(p, sizeof(p), uid, "resourcequotas");
	b = body_of(reqs, "POST", p, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(js(b, "metadata|name"), "devpocket-quota");
	ck_assert_str_eq(js(b, "spec|hard|limits.cpu"), "500m");
	ck_assert_str_eq(js(b, "spec|hard|limits.memory"), "1Gi");
	ck_assert_str_eq(js(b, "spec|hard|requests.storage"), "5Gi");
	ck_assert_str_eq(js(b, "spec|hard|pods"), "1");
	ck_assert_str_eq(js(b, "spec|hard|services.loadbalancers"), "0");

	path_ns(p, sizeof(p), uid, "networkpolicies");
	b = body_of(reqs, "POST", p, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(js(b, "spec|ingress|0|from|0|namespaceSelector|"
	    "matchLabels|kubernetes.io/metadata.name"), "devpocket");
	ck_assert_str_eq(js(jg(b, "spec|egress|1|to|0|ipBlock"), "cidr"),
	    "0.0.0.0/0");
	e = jg(b, "spec|egress|1|to|0|ipBlock|except");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(e,
	    0)), "10.0.0.0/8");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(e,
	    1)), "172.16.0.0/12");
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(e,
	    2)), "192.168.0.0/16");
	ck_assert_int_eq(json_object_get_int(jg(b, "spec|egress|0|ports|0|"
	    "port")), 53);

	path_ns(p, sizeof(p), uid, "persistentvolumeclaims");
	b = body_of(reqs, "POST", p, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(js(b, "metadata|name"),
	    "env-bbbbbbbbbbbbbbbbbbbb0001-home");
	ck_assert_str_eq(js(b, "spec|resources|requests|storage"), "5Gi");
	ck_assert_str_eq(js(b, "metadata|labels|devpocket.io/environment"),
	    eid);

	path_ns(p, sizeof(p), uid, "configmaps");
	b = body_of(reqs, "POST", p, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(js(b, "metadata|name"),
	    "env-bbbbbbbbbbbbbbbbbbbb0001-init");
	ck_assert_ptr_nonnull(strstr(js(b, "data|init.sh"),
	    "##devpocket:begin 5"));
	ck_assert_ptr_nonnull(strstr(js(b, "data|tmux.conf"),
	    "history-limit 50000"));
	ck_assert_ptr_nonnull(strstr(js(b, "data|tmux.conf"), "mouse on"));

	path_ns(p, sizeof(p), uid, "services");
	b = body_of(reqs, "POST", p, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(js(b, "metadata|name"), "env-bbbbbbbbbbbbbbbbbbbb0001");
	ck_assert_str_eq(js(b, "spec|clusterIP"), "None");

	path_ns(p, sizeof(p), uid, "statefulsets");
	b = body_of(reqs, "POST", p, &n);
	ck_assert_int_eq(n, 1);
	ck_assert_str_eq(js(b, "metadata|name"), "env-bbbbbbbbbbbbbbbbbbbb0001");
	ck_assert_int_eq(json_object_get_int(jg(b, "spec|replicas")), 1);
	ck_assert_str_eq(js(b, "spec|serviceName"),
	    "env-bbbbbbbbbbbbbbbbbbbb0001");
	c0 = jg(b, "spec|template|spec|containers|0");
	ck_assert_str_eq(js(c0, "image"), "debian:12-slim");
	ck_assert_str_eq(js(c0, "resources|limits|cpu"), "500m");
	ck_assert_str_eq(js(c0, "resources|limits|memory"), "1Gi");
	ck_assert_str_eq(js(c0, "resources|requests|cpu"), "500m");
	ck_assert_str_eq(json_object_get_string(jg(c0, "command|0")),
	    "/bin/sh");
	ck_assert_str_eq(json_object_get_string(jg(c0, "command|1")),
	    "/etc/devpocket/init.sh");
	ck_assert_str_eq(js(jg(c0, "volumeMounts|0"), "mountPath"), "/root");
	ck_assert_str_eq(js(jg(c0, "volumeMounts|1"), "mountPath"),
	    "/etc/devpocket");
	/* Our id, then GREETING once (the last value) and EMPTY. */
	e = jg(c0, "env");
	ck_assert_int_eq(json_object_array_length(e), 3);
	ck_assert_str_eq(js(jg(e, "1"), "name"), "EMPTY");
	ck_assert_str_eq(js(jg(e, "2"), "name"), "GREETING");
	ck_assert_str_eq(js(jg(e, "2"), "value"), "k8s");
	ck_assert_int_eq(json_object_get_int(jg(c0, "ports|0|containerPort")),
	    8080);
	ck_assert_str_eq(js(b, "spec|selector|matchLabels|devpocket.io/"
	    "environment"), eid);
	ck_assert_str_eq(js(b, "metadata|annotations|devpocket.io/"
	    "cpu-millicores"), "500");
	json_object_put(reqs);

	/* What the fake holds now. */
	path_ns(p, sizeof(p), uid, "statefulsets/env-bbbbbbbbbbbbbbbbbbbb0001");
	ck_assert_int_eq(kget(p, NULL), 200);
	path_ns(p, sizeof(p), uid,
	    "persistentvolumeclaims/env-bbbbbbbbbbbbbbbbbbbb0001-home");
	ck_assert_int_eq(kget(p, NULL), 200);
}
END_TEST

START_TEST(test_driver_k8s_idempotent)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0002";
	const char		*eid = "bbbbbbbbbbbbbbbbbbbb0002";
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 s = spec_of(uid, eid);
	struct dp_err		 err = { 0 };
	json_object		*reqs, *list, *r;
	char			 p[256];
	size_t			 i;
	int			 conflicts = 0;

	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &s, &err) == 0,
	    "%s", err.msg);
	kpost("/_reset");
	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &s, &err) == 0,
	    "%s", err.msg);
	reqs = requests();
	assert_all_accepted(reqs);
	for (i = 0; i < json_object_array_length(reqs); i++) {
		r = json_object_array_get_idx(reqs, i);
		if (strcmp(js(r, "method"), "POST") == 0) {
			ck_assert_int_eq(json_object_get_int(jg(r, "status")),
			    409);
			conflicts++;
		}
	}
	/* namespace, netpol, pvc, configmap, service, statefulset */
	ck_assert_int_eq(conflicts, 6);
	json_object_put(reqs);

	path_ns(p, sizeof(p), uid, "statefulsets");
	ck_assert_int_eq(kget(p, &list), 200);
	ck_assert_int_eq(json_object_array_length(jg(list, "items")), 1);
	json_object_put(list);
	path_ns(p, sizeof(p), uid, "persistentvolumeclaims");
	ck_assert_int_eq(kget(p, &list), 200);
	ck_assert_int_eq(json_object_array_length(jg(list, "items")), 1);
	json_object_put(list);
	path_ns(p, sizeof(p), uid, "resourcequotas");
	ck_assert_int_eq(kget(p, &list), 200);
	ck_assert_int_eq(json_object_array_length(jg(list, "items")), 1);
	json_object_put(list);
}
END_TEST

START_TEST(test_driver_k8s_retry_after_500)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0003";
	const char		*eid = "bbbbbbbbbbbbbbbbbbbb0003";
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 s = spec_of(uid, eid);
	struct dp_err		 err = { 0 };
	json_object		*list;
	char			 p[256], q[512];

	path_ns(p, sizeof(p), uid, "statefulsets");
	snprintf(q, sizeof(q), "/_fail?method=POST&times=1&path_prefix=%s", p);
	kpost(q);
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	ck_assert_int_eq(err.code, 500);
	ck_assert_ptr_nonnull(strstr(err.msg, "statefulsets"));
	ck_assert_int_eq(kget(p, &list), 200);
	ck_assert_int_eq(json_object_array_length(jg(list, "items")), 0);
	json_object_put(list);

	memset(&err, 0, sizeof(err));
	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &s, &err) == 0,
	    "%s", err.msg);
	ck_assert_int_eq(kget(p, &list), 200);
	ck_assert_int_eq(json_object_array_length(jg(list, "items")), 1);
	json_object_put(list);
	path_ns(p, sizeof(p), uid, "configmaps");
	ck_assert_int_eq(kget(p, &list), 200);
	ck_assert_int_eq(json_object_array_length(jg(list, "items")), 1);
	json_object_put(list);
	path_ns(p, sizeof(p), uid, "services");
	ck_assert_int_eq(kget(p, &list), 200);
	ck_assert_int_eq(json_object_array_length(jg(list, "items")), 1);
	json_object_put(list);
}
END_TEST

START_TEST(test_driver_k8s_lifecycle)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0004";
	const char		*eid = "bbbbbbbbbbbbbbbbbbbb0004";
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 s = spec_of(uid, eid);
	struct dp_err		 err = { 0 };
	struct dp_sample	 m;
	struct dp_buf		 b = { 0 };
	int64_t			 next;
	unsigned		 seen;
	char			*log, p[256];
	int			 i;

	ck_assert_int_eq(phase_of(&cc, &s), DP_PHASE_ABSENT);
	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &s, &err) == 0,
	    "%s", err.msg);
	/* Pending for 0.4 s, then Running. */
	seen = wait_phase(&cc, &s, DP_PHASE_RUNNING);
	ck_assert_msg(seen & (1u << DP_PHASE_STARTING), "no STARTING seen");

	/* The fake ran init.sh from the ConfigMap: real markers. */
	log = wait_log(&cc, &s, "##devpocket:done ");
	ck_assert_msg(strncmp(log, "##devpocket:begin 5\n"
	    "##devpocket:step 1/5 echo hello from $GREETING\n"
	    "hello from k8s\n"
	    "##devpocket:step 2/5 false\n"
	    "##devpocket:warn 1 false\n"
	    "##devpocket:step 3/5 pwd\n", strlen("##devpocket:begin 5\n"
	    "##devpocket:step 1/5 echo hello from $GREETING\n"
	    "hello from k8s\n"
	    "##devpocket:step 2/5 false\n"
	    "##devpocket:warn 1 false\n"
	    "##devpocket:step 3/5 pwd\n")) == 0, "log: %s", log);
	ck_assert_ptr_nonnull(strstr(log, "/workspace\n##devpocket:step 4/5"));
	ck_assert_ptr_nonnull(strstr(log, "\nruns=1\n"));
	ck_assert_ptr_nonnull(strstr(log, "\nit's\nmulti\n##devpocket:done 1\n"));

	/* From an offset: the rest, whole lines. */
	ck_assert_int_eq(dp_driver_kubernetes.install_log(&cc, &s, 20, &b,
	    &next, &err), 0);
	ck_assert_str_eq(b.s, log + 20);
	ck_assert_int_eq(next, (int64_t)strlen(log));
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_driver_kubernetes.install_log(&cc, &s, next, &b,
	    &next, &err), 0);
	ck_assert_int_eq(b.len, 0);
	ck_assert_int_eq(dp_driver_kubernetes.install_log(&cc, &s, -1, &b,
	    &next, &err), -1);
	dp_buf_release(&b);

	/* Exec over WebSocket: the init script's tmux session is there. */
	{
		struct dp_buf out = { 0 }, st = { 0 };

		path_ns(p, sizeof(p), uid, "pods/env-bbbbbbbbbbbbbbbbbbbb0004-0");
		exec_in(p, "command=tmux&command=has-session&command=-t&"
		    "command=%3Ddevpocket_bbbbbbbbbbbbbbbbbbbb0004", &out, &st);
		ck_assert_msg(strstr(st.s, "\"Success\"") != NULL, "%s", st.s);
		dp_buf_reset(&out);
		dp_buf_reset(&st);
		exec_in(p, "command=sh&command=-c&command=echo%20hi%20%24"
		    "GREETING%3B%20exit%203", &out, &st);
		ck_assert_str_eq(out.s, "hi k8s\n");
		ck_assert_msg(strstr(st.s, "NonZeroExitCode") != NULL &&
		    strstr(st.s, "\"3\"") != NULL, "%s", st.s);
		dp_buf_release(&out);
		dp_buf_release(&st);
	}

	/* 12m of 500m, 34Mi of 1Gi. */
	ck_assert_msg(dp_driver_kubernetes.metrics(&cc, &s, &m, &err) == 0,
	    "%s", err.msg);
	ck_assert_double_eq_tol(m.cpu_usage, 2.4, 1e-9);
	ck_assert_double_eq_tol(m.memory_usage, 34.0 / 1024.0 * 100.0, 1e-9);
	ck_assert_int_eq(m.storage_usage, 0);
	ck_assert_int_eq(m.network_rx, 0);

	/* Stop: compute goes, the claim stays. */
	kpost("/_reset");
	ck_assert_msg(dp_driver_kubernetes.stop(&cc, &s, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(phase_of(&cc, &s), DP_PHASE_STOPPED);
	path_ns(p, sizeof(p), uid, "pods/env-bbbbbbbbbbbbbbbbbbbb0004-0");
	for (i = 0; i < 100 && kget(p, NULL) != 404; i++)
		usleep(50 * 1000);
	ck_assert_int_eq(kget(p, NULL), 404);
	ck_assert_int_eq(phase_of(&cc, &s), DP_PHASE_STOPPED);
	ck_assert_int_eq(dp_driver_kubernetes.metrics(&cc, &s, &m, &err), -1);
	ck_assert_int_eq(err.code, 404);
	path_ns(p, sizeof(p), uid,
	    "persistentvolumeclaims/env-bbbbbbbbbbbbbbbbbbbb0004-home");
	ck_assert_int_eq(kget(p, NULL), 200);
	{
		json_object *reqs = requests(), *body;
		int n;

		path_ns(p, sizeof(p), uid,
		    "statefulsets/env-bbbbbbbbbbbbbbbbbbbb0004/scale");
		body = body_of(reqs, "PATCH", p, &n);
		ck_assert_int_eq(n, 1);
		ck_assert_int_eq(json_object_get_int(jg(body, "spec|replicas")),
		    0);
		assert_all_accepted(reqs);
		json_object_put(reqs);
	}
	/* Stopping twice is fine. */
	ck_assert_int_eq(dp_driver_kubernetes.stop(&cc, &s, &err), 0);

	/* Start: a new pod, the home directory kept (runs=2). */
	ck_assert_msg(dp_driver_kubernetes.start(&cc, &s, &err) == 0, "%s",
	    err.msg);
	wait_phase(&cc, &s, DP_PHASE_RUNNING);
	free(log);
	log = wait_log(&cc, &s, "##devpocket:done ");
	ck_assert_ptr_nonnull(strstr(log, "\nruns=2\n"));
	free(log);

	/* Destroy: everything of the environment goes; twice is fine. */
	ck_assert_msg(dp_driver_kubernetes.destroy(&cc, &s, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(phase_of(&cc, &s), DP_PHASE_ABSENT);
	path_ns(p, sizeof(p), uid, "statefulsets/env-bbbbbbbbbbbbbbbbbbbb0004");
	ck_assert_int_eq(kget(p, NULL), 404);
	path_ns(p, sizeof(p), uid, "services/env-bbbbbbbbbbbbbbbbbbbb0004");
	ck_assert_int_eq(kget(p, NULL), 404);
	path_ns(p, sizeof(p), uid, "configmaps/env-bbbbbbbbbbbbbbbbbbbb0004-init");
	ck_assert_int_eq(kget(p, NULL), 404);
	path_ns(p, sizeof(p), uid,
	    "persistentvolumeclaims/env-bbbbbbbbbbbbbbbbbbbb0004-home");
	ck_assert_int_eq(kget(p, NULL), 404);
	path_ns(p, sizeof(p), uid, "pods/env-bbbbbbbbbbbbbbbbbbbb0004-0");
	for (i = 0; i < 100 && kget(p, NULL) != 404; i++)
		usleep(50 * 1000);
	ck_assert_int_eq(kget(p, NULL), 404);
	ck_assert_int_eq(dp_driver_kubernetes.destroy(&cc, &s, &err), 0);
	/* The user's namespace stays. */
	ck_assert_int_eq(kget("/api/v1/namespaces/devpocket-u-"
	    "aaaaaaaaaaaaaaaaaaaa0004", NULL), 200);
}
END_TEST

START_TEST(test_driver_k8s_quota_grows)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0005";
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 a = spec_of(uid, "bbbbbbbbbbbbbbbbbbbb0051");
	struct dp_env_spec	 b = spec_of(uid, "bbbbbbbbbbbbbbbbbbbb0052");
	struct dp_err		 err = { 0 };
	json_object		*q;
	char			 p[256];

	a.ncommands = b.ncommands = 0;
	b.cpu_millicores = 1500;
	b.memory_bytes = (int64_t)3 << 29;	/* 1.5 GiB */
	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &a, &err) == 0,
	    "%s", err.msg);
	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &b, &err) == 0,
	    "%s", err.msg);
	path_ns(p, sizeof(p), uid, "resourcequotas/devpocket-quota");
	ck_assert_int_eq(kget(p, &q), 200);
	ck_assert_str_eq(js(q, "spec|hard|limits.cpu"), "2000m");
	ck_assert_str_eq(js(q, "spec|hard|requests.memory"), "2560Mi");
	ck_assert_str_eq(js(q, "spec|hard|requests.storage"), "10Gi");
	ck_assert_str_eq(js(q, "spec|hard|pods"), "2");
	json_object_put(q);
	/* Destroy keeps the ceiling; provisioning again changes nothing. */
	ck_assert_int_eq(dp_driver_kubernetes.destroy(&cc, &b, &err), 0);
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &a, &err), 0);
	ck_assert_int_eq(kget(p, &q), 200);
	ck_assert_str_eq(js(q, "spec|hard|limits.cpu"), "2000m");
	json_object_put(q);
}
END_TEST

START_TEST(test_driver_k8s_big_log)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0006";
	const char		*eid = "bbbbbbbbbbbbbbbbbbbb0006";
	static const char *const big[] = {
		/* 3000 lines of 1000 x: 3 MB, more than one 1 MiB chunk. */
		"head -c 3000000 /dev/zero | tr '\\000' x | fold -w 1000; echo",
		/* One line of 1.5 MiB: cut at the chunk size. */
		"head -c 1572864 /dev/zero | tr '\\000' y; echo",
	};
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 s = spec_of(uid, eid);
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };
	int64_t			 off = 0, next;
	size_t			 xlines = 0, ybytes = 0, i;
	int			 calls = 0, j;

	s.commands = big;
	s.ncommands = DP_NITEMS(big);
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), 0);
	wait_phase(&cc, &s, DP_PHASE_RUNNING);
	for (j = 0; j < 400; j++) {
		dp_buf_reset(&b);
		ck_assert_msg(dp_driver_kubernetes.install_log(&cc, &s, off, &b,
		    &next, &err) == 0, "%s", err.msg);
		ck_assert_int_le(b.len, 1024 * 1024);
		ck_assert_int_eq(next, off + (int64_t)b.len);
		if (b.len > 0)
			calls++;
		for (i = 0; i + 1000 < b.len; i++)
			if (b.s[i] == 'x' && (i == 0 || b.s[i - 1] == '\n') &&
			    b.s[i + 1000] == '\n')
				xlines++;
		/* y only in lines of y (the step marker names one too). */
		for (i = 0; i < b.len; i++)
			if (b.s[i] == 'y' && (i == 0 || b.s[i - 1] == '\n' ||
			    b.s[i - 1] == 'y'))
				ybytes++;
		off = next;
		if (b.s != NULL && strstr(b.s, "##devpocket:done 0\n") != NULL)
			break;
		if (b.len == 0)
			usleep(50 * 1000);
	}
	ck_assert_int_eq(xlines, 3000);
	ck_assert_int_eq(ybytes, 1572864);
	ck_assert_int_ge(calls, 4);
	dp_buf_release(&b);
	ck_assert_int_eq(dp_driver_kubernetes.destroy(&cc, &s, &err), 0);
}
END_TEST

START_TEST(test_driver_k8s_probe)
{
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_probe		 p;
	struct dp_err		 err = { 0 };

	ck_assert_msg(dp_driver_kubernetes.probe(&cc, &p, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(p.node_count, 2);
	/* "4" + "3500m"; "16Gi" + "8388608Ki"; "100Gi" + 53687091200. */
	ck_assert_double_eq_tol(p.cpu_cores, 7.5, 1e-9);
	ck_assert_double_eq_tol(p.memory_gib, 24.0, 1e-9);
	ck_assert_double_eq_tol(p.storage_gib, 150.0, 1e-9);
	ck_assert_int_ge(p.response_time_ms, 0);
	ck_assert_int_lt(p.response_time_ms, 10000);
}
END_TEST

START_TEST(test_driver_k8s_wrong_token)
{
	char			*kc = kubeconfig("not-the-token", true, false,
				    false);
	struct dp_cluster_conn	 cc = conn_of(kc);
	struct dp_env_spec	 s = spec_of("aaaaaaaaaaaaaaaaaaaa0007",
				    "bbbbbbbbbbbbbbbbbbbb0007");
	struct dp_probe		 p;
	struct dp_err		 err = { 0 };
	enum dp_phase		 ph;

	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	ck_assert_int_eq(err.code, 401);
	ck_assert_ptr_nonnull(strstr(err.msg, "Unauthorized"));
	ck_assert_ptr_null(strstr(err.msg, "not-the-token"));
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	ck_assert_int_eq(err.code, 401);
	ck_assert_int_eq(dp_driver_kubernetes.status(&cc, &s, &ph, &err), -1);
	ck_assert_int_eq(err.code, 401);
	free(kc);
	/* Nothing at all: no token, no certificate. */
	kc = kubeconfig(NULL, true, false, false);
	cc = conn_of(kc);
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	ck_assert_int_eq(err.code, 401);
	free(kc);
}
END_TEST

START_TEST(test_driver_k8s_tls)
{
	struct dp_cluster_conn	 cc;
	struct dp_probe		 p;
	struct dp_err		 err = { 0 };
	char			*kc;

	/* A client certificate from memory instead of a token. */
	kc = kubeconfig(NULL, true, true, false);
	cc = conn_of(kc);
	ck_assert_msg(dp_driver_kubernetes.probe(&cc, &p, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(p.node_count, 2);
	free(kc);
	/* The fake's CA is not in the system store. */
	kc = kubeconfig(TOKEN, false, false, false);
	cc = conn_of(kc);
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	ck_assert_int_eq(err.code, DP_K8S_ETRANSPORT);
	free(kc);
	/* ... unless verification is off. */
	kc = kubeconfig(TOKEN, false, false, true);
	cc = conn_of(kc);
	ck_assert_msg(dp_driver_kubernetes.probe(&cc, &p, &err) == 0, "%s",
	    err.msg);
	free(kc);
	/* The endpoint replaces the kubeconfig's server. */
	kc = kubeconfig(TOKEN, true, false, false);
	cc = conn_of(kc);
	cc.endpoint = "https://127.0.0.1:1";
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	ck_assert_int_eq(err.code, DP_K8S_ETRANSPORT);
	cc.endpoint = "ftp://127.0.0.1/";
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	free(kc);
	/* A kubeconfig that does not parse. */
	cc = conn_of("clusters: [\n");
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "kubeconfig"));
}
END_TEST

START_TEST(test_driver_k8s_in_cluster)
{
	struct dp_cluster_conn	 cc = conn_of(NULL);
	struct dp_probe		 p;
	struct dp_err		 err = { 0 };
	char			 dir[256], path[PATH_MAX], port[16];
	char			*ca;

	snprintf(dir, sizeof(dir), "%s/sa", tmpdir);
	mkdir(dir, 0700);
	snprintf(path, sizeof(path), "%s/ca.crt", tmpdir);
	ca = slurp(path);
	snprintf(path, sizeof(path), "%s/ca.crt", dir);
	write_file(path, ca);
	free(ca);
	snprintf(path, sizeof(path), "%s/token", dir);
	write_file(path, TOKEN "\n");
	dp_k8s_set_sa_dir(dir);

	unsetenv("KUBERNETES_SERVICE_HOST");
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "KUBERNETES_SERVICE_HOST"));

	snprintf(port, sizeof(port), "%d", fake_port);
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", port, 1);
	ck_assert_msg(dp_driver_kubernetes.probe(&cc, &p, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(p.node_count, 2);

	/* A token with a control character is refused before any request. */
	write_file(path, "abc\001def\n");
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "unprintable"));
	setenv("KUBERNETES_SERVICE_PORT", "99999", 1);
	ck_assert_int_eq(dp_driver_kubernetes.probe(&cc, &p, &err), -1);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	dp_k8s_set_sa_dir(NULL);
}
END_TEST

START_TEST(test_driver_k8s_validation)
{
	struct dp_k8s	*k = client();
	struct dp_err	 err = { 0 };
	json_object	*o;
	bool		 existed;
	const char	*col = "/api/v1/namespaces/devpocket-u-"
			    "aaaaaaaaaaaaaaaaaaaa0008/configmaps";

	o = json_tokener_parse("{\"apiVersion\":\"v1\",\"kind\":\"Namespace\","
	    "\"metadata\":{\"name\":\"devpocket-u-aaaaaaaaaaaaaaaaaaaa0008\"}}");
	ck_assert_int_eq(dp_k8s_create(k, "/api/v1/namespaces", o, &existed,
	    &err), 0);
	ck_assert(!existed);
	ck_assert_int_eq(dp_k8s_create(k, "/api/v1/namespaces", o, &existed,
	    &err), 0);
	ck_assert(existed);
	json_object_put(o);

	/* An unknown field. */
	o = json_tokener_parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
	    "\"metadata\":{\"name\":\"x\"},\"data\":{},\"bogus\":1}");
	ck_assert_int_eq(dp_k8s_create(k, col, o, NULL, &err), -1);
	ck_assert_int_eq(err.code, 422);
	ck_assert_ptr_nonnull(strstr(err.msg, "bogus"));
	json_object_put(o);
	/* A nested unknown field and a wrong type. */
	o = json_tokener_parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
	    "\"metadata\":{\"name\":\"x\",\"labelz\":{}},\"data\":{\"a\":1}}");
	ck_assert_int_eq(dp_k8s_create(k, col, o, NULL, &err), -1);
	ck_assert_int_eq(err.code, 422);
	ck_assert_ptr_nonnull(strstr(err.msg, "labelz"));
	json_object_put(o);
	/* A bad name. */
	o = json_tokener_parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
	    "\"metadata\":{\"name\":\"Not_A_Name\"}}");
	ck_assert_int_eq(dp_k8s_create(k, col, o, NULL, &err), -1);
	ck_assert_int_eq(err.code, 422);
	json_object_put(o);
	/* The same, valid. */
	o = json_tokener_parse("{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\","
	    "\"metadata\":{\"name\":\"x\"},\"data\":{\"a\":\"1\"}}");
	ck_assert_int_eq(dp_k8s_create(k, col, o, NULL, &err), 0);
	json_object_put(o);
	/* Missing things are 404, deleting them is still fine. */
	ck_assert_int_eq(dp_k8s_get(k, "/api/v1/namespaces/nope-nope", &o,
	    &err), -1);
	ck_assert_int_eq(err.code, 404);
	ck_assert_ptr_null(o);
	ck_assert_int_eq(dp_k8s_delete(k, "/api/v1/namespaces/nope-nope", &existed,
	    &err), 0);
	ck_assert(existed);
	dp_k8s_free(k);
}
END_TEST

START_TEST(test_driver_k8s_hostile_spec)
{
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	json_object		*reqs;
	static const char *const badenv[] = { "NOEQUALS" };
	static const char *const emptykey[] = { "=value" };
	static const char *const badutf[] = { "echo \xc3\x28" };
	static const char *const badname[] = { "1BAD-NAME=x" };

	kpost("/_reset");
	s = spec_of("../etc", "bbbbbbbbbbbbbbbbbbbb0009");
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	s = spec_of("AAAAAAAAAAAAAAAAAAAA0009", "bbbbbbbbbbbbbbbbbbbb0009");
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	s = spec_of("aaaaaaaaaaaaaaaaaaaa0009", "");
	ck_assert_int_eq(dp_driver_kubernetes.stop(&cc, &s, &err), -1);
	s = spec_of("aaaaaaaaaaaaaaaaaaaa0009",
	    "bbbbbbbbbbbbbbbbbbbb0009bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
	ck_assert_int_eq(dp_driver_kubernetes.destroy(&cc, &s, &err), -1);
	reqs = requests();
	ck_assert_int_eq(json_object_array_length(reqs), 0);
	json_object_put(reqs);

	s = spec_of("aaaaaaaaaaaaaaaaaaaa0009", "bbbbbbbbbbbbbbbbbbbb0009");
	s.env = badenv;
	s.nenv = 1;
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "KEY=VALUE"));
	s.env = emptykey;
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	s.env = envs;
	s.nenv = DP_NITEMS(envs);
	s.commands = badutf;
	s.ncommands = 1;
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
	s.commands = cmds;
	s.ncommands = DP_NITEMS(cmds);
	s.image = "debian 12";
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	s.image = "debian:12";
	s.cpu_millicores = -5;
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	s.cpu_millicores = 500;
	/* A variable name Kubernetes refuses: the fake says 422. */
	s.env = badname;
	s.nenv = 1;
	ck_assert_int_eq(dp_driver_kubernetes.provision(&cc, &s, &err), -1);
	ck_assert_int_eq(err.code, 422);
	/* A port out of range is simply not published. */
	s.env = envs;
	s.nenv = DP_NITEMS(envs);
	s.port = 70000;
	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &s, &err) == 0,
	    "%s", err.msg);
	ck_assert_int_eq(dp_driver_kubernetes.destroy(&cc, &s, &err), 0);
}
END_TEST

START_TEST(test_driver_k8s_quantity)
{
	static const struct {
		const char	*s;
		double		 v;
		int		 ok;
	} t[] = {
		{ "500m", 0.5, 1 }, { "4", 4, 1 }, { "3500m", 3.5, 1 },
		{ "1Gi", 1073741824.0, 1 }, { "16393524Ki", 16393524.0 * 1024, 1 },
		{ "12345678n", 0.012345678, 1 }, { "1.5", 1.5, 1 },
		{ ".5", 0.5, 1 }, { "5.", 5, 1 }, { "1e3", 1000, 1 },
		{ "1E3", 1000, 1 }, { "1e+3", 1000, 1 }, { "1e-3", 0.001, 1 },
		{ "-1", -1, 1 }, { "+2k", 2000, 1 }, { "34Mi", 35651584.0, 1 },
		{ "2E", 2e18, 1 }, { "1u", 1e-6, 1 },
		{ "", 0, 0 }, { "m", 0, 0 }, { "Ki", 0, 0 }, { "1.2.3", 0, 0 },
		{ "1Zi", 0, 0 }, { "1e", 0, 0 }, { "1e+", 0, 0 },
		{ "1e99", 0, 0 }, { "0x10", 0, 0 }, { "inf", 0, 0 },
		{ "nan", 0, 0 }, { " 1", 0, 0 }, { "1 ", 0, 0 }, { "1mm", 0, 0 },
		{ "--1", 0, 0 }, { "1e+-3", 0, 0 }, { "1Kii", 0, 0 },
		{ "1k\xff", 0, 0 },
		{ "111111111111111111111111111111111111111111111111111111111111"
		    "1111111", 0, 0 },
	};
	double	 v;
	size_t	 i;

	for (i = 0; i < DP_NITEMS(t); i++) {
		v = -12345;
		ck_assert_msg((dp_k8s_quantity(t[i].s, &v) == 0) == t[i].ok,
		    "%s", t[i].s);
		if (t[i].ok)
			ck_assert_msg(fabs(v - t[i].v) <= fabs(t[i].v) * 1e-12,
			    "%s = %g", t[i].s, v);
	}
	ck_assert_int_eq(dp_k8s_quantity(NULL, &v), -1);
}
END_TEST

/* ---- terminal attach */

/* Read the pty master into acc until needle shows (ms); true if it did. */
static bool
pty_until(int fd, struct dp_buf *acc, const char *needle, int ms)
{
	struct pollfd	 p = { .fd = fd, .events = POLLIN };
	char		 buf[4096];
	int64_t		 end = dp_mono_ms() + ms;
	ssize_t		 n;

	while (acc->s == NULL || memmem(acc->s, acc->len, needle,
	    strlen(needle)) == NULL) {
		if (dp_mono_ms() >= end)
			return false;
		if (poll(&p, 1, (int)(end - dp_mono_ms())) <= 0)
			continue;
		if ((n = read(fd, buf, sizeof(buf))) <= 0)
			return false;
		dp_buf_add(acc, buf, (size_t)n);
	}
	return true;
}

static void
pty_type(int fd, const char *s)
{
	ck_assert_int_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

/* The bridge exits by itself once the master is closed (2 s). */
static void
detach_and_reap(struct dp_attach *a)
{
	pid_t	 r = 0;
	int	 st, i;

	close(a->fd);
	for (i = 0; i < 200; i++) {
		if ((r = waitpid(a->pid, &st, WNOHANG)) != 0)
			break;
		usleep(10 * 1000);
	}
	if (r == 0)
		kill(a->pid, SIGKILL);
	ck_assert_msg(r == a->pid, "bridge %d still there after the "
	    "master closed", a->pid);
	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "bridge "
	    "status %x", st);
}

static int
open_fds(void)
{
	char	 p[64];
	int	 fd, n = 0;

	for (fd = 0; fd < 1024; fd++) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		if (access(p, F_OK) == 0)
			n++;
	}
	return n;
}

/* Live children of this process other than the fake. */
static int
children(void)
{
	char	 p[64], *list, *q, *end;
	long	 pid;
	int	 n = 0;

	snprintf(p, sizeof(p), "/proc/self/task/%d/children", (int)gettid());
	if ((list = slurp(p)) == NULL)
		return -1;
	for (q = list; *q != '\0'; q = end) {
		pid = strtol(q, &end, 10);
		if (end == q)
			break;
		if (pid != fake_pid)
			n++;
	}
	free(list);
	return n;
}

/* The tmux session of the environment answers has-session (10 s). */
static void
wait_session(const char *uid, const char *eid)
{
	struct dp_buf	 out = { 0 }, st = { 0 }, q = { 0 };
	char		 p[256], pod[64];
	int		 i;

	snprintf(pod, sizeof(pod), "pods/env-%s-0", eid);
	path_ns(p, sizeof(p), uid, pod);
	dp_buf_printf(&q, "command=tmux&command=has-session&command=-t&"
	    "command=%%3Ddevpocket_%s", eid);
	for (i = 0; i < 100; i++) {
		dp_buf_reset(&out);
		dp_buf_reset(&st);
		exec_in(p, q.s, &out, &st);
		if (strstr(st.s, "\"Success\"") != NULL)
			break;
		usleep(100 * 1000);
	}
	ck_assert_msg(i < 100, "no tmux session: %s", st.s);
	dp_buf_release(&out);
	dp_buf_release(&st);
	dp_buf_release(&q);
}

START_TEST(test_driver_k8s_attach)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0020";
	const char		*eid = "bbbbbbbbbbbbbbbbbbbb0020";
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_env_spec	 s = spec_of(uid, eid);
	struct dp_err		 err = { 0 };
	struct dp_attach	 a;
	struct dp_buf		 acc = { 0 };
	struct winsize		 wsz = { 0 };
	json_object		*reqs, *r, *cmd;
	char			 p[64];
	char			*log;
	size_t			 i;
	int			 n, fds;

	ck_assert_msg(dp_driver_kubernetes.provision(&cc, &s, &err) == 0,
	    "%s", err.msg);
	wait_phase(&cc, &s, DP_PHASE_RUNNING);
	log = wait_log(&cc, &s, "##devpocket:done ");
	free(log);
	wait_session(uid, eid);
	kpost("/_reset");

	fds = open_fds();
	memset(&a, 0xff, sizeof(a));
	ck_assert_msg(dp_driver_kubernetes.attach(&cc, &s, 80, 24, &a,
	    &err) == 0, "%s", err.msg);
	ck_assert_int_ge(a.fd, 0);
	ck_assert_int_gt(a.pid, 0);
	ck_assert_ptr_null(a.priv);
	/* The init script's keep-alive made the session. */
	ck_assert(a.existed);
	ck_assert_int_eq(open_fds(), fds + 1);
	ck_assert_int_eq(fcntl(a.fd, F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);

	/* Keystrokes through channel 0, the shell's answer on channel 1:
	 * the typed text cannot match, only the expansion does. */
	pty_type(a.fd, "echo k8s-marker-$((6*7))\r");
	ck_assert_msg(pty_until(a.fd, &acc, "k8s-marker-42", 10000),
	    "output: %s", acc.s ? acc.s : "");

	/* Resize on the master: channel 4, the pod's pty follows (tmux
	 * keeps a status line). */
	wsz.ws_col = 100;
	wsz.ws_row = 30;
	ck_assert_int_eq(ioctl(a.fd, TIOCSWINSZ, &wsz), 0);
	usleep(300 * 1000);
	dp_buf_reset(&acc);
	pty_type(a.fd, "stty size | sed 's/^/size=/'\r");
	ck_assert_msg(pty_until(a.fd, &acc, "size=29 100", 10000),
	    "output: %s", acc.s ? acc.s : "");
	/* Bytes that a cooked pty would eat (^C, ^D, NUL, UTF-8) pass: ^U
	 * clears the line in the pod's shell, not here. */
	dp_buf_reset(&acc);
	pty_type(a.fd, "garbage\x15printf '%s\\n' \"caf\xc3\xa9-$((1+1))\"\r");
	ck_assert_msg(pty_until(a.fd, &acc, "caf\xc3\xa9-2", 10000),
	    "output: %s", acc.s ? acc.s : "");

	/* What was sent: tmux new-session -A in the container (with the
	 * init script's config and workspace, and TERM), a tty. */
	reqs = requests();
	snprintf(p, sizeof(p), "pods/env-%s-0/exec", eid);
	{
		char full[256];

		path_ns(full, sizeof(full), uid, p);
		for (i = 0, n = 0; i < json_object_array_length(reqs); i++) {
			r = json_object_array_get_idx(reqs, i);
			if (strcmp(js(r, "path"), full) != 0)
				continue;
			cmd = jg(r, "query|command");
			if (json_object_array_length(cmd) != 11)
				continue;	/* has-session */
			n++;
			ck_assert_str_eq(js(cmd, "0"), "env");
			ck_assert_str_eq(js(cmd, "1"), "TERM=xterm-256color");
			ck_assert_str_eq(js(cmd, "2"), "tmux");
			ck_assert_str_eq(js(cmd, "3"), "-f");
			ck_assert_str_eq(js(cmd, "4"), "/etc/devpocket/tmux.conf");
			ck_assert_str_eq(js(cmd, "5"), "new-session");
			ck_assert_str_eq(js(cmd, "6"), "-A");
			ck_assert_str_eq(js(cmd, "7"), "-s");
			ck_assert_str_eq(js(cmd, "8"),
			    "devpocket_bbbbbbbbbbbbbbbbbbbb0020");
			ck_assert_str_eq(js(cmd, "9"), "-c");
			ck_assert_str_eq(js(cmd, "10"), "/root/workspace");
			ck_assert_str_eq(js(r, "query|tty|0"), "true");
			ck_assert_str_eq(js(r, "query|stdin|0"), "true");
			ck_assert_str_eq(js(r, "query|stdout|0"), "true");
			ck_assert_str_eq(js(r, "query|container|0"), "env");
			/* The fake records 200 when the stream ends. */
			ck_assert_ptr_null(jg(r, "status"));
		}
		ck_assert_int_eq(n, 1);
	}
	json_object_put(reqs);

	/* Detach: the bridge goes, the session stays. */
	detach_and_reap(&a);
	ck_assert_int_eq(open_fds(), fds);
	ck_assert_int_eq(children(), 0);
	wait_session(uid, eid);

	/* Attach again: the session was there; tmux redraws its screen. */
	dp_buf_reset(&acc);
	ck_assert_msg(dp_driver_kubernetes.attach(&cc, &s, 90, 20, &a,
	    &err) == 0, "%s", err.msg);
	ck_assert(a.existed);
	ck_assert_msg(pty_until(a.fd, &acc, "k8s-marker-42", 10000),
	    "no redraw: %s", acc.s ? acc.s : "");
	/* The size given to attach reaches the pod's pty (the first one
	 * may come before tmux listens for SIGWINCH; the nudge after its
	 * first output makes up for it, a moment later). */
	for (i = 0; i < 10; i++) {
		dp_buf_reset(&acc);
		pty_type(a.fd, "stty size | sed 's/^/size=/'\r");
		if (pty_until(a.fd, &acc, "size=19 90", 1000))
			break;
	}
	ck_assert_msg(i < 10, "output: %s", acc.s ? acc.s : "");
	/* exit ends the shell and the session: status Success, the bridge
	 * ends by itself and the master reads EOF. */
	pty_type(a.fd, "exit\r");
	{
		struct pollfd	 pf = { .fd = a.fd, .events = POLLIN };
		char		 buf[4096];
		int64_t		 end = dp_mono_ms() + 10000;
		int		 st;

		while (dp_mono_ms() < end) {
			if (poll(&pf, 1, 100) > 0 &&
			    read(a.fd, buf, sizeof(buf)) <= 0)
				break;
		}
		ck_assert_int_lt(dp_mono_ms(), end);
		ck_assert_int_eq(waitpid(a.pid, &st, 0), a.pid);
		ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "bridge status %x", st);
		close(a.fd);
	}
	dp_buf_release(&acc);
	ck_assert_int_eq(dp_driver_kubernetes.destroy(&cc, &s, &err), 0);
}
END_TEST

START_TEST(test_driver_k8s_attach_refused)
{
	const char		*uid = "aaaaaaaaaaaaaaaaaaaa0021";
	struct dp_env_spec	 s = spec_of(uid, "bbbbbbbbbbbbbbbbbbbb0021");
	struct dp_env_spec	 bad = spec_of("../etc", "bbbbbbbbbbbbbbbbbbbb0021");
	struct dp_cluster_conn	 cc = conn_of(kc_token);
	struct dp_err		 err = { 0 };
	struct dp_attach	 a;
	char			*wrong;
	int			 fds = open_fds();

	/* No pod: the exec is refused, nothing is left behind. */
	memset(&a, 0xff, sizeof(a));
	ck_assert_int_eq(dp_driver_kubernetes.attach(&cc, &s, 80, 24, &a,
	    &err), -1);
	ck_assert_int_eq(err.code, 404);
	ck_assert_msg(strstr(err.msg, "exec") != NULL, "%s", err.msg);
	ck_assert_int_eq(a.fd, -1);
	ck_assert_int_eq(a.pid, -1);
	ck_assert(!a.existed);
	ck_assert_int_eq(open_fds(), fds);
	ck_assert_int_eq(children(), 0);

	/* Ids that would escape the path. */
	ck_assert_int_eq(dp_driver_kubernetes.attach(&cc, &bad, 80, 24, &a,
	    &err), -1);
	ck_assert_int_eq(a.fd, -1);

	/* A wrong token: 401 from the API, no secret in the message. */
	wrong = kubeconfig("not-the-token", true, false, false);
	cc = conn_of(wrong);
	ck_assert_int_eq(dp_driver_kubernetes.attach(&cc, &s, 80, 24, &a,
	    &err), -1);
	ck_assert_int_eq(err.code, 401);
	ck_assert_ptr_null(strstr(err.msg, "not-the-token"));
	ck_assert_int_eq(open_fds(), fds);
	free(wrong);
}
END_TEST

static Suite *
driver_k8s_suite(void)
{
	Suite	*s = suite_create("driver_k8s");
	struct {
		const char	*name;
		const TTest	*fn;
	} tcs[] = {
		{ "provision_objects", test_driver_k8s_provision_objects },
		{ "idempotent", test_driver_k8s_idempotent },
		{ "retry_after_500", test_driver_k8s_retry_after_500 },
		{ "lifecycle", test_driver_k8s_lifecycle },
		{ "quota_grows", test_driver_k8s_quota_grows },
		{ "big_log", test_driver_k8s_big_log },
		{ "probe", test_driver_k8s_probe },
		{ "wrong_token", test_driver_k8s_wrong_token },
		{ "tls", test_driver_k8s_tls },
		{ "in_cluster", test_driver_k8s_in_cluster },
		{ "validation", test_driver_k8s_validation },
		{ "hostile_spec", test_driver_k8s_hostile_spec },
		{ "quantity", test_driver_k8s_quantity },
		{ "attach", test_driver_k8s_attach },
		{ "attach_refused", test_driver_k8s_attach_refused },
	};
	TCase	*tc;
	size_t	 i;

	for (i = 0; i < DP_NITEMS(tcs); i++) {
		tc = tcase_create(tcs[i].name);
		tcase_set_timeout(tc, 60);
		tcase_add_test(tc, tcs[i].fn);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (mkdtemp(tmpdir) == NULL || start_fake() == -1) {
		fprintf(stderr, "check_driver_k8s: cannot start the fake API "
		    "server (%s; needs python3 and python3-jsonschema)\n",
		    fake_script());
		stop_fake();
		return 1;
	}
	kc_token = kubeconfig(TOKEN, true, false, false);
	sr = srunner_create(driver_k8s_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	stop_fake();
	free(kc_token);
	if (rm_rf(tmpdir) != 0)
		failed++;
	curl_global_cleanup();
	return failed == 0 ? 0 : 1;
}
