/* lib/ws.c: RFC 6455 WebSocket framing, and a client over a socket or libcurl */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "crypto.h"
#include "ws.h"

#define WS_GUID		"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define HEAD_MAX	16384		/* handshake response headers */
#define BODY_MAX	65536		/* refused handshake's body */
#define READ_CHUNK	16384

struct dp_ws {
	bool		 server;
	size_t		 max;
	int		 fd;
	bool		 own_fd;
	CURL		*curl;
	struct dp_buf	 in;		/* received, from inoff on unparsed */
	size_t		 inoff;
	struct dp_buf	 out;		/* queued for the peer */
	struct dp_buf	 msg;		/* data message being reassembled */
	int		 msg_op;
	bool		 in_msg;
	struct dp_buf	 ctl;		/* last control payload */
	bool		 eof;		/* transport ended */
	bool		 done;		/* close received or protocol failure */
	bool		 close_sent;
};

/* ---- framing ------------------------------------------------------------ */

static int
bad(struct dp_err *err, int code, const char *what)
{
	dp_err_set(err, code, "%s", what);
	return -1;
}

int
dp_ws_frame_parse(const void *buf, size_t n, bool server, uint64_t max,
    struct dp_ws_frame *f, struct dp_err *err)
{
	const unsigned char	*p = buf;
	uint64_t		 len;
	size_t			 hdr = 2, i;
	int			 op;

	memset(f, 0, sizeof(*f));
	if (n < 2)
		return 0;
	if (p[0] & 0x70)
		return bad(err, DP_WS_PROTOCOL_ERROR, "reserved bits set");
	op = p[0] & 0x0f;
	if (op != DP_WS_CONT && op != DP_WS_TEXT && op != DP_WS_BINARY &&
	    op != DP_WS_CLOSE && op != DP_WS_PING && op != DP_WS_PONG)
		return bad(err, DP_WS_PROTOCOL_ERROR, "unknown opcode");
	f->fin = (p[0] & 0x80) != 0;
	f->opcode = op;
	f->masked = (p[1] & 0x80) != 0;
	len = p[1] & 0x7f;
	if (op >= DP_WS_CLOSE && !f->fin)
		return bad(err, DP_WS_PROTOCOL_ERROR,
		    "fragmented control frame");
	if (op >= DP_WS_CLOSE && len > 125)
		return bad(err, DP_WS_PROTOCOL_ERROR, "control frame too long");
	if (server && !f->masked)
		return bad(err, DP_WS_PROTOCOL_ERROR, "unmasked client frame");
	if (!server && f->masked)
		return bad(err, DP_WS_PROTOCOL_ERROR, "masked server frame");
	if (len == 126) {
		if (n < 4)
			return 0;
		len = (uint64_t)p[2] << 8 | p[3];
		if (len < 126)
			return bad(err, DP_WS_PROTOCOL_ERROR,
			    "non-minimal length");
		hdr = 4;
	} else if (len == 127) {
		if (n < 10)
			return 0;
		if (p[2] & 0x80)
			return bad(err, DP_WS_PROTOCOL_ERROR,
			    "64-bit length with the top bit set");
		for (len = 0, i = 2; i < 10; i++)
			len = len << 8 | p[i];
		if (len < 65536)
			return bad(err, DP_WS_PROTOCOL_ERROR,
			    "non-minimal length");
		hdr = 10;
	}
	if (len > max)
		return bad(err, DP_WS_TOO_BIG, "frame too large");
	if (f->masked) {
		if (n < hdr + 4)
			return 0;
		memcpy(f->mask, p + hdr, 4);
		hdr += 4;
	}
	f->len = len;
	f->hdrlen = hdr;
	return 1;
}

void
dp_ws_mask(void *data, size_t len, const unsigned char key[4],
    uint64_t offset)
{
	unsigned char	*p = data;
	size_t		 i;

	for (i = 0; i < len; i++)
		p[i] ^= key[(offset + i) & 3];
}

