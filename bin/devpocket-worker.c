/* bin/devpocket-worker.c: runs queued jobs (LISTEN devpocket_jobs) and housekeeping */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "db.h"
#include "jobs.h"
#include "auth.h"
#include "lifecycle.h"
#include "log.h"
#include "mail.h"
#include "util.h"

/* Longest wait for a notification before looking at the table anyway. */
#define POLL_MS		5000
/* Recovery of stale jobs and the retention purge. */
#define HOUSEKEEP_MS	60000
/* A job running longer than this belongs to a dead worker. */
#define STALE_SECONDS	600
#define BACKOFF_MIN_MS	1000
#define BACKOFF_MAX_MS	30000

/* Every kind of job this worker runs. */
static const struct dp_job_kind kinds[] = {
	{ "mail",	dp_job_mail },
	{ "auth.reset",	dp_job_auth_reset },
	DP_LIFECYCLE_KINDS,
};

/* This host's name, the first part of the worker id. */
static char	 hostname[256];

static volatile sig_atomic_t	 stopping;
/* Self-pipe: the signal handler makes poll() return at once. */
static int			 wakefd[2] = { -1, -1 };

static void
on_signal(int sig)
{
	int	 saved = errno;

	(void)sig;
	stopping = 1;
	(void)!write(wakefd[1], "", 1);
	errno = saved;
}

static void
usage(void)
{
	fprintf(stderr, "usage: devpocket-worker [--config PATH] [--once]\n");
}

