/* creds.c: see creds.h. */
#include "creds.h"

#include "core/cleanup.h"
#include "core/err.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

/* A credential file is small; a large one is a mistake. */
#define CRED_FILE_MAX (1u << 20)
#define SENTINEL_PREFIX "fake_value_"
#define SENTINEL_MIN 24

/* ---- secure memory -------------------------------------------------------- */

struct sec_hdr {
    size_t total;
    size_t pad;
};

void *secmem_alloc(size_t n)
{
    long pg = sysconf(_SC_PAGESIZE);
    size_t page = pg > 0 ? (size_t)pg : 4096;
    if (n > SIZE_MAX - sizeof(struct sec_hdr) - page)
        return NULL;
    size_t total = (n + sizeof(struct sec_hdr) + page - 1) / page * page;
    void *m = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    /* Not in core dumps; zero-filled in every child (the sandbox's init is
     * cloned from this process); kept out of swap when RLIMIT_MEMLOCK
     * allows. */
    (void)madvise(m, total, MADV_DONTDUMP);
    (void)madvise(m, total, MADV_WIPEONFORK);
    (void)mlock(m, total);
    struct sec_hdr *h = m;
    h->total = total;
    return h + 1;
}

void secmem_free(void *p)
{
    if (!p)
        return;
    struct sec_hdr *h = (struct sec_hdr *)p - 1;
    size_t total = h->total;
    explicit_bzero(h, total);
    munlock(h, total);
    munmap(h, total);
}

/* ---- sentinels and fake JWTs ---------------------------------------------- */

static void random_bytes(void *buf, size_t n)
{
    uint8_t *b = buf;
    while (n > 0) {
        ssize_t r = getrandom(b, n, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            abort(); /* no randomness: nothing safe to do */
        }
        b += r;
        n -= (size_t)r;
    }
}

