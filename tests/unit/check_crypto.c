/* tests/unit/check_crypto.c: hashes, base64, tokens, sealing, key files */
#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crypto.h"

static char	 tmpdir[64];

static void
tmp_setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/check_crypto.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
tmp_teardown(void)
{
	char	 cmd[128];

	/* Paths are ours (mkdtemp), so the shell sees no outside text. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	(void)!system(cmd);
}

static void
tmp_path(char *out, size_t len, const char *name)
{
	int	 n = snprintf(out, len, "%s/%s", tmpdir, name);

	ck_assert(n > 0 && (size_t)n < len);
}

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	int	 fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	ck_assert_int_eq(fchmod(fd, mode), 0);
	ck_assert_int_eq(close(fd), 0);
}

static void
hex_of(const unsigned char *b, size_t n, char *out)
{
	dp_hex(out, b, n);
}

START_TEST(test_crypto_sha256_vectors)
{
	char	 hex[65];

	dp_sha256_hex("abc", 3, hex);
	ck_assert_str_eq(hex,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	dp_sha256_hex("", 0, hex);
	ck_assert_str_eq(hex,
	    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	dp_sha256_hex("abcdbcdecdefdefgefghfghighijhijk"
	    "ijkljklmklmnlmnomnopnopq", 56, hex);
	ck_assert_str_eq(hex,
	    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* Length is honoured, NUL bytes included. */
	dp_sha256_hex("abc\0def", 7, hex);
	ck_assert_str_ne(hex,
	    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_crypto_hmac_vectors)
{
	unsigned char	 key[131], mac[32];
	char		 hex[65];

	/* RFC 4231 test case 1. */
	memset(key, 0x0b, 20);
	dp_hmac_sha256(key, 20, "Hi There", 8, mac);
	hex_of(mac, 32, hex);
	ck_assert_str_eq(hex,
	    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* Test case 2. */
	dp_hmac_sha256("Jefe", 4, "what do ya want for nothing?", 28, mac);
	hex_of(mac, 32, hex);
	ck_assert_str_eq(hex,
	    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* Test case 6: a key longer than the block size. */
	memset(key, 0xaa, sizeof(key));
	dp_hmac_sha256(key, sizeof(key),
	    "Test Using Larger Than Block-Size Key - Hash Key First", 54, mac);
	hex_of(mac, 32, hex);
	ck_assert_str_eq(hex,
	    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	/* An empty key and empty data do not crash and differ from others. */
	dp_hmac_sha256("", 0, "", 0, mac);
	hex_of(mac, 32, hex);
	ck_assert_str_eq(hex,
	    "b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad");
}
END_TEST

static const struct {
	const char	*in;
	const char	*std;
	const char	*url;
} b64vec[] = {
	{ "", "", "" },
	{ "f", "Zg==", "Zg" },
	{ "fo", "Zm8=", "Zm8" },
	{ "foo", "Zm9v", "Zm9v" },
	{ "foob", "Zm9vYg==", "Zm9vYg" },
	{ "fooba", "Zm9vYmE=", "Zm9vYmE" },
	{ "foobar", "Zm9vYmFy", "Zm9vYmFy" },
	{ "\xfb\xff", "+/8=", "-_8" },
	{ "\xfb\xef\xbe", "++++", "----" },
	{ "\xff\xff\xff", "////", "____" },
};

START_TEST(test_crypto_b64_vectors)
{
	struct dp_buf	 b = { 0 };
	size_t		 i, n;

	for (i = 0; i < DP_NITEMS(b64vec); i++) {
		n = strlen(b64vec[i].in);
		dp_buf_reset(&b);
		dp_b64_encode(&b, b64vec[i].in, n);
		ck_assert_ptr_nonnull(b.s);
		ck_assert_str_eq(b.s, b64vec[i].std);
		dp_buf_reset(&b);
		dp_b64url_encode(&b, b64vec[i].in, n);
		ck_assert_ptr_nonnull(b.s);
		ck_assert_str_eq(b.s, b64vec[i].url);

		dp_buf_reset(&b);
		ck_assert_int_eq(dp_b64_decode(&b, b64vec[i].std,
		    strlen(b64vec[i].std), false), 0);
		ck_assert_uint_eq(b.len, n);
		ck_assert_mem_eq(b.s, b64vec[i].in, n);
		dp_buf_reset(&b);
		ck_assert_int_eq(dp_b64_decode(&b, b64vec[i].url,
		    strlen(b64vec[i].url), false), 0);
		ck_assert_uint_eq(b.len, n);
		ck_assert_mem_eq(b.s, b64vec[i].in, n);
	}
	/* Encoders append. */
	dp_buf_reset(&b);
	dp_buf_adds(&b, "x:");
	dp_b64_encode(&b, "foo", 3);
	ck_assert_str_eq(b.s, "x:Zm9v");
	/* Padding is optional on standard base64 too. */
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_b64_decode(&b, "Zm8", 3, false), 0);
	ck_assert_str_eq(b.s, "fo");
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_crypto_b64_hostile)
{
	static const char *const bad[] = {
		/* Lengths and padding. */
		"Z", "Zm9vY", "Zg=", "Zg===", "Zm8==", "Zm9v=", "Zm9v==",
		"=", "==", "====", "Zm=9", "Z===", "Zg==Zg==", "Zg=x",
		/* Leftover bits set: non-canonical. */
		"Zh==", "Zm9=", "Zh", "Zm9",
		/* Mixed alphabets. */
		"+_8=", "-/", "-/8", "_+8=", "Zm9v+/8-",
		/* Bytes outside either alphabet. */
		"Zm9v!", "Zm 9v", "Zm9v\n", "\xc3\xa9", "Zm9v\xff", "Zm9v.",
	};
	struct dp_buf	 b = { 0 };
	char		*huge;
	size_t		 i, n = 1024 * 1024;

	for (i = 0; i < DP_NITEMS(bad); i++) {
		dp_buf_reset(&b);
		dp_buf_adds(&b, "keep");
		ck_assert_msg(dp_b64_decode(&b, bad[i], strlen(bad[i]),
		    false) == -1, "accepted \"%s\"", bad[i]);
		/* The output is left as it was. */
		ck_assert_uint_eq(b.len, 4);
		ck_assert_str_eq(b.s, "keep");
	}
	/* A NUL byte inside the given length is not a digit. */
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_b64_decode(&b, "Zm9v\0Zm9v", 9, false), -1);
	/* Whitespace only when asked for. */
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_b64_decode(&b, " Zm9v\r\nYmFy\t", 12, true), 0);
	ck_assert_str_eq(b.s, "foobar");
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_b64_decode(&b, "Zm9v Zg =\n=", 11, true), 0);
	ck_assert_str_eq(b.s, "foof");
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_b64_decode(&b, "Zm9v\vYmFy", 9, true), -1);
	/* Huge input: 1 MiB of 'A' decodes to 768 KiB of zeros. */
	huge = malloc(n);
	ck_assert_ptr_nonnull(huge);
	memset(huge, 'A', n);
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_b64_decode(&b, huge, n, false), 0);
	ck_assert_uint_eq(b.len, n / 4 * 3);
	ck_assert_int_eq(b.s[b.len - 1], 0);
	/* ... and one bad byte at the very end is still found. */
	huge[n - 1] = '*';
	dp_buf_reset(&b);
	ck_assert_int_eq(dp_b64_decode(&b, huge, n, false), -1);
	ck_assert_uint_eq(b.len, 0);
	free(huge);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_crypto_b64_roundtrip)
{
	unsigned char	 in[300];
	struct dp_buf	 e = { 0 }, d = { 0 };
	size_t		 n;

	for (n = 0; n < sizeof(in); n++) {
		dp_random(in, n);
		dp_buf_reset(&e);
		dp_buf_reset(&d);
		dp_b64url_encode(&e, in, n);
		ck_assert_ptr_null(memchr(e.s, '=', e.len));
		ck_assert_int_eq(dp_b64_decode(&d, e.s, e.len, false), 0);
		ck_assert_uint_eq(d.len, n);
		ck_assert(n == 0 || memcmp(d.s, in, n) == 0);
		dp_buf_reset(&e);
		dp_buf_reset(&d);
		dp_b64_encode(&e, in, n);
		ck_assert_uint_eq(e.len % 4, 0);
		ck_assert_int_eq(dp_b64_decode(&d, e.s, e.len, false), 0);
		ck_assert_uint_eq(d.len, n);
		ck_assert(n == 0 || memcmp(d.s, in, n) == 0);
	}
	dp_buf_release(&e);
	dp_buf_release(&d);
}
END_TEST

