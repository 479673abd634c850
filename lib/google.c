/* lib/google.c: Google ID-token verification (RS256) against a cached JWKS */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <json-c/json.h>
/* libjwt's header by path: lib/jwt.h shadows <jwt.h> under -Ilib. */
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "google.h"

#ifndef DP_VERSION
#define DP_VERSION	"0"
#endif

#define TOKEN_MAX	(16 * 1024)	/* whole ID token */
#define JOSE_MAX	2048		/* encoded JOSE header */
#define JWKS_MAX	(256 * 1024)	/* JWKS response body */
#define RESPHDR_MAX	(16 * 1024)	/* response header bytes kept */
#define JWKS_KEYS_MAX	32		/* keys looked at in one JWKS */
#define KID_MAX		256
#define RSA_BITS_MIN	2048
#define RSA_BYTES_MAX	1024		/* 8192-bit modulus */
#define AUD_MAX		32		/* elements of an aud array */
#define SUB_MAX		255
#define EMAIL_MAX	320
#define NAME_MAX_LEN	1024
#define PICTURE_MAX	2048
#define TTL_DEFAULT	3600		/* no cache headers */
#define TTL_MAX		86400
#define REFETCH_MIN	60		/* seconds between unplanned fetches */
#define TIMEOUT_DEFAULT	10
#define TIMEOUT_MAX	60

struct gkey {
	char	*kid;
	char	*pem;		/* SubjectPublicKeyInfo PEM for libjwt */
	size_t	 pemlen;
};

/*
 * The key set of one JWKS URL, shared by every verification in the
 * process.  Times are in the caller's clock (the now argument), so tests
 * can move it.
 */
static struct {
	pthread_mutex_t	 mtx;
	char		*url;
	struct gkey	*keys;
	size_t		 nkeys;
	int64_t		 expires;	/* keys are fresh while now < expires */
	int64_t		 tried_at;	/* last fetch attempt */
	bool		 tried;
} cache = { .mtx = PTHREAD_MUTEX_INITIALIZER };

static pthread_once_t	 curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void
keys_free(struct gkey *keys, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		free(keys[i].kid);
		free(keys[i].pem);
	}
	free(keys);
}

static void
cache_reset_locked(void)
{
	keys_free(cache.keys, cache.nkeys);
	free(cache.url);
	cache.url = NULL;
	cache.keys = NULL;
	cache.nkeys = 0;
	cache.expires = 0;
	cache.tried_at = 0;
	cache.tried = false;
}

void
dp_google_cache_clear(void)
{
	pthread_mutex_lock(&cache.mtx);
	cache_reset_locked();
	pthread_mutex_unlock(&cache.mtx);
}

void
dp_google_claims_release(struct dp_google_claims *c)
{
	if (c == NULL)
		return;
	free(c->sub);
	free(c->email);
	free(c->name);
	free(c->picture);
	memset(c, 0, sizeof(*c));
}

static int
b64url_val(unsigned char c)
{
	static const char	 abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const char		*p;

	return c != '\0' && (p = strchr(abc, c)) != NULL ? (int)(p - abc) : -1;
}

/*
 * Decode base64url (trailing '=' padding tolerated) and append to out.
 * 0 or -1 on a character outside the alphabet or an impossible length.
 */
static int
b64url_decode(struct dp_buf *out, const char *s, size_t len)
{
	uint32_t	 acc = 0;
	size_t		 i, bits = 0;
	int		 v, rc = -1;

	while (len > 0 && s[len - 1] == '=')
		len--;
	if (len % 4 == 1)
		goto out;
	for (i = 0; i < len; i++) {
		if ((v = b64url_val((unsigned char)s[i])) < 0)
			goto out;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dp_buf_addc(out, (char)((acc >> bits) & 0xff));
		}
	}
	rc = 0;
out:
	return rc;
}

