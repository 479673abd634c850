/* lib/metrics.c: per-process counters in mmap'd files, summed by /metrics */
#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"

#define NSLOTS		256
#define NBUCKETS	12
#define MAGIC		0x44504d31u	/* "DPM1" */

static const double bounds[NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};

/* One (route, method, status) series.  Writers are single-threaded. */
struct slot {
	char		 route[64];
	char		 method[8];
	uint32_t	 status;
	uint64_t	 count;
	double		 sum;
	uint64_t	 buckets[NBUCKETS];	/* cumulative by bound */
};

struct mfile {
	uint32_t	 magic;
	uint32_t	 nslots;
	uint64_t	 db_errors;
	struct slot	 slots[NSLOTS];
};

static struct mfile	*mine;

/*
 * Files of processes that are gone would pile up in the runtime
 * directory across restarts: remove them (their counts restart, which
 * Prometheus reads as a counter reset).
 */
static void
remove_dead(const char *dir, const char *program)
{
	char		 path[1024];
	struct dirent	*de;
	size_t		 pl = strlen(program);
	long		 pid;
	char		*end;
	DIR		*d;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, program, pl) != 0 ||
		    de->d_name[pl] != '.')
			continue;
		pid = strtol(de->d_name + pl + 1, &end, 10);
		if (*end != '\0' || pid <= 0 || pid > INT32_MAX)
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		    de->d_name) < sizeof(path))
			unlink(path);
	}
	closedir(d);
}

void
dp_metrics_open(const char *program)
{
	char	 dir[512], path[600];
	int	 fd;
	void	*p;

	if (mine != NULL) {
		munmap(mine, sizeof(*mine));
		mine = NULL;
	}
	if (dp_cfg.web_runtime_dir == NULL)
		return;
	if ((size_t)snprintf(dir, sizeof(dir), "%s/metrics",
	    dp_cfg.web_runtime_dir) >= sizeof(dir))
		return;
	mkdir(dir, 0750);
	remove_dead(dir, program);
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.%d", dir, program,
	    (int)getpid()) >= sizeof(path))
		return;
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0)
		return;
	if (ftruncate(fd, sizeof(struct mfile)) == 0) {
		p = mmap(NULL, sizeof(struct mfile), PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
		if (p != MAP_FAILED) {
			mine = p;
			mine->magic = MAGIC;
			mine->nslots = NSLOTS;
		}
	}
	close(fd);
}

void
dp_metrics_observe(const char *route, const char *method, int status,
    double seconds)
{
	struct slot	*s;
	size_t		 i;

	if (mine == NULL || route == NULL || method == NULL)
		return;
	for (i = 0; i < NSLOTS; i++) {
		s = &mine->slots[i];
		if (s->count == 0 && s->route[0] == '\0') {
			snprintf(s->route, sizeof(s->route), "%s", route);
			snprintf(s->method, sizeof(s->method), "%s", method);
			s->status = (uint32_t)status;
			break;
		}
		if (s->status == (uint32_t)status &&
		    strncmp(s->route, route, sizeof(s->route) - 1) == 0 &&
		    strcmp(s->method, method) == 0)
			break;
	}
	if (i == NSLOTS)
		return;	/* table full: drop rather than corrupt */
	for (i = 0; i < NBUCKETS; i++)
		if (seconds <= bounds[i])
			s->buckets[i]++;
	s->sum += seconds;
	s->count++;
}

void
dp_metrics_db_error(void)
{
	if (mine != NULL)
		mine->db_errors++;
}

/* Call f on every mapped process file. */
static void
each_file(void (*f)(const struct mfile *, void *), void *arg)
{
	char		 dir[512], path[1024];
	struct dirent	*de;
	struct mfile	*m;
	struct stat	 st;
	DIR		*d;
	int		 fd;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/metrics",
	    dp_cfg.web_runtime_dir) >= sizeof(dir))
		return;
	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
		    de->d_name) >= sizeof(path))
			continue;
		if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			continue;
		if (fstat(fd, &st) < 0 || (size_t)st.st_size < sizeof(*m)) {
			close(fd);
			continue;
		}
		m = mmap(NULL, sizeof(*m), PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (m == MAP_FAILED)
			continue;
		if (m->magic == MAGIC)
			f(m, arg);
		munmap(m, sizeof(*m));
	}
	closedir(d);
}

