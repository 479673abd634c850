/* lib/templates.c: environment templates: catalog files, rows, JSON (CONTRACT §5) */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <yaml.h>

#include "http.h"
#include "log.h"
#include "templates.h"
#include "validate.h"

const char *const dp_template_categories[] = {
	"programming_language", "framework", "database", "devops",
	"operating_system", NULL
};
const char *const dp_template_statuses[] = {
	"active", "beta", "deprecated", NULL
};

/* ---- string lists --------------------------------------------------- */

static void
strv_add(struct dp_strv *sv, const char *s, size_t len)
{
	sv->v = dp_xrealloc(sv->v, (sv->n + 1) * sizeof(*sv->v));
	sv->v[sv->n++] = dp_xstrndup(s, len);
}

static void
strv_free(struct dp_strv *sv)
{
	size_t	 i;

	for (i = 0; i < sv->n; i++)
		free(sv->v[i]);
	free(sv->v);
	sv->v = NULL;
	sv->n = 0;
}

void
dp_template_release(struct dp_template *t)
{
	free(t->name);
	free(t->display_name);
	free(t->description);
	free(t->category);
	strv_free(&t->tags);
	free(t->docker_image);
	free(t->cpu);
	free(t->memory);
	free(t->storage);
	strv_free(&t->env_keys);
	strv_free(&t->env_values);
	strv_free(&t->startup_commands);
	strv_free(&t->local_startup_commands);
	free(t->documentation_url);
	free(t->icon_url);
	free(t->status);
	free(t->version);
	memset(t, 0, sizeof(*t));
}

/* ---- the YAML reader --------------------------------------------------- */

/*
 * The reader walks libyaml's event stream with one event of lookahead
 * ("cur").  Every value's shape is known from its key, so a wrong shape
 * is an error as soon as it starts: nesting never goes deeper than the
 * format's two levels, and the 64 KiB cap bounds what libyaml buffers.
 */
struct yr {
	yaml_parser_t		 p;
	yaml_event_t		 cur;
	bool			 have;
	const char		*display;
	struct dp_err		*err;
};

static int
yr_fail(struct yr *y, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
yr_fail(struct yr *y, size_t line, const char *fmt, ...)
{
	char	 msg[200];
	va_list	 ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);	/* truncation is fine */
	va_end(ap);
	dp_err_set(y->err, 1, "%s:%zu: %s", y->display, line, msg);
	return -1;
}

static size_t
yr_line(const struct yr *y)
{
	return y->cur.start_mark.line + 1;
}

/* Read the next event into cur; refuse anchors, aliases and tags. */
static int
yr_next(struct yr *y)
{
	const yaml_char_t	*anchor = NULL, *tag = NULL;

	if (y->have) {
		yaml_event_delete(&y->cur);
		y->have = false;
	}
	if (!yaml_parser_parse(&y->p, &y->cur))
		return yr_fail(y, y->p.problem_mark.line + 1, "%s",
		    y->p.problem ? y->p.problem : "YAML syntax error");
	y->have = true;
	switch (y->cur.type) {
	case YAML_ALIAS_EVENT:
		return yr_fail(y, yr_line(y), "aliases are not allowed");
	case YAML_SCALAR_EVENT:
		anchor = y->cur.data.scalar.anchor;
		tag = y->cur.data.scalar.tag;
		break;
	case YAML_SEQUENCE_START_EVENT:
		anchor = y->cur.data.sequence_start.anchor;
		tag = y->cur.data.sequence_start.tag;
		break;
	case YAML_MAPPING_START_EVENT:
		anchor = y->cur.data.mapping_start.anchor;
		tag = y->cur.data.mapping_start.tag;
		break;
	default:
		break;
	}
	if (anchor != NULL)
		return yr_fail(y, yr_line(y), "anchors are not allowed");
	if (tag != NULL)
		return yr_fail(y, yr_line(y), "explicit tags are not allowed");
	return 0;
}

static bool
is_digit_(int c, int base)
{
	if (c == '_')
		return true;
	if (base == 16)
		return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
		    (c >= 'A' && c <= 'F');
	return c >= '0' && c < '0' + base;
}

/* Integers and floats of YAML 1.1 and 1.2 (underscores, 0x, 0o, 0b). */
static bool
looks_numeric(const char *s, size_t n)
{
	size_t	 i = 0, d = 0;
	bool	 dot = false;
	int	 base = 0;

	if (n > 0 && (s[0] == '-' || s[0] == '+'))
		i++;
	if (n - i >= 2 && s[i] == '0' && strchr("xob", s[i + 1]) != NULL &&
	    s[i + 1] != '\0') {
		base = s[i + 1] == 'x' ? 16 : (s[i + 1] == 'o' ? 8 : 2);
		for (i += 2; i < n && is_digit_(s[i], base); i++)
			d++;
		return d > 0 && i == n;
	}
	if (n - i == 4 && s[i] == '.' && (strncmp(s + i, ".inf", 4) == 0 ||
	    strncmp(s + i, ".Inf", 4) == 0 || strncmp(s + i, ".INF", 4) == 0))
		return true;
	if (n == 4 && (strncmp(s, ".nan", 4) == 0 ||
	    strncmp(s, ".NaN", 4) == 0 || strncmp(s, ".NAN", 4) == 0))
		return true;
	for (; i < n; i++) {
		if (s[i] == '.' && !dot)
			dot = true;
		else if ((s[i] >= '0' && s[i] <= '9') || (s[i] == '_' && d > 0))
			d++;
		else
			break;
	}
	if (d == 0)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		for (d = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			d++;
		if (d == 0)
			return false;
	}
	return i == n;
}

