/* lib/validate.h: the field types of CONTRACT §0.3, as pure checkers */
#ifndef DP_VALIDATE_H
#define DP_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Violation codes of CONTRACT §0.7, in that order. */
enum dp_vcode {
	DP_V_OK,
	DP_V_MISSING,
	DP_V_TYPE_ERROR,
	DP_V_TOO_SHORT,
	DP_V_TOO_LONG,
	DP_V_PATTERN,
	DP_V_INVALID_CHOICE,
	DP_V_OUT_OF_RANGE,
	DP_V_INVALID_FORMAT,
	DP_V_INVALID_EMAIL,
	DP_V_INVALID_URL,
	DP_V_WEAK_PASSWORD,
	DP_V_TOO_MANY,
	DP_V_INVALID_KEY,
	DP_V_INVALID_PASSPHRASE,
	DP_V__MAX
};
/* "missing", "type_error", … indexed by enum dp_vcode (DP_V_OK is "ok"). */
extern const char *const dp_vcode_names[DP_V__MAX];

/*
 * Every checker takes a string of len bytes (may contain NUL: that is
 * DP_V_INVALID_FORMAT) and returns DP_V_OK or the violation.  Lengths
 * are counted in code points of valid UTF-8 (invalid UTF-8 is
 * DP_V_INVALID_FORMAT).
 */
/* Number of code points, or -1 when s is not valid UTF-8 or holds NUL. */
int64_t	 dp_utf8_len(const char *s, size_t len);
/* True when valid UTF-8 (NUL allowed). */
bool	 dp_utf8_valid(const char *s, size_t len);

enum dp_vcode dp_check_text(const char *, size_t, int64_t min, int64_t max);
enum dp_vcode dp_check_username(const char *, size_t);
/* Trims and lowercases into out (>= len + 1 bytes) before checking. */
enum dp_vcode dp_check_email(const char *, size_t, char *out);
enum dp_vcode dp_check_password(const char *, size_t);
enum dp_vcode dp_check_region(const char *, size_t);
enum dp_vcode dp_check_url(const char *, size_t);
/* cpu: "<n>m" or cores with ≤3 decimals, ≥100m; millicores into *mc. */
enum dp_vcode dp_check_cpu(const char *, size_t, int64_t *mc);
/* quantity with Ki/Mi/Gi/Ti, ≥ min bytes; bytes into *bytes. */
enum dp_vcode dp_check_quantity(const char *, size_t, int64_t min,
	    int64_t *bytes);
/* env_map key ^[A-Za-z_][A-Za-z0-9_]{0,127}$ */
enum dp_vcode dp_check_env_key(const char *, size_t);
/* RFC 3339 timestamp (see §0.3) into microseconds since the epoch. */
enum dp_vcode dp_check_timestamp(const char *, size_t, int64_t *usec);
/* One of the NULL-terminated choices. */
enum dp_vcode dp_check_choice(const char *, size_t, const char *const *);

/* The five regions in contract order, NULL-terminated, and display names. */
extern const char *const dp_regions[];
extern const char *const dp_region_display[];

#endif
