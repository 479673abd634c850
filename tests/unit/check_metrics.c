/* tests/unit/check_metrics.c: /metrics sums across processes: consistent
 * histograms while a worker writes, counts kept when a worker is replaced */
#include <sys/wait.h>

#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"
#include "util.h"

static char	 dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/check_metrics.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	dp_config_defaults(&dp_cfg);
	free(dp_cfg.web_runtime_dir);
	dp_cfg.web_runtime_dir = dp_xstrdup(dir);
}

static void
teardown(void)
{
	char	 cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)system(cmd);
	dp_config_release(&dp_cfg);
}

/* The value of the series line starting with prefix in text, or -1. */
static long long
series(const char *text, const char *prefix)
{
	const char	*p = text;
	size_t		 n = strlen(prefix);

	for (; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
			return strtoll(p + n + 1, NULL, 10);
	return -1;
}

#define ROUTE	"/api/v1/users/me"
#define BUCKET(le) "devpocket_http_request_duration_seconds_bucket{route=\"" \
	ROUTE "\",le=\"" le "\"}"
#define TOTAL(st) "devpocket_http_requests_total{route=\"" ROUTE \
	"\",method=\"GET\",status=\"" st "\"}"

/* Observe n requests of 0.1 ms, then wait for SIGTERM when hold. */
static pid_t
worker(int n, bool hold, int ready)
{
	pid_t	 pid = fork();
	int	 i;

	ck_assert_int_ge(pid, 0);
	if (pid > 0)
		return pid;
	dp_metrics_open("t");
	for (i = 0; n < 0 || i < n; i++)
		dp_metrics_observe(ROUTE, "GET", 200, 0.0001);
	if (ready >= 0)
		(void)write(ready, "r", 1);
	while (hold)
		pause();
	_exit(0);
}

static void
reap(pid_t pid)
{
	int	 st;

	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
}

/*
 * A render while a worker writes never shows a bucket above +Inf (the
 * count): Prometheus wants cumulative buckets that never decrease.
 */
START_TEST(test_metrics_consistent_while_written)
{
	struct dp_buf	 b = { 0 };
	long long	 small, big, inf, last = 0;
	pid_t		 pid;
	int		 i, seen = 0;

	pid = worker(-1, false, -1);
	/* Its first write first: on a busy machine it can start late (and
	 * the renders below then all come before it: seen 0). */
	for (i = 0; i < 10000; i++) {
		dp_buf_reset(&b);
		dp_metrics_render_http(&b);
		if (series(b.s ? b.s : "", BUCKET("+Inf")) > 0)
			break;
		usleep(1000);
	}
	for (i = 0; i < 3000; i++) {
		dp_buf_reset(&b);
		dp_metrics_render_http(&b);
		inf = series(b.s ? b.s : "", BUCKET("+Inf"));
		if (inf < 0)
			continue;
		small = series(b.s, BUCKET("0.001"));
		big = series(b.s, BUCKET("5"));
		ck_assert_msg(small <= big && big <= inf,
		    "buckets 0.001 %lld, 5 %lld, +Inf %lld", small, big, inf);
		ck_assert_int_eq(series(b.s, TOTAL("200")), inf);
		ck_assert_int_ge(inf, last);
		last = inf;
		seen++;
	}
	kill(pid, SIGKILL);
	reap(pid);
	ck_assert_int_gt(seen, 100);
	ck_assert_int_gt(last, 0);
	dp_buf_release(&b);
}
END_TEST

static long long
total(void)
{
	struct dp_buf	 b = { 0 };
	long long	 n;

	dp_metrics_render_http(&b);
	n = series(b.s ? b.s : "", TOTAL("200"));
	dp_buf_release(&b);
	return n;
}

static int
files(void)
{
	char	 cmd[160];
	FILE	*f;
	int	 n = -1;

	snprintf(cmd, sizeof(cmd), "ls '%s/metrics' | grep -c '^t\\.'", dir);
	f = popen(cmd, "r");
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fscanf(f, "%d", &n), 1);
	pclose(f);
	return n;
}

/*
 * A worker that dies and is replaced: its requests stay counted (the
 * replacement goes on in its file), so the sum never goes down, and
 * files do not pile up.
 */
START_TEST(test_metrics_kept_when_worker_replaced)
{
	pid_t	 a, b, c;
	int	 p[2];
	char	 x;

	ck_assert_int_eq(pipe(p), 0);
	a = worker(1000, false, -1);
	reap(a);
	b = worker(1000, true, p[1]);	/* takes a's file */
	ck_assert_int_eq(read(p[0], &x, 1), 1);
	ck_assert_int_eq(total(), 2000);
	ck_assert_int_eq(files(), 1);
	c = worker(5, false, -1);	/* b lives: a file of its own */
	reap(c);
	ck_assert_int_eq(total(), 2005);
	ck_assert_int_eq(files(), 2);
	c = worker(7, false, -1);	/* takes c's */
	reap(c);
	ck_assert_int_eq(total(), 2012);
	ck_assert_int_eq(files(), 2);
	kill(b, SIGKILL);
	reap(b);
	ck_assert_int_eq(total(), 2012);
	close(p[0]);
	close(p[1]);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite	*s = suite_create("metrics");
	TCase	*tc;

	tc = tcase_create("consistent");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_metrics_consistent_while_written);
	suite_add_tcase(s, tc);
	tc = tcase_create("replaced");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_metrics_kept_when_worker_replaced);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(metrics_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
