/* lib/mail.h: composing and delivering mail (file, smtp, smtps via libcurl) */
#ifndef DP_MAIL_H
#define DP_MAIL_H

#include "config.h"
#include "util.h"

/*
 * Compose an RFC 5322 message (Date, From, To, Subject, Message-ID,
 * MIME-Version, Content-Type text/plain; charset=utf-8, 8bit, CRLF line
 * ends, header injection impossible: CR/LF in to/subject are refused).
 * 0 or -1 with err.
 */
int	 dp_mail_compose(struct dp_buf *out, const char *from, const char *to,
	    const char *subject, const char *body, struct dp_err *err);
/*
 * Deliver one composed message with cfg->mail_transport:
 * "file": write <mail_file_dir>/<time>-<random>.eml atomically (tmp + rename);
 * "smtp": libcurl to mail_smtp_url (smtp://host:port), STARTTLS when
 *         mail_smtp_starttls (CURLUSESSL_ALL), AUTH with user/password if set;
 * "smtps": implicit TLS; "none": drop it.
 * 0 or -1 with err (err->msg never holds the password).
 */
int	 dp_mail_deliver(const struct dp_config *cfg, const char *to,
	    const struct dp_buf *message, struct dp_err *err);

#endif