char *creds_sentinel(size_t len)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    if (len < SENTINEL_MIN)
        len = SENTINEL_MIN;
    char *s = malloc(len + 1);
    if (!s)
        return NULL;
    size_t pl = strlen(SENTINEL_PREFIX);
    memcpy(s, SENTINEL_PREFIX, pl);
    uint8_t rnd[256];
    size_t i = pl;
    while (i < len) {
        random_bytes(rnd, sizeof(rnd));
        for (size_t k = 0; k < sizeof(rnd) && i < len; k++) {
            if (rnd[k] >= 252) /* 252 = 7 * 36: no modulo bias */
                continue;
            s[i++] = alphabet[rnd[k] % 36];
        }
    }
    s[len] = '\0';
    return s;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *b64url_encode(const uint8_t *in, size_t n)
{
    char *out = malloc(n / 3 * 4 + 5);
    if (!out)
        return NULL;
    size_t o = 0, i = 0;
    for (; i + 2 < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    out[o] = '\0';
    return out;
}

static int b64val(char c)
{
    const char *p = c ? strchr(b64url, c) : NULL;
    return p ? (int)(p - b64url) : -1;
}

/* Decode unpadded base64url into a new buffer (NUL-terminated). */
static uint8_t *b64url_decode(const char *in, size_t n, size_t *out_len)
{
    if (n % 4 == 1)
        return NULL;
    uint8_t *out = malloc(n / 4 * 3 + 3 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val(in[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    out[o] = 0;
    *out_len = o;
    return out;
}

/* Split a JWT into its three parts; NULL-safe for non-JWTs. */
static bool jwt_parts(const char *s, size_t len, size_t dots[2])
{
    int k = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (k == 2)
                return false;
            dots[k++] = i;
        } else if (b64val(s[i]) < 0) {
            return false;
        }
    }
    return k == 2 && dots[0] > 0 && dots[1] > dots[0] + 1;
}

static json_t *jwt_json(const char *part, size_t n)
{
    size_t dl = 0;
    uint8_t *d = b64url_decode(part, n, &dl);
    if (!d)
        return NULL;
    json_t *j = json_loadb((const char *)d, dl, 0, NULL);
    explicit_bzero(d, dl);
    free(d);
    if (j && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

bool creds_is_jwt(const char *s, size_t len)
{
    size_t dots[2];
    if (!jwt_parts(s, len, dots))
        return false;
    json_t *h = jwt_json(s, dots[0]);
    bool ok = h && json_is_string(json_object_get(h, "alg"));
    json_decref(h);
    if (ok) {
        json_t *pl = jwt_json(s + dots[0] + 1, dots[1] - dots[0] - 1);
        ok = pl != NULL;
        json_decref(pl);
    }
    return ok;
}

/* A structurally valid JWT the real service would refuse: HS256, a random
 * signature; the payload is the real one with maskClaims replaced by
 * sentinels, or (without maskClaims) only a far-future exp and a sentinel
 * subject. Returns NULL when none of maskClaims is present. */
static char *fake_jwt(const char *real, size_t len, const struct cordon_strlist *claims)
{
    size_t dots[2];
    if (!jwt_parts(real, len, dots))
        return NULL;
    json_t *payload;
    if (claims->n) {
        payload = jwt_json(real + dots[0] + 1, dots[1] - dots[0] - 1);
        if (!payload)
            return NULL;
        size_t hit = 0;
        for (size_t i = 0; i < claims->n; i++) {
            if (!json_object_get(payload, claims->v[i]))
                continue;
            _cleanup_free_ char *s = creds_sentinel(SENTINEL_MIN);
            if (!s || json_object_set_new(payload, claims->v[i], json_string(s)) < 0) {
                json_decref(payload);
                return NULL;
            }
            hit++;
        }
        if (hit == 0) {
            json_decref(payload);
            return NULL;
        }
    } else {
        _cleanup_free_ char *s = creds_sentinel(SENTINEL_MIN);
        payload = s ? json_pack("{s:I, s:s}", "exp", (json_int_t)4102444800LL, "sub", s) : NULL;
        if (!payload)
            return NULL;
    }
    char *pj = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(payload);
    if (!pj)
        return NULL;
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    uint8_t sig[32];
    random_bytes(sig, sizeof(sig));
    char *h64 = b64url_encode((const uint8_t *)header, strlen(header));
    char *p64 = b64url_encode((const uint8_t *)pj, strlen(pj));
    char *s64 = b64url_encode(sig, sizeof(sig));
    explicit_bzero(pj, strlen(pj));
    free(pj);
    char *out = NULL;
    if (!h64 || !p64 || !s64 || asprintf(&out, "%s.%s.%s", h64, p64, s64) < 0)
        out = NULL;
    free(h64);
    free(p64);
    free(s64);
    return out;
}

/* ---- masking one value ------------------------------------------------------ */

struct builder {
    struct cred_store *st;
    const cordon_policy *p;
    long *spec_secret;   /* per credentials entry: its whole-value secret, or -1 */
    cordon_log_fn log;
    void *log_ud;
    struct cordon_error *err;
};

static void blog(struct builder *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void blog(struct builder *b, const char *fmt, ...)
{
    if (!b->log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    b->log(b->log_ud, CORDON_LOG_WARN, line);
}

/* The secret for this real value: an existing one (the same value masked
 * twice gets the same fake) or a new one. Returns its index or -1. */
static long add_secret(struct builder *b, const struct cred_spec *cs, const char *real,
                       size_t len)
{
    struct cred_store *st = b->st;
    for (size_t i = 0; i < st->nsecrets; i++)
        if (st->secrets[i].real_len == len && memcmp(st->secrets[i].real, real, len) == 0 &&
            st->secrets[i].hosts == cs->inject_hosts)
            return (long)i;
    char *fake = cs->jwt ? fake_jwt(real, len, &cs->mask_claims) : creds_sentinel(len);
    if (!fake)
        return -1;
    struct cred_secret *nv = realloc(st->secrets, (st->nsecrets + 1) * sizeof(*nv));
    char *sec = secmem_alloc(len + 1);
    if (!nv || !sec) {
        if (nv)
            st->secrets = nv;
        free(fake);
        secmem_free(sec);
        return -1;
    }
    st->secrets = nv;
    memcpy(sec, real, len);
    sec[len] = '\0';
    nv[st->nsecrets] = (struct cred_secret){ .real = sec, .real_len = len, .fake = fake,
                                             .fake_len = strlen(fake), .hosts = cs->inject_hosts,
                                             .nhosts = cs->ninject_hosts,
                                             .explicit_hosts = cs->inject_hosts_set,
                                             .label = cs->label };
    return (long)st->nsecrets++;
}

struct span {
    size_t off, len;
    long secret;
};

/* Does the JWT's payload hold at least one of the claims? */
static bool jwt_has_claims(const char *s, size_t len, const struct cordon_strlist *claims)
{
    size_t dots[2];
    if (!jwt_parts(s, len, dots))
        return false;
    json_t *pl = jwt_json(s + dots[0] + 1, dots[1] - dots[0] - 1);
    bool any = false;
    for (size_t i = 0; pl && i < claims->n && !any; i++)
        any = json_object_get(pl, claims->v[i]) != NULL;
    json_decref(pl);
    return any;
}

static bool jwt_ok(const struct cred_spec *cs, const char *s, size_t len)
{
    return creds_is_jwt(s, len) && (!cs->mask_claims.n || jwt_has_claims(s, len, &cs->mask_claims));
}

/* Mask value[0..len): *fake gets the text the sandbox sees (malloc'ed).
 * Returns 0, 1 when nothing matched (extract, or not a JWT), -1 when out of
 * memory. */
static int mask_value(struct builder *b, const struct cred_spec *cs, const char *value, size_t len,
                      char **fake, size_t *fake_len)
{
    struct span *spans = NULL;
    size_t nspans = 0;
    int rc = -1;
    if (!cs->extract) {
        if (len == 0 || (cs->jwt && !jwt_ok(cs, value, len)))
            return 1;
        spans = malloc(sizeof(*spans));
        if (!spans)
            return -1;
        spans[nspans++] = (struct span){ 0, len, -1 };
    } else {
        int ec = 0;
        PCRE2_SIZE eo = 0;
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)cs->extract, PCRE2_ZERO_TERMINATED, 0, &ec,
                                       &eo, NULL);
        pcre2_match_data *md = re ? pcre2_match_data_create_from_pattern(re, NULL) : NULL;
        if (!re || !md) {
            pcre2_match_data_free(md);
            pcre2_code_free(re);
            return -1;
        }
        size_t start = 0;
        while (start <= len) {
            int m = pcre2_match(re, (PCRE2_SPTR)value, len, start, 0, md, NULL);
            if (m < 0)
                break;
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            if (m >= 2 && ov[2] != PCRE2_UNSET && ov[3] > ov[2] &&
                (nspans == 0 || ov[2] >= spans[nspans - 1].off + spans[nspans - 1].len)) {
                struct span *nv = realloc(spans, (nspans + 1) * sizeof(*nv));
                if (!nv) {
                    pcre2_match_data_free(md);
                    pcre2_code_free(re);
                    free(spans);
                    return -1;
                }
                spans = nv;
                spans[nspans++] = (struct span){ ov[2], ov[3] - ov[2], -1 };
            }
            start = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        }
        pcre2_match_data_free(md);
        pcre2_code_free(re);
        if (nspans == 0)
            return 1;
        for (size_t i = 0; i < nspans; i++) {
            if (cs->jwt && !jwt_ok(cs, value + spans[i].off, spans[i].len)) {
                free(spans);
                return 1;
            }
        }
    }
    for (size_t i = 0; i < nspans; i++) {
        spans[i].secret = add_secret(b, cs, value + spans[i].off, spans[i].len);
        if (spans[i].secret < 0)
            goto out;
    }
    if (cs->mask_duplicates) {
        /* Every verbatim copy of a captured value, inside a match or not. */
        struct subst_pair *pairs = calloc(nspans, sizeof(*pairs));
        if (!pairs)
            goto out;
        for (size_t i = 0; i < nspans; i++) {
            const struct cred_secret *s = &b->st->secrets[spans[i].secret];
            pairs[i] = (struct subst_pair){ s->real, s->real_len, s->fake, s->fake_len };
        }
        long n = subst_string(pairs, nspans, value, len, fake, fake_len);
        free(pairs);
        rc = n < 0 ? -1 : 0;
        goto out;
    }
    size_t cap = len + 1;
    for (size_t i = 0; i < nspans; i++)
        cap += b->st->secrets[spans[i].secret].fake_len;
    char *o = malloc(cap);
    if (!o)
        goto out;
    size_t n = 0, at = 0;
    for (size_t i = 0; i < nspans; i++) {
        const struct cred_secret *s = &b->st->secrets[spans[i].secret];
        memcpy(o + n, value + at, spans[i].off - at);
        n += spans[i].off - at;
        memcpy(o + n, s->fake, s->fake_len);
        n += s->fake_len;
        at = spans[i].off + spans[i].len;
    }
    memcpy(o + n, value + at, len - at);
    n += len - at;
    o[n] = '\0';
    *fake = o;
    *fake_len = n;
    rc = 0;
out:
    free(spans);
    return rc;
}

/* ---- environment and files ----------------------------------------------- */

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], name, n) == 0 && envp[i][n] == '=')
            return envp[i] + n + 1;
    return NULL;
}

