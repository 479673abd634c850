/* lib/util.h: allocation, growable buffers, errors, arenas, small helpers */
#ifndef DP_UTIL_H
#define DP_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdarg.h>
#include <time.h>

#define DP_NITEMS(a) (sizeof(a) / sizeof((a)[0]))
/* A macro's value as a string literal (a number into SQL text). */
#define DP_STR_(x)	#x
#define DP_XSTR(x)	DP_STR_(x)

/* Allocation wrappers that abort on out-of-memory: never NULL-check them. */
void	*dp_xmalloc(size_t);
void	*dp_xcalloc(size_t, size_t);
void	*dp_xrealloc(void *, size_t);
char	*dp_xstrdup(const char *);
char	*dp_xstrndup(const char *, size_t);

/*
 * Growable byte buffer, always NUL-terminated (git strbuf).  A zeroed
 * struct is an empty buffer; dp_buf_release frees and re-zeroes it.
 */
struct dp_buf {
	char	*s;
	size_t	 len;
	size_t	 cap;
};

void	 dp_buf_grow(struct dp_buf *, size_t extra);
void	 dp_buf_add(struct dp_buf *, const void *, size_t);
void	 dp_buf_adds(struct dp_buf *, const char *);
void	 dp_buf_addc(struct dp_buf *, char);
/* The decimal digits of v ("%lld" without printf). */
void	 dp_buf_addi(struct dp_buf *, long long v);
void	 dp_buf_printf(struct dp_buf *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 dp_buf_vprintf(struct dp_buf *, const char *, va_list);
void	 dp_buf_reset(struct dp_buf *);
/* Remove the first n bytes (all of them when n >= len). */
void	 dp_buf_drop(struct dp_buf *, size_t n);
void	 dp_buf_release(struct dp_buf *);
/* Return the string and leave the buffer empty; the caller frees it. */
char	*dp_buf_detach(struct dp_buf *);
/* Append s single-quoted for /bin/sh ('\'' for each quote). */
void	 dp_buf_add_shquoted(struct dp_buf *, const char *s);
/*
 * Append s (n bytes of valid UTF-8) as a JSON string, escaped as json-c
 * escapes (JSON_C_TO_STRING_NOSLASHESCAPE): the quote, the backslash and
 * the control characters.
 */
void	 dp_buf_add_jstr(struct dp_buf *, const char *s, size_t n);
/*
 * Append "key": (key needs no escaping: a name from the code), after a
 * comma unless it is the first key of an object.
 */
void	 dp_buf_add_jkey(struct dp_buf *, const char *key);
/* Like dp_buf_release, but wipes the contents first (secrets). */
void	 dp_buf_wipe(struct dp_buf *);

/* Error cause for callers that need it; msg is always NUL-terminated. */
struct dp_err {
	int	 code;		/* module specific, 0 = none */
	char	 msg[256];
};
void	 dp_err_set(struct dp_err *, int code, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/*
 * Arena: many small allocations freed together (per request).  Blocks
 * are chained; dp_arena_reset keeps the first block for reuse.
 */
struct dp_arena_blk;
struct dp_arena {
	struct dp_arena_blk	*head;
};
void	*dp_arena_alloc(struct dp_arena *, size_t);
char	*dp_arena_strdup(struct dp_arena *, const char *);
char	*dp_arena_strndup(struct dp_arena *, const char *, size_t);
char	*dp_arena_printf(struct dp_arena *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
void	 dp_arena_reset(struct dp_arena *);

/* FNV-1a of s[0..n): table slots and quick inequality, not security. */
uint64_t dp_fnv1a(const void *s, size_t n);
/* snprintf into a fixed buffer; -1 when it does not fit (or fails). */
int	 dp_sfmt(char *buf, size_t n, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
/* The value of one hex digit, or -1. */
int	 dp_hexval(int c);
/* Percent-decoding ('+' is a space) of s[0..n) into the arena. */
char	*dp_urldecode(struct dp_arena *, const char *s, size_t n,
	    size_t *outlen);
const char *dp_query_get(struct dp_arena *, const char *qs,
	    const char *name);
void	 dp_arena_release(struct dp_arena *);

/* Parse a whole string as a decimal integer in [min, max]; 0 or -1. */
int	 dp_parse_int64(const char *, int64_t min, int64_t max, int64_t *out);
/* Parse "true/false/1/0" (case-insensitive); 0 or -1. */
int	 dp_parse_bool(const char *, bool *out);

/* Lowercase hex of n bytes into out (2n+1 bytes). */
void	 dp_hex(char *out, const unsigned char *in, size_t n);
/* Append the bytes of hex text s[0..n) (either case); -1, with nothing
 * appended, when n is odd or a digit is not hex. */
int	 dp_buf_add_unhex(struct dp_buf *, const char *s, size_t n);
/* Fill with cryptographically random bytes (getrandom); aborts on failure. */
void	 dp_random(void *, size_t);
/* A new 24-hex-character object id into out[25]. */
void	 dp_new_id(char out[25]);
/* True if s is exactly 24 lowercase hex characters. */
bool	 dp_is_id(const char *s);
/* Constant-time comparison of two byte strings of possibly different length. */
bool	 dp_ct_equal(const void *, size_t, const void *, size_t);

/* Seconds since the epoch with microseconds. */
double	 dp_now(void);
/* Monotonic milliseconds, for durations. */
int64_t	 dp_mono_ms(void);
/* Monotonic seconds with nanoseconds, for short durations. */
double	 dp_mono(void);
/* Set O_NONBLOCK on fd; 0 or -1 (errno). */
int	 dp_fd_nonblock(int fd);

/* Case-insensitive ASCII equality. */
bool	 dp_strieq(const char *, const char *);
/* True if the string starts with prefix. */
bool	 dp_startswith(const char *, const char *prefix);
/*
 * s with the passwords it may hold shown as "***": a URL's
 * (scheme://user:pw@host) and a conninfo's or query's password=…;
 * appended to out.
 */
void	 dp_redact(const char *s, struct dp_buf *out);

#endif
