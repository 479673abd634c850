/* tests/unit/check_kubeconfig.c: unit tests of lib/kubeconfig.c */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kubeconfig.h"
#include "util.h"

/* A string literal with its exact length (so embedded NULs count). */
#define L(s)	(s), (sizeof(s) - 1)

#define CA_PEM	"-----BEGIN CERTIFICATE-----\nMIIBdevpocketCA\n" \
		"-----END CERTIFICATE-----\n"
#define CA_B64	"LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJkZXZwb2NrZXRDQQot" \
		"LS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg=="
#define CERT_PEM "-----BEGIN CERTIFICATE-----\nMIIBclientcert\n" \
		"-----END CERTIFICATE-----\n"
#define CERT_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJjbGllbnRjZXJ0Ci0t" \
		"LS0tRU5EIENFUlRJRklDQVRFLS0tLS0K"
#define KEY_PEM	"-----BEGIN EC PRIVATE KEY-----\nMHcsecretkey\n" \
		"-----END EC PRIVATE KEY-----\n"
#define KEY_B64	"LS0tLS1CRUdJTiBFQyBQUklWQVRFIEtFWS0tLS0tCk1IY3NlY3JldGtleQot" \
		"LS0tLUVORCBFQyBQUklWQVRFIEtFWS0tLS0tCg=="
#define NOTPEM_B64 "aGVsbG8gd29ybGQsIG5vdCBwZW0="

/* A token kubeconfig with a decoy cluster and user before the real ones. */
static const char token_cfg[] =
    "apiVersion: v1\n"
    "kind: Config\n"
    "preferences: {}\n"
    "clusters:\n"
    "- name: other\n"
    "  cluster:\n"
    "    server: https://other.example.com:6443\n"
    "- name: prod\n"
    "  cluster:\n"
    "    server: https://kube.example.com:6443\n"
    "    certificate-authority-data: " CA_B64 "\n"
    "users:\n"
    "- name: nobody\n"
    "  user:\n"
    "    token: wrong\n"
    "- name: admin\n"
    "  user:\n"
    "    token: eyJhbGciOiJSUzI1NiJ9.payload.sig\n"
    "contexts:\n"
    "- name: other-ctx\n"
    "  context:\n"
    "    cluster: other\n"
    "    user: nobody\n"
    "- name: prod-ctx\n"
    "  context:\n"
    "    cluster: prod\n"
    "    user: admin\n"
    "    namespace: devpocket\n"
    "current-context: prod-ctx\n";

static const char cert_cfg[] =
    "clusters:\n"
    "- cluster:\n"
    "    certificate-authority-data: " CA_B64 "\n"
    "    server: https://10.0.0.1\n"
    "  name: kind\n"
    "contexts:\n"
    "- context: {cluster: kind, user: kind-admin}\n"
    "  name: kind-ctx\n"
    "current-context: kind-ctx\n"
    "users:\n"
    "- name: kind-admin\n"
    "  user:\n"
    "    client-certificate-data: " CERT_B64 "\n"
    "    client-key-data: " KEY_B64 "\n";

static const char insecure_cfg[] =
    "clusters:\n"
    "- name: dev\n"
    "  cluster:\n"
    "    server: http://127.0.0.1:8001\n"
    "    insecure-skip-tls-verify: true\n"
    "users: []\n"
    "contexts:\n"
    "- name: dev\n"
    "  context:\n"
    "    cluster: dev\n"
    "current-context: dev\n";

/* JSON is YAML too; kubectl accepts a kubeconfig written as JSON. */
static const char json_cfg[] =
    "{\"apiVersion\":\"v1\",\"clusters\":[{\"name\":\"c\",\"cluster\":"
    "{\"server\":\"https://k.example.com\",\"insecure-skip-tls-verify\":"
    "false}}],\"users\":[{\"name\":\"u\",\"user\":{\"token\":\"abc\"}}],"
    "\"contexts\":[{\"name\":\"x\",\"context\":{\"cluster\":\"c\","
    "\"user\":\"u\"}}],\"current-context\":\"x\"}";

static int
parse(const char *s, size_t len, struct dp_kubeconfig *kc, struct dp_err *e)
{
	memset(e, 0, sizeof(*e));
	return dp_kubeconfig_parse(s, len, kc, e);
}

