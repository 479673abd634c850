/* tests/unit/check_password.c: scrypt MCF hashing, checking, rehash */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "password.h"
#include "util.h"

/* Small cost for speed; one test uses the production default. */
#define TN	1024
#define TR	8
#define TP	1

START_TEST(test_password_hash_format)
{
	char	 a[128], b[128];

	ck_assert_int_eq(dp_password_hash("hunter2", TN, TR, TP, a,
	    sizeof(a)), 0);
	ck_assert(dp_startswith(a, "$s1$0a0801$"));
	ck_assert_uint_lt(strlen(a), sizeof(a));
	/* A fresh salt each time. */
	ck_assert_int_eq(dp_password_hash("hunter2", TN, TR, TP, b,
	    sizeof(b)), 0);
	ck_assert_str_ne(a, b);
	ck_assert(dp_password_check(a, "hunter2"));
	ck_assert(dp_password_check(b, "hunter2"));
}
END_TEST

START_TEST(test_password_hash_refuse)
{
	char	 out[128], small[64];

	/* N not a power of two, zero or one; r, p out of range. */
	ck_assert_int_eq(dp_password_hash("pw", 1000, TR, TP, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(dp_password_hash("pw", 0, TR, TP, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(dp_password_hash("pw", 1, TR, TP, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(dp_password_hash("pw", TN, 0, TP, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(dp_password_hash("pw", TN, 256, TP, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(dp_password_hash("pw", TN, TR, 0, out,
	    sizeof(out)), -1);
	ck_assert_int_eq(dp_password_hash("pw", TN, TR, 300, out,
	    sizeof(out)), -1);
	/* 2^32 would be truncated by libscrypt's uint32_t N. */
	ck_assert_int_eq(dp_password_hash("pw", (uint64_t)1 << 32, TR, TP,
	    out, sizeof(out)), -1);
	/* More memory than we allow (128 * r * N > 1 GiB). */
	ck_assert_int_eq(dp_password_hash("pw", (uint64_t)1 << 21, TR, TP,
	    out, sizeof(out)), -1);
	/* Output too small. */
	ck_assert_int_eq(dp_password_hash("pw", TN, TR, TP, small,
	    sizeof(small)), -1);
	ck_assert_int_eq(dp_password_hash(NULL, TN, TR, TP, out,
	    sizeof(out)), -1);
}
END_TEST

START_TEST(test_password_check_match)
{
	char	 mcf[128], copy[128];

	ck_assert_int_eq(dp_password_hash("correct horse", TN, TR, TP, mcf,
	    sizeof(mcf)), 0);
	memcpy(copy, mcf, sizeof(copy));
	ck_assert(dp_password_check(mcf, "correct horse"));
	/* libscrypt_check tokenises its input: ours must not. */
	ck_assert_str_eq(mcf, copy);
	ck_assert(dp_password_check(mcf, "correct horse"));
	ck_assert(!dp_password_check(mcf, "correct horsE"));
	ck_assert(!dp_password_check(mcf, "correct hors"));
	ck_assert(!dp_password_check(mcf, "correct horse "));
	ck_assert(!dp_password_check(mcf, ""));
	ck_assert(!dp_password_check(mcf, NULL));
	ck_assert_str_eq(mcf, copy);
}
END_TEST

START_TEST(test_password_check_unicode)
{
	char	 mcf[128];

	/* UTF-8 bytes are hashed as given: NFC and NFD differ. */
	ck_assert_int_eq(dp_password_hash("p\xc3\xa4ss", TN, TR, TP, mcf,
	    sizeof(mcf)), 0);
	ck_assert(dp_password_check(mcf, "p\xc3\xa4ss"));
	ck_assert(!dp_password_check(mcf, "pa\xcc\x88ss"));
	ck_assert(!dp_password_check(mcf, "pass"));
	/* Invalid UTF-8 is just bytes. */
	ck_assert_int_eq(dp_password_hash("\xff\xfe\x80", TN, TR, TP, mcf,
	    sizeof(mcf)), 0);
	ck_assert(dp_password_check(mcf, "\xff\xfe\x80"));
}
END_TEST

START_TEST(test_password_check_huge)
{
	char	 mcf[128];
	char	*pw;
	size_t	 n = 1024 * 1024;

	pw = malloc(n + 1);
	ck_assert_ptr_nonnull(pw);
	memset(pw, 'a', n);
	pw[n] = '\0';
	ck_assert_int_eq(dp_password_hash(pw, TN, TR, TP, mcf, sizeof(mcf)),
	    0);
	ck_assert(dp_password_check(mcf, pw));
	pw[n - 1] = 'b';
	ck_assert(!dp_password_check(mcf, pw));
	free(pw);
}
END_TEST

START_TEST(test_password_check_malformed)
{
	char	 good[128], bad[300];
	size_t	 i, len;
	static const char *const junk[] = {
		"", "$", "$s1", "$s1$", "$s1$0a0801", "$s1$0a0801$",
		"$s1$0a0801$$", "$2b$10$abcdefghijklmnopqrstuv",
		"plaintext-password", "$s1$zz0801$c2FsdA==$aGFzaA==",
		/* N = 2^31: beyond what libscrypt or we allow. */
		"$s1$1f0801$c2FsdA==$aGFzaA==",
	};

	for (i = 0; i < DP_NITEMS(junk); i++)
		ck_assert_msg(!dp_password_check(junk[i], ""),
		    "accepted %s", junk[i]);
	ck_assert(!dp_password_check(NULL, "pw"));

	ck_assert_int_eq(dp_password_hash("pw", TN, TR, TP, good,
	    sizeof(good)), 0);
	len = strlen(good);
	/* Every truncation of a good hash fails, none crashes. */
	for (i = 0; i < len; i++) {
		memcpy(bad, good, i);
		bad[i] = '\0';
		ck_assert_msg(!dp_password_check(bad, "pw"), "len %zu", i);
	}
	/* Changing one character of the hash part fails. */
	memcpy(bad, good, len + 1);
	bad[len - 5] = bad[len - 5] == 'A' ? 'B' : 'A';
	ck_assert(!dp_password_check(bad, "pw"));
	/* Changing the parameters fails (different key). */
	memcpy(bad, good, len + 1);
	bad[5] = 'b';	/* log2 N 10 -> 11 */
	ck_assert(!dp_password_check(bad, "pw"));
	/* Trailing junk and an overlong string fail. */
	snprintf(bad, sizeof(bad), "%s$x", good);
	ck_assert(!dp_password_check(bad, "pw"));
	memset(bad, 'A', sizeof(bad) - 1);
	memcpy(bad, good, len);
	bad[sizeof(bad) - 1] = '\0';
	ck_assert(!dp_password_check(bad, "pw"));
	/* The untouched one still matches. */
	ck_assert(dp_password_check(good, "pw"));
}
END_TEST

START_TEST(test_password_needs_rehash)
{
	char	 mcf[128];

	ck_assert_int_eq(dp_password_hash("pw", TN, TR, TP, mcf,
	    sizeof(mcf)), 0);
	ck_assert(!dp_password_needs_rehash(mcf, TN, TR, TP));
	ck_assert(dp_password_needs_rehash(mcf, 2 * TN, TR, TP));
	ck_assert(dp_password_needs_rehash(mcf, TN / 2, TR, TP));
	ck_assert(dp_password_needs_rehash(mcf, TN, TR + 1, TP));
	ck_assert(dp_password_needs_rehash(mcf, TN, TR, TP + 1));
	ck_assert(dp_password_needs_rehash(mcf, 1000, TR, TP));
	ck_assert(dp_password_needs_rehash("", TN, TR, TP));
	ck_assert(dp_password_needs_rehash(NULL, TN, TR, TP));
	ck_assert(dp_password_needs_rehash("$s1$0a0801$", TN, TR, TP));

	ck_assert_int_eq(dp_password_hash("pw", 2048, 4, 2, mcf,
	    sizeof(mcf)), 0);
	ck_assert(dp_startswith(mcf, "$s1$0b0402$"));
	ck_assert(!dp_password_needs_rehash(mcf, 2048, 4, 2));
	ck_assert(dp_password_needs_rehash(mcf, 2048, 2, 4));
	ck_assert(dp_password_check(mcf, "pw"));
}
END_TEST

START_TEST(test_password_default_cost)
{
	char	 mcf[128];

	/* The production default, DESIGN.md 4: N=32768 r=8 p=1. */
	ck_assert_int_eq(dp_password_hash("s3cret!", 32768, 8, 1, mcf,
	    sizeof(mcf)), 0);
	ck_assert(dp_startswith(mcf, "$s1$0f0801$"));
	ck_assert(dp_password_check(mcf, "s3cret!"));
	ck_assert(!dp_password_check(mcf, "s3cret?"));
	ck_assert(!dp_password_needs_rehash(mcf, 32768, 8, 1));
	ck_assert(dp_password_needs_rehash(mcf, 16384, 8, 1));
}
END_TEST

START_TEST(test_password_known_hash)
{
	/*
	 * Known answers from other implementations, so stored hashes
	 * keep verifying: one made by libscrypt_hash directly, one built
	 * by hand from Python's hashlib.scrypt (salt "DevPocketSalt16!",
	 * N=2048 r=8 p=2, UTF-8 password).
	 */
	static const char	 lib[] = "$s1$0a0801$Gh6KAMhsW6SMZNk8KnTr1w=="
	    "$KrZy6iOGC9VXubg9ofRVCElhIIXFBpr8dcfYM4PkU3GDWFMjgT2rlrn527MRHIA4"
	    "ejnB/O+U7BlEzhoaqRYdXQ==";
	static const char	 py[] = "$s1$0b0802$RGV2UG9ja2V0U2FsdDE2IQ=="
	    "$fIcGFFpVWr24/tUSd6TrMpk2A4mSL+gDjAOvl8acFk/vf1kSw08uUJ7uk2xZ9/6X"
	    "K3pV6/8eMt/xF2PPlbqEbA==";
	char			 mcf[128];

	ck_assert(dp_password_check(lib, "pw"));
	ck_assert(!dp_password_check(lib, "pW"));
	ck_assert(dp_password_check(py, "p\xc3\xa4ssw\xc3\xb6rd"));
	ck_assert(!dp_password_check(py, "passwort"));
	ck_assert(!dp_password_needs_rehash(py, 2048, 8, 2));
	/* libscrypt's own default parameters round-trip too. */
	ck_assert_int_eq(dp_password_hash("interop", 16384, 8, 16, mcf,
	    sizeof(mcf)), 0);
	ck_assert(dp_startswith(mcf, "$s1$0e0810$"));
	ck_assert(dp_password_check(mcf, "interop"));
}
END_TEST

static Suite *
password_suite(void)
{
	Suite	*s = suite_create("password");
	TCase	*tc;

	tc = tcase_create("hash");
	tcase_add_test(tc, test_password_hash_format);
	tcase_add_test(tc, test_password_hash_refuse);
	suite_add_tcase(s, tc);
	tc = tcase_create("check");
	tcase_add_test(tc, test_password_check_match);
	tcase_add_test(tc, test_password_check_unicode);
	suite_add_tcase(s, tc);
	tc = tcase_create("check_huge");
	tcase_add_test(tc, test_password_check_huge);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tc = tcase_create("check_malformed");
	tcase_add_test(tc, test_password_check_malformed);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	tc = tcase_create("needs_rehash");
	tcase_add_test(tc, test_password_needs_rehash);
	suite_add_tcase(s, tc);
	tc = tcase_create("default_cost");
	tcase_add_test(tc, test_password_default_cost);
	tcase_add_test(tc, test_password_known_hash);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(password_suite());
	int	 nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
