/* tests/unit/check_templates.c: catalog files (CONTRACT §5), loading, lookup, JSON */
/*
 * The parser tests need nothing.  The database tests need DP_TEST_DB (a
 * libpq conninfo, e.g. from tests/pgtmp.sh start DIR); they work in a
 * private schema built from sql/NNN_*.sql (override the folder with
 * DP_SQL_DIR) that is dropped at the end.  Without DP_TEST_DB they are
 * left out and the parser tests still run.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <json-c/json.h>

#include "db.h"
#include "http.h"
#include "log.h"
#include "templates.h"
#include "util.h"
#include "pgschema.h"

static const char	*conninfo;
static char		 schema[64];
static struct dp_db	*db;
static char		 tmpdir[] = "/tmp/check_templates.XXXXXX";

/* --- helpers ------------------------------------------------------------ */

/* <checkout>/rel: ./rel when run from the checkout, else from the
 * program's path (build/tests/check_templates). */
static const char *
src(const char *rel)
{
	static char	 buf[3][4096];
	static int	 k;
	char		 exe[4000], *slash;
	struct stat	 st;
	ssize_t		 n;
	int		 i;

	k = (k + 1) % 3;
	if (stat("sql", &st) == 0 && S_ISDIR(st.st_mode)) {
		(void)snprintf(buf[k], sizeof(buf[k]), "%s", rel);
		return buf[k];
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	ck_assert(n > 0);
	exe[n] = '\0';
	for (i = 0; i < 3; i++) {
		slash = strrchr(exe, '/');
		ck_assert(slash != NULL);
		*slash = '\0';
	}
	(void)snprintf(buf[k], sizeof(buf[k]), "%s/%s", exe, rel);
	return buf[k];
}

static const char base_doc[] =
    "name: t\n"
    "display_name: T\n"
    "description: D\n"
    "category: devops\n"
    "docker_image: alpine:3.19\n";

/* Parse text as file "t.yaml"; the caller releases *t on success. */
static int
parse(const char *text, size_t len, struct dp_template *t,
    struct dp_err *err)
{
	memset(err, 0, sizeof(*err));
	return dp_template_parse_buf("t.yaml", text, len, t, err);
}

/* base_doc followed by extra. */
static char *
with(const char *extra)
{
	struct dp_buf	 b = { 0 };

	dp_buf_adds(&b, base_doc);
	dp_buf_adds(&b, extra);
	return dp_buf_detach(&b);
}

static void
expect_ok(const char *text)
{
	struct dp_template	 t;
	struct dp_err		 err;

	ck_assert_msg(parse(text, strlen(text), &t, &err) == 0,
	    "rejected: %s\n---\n%s", err.msg, text);
	dp_template_release(&t);
}

/* Rejected with a message containing want, at line (0 = any). */
static void
expect_bad(const char *text, size_t len, const char *want, size_t line)
{
	struct dp_template	 t;
	struct dp_err		 err;
	char			 prefix[32];

	ck_assert_msg(parse(text, len, &t, &err) == -1,
	    "accepted (wanted '%s'):\n%.300s", want, text);
	ck_assert_msg(strstr(err.msg, want) != NULL, "message '%s' lacks "
	    "'%s'", err.msg, want);
	ck_assert_msg(strncmp(err.msg, "t.yaml:", 7) == 0, "message '%s'",
	    err.msg);
	if (line > 0) {
		(void)snprintf(prefix, sizeof(prefix), "t.yaml:%zu: ", line);
		ck_assert_msg(strncmp(err.msg, prefix, strlen(prefix)) == 0,
		    "message '%s', wanted line %zu", err.msg, line);
	}
	/* A rejected parse leaves nothing behind. */
	ck_assert_ptr_null(t.name);
	ck_assert_ptr_null(t.tags.v);
}

static void
expect_bad_s(const char *text, const char *want, size_t line)
{
	expect_bad(text, strlen(text), want, line);
}

static void
expect_bad_extra(const char *extra, const char *want, size_t line)
{
	char	*s = with(extra);

	expect_bad(s, strlen(s), want, line);
	free(s);
}

/* --- the shipped catalog -------------------------------------------------- */

START_TEST(test_templates_catalog)
{
	static const char *const names[] = {
		"golang", "nodejs", "python", "rust", "ubuntu"
	};
	struct dp_template	 t;
	struct dp_err		 err;
	char			 path[4200];
	size_t			 i, j;

	for (i = 0; i < DP_NITEMS(names); i++) {
		(void)snprintf(path, sizeof(path), "%s/%s.yaml",
		    src("templates/environments"), names[i]);
		ck_assert_msg(dp_template_parse_file(path, &t, &err) == 0,
		    "%s", err.msg);
		ck_assert_str_eq(t.name, names[i]);
		ck_assert_str_eq(t.version, "1.0.0");
		ck_assert_str_eq(t.status, "active");
		ck_assert_ptr_null(t.icon_url);
		ck_assert_ptr_nonnull(t.documentation_url);
		ck_assert(t.has_local);
		ck_assert_uint_gt(t.local_startup_commands.n, 0);
		ck_assert_uint_gt(t.startup_commands.n, 0);
		/* Never a package manager or sudo in the local steps. */
		for (j = 0; j < t.local_startup_commands.n; j++) {
			const char *c = t.local_startup_commands.v[j];

			ck_assert_msg(strstr(c, "apt-get") == NULL &&
			    strstr(c, "sudo") == NULL &&
			    strstr(c, "pip install") == NULL &&
			    strstr(c, "npm install") == NULL &&
			    strstr(c, "cargo install") == NULL &&
			    strstr(c, "go install") == NULL, "%s: %s",
			    names[i], c);
		}
		dp_template_release(&t);
	}

	(void)snprintf(path, sizeof(path), "%s/python.yaml",
	    src("templates/environments"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), 0);
	ck_assert_str_eq(t.display_name, "Python 3.11");
	ck_assert_str_eq(t.description,
	    "Python 3.11 with pip, virtualenv, Flask and Django");
	ck_assert_str_eq(t.category, "programming_language");
	ck_assert_uint_eq(t.tags.n, 5);
	ck_assert_str_eq(t.tags.v[0], "python");
	ck_assert_str_eq(t.tags.v[4], "django");
	ck_assert_str_eq(t.docker_image, "python:3.11-slim");
	ck_assert_int_eq(t.default_port, 8080);
	ck_assert_str_eq(t.cpu, "500m");
	ck_assert_str_eq(t.memory, "1Gi");
	ck_assert_str_eq(t.storage, "10Gi");
	ck_assert_uint_eq(t.env_keys.n, 2);
	ck_assert_str_eq(t.env_keys.v[0], "PYTHONUNBUFFERED");
	ck_assert_str_eq(t.env_values.v[0], "1");
	ck_assert_str_eq(t.env_keys.v[1], "PIP_DISABLE_PIP_VERSION_CHECK");
	ck_assert_uint_eq(t.startup_commands.n, 3);
	ck_assert_str_eq(t.startup_commands.v[0], "apt-get update && "
	    "apt-get install -y --no-install-recommends git curl");
	ck_assert_str_eq(t.startup_commands.v[2],
	    "pip install --no-cache-dir flask django");
	ck_assert_str_eq(t.documentation_url, "https://docs.python.org/3.11/");
	dp_template_release(&t);

	(void)snprintf(path, sizeof(path), "%s/rust.yaml",
	    src("templates/environments"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), 0);
	ck_assert_str_eq(t.cpu, "1000m");
	ck_assert_str_eq(t.memory, "2Gi");
	ck_assert_str_eq(t.storage, "15Gi");
	dp_template_release(&t);

	(void)snprintf(path, sizeof(path), "%s/golang.yaml",
	    src("templates/environments"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), 0);
	ck_assert_str_eq(t.docker_image, "golang:1.21-alpine");
	ck_assert_uint_eq(t.env_keys.n, 3);
	ck_assert_str_eq(t.env_keys.v[1], "GO111MODULE");
	ck_assert_str_eq(t.env_values.v[1], "on");
	ck_assert_str_eq(t.env_values.v[2], "/usr/local/bin");
	dp_template_release(&t);
}
END_TEST

/* --- good files ----------------------------------------------------------- */

START_TEST(test_templates_fixture_every_key)
{
	struct dp_template	 t;
	struct dp_err		 err;
	char			 path[4200];

	(void)snprintf(path, sizeof(path), "%s/extra.yaml",
	    src("tests/fixtures/templates"));
	ck_assert_msg(dp_template_parse_file(path, &t, &err) == 0, "%s",
	    err.msg);
	ck_assert_str_eq(t.name, "extra");
	ck_assert_str_eq(t.display_name, "Extra: every key");
	ck_assert_str_eq(t.description, "A folded description over two lines");
	ck_assert_str_eq(t.category, "database");
	ck_assert_uint_eq(t.tags.n, 3);
	ck_assert_str_eq(t.tags.v[1], "yes");
	ck_assert_str_eq(t.tags.v[2], "1.0");
	ck_assert_str_eq(t.docker_image,
	    "registry.example.com:5000/team/postgres:15.4-alpine");
	ck_assert_int_eq(t.default_port, 5432);
	ck_assert_str_eq(t.cpu, "1.5");
	ck_assert_str_eq(t.memory, "512Mi");
	ck_assert_str_eq(t.storage, "2Gi");
	ck_assert_uint_eq(t.env_keys.n, 5);
	ck_assert_str_eq(t.env_values.v[0], "app");
	ck_assert_str_eq(t.env_values.v[1], "true");
	ck_assert_str_eq(t.env_values.v[2], "42");
	ck_assert_str_eq(t.env_values.v[3], "");
	ck_assert_str_eq(t.env_values.v[4], "plain text with spaces");
	ck_assert_uint_eq(t.startup_commands.n, 2);
	ck_assert_str_eq(t.startup_commands.v[1], "echo two\necho three\n");
	ck_assert(t.has_local);
	ck_assert_uint_eq(t.local_startup_commands.n, 0);
	ck_assert_str_eq(t.icon_url, "https://example.com/icons/pg.svg");
	ck_assert_str_eq(t.status, "beta");
	ck_assert_str_eq(t.version, "2.0.0-rc.1");
	dp_template_release(&t);
	/* Releasing twice (a zeroed struct) is harmless. */
	dp_template_release(&t);
}
END_TEST

START_TEST(test_templates_defaults)
{
	struct dp_template	 t;
	struct dp_err		 err;
	char			*s;

	ck_assert_int_eq(parse(base_doc, strlen(base_doc), &t, &err), 0);
	ck_assert_uint_eq(t.tags.n, 0);
	ck_assert_int_eq(t.default_port, 8080);
	ck_assert_str_eq(t.cpu, "500m");
	ck_assert_str_eq(t.memory, "1Gi");
	ck_assert_str_eq(t.storage, "10Gi");
	ck_assert_uint_eq(t.env_keys.n, 0);
	ck_assert_uint_eq(t.startup_commands.n, 0);
	ck_assert(!t.has_local);
	ck_assert_ptr_null(t.documentation_url);
	ck_assert_ptr_null(t.icon_url);
	ck_assert_str_eq(t.status, "active");
	ck_assert_str_eq(t.version, "1.0.0");
	dp_template_release(&t);

	/* Partial resources keep the other defaults; null is the default. */
	s = with("default_resources: {memory: 4Gi}\nlocal_startup_commands: "
	    "~\ndocumentation_url: null\nicon_url:\nversion: 1.0.0\n");
	ck_assert_int_eq(parse(s, strlen(s), &t, &err), 0);
	ck_assert_str_eq(t.cpu, "500m");
	ck_assert_str_eq(t.memory, "4Gi");
	ck_assert_str_eq(t.storage, "10Gi");
	ck_assert(!t.has_local);
	ck_assert_ptr_null(t.documentation_url);
	ck_assert_ptr_null(t.icon_url);
	ck_assert_str_eq(t.version, "1.0.0");
	dp_template_release(&t);
	free(s);
}
END_TEST

START_TEST(test_templates_yaml_forms)
{
	char	*s;

	/* Block and flow styles, comments, CRLF, a BOM, document markers. */
	expect_ok("---\nname: t  # comment\ndisplay_name: 'T'\n"
	    "description: \"D\"\ncategory: devops\ndocker_image: alpine\n"
	    "tags:\n  - a\n  - 'b c'\n...\n");
	expect_ok("name: t\r\ndisplay_name: T\r\ndescription: D\r\n"
	    "category: devops\r\ndocker_image: alpine:3.19\r\n");
	expect_ok("\xef\xbb\xbfname: t\ndisplay_name: T\ndescription: D\n"
	    "category: devops\ndocker_image: alpine\n");
	expect_ok("{name: t, display_name: T, description: D, category: "
	    "devops, docker_image: alpine}\n");
	/* Tabs inside a quoted value are text, UTF-8 counts code points. */
	s = with("tags: [\"a\tb\", \xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	    "\xc3\xa9]\n");
	expect_ok(s);
	free(s);
	/* Plain scalars that are strings in YAML: versions, sizes, words. */
	s = with("version: 1.0.0\nenvironment_variables: {A: 1.0.0, B: 500m, "
	    "C: 0x, D: '-', E: y, G: 1e, H: 1.2.3, I: +}\n");
	expect_ok(s);
	free(s);
}
END_TEST

/* --- hostile files -------------------------------------------------------- */

START_TEST(test_templates_unknown_and_duplicate_keys)
{
	expect_bad_extra("maintainer: someone\n", "unknown key 'maintainer'",
	    6);
	expect_bad_extra("<<: {name: x}\n", "unknown key '<<'", 6);
	expect_bad_extra("Name: t\n", "unknown key 'Name'", 6);
	expect_bad_extra("name: t\n", "duplicate key 'name'", 6);
	expect_bad_extra("default_resources: {cpu: 500m, foo: 1Gi}\n",
	    "unknown key in default_resources", 6);
	expect_bad_extra("default_resources: {cpu: 500m, cpu: 600m}\n",
	    "duplicate key default_resources.cpu", 6);
	expect_bad_extra("environment_variables: {A: x, A: y}\n",
	    "duplicate key environment_variables.A", 6);
	expect_bad_extra("? [a, b]\n: c\n", "a key must be a string, not a "
	    "list", 6);
	expect_bad_extra("1: x\n", "a key must be a string, not a number", 6);
	expect_bad_s("name: t\ndisplay_name: T\ndescription: D\n"
	    "category: devops\n", "missing required key 'docker_image'",
	    1);
	expect_bad_s("display_name: T\ndescription: D\ncategory: devops\n"
	    "docker_image: alpine\n", "missing required key 'name'", 1);
}
END_TEST

START_TEST(test_templates_wrong_types)
{
	expect_bad_s("name: [t]\n", "name must be a string, not a list", 1);
	expect_bad_s("name: 123\n", "name must be a string, not a number",
	    1);
	expect_bad_s("name: ~\n", "name must be a string, not null", 1);
	expect_bad_extra("version: 1.0\n", "version must be a string, not a "
	    "number (quote it)", 6);
	expect_bad_extra("version: 2\n", "not a number", 6);
	expect_bad_extra("status: {a: b}\n", "not a mapping", 6);
	expect_bad_extra("tags: python\n", "tags must be a list of strings",
	    6);
	expect_bad_extra("tags: {a: b}\n", "tags must be a list, not a "
	    "mapping", 6);
	expect_bad_extra("tags: [a, [b]]\n", "tags item 1 must be a string",
	    6);
	expect_bad_extra("tags: [a, true]\n", "not a boolean", 6);
	expect_bad_extra("tags: ~\n", "tags must be a string, not null", 6);
	expect_bad_extra("startup_commands: [echo, true]\n",
	    "startup_commands item 1 must be a string, not a boolean", 6);
	expect_bad_extra("startup_commands: echo hi\n", "list of strings", 6);
	expect_bad_extra("local_startup_commands: echo hi\n",
	    "list of strings", 6);
	expect_bad_extra("default_port: \"8080\"\n", "default_port must be "
	    "an integer", 6);
	expect_bad_extra("default_port: 8080.0\n", "decimal integer", 6);
	expect_bad_extra("default_port: -80\n", "decimal integer", 6);
	expect_bad_extra("default_port: 0\n", "1 to 65535", 6);
	expect_bad_extra("default_port: 65536\n", "1 to 65535", 6);
	expect_bad_extra("default_port: 99999999999999999999999\n",
	    "1 to 65535", 6);
	expect_bad_extra("default_port: [80]\n", "must be an integer", 6);
	expect_bad_extra("default_resources: 500m\n", "must be a mapping", 6);
	expect_bad_extra("default_resources: {cpu: 1}\n",
	    "default_resources.cpu must be a string, not a number", 6);
	expect_bad_extra("environment_variables: [A]\n", "must be a mapping",
	    6);
	/* Values YAML would read as numbers or booleans must be quoted. */
	expect_bad_extra("environment_variables: {PORT: 8080}\n",
	    "environment_variables.PORT must be a string, not a number "
	    "(quote it)", 6);
	expect_bad_extra("environment_variables: {DEBUG: true}\n",
	    "not a boolean", 6);
	expect_bad_extra("environment_variables: {GO111MODULE: on}\n",
	    "not a boolean", 6);
	expect_bad_extra("environment_variables: {X: No}\n", "not a boolean",
	    6);
	expect_bad_extra("environment_variables: {X: 0x1F}\n", "not a number",
	    6);
	expect_bad_extra("environment_variables: {X: 0o17}\n", "not a number",
	    6);
	expect_bad_extra("environment_variables: {X: -1.5e3}\n",
	    "not a number", 6);
	expect_bad_extra("environment_variables: {X: .inf}\n", "not a number",
	    6);
	expect_bad_extra("environment_variables: {X: .NaN}\n", "not a number",
	    6);
	expect_bad_extra("environment_variables: {X: 1_000}\n",
	    "not a number", 6);
	expect_bad_extra("environment_variables: {X: ~}\n", "not null", 6);
	expect_bad_extra("environment_variables: {X: }\n", "not null", 6);
	expect_bad_extra("environment_variables: {X: [a]}\n", "not a list",
	    6);
	expect_bad_s("[]\n", "the top level must be a mapping", 1);
	expect_bad_s("hello\n", "the top level must be a mapping", 1);
	expect_bad_s("", "empty", 0);
	expect_bad_s("# only a comment\n", "empty", 0);
}
END_TEST

START_TEST(test_templates_rules)
{
	struct dp_template	 t;
	struct dp_err		 err;
	struct dp_buf		 b = { 0 };
	char			 path[4200];
	int			 i;

	expect_bad_s("name: other\n", "name must equal the file name "
	    "without .yaml (t)", 1);
	expect_bad_s("name: T\n", "name does not match", 1);
	expect_bad_s("name: -t\n", "name does not match", 1);
	expect_bad_s("name: ''\n", "name does not match", 1);
	expect_bad_extra("docker_image: Alpine\n", "duplicate key", 6);
	expect_bad_s("name: t\ndocker_image: Alpine:3\n", "docker_image "
	    "does not match", 2);
	expect_bad_s("name: t\ndocker_image: 'alpine latest'\n",
	    "docker_image does not match", 2);
	expect_bad_s("name: t\ndisplay_name: ''\n", "display_name is too "
	    "short", 2);
	expect_bad_s("name: t\ncategory: language\n", "category is not one "
	    "of", 2);
	expect_bad_extra("status: retired\n", "status is not one of", 6);
	expect_bad_extra("version: ''\n", "version is too short", 6);
	expect_bad_extra("documentation_url: ftp://example.com/\n",
	    "documentation_url is not an http(s) URL", 6);
	expect_bad_extra("icon_url: /relative.png\n", "icon_url is not", 6);
	expect_bad_extra("tags: ['']\n", "tags item 0 is too short", 6);
	expect_bad_extra("tags: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n",
	    "tags item 0 is too long", 6);
	expect_bad_extra("startup_commands: ['']\n", "is too short", 6);
	expect_bad_extra("default_resources: {cpu: 50m}\n",
	    "default_resources.cpu is below the minimum (100m)", 6);
	expect_bad_extra("default_resources: {cpu: '1.2345'}\n",
	    "default_resources.cpu does not match", 6);
	expect_bad_extra("default_resources: {memory: 64Mi}\n",
	    "below the minimum (128Mi)", 6);
	expect_bad_extra("default_resources: {memory: 1GB}\n",
	    "default_resources.memory does not match", 6);
	expect_bad_extra("default_resources: {storage: 512Mi}\n",
	    "below the minimum (1Gi)", 6);
	expect_bad_extra("default_resources: {storage: '-1Gi'}\n",
	    "does not match", 6);
	expect_bad_extra("environment_variables: {1BAD: x}\n",
	    "not a variable name", 6);
	expect_bad_extra("environment_variables: {'A-B': x}\n",
	    "not a variable name", 6);

	/* Counts and lengths at and over the caps. */
	dp_buf_adds(&b, "tags: [");
	for (i = 0; i < 20; i++)
		dp_buf_printf(&b, "%st%d", i ? ", " : "", i);
	dp_buf_adds(&b, "]\n");
	{
		char *s = with(b.s);

		expect_ok(s);
		free(s);
	}
	dp_buf_reset(&b);
	dp_buf_adds(&b, "tags: [");
	for (i = 0; i < 21; i++)
		dp_buf_printf(&b, "%st%d", i ? ", " : "", i);
	dp_buf_adds(&b, "]\n");
	expect_bad_extra(b.s, "tags has more than 20 items", 6);
	dp_buf_reset(&b);
	dp_buf_adds(&b, "startup_commands:\n");
	for (i = 0; i < 101; i++)
		dp_buf_printf(&b, "  - echo %d\n", i);
	expect_bad_extra(b.s, "startup_commands has more than 100 items",
	    107);
	dp_buf_reset(&b);
	dp_buf_adds(&b, "local_startup_commands: ['");
	for (i = 0; i < 4097; i++)
		dp_buf_addc(&b, 'x');
	dp_buf_adds(&b, "']\n");
	expect_bad_extra(b.s, "local_startup_commands item 0 is too long", 6);
	dp_buf_reset(&b);
	dp_buf_adds(&b, "environment_variables:\n");
	for (i = 0; i < 101; i++)
		dp_buf_printf(&b, "  V%d: x\n", i);
	expect_bad_extra(b.s, "more than 100 entries", 107);
	dp_buf_reset(&b);
	dp_buf_adds(&b, "description: '");
	for (i = 0; i < 501; i++)
		dp_buf_adds(&b, "\xc3\xa9");
	dp_buf_adds(&b, "'\n");
	expect_bad(b.s, b.len, "description is too long", 1);
	dp_buf_release(&b);

	/* The expected name comes from the base name of the path. */
	(void)snprintf(path, sizeof(path), "%s/mismatch.yaml",
	    src("tests/fixtures/templates"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "mismatch.yaml:1: name must equal the "
	    "file name without .yaml (mismatch)") != NULL, "%s", err.msg);
	ck_assert_msg(strncmp(err.msg, path, strlen(path)) == 0, "%s",
	    err.msg);
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(dp_template_parse_buf("dir/x.y.yaml", "name: x.y\n",
	    10, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "name does not match") != NULL, "%s",
	    err.msg);
}
END_TEST

START_TEST(test_templates_hostile_bytes)
{
	struct dp_template	 t;
	struct dp_err		 err;
	struct dp_buf		 b = { 0 };
	char			 path[4200];
	size_t			 i;

	/* NUL anywhere, even inside quotes, and invalid UTF-8. */
	expect_bad("name: t\ndisplay_name: 'a\0b'\n", 27, "NUL byte", 2);
	expect_bad("name: t\0\n", 9, "NUL byte", 1);
	expect_bad_s("name: t\ndescription: caf\xc3\n", "invalid UTF-8", 2);
	expect_bad_s("name: t\n\ndescription: \xed\xa0\x80\n",
	    "invalid UTF-8", 3);
	expect_bad_s("name: t\ndescription: \xc0\xaf\n", "invalid UTF-8",
	    2);
	expect_bad_s("name: t\ndescription: \xff\n", "invalid UTF-8", 2);
	expect_bad("\xfe\xff\x00n\x00" "a", 6, "NUL byte", 1);
	/* Tabs may not indent YAML. */
	expect_bad_s("name: t\ndefault_resources:\n\tcpu: 500m\n", "t.yaml",
	    3);
	expect_bad_s("\tname: t\n", "t.yaml", 1);
	/* Truncated files. */
	expect_bad_extra("tags: [a, b\n", "t.yaml", 0);
	expect_bad_extra("description: 'unterminated\n", "t.yaml", 0);
	expect_bad_extra("startup_commands:\n  - |\n", "is too short", 0);
	expect_bad_s("name: t\ndisplay_name", "t.yaml", 0);
	/* More than one document. */
	{
		char *s = with("---\nname: t\n");

		expect_bad(s, strlen(s), "only one YAML document", 6);
		free(s);
	}

	/* Over the size cap, as a buffer and as a file. */
	dp_buf_adds(&b, base_doc);
	while (b.len <= DP_TEMPLATE_FILE_MAX)
		dp_buf_adds(&b, "# padding padding padding padding padding\n");
	expect_bad(b.s, b.len, "larger than 1048576 bytes", 0);
	(void)snprintf(path, sizeof(path), "%s/huge.yaml", tmpdir);
	{
		FILE *f = fopen(path, "w");

		ck_assert_ptr_nonnull(f);
		ck_assert_uint_eq(fwrite(b.s, 1, b.len, f), b.len);
		fclose(f);
	}
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "huge.yaml:0: file is larger than") !=
	    NULL, "%s", err.msg);
	ck_assert_int_eq(unlink(path), 0);
	/* Exactly at the cap is fine. */
	dp_buf_reset(&b);
	dp_buf_adds(&b, base_doc);
	while (b.len < DP_TEMPLATE_FILE_MAX)
		dp_buf_addc(&b, b.len % 64 == 0 ? '\n' : '#');
	ck_assert_uint_eq(b.len, DP_TEMPLATE_FILE_MAX);
	expect_ok(b.s);

	/* Deep nesting stops at the first level the format does not have. */
	dp_buf_reset(&b);
	dp_buf_adds(&b, base_doc);
	dp_buf_adds(&b, "tags: ");
	for (i = 0; i < 20000; i++)
		dp_buf_addc(&b, '[');
	for (i = 0; i < 20000; i++)
		dp_buf_addc(&b, ']');
	dp_buf_addc(&b, '\n');
	expect_bad(b.s, b.len, "tags item 0 must be a string, not a list", 6);
	dp_buf_reset(&b);
	for (i = 0; i < 15000; i++)
		dp_buf_adds(&b, "{a: ");
	expect_bad(b.s, b.len, "t.yaml:1: ", 1);
	dp_buf_reset(&b);
	for (i = 0; i < 30000; i++)
		dp_buf_addc(&b, '[');
	expect_bad(b.s, b.len, "the top level must be a mapping", 1);
	dp_buf_reset(&b);
	dp_buf_adds(&b, base_doc);
	dp_buf_adds(&b, "environment_variables:\n");
	for (i = 0; i < 200; i++) {
		size_t j;

		for (j = 0; j < i + 1; j++)
			dp_buf_adds(&b, "  ");
		dp_buf_printf(&b, "K%zu:\n", i);
	}
	expect_bad(b.s, b.len, "environment_variables.K0 must be a string, "
	    "not a mapping", 8);
	dp_buf_release(&b);

	/* Fixture files. */
	(void)snprintf(path, sizeof(path), "%s/tabs.yaml",
	    src("tests/fixtures/templates"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "tabs.yaml:7: ") != NULL, "%s", err.msg);
	(void)snprintf(path, sizeof(path), "%s/not-utf8.yaml",
	    src("tests/fixtures/templates"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "not-utf8.yaml:3: invalid UTF-8") !=
	    NULL, "%s", err.msg);
	(void)snprintf(path, sizeof(path), "%s/unknown-key.yaml",
	    src("tests/fixtures/templates"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "unknown-key.yaml:6: unknown key "
	    "'maintainer'") != NULL, "%s", err.msg);
	/* Missing, a directory, a FIFO-like special file. */
	ck_assert_int_eq(dp_template_parse_file("/nonexistent/x.yaml", &t,
	    &err), -1);
	ck_assert_msg(strstr(err.msg, "/nonexistent/x.yaml:0: ") != NULL,
	    "%s", err.msg);
	ck_assert_int_eq(dp_template_parse_file(tmpdir, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "not a regular file") != NULL, "%s",
	    err.msg);
	ck_assert_int_eq(dp_template_parse_file("/dev/zero", &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "not a regular file") != NULL, "%s",
	    err.msg);
}
END_TEST

