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
 * Weak so that a program linked without one driver's objects still links
 * (the archive pulls in only what is referenced elsewhere).
 */
extern const struct dp_driver dp_driver_local __attribute__((weak));
extern const struct dp_driver dp_driver_kubernetes __attribute__((weak));

const struct dp_driver *
dp_driver_get(const char *provider)
{
	if (provider == NULL)
		return NULL;
	if (strcmp(provider, "local") == 0 && &dp_driver_local != NULL)
		return &dp_driver_local;
	if (strcmp(provider, "kubernetes") == 0 && &dp_driver_kubernetes != NULL)
		return &dp_driver_kubernetes;
	return NULL;
}
