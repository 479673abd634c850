/* lib/metrics.c: per-process counters in mmap'd files, summed by /metrics */
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "metrics.h"

#define NSLOTS		256
#define NBUCKETS	12
#define MAGIC		0x44504d32u	/* "DPM2": slots with seq */
#define READ_TRIES	1000	/* a slot caught mid-write is read again */

static const double bounds[NBUCKETS] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};

/*
 * One (route, method, status) series.  Its one writer (the process, single-
 * threaded) makes seq odd, writes, makes it even again; a reader copies the
 * slot between two equal even readings of seq (a seqlock), so that no
 * bucket is ever ahead of the count it shows.
 */
struct slot {
	uint32_t	 seq;
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
 * <runtime_dir>/metrics/.lock: taking over a file (below) holds it
 * exclusively and a render shared, so that a render never sees a file
 * under both names or under neither.  -1 when it cannot be had.
 */
static int
dir_lock(const char *dir, int how)
{
	char	 path[600];
	int	 fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/.lock", dir) >=
	    sizeof(path) || (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC,
	    0640)) < 0)
		return -1;
	while (flock(fd, how) < 0)
		if (errno != EINTR) {
			close(fd);
			return -1;
		}
	return fd;
}

/*
 * A file of this program whose process is gone, renamed to path: its
 * counts go on in the new process, so that the sums /metrics shows never
 * go down when a worker is replaced (Prometheus would read a reset, and
 * the requests it counted would be lost), and files do not pile up
 * across restarts.  0 when one was taken.
 */
static int
take_dead(const char *dir, const char *program, const char *path)
{
	char		 old[1024];
	struct dirent	*de;
	size_t		 pl = strlen(program);
	long		 pid;
	char		*end;
	DIR		*d;
	int		 rc = -1;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while (rc == -1 && (de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, program, pl) != 0 ||
		    de->d_name[pl] != '.')
			continue;
		pid = strtol(de->d_name + pl + 1, &end, 10);
		if (*end != '\0' || pid <= 0 || pid > INT32_MAX ||
		    pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		if ((size_t)snprintf(old, sizeof(old), "%s/%s", dir,
		    de->d_name) < sizeof(old) && rename(old, path) == 0)
			rc = 0;
	}
	closedir(d);
	return rc;
}

void
dp_metrics_open(const char *program)
{
	struct mfile	*m;
	char		 dir[512], path[600];
	size_t		 i;
	int		 fd, lk;
	void		*p;

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
	if ((size_t)snprintf(path, sizeof(path), "%s/%s.%d", dir, program,
	    (int)getpid()) >= sizeof(path))
		return;
	lk = dir_lock(dir, LOCK_EX);
	(void)take_dead(dir, program, path);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (lk >= 0)
		close(lk);
	if (fd < 0)
		return;
	p = MAP_FAILED;
	if (ftruncate(fd, sizeof(struct mfile)) == 0)
		p = mmap(NULL, sizeof(struct mfile), PROT_READ | PROT_WRITE,
		    MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return;
	m = p;
	if (m->magic != MAGIC || m->nslots != NSLOTS)
		memset(m, 0, sizeof(*m));	/* new, or another layout's */
	/* A writer that died mid-write left its slot odd. */
	for (i = 0; i < NSLOTS; i++)
		if (m->slots[i].seq & 1)
			__atomic_store_n(&m->slots[i].seq, m->slots[i].seq + 1,
			    __ATOMIC_RELEASE);
	m->nslots = NSLOTS;
	__atomic_store_n(&m->magic, MAGIC, __ATOMIC_RELEASE);
	mine = m;
}

/* Begin and end a write of slot s (the seqlock's writer side). */
static void
write_begin(struct slot *s)
{
	__atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
}

static void
write_end(struct slot *s)
{
	__atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
}

/*
 * A consistent copy of s in *c (the reader's side).  A slot that stays
 * mid-write (a writer that died there, or one that writes without a
 * pause) is copied as it is and made valid: no bucket above the next, none
 * above the count.
 */
static void
slot_read(const struct slot *s, struct slot *c)
{
	uint32_t	 a, b;
	int		 i, k;

	for (i = 0; i < READ_TRIES; i++) {
		if (i > 0 && i % 64 == 0)
			sched_yield();
		a = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (a & 1)
			continue;
		memcpy(c, s, sizeof(*c));
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		b = __atomic_load_n(&s->seq, __ATOMIC_RELAXED);
		if (a == b)
			return;
	}
	memcpy(c, s, sizeof(*c));
	for (k = NBUCKETS - 1; k >= 0; k--)
		if (c->buckets[k] > (k == NBUCKETS - 1 ? c->count :
		    c->buckets[k + 1]))
			c->buckets[k] = k == NBUCKETS - 1 ? c->count :
			    c->buckets[k + 1];
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
			write_begin(s);
			snprintf(s->route, sizeof(s->route), "%s", route);
			snprintf(s->method, sizeof(s->method), "%s", method);
			s->status = (uint32_t)status;
			break;
		}
		if (s->status == (uint32_t)status &&
		    strncmp(s->route, route, sizeof(s->route) - 1) == 0 &&
		    strcmp(s->method, method) == 0) {
			write_begin(s);
			break;
		}
	}
	if (i == NSLOTS)
		return;	/* table full: drop rather than corrupt */
	if (seconds < 0)
		seconds = 0;
	for (i = 0; i < NBUCKETS; i++)
		if (seconds <= bounds[i])
			s->buckets[i]++;
	s->sum += seconds;
	s->count++;
	write_end(s);
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
	int		 fd, lk;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/metrics",
	    dp_cfg.web_runtime_dir) >= sizeof(dir))
		return;
	if ((d = opendir(dir)) == NULL)
		return;
	lk = dir_lock(dir, LOCK_SH);
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
		if (__atomic_load_n(&m->magic, __ATOMIC_ACQUIRE) == MAGIC)
			f(m, arg);
		munmap(m, sizeof(*m));
	}
	if (lk >= 0)
		close(lk);
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
		struct slot	 c;
		const struct slot *s = &c;

		slot_read(&m->slots[i], &c);
		c.route[sizeof(c.route) - 1] = '\0';
		c.method[sizeof(c.method) - 1] = '\0';
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
