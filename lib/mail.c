/* lib/mail.c: composing, rendering and delivering mail (file, smtp, smtps) */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "mail.h"

/* Caps: body before CRLF conversion, whole message, template file. */
#define MAIL_BODY_MAX		(1024 * 1024)
#define MAIL_MESSAGE_MAX	(3 * 1024 * 1024)
#define MAIL_TEMPLATE_MAX	(64 * 1024)
#define MAIL_LINE_MAX		998	/* RFC 5322 2.1.1, CRLF apart */
#define MAIL_ADDR_MAX		512	/* a From or To header value */
#define MAIL_SUBJECT_MAX	512	/* raw UTF-8 bytes */
#define MAIL_KEY_MAX		64	/* placeholder or template name */
/*
 * Raw bytes per encoded-word: 60 base64 chars, 72 with the markers, 73
 * with the folding space: RFC 2047 2 allows 76 per line.  The first word
 * shares its line with "Subject: " or "From: ": 39 bytes, 52 chars.
 */
#define MAIL_EWORD_RAW		45
#define MAIL_EWORD_FIRST	39

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	unsigned int	 c;
	size_t		 len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		c = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* Overlong forms, surrogates and values past U+10FFFF. */
	if ((len == 3 && c < 0x800) || (len == 4 && c < 0x10000) ||
	    (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff)
		return 0;
	return len;
}

static int
utf8_valid(const char *p, size_t n)
{
	const unsigned char	*s = (const unsigned char *)p;
	size_t			 i, k;

	for (i = 0; i < n; i += k)
		if ((k = utf8_seq(s + i, n - i)) == 0)
			return 0;
	return 1;
}

static void
base64(struct dp_buf *out, const unsigned char *in, size_t n)
{
	static const char	 t[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	unsigned int		 v;
	size_t			 i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8 |
		    in[i + 2];
		dp_buf_addc(out, t[v >> 18]);
		dp_buf_addc(out, t[(v >> 12) & 63]);
		dp_buf_addc(out, t[(v >> 6) & 63]);
		dp_buf_addc(out, t[v & 63]);
	}
	if (n - i == 1) {
		v = (unsigned int)in[i] << 16;
		dp_buf_addc(out, t[v >> 18]);
		dp_buf_addc(out, t[(v >> 12) & 63]);
		dp_buf_adds(out, "==");
	} else if (n - i == 2) {
		v = (unsigned int)in[i] << 16 | (unsigned int)in[i + 1] << 8;
		dp_buf_addc(out, t[v >> 18]);
		dp_buf_addc(out, t[(v >> 12) & 63]);
		dp_buf_addc(out, t[(v >> 6) & 63]);
		dp_buf_addc(out, '=');
	}
}

/*
 * Find the bare address in "addr" or "Name <addr>": no CR, LF, NUL or
 * other controls anywhere (they would allow header or SMTP command
 * injection), the address in printable ASCII with one '@' and something
 * on each side, a name in valid UTF-8 (mail_phrase writes it).
 */
static int
mail_addr(const char *what, const char *s, const char **ap, size_t *alen,
    struct dp_err *err)
{
	const char	*a, *e, *at, *p;
	size_t		 n;
	int		 rc = -1;

