/* tests/unit/check_ws.c: WebSocket framing against hostile frames; the client handshake */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ws.h"

/* A frame as a client would send it (masked) or a server (unmasked). */
static void
frame(struct dp_buf *b, int op, bool fin, const char *p, size_t n, bool mask)
{
	dp_ws_frame_encode(b, op, fin, p, n, mask);
}

/* Parse the header of raw bytes; returns dp_ws_frame_parse's result. */
static int
hdr(const unsigned char *p, size_t n, bool server, uint64_t max,
    struct dp_err *err)
{
	struct dp_ws_frame	 f;

	return dp_ws_frame_parse(p, n, server, max, &f, err);
}

START_TEST(test_ws_frame_lengths)
{
	static const size_t	 lens[] = { 0, 1, 125, 126, 127, 65535, 65536,
				    100000 };
	struct dp_ws_frame	 f;
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };
	char			*p;
	size_t			 i, k;

	for (i = 0; i < DP_NITEMS(lens); i++) {
		p = malloc(lens[i] + 1);
		memset(p, 'a' + (int)i, lens[i]);
		for (k = 0; k < 2; k++) {
			dp_buf_reset(&b);
			frame(&b, DP_WS_BINARY, true, p, lens[i], k == 1);
			ck_assert_int_eq(dp_ws_frame_parse(b.s, b.len, k == 1,
			    UINT64_MAX >> 1, &f, &err), 1);
			ck_assert_uint_eq(f.len, lens[i]);
			ck_assert_uint_eq(f.hdrlen + f.len, b.len);
			ck_assert(f.fin);
			ck_assert_int_eq(f.opcode, DP_WS_BINARY);
			ck_assert(f.masked == (k == 1));
			if (f.masked)
				dp_ws_mask(b.s + f.hdrlen, (size_t)f.len,
				    f.mask, 0);
			ck_assert(memcmp(b.s + f.hdrlen, p, lens[i]) == 0);
			/* Every strict prefix of the header is "need more". */
			for (size_t j = 0; j < f.hdrlen; j++)
				ck_assert_int_eq(dp_ws_frame_parse(b.s, j,
				    k == 1, UINT64_MAX >> 1, &f, &err), 0);
		}
		free(p);
	}
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_ws_frame_hostile)
{
	struct dp_err	 err = { 0 };
	unsigned char	 p[16];
	int		 op;

	/* Reserved bits. */
	memcpy(p, "\xc1\x80" "abcd", 6);
	ck_assert_int_eq(hdr(p, 6, true, 100, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_PROTOCOL_ERROR);
	memcpy(p, "\x91\x80" "abcd", 6);
	ck_assert_int_eq(hdr(p, 6, true, 100, &err), -1);
	/* Every undefined opcode. */
	for (op = 3; op < 16; op++) {
		if (op == 8 || op == 9 || op == 10)
			continue;
		p[0] = (unsigned char)(0x80 | op);
		p[1] = 0x80;
		err.code = 0;
		ck_assert_int_eq(hdr(p, 6, true, 100, &err), -1);
		ck_assert_int_eq(err.code, DP_WS_PROTOCOL_ERROR);
	}
	/* Unmasked frame from a client; masked frame from a server. */
	memcpy(p, "\x81\x03" "abc", 5);
	ck_assert_int_eq(hdr(p, 5, true, 100, &err), -1);
	ck_assert_str_eq(err.msg, "unmasked client frame");
	ck_assert_int_eq(hdr(p, 5, false, 100, &err), 1);
	memcpy(p, "\x81\x83" "abcd", 6);
	ck_assert_int_eq(hdr(p, 6, false, 100, &err), -1);
	/* Fragmented control frames (ping, pong, close without FIN). */
	memcpy(p, "\x09\x80" "abcd", 6);
	ck_assert_int_eq(hdr(p, 6, true, 100, &err), -1);
	ck_assert_str_eq(err.msg, "fragmented control frame");
	memcpy(p, "\x0a\x80" "abcd", 6);
	ck_assert_int_eq(hdr(p, 6, true, 100, &err), -1);
	memcpy(p, "\x08\x80" "abcd", 6);
	ck_assert_int_eq(hdr(p, 6, true, 100, &err), -1);
	/* Control frame over 125 bytes (extended length). */
	memcpy(p, "\x89\xfe\x00\x7e" "abcd", 8);
	ck_assert_int_eq(hdr(p, 8, true, 1000, &err), -1);
	ck_assert_str_eq(err.msg, "control frame too long");
	/* 64-bit length with the top bit set. */
	memcpy(p, "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00" "abcd", 14);
	ck_assert_int_eq(hdr(p, 14, true, UINT64_MAX, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_PROTOCOL_ERROR);
	/* Huge but legal 64-bit length: over the cap, refused at once. */
	memcpy(p, "\x82\xff\x7f\xff\xff\xff\xff\xff\xff\xff" "abcd", 14);
	err.code = 0;
	ck_assert_int_eq(hdr(p, 14, true, 1 << 20, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_TOO_BIG);
	/* Lengths just over the cap, in each encoding. */
	memcpy(p, "\x82\xe5" "abcd", 6);	/* 101 */
	ck_assert_int_eq(hdr(p, 6, true, 100, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_TOO_BIG);
	ck_assert_int_eq(hdr(p, 6, true, 101, &err), 1);
	/* Non-minimal encodings. */
	memcpy(p, "\x82\xfe\x00\x05" "abcd", 8);
	ck_assert_int_eq(hdr(p, 8, true, 1000, &err), -1);
	ck_assert_str_eq(err.msg, "non-minimal length");
	memcpy(p, "\x82\xff\x00\x00\x00\x00\x00\x00\xff\xff" "abcd", 14);
	ck_assert_int_eq(hdr(p, 14, true, 1 << 20, &err), -1);
	ck_assert_str_eq(err.msg, "non-minimal length");
	/* Truncated: header cut inside the length and inside the mask. */
	memcpy(p, "\x82\xff\x00\x00\x00\x00\x00\x01\x00\x00" "ab", 12);
	ck_assert_int_eq(hdr(p, 5, true, 1 << 20, &err), 0);
	ck_assert_int_eq(hdr(p, 12, true, 1 << 20, &err), 0);
	ck_assert_int_eq(hdr(p, 1, true, 1 << 20, &err), 0);
	ck_assert_int_eq(hdr(p, 0, true, 1 << 20, &err), 0);
}
END_TEST

/* Feed b to a server-side endpoint byte by byte; return the message count. */
static int
feed_slowly(struct dp_ws *ws, const struct dp_buf *b, struct dp_ws_msg *last,
    struct dp_err *err)
{
	struct dp_ws_msg	 m;
	size_t			 i;
	int			 n = 0, r;

	for (i = 0; i < b->len; i++) {
		dp_ws_feed(ws, b->s + i, 1);
		while ((r = dp_ws_next(ws, &m, err)) == 1) {
			n++;
			*last = m;
		}
		if (r < 0)
			return -1;
	}
	return n;
}

/* dp_ws_buffered: a whole frame, never the start of one (the k8s bridge
 * polls without waiting while it is true: a start spun it). */
START_TEST(test_ws_buffered_whole_frames)
{
	struct dp_ws		*ws = dp_ws_new(true, 1 << 20);
	struct dp_ws_msg	 m;
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };
	size_t			 i;

	ck_assert(!dp_ws_buffered(ws));
	frame(&b, DP_WS_BINARY, true, "abcdef", 6, true);
	frame(&b, DP_WS_BINARY, true, "gh", 2, true);
	/* Byte by byte: false until the first frame is whole. */
	for (i = 0; i < 6 + 6 - 1; i++) {
		dp_ws_feed(ws, b.s + i, 1);
		ck_assert_msg(!dp_ws_buffered(ws), "after %zu bytes", i + 1);
	}
	dp_ws_feed(ws, b.s + i, b.len - i);
	ck_assert(dp_ws_buffered(ws));
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), 1);
	ck_assert(dp_ws_buffered(ws));
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), 1);
	ck_assert(!dp_ws_buffered(ws));
	/* The first byte of a frame alone (what the review's server sent). */
	dp_ws_feed(ws, "\x82", 1);
	ck_assert(!dp_ws_buffered(ws));
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), 0);
	dp_ws_free(ws);
	/* A frame that fails counts: dp_ws_next must be asked (it fails). */
	ws = dp_ws_new(true, 1 << 20);
	dp_ws_feed(ws, "\xf2\x80", 2);	/* RSV bits set */
	ck_assert(dp_ws_buffered(ws));
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
	dp_ws_free(ws);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_ws_fragments)
{
	struct dp_ws		*ws = dp_ws_new(true, 64);
	struct dp_ws_msg	 m;
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };
	/* "€" (e2 82 ac) split across three fragments, ping in between. */
	frame(&b, DP_WS_TEXT, false, "a\xe2", 2, true);
	frame(&b, DP_WS_PING, true, "hi", 2, true);
	frame(&b, DP_WS_CONT, false, "\x82", 1, true);
	frame(&b, DP_WS_CONT, true, "\xac" "b", 2, true);
	ck_assert_int_eq(feed_slowly(ws, &b, &m, &err), 2);
	ck_assert_int_eq(m.opcode, DP_WS_TEXT);
	ck_assert_uint_eq(m.len, 5);
	ck_assert(memcmp(m.data, "a\xe2\x82\xac" "b", 5) == 0);
	/* The ping got its pong (unmasked: we are the server). */
	ck_assert_uint_eq(dp_ws_pending(ws)->len, 4);
	ck_assert(memcmp(dp_ws_pending(ws)->s, "\x8a\x02hi", 4) == 0);
	dp_ws_free(ws);

	/* Continuation with no message started. */
	ws = dp_ws_new(true, 64);
	dp_buf_reset(&b);
	frame(&b, DP_WS_CONT, true, "x", 1, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_PROTOCOL_ERROR);
	/* It queued a close 1002 and refuses anything after. */
	ck_assert(memcmp(dp_ws_pending(ws)->s, "\x88\x02\x03\xea", 4) == 0);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
	dp_ws_free(ws);

	/* A new data frame inside a fragmented message. */
	ws = dp_ws_new(true, 64);
	dp_buf_reset(&b);
	frame(&b, DP_WS_TEXT, false, "x", 1, true);
	frame(&b, DP_WS_TEXT, true, "y", 1, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_PROTOCOL_ERROR);
	dp_ws_free(ws);

	/* Fragments that together exceed the message cap. */
	ws = dp_ws_new(true, 64);
	dp_buf_reset(&b);
	char big[40];
	memset(big, 'z', sizeof(big));
	frame(&b, DP_WS_BINARY, false, big, 40, true);
	frame(&b, DP_WS_CONT, true, big, 40, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_TOO_BIG);
	dp_ws_free(ws);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_ws_utf8)
{
	static const struct {
		const char	*s;
		bool		 ok;
	} t[] = {
		{ "", true }, { "plain", true }, { "\xc3\xa9", true },
		{ "\xe2\x82\xac", true }, { "\xf0\x9f\x98\x80", true },
		{ "\xf4\x8f\xbf\xbf", true },
		{ "\xc0\xaf", false },			/* overlong '/' */
		{ "\xe0\x80\xaf", false },		/* overlong */
		{ "\xf0\x80\x80\xaf", false },		/* overlong */
		{ "\xed\xa0\x80", false },		/* surrogate */
		{ "\xf4\x90\x80\x80", false },		/* > U+10FFFF */
		{ "\xf5\x80\x80\x80", false },
		{ "\xff", false }, { "\x80", false },
		{ "\xe2\x82", false },			/* truncated */
		{ "\xf0\x9f\x98", false },
		{ "a\xc3" "b", false },
	};
	size_t	 i;

	for (i = 0; i < DP_NITEMS(t); i++)
		ck_assert_msg(dp_ws_utf8_valid(t[i].s, strlen(t[i].s)) ==
		    t[i].ok, "case %zu", i);
	/* NUL is a valid code point. */
	ck_assert(dp_ws_utf8_valid("a\0b", 3));
}
END_TEST

