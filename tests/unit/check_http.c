/* tests/unit/check_http.c: the request pipeline in memory (CGI variables) */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "http.h"

static int
h_echo(struct dp_req *req, struct dp_res *res)
{
	struct json_object	*o = json_object_new_object();
	size_t			 i;

	dp_json_str(o, "path", req->path);
	for (i = 0; i < req->nparams; i++)
		dp_json_str(o, i == 0 ? "p0" : "p1", req->params[i]);
	if (req->in != NULL && DP_IN(req, 0)->present)
		dp_json_str(o, "name", DP_IN(req, 0)->s);
	if (req->in != NULL && DP_IN(req, 1)->present)
		dp_json_int(o, "n", DP_IN(req, 1)->i);
	return dp_ok(res, 200, o);
}

static int
h_literal(struct dp_req *req, struct dp_res *res)
{
	(void)req;
	return dp_ok(res, 200, json_object_new_string("literal"));
}

static const struct dp_field fields[] = {
	{ "name", DP_FT_TEXT, DP_F_REQUIRED, 1, 5, NULL },
	{ "n", DP_FT_INT, 0, 1, 10, NULL },
	{ "mail", DP_FT_EMAIL, 0, 0, 0, NULL },
	{ NULL, 0, 0, 0, 0, NULL }
};

static const struct dp_route routes[] = {
	{ DP_GET, "/api/v1/x", h_echo, NULL, DP_NOLIMIT },
	{ DP_POST, "/api/v1/x", h_echo, fields, DP_NOLIMIT | DP_FORM },
	{ DP_GET, "/api/v1/x/{id}", h_echo, NULL, DP_NOLIMIT },
	{ DP_DELETE, "/api/v1/x/{id}", h_echo, NULL, DP_NOLIMIT },
	{ DP_GET, "/api/v1/x/special", h_literal, NULL, DP_NOLIMIT },
	{ DP_GET, "/api/v1/x/{id}/y/{k}", h_echo, NULL, DP_NOLIMIT },
	{ DP_GET, "/api/v1/private", h_echo, NULL, DP_AUTH | DP_NOLIMIT },
};

static struct dp_req	 req;
static struct dp_res	 res;
static char		 bodyfile[] = "/tmp/dp-check-http-XXXXXX";

static void
setup(void)
{
	dp_config_defaults(&dp_cfg);
	free(dp_cfg.db_url);
	dp_cfg.db_url = strdup("host=/nonexistent/socket dbname=none "
	    "connect_timeout=1");
	unsetenv("CONTENT_TYPE");
	unsetenv("CONTENT_LENGTH");
	unsetenv("QUERY_STRING");
	unsetenv("HTTP_ORIGIN");
	unsetenv("HTTP_AUTHORIZATION");
	unsetenv("HTTP_X_REQUEST_ID");
	unsetenv("HTTP_ACCESS_CONTROL_REQUEST_METHOD");
}

static void
teardown(void)
{
	dp_config_release(&dp_cfg);
}

/* Run one request; body (may be NULL) goes through stdin. */
static const char	*clen;	/* run's Content-Length, NULL = the body's */

static void
run(const char *method, const char *uri, const char *ctype, const char *body,
    size_t blen)
{
	char	 n[32];
	int	 fd;

	memset(&req, 0, sizeof(req));
	json_object_put(res.json);
	dp_buf_release(&res.headers);
	memset(&res, 0, sizeof(res));
	/* req.io NULL: CGI variables from the environment, body on stdin. */
	setenv("REQUEST_METHOD", method, 1);
	setenv("DOCUMENT_URI", uri, 1);
	setenv("REMOTE_ADDR", "192.0.2.1", 1);
	if (ctype)
		setenv("CONTENT_TYPE", ctype, 1);
	else
		unsetenv("CONTENT_TYPE");
	if (body != NULL) {
		strcpy(bodyfile, "/tmp/dp-check-http-XXXXXX");
		fd = mkstemp(bodyfile);
		ck_assert_int_ge(fd, 0);
		ck_assert_int_eq(write(fd, body, blen), (ssize_t)blen);
		close(fd);
		ck_assert_ptr_nonnull(freopen(bodyfile, "r", stdin));
		unlink(bodyfile);
		snprintf(n, sizeof(n), "%zu", blen);
		setenv("CONTENT_LENGTH", clen != NULL ? clen : n, 1);
	} else
		unsetenv("CONTENT_LENGTH");
	dp_http_dispatch(&req, &res, routes, DP_NITEMS(routes));
}