static int push_str(char ***v, size_t *n, char *s)
{
    if (!s)
        return -1;
    char **nv = realloc(*v, (*n + 2) * sizeof(*nv));
    if (!nv) {
        free(s);
        return -1;
    }
    *v = nv;
    nv[(*n)++] = s;
    nv[*n] = NULL;
    return 0;
}

static bool has_name(char *const *v, size_t n, const char *name)
{
    size_t l = strlen(name);
    for (size_t i = 0; i < n; i++)
        if (strncmp(v[i], name, l) == 0 && (v[i][l] == '\0' || v[i][l] == '='))
            return true;
    return false;
}

static int unset_env(struct builder *b, const char *name)
{
    if (has_name(b->st->env_unset, b->st->nenv_unset, name))
        return 0;
    return push_str(&b->st->env_unset, &b->st->nenv_unset, strdup(name));
}

static int add_file(struct builder *b, const char *path, const struct stat *st, char *content,
                    size_t len, bool deny)
{
    struct cred_store *s = b->st;
    for (size_t i = 0; i < s->nfiles; i++) {
        if (s->files[i].dev == st->st_dev && s->files[i].ino == st->st_ino) {
            /* The same file twice (a ${file:} source that is also masked):
             * hiding it wins. */
            if (deny && !s->files[i].deny) {
                free(s->files[i].content);
                s->files[i].content = NULL;
                s->files[i].len = 0;
                s->files[i].deny = true;
            }
            free(content);
            return 0;
        }
    }
    struct cred_file *nv = realloc(s->files, (s->nfiles + 1) * sizeof(*nv));
    char *p = strdup(path);
    if (!nv || !p) {
        if (nv)
            s->files = nv;
        free(p);
        free(content);
        return -1;
    }
    s->files = nv;
    nv[s->nfiles++] = (struct cred_file){ .path = p, .content = content, .len = len,
                                          .dev = st->st_dev, .ino = st->st_ino, .deny = deny };
    return 0;
}