	if (s == NULL || *s == '\0') {
		dp_err_set(err, EINVAL, "%s: empty address", what);
		goto out;
	}
	n = strnlen(s, MAIL_ADDR_MAX + 1);
	if (n > MAIL_ADDR_MAX) {
		dp_err_set(err, EINVAL, "%s: address too long", what);
		goto out;
	}
	for (p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f) {
			dp_err_set(err, EINVAL, "%s: control character in "
			    "address", what);
			goto out;
		}
	if (!utf8_valid(s, n)) {
		dp_err_set(err, EINVAL, "%s: not valid UTF-8", what);
		goto out;
	}
	if ((a = strrchr(s, '<')) != NULL) {
		a++;
		if ((e = strchr(a, '>')) == NULL) {
			dp_err_set(err, EINVAL, "%s: unterminated <address>",
			    what);
			goto out;
		}
		for (p = e + 1; *p; p++)
			if (*p != ' ' && *p != '\t') {
				dp_err_set(err, EINVAL, "%s: text after "
				    "<address>", what);
				goto out;
			}
	} else {
		a = s;
		while (*a == ' ' || *a == '\t')
			a++;
		e = a + strlen(a);
		while (e > a && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
	}
	for (p = a; p < e; p++)
		if (*p == ' ' || *p == '\t' || *p == '<' || *p == '>' ||
		    *p == '"' || *p == ',' || *p == '(' || *p == ')' ||
		    (unsigned char)*p >= 0x80) {
			dp_err_set(err, EINVAL, "%s: invalid character in "
			    "address", what);
			goto out;
		}
	at = memchr(a, '@', (size_t)(e - a));
	if (at == NULL || at == a || at + 1 == e ||
	    memchr(at + 1, '@', (size_t)(e - at - 1)) != NULL) {
		dp_err_set(err, EINVAL, "%s: address needs local@domain", what);
		goto out;
	}
	*ap = a;
	*alen = (size_t)(e - a);
	rc = 0;
out:
	return rc;
}

/*
 * s (n bytes, valid UTF-8) as RFC 2047 B encoded-words, never splitting a
 * UTF-8 sequence, the first word at most first raw bytes (it shares its
 * line with the header's name), the others MAIL_EWORD_RAW, each on a line
 * of its own.
 */
static void
add_ewords(struct dp_buf *out, const char *str, size_t n, size_t first)
{
	const unsigned char	*s = (const unsigned char *)str;
	size_t			 i, k, chunk, max = first;

	for (i = 0; i < n; i += chunk, max = MAIL_EWORD_RAW) {
		for (chunk = 0; i + chunk < n; chunk += k) {
			k = utf8_seq(s + i + chunk, n - i - chunk);
			if (chunk + k > max)
				break;
		}
		if (i > 0)
			dp_buf_adds(out, "\r\n ");
		dp_buf_adds(out, "=?UTF-8?B?");
		base64(out, s + i, chunk);
		dp_buf_adds(out, "?=");
	}
}

/*
 * "Name: " and the mailbox s (mail_addr checked it): the address alone,
 * or the display name as it is when it is atoms and spaces, quoted when it
 * holds specials (RFC 5322 3.2.3: "Acme, Inc." is one name, not two
 * mailboxes), encoded-words when it holds non-ASCII (RFC 2047 5(3)), then
 * <address>.
 */
static void
add_mailbox(struct dp_buf *out, const char *name, const char *s,
    const char *a, size_t alen)
{
	const char	*d = s, *e = a, *p;
	bool		 ascii = true, special = false, quoted = false;

	dp_buf_printf(out, "%s: ", name);
	if (strrchr(s, '<') != NULL) {
		e = strrchr(s, '<');
		while (d < e && (*d == ' ' || *d == '\t'))
			d++;
		while (e > d && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		quoted = e - d >= 2 && *d == '"' && e[-1] == '"' &&
		    e[-2] != '\\';
	} else
		e = d;
	for (p = d; p < e; p++) {
		if ((unsigned char)*p >= 0x80)
			ascii = false;
		else if (strchr("()<>[]:;@\\,.\"", *p) != NULL)
			special = true;
	}
	if (e > d && !ascii) {
		if (quoted) {
			d++;
			e--;
		}
		add_ewords(out, d, (size_t)(e - d), MAIL_EWORD_FIRST);
		/* Its own line: an encoded-word's is at most 76. */
		dp_buf_printf(out, "\r\n <%.*s>\r\n", (int)alen, a);
		return;
	}
	if (e > d && special && !quoted) {
		dp_buf_addc(out, '"');
		for (p = d; p < e; p++) {
			if (*p == '"' || *p == '\\')
				dp_buf_addc(out, '\\');
			dp_buf_addc(out, *p);
		}
		dp_buf_addc(out, '"');
	} else if (e > d)
		dp_buf_add(out, d, (size_t)(e - d));
	if (e > d)
		dp_buf_printf(out, " <%.*s>\r\n", (int)alen, a);
	else
		dp_buf_printf(out, "%.*s\r\n", (int)alen, a);
}

/* Subject header: plain when printable ASCII, else RFC 2047 B words. */
static int
add_subject(struct dp_buf *out, const char *subject, struct dp_err *err)
{
	const unsigned char	*s = (const unsigned char *)subject;
	size_t			 n, i;
	int			 plain = 1, rc = -1;

	n = strnlen(subject, MAIL_SUBJECT_MAX + 1);
	if (n > MAIL_SUBJECT_MAX) {
		dp_err_set(err, EINVAL, "subject too long");
		goto out;
	}
	for (i = 0; i < n; i++) {
		if (s[i] == '\r' || s[i] == '\n') {
			dp_err_set(err, EINVAL, "CR or LF in subject");
			goto out;
		}
		if ((s[i] < 0x20 && s[i] != '\t') || s[i] == 0x7f) {
			dp_err_set(err, EINVAL, "control character in subject");
			goto out;
		}
		if (s[i] >= 0x80)
			plain = 0;
	}
	if (!utf8_valid(subject, n)) {
		dp_err_set(err, EINVAL, "subject is not valid UTF-8");
		goto out;
	}
	/* Plain text that looks like an encoded-word must be encoded too. */
	if (strstr(subject, "=?") != NULL)
		plain = 0;
	dp_buf_adds(out, "Subject: ");
	if (plain)
		dp_buf_add(out, subject, n);
	else
		add_ewords(out, subject, n, MAIL_EWORD_FIRST);
	dp_buf_adds(out, "\r\n");
	rc = 0;
out:
	return rc;
}

/* Body with every line end (CRLF, LF or lone CR) written as CRLF. */
static int
add_body(struct dp_buf *out, const char *body, struct dp_err *err)
{
	size_t	 n, i, line = 0;
	int	 rc = -1;

	n = strnlen(body, MAIL_BODY_MAX + 1);
	if (n > MAIL_BODY_MAX) {
		dp_err_set(err, EFBIG, "body larger than %d bytes",
		    MAIL_BODY_MAX);
		goto out;
	}
	if (!utf8_valid(body, n)) {
		dp_err_set(err, EINVAL, "body is not valid UTF-8");
		goto out;
	}
	dp_buf_grow(out, n + n / 16 + 2);
	for (i = 0; i < n; i++) {
		if (body[i] == '\r' || body[i] == '\n') {
			if (body[i] == '\r' && i + 1 < n && body[i + 1] == '\n')
				i++;
			dp_buf_add(out, "\r\n", 2);
			line = 0;
			continue;
		}
		if (++line > MAIL_LINE_MAX) {
			dp_err_set(err, EINVAL, "body line longer than %d "
			    "octets", MAIL_LINE_MAX);
			goto out;
		}
		dp_buf_addc(out, body[i]);
	}
	if (line > 0)
		dp_buf_add(out, "\r\n", 2);
	rc = 0;
out:
	return rc;
}

int
dp_mail_compose(struct dp_buf *out, const char *from, const char *to,
    const char *subject, const char *body, struct dp_err *err)
{
	return dp_mail_compose_id(out, from, to, subject, body, NULL, err);
}

int
dp_mail_compose_id(struct dp_buf *out, const char *from, const char *to,
    const char *subject, const char *body, const char *id,
    struct dp_err *err)
{
	static const char *const days[] = {
		"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"
	};
	static const char *const months[] = {
		"Jan", "Feb", "Mar", "Apr", "May", "Jun",
		"Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
	};
	struct dp_buf	 m = { 0 };
	struct tm	 tm;
	time_t		 now;
	const char	*a, *ta, *dom, *p;
	size_t		 alen, talen, i;
	unsigned char	 rnd[16];
	char		 hex[sizeof(rnd) * 2 + 1];
	int		 rc = -1;

	if (subject == NULL || body == NULL) {
		dp_err_set(err, EINVAL, "missing subject or body");
		goto out;
	}
	if (mail_addr("to", to, &a, &alen, err) == -1)
		goto out;
	if (mail_addr("from", from, &a, &alen, err) == -1)
		goto out;

	now = time(NULL);
	if (gmtime_r(&now, &tm) == NULL) {
		dp_err_set(err, EINVAL, "gmtime failed");
		goto out;
	}
	dp_buf_printf(&m, "Date: %s, %02d %s %04d %02d:%02d:%02d +0000\r\n",
	    days[tm.tm_wday], tm.tm_mday, months[tm.tm_mon],
	    tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
	add_mailbox(&m, "From", from, a, alen);
	if (mail_addr("to", to, &ta, &talen, err) == -1)
		goto out;
	add_mailbox(&m, "To", to, ta, talen);
	if (add_subject(&m, subject, err) == -1)
		goto out;

	/* Message-ID right side: the From domain when it is a dot-atom. */
	dom = memchr(a, '@', alen) + 1;
	for (p = dom; p < a + alen; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		    (*p >= '0' && *p <= '9') || *p == '-' || *p == '.'))
			break;
	if (id != NULL && strlen(id) == sizeof(hex) - 1 &&
	    strspn(id, "0123456789abcdef") == sizeof(hex) - 1)
		memcpy(hex, id, sizeof(hex));
	else {
		dp_random(rnd, sizeof(rnd));
		dp_hex(hex, rnd, sizeof(rnd));
	}
	if (p == a + alen) {
		i = (size_t)(a + alen - dom);
		dp_buf_printf(&m, "Message-ID: <%s@%.*s>\r\n", hex, (int)i,
		    dom);
	} else
		dp_buf_printf(&m, "Message-ID: <%s@devpocket.invalid>\r\n",
		    hex);
	dp_buf_adds(&m, "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: 8bit\r\n"
	    "\r\n");
	if (add_body(&m, body, err) == -1)
		goto out;
	dp_buf_add(out, m.s, m.len);
	rc = 0;
out:
	dp_buf_release(&m);
	return rc;
}

/* Substitute {{key}} in src[0..n) into out. */
static int
render_text(struct dp_buf *out, const char *src, size_t n,
    const char *const *vars, const char *path, struct dp_err *err)
{
	const char	*p = src, *end = src + n, *o, *k, *c;
	size_t		 klen, i;
	int		 rc = -1;

	while (p < end) {
		o = memmem(p, (size_t)(end - p), "{{", 2);
		if (o == NULL) {
			dp_buf_add(out, p, (size_t)(end - p));
			break;
		}
		dp_buf_add(out, p, (size_t)(o - p));
		k = o + 2;
		c = memmem(k, (size_t)(end - k), "}}", 2);
		if (c == NULL) {
			dp_err_set(err, EINVAL, "%s: unterminated placeholder",
			    path);
			goto out;
		}
		klen = (size_t)(c - k);
		if (klen == 0 || klen > MAIL_KEY_MAX) {
			dp_err_set(err, EINVAL, "%s: malformed placeholder",
			    path);
			goto out;
		}
		for (i = 0; i < klen; i++)
			if (!((k[i] >= 'a' && k[i] <= 'z') ||
			    (k[i] >= 'A' && k[i] <= 'Z') ||
			    (k[i] >= '0' && k[i] <= '9') || k[i] == '_')) {
				dp_err_set(err, EINVAL, "%s: malformed "
				    "placeholder", path);
				goto out;
			}
		for (i = 0; vars != NULL && vars[i] != NULL; i += 2) {
			if (vars[i + 1] == NULL) {
				dp_err_set(err, EINVAL, "variable %s has no "
				    "value", vars[i]);
				goto out;
			}
			if (strlen(vars[i]) == klen &&
			    memcmp(vars[i], k, klen) == 0)
				break;
		}
		if (vars == NULL || vars[i] == NULL) {
			dp_err_set(err, ENOENT, "%s: unknown placeholder "
			    "{{%.*s}}", path, (int)klen, k);
			goto out;
		}
		dp_buf_adds(out, vars[i + 1]);
		p = c + 2;
	}
	rc = 0;
out:
	return rc;
}

int
dp_mail_render(const char *template_dir, const char *name,
    const char *const *vars, char **subject, struct dp_buf *body,
    struct dp_err *err)
{
	struct dp_buf	 text = { 0 }, subj = { 0 }, b = { 0 };
	struct stat	 st;
	char		 path[PATH_MAX];
	const char	*p, *nl, *s, *se;
	ssize_t		 r;
	size_t		 i, n;
	int		 fd = -1, rc = -1;

	*subject = NULL;
	n = name == NULL ? 0 : strnlen(name, MAIL_KEY_MAX + 1);
	if (n == 0 || n > MAIL_KEY_MAX) {
		dp_err_set(err, EINVAL, "invalid template name");
		goto out;
	}
	for (i = 0; i < n; i++)
		if (!((name[i] >= 'a' && name[i] <= 'z') ||
		    (name[i] >= 'A' && name[i] <= 'Z') ||
		    (name[i] >= '0' && name[i] <= '9') ||
		    name[i] == '_' || name[i] == '-')) {
			dp_err_set(err, EINVAL, "invalid template name");
			goto out;
		}
	r = snprintf(path, sizeof(path), "%s/%s.txt", template_dir, name);
	if (r < 0 || (size_t)r >= sizeof(path)) {
		dp_err_set(err, ENAMETOOLONG, "template path too long");
		goto out;
	}
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1) {
		dp_err_set(err, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		dp_err_set(err, EINVAL, "%s: not a regular file", path);
		goto out;
	}
	/* Read at most one byte past the cap to notice a larger file. */
	dp_buf_grow(&text, MAIL_TEMPLATE_MAX + 1);
	while (text.len <= MAIL_TEMPLATE_MAX) {
		r = read(fd, text.s + text.len,
		    MAIL_TEMPLATE_MAX + 1 - text.len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			dp_err_set(err, errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		text.len += (size_t)r;
	}
	text.s[text.len] = '\0';
	if (text.len > MAIL_TEMPLATE_MAX) {
		dp_err_set(err, EFBIG, "%s: larger than %d bytes", path,
		    MAIL_TEMPLATE_MAX);
		goto out;
	}
	if (memchr(text.s, '\0', text.len) != NULL) {
		dp_err_set(err, EINVAL, "%s: NUL byte in template", path);
		goto out;
	}

	/* "Subject: ..." line, then an empty line, then the body. */
	if (strncasecmp(text.s, "Subject:", 8) != 0 ||
	    (nl = memchr(text.s, '\n', text.len)) == NULL) {
		dp_err_set(err, EINVAL, "%s: first line must be \"Subject: "
		    "...\"", path);
		goto out;
	}
	s = text.s + 8;
	while (s < nl && (*s == ' ' || *s == '\t'))
		s++;
	se = nl;
	while (se > s && (se[-1] == '\r' || se[-1] == ' ' || se[-1] == '\t'))
		se--;
	p = nl + 1;
	if (*p == '\r')
		p++;
	if (*p != '\n') {
		dp_err_set(err, EINVAL, "%s: an empty line must follow the "
		    "subject", path);
		goto out;
	}
	p++;
	if (render_text(&subj, s, (size_t)(se - s), vars, path, err) == -1)
		goto out;
	if (subj.len == 0 || strpbrk(subj.s, "\r\n") != NULL) {
		dp_err_set(err, EINVAL, "%s: empty subject or line break in "
		    "subject", path);
		goto out;
	}
	if (render_text(&b, p, (size_t)(text.s + text.len - p), vars, path,
	    err) == -1)
		goto out;
	dp_buf_add(body, b.s ? b.s : "", b.len);
	*subject = dp_buf_detach(&subj);
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	dp_buf_release(&text);
	dp_buf_release(&subj);
	dp_buf_release(&b);
	return rc;
}

/* mkdir -p with mode for the directories it creates. */
static int
make_dirs(const char *dir, mode_t mode, struct dp_err *err)
{
	char		 path[PATH_MAX];
	struct stat	 st;
	size_t		 n, i;
	int		 rc = -1;

	n = strlen(dir);
	if (n == 0 || n >= sizeof(path)) {
		dp_err_set(err, ENAMETOOLONG, "mail_file_dir: bad length");
		goto out;
	}
	memcpy(path, dir, n + 1);
	for (i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		path[i] = '\0';
		if (mkdir(path, mode) == 0) {
			/* The umask must not loosen or tighten the mode. */
			if (chmod(path, mode) == -1) {
				dp_err_set(err, errno, "%s: %s", path,
				    strerror(errno));
				goto out;
			}
		} else if (errno != EEXIST) {
			dp_err_set(err, errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (i < n)
			path[i] = '/';
	}
	if (stat(dir, &st) == -1 || !S_ISDIR(st.st_mode)) {
		dp_err_set(err, ENOTDIR, "%s: not a directory", dir);
		goto out;
	}
	rc = 0;
out:
	return rc;
}

/* Write to a temporary file in the same directory, fsync, rename. */
static int
deliver_file(const struct dp_config *cfg, const struct dp_buf *msg,
    struct dp_err *err)
{
	const char	*dir = cfg->mail_file_dir;
	char		 tmp[PATH_MAX], dst[PATH_MAX], stamp[32], hex[17];
	unsigned char	 rnd[8];
	struct tm	 tm;
	time_t		 now;
	size_t		 off;
	ssize_t		 w;
	int		 fd = -1, dfd = -1, made = 0, rc = -1, n;

	if (dir == NULL || *dir == '\0') {
		dp_err_set(err, EINVAL, "mail_file_dir is not set");
		goto out;
	}
	if (make_dirs(dir, 0750, err) == -1)
		goto out;
	now = time(NULL);
	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm) == 0) {
		dp_err_set(err, EINVAL, "cannot format time");
		goto out;
	}
	dp_random(rnd, sizeof(rnd));
	dp_hex(hex, rnd, sizeof(rnd));
	n = snprintf(dst, sizeof(dst), "%s/%s-%s.eml", dir, stamp, hex);
	if (n < 0 || (size_t)n >= sizeof(dst)) {
		dp_err_set(err, ENAMETOOLONG, "mail file path too long");
		goto out;
	}
	/* A leading dot and another suffix keep readers off the temp file. */
	n = snprintf(tmp, sizeof(tmp), "%s/.%s-%s.tmp", dir, stamp, hex);
	if (n < 0 || (size_t)n >= sizeof(tmp)) {
		dp_err_set(err, ENAMETOOLONG, "mail file path too long");
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
	    0640);
	if (fd == -1) {
		dp_err_set(err, errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	made = 1;
	if (fchmod(fd, 0640) == -1) {
		dp_err_set(err, errno, "%s: %s", tmp, strerror(errno));
		goto out;
	}
	for (off = 0; off < msg->len; off += (size_t)w) {
		w = write(fd, msg->s + off, msg->len - off);
		if (w == -1 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w == -1) {
			dp_err_set(err, errno, "%s: %s", tmp, strerror(errno));
			goto out;
		}
	}
	if (fsync(fd) == -1) {
		dp_err_set(err, errno, "%s: fsync: %s", tmp, strerror(errno));
		goto out;
	}
	if (close(fd) == -1) {
		fd = -1;
		dp_err_set(err, errno, "%s: close: %s", tmp, strerror(errno));
		goto out;
	}
	fd = -1;
	if (rename(tmp, dst) == -1) {
		dp_err_set(err, errno, "%s: rename: %s", dst, strerror(errno));
		goto out;
	}
	made = 0;
	/* Make the new directory entry durable too. */
	if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1)
		(void)fsync(dfd);
	rc = 0;
out:
	if (fd != -1)
		close(fd);
	if (dfd != -1)
		close(dfd);
	if (made)
		unlink(tmp);
	return rc;
}

struct mail_reader {
	const char	*p;
	size_t		 len, off;
};

static size_t
mail_read(char *dst, size_t size, size_t nmemb, void *arg)
{
	struct mail_reader	*r = arg;
	size_t			 n = r->len - r->off;

	if (n > size * nmemb)
		n = size * nmemb;
	memcpy(dst, r->p + r->off, n);
	r->off += n;
	return n;
}

/* Replace every occurrence of secret in msg (cap bytes) by "***". */
static void
scrub(char *msg, size_t cap, const char *secret)
{
	struct dp_buf	 b = { 0 };
	const char	*p, *q;
	size_t		 sl;

	if (secret == NULL || (sl = strlen(secret)) == 0 ||
	    strstr(msg, secret) == NULL)
		return;
	for (p = msg; (q = strstr(p, secret)) != NULL; p = q + sl) {
		dp_buf_add(&b, p, (size_t)(q - p));
		dp_buf_adds(&b, "***");
	}
	dp_buf_adds(&b, p);
	/* Truncation can only cut text, never expose the secret. */
	snprintf(msg, cap, "%s", b.s);
	dp_buf_release(&b);
}

static int
deliver_smtp(const struct dp_config *cfg, bool implicit, const char *to,
    const struct dp_buf *msg, struct dp_err *err)
{
	CURL			*c = NULL;
	CURLU			*u = NULL;
	struct curl_slist	*rcpt = NULL;
	struct mail_reader	 rd;
	struct dp_buf		 from = { 0 }, rc_to = { 0 };
	const char		*url = cfg->mail_smtp_url, *a;
	char			 ebuf[CURL_ERROR_SIZE], *upw = NULL;
	size_t			 alen;
	long			 code = 0;
	CURLcode		 cr;
	int			 rc = -1;

	if (dp_mail_config_check(cfg, err) == -1)
		goto out;
	(void)mail_addr("from", cfg->mail_from, &a, &alen, err);
	dp_buf_printf(&from, "<%.*s>", (int)alen, a);
	if (mail_addr("to", to, &a, &alen, err) == -1)
		goto out;
	dp_buf_printf(&rc_to, "<%.*s>", (int)alen, a);
	rcpt = curl_slist_append(NULL, rc_to.s);

	/* A password embedded in the URL must not reach err->msg either. */
	if ((u = curl_url()) != NULL &&
	    curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK)
		(void)curl_url_get(u, CURLUPART_PASSWORD, &upw, 0);

	if ((c = curl_easy_init()) == NULL || rcpt == NULL) {
		dp_err_set(err, ENOMEM, "smtp: cannot initialise libcurl");
		goto out;
	}
	ebuf[0] = '\0';
	rd.p = msg->s;
	rd.len = msg->len;
	rd.off = 0;
	if (curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps") !=
	    CURLE_OK) {
		dp_err_set(err, EINVAL, "smtp: libcurl without smtp support");
		goto out;
	}
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_MAIL_FROM, from.s);
	curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpt);
	curl_easy_setopt(c, CURLOPT_READFUNCTION, mail_read);
	curl_easy_setopt(c, CURLOPT_READDATA, &rd);
	curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)msg->len);
	/* STARTTLS required, or taken when the server offers it. */
	if (!implicit)
		curl_easy_setopt(c, CURLOPT_USE_SSL, cfg->mail_smtp_starttls ?
		    (long)CURLUSESSL_ALL : (long)CURLUSESSL_TRY);
	if (cfg->mail_smtp_user != NULL && *cfg->mail_smtp_user != '\0') {
		curl_easy_setopt(c, CURLOPT_USERNAME, cfg->mail_smtp_user);
		curl_easy_setopt(c, CURLOPT_PASSWORD,
		    cfg->mail_smtp_password ? cfg->mail_smtp_password : "");
	}
	if (cfg->mail_smtp_timeout > 0)
		curl_easy_setopt(c, CURLOPT_TIMEOUT,
		    cfg->mail_smtp_timeout > LONG_MAX ? LONG_MAX :
		    (long)cfg->mail_smtp_timeout);
	if (cfg->mail_smtp_insecure) {
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);

	if ((cr = curl_easy_perform(c)) != CURLE_OK) {
		(void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		dp_err_set(err, (int)cr, "smtp: %s (reply %ld)",
		    ebuf[0] != '\0' ? ebuf : curl_easy_strerror(cr), code);
		scrub(err->msg, sizeof(err->msg), cfg->mail_smtp_password);
		scrub(err->msg, sizeof(err->msg), upw);
		/*
		 * A 5xx refusal of the sender, a recipient or the message
		 * says the same next time; a refused login (530-538) is the
		 * configuration's, which an operator mends: retried.
		 */
		if (code >= 500 && code <= 599 && cr != CURLE_LOGIN_DENIED &&
		    !(code >= 530 && code <= 538))
			rc = DP_MAIL_REFUSED;
		goto out;
	}
	rc = 0;
out:
	if (c != NULL)
		curl_easy_cleanup(c);
	curl_slist_free_all(rcpt);
	if (upw != NULL) {
		explicit_bzero(upw, strlen(upw));
		curl_free(upw);
	}
	curl_url_cleanup(u);
	dp_buf_release(&from);
	dp_buf_release(&rc_to);
	return rc;
}

int
dp_mail_config_check(const struct dp_config *cfg, struct dp_err *err)
{
	const char	*t = cfg->mail_transport ? cfg->mail_transport : "";
	const char	*url = cfg->mail_smtp_url, *a, *scheme = NULL;
	size_t		 alen;

	if (mail_addr("[mail] from", cfg->mail_from, &a, &alen, err) == -1)
		return -1;
	if (strcmp(t, "smtp") == 0)
		scheme = "smtp://";
	else if (strcmp(t, "smtps") == 0)
		scheme = "smtps://";
	if (scheme != NULL && (url == NULL ||
	    strncasecmp(url, scheme, strlen(scheme)) != 0)) {
		dp_err_set(err, EINVAL, "[mail] smtp_url must start with %s "
		    "for transport %s", scheme, t);
		return -1;
	}
	return 0;
}

int
dp_mail_deliver(const struct dp_config *cfg, const char *to,
    const struct dp_buf *message, struct dp_err *err)
{
	const char	*t = cfg->mail_transport ? cfg->mail_transport : "";
	const char	*a;
	size_t		 alen;
	int		 rc = -1;

	if (strcmp(t, "none") == 0) {
		rc = 0;
		goto out;
	}
	if (mail_addr("to", to, &a, &alen, err) == -1)
		goto out;
	if (message == NULL || message->s == NULL || message->len == 0 ||
	    message->len > MAIL_MESSAGE_MAX) {
		dp_err_set(err, EINVAL, "empty or oversized message");
		goto out;
	}
	if (strcmp(t, "file") == 0)
		rc = deliver_file(cfg, message, err);
	else if (strcmp(t, "smtp") == 0)
		rc = deliver_smtp(cfg, false, to, message, err);
	else if (strcmp(t, "smtps") == 0)
		rc = deliver_smtp(cfg, true, to, message, err);
	else
		dp_err_set(err, EINVAL, "unknown mail transport \"%.32s\"", t);
out:
	return rc;
}
