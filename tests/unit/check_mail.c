/* tests/unit/check_mail.c: mail composition, templates, file and SMTP delivery */
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json.h>

#include "config.h"
#include "mail.h"
#include "util.h"

#define FROM	"DevPocket <noreply@devpocket.test>"
#define TO	"alice@example.org"
#define SMTP_USER	"mailer"
#define SMTP_PASS	"Hunter2-very-secret"

static char	 tmpdir[256];
static pid_t	 fake_pid;

/* --- helpers -------------------------------------------------------- */

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void
setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_mail.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	fake_pid = 0;
}

static void
stop_fake(void)
{
	if (fake_pid > 0) {
		kill(fake_pid, SIGTERM);
		waitpid(fake_pid, NULL, 0);
	}
	fake_pid = 0;
}

static void
teardown(void)
{
	stop_fake();
	nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static const char *
srcdir(void)
{
	const char	*d = getenv("DP_SRCDIR");

	return d != NULL && *d != '\0' ? d : ".";
}

static char *
path_in(const char *name)
{
	struct dp_buf	 b = { 0 };

	dp_buf_printf(&b, "%s/%s", tmpdir, name);
	return dp_buf_detach(&b);
}

static void
write_file(const char *path, const void *p, size_t n)
{
	FILE	*f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(p, 1, n, f), n);
	ck_assert_int_eq(fclose(f), 0);
}

static char *
read_file(const char *path, size_t *len)
{
	struct dp_buf	 b = { 0 };
	char		 chunk[4096];
	size_t		 n;
	FILE		*f = fopen(path, "rb");

	ck_assert_ptr_nonnull(f);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		dp_buf_add(&b, chunk, n);
	fclose(f);
	if (len != NULL)
		*len = b.len;
	return dp_buf_detach(&b);
}

