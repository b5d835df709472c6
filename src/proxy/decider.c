/* decider.c: see decider.h.
 *
 * Written from the protocol's description (srt-compat.md 3.13) and the
 * behaviour of srt 0.0.83's published package (its decider client and proxy-
 * only mode), which tests/integration/test_proxy_cmd.py drives with the same
 * decider as cordon. Where srt words a refusal or a reason, the same words
 * are used here, so that a decider (or a person reading its logs) sees the
 * same thing from either proxy.
 */
#include "decider.h"
#include "core/sbuf.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* ==== strict JSON ========================================================== */

/* A JSON value as JavaScript's JSON.parse sees it: numbers are doubles,
 * strings UTF-8 (a lone surrogate escape is kept as its three WTF-8 bytes and
 * flagged), objects keep their members in order. Nodes live in an arena that
 * is freed at once. */
enum { J_NULL, J_FALSE, J_TRUE, J_NUM, J_STR, J_ARR, J_OBJ };

struct jv {
    int type;
    double num;
    const char *s;       /* J_STR */
    size_t slen;
    const char *key;     /* a member of an object: its name */
    size_t klen;
    struct jv *first, *last, *next; /* J_ARR, J_OBJ: children */
    size_t n;
};

struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    max_align_t data[];
};

struct jparse {
    const unsigned char *p, *end;
    struct arena_block *blocks;
    int depth;
    bool bad;            /* a syntax error */
    const char *late;    /* "null in frame" or "lone surrogate in frame", first seen */
    bool dup;            /* an object with the same key twice */
};

#define J_MAX_DEPTH 512

static void *arena_alloc(struct jparse *j, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
    struct arena_block *b = j->blocks;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 65536 ? n : 65536;
        b = malloc(sizeof(*b) + cap);
        if (!b)
            return NULL;
        b->next = j->blocks;
        b->used = 0;
        b->cap = cap;
        j->blocks = b;
    }
    void *r = (char *)b->data + b->used;
    b->used += n;
    return r;
}

static void arena_free(struct jparse *j)
{
    for (struct arena_block *b = j->blocks, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    j->blocks = NULL;
}

static void j_ws(struct jparse *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static struct jv *j_node(struct jparse *j, int type)
{
    struct jv *v = arena_alloc(j, sizeof(*v));
    if (!v) {
        j->bad = true;
        return NULL;
    }
    memset(v, 0, sizeof(*v));
    v->type = type;
    return v;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool j_u4(struct jparse *j, unsigned *out)
{
    if (j->end - j->p < 4)
        return false;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(j->p[i]);
        if (h < 0)
            return false;
        v = v << 4 | (unsigned)h;
    }
    j->p += 4;
    *out = v;
    return true;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* A string, *j->p at its opening quote. The input is valid UTF-8 already. */
static bool j_string(struct jparse *j, const char **out, size_t *outlen)
{
    j->p++;
    const unsigned char *start = j->p;
    size_t escapes = 0;
    while (j->p < j->end && *j->p != '"') {
        if (*j->p < 0x20)
            return false; /* a raw control character (RFC 8259 7) */
        if (*j->p == '\\') {
            escapes++;
            j->p++;
            if (j->p >= j->end)
                return false;
        }
        j->p++;
    }
    if (j->p >= j->end)
        return false;
    size_t rawlen = (size_t)(j->p - start);
    j->p++;
    if (escapes == 0) {
        *out = (const char *)start;
        *outlen = rawlen;
        return true;
    }
    /* Escapes never lengthen the text: \uXXXX (6 bytes) gives at most 3,
     * a pair (12) at most 4. */
    char *o = arena_alloc(j, rawlen + 1);
    if (!o)
        return false;
    size_t k = 0;
    const unsigned char *save = j->p;
    j->p = start;
    const unsigned char *stop = start + rawlen;
    while (j->p < stop) {
        unsigned char c = *j->p++;
        if (c != '\\') {
            o[k++] = (char)c;
            continue;
        }
        c = *j->p++;
        switch (c) {
        case '"': o[k++] = '"'; break;
        case '\\': o[k++] = '\\'; break;
        case '/': o[k++] = '/'; break;
        case 'b': o[k++] = '\b'; break;
        case 'f': o[k++] = '\f'; break;
        case 'n': o[k++] = '\n'; break;
        case 'r': o[k++] = '\r'; break;
        case 't': o[k++] = '\t'; break;
        case 'u': {
            unsigned u;
            if (!j_u4(j, &u) || j->p > stop)
                return false;
            if (u >= 0xd800 && u <= 0xdbff && stop - j->p >= 6 && j->p[0] == '\\' &&
                j->p[1] == 'u') {
                const unsigned char *keep = j->p;
                unsigned lo;
                j->p += 2;
                if (!j_u4(j, &lo))
                    return false;
                if (lo >= 0xdc00 && lo <= 0xdfff) {
                    k += put_utf8(o + k, 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00));
                    break;
                }
                j->p = keep; /* not a low half: u stands alone */
            }
            if (u >= 0xd800 && u <= 0xdfff && !j->late)
                j->late = "lone surrogate in frame";
            k += put_utf8(o + k, u);
            break;
        }
        default:
            return false;
        }
    }
    j->p = save;
    o[k] = '\0';
    *out = o;
    *outlen = k;
    return true;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* RFC 8259 6: -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static bool j_number(struct jparse *j, double *out)
{
    const unsigned char *s = j->p;
    if (j->p < j->end && *j->p == '-')
        j->p++;
    if (j->p >= j->end || !is_digit(*j->p))
        return false;
    if (*j->p == '0')
        j->p++;
    else
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || !is_digit(*j->p))
            return false;
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
            j->p++;
        if (j->p >= j->end || !is_digit(*j->p))
            return false;
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    }
    size_t len = (size_t)(j->p - s);
    char buf[64];
    char *tmp = len < sizeof(buf) ? buf : malloc(len + 1);
    if (!tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    *out = strtod(tmp, NULL); /* overflow gives HUGE_VAL, as JavaScript's Infinity */
    if (tmp != buf)
        free(tmp);
    return true;
}

static int key_cmp(const void *a, const void *b)
{
    const struct jv *x = *(const struct jv *const *)a, *y = *(const struct jv *const *)b;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->klen > y->klen) - (x->klen < y->klen);
}

static void check_dup(struct jparse *j, struct jv *obj)
{
    if (obj->n < 2 || j->dup)
        return;
    if (obj->n <= 8) {
        for (struct jv *a = obj->first; a; a = a->next)
            for (struct jv *b = a->next; b; b = b->next)
                if (a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0)
                    j->dup = true;
        return;
    }
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    struct jv **v = malloc(obj->n * sizeof(*v));
    if (!v) {
        j->bad = true;
        return;
    }
    size_t i = 0;
    for (struct jv *a = obj->first; a; a = a->next)
        v[i++] = a;
    qsort(v, obj->n, sizeof(*v), key_cmp); /* NOLINT(bugprone-sizeof-expression): pointers */
    for (i = 1; i < obj->n; i++)
        if (key_cmp(&v[i - 1], &v[i]) == 0)
            j->dup = true;
    free(v);
}

static struct jv *j_value(struct jparse *j);

static void j_append(struct jv *parent, struct jv *child)
{
    if (parent->last)
        parent->last->next = child;
    else
        parent->first = child;
    parent->last = child;
    parent->n++;
}

static struct jv *j_container(struct jparse *j, bool obj)
{
    if (++j->depth > J_MAX_DEPTH)
        return NULL;
    struct jv *v = j_node(j, obj ? J_OBJ : J_ARR);
    if (!v)
        return NULL;
    j->p++;
    j_ws(j);
    if (j->p < j->end && *j->p == (obj ? '}' : ']')) {
        j->p++;
        j->depth--;
        return v;
    }
    for (;;) {
        const char *key = NULL;
        size_t klen = 0;
        if (obj) {
            if (j->p >= j->end || *j->p != '"' || !j_string(j, &key, &klen))
                return NULL;
            j_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return NULL;
            j->p++;
        }
        j_ws(j);
        struct jv *c = j_value(j);
        if (!c)
            return NULL;
        c->key = key;
        c->klen = klen;
        j_append(v, c);
        j_ws(j);
        if (j->p >= j->end)
            return NULL;
        if (*j->p == ',') {
            j->p++;
            j_ws(j);
            continue;
        }
        if (*j->p != (obj ? '}' : ']'))
            return NULL;
        j->p++;
        break;
    }
    if (obj)
        check_dup(j, v);
    j->depth--;
    return v;
}

static bool j_lit(struct jparse *j, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0)
        return false;
    j->p += n;
    return true;
}

static struct jv *j_value(struct jparse *j)
{
    if (j->p >= j->end)
        return NULL;
    struct jv *v;
    switch (*j->p) {
    case '{':
        return j_container(j, true);
    case '[':
        return j_container(j, false);
    case '"':
        v = j_node(j, J_STR);
        if (!v || !j_string(j, &v->s, &v->slen))
            return NULL;
        return v;
    case 't':
        return j_lit(j, "true") ? j_node(j, J_TRUE) : NULL;
    case 'f':
        return j_lit(j, "false") ? j_node(j, J_FALSE) : NULL;
    case 'n':
        if (!j_lit(j, "null"))
            return NULL;
        if (!j->late)
            j->late = "null in frame";
        return j_node(j, J_NULL);
    default:
        v = j_node(j, J_NUM);
        if (!v || !j_number(j, &v->num))
            return NULL;
        return v;
    }
}

/* Strict UTF-8 (RFC 3629): no overlong forms, no surrogates, at most
 * U+10FFFF; what TextDecoder('utf-8', {fatal: true}) accepts. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned cp, min;
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
            cp = c & 0x1f;
            min = 0x80;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            cp = c & 0x0f;
            min = 0x800;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

/* One frame's object, or NULL with *why (srt's parseStrictJson). The
 * arena in j must be freed by the caller either way. */
static struct jv *j_parse_frame(struct jparse *j, const uint8_t *p, size_t n, const char **why)
{
    memset(j, 0, sizeof(*j));
    if (!utf8_valid(p, n)) {
        *why = "frame is not UTF-8";
        return NULL;
    }
    /* TextDecoder drops one leading byte order mark. */
    if (n >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf) {
        p += 3;
        n -= 3;
    }
    j->p = p;
    j->end = p + n;
    j_ws(j);
    struct jv *v = j_value(j);
    j_ws(j);
    if (!v || j->bad || j->p != j->end) {
        *why = "frame is not valid JSON";
        return NULL;
    }
    if (v->type != J_OBJ) {
        *why = "frame is not one JSON object";
        return NULL;
    }
    if (j->late) {
        *why = j->late;
        return NULL;
    }
    if (j->dup) {
        *why = "duplicate key in frame";
        return NULL;
    }
    return v;
}

