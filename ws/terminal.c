/* ws/terminal.c: websocketd program for /api/v1/ws/terminal/{id}: tmux in the environment */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "crypto.h"
#include "driver.h"
#include "http.h"
#include "log.h"
#include "wsapp.h"

#define COALESCE_MS	5	/* output gathered this long inside a burst */
#define PENDING_MAX	(1024 * 1024)	/* stdout backlog that pauses the pty */
#define INPUT_MAX	(1024 * 1024)	/* keystrokes waiting for the pty */
#define MARK_MS		60000	/* last_activity at most once a minute */

static volatile sig_atomic_t got_term, got_int, got_chld;

struct term {
	struct dp_wsreq		 req;
	struct dp_wsuser	 user;
	struct dp_wsenv		 env;
	struct dp_db		*db;
	char			 slot[25];
	char			 session[25];
	const struct dp_driver	*drv;
	struct dp_attach	 att;
	bool			 attached;
	char			*kubeconfig;
	struct dp_buf		 out;	/* messages for stdout */
	struct dp_buf		 raw;	/* pty bytes not yet sent */
	struct dp_buf		 pin;	/* input not yet written to the pty */
	struct dp_wslines	 lines;
	int64_t			 bytes_in, bytes_out;
	int64_t			 last_client, last_ping, last_check;
	int64_t			 last_mark, last_flush, flush_at;
	bool			 io_since_mark;
	bool			 done;		/* leave the loop */
	bool			 client_gone;	/* stdin ended */
	int			 close_code;
	int64_t			 ping_ms, idle_ms, check_ms;
};

static void
on_signal(int sig)
{
	if (sig == SIGTERM)
		got_term = 1;
	else if (sig == SIGCHLD)
		got_chld = 1;
	else
		got_int = 1;
}

/* Test hooks: shorter timers ($DP_WS_PING_MS, _IDLE_MS, _CHECK_MS). */
static int64_t
env_ms(const char *name, int64_t dflt)
{
	const char	*v = getenv(name);
	int64_t		 n;

	if (v == NULL || dp_parse_int64(v, 50, 86400000, &n) < 0)
		return dflt;
	return n;
}

static void
flush_out(struct term *t)
{
	if (t->out.len > 0 && dp_wsapp_flush_fd(STDOUT_FILENO, &t->out) < 0)
		t->client_gone = t->done = true;
}

/* Announce a server-side close and leave the loop. */
static void
closing(struct term *t, int code, const char *reason)
{
	dp_wsapp_close(&t->out, code, reason);
	flush_out(t);
	t->close_code = code;
	t->done = true;
}

static struct dp_db *
db(struct term *t)
{
	if (t->db == NULL)
		t->db = dp_wsapp_db_open();
	return t->db;
}

static void
db_close(struct term *t)
{
	dp_db_free(t->db);
	t->db = NULL;
}

/* ---- output ------------------------------------------------------------- */

/* Send the pty bytes gathered so far as output messages. */
static void
send_output(struct term *t, bool final)
{
	struct json_object	*o;
	struct dp_buf		 chunk = { 0 };
	size_t			 used, off = 0;

	while (off < t->raw.len) {
		dp_buf_reset(&chunk);
		used = dp_utf8_take(&chunk, t->raw.s + off, t->raw.len - off,
		    DP_WS_OUTPUT_MAX, final);
		if (used == 0)
			break;
		off += used;
		o = json_object_new_object();
		dp_json_str(o, "type", "output");
		json_object_object_add(o, "data",
		    json_object_new_string_len(chunk.s, (int)chunk.len));
		dp_wsapp_msg(&t->out, o);
		t->bytes_out += (int64_t)chunk.len;
	}
	/* An incomplete UTF-8 tail waits for its next bytes. */
	memmove(t->raw.s, t->raw.s + off, t->raw.len - off);
	t->raw.len -= off;
	if (t->raw.s != NULL)
		t->raw.s[t->raw.len] = '\0';
	dp_buf_release(&chunk);
	t->last_flush = dp_mono_ms();
	t->flush_at = 0;
	t->io_since_mark = true;
}

