/* lib/kubeconfig.c: kubeconfig YAML to the current context's connection */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "crypto.h"
#include "kubeconfig.h"
#include "validate.h"

#define KC_EFORMAT	1

/*
 * First pass over the events: one document, no anchors or aliases, the
 * nesting capped.  The loader of the second pass is recursive, so the cap
 * must be enforced before it runs.
 */
static int
check_events(const char *yaml, size_t len, struct dp_err *err)
{
	yaml_parser_t	 p;
	yaml_event_t	 ev;
	int		 depth = 0, docs = 0, rc = -1;
	bool		 done = false, bad;
	const char	*why;

	if (!yaml_parser_initialize(&p)) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig: out of memory");
		return -1;
	}
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	while (!done) {
		if (!yaml_parser_parse(&p, &ev)) {
			dp_err_set(err, KC_EFORMAT,
			    "kubeconfig is not valid YAML: %s (line %zu)",
			    p.problem ? p.problem : "syntax error",
			    p.problem_mark.line + 1);
			goto out;
		}
		bad = false;
		why = NULL;
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				bad = true;
				why = "kubeconfig holds more than one YAML "
				    "document";
			}
			break;
		case YAML_ALIAS_EVENT:
			bad = true;
			break;
		case YAML_SCALAR_EVENT:
			bad = ev.data.scalar.anchor != NULL;
			break;
		case YAML_SEQUENCE_START_EVENT:
			bad = ev.data.sequence_start.anchor != NULL;
			depth++;
			break;
		case YAML_MAPPING_START_EVENT:
			bad = ev.data.mapping_start.anchor != NULL;
			depth++;
			break;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			depth--;
			break;
		default:
			break;
		}
		yaml_event_delete(&ev);
		if (bad) {
			dp_err_set(err, KC_EFORMAT, "%s", why ? why :
			    "kubeconfig uses YAML anchors or aliases");
			goto out;
		}
		if (depth > DP_KUBECONFIG_DEPTH) {
			dp_err_set(err, KC_EFORMAT,
			    "kubeconfig nests deeper than %d levels",
			    DP_KUBECONFIG_DEPTH);
			goto out;
		}
	}
	rc = 0;
 out:
	yaml_parser_delete(&p);
	return rc;
}

static yaml_node_t *
node(yaml_document_t *doc, int i)
{
	return i ? yaml_document_get_node(doc, i) : NULL;
}

/* A plain scalar spelling null (YAML 1.1 core schema). */
static bool
is_null(const yaml_node_t *n)
{
	const char	*v;

	if (n == NULL)
		return true;
	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	v = (const char *)n->data.scalar.value;
	return n->data.scalar.length == 0 || strcmp(v, "~") == 0 ||
	    strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
	    strcmp(v, "NULL") == 0;
}

/*
 * The value of key in mapping m, or NULL when absent.  A key given twice
 * is refused: YAML forbids it, and which one wins differs between
 * parsers, so the kubeconfig would mean different things to kubectl and
 * to us.
 */
static int
map_get(yaml_document_t *doc, yaml_node_t *m, const char *key,
    yaml_node_t **out, struct dp_err *err)
{
	yaml_node_pair_t	*pr;
	yaml_node_t		*k;
	size_t			 kl = strlen(key);

	*out = NULL;
	if (m == NULL || m->type != YAML_MAPPING_NODE)
		return 0;
	for (pr = m->data.mapping.pairs.start; pr < m->data.mapping.pairs.top;
	    pr++) {
		k = node(doc, pr->key);
		if (k == NULL || k->type != YAML_SCALAR_NODE ||
		    k->data.scalar.length != kl ||
		    memcmp(k->data.scalar.value, key, kl) != 0)
			continue;
		if (*out != NULL) {
			dp_err_set(err, KC_EFORMAT,
			    "kubeconfig: key '%s' is given twice", key);
			return -1;
		}
		*out = node(doc, pr->value);
	}
	if (is_null(*out))
		*out = NULL;
	return 0;
}

/*
 * The string value of key in m: *s points into the document (NULL when
 * absent, null or empty).  Anything but a scalar, or a scalar holding a
 * NUL (from a "\0" escape), is refused.
 */