void
dp_ws_frame_encode(struct dp_buf *out, int opcode, bool fin,
    const void *payload, size_t len, bool mask)
{
	unsigned char	 h[14], key[4];
	size_t		 n = 2, start;
	int		 i;

	h[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
	if (len < 126)
		h[1] = (unsigned char)len;
	else if (len < 65536) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		n = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)((uint64_t)len >>
			    (56 - 8 * i));
		n = 10;
	}
	if (mask) {
		h[1] |= 0x80;
		dp_random(key, sizeof(key));
		memcpy(h + n, key, 4);
		n += 4;
	}
	dp_buf_add(out, h, n);
	start = out->len;
	if (len > 0)
		dp_buf_add(out, payload, len);
	if (mask)
		dp_ws_mask(out->s + start, len, key, 0);
}

bool
dp_ws_utf8_valid(const void *s, size_t n)
{
	const unsigned char	*p = s;
	size_t			 i = 0, k, need;
	uint32_t		 c;

	while (i < n) {
		c = p[i];
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			need = 1;
			c &= 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			c &= 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			c &= 0x07;
		} else
			return false;
		if (n - i <= need)
			return false;
		for (k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (p[i + k] & 0x3f);
		}
		if ((need == 2 && c < 0x800) || (need == 3 && c < 0x10000) ||
		    c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		i += need + 1;
	}
	return true;
}

void
dp_ws_accept_key(const char *key, char out[29])
{
	struct dp_buf	 b = { 0 }, enc = { 0 };
	unsigned char	 md[EVP_MAX_MD_SIZE];
	unsigned int	 mdlen = 0;

	dp_buf_adds(&b, key);
	dp_buf_adds(&b, WS_GUID);
	EVP_Digest(b.s, b.len, md, &mdlen, EVP_sha1(), NULL);
	dp_b64_encode(&enc, md, mdlen);
	snprintf(out, 29, "%s", enc.s);
	dp_buf_release(&b);
	dp_buf_release(&enc);
}

/* ---- endpoint ----------------------------------------------------------- */

struct dp_ws *
dp_ws_new(bool server, size_t max_message)
{
	struct dp_ws	*ws = dp_xcalloc(1, sizeof(*ws));

	ws->server = server;
	ws->max = max_message ? max_message : DP_WS_MAX_MESSAGE;
	ws->fd = -1;
	return ws;
}

struct dp_ws *
dp_ws_new_fd(int fd, bool own, bool server, size_t max_message)
{
	struct dp_ws	*ws = dp_ws_new(server, max_message);

	ws->fd = fd;
	ws->own_fd = own;
	return ws;
}

struct dp_ws *
dp_ws_new_curl(void *curl, size_t max_message)
{
	struct dp_ws	*ws = dp_ws_new(false, max_message);
	curl_socket_t	 s = CURL_SOCKET_BAD;

	ws->curl = curl;
	if (curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &s) == CURLE_OK &&
	    s != CURL_SOCKET_BAD)
		ws->fd = (int)s;
	return ws;
}

void
dp_ws_free(struct dp_ws *ws)
{
	if (ws == NULL)
		return;
	if (ws->curl != NULL)
		curl_easy_cleanup(ws->curl);
	else if (ws->own_fd && ws->fd >= 0)
		close(ws->fd);
	dp_buf_release(&ws->in);
	dp_buf_release(&ws->out);
	dp_buf_release(&ws->msg);
	dp_buf_release(&ws->ctl);
	free(ws);
}

void
dp_ws_feed(struct dp_ws *ws, const void *p, size_t n)
{
	/* Drop what was parsed before growing. */
	if (ws->inoff > 0 && (ws->inoff == ws->in.len || ws->inoff > 65536)) {
		dp_buf_drop(&ws->in, ws->inoff);
		ws->inoff = 0;
	}
	dp_buf_add(&ws->in, p, n);
}

const struct dp_buf *
dp_ws_pending(const struct dp_ws *ws)
{
	return &ws->out;
}

void
dp_ws_pending_clear(struct dp_ws *ws)
{
	dp_buf_reset(&ws->out);
}

int
dp_ws_fd(const struct dp_ws *ws)
{
	return ws->fd;
}

/*
 * The frame at the front of the fed bytes, in f: 1 when it is whole, 0
 * when there is none or only its start, -1 when it is bad (err).
 */
