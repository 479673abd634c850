/* tests/unit/check_envs.c: resources, transitions and install-log parsing */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "config.h"
#include "http.h"
#include "envs.h"
#include "lifecycle.h"
#include "validate.h"

#define GI	(1LL << 30)
#define MI	(1LL << 20)

START_TEST(test_envs_status_names)
{
	int	 i;

	for (i = 0; i < DP_ENV__MAX; i++)
		ck_assert_int_eq(dp_env_status_from_name(dp_env_status_names[i]),
		    i);
	ck_assert_ptr_null(dp_env_status_names[DP_ENV__MAX]);
	ck_assert_int_eq(dp_env_status_from_name("Running"), -1);
	ck_assert_int_eq(dp_env_status_from_name(""), -1);
	ck_assert_int_eq(dp_env_status_from_name(NULL), -1);
	ck_assert_int_eq(dp_env_status_from_name("running "), -1);
}
END_TEST

/* The whole §2.4 table, cell by cell. */
START_TEST(test_envs_transition_table)
{
	static const struct {
		enum dp_env_status	 from, to;
		enum dp_env_effect	 eff;
	} allowed[] = {
		{ DP_ENV_CREATING, DP_ENV_RUNNING, DP_EFF_ACCEPT },
		{ DP_ENV_CREATING, DP_ENV_ERROR, DP_EFF_ERROR },
		{ DP_ENV_INSTALLING, DP_ENV_STOPPED, DP_EFF_STOP },
		{ DP_ENV_INSTALLING, DP_ENV_ERROR, DP_EFF_ERROR },
		{ DP_ENV_INSTALLING, DP_ENV_TERMINATED, DP_EFF_DELETE },
		{ DP_ENV_RUNNING, DP_ENV_STOPPED, DP_EFF_STOP },
		{ DP_ENV_RUNNING, DP_ENV_ERROR, DP_EFF_ERROR },
		{ DP_ENV_RUNNING, DP_ENV_TERMINATED, DP_EFF_DELETE },
		{ DP_ENV_STOPPED, DP_ENV_RUNNING, DP_EFF_START },
		{ DP_ENV_STOPPED, DP_ENV_TERMINATED, DP_EFF_DELETE },
		{ DP_ENV_ERROR, DP_ENV_RUNNING, DP_EFF_START },
		{ DP_ENV_ERROR, DP_ENV_TERMINATED, DP_EFF_DELETE },
	};
	enum dp_env_effect	 want;
	size_t			 k;
	int			 f, t;

	for (f = 0; f < DP_ENV__MAX; f++)
		for (t = 0; t < DP_ENV__MAX; t++) {
			want = f == t ? DP_EFF_NONE : DP_EFF_INVALID;
			for (k = 0; k < DP_NITEMS(allowed); k++)
				if ((int)allowed[k].from == f &&
				    (int)allowed[k].to == t)
					want = allowed[k].eff;
			ck_assert_msg(dp_env_transition(f, t) == want,
			    "%s -> %s: got %s, want %s",
			    dp_env_status_names[f], dp_env_status_names[t],
			    dp_env_effect_names[dp_env_transition(f, t)],
			    dp_env_effect_names[want]);
		}
	/* Out-of-range values are invalid, never an array overrun. */
	ck_assert_int_eq(dp_env_transition(DP_ENV__MAX, DP_ENV_RUNNING),
	    DP_EFF_INVALID);
	ck_assert_int_eq(dp_env_transition(DP_ENV_RUNNING, -1),
	    DP_EFF_INVALID);
}
END_TEST