START_TEST(test_crypto_token_format)
{
	char	 a[44], b[44];
	size_t	 i;
	int	 k;

	for (k = 0; k < 100; k++) {
		memset(a, '!', sizeof(a));
		dp_token_new(a);
		ck_assert_uint_eq(strlen(a), 43);
		for (i = 0; i < 43; i++)
			ck_assert_msg((a[i] >= 'A' && a[i] <= 'Z') ||
			    (a[i] >= 'a' && a[i] <= 'z') ||
			    (a[i] >= '0' && a[i] <= '9') || a[i] == '-' ||
			    a[i] == '_', "bad char in %s", a);
		dp_token_new(b);
		ck_assert_str_ne(a, b);
	}
}
END_TEST

START_TEST(test_crypto_seal_roundtrip)
{
	const char	*key = "0123456789abcdef0123456789abcdef";
	struct dp_buf	 s1 = { 0 }, s2 = { 0 }, p = { 0 };
	char		*big;
	size_t		 n = 256 * 1024;

	dp_seal(key, 32, "secret kubeconfig", 17, &s1);
	ck_assert(dp_startswith(s1.s, "v1:"));
	ck_assert_ptr_null(strstr(s1.s, "secret"));
	dp_seal(key, 32, "secret kubeconfig", 17, &s2);
	/* A fresh nonce each time. */
	ck_assert_str_ne(s1.s, s2.s);
	ck_assert_int_eq(dp_open(key, 32, s1.s, &p), 0);
	ck_assert_str_eq(p.s, "secret kubeconfig");
	dp_buf_reset(&p);
	ck_assert_int_eq(dp_open(key, 32, s2.s, &p), 0);
	ck_assert_str_eq(p.s, "secret kubeconfig");

	/* Empty plaintext. */
	dp_buf_reset(&s1);
	dp_buf_reset(&p);
	dp_seal(key, 32, "", 0, &s1);
	ck_assert_int_eq(dp_open(key, 32, s1.s, &p), 0);
	ck_assert_uint_eq(p.len, 0);

	/* Binary with NULs, long keys, appending to out. */
	big = malloc(n);
	ck_assert_ptr_nonnull(big);
	dp_random(big, n);
	dp_buf_reset(&s1);
	dp_buf_reset(&p);
	dp_buf_adds(&p, "pre");
	dp_seal("a much longer key file content, 1234567890!", 43, big, n,
	    &s1);
	ck_assert_int_eq(dp_open("a much longer key file content, "
	    "1234567890!", 43, s1.s, &p), 0);
	ck_assert_uint_eq(p.len, n + 3);
	ck_assert_mem_eq(p.s, "pre", 3);
	ck_assert_mem_eq(p.s + 3, big, n);
	free(big);
	dp_buf_release(&s1);
	dp_buf_release(&s2);
	dp_buf_release(&p);
}
END_TEST