/* Read a whole credential file into secure memory. Returns 0, -ENOENT when
 * it does not exist, or another negative errno with err set. */
static int read_secret_file(struct builder *b, const char *label, const char *path, char *real,
                            struct stat *st, char **buf, size_t *len)
{
    if (!realpath(path, real))
        return errno == ENOENT ? -ENOENT
                               : cordon_err_sys(b->err, errno, "%s: %s", label, path);
    int fd = open(real, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return errno == ENOENT ? -ENOENT : cordon_err_sys(b->err, errno, "%s: %s", label, real);
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_size > (off_t)CRED_FILE_MAX) {
        int e = errno;
        bool big = S_ISREG(st->st_mode);
        close(fd);
        return big ? cordon_err_set(b->err, EFBIG, "%s: %s: larger than 1 MiB", label, real)
                   : cordon_err_set(b->err, e ? e : EINVAL, "%s: %s: not a regular file",
                                    label, real);
    }
    size_t cap = (size_t)st->st_size + 1;
    char *s = secmem_alloc(cap);
    if (!s) {
        close(fd);
        return cordon_err_set(b->err, ENOMEM, "out of memory");
    }
    size_t n = 0;
    for (;;) {
        if (n == cap - 1)
            break; /* the size read by fstat; a growing file is cut there */
        ssize_t r = read(fd, s + n, cap - 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            close(fd);
            secmem_free(s);
            return cordon_err_sys(b->err, e, "%s: %s", label, real);
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    s[n] = '\0';
    *buf = s;
    *len = n;
    return 0;
}

static int no_match(struct builder *b, const struct cred_spec *cs, const char *what)
{
    switch (cs->on_no_match) {
    case CRED_NOMATCH_ERROR:
        return cordon_err_set(b->err, EINVAL, "%s: %s, so it cannot be masked (set "
                              "onExtractNoMatch to \"deny\" to hide it, or \"warn\" to pass it "
                              "unmasked)", cs->label, what);
    case CRED_NOMATCH_WARN:
        blog(b, "%s: %s: passed to the sandbox UNMASKED (onExtractNoMatch \"warn\")", cs->label,
             what);
        return 1;
    case CRED_NOMATCH_DENY:
        return 2;
    }
    return 1;
}

static const char *no_match_text(const struct cred_spec *cs)
{
    return cs->extract ? "the extract expression matched nothing"
           : cs->jwt   ? (cs->mask_claims.n ? "the value is not a JWT holding any of maskClaims"
                                            : "the value is not a JWT")
                       : "the value is empty";
}

static int prepare_env(struct builder *b, size_t idx, char *const *envp)
{
    const struct cred_spec *cs = &b->p->creds.v[idx];
    const char *v = env_get(envp, cs->name);
    if (!v)
        return 0; /* unset on the host: nothing to hide (srt) */
    if (!cs->mask)
        return unset_env(b, cs->name) < 0 ? cordon_err_set(b->err, ENOMEM, "out of memory") : 0;
    char *fake = NULL;
    size_t fl = 0;
    int r = mask_value(b, cs, v, strlen(v), &fake, &fl);
    if (r < 0)
        return cordon_err_set(b->err, ENOMEM, "out of memory");
    if (r == 1) {
        r = no_match(b, cs, no_match_text(cs));
        if (r < 0)
            return r;
        if (r == 2 && unset_env(b, cs->name) < 0)
            return cordon_err_set(b->err, ENOMEM, "out of memory");
        return 0;
    }
    if (!cs->extract) /* the whole value is one secret: the last one added */
        for (size_t i = 0; i < b->st->nsecrets; i++)
            if (strcmp(b->st->secrets[i].fake, fake) == 0)
                b->spec_secret[idx] = (long)i;
    char *e = NULL;
    if (asprintf(&e, "%s=%s", cs->name, fake) < 0)
        e = NULL;
    free(fake);
    if (push_str(&b->st->env_set, &b->st->nenv_set, e) < 0)
        return cordon_err_set(b->err, ENOMEM, "out of memory");
    return 0;
}

static int prepare_file(struct builder *b, const struct cred_spec *cs)
{
    char real[PATH_MAX];
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int r = read_secret_file(b, cs->label, cs->path, real, &st, &buf, &len);
    if (r == -ENOENT)
        return 0; /* nothing to hide yet */
    if (r < 0)
        return r;
    if (st.st_nlink > 1) {
        /* The fake is bound over this path only: another link to the same
         * file would still show the real content. */
        secmem_free(buf);
        return cordon_err_set(b->err, EMLINK, "%s: %s has %lu hard links; the real content "
                              "would stay readable through the others (mask or deny each of "
                              "them, or give the file one link)", cs->label, real,
                              (unsigned long)st.st_nlink);
    }
    /* A whole file is its content without one final line break, which the
     * fake keeps. */
    size_t body = len, tail = 0;
    if (!cs->extract && body && buf[body - 1] == '\n') {
        body--;
        tail++;
        if (body && buf[body - 1] == '\r') {
            body--;
            tail++;
        }
    }
    char *fake = NULL;
    size_t fl = 0;
    r = mask_value(b, cs, buf, body, &fake, &fl);
    if (r == 0 && tail) {
        char *nf = realloc(fake, fl + tail + 1);
        if (!nf) {
            r = -1;
        } else {
            fake = nf;
            memcpy(fake + fl, buf + body, tail);
            fl += tail;
            fake[fl] = '\0';
        }
    }
    secmem_free(buf);
    if (r < 0) {
        free(fake);
        return cordon_err_set(b->err, ENOMEM, "out of memory");
    }
    if (r == 1) {
        r = no_match(b, cs, no_match_text(cs));
        if (r < 0 || r == 1)
            return r < 0 ? r : 0;
        return add_file(b, real, &st, NULL, 0, true) < 0
                   ? cordon_err_set(b->err, ENOMEM, "out of memory")
                   : 0;
    }
    return add_file(b, real, &st, fake, fl, false) < 0
               ? cordon_err_set(b->err, ENOMEM, "out of memory")
               : 0;
}

/* ---- injected headers ------------------------------------------------------ */

struct sbuf {
    char *p; /* secure memory */
    size_t n, cap;
};

static int sbuf_add(struct sbuf *s, const char *p, size_t n)
{
    if (!s->p || s->n + n + 1 > s->cap) { /* !p: said outright for the analyzer */
        size_t cap = (s->n + n + 1) * 2 + 64;
        char *np = secmem_alloc(cap);
        if (!np)
            return -1;
        if (s->p)
            memcpy(np, s->p, s->n);
        secmem_free(s->p);
        s->p = np;
        s->cap = cap;
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = '\0';
    return 0;
}

static int add_piece(struct cred_header *h, const char *real, size_t len)
{
    if (len == 0)
        return 0;
    struct cred_piece *nv = realloc(h->pieces, (h->npieces + 1) * sizeof(*nv));
    if (!nv)
        return -1;
    h->pieces = nv;
    char *r = secmem_alloc(len + 1);
    char *f = creds_sentinel(len);
    if (!r || !f) {
        secmem_free(r);
        free(f);
        return -1;
    }
    memcpy(r, real, len);
    r[len] = '\0';
    nv[h->npieces++] = (struct cred_piece){ r, len, f, strlen(f) };
    return 0;
}

static void free_header(struct cred_header *h)
{
    secmem_free(h->value);
    for (size_t i = 0; i < h->npieces; i++) {
        secmem_free(h->pieces[i].real);
        free(h->pieces[i].fake);
    }
    free(h->pieces);
}

static int prepare_header(struct builder *b, size_t idx, char *const *envp)
{
    const struct inject_header *ih = &b->p->net.inject_headers[idx];
    struct cred_header h = { .host = &ih->host, .name = ih->header };
    snprintf(h.label, sizeof(h.label), "network.injectHeaders[%zu]", idx);
    struct sbuf v = { 0 };
    int r = 0;
    for (const char *t = ih->value; *t && r == 0;) {
        if (t[0] == '$' && t[1] == '$') {
            r = sbuf_add(&v, "$", 1);
            t += 2;
            continue;
        }
        if (t[0] != '$') {
            size_t n = strcspn(t, "$");
            r = sbuf_add(&v, t, n);
            t += n;
            continue;
        }
        const char *end = strchr(t, '}'); /* the form was checked when loading */
        if (!end) {
            r = cordon_err_set(b->err, EINVAL, "%s: malformed value", h.label);
            break;
        }
        if (strncmp(t + 2, "env:", 4) == 0) {
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)(end - t - 6), t + 6);
            const char *ev = env_get(envp, name);
            if (!ev) {
                r = cordon_err_set(b->err, EINVAL, "%s: ${env:%s} is not set", h.label, name);
                break;
            }
            r = sbuf_add(&v, ev, strlen(ev));
            if (r == 0)
                r = add_piece(&h, ev, strlen(ev));
            /* The sandbox does not get the variable the header is made from
             * (unless it is masked: then it gets the fake). */
            bool masked = false;
            for (size_t i = 0; i < b->p->creds.n; i++)
                masked |= !b->p->creds.v[i].is_file && b->p->creds.v[i].mask &&
                          strcmp(b->p->creds.v[i].name, name) == 0;
            if (r == 0 && !masked && unset_env(b, name) < 0)
                r = -1;
        } else {
            char spec[PATH_MAX];
            snprintf(spec, sizeof(spec), "%.*s", (int)(end - t - 7), t + 7);
            struct cordon_error perr = { 0 };
            _cleanup_free_ char *path = cordon_path_expand(spec, b->p->home, b->p->cwd, &perr);
            if (!path) {
                r = cordon_err_set(b->err, perr.code, "%s: %s", h.label, perr.msg);
                break;
            }
            char real[PATH_MAX];
            struct stat st;
            char *buf = NULL;
            size_t len = 0;
            int fr = read_secret_file(b, h.label, path, real, &st, &buf, &len);
            if (fr == -ENOENT) {
                r = cordon_err_set(b->err, ENOENT, "%s: ${file:%s}: no such file", h.label,
                                   spec);
                break;
            }
            if (fr < 0) {
                r = fr;
                break;
            }
            if (len && buf[len - 1] == '\n')
                len--;
            if (len && buf[len - 1] == '\r')
                len--;
            r = sbuf_add(&v, buf, len);
            if (r == 0)
                r = add_piece(&h, buf, len);
            secmem_free(buf);
            /* The sandbox cannot read the file the header is made from. */
            if (r == 0 && add_file(b, real, &st, NULL, 0, true) < 0)
                r = -1;
        }
        t = end + 1;
    }
    if (r == -1)
        r = cordon_err_set(b->err, ENOMEM, "out of memory");
    if (r == 0) {
        for (size_t i = 0; i < v.n; i++) {
            unsigned char ch = (unsigned char)v.p[i];
            if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
                r = cordon_err_set(b->err, EINVAL, "%s: the value holds a line break or a "
                                   "control byte, which would split the request head", h.label);
                break;
            }
        }
    }
    h.value = v.p;
    h.value_len = v.n;
    if (r < 0) {
        free_header(&h);
        return r;
    }
    if (!v.p && sbuf_add(&v, "", 0) < 0) {
        free_header(&h);
        return cordon_err_set(b->err, ENOMEM, "out of memory");
    }
    h.value = v.p;
    struct cred_header *nv = realloc(b->st->headers, (b->st->nheaders + 1) * sizeof(*nv));
    if (!nv) {
        free_header(&h);
        return cordon_err_set(b->err, ENOMEM, "out of memory");
    }
    b->st->headers = nv;
    h.value = v.p;
    h.value_len = v.n;
    nv[b->st->nheaders++] = h;
    return 0;
}

