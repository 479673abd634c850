/* lib/driver_local.h: the local driver's folder layout and test hooks */
#ifndef DP_DRIVER_LOCAL_H
#define DP_DRIVER_LOCAL_H

#include <stdbool.h>

#include "driver.h"

/*
 * An environment of the local driver is the folder
 * <[drivers] local_root>/<id>/, owned by root (by the worker's user when
 * the worker does not run as root) and not writable by the environment
 * user, so that nothing the environment does can redirect a file the
 * driver writes:
 *	home/		the environment user's $HOME (mode 0700), with workspace/
 *	run/		owned by the environment user: tmux.sock (the private
 *			tmux server; it lives here because the server, run as
 *			the environment user, must be able to create it)
 *	install.log	the install log of the current start (owned by the
 *			environment user, who appends to it)
 *	install.sh, steps/<i>.sh, steps/<i>.line, tmux.conf
 *			written by the driver at each start
 *	state		"running" or "stopped": what the driver last did
 *	server.pid	"<pid> <starttime>" of the sandbox (or tmux server),
 *			recorded only when it is the environment user's and in
 *			its cgroup
 *	limits		"<as> <fsize> <nproc> <cgroup 0|1> <sandbox 0|1>":
 *			the rlimits, cgroup and sandbox of the launch, which
 *			every tmux client gets too
 *	metrics.state	"<time> <cpu usec>" of the previous metrics call
 *	launch.log	stderr of the last server launch
 * The tmux session is devpocket_<id>.  The server keeps running when its
 * last session ends (exit-empty off): the environment stays RUNNING and
 * the next attach creates a new session.  Status is ABSENT without the
 * folder, RUNNING while the recorded process lives and the socket takes
 * connections (no tmux client is started to ask), FAILED when the state
 * file says running but that is not so (crash, kill, OOM), else STOPPED.
 * No client starts for an environment whose recorded sandbox is gone.
 */
#define DP_LOCAL_SESSION_PREFIX	"devpocket_"

/*
 * The folder of an environment id into out (size n); 0, or -1 when the id
 * is not an id or the path does not fit.  For tests and devpocketctl.
 */
int	 dp_local_env_dir(const char *id, char *out, size_t n);

/*
 * Whether bubblewrap works here for the environment user (cached per
 * process after the first call; false when bwrap is not installed).
 */
bool	 dp_local_bwrap_works(void);

#endif
