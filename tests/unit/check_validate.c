/* tests/unit/check_validate.c: unit tests of lib/validate.c (CONTRACT §0.3) */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"
#include "validate.h"

/* A string literal with its exact length (so embedded NULs count). */
#define L(s)	(s), (sizeof(s) - 1)

#define MIB	(1024 * 1024)

struct vcase {
	const char	*s;
	size_t		 len;
	enum dp_vcode	 want;
	int64_t		 val;		/* expected output on DP_V_OK */
	const char	*out;		/* expected normalised string, or NULL */
};

#define C(s, w)		{ L(s), w, 0, NULL }
#define CV(s, w, v)	{ L(s), w, v, NULL }
#define CO(s, w, o)	{ L(s), w, 0, o }

static const char *
code(enum dp_vcode c)
{
	return c < DP_V__MAX ? dp_vcode_names[c] : "?";
}

/* Printable rendering of a test input for failure messages. */
static const char *
show(const char *s, size_t len)
{
	static char	 buf[200];
	size_t		 i, o = 0;
	unsigned char	 c;

	for (i = 0; i < len && o + 5 < sizeof(buf); i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c < 0x7f)
			buf[o++] = (char)c;
		else {
			snprintf(buf + o, sizeof(buf) - o, "\\x%02x", c);
			o += 4;
		}
	}
	buf[o] = '\0';
	return buf;
}

#define CHECK_CODE(got, c) \
	ck_assert_msg((got) == (c)->want, "case %d \"%s\": got %s, want %s", \
	    _i, show((c)->s, (c)->len), code(got), code((c)->want))

/* n copies of unit, NUL-terminated; the caller frees it. */
static char *
rep(const char *unit, size_t n)
{
	size_t	 ul = strlen(unit), i;
	char	*p = dp_xmalloc(ul * n + 1);

	for (i = 0; i < n; i++)
		memcpy(p + i * ul, unit, ul);
	p[ul * n] = '\0';
	return p;
}

/* Concatenation of up to four strings (NULL ends early); caller frees. */
static char *
cat(const char *a, const char *b, const char *c, const char *d)
{
	struct dp_buf	 b0 = { 0 };
	const char	*v[] = { a, b, c, d };
	size_t		 i;

	dp_buf_adds(&b0, "");
	for (i = 0; i < 4 && v[i] != NULL; i++)
		dp_buf_adds(&b0, v[i]);
	return dp_buf_detach(&b0);
}

/* --- UTF-8 ------------------------------------------------------------ */

static const struct {
	const char	*s;
	size_t		 len;
	bool		 valid;
	int64_t		 cps;
} utf8_cases[] = {
	{ L(""), true, 0 },
	{ L("abc"), true, 3 },
	{ L("\xc3\xa9"), true, 1 },			/* é */
	{ L("\xe2\x82\xac"), true, 1 },			/* € */
	{ L("\xf0\x9f\x98\x80"), true, 1 },		/* U+1F600 */
	{ L("\xf4\x8f\xbf\xbf"), true, 1 },		/* U+10FFFF */
	{ L("\xed\x9f\xbf"), true, 1 },			/* U+D7FF */
	{ L("\xee\x80\x80"), true, 1 },			/* U+E000 */
	{ L("\xc2\x80"), true, 1 },			/* U+0080 */
	{ L("\xe0\xa0\x80"), true, 1 },			/* U+0800 */
	{ L("\xf0\x90\x80\x80"), true, 1 },		/* U+10000 */
	{ L("a\xc3\xa9z\xe2\x82\xac"), true, 4 },
	{ L("a\0b"), true, -1 },			/* NUL: valid, no length */
	{ L("\0"), true, -1 },
	{ L("\xc0\x80"), false, -1 },			/* overlong NUL */
	{ L("\xc1\xbf"), false, -1 },			/* overlong */
	{ L("\xe0\x80\x80"), false, -1 },		/* overlong */
	{ L("\xe0\x9f\xbf"), false, -1 },		/* overlong */
	{ L("\xf0\x80\x80\x80"), false, -1 },		/* overlong */
	{ L("\xf0\x8f\xbf\xbf"), false, -1 },		/* overlong */
	{ L("\xed\xa0\x80"), false, -1 },		/* U+D800 */
	{ L("\xed\xbf\xbf"), false, -1 },		/* U+DFFF */
	{ L("\xed\xa0\x80\xed\xb0\x80"), false, -1 },	/* CESU pair */
	{ L("\xf4\x90\x80\x80"), false, -1 },		/* U+110000 */
	{ L("\xf5\x80\x80\x80"), false, -1 },
	{ L("\xf8\x88\x80\x80\x80"), false, -1 },	/* 5-byte form */
	{ L("\xfe"), false, -1 },
	{ L("\xff"), false, -1 },
	{ L("\xe2\x82"), false, -1 },			/* truncated */
	{ L("\xf0\x9f\x98"), false, -1 },		/* truncated */
	{ L("\xc3"), false, -1 },			/* truncated */
	{ L("abc\xe2"), false, -1 },			/* truncated at end */
	{ L("\x80"), false, -1 },			/* lone continuation */
	{ L("a\x80z"), false, -1 },
	{ L("\xc3\x28"), false, -1 },			/* bad continuation */
	{ L("\xe2\x28\xa1"), false, -1 },
	{ L("\xe2\x82\x28"), false, -1 },
	{ L("\xc3\xa9\xc3"), false, -1 },
};

START_TEST(test_validate_utf8)
{
	bool	 v = dp_utf8_valid(utf8_cases[_i].s, utf8_cases[_i].len);
	int64_t	 n = dp_utf8_len(utf8_cases[_i].s, utf8_cases[_i].len);

	ck_assert_msg(v == utf8_cases[_i].valid, "case %d \"%s\": valid %d",
	    _i, show(utf8_cases[_i].s, utf8_cases[_i].len), v);
	ck_assert_msg(n == utf8_cases[_i].cps, "case %d \"%s\": len %" PRId64,
	    _i, show(utf8_cases[_i].s, utf8_cases[_i].len), n);
}
END_TEST

START_TEST(test_validate_utf8_null)
{
	ck_assert(dp_utf8_valid(NULL, 0));
	ck_assert(!dp_utf8_valid(NULL, 1));
	ck_assert_int_eq(dp_utf8_len(NULL, 0), 0);
	ck_assert_int_eq(dp_utf8_len(NULL, 1), -1);
	ck_assert_int_eq(dp_check_text(NULL, 0, 0, 10), DP_V_OK);
	ck_assert_int_eq(dp_check_text(NULL, 5, 0, 10), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_username(NULL, 3), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_email(NULL, 3, NULL), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_url(NULL, 3), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_region(NULL, 0), DP_V_INVALID_CHOICE);
}
END_TEST

/* Every one-byte lead, every second byte: agrees with a reference rule. */
START_TEST(test_validate_utf8_exhaustive2)
{
	unsigned char	 b[2];
	int		 i, j;
	bool		 want;

	for (i = 0xc0; i <= 0xff; i++)
		for (j = 0; j <= 0xff; j++) {
			b[0] = (unsigned char)i;
			b[1] = (unsigned char)j;
			want = i >= 0xc2 && i <= 0xdf && j >= 0x80 && j <= 0xbf;
			ck_assert_msg(dp_utf8_valid((char *)b, 2) == want,
			    "%02x %02x", i, j);
		}
}
END_TEST

