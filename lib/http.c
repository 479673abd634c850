/* lib/http.c: the request pipeline shared by every responder (dp_serve) */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "metrics.h"

const char *const dp_method_names[DP_METHOD__MAX] = {
	"GET",		/* DP_GET */
	"HEAD",		/* DP_HEAD */
	"POST",		/* DP_POST */
	"PUT",		/* DP_PUT */
	"DELETE",	/* DP_DELETE */
	"PATCH",	/* DP_PATCH */
	"OPTIONS",	/* DP_OPTIONS */
};

static const char *const status_texts[][2] = {
	{ "200", "OK" }, { "201", "Created" }, { "204", "No Content" },
	{ "400", "Bad Request" }, { "401", "Unauthorized" },
	{ "403", "Forbidden" }, { "404", "Not Found" },
	{ "405", "Method Not Allowed" }, { "409", "Conflict" },
	{ "412", "Precondition Failed" }, { "413", "Payload Too Large" },
	{ "415", "Unsupported Media Type" },
	{ "422", "Unprocessable Entity" }, { "423", "Locked" },
	{ "429", "Too Many Requests" }, { "500", "Internal Server Error" },
	{ "502", "Bad Gateway" }, { "503", "Service Unavailable" },
	{ "504", "Gateway Timeout" },
};

/* The transport of one request: FastCGI or plain CGI. */
struct io {
	FCGX_Request	*fr;
};

static struct dp_db	*db;
static const struct dp_rider *rider;	/* dp_http_rider */
static const char	*program = "devpocket";
static volatile sig_atomic_t stopping;
static volatile sig_atomic_t busy;

/* ---- request accessors ------------------------------------------------ */

const char *
dp_req_param(struct dp_req *req, const char *name)
{
	struct io	*io = req->io;
	char		**e;
	size_t		 len;

	/* Without a FastCGI request, this is CGI: the environment. */
	if (io == NULL || io->fr == NULL)
		return getenv(name);
	/* FCGX_GetParam's scan, with the first byte looked at first. */
	if (name == NULL || io->fr->envp == NULL)
		return NULL;
	len = strlen(name);
	for (e = io->fr->envp; *e != NULL; e++)
		if ((*e)[0] == name[0] && strncmp(*e, name, len) == 0 &&
		    (*e)[len] == '=')
			return *e + len + 1;
	return NULL;
}

const char *
dp_req_header(struct dp_req *req, const char *name)
{
	char	 cgi[128] = "HTTP_";
	size_t	 i, j = 5;

	if (strcasecmp(name, "Content-Type") == 0)
		return dp_req_param(req, "CONTENT_TYPE");
	if (strcasecmp(name, "Content-Length") == 0)
		return dp_req_param(req, "CONTENT_LENGTH");
	for (i = 0; name[i] && j < sizeof(cgi) - 1; i++, j++)
		cgi[j] = name[i] == '-' ? '_' :
		    (name[i] >= 'a' && name[i] <= 'z') ? name[i] - 32 : name[i];
	cgi[j] = '\0';
	return dp_req_param(req, cgi);
}

void *
dp_req_alloc(struct dp_req *req, size_t n)
{
	return dp_arena_alloc(&req->arena, n);
}

char *
dp_req_strdup(struct dp_req *req, const char *s)
{
	return dp_arena_strdup(&req->arena, s);
}

const char *
dp_req_query(struct dp_req *req, const char *name)
{
	return req->query == NULL ? NULL :
	    dp_query_get(&req->arena, req->query, name);
}

/* ---- errors ----------------------------------------------------------- */

void
dp_req_invalid(struct dp_req *req, const char *field, enum dp_vcode code,
    const char *message)
{
	struct json_object	*e = json_object_new_object();

	if (req->errors == NULL)
		req->errors = json_object_new_array();
	dp_json_str(e, "field", field);
	dp_json_str(e, "message", message ? message : dp_vcode_names[code]);
	dp_json_str(e, "code", dp_vcode_names[code]);
	json_object_array_add(req->errors, e);
}

bool
dp_req_has_errors(const struct dp_req *req)
{
	return req->errors != NULL &&
	    json_object_array_length(req->errors) > 0;
}

bool
dp_query_int(struct dp_req *req, const char *name, int64_t min, int64_t max,
    int64_t dflt, int64_t *out)
{
	const char	*v = dp_req_query(req, name);
	int64_t		 n;
	size_t		 i;

	*out = dflt;
	if (v == NULL)
		return true;
	for (i = 0; v[i]; i++)
		if (v[i] < '0' || v[i] > '9')
			break;
	if (i == 0 || v[i] != '\0') {
		dp_req_invalid(req, name, DP_V_TYPE_ERROR,
		    "must be an integer");
		return false;
	}
	if (i > 18 || dp_parse_int64(v, min, max, &n) < 0) {
		dp_req_invalid(req, name, DP_V_OUT_OF_RANGE, "out of range");
		return false;
	}
	*out = n;
	return true;
}

bool
dp_query_bool(struct dp_req *req, const char *name, bool dflt, bool *out)
{
	const char	*v = dp_req_query(req, name);

	*out = dflt;
	if (v == NULL)
		return true;
	if (dp_parse_bool(v, out) < 0) {
		dp_req_invalid(req, name, DP_V_TYPE_ERROR, "must be a boolean");
		*out = dflt;
		return false;
	}
	return true;
}

bool
dp_query_page(struct dp_req *req, int64_t *limit, int64_t *offset)
{
	bool	 a = dp_query_int(req, "limit", 1, 500, DP_PAGE_LIMIT, limit);
	bool	 b = dp_query_int(req, "offset", 0, INT32_MAX, 0, offset);

	return a && b;
}

