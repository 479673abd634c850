/*
 * bench/fcgi-trivial.c: the smallest libfcgi responder, the benchmarks'
 * ceiling.  With a third argument (a libpq connection string) each worker
 * first runs one prepared one-row SELECT with a parameter per request: the
 * floor of any request that must ask PostgreSQL once, as every
 * authenticated route does.  With FCGI_TRIVIAL_EARLY_CLOSE=1 in the
 * environment it closes each connection as lib/http.c does once the input
 * is read to its end (FCGX_Detach), instead of libfcgi's lingering close.
 *
 *   fcgi-trivial SOCKET [WORKERS [CONNINFO]]
 */
#include <fcgiapp.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int
pg_round_trip(PGconn *pg)
{
	const char	*p[1] = { "x" };
	PGresult	*r;
	int		 ok;

	r = PQexecPrepared(pg, "q", 1, p, NULL, NULL, 0);
	ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
	PQclear(r);
	return ok ? 0 : -1;
}

int
main(int argc, char *argv[])
{
	static const char resp[] = "Status: 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: 20\r\n\r\n"
	    "{\"status\":\"healthy\"}";
	static const char fail[] = "Status: 503 Service Unavailable\r\n"
	    "Content-Length: 0\r\n\r\n";
	FCGX_Request	 r;
	PGconn		*pg = NULL;
	PGresult	*pr;
	const char	*ec = getenv("FCGI_TRIVIAL_EARLY_CLOSE");
	int		 sock, i, n = argc > 2 ? atoi(argv[2]) : 2;
	int		 early = ec != NULL && strcmp(ec, "1") == 0;

	if (argc < 2)
		return 2;
	FCGX_Init();
	if ((sock = FCGX_OpenSocket(argv[1], 128)) < 0)
		return 1;
	for (i = 0; i < n; i++) {
		if (fork() != 0)
			continue;
		if (argc > 3) {
			pg = PQconnectdb(argv[3]);
			if (PQstatus(pg) != CONNECTION_OK) {
				fprintf(stderr, "fcgi-trivial: %s",
				    PQerrorMessage(pg));
				_exit(1);
			}
			pr = PQprepare(pg, "q", "SELECT $1::text", 1, NULL);
			PQclear(pr);
		}
		FCGX_InitRequest(&r, sock, 0);
		while (FCGX_Accept_r(&r) >= 0) {
			if (pg != NULL && pg_round_trip(pg) < 0)
				FCGX_PutStr(fail, sizeof(fail) - 1, r.out);
			else
				FCGX_PutStr(resp, sizeof(resp) - 1, r.out);
			if (early && FCGX_GetChar(r.in) == EOF &&
			    FCGX_HasSeenEOF(r.in))
				(void)FCGX_Detach(&r);
			FCGX_Finish_r(&r);
		}
		_exit(0);
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