/* ==== schema checks ========================================================= */

static const struct jv *j_get(const struct jv *obj, const char *key)
{
    size_t kl = strlen(key);
    for (const struct jv *m = obj->first; m; m = m->next)
        if (m->klen == kl && memcmp(m->key, key, kl) == 0)
            return m;
    return NULL;
}

/* A strict object: every member is one of keys (NULL-terminated). */
static bool j_only(const struct jv *obj, const char *const *keys)
{
    for (const struct jv *m = obj->first; m; m = m->next) {
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = m->klen == strlen(keys[i]) && memcmp(m->key, keys[i], m->klen) == 0;
        if (!known)
            return false;
    }
    return true;
}

static bool j_str_is(const struct jv *v, const char *s)
{
    return v && v->type == J_STR && v->slen == strlen(s) && memcmp(v->s, s, v->slen) == 0;
}

/* z.number().int().min(lo).max(hi) */
static bool j_int(const struct jv *v, double lo, double hi, uint64_t *out)
{
    if (!v || v->type != J_NUM || !isfinite(v->num) || v->num != floor(v->num) || v->num < lo ||
        v->num > hi)
        return false;
    *out = (uint64_t)v->num;
    return true;
}

/* The next code point of UTF-8 s (valid or WTF-8) at *i. */
static unsigned next_cp(const char *s, size_t n, size_t *i)
{
    const unsigned char *u = (const unsigned char *)s;
    unsigned char c = u[*i];
    size_t len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    if (*i + len > n)
        len = n - *i;
    unsigned cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; k < len; k++)
        cp = cp << 6 | (u[*i + k] & 0x3f);
    *i += len;
    return cp;
}

/* srt's hasControl: a C0 control other than tab, DEL, or a C1 control. */
static bool has_control(const char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned cp = next_cp(s, n, &i);
        if ((cp < 0x20 && cp != 0x09) || (cp >= 0x7f && cp <= 0x9f))
            return true;
    }
    return false;
}

/* RFC 9110 5.6.2 token */
static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool lower_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]) || (s[i] >= 'A' && s[i] <= 'Z'))
            return false;
    return true;
}

/* A header name folded for comparison: lower case, "_" and "." read as "-"
 * (srt's foldHeaderName). */
static void fold(char *dst, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        dst[i] = c == '_' || c == '.' ? '-' : c;
    }
    dst[n] = '\0';
}

static bool folded_in(const char *s, size_t n, const char *const *list)
{
    char f[64];
    if (n >= sizeof(f))
        return false;
    fold(f, s, n);
    for (size_t i = 0; list[i]; i++)
        if (strcmp(f, list[i]) == 0)
            return true;
    return false;
}

/* Headers a credential travels in: removed, in any spelling, before one is
 * placed. */
static const char *const cred_headers[] = {
    "authorization", "proxy-authorization", "cookie", "x-api-key", NULL,
};
/* Framing headers: never removed or set by a verdict. */
static const char *const framing_headers[] = {
    "host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer",
    "keep-alive", "proxy-connection", NULL,
};

static char *j_dup(const struct jv *v)
{
    char *s = malloc(v->slen + 1);
    if (s) {
        memcpy(s, v->s, v->slen);
        s[v->slen] = '\0';
    }
    return s;
}

void dv_verdict_clear(struct dv_verdict *v)
{
    for (size_t i = 0; i < v->nsets; i++) {
        free(v->sets[i].name);
        for (size_t k = 0; k < v->sets[i].nvalues; k++)
            free(v->sets[i].values[k]);
        free(v->sets[i].values);
    }
    free(v->sets);
    for (size_t i = 0; i < v->nremoves; i++)
        free(v->removes[i]);
    free(v->removes);
    if (v->credential)
        explicit_bzero(v->credential, strlen(v->credential));
    free(v->cred);
    free(v->credential);
    free(v->reason);
    memset(v, 0, sizeof(*v));
}

/* An allow's setHeaders: a non-empty object of lower-case names to lists of
 * values without control characters; no framing or credential header; at
 * most 190 values (a name with none counts as one) and 64 KiB of names and
 * values. */
static bool parse_sets(const struct jv *o, struct dv_verdict *v)
{
    if (o->type != J_OBJ || o->n == 0)
        return false;
    v->sets = calloc(o->n, sizeof(*v->sets));
    if (!v->sets)
        return false;
    size_t entries = 0, bytes = 0;
    for (const struct jv *m = o->first; m; m = m->next) {
        if (!lower_token(m->key, m->klen) || folded_in(m->key, m->klen, framing_headers) ||
            folded_in(m->key, m->klen, cred_headers) || m->type != J_ARR)
            return false;
        struct dv_set *s = &v->sets[v->nsets++];
        s->name = strndup(m->key, m->klen);
        s->values = calloc(m->n ? m->n : 1, sizeof(*s->values));
        if (!s->name || !s->values)
            return false;
        entries += m->n ? m->n : 1;
        bytes += m->klen;
        for (const struct jv *x = m->first; x; x = x->next) {
            if (x->type != J_STR || has_control(x->s, x->slen))
                return false;
            bytes += x->slen;
            if (!(s->values[s->nvalues++] = j_dup(x)))
                return false;
        }
        if (entries > DECIDER_MAX_HEADER_VALUES || bytes > DECIDER_MAX_HEADER_BYTES)
            return false;
    }
    return true;
}

static bool parse_removes(const struct jv *a, struct dv_verdict *v)
{
    if (a->type != J_ARR || a->n == 0 || a->n > DECIDER_MAX_HEADER_VALUES)
        return false;
    v->removes = calloc(a->n, sizeof(*v->removes));
    if (!v->removes)
        return false;
    size_t bytes = 0;
    for (const struct jv *x = a->first; x; x = x->next) {
        if (x->type != J_STR || !lower_token(x->s, x->slen) ||
            folded_in(x->s, x->slen, framing_headers))
            return false;
        for (const struct jv *y = a->first; y != x; y = y->next)
            if (y->slen == x->slen && memcmp(y->s, x->s, x->slen) == 0)
                return false; /* a list of unique names */
        bytes += x->slen;
        if (!(v->removes[v->nremoves++] = j_dup(x)))
            return false;
    }
    return bytes <= DECIDER_MAX_HEADER_BYTES;
}

static bool parse_verdict_obj(const struct jv *o, struct dv_verdict *v)
{
    const struct jv *action = j_get(o, "action");
    if (!j_str_is(j_get(o, "t"), "verdict") || !j_int(j_get(o, "id"), 1,
                                                      (double)DECIDER_MAX_ID, &v->id))
        return false;
    if (j_str_is(action, "allow")) {
        static const char *const keys[] = { "t", "id", "action", "setHeaders", "removeHeaders",
                                            "cred", "credential", NULL };
        v->action = DV_ALLOW;
        if (!j_only(o, keys))
            return false;
        const struct jv *sh = j_get(o, "setHeaders"), *rh = j_get(o, "removeHeaders");
        const struct jv *cr = j_get(o, "cred"), *cv = j_get(o, "credential");
        if (sh && !parse_sets(sh, v))
            return false;
        if (rh && !parse_removes(rh, v))
            return false;
        if (!cr != !cv)
            return false;
        if (cr) {
            if (cr->type != J_STR || cr->slen == 0 || cv->type != J_STR || cv->slen == 0 ||
                cv->slen > DECIDER_MAX_CREDENTIAL)
                return false;
            for (size_t i = 0; i < cv->slen; i++)
                if ((unsigned char)cv->s[i] < 0x21 || (unsigned char)cv->s[i] > 0x7e)
                    return false; /* printable ASCII, no space: placed in a header as is */
            if (!(v->cred = j_dup(cr)) || !(v->credential = j_dup(cv)))
                return false;
            v->cred_len = cr->slen;
        }
        return true;
    }
    if (j_str_is(action, "deny")) {
        static const char *const keys[] = { "t", "id", "action", "status", "reason", NULL };
        v->action = DV_DENY;
        uint64_t st;
        if (!j_only(o, keys) || !j_int(j_get(o, "status"), 400, 599, &st))
            return false;
        v->status = (int)st;
        const struct jv *r = j_get(o, "reason");
        if (r) {
            if (r->type != J_STR || r->slen == 0 || r->slen > DECIDER_MAX_REASON ||
                has_control(r->s, r->slen) || !(v->reason = j_dup(r)))
                return false;
        }
        return true;
    }
    if (j_str_is(action, "need_body")) {
        static const char *const keys[] = { "t", "id", "action", "max", NULL };
        v->action = DV_NEED_BODY;
        uint64_t mx;
        if (!j_only(o, keys) || !j_int(j_get(o, "max"), 1, DECIDER_MAX_BODY, &mx))
            return false;
        v->max = (uint32_t)mx;
        return true;
    }
    return false;
}

int dv_parse_verdict(const uint8_t *p, size_t n, struct dv_verdict *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    struct jparse j;
    struct jv *o = j_parse_frame(&j, p, n, why);
    int r = 0;
    if (!o) {
        r = -1;
    } else if (!parse_verdict_obj(o, out)) {
        dv_verdict_clear(out);
        *why = "bad verdict frame";
        r = -1;
    }
    arena_free(&j);
    return r;
}

/* ---- the hello's lists ------------------------------------------------------ */

static bool is_port_text(const char *s, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || s[0] < '1' || s[0] > '9')
        return false;
    unsigned v = 0;
    for (size_t i = 0; i < n; i++) {
        if (!is_digit((unsigned char)s[i]))
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    if (v > 65535)
        return false;
    *port = (uint16_t)v;
    return true;
}

/* Node's isIPv4: four decimal parts 0-255, no leading zeros. */
static bool is_ipv4(const char *s, size_t n)
{
    int parts = 0;
    size_t i = 0;
    while (parts < 4) {
        size_t st = i;
        unsigned v = 0;
        while (i < n && is_digit((unsigned char)s[i]) && i - st < 4)
            v = v * 10 + (unsigned)(s[i++] - '0');
        size_t len = i - st;
        if (len == 0 || len > 3 || v > 255 || (len > 1 && s[st] == '0'))
            return false;
        if (++parts < 4) {
            if (i >= n || s[i] != '.')
                return false;
            i++;
        }
    }
    return i == n;
}