/* ---- responses -------------------------------------------------------- */

int
dp_ok(struct dp_res *res, int status, struct json_object *o)
{
	json_object_put(res->json);
	res->json = o;
	res->status = status;
	return status;
}

int
dp_no_content(struct dp_res *res)
{
	json_object_put(res->json);
	res->json = NULL;
	res->status = 204;
	return 204;
}

int
dp_fail(struct dp_res *res, int status, const char *detail)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "detail", detail);
	return dp_ok(res, status, o);
}

int
dp_fail_invalid(struct dp_req *req, struct dp_res *res)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "detail", "Validation error");
	json_object_object_add(o, "errors", req->errors ? req->errors :
	    json_object_new_array());
	req->errors = NULL;
	return dp_ok(res, 422, o);
}

int
dp_fail_db(struct dp_req *req, struct dp_res *res)
{
	/* db.c logged the cause; a lost database is a 503, the rest 500. */
	if (req->db == NULL || !dp_db_ping(req->db))
		return dp_fail(res, 503, "Service temporarily unavailable");
	return dp_fail(res, 500, "Internal server error");
}

int
dp_fail_internal(struct dp_req *req, struct dp_res *res, const char *why)
{
	(void)req;
	dp_error("internal error: %s", why);
	return dp_fail(res, 500, "Internal server error");
}

/* "Name: value\r\n" into a response's header block, without printf. */
static void
header_str(struct dp_buf *out, const char *name, const char *v)
{
	dp_buf_adds(out, name);
	dp_buf_adds(out, ": ");
	dp_buf_adds(out, v);
	dp_buf_adds(out, "\r\n");
}

static void
header_int(struct dp_buf *out, const char *name, long long v)
{
	dp_buf_adds(out, name);
	dp_buf_adds(out, ": ");
	dp_buf_addi(out, v);
	dp_buf_adds(out, "\r\n");
}

void
dp_res_header(struct dp_res *res, const char *name, const char *fmt, ...)
{
	va_list	 ap;

	dp_buf_adds(&res->headers, name);
	dp_buf_adds(&res->headers, ": ");
	va_start(ap, fmt);
	dp_buf_vprintf(&res->headers, fmt, ap);
	va_end(ap);
	dp_buf_adds(&res->headers, "\r\n");
}

void
dp_res_total(struct dp_res *res, int64_t total)
{
	header_int(&res->headers, "X-Total-Count", (long long)total);
}

/* ---- rate limits -------------------------------------------------------- */

int
dp_ratelimit_apply(struct dp_req *req, struct dp_res *res, int64_t limit,
    int64_t window, int64_t count)
{
	struct json_object	*o;
	int64_t			 now = (int64_t)dp_now(), start, remaining, after;

	start = now - now % window;
	remaining = limit - count;
	if (remaining < 0)
		remaining = 0;
	/* Report the limiter with the lowest remaining (tie: smaller limit). */
	if (!req->rl.set || remaining < req->rl.remaining ||
	    (remaining == req->rl.remaining && limit < req->rl.limit)) {
		req->rl.set = true;
		req->rl.limit = limit;
		req->rl.remaining = remaining;
		req->rl.reset = start + window;
	}
	if (count <= limit)
		return 0;
	after = start + window - now;
	if (after < 1)
		after = 1;
	req->rl.set = true;
	req->rl.limit = limit;
	req->rl.remaining = 0;
	req->rl.reset = start + window;
	o = json_object_new_object();
	dp_json_str(o, "detail", "Too many requests. Please try again later.");
	dp_json_int(o, "retry_after", after);
	dp_res_header(res, "Retry-After", "%lld", (long long)after);
	return dp_ok(res, 429, o);
}

void
dp_ratelimit_window(int64_t window, char start[24], char len[24])
{
	int64_t	 now = (int64_t)dp_now();

	snprintf(start, 24, "%lld", (long long)(now - now % window));
	snprintf(len, 24, "%lld", (long long)window);
}

int
dp_ratelimit(struct dp_req *req, struct dp_res *res, const char *key,
    int64_t limit, int64_t window)
{
	static const char sql[] =
	    "INSERT INTO rate_windows (key, window_start, window_len, count) "
	    "VALUES ($1, $2, $3, 1) ON CONFLICT (key, window_start) DO "
	    "UPDATE SET count = rate_windows.count + 1 RETURNING count";
	char		 ws[24], wl[24];
	const char	*p[3] = { key, ws, wl };
	PGresult	*r;
	int64_t		 count;

	if (req->db == NULL)
		return -1;
	dp_ratelimit_window(window, ws, wl);
	r = dp_db_exec(req->db, sql, 3, p);
	if (!dp_db_ok(r) || PQntuples(r) != 1) {
		PQclear(r);
		return -1;
	}
	count = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	PQclear(r);
	return dp_ratelimit_apply(req, res, limit, window, count);
}

/* ---- routing ----------------------------------------------------------- */

/*
 * Match path against pattern; {x} matches one non-empty segment.  The
 * score ranks literal segments first (literal beats parameter at the
 * first difference).  Returns -1 when it does not match.
 */
static long
route_match(const char *pat, const char *path, const char **params,
    size_t *np, struct dp_arena *a)
{
	long		 score = 0;
	const char	*pe, *se;
	size_t		 n = 0;

	for (;;) {
		if (*pat != '/' || *path != '/')
			return (*pat == '\0' && *path == '\0') ? score : -1;
		pat++;
		path++;
		pe = strchrnul(pat, '/');
		se = strchrnul(path, '/');
		if (se == path)
			return -1;	/* empty segment */
		score <<= 1;
		if (*pat == '{') {
			if (params != NULL && n < 8)
				params[n] = dp_arena_strndup(a, path,
				    (size_t)(se - path));
			n++;
		} else {
			if ((size_t)(pe - pat) != (size_t)(se - path) ||
			    memcmp(pat, path, (size_t)(se - path)) != 0)
				return -1;
			score |= 1;
		}
		pat = pe;
		path = se;
		if (np != NULL)
			*np = n;
	}
}

