/* tests/unit/check_log.c: JSON and text lines, escaping, levels, atomicity */
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "log.h"
#include "util.h"

static char	 cap_path[64];
static int	 cap_saved = -1;

/* Send stderr (fd 2) to a fresh temporary file. */
static void
cap_begin(void)
{
	int	 fd;

	snprintf(cap_path, sizeof(cap_path), "/tmp/check_log.XXXXXX");
	fd = mkstemp(cap_path);
	ck_assert_int_ge(fd, 0);
	fflush(stderr);
	cap_saved = dup(STDERR_FILENO);
	ck_assert_int_ge(cap_saved, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
}

/* Restore stderr; returns what was written (caller frees). */
static char *
cap_end(size_t *lenp)
{
	struct dp_buf	 b = { 0 };
	char		 chunk[4096];
	ssize_t		 r;
	int		 fd;

	ck_assert_int_ge(dup2(cap_saved, STDERR_FILENO), 0);
	close(cap_saved);
	cap_saved = -1;
	fd = open(cap_path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	while ((r = read(fd, chunk, sizeof(chunk))) > 0)
		dp_buf_add(&b, chunk, (size_t)r);
	close(fd);
	unlink(cap_path);
	dp_buf_adds(&b, "");
	if (lenp != NULL)
		*lenp = b.len;
	return dp_buf_detach(&b);
}

/* The one line in out, parsed; fails unless out is exactly one JSON line. */
static struct json_object *
one_json(const char *out)
{
	struct json_object	*o;
	size_t			 n = strlen(out);

	ck_assert_uint_gt(n, 1);
	ck_assert_msg(out[n - 1] == '\n', "line not terminated");
	ck_assert_msg(strchr(out, '\n') == out + n - 1, "more than one line: %s",
	    out);
	o = json_tokener_parse(out);
	ck_assert_msg(o != NULL, "not JSON: %s", out);
	ck_assert(json_object_is_type(o, json_type_object));
	return o;
}

static const char *
get_str(struct json_object *o, const char *key)
{
	struct json_object	*v;

	ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
	ck_assert_msg(json_object_is_type(v, json_type_string),
	    "%s not a string", key);
	return json_object_get_string(v);
}

static bool
has_key(struct json_object *o, const char *key)
{
	return json_object_object_get_ex(o, key, NULL);
}

/* 2024-05-01T12:00:00.123456Z */
static void
assert_time(const char *t)
{
	static const char	 pat[] = "dddd-dd-ddTdd:dd:dd.ddddddZ";
	size_t			 i;

	ck_assert_uint_eq(strlen(t), sizeof(pat) - 1);
	for (i = 0; pat[i] != '\0'; i++)
		if (pat[i] == 'd')
			ck_assert_msg(t[i] >= '0' && t[i] <= '9', "time %s", t);
		else
			ck_assert_int_eq(t[i], pat[i]);
}

static bool
utf8_ok(const char *s)
{
	struct json_object	*o;
	struct json_tokener	*tok;
	bool			 ok;

	/* json-c's strict mode validates UTF-8 inside strings. */
	tok = json_tokener_new();
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, s, (int)strlen(s));
	ok = o != NULL;
	json_object_put(o);
	json_tokener_free(tok);
	return ok;
}

START_TEST(test_log_json)
{
	struct json_object	*o;
	char			*out;

	dp_log_init("check_log", "json", "debug");
	dp_log_set_request(NULL);
	cap_begin();
	dp_info("hello %d / %s", 5, "world");
	out = cap_end(NULL);
	o = one_json(out);
	assert_time(get_str(o, "time"));
	ck_assert_str_eq(get_str(o, "level"), "info");
	ck_assert_str_eq(get_str(o, "program"), "check_log");
	ck_assert_str_eq(get_str(o, "message"), "hello 5 / world");
	ck_assert(!has_key(o, "request_id"));
	ck_assert(utf8_ok(out));
	json_object_put(o);
	free(out);

	/* Each level by its name. */
	cap_begin();
	dp_debug("d");
	dp_warn("w");
	dp_error("e");
	out = cap_end(NULL);
	ck_assert_ptr_nonnull(strstr(out, "\"level\":\"debug\""));
	ck_assert_ptr_nonnull(strstr(out, "\"level\":\"warning\""));
	ck_assert_ptr_nonnull(strstr(out, "\"level\":\"error\""));
	free(out);
}
END_TEST

START_TEST(test_log_request_id)
{
	struct json_object	*o;
	char			*out;

	dp_log_init("check_log", "json", "info");
	dp_log_set_request("req-123");
	cap_begin();
	dp_info("with id");
	out = cap_end(NULL);
	o = one_json(out);
	ck_assert_str_eq(get_str(o, "request_id"), "req-123");
	json_object_put(o);
	free(out);

	dp_log_set_request(NULL);
	cap_begin();
	dp_info("without id");
	out = cap_end(NULL);
	o = one_json(out);
	ck_assert(!has_key(o, "request_id"));
	json_object_put(o);
	free(out);

	/* A hostile id cannot break the line. */
	dp_log_set_request("a\"b\n{\x01");
	cap_begin();
	dp_info("x");
	out = cap_end(NULL);
	o = one_json(out);
	ck_assert_str_eq(get_str(o, "request_id"), "a\"b\\x0a{\\x01");
	json_object_put(o);
	free(out);
	dp_log_set_request(NULL);
}
END_TEST

START_TEST(test_log_access)
{
	struct json_object	*o, *v;
	char			*out;

	dp_log_init("check_log", "json", "info");
	dp_log_set_request("rid");
	cap_begin();
	dp_log_access("GET", "/api/v1/environments/{id}", 404, 12.3456,
	    "0123456789abcdef01234567", "192.0.2.1");
	out = cap_end(NULL);
	o = one_json(out);
	ck_assert_str_eq(get_str(o, "message"), "request");
	ck_assert_str_eq(get_str(o, "level"), "info");
	ck_assert_str_eq(get_str(o, "request_id"), "rid");
	ck_assert_str_eq(get_str(o, "method"), "GET");
	ck_assert_str_eq(get_str(o, "route"), "/api/v1/environments/{id}");
	ck_assert_str_eq(get_str(o, "user_id"), "0123456789abcdef01234567");
	ck_assert_str_eq(get_str(o, "client_ip"), "192.0.2.1");
	ck_assert(json_object_object_get_ex(o, "status", &v));
	ck_assert(json_object_is_type(v, json_type_int));
	ck_assert_int_eq(json_object_get_int(v), 404);
	ck_assert(json_object_object_get_ex(o, "duration_ms", &v));
	ck_assert(json_object_is_type(v, json_type_double));
	ck_assert_double_eq_tol(json_object_get_double(v), 12.346, 1e-9);
	/* Slashes stay readable. */
	ck_assert_ptr_nonnull(strstr(out, "/api/v1/environments/{id}"));
	json_object_put(o);
	free(out);

	/* Anonymous: user_id is null; a silly duration is clamped. */
	dp_log_set_request(NULL);
	cap_begin();
	dp_log_access("POST", "/api/v1/auth/login", 401, -5.0, NULL, NULL);
	out = cap_end(NULL);
	o = one_json(out);
	ck_assert(json_object_object_get_ex(o, "user_id", &v));
	ck_assert_ptr_null(v);
	ck_assert(json_object_object_get_ex(o, "duration_ms", &v));
	ck_assert_double_eq(json_object_get_double(v), 0);
	json_object_put(o);
	free(out);
}
END_TEST

START_TEST(test_log_escape)
{
	struct json_object	*o;
	char			*out;
	const char		*m;
	size_t			 len, i;

	dp_log_init("check_log", "json", "info");
	dp_log_set_request(NULL);
	cap_begin();
	dp_info("a\x01" "b\nc\x1b[0m\"d\\e\t\x7f");
	out = cap_end(&len);
	/* No raw control byte except the final newline. */
	for (i = 0; i + 1 < len; i++)
		ck_assert_msg((unsigned char)out[i] >= 0x20, "raw 0x%02x at %zu",
		    (unsigned char)out[i], i);
	o = one_json(out);
	ck_assert_str_eq(get_str(o, "message"),
	    "a\x01" "b\nc\x1b[0m\"d\\e\t\x7f");
	json_object_put(o);
	free(out);

	/* Invalid UTF-8 becomes U+FFFD; valid multi-byte text is kept. */
	cap_begin();
	dp_info("bad \xff\xfe \xc3\x28 \xed\xa0\x80 ok \xc3\xa9\xe2\x82\xac");
	out = cap_end(NULL);
	ck_assert(utf8_ok(out));
	o = one_json(out);
	m = get_str(o, "message");
	ck_assert_str_eq(m, "bad \xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd( "
	    "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd ok \xc3\xa9\xe2\x82\xac");
	json_object_put(o);
	free(out);

	/*
	 * Written directly, a line is what json-c writes for the object it
	 * reads back (the form the lines had when json-c built them): every
	 * control character, quote, backslash, slash and DEL included.
	 */
	{
		char	 msg[64];
		int	 c;

		for (c = 1; c < 0x20; c++)
			msg[c - 1] = (char)c;
		memcpy(msg + 31, "\"\\/\x7f\xc3\xa9", 7);	/* and the NUL */
		cap_begin();
		dp_log_set_request("r\"1");
		dp_info("%s", msg);
		dp_log_access("GET", "/x\n", 200, 1.5, NULL, "\x01");
		dp_log_set_request(NULL);
		out = cap_end(&len);
		for (m = out; *m != '\0'; m = strchr(m, '\n') + 1) {
			size_t	 ll = (size_t)(strchr(m, '\n') - m);

			o = json_tokener_parse(m);
			ck_assert_ptr_nonnull(o);
			ck_assert_uint_eq(strlen(json_object_to_json_string_ext(o,
			    JSON_C_TO_STRING_PLAIN |
			    JSON_C_TO_STRING_NOSLASHESCAPE)), ll);
			ck_assert(strncmp(json_object_to_json_string_ext(o,
			    JSON_C_TO_STRING_PLAIN |
			    JSON_C_TO_STRING_NOSLASHESCAPE), m, ll) == 0);
			json_object_put(o);
		}
		free(out);
	}

	/* A NUL made by %c does not end the line early. */
	cap_begin();
	dp_info("x%cy", '\0');
	out = cap_end(&len);
	ck_assert_uint_eq(strlen(out), len);
	ck_assert_ptr_nonnull(strstr(out, "x\\u0000y"));
	free(out);
}
END_TEST

START_TEST(test_log_truncate)
{
	struct json_object	*o;
	char			*big, *out;
	size_t			 n = 100000;

	big = malloc(n + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', n);
	/* A two-byte character straddling the cut. */
	big[8191] = '\xc3';
	big[8192] = '\xa9';
	big[n] = '\0';
	dp_log_init("check_log", "json", "info");
	cap_begin();
	dp_info("%s", big);
	out = cap_end(NULL);
	ck_assert(utf8_ok(out));
	o = one_json(out);
	/* 8191 'x' and U+FFFD for the half character. */
	ck_assert_uint_eq(strlen(get_str(o, "message")), 8191 + 3);
	json_object_put(o);
	free(out);
	free(big);
}
END_TEST

START_TEST(test_log_threshold)
{
	char	*out;
	size_t	 len;

	dp_log_init("check_log", "json", "warning");
	cap_begin();
	dp_debug("no");
	dp_info("no");
	dp_log_access("GET", "/", 200, 1, NULL, NULL);
	out = cap_end(&len);
	ck_assert_uint_eq(len, 0);
	free(out);

	cap_begin();
	dp_warn("yes");
	dp_error("yes");
	out = cap_end(NULL);
	ck_assert_ptr_nonnull(strstr(out, "\"level\":\"warning\""));
	ck_assert_ptr_nonnull(strstr(out, "\"level\":\"error\""));
	free(out);

	dp_log_init("check_log", "json", "error");
	cap_begin();
	dp_warn("no");
	out = cap_end(&len);
	ck_assert_uint_eq(len, 0);
	free(out);

	/* Unknown level and format fall back to info and json. */
	dp_log_init("check_log", "yaml", "loud");
	cap_begin();
	dp_debug("no");
	dp_info("yes");
	out = cap_end(NULL);
	json_object_put(one_json(out));
	free(out);
}
END_TEST

START_TEST(test_log_text)
{
	char	*out, want[128];

	dp_log_init("check_log", "text", "info");
	dp_log_set_request(NULL);
	cap_begin();
	dp_info("plain \x01 and \x1b[31m red \\ done");
	out = cap_end(NULL);
	/* "2024-05-01T12:00:00.123456Z info check_log[pid]: ..." */
	ck_assert_uint_gt(strlen(out), 28);
	out[27] = '\0';
	assert_time(out);
	snprintf(want, sizeof(want), "info check_log[%ld]: ", (long)getpid());
	ck_assert_msg(strncmp(out + 28, want, strlen(want)) == 0, "%s",
	    out + 28);
	ck_assert_str_eq(out + 28 + strlen(want),
	    "plain \\x01 and \\x1b[31m red \\x5c done\n");
	free(out);

	dp_log_set_request("r1");
	cap_begin();
	dp_info("msg");
	dp_log_access("GET", "/api/v1/health", 200, 1.5, NULL, "::1");
	out = cap_end(NULL);
	ck_assert_ptr_nonnull(strstr(out, ": msg (request_id=r1)\n"));
	ck_assert_ptr_nonnull(strstr(out, ": request (request_id=r1 method=GET "
	    "route=/api/v1/health status=200 duration_ms=1.500 user_id=- "
	    "client_ip=::1)\n"));
	free(out);
	dp_log_set_request(NULL);

	/* Invalid UTF-8 and C1 controls are escaped too. */
	cap_begin();
	dp_info("\xff\xc2\x9b" "\xc3\xa9");
	out = cap_end(NULL);
	ck_assert_ptr_nonnull(strstr(out, ": \\xff\\xc2\\x9b\xc3\xa9\n"));
	free(out);
}
END_TEST

/* Several processes logging at once never interleave within a line. */
START_TEST(test_log_atomic)
{
	struct json_object	*o;
	char			*out, *line, *save = NULL, msg[3000];
	int			 fd, i, j, status, lines = 0;
	pid_t			 pid[4];
	const int		 per = 200;

	dp_log_init("check_log", "json", "info");
	dp_log_set_request(NULL);
	cap_begin();
	/* O_APPEND so that each write(2) lands whole at the end. */
	fd = open(cap_path, O_WRONLY | O_APPEND);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_ge(dup2(fd, STDERR_FILENO), 0);
	close(fd);
	for (i = 0; i < 4; i++) {
		pid[i] = fork();
		ck_assert_int_ge(pid[i], 0);
		if (pid[i] == 0) {
			memset(msg, 'a' + i, sizeof(msg) - 1);
			msg[sizeof(msg) - 1] = '\0';
			for (j = 0; j < per; j++)
				dp_info("%d %s", j, msg);
			_exit(0);
		}
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(waitpid(pid[i], &status, 0), pid[i]);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	out = cap_end(NULL);
	for (line = strtok_r(out, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		o = json_tokener_parse(line);
		ck_assert_msg(o != NULL, "torn line");
		ck_assert_uint_gt(strlen(get_str(o, "message")), 3000);
		json_object_put(o);
		lines++;
	}
	ck_assert_int_eq(lines, 4 * per);
	free(out);
}
END_TEST

START_TEST(test_log_program)
{
	struct json_object	*o;
	char			*out;

	dp_log_init("evil\nprog\"", "json", "info");
	cap_begin();
	dp_info("x");
	out = cap_end(NULL);
	o = one_json(out);
	ck_assert_str_eq(get_str(o, "program"), "evil\\x0aprog\"");
	json_object_put(o);
	free(out);
	/* NULL keeps the previous name. */
	dp_log_init(NULL, NULL, NULL);
	dp_log_init("check_log", "json", "info");
}
END_TEST

static Suite *
log_suite(void)
{
	Suite	*s = suite_create("log");
	struct {
		const char	*name;
		const TTest	*test;
	} tests[] = {
		{ "json", test_log_json },
		{ "request_id", test_log_request_id },
		{ "access", test_log_access },
		{ "escape", test_log_escape },
		{ "truncate", test_log_truncate },
		{ "threshold", test_log_threshold },
		{ "text", test_log_text },
		{ "atomic", test_log_atomic },
		{ "program", test_log_program },
	};
	TCase	*tc;
	size_t	 i;

	for (i = 0; i < DP_NITEMS(tests); i++) {
		tc = tcase_create(tests[i].name);
		tcase_add_test(tc, tests[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(log_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