/* Node's isIPv6 (zone identifiers included); *addr gets the address. */
static bool is_ipv6(const char *s, size_t n, uint8_t *addr)
{
    char buf[INET6_ADDRSTRLEN + 1];
    const char *pct = memchr(s, '%', n);
    size_t an = pct ? (size_t)(pct - s) : n;
    if (pct) {
        size_t zn = n - an - 1;
        if (zn == 0)
            return false;
        for (size_t i = an + 1; i < n; i++)
            if (!(is_tchar((unsigned char)s[i]) || s[i] == ':') || s[i] == '%')
                return false;
    }
    if (an == 0 || an >= sizeof(buf) || !memchr(s, ':', an))
        return false;
    memcpy(buf, s, an);
    buf[an] = '\0';
    uint8_t tmp[16];
    return inet_pton(AF_INET6, buf, addr ? addr : tmp) == 1;
}

/* One label of a name: [a-z0-9] ([a-z0-9-]{0,61} [a-z0-9])? */
static bool is_label(const char *s, size_t n)
{
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && !(c == '-' && i > 0 && i + 1 < n))
            return false;
    }
    return true;
}

/* srt's isEgressEntry, turned into a net_entry with srt's port split: a
 * lower-case DNS name, the same after "*." (two labels or more), or an IP
 * literal, then an optional ":port" (after "[...]" for IPv6). */
static bool parse_entry(const char *s, size_t n, struct net_entry *e)
{
    memset(e, 0, sizeof(*e));
    const char *host = s;
    size_t hn = n;
    bool ip6 = false, ip4 = false;
    if (memchr(s, '\0', n))
        return false;
    if (is_ipv4(s, n)) {
        ip4 = true;
    } else if (is_ipv6(s, n, NULL)) {
        ip6 = true; /* unbracketed: never split (srt: "::1:443" is an address) */
    } else if (n > 0 && s[0] == '[') {
        const char *end = memchr(s, ']', n);
        if (!end)
            return false;
        host = s + 1;
        hn = (size_t)(end - s) - 1;
        size_t rest = n - (size_t)(end - s) - 1;
        if (rest) {
            if (end[1] != ':' || !is_port_text(end + 2, rest - 1, &e->port))
                return false;
        }
        if (!is_ipv6(host, hn, NULL))
            return false;
        ip6 = true;
    } else {
        const char *colon = NULL;
        for (size_t i = 0; i < n; i++)
            if (s[i] == ':')
                colon = s + i;
        if (colon) {
            hn = (size_t)(colon - s);
            if (!is_port_text(colon + 1, n - hn - 1, &e->port))
                return false;
            if (is_ipv6(s, hn, NULL))
                return false; /* "a:b::1:80"-like: IPv6 needs brackets with a port */
        }
        if (is_ipv4(s, hn)) {
            ip4 = true;
        } else {
            bool wild = hn >= 2 && s[0] == '*' && s[1] == '.';
            const char *base = wild ? s + 2 : s;
            size_t bn = wild ? hn - 2 : hn;
            if (bn == 0 || bn > 253)
                return false;
            size_t labels = 0;
            const char *last = base;
            for (size_t i = 0, st = 0; i <= bn; i++) {
                if (i == bn || base[i] == '.') {
                    if (!is_label(base + st, i - st))
                        return false;
                    last = base + st;
                    labels++;
                    st = i + 1;
                }
            }
            if (wild && labels < 2)
                return false;
            /* The last label starts with a letter: no spelling of an IP
             * address is a name. */
            if (!(*last >= 'a' && *last <= 'z'))
                return false;
            e->kind = wild ? HOST_WILDCARD : HOST_NAME;
            memcpy(e->host, base, bn);
            e->host[bn] = '\0';
        }
    }
    if (ip4 || ip6) {
        char buf[INET6_ADDRSTRLEN + 1];
        size_t an = hn;
        const char *pct = memchr(host, '%', hn);
        if (pct)
            an = (size_t)(pct - host); /* matching ignores zones */
        if (an >= sizeof(buf))
            return false;
        memcpy(buf, host, an);
        buf[an] = '\0';
        struct net_target t;
        const char *why = NULL;
        if (net_canon_host(buf, &t, &why) < 0)
            return false;
        e->kind = t.kind;
        memcpy(e->addr, t.addr, sizeof(e->addr));
        snprintf(e->host, sizeof(e->host), "%s", t.host);
    }
    e->text = strndup(s, n);
    return e->text != NULL;
}

bool dv_entry_match(const struct net_entry *e, const struct net_target *t)
{
    if (e->port && e->port != t->port)
        return false;
    return net_entry_match_host(e, t);
}

void dv_hello_clear(struct dv_hello *h)
{
    for (size_t i = 0; i < h->nallow; i++)
        net_entry_free(&h->allow[i]);
    for (size_t i = 0; i < h->ndeny; i++)
        net_entry_free(&h->deny[i]);
    free(h->allow);
    free(h->deny);
    memset(h, 0, sizeof(*h));
}

static bool parse_list(const struct jv *a, struct net_entry **out, size_t *nout)
{
    if (!a || a->type != J_ARR)
        return false;
    *out = calloc(a->n + 1, sizeof(**out));
    if (!*out)
        return false;
    for (const struct jv *x = a->first; x; x = x->next) {
        if (x->type != J_STR)
            return false;
        for (const struct jv *y = a->first; y != x; y = y->next)
            if (y->slen == x->slen && memcmp(y->s, x->s, x->slen) == 0)
                return false; /* a list of unique entries */
        if (!parse_entry(x->s, x->slen, &(*out)[*nout]))
            return false;
        (*nout)++;
    }
    return true;
}

int dv_parse_hello(const uint8_t *p, size_t n, struct dv_hello *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    struct jparse j;
    struct jv *o = j_parse_frame(&j, p, n, why);
    int r = 0;
    if (!o) {
        r = -1;
    } else {
        static const char *const keys[] = { "t", "proto", "allowedDomains", "deniedDomains",
                                            NULL };
        uint64_t proto;
        if (!j_only(o, keys) || !j_str_is(j_get(o, "t"), "hello") ||
            !j_int(j_get(o, "proto"), DECIDER_PROTO, DECIDER_PROTO, &proto) ||
            !parse_list(j_get(o, "allowedDomains"), &out->allow, &out->nallow) ||
            !parse_list(j_get(o, "deniedDomains"), &out->deny, &out->ndeny)) {
            dv_hello_clear(out);
            *why = "bad hello";
            r = -1;
        }
    }
    arena_free(&j);
    return r;
}

/* ==== the req frame ========================================================= */

/* A JSON string as JSON.stringify writes it, from bytes read as latin1 (as
 * Node reads a request head: each byte is one character, so 0x80-0xff
 * become U+0080-U+00FF, two bytes in UTF-8). */
static void sb_json_latin1(struct sbuf *b, const char *s, size_t n)
{
    sb_add(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        size_t el;
        const char *two = c == '"'    ? "\\\""
                          : c == '\\' ? "\\\\"
                          : c == '\b'  ? "\\b"
                          : c == '\f'  ? "\\f"
                          : c == '\n'  ? "\\n"
                          : c == '\r'  ? "\\r"
                          : c == '\t'  ? "\\t"
                                       : NULL;
        if (two) {
            sb_add(b, two, 2);
            continue;
        }
        if (c < 0x20)
            el = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c);
        else
            el = put_utf8(esc, c);
        sb_add(b, esc, el);
    }
    sb_add(b, "\"", 1);
}

/* UTF-8 bytes of a latin1 text */
static size_t latin1_utf8_len(const char *s, size_t n)
{
    size_t k = n;
    for (size_t i = 0; i < n; i++)
        k += (unsigned char)s[i] >= 0x80;
    return k;
}

/* srt's validHeaderValue, on latin1 text: no C0 control but tab, no DEL,
 * no C1 control. */
static bool latin1_value_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && c != 0x09) || (c >= 0x7f && c <= 0x9f))
            return false;
    }
    return true;
}

static bool name_eq_ci(const char *a, size_t an, const char *b, size_t bn)
{
    return an == bn && strncasecmp(a, b, an) == 0;
}

/* The request-target as the client spelled it (srt's requestTargetAsSpelled):
 * origin form inside a tunnel; for plain HTTP the path and query of the
 * absolute URI. NULL when it has another shape: not "/" first, "//" or
 * "/\" first, or a space, control byte, DEL or "#" in it. */
static const char *spelled_target(const struct http_request *q, bool tls, size_t *len,
                                  bool *slash_prefix)
{
    const char *t = q->target;
    size_t n = q->target_len;
    *slash_prefix = false;
    if (!tls) {
        size_t skip = 0;
        if (n >= 7 && strncasecmp(t, "http://", 7) == 0)
            skip = 7;
        else if (n >= 8 && strncasecmp(t, "https://", 8) == 0)
            skip = 8;
        else
            return NULL;
        while (skip < n && t[skip] != '/' && t[skip] != '?' && t[skip] != '#')
            skip++;
        t += skip;
        n -= skip;
        if (n == 0 || t[0] == '?')
            *slash_prefix = true; /* "http://h" is "/", "http://h?q" is "/?q" */
    }
    if (!*slash_prefix) {
        if (n == 0 || t[0] != '/' || (n >= 2 && (t[1] == '/' || t[1] == '\\')))
            return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c <= 0x20 || c == 0x7f || c == '#')
            return NULL;
    }
    *len = n;
    return t;
}