/* ---- the pipeline -------------------------------------------------------- */

static bool
origin_allowed(const char *origin)
{
	const char	*p = dp_cfg.web_cors_origins, *e;
	size_t		 n, ol;

	if (origin == NULL || p == NULL)
		return false;
	ol = strlen(origin);
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		e = p + strcspn(p, ",");
		n = (size_t)(e - p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if ((n == 1 && *p == '*') || (n == ol && n > 0 &&
		    memcmp(p, origin, n) == 0))
			return true;
		p = e;
	}
	return false;
}

static bool
ip_trusted(const char *ip)
{
	const char	*p = dp_cfg.web_trusted_proxies, *e;
	size_t		 n, l;

	if (ip == NULL || p == NULL)
		return false;
	l = strlen(ip);
	while (*p) {
		while (*p == ' ' || *p == ',')
			p++;
		e = p + strcspn(p, ",");
		n = (size_t)(e - p);
		while (n > 0 && p[n - 1] == ' ')
			n--;
		if (n == l && n > 0 && memcmp(p, ip, n) == 0)
			return true;
		p = e;
	}
	return false;
}

/* Client IP: the peer, or the forwarded address when the peer is trusted. */
static const char *
client_ip(struct dp_req *req)
{
	const char	*peer = dp_req_param(req, "REMOTE_ADDR");
	const char	*xff, *p, *start, *end;
	char		*ip;

	if (peer == NULL)
		peer = "unknown";
	if (!ip_trusted(peer))
		return peer;
	if ((xff = dp_req_header(req, "X-Forwarded-For")) != NULL &&
	    strlen(xff) < 1024) {
		/* The rightmost address that is not one of our proxies. */
		end = xff + strlen(xff);
		while (end > xff) {
			p = end;
			while (p > xff && p[-1] != ',')
				p--;
			start = p;
			while (start < end && *start == ' ')
				start++;
			ip = dp_arena_strndup(&req->arena, start,
			    (size_t)(end - start));
			ip[strcspn(ip, " ")] = '\0';
			if (*ip && (!ip_trusted(ip) || p == xff))
				return ip;
			end = p > xff ? p - 1 : xff;
		}
	}
	if ((p = dp_req_header(req, "X-Real-IP")) != NULL && *p &&
	    strlen(p) < 64)
		return p;
	return peer;
}

/*
 * Request ids need to be unique, not secret: a splitmix64 stream seeded
 * from getrandom once per process saves a system call per request.
 */
static void
request_id_bytes(unsigned char out[16])
{
	static uint64_t	 state;
	static bool	 seeded;	/* workers fork before their first request */
	uint64_t	 z;
	int		 i;

	if (!seeded) {
		dp_random(&state, sizeof(state));
		seeded = true;
	}
	for (i = 0; i < 2; i++) {
		z = (state += 0x9e3779b97f4a7c15ULL);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
		z ^= z >> 31;
		memcpy(out + 8 * i, &z, 8);
	}
}

static void
set_request_id(struct dp_req *req)
{
	const char	*h = dp_req_header(req, "X-Request-ID");
	unsigned char	 r[16];
	size_t		 i;

	if (h != NULL) {
		for (i = 0; h[i] && i <= 64; i++)
			if (!((h[i] >= 'a' && h[i] <= 'z') ||
			    (h[i] >= 'A' && h[i] <= 'Z') ||
			    (h[i] >= '0' && h[i] <= '9') || h[i] == '-'))
				break;
		if (i >= 1 && i <= 64 && h[i] == '\0') {
			memcpy(req->request_id, h, i + 1);
			return;
		}
	}
	request_id_bytes(r);
	dp_hex(req->request_id, r, sizeof(r));
}

static void
allow_header(struct dp_res *res, const struct dp_route *routes, size_t n,
    const char *pattern)
{
	bool		 has[DP_METHOD__MAX] = { false };
	struct dp_buf	 b = { 0 };
	size_t		 i;
	int		 m;

	for (i = 0; i < n; i++)
		if (strcmp(routes[i].pattern, pattern) == 0)
			has[routes[i].method] = true;
	if (has[DP_GET])
		has[DP_HEAD] = true;
	has[DP_OPTIONS] = true;
	for (m = 0; m < DP_METHOD__MAX; m++)
		if (has[m]) {
			if (b.len)
				dp_buf_adds(&b, ", ");
			dp_buf_adds(&b, dp_method_names[m]);
		}
	dp_res_header(res, "Allow", "%s", b.s);
	dp_buf_release(&b);
}

