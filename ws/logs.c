/* ws/logs.c: websocketd program for /api/v1/ws/logs/{id}: replay and follow an environment's log */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "log.h"
#include "wsapp.h"

#define POLL_MS		500	/* new entries are looked for this often */
#define PENDING_MAX	(1024 * 1024)	/* stdout backlog that stops reading */
#define FINAL_FLUSH_MS	2000	/* for the backlog once the pump ends */
#define POLL_BATCH	500	/* entries per poll (its LIMIT) */
#define SESSION_MS	30000	/* login session re-check */

static volatile sig_atomic_t got_term, got_int;

struct logs {
	struct dp_wsreq		 req;
	struct dp_wsuser	 user;
	struct dp_wsenv		 env;
	struct dp_db		*db;
	char			 slot[25];
	struct dp_buf		 out;
	struct dp_wslines	 lines;
	char			 last_id[24];	/* newest entry sent */
	char			*status;	/* last status seen */
	int64_t			 last_client, last_ping, last_poll, last_auth;
	int64_t			 ping_ms, idle_ms, check_ms;
	bool			 done;
	bool			 more;		/* a full batch: poll again */
	bool			 client_gone;	/* stdin ended or websocketd
						   stopped reading */
};

static void
on_signal(int sig)
{
	if (sig == SIGTERM)
		got_term = 1;
	else
		got_int = 1;
}

/*
 * Hand websocketd what it takes now.  In the pump stdout is non-blocking:
 * a client that stops reading leaves the rest in l->out (entries are not
 * read past PENDING_MAX; they wait in the database) and timers go on.
 */
static void
flush_out(struct logs *l)
{
	if (l->out.len > 0 && dp_wsapp_flush_some(STDOUT_FILENO, &l->out) < 0)
		l->done = true;
}

static void
closing(struct logs *l, int code, const char *reason)
{
	dp_wsapp_close(&l->out, code, reason);
	flush_out(l);
	l->done = true;
}

/* ---- messages derived from entries -------------------------------------- */

static struct json_object *
env_msg(struct logs *l, const char *type)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "type", type);
	dp_json_str(o, "environment_id", l->env.id);
	return o;
}

static void
send_log(struct logs *l, const PGresult *r, int i)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "type", "log");
	dp_json_ts(o, "timestamp", dp_db_val(r, i, 1));
	dp_json_str(o, "level", dp_db_val(r, i, 2));
	dp_json_str(o, "message", dp_db_val(r, i, 3));
	dp_json_str(o, "source", dp_db_val(r, i, 4));
	dp_wsapp_msg(&l->out, o);
}

/*
 * "Running step <i>/<n>: <command>" → i and n; false for anything else.
 */
static bool
step_of(const char *m, int64_t *i, int64_t *n)
{
	char		 a[16], b[16];
	const char	*p, *slash, *colon;

	if (!dp_startswith(m, "Running step "))
		return false;
	p = m + 13;
	slash = strchr(p, '/');
	colon = slash ? strchr(slash, ':') : NULL;
	if (slash == NULL || colon == NULL || slash - p >= (long)sizeof(a) ||
	    colon - slash - 1 >= (long)sizeof(b))
		return false;
	snprintf(a, sizeof(a), "%.*s", (int)(slash - p), p);
	snprintf(b, sizeof(b), "%.*s", (int)(colon - slash - 1), slash + 1);
	return dp_parse_int64(a, 1, 100000, i) == 0 &&
	    dp_parse_int64(b, 1, 100000, n) == 0 && *i <= *n;
}

static void
send_step(struct logs *l, const char *message, int64_t progress)
{
	struct json_object	*o = env_msg(l, "installation_status");

	dp_json_str(o, "status", "installing");
	dp_json_str(o, "message", message);
	dp_json_int(o, "progress", progress);
	dp_wsapp_msg(&l->out, o);
}

/* A live install entry: step, warning, or output line. */
static void
send_install(struct logs *l, const PGresult *r, int i)
{
	struct json_object	*o;
	const char		*m = dp_db_val(r, i, 3);
	int64_t			 k, n;

	if (step_of(m, &k, &n)) {
		send_step(l, m, 100 * (k - 1) / n);
		return;
	}
	if (strcmp(dp_db_val(r, i, 2), "warning") == 0 &&
	    dp_startswith(m, "Command failed (exit ")) {
		o = env_msg(l, "installation_warning");
		dp_json_str(o, "warning", m);
		dp_json_bool(o, "is_critical", false);
		dp_wsapp_msg(&l->out, o);
		return;
	}
	o = env_msg(l, "installation_log");
	dp_json_str(o, "data", m);
	dp_json_ts(o, "timestamp", dp_db_val(r, i, 1));
	dp_wsapp_msg(&l->out, o);
}

