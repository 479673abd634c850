/* lib/log.h: one structured line per event on stderr */
#ifndef DP_LOG_H
#define DP_LOG_H

#include <stdint.h>

enum dp_log_level {
	DP_LOG_DEBUG,
	DP_LOG_INFO,
	DP_LOG_WARNING,
	DP_LOG_ERROR,
	DP_LOG__MAX
};

/* Program name, format (json or text) and threshold; call once at start. */
void	 dp_log_init(const char *program, const char *format, const char *level);
/* Current request id for every line until cleared with NULL. */
void	 dp_log_set_request(const char *request_id);
/*
 * A message line: {"time","level","program","request_id","message"}.
 * Control characters in the message are escaped.  Never pass secrets.
 */
void	 dp_log(enum dp_log_level, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* The access log line of one request. */
void	 dp_log_access(const char *method, const char *route, int status,
	    double duration_ms, const char *user_id, const char *client_ip);

#define dp_debug(...)	dp_log(DP_LOG_DEBUG, __VA_ARGS__)
#define dp_info(...)	dp_log(DP_LOG_INFO, __VA_ARGS__)
#define dp_warn(...)	dp_log(DP_LOG_WARNING, __VA_ARGS__)
#define dp_error(...)	dp_log(DP_LOG_ERROR, __VA_ARGS__)

#endif
