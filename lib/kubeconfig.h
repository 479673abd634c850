/* lib/kubeconfig.h: the parts of a kubeconfig a driver needs, from YAML */
#ifndef DP_KUBECONFIG_H
#define DP_KUBECONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "util.h"

/* Largest kubeconfig accepted, in bytes of YAML. */
#define DP_KUBECONFIG_MAX	(256 * 1024)
/* Deepest nesting of mappings and sequences accepted (a kubeconfig needs 5). */
#define DP_KUBECONFIG_DEPTH	32

/*
 * The connection of a kubeconfig's current context.  Every string is a
 * heap copy, NUL-terminated, owned by the struct and freed (secrets
 * wiped) by dp_kubeconfig_release; NULL when the kubeconfig has no such
 * entry.
 *
 *	server		clusters[].cluster.server: an absolute http:// or
 *			https:// URL (never NULL after a successful parse)
 *	ca_data		certificate-authority-data decoded: PEM text of the
 *			CA bundle to verify the server with (NULL = the
 *			system trust store)
 *	client_cert	users[].user.client-certificate-data decoded (PEM)
 *	client_key	users[].user.client-key-data decoded (PEM, secret)
 *	token		users[].user.token: a bearer token of printable
 *			ASCII only, safe to put in an Authorization header
 *			(secret)
 *	insecure	clusters[].cluster.insecure-skip-tls-verify
 *	namespace	contexts[].context.namespace
 *	context		the current-context's name
 *
 * client_cert and client_key are either both set or both NULL.  Both a
 * token and a certificate may be present (kubectl sends both).
 */
struct dp_kubeconfig {
	char	*server;
	char	*ca_data;
	char	*client_cert;
	char	*client_key;
	char	*token;
	bool	 insecure;
	char	*namespace;
	char	*context;
};

/*
 * Parse the kubeconfig YAML of len bytes (need not be NUL-terminated)
 * and resolve its current-context: current-context names an entry of
 * contexts[], whose context.cluster names an entry of clusters[] (which
 * must have a server) and whose context.user, when set, names an entry
 * of users[].  The first entry of a name wins, as in kubectl.
 *
 * The top level must be a mapping with the sequences clusters, users and
 * contexts and a non-empty current-context string.  Refused (returns -1
 * with a message in err fit to show the administrator, never containing
 * secret values): more than DP_KUBECONFIG_MAX bytes, NUL bytes, invalid
 * UTF-8, more than one YAML document, anchors and aliases (billion
 * laughs), nesting deeper than DP_KUBECONFIG_DEPTH, a *-data value that
 * is not base64 of PEM text, a token with bytes outside printable ASCII,
 * and the things a server cannot honour: file references
 * (certificate-authority, client-certificate, client-key, tokenFile)
 * and credential plugins (exec, auth-provider).  Unknown keys are
 * ignored.  Boolean scalars are the YAML 1.1 forms (true/false/yes/no/
 * on/off in any of their usual cases).
 *
 * Returns 0 with *kc filled, or -1 with *kc zeroed (dp_kubeconfig_release
 * is safe either way).  err may be NULL.
 */
int	 dp_kubeconfig_parse(const char *yaml, size_t len,
	    struct dp_kubeconfig *kc, struct dp_err *err);
/* Free every string (wiping token and client_key) and zero *kc. */
void	 dp_kubeconfig_release(struct dp_kubeconfig *kc);

#endif