/* ---- entry points ------------------------------------------------------------ */

int creds_prepare(const cordon_policy *p, char *const *envp, cordon_log_fn log, void *log_ud,
                  struct cred_store **out, struct cordon_error *err)
{
    *out = NULL;
    if (p->creds.n == 0 && p->net.ninject_headers == 0)
        return 0;
    struct cred_store *st = calloc(1, sizeof(*st));
    if (!st)
        return cordon_err_set(err, ENOMEM, "out of memory");
    long *spec_secret = calloc(p->creds.n + 1, sizeof(long));
    if (!spec_secret) {
        free(st);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < p->creds.n; i++)
        spec_secret[i] = -1;
    struct builder b = { .st = st, .p = p, .spec_secret = spec_secret, .log = log,
                         .log_ud = log_ud, .err = err };
    int r = 0;
    for (size_t i = 0; i < p->creds.n && r == 0; i++) {
        const struct cred_spec *cs = &p->creds.v[i];
        if (cs->is_file && !cs->mask)
            continue; /* added to denyRead when the settings were loaded */
        r = cs->is_file ? prepare_file(&b, cs) : prepare_env(&b, i, envp);
    }
    for (size_t i = 0; i < p->net.ninject_headers && r == 0; i++)
        r = prepare_header(&b, i, envp);
    /* AWS pairs whose variables were set and masked. */
    for (size_t i = 0; i < p->creds.naws && r == 0; i++) {
        const struct aws_pair *ap = &p->creds.aws[i];
        long ix[3] = { -1, -1, -1 };
        const char *vars[3] = { ap->akid_var, ap->secret_var, ap->token_var };
        for (int k = 0; k < 3; k++)
            for (size_t j = 0; vars[k] && j < p->creds.n; j++)
                if (!p->creds.v[j].is_file && strcmp(p->creds.v[j].name, vars[k]) == 0)
                    ix[k] = spec_secret[j];
        if (ix[0] < 0 || ix[1] < 0)
            continue; /* not set on the host: nothing to sign with */
        struct cred_aws *nv = realloc(st->aws, (st->naws + 1) * sizeof(*nv));
        if (!nv) {
            r = cordon_err_set(err, ENOMEM, "out of memory");
            break;
        }
        st->aws = nv;
        nv[st->naws++] = (struct cred_aws){ ix[0], ix[1], ix[2] };
    }
    st->sigv4_streaming = p->creds.sigv4_streaming;
    st->sigv4_presigned = p->creds.sigv4_presigned;
    st->sigv4a = p->creds.sigv4a;
    free(spec_secret);
    if (r < 0) {
        creds_free(st);
        return r;
    }
    *out = st;
    return 0;
}

void creds_free(struct cred_store *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nsecrets; i++) {
        secmem_free(s->secrets[i].real);
        free(s->secrets[i].fake);
    }
    free(s->secrets);
    free(s->aws);
    for (size_t i = 0; i < s->nheaders; i++)
        free_header(&s->headers[i]);
    free(s->headers);
    for (size_t i = 0; i < s->nenv_set; i++)
        free(s->env_set[i]);
    free(s->env_set);
    for (size_t i = 0; i < s->nenv_unset; i++)
        free(s->env_unset[i]);
    free(s->env_unset);
    for (size_t i = 0; i < s->nfiles; i++) {
        free(s->files[i].path);
        free(s->files[i].content);
    }
    free(s->files);
    free(s);
}