static bool
is_json_type(const char *ct)
{
	size_t	 n;

	if (ct == NULL)
		return true;
	while (*ct == ' ')
		ct++;
	if (*ct == '\0')
		return true;
	n = strcspn(ct, "; ");
	return n == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

static bool
is_form_type(const char *ct)
{
	size_t	 n;

	if (ct == NULL)
		return false;
	while (*ct == ' ')
		ct++;
	n = strcspn(ct, "; ");
	return n == 33 &&
	    strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
}

/* Turn an urlencoded body into a JSON object of strings. */
static struct json_object *
form_to_json(struct dp_req *req)
{
	struct json_object	*o = json_object_new_object();
	const char		*p, *amp, *eq;
	size_t			 vl, kl, dl, kdl;
	char			*k, *v;

	for (p = req->body_raw; p != NULL && *p; p = amp ? amp + 1 : NULL) {
		amp = strchr(p, '&');
		vl = amp ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', vl);
		kl = eq ? (size_t)(eq - p) : vl;
		k = dp_urldecode(&req->arena, p, kl, &kdl);
		if (strlen(k) != kdl)
			continue;	/* a NUL in the name: no field of ours */
		v = eq ? dp_urldecode(&req->arena, eq + 1, vl - kl - 1, &dl) :
		    dp_urldecode(&req->arena, "", 0, &dl);
		/* Invalid UTF-8 is a 400 here as in a JSON body (§0.2). */
		if (!dp_utf8_valid(k, strlen(k)) || !dp_utf8_valid(v, dl)) {
			json_object_put(o);
			return NULL;
		}
		/* The first occurrence counts. */
		if (*k && !json_object_object_get_ex(o, k, NULL))
			json_object_object_add(o, k,
			    json_object_new_string_len(v, (int)dl));
	}
	return o;
}

static void
validate_field(struct dp_req *req, const struct dp_field *f,
    struct dp_value *v)
{
	struct json_object	*j = NULL;
	enum dp_vcode		 c = DP_V_OK;
	const char		*s;
	char			*norm;
	size_t			 len;
	int64_t			 n;

	if (!json_object_object_get_ex(req->body, f->name, &j) || j == NULL) {
		if (f->flags & DP_F_REQUIRED)
			dp_req_invalid(req, f->name, DP_V_MISSING,
			    "field required");
		return;
	}
	switch (f->type) {
	case DP_FT_INT:
		if (!json_object_is_type(j, json_type_int)) {
			c = DP_V_TYPE_ERROR;
			break;
		}
		n = json_object_get_int64(j);
		if (n < f->min || n > f->max ||
		    (n == INT64_MAX && errno == ERANGE))
			c = DP_V_OUT_OF_RANGE;
		v->i = n;
		break;
	case DP_FT_BOOL:
		if (!json_object_is_type(j, json_type_boolean))
			c = DP_V_TYPE_ERROR;
		v->b = json_object_get_boolean(j);
		break;
	case DP_FT_OBJECT:
		if (!json_object_is_type(j, json_type_object))
			c = DP_V_TYPE_ERROR;
		v->j = j;
		break;
	case DP_FT_ARRAY:
		if (!json_object_is_type(j, json_type_array))
			c = DP_V_TYPE_ERROR;
		v->j = j;
		break;
	default:
		if (!json_object_is_type(j, json_type_string)) {
			c = DP_V_TYPE_ERROR;
			break;
		}
		s = json_object_get_string(j);
		len = (size_t)json_object_get_string_len(j);
		if (memchr(s, '\0', len) != NULL) {
			c = DP_V_INVALID_FORMAT;
			break;
		}
		if (len == 0 && (f->flags & DP_F_EMPTYNULL)) {
			v->cleared = true;
			return;
		}
		v->s = s;
		v->len = len;
		switch (f->type) {
		case DP_FT_TEXT:
			c = dp_check_text(s, len, f->min, f->max);
			break;
		case DP_FT_RAW:
			c = len > (size_t)f->max ? DP_V_TOO_LONG :
			    (len < (size_t)f->min ? DP_V_TOO_SHORT : DP_V_OK);
			break;
		case DP_FT_USERNAME:
			c = dp_check_username(s, len);
			break;
		case DP_FT_EMAIL:
			norm = dp_arena_alloc(&req->arena, len + 1);
			c = dp_check_email(s, len, norm);
			v->s = norm;
			v->len = strlen(norm);
			break;
		case DP_FT_PASSWORD:
			c = dp_check_password(s, len);
			break;
		case DP_FT_REGION:
			c = dp_check_region(s, len);
			break;
		case DP_FT_URL:
			c = dp_check_url(s, len);
			break;
		case DP_FT_CHOICE:
			c = dp_check_choice(s, len, f->choices);
			break;
		default:
			break;
		}
	}
	if (c != DP_V_OK)
		dp_req_invalid(req, f->name, c, NULL);
	else
		v->present = true;
}

/* Steps 8–9 of §0.9: content type, JSON, field validation. */
static int
read_input(struct dp_req *req, struct dp_res *res)
{
	const struct dp_route	*rt = req->route;
	const char		*ct = dp_req_param(req, "CONTENT_TYPE");
	struct json_object	*o = NULL;

	if (rt->fields == NULL && !(rt->flags & DP_BODY))
		return 0;
	if ((rt->flags & DP_FORM) && is_form_type(ct)) {
		if ((o = form_to_json(req)) == NULL)
			return dp_fail(res, 400,
			    "Invalid JSON in request body");
	} else if (!is_json_type(ct))
		return dp_fail(res, 415, "Unsupported Media Type");
	else if (req->body_len == 0)
		o = json_object_new_object();
	else if (dp_json_parse_value(req->body_raw, req->body_len,
	    (int)dp_cfg.limits_json_depth, &o) < 0)
		return dp_fail(res, 400, "Invalid JSON in request body");
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		dp_req_invalid(req, "body", DP_V_TYPE_ERROR,
		    "body must be a JSON object");
		return dp_fail_invalid(req, res);
	}
	req->body = o;
	if (rt->fields != NULL) {
		req->in = dp_fields_check(req, rt->fields);
		if (dp_req_has_errors(req))
			return dp_fail_invalid(req, res);
	}
	return 0;
}