static const char *
jstr(const char *key)
{
	struct json_object	*v;

	if (res.json == NULL || !json_object_object_get_ex(res.json, key, &v))
		return NULL;
	return json_object_get_string(v);
}

static void
done(void)
{
	json_object_put(req.body);
	json_object_put(req.errors);
	req.body = req.errors = NULL;
	dp_arena_release(&req.arena);
}

START_TEST(test_http_routing)
{
	run("GET", "/api/v1/x", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("path"), "/api/v1/x");
	done();
	run("GET", "/api/v1/x/", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 200);
	done();
	run("GET", "/api/v1/x//", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 404);
	done();
	run("GET", "/api/v1//x", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 404);
	ck_assert_str_eq(jstr("detail"), "Not Found");
	done();
	run("GET", "/API/v1/x", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 404);
	done();
	run("GET", "/api/v1/x/abc", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("p0"), "abc");
	done();
	run("GET", "/api/v1/x/special", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(json_object_get_string(res.json), "literal");
	done();
	run("GET", "/api/v1/x/a/y/b/", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("p1"), "b");
	done();
	run("GET", "/nope", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 404);
	done();
}
END_TEST

START_TEST(test_http_methods)
{
	run("PUT", "/api/v1/x/abc", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 405);
	ck_assert_str_eq(jstr("detail"), "Method Not Allowed");
	ck_assert_ptr_nonnull(strstr(res.headers.s,
	    "Allow: GET, HEAD, DELETE, OPTIONS"));
	done();
	/* A literal segment is never read as an id, even for 405. */
	run("DELETE", "/api/v1/x/special", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 405);
	ck_assert_ptr_nonnull(strstr(res.headers.s, "Allow: GET, HEAD, OPTIONS"));
	done();
	run("BREW", "/api/v1/x", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 405);
	done();
	run("HEAD", "/api/v1/x", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 200);
	ck_assert_int_eq(req.method, DP_HEAD);
	done();
	run("OPTIONS", "/api/v1/x", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 204);
	ck_assert_ptr_nonnull(strstr(res.headers.s,
	    "Allow: GET, HEAD, POST, OPTIONS"));
	ck_assert_ptr_null(strstr(res.headers.s, "Access-Control"));
	done();
	setenv("HTTP_ORIGIN", "http://localhost:3000", 1);
	setenv("HTTP_ACCESS_CONTROL_REQUEST_METHOD", "POST", 1);
	run("OPTIONS", "/api/v1/x", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 204);
	ck_assert_ptr_nonnull(strstr(res.headers.s,
	    "Access-Control-Max-Age: 86400"));
	ck_assert_str_eq(req.origin, "http://localhost:3000");
	done();
	setenv("HTTP_ORIGIN", "http://evil.example", 1);
	run("OPTIONS", "/api/v1/x", NULL, NULL, 0);
	ck_assert_ptr_null(req.origin);
	ck_assert_ptr_null(strstr(res.headers.s, "Access-Control"));
	done();
	run("OPTIONS", "/nope", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 404);
	done();
}
END_TEST

START_TEST(test_http_bodies)
{
	static const char deep[] =
	    "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}";
	char	*big;

	run("POST", "/api/v1/x", "application/json", "{\"name\":\"abc\"}", 14);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("name"), "abc");
	done();
	run("POST", "/api/v1/x", "application/json; charset=utf-8",
	    "{\"name\":\"ab\",\"n\":3,\"extra\":[1]}", 31);
	ck_assert_int_eq(res.status, 200);
	done();
	run("POST", "/api/v1/x", "text/plain", "{\"name\":\"abc\"}", 14);
	ck_assert_int_eq(res.status, 415);
	ck_assert_str_eq(jstr("detail"), "Unsupported Media Type");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":", 8);
	ck_assert_int_eq(res.status, 400);
	ck_assert_str_eq(jstr("detail"), "Invalid JSON in request body");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"\xff\"}", 11);
	ck_assert_int_eq(res.status, 400);
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"a\"}\0junk", 17);
	ck_assert_int_eq(res.status, 400);
	done();
	run("POST", "/api/v1/x", NULL, deep, strlen(deep));
	ck_assert_int_eq(res.status, 400);
	done();
	run("POST", "/api/v1/x", NULL, "[1,2]", 5);
	ck_assert_int_eq(res.status, 422);
	done();
	run("POST", "/api/v1/x", NULL, "", 0);
	ck_assert_int_eq(res.status, 422);	/* {} → name missing */
	done();
	big = malloc(1048577);
	memset(big, ' ', 1048577);
	run("POST", "/api/v1/x", NULL, big, 1048577);
	ck_assert_int_eq(res.status, 413);
	ck_assert_str_eq(jstr("detail"), "Request body too large");
	done();
	big[0] = '{';
	memcpy(big + 1048576 - 14, "\"name\":\"abc\"}", 13);
	big[1048575] = ' ';
	run("POST", "/api/v1/x", NULL, big, 1048576);
	ck_assert_int_eq(res.status, 200);
	done();
	free(big);
	/* A length that is no number is a bad request; a number too big for
	 * 64 bits is still a body too large. */
	clen = "12abc";
	run("POST", "/api/v1/x", NULL, "{\"name\":\"abc\"}", 14);
	ck_assert_int_eq(res.status, 400);
	ck_assert_str_eq(jstr("detail"), "Invalid Content-Length header");
	done();
	clen = "-1";
	run("POST", "/api/v1/x", NULL, "{\"name\":\"abc\"}", 14);
	ck_assert_int_eq(res.status, 400);
	done();
	clen = "-0";
	run("POST", "/api/v1/x", NULL, "{\"name\":\"abc\"}", 14);
	ck_assert_int_eq(res.status, 400);
	done();
	clen = "99999999999999999999999";
	run("POST", "/api/v1/x", NULL, "{\"name\":\"abc\"}", 14);
	ck_assert_int_eq(res.status, 413);
	done();
	clen = NULL;
	run("POST", "/api/v1/x", "application/x-www-form-urlencoded",
	    "name=a%20b&name=zz", 18);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("name"), "a b");
	done();
}
END_TEST