/* Run argv (no shell), stdout/stderr to /dev/null; exit status. */
static int
run(char *const argv[])
{
	pid_t	 pid;
	int	 st, fd;

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		if ((fd = open("/dev/null", O_RDWR)) != -1) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* A throw-away self-signed certificate in tmpdir/cert.pem, key.pem. */
static void
make_cert(void)
{
	char	*cert = path_in("cert.pem"), *key = path_in("key.pem");
	char	*argv[] = {
		"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
		"-subj", "/CN=localhost", "-days", "1",
		"-keyout", key, "-out", cert, NULL
	};

	ck_assert_int_eq(run(argv), 0);
	free(cert);
	free(key);
}

/*
 * Start tests/fakes/smtp.py with the extra arguments, spooling to
 * tmpdir/spool; return its port.  The fake dies with this process.
 */
static int
start_fake(const char *const extra[])
{
	const char	*argv[32];
	char		*script, *spool, line[64];
	struct dp_buf	 b = { 0 };
	struct pollfd	 pfd;
	size_t		 n = 0, i, len = 0;
	ssize_t		 r;
	int		 pfds[2], port = -1;
	int64_t		 v;

	dp_buf_printf(&b, "%s/tests/fakes/smtp.py", srcdir());
	script = dp_buf_detach(&b);
	spool = path_in("spool");
	argv[n++] = "python3";
	argv[n++] = script;
	argv[n++] = "--port";
	argv[n++] = "0";
	argv[n++] = "--spool";
	argv[n++] = spool;
	for (i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	ck_assert_int_eq(pipe(pfds), 0);
	fake_pid = fork();
	ck_assert_int_ne(fake_pid, -1);
	if (fake_pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		dup2(pfds[1], 1);
		close(pfds[0]);
		close(pfds[1]);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(pfds[1]);
	pfd.fd = pfds[0];
	pfd.events = POLLIN;
	while (len < sizeof(line) - 1) {
		ck_assert_msg(poll(&pfd, 1, 15000) == 1, "fake smtp not ready");
		r = read(pfds[0], line + len, 1);
		ck_assert_msg(r == 1, "fake smtp exited before READY");
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = '\0';
	close(pfds[0]);
	ck_assert_msg(strncmp(line, "READY ", 6) == 0, "bad line %s", line);
	ck_assert_int_eq(dp_parse_int64(line + 6, 1, 65535, &v), 0);
	port = (int)v;
	free(script);
	free(spool);
	return port;
}

/* The n-th JSON line of the spool, or NULL when there is none. */
static json_object *
spool_record(int nth)
{
	char		*spool = path_in("spool"), *text, *p, *nl;
	json_object	*o = NULL;
	int		 i = 0;

	if (access(spool, F_OK) != 0) {
		free(spool);
		return NULL;
	}
	text = read_file(spool, NULL);
	for (p = text; *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL)
			break;
		*nl = '\0';
		if (i++ == nth) {
			o = json_tokener_parse(p);
			ck_assert_ptr_nonnull(o);
			break;
		}
	}
	free(text);
	free(spool);
	return o;
}

static const char *
jstr(json_object *o, const char *key)
{
	json_object	*v;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static void
cfg_smtp(struct dp_config *c, const char *transport, int port)
{
	struct dp_buf	 b = { 0 };

	memset(c, 0, sizeof(*c));
	c->mail_transport = dp_xstrdup(transport);
	c->mail_from = dp_xstrdup(FROM);
	dp_buf_printf(&b, "%s://127.0.0.1:%d", transport, port);
	c->mail_smtp_url = dp_buf_detach(&b);
	c->mail_smtp_user = dp_xstrdup("");
	c->mail_smtp_password = dp_xstrdup("");
	c->mail_smtp_timeout = 10;
}

static void
cfg_free(struct dp_config *c)
{
	free(c->mail_transport);
	free(c->mail_from);
	free(c->mail_smtp_url);
	free(c->mail_smtp_user);
	free(c->mail_smtp_password);
	free(c->mail_file_dir);
}

static void
compose_ok(struct dp_buf *m, const char *subject, const char *body)
{
	struct dp_err	 err = { 0 };

	ck_assert_msg(dp_mail_compose(m, FROM, TO, subject, body, &err) == 0,
	    "compose: %s", err.msg);
}

/* Every LF has a CR before it and every CR an LF after it. */
static int
all_crlf(const char *s, size_t n)
{
	size_t	 i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\n' && (i == 0 || s[i - 1] != '\r'))
			return 0;
		if (s[i] == '\r' && (i + 1 == n || s[i + 1] != '\n'))
			return 0;
	}
	return 1;
}

/* Value of header name (without CRLF, folded lines joined), or NULL. */
static char *
header(const char *msg, const char *name)
{
	struct dp_buf	 b = { 0 };
	const char	*end = strstr(msg, "\r\n\r\n"), *p, *e;
	size_t		 nl = strlen(name);

	ck_assert_ptr_nonnull(end);
	for (p = msg; p < end; p = e + 2) {
		e = strstr(p, "\r\n");
		if (strncmp(p, name, nl) == 0 && p[nl] == ':' && p[nl + 1] == ' ') {
			dp_buf_add(&b, p + nl + 2, (size_t)(e - p - nl - 2));
			while (e < end && e[2] == ' ') {
				p = e + 2;
				e = strstr(p, "\r\n");
				dp_buf_add(&b, p, (size_t)(e - p));
			}
			return dp_buf_detach(&b);
		}
	}
	return NULL;
}

static int
b64val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

static void
b64dec(struct dp_buf *out, const char *s, size_t n)
{
	unsigned int	 acc = 0;
	int		 bits = 0, v;
	size_t		 i;

	for (i = 0; i < n && s[i] != '='; i++) {
		v = b64val(s[i]);
		ck_assert_int_ge(v, 0);
		acc = (acc << 6) | (unsigned int)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			dp_buf_addc(out, (char)((acc >> bits) & 0xff));
		}
	}
}

/* --- compose -------------------------------------------------------- */

START_TEST(test_mail_compose_headers)
{
	struct dp_buf	 m = { 0 };
	struct tm	 tm;
	char		*h, *end;
	time_t		 t;

	compose_ok(&m, "Hello", "line one\nline two\r\nthree\rfour");
	ck_assert(all_crlf(m.s, m.len));
	ck_assert(dp_startswith(m.s, "Date: "));

	h = header(m.s, "Date");
	memset(&tm, 0, sizeof(tm));
	end = strptime(h, "%a, %d %b %Y %H:%M:%S +0000", &tm);
	ck_assert_msg(end != NULL && *end == '\0', "bad Date %s", h);
	t = timegm(&tm);
	ck_assert(labs((long)(t - time(NULL))) < 10);
	free(h);

	h = header(m.s, "From");
	ck_assert_str_eq(h, FROM);
	free(h);
	h = header(m.s, "To");
	ck_assert_str_eq(h, TO);
	free(h);
	h = header(m.s, "Subject");
	ck_assert_str_eq(h, "Hello");
	free(h);
	h = header(m.s, "Message-ID");
	ck_assert_uint_eq(strlen(h), 1 + 32 + strlen("@devpocket.test>"));
	ck_assert(h[0] == '<');
	ck_assert_uint_eq(strspn(h + 1, "0123456789abcdef"), 32);
	ck_assert_str_eq(h + 33, "@devpocket.test>");
	free(h);
	h = header(m.s, "MIME-Version");
	ck_assert_str_eq(h, "1.0");
	free(h);
	h = header(m.s, "Content-Type");
	ck_assert_str_eq(h, "text/plain; charset=utf-8");
	free(h);
	h = header(m.s, "Content-Transfer-Encoding");
	ck_assert_str_eq(h, "8bit");
	free(h);
	ck_assert_str_eq(strstr(m.s, "\r\n\r\n") + 4,
	    "line one\r\nline two\r\nthree\r\nfour\r\n");

	/* Two messages never share a Message-ID. */
	{
		struct dp_buf	 m2 = { 0 };
		char		*a, *b;

		compose_ok(&m2, "Hello", "x");
		a = header(m.s, "Message-ID");
		b = header(m2.s, "Message-ID");
		ck_assert_str_ne(a, b);
		free(a);
		free(b);
		dp_buf_release(&m2);
	}
	/* Empty body: headers and the empty line only. */
	dp_buf_reset(&m);
	compose_ok(&m, "Hello", "");
	ck_assert(m.len > 4 && strcmp(m.s + m.len - 4, "\r\n\r\n") == 0);
	dp_buf_release(&m);
}
END_TEST

START_TEST(test_mail_compose_injection)
{
	static const char *const bad_addr[] = {
		"alice@example.org\r\nBcc: eve@evil.test",
		"alice@example.org\nBcc: eve@evil.test",
		"alice@example.org\r",
		"alice@example.org\tx\x01",
		"alice.example.org",
		"",
		"@example.org",
		"alice@",
		"a@b@c",
		"Alice <alice@example.org",
		"Alice <alice@example.org> trailing",
		"Al\xc3" "ce <alice@example.org>",
		"al\xc3\xaf" "ce@example.org",
		"alice @example.org",
	};
	static const char *const bad_subj[] = {
		"Hi\r\nBcc: eve@evil.test",
		"Hi\nBcc: eve@evil.test",
		"Hi\r",
		"Hi\x01there",
		"Hi\x7f",
		"bad \xc3\x28 utf8",
		"overlong \xc0\xaf",
		"surrogate \xed\xa0\x80",
		"truncated \xe2\x82",
	};
	struct dp_buf	 m = { 0 };
	struct dp_err	 err;
	size_t		 i;

	for (i = 0; i < DP_NITEMS(bad_addr); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(dp_mail_compose(&m, FROM, bad_addr[i], "s",
		    "b", &err), -1);
		ck_assert_msg(err.msg[0] != '\0', "no error for to %zu", i);
		ck_assert_int_eq(dp_mail_compose(&m, bad_addr[i], TO, "s",
		    "b", &err), -1);
	}
	for (i = 0; i < DP_NITEMS(bad_subj); i++) {
		memset(&err, 0, sizeof(err));
		ck_assert_int_eq(dp_mail_compose(&m, FROM, TO, bad_subj[i],
		    "b", &err), -1);
		ck_assert(err.msg[0] != '\0');
	}
	ck_assert_int_eq(dp_mail_compose(&m, FROM, TO, NULL, "b", &err), -1);
	ck_assert_int_eq(dp_mail_compose(&m, FROM, NULL, "s", "b", &err), -1);
	/* A refused message leaves the output untouched. */
	ck_assert_uint_eq(m.len, 0);

	/* Bare addresses and display names are both fine. */
	compose_ok(&m, "s", "b");
	dp_buf_reset(&m);
	ck_assert_int_eq(dp_mail_compose(&m, "noreply@devpocket.test",
	    "Alice <alice@example.org>", "s", "b", &err), 0);
	dp_buf_release(&m);
}
END_TEST

START_TEST(test_mail_compose_rfc2047)
{
	static const char	 subj[] = "Gr\xc3\xbc\xc3\x9f" "e \xe2\x9c\x93 "
	    "\xf0\x9f\x98\x80 DevPocket";
	struct dp_buf	 m = { 0 }, dec = { 0 }, big = { 0 };
	char		*h, *p, *q;
	size_t		 i, words = 0;

	compose_ok(&m, subj, "x");
	h = header(m.s, "Subject");
	ck_assert(dp_startswith(h, "=?UTF-8?B?"));
	free(h);

	/* A long subject: several words, each <= 75 chars, each valid alone. */
	for (i = 0; i < 60; i++)
		dp_buf_adds(&big, i % 3 ? "\xc3\xa9" : "\xe2\x82\xac");
	dp_buf_adds(&big, subj);
	dp_buf_reset(&m);
	compose_ok(&m, big.s, "x");
	ck_assert(all_crlf(m.s, m.len));
	h = header(m.s, "Subject");
	for (p = h; (p = strstr(p, "=?UTF-8?B?")) != NULL; p = q + 2) {
		struct dp_buf	 one = { 0 };

		p += 10;
		q = strstr(p, "?=");
		ck_assert_ptr_nonnull(q);
		ck_assert_uint_le((size_t)(q - p) + 12, 75);
		b64dec(&one, p, (size_t)(q - p));
		/* Each word decodes to whole characters (RFC 2047 5). */
		ck_assert_int_eq(dp_mail_compose(&dec, FROM, TO, one.s, "", NULL),
		    0);
		dp_buf_reset(&dec);
		words++;
		dp_buf_release(&one);
	}
	free(h);
	ck_assert_uint_gt(words, 3);

	/* Decoding all words gives back the subject. */
	h = header(m.s, "Subject");
	for (p = h; (p = strstr(p, "=?UTF-8?B?")) != NULL; p = q + 2) {
		p += 10;
		q = strstr(p, "?=");
		b64dec(&dec, p, (size_t)(q - p));
	}
	ck_assert_str_eq(dec.s, big.s);
	free(h);

	/* ASCII that looks like an encoded-word is encoded as well. */
	dp_buf_reset(&m);
	compose_ok(&m, "=?UTF-8?B?SGk=?=", "x");
	h = header(m.s, "Subject");
	ck_assert_str_ne(h, "=?UTF-8?B?SGk=?=");
	free(h);

	/* Plain ASCII stays readable. */
	dp_buf_reset(&m);
	compose_ok(&m, "Verify your DevPocket email address", "x");
	h = header(m.s, "Subject");
	ck_assert_str_eq(h, "Verify your DevPocket email address");
	free(h);
	dp_buf_release(&m);
	dp_buf_release(&dec);
	dp_buf_release(&big);
}
END_TEST

START_TEST(test_mail_compose_body_cap)
{
	struct dp_buf	 m = { 0 }, body = { 0 };
	struct dp_err	 err = { 0 };
	char		 line[1001];

	/* Exactly 1 MiB of 64-byte lines is accepted. */
	memset(line, 'a', 63);
	line[63] = '\n';
	while (body.len < 1024 * 1024)
		dp_buf_add(&body, line, 64);
	ck_assert_uint_eq(body.len, 1024 * 1024);
	compose_ok(&m, "s", body.s);
	ck_assert(all_crlf(m.s, m.len));
	/* One byte more is refused. */
	dp_buf_addc(&body, 'x');
	dp_buf_reset(&m);
	ck_assert_int_eq(dp_mail_compose(&m, FROM, TO, "s", body.s, &err), -1);
	ck_assert(strstr(err.msg, "body") != NULL);
	ck_assert_uint_eq(m.len, 0);

	/* Lines: 998 octets fine, 999 refused (RFC 5322 2.1.1). */
	memset(line, 'b', 999);
	line[998] = '\0';
	compose_ok(&m, "s", line);
	line[998] = 'b';
	line[999] = '\0';
	dp_buf_reset(&m);
	ck_assert_int_eq(dp_mail_compose(&m, FROM, TO, "s", line, &err), -1);

	/* Invalid UTF-8 in the body. */
	ck_assert_int_eq(dp_mail_compose(&m, FROM, TO, "s", "ok \xff\xfe",
	    &err), -1);
	ck_assert_int_eq(dp_mail_compose(&m, FROM, TO, "s", "cut \xf0\x9f\x98",
	    &err), -1);
	ck_assert_uint_eq(m.len, 0);
	dp_buf_release(&m);
	dp_buf_release(&body);
}
END_TEST

/* --- render --------------------------------------------------------- */

static const char *const vars[] = {
	"username", "alice",
	"link", "http://localhost:3000/verify-email?token=abc_DEF-123",
	NULL
};

START_TEST(test_mail_render_placeholders)
{
	static const char	 t[] =
	    "Subject: Hi {{username}}\n\nHello {{username}},\n{{link}}\n"
	    "}} and { and {x} stay\n";
	struct dp_buf	 body = { 0 };
	struct dp_err	 err = { 0 };
	const char	*tricky[] = { "username", "{{link}}", "link", "L",
	    NULL };
	char		*p = path_in("t.txt"), *subj = NULL;

	write_file(p, t, sizeof(t) - 1);
	ck_assert_msg(dp_mail_render(tmpdir, "t", vars, &subj, &body,
	    &err) == 0, "render: %s", err.msg);
	ck_assert_str_eq(subj, "Hi alice");
	ck_assert_str_eq(body.s, "Hello alice,\n"
	    "http://localhost:3000/verify-email?token=abc_DEF-123\n"
	    "}} and { and {x} stay\n");
	free(subj);

	/* Values are inserted verbatim, never expanded again. */
	dp_buf_reset(&body);
	ck_assert_int_eq(dp_mail_render(tmpdir, "t", tricky, &subj, &body,
	    &err), 0);
	ck_assert_str_eq(subj, "Hi {{link}}");
	ck_assert(strstr(body.s, "Hello {{link}},\nL\n") != NULL);
	free(subj);

	/* CRLF templates work too. */
	write_file(p, "Subject: S {{username}}\r\n\r\nB\r\n", 30);
	dp_buf_reset(&body);
	ck_assert_int_eq(dp_mail_render(tmpdir, "t", vars, &subj, &body,
	    &err), 0);
	ck_assert_str_eq(subj, "S alice");
	ck_assert_str_eq(body.s, "B\r\n");
	free(subj);
	dp_buf_release(&body);
	free(p);
}
END_TEST

START_TEST(test_mail_render_shipped)
{
	static const char *const rvars[] = {
		"username", "alice",
		"link", "http://localhost:3000/reset-password?token=tok",
		NULL
	};
	static const char *const cvars[] = { "username", "alice", NULL };
	struct dp_buf	 body = { 0 }, dir = { 0 }, m = { 0 };
	struct dp_err	 err = { 0 };
	char		*subj = NULL;

	dp_buf_printf(&dir, "%s/templates/email", srcdir());
	ck_assert_msg(dp_mail_render(dir.s, "verify", vars, &subj, &body,
	    &err) == 0, "verify: %s", err.msg);
	ck_assert_str_eq(subj, "Verify your DevPocket email address");
	ck_assert(strstr(body.s, "alice") != NULL);
	ck_assert(strstr(body.s, vars[3]) != NULL);
	ck_assert(strstr(body.s, "{{") == NULL);
	compose_ok(&m, subj, body.s);
	free(subj);

	dp_buf_reset(&body);
	ck_assert_msg(dp_mail_render(dir.s, "reset", rvars, &subj, &body,
	    &err) == 0, "reset: %s", err.msg);
	ck_assert_str_eq(subj, "Reset your DevPocket password");
	ck_assert(strstr(body.s, "alice") != NULL);
	ck_assert(strstr(body.s, rvars[3]) != NULL);
	compose_ok(&m, subj, body.s);
	free(subj);

	dp_buf_reset(&body);
	ck_assert_msg(dp_mail_render(dir.s, "password_changed", cvars, &subj,
	    &body, &err) == 0, "password_changed: %s", err.msg);
	ck_assert_str_eq(subj, "Your DevPocket password was changed");
	ck_assert(strstr(body.s, "alice") != NULL);
	ck_assert(strstr(body.s, "token") == NULL);
	compose_ok(&m, subj, body.s);
	free(subj);

	/* The verification template needs its link. */
	dp_buf_reset(&body);
	ck_assert_int_eq(dp_mail_render(dir.s, "verify", cvars, &subj, &body,
	    &err), -1);
	ck_assert(strstr(err.msg, "link") != NULL);
	ck_assert_uint_eq(body.len, 0);
	dp_buf_release(&body);
	dp_buf_release(&dir);
	dp_buf_release(&m);
}
END_TEST

START_TEST(test_mail_render_unknown)
{
	static const char *const bad[] = {
		"Subject: x\n\nHello {{nope}}\n",
		"Subject: {{nope}}\n\nHello\n",
		"Subject: x\n\nHello {{username\n",
		"Subject: x\n\nHello {{}}\n",
		"Subject: x\n\nHello {{user name}}\n",
		"Subject: x\n\nHello {{user\nname}}\n",
		"Subject: x\n\nHello {{\xc3\xa9}}\n",
	};
	const char	*novalue[] = { "username", NULL, NULL };
	struct dp_buf	 body = { 0 };
	struct dp_err	 err;
	char		*p = path_in("t.txt"), *subj = (char *)"x";
	size_t		 i;

	dp_buf_adds(&body, "keep");
	for (i = 0; i < DP_NITEMS(bad); i++) {
		write_file(p, bad[i], strlen(bad[i]));
		memset(&err, 0, sizeof(err));
		ck_assert_msg(dp_mail_render(tmpdir, "t", vars, &subj, &body,
		    &err) == -1, "template %zu accepted", i);
		ck_assert(err.msg[0] != '\0');
		ck_assert_ptr_null(subj);
		ck_assert_str_eq(body.s, "keep");
	}
	write_file(p, bad[0], strlen(bad[0]));
	dp_mail_render(tmpdir, "t", vars, &subj, &body, &err);
	ck_assert(strstr(err.msg, "nope") != NULL);

	/* No variables at all, or a key without a value. */
	write_file(p, "Subject: x\n\n{{username}}\n", 25);
	ck_assert_int_eq(dp_mail_render(tmpdir, "t", NULL, &subj, &body,
	    &err), -1);
	ck_assert_int_eq(dp_mail_render(tmpdir, "t", novalue, &subj, &body,
	    &err), -1);
	/* A value with a line break cannot reach the subject. */
	{
		const char	*nl[] = { "username", "a\r\nBcc: e@x.test",
		    NULL };

		write_file(p, "Subject: {{username}}\n\nx\n", 25);
		ck_assert_int_eq(dp_mail_render(tmpdir, "t", nl, &subj, &body,
		    &err), -1);
	}
	ck_assert_str_eq(body.s, "keep");
	dp_buf_release(&body);
	free(p);
}
END_TEST

START_TEST(test_mail_render_missing)
{
	static const char *const badfile[] = {
		"",
		"Subject: x",
		"Subject: x\nno empty line\n",
		"Hello\n\nbody\n",
		"Subject:\n\nbody\n",
	};
	struct dp_buf	 body = { 0 }, big = { 0 };
	struct dp_err	 err = { 0 };
	char		*p = path_in("t.txt"), *d = path_in("dir.txt");
	char		*subj = NULL;
	size_t		 i;

	ck_assert_int_eq(dp_mail_render(tmpdir, "absent", vars, &subj, &body,
	    &err), -1);
	ck_assert(strstr(err.msg, "absent.txt") != NULL);
	ck_assert_int_eq(dp_mail_render("/nonexistent/dir", "verify", vars,
	    &subj, &body, &err), -1);
	/* Names cannot leave the directory. */
	ck_assert_int_eq(dp_mail_render(tmpdir, "../etc/passwd", vars, &subj,
	    &body, &err), -1);
	ck_assert_int_eq(dp_mail_render(tmpdir, "", vars, &subj, &body, &err),
	    -1);
	ck_assert_int_eq(dp_mail_render(tmpdir, NULL, vars, &subj, &body,
	    &err), -1);
	/* A directory is not a template. */
	ck_assert_int_eq(mkdir(d, 0700), 0);
	ck_assert_int_eq(dp_mail_render(tmpdir, "dir", vars, &subj, &body,
	    &err), -1);

	for (i = 0; i < DP_NITEMS(badfile); i++) {
		write_file(p, badfile[i], strlen(badfile[i]));
		ck_assert_msg(dp_mail_render(tmpdir, "t", vars, &subj, &body,
		    &err) == -1, "bad file %zu accepted", i);
	}
	/* NUL byte. */
	write_file(p, "Subject: x\n\nab\0cd\n", 18);
	ck_assert_int_eq(dp_mail_render(tmpdir, "t", vars, &subj, &body,
	    &err), -1);
	ck_assert(strstr(err.msg, "NUL") != NULL);

	/* Exactly 64 KiB is accepted, one byte more is not. */
	dp_buf_adds(&big, "Subject: big\n\n");
	while (big.len < 64 * 1024)
		dp_buf_addc(&big, big.len % 64 == 63 ? '\n' : 'z');
	write_file(p, big.s, big.len);
	ck_assert_msg(dp_mail_render(tmpdir, "t", vars, &subj, &body,
	    &err) == 0, "64 KiB: %s", err.msg);
	ck_assert_uint_eq(body.len, 64 * 1024 - 14);
	free(subj);
	dp_buf_addc(&big, 'z');
	write_file(p, big.s, big.len);
	ck_assert_int_eq(dp_mail_render(tmpdir, "t", vars, &subj, &body,
	    &err), -1);
	ck_assert_ptr_null(subj);
	dp_buf_release(&body);
	dp_buf_release(&big);
	free(p);
	free(d);
}
END_TEST

/* --- file transport ------------------------------------------------- */

static int
eml_name(const char *n)
{
	size_t	 i;

	if (strlen(n) != 8 + 1 + 6 + 1 + 16 + 4)
		return 0;
	for (i = 0; i < 8; i++)
		if (n[i] < '0' || n[i] > '9')
			return 0;
	if (n[8] != 'T')
		return 0;
	for (i = 9; i < 15; i++)
		if (n[i] < '0' || n[i] > '9')
			return 0;
	if (n[15] != '-')
		return 0;
	for (i = 16; i < 32; i++)
		if (!strchr("0123456789abcdef", n[i]))
			return 0;
	return strcmp(n + 32, ".eml") == 0;
}

START_TEST(test_mail_file_transport)
{
	struct dp_config cfg;
	struct dp_buf	 m1 = { 0 }, m2 = { 0 };
	struct dp_err	 err = { 0 };
	struct dirent	*de;
	struct stat	 st;
	DIR		*dir;
	char		*spool, *text, *h, *names[2];
	size_t		 len;
	mode_t		 old;
	int		 count = 0, i;

	memset(&cfg, 0, sizeof(cfg));
	cfg.mail_transport = dp_xstrdup("file");
	cfg.mail_file_dir = path_in("mail/out");
	/* A strict umask must not change the documented modes. */
	old = umask(077);
	compose_ok(&m1, "first", "one\n.dot line\n");
	compose_ok(&m2, "second", "two\n");
	ck_assert_msg(dp_mail_deliver(&cfg, TO, &m1, &err) == 0, "deliver: %s",
	    err.msg);
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m2, &err), 0);
	umask(old);

	ck_assert_int_eq(stat(cfg.mail_file_dir, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_uint_eq(st.st_mode & 07777, 0750);

	dir = opendir(cfg.mail_file_dir);
	ck_assert_ptr_nonnull(dir);
	while ((de = readdir(dir)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		/* Nothing but finished messages: no temporary file left. */
		ck_assert_msg(eml_name(de->d_name), "stray file %s", de->d_name);
		ck_assert_int_lt(count, 2);
		names[count++] = dp_xstrdup(de->d_name);
	}
	closedir(dir);
	ck_assert_int_eq(count, 2);

	for (i = 0; i < 2; i++) {
		struct dp_buf	 p = { 0 };

		dp_buf_printf(&p, "%s/%s", cfg.mail_file_dir, names[i]);
		ck_assert_int_eq(stat(p.s, &st), 0);
		ck_assert(S_ISREG(st.st_mode));
		ck_assert_uint_eq(st.st_mode & 07777, 0640);
		text = read_file(p.s, &len);
		/* Parses back: headers, empty line, body, byte for byte. */
		h = header(text, "Subject");
		ck_assert(strcmp(h, "first") == 0 || strcmp(h, "second") == 0);
		if (strcmp(h, "first") == 0) {
			ck_assert_uint_eq(len, m1.len);
			ck_assert(memcmp(text, m1.s, len) == 0);
			ck_assert_str_eq(strstr(text, "\r\n\r\n") + 4,
			    "one\r\n.dot line\r\n");
		} else {
			ck_assert_uint_eq(len, m2.len);
			ck_assert(memcmp(text, m2.s, len) == 0);
		}
		free(h);
		h = header(text, "To");
		ck_assert_str_eq(h, TO);
		free(h);
		free(text);
		free(names[i]);
		dp_buf_release(&p);
	}

	/* The target exists as a regular file: an error, not a crash. */
	spool = path_in("plainfile");
	write_file(spool, "x", 1);
	free(cfg.mail_file_dir);
	cfg.mail_file_dir = spool;
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m1, &err), -1);
	ck_assert(err.msg[0] != '\0');
	/* Bad recipient and empty message are refused. */
	ck_assert_int_eq(dp_mail_deliver(&cfg, "no-at-sign", &m1, &err), -1);
	ck_assert_int_eq(dp_mail_deliver(&cfg, "a@b.c\r\nX: y", &m1, &err), -1);
	dp_buf_release(&m1);
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m1, &err), -1);
	dp_buf_release(&m2);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_mail_none_transport)
{
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	struct dp_err	 err = { 0 };

	memset(&cfg, 0, sizeof(cfg));
	compose_ok(&m, "s", "b");
	cfg.mail_transport = dp_xstrdup("none");
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), 0);
	free(cfg.mail_transport);
	cfg.mail_transport = dp_xstrdup("carrier-pigeon");
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert(strstr(err.msg, "transport") != NULL);
	free(cfg.mail_transport);
	cfg.mail_transport = NULL;
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	dp_buf_release(&m);
}
END_TEST

