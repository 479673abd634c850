/* lib/jwt.c: access tokens (HS256, libjwt) with every claim checked */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
/* Our own header is "jwt.h" too; take libjwt's from the system path. */
#include <jwt.h>

#include "config.h"
#include "crypto.h"
#include "jwt.h"
#include "log.h"

/* A real access token is ~330 bytes; refuse anything absurd unparsed. */
#define TOKEN_MAX	8192
#define JSON_DEPTH	8
#define SIG_B64_LEN	43	/* 32-byte HMAC, base64url, no padding */
#define JTI_LEN		32
/* Times outside year 0..9999 are nonsense, whatever JSON allows. */
#define TIME_MAX	INT64_C(253402300799)

enum {
	DP_JWT_EINVAL = 1,	/* malformed or forged */
	DP_JWT_EEXPIRED,	/* well formed and signed, but expired */
};

static bool
is_b64url(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '_';
}

static bool
is_lowhex(const char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		    (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

/*
 * Parse exactly len bytes as one JSON object: strict syntax, valid
 * UTF-8, no NUL bytes, nothing after it, bounded depth.
 */
static struct json_object *
parse_object(const char *s, size_t len)
{
	struct json_tokener	*tok = NULL;
	struct json_object	*obj = NULL;

	if (len > INT_MAX || memchr(s, '\0', len) != NULL)
		goto out;
	tok = json_tokener_new_ex(JSON_DEPTH);
	if (tok == NULL)
		goto out;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
	    JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, s, (int)len);
	if (obj == NULL ||
	    json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len ||
	    !json_object_is_type(obj, json_type_object)) {
		json_object_put(obj);
		obj = NULL;
	}
 out:
	if (tok != NULL)
		json_tokener_free(tok);
	return obj;
}

/*
 * The string value of key in obj; NULL if absent, not a string, or
 * holding a NUL ("devpocket\u0000x" must not compare equal to
 * "devpocket").
 */
static const char *
get_str(struct json_object *obj, const char *key)
{
	struct json_object	*v;
	const char		*s = NULL;

	if (json_object_object_get_ex(obj, key, &v) &&
	    json_object_is_type(v, json_type_string)) {
		s = json_object_get_string(v);
		if (strlen(s) != (size_t)json_object_get_string_len(v))
			s = NULL;
	}
	return s;
}

/*
 * A time claim: a JSON integer (not a string, double or boolean) in
 * [0, TIME_MAX]; 0 or -1.
 */
static int
get_int(struct json_object *obj, const char *key, int64_t *out)
{
	struct json_object	*v;
	int			 rc = -1;

	if (!json_object_object_get_ex(obj, key, &v) ||
	    !json_object_is_type(v, json_type_int))
		goto out;
	errno = 0;
	*out = json_object_get_int64(v);
	/* json-c clamps values beyond int64 and says so in errno. */
	if (errno != 0 || *out < 0 || *out > TIME_MAX)
		goto out;
	rc = 0;
 out:
	return rc;
}

char *
dp_jwt_issue_access(const void *key, size_t klen, const char *issuer,
    const char *sub, const char *sid, int64_t now, int64_t ttl)
{
	jwt_t		*jwt = NULL;
	char		*enc = NULL, *tok = NULL;
	unsigned char	 r[JTI_LEN / 2];
	char		 jti[JTI_LEN + 1];

	if (key == NULL || klen == 0 || klen > INT_MAX || issuer == NULL ||
	    !dp_is_id(sub) || !dp_is_id(sid) || now < 0 || ttl <= 0 ||
	    now > INT64_MAX - ttl || now + ttl > LONG_MAX)
		goto out;
	dp_random(r, sizeof(r));
	dp_hex(jti, r, sizeof(r));
	if (jwt_new(&jwt) != 0)
		goto out;
	if (jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)klen) != 0 ||
	    jwt_add_grant(jwt, "iss", issuer) != 0 ||
	    jwt_add_grant(jwt, "sub", sub) != 0 ||
	    jwt_add_grant(jwt, "sid", sid) != 0 ||
	    jwt_add_grant(jwt, "jti", jti) != 0 ||
	    jwt_add_grant(jwt, "type", "access") != 0 ||
	    jwt_add_grant_int(jwt, "iat", (long)now) != 0 ||
	    jwt_add_grant_int(jwt, "exp", (long)(now + ttl)) != 0)
		goto out;
	if ((enc = jwt_encode_str(jwt)) == NULL)
		goto out;
	/* Hand out memory from our allocator: the caller uses free(). */
	tok = dp_xstrdup(enc);
 out:
	free(enc);
	jwt_free(jwt);
	return tok;
}

/*
 * Checks done before libjwt sees the token: size, alphabet, exactly
 * three non-empty segments, an HMAC-SHA256 signature over the first
 * two compared in constant time (libjwt compares with strcmp), and a
 * header that says HS256.  So a token whose signature does not verify
 * under our key never reaches the library's algorithm dispatch.
 */
