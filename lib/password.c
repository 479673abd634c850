/* lib/password.c: scrypt password hashes in MCF form (libscrypt) */
#include <stdlib.h>
#include <string.h>

#include <libscrypt.h>

#include "password.h"
#include "util.h"

/*
 * libscrypt's MCF: "$s1$" PPPPPP "$" salt "$" hash, where PPPPPP is
 * "%06x" of (log2(N) << 16 | r << 8 | p), salt and hash standard
 * base64 (the hash always 64 bytes, 88 characters).
 */
#define MCF_PREFIX	"$s1$"
#define MCF_HASH_B64	88
/*
 * scrypt needs 128 * r * N bytes.  Parameters beyond this are refused
 * both when hashing and when checking, so a corrupt or hostile hash in
 * the database cannot make a worker allocate without bound.
 */
#define MEM_MAX		((uint64_t)1 << 30)

struct mcf_params {
	unsigned int	 logn;
	unsigned int	 r;
	unsigned int	 p;
};

static bool
params_ok(unsigned int logn, unsigned int r, unsigned int p)
{
	if (logn < 1 || logn > 30 || r < 1 || r > 255 || p < 1 || p > 255)
		return false;
	return ((uint64_t)128 * r << logn) <= MEM_MAX;
}

/* log2 of N if N is a power of two >= 2, else 0. */
static unsigned int
log2_exact(uint64_t n)
{
	unsigned int	 l = 0;

	if (n < 2 || (n & (n - 1)) != 0)
		return 0;
	while (n > 1) {
		n >>= 1;
		l++;
	}
	return l;
}

static bool
is_b64c(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '+' || c == '/';
}

/* Length of a base64 run (digits then up to two '=') at s. */
static size_t
b64_run(const char *s)
{
	size_t	 n = 0, pad = 0;

	while (is_b64c(s[n]))
		n++;
	while (s[n + pad] == '=' && pad < 2)
		pad++;
	return n + pad;
}

static int
hexdig(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parse and validate the whole MCF string; 0 or -1. */
static int
mcf_parse(const char *mcf, struct mcf_params *mp)
{
	const char	*s;
	unsigned long	 v = 0;
	size_t		 n;
	int		 i, d, rc = -1;

	if (mcf == NULL || strnlen(mcf, SCRYPT_MCF_LEN) >= SCRYPT_MCF_LEN)
		goto out;
	if (strncmp(mcf, MCF_PREFIX, sizeof(MCF_PREFIX) - 1) != 0)
		goto out;
	s = mcf + sizeof(MCF_PREFIX) - 1;
	for (i = 0; i < 6; i++) {
		if ((d = hexdig(s[i])) < 0)
			goto out;
		v = v << 4 | (unsigned long)d;
	}
	s += 6;
	if (*s++ != '$')
		goto out;
	if ((n = b64_run(s)) == 0 || s[n] != '$')
		goto out;
	s += n + 1;
	if ((n = b64_run(s)) != MCF_HASH_B64 || s[n] != '\0')
		goto out;
	mp->logn = (unsigned int)(v >> 16);
	mp->r = (unsigned int)(v >> 8 & 0xff);
	mp->p = (unsigned int)(v & 0xff);
	if (!params_ok(mp->logn, mp->r, mp->p))
		goto out;
	rc = 0;
 out:
	return rc;
}

int
dp_password_hash(const char *password, uint64_t N, uint32_t r, uint32_t p,
    char *out, size_t outlen)
{
	char		 mcf[SCRYPT_MCF_LEN];
	struct mcf_params mp;
	unsigned int	 logn;
	size_t		 len;
	int		 rc = -1;

	memset(mcf, 0, sizeof(mcf));
	if (password == NULL || out == NULL || outlen == 0)
		goto out;
	out[0] = '\0';
	logn = log2_exact(N);
	if (logn == 0 || r > 255 || p > 255 || !params_ok(logn, r, p))
		goto out;
	if (libscrypt_hash(mcf, password, (uint32_t)N, (uint8_t)r,
	    (uint8_t)p) <= 0)
		goto out;
	mcf[sizeof(mcf) - 1] = '\0';
	/* Never hand out something the checker would not accept. */
	if (mcf_parse(mcf, &mp) == -1 || mp.logn != logn || mp.r != r ||
	    mp.p != p)
		goto out;
	len = strlen(mcf);
	if (len >= outlen)
		goto out;
	memcpy(out, mcf, len + 1);
	rc = 0;
 out:
	explicit_bzero(mcf, sizeof(mcf));
	return rc;
}

bool
dp_password_check(const char *mcf, const char *password)
{
	char			 copy[SCRYPT_MCF_LEN];
	struct mcf_params	 mp;
	bool			 ok = false;

	memset(copy, 0, sizeof(copy));
	if (password == NULL || mcf_parse(mcf, &mp) == -1)
		goto out;
	/* libscrypt_check tokenises its argument in place: give it a copy. */
	memcpy(copy, mcf, strlen(mcf) + 1);
	ok = libscrypt_check(copy, password) > 0;
 out:
	explicit_bzero(copy, sizeof(copy));
	return ok;
}

bool
dp_password_needs_rehash(const char *mcf, uint64_t N, uint32_t r, uint32_t p)
{
	struct mcf_params	 mp;
	bool			 stale = true;

	if (mcf_parse(mcf, &mp) == 0)
		stale = mp.logn != log2_exact(N) || mp.r != r || mp.p != p;
	return stale;
}