/* --- smtp transport ------------------------------------------------- */

static json_object *
deliver_and_fetch(struct dp_config *cfg, const struct dp_buf *m)
{
	struct dp_err	 err = { 0 };

	ck_assert_msg(dp_mail_deliver(cfg, TO, m, &err) == 0, "deliver: %s",
	    err.msg);
	return spool_record(0);
}

static void
check_record(json_object *o, const struct dp_buf *m, bool tls,
    const char *user)
{
	json_object	*v;

	ck_assert_ptr_nonnull(o);
	ck_assert_str_eq(jstr(o, "mail_from"), "noreply@devpocket.test");
	ck_assert(json_object_object_get_ex(o, "rcpt_to", &v));
	ck_assert_int_eq(json_object_array_length(v), 1);
	ck_assert_str_eq(json_object_get_string(json_object_array_get_idx(v,
	    0)), TO);
	ck_assert_str_eq(jstr(o, "data"), m->s);
	ck_assert(json_object_object_get_ex(o, "tls", &v));
	ck_assert_int_eq(json_object_get_boolean(v), tls);
	ck_assert(json_object_object_get_ex(o, "auth_user", &v));
	if (user == NULL)
		ck_assert(json_object_is_type(v, json_type_null));
	else
		ck_assert_str_eq(json_object_get_string(v), user);
}

