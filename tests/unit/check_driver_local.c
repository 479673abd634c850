/* tests/unit/check_driver_local.c: the local driver with real tmux */
/*
 * Every test works in a private local_root under /tmp, starts real tmux
 * servers (in bubblewrap when it works here) and checks at the end that
 * none of their processes is left.  Without tmux the program prints a
 * note and passes.
 */
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "config.h"
#include "driver.h"
#include "driver_local.h"
#include "util.h"

static char	 root[PATH_MAX];
static char	 made[64][25];		/* ids of the current test */
static size_t	 nmade;
static const struct dp_driver *drv;

/* --- helpers ------------------------------------------------------------ */

/* snprintf that fails the test on truncation. */
static void
xsnprintf(char *out, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
xsnprintf(char *out, size_t n, const char *fmt, ...)
{
	va_list	 ap;
	int	 r;

	va_start(ap, fmt);
	r = vsnprintf(out, n, fmt, ap);
	va_end(ap);
	ck_assert_msg(r >= 0 && (size_t)r < n, "truncated: %s", fmt);
}

static void
msleep(int ms)
{
	struct timespec	 ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Outside a test (no Check assertions). */
static void
set_key_quiet(const char *key, const char *value)
{
	struct dp_err	 err = { 0 };

	if (dp_config_set(&dp_cfg, "drivers", key, value, &err) == -1)
		fprintf(stderr, "%s: %s\n", key, err.msg);
}

static void
set_key(const char *key, const char *value)
{
	struct dp_err	 err = { 0 };

	ck_assert_msg(dp_config_set(&dp_cfg, "drivers", key, value, &err) == 0,
	    "%s: %s", key, err.msg);
}

/*
 * The root is made in the unchecked fixture (the runner's process), so
 * that its teardown can clean up even after a failed test, whose checked
 * teardown Check does not run in fork mode.
 */
static void
setup_root(void)
{
	(void)snprintf(root, sizeof(root), "/tmp/check_driver_local.XXXXXX");
	if (mkdtemp(root) == NULL || chmod(root, 0755) == -1)
		abort();
}

static void
setup(void)
{
	set_key("local_root", root);
	set_key("local_sandbox", "true");
	drv = dp_driver_get("local");
	ck_assert_ptr_nonnull(drv);
}

/* Live (not zombie) processes whose command line mentions the root. */
static int
count_procs(void)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[64], buf[8192], *p;
	int		 fd, n = 0;
	ssize_t		 r, i;

	ck_assert_ptr_nonnull(d = opendir("/proc"));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		xsnprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = '\0';
		if ((p = strrchr(buf, ')')) != NULL && p[1] == ' ' &&
		    p[2] == 'Z')
			continue;
		xsnprintf(path, sizeof(path), "/proc/%s/cmdline", de->d_name);
		if ((fd = open(path, O_RDONLY)) == -1)
			continue;
		r = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		for (i = 0; i < r; i++)
			if (buf[i] == '\0')
				buf[i] = ' ';
		buf[r] = '\0';
		if (strstr(buf, root) != NULL)
			n++;
	}
	closedir(d);
	return n;
}

/* Destroy whatever environment a test left under the root. */
static void
destroy_all(void)
{
	struct dp_env_spec	 s = { 0 };
	struct dp_err		 err = { 0 };
	struct dirent		*de;
	DIR			*d;
	char			 id[25];

	if ((d = opendir(root)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!dp_is_id(de->d_name))
			continue;
		memcpy(id, de->d_name, sizeof(id));
		s.id = id;
		if (dp_driver_local.destroy(NULL, &s, &err) == -1)
			fprintf(stderr, "destroy %s: %s\n", id, err.msg);
	}
	closedir(d);
}

/* Checked: no process of the test's environments is left. */
static void
teardown(void)
{
	int	 i, n = 0;

	destroy_all();
	/* Let killed processes be reaped by init. */
	for (i = 0; i < 100 && (n = count_procs()) != 0; i++)
		msleep(30);
	ck_assert_msg(n == 0, "%d processes of the environments left", n);
	for (i = 0; i < (int)nmade; i++) {
		char	 cg[PATH_MAX];

		xsnprintf(cg, sizeof(cg), "/sys/fs/cgroup/devpocket/%s",
		    made[i]);
		ck_assert_msg(access(cg, F_OK) == -1, "%s left", cg);
		xsnprintf(cg, sizeof(cg), "/sys/fs/cgroup/unified/devpocket/%s",
		    made[i]);
		ck_assert_msg(access(cg, F_OK) == -1, "%s left", cg);
	}
	nmade = 0;
}

/* Unchecked, also after a failure: remove everything. */
static void
teardown_root(void)
{
	char	 cmd[PATH_MAX + 32];

	set_key_quiet("local_root", root);
	destroy_all();
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", root);
}

static void
spec_init(struct dp_env_spec *s, char *id, const char *const *cmds, size_t n)
{
	memset(s, 0, sizeof(*s));
	dp_new_id(id);
	if (nmade < DP_NITEMS(made))
		memcpy(made[nmade++], id, 25);
	s->id = id;
	s->user_id = "000000000000000000000001";
	s->name = "t";
	s->image = "debian";
	s->cpu_millicores = 1000;
	s->memory_bytes = (int64_t)1 << 30;
	s->storage_bytes = (int64_t)1 << 30;
	s->commands = cmds;
	s->ncommands = n;
}