START_TEST(test_crypto_seal_tamper)
{
	const char	*key = "0123456789abcdef0123456789abcdef";
	const char	*key2 = "0123456789abcdef0123456789abcdeF";
	struct dp_buf	 s = { 0 }, p = { 0 }, raw = { 0 }, re = { 0 };
	char		*t;
	size_t		 i, bit;

	dp_seal(key, 32, "attack at dawn", 14, &s);
	/* Wrong key. */
	ck_assert_int_eq(dp_open(key2, 32, s.s, &p), -1);
	ck_assert_uint_eq(p.len, 0);
	/* Wrong prefix, no prefix. */
	t = dp_xstrdup(s.s);
	t[1] = '2';
	ck_assert_int_eq(dp_open(key, 32, t, &p), -1);
	ck_assert_int_eq(dp_open(key, 32, s.s + 3, &p), -1);
	free(t);
	/* Every truncation. */
	for (i = 0; i < s.len; i++) {
		t = dp_xstrndup(s.s, i);
		ck_assert_int_eq(dp_open(key, 32, t, &p), -1);
		free(t);
	}
	/* Every single-bit flip of the binary form. */
	ck_assert_int_eq(dp_b64_decode(&raw, s.s + 3, s.len - 3, false), 0);
	ck_assert_uint_eq(raw.len, 12 + 14 + 16);
	for (i = 0; i < raw.len; i++)
		for (bit = 0; bit < 8; bit++) {
			raw.s[i] ^= (char)(1 << bit);
			dp_buf_reset(&re);
			dp_buf_adds(&re, "v1:");
			dp_b64_encode(&re, raw.s, raw.len);
			ck_assert_int_eq(dp_open(key, 32, re.s, &p), -1);
			raw.s[i] ^= (char)(1 << bit);
		}
	/* Unflipped it opens (the loop above really tested something). */
	dp_buf_reset(&re);
	dp_buf_adds(&re, "v1:");
	dp_b64_encode(&re, raw.s, raw.len);
	ck_assert_int_eq(dp_open(key, 32, re.s, &p), 0);
	ck_assert_str_eq(p.s, "attack at dawn");
	/* Garbage. */
	ck_assert_int_eq(dp_open(key, 32, "v1:", &p), -1);
	ck_assert_int_eq(dp_open(key, 32, "v1:!!!!", &p), -1);
	ck_assert_int_eq(dp_open(key, 32, "", &p), -1);
	ck_assert_int_eq(dp_open(key, 32, NULL, &p), -1);
	dp_buf_release(&s);
	dp_buf_release(&p);
	dp_buf_release(&raw);
	dp_buf_release(&re);
}
END_TEST