START_TEST(test_templates_anchors_aliases_tags)
{
	struct dp_template	 t;
	struct dp_err		 err;
	char			 path[4200];
	struct dp_buf		 b = { 0 };
	int			 i;

	expect_bad_extra("tags: &a [x]\n", "anchors are not allowed", 6);
	expect_bad_extra("tags: [&a x]\n", "anchors are not allowed", 6);
	expect_bad_s("name: t\ndisplay_name: *a\n", "aliases are not "
	    "allowed", 2);
	expect_bad_s("&root {name: t}\n", "anchors are not allowed", 1);
	expect_bad_s("name: !!str t\n", "explicit tags are not allowed", 1);
	expect_bad_extra("tags: !!seq [a]\n", "explicit tags", 6);
	expect_bad_extra("environment_variables: !custom {A: b}\n",
	    "explicit tags", 6);
	(void)snprintf(path, sizeof(path), "%s/alias.yaml",
	    src("tests/fixtures/templates"));
	ck_assert_int_eq(dp_template_parse_file(path, &t, &err), -1);
	ck_assert_msg(strstr(err.msg, "alias.yaml:2: anchors are not "
	    "allowed") != NULL, "%s", err.msg);
	/* A billion laughs never gets past its first anchor. */
	dp_buf_adds(&b, "a: &a [x, x, x, x, x, x, x, x, x]\n");
	for (i = 1; i < 9; i++)
		dp_buf_printf(&b, "%c: &%c [*%c, *%c, *%c, *%c, *%c]\n",
		    'a' + i, 'a' + i, 'a' + i - 1, 'a' + i - 1, 'a' + i - 1,
		    'a' + i - 1, 'a' + i - 1);
	expect_bad(b.s, b.len, "unknown key 'a'", 1);
	dp_buf_reset(&b);
	dp_buf_adds(&b, base_doc);
	dp_buf_adds(&b, "tags: &a [x, x, x, x, x, x, x, x, x]\n");
	dp_buf_adds(&b, "startup_commands: [*a, *a, *a]\n");
	expect_bad(b.s, b.len, "anchors are not allowed", 6);
	dp_buf_release(&b);
}
END_TEST