/* What json-c alone lets through (§0.2: invalid syntax or UTF-8 → 400). */
START_TEST(test_http_strict_json)
{
	static const char *const bad[] = {
		"{\"name\":\"\xc0\x80\"}",		/* overlong NUL */
		"{\"name\":\"a\xe0\x80\xaf\"}",	/* overlong "/" */
		"{\"name\":\"\xed\xa0\x80\"}",	/* surrogate */
		"{\"name\":\"\xf4\x90\x80\x80\"}",	/* above U+10FFFF */
		"{\"name\":\"abc\",\"\xc0\x80\":1}",	/* in a key */
		"{\"name\":\"abc\",\"x\":[\"\xed\xbf\xbf\"]}",
		"{\"name\":\"abc\",\"x\":NaN}",
		"{\"name\":\"abc\",\"x\":Infinity}",
		"{\"name\":\"abc\",\"x\":-Infinity}",
		"{\"name\":\"abc\",\"x\":1.}",
		"{\"name\":\"abc\",\"x\":1.e5}",
		"{\"name\":\"abc\",\"x\":{\"y\":[2.5,-1.}]}",
		/* json-c would read these keys as "name" and "a" */
		"{\"name\\u0000x\":\"abc\"}",
		"{\"name\":\"abc\",\"x\":{\"a\\u0000\" : 1}}",
		/* json-c reads single quotes, even when strict */
		"{'name':\"abc\"}",
		"{\"name\":'abc'}",
		"{'name\\u0000x':\"abc\"}",
		"{'a\"':1,\"name\\u0000\":\"abc\"}",
		/* found by fuzzing: raw control characters in strings... */
		"{\"name\":\"x\001y\"}",
		"{\"name\":\"tab\there\"}",
		"{\"name\":\"abc\",\"x\":{\"a\034u0000\" : 1}}",
		"{\"na\nme\":\"abc\"}",
		/* ...and integers with a leading zero */
		"{\"name\":00}",
		"{\"name\":\"abc\",\"x\":[1,-01]}",
		"{\"name\":\"abc\",\"x\":012.5}",
	};
	static const char *const good[] = {
		"{\"name\":\"\xf0\x9f\x98\x80\"}",	/* U+1F600 */
		"{\"name\":\"\xef\xbf\xbd\\ud800\"}",	/* lone \\u: U+FFFD */
		"{\"name\":\"abc\",\"x\":[1.5,-0.5e-3,1E+2,0.0,-0,2e9]}",
		/* a backslash, then "u0000"; a NUL in a value is the field's */
		"{\"name\":\"abc\",\"\\\\u0000k\":\"\\u0000\"}",
		"{\"name\":\"it's\"}",	/* a quote inside a string */
		"{\"name\":\"007\",\"x\":[0,-0,0.5,10,100,-0.0e0]}",
		"{\"name\":\"\\t\\u001f\x7f\"}",	/* escaped; DEL */
	};
	size_t	 i;

	for (i = 0; i < DP_NITEMS(bad); i++) {
		run("POST", "/api/v1/x", NULL, bad[i], strlen(bad[i]));
		ck_assert_msg(res.status == 400, "bad[%zu]: %d", i,
		    res.status);
		ck_assert_str_eq(jstr("detail"), "Invalid JSON in request body");
		done();
	}
	for (i = 0; i < DP_NITEMS(good); i++) {
		run("POST", "/api/v1/x", NULL, good[i], strlen(good[i]));
		ck_assert_msg(res.status == 200, "good[%zu]: %d", i,
		    res.status);
		done();
	}
	/* null is a value, not an object: 422 like [1,2] (was 400). */
	run("POST", "/api/v1/x", NULL, " null\n", 6);
	ck_assert_int_eq(res.status, 422);
	done();
	run("POST", "/api/v1/x", NULL, "nul", 3);
	ck_assert_int_eq(res.status, 400);
	done();
	/* Form values and keys are checked as well. */
	run("POST", "/api/v1/x", "application/x-www-form-urlencoded",
	    "name=%FF", 8);
	ck_assert_int_eq(res.status, 400);
	done();
	run("POST", "/api/v1/x", "application/x-www-form-urlencoded",
	    "name=abc&%C0%80=1", 17);
	ck_assert_int_eq(res.status, 400);
	done();
	run("POST", "/api/v1/x", "application/x-www-form-urlencoded",
	    "name%00x=zz&name=abc", 20);	/* not "name" */
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("name"), "abc");
	done();
	run("POST", "/api/v1/x", "application/x-www-form-urlencoded",
	    "name=%E2%82%AC", 14);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("name"), "\xe2\x82\xac");
	done();
}
END_TEST

