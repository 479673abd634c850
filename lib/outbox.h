/* lib/outbox.h: queueing templated mail for the worker */
#ifndef DP_OUTBOX_H
#define DP_OUTBOX_H

#include "db.h"

/*
 * Render templates/email/<name>.txt under [web] data_dir with the
 * NULL-terminated key/value pairs in vars and queue it as a "mail" job
 * in the caller's transaction.  0 or -1 (logged).
 */
int	 dp_outbox_queue(struct dp_db *, const char *name, const char *to,
	    const char *const *vars);

#endif