/* Parse must fail with a message containing want; kc stays zeroed. */
static void
refuse(const char *s, size_t len, const char *want)
{
	struct dp_kubeconfig	 kc, zero;
	struct dp_err		 e;

	memset(&kc, 0x5a, sizeof(kc));
	memset(&zero, 0, sizeof(zero));
	ck_assert_int_eq(parse(s, len, &kc, &e), -1);
	ck_assert_msg(strstr(e.msg, want) != NULL, "message \"%s\", want "
	    "\"%s\"", e.msg, want);
	ck_assert_msg(memcmp(&kc, &zero, sizeof(kc)) == 0,
	    "kc not zeroed on failure");
	dp_kubeconfig_release(&kc);
}

/* token_cfg with the text `from` replaced by `to` (heap). */
static char *
edit(const char *base, const char *from, const char *to)
{
	const char	*at = strstr(base, from);
	struct dp_buf	 b = { 0 };

	ck_assert_ptr_nonnull(at);
	dp_buf_add(&b, base, (size_t)(at - base));
	dp_buf_adds(&b, to);
	dp_buf_adds(&b, at + strlen(from));
	return dp_buf_detach(&b);
}

static void
refuse_edit(const char *from, const char *to, const char *want)
{
	char	*s = edit(token_cfg, from, to);

	refuse(s, strlen(s), want);
	free(s);
}

START_TEST(test_kubeconfig_token)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;

	ck_assert_int_eq(parse(L(token_cfg), &kc, &e), 0);
	ck_assert_str_eq(kc.server, "https://kube.example.com:6443");
	ck_assert_str_eq(kc.ca_data, CA_PEM);
	ck_assert_str_eq(kc.token, "eyJhbGciOiJSUzI1NiJ9.payload.sig");
	ck_assert_ptr_null(kc.client_cert);
	ck_assert_ptr_null(kc.client_key);
	ck_assert(!kc.insecure);
	ck_assert_str_eq(kc.namespace, "devpocket");
	ck_assert_str_eq(kc.context, "prod-ctx");
	dp_kubeconfig_release(&kc);
	ck_assert_ptr_null(kc.server);
	ck_assert_ptr_null(kc.token);
	/* Releasing twice is harmless. */
	dp_kubeconfig_release(&kc);
	dp_kubeconfig_release(NULL);
}
END_TEST

START_TEST(test_kubeconfig_other_context)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;
	char			*s = edit(token_cfg, "current-context: prod-ctx",
	    "current-context: other-ctx");

	ck_assert_int_eq(parse(s, strlen(s), &kc, &e), 0);
	ck_assert_str_eq(kc.server, "https://other.example.com:6443");
	ck_assert_str_eq(kc.token, "wrong");
	ck_assert_ptr_null(kc.ca_data);
	ck_assert_ptr_null(kc.namespace);
	dp_kubeconfig_release(&kc);
	free(s);
}
END_TEST

START_TEST(test_kubeconfig_cert)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;

	ck_assert_int_eq(parse(L(cert_cfg), &kc, &e), 0);
	ck_assert_str_eq(kc.server, "https://10.0.0.1");
	ck_assert_str_eq(kc.ca_data, CA_PEM);
	ck_assert_str_eq(kc.client_cert, CERT_PEM);
	ck_assert_str_eq(kc.client_key, KEY_PEM);
	ck_assert_ptr_null(kc.token);
	ck_assert_ptr_null(kc.namespace);
	dp_kubeconfig_release(&kc);
}
END_TEST

START_TEST(test_kubeconfig_insecure)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;
	char			*s;

	ck_assert_int_eq(parse(L(insecure_cfg), &kc, &e), 0);
	ck_assert_str_eq(kc.server, "http://127.0.0.1:8001");
	ck_assert(kc.insecure);
	ck_assert_ptr_null(kc.ca_data);
	ck_assert_ptr_null(kc.token);
	ck_assert_ptr_null(kc.client_cert);
	dp_kubeconfig_release(&kc);
	/* YAML 1.1 spellings. */
	s = edit(insecure_cfg, "true", "Yes");
	ck_assert_int_eq(parse(s, strlen(s), &kc, &e), 0);
	ck_assert(kc.insecure);
	dp_kubeconfig_release(&kc);
	free(s);
	s = edit(insecure_cfg, "true", "off");
	ck_assert_int_eq(parse(s, strlen(s), &kc, &e), 0);
	ck_assert(!kc.insecure);
	dp_kubeconfig_release(&kc);
	free(s);
	/* Not a boolean: a quoted string, a number, a mapping. */
	s = edit(insecure_cfg, "true", "\"true\"");
	refuse(s, strlen(s), "must be a boolean");
	free(s);
	s = edit(insecure_cfg, "true", "2");
	refuse(s, strlen(s), "must be a boolean");
	free(s);
	s = edit(insecure_cfg, "true", "{a: b}");
	refuse(s, strlen(s), "must be a boolean");
	free(s);
}
END_TEST

