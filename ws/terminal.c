/* ws/terminal.c: websocketd program for /api/v1/ws/terminal/{id}: tmux in the environment */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

/* Headers only in the pump, which links util, json and log alone. */
#include "auth.h"
#include "config.h"
#include "crypto.h"
#include "driver.h"
#include "http.h"
#include "jwt.h"
#include "log.h"
#include "wsapp.h"
#include "wsticket.h"

/*
 * Three programs are built from this file.
 *
 * ws/terminal (DP_TERMINAL_LIGHT; websocketd runs it) links no libpq,
 * OpenSSL or curl, and the local driver only, so that it starts in a
 * fraction of a millisecond.  Behind nginx, authorize-ws has already
 * admitted the socket, reserved its slot and started its session row,
 * and says so in a ticket (lib/wsticket.h); ws/terminal checks the
 * ticket against the request's token, attaches and sends the welcome.
 * Without a usable ticket (lighttpd, a Kubernetes cluster) it becomes
 * ws/terminal-full, which does all that itself with PostgreSQL and
 * every driver.
 *
 * ws/terminal then pumps the socket itself.  ws/terminal-full replaces
 * itself (same pid: the tmux client stays its child, the slot row's pid
 * stays right) with ws/terminal-pump (DP_TERMINAL_PUMP), linked with libc
 * and json-c only: an idle socket costs no pages of libpq, OpenSSL, curl
 * and their forty libraries (without the pump beside it, it pumps
 * itself).  Whichever pumps runs "terminal-full --claim" once to claim a
 * reserved slot and "terminal-full --check" for the periodic check, and
 * becomes "terminal-full --end" to close the session.
 */
#define PUMP_NAME	"terminal-pump"
#define HEAVY_NAME	"terminal-full"
#if !defined(DP_TERMINAL_PUMP) && !defined(DP_TERMINAL_LIGHT)
#define TERMINAL_DB	/* this build asks PostgreSQL itself */
#endif
#define CHECK_WAIT_MS	10000	/* a check helper that hangs is killed */
#define BURST_US	1000	/* output this soon after a send: a burst */
#define QUIET_US	300	/* a burst goes once this passes without
				   more output (a redraw in pieces) */
#define QUIET_LOOKS	4	/* looks before it counts as a flood */
#define COALESCE_US	5000	/* or this long after it began (a flood) */
#define PENDING_MAX	(1024 * 1024)	/* stdout backlog that pauses the pty */
#define FINAL_FLUSH_MS	2000		/* for the backlog once the pump ends */
#define INPUT_MAX	(1024 * 1024)	/* keystrokes waiting for the pty
					   before stdin is no longer read */
#define MARK_MS		60000	/* last_activity at most once a minute */
#define CLAIM_DELAY_US	20000	/* the claim waits for the redraw */
#define REATTACH_MAX	5	/* detaches answered by attaching again, */
#define REATTACH_MS	60000	/* at most this many in this long */
/* What tmux's client prints last when it was detached (the session
 * lives on), not when the session ended ("[exited]"). */
#define DETACHED_MSG	"[detached (from session "
#define HELD_MAX	4096	/* held input a resume carries (hex) */
#define HOLD_MS		1000	/* input after that line waits this long
				   for the next client (not the old one) */

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
	bool			 att_lost;	/* its child exited
						   DP_ATTACH_LOST */
	char			*kubeconfig;
	struct dp_buf		 out;	/* messages for stdout */
	struct dp_buf		 raw;	/* pty bytes not yet sent */
	struct dp_buf		 pin;	/* input not yet written to the pty */
	struct dp_wslines	 lines;
	int64_t			 bytes_in, bytes_out;
	int64_t			 last_client, last_ping, last_check;
	int64_t			 last_mark;
	int64_t			 last_send_us;	/* output sent */
	int64_t			 flush_at_us;	/* a burst's next look, or 0 */
	int64_t			 burst_end_us;	/* a burst goes by then */
	int64_t			 pty_read;	/* bytes read from the pty */
	int64_t			 burst_seen;	/* pty_read at the last look */
	int			 burst_looks;	/* looks that found more */
	bool			 io_since_mark;
	bool			 done;		/* leave the loop */
	bool			 client_gone;	/* stdin ended */
	bool			 claim;		/* the slot is reserved */
	int64_t			 claim_at_us;	/* the claim's start, or 0 */
	pid_t			 claim_pid;	/* terminal-full --claim */
	int			 claim_fd;	/* its stdout */
	char			 claim_line[128];
	size_t			 claim_got;
	pid_t			 check_pid;	/* terminal-full --check */
	int			 check_fd;	/* its stdout */
	int64_t			 check_end;	/* killed then (ms) */
	bool			 check_mark;	/* it marks activity */
	char			 check_line[256];
	size_t			 check_got;
	int			 close_code;
	int64_t			 ping_ms, idle_ms, check_ms;
	char			 tail[160];	/* the pty's last bytes */
	size_t			 ntail;
	int64_t			 held_since;	/* input held (ms), or 0 */
	int			 reattaches;	/* since reattach_since */
	int64_t			 reattach_since;
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

/*
 * Hand websocketd what it takes now.  In the pump stdout is non-blocking:
 * a client that stops reading leaves the rest in t->out (whose size
 * pauses the pty, PENDING_MAX) while timers, input and signals go on.
 */
static void
flush_out(struct term *t)
{
	if (t->out.len > 0 && dp_wsapp_flush_some(STDOUT_FILENO, &t->out) < 0)
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

#ifdef TERMINAL_DB
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
#endif

/* ---- output ------------------------------------------------------------- */

static int64_t
mono_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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
	dp_buf_drop(&t->raw, off);
	dp_buf_release(&chunk);
	t->last_send_us = mono_us();
	t->flush_at_us = 0;
	t->io_since_mark = true;
}

/* Keep the pty's last bytes (how its client ended: detached). */
static void
tail_add(struct term *t, const char *p, size_t n)
{
	size_t	 keep;

	if (n >= sizeof(t->tail)) {
		memcpy(t->tail, p + n - sizeof(t->tail), sizeof(t->tail));
		t->ntail = sizeof(t->tail);
		return;
	}
	keep = sizeof(t->tail) - n < t->ntail ? sizeof(t->tail) - n :
	    t->ntail;
	memmove(t->tail, t->tail + t->ntail - keep, keep);
	memcpy(t->tail + keep, p, n);
	t->ntail = keep + n;
}

/*
 * The pty ended with tmux's "detached" line: the tmux session lives on
 * (detach-client typed in it), only our client is gone.
 */
static bool
detached(const struct term *t)
{
	const char	*p = t->tail, *end = t->tail + t->ntail;
	const char	*hit = NULL, *q;

	if (t->ntail == 0 || end[-1] != '\n')
		return false;	/* (most reads: no line end last) */
	while ((q = memmem(p, (size_t)(end - p), DETACHED_MSG,
	    sizeof(DETACHED_MSG) - 1)) != NULL) {
		hit = q;
		p = q + 1;
	}
	/* The last line, "[detached (from session NAME)]", and nothing
	 * after it but its line end. */
	if (hit == NULL || (q = memrchr(hit, ']', (size_t)(end - hit))) == NULL)
		return false;
	for (q++; q < end; q++)
		if (*q != '\r' && *q != '\n')
			return false;
	return true;
}

/* Input held for the next client (HOLD_MS at most: a program that
 * printed tmux's line itself gets its keys then). */
static bool
holding(struct term *t)
{
	if (t->held_since != 0 && dp_mono_ms() - t->held_since >= HOLD_MS)
		t->held_since = 0;
	return t->held_since != 0;
}