START_TEST(test_mail_smtp_plain)
{
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	json_object	*o;
	int		 port;

	port = start_fake(NULL);
	cfg_smtp(&cfg, "smtp", port);
	compose_ok(&m, "Gr\xc3\xbc\xc3\x9f" "e", "Hello alice,\n\xe2\x9c\x93\n");
	o = deliver_and_fetch(&cfg, &m);
	check_record(o, &m, false, NULL);
	json_object_put(o);
	dp_buf_release(&m);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_mail_smtp_dot_stuffing)
{
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	json_object	*o;
	const char	*data;
	int		 port;

	port = start_fake(NULL);
	cfg_smtp(&cfg, "smtp", port);
	/* A lone "." would end DATA early without curl's stuffing. */
	compose_ok(&m, "dots", ".hidden\n..two\n.\nafter the dot\n.");
	o = deliver_and_fetch(&cfg, &m);
	check_record(o, &m, false, NULL);
	data = jstr(o, "data");
	ck_assert(strstr(data, "\r\n.hidden\r\n..two\r\n.\r\nafter the dot\r\n"
	    ".\r\n") != NULL);
	json_object_put(o);
	dp_buf_release(&m);
	cfg_free(&cfg);
}
END_TEST

static void
starttls_auth(const char *mechs)
{
	const char	*args[16];
	char		*cert = path_in("cert.pem"), *key = path_in("key.pem");
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	struct dp_err	 err = { 0 };
	json_object	*o;
	int		 port, n = 0;

	make_cert();
	args[n++] = "--tls-cert";
	args[n++] = cert;
	args[n++] = "--tls-key";
	args[n++] = key;
	args[n++] = "--require-tls";
	args[n++] = "--user";
	args[n++] = SMTP_USER;
	args[n++] = "--password";
	args[n++] = SMTP_PASS;
	args[n++] = "--auth-mechs";
	args[n++] = mechs;
	args[n] = NULL;
	port = start_fake(args);
	cfg_smtp(&cfg, "smtp", port);
	compose_ok(&m, "tls", "secret link\n");

	/* Without STARTTLS the server refuses (530). */
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert_ptr_null(spool_record(0));

	cfg.mail_smtp_starttls = true;
	free(cfg.mail_smtp_user);
	free(cfg.mail_smtp_password);
	cfg.mail_smtp_user = dp_xstrdup(SMTP_USER);
	cfg.mail_smtp_password = dp_xstrdup(SMTP_PASS);
	/* The self-signed certificate is refused unless insecure. */
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert_ptr_null(spool_record(0));

	cfg.mail_smtp_insecure = true;
	o = deliver_and_fetch(&cfg, &m);
	check_record(o, &m, true, SMTP_USER);
	json_object_put(o);
	dp_buf_release(&m);
	cfg_free(&cfg);
	free(cert);
	free(key);
}