/*
 * What a plain scalar means to a YAML reader: NULL for a string, else
 * the name of the type it would become.  Quoted and block scalars are
 * always strings.
 */
static const char *
plain_type(const yaml_event_t *ev)
{
	static const char *const nulls[] = { "~", "null", "Null", "NULL" };
	static const char *const bools[] = {
		"true", "True", "TRUE", "false", "False", "FALSE",
		"yes", "Yes", "YES", "no", "No", "NO",
		"on", "On", "ON", "off", "Off", "OFF"
	};
	const char	*s = (const char *)ev->data.scalar.value;
	size_t		 n = ev->data.scalar.length, i;

	if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return NULL;
	if (n == 0)
		return "null";
	for (i = 0; i < DP_NITEMS(nulls); i++)
		if (strlen(nulls[i]) == n && memcmp(s, nulls[i], n) == 0)
			return "null";
	for (i = 0; i < DP_NITEMS(bools); i++)
		if (strlen(bools[i]) == n && memcmp(s, bools[i], n) == 0)
			return "a boolean";
	if (looks_numeric(s, n))
		return "a number";
	return NULL;
}

static const char *
event_shape(const yaml_event_t *ev)
{
	switch (ev->type) {
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	default:
		return "not a value";
	}
}

/*
 * The current event must be a string scalar.  With nullable, a plain
 * null gives *isnull = true.  Returns 0 or -1.
 */
static int
want_string(struct yr *y, const char *what, bool nullable, bool *isnull)
{
	const char	*t;

	if (isnull != NULL)
		*isnull = false;
	if (y->cur.type != YAML_SCALAR_EVENT)
		return yr_fail(y, yr_line(y), "%s must be a string, not %s",
		    what, event_shape(&y->cur));
	if ((t = plain_type(&y->cur)) == NULL)
		return 0;
	if (nullable && strcmp(t, "null") == 0) {
		*isnull = true;
		return 0;
	}
	return yr_fail(y, yr_line(y), "%s must be a string, not %s (quote "
	    "it)", what, t);
}

static const char *
vmsg(enum dp_vcode c)
{
	switch (c) {
	case DP_V_TOO_SHORT:
		return "is too short";
	case DP_V_TOO_LONG:
		return "is too long";
	case DP_V_PATTERN:
		return "does not match the required pattern";
	case DP_V_INVALID_CHOICE:
		return "is not one of the allowed values";
	case DP_V_OUT_OF_RANGE:
		return "is out of range";
	case DP_V_INVALID_URL:
		return "is not an http(s) URL";
	case DP_V_INVALID_FORMAT:
		return "holds NUL or invalid UTF-8";
	default:
		return "is invalid";
	}
}

#define SVAL(y)	((const char *)(y)->cur.data.scalar.value)
#define SLEN(y)	((y)->cur.data.scalar.length)

/* Keys of §5, one bit each for the duplicate and required checks. */
enum tkey {
	K_NAME, K_DISPLAY, K_DESC, K_CATEGORY, K_TAGS, K_IMAGE, K_PORT,
	K_RES, K_ENV, K_STARTUP, K_LOCAL, K_DOC, K_ICON, K_STATUS, K_VERSION,
	K__MAX
};
static const char *const tkeys[K__MAX] = {
	"name", "display_name", "description", "category", "tags",
	"docker_image", "default_port", "default_resources",
	"environment_variables", "startup_commands", "local_startup_commands",
	"documentation_url", "icon_url", "status", "version"
};
static const unsigned required = 1u << K_NAME | 1u << K_DISPLAY |
    1u << K_DESC | 1u << K_CATEGORY | 1u << K_IMAGE;

/* A list of strings of 1..maxlen chars, at most max items. */
static int
read_list(struct yr *y, const char *key, bool nullable, bool *isnull,
    struct dp_strv *sv, size_t max, int64_t minlen, int64_t maxlen)
{
	enum dp_vcode	 c;
	char		 what[64];

