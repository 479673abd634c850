/* lib/k8s.c: a small Kubernetes REST client over libcurl */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "k8s.h"
#include "kubeconfig.h"

#define SA_FILE_MAX	(64 * 1024)

struct dp_k8s {
	CURL	*curl;
	char	*server;	/* no trailing slash */
	char	*auth;		/* "Authorization: Bearer ..." or NULL (secret) */
	char	*ca;		/* PEM or NULL */
	char	*cert, *key;	/* PEM or NULL (key secret) */
	bool	 insecure;
	long	 connect_ms, total_ms;
	char	*ws_url;	/* last dp_k8s_ws_handle URL */
};

static const char *sa_dir = DP_K8S_SA_DIR;

void
dp_k8s_set_sa_dir(const char *dir)
{
	sa_dir = dir != NULL ? dir : DP_K8S_SA_DIR;
}

static void
free_secret(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
dp_k8s_free(struct dp_k8s *k)
{
	if (k == NULL)
		return;
	if (k->curl != NULL)
		curl_easy_cleanup(k->curl);
	free(k->server);
	free(k->ws_url);
	free_secret(k->auth);
	free(k->ca);
	free(k->cert);
	free_secret(k->key);
	free(k);
}

void
dp_k8s_set_timeouts(struct dp_k8s *k, long connect_ms, long total_ms)
{
	k->connect_ms = connect_ms;
	k->total_ms = total_ms;
}

const char *
dp_k8s_server(const struct dp_k8s *k)
{
	return k->server;
}

/* Read a small file of the service account directory; NULL on error. */
static char *
read_sa_file(const char *name, struct dp_err *err)
{
	struct dp_buf	 b = { 0 };
	char		 path[4096], chunk[4096];
	char		*ret = NULL;
	ssize_t		 n;
	int		 fd = -1, len;

	len = snprintf(path, sizeof(path), "%s/%s", sa_dir, name);
	if (len < 0 || (size_t)len >= sizeof(path)) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "service account path too long");
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "%s: %s", path,
		    strerror(errno));
		goto out;
	}
	while ((n = read(fd, chunk, sizeof(chunk))) > 0) {
		if (b.len + (size_t)n > SA_FILE_MAX) {
			dp_err_set(err, DP_K8S_ETRANSPORT, "%s: too large", path);
			goto out;
		}
		dp_buf_add(&b, chunk, (size_t)n);
	}
	explicit_bzero(chunk, sizeof(chunk));
	if (n < 0) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "%s: %s", path,
		    strerror(errno));
		goto out;
	}
	if (memchr(b.s == NULL ? "" : b.s, '\0', b.len) != NULL) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "%s: NUL byte", path);
		goto out;
	}
	if (b.s == NULL)
		dp_buf_adds(&b, "");
	ret = dp_buf_detach(&b);
out:
	if (fd != -1)
		close(fd);
	dp_buf_wipe(&b);
	return ret;
}

/* A token fit for a header: printable ASCII, surrounding space trimmed. */
static char *
clean_token(char *t, struct dp_err *err)
{
	size_t	 i, start = 0, end = strlen(t);

	while (start < end && (t[start] == ' ' || t[start] == '\n' ||
	    t[start] == '\r' || t[start] == '\t'))
		start++;
	while (end > start && (t[end - 1] == ' ' || t[end - 1] == '\n' ||
	    t[end - 1] == '\r' || t[end - 1] == '\t'))
		end--;
	for (i = start; i < end; i++) {
		if (t[i] < 0x21 || t[i] > 0x7e) {
			dp_err_set(err, DP_K8S_ETRANSPORT,
			    "service account token has unprintable bytes");
			return NULL;
		}
	}
	if (start == end) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "service account token is empty");
		return NULL;
	}
	memmove(t, t + start, end - start);
	t[end - start] = '\0';
	return t;
}

static int
set_server(struct dp_k8s *k, const char *url, struct dp_err *err)
{
	size_t	 n = strlen(url);

	if (strncasecmp(url, "https://", 8) != 0 &&
	    strncasecmp(url, "http://", 7) != 0) {
		dp_err_set(err, DP_K8S_ETRANSPORT,
		    "API server URL must be http:// or https://");
		return -1;
	}
	if (n > 2048 || strpbrk(url, " \t\r\n?#") != NULL) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "API server URL is malformed");
		return -1;
	}
	while (n > 0 && url[n - 1] == '/')
		n--;
	free(k->server);
	k->server = dp_xstrndup(url, n);
	return 0;
}