START_TEST(test_ws_bad_text)
{
	struct dp_ws		*ws = dp_ws_new(true, 0);
	struct dp_ws_msg	 m;
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };

	frame(&b, DP_WS_TEXT, true, "ok\xff", 3, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
	ck_assert_int_eq(err.code, DP_WS_BAD_DATA);
	dp_ws_free(ws);
	/* The same bytes as binary are fine. */
	ws = dp_ws_new(true, 0);
	dp_buf_reset(&b);
	frame(&b, DP_WS_BINARY, true, "ok\xff", 3, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), 1);
	ck_assert_int_eq(m.opcode, DP_WS_BINARY);
	dp_ws_free(ws);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_ws_close)
{
	struct dp_ws		*ws = dp_ws_new(true, 0);
	struct dp_ws_msg	 m;
	struct dp_err		 err = { 0 };
	struct dp_buf		 b = { 0 };

	frame(&b, DP_WS_CLOSE, true, "\x03\xe8" "bye", 5, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), 1);
	ck_assert_int_eq(m.opcode, DP_WS_CLOSE);
	ck_assert_int_eq(m.close_code, 1000);
	ck_assert_str_eq(m.close_reason, "bye");
	/* Echoed with the same code; nothing after is read. */
	ck_assert(memcmp(dp_ws_pending(ws)->s, "\x88\x02\x03\xe8", 4) == 0);
	dp_buf_reset(&b);
	frame(&b, DP_WS_TEXT, true, "late", 4, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
	dp_ws_free(ws);

	/* Empty close: code 1005 reported, empty close echoed. */
	ws = dp_ws_new(true, 0);
	dp_buf_reset(&b);
	frame(&b, DP_WS_CLOSE, true, "", 0, true);
	dp_ws_feed(ws, b.s, b.len);
	ck_assert_int_eq(dp_ws_next(ws, &m, &err), 1);
	ck_assert_int_eq(m.close_code, DP_WS_NO_STATUS);
	ck_assert_uint_eq(dp_ws_pending(ws)->len, 2);
	dp_ws_free(ws);

	/* One-byte payload, reserved codes, bad UTF-8 reason. */
	static const struct {
		const char	*p;
		size_t		 n;
		int		 code;
	} bad[] = {
		{ "\x03", 1, DP_WS_PROTOCOL_ERROR },
		{ "\x03\xed", 2, DP_WS_PROTOCOL_ERROR },	/* 1005 */
		{ "\x03\xee", 2, DP_WS_PROTOCOL_ERROR },	/* 1006 */
		{ "\x00\x00", 2, DP_WS_PROTOCOL_ERROR },
		{ "\x13\x88", 2, DP_WS_PROTOCOL_ERROR },	/* 5000 */
		{ "\x03\xe8\xff", 3, DP_WS_BAD_DATA },
	};
	for (size_t i = 0; i < DP_NITEMS(bad); i++) {
		ws = dp_ws_new(true, 0);
		dp_buf_reset(&b);
		frame(&b, DP_WS_CLOSE, true, bad[i].p, bad[i].n, true);
		dp_ws_feed(ws, b.s, b.len);
		err.code = 0;
		ck_assert_int_eq(dp_ws_next(ws, &m, &err), -1);
		ck_assert_int_eq(err.code, bad[i].code);
		dp_ws_free(ws);
	}
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_ws_accept_key)
{
	char	 out[29];

	/* RFC 6455 §1.3. */
	dp_ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==", out);
	ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}
