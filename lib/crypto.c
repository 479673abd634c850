/* lib/crypto.c: SHA-256, HMAC and AES-256-GCM (OpenSSL); the encodings,
 * tokens and key files that need no OpenSSL are in lib/keys.c */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "crypto.h"

#define GCM_NONCE	12
#define GCM_TAG		16
#define SEAL_PREFIX	"v1:"

void
dp_sha256(const void *data, size_t len, unsigned char out[32])
{
	unsigned int	 n = 32;

	if (EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) != 1 ||
	    n != 32)
		abort();
}

void
dp_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char	 md[32];

	dp_sha256(data, len, md);
	dp_hex(out, md, sizeof(md));
}

void
dp_hmac_sha256(const void *key, size_t klen, const void *data, size_t len,
    unsigned char out[32])
{
	static const unsigned char	 empty[1];
	unsigned char			 kh[32];
	unsigned int			 n = 32;

	/*
	 * HMAC hashes keys longer than the block size itself, so doing it
	 * here for huge keys gives the same result and keeps the length
	 * within HMAC()'s int.
	 */
	if (klen > 64) {
		dp_sha256(key, klen, kh);
		key = kh;
		klen = sizeof(kh);
	}
	if (klen == 0)
		key = empty;
	if (data == NULL)
		data = empty;
	if (HMAC(EVP_sha256(), key, (int)klen, data, len, out, &n) == NULL ||
	    n != 32)
		abort();
	explicit_bzero(kh, sizeof(kh));
}


void
dp_seal(const void *key, size_t klen, const void *plain, size_t len,
    struct dp_buf *out)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	unsigned char	 k[32], *ct;
	size_t		 ctlen;
	int		 n, m;

	if (len > INT_MAX - GCM_NONCE - GCM_TAG - 16)
		abort();
	dp_sha256(key, klen, k);
	ctlen = GCM_NONCE + len + GCM_TAG;
	ct = dp_xmalloc(ctlen + 16);
	dp_random(ct, GCM_NONCE);
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		abort();
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE,
	    NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, k, ct) != 1)
		abort();
	n = 0;
	if (len > 0 && EVP_EncryptUpdate(ctx, ct + GCM_NONCE, &n, plain,
	    (int)len) != 1)
		abort();
	m = 0;
	if (EVP_EncryptFinal_ex(ctx, ct + GCM_NONCE + n, &m) != 1 ||
	    (size_t)n + (size_t)m != len)
		abort();
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG,
	    ct + GCM_NONCE + len) != 1)
		abort();
	dp_buf_adds(out, SEAL_PREFIX);
	dp_b64_encode(out, ct, ctlen);
	EVP_CIPHER_CTX_free(ctx);
	free(ct);
	explicit_bzero(k, sizeof(k));
}

int
dp_open(const void *key, size_t klen, const char *sealed,
    struct dp_buf *plain)
{
	EVP_CIPHER_CTX	*ctx = NULL;
	struct dp_buf	 raw = { 0 };
	unsigned char	 k[32], *pt = NULL;
	size_t		 slen, ptlen = 0, orig = plain->len;
	int		 n = 0, m = 0, rc = -1;

	if (sealed == NULL || !dp_startswith(sealed, SEAL_PREFIX))
		goto out;
	sealed += sizeof(SEAL_PREFIX) - 1;
	slen = strlen(sealed);
	if (slen > INT_MAX)
		goto out;
	if (dp_b64_decode(&raw, sealed, slen, false) == -1 ||
	    raw.len < GCM_NONCE + GCM_TAG)
		goto out;
	ptlen = raw.len - GCM_NONCE - GCM_TAG;
	dp_sha256(key, klen, k);
	/* Decrypt in place in plain; only a verified tag makes it count. */
	dp_buf_grow(plain, ptlen + 16);
	pt = (unsigned char *)plain->s + orig;
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL)
		abort();
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_NONCE,
	    NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, k,
	    (unsigned char *)raw.s) != 1)
		goto out;
	if (ptlen > 0 && EVP_DecryptUpdate(ctx, pt, &n,
	    (unsigned char *)raw.s + GCM_NONCE, (int)ptlen) != 1)
		goto out;
	if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG,
	    raw.s + GCM_NONCE + ptlen) != 1)
		goto out;
	if (EVP_DecryptFinal_ex(ctx, pt + n, &m) != 1 ||
	    (size_t)n + (size_t)m != ptlen)
		goto out;
	plain->len = orig + ptlen;
	plain->s[plain->len] = '\0';
	rc = 0;
 out:
	if (rc != 0 && pt != NULL) {
		explicit_bzero(pt, ptlen + 16);
		plain->s[orig] = '\0';
	}
	EVP_CIPHER_CTX_free(ctx);
	dp_buf_wipe(&raw);
	explicit_bzero(k, sizeof(k));
	return rc;
}