START_TEST(test_envs_actions)
{
	static const char *const start[] = { "stopped", "error", NULL };
	static const char *const stop[] = { "running", "installing", NULL };
	static const char *const restart[] = { "running", "stopped", "error",
	    NULL };
	static const char *const *const lists[DP_ACT__MAX] = { start, stop,
	    restart };
	const char *const	*l;
	bool			 in;
	int			 a, s;

	for (a = 0; a < DP_ACT__MAX; a++)
		for (s = 0; s < DP_ENV__MAX; s++) {
			in = false;
			for (l = lists[a]; *l != NULL; l++)
				in |= strcmp(*l, dp_env_status_names[s]) == 0;
			ck_assert_msg(dp_env_action_allowed(a, s) == in,
			    "action %d from %s", a, dp_env_status_names[s]);
		}
}
END_TEST

START_TEST(test_envs_check_resource)
{
	int64_t	 v = -7;

	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU, "1000m", 5,
	    1000, &v), DP_V_OK);
	ck_assert_int_eq(v, 1000);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU, "1", 1, 1000, &v),
	    DP_V_OK);
	ck_assert_int_eq(v, 1000);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU, "1.001", 5, 1000,
	    &v), DP_V_OUT_OF_RANGE);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU, "99m", 3, 1000,
	    &v), DP_V_OUT_OF_RANGE);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU, "-1", 2, 1000, &v),
	    DP_V_PATTERN);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU, "1 m", 3, 1000,
	    &v), DP_V_PATTERN);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU,
	    "99999999999999999999999m", 24, 1000, &v), DP_V_OUT_OF_RANGE);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_CPU, "1\0m", 3, 1000,
	    &v), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_MEMORY, "128Mi", 5,
	    2 * GI, &v), DP_V_OK);
	ck_assert_int_eq(v, 128 * MI);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_MEMORY, "127Mi", 5,
	    2 * GI, &v), DP_V_OUT_OF_RANGE);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_MEMORY, "3Gi", 3,
	    2 * GI, &v), DP_V_OUT_OF_RANGE);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_MEMORY, "2G", 2,
	    2 * GI, &v), DP_V_PATTERN);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_MEMORY, "\xff\xfe", 2,
	    2 * GI, &v), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_STORAGE, "1023Mi", 6,
	    10 * GI, &v), DP_V_OUT_OF_RANGE);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_STORAGE, "1Gi", 3,
	    10 * GI, &v), DP_V_OK);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_STORAGE, "10Gi", 4,
	    10 * GI, &v), DP_V_OK);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_STORAGE, "0Gi", 3,
	    10 * GI, &v), DP_V_PATTERN);
	ck_assert_int_eq(dp_env_check_resource(DP_RES_STORAGE, "", 0,
	    10 * GI, &v), DP_V_PATTERN);
}
END_TEST

/* §4.3 examples: rust on free, python on pro; canonical forms. */
START_TEST(test_envs_defaults)
{
	struct dp_config	 cfg;
	struct dp_resources	 def, max, t, out;
	char			 b[32];

	memset(&cfg, 0, sizeof(cfg));
	dp_config_defaults(&cfg);
	ck_assert_int_eq(dp_env_plan_resources(&cfg.plans[DP_PLAN_FREE], &def,
	    &max), 0);
	t.v[DP_RES_CPU] = 1000;
	t.v[DP_RES_MEMORY] = 2 * GI;
	t.v[DP_RES_STORAGE] = 15 * GI;
	dp_env_default_resources(&t, &def, &max, &out);
	dp_env_format_resource(DP_RES_CPU, out.v[0], b, sizeof(b));
	ck_assert_str_eq(b, "1000m");
	dp_env_format_resource(DP_RES_MEMORY, out.v[1], b, sizeof(b));
	ck_assert_str_eq(b, "2Gi");
	dp_env_format_resource(DP_RES_STORAGE, out.v[2], b, sizeof(b));
	ck_assert_str_eq(b, "10Gi");

	ck_assert_int_eq(dp_env_plan_resources(&cfg.plans[DP_PLAN_PRO], &def,
	    &max), 0);
	t.v[DP_RES_CPU] = 500;
	t.v[DP_RES_MEMORY] = GI;
	t.v[DP_RES_STORAGE] = 10 * GI;
	dp_env_default_resources(&t, &def, &max, &out);
	ck_assert_int_eq(out.v[0], 2000);
	ck_assert_int_eq(out.v[1], 4 * GI);
	ck_assert_int_eq(out.v[2], 20 * GI);
	/* An absent template default counts as nothing. */
	memset(&t, 0, sizeof(t));
	dp_env_default_resources(&t, &def, &max, &out);
	ck_assert_int_eq(out.v[0], 2000);
	dp_env_default_resources(NULL, &def, &max, &out);
	ck_assert_int_eq(out.v[2], 20 * GI);
	dp_env_format_resource(DP_RES_MEMORY, 1536 * MI, b, sizeof(b));
	ck_assert_str_eq(b, "1536Mi");
	dp_env_format_resource(DP_RES_STORAGE, 1LL << 40, b, sizeof(b));
	ck_assert_str_eq(b, "1Ti");
	dp_config_release(&cfg);
}
END_TEST