/* The warnings of the latest install (since its first step). */
static struct json_object *
warnings(struct logs *l)
{
	static const char sql[] =
	    "SELECT message FROM environment_logs WHERE environment_id = $1 "
	    "AND source = 'install' AND level = 'warning' "
	    "AND message LIKE 'Command failed (exit %' "
	    "AND id > (SELECT coalesce(max(id), 0) FROM environment_logs "
	    "WHERE environment_id = $1 AND source = 'install' "
	    "AND message LIKE 'Running step 1/%') ORDER BY id";
	struct json_object	*a = json_object_new_array();
	PGresult		*r = dp_db_exec(l->db, sql, 1,
				    (const char *const[]){ l->env.id });
	int			 i;

	for (i = 0; dp_db_ok(r) && i < PQntuples(r); i++)
		json_object_array_add(a,
		    json_object_new_string(PQgetvalue(r, i, 0)));
	PQclear(r);
	return a;
}

/* The latest error entry's message, for installation_error. */
static char *
last_error(struct logs *l)
{
	static const char sql[] =
	    "SELECT message FROM environment_logs WHERE environment_id = $1 "
	    "AND level = 'error' ORDER BY id DESC LIMIT 1";
	PGresult	*r = dp_db_exec(l->db, sql, 1,
			    (const char *const[]){ l->env.id });
	char		*s;

	if (dp_db_ok(r) && PQntuples(r) == 1)
		s = dp_xstrdup(PQgetvalue(r, 0, 0));
	else
		s = dp_xstrdup("Installation failed");
	PQclear(r);
	return s;
}

/* A status change seen by the poll; at: its time (PostgreSQL's text). */
static void
status_changed(struct logs *l, const char *from, const char *to,
    const char *at)
{
	struct json_object	*o, *w;
	char			*e;
	bool			 partial;

	o = env_msg(l, "status");
	dp_json_str(o, "status", to);
	if (at != NULL)
		dp_json_ts(o, "timestamp", at);
	else {
		char	 ts[40];
		time_t	 now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);	/* purged: now */
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S.000000Z", &tm);
		dp_json_str(o, "timestamp", ts);
	}
	dp_wsapp_msg(&l->out, o);
	if (strcmp(to, "installing") == 0)
		send_step(l, "Environment installation in progress...", 0);
	else if (strcmp(to, "running") == 0 && from != NULL &&
	    (strcmp(from, "installing") == 0 ||
	    strcmp(from, "creating") == 0)) {
		w = warnings(l);
		partial = json_object_array_length(w) > 0;
		o = env_msg(l, "installation_complete");
		dp_json_str(o, "status", "running");
		dp_json_str(o, "installation_status",
		    partial ? "partial" : "success");
		dp_json_str(o, "message", partial ?
		    "Environment is running but some optional packages failed "
		    "to install. Check logs for details." :
		    "Environment setup completed successfully!");
		json_object_object_add(o, "warnings", w);
		dp_wsapp_msg(&l->out, o);
	} else if (strcmp(to, "error") == 0 && from != NULL &&
	    (strcmp(from, "installing") == 0 ||
	    strcmp(from, "creating") == 0)) {
		e = last_error(l);
		o = env_msg(l, "installation_error");
		dp_json_str(o, "error", e);
		dp_json_bool(o, "is_critical", true);
		dp_wsapp_msg(&l->out, o);
		free(e);
	}
}

/* ---- replay and follow -------------------------------------------------- */

#define ENTRY_COLS	"id, ts, level, message, source"

