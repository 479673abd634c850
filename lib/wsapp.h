/* lib/wsapp.h: what the websocketd programs (ws/terminal, ws/logs) share */
#ifndef DP_WSAPP_H
#define DP_WSAPP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "db.h"
#include "util.h"

enum dp_ws_kind {
	DP_WSK_TERMINAL,
	DP_WSK_LOGS,
	DP_WSK_SSH,
	DP_WSK__MAX
};
extern const char *const dp_ws_kind_names[DP_WSK__MAX];

/* Line cap of one client message (CONTRACT §3.3: larger → Message too large). */
#define DP_WS_LINE_MAX		65536
/* Bytes of UTF-8 in one output message. */
#define DP_WS_OUTPUT_MAX	16384

/* A socket's request, from websocketd's CGI variables or a URI. */
struct dp_wsreq {
	enum dp_ws_kind	 kind;
	char		 target[25];	/* the id, "" when empty or malformed */
	char		*token;		/* heap, wiped on release; NULL = none */
	char		 device_id[65];	/* "" unless valid */
	int		 cols, rows;	/* terminal/ssh */
	int		 lines;		/* logs */
	bool		 follow;
	char		 client_ip[64];
};

/*
 * Parse the query string (token, device_id, cols, rows, lines, follow:
 * invalid values fall back to defaults, CONTRACT §3.1), the target id
 * segment and the Authorization header (the query token wins).  seg is
 * the id segment without slashes (NULL or "" = empty).
 */
void	 dp_wsreq_parse(struct dp_wsreq *, enum dp_ws_kind, const char *query,
	    const char *seg, const char *authorization);
void	 dp_wsreq_release(struct dp_wsreq *);
/*
 * Split an original request URI "/api/v1/ws/<kind>[/<id>][/][?query]".
 * 0 with *kind, the id segment in seg[25] ("" when absent or malformed)
 * and *query (pointer into uri or NULL); -1 when it is not a socket path
 * (the caller answers 404).
 */
int	 dp_ws_uri_split(const char *uri, enum dp_ws_kind *kind, char seg[25],
	    const char **query);

/* The caller of a socket after the token check. */
struct dp_wsuser {
	char	 id[25];
	char	 sid[25];
	bool	 verified;
};

/*
 * The periodic check of a socket holding slot: stamps the slot's row
 * seen (sql/009_ws_seen.sql) and asks for the login session sid of the
 * user.  1 both there, 0 the session revoked (or the user disabled), 2
 * the row gone (dropped as stale), -1 on failure.
 */
int	 dp_wsapp_session_alive(struct dp_db *, const struct dp_wsuser *,
	    const char *slot);

/* The environment a socket targets, owned by the user. */
struct dp_wsenv {
	char	 id[25];
	char	*name, *template, *status, *image;
	char	*cluster_id, *provider, *endpoint, *kube_sealed;
	bool	 installation_completed;
	int	 port;
};
/*
 * Admit a socket: the access token (JWT claims, then its login session
 * unrevoked and the user active) and the environment env_id (owned by
 * the user, not purged), in one statement (prepared: the caller lives
 * long).  1 with u, and e (e->id "" when the environment is missing,
 * malformed or another user's; release it); 0 when the token is refused
 * (err says why, for the log); -1 on database failure (err->code 1).
 */
int	 dp_wsapp_admit(struct dp_db *, bool prepared, const char *token,
	    const char *env_id, struct dp_wsuser *, struct dp_wsenv *,
	    struct dp_err *);
/*
 * The same for a socket already admitted whose terminal attaches again
 * (ws/terminal-full --resume): by its login session sid, whose JWT was
 * checked at the start (the periodic check goes on by sid too).
 */
int	 dp_wsapp_resume(struct dp_db *, const char *sid, const char *env_id,
	    struct dp_wsuser *, struct dp_wsenv *, struct dp_err *);
void	 dp_wsapp_env_release(struct dp_wsenv *);
/* The welcome's "environment" object (CONTRACT §3.3). */
struct json_object *dp_wsapp_env_json(const struct dp_wsenv *, bool pty);
/* The close reason for a status other than running ("Environment stopped"). */
const char *dp_wsapp_status_reason(const char *status);

/*
 * Take one of the user's socket slots: under a per-user advisory lock,
 * drop this host's rows whose process is gone, count, insert if below
 * limit.  1 with the slot id in slot[25], 0 when the user is at the limit,
 * -1 on database failure.
 */
int	 dp_wsapp_slot_take(struct dp_db *, const char *user_id,
	    enum dp_ws_kind, const char *env_id, int64_t limit, char slot[25]);
/*
 * The same for a terminal ticket (lib/wsticket.h), from the auth
 * responder: the slot is reserved (pid 0) until ws/terminal claims it,
 * at most DP_WS_RESERVE_S seconds, and the session row (device_id NULL
 * or "" for none) starts with it.  1 with both ids, 0 at the limit, -1
 * on database failure.
 */
#define DP_WS_RESERVE_S	10
int	 dp_wsapp_slot_reserve(struct dp_db *, const char *user_id,
	    const char *env_id, const char *device_id, int64_t limit,
	    char slot[25], char session[25]);
/*
 * Claim a reserved slot for process pid (on this host), marking its
 * environment accessed and dropping the user's dead rows here (a claim
 * run again by the process that holds it succeeds: a resume): 1, 0 when
 * the reservation is gone, -1.
 */