static enum dp_phase
phase(const struct dp_env_spec *s)
{
	struct dp_err	 err = { 0 };
	enum dp_phase	 p = DP_PHASE__MAX;

	ck_assert_msg(drv->status(NULL, s, &p, &err) == 0, "status: %s",
	    err.msg);
	return p;
}

/* The install log until its done marker (or timeout_ms), whole lines. */
static char *
wait_done(const struct dp_env_spec *s, int timeout_ms)
{
	struct dp_buf	 b = { 0 };
	struct dp_err	 err = { 0 };
	int64_t		 off = 0, next, t0 = dp_mono_ms();

	for (;;) {
		ck_assert_msg(drv->install_log(NULL, s, off, &b, &next,
		    &err) == 0, "install_log: %s", err.msg);
		ck_assert(next >= off);
		off = next;
		if (b.s != NULL && strstr(b.s, "##devpocket:done ") != NULL)
			break;
		if (dp_mono_ms() - t0 > timeout_ms)
			ck_abort_msg("no done marker in: %s",
			    b.s ? b.s : "(empty)");
		msleep(50);
	}
	return dp_buf_detach(&b);
}

static void
do_ok(int (*op)(const struct dp_cluster_conn *, const struct dp_env_spec *,
    struct dp_err *), const struct dp_env_spec *s, const char *what)
{
	struct dp_err	 err = { 0 };

	ck_assert_msg(op(NULL, s, &err) == 0, "%s: %s", what, err.msg);
}

static bool
file_exists(const char *dir, const char *id, const char *rel)
{
	char		 path[PATH_MAX];
	struct stat	 st;

	xsnprintf(path, sizeof(path), "%s/%s/%s", dir, id, rel);
	return lstat(path, &st) == 0;
}

/* The cgroup named in the limits line of a log, or "" */
static void
log_cgroup(const char *log, char *out, size_t n)
{
	const char	*p = strstr(log, "cgroup v2 /");
	size_t		 len;

	out[0] = '\0';
	if (p == NULL)
		return;
	p += strlen("cgroup v2 ");
	len = strcspn(p, " ");
	if (len < n)
		xsnprintf(out, n, "%.*s", (int)len, p);
}

/* --- lifecycle ------------------------------------------------------------ */