static struct json_object *
first_error(void)
{
	struct json_object	*e;

	ck_assert_int_eq(res.status, 422);
	ck_assert_str_eq(jstr("detail"), "Validation error");
	ck_assert(json_object_object_get_ex(res.json, "errors", &e));
	ck_assert_int_ge(json_object_array_length(e), 1);
	return json_object_array_get_idx(e, 0);
}

static const char *
ecode(void)
{
	struct json_object	*c;

	ck_assert(json_object_object_get_ex(first_error(), "code", &c));
	return json_object_get_string(c);
}

START_TEST(test_http_validation)
{
	run("POST", "/api/v1/x", NULL, "{\"name\":null}", 13);
	ck_assert_str_eq(ecode(), "missing");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":12}", 11);
	ck_assert_str_eq(ecode(), "type_error");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"abcdef\"}", 17);
	ck_assert_str_eq(ecode(), "too_long");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"\"}", 11);
	ck_assert_str_eq(ecode(), "too_short");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"a\\u0000b\"}", 19);
	ck_assert_str_eq(ecode(), "invalid_format");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"ab\",\"n\":1.5}", 21);
	ck_assert_str_eq(ecode(), "type_error");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"ab\",\"n\":\"3\"}", 21);
	ck_assert_str_eq(ecode(), "type_error");
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"ab\",\"n\":11}", 20);
	ck_assert_str_eq(ecode(), "out_of_range");
	done();
	run("POST", "/api/v1/x", NULL,
	    "{\"name\":\"ab\",\"n\":99999999999999999999999}", 41);
	ck_assert_int_ne(res.status, 200);
	done();
	run("POST", "/api/v1/x", NULL, "{\"name\":\"ab\",\"mail\":\"nope\"}", 27);
	ck_assert_str_eq(ecode(), "invalid_email");
	done();
	/* Duplicate keys: the last one wins. */
	run("POST", "/api/v1/x", NULL, "{\"name\":\"toolong\",\"name\":\"ok\"}",
	    30);
	ck_assert_int_eq(res.status, 200);
	ck_assert_str_eq(jstr("name"), "ok");
	done();
}
END_TEST

