/* lib/json.c: json-c helpers: capped parsing, timestamps, typed adds */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <json-c/printbuf.h>

#include "http.h"
#include "validate.h"

/* RFC 8259 §6 number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool
number_ok(const char *s)
{
	const char	*p = s;

	if (*p == '-')
		p++;
	if (*p == '0')
		p++;
	else if (*p >= '1' && *p <= '9')
		while (*p >= '0' && *p <= '9')
			p++;
	else
		return false;
	if (*p == '.') {
		if (*++p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (*p == 'e' || *p == 'E') {
		if (*++p == '+' || *p == '-')
			p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/*
 * What json-c lets through: its UTF-8 check is structural only, and it
 * reads NaN, Infinity and "1." as numbers (a parsed double keeps its
 * text).  Recursion is bounded by the parse's depth cap.
 */
static bool
tree_ok(struct json_object *o)
{
	size_t	 i, n;

	switch (json_object_get_type(o)) {
	case json_type_string:
		return dp_utf8_valid(json_object_get_string(o),
		    (size_t)json_object_get_string_len(o));
	case json_type_double:
		return number_ok(json_object_to_json_string_ext(o,
		    JSON_C_TO_STRING_PLAIN));
	case json_type_array:
		n = json_object_array_length(o);
		for (i = 0; i < n; i++)
			if (!tree_ok(json_object_array_get_idx(o, i)))
				return false;
		return true;
	case json_type_object: {
		json_object_object_foreach(o, k, v)
			if (!dp_utf8_valid(k, strlen(k)) || !tree_ok(v))
				return false;
		return true;
	}
	default:
		return true;
	}
}

/*
 * What json-c parsed but RFC 8259 or we do not take, from the raw text s
 * (found by reading and by fuzzing): a single-quoted string (json-c reads
 * them even when strict), a control character not escaped inside a
 * string (RFC 8259 §7), a number with a leading zero ("00", "-01": json-c
 * reads them as integers, §6), and an object key holding an escaped NUL
 * (json-c keeps keys as C strings, so "name\u0000x" would be read as
 * "name").  A string is a key when a ':' follows it.  One pass; true
 * when the text is fine.
 */
static bool
raw_ok(const char *s, size_t len)
{
	size_t	 i = 0;
	bool	 nul;

	while (i < len) {
		if (s[i] == '\'')
			return false;
		if (s[i] == '-' || (s[i] >= '0' && s[i] <= '9')) {
			/* A number (outside strings nothing else starts
			 * so): a leading 0 must stand alone. */
			if (s[i] == '-')
				i++;
			if (i + 1 < len && s[i] == '0' && s[i + 1] >= '0' &&
			    s[i + 1] <= '9')
				return false;
			while (i < len && ((s[i] >= '0' && s[i] <= '9') ||
			    s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
			    s[i] == '+' || s[i] == '-'))
				i++;
			continue;
		}
		if (s[i++] != '"')
			continue;
		for (nul = false; i < len && s[i] != '"'; i++) {
			if ((unsigned char)s[i] < 0x20)
				return false;
			if (s[i] != '\\')
				continue;
			if (++i < len && s[i] == 'u' && i + 4 < len &&
			    memcmp(s + i + 1, "0000", 4) == 0) {
				nul = true;
				i += 4;
			}
		}
		i++;
		while (i < len && (s[i] == ' ' || s[i] == '\t' ||
		    s[i] == '\n' || s[i] == '\r'))
			i++;
		if (nul && i < len && s[i] == ':')
			return false;
	}
	return true;
}

int
dp_json_parse_value(const char *s, size_t len, int depth,
    struct json_object **out)
{
	struct json_tokener	*t;
	struct json_object	*o = NULL;
	int			 rc = -1;