START_TEST(test_driver_local_lifecycle)
{
	static const char *const cmds[] = {
		"echo one; echo keep > \"$HOME/keep.txt\"; pwd",
		"echo two; exit 3",
		"printf no-newline",
	};
	struct dp_env_spec	 s;
	char			 id[25], cg[PATH_MAX], *log;

	spec_init(&s, id, cmds, 3);
	ck_assert_int_eq(phase(&s), DP_PHASE_ABSENT);
	do_ok(drv->provision, &s, "provision");
	ck_assert_int_eq(phase(&s), DP_PHASE_RUNNING);
	log = wait_done(&s, 20000);
	ck_assert_msg(strstr(log, "##devpocket:begin 3\n"
	    "##devpocket:step 1/3 echo one; echo keep > \"$HOME/keep.txt\"; "
	    "pwd\none\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "/home/workspace\n") != NULL, "cwd: %s", log);
	ck_assert_msg(strstr(log, "##devpocket:step 2/3 echo two; exit 3\n"
	    "two\n##devpocket:warn 3 echo two; exit 3\n"
	    "##devpocket:step 3/3 printf no-newline\n"
	    "no-newline\n##devpocket:done 1\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "devpocket: limits: ") != NULL, "%s", log);
	/* Markers come after the driver's own notes, never before. */
	ck_assert_ptr_eq(strstr(strstr(log, "##devpocket:done"), "\n") + 1,
	    log + strlen(log));
	log_cgroup(log, cg, sizeof(cg));
	free(log);
	ck_assert(file_exists(root, id, "home/keep.txt"));

	do_ok(drv->stop, &s, "stop");
	ck_assert_int_eq(phase(&s), DP_PHASE_STOPPED);
	ck_assert(file_exists(root, id, "home/keep.txt"));
	ck_assert(!file_exists(root, id, "run/tmux.sock"));
	if (cg[0] != '\0')
		ck_assert_msg(access(cg, F_OK) == -1, "%s left", cg);

	/* Start again: a new install in a truncated log, home kept. */
	do_ok(drv->start, &s, "start");
	ck_assert_int_eq(phase(&s), DP_PHASE_RUNNING);
	log = wait_done(&s, 20000);
	ck_assert_ptr_eq(strstr(strstr(log, "##devpocket:begin 3") + 1,
	    "##devpocket:begin"), NULL);
	free(log);
	ck_assert(file_exists(root, id, "home/keep.txt"));

	do_ok(drv->destroy, &s, "destroy");
	ck_assert_int_eq(phase(&s), DP_PHASE_ABSENT);
	ck_assert(!file_exists(root, id, ""));
	if (cg[0] != '\0')
		ck_assert_msg(access(cg, F_OK) == -1, "%s left", cg);
}
END_TEST

START_TEST(test_driver_local_idempotent)
{
	static const char *const cmds[] = { "echo hi" };
	struct dp_env_spec	 s;
	char			 id[25], *log;

	spec_init(&s, id, cmds, 1);
	/*
	 * A root the environment user cannot pass through (as
	 * devpocket-stack makes it) gets search permission, nothing more.
	 */
	ck_assert_int_eq(chmod(root, 0750), 0);
	/* Nothing there yet: stop and destroy succeed. */
	do_ok(drv->stop, &s, "stop absent");
	do_ok(drv->destroy, &s, "destroy absent");
	ck_assert_int_eq(phase(&s), DP_PHASE_ABSENT);
	do_ok(drv->provision, &s, "provision");
	log = wait_done(&s, 20000);
	free(log);
	if (geteuid() == 0) {
		struct stat	 st;

		ck_assert_int_eq(stat(root, &st), 0);
		ck_assert_int_eq(st.st_mode & 07777, 0751);
	}
	do_ok(drv->provision, &s, "provision again");
	ck_assert_int_eq(phase(&s), DP_PHASE_RUNNING);
	/* The retried provision did not start a second install. */
	log = wait_done(&s, 20000);
	ck_assert_ptr_eq(strstr(strstr(log, "##devpocket:begin 1") + 1,
	    "##devpocket:begin"), NULL);
	free(log);
	do_ok(drv->start, &s, "start while running");
	ck_assert_int_eq(phase(&s), DP_PHASE_RUNNING);
	do_ok(drv->stop, &s, "stop");
	do_ok(drv->stop, &s, "stop again");
	ck_assert_int_eq(phase(&s), DP_PHASE_STOPPED);
	do_ok(drv->destroy, &s, "destroy");
	do_ok(drv->destroy, &s, "destroy again");
	ck_assert_int_eq(phase(&s), DP_PHASE_ABSENT);
}
END_TEST

/* A server that dies without stop is FAILED; start brings it back. */
START_TEST(test_driver_local_failed)
{
	static const char *const cmds[] = { "true" };
	struct dp_env_spec	 s;
	char			 id[25], path[PATH_MAX], buf[64], *log;
	FILE			*f;
	long			 pid;
	int			 i;

	spec_init(&s, id, cmds, 1);
	do_ok(drv->provision, &s, "provision");
	free(wait_done(&s, 20000));
	xsnprintf(path, sizeof(path), "%s/%s/server.pid", root, id);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), f));
	fclose(f);
	pid = strtol(buf, NULL, 10);
	ck_assert_int_gt(pid, 1);
	ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
	for (i = 0; i < 100 && phase(&s) == DP_PHASE_RUNNING; i++)
		msleep(30);
	ck_assert_int_eq(phase(&s), DP_PHASE_FAILED);
	do_ok(drv->start, &s, "start after a crash");
	ck_assert_int_eq(phase(&s), DP_PHASE_RUNNING);
	log = wait_done(&s, 20000);
	free(log);
	do_ok(drv->destroy, &s, "destroy");
}
END_TEST

/* --- hostile input ---------------------------------------------------- */

START_TEST(test_driver_local_hostile_commands)
{
	static const char *const vars[] = { "GOOD=va'l$(echo x)\"`id`",
	    "BAD KEY=1", "=empty", "HOME=/etc", "1X=2", "noequals",
	    "PATH=/usr/bin:/bin:/opt/x" };
	const char		*cmds[6];
	struct dp_buf		 lng = { 0 };
	struct dp_env_spec	 s;
	char			 id[25], *log, *p;
	size_t			 i;

	cmds[0] = "echo \"a'b\" '$(id -u)' \"$(echo sub)\" `echo bq` \\$HOME";
	cmds[1] = "echo line1\necho line2\r\n";
	dp_buf_adds(&lng, ": ");
	for (i = 0; i < 200000; i++)
		dp_buf_addc(&lng, 'x');
	dp_buf_adds(&lng, "; echo long-ok");
	cmds[2] = lng.s;
	cmds[3] = "printf '%s|%s|%s\\n' \"$GOOD\" \"$HOME\" \"$PATH\"";
	cmds[4] = "echo '; exit 0; echo injected' \"'\" \"\\\"\"; exit 7";
	cmds[5] = "echo \xc3\xa9t\xc3\xa9 \xff\xfe";
	spec_init(&s, id, cmds, 6);
	s.env = vars;
	s.nenv = DP_NITEMS(vars);
	do_ok(drv->provision, &s, "provision");
	log = wait_done(&s, 30000);
	ck_assert_msg(strstr(log, "\na'b $(id -u) sub bq $HOME\n") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, "##devpocket:step 2/6 echo line1 echo "
	    "line2  \nline1\nline2\r\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "\nlong-ok\n") != NULL, "%s", log);
	/* The long command is shortened in its marker, on one line. */
	p = strstr(log, "##devpocket:step 3/6 : xxx");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_lt(strcspn(p, "\n"), 1100);
	ck_assert_msg(strstr(log, "\nva'l$(echo x)\"`id`|") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "/home|/usr/bin:/bin:/opt/x\n") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, "; exit 0; echo injected ' \"\n"
	    "##devpocket:warn 7 echo") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "\n\xc3\xa9t\xc3\xa9 \xff\xfe\n") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, "devpocket: variable 2 skipped") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, "devpocket: variable 4 skipped") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, "##devpocket:done 1\n") != NULL, "%s", log);
	free(log);
	dp_buf_release(&lng);
	do_ok(drv->destroy, &s, "destroy");
}
END_TEST

