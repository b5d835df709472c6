/* audit.h: the audit stream, one JSON object per line (shared/DESIGN.md,
 * "Audit records"). Schema version 1.
 *
 * Every record has v, ts (RFC 3339 UTC with milliseconds), event and verdict
 * ("allow" or "deny"). Secrets never appear in a record: callers pass only
 * hosts, ports, addresses, methods, normalised paths, rule texts and reasons.
 */
#ifndef CORDON_AUDIT_H
#define CORDON_AUDIT_H

#include <jansson.h>
#include <stdbool.h>

#define CORDON_AUDIT_VERSION 1

struct audit {
    int fd;        /* -1: no audit stream */
    bool owns_fd;
    unsigned long denials; /* counted even without a stream (exit summary) */
    /* Called for every deny record, with its category ("network", "write",
     * "syscall") and one line in srt's violation format, e.g.
     * "deny network-outbound evil.test:443 (host is not on the allow list)". */
    void (*on_denial)(void *ud, const char *category, const char *line);
    void *denial_ud;
};

/* Emit one record: fields is an object (stolen, may be NULL) to which v, ts,
 * event and verdict are added. Writes are whole lines (a single write(2)
 * with O_APPEND, so concurrent writers do not interleave within a line). */
void audit_emit(struct audit *a, const char *event, bool allow, json_t *fields);

/* The same; a quiet denial is recorded but not reported to on_denial (libc's
 * routine probes, which fail by design and are no news to the user). */
void audit_emit_quiet(struct audit *a, const char *event, bool allow, bool quiet,
                      json_t *fields);

/* A JSON string for bytes that came from the sandbox: the bytes themselves
 * when they are valid UTF-8, otherwise every byte outside printable ASCII
 * as \xNN (a record is never lost to an encoding error). */
json_t *audit_str(const char *s);

#endif
