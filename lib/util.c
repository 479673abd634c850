/* lib/util.c: allocation, growable buffers, errors, arenas, small helpers */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static void
oom(void)
{
	static const char m[] = "devpocket: out of memory\n";

	(void)!write(2, m, sizeof(m) - 1);
	abort();
}

void *
dp_xmalloc(size_t n)
{
	void	*p = malloc(n ? n : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
dp_xcalloc(size_t n, size_t sz)
{
	void	*p = calloc(n ? n : 1, sz ? sz : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
dp_xrealloc(void *p, size_t n)
{
	p = realloc(p, n ? n : 1);
	if (p == NULL)
		oom();
	return p;
}

char *
dp_xstrdup(const char *s)
{
	return dp_xstrndup(s, strlen(s));
}

char *
dp_xstrndup(const char *s, size_t n)
{
	char	*p = dp_xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
dp_buf_grow(struct dp_buf *b, size_t extra)
{
	size_t	 need;

	if (extra > SIZE_MAX - b->len - 1)
		oom();
	need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	if (b->cap < 64)
		b->cap = 64;
	while (b->cap < need)
		b->cap = b->cap > SIZE_MAX / 2 ? need : b->cap * 2;
	b->s = dp_xrealloc(b->s, b->cap);
}

void
dp_buf_add(struct dp_buf *b, const void *p, size_t n)
{
	dp_buf_grow(b, n);
	if (n)
		memcpy(b->s + b->len, p, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void
dp_buf_adds(struct dp_buf *b, const char *s)
{
	dp_buf_add(b, s, strlen(s));
}

void
dp_buf_addc(struct dp_buf *b, char c)
{
	dp_buf_add(b, &c, 1);
}

void
dp_buf_add_jstr(struct dp_buf *out, const char *s, size_t n)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*p = (const unsigned char *)s;
	char			 u[7] = "\\u00";
	size_t			 i, run = 0;

	/* Room for the usual case (nothing to escape) at once. */
	dp_buf_grow(out, n + 2);
	out->s[out->len++] = '"';
	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] != '"' && p[i] != '\\')
			continue;
		dp_buf_add(out, s + run, i - run);
		run = i + 1;
		switch (p[i]) {
		case '"':
			dp_buf_adds(out, "\\\"");
			break;
		case '\\':
			dp_buf_adds(out, "\\\\");
			break;
		case '\n':
			dp_buf_adds(out, "\\n");
			break;
		case '\r':
			dp_buf_adds(out, "\\r");
			break;
		case '\t':
			dp_buf_adds(out, "\\t");
			break;
		case '\b':
			dp_buf_adds(out, "\\b");
			break;
		case '\f':
			dp_buf_adds(out, "\\f");
			break;
		default:
			u[4] = hex[p[i] >> 4];
			u[5] = hex[p[i] & 0xf];
			dp_buf_add(out, u, 6);
		}
	}
	dp_buf_add(out, s + run, n - run);
	dp_buf_addc(out, '"');
}

void
dp_buf_add_jkey(struct dp_buf *b, const char *k)
{
	size_t	 n = strlen(k);
	char	*p;

	dp_buf_grow(b, n + 4);
	p = b->s + b->len;
	if (b->len > 0 && p[-1] != '{' && p[-1] != '[')
		*p++ = ',';
	*p++ = '"';
	memcpy(p, k, n);
	p += n;
	*p++ = '"';
	*p++ = ':';
	*p = '\0';
	b->len = (size_t)(p - b->s);
}

void
dp_buf_addi(struct dp_buf *b, long long v)
{
	char			 d[24], *p = d + sizeof(d);
	unsigned long long	 u;

	u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	dp_buf_add(b, p, (size_t)(d + sizeof(d) - p));
}

void
dp_buf_vprintf(struct dp_buf *b, const char *fmt, va_list ap)
{
	va_list	 cp;
	int	 n;

	dp_buf_grow(b, 64);
	va_copy(cp, ap);
	n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, cp);
	va_end(cp);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->len) {
		dp_buf_grow(b, (size_t)n);
		va_copy(cp, ap);
		n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, cp);
		va_end(cp);
		if (n < 0)
			return;
	}
	b->len += (size_t)n;
}