START_TEST(test_kubeconfig_json)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;

	ck_assert_int_eq(parse(L(json_cfg), &kc, &e), 0);
	ck_assert_str_eq(kc.server, "https://k.example.com");
	ck_assert_str_eq(kc.token, "abc");
	ck_assert(!kc.insecure);
	dp_kubeconfig_release(&kc);
}
END_TEST

START_TEST(test_kubeconfig_not_nul_terminated)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;
	size_t			 n = sizeof(token_cfg) - 1;
	char			*s = dp_xmalloc(n);

	/* An exact-size heap copy: valgrind/ASan catch any read past it. */
	memcpy(s, token_cfg, n);
	ck_assert_int_eq(parse(s, n, &kc, &e), 0);
	ck_assert_str_eq(kc.context, "prod-ctx");
	dp_kubeconfig_release(&kc);
	free(s);
}
END_TEST

START_TEST(test_kubeconfig_missing_sections)
{
	refuse_edit("clusters:\n", "klusters:\n", "no 'clusters' section");
	refuse_edit("users:\n", "userz:\n", "no 'users' section");
	refuse_edit("contexts:\n", "kontexts:\n", "no 'contexts' section");
	refuse_edit("current-context: prod-ctx\n", "", "no current-context");
	refuse_edit("current-context: prod-ctx", "current-context: \"\"",
	    "no current-context");
	refuse_edit("current-context: prod-ctx", "current-context: ~",
	    "no current-context");
	refuse_edit("current-context: prod-ctx", "current-context: [a]",
	    "must be a string");
	refuse_edit("clusters:\n", "clusters: 3\nx:\n", "must be a list");
	refuse(L(""), "empty");
	refuse(L("just a string\n"), "not a YAML mapping");
	refuse(L("- a\n- b\n"), "not a YAML mapping");
	refuse(L("# only a comment\n"), "not a YAML mapping");
}
END_TEST

START_TEST(test_kubeconfig_dangling_context)
{
	refuse_edit("current-context: prod-ctx", "current-context: nowhere",
	    "current-context 'nowhere' is not in contexts");
	refuse_edit("    cluster: prod\n", "    cluster: gone\n",
	    "cluster 'gone' is not in clusters");
	refuse_edit("    user: admin\n", "    user: ghost\n",
	    "user 'ghost' is not in users");
	refuse_edit("    cluster: prod\n", "", "names no cluster");
	refuse_edit("- name: prod-ctx\n  context:\n",
	    "- name: prod-ctx\n  kontext:\n", "has no 'context' mapping");
	refuse_edit("- name: prod\n  cluster:\n    server: https://kube."
	    "example.com:6443\n", "- name: prod\n  cluster:\n    serve: "
	    "https://kube.example.com:6443\n", "has no server");
	refuse_edit("https://kube.example.com:6443", "kube.example.com",
	    "server is not an http(s) URL");
	refuse_edit("https://kube.example.com:6443", "ftp://kube.example.com",
	    "server is not an http(s) URL");
	refuse_edit("- name: other\n  cluster:\n", "- other\n- x:\n",
	    "must be a mapping");
}
END_TEST

START_TEST(test_kubeconfig_bad_base64)
{
	refuse_edit(CA_B64, "not*base64!", "is not base64");
	refuse_edit(CA_B64, "QUJD=", "is not base64");
	refuse_edit(CA_B64, NOTPEM_B64, "not base64 of PEM");
	/* base64 of "\0-----BEGIN x": a NUL inside the PEM text. */
	refuse_edit(CA_B64, "AC0tLS0tQkVHSU4geA==", "not base64 of PEM");
	refuse_edit(CA_B64, "[" CA_B64 "]", "must be a string");

	char *s = edit(cert_cfg, KEY_B64, "not*base64");
	refuse(s, strlen(s), "'client-key-data' is not base64");
	free(s);
	s = edit(cert_cfg, "    client-key-data: " KEY_B64 "\n", "");
	refuse(s, strlen(s), "must be given together");
	free(s);
}
END_TEST

