/* subst.h: streaming replacement of a small set of byte strings, in bounded
 * memory: how sentinels become real values on the way out of the sandbox
 * (and real values become sentinels on the way back in).
 *
 * A stream is fed in pieces of any size; a needle split across pieces is
 * still found, because the bytes that could start one are held back (at
 * most the longest needle minus one byte) until the next piece or the end.
 * At any position the longest needle that matches wins; the output of a
 * replacement is never scanned again. Pure: no I/O; allocation only in
 * subst_init.
 */
#ifndef CORDON_SUBST_H
#define CORDON_SUBST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct subst_pair {
    const char *from;
    size_t from_len; /* > 0 */
    const char *to;
    size_t to_len;
};

struct subst {
    const struct subst_pair **pairs; /* borrowed pairs, longest needle first */
    size_t n;
    size_t maxlen;
    uint8_t first[32];               /* bitmap of needles' first bytes */
    char *work;                      /* held bytes, then the piece being scanned */
    size_t held, cap;
    uint64_t replaced;               /* replacements made so far */
    const struct subst_pair *base;   /* the caller's array */
    uint64_t *hits;                  /* replacements per pair of base */
};

/* Emit output bytes; a negative return stops the stream with that value. */
typedef int (*subst_emit_fn)(void *ud, const char *p, size_t n);

/* pairs must outlive s. Returns 0, or -1 (out of memory, or an empty needle). */
int subst_init(struct subst *s, const struct subst_pair *pairs, size_t n);
void subst_free(struct subst *s);

/* Feed input; complete output is emitted, possible needle starts are held. */
int subst_feed(struct subst *s, const char *in, size_t len, subst_emit_fn emit, void *ud);

/* The end of the stream: emit what is held (replacing whole needles in it). */
int subst_end(struct subst *s, subst_emit_fn emit, void *ud);

/* One-shot replacement of a whole string into a new malloc'ed buffer
 * (NUL-terminated; *out_len without the NUL). Returns the number of
 * replacements, or -1 when out of memory. */
long subst_string(const struct subst_pair *pairs, size_t n, const char *in, size_t len,
                  char **out, size_t *out_len);

/* Does any needle occur in the string? */
bool subst_contains(const struct subst_pair *pairs, size_t n, const char *in, size_t len);

#endif
