/* lib/driver.h: the seam between environments and where they run */
#ifndef DP_DRIVER_H
#define DP_DRIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/*
 * What a driver needs to know of an environment.  Strings are borrowed
 * from the caller for the duration of the call.
 */
struct dp_env_spec {
	const char		*id;		/* environment id (24 hex) */
	const char		*user_id;
	const char		*name;
	const char		*image;		/* docker_image */
	int			 port;
	int64_t			 cpu_millicores;
	int64_t			 memory_bytes;
	int64_t			 storage_bytes;
	/* Startup commands run in order at each start (/bin/sh -c, in
	 * $HOME/workspace); for the local driver already the template's
	 * local_startup_commands when it has them. */
	const char *const	*commands;
	size_t			 ncommands;
	/* "KEY=VALUE": the template's variables overlaid by the user's. */
	const char *const	*env;
	size_t			 nenv;
};

/* Where the environment runs: a row of clusters, kubeconfig decrypted. */
struct dp_cluster_conn {
	const char	*id;
	const char	*provider;	/* "local" | "kubernetes" */
	const char	*endpoint;	/* API server URL or NULL */
	const char	*kubeconfig;	/* YAML text, or NULL = in-cluster */
};

/* What the driver sees of the compute. */
enum dp_phase {
	DP_PHASE_ABSENT,	/* nothing there (never provisioned or destroyed) */
	DP_PHASE_STOPPED,	/* storage only */
	DP_PHASE_STARTING,	/* compute being allocated */
	DP_PHASE_RUNNING,	/* compute up (install may still be running) */
	DP_PHASE_FAILED,	/* compute lost or failed to start */
	DP_PHASE__MAX
};
extern const char *const dp_phase_names[DP_PHASE__MAX];

struct dp_sample {
	double	 cpu_usage;	/* % of the cpu limit */
	double	 memory_usage;	/* % of the memory limit */
	int64_t	 storage_usage;	/* bytes used in home */
	int64_t	 network_rx, network_tx;	/* bytes since the previous sample */
};

struct dp_probe {
	int64_t	 response_time_ms;
	int64_t	 node_count;
	double	 cpu_cores, memory_gib, storage_gib;	/* allocatable, -1 unknown */
};

/*
 * The install log protocol, common to every driver.  The driver runs the
 * startup commands and produces a log of lines; lines starting with
 * DP_MARK are markers, every other line is command output:
 *	##devpocket:begin <n>
 *	##devpocket:step <i>/<n> <command>
 *	##devpocket:warn <exit> <command>
 *	##devpocket:done <warnings>
 *	##devpocket:fail <message>
 * The worker copies the log into environment_logs and moves the status.
 */
#define DP_MARK	"##devpocket:"

/* A terminal attached to the environment's tmux session (ws/terminal). */
/* Exit status of an attach child whose connection broke (the terminal
 * is still there: not "Session ended"). */
#define DP_ATTACH_LOST	2

struct dp_attach {
	int	 fd;		/* pty master (local) or -1 */
	int	 pid;		/* child process, or -1 */
	void	*priv;		/* driver state (kubernetes exec socket) */
	bool	 existed;	/* the tmux session was already there */
	char	*pre;		/* terminal output read already (heap, the
				   caller frees), or NULL */
	size_t	 npre;
};

/*
 * Every operation is idempotent (a retried job must not fail because the
 * first attempt got half way) and returns 0 or -1 with err.  They may
 * block for a while: only the worker and ws programs call them, never a
 * request handler (except probe, which has its own 10 s timeout).
 */
struct dp_driver {
	const char	*name;
	/* Storage and compute, then run the install. */
	int	(*provision)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, struct dp_err *);
	/* Compute for existing storage, then run the install. */
	int	(*start)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, struct dp_err *);
	/* Release compute, keep storage (the tmux session ends). */
	int	(*stop)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, struct dp_err *);
	/* Release compute and storage. */
	int	(*destroy)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, struct dp_err *);
	int	(*status)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, enum dp_phase *,
		    struct dp_err *);
	int	(*metrics)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, struct dp_sample *,
		    struct dp_err *);
	/* Install log bytes from offset on, appended to out; *next = the
	 * offset after them (only whole lines are returned). */
	int	(*install_log)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, int64_t offset,
		    struct dp_buf *out, int64_t *next, struct dp_err *);
	/* Container output (source "container") likewise; may be NULL. */
	int	(*container_log)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, int64_t offset,
		    struct dp_buf *out, int64_t *next, struct dp_err *);
	int	(*attach)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, int cols, int rows,
		    struct dp_attach *, struct dp_err *);
	/* May be NULL.  Starts what attach of the same environment will
	 * need to know (local: is the session there?) so that it runs while
	 * the caller does other work (the slot); that attach, or
	 * dp_attach_probe_drop, finishes it (one pending per process).
	 * Nothing it does shows to the environment. */
	int	(*attach_probe)(const struct dp_cluster_conn *,
		    const struct dp_env_spec *, struct dp_err *);
	int	(*probe)(const struct dp_cluster_conn *, struct dp_probe *,
		    struct dp_err *);
};

/* Ends an attach_probe that no attach will finish (none: no-op). */
void	 dp_attach_probe_drop(void);
void	 dp_local_probe_drop(void);	/* the local driver's */

/* The driver of a provider name, or NULL. */
const struct dp_driver *dp_driver_get(const char *provider);

extern const struct dp_driver dp_driver_local;
extern const struct dp_driver dp_driver_kubernetes;

#endif
