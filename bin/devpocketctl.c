/* bin/devpocketctl.c: the administration command line (migrate, users, doctor, config) */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "config.h"
#include "clusters.h"
#include "crypto.h"
#include "templates.h"
#include "validate.h"
#include "db.h"
#include "log.h"
#include "mail.h"
#include "password.h"
#include "util.h"
#include "validate.h"

/* Serialises concurrent `devpocketctl migrate` runs ("devp" in ASCII). */
#define MIGRATE_LOCK	"1684371056"
/* A migration file larger than this is a mistake. */
#define MIGRATION_MAX	(16 * 1024 * 1024)
/* Longest password line read from stdin. */
#define PASSWORD_LINE	1024

#define EXIT_USAGE	2

static const char	*progname = "devpocketctl";
static const char	*cfg_path;	/* from --config, else NULL */
static struct dp_db	*db;

static void
usage(void)
{
	fprintf(stderr,
	    "usage: devpocketctl [--config PATH] command [arguments]\n"
	    "commands:\n"
	    "  migrate\n"
	    "  user create --username NAME --email ADDRESS --password PW|-\n"
	    "              [--plan free|starter|pro|admin] [--verified]"
	    " [--full-name NAME]\n"
	    "  user set-plan USERNAME PLAN\n"
	    "  user verify USERNAME\n"
	    "  user disable USERNAME\n"
	    "  user enable USERNAME\n"
	    "  user list\n"
	    "  doctor\n"
	    "  config dump\n"
	    "  keygen PATH...\n"
	    "  templates load [--force] [DIR]\n"
	    "  templates list [DIR]\n"
	    "  clusters ensure-local [REGION]\n");
}

static void
complain(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print "devpocketctl: message" on stderr. */
static void
complain(const char *fmt, ...)
{
	va_list	 ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* First line of a libpq message, for one-line reports. */
static int
line_len(const char *s)
{
	return (int)strcspn(s, "\n");
}

static int
load_config(struct dp_err *err)
{
	const char	*env = getenv("DEVPOCKET_CONF");
	bool		 required;

	required = cfg_path != NULL || (env != NULL && *env != '\0');
	return dp_config_load(&dp_cfg, cfg_path, required, err);
}

static const char *
config_path(void)
{
	return cfg_path != NULL ? cfg_path : dp_config_default_path();
}

/* Connect to the configured database; 0, or -1 after printing why. */
static int
open_db(void)
{
	struct dp_err	 err = { 0 };

	if (db != NULL)
		return 0;
	if ((db = dp_db_open(dp_cfg.db_url, &err)) == NULL) {
		complain("%.*s", line_len(err.msg), err.msg);
		return -1;
	}
	return 0;
}

/* --- migrations ----------------------------------------------------------- */

/* NNN_name.sql: at least three digits, an underscore, the .sql suffix. */
static int
is_migration(const struct dirent *d)
{
	const char	*s = d->d_name;
	size_t		 n = strlen(s), i;

	if (n < 9 || strcmp(s + n - 4, ".sql") != 0)
		return 0;
	for (i = 0; i < 3; i++)
		if (s[i] < '0' || s[i] > '9')
			return 0;
	while (s[i] >= '0' && s[i] <= '9')
		i++;
	return s[i] == '_' && i + 1 < n - 4;
}

static int
name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

struct migrations {
	char	 dir[4096];
	char	**names;	/* file names, sorted */
	size_t	 n;
};

static void
migrations_release(struct migrations *m)
{
	size_t	 i;

	for (i = 0; i < m->n; i++)
		free(m->names[i]);
	free(m->names);
	m->names = NULL;
	m->n = 0;
}

/* The migration files of <data_dir>/sql; 0, or -1 with err. */
static int
migrations_list(struct migrations *m, struct dp_err *err)
{
	struct dirent	**ents = NULL;
	int		 i, n;
	int		 w;

	memset(m, 0, sizeof(*m));
	w = snprintf(m->dir, sizeof(m->dir), "%s/sql", dp_cfg.web_data_dir);
	if (w < 0 || (size_t)w >= sizeof(m->dir)) {
		dp_err_set(err, 0, "data_dir is too long");
		return -1;
	}
	if ((n = scandir(m->dir, &ents, is_migration, name_cmp)) == -1) {
		dp_err_set(err, errno, "%s: %s", m->dir, strerror(errno));
		return -1;
	}
	m->names = dp_xcalloc((size_t)n, sizeof(*m->names));
	for (i = 0; i < n; i++) {
		m->names[i] = dp_xstrdup(ents[i]->d_name);
		free(ents[i]);
	}
	free(ents);
	m->n = (size_t)n;
	if (n == 0) {
		dp_err_set(err, 0, "%s: no migration files", m->dir);
		migrations_release(m);
		return -1;
	}
	return 0;
}

/* Version recorded for a file: its name without ".sql". */
static char *
version_of(const char *name)
{
	return dp_xstrndup(name, strlen(name) - 4);
}

/* Read a whole migration file; 0, or -1 with err. */
static int
read_sql(const char *path, struct dp_buf *b, struct dp_err *err)
{
	char	 chunk[8192];
	FILE	*f;
	size_t	 n;
	int	 rc = -1;

	if ((f = fopen(path, "re")) == NULL) {
		dp_err_set(err, errno, "%s", strerror(errno));
		return -1;
	}
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b->len + n > MIGRATION_MAX) {
			dp_err_set(err, 0, "file is larger than %d bytes",
			    MIGRATION_MAX);
			goto out;
		}
		dp_buf_add(b, chunk, n);
	}
	if (ferror(f)) {
		dp_err_set(err, errno, "%s", strerror(errno));
		goto out;
	}
	/* The simple query protocol would silently stop at a NUL. */
	if (memchr(b->s ? b->s : "", '\0', b->len) != NULL) {
		dp_err_set(err, 0, "file contains a NUL byte");
		goto out;
	}
	if (b->len == 0) {
		dp_err_set(err, 0, "file is empty");
		goto out;
	}
	rc = 0;
out:
	fclose(f);
	return rc;
}