START_TEST(test_crypto_keyfile_create)
{
	char		 path[128], buf[128], hex[65];
	struct stat	 st;
	struct dp_buf	 key = { 0 }, key2 = { 0 };
	struct dp_err	 err = { 0 };
	ssize_t		 n;
	size_t		 i;
	int		 fd;

	tmp_path(path, sizeof(path), "jwt.key");
	umask(077);
	ck_assert_int_eq(dp_keyfile_create(path, &err), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	fd = open(path, O_RDONLY);
	ck_assert_int_ge(fd, 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	ck_assert_int_eq(n, 65);
	ck_assert_int_eq(buf[64], '\n');
	for (i = 0; i < 64; i++)
		ck_assert((buf[i] >= '0' && buf[i] <= '9') ||
		    (buf[i] >= 'a' && buf[i] <= 'f'));
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), 0);
	ck_assert_uint_eq(key.len, 32);
	/* The key is the file's hex, decoded. */
	hex_of((const unsigned char *)key.s, key.len, hex);
	ck_assert_int_eq(memcmp(hex, buf, 64), 0);

	/* An existing file is left alone. */
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(dp_keyfile_create(path, &err), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key2, &err), 0);
	ck_assert_uint_eq(key2.len, 32);
	ck_assert_mem_eq(key.s, key2.s, 32);

	/* Two files get different keys. */
	tmp_path(path, sizeof(path), "other.key");
	ck_assert_int_eq(dp_keyfile_create(path, &err), 0);
	dp_buf_wipe(&key2);
	ck_assert_int_eq(dp_keyfile_read(path, &key2, &err), 0);
	ck_assert(memcmp(key.s, key2.s, 32) != 0);

	/* A directory that does not exist is an error with a cause. */
	tmp_path(path, sizeof(path), "nodir/x.key");
	memset(&err, 0, sizeof(err));
	ck_assert_int_eq(dp_keyfile_create(path, &err), -1);
	ck_assert_int_eq(err.code, ENOENT);
	ck_assert(err.msg[0] != '\0');
	dp_buf_wipe(&key);
	dp_buf_wipe(&key2);
}
END_TEST

START_TEST(test_crypto_keyfile_read)
{
	unsigned char	 raw[48];
	char		 path[128], link[128], hex[129], text[200];
	struct dp_buf	 key = { 0 }, b = { 0 };
	struct dp_err	 err = { 0 };
	size_t		 i;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (unsigned char)(i * 7 + 1);
	raw[40] = '\n';
	raw[47] = '\n';

	/* Raw bytes, kept exactly (even a trailing newline byte). */
	tmp_path(path, sizeof(path), "raw.key");
	write_file(path, raw, sizeof(raw), 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), 0);
	ck_assert_uint_eq(key.len, sizeof(raw));
	ck_assert_mem_eq(key.s, raw, sizeof(raw));
	dp_buf_wipe(&key);

	/* Hex, with and without a newline, upper case too. */
	dp_hex(hex, raw, 32);
	tmp_path(path, sizeof(path), "hex.key");
	write_file(path, hex, 64, 0640);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), 0);
	ck_assert_uint_eq(key.len, 32);
	ck_assert_mem_eq(key.s, raw, 32);
	dp_buf_wipe(&key);
	snprintf(text, sizeof(text), "%s\r\n", hex);
	for (i = 0; i < 64; i++)
		if (text[i] >= 'a')
			text[i] = (char)(text[i] - 'a' + 'A');
	write_file(path, text, strlen(text), 0400);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), 0);
	ck_assert_uint_eq(key.len, 32);
	ck_assert_mem_eq(key.s, raw, 32);
	dp_buf_wipe(&key);

	/* base64 of 48 bytes, with newline. */
	dp_b64_encode(&b, raw, sizeof(raw));
	dp_buf_addc(&b, '\n');
	tmp_path(path, sizeof(path), "b64.key");
	write_file(path, b.s, b.len, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), 0);
	ck_assert_uint_eq(key.len, sizeof(raw));
	ck_assert_mem_eq(key.s, raw, sizeof(raw));
	dp_buf_wipe(&key);

	/* Through a symlink: the target's mode counts. */
	tmp_path(link, sizeof(link), "link.key");
	ck_assert_int_eq(symlink(path, link), 0);
	ck_assert_int_eq(dp_keyfile_read(link, &key, &err), 0);
	ck_assert_uint_eq(key.len, sizeof(raw));
	dp_buf_wipe(&key);
	ck_assert_int_eq(chmod(path, 0602), 0);
	ck_assert_int_eq(dp_keyfile_read(link, &key, &err), -1);
	ck_assert_uint_eq(key.len, 0);
	dp_buf_release(&b);
}
END_TEST

