/* tests/unit/check_wsapp.c: what the ws programs share: UTF-8 output, socket URIs, query, input lines */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <valgrind/valgrind.h>

#include "wsapp.h"

START_TEST(test_wsapp_utf8_take)
{
	struct dp_buf	 o = { 0 };
	size_t		 n;

	/* Complete text passes as is. */
	n = dp_utf8_take(&o, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 10,
	    100, false);
	ck_assert_uint_eq(n, 10);
	ck_assert_str_eq(o.s, "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
	/* An incomplete tail of each length waits... */
	static const char *const tails[] = { "x\xf0", "x\xf0\x9f",
	    "x\xf0\x9f\x98", "x\xe2", "x\xe2\x82", "x\xc3" };
	for (size_t i = 0; i < DP_NITEMS(tails); i++) {
		dp_buf_reset(&o);
		n = dp_utf8_take(&o, tails[i], strlen(tails[i]), 100, false);
		ck_assert_uint_eq(n, 1);
		ck_assert_str_eq(o.s, "x");
		/* ...and becomes U+FFFD per byte at the end of the stream. */
		dp_buf_reset(&o);
		n = dp_utf8_take(&o, tails[i] + 1, strlen(tails[i]) - 1, 100,
		    true);
		ck_assert_uint_eq(n, strlen(tails[i]) - 1);
		ck_assert_uint_eq(o.len, 3 * n);
	}
	/* Invalid bytes become U+FFFD; nothing is dropped. */
	dp_buf_reset(&o);
	n = dp_utf8_take(&o, "a\xff" "b\xc0\xaf" "c\xed\xa0\x80" "d\x80", 12,
	    100, false);
	ck_assert_uint_eq(n, 12);
	ck_assert_str_eq(o.s, "a\xef\xbf\xbd" "b\xef\xbf\xbd\xef\xbf\xbd"
	    "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" "d\xef\xbf\xbd");
	/* A bad continuation is not swallowed: E2 41 → FFFD 'A'. */
	dp_buf_reset(&o);
	n = dp_utf8_take(&o, "\xe2" "A", 2, 100, false);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(o.s, "\xef\xbf\xbd" "A");
	/* NUL and escape sequences pass. */
	dp_buf_reset(&o);
	n = dp_utf8_take(&o, "\x1b[K\0z", 5, 100, false);
	ck_assert_uint_eq(n, 5);
	ck_assert_uint_eq(o.len, 5);
	/* The output cap never splits a sequence. */
	dp_buf_reset(&o);
	n = dp_utf8_take(&o, "ab\xe2\x82\xac", 5, 4, false);
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(o.s, "ab");
	dp_buf_reset(&o);
	n = dp_utf8_take(&o, "\xff\xff", 2, 4, false);
	ck_assert_uint_eq(n, 1);
	dp_buf_release(&o);
}
END_TEST

START_TEST(test_wsapp_utf8_stream)
{
	/* Any split of a long mixed text reassembles exactly. */
	static const char text[] = "h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80"
	    " \xe4\xb8\xad\xe6\x96\x87 end";
	struct dp_buf	 o = { 0 }, pend = { 0 };
	size_t		 len = sizeof(text) - 1, cut, n;

	for (cut = 0; cut <= len; cut++) {
		dp_buf_reset(&o);
		dp_buf_reset(&pend);
		dp_buf_add(&pend, text, cut);
		n = dp_utf8_take(&o, pend.s, pend.len, 1 << 20, false);
		memmove(pend.s, pend.s + n, pend.len - n);
		pend.len -= n;
		ck_assert_uint_le(pend.len, 3);
		dp_buf_add(&pend, text + cut, len - cut);
		n = dp_utf8_take(&o, pend.s, pend.len, 1 << 20, true);
		ck_assert_uint_eq(n, pend.len);
		ck_assert_uint_eq(o.len, len);
		ck_assert(memcmp(o.s, text, len) == 0);
	}
	dp_buf_release(&o);
	dp_buf_release(&pend);
}
END_TEST

START_TEST(test_wsapp_uri_split)
{
	static const struct {
		const char	*uri;
		int		 rc;
		int		 kind;
		const char	*seg;
		const char	*query;
	} t[] = {
		{ "/api/v1/ws/terminal/0123456789abcdef01234567?token=x", 0,
		    DP_WSK_TERMINAL, "0123456789abcdef01234567", "token=x" },
		{ "/api/v1/ws/logs/0123456789abcdef01234567/", 0, DP_WSK_LOGS,
		    "0123456789abcdef01234567", NULL },
		{ "/api/v1/ws/ssh/0123456789abcdef01234567", 0, DP_WSK_SSH,
		    "0123456789abcdef01234567", NULL },
		{ "/api/v1/ws/terminal", 0, DP_WSK_TERMINAL, "", NULL },
		{ "/api/v1/ws/terminal/", 0, DP_WSK_TERMINAL, "", NULL },
		{ "/api/v1/ws/terminal?x=1", 0, DP_WSK_TERMINAL, "", "x=1" },
		{ "/api/v1/ws/terminal/nothex", 0, DP_WSK_TERMINAL, "", NULL },
		{ "/api/v1/ws/terminal/0123456789ABCDEF01234567", 0,
		    DP_WSK_TERMINAL, "", NULL },
		{ "/api/v1/ws/terminal/0123456789abcdef012345678", 0,
		    DP_WSK_TERMINAL, "", NULL },
		{ "/ws/terminal/0123456789abcdef01234567", 0, DP_WSK_TERMINAL,
		    "0123456789abcdef01234567", NULL },
		{ "/api/v1/ws/terminal/a/b", -1, 0, "", NULL },
		{ "/api/v1/ws/terminal//", -1, 0, "", NULL },
		{ "/api/v1/ws/terminalx", -1, 0, "", NULL },
		{ "/api/v1/ws/", -1, 0, "", NULL },
		{ "/api/v1/ws/shell/0123456789abcdef01234567", -1, 0, "", NULL },
		{ "/api/v1/environments", -1, 0, "", NULL },
		{ "", -1, 0, "", NULL },
		{ NULL, -1, 0, "", NULL },
	};
	enum dp_ws_kind	 k;
	const char	*q;
	char		 seg[25];
	size_t		 i;

	for (i = 0; i < DP_NITEMS(t); i++) {
		ck_assert_msg(dp_ws_uri_split(t[i].uri, &k, seg, &q) ==
		    t[i].rc, "case %zu", i);
		if (t[i].rc < 0)
			continue;
		ck_assert_int_eq(k, t[i].kind);
		ck_assert_str_eq(seg, t[i].seg);
		if (t[i].query == NULL)
			ck_assert_ptr_null(q);
		else
			ck_assert_str_eq(q, t[i].query);
	}
}
END_TEST

START_TEST(test_wsapp_query)
{
	struct dp_wsreq	 r;

	dp_wsreq_parse(&r, DP_WSK_TERMINAL, "token=abc&cols=120&rows=40"
	    "&device_id=ph.one_1-x&token=second", "0123456789abcdef01234567",
	    "Bearer header");
	ck_assert_str_eq(r.token, "abc");
	ck_assert_str_eq(r.target, "0123456789abcdef01234567");
	ck_assert_int_eq(r.cols, 120);
	ck_assert_int_eq(r.rows, 40);
	ck_assert_str_eq(r.device_id, "ph.one_1-x");
	dp_wsreq_release(&r);
	/* Bad values fall back to the defaults; the header gives the token. */
	dp_wsreq_parse(&r, DP_WSK_LOGS, "cols=9&rows=201&lines=-1&follow=maybe"
	    "&device_id=bad%20id&token=", "xyz", "bEaReR   tok");
	ck_assert_str_eq(r.token, "tok");
	ck_assert_str_eq(r.target, "");
	ck_assert_int_eq(r.cols, 80);
	ck_assert_int_eq(r.rows, 24);
	ck_assert_int_eq(r.lines, 100);
	ck_assert(r.follow);
	ck_assert_str_eq(r.device_id, "");
	dp_wsreq_release(&r);
	dp_wsreq_parse(&r, DP_WSK_LOGS, "lines=0&follow=FALSE&cols=500&rows=5"
	    "&lines=7", NULL, "Basic abc");
	ck_assert_ptr_null(r.token);
	ck_assert_int_eq(r.lines, 0);
	ck_assert(!r.follow);
	ck_assert_int_eq(r.cols, 500);
	ck_assert_int_eq(r.rows, 5);
	dp_wsreq_release(&r);
	dp_wsreq_parse(&r, DP_WSK_LOGS, "lines=1001&cols=99999999999999999999"
	    "&device_id=" "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaa", NULL, NULL);
	ck_assert_int_eq(r.lines, 100);
	ck_assert_int_eq(r.cols, 80);
	ck_assert_str_eq(r.device_id, "");	/* 65 chars */
	dp_wsreq_release(&r);
	/* No query string at all; a percent-encoded token and key. */
	dp_wsreq_parse(&r, DP_WSK_TERMINAL, NULL, NULL, NULL);
	ck_assert_ptr_null(r.token);
	ck_assert_int_eq(r.cols, 80);
	dp_wsreq_release(&r);
	dp_wsreq_parse(&r, DP_WSK_TERMINAL, "%74oken=a%2Eb+c&rows=3%30", NULL,
	    NULL);
	ck_assert_str_eq(r.token, "a.b c");
	ck_assert_int_eq(r.rows, 30);
	dp_wsreq_release(&r);
	/* A decoded NUL cannot cut a number short: "4%000" is not 4. */
	dp_wsreq_parse(&r, DP_WSK_TERMINAL, "cols=40%00junk&rows=40%00", NULL,
	    NULL);
	ck_assert_int_eq(r.cols, 80);
	ck_assert_int_eq(r.rows, 24);
	dp_wsreq_release(&r);
}
END_TEST

START_TEST(test_query_get)
{
	struct dp_arena	 a = { 0 };
	const char	*v;

	ck_assert_ptr_null(dp_query_get(&a, "", "x"));
	ck_assert_ptr_null(dp_query_get(&a, "xx=1&x", "y"));
	ck_assert_str_eq(dp_query_get(&a, "xx=1&x", "x"), "");
	ck_assert_str_eq(dp_query_get(&a, "a=1&a=2", "a"), "1");
	ck_assert_str_eq(dp_query_get(&a, "a=%zz%4", "a"), "%zz%4");
	v = dp_query_get(&a, "k=a%00b", "k");
	ck_assert_uint_eq(strlen(v), 3);
	ck_assert_int_eq(v[1], 0x7f);
	ck_assert_str_eq(dp_query_get(&a, "%6B%3d=v%3D", "k="), "v=");
	dp_arena_release(&a);
}
END_TEST

struct seen {
	int	 n, toolong;
	char	 last[64];
	size_t	 lastlen;
};

static void
cb(void *arg, const char *d, size_t len, bool toolong)
{
	struct seen	*s = arg;

	s->n++;
	if (toolong) {
		s->toolong++;
		return;
	}
	s->lastlen = len;
	snprintf(s->last, sizeof(s->last), "%.*s", (int)len,
	    d != NULL ? d : "?");
}

START_TEST(test_wsapp_lines)
{
	struct dp_wslines	 l = { 0 };
	struct seen		 s = { 0 };
	char			*big;

	dp_wsapp_feed_lines(&l, "ab", 2, cb, &s);
	ck_assert_int_eq(s.n, 0);
	dp_wsapp_feed_lines(&l, "c\nde", 4, cb, &s);
	ck_assert_int_eq(s.n, 1);
	ck_assert_str_eq(s.last, "abc");
	dp_wsapp_feed_lines(&l, "\n\n", 2, cb, &s);
	ck_assert_int_eq(s.n, 3);
	ck_assert_uint_eq(s.lastlen, 0);
	/* A line over the cap, fed in pieces, is reported once and dropped. */
	big = malloc(DP_WS_LINE_MAX + 10);
	memset(big, 'x', DP_WS_LINE_MAX + 10);
	dp_wsapp_feed_lines(&l, big, 40000, cb, &s);
	dp_wsapp_feed_lines(&l, big, 40000, cb, &s);
	ck_assert_int_eq(s.n, 3);
	dp_wsapp_feed_lines(&l, "zz\nok\n", 6, cb, &s);
	ck_assert_int_eq(s.toolong, 1);
	ck_assert_int_eq(s.n, 5);
	ck_assert_str_eq(s.last, "ok");
	/* Exactly the cap is fine. */
	big[DP_WS_LINE_MAX] = '\n';
	dp_wsapp_feed_lines(&l, big, DP_WS_LINE_MAX + 1, cb, &s);
	ck_assert_int_eq(s.toolong, 1);
	ck_assert_uint_eq(s.lastlen, DP_WS_LINE_MAX);
	/* NUL bytes stay inside the line (the JSON parser refuses them). */
	dp_wsapp_feed_lines(&l, "a\0b\n", 4, cb, &s);
	ck_assert_uint_eq(s.lastlen, 3);
	free(big);
	dp_wslines_release(&l);
}
END_TEST

/* CPU seconds this process has used. */
static double
cpu_s(void)
{
	struct rusage	 ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/*
 * A message that websocketd split into many lines is parsed once, not
 * again with each line: "{" and 64,000 line ends (found by fuzzing) took
 * about 2 s of CPU per socket here, each line re-parsing all before it;
 * the linear parse takes 0.03 s.  (Valgrind's CPU is some 30 times
 * slower: its bound is too.)
 */
START_TEST(test_wsapp_lines_many)
{
	struct dp_wslines	 l = { 0 };
	struct seen		 s = { 0 };
	static const char	 tail[] = "\"type\":\"ping\"}\n";
	size_t			 n = DP_WS_LINE_MAX - 100, i;
	char			*in = malloc(n + sizeof(tail));
	double			 t0;

	in[0] = '{';
	for (i = 1; i < n; i++)
		in[i] = '\n';
	memcpy(in + n, tail, sizeof(tail) - 1);
	t0 = cpu_s();
	dp_wsapp_feed_lines(&l, in, n + sizeof(tail) - 1, cb, &s);
	ck_assert_msg(cpu_s() - t0 < (RUNNING_ON_VALGRIND ? 15.0 : 0.5),
	    "%.2f s of CPU", cpu_s() - t0);
	ck_assert_int_eq(s.n, 1);
	ck_assert_int_eq(s.toolong, 0);
	ck_assert_uint_eq(s.lastlen, n + sizeof(tail) - 2);
	free(in);
	dp_wslines_release(&l);
}
END_TEST

/*
 * Every message the assembler hands on, "|"-separated, toolong as "!",
 * not a message (a binary frame) as "?".
 */
static void
cb_all(void *arg, const char *d, size_t len, bool toolong)
{
	struct dp_buf	*b = arg;

	if (b->len > 0)
		dp_buf_addc(b, '|');
	if (toolong)
		dp_buf_addc(b, '!');
	else if (d == NULL)
		dp_buf_addc(b, '?');	/* a binary frame */
	else
		dp_buf_add(b, d, len);
}

static void
ck_messages(const char *in, ssize_t n, const char *want)
{
	struct dp_wslines	 l = { 0 };
	struct dp_buf		 b = { 0 };

	dp_wsapp_feed_lines(&l, in, n < 0 ? strlen(in) : (size_t)n, cb_all,
	    &b);
	dp_wslines_expire(&l, INT64_MAX, cb_all, &b);
	ck_assert_str_eq(b.s != NULL ? b.s : "", want);
	dp_buf_release(&b);
	dp_wslines_release(&l);
}

/*
 * websocketd splits a frame at its raw line breaks and writes a binary
 * frame with no line end: the assembler gives messages back.
 */
START_TEST(test_wsapp_line_messages)
{
	struct dp_buf	 big = { 0 };
	size_t		 i;

	/* One object over lines (raw line breaks between its tokens). */
	ck_messages("{\"type\":\"ping\",\n\"x\": 1}\n", -1,
	    "{\"type\":\"ping\",\n\"x\": 1}");
	ck_messages("{\n\"type\"\n:\n\"ping\"\n}\n", -1,
	    "{\n\"type\"\n:\n\"ping\"\n}");
	/* A binary frame's bytes glued to the next message: not acted on. */
	ck_messages("\x00\xff\x01{\"type\":\"ping\"}\n", 19,
	    "?|{\"type\":\"ping\"}");
	ck_messages("ab{cd{\"type\":\"ping\"}\n", -1, "?|{\"type\":\"ping\"}");
	ck_messages("{\"type\":\"input\",\"data\":\"x\"}{\"type\":\"ping\"}\n", -1,
	    "?|{\"type\":\"ping\"}");
	/* Bytes with no line end are a binary frame: not a message. */
	ck_messages("\x00\xff\x01", 3, "?");
	ck_messages("{\"type\":\"input\",\"data\":\"x\"}", -1, "?");
	/* An open start that the next line does not continue: both. */
	ck_messages("{\"type\":\"ping\"\n{\"type\":\"ping\"}\n", -1,
	    "{\"type\":\"ping\"|{\"type\":\"ping\"}");
	/* Lines that are not JSON objects go as they are, one each. */
	ck_messages("hello\n42\n[1]\n\n", -1, "hello|42|[1]|");
	ck_messages("{\"a\":1} x\n", -1, "{\"a\":1} x");
	/* An open message at the end of what came was a whole frame
	 * (once its moment for the rest has passed). */
	ck_messages("{\"type\":\"ping\"\n", -1, "{\"type\":\"ping\"");
	/* Joined lines past the cap are too large, once. */
	dp_buf_adds(&big, "{\"type\":\"input\",\"data\":[");
	for (i = 0; i < 70; i++)
		dp_buf_printf(&big, "%s\"%0998d\"\n", i ? "," : "", 0);
	dp_buf_adds(&big, "]}\n{\"type\":\"ping\"}\n");
	{
		struct dp_wslines	 l = { 0 };
		struct dp_buf		 b = { 0 };
		const char		*tail = "|]}|{\"type\":\"ping\"}";

		dp_wsapp_feed_lines(&l, big.s, big.len, cb_all, &b);
		/* Once too large; the lines after the cap go one by one
		 * (errors), the next message is whole. */
		ck_assert(b.s[0] == '!');
		ck_assert_ptr_null(strchr(b.s + 1, '!'));
		ck_assert_ptr_null(strstr(b.s, "\"data\""));
		ck_assert(b.len > strlen(tail) &&
		    strcmp(b.s + b.len - strlen(tail), tail) == 0);
		dp_buf_release(&b);
		dp_wslines_release(&l);
	}
	dp_buf_release(&big);
}
END_TEST

/*
 * A frame with raw line breaks, larger than a pipe's atomic write, can
 * end one read in its middle: the rest that comes at once joins it; only
 * once DP_WS_PEND_MS passed without it does the open part go alone.
 */
START_TEST(test_wsapp_line_split_frame)
{
	struct dp_wslines	 l = { 0 };
	struct dp_buf		 b = { 0 };
	int64_t			 now;

	dp_wsapp_feed_lines(&l, "{\"type\":\n", 9, cb_all, &b);
	ck_assert_uint_eq(b.len, 0);
	now = dp_mono_ms();
	ck_assert(l.due >= now && l.due <= now + DP_WS_PEND_MS);
	dp_wslines_expire(&l, l.due - 1, cb_all, &b);
	ck_assert_uint_eq(b.len, 0);
	dp_wsapp_feed_lines(&l, "\"ping\"}\n", 8, cb_all, &b);
	ck_assert_str_eq(b.s, "{\"type\":\n\"ping\"}");
	ck_assert_int_eq(l.due, 0);
	/* Nothing more came: the open part goes as it is, once. */
	dp_buf_reset(&b);
	dp_wsapp_feed_lines(&l, "{\"type\":\n", 9, cb_all, &b);
	dp_wslines_expire(&l, l.due, cb_all, &b);
	ck_assert_str_eq(b.s, "{\"type\":");
	ck_assert_int_eq(l.due, 0);
	dp_wslines_expire(&l, INT64_MAX, cb_all, &b);
	ck_assert_str_eq(b.s, "{\"type\":");
	/* A line begun after it: its end, in time, decides. */
	dp_buf_reset(&b);
	dp_wsapp_feed_lines(&l, "{\"a\":\n", 6, cb_all, &b);
	dp_wsapp_feed_lines(&l, "1", 1, cb_all, &b);
	dp_wslines_expire(&l, l.due - 1, cb_all, &b);
	ck_assert_uint_eq(b.len, 0);
	dp_wsapp_feed_lines(&l, "}\n", 2, cb_all, &b);
	ck_assert_str_eq(b.s, "{\"a\":\n1}");
	ck_assert_int_eq(l.due, 0);
	/* Not in time: the open message as it is, the line a binary frame. */
	dp_buf_reset(&b);
	dp_wsapp_feed_lines(&l, "{\"a\":\n", 6, cb_all, &b);
	dp_wsapp_feed_lines(&l, "1", 1, cb_all, &b);
	dp_wslines_expire(&l, l.due, cb_all, &b);
	ck_assert_str_eq(b.s, "{\"a\":|?");
	ck_assert_int_eq(l.due, 0);
	/*
	 * A binary frame, then a message in the next read: the frame (not
	 * acted on), then the message.  A frame larger than a pipe's write,
	 * split between two reads, is one message.
	 */
	dp_buf_reset(&b);
	dp_wsapp_feed_lines(&l, "{\"type\":\"input\",\"data\":\"x\"}", 27,
	    cb_all, &b);
	ck_assert_uint_eq(b.len, 0);
	dp_wsapp_feed_lines(&l, "{\"type\":\"ping\"}\n", 16, cb_all, &b);
	ck_assert_str_eq(b.s, "?|{\"type\":\"ping\"}");
	ck_assert_int_eq(l.due, 0);
	/* (Which the first few "{" would not find: the frame left open.) */
	dp_buf_reset(&b);
	dp_wsapp_feed_lines(&l, "{\"a\":", 5, cb_all, &b);
	dp_wsapp_feed_lines(&l, "{\"type\":\"ping\"}\n", 16, cb_all, &b);
	ck_assert_str_eq(b.s, "?|{\"type\":\"ping\"}");
	dp_buf_reset(&b);
	dp_wsapp_feed_lines(&l, "{\"type\":\"in", 11, cb_all, &b);
	dp_wsapp_feed_lines(&l, "put\",\"data\":\"x\"}\n", 17, cb_all, &b);
	ck_assert_str_eq(b.s, "{\"type\":\"input\",\"data\":\"x\"}");
	/* A binary frame past the cap, alone: too large, said once. */
	dp_buf_reset(&b);
	{
		char	*big = malloc(DP_WS_LINE_MAX + 10);

		memset(big, 'x', DP_WS_LINE_MAX + 10);
		dp_wsapp_feed_lines(&l, big, DP_WS_LINE_MAX + 10, cb_all, &b);
		free(big);
	}
	dp_wslines_expire(&l, l.due, cb_all, &b);
	ck_assert_str_eq(b.s, "!");
	dp_wsapp_feed_lines(&l, "xx\n{\"type\":\"ping\"}\n", 19, cb_all,
	    &b);
	ck_assert_str_eq(b.s, "!|{\"type\":\"ping\"}");
	dp_buf_release(&b);
	dp_wslines_release(&l);
}
END_TEST

START_TEST(test_wsapp_messages)
{
	struct dp_buf	 o = { 0 };

	dp_wsapp_close(&o, 1008, "Too many connections");
	dp_wsapp_error(&o, "Message too large");
	dp_wsapp_simple(&o, "pong");
	ck_assert_str_eq(o.s,
	    "{\"type\":\"close\",\"code\":1008,\"reason\":\"Too many connections\"}\n"
	    "{\"type\":\"error\",\"message\":\"Message too large\","
	    "\"data\":\"Message too large\"}\n"
	    "{\"type\":\"pong\"}\n");
	ck_assert_str_eq(dp_wsapp_status_reason("stopped"),
	    "Environment stopped");
	ck_assert_str_eq(dp_wsapp_status_reason("error"), "Environment error");
	ck_assert_str_eq(dp_wsapp_status_reason("creating"),
	    "Environment restarting");
	ck_assert_str_eq(dp_wsapp_status_reason(NULL),
	    "Environment terminated");
	dp_buf_release(&o);
}
END_TEST

static Suite *
wsapp_suite(void)
{
	Suite	*s = suite_create("wsapp");
	TCase	*tc;

	tc = tcase_create("utf8");
	tcase_add_test(tc, test_wsapp_utf8_take);
	tcase_add_test(tc, test_wsapp_utf8_stream);
	suite_add_tcase(s, tc);
	tc = tcase_create("uri");
	tcase_add_test(tc, test_wsapp_uri_split);
	suite_add_tcase(s, tc);
	tc = tcase_create("query");
	tcase_add_test(tc, test_wsapp_query);
	tcase_add_test(tc, test_query_get);
	suite_add_tcase(s, tc);
	tc = tcase_create("lines");
	tcase_add_test(tc, test_wsapp_lines);
	tcase_add_test(tc, test_wsapp_lines_many);
	tcase_add_test(tc, test_wsapp_line_messages);
	tcase_add_test(tc, test_wsapp_line_split_frame);
	suite_add_tcase(s, tc);
	tc = tcase_create("messages");
	tcase_add_test(tc, test_wsapp_messages);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(wsapp_suite());
	int	 nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