static int
map_str(yaml_document_t *doc, yaml_node_t *m, const char *key,
    const char **s, size_t *len, struct dp_err *err)
{
	yaml_node_t	*v;

	*s = NULL;
	*len = 0;
	if (map_get(doc, m, key, &v, err) < 0)
		return -1;
	if (v == NULL)
		return 0;
	if (v->type != YAML_SCALAR_NODE) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig: '%s' must be a string",
		    key);
		return -1;
	}
	if (memchr(v->data.scalar.value, '\0', v->data.scalar.length) !=
	    NULL) {
		dp_err_set(err, KC_EFORMAT,
		    "kubeconfig: '%s' contains a NUL character", key);
		return -1;
	}
	if (v->data.scalar.length > 0) {
		*s = (const char *)v->data.scalar.value;
		*len = v->data.scalar.length;
	}
	return 0;
}

static int
map_bool(yaml_document_t *doc, yaml_node_t *m, const char *key, bool *b,
    struct dp_err *err)
{
	static const char *const yes[] = { "true", "True", "TRUE", "yes",
	    "Yes", "YES", "on", "On", "ON", "y", "Y", NULL };
	static const char *const no[] = { "false", "False", "FALSE", "no",
	    "No", "NO", "off", "Off", "OFF", "n", "N", NULL };
	yaml_node_t	*v;
	const char	*s;
	size_t		 i;

	*b = false;
	if (map_get(doc, m, key, &v, err) < 0)
		return -1;
	if (v == NULL)
		return 0;
	if (v->type == YAML_SCALAR_NODE &&
	    v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
		s = (const char *)v->data.scalar.value;
		for (i = 0; yes[i] != NULL; i++)
			if (strcmp(s, yes[i]) == 0) {
				*b = true;
				return 0;
			}
		for (i = 0; no[i] != NULL; i++)
			if (strcmp(s, no[i]) == 0)
				return 0;
	}
	dp_err_set(err, KC_EFORMAT, "kubeconfig: '%s' must be a boolean", key);
	return -1;
}

/* A required sequence at the top level (null counts as empty). */
static int
top_seq(yaml_document_t *doc, yaml_node_t *root, const char *key,
    yaml_node_t **out, struct dp_err *err)
{
	yaml_node_pair_t	*pr;
	yaml_node_t		*k;
	bool			 seen = false;

	for (pr = root->data.mapping.pairs.start;
	    pr < root->data.mapping.pairs.top; pr++) {
		k = node(doc, pr->key);
		if (k != NULL && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, key) == 0)
			seen = true;
	}
	if (!seen) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig has no '%s' section",
		    key);
		return -1;
	}
	if (map_get(doc, root, key, out, err) < 0)
		return -1;
	if (*out != NULL && (*out)->type != YAML_SEQUENCE_NODE) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig: '%s' must be a list",
		    key);
		return -1;
	}
	return 0;
}

/*
 * The mapping under inner ("cluster", "user", "context") of the first
 * entry of seq named name; *out NULL when there is none.
 */
static int
find_named(yaml_document_t *doc, yaml_node_t *seq, const char *what,
    const char *name, size_t nlen, const char *inner, yaml_node_t **out,
    struct dp_err *err)
{
	yaml_node_item_t	*it;
	yaml_node_t		*e;
	const char		*s;
	size_t			 len;

	*out = NULL;
	if (seq == NULL)
		return 0;
	for (it = seq->data.sequence.items.start;
	    it < seq->data.sequence.items.top; it++) {
		e = node(doc, *it);
		if (e == NULL || e->type != YAML_MAPPING_NODE) {
			dp_err_set(err, KC_EFORMAT,
			    "kubeconfig: every entry of '%s' must be a "
			    "mapping", what);
			return -1;
		}
		if (map_str(doc, e, "name", &s, &len, err) < 0)
			return -1;
		if (s == NULL || len != nlen || memcmp(s, name, len) != 0)
			continue;
		if (map_get(doc, e, inner, out, err) < 0)
			return -1;
		if (*out == NULL || (*out)->type != YAML_MAPPING_NODE) {
			dp_err_set(err, KC_EFORMAT,
			    "kubeconfig: %s '%.64s' has no '%s' mapping",
			    what, name, inner);
			*out = NULL;
			return -1;
		}
		return 0;
	}
	return 0;
}