static int
front_frame(const struct dp_ws *ws, struct dp_ws_frame *f,
    struct dp_err *err)
{
	size_t	 avail = ws->in.len - ws->inoff;
	int	 r;

	if (avail == 0)
		return 0;	/* (in.s may be NULL yet) */
	r = dp_ws_frame_parse(ws->in.s + ws->inoff, avail, ws->server,
	    ws->max, f, err);
	if (r <= 0)
		return r;
	return avail - f->hdrlen >= f->len ? 1 : 0;
}

bool
dp_ws_buffered(const struct dp_ws *ws)
{
	struct dp_ws_frame	 f;
	struct dp_err		 e = { 0 };

	/* A whole frame, or one that fails, or a closed endpoint with
	 * bytes left (dp_ws_next says so at once); not the start of a
	 * frame, which only the socket can complete. */
	if (ws->in.len == ws->inoff)
		return false;
	return ws->done || front_frame(ws, &f, &e) != 0;
}

static void
queue_close(struct dp_ws *ws, int code, const char *reason)
{
	unsigned char	 p[125];
	size_t		 n = 0, rl;

	if (ws->close_sent)
		return;
	if (code != DP_WS_NO_STATUS && code > 0) {
		p[0] = (unsigned char)(code >> 8);
		p[1] = (unsigned char)code;
		n = 2;
		rl = reason ? strlen(reason) : 0;
		if (rl > 123)
			rl = 123;
		memcpy(p + 2, reason, rl);
		n += rl;
	}
	dp_ws_frame_encode(&ws->out, DP_WS_CLOSE, true, p, n, !ws->server);
	ws->close_sent = true;
}

static int
fail(struct dp_ws *ws, struct dp_err *err, int code, const char *what)
{
	char	 w[sizeof(err->msg)];

	/* (what may be err->msg itself) */
	snprintf(w, sizeof(w), "%s", what);
	dp_err_set(err, code, "%s", w);
	queue_close(ws, code, "");
	ws->done = true;
	return -1;
}

static bool
close_code_ok(int c)
{
	return (c >= 1000 && c <= 1003) || (c >= 1007 && c <= 1014) ||
	    (c >= 3000 && c <= 4999);
}

/* A close frame's payload into *m; -1 if malformed. */
static int
take_close(struct dp_ws *ws, struct dp_ws_msg *m, struct dp_err *err)
{
	const unsigned char	*p = (const unsigned char *)ws->ctl.s;

	m->close_code = DP_WS_NO_STATUS;
	m->close_reason = "";
	if (ws->ctl.len == 1)
		return fail(ws, err, DP_WS_PROTOCOL_ERROR,
		    "close frame of one byte");
	if (ws->ctl.len >= 2) {
		m->close_code = p[0] << 8 | p[1];
		if (!close_code_ok(m->close_code))
			return fail(ws, err, DP_WS_PROTOCOL_ERROR,
			    "invalid close code");
		if (!dp_ws_utf8_valid(p + 2, ws->ctl.len - 2))
			return fail(ws, err, DP_WS_BAD_DATA,
			    "close reason is not UTF-8");
		m->close_reason = ws->ctl.s + 2;
	}
	/* Echo the code (RFC 6455 §5.5.1) and finish. */
	queue_close(ws, m->close_code, "");
	ws->done = true;
	return 1;
}