static int
replay(struct logs *l)
{
	static const char sql[] =
	    "SELECT " ENTRY_COLS " FROM (SELECT " ENTRY_COLS
	    " FROM environment_logs WHERE environment_id = $1 "
	    "AND id <= $3::bigint ORDER BY ts DESC, id DESC LIMIT $2::int) x "
	    "ORDER BY ts, id";
	static const char top[] =
	    "SELECT coalesce(max(id), 0) FROM environment_logs "
	    "WHERE environment_id = $1";
	/* The current install's step: after its "Compute allocated". */
	static const char step[] =
	    "SELECT message FROM environment_logs WHERE environment_id = $1 "
	    "AND source = 'install' AND message LIKE 'Running step %' "
	    "AND id > (SELECT coalesce(max(id), 0) FROM environment_logs "
	    "WHERE environment_id = $1 AND source = 'system' "
	    "AND message LIKE 'Compute allocated%') ORDER BY id DESC LIMIT 1";
	char		 n[16];
	const char	*p[3] = { l->env.id, n, l->last_id };
	PGresult	*r;
	int64_t		 k, tot;
	int		 i, rc = -1;

	/*
	 * The newest id first: the replay stops there and the live entries
	 * start after it, so that one committed in between is not lost
	 * (entries of an environment commit in id order: their writers
	 * hold its row).
	 */
	r = dp_db_exec(l->db, top, 1, p);
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	snprintf(l->last_id, sizeof(l->last_id), "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	snprintf(n, sizeof(n), "%d", l->req.lines);
	r = dp_db_exec(l->db, sql, 3, p);
	if (!dp_db_ok(r))
		goto out;
	for (i = 0; i < PQntuples(r); i++)
		send_log(l, r, i);
	PQclear(r);
	r = NULL;
	if (strcmp(l->env.status, "installing") == 0) {
		r = dp_db_exec(l->db, step, 1, p);
		if (dp_db_ok(r) && PQntuples(r) == 1 &&
		    step_of(PQgetvalue(r, 0, 0), &k, &tot))
			send_step(l, PQgetvalue(r, 0, 0), 100 * (k - 1) / tot);
		else
			send_step(l, "Environment installation in progress...",
			    0);
	}
	rc = 0;
out:
	PQclear(r);
	return rc;
}

/* Act on status s (at: its time, or NULL) if it is not the last seen. */
static void
status_seen(struct logs *l, const char *s, const char *at)
{
	if (l->status != NULL && strcmp(s, l->status) == 0)
		return;
	status_changed(l, l->status, s, at);
	free(l->status);
	l->status = dp_xstrdup(s);
}

/*
 * New entries, status changes (sql/010: numbered with the entries, so
 * one order) and the status, in one statement (one snapshot); at least
 * one row, the entry columns null when there is none.  A change's row
 * has no source; its message is the status, its ts the change's time.
 * The status itself is compared once the rows are caught up (a batch
 * short of the limit): the changes cover it, but not a purge (no row
 * left: terminated) or a change older than the socket's first row.
 * 1 when a full batch came (poll again at once), 0, or -1 when the
 * database failed.
 */
static int
poll_entries(struct logs *l)
{
	static const char sql[] =
	    "SELECT x.id, x.ts, x.level, x.message, x.source, e.status, "
	    "e.updated_at FROM (SELECT 1) one "
	    "LEFT JOIN environments e ON e.id = $1 "
	    "LEFT JOIN LATERAL ((SELECT " ENTRY_COLS " FROM environment_logs "
	    "WHERE environment_id = $1 AND id > $2::bigint ORDER BY id "
	    "LIMIT " DP_XSTR(POLL_BATCH) ") UNION ALL (SELECT id, at, NULL, "
	    "status, NULL FROM environment_status_changes "
	    "WHERE environment_id = $1 AND id > $2::bigint ORDER BY id "
	    "LIMIT " DP_XSTR(POLL_BATCH) ") ORDER BY id "
	    "LIMIT " DP_XSTR(POLL_BATCH) ") x ON true ORDER BY x.id";
	const char	*p[2] = { l->env.id, l->last_id };
	const char	*s;
	PGresult	*r;
	int		 i, n, rc = -1;

	l->last_poll = dp_mono_ms();
	r = dp_db_exec(l->db, sql, 2, p);
	if (!dp_db_ok(r) || PQntuples(r) < 1)
		goto out;
	n = PQgetisnull(r, 0, 0) ? 0 : PQntuples(r);
	for (i = 0; i < n; i++) {
		if (PQgetisnull(r, i, 4))
			status_seen(l, PQgetvalue(r, i, 3), dp_db_val(r, i, 1));
		else if (strcmp(PQgetvalue(r, i, 4), "install") == 0)
			send_install(l, r, i);
		else
			send_log(l, r, i);
	}
	if (n > 0)
		snprintf(l->last_id, sizeof(l->last_id), "%s",
		    PQgetvalue(r, n - 1, 0));
	if (n >= POLL_BATCH) {
		rc = 1;
		goto out;
	}
	if ((s = dp_db_val(r, 0, 5)) == NULL)
		s = "terminated";	/* purged */
	status_seen(l, s, dp_db_val(r, 0, 6));
	if (strcmp(s, "terminated") == 0)
		closing(l, 1000, "Environment terminated");
	rc = 0;
out:
	PQclear(r);
	return rc;
}

/* ---- client messages ---------------------------------------------------- */

static void
on_line(void *arg, const char *data, size_t len, bool toolong)
{
	struct logs		*l = arg;
	struct json_object	*o = NULL, *ty;
	const char		*type;

	l->last_client = dp_mono_ms();
	if (toolong) {
		dp_wsapp_error(&l->out, "Message too large");
		goto out;
	}
	if ((o = dp_json_parse(data, len, 32)) == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		dp_wsapp_error(&l->out, "Failed to process message");
		goto out;
	}
	if (!json_object_object_get_ex(o, "type", &ty) ||
	    !json_object_is_type(ty, json_type_string)) {
		dp_wsapp_error(&l->out, "Unknown message type");
		goto out;
	}
	type = json_object_get_string(ty);
	if (strcmp(type, "ping") == 0)
		dp_wsapp_simple(&l->out, "pong");
	else if (strcmp(type, "pong") != 0)
		dp_wsapp_error(&l->out, "Unknown message type");
out:
	json_object_put(o);
}

static void
pump(struct logs *l, const sigset_t *waitmask)
{
	struct pollfd	 fds[3];
	struct timespec	 ts;
	PGnotify	*nf;
	PGconn		*c = dp_db_conn(l->db);
	int64_t		 now, next;
	bool		 wake, full;
	int		 r, ms, nfds;

	(void)dp_db_run(l->db, "LISTEN devpocket_env_logs", 0, NULL);
	while (!l->done) {
		now = dp_mono_ms();
		full = l->out.len >= PENDING_MAX;
		next = l->last_client + l->idle_ms;
		if (l->last_ping + l->ping_ms < next)
			next = l->last_ping + l->ping_ms;
		if (!full && l->last_poll + POLL_MS < next)
			next = l->last_poll + POLL_MS;
		if (l->lines.due != 0 && l->lines.due < next)
			next = l->lines.due;
		ms = next <= now ? 0 : (int)(next - now);
		fds[0].fd = STDIN_FILENO;
		fds[0].events = POLLIN;
		fds[0].revents = 0;
		/* Only a backlog waits for stdout (and then for its errors). */
		fds[1].fd = STDOUT_FILENO;
		fds[1].events = l->out.len > 0 ? POLLOUT : 0;
		fds[1].revents = 0;
		nfds = 2;
		if (c != NULL && PQsocket(c) >= 0) {
			fds[2].fd = PQsocket(c);
			fds[2].events = POLLIN;
			fds[2].revents = 0;
			nfds = 3;
		}
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		r = ppoll(fds, (nfds_t)nfds, &ts, waitmask);
		if (r < 0 && errno != EINTR)
			break;
		if (got_term) {
			closing(l, 1001, "Server shutting down");
			break;
		}
		if (got_int) {
			l->client_gone = true;
			break;
		}
		if (r > 0 && (fds[1].revents & (POLLERR | POLLHUP))) {
			l->client_gone = true;	/* websocketd stopped reading */
			return;
		}
		if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) &&
		    dp_wsapp_read_lines(STDIN_FILENO, &l->lines, on_line,
		    l) < 0) {
			l->client_gone = true;
			break;
		}
		dp_wslines_expire(&l->lines, dp_mono_ms(), on_line, l);
		wake = false;
		if (nfds == 3 && r > 0 && (fds[2].revents & POLLIN)) {
			(void)PQconsumeInput(c);
			while ((nf = PQnotifies(c)) != NULL) {
				if (strcmp(nf->extra, l->env.id) == 0)
					wake = true;
				PQfreemem(nf);
			}
		}
		now = dp_mono_ms();
		if ((wake || l->more || now - l->last_poll >= POLL_MS) &&
		    l->out.len < PENDING_MAX)
			l->more = poll_entries(l) == 1;
		if (!l->done && now - l->last_auth >= l->check_ms) {
			l->last_auth = now;
			r = dp_wsapp_session_alive(l->db, &l->user, l->slot);
			if (r == 0)
				closing(l, 1008, "Authentication failed");
			else if (r == 2)
				closing(l, 1011,
				    "Service temporarily unavailable");
		}
		if (!l->done && now - l->last_client >= l->idle_ms)
			closing(l, 1000, "Idle timeout");
		if (!l->done && now - l->last_ping >= l->ping_ms) {
			dp_wsapp_simple(&l->out, "ping");
			l->last_ping = now;
		}
		flush_out(l);
		/* A reconnect drops LISTEN: listen again on the new one. */
		if (c != dp_db_conn(l->db) || (c != NULL &&
		    PQstatus(c) != CONNECTION_OK)) {
			c = dp_db_conn(l->db);
			(void)dp_db_run(l->db, "LISTEN devpocket_env_logs", 0,
			    NULL);
		}
	}
}