END_TEST

/*
 * A tiny server on fd: reads the upgrade, answers per mode, then (101)
 * sends a text frame "hello" and echoes one masked frame back.
 */
static void
serve(int fd, int mode)
{
	char		 req[4096], accept[29], key[64], *k, *e;
	struct dp_buf	 b = { 0 };
	size_t		 n = 0;
	ssize_t		 r;

	while (n < sizeof(req) - 1 && (r = read(fd, req + n,
	    sizeof(req) - 1 - n)) > 0) {
		n += (size_t)r;
		req[n] = '\0';
		if (strstr(req, "\r\n\r\n"))
			break;
	}
	k = strstr(req, "Sec-WebSocket-Key: ");
	if (k == NULL)
		_exit(1);
	k += 19;
	e = strstr(k, "\r\n");
	snprintf(key, sizeof(key), "%.*s", (int)(e - k), k);
	dp_ws_accept_key(key, accept);
	if (mode == 1) {
		dp_buf_adds(&b, "HTTP/1.1 403 Forbidden\r\nContent-Length: 27"
		    "\r\n\r\n{\"detail\":\"Access denied\"}");
	} else {
		dp_buf_printf(&b, "HTTP/1.1 101 Switching Protocols\r\n"
		    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
		    "Sec-WebSocket-Accept: %s\r\n%s\r\n",
		    mode == 2 ? "AAAAAAAAAAAAAAAAAAAAAAAAAAA=" : accept,
		    mode == 3 ? "Sec-WebSocket-Protocol: V4.CHANNEL.K8S.IO\r\n" :
		    mode == 4 ? "Sec-WebSocket-Protocol: v4.channel.k8s.io\r\n" :
		    "");
		frame(&b, DP_WS_TEXT, true, "hello", 5, false);
	}
	if (write(fd, b.s, b.len) < 0)
		_exit(1);
	if (mode == 0) {
		struct dp_ws		*ws = dp_ws_new_fd(fd, false, true, 0);
		struct dp_ws_msg	 m;
		struct dp_err		 err = { 0 };

		if (dp_ws_recv(ws, 5000, &m, &err) == 1)
			(void)dp_ws_send(ws, m.opcode, m.data, m.len, &err);
		(void)dp_ws_recv(ws, 5000, &m, &err);	/* the close */
		dp_ws_free(ws);
	}
	dp_buf_release(&b);
	_exit(0);
}

