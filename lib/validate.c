/* lib/validate.c: the field types of CONTRACT §0.3, as pure checkers */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "util.h"
#include "validate.h"

const char *const dp_vcode_names[DP_V__MAX] = {
	"ok",			/* DP_V_OK */
	"missing",		/* DP_V_MISSING */
	"type_error",		/* DP_V_TYPE_ERROR */
	"too_short",		/* DP_V_TOO_SHORT */
	"too_long",		/* DP_V_TOO_LONG */
	"pattern",		/* DP_V_PATTERN */
	"invalid_choice",	/* DP_V_INVALID_CHOICE */
	"out_of_range",		/* DP_V_OUT_OF_RANGE */
	"invalid_format",	/* DP_V_INVALID_FORMAT */
	"invalid_email",	/* DP_V_INVALID_EMAIL */
	"invalid_url",		/* DP_V_INVALID_URL */
	"weak_password",	/* DP_V_WEAK_PASSWORD */
	"too_many",		/* DP_V_TOO_MANY */
	"invalid_key",		/* DP_V_INVALID_KEY */
	"invalid_passphrase",	/* DP_V_INVALID_PASSPHRASE */
};

const char *const dp_regions[] = {
	"us-east",
	"us-west",
	"eu-central",
	"asia-pacific",
	"southeast-asia",
	NULL
};

/* Parallel to dp_regions; NULL-terminated as well. */
const char *const dp_region_display[] = {
	"US East",
	"US West",
	"EU Central",
	"Asia Pacific",
	"Southeast Asia",
	NULL
};

/*
 * ASCII character classes.  <ctype.h> depends on the locale, and the
 * contract's patterns are ASCII, so these are spelled out.
 */
static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_lower(unsigned char c)
{
	return c >= 'a' && c <= 'z';
}

