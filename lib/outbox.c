/* lib/outbox.c: queueing templated mail for the worker */
#include <stdio.h>
#include <stdlib.h>

#include "config.h"
#include "jobs.h"
#include "log.h"
#include "mail.h"
#include "outbox.h"

int
dp_outbox_queue(struct dp_db *db, const char *name, const char *to,
    const char *const *vars)
{
	struct dp_buf		 body = { 0 }, dir = { 0 };
	struct dp_err		 err = { 0 };
	char			*subject = NULL;
	int			 rc = -1;

	dp_buf_printf(&dir, "%s/templates/email", dp_cfg.web_data_dir);
	if (dp_mail_render(dir.s, name, vars, &subject, &body, &err) < 0) {
		dp_error("mail template %s: %s", name, err.msg);
		goto out;
	}
	rc = dp_job_enqueue_mail(db, to, subject, body.s ? body.s : "");
out:
	free(subject);
	dp_buf_wipe(&body);
	dp_buf_release(&dir);
	return rc;
}