struct dp_value *
dp_fields_check(struct dp_req *req, const struct dp_field *fields)
{
	struct dp_value	*in;
	size_t		 i, n = 0;

	while (fields[n].name != NULL)
		n++;
	in = dp_arena_alloc(&req->arena, (n + 1) * sizeof(*in));
	memset(in, 0, (n + 1) * sizeof(*in));
	for (i = 0; i < n && req->body != NULL; i++)
		validate_field(req, &fields[i], &in[i]);
	return in;
}

static int
read_body(struct dp_req *req)
{
	struct io	*io = req->io;
	FCGX_Request	*fr = io != NULL ? io->fr : NULL;
	const char	*cl = dp_req_param(req, "CONTENT_LENGTH");
	int64_t		 want = 0, max = dp_cfg.limits_body_max;
	char		*buf, drain[8192];
	size_t		 got = 0;
	int		 n;

	if (cl != NULL && *cl) {
		if (cl[strspn(cl, "0123456789")] != '\0')
			return 400;	/* not a number: the body is unknown */
		if (dp_parse_int64(cl, 0, INT64_MAX, &want) < 0)
			want = max + 1;	/* beyond 64 bits */
	}
	if (want > max) {
		/* Drain what the web server sends so it reads our answer. */
		while (want > 0) {
			n = fr ? FCGX_GetStr(drain, sizeof(drain), fr->in) :
			    (int)fread(drain, 1, sizeof(drain), stdin);
			if (n <= 0)
				break;
			want -= n;
		}
		return 413;
	}
	buf = dp_arena_alloc(&req->arena, (size_t)want + 1);
	while (got < (size_t)want) {
		n = fr ? FCGX_GetStr(buf + got, (int)((size_t)want - got),
		    fr->in) : (int)fread(buf + got, 1, (size_t)want - got, stdin);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	req->body_raw = buf;
	req->body_len = got;
	return 0;
}

static const char *
bearer(struct dp_req *req, bool *present)
{
	const char	*h = dp_req_header(req, "Authorization");

	*present = false;
	if (h == NULL)
		return NULL;
	while (*h == ' ')
		h++;
	if (strncasecmp(h, "Bearer ", 7) != 0)
		return NULL;
	h += 7;
	while (*h == ' ')
		h++;
	*present = true;
	return h;
}

static int
general_limit(struct dp_req *req)
{
	if (req->user == NULL)
		return (int)dp_cfg.limits_rate_anonymous;
	switch (req->user->plan) {
	case DP_PLAN_STARTER:
		return (int)dp_cfg.limits_rate_starter;
	case DP_PLAN_PRO:
		return (int)dp_cfg.limits_rate_pro;
	case DP_PLAN_ADMIN:
		return 0;
	default:
		return (int)dp_cfg.limits_rate_free;
	}
}

/*
 * The per-user limiters a route adds to the general one (§0.10): they
 * count every attempt of a caller with a valid token, admins exempt, at
 * the rate-limit step (§0.9), so before the body is even parsed.
 */
static int
route_limits(struct dp_req *req, struct dp_res *res, unsigned flags)
{
	static const struct {
		unsigned	 flag;
		const char	*prefix;
		const int64_t	*limit;
		int64_t		 window;
	} lims[] = {
		{ DP_ENVLIMIT, "envcreate", &dp_cfg.limits_rate_env_create,
		    3600 },
		{ DP_RESENDLIMIT, "resend", &dp_cfg.limits_rate_resend, 900 },
	};
	const char	*key;
	size_t		 i;
	int		 rc;

	if (req->user == NULL || req->user->plan == DP_PLAN_ADMIN)
		return 0;
	for (i = 0; i < DP_NITEMS(lims); i++) {
		if (!(flags & lims[i].flag))
			continue;
		key = dp_arena_printf(&req->arena, "%s:%s", lims[i].prefix,
		    req->user->id);
		if ((rc = dp_ratelimit(req, res, key, *lims[i].limit,
		    lims[i].window)) != 0)
			return rc;
	}
	return 0;
}

void
dp_http_rider(const struct dp_rider *r)
{
	rider = r;
}

void
dp_http_dispatch(struct dp_req *req, struct dp_res *res,
    const struct dp_route *routes, size_t n)
{
	const struct dp_route	*rt = NULL;
	const char		*m = dp_req_param(req, "REQUEST_METHOD");
	const char		*uri = dp_req_param(req, "DOCUMENT_URI");
	const char		*tok, *pattern = NULL;
	bool			 has_bearer, head = false, general, ride;
	char			*path, *key;
	long			 best = -1, s;
	size_t			 i, len;
	int			 method = -1, rc, lim;
	bool			 authorizer;

	set_request_id(req);
	dp_log_set_request(req->request_id);
	req->client_ip = client_ip(req);
	req->https = (tok = dp_req_param(req, "HTTPS")) != NULL &&
	    strcasecmp(tok, "on") == 0;
	if (origin_allowed(tok = dp_req_header(req, "Origin")))
		req->origin = tok;
	req->query = dp_req_param(req, "QUERY_STRING");
	/*
	 * lighttpd's FastCGI authorizer (etc/lighttpd/devpocket.conf) hands
	 * us the client's own WebSocket request with FCGI_ROLE=AUTHORIZER
	 * (libfcgi sets it from the record, never from a header).  It is
	 * answered by the pre-upgrade check, which takes the socket's URI
	 * from REQUEST_URI in that role; below, its 204 becomes the 200
	 * that tells the web server to go on (FastCGI §6.3).  Any other
	 * status goes to the client as it is.
	 */
	authorizer = (tok = dp_req_param(req, "FCGI_ROLE")) != NULL &&
	    strcmp(tok, "AUTHORIZER") == 0;
	if (authorizer)
		uri = "/api/v1/auth/authorize-ws";
	/* lighttpd sends no DOCUMENT_URI; after one of its rewrites (the
	 * aliases) REDIRECT_URI holds the rewritten path. */
	if (uri == NULL && (uri = dp_req_param(req, "REDIRECT_URI")) != NULL)
		uri = dp_arena_strndup(&req->arena, uri, strcspn(uri, "?"));
	if (uri == NULL) {
		uri = dp_req_param(req, "REQUEST_URI");
		if (uri == NULL)
			uri = "/";
		uri = dp_arena_strndup(&req->arena, uri, strcspn(uri, "?"));
	}
	/* One trailing slash is the same route (§0.1). */
	path = dp_arena_strdup(&req->arena, uri);
	len = strlen(path);
	if (len > 1 && path[len - 1] == '/')
		path[len - 1] = '\0';
	req->path = path;
	res->route_label = "unmatched";

	for (i = 0; m != NULL && i < DP_METHOD__MAX; i++)
		if (strcmp(m, dp_method_names[i]) == 0)
			method = (int)i;
	if (method == DP_HEAD) {
		head = true;
		method = DP_GET;
	}
	req->method = head ? DP_HEAD : (enum dp_method)(method < 0 ? 0 : method);
	req->method_other = method < 0;

	/* 1. route */
	for (i = 0; i < n; i++) {
		s = route_match(routes[i].pattern, path, NULL, NULL, NULL);
		if (s > best) {
			best = s;
			pattern = routes[i].pattern;
		}
	}
	if (pattern == NULL) {
		dp_fail(res, 404, "Not Found");
		return;
	}
	res->route_label = pattern;
	/* 2. method, 3. OPTIONS */
	if (method == DP_OPTIONS) {
		allow_header(res, routes, n, pattern);
		if (req->origin != NULL &&
		    dp_req_header(req, "Access-Control-Request-Method")) {
			dp_res_header(res, "Access-Control-Allow-Methods",
			    "GET, POST, PUT, DELETE, OPTIONS");
			dp_res_header(res, "Access-Control-Allow-Headers",
			    "Authorization, Content-Type, X-Request-ID, "
			    "X-AI-API-Key, X-Device-ID, If-Match");
			dp_res_header(res, "Access-Control-Max-Age", "86400");
		}
		dp_no_content(res);
		return;
	}
	for (i = 0; i < n; i++)
		if (strcmp(routes[i].pattern, pattern) == 0 &&
		    (int)routes[i].method == method)
			rt = &routes[i];
	if (rt == NULL) {
		allow_header(res, routes, n, pattern);
		dp_fail(res, 405, "Method Not Allowed");
		return;
	}
	req->route = rt;
	route_match(rt->pattern, path, req->params, &req->nparams,
	    &req->arena);

	/* 4. body size */
	switch (read_body(req)) {
	case 413:
		dp_fail(res, 413, "Request body too large");
		return;
	case 400:
		dp_fail(res, 400, "Invalid Content-Length header");
		return;
	}
	req->db = dp_http_db();

	/*
	 * Identify the caller (401 is decided after the rate limit).  The
	 * same statement counts the user's general window when the route
	 * uses it, and reads the handler's first page when it has a rider
	 * (struct dp_rider), so an authenticated request costs one round
	 * trip.
	 */
	tok = bearer(req, &has_bearer);
	general = !(rt->flags & (DP_NOLIMIT | DP_AUTHLIMIT));
	if (has_bearer && req->db != NULL) {
		ride = rider != NULL && rider->handler == rt->handler &&
		    (req->query == NULL || req->query[0] == '\0');
		if (dp_auth_bearer(req, tok, general, ride ? rider : NULL,
		    &req->user) < 0 &&
		    req->db && !dp_db_ping(req->db)) {
			dp_fail(res, 503, "Service temporarily unavailable");
			return;
		}
	}

	/* 5. rate limits */
	if (!(rt->flags & DP_NOLIMIT)) {
		if (req->db == NULL) {
			dp_fail(res, 503, "Service temporarily unavailable");
			return;
		}
		if (rt->flags & DP_AUTHLIMIT) {
			key = dp_arena_printf(&req->arena, "ip:auth:%s",
			    req->client_ip);
			rc = dp_ratelimit(req, res, key,
			    dp_cfg.limits_rate_auth_ip, 60);
		} else if ((lim = general_limit(req)) > 0 && req->user &&
		    req->user->window_count > 0) {
			rc = dp_ratelimit_apply(req, res, lim, 60,
			    req->user->window_count);
		} else if (lim > 0) {
			key = req->user ? dp_arena_printf(&req->arena,
			    "user:%s", req->user->id) :
			    dp_arena_printf(&req->arena, "ip:%s",
			    req->client_ip);
			rc = dp_ratelimit(req, res, key, lim, 60);
		} else
			rc = 0;
		if (rc == 0)
			rc = route_limits(req, res, rt->flags);
		if (rc < 0) {
			dp_fail_db(req, res);
			return;
		}
		if (rc > 0)
			return;
	}

	/* 6. authentication, 7. verified-email gate and role */
	if (rt->flags & (DP_AUTH | DP_ADMIN)) {
		if (!has_bearer) {
			dp_fail(res, 401, "Not authenticated");
			return;
		}
		if (req->user == NULL) {
			if (req->db == NULL) {
				dp_fail(res, 503,
				    "Service temporarily unavailable");
				return;
			}
			dp_fail(res, 401, "Could not validate credentials");
			return;
		}
		if (dp_cfg.auth_require_verified_email &&
		    !req->user->verified && !(rt->flags & DP_UNVERIFIED)) {
			dp_fail(res, 403, "Please verify your email address");
			return;
		}
		if ((rt->flags & DP_ADMIN) && req->user->plan != DP_PLAN_ADMIN) {
			dp_fail(res, 403, "Admin access required");
			return;
		}
	}

	/* 8. content type and JSON, 9. validation */
	if (read_input(req, res) != 0)
		return;
	rt->handler(req, res);
	if (res->status == 0)
		dp_fail_internal(req, res, "handler set no status");
	else if (authorizer && res->status == 204)
		res->status = 200;
}

/* ---- output ------------------------------------------------------------- */

static const char *
status_text(int status)
{
	char	 s[8];
	size_t	 i;

	snprintf(s, sizeof(s), "%d", status);
	for (i = 0; i < DP_NITEMS(status_texts); i++)
		if (strcmp(status_texts[i][0], s) == 0)
			return status_texts[i][1];
	return "Unknown";
}

/* Render status line, headers and body into out. */
static void
render(struct dp_req *req, struct dp_res *res, struct dp_buf *out)
{
	const char	*body = NULL;
	size_t		 blen = 0;

	/* Error bodies carry the request id. */
	if (res->status >= 400 && res->json != NULL &&
	    json_object_object_get_ex(res->json, "detail", NULL))
		dp_json_str(res->json, "request_id", req->request_id);
	/* Without printf: this runs for every response. */
	dp_buf_adds(out, "Status: ");
	dp_buf_addi(out, res->status);
	dp_buf_addc(out, ' ');
	dp_buf_adds(out, status_text(res->status));
	dp_buf_adds(out, "\r\n");
	if (res->status != 204) {
		if (res->json != NULL) {
			body = json_object_to_json_string_length(res->json,
			    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
			    &blen);
			dp_buf_adds(out, "Content-Type: application/json\r\n");
		} else {
			body = res->body.s ? res->body.s : "";
			blen = res->body.len;
			header_str(out, "Content-Type", res->content_type ?
			    res->content_type : "application/json");
		}
		header_int(out, "Content-Length", (long long)blen);
	}
	header_str(out, "X-Request-ID", req->request_id);
	dp_buf_adds(out,
	    "X-Content-Type-Options: nosniff\r\n"
	    "X-Frame-Options: DENY\r\n"
	    "X-XSS-Protection: 0\r\n"
	    "Content-Security-Policy: default-src 'none'; "
	    "frame-ancestors 'none'\r\n"
	    "Referrer-Policy: no-referrer\r\n");
	if ((req->path != NULL && dp_startswith(req->path, "/api/")) ||
	    (req->route && (req->route->flags & DP_NOCACHE)))
		dp_buf_adds(out, "Cache-Control: no-store\r\n");
	if (req->https)
		dp_buf_adds(out, "Strict-Transport-Security: max-age=31536000; "
		    "includeSubDomains\r\n");
	if (res->status == 401)
		dp_buf_adds(out, "WWW-Authenticate: Bearer\r\n");
	if (req->origin != NULL) {
		dp_buf_printf(out, "Access-Control-Allow-Origin: %s\r\n"
		    "Access-Control-Allow-Credentials: true\r\n"
		    "Vary: Origin\r\n"
		    "Access-Control-Expose-Headers: X-Request-ID, "
		    "X-Total-Count, X-RateLimit-Limit, X-RateLimit-Remaining, "
		    "X-RateLimit-Reset, Retry-After, ETag\r\n", req->origin);
	}
	if (req->rl.set) {
		header_int(out, "X-RateLimit-Limit", (long long)req->rl.limit);
		header_int(out, "X-RateLimit-Remaining",
		    (long long)req->rl.remaining);
		header_int(out, "X-RateLimit-Reset", (long long)req->rl.reset);
	}
	if (res->headers.len)
		dp_buf_add(out, res->headers.s, res->headers.len);
	dp_buf_adds(out, "\r\n");
	if (body != NULL && blen > 0 && req->method != DP_HEAD)
		dp_buf_add(out, body, blen);
}

static void
request_release(struct dp_req *req, struct dp_res *res)
{
	if (req->user != NULL)
		PQclear(req->user->row);
	json_object_put(req->body);
	json_object_put(req->errors);
	json_object_put(res->json);
	dp_buf_release(&res->body);
	dp_buf_release(&res->headers);
	if (req->db != NULL)
		dp_db_rollback(req->db);	/* never leave a transaction open */
	dp_log_set_request(NULL);
}

static void
handle(struct io *io, const struct dp_route *routes, size_t n,
    struct dp_arena *arena, struct dp_buf *out)
{
	struct dp_req	 req;
	struct dp_res	 res;
	double		 t0 = dp_mono(), ms;
	const char	*method;

	memset(&req, 0, sizeof(req));
	memset(&res, 0, sizeof(res));
	req.arena = *arena;
	req.io = io;
	dp_http_dispatch(&req, &res, routes, n);
	dp_buf_reset(out);
	render(&req, &res, out);
	if (io->fr != NULL)
		FCGX_PutStr(out->s, (int)out->len, io->fr->out);
	else {
		fwrite(out->s, 1, out->len, stdout);
		fflush(stdout);
	}
	ms = (dp_mono() - t0) * 1000.0;
	/* A method not known is none of them: not counted as GET. */
	method = req.method_other ? "OTHER" : dp_method_names[req.method];
	dp_metrics_observe(res.route_label, method, res.status, ms / 1000.0);
	dp_log_access(method, res.route_label, res.status, ms,
	    req.user ? req.user->id : NULL, req.client_ip);
	request_release(&req, &res);
	*arena = req.arena;
	dp_arena_reset(arena);
}

/* ---- process model ------------------------------------------------------ */

struct dp_db *
dp_http_db(void)
{
	static int64_t	 last_try;
	struct dp_err	 err = { 0 };
	int64_t		 now = dp_mono_ms();

	if (db != NULL)
		return db;
	if (last_try != 0 && now - last_try < 1000)
		return NULL;
	last_try = now;
	if ((db = dp_db_open(dp_cfg.db_url, &err)) == NULL)
		dp_error("%s", err.msg);
	return db;
}

static void
on_term(int sig)
{
	(void)sig;
	stopping = 1;
	FCGX_ShutdownPending();
	if (!busy)
		_exit(0);
}

static void
worker_loop(int sock, const struct dp_route *routes, size_t n)
{
	FCGX_Request	 fr;
	struct io	 io = { &fr };
	struct dp_arena	 arena = { 0 };
	struct dp_buf	 out = { 0 };

	FCGX_InitRequest(&fr, sock, 0);
	(void)dp_http_db();
	while (!stopping) {
		busy = 0;
		if (stopping)
			break;
		if (FCGX_Accept_r(&fr) < 0) {
			if (stopping)
				break;
			continue;
		}
		busy = 1;
		handle(&io, routes, n, &arena, &out);
		/*
		 * Input read to its end (no body, or all of it): close at once.
		 * libfcgi's close otherwise shuts down, then waits (up to 2 s)
		 * for the web server to close first, the worker idle meanwhile:
		 * a third of the time of a /health.  A body left unread (a 404,
		 * a 413) keeps that lingering close, which drains it, so that
		 * the web server is not reset while it still sends.
		 */
		if (FCGX_GetChar(fr.in) == EOF && FCGX_HasSeenEOF(fr.in))
			(void)FCGX_Detach(&fr);
		FCGX_Finish_r(&fr);
	}
	dp_arena_release(&arena);
	dp_buf_release(&out);
	dp_db_free(db);
	db = NULL;
}

static volatile sig_atomic_t parent_stop;

static void
on_parent_term(int sig)
{
	(void)sig;
	parent_stop = 1;
}

static pid_t
spawn_worker(int sock, const struct dp_route *routes, size_t n)
{
	struct sigaction	 sa;
	pid_t			 pid = fork();

	if (pid != 0)
		return pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	dp_metrics_open(program);
	worker_loop(sock, routes, n);
	_exit(0);
}

static void
usage(const char *prog)
{
	fprintf(stderr, "usage: %s [--config PATH] [--socket PATH] "
	    "[--workers N]\n", prog);
}

int
dp_serve(int argc, char *argv[], const char *prog,
    const struct dp_route *routes, size_t n)
{
	const char		*cfgpath = NULL, *sockpath = NULL;
	struct dp_err		 err = { 0 };
	struct sigaction	 sa;
	struct io		 io = { NULL };
	struct dp_arena		 arena = { 0 };
	struct dp_buf		 out = { 0 };
	int64_t			 workers = -1;
	pid_t			*pids;
	const char		*lf;
	int			 i, sock = 0, status;
	pid_t			 pid;

	program = prog;
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
			cfgpath = argv[++i];
		else if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc)
			sockpath = argv[++i];
		else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
			if (dp_parse_int64(argv[++i], 1, 256, &workers) < 0) {
				usage(argv[0]);
				return 2;
			}
		} else {
			usage(argv[0]);
			return 2;
		}
	}
	/* A file named (--config, DEVPOCKET_CONF) must be there. */
	if (dp_config_load(&dp_cfg, cfgpath ? cfgpath :
	    dp_config_default_path(), cfgpath != NULL ||
	    (getenv("DEVPOCKET_CONF") != NULL && *getenv("DEVPOCKET_CONF")),
	    &err) < 0) {
		fprintf(stderr, "%s: %s\n", prog, err.msg);
		return 1;
	}
	dp_log_init(prog, dp_cfg.web_log_format, dp_cfg.web_log_level);
	if (workers < 0)
		workers = dp_cfg.web_workers;
	if (workers <= 0)
		workers = sysconf(_SC_NPROCESSORS_ONLN) > 0 ?
		    sysconf(_SC_NPROCESSORS_ONLN) : 1;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	FCGX_Init();
	if (sockpath != NULL) {
		unlink(sockpath);
		if ((sock = FCGX_OpenSocket(sockpath, 128)) < 0) {
			dp_error("cannot listen on %s: %s", sockpath,
			    strerror(errno));
			return 1;
		}
		chmod(sockpath, 0660);
	} else if ((lf = getenv("LISTEN_FDS")) != NULL && atoi(lf) >= 1)
		sock = 3;
	else if (FCGX_IsCGI()) {
		/* Plain CGI: one request on stdin/stdout. */
		dp_metrics_open(prog);
		handle(&io, routes, n, &arena, &out);
		dp_arena_release(&arena);
		dp_buf_release(&out);
		dp_db_free(db);
		return 0;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_parent_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	pids = dp_xcalloc((size_t)workers, sizeof(*pids));
	for (i = 0; i < workers; i++)
		pids[i] = spawn_worker(sock, routes, n);
	dp_info("%s serving with %lld workers", prog, (long long)workers);
	while (!parent_stop) {
		pid = waitpid(-1, &status, 0);
		if (pid < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (i = 0; i < workers; i++)
			if (pids[i] == pid && !parent_stop) {
				dp_warn("worker %d exited (status %d), "
				    "restarting", (int)pid, status);
				sleep(0);
				pids[i] = spawn_worker(sock, routes, n);
			}
	}
	for (i = 0; i < workers; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	while (waitpid(-1, &status, 0) > 0 || errno == EINTR)
		;
	if (sockpath != NULL)
		unlink(sockpath);
	free(pids);
	dp_info("%s stopped", prog);
	return 0;
}