START_TEST(test_envs_parse_resource)
{
	int64_t	 v = 0;

	ck_assert_int_eq(dp_env_parse_resource(DP_RES_CPU, "50m", &v), 0);
	ck_assert_int_eq(v, 50);
	ck_assert_int_eq(dp_env_parse_resource(DP_RES_CPU, "0m", &v), -1);
	ck_assert_int_eq(dp_env_parse_resource(DP_RES_CPU, "m", &v), -1);
	ck_assert_int_eq(dp_env_parse_resource(DP_RES_CPU, "-5m", &v), -1);
	ck_assert_int_eq(dp_env_parse_resource(DP_RES_MEMORY, "1Ki", &v), 0);
	ck_assert_int_eq(v, 1024);
	ck_assert_int_eq(dp_env_parse_resource(DP_RES_MEMORY, NULL, &v), -1);
	ck_assert_int_eq(dp_env_parse_resource(DP_RES__MAX, "1Gi", &v), -1);
}
END_TEST

START_TEST(test_envs_clean_text)
{
	struct dp_buf	 b = { 0 };
	char		 big[20000];

	dp_env_clean_text(&b, "ok \xc3\xa9", 5);
	ck_assert_str_eq(b.s, "ok \xc3\xa9");
	dp_buf_reset(&b);
	/* NUL, a lone continuation byte, a truncated sequence, a surrogate,
	 * an overlong form. */
	dp_env_clean_text(&b, "a\0b\x80" "c\xe2\x82" "d\xed\xa0\x80" "e\xc0\xaf",
	    14);
	ck_assert_str_eq(b.s, "a\xef\xbf\xbd" "b\xef\xbf\xbd" "c\xef\xbf\xbd"
	    "\xef\xbf\xbd" "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
	    "e\xef\xbf\xbd\xef\xbf\xbd");
	ck_assert_int_eq(dp_utf8_valid(b.s, b.len), true);
	dp_buf_release(&b);
	memset(big, 'x', sizeof(big));
	ck_assert_uint_eq(dp_env_prefix_chars(big, sizeof(big), 8192), 8192);
	ck_assert_uint_eq(dp_env_prefix_chars("\xc3\xa9\xc3\xa9", 4, 1), 2);
	ck_assert_uint_eq(dp_env_prefix_chars("ab", 2, 8192), 2);
}
END_TEST

static const char *
entry(struct json_object *a, size_t i, int part)
{
	return json_object_get_string(json_object_array_get_idx(
	    json_object_array_get_idx(a, i), part));
}