int dv_req_frame(const struct dv_reqinfo *r, uint64_t id, char **out, size_t *outlen,
                 const char **why)
{
    const struct http_request *q = r->q;
    *out = NULL;
    /* header values in order, host apart; the frame groups them by name in
     * the order each name first appears */
    const char *host_header = NULL;
    size_t host_header_len = 0;
    size_t nhost = 0;
    for (size_t i = 0; i < q->nheaders; i++) {
        const struct http_header *h = &q->headers[i];
        for (size_t k = 0; k < h->name_len; k++)
            if (!is_tchar((unsigned char)h->name[k])) {
                *why = "request header the decider cannot be asked about";
                return 1;
            }
        if (h->name_len == 0 || !latin1_value_ok(h->value, h->value_len)) {
            *why = "request header the decider cannot be asked about";
            return 1;
        }
        if (name_eq_ci(h->name, h->name_len, "host", 4)) {
            nhost++;
            host_header = h->value;
            host_header_len = h->value_len;
        }
    }
    if (nhost > 1) {
        *why = "more than one Host header";
        return 1;
    }
    size_t entries = 0, bytes = 0;
    for (size_t i = 0; i < q->nheaders; i++) {
        const struct http_header *h = &q->headers[i];
        if (name_eq_ci(h->name, h->name_len, "host", 4))
            continue;
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = name_eq_ci(q->headers[k].name, q->headers[k].name_len, h->name, h->name_len);
        if (!seen)
            bytes += h->name_len;
        bytes += latin1_utf8_len(h->value, h->value_len);
        entries++;
    }
    if (entries > DECIDER_MAX_HEADER_VALUES || bytes > DECIDER_MAX_HEADER_BYTES) {
        *why = "request headers too large";
        return 1;
    }
    size_t tlen = 0;
    bool slash = false;
    const char *target = spelled_target(q, r->tls, &tlen, &slash);
    if (!target) {
        *why = "malformed request-target";
        return 1;
    }
    const char *qm = memchr(target, '?', tlen);
    size_t plen = qm ? (size_t)(qm - target) : tlen;
    const char *query = qm ? qm + 1 : NULL;
    size_t qlen = qm ? tlen - plen - 1 : 0;
    const char *sni = r->tls && r->sni && r->sni[0] ? r->sni : NULL;
    if (q->method_len == 0 || !r->target->host[0] || (plen == 0 && !slash) ||
        r->target->port == 0) {
        *why = "request the decider cannot be asked about";
        return 1;
    }
    if (strlen(r->target->host) > DECIDER_MAX_HOST_PATH ||
        (host_header && latin1_utf8_len(host_header, host_header_len) > DECIDER_MAX_HOST_PATH) ||
        (sni && strlen(sni) > DECIDER_MAX_HOST_PATH) ||
        latin1_utf8_len(target, plen) + slash > DECIDER_MAX_HOST_PATH) {
        *why = "request target too large";
        return 1;
    }

    struct sbuf b = { 0 };
    char num[48];
    snprintf(num, sizeof(num), "{\"t\":\"req\",\"id\":%llu,\"method\":", (unsigned long long)id);
    sb_str(&b, num);
    sb_json_latin1(&b, q->method, q->method_len);
    sb_str(&b, ",\"host\":");
    sb_json_latin1(&b, r->target->host, strlen(r->target->host));
    snprintf(num, sizeof(num), ",\"port\":%u", (unsigned)r->target->port);
    sb_str(&b, num);
    if (host_header) {
        sb_str(&b, ",\"hostHeader\":");
        sb_json_latin1(&b, host_header, host_header_len);
    }
    if (sni) {
        sb_str(&b, ",\"sni\":");
        sb_json_latin1(&b, sni, strlen(sni));
    }
    sb_str(&b, ",\"path\":");
    if (slash) {
        sb_str(&b, "\"/\"");
    } else {
        sb_json_latin1(&b, target, plen);
    }
    if (query && qlen) {
        sb_str(&b, ",\"query\":");
        sb_json_latin1(&b, query, qlen);
    }
    if (entries) {
        sb_str(&b, ",\"headers\":{");
        bool first = true;
        for (size_t i = 0; i < q->nheaders; i++) {
            const struct http_header *h = &q->headers[i];
            if (name_eq_ci(h->name, h->name_len, "host", 4))
                continue;
            bool seen = false;
            for (size_t k = 0; k < i && !seen; k++)
                seen = name_eq_ci(q->headers[k].name, q->headers[k].name_len, h->name,
                                  h->name_len);
            if (seen)
                continue;
            char lname[256];
            size_t ln = h->name_len < sizeof(lname) ? h->name_len : 0;
            if (!first)
                sb_add(&b, ",", 1);
            first = false;
            if (ln) {
                for (size_t k = 0; k < ln; k++)
                    lname[k] = (char)((h->name[k] >= 'A' && h->name[k] <= 'Z') ? h->name[k] + 32
                                                                               : h->name[k]);
                sb_json_latin1(&b, lname, ln);
            } else {
                /* a name longer than the buffer: lower-cased through a copy */
                char *tmp = malloc(h->name_len);
                if (!tmp) {
                    b.oom = true;
                    break;
                }
                for (size_t k = 0; k < h->name_len; k++)
                    tmp[k] = (char)((h->name[k] >= 'A' && h->name[k] <= 'Z') ? h->name[k] + 32
                                                                             : h->name[k]);
                sb_json_latin1(&b, tmp, h->name_len);
                free(tmp);
            }
            sb_str(&b, ":[");
            bool fv = true;
            for (size_t k = i; k < q->nheaders; k++) {
                const struct http_header *g = &q->headers[k];
                if (!name_eq_ci(g->name, g->name_len, h->name, h->name_len))
                    continue;
                if (!fv)
                    sb_add(&b, ",", 1);
                fv = false;
                sb_json_latin1(&b, g->value, g->value_len);
            }
            sb_str(&b, "]");
        }
        sb_str(&b, "}");
    }
    sb_str(&b, "}");
    if (b.oom) {
        free(b.p);
        return -1;
    }
    /* The whole frame, at the largest id, within what the decider reads. */
    char idtext[24];
    size_t idlen = (size_t)snprintf(idtext, sizeof(idtext), "%llu", (unsigned long long)id);
    if (b.n - idlen + 16 > DECIDER_MAX_FRAME) {
        free(b.p);
        *why = "request too large for the decider";
        return 1;
    }
    *out = b.p;
    *outlen = b.n;
    return 0;
}

/* ==== base64 ================================================================ */

static size_t base64_len(size_t n)
{
    return (n + 2) / 3 * 4;
}

static void base64_put(char *o, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        o[k++] = tab[v >> 18];
        o[k++] = tab[(v >> 12) & 63];
        o[k++] = tab[(v >> 6) & 63];
        o[k++] = tab[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        o[k++] = tab[v >> 18];
        o[k++] = tab[(v >> 12) & 63];
        o[k++] = '=';
        o[k++] = '=';
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        o[k++] = tab[v >> 18];
        o[k++] = tab[(v >> 12) & 63];
        o[k++] = tab[(v >> 6) & 63];
        o[k++] = '=';
    }
}

/* ==== the link ============================================================== */

/* Bytes written to the decider and not yet taken before it counts as gone:
 * every body frame the held budget allows at once (base64: four thirds),
 * and room for request frames besides (srt's MAX_QUEUED_BYTES). */
#define MAX_QUEUED ((size_t)DECIDER_MAX_HELD / 3 * 4 + (32u << 20))

enum dc_state {
    DC_IDLE,
    DC_ASKED,    /* req sent; waiting for the first verdict (timed) */
    DC_BODY,     /* need_body: reading the body (no timer; a deny may come) */
    DC_SHOWN,    /* body sent; waiting for the verdict (timed) */
    DC_ALLOWED,
    DC_DENIED,
};

/* ids the proxy gave up on: late verdicts for them are dropped. */
enum late_state { LATE_NONE, LATE_VERDICT, LATE_SHOWN };

struct dv_conn {
    struct decider *d;
    struct dv_conn *prev, *next; /* d->pending, while ASKED, BODY or SHOWN */
    struct dv_conn *wnext;       /* d->wakeq */
    bool queued;                 /* in d->wakeq */
    enum dc_state st;
    uint64_t id;
    uint64_t deadline;           /* uv_now() when the verdict is late; 0: untimed */
    void (*wake)(void *owner);
    void *owner;
    /* need_body */
    uint32_t max;
    bool body_checked;           /* the bodyless and budget checks are done */
    uint64_t reserved;           /* counted in d->held */
    struct http_chunked ck;      /* a chunked body, decoded so far */
    bool ck_done;                /* its last chunk was read */
    size_t raw_off;              /* its bytes consumed */
    char *body;                  /* its payload so far (at most max + 1 bytes) */
    size_t body_len;
    /* allowed */
    char **drops;                /* folded names the allow removes */
    size_t ndrops;
    char *lines;                 /* header lines it adds */
    size_t lines_len;
    size_t nset_values;          /* values set (a credential counts) */
    char host[256];              /* the destination (a credential's placement) */
    /* denied */
    int status;
    const char *code;
    char *reason;
    const char *rule;
};

struct late_slot {
    uint64_t id;
    uint8_t st;
};

struct decider {
    uv_loop_t *loop;
    int in_fd, out_fd;
    uv_poll_t *poll_in, *poll_out; /* the same handle for one fd */
    int want_in, want_out;
    uv_timer_t *timer;
    uv_idle_t *idle;
    int handles;
    bool freeing;
    unsigned timeout_ms;
    bool plaintext_header_set;
    void (*on_hello)(void *);
    void (*on_dead)(void *, const char *, bool);
    void *ud;

    bool got_hello;
    const char *dead;            /* why the link died (dead_buf), or NULL */
    char dead_buf[200];
    struct dv_hello hello;
    struct net_rules rules;

    unsigned char *in;           /* frames read, from in_off */
    size_t inlen, incap, in_off;
    char *out;                   /* frames to write, from out_off */
    size_t outlen, outcap, out_off;

    uint64_t last_id;
    uint64_t held;
    struct dv_conn *pending;
    struct dv_conn *wakeq, *wakeq_tail;
    struct late_slot late[DECIDER_ID_WINDOW];
};

static void io_update(struct decider *d);
static void timer_update(struct decider *d);
static void on_idle(uv_idle_t *h);

static void handle_closed(uv_handle_t *h)
{
    struct decider *d = h->data;
    free(h);
    if (--d->handles == 0 && d->freeing)
        free(d);
}

static void queue_wake(struct decider *d, struct dv_conn *dc)
{
    if (dc->queued || !dc->wake)
        return;
    dc->queued = true;
    dc->wnext = NULL;
    if (d->wakeq_tail)
        d->wakeq_tail->wnext = dc;
    else
        d->wakeq = dc;
    d->wakeq_tail = dc;
    if (d->idle)
        uv_idle_start(d->idle, on_idle);
}