/* Every code point encodes and decodes; surrogates are rejected. */
START_TEST(test_validate_utf8_all_code_points)
{
	unsigned char	 b[4];
	uint32_t	 c;
	size_t		 n;
	bool		 want;

	for (c = 1; c <= 0x10ffff; c++) {
		if (c < 0x80) {
			b[0] = (unsigned char)c;
			n = 1;
		} else if (c < 0x800) {
			b[0] = 0xc0 | (c >> 6);
			b[1] = 0x80 | (c & 0x3f);
			n = 2;
		} else if (c < 0x10000) {
			b[0] = 0xe0 | (c >> 12);
			b[1] = 0x80 | ((c >> 6) & 0x3f);
			b[2] = 0x80 | (c & 0x3f);
			n = 3;
		} else {
			b[0] = 0xf0 | (c >> 18);
			b[1] = 0x80 | ((c >> 12) & 0x3f);
			b[2] = 0x80 | ((c >> 6) & 0x3f);
			b[3] = 0x80 | (c & 0x3f);
			n = 4;
		}
		want = c < 0xd800 || c > 0xdfff;
		ck_assert_msg(dp_utf8_valid((char *)b, n) == want, "U+%04X",
		    (unsigned)c);
		ck_assert_msg(dp_utf8_len((char *)b, n) == (want ? 1 : -1),
		    "U+%04X", (unsigned)c);
	}
}
END_TEST

/* --- names ------------------------------------------------------------- */

START_TEST(test_validate_names)
{
	static const char *const want[] = {
		"ok", "missing", "type_error", "too_short", "too_long",
		"pattern", "invalid_choice", "out_of_range", "invalid_format",
		"invalid_email", "invalid_url", "weak_password", "too_many",
		"invalid_key", "invalid_passphrase",
	};
	size_t	 i;

	ck_assert_int_eq(DP_NITEMS(want), DP_V__MAX);
	for (i = 0; i < DP_V__MAX; i++) {
		ck_assert_ptr_nonnull(dp_vcode_names[i]);
		ck_assert_str_eq(dp_vcode_names[i], want[i]);
	}
}
END_TEST

/* --- text -------------------------------------------------------------- */

static const struct {
	const char	*s;
	size_t		 len;
	int64_t		 min, max;
	enum dp_vcode	 want;
} text_cases[] = {
	{ L(""), 0, 10, DP_V_OK },
	{ L(""), 1, 10, DP_V_TOO_SHORT },
	{ L("abc"), 0, 3, DP_V_OK },
	{ L("abcd"), 0, 3, DP_V_TOO_LONG },
	{ L("abc"), 3, 3, DP_V_OK },
	{ L("ab"), 3, 3, DP_V_TOO_SHORT },
	{ L("\xc3\xa9\xc3\xa9\xc3\xa9"), 0, 3, DP_V_OK },	/* 6 bytes */
	{ L("\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac"), 4, 4,
	    DP_V_OK },
	{ L("\xf0\x9f\x98\x80"), 2, 10, DP_V_TOO_SHORT },
	{ L("a\0b"), 0, 10, DP_V_INVALID_FORMAT },
	{ L("\0"), 0, 10, DP_V_INVALID_FORMAT },
	{ L("abc\0"), 0, 2, DP_V_INVALID_FORMAT },		/* NUL first */
	{ L("\xff"), 0, 10, DP_V_INVALID_FORMAT },
	{ L("ab\xed\xa0\x80"), 0, 10, DP_V_INVALID_FORMAT },
	{ L("line\nbreak\ttab"), 0, 100, DP_V_OK },
};

START_TEST(test_validate_text)
{
	enum dp_vcode	 got;

	got = dp_check_text(text_cases[_i].s, text_cases[_i].len,
	    text_cases[_i].min, text_cases[_i].max);
	CHECK_CODE(got, &text_cases[_i]);
}
END_TEST

/* --- username ---------------------------------------------------------- */

static const struct vcase username_cases[] = {
	C("", DP_V_TOO_SHORT),
	C("a", DP_V_TOO_SHORT),
	C("ab", DP_V_TOO_SHORT),
	C("abc", DP_V_OK),
	C("abcdefghijklmnopqrstuvwxyz0123", DP_V_OK),		/* 30 */
	C("abcdefghijklmnopqrstuvwxyz01234", DP_V_TOO_LONG),	/* 31 */
	C("User_Name-1", DP_V_OK),
	C("---", DP_V_OK),
	C("___", DP_V_OK),
	C("ab c", DP_V_PATTERN),
	C("ab.c", DP_V_PATTERN),
	C("abc!", DP_V_PATTERN),
	C("abc@x", DP_V_PATTERN),
	C("a\tb", DP_V_PATTERN),
	C("\xc3\xa9\xc3\xa9\xc3\xa9", DP_V_PATTERN),	/* 3 chars, 6 bytes */
	C("\xc3\xa9\xc3\xa9", DP_V_TOO_SHORT),		/* 2 chars, 4 bytes */
	/* 28 x + 2 é = 30 chars (32 bytes): length ok, pattern fails */
	C("xxxxxxxxxxxxxxxxxxxxxxxxxxxx\xc3\xa9\xc3\xa9", DP_V_PATTERN),
	C("abc\0", DP_V_INVALID_FORMAT),
	C("\0\0\0", DP_V_INVALID_FORMAT),
	C("ab\xc0\x80", DP_V_INVALID_FORMAT),
	C("abc\xe2\x82", DP_V_INVALID_FORMAT),
	C("a\0", DP_V_INVALID_FORMAT),	/* NUL before the length rule */
};

START_TEST(test_validate_username)
{
	const struct vcase	*c = &username_cases[_i];
	enum dp_vcode		 got = dp_check_username(c->s, c->len);

	CHECK_CODE(got, c);
}
END_TEST

/* --- email ------------------------------------------------------------- */