static int
precheck(const char *token, size_t len, const void *key, size_t klen,
    struct dp_err *err)
{
	struct json_object	*hdr = NULL, *crit;
	struct dp_buf		 b64 = { 0 }, raw = { 0 };
	unsigned char		 mac[32];
	const char		*dot1, *dot2, *alg, *typ;
	size_t			 i, ndots = 0;
	int			 rc = -1;

	for (i = 0; i < len; i++) {
		if (token[i] == '.')
			ndots++;
		else if (!is_b64url(token[i])) {
			dp_err_set(err, DP_JWT_EINVAL, "token has a byte "
			    "outside base64url at %zu", i);
			goto out;
		}
	}
	if (ndots != 2) {
		dp_err_set(err, DP_JWT_EINVAL, "token has %zu parts, not 3",
		    ndots + 1);
		goto out;
	}
	dot1 = memchr(token, '.', len);
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (dot1 == token || dot2 == dot1 + 1) {
		dp_err_set(err, DP_JWT_EINVAL, "token has an empty part");
		goto out;
	}
	if (len - (size_t)(dot2 + 1 - token) != SIG_B64_LEN) {
		dp_err_set(err, DP_JWT_EINVAL, "signature is not HS256-sized");
		goto out;
	}
	dp_hmac_sha256(key, klen, token, (size_t)(dot2 - token), mac);
	dp_b64url_encode(&b64, mac, sizeof(mac));
	if (!dp_ct_equal(b64.s, b64.len, dot2 + 1, SIG_B64_LEN)) {
		dp_err_set(err, DP_JWT_EINVAL, "bad signature");
		goto out;
	}
	if (dp_b64_decode(&raw, token, (size_t)(dot1 - token), false) == -1 ||
	    (hdr = parse_object(raw.s, raw.len)) == NULL) {
		dp_err_set(err, DP_JWT_EINVAL, "header is not a JSON object");
		goto out;
	}
	alg = get_str(hdr, "alg");
	if (alg == NULL || strcmp(alg, "HS256") != 0) {
		dp_err_set(err, DP_JWT_EINVAL, "alg is not HS256");
		goto out;
	}
	if (json_object_object_get_ex(hdr, "typ", NULL) &&
	    ((typ = get_str(hdr, "typ")) == NULL || strcmp(typ, "JWT") != 0)) {
		dp_err_set(err, DP_JWT_EINVAL, "typ is not JWT");
		goto out;
	}
	/* RFC 7515 4.1.11: extensions we do not know must be refused. */
	if (json_object_object_get_ex(hdr, "crit", &crit)) {
		dp_err_set(err, DP_JWT_EINVAL, "crit header not supported");
		goto out;
	}
	rc = 0;
 out:
	json_object_put(hdr);
	dp_buf_release(&b64);
	dp_buf_release(&raw);
	explicit_bzero(mac, sizeof(mac));
	return rc;
}

/* Every claim, typed, from the claims libjwt decoded. */
static int
check_claims(jwt_t *jwt, const char *issuer, int64_t now,
    struct dp_access_claims *out, struct dp_err *err)
{
	struct json_object	*cl = NULL;
	char			*js = NULL;
	const char		*iss, *type, *sub, *sid, *jti;
	int64_t			 iat, exp;
	int			 rc = -1;

	if ((js = jwt_get_grants_json(jwt, NULL)) == NULL ||
	    (cl = parse_object(js, strlen(js))) == NULL) {
		dp_err_set(err, DP_JWT_EINVAL, "claims are not a JSON object");
		goto out;
	}
	if ((type = get_str(cl, "type")) == NULL ||
	    strcmp(type, "access") != 0) {
		dp_err_set(err, DP_JWT_EINVAL, "type is not access");
		goto out;
	}
	if ((iss = get_str(cl, "iss")) == NULL || strcmp(iss, issuer) != 0) {
		dp_err_set(err, DP_JWT_EINVAL, "wrong or missing iss");
		goto out;
	}
	if (!dp_is_id(sub = get_str(cl, "sub"))) {
		dp_err_set(err, DP_JWT_EINVAL, "sub is not an id");
		goto out;
	}
	if (!dp_is_id(sid = get_str(cl, "sid"))) {
		dp_err_set(err, DP_JWT_EINVAL, "sid is not an id");
		goto out;
	}
	if ((jti = get_str(cl, "jti")) == NULL || !is_lowhex(jti, JTI_LEN)) {
		dp_err_set(err, DP_JWT_EINVAL, "jti missing or malformed");
		goto out;
	}
	if (get_int(cl, "iat", &iat) == -1) {
		dp_err_set(err, DP_JWT_EINVAL, "iat missing or not an integer");
		goto out;
	}
	if (get_int(cl, "exp", &exp) == -1 || exp < iat) {
		dp_err_set(err, DP_JWT_EINVAL,
		    "exp missing, not an integer or before iat");
		goto out;
	}
	if (now >= exp) {
		dp_err_set(err, DP_JWT_EEXPIRED, "token expired");
		goto out;
	}
	memcpy(out->sub, sub, sizeof(out->sub));
	memcpy(out->sid, sid, sizeof(out->sid));
	memcpy(out->jti, jti, sizeof(out->jti));
	out->iat = iat;
	out->exp = exp;
	rc = 0;
 out:
	json_object_put(cl);
	free(js);
	return rc;
}