START_TEST(test_driver_local_bad_id)
{
	static const char *const ids[] = { "", "abc",
	    "0123456789ABCDEF01234567", "0123456789abcdef0123456",
	    "0123456789abcdef012345678", "../../../../../../etc/pas",
	    "0123456789abcdef0123456/", "0123456789abcdef\n1234567" };
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };
	struct dp_sample	 smp;
	struct dp_attach	 a;
	enum dp_phase		 p;
	int64_t			 next;
	char			 id[25];
	size_t			 i;

	spec_init(&s, id, NULL, 0);
	for (i = 0; i < DP_NITEMS(ids); i++) {
		s.id = ids[i];
		ck_assert_int_eq(drv->provision(NULL, &s, &err), -1);
		ck_assert_str_eq(err.msg, "invalid environment id");
		ck_assert_int_eq(drv->start(NULL, &s, &err), -1);
		ck_assert_int_eq(drv->stop(NULL, &s, &err), -1);
		ck_assert_int_eq(drv->destroy(NULL, &s, &err), -1);
		ck_assert_int_eq(drv->status(NULL, &s, &p, &err), -1);
		ck_assert_int_eq(drv->metrics(NULL, &s, &smp, &err), -1);
		ck_assert_int_eq(drv->install_log(NULL, &s, 0, &b, &next,
		    &err), -1);
		ck_assert_int_eq(drv->attach(NULL, &s, 80, 24, &a, &err), -1);
		ck_assert_int_eq(a.fd, -1);
	}
	s.id = NULL;
	ck_assert_int_eq(drv->provision(NULL, &s, &err), -1);
	ck_assert_int_eq(drv->provision(NULL, NULL, &err), -1);
	ck_assert_uint_eq(b.len, 0);
	/* Nothing was created under the root. */
	ck_assert_int_eq(rmdir(root), 0);
	ck_assert_int_eq(mkdir(root, 0755), 0);
}
END_TEST

/* Too many or too large commands are refused before anything runs. */
START_TEST(test_driver_local_caps)
{
	const char		**many;
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	char			 id[25], *huge;
	size_t			 i;

	many = dp_xcalloc(300, sizeof(*many));
	for (i = 0; i < 300; i++)
		many[i] = "true";
	spec_init(&s, id, many, 300);
	ck_assert_int_eq(drv->provision(NULL, &s, &err), -1);
	ck_assert_int_ne(phase(&s), DP_PHASE_RUNNING);
	huge = dp_xmalloc(2 * 1024 * 1024);
	memset(huge, 'x', 2 * 1024 * 1024 - 1);
	huge[2 * 1024 * 1024 - 1] = '\0';
	many[0] = huge;
	s.ncommands = 1;
	ck_assert_int_eq(drv->start(NULL, &s, &err), -1);
	ck_assert_int_ne(phase(&s), DP_PHASE_RUNNING);
	do_ok(drv->destroy, &s, "destroy");
	free(huge);
	free(many);
}
END_TEST

/* --- logs, metrics, attach ------------------------------------------ */

START_TEST(test_driver_local_install_log)
{
	static const char *const cmds[] = { "true" };
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };
	char			 id[25], path[PATH_MAX], *big;
	int64_t			 next;
	FILE			*f;

	spec_init(&s, id, cmds, 1);
	/* No folder: no bytes, offset unchanged. */
	ck_assert_int_eq(drv->install_log(NULL, &s, 5, &b, &next, &err), 0);
	ck_assert_int_eq(next, 5);
	do_ok(drv->provision, &s, "provision");
	free(wait_done(&s, 20000));
	do_ok(drv->stop, &s, "stop");
	xsnprintf(path, sizeof(path), "%s/%s/install.log", root, id);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("a\nbc\npartial", f);
	fclose(f);
	ck_assert_int_eq(drv->install_log(NULL, &s, 0, &b, &next, &err), 0);
	ck_assert_str_eq(b.s, "a\nbc\n");
	ck_assert_int_eq(next, 5);
	dp_buf_reset(&b);
	ck_assert_int_eq(drv->install_log(NULL, &s, 2, &b, &next, &err), 0);
	ck_assert_str_eq(b.s, "bc\n");
	ck_assert_int_eq(next, 5);
	dp_buf_reset(&b);
	ck_assert_int_eq(drv->install_log(NULL, &s, 5, &b, &next, &err), 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(next, 5);
	ck_assert_int_eq(drv->install_log(NULL, &s, 1000, &b, &next, &err), 0);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_int_eq(next, 1000);
	ck_assert_int_eq(drv->install_log(NULL, &s, -1, &b, &next, &err), -1);
	/* A line longer than a chunk comes in 1 MiB pieces. */
	big = dp_xmalloc(1536 * 1024);
	memset(big, 'y', 1536 * 1024);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_uint_eq(fwrite(big, 1, 1536 * 1024, f), 1536 * 1024);
	fputc('\n', f);
	fclose(f);
	ck_assert_int_eq(drv->install_log(NULL, &s, 0, &b, &next, &err), 0);
	ck_assert_uint_eq(b.len, 1024 * 1024);
	ck_assert_int_eq(next, 1024 * 1024);
	dp_buf_reset(&b);
	ck_assert_int_eq(drv->install_log(NULL, &s, next, &b, &next, &err), 0);
	ck_assert_uint_eq(b.len, 512 * 1024 + 1);
	/* A symlink in place of the log is not followed. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(symlink("/etc/passwd", path), 0);
	dp_buf_reset(&b);
	ck_assert_int_eq(drv->install_log(NULL, &s, 0, &b, &next, &err), -1);
	ck_assert_uint_eq(b.len, 0);
	free(big);
	dp_buf_release(&b);
	do_ok(drv->destroy, &s, "destroy");
}
END_TEST

START_TEST(test_driver_local_metrics)
{
	static const char *const cmds[] = {
		"head -c 200000 /dev/urandom > \"$HOME/blob\"",
		"timeout 4 sh -c 'while :; do :; done'",
	};
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	struct dp_sample	 a, b;
	char			 id[25];

	spec_init(&s, id, cmds, 2);
	s.cpu_millicores = 1000;
	do_ok(drv->provision, &s, "provision");
	msleep(300);
	ck_assert_msg(drv->metrics(NULL, &s, &a, &err) == 0, "%s", err.msg);
	msleep(1000);
	ck_assert_msg(drv->metrics(NULL, &s, &b, &err) == 0, "%s", err.msg);
	ck_assert_msg(b.cpu_usage > 30.0, "cpu %f", b.cpu_usage);
	ck_assert_msg(b.cpu_usage < 150.0, "cpu %f", b.cpu_usage);
	ck_assert_msg(b.memory_usage > 0.0 && b.memory_usage < 100.0,
	    "memory %f", b.memory_usage);
	ck_assert_int_ge(b.storage_usage, 200000);
	ck_assert_int_eq(b.network_rx, 0);
	ck_assert_int_eq(b.network_tx, 0);
	free(wait_done(&s, 20000));
	/* Idle now: a second later the CPU is near zero. */
	ck_assert(drv->metrics(NULL, &s, &a, &err) == 0);
	msleep(500);
	ck_assert(drv->metrics(NULL, &s, &b, &err) == 0);
	ck_assert_msg(b.cpu_usage < 20.0, "idle cpu %f", b.cpu_usage);
	do_ok(drv->stop, &s, "stop");
	ck_assert(drv->metrics(NULL, &s, &b, &err) == 0);
	ck_assert(b.cpu_usage == 0.0);
	ck_assert_int_ge(b.storage_usage, 200000);
	do_ok(drv->destroy, &s, "destroy");
	ck_assert(drv->metrics(NULL, &s, &b, &err) == 0);
	ck_assert_int_eq(b.storage_usage, 0);
}
END_TEST