	*isnull = false;
	if (y->cur.type == YAML_SCALAR_EVENT) {
		if (want_string(y, key, nullable, isnull) < 0)
			return -1;
		if (*isnull)
			return 0;
		return yr_fail(y, yr_line(y), "%s must be a list of strings",
		    key);
	}
	if (y->cur.type != YAML_SEQUENCE_START_EVENT)
		return yr_fail(y, yr_line(y), "%s must be a list, not %s", key,
		    event_shape(&y->cur));
	for (;;) {
		if (yr_next(y) < 0)
			return -1;
		if (y->cur.type == YAML_SEQUENCE_END_EVENT)
			break;
		(void)snprintf(what, sizeof(what), "%s item %zu", key, sv->n);
		if (want_string(y, what, false, NULL) < 0)
			return -1;
		if (sv->n >= max)
			return yr_fail(y, yr_line(y), "%s has more than %zu "
			    "items", key, max);
		if ((c = dp_check_text(SVAL(y), SLEN(y), minlen, maxlen)) !=
		    DP_V_OK)
			return yr_fail(y, yr_line(y), "%s %s (%lld to %lld "
			    "characters)", what, vmsg(c), (long long)minlen,
			    (long long)maxlen);
		strv_add(sv, SVAL(y), SLEN(y));
	}
	return 0;
}

static int
read_resources(struct yr *y, struct dp_template *t)
{
	static const char *const rkeys[] = { "cpu", "memory", "storage" };
	enum dp_vcode	 c = DP_V_OK;
	unsigned	 seen = 0;
	char		**dst, what[40];
	int64_t		 v;
	size_t		 i;

	if (y->cur.type != YAML_MAPPING_START_EVENT)
		return yr_fail(y, yr_line(y), "default_resources must be a "
		    "mapping, not %s", y->cur.type == YAML_SCALAR_EVENT ?
		    "a scalar" : event_shape(&y->cur));
	for (;;) {
		if (yr_next(y) < 0)
			return -1;
		if (y->cur.type == YAML_MAPPING_END_EVENT)
			break;
		if (want_string(y, "a default_resources key", false, NULL) < 0)
			return -1;
		for (i = 0; i < DP_NITEMS(rkeys); i++)
			if (strlen(rkeys[i]) == SLEN(y) &&
			    memcmp(rkeys[i], SVAL(y), SLEN(y)) == 0)
				break;
		if (i == DP_NITEMS(rkeys))
			return yr_fail(y, yr_line(y), "unknown key in "
			    "default_resources (cpu, memory, storage)");
		if (seen & (1u << i))
			return yr_fail(y, yr_line(y), "duplicate key "
			    "default_resources.%s", rkeys[i]);
		seen |= 1u << i;
		(void)snprintf(what, sizeof(what), "default_resources.%s",
		    rkeys[i]);
		if (yr_next(y) < 0 || want_string(y, what, false, NULL) < 0)
			return -1;
		if (i == 0) {
			c = dp_check_cpu(SVAL(y), SLEN(y), &v);
			dst = &t->cpu;
		} else if (i == 1) {
			c = dp_check_quantity(SVAL(y), SLEN(y),
			    (int64_t)128 << 20, &v);
			dst = &t->memory;
		} else {
			c = dp_check_quantity(SVAL(y), SLEN(y),
			    (int64_t)1 << 30, &v);
			dst = &t->storage;
		}
		if (c == DP_V_OUT_OF_RANGE)
			return yr_fail(y, yr_line(y), "%s is below the minimum "
			    "(%s)", what, i == 0 ? "100m" : (i == 1 ? "128Mi" :
			    "1Gi"));
		if (c != DP_V_OK)
			return yr_fail(y, yr_line(y), "%s %s", what, vmsg(c));
		*dst = dp_xstrndup(SVAL(y), SLEN(y));
	}
	return 0;
}

static int
read_env(struct yr *y, struct dp_template *t)
{
	enum dp_vcode	 c;
	char		 what[160];
	size_t		 i;

	if (y->cur.type != YAML_MAPPING_START_EVENT)
		return yr_fail(y, yr_line(y), "environment_variables must be "
		    "a mapping, not %s", y->cur.type == YAML_SCALAR_EVENT ?
		    "a scalar" : event_shape(&y->cur));
	for (;;) {
		if (yr_next(y) < 0)
			return -1;
		if (y->cur.type == YAML_MAPPING_END_EVENT)
			break;
		if (want_string(y, "an environment_variables key", false,
		    NULL) < 0)
			return -1;
		if (dp_check_env_key(SVAL(y), SLEN(y)) != DP_V_OK)
			return yr_fail(y, yr_line(y), "environment_variables "
			    "key is not a variable name ([A-Za-z_][A-Za-z0-9_]"
			    "{0,127})");
		for (i = 0; i < t->env_keys.n; i++)
			if (strlen(t->env_keys.v[i]) == SLEN(y) &&
			    memcmp(t->env_keys.v[i], SVAL(y), SLEN(y)) == 0)
				return yr_fail(y, yr_line(y), "duplicate key "
				    "environment_variables.%s",
				    t->env_keys.v[i]);
		if (t->env_keys.n >= DP_TEMPLATE_ENV_MAX)
			return yr_fail(y, yr_line(y), "environment_variables "
			    "has more than %d entries", DP_TEMPLATE_ENV_MAX);
		strv_add(&t->env_keys, SVAL(y), SLEN(y));
		(void)snprintf(what, sizeof(what), "environment_variables.%s",
		    t->env_keys.v[t->env_keys.n - 1]);
		if (yr_next(y) < 0 || want_string(y, what, false, NULL) < 0)
			return -1;
		if ((c = dp_check_text(SVAL(y), SLEN(y), 0,
		    DP_TEMPLATE_ENV_LEN)) != DP_V_OK)
			return yr_fail(y, yr_line(y), "%s %s", what, vmsg(c));
		strv_add(&t->env_values, SVAL(y), SLEN(y));
	}
	return 0;
}

