/* tests/unit/check_jwt.c: access tokens, and the forgeries they must resist */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/ec.h>
/* lib/jwt.h shadows libjwt's <jwt.h> on the -Ilib path. */
#include <jwt.h>

#include "crypto.h"
#include "jwt.h"

#define KEY	"test-jwt-key-0123456789abcdef-0123456789"
#define KLEN	(sizeof(KEY) - 1)
#define KEY2	"test-jwt-key-0123456789abcdef-012345678X"
#define ISS	"devpocket"
#define SUB	"0123456789abcdef01234567"
#define SID	"89abcdef0123456789abcdef"
#define NOW	INT64_C(1700000000)
#define TTL	1800

/* Verify with the test key, issuer and NOW; 0 or -1. */
static int
verify(const char *tok)
{
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };

	return dp_jwt_verify_access(tok, KEY, KLEN, ISS, NOW, &c, &err);
}

static void
b64url_str(struct dp_buf *b, const char *s, size_t len)
{
	dp_b64url_encode(b, s, len);
}

/*
 * Hand-build header.claims.sig.  With key, sig is HMAC-SHA256 of the
 * first two parts; without, sig is the given text (maybe "" or NULL
 * for no third part at all).
 */
static char *
mk(const char *hdr, size_t hlen, const char *cl, size_t clen,
    const void *key, size_t klen, const char *sig)
{
	struct dp_buf	 b = { 0 };
	unsigned char	 mac[32];

	b64url_str(&b, hdr, hlen);
	dp_buf_addc(&b, '.');
	b64url_str(&b, cl, clen);
	if (key != NULL) {
		dp_hmac_sha256(key, klen, b.s, b.len, mac);
		dp_buf_addc(&b, '.');
		dp_b64url_encode(&b, mac, sizeof(mac));
	} else if (sig != NULL) {
		dp_buf_addc(&b, '.');
		dp_buf_adds(&b, sig);
	}
	return dp_buf_detach(&b);
}

static char *
mks(const char *hdr, const char *cl, const void *key, size_t klen)
{
	return mk(hdr, strlen(hdr), cl, strlen(cl), key, klen, NULL);
}

static struct json_object *
base_claims(void)
{
	struct json_object	*o = json_object_new_object();

	json_object_object_add(o, "iss", json_object_new_string(ISS));
	json_object_object_add(o, "sub", json_object_new_string(SUB));
	json_object_object_add(o, "sid", json_object_new_string(SID));
	json_object_object_add(o, "jti",
	    json_object_new_string("00112233445566778899aabbccddeeff"));
	json_object_object_add(o, "type", json_object_new_string("access"));
	json_object_object_add(o, "iat", json_object_new_int64(NOW - 10));
	json_object_object_add(o, "exp", json_object_new_int64(NOW + TTL));
	return o;
}

static const char *
js(struct json_object *o)
{
	return json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
}

/* Base claims with one member replaced (v) or removed (v == NULL). */
static char *
mk_claim(const char *name, struct json_object *v)
{
	struct json_object	*o = base_claims();
	char			*t;

	json_object_object_del(o, name);
	if (v != NULL)
		json_object_object_add(o, name, v);
	t = mks("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", js(o), KEY, KLEN);
	json_object_put(o);
	return t;
}

static void
assert_claim_rejected(const char *name, struct json_object *v)
{
	char	*t = mk_claim(name, v);

	ck_assert_msg(verify(t) == -1, "accepted %s in %s", name, t);
	free(t);
}

START_TEST(test_jwt_roundtrip)
{
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };
	char			*t, *t2;
	size_t			 i;

	t = dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW, TTL);
	ck_assert_ptr_nonnull(t);
	memset(&c, 0, sizeof(c));
	ck_assert_msg(dp_jwt_verify_access(t, KEY, KLEN, ISS, NOW, &c,
	    &err) == 0, "%s", err.msg);
	ck_assert_str_eq(c.sub, SUB);
	ck_assert_str_eq(c.sid, SID);
	ck_assert_uint_eq(strlen(c.jti), 32);
	for (i = 0; i < 32; i++)
		ck_assert((c.jti[i] >= '0' && c.jti[i] <= '9') ||
		    (c.jti[i] >= 'a' && c.jti[i] <= 'f'));
	ck_assert_int_eq(c.iat, NOW);
	ck_assert_int_eq(c.exp, NOW + TTL);
	/* Valid up to the last second before exp. */
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, ISS,
	    NOW + TTL - 1, &c, &err), 0);
	/* Another token has another jti. */
	t2 = dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW, TTL);
	ck_assert_ptr_nonnull(t2);
	ck_assert_str_ne(t, t2);
	free(t);
	free(t2);
	/* A hand-built token with every claim right verifies too. */
	t = mk_claim("type", json_object_new_string("access"));
	ck_assert_int_eq(verify(t), 0);
	free(t);
}
END_TEST

