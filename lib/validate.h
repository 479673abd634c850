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

/*
 * Notes on the checkers above (CONTRACT §0.3):
 * - A NULL pointer with len 0 is the empty string; with len > 0 it is
 *   DP_V_INVALID_FORMAT.  NUL bytes and invalid UTF-8 are always
 *   DP_V_INVALID_FORMAT, before any other rule.
 * - Output parameters (*mc, *bytes, *usec) are written only on DP_V_OK.
 * - dp_check_email and dp_check_env_name write the normalised string to
 *   out (if out is not NULL) before checking, whatever the result.
 * - cpu and quantity values too large for int64 are DP_V_OUT_OF_RANGE.
 * - timestamp: "YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH:MM]" ('t' and 'z'
 *   also accepted, a space in the offset position is '+', no offset is
 *   UTC).  The fraction is truncated to microseconds.  A leap second
 *   (:60) is DP_V_INVALID_FORMAT: the epoch scale cannot hold it.
 * - Empty strings get the type's own code (pattern, invalid_choice, …);
 *   the §8 "empty required string is too_short" rule belongs to the
 *   form layer.
 */

/* Environment name (§2.4): ASCII-lowercased into out (>= len + 1 bytes,
 * may be NULL) first, then 1–50 chars of
 * ^[a-z0-9_]([a-z0-9_-]{0,48}[a-z0-9_])?$ [too_short, too_long, pattern]. */
enum dp_vcode dp_check_env_name(const char *, size_t, char *out);
/* Template name (§1.4): ^[a-z0-9][a-z0-9_-]{0,49}$ [pattern]. */
enum dp_vcode dp_check_template_name(const char *, size_t);
/* Docker image reference (§2.5): ≤255 chars [too_long], the regex of §2.5
 * [pattern]. */
enum dp_vcode dp_check_image_ref(const char *, size_t);
/* Canonical renderings (§4.3): cpu as "<n>m"; quantity in the largest of
 * Ti, Gi, Mi, Ki dividing it exactly, else plain bytes.  out is always
 * NUL-terminated; it is the empty string if n is too small. */
void	 dp_format_cpu(int64_t mc, char *out, size_t n);
void	 dp_format_quantity(int64_t bytes, char *out, size_t n);

#endif
