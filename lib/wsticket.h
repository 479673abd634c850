/* lib/wsticket.h: the admission ticket authorize-ws hands ws/terminal */
#ifndef DP_WSTICKET_H
#define DP_WSTICKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"
#include "wsapp.h"

/*
 * Behind nginx, GET /auth/authorize-ws does a terminal socket's whole
 * admission with its warm database connection: the token, the
 * environment, the slot (reserved, pid 0) and the session row.  It
 * answers with this ticket; nginx passes it to websocketd in
 * X-DevPocket-Ticket, and ws/terminal, which then needs no database
 * before the welcome, checks it instead of asking PostgreSQL again.
 *
 * Form: base64url(JSON) "." base64url(HMAC-SHA256), under a key derived
 * from the JWT key.  A ticket is bound to the request's access token
 * (its SHA-256), names its kind and environment, and lives
 * DP_WSTICKET_TTL seconds.  nettle, not OpenSSL: ws/terminal starts
 * without loading OpenSSL.
 */
#define DP_WSTICKET_MAX	4096	/* bytes of a ticket */
#define DP_WSTICKET_TTL	10	/* seconds; a reserved slot as long */

struct dp_wsticket {
	enum dp_ws_kind	 kind;
	struct dp_wsuser user;
	char		 slot[25];	/* "" when the user holds them all */
	char		 session[25];	/* "" likewise */
	struct dp_wsenv	 env;		/* not endpoint, kube_sealed */
	int64_t		 exp;		/* epoch seconds */
};

/* Append the ticket for token to out (key: the JWT key). */
void	 dp_wsticket_make(struct dp_buf *out, const void *key, size_t klen,
	    const char *token, const struct dp_wsticket *);
/*
 * Check a ticket against key, the request's token and the time: 0 with
 * the ticket in t (release it), -1 with err (forged, expired, another
 * token, malformed).
 */
int	 dp_wsticket_open(const char *ticket, const void *key, size_t klen,
	    const char *token, int64_t now, struct dp_wsticket *t,
	    struct dp_err *err);
void	 dp_wsticket_release(struct dp_wsticket *);

#endif