/* Every prefix and many single-byte mutations of a real file: no crash,
 * no leak, an answer either way, and a message naming the file. */
START_TEST(test_templates_truncated_and_mutated)
{
	static const char flips[] = { '\0', '\t', '\n', ':', '[', '{', '&',
	    '*', '!', '\'', '"', '#', '-', '\xff', '\xc3', ' ' };
	struct dp_template	 t;
	struct dp_err		 err;
	struct dp_buf		 b = { 0 };
	char			 path[4200], buf[4096], *m;
	size_t			 i, j, n, ok = 0;
	FILE			*f;

	(void)snprintf(path, sizeof(path), "%s/python.yaml",
	    src("templates/environments"));
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		dp_buf_add(&b, buf, n);
	fclose(f);
	for (i = 0; i <= b.len; i++) {
		memset(&err, 0, sizeof(err));
		if (dp_template_parse_buf("python.yaml", b.s, i, &t, &err) == 0) {
			ok++;
			dp_template_release(&t);
		} else
			ck_assert_msg(strncmp(err.msg, "python.yaml:", 12) == 0,
			    "%zu: %s", i, err.msg);
	}
	/* The whole file, and the prefixes ending after its last line. */
	ck_assert_uint_ge(ok, 1);
	m = dp_xmalloc(b.len + 1);
	for (i = 0; i < b.len; i += 3) {
		for (j = 0; j < sizeof(flips); j++) {
			memcpy(m, b.s, b.len);
			m[i] = flips[j];
			memset(&err, 0, sizeof(err));
			if (dp_template_parse_buf("python.yaml", m, b.len, &t,
			    &err) == 0)
				dp_template_release(&t);
			else
				ck_assert_msg(strncmp(err.msg, "python.yaml:",
				    12) == 0, "%zu: %s", i, err.msg);
		}
	}
	free(m);
	dp_buf_release(&b);
}
END_TEST

