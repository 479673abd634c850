/* lib/http.h: FastCGI responders: requests, responses, routes, validation */
#ifndef DP_HTTP_H
#define DP_HTTP_H

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "db.h"
#include "util.h"
#include "validate.h"

enum dp_method {
	DP_GET,
	DP_HEAD,
	DP_POST,
	DP_PUT,
	DP_DELETE,
	DP_PATCH,
	DP_OPTIONS,
	DP_METHOD__MAX
};
extern const char *const dp_method_names[DP_METHOD__MAX];

/* Route flags. */
#define DP_AUTH		0x0001	/* any authenticated active user */
#define DP_ADMIN	0x0002	/* plan admin (implies DP_AUTH) */
#define DP_UNVERIFIED	0x0004	/* open to unverified users under the gate */
#define DP_NOLIMIT	0x0008	/* no rate limit (health, info, metrics) */
#define DP_AUTHLIMIT	0x0010	/* the auth-per-IP limiter instead of general */
#define DP_FORM		0x0020	/* also accepts x-www-form-urlencoded */
#define DP_BODY		0x0040	/* reads a JSON body even without fields */
#define DP_NOCACHE	0x0080	/* force Cache-Control: no-store */
#define DP_ENVLIMIT	0x0100	/* + environment creation limiter (§0.10) */
#define DP_RESENDLIMIT	0x0200	/* + resend verification limiter (§0.10) */

/* Body field types for the declarative validation table (kcgi kvalid). */
enum dp_ftype {
	DP_FT_TEXT,	/* string, min..max code points */
	DP_FT_RAW,	/* string of any content but NUL, ≤ max bytes */
	DP_FT_INT,	/* JSON integer in min..max */
	DP_FT_BOOL,
	DP_FT_USERNAME,
	DP_FT_EMAIL,	/* normalised (trimmed, lowercased) */
	DP_FT_PASSWORD,
	DP_FT_REGION,
	DP_FT_URL,
	DP_FT_CHOICE,	/* one of choices */
	DP_FT_OBJECT,	/* any JSON object, checked by the handler */
	DP_FT_ARRAY,	/* any JSON array, checked by the handler */
	DP_FT__MAX
};

#define DP_F_REQUIRED	0x01
#define DP_F_EMPTYNULL	0x02	/* "" is stored as null (optional texts) */

struct dp_field {
	const char		*name;
	enum dp_ftype		 type;
	unsigned		 flags;
	int64_t			 min, max;
	const char *const	*choices;
};

/* A validated input value, in the order of the route's field table. */
struct dp_value {
	bool			 present;	/* sent and not null */
	bool			 cleared;	/* sent as "" with DP_F_EMPTYNULL */
	const char		*s;		/* strings (arena) */
	size_t			 len;
	int64_t			 i;
	bool			 b;
	struct json_object	*j;		/* objects, arrays (borrowed) */
};

/* The authenticated caller. */
struct dp_user {
	char	 id[25];
	char	 sid[25];
	char	*username;
	char	*email;
	int	 plan;		/* enum dp_plan */
	bool	 verified;
	bool	 has_password;
	int64_t	 auth_age;	/* seconds since the session authenticated */
	int64_t	 window_count;	/* general limiter count, 0 = not counted */
	PGresult *row;		/* DP_USER_COLS at column 0 (owned) */
	int	 rider;		/* the route's rider's first column in row,
				   0 when it did not ride (struct dp_rider) */
};

struct dp_req;
struct dp_res;
typedef int (*dp_handler)(struct dp_req *, struct dp_res *);

struct dp_route {
	enum dp_method		 method;
	const char		*pattern;	/* "/api/v1/x/{id}" */
	dp_handler		 handler;
	const struct dp_field	*fields;	/* NULL-name terminated, or NULL */
	unsigned		 flags;
};