/* The cache of verified tokens answers only what a full check would. */
START_TEST(test_jwt_cache)
{
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };
	uint64_t		 h0;
	char			*t, *f;
	size_t			 n;

	dp_jwt_cache_clear();
	t = dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW, TTL);
	ck_assert_ptr_nonnull(t);
	h0 = dp_jwt_cache_hits();
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, ISS, NOW, &c,
	    &err), 0);
	ck_assert_uint_eq(dp_jwt_cache_hits(), h0);	/* the first: a miss */
	memset(&c, 0, sizeof(c));
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, ISS, NOW + 5, &c,
	    &err), 0);
	ck_assert_uint_eq(dp_jwt_cache_hits(), h0 + 1);
	ck_assert_str_eq(c.sub, SUB);
	ck_assert_str_eq(c.sid, SID);
	ck_assert_int_eq(c.exp, NOW + TTL);
	/* Another key, another issuer: no answer from the cache. */
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY2, KLEN, ISS, NOW, &c,
	    &err), -1);
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, "other", NOW, &c,
	    &err), -1);
	/* Expiry is checked on every hit. */
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, ISS, NOW + TTL,
	    &c, &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "expired"));
	/* One byte changed in the signature, or the token cut short. */
	f = strdup(t);
	n = strlen(f);
	f[n - 2] = f[n - 2] == 'A' ? 'B' : 'A';
	ck_assert_int_eq(dp_jwt_verify_access(f, KEY, KLEN, ISS, NOW, &c,
	    &err), -1);
	f[n - 2] = t[n - 2];
	f[n - 1] = '\0';
	ck_assert_int_eq(dp_jwt_verify_access(f, KEY, KLEN, ISS, NOW, &c,
	    &err), -1);
	/* And the real one still verifies (from the cache). */
	h0 = dp_jwt_cache_hits();
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, ISS, NOW, &c,
	    &err), 0);
	ck_assert_uint_eq(dp_jwt_cache_hits(), h0 + 1);
	dp_jwt_cache_clear();
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, ISS, NOW, &c,
	    &err), 0);
	ck_assert_uint_eq(dp_jwt_cache_hits(), h0 + 1);
	dp_jwt_cache_clear();
	free(f);
	free(t);
}
END_TEST

START_TEST(test_jwt_issue_refuse)
{
	ck_assert_ptr_null(dp_jwt_issue_access(KEY, KLEN, ISS, "nope", SID,
	    NOW, TTL));
	ck_assert_ptr_null(dp_jwt_issue_access(KEY, KLEN, ISS, SUB,
	    "0123456789ABCDEF01234567", NOW, TTL));
	ck_assert_ptr_null(dp_jwt_issue_access(KEY, 0, ISS, SUB, SID, NOW,
	    TTL));
	ck_assert_ptr_null(dp_jwt_issue_access(NULL, 32, ISS, SUB, SID, NOW,
	    TTL));
	ck_assert_ptr_null(dp_jwt_issue_access(KEY, KLEN, NULL, SUB, SID,
	    NOW, TTL));
	ck_assert_ptr_null(dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW,
	    0));
	ck_assert_ptr_null(dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW,
	    -5));
	ck_assert_ptr_null(dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID,
	    INT64_MAX - 1, TTL));
}
END_TEST