static int
from_in_cluster(struct dp_k8s *k, struct dp_err *err)
{
	const char	*host, *port;
	char		*tok = NULL, *t;
	struct dp_buf	 url = { 0 };
	int		 ret = -1;
	int64_t		 pnum;

	host = getenv("KUBERNETES_SERVICE_HOST");
	port = getenv("KUBERNETES_SERVICE_PORT");
	if (host == NULL || *host == '\0' || port == NULL ||
	    dp_parse_int64(port, 1, 65535, &pnum) == -1 ||
	    strpbrk(host, "/?#@ ") != NULL || strlen(host) > 255) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "no kubeconfig and not "
		    "in a cluster (KUBERNETES_SERVICE_HOST/PORT)");
		goto out;
	}
	if (strchr(host, ':') != NULL)
		dp_buf_printf(&url, "https://[%s]:%lld", host, (long long)pnum);
	else
		dp_buf_printf(&url, "https://%s:%lld", host, (long long)pnum);
	if (set_server(k, url.s, err) == -1)
		goto out;
	if ((tok = read_sa_file("token", err)) == NULL)
		goto out;
	if ((t = clean_token(tok, err)) == NULL)
		goto out;
	dp_buf_reset(&url);
	dp_buf_printf(&url, "Authorization: Bearer %s", t);
	k->auth = dp_buf_detach(&url);
	if ((k->ca = read_sa_file("ca.crt", err)) == NULL)
		goto out;
	ret = 0;
out:
	free_secret(tok);
	dp_buf_wipe(&url);
	return ret;
}

static int
from_kubeconfig(struct dp_k8s *k, const char *yaml, size_t len,
    struct dp_err *err)
{
	struct dp_kubeconfig	 kc = { 0 };
	struct dp_buf		 b = { 0 };
	struct dp_err		 kerr = { 0 };
	int			 ret = -1;

	if (dp_kubeconfig_parse(yaml, len, &kc, &kerr) == -1) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "kubeconfig: %s", kerr.msg);
		goto out;
	}
	if (set_server(k, kc.server, err) == -1)
		goto out;
	if (kc.token != NULL) {
		dp_buf_printf(&b, "Authorization: Bearer %s", kc.token);
		k->auth = dp_buf_detach(&b);
	}
	if (kc.ca_data != NULL)
		k->ca = dp_xstrdup(kc.ca_data);
	if (kc.client_cert != NULL && kc.client_key != NULL) {
		k->cert = dp_xstrdup(kc.client_cert);
		k->key = dp_xstrdup(kc.client_key);
	}
	k->insecure = kc.insecure;
	ret = 0;
out:
	dp_kubeconfig_release(&kc);
	dp_buf_wipe(&b);
	return ret;
}

struct dp_k8s *
dp_k8s_new(const char *kubeconfig, size_t len, const char *endpoint,
    struct dp_err *err)
{
	struct dp_k8s	*k;

	k = dp_xcalloc(1, sizeof(*k));
	k->connect_ms = 5000;
	k->total_ms = 30000;
	if (kubeconfig != NULL) {
		if (from_kubeconfig(k, kubeconfig, len, err) == -1)
			goto fail;
	} else if (from_in_cluster(k, err) == -1)
		goto fail;
	if (endpoint != NULL && *endpoint != '\0' &&
	    set_server(k, endpoint, err) == -1)
		goto fail;
	if ((k->curl = curl_easy_init()) == NULL) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "curl_easy_init failed");
		goto fail;
	}
	return k;
fail:
	dp_k8s_free(k);
	return NULL;
}

void
dp_k8s_resp_release(struct dp_k8s_resp *r)
{
	dp_buf_release(&r->body);
	if (r->json != NULL)
		json_object_put(r->json);
	r->json = NULL;
	r->status = 0;
}

/* Where the write callback puts the body. */
struct sink {
	CURL		*curl;
	struct dp_buf	*buf;
	size_t		 cap;
	int64_t		 skip;
	bool		 over;		/* more than cap arrived */
	bool		 checked;	/* status looked at */
};

/* An error answer (small JSON) is kept whole, never skipped. */
#define ERROR_BODY_MAX	(64 * 1024)