static void unqueue_wake(struct decider *d, struct dv_conn *dc)
{
    if (!dc->queued)
        return;
    struct dv_conn *prev = NULL;
    for (struct dv_conn *x = d->wakeq; x; prev = x, x = x->wnext) {
        if (x != dc)
            continue;
        if (prev)
            prev->wnext = x->wnext;
        else
            d->wakeq = x->wnext;
        if (d->wakeq_tail == x)
            d->wakeq_tail = prev;
        break;
    }
    dc->queued = false;
    dc->wnext = NULL;
}

/* Wake-ups run from the loop, never inside the decider's own callbacks: a
 * woken connection may ask again, or close. */
static void on_idle(uv_idle_t *h)
{
    struct decider *d = h->data;
    while (d->wakeq) {
        struct dv_conn *dc = d->wakeq;
        d->wakeq = dc->wnext;
        if (!d->wakeq)
            d->wakeq_tail = NULL;
        dc->queued = false;
        dc->wnext = NULL;
        dc->wake(dc->owner);
    }
    uv_idle_stop(h);
}

static void pending_add(struct decider *d, struct dv_conn *dc)
{
    dc->prev = NULL;
    dc->next = d->pending;
    if (d->pending)
        d->pending->prev = dc;
    d->pending = dc;
}

static void pending_remove(struct decider *d, struct dv_conn *dc)
{
    if (dc->prev)
        dc->prev->next = dc->next;
    else if (d->pending == dc)
        d->pending = dc->next;
    if (dc->next)
        dc->next->prev = dc->prev;
    dc->prev = dc->next = NULL;
}

static void release_body(struct decider *d, struct dv_conn *dc)
{
    d->held -= dc->reserved;
    dc->reserved = 0;
    free(dc->body);
    dc->body = NULL;
    dc->body_len = 0;
}

static void set_late(struct decider *d, uint64_t id, enum late_state st)
{
    struct late_slot *s = &d->late[id % DECIDER_ID_WINDOW];
    s->id = id;
    s->st = (uint8_t)st;
}

static struct late_slot *find_late(struct decider *d, uint64_t id)
{
    struct late_slot *s = &d->late[id % DECIDER_ID_WINDOW];
    if (s->st == LATE_NONE || s->id != id || d->last_id - id >= DECIDER_ID_WINDOW)
        return NULL;
    return s;
}

static void deny_conn(struct decider *d, struct dv_conn *dc, int status, const char *code,
                      const char *rule, const char *prefix, const char *text)
{
    pending_remove(d, dc);
    release_body(d, dc);
    dc->deadline = 0;
    dc->st = DC_DENIED;
    dc->status = status;
    dc->code = code;
    dc->rule = rule;
    free(dc->reason);
    dc->reason = NULL;
    if (asprintf(&dc->reason, "%s%s", prefix, text) < 0)
        dc->reason = NULL;
    queue_wake(d, dc);
}

/* The link is dead: every pending request is refused (503), and on_dead
 * fires once. */
static void die(struct decider *d, const char *why, bool violation)
{
    if (d->dead)
        return;
    snprintf(d->dead_buf, sizeof(d->dead_buf), "%s", why);
    d->dead = d->dead_buf;
    while (d->pending)
        deny_conn(d, d->pending, 503, "decider_unavailable", NULL, "request decider: ",
                  d->dead);
    d->outlen = d->out_off = 0;
    io_update(d);
    timer_update(d);
    if (d->on_dead)
        d->on_dead(d->ud, d->dead, violation);
}

static void send_bytes(struct decider *d, const char *p, size_t n)
{
    if (d->dead)
        return;
    if (d->out_off > 0 && d->out_off == d->outlen)
        d->out_off = d->outlen = 0;
    if (d->outlen + n > d->outcap) {
        size_t cap = d->outcap ? d->outcap : 4096;
        while (cap < d->outlen + n)
            cap *= 2;
        char *np = realloc(d->out, cap);
        if (!np) {
            die(d, "out of memory", true);
            return;
        }
        d->out = np;
        d->outcap = cap;
    }
    memcpy(d->out + d->outlen, p, n);
    d->outlen += n;
    if (d->outlen - d->out_off > MAX_QUEUED) {
        char why[80];
        snprintf(why, sizeof(why), "not reading: %zu bytes queued", d->outlen - d->out_off);
        die(d, why, true);
        return;
    }
    io_update(d);
}

static void send_frame(struct decider *d, const char *payload, size_t n)
{
    unsigned char len[4] = { (unsigned char)(n >> 24), (unsigned char)(n >> 16),
                             (unsigned char)(n >> 8), (unsigned char)n };
    send_bytes(d, (const char *)len, 4);
    send_bytes(d, payload, n);
}

/* {"t":"body","id":N,"data":"<base64>"} (",\"cut\":true" before the brace
 * when the body went on past max), built in one buffer. */
static void send_body(struct decider *d, uint64_t id, const unsigned char *data, size_t n,
                      bool cut)
{
    char head[64];
    int hl = snprintf(head, sizeof(head), "{\"t\":\"body\",\"id\":%llu,\"data\":\"",
                      (unsigned long long)id);
    const char *tail = cut ? "\",\"cut\":true}" : "\"}";
    size_t tl = strlen(tail);
    size_t total = (size_t)hl + base64_len(n) + tl;
    char *f = malloc(4 + total + 1);
    if (!f) {
        die(d, "out of memory", true);
        return;
    }
    f[0] = (char)(total >> 24);
    f[1] = (char)(total >> 16);
    f[2] = (char)(total >> 8);
    f[3] = (char)total;
    memcpy(f + 4, head, (size_t)hl + 1); /* its NUL goes under the base64 */
    base64_put(f + 4 + hl, data, n);
    memcpy(f + 4 + hl + base64_len(n), tail, tl + 1);
    send_bytes(d, f, 4 + total);
    free(f);
}

static struct dv_conn *find_pending(struct decider *d, uint64_t id)
{
    for (struct dv_conn *x = d->pending; x; x = x->next)
        if (x->id == id)
            return x;
    return NULL;
}

/* An allow for dc: what it removes and what it adds (srt's toDecision and
 * applyHeaderEdits). */
static int take_allow(struct dv_conn *dc, const struct dv_verdict *v, const char *host)
{
    size_t nd = v->nremoves + v->nsets + (v->cred ? 4 : 0);
    dc->drops = calloc(nd + 1, sizeof(*dc->drops));
    if (!dc->drops)
        return -1;
    for (size_t i = 0; i < v->nremoves; i++) {
        if (!(dc->drops[dc->ndrops] = malloc(strlen(v->removes[i]) + 1)))
            return -1;
        fold(dc->drops[dc->ndrops++], v->removes[i], strlen(v->removes[i]));
    }
    for (size_t i = 0; i < v->nsets; i++) {
        /* a name set to no value is no edit at all (srt: its values are
         * what is applied, and there are none) */
        if (v->sets[i].nvalues == 0)
            continue;
        if (!(dc->drops[dc->ndrops] = malloc(strlen(v->sets[i].name) + 1)))
            return -1;
        fold(dc->drops[dc->ndrops++], v->sets[i].name, strlen(v->sets[i].name));
    }
    for (size_t i = 0; v->cred && cred_headers[i]; i++)
        if (!(dc->drops[dc->ndrops++] = strdup(cred_headers[i])))
            return -1;
    struct sbuf b = { 0 };
    /* Sets with the same folded name are one header, under the first
     * spelling (x-a and x_a are both set as x-a). */
    for (size_t i = 0; i < v->nsets; i++) {
        char fi[256];
        size_t ni = strlen(v->sets[i].name);
        if (ni >= sizeof(fi))
            continue;
        fold(fi, v->sets[i].name, ni);
        bool earlier = false;
        for (size_t k = 0; k < i && !earlier; k++) {
            char fk[256];
            size_t nk = strlen(v->sets[k].name);
            if (nk < sizeof(fk)) {
                fold(fk, v->sets[k].name, nk);
                earlier = strcmp(fi, fk) == 0;
            }
        }
        if (earlier)
            continue;
        for (size_t k = i; k < v->nsets; k++) {
            char fk[256];
            size_t nk = strlen(v->sets[k].name);
            if (nk >= sizeof(fk))
                continue;
            fold(fk, v->sets[k].name, nk);
            if (strcmp(fi, fk) != 0)
                continue;
            for (size_t x = 0; x < v->sets[k].nvalues; x++) {
                sb_str(&b, v->sets[i].name);
                sb_str(&b, ": ");
                sb_str(&b, v->sets[k].values[x]);
                sb_str(&b, "\r\n");
                dc->nset_values++;
            }
        }
    }
    if (v->cred) {
        /* Where a credential goes: Bearer, except that class "github" toward
         * github.com (its git transport) is HTTP Basic with the user
         * "x-access-token" (srt's default placement). */
        sb_str(&b, "authorization: ");
        if (v->cred_len == 6 && memcmp(v->cred, "github", 6) == 0 &&
            strcmp(host, "github.com") == 0) {
            size_t cl = strlen(v->credential);
            size_t un = strlen("x-access-token:") + cl;
            char *u = malloc(un + 1);
            char *e = malloc(base64_len(un) + 1);
            if (u && e) {
                snprintf(u, un + 1, "x-access-token:%s", v->credential);
                base64_put(e, (const unsigned char *)u, un);
                e[base64_len(un)] = '\0';
                sb_str(&b, "Basic ");
                sb_str(&b, e);
                explicit_bzero(u, un);
                explicit_bzero(e, base64_len(un));
            } else {
                b.oom = true;
            }
            free(u);
            free(e);
        } else {
            sb_str(&b, "Bearer ");
            sb_str(&b, v->credential);
        }
        sb_str(&b, "\r\n");
        dc->nset_values++;
    }
    if (b.oom) {
        if (b.p)
            explicit_bzero(b.p, b.n);
        free(b.p);
        return -1;
    }
    dc->lines = b.p;
    dc->lines_len = b.n;
    return 0;
}

static void clear_allow(struct dv_conn *dc)
{
    for (size_t i = 0; i < dc->ndrops; i++)
        free(dc->drops[i]);
    free(dc->drops);
    dc->drops = NULL;
    dc->ndrops = 0;
    if (dc->lines)
        explicit_bzero(dc->lines, dc->lines_len); /* it may hold a credential */
    free(dc->lines);
    dc->lines = NULL;
    dc->lines_len = 0;
    dc->nset_values = 0;
}