static pid_t
server(int sv[2], int mode)
{
	pid_t	 pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		serve(sv[1], mode);
	}
	close(sv[1]);
	return pid;
}

START_TEST(test_ws_handshake)
{
	struct dp_ws		*ws;
	struct dp_ws_msg	 m;
	struct dp_err		 err = { 0 };
	struct dp_buf		 body = { 0 };
	const char *const	 hdrs[] = { "Authorization: Bearer x", NULL };
	char			 proto[64];
	int			 sv[2], st;
	pid_t			 pid;

	pid = server(sv, 0);
	ws = dp_ws_new_fd(sv[0], true, false, 0);
	ck_assert_int_eq(dp_ws_handshake(ws, "h", "/p?q=1", hdrs, NULL, NULL,
	    0, NULL, 5000, &err), 101);
	/* "hello" came in the same read as the 101. */
	ck_assert_int_eq(dp_ws_recv(ws, 5000, &m, &err), 1);
	ck_assert_int_eq(m.opcode, DP_WS_TEXT);
	ck_assert_str_eq(m.data, "hello");
	ck_assert_int_eq(dp_ws_send(ws, DP_WS_TEXT, "echo me", 7, &err), 0);
	ck_assert_int_eq(dp_ws_recv(ws, 5000, &m, &err), 1);
	ck_assert_str_eq(m.data, "echo me");
	ck_assert_int_eq(dp_ws_send_close(ws, 1000, "done", &err), 0);
	dp_ws_free(ws);
	waitpid(pid, &st, 0);
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);

	/* Refused: the status and the body come back. */
	pid = server(sv, 1);
	ws = dp_ws_new_fd(sv[0], true, false, 0);
	ck_assert_int_eq(dp_ws_handshake(ws, "h", "/p", NULL, NULL, NULL, 0,
	    &body, 5000, &err), 403);
	ck_assert_str_eq(body.s, "{\"detail\":\"Access denied\"}");
	dp_ws_free(ws);
	waitpid(pid, &st, 0);

	/* A wrong Sec-WebSocket-Accept is not a connection. */
	pid = server(sv, 2);
	ws = dp_ws_new_fd(sv[0], true, false, 0);
	ck_assert_int_eq(dp_ws_handshake(ws, "h", "/p", NULL, NULL, NULL, 0,
	    NULL, 5000, &err), -1);
	ck_assert_str_eq(err.msg, "wrong Sec-WebSocket-Accept");
	dp_ws_free(ws);
	waitpid(pid, &st, 0);

	/*
	 * Subprotocols are compared exactly (RFC 6455 11.3.4; found by
	 * fuzzing): one the client did not ask for in that case is not it.
	 */
	pid = server(sv, 3);
	ws = dp_ws_new_fd(sv[0], true, false, 0);
	ck_assert_int_eq(dp_ws_handshake(ws, "h", "/p", NULL,
	    "v5.channel.k8s.io, v4.channel.k8s.io", proto, sizeof(proto),
	    NULL, 5000, &err), -1);
	ck_assert_str_eq(err.msg, "unrequested subprotocol");
	dp_ws_free(ws);
	waitpid(pid, &st, 0);
	pid = server(sv, 4);
	ws = dp_ws_new_fd(sv[0], true, false, 0);
	ck_assert_int_eq(dp_ws_handshake(ws, "h", "/p", NULL,
	    "v5.channel.k8s.io, v4.channel.k8s.io", proto, sizeof(proto),
	    NULL, 5000, &err), 101);
	ck_assert_str_eq(proto, "v4.channel.k8s.io");
	dp_ws_free(ws);
	waitpid(pid, &st, 0);

	/* Header injection is refused before anything is sent. */
	ws = dp_ws_new(false, 0);
	ck_assert_int_eq(dp_ws_handshake(ws, "h", "/p\r\nX: y", NULL, NULL,
	    NULL, 0, NULL, 100, &err), -1);
	dp_ws_free(ws);
	dp_buf_release(&body);
}
END_TEST