static int
setup_signals(void)
{
	struct sigaction	 sa;

	if (pipe2(wakefd, O_NONBLOCK | O_CLOEXEC) == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	/* libpq and libcurl retry interrupted calls: keep SA_RESTART. */
	sa.sa_flags = SA_RESTART;
	if (sigaction(SIGTERM, &sa, NULL) == -1 ||
	    sigaction(SIGINT, &sa, NULL) == -1)
		return -1;
	sa.sa_handler = SIG_IGN;
	return sigaction(SIGPIPE, &sa, NULL);
}

/* Wait up to ms for fd (if >= 0) to be readable or a signal; drains the pipe. */
static void
wait_for(int fd, int ms)
{
	struct pollfd	 p[2];
	char		 buf[64];
	nfds_t		 n = 1;

	if (stopping)
		return;
	p[0].fd = wakefd[0];
	p[0].events = POLLIN;
	if (fd >= 0) {
		p[1].fd = fd;
		p[1].events = POLLIN;
		n = 2;
	}
	(void)poll(p, n, ms < 0 ? 0 : ms);
	while (read(wakefd[0], buf, sizeof(buf)) > 0)
		;
}

/* Free every pending notification; they only say "look at the table". */
static void
drain_notifies(PGconn *c)
{
	PGnotify	*n;

	while ((n = PQnotifies(c)) != NULL)
		PQfreemem(n);
}

/* LISTEN on the current backend; 0 or -1. */
static int
listen_jobs(struct dp_db *db, int *listen_pid)
{
	PGresult	*r = dp_db_simple(db, "LISTEN " DP_JOBS_CHANNEL);
	int		 rc = dp_db_ok(r) ? 0 : -1;

	PQclear(r);
	if (rc == 0)
		*listen_pid = PQbackendPID(dp_db_conn(db));
	return rc;
}

static struct dp_db *
connect_listen(int *listen_pid)
{
	struct dp_err	 err = { 0 };
	struct dp_db	*db;

	if ((db = dp_db_open(dp_cfg.db_url, &err)) == NULL) {
		dp_error("%.*s", (int)strcspn(err.msg, "\n"), err.msg);
		return NULL;
	}
	if (listen_jobs(db, listen_pid) == -1) {
		dp_db_free(db);
		return NULL;
	}
	return db;
}

/*
 * Jobs of a dead worker: at once when it ran on this host (its pid is
 * gone: a crash and restart), after STALE_SECONDS when elsewhere.
 */
static void
housekeeping(struct dp_db *db)
{
	(void)dp_lifecycle_recover(db, hostname);
	(void)dp_jobs_recover(db, STALE_SECONDS);
	(void)dp_jobs_purge(db, &dp_cfg);
}

/* The main loop; returns the exit status. */
static int
work(const char *wid, bool once)
{
	struct dp_db	*db = NULL;
	PGconn		*c;
	int64_t		 now, last_house = 0, last_reconcile = 0;
	int		 backoff = BACKOFF_MIN_MS, listen_pid = 0;
	int		 r = 0, timeout, status = 0;
	bool		 housekept = false, reconciled = false;

	while (!stopping) {
		if (db == NULL) {
			if ((db = connect_listen(&listen_pid)) == NULL) {
				if (once) {
					status = 1;
					break;
				}
				dp_warn("database unavailable; retrying in %d s",
				    backoff / 1000);
				wait_for(-1, backoff);
				backoff = backoff * 2 > BACKOFF_MAX_MS ?
				    BACKOFF_MAX_MS : backoff * 2;
				continue;
			}
			if (backoff > BACKOFF_MIN_MS)
				dp_info("database connection restored");
			backoff = BACKOFF_MIN_MS;
		}
		c = dp_db_conn(db);
		/* lib/db.c may have reconnected under us: LISTEN again. */
		if (PQbackendPID(c) != listen_pid &&
		    listen_jobs(db, &listen_pid) == -1) {
			dp_db_free(db);
			db = NULL;
			continue;
		}
		now = dp_mono_ms();
		if (!once && (!housekept || now - last_house >= HOUSEKEEP_MS)) {
			housekeeping(db);
			last_house = now;
			housekept = true;
		}
		while (!stopping &&
		    (r = dp_jobs_claim_and_run(db, kinds, DP_NITEMS(kinds),
		    wid)) == 1) {
			if (PQconsumeInput(dp_db_conn(db)) == 1)
				drain_notifies(dp_db_conn(db));
			/* A long queue (slow mail, a slow cluster) must not
			 * hold back the reconcile: idle stops, install
			 * timeouts and samples get their turn between jobs. */
			if (!once && reconciled && dp_mono_ms() -
			    last_reconcile >= DP_RECONCILE_MS)
				break;
		}
		if (stopping)
			break;
		if (r == -1) {
			if (once) {
				status = 1;
				break;
			}
			if (PQstatus(dp_db_conn(db)) != CONNECTION_OK) {
				dp_warn("database connection lost");
				dp_db_free(db);
				db = NULL;
				continue;
			}
			/* Up but failing (not migrated?): do not spin. */
			wait_for(-1, POLL_MS);
			continue;
		}
		if (once)
			break;
		/* Environments: install logs, status, idle, samples, purge. */
		now = dp_mono_ms();
		if (!reconciled || now - last_reconcile >= DP_RECONCILE_MS) {
			(void)dp_lifecycle_reconcile(db);
			last_reconcile = dp_mono_ms();
			reconciled = true;
			if (stopping)
				break;
			/* A reconcile may queue jobs (env.stop): run them. */
			continue;
		}
		timeout = POLL_MS;
		if (HOUSEKEEP_MS - (now - last_house) < timeout)
			timeout = (int)(HOUSEKEEP_MS - (now - last_house));
		if (DP_RECONCILE_MS - (now - last_reconcile) < timeout)
			timeout = (int)(DP_RECONCILE_MS -
			    (now - last_reconcile));
		c = dp_db_conn(db);
		wait_for(PQsocket(c), timeout);
		if (PQconsumeInput(c) == 0) {
			dp_warn("database connection lost: %.*s",
			    (int)strcspn(PQerrorMessage(c), "\n"),
			    PQerrorMessage(c));
			dp_db_free(db);
			db = NULL;
			continue;
		}
		drain_notifies(c);
	}
	dp_db_free(db);
	return status;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "once",	no_argument,		NULL, 'o' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	struct dp_err	 err = { 0 };
	const char	*path = NULL, *env;
	char		 wid[320], secs[32];
	bool		 once = false, required;
	int		 ch, status = 1;

	while ((ch = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'o':
			once = true;
			break;
		case 'h':
			usage();
			return 0;
		default:
			usage();
			return 2;
		}
	}
	if (optind != argc) {
		usage();
		return 2;
	}
	env = getenv("DEVPOCKET_CONF");
	required = path != NULL || (env != NULL && *env != '\0');
	if (dp_config_load(&dp_cfg, path, required, &err) == -1 ||
	    dp_mail_config_check(&dp_cfg, &err) == -1) {
		fprintf(stderr, "devpocket-worker: %s\n", err.msg);
		goto out;
	}
	/* Before any thread could exist: curl's own lazy init is not safe. */
	curl_global_init(CURL_GLOBAL_DEFAULT);
	dp_log_init("devpocket-worker", dp_cfg.web_log_format,
	    dp_cfg.web_log_level);
	/* libpq honours this for every connect, including reconnects. */
	(void)snprintf(secs, sizeof(secs), "%lld",
	    (long long)dp_cfg.db_connect_timeout);
	(void)setenv("PGCONNECT_TIMEOUT", secs, 0);
	if (gethostname(hostname, sizeof(hostname)) == -1)
		(void)snprintf(hostname, sizeof(hostname), "localhost");
	hostname[sizeof(hostname) - 1] = '\0';
	(void)snprintf(wid, sizeof(wid), "%s:%ld", hostname, (long)getpid());
	if (setup_signals() == -1) {
		dp_error("signals: %s", strerror(errno));
		goto out;
	}
	dp_info("worker %s started%s", wid, once ? " (once)" : "");
	status = work(wid, once);
	dp_info("worker %s stopped", wid);
out:
	dp_config_release(&dp_cfg);
	return status;
}
