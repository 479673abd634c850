/* lib/templates.h: environment templates: catalog files (CONTRACT §5), rows, JSON */
#ifndef DP_TEMPLATES_H
#define DP_TEMPLATES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "db.h"
#include "util.h"

/* Caps of CONTRACT §2.5 and §5. */
#define DP_TEMPLATE_FILE_MAX	1048576	/* bytes of one catalog file: the API
					   body cap (§5 allows ~800 KB) */
#define DP_TEMPLATE_TAGS_MAX	20
#define DP_TEMPLATE_TAG_LEN	30
#define DP_TEMPLATE_CMDS_MAX	100
#define DP_TEMPLATE_CMD_LEN	4096
#define DP_TEMPLATE_ENV_MAX	100
#define DP_TEMPLATE_ENV_LEN	4096

/* The category and status enums of §1.4, NULL-terminated. */
extern const char *const dp_template_categories[];
extern const char *const dp_template_statuses[];

/* A list of heap strings. */
struct dp_strv {
	char	**v;
	size_t	  n;
};

/*
 * One catalog file, defaults applied (CONTRACT §5).  Every string is a
 * heap copy owned by the struct; dp_template_release frees them.
 */
struct dp_template {
	char		*name;
	char		*display_name;
	char		*description;
	char		*category;
	struct dp_strv	 tags;
	char		*docker_image;
	int64_t		 default_port;
	char		*cpu, *memory, *storage;	/* default_resources */
	struct dp_strv	 env_keys, env_values;		/* parallel, file order */
	struct dp_strv	 startup_commands;
	bool		 has_local;	/* local_startup_commands not null */
	struct dp_strv	 local_startup_commands;
	char		*documentation_url;		/* or NULL */
	char		*icon_url;			/* or NULL */
	char		*status;
	char		*version;
};

/*
 * Parse and validate one catalog file (every rule of CONTRACT §5; the
 * name must equal the file's base name without ".yaml").  Beyond the
 * contract, and documented in docs/api-templates.md: files over 64 KiB,
 * NUL bytes, invalid UTF-8, anchors, aliases, explicit tags, more than
 * one document, duplicate keys, non-scalar keys and nesting deeper than
 * the format needs are invalid; plain (unquoted) scalars that YAML reads
 * as null, booleans (YAML 1.1 spellings included) or numbers are not
 * strings.  Returns 0 with *out filled (the caller releases it), or -1
 * with err->msg = "<path>:<line>: <message>" (line 0 when the file could
 * not be read) and *out zeroed.
 */
int	 dp_template_parse_file(const char *path, struct dp_template *out,
	    struct dp_err *err);
/* The same on a buffer; display names the file in messages and gives
 * the expected name (its base name without ".yaml"). */
int	 dp_template_parse_buf(const char *display, const char *buf,
	    size_t len, struct dp_template *out, struct dp_err *err);
/* Free the strings of t and zero it; a zeroed struct is a no-op. */
void	 dp_template_release(struct dp_template *);

/*
 * Load every "*.yaml" of dir (no hidden files, regular files only, in
 * name order) into the templates table, as POST /templates/initialize
 * does (§2.5): a missing name is created, a different version (or any
 * version with force) replaces every field from the file but id,
 * usage_count and created_at, the same version is skipped.  Each file
 * runs in its own transaction (a savepoint when the caller has one
 * open), so an invalid file changes nothing.  report (an object) gets
 * "created", "updated", "skipped" (names) and "errors" ([{file,
 * message}], file = base name); an unreadable directory is one error
 * entry.  Returns 0, or -1 on a database failure (logged by db.c; the
 * files before it stay loaded).
 */
int	 dp_templates_load_dir(struct dp_db *, const char *dir, bool force,
	    struct json_object *report);

/*
 * The columns of the Template object, for "SELECT " DP_TEMPLATE_COLS
 * " FROM templates t".  dp_template_json reads them at column 0,
 * dp_template_json_at at column c.
 */
#define DP_TEMPLATE_COLS \
	"t.id, t.name, t.display_name, t.description, t.category, t.tags, " \
	"t.docker_image, t.default_port, t.default_resources, " \
	"t.environment_variables, t.startup_commands, t.documentation_url, " \
	"t.icon_url, t.status, t.version, t.usage_count, t.created_at, " \
	"t.updated_at"
#define DP_TEMPLATE_NCOLS	18

/* The Template object of §1.4 (new reference; local_startup_commands is
 * never part of it). */
struct json_object *dp_template_json(const PGresult *, int row);
struct json_object *dp_template_json_at(const PGresult *, int row, int c);

/*
 * Find a template by id, else by name (a deprecated one only with
 * include_deprecated).  Returns 1 with *out = one row of DP_TEMPLATE_COLS
 * followed by t.local_startup_commands (column DP_TEMPLATE_NCOLS, jsonb
 * text or SQL NULL; the caller PQclears *out), 0 when there is none
 * (*out NULL; a value that cannot be a template id or name is none
 * without a query), -1 on database failure (logged by db.c, *out NULL).
 */
int	 dp_template_lookup(struct dp_db *, const char *id_or_name,
	    bool include_deprecated, PGresult **out);

#endif