/* A string member without embedded NUL and at most max bytes, or NULL. */
static const char *
get_str(struct json_object *o, const char *key, size_t max)
{
	struct json_object	*v;
	const char		*s;
	int			 len;

	const char		*r = NULL;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		goto out;
	s = json_object_get_string(v);
	len = json_object_get_string_len(v);
	if (s != NULL && len >= 0 && (size_t)len <= max &&
	    strlen(s) == (size_t)len)
		r = s;
out:
	return r;
}

/* Parse exactly len bytes as one JSON value (trailing blanks allowed). */
static struct json_object *
json_parse_n(const char *s, size_t len, int depth)
{
	struct json_tokener	*tok = NULL;
	struct json_object	*o = NULL;
	size_t			 end;

	if (len > INT32_MAX)
		goto out;
	if ((tok = json_tokener_new_ex(depth)) == NULL)
		goto out;
	o = json_tokener_parse_ex(tok, s, (int)len);
	if (o == NULL || json_tokener_get_error(tok) != json_tokener_success)
		goto fail;
	for (end = json_tokener_get_parse_end(tok); end < len; end++)
		if (s[end] != ' ' && s[end] != '\t' && s[end] != '\r' &&
		    s[end] != '\n')
			goto fail;
	goto out;
fail:
	json_object_put(o);
	o = NULL;
out:
	if (tok != NULL)
		json_tokener_free(tok);
	return o;
}

/* An RSA public key from big-endian n and e as PEM (SPKI).  0 or -1. */
static int
rsa_pem(const unsigned char *n, size_t nlen, const unsigned char *e,
    size_t elen, char **pem, size_t *pemlen)
{
	BIGNUM		*bn = NULL, *be = NULL;
	OSSL_PARAM_BLD	*bld = NULL;
	OSSL_PARAM	*params = NULL;
	EVP_PKEY_CTX	*ctx = NULL;
	EVP_PKEY	*pkey = NULL;
	BIO		*bio = NULL;
	char		*data;
	long		 dlen;
	int		 rc = -1;

	if ((bn = BN_bin2bn(n, (int)nlen, NULL)) == NULL ||
	    (be = BN_bin2bn(e, (int)elen, NULL)) == NULL)
		goto out;
	if (BN_num_bits(bn) < RSA_BITS_MIN || !BN_is_odd(be) ||
	    BN_is_one(be))
		goto out;
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) ||
	    (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
		goto out;
	if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) == NULL ||
	    EVP_PKEY_fromdata_init(ctx) <= 0 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
		goto out;
	if ((bio = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_PUBKEY(bio, pkey))
		goto out;
	if ((dlen = BIO_get_mem_data(bio, &data)) <= 0)
		goto out;
	*pem = dp_xstrndup(data, (size_t)dlen);
	*pemlen = (size_t)dlen;
	rc = 0;
out:
	BIO_free(bio);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(bn);
	BN_free(be);
	return rc;
}

/*
 * One JWKS entry to a key, or -1 if it is not a usable RS256 signing key
 * (those are skipped: the set may hold other key types one day).
 */
static int
jwk_load(struct json_object *jk, struct gkey *k)
{
	struct dp_buf	 n = { 0 }, e = { 0 };
	const char	*kty, *kid, *use, *alg, *sn, *se;
	size_t		 off;
	int		 rc = -1;

	if (!json_object_is_type(jk, json_type_object))
		goto out;
	kty = get_str(jk, "kty", 16);
	kid = get_str(jk, "kid", KID_MAX);
	sn = get_str(jk, "n", (RSA_BYTES_MAX + 2) * 4 / 3 + 4);
	se = get_str(jk, "e", 16);
	if (kty == NULL || strcmp(kty, "RSA") != 0 || kid == NULL ||
	    *kid == '\0' || sn == NULL || se == NULL)
		goto out;
	if (json_object_object_get_ex(jk, "use", NULL) &&
	    ((use = get_str(jk, "use", 16)) == NULL || strcmp(use, "sig") != 0))
		goto out;
	if (json_object_object_get_ex(jk, "alg", NULL) &&
	    ((alg = get_str(jk, "alg", 16)) == NULL ||
	    strcmp(alg, "RS256") != 0))
		goto out;
	if (b64url_decode(&n, sn, strlen(sn)) == -1 ||
	    b64url_decode(&e, se, strlen(se)) == -1)
		goto out;
	for (off = 0; off < n.len && n.s[off] == '\0'; off++)
		continue;
	/* (An empty n leaves n.s NULL: refused before it is used.) */
	if (n.len - off < RSA_BITS_MIN / 8 || n.len - off > RSA_BYTES_MAX ||
	    e.len == 0 || e.len > 8)
		goto out;
	if (rsa_pem((unsigned char *)n.s + off, n.len - off,
	    (unsigned char *)e.s, e.len, &k->pem, &k->pemlen) == -1)
		goto out;
	k->kid = dp_xstrdup(kid);
	rc = 0;
out:
	dp_buf_release(&n);
	dp_buf_release(&e);
	return rc;
}

