/* lib/k8s.h: a small Kubernetes REST client over libcurl */
#ifndef DP_K8S_H
#define DP_K8S_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util.h"

/* Largest response body accepted, in bytes. */
#define DP_K8S_RESPONSE_MAX	(4 * 1024 * 1024)
/* Deepest JSON nesting accepted in a response. */
#define DP_K8S_JSON_DEPTH	64
/* Sent as ?fieldManager= on every POST, PUT and PATCH. */
#define DP_K8S_FIELD_MANAGER	"devpocket"
/* Where a pod finds its service account (in-cluster configuration). */
#define DP_K8S_SA_DIR		"/var/run/secrets/kubernetes.io/serviceaccount"

/* err->code of a failure without an HTTP answer (connect, TLS, timeout,
 * a response too large, an unusable kubeconfig).  API errors carry the
 * HTTP status as err->code instead. */
#define DP_K8S_ETRANSPORT	1

struct dp_k8s;

/*
 * A client for one API server.  kubeconfig is YAML text (the cluster
 * row's decrypted kubeconfig, len bytes) of which the current context
 * is used: bearer token, client certificate and key, CA data and
 * insecure-skip-tls-verify, all from memory.  kubeconfig NULL means the
 * in-cluster service account: the token and ca.crt of DP_K8S_SA_DIR (or
 * the directory set by dp_k8s_set_sa_dir) and the server
 * https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.  A non-empty
 * endpoint (the cluster row's) replaces the server URL of either: an
 * administrator who typed an endpoint means it.  Only http and https
 * URLs are used; redirects are not followed.
 *
 * Returns the client (free with dp_k8s_free) or NULL with err (code
 * DP_K8S_ETRANSPORT; the message never holds a secret).
 */
struct dp_k8s	*dp_k8s_new(const char *kubeconfig, size_t len,
		    const char *endpoint, struct dp_err *err);
/* Free the client, wiping its credentials; NULL is a no-op. */
void		 dp_k8s_free(struct dp_k8s *);
/* Connect and whole-request timeouts in milliseconds (default 5 s, 30 s). */
void		 dp_k8s_set_timeouts(struct dp_k8s *, long connect_ms,
		    long total_ms);
/* The server URL in use (no trailing slash), owned by the client. */
const char	*dp_k8s_server(const struct dp_k8s *);
/* Tests: read the in-cluster service account from dir (NULL: default). */
void		 dp_k8s_set_sa_dir(const char *dir);

struct dp_k8s_resp {
	long		 status;	/* HTTP status */
	struct dp_buf	 body;
	json_object	*json;		/* body as JSON when it parsed, or NULL */
};
void		 dp_k8s_resp_release(struct dp_k8s_resp *);

/*
 * Send one request.  path starts with "/" and may carry a query; for
 * POST, PUT and PATCH "fieldManager=devpocket" is added to it.  body
 * (blen bytes, may be NULL) is sent with Content-Type ctype (NULL:
 * application/json).  Returns 0 when the server answered, whatever the
 * status (resp filled; release it), or -1 with err (DP_K8S_ETRANSPORT)
 * when it did not or the body exceeded DP_K8S_RESPONSE_MAX.
 */
int	 dp_k8s_request(struct dp_k8s *, const char *method, const char *path,
	    const char *ctype, const char *body, size_t blen,
	    struct dp_k8s_resp *resp, struct dp_err *err);

/*
 * JSON helpers.  Each returns 0 on a 2xx answer, or -1 with err: code =
 * the HTTP status and msg "<METHOD> <path>: <status> <reason>: <the
 * metav1.Status message>", or DP_K8S_ETRANSPORT.  *out (when out is not
 * NULL) receives the parsed answer, owned by the caller.
 */
int	 dp_k8s_get(struct dp_k8s *, const char *path, json_object **out,
	    struct dp_err *err);
/* POST obj to a collection; 409 AlreadyExists counts as success and sets
 * *existed (may be NULL). */
int	 dp_k8s_create(struct dp_k8s *, const char *collection,
	    json_object *obj, bool *existed, struct dp_err *err);
/* PATCH with application/merge-patch+json. */
int	 dp_k8s_merge_patch(struct dp_k8s *, const char *path,
	    json_object *patch, json_object **out, struct dp_err *err);
/* PUT obj. */
int	 dp_k8s_put(struct dp_k8s *, const char *path, json_object *obj,
	    json_object **out, struct dp_err *err);
/* DELETE (query may name a propagationPolicy); 404 counts as success and
 * sets *gone (may be NULL). */
int	 dp_k8s_delete(struct dp_k8s *, const char *path, bool *gone,
	    struct dp_err *err);

/*
 * GET a text resource (pods/log) keeping only the bytes from offset skip
 * on, at most cap of them (the transfer stops there; *more is set when
 * it was cut).  Appends to out.  Returns 0 on 2xx, else -1 as above.
 */
int	 dp_k8s_get_text(struct dp_k8s *, const char *path, int64_t skip,
	    size_t cap, struct dp_buf *out, bool *more, struct dp_err *err);

/*
 * For WebSocket subresources (pods/exec): a new libcurl easy handle
 * (CURL *) configured with this client's TLS settings (CA, client
 * certificate, insecure) and connect timeout, for dp_ws_connect_curl of
 * lib/ws.h, which takes ownership of it.  *url receives the wss:// (or
 * ws://) URL of path on this server and *auth the "Authorization: ..."
 * header line or NULL; both are owned by the client and valid until the
 * next call or dp_k8s_free.  Returns NULL with err when libcurl fails.
 */
void	*dp_k8s_ws_handle(struct dp_k8s *, const char *path, const char **url,
	    const char **auth, struct dp_err *err);

/*
 * The value of a Kubernetes quantity ("500m", "1.5Gi", "12345678n",
 * "1e3", "16393524Ki", "4").  Returns 0 with *out, or -1 when s is not
 * a quantity.
 */
int	 dp_k8s_quantity(const char *s, double *out);

#endif