/* A scalar string field with its rule. */
static int
read_text(struct yr *y, enum tkey k, struct dp_template *t,
    const char *expect)
{
	const char	*key = tkeys[k];
	enum dp_vcode	 c = DP_V_OK;
	bool		 isnull = false;
	char		**dst = NULL;

	if (want_string(y, key, k == K_DOC || k == K_ICON, &isnull) < 0)
		return -1;
	if (isnull)
		return 0;
	switch (k) {
	case K_NAME:
		c = dp_check_template_name(SVAL(y), SLEN(y));
		if (c == DP_V_OK && (strlen(expect) != SLEN(y) ||
		    memcmp(expect, SVAL(y), SLEN(y)) != 0))
			return yr_fail(y, yr_line(y), "name must equal the "
			    "file name without .yaml (%s)", expect);
		dst = &t->name;
		break;
	case K_DISPLAY:
		c = dp_check_text(SVAL(y), SLEN(y), 1, 100);
		dst = &t->display_name;
		break;
	case K_DESC:
		c = dp_check_text(SVAL(y), SLEN(y), 1, 500);
		dst = &t->description;
		break;
	case K_CATEGORY:
		c = dp_check_choice(SVAL(y), SLEN(y), dp_template_categories);
		dst = &t->category;
		break;
	case K_IMAGE:
		c = dp_check_image_ref(SVAL(y), SLEN(y));
		dst = &t->docker_image;
		break;
	case K_DOC:
	case K_ICON:
		c = dp_check_url(SVAL(y), SLEN(y));
		dst = k == K_DOC ? &t->documentation_url : &t->icon_url;
		break;
	case K_STATUS:
		c = dp_check_choice(SVAL(y), SLEN(y), dp_template_statuses);
		dst = &t->status;
		break;
	case K_VERSION:
		c = dp_check_text(SVAL(y), SLEN(y), 1, 50);
		dst = &t->version;
		break;
	default:
		return yr_fail(y, yr_line(y), "%s: internal error", key);
	}
	if (c != DP_V_OK)
		return yr_fail(y, yr_line(y), "%s %s", key, vmsg(c));
	*dst = dp_xstrndup(SVAL(y), SLEN(y));
	return 0;
}