/* Parse a JWKS document into a new key array.  0 or -1 with err. */
static int
jwks_parse(const char *body, size_t len, struct gkey **keysp, size_t *np,
    struct dp_err *err)
{
	struct json_object	*doc = NULL, *arr;
	struct gkey		*keys = NULL, k;
	size_t			 i, j, n = 0, cnt;
	int			 rc = -1;

	if ((doc = json_parse_n(body, len, 8)) == NULL ||
	    !json_object_is_type(doc, json_type_object) ||
	    !json_object_object_get_ex(doc, "keys", &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		dp_err_set(err, DP_GOOGLE_UNAVAILABLE, "JWKS: not a key set");
		goto out;
	}
	cnt = json_object_array_length(arr);
	if (cnt > JWKS_KEYS_MAX)
		cnt = JWKS_KEYS_MAX;
	keys = dp_xcalloc(cnt ? cnt : 1, sizeof(*keys));
	for (i = 0; i < cnt; i++) {
		memset(&k, 0, sizeof(k));
		if (jwk_load(json_object_array_get_idx(arr, i), &k) == -1)
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(keys[j].kid, k.kid) == 0)
				break;
		if (j < n) {
			/* A duplicate kid is ambiguous: keep the first. */
			free(k.kid);
			free(k.pem);
			continue;
		}
		keys[n++] = k;
	}
	if (n == 0) {
		dp_err_set(err, DP_GOOGLE_UNAVAILABLE,
		    "JWKS: no usable RS256 key");
		goto out;
	}
	*keysp = keys;
	*np = n;
	keys = NULL;
	n = 0;
	rc = 0;
out:
	keys_free(keys, n);
	json_object_put(doc);
	return rc;
}

/*
 * Seconds from the first "max-age=N" directive of a Cache-Control value
 * (quotes tolerated; more digits than fit count as "very long"), or -1.
 */
static int64_t
max_age(const char *v, size_t len)
{
	const char	*p = v, *end = v + len, *tok, *te;
	int64_t		 n = -1;
	size_t		 i, nl;

	while (p < end && n < 0) {
		while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
			p++;
		tok = p;
		while (p < end && *p != ',')
			p++;
		te = p;
		while (te > tok && (te[-1] == ' ' || te[-1] == '\t'))
			te--;
		if ((size_t)(te - tok) <= 8 || strncasecmp(tok, "max-age=", 8))
			continue;
		tok += 8;
		if (te - tok >= 2 && *tok == '"' && te[-1] == '"') {
			tok++;
			te--;
		}
		nl = (size_t)(te - tok);
		for (i = 0; i < nl && tok[i] >= '0' && tok[i] <= '9'; i++)
			continue;
		if (nl == 0 || i != nl)
			break;		/* malformed: as if absent */
		for (n = 0, i = 0; i < nl && n <= TTL_MAX; i++)
			n = n * 10 + (tok[i] - '0');
	}
	return n;
}

/*
 * Lifetime of a response from its headers: Cache-Control max-age, else
 * Expires (relative to Date when given), else an hour; at most a day.
 */