static size_t
sink_write(char *p, size_t size, size_t n, void *arg)
{
	struct sink	*s = arg;
	size_t		 len = size * n, room;
	long		 status = 0;

	if (!s->checked) {
		s->checked = true;
		curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299) {
			s->skip = 0;
			if (s->cap > ERROR_BODY_MAX)
				s->cap = ERROR_BODY_MAX;
		}
	}
	if (s->skip > 0) {
		if ((int64_t)len <= s->skip) {
			s->skip -= (int64_t)len;
			return len;
		}
		p += s->skip;
		len -= (size_t)s->skip;
		s->skip = 0;
	}
	room = s->cap - (s->buf->len < s->cap ? s->buf->len : s->cap);
	if (len > room) {
		dp_buf_add(s->buf, p, room);
		s->over = true;
		return 0;	/* stops the transfer */
	}
	dp_buf_add(s->buf, p, len);
	return size * n;
}

static void
slist_wipe_free(struct curl_slist *l)
{
	struct curl_slist	*i;

	for (i = l; i != NULL; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(l);
}

static bool
is_write(const char *method)
{
	return strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	    strcmp(method, "PATCH") == 0;
}

static void
set_blob(CURL *c, CURLoption opt, const char *pem)
{
	struct curl_blob	 blob;

	blob.data = (void *)pem;
	blob.len = strlen(pem);
	blob.flags = CURL_BLOB_COPY;
	curl_easy_setopt(c, opt, &blob);
}

/* The server's TLS settings and our limits on a handle. */
static void
set_tls(const struct dp_k8s *k, CURL *c)
{
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, k->connect_ms);
	if (k->insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (k->ca != NULL) {
		/* That CA only: libcurl would also trust its default CA
		 * folder (/etc/ssl/certs), so any public CA's certificate
		 * for the server's name. */
		set_blob(c, CURLOPT_CAINFO_BLOB, k->ca);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
	}
	if (k->cert != NULL) {
		set_blob(c, CURLOPT_SSLCERT_BLOB, k->cert);
		curl_easy_setopt(c, CURLOPT_SSLCERTTYPE, "PEM");
		set_blob(c, CURLOPT_SSLKEY_BLOB, k->key);
		curl_easy_setopt(c, CURLOPT_SSLKEYTYPE, "PEM");
	}
}

void *
dp_k8s_ws_handle(struct dp_k8s *k, const char *path, const char **url,
    const char **auth, struct dp_err *err)
{
	struct dp_buf	 b = { 0 };
	CURL		*c;

	*url = NULL;
	*auth = NULL;
	if (path[0] != '/') {
		dp_err_set(err, DP_K8S_ETRANSPORT, "path must start with /");
		return NULL;
	}
	if ((c = curl_easy_init()) == NULL) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "curl_easy_init failed");
		return NULL;
	}
	set_tls(k, c);
	/* set_server allows only these two schemes. */
	if (dp_startswith(k->server, "https://"))
		dp_buf_printf(&b, "wss://%s%s", k->server + 8, path);
	else
		dp_buf_printf(&b, "ws://%s%s", k->server + 7, path);
	free(k->ws_url);
	k->ws_url = dp_buf_detach(&b);
	*url = k->ws_url;
	*auth = k->auth;
	return c;
}

/* The one place a request goes out; sink decides what is kept. */
static int
perform(struct dp_k8s *k, const char *method, const char *path,
    const char *ctype, const char *body, size_t blen, struct sink *sink,
    long *status, struct dp_err *err)
{
	struct curl_slist	*hdrs = NULL;
	struct dp_buf		 url = { 0 }, h = { 0 };
	CURLcode		 rc;
	CURL			*c = k->curl;
	int			 ret = -1;

	*status = 0;
	if (path[0] != '/') {
		dp_err_set(err, DP_K8S_ETRANSPORT, "path must start with /");
		goto out;
	}
	dp_buf_printf(&url, "%s%s", k->server, path);
	if (is_write(method))
		dp_buf_printf(&url, "%cfieldManager=%s",
		    strchr(path, '?') != NULL ? '&' : '?', DP_K8S_FIELD_MANAGER);

	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url.s);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, k->total_ms);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "devpocket/" DP_VERSION);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (strcmp(method, "GET") == 0)
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	set_tls(k, c);
	if (k->auth != NULL)
		hdrs = curl_slist_append(hdrs, k->auth);
	hdrs = curl_slist_append(hdrs, "Accept: application/json, */*");
	if (body != NULL) {
		dp_buf_printf(&h, "Content-Type: %s",
		    ctype != NULL ? ctype : "application/json");
		hdrs = curl_slist_append(hdrs, h.s);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)blen);
	}
	/* No "Expect: 100-continue" round trip for large bodies. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	sink->curl = c;
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink_write);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, sink);

	rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	if (rc == CURLE_WRITE_ERROR && sink->over && sink->cap <
	    DP_K8S_RESPONSE_MAX && *status >= 200 && *status <= 299) {
		/* The caller asked for only so much: a deliberate stop. */
	} else if (rc == CURLE_WRITE_ERROR && sink->over) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "%s %s: response too "
		    "large (status %ld)", method, path, *status);
		goto out;
	} else if (rc != CURLE_OK) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "%s %s: %s", method, path,
		    curl_easy_strerror(rc));
		goto out;
	}
	if (*status < 100) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "%s %s: no HTTP status",
		    method, path);
		goto out;
	}
	ret = 0;
