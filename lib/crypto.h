/* lib/crypto.h: hashing, encodings, random tokens, AES-256-GCM, key files
 * (lib/crypto.c, with OpenSSL; lib/keys.c, libc only) */
#ifndef DP_CRYPTO_H
#define DP_CRYPTO_H

#include <stddef.h>
#include <stdbool.h>

#include "util.h"

/* SHA-256 of data into out[32]. */
void	 dp_sha256(const void *data, size_t len, unsigned char out[32]);
/* SHA-256 as 64 lowercase hex characters into out[65]. */
void	 dp_sha256_hex(const void *data, size_t len, char out[65]);
/* HMAC-SHA256 into out[32]. */
void	 dp_hmac_sha256(const void *key, size_t klen, const void *data,
	    size_t len, unsigned char out[32]);

/* base64url without padding; appends to out. */
void	 dp_b64url_encode(struct dp_buf *out, const void *, size_t);
/* Standard base64 with padding; appends to out. */
void	 dp_b64_encode(struct dp_buf *out, const void *, size_t);
/*
 * Decode base64 or base64url (padding optional, no whitespace unless
 * allow_ws); appends bytes to out.  0 or -1 on bad input.
 */
int	 dp_b64_decode(struct dp_buf *out, const char *, size_t, bool allow_ws);

/* A new opaque URL-safe token of 43 characters (32 random bytes) in out[44]. */
void	 dp_token_new(char out[44]);

/*
 * Read a key file: raw bytes, or if it is text, hex or base64 of the key;
 * the result must be at least 32 bytes.  Refuses group/world-writable
 * files.  0 or -1 with err.  The caller wipes and frees with dp_buf_wipe.
 */
int	 dp_keyfile_read(const char *path, struct dp_buf *key, struct dp_err *);
/* Create a key file with 32 random bytes as 64 hex chars, mode 0640, if missing. */
int	 dp_keyfile_create(const char *path, struct dp_err *);

/*
 * AES-256-GCM with a 32-byte key (the first 32 bytes of a longer key are
 * used after hashing it with SHA-256).  Sealed form: "v1:" + base64 of
 * nonce(12) || ciphertext || tag(16).  Open returns -1 on any tampering.
 */
void	 dp_seal(const void *key, size_t klen, const void *plain, size_t len,
	    struct dp_buf *out);
int	 dp_open(const void *key, size_t klen, const char *sealed,
	    struct dp_buf *plain);

#endif
