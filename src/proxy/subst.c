/* subst.c: see subst.h. */
#include "subst.h"

#include <stdlib.h>
#include <string.h>

/* Pieces are scanned in slices of this size behind the held bytes, so the
 * work buffer stays small whatever the caller feeds. */
#define SLICE 16384

static int by_length_desc(const void *a, const void *b)
{
    const struct subst_pair *x = *(const struct subst_pair *const *)a;
    const struct subst_pair *y = *(const struct subst_pair *const *)b;
    return x->from_len < y->from_len ? 1 : x->from_len > y->from_len ? -1 : 0;
}

int subst_init(struct subst *s, const struct subst_pair *pairs, size_t n)
{
    memset(s, 0, sizeof(*s));
    if (n == 0)
        return 0;
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers; sizeof(pointer) is meant */
    s->pairs = malloc(n * sizeof(*s->pairs));
    if (!s->pairs)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (pairs[i].from_len == 0) {
            free(s->pairs);
            s->pairs = NULL;
            return -1;
        }
        s->pairs[i] = &pairs[i];
        if (pairs[i].from_len > s->maxlen)
            s->maxlen = pairs[i].from_len;
        uint8_t f = (uint8_t)pairs[i].from[0];
        s->first[f >> 3] |= (uint8_t)(1u << (f & 7));
    }
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): as above */
    qsort(s->pairs, n, sizeof(*s->pairs), by_length_desc);
    s->n = n;
    s->cap = s->maxlen + SLICE;
    s->base = pairs;
    s->work = malloc(s->cap);
    s->hits = calloc(n, sizeof(*s->hits));
    if (!s->work || !s->hits) {
        free(s->pairs);
        free(s->work);
        free(s->hits);
        s->pairs = NULL;
        s->work = NULL;
        s->hits = NULL;
        return -1;
    }
    return 0;
}

void subst_free(struct subst *s)
{
    free(s->pairs);
    if (s->work)
        explicit_bzero(s->work, s->cap); /* it held secrets or their fakes */
    free(s->work);
    free(s->hits);
    memset(s, 0, sizeof(*s));
}

/* Scan buf[0..len): emit output and return how many bytes at the end must
 * be held (a possible needle start that the next bytes decide), or a
 * negative emit result. At the end of the stream (final) nothing is held. */
static long scan(struct subst *s, const char *buf, size_t len, bool final, subst_emit_fn emit,
                 void *ud)
{
    size_t start = 0, i = 0;
    while (i < len) {
        uint8_t b = (uint8_t)buf[i];
        if (!(s->first[b >> 3] & (1u << (b & 7)))) {
            i++;
            continue;
        }
        size_t avail = len - i;
        const struct subst_pair *hit = NULL;
        bool wait = false;
        for (size_t k = 0; k < s->n; k++) {
            const struct subst_pair *p = s->pairs[k];
            if (p->from_len <= avail) {
                if (memcmp(buf + i, p->from, p->from_len) == 0) {
                    hit = p;
                    break; /* the longest complete match */
                }
            } else if (!final && memcmp(buf + i, p->from, avail) == 0) {
                wait = true; /* a longer needle may still match here */
                break;
            }
        }
        if (wait) {
            if (i > start) {
                int r = emit(ud, buf + start, i - start);
                if (r < 0)
                    return r;
            }
            return (long)(len - i);
        }
        if (!hit) {
            i++;
            continue;
        }
        if (i > start) {
            int r = emit(ud, buf + start, i - start);
            if (r < 0)
                return r;
        }
        if (hit->to_len) {
            int r = emit(ud, hit->to, hit->to_len);
            if (r < 0)
                return r;
        }
        s->replaced++;
        s->hits[hit - s->base]++;
        i += hit->from_len;
        start = i;
    }
    if (len > start) {
        int r = emit(ud, buf + start, len - start);
        if (r < 0)
            return r;
    }
    return 0;
}

int subst_feed(struct subst *s, const char *in, size_t len, subst_emit_fn emit, void *ud)
{
    if (s->n == 0)
        return len ? emit(ud, in, len) : 0;
    while (len > 0) {
        size_t take = len < SLICE ? len : SLICE;
        memcpy(s->work + s->held, in, take);
        size_t total = s->held + take;
        long keep = scan(s, s->work, total, false, emit, ud);
        if (keep < 0)
            return (int)keep;
        memmove(s->work, s->work + total - (size_t)keep, (size_t)keep);
        s->held = (size_t)keep;
        in += take;
        len -= take;
    }
    return 0;
}

int subst_end(struct subst *s, subst_emit_fn emit, void *ud)
{
    if (s->n == 0 || s->held == 0)
        return 0;
    long r = scan(s, s->work, s->held, true, emit, ud);
    s->held = 0;
    return r < 0 ? (int)r : 0;
}

struct strbuf {
    char *p;
    size_t n, cap;
};

static int sb_emit(void *ud, const char *p, size_t n)
{
    struct strbuf *b = ud;
    if (!b->p || b->n + n + 1 > b->cap) { /* !p: said outright for the analyzer */
        size_t cap = (b->n + n + 1) * 2;
        char *np = realloc(b->p, cap);
        if (!np)
            return -1;
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    return 0;
}

long subst_string(const struct subst_pair *pairs, size_t n, const char *in, size_t len,
                  char **out, size_t *out_len)
{
    struct subst s;
    struct strbuf b = { 0 };
    *out = NULL;
    if (subst_init(&s, pairs, n) < 0)
        return -1;
    int r = subst_feed(&s, in, len, sb_emit, &b);
    if (r == 0)
        r = subst_end(&s, sb_emit, &b);
    if (r == 0 && !b.p)
        r = sb_emit(&b, "", 0);
    long replaced = (long)s.replaced;
    subst_free(&s);
    if (r < 0) {
        free(b.p);
        return -1;
    }
    b.p[b.n] = '\0';
    *out = b.p;
    *out_len = b.n;
    return replaced;
}

bool subst_contains(const struct subst_pair *pairs, size_t n, const char *in, size_t len)
{
    for (size_t k = 0; k < n; k++)
        if (pairs[k].from_len && memmem(in, len, pairs[k].from, pairs[k].from_len))
            return true;
    return false;
}