static void
add_db_errors(const struct mfile *m, void *arg)
{
	*(unsigned long long *)arg += m->db_errors;
}

unsigned long long
dp_metrics_db_errors(void)
{
	unsigned long long	 n = 0;

	each_file(add_db_errors, &n);
	return n;
}

/* Aggregated series while rendering. */
struct agg {
	struct slot	 s;
	struct agg	*next;
};

static struct agg *
agg_find(struct agg **head, const struct slot *s, bool by_status)
{
	struct agg	*a;

	for (a = *head; a != NULL; a = a->next)
		if (strcmp(a->s.route, s->route) == 0 && (!by_status ||
		    (a->s.status == s->status &&
		    strcmp(a->s.method, s->method) == 0)))
			return a;
	a = dp_xcalloc(1, sizeof(*a));
	memcpy(a->s.route, s->route, sizeof(a->s.route));
	a->s.route[sizeof(a->s.route) - 1] = '\0';
	memcpy(a->s.method, s->method, sizeof(a->s.method));
	a->s.method[sizeof(a->s.method) - 1] = '\0';
	a->s.status = s->status;
	a->next = *head;
	*head = a;
	return a;
}

static void
label(struct dp_buf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			dp_buf_addc(out, '\\');
		if (*v == '\n')
			dp_buf_adds(out, "\\n");
		else
			dp_buf_addc(out, *v);
	}
}

struct aggs {
	struct agg	*req, *dur;
};

static void
add_series(const struct mfile *m, void *arg)
{
	struct aggs	*g = arg;
	struct agg	*a;
	size_t		 i, k;

	for (i = 0; i < NSLOTS; i++) {
		const struct slot *s = &m->slots[i];

		if (s->count == 0)
			continue;
		a = agg_find(&g->req, s, true);
		a->s.count += s->count;
		a = agg_find(&g->dur, s, false);
		a->s.count += s->count;
		a->s.sum += s->sum;
		for (k = 0; k < NBUCKETS; k++)
			a->s.buckets[k] += s->buckets[k];
	}
}

static void
agg_free(struct agg *a)
{
	struct agg	*next;

	for (; a != NULL; a = next) {
		next = a->next;
		free(a);
	}
}

void
dp_metrics_render_http(struct dp_buf *out)
{
	struct aggs	 g = { NULL, NULL };
	struct agg	*a;
	size_t		 k;

	each_file(add_series, &g);
	dp_buf_adds(out, "# HELP devpocket_http_requests_total HTTP requests "
	    "by route, method and status.\n"
	    "# TYPE devpocket_http_requests_total counter\n");
	for (a = g.req; a != NULL; a = a->next) {
		dp_buf_adds(out, "devpocket_http_requests_total{route=\"");
		label(out, a->s.route);
		dp_buf_printf(out, "\",method=\"%s\",status=\"%u\"} %llu\n",
		    a->s.method, a->s.status, (unsigned long long)a->s.count);
	}
	dp_buf_adds(out, "# HELP devpocket_http_request_duration_seconds "
	    "HTTP request latency by route.\n"
	    "# TYPE devpocket_http_request_duration_seconds histogram\n");
	for (a = g.dur; a != NULL; a = a->next) {
		for (k = 0; k < NBUCKETS; k++) {
			dp_buf_adds(out, "devpocket_http_request_duration_"
			    "seconds_bucket{route=\"");
			label(out, a->s.route);
			dp_buf_printf(out, "\",le=\"%g\"} %llu\n", bounds[k],
			    (unsigned long long)a->s.buckets[k]);
		}
		dp_buf_adds(out, "devpocket_http_request_duration_seconds_"
		    "bucket{route=\"");
		label(out, a->s.route);
		dp_buf_printf(out, "\",le=\"+Inf\"} %llu\n",
		    (unsigned long long)a->s.count);
		dp_buf_adds(out, "devpocket_http_request_duration_seconds_sum"
		    "{route=\"");
		label(out, a->s.route);
		dp_buf_printf(out, "\"} %.6f\n", a->s.sum);
		dp_buf_adds(out, "devpocket_http_request_duration_seconds_"
		    "count{route=\"");
		label(out, a->s.route);
		dp_buf_printf(out, "\"} %llu\n",
		    (unsigned long long)a->s.count);
	}
	agg_free(g.req);
	agg_free(g.dur);
}