/* Read from fd until needle appears or timeout_ms; true when found. */
static bool
read_until(int fd, struct dp_buf *b, const char *needle, int timeout_ms)
{
	struct pollfd	 pfd = { .fd = fd, .events = POLLIN };
	char		 buf[4096];
	int64_t		 t0 = dp_mono_ms();
	ssize_t		 r;

	while (dp_mono_ms() - t0 < timeout_ms) {
		if (b->s != NULL && strstr(b->s, needle) != NULL)
			return true;
		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if ((r = read(fd, buf, sizeof(buf))) <= 0)
			return false;
		dp_buf_add(b, buf, (size_t)r);
	}
	return b->s != NULL && strstr(b->s, needle) != NULL;
}

static void
detach(struct dp_attach *a)
{
	int	 st;

	/* Output the attach read already (it told whether the client
	 * joined): the terminal's set-up, an escape sequence. */
	if (a->pre != NULL) {
		ck_assert(a->existed);
		ck_assert_uint_gt(a->npre, 0);
		ck_assert_int_eq(a->pre[0], '\033');
		free(a->pre);
		a->pre = NULL;
	}
	close(a->fd);
	kill(a->pid, SIGHUP);
	ck_assert_int_eq(waitpid(a->pid, &st, 0), a->pid);
}

/*
 * SIGKILL every live process whose command line mentions needle, until
 * none is left (the environment's server killed outright: its socket
 * stays behind).
 */
static void
kill_matching(const char *needle)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[64], buf[8192];
	int		 fd, left = 1, round;
	ssize_t		 r, i;

	for (round = 0; left > 0 && round < 100; round++) {
		left = 0;
		ck_assert_ptr_nonnull(d = opendir("/proc"));
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			xsnprintf(path, sizeof(path), "/proc/%s/cmdline",
			    de->d_name);
			if ((fd = open(path, O_RDONLY)) == -1)
				continue;
			r = read(fd, buf, sizeof(buf) - 1);
			close(fd);
			if (r <= 0)
				continue;
			for (i = 0; i < r; i++)
				if (buf[i] == '\0')
					buf[i] = ' ';
			buf[r] = '\0';
			if (strstr(buf, needle) == NULL)
				continue;
			if (kill((pid_t)strtol(de->d_name, NULL, 10),
			    SIGKILL) == 0)
				left++;
		}
		closedir(d);
		if (left > 0)
			msleep(30);
	}
	ck_assert_msg(left == 0, "processes of %s survive SIGKILL", needle);
}

/* The cgroup v2 path of a process ("" when unknown). */
static void
proc_cgroup(pid_t pid, char *out, size_t n)
{
	char	 path[64], buf[4096], *p;
	int	 fd;
	ssize_t	 r;

	out[0] = '\0';
	xsnprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	if ((fd = open(path, O_RDONLY)) == -1)
		return;
	r = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (r <= 0)
		return;
	buf[r] = '\0';
	if ((p = strstr(buf, "0::")) != NULL) {
		p += 3;
		xsnprintf(out, n, "%.*s", (int)strcspn(p, "\n"), p);
	}
}