/* base64 of PEM text → heap string; NULL when absent. */
static int
pem_data(yaml_document_t *doc, yaml_node_t *m, const char *key, char **out,
    struct dp_err *err)
{
	struct dp_buf	 b = { 0 };
	const char	*s;
	size_t		 len;
	int		 rc = -1;

	*out = NULL;
	if (map_str(doc, m, key, &s, &len, err) < 0)
		goto out;
	if (s == NULL) {
		rc = 0;
		goto out;
	}
	if (dp_b64_decode(&b, s, len, true) < 0) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig: '%s' is not base64",
		    key);
		goto out;
	}
	if (b.len == 0 || memchr(b.s, '\0', b.len) != NULL ||
	    strstr(b.s, "-----BEGIN ") == NULL) {
		dp_err_set(err, KC_EFORMAT,
		    "kubeconfig: '%s' is not base64 of PEM text", key);
		goto out;
	}
	*out = dp_xstrndup(b.s, b.len);
	rc = 0;
 out:
	dp_buf_wipe(&b);
	return rc;
}

/* Keys a server cannot honour: they name files or programs of the
 * machine the kubeconfig was written on. */
static int
refuse_keys(yaml_document_t *doc, yaml_node_t *m, const char *const *keys,
    struct dp_err *err)
{
	yaml_node_t	*v;
	size_t		 i;

	for (i = 0; keys[i] != NULL; i++) {
		if (map_get(doc, m, keys[i], &v, err) < 0)
			return -1;
		if (v != NULL) {
			dp_err_set(err, KC_EFORMAT,
			    "kubeconfig: '%s' is not supported (embed the "
			    "credentials with the *-data keys or a token)",
			    keys[i]);
			return -1;
		}
	}
	return 0;
}

static int
read_cluster(yaml_document_t *doc, yaml_node_t *c, struct dp_kubeconfig *kc,
    struct dp_err *err)
{
	static const char *const refused[] = { "certificate-authority", NULL };
	const char	*s;
	size_t		 len;

	if (refuse_keys(doc, c, refused, err) < 0 ||
	    map_str(doc, c, "server", &s, &len, err) < 0)
		return -1;
	if (s == NULL) {
		dp_err_set(err, KC_EFORMAT,
		    "kubeconfig: the current cluster has no server");
		return -1;
	}
	if (dp_check_url(s, len) != DP_V_OK) {
		dp_err_set(err, KC_EFORMAT,
		    "kubeconfig: server is not an http(s) URL");
		return -1;
	}
	kc->server = dp_xstrndup(s, len);
	if (pem_data(doc, c, "certificate-authority-data", &kc->ca_data,
	    err) < 0 ||
	    map_bool(doc, c, "insecure-skip-tls-verify", &kc->insecure, err) < 0)
		return -1;
	return 0;
}

static int
read_user(yaml_document_t *doc, yaml_node_t *u, struct dp_kubeconfig *kc,
    struct dp_err *err)
{
	static const char *const refused[] = { "client-certificate",
	    "client-key", "tokenFile", "exec", "auth-provider", NULL };
	const char	*s;
	size_t		 len, i;

	if (refuse_keys(doc, u, refused, err) < 0 ||
	    map_str(doc, u, "token", &s, &len, err) < 0)
		return -1;
	if (s != NULL) {
		/* It goes into an HTTP header: no CR/LF, no spaces. */
		for (i = 0; i < len; i++)
			if ((unsigned char)s[i] < 0x21 ||
			    (unsigned char)s[i] > 0x7e) {
				dp_err_set(err, KC_EFORMAT, "kubeconfig: "
				    "token holds characters other than "
				    "printable ASCII");
				return -1;
			}
		kc->token = dp_xstrndup(s, len);
	}
	if (pem_data(doc, u, "client-certificate-data", &kc->client_cert,
	    err) < 0 ||
	    pem_data(doc, u, "client-key-data", &kc->client_key, err) < 0)
		return -1;
	if ((kc->client_cert == NULL) != (kc->client_key == NULL)) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig: client-certificate-"
		    "data and client-key-data must be given together");
		return -1;
	}
	return 0;
}