/*
 * Tokens this process verified lately (an app sends the same access token
 * with every request for its 30 minutes): a hit skips the two HMACs and
 * the three JSON parses, about a third of an authenticated request's CPU
 * in a responder.  An entry answers only for the same token, key and
 * issuer (compared in constant time); the one claim check that depends
 * on the time, exp, is made again on every hit.  Direct-mapped by a hash
 * of the token, so a flood of distinct tokens only evicts.  What the
 * database says of the session is never cached.
 */
#define VCACHE_SLOTS	32

struct vcache {
	char			*token;
	size_t			 len;
	unsigned char		 key[64];
	size_t			 klen;	/* 0: empty (longer keys: no entry) */
	char			 issuer[64];
	struct dp_access_claims	 claims;
};

static struct vcache	 vcache[VCACHE_SLOTS];
static uint64_t		 vcache_hits;

static struct vcache *
vcache_slot(const char *token, size_t len)
{
	size_t	 tail = len < 32 ? len : 32;

	/* The end is the signature: enough to spread tokens over slots. */
	return &vcache[dp_fnv1a(token + len - tail, tail) % VCACHE_SLOTS];
}

/* An entry emptied, its copy of the token wiped. */
static void
vcache_empty(struct vcache *v)
{
	if (v->token != NULL) {
		explicit_bzero(v->token, v->len);
		free(v->token);
	}
	explicit_bzero(v, sizeof(*v));
}

static bool
vcache_get(const char *token, size_t len, const void *key, size_t klen,
    const char *issuer, int64_t now, struct dp_access_claims *out)
{
	struct vcache	*v = vcache_slot(token, len);

	if (v->klen == 0 || v->klen != klen || v->len != len ||
	    strcmp(v->issuer, issuer) != 0 ||
	    !dp_ct_equal(v->key, v->klen, key, klen) ||
	    !dp_ct_equal(v->token, v->len, token, len) ||
	    now >= v->claims.exp)
		return false;
	*out = v->claims;
	vcache_hits++;
	return true;
}

static void
vcache_put(const char *token, size_t len, const void *key, size_t klen,
    const char *issuer, const struct dp_access_claims *c)
{
	struct vcache	*v = vcache_slot(token, len);

	if (klen > sizeof(v->key) || strlen(issuer) >= sizeof(v->issuer))
		return;
	vcache_empty(v);
	v->token = dp_xmalloc(len + 1);
	memcpy(v->token, token, len + 1);
	v->len = len;
	memcpy(v->key, key, klen);
	v->klen = klen;
	snprintf(v->issuer, sizeof(v->issuer), "%s", issuer);
	v->claims = *c;
}

uint64_t
dp_jwt_cache_hits(void)
{
	return vcache_hits;
}

void
dp_jwt_cache_clear(void)
{
	size_t	 i;

	for (i = 0; i < VCACHE_SLOTS; i++)
		vcache_empty(&vcache[i]);
}

int
dp_jwt_verify_access(const char *token, const void *key, size_t klen,
    const char *issuer, int64_t now, struct dp_access_claims *out,
    struct dp_err *err)
{
	jwt_t		*jwt = NULL;
	const char	*alg;
	size_t		 len;
	int		 rc = -1;

	if (token == NULL || key == NULL || klen == 0 || klen > INT_MAX ||
	    issuer == NULL || out == NULL) {
		dp_err_set(err, DP_JWT_EINVAL, "missing token, key or issuer");
		goto out;
	}
	if ((len = strnlen(token, TOKEN_MAX + 1)) > TOKEN_MAX) {
		dp_err_set(err, DP_JWT_EINVAL, "token longer than %d bytes",
		    TOKEN_MAX);
		goto out;
	}
	if (vcache_get(token, len, key, klen, issuer, now, out))
		return 0;
	if (precheck(token, len, key, klen, err) == -1)
		goto out;
	if (jwt_decode(&jwt, token, key, (int)klen) != 0 || jwt == NULL) {
		dp_err_set(err, DP_JWT_EINVAL, "libjwt rejected the token");
		goto out;
	}
	/* libjwt 1.10 accepts "none" and other algorithms: insist. */
	if (jwt_get_alg(jwt) != JWT_ALG_HS256 ||
	    (alg = jwt_get_header(jwt, "alg")) == NULL ||
	    strcmp(alg, "HS256") != 0) {
		dp_err_set(err, DP_JWT_EINVAL, "alg is not HS256");
		goto out;
	}
	if (check_claims(jwt, issuer, now, out, err) == -1)
		goto out;
	vcache_put(token, len, key, klen, issuer, out);
	rc = 0;
 out:
	jwt_free(jwt);
	return rc;
}

const struct dp_buf *
dp_auth_key(void)
{
	static struct dp_buf	 key;
	static bool		 loaded;
	struct dp_err		 err = { 0 };

	if (loaded)
		return &key;
	if (dp_keyfile_read(dp_cfg.auth_jwt_key_file, &key, &err) < 0) {
		dp_error("jwt key: %s", err.msg);
		return NULL;
	}
	loaded = true;
	return &key;
}