/* --- the database --------------------------------------------------------- */

static struct dp_db *
connect_schema(void)
{
	struct dp_err	 err = { 0 };
	struct dp_db	*d;
	const char	*p[1] = { schema };

	d = dp_db_open(conninfo, &err);
	ck_assert_msg(d != NULL, "connect: %s", err.msg);
	ck_assert_int_eq(dp_db_run(d,
	    "SELECT set_config('search_path', $1, false)", 1, p), 0);
	return d;
}

/* Build the private schema from the migrations; 0 or -1. */
static int
make_schema(void)
{
	const char	*dir = getenv("DP_SQL_DIR");

	if (dir == NULL)
		dir = src("sql");
	(void)snprintf(schema, sizeof(schema), "check_templates_%ld",
	    (long)getpid());
	return pgschema_create("check_templates", conninfo, dir, schema, NULL);
}

static void
drop_schema(void)
{
	pgschema_drop(conninfo, schema);
}

static char *
qs(const char *sql)
{
	PGresult	*r = dp_db_simple(db, sql);
	char		*v;

	ck_assert_msg(dp_db_ok(r), "%s: %s", sql, PQresultErrorMessage(r));
	ck_assert_msg(PQntuples(r) == 1, "%s: %d rows", sql, PQntuples(r));
	v = dp_xstrdup(PQgetisnull(r, 0, 0) ? "(null)" : PQgetvalue(r, 0, 0));
	PQclear(r);
	return v;
}

