/* tests/unit/check_config.c: key table, files, conf.d, env, dump, docs */
#include <check.h>
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

extern char **environ;

static char	 tmpdir[64];
static char	 conf[128];

/* Drop every DEVPOCKET_* variable so the caller's shell cannot interfere. */
static void
clear_env(void)
{
	char	 name[256];
	size_t	 n;
	char	*eq;

	for (;;) {
		char	**e;

		for (e = environ; *e != NULL; e++)
			if (strncmp(*e, "DEVPOCKET_", 10) == 0)
				break;
		if (*e == NULL)
			break;
		eq = strchr(*e, '=');
		n = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
		ck_assert_uint_lt(n, sizeof(name));
		memcpy(name, *e, n);
		name[n] = '\0';
		unsetenv(name);
	}
}

static void
tmp_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_config.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(conf, sizeof(conf), "%s/devpocket.conf", tmpdir);
	clear_env();
}

static void
tmp_teardown(void)
{
	char	 cmd[128];

	clear_env();
	/* Paths are ours (mkdtemp), so the shell sees no outside text. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
}

static void
write_bytes(const char *path, const void *data, size_t len)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static void
write_conf(const char *text)
{
	write_bytes(conf, text, strlen(text));
}

static void
write_dropin(const char *name, const char *text)
{
	char	 path[256];

	snprintf(path, sizeof(path), "%s/conf.d", tmpdir);
	(void)mkdir(path, 0700);
	snprintf(path, sizeof(path), "%s/conf.d/%s", tmpdir, name);
	write_bytes(path, text, strlen(text));
}

/* Load conf; the result must be -1 and the message must equal want. */
static void
expect_error(const char *text, const char *want)
{
	struct dp_config	 c = { 0 };
	struct dp_err		 err = { 0 };
	char			 full[512];

	write_conf(text);
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	snprintf(full, sizeof(full), "%s:%s", conf, want);
	ck_assert_str_eq(err.msg, full);
	/* A failed load leaves the struct untouched (still zero). */
	ck_assert_ptr_null(c.db_url);
	dp_config_release(&c);
}

START_TEST(test_config_defaults)
{
	struct dp_config	 c;

	dp_config_defaults(&c);
	ck_assert_str_eq(c.db_url,
	    "host=/run/postgresql dbname=devpocket user=devpocket");
	ck_assert_int_eq(c.db_connect_timeout, 5);
	ck_assert_str_eq(c.auth_issuer, "devpocket");
	ck_assert_int_eq(c.auth_access_ttl, 1800);
	ck_assert_int_eq(c.auth_refresh_ttl, 2592000);
	ck_assert_int_eq(c.auth_refresh_grace_seconds, 30);
	ck_assert_str_eq(c.auth_jwt_key_file, DP_SYSCONFDIR "/devpocket/jwt.key");
	ck_assert_str_eq(c.auth_secret_key_file,
	    DP_SYSCONFDIR "/devpocket/secret.key");
	ck_assert(!c.auth_require_verified_email);
	ck_assert_int_eq(c.auth_lockout_attempts, 5);
	ck_assert_int_eq(c.auth_lockout_minutes, 30);
	ck_assert_int_eq(c.auth_verify_ttl_hours, 24);
	ck_assert_int_eq(c.auth_reset_ttl_minutes, 60);
	ck_assert_int_eq(c.auth_fresh_login_minutes, 10);
	ck_assert_int_eq(c.auth_scrypt_n, 32768);
	ck_assert_int_eq(c.auth_scrypt_r, 8);
	ck_assert_int_eq(c.auth_scrypt_p, 1);
	ck_assert_str_eq(c.web_cors_origins,
	    "http://localhost:3000,http://localhost:3001");
	ck_assert_str_eq(c.web_trusted_proxies, "127.0.0.1,::1");
	ck_assert_str_eq(c.web_environment, "production");
	ck_assert_int_eq(c.web_workers, 0);
	ck_assert_str_eq(c.web_log_format, "json");
	ck_assert_str_eq(c.web_log_level, "info");
	ck_assert_str_eq(c.web_runtime_dir, "/run/devpocket");
	ck_assert_str_eq(c.web_state_dir, "/var/lib/devpocket");
	ck_assert_str_eq(c.web_data_dir, DP_DATADIR);
	ck_assert_int_eq(c.limits_body_max, 1048576);
	ck_assert_int_eq(c.limits_json_depth, 32);
	ck_assert_int_eq(c.limits_rate_anonymous, 100);
	ck_assert_int_eq(c.limits_rate_free, 100);
	ck_assert_int_eq(c.limits_rate_starter, 200);
	ck_assert_int_eq(c.limits_rate_pro, 300);
	ck_assert_int_eq(c.limits_rate_auth_ip, 30);
	ck_assert_int_eq(c.limits_rate_auth_identifier, 5);
	ck_assert_int_eq(c.limits_rate_env_create, 10);
	ck_assert_int_eq(c.limits_rate_resend, 3);
	ck_assert_int_eq(c.limits_ws_per_user, 10);
	ck_assert_int_eq(c.limits_session_retention_days, 30);
	ck_assert_int_eq(c.limits_command_history_max, 100000);
	ck_assert_int_eq(c.limits_metrics_interval, 60);
	ck_assert_int_eq(c.limits_install_timeout, 900);
	ck_assert_int_eq(c.limits_idle_stop_minutes, 30);
	ck_assert_int_eq(c.limits_terminated_retention_hours, 24);
	ck_assert_int_eq(c.limits_sync_retention_days, 30);
	ck_assert_str_eq(c.mail_transport, "file");
	ck_assert_str_eq(c.mail_from, "DevPocket <no-reply@devpocket.local>");
	ck_assert_str_eq(c.mail_frontend_url, "http://localhost:3000");
	ck_assert_str_eq(c.mail_file_dir, "/var/lib/devpocket/mail");
	ck_assert_str_eq(c.mail_smtp_url, "smtp://localhost:25");
	ck_assert_str_eq(c.mail_smtp_user, "");
	ck_assert_str_eq(c.mail_smtp_password, "");
	ck_assert(c.mail_smtp_starttls);
	ck_assert(!c.mail_smtp_insecure);
	ck_assert_int_eq(c.mail_smtp_timeout, 30);
	ck_assert_str_eq(c.google_jwks_url,
	    "https://www.googleapis.com/oauth2/v3/certs");
	ck_assert_str_eq(c.google_client_ids, "");
	ck_assert_int_eq(c.google_timeout, 10);
	ck_assert_str_eq(c.drivers_local_root, "/var/lib/devpocket/envs");
	ck_assert(c.drivers_local_sandbox);
	ck_assert_str_eq(c.ai_base_url, "https://openrouter.ai/api/v1");
	ck_assert_str_eq(c.ai_default_model, "google/gemini-2.5-flash");
	ck_assert_int_eq(c.ai_timeout, 60);
	ck_assert_str_eq(c.apps_domain, "apps.localhost");
	ck_assert_str_eq(c.apps_public_scheme, "https");
	ck_assert_int_eq(c.apps_public_port, 0);
	ck_assert(!c.apps_allow_file_urls);
	ck_assert_int_eq(c.apps_build_timeout, 900);
	ck_assert(!c.ssh_allow_private_networks);
	dp_config_release(&c);
	ck_assert_ptr_null(c.db_url);
	dp_config_release(&c);	/* twice is harmless */
	dp_config_release(NULL);
}
END_TEST

/* CONTRACT §4.3, row by row. */
START_TEST(test_config_plans)
{
	static const struct {
		int		 plan;
		int64_t		 envs, apps;
		const char	*dc, *dm, *ds, *mc, *mm, *ms;
	} rows[] = {
		{ DP_PLAN_FREE, 1, 1, "500m", "1Gi", "5Gi", "1000m", "2Gi",
		    "10Gi" },
		{ DP_PLAN_STARTER, 3, 3, "1000m", "2Gi", "10Gi", "2000m",
		    "4Gi", "20Gi" },
		{ DP_PLAN_PRO, 10, 10, "2000m", "4Gi", "20Gi", "4000m", "8Gi",
		    "50Gi" },
		{ DP_PLAN_ADMIN, 100, 100, "4000m", "8Gi", "50Gi", "8000m",
		    "16Gi", "100Gi" },
	};
	struct dp_config	 c;
	struct dp_plan_limits	*p;
	size_t			 i;

	dp_config_defaults(&c);
	for (i = 0; i < DP_NITEMS(rows); i++) {
		p = &c.plans[rows[i].plan];
		ck_assert_int_eq(p->max_environments, rows[i].envs);
		ck_assert_int_eq(p->max_apps, rows[i].apps);
		ck_assert_str_eq(p->default_cpu, rows[i].dc);
		ck_assert_str_eq(p->default_memory, rows[i].dm);
		ck_assert_str_eq(p->default_storage, rows[i].ds);
		ck_assert_str_eq(p->max_cpu, rows[i].mc);
		ck_assert_str_eq(p->max_memory, rows[i].mm);
		ck_assert_str_eq(p->max_storage, rows[i].ms);
	}
	ck_assert_str_eq(dp_plan_names[DP_PLAN_FREE], "free");
	ck_assert_str_eq(dp_plan_names[DP_PLAN_STARTER], "starter");
	ck_assert_str_eq(dp_plan_names[DP_PLAN_PRO], "pro");
	ck_assert_str_eq(dp_plan_names[DP_PLAN_ADMIN], "admin");
	ck_assert_int_eq(dp_plan_from_name("pro"), DP_PLAN_PRO);
	ck_assert_int_eq(dp_plan_from_name("admin"), DP_PLAN_ADMIN);
	ck_assert_int_eq(dp_plan_from_name("Pro"), -1);
	ck_assert_int_eq(dp_plan_from_name(""), -1);
	ck_assert_int_eq(dp_plan_from_name(NULL), -1);
	dp_config_release(&c);
}
END_TEST

START_TEST(test_config_file)
{
	struct dp_config	 c = { 0 };
	struct dp_err		 err = { 0 };

	write_conf(
	    "\xef\xbb\xbf# devpocket test\r\n"
	    "; another comment\n"
	    "\n"
	    "[database]\n"
	    "url = postgresql://dp:p;a=ss@db/dp?sslmode=require ; kept\n"
	    "[web]\n"
	    "   workers=4   \n"
	    "log_format = text\n"
	    "environment: staging\n"
	    "cors_origins =\n"
	    "[auth]\n"
	    "require_verified_email = YES\n"
	    "scrypt_n = 1024\n"
	    "[mail]\n"
	    "smtp_starttls = off\n"
	    "from = Dév Pocket <a@b.c>\n"
	    "[plans]\n"
	    "free_max_cpu = 1.5\n"
	    "free_default_cpu = 0.25\n"
	    "pro_max_memory = 8192Mi\n"
	    "pro_max_storage = 52428800Ki\n"
	    "admin_max_cpu = 12\n"
	    "[limits]\n"
	    "idle_stop_minutes = 0\n"
	    "rate_free = 1\n");
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	ck_assert_str_eq(c.db_url,
	    "postgresql://dp:p;a=ss@db/dp?sslmode=require ; kept");
	ck_assert_int_eq(c.web_workers, 4);
	ck_assert_str_eq(c.web_log_format, "text");
	ck_assert_str_eq(c.web_environment, "staging");
	ck_assert_str_eq(c.web_cors_origins, "");
	ck_assert(c.auth_require_verified_email);
	ck_assert_int_eq(c.auth_scrypt_n, 1024);
	ck_assert(!c.mail_smtp_starttls);
	ck_assert_str_eq(c.mail_from, "Dév Pocket <a@b.c>");
	ck_assert_str_eq(c.plans[DP_PLAN_FREE].max_cpu, "1500m");
	ck_assert_str_eq(c.plans[DP_PLAN_FREE].default_cpu, "250m");
	ck_assert_str_eq(c.plans[DP_PLAN_PRO].max_memory, "8Gi");
	ck_assert_str_eq(c.plans[DP_PLAN_PRO].max_storage, "50Gi");
	ck_assert_str_eq(c.plans[DP_PLAN_ADMIN].max_cpu, "12000m");
	ck_assert_int_eq(c.limits_idle_stop_minutes, 0);
	ck_assert_int_eq(c.limits_rate_free, 1);
	/* Untouched keys keep their defaults. */
	ck_assert_int_eq(c.limits_rate_pro, 300);
	/* Loading again replaces (valgrind checks that nothing leaks). */
	write_conf("[web]\nworkers = 2\n");
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(c.web_workers, 2);
	ck_assert_str_eq(c.web_log_format, "json");
	dp_config_release(&c);
}
END_TEST

START_TEST(test_config_errors)
{
	static const struct {
		const char	*text, *want;
	} cases[] = {
		{ "[nope]\nx = 1\n", "2: unknown section [nope]" },
		{ "[web]\nfoo = 1\n", "2: unknown key 'foo' in [web]" },
		{ "[web]\n\n\nworkers = 1\nfoo = 1\n",
		    "5: unknown key 'foo' in [web]" },
		{ "workers = 1\n", "1: key 'workers' outside any [section]" },
		{ "[web]\nworkers = lots\n",
		    "2: [web] workers: not an integer" },
		{ "[web]\nworkers = 1.5\n", "2: [web] workers: not an integer" },
		{ "[web]\nworkers = 0x10\n", "2: [web] workers: not an integer" },
		{ "[web]\nworkers = +1\n", "2: [web] workers: not an integer" },
		{ "[web]\nworkers =\n", "2: [web] workers: not an integer" },
		{ "[web]\nworkers = 257\n",
		    "2: [web] workers: must be between 0 and 256" },
		{ "[web]\nworkers = -1\n",
		    "2: [web] workers: must be between 0 and 256" },
		{ "[limits]\nbody_max = 99999999999999999999999\n",
		    "2: [limits] body_max: not an integer" },
		{ "[limits]\nbody_max = -9223372036854775808\n",
		    "2: [limits] body_max: must be between 1024 and "
		    "1073741824" },
		{ "[limits]\nrate_free = 0\n",
		    "2: [limits] rate_free: must be between 1 and 1000000000" },
		{ "[limits]\nws_per_user = -5\n",
		    "2: [limits] ws_per_user: must be between 1 and "
		    "1000000000" },
		{ "[auth]\nrequire_verified_email = maybe\n",
		    "2: [auth] require_verified_email: must be true or false" },
		{ "[auth]\nrequire_verified_email = 2\n",
		    "2: [auth] require_verified_email: must be true or false" },
		{ "[auth]\nscrypt_n = 3000\n",
		    "2: [auth] scrypt_n: must be a power of two" },
		{ "[auth]\nscrypt_n = 512\n",
		    "2: [auth] scrypt_n: must be between 1024 and 1048576" },
		{ "[auth]\njwt_key_file = jwt.key\n",
		    "2: [auth] jwt_key_file: must be an absolute path" },
		{ "[web]\nlog_format = xml\n",
		    "2: [web] log_format: must be one of json|text" },
		{ "[web]\nlog_level = INFO\n",
		    "2: [web] log_level: must be one of "
		    "debug|info|warning|error" },
		{ "[mail]\ntransport = carrier-pigeon\n",
		    "2: [mail] transport: must be one of file|smtp|smtps|none" },
		{ "[mail]\nsmtp_url = http://x\n",
		    "2: [mail] smtp_url: must be a URL (smtp|smtps)" },
		{ "[mail]\nfrontend_url = javascript:alert(1)\n",
		    "2: [mail] frontend_url: must be a URL (http|https)" },
		{ "[mail]\nfrontend_url = https://\n",
		    "2: [mail] frontend_url: must be a URL (http|https)" },
		{ "[database]\nurl =\n",
		    "2: [database] url: length must be between 1 and 4096" },
		{ "[plans]\nfree_max_cpu = 1k\n",
		    "2: [plans] free_max_cpu: must be millicores (500m) or "
		    "cores (0.5)" },
		{ "[plans]\nfree_max_cpu = m\n",
		    "2: [plans] free_max_cpu: must be millicores (500m) or "
		    "cores (0.5)" },
		{ "[plans]\nfree_max_cpu = 0.0001\n",
		    "2: [plans] free_max_cpu: must be millicores (500m) or "
		    "cores (0.5)" },
		{ "[plans]\nfree_max_cpu = -1\n",
		    "2: [plans] free_max_cpu: must be millicores (500m) or "
		    "cores (0.5)" },
		{ "[plans]\nfree_max_cpu = 0m\n",
		    "2: [plans] free_max_cpu: must be between 1m and "
		    "1000000000m" },
		{ "[plans]\nfree_max_cpu = 99999999999999999999m\n",
		    "2: [plans] free_max_cpu: must be millicores (500m) or "
		    "cores (0.5)" },
		{ "[plans]\npro_max_memory = 1G\n",
		    "2: [plans] pro_max_memory: must be a quantity <n>Ki, Mi, "
		    "Gi or Ti (at most 1024Ti)" },
		{ "[plans]\npro_max_memory = 0Gi\n",
		    "2: [plans] pro_max_memory: must be a quantity <n>Ki, Mi, "
		    "Gi or Ti (at most 1024Ti)" },
		{ "[plans]\npro_max_memory = 01Gi\n",
		    "2: [plans] pro_max_memory: must be a quantity <n>Ki, Mi, "
		    "Gi or Ti (at most 1024Ti)" },
		{ "[plans]\npro_max_memory = 1025Ti\n",
		    "2: [plans] pro_max_memory: must be a quantity <n>Ki, Mi, "
		    "Gi or Ti (at most 1024Ti)" },
		{ "[plans]\npro_max_memory = 9999999999999999Ti\n",
		    "2: [plans] pro_max_memory: must be a quantity <n>Ki, Mi, "
		    "Gi or Ti (at most 1024Ti)" },
		{ "[web]\nenvironment = a\x01" "b\n",
		    "2: [web] environment: control character or invalid UTF-8" },
		{ "[web]\nenvironment = \xc3\x28\n",
		    "2: [web] environment: control character or invalid UTF-8" },
		{ "[web]\nenvironment = \xed\xa0\x80\n",
		    "2: [web] environment: control character or invalid UTF-8" },
		{ "[web]\nenvironment = \xc0\xaf\n",
		    "2: [web] environment: control character or invalid UTF-8" },
		{ "[web]\nworkers\n",
		    "2: syntax error: expected [section] or key = value" },
		{ "[web\nworkers = 1\n",
		    "1: syntax error: expected [section] or key = value" },
		{ "[ web ]\nworkers = 1\n", "2: unknown section [ web ]" },
		{ "[web]\nWorkers = 1\n", "2: unknown key 'Workers' in [web]" },
		{ "[web]\n\x1b[31mfoo = 1\n",
		    "2: unknown key '?[31mfoo' in [web]" },
		/* Multi-line continuation is not part of the format. */
		{ "[web]\nworkers = 1\n  2\n",
		    "3: syntax error: expected [section] or key = value" },
	};
	size_t	 i;

	for (i = 0; i < DP_NITEMS(cases); i++)
		expect_error(cases[i].text, cases[i].want);
}
END_TEST

START_TEST(test_config_plan_consistency)
{
	struct dp_config	 c = { 0 };
	struct dp_err		 err = { 0 };

	write_conf("[plans]\nfree_default_cpu = 2\n");
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	ck_assert_str_eq(err.msg,
	    "[plans] free_default_cpu: exceeds free_max_cpu");
	write_conf("[plans]\nstarter_default_memory = 5Gi\n");
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	ck_assert_str_eq(err.msg,
	    "[plans] starter_default_memory: exceeds starter_max_memory");
	write_conf("[plans]\npro_max_storage = 10Gi\n");
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	ck_assert_str_eq(err.msg,
	    "[plans] pro_default_storage: exceeds pro_max_storage");
	/* Raising both together is fine. */
	write_conf("[plans]\nfree_default_cpu = 2\nfree_max_cpu = 4\n");
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	dp_config_release(&c);
}
END_TEST

START_TEST(test_config_hostile)
{
	struct dp_config	 c = { 0 };
	struct dp_err		 err = { 0 };
	static const char	 nul[] = "[web]\nworkers = 1\0\nfoo = 1\n";
	char			*big;
	size_t			 n;
	char			 want[256];

	/* NUL bytes: inih would stop reading at them; we refuse. */
	write_bytes(conf, nul, sizeof(nul) - 1);
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	snprintf(want, sizeof(want), "%s:2: NUL byte in line", conf);
	ck_assert_str_eq(err.msg, want);

	/* A line longer than the cap is an error, not truncated. */
	n = 5000;
	big = malloc(n + 64);
	ck_assert_ptr_nonnull(big);
	memcpy(big, "[web]\n\nenvironment = ", 21);
	memset(big + 21, 'x', n);
	memcpy(big + 21 + n, "\n", 2);
	write_conf(big);
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	snprintf(want, sizeof(want), "%s:3: line longer than 4096 bytes",
	    conf);
	ck_assert_str_eq(err.msg, want);

	/* Exactly at the cap (4096 bytes, CRLF excluded) is fine. */
	memcpy(big, "[web]\nenvironment=", 18);
	memset(big + 18, 'y', 4096 - 12);
	memcpy(big + 18 + 4096 - 12, "\r\n", 3);
	write_conf(big);
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	ck_assert_uint_eq(strlen(c.web_environment), 4096 - 12);
	free(big);

	/* A huge file (over 1 MiB) of comments. */
	n = 2 * 1024 * 1024;
	big = malloc(n + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, '#', n);
	for (size_t i = 80; i < n; i += 81)
		big[i] = '\n';
	big[n] = '\0';
	write_conf(big);
	free(big);
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	snprintf(want, sizeof(want), "%s: file larger than 1 MiB", conf);
	ck_assert_str_eq(err.msg, want);

	/* A directory where the file should be. */
	ck_assert_int_eq(dp_config_load(&c, tmpdir, false, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "Is a directory"));

	/* Truncated mid-line (no final newline) still parses. */
	write_conf("[web]\nworkers = 7");
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(c.web_workers, 7);
	/* A truncated section header does not. */
	write_conf("[web]\nworkers = 7\n[lim");
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	snprintf(want, sizeof(want), "%s:3: syntax error: expected [section] "
	    "or key = value", conf);
	ck_assert_str_eq(err.msg, want);
	/* The failed loads left the good one in place. */
	ck_assert_int_eq(c.web_workers, 7);
	/* An empty file is all defaults. */
	write_conf("");
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), 0);
	ck_assert_int_eq(c.web_workers, 0);
	dp_config_release(&c);
}
END_TEST