START_TEST(test_mail_smtp_starttls_auth)
{
	starttls_auth("PLAIN LOGIN");
}
END_TEST

START_TEST(test_mail_smtp_starttls_auth_plain)
{
	starttls_auth("PLAIN");
}
END_TEST

START_TEST(test_mail_smtp_implicit_tls)
{
	char		*cert = path_in("cert.pem"), *key = path_in("key.pem");
	const char	*args[] = { "--tls-cert", cert, "--tls-key", key,
	    "--implicit-tls", "--user", SMTP_USER, "--password", SMTP_PASS,
	    NULL };
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	struct dp_err	 err = { 0 };
	json_object	*o;
	int		 port;

	make_cert();
	port = start_fake(args);
	cfg_smtp(&cfg, "smtps", port);
	free(cfg.mail_smtp_user);
	free(cfg.mail_smtp_password);
	cfg.mail_smtp_user = dp_xstrdup(SMTP_USER);
	cfg.mail_smtp_password = dp_xstrdup(SMTP_PASS);
	cfg.mail_smtp_insecure = true;
	compose_ok(&m, "implicit", "over smtps\n");
	o = deliver_and_fetch(&cfg, &m);
	check_record(o, &m, true, SMTP_USER);
	json_object_put(o);

	/* smtps with an smtp:// URL is a configuration error. */
	free(cfg.mail_smtp_url);
	cfg.mail_smtp_url = dp_xstrdup("smtp://127.0.0.1:1");
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert(strstr(err.msg, "smtps://") != NULL);
	dp_buf_release(&m);
	cfg_free(&cfg);
	free(cert);
	free(key);
}
END_TEST