out:
	slist_wipe_free(hdrs);
	/* Drop the pointers to our buffers before they go. */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
	dp_buf_release(&url);
	dp_buf_release(&h);
	return ret;
}

static json_object *
parse_json(const char *s, size_t len)
{
	json_tokener	*tok;
	json_object	*o = NULL;

	if (len == 0 || len > INT32_MAX)
		return NULL;
	tok = json_tokener_new_ex(DP_K8S_JSON_DEPTH);
	if (tok == NULL)
		return NULL;
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len) {
		if (o != NULL)
			json_object_put(o);
		o = NULL;
	}
	json_tokener_free(tok);
	return o;
}

int
dp_k8s_request(struct dp_k8s *k, const char *method, const char *path,
    const char *ctype, const char *body, size_t blen,
    struct dp_k8s_resp *resp, struct dp_err *err)
{
	struct sink	 sink = { 0 };

	memset(resp, 0, sizeof(*resp));
	sink.buf = &resp->body;
	sink.cap = DP_K8S_RESPONSE_MAX;
	if (perform(k, method, path, ctype, body, blen, &sink, &resp->status,
	    err) == -1) {
		dp_k8s_resp_release(resp);
		return -1;
	}
	if (resp->body.len > 0 && memchr(resp->body.s, '\0',
	    resp->body.len) == NULL)
		resp->json = parse_json(resp->body.s, resp->body.len);
	return 0;
}

/* err from a non-2xx answer, with the Status reason and message. */
static void
api_error(const char *method, const char *path, struct dp_k8s_resp *r,
    struct dp_err *err)
{
	json_object	*v;
	const char	*reason = "", *msg = "";

	if (r->json != NULL && json_object_is_type(r->json, json_type_object)) {
		if (json_object_object_get_ex(r->json, "reason", &v) &&
		    json_object_is_type(v, json_type_string))
			reason = json_object_get_string(v);
		if (json_object_object_get_ex(r->json, "message", &v) &&
		    json_object_is_type(v, json_type_string))
			msg = json_object_get_string(v);
	}
	dp_err_set(err, (int)r->status, "%s %s: %ld %s: %s", method, path,
	    r->status, reason, msg);
}

static int
call_json(struct dp_k8s *k, const char *method, const char *path,
    const char *ctype, json_object *body, json_object **out, long *status,
    struct dp_err *err)
{
	struct dp_k8s_resp	 r;
	const char		*s = NULL;
	size_t			 len = 0;
	int			 ret = -1;

	if (out != NULL)
		*out = NULL;
	*status = 0;
	if (body != NULL)
		s = json_object_to_json_string_length(body,
		    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
		    &len);
	if (dp_k8s_request(k, method, path, ctype, s, len, &r, err) == -1)
		return -1;
	*status = r.status;
	if (r.status < 200 || r.status > 299) {
		api_error(method, path, &r, err);
		goto out;
	}
	if (out != NULL) {
		if (r.json == NULL) {
			dp_err_set(err, DP_K8S_ETRANSPORT, "%s %s: answer is "
			    "not JSON", method, path);
			goto out;
		}
		*out = r.json;
		r.json = NULL;
	}
	ret = 0;
out:
	dp_k8s_resp_release(&r);
	return ret;
}

int
dp_k8s_get(struct dp_k8s *k, const char *path, json_object **out,
    struct dp_err *err)
{
	long	 st;

	return call_json(k, "GET", path, NULL, NULL, out, &st, err);
}

int
dp_k8s_create(struct dp_k8s *k, const char *collection, json_object *obj,
    bool *existed, struct dp_err *err)
{
	long	 st;
	int	 ret;

	if (existed != NULL)
		*existed = false;
	ret = call_json(k, "POST", collection, NULL, obj, NULL, &st, err);
	if (ret == -1 && st == 409) {
		if (existed != NULL)
			*existed = true;
		ret = 0;
	}
	return ret;
}