void
dp_buf_printf(struct dp_buf *b, const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	dp_buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void
dp_buf_add_shquoted(struct dp_buf *b, const char *s)
{
	dp_buf_addc(b, '\'');
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			dp_buf_adds(b, "'\\''");
		else
			dp_buf_addc(b, *s);
	}
	dp_buf_addc(b, '\'');
}

void
dp_buf_reset(struct dp_buf *b)
{
	b->len = 0;
	if (b->s)
		b->s[0] = '\0';
}

void
dp_buf_drop(struct dp_buf *b, size_t n)
{
	if (n >= b->len) {
		dp_buf_reset(b);
		return;
	}
	memmove(b->s, b->s + n, b->len - n);
	b->len -= n;
	b->s[b->len] = '\0';
}

void
dp_buf_release(struct dp_buf *b)
{
	free(b->s);
	b->s = NULL;
	b->len = b->cap = 0;
}

void
dp_buf_wipe(struct dp_buf *b)
{
	if (b->s)
		explicit_bzero(b->s, b->cap);
	dp_buf_release(b);
}

char *
dp_buf_detach(struct dp_buf *b)
{
	char	*s = b->s ? b->s : dp_xstrdup("");

	b->s = NULL;
	b->len = b->cap = 0;
	return s;
}

void
dp_err_set(struct dp_err *e, int code, const char *fmt, ...)
{
	va_list	 ap;

	if (e == NULL)
		return;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
}

/* Arena blocks: a header followed by data. */
struct dp_arena_blk {
	struct dp_arena_blk	*next;
	size_t			 size;
	size_t			 used;
	max_align_t		 data[];
};

#define ARENA_BLK	(16 * 1024)