START_TEST(test_ws_connect_errors)
{
	struct dp_err	 err = { 0 };
	int		 st;

	ck_assert_ptr_null(dp_ws_connect("http://x/", NULL, NULL, 100, &st,
	    NULL, &err));
	ck_assert_int_eq(st, -1);
	ck_assert_ptr_null(dp_ws_connect("ws+unix:///nonexistent/sock:/x",
	    NULL, NULL, 100, &st, NULL, &err));
	ck_assert_ptr_null(dp_ws_connect("ws+unix://nocolon", NULL, NULL,
	    100, &st, NULL, &err));
}
END_TEST

static Suite *
ws_suite(void)
{
	Suite	*s = suite_create("ws");
	TCase	*tc;

	tc = tcase_create("frame_lengths");
	tcase_add_test(tc, test_ws_frame_lengths);
	suite_add_tcase(s, tc);
	tc = tcase_create("frame_hostile");
	tcase_add_test(tc, test_ws_frame_hostile);
	suite_add_tcase(s, tc);
	tc = tcase_create("fragments");
	tcase_add_test(tc, test_ws_fragments);
	tcase_add_test(tc, test_ws_buffered_whole_frames);
	suite_add_tcase(s, tc);
	tc = tcase_create("utf8");
	tcase_add_test(tc, test_ws_utf8);
	tcase_add_test(tc, test_ws_bad_text);
	suite_add_tcase(s, tc);
	tc = tcase_create("close");
	tcase_add_test(tc, test_ws_close);
	suite_add_tcase(s, tc);
	tc = tcase_create("handshake");
	tcase_add_test(tc, test_ws_accept_key);
	tcase_add_test(tc, test_ws_handshake);
	tcase_add_test(tc, test_ws_connect_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(ws_suite());
	int	 nfail;

	signal(SIGPIPE, SIG_IGN);
	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