/* True when the environment has a cgroup v2 group (hybrid or unified). */
static bool
env_has_cgroup(const char *id)
{
	char	 cg[PATH_MAX];

	xsnprintf(cg, sizeof(cg), "/sys/fs/cgroup/devpocket/%s", id);
	if (access(cg, F_OK) == 0)
		return true;
	xsnprintf(cg, sizeof(cg), "/sys/fs/cgroup/unified/devpocket/%s", id);
	return access(cg, F_OK) == 0;
}

START_TEST(test_driver_local_attach)
{
	static const char *const cmds[] = { "echo ready" };
	static const char input[] = "stty size; echo marker-$((6*7))x\r";
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	struct dp_attach	 a;
	struct dp_buf		 b = { 0 };
	char			 id[25];

	spec_init(&s, id, cmds, 1);
	/* Nothing to attach to before provisioning. */
	ck_assert_int_eq(drv->attach(NULL, &s, 100, 30, &a, &err), -1);
	ck_assert_int_eq(a.fd, -1);
	do_ok(drv->provision, &s, "provision");
	free(wait_done(&s, 20000));
	ck_assert_msg(drv->attach(NULL, &s, 100, 30, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(a.existed);
	ck_assert_int_ge(a.fd, 0);
	ck_assert_int_gt(a.pid, 0);
	msleep(300);
	ck_assert_int_eq(write(a.fd, input, sizeof(input) - 1),
	    (ssize_t)sizeof(input) - 1);
	ck_assert_msg(read_until(a.fd, &b, "marker-42x", 5000), "%s",
	    b.s ? b.s : "");
	/* The pane is the client's size less tmux's status line. */
	ck_assert_msg(strstr(b.s, "29 100") != NULL, "size: %s", b.s);
	detach(&a);
	dp_buf_release(&b);

	/* The session outlives its clients; after exit a new one is made. */
	ck_assert_msg(drv->attach(NULL, &s, 80, 24, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(a.existed);
	msleep(300);
	ck_assert_int_eq(write(a.fd, "exit\r", 5), 5);
	read_until(a.fd, &b, "\xff", 2000);
	detach(&a);
	dp_buf_release(&b);
	ck_assert_int_eq(phase(&s), DP_PHASE_RUNNING);
	ck_assert_msg(drv->attach(NULL, &s, 80, 24, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(!a.existed);
	msleep(300);
	ck_assert_int_eq(write(a.fd, "echo again-$((1+1))\r", 20), 20);
	ck_assert_msg(read_until(a.fd, &b, "again-2", 5000), "%s",
	    b.s ? b.s : "");
	detach(&a);
	dp_buf_release(&b);

	do_ok(drv->stop, &s, "stop");
	ck_assert_int_eq(drv->attach(NULL, &s, 80, 24, &a, &err), -1);
	do_ok(drv->destroy, &s, "destroy");
}
END_TEST

/*
 * Attaching to the session the start made reports existed, twice at
 * once, each client born in the environment's cgroup (accounted and
 * killed with it); a session killed in a live server (exit-empty off) is
 * made again with existed false.
 */
START_TEST(test_driver_local_attach_existing)
{
	static const char *const cmds[] = { "echo ready" };
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	struct dp_attach	 a, b;
	struct dp_buf		 out = { 0 };
	char			 id[25], cg[PATH_MAX], want[64], cmd[PATH_MAX + 128];
	int64_t			 t0;

	spec_init(&s, id, cmds, 1);
	do_ok(drv->provision, &s, "provision");
	free(wait_done(&s, 20000));
	ck_assert_msg(drv->attach(NULL, &s, 100, 30, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(a.existed);
	ck_assert_msg(drv->attach(NULL, &s, 90, 20, &b, &err) == 0, "%s",
	    err.msg);
	ck_assert(b.existed);
	ck_assert_int_ne(a.pid, b.pid);
	ck_assert_int_ne(a.fd, b.fd);
	if (env_has_cgroup(id)) {
		/* Born there (clone3); without clone3 (valgrind) the child
		 * joins through cgroup.procs before its exec. */
		xsnprintf(want, sizeof(want), "/devpocket/%s", id);
		proc_cgroup(a.pid, cg, sizeof(cg));
		for (t0 = dp_mono_ms(); strcmp(cg, want) != 0 &&
		    dp_mono_ms() - t0 < 5000; msleep(20))
			proc_cgroup(a.pid, cg, sizeof(cg));
		ck_assert_msg(strcmp(cg, want) == 0, "client in %s", cg);
		proc_cgroup(b.pid, cg, sizeof(cg));
		for (t0 = dp_mono_ms(); strcmp(cg, want) != 0 &&
		    dp_mono_ms() - t0 < 5000; msleep(20))
			proc_cgroup(b.pid, cg, sizeof(cg));
		ck_assert_msg(strcmp(cg, want) == 0, "client in %s", cg);
	}
	ck_assert_msg(read_until(a.fd, &out, "$ ", 5000), "no prompt: %s",
	    out.s ? out.s : "");
	detach(&b);
	detach(&a);
	dp_buf_release(&out);

	/* The server stays without sessions; attach makes one. */
	xsnprintf(cmd, sizeof(cmd), "tmux -S '%s/%s/run/tmux.sock' "
	    "kill-session -t '" DP_LOCAL_SESSION_PREFIX "%s'", root, id, id);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_msg(drv->attach(NULL, &s, 80, 24, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(!a.existed);
	ck_assert_int_eq(write(a.fd, "echo back-$((2+3))\r", 19), 19);
	ck_assert_msg(read_until(a.fd, &out, "back-5", 5000), "%s",
	    out.s ? out.s : "");
	detach(&a);
	dp_buf_release(&out);

	/* attach_probe asks the same question ahead: the session is there
	 * again now; killed, the probe's answer says it was not. */
	ck_assert_ptr_nonnull(drv->attach_probe);
	ck_assert_msg(drv->attach_probe(NULL, &s, &err) == 0, "%s", err.msg);
	ck_assert_msg(drv->attach(NULL, &s, 80, 24, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(a.existed);
	detach(&a);
	ck_assert_int_eq(system(cmd), 0);
	ck_assert_msg(drv->attach_probe(NULL, &s, &err) == 0, "%s", err.msg);
	msleep(200);	/* its answer is in before the attach makes one */
	ck_assert_msg(drv->attach(NULL, &s, 80, 24, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(!a.existed);
	/* The new session is made once its client got to the server. */
	ck_assert_msg(read_until(a.fd, &out, "$ ", 5000), "no prompt: %s",
	    out.s ? out.s : "");
	detach(&a);
	dp_buf_release(&out);
	/* A probe that no attach takes is dropped (the attach asks for
	 * itself). */
	ck_assert_msg(drv->attach_probe(NULL, &s, &err) == 0, "%s", err.msg);
	dp_attach_probe_drop();
	ck_assert_msg(drv->attach(NULL, &s, 80, 24, &a, &err) == 0, "%s",
	    err.msg);
	ck_assert(a.existed);
	detach(&a);
	do_ok(drv->destroy, &s, "destroy");
}
END_TEST

/*
 * A server killed outright leaves its socket: attach says ESRCH at once
 * (no 10 s client timeout) and does not start a server of its own; with
 * no socket at all it forks nothing.
 */
START_TEST(test_driver_local_attach_server_down)
{
	static const char *const cmds[] = { "echo ready" };
	struct dp_env_spec	 s;
	struct dp_err		 err = { 0 };
	struct dp_attach	 a;
	struct stat		 st;
	char			 id[25], dir[PATH_MAX], sock[PATH_MAX];
	int64_t			 t0, ms;
	int			 i;

	spec_init(&s, id, cmds, 1);
	do_ok(drv->provision, &s, "provision");
	free(wait_done(&s, 20000));
	xsnprintf(dir, sizeof(dir), "%s/%s", root, id);
	xsnprintf(sock, sizeof(sock), "%s/run/tmux.sock", dir);
	kill_matching(dir);
	ck_assert_msg(lstat(sock, &st) == 0 && S_ISSOCK(st.st_mode),
	    "the killed server's socket is gone");
	for (i = 0; i < 3; i++) {
		memset(&err, 0, sizeof(err));
		t0 = dp_mono_ms();
		ck_assert_int_eq(drv->attach(NULL, &s, 80, 24, &a, &err), -1);
		ms = dp_mono_ms() - t0;
		ck_assert_int_eq(err.code, ESRCH);
		ck_assert_int_eq(a.fd, -1);
		ck_assert_int_eq(a.pid, -1);
		ck_assert(!a.existed);
		ck_assert_msg(ms < 1000, "attach took %lld ms", (long long)ms);
	}
	/* Nothing of the environment runs: no server was started. */
	msleep(200);
	ck_assert_int_eq(count_procs(), 0);
	ck_assert_int_eq(phase(&s) == DP_PHASE_RUNNING, 0);

	ck_assert_int_eq(unlink(sock), 0);
	t0 = dp_mono_ms();
	ck_assert_int_eq(drv->attach(NULL, &s, 80, 24, &a, &err), -1);
	ms = dp_mono_ms() - t0;
	ck_assert_int_eq(err.code, ESRCH);
	ck_assert_msg(ms < 100, "attach without a socket took %lld ms",
	    (long long)ms);
	ck_assert_int_eq(count_procs(), 0);
	do_ok(drv->destroy, &s, "destroy");
}
END_TEST

/* --- sandbox ------------------------------------------------------------- */

START_TEST(test_driver_local_sandbox)
{
	static const char *const cmds[] = { "hostname", "ls \"$ROOT\"",
	    "echo x > /etc/devpocket-escape || echo ro-ok",
	    "ls /tmp | grep -c devpocket-host-marker" };
	static char		 rootvar[PATH_MAX + 8];
	const char		*vars[1] = { rootvar };
	struct dp_env_spec	 s;
	char			 id[25], host[64], sibling[PATH_MAX], *log;

	if (!dp_local_bwrap_works()) {
		fprintf(stderr, "bwrap does not work here: sandbox test "
		    "skipped\n");
		return;
	}
	xsnprintf(rootvar, sizeof(rootvar), "ROOT=%s", root);
	xsnprintf(sibling, sizeof(sibling), "%s/other-environment", root);
	ck_assert_int_eq(mkdir(sibling, 0755), 0);
	/* The host's /tmp is not the sandbox's. */
	(void)mkdir("/tmp/devpocket-host-marker", 0755);
	spec_init(&s, id, cmds, 4);
	s.env = vars;
	s.nenv = 1;
	do_ok(drv->provision, &s, "provision");
	log = wait_done(&s, 20000);
	xsnprintf(host, sizeof(host), "\ndevpocket-%.12s\n", id);
	ck_assert_msg(strstr(log, "devpocket: sandbox: bubblewrap") != NULL,
	    "%s", log);
	ck_assert_msg(strstr(log, host) != NULL, "%s", log);
	/* Only this environment is visible under the root. */
	ck_assert_msg(strstr(log, "other-environment") == NULL, "%s", log);
	ck_assert_msg(strstr(log, id) != NULL, "%s", log);
	ck_assert_msg(strstr(log, "\nro-ok\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "devpocket-host-marker\n0\n") != NULL,
	    "%s", log);
	ck_assert(access("/etc/devpocket-escape", F_OK) == -1);
	(void)rmdir("/tmp/devpocket-host-marker");
	free(log);
	do_ok(drv->destroy, &s, "destroy");

	/* Sandbox off: a loud warning, and it runs on the host. */
	set_key("local_sandbox", "false");
	spec_init(&s, id, cmds, 1);
	do_ok(drv->provision, &s, "provision unsandboxed");
	log = wait_done(&s, 20000);
	ck_assert_msg(strstr(log, "devpocket: WARNING: sandbox disabled") !=
	    NULL, "%s", log);
	xsnprintf(host, sizeof(host), "\ndevpocket-%.12s\n", id);
	ck_assert_msg(strstr(log, host) == NULL, "%s", log);
	free(log);
	do_ok(drv->destroy, &s, "destroy unsandboxed");
}
END_TEST

/* Without the sandbox, stop still finds every process of the env. */
START_TEST(test_driver_local_unsandboxed_lifecycle)
{
	static const char *const cmds[] = { "sleep 1000 & echo bg",
	    "echo ok" };
	struct dp_env_spec	 s;
	char			 id[25], *log;

	set_key("local_sandbox", "false");
	spec_init(&s, id, cmds, 2);
	do_ok(drv->provision, &s, "provision");
	log = wait_done(&s, 20000);
	ck_assert_msg(strstr(log, "\nbg\n") != NULL, "%s", log);
	free(log);
	ck_assert_int_eq(phase(&s), DP_PHASE_RUNNING);
	do_ok(drv->stop, &s, "stop");
	ck_assert_int_eq(phase(&s), DP_PHASE_STOPPED);
	do_ok(drv->destroy, &s, "destroy");
}
END_TEST

START_TEST(test_driver_local_probe)
{
	struct dp_probe	 p;
	struct dp_err	 err = { 0 };
	char		 path[PATH_MAX];

	ck_assert_msg(drv->probe(NULL, &p, &err) == 0, "%s", err.msg);
	ck_assert_int_eq(p.node_count, 1);
	ck_assert(p.cpu_cores >= 1);
	ck_assert(p.memory_gib > 0);
	ck_assert(p.storage_gib >= 0);
	ck_assert_int_ge(p.response_time_ms, 0);
	/* A root that cannot be made fails the probe. */
	set_key("local_root", "/proc/devpocket-cannot-exist");
	ck_assert_int_eq(drv->probe(NULL, &p, &err), -1);
	xsnprintf(path, sizeof(path), "%s/file", root);
	ck_assert_int_eq(close(open(path, O_CREAT | O_WRONLY, 0644)), 0);
	set_key("local_root", path);
	ck_assert_int_eq(drv->probe(NULL, &p, &err), -1);
	set_key("local_root", root);
}
END_TEST

static Suite *
driver_local_suite(void)
{
	Suite	*s = suite_create("driver_local");
	struct {
		const char	*name;
		const TTest	*test;
	} t[] = {
		{ "lifecycle", test_driver_local_lifecycle },
		{ "idempotent", test_driver_local_idempotent },
		{ "failed", test_driver_local_failed },
		{ "hostile_commands", test_driver_local_hostile_commands },
		{ "bad_id", test_driver_local_bad_id },
		{ "caps", test_driver_local_caps },
		{ "install_log", test_driver_local_install_log },
		{ "metrics", test_driver_local_metrics },
		{ "attach", test_driver_local_attach },
		{ "attach_existing", test_driver_local_attach_existing },
		{ "attach_server_down",
		    test_driver_local_attach_server_down },
		{ "sandbox", test_driver_local_sandbox },
		{ "unsandboxed_lifecycle",
		    test_driver_local_unsandboxed_lifecycle },
		{ "probe", test_driver_local_probe },
	};
	TCase	*tc;
	size_t	 i;

	for (i = 0; i < DP_NITEMS(t); i++) {
		tc = tcase_create(t[i].name);
		tcase_add_unchecked_fixture(tc, setup_root, teardown_root);
		tcase_add_checked_fixture(tc, setup, teardown);
		tcase_set_timeout(tc, 120);
		tcase_add_test(tc, t[i].test);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	if (access("/usr/bin/tmux", X_OK) == -1 &&
	    access("/bin/tmux", X_OK) == -1) {
		printf("check_driver_local: tmux is not installed; skipped\n"
		    "100%%: Checks: 0, Failures: 0, Errors: 0\n");
		return 0;
	}
	dp_config_defaults(&dp_cfg);
	sr = srunner_create(driver_local_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	dp_config_release(&dp_cfg);
	return failed == 0 ? 0 : 1;
}