	*out = NULL;
	/* The caller's buffer is NUL-terminated: parsing len + 1 bytes ends
	 * the input for json-c (a top-level number needs that), and an
	 * embedded NUL stops the parse short of len, which we refuse. */
	if (s == NULL || s[len] != '\0')
		return -1;
	if ((t = json_tokener_new_ex(depth)) == NULL)
		return -1;
	json_tokener_set_flags(t, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(t, s, (int)len + 1);
	if (json_tokener_get_error(t) == json_tokener_success &&
	    json_tokener_get_parse_end(t) >= len && tree_ok(o) &&
	    raw_ok(s, len)) {
		*out = o;
		rc = 0;
	} else
		json_object_put(o);
	json_tokener_free(t);
	return rc;
}

struct json_object *
dp_json_parse(const char *s, size_t len, int depth)
{
	struct json_object	*o;

	return dp_json_parse_value(s, len, depth, &o) == 0 ? o : NULL;
}

void
dp_json_str(struct json_object *o, const char *k, const char *s)
{
	json_object_object_add(o, k, s ? json_object_new_string(s) : NULL);
}

void
dp_json_int(struct json_object *o, const char *k, int64_t v)
{
	json_object_object_add(o, k, json_object_new_int64(v));
}

void
dp_json_bool(struct json_object *o, const char *k, bool v)
{
	json_object_object_add(o, k, json_object_new_boolean(v));
}

/*
 * The text dp_json_double writes for v (non-finite: 0), in s.  json-c
 * prints doubles with 17 significant digits (0.1 reads
 * 0.10000000000000001); 15 round-trip every value we produce (percentages,
 * epoch seconds with microseconds) and read as people expect.
 */
static void
double_text(double v, char s[40])
{
	size_t	 n;

	if (!isfinite(v))
		v = 0;
	snprintf(s, 40, "%.15g", v);
	/* A whole number stays a JSON number with a fraction. */
	n = strlen(s);
	if (strspn(s, "-0123456789") == n && n + 3 <= 40)
		memcpy(s + n, ".0", 3);
}

void
dp_json_double(struct json_object *o, const char *k, double v)
{
	char	 s[40];

	double_text(v, s);
	json_object_object_add(o, k, json_object_new_double_s(isfinite(v) ?
	    v : 0, s));
}

/* Digits of a number's mantissa (number_ok's text). */
static size_t
digits(const char *s)
{
	size_t	 n = 0;

	for (; *s != '\0' && *s != 'e' && *s != 'E'; s++)
		if (*s >= '0' && *s <= '9')
			n++;
	return n;
}

/*
 * The text of float8 column text s as dp_json_double writes its value
 * ("0.0" when NULL), s itself or in buf, without the double's round trip
 * through strtod and "%.15g": a plain decimal from PostgreSQL (its
 * shortest exact form) of at most 15 digits, which "%.15g" would print
 * the same, is kept as it is, with ".0" on a whole number; anything else
 * goes the long way.
 */
static const char *
pg_double_text(const char *s, char buf[40])
{
	size_t	 n;

	if (s == NULL)
		return "0.0";
	n = strlen(s);
	if (n == 0 || n + 3 > 40 || !number_ok(s) || digits(s) > 15) {
		double_text(strtod(s, NULL), buf);
		return buf;
	}
	if (strspn(s, "-0123456789") == n) {
		memcpy(buf, s, n);
		memcpy(buf + n, ".0", 3);
		return buf;
	}
	return s;
}

/*
 * PostgreSQL sends timestamptz as "2024-01-01 12:00:00.123+00" (the
 * session runs with TimeZone UTC, set at connect), possibly without a
 * fraction.  Its contract form, exactly six fractional digits and Z, goes
 * in out (27 bytes, no NUL); false: null.
 */
static bool
ts_text(const char *pg, char out[27])
{
	char		 frac[7] = "000000";
	const char	*p;
	size_t		 i;

	if (pg == NULL || strlen(pg) < 19)
		return false;
	p = pg + 19;
	if (*p == '.') {
		for (p++, i = 0; *p >= '0' && *p <= '9'; p++, i++)
			if (i < 6)
				frac[i] = *p;
	}
	/* "%.10sT%.8s.%sZ" of pg, pg + 11, frac, without printf. */
	memcpy(out, pg, 10);
	out[10] = 'T';
	memcpy(out + 11, pg + 11, 8);
	out[19] = '.';
	memcpy(out + 20, frac, 6);
	out[26] = 'Z';
	return true;
}

void
dp_json_ts(struct json_object *o, const char *k, const char *pg)
{
	char	 out[27];

	json_object_object_add(o, k, ts_text(pg, out) ?
	    json_object_new_string_len(out, 27) : NULL);
}

/*
 * PostgreSQL's jsonb text s without the blanks jsonb_out puts after ':'
 * and ','.  Strings are copied as they are (jsonb_out escapes what JSON
 * must).
 */
static void
pg_compact(struct dp_buf *b, const char *s)
{
	const char	*p, *run;
	bool		 in = false, esc = false;

	for (p = run = s; *p != '\0'; p++) {
		if (in) {
			if (esc)
				esc = false;
			else if (*p == '\\')
				esc = true;
			else if (*p == '"')
				in = false;
		} else if (*p == '"')
			in = true;
		else if (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') {
			dp_buf_add(b, run, (size_t)(p - run));
			run = p + 1;
		}
	}
	dp_buf_add(b, run, (size_t)(p - run));
}

/* ---- JSON written directly ------------------------------------------------ */

/*
 * The writer below appends to a buffer what json-c would serialize
 * (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE) for the
 * dp_json_* call of the same name, without an object per value.
 */
void
dp_jw_str(struct dp_buf *b, const char *k, const char *s)
{
	dp_buf_add_jkey(b, k);
	if (s == NULL)
		dp_buf_add(b, "null", 4);
	else
		dp_buf_add_jstr(b, s, strlen(s));
}

void
dp_jw_int(struct dp_buf *b, const char *k, int64_t v)
{
	dp_buf_add_jkey(b, k);
	dp_buf_addi(b, (long long)v);
}

void
dp_jw_bool(struct dp_buf *b, const char *k, bool v)
{
	dp_buf_add_jkey(b, k);
	dp_buf_adds(b, v ? "true" : "false");
}

void
dp_jw_pg_double(struct dp_buf *b, const char *k, const char *s)
{
	char	 buf[40];

	dp_buf_add_jkey(b, k);
	dp_buf_adds(b, pg_double_text(s, buf));
}

void
dp_jw_ts(struct dp_buf *b, const char *k, const char *pg)
{
	char	 out[27];

	dp_buf_add_jkey(b, k);
	if (!ts_text(pg, out)) {
		dp_buf_add(b, "null", 4);
		return;
	}
	dp_buf_addc(b, '"');
	dp_buf_add(b, out, 27);
	dp_buf_addc(b, '"');
}

void
dp_jw_pg_object(struct dp_buf *b, const char *k, const char *s)
{
	size_t	 n;

	dp_buf_add_jkey(b, k);
	if (s == NULL || s[0] != '{' || (n = strlen(s)) < 2 || s[n - 1] != '}')
		dp_buf_add(b, "{}", 2);
	else
		pg_compact(b, s);
}

static int
raw_serialize(struct json_object *o, struct printbuf *pb, int level,
    int flags)
{
	const struct dp_buf	*b = json_object_get_userdata(o);

	(void)level;
	(void)flags;
	if (b->len > 0)
		printbuf_memappend(pb, b->s, (int)b->len);
	return 0;
}

static void
raw_free(struct json_object *o, void *userdata)
{
	struct dp_buf	*b = userdata;

	(void)o;
	dp_buf_release(b);
	free(b);
}

struct json_object *
dp_json_raw(struct dp_buf *text)
{
	struct json_object	*o = json_object_new_object();
	struct dp_buf		*b = dp_xmalloc(sizeof(*b));

	*b = *text;
	memset(text, 0, sizeof(*text));
	json_object_set_serializer(o, raw_serialize, b, raw_free);
	return o;
}