START_TEST(test_kubeconfig_wrapped_base64)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;
	char			*s;

	/* A folded block scalar with line breaks inside the base64. */
	s = edit(token_cfg, "certificate-authority-data: " CA_B64,
	    "certificate-authority-data: >-\n      LS0tLS1CRUdJTiBDRVJUSUZJQ0FU"
	    "RS0tLS0tCk1JSUJkZXZwb2NrZXRDQQot\n      LS0tLUVORCBDRVJUSUZJQ0FURS0"
	    "tLS0tCg==");
	ck_assert_int_eq(parse(s, strlen(s), &kc, &e), 0);
	ck_assert_str_eq(kc.ca_data, CA_PEM);
	dp_kubeconfig_release(&kc);
	free(s);
}
END_TEST

START_TEST(test_kubeconfig_huge)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;
	struct dp_buf		 b = { 0 };

	/* Padded with a comment to exactly the cap: accepted. */
	dp_buf_adds(&b, token_cfg);
	dp_buf_adds(&b, "#");
	while (b.len < DP_KUBECONFIG_MAX - 1)
		dp_buf_addc(&b, 'x');
	dp_buf_addc(&b, '\n');
	ck_assert_uint_eq(b.len, DP_KUBECONFIG_MAX);
	ck_assert_int_eq(parse(b.s, b.len, &kc, &e), 0);
	dp_kubeconfig_release(&kc);
	/* One byte more: refused before parsing. */
	dp_buf_addc(&b, '\n');
	refuse(b.s, b.len, "larger than 256 KiB");
	/* Far more, with a huge token. */
	dp_buf_reset(&b);
	dp_buf_adds(&b, "users:\n- name: a\n  user:\n    token: ");
	while (b.len < 4 * 1024 * 1024)
		dp_buf_addc(&b, 'A');
	refuse(b.s, b.len, "larger than");
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_kubeconfig_aliases)
{
	/* Anchors and aliases: billion laughs and plain reuse. */
	static const char laughs[] =
	    "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
	    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	    "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
	    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
	    "clusters: [*d]\nusers: []\ncontexts: []\ncurrent-context: x\n";

	refuse(L(laughs), "anchors or aliases");
	refuse_edit("    cluster: prod\n    user: admin\n",
	    "    cluster: &c prod\n    user: *c\n", "anchors or aliases");
	refuse_edit("current-context: prod-ctx", "current-context: &x prod-ctx",
	    "anchors or aliases");
	refuse_edit("users:\n", "users: &u\n", "anchors or aliases");
	refuse_edit("preferences: {}", "preferences: &p {}",
	    "anchors or aliases");
	/* A merge key needs an alias. */
	refuse_edit("preferences: {}", "preferences: {<<: *p}",
	    "anchors or aliases");
}
END_TEST

START_TEST(test_kubeconfig_deep_nesting)
{
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;
	struct dp_buf		 b = { 0 };
	int			 i;

	/* At the cap (the top mapping plus 31 lists) is fine... */
	dp_buf_adds(&b, token_cfg);
	dp_buf_adds(&b, "extra: ");
	for (i = 0; i < DP_KUBECONFIG_DEPTH - 1; i++)
		dp_buf_addc(&b, '[');
	for (i = 0; i < DP_KUBECONFIG_DEPTH - 1; i++)
		dp_buf_addc(&b, ']');
	dp_buf_addc(&b, '\n');
	ck_assert_int_eq(parse(b.s, b.len, &kc, &e), 0);
	dp_kubeconfig_release(&kc);
	/* ...one more is not, and neither is thirty thousand. */
	dp_buf_reset(&b);
	dp_buf_adds(&b, token_cfg);
	dp_buf_adds(&b, "extra: ");
	for (i = 0; i < DP_KUBECONFIG_DEPTH; i++)
		dp_buf_addc(&b, '[');
	for (i = 0; i < DP_KUBECONFIG_DEPTH; i++)
		dp_buf_addc(&b, ']');
	dp_buf_addc(&b, '\n');
	refuse(b.s, b.len, "nests deeper");
	dp_buf_reset(&b);
	for (i = 0; i < 30000; i++)
		dp_buf_adds(&b, "{a: ");
	refuse(b.s, b.len, "nests deeper");
	dp_buf_reset(&b);
	for (i = 0; i < 1000; i++) {
		dp_buf_printf(&b, "%*s- ", i * 2, "");
		dp_buf_addc(&b, '\n');
	}
	ck_assert_int_eq(parse(b.s, b.len, &kc, &e), -1);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_kubeconfig_nul)
{
	char	*s;

	/* A raw NUL byte anywhere. */
	refuse(L("clusters: []\0\nusers: []\n"), "NUL");
	s = dp_xstrdup(token_cfg);
	s[strlen(s) - 3] = '\0';
	refuse(s, sizeof(token_cfg) - 1, "NUL");
	free(s);
	/* A NUL from an escape in a double-quoted scalar. */
	refuse_edit("token: eyJhbGciOiJSUzI1NiJ9.payload.sig",
	    "token: \"abc\\0def\"", "NUL character");
	refuse_edit("current-context: prod-ctx",
	    "current-context: \"prod-ctx\\x00\"", "NUL character");
	refuse_edit("server: https://kube.example.com:6443",
	    "server: \"https://kube.example.com\\u0000:6443\"", "NUL character");
}
END_TEST