static void
ck_sql(const char *sql, const char *want)
{
	char	*v = qs(sql);

	ck_assert_msg(strcmp(v, want) == 0, "%s: got '%s', want '%s'", sql, v,
	    want);
	free(v);
}

static void
run(const char *sql)
{
	PGresult	*r = dp_db_simple(db, sql);

	ck_assert_msg(dp_db_ok(r), "%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
}

static char	 catdir[4200];

/* Copy src file into the test catalog as name. */
static void
put_file(const char *from, const char *name)
{
	char	 to[4400], buf[4096];
	FILE	*in, *out;
	size_t	 n;

	(void)snprintf(to, sizeof(to), "%s/%s", catdir, name);
	ck_assert_ptr_nonnull(in = fopen(from, "r"));
	ck_assert_ptr_nonnull(out = fopen(to, "w"));
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		ck_assert_uint_eq(fwrite(buf, 1, n, out), n);
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
}

static void
put_text(const char *name, const char *text)
{
	char	 to[4400];
	FILE	*out;

	(void)snprintf(to, sizeof(to), "%s/%s", catdir, name);
	ck_assert_ptr_nonnull(out = fopen(to, "w"));
	ck_assert_uint_eq(fwrite(text, 1, strlen(text), out), strlen(text));
	ck_assert_int_eq(fclose(out), 0);
}

/* Empty and remove the test catalog (a failed test skips teardown). */
static void
clean_catdir(void)
{
	struct dirent	**ents = NULL;
	char		 p[4600];
	int		 i, n;

	if ((n = scandir(catdir, &ents, NULL, alphasort)) >= 0) {
		for (i = 0; i < n; i++) {
			if (strcmp(ents[i]->d_name, ".") != 0 &&
			    strcmp(ents[i]->d_name, "..") != 0) {
				(void)snprintf(p, sizeof(p), "%s/%s", catdir,
				    ents[i]->d_name);
				(void)unlink(p);
			}
			free(ents[i]);
		}
		free(ents);
	}
	(void)rmdir(catdir);
}

static void
db_teardown(void)
{
	dp_db_rollback(db);
	dp_db_free(db);
	db = NULL;
	clean_catdir();
}

static void
db_setup(void)
{
	static const char *const names[] = {
		"golang", "nodejs", "python", "rust", "ubuntu"
	};
	char	 from[4400], name[64];
	size_t	 i;

	db = connect_schema();
	run("DELETE FROM templates");
	(void)snprintf(catdir, sizeof(catdir), "%s/catalog", tmpdir);
	clean_catdir();
	ck_assert_int_eq(mkdir(catdir, 0700), 0);
	for (i = 0; i < DP_NITEMS(names); i++) {
		(void)snprintf(from, sizeof(from), "%s/%s.yaml",
		    src("templates/environments"), names[i]);
		(void)snprintf(name, sizeof(name), "%s.yaml", names[i]);
		put_file(from, name);
	}
}

/* The report's list key as "a,b,c". */
static char *
names_of(struct json_object *report, const char *key)
{
	struct json_object	*a, *e;
	struct dp_buf		 b = { 0 };
	size_t			 i;

	ck_assert(json_object_object_get_ex(report, key, &a));
	ck_assert(json_object_is_type(a, json_type_array));
	dp_buf_adds(&b, "");
	for (i = 0; i < json_object_array_length(a); i++) {
		e = json_object_array_get_idx(a, i);
		if (json_object_is_type(e, json_type_object)) {
			struct json_object *f;

			ck_assert(json_object_object_get_ex(e, "file", &f));
			dp_buf_printf(&b, "%s%s", i ? "," : "",
			    json_object_get_string(f));
			ck_assert(json_object_object_get_ex(e, "message", &f));
			ck_assert(json_object_get_string_len(f) > 0);
		} else
			dp_buf_printf(&b, "%s%s", i ? "," : "",
			    json_object_get_string(e));
	}
	return dp_buf_detach(&b);
}

static void
ck_report(struct json_object *r, const char *created, const char *updated,
    const char *skipped, const char *errors)
{
	static const char *const keys[] = {
		"created", "updated", "skipped", "errors"
	};
	const char	*want[4] = { created, updated, skipped, errors };
	char		*got;
	size_t		 i;

	for (i = 0; i < 4; i++) {
		got = names_of(r, keys[i]);
		ck_assert_msg(strcmp(got, want[i]) == 0, "%s: got '%s', want "
		    "'%s' (%s)", keys[i], got, want[i],
		    json_object_to_json_string(r));
		free(got);
	}
}

static struct json_object *
load(bool force)
{
	struct json_object	*r = json_object_new_object();

	ck_assert_int_eq(dp_templates_load_dir(db, catdir, force, r), 0);
	return r;
}

START_TEST(test_templates_load_dir)
{
	struct json_object	*r;
	char			*id, from[4400];

	(void)snprintf(from, sizeof(from), "%s/alias.yaml",
	    src("tests/fixtures/templates"));
	put_file(from, "alias.yaml");
	put_text("README.txt", "not a template\n");
	put_text(".hidden.yaml", "garbage: [\n");
	r = load(false);
	ck_report(r, "golang,nodejs,python,rust,ubuntu", "", "", "alias.yaml");
	json_object_put(r);
	ck_sql("SELECT count(*) FROM templates", "5");
	ck_sql("SELECT count(*) FROM templates WHERE name = 'alias'", "0");
	ck_sql("SELECT display_name || '|' || category || '|' || docker_image "
	    "|| '|' || default_port || '|' || status || '|' || version || '|' "
	    "|| usage_count || '|' || coalesce(icon_url, 'null') FROM "
	    "templates WHERE name = 'rust'", "Rust Latest|programming_language|"
	    "rust:latest|8080|active|1.0.0|0|null");
	ck_sql("SELECT default_resources::text FROM templates WHERE name = "
	    "'rust'", "{\"cpu\": \"1000m\", \"memory\": \"2Gi\", \"storage\": "
	    "\"15Gi\"}");
	ck_sql("SELECT environment_variables::text FROM templates WHERE name "
	    "= 'python'", "{\"PYTHONUNBUFFERED\": \"1\", "
	    "\"PIP_DISABLE_PIP_VERSION_CHECK\": \"1\"}");
	ck_sql("SELECT tags::text FROM templates WHERE name = 'python'",
	    "[\"python\", \"pip\", \"virtualenv\", \"flask\", \"django\"]");
	ck_sql("SELECT jsonb_array_length(startup_commands) || '/' || "
	    "jsonb_array_length(local_startup_commands) FROM templates WHERE "
	    "name = 'python'", "3/4");
	ck_sql("SELECT documentation_url FROM templates WHERE name = 'golang'",
	    "https://go.dev/doc/");

	/* Twice in a row: everything skipped. */
	r = load(false);
	ck_report(r, "", "", "golang,nodejs,python,rust,ubuntu", "alias.yaml");
	json_object_put(r);

	/* A changed version replaces every field but id and usage_count. */
	id = qs("SELECT id FROM templates WHERE name = 'python'");
	run("UPDATE templates SET usage_count = 7, status = 'deprecated', "
	    "updated_at = now() - interval '1 day' WHERE name = 'python'");
	put_text("python.yaml", "name: python\ndisplay_name: Python 3.12\n"
	    "description: Newer\ncategory: programming_language\n"
	    "docker_image: python:3.12-slim\nversion: \"1.1.0\"\n");
	r = load(false);
	ck_report(r, "", "python", "golang,nodejs,rust,ubuntu", "alias.yaml");
	json_object_put(r);
	{
		char sql[256];

		(void)snprintf(sql, sizeof(sql), "SELECT id FROM templates "
		    "WHERE name = 'python'");
		ck_sql(sql, id);
	}
	free(id);
	ck_sql("SELECT display_name || '|' || docker_image || '|' || version "
	    "|| '|' || usage_count || '|' || status || '|' || tags::text || "
	    "'|' || startup_commands::text || '|' || coalesce("
	    "local_startup_commands::text, 'null') || '|' || coalesce("
	    "documentation_url, 'null') || '|' || default_resources::text || "
	    "'|' || (updated_at > now() - interval '1 minute') FROM templates "
	    "WHERE name = 'python'", "Python 3.12|python:3.12-slim|1.1.0|7|"
	    "active|[]|[]|null|null|{\"cpu\": \"500m\", \"memory\": \"1Gi\", "
	    "\"storage\": \"10Gi\"}|true");

	/* An invalid edit of a loaded file changes nothing. */
	put_text("python.yaml", "name: python\ndisplay_name: Broken\n"
	    "description: x\ncategory: nope\ndocker_image: python\n"
	    "version: \"9\"\n");
	r = load(false);
	ck_report(r, "", "", "golang,nodejs,rust,ubuntu",
	    "alias.yaml,python.yaml");
	json_object_put(r);
	ck_sql("SELECT display_name FROM templates WHERE name = 'python'",
	    "Python 3.12");

	/* force updates whatever the version. */
	r = load(true);
	ck_report(r, "", "golang,nodejs,rust,ubuntu", "",
	    "alias.yaml,python.yaml");
	json_object_put(r);
}
END_TEST

START_TEST(test_templates_load_dir_errors)
{
	struct json_object	*r, *a, *e, *m;
	char			 missing[4400];

	/* An unreadable directory is one error entry. */
	(void)snprintf(missing, sizeof(missing), "%s/nope", catdir);
	r = json_object_new_object();
	ck_assert_int_eq(dp_templates_load_dir(db, missing, false, r), 0);
	ck_report(r, "", "", "", "nope");
	json_object_put(r);

	/* The messages name the file and line, never the directory. */
	put_text("bad.yaml", "name: bad\nfoo: 1\n");
	put_text("wrong.yaml", "name: other\n");
	put_text("empty.yaml", "");
	r = load(false);
	ck_report(r, "golang,nodejs,python,rust,ubuntu", "", "",
	    "bad.yaml,empty.yaml,wrong.yaml");
	ck_assert(json_object_object_get_ex(r, "errors", &a));
	e = json_object_array_get_idx(a, 0);
	ck_assert(json_object_object_get_ex(e, "message", &m));
	ck_assert_str_eq(json_object_get_string(m),
	    "bad.yaml:2: unknown key 'foo'");
	e = json_object_array_get_idx(a, 2);
	ck_assert(json_object_object_get_ex(e, "message", &m));
	ck_assert_msg(strstr(json_object_get_string(m), tmpdir) == NULL, "%s",
	    json_object_get_string(m));
	json_object_put(r);
	ck_sql("SELECT count(*) FROM templates", "5");

	/* An existing report object gets the lists (and keeps its keys). */
	r = json_object_new_object();
	dp_json_str(r, "message", "kept");
	ck_assert_int_eq(dp_templates_load_dir(db, catdir, false, r), 0);
	ck_assert(json_object_object_get_ex(r, "message", &m));
	ck_report(r, "", "", "golang,nodejs,python,rust,ubuntu",
	    "bad.yaml,empty.yaml,wrong.yaml");
	json_object_put(r);
}
END_TEST

START_TEST(test_templates_load_dir_nested)
{
	struct json_object	*r;

	/* Inside the caller's transaction: savepoints, rolled back with it. */
	ck_assert_int_eq(dp_db_begin(db), 0);
	put_text("bad.yaml", "name: bad\n");
	r = load(false);
	ck_report(r, "golang,nodejs,python,rust,ubuntu", "", "", "bad.yaml");
	json_object_put(r);
	ck_sql("SELECT count(*) FROM templates", "5");
	dp_db_rollback(db);
	ck_sql("SELECT count(*) FROM templates", "0");
	r = load(false);
	ck_report(r, "golang,nodejs,python,rust,ubuntu", "", "", "bad.yaml");
	json_object_put(r);

	/* A database failure is -1; the earlier files stay loaded. */
	run("ALTER TABLE templates ADD CONSTRAINT no_rust CHECK (name <> "
	    "'rust' OR version = '1.0.0')");
	put_text("rust.yaml", "name: rust\ndisplay_name: R\ndescription: D\n"
	    "category: devops\ndocker_image: rust\nversion: \"2\"\n");
	put_text("golang.yaml", "name: golang\ndisplay_name: G\n"
	    "description: D\ncategory: devops\ndocker_image: golang\n"
	    "version: \"2\"\n");
	r = json_object_new_object();
	ck_assert_int_eq(dp_templates_load_dir(db, catdir, false, r), -1);
	json_object_put(r);
	ck_sql("SELECT version FROM templates WHERE name = 'golang'", "2");
	ck_sql("SELECT version FROM templates WHERE name = 'rust'", "1.0.0");
	run("ALTER TABLE templates DROP CONSTRAINT no_rust");
}
END_TEST

START_TEST(test_templates_lookup_and_json)
{
	static const char *const keys[] = {
		"id", "name", "display_name", "description", "category",
		"tags", "docker_image", "image", "default_port",
		"default_resources", "environment_variables",
		"startup_commands", "documentation_url", "icon_url", "status",
		"version", "usage_count", "created_at", "updated_at"
	};
	struct json_object	*r, *o, *v;
	PGresult		*res;
	char			*id, big[300];
	size_t			 i;

	r = load(false);
	json_object_put(r);
	id = qs("SELECT id FROM templates WHERE name = 'nodejs'");

	ck_assert_int_eq(dp_template_lookup(db, "nodejs", false, &res), 1);
	ck_assert_int_eq(PQnfields(res), DP_TEMPLATE_NCOLS + 1);
	ck_assert_str_eq(PQgetvalue(res, 0, 0), id);
	ck_assert(!PQgetisnull(res, 0, DP_TEMPLATE_NCOLS));
	o = dp_template_json(res, 0);
	PQclear(res);
	ck_assert_int_eq(json_object_object_length(o), (int)DP_NITEMS(keys));
	for (i = 0; i < DP_NITEMS(keys); i++)
		ck_assert_msg(json_object_object_get_ex(o, keys[i], NULL),
		    "no %s", keys[i]);
	ck_assert(!json_object_object_get_ex(o, "local_startup_commands",
	    NULL));
	json_object_object_get_ex(o, "image", &v);
	ck_assert_str_eq(json_object_get_string(v), "node:18-slim");
	json_object_object_get_ex(o, "docker_image", &v);
	ck_assert_str_eq(json_object_get_string(v), "node:18-slim");
	json_object_object_get_ex(o, "default_port", &v);
	ck_assert(json_object_is_type(v, json_type_int));
	ck_assert_int_eq(json_object_get_int(v), 3000);
	json_object_object_get_ex(o, "usage_count", &v);
	ck_assert(json_object_is_type(v, json_type_int));
	json_object_object_get_ex(o, "tags", &v);
	ck_assert(json_object_is_type(v, json_type_array));
	ck_assert_uint_eq(json_object_array_length(v), 4);
	json_object_object_get_ex(o, "environment_variables", &v);
	ck_assert(json_object_is_type(v, json_type_object));
	json_object_object_get_ex(v, "NODE_ENV", &v);
	ck_assert_str_eq(json_object_get_string(v), "development");
	json_object_object_get_ex(o, "default_resources", &v);
	json_object_object_get_ex(v, "memory", &v);
	ck_assert_str_eq(json_object_get_string(v), "1Gi");
	json_object_object_get_ex(o, "icon_url", &v);
	ck_assert_ptr_null(v);
	json_object_object_get_ex(o, "created_at", &v);
	ck_assert_int_eq(json_object_get_string_len(v), 27);
	ck_assert_int_eq(json_object_get_string(v)[26], 'Z');
	json_object_put(o);

	/* By id; a deprecated one only when asked. */
	ck_assert_int_eq(dp_template_lookup(db, id, false, &res), 1);
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "nodejs");
	PQclear(res);
	run("UPDATE templates SET status = 'deprecated' WHERE name = "
	    "'nodejs'");
	ck_assert_int_eq(dp_template_lookup(db, id, false, &res), 0);
	ck_assert_ptr_null(res);
	ck_assert_int_eq(dp_template_lookup(db, "nodejs", false, &res), 0);
	ck_assert_int_eq(dp_template_lookup(db, "nodejs", true, &res), 1);
	PQclear(res);
	/* An id beats a template named like another's id. */
	{
		char sql[512];

		(void)snprintf(sql, sizeof(sql), "UPDATE templates SET name = "
		    "'%s' WHERE name = 'rust'", id);
		run(sql);
	}
	ck_assert_int_eq(dp_template_lookup(db, id, true, &res), 1);
	ck_assert_str_eq(PQgetvalue(res, 0, 1), "nodejs");
	PQclear(res);
	/* Garbage never reaches the database (or fails there). */
	ck_assert_int_eq(dp_template_lookup(db, "", true, &res), 0);
	ck_assert_int_eq(dp_template_lookup(db, "NODEJS", true, &res), 0);
	ck_assert_int_eq(dp_template_lookup(db, "../etc", true, &res), 0);
	ck_assert_int_eq(dp_template_lookup(db, "caf\xc3", true, &res), 0);
	ck_assert_int_eq(dp_template_lookup(db, "x' OR '1'='1", true, &res),
	    0);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(dp_template_lookup(db, big, true, &res), 0);
	ck_assert_int_eq(dp_template_lookup(db, "unknown", true, &res), 0);
	ck_assert_ptr_null(res);
	free(id);

	/* dp_template_json_at reads after other columns. */
	res = dp_db_simple(db, "SELECT 1, " DP_TEMPLATE_COLS " FROM templates "
	    "t WHERE t.name = 'ubuntu'");
	ck_assert(dp_db_ok(res));
	o = dp_template_json_at(res, 0, 1);
	PQclear(res);
	json_object_object_get_ex(o, "category", &v);
	ck_assert_str_eq(json_object_get_string(v), "operating_system");
	json_object_object_get_ex(o, "startup_commands", &v);
	ck_assert_uint_eq(json_object_array_length(v), 2);
	json_object_put(o);
}
END_TEST