int
dp_ws_next(struct dp_ws *ws, struct dp_ws_msg *m, struct dp_err *err)
{
	struct dp_ws_frame	 f;
	unsigned char		*pl;
	int			 r;

	memset(m, 0, sizeof(*m));
	if (ws->done)
		return bad(err, DP_WS_ABNORMAL, "connection closed");
	for (;;) {
		if ((r = front_frame(ws, &f, err)) < 0)
			return fail(ws, err, err->code, err->msg);
		if (r == 0)
			return 0;
		pl = (unsigned char *)ws->in.s + ws->inoff + f.hdrlen;
		if (f.masked)
			dp_ws_mask(pl, (size_t)f.len, f.mask, 0);
		ws->inoff += f.hdrlen + (size_t)f.len;
		if (f.opcode >= DP_WS_CLOSE) {
			dp_buf_reset(&ws->ctl);
			dp_buf_add(&ws->ctl, pl, (size_t)f.len);
			m->opcode = f.opcode;
			m->data = ws->ctl.s ? ws->ctl.s : "";
			m->len = ws->ctl.len;
			if (f.opcode == DP_WS_PING && !ws->close_sent)
				dp_ws_frame_encode(&ws->out, DP_WS_PONG, true,
				    pl, (size_t)f.len, !ws->server);
			if (f.opcode == DP_WS_CLOSE)
				return take_close(ws, m, err);
			return 1;
		}
		if (f.opcode == DP_WS_CONT) {
			if (!ws->in_msg)
				return fail(ws, err, DP_WS_PROTOCOL_ERROR,
				    "continuation outside a message");
		} else {
			if (ws->in_msg)
				return fail(ws, err, DP_WS_PROTOCOL_ERROR,
				    "new message inside a fragmented one");
			ws->in_msg = true;
			ws->msg_op = f.opcode;
			dp_buf_reset(&ws->msg);
		}
		if (f.len > ws->max - ws->msg.len)
			return fail(ws, err, DP_WS_TOO_BIG, "message too large");
		dp_buf_add(&ws->msg, pl, (size_t)f.len);
		if (!f.fin)
			continue;
		ws->in_msg = false;
		if (ws->msg_op == DP_WS_TEXT &&
		    !dp_ws_utf8_valid(ws->msg.s, ws->msg.len))
			return fail(ws, err, DP_WS_BAD_DATA,
			    "text message is not UTF-8");
		m->opcode = ws->msg_op;
		m->data = ws->msg.s ? ws->msg.s : "";
		m->len = ws->msg.len;
		return 1;
	}
}

/* ---- transport ---------------------------------------------------------- */

static int
wait_fd(int fd, short ev, int timeout_ms)
{
	struct pollfd	 p = { .fd = fd, .events = ev };
	int		 r;

	do
		r = poll(&p, 1, timeout_ms);
	while (r < 0 && errno == EINTR);
	return r;
}

static int
remaining(int64_t deadline)
{
	int64_t	 left;

	if (deadline < 0)
		return -1;
	left = deadline - dp_mono_ms();
	return left < 0 ? 0 : (int)left;
}

