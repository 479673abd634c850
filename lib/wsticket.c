/* lib/wsticket.c: the admission ticket authorize-ws hands ws/terminal */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <nettle/hmac.h>
#include <nettle/sha2.h>

#include "crypto.h"
#include "http.h"
#include "wsticket.h"

#define TICKET_CONTEXT	"devpocket ws ticket v1"
#define TICKET_DEPTH	4

/* The ticket key: HMAC-SHA256(JWT key, context), never the JWT key. */
static void
ticket_mac(const void *key, size_t klen, const char *data, size_t len,
    unsigned char out[SHA256_DIGEST_SIZE])
{
	struct hmac_sha256_ctx	 c;
	unsigned char		 sub[SHA256_DIGEST_SIZE];

	hmac_sha256_set_key(&c, klen, key);
	hmac_sha256_update(&c, strlen(TICKET_CONTEXT),
	    (const uint8_t *)TICKET_CONTEXT);
	hmac_sha256_digest(&c, sizeof(sub), sub);
	hmac_sha256_set_key(&c, sizeof(sub), sub);
	hmac_sha256_update(&c, len, (const uint8_t *)data);
	hmac_sha256_digest(&c, SHA256_DIGEST_SIZE, out);
	explicit_bzero(&c, sizeof(c));
	explicit_bzero(sub, sizeof(sub));
}

static void
token_hash(const char *token, char out[65])
{
	struct sha256_ctx	 c;
	unsigned char		 md[SHA256_DIGEST_SIZE];

	sha256_init(&c);
	sha256_update(&c, strlen(token), (const uint8_t *)token);
	sha256_digest(&c, sizeof(md), md);
	dp_hex(out, md, sizeof(md));
}

void
dp_wsticket_make(struct dp_buf *out, const void *key, size_t klen,
    const char *token, const struct dp_wsticket *t)
{
	struct json_object	*o = json_object_new_object();
	struct json_object	*e = json_object_new_object();
	unsigned char		 mac[SHA256_DIGEST_SIZE];
	char			 th[65];
	const char		*js;
	size_t			 start = out->len, jlen;

	token_hash(token, th);
	dp_json_int(o, "v", 1);
	dp_json_int(o, "exp", t->exp);
	dp_json_str(o, "th", th);
	dp_json_str(o, "kind", dp_ws_kind_names[t->kind]);
	dp_json_str(o, "user", t->user.id);
	dp_json_str(o, "sid", t->user.sid);
	dp_json_bool(o, "verified", t->user.verified);
	dp_json_str(o, "slot", t->slot);
	dp_json_str(o, "session", t->session);
	dp_json_str(e, "id", t->env.id);
	dp_json_str(e, "name", t->env.name);
	dp_json_str(e, "template", t->env.template);
	dp_json_str(e, "status", t->env.status);
	dp_json_bool(e, "installation_completed",
	    t->env.installation_completed);
	dp_json_str(e, "image", t->env.image);
	dp_json_int(e, "port", t->env.port);
	dp_json_str(e, "cluster_id", t->env.cluster_id);
	dp_json_str(e, "provider", t->env.provider);
	json_object_object_add(o, "env", e);
	js = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN,
	    &jlen);
	dp_b64url_encode(out, js, jlen);
	ticket_mac(key, klen, out->s + start, out->len - start, mac);
	dp_buf_addc(out, '.');
	dp_b64url_encode(out, mac, sizeof(mac));
	json_object_put(o);
}

/* A string member into a heap copy (NULL when absent or not a string). */
static char *
member_str(struct json_object *o, const char *k)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return dp_xstrdup(json_object_get_string(v));
}

/* An id member ("" allowed when empty_ok) into out[25]; 0 or -1. */
static int
member_id(struct json_object *o, const char *k, bool empty_ok, char out[25])
{
	char	*s = member_str(o, k);
	int	 rc = -1;

	if (s != NULL && ((empty_ok && s[0] == '\0') || dp_is_id(s))) {
		snprintf(out, 25, "%s", s);
		rc = 0;
	}
	free(s);
	return rc;
}

static int
member_int(struct json_object *o, const char *k, int64_t lo, int64_t hi,
    int64_t *out)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_int))
		return -1;
	*out = json_object_get_int64(v);
	return *out >= lo && *out <= hi ? 0 : -1;
}

static int
member_bool(struct json_object *o, const char *k, bool *out)
{
	struct json_object	*v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_boolean))
		return -1;
	*out = json_object_get_boolean(v);
	return 0;
}

