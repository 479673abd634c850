/* lib/password.h: scrypt password hashes in MCF form (libscrypt) */
#ifndef DP_PASSWORD_H
#define DP_PASSWORD_H

#include <stdbool.h>
#include <stdint.h>

/* Hash into out (MCF "$s1$..."), outlen >= 128.  0 or -1. */
int	 dp_password_hash(const char *password, uint64_t N, uint32_t r,
	    uint32_t p, char *out, size_t outlen);
/* True when password matches mcf (a copy is checked: mcf is untouched). */
bool	 dp_password_check(const char *mcf, const char *password);
/* True when mcf was made with other parameters than N, r, p (or is unparsable). */
bool	 dp_password_needs_rehash(const char *mcf, uint64_t N, uint32_t r,
	    uint32_t p);

#endif