/* Write n bytes; 0 or -1 with err. */
static int
xmit(struct dp_ws *ws, const char *p, size_t n, struct dp_err *err)
{
	ssize_t		 w;
	size_t		 sent;
	CURLcode	 rc;

	while (n > 0) {
		if (ws->curl != NULL) {
			sent = 0;
			rc = curl_easy_send(ws->curl, p, n, &sent);
			if (rc == CURLE_AGAIN) {
				if (wait_fd(ws->fd, POLLOUT, 30000) <= 0)
					return bad(err, DP_WS_ABNORMAL,
					    "send timed out");
				continue;
			}
			if (rc != CURLE_OK)
				return bad(err, DP_WS_ABNORMAL,
				    curl_easy_strerror(rc));
			w = (ssize_t)sent;
		} else {
			if (ws->fd < 0)
				return bad(err, DP_WS_ABNORMAL, "no transport");
			w = send(ws->fd, p, n, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK)) {
				if (wait_fd(ws->fd, POLLOUT, 30000) <= 0)
					return bad(err, DP_WS_ABNORMAL,
					    "send timed out");
				continue;
			}
			if (w < 0)
				return bad(err, DP_WS_ABNORMAL, strerror(errno));
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Read what is there (waiting up to timeout_ms) into ws->in.  1 when
 * bytes came, 0 on timeout, -1 at end of stream or on error.
 */
static int
fill(struct dp_ws *ws, int timeout_ms, struct dp_err *err)
{
	char		 buf[READ_CHUNK];
	ssize_t		 r;
	size_t		 got;
	CURLcode	 rc;
	int		 w;

	if (ws->eof)
		return bad(err, DP_WS_ABNORMAL, "connection ended");
	for (;;) {
		if (ws->curl != NULL) {
			got = 0;
			rc = curl_easy_recv(ws->curl, buf, sizeof(buf), &got);
			if (rc == CURLE_OK && got == 0) {
				ws->eof = true;
				return bad(err, DP_WS_ABNORMAL,
				    "connection ended");
			}
			if (rc == CURLE_OK) {
				dp_ws_feed(ws, buf, got);
				return 1;
			}
			if (rc != CURLE_AGAIN) {
				ws->eof = true;
				return bad(err, DP_WS_ABNORMAL,
				    curl_easy_strerror(rc));
			}
		} else {
			if (ws->fd < 0)
				return bad(err, DP_WS_ABNORMAL, "no transport");
			r = recv(ws->fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r == 0) {
				ws->eof = true;
				return bad(err, DP_WS_ABNORMAL,
				    "connection ended");
			}
			if (r > 0) {
				dp_ws_feed(ws, buf, (size_t)r);
				return 1;
			}
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				ws->eof = true;
				return bad(err, DP_WS_ABNORMAL, strerror(errno));
			}
		}
		w = wait_fd(ws->fd, POLLIN, timeout_ms);
		if (w < 0)
			return bad(err, DP_WS_ABNORMAL, strerror(errno));
		if (w == 0)
			return 0;
	}
}

int
dp_ws_flush(struct dp_ws *ws, struct dp_err *err)
{
	int	 rc = 0;

	if (ws->out.len == 0 || (ws->fd < 0 && ws->curl == NULL))
		return 0;
	rc = xmit(ws, ws->out.s, ws->out.len, err);
	dp_buf_reset(&ws->out);
	return rc;
}

int
dp_ws_send(struct dp_ws *ws, int opcode, const void *p, size_t n,
    struct dp_err *err)
{
	if (ws->close_sent)
		return bad(err, DP_WS_ABNORMAL, "close already sent");
	if (opcode >= DP_WS_CLOSE && n > 125)
		return bad(err, DP_WS_PROTOCOL_ERROR, "control frame too long");
	dp_ws_frame_encode(&ws->out, opcode, true, p, n, !ws->server);
	return dp_ws_flush(ws, err);
}

int
dp_ws_send_close(struct dp_ws *ws, int code, const char *reason,
    struct dp_err *err)
{
	queue_close(ws, code, reason);
	return dp_ws_flush(ws, err);
}

int
dp_ws_recv(struct dp_ws *ws, int timeout_ms, struct dp_ws_msg *m,
    struct dp_err *err)
{
	int64_t		 deadline = timeout_ms < 0 ? -1 :
			    dp_mono_ms() + timeout_ms;
	struct dp_err	 ferr = { 0 };
	int		 r;

	for (;;) {
		r = dp_ws_next(ws, m, err);
		if (r != 0) {
			/* Pongs and closes we owe go out now. */
			(void)dp_ws_flush(ws, &ferr);
			return r;
		}
		r = fill(ws, remaining(deadline), err);
		if (r <= 0)
			return r;
	}
}

/* ---- handshake ---------------------------------------------------------- */

static bool
has_crlf(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") != NULL;
}

/* Value of header name in the header block (case-insensitive), or NULL. */
static const char *
header_value(const char *head, const char *name, char *out, size_t n)
{
	const char	*p = strstr(head, "\r\n"), *e, *v;
	size_t		 nl = strlen(name), vl;

	while (p != NULL && p[2] != '\r' && p[2] != '\0') {
		p += 2;
		e = strstr(p, "\r\n");
		if (e == NULL)
			break;
		if ((size_t)(e - p) > nl && strncasecmp(p, name, nl) == 0 &&
		    p[nl] == ':') {
			v = p + nl + 1;
			while (v < e && (*v == ' ' || *v == '\t'))
				v++;
			vl = (size_t)(e - v);
			while (vl > 0 && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
				vl--;
			if (vl >= n)
				vl = n - 1;
			memcpy(out, v, vl);
			out[vl] = '\0';
			return out;
		}
		p = e;
	}
	return NULL;
}

/* True if the comma-separated list holds token (icase: in any case). */
static bool
list_has(const char *list, const char *tok, bool icase)
{
	size_t	 tl = strlen(tok), n;

	while (*list) {
		while (*list == ' ' || *list == ',' || *list == '\t')
			list++;
		n = strcspn(list, ", \t");
		if (n == tl && (icase ? strncasecmp(list, tok, tl) :
		    strncmp(list, tok, tl)) == 0)
			return true;
		list += n;
	}
	return false;
}

/* The body of a refused upgrade, up to BODY_MAX, into body. */
static void
read_body(struct dp_ws *ws, const char *head, struct dp_buf *body,
    int64_t deadline)
{
	struct dp_err	 err = { 0 };
	char		 cl[32];
	int64_t		 want = -1;

	if (header_value(head, "Content-Length", cl, sizeof(cl)) != NULL &&
	    dp_parse_int64(cl, 0, BODY_MAX, &want) < 0)
		want = BODY_MAX;
	while ((want < 0 || (int64_t)(ws->in.len - ws->inoff) < want) &&
	    ws->in.len - ws->inoff < BODY_MAX)
		if (fill(ws, remaining(deadline), &err) <= 0)
			break;
	if (body != NULL) {
		size_t n = ws->in.len - ws->inoff;

		if (want >= 0 && (size_t)want < n)
			n = (size_t)want;
		if (n > BODY_MAX)
			n = BODY_MAX;
		dp_buf_add(body, ws->in.s + ws->inoff, n);
	}
	ws->inoff = ws->in.len;
}

int
dp_ws_handshake(struct dp_ws *ws, const char *host, const char *path,
    const char *const *headers, const char *protocols, char *proto,
    size_t nproto, struct dp_buf *body, int timeout_ms, struct dp_err *err)
{
	struct dp_buf	 req = { 0 }, k = { 0 };
	unsigned char	 nonce[16];
	char		 accept[29], v[256], code[4], *end, *head = NULL;
	int64_t		 deadline = timeout_ms < 0 ? -1 :
			    dp_mono_ms() + timeout_ms;
	int64_t		 status = -1;
	size_t		 i, hl;
	int		 rc = -1;

	if (proto != NULL && nproto > 0)
		proto[0] = '\0';
	if (has_crlf(host) || has_crlf(path) || has_crlf(protocols) ||
	    path == NULL || path[0] != '/') {
		dp_err_set(err, 0, "bad host or path");
		goto out;
	}
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		if (has_crlf(headers[i])) {
			dp_err_set(err, 0, "bad header line");
			goto out;
		}
	dp_random(nonce, sizeof(nonce));
	dp_b64_encode(&k, nonce, sizeof(nonce));
	dp_ws_accept_key(k.s, accept);
	dp_buf_printf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
	    path, host, k.s);
	if (protocols != NULL)
		dp_buf_printf(&req, "Sec-WebSocket-Protocol: %s\r\n", protocols);
	for (i = 0; headers != NULL && headers[i] != NULL; i++)
		dp_buf_printf(&req, "%s\r\n", headers[i]);
	dp_buf_adds(&req, "\r\n");
	if (xmit(ws, req.s, req.len, err) < 0)
		goto out;

	/* The response head, then whatever follows it stays in ws->in. */
	while ((end = ws->in.len ? strstr(ws->in.s + ws->inoff, "\r\n\r\n") :
	    NULL) == NULL) {
		if (ws->in.len - ws->inoff > HEAD_MAX) {
			dp_err_set(err, 0, "response head too large");
			goto out;
		}
		if (fill(ws, remaining(deadline), err) <= 0) {
			if (err->msg[0] == '\0')
				dp_err_set(err, 0, "handshake timed out");
			goto out;
		}
	}
	hl = (size_t)(end - (ws->in.s + ws->inoff)) + 4;
	head = dp_xstrndup(ws->in.s + ws->inoff, hl);
	ws->inoff += hl;
	if (hl >= 13) {
		memcpy(code, head + 9, 3);
		code[3] = '\0';
	} else
		code[0] = '\0';
	if (strncmp(head, "HTTP/1.", 7) != 0 || head[8] != ' ' ||
	    dp_parse_int64(code, 100, 599, &status) < 0) {
		dp_err_set(err, 0, "bad status line");
		goto out;
	}
	if (status != 101) {
		read_body(ws, head, body, deadline);
		rc = (int)status;
		goto out;
	}
	if (header_value(head, "Upgrade", v, sizeof(v)) == NULL ||
	    strcasecmp(v, "websocket") != 0 ||
	    header_value(head, "Connection", v, sizeof(v)) == NULL ||
	    !list_has(v, "upgrade", true)) {
		dp_err_set(err, 0, "101 without the upgrade headers");
		goto out;
	}
	if (header_value(head, "Sec-WebSocket-Accept", v, sizeof(v)) == NULL ||
	    strcmp(v, accept) != 0) {
		dp_err_set(err, 0, "wrong Sec-WebSocket-Accept");
		goto out;
	}
	if (header_value(head, "Sec-WebSocket-Protocol", v, sizeof(v)) != NULL) {
		/* Subprotocol names are case-sensitive (RFC 6455 11.3.4). */
		if (protocols == NULL || !list_has(protocols, v, false)) {
			dp_err_set(err, 0, "unrequested subprotocol");
			goto out;
		}
		if (proto != NULL && nproto > 0)
			snprintf(proto, nproto, "%s", v);
	}
	rc = 101;
out:
	dp_buf_release(&req);
	dp_buf_release(&k);
	free(head);
	return rc;
}

/* ---- connecting --------------------------------------------------------- */

static int
connect_timeout(int fd, const struct sockaddr *sa, socklen_t len,
    int timeout_ms)
{
	int		 e = 0;
	socklen_t	 el = sizeof(e);

	if (dp_fd_nonblock(fd) < 0)
		return -1;
	if (connect(fd, sa, len) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		if (wait_fd(fd, POLLOUT, timeout_ms) <= 0) {
			errno = ETIMEDOUT;
			return -1;
		}
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 ||
		    e != 0) {
			errno = e ? e : errno;
			return -1;
		}
	}
	return 0;
}