static int
read_port(struct yr *y, struct dp_template *t)
{
	const char	*s;
	size_t		 n, i;
	char		 buf[8];
	int64_t		 v;

	if (y->cur.type != YAML_SCALAR_EVENT ||
	    y->cur.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return yr_fail(y, yr_line(y), "default_port must be an "
		    "integer");
	s = SVAL(y);
	n = SLEN(y);
	for (i = 0; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			break;
	if (n == 0 || i != n)
		return yr_fail(y, yr_line(y), "default_port must be a decimal "
		    "integer");
	if (n >= sizeof(buf))
		return yr_fail(y, yr_line(y), "default_port must be 1 to "
		    "65535");
	memcpy(buf, s, n);
	buf[n] = '\0';
	if (dp_parse_int64(buf, 1, 65535, &v) < 0)
		return yr_fail(y, yr_line(y), "default_port must be 1 to "
		    "65535");
	t->default_port = v;
	return 0;
}

static int
read_value(struct yr *y, enum tkey k, struct dp_template *t,
    const char *expect)
{
	bool	 isnull;

	switch (k) {
	case K_TAGS:
		return read_list(y, tkeys[k], false, &isnull, &t->tags,
		    DP_TEMPLATE_TAGS_MAX, 1, DP_TEMPLATE_TAG_LEN);
	case K_STARTUP:
		return read_list(y, tkeys[k], false, &isnull,
		    &t->startup_commands, DP_TEMPLATE_CMDS_MAX, 1,
		    DP_TEMPLATE_CMD_LEN);
	case K_LOCAL:
		if (read_list(y, tkeys[k], true, &isnull,
		    &t->local_startup_commands, DP_TEMPLATE_CMDS_MAX, 1,
		    DP_TEMPLATE_CMD_LEN) < 0)
			return -1;
		t->has_local = !isnull;
		return 0;
	case K_PORT:
		return read_port(y, t);
	case K_RES:
		return read_resources(y, t);
	case K_ENV:
		return read_env(y, t);
	default:
		return read_text(y, k, t, expect);
	}
}

/* The top-level mapping; cur is its MAPPING_START. */
static int
read_template(struct yr *y, struct dp_template *t, const char *expect)
{
	unsigned	 seen = 0;
	size_t		 line = yr_line(y);
	int		 k;

	for (;;) {
		if (yr_next(y) < 0)
			return -1;
		if (y->cur.type == YAML_MAPPING_END_EVENT)
			break;
		if (want_string(y, "a key", false, NULL) < 0)
			return -1;
		for (k = 0; k < K__MAX; k++)
			if (strlen(tkeys[k]) == SLEN(y) &&
			    memcmp(tkeys[k], SVAL(y), SLEN(y)) == 0)
				break;
		if (k == K__MAX)
			return yr_fail(y, yr_line(y), "unknown key '%.*s'",
			    SLEN(y) > 64 ? 64 : (int)SLEN(y), SVAL(y));
		if (seen & (1u << k))
			return yr_fail(y, yr_line(y), "duplicate key '%s'",
			    tkeys[k]);
		seen |= 1u << k;
		if (yr_next(y) < 0 || read_value(y, k, t, expect) < 0)
			return -1;
	}
	for (k = 0; k < K__MAX; k++)
		if ((required & (1u << k)) && !(seen & (1u << k)))
			return yr_fail(y, line, "missing required key '%s'",
			    tkeys[k]);
	if (!(seen & (1u << K_PORT)))
		t->default_port = 8080;
	if (t->cpu == NULL)
		t->cpu = dp_xstrdup("500m");
	if (t->memory == NULL)
		t->memory = dp_xstrdup("1Gi");
	if (t->storage == NULL)
		t->storage = dp_xstrdup("10Gi");
	if (t->status == NULL)
		t->status = dp_xstrdup("active");
	if (t->version == NULL)
		t->version = dp_xstrdup("1.0.0");
	return 0;
}

/* 1-based line of byte offset off. */
static size_t
line_of(const char *buf, size_t off)
{
	size_t	 i, line = 1;

	for (i = 0; i < off; i++)
		if (buf[i] == '\n')
			line++;
	return line;
}

int
dp_template_parse_buf(const char *display, const char *buf, size_t len,
    struct dp_template *out, struct dp_err *err)
{
	struct yr	 y;
	const char	*base, *nul, *nl;
	char		*expect = NULL;
	size_t		 off, n;
	int		 rc = -1;

	memset(out, 0, sizeof(*out));
	memset(&y, 0, sizeof(y));
	y.display = display;
	y.err = err;
	base = strrchr(display, '/');
	base = base != NULL ? base + 1 : display;
	n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".yaml") == 0)
		n -= 5;
	expect = dp_xstrndup(base, n);
	if (!yaml_parser_initialize(&y.p)) {
		dp_err_set(err, 1, "%s:0: out of memory", display);
		free(expect);
		return -1;
	}
	if (len > DP_TEMPLATE_FILE_MAX) {
		yr_fail(&y, 0, "file is larger than %d bytes",
		    DP_TEMPLATE_FILE_MAX);
		goto out;
	}
	if ((nul = memchr(buf, '\0', len)) != NULL) {
		yr_fail(&y, line_of(buf, (size_t)(nul - buf)), "NUL byte");
		goto out;
	}
	for (off = 0; off < len; off += n + 1) {
		nl = memchr(buf + off, '\n', len - off);
		n = nl != NULL ? (size_t)(nl - (buf + off)) : len - off;
		if (!dp_utf8_valid(buf + off, n)) {
			yr_fail(&y, line_of(buf, off), "invalid UTF-8");
			goto out;
		}
	}
	/* The encoding is fixed, so libyaml would keep a BOM as text. */
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
		buf += 3;
		len -= 3;
	}
	yaml_parser_set_input_string(&y.p, (const unsigned char *)buf, len);
	yaml_parser_set_encoding(&y.p, YAML_UTF8_ENCODING);
	if (yr_next(&y) < 0 || yr_next(&y) < 0)
		goto out;
	if (y.cur.type != YAML_DOCUMENT_START_EVENT) {
		yr_fail(&y, yr_line(&y), "the file is empty: expected a "
		    "mapping");
		goto out;
	}
	if (yr_next(&y) < 0)
		goto out;
	if (y.cur.type != YAML_MAPPING_START_EVENT) {
		yr_fail(&y, yr_line(&y), "the top level must be a mapping");
		goto out;
	}
	if (read_template(&y, out, expect) < 0 || yr_next(&y) < 0)
		goto out;
	/* DOCUMENT_END, then the stream must end. */
	if (yr_next(&y) < 0)
		goto out;
	if (y.cur.type != YAML_STREAM_END_EVENT) {
		yr_fail(&y, yr_line(&y), "only one YAML document is allowed");
		goto out;
	}
	rc = 0;