START_TEST(test_config_confd)
{
	struct dp_config	 c = { 0 };
	struct dp_err		 err = { 0 };
	char			 want[256];

	write_conf("[limits]\nrate_free = 111\nrate_pro = 333\n");
	write_dropin("20-later.conf", "[limits]\nrate_free = 222\n");
	write_dropin("10-early.conf",
	    "[limits]\nrate_free = 999\nrate_starter = 444\n");
	write_dropin("30-off.conf.disabled", "[limits]\nrate_free = 5\n");
	write_dropin(".hidden.conf", "[limits]\nrate_free = 6\n");
	write_dropin("README", "not ini at all\n");
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(c.limits_rate_free, 222);
	ck_assert_int_eq(c.limits_rate_starter, 444);
	ck_assert_int_eq(c.limits_rate_pro, 333);

	/* Without the main file (not required) conf.d still applies. */
	unlink(conf);
	ck_assert_msg(dp_config_load(&c, conf, false, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(c.limits_rate_free, 222);
	ck_assert_int_eq(c.limits_rate_pro, 300);

	/* An error in a drop-in names that file and line. */
	write_dropin("40-bad.conf", "# x\n[limits]\nrate_free = none\n");
	ck_assert_int_eq(dp_config_load(&c, conf, false, &err), -1);
	snprintf(want, sizeof(want), "%s/conf.d/40-bad.conf:3: [limits] "
	    "rate_free: not an integer", tmpdir);
	ck_assert_str_eq(err.msg, want);
	ck_assert_int_eq(c.limits_rate_free, 222);
	dp_config_release(&c);
}
END_TEST

START_TEST(test_config_env)
{
	struct dp_config	 c = { 0 };
	struct dp_err		 err = { 0 };

	write_conf("[limits]\nrate_free = 111\n");
	write_dropin("10.conf", "[plans]\nfree_max_cpu = 1500m\n");
	setenv("DEVPOCKET_LIMITS_RATE_FREE", "1000", 1);
	setenv("DEVPOCKET_PLANS_FREE_MAX_CPU", "2", 1);
	setenv("DEVPOCKET_AUTH_REQUIRE_VERIFIED_EMAIL", " on ", 1);
	setenv("DEVPOCKET_MAIL_SMTP_PASSWORD", "s3cret", 1);
	setenv("DEVPOCKET_WEB_NO_SUCH_KEY", "ignored", 1);
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	ck_assert_int_eq(c.limits_rate_free, 1000);
	ck_assert_str_eq(c.plans[DP_PLAN_FREE].max_cpu, "2000m");
	ck_assert(c.auth_require_verified_email);
	ck_assert_str_eq(c.mail_smtp_password, "s3cret");

	setenv("DEVPOCKET_LIMITS_RATE_FREE", "0", 1);
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	ck_assert_str_eq(err.msg, "DEVPOCKET_LIMITS_RATE_FREE: [limits] "
	    "rate_free: must be between 1 and 1000000000");
	setenv("DEVPOCKET_LIMITS_RATE_FREE", "12\n34", 1);
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	ck_assert_str_eq(err.msg, "DEVPOCKET_LIMITS_RATE_FREE: [limits] "
	    "rate_free: control character or invalid UTF-8");
	unsetenv("DEVPOCKET_LIMITS_RATE_FREE");
	setenv("DEVPOCKET_WEB_LOG_FORMAT", "yaml", 1);
	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	ck_assert_str_eq(err.msg, "DEVPOCKET_WEB_LOG_FORMAT: [web] "
	    "log_format: must be one of json|text");
	unsetenv("DEVPOCKET_WEB_LOG_FORMAT");
	/* The earlier good load is still there. */
	ck_assert_int_eq(c.limits_rate_free, 1000);
	dp_config_release(&c);
}
END_TEST

START_TEST(test_config_required)
{
	struct dp_config	 c = { 0 };
	struct dp_err		 err = { 0 };
	char			 want[256];

	ck_assert_int_eq(dp_config_load(&c, conf, true, &err), -1);
	snprintf(want, sizeof(want), "%s: No such file or directory", conf);
	ck_assert_str_eq(err.msg, want);
	ck_assert_ptr_null(c.db_url);
	ck_assert_int_eq(dp_config_load(&c, conf, false, &err), 0);
	ck_assert_int_eq(c.limits_rate_free, 100);
	dp_config_release(&c);

	/* Unreadable is an error even when the file is optional. */
	if (geteuid() != 0) {
		write_conf("[web]\n");
		ck_assert_int_eq(chmod(conf, 0), 0);
		ck_assert_int_eq(dp_config_load(&c, conf, false, &err), -1);
		ck_assert_ptr_nonnull(strstr(err.msg, "Permission denied"));
	}
}
END_TEST

START_TEST(test_config_default_path)
{
	ck_assert_str_eq(dp_config_default_path(),
	    DP_SYSCONFDIR "/devpocket/devpocket.conf");
	setenv("DEVPOCKET_CONF", "/tmp/x.conf", 1);
	ck_assert_str_eq(dp_config_default_path(), "/tmp/x.conf");
	setenv("DEVPOCKET_CONF", "", 1);
	ck_assert_str_eq(dp_config_default_path(),
	    DP_SYSCONFDIR "/devpocket/devpocket.conf");
	unsetenv("DEVPOCKET_CONF");
}
END_TEST

START_TEST(test_config_set)
{
	struct dp_config	 c;
	struct dp_err		 err = { 0 };

	dp_config_defaults(&c);
	ck_assert_int_eq(dp_config_set(&c, "web", "workers", "8", &err), 0);
	ck_assert_int_eq(c.web_workers, 8);
	ck_assert_int_eq(dp_config_set(&c, "web", "workers", "x", &err), -1);
	ck_assert_str_eq(err.msg, "[web] workers: not an integer");
	ck_assert_int_eq(c.web_workers, 8);
	ck_assert_int_eq(dp_config_set(&c, "mail", "from", "a <b@c>", &err),
	    0);
	ck_assert_str_eq(c.mail_from, "a <b@c>");
	ck_assert_int_eq(dp_config_set(&c, "mail", "from", NULL, &err), -1);
	ck_assert_int_eq(dp_config_set(&c, "", "from", "x", &err), -1);
	ck_assert_str_eq(err.msg, "key 'from' outside any [section]");
	ck_assert_int_eq(dp_config_set(&c, "mail", "nope", "x", &err), -1);
	ck_assert_str_eq(err.msg, "unknown key 'nope' in [mail]");
	dp_config_release(&c);
}
END_TEST

START_TEST(test_config_dump)
{
	struct dp_config	 c = { 0 }, d = { 0 };
	struct dp_err		 err = { 0 };
	struct dp_buf		 a = { 0 }, b = { 0 }, m = { 0 };

	write_conf(
	    "[web]\nworkers = 3\nlog_level = debug\ncors_origins = *\n"
	    "[mail]\nsmtp_password = pa ss;#word\nsmtp_insecure = true\n"
	    "from = x ; y\n"
	    "[plans]\npro_max_memory = 6144Mi\nfree_default_cpu = 0.1\n"
	    "[limits]\nbody_max = 2048\n"
	    "[apps]\npublic_port = 8443\n");
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	dp_config_dump(&c, &a, false);
	ck_assert_ptr_nonnull(strstr(a.s, "[web]\n"));
	ck_assert_ptr_nonnull(strstr(a.s, "\nworkers = 3\n"));
	ck_assert_ptr_nonnull(strstr(a.s, "\npro_max_memory = 6Gi\n"));
	ck_assert_ptr_nonnull(strstr(a.s, "\nsmtp_password = pa ss;#word\n"));

	/* Round trip: parse the dump again, dump again, same text. */
	write_conf(a.s);
	ck_assert_msg(dp_config_load(&d, conf, true, &err) == 0, "%s",
	    err.msg);
	dp_config_dump(&d, &b, false);
	ck_assert_str_eq(a.s, b.s);
	ck_assert_int_eq(d.web_workers, 3);
	ck_assert_int_eq(d.apps_public_port, 8443);
	ck_assert_str_eq(d.mail_smtp_password, "pa ss;#word");
	ck_assert_str_eq(d.mail_from, "x ; y");

	/* Masked: the password never appears; an empty one stays empty. */
	dp_config_dump(&c, &m, true);
	ck_assert_ptr_null(strstr(m.s, "pa ss"));
	ck_assert_ptr_nonnull(strstr(m.s, "\nsmtp_password = ********\n"));
	dp_buf_reset(&m);
	dp_config_release(&c);
	dp_config_defaults(&c);
	dp_config_dump(&c, &m, true);
	ck_assert_ptr_nonnull(strstr(m.s, "\nsmtp_password = \n"));

	/* Passwords inside URLs and conninfo strings are masked too. */
	dp_buf_reset(&m);
	write_conf(
	    "[database]\nurl = host=/run/x password='s3 cr\\'et' "
	    "dbname=d\n"
	    "[mail]\nsmtp_url = smtp://mailer:Hunter2@relay.test:587\n");
	dp_config_release(&c);
	ck_assert_msg(dp_config_load(&c, conf, true, &err) == 0, "%s",
	    err.msg);
	dp_config_dump(&c, &m, true);
	ck_assert_ptr_null(strstr(m.s, "s3 cr"));
	ck_assert_ptr_null(strstr(m.s, "Hunter2"));
	ck_assert_ptr_nonnull(strstr(m.s,
	    "\nurl = host=/run/x password=*** dbname=d\n"));
	ck_assert_ptr_nonnull(strstr(m.s,
	    "\nsmtp_url = smtp://mailer:***@relay.test:587\n"));
	{
		static const char *const same[] = {
			"smtp://relay.test:25", "host=/run/x dbname=d",
			"postgresql:///d?host=/run/x", "passwords=1",
			"user=password",
		};
		size_t	 i;

		for (i = 0; i < DP_NITEMS(same); i++) {
			dp_buf_reset(&m);
			dp_redact(same[i], &m);
			ck_assert_str_eq(m.s, same[i]);
		}
		dp_buf_reset(&m);
		dp_redact("postgresql://u:pw@db/x?password=p2&sslmode=a", &m);
		ck_assert_str_eq(m.s,
		    "postgresql://u:***@db/x?password=***&sslmode=a");
		/* Tabs, spaces around '=', sslpassword, an encoded key. */
		dp_buf_reset(&m);
		dp_redact("host=db\tpassword=s1 sslpassword = 's 2' x=1", &m);
		ck_assert_str_eq(m.s,
		    "host=db\tpassword=*** sslpassword = *** x=1");
		dp_buf_reset(&m);
		dp_redact("postgresql:///d?%70assword=s3&PassWord=s4", &m);
		ck_assert_str_eq(m.s,
		    "postgresql:///d?%70assword=***&PassWord=***");
	}

	dp_buf_release(&a);
	dp_buf_release(&b);
	dp_buf_release(&m);
	dp_config_release(&c);
	dp_config_release(&d);
}
END_TEST

/* Every "[section]" / "key = value" pair of a dump of the defaults. */
struct kv {
	char	 section[32], key[64], value[256];
	bool	 in_conf, in_man;
};

static size_t
table_keys(struct kv **out)
{
	struct dp_config	 c;
	struct dp_buf		 b = { 0 };
	struct kv		*kv = NULL;
	char			 sec[32] = "", *line, *save = NULL, *eq;
	size_t			 n = 0;

	dp_config_defaults(&c);
	dp_config_dump(&c, &b, false);
	for (line = strtok_r(b.s, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '[') {
			snprintf(sec, sizeof(sec), "%.*s",
			    (int)strcspn(line + 1, "]"), line + 1);
			continue;
		}
		eq = strstr(line, " = ");
		ck_assert_ptr_nonnull(eq);
		kv = realloc(kv, (n + 1) * sizeof(*kv));
		ck_assert_ptr_nonnull(kv);
		memset(&kv[n], 0, sizeof(kv[n]));
		snprintf(kv[n].section, sizeof(kv[n].section), "%s", sec);
		snprintf(kv[n].key, sizeof(kv[n].key), "%.*s",
		    (int)(eq - line), line);
		snprintf(kv[n].value, sizeof(kv[n].value), "%s", eq + 3);
		n++;
	}
	dp_buf_release(&b);
	dp_config_release(&c);
	*out = kv;
	return n;
}

static FILE *
open_src(const char *rel)
{
	const char	*src = getenv("DP_SRCDIR");
	char		 path[1024];
	FILE		*f;

	if (src == NULL || *src == '\0')
		src = ".";
	snprintf(path, sizeof(path), "%s/%s", src, rel);
	f = fopen(path, "r");
	ck_assert_msg(f != NULL, "cannot open %s (set DP_SRCDIR)", path);
	return f;
}

static struct kv *
lookup(struct kv *kv, size_t n, const char *sec, const char *key)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (strcmp(kv[i].section, sec) == 0 &&
		    strcmp(kv[i].key, key) == 0)
			return &kv[i];
	return NULL;
}

/*
 * etc/devpocket.conf: "[section]" headers and "#key = default" lines.
 * Every key is there, under its section, with its default.
 */
START_TEST(test_config_docs_conf)
{
	struct kv	*kv, *k;
	size_t		 n, i, len;
	char		 line[8192], sec[32] = "", key[64], *eq, *val;
	FILE		*f;
	struct dp_config c = { 0 };
	struct dp_err	 err = { 0 };
	const char	*src = getenv("DP_SRCDIR");
	char		 path[1024];

	n = table_keys(&kv);
	ck_assert_uint_ge(n, 100);
	f = open_src("etc/devpocket.conf");
	while (fgets(line, sizeof(line), f) != NULL) {
		len = strcspn(line, "\r\n");
		line[len] = '\0';
		if (line[0] == '[') {
			snprintf(sec, sizeof(sec), "%.*s",
			    (int)strcspn(line + 1, "]"), line + 1);
			continue;
		}
		if (line[0] != '#' || !islower((unsigned char)line[1]) ||
		    (eq = strstr(line, " =")) == NULL)
			continue;
		snprintf(key, sizeof(key), "%.*s", (int)(eq - line - 1),
		    line + 1);
		if (strchr(key, ' ') != NULL)
			continue;	/* prose */
		/* "#key = value", or "#key =" when the default is empty. */
		val = eq[2] == ' ' ? eq + 3 : eq + 2;
		k = lookup(kv, n, sec, key);
		ck_assert_msg(k != NULL, "etc/devpocket.conf: [%s] %s is not "
		    "a key", sec, key);
		k->in_conf = true;
		/* Paths depend on the build's prefixes; the rest must match. */
		if (strcmp(key, "data_dir") != 0 &&
		    strstr(key, "key_file") == NULL)
			ck_assert_msg(strcmp(val, k->value) == 0,
			    "etc/devpocket.conf: [%s] %s = '%s', default is "
			    "'%s'", sec, key, val, k->value);
	}
	fclose(f);
	for (i = 0; i < n; i++)
		ck_assert_msg(kv[i].in_conf, "etc/devpocket.conf lacks [%s] %s",
		    kv[i].section, kv[i].key);
	free(kv);

	/* The shipped file itself loads (everything commented out). */
	if (src == NULL || *src == '\0')
		src = ".";
	snprintf(path, sizeof(path), "%s/etc/devpocket.conf", src);
	ck_assert_msg(dp_config_load(&c, path, true, &err) == 0, "%s",
	    err.msg);
	dp_config_release(&c);
}
END_TEST

/*
 * docs/devpocket.conf.5: ".Ss [section]" then ".It Ic key , key Pq type"
 * (several keys may share one item).  Every key is there, and no other.
 */
START_TEST(test_config_docs_man)
{
	struct kv	*kv, *k;
	size_t		 n, i, len;
	char		 line[4096], sec[32] = "", *tok, *save;
	FILE		*f;

	n = table_keys(&kv);
	f = open_src("docs/devpocket.conf.5");
	while (fgets(line, sizeof(line), f) != NULL) {
		len = strcspn(line, "\r\n");
		line[len] = '\0';
		if (strncmp(line, ".Ss ", 4) == 0) {
			tok = strchr(line, '[');
			if (tok != NULL)
				snprintf(sec, sizeof(sec), "%.*s",
				    (int)strcspn(tok + 1, "]"), tok + 1);
			else
				sec[0] = '\0';
			continue;
		}
		if (strncmp(line, ".It Ic ", 7) != 0 || sec[0] == '\0')
			continue;
		save = NULL;
		for (tok = strtok_r(line + 7, " ", &save); tok != NULL;
		    tok = strtok_r(NULL, " ", &save)) {
			if (isupper((unsigned char)tok[0]))
				break;		/* Pq (type) and the like */
			if (!islower((unsigned char)tok[0]))
				continue;	/* "," between keys */
			k = lookup(kv, n, sec, tok);
			ck_assert_msg(k != NULL, "devpocket.conf.5: [%s] %s "
			    "is not a key", sec, tok);
			k->in_man = true;
		}
	}
	fclose(f);
	for (i = 0; i < n; i++)
		ck_assert_msg(kv[i].in_man, "devpocket.conf.5 lacks [%s] %s",
		    kv[i].section, kv[i].key);
	free(kv);
}
END_TEST

static Suite *
config_suite(void)
{
	Suite	*s = suite_create("config");
	TCase	*tc;
	struct {
		const char	*name;
		const TTest	*test;
	} tests[] = {
		{ "defaults", test_config_defaults },
		{ "plans", test_config_plans },
		{ "file", test_config_file },
		{ "errors", test_config_errors },
		{ "plan_consistency", test_config_plan_consistency },
		{ "hostile", test_config_hostile },
		{ "confd", test_config_confd },
		{ "env", test_config_env },
		{ "required", test_config_required },
		{ "default_path", test_config_default_path },
		{ "set", test_config_set },
		{ "dump", test_config_dump },
		{ "docs_conf", test_config_docs_conf },
		{ "docs_man", test_config_docs_man },
	};
	size_t	 i;

	for (i = 0; i < DP_NITEMS(tests); i++) {
		tc = tcase_create(tests[i].name);
		tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
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

	sr = srunner_create(config_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