struct dp_ws *
dp_ws_connect(const char *url, const char *const *headers,
    const char *protocols, int timeout_ms, int *status, struct dp_buf *body,
    struct dp_err *err)
{
	struct addrinfo		 hints, *ai = NULL, *a;
	struct sockaddr_un	 sun;
	struct dp_ws		*ws = NULL;
	char			*host = NULL, *port = NULL, *hosthdr = NULL;
	const char		*p, *path, *sep;
	int			 fd = -1, r;

	*status = -1;
	if (dp_startswith(url, "ws+unix://")) {
		p = url + 10;
		if ((sep = strstr(p, ":/")) == NULL ||
		    (size_t)(sep - p) >= sizeof(sun.sun_path)) {
			dp_err_set(err, 0, "bad ws+unix URL");
			goto out;
		}
		memset(&sun, 0, sizeof(sun));
		sun.sun_family = AF_UNIX;
		memcpy(sun.sun_path, p, (size_t)(sep - p));
		path = sep + 1;
		hosthdr = dp_xstrdup("localhost");
		if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    connect_timeout(fd, (struct sockaddr *)&sun, sizeof(sun),
		    timeout_ms) < 0) {
			dp_err_set(err, 0, "connect: %s", strerror(errno));
			goto out;
		}
	} else if (dp_startswith(url, "ws://")) {
		p = url + 5;
		path = strchr(p, '/');
		if (path == NULL)
			path = "/";
		hosthdr = dp_xstrndup(p, strcspn(p, "/"));
		if (hosthdr[0] == '[') {
			sep = strchr(hosthdr, ']');
			if (sep == NULL) {
				dp_err_set(err, 0, "bad host");
				goto out;
			}
			host = dp_xstrndup(hosthdr + 1,
			    (size_t)(sep - hosthdr - 1));
			port = dp_xstrdup(sep[1] == ':' ? sep + 2 : "80");
		} else {
			sep = strchr(hosthdr, ':');
			host = sep ? dp_xstrndup(hosthdr,
			    (size_t)(sep - hosthdr)) : dp_xstrdup(hosthdr);
			port = dp_xstrdup(sep ? sep + 1 : "80");
		}
		memset(&hints, 0, sizeof(hints));
		hints.ai_socktype = SOCK_STREAM;
		if ((r = getaddrinfo(host, port, &hints, &ai)) != 0) {
			dp_err_set(err, 0, "%s: %s", host, gai_strerror(r));
			goto out;
		}
		for (a = ai; a != NULL; a = a->ai_next) {
			fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC,
			    a->ai_protocol);
			if (fd >= 0 && connect_timeout(fd, a->ai_addr,
			    a->ai_addrlen, timeout_ms) == 0)
				break;
			if (fd >= 0)
				close(fd);
			fd = -1;
		}
		if (fd < 0) {
			dp_err_set(err, 0, "connect %s: %s", hosthdr,
			    strerror(errno));
			goto out;
		}
	} else {
		dp_err_set(err, 0, "unsupported URL scheme");
		goto out;
	}
	ws = dp_ws_new_fd(fd, true, false, 0);
	fd = -1;
	*status = dp_ws_handshake(ws, hosthdr, path, headers, protocols, NULL,
	    0, body, timeout_ms, err);
	if (*status != 101) {
		dp_ws_free(ws);
		ws = NULL;
	}
