/* lib/driver_local.c: the local driver: tmux on this host, in bubblewrap */
/*
 * Each environment is a folder (layout in driver_local.h) and a private
 * tmux server started as the environment user, inside bubblewrap when it
 * works, in a cgroup v2 group when one can be made, under rlimits always.
 * Every child process is started with fork and execve of an argv array;
 * the only shell text run is the startup commands themselves (each in its
 * own file, run by /bin/sh) and install.sh, which the driver writes from
 * fixed text and numbers.
 *
 * Limits, in order of preference:
 *	cgroup v2 <mount>/devpocket/<id>: cpu.max, memory.max, pids.max when
 *	those controllers can be enabled there; otherwise the group is still
 *	used to find, account and kill the environment's processes.
 *	rlimits: RLIMIT_AS = 2 x memory + 1 GiB (virtual space, not RSS),
 *	RLIMIT_FSIZE = storage, RLIMIT_CORE = 0, and RLIMIT_NPROC = 4096 when
 *	there is no pids controller and the environment user is not the
 *	worker's own (RLIMIT_NPROC counts every process of the uid, so it is
 *	shared by all environments of that user).
 * There is no disk quota (storage is measured, not enforced beyond the
 * file size limit) and no network namespace: network counters are 0.
 * Without bubblewrap all environments of one user can see each other.
 */
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <linux/capability.h>
#include <linux/sched.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <sched.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>
#include <utmp.h>

#include <json-c/json.h>

#include "config.h"
#include "driver.h"
#include "driver_local.h"
#include "log.h"
#include "util.h"

#define LPATH		1024
#define SUN_PATH_MAX	108		/* sizeof(sockaddr_un.sun_path) */
#define CMD_TIMEOUT_MS	10000		/* one tmux client call */
#define PROBE_GRACE_MS	500		/* a dropped has-session probe may end */
#define LAUNCH_TIMEOUT_MS 20000		/* starting the server */
#define KILL_WAIT_MS	3000
#define OUT_MAX		65536		/* captured stdout of a child */
#define LOG_CHUNK_MAX	(1024 * 1024)	/* one install_log call */
#define LINE_MAX_SHOWN	1000		/* a command in a marker line */
#define NCOMMANDS_MAX	256
#define COMMAND_MAX	(1024 * 1024)
#define NENV_MAX	256
#define ENVKEY_MAX	128
#define ENVVAL_MAX	32768
#define NGROUPS_CAP	64
#define PIDS_MAX	512
#define NPROC_MAX	4096
#define JOIN_FD_MIN	16		/* join_open's descriptors, above 0-4 */
#define WALK_MS		2000		/* storage walk cap */
#define WALK_ENTRIES	2000000
#define ENV_PATH	"/usr/local/bin:/usr/bin:/bin"

/* Everything about one environment that the operations need. */
struct lenv {
	char	 id[25];
	char	 root[LPATH];		/* local_root, no trailing slash */
	char	 dir[LPATH];
	char	 home[LPATH], ws[LPATH], run[LPATH], sock[LPATH];
	char	 log[LPATH], conf[LPATH], steps[LPATH], script[LPATH];
	char	 state[LPATH], pidfile[LPATH], mstate[LPATH], limfile[LPATH];
	char	 launchlog[LPATH], launchinfo[LPATH], lock[LPATH];
	char	 session[48];
	char	 cg[LPATH];		/* cgroup folder, "" = none */
	char	 cgprocs[LPATH];
	char	 user[64];
	const char *shell;
	/* A tmux client's environment (HOME and SHELL spare it the
	 * user's lookup through NSS); with TERM for a terminal's. */
	char	 chome[LPATH + 8], cshell[32];
	char	*cenv[5], *tenv[6];
	uid_t	 uid;
	gid_t	 gid;
	bool	 drop;			/* setuid to uid in children */
	gid_t	 groups[NGROUPS_CAP];
	int	 ngroups;
	/* rlimits, filled by set_limits; 0 = not set */
	rlim_t	 as, fsize, nproc;
};

/* How to start one child. */
struct spawn {
	char *const	*argv;		/* argv[0] is an absolute path */
	char *const	*envp;
	const char	*cwd;
	bool		 cgroup;	/* join the environment's cgroup */
	bool		 limits;	/* apply the rlimits */
	bool		 root;		/* keep the worker's identity */
	bool		 keep_stdio;	/* pty child: 0-2 are the pty */
	bool		 pdeath;	/* killed when its parent dies */
	bool		 pgrp;		/* leads a process group of its own */
	int		 out, err;	/* fds for 1 and 2; -1 = /dev/null */
	int		 info;		/* fd that becomes 3, or -1 */
	pid_t		 parent;	/* (pdeath) who forks it */
	/* Join the running sandbox (join_open) instead of making one. */
	bool		 join;
	bool		 newsid;	/* (join) a session of its own */
	int		 jpid, jroot;	/* (join) its pidfd and root folder */
	char *const	*alt_argv;	/* (join) argv in a sandbox of its own */
	/* A tmux client: the running environment's limits (0: none), not
	 * its RLIMIT_NPROC. */
	bool		 client;
	bool		 cgwant;	/* (client) launched in a cgroup */
	rlim_t		 as, fsize, nproc;
};

/* Process-wide facts found once. */
static struct {
	bool	 done;
	char	 tmux[64], bwrap[64], rm[64];
	char	 cgmount[LPATH];	/* cgroup2 mount, "" = none */
	int	 bwrap_ok;		/* -1 unknown, 0 no, 1 yes */
	uid_t	 bwrap_uid;
} host;

/* --- small helpers -------------------------------------------------------- */

static const char *
find_prog(const char *name, char *out, size_t n)
{
	static const char *const dirs[] = { "/usr/bin", "/bin",
	    "/usr/local/bin", "/usr/sbin", "/sbin" };
	size_t	 i;

	for (i = 0; i < DP_NITEMS(dirs); i++) {
		if (dp_sfmt(out, n, "%s/%s", dirs[i], name) == 0 &&
		    access(out, X_OK) == 0)
			return out;
	}
	out[0] = '\0';
	return NULL;
}