static Suite *
templates_suite(bool with_db)
{
	Suite	*s = suite_create("templates");
	TCase	*tc;

#define T(name) do {							\
	tc = tcase_create(#name);					\
	tcase_add_test(tc, test_templates_##name);			\
	suite_add_tcase(s, tc);						\
} while (0)
	T(catalog);
	T(fixture_every_key);
	T(defaults);
	T(yaml_forms);
	T(unknown_and_duplicate_keys);
	T(wrong_types);
	T(rules);
	T(hostile_bytes);
	T(anchors_aliases_tags);
	T(truncated_and_mutated);
#undef T
	if (!with_db)
		return s;
#define D(name) do {							\
	tc = tcase_create(#name);					\
	tcase_add_checked_fixture(tc, db_setup, db_teardown);		\
	tcase_set_timeout(tc, 30);					\
	tcase_add_test(tc, test_templates_##name);			\
	suite_add_tcase(s, tc);						\
} while (0)
	D(load_dir);
	D(load_dir_errors);
	D(load_dir_nested);
	D(lookup_and_json);
#undef D
	return s;
}

int
main(void)
{
	SRunner	*sr;
	bool	 with_db;
	int	 failed;

	if (mkdtemp(tmpdir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	conninfo = getenv("DP_TEST_DB");
	with_db = conninfo != NULL && *conninfo != '\0';
	if (!with_db)
		printf("check_templates: DP_TEST_DB is not set; the database "
		    "tests are skipped\n");
	dp_log_init("check_templates", "text",
	    getenv("DP_TEST_VERBOSE") != NULL ? "debug" : "error");
	if (with_db && make_schema() == -1) {
		drop_schema();
		(void)rmdir(tmpdir);
		return 1;
	}
	sr = srunner_create(templates_suite(with_db));
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	if (with_db)
		drop_schema();
	if (*catdir != '\0')
		clean_catdir();
	(void)rmdir(tmpdir);
	return failed == 0 ? 0 : 1;
}
