/* lib/keys.c: base64, random tokens and key files (libc only: ws/terminal
 * links it without OpenSSL; lib/crypto.c has the OpenSSL half) */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"

/* A key file is a few dozen bytes; anything this large is a mistake. */
#define KEYFILE_MAX	(64 * 1024)
#define KEY_MIN		32

static const char b64std[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void
b64_encode(struct dp_buf *out, const void *in, size_t len, const char *alpha,
    bool pad)
{
	const unsigned char	*p = in;
	char			 q[4];
	size_t			 i;
	uint32_t		 v;

	dp_buf_grow(out, (len / 3 + 1) * 4);
	out->s[out->len] = '\0';
	for (i = 0; i + 3 <= len; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		q[0] = alpha[v >> 18 & 63];
		q[1] = alpha[v >> 12 & 63];
		q[2] = alpha[v >> 6 & 63];
		q[3] = alpha[v & 63];
		dp_buf_add(out, q, 4);
	}
	if (len - i == 1) {
		v = (uint32_t)p[i] << 16;
		q[0] = alpha[v >> 18 & 63];
		q[1] = alpha[v >> 12 & 63];
		dp_buf_add(out, q, 2);
		if (pad)
			dp_buf_add(out, "==", 2);
	} else if (len - i == 2) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		q[0] = alpha[v >> 18 & 63];
		q[1] = alpha[v >> 12 & 63];
		q[2] = alpha[v >> 6 & 63];
		dp_buf_add(out, q, 3);
		if (pad)
			dp_buf_addc(out, '=');
	}
}

void
dp_b64url_encode(struct dp_buf *out, const void *in, size_t len)
{
	b64_encode(out, in, len, b64url, false);
}

void
dp_b64_encode(struct dp_buf *out, const void *in, size_t len)
{
	b64_encode(out, in, len, b64std, true);
}

/*
 * Value of a base64 digit, -1 if c is not one.  *alpha remembers the
 * alphabet seen so far (0 none yet, 1 standard, 2 URL-safe).
 */
static int
b64_val(unsigned char c, int *alpha)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+' || c == '/') {
		if (*alpha == 2)
			return -1;
		*alpha = 1;
		return c == '+' ? 62 : 63;
	}
	if (c == '-' || c == '_') {
		if (*alpha == 1)
			return -1;
		*alpha = 2;
		return c == '-' ? 62 : 63;
	}
	return -1;
}

static bool
is_b64_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/*
 * Strict decoder: one alphabet (standard or URL-safe, not mixed),
 * padding either absent or complete and only at the end, no leftover
 * bits set (RFC 4648 3.5), so every byte string has exactly one
 * accepted encoding besides the padding choice.
 */
int
dp_b64_decode(struct dp_buf *out, const char *in, size_t len, bool allow_ws)
{
	const unsigned char	*p = (const unsigned char *)in;
	size_t			 orig = out->len, i, ndig = 0, npad = 0;
	uint32_t		 acc = 0;
	int			 alpha = 0, v, rc = -1;
	unsigned char		 b[3];

	dp_buf_grow(out, len / 4 * 3 + 3);
	out->s[out->len] = '\0';
	for (i = 0; i < len; i++) {
		if (allow_ws && is_b64_ws(p[i]))
			continue;
		if (p[i] == '=') {
			npad++;
			continue;
		}
		if (npad > 0)
			goto out;	/* data after padding */
		if ((v = b64_val(p[i], &alpha)) < 0)
			goto out;
		acc = acc << 6 | (uint32_t)v;
		if (++ndig % 4 == 0) {
			b[0] = acc >> 16 & 0xff;
			b[1] = acc >> 8 & 0xff;
			b[2] = acc & 0xff;
			dp_buf_add(out, b, 3);
			acc = 0;
		}
	}
	switch (ndig % 4) {
	case 0:
		if (npad != 0)
			goto out;
		break;
	case 1:
		goto out;
	case 2:
		if ((npad != 0 && npad != 2) || (acc & 0x0f) != 0)
			goto out;
		b[0] = acc >> 4 & 0xff;
		dp_buf_add(out, b, 1);
		break;
	case 3:
		if ((npad != 0 && npad != 1) || (acc & 0x03) != 0)
			goto out;
		b[0] = acc >> 10 & 0xff;
		b[1] = acc >> 2 & 0xff;
		dp_buf_add(out, b, 2);
		break;
	}
	rc = 0;
 out:
	if (rc != 0) {
		/* Leave out as it was; the partial output may be secret. */
		if (out->s != NULL) {
			explicit_bzero(out->s + orig, out->len - orig);
			out->len = orig;
			out->s[orig] = '\0';
		}
	}
	explicit_bzero(b, sizeof(b));
	return rc;
}

void
dp_token_new(char out[44])
{
	unsigned char	 r[32];
	struct dp_buf	 b = { 0 };

	dp_random(r, sizeof(r));
	dp_b64url_encode(&b, r, sizeof(r));
	if (b.len != 43)
		abort();
	memcpy(out, b.s, 44);
	explicit_bzero(r, sizeof(r));
	dp_buf_wipe(&b);
}

/*
 * Turn the contents of a key file into key bytes in dec (preallocated,
 * so no realloc leaves copies behind).  Text that is all hex must be
 * at least 64 hex digits: a short hex key is refused rather than taken
 * as raw bytes.  Then base64 of at least 32 bytes; else the raw bytes
 * of the file, untouched.
 */
