/* tests/unit/check_google.c: Google ID tokens against a fake JWKS server */
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
/* libjwt's header by path: lib/jwt.h shadows <jwt.h> under -Ilib. */
#include </usr/include/jwt.h>

#include "google.h"

#define CID	"cid-1.apps.googleusercontent.com"
/* Spaces and empty entries around the ids must be ignored. */
#define CIDS	" other-id.apps.googleusercontent.com , " CID " ,, third "

static char	 tmpdir[] = "/tmp/check_google.XXXXXX";
static char	 key_a[256], key_b[256], key_c[256];
static char	 tok_py[1024], jwks_py[1024];
static char	 base[64], url[128];
static pid_t	 server = -1;
static int64_t	 now;

/* Run argv, collect its stdout (trailing newline cut).  0 if it exit 0. */
static int
run_capture(char *const argv[], struct dp_buf *out)
{
	char	 buf[4096];
	ssize_t	 n;
	pid_t	 pid;
	int	 fd[2], st = 0, devnull;

	if (pipe(fd) == -1)
		return -1;
	if ((pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		dup2(fd[1], 1);
		if ((devnull = open("/dev/null", O_RDONLY)) != -1)
			dup2(devnull, 0);
		close(fd[0]);
		close(fd[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	while ((n = read(fd[0], buf, sizeof(buf))) > 0)
		dp_buf_add(out, buf, (size_t)n);
	close(fd[0]);
	waitpid(pid, &st, 0);
	while (out->len > 0 && out->s[out->len - 1] == '\n')
		out->s[--out->len] = '\0';
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static size_t
collect(char *p, size_t sz, size_t nm, void *arg)
{
	dp_buf_add(arg, p, sz * nm);
	return sz * nm;
}

/* A request to the fake's control interface; the body, or aborts. */
static char *
ctl(const char *path, const char *body)
{
	struct dp_buf	 out = { 0 };
	char		 u[256];
	CURL		*c;
	long		 status = 0;

	snprintf(u, sizeof(u), "%s%s", base, path);
	c = curl_easy_init();
	ck_assert_ptr_nonnull(c);
	curl_easy_setopt(c, CURLOPT_URL, u);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
	if (body != NULL)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	ck_assert_int_eq(curl_easy_perform(c), CURLE_OK);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_cleanup(c);
	ck_assert_int_eq(status, 200);
	dp_buf_addc(&out, '\0');
	return dp_buf_detach(&out);
}

static void
ctl_do(const char *path, const char *body)
{
	free(ctl(path, body));
}

/* Number of JWKS fetches the fake has answered. */
static int64_t
fetches(void)
{
	struct json_object	*o, *v;
	char			*s;
	int64_t			 n;

	s = ctl("/_stats", NULL);
	o = json_tokener_parse(s);
	ck_assert_ptr_nonnull(o);
	ck_assert(json_object_object_get_ex(o, "requests", &v));
	n = json_object_get_int64(v);
	json_object_put(o);
	free(s);
	return n;
}

/* Serve keys: pairs of (path, kid), NULL-terminated. */
static void
serve_keys(const char *path, ...)
{
	struct json_object	*o, *arr, *pair;
	const char		*p, *kid;
	va_list			 ap;

	o = json_object_new_object();
	arr = json_object_new_array();
	va_start(ap, path);
	for (p = path; p != NULL; p = va_arg(ap, const char *)) {
		kid = va_arg(ap, const char *);
		pair = json_object_new_array();
		json_object_array_add(pair, json_object_new_string(p));
		json_object_array_add(pair, json_object_new_string(kid));
		json_object_array_add(arr, pair);
	}
	va_end(ap);
	json_object_object_add(o, "keys", arr);
	ctl_do("/_keys", json_object_to_json_string(o));
	json_object_put(o);
}

/*
 * The default claims with changes: key, JSON value pairs (a NULL value
 * deletes the claim), NULL-terminated.  Heap string.
 */
static char *
claims(const char *key, ...)
{
	struct json_object	*o;
	struct dp_buf		 b = { 0 };
	const char		*k, *v;
	va_list			 ap;

	dp_buf_printf(&b, "{\"iss\":\"https://accounts.google.com\","
	    "\"azp\":\"%s\",\"aud\":\"%s\",\"sub\":\"110169484474386276334\","
	    "\"email\":\"alice@example.com\",\"email_verified\":true,"
	    "\"name\":\"Alice Example\","
	    "\"picture\":\"https://lh3.googleusercontent.com/a/x\","
	    "\"iat\":%lld,\"exp\":%lld}", CID, CID, (long long)now,
	    (long long)(now + 200000));
	o = json_tokener_parse(b.s);
	ck_assert_ptr_nonnull(o);
	va_start(ap, key);
	for (k = key; k != NULL; k = va_arg(ap, const char *)) {
		v = va_arg(ap, const char *);
		if (v == NULL)
			json_object_object_del(o, k);
		else {
			struct json_object *jv = json_tokener_parse(v);

			ck_assert_msg(jv != NULL || strcmp(v, "null") == 0,
			    "bad JSON %s", v);
			json_object_object_add(o, k, jv);
		}
	}
	va_end(ap);
	dp_buf_reset(&b);
	dp_buf_adds(&b, json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	return dp_buf_detach(&b);
}

/* A token from google_token.py; header is a JSON override or NULL. */
static char *
token_ex(const char *key, const char *kid, const char *cl,
    const char *header, bool raw_header, bool hmac_pem)
{
	struct dp_buf	 out = { 0 };
	char		*argv[16];
	int		 i = 0;

	argv[i++] = "python3";
	argv[i++] = tok_py;
	argv[i++] = "sign";
	argv[i++] = "--key";
	argv[i++] = (char *)key;
	argv[i++] = "--kid";
	argv[i++] = (char *)kid;
	argv[i++] = "--claims";
	argv[i++] = (char *)cl;
	if (header != NULL) {
		argv[i++] = "--header";
		argv[i++] = (char *)header;
	}
	if (raw_header)
		argv[i++] = "--header-raw";
	if (hmac_pem)
		argv[i++] = "--hmac-pem";
	argv[i] = NULL;
	ck_assert_int_eq(run_capture(argv, &out), 0);
	ck_assert_uint_gt(out.len, 0);
	return dp_buf_detach(&out);
}

/* A token signed by key A (kid "ka") over cl, which is freed. */
static char *
token(char *cl)
{
	char	*t = token_ex(key_a, "ka", cl, NULL, false, false);

	free(cl);
	return t;
}

/* A token signed by key B (kid "kb") over the default claims. */
static char *
token_b(void)
{
	char	*cl = claims(NULL), *t;

	t = token_ex(key_b, "kb", cl, NULL, false, false);
	free(cl);
	return t;
}

static enum dp_google_result
verify_at(const char *tok, int64_t t)
{
	struct dp_google_claims	 c;
	struct dp_err		 err = { 0 };
	enum dp_google_result	 r;

	r = dp_google_verify(tok, url, CIDS, 5, t, &c, &err);
	if (r != DP_GOOGLE_OK) {
		ck_assert_ptr_null(c.sub);
		ck_assert_ptr_null(c.email);
		ck_assert_str_ne(err.msg, "");
	}
	dp_google_claims_release(&c);
	return r;
}

static enum dp_google_result
verify(const char *tok)
{
	return verify_at(tok, now);
}

/* Sign cl (freed) with key A and verify now. */
static enum dp_google_result
check_claims(char *cl)
{
	enum dp_google_result	 r;
	char			*t = token(cl);

	r = verify(t);
	free(t);
	return r;
}

static void
setup(void)
{
	ctl_do("/_reset", "");
	serve_keys(key_a, "ka", key_b, "kb", NULL);
	dp_google_cache_clear();
	now = time(NULL);
}

static void
teardown(void)
{
	dp_google_cache_clear();
}

START_TEST(test_google_valid)
{
	struct dp_google_claims	 c;
	struct dp_err		 err = { 0 };
	char			*t;

	t = token(claims(NULL));
	ck_assert_int_eq(dp_google_verify(t, url, CIDS, 5, now, &c, &err),
	    DP_GOOGLE_OK);
	ck_assert_str_eq(c.sub, "110169484474386276334");
	ck_assert_str_eq(c.email, "alice@example.com");
	ck_assert_str_eq(c.name, "Alice Example");
	ck_assert_str_eq(c.picture, "https://lh3.googleusercontent.com/a/x");
	ck_assert(c.email_verified);
	dp_google_claims_release(&c);
	ck_assert_ptr_null(c.sub);
	dp_google_claims_release(&c);	/* twice is harmless */
	dp_google_claims_release(NULL);
	/* Only one client id configured, no spaces. */
	ck_assert_int_eq(dp_google_verify(t, url, CID, 5, now, NULL, &err),
	    DP_GOOGLE_OK);
	/* Case matters in client ids. */
	ck_assert_int_eq(dp_google_verify(t, url, "CID-1.apps.googleusercontent.com",
	    5, now, NULL, &err), DP_GOOGLE_INVALID);
	free(t);

	/* The second key of the set works too. */
	t = token_b();
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	free(t);

	/* Without name and picture: OK, and those are NULL. */
	t = token(claims("name", NULL, "picture", NULL, NULL));
	ck_assert_int_eq(dp_google_verify(t, url, CIDS, 5, now, &c, &err),
	    DP_GOOGLE_OK);
	ck_assert_str_eq(c.email, "alice@example.com");
	ck_assert_ptr_null(c.name);
	ck_assert_ptr_null(c.picture);
	dp_google_claims_release(&c);
	free(t);

	/* Non-string name is dropped, not trusted. */
	t = token(claims("name", "[\"x\"]", "picture", "42", NULL));
	ck_assert_int_eq(dp_google_verify(t, url, CIDS, 5, now, &c, &err),
	    DP_GOOGLE_OK);
	ck_assert_ptr_null(c.name);
	ck_assert_ptr_null(c.picture);
	dp_google_claims_release(&c);
	free(t);
}
END_TEST

START_TEST(test_google_aud)
{
	ck_assert_int_eq(check_claims(claims("aud",
	    "\"evil.apps.googleusercontent.com\"", NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", "\"\"", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", "\" " CID "\"", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", "\"" CID "x\"", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", "\"cid-1\"", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", "\"third\"", NULL)),
	    DP_GOOGLE_OK);
	ck_assert_int_eq(check_claims(claims("aud", "42", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", "{\"a\":\"" CID "\"}",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", NULL, NULL)),
	    DP_GOOGLE_INVALID);
	/* A NUL inside the audience must not match a prefix. */
	ck_assert_int_eq(check_claims(claims("aud", "\"" CID "\\u0000x\"",
	    NULL)), DP_GOOGLE_INVALID);
}
END_TEST

START_TEST(test_google_aud_array)
{
	ck_assert_int_eq(check_claims(claims("aud",
	    "[\"someone-else\",\"" CID "\"]", NULL)), DP_GOOGLE_OK);
	ck_assert_int_eq(check_claims(claims("aud", "[\"" CID "\"]", NULL)),
	    DP_GOOGLE_OK);
	ck_assert_int_eq(check_claims(claims("aud", "[\"a\",\"b\"]", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud", "[]", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("aud",
	    "[1,null,{},[\"" CID "\"]]", NULL)), DP_GOOGLE_INVALID);
}
END_TEST

START_TEST(test_google_iss)
{
	ck_assert_int_eq(check_claims(claims("iss", "\"accounts.google.com\"",
	    NULL)), DP_GOOGLE_OK);
	ck_assert_int_eq(check_claims(claims("iss",
	    "\"https://accounts.google.com\"", NULL)), DP_GOOGLE_OK);
	ck_assert_int_eq(check_claims(claims("iss",
	    "\"http://accounts.google.com\"", NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("iss",
	    "\"https://accounts.google.com/\"", NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("iss", "\"ACCOUNTS.GOOGLE.COM\"",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("iss", "\"evil.example\"",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("iss", "[\"accounts.google.com\"]",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("iss", NULL, NULL)),
	    DP_GOOGLE_INVALID);
}
END_TEST

START_TEST(test_google_expired)
{
	char	 v[32];

	snprintf(v, sizeof(v), "%lld", (long long)now);
	ck_assert_int_eq(check_claims(claims("exp", v, NULL)),
	    DP_GOOGLE_INVALID);
	snprintf(v, sizeof(v), "%lld", (long long)now - 1);
	ck_assert_int_eq(check_claims(claims("exp", v, NULL)),
	    DP_GOOGLE_INVALID);
	snprintf(v, sizeof(v), "%lld", (long long)now + 1);
	ck_assert_int_eq(check_claims(claims("exp", v, NULL)), DP_GOOGLE_OK);
	snprintf(v, sizeof(v), "\"%lld\"", (long long)now + 1000);
	ck_assert_int_eq(check_claims(claims("exp", v, NULL)),
	    DP_GOOGLE_INVALID);
	snprintf(v, sizeof(v), "%lld.5", (long long)now + 1000);
	ck_assert_int_eq(check_claims(claims("exp", v, NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("exp", "-1", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("exp", "true", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("exp", NULL, NULL)),
	    DP_GOOGLE_INVALID);
}
END_TEST

START_TEST(test_google_email_verified)
{
	ck_assert_int_eq(check_claims(claims("email_verified", "false",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email_verified", NULL, NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email_verified", "\"false\"",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email_verified", "1", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email_verified", "\"TRUE\"",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email_verified", "null",
	    NULL)), DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email_verified", "\"true\"",
	    NULL)), DP_GOOGLE_OK);
}
END_TEST

START_TEST(test_google_email_missing)
{
	ck_assert_int_eq(check_claims(claims("email", NULL, NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email", "\"\"", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email", "7", NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("email", "null", NULL)),
	    DP_GOOGLE_INVALID);
	/* No subject is no identity either. */
	ck_assert_int_eq(check_claims(claims("sub", NULL, NULL)),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(check_claims(claims("sub", "12", NULL)),
	    DP_GOOGLE_INVALID);
}
END_TEST

START_TEST(test_google_unknown_kid)
{
	char	*cl, *t, *t3;
	int64_t	 f0;

	/* Warm the cache with a good token. */
	t = token(claims(NULL));
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	free(t);
	f0 = fetches();
	ck_assert_int_eq(f0, 1);

	cl = claims(NULL);
	t = token_ex(key_a, "nope", cl, NULL, false, false);
	t3 = token_ex(key_c, "kc", cl, NULL, false, false);
	free(cl);
	/* Cache fetched at now: a kid miss within the minute does not fetch. */
	ck_assert_int_eq(verify_at(t, now + 10), DP_GOOGLE_INVALID);
	ck_assert_int_eq(fetches(), f0);
	/* After a minute it refetches once, and is still invalid. */
	ck_assert_int_eq(verify_at(t, now + 61), DP_GOOGLE_INVALID);
	ck_assert_int_eq(fetches(), f0 + 1);
	ck_assert_int_eq(verify_at(t, now + 62), DP_GOOGLE_INVALID);
	ck_assert_int_eq(verify_at(t, now + 100), DP_GOOGLE_INVALID);
	ck_assert_int_eq(fetches(), f0 + 1);
	/* Key rotation: a new kid appears and is picked up by the refetch. */
	serve_keys(key_b, "kb", key_c, "kc", NULL);
	ck_assert_int_eq(verify_at(t3, now + 110), DP_GOOGLE_INVALID);
	ck_assert_int_eq(fetches(), f0 + 1);
	ck_assert_int_eq(verify_at(t3, now + 125), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), f0 + 2);
	/* ...and the rotated-out key is gone. */
	free(t);
	t = token(claims(NULL));
	ck_assert_int_eq(verify_at(t, now + 126), DP_GOOGLE_INVALID);
	free(t);
	free(t3);
	/* A token without kid is refused without any fetch. */
	cl = claims(NULL);
	t = token_ex(key_a, "ka", cl, "{\"kid\":null}", false, false);
	free(cl);
	ck_assert_int_eq(verify_at(t, now + 500), DP_GOOGLE_INVALID);
	ck_assert_int_eq(fetches(), f0 + 2);
	free(t);
	cl = claims(NULL);
	t = token_ex(key_a, "ka", cl, "{\"kid\":7}", false, false);
	free(cl);
	ck_assert_int_eq(verify_at(t, now + 126), DP_GOOGLE_INVALID);
	free(t);
}
END_TEST

START_TEST(test_google_wrong_key)
{
	char	*cl, *t;

	/* Signed by key C but claiming key A's kid. */
	cl = claims(NULL);
	t = token_ex(key_c, "ka", cl, NULL, false, false);
	free(cl);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	/* Signed by key B, claiming A. */
	cl = claims(NULL);
	t = token_ex(key_b, "ka", cl, NULL, false, false);
	free(cl);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
}
END_TEST

START_TEST(test_google_alg_none)
{
	char	*cl, *t;
	jwt_t	*j = NULL;

	cl = claims(NULL);
	t = token_ex(key_a, "ka", cl, "{\"alg\":\"none\"}", false, false);
	/* libjwt 1.10 by itself takes it without a key: why we check. */
	ck_assert_int_eq(jwt_decode(&j, t, NULL, 0), 0);
	jwt_free(j);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	t = token_ex(key_a, "ka", cl, "{\"alg\":\"None\"}", false, false);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	t = token_ex(key_a, "ka", cl, "{\"alg\":null}", false, false);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	/* Duplicate alg members: the last one wins in json-c. */
	t = token_ex(key_a, "ka", cl,
	    "{\"alg\":\"RS256\",\"kid\":\"ka\",\"alg\":\"none\"}", true, false);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	/* Lower-case rs256 is not RS256. */
	t = token_ex(key_a, "ka", cl, "{\"alg\":\"rs256\"}", false, false);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	/* Unknown critical extensions are refused. */
	t = token_ex(key_a, "ka", cl, "{\"crit\":[\"exp\"]}", false, false);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	free(cl);
}
END_TEST

START_TEST(test_google_alg_confusion)
{
	struct dp_buf	 pem = { 0 };
	char		*argv[] = { "python3", tok_py, "pem", "--key", key_a,
			    NULL };
	char		*cl, *t;
	jwt_t		*j = NULL;

	ck_assert_int_eq(run_capture(argv, &pem), 0);
	dp_buf_addc(&pem, '\n');
	cl = claims(NULL);
	t = token_ex(key_a, "ka", cl, "{\"alg\":\"HS256\"}", false, true);
	free(cl);
	/* libjwt 1.10 accepts it with the public PEM: the attack is real. */
	ck_assert_int_eq(jwt_decode(&j, t, (unsigned char *)pem.s,
	    (int)pem.len), 0);
	jwt_free(j);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	dp_buf_release(&pem);
}
END_TEST

START_TEST(test_google_alg_rs512)
{
	char	*cl, *t;

	cl = claims(NULL);
	t = token_ex(key_a, "ka", cl, "{\"alg\":\"RS512\"}", false, false);
	free(cl);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
	cl = claims(NULL);
	t = token_ex(key_a, "ka", cl, "{\"alg\":\"RS384\"}", false, false);
	free(cl);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	free(t);
}
END_TEST

START_TEST(test_google_tampered)
{
	struct dp_buf	 b = { 0 };
	char		*t, *t2, *d1, *d2, *d1b, *d2b;
	size_t		 i, len;

	t = token(claims(NULL));
	t2 = token(claims("email", "\"mallory@example.com\"", NULL));
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	/* Payload of t2 with the signature of t. */
	d1 = strchr(t, '.');
	d2 = strchr(d1 + 1, '.');
	d1b = strchr(t2, '.');
	d2b = strchr(d1b + 1, '.');
	dp_buf_add(&b, t, (size_t)(d1 - t));
	dp_buf_add(&b, d1b, (size_t)(d2b - d1b));
	dp_buf_adds(&b, d2);
	ck_assert_int_eq(verify(b.s), DP_GOOGLE_INVALID);
	/* Every single-character change of t is refused. */
	len = strlen(t);
	for (i = 0; i < len; i += 7) {
		char	 save = t[i];

		if (save == '.')
			continue;
		t[i] = save == 'A' ? 'B' : 'A';
		ck_assert_msg(verify(t) == DP_GOOGLE_INVALID,
		    "change at %zu accepted", i);
		t[i] = save;
	}
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	/* Appended bytes in each segment. */
	dp_buf_reset(&b);
	dp_buf_adds(&b, t);
	dp_buf_adds(&b, "AA");
	ck_assert_int_eq(verify(b.s), DP_GOOGLE_INVALID);
	dp_buf_release(&b);
	free(t);
	free(t2);
}
END_TEST

START_TEST(test_google_truncated)
{
	char	*t, *p;
	size_t	 len, i;

	t = token(claims(NULL));
	len = strlen(t);
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	for (i = 0; i < len; i++) {
		p = dp_xstrndup(t, i);
		ck_assert_msg(verify(p) == DP_GOOGLE_INVALID,
		    "prefix %zu accepted", i);
		free(p);
	}
	free(t);
}
END_TEST

START_TEST(test_google_huge)
{
	struct dp_buf	 pad = { 0 };
	char		*t;
	size_t		 i;
	int64_t		 f0;

	/* About 15 KiB: under the cap, accepted. */
	dp_buf_addc(&pad, '"');
	for (i = 0; i < 11000; i++)
		dp_buf_addc(&pad, 'x');
	dp_buf_addc(&pad, '"');
	t = token(claims("pad", pad.s, NULL));
	ck_assert_uint_lt(strlen(t), 16 * 1024);
	ck_assert_uint_gt(strlen(t), 14 * 1024);
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	free(t);
	/* About 20 KiB: refused before any key is even looked at. */
	dp_google_cache_clear();
	f0 = fetches();
	dp_buf_reset(&pad);
	dp_buf_addc(&pad, '"');
	for (i = 0; i < 15000; i++)
		dp_buf_addc(&pad, 'x');
	dp_buf_addc(&pad, '"');
	t = token(claims("pad", pad.s, NULL));
	ck_assert_uint_gt(strlen(t), 20 * 1000);
	ck_assert_int_eq(verify(t), DP_GOOGLE_INVALID);
	ck_assert_int_eq(fetches(), f0);
	free(t);
	/* A megabyte of dots and letters. */
	dp_buf_reset(&pad);
	for (i = 0; i < 1024 * 1024; i++)
		dp_buf_addc(&pad, i % 100 == 0 ? '.' : 'A');
	ck_assert_int_eq(verify(pad.s), DP_GOOGLE_INVALID);
	dp_buf_release(&pad);
}
END_TEST

START_TEST(test_google_garbage)
{
	static const char *bad[] = {
		"", ".", "..", "...", "a", "a.b", "a.b.c", "a.b.c.d",
		"!!!.@@@.###", "eyJhbGciOiJSUzI1NiJ9..", "..sig",
		"eyJhbGciOiJSUzI1NiJ9.e30.=",
		"eyJhbGciOiJSUzI1NiJ9.e30.a b",
		"eyJhbGciOiJSUzI1NiJ9\n.e30.abc",
		"\xff\xfe\xfd.\xc3\x28.\x80",
		"Bearer eyJhbGciOiJSUzI1NiJ9.e30.abc",
		/* "[]", "null", "\"RS256\"" and "{" as the header */
		"W10.e30.abc", "bnVsbA.e30.abc", "IlJTMjU2Ig.e30.abc",
		"ew.e30.abc",
		/* {"alg":"RS256","kid":"ka"} but a 1-char tail (bad length) */
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImthIn0x.e30.abc",
		/* valid header, garbage payload and signature */
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImthIn0.____.____",
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImthIn0.e30.AAAA",
		/* header with a control character in kid */
		"eyJhbGciOiJSUzI1NiIsImtpZCI6ImsBYSJ9.e30.AAAA",
	};
	struct dp_err	 err;
	size_t		 i;

	for (i = 0; i < DP_NITEMS(bad); i++)
		ck_assert_msg(verify(bad[i]) == DP_GOOGLE_INVALID,
		    "accepted garbage %zu", i);
	ck_assert_int_eq(dp_google_verify(NULL, url, CIDS, 5, now, NULL,
	    &err), DP_GOOGLE_INVALID);
	/* err may be NULL. */
	ck_assert_int_eq(dp_google_verify("x.y.z", url, CIDS, 5, now, NULL,
	    NULL), DP_GOOGLE_INVALID);
}
END_TEST

START_TEST(test_google_no_client_ids)
{
	struct dp_err	 err;
	char		*t;
	int64_t		 f0 = fetches();

	t = token(claims(NULL));
	ck_assert_int_eq(dp_google_verify(t, url, "", 5, now, NULL, &err),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(dp_google_verify(t, url, " , ,", 5, now, NULL,
	    &err), DP_GOOGLE_INVALID);
	ck_assert_int_eq(dp_google_verify(t, url, NULL, 5, now, NULL, &err),
	    DP_GOOGLE_INVALID);
	ck_assert_int_eq(fetches(), f0);
	free(t);
}
END_TEST

START_TEST(test_google_unavailable)
{
	struct dp_err	 err;
	char		*t;

	t = token(claims(NULL));
	ctl_do("/_fail", "");
	ck_assert_int_eq(verify(t), DP_GOOGLE_UNAVAILABLE);
	/* No keys at all: every request tries again. */
	ck_assert_int_eq(verify(t), DP_GOOGLE_UNAVAILABLE);
	ck_assert_int_eq(fetches(), 2);
	ctl_do("/_ok", "");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 3);
	/* Bad URLs. */
	dp_google_cache_clear();
	ck_assert_int_eq(dp_google_verify(t, "file:///etc/passwd", CIDS, 5,
	    now, NULL, &err), DP_GOOGLE_UNAVAILABLE);
	ck_assert_int_eq(dp_google_verify(t, "ftp://127.0.0.1/x", CIDS, 5,
	    now, NULL, &err), DP_GOOGLE_UNAVAILABLE);
	ck_assert_int_eq(dp_google_verify(t, "http://127.0.0.1:1/x", CIDS, 5,
	    now, NULL, &err), DP_GOOGLE_UNAVAILABLE);
	ck_assert_int_eq(dp_google_verify(t, "", CIDS, 5, now, NULL, &err),
	    DP_GOOGLE_UNAVAILABLE);
	free(t);
}
END_TEST

START_TEST(test_google_redirect)
{
	char	*t;

	t = token(claims(NULL));
	ctl_do("/_redirect", "");
	ck_assert_int_eq(verify(t), DP_GOOGLE_UNAVAILABLE);
	ck_assert_int_eq(fetches(), 1);	/* the Location was not followed */
	free(t);
}
END_TEST

START_TEST(test_google_timeout)
{
	struct dp_err	 err;
	char		*t;
	int64_t		 t0;

	t = token(claims(NULL));
	ctl_do("/_hang", "3");
	t0 = dp_mono_ms();
	ck_assert_int_eq(dp_google_verify(t, url, CIDS, 1, now, NULL, &err),
	    DP_GOOGLE_UNAVAILABLE);
	ck_assert_int_lt(dp_mono_ms() - t0, 2500);
	free(t);
}
END_TEST

/* Each body, served as the JWKS with no cache, gives UNAVAILABLE. */
START_TEST(test_google_bad_jwks)
{
	struct dp_buf		 big = { 0 }, deep = { 0 };
	struct dp_buf		 jw = { 0 };
	char			*argv[] = { "python3", tok_py, "jwks", "--key",
				    key_a, "--kid", "ka", NULL };
	struct json_object	*doc, *k0;
	char			*t, *body;
	size_t			 i;
	static const char *bodies[] = {
		"not json", "[]", "{}", "{\"keys\":\"x\"}", "{\"keys\":[]}",
		"{\"keys\":[1,null,\"x\",[]]}", "{\"keys\":[{}]}",
		"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"ka\",\"n\":\"!!\","
		    "\"e\":\"AQAB\"}]}",
		"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"ka\",\"n\":\"AQAB\","
		    "\"e\":\"AQAB\"}]}",
		"{\"keys\":[{\"kty\":\"EC\",\"kid\":\"ka\",\"crv\":\"P-256\","
		    "\"x\":\"AA\",\"y\":\"AA\"}]}",
	};

	t = token(claims(NULL));
	for (i = 0; i < DP_NITEMS(bodies); i++) {
		ctl_do("/_body", bodies[i]);
		ck_assert_msg(verify(t) == DP_GOOGLE_UNAVAILABLE,
		    "body %zu accepted", i);
	}
	/* Over 256 KiB. */
	dp_buf_adds(&big, "{\"keys\":[],\"pad\":\"");
	for (i = 0; i < 300 * 1024; i++)
		dp_buf_addc(&big, 'x');
	dp_buf_adds(&big, "\"}");
	ctl_do("/_body", big.s);
	ck_assert_int_eq(verify(t), DP_GOOGLE_UNAVAILABLE);
	/* Deep nesting. */
	dp_buf_adds(&deep, "{\"keys\":");
	for (i = 0; i < 5000; i++)
		dp_buf_addc(&deep, '[');
	for (i = 0; i < 5000; i++)
		dp_buf_addc(&deep, ']');
	dp_buf_addc(&deep, '}');
	ctl_do("/_body", deep.s);
	ck_assert_int_eq(verify(t), DP_GOOGLE_UNAVAILABLE);

	/* The real key with a wrong alg / use / kty, or e even: skipped. */
	ck_assert_int_eq(run_capture(argv, &jw), 0);
	{
		static const char *mut[][2] = {
			{ "alg", "\"RS512\"" }, { "use", "\"enc\"" },
			{ "kty", "\"oct\"" }, { "e", "\"Ag\"" },
			{ "e", "\"AQ\"" }, { "kid", "\"\"" }, { "n", "7" },
			/* (fuzzing: an empty modulus was used from NULL) */
			{ "n", "\"\"" }, { "n", "\"AAAA\"" }, { "e", "\"\"" },
		};
		for (i = 0; i < DP_NITEMS(mut); i++) {
			doc = json_tokener_parse(jw.s);
			ck_assert_ptr_nonnull(doc);
			k0 = json_object_array_get_idx(json_object_object_get(
			    doc, "keys"), 0);
			json_object_object_add(k0, mut[i][0],
			    json_tokener_parse(mut[i][1]));
			body = dp_xstrdup(json_object_to_json_string(doc));
			json_object_put(doc);
			ctl_do("/_body", body);
			free(body);
			ck_assert_msg(verify(t) == DP_GOOGLE_UNAVAILABLE,
			    "mutation %zu accepted", i);
		}
	}
	/* A 1024-bit modulus is too weak: cut n to its first 128 bytes. */
	doc = json_tokener_parse(jw.s);
	k0 = json_object_array_get_idx(json_object_object_get(doc, "keys"), 0);
	{
		char n1024[172];

		memcpy(n1024, json_object_get_string(json_object_object_get(k0,
		    "n")), 171);
		n1024[171] = '\0';
		json_object_object_add(k0, "n", json_object_new_string(n1024));
	}
	ctl_do("/_body", json_object_to_json_string(doc));
	json_object_put(doc);
	ck_assert_int_eq(verify(t), DP_GOOGLE_UNAVAILABLE);

	/* The verbatim JWKS served through /_body works (control). */
	ctl_do("/_body", jw.s);
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	/* A key without the optional alg and use members is fine too. */
	dp_google_cache_clear();
	doc = json_tokener_parse(jw.s);
	k0 = json_object_array_get_idx(json_object_object_get(doc, "keys"), 0);
	json_object_object_del(k0, "alg");
	json_object_object_del(k0, "use");
	ctl_do("/_body", json_object_to_json_string(doc));
	json_object_put(doc);
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);

	dp_buf_release(&jw);
	dp_buf_release(&big);
	dp_buf_release(&deep);
	free(t);
}
END_TEST

START_TEST(test_google_cache)
{
	char	*t, *t2;

	t = token(claims(NULL));
	t2 = token_b();
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify(t2), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 3599), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 1);
	/* max-age=3600 ran out: fetched again. */
	ck_assert_int_eq(verify_at(t, now + 3600), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 2);
	ck_assert_int_eq(verify_at(t, now + 3700), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 2);
	/* Another URL is another key set. */
	{
		char	 u2[160];

		snprintf(u2, sizeof(u2), "%s?other", url);
		ck_assert_int_eq(dp_google_verify(t, u2, CIDS, 5, now + 3700,
		    NULL, NULL), DP_GOOGLE_OK);
		ck_assert_int_eq(fetches(), 3);
	}
	free(t);
	free(t2);
}
END_TEST

START_TEST(test_google_cache_headers)
{
	char	*t;

	t = token(claims(NULL));
	/* No Cache-Control, Expires 120 s after Date. */
	ctl_do("/_cache", "{\"max_age\":-1,\"expires\":120}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 100), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 1);
	ck_assert_int_eq(verify_at(t, now + 130), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 2);
	/* max-age wins over Expires. */
	dp_google_cache_clear();
	ctl_do("/_cache", "{\"max_age\":1000,\"expires\":60}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 900), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 3);
	/* Neither header: an hour. */
	dp_google_cache_clear();
	ctl_do("/_cache", "{\"max_age\":-1}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 3500), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 4);
	ck_assert_int_eq(verify_at(t, now + 3601), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 5);
	/* A year of max-age is cut to a day. */
	dp_google_cache_clear();
	ctl_do("/_cache", "{\"max_age\":31536000}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 86399), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 6);
	ck_assert_int_eq(verify_at(t, now + 86400), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 7);
	/* An unreadable Expires means expired: refetched after a minute. */
	dp_google_cache_clear();
	ctl_do("/_cache", "{\"max_age\":-1,\"expires\":\"0\"}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 59), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 8);
	ck_assert_int_eq(verify_at(t, now + 60), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 9);
	/* Other directives around max-age, any case, quoted. */
	dp_google_cache_clear();
	ctl_do("/_cache", "{\"max_age\":\"no-transform, s-maxage=5, "
	    "Max-Age=\\\"7200\\\", must-revalidate\"}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 7199), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 10);
	ck_assert_int_eq(verify_at(t, now + 7200), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 11);
	/* A malformed max-age is ignored (the default hour applies). */
	dp_google_cache_clear();
	ctl_do("/_cache", "{\"max_age\":\"max-age=-5, max-age=12abc\"}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 3599), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 12);
	ck_assert_int_eq(verify_at(t, now + 3600), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 13);
	/* max-age=0: refetched, but at most once a minute. */
	dp_google_cache_clear();
	ctl_do("/_cache", "{\"max_age\":0}");
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ck_assert_int_eq(verify_at(t, now + 30), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 14);
	ck_assert_int_eq(verify_at(t, now + 61), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 15);
	free(t);
}
END_TEST

START_TEST(test_google_stale)
{
	char	*t;

	t = token(claims(NULL));
	ck_assert_int_eq(verify(t), DP_GOOGLE_OK);
	ctl_do("/_fail", "");
	/* Expired cache, server down: the stale keys still verify. */
	ck_assert_int_eq(verify_at(t, now + 4000), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 2);
	/* And the failing server is not asked again within the minute. */
	ck_assert_int_eq(verify_at(t, now + 4030), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 2);
	ck_assert_int_eq(verify_at(t, now + 4061), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 3);
	/* Garbage from the server does not replace good keys either. */
	ctl_do("/_ok", "");
	ctl_do("/_body", "{\"keys\":[]}");
	ck_assert_int_eq(verify_at(t, now + 4200), DP_GOOGLE_OK);
	ck_assert_int_eq(fetches(), 4);
	free(t);
}
END_TEST

static Suite *
google_suite(void)
{
	Suite	*s = suite_create("google");
	struct {
		const char	*name;
		const TTest	*fn;
	} tcs[] = {
		{ "valid", test_google_valid },
		{ "aud", test_google_aud },
		{ "aud_array", test_google_aud_array },
		{ "iss", test_google_iss },
		{ "expired", test_google_expired },
		{ "email_verified", test_google_email_verified },
		{ "email_missing", test_google_email_missing },
		{ "unknown_kid", test_google_unknown_kid },
		{ "wrong_key", test_google_wrong_key },
		{ "alg_none", test_google_alg_none },
		{ "alg_confusion", test_google_alg_confusion },
		{ "alg_rs512", test_google_alg_rs512 },
		{ "tampered", test_google_tampered },
		{ "truncated", test_google_truncated },
		{ "huge", test_google_huge },
		{ "garbage", test_google_garbage },
		{ "no_client_ids", test_google_no_client_ids },
		{ "unavailable", test_google_unavailable },
		{ "redirect", test_google_redirect },
		{ "timeout", test_google_timeout },
		{ "bad_jwks", test_google_bad_jwks },
		{ "cache", test_google_cache },
		{ "cache_headers", test_google_cache_headers },
		{ "stale", test_google_stale },
	};
	TCase	*tc;
	size_t	 i;

	for (i = 0; i < DP_NITEMS(tcs); i++) {
		tc = tcase_create(tcs[i].name);
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, tcs[i].fn);
		suite_add_tcase(s, tc);
	}
	return s;
}

/* Start the fake JWKS server; fills base and url. */
static void
server_start(void)
{
	char	 ka[300], kb[300], line[64];
	char	*argv[] = { "python3", jwks_py, "--port", "0", "--key", ka,
		    "--key", kb, NULL };
	FILE	*f;
	int	 fd[2], port = 0;

	snprintf(ka, sizeof(ka), "%s:ka", key_a);
	snprintf(kb, sizeof(kb), "%s:kb", key_b);
	if (pipe(fd) == -1 || (server = fork()) == -1) {
		perror("fork");
		exit(1);
	}
	if (server == 0) {
		/* Do not outlive a test program that crashes. */
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(fd[1], 1);
		close(fd[0]);
		close(fd[1]);
		execvp(argv[0], argv);
		_exit(127);
	}
	close(fd[1]);
	f = fdopen(fd[0], "r");
	if (f == NULL || fgets(line, sizeof(line), f) == NULL ||
	    sscanf(line, "READY %d", &port) != 1 || port <= 0 ||
	    port > 65535) {
		fprintf(stderr, "check_google: fake JWKS did not start\n");
		kill(server, SIGTERM);
		exit(1);
	}
	fclose(f);
	snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
	snprintf(url, sizeof(url), "%s/oauth2/v3/certs", base);
}

static void
cleanup(void)
{
	char	 p[300];

	if (server > 0) {
		kill(server, SIGTERM);
		waitpid(server, NULL, 0);
	}
	unlink(key_a);
	unlink(key_b);
	unlink(key_c);
	snprintf(p, sizeof(p), "%s", tmpdir);
	rmdir(p);
}

int
main(void)
{
	const char	*src;
	char		*argv[] = { "python3", tok_py, "keygen", "--key", key_a,
			    "--key", key_b, "--key", key_c, NULL };
	struct dp_buf	 out = { 0 };
	SRunner		*sr;
	int		 nf;

	if ((src = getenv("DP_SRCDIR")) == NULL || *src == '\0')
		src = ".";
	snprintf(tok_py, sizeof(tok_py), "%s/tests/fakes/google_token.py",
	    src);
	snprintf(jwks_py, sizeof(jwks_py), "%s/tests/fakes/jwks.py", src);
	if (access(tok_py, R_OK) == -1 || access(jwks_py, R_OK) == -1) {
		fprintf(stderr, "check_google: %s not found (set DP_SRCDIR)\n",
		    tok_py);
		return 1;
	}
	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(key_a, sizeof(key_a), "%s/a.pem", tmpdir);
	snprintf(key_b, sizeof(key_b), "%s/b.pem", tmpdir);
	snprintf(key_c, sizeof(key_c), "%s/c.pem", tmpdir);
	if (run_capture(argv, &out) == -1) {
		fprintf(stderr, "check_google: keygen failed\n");
		rmdir(tmpdir);
		return 1;
	}
	dp_buf_release(&out);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	server_start();

	sr = srunner_create(google_suite());
	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	cleanup();
	curl_global_cleanup();
	return nf == 0 ? 0 : 1;
}