START_TEST(test_mail_smtp_wrong_password)
{
	const char	*args[] = { "--user", SMTP_USER, "--password",
	    "the-right-one", NULL };
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	struct dp_err	 err = { 0 };
	int		 port;

	port = start_fake(args);
	cfg_smtp(&cfg, "smtp", port);
	free(cfg.mail_smtp_user);
	free(cfg.mail_smtp_password);
	cfg.mail_smtp_user = dp_xstrdup(SMTP_USER);
	cfg.mail_smtp_password = dp_xstrdup(SMTP_PASS);
	compose_ok(&m, "s", "b\n");
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert(err.msg[0] != '\0');
	ck_assert_msg(strstr(err.msg, "535") != NULL, "msg: %s", err.msg);
	ck_assert(strstr(err.msg, SMTP_PASS) == NULL);
	ck_assert(strstr(err.msg, "Hunter2") == NULL);
	ck_assert_ptr_null(spool_record(0));

	/* A password in the URL is scrubbed as well. */
	free(cfg.mail_smtp_url);
	{
		struct dp_buf	 u = { 0 };

		dp_buf_printf(&u, "smtp://x:%s@127.0.0.1:%d", SMTP_PASS, port);
		cfg.mail_smtp_url = dp_buf_detach(&u);
	}
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert(strstr(err.msg, SMTP_PASS) == NULL);
	dp_buf_release(&m);
	cfg_free(&cfg);
}
END_TEST

