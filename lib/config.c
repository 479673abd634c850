/* lib/config.c: devpocket.conf, conf.d drop-ins and environment overrides */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <ini.h>

#include "config.h"

#ifndef DP_SYSCONFDIR
#define DP_SYSCONFDIR	"/etc"
#endif
#ifndef DP_DATADIR
#define DP_DATADIR	"/usr/share/devpocket"
#endif

/*
 * Debian builds libinih with INI_RUNTIME_OPTIONS, which turns its
 * compile-time switches into variables.  Upstream builds do not have
 * them, so reference them weakly: where they are missing we keep
 * inih's compiled-in 200-byte line limit and reject longer lines.
 */
#pragma weak ini_max_line
#pragma weak ini_allow_multiline
#pragma weak ini_allow_inline_comments
#pragma weak ini_stop_on_first_error
#pragma weak ini_allow_no_value

/* Longest accepted line, without its line ending. */
#define CONF_MAX_LINE	4096
/* Largest accepted file. */
#define CONF_MAX_FILE	(1024 * 1024)
/* How much of a bad name an error message quotes. */
#define CONF_QUOTE	48

struct dp_config dp_cfg;

const char *const dp_plan_names[DP_PLAN__MAX] = {
	"free",		/* DP_PLAN_FREE */
	"starter",	/* DP_PLAN_STARTER */
	"pro",		/* DP_PLAN_PRO */
	"admin",	/* DP_PLAN_ADMIN */
};

enum ktype {
	K_STR,		/* text; min/max bound its length */
	K_PATH,		/* absolute path */
	K_URL,		/* <scheme>://…, schemes in choices */
	K_ENUM,		/* one of choices */
	K_INT,		/* decimal in [min, max] */
	K_POW2,		/* K_INT that is a power of two */
	K_BOOL,		/* true/false/yes/no/on/off/1/0 */
	K_CPU,		/* "<n>m" or cores, canonical "<n>m"; min/max in m */
	K_QTY,		/* <n>Ki|Mi|Gi|Ti, canonical; min/max in bytes */
	K__MAX
};

#define KF_SECRET	0x01	/* masked by dp_config_dump */

struct key {
	const char	*section;
	const char	*name;
	enum ktype	 type;
	size_t		 off;
	const char	*def;
	int64_t		 min, max;
	const char	*choices;	/* K_ENUM, K_URL: "a|b|c" */
	int		 flags;
};

#define OFF(f)		offsetof(struct dp_config, f)
#define KIB		((int64_t)1024)
#define TIB		(KIB * KIB * KIB * KIB)
#define STRMAX		CONF_MAX_LINE

#define S(sec, k, f, d, lo)	{ sec, k, K_STR, OFF(f), d, lo, STRMAX, NULL, 0 }
#define P(sec, k, f, d)		{ sec, k, K_PATH, OFF(f), d, 1, STRMAX, NULL, 0 }
#define U(sec, k, f, d, sch)	{ sec, k, K_URL, OFF(f), d, 1, STRMAX, sch, 0 }
#define E(sec, k, f, d, ch)	{ sec, k, K_ENUM, OFF(f), d, 0, 0, ch, 0 }
#define I(sec, k, f, d, lo, hi)	{ sec, k, K_INT, OFF(f), d, lo, hi, NULL, 0 }
#define B(sec, k, f, d)		{ sec, k, K_BOOL, OFF(f), d, 0, 0, NULL, 0 }

#define PLAN(p, n, env, dc, dm, ds, mc, mm, ms, apps)			\
	{ "plans", #n "_max_environments", K_INT,			\
	    OFF(plans[p].max_environments), env, 0, 100000, NULL, 0 },	\
	{ "plans", #n "_default_cpu", K_CPU,				\
	    OFF(plans[p].default_cpu), dc, 1, 1000000000, NULL, 0 },	\
	{ "plans", #n "_default_memory", K_QTY,				\
	    OFF(plans[p].default_memory), dm, 1, 1024 * TIB, NULL, 0 },	\
	{ "plans", #n "_default_storage", K_QTY,			\
	    OFF(plans[p].default_storage), ds, 1, 1024 * TIB, NULL, 0 },\
	{ "plans", #n "_max_cpu", K_CPU,				\
	    OFF(plans[p].max_cpu), mc, 1, 1000000000, NULL, 0 },	\
	{ "plans", #n "_max_memory", K_QTY,				\
	    OFF(plans[p].max_memory), mm, 1, 1024 * TIB, NULL, 0 },	\
	{ "plans", #n "_max_storage", K_QTY,				\
	    OFF(plans[p].max_storage), ms, 1, 1024 * TIB, NULL, 0 },	\
	{ "plans", #n "_max_apps", K_INT,				\
	    OFF(plans[p].max_apps), apps, 0, 100000, NULL, 0 }