START_TEST(test_envs_parse_log)
{
	static const char log[] =
	    "devpocket: note\n"
	    "##devpocket:begin 3\n"
	    "##devpocket:step 1/3 echo hi\n"
	    "hi\r\n"
	    "\n"
	    "##devpocket:step 2/3 false\n"
	    "##devpocket:warn 1 false\n"
	    "##devpocket:bogus marker\n"
	    "##devpocket:done 1\n"
	    "after done\n";
	static const char failing[] = "x\n##devpocket:fail tmux \xff died\n";
	static const char hostile[] = "##devpocket:warn x y\n##devpocket:step\n"
	    "##devpocket:done 99999999999999999999999\n##devpocket:\n";
	struct json_object	*a = json_object_new_array();
	int64_t			 done;
	char			*fail;

	dp_lifecycle_parse_log(log, sizeof(log) - 1, a, &done, &fail);
	ck_assert_int_eq(done, 1);
	ck_assert_ptr_null(fail);
	ck_assert_uint_eq(json_object_array_length(a), 5);
	ck_assert_str_eq(entry(a, 0, 1), "devpocket: note");
	ck_assert_str_eq(entry(a, 1, 1), "Running step 1/3: echo hi");
	ck_assert_str_eq(entry(a, 2, 1), "hi");
	ck_assert_str_eq(entry(a, 3, 1), "Running step 2/3: false");
	ck_assert_str_eq(entry(a, 4, 0), "warning");
	ck_assert_str_eq(entry(a, 4, 1), "Command failed (exit 1): false");
	json_object_put(a);

	a = json_object_new_array();
	dp_lifecycle_parse_log(failing, sizeof(failing) - 1, a, &done, &fail);
	ck_assert_int_eq(done, -1);
	ck_assert_ptr_nonnull(fail);
	ck_assert_str_eq(fail, "tmux \xef\xbf\xbd died");
	free(fail);
	json_object_put(a);

	/* Hostile markers: no number, huge number, empty. */
	a = json_object_new_array();
	dp_lifecycle_parse_log(hostile, sizeof(hostile) - 1, a, &done, &fail);
	ck_assert_int_eq(done, 0);
	ck_assert_ptr_null(fail);
	json_object_put(a);
}
END_TEST

/* A line over 8192 code points becomes several entries; NUL survives as
 * U+FFFD, never truncating. */
START_TEST(test_envs_parse_log_split)
{
	struct json_object	*a = json_object_new_array();
	size_t			 n = 3 * 8192 + 5, i, total = 0;
	char			*buf = malloc(n + 1);
	int64_t			 done;
	char			*fail;

	memset(buf, 'y', n);
	buf[100] = '\0';
	buf[n] = '\n';
	dp_lifecycle_parse_log(buf, n + 1, a, &done, &fail);
	ck_assert_uint_eq(json_object_array_length(a), 4);
	for (i = 0; i < 4; i++) {
		ck_assert_str_eq(entry(a, i, 0), "info");
		total += (size_t)dp_utf8_len(entry(a, i, 1),
		    strlen(entry(a, i, 1)));
	}
	ck_assert_uint_eq(total, n);
	free(buf);
	json_object_put(a);
}
END_TEST

/*
 * An Environment row written as JSON text: every kind of column, hostile
 * strings, NULLs; exactly the expected text, and json-c reading it back
 * and serializing it gives the same bytes (the writer writes what json-c
 * would).  Needs DP_TEST_DB for a real PGresult (skipped without).
 */