/* Print a failed statement's message, without the trailing newline. */
static void
report_pg(const char *what, const PGresult *r, PGconn *c)
{
	const char	*msg = r != NULL ? PQresultErrorMessage(r) : "";
	size_t		 n;

	if (*msg == '\0')
		msg = PQerrorMessage(c);
	n = strlen(msg);
	while (n > 0 && msg[n - 1] == '\n')
		n--;
	complain("%s: %.*s", what, (int)n, msg);
}

static PGresult *
pexec(PGconn *c, const char *sql, int n, const char *const *params)
{
	return PQexecParams(c, sql, n, NULL, params, NULL, NULL, 0);
}

static bool
res_ok(const PGresult *r)
{
	return dp_db_ok(r);
}

/*
 * Apply every migration not yet recorded, all in one transaction under
 * an advisory lock, so two concurrent runs cannot interleave and a
 * failure leaves the database exactly as it was.
 */
static int
cmd_migrate(int argc, char *argv[])
{
	struct migrations m = { 0 };
	struct dp_err	 err = { 0 };
	struct dp_buf	 sql = { 0 }, path = { 0 }, done = { 0 };
	PGresult	*r = NULL;
	PGconn		*c;
	const char	*params[1];
	char		*version = NULL;
	size_t		 i, applied = 0;
	int		 status = 1;
	bool		 began = false;

	(void)argv;
	if (argc != 1) {
		usage();
		return EXIT_USAGE;
	}
	if (migrations_list(&m, &err) == -1) {
		complain("migrate: %s", err.msg);
		goto out;
	}
	if (open_db() == -1)
		goto out;
	c = dp_db_conn(db);
	r = PQexec(c, "BEGIN");
	if (!res_ok(r)) {
		report_pg("migrate: BEGIN", r, c);
		goto out;
	}
	began = true;
	PQclear(r);
	r = PQexec(c, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")");
	if (!res_ok(r)) {
		report_pg("migrate: lock", r, c);
		goto out;
	}
	PQclear(r);
	r = PQexec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
	    "version text PRIMARY KEY, "
	    "applied_at timestamptz NOT NULL DEFAULT now())");
	if (!res_ok(r)) {
		report_pg("migrate: schema_migrations", r, c);
		goto out;
	}
	for (i = 0; i < m.n; i++) {
		PQclear(r);
		free(version);
		version = version_of(m.names[i]);
		params[0] = version;
		r = pexec(c, "SELECT 1 FROM schema_migrations WHERE version = $1",
		    1, params);
		if (!res_ok(r)) {
			report_pg("migrate: schema_migrations", r, c);
			goto out;
		}
		if (PQntuples(r) > 0)
			continue;
		PQclear(r);
		r = NULL;
		dp_buf_reset(&sql);
		dp_buf_reset(&path);
		dp_buf_printf(&path, "%s/%s", m.dir, m.names[i]);
		if (read_sql(path.s, &sql, &err) == -1) {
			complain("migrate: %s: %s", path.s, err.msg);
			goto out;
		}
		r = PQexec(c, sql.s);
		if (!res_ok(r)) {
			report_pg(m.names[i], r, c);
			goto out;
		}
		/* A COMMIT or ROLLBACK in the file would break atomicity. */
		if (PQtransactionStatus(c) != PQTRANS_INTRANS) {
			complain("%s: the file ends the transaction (no BEGIN, "
			    "COMMIT or ROLLBACK in migrations): what ran before "
			    "it may be committed; check schema_migrations",
			    m.names[i]);
			began = false;
			goto out;
		}
		PQclear(r);
		r = pexec(c, "INSERT INTO schema_migrations (version) "
		    "VALUES ($1)", 1, params);
		if (!res_ok(r)) {
			report_pg("migrate: schema_migrations", r, c);
			goto out;
		}
		dp_buf_printf(&done, "applied %s\n", version);
		applied++;
	}
	PQclear(r);
	r = PQexec(c, "COMMIT");
	if (!res_ok(r) || PQtransactionStatus(c) != PQTRANS_IDLE) {
		report_pg("migrate: COMMIT", r, c);
		goto out;
	}
	/* Only committed work is reported as applied. */
	if (applied == 0)
		printf("database is up to date\n");
	else
		fputs(done.s, stdout);
	status = 0;