/* Read what the pty has; false at its end. */
static bool
read_pty(struct term *t)
{
	char	 buf[16384];
	ssize_t	 r;
	int64_t	 now;

	for (;;) {
		r = read(t->att.fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return true;
		if (r <= 0)
			return false;	/* EIO: the tmux client is gone */
		dp_buf_add(&t->raw, buf, (size_t)r);
		if (t->raw.len >= DP_WS_OUTPUT_MAX)
			send_output(t, false);
		if ((size_t)r < sizeof(buf))
			break;
	}
	/*
	 * The first output after a quiet spell goes at once (keystroke
	 * echo); inside a burst it is gathered for a few milliseconds.
	 */
	now = dp_mono_ms();
	if (t->raw.len > 0 && now - t->last_flush >= COALESCE_MS)
		send_output(t, false);
	else if (t->raw.len > 0 && t->flush_at == 0)
		t->flush_at = t->last_flush + COALESCE_MS;
	return true;
}

static void
write_pty(struct term *t)
{
	ssize_t	 w;

	while (t->pin.len > 0) {
		w = write(t->att.fd, t->pin.s, t->pin.len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		memmove(t->pin.s, t->pin.s + w, t->pin.len - (size_t)w);
		t->pin.len -= (size_t)w;
		t->pin.s[t->pin.len] = '\0';
	}
}

/* ---- client messages ---------------------------------------------------- */

static bool
int_in(struct json_object *o, const char *k, int64_t lo, int64_t hi,
    int64_t *v)
{
	struct json_object	*x;

	if (!json_object_object_get_ex(o, k, &x) ||
	    !json_object_is_type(x, json_type_int))
		return false;
	errno = 0;
	*v = json_object_get_int64(x);
	return errno == 0 && *v >= lo && *v <= hi;
}

static void
on_line(void *arg, const char *data, size_t len, bool toolong)
{
	struct term		*t = arg;
	struct json_object	*o = NULL, *ty, *d;
	struct winsize		 wsz = { 0 };
	const char		*type;
	int64_t			 cols, rows;

	/* Any message, valid or not, shows the client is there. */
	t->last_client = dp_mono_ms();
	if (toolong) {
		dp_wsapp_error(&t->out, "Message too large");
		goto out;
	}
	if ((o = dp_json_parse(data, len, 32)) == NULL ||
	    !json_object_is_type(o, json_type_object)) {
		dp_wsapp_error(&t->out, "Failed to process message");
		goto out;
	}
	if (!json_object_object_get_ex(o, "type", &ty) ||
	    !json_object_is_type(ty, json_type_string)) {
		dp_wsapp_error(&t->out, "Unknown message type");
		goto out;
	}
	type = json_object_get_string(ty);
	if (strcmp(type, "input") == 0) {
		if (!json_object_object_get_ex(o, "data", &d) ||
		    !json_object_is_type(d, json_type_string)) {
			dp_wsapp_error(&t->out, "Invalid message data");
			goto out;
		}
		if (t->pin.len + (size_t)json_object_get_string_len(d) >
		    INPUT_MAX) {
			dp_wsapp_error(&t->out, "Message too large");
			goto out;
		}
		dp_buf_add(&t->pin, json_object_get_string(d),
		    (size_t)json_object_get_string_len(d));
		t->bytes_in += json_object_get_string_len(d);
		t->io_since_mark = true;
		write_pty(t);
	} else if (strcmp(type, "resize") == 0) {
		if (!int_in(o, "cols", 10, 500, &cols) ||
		    !int_in(o, "rows", 5, 200, &rows)) {
			dp_wsapp_error(&t->out, "Invalid message data");
			goto out;
		}
		wsz.ws_col = (unsigned short)cols;
		wsz.ws_row = (unsigned short)rows;
		(void)ioctl(t->att.fd, TIOCSWINSZ, &wsz);
	} else if (strcmp(type, "ping") == 0)
		dp_wsapp_simple(&t->out, "pong");
	else if (strcmp(type, "pong") != 0)
		dp_wsapp_error(&t->out, "Unknown message type");
out:
	json_object_put(o);
}

/* ---- database ----------------------------------------------------------- */

/*
 * The check every check_ms: bytes, activity mark, login session, the
 * environment's status, our session row.  Closes when one of them says
 * so; a database failure waits for the next check.
 */
static void
check(struct term *t, bool ended)
{
	static const char sql[] =
	    "WITH s AS (UPDATE terminal_sessions SET bytes_in = $4::bigint, "
	    "bytes_out = $5::bigint WHERE id = $3 RETURNING id), "
	    "e AS (UPDATE environments SET last_activity = now() "
	    "WHERE id = $1 AND $6::bool RETURNING id) "
	    "SELECT (SELECT status FROM environments WHERE id = $1), "
	    "EXISTS (SELECT 1 FROM login_sessions l JOIN users u "
	    "ON u.id = l.user_id WHERE l.id = $2 AND l.revoked_at IS NULL "
	    "AND u.is_active AND u.deleted_at IS NULL), "
	    "EXISTS (SELECT 1 FROM s), (SELECT count(*) FROM e)";
	char		 bi[24], bo[24];
	const char	*p[6], *status;
	bool		 mark;
	PGresult	*r = NULL;
	int64_t		 now = dp_mono_ms();

	t->last_check = now;
	if (db(t) == NULL)
		goto out;
	mark = t->io_since_mark && now - t->last_mark >= MARK_MS;
	snprintf(bi, sizeof(bi), "%lld", (long long)t->bytes_in);
	snprintf(bo, sizeof(bo), "%lld", (long long)t->bytes_out);
	p[0] = t->env.id;
	p[1] = t->user.sid;
	p[2] = t->session;
	p[3] = bi;
	p[4] = bo;
	p[5] = mark ? "true" : "false";
	r = dp_db_exec(t->db, sql, 6, p);
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	if (mark) {
		t->last_mark = now;
		t->io_since_mark = false;
	}
	status = dp_db_val(r, 0, 0);
	if (PQgetvalue(r, 0, 1)[0] != 't')
		closing(t, 1008, "Authentication failed");
	else if (status == NULL || strcmp(status, "running") != 0) {
		dp_wsapp_info(&t->out, dp_wsapp_status_reason(status));
		closing(t, 1000, dp_wsapp_status_reason(status));
	} else if (PQgetvalue(r, 0, 2)[0] != 't')
		closing(t, 1000, "Session terminated");
	else if (ended)
		closing(t, 1000, "Session ended");
out:
	if (ended && !t->done)
		closing(t, 1000, "Session ended");
	PQclear(r);
	db_close(t);
}

/* Start the session row, mark the environment accessed; 0 or -1. */
static int
session_begin(struct term *t)
{
	static const char sql[] =
	    "WITH s AS (INSERT INTO terminal_sessions (id, user_id, type, "
	    "environment_id, device_id) VALUES ($1, $2, 'environment', $3, "
	    "$4) RETURNING id), "
	    "c AS (UPDATE ws_connections SET session_id = $1 WHERE id = $5), "
	    "e AS (UPDATE environments SET last_accessed = now(), "
	    "last_activity = now() WHERE id = $3) "
	    "SELECT id FROM s";
	const char	*p[5];

	dp_new_id(t->session);
	p[0] = t->session;
	p[1] = t->user.id;
	p[2] = t->env.id;
	p[3] = t->req.device_id[0] ? t->req.device_id : NULL;
	p[4] = t->slot;
	return dp_db_run(t->db, sql, 5, p);
}

static void
session_end(struct term *t)
{
	static const char sql[] =
	    "WITH s AS (UPDATE terminal_sessions SET active = false, "
	    "ended_at = now(), bytes_in = $2::bigint, bytes_out = $3::bigint, "
	    "close_code = $4::int WHERE id = $1), "
	    "e AS (UPDATE environments SET last_activity = now() "
	    "WHERE id = $5) "
	    "DELETE FROM ws_connections WHERE id = $6";
	char		 bi[24], bo[24], cc[16];
	const char	*p[6];

	if (db(t) == NULL)
		return;		/* the next socket here drops the slot */
	snprintf(bi, sizeof(bi), "%lld", (long long)t->bytes_in);
	snprintf(bo, sizeof(bo), "%lld", (long long)t->bytes_out);
	snprintf(cc, sizeof(cc), "%d", t->close_code ? t->close_code : 1000);
	p[0] = t->session;
	p[1] = bi;
	p[2] = bo;
	p[3] = cc;
	p[4] = t->env.id;
	p[5] = t->slot;
	(void)dp_db_run(t->db, sql, 6, p);
}

/* ---- attach ------------------------------------------------------------- */

static int
attach(struct term *t, struct dp_err *err)
{
	struct dp_cluster_conn	 c = { 0 };
	struct dp_env_spec	 s = { 0 };
	struct dp_buf		 key = { 0 }, plain = { 0 };
	int			 rc = -1;

	if ((t->drv = dp_driver_get(t->env.provider)) == NULL ||
	    t->drv->attach == NULL) {
		dp_err_set(err, 0, "no driver for %s", t->env.provider);
		goto out;
	}
	if (t->env.kube_sealed != NULL) {
		if (dp_keyfile_read(dp_cfg.auth_secret_key_file, &key,
		    err) < 0)
			goto out;
		if (dp_open(key.s, key.len, t->env.kube_sealed, &plain) < 0) {
			dp_err_set(err, 0, "kubeconfig does not open");
			goto out;
		}
		t->kubeconfig = dp_buf_detach(&plain);
	}
	c.id = t->env.cluster_id;
	c.provider = t->env.provider;
	c.endpoint = t->env.endpoint;
	c.kubeconfig = t->kubeconfig;
	s.id = t->env.id;
	s.user_id = t->user.id;
	s.name = t->env.name;
	s.image = t->env.image;
	s.port = t->env.port;
	if (t->drv->attach(&c, &s, t->req.cols, t->req.rows, &t->att,
	    err) < 0)
		goto out;
	t->attached = true;
	if (t->att.fd < 0) {
		/* A driver that bridges through priv only: not supported. */
		dp_err_set(err, 0, "attach gave no terminal descriptor");
		goto out;
	}
	(void)fcntl(t->att.fd, F_SETFL, fcntl(t->att.fd, F_GETFL) | O_NONBLOCK);
	rc = 0;
out:
	dp_buf_wipe(&key);
	dp_buf_wipe(&plain);
	return rc;
}

/* Leave the tmux session running: end only our client. */
static void
detach(struct term *t)
{
	int	 st, i;

	if (!t->attached)
		return;
	if (t->att.fd >= 0)
		close(t->att.fd);
	t->att.fd = -1;
	if (t->att.pid > 0) {
		(void)kill(t->att.pid, SIGHUP);
		for (i = 0; i < 50; i++) {
			if (waitpid(t->att.pid, &st, WNOHANG) != 0)
				break;
			usleep(1000);
		}
		if (i == 50) {
			(void)kill(t->att.pid, SIGKILL);
			(void)waitpid(t->att.pid, &st, 0);
		}
	}
	t->attached = false;
}

/* ---- main loop ---------------------------------------------------------- */

static int
timeout_of(const struct term *t, int64_t now)
{
	int64_t	 next = t->last_ping + t->ping_ms;

	if (t->last_client + t->idle_ms < next)
		next = t->last_client + t->idle_ms;
	if (t->last_check + t->check_ms < next)
		next = t->last_check + t->check_ms;
	if (t->flush_at != 0 && t->flush_at < next)
		next = t->flush_at;
	return next <= now ? 0 : (int)(next - now);
}

static bool
child_exited(struct term *t)
{
	int	 st;

	if (t->att.pid <= 0)
		return false;
	if (waitpid(t->att.pid, &st, WNOHANG) == t->att.pid) {
		t->att.pid = -1;
		return true;
	}
	return false;
}

static void
pump(struct term *t, const sigset_t *waitmask)
{
	struct pollfd	 fds[2];
	struct timespec	 ts;
	int64_t		 now;
	bool		 ended = false;
	int		 ms, r;

	while (!t->done) {
		now = dp_mono_ms();
		ms = timeout_of(t, now);
		fds[0].fd = STDIN_FILENO;
		fds[0].events = POLLIN;
		fds[1].fd = t->att.fd;
		fds[1].events = (t->out.len < PENDING_MAX ? POLLIN : 0) |
		    (t->pin.len > 0 ? POLLOUT : 0);
		fds[0].revents = fds[1].revents = 0;
		ts.tv_sec = ms / 1000;
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		r = ppoll(fds, 2, &ts, waitmask);
		if (r < 0 && errno != EINTR)
			break;
		if (got_term) {
			closing(t, 1001, "Server shutting down");
			break;
		}
		if (got_int) {
			t->client_gone = true;
			break;
		}
		if (r > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (dp_wsapp_read_lines(STDIN_FILENO, &t->lines,
			    on_line, t) < 0) {
				t->client_gone = true;
				break;
			}
		}
		if (r > 0 && (fds[1].revents & POLLOUT))
			write_pty(t);
		if (r > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			if (!read_pty(t))
				ended = true;
		if (got_chld) {
			got_chld = 0;
			if (child_exited(t)) {
				(void)read_pty(t);
				ended = true;
			}
		}
		now = dp_mono_ms();
		if (ended || (t->flush_at != 0 && now >= t->flush_at))
			send_output(t, ended);
		flush_out(t);
		if (t->done)
			break;
		if (ended) {
			check(t, true);
			break;
		}
		if (now - t->last_client >= t->idle_ms) {
			closing(t, 1000, "Idle timeout");
			break;
		}
		if (now - t->last_ping >= t->ping_ms) {
			dp_wsapp_simple(&t->out, "ping");
			t->last_ping = now;
		}
		if (now - t->last_check >= t->check_ms)
			check(t, false);
		flush_out(t);
	}
}

/* Refuse after the upgrade: the close message, then exit. */
static int
refuse(struct term *t, int code, const char *reason)
{
	closing(t, code, reason);
	return 1;
}

int
main(void)
{
	struct term		 t;
	struct dp_err		 err = { 0 };
	struct sigaction	 sa;
	sigset_t		 block, waitmask;
	const char		*pi;
	char			 seg[64];
	int64_t			 now;
	int			 rc = 1, r;

	memset(&t, 0, sizeof(t));
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	sigaddset(&block, SIGCHLD);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	sigdelset(&waitmask, SIGHUP);
	sigdelset(&waitmask, SIGCHLD);

	t.ping_ms = env_ms("DP_WS_PING_MS", 25000);
	t.idle_ms = env_ms("DP_WS_IDLE_MS", 120000);
	t.check_ms = env_ms("DP_WS_CHECK_MS", 30000);
	if (dp_wsapp_init("ws-terminal") < 0) {
		rc = refuse(&t, 1011, "Service temporarily unavailable");
		goto out;
	}
	/* websocketd: SCRIPT_NAME=/terminal, PATH_INFO=/<id>[/]. */
	pi = getenv("PATH_INFO");
	snprintf(seg, sizeof(seg), "%s", pi && *pi == '/' ? pi + 1 : "");
	seg[strcspn(seg, "/")] = '\0';
	dp_wsreq_parse(&t.req, DP_WSK_TERMINAL, getenv("QUERY_STRING"), seg,
	    getenv("HTTP_AUTHORIZATION"));
	if (db(&t) == NULL) {
		rc = refuse(&t, 1011, "Service temporarily unavailable");
		goto out;
	}
	if (dp_wsapp_token(t.db, t.req.token, &t.user, &err) < 0) {
		rc = refuse(&t, err.code == 1 ? 1011 : 1008, err.code == 1 ?
		    "Service temporarily unavailable" : "Authentication failed");
		goto out;
	}
	if (dp_cfg.auth_require_verified_email && !t.user.verified) {
		rc = refuse(&t, 1008, "Please verify your email address");
		goto out;
	}
	if ((r = dp_wsapp_env(t.db, t.user.id, t.req.target, &t.env)) <= 0) {
		rc = refuse(&t, r < 0 ? 1011 : 1008, r < 0 ?
		    "Service temporarily unavailable" : "Environment not found");
		goto out;
	}
	if (strcmp(t.env.status, "running") != 0) {
		rc = refuse(&t, 1008, "Environment not running");
		goto out;
	}
	r = dp_wsapp_slot_take(t.db, t.user.id, DP_WSK_TERMINAL, t.env.id,
	    dp_cfg.limits_ws_per_user, t.slot);
	if (r <= 0) {
		t.slot[0] = '\0';
		rc = refuse(&t, r < 0 ? 1011 : 1008, r < 0 ?
		    "Service temporarily unavailable" : "Too many connections");
		goto out;
	}
	if (attach(&t, &err) < 0) {
		dp_error("attach %s: %s", t.env.id, err.msg);
		rc = refuse(&t, 1011, "Terminal unavailable");
		goto out;
	}
	if (session_begin(&t) < 0) {
		t.session[0] = '\0';
		rc = refuse(&t, 1011, "Service temporarily unavailable");
		goto out;
	}
	{
		struct json_object	*o = json_object_new_object();
		char			 msg[256];

		snprintf(msg, sizeof(msg), "Connected to %s", t.env.name);
		dp_json_str(o, "type", "welcome");
		dp_json_str(o, "message", msg);
		json_object_object_add(o, "environment",
		    dp_wsapp_env_json(&t.env, true));
		dp_json_str(o, "session_id", t.session);
		dp_wsapp_msg(&t.out, o);
	}
	if (t.att.existed)
		dp_wsapp_info(&t.out, "Reattached to existing session");
	flush_out(&t);
	/* Idle sockets hold no database connection (there may be many). */
	db_close(&t);
	now = dp_mono_ms();
	t.last_client = t.last_ping = t.last_check = t.last_mark = now;
	t.last_flush = now - COALESCE_MS;
	pump(&t, &waitmask);
	rc = 0;
out:
	detach(&t);
	if (t.session[0] != '\0')
		session_end(&t);
	else if (t.slot[0] != '\0' && db(&t) != NULL)
		(void)dp_wsapp_slot_free(t.db, t.slot);
	db_close(&t);
	dp_wsreq_release(&t.req);
	dp_wsapp_env_release(&t.env);
	if (t.kubeconfig != NULL) {
		explicit_bzero(t.kubeconfig, strlen(t.kubeconfig));
		free(t.kubeconfig);
	}
	dp_buf_release(&t.out);
	dp_buf_release(&t.raw);
	dp_buf_release(&t.pin);
	dp_buf_release(&t.lines.line);
	return rc;
}