START_TEST(test_envs_write)
{
	static const char sql[] =
	    "SELECT 'aaaaaaaaaaaaaaaaaaaaaaaa', E'q\"b\\\\n\\nt\\t\\x01\\u00e9'"
	    " || U&'\\+01F600', NULL, 'python', 'tttttttttttttttttttttttt', "
	    "'Python 3', 'running', 'python:3.12', 8080, '500m', '1Gi', "
	    "'10Gi', '{\"B\": \"a\\\"b\", \"A\": \"x, y: z\"}'::jsonb, true, "
	    "NULL, 'cccccccccccccccccccccccc', 'us-east', "
	    "'2024-01-02 03:04:05.5+00'::timestamptz, "
	    "'2024-01-02 03:04:05+00'::timestamptz, NULL, "
	    "'2024-01-02 03:04:05.1234567+00'::timestamptz, 3::float8, NULL, "
	    "1048576::bigint";
	static const char want[] = "{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaa\","
	    "\"name\":\"q\\\"b\\\\n\\nt\\t\\u0001\xc3\xa9\xf0\x9f\x98\x80\","
	    "\"description\":null,\"template\":\"python\","
	    "\"template_id\":\"tttttttttttttttttttttttt\","
	    "\"template_name\":\"Python 3\",\"status\":\"running\","
	    "\"docker_image\":\"python:3.12\",\"port\":8080,\"web_port\":8080,"
	    "\"ssh_port\":null,\"resources\":{\"cpu\":\"500m\","
	    "\"memory\":\"1Gi\",\"storage\":\"10Gi\"},\"resource_limits\":"
	    "{\"cpu\":\"500m\",\"memory\":\"1Gi\",\"storage\":\"10Gi\"},"
	    "\"environment_variables\":{\"A\":\"x, y: z\",\"B\":\"a\\\"b\"},"
	    "\"installation_completed\":true,\"external_url\":null,"
	    "\"cluster_id\":\"cccccccccccccccccccccccc\",\"region\":\"us-east\","
	    "\"created_at\":\"2024-01-02T03:04:05.500000Z\","
	    "\"updated_at\":\"2024-01-02T03:04:05.000000Z\","
	    "\"last_accessed\":null,"
	    "\"last_activity\":\"2024-01-02T03:04:05.123457Z\","
	    "\"cpu_usage\":3.0,\"memory_usage\":0.0,\"storage_usage\":1048576}";
	const char		*ci = getenv("DP_TEST_DB");
	struct dp_buf		 b = { 0 };
	struct json_object	*o;
	PGconn			*c;
	PGresult		*r;

	if (ci == NULL || *ci == '\0')
		return;
	c = PQconnectdb(ci);
	ck_assert_int_eq(PQstatus(c), CONNECTION_OK);
	PQclear(PQexec(c, "SET TimeZone = 'UTC'"));
	r = PQexec(c, sql);
	ck_assert_msg(PQresultStatus(r) == PGRES_TUPLES_OK, "%s",
	    PQerrorMessage(c));
	ck_assert_int_eq(PQnfields(r), DP_ENV_NCOLS);
	dp_env_write(&b, r, 0, 0);
	ck_assert_str_eq(b.s, want);
	o = dp_json_parse(b.s, b.len, 8);
	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), want);
	json_object_put(o);
	/* The json-c value serializes to the same text. */
	o = dp_env_json(r, 0, 0);
	ck_assert_str_eq(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE), want);
	json_object_put(o);
	dp_buf_release(&b);
	PQclear(r);
	PQfinish(c);
}
END_TEST

static Suite *
envs_suite(void)
{
	Suite	*s = suite_create("envs");
	TCase	*tc;

	tc = tcase_create("status_names");
	tcase_add_test(tc, test_envs_status_names);
	suite_add_tcase(s, tc);
	tc = tcase_create("transition_table");
	tcase_add_test(tc, test_envs_transition_table);
	suite_add_tcase(s, tc);
	tc = tcase_create("actions");
	tcase_add_test(tc, test_envs_actions);
	suite_add_tcase(s, tc);
	tc = tcase_create("check_resource");
	tcase_add_test(tc, test_envs_check_resource);
	suite_add_tcase(s, tc);
	tc = tcase_create("defaults");
	tcase_add_test(tc, test_envs_defaults);
	suite_add_tcase(s, tc);
	tc = tcase_create("parse_resource");
	tcase_add_test(tc, test_envs_parse_resource);
	suite_add_tcase(s, tc);
	tc = tcase_create("clean_text");
	tcase_add_test(tc, test_envs_clean_text);
	suite_add_tcase(s, tc);
	tc = tcase_create("parse_log");
	tcase_add_test(tc, test_envs_parse_log);
	tcase_add_test(tc, test_envs_parse_log_split);
	suite_add_tcase(s, tc);
	tc = tcase_create("write");
	tcase_add_test(tc, test_envs_write);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(envs_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