START_TEST(test_kubeconfig_invalid_utf8)
{
	refuse(L("current-context: \xff\xfe\n"), "not valid UTF-8");
	refuse(L("current-context: \xc0\xaf\n"), "not valid UTF-8");
	refuse(L("current-context: \xe2\x82\n"), "not valid UTF-8");
	refuse(L("current-context: \xed\xa0\x80\n"), "not valid UTF-8");
	/* UTF-16 with a BOM has NULs and is refused as such. */
	refuse(L("\xff\xfe" "c\0:\0 \0x\0"), "NUL");
	/* Valid UTF-8 names work. */
	char *s = edit(token_cfg, "prod-ctx\n  context", "prüd-☃\n  context");
	char *t = edit(s, "current-context: prod-ctx", "current-context: "
	    "prüd-☃");
	struct dp_kubeconfig kc;
	struct dp_err e;
	ck_assert_int_eq(parse(t, strlen(t), &kc, &e), 0);
	ck_assert_str_eq(kc.context, "prüd-☃");
	dp_kubeconfig_release(&kc);
	free(s);
	free(t);
}
END_TEST

START_TEST(test_kubeconfig_token_header_safe)
{
	refuse_edit("token: eyJhbGciOiJSUzI1NiJ9.payload.sig",
	    "token: \"abc\\r\\nX-Injected: 1\"", "printable ASCII");
	refuse_edit("token: eyJhbGciOiJSUzI1NiJ9.payload.sig",
	    "token: abc def", "printable ASCII");
	refuse_edit("token: eyJhbGciOiJSUzI1NiJ9.payload.sig",
	    "token: \"abc\\tdef\"", "printable ASCII");
	refuse_edit("token: eyJhbGciOiJSUzI1NiJ9.payload.sig",
	    "token: tökén", "printable ASCII");
	refuse_edit("token: eyJhbGciOiJSUzI1NiJ9.payload.sig",
	    "token: {a: b}", "must be a string");
}
END_TEST

START_TEST(test_kubeconfig_unsupported)
{
	refuse_edit("    certificate-authority-data: " CA_B64 "\n",
	    "    certificate-authority: /etc/kubernetes/ca.crt\n",
	    "'certificate-authority' is not supported");
	refuse_edit("    token: eyJhbGciOiJSUzI1NiJ9.payload.sig\n",
	    "    tokenFile: /var/run/secrets/token\n",
	    "'tokenFile' is not supported");
	refuse_edit("    token: eyJhbGciOiJSUzI1NiJ9.payload.sig\n",
	    "    exec:\n      command: aws\n", "'exec' is not supported");
	refuse_edit("    token: eyJhbGciOiJSUzI1NiJ9.payload.sig\n",
	    "    auth-provider:\n      name: gcp\n",
	    "'auth-provider' is not supported");
	refuse_edit("    token: eyJhbGciOiJSUzI1NiJ9.payload.sig\n",
	    "    client-certificate: /home/me/.kube/me.crt\n",
	    "'client-certificate' is not supported");
	/* Only the current context's entries matter. */
	struct dp_kubeconfig kc;
	struct dp_err e;
	char *s = edit(token_cfg, "    token: wrong\n",
	    "    exec:\n      command: aws\n");
	ck_assert_int_eq(parse(s, strlen(s), &kc, &e), 0);
	dp_kubeconfig_release(&kc);
	free(s);
}
END_TEST