START_TEST(test_crypto_keyfile_refuse)
{
	char		 path[128], hex[129];
	unsigned char	 raw[32];
	struct dp_buf	 key = { 0 };
	struct dp_err	 err = { 0 };
	char		*big;

	dp_random(raw, sizeof(raw));
	dp_hex(hex, raw, sizeof(raw));
	tmp_path(path, sizeof(path), "k");

	/* World- and group-writable. */
	write_file(path, hex, 64, 0666);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	ck_assert_int_eq(err.code, EPERM);
	write_file(path, hex, 64, 0620);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	write_file(path, hex, 64, 0602);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	/* Readable by others is allowed (the installer decides). */
	write_file(path, hex, 64, 0644);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), 0);
	dp_buf_wipe(&key);

	/* Empty, short raw, short hex (not taken as raw), odd hex. */
	write_file(path, "", 0, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	write_file(path, "\n", 1, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	write_file(path, "short key\n", 10, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	write_file(path, raw, 31, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	write_file(path, hex, 62, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	write_file(path, hex, 63, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	ck_assert_uint_eq(key.len, 0);

	/* Missing, a directory, huge. */
	tmp_path(path, sizeof(path), "missing");
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	ck_assert_int_eq(err.code, ENOENT);
	ck_assert_int_eq(dp_keyfile_read(tmpdir, &key, &err), -1);
	big = calloc(1, 1024 * 1024);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', 1024 * 1024);
	tmp_path(path, sizeof(path), "big");
	write_file(path, big, 1024 * 1024, 0600);
	ck_assert_int_eq(dp_keyfile_read(path, &key, &err), -1);
	ck_assert_uint_eq(key.len, 0);
	free(big);
	dp_buf_wipe(&key);
}
END_TEST

static Suite *
crypto_suite(void)
{
	Suite	*s = suite_create("crypto");
	TCase	*tc;

	tc = tcase_create("sha256");
	tcase_add_test(tc, test_crypto_sha256_vectors);
	suite_add_tcase(s, tc);
	tc = tcase_create("hmac");
	tcase_add_test(tc, test_crypto_hmac_vectors);
	suite_add_tcase(s, tc);
	tc = tcase_create("b64");
	tcase_add_test(tc, test_crypto_b64_vectors);
	tcase_add_test(tc, test_crypto_b64_roundtrip);
	suite_add_tcase(s, tc);
	tc = tcase_create("b64_hostile");
	tcase_add_test(tc, test_crypto_b64_hostile);
	suite_add_tcase(s, tc);
	tc = tcase_create("token");
	tcase_add_test(tc, test_crypto_token_format);
	suite_add_tcase(s, tc);
	tc = tcase_create("seal");
	tcase_add_test(tc, test_crypto_seal_roundtrip);
	suite_add_tcase(s, tc);
	tc = tcase_create("seal_tamper");
	tcase_add_test(tc, test_crypto_seal_tamper);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	tc = tcase_create("keyfile");
	tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
	tcase_add_test(tc, test_crypto_keyfile_create);
	tcase_add_test(tc, test_crypto_keyfile_read);
	tcase_add_test(tc, test_crypto_keyfile_refuse);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(crypto_suite());
	int	 nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