static int
resolve(yaml_document_t *doc, struct dp_kubeconfig *kc, struct dp_err *err)
{
	yaml_node_t	*root = yaml_document_get_root_node(doc);
	yaml_node_t	*clusters, *users, *contexts, *ctx, *c, *u;
	const char	*cur, *cn, *un, *ns;
	size_t		 curl, cnl, unl, nsl;

	if (root == NULL || root->type != YAML_MAPPING_NODE) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig is not a YAML mapping");
		return -1;
	}
	if (top_seq(doc, root, "clusters", &clusters, err) < 0 ||
	    top_seq(doc, root, "users", &users, err) < 0 ||
	    top_seq(doc, root, "contexts", &contexts, err) < 0 ||
	    map_str(doc, root, "current-context", &cur, &curl, err) < 0)
		return -1;
	if (cur == NULL) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig has no current-context");
		return -1;
	}
	if (find_named(doc, contexts, "contexts", cur, curl, "context", &ctx,
	    err) < 0)
		return -1;
	if (ctx == NULL) {
		dp_err_set(err, KC_EFORMAT,
		    "kubeconfig: current-context '%.64s' is not in contexts",
		    cur);
		return -1;
	}
	kc->context = dp_xstrndup(cur, curl);
	if (map_str(doc, ctx, "cluster", &cn, &cnl, err) < 0 ||
	    map_str(doc, ctx, "user", &un, &unl, err) < 0 ||
	    map_str(doc, ctx, "namespace", &ns, &nsl, err) < 0)
		return -1;
	if (cn == NULL) {
		dp_err_set(err, KC_EFORMAT,
		    "kubeconfig: the current context names no cluster");
		return -1;
	}
	if (find_named(doc, clusters, "clusters", cn, cnl, "cluster", &c,
	    err) < 0)
		return -1;
	if (c == NULL) {
		dp_err_set(err, KC_EFORMAT,
		    "kubeconfig: cluster '%.64s' is not in clusters", cn);
		return -1;
	}
	if (read_cluster(doc, c, kc, err) < 0)
		return -1;
	if (un != NULL) {
		if (find_named(doc, users, "users", un, unl, "user", &u,
		    err) < 0)
			return -1;
		if (u == NULL) {
			dp_err_set(err, KC_EFORMAT,
			    "kubeconfig: user '%.64s' is not in users", un);
			return -1;
		}
		if (read_user(doc, u, kc, err) < 0)
			return -1;
	}
	if (ns != NULL)
		kc->namespace = dp_xstrndup(ns, nsl);
	return 0;
}

int
dp_kubeconfig_parse(const char *yaml, size_t len, struct dp_kubeconfig *kc,
    struct dp_err *err)
{
	struct dp_err	 dummy;
	yaml_parser_t	 p;
	yaml_document_t	 doc;
	bool		 have_parser = false, have_doc = false;
	int		 rc = -1;

	if (err == NULL)
		err = &dummy;
	memset(kc, 0, sizeof(*kc));
	if (yaml == NULL || len == 0) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig is empty");
		goto out;
	}
	if (len > DP_KUBECONFIG_MAX) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig is larger than %d KiB",
		    DP_KUBECONFIG_MAX / 1024);
		goto out;
	}
	if (memchr(yaml, '\0', len) != NULL) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig contains NUL bytes");
		goto out;
	}
	if (!dp_utf8_valid(yaml, len)) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig is not valid UTF-8");
		goto out;
	}
	if (check_events(yaml, len, err) < 0)
		goto out;
	if (!yaml_parser_initialize(&p)) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig: out of memory");
		goto out;
	}
	have_parser = true;
	yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	if (!yaml_parser_load(&p, &doc)) {
		dp_err_set(err, KC_EFORMAT, "kubeconfig is not valid YAML");
		goto out;
	}
	have_doc = true;
	if (resolve(&doc, kc, err) < 0)
		goto out;
	rc = 0;
 out:
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&p);
	if (rc != 0)
		dp_kubeconfig_release(kc);
	return rc;
}

static void
wipe_free(char *s)
{
	if (s != NULL) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void
dp_kubeconfig_release(struct dp_kubeconfig *kc)
{
	if (kc == NULL)
		return;
	free(kc->server);
	free(kc->ca_data);
	free(kc->client_cert);
	wipe_free(kc->client_key);
	wipe_free(kc->token);
	free(kc->namespace);
	free(kc->context);
	memset(kc, 0, sizeof(*kc));
}