int
dp_k8s_merge_patch(struct dp_k8s *k, const char *path, json_object *patch,
    json_object **out, struct dp_err *err)
{
	long	 st;

	return call_json(k, "PATCH", path, "application/merge-patch+json",
	    patch, out, &st, err);
}

int
dp_k8s_put(struct dp_k8s *k, const char *path, json_object *obj,
    json_object **out, struct dp_err *err)
{
	long	 st;

	return call_json(k, "PUT", path, NULL, obj, out, &st, err);
}

int
dp_k8s_delete(struct dp_k8s *k, const char *path, bool *gone,
    struct dp_err *err)
{
	long	 st;
	int	 ret;

	if (gone != NULL)
		*gone = false;
	ret = call_json(k, "DELETE", path, NULL, NULL, NULL, &st, err);
	if (ret == -1 && st == 404) {
		if (gone != NULL)
			*gone = true;
		ret = 0;
	}
	return ret;
}

int
dp_k8s_get_text(struct dp_k8s *k, const char *path, int64_t skip, size_t cap,
    struct dp_buf *out, bool *more, struct dp_err *err)
{
	struct dp_k8s_resp	 r = { 0 };
	struct dp_buf		 tmp = { 0 };
	struct sink		 sink = { 0 };
	int			 ret = -1;

	*more = false;
	if (skip < 0 || cap == 0 || cap >= DP_K8S_RESPONSE_MAX) {
		dp_err_set(err, DP_K8S_ETRANSPORT, "bad offset or size");
		goto out;
	}
	sink.buf = &tmp;
	sink.cap = cap;
	sink.skip = skip;
	if (perform(k, "GET", path, NULL, NULL, 0, &sink, &r.status,
	    err) == -1)
		goto out;
	if (r.status < 200 || r.status > 299) {
		/* An error body is small JSON; it was kept unless skipped. */
		r.body = tmp;
		memset(&tmp, 0, sizeof(tmp));
		if (r.body.len > 0)
			r.json = parse_json(r.body.s, r.body.len);
		api_error("GET", path, &r, err);
		goto out;
	}
	*more = sink.over;
	if (tmp.len > 0)
		dp_buf_add(out, tmp.s, tmp.len);
	ret = 0;
out:
	dp_k8s_resp_release(&r);
	dp_buf_release(&tmp);
	return ret;
}

int
dp_k8s_quantity(const char *s, double *out)
{
	static const struct {
		const char	*suf;
		double		 mul;
	} sufs[] = {
		{ "Ki", 1024.0 }, { "Mi", 1048576.0 },
		{ "Gi", 1073741824.0 }, { "Ti", 1099511627776.0 },
		{ "Pi", 1125899906842624.0 }, { "Ei", 1152921504606846976.0 },
		{ "n", 1e-9 }, { "u", 1e-6 }, { "m", 1e-3 }, { "", 1.0 },
		{ "k", 1e3 }, { "M", 1e6 }, { "G", 1e9 }, { "T", 1e12 },
		{ "P", 1e15 }, { "E", 1e18 },
	};
	char		 num[64], *end;
	const char	*p = s, *suf;
	size_t		 i, n, digits = 0;
	double		 v, mul = 1.0;
	int64_t		 e;
	int		 ret = -1;

	if (s == NULL)
		goto out;
	if (*p == '+' || *p == '-')
		p++;
	while (*p >= '0' && *p <= '9') {
		p++;
		digits++;
	}
	if (*p == '.') {
		p++;
		while (*p >= '0' && *p <= '9') {
			p++;
			digits++;
		}
	}
	n = (size_t)(p - s);
	if (digits == 0 || n >= sizeof(num))
		goto out;
	memcpy(num, s, n);
	num[n] = '\0';
	suf = p;
	if ((*suf == 'e' || *suf == 'E') && (suf[1] == '+' || suf[1] == '-' ||
	    (suf[1] >= '0' && suf[1] <= '9'))) {
		if (dp_parse_int64(suf + 1 + (suf[1] == '+'), -30, 30,
		    &e) == -1 || (suf[1] == '+' && suf[2] == '-'))
			goto out;
		mul = pow(10.0, (double)e);
	} else {
		for (i = 0; i < DP_NITEMS(sufs); i++)
			if (strcmp(suf, sufs[i].suf) == 0)
				break;
		if (i == DP_NITEMS(sufs))
			goto out;
		mul = sufs[i].mul;
	}
	errno = 0;
	v = strtod(num, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v))
		goto out;
	*out = v * mul;
	ret = 0;
out:
	return ret;
}
