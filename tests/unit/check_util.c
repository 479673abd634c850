/* tests/unit/check_util.c: the hot helpers that replaced printf and byte loops */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "util.h"

/* Every length 0..40, a difference at every position, unequal lengths. */
START_TEST(test_ct_equal)
{
	unsigned char	 a[41] = { 0 }, b[41] = { 0 };
	size_t		 n, i;

	for (n = 0; n <= 40; n++) {
		for (i = 0; i < n; i++)
			a[i] = b[i] = (unsigned char)(i * 37 + n);
		ck_assert(dp_ct_equal(a, n, b, n));
		for (i = 0; i < n; i++) {
			b[i] ^= 0x80;
			ck_assert_msg(!dp_ct_equal(a, n, b, n),
			    "length %zu, difference at %zu", n, i);
			b[i] ^= 0x01 ^ 0x80;
			ck_assert(!dp_ct_equal(a, n, b, n));
			b[i] ^= 0x01;
		}
		if (n > 0)
			ck_assert(!dp_ct_equal(a, n, b, n - 1));
	}
	ck_assert(!dp_ct_equal("abc", 3, "abcd", 4));
}
END_TEST

START_TEST(test_buf_addi)
{
	static const long long	 v[] = { 0, 7, -1, 10, 1234567890123LL,
	    -987654321LL, LLONG_MAX, LLONG_MIN };
	struct dp_buf		 b = { 0 };
	char			 want[32];
	size_t			 i;

	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		b.len = 0;
		dp_buf_adds(&b, "x=");
		dp_buf_addi(&b, v[i]);
		snprintf(want, sizeof(want), "x=%lld", v[i]);
		ck_assert_str_eq(b.s, want);
		ck_assert_uint_eq(b.len, strlen(want));
	}
	dp_buf_release(&b);
}
END_TEST

/* A key's comma: none first in an object or array, one after a value. */
START_TEST(test_buf_add_jkey)
{
	struct dp_buf	 b = { 0 };

	dp_buf_add_jkey(&b, "top");
	dp_buf_adds(&b, "[{");
	dp_buf_add_jkey(&b, "a");
	dp_buf_addi(&b, 1);
	dp_buf_add_jkey(&b, "b");
	dp_buf_adds(&b, "{}");
	dp_buf_add_jkey(&b, "c");
	dp_buf_adds(&b, "\"x\"}]");
	ck_assert_str_eq(b.s, "\"top\":[{\"a\":1,\"b\":{},\"c\":\"x\"}]");
	ck_assert_uint_eq(b.len, strlen(b.s));
	dp_buf_release(&b);
}
END_TEST

/* dp_hex's inverse: every byte value round trips (NUL too); odd lengths
 * and non-hex digits add nothing. */
START_TEST(test_buf_add_unhex)
{
	unsigned char	 all[256];
	char		 hex[2 * 256 + 1];
	struct dp_buf	 b = { 0 };
	int		 i;

	for (i = 0; i < 256; i++)
		all[i] = (unsigned char)i;
	dp_hex(hex, all, sizeof(all));
	dp_buf_adds(&b, "x");
	ck_assert_int_eq(dp_buf_add_unhex(&b, hex, strlen(hex)), 0);
	ck_assert_uint_eq(b.len, 257);
	ck_assert_int_eq(memcmp(b.s + 1, all, sizeof(all)), 0);
	ck_assert_int_eq(b.s[b.len], '\0');
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_buf_add_unhex(&b, "0aFF", 4), 0);
	ck_assert_uint_eq(b.len, 2);
	ck_assert_int_eq((unsigned char)b.s[0], 0x0a);
	ck_assert_int_eq((unsigned char)b.s[1], 0xff);
	ck_assert_int_eq(dp_buf_add_unhex(&b, "", 0), 0);
	ck_assert_uint_eq(b.len, 2);
	ck_assert_int_eq(dp_buf_add_unhex(&b, "abc", 3), -1);
	ck_assert_int_eq(dp_buf_add_unhex(&b, "0g", 2), -1);
	ck_assert_int_eq(dp_buf_add_unhex(&b, "00\xff" "0", 4), -1);
	ck_assert_int_eq(dp_buf_add_unhex(&b, "1\0002", 4), -1);
	ck_assert_uint_eq(b.len, 2);
	dp_buf_release(&b);
}
END_TEST

/* PostgreSQL's timestamptz text to the contract's: six digits and Z. */
START_TEST(test_json_ts)
{
	static const char *const	 in[][2] = {
		{ "2024-01-02 03:04:05+00", "2024-01-02T03:04:05.000000Z" },
		{ "2024-01-02 03:04:05.1+00", "2024-01-02T03:04:05.100000Z" },
		{ "2024-01-02 03:04:05.123456+00",
		    "2024-01-02T03:04:05.123456Z" },
		{ "2024-01-02 03:04:05.1234567+00",
		    "2024-01-02T03:04:05.123456Z" },
	};
	struct json_object	*o = json_object_new_object(), *v;
	size_t			 i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		dp_json_ts(o, "t", in[i][0]);
		ck_assert(json_object_object_get_ex(o, "t", &v));
		ck_assert_str_eq(json_object_get_string(v), in[i][1]);
		ck_assert_int_eq(json_object_get_string_len(v),
		    (int)strlen(in[i][1]));
	}
	dp_json_ts(o, "t", "infinity");
	ck_assert(json_object_object_get_ex(o, "t", &v));
	ck_assert_ptr_null(v);
	dp_json_ts(o, "t", NULL);
	ck_assert(json_object_object_get_ex(o, "t", &v));
	ck_assert_ptr_null(v);
	json_object_put(o);
}
END_TEST

static Suite *
util_suite(void)
{
	Suite	*s = suite_create("util");
	TCase	*tc = tcase_create("helpers");

	tcase_add_test(tc, test_ct_equal);
	tcase_add_test(tc, test_buf_addi);
	tcase_add_test(tc, test_buf_add_jkey);
	tcase_add_test(tc, test_buf_add_unhex);
	tcase_add_test(tc, test_json_ts);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(util_suite());
	int	 nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