/* The payload's fields into t; 0 or -1. */
static int
payload_read(struct json_object *o, struct dp_wsticket *t, char th[65])
{
	struct json_object	*e;
	char			*s;
	int64_t			 v, port;
	int			 k;

	if (member_int(o, "v", 1, 1, &v) < 0 ||
	    member_int(o, "exp", 0, INT64_MAX, &t->exp) < 0 ||
	    (s = member_str(o, "th")) == NULL)
		return -1;
	if (strlen(s) != 64) {	/* hex of a SHA-256, nothing more */
		free(s);
		return -1;
	}
	memcpy(th, s, 65);
	free(s);
	if ((s = member_str(o, "kind")) == NULL)
		return -1;
	for (k = 0; k < DP_WSK__MAX; k++)
		if (strcmp(s, dp_ws_kind_names[k]) == 0)
			break;
	free(s);
	if (k == DP_WSK__MAX)
		return -1;
	t->kind = (enum dp_ws_kind)k;
	if (member_id(o, "user", false, t->user.id) < 0 ||
	    member_id(o, "sid", false, t->user.sid) < 0 ||
	    member_bool(o, "verified", &t->user.verified) < 0 ||
	    member_id(o, "slot", true, t->slot) < 0 ||
	    member_id(o, "session", true, t->session) < 0 ||
	    !json_object_object_get_ex(o, "env", &e) ||
	    member_id(e, "id", false, t->env.id) < 0 ||
	    member_bool(e, "installation_completed",
	    &t->env.installation_completed) < 0 ||
	    member_int(e, "port", 0, 65535, &port) < 0)
		return -1;
	t->env.port = (int)port;
	t->env.name = member_str(e, "name");
	t->env.template = member_str(e, "template");
	t->env.status = member_str(e, "status");
	t->env.image = member_str(e, "image");
	t->env.cluster_id = member_str(e, "cluster_id");
	t->env.provider = member_str(e, "provider");
	if (t->env.name == NULL || t->env.template == NULL ||
	    t->env.status == NULL || t->env.image == NULL ||
	    t->env.cluster_id == NULL || t->env.provider == NULL)
		return -1;
	/* A slot always comes with its session. */
	return (t->slot[0] == '\0') == (t->session[0] == '\0') ? 0 : -1;
}

int
dp_wsticket_open(const char *ticket, const void *key, size_t klen,
    const char *token, int64_t now, struct dp_wsticket *t,
    struct dp_err *err)
{
	struct json_object	*o = NULL;
	struct dp_buf		 js = { 0 }, mac = { 0 };
	unsigned char		 want[SHA256_DIGEST_SIZE];
	const char		*dot;
	char			 th[65] = "", mine[65];
	size_t			 len;
	int			 rc = -1;

	memset(t, 0, sizeof(*t));
	if (ticket == NULL || token == NULL || key == NULL) {
		dp_err_set(err, 0, "no ticket, token or key");
		goto out;
	}
	if ((len = strnlen(ticket, DP_WSTICKET_MAX + 1)) > DP_WSTICKET_MAX ||
	    (dot = memchr(ticket, '.', len)) == NULL) {
		dp_err_set(err, 0, "malformed ticket");
		goto out;
	}
	ticket_mac(key, klen, ticket, (size_t)(dot - ticket), want);
	if (dp_b64_decode(&mac, dot + 1, len - (size_t)(dot - ticket) - 1,
	    false) < 0 || !dp_ct_equal(mac.s, mac.len, want, sizeof(want))) {
		dp_err_set(err, 0, "ticket signature does not match");
		goto out;
	}
	if (dp_b64_decode(&js, ticket, (size_t)(dot - ticket), false) < 0 ||
	    js.len == 0 || (o = dp_json_parse(js.s, js.len,
	    TICKET_DEPTH)) == NULL || !json_object_is_type(o,
	    json_type_object) || payload_read(o, t, th) < 0) {
		dp_err_set(err, 0, "malformed ticket");
		goto out;
	}
	if (t->exp < now || t->exp > now + DP_WSTICKET_TTL + 5) {
		dp_err_set(err, 0, "ticket expired");
		goto out;
	}
	token_hash(token, mine);
	if (!dp_ct_equal(th, strlen(th), mine, strlen(mine))) {
		dp_err_set(err, 0, "ticket is for another token");
		goto out;
	}
	rc = 0;
out:
	if (rc < 0)
		dp_wsticket_release(t);
	json_object_put(o);
	dp_buf_release(&js);
	dp_buf_release(&mac);
	return rc;
}

void
dp_wsticket_release(struct dp_wsticket *t)
{
	dp_wsapp_env_release(&t->env);
	memset(t, 0, sizeof(*t));
}