/*
 * Read what the pty has and send it; false at its end.  Output after a
 * quiet spell goes at once, whatever one wake-up finds as one write (a
 * keystroke's echo).  Output right after a send is a burst, gathered
 * with the pty unwatched and looked at every QUIET_US (due: a look's
 * time has come): it goes at the first look that finds nothing more
 * (tmux writing one redraw in pieces).  After QUIET_LOOKS looks that
 * found more it is a flood, sent COALESCE_US after it began: two or so
 * reads and one message per COALESCE_US (or 16 KiB), not one of each
 * per write of tmux — and a slower reader makes tmux redraw less.
 */
static bool
read_pty(struct term *t, bool due)
{
	int64_t	 now;
	char	 buf[16384];
	ssize_t	 r;
	bool	 alive = true;

	for (;;) {
		r = read(t->att.fd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (r <= 0) {
			alive = false;	/* EIO: the tmux client is gone */
			break;
		}
		dp_buf_add(&t->raw, buf, (size_t)r);
		tail_add(t, buf, (size_t)r);
		t->pty_read += (int64_t)r;
		/* Keys typed once the client said it is detached are for
		 * the next one: held (the old one exits unread). */
		t->held_since = !detached(t) ? 0 : t->held_since != 0 ?
		    t->held_since : dp_mono_ms();
		if (t->raw.len >= DP_WS_OUTPUT_MAX)
			send_output(t, false);
		if ((size_t)r < sizeof(buf) || t->out.len >= PENDING_MAX)
			break;
	}
	if (t->raw.len == 0) {
		t->flush_at_us = 0;
		return alive;
	}
	now = mono_us();
	if (!alive)
		send_output(t, true);
	else if (t->flush_at_us == 0 && now - t->last_send_us < BURST_US) {
		t->burst_end_us = now + COALESCE_US;
		t->burst_seen = t->pty_read;
		t->burst_looks = 0;
		t->flush_at_us = now + QUIET_US;
	} else if (t->flush_at_us == 0 || t->pty_read == t->burst_seen ||
	    now >= t->burst_end_us)
		send_output(t, false);
	else if (due) {
		t->burst_seen = t->pty_read;
		t->flush_at_us = ++t->burst_looks < QUIET_LOOKS &&
		    now + QUIET_US < t->burst_end_us ? now + QUIET_US :
		    t->burst_end_us;
	}
	return alive;
}

static void
write_pty(struct term *t)
{
	ssize_t	 w;

	if (holding(t))
		return;
	while (t->pin.len > 0) {
		w = write(t->att.fd, t->pin.s, t->pin.len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		dp_buf_drop(&t->pin, (size_t)w);
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
		/* A full backlog stops stdin (pump): no input is dropped. */
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

/* What a check found. */
enum verdict {
	V_FAIL,		/* database failure: wait for the next check */
	V_OK,
	V_CLOSE,	/* close with code and reason */
	V_INFO,		/* an info message with the reason, then the close */
	V__MAX
};
static const char *const verdict_names[V__MAX] = {
	"fail",		/* V_FAIL */
	"ok",		/* V_OK */
	"close",	/* V_CLOSE */
	"info",		/* V_INFO */
};

struct check_res {
	enum verdict	 v;
	int		 code;
	char		 reason[64];
};

/* Act on a check; ended: the tmux client is gone. */
static void
check_apply(struct term *t, const struct check_res *c, bool mark, bool ended)
{
	if (c->v != V_FAIL && mark) {
		t->last_mark = t->last_check;
		t->io_since_mark = false;
	}
	if (c->v == V_INFO)
		dp_wsapp_info(&t->out, c->reason);
	if (c->v == V_INFO || c->v == V_CLOSE)
		closing(t, c->code, c->reason);
	if (ended && !t->done) {
		if (t->att_lost)
			closing(t, 1011, "Terminal unavailable");
		else
			closing(t, 1000, "Session ended");
	}
}

#ifdef TERMINAL_DB
/*
 * The check every check_ms: bytes, activity mark, login session, the
 * environment's status, our session row.  Fills c (V_FAIL when the
 * database failed).
 */
static void
check_query(struct term *t, bool mark, struct check_res *c)
{
	static const char sql[] =
	    "WITH s AS (UPDATE terminal_sessions SET bytes_in = $4::bigint, "
	    "bytes_out = $5::bigint WHERE id = $3 RETURNING id), "
	    "e AS (UPDATE environments SET last_activity = now() "
	    "WHERE id = $1 AND $6::bool RETURNING id), "
	    "w AS (UPDATE ws_connections SET seen_at = now() WHERE id = $7 "
	    "RETURNING id) "
	    "SELECT (SELECT status FROM environments WHERE id = $1), "
	    "EXISTS (SELECT 1 FROM login_sessions l JOIN users u "
	    "ON u.id = l.user_id WHERE l.id = $2 AND l.revoked_at IS NULL "
	    "AND u.is_active AND u.deleted_at IS NULL), "
	    "EXISTS (SELECT 1 FROM s), (SELECT count(*) FROM e), "
	    "EXISTS (SELECT 1 FROM w)";
	char		 bi[24], bo[24];
	const char	*p[7], *status, *why = NULL;
	PGresult	*r = NULL;

	memset(c, 0, sizeof(*c));
	c->v = V_FAIL;
	if (db(t) == NULL)
		goto out;
	snprintf(bi, sizeof(bi), "%lld", (long long)t->bytes_in);
	snprintf(bo, sizeof(bo), "%lld", (long long)t->bytes_out);
	p[0] = t->env.id;
	p[1] = t->user.sid;
	p[2] = t->session;
	p[3] = bi;
	p[4] = bo;
	p[5] = mark ? "true" : "false";
	p[6] = t->slot;
	r = dp_db_exec(t->db, sql, 7, p);
	if (!dp_db_ok(r) || PQntuples(r) != 1)
		goto out;
	c->v = V_OK;
	c->code = 1000;
	status = dp_db_val(r, 0, 0);
	if (PQgetvalue(r, 0, 1)[0] != 't') {
		c->v = V_CLOSE;
		c->code = 1008;
		why = "Authentication failed";
	} else if (status == NULL || strcmp(status, "running") != 0) {
		c->v = V_INFO;
		why = dp_wsapp_status_reason(status);
	} else if (PQgetvalue(r, 0, 2)[0] != 't') {
		c->v = V_CLOSE;
		why = "Session terminated";
	} else if (PQgetvalue(r, 0, 4)[0] != 't') {
		/* Dropped as stale (sql/009_ws_seen.sql): no longer counted. */
		c->v = V_CLOSE;
		c->code = 1011;
		why = "Service temporarily unavailable";
	}
	if (why != NULL)
		snprintf(c->reason, sizeof(c->reason), "%s", why);
out:
	PQclear(r);
	db_close(t);
}

static void
check(struct term *t, bool ended)
{
	struct check_res	 c;
	bool			 mark;

	t->last_check = dp_mono_ms();
	mark = t->io_since_mark && t->last_check - t->last_mark >= MARK_MS;
	check_query(t, mark, &c);
	check_apply(t, &c, mark, ended);
}
#else
static char	 heavy_path[4096];	/* ws/terminal-full beside us */
static sigset_t	 orig_mask;		/* the mask before ours, for children */

/*
 * Start a terminal-full helper with its stdout on a pipe (*fd, close on
 * exec); lowly: at a lower CPU priority, so that it does not compete
 * with the screen it runs beside.  Its pid, or -1.
 */
static pid_t
helper_spawn(char *argv[], bool lowly, int *fd)
{
	int	 pfds[2];
	pid_t	 pid;

	*fd = -1;
	if (pipe2(pfds, O_CLOEXEC) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		close(pfds[0]);
		close(pfds[1]);
		return -1;
	}
	if (pid == 0) {
		(void)dup2(pfds[1], STDOUT_FILENO);
		(void)sigprocmask(SIG_SETMASK, &orig_mask, NULL);
		if (lowly)
			(void)setpriority(PRIO_PROCESS, 0, 10);
		execv(argv[0], argv);
		_exit(127);
	}
	close(pfds[1]);
	*fd = pfds[0];
	return pid;
}

/* Parse the helper's "<verdict> <code> <reason>" line; 0 or -1. */
static int
check_parse(char *line, struct check_res *c)
{
	char	*sp, *code;
	int64_t	 n;
	int	 i;

	line[strcspn(line, "\n")] = '\0';
	memset(c, 0, sizeof(*c));
	c->v = V_FAIL;
	sp = strchr(line, ' ');
	if (sp != NULL)
		*sp++ = '\0';
	for (i = 0; i < V__MAX; i++)
		if (strcmp(line, verdict_names[i]) == 0)
			break;
	if (i == V__MAX)
		return -1;
	c->v = (enum verdict)i;
	if (c->v == V_OK || c->v == V_FAIL)
		return 0;
	if (sp == NULL || (code = sp, (sp = strchr(sp, ' ')) == NULL))
		return -1;
	*sp++ = '\0';
	if (dp_parse_int64(code, 1000, 4999, &n) < 0 || *sp == '\0')
		return -1;
	c->code = (int)n;
	snprintf(c->reason, sizeof(c->reason), "%s", sp);
	return 0;
}

/*
 * Start "terminal-full --check" (it connects, runs the query and prints
 * its verdict) with t's figures; lowly: at a lower CPU priority.  Without
 * a helper check_pid stays -1.
 */
static void
check_spawn(struct term *t, bool lowly)
{
	char	 bi[24], bo[24];
	char	*argv[10];

	t->check_mark = t->io_since_mark &&
	    t->last_check - t->last_mark >= MARK_MS;
	snprintf(bi, sizeof(bi), "%lld", (long long)t->bytes_in);
	snprintf(bo, sizeof(bo), "%lld", (long long)t->bytes_out);
	argv[0] = heavy_path;
	argv[1] = (char *)"--check";
	argv[2] = t->env.id;
	argv[3] = t->user.sid;
	argv[4] = t->session;
	argv[5] = bi;
	argv[6] = bo;
	argv[7] = (char *)(t->check_mark ? "1" : "0");
	argv[8] = t->slot;
	argv[9] = NULL;
	t->check_got = 0;
	t->check_end = t->last_check + CHECK_WAIT_MS;
	if ((t->check_pid = helper_spawn(argv, lowly, &t->check_fd)) < 0)
		t->check_pid = t->check_fd = -1;
}

/*
 * The periodic check runs beside the loop, as the claim does: the screen,
 * input, pings and a client's leaving go on while it connects and asks
 * (milliseconds, or up to CHECK_WAIT_MS when PostgreSQL hangs).
 */
static void
check_start(struct term *t)
{
	t->last_check = dp_mono_ms();
	if (t->check_pid > 0)
		return;			/* the last one still runs */
	check_spawn(t, true);
}

/* Stop a helper (*pid, its stdout *fd) if one runs. */
static void
helper_stop(pid_t *pid, int *fd)
{
	int	 st;

	if (*pid > 0) {
		(void)kill(*pid, SIGKILL);
		(void)waitpid(*pid, &st, 0);
	}
	if (*fd >= 0)
		close(*fd);
	*pid = *fd = -1;
}

/*
 * A helper's stdout fd is readable: read into line (cap bytes, *got of
 * them so far).  1 once its verdict line is whole or it ended (line as it
 * stands), 0 while more is to come.
 */
static int
helper_line(int fd, char *line, size_t cap, size_t *got)
{
	ssize_t	 r;

	r = read(fd, line + *got, cap - 1 - *got);
	if (r < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (r > 0) {
		*got += (size_t)r;
		line[*got] = '\0';
		if (strchr(line, '\n') == NULL && *got < cap - 1)
			return 0;
	}
	line[*got] = '\0';
	return 1;
}

static void
check_stop(struct term *t)
{
	helper_stop(&t->check_pid, &t->check_fd);
}

/*
 * The check's stdout is readable, or its time is up (timeout, or no
 * helper): once its verdict is whole, applied (ended: as check_apply).
 */
static void
check_read(struct term *t, bool timeout, bool ended)
{
	struct check_res	 c = { .v = V_FAIL };

	if (!timeout && helper_line(t->check_fd, t->check_line,
	    sizeof(t->check_line), &t->check_got) == 0)
		return;
	check_stop(t);
	t->check_line[t->check_got] = '\0';
	if (timeout || check_parse(t->check_line, &c) < 0)
		c.v = V_FAIL;
	check_apply(t, &c, t->check_mark, ended);
}

/* The check waited for (the session ended: its verdict says how). */
static void
check(struct term *t, bool ended)
{
	struct pollfd	 pfd;
	int64_t		 left;
	int		 r;

	check_stop(t);
	t->last_check = dp_mono_ms();
	check_spawn(t, false);
	if (t->check_pid < 0)
		check_read(t, true, ended);
	pfd.fd = t->check_fd;
	pfd.events = POLLIN;
	while (t->check_pid > 0) {
		left = t->check_end - dp_mono_ms();
		r = left > 0 ? poll(&pfd, 1, (int)left) : 0;
		if (r > 0)
			check_read(t, false, ended);
		else if (r == 0 || errno != EINTR)
			check_read(t, true, ended);
	}
}

/*
 * The slot authorize-ws reserved (pid 0) becomes ours through
 * "terminal-full --claim SLOT PID", left to run beside the screen: the
 * loop reads its verdict when it comes.
 */
static void
claim_start(struct term *t)
{
	char	 pid[16];
	char	*argv[5];

	t->claim_pid = -1;
	t->claim_fd = -1;
	if (!t->claim)
		return;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	argv[0] = heavy_path;
	argv[1] = (char *)"--claim";
	argv[2] = t->slot;
	argv[3] = pid;
	argv[4] = NULL;
	if ((t->claim_pid = helper_spawn(argv, true, &t->claim_fd)) < 0)
		closing(t, 1011, "Service temporarily unavailable");
}

/* Stop a claim still running (the socket ends); --end frees the slot. */
static void
claim_stop(struct term *t)
{
	helper_stop(&t->claim_pid, &t->claim_fd);
}

/* The claim's stdout is readable: its verdict line, once whole. */
static void
claim_read(struct term *t)
{
	struct check_res	 c = { .v = V_FAIL };

	if (helper_line(t->claim_fd, t->claim_line, sizeof(t->claim_line),
	    &t->claim_got) == 0)
		return;
	claim_stop(t);
	t->claim_line[t->claim_got] = '\0';
	if (check_parse(t->claim_line, &c) < 0 || c.v == V_FAIL) {
		dp_error("claim of slot %s failed", t->slot);
		closing(t, 1011, "Service temporarily unavailable");
	} else if (c.v != V_OK)
		check_apply(t, &c, false, false);
}
#endif

#ifdef TERMINAL_DB
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
	const char	*p[5], *m;
	PGresult	*r;
	int		 rc = -1;

	dp_new_id(t->session);
	p[0] = t->session;
	p[1] = t->user.id;
	p[2] = t->env.id;
	p[3] = t->req.device_id[0] ? t->req.device_id : NULL;
	p[4] = t->slot;
	/* Run once per process: not prepared (one round trip). */
	r = PQexecParams(dp_db_conn(t->db), sql, 5, NULL, p, NULL, NULL, 0);
	if (dp_db_ok(r))
		rc = 0;
	else {
		m = r != NULL ? PQresultErrorMessage(r) :
		    PQerrorMessage(dp_db_conn(t->db));
		dp_error("database: %.*s", (int)strcspn(m, "\n"), m);
	}
	PQclear(r);
	return rc;
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

#endif /* TERMINAL_DB */

#ifndef DP_TERMINAL_PUMP
/* ---- attach ------------------------------------------------------------- */

/* The driver's view of the environment (kubeconfig: once attach opened it). */
static void
conn_spec(struct term *t, struct dp_cluster_conn *c, struct dp_env_spec *s)
{
	c->id = t->env.cluster_id;
	c->provider = t->env.provider;
	c->endpoint = t->env.endpoint;
	c->kubeconfig = t->kubeconfig;
	s->id = t->env.id;
	s->user_id = t->user.id;
	s->name = t->env.name;
	s->image = t->env.image;
	s->port = t->env.port;
}

#ifdef TERMINAL_DB
/* What attach will ask the driver, started while the slot is taken. */
static void
attach_probe(struct term *t)
{
	struct dp_cluster_conn	 c = { 0 };
	struct dp_env_spec	 s = { 0 };
	struct dp_err		 err = { 0 };

	if (t->drv == NULL || t->drv->attach_probe == NULL)
		return;
	conn_spec(t, &c, &s);
	if (t->drv->attach_probe(&c, &s, &err) < 0)
		dp_warn("attach probe %s: %s", t->env.id, err.msg);
}
#endif

static int
attach(struct term *t, struct dp_err *err)
{
	struct dp_cluster_conn	 c = { 0 };
	struct dp_env_spec	 s = { 0 };
	struct dp_buf		 key = { 0 }, plain = { 0 };
	int			 rc = -1;

	if (t->drv == NULL || t->drv->attach == NULL) {
		dp_err_set(err, 0, "no driver for %s", t->env.provider);
		goto out;
	}
#ifdef TERMINAL_DB
	/* (ws/terminal has no OpenSSL: its tickets carry no kubeconfig.) */
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
#endif
	conn_spec(t, &c, &s);
	if (t->drv->attach(&c, &s, t->req.cols, t->req.rows, &t->att,
	    err) < 0)
		goto out;
	t->attached = true;
	if (t->att.fd < 0) {
		/* A driver that bridges through priv only: not supported. */
		dp_err_set(err, 0, "attach gave no terminal descriptor");
		goto out;
	}
	(void)dp_fd_nonblock(t->att.fd);
	if (t->att.pre != NULL) {
		/* Output the driver read already: it goes after the welcome. */
		dp_buf_add(&t->raw, t->att.pre, t->att.npre);
		free(t->att.pre);
		t->att.pre = NULL;
	}
	rc = 0;
out:
	dp_buf_wipe(&key);
	dp_buf_wipe(&plain);
	return rc;
}

#endif

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

/* ---- attaching again ---------------------------------------------------- */

#if defined(DP_TERMINAL_PUMP) || defined(TERMINAL_DB)
/* What a socket carries across its execs (the pump, the resume) beside
 * its ids: BYTES_IN BYTES_OUT REATTACHES SINCE, four arguments. */
struct carry {
	char	 bi[24], bo[24], n[16], since[24];
};

static void
carry_args(const struct term *t, struct carry *c, char *argv[4])
{
	snprintf(c->bi, sizeof(c->bi), "%lld", (long long)t->bytes_in);
	snprintf(c->bo, sizeof(c->bo), "%lld", (long long)t->bytes_out);
	snprintf(c->n, sizeof(c->n), "%d", t->reattaches);
	snprintf(c->since, sizeof(c->since), "%lld",
	    (long long)t->reattach_since);
	argv[0] = c->bi;
	argv[1] = c->bo;
	argv[2] = c->n;
	argv[3] = c->since;
}

/* carry_args' four arguments back into t; 0 or -1. */
static int
carry_parse(struct term *t, char *const argv[4])
{
	int64_t	 bi, bo, n, since;

	if (dp_parse_int64(argv[0], 0, INT64_MAX, &bi) < 0 ||
	    dp_parse_int64(argv[1], 0, INT64_MAX, &bo) < 0 ||
	    dp_parse_int64(argv[2], 0, REATTACH_MAX, &n) < 0 ||
	    dp_parse_int64(argv[3], 0, INT64_MAX, &since) < 0)
		return -1;
	t->bytes_in = bi;
	t->bytes_out = bo;
	t->reattaches = (int)n;
	t->reattach_since = since;
	return 0;
}
#endif

/*
 * tmux detached our client (detach-client typed in the session; its keys
 * are unbound): the session lives on, so the terminal attaches again
 * rather than end the socket as if the session had (CONTRACT §3.5: only
 * the last shell's exit ends it).  At most REATTACH_MAX times in
 * REATTACH_MS: a session that keeps detaching ends the socket as
 * "Terminal unavailable".
 */
static bool
reattach_allowed(struct term *t)
{
	int64_t	 now = dp_mono_ms();

	if (t->reattaches == 0 || now - t->reattach_since >= REATTACH_MS) {
		t->reattaches = 0;
		t->reattach_since = now;
	}
	if (t->reattaches >= REATTACH_MAX) {
		dp_warn("terminal %s: detached %d times, not attaching again",
		    t->env.id, t->reattaches);
		t->att_lost = true;
		return false;
	}
	t->reattaches++;
	return true;
}

/* The size the phone last asked for (its resize), for the next client. */
static void
size_keep(struct term *t)
{
	struct winsize	 wsz = { 0 };

	if (t->att.fd >= 0 && ioctl(t->att.fd, TIOCGWINSZ, &wsz) == 0 &&
	    wsz.ws_col > 0 && wsz.ws_row > 0) {
		t->req.cols = wsz.ws_col;
		t->req.rows = wsz.ws_row;
	}
	if (t->req.cols <= 0 || t->req.rows <= 0) {
		t->req.cols = 80;
		t->req.rows = 24;
	}
	/* (A program in the session may have set any size.) */
	t->req.cols = t->req.cols < 10 ? 10 : t->req.cols > 500 ? 500 :
	    t->req.cols;
	t->req.rows = t->req.rows < 5 ? 5 : t->req.rows > 200 ? 200 :
	    t->req.rows;
}

#ifndef DP_TERMINAL_PUMP
/* The decrypted kubeconfig, wiped and gone (attach opens it again). */
static void
kubeconfig_drop(struct term *t)
{
	if (t->kubeconfig != NULL) {
		explicit_bzero(t->kubeconfig, strlen(t->kubeconfig));
		free(t->kubeconfig);
		t->kubeconfig = NULL;
	}
}

/* A new client attached after a detach: its redraw, the held keys. */
static void
attached_again(struct term *t)
{
	dp_info("terminal %s: detached by tmux, attached again", t->env.id);
	t->ntail = 0;
	t->held_since = 0;
	if (t->raw.len > 0)
		send_output(t, false);
	write_pty(t);
}

/* A new client of the same session, in this process; false: end. */
static bool
reattach(struct term *t)
{
	struct dp_err	 err = { 0 };

	if (!reattach_allowed(t))
		return false;
	size_keep(t);
	detach(t);
	kubeconfig_drop(t);
	if (attach(t, &err) < 0) {
		dp_error("attach %s again: %s", t->env.id, err.msg);
		t->att_lost = true;
		return false;
	}
	attached_again(t);
	/* The login session and the environment again, now (as the pump's
	 * resume does), not at the next periodic check. */
#ifdef TERMINAL_DB
	check(t, false);
#else
	check_stop(t);
	check_start(t);
#endif
	return true;
}
#else
/*
 * The pump has no driver: it becomes "terminal-full --resume SID ENV
 * SESSION SLOT CLAIM COLS ROWS BYTES_IN BYTES_OUT REATTACHES SINCE"
 * (same pid, mask kept as for --end; the input held for the next client
 * in DP_TERM_HELD, hex, HELD_MAX bytes at most: the environment, unlike
 * the command line, is its owner's only), which attaches and pumps again.
 * Returns (false) only when the exec fails.
 */
static bool
reattach(struct term *t)
{
	struct carry	 c;
	char		 cols[16], rows[16], held[2 * HELD_MAX + 1];
	char		*argv[14];
	bool		 owed;

	if (!reattach_allowed(t))
		return false;
	size_keep(t);
	owed = t->claim && (t->claim_at_us != 0 || t->claim_pid > 0);
	claim_stop(t);
	check_stop(t);
	detach(t);
	(void)dp_wsapp_flush_wait(STDOUT_FILENO, &t->out, FINAL_FLUSH_MS);
	snprintf(cols, sizeof(cols), "%d", t->req.cols);
	snprintf(rows, sizeof(rows), "%d", t->req.rows);
	dp_hex(held, (const unsigned char *)t->pin.s,
	    t->pin.len < HELD_MAX ? t->pin.len : HELD_MAX);
	argv[0] = heavy_path;
	argv[1] = (char *)"--resume";
	argv[2] = t->user.sid;
	argv[3] = t->env.id;
	argv[4] = t->session;
	argv[5] = t->slot;
	argv[6] = (char *)(owed ? "1" : "0");
	argv[7] = cols;
	argv[8] = rows;
	carry_args(t, &c, argv + 9);
	argv[13] = NULL;
	if (setenv("DP_TERM_HELD", held, 1) == 0)
		execv(argv[0], argv);
	dp_error("exec %s: %s", argv[0], strerror(errno));
	t->att_lost = true;
	return false;
}
#endif

/* ---- main loop ---------------------------------------------------------- */

/* Microseconds to the next timer (now_us: mono_us()). */
static int64_t
timeout_of(const struct term *t, int64_t now_us)
{
	int64_t	 next = (t->last_ping + t->ping_ms) * 1000;

	if ((t->last_client + t->idle_ms) * 1000 < next)
		next = (t->last_client + t->idle_ms) * 1000;
	if ((t->last_check + t->check_ms) * 1000 < next)
		next = (t->last_check + t->check_ms) * 1000;
	if (t->flush_at_us != 0 && t->flush_at_us < next)
		next = t->flush_at_us;
	if (t->claim_at_us != 0 && t->claim_at_us < next)
		next = t->claim_at_us;
	if (t->check_pid > 0 && t->check_end * 1000 < next)
		next = t->check_end * 1000;
	if (t->lines.due != 0 && t->lines.due * 1000 < next)
		next = t->lines.due * 1000;
	if (t->held_since != 0 && t->pin.len > 0 &&
	    (t->held_since + HOLD_MS) * 1000 < next)
		next = (t->held_since + HOLD_MS) * 1000;
	return next <= now_us ? 0 : next - now_us;
}

static bool
child_exited(struct term *t)
{
	int	 st;

	if (t->att.pid <= 0)
		return false;
	if (waitpid(t->att.pid, &st, WNOHANG) == t->att.pid) {
		t->att.pid = -1;
		t->att_lost = WIFEXITED(st) &&
		    WEXITSTATUS(st) == DP_ATTACH_LOST;
		return true;
	}
	return false;
}

/*
 * The pty ended: its child is exiting (it held the other side).  Its
 * status says why (a broken connection is not the session's end), so
 * it is waited for a moment.
 */
static void
child_reap(struct term *t)
{
	int	 i;

	for (i = 0; i < 40 && t->att.pid > 0 && !child_exited(t); i++)
		usleep(5000);
}

static void
pump(struct term *t, const sigset_t *waitmask)
{
	struct pollfd	 fds[5];
	struct timespec	 ts;
	int64_t		 now, us;
	bool		 ended = false;
	int		 r;

	(void)dp_fd_nonblock(STDOUT_FILENO);
	fds[2].fd = fds[4].fd = -1;
	fds[2].events = fds[4].events = POLLIN;
	fds[3].fd = STDOUT_FILENO;
	while (!t->done) {
		(void)holding(t);	/* (a hold whose time passed ends) */
		us = timeout_of(t, mono_us());
		fds[0].fd = STDIN_FILENO;
		/* Keystrokes the pty does not take wait in websocketd and
		 * TCP once INPUT_MAX of them wait here (back-pressure). */
		fds[0].events = t->pin.len < INPUT_MAX ? POLLIN : 0;
		fds[1].fd = t->att.fd;
		/* A burst gathering (flush_at_us) leaves the pty unwatched. */
		fds[1].events = (t->out.len < PENDING_MAX &&
		    t->flush_at_us == 0 ? POLLIN : 0) |
		    (t->pin.len > 0 && !holding(t) ? POLLOUT : 0);
		/* Only a backlog waits for stdout (and then for its errors). */
		fds[3].events = t->out.len > 0 ? POLLOUT : 0;
		fds[0].revents = fds[1].revents = fds[2].revents = 0;
		fds[3].revents = fds[4].revents = 0;
#ifndef TERMINAL_DB
		fds[2].fd = t->claim_fd;	/* -1 (ignored) once done */
		fds[4].fd = t->check_fd;
#endif
		ts.tv_sec = (time_t)(us / 1000000);
		ts.tv_nsec = (long)(us % 1000000) * 1000L;
		r = ppoll(fds, 5, &ts, waitmask);
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
		dp_wslines_expire(&t->lines, dp_mono_ms(), on_line, t);
#ifndef TERMINAL_DB
		if (r > 0 && fds[2].fd >= 0 &&
		    (fds[2].revents & (POLLIN | POLLHUP | POLLERR)))
			claim_read(t);
		if (t->claim_at_us != 0 && mono_us() >= t->claim_at_us) {
			t->claim_at_us = 0;
			claim_start(t);
		}
		if (r > 0 && fds[4].fd >= 0 &&
		    (fds[4].revents & (POLLIN | POLLHUP | POLLERR)))
			check_read(t, false, false);
		else if (t->check_pid > 0 && dp_mono_ms() >= t->check_end)
			check_read(t, true, false);
#endif
		if (r > 0 && (fds[3].revents & (POLLERR | POLLHUP))) {
			t->client_gone = true;	/* websocketd stopped reading */
			break;
		}
		if (r > 0 && (fds[1].revents & POLLOUT))
			write_pty(t);
		if (r > 0 && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
			if (!read_pty(t, false))
				ended = true;
		if (got_chld) {
			got_chld = 0;
			if (child_exited(t)) {
				(void)read_pty(t, true);
				ended = true;
			}
		}
		if (!ended && t->flush_at_us != 0 &&
		    mono_us() >= t->flush_at_us && !read_pty(t, true))
			ended = true;
		now = dp_mono_ms();
		if (ended && t->raw.len > 0)
			send_output(t, true);
		flush_out(t);
		if (t->done)
			break;
		if (ended) {
			child_reap(t);
			if (!t->att_lost && detached(t) && reattach(t)) {
				ended = false;
				continue;
			}
			check(t, true);	/* (stops one still running) */
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
#ifdef TERMINAL_DB
			check(t, false);
#else
			check_start(t);
#endif
		flush_out(t);
	}
#ifndef TERMINAL_DB
	check_stop(t);
#endif
	/* The last messages (a close says why): a while for a slow reader,
	 * not forever for one that stopped. */
	if (!t->client_gone)
		(void)dp_wsapp_flush_wait(STDOUT_FILENO, &t->out,
		    FINAL_FLUSH_MS);
}

/* Catch the signals; they wait blocked, ppoll takes them (waitmask). */
static void
signals(sigset_t *orig, sigset_t *waitmask)
{
	static const int	 sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGCHLD };
	struct sigaction	 sa;
	sigset_t		 block;
	size_t			 i;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigemptyset(&block);
	for (i = 0; i < DP_NITEMS(sigs); i++) {
		sigaction(sigs[i], &sa, NULL);
		sigaddset(&block, sigs[i]);
	}
	signal(SIGPIPE, SIG_IGN);
	sigprocmask(SIG_BLOCK, &block, orig);
	/* Ours stay blocked across our execs (what came waits for the next
	 * program): the mask before ours never has them. */
	for (i = 0; i < DP_NITEMS(sigs); i++)
		sigdelset(orig, sigs[i]);
	*waitmask = *orig;
}

/* "<dir of this program>/<name>" in buf; 0 or -1. */
static int
beside(const char *name, char *buf, size_t size)
{
	char	 self[4096], *slash;
	ssize_t	 n;
	int	 w, rc = -1;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0)
		goto out;
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL)
		goto out;
	*slash = '\0';
	w = snprintf(buf, size, "%s/%s", self, name);
	if (w >= 0 && (size_t)w < size)
		rc = 0;
out:
	return rc;
}

static void
term_release(struct term *t)
{
	dp_buf_release(&t->out);
	dp_buf_release(&t->raw);
	dp_buf_release(&t->pin);
	dp_wslines_release(&t->lines);
}

static void
timers_start(struct term *t)
{
	int64_t	 now = dp_mono_ms();

	t->ping_ms = dp_wsapp_env_ms("DP_WS_PING_MS", 25000);
	t->idle_ms = dp_wsapp_env_ms("DP_WS_IDLE_MS", 120000);
	t->check_ms = dp_wsapp_env_ms("DP_WS_CHECK_MS", 30000);
	t->last_client = t->last_ping = t->last_check = t->last_mark = now;
}

#ifndef TERMINAL_DB
/*
 * Become "terminal-full --end SESSION ENV BYTES_IN BYTES_OUT CLOSE_CODE
 * SLOT": it ends the session row and frees the slot.  The mask stays:
 * websocketd's SIGINT/SIGTERM for the gone client must not kill it
 * (default actions after the exec) before it blocks them and frees the
 * slot.  Returns only when the exec fails.
 */
static void
end_exec(struct term *t)
{
	char	 bi[24], bo[24], cc[16];
	char	*end[9];

	snprintf(bi, sizeof(bi), "%lld", (long long)t->bytes_in);
	snprintf(bo, sizeof(bo), "%lld", (long long)t->bytes_out);
	snprintf(cc, sizeof(cc), "%d", t->close_code ? t->close_code : 1000);
	end[0] = heavy_path;
	end[1] = (char *)"--end";
	end[2] = t->session;
	end[3] = t->env.id;
	end[4] = bi;
	end[5] = bo;
	end[6] = cc;
	end[7] = t->slot;
	end[8] = NULL;
	execv(end[0], end);
	/* The next socket of the user here drops the slot. */
	dp_error("exec %s: %s", end[0], strerror(errno));
}

/*
 * Pump (claiming a reserved slot meanwhile: CLAIM_DELAY_US on, when the
 * reattach's redraw has gone, so that the helper's start does not slow
 * it) until the end, then end.
 */
static void
pump_to_end(struct term *t, const sigset_t *waitmask)
{
	timers_start(t);
	if (t->claim)
		t->claim_at_us = mono_us() + CLAIM_DELAY_US;
	if (child_exited(t))
		got_chld = 1;	/* pump() notices at once */
	pump(t, waitmask);
	claim_stop(t);
	detach(t);
	term_release(t);
	end_exec(t);
}
#endif

#if defined(DP_TERMINAL_PUMP) || defined(TERMINAL_DB)
/* An id argument into a 25-byte field; 0 or -1. */
static int
arg_id(const char *a, char out[25])
{
	int	 rc = -1;

	if (a != NULL && dp_is_id(a)) {
		memcpy(out, a, 25);
		rc = 0;
	}
	return rc;
}
#endif

#ifdef DP_TERMINAL_PUMP

/*
 * terminal-pump FD PID ENV SID SESSION SLOT CLAIM LOGFORMAT LOGLEVEL
 * BYTES_IN BYTES_OUT REATTACHES SINCE, exec'd by ws/terminal-full after
 * the welcome or a resume (FD the pty, PID its tmux client, our child;
 * CLAIM 1 when SLOT is a reservation still to claim; the byte counts so
 * far; the reattaches since SINCE, reattach_allowed).  Pumps until the
 * end, then becomes "terminal-full --end".
 */
int
main(int argc, char *argv[])
{
	struct term	 t;
	sigset_t	 waitmask;
	int64_t		 fd, pid, claim;

	memset(&t, 0, sizeof(t));
	t.att.fd = t.att.pid = t.claim_fd = t.claim_pid = -1;
	t.check_fd = t.check_pid = -1;
	signals(&orig_mask, &waitmask);
	if (argc != 14 || dp_parse_int64(argv[1], 3, 65535, &fd) < 0 ||
	    dp_parse_int64(argv[2], 2, INT32_MAX, &pid) < 0 ||
	    arg_id(argv[3], t.env.id) < 0 || arg_id(argv[4], t.user.sid) < 0 ||
	    arg_id(argv[5], t.session) < 0 || arg_id(argv[6], t.slot) < 0 ||
	    dp_parse_int64(argv[7], 0, 1, &claim) < 0 ||
	    carry_parse(&t, argv + 10) < 0 ||
	    beside(HEAVY_NAME, heavy_path, sizeof(heavy_path)) < 0) {
		fprintf(stderr, "terminal-pump: run by ws/terminal only\n");
		return 1;
	}
	dp_log_init("ws-terminal", argv[8], argv[9]);
	t.att.fd = (int)fd;
	t.att.pid = (int)pid;
	t.attached = true;
	t.claim = claim == 1;
	(void)fcntl(t.att.fd, F_SETFD, FD_CLOEXEC);
	pump_to_end(&t, &waitmask);
	return 0;
}
#else
/* Refuse after the upgrade: the close message, then exit. */
static int
refuse(struct term *t, int code, const char *reason)
{
	closing(t, code, reason);
	return 1;
}

/* The welcome (and the info when the session was there), sent. */
static void
welcome(struct term *t)
{
	struct json_object	*o = json_object_new_object();
	char			 msg[256];

	snprintf(msg, sizeof(msg), "Connected to %s", t->env.name);
	dp_json_str(o, "type", "welcome");
	dp_json_str(o, "message", msg);
	json_object_object_add(o, "environment",
	    dp_wsapp_env_json(&t->env, true));
	dp_json_str(o, "session_id", t->session);
	dp_wsapp_msg(&t->out, o);
	if (t->att.existed)
		dp_wsapp_info(&t->out, "Reattached to existing session");
	flush_out(t);
}

#ifdef TERMINAL_DB
/*
 * After the welcome: become the pump (same pid).  Returns only when it
 * is not there or does not start; the caller then pumps itself.
 */
static void
exec_pump(struct term *t)
{
	struct carry	 c;
	char		 path[4096], fd[16], pid[16];
	char		*argv[15];
	int		 fl;

	if (beside(PUMP_NAME, path, sizeof(path)) < 0 ||
	    access(path, X_OK) < 0 || t->att.fd < 0 || t->att.pid <= 0 ||
	    t->att.priv != NULL)
		return;
	snprintf(fd, sizeof(fd), "%d", t->att.fd);
	snprintf(pid, sizeof(pid), "%d", t->att.pid);
	argv[0] = path;
	argv[1] = fd;
	argv[2] = pid;
	argv[3] = t->env.id;
	argv[4] = t->user.sid;
	argv[5] = t->session;
	argv[6] = t->slot;
	argv[7] = (char *)(t->claim ? "1" : "0");
	argv[8] = dp_cfg.web_log_format;
	argv[9] = dp_cfg.web_log_level;
	carry_args(t, &c, argv + 10);
	argv[14] = NULL;
	fl = fcntl(t->att.fd, F_GETFD);
	(void)fcntl(t->att.fd, F_SETFD, fl & ~FD_CLOEXEC);
	/* The mask stays: signals that came meanwhile wait for the pump. */
	dp_wsreq_release(&t->req);
	kubeconfig_drop(t);
	execv(path, argv);
	dp_warn("exec %s: %s; pumping in process", path, strerror(errno));
	(void)fcntl(t->att.fd, F_SETFD, fl);
}
#endif

/* websocketd's request: SCRIPT_NAME=/terminal, PATH_INFO=/<id>[/]. */
static void
request(struct term *t)
{
	const char	*pi = getenv("PATH_INFO");
	char		 seg[64];

	snprintf(seg, sizeof(seg), "%s", pi && *pi == '/' ? pi + 1 : "");
	seg[strcspn(seg, "/")] = '\0';
	dp_wsreq_parse(&t->req, DP_WSK_TERMINAL, getenv("QUERY_STRING"), seg,
	    getenv("HTTP_AUTHORIZATION"));
}

static void
term_free(struct term *t)
{
	dp_wsreq_release(&t->req);
	dp_wsapp_env_release(&t->env);
	kubeconfig_drop(t);
	term_release(t);
}

#ifdef DP_TERMINAL_LIGHT
/*
 * The ticket authorize-ws sent along (X-DevPocket-Ticket), checked
 * against the request's token and target: 1 with the user, the
 * environment, the slot and the session in t, else 0 (no ticket, or one
 * that does not do: ws/terminal-full then admits the socket itself).
 */
static int
ticket_admit(struct term *t)
{
	const char		*tk = getenv("HTTP_X_DEVPOCKET_TICKET");
	struct dp_buf		 key = { 0 };
	struct dp_err		 err = { 0 };
	struct dp_wsticket	 w;
	int			 r;

	if (tk == NULL || *tk == '\0' || t->req.token == NULL)
		return 0;
	if (dp_keyfile_read(dp_cfg.auth_jwt_key_file, &key, &err) < 0) {
		dp_error("jwt key: %s", err.msg);
		return 0;
	}
	r = dp_wsticket_open(tk, key.s, key.len, t->req.token,
	    (int64_t)dp_now(), &w, &err);
	dp_buf_wipe(&key);
	if (r < 0) {
		dp_warn("ticket refused: %s", err.msg);
		return 0;
	}
	if (w.kind != DP_WSK_TERMINAL || strcmp(w.env.id, t->req.target) != 0 ||
	    (dp_cfg.auth_require_verified_email && !w.user.verified) ||
	    strcmp(w.env.status, "running") != 0 ||
	    strcmp(w.env.provider, "local") != 0) {
		dp_warn("ticket refused: not for this socket");
		dp_wsticket_release(&w);
		return 0;
	}
	t->user = w.user;
	t->env = w.env;		/* the strings move to t */
	memcpy(t->slot, w.slot, sizeof(t->slot));
	memcpy(t->session, w.session, sizeof(t->session));
	return 1;
}

/*
 * No ticket: become ws/terminal-full, which runs the whole admission
 * from the same request (websocketd's environment and descriptors stay;
 * so does the mask: a signal that comes meanwhile waits for it).
 * Returns when it does not start.
 */
static void
hand_over(void)
{
	char	*argv[2];

	argv[0] = heavy_path;
	argv[1] = NULL;
	execv(heavy_path, argv);
	dp_error("exec %s: %s", heavy_path, strerror(errno));
}

int
main(int argc, char *argv[])
{
	struct term	 t;
	struct dp_err	 err = { 0 };
	sigset_t	 waitmask;
	int		 rc = 1;

	memset(&t, 0, sizeof(t));
	t.att.fd = t.att.pid = t.claim_fd = t.claim_pid = -1;
	t.check_fd = t.check_pid = -1;
	signals(&orig_mask, &waitmask);
	if (argc != 1) {
		fprintf(stderr, "usage: terminal (run by websocketd)\n");
		return 2;
	}
	if (beside(HEAVY_NAME, heavy_path, sizeof(heavy_path)) < 0 ||
	    dp_wsapp_init("ws-terminal") < 0) {
		rc = refuse(&t, 1011, "Service temporarily unavailable");
		goto out;
	}
	request(&t);
	if (!ticket_admit(&t)) {
		hand_over();
		rc = refuse(&t, 1011, "Service temporarily unavailable");
		goto out;
	}
	if (t.slot[0] == '\0') {
		rc = refuse(&t, 1008, "Too many connections");
		goto out;
	}
	t.claim = true;
	t.drv = dp_driver_get(t.env.provider);
	if (attach(&t, &err) < 0) {
		dp_error("attach %s: %s", t.env.id, err.msg);
		rc = refuse(&t, 1011, "Terminal unavailable");
		goto out;
	}
	welcome(&t);
	if (t.raw.len > 0)
		send_output(&t, false);
	flush_out(&t);
	if (t.done)
		goto out;
	/* Light already: pumps itself (no exec on the way to the prompt),
	 * the start's heap given back first. */
	dp_wsreq_release(&t.req);
	(void)malloc_trim(0);
	pump_to_end(&t, &waitmask);
	rc = 0;
out:
	detach(&t);
	if (t.slot[0] != '\0')
		end_exec(&t);
	term_free(&t);
	return rc;
}
#else
/*
 * terminal-full --check ENV SID SESSION BYTES_IN BYTES_OUT MARK SLOT (the
 * pump)
 */
static int
helper_check(struct term *t, char *argv[])
{
	struct check_res	 c;
	int64_t			 bi, bo, mark;

	if (!dp_is_id(argv[0]) || !dp_is_id(argv[1]) || !dp_is_id(argv[2]) ||
	    dp_parse_int64(argv[3], 0, INT64_MAX, &bi) < 0 ||
	    dp_parse_int64(argv[4], 0, INT64_MAX, &bo) < 0 ||
	    dp_parse_int64(argv[5], 0, 1, &mark) < 0 || !dp_is_id(argv[6]))
		return 2;
	memcpy(t->env.id, argv[0], 25);
	memcpy(t->user.sid, argv[1], 25);
	memcpy(t->session, argv[2], 25);
	memcpy(t->slot, argv[6], 25);
	t->bytes_in = bi;
	t->bytes_out = bo;
	check_query(t, mark == 1, &c);
	if (c.v == V_OK || c.v == V_FAIL)
		printf("%s\n", verdict_names[c.v]);
	else
		printf("%s %d %s\n", verdict_names[c.v], c.code, c.reason);
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * terminal-full --claim SLOT PID (the pump): make the reserved slot
 * process PID's.  Prints "ok", "fail" (database), or a close when the
 * reservation is gone (it outlived DP_WS_RESERVE_S and was dropped).
 */
static int
helper_claim(struct term *t, char *argv[])
{
	int64_t	 pid;
	int	 r = -1;

	if (!dp_is_id(argv[0]) || dp_parse_int64(argv[1], 2, INT32_MAX,
	    &pid) < 0)
		return 2;
	if (db(t) != NULL)
		r = dp_wsapp_slot_claim(t->db, argv[0], (int)pid);
	if (r > 0)
		printf("ok\n");
	else if (r == 0)
		printf("close 1011 Service temporarily unavailable\n");
	else
		printf("fail\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

/*
 * terminal-full --end SESSION ENV BYTES_IN BYTES_OUT CLOSE_CODE SLOT
 * (what the pump becomes): end the session row, free the slot.
 */
static int
helper_end(struct term *t, char *argv[])
{
	int64_t	 bi, bo, cc;

	if (!dp_is_id(argv[0]) || !dp_is_id(argv[1]) ||
	    dp_parse_int64(argv[2], 0, INT64_MAX, &bi) < 0 ||
	    dp_parse_int64(argv[3], 0, INT64_MAX, &bo) < 0 ||
	    dp_parse_int64(argv[4], 1000, 4999, &cc) < 0 ||
	    !dp_is_id(argv[5]))
		return 2;
	memcpy(t->session, argv[0], 25);
	memcpy(t->env.id, argv[1], 25);
	memcpy(t->slot, argv[5], 25);
	t->bytes_in = bi;
	t->bytes_out = bo;
	t->close_code = (int)cc;
	if (db(t) == NULL)
		return 1;
	session_end(t);
	return 0;
}

/*
 * terminal-full --resume SID ENV SESSION SLOT CLAIM COLS ROWS BYTES_IN
 * BYTES_OUT REATTACHES SINCE, which the pump becomes when tmux detached
 * its client (reattach): the socket's login session and environment
 * again, a new client of the same session (DP_TERM_HELD, hex, is typed
 * into it), then the pump.  The session row and the slot go on; main's
 * end closes them.
 */
static int
helper_resume(struct term *t, char *argv[], const sigset_t *waitmask)
{
	struct dp_err	 err = { 0 };
	char		 sid[25], env[25];
	const char	*held = getenv("DP_TERM_HELD"), *why;
	int64_t		 claim, cols, rows;
	size_t		 hl = held != NULL ? strlen(held) : 0;
	int		 r, fl;
	bool		 found;

	if (arg_id(argv[0], sid) < 0 || arg_id(argv[1], env) < 0 ||
	    arg_id(argv[2], t->session) < 0 || arg_id(argv[3], t->slot) < 0) {
		fprintf(stderr, "terminal-full: --resume is the pump's\n");
		t->session[0] = t->slot[0] = '\0';
		return 2;
	}
	/* The pump's stdout was non-blocking: what goes before the pump
	 * (the redraw, a close) must not be cut short. */
	if ((fl = fcntl(STDOUT_FILENO, F_GETFL)) != -1)
		(void)fcntl(STDOUT_FILENO, F_SETFL, fl & ~O_NONBLOCK);
	/* (session_end marks the environment by its id.) */
	snprintf(t->env.id, sizeof(t->env.id), "%s", env);
	if (dp_parse_int64(argv[4], 0, 1, &claim) < 0 ||
	    dp_parse_int64(argv[5], 1, 1000, &cols) < 0 ||
	    dp_parse_int64(argv[6], 1, 1000, &rows) < 0 ||
	    carry_parse(t, argv + 7) < 0 || hl > 2 * HELD_MAX ||
	    dp_buf_add_unhex(&t->pin, held != NULL ? held : "", hl) < 0)
		return refuse(t, 1011, "Terminal unavailable");
	(void)unsetenv("DP_TERM_HELD");
	if (db(t) == NULL)
		return refuse(t, 1011, "Service temporarily unavailable");
	r = dp_wsapp_resume(t->db, sid, env, &t->user, &t->env, &err);
	found = r > 0 && t->env.id[0] != '\0';
	snprintf(t->env.id, sizeof(t->env.id), "%s", env);
	if (r <= 0)
		return refuse(t, r < 0 ? 1011 : 1008, r < 0 ?
		    "Service temporarily unavailable" :
		    "Authentication failed");
	if (!found || strcmp(t->env.status, "running") != 0) {
		/* As the periodic check says it (§3.2). */
		why = dp_wsapp_status_reason(found ? t->env.status :
		    "terminated");
		dp_wsapp_info(&t->out, why);
		return refuse(t, 1000, why);
	}
	if (claim == 1 && dp_wsapp_slot_claim(t->db, t->slot,
	    (int)getpid()) != 1)
		return refuse(t, 1011, "Service temporarily unavailable");
	t->req.cols = (int)cols;
	t->req.rows = (int)rows;
	t->drv = dp_driver_get(t->env.provider);
	if (attach(t, &err) < 0) {
		dp_error("attach %s again: %s", t->env.id, err.msg);
		return refuse(t, 1011, "Terminal unavailable");
	}
	attached_again(t);
	flush_out(t);
	db_close(t);
	if (t->done)
		return 1;
	if (t->pin.len == 0)	/* (else the keys the pty has not taken yet
				   stay with us, and we pump) */
		exec_pump(t);
	timers_start(t);
	pump(t, waitmask);
	return 0;
}

int
main(int argc, char *argv[])
{
	struct term		 t;
	struct dp_err		 err = { 0 };
	sigset_t		 orig, waitmask;
	int			 rc = 1, r;

	memset(&t, 0, sizeof(t));
	t.att.fd = t.att.pid = t.claim_fd = t.claim_pid = -1;
	t.check_fd = t.check_pid = -1;
	signals(&orig, &waitmask);
	if (dp_wsapp_init("ws-terminal") < 0) {
		rc = argc > 1 ? 1 :
		    refuse(&t, 1011, "Service temporarily unavailable");
		goto out;
	}
	if (argc == 9 && strcmp(argv[1], "--check") == 0) {
		rc = helper_check(&t, argv + 2);
		t.session[0] = t.slot[0] = '\0';
		goto out;
	}
	if (argc == 4 && strcmp(argv[1], "--claim") == 0) {
		rc = helper_claim(&t, argv + 2);
		goto out;
	}
	if (argc == 13 && strcmp(argv[1], "--resume") == 0) {
		rc = helper_resume(&t, argv + 2, &waitmask);
		goto out;
	}
	if (argc == 8 && strcmp(argv[1], "--end") == 0) {
		rc = helper_end(&t, argv + 2);
		t.session[0] = t.slot[0] = '\0';
		goto out;
	}
	if (argc != 1) {
		fprintf(stderr, "usage: terminal-full (run by ws/terminal)\n");
		rc = 2;
		goto out;
	}
	request(&t);
	if (db(&t) == NULL) {
		rc = refuse(&t, 1011, "Service temporarily unavailable");
		goto out;
	}
	if ((r = dp_wsapp_admit(t.db, false, t.req.token, t.req.target,
	    &t.user, &t.env, &err)) <= 0) {
		rc = refuse(&t, r < 0 ? 1011 : 1008, r < 0 ?
		    "Service temporarily unavailable" : "Authentication failed");
		goto out;
	}
	if (dp_cfg.auth_require_verified_email && !t.user.verified) {
		rc = refuse(&t, 1008, "Please verify your email address");
		goto out;
	}
	if (t.env.id[0] == '\0') {
		rc = refuse(&t, 1008, "Environment not found");
		goto out;
	}
	if (strcmp(t.env.status, "running") != 0) {
		/* It left running since the upgrade's check: as the live
		 * path says it (§3.2), info then close 1000. */
		dp_wsapp_info(&t.out, dp_wsapp_status_reason(t.env.status));
		rc = refuse(&t, 1000, dp_wsapp_status_reason(t.env.status));
		goto out;
	}
	t.drv = dp_driver_get(t.env.provider);
	attach_probe(&t);
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
	welcome(&t);
	/* What attach read already (the screen): the pump never sees it. */
	if (t.raw.len > 0)
		send_output(&t, false);
	flush_out(&t);
	/* Idle sockets hold no database connection (there may be many). */
	db_close(&t);
	if (t.done)
		goto out;
	exec_pump(&t);
	timers_start(&t);
	pump(&t, &waitmask);
	rc = 0;
out:
	dp_attach_probe_drop();
	detach(&t);
	if (t.session[0] != '\0')
		session_end(&t);
	else if (t.slot[0] != '\0' && db(&t) != NULL)
		(void)dp_wsapp_slot_free(t.db, t.slot);
	db_close(&t);
	term_free(&t);
	return rc;
}
#endif /* DP_TERMINAL_LIGHT */
#endif /* DP_TERMINAL_PUMP */