/*
 * A handler's first read, asked in the authentication's own statement so
 * that its request costs one round trip to PostgreSQL, not two: sql is
 * a subquery over the caller's id (me.id), with its own ORDER BY and
 * LIMIT and no $n parameter (nor the names me and hit but for me.id),
 * LEFT JOIN LATERAL to the caller's row as x and ordered by order (x's
 * columns).  Its rows come back in user->row from column user->rider on
 * (the User columns repeated on each; one row of NULLs when it has
 * none, so its first column must never be NULL).  Only for an
 * authenticated request without a query string, whose handler would ask
 * the same; the handler asks it itself when user->rider is 0.  It is
 * read before the rate limit and the 403s are decided (a refused
 * request's read is wasted, and the caller's rate window stays locked
 * while it runs).  Set before dp_serve; one per responder.
 */
struct dp_rider {
	dp_handler		 handler;
	const char		*sql;
	const char		*order;
};
void	 dp_http_rider(const struct dp_rider *);

/* A rate limiter state for the X-RateLimit-* headers. */
struct dp_rl {
	bool	 set;
	int64_t	 limit, remaining, reset;
};

struct dp_req {
	struct dp_arena		 arena;
	enum dp_method		 method;	/* HEAD is reported as DP_HEAD */
	bool			 method_other;	/* none known (405): method 0 */
	const char		*path;		/* without the one trailing slash */
	const char		*query;
	const char		*params[8];	/* {…} segments, in order */
	size_t			 nparams;
	const struct dp_route	*route;
	char			 request_id[65];
	const char		*client_ip;
	bool			 https;
	const char		*origin;	/* allowed Origin, else NULL */
	const char		*body_raw;
	size_t			 body_len;
	struct json_object	*body;		/* parsed object or NULL */
	struct dp_value		*in;		/* per route field */
	struct dp_user		*user;		/* NULL when anonymous */
	struct dp_db		*db;		/* NULL when unavailable */
	struct json_object	*errors;	/* 422 entries */
	struct dp_rl		 rl;
	void			*io;		/* transport, private */
};

struct dp_res {
	int			 status;
	struct json_object	*json;		/* owned; sent as the body */
	struct dp_buf		 body;		/* raw body if json is NULL */
	const char		*content_type;
	struct dp_buf		 headers;	/* extra "Name: value\r\n" lines */
	const char		*route_label;	/* for metrics/log */
};

/*
 * Run a responder: parse --config/--socket/--workers, load config, open
 * the listening socket (fd 0, LISTEN_FDS or --socket), prefork workers,
 * serve until SIGTERM.  Serves one CGI request when not under FastCGI.
 */
int	 dp_serve(int argc, char *argv[], const char *program,
	    const struct dp_route *, size_t nroutes);

/* Process one request through the full pipeline (exposed for tests). */
void	 dp_http_dispatch(struct dp_req *, struct dp_res *,
	    const struct dp_route *, size_t nroutes);

/* Request accessors. */
const char *dp_req_header(struct dp_req *, const char *name); /* "Origin" */
const char *dp_req_param(struct dp_req *, const char *cgi_name);
/* First value of a query parameter, percent-decoded (arena), or NULL. */
const char *dp_req_query(struct dp_req *, const char *name);
void	*dp_req_alloc(struct dp_req *, size_t);
char	*dp_req_strdup(struct dp_req *, const char *);
/*
 * Check the JSON body against a field table as the pipeline does for a
 * route's own table (422 entries through dp_req_invalid); the values, in
 * table order, are in the arena.  For handlers whose body rules go past
 * a table (DP_BODY routes) so that one 422 lists every invalid field.
 */
struct dp_value *dp_fields_check(struct dp_req *, const struct dp_field *);
/* Value of field i of the route's table. */
#define DP_IN(req, i)	(&(req)->in[(i)])

/* Query helpers: record a 422 entry on a bad value (dp_req_invalid). */
bool	 dp_query_int(struct dp_req *, const char *name, int64_t min,
	    int64_t max, int64_t dflt, int64_t *out);
bool	 dp_query_bool(struct dp_req *, const char *name, bool dflt, bool *out);
/* Parse limit/offset (§0.4); limit is DP_PAGE_LIMIT when absent. */
#define DP_PAGE_LIMIT	100
bool	 dp_query_page(struct dp_req *, int64_t *limit, int64_t *offset);