START_TEST(test_jwt_alg_none)
{
	struct json_object	*o = base_claims();
	struct dp_buf		 b = { 0 };
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };
	const char		*cl = js(o);
	static const char *const hdrs[] = {
		"{\"alg\":\"none\"}",
		"{\"alg\":\"none\",\"typ\":\"JWT\"}",
		"{\"alg\":\"None\"}",
		"{\"alg\":\"nOnE\"}",
		"{\"alg\":\"NONE\"}",
		"{\"typ\":\"JWT\"}",
		"{\"alg\":null}",
		"{\"alg\":\"\"}",
		"{\"alg\":256}",
		"{\"alg\":[\"HS256\"]}",
		"{\"alg\":\"HS256 \"}",
		"{\"alg\":\"hs256\"}",
		"{\"alg\":\"HS256\",\"alg\":\"none\"}",
		"[\"HS256\"]",
		"\"HS256\"",
		"{}",
	};
	char			*t;
	size_t			 i;

	/* The classic literal: eyJhbGciOiJub25lIn0 is {"alg":"none"}. */
	dp_buf_adds(&b, "eyJhbGciOiJub25lIn0.");
	b64url_str(&b, cl, strlen(cl));
	dp_buf_addc(&b, '.');
	ck_assert_int_eq(verify(b.s), -1);
	/* Without the final dot. */
	b.s[--b.len] = '\0';
	ck_assert_int_eq(verify(b.s), -1);
	/* Also with a NULL or empty key, however the caller got there. */
	dp_buf_addc(&b, '.');
	ck_assert_int_eq(dp_jwt_verify_access(b.s, NULL, 0, ISS, NOW, &c,
	    &err), -1);
	ck_assert_int_eq(dp_jwt_verify_access(b.s, "", 0, ISS, NOW, &c,
	    &err), -1);
	dp_buf_release(&b);

	for (i = 0; i < DP_NITEMS(hdrs); i++) {
		/* Unsigned, empty signature. */
		t = mk(hdrs[i], strlen(hdrs[i]), cl, strlen(cl), NULL, 0, "");
		ck_assert_msg(verify(t) == -1, "accepted %s unsigned", hdrs[i]);
		free(t);
		/* No third part. */
		t = mk(hdrs[i], strlen(hdrs[i]), cl, strlen(cl), NULL, 0, NULL);
		ck_assert_msg(verify(t) == -1, "accepted %s 2-part", hdrs[i]);
		free(t);
		/* Junk signature. */
		t = mk(hdrs[i], strlen(hdrs[i]), cl, strlen(cl), NULL, 0,
		    "c2lnbmF0dXJl");
		ck_assert_msg(verify(t) == -1, "accepted %s junk sig", hdrs[i]);
		free(t);
		/* Even correctly HMAC-signed with our key: alg is wrong. */
		t = mk(hdrs[i], strlen(hdrs[i]), cl, strlen(cl), KEY, KLEN,
		    NULL);
		ck_assert_msg(verify(t) == -1, "accepted %s signed", hdrs[i]);
		free(t);
	}
	json_object_put(o);
}
END_TEST