/* A verdict arrived for a request waiting for one. */
static void deliver(struct decider *d, struct dv_conn *dc, struct dv_verdict *v)
{
    if ((dc->st == DC_BODY && v->action != DV_DENY) ||
        (dc->st == DC_SHOWN && v->action == DV_NEED_BODY)) {
        die(d, dc->st == DC_BODY ? "a verdict other than deny while the body was read"
                                 : "a second need_body", true);
        /* (srt words this request's refusal apart from the link's end) */
        free(dc->reason);
        dc->reason = strdup("request decider: decider broke the protocol");
        return;
    }
    if (v->action == DV_DENY) {
        deny_conn(d, dc, v->status, "decider", "decider", "",
                  v->reason ? v->reason : "denied by sandbox policy");
        return;
    }
    if (v->action == DV_NEED_BODY) {
        dc->st = DC_BODY;
        dc->max = v->max;
        dc->deadline = 0;
        dc->body_checked = false;
        memset(&dc->ck, 0, sizeof(dc->ck));
        dc->ck_done = false;
        dc->raw_off = 0;
        timer_update(d);
        queue_wake(d, dc);
        return;
    }
    /* allow: the host it goes to decides a credential's placement; the
     * proxy passes it with the request (the conn keeps it in its slot). */
    pending_remove(d, dc);
    release_body(d, dc);
    dc->deadline = 0;
    clear_allow(dc);
    if (take_allow(dc, v, dc->host) < 0) {
        clear_allow(dc);
        deny_conn(d, dc, 503, "decider_unavailable", NULL, "request decider: ",
                  "out of memory");
        return;
    }
    dc->st = DC_ALLOWED;
    queue_wake(d, dc);
}

static void on_frame(struct decider *d, const unsigned char *p, size_t n)
{
    const char *why = NULL;
    if (!d->got_hello) {
        struct dv_hello h;
        if (dv_parse_hello(p, n, &h, &why) < 0) {
            die(d, why, true);
            return;
        }
        d->hello = h;
        d->rules.allow = h.allow;
        d->rules.nallow = h.nallow;
        d->rules.deny = h.deny;
        d->rules.ndeny = h.ndeny;
        d->rules.ndefault = 0;
        d->got_hello = true;
        if (d->on_hello)
            d->on_hello(d->ud);
        return;
    }
    struct dv_verdict v;
    if (dv_parse_verdict(p, n, &v, &why) < 0) {
        die(d, why, true);
        return;
    }
    struct dv_conn *dc = find_pending(d, v.id);
    if (dc) {
        deliver(d, dc, &v);
        dv_verdict_clear(&v);
        return;
    }
    struct late_slot *l = find_late(d, v.id);
    if (l) {
        if (v.action == DV_NEED_BODY && l->st != LATE_VERDICT)
            die(d, "need_body where none may come", true);
        else if (v.action != DV_NEED_BODY)
            l->st = LATE_NONE;
        dv_verdict_clear(&v);
        return;
    }
    uint64_t id = v.id;
    dv_verdict_clear(&v);
    if (id < d->last_id && d->last_id - id >= DECIDER_ID_WINDOW)
        return; /* forgotten: dropped */
    char msg[96];
    snprintf(msg, sizeof(msg), "verdict for id %llu, which nothing waits on",
             (unsigned long long)id);
    die(d, msg, true);
}

static void read_frames(struct decider *d)
{
    while (!d->dead && d->inlen - d->in_off >= 4) {
        const unsigned char *h = d->in + d->in_off;
        size_t n = (size_t)h[0] << 24 | (size_t)h[1] << 16 | (size_t)h[2] << 8 | h[3];
        if (n > DECIDER_MAX_FRAME) {
            die(d, "oversized frame", true);
            return;
        }
        if (d->inlen - d->in_off < 4 + n)
            break;
        d->in_off += 4 + n;
        on_frame(d, h + 4, n);
    }
    /* Only a frame still coming stays: at most 1 MiB and its length. */
    if (d->in_off > 0) {
        memmove(d->in, d->in + d->in_off, d->inlen - d->in_off);
        d->inlen -= d->in_off;
        d->in_off = 0;
    }
}

static void do_read(struct decider *d)
{
    for (int rounds = 0; rounds < 16 && !d->dead; rounds++) {
        if (d->incap - d->inlen < 65536) {
            size_t cap = d->incap ? d->incap * 2 : 131072;
            while (cap - d->inlen < 65536)
                cap *= 2;
            unsigned char *np = realloc(d->in, cap);
            if (!np) {
                die(d, "out of memory", true);
                return;
            }
            d->in = np;
            d->incap = cap;
        }
        ssize_t r = read(d->in_fd, d->in + d->inlen, d->incap - d->inlen);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            char why[160];
            snprintf(why, sizeof(why), "read error: %s", strerror(errno));
            die(d, why, true);
            return;
        }
        if (r == 0) {
            die(d, "decider closed the stream", false);
            return;
        }
        d->inlen += (size_t)r;
        read_frames(d);
    }
}