static const struct vcase email_cases[] = {
	CO("user@example.com", DP_V_OK, "user@example.com"),
	CO("  User@Example.COM \t\r\n", DP_V_OK, "user@example.com"),
	CO("\v\fA.B@C.IO", DP_V_OK, "a.b@c.io"),
	C("a@b.co", DP_V_OK),
	C("a.b@b.com", DP_V_OK),
	C("a@b--c.com", DP_V_OK),
	C("a@123.com", DP_V_OK),
	C("a@x.y.z.example", DP_V_OK),
	C("!#$%&'*+/=?^_{}~-@b.com", DP_V_OK),
	C("a+tag@sub-domain.example.org", DP_V_OK),
	C("a@b.c", DP_V_INVALID_EMAIL),
	C("a@b", DP_V_INVALID_EMAIL),
	C("a@b.c0m", DP_V_INVALID_EMAIL),
	C("a@1.2.3.4", DP_V_INVALID_EMAIL),
	C("a@[1.2.3.4]", DP_V_INVALID_EMAIL),
	C("a@-b.com", DP_V_INVALID_EMAIL),
	C("a@b-.com", DP_V_INVALID_EMAIL),
	C("a@b.-com", DP_V_INVALID_EMAIL),
	C("a@b..com", DP_V_INVALID_EMAIL),
	C("a@.b.com", DP_V_INVALID_EMAIL),
	C("a@b.com.", DP_V_INVALID_EMAIL),
	C("a@b_c.com", DP_V_INVALID_EMAIL),
	C("a@b c.com", DP_V_INVALID_EMAIL),
	C(".a@b.com", DP_V_INVALID_EMAIL),
	C("a.@b.com", DP_V_INVALID_EMAIL),
	C("a..b@b.com", DP_V_INVALID_EMAIL),
	C(".@b.com", DP_V_INVALID_EMAIL),
	C("a@@b.com", DP_V_INVALID_EMAIL),
	C("a@b@c.com", DP_V_INVALID_EMAIL),
	C("ab.com", DP_V_INVALID_EMAIL),
	C("@b.com", DP_V_INVALID_EMAIL),
	C("a@", DP_V_INVALID_EMAIL),
	C("@", DP_V_INVALID_EMAIL),
	C("a|b@b.com", DP_V_INVALID_EMAIL),
	C("a`b@b.com", DP_V_INVALID_EMAIL),
	C("a b@b.com", DP_V_INVALID_EMAIL),
	C("a\"b@b.com", DP_V_INVALID_EMAIL),
	C("(a)@b.com", DP_V_INVALID_EMAIL),
	C("a,b@b.com", DP_V_INVALID_EMAIL),
	C("a\\b@b.com", DP_V_INVALID_EMAIL),
	C("\xc3\xa9@b.com", DP_V_INVALID_EMAIL),
	C("a@b\xc3\xa9.com", DP_V_INVALID_EMAIL),
	C("a@b.c\xc3\xb6m", DP_V_INVALID_EMAIL),
	C("a@b.com\xc2\xa0", DP_V_INVALID_EMAIL),	/* NBSP is not trimmed */
	C("", DP_V_INVALID_EMAIL),
	C("   ", DP_V_INVALID_EMAIL),
	C("a@b.com\0", DP_V_INVALID_FORMAT),
	C("a\0@b.com", DP_V_INVALID_FORMAT),
	C("a\xff@b.com", DP_V_INVALID_FORMAT),
	C("a@b.com\xe2\x82", DP_V_INVALID_FORMAT),
	C("a@b.com\xed\xa0\x80", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_email)
{
	const struct vcase	*c = &email_cases[_i];
	char			*out = dp_xmalloc(c->len + 1);
	enum dp_vcode		 got;

	memset(out, 'X', c->len + 1);
	got = dp_check_email(c->s, c->len, out);
	CHECK_CODE(got, c);
	ck_assert_msg(memchr(out, '\0', c->len + 1) != NULL, "out unterminated");
	if (c->out != NULL)
		ck_assert_str_eq(out, c->out);
	/* out == NULL checks the same way. */
	ck_assert_int_eq(dp_check_email(c->s, c->len, NULL), got);
	free(out);
}
END_TEST

START_TEST(test_validate_email_boundaries)
{
	char	*l64 = rep("a", 64), *l65 = rep("a", 65);
	char	*d63 = rep("b", 63), *d64 = rep("b", 64);
	char	*c63 = rep("c", 63), *d57 = rep("d", 57), *d58 = rep("d", 58);
	char	*s, *dom, *out = dp_xmalloc(512);

	s = cat(l64, "@example.com", NULL, NULL);
	ck_assert_int_eq(dp_check_email(s, strlen(s), out), DP_V_OK);
	free(s);
	s = cat(l65, "@example.com", NULL, NULL);
	ck_assert_int_eq(dp_check_email(s, strlen(s), out),
	    DP_V_INVALID_EMAIL);
	free(s);
	s = cat("a@", d63, ".com", NULL);
	ck_assert_int_eq(dp_check_email(s, strlen(s), out), DP_V_OK);
	free(s);
	s = cat("a@", d64, ".com", NULL);
	ck_assert_int_eq(dp_check_email(s, strlen(s), out),
	    DP_V_INVALID_EMAIL);
	free(s);
	s = cat("a@example.", c63, NULL, NULL);		/* last label 63 */
	ck_assert_int_eq(dp_check_email(s, strlen(s), out), DP_V_OK);
	free(s);

	/* 64 + 1 + (63 + 1 + 63 + 1 + 57 + 4) = 254 */
	dom = cat(d63, ".", c63, ".");
	s = cat(l64, "@", dom, NULL);
	free(dom);
	dom = s;
	s = cat(dom, d57, ".com", NULL);
	ck_assert_uint_eq(strlen(s), 254);
	ck_assert_int_eq(dp_check_email(s, strlen(s), out), DP_V_OK);
	free(s);
	s = cat(dom, d58, ".com", NULL);
	ck_assert_uint_eq(strlen(s), 255);
	ck_assert_int_eq(dp_check_email(s, strlen(s), out),
	    DP_V_INVALID_EMAIL);
	free(s);
	/* Trimming happens before the length rule. */
	s = cat("   ", dom, d57, ".com\t\t");
	ck_assert_int_eq(dp_check_email(s, strlen(s), out), DP_V_OK);
	ck_assert_uint_eq(strlen(out), 254);
	free(s);
	free(dom);

	free(l64);
	free(l65);
	free(d63);
	free(d64);
	free(c63);
	free(d57);
	free(d58);
	free(out);
}
END_TEST

/* --- password ---------------------------------------------------------- */

static const struct vcase password_cases[] = {
	C("", DP_V_TOO_SHORT),
	C("Abcdef1", DP_V_TOO_SHORT),
	C("Abcdefg1", DP_V_OK),
	C("abcdefg1", DP_V_WEAK_PASSWORD),
	C("ABCDEFG1", DP_V_WEAK_PASSWORD),
	C("Abcdefgh", DP_V_WEAK_PASSWORD),
	C("12345678", DP_V_WEAK_PASSWORD),
	C("        ", DP_V_WEAK_PASSWORD),
	C("Pass word 1 !", DP_V_OK),
	/* 8 code points, 18 bytes */
	C("Ab1\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac",
	    DP_V_OK),
	/* 7 code points, 15 bytes: too short although > 8 bytes */
	C("Ab1\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac",
	    DP_V_TOO_SHORT),
	/* Arabic-Indic digit one is not an ASCII digit */
	C("Abcdefgh\xd9\xa1", DP_V_WEAK_PASSWORD),
	/* É is not an ASCII uppercase letter */
	C("\xc3\x89" "bcdefgh1", DP_V_WEAK_PASSWORD),
	/* Fullwidth A (U+FF21) either */
	C("\xef\xbc\xa1" "bcdefgh1", DP_V_WEAK_PASSWORD),
	C("Abcdefg1\0", DP_V_INVALID_FORMAT),
	C("\0Abcdefg1", DP_V_INVALID_FORMAT),
	C("Abcdefg1\xed\xa0\x80", DP_V_INVALID_FORMAT),
	C("Abcdefg1\xc0\x80", DP_V_INVALID_FORMAT),
	C("Abcdefg1\xe2\x82", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_password)
{
	const struct vcase	*c = &password_cases[_i];
	enum dp_vcode		 got = dp_check_password(c->s, c->len);

	CHECK_CODE(got, c);
}
END_TEST

START_TEST(test_validate_password_boundaries)
{
	char	*x, *s;

	x = rep("x", 125);
	s = cat("Ab1", x, NULL, NULL);			/* 128 */
	ck_assert_int_eq(dp_check_password(s, strlen(s)), DP_V_OK);
	free(s);
	s = cat("Ab1", x, "y", NULL);			/* 129 */
	ck_assert_int_eq(dp_check_password(s, strlen(s)), DP_V_TOO_LONG);
	free(s);
	free(x);
	/* Multibyte characters count as one: 128 chars in 3 + 500 bytes. */
	x = rep("\xf0\x9f\x98\x80", 125);
	s = cat("Ab1", x, NULL, NULL);
	ck_assert_int_eq(dp_check_password(s, strlen(s)), DP_V_OK);
	free(s);
	s = cat("Ab1", x, "\xc3\xa9", NULL);
	ck_assert_int_eq(dp_check_password(s, strlen(s)), DP_V_TOO_LONG);
	free(s);
	free(x);
}
END_TEST

/* --- region and choice ------------------------------------------------- */

static const struct vcase region_cases[] = {
	C("us-east", DP_V_OK),
	C("us-west", DP_V_OK),
	C("eu-central", DP_V_OK),
	C("asia-pacific", DP_V_OK),
	C("southeast-asia", DP_V_OK),
	C("US-East", DP_V_INVALID_CHOICE),
	C("us-east ", DP_V_INVALID_CHOICE),
	C(" us-east", DP_V_INVALID_CHOICE),
	C("us", DP_V_INVALID_CHOICE),
	C("us-eastx", DP_V_INVALID_CHOICE),
	C("us_east", DP_V_INVALID_CHOICE),
	C("", DP_V_INVALID_CHOICE),
	C("US East", DP_V_INVALID_CHOICE),
	C("us-east\0", DP_V_INVALID_FORMAT),
	C("us-east\0x", DP_V_INVALID_FORMAT),
	C("\xff", DP_V_INVALID_FORMAT),
	C("us-east\xc3", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_region)
{
	const struct vcase	*c = &region_cases[_i];
	enum dp_vcode		 got = dp_check_region(c->s, c->len);

	CHECK_CODE(got, c);
}
END_TEST

START_TEST(test_validate_region_tables)
{
	static const char *const names[] = { "us-east", "us-west",
	    "eu-central", "asia-pacific", "southeast-asia" };
	static const char *const disp[] = { "US East", "US West",
	    "EU Central", "Asia Pacific", "Southeast Asia" };
	size_t	 i;

	for (i = 0; i < DP_NITEMS(names); i++) {
		ck_assert_str_eq(dp_regions[i], names[i]);
		ck_assert_str_eq(dp_region_display[i], disp[i]);
	}
	ck_assert_ptr_null(dp_regions[DP_NITEMS(names)]);
}
END_TEST

START_TEST(test_validate_choice)
{
	static const char *const ab[] = { "a", "bb", NULL };
	static const char *const empty[] = { "", NULL };
	static const char *const none[] = { NULL };

	ck_assert_int_eq(dp_check_choice(L("a"), ab), DP_V_OK);
	ck_assert_int_eq(dp_check_choice(L("bb"), ab), DP_V_OK);
	ck_assert_int_eq(dp_check_choice(L("b"), ab), DP_V_INVALID_CHOICE);
	ck_assert_int_eq(dp_check_choice(L("bbb"), ab), DP_V_INVALID_CHOICE);
	ck_assert_int_eq(dp_check_choice(L("A"), ab), DP_V_INVALID_CHOICE);
	ck_assert_int_eq(dp_check_choice(L(""), ab), DP_V_INVALID_CHOICE);
	ck_assert_int_eq(dp_check_choice(L("a\0"), ab), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_choice(L("b\0b"), ab), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_choice(L(""), empty), DP_V_OK);
	ck_assert_int_eq(dp_check_choice(L("a"), empty), DP_V_INVALID_CHOICE);
	ck_assert_int_eq(dp_check_choice(L("a"), none), DP_V_INVALID_CHOICE);
	ck_assert_int_eq(dp_check_choice(L("a"), NULL), DP_V_INVALID_CHOICE);
	/* Compared by length too: "a" is a prefix of the input "ab". */
	ck_assert_int_eq(dp_check_choice("ab", 1, ab), DP_V_OK);
}
END_TEST

/* --- url --------------------------------------------------------------- */

static const struct vcase url_cases[] = {
	C("http://example.com", DP_V_OK),
	C("https://example.com/path?q=1&r=%20#frag", DP_V_OK),
	C("HTTP://EXAMPLE.COM", DP_V_OK),
	C("HtTpS://a", DP_V_OK),
	C("http://localhost:8080/", DP_V_OK),
	C("http://localhost:65535", DP_V_OK),
	C("http://user:pw@host/", DP_V_OK),
	C("http://[::1]:3000/x", DP_V_OK),
	C("http://[2001:db8::1]", DP_V_OK),
	C("http://127.0.0.1", DP_V_OK),
	C("https://ex\xc3\xa4mple.com/\xc3\xbc", DP_V_OK),
	C("http://host?x", DP_V_OK),
	C("http://host#x", DP_V_OK),
	C("https://docs.python.org/3/", DP_V_OK),
	C("http://a_b.example/~user/", DP_V_OK),
	C("", DP_V_INVALID_URL),
	C("example.com", DP_V_INVALID_URL),
	C("ftp://example.com", DP_V_INVALID_URL),
	C("file:///etc/passwd", DP_V_INVALID_URL),
	C("javascript:alert(1)", DP_V_INVALID_URL),
	C("http:/example.com", DP_V_INVALID_URL),
	C("http:example.com", DP_V_INVALID_URL),
	C("http//host", DP_V_INVALID_URL),
	C("//host", DP_V_INVALID_URL),
	C("http://", DP_V_INVALID_URL),
	C("https://", DP_V_INVALID_URL),
	C("http:///path", DP_V_INVALID_URL),
	C("http://?q", DP_V_INVALID_URL),
	C("http://:80", DP_V_INVALID_URL),
	C("http://host:", DP_V_INVALID_URL),
	C("http://host:99999", DP_V_INVALID_URL),
	C("http://host:123456", DP_V_INVALID_URL),
	C("http://host:8a", DP_V_INVALID_URL),
	C("http://host:-1", DP_V_INVALID_URL),
	C("http://user@", DP_V_INVALID_URL),
	C("http://user@:80/", DP_V_INVALID_URL),
	C("http://[::1", DP_V_INVALID_URL),
	C("http://[]", DP_V_INVALID_URL),
	C("http://[zz::]", DP_V_INVALID_URL),
	C("http://[::1]x", DP_V_INVALID_URL),
	C("http://ho<st", DP_V_INVALID_URL),
	C("http://ho\\st", DP_V_INVALID_URL),
	C("http://...", DP_V_INVALID_URL),
	C("http://ho st", DP_V_INVALID_URL),
	C("http://host/a b", DP_V_INVALID_URL),
	C(" http://host", DP_V_INVALID_URL),
	C("http://host ", DP_V_INVALID_URL),
	C("http://host/\t", DP_V_INVALID_URL),
	C("http://host\r\nX-Injected: 1", DP_V_INVALID_URL),
	C("http://host/\x7f", DP_V_INVALID_URL),
	C("http://host/\x01", DP_V_INVALID_URL),
	C("http://host/\xc2\x85", DP_V_INVALID_URL),		/* NEL */
	C("http://host/\xc2\xa0", DP_V_INVALID_URL),		/* NBSP */
	C("http://host/\xe2\x80\xa8", DP_V_INVALID_URL),	/* U+2028 */
	C("http://host/\xe3\x80\x80", DP_V_INVALID_URL),	/* U+3000 */
	C("http://host/\0", DP_V_INVALID_FORMAT),
	C("http://host\0.evil.com", DP_V_INVALID_FORMAT),
	C("http://host/\xc0\x80", DP_V_INVALID_FORMAT),
	C("http://host/\xed\xa0\x80", DP_V_INVALID_FORMAT),
	C("http://host/\xe2\x82", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_url)
{
	const struct vcase	*c = &url_cases[_i];
	enum dp_vcode		 got = dp_check_url(c->s, c->len);

	CHECK_CODE(got, c);
}
END_TEST

START_TEST(test_validate_url_length)
{
	char	*p, *s;

	/* "http://a/" is 9 characters. */
	p = rep("p", 2048 - 9);
	s = cat("http://a/", p, NULL, NULL);
	ck_assert_int_eq(dp_check_url(s, strlen(s)), DP_V_OK);
	free(s);
	s = cat("http://a/", p, "q", NULL);
	ck_assert_int_eq(dp_check_url(s, strlen(s)), DP_V_INVALID_URL);
	free(s);
	free(p);
	/* Counted in characters: 2039 two-byte characters still fit. */
	p = rep("\xc3\xa9", 2048 - 9);
	s = cat("http://a/", p, NULL, NULL);
	ck_assert_int_eq(dp_check_url(s, strlen(s)), DP_V_OK);
	free(s);
	free(p);
}
END_TEST

/* --- cpu --------------------------------------------------------------- */

static const struct vcase cpu_cases[] = {
	CV("100m", DP_V_OK, 100),
	CV("0.1", DP_V_OK, 100),
	CV("1.5", DP_V_OK, 1500),
	CV("1", DP_V_OK, 1000),
	CV("2", DP_V_OK, 2000),
	CV("0.25", DP_V_OK, 250),
	CV("1.234", DP_V_OK, 1234),
	CV("0.100", DP_V_OK, 100),
	CV("500m", DP_V_OK, 500),
	CV("1000m", DP_V_OK, 1000),
	CV("00100m", DP_V_OK, 100),
	CV("0001.0", DP_V_OK, 1000),
	CV("9223372036854775807m", DP_V_OK, INT64_MAX),
	CV("9223372036854775.807", DP_V_OK, INT64_MAX),
	CV("9223372036854775", DP_V_OK, INT64_C(9223372036854775000)),
	C("99m", DP_V_OUT_OF_RANGE),
	C("0m", DP_V_OUT_OF_RANGE),
	C("0", DP_V_OUT_OF_RANGE),
	C("0.0", DP_V_OUT_OF_RANGE),
	C("0.099", DP_V_OUT_OF_RANGE),
	C("0.09", DP_V_OUT_OF_RANGE),
	C("9223372036854775808m", DP_V_OUT_OF_RANGE),
	C("9223372036854775.808", DP_V_OUT_OF_RANGE),
	C("9223372036854776", DP_V_OUT_OF_RANGE),
	C("99999999999999999999999m", DP_V_OUT_OF_RANGE),
	C("99999999999999999999", DP_V_OUT_OF_RANGE),
	C("99999999999999999999.999", DP_V_OUT_OF_RANGE),
	C("", DP_V_PATTERN),
	C("m", DP_V_PATTERN),
	C("1.", DP_V_PATTERN),
	C(".5", DP_V_PATTERN),
	C("0.0999", DP_V_PATTERN),
	C("1.5m", DP_V_PATTERN),
	C("-1", DP_V_PATTERN),
	C("-100m", DP_V_PATTERN),
	C("+1", DP_V_PATTERN),
	C("1 ", DP_V_PATTERN),
	C(" 1", DP_V_PATTERN),
	C("1e3", DP_V_PATTERN),
	C("1M", DP_V_PATTERN),
	C("100mm", DP_V_PATTERN),
	C("100m ", DP_V_PATTERN),
	C("1,5", DP_V_PATTERN),
	C("0x10", DP_V_PATTERN),
	C("1..5", DP_V_PATTERN),
	C("1.5.0", DP_V_PATTERN),
	C("\xd9\xa1\xd9\xa0\xd9\xa0m", DP_V_PATTERN),	/* Arabic digits */
	C("99999999999999999999999x", DP_V_PATTERN),	/* pattern first */
	C("100m\0", DP_V_INVALID_FORMAT),
	C("1\0", DP_V_INVALID_FORMAT),
	C("1\xff", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_cpu)
{
	const struct vcase	*c = &cpu_cases[_i];
	int64_t			 mc = -7;
	enum dp_vcode		 got = dp_check_cpu(c->s, c->len, &mc);

	CHECK_CODE(got, c);
	if (got == DP_V_OK)
		ck_assert_msg(mc == c->val, "case %d: %" PRId64, _i, mc);
	else
		ck_assert_msg(mc == -7, "case %d: output written", _i);
}
END_TEST

/* --- quantity ---------------------------------------------------------- */

static const struct {
	const char	*s;
	size_t		 len;
	int64_t		 min;
	enum dp_vcode	 want;
	int64_t		 val;
} quantity_cases[] = {
	{ L("128Mi"), 0, DP_V_OK, INT64_C(134217728) },
	{ L("1Ki"), 0, DP_V_OK, 1024 },
	{ L("1Gi"), 0, DP_V_OK, INT64_C(1073741824) },
	{ L("10Gi"), 0, DP_V_OK, INT64_C(10737418240) },
	{ L("1Ti"), 0, DP_V_OK, INT64_C(1099511627776) },
	{ L("8388607Ti"), 0, DP_V_OK, INT64_C(8388607) << 40 },
	{ L("9007199254740991Ki"), 0, DP_V_OK, INT64_C(9007199254740991) << 10 },
	{ L("0Gi"), 0, DP_V_PATTERN, 0 },
	{ L("01Gi"), 0, DP_V_PATTERN, 0 },
	{ L("1Pi"), 0, DP_V_PATTERN, 0 },
	{ L("1Ei"), 0, DP_V_PATTERN, 0 },
	{ L("1K"), 0, DP_V_PATTERN, 0 },
	{ L("1ki"), 0, DP_V_PATTERN, 0 },
	{ L("1KI"), 0, DP_V_PATTERN, 0 },
	{ L("1G"), 0, DP_V_PATTERN, 0 },
	{ L("1GB"), 0, DP_V_PATTERN, 0 },
	{ L("1Gii"), 0, DP_V_PATTERN, 0 },
	{ L("1"), 0, DP_V_PATTERN, 0 },
	{ L("1024"), 0, DP_V_PATTERN, 0 },
	{ L("Gi"), 0, DP_V_PATTERN, 0 },
	{ L(""), 0, DP_V_PATTERN, 0 },
	{ L("-1Gi"), 0, DP_V_PATTERN, 0 },
	{ L("+1Gi"), 0, DP_V_PATTERN, 0 },
	{ L("1.5Gi"), 0, DP_V_PATTERN, 0 },
	{ L("1 Gi"), 0, DP_V_PATTERN, 0 },
	{ L("1Gi "), 0, DP_V_PATTERN, 0 },
	{ L(" 1Gi"), 0, DP_V_PATTERN, 0 },
	{ L("1e3Gi"), 0, DP_V_PATTERN, 0 },
	{ L("99999999999999999999Pi"), 0, DP_V_PATTERN, 0 },
	{ L("99999999999999999999Ti"), 0, DP_V_OUT_OF_RANGE, 0 },
	{ L("8388608Ti"), 0, DP_V_OUT_OF_RANGE, 0 },
	{ L("9223372036854775807Ki"), 0, DP_V_OUT_OF_RANGE, 0 },
	{ L("9223372036854775808Ki"), 0, DP_V_OUT_OF_RANGE, 0 },
	{ L("127Mi"), INT64_C(128) << 20, DP_V_OUT_OF_RANGE, 0 },
	{ L("128Mi"), INT64_C(128) << 20, DP_V_OK, INT64_C(128) << 20 },
	{ L("131071Ki"), INT64_C(128) << 20, DP_V_OUT_OF_RANGE, 0 },
	{ L("131072Ki"), INT64_C(128) << 20, DP_V_OK, INT64_C(128) << 20 },
	{ L("1023Mi"), INT64_C(1) << 30, DP_V_OUT_OF_RANGE, 0 },
	{ L("1024Mi"), INT64_C(1) << 30, DP_V_OK, INT64_C(1) << 30 },
	{ L("1Gi\0"), 0, DP_V_INVALID_FORMAT, 0 },
	{ L("1\0Gi"), 0, DP_V_INVALID_FORMAT, 0 },
	{ L("1G\xc3"), 0, DP_V_INVALID_FORMAT, 0 },
};

START_TEST(test_validate_quantity)
{
	int64_t		 b = -7;
	enum dp_vcode	 got;

	got = dp_check_quantity(quantity_cases[_i].s, quantity_cases[_i].len,
	    quantity_cases[_i].min, &b);
	CHECK_CODE(got, &quantity_cases[_i]);
	if (got == DP_V_OK)
		ck_assert_msg(b == quantity_cases[_i].val, "case %d: %" PRId64,
		    _i, b);
	else
		ck_assert_msg(b == -7, "case %d: output written", _i);
}
END_TEST

/* --- env key ----------------------------------------------------------- */

static const struct vcase env_key_cases[] = {
	C("A", DP_V_OK),
	C("_", DP_V_OK),
	C("FOO_BAR1", DP_V_OK),
	C("foo", DP_V_OK),
	C("_1", DP_V_OK),
	C("PATH", DP_V_OK),
	C("", DP_V_PATTERN),
	C("1FOO", DP_V_PATTERN),
	C("FOO-BAR", DP_V_PATTERN),
	C("FOO BAR", DP_V_PATTERN),
	C("FOO.BAR", DP_V_PATTERN),
	C("FOO=1", DP_V_PATTERN),
	C("F\xc3\x96\xc3\x96", DP_V_PATTERN),
	C("FOO\n", DP_V_PATTERN),
	C("FOO\0", DP_V_INVALID_FORMAT),
	C("\0FOO", DP_V_INVALID_FORMAT),
	C("\xff", DP_V_INVALID_FORMAT),
	C("FOO\xed\xbf\xbf", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_env_key)
{
	const struct vcase	*c = &env_key_cases[_i];
	enum dp_vcode		 got = dp_check_env_key(c->s, c->len);

	CHECK_CODE(got, c);
}
END_TEST

START_TEST(test_validate_env_key_length)
{
	char	*s = rep("K", 128);

	ck_assert_int_eq(dp_check_env_key(s, 128), DP_V_OK);
	free(s);
	s = rep("K", 129);
	ck_assert_int_eq(dp_check_env_key(s, 129), DP_V_PATTERN);
	free(s);
}
END_TEST

/* --- timestamp --------------------------------------------------------- */

#define US(x)	((int64_t)(x) * 1000000)

static const struct vcase timestamp_cases[] = {
	CV("1970-01-01T00:00:00Z", DP_V_OK, 0),
	CV("2024-01-01T00:00:00Z", DP_V_OK, US(1704067200)),
	CV("2024-02-29T12:00:00Z", DP_V_OK, US(1709208000)),
	CV("2000-02-29T00:00:00Z", DP_V_OK, US(951782400)),
	CV("2024-01-01T12:00:00", DP_V_OK, US(1704110400)),
	CV("2024-01-01t12:00:00z", DP_V_OK, US(1704110400)),
	CV("2024-01-01T12:00:00+00:00", DP_V_OK, US(1704110400)),
	CV("2024-01-01T12:00:00-00:00", DP_V_OK, US(1704110400)),
	CV("2024-01-01T12:00:00.123456789+05:30", DP_V_OK,
	    US(1704090600) + 123456),
	CV("2024-01-01T12:00:00 05:30", DP_V_OK, US(1704090600)),
	CV("2024-01-01T12:00:00.5 05:30", DP_V_OK, US(1704090600) + 500000),
	CV("2024-01-01T12:00:00-05:00", DP_V_OK, US(1704128400)),
	CV("2024-01-01T12:00:00+23:59", DP_V_OK, US(1704110400 - 86340)),
	CV("2024-01-01T12:00:00.5Z", DP_V_OK, US(1704110400) + 500000),
	CV("2024-01-01T12:00:00.000001Z", DP_V_OK, US(1704110400) + 1),
	CV("2024-01-01T12:00:00.0000009Z", DP_V_OK, US(1704110400)),
	CV("2024-01-01T12:00:00.999999999Z", DP_V_OK, US(1704110400) + 999999),
	CV("1969-12-31T23:59:59.999999Z", DP_V_OK, -1),
	CV("1969-12-31T23:59:59Z", DP_V_OK, US(-1)),
	CV("0000-01-01T00:00:00Z", DP_V_OK, US(-62167219200)),
	CV("9999-12-31T23:59:59Z", DP_V_OK, US(253402300799)),
	CV("2024-12-31T23:59:59+00:00", DP_V_OK, US(1735689599)),
	CV("2024-04-30T00:00:00Z", DP_V_OK, US(1714435200)),
	C("2023-02-29T12:00:00Z", DP_V_INVALID_FORMAT),
	C("1900-02-29T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2100-02-29T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-04-31T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-13-01T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-00-01T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-00T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-32T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01T24:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01T23:60:00Z", DP_V_INVALID_FORMAT),
	C("2024-12-31T23:59:60Z", DP_V_INVALID_FORMAT),	/* leap second */
	C("2024-01-01T12:00:00.Z", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00.", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00.1234567890Z", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00.12aZ", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00+24:00", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00+05:60", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00+0530", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00+05", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00+5:30", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00+05:30:00", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00Z+05:30", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00ZZ", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00UTC", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00Z ", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00 ", DP_V_INVALID_FORMAT),
	C(" 2024-01-01T12:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01 12:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01X12:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-1-01T12:00:00Z", DP_V_INVALID_FORMAT),
	C("24-01-01T12:00:00Z", DP_V_INVALID_FORMAT),
	C("+2024-01-01T12:00:00Z", DP_V_INVALID_FORMAT),
	C("-001-01-01T00:00:00Z", DP_V_INVALID_FORMAT),
	C("2024/01/01T12:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:0:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01", DP_V_INVALID_FORMAT),
	C("1704067200", DP_V_INVALID_FORMAT),
	C("", DP_V_INVALID_FORMAT),
	C("garbage", DP_V_INVALID_FORMAT),
	C("garbage-garbage-garbage-garbage", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00Z\0", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00\0Z", DP_V_INVALID_FORMAT),
	C("2024-01\0-01T12:00:00Z", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00.\xff", DP_V_INVALID_FORMAT),
	C("2024-01-01T12:00:00\xe2\x88\x92" "05:00", DP_V_INVALID_FORMAT),
	/* Fullwidth digits */
	C("\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x94-01-01T12:00:00Z",
	    DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_timestamp)
{
	const struct vcase	*c = &timestamp_cases[_i];
	int64_t			 us = -7;
	enum dp_vcode		 got = dp_check_timestamp(c->s, c->len, &us);

	CHECK_CODE(got, c);
	if (got == DP_V_OK)
		ck_assert_msg(us == c->val, "case %d: %" PRId64 " != %" PRId64,
		    _i, us, c->val);
	else
		ck_assert_msg(us == -7, "case %d: output written", _i);
}
END_TEST

/* Agrees with the C library's timegm over five centuries of dates. */
START_TEST(test_validate_timestamp_timegm)
{
	static const int days[] = { 1, 15, 28, 29, 30, 31 };
	char		 buf[64];
	struct tm	 tm;
	int64_t		 us;
	time_t		 t;
	enum dp_vcode	 got;
	int		 y, m, i, n;

	for (y = 1800; y <= 2400; y++)
		for (m = 1; m <= 12; m++)
			for (i = 0; i < (int)DP_NITEMS(days); i++) {
				n = snprintf(buf, sizeof(buf),
				    "%04d-%02d-%02dT%02d:%02d:%02d.25-01:30",
				    y, m, days[i], (y + m) % 24, (y * 7) % 60,
				    (y + days[i]) % 60);
				ck_assert(n > 0 && (size_t)n < sizeof(buf));
				memset(&tm, 0, sizeof(tm));
				tm.tm_year = y - 1900;
				tm.tm_mon = m - 1;
				tm.tm_mday = days[i];
				tm.tm_hour = (y + m) % 24;
				tm.tm_min = (y * 7) % 60;
				tm.tm_sec = (y + days[i]) % 60;
				t = timegm(&tm);
				got = dp_check_timestamp(buf, (size_t)n, &us);
				/* timegm normalises Feb 30 to March 2. */
				if (tm.tm_mon != m - 1) {
					ck_assert_msg(got ==
					    DP_V_INVALID_FORMAT, "%s", buf);
					continue;
				}
				ck_assert_msg(got == DP_V_OK, "%s", buf);
				ck_assert_msg(us == ((int64_t)t + 5400) *
				    1000000 + 250000, "%s", buf);
			}
}
END_TEST

/* --- environment name -------------------------------------------------- */

static const struct vcase env_name_cases[] = {
	CO("myenv", DP_V_OK, "myenv"),
	CO("MyEnv", DP_V_OK, "myenv"),
	CO("MY-ENV_2", DP_V_OK, "my-env_2"),
	C("a", DP_V_OK),
	C("_", DP_V_OK),
	C("0", DP_V_OK),
	C("a-b", DP_V_OK),
	C("a--b", DP_V_OK),
	C("a_b_", DP_V_OK),
	C("_a", DP_V_OK),
	C("-", DP_V_PATTERN),
	C("a-", DP_V_PATTERN),
	C("-a", DP_V_PATTERN),
	C("a b", DP_V_PATTERN),
	C("a.b", DP_V_PATTERN),
	C("a/b", DP_V_PATTERN),
	C("\xc3\xa9", DP_V_PATTERN),
	C("\xe2\x84\xaa", DP_V_PATTERN),		/* KELVIN SIGN */
	CO("\xc3\x89\xc3\x89", DP_V_PATTERN, "\xc3\x89\xc3\x89"),
	CO("", DP_V_TOO_SHORT, ""),
	C("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij", DP_V_OK),
	C("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijk",
	    DP_V_TOO_LONG),
	CO("AB\0", DP_V_INVALID_FORMAT, "ab"),
	C("\xff", DP_V_INVALID_FORMAT),
	C("ab\xc3", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_env_name)
{
	const struct vcase	*c = &env_name_cases[_i];
	char			*out = dp_xmalloc(c->len + 1);
	enum dp_vcode		 got;

	memset(out, 'X', c->len + 1);
	got = dp_check_env_name(c->s, c->len, out);
	CHECK_CODE(got, c);
	ck_assert_msg(out[c->len] == '\0', "out unterminated");
	if (c->out != NULL)
		ck_assert_str_eq(out, c->out);
	ck_assert_int_eq(dp_check_env_name(c->s, c->len, NULL), got);
	free(out);
}
END_TEST

/* --- template name ----------------------------------------------------- */

static const struct vcase template_name_cases[] = {
	C("python", DP_V_OK),
	C("node-js_18", DP_V_OK),
	C("a", DP_V_OK),
	C("0", DP_V_OK),
	C("a-", DP_V_OK),
	C("a__", DP_V_OK),
	C("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghij", DP_V_OK),
	C("abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijk",
	    DP_V_PATTERN),
	C("", DP_V_PATTERN),
	C("_a", DP_V_PATTERN),
	C("-a", DP_V_PATTERN),
	C("A", DP_V_PATTERN),
	C("Python", DP_V_PATTERN),
	C("a b", DP_V_PATTERN),
	C("a.b", DP_V_PATTERN),
	C("../etc", DP_V_PATTERN),
	C("py\xc3\xa9", DP_V_PATTERN),
	C("py\0", DP_V_INVALID_FORMAT),
	C("\xff", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_template_name)
{
	const struct vcase	*c = &template_name_cases[_i];
	enum dp_vcode		 got = dp_check_template_name(c->s, c->len);

	CHECK_CODE(got, c);
}
END_TEST

/* --- image reference --------------------------------------------------- */

#define HEX64 "0123456789abcdef0123456789abcdef" \
	"0123456789abcdef0123456789abcdef"

static const struct vcase image_cases[] = {
	C("python", DP_V_OK),
	C("python:3.11", DP_V_OK),
	C("python:3.11-slim", DP_V_OK),
	C("library/python:3.11", DP_V_OK),
	C("docker.io/library/python:3.11", DP_V_OK),
	C("ghcr.io/org/img:v1.2.3", DP_V_OK),
	C("localhost:5000/foo", DP_V_OK),
	C("localhost:5000/foo/bar:tag", DP_V_OK),
	C("localhost:5000", DP_V_OK),		/* image "localhost", tag 5000 */
	C("registry.example.com:443/a/b", DP_V_OK),
	C("127.0.0.1:5000/x", DP_V_OK),
	C("codercom/code-server:latest", DP_V_OK),
	C("a.b_c-d", DP_V_OK),
	C("a/b/c/d", DP_V_OK),
	C("my-registry.io/team/app_1:TAG_x", DP_V_OK),
	C("foo:_tag", DP_V_OK),
	C("-reg.io/foo", DP_V_OK),		/* registry set allows '-' */
	C("ubuntu@sha256:" HEX64, DP_V_OK),
	C("ubuntu:22.04@sha256:" HEX64, DP_V_OK),
	C("ghcr.io:1/a/b:c@sha256:" HEX64, DP_V_OK),
	C("", DP_V_PATTERN),
	C("Python", DP_V_PATTERN),
	C("python:", DP_V_PATTERN),
	C(":tag", DP_V_PATTERN),
	C("/python", DP_V_PATTERN),
	C("python/", DP_V_PATTERN),
	C("a//b", DP_V_PATTERN),
	C("a..b", DP_V_PATTERN),
	C("a__b", DP_V_PATTERN),
	C("a.-b", DP_V_PATTERN),
	C(".a", DP_V_PATTERN),
	C("a.", DP_V_PATTERN),
	C("a-", DP_V_PATTERN),
	C("python:-tag", DP_V_PATTERN),
	C("python:.tag", DP_V_PATTERN),
	C("python:ta/g", DP_V_PATTERN),
	C("python:tag:tag", DP_V_PATTERN),
	C("python tag", DP_V_PATTERN),
	C("python\n", DP_V_PATTERN),
	C("python@sha256:abc", DP_V_PATTERN),
	C("python@sha256:" HEX64 "0", DP_V_PATTERN),
	C("python@sha256:0123456789ABCDEF0123456789abcdef"
	    "0123456789abcdef0123456789abcdef", DP_V_PATTERN),
	C("python@sha512:" HEX64, DP_V_PATTERN),
	C("python@" HEX64, DP_V_PATTERN),
	C("python@sha256:" HEX64 "@sha256:" HEX64, DP_V_PATTERN),
	C("localhost:123456/foo", DP_V_PATTERN),
	C("localhost:/foo", DP_V_PATTERN),
	C("localhost:50a/foo", DP_V_PATTERN),
	C("Registry.io/foo", DP_V_PATTERN),
	C("foo/Bar", DP_V_PATTERN),
	C("foo@bar", DP_V_PATTERN),
	C("foo;rm -rf /", DP_V_PATTERN),
	C("$(id)", DP_V_PATTERN),
	C("\xc3\xbcn\xc3\xaf", DP_V_PATTERN),
	C("python\0", DP_V_INVALID_FORMAT),
	C("py\xc3", DP_V_INVALID_FORMAT),
};

START_TEST(test_validate_image_ref)
{
	const struct vcase	*c = &image_cases[_i];
	enum dp_vcode		 got = dp_check_image_ref(c->s, c->len);

	CHECK_CODE(got, c);
}
END_TEST

START_TEST(test_validate_image_ref_lengths)
{
	char	*t, *s, *n;

	t = rep("t", 128);
	s = cat("img:", t, NULL, NULL);
	ck_assert_int_eq(dp_check_image_ref(s, strlen(s)), DP_V_OK);
	free(s);
	s = cat("img:", t, "u", NULL);
	ck_assert_int_eq(dp_check_image_ref(s, strlen(s)), DP_V_PATTERN);
	free(s);
	free(t);
	n = rep("n", 255);
	ck_assert_int_eq(dp_check_image_ref(n, 255), DP_V_OK);
	free(n);
	n = rep("n", 256);
	ck_assert_int_eq(dp_check_image_ref(n, 256), DP_V_TOO_LONG);
	free(n);
}
END_TEST

/* --- canonical renderings ---------------------------------------------- */

static const struct {
	int64_t		 v;
	const char	*cpu;
	const char	*qty;
} format_cases[] = {
	{ 0, "0m", "0" },
	{ 1, "1m", "1" },
	{ 100, "100m", "100" },
	{ 1000, "1000m", "1000" },
	{ 1024, "1024m", "1Ki" },
	{ 1536, "1536m", "1536" },
	{ INT64_C(1) << 20, "1048576m", "1Mi" },
	{ INT64_C(128) << 20, "134217728m", "128Mi" },
	{ INT64_C(1536) << 20, "1610612736m", "1536Mi" },
	{ INT64_C(1) << 30, "1073741824m", "1Gi" },
	{ INT64_C(1024) << 20, "1073741824m", "1Gi" },
	{ INT64_C(10) << 30, "10737418240m", "10Gi" },
	{ INT64_C(1) << 40, "1099511627776m", "1Ti" },
	{ INT64_C(2048) << 30, "2199023255552m", "2Ti" },
	{ INT64_C(8388607) << 40, "9223370937343148032m", "8388607Ti" },
	{ INT64_MAX, "9223372036854775807m", "9223372036854775807" },
	{ -5, "-5m", "-5" },
	{ -1024, "-1024m", "-1024" },
};

START_TEST(test_validate_format)
{
	char	 buf[32];
	int64_t	 b = 0;

	dp_format_cpu(format_cases[_i].v, buf, sizeof(buf));
	ck_assert_str_eq(buf, format_cases[_i].cpu);
	dp_format_quantity(format_cases[_i].v, buf, sizeof(buf));
	ck_assert_str_eq(buf, format_cases[_i].qty);
	/* A suffixed rendering parses back to the same value. */
	if (strchr(buf, 'i') != NULL) {
		ck_assert_int_eq(dp_check_quantity(buf, strlen(buf), 0, &b),
		    DP_V_OK);
		ck_assert_int_eq(b, format_cases[_i].v);
	}
}
END_TEST

START_TEST(test_validate_format_truncation)
{
	char	 buf[8];

	memset(buf, 'X', sizeof(buf));
	dp_format_cpu(1000, buf, 5);		/* "1000m" needs 6 */
	ck_assert_str_eq(buf, "");
	dp_format_cpu(1000, buf, 6);
	ck_assert_str_eq(buf, "1000m");
	dp_format_quantity(INT64_C(128) << 20, buf, 5);
	ck_assert_str_eq(buf, "");
	dp_format_quantity(INT64_C(128) << 20, buf, 6);
	ck_assert_str_eq(buf, "128Mi");
	memset(buf, 'X', sizeof(buf));
	dp_format_cpu(1, buf, 0);
	dp_format_quantity(1, buf, 0);
	ck_assert_int_eq(buf[0], 'X');
}
END_TEST

/* --- huge input -------------------------------------------------------- */

START_TEST(test_validate_huge)
{
	char	*a = rep("a", MIB), *d = rep("9", MIB), *e, *s, *out;
	int64_t	 v;

	ck_assert_int_eq(dp_utf8_len(a, MIB), MIB);
	ck_assert_int_eq(dp_check_text(a, MIB, 0, 1000), DP_V_TOO_LONG);
	ck_assert_int_eq(dp_check_text(a, MIB, 0, MIB), DP_V_OK);
	ck_assert_int_eq(dp_check_username(a, MIB), DP_V_TOO_LONG);
	ck_assert_int_eq(dp_check_password(a, MIB), DP_V_TOO_LONG);
	ck_assert_int_eq(dp_check_region(a, MIB), DP_V_INVALID_CHOICE);
	ck_assert_int_eq(dp_check_env_key(a, MIB), DP_V_PATTERN);
	ck_assert_int_eq(dp_check_timestamp(a, MIB, &v), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_template_name(a, MIB), DP_V_PATTERN);
	ck_assert_int_eq(dp_check_image_ref(a, MIB), DP_V_TOO_LONG);
	out = dp_xmalloc(MIB + 16);
	ck_assert_int_eq(dp_check_env_name(a, MIB, out), DP_V_TOO_LONG);
	ck_assert_uint_eq(strlen(out), MIB);

	s = cat(a, "@b.com", NULL, NULL);
	ck_assert_int_eq(dp_check_email(s, strlen(s), out),
	    DP_V_INVALID_EMAIL);
	free(s);
	s = cat("http://a/", a, NULL, NULL);
	ck_assert_int_eq(dp_check_url(s, strlen(s)), DP_V_INVALID_URL);
	free(s);

	/* Digit strings far beyond int64: never UB, out_of_range. */
	ck_assert_int_eq(dp_check_cpu(d, MIB, &v), DP_V_OUT_OF_RANGE);
	s = cat(d, "m", NULL, NULL);
	ck_assert_int_eq(dp_check_cpu(s, strlen(s), &v), DP_V_OUT_OF_RANGE);
	free(s);
	s = cat(d, "x", NULL, NULL);
	ck_assert_int_eq(dp_check_cpu(s, strlen(s), &v), DP_V_PATTERN);
	free(s);
	s = cat("1.", d, NULL, NULL);
	ck_assert_int_eq(dp_check_cpu(s, strlen(s), &v), DP_V_PATTERN);
	free(s);
	s = cat(d, "Gi", NULL, NULL);
	ck_assert_int_eq(dp_check_quantity(s, strlen(s), 0, &v),
	    DP_V_OUT_OF_RANGE);
	free(s);
	s = cat("2024-01-01T12:00:00.", d, "Z", NULL);
	ck_assert_int_eq(dp_check_timestamp(s, strlen(s), &v),
	    DP_V_INVALID_FORMAT);
	free(s);

	/* A megabyte of multibyte characters, then one bad byte at the end. */
	e = rep("\xe2\x82\xac", MIB / 3);
	ck_assert_int_eq(dp_utf8_len(e, strlen(e)), MIB / 3);
	ck_assert(dp_utf8_valid(e, strlen(e)));
	e[strlen(e) - 1] = '\x28';
	ck_assert_int_eq(dp_utf8_len(e, strlen(e)), -1);
	ck_assert(!dp_utf8_valid(e, strlen(e)));
	ck_assert_int_eq(dp_check_text(e, strlen(e), 0, MIB),
	    DP_V_INVALID_FORMAT);
	free(e);

	/* A megabyte of NUL bytes. */
	memset(a, 0, MIB);
	ck_assert_int_eq(dp_check_text(a, MIB, 0, 10), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_username(a, MIB), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_email(a, MIB, out), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_url(a, MIB), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_cpu(a, MIB, &v), DP_V_INVALID_FORMAT);
	ck_assert_int_eq(dp_check_image_ref(a, MIB), DP_V_INVALID_FORMAT);
	ck_assert(dp_utf8_valid(a, MIB));

	free(out);
	free(a);
	free(d);
}
END_TEST

/* --- suite ------------------------------------------------------------- */

static void
add_loop(Suite *s, const char *name, const TTest *t, int n)
{
	TCase	*tc = tcase_create(name);

	tcase_add_loop_test(tc, t, 0, n);
	suite_add_tcase(s, tc);
}

static void
add(Suite *s, const char *name, const TTest *t)
{
	TCase	*tc = tcase_create(name);

	tcase_add_test(tc, t);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
}

static Suite *
validate_suite(void)
{
	Suite	*s = suite_create("validate");

	add_loop(s, "utf8", test_validate_utf8, DP_NITEMS(utf8_cases));
	add(s, "utf8_null", test_validate_utf8_null);
	add(s, "utf8_exhaustive2", test_validate_utf8_exhaustive2);
	add(s, "utf8_all_code_points", test_validate_utf8_all_code_points);
	add(s, "names", test_validate_names);
	add_loop(s, "text", test_validate_text, DP_NITEMS(text_cases));
	add_loop(s, "username", test_validate_username,
	    DP_NITEMS(username_cases));
	add_loop(s, "email", test_validate_email, DP_NITEMS(email_cases));
	add(s, "email_boundaries", test_validate_email_boundaries);
	add_loop(s, "password", test_validate_password,
	    DP_NITEMS(password_cases));
	add(s, "password_boundaries", test_validate_password_boundaries);
	add_loop(s, "region", test_validate_region, DP_NITEMS(region_cases));
	add(s, "region_tables", test_validate_region_tables);
	add(s, "choice", test_validate_choice);
	add_loop(s, "url", test_validate_url, DP_NITEMS(url_cases));
	add(s, "url_length", test_validate_url_length);
	add_loop(s, "cpu", test_validate_cpu, DP_NITEMS(cpu_cases));
	add_loop(s, "quantity", test_validate_quantity,
	    DP_NITEMS(quantity_cases));
	add_loop(s, "env_key", test_validate_env_key,
	    DP_NITEMS(env_key_cases));
	add(s, "env_key_length", test_validate_env_key_length);
	add_loop(s, "timestamp", test_validate_timestamp,
	    DP_NITEMS(timestamp_cases));
	add(s, "timestamp_timegm", test_validate_timestamp_timegm);
	add_loop(s, "env_name", test_validate_env_name,
	    DP_NITEMS(env_name_cases));
	add_loop(s, "template_name", test_validate_template_name,
	    DP_NITEMS(template_name_cases));
	add_loop(s, "image_ref", test_validate_image_ref,
	    DP_NITEMS(image_cases));
	add(s, "image_ref_lengths", test_validate_image_ref_lengths);
	add_loop(s, "format", test_validate_format, DP_NITEMS(format_cases));
	add(s, "format_truncation", test_validate_format_truncation);
	add(s, "huge", test_validate_huge);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(validate_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
