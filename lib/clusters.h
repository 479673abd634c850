/* lib/clusters.h: cluster rows as JSON, their decrypted connections, probes */
#ifndef DP_CLUSTERS_H
#define DP_CLUSTERS_H

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>
#include <libpq-fe.h>

#include "db.h"
#include "driver.h"
#include "util.h"

/*
 * Columns of a Cluster object (CONTRACT §1.5), in the order
 * dp_cluster_json reads them, for a query over "clusters c".  The last
 * column is the JSON array of the resources of the cluster's
 * non-terminated environments.
 */
#define DP_CLUSTER_COLS \
	"c.id, c.name, c.description, c.region, c.provider, c.endpoint, " \
	"c.is_default, c.max_environments, c.status, c.health_status, " \
	"c.last_health_check, c.capacity, c.kube_config_sealed IS NOT NULL, " \
	"c.created_at, c.updated_at, " \
	"(SELECT coalesce(json_agg(e.resources), '[]'::json) " \
	"FROM environments e WHERE e.cluster_id = c.id " \
	"AND e.status <> 'terminated')"
#define DP_CLUSTER_NCOLS	16

/*
 * The transaction-scoped lock of every cluster write and of every
 * environment creation: name checks, the single default, DELETE's in-use
 * check and the max_environments count cannot race each other.
 */
#define DP_CLUSTERS_LOCK_SQL \
	"SELECT pg_advisory_xact_lock(hashtext('devpocket:clusters'))"

/* How long a health probe may take before it counts as failed. */
#define DP_CLUSTER_PROBE_MS	10000

/*
 * The Cluster object of row r of a result whose columns are
 * DP_CLUSTER_COLS from column 0.  The caller owns the object.
 */
struct json_object *dp_cluster_json(const PGresult *, int r);
/* The Cluster object by id; NULL when missing or on database failure. */
struct json_object *dp_cluster_json_by_id(struct dp_db *, const char *id);

/*
 * Seal a kubeconfig for clusters.kube_config_sealed with the key of
 * [auth] secret_key_file (AES-256-GCM, "v1:…"); appends to sealed.
 * 0 or -1 with err (unreadable key file).
 */
int	 dp_cluster_seal(const char *plain, size_t len, struct dp_buf *sealed,
	    struct dp_err *);

/*
 * Load the connection of cluster cluster_id for a driver: id, provider
 * and endpoint are heap copies owned by *out; the kubeconfig is opened
 * with the key of [auth] secret_key_file into *kubeconfig_plain (heap,
 * NUL-terminated YAML, or NULL when none is stored = in-cluster service
 * account) and out->kubeconfig points at the same string.  Release both
 * with dp_cluster_conn_release, which wipes the kubeconfig.  Returns 0,
 * or -1 with err: code ENOENT when there is no such cluster, EIO on
 * database failure (already logged by db.c), EACCES when the key file
 * cannot be read or the sealed text does not open.  On -1 nothing needs
 * releasing.
 */
int	 dp_cluster_conn_load(struct dp_db *, const char *cluster_id,
	    struct dp_cluster_conn *out, char **kubeconfig_plain,
	    struct dp_err *);
/* Free what dp_cluster_conn_load filled (NULLs are fine) and zero *cc. */
void	 dp_cluster_conn_release(struct dp_cluster_conn *cc,
	    char *kubeconfig_plain);

/*
 * Probe cluster id now through its driver's probe (dp_driver_get of its
 * provider), bounded by timeout_ms: the probe runs in a child process
 * that is killed when the time is up.  Records health_status,
 * last_health_check and, when healthy, node_count and capacity, and
 * returns the ClusterHealth object of CONTRACT §1.5 (owned by the
 * caller; status "unhealthy" with the reason in message/error_message
 * when the driver is missing, has no probe, fails or times out).  NULL
 * with *found false when there is no such cluster, NULL with *found true
 * on database failure.
 */
struct json_object *dp_cluster_health(struct dp_db *, const char *id,
	    int timeout_ms, bool *found);

/*
 * Create the cluster named "local" (provider local, region region or
 * "us-east" when NULL, status active, default when no other cluster is
 * the default) unless a cluster of that name exists, whatever its case.
 * For `make run`, the tests and `devpocketctl clusters ensure-local`.
 * Returns 1 when it created it, 0 when it existed, -1 on database
 * failure (logged).  Runs in the caller's transaction if one is open.
 */
int	 dp_clusters_ensure_local(struct dp_db *, const char *region);

#endif