out:
	PQclear(r);
	if (status != 0 && db != NULL)
		dp_db_rollback(db);
	if (status != 0 && began)
		complain("migrate: rolled back; nothing was applied");
	free(version);
	dp_buf_release(&sql);
	dp_buf_release(&path);
	dp_buf_release(&done);
	migrations_release(&m);
	return status;
}

/*
 * Versions of m not yet recorded, as "a, b" in pending (empty when up to
 * date).  0, or -1 with err.
 */
static int
pending_migrations(const struct migrations *m, struct dp_buf *pending,
    size_t *npending, struct dp_err *err)
{
	PGresult	*r = NULL;
	const char	*params[1];
	char		*version = NULL;
	size_t		 i;
	int		 rc = -1;

	*npending = 0;
	r = dp_db_exec(db, "SELECT to_regclass('schema_migrations') IS NULL",
	    0, NULL);
	if (!dp_db_ok(r)) {
		dp_err_set(err, 0, "query failed");
		goto out;
	}
	if (strcmp(PQgetvalue(r, 0, 0), "t") == 0) {
		dp_err_set(err, 0, "never migrated (run devpocketctl migrate)");
		goto out;
	}
	for (i = 0; i < m->n; i++) {
		PQclear(r);
		free(version);
		version = version_of(m->names[i]);
		params[0] = version;
		r = dp_db_exec(db, "SELECT 1 FROM schema_migrations "
		    "WHERE version = $1", 1, params);
		if (!dp_db_ok(r)) {
			dp_err_set(err, 0, "query failed");
			goto out;
		}
		if (PQntuples(r) == 0) {
			if (pending->len > 0)
				dp_buf_adds(pending, ", ");
			dp_buf_adds(pending, version);
			(*npending)++;
		}
	}
	rc = 0;
out:
	free(version);
	PQclear(r);
	return rc;
}

/* --- users ---------------------------------------------------------------- */

