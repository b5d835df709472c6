/* fuzz_subst.c: libFuzzer target for the streaming replacer
 * (src/proxy/subst.c), which carries sentinels and secrets through request
 * and response bodies.
 *
 * Input: a count byte (1-4 pairs), then per pair a length byte and the
 * needle (1-24 bytes), a length byte and the replacement (0-40 bytes); then
 * a byte choosing piece sizes; the rest is the stream. Invariants, each an
 * abort() when broken:
 *  - the streamed output, fed in pieces of the chosen sizes (down to one
 *    byte), equals a naive reference: left to right, at each position the
 *    longest needle that matches is replaced and scanning resumes after it;
 *  - subst_string gives the same bytes and the same replacement count;
 *  - no more than the longest needle minus one byte is ever held.
 */
#include "fuzz.h"

#include "proxy/subst.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_subst: invariant broken: %s (%s:%d)\n", #cond,      \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

struct buf {
    char *p;
    size_t n, cap;
};

static int put(void *ud, const char *p, size_t n)
{
    struct buf *b = ud;
    if (n == 0)
        return 0;
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 16;
        b->p = realloc(b->p, b->cap);
        if (!b->p)
            abort();
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

static size_t reference(const struct subst_pair *pairs, size_t np, const char *in, size_t len,
                        struct buf *out)
{
    size_t i = 0, count = 0;
    while (i < len) {
        const struct subst_pair *best = NULL;
        for (size_t k = 0; k < np; k++)
            if (pairs[k].from_len <= len - i && memcmp(in + i, pairs[k].from, pairs[k].from_len) == 0 &&
                (!best || pairs[k].from_len > best->from_len))
                best = &pairs[k];
        if (best) {
            put(out, best->to, best->to_len);
            i += best->from_len;
            count++;
        } else {
            put(out, in + i, 1);
            i++;
        }
    }
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    if (size < 1)
        return 0;
    size_t np = 1 + data[off++] % 4;
    struct subst_pair pairs[4];
    size_t maxlen = 0;
    for (size_t k = 0; k < np; k++) {
        if (off >= size)
            return 0;
        size_t fl = 1 + data[off++] % 24;
        if (off + fl > size)
            return 0;
        pairs[k].from = (const char *)data + off;
        pairs[k].from_len = fl;
        off += fl;
        if (off >= size)
            return 0;
        size_t tl = data[off++] % 41;
        if (off + tl > size)
            return 0;
        pairs[k].to = (const char *)data + off;
        pairs[k].to_len = tl;
        off += tl;
        if (fl > maxlen)
            maxlen = fl;
    }
    if (off >= size)
        return 0;
    unsigned piece = data[off++];
    const char *in = (const char *)data + off;
    size_t len = size - off;

    struct buf want = { 0 }, got = { 0 };
    size_t count = reference(pairs, np, in, len, &want);

    struct subst s;
    CHECK(subst_init(&s, pairs, np) == 0);
    size_t i = 0, step = 0;
    while (i < len) {
        size_t n = piece == 0 ? len : 1 + (piece * (step + 7)) % (piece % 32 + 1);
        if (n > len - i)
            n = len - i;
        CHECK(subst_feed(&s, in + i, n, put, &got) == 0);
        CHECK(s.held < maxlen);
        i += n;
        step++;
    }
    CHECK(subst_end(&s, put, &got) == 0);
    CHECK(s.held == 0);
    CHECK(s.replaced == count);
    subst_free(&s);
    CHECK(got.n == want.n && (got.n == 0 || memcmp(got.p, want.p, got.n) == 0));

    char *one = NULL;
    size_t one_len = 0;
    long c2 = subst_string(pairs, np, in, len, &one, &one_len);
    CHECK(c2 == (long)count && one_len == want.n && (want.n == 0 || memcmp(one, want.p, want.n) == 0));
    CHECK(one[one_len] == '\0');
    free(one);
    free(want.p);
    free(got.p);
    return 0;
}
