/* lib/jwt.h: access tokens (HS256, libjwt) with every claim checked */
#ifndef DP_JWT_H
#define DP_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct dp_access_claims {
	char	 sub[25];	/* user id */
	char	 sid[25];	/* login session id */
	char	 jti[33];
	int64_t	 iat, exp;
};

/*
 * Issue an access token (HS256; claims iss, sub, sid, jti, type=access,
 * iat=now, exp=now+ttl).  Returns a heap string or NULL.
 */
char	*dp_jwt_issue_access(const void *key, size_t klen, const char *issuer,
	    const char *sub, const char *sid, int64_t now, int64_t ttl);
/*
 * Verify: alg must be HS256 (checked after decoding; libjwt 1.10 accepts
 * "none" with a NULL key), signature, type "access", iss, sub and sid
 * being ids, iat present, now < exp (no leeway).  0 or -1 with err.
 */
int	 dp_jwt_verify_access(const char *token, const void *key, size_t klen,
	    const char *issuer, int64_t now, struct dp_access_claims *out,
	    struct dp_err *err);

/* Access tokens answered from this process's cache of verified ones
 * (dp_jwt_verify_access); the cache emptied (tests, key changes). */
uint64_t dp_jwt_cache_hits(void);
void	 dp_jwt_cache_clear(void);

/* The HS256 key, read once from [auth] jwt_key_file; NULL on failure. */
const struct dp_buf *dp_auth_key(void);

#endif
