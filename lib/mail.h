/* lib/mail.h: composing and delivering mail (file, smtp, smtps via libcurl) */
#ifndef DP_MAIL_H
#define DP_MAIL_H

#include "config.h"
#include "util.h"

/*
 * Compose an RFC 5322 message (Date, From, To, Subject, Message-ID,
 * MIME-Version, Content-Type text/plain; charset=utf-8, 8bit, CRLF line
 * ends, header injection impossible: CR/LF in to/subject are refused).
 * from and to are "addr@domain" or "Display Name <addr@domain>", the
 * address in printable ASCII, the name in UTF-8: written quoted when it
 * holds specials ("Acme, Inc."), as RFC 2047 encoded-words when it holds
 * non-ASCII, as a non-ASCII subject is.
 * subject and body must be valid UTF-8; the body is at most 1 MiB and
 * its lines at most 998 octets.  The message is appended to out (left
 * unchanged on error).  0 or -1 with err.
 */
int	 dp_mail_compose(struct dp_buf *out, const char *from, const char *to,
	    const char *subject, const char *body, struct dp_err *err);
/*
 * The same with the Message-ID's left part id (32 of [0-9a-f]; another
 * value or NULL: random), so that every attempt to send one message sends
 * the same Message-ID and a copy sent twice can be told.
 */
int	 dp_mail_compose_id(struct dp_buf *out, const char *from,
	    const char *to, const char *subject, const char *body,
	    const char *id, struct dp_err *err);
/*
 * Render template_dir/<name>.txt (name: 1-64 of [A-Za-z0-9_-]).  The file
 * (at most 64 KiB, no NUL bytes) holds "Subject: ..." on its first line,
 * an empty line, then the body.  Every {{key}} in subject and body is
 * replaced by the value of key in vars, NULL-terminated key, value pairs
 * (values are inserted verbatim, not re-expanded); an unknown or
 * malformed placeholder is an error.  On success *subject is a new heap
 * string the caller frees and the body is appended to body; on error
 * *subject is NULL and body is unchanged.  0 or -1 with err.
 */
int	 dp_mail_render(const char *template_dir, const char *name,
	    const char *const *vars, char **subject, struct dp_buf *body,
	    struct dp_err *err);
/*
 * The [mail] keys a delivery needs that the configuration's own checks
 * cannot judge: from must be a mailbox dp_mail_compose takes, smtp_url's
 * scheme the transport's.  The worker and devpocketctl check and doctor
 * refuse a configuration that fails it (every message would fail).  0 or
 * -1 with err.
 */
int	 dp_mail_config_check(const struct dp_config *, struct dp_err *err);
/* dp_mail_deliver: the server refused the message for good (5xx). */
#define DP_MAIL_REFUSED	(-2)
/*
 * Deliver one composed message with cfg->mail_transport:
 * "file": write <mail_file_dir>/<time>-<random>.eml atomically (tmp + rename);
 * "smtp": libcurl to mail_smtp_url (smtp://host:port), STARTTLS required
 *         when mail_smtp_starttls (CURLUSESSL_ALL), else taken when offered
 *         (CURLUSESSL_TRY), AUTH with user/password if set;
 * "smtps": implicit TLS; "none": drop it.
 * 0, DP_MAIL_REFUSED (a 5xx reply other than a refused login), or -1
 * with err (err->msg never holds the password).
 */
int	 dp_mail_deliver(const struct dp_config *cfg, const char *to,
	    const struct dp_buf *message, struct dp_err *err);

#endif