int	 dp_wsapp_slot_claim(struct dp_db *, const char *slot, int pid);
/* Attach the terminal session id to a slot (for DELETE /sessions). */
int	 dp_wsapp_slot_session(struct dp_db *, const char *slot,
	    const char *session_id);
int	 dp_wsapp_slot_free(struct dp_db *, const char *slot);
/*
 * The worker's sweep of dead WebSocket rows: this host's rows whose
 * process is gone, reservations never claimed, and any host's rows not
 * seen for devpocket_ws_stale() (sql/009_ws_seen.sql), dropped with
 * their sessions ended (1006).  The count dropped, or -1.
 */
int	 dp_wsapp_sweep(struct dp_db *);

/*
 * Convert bytes to valid UTF-8 for one output message: appends to out the
 * conversion of a prefix of in[0..n), invalid bytes as U+FFFD, stopping
 * before out would grow past maxout bytes and before an incomplete
 * sequence at the end (unless final, when it becomes U+FFFD).  Returns
 * the bytes of in consumed; the rest (at most 3 bytes when the output cap
 * was not reached) waits for more input.
 */
size_t	 dp_utf8_take(struct dp_buf *out, const char *in, size_t n,
	    size_t maxout, bool final);

/* Write one JSON message and a newline to the output buffer. */
void	 dp_wsapp_msg(struct dp_buf *out, struct json_object *);
/* {"type":"error","message":m,"data":m} */
void	 dp_wsapp_error(struct dp_buf *out, const char *m);
/* {"type":"close","code":c,"reason":r} */
void	 dp_wsapp_close(struct dp_buf *out, int code, const char *reason);
/* {"type":t} */
void	 dp_wsapp_simple(struct dp_buf *out, const char *type);
/* {"type":"info","message":m} */
void	 dp_wsapp_info(struct dp_buf *out, const char *m);

/*
 * Write what fd takes now (fd O_NONBLOCK): the rest stays at the front
 * of buf.  0, or -1 when fd failed (buf emptied).  dp_wsapp_flush_wait
 * goes on until buf is empty (0) or ms have passed (-1).
 */
int	 dp_wsapp_flush_some(int fd, struct dp_buf *buf);
int	 dp_wsapp_flush_wait(int fd, struct dp_buf *buf, int ms);
/*
 * A timer from the environment in milliseconds (test hooks such as
 * $DP_WS_PING_MS), 50 ms to 1 day; dflt when unset or out of range.
 */
int64_t	 dp_wsapp_env_ms(const char *name, int64_t dflt);

/*
 * Read client lines from fd (non-blocking) into a line assembler.  Each
 * complete line is passed to cb; a line over DP_WS_LINE_MAX is dropped
 * and cb gets it with toolong set (data NULL).  Returns 1 when bytes were
 * read, 0 when nothing was there, -1 at end of input.
 */
/*
 * websocketd (text mode) hands each frame on as a line, so a frame with a
 * raw line break arrives as several lines, and a binary frame comes with
 * no line end.  The assembler gives the callback messages instead: a line
 * that starts a JSON object and is not yet whole waits for the next one
 * (joined with the line break, within DP_WS_LINE_MAX).  What is left at
 * the end of what came, an open message or bytes with no line end, waits
 * DP_WS_PEND_MS from the last bytes for more (websocketd writes a frame
 * at once, but a pipe read may end inside a frame larger than PIPE_BUF):
 * the caller's loop calls dp_wslines_expire by the time in due.  Then an
 * open message goes as it is (a truncated message), and bytes with no
 * line end (a binary frame) go as data NULL, toolong false: not a
 * message, never acted on.  A line that is not one message but ends with
 * a whole JSON object (bytes with no line end, then a message) is that
 * binary frame (data NULL) and the message: split where the bytes' read
 * ended when they came in an earlier read, else at one of the line's
 * first few "{".  Release with dp_wslines_release.
 */
#define DP_WS_PEND_MS	20
struct json_tokener;
struct dp_wslines {
	struct dp_buf	 line;
	struct dp_buf	 pend;		/* a message not yet whole */
	struct json_tokener *tok;	/* its parse so far (with pend) */
	bool		 discarding;
	bool		 told;		/* its "too large" was said */
	size_t		 mark;		/* line's bytes from earlier reads */
	int64_t		 due;		/* dp_mono_ms() when pend goes as
					   it is, or 0 */
};
void	 dp_wslines_release(struct dp_wslines *);
typedef void (*dp_wsline_cb)(void *arg, const char *data, size_t len,
	    bool toolong);
int	 dp_wsapp_read_lines(int fd, struct dp_wslines *, dp_wsline_cb,
	    void *arg);
/* Feed bytes to the assembler directly (tests). */
void	 dp_wsapp_feed_lines(struct dp_wslines *, const char *, size_t,
	    dp_wsline_cb, void *arg);
/* The open message to cb as it is when its due time (ms) is past now. */
void	 dp_wslines_expire(struct dp_wslines *, int64_t now_ms,
	    dp_wsline_cb, void *arg);

/*
 * Load the configuration ($DEVPOCKET_CONF or the default path), set up
 * logging; 0 or -1 (logged).
 */
int	 dp_wsapp_init(const char *program);
/* Open a database connection ([database] url); NULL when unavailable. */
struct dp_db *dp_wsapp_db_open(void);

#endif