static int64_t
ttl_from_headers(const char *h, size_t len)
{
	const char	*p = h, *end = h + len, *eol, *colon, *v, *ve;
	char		 tmp[128];
	int64_t		 ttl = -1, ma;
	time_t		 expires = -1, date = -1;
	size_t		 vl;

	for (; p < end; p = eol + 1) {
		if ((eol = memchr(p, '\n', (size_t)(end - p))) == NULL)
			eol = end;
		if ((colon = memchr(p, ':', (size_t)(eol - p))) == NULL)
			continue;
		v = colon + 1;
		ve = eol;
		while (v < ve && (*v == ' ' || *v == '\t'))
			v++;
		while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' ||
		    ve[-1] == '\t'))
			ve--;
		vl = (size_t)(ve - v);
		if ((size_t)(colon - p) == 13 &&
		    strncasecmp(p, "cache-control", 13) == 0) {
			if (ttl < 0 && (ma = max_age(v, vl)) >= 0)
				ttl = ma;
			continue;
		}
		if (vl >= sizeof(tmp))
			vl = sizeof(tmp) - 1;	/* no date is this long */
		memcpy(tmp, v, vl);
		tmp[vl] = '\0';
		if ((size_t)(colon - p) == 7 &&
		    strncasecmp(p, "expires", 7) == 0) {
			/* An unreadable Expires means "already expired". */
			if ((expires = curl_getdate(tmp, NULL)) == -1)
				expires = 0;
		}
		else if ((size_t)(colon - p) == 4 &&
		    strncasecmp(p, "date", 4) == 0)
			date = curl_getdate(tmp, NULL);
	}
	if (ttl < 0 && expires != -1) {
		if (date == -1)
			date = time(NULL);
		ttl = expires > date ? (int64_t)(expires - date) : 0;
	}
	if (ttl < 0)
		ttl = TTL_DEFAULT;
	if (ttl > TTL_MAX)
		ttl = TTL_MAX;
	return ttl;
}

static size_t
body_cb(char *p, size_t sz, size_t nm, void *arg)
{
	struct dp_buf	*b = arg;
	size_t		 n = sz * nm;

	if (n <= JWKS_MAX && b->len + n <= JWKS_MAX)
		dp_buf_add(b, p, n);
	else
		n = 0;		/* a short count aborts the transfer */
	return n;
}

static size_t
header_cb(char *p, size_t sz, size_t nm, void *arg)
{
	struct dp_buf	*b = arg;
	size_t		 n = sz * nm;

	/* A new status line (after 1xx) starts a new header block. */
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
		dp_buf_reset(b);
	if (b->len + n <= RESPHDR_MAX)
		dp_buf_add(b, p, n);
	return n;
}

/*
 * Fetch the JWKS and, on success, replace the cached keys.  Called with
 * the cache locked.  0 or -1 with err (the old keys stay).
 */
static int
fetch_locked(const char *url, int64_t timeout, int64_t now,
    struct dp_err *err)
{
	CURL		*c = NULL;
	CURLcode	 cc;
	struct dp_buf	 body = { 0 }, hdrs = { 0 };
	struct gkey	*keys = NULL;
	size_t		 nkeys = 0;
	long		 status = 0;
	int64_t		 ttl;
	int		 rc = -1;

