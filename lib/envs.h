/* lib/envs.h: environments: statuses, transitions, resources, JSON, driver specs */
#ifndef DP_ENVS_H
#define DP_ENVS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "config.h"
#include "db.h"
#include "driver.h"
#include "util.h"
#include "validate.h"

/* Statuses of CONTRACT §4.1. */
enum dp_env_status {
	DP_ENV_CREATING,
	DP_ENV_INSTALLING,
	DP_ENV_RUNNING,
	DP_ENV_STOPPED,
	DP_ENV_TERMINATED,
	DP_ENV_ERROR,
	DP_ENV__MAX
};
/* "creating", … indexed by enum dp_env_status, NULL-terminated (so it
 * also serves as DP_FT_CHOICE choices). */
extern const char *const dp_env_status_names[DP_ENV__MAX + 1];
/* Status by name; -1 when unknown (or NULL). */
int	 dp_env_status_from_name(const char *);

/* What a PUT of status (CONTRACT §2.4 table) or an action does. */
enum dp_env_effect {
	DP_EFF_NONE,		/* same status: nothing */
	DP_EFF_ACCEPT,		/* creating → running: accepted, no effect */
	DP_EFF_STOP,		/* status stopped, release compute */
	DP_EFF_START,		/* status creating, allocate compute, install */
	DP_EFF_RESTART,		/* release compute, then as start */
	DP_EFF_ERROR,		/* status error, release compute */
	DP_EFF_DELETE,		/* status terminated, release everything */
	DP_EFF_INVALID,		/* 400 Cannot transition … */
	DP_EFF__MAX
};
extern const char *const dp_env_effect_names[DP_EFF__MAX];

/* The effect of PUT {"status": to} on an environment in from. */
enum dp_env_effect dp_env_transition(enum dp_env_status from,
	    enum dp_env_status to);

/* The POST actions of §2.4 / §4.2. */
enum dp_env_action {
	DP_ACT_START,
	DP_ACT_STOP,
	DP_ACT_RESTART,
	DP_ACT__MAX
};
/* True when the action is allowed from status st (§4.2). */
bool	 dp_env_action_allowed(enum dp_env_action, enum dp_env_status st);

/* Resources in numbers: millicores and bytes. */
enum dp_res_key {
	DP_RES_CPU,
	DP_RES_MEMORY,
	DP_RES_STORAGE,
	DP_RES__MAX
};
/* "cpu", "memory", "storage" */
extern const char *const dp_res_keys[DP_RES__MAX];

struct dp_resources {
	int64_t	 v[DP_RES__MAX];
};

/* Minimum of a requested value (§0.3): 100m, 128Mi, 1Gi. */
extern const int64_t dp_res_min[DP_RES__MAX];

/*
 * Check one requested value of key against the field rules (§0.3) and
 * the plan maximum max (§2.4): DP_V_OK with *out, DP_V_PATTERN,
 * DP_V_OUT_OF_RANGE (below the minimum or above max) or
 * DP_V_INVALID_FORMAT (NUL, bad UTF-8).
 */
enum dp_vcode dp_env_check_resource(enum dp_res_key, const char *s,
	    size_t len, int64_t max, int64_t *out);

/*
 * Parse a stored or configured value leniently (any quantity ≥ 1 byte,
 * any cpu ≥ 1m); 0 or -1.
 */
int	 dp_env_parse_resource(enum dp_res_key, const char *s, int64_t *out);

/* Defaults and maxima of a plan's row; 0, or -1 on an unparsable value. */
int	 dp_env_plan_resources(const struct dp_plan_limits *,
	    struct dp_resources *def, struct dp_resources *max);

/*
 * §4.3: a missing value defaults to max(template default, plan default),
 * capped at the plan maximum.  tmpl values ≤ 0 count as absent.
 */
void	 dp_env_default_resources(const struct dp_resources *tmpl,
	    const struct dp_resources *pdef, const struct dp_resources *pmax,
	    struct dp_resources *out);

/* Canonical rendering of a value (cpu "<n>m", quantities Ti/Gi/Mi/Ki). */
void	 dp_env_format_resource(enum dp_res_key, int64_t, char *out, size_t n);

/*
 * The columns of the Environment object (§1.3) and the FROM clause they
 * need: "SELECT " DP_ENV_COLS " " DP_ENV_FROM " WHERE …".  The
 * template's and cluster's values are the row's own copies (sql/012);
 * the metric columns come from the newest sample of a running
 * environment that is at most 5 minutes old (environment_usage: sql/011).
 */
