/* reqrule.h: request rules (network.requestRules): allow an API, not every
 * function behind its domain.
 *
 * A rule names a host pattern (allowedDomains grammar) and lists of
 * "METHOD PATH" patterns: METHOD is a token or "*"; PATH starts with "/",
 * where "*" matches within one segment and "**" across segments. For a
 * request to a host that rules cover: a deny pattern that matches refuses it
 * (deny wins); when any covering rule has an allow list, only what some allow
 * pattern matches passes. Paths are matched in their normalised form
 * (pathnorm.h). Deny patterns also match case-insensitively, without one
 * final "/" and with
 * ";parameters" removed from segments, so "/V1/FILES" or "/v1/files;x" cannot
 * slip past "deny POST /v1/files" on a lenient server; allow patterns match
 * exactly (a spelling they do not match is refused).
 */
#ifndef CORDON_REQRULE_H
#define CORDON_REQRULE_H

#include "netrule.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct req_pattern {
    char method[32]; /* "*" or the method */
    char *path;
    char *text;      /* "METHOD PATH" as written */
};

struct req_rule {
    struct net_entry host;
    struct req_pattern *allow, *deny;
    size_t nallow, ndeny;
    bool has_allow;              /* an allow list is present (even empty) */
    uint64_t max_request_bytes;  /* 0: no limit */
    uint64_t max_session_bytes;  /* request bodies to this host over the run; 0: no limit */
};

/* Parse "METHOD PATH". Returns 0 or -1 with *why. */
int req_pattern_parse(const char *s, struct req_pattern *out, const char **why);
void req_pattern_free(struct req_pattern *p);
void req_rule_free(struct req_rule *r);

/* Does the rule cover this destination? */
bool req_rule_covers(const struct req_rule *r, const struct net_target *t);

struct req_verdict {
    bool allow;
    int rule;                    /* index of the deciding rule, or -1 */
    const char *pattern;         /* the pattern that decided, or NULL */
    const char *reason;          /* static text */
};

/* Judge a request. path is the normalised path (no query). */
struct req_verdict req_decide(const struct req_rule *rules, size_t n, const struct net_target *t,
                              const char *method, const char *path);

/* Glob match used by req_decide (exposed for tests and fuzzing). */
bool req_path_match(const char *pattern, const char *path, bool fold_case);

#endif