	cache.tried = true;
	cache.tried_at = now;
	if (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0) {
		dp_err_set(err, DP_GOOGLE_UNAVAILABLE,
		    "JWKS: URL must be http or https");
		goto out;
	}
	if (timeout <= 0)
		timeout = TIMEOUT_DEFAULT;
	if (timeout > TIMEOUT_MAX)
		timeout = TIMEOUT_MAX;
	pthread_once(&curl_once, curl_init_once);
	if ((c = curl_easy_init()) == NULL) {
		dp_err_set(err, DP_GOOGLE_UNAVAILABLE, "JWKS: curl init");
		goto out;
	}
	if (curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK) {
		dp_err_set(err, DP_GOOGLE_UNAVAILABLE, "JWKS: bad URL");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, (long)timeout);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)timeout);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE,
	    (curl_off_t)JWKS_MAX);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "devpocket/" DP_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, body_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdrs);
	if ((cc = curl_easy_perform(c)) != CURLE_OK) {
		dp_err_set(err, DP_GOOGLE_UNAVAILABLE, "JWKS fetch: %s",
		    curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		dp_err_set(err, DP_GOOGLE_UNAVAILABLE, "JWKS fetch: HTTP %ld",
		    status);
		goto out;
	}
	if (jwks_parse(body.s ? body.s : "", body.len, &keys, &nkeys,
	    err) == -1)
		goto out;
	ttl = ttl_from_headers(hdrs.s ? hdrs.s : "", hdrs.len);
	keys_free(cache.keys, cache.nkeys);
	cache.keys = keys;
	cache.nkeys = nkeys;
	cache.expires = now > INT64_MAX - ttl ? INT64_MAX : now + ttl;
	keys = NULL;
	nkeys = 0;
	rc = 0;
out:
	keys_free(keys, nkeys);
	if (c != NULL)
		curl_easy_cleanup(c);
	dp_buf_release(&body);
	dp_buf_release(&hdrs);
	return rc;
}

static const struct gkey *
key_find_locked(const char *kid)
{
	const struct gkey	*k = NULL;
	size_t			 i;

	for (i = 0; i < cache.nkeys && k == NULL; i++)
		if (strcmp(cache.keys[i].kid, kid) == 0)
			k = &cache.keys[i];
	return k;
}

/* True if a fetch was attempted less than REFETCH_MIN seconds ago. */
static bool
tried_recently_locked(int64_t now)
{
	return cache.tried && now >= cache.tried_at &&
	    now - cache.tried_at < REFETCH_MIN;
}

/*
 * A heap copy of the PEM for kid, fetching or refetching the key set as
 * the cache rules say.  DP_GOOGLE_OK, INVALID (unknown kid) or
 * UNAVAILABLE (no keys at all).
 */
static enum dp_google_result
key_get(const char *url, const char *kid, int64_t timeout, int64_t now,
    char **pem, size_t *pemlen, struct dp_err *err)
{
	const struct gkey	*k;
	enum dp_google_result	 r = DP_GOOGLE_UNAVAILABLE;

	pthread_mutex_lock(&cache.mtx);
	if (cache.url == NULL || strcmp(cache.url, url) != 0) {
		cache_reset_locked();
		cache.url = dp_xstrdup(url);
	}
	/*
	 * Expired keys are refetched; if that fails they are still used,
	 * and a failing server is asked again only once a minute.
	 */
	if (cache.nkeys == 0 ||
	    (now >= cache.expires && !tried_recently_locked(now)))
		(void)fetch_locked(url, timeout, now, err);
	if (cache.nkeys == 0)
		goto out;
	/* An unknown kid may be a rotated key: look again, once a minute. */
	if ((k = key_find_locked(kid)) == NULL &&
	    !tried_recently_locked(now) &&
	    fetch_locked(url, timeout, now, err) == 0)
		k = key_find_locked(kid);
	if (k == NULL) {
		dp_err_set(err, DP_GOOGLE_INVALID, "unknown key id");
		r = DP_GOOGLE_INVALID;
		goto out;
	}
	*pem = dp_xstrndup(k->pem, k->pemlen);
	*pemlen = k->pemlen;
	r = DP_GOOGLE_OK;
out:
	pthread_mutex_unlock(&cache.mtx);
	return r;
}

/*
 * Check the token's shape and read its JOSE header ourselves, before
 * any key is chosen: alg must be exactly RS256 and kid present.
 */
static int
jose_check(const char *token, size_t len, char kid[KID_MAX + 1],
    struct dp_err *err)
{
	struct dp_buf		 hb = { 0 };
	struct json_object	*h = NULL;
	const char		*d1, *d2, *alg, *k;
	size_t			 i, ndots = 0;
	int			 rc = -1;