static void do_write(struct decider *d)
{
    while (!d->dead && d->out_off < d->outlen) {
        ssize_t w = write(d->out_fd, d->out + d->out_off, d->outlen - d->out_off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return;
            char why[160];
            snprintf(why, sizeof(why), "write error: %s", strerror(errno));
            die(d, why, true);
            return;
        }
        d->out_off += (size_t)w;
    }
    if (d->out_off == d->outlen) {
        d->out_off = d->outlen = 0;
        if (d->outcap > (1u << 20)) {
            free(d->out);
            d->out = NULL;
            d->outcap = 0;
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct decider *d = p->data;
    if (status < 0)
        events = (p == d->poll_in ? UV_READABLE : 0) | (p == d->poll_out ? UV_WRITABLE : 0);
    if ((events & UV_WRITABLE) && p == d->poll_out)
        do_write(d);
    if ((events & (UV_READABLE | UV_DISCONNECT)) && p == d->poll_in)
        do_read(d);
    io_update(d);
}

static void io_update(struct decider *d)
{
    if (d->freeing)
        return;
    int win = d->dead ? 0 : UV_READABLE;
    int wout = !d->dead && d->out_off < d->outlen ? UV_WRITABLE : 0;
    if (d->poll_in == d->poll_out) {
        int w = win | wout;
        if (d->poll_in && w != d->want_in) {
            d->want_in = w;
            if (w)
                uv_poll_start(d->poll_in, w, on_poll);
            else
                uv_poll_stop(d->poll_in);
        }
        return;
    }
    if (d->poll_in && win != d->want_in) {
        d->want_in = win;
        if (win)
            uv_poll_start(d->poll_in, win, on_poll);
        else
            uv_poll_stop(d->poll_in);
    }
    if (d->poll_out && wout != d->want_out) {
        d->want_out = wout;
        if (wout)
            uv_poll_start(d->poll_out, wout, on_poll);
        else
            uv_poll_stop(d->poll_out);
    }
}

static void on_timer(uv_timer_t *t)
{
    struct decider *d = t->data;
    uint64_t now = uv_now(d->loop);
    for (struct dv_conn *x = d->pending, *next; x; x = next) {
        next = x->next;
        if (!x->deadline || x->deadline > now)
            continue;
        set_late(d, x->id, x->st == DC_ASKED ? LATE_VERDICT : LATE_SHOWN);
        deny_conn(d, x, 503, "decider_unavailable", NULL, "request decider: ",
                  "decider timed out");
    }
    timer_update(d);
}

static void timer_update(struct decider *d)
{
    if (!d->timer || d->freeing)
        return;
    uint64_t first = 0;
    for (struct dv_conn *x = d->pending; x; x = x->next)
        if (x->deadline && (!first || x->deadline < first))
            first = x->deadline;
    if (!first) {
        uv_timer_stop(d->timer);
        return;
    }
    uint64_t now = uv_now(d->loop);
    uv_timer_start(d->timer, on_timer, first > now ? first - now : 0, 0);
}

int decider_new(const struct decider_opts *o, struct decider **out, struct cordon_error *err)
{
    struct decider *d = calloc(1, sizeof(*d));
    if (!d)
        return cordon_err_set(err, ENOMEM, "out of memory");
    d->loop = o->loop;
    d->in_fd = o->in_fd;
    d->out_fd = o->out_fd;
    d->timeout_ms = o->timeout_ms ? o->timeout_ms : DECIDER_TIMEOUT_MS;
    d->plaintext_header_set = o->plaintext_header_set;
    d->on_hello = o->on_hello;
    d->on_dead = o->on_dead;
    d->ud = o->ud;
    int fds[2] = { o->in_fd, o->out_fd };
    for (int i = 0; i < 2; i++) {
        int fl = fcntl(fds[i], F_GETFL);
        if (fl < 0 || fcntl(fds[i], F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            int e = errno;
            free(d);
            return cordon_err_sys(err, e, "decider file descriptor %d", fds[i]);
        }
    }
    d->poll_in = malloc(sizeof(*d->poll_in));
    d->poll_out = o->in_fd == o->out_fd ? d->poll_in : malloc(sizeof(*d->poll_out));
    d->timer = malloc(sizeof(*d->timer));
    d->idle = malloc(sizeof(*d->idle));
    if (!d->poll_in || !d->poll_out || !d->timer || !d->idle) {
        if (d->poll_out != d->poll_in)
            free(d->poll_out);
        free(d->poll_in);
        free(d->timer);
        free(d->idle);
        free(d);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    int r = uv_poll_init(d->loop, d->poll_in, o->in_fd);
    if (r == 0 && d->poll_out != d->poll_in) {
        r = uv_poll_init(d->loop, d->poll_out, o->out_fd);
        if (r < 0) {
            uv_close((uv_handle_t *)d->poll_in, NULL);
            /* the handle is freed below once closed: run the loop briefly */
        }
    }
    if (r < 0) {
        if (d->poll_out != d->poll_in)
            free(d->poll_out);
        /* poll_in may be closing: leak it rather than free an active handle */
        free(d->timer);
        free(d->idle);
        free(d);
        return cordon_err_set(err, EINVAL, "the decider's file descriptors cannot be watched "
                                           "(%s): a pipe or a socket is needed", uv_strerror(r));
    }
    d->poll_in->data = d;
    d->poll_out->data = d;
    uv_timer_init(d->loop, d->timer);
    d->timer->data = d;
    uv_idle_init(d->loop, d->idle);
    d->idle->data = d;
    d->handles = (d->poll_out != d->poll_in ? 2 : 1) + 2;
    static const char hello[] = "{\"t\":\"hello\",\"proto\":1}";
    send_frame(d, hello, sizeof(hello) - 1);
    io_update(d);
    *out = d;
    return 0;
}

void decider_stop(struct decider *d)
{
    d->on_dead = NULL;
    die(d, "closed", false);
}

void decider_free(struct decider *d)
{
    if (!d)
        return;
    decider_stop(d);
    /* what is still queued for the conns is theirs to drop */
    while (d->wakeq)
        unqueue_wake(d, d->wakeq);
    d->freeing = true;
    uv_poll_stop(d->poll_in);
    uv_close((uv_handle_t *)d->poll_in, handle_closed);
    if (d->poll_out != d->poll_in) {
        uv_poll_stop(d->poll_out);
        uv_close((uv_handle_t *)d->poll_out, handle_closed);
    }
    uv_timer_stop(d->timer);
    uv_close((uv_handle_t *)d->timer, handle_closed);
    uv_idle_stop(d->idle);
    uv_close((uv_handle_t *)d->idle, handle_closed);
    close(d->in_fd);
    if (d->out_fd != d->in_fd)
        close(d->out_fd);
    free(d->in);
    free(d->out);
    dv_hello_clear(&d->hello);
    /* conns that still hold a dv_conn keep a pointer to d: they are freed
     * first (the proxy before the decider). */
}

const struct net_rules *decider_rules(const struct decider *d)
{
    return &d->rules;
}

struct net_verdict decider_host(const struct decider *d, const struct net_target *t)
{
    for (size_t i = 0; i < d->hello.ndeny; i++)
        if (dv_entry_match(&d->hello.deny[i], t))
            return (struct net_verdict){ .allow = false, .rule = &d->hello.deny[i],
                                         .reason = "host is on the deny list" };
    for (size_t i = 0; i < d->hello.nallow; i++)
        if (dv_entry_match(&d->hello.allow[i], t))
            return (struct net_verdict){ .allow = true, .rule = &d->hello.allow[i] };
    return (struct net_verdict){ .allow = false, .rule = NULL,
                                 .reason = "host is not on the allow list" };
}

bool decider_host_ascii(const char *host, bool ipv6)
{
    if (ipv6)
        return true; /* the parser took it as an IPv6 literal in brackets */
    size_t n = strlen(host);
    if (is_ipv4(host, n))
        return true;
    if (n && host[n - 1] == '.')
        n--;
    if (n == 0)
        return false;
    for (size_t i = 0, st = 0; i <= n; i++) {
        if (i == n || host[i] == '.') {
            if (i == st)
                return false;
            st = i + 1;
            continue;
        }
        char c = host[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-'))
            return false;
    }
    return true;
}

int decider_loopback_name(const struct net_target *t, int family, const uint8_t *addr,
                          const char **why)
{
    if (t->kind != HOST_NAME)
        return -1;
    size_t n = strlen(t->host);
    bool lo = strcmp(t->host, "localhost") == 0 ||
              (n > 10 && strcmp(t->host + n - 10, ".localhost") == 0);
    if (!lo)
        return -1;
    static const uint8_t v6lo[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
    if ((family == 4 && addr[0] == 127) || (family == 6 && memcmp(addr, v6lo, 16) == 0))
        return 0;
    *why = "a non-loopback address";
    return 1;
}

/* ==== a request ============================================================= */

static const char *const bodyless_methods[] = { "GET", "HEAD", "OPTIONS", NULL };

static bool method_is(const struct http_request *q, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (q->method_len == strlen(list[i]) && memcmp(q->method, list[i], q->method_len) == 0)
            return true;
    return false;
}

/* srt's hostMismatch: why the Host header or the server name does not name
 * the destination, or NULL. A name compares case-insensitively and
 * exactly (no canonical form: "Example.com." names another host); the port
 * must be the destination's, or absent when that is the scheme's default. */
static const char *host_mismatch(const struct dv_reqinfo *r)
{
    const struct net_target *t = r->target;
    if (r->tls && r->sni && r->sni[0] && strcasecmp(r->sni, t->host) != 0)
        return "TLS server name does not match the request target";
    const struct http_header *h = r->q->host_header;
    if (!h)
        return NULL;
    const char *v = h->value;
    size_t n = h->value_len;
    const char *host = v, *port = NULL;
    size_t hn = n, pn = 0;
    const char *bad = "Host header does not match the request target";
    if (n && v[0] == '[') {
        const char *end = memchr(v, ']', n);
        if (!end)
            return bad;
        host = v + 1;
        hn = (size_t)(end - v) - 1;
        char buf[INET6_ADDRSTRLEN + 1];
        uint8_t a[16];
        if (hn >= sizeof(buf))
            return bad;
        memcpy(buf, host, hn);
        buf[hn] = '\0';
        if (inet_pton(AF_INET6, buf, a) != 1)
            return bad;
        size_t rest = n - (size_t)(end - v) - 1;
        if (rest) {
            if (end[1] != ':')
                return bad;
            port = end + 2;
            pn = rest - 1;
        }
    } else {
        const char *c = memchr(v, ':', n);
        if (c) {
            hn = (size_t)(c - v);
            port = c + 1;
            pn = n - hn - 1;
        }
        if (memchr(host, '[', hn) || memchr(host, ']', hn))
            return bad;
    }
    if (port && (pn == 0 || memchr(port, ':', pn) || memchr(port, '[', pn) ||
                 memchr(port, ']', pn)))
        return bad;
    if (hn != strlen(t->host) || strncasecmp(host, t->host, hn) != 0)
        return bad;
    uint16_t def = r->tls ? 443 : 80;
    if (!port)
        return t->port == def ? NULL : bad;
    char want[8];
    int wl = snprintf(want, sizeof(want), "%u", (unsigned)t->port);
    return (size_t)wl == pn && memcmp(port, want, pn) == 0 ? NULL : bad;
}

static struct dv_conn *conn_for(struct decider *d, struct dv_conn **slot)
{
    if (!*slot) {
        *slot = calloc(1, sizeof(**slot));
        if (*slot)
            (*slot)->d = d;
    }
    return *slot;
}

/* The refusal dc holds (DC_DENIED), for the proxy to answer now. */
static enum dv_result take_denial(struct decider *d, struct dv_conn *dc, struct dv_answer *ans)
{
    ans->status = dc->status;
    ans->code = dc->code;
    ans->reason = dc->reason ? dc->reason : "request decider: out of memory";
    ans->rule = dc->rule;
    ans->cap = 0;
    dc->st = DC_IDLE;
    unqueue_wake(d, dc);
    return DV_REFUSE;
}

static enum dv_result refuse(struct dv_answer *ans, int status, const char *code,
                             const char *reason)
{
    ans->status = status;
    ans->code = code;
    ans->reason = reason;
    ans->rule = NULL;
    ans->cap = 0;
    return DV_REFUSE;
}

struct chunk_sink {
    struct dv_conn *dc;
    size_t want;    /* payload bytes to keep: max + 1 */
    bool any;       /* a payload byte was seen */
    bool oom;
};

static int chunk_data(void *ud, const char *p, size_t n)
{
    struct chunk_sink *s = ud;
    if (n)
        s->any = true;
    size_t room = s->want > s->dc->body_len ? s->want - s->dc->body_len : 0;
    if (n > room)
        n = room;
    if (!n)
        return 0;
    char *nb = realloc(s->dc->body, s->dc->body_len + n);
    if (!nb) {
        s->oom = true;
        return -1;
    }
    memcpy(nb + s->dc->body_len, p, n);
    s->dc->body = nb;
    s->dc->body_len += n;
    return 0;
}

/* Largest raw size of a chunked body read for a decider's need_body (its
 * framing included); past it, what was decoded is shown, cut. */
static size_t chunked_raw_limit(uint32_t max)
{
    return 2 * (size_t)max + 65536;
}

/* DC_BODY: check, reserve, and read the body (srt: the bodyless-method
 * probe, the held budget, readUpTo). Returns DV_WAIT while more is needed;
 * sends the body frame and returns DV_WAIT when it is complete. */
static enum dv_result read_body(struct decider *d, struct dv_conn *dc,
                                const struct dv_reqinfo *r, size_t headlen, size_t avail,
                                bool eof, struct dv_answer *ans)
{
    const struct http_request *q = r->q;
    const char *body = r->head + headlen;
    bool bodyless = method_is(q, bodyless_methods);
    bool declared = q->framing != HTTP_BODY_NONE ||
                    http_find(q->headers, q->nheaders, "content-length") != NULL;
    if (!dc->body_checked) {
        if (bodyless && declared && q->framing == HTTP_BODY_LENGTH && q->content_length > 0) {
            set_late(d, dc->id, LATE_SHOWN);
            pending_remove(d, dc);
            dc->st = DC_IDLE;
            ans->rule = NULL;
            return refuse(ans, 403, "bodyless_method_body",
                          "the decider asked to see the body of a request whose method "
                          "normally has none, and it has one");
        }
        uint64_t want;
        if (bodyless || q->framing == HTTP_BODY_NONE)
            want = bodyless ? 0 : dc->max; /* srt: a body stream, of unknown length */
        else if (q->framing == HTTP_BODY_LENGTH)
            want = q->content_length < dc->max ? q->content_length : dc->max;
        else
            want = dc->max;
        if (d->held + want > DECIDER_MAX_HELD) {
            set_late(d, dc->id, LATE_SHOWN);
            pending_remove(d, dc);
            dc->st = DC_IDLE;
            return refuse(ans, 503, "decider_unavailable",
                          "request decider: too many request bodies held for inspection");
        }
        d->held += want;
        dc->reserved = want;
        dc->body_checked = true;
        ans->send_continue = q->expect_continue;
    }
    const unsigned char *data = NULL;
    size_t n = 0;
    bool cut = false;
    if (q->framing == HTTP_BODY_LENGTH && !bodyless) {
        size_t need = q->content_length < dc->max ? (size_t)q->content_length : dc->max;
        if (avail < need) {
            if (eof)
                goto ended;
            ans->cap = headlen + need;
            return DV_WAIT;
        }
        data = (const unsigned char *)body;
        n = need;
        cut = q->content_length > dc->max;
    } else if (q->framing == HTTP_BODY_CHUNKED) {
        struct chunk_sink s = { dc, bodyless ? 1 : (size_t)dc->max + 1, false, false };
        if (dc->raw_off < avail && !dc->ck_done) {
            bool done = false;
            long k = http_chunked_decode(&dc->ck, body + dc->raw_off, avail - dc->raw_off, &done,
                                         chunk_data, &s);
            if (k < 0) {
                if (s.oom)
                    return refuse(ans, 503, "decider_unavailable",
                                  "request decider: out of memory");
                return refuse(ans, 400, "bad_request", "malformed chunked body");
            }
            dc->raw_off += (size_t)k;
            dc->ck_done = done;
        }
        if (bodyless) {
            if (dc->body_len > 0) {
                set_late(d, dc->id, LATE_SHOWN);
                pending_remove(d, dc);
                release_body(d, dc);
                dc->st = DC_IDLE;
                return refuse(ans, 403, "bodyless_method_body",
                              "the decider asked to see the body of a request whose method "
                              "normally has none, and it has one");
            }
            if (!dc->ck_done) {
                if (eof)
                    goto ended;
                ans->cap = headlen + dc->raw_off + 65536;
                return DV_WAIT;
            }
            n = 0; /* an empty body after all */
        } else {
            bool complete = dc->ck_done;
            if (!complete && dc->body_len <= dc->max && dc->raw_off < chunked_raw_limit(dc->max)) {
                if (eof)
                    goto ended;
                size_t cap = headlen + dc->raw_off + 65536;
                if (cap > headlen + chunked_raw_limit(dc->max))
                    cap = headlen + chunked_raw_limit(dc->max);
                ans->cap = cap;
                return DV_WAIT;
            }
            data = (const unsigned char *)dc->body;
            n = dc->body_len > dc->max ? dc->max : dc->body_len;
            cut = !complete;
        }
    }
    /* else: no body (a bodyless method, or no framing): shown empty */
    send_body(d, dc->id, data ? data : (const unsigned char *)"", n, cut);
    free(dc->body);
    dc->body = NULL;
    dc->body_len = 0;
    if (dc->st == DC_DENIED) /* send_body killed the link (its queue was full) */
        return take_denial(d, dc, ans);
    dc->st = DC_SHOWN;
    dc->deadline = uv_now(d->loop) + d->timeout_ms;
    timer_update(d);
    ans->cap = 0;
    return DV_WAIT;
ended:
    set_late(d, dc->id, LATE_SHOWN);
    pending_remove(d, dc);
    release_body(d, dc);
    dc->st = DC_IDLE;
    return refuse(ans, 400, "bad_request", "the request body ended early");
}

enum dv_result decider_request(struct decider *d, struct dv_conn **slot,
                               const struct dv_reqinfo *r, size_t headlen, size_t avail,
                               bool eof, void (*wake)(void *owner), void *owner,
                               struct dv_answer *ans)
{
    memset(ans, 0, sizeof(*ans));
    struct dv_conn *dc = conn_for(d, slot);
    if (!dc)
        return refuse(ans, 503, "decider_unavailable", "request decider: out of memory");
    dc->wake = wake;
    dc->owner = owner;
    switch (dc->st) {
    case DC_ASKED:
    case DC_SHOWN:
        return DV_WAIT;
    case DC_BODY:
        return read_body(d, dc, r, headlen, avail, eof, ans);
    case DC_DENIED:
        return take_denial(d, dc, ans);
    case DC_ALLOWED:
        /* An allow that sets headers cannot be applied to cleartext unless
         * allowed to (--plaintext-header-set): forwarding without them
         * would fail open, and the decider cannot learn of the drop. */
        if (!r->tls && dc->nset_values > 0 && !d->plaintext_header_set) {
            clear_allow(dc);
            dc->st = DC_IDLE;
            return refuse(ans, 403, "plaintext_header_set",
                          "the allow decision sets headers, and headers are not set on "
                          "plain-HTTP requests unless plaintext header sets are enabled; "
                          "nothing was forwarded");
        }
        ans->rule = "decider";
        return DV_GO;
    case DC_IDLE:
        break;
    }

    /* A new request: what srt refuses before asking, in its order. */
    size_t tlen;
    bool slash;
    if (!spelled_target(r->q, r->tls, &tlen, &slash))
        return refuse(ans, 400, "bad_request", "malformed request-target");
    const char *mis = host_mismatch(r);
    if (mis)
        return refuse(ans, 421, "misdirected", mis);
    if ((r->q->method_len == 5 && strncasecmp(r->q->method, "TRACE", 5) == 0) ||
        (r->q->method_len == 5 && strncasecmp(r->q->method, "TRACK", 5) == 0)) {
        free(dc->reason);
        if (asprintf(&dc->reason, "the %.*s method is not forwarded", (int)r->q->method_len,
                     r->q->method) < 0)
            dc->reason = NULL;
        return refuse(ans, 405, "method_refused",
                      dc->reason ? dc->reason : "the method is not forwarded");
    }
    if (d->dead)
        return refuse(ans, 503, "decider_unavailable", "request decider unavailable");
    if (d->last_id + 1 > DECIDER_MAX_ID) {
        die(d, "request ids exhausted", true);
        return refuse(ans, 503, "decider_unavailable", "request decider unavailable");
    }
    char *frame = NULL;
    size_t flen = 0;
    const char *why = NULL;
    int fr = dv_req_frame(r, d->last_id + 1, &frame, &flen, &why);
    if (fr > 0)
        return refuse(ans, 400, "bad_request", why);
    if (fr < 0)
        return refuse(ans, 503, "decider_unavailable", "request decider: out of memory");
    dc->id = ++d->last_id;
    snprintf(dc->host, sizeof(dc->host), "%s", r->target->host);
    dc->st = DC_ASKED;
    dc->deadline = uv_now(d->loop) + d->timeout_ms;
    pending_add(d, dc);
    send_frame(d, frame, flen);
    free(frame);
    timer_update(d);
    if (dc->st == DC_DENIED) /* the send killed the link */
        return take_denial(d, dc, ans);
    return DV_WAIT;
}

bool decider_drops_header(const struct dv_conn *dc, const char *name, size_t len)
{
    if (!dc || dc->st != DC_ALLOWED)
        return false;
    char f[256];
    if (len >= sizeof(f))
        return false;
    fold(f, name, len);
    for (size_t i = 0; i < dc->ndrops; i++)
        if (strcmp(dc->drops[i], f) == 0)
            return true;
    return false;
}

const char *decider_set_lines(const struct dv_conn *dc, size_t *len)
{
    if (!dc || dc->st != DC_ALLOWED || !dc->lines) {
        *len = 0;
        return "";
    }
    *len = dc->lines_len;
    return dc->lines;
}

bool decider_request_done(struct dv_conn *dc)
{
    if (!dc || dc->st != DC_ALLOWED)
        return false;
    clear_allow(dc);
    dc->st = DC_IDLE;
    return true;
}

void decider_conn_free(struct dv_conn *dc)
{
    if (!dc)
        return;
    struct decider *d = dc->d;
    if (dc->st == DC_ASKED || dc->st == DC_BODY || dc->st == DC_SHOWN) {
        if (!d->dead)
            set_late(d, dc->id, dc->st == DC_ASKED ? LATE_VERDICT : LATE_SHOWN);
        pending_remove(d, dc);
        release_body(d, dc);
        timer_update(d);
    }
    unqueue_wake(d, dc);
    clear_allow(dc);
    free(dc->body);
    free(dc->reason);
    free(dc);
}

const char *decider_deny_code(const char *errtag)
{
    static const struct {
        const char *tag, *code;
    } map[] = {
        { "blocked-by-allowlist", "host_not_allowed" },
        { "blocked-by-denylist", "host_not_allowed" },
        { "blocked-port", "host_not_allowed" },
        { "blocked-address", "address_not_allowed" },
        { "opaque-tunnel", "opaque_tunnel" },
        { "too-many-tunnels", "too_many_tunnels" },
        { "bad-request", "bad_request" },
        { "ambiguous-target", "bad_request" },
        { "host-mismatch", "misdirected" },
    };
    static const char *const codes[] = {
        "host_not_allowed", "decider", "decider_unavailable", "bad_request", "misdirected",
        "opaque_tunnel", "plaintext_header_set", "bodyless_method_body", "address_not_allowed",
        "too_many_tunnels", "method_refused",
    };
    if (!errtag)
        return NULL;
    for (size_t i = 0; i < ARRAY_SIZE(map); i++)
        if (strcmp(errtag, map[i].tag) == 0)
            return map[i].code;
    for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
        if (strcmp(errtag, codes[i]) == 0)
            return codes[i];
    return NULL;
}

const char *decider_status_phrase(int status)
{
    /* RFC 9110 15 (and Node's STATUS_CODES, which srt answers with) */
    static const struct {
        int status;
        const char *phrase;
    } t[] = {
        { 400, "Bad Request" }, { 401, "Unauthorized" }, { 402, "Payment Required" },
        { 403, "Forbidden" }, { 404, "Not Found" }, { 405, "Method Not Allowed" },
        { 406, "Not Acceptable" }, { 407, "Proxy Authentication Required" },
        { 408, "Request Timeout" }, { 409, "Conflict" }, { 410, "Gone" },
        { 411, "Length Required" }, { 412, "Precondition Failed" },
        { 413, "Payload Too Large" }, { 414, "URI Too Long" },
        { 415, "Unsupported Media Type" }, { 416, "Range Not Satisfiable" },
        { 417, "Expectation Failed" }, { 418, "I'm a Teapot" }, { 421, "Misdirected Request" },
        { 422, "Unprocessable Entity" }, { 423, "Locked" }, { 424, "Failed Dependency" },
        { 425, "Too Early" }, { 426, "Upgrade Required" }, { 428, "Precondition Required" },
        { 429, "Too Many Requests" }, { 431, "Request Header Fields Too Large" },
        { 451, "Unavailable For Legal Reasons" }, { 500, "Internal Server Error" },
        { 501, "Not Implemented" }, { 502, "Bad Gateway" }, { 503, "Service Unavailable" },
        { 504, "Gateway Timeout" }, { 505, "HTTP Version Not Supported" },
        { 506, "Variant Also Negotiates" }, { 507, "Insufficient Storage" },
        { 508, "Loop Detected" }, { 509, "Bandwidth Limit Exceeded" }, { 510, "Not Extended" },
        { 511, "Network Authentication Required" },
    };
    for (size_t i = 0; i < ARRAY_SIZE(t); i++)
        if (t[i].status == status)
            return t[i].phrase;
    return "Error";
}
