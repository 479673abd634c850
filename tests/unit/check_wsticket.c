/* tests/unit/check_wsticket.c: the admission ticket: round trip, forgeries, hostile input */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "wsticket.h"

static const char	 key[] = "0123456789abcdef0123456789abcdef";
static const char	 token[] = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig";
#define NOW		 1800000000

static void
sample(struct dp_wsticket *t)
{
	memset(t, 0, sizeof(*t));
	t->kind = DP_WSK_TERMINAL;
	memcpy(t->user.id, "aaaaaaaaaaaaaaaaaaaaaaaa", 25);
	memcpy(t->user.sid, "bbbbbbbbbbbbbbbbbbbbbbbb", 25);
	t->user.verified = true;
	memcpy(t->slot, "cccccccccccccccccccccccc", 25);
	memcpy(t->session, "dddddddddddddddddddddddd", 25);
	memcpy(t->env.id, "eeeeeeeeeeeeeeeeeeeeeeee", 25);
	t->env.name = (char *)"my env \"quoted\" é";
	t->env.template = (char *)"python";
	t->env.status = (char *)"running";
	t->env.image = (char *)"python:3.12";
	t->env.port = 8080;
	t->env.installation_completed = true;
	t->env.cluster_id = (char *)"ffffffffffffffffffffffff";
	t->env.provider = (char *)"local";
	t->exp = NOW + DP_WSTICKET_TTL;
}

static int
open_it(const char *tk, const char *tok, int64_t now)
{
	struct dp_wsticket	 t;
	struct dp_err		 err = { 0 };
	int			 rc;

	rc = dp_wsticket_open(tk, key, strlen(key), tok, now, &t, &err);
	if (rc == 0)
		dp_wsticket_release(&t);
	else
		ck_assert_str_ne(err.msg, "");
	return rc;
}

/* A ticket whose payload is this JSON, signed with OpenSSL's HMAC. */
static void
sign_json(struct dp_buf *out, const char *json, size_t len)
{
	unsigned char	 sub[32], mac[32];

	dp_buf_reset(out);
	dp_b64url_encode(out, json, len);
	dp_hmac_sha256(key, strlen(key), "devpocket ws ticket v1",
	    strlen("devpocket ws ticket v1"), sub);
	dp_hmac_sha256(sub, sizeof(sub), out->s, out->len, mac);
	dp_buf_addc(out, '.');
	dp_b64url_encode(out, mac, sizeof(mac));
}