#define DP_ENV_COLS \
	"e.id, e.name, e.description, e.template_name, e.template_id, " \
	"e.template_display_name, e.status, e.docker_image, e.port, " \
	/* in dp_res_keys' order: dp_env_write reads them so */ \
	"coalesce(e.resources->>'cpu', ''), " \
	"coalesce(e.resources->>'memory', ''), " \
	"coalesce(e.resources->>'storage', ''), " \
	"e.template_variables || e.environment_variables, " \
	"e.installation_completed, e.external_url, e.cluster_id, " \
	"e.cluster_region, e.created_at, e.updated_at, e.last_accessed, " \
	"e.last_activity, " \
	"s.cpu_usage, s.memory_usage, s.storage_usage"
#define DP_ENV_NCOLS	24
#define DP_ENV_FROM \
	"FROM environments e LEFT JOIN environment_usage s " \
	"ON s.environment_id = e.id AND e.status = 'running' " \
	"AND s.ts > now() - interval '5 minutes'"
/*
 * Visible to its owner: not terminated, or terminated within the
 * retention period; $N must be [limits] terminated_retention_hours.
 */
#define DP_ENV_VISIBLE(n) \
	"(e.status <> 'terminated' OR e.terminated_at > now() - " \
	"$" #n "::double precision * interval '1 hour')"

/*
 * Environment object of row r, columns from c (DP_ENV_COLS): appended to
 * a buffer as JSON text, or as a json-c value that serializes to it.
 */
void	 dp_env_write(struct dp_buf *, const PGresult *, int r, int c);
struct json_object *dp_env_json(const PGresult *, int r, int c);

/*
 * Append a log entry (§1.7) for environment id in the caller's
 * transaction (if any); message is cleaned (dp_env_clean_text) and
 * split into pieces of at most DP_ENV_LOG_CHARS code points.  0 or -1.
 */
#define DP_ENV_LOG_CHARS	8192
int	 dp_env_log(struct dp_db *, const char *id, const char *level,
	    const char *source, const char *message);

/*
 * Append s (len bytes) to out as valid UTF-8 without NUL: invalid
 * sequences and NUL bytes become U+FFFD.
 */
void	 dp_env_clean_text(struct dp_buf *out, const char *s, size_t len);
/* Bytes of the longest prefix of valid UTF-8 s holding at most n code
 * points. */
size_t	 dp_env_prefix_chars(const char *s, size_t len, size_t n);

/*
 * An environment as a driver sees it: the spec, the cluster connection
 * (kubeconfig decrypted), the driver, and the lifecycle columns.  All
 * strings are owned by the struct; dp_env_ctx_release frees them (the
 * kubeconfig wiped).
 */
struct dp_env_ctx {
	struct dp_env_spec	 spec;
	struct dp_cluster_conn	 conn;
	const struct dp_driver	*drv;		/* NULL: provider not linked */
	int			 status;	/* enum dp_env_status */
	int64_t			 generation;
	int64_t			 install_log_offset;
	/* storage */
	struct dp_arena		 arena;
	struct dp_buf		 kubeconfig;
};

/*
 * Load environment id (any status) with its template and cluster:
 * commands are the template's local_startup_commands when the cluster's
 * provider is local and they are not null, else startup_commands; env is
 * the template's variables overlaid by the user's.  Returns 1 (found),
 * 0 (no such environment; ctx zeroed) or -1 with err (database or key
 * failure).  The caller releases ctx in every case.
 */
int	 dp_env_ctx_load(struct dp_db *, const char *id, struct dp_env_ctx *,
	    struct dp_err *);
void	 dp_env_ctx_release(struct dp_env_ctx *);

/*
 * Terminate every non-terminated environment of a user (account
 * deletion, §2.3): status terminated, a system log entry and an
 * env.destroy job each, in the caller's transaction.  Returns the number
 * terminated, or -1.
 */
int	 dp_envs_terminate_user(struct dp_db *, const char *user_id);

/*
 * Queue job kind ("env.provision", …) for environment id at generation
 * (payload {"id","generation"}), in the caller's transaction.  0 or -1.
 */
int	 dp_env_enqueue(struct dp_db *, const char *kind, const char *id,
	    int64_t generation);

#endif