START_TEST(test_mail_smtp_server_down)
{
	struct sockaddr_in sin;
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	struct dp_err	 err = { 0 };
	socklen_t	 sl = sizeof(sin);
	int64_t		 t0;
	int		 s, port;

	/* A port that was free a moment ago: connection refused. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
	port = ntohs(sin.sin_port);
	close(s);
	cfg_smtp(&cfg, "smtp", port);
	compose_ok(&m, "s", "b\n");
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert(err.msg[0] != '\0');

	/* A server that accepts but never greets: the timeout fires. */
	s = socket(AF_INET, SOCK_STREAM, 0);
	sin.sin_port = 0;
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(s, 4), 0);
	sl = sizeof(sin);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &sl), 0);
	free(cfg.mail_smtp_url);
	{
		struct dp_buf	 u = { 0 };

		dp_buf_printf(&u, "smtp://127.0.0.1:%d", ntohs(sin.sin_port));
		cfg.mail_smtp_url = dp_buf_detach(&u);
	}
	cfg.mail_smtp_timeout = 1;
	t0 = dp_mono_ms();
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert(dp_mono_ms() - t0 < 5000);
	ck_assert(err.msg[0] != '\0');
	close(s);
	dp_buf_release(&m);
	cfg_free(&cfg);
}
END_TEST

/* Every header line (the head up to the empty line) at most max octets. */
static void
head_lines_max(const char *msg, size_t max)
{
	const char	*end = strstr(msg, "\r\n\r\n"), *p, *e;

	for (p = msg; p < end; p = e + 2) {
		e = strstr(p, "\r\n");
		ck_assert_msg((size_t)(e - p) <= max, "header line of %zu: %.*s",
		    (size_t)(e - p), (int)(e - p), p);
	}
}

START_TEST(test_mail_compose_mailboxes)
{
	static const struct {
		const char	*in, *want;
	} cases[] = {
		{ "noreply@devpocket.test", "noreply@devpocket.test" },
		{ "  DevPocket   <noreply@devpocket.test> ",
		  "DevPocket <noreply@devpocket.test>" },
		/* Specials: one quoted name, not two mailboxes. */
		{ "Acme, Inc. <noreply@devpocket.test>",
		  "\"Acme, Inc.\" <noreply@devpocket.test>" },
		{ "A \"B\" C: <noreply@devpocket.test>",
		  "\"A \\\"B\\\" C:\" <noreply@devpocket.test>" },
		/* Quoted already: as it is. */
		{ "\"Acme, Inc.\" <noreply@devpocket.test>",
		  "\"Acme, Inc.\" <noreply@devpocket.test>" },
		/* Non-ASCII: encoded-words (RFC 2047 5(3)). */
		{ "\xc3\x89quipe DevPocket <noreply@devpocket.test>",
		  "=?UTF-8?B?w4lxdWlwZSBEZXZQb2NrZXQ=?= <noreply@devpocket.test>" },
	};
	struct dp_buf	 m = { 0 };
	struct dp_err	 err;
	struct dp_config cfg;
	char		*h;
	size_t		 i;

	for (i = 0; i < DP_NITEMS(cases); i++) {
		memset(&err, 0, sizeof(err));
		dp_buf_reset(&m);
		ck_assert_msg(dp_mail_compose(&m, cases[i].in, TO, "s", "b",
		    &err) == 0, "%s: %s", cases[i].in, err.msg);
		h = header(m.s, "From");
		ck_assert_str_eq(h, cases[i].want);
		free(h);
		head_lines_max(m.s, 76);
		/* The envelope's and the Message-ID's address. */
		h = header(m.s, "Message-ID");
		ck_assert(strstr(h, "@devpocket.test>") != NULL);
		free(h);
	}
	/* A long non-ASCII name: several words, each line within 76. */
	dp_buf_reset(&m);
	ck_assert_int_eq(dp_mail_compose(&m, "\xc3\x89\xc3\x89\xc3\x89 "
	    "\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac\xe2\x82\xac "
	    "the long name of a team \xc3\xa9\xc3\xa9 <a@devpocket.test>",
	    TO, "s", "b", NULL), 0);
	head_lines_max(m.s, 76);
	/* So is a long non-ASCII subject's first, beside "Subject: ". */
	dp_buf_reset(&m);
	ck_assert_int_eq(dp_mail_compose(&m, FROM, TO, "R\xc3\xa9initialiser "
	    "votre mot de passe DevPocket, s'il vous pla\xc3\xaet, "
	    "maintenant", "b", NULL), 0);
	head_lines_max(m.s, 76);
	/* The same rules make a configuration's from good or bad. */
	memset(&cfg, 0, sizeof(cfg));
	cfg.mail_transport = (char *)"file";
	for (i = 0; i < DP_NITEMS(cases); i++) {
		cfg.mail_from = (char *)cases[i].in;
		ck_assert_int_eq(dp_mail_config_check(&cfg, &err), 0);
	}
	cfg.mail_from = (char *)"a";
	ck_assert_int_eq(dp_mail_config_check(&cfg, &err), -1);
	ck_assert_msg(strstr(err.msg, "[mail] from") != NULL, "%s", err.msg);
	cfg.mail_from = (char *)"Bad \xc3 <a@b.test>";
	ck_assert_int_eq(dp_mail_config_check(&cfg, &err), -1);
	/* smtp_url's scheme must be the transport's. */
	cfg.mail_from = (char *)FROM;
	cfg.mail_transport = (char *)"smtps";
	cfg.mail_smtp_url = (char *)"smtp://localhost:25";
	ck_assert_int_eq(dp_mail_config_check(&cfg, &err), -1);
	ck_assert_msg(strstr(err.msg, "smtps://") != NULL, "%s", err.msg);
	cfg.mail_transport = (char *)"smtp";
	cfg.mail_smtp_url = (char *)"smtps://localhost:465";
	ck_assert_int_eq(dp_mail_config_check(&cfg, &err), -1);
	cfg.mail_smtp_url = (char *)"SMTP://localhost:25";
	ck_assert_int_eq(dp_mail_config_check(&cfg, &err), 0);
	cfg.mail_transport = (char *)"smtps";
	cfg.mail_smtp_url = (char *)"smtps://localhost:465";
	ck_assert_int_eq(dp_mail_config_check(&cfg, &err), 0);
	dp_buf_release(&m);
}
END_TEST