/* Replace control characters so database text cannot drive the terminal. */
static void
print_field(const char *s)
{
	for (; s != NULL && *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

/*
 * Read one line (the password) from stdin into b; 0 or -1.  On a
 * terminal it asks on stderr and does not echo what is typed.
 */
static int
read_password_line(struct dp_buf *b)
{
	struct termios	 old, quiet;
	char		 line[PASSWORD_LINE + 2];
	size_t		 n;
	int		 rc = -1;
	bool		 tty;

	tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
	if (tty) {
		fputs("Password: ", stderr);
		fflush(stderr);
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		quiet.c_lflag |= ECHONL;
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	}
	if (fgets(line, sizeof(line), stdin) == NULL) {
		complain("no password on standard input");
		goto out;
	}
	n = strlen(line);
	if (n > 0 && line[n - 1] == '\n')
		n--;
	else if (n == sizeof(line) - 1) {
		complain("password line too long");
		goto out;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	dp_buf_add(b, line, n);
	rc = 0;
out:
	if (tty)
		(void)tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	explicit_bzero(line, sizeof(line));
	return rc;
}

static const char *
vname(enum dp_vcode v)
{
	return v < DP_V__MAX ? dp_vcode_names[v] : "invalid";
}

static int
user_create(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "username",	required_argument,	NULL, 'u' },
		{ "email",	required_argument,	NULL, 'e' },
		{ "password",	required_argument,	NULL, 'p' },
		{ "plan",	required_argument,	NULL, 'P' },
		{ "verified",	no_argument,		NULL, 'v' },
		{ "full-name",	required_argument,	NULL, 'n' },
		{ NULL,		0,			NULL, 0 },
	};
	struct dp_buf	 pw = { 0 };
	const char	*username = NULL, *email = NULL, *password = NULL;
	const char	*plan = "free", *full_name = NULL, *params[7];
	const char	*constraint;
	PGresult	*r = NULL;
	enum dp_vcode	 v;
	char		*lemail = NULL, mcf[256], id[25];
	bool		 verified = false;
	int		 ch, status = 1;

	mcf[0] = '\0';
	optind = 0;
	while ((ch = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			username = optarg;
			break;
		case 'e':
			email = optarg;
			break;
		case 'p':
			password = optarg;
			break;
		case 'P':
			plan = optarg;
			break;
		case 'v':
			verified = true;
			break;
		case 'n':
			full_name = optarg;
			break;
		default:
			usage();
			status = EXIT_USAGE;
			goto out;
		}
	}
	if (optind != argc || username == NULL || email == NULL ||
	    password == NULL) {
		usage();
		status = EXIT_USAGE;
		goto out;
	}
	if ((v = dp_check_username(username, strlen(username))) != DP_V_OK) {
		complain("invalid username (%s): 3-30 characters of A-Z a-z 0-9 "
		    "_ -", vname(v));
		goto out;
	}
	lemail = dp_xmalloc(strlen(email) + 1);
	if ((v = dp_check_email(email, strlen(email), lemail)) != DP_V_OK) {
		complain("invalid email address (%s)", vname(v));
		goto out;
	}
	if (dp_plan_from_name(plan) == -1) {
		complain("unknown plan: use free, starter, pro or admin");
		goto out;
	}
	if (full_name != NULL && (v = dp_check_text(full_name,
	    strlen(full_name), 0, 100)) != DP_V_OK) {
		complain("invalid full name (%s): at most 100 characters",
		    vname(v));
		goto out;
	}
	if (strcmp(password, "-") == 0) {
		if (read_password_line(&pw) == -1)
			goto out;
	} else
		dp_buf_adds(&pw, password);
	if ((v = dp_check_password(pw.s ? pw.s : "", pw.len)) != DP_V_OK) {
		complain("unacceptable password (%s): 8-128 characters with a "
		    "lowercase letter, an uppercase letter and a digit",
		    vname(v));
		goto out;
	}
	if (dp_password_hash(pw.s, (uint64_t)dp_cfg.auth_scrypt_n,
	    (uint32_t)dp_cfg.auth_scrypt_r, (uint32_t)dp_cfg.auth_scrypt_p,
	    mcf, sizeof(mcf)) == -1) {
		complain("password hashing failed");
		goto out;
	}
	if (open_db() == -1)
		goto out;
	dp_new_id(id);
	params[0] = id;
	params[1] = username;
	params[2] = lemail;
	params[3] = mcf;
	params[4] = full_name != NULL && *full_name != '\0' ? full_name : NULL;
	params[5] = verified ? "true" : "false";
	params[6] = plan;
	r = dp_db_exec(db, "INSERT INTO users (id, username, email, "
	    "password_hash, full_name, is_verified, subscription_plan) "
	    "VALUES ($1, $2, $3, $4, $5, $6::boolean, $7)", 7, params);
	if (!dp_db_ok(r)) {
		if (strcmp(dp_db_sqlstate(r), "23505") != 0) {
			complain("user create: %.*s",
			    line_len(PQresultErrorMessage(r)),
			    PQresultErrorMessage(r));
			goto out;
		}
		constraint = PQresultErrorField(r, PG_DIAG_CONSTRAINT_NAME);
		if (constraint != NULL &&
		    strcmp(constraint, "users_email_lower") == 0)
			complain("email already registered: %s", lemail);
		else if (constraint != NULL &&
		    strcmp(constraint, "users_username_lower") == 0)
			complain("username already taken: %s", username);
		else
			complain("user already exists");
		goto out;
	}
	printf("%s\n", id);
	status = 0;
out:
	PQclear(r);
	explicit_bzero(mcf, sizeof(mcf));
	dp_buf_wipe(&pw);
	free(lemail);
	return status;
}

/* The username argument of the one-user commands, or NULL after usage. */
static const char *
one_user_arg(int argc, char *argv[], int want)
{
	if (argc != want) {
		usage();
		return NULL;
	}
	return argv[1];
}

/*
 * Run an UPDATE of one user matched case-insensitively by $1 with a
 * RETURNING clause; prints "no such user" when nothing matched.  The
 * result in *out (caller clears) on success.  0, 1 (no user) or -1.
 */
static int
update_user(const char *sql, int n, const char *const *params, PGresult **out)
{
	PGresult	*r;

	*out = NULL;
	r = dp_db_exec(db, sql, n, params);
	if (!dp_db_ok(r)) {
		complain("%.*s", line_len(PQresultErrorMessage(r)),
		    PQresultErrorMessage(r));
		PQclear(r);
		return -1;
	}
	if (PQntuples(r) == 0) {
		complain("no such user: %s", params[0]);
		PQclear(r);
		return 1;
	}
	*out = r;
	return 0;
}

static int
user_set_plan(int argc, char *argv[])
{
	const char	*params[2];
	PGresult	*r = NULL;
	int		 status = 1;

	if (argc != 3) {
		usage();
		return EXIT_USAGE;
	}
	if (dp_plan_from_name(argv[2]) == -1) {
		complain("unknown plan: use free, starter, pro or admin");
		return 1;
	}
	if (open_db() == -1)
		return 1;
	params[0] = argv[1];
	params[1] = argv[2];
	if (update_user("UPDATE users SET subscription_plan = $2, "
	    "updated_at = now() WHERE lower(username) = lower($1) "
	    "RETURNING username", 2, params, &r) != 0)
		goto out;
	printf("%s: plan %s\n", PQgetvalue(r, 0, 0), argv[2]);
	status = 0;
out:
	PQclear(r);
	return status;
}

static int
user_flag(int argc, char *argv[], const char *sql, const char *what)
{
	const char	*params[1];
	PGresult	*r = NULL;
	int		 status = 1;

	if ((params[0] = one_user_arg(argc, argv, 2)) == NULL)
		return EXIT_USAGE;
	if (open_db() == -1)
		return 1;
	if (update_user(sql, 1, params, &r) != 0)
		goto out;
	printf("%s: %s\n", PQgetvalue(r, 0, 0), what);
	status = 0;
out:
	PQclear(r);
	return status;
}

static int
user_verify(int argc, char *argv[])
{
	return user_flag(argc, argv, "UPDATE users SET is_verified = true, "
	    "updated_at = now() WHERE lower(username) = lower($1) "
	    "RETURNING username", "verified");
}

static int
user_enable(int argc, char *argv[])
{
	return user_flag(argc, argv, "UPDATE users SET is_active = true, "
	    "updated_at = now() WHERE lower(username) = lower($1) "
	    "RETURNING username", "enabled");
}

/* Disabling also revokes every login session, in the same transaction. */
static int
user_disable(int argc, char *argv[])
{
	const char	*params[1];
	PGresult	*r = NULL, *s = NULL;
	int		 status = 1;

	if ((params[0] = one_user_arg(argc, argv, 2)) == NULL)
		return EXIT_USAGE;
	if (open_db() == -1)
		return 1;
	if (dp_db_begin(db) == -1) {
		complain("cannot begin a transaction");
		goto out;
	}
	if (update_user("UPDATE users SET is_active = false, "
	    "updated_at = now() WHERE lower(username) = lower($1) "
	    "RETURNING id, username", 1, params, &r) != 0)
		goto out;
	params[0] = PQgetvalue(r, 0, 0);
	s = dp_db_exec(db, "UPDATE login_sessions SET revoked_at = now() "
	    "WHERE user_id = $1 AND revoked_at IS NULL", 1, params);
	if (!dp_db_ok(s)) {
		complain("revoking sessions: %.*s",
		    line_len(PQresultErrorMessage(s)), PQresultErrorMessage(s));
		goto out;
	}
	if (dp_db_commit(db) == -1) {
		complain("commit failed");
		goto out;
	}
	printf("%s: disabled, %s login session(s) revoked\n",
	    PQgetvalue(r, 0, 1), PQcmdTuples(s));
	status = 0;
out:
	if (status != 0)
		dp_db_rollback(db);
	PQclear(r);
	PQclear(s);
	return status;
}

static int
user_list(int argc, char *argv[])
{
	PGresult	*r;
	int		 i, j, status = 1;

	(void)argv;
	if (argc != 1) {
		usage();
		return EXIT_USAGE;
	}
	if (open_db() == -1)
		return 1;
	r = dp_db_exec(db, "SELECT id, username, email, subscription_plan, "
	    "CASE WHEN is_active THEN 'true' ELSE 'false' END, "
	    "CASE WHEN is_verified THEN 'true' ELSE 'false' END "
	    "FROM users ORDER BY created_at, id", 0, NULL);
	if (!dp_db_ok(r)) {
		complain("%.*s", line_len(PQresultErrorMessage(r)),
		    PQresultErrorMessage(r));
		goto out;
	}
	for (i = 0; i < PQntuples(r); i++) {
		for (j = 0; j < 6; j++) {
			if (j > 0)
				putchar('\t');
			print_field(PQgetvalue(r, i, j));
		}
		putchar('\n');
	}
	status = 0;
out:
	PQclear(r);
	return status;
}

static int
cmd_user(int argc, char *argv[])
{
	static const struct {
		const char	*name;
		int		(*fn)(int, char *[]);
	} subs[] = {
		{ "create",	user_create },
		{ "set-plan",	user_set_plan },
		{ "verify",	user_verify },
		{ "disable",	user_disable },
		{ "enable",	user_enable },
		{ "list",	user_list },
	};
	size_t	 i;

	if (argc < 2) {
		usage();
		return EXIT_USAGE;
	}
	for (i = 0; i < DP_NITEMS(subs); i++)
		if (strcmp(argv[1], subs[i].name) == 0)
			return subs[i].fn(argc - 1, argv + 1);
	usage();
	return EXIT_USAGE;
}

/* --- doctor --------------------------------------------------------------- */

static int	 problems;

static void
check_line(bool ok, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
check_line(bool ok, const char *what, const char *fmt, ...)
{
	va_list	 ap;

	printf("%-4s %s: ", ok ? "OK" : "FAIL", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (!ok)
		problems++;
}

static void
check_keyfile(const char *what, const char *path)
{
	struct dp_err	 err = { 0 };
	struct dp_buf	 key = { 0 };
	struct stat	 st;
	int		 fd;

	if (stat(path, &st) == -1) {
		check_line(false, what, "%s: %s", path, strerror(errno));
		return;
	}
	if (!S_ISREG(st.st_mode)) {
		check_line(false, what, "%s: not a regular file", path);
		return;
	}
	if (st.st_mode & S_IROTH) {
		check_line(false, what, "%s: world-readable (mode %04o); "
		    "chmod o-rwx", path, (unsigned)(st.st_mode & 07777));
		return;
	}
	if (st.st_size < 32) {
		check_line(false, what, "%s: %lld bytes, needs at least 32",
		    path, (long long)st.st_size);
		return;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		check_line(false, what, "%s: %s", path, strerror(errno));
		return;
	}
	close(fd);
	if (dp_keyfile_read(path, &key, &err) == -1)
		check_line(false, what, "%s", err.msg);
	else
		check_line(true, what, "%s (mode %04o)", path,
		    (unsigned)(st.st_mode & 07777));
	dp_buf_wipe(&key);
}

static int
sock_select(const struct dirent *d)
{
	size_t	 n = strlen(d->d_name);

	return d->d_name[0] != '.' && n > 5 &&
	    strcmp(d->d_name + n - 5, ".sock") == 0;
}

/* Does the unix socket at path accept a connection?  errno on false. */
static bool
sock_accepts(const char *path)
{
	struct sockaddr_un	 sun;
	int			 fd, saved;
	bool			 ok;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return false;
	}
	memcpy(sun.sun_path, path, strlen(path));
	/* Non-blocking: a full backlog is reported, not waited on. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return false;
	ok = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	saved = errno;
	close(fd);
	errno = saved;
	return ok;
}

static void
check_runtime(void)
{
	struct dirent	**ents = NULL;
	struct dp_buf	 p = { 0 }, label = { 0 };
	struct stat	 st;
	const char	*dir = dp_cfg.web_runtime_dir;
	int		 i, n;

	if (stat(dir, &st) == -1) {
		check_line(false, "runtime_dir", "%s: %s", dir,
		    strerror(errno));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		check_line(false, "runtime_dir", "%s: not a directory", dir);
		return;
	}
	if ((n = scandir(dir, &ents, sock_select, name_cmp)) == -1) {
		check_line(false, "runtime_dir", "%s: %s", dir,
		    strerror(errno));
		return;
	}
	if (n == 0)
		check_line(false, "runtime_dir", "%s: no responder sockets "
		    "(*.sock)", dir);
	else
		check_line(true, "runtime_dir", "%s: %d socket(s)", dir, n);
	for (i = 0; i < n; i++) {
		dp_buf_reset(&p);
		dp_buf_reset(&label);
		dp_buf_printf(&p, "%s/%s", dir, ents[i]->d_name);
		dp_buf_printf(&label, "socket %s", ents[i]->d_name);
		if (sock_accepts(p.s))
			check_line(true, label.s, "accepts connections");
		else
			check_line(false, label.s, "%s", strerror(errno));
		free(ents[i]);
	}
	free(ents);
	dp_buf_release(&p);
	dp_buf_release(&label);
}

static void
check_mail(void)
{
	const char	*t = dp_cfg.mail_transport;
	const char	*url = dp_cfg.mail_smtp_url;
	struct dp_buf	 shown = { 0 };
	struct dp_err	 err = { 0 };
	struct stat	 st;

	if (strcmp(t, "file") == 0) {
		if (stat(dp_cfg.mail_file_dir, &st) == -1)
			check_line(false, "mail", "file: %s: %s",
			    dp_cfg.mail_file_dir, strerror(errno));
		else if (!S_ISDIR(st.st_mode))
			check_line(false, "mail", "file: %s: not a directory",
			    dp_cfg.mail_file_dir);
		else if (access(dp_cfg.mail_file_dir, W_OK | X_OK) == -1)
			check_line(false, "mail", "file: %s: not writable: %s",
			    dp_cfg.mail_file_dir, strerror(errno));
		else
			check_line(true, "mail", "file: %s",
			    dp_cfg.mail_file_dir);
	} else if (strcmp(t, "smtp") == 0 || strcmp(t, "smtps") == 0) {
		if (url == NULL || *url == '\0')
			check_line(false, "mail", "%s: smtp_url is not set", t);
		else {
			dp_redact(url, &shown);
			check_line(true, "mail", "%s via %s", t, shown.s);
		}
	} else
		check_line(true, "mail", "%s: mail is discarded", t);
	if (dp_mail_config_check(&dp_cfg, &err) == -1)
		check_line(false, "mail", "%s", err.msg);
	dp_buf_release(&shown);
}

static int
cmd_doctor(int argc, char *argv[], bool cfg_ok, const char *cfg_err)
{
	struct migrations m = { 0 };
	struct dp_err	 err = { 0 };
	struct dp_buf	 pending = { 0 };
	size_t		 npending;
	bool		 dbok = false;

	(void)argv;
	if (argc != 1) {
		usage();
		return EXIT_USAGE;
	}
	problems = 0;
	if (cfg_ok)
		check_line(true, "config", "%s%s", config_path(),
		    access(config_path(), F_OK) == 0 ? "" :
		    " (not found: defaults)");
	else
		check_line(false, "config", "%s", cfg_err);
	check_keyfile("jwt_key_file", dp_cfg.auth_jwt_key_file);
	check_keyfile("secret_key_file", dp_cfg.auth_secret_key_file);

	if ((db = dp_db_open(dp_cfg.db_url, &err)) == NULL)
		check_line(false, "database", "%.*s", line_len(err.msg),
		    err.msg);
	else if (!dp_db_ping(db))
		check_line(false, "database", "connected but SELECT 1 failed");
	else {
		check_line(true, "database", "reachable (server %d)",
		    PQserverVersion(dp_db_conn(db)));
		dbok = true;
	}
	if (migrations_list(&m, &err) == -1)
		check_line(false, "schema", "%s", err.msg);
	else if (!dbok)
		check_line(false, "schema", "not checked: no database");
	else if (pending_migrations(&m, &pending, &npending, &err) == -1)
		check_line(false, "schema", "%s", err.msg);
	else if (npending > 0)
		check_line(false, "schema", "%zu migration(s) pending: %s "
		    "(run devpocketctl migrate)", npending, pending.s);
	else
		check_line(true, "schema", "up to date (%zu migration(s))",
		    m.n);
	check_runtime();
	check_mail();

	if (problems == 0)
		printf("verdict: healthy\n");
	else
		printf("verdict: %d problem(s)\n", problems);
	dp_buf_release(&pending);
	migrations_release(&m);
	return problems == 0 ? 0 : 1;
}

/* --- config --------------------------------------------------------------- */

static int
cmd_config(int argc, char *argv[])
{
	struct dp_buf	 b = { 0 };

	if (argc != 2 || strcmp(argv[1], "dump") != 0) {
		usage();
		return EXIT_USAGE;
	}
	dp_config_dump(&dp_cfg, &b, true);
	if (b.len > 0)
		fwrite(b.s, 1, b.len, stdout);
	dp_buf_release(&b);
	return 0;
}

/* --- keys --------------------------------------------------------------- */

/*
 * keygen PATH...: a 32-byte random key as 64 hex characters, mode 0640,
 * for [auth] jwt_key_file and secret_key_file; an existing file is kept.
 */
static int
cmd_keygen(int argc, char *argv[])
{
	struct dp_err	 err = { 0 };
	int		 i, status = 0;

	if (argc < 2) {
		usage();
		return EXIT_USAGE;
	}
	for (i = 1; i < argc; i++)
		if (dp_keyfile_create(argv[i], &err) < 0) {
			complain("%s", err.msg);
			status = 1;
		}
	return status;
}

/* --- templates and clusters ------------------------------------------ */

static char *
catalog_dir(int argc, char *argv[], int i)
{
	struct dp_buf	 b = { 0 };

	if (i < argc)
		return dp_xstrdup(argv[i]);
	dp_buf_printf(&b, "%s/templates/environments", dp_cfg.web_data_dir);
	return dp_buf_detach(&b);
}

static void
print_names(const char *what, struct json_object *report, const char *key)
{
	struct json_object	*a;
	size_t			 i, n;

	if (!json_object_object_get_ex(report, key, &a))
		return;
	n = json_object_array_length(a);
	for (i = 0; i < n; i++)
		printf("%s %s\n", what,
		    json_object_get_string(json_object_array_get_idx(a, i)));
}

/*
 * templates load [--force] [DIR]: the catalog into the database, as
 * POST /templates/initialize does.  Exit 1 when a file was invalid.
 * templates list [DIR]: the catalog files, parsed, without a database.
 */
static int
cmd_templates(int argc, char *argv[])
{
	struct json_object	*report = NULL, *errs, *e, *f, *m;
	struct dp_template	 t;
	struct dp_err		 err = { 0 };
	struct dirent		**names = NULL;
	bool			 force = false;
	struct dp_buf		 pb = { 0 };
	char			*dir = NULL;
	size_t			 i, n;
	int			 k, nn, status = 1, argi = 2;

	if (argc < 2) {
		usage();
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "load") == 0) {
		if (argi < argc && strcmp(argv[argi], "--force") == 0) {
			force = true;
			argi++;
		}
		if (argc - argi > 1) {
			usage();
			return EXIT_USAGE;
		}
		dir = catalog_dir(argc, argv, argi);
		if (open_db() < 0)
			goto out;
		report = json_object_new_object();
		/* One transaction: a failure part way loads nothing. */
		if (dp_db_begin(db) < 0 ||
		    dp_templates_load_dir(db, dir, force, report) < 0 ||
		    dp_db_commit(db) < 0) {
			dp_db_rollback(db);
			complain("loading %s failed (database error); nothing "
			    "was loaded", dir);
			goto out;
		}
		print_names("created", report, "created");
		print_names("updated", report, "updated");
		print_names("skipped", report, "skipped");
		status = 0;
		if (json_object_object_get_ex(report, "errors", &errs) &&
		    (n = json_object_array_length(errs)) > 0) {
			for (i = 0; i < n; i++) {
				e = json_object_array_get_idx(errs, i);
				json_object_object_get_ex(e, "file", &f);
				json_object_object_get_ex(e, "message", &m);
				complain("%s: %s", json_object_get_string(f),
				    json_object_get_string(m));
			}
			status = 1;
		}
	} else if (strcmp(argv[1], "list") == 0) {
		if (argc > 3) {
			usage();
			return EXIT_USAGE;
		}
		dir = catalog_dir(argc, argv, 2);
		if ((nn = scandir(dir, &names, NULL, alphasort)) < 0) {
			complain("%s: %s", dir, strerror(errno));
			goto out;
		}
		status = 0;
		for (k = 0; k < nn; k++) {
			size_t l = strlen(names[k]->d_name);

			if (names[k]->d_name[0] != '.' && l > 5 &&
			    strcmp(names[k]->d_name + l - 5, ".yaml") == 0) {
				dp_buf_reset(&pb);
				dp_buf_printf(&pb, "%s/%s", dir, names[k]->d_name);
				if (dp_template_parse_file(pb.s, &t, &err) < 0) {
					complain("%s", err.msg);
					status = 1;
				} else {
					printf("%s\t%s\t%s\t%s\t%s\n", t.name,
					    t.version, t.status, t.category,
					    t.display_name);
					dp_template_release(&t);
				}
			}
			free(names[k]);
		}
		free(names);
	} else {
		usage();
		return EXIT_USAGE;
	}
out:
	json_object_put(report);
	dp_buf_release(&pb);
	free(dir);
	return status;
}

/* clusters ensure-local [REGION]: the "local" cluster for single hosts. */
static int
cmd_clusters(int argc, char *argv[])
{
	int	 rc;

	if (argc < 2 || strcmp(argv[1], "ensure-local") != 0 || argc > 3) {
		usage();
		return EXIT_USAGE;
	}
	if (argc == 3 && dp_check_region(argv[2], strlen(argv[2])) != DP_V_OK) {
		complain("unknown region '%s'", argv[2]);
		return 1;
	}
	if (open_db() < 0)
		return 1;
	if ((rc = dp_clusters_ensure_local(db, argc == 3 ? argv[2] : NULL)) < 0) {
		complain("creating the local cluster failed");
		return 1;
	}
	printf("%s\n", rc == 1 ? "created cluster local" :
	    "cluster local exists");
	return 0;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL,		0,			NULL, 0 },
	};
	struct dp_err	 err = { 0 };
	const char	*cmd;
	char		 secs[32];
	bool		 cfg_ok;
	int		 ch, status = EXIT_USAGE;

	/* "+": stop at the command; its options are its own. */
	while ((ch = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			cfg_path = optarg;
			break;
		default:
			usage();
			return EXIT_USAGE;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1) {
		usage();
		return EXIT_USAGE;
	}
	cmd = argv[0];
	if (strcmp(cmd, "keygen") == 0)
		return cmd_keygen(argc, argv);	/* needs no configuration */
	if (strcmp(cmd, "migrate") != 0 && strcmp(cmd, "user") != 0 &&
	    strcmp(cmd, "doctor") != 0 && strcmp(cmd, "config") != 0 &&
	    strcmp(cmd, "templates") != 0 && strcmp(cmd, "clusters") != 0) {
		usage();
		return EXIT_USAGE;
	}
	cfg_ok = load_config(&err) == 0;
	if (!cfg_ok) {
		/* doctor reports a bad file and checks the rest on defaults. */
		if (strcmp(cmd, "doctor") != 0) {
			complain("%s", err.msg);
			status = 1;
			goto out;
		}
		dp_config_defaults(&dp_cfg);
	}
	/* Messages go to the terminal as text; db.c logs through this. */
	dp_log_init(progname, "text", "warning");
	(void)snprintf(secs, sizeof(secs), "%lld",
	    (long long)dp_cfg.db_connect_timeout);
	(void)setenv("PGCONNECT_TIMEOUT", secs, 0);

	if (strcmp(cmd, "migrate") == 0)
		status = cmd_migrate(argc, argv);
	else if (strcmp(cmd, "user") == 0)
		status = cmd_user(argc, argv);
	else if (strcmp(cmd, "doctor") == 0)
		status = cmd_doctor(argc, argv, cfg_ok, err.msg);
	else if (strcmp(cmd, "templates") == 0)
		status = cmd_templates(argc, argv);
	else if (strcmp(cmd, "clusters") == 0)
		status = cmd_clusters(argc, argv);
	else
		status = cmd_config(argc, argv);
out:
	dp_db_free(db);
	dp_config_release(&dp_cfg);
	fflush(stdout);
	return status;
}
