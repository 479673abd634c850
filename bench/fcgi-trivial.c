/* bench/fcgi-trivial.c: the smallest libfcgi responder, the benchmarks' ceiling */
#include <fcgiapp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int
main(int argc, char *argv[])
{
	static const char resp[] = "Status: 200 OK\r\n"
	    "Content-Type: application/json\r\nContent-Length: 20\r\n\r\n"
	    "{\"status\":\"healthy\"}";
	FCGX_Request	 r;
	int		 sock, i, n = argc > 2 ? atoi(argv[2]) : 2;

	if (argc < 2)
		return 2;
	FCGX_Init();
	if ((sock = FCGX_OpenSocket(argv[1], 128)) < 0)
		return 1;
	for (i = 0; i < n; i++) {
		if (fork() != 0)
			continue;
		FCGX_InitRequest(&r, sock, 0);
		while (FCGX_Accept_r(&r) >= 0) {
			FCGX_PutStr(resp, sizeof(resp) - 1, r.out);
			FCGX_Finish_r(&r);
		}
		_exit(0);
	}
	while (wait(NULL) > 0)
		;
	return 0;
}
