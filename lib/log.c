/* lib/log.c: one structured line per event on stderr (JSON or text) */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* Longest message kept; the rest is cut off. */
#define LOG_MAX_MSG	(8 * 1024)
/* Longest access-log field kept; program and request id get half. */
#define LOG_MAX_FIELD	256

static const char *const level_names[DP_LOG__MAX] = {
	"debug",	/* DP_LOG_DEBUG */
	"info",		/* DP_LOG_INFO */
	"warning",	/* DP_LOG_WARNING */
	"error",	/* DP_LOG_ERROR */
};

static char		 log_program[LOG_MAX_FIELD + 1] = "devpocket";
static char		 log_request[LOG_MAX_FIELD + 1];
static bool		 log_text;
static enum dp_log_level log_threshold = DP_LOG_INFO;

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned int	 c = s[0], min;
	size_t		 len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		c &= 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		c &= 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		c &= 0x07;
		min = 0x10000;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	return len;
}

/*
 * Append s to out so that the result is valid UTF-8.  In text mode
 * control characters, backslashes and invalid bytes become \xNN; in
 * JSON mode invalid bytes become U+FFFD and json-c escapes the rest.
 */
static void
add_clean(struct dp_buf *out, const char *s, size_t n, bool text)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i = 0, l;

	while (i < n) {
		l = utf8_seq(p + i, n - i);
		if (l == 1 && text && (p[i] < 0x20 || p[i] == 0x7f ||
		    p[i] == '\\'))
			dp_buf_printf(out, "\\x%02x", p[i]);
		else if (l == 2 && text && p[i] == 0xc2 && p[i + 1] < 0xa0)
			/* C1 controls (U+0080..U+009F). */
			dp_buf_printf(out, "\\x%02x\\x%02x", p[i], p[i + 1]);
		else if (l > 0)
			dp_buf_add(out, p + i, l);
		else if (text)
			dp_buf_printf(out, "\\x%02x", p[i]);
		else
			dp_buf_adds(out, "\xef\xbf\xbd");
		i += l > 0 ? l : 1;
	}
}

/* Cleaned, capped copy of s in buf; returns buf->s ("" for NULL). */
static const char *
clean(struct dp_buf *buf, const char *s, size_t max, bool text)
{
	size_t	 n;

	dp_buf_reset(buf);
	if (s == NULL) {
		dp_buf_adds(buf, "");
		return buf->s;
	}
	n = strnlen(s, max);
	add_clean(buf, s, n, text);
	return buf->s;
}

/* RFC 3339 UTC with microseconds: 2024-05-01T12:00:00.123456Z */
static void
fmt_time(char *out, size_t sz)
{
	struct timespec	 ts;
	struct tm	 tm;
	size_t		 n;
	int		 r;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(out, sz, "%Y-%m-%dT%H:%M:%S", &tm);
	r = snprintf(out + n, sz - n, ".%06dZ",
	    (int)((ts.tv_nsec / 1000) % 1000000));
	if (n == 0 || r < 0 || (size_t)r >= sz - n)
		snprintf(out, sz, "1970-01-01T00:00:00.000000Z");
}