out:
	if (y.have)
		yaml_event_delete(&y.cur);
	yaml_parser_delete(&y.p);
	free(expect);
	if (rc != 0)
		dp_template_release(out);
	return rc;
}

/* Read a regular file of at most max bytes; 0 or -1 with err. */
static int
read_file(const char *path, const char *display, char **buf, size_t *len,
    struct dp_err *err)
{
	struct stat	 st;
	ssize_t		 r;
	size_t		 got = 0, cap = DP_TEMPLATE_FILE_MAX + 1;
	char		*b = NULL;
	int		 fd, rc = -1;

	*buf = NULL;
	*len = 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY |
	    O_NONBLOCK)) < 0) {
		dp_err_set(err, 1, "%s:0: %s", display, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		dp_err_set(err, 1, "%s:0: not a regular file", display);
		goto out;
	}
	if (st.st_size > DP_TEMPLATE_FILE_MAX) {
		dp_err_set(err, 1, "%s:0: file is larger than %d bytes",
		    display, DP_TEMPLATE_FILE_MAX);
		goto out;
	}
	b = dp_xmalloc(cap + 1);
	/* The size may change under us: read one byte past the cap. */
	while (got < cap) {
		r = read(fd, b + got, cap - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			dp_err_set(err, 1, "%s:0: %s", display,
			    strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > DP_TEMPLATE_FILE_MAX) {
		dp_err_set(err, 1, "%s:0: file is larger than %d bytes",
		    display, DP_TEMPLATE_FILE_MAX);
		goto out;
	}
	b[got] = '\0';
	*buf = b;
	*len = got;
	b = NULL;
	rc = 0;
out:
	free(b);
	close(fd);
	return rc;
}

static int
parse_file(const char *path, const char *display, struct dp_template *out,
    struct dp_err *err)
{
	char	*buf = NULL;
	size_t	 len;
	int	 rc;

	memset(out, 0, sizeof(*out));
	if (read_file(path, display, &buf, &len, err) < 0)
		return -1;
	rc = dp_template_parse_buf(display, buf, len, out, err);
	free(buf);
	return rc;
}

int
dp_template_parse_file(const char *path, struct dp_template *out,
    struct dp_err *err)
{
	return parse_file(path, path, out, err);
}

/* ---- the database -------------------------------------------------------- */

static struct json_object *
strv_json(const struct dp_strv *sv)
{
	struct json_object	*a = json_object_new_array();
	size_t			 i;

	for (i = 0; i < sv->n; i++)
		json_object_array_add(a, json_object_new_string(sv->v[i]));
	return a;
}

/* JSON text of o into a new heap string; o is released. */
static char *
json_text(struct json_object *o)
{
	char	*s = dp_xstrdup(json_object_to_json_string_ext(o,
	    JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));

	json_object_put(o);
	return s;
}

/* The jsonb texts of a parsed template. */
struct tjson {
	char	*tags, *res, *env, *cmds, *local;
	char	 port[8];
};

static void
tjson_init(struct tjson *j, const struct dp_template *t)
{
	struct json_object	*o;
	size_t			 i;

	j->tags = json_text(strv_json(&t->tags));
	o = json_object_new_object();
	dp_json_str(o, "cpu", t->cpu);
	dp_json_str(o, "memory", t->memory);
	dp_json_str(o, "storage", t->storage);
	j->res = json_text(o);
	o = json_object_new_object();
	for (i = 0; i < t->env_keys.n; i++)
		dp_json_str(o, t->env_keys.v[i], t->env_values.v[i]);
	j->env = json_text(o);
	j->cmds = json_text(strv_json(&t->startup_commands));
	j->local = t->has_local ? json_text(strv_json(
	    &t->local_startup_commands)) : NULL;
	(void)snprintf(j->port, sizeof(j->port), "%lld",
	    (long long)t->default_port);
}

static void
tjson_release(struct tjson *j)
{
	free(j->tags);
	free(j->res);
	free(j->env);
	free(j->cmds);
	free(j->local);
}

enum load_result { LOAD_CREATED, LOAD_UPDATED, LOAD_SKIPPED };

/* Upsert one parsed template inside the caller's transaction; 0 or -1. */
static int
load_one(struct dp_db *db, const struct dp_template *t, bool force,
    enum load_result *res)
{
	static const char sel[] =
	    "SELECT id, version FROM templates WHERE name = $1 FOR UPDATE";
	static const char ins[] =
	    "INSERT INTO templates (id, name, display_name, description, "
	    "category, tags, docker_image, default_port, default_resources, "
	    "environment_variables, startup_commands, local_startup_commands, "
	    "documentation_url, icon_url, status, version) VALUES ($1, $2, "
	    "$3, $4, $5, $6::jsonb, $7, $8::integer, $9::jsonb, $10::jsonb, "
	    "$11::jsonb, $12::jsonb, $13, $14, $15, $16) "
	    "ON CONFLICT (name) DO NOTHING RETURNING id";
	static const char upd[] =
	    "UPDATE templates SET name = $2, display_name = $3, "
	    "description = $4, category = $5, tags = $6::jsonb, "
	    "docker_image = $7, default_port = $8::integer, "
	    "default_resources = $9::jsonb, environment_variables = "
	    "$10::jsonb, startup_commands = $11::jsonb, "
	    "local_startup_commands = $12::jsonb, documentation_url = $13, "
	    "icon_url = $14, status = $15, version = $16, updated_at = now() "
	    "WHERE id = $1";
	struct tjson	 j = { 0 };
	PGresult	*r = NULL;
	const char	*p[16];
	char		 id[25];
	int		 attempt, rc = -1;

	tjson_init(&j, t);
	p[1] = t->name;
	p[2] = t->display_name;
	p[3] = t->description;
	p[4] = t->category;
	p[5] = j.tags;
	p[6] = t->docker_image;
	p[7] = j.port;
	p[8] = j.res;
	p[9] = j.env;
	p[10] = j.cmds;
	p[11] = j.local;
	p[12] = t->documentation_url;
	p[13] = t->icon_url;
	p[14] = t->status;
	p[15] = t->version;
	/* A concurrent initialize may insert between SELECT and INSERT. */
	for (attempt = 0; attempt < 2; attempt++) {
		r = dp_db_exec(db, sel, 1, &p[1]);
		if (!dp_db_ok(r))
			goto out;
		if (PQntuples(r) == 1) {
			if (!force && strcmp(PQgetvalue(r, 0, 1),
			    t->version) == 0) {
				*res = LOAD_SKIPPED;
				rc = 0;
				goto out;
			}
			(void)snprintf(id, sizeof(id), "%s",
			    PQgetvalue(r, 0, 0));
			PQclear(r);
			p[0] = id;
			r = dp_db_exec(db, upd, 16, p);
			if (!dp_db_ok(r))
				goto out;
			*res = LOAD_UPDATED;
			rc = 0;
			goto out;
		}
		PQclear(r);
		dp_new_id(id);
		p[0] = id;
		r = dp_db_exec(db, ins, 16, p);
		if (!dp_db_ok(r))
			goto out;
		if (PQntuples(r) == 1) {
			*res = LOAD_CREATED;
			rc = 0;
			goto out;
		}
		PQclear(r);
		r = NULL;
	}
	dp_error("templates: %s: created and removed concurrently", t->name);
out:
	PQclear(r);
	tjson_release(&j);
	return rc;
}

static int
yaml_entry(const struct dirent *d)
{
	size_t	 n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 &&
	    strcmp(d->d_name + n - 5, ".yaml") == 0;
}

static int
name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static struct json_object *
report_list(struct json_object *report, const char *key)
{
	struct json_object	*a;

	if (!json_object_object_get_ex(report, key, &a) ||
	    !json_object_is_type(a, json_type_array)) {
		a = json_object_new_array();
		json_object_object_add(report, key, a);
	}
	return a;
}

static void
report_error(struct json_object *errors, const char *file, const char *msg)
{
	struct json_object	*e = json_object_new_object();

	dp_json_str(e, "file", file);
	dp_json_str(e, "message", msg);
	json_object_array_add(errors, e);
}

/* Run "sql" without parameters; 0 or -1. */
static int
simple(struct dp_db *db, const char *sql)
{
	PGresult	*r = dp_db_simple(db, sql);
	int		 rc = dp_db_ok(r) ? 0 : -1;

	PQclear(r);
	return rc;
}

int
dp_templates_load_dir(struct dp_db *db, const char *dir, bool force,
    struct json_object *report)
{
	static const char *const names[] = { "created", "updated", "skipped" };
	struct json_object	*lists[3], *errors;
	struct dirent		**ents = NULL;
	struct dp_template	 t;
	struct dp_err		 err;
	struct dp_buf		 path = { 0 };
	enum load_result	 lr = LOAD_SKIPPED;
	const char		*base;
	bool			 nested;
	int			 i, n, rc = -1, ok;

	for (i = 0; i < 3; i++)
		lists[i] = report_list(report, names[i]);
	errors = report_list(report, "errors");
	if ((n = scandir(dir, &ents, yaml_entry, name_cmp)) < 0) {
		base = strrchr(dir, '/');
		base = base != NULL && base[1] != '\0' ? base + 1 : dir;
		dp_err_set(&err, 0, "cannot read the catalog directory: %s",
		    strerror(errno));
		report_error(errors, base, err.msg);
		ents = NULL;
		n = 0;
		rc = 0;
		goto out;
	}
	nested = PQtransactionStatus(dp_db_conn(db)) == PQTRANS_INTRANS;
	for (i = 0; i < n; i++) {
		dp_buf_reset(&path);
		dp_buf_printf(&path, "%s/%s", dir, ents[i]->d_name);
		memset(&err, 0, sizeof(err));
		if (parse_file(path.s, ents[i]->d_name, &t, &err) < 0) {
			report_error(errors, ents[i]->d_name, err.msg);
			continue;
		}
		if (simple(db, nested ? "SAVEPOINT dp_template" : "BEGIN") < 0) {
			dp_template_release(&t);
			goto out;
		}
		ok = load_one(db, &t, force, &lr) == 0 &&
		    simple(db, nested ? "RELEASE SAVEPOINT dp_template" :
		    "COMMIT") == 0;
		if (!ok) {
			if (nested)
				(void)simple(db, "ROLLBACK TO SAVEPOINT "
				    "dp_template");
			else
				dp_db_rollback(db);
			dp_template_release(&t);
			goto out;
		}
		json_object_array_add(lists[lr], json_object_new_string(
		    t.name));
		dp_template_release(&t);
	}
	rc = 0;
out:
	if (ents != NULL) {
		for (i = 0; i < n; i++)
			free(ents[i]);
		free(ents);
	}
	dp_buf_release(&path);
	return rc;
}

/* ---- rows and JSON -------------------------------------------------------- */

/* A jsonb column as a json-c value, or a new empty one of the given type. */
static struct json_object *
jsonb(const PGresult *r, int row, int col, json_type want)
{
	const char		*s = dp_db_val(r, row, col);
	struct json_object	*o = NULL;

	if (s != NULL)
		o = json_tokener_parse(s);
	if (o == NULL || !json_object_is_type(o, want)) {
		json_object_put(o);
		o = want == json_type_array ? json_object_new_array() :
		    json_object_new_object();
	}
	return o;
}

static int64_t
intcol(const PGresult *r, int row, int col)
{
	const char	*s = dp_db_val(r, row, col);
	int64_t		 v = 0;

	if (s == NULL || dp_parse_int64(s, INT64_MIN, INT64_MAX, &v) < 0)
		v = 0;
	return v;
}

struct json_object *
dp_template_json_at(const PGresult *r, int row, int c)
{
	struct json_object	*o = json_object_new_object();

	dp_json_str(o, "id", dp_db_val(r, row, c + 0));
	dp_json_str(o, "name", dp_db_val(r, row, c + 1));
	dp_json_str(o, "display_name", dp_db_val(r, row, c + 2));
	dp_json_str(o, "description", dp_db_val(r, row, c + 3));
	dp_json_str(o, "category", dp_db_val(r, row, c + 4));
	json_object_object_add(o, "tags", jsonb(r, row, c + 5,
	    json_type_array));
	dp_json_str(o, "docker_image", dp_db_val(r, row, c + 6));
	dp_json_str(o, "image", dp_db_val(r, row, c + 6));
	dp_json_int(o, "default_port", intcol(r, row, c + 7));
	json_object_object_add(o, "default_resources", jsonb(r, row, c + 8,
	    json_type_object));
	json_object_object_add(o, "environment_variables", jsonb(r, row,
	    c + 9, json_type_object));
	json_object_object_add(o, "startup_commands", jsonb(r, row, c + 10,
	    json_type_array));
	dp_json_str(o, "documentation_url", dp_db_val(r, row, c + 11));
	dp_json_str(o, "icon_url", dp_db_val(r, row, c + 12));
	dp_json_str(o, "status", dp_db_val(r, row, c + 13));
	dp_json_str(o, "version", dp_db_val(r, row, c + 14));
	dp_json_int(o, "usage_count", intcol(r, row, c + 15));
	dp_json_ts(o, "created_at", dp_db_val(r, row, c + 16));
	dp_json_ts(o, "updated_at", dp_db_val(r, row, c + 17));
	return o;
}

struct json_object *
dp_template_json(const PGresult *r, int row)
{
	return dp_template_json_at(r, row, 0);
}

int
dp_template_lookup(struct dp_db *db, const char *key, bool include_deprecated,
    PGresult **out)
{
	static const char sql[] =
	    "SELECT " DP_TEMPLATE_COLS ", t.local_startup_commands "
	    "FROM templates t WHERE (t.id = $1 OR t.name = $1) "
	    "AND ($2::boolean OR t.status <> 'deprecated') "
	    "ORDER BY t.id = $1 DESC LIMIT 1";
	PGresult	*r;
	size_t		 i, n = strlen(key);
	int		 rc = 0;

	*out = NULL;
	/* Ids and names are 1–50 characters of [a-z0-9_-]. */
	if (n == 0 || n > 50)
		return 0;
	for (i = 0; i < n; i++)
		if (!((key[i] >= 'a' && key[i] <= 'z') ||
		    (key[i] >= '0' && key[i] <= '9') || key[i] == '_' ||
		    key[i] == '-'))
			return 0;
	r = dp_db_exec(db, sql, 2, (const char *const[]){ key,
	    include_deprecated ? "true" : "false" });
	if (!dp_db_ok(r)) {
		PQclear(r);
		return -1;
	}
	if (PQntuples(r) == 1) {
		*out = r;
		rc = 1;
	} else
		PQclear(r);
	return rc;
}