START_TEST(test_wsticket_round_trip)
{
	struct dp_wsticket	 in, t;
	struct dp_buf		 b = { 0 };
	struct dp_err		 err = { 0 };

	sample(&in);
	dp_wsticket_make(&b, key, strlen(key), token, &in);
	ck_assert_ptr_nonnull(strchr(b.s, '.'));
	ck_assert_uint_lt(b.len, DP_WSTICKET_MAX);
	ck_assert_int_eq(dp_wsticket_open(b.s, key, strlen(key), token, NOW,
	    &t, &err), 0);
	ck_assert_int_eq(t.kind, DP_WSK_TERMINAL);
	ck_assert_str_eq(t.user.id, in.user.id);
	ck_assert_str_eq(t.user.sid, in.user.sid);
	ck_assert(t.user.verified);
	ck_assert_str_eq(t.slot, in.slot);
	ck_assert_str_eq(t.session, in.session);
	ck_assert_str_eq(t.env.id, in.env.id);
	ck_assert_str_eq(t.env.name, in.env.name);
	ck_assert_str_eq(t.env.template, "python");
	ck_assert_str_eq(t.env.status, "running");
	ck_assert_str_eq(t.env.image, "python:3.12");
	ck_assert_int_eq(t.env.port, 8080);
	ck_assert(t.env.installation_completed);
	ck_assert_str_eq(t.env.cluster_id, in.env.cluster_id);
	ck_assert_str_eq(t.env.provider, "local");
	ck_assert_ptr_null(t.env.endpoint);
	ck_assert_ptr_null(t.env.kube_sealed);
	ck_assert_int_eq(t.exp, NOW + DP_WSTICKET_TTL);
	dp_wsticket_release(&t);
	/* "Full": no slot and no session, still a ticket. */
	in.slot[0] = in.session[0] = '\0';
	dp_buf_reset(&b);
	dp_wsticket_make(&b, key, strlen(key), token, &in);
	ck_assert_int_eq(dp_wsticket_open(b.s, key, strlen(key), token, NOW,
	    &t, &err), 0);
	ck_assert_str_eq(t.slot, "");
	ck_assert_str_eq(t.session, "");
	dp_wsticket_release(&t);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_wsticket_refusals)
{
	static const char other[] = "0123456789abcdef0123456789abcdeX";
	struct dp_wsticket	 in, t;
	struct dp_buf		 b = { 0 }, c = { 0 };
	struct dp_err		 err = { 0 };
	size_t			 i, dot;

	sample(&in);
	dp_wsticket_make(&b, key, strlen(key), token, &in);
	dot = (size_t)(strchr(b.s, '.') - b.s);
	/* Expired, or valid for longer than any ticket is made for. */
	ck_assert_int_eq(open_it(b.s, token, NOW + DP_WSTICKET_TTL), 0);
	ck_assert_int_eq(open_it(b.s, token, NOW + DP_WSTICKET_TTL + 1), -1);
	ck_assert_int_eq(open_it(b.s, token, NOW - 100), -1);
	/* Another token, another key. */
	ck_assert_int_eq(open_it(b.s, "eyJhbGciOiJIUzI1NiJ9.x.y", NOW), -1);
	ck_assert_int_eq(open_it(b.s, "", NOW), -1);
	ck_assert_int_eq(dp_wsticket_open(b.s, other, strlen(other), token,
	    NOW, &t, &err), -1);
	ck_assert_int_eq(dp_wsticket_open(b.s, key, strlen(key) - 1, token,
	    NOW, &t, &err), -1);
	/* Every single changed byte of the payload or the MAC. */
	for (i = 0; i < b.len; i++) {
		if (i == dot)
			continue;
		dp_buf_reset(&c);
		dp_buf_add(&c, b.s, b.len);
		c.s[i] = c.s[i] == 'A' ? 'B' : 'A';
		ck_assert_msg(open_it(c.s, token, NOW) == -1, "byte %zu", i);
	}
	/* Cut anywhere. */
	for (i = 0; i < b.len; i++) {
		dp_buf_reset(&c);
		dp_buf_add(&c, b.s, i);
		ck_assert_msg(open_it(c.s, token, NOW) == -1, "cut at %zu", i);
	}
	/* The MAC of the payload alone, the payload twice, garbage. */
	ck_assert_int_eq(open_it("", token, NOW), -1);
	ck_assert_int_eq(open_it(".", token, NOW), -1);
	ck_assert_int_eq(open_it("abc", token, NOW), -1);
	ck_assert_int_eq(open_it("%%%.%%%", token, NOW), -1);
	ck_assert_int_eq(open_it(NULL, token, NOW), -1);
	ck_assert_int_eq(open_it(b.s, NULL, NOW), -1);
	/* Huge. */
	dp_buf_reset(&c);
	for (i = 0; i < DP_WSTICKET_MAX + 10; i++)
		dp_buf_addc(&c, 'A');
	ck_assert_int_eq(open_it(c.s, token, NOW), -1);
	dp_buf_release(&b);
	dp_buf_release(&c);
}
END_TEST

/*
 * Correctly signed, but not what authorize-ws writes: refused.  "good"
 * is accepted (the mutations below are what make the others fail).
 */
#define TH	"\"th\":\"%s\""
#define ENV	"\"env\":{\"id\":\"eeeeeeeeeeeeeeeeeeeeeeee\",\"name\":\"n\"," \
		"\"template\":\"t\",\"status\":\"running\"," \
		"\"installation_completed\":true,\"image\":\"i\",\"port\":0," \
		"\"cluster_id\":\"c\",\"provider\":\"local\"}"
#define HEAD	"\"v\":1,\"exp\":1800000005," TH ",\"kind\":\"terminal\"," \
		"\"user\":\"aaaaaaaaaaaaaaaaaaaaaaaa\"," \
		"\"sid\":\"bbbbbbbbbbbbbbbbbbbbbbbb\",\"verified\":true,"
#define SLOTS	"\"slot\":\"cccccccccccccccccccccccc\"," \
		"\"session\":\"dddddddddddddddddddddddd\","
