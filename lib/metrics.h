/* lib/metrics.h: per-process counters in mmap'd files, summed by /metrics */
#ifndef DP_METRICS_H
#define DP_METRICS_H

#include "util.h"

/*
 * Open (create) this process's counter file
 * <runtime_dir>/metrics/<program>.<pid>; without it observations are
 * dropped.  Call in each worker after fork.
 */
void	 dp_metrics_open(const char *program);
/* Count one request and its duration. */
void	 dp_metrics_observe(const char *route, const char *method, int status,
	    double seconds);
/* Count one database failure (summed over processes by /metrics). */
void	 dp_metrics_db_error(void);
unsigned long long dp_metrics_db_errors(void);
/* Append the HTTP metrics of every process file as Prometheus text. */
void	 dp_metrics_render_http(struct dp_buf *out);

#endif
