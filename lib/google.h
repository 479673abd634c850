/* lib/google.h: Google ID tokens (RS256) against a cached JWKS */
#ifndef DP_GOOGLE_H
#define DP_GOOGLE_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

struct dp_google_claims {
	char	*sub, *email, *name, *picture;	/* heap; dp_google_claims_release */
	bool	 email_verified;
};
void	 dp_google_claims_release(struct dp_google_claims *);

enum dp_google_result {
	DP_GOOGLE_OK,
	DP_GOOGLE_INVALID,	/* 401 Invalid Google token */
	DP_GOOGLE_UNAVAILABLE,	/* 503: keys cannot be fetched */
};

/*
 * Verify an ID token: header alg RS256 and kid in the JWKS (fetched from
 * jwks_url with libcurl, timeout seconds, and cached in memory per
 * Cache-Control max-age / Expires; a kid miss refetches at most once a
 * minute), signature, aud in the comma-separated client_ids, iss
 * accounts.google.com or https://accounts.google.com, now < exp, email
 * present, email_verified true.  The token is capped at 16 KiB.
 */
enum dp_google_result dp_google_verify(const char *id_token,
	    const char *jwks_url, const char *client_ids, int64_t timeout,
	    int64_t now, struct dp_google_claims *out, struct dp_err *err);

/*
 * Notes on dp_google_verify: out is zeroed first and filled only on
 * DP_GOOGLE_OK (name and picture may be NULL); the caller releases it.
 * An empty client_ids gives DP_GOOGLE_INVALID without any fetch.  Cache
 * times follow the now argument.  A failed fetch with cached keys keeps
 * using them (asking again at most once a minute); with none it gives
 * DP_GOOGLE_UNAVAILABLE.  The JWKS response is capped at 256 KiB, only
 * http/https, no redirects; keys must be RSA of at least 2048 bits with
 * a kid.  The cache is guarded by a mutex, held during a fetch.  On
 * failure err->msg says why, in words safe to log (no token content).
 */

/* Forget the cached key set (tests). */
void	 dp_google_cache_clear(void);

#endif