/* Add one 422 entry. */
void	 dp_req_invalid(struct dp_req *, const char *field, enum dp_vcode,
	    const char *message);
bool	 dp_req_has_errors(const struct dp_req *);

/* Responses.  Each returns the status so handlers can `return dp_…`. */
int	 dp_ok(struct dp_res *, int status, struct json_object *); /* takes obj */
int	 dp_no_content(struct dp_res *);
int	 dp_fail(struct dp_res *, int status, const char *detail);
int	 dp_fail_invalid(struct dp_req *, struct dp_res *);
/* Log the database failure already logged by db.c, answer 500 or 503. */
int	 dp_fail_db(struct dp_req *, struct dp_res *);
int	 dp_fail_internal(struct dp_req *, struct dp_res *, const char *why);
void	 dp_res_header(struct dp_res *, const char *name, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));
void	 dp_res_total(struct dp_res *, int64_t total);

/*
 * Rate limit (fixed window aligned to the epoch) keyed by key; applies
 * the X-RateLimit-* of the lowest remaining limiter.  Returns 0 when
 * allowed, 429 after filling res when limited, -1 on database failure
 * (the caller answers with dp_fail_db).
 */
int	 dp_ratelimit(struct dp_req *, struct dp_res *, const char *key,
	    int64_t limit, int64_t window);
/* The same with a count already taken (e.g. by the bearer query). */
int	 dp_ratelimit_apply(struct dp_req *, struct dp_res *, int64_t limit,
	    int64_t window, int64_t count);
/* The current window's start and length as text, for SQL parameters. */
void	 dp_ratelimit_window(int64_t window, char start[24], char len[24]);

/* JSON helpers. */
void	 dp_json_str(struct json_object *, const char *key, const char *s);
void	 dp_json_int(struct json_object *, const char *key, int64_t);
void	 dp_json_bool(struct json_object *, const char *key, bool);
void	 dp_json_double(struct json_object *, const char *key, double);
/* PostgreSQL timestamptz text → "YYYY-MM-DDTHH:MM:SS.ffffffZ" (or null). */
void	 dp_json_ts(struct json_object *, const char *key, const char *pgts);
/*
 * JSON written directly into a buffer, as json-c serializes the dp_json_*
 * call of the same name (an object per value costs more than the value).
 * The caller opens and closes objects; each key is dp_buf_add_jkey's.
 * dp_jw_pg_double writes a float8 column's text as dp_json_double would
 * its value (NULL: 0.0), dp_jw_pg_object a jsonb object's text without
 * its blanks ({} when NULL or not an object).  dp_json_raw makes a json-c
 * value whose serialization is text (the buffer moves into it), for a
 * response body.
 */
void	 dp_jw_str(struct dp_buf *, const char *key, const char *s);
void	 dp_jw_int(struct dp_buf *, const char *key, int64_t);
void	 dp_jw_bool(struct dp_buf *, const char *key, bool);
void	 dp_jw_pg_double(struct dp_buf *, const char *key, const char *s);
void	 dp_jw_ts(struct dp_buf *, const char *key, const char *pgts);
void	 dp_jw_pg_object(struct dp_buf *, const char *key, const char *s);
struct json_object *dp_json_raw(struct dp_buf *text);
/*
 * Parse a JSON text (RFC 8259: json-c's NaN, Infinity and "1." refused)
 * with a depth cap and strict UTF-8 in every string and key (no overlong
 * forms, surrogates or code points above U+10FFFF).  dp_json_parse_value
 * returns 0 and *out (NULL for the text null) or -1; dp_json_parse
 * returns the value, NULL on error (and for null).
 */
int	 dp_json_parse_value(const char *s, size_t len, int depth,
	    struct json_object **out);
struct json_object *dp_json_parse(const char *s, size_t len, int depth);

/* The per-process database connection, opened lazily; NULL if down. */
struct dp_db *dp_http_db(void);

#endif