static int
refuse(struct logs *l, int code, const char *reason)
{
	closing(l, code, reason);
	return 1;
}

int
main(void)
{
	struct logs		 l;
	struct dp_err		 err = { 0 };
	struct sigaction	 sa;
	struct json_object	*o;
	sigset_t		 block, waitmask;
	const char		*pi;
	char			 seg[64], msg[256];
	int64_t			 now;
	int			 rc = 1, r;

	memset(&l, 0, sizeof(l));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGHUP);
	/* Never blocked by a client that stops reading (flush_out). */
	(void)dp_fd_nonblock(STDOUT_FILENO);

	l.ping_ms = dp_wsapp_env_ms("DP_WS_PING_MS", 25000);
	l.idle_ms = dp_wsapp_env_ms("DP_WS_IDLE_MS", 120000);
	l.check_ms = dp_wsapp_env_ms("DP_WS_CHECK_MS", SESSION_MS);
	if (dp_wsapp_init("ws-logs") < 0) {
		rc = refuse(&l, 1011, "Service temporarily unavailable");
		goto out;
	}
	pi = getenv("PATH_INFO");
	snprintf(seg, sizeof(seg), "%s", pi && *pi == '/' ? pi + 1 : "");
	seg[strcspn(seg, "/")] = '\0';
	dp_wsreq_parse(&l.req, DP_WSK_LOGS, getenv("QUERY_STRING"), seg,
	    getenv("HTTP_AUTHORIZATION"));
	if ((l.db = dp_wsapp_db_open()) == NULL) {
		rc = refuse(&l, 1011, "Service temporarily unavailable");
		goto out;
	}
	if ((r = dp_wsapp_admit(l.db, false, l.req.token, l.req.target,
	    &l.user, &l.env, &err)) <= 0) {
		rc = refuse(&l, r < 0 ? 1011 : 1008, r < 0 ?
		    "Service temporarily unavailable" : "Authentication failed");
		goto out;
	}
	if (dp_cfg.auth_require_verified_email && !l.user.verified) {
		rc = refuse(&l, 1008, "Please verify your email address");
		goto out;
	}
	if (l.env.id[0] == '\0') {
		rc = refuse(&l, 1008, "Environment not found");
		goto out;
	}
	r = dp_wsapp_slot_take(l.db, l.user.id, DP_WSK_LOGS, l.env.id,
	    dp_cfg.limits_ws_per_user, l.slot);
	if (r <= 0) {
		l.slot[0] = '\0';
		rc = refuse(&l, r < 0 ? 1011 : 1008, r < 0 ?
		    "Service temporarily unavailable" : "Too many connections");
		goto out;
	}
	o = json_object_new_object();
	snprintf(msg, sizeof(msg), "Connected to %s", l.env.name);
	dp_json_str(o, "type", "welcome");
	dp_json_str(o, "message", msg);
	json_object_object_add(o, "environment",
	    dp_wsapp_env_json(&l.env, false));
	dp_wsapp_msg(&l.out, o);
	if (replay(&l) < 0) {
		rc = refuse(&l, 1011, "Service temporarily unavailable");
		goto out;
	}
	l.status = dp_xstrdup(l.env.status);
	if (strcmp(l.env.status, "terminated") == 0) {
		rc = refuse(&l, 1000, "Environment terminated");
		goto out;
	}
	if (!l.req.follow) {
		rc = refuse(&l, 1000, "Log stream complete");
		goto out;
	}
	flush_out(&l);
	now = dp_mono_ms();
	l.last_client = l.last_ping = l.last_poll = l.last_auth = now;
	pump(&l, &waitmask);
	rc = 0;
out:
	/* The last messages (a close says why): a while for a slow reader,
	 * not forever for one that stopped, and none for one gone (its
	 * slot is freed at once). */
	if (!l.client_gone)
		(void)dp_wsapp_flush_wait(STDOUT_FILENO, &l.out,
		    FINAL_FLUSH_MS);
	if (l.slot[0] != '\0' && l.db != NULL)
		(void)dp_wsapp_slot_free(l.db, l.slot);
	dp_db_free(l.db);
	dp_wsreq_release(&l.req);
	dp_wsapp_env_release(&l.env);
	free(l.status);
	dp_buf_release(&l.out);
	dp_wslines_release(&l.lines);
	return rc;
}
