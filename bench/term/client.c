/* bench/term/client.c: terminal socket benchmarks over lib/ws.c (RTT, throughput, reattach, idle sockets) */
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "ws.h"

/*
 * usage: client URL rtt N          keystroke echo RTT p50/p99 (ms)
 *        client URL throughput MB  base64 output of MB MB through tmux
 *        client URL reattach N     connect → first prompt output (ms)
 *        client URL idle N         hold N sockets open until stdin closes
 * URL: ws://host:port/api/v1/ws/terminal/<id>?token=...
 */

static int64_t
mono_us(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t	 t_upgraded;	/* mono_us() when the 101 came */

static struct dp_ws *
open_term(const char *url, int64_t *t_welcome)
{
	struct dp_ws		*ws;
	struct dp_ws_msg	 m;
	struct dp_err		 err = { 0 };
	int			 st;

	ws = dp_ws_connect(url, NULL, NULL, 10000, &st, NULL, &err);
	if (ws == NULL) {
		fprintf(stderr, "connect: status %d %s\n", st, err.msg);
		exit(1);
	}
	t_upgraded = mono_us();
	if (dp_ws_recv(ws, 10000, &m, &err) != 1 ||
	    strstr(m.data, "\"welcome\"") == NULL) {
		fprintf(stderr, "no welcome: %s\n", err.msg[0] ? err.msg :
		    m.data);
		exit(1);
	}
	if (t_welcome != NULL)
		*t_welcome = mono_us();
	return ws;
}

static void
send_input(struct dp_ws *ws, const char *data)
{
	struct json_object	*o = json_object_new_object();
	struct dp_err		 err = { 0 };
	const char		*s;

	json_object_object_add(o, "type", json_object_new_string("input"));
	json_object_object_add(o, "data", json_object_new_string(data));
	s = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	if (dp_ws_send(ws, DP_WS_TEXT, s, strlen(s), &err) < 0) {
		fprintf(stderr, "send: %s\n", err.msg);
		exit(1);
	}
	json_object_put(o);
}

/* The "data" of an output message, or NULL for other messages. */
static const char *
output_of(const struct dp_ws_msg *m, struct json_object **keep)
{
	struct json_object	*o, *t, *d;

	*keep = NULL;
	if ((o = json_tokener_parse(m->data)) == NULL)
		return NULL;
	if (!json_object_object_get_ex(o, "type", &t) ||
	    strcmp(json_object_get_string(t), "output") != 0 ||
	    !json_object_object_get_ex(o, "data", &d)) {
		json_object_put(o);
		return NULL;
	}
	*keep = o;
	return json_object_get_string(d);
}

/* Wait for output containing needle (NULL: any output); bytes seen. */
static int64_t
wait_output(struct dp_ws *ws, const char *needle, int timeout_ms)
{
	struct dp_ws_msg	 m;
	struct dp_err		 err = { 0 };
	struct json_object	*o;
	const char		*d;
	char			 tail[256] = "";
	int64_t			 got = 0, end = dp_mono_ms() + timeout_ms;
	size_t			 tl, dl;

	for (;;) {
		if (dp_ws_recv(ws, (int)(end - dp_mono_ms()), &m, &err) != 1) {
			fprintf(stderr, "waiting for %s: %s\n",
			    needle ? needle : "output", err.msg);
			exit(1);
		}
		if (getenv("BENCH_TRACE") != NULL)	/* message times */
			fprintf(stderr, "%8.2f ms after the upgrade: %zu bytes "
			    "%.40s\n", (mono_us() - t_upgraded) / 1000.0,
			    strlen(m.data), m.data);
		if ((d = output_of(&m, &o)) == NULL)
			continue;
		dl = strlen(d);
		got += (int64_t)dl;
		if (needle == NULL) {
			json_object_put(o);
			return got;
		}
		/* The needle may straddle two messages. */
		tl = strlen(tail);
		{
			struct dp_buf	 b = { 0 };

			dp_buf_add(&b, tail, tl);
			dp_buf_add(&b, d, dl);
			if (strstr(b.s, needle) != NULL) {
				dp_buf_release(&b);
				json_object_put(o);
				return got;
			}
			snprintf(tail, sizeof(tail), "%s",
			    b.len > 128 ? b.s + b.len - 128 : b.s);
			dp_buf_release(&b);
		}
		json_object_put(o);
	}
}

static int
cmp64(const void *a, const void *b)
{
	int64_t	 x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

static void
bench_rtt(const char *url, int n)
{
	struct dp_ws	*ws = open_term(url, NULL);
	int64_t		*us = dp_xcalloc((size_t)n, sizeof(*us));
	struct timespec	 a, b;
	char		 k[2] = "a";
	int		 i;

	/* Settle: the first redraw, then an empty line to type on. */
	send_input(ws, "clear\r");
	usleep(300000);
	while (1) {
		struct dp_ws_msg m;
		struct dp_err err = { 0 };

		if (dp_ws_recv(ws, 200, &m, &err) != 1)
			break;
	}
	for (i = 0; i < n; i++) {
		k[0] = (char)('a' + i % 26);
		clock_gettime(CLOCK_MONOTONIC, &a);
		send_input(ws, (i % 60 == 59) ? "\x15" : k);
		(void)wait_output(ws, NULL, 10000);
		clock_gettime(CLOCK_MONOTONIC, &b);
		us[i] = (b.tv_sec - a.tv_sec) * 1000000 +
		    (b.tv_nsec - a.tv_nsec) / 1000;
		/* Let tmux finish its redraw of this key before the next. */
		{
			struct dp_ws_msg m;
			struct dp_err err = { 0 };

			while (dp_ws_recv(ws, 2, &m, &err) == 1)
				;
		}
	}
	qsort(us, (size_t)n, sizeof(*us), cmp64);
	printf("keystroke echo RTT over %d keys: p50 %.2f ms, p99 %.2f ms, "
	    "max %.2f ms\n", n, us[n / 2] / 1000.0, us[(n * 99) / 100] / 1000.0,
	    us[n - 1] / 1000.0);
	send_input(ws, "\x15");
	dp_ws_free(ws);
	free(us);
}

static void
bench_throughput(const char *url, int mb)
{
	struct dp_ws	*ws = open_term(url, NULL);
	char		 cmd[256];
	int64_t		 t0, t1, bytes;

	char		 needle[64];
	struct dp_ws_msg m;
	struct dp_err	 err = { 0 };

	/* The reattach redraw may show an earlier run's marker: let it
	 * pass, and make this run's marker its own. */
	while (dp_ws_recv(ws, 300, &m, &err) == 1)
		;
	/* 3 bytes of random in → 4 of base64 out; the marker is assembled
	 * by the shell so that the echoed command line does not match. */
	snprintf(cmd, sizeof(cmd), "clear; head -c %lld /dev/urandom | "
	    "base64 -w 76; echo BENCH-$((%d+1))-END\r",
	    (long long)mb * 1024 * 1024 * 3 / 4, (int)getpid());
	snprintf(needle, sizeof(needle), "BENCH-%d-END", (int)getpid() + 1);
	t0 = dp_mono_ms();
	send_input(ws, cmd);
	bytes = wait_output(ws, needle, 600000);
	t1 = dp_mono_ms();
	printf("output: %d MB of base64 through tmux in %.2f s = %.1f MB/s "
	    "(%.1f MB of screen updates reached the client)\n", mb,
	    (t1 - t0) / 1000.0, mb / ((t1 - t0) / 1000.0),
	    bytes / 1048576.0);
	dp_ws_free(ws);
}

static void
bench_reattach(const char *url, int n)
{
	int64_t		*tot = dp_xcalloc((size_t)n, sizeof(*tot));
	int64_t		*up = dp_xcalloc((size_t)n, sizeof(*up));
	int64_t		*wel = dp_xcalloc((size_t)n, sizeof(*wel));
	struct dp_ws	*ws;
	int64_t		 t0, tw;
	int		 i;

	for (i = 0; i < n; i++) {
		t0 = mono_us();
		ws = open_term(url, &tw);
		(void)wait_output(ws, "$ ", 10000);
		tot[i] = mono_us() - t0;
		up[i] = t_upgraded - t0;
		wel[i] = tw - t_upgraded;
		dp_ws_free(ws);
		usleep(50000);	/* the previous program's slot frees */
	}
	qsort(tot, (size_t)n, sizeof(*tot), cmp64);
	qsort(up, (size_t)n, sizeof(*up), cmp64);
	qsort(wel, (size_t)n, sizeof(*wel), cmp64);
	printf("connect to prompt on reattach over %d connects: p50 %.1f ms, "
	    "p99 %.1f ms (p50 of its parts: upgrade %.1f ms, upgrade to "
	    "welcome %.1f ms)\n", n, tot[n / 2] / 1000.0,
	    tot[(n * 99) / 100] / 1000.0, up[n / 2] / 1000.0,
	    wel[n / 2] / 1000.0);
	free(tot);
	free(up);
	free(wel);
}

static void
bench_idle(const char *url, int n)
{
	struct dp_ws	**w = dp_xcalloc((size_t)n, sizeof(*w));
	char		 c;
	int		 i;

	for (i = 0; i < n; i++)
		w[i] = open_term(url, NULL);
	printf("ready %d\n", n);
	fflush(stdout);
	while (read(STDIN_FILENO, &c, 1) > 0)
		;
	for (i = 0; i < n; i++)
		dp_ws_free(w[i]);
	free(w);
}

int
main(int argc, char *argv[])
{
	int64_t	 n;

	signal(SIGPIPE, SIG_IGN);
	if (argc != 4 || dp_parse_int64(argv[3], 1, 100000, &n) < 0) {
		fprintf(stderr, "usage: client URL rtt|throughput|reattach|idle "
		    "N\n");
		return 2;
	}
	if (strcmp(argv[2], "rtt") == 0)
		bench_rtt(argv[1], (int)n);
	else if (strcmp(argv[2], "throughput") == 0)
		bench_throughput(argv[1], (int)n);
	else if (strcmp(argv[2], "reattach") == 0)
		bench_reattach(argv[1], (int)n);
	else if (strcmp(argv[2], "idle") == 0)
		bench_idle(argv[1], (int)n);
	else {
		fprintf(stderr, "unknown mode %s\n", argv[2]);
		return 2;
	}
	return 0;
}