static int
keyfile_parse(const unsigned char *raw, size_t rlen, struct dp_buf *dec,
    struct dp_err *err, const char *path)
{
	size_t	 tlen = rlen, i;
	bool	 allhex = true;
	int	 rc = -1;

	if (tlen > 0 && raw[tlen - 1] == '\n')
		tlen--;
	if (tlen > 0 && raw[tlen - 1] == '\r')
		tlen--;
	for (i = 0; i < tlen; i++)
		if (dp_hexval(raw[i]) < 0) {
			allhex = false;
			break;
		}
	if (tlen == 0) {
		dp_err_set(err, EINVAL, "%s: key file is empty", path);
		goto out;
	}
	if (allhex) {
		if (tlen % 2 != 0 || tlen < 2 * KEY_MIN) {
			dp_err_set(err, EINVAL, "%s: hex key must be an even "
			    "number of at least %d digits", path, 2 * KEY_MIN);
			goto out;
		}
		/* (dec has room: no copy of the key is left behind.) */
		(void)dp_buf_add_unhex(dec, (const char *)raw, tlen);
		rc = 0;
		goto out;
	}
	if (dp_b64_decode(dec, (const char *)raw, tlen, false) == 0 &&
	    dec->len >= KEY_MIN) {
		rc = 0;
		goto out;
	}
	explicit_bzero(dec->s, dec->cap);
	dec->len = 0;
	if (rlen < KEY_MIN) {
		dp_err_set(err, EINVAL, "%s: key is shorter than %d bytes",
		    path, KEY_MIN);
		goto out;
	}
	memcpy(dec->s, raw, rlen);
	dec->len = rlen;
	dec->s[rlen] = '\0';
	rc = 0;
 out:
	return rc;
}

int
dp_keyfile_read(const char *path, struct dp_buf *key, struct dp_err *err)
{
	struct stat	 st;
	struct dp_buf	 dec = { 0 };
	unsigned char	*raw = NULL;
	size_t		 rlen = 0;
	ssize_t		 n;
	int		 fd = -1, rc = -1;

	/* Symlinks are followed; the mode of the file itself is checked. */
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1) {
		dp_err_set(err, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (fstat(fd, &st) == -1) {
		dp_err_set(err, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		dp_err_set(err, EINVAL, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		dp_err_set(err, EPERM, "%s: key file is group or world "
		    "writable (mode %04o)", path,
		    (unsigned int)(st.st_mode & 07777));
		goto out;
	}
	raw = dp_xmalloc(KEYFILE_MAX + 1);
	while (rlen <= KEYFILE_MAX) {
		n = read(fd, raw + rlen, KEYFILE_MAX + 1 - rlen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			dp_err_set(err, errno, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (n == 0)
			break;
		rlen += (size_t)n;
	}
	if (rlen > KEYFILE_MAX) {
		dp_err_set(err, EFBIG, "%s: key file is larger than %d bytes",
		    path, KEYFILE_MAX);
		goto out;
	}
	if (rlen == 0) {
		dp_err_set(err, EINVAL, "%s: key file is empty", path);
		goto out;
	}
	dp_buf_grow(&dec, rlen + 3);
	if (keyfile_parse(raw, rlen, &dec, err, path) == -1)
		goto out;
	/* Grow once so that appending does not realloc over the secret. */
	dp_buf_grow(key, dec.len);
	dp_buf_add(key, dec.s, dec.len);
	rc = 0;
 out:
	if (raw != NULL) {
		explicit_bzero(raw, KEYFILE_MAX + 1);
		free(raw);
	}
	dp_buf_wipe(&dec);
	if (fd != -1)
		close(fd);
	return rc;
}

int
dp_keyfile_create(const char *path, struct dp_err *err)
{
	unsigned char	 k[32];
	char		 hex[65 + 1];
	size_t		 off = 0, len;
	ssize_t		 n;
	int		 fd = -1, rc = -1, created = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW |
	    O_NOCTTY, 0640);
	if (fd == -1) {
		if (errno == EEXIST) {
			rc = 0;
			goto out;
		}
		dp_err_set(err, errno, "%s: %s", path, strerror(errno));
		goto out;
	}
	created = 1;
	/* The umask may have taken bits away; the mode is part of the job. */
	if (fchmod(fd, 0640) == -1) {
		dp_err_set(err, errno, "%s: chmod: %s", path, strerror(errno));
		goto out;
	}
	dp_random(k, sizeof(k));
	dp_hex(hex, k, sizeof(k));
	hex[64] = '\n';
	hex[65] = '\0';
	len = 65;
	while (off < len) {
		n = write(fd, hex + off, len - off);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			dp_err_set(err, errno, "%s: write: %s", path,
			    strerror(errno));
			goto out;
		}
		off += (size_t)n;
	}
	if (fsync(fd) == -1) {
		dp_err_set(err, errno, "%s: fsync: %s", path, strerror(errno));
		goto out;
	}
	rc = 0;
 out:
	if (fd != -1 && close(fd) == -1 && rc == 0) {
		dp_err_set(err, errno, "%s: close: %s", path, strerror(errno));
		rc = -1;
	}
	if (rc != 0 && created)
		unlink(path);
	explicit_bzero(k, sizeof(k));
	explicit_bzero(hex, sizeof(hex));
	return rc;
}