	for (i = 0; i < len; i++) {
		if (token[i] == '.')
			ndots++;
		else if (b64url_val((unsigned char)token[i]) < 0)
			break;
	}
	if (i != len || ndots != 2) {
		dp_err_set(err, DP_GOOGLE_INVALID, "malformed token");
		goto out;
	}
	d1 = memchr(token, '.', len);
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token));
	if (d1 == token || d2 == d1 + 1 || d2 + 1 == token + len ||
	    (size_t)(d1 - token) > JOSE_MAX) {
		dp_err_set(err, DP_GOOGLE_INVALID, "malformed token");
		goto out;
	}
	if (b64url_decode(&hb, token, (size_t)(d1 - token)) == -1 ||
	    (h = json_parse_n(hb.s ? hb.s : "", hb.len, 4)) == NULL ||
	    !json_object_is_type(h, json_type_object)) {
		dp_err_set(err, DP_GOOGLE_INVALID, "malformed token header");
		goto out;
	}
	if ((alg = get_str(h, "alg", 16)) == NULL ||
	    strcmp(alg, "RS256") != 0) {
		dp_err_set(err, DP_GOOGLE_INVALID, "token alg is not RS256");
		goto out;
	}
	/* Critical extensions we do not implement must be refused. */
	if (json_object_object_get_ex(h, "crit", NULL)) {
		dp_err_set(err, DP_GOOGLE_INVALID, "token has crit header");
		goto out;
	}
	if ((k = get_str(h, "kid", KID_MAX)) == NULL || *k == '\0') {
		dp_err_set(err, DP_GOOGLE_INVALID, "token has no kid");
		goto out;
	}
	memcpy(kid, k, strlen(k) + 1);
	rc = 0;
out:
	json_object_put(h);
	dp_buf_release(&hb);
	return rc;
}

/* True if aud (len bytes) is one of the comma-separated client ids. */
static bool
client_id_match(const char *ids, const char *aud, size_t alen)
{
	const char	*p = ids, *s, *e;
	bool		 match = false;

	while (alen > 0 && !match && *p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		s = p;
		while (*p != '\0' && *p != ',')
			p++;
		e = p;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		match = (size_t)(e - s) == alen && memcmp(s, aud, alen) == 0;
	}
	return match;
}

static bool
aud_ok(struct json_object *claims, const char *ids)
{
	struct json_object	*aud, *el;
	size_t			 i, n;

	bool			 ok = false;

	if (!json_object_object_get_ex(claims, "aud", &aud))
		goto out;
	if (json_object_is_type(aud, json_type_string)) {
		ok = get_str(claims, "aud", 1024) != NULL &&
		    client_id_match(ids, json_object_get_string(aud),
		    (size_t)json_object_get_string_len(aud));
		goto out;
	}
	if (!json_object_is_type(aud, json_type_array) ||
	    (n = json_object_array_length(aud)) > AUD_MAX)
		goto out;
	for (i = 0; i < n && !ok; i++) {
		el = json_object_array_get_idx(aud, i);
		if (!json_object_is_type(el, json_type_string) ||
		    (size_t)json_object_get_string_len(el) !=
		    strlen(json_object_get_string(el)))
			continue;
		ok = client_id_match(ids, json_object_get_string(el),
		    (size_t)json_object_get_string_len(el));
	}
out:
	return ok;
}

/* Check the verified claims and fill out.  0 or -1 with err. */
static int
claims_check(struct json_object *c, const char *ids, int64_t now,
    struct dp_google_claims *out, struct dp_err *err)
{
	struct json_object	*v;
	const char		*iss, *sub, *email, *name, *pic, *ev;
	bool			 verified = false;
	int			 rc = -1;