#define RATE_MAX	1000000000

/*
 * Every key, grouped by section in the order dp_config_dump writes them.
 * Defaults are text and go through the same checks as the file does.
 */
static const struct key keys[] = {
	S("database", "url", db_url,
	    "host=/run/postgresql dbname=devpocket user=devpocket", 1),
	I("database", "connect_timeout", db_connect_timeout, "5", 1, 300),

	S("auth", "issuer", auth_issuer, "devpocket", 1),
	I("auth", "access_ttl", auth_access_ttl, "1800", 1, 604800),
	I("auth", "refresh_ttl", auth_refresh_ttl, "2592000", 1, 31536000),
	I("auth", "refresh_grace_seconds", auth_refresh_grace_seconds, "30",
	    0, 3600),
	P("auth", "jwt_key_file", auth_jwt_key_file,
	    DP_SYSCONFDIR "/devpocket/jwt.key"),
	P("auth", "secret_key_file", auth_secret_key_file,
	    DP_SYSCONFDIR "/devpocket/secret.key"),
	B("auth", "require_verified_email", auth_require_verified_email,
	    "false"),
	I("auth", "lockout_attempts", auth_lockout_attempts, "5", 1, 1000),
	I("auth", "lockout_minutes", auth_lockout_minutes, "30", 1, 10080),
	I("auth", "verify_ttl_hours", auth_verify_ttl_hours, "24", 1, 8760),
	I("auth", "reset_ttl_minutes", auth_reset_ttl_minutes, "60", 1, 10080),
	I("auth", "fresh_login_minutes", auth_fresh_login_minutes, "10",
	    1, 1440),
	{ "auth", "scrypt_n", K_POW2, OFF(auth_scrypt_n), "32768",
	    1024, 1048576, NULL, 0 },
	I("auth", "scrypt_r", auth_scrypt_r, "8", 1, 32),
	I("auth", "scrypt_p", auth_scrypt_p, "1", 1, 16),

	S("web", "cors_origins", web_cors_origins,
	    "http://localhost:3000,http://localhost:3001", 0),
	S("web", "trusted_proxies", web_trusted_proxies, "127.0.0.1,::1", 0),
	S("web", "environment", web_environment, "production", 1),
	I("web", "workers", web_workers, "0", 0, 256),
	E("web", "log_format", web_log_format, "json", "json|text"),
	E("web", "log_level", web_log_level, "info",
	    "debug|info|warning|error"),
	P("web", "runtime_dir", web_runtime_dir, "/run/devpocket"),
	P("web", "state_dir", web_state_dir, "/var/lib/devpocket"),
	P("web", "data_dir", web_data_dir, DP_DATADIR),

	I("limits", "body_max", limits_body_max, "1048576", 1024, 1073741824),
	I("limits", "json_depth", limits_json_depth, "32", 2, 1000),
	I("limits", "rate_anonymous", limits_rate_anonymous, "100",
	    1, RATE_MAX),
	I("limits", "rate_free", limits_rate_free, "100", 1, RATE_MAX),
	I("limits", "rate_starter", limits_rate_starter, "200", 1, RATE_MAX),
	I("limits", "rate_pro", limits_rate_pro, "300", 1, RATE_MAX),
	I("limits", "rate_auth_ip", limits_rate_auth_ip, "30", 1, RATE_MAX),
	I("limits", "rate_auth_identifier", limits_rate_auth_identifier, "5",
	    1, RATE_MAX),
	I("limits", "rate_env_create", limits_rate_env_create, "10",
	    1, RATE_MAX),
	I("limits", "rate_resend", limits_rate_resend, "3", 1, RATE_MAX),
	I("limits", "ws_per_user", limits_ws_per_user, "10", 1, RATE_MAX),
	I("limits", "session_retention_days", limits_session_retention_days,
	    "30", 1, 36500),
	I("limits", "command_history_max", limits_command_history_max,
	    "100000", 1, 1000000000),
	I("limits", "metrics_interval", limits_metrics_interval, "60",
	    1, 86400),
	I("limits", "install_timeout", limits_install_timeout, "900",
	    1, 86400),
	I("limits", "idle_stop_minutes", limits_idle_stop_minutes, "30",
	    0, 525600),
	I("limits", "terminated_retention_hours",
	    limits_terminated_retention_hours, "24", 0, 87600),
	I("limits", "sync_retention_days", limits_sync_retention_days, "30",
	    1, 36500),

	PLAN(DP_PLAN_FREE, free, "1", "500m", "1Gi", "5Gi",
	    "1000m", "2Gi", "10Gi", "1"),
	PLAN(DP_PLAN_STARTER, starter, "3", "1000m", "2Gi", "10Gi",
	    "2000m", "4Gi", "20Gi", "3"),
	PLAN(DP_PLAN_PRO, pro, "10", "2000m", "4Gi", "20Gi",
	    "4000m", "8Gi", "50Gi", "10"),
	PLAN(DP_PLAN_ADMIN, admin, "100", "4000m", "8Gi", "50Gi",
	    "8000m", "16Gi", "100Gi", "100"),

	E("mail", "transport", mail_transport, "file", "file|smtp|smtps|none"),
	S("mail", "from", mail_from, "DevPocket <no-reply@devpocket.local>", 1),
	U("mail", "frontend_url", mail_frontend_url, "http://localhost:3000",
	    "http|https"),
	P("mail", "file_dir", mail_file_dir, "/var/lib/devpocket/mail"),
	U("mail", "smtp_url", mail_smtp_url, "smtp://localhost:25",
	    "smtp|smtps"),
	S("mail", "smtp_user", mail_smtp_user, "", 0),
	{ "mail", "smtp_password", K_STR, OFF(mail_smtp_password), "",
	    0, STRMAX, NULL, KF_SECRET },
	B("mail", "smtp_starttls", mail_smtp_starttls, "true"),
	B("mail", "smtp_insecure", mail_smtp_insecure, "false"),
	I("mail", "smtp_timeout", mail_smtp_timeout, "30", 1, 300),

	U("google", "jwks_url", google_jwks_url,
	    "https://www.googleapis.com/oauth2/v3/certs", "http|https"),
	S("google", "client_ids", google_client_ids, "", 0),
	I("google", "timeout", google_timeout, "10", 1, 300),

	P("drivers", "local_root", drivers_local_root,
	    "/var/lib/devpocket/envs"),
	B("drivers", "local_sandbox", drivers_local_sandbox, "true"),
	S("drivers", "local_user", drivers_local_user, "nobody", 1),

	U("ai", "base_url", ai_base_url, "https://openrouter.ai/api/v1",
	    "http|https"),
	S("ai", "default_model", ai_default_model, "google/gemini-2.5-flash",
	    1),
	I("ai", "timeout", ai_timeout, "60", 1, 600),

	S("apps", "domain", apps_domain, "apps.localhost", 1),
	E("apps", "public_scheme", apps_public_scheme, "https", "http|https"),
	I("apps", "public_port", apps_public_port, "0", 0, 65535),
	B("apps", "allow_file_urls", apps_allow_file_urls, "false"),
	I("apps", "build_timeout", apps_build_timeout, "900", 1, 86400),

	B("ssh", "allow_private_networks", ssh_allow_private_networks,
	    "false"),
};