out:
	if (fd >= 0)
		close(fd);
	if (ai != NULL)
		freeaddrinfo(ai);
	free(host);
	free(port);
	free(hosthdr);
	return ws;
}

struct dp_ws *
dp_ws_connect_curl(void *curl, const char *url, const char *const *headers,
    const char *protocols, char *proto, size_t nproto, int timeout_ms,
    int *status, struct dp_buf *body, struct dp_err *err)
{
	struct dp_ws	*ws = NULL;
	struct dp_buf	 u = { 0 }, path = { 0 }, host = { 0 };
	CURLU		*h = NULL;
	char		*uh = NULL, *up = NULL, *upath = NULL, *uq = NULL;
	CURLcode	 rc;

	*status = -1;
	if (dp_startswith(url, "wss://"))
		dp_buf_printf(&u, "https://%s", url + 6);
	else if (dp_startswith(url, "ws://"))
		dp_buf_printf(&u, "http://%s", url + 5);
	else
		dp_buf_adds(&u, url);
	h = curl_url();
	if (curl_url_set(h, CURLUPART_URL, u.s, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_HOST, &uh, 0) != CURLUE_OK ||
	    curl_url_get(h, CURLUPART_PATH, &upath, 0) != CURLUE_OK) {
		dp_err_set(err, 0, "bad URL");
		curl_easy_cleanup(curl);
		goto out;
	}
	if (curl_url_get(h, CURLUPART_PORT, &up, 0) == CURLUE_OK)
		dp_buf_printf(&host, "%s:%s", uh, up);
	else
		dp_buf_adds(&host, uh);
	dp_buf_adds(&path, upath);
	if (curl_url_get(h, CURLUPART_QUERY, &uq, 0) == CURLUE_OK)
		dp_buf_printf(&path, "?%s", uq);
	curl_easy_setopt(curl, CURLOPT_URL, u.s);
	curl_easy_setopt(curl, CURLOPT_CONNECT_ONLY, 1L);
	curl_easy_setopt(curl, CURLOPT_HTTP_VERSION,
	    (long)CURL_HTTP_VERSION_1_1);
	curl_easy_setopt(curl, CURLOPT_SSL_ENABLE_ALPN, 0L);
	if (timeout_ms > 0)
		curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
		    (long)timeout_ms);
	ws = dp_ws_new_curl(curl, 0);
	if ((rc = curl_easy_perform(curl)) != CURLE_OK) {
		dp_err_set(err, 0, "connect: %s", curl_easy_strerror(rc));
		goto fail;
	}
	if (ws->fd < 0) {
		curl_socket_t s = CURL_SOCKET_BAD;

		if (curl_easy_getinfo(curl, CURLINFO_ACTIVESOCKET, &s) !=
		    CURLE_OK || s == CURL_SOCKET_BAD) {
			dp_err_set(err, 0, "no socket after connect");
			goto fail;
		}
		ws->fd = (int)s;
	}
	*status = dp_ws_handshake(ws, host.s, path.s, headers, protocols,
	    proto, nproto, body, timeout_ms, err);
	if (*status == 101)
		goto out;
fail:
	dp_ws_free(ws);
	ws = NULL;
out:
	curl_free(uh);
	curl_free(up);
	curl_free(upath);
	curl_free(uq);
	curl_url_cleanup(h);
	dp_buf_release(&u);
	dp_buf_release(&path);
	dp_buf_release(&host);
	return ws;
}