START_TEST(test_http_auth_required)
{
	run("GET", "/api/v1/private", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 401);
	ck_assert_str_eq(jstr("detail"), "Not authenticated");
	done();
	setenv("HTTP_AUTHORIZATION", "Basic dXNlcjpwYXNz", 1);
	run("GET", "/api/v1/private", NULL, NULL, 0);
	ck_assert_int_eq(res.status, 401);
	ck_assert_str_eq(jstr("detail"), "Not authenticated");
	done();
}
END_TEST

START_TEST(test_http_request_id)
{
	setenv("HTTP_X_REQUEST_ID", "abc-123", 1);
	run("GET", "/api/v1/x", NULL, NULL, 0);
	ck_assert_str_eq(req.request_id, "abc-123");
	done();
	setenv("HTTP_X_REQUEST_ID", "bad id!", 1);
	run("GET", "/api/v1/x", NULL, NULL, 0);
	ck_assert_int_eq(strlen(req.request_id), 32);
	done();
	unsetenv("HTTP_X_REQUEST_ID");
}
END_TEST

START_TEST(test_http_query)
{
	int64_t	 l, o;
	bool	 b;

	setenv("QUERY_STRING", "limit=5&limit=7&flag=TRUE&x=%zz", 1);
	run("GET", "/api/v1/x", NULL, NULL, 0);
	ck_assert(dp_query_page(&req, &l, &o));
	ck_assert_int_eq(l, 5);
	ck_assert_int_eq(o, 0);
	ck_assert(dp_query_bool(&req, "flag", false, &b));
	ck_assert(b);
	ck_assert_str_eq(dp_req_query(&req, "x"), "%zz");
	done();
	setenv("QUERY_STRING", "limit=5%00", 1);
	run("GET", "/api/v1/x", NULL, NULL, 0);
	ck_assert(!dp_query_page(&req, &l, &o));
	done();
	setenv("QUERY_STRING", "limit=0&offset=-1", 1);
	run("GET", "/api/v1/x", NULL, NULL, 0);
	ck_assert(!dp_query_page(&req, &l, &o));
	ck_assert(dp_req_has_errors(&req));
	done();
	setenv("QUERY_STRING", "limit=99999999999999999999999", 1);
	run("GET", "/api/v1/x", NULL, NULL, 0);
	ck_assert(!dp_query_page(&req, &l, &o));
	done();
	unsetenv("QUERY_STRING");
}
END_TEST

static Suite *
suite(void)
{
	Suite	*s = suite_create("http");
	TCase	*t;

#define T(name) \
	t = tcase_create(#name); \
	tcase_add_checked_fixture(t, setup, teardown); \
	tcase_add_test(t, name); \
	suite_add_tcase(s, t)
	T(test_http_routing);
	T(test_http_methods);
	T(test_http_bodies);
	T(test_http_strict_json);
	T(test_http_validation);
	T(test_http_auth_required);
	T(test_http_request_id);
	T(test_http_query);
	return s;
}

int
main(void)
{
	SRunner	*r = srunner_create(suite());
	int	 failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