START_TEST(test_jwt_header_checks)
{
	struct json_object	*o = base_claims();
	const char		*cl = js(o);
	char			*t;

	/* Control: the plain headers pass. */
	t = mks("{\"alg\":\"HS256\"}", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), 0);
	free(t);
	t = mks("{\"typ\":\"JWT\",\"alg\":\"HS256\"}", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), 0);
	free(t);
	/* typ other than JWT, crit, header not JSON / not UTF-8. */
	t = mks("{\"alg\":\"HS256\",\"typ\":\"JWS\"}", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mks("{\"alg\":\"HS256\",\"typ\":7}", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mks("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}", cl, KEY,
	    KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mks("{\"alg\":\"HS256\"", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mks("{\"alg\":\"HS256\"}x", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mks("{\"alg\":\"HS256\",\"x\":\"\xff\"}", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mk("{\"alg\":\"HS256\"}\0", 16, cl, strlen(cl), KEY, KLEN, NULL);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	/* Other HMAC algorithms, with our key. */
	t = mks("{\"alg\":\"HS512\"}", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mks("{\"alg\":\"HS384\"}", cl, KEY, KLEN);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	json_object_put(o);
}
END_TEST

START_TEST(test_jwt_wrong_key)
{
	char	*t;

	t = dp_jwt_issue_access(KEY2, KLEN, ISS, SUB, SID, NOW, TTL);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	/* A prefix of the key, or the key plus a byte, is another key. */
	t = dp_jwt_issue_access(KEY, KLEN - 1, ISS, SUB, SID, NOW, TTL);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = dp_jwt_issue_access(KEY "!", KLEN + 1, ISS, SUB, SID, NOW, TTL);
	ck_assert_int_eq(verify(t), -1);
	free(t);
}
END_TEST

static char *
pem_of(EVP_PKEY *pk, int priv)
{
	BIO		*bio = BIO_new(BIO_s_mem());
	char		*p, *s;
	long		 n;

	ck_assert_ptr_nonnull(bio);
	if (priv)
		ck_assert_int_eq(PEM_write_bio_PrivateKey(bio, pk, NULL, NULL,
		    0, NULL, NULL), 1);
	else
		ck_assert_int_eq(PEM_write_bio_PUBKEY(bio, pk), 1);
	n = BIO_get_mem_data(bio, &p);
	s = dp_xstrndup(p, (size_t)n);
	BIO_free(bio);
	return s;
}

/* A token signed by libjwt itself with an asymmetric key. */
static char *
libjwt_token(jwt_alg_t alg, const char *pem)
{
	struct json_object	*o = base_claims();
	jwt_t			*j = NULL;
	char			*t, *r;

	ck_assert_int_eq(jwt_new(&j), 0);
	ck_assert_int_eq(jwt_set_alg(j, alg, (const unsigned char *)pem,
	    (int)strlen(pem)), 0);
	ck_assert_int_eq(jwt_add_grants_json(j, js(o)), 0);
	t = jwt_encode_str(j);
	ck_assert_ptr_nonnull(t);
	r = dp_xstrdup(t);
	free(t);
	jwt_free(j);
	json_object_put(o);
	return r;
}

START_TEST(test_jwt_alg_confusion)
{
	struct json_object	*o = base_claims();
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };
	EVP_PKEY		*rsa, *ec;
	char			*priv, *pub, *ecpriv, *ecpub, *t;
	const char		*cl = js(o);
	static const char *const asym[] = {
		"{\"alg\":\"RS256\",\"typ\":\"JWT\"}",
		"{\"alg\":\"RS512\",\"typ\":\"JWT\"}",
		"{\"alg\":\"ES256\",\"typ\":\"JWT\"}",
		"{\"alg\":\"PS256\",\"typ\":\"JWT\"}",
	};
	size_t			 i;

	rsa = EVP_RSA_gen(2048);
	ck_assert_ptr_nonnull(rsa);
	ec = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(ec);
	priv = pem_of(rsa, 1);
	pub = pem_of(rsa, 0);
	ecpriv = pem_of(ec, 1);
	ecpub = pem_of(ec, 0);

	/* Real RS256 / RS512 / ES256 tokens made by libjwt. */
	t = libjwt_token(JWT_ALG_RS256, priv);
	ck_assert_int_eq(verify(t), -1);
	/* ... even if the server's "key" were the RSA public key. */
	ck_assert_int_eq(dp_jwt_verify_access(t, pub, strlen(pub), ISS, NOW,
	    &c, &err), -1);
	free(t);
	t = libjwt_token(JWT_ALG_RS512, priv);
	ck_assert_int_eq(verify(t), -1);
	ck_assert_int_eq(dp_jwt_verify_access(t, pub, strlen(pub), ISS, NOW,
	    &c, &err), -1);
	free(t);
	t = libjwt_token(JWT_ALG_ES256, ecpriv);
	ck_assert_int_eq(verify(t), -1);
	ck_assert_int_eq(dp_jwt_verify_access(t, ecpub, strlen(ecpub), ISS,
	    NOW, &c, &err), -1);
	free(t);

	/*
	 * The classic confusion: header says RS256 etc., signature is
	 * HMAC-SHA256 keyed with the public key PEM.  Refused whether the
	 * verifier's secret is our key or (misconfigured) that PEM.
	 */
	for (i = 0; i < DP_NITEMS(asym); i++) {
		t = mks(asym[i], cl, pub, strlen(pub));
		ck_assert_int_eq(verify(t), -1);
		ck_assert_msg(dp_jwt_verify_access(t, pub, strlen(pub), ISS,
		    NOW, &c, &err) == -1, "accepted %s", asym[i]);
		free(t);
		/* And HMAC-signed with our real key. */
		t = mks(asym[i], cl, KEY, KLEN);
		ck_assert_msg(verify(t) == -1, "accepted %s", asym[i]);
		free(t);
	}
	/* Control: HS256 under the PEM-as-secret does verify with it. */
	t = mks("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", cl, pub, strlen(pub));
	ck_assert_int_eq(dp_jwt_verify_access(t, pub, strlen(pub), ISS, NOW,
	    &c, &err), 0);
	free(t);

	free(priv);
	free(pub);
	free(ecpriv);
	free(ecpub);
	EVP_PKEY_free(rsa);
	EVP_PKEY_free(ec);
	json_object_put(o);
}
END_TEST

START_TEST(test_jwt_expiry)
{
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };
	char			*t;

	t = mk_claim("exp", json_object_new_int64(NOW));
	ck_assert_int_eq(dp_jwt_verify_access(t, KEY, KLEN, ISS, NOW, &c,
	    &err), -1);
	ck_assert_ptr_nonnull(strstr(err.msg, "expired"));
	free(t);
	t = mk_claim("exp", json_object_new_int64(NOW - 1));
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mk_claim("exp", json_object_new_int64(NOW + 1));
	ck_assert_int_eq(verify(t), 0);
	free(t);
	/* exp before iat, negative times. */
	t = mk_claim("iat", json_object_new_int64(NOW + TTL + 1));
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mk_claim("iat", json_object_new_int64(-1));
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = mk_claim("exp", json_object_new_int64(-1));
	ck_assert_int_eq(verify(t), -1);
	free(t);
	t = dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW - TTL, TTL);
	ck_assert_int_eq(verify(t), -1);
	free(t);
}
END_TEST

START_TEST(test_jwt_missing_claims)
{
	static const char *const names[] = {
		"iss", "sub", "sid", "jti", "type", "iat", "exp",
	};
	size_t	 i;

	for (i = 0; i < DP_NITEMS(names); i++)
		assert_claim_rejected(names[i], NULL);
}
END_TEST

START_TEST(test_jwt_claim_values)
{
	assert_claim_rejected("type", json_object_new_string("refresh"));
	assert_claim_rejected("type", json_object_new_string("Access"));
	assert_claim_rejected("type", json_object_new_string(""));
	assert_claim_rejected("iss", json_object_new_string("evil"));
	assert_claim_rejected("iss", json_object_new_string("DevPocket"));
	assert_claim_rejected("iss", json_object_new_string("devpocket "));
	assert_claim_rejected("iss", json_object_new_string_len(
	    "devpocket\0x", 11));
	assert_claim_rejected("sub", json_object_new_string("admin"));
	assert_claim_rejected("sub", json_object_new_string(
	    "0123456789ABCDEF01234567"));
	assert_claim_rejected("sub", json_object_new_string(
	    "0123456789abcdef0123456"));
	assert_claim_rejected("sub", json_object_new_string(
	    "0123456789abcdef012345678"));
	assert_claim_rejected("sub", json_object_new_string_len(
	    "0123456789abcdef01234567\0", 25));
	assert_claim_rejected("sub", json_object_new_string(""));
	assert_claim_rejected("sid", json_object_new_string("x"));
	assert_claim_rejected("sid", json_object_new_string(
	    "0123456789abcdef0123456g"));
	assert_claim_rejected("jti", json_object_new_string(""));
	assert_claim_rejected("jti", json_object_new_string("abc"));
	assert_claim_rejected("jti", json_object_new_string(
	    "00112233445566778899aabbccddeeff00"));
}
END_TEST

START_TEST(test_jwt_claim_types)
{
	/* Numeric strings in place of integers. */
	assert_claim_rejected("exp", json_object_new_string("9999999999"));
	assert_claim_rejected("iat", json_object_new_string("1700000000"));
	assert_claim_rejected("exp", json_object_new_double(9999999999.5));
	assert_claim_rejected("exp", json_object_new_double(1e300));
	assert_claim_rejected("exp", json_object_new_boolean(1));
	assert_claim_rejected("exp", json_object_new_null());
	assert_claim_rejected("exp", json_object_new_array());
	assert_claim_rejected("exp", json_object_new_int64(INT64_MAX));
	assert_claim_rejected("iat", json_object_new_double(NOW));
	/* Ids and strings as other types. */
	assert_claim_rejected("sub", json_object_new_int64(123456789012));
	assert_claim_rejected("sid", json_object_new_boolean(1));
	assert_claim_rejected("jti", json_object_new_int(7));
	assert_claim_rejected("type", json_object_new_boolean(1));
	assert_claim_rejected("iss", json_object_new_array());
	assert_claim_rejected("iss", json_object_new_object());
	assert_claim_rejected("iss", json_object_new_null());
}
END_TEST

START_TEST(test_jwt_claims_json)
{
	static const char *const bad[] = {
		"",
		"[]",
		"\"access\"",
		"null",
		"{",
		"{\"iss\":\"devpocket\",}",
		"{\"iss\":\"devpocket\xff\"}",
		/* Overflowing integer, then deep nesting. */
		"{\"iss\":\"devpocket\",\"sub\":\"0123456789abcdef01234567\","
		    "\"sid\":\"89abcdef0123456789abcdef\",\"jti\":"
		    "\"00112233445566778899aabbccddeeff\",\"type\":\"access\","
		    "\"iat\":1,\"exp\":99999999999999999999999}",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]"
		    "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
	};
	struct json_object	*o = base_claims();
	struct dp_buf		 b = { 0 };
	char			*t;
	size_t			 i;

	for (i = 0; i < DP_NITEMS(bad); i++) {
		t = mks("{\"alg\":\"HS256\"}", bad[i], KEY, KLEN);
		ck_assert_msg(verify(t) == -1, "accepted %s", bad[i]);
		free(t);
	}
	/* A raw NUL byte inside the claims. */
	dp_buf_adds(&b, js(o));
	b.s[b.len - 1] = ',';
	dp_buf_add(&b, "\"x\":\"\0\"}", 8);
	t = mk("{\"alg\":\"HS256\"}", 15, b.s, b.len, KEY, KLEN, NULL);
	ck_assert_int_eq(verify(t), -1);
	free(t);
	/* Control: the same with an ordinary extra claim passes. */
	dp_buf_reset(&b);
	dp_buf_adds(&b, js(o));
	b.s[b.len - 1] = ',';
	dp_buf_adds(&b, "\"x\":\"y\"}");
	t = mk("{\"alg\":\"HS256\"}", 15, b.s, b.len, KEY, KLEN, NULL);
	ck_assert_int_eq(verify(t), 0);
	free(t);
	dp_buf_release(&b);
	json_object_put(o);
}
END_TEST

START_TEST(test_jwt_tamper)
{
	static const char	 alpha[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	struct dp_access_claims	 c;
	struct dp_err		 err = { 0 };
	char			*t, *u, *dot;
	size_t			 i, len;

	t = dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW, TTL);
	ck_assert_ptr_nonnull(t);
	ck_assert_int_eq(verify(t), 0);
	len = strlen(t);
	u = dp_xstrdup(t);
	/* Every character replaced by another base64url character. */
	for (i = 0; i < len; i++) {
		if (t[i] == '.')
			continue;
		u[i] = alpha[(strchr(alpha, t[i]) - alpha + 1) % 64];
		ck_assert_msg(dp_jwt_verify_access(u, KEY, KLEN, ISS, NOW, &c,
		    &err) == -1, "accepted flip at %zu", i);
		u[i] = t[i];
	}
	/* Every truncation. */
	for (i = 0; i < len; i++) {
		u[i] = '\0';
		ck_assert_msg(verify(u) == -1, "accepted prefix %zu", i);
		u[i] = t[i];
	}
	/* A NUL byte inside ends the C string: a truncation. */
	u[len - 5] = '\0';
	ck_assert_int_eq(verify(u), -1);
	free(u);

	/* The payload swapped for another token's (different jti). */
	u = dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW, TTL);
	dot = strchr(u, '.');
	memcpy(strchr(t, '.'), dot, (size_t)(strrchr(u, '.') - dot));
	ck_assert_int_eq(verify(t), -1);
	free(u);
	free(t);
}
END_TEST

START_TEST(test_jwt_shape)
{
	struct dp_buf	 b = { 0 };
	char		 opaque[44];
	char		*t, *huge;
	size_t		 i;

	t = dp_jwt_issue_access(KEY, KLEN, ISS, SUB, SID, NOW, TTL);
	/* Extra segments, leading / trailing dots, empty parts. */
	dp_buf_printf(&b, "%s.", t);
	ck_assert_int_eq(verify(b.s), -1);
	dp_buf_reset(&b);
	dp_buf_printf(&b, "%s.abc", t);
	ck_assert_int_eq(verify(b.s), -1);
	dp_buf_reset(&b);
	dp_buf_printf(&b, "a.%s", t);
	ck_assert_int_eq(verify(b.s), -1);
	dp_buf_reset(&b);
	dp_buf_printf(&b, ".%s", t);
	ck_assert_int_eq(verify(b.s), -1);
	dp_buf_reset(&b);
	dp_buf_printf(&b, " %s", t);
	ck_assert_int_eq(verify(b.s), -1);
	dp_buf_reset(&b);
	dp_buf_printf(&b, "%s\n", t);
	ck_assert_int_eq(verify(b.s), -1);
	dp_buf_reset(&b);
	dp_buf_printf(&b, "Bearer %s", t);
	ck_assert_int_eq(verify(b.s), -1);
	/* Standard-alphabet or padded signature. */
	dp_buf_reset(&b);
	dp_buf_printf(&b, "%s=", t);
	ck_assert_int_eq(verify(b.s), -1);
	ck_assert_int_eq(verify(""), -1);
	ck_assert_int_eq(verify("."), -1);
	ck_assert_int_eq(verify(".."), -1);
	ck_assert_int_eq(verify("..."), -1);
	ck_assert_int_eq(verify("a.b.c"), -1);
	ck_assert_int_eq(verify(NULL), -1);
	free(t);

	/* An opaque refresh token presented as a bearer token. */
	for (i = 0; i < 20; i++) {
		dp_token_new(opaque);
		ck_assert_int_eq(verify(opaque), -1);
	}

	/* Huge: 1 MiB of base64url with dots. */
	huge = malloc(1024 * 1024 + 1);
	ck_assert_ptr_nonnull(huge);
	memset(huge, 'A', 1024 * 1024);
	huge[1000] = huge[2000] = '.';
	huge[1024 * 1024] = '\0';
	ck_assert_int_eq(verify(huge), -1);
	free(huge);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_jwt_size_cap)
{
	struct json_object	*o;
	char			*pad, *t;
	size_t			 n;

	/* A validly signed token just under 8 KiB passes, just over fails. */
	for (n = 5800; n <= 6300; n += 500) {
		o = base_claims();
		pad = malloc(n + 1);
		ck_assert_ptr_nonnull(pad);
		memset(pad, 'p', n);
		pad[n] = '\0';
		json_object_object_add(o, "pad", json_object_new_string(pad));
		t = mks("{\"alg\":\"HS256\"}", js(o), KEY, KLEN);
		if (strlen(t) <= 8192)
			ck_assert_msg(verify(t) == 0, "len %zu", strlen(t));
		else
			ck_assert_msg(verify(t) == -1, "len %zu", strlen(t));
		free(t);
		free(pad);
		json_object_put(o);
	}
}
END_TEST

static Suite *
jwt_suite(void)
{
	Suite	*s = suite_create("jwt");
	TCase	*tc;

	tc = tcase_create("roundtrip");
	tcase_add_test(tc, test_jwt_roundtrip);
	tcase_add_test(tc, test_jwt_cache);
	tcase_add_test(tc, test_jwt_issue_refuse);
	suite_add_tcase(s, tc);
	tc = tcase_create("alg_none");
	tcase_add_test(tc, test_jwt_alg_none);
	tcase_add_test(tc, test_jwt_header_checks);
	suite_add_tcase(s, tc);
	tc = tcase_create("wrong_key");
	tcase_add_test(tc, test_jwt_wrong_key);
	suite_add_tcase(s, tc);
	tc = tcase_create("alg_confusion");
	tcase_add_test(tc, test_jwt_alg_confusion);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tc = tcase_create("expiry");
	tcase_add_test(tc, test_jwt_expiry);
	suite_add_tcase(s, tc);
	tc = tcase_create("claims");
	tcase_add_test(tc, test_jwt_missing_claims);
	tcase_add_test(tc, test_jwt_claim_values);
	tcase_add_test(tc, test_jwt_claim_types);
	tcase_add_test(tc, test_jwt_claims_json);
	suite_add_tcase(s, tc);
	tc = tcase_create("tamper");
	tcase_add_test(tc, test_jwt_tamper);
	tcase_add_test(tc, test_jwt_shape);
	tcase_add_test(tc, test_jwt_size_cap);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(jwt_suite());
	int	 nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
