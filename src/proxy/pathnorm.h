/* pathnorm.h: one canonical spelling of a request target's path, which is
 * both matched against request rules and forwarded (egress-attacks.md T11:
 * the plecto and Envoy approach; Envoy CVE-2019-9901 is the precedent).
 *
 * Canonical form: percent-escapes of unreserved characters (RFC 3986 2.3)
 * decoded, other escapes kept with upper-case hex, dot segments removed
 * (RFC 3986 5.2.4). Refused as ambiguous: an encoded "/", "\" or "." in a path
 * (%2F, %5C, %2E), a raw "\", NUL and other control bytes raw or encoded,
 * ".." that would climb above the root, empty segments ("//"), a malformed
 * escape, escapes that do not spell UTF-8 (overlong "%C0%AE" for "."), and
 * raw bytes outside printable ASCII. The query is kept as sent (after
 * the same control-byte check).
 */
#ifndef CORDON_PATHNORM_H
#define CORDON_PATHNORM_H

#include <stdbool.h>
#include <stddef.h>

enum path_mode {
    PATH_REFUSE,     /* ambiguous targets are refused (the default) */
    PATH_NORMALIZE,  /* dot segments and "//" are resolved, not refused */
    PATH_AS_SPELLED, /* no normalisation (srt's asSpelled; weaker) */
};

#define PATH_MAX_TARGET 8192

/* Normalise target (path and optional "?query", as in an origin-form
 * request-target) into out (outsize >= len + 1). Returns the length of the
 * result, or -1 with *why when the target is refused. The path part of the
 * result is out[0 .. *path_len). */
long path_normalize(const char *target, size_t len, enum path_mode mode, char *out,
                    size_t outsize, size_t *path_len, const char **why);

#endif
