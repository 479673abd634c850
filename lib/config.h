/* lib/config.h: /etc/devpocket/devpocket.conf, one key table for every key */
#ifndef DP_CONFIG_H
#define DP_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

enum dp_plan {
	DP_PLAN_FREE,
	DP_PLAN_STARTER,
	DP_PLAN_PRO,
	DP_PLAN_ADMIN,
	DP_PLAN__MAX
};
extern const char *const dp_plan_names[DP_PLAN__MAX];

/* One plan's row of CONTRACT §4.3; sizes as strings in canonical form. */
struct dp_plan_limits {
	int64_t	 max_environments;
	char	*default_cpu, *default_memory, *default_storage;
	char	*max_cpu, *max_memory, *max_storage;
	int64_t	 max_apps;
};

/*
 * Every configuration value.  Strings are heap copies owned by the
 * struct (dp_config_release frees them).  Each field is a key of the
 * table in config.c: [section] key = field name without the prefix.
 */
struct dp_config {
	/* [database] */
	char	*db_url;		/* libpq conninfo or URI */
	int64_t	 db_connect_timeout;	/* seconds */
	/* [auth] */
	char	*auth_issuer;
	int64_t	 auth_access_ttl, auth_refresh_ttl, auth_refresh_grace_seconds;
	char	*auth_jwt_key_file, *auth_secret_key_file;
	bool	 auth_require_verified_email;
	int64_t	 auth_lockout_attempts, auth_lockout_minutes;
	int64_t	 auth_verify_ttl_hours, auth_reset_ttl_minutes;
	int64_t	 auth_fresh_login_minutes;
	int64_t	 auth_scrypt_n, auth_scrypt_r, auth_scrypt_p;
	/* [web] */
	char	*web_cors_origins;	/* comma separated, "*" = any */
	char	*web_trusted_proxies;	/* comma separated addresses */
	char	*web_environment;
	int64_t	 web_workers;		/* 0 = number of cores */
	char	*web_log_format;	/* json | text */
	char	*web_log_level;		/* debug | info | warning | error */
	char	*web_runtime_dir, *web_state_dir, *web_data_dir;
	/* [limits] */
	int64_t	 limits_body_max, limits_json_depth;
	int64_t	 limits_rate_anonymous, limits_rate_free, limits_rate_starter,
		 limits_rate_pro, limits_rate_auth_ip, limits_rate_auth_identifier,
		 limits_rate_env_create, limits_rate_resend, limits_ws_per_user;
	int64_t	 limits_session_retention_days, limits_command_history_max,
		 limits_metrics_interval, limits_install_timeout,
		 limits_idle_stop_minutes, limits_terminated_retention_hours;
	int64_t	 limits_sync_retention_days;	/* sync change log */
	/* [plans] */
	struct dp_plan_limits plans[DP_PLAN__MAX];
	/* [mail] */
	char	*mail_transport;	/* file | smtp | smtps | none */
	char	*mail_from, *mail_frontend_url, *mail_file_dir;
	char	*mail_smtp_url, *mail_smtp_user, *mail_smtp_password;
	bool	 mail_smtp_starttls, mail_smtp_insecure;
	int64_t	 mail_smtp_timeout;
	/* [google] */
	char	*google_jwks_url, *google_client_ids;
	int64_t	 google_timeout;
	/* [drivers] */
	char	*drivers_local_root;	/* environments' folders */
	bool	 drivers_local_sandbox;	/* use bubblewrap when installed */
	char	*drivers_local_user;	/* unprivileged user (when root) */
	/* [ai] */
	char	*ai_base_url;		/* OpenAI-compatible API root */
	char	*ai_default_model;
	int64_t	 ai_timeout;		/* seconds */
	/* [apps] */
	char	*apps_domain;		/* <name>-<user>.<domain> */
	char	*apps_public_scheme;	/* http | https */
	int64_t	 apps_public_port;	/* 0 = none (scheme's default) */
	bool	 apps_allow_file_urls;
	int64_t	 apps_build_timeout;	/* seconds */
	/* [ssh] */
	bool	 ssh_allow_private_networks;
};

/* The process's configuration, filled by dp_config_load. */
extern struct dp_config dp_cfg;

/*
 * Load defaults, then path (if it exists or required), then every
 * <dir of path>/conf.d/ *.conf in name order, then DEVPOCKET_<SECTION>_<KEY>
 * environment variables.  On error returns -1 and err->msg reads
 * "file:line: message" (or "DEVPOCKET_X_Y: message").  Unknown keys,
 * bad types and out-of-range values are errors.
 * The struct must be zeroed (static, "= { 0 }") or hold an earlier load:
 * on success its old strings are freed and replaced; on error it is left
 * unchanged.
 */
int	 dp_config_load(struct dp_config *, const char *path, bool required,
	    struct dp_err *err);
/* Set defaults only; overwrites without freeing (fresh or released struct). */
void	 dp_config_defaults(struct dp_config *);
void	 dp_config_release(struct dp_config *);
/* Set one key from text, as the file would; 0 or -1 with err->msg. */
int	 dp_config_set(struct dp_config *, const char *section, const char *key,
	    const char *value, struct dp_err *err);
/* Write every key with its current value as INI text (secrets masked). */
void	 dp_config_dump(const struct dp_config *, struct dp_buf *, bool mask);
/* The file of the last successful dp_config_load (NULL before one). */
const char *dp_config_path(void);
/* Path from --config, else $DEVPOCKET_CONF, else SYSCONFDIR/devpocket/devpocket.conf. */
const char *dp_config_default_path(void);
/* Plan by name; -1 when unknown. */
int	 dp_plan_from_name(const char *);

#endif