START_TEST(test_wsticket_bad_payloads)
{
	static const struct {
		const char	*name, *json;
		int		 want;
	} cases[] = {
		{ "good", "{" HEAD SLOTS ENV "}", 0 },
		{ "array", "[]", -1 },
		{ "number", "1", -1 },
		{ "string", "\"x\"", -1 },
		{ "null", "null", -1 },
		{ "empty", "{}", -1 },
		{ "version 2", "{\"v\":2," TH "}", -1 },
		{ "token hash with more after it", "{\"v\":1,"
		    "\"exp\":1800000005,\"th\":\"%s00\",\"kind\":\"terminal\","
		    "\"user\":\"aaaaaaaaaaaaaaaaaaaaaaaa\","
		    "\"sid\":\"bbbbbbbbbbbbbbbbbbbbbbbb\",\"verified\":true,"
		    SLOTS ENV "}", -1 },
		{ "exp as text", "{\"v\":1,\"exp\":\"1800000005\"," TH ","
		    "\"kind\":\"terminal\"," SLOTS ENV "}", -1 },
		{ "kind unknown", "{" HEAD SLOTS ENV ",\"kind\":\"shell\"}", -1 },
		{ "user not an id", "{" HEAD SLOTS ENV
		    ",\"user\":\"../../etc/passwd\"}", -1 },
		{ "verified as text", "{" HEAD SLOTS ENV
		    ",\"verified\":\"true\"}", -1 },
		{ "slot without session", "{" HEAD
		    "\"slot\":\"cccccccccccccccccccccccc\",\"session\":\"\","
		    ENV "}", -1 },
		{ "no env", "{" HEAD SLOTS "\"x\":1}", -1 },
		{ "env port too big", "{" HEAD SLOTS ENV
		    ",\"env\":{\"id\":\"eeeeeeeeeeeeeeeeeeeeeeee\",\"port\":70000}}",
		    -1 },
		{ "too deep", "{" HEAD SLOTS ENV ",\"z\":[[[[[[1]]]]]]}", -1 },
		{ "NUL inside", "{" HEAD SLOTS ENV "}\\u0000", -1 },
	};
	struct dp_buf	 b = { 0 };
	char		 th[65], json[2048];
	size_t		 i;

	dp_sha256_hex(token, strlen(token), th);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(json, sizeof(json), cases[i].json, th);
		sign_json(&b, json, strlen(json));
		ck_assert_msg(open_it(b.s, token, NOW) == cases[i].want,
		    "%s", cases[i].name);
	}
	/* A raw NUL byte in the payload. */
	snprintf(json, sizeof(json), "{" HEAD SLOTS ENV "}", th);
	sign_json(&b, json, strlen(json) + 1);
	ck_assert_int_eq(open_it(b.s, token, NOW), -1);
	dp_buf_release(&b);
}
END_TEST

/* The signer (nettle) and OpenSSL's HMAC agree: the format is HMAC-SHA256. */
START_TEST(test_wsticket_mac_is_hmac_sha256)
{
	struct dp_wsticket	 in;
	struct dp_buf		 b = { 0 }, want = { 0 };
	char			*dot;

	sample(&in);
	dp_wsticket_make(&b, key, strlen(key), token, &in);
	dot = strchr(b.s, '.');
	*dot = '\0';
	{
		char	*payload = dp_xstrdup(b.s);
		struct dp_buf	 js = { 0 };

		ck_assert_int_eq(dp_b64_decode(&js, payload, strlen(payload),
		    false), 0);
		sign_json(&want, js.s, js.len);
		free(payload);
		dp_buf_release(&js);
	}
	*dot = '.';
	ck_assert_str_eq(b.s, want.s);
	dp_buf_release(&b);
	dp_buf_release(&want);
}
END_TEST

static Suite *
wsticket_suite(void)
{
	Suite	*s = suite_create("wsticket");
	TCase	*tc = tcase_create("ticket");

	tcase_add_test(tc, test_wsticket_round_trip);
	tcase_add_test(tc, test_wsticket_refusals);
	tcase_add_test(tc, test_wsticket_bad_payloads);
	tcase_add_test(tc, test_wsticket_mac_is_hmac_sha256);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(wsticket_suite());
	int	 nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