START_TEST(test_kubeconfig_malformed_yaml)
{
	refuse_edit("current-context: prod-ctx",
	    "current-context: prod-ctx\n---\nclusters: []", "more than one");
	refuse(L("clusters: [\n"), "not valid YAML");
	refuse(L("a: b\n c: d\n  - e\n"), "not valid YAML");
	refuse(L("key: \"unterminated\n"), "not valid YAML");
	refuse(L("\t- tab\n"), "not valid YAML");
	refuse_edit("current-context: prod-ctx",
	    "current-context: prod-ctx\ncurrent-context: other-ctx",
	    "given twice");
	refuse_edit("    token: eyJhbGciOiJSUzI1NiJ9.payload.sig\n",
	    "    token: a\n    token: b\n", "given twice");
}
END_TEST

/* Every prefix of a valid config parses or fails cleanly (no crash, no
 * leak, kc zeroed on failure). */
START_TEST(test_kubeconfig_truncated)
{
	struct dp_kubeconfig	 kc, zero;
	struct dp_err		 e;
	const char		*cfgs[] = { token_cfg, cert_cfg, json_cfg };
	size_t			 i, n, k;
	char			*s;
	int			 ok[3] = { 0, 0, 0 };

	memset(&zero, 0, sizeof(zero));
	for (k = 0; k < DP_NITEMS(cfgs); k++) {
		n = strlen(cfgs[k]);
		for (i = 0; i < n; i++) {
			s = dp_xmalloc(i + 1);
			memcpy(s, cfgs[k], i);
			if (parse(s, i, &kc, &e) == 0) {
				ok[k]++;
				ck_assert_ptr_nonnull(kc.server);
			} else {
				ck_assert(e.msg[0] != '\0');
				ck_assert(memcmp(&kc, &zero, sizeof(kc)) == 0);
			}
			dp_kubeconfig_release(&kc);
			free(s);
		}
	}
	/* token_cfg ends with current-context: only the prefix without the
	 * final newline still names prod-ctx.  A JSON prefix never closes.
	 * Some prefixes of cert_cfg cut inside client-key-data still decode
	 * to something PEM-looking; most must not resolve. */
	ck_assert_int_eq(ok[0], 1);
	ck_assert_int_eq(ok[2], 0);
	ck_assert_int_lt(ok[1], 60);
}
END_TEST

/* Flip every byte to a few hostile values: never crashes. */
START_TEST(test_kubeconfig_mutations)
{
	static const char bytes[] = { '\0', '\n', '&', '*', '[', '{', '"',
	    '\\', ':', '\xff', '\x80', '!', '%', '|', '>' };
	struct dp_kubeconfig	 kc;
	struct dp_err		 e;
	size_t			 i, j, n = strlen(token_cfg);
	char			*s = dp_xmalloc(n);

	for (i = 0; i < n; i++)
		for (j = 0; j < sizeof(bytes); j++) {
			memcpy(s, token_cfg, n);
			s[i] = bytes[j];
			(void)parse(s, n, &kc, &e);
			dp_kubeconfig_release(&kc);
		}
	free(s);
}
END_TEST

static Suite *
kubeconfig_suite(void)
{
	Suite	*s = suite_create("kubeconfig");
	struct {
		const char	*name;
		const TTest	*fn;
	} t[] = {
		{ "token", test_kubeconfig_token },
		{ "other_context", test_kubeconfig_other_context },
		{ "cert", test_kubeconfig_cert },
		{ "insecure", test_kubeconfig_insecure },
		{ "json", test_kubeconfig_json },
		{ "not_nul_terminated", test_kubeconfig_not_nul_terminated },
		{ "missing_sections", test_kubeconfig_missing_sections },
		{ "dangling_context", test_kubeconfig_dangling_context },
		{ "bad_base64", test_kubeconfig_bad_base64 },
		{ "wrapped_base64", test_kubeconfig_wrapped_base64 },
		{ "huge", test_kubeconfig_huge },
		{ "aliases", test_kubeconfig_aliases },
		{ "deep_nesting", test_kubeconfig_deep_nesting },
		{ "nul", test_kubeconfig_nul },
		{ "invalid_utf8", test_kubeconfig_invalid_utf8 },
		{ "token_header_safe", test_kubeconfig_token_header_safe },
		{ "unsupported", test_kubeconfig_unsupported },
		{ "malformed_yaml", test_kubeconfig_malformed_yaml },
		{ "truncated", test_kubeconfig_truncated },
		{ "mutations", test_kubeconfig_mutations },
	};
	TCase	*tc;
	size_t	 i;

	for (i = 0; i < DP_NITEMS(t); i++) {
		tc = tcase_create(t[i].name);
		tcase_set_timeout(tc, 60);
		tcase_add_test(tc, t[i].fn);
		suite_add_tcase(s, tc);
	}
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(kubeconfig_suite());
	int	 failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