void *
dp_arena_alloc(struct dp_arena *a, size_t n)
{
	struct dp_arena_blk	*b = a->head;
	size_t			 al = _Alignof(max_align_t);
	size_t			 sz;
	void			*p;

	n = (n + al - 1) & ~(al - 1);
	if (n == 0)
		n = al;
	if (b == NULL || b->size - b->used < n) {
		sz = n > ARENA_BLK ? n : ARENA_BLK;
		b = dp_xmalloc(sizeof(*b) + sz);
		b->size = sz;
		b->used = 0;
		b->next = a->head;
		a->head = b;
	}
	p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

char *
dp_arena_strndup(struct dp_arena *a, const char *s, size_t n)
{
	char	*p = dp_arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *
dp_arena_strdup(struct dp_arena *a, const char *s)
{
	return s ? dp_arena_strndup(a, s, strlen(s)) : NULL;
}

char *
dp_arena_printf(struct dp_arena *a, const char *fmt, ...)
{
	struct dp_buf	 b = { 0 };
	va_list		 ap;
	char		*p;

	va_start(ap, fmt);
	dp_buf_vprintf(&b, fmt, ap);
	va_end(ap);
	p = dp_arena_strndup(a, b.s ? b.s : "", b.len);
	dp_buf_release(&b);
	return p;
}

void
dp_arena_reset(struct dp_arena *a)
{
	struct dp_arena_blk	*b, *next;

	if (a->head == NULL)
		return;
	/* Keep the oldest block (the tail) for reuse, free the rest. */
	for (b = a->head; b->next != NULL; b = next) {
		next = b->next;
		free(b);
	}
	b->used = 0;
	a->head = b;
}

void
dp_arena_release(struct dp_arena *a)
{
	struct dp_arena_blk	*b, *next;

	for (b = a->head; b != NULL; b = next) {
		next = b->next;
		free(b);
	}
	a->head = NULL;
}

int
dp_parse_int64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	const char	*p;
	long long	 v;
	char		*end;

	if (s == NULL || *s == '\0')
		return -1;
	p = s;
	if (*p == '-')
		p++;
	if (*p == '\0')
		return -1;
	for (; *p; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int
dp_parse_bool(const char *s, bool *out)
{
	if (s == NULL)
		return -1;
	if (strcasecmp(s, "true") == 0 || strcmp(s, "1") == 0)
		*out = true;
	else if (strcasecmp(s, "false") == 0 || strcmp(s, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

void
dp_hex(char *out, const unsigned char *in, size_t n)
{
	static const char	 d[] = "0123456789abcdef";
	size_t			 i;

	for (i = 0; i < n; i++) {
		out[2 * i] = d[in[i] >> 4];
		out[2 * i + 1] = d[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int
dp_buf_add_unhex(struct dp_buf *b, const char *s, size_t n)
{
	size_t	 i;

	if (n % 2 != 0)
		return -1;
	for (i = 0; i < n; i++)
		if (dp_hexval(s[i]) < 0)
			return -1;
	dp_buf_grow(b, n / 2);
	for (i = 0; i < n; i += 2)
		b->s[b->len++] = (char)(dp_hexval(s[i]) << 4 |
		    dp_hexval(s[i + 1]));
	b->s[b->len] = '\0';
	return 0;
}

void
dp_random(void *p, size_t n)
{
	unsigned char	*c = p;
	ssize_t		 r;

	while (n > 0) {
		r = getrandom(c, n, 0);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			abort();
		}
		c += r;
		n -= (size_t)r;
	}
}

void
dp_new_id(char out[25])
{
	unsigned char	 b[12];

	dp_random(b, sizeof(b));
	dp_hex(out, b, sizeof(b));
}

bool
dp_is_id(const char *s)
{
	size_t	 i;

	if (s == NULL)
		return false;
	for (i = 0; i < 24; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[24] == '\0';
}

bool
dp_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
	const unsigned char	*x = a, *y = b;
	uint64_t		 d = 0, u, v;
	size_t			 i;

	if (alen != blen)
		return false;
	/* Eight bytes a step; the barrier keeps the compiler from ending
	 * the loop at the first difference. */
	for (i = 0; i + 8 <= alen; i += 8) {
		memcpy(&u, x + i, 8);
		memcpy(&v, y + i, 8);
		d |= u ^ v;
		__asm__ volatile ("" : "+r" (d));
	}
	for (; i < alen; i++) {
		d |= (uint64_t)(x[i] ^ y[i]);
		__asm__ volatile ("" : "+r" (d));
	}
	return d == 0;
}

double
dp_now(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)(ts.tv_nsec / 1000) / 1e6;
}

int64_t
dp_mono_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double
dp_mono(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

bool
dp_strieq(const char *a, const char *b)
{
	return strcasecmp(a, b) == 0;
}

bool
dp_startswith(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

/* A key whose value dp_redact hides: one ending in "password", percent-
 * decoded and without regard to case (password, sslpassword, %70assword). */
static bool
secret_key(const char *k, size_t n)
{
	struct dp_arena	 a = { 0 };
	const char	*d;
	size_t		 m;
	bool		 yes;

	d = dp_urldecode(&a, k, n, &m);
	yes = m >= 8 && strncasecmp(d + m - 8, "password", 8) == 0;
	dp_arena_release(&a);
	return yes;
}

void
dp_redact(const char *s, struct dp_buf *out)
{
	const char	*p, *at, *end, *colon, *k, *v;
	bool		 start = true;

	/* scheme://user:password@host… */
	if ((p = strstr(s, "://")) != NULL) {
		p += 3;
		end = p + strcspn(p, "/?#");
		at = memrchr(p, '@', (size_t)(end - p));
		colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
		if (colon != NULL) {
			dp_buf_add(out, s, (size_t)(colon + 1 - s));
			dp_buf_adds(out, "***");
			s = at;
		}
	}
	/* key=value pairs of a conninfo (any blanks) or a query (? &). */
	for (p = s; *p != '\0'; ) {
		if (!start || strchr(" \t\r\n?&=", *p) != NULL) {
			start = strchr(" \t\r\n?&", *p) != NULL;
			dp_buf_addc(out, *p++);
			continue;
		}
		k = p;
		p += strcspn(p, " \t\r\n?&=");
		v = p + strspn(p, " \t");
		if (*v != '=' || !secret_key(k, (size_t)(p - k))) {
			dp_buf_add(out, k, (size_t)(p - k));
			start = false;
			continue;
		}
		v++;
		v += strspn(v, " \t");
		dp_buf_add(out, k, (size_t)(v - k));
		dp_buf_adds(out, "***");
		if (*v == '\'') {
			for (v++; *v != '\0' && *v != '\''; v++)
				if (*v == '\\' && v[1] != '\0')
					v++;
			if (*v == '\'')
				v++;
		} else
			v += strcspn(v, " \t\r\n&");
		p = v;
		start = false;
	}
}

/* ---- urlencoded strings ------------------------------------------------ */

/* The value of one hex digit, or -1. */
int
dp_hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decode s[0..n) ('+' is a space in query strings) into the arena. */
char *
dp_urldecode(struct dp_arena *a, const char *s, size_t n, size_t *outlen)
{
	char	*o = dp_arena_alloc(a, n + 1);
	size_t	 i, j = 0;
	int	 h, l;

	for (i = 0; i < n; i++) {
		if (s[i] == '+')
			o[j++] = ' ';
		else if (s[i] == '%' && i + 2 < n &&
		    (h = dp_hexval(s[i + 1])) >= 0 &&
		    (l = dp_hexval(s[i + 2])) >= 0) {
			o[j++] = (char)(h * 16 + l);
			i += 2;
		} else
			o[j++] = s[i];
	}
	o[j] = '\0';
	if (outlen)
		*outlen = j;
	return o;
}

/* The first occurrence of name in an urlencoded string, decoded. */
static const char *
form_get(struct dp_arena *a, const char *qs, const char *name, size_t *len)
{
	size_t		 nl = strlen(name), kl, dl, vl;
	const char	*p, *amp, *eq;
	char		*k;

	for (p = qs; p != NULL && *p; p = amp ? amp + 1 : NULL) {
		amp = strchr(p, '&');
		vl = amp ? (size_t)(amp - p) : strlen(p);
		eq = memchr(p, '=', vl);
		kl = eq ? (size_t)(eq - p) : vl;
		k = dp_urldecode(a, p, kl, &dl);
		if (dl == nl && memcmp(k, name, nl) == 0) {
			if (eq == NULL)
				return dp_urldecode(a, "", 0, len);
			return dp_urldecode(a, eq + 1, vl - kl - 1, len);
		}
	}
	return NULL;
}

/*
 * The value of name in the query string qs, decoded into the arena, or
 * NULL.  A decoded %00 would cut the value short and let "x%00junk" pass
 * as "x": it becomes DEL, which every query validator refuses.
 */
const char *
dp_query_get(struct dp_arena *a, const char *qs, const char *name)
{
	char	*v;
	size_t	 len, i;

	if ((v = (char *)form_get(a, qs, name, &len)) == NULL)
		return NULL;
	for (i = 0; i < len; i++)
		if (v[i] == '\0')
			v[i] = 0x7f;
	return v;
}

/* snprintf into a fixed buffer; -1 when it does not fit (or fails). */
int
dp_sfmt(char *buf, size_t n, const char *fmt, ...)
{
	va_list	 ap;
	int	 len;

	va_start(ap, fmt);
	len = vsnprintf(buf, n, fmt, ap);
	va_end(ap);
	return len < 0 || (size_t)len >= n ? -1 : 0;
}

/* FNV-1a of s[0..n): table slots and quick inequality, not security. */
uint64_t
dp_fnv1a(const void *s, size_t n)
{
	const unsigned char	*p = s;
	uint64_t		 h = 14695981039346656037ULL;
	size_t			 i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

int
dp_fd_nonblock(int fd)
{
	int	 fl = fcntl(fd, F_GETFL);

	return fl == -1 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1 ? -1 : 0;
}