/* The Message-ID a job carries is the message's on every attempt. */
START_TEST(test_mail_compose_message_id)
{
	static const char id[] = "0123456789abcdef0123456789abcdef";
	struct dp_buf	 a = { 0 }, b = { 0 };
	char		*h;

	ck_assert_int_eq(dp_mail_compose_id(&a, FROM, TO, "s", "b", id, NULL),
	    0);
	ck_assert_int_eq(dp_mail_compose_id(&b, FROM, TO, "s", "b", id, NULL),
	    0);
	h = header(a.s, "Message-ID");
	ck_assert_str_eq(h, "<0123456789abcdef0123456789abcdef@devpocket.test>");
	free(h);
	ck_assert_str_eq(strstr(a.s, "Message-ID"), strstr(b.s, "Message-ID"));
	/* Anything else is not taken (a random one instead). */
	dp_buf_reset(&a);
	ck_assert_int_eq(dp_mail_compose_id(&a, FROM, TO, "s", "b",
	    "0123456789ABCDEF0123456789abcdef", NULL), 0);
	h = header(a.s, "Message-ID");
	ck_assert(strstr(h, "0123456789ABCDEF") == NULL);
	ck_assert_uint_eq(strlen(h), 1 + 32 + strlen("@devpocket.test>"));
	free(h);
	dp_buf_release(&a);
	dp_buf_release(&b);
}
END_TEST

/* A 5xx refusal is for good; a 4xx one is tried again. */
START_TEST(test_mail_smtp_refused)
{
	const char	*no[] = { "--rcpt-reply", "550", NULL };
	const char	*later[] = { "--rcpt-reply", "451", NULL };
	struct dp_config cfg;
	struct dp_buf	 m = { 0 };
	struct dp_err	 err = { 0 };

	cfg_smtp(&cfg, "smtp", start_fake(no));
	compose_ok(&m, "s", "b\n");
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), DP_MAIL_REFUSED);
	ck_assert_msg(strstr(err.msg, "550") != NULL, "msg: %s", err.msg);
	cfg_free(&cfg);
	stop_fake();
	cfg_smtp(&cfg, "smtp", start_fake(later));
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(dp_mail_deliver(&cfg, TO, &m, &err), -1);
	ck_assert_msg(strstr(err.msg, "451") != NULL, "msg: %s", err.msg);
	ck_assert_ptr_null(spool_record(0));
	dp_buf_release(&m);
	cfg_free(&cfg);
}
END_TEST

static Suite *
mail_suite(void)
{
	Suite	*s = suite_create("mail");
	TCase	*tc;

#define TC(name, fn, secs) do {						\
	tc = tcase_create(name);					\
	tcase_add_checked_fixture(tc, setup, teardown);			\
	tcase_set_timeout(tc, secs);					\
	tcase_add_test(tc, fn);						\
	suite_add_tcase(s, tc);						\
} while (0)
	TC("compose_headers", test_mail_compose_headers, 10);
	TC("compose_injection", test_mail_compose_injection, 10);
	TC("compose_rfc2047", test_mail_compose_rfc2047, 10);
	TC("compose_mailboxes", test_mail_compose_mailboxes, 10);
	TC("compose_message_id", test_mail_compose_message_id, 10);
	TC("smtp_refused", test_mail_smtp_refused, 30);
	TC("compose_body_cap", test_mail_compose_body_cap, 30);
	TC("render_placeholders", test_mail_render_placeholders, 10);
	TC("render_shipped", test_mail_render_shipped, 10);
	TC("render_unknown", test_mail_render_unknown, 10);
	TC("render_missing", test_mail_render_missing, 10);
	TC("file_transport", test_mail_file_transport, 10);
	TC("none_transport", test_mail_none_transport, 10);
	TC("smtp_plain", test_mail_smtp_plain, 30);
	TC("smtp_dot_stuffing", test_mail_smtp_dot_stuffing, 30);
	TC("smtp_starttls_auth", test_mail_smtp_starttls_auth, 60);
	TC("smtp_starttls_auth_plain", test_mail_smtp_starttls_auth_plain, 60);
	TC("smtp_implicit_tls", test_mail_smtp_implicit_tls, 60);
	TC("smtp_wrong_password", test_mail_smtp_wrong_password, 30);
	TC("smtp_server_down", test_mail_smtp_server_down, 30);
#undef TC
	return s;
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	sr = srunner_create(mail_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