static bool
is_upper(unsigned char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool
is_alpha(unsigned char c)
{
	return is_lower(c) || is_upper(c);
}

static bool
is_alnum(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

static bool
is_hex(unsigned char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The ASCII whitespace that email trimming removes. */
static bool
is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static unsigned char
to_lower(unsigned char c)
{
	return is_upper(c) ? c - 'A' + 'a' : c;
}

/* True if n bytes of a and the lowercase ASCII b are equal ignoring case. */
static bool
ascii_ncaseeq(const char *a, const char *b, size_t n)
{
	size_t	 i;
	bool	 eq = true;

	for (i = 0; i < n && eq; i++)
		eq = to_lower((unsigned char)a[i]) == (unsigned char)b[i];
	return eq;
}

/*
 * Decode the code point at s[*i] strictly (RFC 3629 table 3-7: no
 * overlong forms, no surrogates, nothing above U+10FFFF, no truncated
 * sequence) and advance *i past it.  Returns 0, or -1 on a bad sequence.
 */
static int
utf8_next(const unsigned char *s, size_t len, size_t *i, uint32_t *cp)
{
	size_t		 p = *i, n, k;
	uint32_t	 c;
	unsigned char	 b = s[p], lo = 0x80, hi = 0xbf;
	int		 rc = -1;

	if (b < 0x80) {
		c = b;
		n = 0;
	} else if (b >= 0xc2 && b <= 0xdf) {
		c = b & 0x1f;
		n = 1;
	} else if (b >= 0xe0 && b <= 0xef) {
		c = b & 0x0f;
		n = 2;
		if (b == 0xe0)
			lo = 0xa0;	/* overlong */
		else if (b == 0xed)
			hi = 0x9f;	/* surrogates */
	} else if (b >= 0xf0 && b <= 0xf4) {
		c = b & 0x07;
		n = 3;
		if (b == 0xf0)
			lo = 0x90;	/* overlong */
		else if (b == 0xf4)
			hi = 0x8f;	/* above U+10FFFF */
	} else
		goto out;
	if (n > len - p - 1)
		goto out;
	for (k = 1; k <= n; k++) {
		b = s[p + k];
		if (b < lo || b > hi)
			goto out;
		lo = 0x80;
		hi = 0xbf;
		c = c << 6 | (b & 0x3f);
	}
	*i = p + n + 1;
	*cp = c;
	rc = 0;
out:
	return rc;
}

bool
dp_utf8_valid(const char *s, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0;
	uint32_t		 cp;
	bool			 ok = true;

	if (s == NULL)
		ok = len == 0;
	while (ok && i < len) {
		/* ASCII runs are the common case. */
		if (u[i] < 0x80)
			i++;
		else
			ok = utf8_next(u, len, &i, &cp) == 0;
	}
	return ok;
}

int64_t
dp_utf8_len(const char *s, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	size_t			 i = 0;
	uint32_t		 cp;
	int64_t			 n = 0;

	if (s == NULL && len > 0)
		n = -1;
	while (n >= 0 && i < len) {
		if (u[i] == 0)
			n = -1;
		else if (u[i] < 0x80) {
			i++;
			n++;
		} else if (utf8_next(u, len, &i, &cp) == 0)
			n++;
		else
			n = -1;
	}
	return n;
}

enum dp_vcode
dp_check_text(const char *s, size_t len, int64_t min, int64_t max)
{
	int64_t		 n = dp_utf8_len(s, len);
	enum dp_vcode	 rc = DP_V_OK;

	if (n < 0)
		rc = DP_V_INVALID_FORMAT;
	else if (n < min)
		rc = DP_V_TOO_SHORT;
	else if (n > max)
		rc = DP_V_TOO_LONG;
	return rc;
}

enum dp_vcode
dp_check_username(const char *s, size_t len)
{
	enum dp_vcode	 rc;
	size_t		 i;
	unsigned char	 c;

	if ((rc = dp_check_text(s, len, 3, 30)) != DP_V_OK)
		goto out;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (!is_alnum(c) && c != '_' && c != '-') {
			rc = DP_V_PATTERN;
			goto out;
		}
	}
out:
	return rc;
}

/* Local part of an address: 1–64 of the §0.3 set, no leading, trailing
 * or doubled dot. */
static bool
email_local_ok(const char *s, size_t n)
{
	static const char	 extra[] = ".!#$%&'*+/=?^_{}~-";
	size_t			 i;
	unsigned char		 c;
	bool			 ok;

	ok = n >= 1 && n <= 64 && s[0] != '.' && s[n - 1] != '.';
	for (i = 0; ok && i < n; i++) {
		c = (unsigned char)s[i];
		if (!is_alnum(c) && (c == '\0' || strchr(extra, c) == NULL))
			ok = false;
		else if (c == '.' && i + 1 < n && s[i + 1] == '.')
			ok = false;
	}
	return ok;
}

/* Domain: ≥2 labels of 1–63 [A-Za-z0-9-] not starting or ending with
 * '-'; the last one alphabetic and ≥2 long. */
static bool
email_domain_ok(const char *s, size_t n)
{
	size_t		 i, start = 0, labels = 0, j;
	unsigned char	 c;
	bool		 ok = true;

	for (i = 0; ok && i <= n; i++) {
		if (i < n && s[i] != '.') {
			c = (unsigned char)s[i];
			ok = is_alnum(c) || c == '-';
			continue;
		}
		/* A label ends at s[i]. */
		if (i - start < 1 || i - start > 63 || s[start] == '-' ||
		    s[i - 1] == '-')
			ok = false;
		labels++;
		if (i == n && ok) {
			/* The last label. */
			ok = labels >= 2 && i - start >= 2;
			for (j = start; ok && j < i; j++)
				ok = is_alpha((unsigned char)s[j]);
		}
		start = i + 1;
	}
	return ok;
}

enum dp_vcode
dp_check_email(const char *s, size_t len, char *out)
{
	enum dp_vcode	 rc = DP_V_INVALID_EMAIL;
	size_t		 b = 0, e = len, i, n, at = 0, nat = 0;
	const char	*t;

	if (s == NULL) {
		if (out != NULL)
			out[0] = '\0';
		rc = len == 0 ? DP_V_INVALID_EMAIL : DP_V_INVALID_FORMAT;
		goto out;
	}
	while (b < e && is_space((unsigned char)s[b]))
		b++;
	while (e > b && is_space((unsigned char)s[e - 1]))
		e--;
	n = e - b;
	if (out != NULL) {
		for (i = 0; i < n; i++)
			out[i] = (char)to_lower((unsigned char)s[b + i]);
		out[n] = '\0';
	}
	if (dp_utf8_len(s, len) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	/* Any non-ASCII byte fails below, so bytes count as characters. */
	if (n > 254)
		goto out;
	for (i = 0; i < n; i++)
		if (s[b + i] == '@') {
			at = i;
			nat++;
		}
	if (nat != 1)
		goto out;
	/* Case does not matter for the character sets below. */
	t = s + b;
	if (email_local_ok(t, at) && email_domain_ok(t + at + 1, n - at - 1))
		rc = DP_V_OK;
out:
	return rc;
}

enum dp_vcode
dp_check_password(const char *s, size_t len)
{
	enum dp_vcode	 rc;
	size_t		 i;
	unsigned char	 c;
	bool		 lo = false, up = false, dig = false;

	if ((rc = dp_check_text(s, len, 8, 128)) != DP_V_OK)
		goto out;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		lo |= is_lower(c);
		up |= is_upper(c);
		dig |= is_digit(c);
	}
	if (!lo || !up || !dig)
		rc = DP_V_WEAK_PASSWORD;
out:
	return rc;
}

enum dp_vcode
dp_check_choice(const char *s, size_t len, const char *const *choices)
{
	enum dp_vcode	 rc = DP_V_INVALID_CHOICE;
	size_t		 i;

	if (dp_utf8_len(s, len) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	for (i = 0; choices != NULL && choices[i] != NULL; i++)
		if (strlen(choices[i]) == len &&
		    (len == 0 || memcmp(choices[i], s, len) == 0)) {
			rc = DP_V_OK;
			break;
		}
out:
	return rc;
}

enum dp_vcode
dp_check_region(const char *s, size_t len)
{
	return dp_check_choice(s, len, dp_regions);
}

/* Whitespace and control characters (Unicode White_Space, C0, DEL, C1). */
static bool
url_forbidden(uint32_t c)
{
	return c <= 0x20 || (c >= 0x7f && c <= 0xa0) || c == 0x1680 ||
	    (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 ||
	    c == 0x202f || c == 0x205f || c == 0x3000;
}

/* A reg-name or IPv4 host: unreserved, '%' and non-ASCII, with at least
 * one letter, digit or non-ASCII character. */
static bool
url_host_ok(const unsigned char *h, size_t n)
{
	size_t	 i;
	bool	 ok = true, some = false;

	for (i = 0; ok && i < n; i++) {
		if (is_alnum(h[i]) || h[i] >= 0x80)
			some = true;
		else if (h[i] != '-' && h[i] != '.' && h[i] != '_' &&
		    h[i] != '~' && h[i] != '%')
			ok = false;
	}
	return ok && some;
}

/* "[...]" IPv6 literal contents: hex digits, ':' and '.', with a ':'. */
static bool
url_ip6_ok(const unsigned char *h, size_t n)
{
	size_t	 i;
	bool	 ok = n >= 2, colon = false;

	for (i = 0; ok && i < n; i++) {
		if (h[i] == ':')
			colon = true;
		else if (!is_hex(h[i]) && h[i] != '.')
			ok = false;
	}
	return ok && colon;
}

enum dp_vcode
dp_check_url(const char *s, size_t len)
{
	const unsigned char	*u = (const unsigned char *)s;
	enum dp_vcode		 rc = DP_V_INVALID_URL;
	size_t			 i, p, q, h, he, k;
	uint32_t		 cp;
	int64_t			 n;
	long			 port;

	if ((n = dp_utf8_len(s, len)) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	if (n > 2048)
		goto out;
	for (i = 0; i < len; ) {
		(void)utf8_next(u, len, &i, &cp);	/* valid: checked above */
		if (url_forbidden(cp))
			goto out;
	}
	if (len >= 7 && ascii_ncaseeq(s, "http://", 7))
		p = 7;
	else if (len >= 8 && ascii_ncaseeq(s, "https://", 8))
		p = 8;
	else
		goto out;
	/* Authority: up to the first '/', '?' or '#'. */
	for (q = p; q < len && u[q] != '/' && u[q] != '?' && u[q] != '#'; q++)
		continue;
	/* Skip userinfo, which ends at the last '@'. */
	for (h = p, i = p; i < q; i++)
		if (u[i] == '@')
			h = i + 1;
	if (h < q && u[h] == '[') {
		for (he = h + 1; he < q && u[he] != ']'; he++)
			continue;
		if (he == q || !url_ip6_ok(u + h + 1, he - h - 1))
			goto out;
		he++;
	} else {
		for (he = h; he < q && u[he] != ':'; he++)
			continue;
		if (!url_host_ok(u + h, he - h))
			goto out;
	}
	if (he < q) {
		/* ":port", 1–5 digits, at most 65535. */
		if (u[he] != ':' || q - he - 1 < 1 || q - he - 1 > 5)
			goto out;
		for (port = 0, k = he + 1; k < q; k++) {
			if (!is_digit(u[k]))
				goto out;
			port = port * 10 + (u[k] - '0');
		}
		if (port > 65535)
			goto out;
	}
	rc = DP_V_OK;
out:
	return rc;
}

/*
 * Accumulate a run of decimal digits from s[*i] into *v, setting *ovf
 * instead of overflowing int64.  Returns the number of digits.
 */
static size_t
decimal_run(const char *s, size_t len, size_t *i, int64_t *v, bool *ovf)
{
	size_t	 start = *i;
	int	 d;

	while (*i < len && is_digit((unsigned char)s[*i])) {
		d = s[*i] - '0';
		if (*v > (INT64_MAX - d) / 10)
			*ovf = true;
		else if (!*ovf)
			*v = *v * 10 + d;
		(*i)++;
	}
	return *i - start;
}

enum dp_vcode
dp_check_cpu(const char *s, size_t len, int64_t *mc)
{
	enum dp_vcode	 rc = DP_V_PATTERN;
	size_t		 i = 0, nf;
	int64_t		 v = 0, f = 0;
	bool		 ovf = false, fovf = false;

	if (dp_utf8_len(s, len) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	if (decimal_run(s, len, &i, &v, &ovf) == 0)
		goto out;
	if (i + 1 == len && s[i] == 'm') {
		/* Millicores. */
	} else if (i == len || s[i] == '.') {
		/* Cores with up to three decimals. */
		if (i < len) {
			i++;
			nf = decimal_run(s, len, &i, &f, &fovf);
			if (nf < 1 || nf > 3 || i != len)
				goto out;
			for (; nf < 3; nf++)
				f *= 10;
		}
		if (v > (INT64_MAX - f) / 1000)
			ovf = true;
		else
			v = v * 1000 + f;
	} else
		goto out;
	if (ovf || v < 100) {
		rc = DP_V_OUT_OF_RANGE;
		goto out;
	}
	*mc = v;
	rc = DP_V_OK;
out:
	return rc;
}

enum dp_vcode
dp_check_quantity(const char *s, size_t len, int64_t min, int64_t *bytes)
{
	static const char	 units[] = "KMGT";
	enum dp_vcode		 rc = DP_V_PATTERN;
	const char		*u;
	size_t			 i = 0;
	int64_t			 v = 0;
	int			 shift;
	bool			 ovf = false;

	if (dp_utf8_len(s, len) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	if (len == 0 || s[0] < '1' || s[0] > '9')
		goto out;
	decimal_run(s, len, &i, &v, &ovf);
	if (len - i != 2 || s[i + 1] != 'i' || s[i] == '\0' ||
	    (u = strchr(units, s[i])) == NULL)
		goto out;
	shift = 10 * (int)(u - units + 1);
	if (ovf || v > (INT64_MAX >> shift)) {
		rc = DP_V_OUT_OF_RANGE;
		goto out;
	}
	v <<= shift;
	if (v < min) {
		rc = DP_V_OUT_OF_RANGE;
		goto out;
	}
	*bytes = v;
	rc = DP_V_OK;
out:
	return rc;
}

enum dp_vcode
dp_check_env_key(const char *s, size_t len)
{
	enum dp_vcode	 rc = DP_V_PATTERN;
	size_t		 i;
	unsigned char	 c;

	if (dp_utf8_len(s, len) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	if (len < 1 || len > 128)
		goto out;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (!(is_alpha(c) || c == '_' || (i > 0 && is_digit(c))))
			goto out;
	}
	rc = DP_V_OK;
out:
	return rc;
}

/* Exactly n decimal digits at s into *v; false otherwise. */
static bool
fixed_digits(const char *s, size_t n, int *v)
{
	size_t	 i;
	bool	 ok = true;

	*v = 0;
	for (i = 0; ok && i < n; i++) {
		if ((ok = is_digit((unsigned char)s[i])))
			*v = *v * 10 + (s[i] - '0');
	}
	return ok;
}

static bool
is_leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant). */
static int64_t
days_from_civil(int y, int m, int d)
{
	int64_t	 era, yoe, doy, doe, yy = y - (m <= 2);

	era = (yy >= 0 ? yy : yy - 399) / 400;
	yoe = yy - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

enum dp_vcode
dp_check_timestamp(const char *s, size_t len, int64_t *usec)
{
	static const int mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
	    30, 31 };
	enum dp_vcode	 rc = DP_V_INVALID_FORMAT;
	int		 y, mo, d, h, mi, sec, oh = 0, om = 0, dim;
	int64_t		 frac = 0, off = 0, t;
	size_t		 p, nf;

	/* The fixed part is ASCII, so NUL and bad UTF-8 fail by shape; the
	 * explicit check keeps the rule obvious. */
	if (len < 19 || dp_utf8_len(s, len) < 0)
		goto out;
	if (!fixed_digits(s, 4, &y) || s[4] != '-' ||
	    !fixed_digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !fixed_digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
	    !fixed_digits(s + 11, 2, &h) || s[13] != ':' ||
	    !fixed_digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !fixed_digits(s + 17, 2, &sec))
		goto out;
	p = 19;
	if (p < len && s[p] == '.') {
		p++;
		for (nf = 0; p < len && is_digit((unsigned char)s[p]); p++) {
			/* Keep six digits: truncation to microseconds. */
			if (++nf <= 6)
				frac = frac * 10 + (s[p] - '0');
		}
		if (nf < 1 || nf > 9)
			goto out;
		for (; nf < 6; nf++)
			frac *= 10;
	}
	if (p == len) {
		/* No offset: UTC. */
	} else if ((s[p] == 'Z' || s[p] == 'z') && p + 1 == len) {
		/* UTC. */
	} else if ((s[p] == '+' || s[p] == '-' || s[p] == ' ') &&
	    len - p == 6 && fixed_digits(s + p + 1, 2, &oh) &&
	    s[p + 3] == ':' && fixed_digits(s + p + 4, 2, &om)) {
		if (oh > 23 || om > 59)
			goto out;
		off = (int64_t)oh * 3600 + om * 60;
		if (s[p] == '-')
			off = -off;
	} else
		goto out;
	if (mo < 1 || mo > 12)
		goto out;
	dim = mdays[mo - 1] + (mo == 2 && is_leap(y));
	/* sec 60 (leap second) is rejected: see validate.h. */
	if (d < 1 || d > dim || h > 23 || mi > 59 || sec > 59)
		goto out;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
	*usec = t * 1000000 + frac;
	rc = DP_V_OK;
out:
	return rc;
}

enum dp_vcode
dp_check_env_name(const char *s, size_t len, char *out)
{
	enum dp_vcode	 rc;
	size_t		 i;
	unsigned char	 c;

	if (out != NULL) {
		for (i = 0; s != NULL && i < len; i++)
			out[i] = (char)to_lower((unsigned char)s[i]);
		out[s != NULL ? len : 0] = '\0';
	}
	if ((rc = dp_check_text(s, len, 1, 50)) != DP_V_OK)
		goto out;
	for (i = 0; i < len; i++) {
		c = to_lower((unsigned char)s[i]);
		if (!(is_lower(c) || is_digit(c) || c == '_' ||
		    (c == '-' && i > 0 && i + 1 < len))) {
			rc = DP_V_PATTERN;
			goto out;
		}
	}
out:
	return rc;
}

enum dp_vcode
dp_check_template_name(const char *s, size_t len)
{
	enum dp_vcode	 rc = DP_V_PATTERN;
	size_t		 i;
	unsigned char	 c;

	if (dp_utf8_len(s, len) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	if (len < 1 || len > 50)
		goto out;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if (!(is_lower(c) || is_digit(c) ||
		    (i > 0 && (c == '_' || c == '-'))))
			goto out;
	}
	rc = DP_V_OK;
out:
	return rc;
}

/*
 * One path component of an image name, [a-z0-9]+([._-][a-z0-9]+)*,
 * starting at s[*i]; advances *i past it.
 */
static bool
image_component(const char *s, size_t len, size_t *i)
{
	size_t		 p = *i;
	unsigned char	 c;
	bool		 ok = false, prev_sep = true;

	for (; p < len; p++) {
		c = (unsigned char)s[p];
		if (is_lower(c) || is_digit(c))
			prev_sep = false;
		else if ((c == '.' || c == '_' || c == '-') && !prev_sep)
			prev_sep = true;
		else if (c == '.' || c == '_' || c == '-')
			goto out;
		else
			break;
	}
	ok = p > *i && !prev_sep;
	*i = p;
out:
	return ok;
}

/*
 * Everything after the optional registry:
 * component(/component)*(:tag)?(@sha256:hex64)?
 */
static bool
image_rest(const char *s, size_t len)
{
	size_t		 i = 0, t;
	unsigned char	 c;
	bool		 ok = false;

	for (;;) {
		if (!image_component(s, len, &i))
			goto out;
		if (i < len && s[i] == '/')
			i++;
		else
			break;
	}
	if (i < len && s[i] == ':') {
		t = ++i;
		for (; i < len; i++) {
			c = (unsigned char)s[i];
			if (!(is_alnum(c) || c == '_' ||
			    (i > t && (c == '.' || c == '-'))))
				break;
		}
		if (i == t || i - t > 128)
			goto out;
	}
	if (i < len) {
		if (len - i != 8 + 64 || memcmp(s + i, "@sha256:", 8) != 0)
			goto out;
		for (i += 8; i < len; i++)
			if (!is_digit((unsigned char)s[i]) &&
			    !(s[i] >= 'a' && s[i] <= 'f'))
				goto out;
	}
	ok = true;
out:
	return ok;
}

/* The registry prefix before the first '/': [a-z0-9.-]+(:[0-9]{1,5})? */
static bool
image_registry(const char *s, size_t n)
{
	size_t		 i;
	unsigned char	 c;
	bool		 ok;

	for (i = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (!(is_lower(c) || is_digit(c) || c == '.' || c == '-'))
			break;
	}
	ok = i > 0;
	if (ok && i < n) {
		ok = s[i] == ':' && n - i - 1 >= 1 && n - i - 1 <= 5;
		for (i++; ok && i < n; i++)
			ok = is_digit((unsigned char)s[i]);
	}
	return ok;
}

enum dp_vcode
dp_check_image_ref(const char *s, size_t len)
{
	enum dp_vcode	 rc = DP_V_PATTERN;
	const char	*slash;
	int64_t		 n;
	size_t		 r;

	if ((n = dp_utf8_len(s, len)) < 0) {
		rc = DP_V_INVALID_FORMAT;
		goto out;
	}
	if (n > 255) {
		rc = DP_V_TOO_LONG;
		goto out;
	}
	if (len == 0)
		goto out;
	/*
	 * The registry's character set excludes '/', so the only way to
	 * read a registry is up to the first '/'; try that, then without.
	 */
	if ((slash = memchr(s, '/', len)) != NULL) {
		r = (size_t)(slash - s);
		if (image_registry(s, r) && image_rest(slash + 1, len - r - 1)) {
			rc = DP_V_OK;
			goto out;
		}
	}
	if (image_rest(s, len))
		rc = DP_V_OK;
out:
	return rc;
}

/* snprintf into out, leaving "" when it does not fit. */
static void
format_or_empty(char *out, size_t n, int r)
{
	if (n > 0 && (r < 0 || (size_t)r >= n))
		out[0] = '\0';
}

void
dp_format_cpu(int64_t mc, char *out, size_t n)
{
	int	 r;

	if (n > 0) {
		r = snprintf(out, n, "%" PRId64 "m", mc);
		format_or_empty(out, n, r);
	}
}

void
dp_format_quantity(int64_t bytes, char *out, size_t n)
{
	static const char *const sfx[] = { "Ti", "Gi", "Mi", "Ki" };
	static const int	 shift[] = { 40, 30, 20, 10 };
	size_t			 i;
	int			 r;
	bool			 done = false;

	if (n == 0)
		goto out;
	for (i = 0; bytes > 0 && !done && i < DP_NITEMS(sfx); i++)
		if ((bytes & (((int64_t)1 << shift[i]) - 1)) == 0) {
			r = snprintf(out, n, "%" PRId64 "%s",
			    bytes >> shift[i], sfx[i]);
			done = true;
		}
	if (!done)
		r = snprintf(out, n, "%" PRId64, bytes);
	format_or_empty(out, n, r);
out:
	return;
}