/* The cgroup2 mount point from /proc/self/mountinfo. */
static void
find_cgroup2(char *out, size_t n)
{
	FILE	*f;
	char	*line = NULL, *sep, *mp;
	size_t	 cap = 0;
	int	 i;

	out[0] = '\0';
	if ((f = fopen("/proc/self/mountinfo", "re")) == NULL)
		return;
	while (getline(&line, &cap, f) != -1) {
		/* id parent maj:min root mount opts... - fstype src opts */
		if ((sep = strstr(line, " - ")) == NULL ||
		    strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		mp = line;
		for (i = 0; i < 4 && mp != NULL; i++)
			if ((mp = strchr(mp, ' ')) != NULL)
				mp++;
		if (mp == NULL)
			continue;
		*strchrnul(mp, ' ') = '\0';
		/* Mount points with spaces are octal-escaped; skip them. */
		if (strchr(mp, '\\') == NULL && access(mp, W_OK) == 0 &&
		    dp_sfmt(out, n, "%s", mp) == 0)
			break;
		out[0] = '\0';
	}
	free(line);
	fclose(f);
}

static void
host_init(void)
{
	if (host.done)
		return;
	find_prog("tmux", host.tmux, sizeof(host.tmux));
	if (access("/usr/bin/bwrap", X_OK) == 0)
		dp_sfmt(host.bwrap, sizeof(host.bwrap), "/usr/bin/bwrap");
	find_prog("rm", host.rm, sizeof(host.rm));
	find_cgroup2(host.cgmount, sizeof(host.cgmount));
	host.bwrap_ok = -1;
	host.done = true;
}

/* Whole small file into buf (NUL-terminated, capped); bytes or -1. */
static ssize_t
read_small(const char *path, char *buf, size_t n)
{
	ssize_t	 r, got = 0;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return -1;
	while ((size_t)got < n - 1) {
		r = read(fd, buf + got, n - 1 - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += r;
	}
	close(fd);
	buf[got] = '\0';
	return got;
}

/*
 * Write a file whole.  The folders the driver writes in are not writable
 * by the environment user, so O_NOFOLLOW and O_TRUNC suffice.
 */
static int
write_file(const char *path, const void *data, size_t len, mode_t mode,
    struct dp_err *err)
{
	const char	*p = data;
	ssize_t		 w;
	int		 fd, rc = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    mode);
	if (fd == -1) {
		dp_err_set(err, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	while (len > 0) {
		w = write(fd, p, len);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0) {
			dp_err_set(err, errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		p += w;
		len -= (size_t)w;
	}
	if (fchmod(fd, mode) == -1) {
		dp_err_set(err, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	return rc;
}

/* Write a short text to an existing kernel file (cgroup knobs). */
static int
write_knob(const char *path, const char *text)
{
	int	 fd, rc = -1;
	size_t	 len = strlen(text);

	if ((fd = open(path, O_WRONLY | O_CLOEXEC)) == -1)
		return -1;
	if (write(fd, text, len) == (ssize_t)len)
		rc = 0;
	close(fd);
	return rc;
}

static bool
exists(const char *path)
{
	struct stat	 st;

	return lstat(path, &st) == 0;
}

/* mkdir that accepts an existing directory (not a symlink). */
static int
mkdir_ok(const char *path, mode_t mode, struct dp_err *err)
{
	struct stat	 st;

	if (mkdir(path, mode) == 0)
		return 0;
	if (errno == EEXIST && lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
		return 0;
	dp_err_set(err, errno, "mkdir %s: %s", path, strerror(errno));
	return -1;
}

static int
mkdir_p(const char *path, mode_t mode, struct dp_err *err)
{
	char	 buf[LPATH], *p;

	if (dp_sfmt(buf, sizeof(buf), "%s", path) == -1) {
		dp_err_set(err, ENAMETOOLONG, "path too long");
		return -1;
	}
	for (p = buf + 1; *p != '\0'; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) == -1 && errno != EEXIST) {
			dp_err_set(err, errno, "mkdir %s: %s", buf,
			    strerror(errno));
			return -1;
		}
		*p = '/';
	}
	return mkdir_ok(buf, mode, err);
}

static void
strv_free(char **v)
{
	size_t	 i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* A growable NULL-terminated string vector. */
struct strv {
	char	**v;
	size_t	  n, cap;
};

static void
strv_add(struct strv *sv, const char *s)
{
	if (sv->n + 2 > sv->cap) {
		sv->cap = sv->cap ? sv->cap * 2 : 32;
		sv->v = dp_xrealloc(sv->v, sv->cap * sizeof(*sv->v));
	}
	sv->v[sv->n++] = dp_xstrdup(s);
	sv->v[sv->n] = NULL;
}

static void
strv_addf(struct strv *sv, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
strv_addf(struct strv *sv, const char *fmt, ...)
{
	struct dp_buf	 b = { 0 };
	va_list		 ap;

	va_start(ap, fmt);
	dp_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	strv_add(sv, b.s);
	dp_buf_release(&b);
}

/*
 * Point f[k - 3] at field k (3..24) of a /proc/<pid>/stat line, which is
 * modified; 0, or -1 when the line is short.  The command name (field 2)
 * may hold spaces and parentheses, so fields count from the last ')'.
 */
static int
stat_fields(char *buf, char *f[22])
{
	char	*p;
	int	 k;

	if ((p = strrchr(buf, ')')) == NULL)
		return -1;
	for (k = 3; k <= 24; k++) {
		while (*++p == ' ')
			;
		if (*p == '\0')
			return -1;
		f[k - 3] = p;
		if ((p = strchr(p, ' ')) == NULL)
			return k == 24 ? 0 : -1;
	}
	return 0;
}

/* Start time (clock ticks since boot) of a pid, or 0. */
static unsigned long long
pid_starttime(pid_t pid)
{
	char	 path[64], buf[1024], *f[22];

	if (dp_sfmt(path, sizeof(path), "/proc/%d/stat", (int)pid) == -1 ||
	    read_small(path, buf, sizeof(buf)) <= 0 ||
	    stat_fields(buf, f) == -1)
		return 0;
	return strtoull(f[22 - 3], NULL, 10);
}

/* --- the environment record ------------------------------------------- */

int
dp_local_env_dir(const char *id, char *out, size_t n)
{
	const char	*root = dp_cfg.drivers_local_root;
	size_t		 len;

	if (!dp_is_id(id) || root == NULL || root[0] != '/')
		return -1;
	len = strlen(root);
	while (len > 1 && root[len - 1] == '/')
		len--;
	return dp_sfmt(out, n, "%.*s/%s", (int)len, root, id);
}

/*
 * The user and their groups from /etc/passwd and /etc/group read
 * directly (fgetpwent, fgetgrent): no NSS module to load, which took a
 * few hundred microseconds of every terminal's start (systemd's, for
 * getgrouplist).  False when the files do not know the user; NSS
 * (getpwnam, getgrouplist) then answers, for users from LDAP and such.
 */
static bool
files_user(struct lenv *e, const char *name)
{
	struct passwd	*pw;
	struct group	*gr;
	FILE		*f;
	bool		 found = false;
	int		 i, ng;

	if ((f = fopen("/etc/passwd", "re")) == NULL)
		return false;
	while ((pw = fgetpwent(f)) != NULL)
		if (strcmp(pw->pw_name, name) == 0) {
			e->uid = pw->pw_uid;
			e->gid = pw->pw_gid;
			found = dp_sfmt(e->user, sizeof(e->user), "%s",
			    pw->pw_name) == 0;
			break;
		}
	fclose(f);
	if (!found || (f = fopen("/etc/group", "re")) == NULL)
		return false;
	e->groups[0] = e->gid;
	ng = 1;
	while ((gr = fgetgrent(f)) != NULL && ng < NGROUPS_CAP) {
		if (gr->gr_gid == e->gid)
			continue;
		for (i = 0; gr->gr_mem != NULL && gr->gr_mem[i] != NULL; i++)
			if (strcmp(gr->gr_mem[i], name) == 0) {
				e->groups[ng++] = gr->gr_gid;
				break;
			}
	}
	fclose(f);
	e->ngroups = ng;
	return true;
}

static int
resolve_user(struct lenv *e, struct dp_err *err)
{
	struct passwd	*pw;
	const char	*name = dp_cfg.drivers_local_user;
	int		 ng;

	if (geteuid() != 0) {
		e->uid = getuid();
		e->gid = getgid();
		e->drop = false;
		pw = getpwuid(e->uid);
		dp_sfmt(e->user, sizeof(e->user), "%s",
		    pw != NULL ? pw->pw_name : "user");
		return 0;
	}
	if (name == NULL || name[0] == '\0')
		name = "nobody";
	if (!files_user(e, name)) {
		if ((pw = getpwnam(name)) == NULL) {
			dp_err_set(err, ENOENT,
			    "[drivers] local_user %s: no such user", name);
			return -1;
		}
		e->uid = pw->pw_uid;
		e->gid = pw->pw_gid;
		if (dp_sfmt(e->user, sizeof(e->user), "%s",
		    pw->pw_name) == -1) {
			dp_err_set(err, ENAMETOOLONG, "user name too long");
			return -1;
		}
		ng = NGROUPS_CAP;
		if (getgrouplist(e->user, e->gid, e->groups, &ng) == -1) {
			/* More groups than we care for: the primary one. */
			e->groups[0] = e->gid;
			ng = 1;
		}
		e->ngroups = ng;
	}
	if (e->uid == 0) {
		dp_err_set(err, EPERM, "[drivers] local_user must not be root");
		return -1;
	}
	e->drop = true;
	return 0;
}

static int
lenv_init(struct lenv *e, const struct dp_env_spec *spec, struct dp_err *err)
{
	const char	*d;
	int		 r = 0;

	memset(e, 0, sizeof(*e));
	host_init();
	if (spec == NULL || !dp_is_id(spec->id)) {
		dp_err_set(err, EINVAL, "invalid environment id");
		return -1;
	}
	memcpy(e->id, spec->id, sizeof(e->id));
	if (dp_local_env_dir(e->id, e->dir, sizeof(e->dir)) == -1) {
		dp_err_set(err, EINVAL, "[drivers] local_root must be an "
		    "absolute path");
		return -1;
	}
	dp_sfmt(e->root, sizeof(e->root), "%.*s",
	    (int)(strrchr(e->dir, '/') - e->dir), e->dir);
	if (e->root[0] == '\0')
		dp_sfmt(e->root, sizeof(e->root), "/");
	d = e->dir;
	r |= dp_sfmt(e->home, LPATH, "%s/home", d);
	r |= dp_sfmt(e->ws, LPATH, "%s/home/workspace", d);
	r |= dp_sfmt(e->run, LPATH, "%s/run", d);
	r |= dp_sfmt(e->sock, SUN_PATH_MAX, "%s/run/tmux.sock", d);
	r |= dp_sfmt(e->log, LPATH, "%s/install.log", d);
	r |= dp_sfmt(e->conf, LPATH, "%s/tmux.conf", d);
	r |= dp_sfmt(e->steps, LPATH, "%s/steps", d);
	r |= dp_sfmt(e->script, LPATH, "%s/install.sh", d);
	r |= dp_sfmt(e->state, LPATH, "%s/state", d);
	r |= dp_sfmt(e->pidfile, LPATH, "%s/server.pid", d);
	r |= dp_sfmt(e->limfile, LPATH, "%s/limits", d);
	r |= dp_sfmt(e->mstate, LPATH, "%s/metrics.state", d);
	r |= dp_sfmt(e->launchlog, LPATH, "%s/launch.log", d);
	r |= dp_sfmt(e->launchinfo, LPATH, "%s/launch.info", d);
	r |= dp_sfmt(e->lock, LPATH, "%s/lock", d);
	r |= dp_sfmt(e->session, sizeof(e->session),
	    DP_LOCAL_SESSION_PREFIX "%s", e->id);
	if (host.cgmount[0] != '\0') {
		r |= dp_sfmt(e->cg, LPATH, "%s/devpocket/%s", host.cgmount,
		    e->id);
		r |= dp_sfmt(e->cgprocs, LPATH, "%s/cgroup.procs", e->cg);
	}
	if (r != 0) {
		dp_err_set(err, ENAMETOOLONG, "[drivers] local_root is too "
		    "long for a tmux socket path");
		return -1;
	}
	e->shell = access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh";
	dp_sfmt(e->chome, sizeof(e->chome), "HOME=%s", e->home);
	dp_sfmt(e->cshell, sizeof(e->cshell), "SHELL=%s", e->shell);
	e->cenv[0] = e->tenv[0] = "PATH=" ENV_PATH;
	e->cenv[1] = e->tenv[1] = "LANG=C.UTF-8";
	e->cenv[2] = e->tenv[2] = e->chome;
	e->cenv[3] = e->tenv[3] = e->cshell;
	e->tenv[4] = "TERM=xterm-256color";
	return resolve_user(e, err);
}

/* --- children ------------------------------------------------------------ */

/* What the driver's programs on the host run with (bwrap, tmux calls). */
static char *const min_env[] = { "PATH=" ENV_PATH, "LANG=C.UTF-8", NULL };

/* In a child: say why it cannot run (on its stderr) and exit 126. */
static void __attribute__((noreturn))
child_fail(const char *what, const char *arg)
{
	dprintf(2, "devpocket: %s %s: %s\n", what, arg ? arg : "",
	    strerror(errno));
	_exit(126);
}

/* (join_sandbox) the joined process, to pass signals on to. */
static volatile sig_atomic_t joined;

static void
pass_on(int sig)
{
	if (joined > 0)
		(void)kill((pid_t)joined, sig);
}

/* fork() by a bare system call: the caller may be a bare clone3's child. */
static long
bare_fork(void)
{
#if defined(__s390__) || defined(__CRIS__)
	return syscall(SYS_clone, 0, SIGCHLD, 0, 0, 0);
#else
	return syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
#endif
}

/*
 * No capabilities (those the join gave in the sandbox's user namespace)
 * and no ptrace by the processes of the sandbox until exec.
 */
static void
drop_caps(void)
{
	struct __user_cap_header_struct	 h;
	struct __user_cap_data_struct	 d[2];

	memset(&h, 0, sizeof(h));
	memset(d, 0, sizeof(d));
	h.version = _LINUX_CAPABILITY_VERSION_3;
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	if (syscall(SYS_capset, &h, d) == -1)
		child_fail("dropping", "capabilities");
}

/*
 * In a child with its identity dropped, 3 a pidfd of a process of the
 * sandbox and 4 that process's root folder: join its user, mount, pid,
 * ipc and uts namespaces (as the user who owns the user namespace, so
 * with no privilege outside it), make its root ours, and fork the
 * process that goes on, which returns 0; the one that forked it stays
 * outside as its parent, passes signals on, and exits as it does.  The
 * pid namespace only takes children, hence the fork: the program then
 * runs in the sandbox's pid namespace, where it can name no process of
 * the host or of another environment, and ends with the sandbox.  The
 * caller placed it in the environment's cgroup and limits: whatever the
 * user's tmux server makes a client run is one more process of the
 * environment.  -1 when this kernel cannot join (setns on a pidfd:
 * Linux 5.8) or may not: nothing has changed, the caller makes a
 * sandbox instead.  Only system calls: the caller may be the child of a
 * bare clone3.  The one that goes on dies with its parent (a pipe tells
 * whether that parent is already gone: outside the pid namespace,
 * getppid says 0).
 */
static int
join_sandbox(const struct spawn *sp)
{
	struct sigaction	 sa;
	struct pollfd		 pfd;
	siginfo_t		 si;
	int			 p[2];
	long			 pid;

	if (setns(3, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID |
	    CLONE_NEWIPC | CLONE_NEWUTS) == -1) {
		if (errno != EINVAL && errno != ENOSYS && errno != EPERM)
			child_fail("joining", "the sandbox");
		close(3);
		close(4);
		return -1;
	}
	if (fchdir(4) == -1 || chroot(".") == -1)
		child_fail("entering", "the sandbox's root");
	close(3);
	close(4);
	if (pipe2(p, O_CLOEXEC) == -1)
		child_fail("pipe", NULL);
	if ((pid = bare_fork()) == -1)
		child_fail("fork", NULL);
	if (pid == 0) {
		close(p[1]);
		drop_caps();
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		pfd.fd = p[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, 0) != 0)
			_exit(126);
		close(p[0]);
		if (sp->newsid)
			(void)setsid();
		return 0;
	}
	close(p[0]);
	drop_caps();
	joined = (sig_atomic_t)pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = pass_on;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	/* Seen exited but not reaped: no signal goes to a pid reused. */
	memset(&si, 0, sizeof(si));
	while (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT) == -1)
		if (errno != EINTR)
			_exit(126);
	joined = 0;
	(void)waitid(P_PID, (id_t)pid, &si, WEXITED);
	_exit(si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status);
}

static void __attribute__((noreturn))
child(const struct lenv *e, const struct spawn *sp)
{
	struct rlimit	 rl;
	sigset_t	 none;
	char *const	*argv = sp->argv, *const *envp = sp->envp;
	int		 fd, i;

	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (i = 1; i < NSIG; i++)
		signal(i, SIG_DFL);
	if (sp->pgrp)
		(void)setpgid(0, 0);
	/* A client of an environment launched in a cgroup is in it, or
	 * does not run (the group is gone: the environment is not). */
	if (sp->cgroup && (sp->client ? sp->cgwant : e->cgprocs[0] != '\0' &&
	    exists(e->cg)) && write_knob(e->cgprocs, "0") == -1)
		child_fail("joining", e->cg);
	if (sp->limits) {
		rl.rlim_cur = rl.rlim_max = 0;
		setrlimit(RLIMIT_CORE, &rl);
		if ((rl.rlim_max = sp->client ? sp->as : e->as) != 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_AS, &rl);
		}
		if ((rl.rlim_max = sp->client ? sp->fsize : e->fsize) != 0) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_FSIZE, &rl);
		}
		/* Not a client's: per uid, and the worker's stop and
		 * status must not fail when the environments are full. */
		if (e->nproc != 0 && !sp->client) {
			rl.rlim_cur = rl.rlim_max = e->nproc;
			setrlimit(RLIMIT_NPROC, &rl);
		}
	}
	if (!sp->keep_stdio) {
		if ((fd = open("/dev/null", O_RDWR)) == -1)
			child_fail("open", "/dev/null");
		dup2(fd, 0);
		dup2(sp->out >= 0 ? sp->out : fd, 1);
		dup2(sp->err >= 0 ? sp->err : fd, 2);
	}
	if (sp->join) {
		/* (join_open put them above JOIN_FD_MIN.) */
		if (dup2(sp->jpid, 3) == -1 || dup2(sp->jroot, 4) == -1)
			child_fail("dup", NULL);
	} else if (sp->info >= 0)
		dup2(sp->info, 3);
	close_range(sp->join ? 5 : sp->info >= 0 ? 4 : 3, ~0U, 0);
	if (e->drop && !sp->root) {
		if (setgroups((size_t)e->ngroups, e->groups) == -1 ||
		    setgid(e->gid) == -1 || setuid(e->uid) == -1)
			child_fail("becoming", e->user);
		if (getuid() != e->uid || geteuid() != e->uid ||
		    getegid() != e->gid || setuid(0) == 0)
			child_fail("dropping root for", e->user);
	}
	if (!sp->root)
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	/* A client goes with whoever started it (a stopped stack's worker
	 * or terminal).  Set after the change of identity, which clears
	 * it; a parent already gone is not waited for. */
	if (sp->pdeath) {
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != sp->parent)
			_exit(126);
	}
	if (sp->join && join_sandbox(sp) == -1) {
		/* Cannot join: a sandbox of its own (client_prepare). */
		argv = sp->alt_argv;
		envp = min_env;
	}
	if (sp->cwd != NULL && chdir(sp->cwd) == -1)
		child_fail("chdir", sp->cwd);
	/* A client's process limit last: the join forks past it. */
	if (sp->client && sp->nproc != 0) {
		rl.rlim_cur = rl.rlim_max = sp->nproc;
		setrlimit(RLIMIT_NPROC, &rl);
	}
	execve(argv[0], argv, envp);
	dprintf(2, "devpocket: exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

/* A pidfd of a child (poll says when it exits), or -1 (kernel < 5.3). */
static int
pidfd_of(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	errno = ENOSYS;
	return -1;
#endif
}

/*
 * fork(), the child born in the environment's cgroup when there is one
 * (clone3 CLONE_INTO_CGROUP, Linux 5.7): moving a process there later by
 * cgroup.procs waits for an RCU grace period, ~10 ms of every attach.
 * *placed says whether the child is in the group already; when clone3
 * or the group is not there it is a plain fork and the child joins
 * through cgroup.procs as before.  The child of clone3 has not run
 * glibc's fork handlers: it must only make system calls and exec (as
 * child() does) — the callers are single-threaded.
 */
static pid_t
fork_into(const struct lenv *e, bool *placed)
{
#if defined(SYS_clone3) && defined(CLONE_INTO_CGROUP)
	struct clone_args	 ca;
	int			 cg = -1;
#endif
	pid_t			 pid = -1;

	*placed = false;
#if defined(SYS_clone3) && defined(CLONE_INTO_CGROUP)
	if (e->cg[0] != '\0' &&
	    (cg = open(e->cg, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		memset(&ca, 0, sizeof(ca));
		ca.flags = CLONE_INTO_CGROUP;
		ca.exit_signal = SIGCHLD;
		ca.cgroup = (uint64_t)cg;
		pid = (pid_t)syscall(SYS_clone3, &ca, sizeof(ca));
		if (pid != -1)
			*placed = true;
		if (pid != 0)
			close(cg);
	}
#endif
	if (!*placed)
		pid = fork();
	return pid;
}

/*
 * Fork sp's child and run it: born in the environment's cgroup when
 * sp->cgroup asks for it (fork_into), else a plain fork; with tty >= 0
 * that pty is its terminal (a new session, the pty its 0-2).  The pid,
 * or -1 with errno.
 */
static pid_t
fork_child(const struct lenv *e, struct spawn *sp, int tty)
{
	bool	 placed = false;
	pid_t	 pid = sp->cgroup ? fork_into(e, &placed) : fork();

	if (pid == 0) {
		if (tty >= 0 && login_tty(tty) == -1)
			child_fail("login_tty", NULL);
		sp->cgroup = sp->cgroup && !placed;
		child(e, sp);
	}
	return pid;
}

/*
 * Run a child to completion within timeout_ms; *status is its wait
 * status.  With out, its stdout is collected (capped); a grandchild that
 * keeps the pipe open does not hold us past the child's exit.  The exit
 * is waited for on a pidfd, so a short child (a tmux client call, ~2 ms)
 * is seen at once; without pidfds the wait polls every 5 ms.
 */
static int
run(const struct lenv *e, struct spawn *sp, struct dp_buf *out,
    int timeout_ms, int *status, struct dp_err *err)
{
	struct pollfd	 pfd[2];
	char		 buf[4096];
	int		 p[2] = { -1, -1 }, rc = -1, st = 0, pidfd = -1;
	int		 n, ip, ic, ms;
	int64_t		 deadline, left;
	pid_t		 pid, w;
	ssize_t		 r;
	bool		 exited = false;

	if (out != NULL) {
		if (pipe2(p, O_CLOEXEC) == -1) {
			dp_err_set(err, errno, "pipe: %s", strerror(errno));
			goto out;
		}
		sp->out = p[1];
	}
	if ((pid = fork_child(e, sp, -1)) == -1) {
		dp_err_set(err, errno, "fork: %s", strerror(errno));
		goto out;
	}
	if (p[1] != -1) {
		close(p[1]);
		p[1] = -1;
	}
	deadline = dp_mono_ms() + timeout_ms;
	pidfd = pidfd_of(pid);
	for (;;) {
		n = 0;
		ip = ic = -1;
		if (p[0] != -1) {
			pfd[n].fd = p[0];
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			ip = n++;
		}
		if (!exited && pidfd != -1) {
			pfd[n].fd = pidfd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			ic = n++;
		}
		left = deadline - dp_mono_ms();
		if (left < 0)
			left = 0;
		/* Once exited, only what the pipe already holds is read. */
		if (exited)
			ms = 0;
		else if (ic != -1)
			ms = (int)left;
		else
			ms = left < 5 ? (int)left : 5;
		if (n > 0)
			r = poll(pfd, (nfds_t)n, ms);
		else {
			struct timespec ts = { 0, (long)ms * 1000 * 1000 };

			r = nanosleep(&ts, NULL);
		}
		if (ip != -1 && r > 0 && pfd[ip].revents != 0) {
			r = read(p[0], buf, sizeof(buf));
			if (r > 0 && out->len < OUT_MAX)
				dp_buf_add(out, buf, (size_t)r);
			if (r == 0 || (r == -1 && errno != EINTR)) {
				close(p[0]);
				p[0] = -1;
			}
		} else if (ip != -1 && exited) {
			close(p[0]);
			p[0] = -1;
		}
		if (!exited) {
			w = waitpid(pid, &st, WNOHANG);
			if (w == pid)
				exited = true;
			else if (w == -1 && errno != EINTR) {
				dp_err_set(err, errno, "waitpid: %s",
				    strerror(errno));
				goto out;
			}
		}
		if (exited && p[0] == -1)
			break;
		if (dp_mono_ms() > deadline) {
			if (!exited) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
			}
			dp_err_set(err, ETIMEDOUT, "%s timed out",
			    sp->argv[0]);
			goto out;
		}
	}
	*status = st;
	rc = 0;
out:
	if (pidfd != -1)
		close(pidfd);
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	return rc;
}

/* The environment variables of every process of the environment. */
static char **
build_env(const struct lenv *e, const struct dp_env_spec *spec,
    struct dp_buf *notes)
{
	static const char *const reserved[] = { "HOME", "USER", "LOGNAME",
	    "SHELL", "TMUX", "TMUX_PANE", "DEVPOCKET_ENVIRONMENT_ID" };
	struct strv	 sv = { 0 };
	const char	*kv, *eq;
	size_t		 i, j, klen;
	bool		 bad;

	strv_addf(&sv, "HOME=%s", e->home);
	strv_addf(&sv, "USER=%s", e->user);
	strv_addf(&sv, "LOGNAME=%s", e->user);
	strv_addf(&sv, "SHELL=%s", e->shell);
	strv_add(&sv, "TERM=xterm-256color");
	strv_add(&sv, "LANG=C.UTF-8");
	strv_add(&sv, "PATH=" ENV_PATH);
	strv_addf(&sv, "DEVPOCKET_ENVIRONMENT_ID=%s", e->id);
	for (i = 0; spec != NULL && i < spec->nenv; i++) {
		kv = spec->env[i];
		if (kv == NULL)
			continue;
		eq = strchr(kv, '=');
		klen = eq != NULL ? (size_t)(eq - kv) : 0;
		bad = eq == NULL || klen == 0 || klen > ENVKEY_MAX ||
		    strlen(eq + 1) > ENVVAL_MAX || i >= NENV_MAX ||
		    (kv[0] >= '0' && kv[0] <= '9');
		for (j = 0; !bad && j < klen; j++)
			bad = !(kv[j] == '_' || (kv[j] >= 'A' && kv[j] <= 'Z') ||
			    (kv[j] >= 'a' && kv[j] <= 'z') ||
			    (kv[j] >= '0' && kv[j] <= '9'));
		for (j = 0; !bad && j < DP_NITEMS(reserved); j++)
			bad = strlen(reserved[j]) == klen &&
			    memcmp(reserved[j], kv, klen) == 0;
		if (bad) {
			if (notes != NULL)
				dp_buf_printf(notes, "devpocket: variable %zu "
				    "skipped (not NAME=value, too long or "
				    "reserved)\n", i + 1);
			continue;
		}
		/* A later value replaces an earlier one (PATH, LANG, ...). */
		for (j = 0; j < sv.n; j++)
			if (strncmp(sv.v[j], kv, klen + 1) == 0)
				break;
		if (j < sv.n) {
			free(sv.v[j]);
			sv.v[j] = dp_xstrdup(kv);
		} else
			strv_add(&sv, kv);
	}
	return sv.v;
}

static int	 client_prepare(const struct lenv *, struct spawn *, char **,
		    bool, struct strv *, struct dp_err *);
static void	 client_done(struct spawn *, struct strv *);

/* A tmux client call as the environment user; exit code or -1. */
static int
tmux_call(const struct lenv *e, struct dp_buf *out,
    struct dp_err *err, const char *a1, const char *a2, const char *a3,
    const char *a4)
{
	char		*argv[10];
	struct spawn	 sp = { 0 };
	struct strv	 sv = { 0 };
	int		 n = 0, st;

	if (host.tmux[0] == '\0') {
		dp_err_set(err, ENOENT, "tmux is not installed");
		return -1;
	}
	argv[n++] = host.tmux;
	argv[n++] = "-S";
	argv[n++] = (char *)e->sock;
	argv[n++] = (char *)a1;
	if (a2 != NULL)
		argv[n++] = (char *)a2;
	if (a3 != NULL)
		argv[n++] = (char *)a3;
	if (a4 != NULL)
		argv[n++] = (char *)a4;
	argv[n] = NULL;
	if (client_prepare(e, &sp, argv, false, &sv, err) == -1)
		return -1;
	sp.cwd = "/";
	sp.out = sp.err = sp.info = -1;
	n = run(e, &sp, out, CMD_TIMEOUT_MS, &st, err);
	client_done(&sp, &sv);
	if (n == -1)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static pid_t	 server_root(const struct lenv *, unsigned long long *);
static bool	 sock_listening(const struct lenv *);

/* True when the environment's tmux server is up (as far as we ask). */
static bool
server_up(const struct lenv *e)
{
	struct stat	 st;

	/* No tmux client (the socket is the user's): the recorded first
	 * process is alive and the socket takes connections. */
	if (lstat(e->sock, &st) == -1 || !S_ISSOCK(st.st_mode) ||
	    server_root(e, NULL) <= 0)
		return false;
	return sock_listening(e);
}

/* --- bubblewrap -------------------------------------------------------- */

static bool
bwrap_works(const struct lenv *e)
{
	char		*argv[] = { host.bwrap, "--ro-bind", "/", "/",
	    "--unshare-pid", "--unshare-ipc", "--unshare-uts",
	    "--new-session", "--proc", "/proc", "--dev", "/dev",
	    "--tmpfs", "/tmp", "--hostname", "devpocket-probe",
	    "--", "/bin/true", NULL };
	struct spawn	 sp = { 0 };
	struct dp_err	 err = { 0 };
	int		 st;

	if (host.bwrap[0] == '\0')
		return false;
	if (host.bwrap_ok != -1 && host.bwrap_uid == e->uid)
		return host.bwrap_ok == 1;
	sp.argv = argv;
	sp.envp = (char **)min_env;
	sp.cwd = "/";
	sp.out = sp.err = sp.info = -1;
	host.bwrap_uid = e->uid;
	host.bwrap_ok = run(e, &sp, NULL, CMD_TIMEOUT_MS, &st, &err) == 0 &&
	    WIFEXITED(st) && WEXITSTATUS(st) == 0;
	return host.bwrap_ok == 1;
}

bool
dp_local_bwrap_works(void)
{
	struct dp_env_spec	 spec = { .id = "000000000000000000000000" };
	struct lenv		 e;
	struct dp_err		 err = { 0 };

	if (lenv_init(&e, &spec, &err) == -1)
		return false;
	return bwrap_works(&e);
}

/* --- cgroups and limits -------------------------------------------------- */

static bool
has_word(const char *list, const char *w)
{
	size_t	 n = strlen(w);
	const char *p = list;

	while ((p = strstr(p, w)) != NULL) {
		if ((p == list || p[-1] == ' ') &&
		    (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

/* Ask a cgroup to hand cpu, memory and pids to its children. */
static void
cg_delegate(const char *cg)
{
	static const char *const ctl[] = { "cpu", "memory", "pids" };
	char	 path[LPATH], have[512], knob[16];
	size_t	 i;

	if (dp_sfmt(path, sizeof(path), "%s/cgroup.controllers", cg) == -1 ||
	    read_small(path, have, sizeof(have)) < 0)
		return;
	if (dp_sfmt(path, sizeof(path), "%s/cgroup.subtree_control", cg) == -1)
		return;
	for (i = 0; i < DP_NITEMS(ctl); i++) {
		if (!has_word(have, ctl[i]))
			continue;
		snprintf(knob, sizeof(knob), "+%s", ctl[i]);
		(void)write_knob(path, knob);
	}
}

/* Kill every process of the environment's cgroup and remove it. */
static void
cg_kill(const struct lenv *e)
{
	char	 path[LPATH], buf[8192], *p, *end;
	int64_t	 deadline;
	long	 pid;
	bool	 any;

	if (e->cg[0] == '\0' || !exists(e->cg))
		return;
	if (dp_sfmt(path, sizeof(path), "%s/cgroup.kill", e->cg) == 0)
		(void)write_knob(path, "1");
	deadline = dp_mono_ms() + KILL_WAIT_MS;
	do {
		any = false;
		if (read_small(e->cgprocs, buf, sizeof(buf)) <= 0)
			break;
		for (p = buf; *p != '\0'; p = end) {
			pid = strtol(p, &end, 10);
			if (end == p)
				break;
			if (pid > 1) {
				kill((pid_t)pid, SIGKILL);
				any = true;
			}
		}
		if (any) {
			struct timespec ts = { 0, 20 * 1000 * 1000 };

			nanosleep(&ts, NULL);
		}
	} while (any && dp_mono_ms() < deadline);
	/* Emptied groups go away; a busy one is retried at the next stop. */
	while (rmdir(e->cg) == -1 && errno == EBUSY &&
	    dp_mono_ms() < deadline) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		nanosleep(&ts, NULL);
	}
}

/*
 * Remove the empty groups under <mount>/devpocket that are older than a
 * minute: environments whose servers ended without the driver (killed
 * from outside, a host shutdown script).  rmdir refuses a busy group, and
 * the age keeps us off a group another worker has just made.
 */
static void
cg_prune(void)
{
	char		 base[LPATH], path[LPATH];
	struct stat	 st;
	struct dirent	*de;
	DIR		*d;
	time_t		 now = time(NULL);

	if (host.cgmount[0] == '\0' ||
	    dp_sfmt(base, sizeof(base), "%s/devpocket", host.cgmount) == -1 ||
	    (d = opendir(base)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (!dp_is_id(de->d_name) ||
		    dp_sfmt(path, sizeof(path), "%s/%s", base,
		    de->d_name) == -1 ||
		    lstat(path, &st) == -1 || !S_ISDIR(st.st_mode) ||
		    now - st.st_ctime < 60)
			continue;
		(void)rmdir(path);
	}
	closedir(d);
}

/*
 * Make the cgroup and the rlimits of a start; one line describing what
 * applied goes to notes.
 */
static void
set_limits(struct lenv *e, const struct dp_env_spec *spec,
    struct dp_buf *notes)
{
	char	 base[LPATH], path[LPATH], have[512], val[64];
	struct dp_err err = { 0 };
	bool	 cpu = false, mem = false, pids = false;
	int64_t	 quota;

	if (spec->memory_bytes > 0)
		e->as = (rlim_t)spec->memory_bytes * 2 + ((rlim_t)1 << 30);
	if (spec->storage_bytes > 0)
		e->fsize = (rlim_t)spec->storage_bytes;
	if (e->cg[0] != '\0') {
		cg_prune();
		cg_delegate(host.cgmount);
		dp_sfmt(base, sizeof(base), "%s/devpocket", host.cgmount);
		if (mkdir_ok(base, 0755, &err) == -1 ||
		    mkdir_ok(e->cg, 0755, &err) == -1) {
			e->cg[0] = e->cgprocs[0] = '\0';
		} else {
			cg_delegate(base);
			have[0] = '\0';
			if (dp_sfmt(path, sizeof(path), "%s/cgroup.controllers",
			    e->cg) == 0)
				(void)read_small(path, have, sizeof(have));
			if (has_word(have, "cpu") && spec->cpu_millicores > 0) {
				quota = spec->cpu_millicores * 100;
				if (quota < 1000)
					quota = 1000;
				snprintf(val, sizeof(val), "%lld 100000",
				    (long long)quota);
				dp_sfmt(path, sizeof(path), "%s/cpu.max",
				    e->cg);
				cpu = write_knob(path, val) == 0;
			}
			if (has_word(have, "memory") && spec->memory_bytes > 0) {
				snprintf(val, sizeof(val), "%lld",
				    (long long)spec->memory_bytes);
				dp_sfmt(path, sizeof(path), "%s/memory.max",
				    e->cg);
				mem = write_knob(path, val) == 0;
			}
			if (has_word(have, "pids")) {
				dp_sfmt(path, sizeof(path), "%s/pids.max",
				    e->cg);
				pids = write_knob(path, "512") == 0;
			}
		}
	}
	if (!pids && e->drop)
		e->nproc = NPROC_MAX;
	if (e->cg[0] != '\0')
		dp_buf_printf(notes, "devpocket: limits: cgroup v2 %s (%s%s%s%s)"
		    " and rlimits (address space %lld MiB, file size %lld MiB"
		    "%s)\n", e->cg,
		    cpu || mem || pids ? "" : "accounting only; cpu, memory "
		    "and pids not delegated",
		    cpu ? "cpu.max " : "", mem ? "memory.max " : "",
		    pids ? "pids.max 512" : "",
		    (long long)(e->as >> 20), (long long)(e->fsize >> 20),
		    e->nproc ? ", processes 4096 per user" : "");
	else
		dp_buf_printf(notes, "devpocket: limits: rlimits only, no "
		    "writable cgroup v2 (address space %lld MiB, file size "
		    "%lld MiB%s); cpu is not limited\n",
		    (long long)(e->as >> 20), (long long)(e->fsize >> 20),
		    e->nproc ? ", processes 4096 per user" : "");
}

/* --- processes of an environment --------------------------------------- */

struct proc {
	pid_t			 pid, ppid;
	unsigned long long	 ticks;		/* utime+stime+cutime+cstime */
	long			 rss;		/* pages */
	bool			 mine;
};

/* Every process of the host (capped), from /proc/<pid>/stat. */
static struct proc *
proc_scan(size_t *np)
{
	struct proc		*v = NULL;
	size_t			 n = 0, cap = 0;
	DIR			*d;
	struct dirent		*de;
	char			 path[64], buf[1024], *f[22];
	unsigned long long	 u, s, cu, cs;

	*np = 0;
	if ((d = opendir("/proc")) == NULL)
		return NULL;
	while ((de = readdir(d)) != NULL && n < 1000000) {
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		if (dp_sfmt(path, sizeof(path), "/proc/%s/stat", de->d_name) ||
		    read_small(path, buf, sizeof(buf)) <= 0 ||
		    stat_fields(buf, f) == -1)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			v = dp_xrealloc(v, cap * sizeof(*v));
		}
		v[n].pid = (pid_t)strtol(de->d_name, NULL, 10);
		v[n].ppid = (pid_t)strtol(f[4 - 3], NULL, 10);
		u = strtoull(f[14 - 3], NULL, 10);
		s = strtoull(f[15 - 3], NULL, 10);
		cu = strtoull(f[16 - 3], NULL, 10);
		cs = strtoull(f[17 - 3], NULL, 10);
		v[n].ticks = u + s + cu + cs;
		v[n].rss = strtol(f[24 - 3], NULL, 10);
		v[n].mine = false;
		n++;
	}
	closedir(d);
	*np = n;
	return v;
}

/*
 * The recorded root process of the environment, if it still is ours,
 * with its start time in *start (when not NULL).
 */
static pid_t
server_root(const struct lenv *e, unsigned long long *start)
{
	char			 buf[128], *end;
	long			 pid;
	unsigned long long	 st;

	if (read_small(e->pidfile, buf, sizeof(buf)) <= 0)
		return 0;
	pid = strtol(buf, &end, 10);
	if (end == buf || pid <= 1 || pid > INT_MAX)
		return 0;
	st = strtoull(end, NULL, 10);
	if (st == 0 || pid_starttime((pid_t)pid) != st)
		return 0;
	if (start != NULL)
		*start = st;
	return (pid_t)pid;
}

/*
 * Mark the processes of the environment: those listed in its cgroup, or
 * without one the recorded root process and its descendants.
 */
static void
proc_mark(const struct lenv *e, struct proc *v, size_t n)
{
	char	 *buf = NULL, *p, *end;
	size_t	  i;
	long	  pid;
	pid_t	  root;
	bool	  more;

	if (e->cg[0] != '\0' && exists(e->cg)) {
		buf = dp_xmalloc(1 << 20);
		if (read_small(e->cgprocs, buf, 1 << 20) > 0) {
			for (p = buf; *p != '\0'; p = end) {
				pid = strtol(p, &end, 10);
				if (end == p)
					break;
				for (i = 0; i < n; i++)
					if (v[i].pid == pid)
						v[i].mine = true;
			}
		}
		free(buf);
		return;
	}
	if ((root = server_root(e, NULL)) == 0)
		return;
	for (i = 0; i < n; i++)
		if (v[i].pid == root)
			v[i].mine = true;
	do {
		more = false;
		for (i = 0; i < n; i++) {
			size_t	 j;

			if (v[i].mine)
				continue;
			for (j = 0; j < n; j++)
				if (v[j].mine && v[j].pid == v[i].ppid)
					break;
			if (j < n)
				v[i].mine = more = true;
		}
	} while (more);
}

/* Kill whatever is left of the environment's processes. */
static void
kill_leftovers(const struct lenv *e)
{
	struct proc	*v;
	size_t		 n, i;

	if (e->cg[0] != '\0' && exists(e->cg)) {
		cg_kill(e);
		return;
	}
	v = proc_scan(&n);
	proc_mark(e, v, n);
	for (i = 0; i < n; i++)
		if (v[i].mine && v[i].pid > 1 && v[i].pid != getpid())
			kill(v[i].pid, SIGKILL);
	free(v);
}

/* --- folders and files ------------------------------------------------- */

/*
 * Owner and mode of a folder we made, through a descriptor of it opened
 * without following a link: the environment user may have swapped in a
 * symlink (to /etc/shadow, say) since, and root would follow a path.
 */
static int
own(const char *path, const struct lenv *e, mode_t mode, struct dp_err *err)
{
	int	 fd, rc = -1;

	if ((fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		dp_err_set(err, errno, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (e->drop && fchown(fd, e->uid, e->gid) == -1)
		dp_err_set(err, errno, "chown %s: %s", path, strerror(errno));
	else if (fchmod(fd, mode) == -1)
		dp_err_set(err, errno, "chmod %s: %s", path, strerror(errno));
	else
		rc = 0;
	close(fd);
	return rc;
}

/* The folder, home and run; idempotent. */
static int
make_folders(const struct lenv *e, struct dp_err *err)
{
	int	 rc = -1;
	struct stat st;

	if (mkdir_p(e->root, 0755, err) == -1 || mkdir_ok(e->dir, 0750, err))
		goto out;
	/*
	 * The environment user must pass through the root to reach its
	 * folder; search permission alone lets it list nothing.
	 */
	if (e->drop && stat(e->root, &st) == 0 && st.st_uid == geteuid() &&
	    (st.st_mode & 0001) == 0) {
		if (chmod(e->root, (st.st_mode & 07777) | 0111) == -1) {
			dp_err_set(err, errno, "chmod %s: %s", e->root,
			    strerror(errno));
			goto out;
		}
		dp_warn("%s: search permission added for others so that %s "
		    "can reach its environments", e->root, e->user);
	}
	if (e->drop && chown(e->dir, 0, e->gid) == -1) {
		dp_err_set(err, errno, "chown %s: %s", e->dir, strerror(errno));
		goto out;
	}
	if (chmod(e->dir, 0750) == -1) {
		dp_err_set(err, errno, "chmod %s: %s", e->dir, strerror(errno));
		goto out;
	}
	if (lstat(e->home, &st) == -1) {
		if (mkdir_ok(e->home, 0700, err) == -1 ||
		    own(e->home, e, 0700, err) == -1)
			goto out;
	}
	if (lstat(e->run, &st) == -1) {
		if (mkdir_ok(e->run, 0700, err) == -1 ||
		    own(e->run, e, 0700, err) == -1)
			goto out;
	}
	/* Inside home the user rules: create workspace, never chown it. */
	if (mkdir(e->ws, 0755) == 0) {
		if (own(e->ws, e, 0755, err) == -1)
			goto out;
	} else if (errno != EEXIST) {
		dp_err_set(err, errno, "mkdir %s: %s", e->ws, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	return rc;
}

/* Remove the step files of an earlier start. */
static void
clear_steps(const struct lenv *e)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd;

	if ((d = opendir(e->steps)) == NULL)
		return;
	fd = dirfd(d);
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			(void)unlinkat(fd, de->d_name, 0);
	closedir(d);
	(void)rmdir(e->steps);
}

/* A command on one line for its marker: controls become spaces, capped. */
static void
one_line(struct dp_buf *b, const char *cmd)
{
	size_t	 i, n = strlen(cmd), start = b->len;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)cmd[i];

		if (b->len - start >= LINE_MAX_SHOWN) {
			/* Do not end inside a UTF-8 sequence. */
			while (b->len > start &&
			    ((unsigned char)b->s[b->len - 1] & 0xc0) == 0x80)
				b->len--;
			if (b->len > start &&
			    ((unsigned char)b->s[b->len - 1] & 0xc0) == 0xc0)
				b->len--;
			b->s[b->len] = '\0';
			dp_buf_adds(b, "...");
			break;
		}
		dp_buf_addc(b, c < 0x20 || c == 0x7f ? ' ' : (char)c);
	}
	dp_buf_addc(b, '\n');
}

/*
 * install.sh: run steps/<i>.sh in order with /bin/sh, output appended to
 * install.log, markers written by the script itself from steps/<i>.line,
 * so no command text ever passes through this script's own parsing.
 * A marker always starts a line even when a command's output did not end
 * with a newline.  The window then becomes the user's login shell.
 */
static int
write_install(const struct lenv *e, const struct dp_env_spec *spec,
    struct dp_err *err)
{
	struct dp_buf	 b = { 0 }, path = { 0 };
	size_t		 i;
	int		 rc = -1;

	if (spec->ncommands > NCOMMANDS_MAX) {
		dp_err_set(err, E2BIG, "too many startup commands");
		goto out;
	}
	clear_steps(e);
	if (mkdir_ok(e->steps, 0755, err) == -1)
		goto out;
	for (i = 0; i < spec->ncommands; i++) {
		const char *cmd = spec->commands[i] ? spec->commands[i] : "";
		size_t	 len = strlen(cmd);

		if (len > COMMAND_MAX) {
			dp_err_set(err, E2BIG, "startup command %zu is too "
			    "long", i + 1);
			goto out;
		}
		dp_buf_reset(&path);
		dp_buf_printf(&path, "%s/%zu.sh", e->steps, i + 1);
		dp_buf_reset(&b);
		dp_buf_add(&b, cmd, len);
		dp_buf_addc(&b, '\n');
		if (write_file(path.s, b.s, b.len, 0644, err) == -1)
			goto out;
		dp_buf_reset(&path);
		dp_buf_printf(&path, "%s/%zu.line", e->steps, i + 1);
		dp_buf_reset(&b);
		one_line(&b, cmd);
		if (write_file(path.s, b.s, b.len, 0644, err) == -1)
			goto out;
	}
	dp_buf_reset(&b);
	dp_buf_adds(&b, "#!/bin/sh\n"
	    "# Written by devpocket at each start of this environment.\n"
	    "D=");
	dp_buf_add_shquoted(&b, e->dir);
	dp_buf_printf(&b, "\nn=%zu\n", spec->ncommands);
	dp_buf_adds(&b,
	    "L=\"$D/install.log\"\n"
	    "nl() { if [ -n \"$(tail -c 1 \"$L\")\" ]; then echo >>\"$L\"; fi; }\n"
	    "mkdir -p \"$HOME/workspace\"\n"
	    "cd \"$HOME/workspace\" || cd \"$HOME\"\n"
	    "nl\n"
	    "echo \"##devpocket:begin $n\" >>\"$L\"\n"
	    "echo \"devpocket: running $n startup commands\"\n"
	    "w=0\n"
	    "i=1\n"
	    "while [ \"$i\" -le \"$n\" ]; do\n"
	    "\tnl\n"
	    "\t{ printf '##devpocket:step %d/%d ' \"$i\" \"$n\";"
	    " cat \"$D/steps/$i.line\"; } >>\"$L\"\n"
	    "\tprintf 'devpocket: [%d/%d] ' \"$i\" \"$n\";"
	    " cat \"$D/steps/$i.line\"\n"
	    "\tmkdir -p \"$HOME/workspace\"\n"
	    "\t( cd \"$HOME/workspace\" && exec /bin/sh \"$D/steps/$i.sh\" )"
	    " </dev/null >>\"$L\" 2>&1\n"
	    "\trc=$?\n"
	    "\tif [ \"$rc\" -ne 0 ]; then\n"
	    "\t\tw=$((w + 1))\n"
	    "\t\tnl\n"
	    "\t\t{ printf '##devpocket:warn %d ' \"$rc\";"
	    " cat \"$D/steps/$i.line\"; } >>\"$L\"\n"
	    "\t\techo \"devpocket: step $i exited with $rc\"\n"
	    "\tfi\n"
	    "\ti=$((i + 1))\n"
	    "done\n"
	    "nl\n"
	    "echo \"##devpocket:done $w\" >>\"$L\"\n"
	    "echo \"devpocket: ready ($w warnings)\"\n"
	    "cd \"$HOME/workspace\" 2>/dev/null || cd \"$HOME\"\n"
	    "exec \"$SHELL\" -l\n");
	if (write_file(e->script, b.s, b.len, 0644, err) == -1)
		goto out;
	rc = 0;
out:
	dp_buf_release(&b);
	dp_buf_release(&path);
	return rc;
}

static int
write_conf(const struct lenv *e, struct dp_err *err)
{
	struct dp_buf	 b = { 0 };
	int		 rc;

	dp_buf_printf(&b,
	    "# Written by devpocket at each start of this environment.\n"
	    "set -g exit-empty off\n"
	    "set -g history-limit 50000\n"
	    "set -g mouse on\n"
	    "set -g window-size latest\n"
	    "set -g default-shell %s\n"
	    "set -g default-terminal %s\n"
	    /* A detach only makes the terminal attach again (ws/terminal.c,
	     * reattach): C-b d and D do nothing on a phone. */
	    "unbind-key d\n"
	    "unbind-key D\n",
	    e->shell, access("/usr/share/terminfo/t/tmux-256color", R_OK) == 0 ||
	    access("/lib/terminfo/t/tmux-256color", R_OK) == 0 ?
	    "tmux-256color" : "screen-256color");
	rc = write_file(e->conf, b.s, b.len, 0644, err);
	dp_buf_release(&b);
	return rc;
}

/* Truncate install.log for a new install and write the driver's notes. */
static int
reset_log(const struct lenv *e, const char *notes, struct dp_err *err)
{
	int	 fd, rc = -1;
	size_t	 len = strlen(notes);

	fd = open(e->log, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
	    0640);
	if (fd == -1) {
		dp_err_set(err, errno, "%s: %s", e->log, strerror(errno));
		goto out;
	}
	if ((e->drop && fchown(fd, e->uid, e->gid) == -1) ||
	    fchmod(fd, 0640) == -1 ||
	    write(fd, notes, len) != (ssize_t)len) {
		dp_err_set(err, errno, "%s: %s", e->log, strerror(errno));
		goto out;
	}
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	return rc;
}

static int
write_state(const struct lenv *e, const char *s, struct dp_err *err)
{
	return write_file(e->state, s, strlen(s), 0644, err);
}

/*
 * Whether pid is a process of e: the environment user's (its real uid,
 * when the worker runs them as another user) and in its cgroup when it
 * has one.  Unconfined, the pid comes from the user's tmux server.
 */
static bool
pid_of_env(const struct lenv *e, pid_t pid)
{
	char		 path[64], buf[4096], want[64], *p;
	unsigned long	 uid;

	if (e->drop) {
		if (dp_sfmt(path, sizeof(path), "/proc/%d/status", (int)pid) ==
		    -1 || read_small(path, buf, sizeof(buf)) <= 0 ||
		    (p = strstr(buf, "\nUid:")) == NULL)
			return false;
		uid = strtoul(p + 5, NULL, 10);
		if (uid != (unsigned long)e->uid)
			return false;
	}
	if (e->cg[0] != '\0' && exists(e->cg)) {
		snprintf(want, sizeof(want), "/devpocket/%s\n", e->id);
		if (dp_sfmt(path, sizeof(path), "/proc/%d/cgroup", (int)pid) ==
		    -1 || read_small(path, buf, sizeof(buf)) <= 0 ||
		    (p = strstr(buf, "0::")) == NULL ||
		    strstr(p, want) == NULL)
			return false;
	}
	return true;
}

static void
record_root(const struct lenv *e, pid_t pid)
{
	char			 buf[64];
	struct dp_err		 err = { 0 };
	unsigned long long	 st;

	if (pid <= 1 || (st = pid_starttime(pid)) == 0 ||
	    !pid_of_env(e, pid)) {
		dp_warn("environment %s: no process of it to record (%d)",
		    e->id, (int)pid);
		return;
	}
	snprintf(buf, sizeof(buf), "%d %llu\n", (int)pid, st);
	(void)write_file(e->pidfile, buf, strlen(buf), 0644, &err);
}

/* child-pid from bwrap's --info-fd JSON. */
static pid_t
bwrap_child_pid(const struct lenv *e)
{
	char			 buf[4096];
	struct json_object	*o = NULL, *v;
	pid_t			 pid = 0;

	if (read_small(e->launchinfo, buf, sizeof(buf)) <= 0)
		return 0;
	/* bwrap writes one object; take the first if it wrote more. */
	if ((o = json_tokener_parse(buf)) != NULL &&
	    json_object_object_get_ex(o, "child-pid", &v) &&
	    json_object_is_type(v, json_type_int))
		pid = (pid_t)json_object_get_int(v);
	json_object_put(o);
	return pid;
}

/* --- launching the server -------------------------------------------- */

/*
 * bwrap runs on the host, so the environment's variables (LD_PRELOAD,
 * LD_LIBRARY_PATH, GCONV_PATH, … are the user's to choose) must not be
 * its own: it gets min_env and sets envp for its child (--clearenv and
 * --setenv, NAME=value split at the first '=').
 */
static void
add_sandbox_env(struct strv *sv, char *const *envp)
{
	const char	*eq;
	size_t		 i;

	strv_add(sv, "--clearenv");
	for (i = 0; envp != NULL && envp[i] != NULL; i++) {
		if ((eq = strchr(envp[i], '=')) == NULL || eq == envp[i])
			continue;
		strv_add(sv, "--setenv");
		strv_addf(sv, "%.*s", (int)(eq - envp[i]), envp[i]);
		strv_add(sv, eq + 1);
	}
}

/*
 * What of the service an environment must not see.  A worker that is not
 * root runs environments as its own user (resolve_user), which may read
 * the configuration (the database URL, the SMTP password), the signing
 * keys (anyone holding jwt.key mints an admin's token), the mail folder
 * (reset links) and the state, and talk to the responders and PostgreSQL
 * (peer authentication) on their sockets.  Each path (made absolute;
 * NULL, empty, relative or missing ones are skipped) goes into hide[] as
 * "d" + folder or "f" + file: a folder at least two levels deep is hidden
 * whole (/etc/devpocket, never /etc), else the file alone.
 */
#define NHIDE	16

static int
path_depth(const char *p)
{
	int	 n = 0;

	for (; *p != '\0'; p++)
		if (*p == '/' && p[1] != '/' && p[1] != '\0')
			n++;
	return n;
}

static void
hide_add(char hide[NHIDE][PATH_MAX + 1], int *n, const char *path,
    bool file)
{
	char		 abs[PATH_MAX], *slash;
	struct stat	 st;

	if (*n >= NHIDE || path == NULL || path[0] == '\0' ||
	    realpath(path, abs) == NULL || stat(abs, &st) < 0)
		return;
	if (file && S_ISDIR(st.st_mode))
		file = false;
	if (file && (slash = strrchr(abs, '/')) != NULL && slash != abs) {
		*slash = '\0';
		if (path_depth(abs) >= 2)
			file = false;		/* its folder */
		else
			*slash = '/';
	}
	if (!file && path_depth(abs) < 2)
		return;			/* never /, /etc, /run… */
	(void)dp_sfmt(hide[(*n)++], PATH_MAX + 1, "%c%s", file ? 'f' : 'd',
	    abs);
}

/* Under (or at) folder d, a hide[] entry's path. */
static bool
path_within(const char *p, const char *d)
{
	size_t	 n = strlen(d);

	return strncmp(p, d, n) == 0 && (p[n] == '\0' || p[n] == '/');
}

static void
add_hidden(struct strv *sv)
{
	static char	 hide[NHIDE][PATH_MAX + 1];
	const char	*u = dp_cfg.db_url, *h;
	char		 conf[PATH_MAX + 8], host[PATH_MAX];
	int		 i, j, n = 0;
	bool		 inner;

	if ((h = dp_config_path()) != NULL) {
		/* The file and its drop-ins (lib/config.c). */
		hide_add(hide, &n, h, true);
		if (strrchr(h, '/') == NULL)
			(void)dp_sfmt(conf, sizeof(conf), "conf.d");
		else
			(void)dp_sfmt(conf, sizeof(conf), "%.*s/conf.d",
			    (int)(strrchr(h, '/') - h), h);
		hide_add(hide, &n, conf, false);
	}
	hide_add(hide, &n, dp_cfg.auth_jwt_key_file, true);
	hide_add(hide, &n, dp_cfg.auth_secret_key_file, true);
	hide_add(hide, &n, dp_cfg.mail_file_dir, false);
	hide_add(hide, &n, dp_cfg.web_runtime_dir, false);
	hide_add(hide, &n, dp_cfg.web_state_dir, false);
	hide_add(hide, &n, "/run/devpocket", false);
	hide_add(hide, &n, "/run/postgresql", false);
	/* A conninfo's host=/socket/folder. */
	if (u != NULL && (h = strstr(u, "host=/")) != NULL &&
	    (h == u || h[-1] == ' ')) {
		h += 5;
		(void)dp_sfmt(host, sizeof(host), "%.*s",
		    (int)strcspn(h, " "), h);
		hide_add(hide, &n, host, false);
	}
	for (i = 0; i < n; i++) {
		/* One inside a hidden folder (or a copy) needs nothing. */
		inner = false;
		for (j = 0; j < n && !inner; j++)
			inner = j != i && hide[j][0] == 'd' &&
			    path_within(hide[i] + 1, hide[j] + 1) &&
			    (strcmp(hide[i] + 1, hide[j] + 1) != 0 || j < i);
		if (inner)
			continue;
		if (hide[i][0] == 'd') {
			strv_add(sv, "--tmpfs");
			strv_add(sv, hide[i] + 1);
		} else {
			strv_add(sv, "--ro-bind");
			strv_add(sv, "/dev/null");
			strv_add(sv, hide[i] + 1);
		}
	}
}

/* The environment's view: read-only system, nothing of the service
 * (add_hidden), its own folder, nothing of the other environments. */
static void
add_mounts(struct strv *sv, const struct lenv *e)
{
	strv_add(sv, "--ro-bind");
	strv_add(sv, "/");
	strv_add(sv, "/");
	strv_add(sv, "--proc");
	strv_add(sv, "/proc");
	strv_add(sv, "--dev");
	strv_add(sv, "/dev");
	strv_add(sv, "--tmpfs");
	strv_add(sv, "/tmp");
	add_hidden(sv);
	/* Hide the other environments, then show this one. */
	if (strcmp(e->root, "/") != 0) {
		strv_add(sv, "--tmpfs");
		strv_add(sv, e->root);
	}
	strv_add(sv, "--ro-bind");
	strv_add(sv, e->dir);
	strv_add(sv, e->dir);
	strv_add(sv, "--bind");
	strv_add(sv, e->home);
	strv_add(sv, e->home);
	strv_add(sv, "--bind");
	strv_add(sv, e->run);
	strv_add(sv, e->run);
	strv_add(sv, "--bind");
	strv_add(sv, e->log);
	strv_add(sv, e->log);
}

/*
 * argv of a tmux client of a sandboxed environment in a sandbox of its
 * own with the same view, for when the running sandbox cannot be joined
 * (client_prepare).  Its server is the user's: it can make a client run
 * any program (detach-client -E, or a fake server on the socket
 * answering with MSG_SHELL), which on the host would be the user's code
 * outside the sandbox, beside every other environment of the same uid.
 * Its own pid namespace ends whatever that program leaves behind.  A
 * terminal's client keeps its session (its pty is its controlling
 * terminal, for SIGWINCH); other clients get a new one.  Built in sv.
 */
static char **
client_argv(const struct lenv *e, char **argv, char *const *envp,
    bool terminal, struct strv *sv)
{
	size_t	 i;

	strv_add(sv, host.bwrap);
	if (!terminal)
		strv_add(sv, "--new-session");
	strv_add(sv, "--die-with-parent");
	strv_add(sv, "--unshare-pid");
	strv_add(sv, "--unshare-ipc");
	strv_add(sv, "--unshare-uts");
	add_mounts(sv, e);
	strv_add(sv, "--chdir");
	strv_add(sv, "/");
	add_sandbox_env(sv, envp);
	strv_add(sv, "--");
	for (i = 0; argv[i] != NULL; i++)
		strv_add(sv, argv[i]);
	return sv->v;
}

/* Whether e was launched in a sandbox (its launch left bwrap's info). */
static bool
sandboxed(const struct lenv *e)
{
	char	 info[8];

	/* Not the configuration of now: it may have changed since. */
	return read_small(e->launchinfo, info, sizeof(info)) > 0;
}

/*
 * The launch record (limits, root-owned in the environment's folder):
 * "AS FSIZE NPROC CGROUP SANDBOX", the rlimits launch gave the
 * environment (0: none), whether it runs in its cgroup and in a sandbox.
 * A client gets the same.
 */
static void
write_launch_record(const struct lenv *e, bool sandbox)
{
	char		 buf[128];
	struct dp_err	 err = { 0 };

	snprintf(buf, sizeof(buf), "%llu %llu %llu %d %d\n",
	    (unsigned long long)e->as, (unsigned long long)e->fsize,
	    (unsigned long long)e->nproc, e->cg[0] != '\0' && exists(e->cg),
	    sandbox);
	if (write_file(e->limfile, buf, strlen(buf), 0644, &err) == -1)
		dp_warn("environment %s: %s", e->id, err.msg);
}

/*
 * A client's limits, cgroup and whether it must join a sandbox, from the
 * launch record; -1 for a bad one.
 */
static int
client_limits(const struct lenv *e, struct spawn *sp, bool *sandbox)
{
	char			 buf[128];
	unsigned long long	 as, fs, np;
	int			 cg, sb;

	if (read_small(e->limfile, buf, sizeof(buf)) <= 0) {
		/* Launched before there were records: as it was then. */
		sp->as = sp->fsize = sp->nproc = 0;
		sp->cgwant = e->cgprocs[0] != '\0' && exists(e->cg);
		*sandbox = sandboxed(e);
		return 0;
	}
	if (sscanf(buf, "%llu %llu %llu %d %d", &as, &fs, &np, &cg, &sb) != 5)
		return -1;
	/* In its cgroup, which this process cannot reach: no client. */
	if (cg == 1 && e->cgprocs[0] == '\0')
		return -1;
	sp->as = (rlim_t)as;
	sp->fsize = (rlim_t)fs;
	sp->nproc = (rlim_t)np;
	sp->cgwant = cg == 1;
	*sandbox = sb == 1;
	return 0;
}

/* fd moved to JOIN_FD_MIN or above (clear of stdio and 3-4), or -1. */
static int
fd_high(int fd)
{
	int	 hi;

	if (fd == -1 || fd >= JOIN_FD_MIN)
		return fd;
	hi = fcntl(fd, F_DUPFD_CLOEXEC, JOIN_FD_MIN);
	close(fd);
	return hi;
}

/*
 * The running sandbox of e, to join: a pidfd of its first process (the
 * recorded root, checked again once the descriptors are open, so not a
 * process that took a reused pid) and that process's root folder; 0.
 * -1 when there is none (the environment is not running; a process in
 * our own mount namespace is no sandbox), -2 when it is there but no
 * pidfd can be had (the caller makes a sandbox of its own).
 */
static int
join_open(const struct lenv *e, int *pidfd, int *rootfd)
{
	char			 path[64];
	struct stat		 ours, its;
	unsigned long long	 st;
	pid_t			 pid;
	int			 rc = -1;

	*pidfd = *rootfd = -1;
	if ((pid = server_root(e, &st)) <= 0)
		return -1;
	if ((*pidfd = fd_high(pidfd_of(pid))) == -1 ||
	    dp_sfmt(path, sizeof(path), "/proc/%d/root", (int)pid) == -1 ||
	    (*rootfd = fd_high(open(path, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC))) == -1) {
		rc = -2;	/* no pidfd here (ENOSYS, a policy) */
		goto fail;
	}
	if (dp_sfmt(path, sizeof(path), "/proc/%d/ns/mnt", (int)pid) == -1 ||
	    stat(path, &its) == -1 || stat("/proc/self/ns/mnt", &ours) == -1 ||
	    (its.st_dev == ours.st_dev && its.st_ino == ours.st_ino))
		goto fail;
	if (pid_starttime(pid) != st)
		goto fail;
	return 0;
fail:
	if (*pidfd != -1)
		close(*pidfd);
	if (*rootfd != -1)
		close(*rootfd);
	*pidfd = *rootfd = -1;
	/* Gone meanwhile: not running after all. */
	return rc == -2 && server_root(e, NULL) == pid ? -2 : -1;
}

/*
 * A tmux client's spawn, gone with whoever starts it, with the client
 * environment (the user's variables are its server's, and must not be a
 * program's on the host: LD_PRELOAD…) and the launch's cgroup and
 * limits.  Unconfined: argv.  Sandboxed: argv in the running sandbox,
 * joined (join_sandbox); when it is there but cannot be joined, argv in
 * a sandbox of its own (client_argv, built in sv; bwrap gets min_env and
 * sets the client's).  -1 (err) when the environment is not running.
 * client_done after the fork.
 */
static int
client_prepare(const struct lenv *e, struct spawn *sp, char **argv,
    bool terminal, struct strv *sv, struct dp_err *err)
{
	char *const	*envp = terminal ? e->tenv : e->cenv;
	bool		 sandbox;
	int		 r = 0;

	sp->pdeath = true;
	sp->parent = getpid();
	sp->argv = argv;
	sp->envp = envp;
	sp->cgroup = true;
	sp->limits = true;
	sp->client = true;
	/* A bad launch record, or a sandbox whose first process is gone
	 * (the socket may still answer: another environment's server,
	 * passed on; or the launch failed before the sandbox was there):
	 * the environment is not running, and no client starts. */
	if (client_limits(e, sp, &sandbox) == -1 || (sandbox &&
	    (!sandboxed(e) || (r = join_open(e, &sp->jpid,
	    &sp->jroot)) == -1))) {
		dp_err_set(err, ESRCH, "environment is not running");
		return -1;
	}
	if (!sandbox)
		return 0;
	if (r == -2) {		/* alive, but no pidfd: a sandbox of its own */
		sp->argv = client_argv(e, argv, envp, terminal, sv);
		sp->envp = min_env;
		return 0;
	}
	sp->join = true;
	sp->newsid = !terminal;
	sp->alt_argv = client_argv(e, argv, envp, terminal, sv);
	return 0;
}

static void
client_done(struct spawn *sp, struct strv *sv)
{
	strv_free(sv->v);
	sv->v = NULL;
	if (sp->join) {
		close(sp->jpid);
		close(sp->jroot);
		sp->join = false;
	}
}

static void
add_sandbox(struct strv *sv, const struct lenv *e, char *const *envp)
{
	char	 host_name[32];

	snprintf(host_name, sizeof(host_name), "devpocket-%.12s", e->id);
	strv_add(sv, host.bwrap);
	strv_add(sv, "--new-session");
	strv_add(sv, "--unshare-pid");
	strv_add(sv, "--unshare-ipc");
	strv_add(sv, "--unshare-uts");
	strv_add(sv, "--hostname");
	strv_add(sv, host_name);
	add_mounts(sv, e);
	strv_add(sv, "--chdir");
	strv_add(sv, e->ws);
	add_sandbox_env(sv, envp);
	strv_add(sv, "--info-fd");
	strv_add(sv, "3");
	strv_add(sv, "--");
}

/*
 * Start the tmux server with the session; with install, its first window
 * runs install.sh.  Writes notes and the launch result to the log.
 */
static int
launch(struct lenv *e, const struct dp_env_spec *spec, struct dp_err *err)
{
	struct strv	 sv = { 0 };
	struct dp_buf	 notes = { 0 }, out = { 0 };
	struct spawn	 sp = { 0 };
	char		**envp = NULL, tail[512];
	int		 lfd = -1, ifd = -1, st, rc = -1;
	bool		 sandbox = false;
	pid_t		 root = 0;

	if (host.tmux[0] == '\0') {
		dp_err_set(err, ENOENT, "tmux is not installed");
		goto out;
	}
	/* A fresh start: nothing of an earlier run survives but home. */
	if (exists(e->sock) && server_up(e)) {
		struct dp_err	 ignore = { 0 };

		tmux_call(e, NULL, &ignore, "kill-server",
		    NULL, NULL, NULL);
	}
	kill_leftovers(e);
	(void)unlink(e->sock);
	(void)unlink(e->pidfile);
	(void)unlink(e->mstate);

	if (!dp_cfg.drivers_local_sandbox) {
		dp_buf_printf(&notes, "devpocket: WARNING: sandbox disabled "
		    "([drivers] local_sandbox = false): the environment runs "
		    "unconfined as %s\n", e->user);
		dp_warn("environment %s: sandbox disabled by [drivers] "
		    "local_sandbox; running unconfined as %s", e->id, e->user);
	} else if (host.bwrap[0] == '\0') {
		dp_buf_printf(&notes, "devpocket: WARNING: bubblewrap is not "
		    "installed: the environment runs unconfined as %s\n",
		    e->user);
		dp_warn("environment %s: /usr/bin/bwrap missing; running "
		    "unconfined as %s", e->id, e->user);
	} else if (!bwrap_works(e)) {
		/*
		 * Installed but refused (user namespaces restricted, or a
		 * service manager's hardening: ProtectHostname,
		 * ProtectKernelTunables): never run unconfined on the quiet.
		 * No server starts; the install fails with the reason.
		 */
		dp_buf_printf(&notes, "devpocket: bubblewrap is installed but "
		    "does not work here for %s (user namespaces restricted, "
		    "or the service's hardening)\n" DP_MARK "fail the sandbox "
		    "does not work on this host (set [drivers] local_sandbox "
		    "= false to run unconfined)\n", e->user);
		dp_warn("environment %s: bwrap fails for %s; not started "
		    "(set [drivers] local_sandbox = false to run unconfined)",
		    e->id, e->user);
		rc = reset_log(e, notes.s, err);
		goto out;
	} else {
		sandbox = true;
		dp_buf_printf(&notes, "devpocket: sandbox: bubblewrap (own pid, "
		    "ipc and uts namespaces, read-only system, private /tmp, "
		    "writable home) as %s\n", e->user);
	}
	set_limits(e, spec, &notes);
	write_launch_record(e, sandbox);
	envp = build_env(e, spec, &notes);
	if (write_conf(e, err) == -1 || write_install(e, spec, err) == -1 ||
	    reset_log(e, notes.s, err) == -1)
		goto out;

	if (sandbox)
		add_sandbox(&sv, e, envp);
	strv_add(&sv, host.tmux);
	strv_add(&sv, "-S");
	strv_add(&sv, e->sock);
	strv_add(&sv, "-f");
	strv_add(&sv, e->conf);
	strv_add(&sv, "new-session");
	strv_add(&sv, "-d");
	strv_add(&sv, "-s");
	strv_add(&sv, e->session);
	strv_add(&sv, "-x");
	strv_add(&sv, "80");
	strv_add(&sv, "-y");
	strv_add(&sv, "24");
	strv_add(&sv, "-c");
	strv_add(&sv, e->ws);
	/* Two arguments: tmux executes them directly, no shell parsing. */
	strv_add(&sv, "/bin/sh");
	strv_add(&sv, e->script);

	lfd = open(e->launchlog, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	ifd = open(e->launchinfo, O_RDWR | O_CREAT | O_TRUNC | O_NOFOLLOW |
	    O_CLOEXEC, 0644);
	if (lfd == -1 || ifd == -1) {
		dp_err_set(err, errno, "%s: %s", e->dir, strerror(errno));
		goto out;
	}
	/* The environment user writes the log from the child.  The info
	 * stays root's: bwrap writes it through the descriptor, and its
	 * child-pid is whom stop kills. */
	if (e->drop && fchown(lfd, e->uid, e->gid) == -1) {
		dp_err_set(err, errno, "chown: %s", strerror(errno));
		goto out;
	}
	sp.argv = sv.v;
	sp.envp = sandbox ? (char **)min_env : envp;
	sp.cwd = e->ws;
	sp.cgroup = true;
	sp.limits = true;
	sp.out = -1;
	sp.err = lfd;
	sp.info = sandbox ? ifd : -1;
	if (run(e, &sp, NULL, LAUNCH_TIMEOUT_MS, &st, err) == -1)
		goto out;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		ssize_t	 n = read_small(e->launchlog, tail, sizeof(tail));
		char	*nlp;

		while (n > 0 && (tail[n - 1] == '\n' || tail[n - 1] == ' '))
			tail[--n] = '\0';
		nlp = strrchr(tail, '\n');
		dp_err_set(err, EIO, "tmux did not start: %s",
		    n > 0 ? (nlp ? nlp + 1 : tail) : "exit status");
		goto out;
	}
	/* The process the metrics and stop fall back on without a cgroup. */
	if (sandbox)
		root = bwrap_child_pid(e);
	else {
		char		*argv[] = { host.tmux, "-S", (char *)e->sock,
		    "display-message", "-p", "-t", (char *)e->session,
		    "#{pid}", NULL };
		struct spawn	 sp2 = { 0 };
		struct strv	 sv2 = { 0 };

		dp_buf_reset(&out);
		if (client_prepare(e, &sp2, argv, false, &sv2, err) == 0) {
			sp2.cwd = "/";
			sp2.out = sp2.err = sp2.info = -1;
			if (run(e, &sp2, &out, CMD_TIMEOUT_MS, &st, err) == 0 &&
			    out.s != NULL)
				root = (pid_t)strtol(out.s, NULL, 10);
			client_done(&sp2, &sv2);
		}
	}
	record_root(e, root);
	if (write_state(e, "running\n", err) == -1)
		goto out;
	rc = 0;
out:
	if (lfd != -1)
		close(lfd);
	if (ifd != -1)
		close(ifd);
	strv_free(sv.v);
	strv_free(envp);
	dp_buf_release(&notes);
	dp_buf_release(&out);
	return rc;
}

/* An exclusive lock on the folder's lock file for one operation. */
static int
lock_env(const struct lenv *e, struct dp_err *err)
{
	int	 fd;

	fd = open(e->lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1) {
		dp_err_set(err, errno, "%s: %s", e->lock, strerror(errno));
		return -1;
	}
	while (flock(fd, LOCK_EX) == -1 && errno == EINTR)
		;
	return fd;
}

/* --- the operations ------------------------------------------------------ */

static int
local_start(const struct dp_cluster_conn *c, const struct dp_env_spec *spec,
    struct dp_err *err)
{
	struct lenv	 e;
	int		 lk = -1, rc = -1;

	if (lenv_init(&e, spec, err) == -1 || make_folders(&e, err) == -1 ||
	    (lk = lock_env(&e, err)) == -1)
		goto out;
	/* A retried start finds the server up: the install already runs. */
	if (server_up(&e)) {
		rc = 0;
		goto out;
	}
	rc = launch(&e, spec, err);
out:
	if (lk != -1)
		close(lk);
	return rc;
}

static int
local_provision(const struct dp_cluster_conn *c,
    const struct dp_env_spec *spec, struct dp_err *err)
{
	return local_start(c, spec, err);
}

static int
stop_locked(struct lenv *e, struct dp_err *err)
{
	struct dp_err	 ignore = { 0 };

	if (server_up(e))
		tmux_call(e, NULL, &ignore, "kill-server",
		    NULL, NULL, NULL);
	kill_leftovers(e);
	cg_prune();
	(void)unlink(e->sock);
	(void)unlink(e->pidfile);
	(void)unlink(e->mstate);
	return write_state(e, "stopped\n", err);
}

static int
local_stop(const struct dp_cluster_conn *c, const struct dp_env_spec *spec,
    struct dp_err *err)
{
	struct lenv	 e;
	int		 lk = -1, rc = -1;

	if (lenv_init(&e, spec, err) == -1)
		goto out;
	if (!exists(e.dir)) {
		rc = 0;
		goto out;
	}
	if ((lk = lock_env(&e, err)) == -1)
		goto out;
	rc = stop_locked(&e, err);
out:
	if (lk != -1)
		close(lk);
	return rc;
}

static int
local_destroy(const struct dp_cluster_conn *c, const struct dp_env_spec *spec,
    struct dp_err *err)
{
	struct lenv	 e;
	struct spawn	 sp = { 0 };
	char		*argv[] = { host.rm, "-rf", "--one-file-system", "--",
	    e.dir, NULL };
	int		 lk = -1, rc = -1, st;

	if (lenv_init(&e, spec, err) == -1)
		goto out;
	if (!exists(e.dir)) {
		kill_leftovers(&e);	/* a cgroup left by a crash */
		rc = 0;
		goto out;
	}
	if ((lk = lock_env(&e, err)) == -1 || stop_locked(&e, err) == -1)
		goto out;
	/* GNU rm walks a hostile tree safely (openat, no symlinks). */
	argv[0] = host.rm;
	sp.argv = argv;
	sp.envp = (char **)min_env;
	sp.cwd = "/";
	sp.root = true;
	sp.out = sp.err = sp.info = -1;
	if (host.rm[0] == '\0') {
		dp_err_set(err, ENOENT, "rm is not installed");
		goto out;
	}
	if (run(&e, &sp, NULL, 600 * 1000, &st, err) == -1)
		goto out;
	if (exists(e.dir)) {
		dp_err_set(err, EIO, "%s could not be removed", e.dir);
		goto out;
	}
	rc = 0;
out:
	if (lk != -1)
		close(lk);
	return rc;
}

static int
local_status(const struct dp_cluster_conn *c, const struct dp_env_spec *spec,
    enum dp_phase *phase, struct dp_err *err)
{
	struct lenv	 e;
	char		 buf[32];

	if (lenv_init(&e, spec, err) == -1)
		return -1;
	if (!exists(e.dir))
		*phase = DP_PHASE_ABSENT;
	else if (server_up(&e))
		*phase = DP_PHASE_RUNNING;
	else if (read_small(e.state, buf, sizeof(buf)) > 0 &&
	    strncmp(buf, "running", 7) == 0)
		*phase = DP_PHASE_FAILED;
	else
		*phase = DP_PHASE_STOPPED;
	return 0;
}

/* Storage walk state (nftw has no user pointer). */
static struct {
	int64_t	 bytes, deadline;
	long	 n;
} walk;

static int
walk_cb(const char *path, const struct stat *st, int flag, struct FTW *f)
{
	if (flag == FTW_F || flag == FTW_D || flag == FTW_DP ||
	    flag == FTW_SL || flag == FTW_SLN)
		walk.bytes += (int64_t)st->st_blocks * 512;
	if (++walk.n % 1024 == 0 && (dp_mono_ms() > walk.deadline ||
	    walk.n > WALK_ENTRIES))
		return 1;
	return 0;
}

static int64_t
cg_value(const struct lenv *e, const char *file, const char *key)
{
	char	 path[LPATH], buf[8192], *p;
	size_t	 klen;

	if (dp_sfmt(path, sizeof(path), "%s/%s", e->cg, file) == -1 ||
	    read_small(path, buf, sizeof(buf)) <= 0)
		return -1;
	if (key == NULL)
		return strtoll(buf, NULL, 10);
	klen = strlen(key);
	for (p = buf; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
			return strtoll(p + klen + 1, NULL, 10);
	}
	return -1;
}

static int
local_metrics(const struct dp_cluster_conn *c, const struct dp_env_spec *spec,
    struct dp_sample *s, struct dp_err *err)
{
	struct lenv	 e;
	struct proc	*v = NULL;
	size_t		 n = 0, i;
	char		 buf[128], *end;
	double		 now, t0, cpu0, cores, dt;
	int64_t		 usec = -1, mem = -1, cur, inact;
	long		 tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
	unsigned long long ticks = 0;
	long		 rss = 0;
	int		 rc = -1;

	memset(s, 0, sizeof(*s));
	if (lenv_init(&e, spec, err) == -1)
		goto out;
	if (!exists(e.dir)) {
		rc = 0;
		goto out;
	}
	if (e.cg[0] != '\0' && exists(e.cg)) {
		usec = cg_value(&e, "cpu.stat", "usage_usec");
		if ((cur = cg_value(&e, "memory.current", NULL)) >= 0) {
			inact = cg_value(&e, "memory.stat", "inactive_file");
			mem = cur - (inact > 0 && inact < cur ? inact : 0);
		}
	} else
		e.cg[0] = '\0';
	if (usec < 0 || mem < 0) {
		v = proc_scan(&n);
		proc_mark(&e, v, n);
		for (i = 0; i < n; i++) {
			if (!v[i].mine)
				continue;
			ticks += v[i].ticks;
			rss += v[i].rss;
		}
		if (usec < 0)
			usec = (int64_t)(ticks * 1000000ULL /
			    (unsigned long long)(tck > 0 ? tck : 100));
		if (mem < 0)
			mem = (int64_t)rss * page;
	}
	now = dp_now();
	if (read_small(e.mstate, buf, sizeof(buf)) > 0) {
		t0 = strtod(buf, &end);
		cpu0 = strtod(end, NULL);
		dt = now - t0;
		cores = spec->cpu_millicores > 0 ?
		    (double)spec->cpu_millicores / 1000.0 :
		    (double)sysconf(_SC_NPROCESSORS_ONLN);
		if (dt > 0.01 && (double)usec >= cpu0 && cores > 0)
			s->cpu_usage = ((double)usec - cpu0) / 1e6 / dt /
			    cores * 100.0;
	}
	snprintf(buf, sizeof(buf), "%.6f %lld\n", now, (long long)usec);
	(void)write_file(e.mstate, buf, strlen(buf), 0644, err);
	if (spec->memory_bytes > 0)
		s->memory_usage = (double)mem / (double)spec->memory_bytes *
		    100.0;
	walk.bytes = 0;
	walk.n = 0;
	walk.deadline = dp_mono_ms() + WALK_MS;
	if (exists(e.home))
		(void)nftw(e.home, walk_cb, 32, FTW_PHYS | FTW_MOUNT);
	s->storage_usage = walk.bytes;
	s->network_rx = s->network_tx = 0;
	rc = 0;
out:
	free(v);
	return rc;
}

static int
local_install_log(const struct dp_cluster_conn *c,
    const struct dp_env_spec *spec, int64_t offset, struct dp_buf *out,
    int64_t *next, struct dp_err *err)
{
	struct lenv	 e;
	struct stat	 st;
	char		*buf = NULL, *nl;
	ssize_t		 r;
	size_t		 want, got = 0;
	int		 fd = -1, rc = -1;

	*next = offset;
	if (lenv_init(&e, spec, err) == -1)
		goto out;
	if (offset < 0) {
		dp_err_set(err, EINVAL, "negative offset");
		goto out;
	}
	if ((fd = open(e.log, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		if (errno == ENOENT) {
			rc = 0;
			goto out;
		}
		dp_err_set(err, errno, "%s: %s", e.log, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		dp_err_set(err, EIO, "%s: not a regular file", e.log);
		goto out;
	}
	if (offset >= st.st_size) {
		rc = 0;
		goto out;
	}
	want = (size_t)(st.st_size - offset);
	if (want > LOG_CHUNK_MAX)
		want = LOG_CHUNK_MAX;
	buf = dp_xmalloc(want);
	while (got < want) {
		r = pread(fd, buf + got, want - got, offset + (off_t)got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			dp_err_set(err, errno, "%s: %s", e.log, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	nl = got > 0 ? memrchr(buf, '\n', got) : NULL;
	if (nl != NULL)
		got = (size_t)(nl - buf) + 1;
	else if (got < LOG_CHUNK_MAX)
		got = 0;	/* a partial line: wait for its end */
	/* else one line longer than a chunk: hand it over in pieces */
	dp_buf_add(out, buf, got);
	*next = offset + (int64_t)got;
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	free(buf);
	return rc;
}

/*
 * True when a server accepts connections on the environment's tmux
 * socket, without starting a tmux client (a server killed outright
 * leaves its socket behind: ECONNREFUSED).  Only a full listen queue
 * (EAGAIN) counts as up besides a connection; anything else is down, so
 * that an attach never starts a server of its own outside the sandbox.
 */
static bool
sock_listening(const struct lenv *e)
{
	struct sockaddr_un	 sa;
	size_t			 len = strlen(e->sock);
	int			 fd;
	bool			 up = false;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (len >= sizeof(sa.sun_path))
		goto out;
	memcpy(sa.sun_path, e->sock, len + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto out;
	up = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
	    errno == EAGAIN;
	close(fd);
out:
	return up;
}

/*
 * attach_probe: has-session started now, its answer taken by the attach
 * of the same environment (a tmux client that only asks: the session's
 * clients see nothing).  One pending per process.
 */
static struct {
	char	 id[25];
	pid_t	 pid;		/* 0: none */
} probe;

void
dp_local_probe_drop(void)
{
	int64_t	 deadline = dp_mono_ms() + PROBE_GRACE_MS;

	if (probe.pid > 0) {
		/* has-session ends in milliseconds: a bwrap killed while
		 * it sets its sandbox up can leave the sandbox's init
		 * behind, so let it end, then kill its whole group. */
		while (waitpid(probe.pid, NULL, WNOHANG) == 0) {
			if (dp_mono_ms() >= deadline) {
				(void)kill(-probe.pid, SIGKILL);
				(void)waitpid(probe.pid, NULL, 0);
				break;
			}
			usleep(500);
		}
	}
	probe.pid = 0;
	probe.id[0] = '\0';
}

/* Start has-session for e (the socket is there); 0 or -1. */
static int
probe_start(const struct lenv *e, struct dp_err *err)
{
	struct spawn	 sp = { 0 };
	char		*argv[] = { host.tmux, "-S", (char *)e->sock,
	    "has-session", "-t", (char *)e->session, NULL };
	struct strv	 sv = { 0 };
	pid_t		 pid;

	dp_local_probe_drop();
	if (client_prepare(e, &sp, argv, false, &sv, err) == -1)
		return -1;
	sp.pgrp = true;
	sp.cwd = "/";
	sp.out = sp.err = sp.info = -1;
	if ((pid = fork_child(e, &sp, -1)) == -1) {
		dp_err_set(err, errno, "fork: %s", strerror(errno));
		client_done(&sp, &sv);
		return -1;
	}
	client_done(&sp, &sv);
	memcpy(probe.id, e->id, sizeof(probe.id));
	probe.pid = pid;
	return 0;
}

static int
local_attach_probe(const struct dp_cluster_conn *c,
    const struct dp_env_spec *spec, struct dp_err *err)
{
	struct lenv	 e;
	struct stat	 st;

	dp_local_probe_drop();
	if (lenv_init(&e, spec, err) == -1)
		return -1;
	if (host.tmux[0] == '\0' || lstat(e.sock, &st) == -1 ||
	    !S_ISSOCK(st.st_mode))
		return 0;	/* attach says why */
	return probe_start(&e, err);
}

/*
 * The pending probe's answer for environment id: has-session's exit
 * status (bounded wait); -2 when none is pending for it (a probe of
 * another environment is dropped).
 */
static int
probe_take(const char *id)
{
	int64_t	 deadline = dp_mono_ms() + CMD_TIMEOUT_MS;
	int	 st = 0, rc = -1;
	pid_t	 w;

	if (probe.pid <= 0 || strcmp(probe.id, id) != 0) {
		dp_local_probe_drop();
		return -2;
	}
	while ((w = waitpid(probe.pid, &st, WNOHANG)) == 0 &&
	    dp_mono_ms() < deadline)
		usleep(200);
	if (w == probe.pid) {
		rc = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
		probe.pid = 0;
	}
	dp_local_probe_drop();
	return rc;
}

/*
 * The terminal's tmux client on a new pty (argv: its command), born in
 * the environment's cgroup: it lives as long as the socket and is
 * accounted, limited and killed (stop) with the environment.  The pid,
 * with the pty's master in *master; -1 with err.
 */
static pid_t
client_spawn(const struct lenv *e, char **argv, int cols, int rows,
    int *master, struct dp_err *err)
{
	struct winsize	 wsz = { 0 };
	struct spawn	 sp = { 0 };
	struct strv	 sv = { 0 };
	int		 slave = -1;
	pid_t		 pid;

	*master = -1;
	wsz.ws_col = (unsigned short)(cols >= 1 && cols <= 1000 ? cols : 80);
	wsz.ws_row = (unsigned short)(rows >= 1 && rows <= 1000 ? rows : 24);
	if (client_prepare(e, &sp, argv, true, &sv, err) == -1)
		return -1;
	sp.cwd = exists(e->ws) ? e->ws : e->home;
	sp.keep_stdio = true;
	sp.out = sp.err = sp.info = -1;
	if (openpty(master, &slave, NULL, NULL, &wsz) == -1) {
		dp_err_set(err, errno, "openpty: %s", strerror(errno));
		client_done(&sp, &sv);
		return -1;
	}
	(void)fcntl(*master, F_SETFD, FD_CLOEXEC);
	(void)fcntl(slave, F_SETFD, FD_CLOEXEC);
	if ((pid = fork_child(e, &sp, slave)) == -1) {
		dp_err_set(err, errno, "fork: %s", strerror(errno));
		close(*master);
		*master = -1;
	}
	close(slave);
	client_done(&sp, &sv);
	return pid;
}

/*
 * The attach-session client's first output: a client that joined the
 * session starts by setting up the terminal (an escape sequence); one
 * that did not find it prints tmux's error and exits.  True when joined,
 * with what was read in a->pre.
 */
static bool
first_output(int master, struct dp_attach *a)
{
	struct pollfd	 pfd = { .fd = master, .events = POLLIN };
	char		 buf[16384];
	ssize_t		 n = -1;
	int64_t		 end = dp_mono_ms() + CMD_TIMEOUT_MS, left;
	int		 r;

	/* (The master blocks: read only what poll says is there.) */
	while ((left = end - dp_mono_ms()) > 0) {
		if ((r = poll(&pfd, 1, (int)left)) < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		if ((n = read(master, buf, sizeof(buf))) < 0 &&
		    (errno == EINTR || errno == EAGAIN))
			continue;
		break;
	}
	if (n <= 0 || buf[0] != '\033')
		return false;
	a->pre = dp_xmalloc((size_t)n);
	memcpy(a->pre, buf, (size_t)n);
	a->npre = (size_t)n;
	return true;
}

/*
 * The terminal's own client, attach-session, joins the session if it is
 * there.  Whether it was (existed) comes from has-session when
 * attach_probe started one for this environment, else from the client's
 * first output (first_output).  When the session is not there the
 * attach-session client fails (and is ended), and the terminal gets
 * new-session -A instead, which makes it; when the server is not there
 * either (ESRCH at once, no client forked when there is no socket at
 * all), the environment is not running.  Neither client may start a
 * server (-N).
 */
static int
local_attach(const struct dp_cluster_conn *c, const struct dp_env_spec *spec,
    int cols, int rows, struct dp_attach *a, struct dp_err *err)
{
	struct lenv	 e;
	struct stat	 st;
	struct dp_err	 cerr = { 0 };
	char		 target[64];
	/* -N: never a server of their own (one outside the sandbox). */
	char		*join[] = { host.tmux, "-N", "-S", e.sock,
	    "attach-session", "-t", target, NULL };
	char		*make[] = { host.tmux, "-N", "-S", e.sock, "new-session",
	    "-A", "-s", e.session, "-c", e.ws, NULL };
	int		 master = -1, rc = -1, r;
	pid_t		 pid = -1;

	a->fd = -1;
	a->pid = -1;
	a->priv = NULL;
	a->existed = false;
	a->pre = NULL;
	a->npre = 0;
	if (lenv_init(&e, spec, err) == -1) {
		dp_local_probe_drop();
		goto out;
	}
	join[0] = make[0] = host.tmux;
	if (host.tmux[0] == '\0') {
		dp_err_set(err, ENOENT, "tmux is not installed");
		goto out;
	}
	if (!exists(e.dir) || lstat(e.sock, &st) == -1 ||
	    !S_ISSOCK(st.st_mode)) {
		dp_local_probe_drop();
		dp_err_set(err, ESRCH, "environment is not running");
		goto out;
	}
	/* "=": the session of exactly this name. */
	if (dp_sfmt(target, sizeof(target), "=%s", e.session) == -1) {
		dp_err_set(err, ENAMETOOLONG, "session name too long");
		goto out;
	}
	/* The user's variables are the server's (its start set them); a
	 * client on the host must not run with them (LD_PRELOAD…). */
	pid = client_spawn(&e, join, cols, rows, &master, err);
	if ((r = probe_take(e.id)) == -2)
		r = pid > 0 ? (first_output(master, a) ? 0 : 1) :
		    tmux_call(&e, NULL, &cerr,
		    "has-session", "-t", e.session, NULL);
	a->existed = r == 0;
	if (a->existed && pid > 0)
		goto done;
	if (pid > 0) {
		(void)kill(pid, SIGKILL);
		(void)waitpid(pid, NULL, 0);
		close(master);
		master = -1;
	}
	if (!a->existed && !sock_listening(&e)) {
		dp_err_set(err, ESRCH, "environment is not running");
		goto out;
	}
	if ((pid = client_spawn(&e, make, cols, rows, &master, err)) == -1)
		goto out;
done:
	a->fd = master;
	a->pid = (int)pid;
	master = -1;
	rc = 0;
out:
	if (master != -1)
		close(master);
	return rc;
}

static int
local_probe(const struct dp_cluster_conn *c, struct dp_probe *p,
    struct dp_err *err)
{
	struct statvfs	 vfs;
	char		 buf[4096], *m;
	const char	*root = dp_cfg.drivers_local_root;
	int64_t		 t0 = dp_mono_ms();
	long		 ncpu;
	int		 rc = -1;

	p->node_count = 1;
	p->cpu_cores = p->memory_gib = p->storage_gib = -1;
	host_init();
	if (host.tmux[0] == '\0') {
		dp_err_set(err, ENOENT, "tmux is not installed");
		goto out;
	}
	if (root == NULL || root[0] != '/') {
		dp_err_set(err, EINVAL, "[drivers] local_root is not absolute");
		goto out;
	}
	if (mkdir_p(root, 0755, err) == -1)
		goto out;
	if (access(root, W_OK | X_OK) == -1) {
		dp_err_set(err, errno, "%s is not writable: %s", root,
		    strerror(errno));
		goto out;
	}
	if ((ncpu = sysconf(_SC_NPROCESSORS_ONLN)) > 0)
		p->cpu_cores = (double)ncpu;
	if (read_small("/proc/meminfo", buf, sizeof(buf)) > 0 &&
	    (m = strstr(buf, "MemTotal:")) != NULL)
		p->memory_gib = strtod(m + 9, NULL) / (1024.0 * 1024.0);
	if (statvfs(root, &vfs) == 0)
		p->storage_gib = (double)vfs.f_bavail * (double)vfs.f_frsize /
		    (1024.0 * 1024.0 * 1024.0);
	rc = 0;
out:
	p->response_time_ms = dp_mono_ms() - t0;
	return rc;
}

const struct dp_driver dp_driver_local = {
	.name = "local",
	.provision = local_provision,
	.start = local_start,
	.stop = local_stop,
	.destroy = local_destroy,
	.status = local_status,
	.metrics = local_metrics,
	.install_log = local_install_log,
	.container_log = NULL,	/* output lives in the tmux panes */
	.attach = local_attach,
	.attach_probe = local_attach_probe,
	.probe = local_probe,
};
