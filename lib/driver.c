/* lib/driver.c: choosing the driver of a cluster */
#include <string.h>

#include "driver.h"

const char *const dp_phase_names[DP_PHASE__MAX] = {
	"absent",	/* DP_PHASE_ABSENT */
	"stopped",	/* DP_PHASE_STOPPED */
	"starting",	/* DP_PHASE_STARTING */
	"running",	/* DP_PHASE_RUNNING */
	"failed",	/* DP_PHASE_FAILED */
};

/*
 * Both drivers are referenced strongly: a program that chooses drivers
 * links both (these references pull their objects out of the archive).
 * Built with DP_DRIVER_LOCAL_ONLY (ws/terminal) the kubernetes driver is
 * not linked, nor are libcurl and libyaml: "kubernetes" gives NULL, and
 * ws/terminal hands such a socket to ws/terminal-full.
 */
const struct dp_driver *
dp_driver_get(const char *provider)
{
	if (provider == NULL)
		return NULL;
	if (strcmp(provider, "local") == 0)
		return &dp_driver_local;
#ifndef DP_DRIVER_LOCAL_ONLY
	if (strcmp(provider, "kubernetes") == 0)
		return &dp_driver_kubernetes;
#endif
	return NULL;
}

void
dp_attach_probe_drop(void)
{
	dp_local_probe_drop();
}