/* Write the whole line with one write(2) where the kernel allows. */
static void
emit(const char *s, size_t n)
{
	ssize_t	 w;
	int	 saved = errno;

	while (n > 0) {
		w = write(STDERR_FILENO, s, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		s += w;
		n -= (size_t)w;
	}
	errno = saved;
}

/* An extra key of a line; val NULL is JSON null ("-" in text). */
struct field {
	const char	*key;
	const char	*val;
	int		 num;		/* 1: integer, 2: decimal literal */
};

/* "key": and the cleaned value s as a JSON string (null for NULL). */
static void
add_jfield(struct dp_buf *out, struct dp_buf *tmp, const char *key,
    const char *s, size_t n)
{
	dp_buf_add_jkey(out, key);
	if (s == NULL) {
		dp_buf_adds(out, "null");
		return;
	}
	dp_buf_reset(tmp);
	add_clean(tmp, s, n, false);
	dp_buf_add_jstr(out, tmp->s != NULL ? tmp->s : "", tmp->len);
}

/*
 * Format and write one line: time, level, program, request_id, fields.
 * A JSON line is written directly, in json-c's form (one per request:
 * building it as a json-c object took some 30,000 instructions), into
 * buffers kept from line to line.
 */
static void
log_line(enum dp_log_level lvl, const char *msg, size_t msglen,
    const struct field *f, size_t nf)
{
	static struct dp_buf	 line, tmp;
	char			 tbuf[48];
	size_t			 i;

	dp_buf_reset(&line);
	fmt_time(tbuf, sizeof(tbuf));
	if (log_text) {
		dp_buf_printf(&line, "%s %s %s[%ld]: ", tbuf,
		    level_names[lvl], log_program, (long)getpid());
		add_clean(&line, msg, msglen, true);
		if (nf > 0 || log_request[0] != '\0') {
			dp_buf_adds(&line, " (");
			if (log_request[0] != '\0')
				dp_buf_printf(&line, "request_id=%s%s",
				    log_request, nf > 0 ? " " : "");
			for (i = 0; i < nf; i++) {
				dp_buf_printf(&line, "%s%s=", i ? " " : "",
				    f[i].key);
				if (f[i].val == NULL)
					dp_buf_adds(&line, "-");
				else
					add_clean(&line, f[i].val,
					    strnlen(f[i].val, LOG_MAX_FIELD),
					    true);
			}
			dp_buf_addc(&line, ')');
		}
		dp_buf_addc(&line, '\n');
		emit(line.s, line.len);
		goto out;
	}

	dp_buf_adds(&line, "{\"time\":");
	dp_buf_add_jstr(&line, tbuf, strlen(tbuf));
	add_jfield(&line, &tmp, "level", level_names[lvl],
	    strlen(level_names[lvl]));
	add_jfield(&line, &tmp, "program", log_program, strlen(log_program));
	if (log_request[0] != '\0')
		add_jfield(&line, &tmp, "request_id", log_request,
		    strlen(log_request));
	for (i = 0; i < nf; i++) {
		if (f[i].val != NULL && f[i].num == 1) {
			dp_buf_add_jkey(&line, f[i].key);
			dp_buf_addi(&line, strtoll(f[i].val, NULL, 10));
		} else if (f[i].val != NULL && f[i].num == 2) {
			/* The printed precision ("%.3f"), not %.17g. */
			dp_buf_add_jkey(&line, f[i].key);
			dp_buf_adds(&line, f[i].val);
		} else
			add_jfield(&line, &tmp, f[i].key, f[i].val,
			    f[i].val != NULL ? strnlen(f[i].val,
			    LOG_MAX_FIELD) : 0);
	}
	add_jfield(&line, &tmp, "message", msg, msglen);
	dp_buf_adds(&line, "}\n");
	emit(line.s, line.len);
out:
	/* Kept for the next line, unless one was huge. */
	if (line.cap > 65536)
		dp_buf_release(&line);
	if (tmp.cap > 65536)
		dp_buf_release(&tmp);
}

void
dp_log_init(const char *program, const char *format, const char *level)
{
	struct dp_buf	 b = { 0 };
	int		 i;

	if (program != NULL && *program != '\0') {
		clean(&b, program, LOG_MAX_FIELD / 2, true);
		snprintf(log_program, sizeof(log_program), "%s", b.s);
	}
	log_text = format != NULL && strcmp(format, "text") == 0;
	log_threshold = DP_LOG_INFO;
	for (i = 0; level != NULL && i < DP_LOG__MAX; i++)
		if (strcmp(level, level_names[i]) == 0)
			log_threshold = i;
	dp_buf_release(&b);
}

void
dp_log_set_request(const char *request_id)
{
	struct dp_buf	 b = { 0 };

	if (request_id == NULL) {
		log_request[0] = '\0';
		return;
	}
	/* Request ids are ours or checked upstream; still keep them tame. */
	clean(&b, request_id, LOG_MAX_FIELD / 2, true);
	snprintf(log_request, sizeof(log_request), "%s", b.s);
	dp_buf_release(&b);
}

void
dp_log(enum dp_log_level lvl, const char *fmt, ...)
{
	char	*msg = NULL;
	va_list	 ap;
	int	 n;

	if ((int)lvl < 0 || lvl >= DP_LOG__MAX)
		lvl = DP_LOG_ERROR;
	if (lvl < log_threshold)
		return;
	msg = dp_xmalloc(LOG_MAX_MSG + 1);
	va_start(ap, fmt);
	n = vsnprintf(msg, LOG_MAX_MSG + 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	/*
	 * A longer message is cut at LOG_MAX_MSG; add_clean replaces a
	 * multi-byte character cut in half.
	 */
	log_line(lvl, msg, (size_t)n > LOG_MAX_MSG ? LOG_MAX_MSG : (size_t)n,
	    NULL, 0);
	free(msg);
}

void
dp_log_access(const char *method, const char *route, int status,
    double duration_ms, const char *user_id, const char *client_ip)
{
	struct field	 f[6];
	char		 st[16], dur[48];

	if (DP_LOG_INFO < log_threshold)
		return;
	snprintf(st, sizeof(st), "%d", status);
	if (!(duration_ms >= 0 && duration_ms < 1e12))
		duration_ms = 0;
	snprintf(dur, sizeof(dur), "%.3f", duration_ms);
	f[0] = (struct field){ "method", method, 0 };
	f[1] = (struct field){ "route", route, 0 };
	f[2] = (struct field){ "status", st, 1 };
	f[3] = (struct field){ "duration_ms", dur, 2 };
	f[4] = (struct field){ "user_id", user_id, 0 };
	f[5] = (struct field){ "client_ip", client_ip, 0 };
	log_line(DP_LOG_INFO, "request", 7, f, DP_NITEMS(f));
}