	if (!json_object_is_type(c, json_type_object)) {
		dp_err_set(err, DP_GOOGLE_INVALID, "claims not an object");
		goto out;
	}
	if (!aud_ok(c, ids)) {
		dp_err_set(err, DP_GOOGLE_INVALID, "aud not a client id");
		goto out;
	}
	if ((iss = get_str(c, "iss", 64)) == NULL ||
	    (strcmp(iss, "accounts.google.com") != 0 &&
	    strcmp(iss, "https://accounts.google.com") != 0)) {
		dp_err_set(err, DP_GOOGLE_INVALID, "iss not Google");
		goto out;
	}
	if (!json_object_object_get_ex(c, "exp", &v) ||
	    !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) <= now) {
		dp_err_set(err, DP_GOOGLE_INVALID, "token expired");
		goto out;
	}
	if ((sub = get_str(c, "sub", SUB_MAX)) == NULL || *sub == '\0') {
		dp_err_set(err, DP_GOOGLE_INVALID, "no sub");
		goto out;
	}
	if ((email = get_str(c, "email", EMAIL_MAX)) == NULL ||
	    *email == '\0') {
		dp_err_set(err, DP_GOOGLE_INVALID, "no email");
		goto out;
	}
	if (json_object_object_get_ex(c, "email_verified", &v)) {
		if (json_object_is_type(v, json_type_boolean))
			verified = json_object_get_boolean(v);
		else if ((ev = get_str(c, "email_verified", 8)) != NULL)
			verified = strcmp(ev, "true") == 0;
	}
	if (!verified) {
		dp_err_set(err, DP_GOOGLE_INVALID, "email not verified");
		goto out;
	}
	name = get_str(c, "name", NAME_MAX_LEN);
	pic = get_str(c, "picture", PICTURE_MAX);
	if (out != NULL) {
		out->sub = dp_xstrdup(sub);
		out->email = dp_xstrdup(email);
		out->name = name != NULL ? dp_xstrdup(name) : NULL;
		out->picture = pic != NULL ? dp_xstrdup(pic) : NULL;
		out->email_verified = true;
	}
	rc = 0;
out:
	return rc;
}

enum dp_google_result
dp_google_verify(const char *id_token, const char *jwks_url,
    const char *client_ids, int64_t timeout, int64_t now,
    struct dp_google_claims *out, struct dp_err *err)
{
	enum dp_google_result	 r = DP_GOOGLE_INVALID;
	struct json_object	*claims = NULL;
	jwt_t			*jwt = NULL;
	char			 kid[KID_MAX + 1];
	char			*pem = NULL, *grants = NULL;
	size_t			 len, pemlen = 0;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (client_ids == NULL || client_ids[strspn(client_ids, " \t,")] ==
	    '\0') {
		dp_err_set(err, DP_GOOGLE_INVALID, "no client ids configured");
		goto out;
	}
	if (id_token == NULL || jwks_url == NULL) {
		dp_err_set(err, DP_GOOGLE_INVALID, "no token");
		goto out;
	}
	if ((len = strnlen(id_token, TOKEN_MAX + 1)) > TOKEN_MAX) {
		dp_err_set(err, DP_GOOGLE_INVALID, "token too long");
		goto out;
	}
	if (jose_check(id_token, len, kid, err) == -1)
		goto out;
	if ((r = key_get(jwks_url, kid, timeout, now, &pem, &pemlen,
	    err)) != DP_GOOGLE_OK)
		goto out;
	r = DP_GOOGLE_INVALID;
	if (jwt_decode(&jwt, id_token, (const unsigned char *)pem,
	    (int)pemlen) != 0 || jwt == NULL) {
		dp_err_set(err, DP_GOOGLE_INVALID, "bad token signature");
		goto out;
	}
	/* libjwt 1.10 trusts the header's alg (none, HS256 with our PEM). */
	if (jwt_get_alg(jwt) != JWT_ALG_RS256) {
		dp_err_set(err, DP_GOOGLE_INVALID, "token alg is not RS256");
		goto out;
	}
	if ((grants = jwt_get_grants_json(jwt, NULL)) == NULL ||
	    (claims = json_parse_n(grants, strlen(grants), 16)) == NULL) {
		dp_err_set(err, DP_GOOGLE_INVALID, "unreadable claims");
		goto out;
	}
	if (claims_check(claims, client_ids, now, out, err) == -1)
		goto out;
	r = DP_GOOGLE_OK;
out:
	json_object_put(claims);
	free(grants);
	if (jwt != NULL)
		jwt_free(jwt);
	free(pem);
	return r;
}