/* State of one file being parsed. */
struct parse {
	struct dp_config	*cfg;
	const char		*file;
	const char		*buf;	/* whole file, NUL-free */
	size_t			 len, pos;
	int			 lineno;	/* line last handed to inih */
	bool			 failed;	/* err already filled */
	struct dp_err		*err;
};

static char **
str_field(struct dp_config *cfg, const struct key *k)
{
	return (char **)((char *)cfg + k->off);
}

static int64_t *
int_field(struct dp_config *cfg, const struct key *k)
{
	return (int64_t *)((char *)cfg + k->off);
}

static bool *
bool_field(struct dp_config *cfg, const struct key *k)
{
	return (bool *)((char *)cfg + k->off);
}

/* Copy s for an error message: printable ASCII only, capped. */
static void
quote(char *out, size_t sz, const char *s)
{
	size_t	 i, n = 0;

	for (i = 0; s[i] != '\0' && n + 1 < sz; i++) {
		if (n >= CONF_QUOTE) {
			if (n + 4 < sz) {
				memcpy(out + n, "...", 3);
				n += 3;
			}
			break;
		}
		out[n++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	}
	out[n] = '\0';
}

static const struct key *
find_key(const char *section, const char *name)
{
	size_t	 i;

	for (i = 0; i < DP_NITEMS(keys); i++)
		if (strcmp(keys[i].section, section) == 0 &&
		    strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

static bool
known_section(const char *section)
{
	size_t	 i;

	for (i = 0; i < DP_NITEMS(keys); i++)
		if (strcmp(keys[i].section, section) == 0)
			return true;
	return false;
}

/* True if s is one of the '|'-separated choices. */
static bool
in_choices(const char *choices, const char *s, size_t n)
{
	const char	*p = choices, *bar;
	size_t		 len;

	for (;;) {
		bar = strchr(p, '|');
		len = bar != NULL ? (size_t)(bar - p) : strlen(p);
		if (len == n && strncmp(p, s, n) == 0)
			return true;
		if (bar == NULL)
			return false;
		p = bar + 1;
	}
}

/* Valid UTF-8 without control characters (tab allowed). */
static bool
clean_text(const char *s)
{
	const unsigned char	*p = (const unsigned char *)s;
	unsigned int		 c, min;
	int			 n, i;

	while (*p != '\0') {
		c = *p;
		if (c < 0x80) {
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return false;
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			c &= 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			c &= 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			c &= 0x07;
			min = 0x10000;
		} else
			return false;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			c = (c << 6) | (p[i] & 0x3f);
		}
		if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
			return false;
		/* C1 controls. */
		if (c >= 0x80 && c < 0xa0)
			return false;
		p += n + 1;
	}
	return true;
}

static int
parse_bool(const char *s, bool *out)
{
	if (strcasecmp(s, "true") == 0 || strcasecmp(s, "yes") == 0 ||
	    strcasecmp(s, "on") == 0 || strcmp(s, "1") == 0)
		*out = true;
	else if (strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 ||
	    strcasecmp(s, "off") == 0 || strcmp(s, "0") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

/* Decimal digits only, at most 18 of them (cannot overflow int64). */
static int
parse_digits(const char *s, size_t n, int64_t *out)
{
	int64_t	 v = 0;
	size_t	 i;

	if (n == 0 || n > 18)
		return -1;
	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 0;
}

/* "<n>m" or cores with up to three decimals, into millicores. */
static int
parse_cpu(const char *s, int64_t *mc)
{
	size_t		 n = strlen(s);
	const char	*dot;
	int64_t		 whole, frac = 0;
	size_t		 fl, i;

	if (n > 1 && s[n - 1] == 'm')
		return parse_digits(s, n - 1, mc);
	dot = strchr(s, '.');
	if (dot == NULL) {
		if (parse_digits(s, n, &whole) == -1 || whole > 1000000000)
			return -1;
		*mc = whole * 1000;
		return 0;
	}
	fl = n - (size_t)(dot - s) - 1;
	if (fl < 1 || fl > 3 ||
	    parse_digits(s, (size_t)(dot - s), &whole) == -1 ||
	    parse_digits(dot + 1, fl, &frac) == -1 || whole > 1000000000)
		return -1;
	for (i = fl; i < 3; i++)
		frac *= 10;
	*mc = whole * 1000 + frac;
	return 0;
}

/* ^[1-9][0-9]*(Ki|Mi|Gi|Ti)$ into bytes. */
static int
parse_qty(const char *s, int64_t *bytes)
{
	static const char	 units[] = "KMGT";
	size_t			 n = strlen(s);
	const char		*u;
	int64_t			 v, mul = KIB;

	if (n < 3 || s[0] < '1' || s[0] > '9' || s[n - 1] != 'i' ||
	    (u = strchr(units, s[n - 2])) == NULL)
		return -1;
	if (parse_digits(s, n - 2, &v) == -1)
		return -1;
	for (; u > units; u--)
		mul *= KIB;
	if (v > INT64_MAX / mul)
		return -1;
	*bytes = v * mul;
	return 0;
}

/* Canonical quantity: the largest unit that divides exactly. */
static void
fmt_qty(char *out, size_t sz, int64_t bytes)
{
	static const char	*units[] = { "Ti", "Gi", "Mi", "Ki" };
	int64_t			 mul = TIB;
	size_t			 i;

	/* parse_qty gives multiples of Ki, so the loop stops at "Ki". */
	for (i = 0; i + 1 < DP_NITEMS(units); i++, mul /= KIB)
		if (bytes % mul == 0)
			break;
	snprintf(out, sz, "%" PRId64 "%s", bytes / mul, units[i]);
}

/* Skip leading and trailing spaces and tabs into a fresh copy. */
static char *
trimmed(const char *s)
{
	size_t	 n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' ||
	    s[n - 1] == '\r' || s[n - 1] == '\n'))
		n--;
	return dp_xstrndup(s, n);
}

/*
 * Check value for k and store it.  On error writes "[section] key: why"
 * to why and returns -1, leaving the field unchanged.
 */
static int
set_value(struct dp_config *cfg, const struct key *k, const char *raw,
    char *why, size_t whysz)
{
	char		*v = NULL, buf[64];
	const char	*sep;
	int64_t		 n;
	bool		 b;
	size_t		 len;
	int		 rc = -1;

	v = trimmed(raw);
	len = strlen(v);
	if (!clean_text(v)) {
		snprintf(why, whysz, "[%s] %s: control character or invalid "
		    "UTF-8", k->section, k->name);
		goto out;
	}
	switch (k->type) {
	case K_STR:
	case K_PATH:
	case K_URL:
		if ((int64_t)len < k->min || (int64_t)len > k->max) {
			snprintf(why, whysz, "[%s] %s: length must be between "
			    "%" PRId64 " and %" PRId64, k->section, k->name,
			    k->min, k->max);
			goto out;
		}
		if (k->type == K_PATH && v[0] != '/') {
			snprintf(why, whysz, "[%s] %s: must be an absolute "
			    "path", k->section, k->name);
			goto out;
		}
		if (k->type == K_URL && ((sep = strstr(v, "://")) == NULL ||
		    !in_choices(k->choices, v, (size_t)(sep - v)) ||
		    sep[3] == '\0' || strpbrk(v, " \t") != NULL)) {
			snprintf(why, whysz, "[%s] %s: must be a URL (%s)",
			    k->section, k->name, k->choices);
			goto out;
		}
		free(*str_field(cfg, k));
		*str_field(cfg, k) = v;
		v = NULL;
		break;
	case K_ENUM:
		if (!in_choices(k->choices, v, len)) {
			snprintf(why, whysz, "[%s] %s: must be one of %s",
			    k->section, k->name, k->choices);
			goto out;
		}
		free(*str_field(cfg, k));
		*str_field(cfg, k) = v;
		v = NULL;
		break;
	case K_INT:
	case K_POW2:
		if (dp_parse_int64(v, INT64_MIN, INT64_MAX, &n) == -1) {
			snprintf(why, whysz, "[%s] %s: not an integer",
			    k->section, k->name);
			goto out;
		}
		if (n < k->min || n > k->max) {
			snprintf(why, whysz, "[%s] %s: must be between "
			    "%" PRId64 " and %" PRId64, k->section, k->name,
			    k->min, k->max);
			goto out;
		}
		if (k->type == K_POW2 && (n & (n - 1)) != 0) {
			snprintf(why, whysz, "[%s] %s: must be a power of two",
			    k->section, k->name);
			goto out;
		}
		*int_field(cfg, k) = n;
		break;
	case K_BOOL:
		if (parse_bool(v, &b) == -1) {
			snprintf(why, whysz, "[%s] %s: must be true or false",
			    k->section, k->name);
			goto out;
		}
		*bool_field(cfg, k) = b;
		break;
	case K_CPU:
		if (parse_cpu(v, &n) == -1) {
			snprintf(why, whysz, "[%s] %s: must be millicores "
			    "(500m) or cores (0.5)", k->section, k->name);
			goto out;
		}
		if (n < k->min || n > k->max) {
			snprintf(why, whysz, "[%s] %s: must be between "
			    "%" PRId64 "m and %" PRId64 "m", k->section,
			    k->name, k->min, k->max);
			goto out;
		}
		snprintf(buf, sizeof(buf), "%" PRId64 "m", n);
		free(*str_field(cfg, k));
		*str_field(cfg, k) = dp_xstrdup(buf);
		break;
	case K_QTY:
		if (parse_qty(v, &n) == -1 || n < k->min || n > k->max) {
			snprintf(why, whysz, "[%s] %s: must be a quantity "
			    "<n>Ki, Mi, Gi or Ti (at most 1024Ti)",
			    k->section, k->name);
			goto out;
		}
		fmt_qty(buf, sizeof(buf), n);
		free(*str_field(cfg, k));
		*str_field(cfg, k) = dp_xstrdup(buf);
		break;
	case K__MAX:
		abort();
	}
	rc = 0;
out:
	free(v);
	return rc;
}

void
dp_config_defaults(struct dp_config *cfg)
{
	char	 why[256];
	size_t	 i;

	memset(cfg, 0, sizeof(*cfg));
	for (i = 0; i < DP_NITEMS(keys); i++)
		if (set_value(cfg, &keys[i], keys[i].def, why,
		    sizeof(why)) == -1) {
			/* A bad default is a bug in the table above. */
			fprintf(stderr, "config: default %s\n", why);
			abort();
		}
}

void
dp_config_release(struct dp_config *cfg)
{
	size_t	 i;
	char	**f;

	if (cfg == NULL)
		return;
	for (i = 0; i < DP_NITEMS(keys); i++) {
		switch (keys[i].type) {
		case K_STR:
		case K_PATH:
		case K_URL:
		case K_ENUM:
		case K_CPU:
		case K_QTY:
			f = str_field(cfg, &keys[i]);
			if (*f != NULL && (keys[i].flags & KF_SECRET))
				explicit_bzero(*f, strlen(*f));
			free(*f);
			break;
		default:
			break;
		}
	}
	memset(cfg, 0, sizeof(*cfg));
}

int
dp_config_set(struct dp_config *cfg, const char *section, const char *key,
    const char *value, struct dp_err *err)
{
	const struct key	*k;
	char			 why[200], qs[64], qk[64];
	int			 rc = -1;

	if (section == NULL || *section == '\0') {
		quote(qk, sizeof(qk), key);
		dp_err_set(err, 1, "key '%s' outside any [section]", qk);
		goto out;
	}
	if (!known_section(section)) {
		quote(qs, sizeof(qs), section);
		dp_err_set(err, 1, "unknown section [%s]", qs);
		goto out;
	}
	if ((k = find_key(section, key)) == NULL) {
		quote(qs, sizeof(qs), section);
		quote(qk, sizeof(qk), key);
		dp_err_set(err, 1, "unknown key '%s' in [%s]", qk, qs);
		goto out;
	}
	if (value == NULL) {
		dp_err_set(err, 1, "[%s] %s: missing value", section, key);
		goto out;
	}
	if (set_value(cfg, k, value, why, sizeof(why)) == -1) {
		dp_err_set(err, 1, "%s", why);
		goto out;
	}
	rc = 0;
out:
	return rc;
}

/* inih callback: 1 to go on, 0 on error. */
static int
ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct parse	*p = user;
	struct dp_err	 e;

	if (p->failed)
		return 0;
	e.msg[0] = '\0';
	if (dp_config_set(p->cfg, section, name, value, &e) == -1) {
		dp_err_set(p->err, 1, "%s:%d: %s", p->file, p->lineno, e.msg);
		p->failed = true;
		return 0;
	}
	return 1;
}

/*
 * inih reader: the next line of the buffer.  Leading blanks are dropped
 * so that inih never takes a line for a continuation of the previous
 * value (multi-line values are not part of our format).  check_lines
 * made sure each line fits.
 */
static char *
ini_read(char *str, int num, void *stream)
{
	struct parse	*p = stream;
	const char	*nl;
	size_t		 n, room;

	if (p->pos >= p->len || num < 2)
		return NULL;
	while (p->pos < p->len &&
	    (p->buf[p->pos] == ' ' || p->buf[p->pos] == '\t'))
		p->pos++;
	nl = memchr(p->buf + p->pos, '\n', p->len - p->pos);
	n = nl != NULL ? (size_t)(nl - (p->buf + p->pos)) + 1 :
	    p->len - p->pos;
	room = (size_t)num - 1;
	if (n > room)
		n = room;
	memcpy(str, p->buf + p->pos, n);
	str[n] = '\0';
	p->pos += n;
	p->lineno++;
	return str;
}

/* Reject NUL bytes and lines longer than maxline. */
static int
check_lines(struct parse *p, size_t maxline)
{
	size_t	 i, start = 0, n;
	int	 line = 1;

	for (i = 0; i <= p->len; i++) {
		if (i < p->len && p->buf[i] == '\0') {
			dp_err_set(p->err, 1, "%s:%d: NUL byte in line",
			    p->file, line);
			return -1;
		}
		if (i == p->len || p->buf[i] == '\n') {
			n = i - start;
			if (n > 0 && p->buf[i - 1] == '\r')
				n--;
			if (n > maxline) {
				dp_err_set(p->err, 1, "%s:%d: line longer than "
				    "%zu bytes", p->file, line, maxline);
				return -1;
			}
			start = i + 1;
			line++;
		}
	}
	return 0;
}

/* Whole file into *out; -1 with errno (EFBIG when too large). */
static int
read_file(const char *path, char **out, size_t *outlen)
{
	struct stat	 st;
	char		*buf = NULL;
	size_t		 len = 0;
	ssize_t		 r;
	int		 fd, rc = -1, saved;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto out;
	if (S_ISDIR(st.st_mode)) {
		errno = EISDIR;
		goto out;
	}
	buf = dp_xmalloc(CONF_MAX_FILE + 1);
	for (;;) {
		r = read(fd, buf + len, CONF_MAX_FILE + 1 - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			goto out;
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > CONF_MAX_FILE) {
			errno = EFBIG;
			goto out;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	rc = 0;
out:
	saved = errno;
	free(buf);
	close(fd);
	errno = saved;
	return rc;
}

/* Parse one file into cfg.  missing_ok: ENOENT is not an error. */
static int
parse_file(struct dp_config *cfg, const char *path, bool missing_ok,
    struct dp_err *err)
{
	struct parse	 p;
	char		*buf = NULL;
	size_t		 len = 0, maxline;
	bool		 runtime, o_multi = false, o_inline = false;
	bool		 o_stop = false, o_noval = false;
	int		 o_max = 0, r, rc = -1;

	if (read_file(path, &buf, &len) == -1) {
		if (errno == ENOENT && missing_ok)
			rc = 0;
		else
			dp_err_set(err, 1, "%s: %s", path, errno == EFBIG ?
			    "file larger than 1 MiB" : strerror(errno));
		goto out;
	}

	runtime = &ini_max_line != NULL && &ini_allow_multiline != NULL &&
	    &ini_allow_inline_comments != NULL &&
	    &ini_stop_on_first_error != NULL && &ini_allow_no_value != NULL;
	/* inih needs room for "\r\n\0" after the longest line. */
	maxline = runtime ? CONF_MAX_LINE : INI_MAX_LINE - 3;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.file = path;
	p.buf = buf;
	p.len = len;
	p.err = err;
	if (check_lines(&p, maxline) == -1)
		goto out;

	if (runtime) {
		o_max = ini_max_line;
		o_multi = ini_allow_multiline;
		o_inline = ini_allow_inline_comments;
		o_stop = ini_stop_on_first_error;
		o_noval = ini_allow_no_value;
		ini_max_line = CONF_MAX_LINE + 3;
		/* Values are taken whole: "a ; b" is not a comment. */
		ini_allow_inline_comments = false;
		ini_allow_multiline = false;
		ini_stop_on_first_error = true;
		ini_allow_no_value = false;
	}
	r = ini_parse_stream(ini_read, &p, ini_cb, &p);
	if (runtime) {
		ini_max_line = o_max;
		ini_allow_multiline = o_multi;
		ini_allow_inline_comments = o_inline;
		ini_stop_on_first_error = o_stop;
		ini_allow_no_value = o_noval;
	}
	if (p.failed)
		goto out;
	if (r == -2) {
		dp_err_set(err, 1, "%s: out of memory", path);
		goto out;
	}
	if (r != 0) {
		dp_err_set(err, 1, "%s:%d: syntax error: expected [section] "
		    "or key = value", path, r);
		goto out;
	}
	rc = 0;
out:
	free(buf);
	return rc;
}

static int
namecmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every <dir>/conf.d/ *.conf in byte order. */
static int
parse_dropins(struct dp_config *cfg, const char *path, struct dp_err *err)
{
	struct dp_buf	 dir = { 0 }, file = { 0 };
	struct dirent	*de;
	const char	*slash;
	char		**names = NULL;
	size_t		 n = 0, cap = 0, i, len;
	DIR		*d = NULL;
	int		 rc = -1;

	if ((slash = strrchr(path, '/')) == NULL)
		dp_buf_adds(&dir, ".");
	else if (slash == path)
		dp_buf_adds(&dir, "");
	else
		dp_buf_add(&dir, path, (size_t)(slash - path));
	dp_buf_adds(&dir, "/conf.d");

	if ((d = opendir(dir.s)) == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			rc = 0;
		else
			dp_err_set(err, 1, "%s: %s", dir.s, strerror(errno));
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		len = strlen(de->d_name);
		if (de->d_name[0] == '.' || len <= 5 ||
		    strcmp(de->d_name + len - 5, ".conf") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			names = dp_xrealloc(names, cap * sizeof(*names));
		}
		names[n++] = dp_xstrdup(de->d_name);
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), namecmp);
	for (i = 0; i < n; i++) {
		dp_buf_reset(&file);
		dp_buf_printf(&file, "%s/%s", dir.s, names[i]);
		if (parse_file(cfg, file.s, false, err) == -1)
			goto out;
	}
	rc = 0;
out:
	if (d != NULL)
		closedir(d);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	dp_buf_release(&dir);
	dp_buf_release(&file);
	return rc;
}

/* DEVPOCKET_<SECTION>_<KEY> for a key. */
static void
env_name(char *out, size_t sz, const struct key *k)
{
	size_t		 n = 0;
	const char	*parts[2] = { k->section, k->name };
	const char	*s;
	int		 i;

	snprintf(out, sz, "DEVPOCKET_");
	n = strlen(out);
	for (i = 0; i < 2; i++) {
		for (s = parts[i]; *s != '\0' && n + 2 < sz; s++)
			out[n++] = (*s >= 'a' && *s <= 'z') ? *s - 'a' + 'A' :
			    *s;
		if (i == 0 && n + 2 < sz)
			out[n++] = '_';
	}
	out[n] = '\0';
}

static int
apply_env(struct dp_config *cfg, struct dp_err *err)
{
	char		 name[128], why[200];
	const char	*v;
	size_t		 i;

	for (i = 0; i < DP_NITEMS(keys); i++) {
		env_name(name, sizeof(name), &keys[i]);
		if ((v = getenv(name)) == NULL)
			continue;
		if (strlen(v) > CONF_MAX_LINE) {
			dp_err_set(err, 1, "%s: value longer than %d bytes",
			    name, CONF_MAX_LINE);
			return -1;
		}
		if (set_value(cfg, &keys[i], v, why, sizeof(why)) == -1) {
			dp_err_set(err, 1, "%s: %s", name, why);
			return -1;
		}
	}
	return 0;
}

/* A plan's defaults must not exceed its maxima. */
static int
check_plans(const struct dp_config *cfg, struct dp_err *err)
{
	const struct dp_plan_limits	*pl;
	int64_t				 d, m;
	int				 i;

	for (i = 0; i < DP_PLAN__MAX; i++) {
		pl = &cfg->plans[i];
		if (parse_cpu(pl->default_cpu, &d) == 0 &&
		    parse_cpu(pl->max_cpu, &m) == 0 && d > m) {
			dp_err_set(err, 1, "[plans] %s_default_cpu: exceeds "
			    "%s_max_cpu", dp_plan_names[i], dp_plan_names[i]);
			return -1;
		}
		if (parse_qty(pl->default_memory, &d) == 0 &&
		    parse_qty(pl->max_memory, &m) == 0 && d > m) {
			dp_err_set(err, 1, "[plans] %s_default_memory: exceeds "
			    "%s_max_memory", dp_plan_names[i],
			    dp_plan_names[i]);
			return -1;
		}
		if (parse_qty(pl->default_storage, &d) == 0 &&
		    parse_qty(pl->max_storage, &m) == 0 && d > m) {
			dp_err_set(err, 1, "[plans] %s_default_storage: "
			    "exceeds %s_max_storage", dp_plan_names[i],
			    dp_plan_names[i]);
			return -1;
		}
	}
	return 0;
}

static char	*loaded;	/* the file of the last load */

const char *
dp_config_path(void)
{
	return loaded;
}

int
dp_config_load(struct dp_config *cfg, const char *path, bool required,
    struct dp_err *err)
{
	struct dp_config	 tmp;
	int			 rc = -1;

	dp_config_defaults(&tmp);
	if (path == NULL)
		path = dp_config_default_path();
	if (parse_file(&tmp, path, !required, err) == -1)
		goto out;
	if (parse_dropins(&tmp, path, err) == -1)
		goto out;
	if (apply_env(&tmp, err) == -1)
		goto out;
	if (check_plans(&tmp, err) == -1)
		goto out;
	/* Success: tmp's strings move to cfg. */
	dp_config_release(cfg);
	memcpy(cfg, &tmp, sizeof(*cfg));
	memset(&tmp, 0, sizeof(tmp));
	free(loaded);
	loaded = dp_xstrdup(path);
	rc = 0;
out:
	dp_config_release(&tmp);
	return rc;
}

void
dp_config_dump(const struct dp_config *cfg, struct dp_buf *out, bool mask)
{
	struct dp_config	*c = (struct dp_config *)cfg;
	const char		*sec = NULL, *s;
	size_t			 i;

	for (i = 0; i < DP_NITEMS(keys); i++) {
		if (sec == NULL || strcmp(sec, keys[i].section) != 0) {
			sec = keys[i].section;
			dp_buf_printf(out, "%s[%s]\n", i ? "\n" : "", sec);
		}
		dp_buf_printf(out, "%s = ", keys[i].name);
		switch (keys[i].type) {
		case K_INT:
		case K_POW2:
			dp_buf_printf(out, "%" PRId64, *int_field(c, &keys[i]));
			break;
		case K_BOOL:
			dp_buf_adds(out, *bool_field(c, &keys[i]) ?
			    "true" : "false");
			break;
		default:
			s = *str_field(c, &keys[i]);
			if (s == NULL)
				s = "";
			if (mask && (keys[i].flags & KF_SECRET) && *s != '\0')
				dp_buf_adds(out, "********");
			else if (mask)
				dp_redact(s, out);	/* URLs' passwords */
			else
				dp_buf_adds(out, s);
			break;
		}
		dp_buf_addc(out, '\n');
	}
}

const char *
dp_config_default_path(void)
{
	const char	*p;

	if ((p = getenv("DEVPOCKET_CONF")) != NULL && *p != '\0')
		return p;
	return DP_SYSCONFDIR "/devpocket/devpocket.conf";
}

int
dp_plan_from_name(const char *name)
{
	int	 i;

	if (name == NULL)
		return -1;
	for (i = 0; i < DP_PLAN__MAX; i++)
		if (strcmp(dp_plan_names[i], name) == 0)
			return i;
	return -1;
}
