/* fuzz_hello.c: libFuzzer target for ClientHello sniffing (src/tls/hello.c):
 * tls_hello_read, which decides what a captured TLS connection names before
 * cordon lets it through, and tls_sni_parse, the server_name grammar also
 * used on intercepted tunnels.
 *
 * The input is a client's first bytes. Invariants, each an abort() when
 * broken:
 *  - tls_hello_read returns -1, 0 (more bytes could still complete a
 *    ClientHello; the empty input too) or 1; -1 for anything not starting
 *    with a handshake record; on 1 the name is NUL-terminated, at most 255
 *    bytes of 0x21-0x7e, empty exactly when there is no server_name or it is
 *    malformed, and bad_sni implies has_sni; on 0 and -1 the result is all
 *    zero;
 *  - differential: when OpenSSL reads a ClientHello, an independent walker
 *    of the bytes (records of type 22, the handshake header, the hello's
 *    fixed fields and its extension list) finds a complete ClientHello too,
 *    and agrees on whether ECH and server_name are present and on the name
 *    (tls_sni_parse of the extension the walker found). So the name cordon
 *    judges is the one in the bytes the origin receives;
 *  - determinism, with a reused context and (for some inputs) a fresh one;
 *    every prefix (from an exact-size copy, so ASan sees a read past it)
 *    gives 0 or the full result; bytes appended after a complete hello
 *    change nothing;
 *  - tls_sni_parse on the input as an extension body: true exactly when the
 *    list length covers the rest, the first entry is a host_name of 1 to n-1
 *    printable bytes without spaces, and then out is those bytes; never
 *    writes past n (n varied from the input).
 * The differential check found that OpenSSL 3.0 hid ECH from the sniffing
 * context (corpus/hello/ech; tls_hello_see_ech, docs/robustness.md).
 * fuzz/gen_hello_corpus.py writes the seeds.
 */
#include "fuzz.h"

#include "tls/hello.h"

#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_hello: invariant broken: %s (%s:%d)\n", #cond,      \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static SSL_CTX *g_ctx;

/* ---- the independent walker ----------------------------------------------- */

struct walked {
    bool ech, has_sni;
    const uint8_t *sni;
    size_t sni_len;
};

static size_t be(const uint8_t *p, int n)
{
    size_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The handshake message from the records at the start of p[0..len), into
 * msg (at most cap bytes). Returns its length, or 0 when incomplete or not
 * one ClientHello carried by handshake records. Empty ChangeCipherSpec
 * records are passed over, as OpenSSL's record layer does with empty
 * records (found by this target: corpus/hello/empty-records); the walker
 * may accept more than OpenSSL, never less. */
static size_t walk_records(const uint8_t *p, size_t len, uint8_t *msg, size_t cap)
{
    size_t have = 0, off = 0;
    while (off + 5 <= len && (p[off] == 0x16 || (p[off] == 0x14 && be(p + off + 3, 2) == 0))) {
        size_t rl = be(p + off + 3, 2);
        if (off + 5 + rl > len)
            return 0;
        if (have + rl > cap)
            return 0;
        memcpy(msg + have, p + off + 5, rl);
        have += rl;
        off += 5 + rl;
        if (have >= 4) {
            size_t want = 4 + be(msg + 1, 3);
            if (have >= want)
                return msg[0] == 1 ? want : 0;
        }
    }
    return 0;
}

static bool walk_hello(const uint8_t *m, size_t len, struct walked *w)
{
    memset(w, 0, sizeof(*w));
    size_t off = 4 + 2 + 32;
    if (off + 1 > len)
        return false;
    off += 1 + m[off]; /* session id */
    if (off + 2 > len)
        return false;
    off += 2 + be(m + off, 2); /* cipher suites */
    if (off + 1 > len)
        return false;
    off += 1 + m[off]; /* compression methods */
    if (off > len)
        return false;
    if (off == len)
        return true; /* no extensions */
    if (off + 2 > len)
        return false;
    size_t end = off + 2 + be(m + off, 2);
    if (end > len)
        return false;
    off += 2;
    while (off + 4 <= end) {
        size_t type = be(m + off, 2), el = be(m + off + 2, 2);
        if (off + 4 + el > end)
            return false;
        if (type == TLS_EXT_ECH)
            w->ech = true;
        if (type == 0 && !w->has_sni) {
            w->has_sni = true;
            w->sni = m + off + 4;
            w->sni_len = el;
        }
        off += 4 + el;
    }
    return true;
}

/* ---- checks ------------------------------------------------------------- */

static bool same_hello(int ra, const struct tls_hello *a, int rb, const struct tls_hello *b)
{
    return ra == rb && a->ech == b->ech && a->has_sni == b->has_sni &&
           a->bad_sni == b->bad_sni && strcmp(a->sni, b->sni) == 0;
}

static int read_copy(const uint8_t *p, size_t k, struct tls_hello *h)
{
    uint8_t *copy = malloc(k ? k : 1);
    if (!copy)
        abort();
    memcpy(copy, p, k);
    int r = tls_hello_read(&g_ctx, copy, k, h);
    free(copy);
    return r;
}

static void check_sni_parse(const uint8_t *p, size_t len)
{
    size_t n = len ? 1 + p[len - 1] % 64 : 256;
    if (len && p[len - 1] >= 0x80)
        n = 256;
    char *out = malloc(n);
    if (!out)
        abort();
    memset(out, 'Z', n);
    bool ok = tls_sni_parse(p, len, out, n);
    bool want = len >= 5 && be(p, 2) + 2 == len && p[2] == 0;
    size_t nl = len >= 5 ? be(p + 3, 2) : 0;
    want = want && nl >= 1 && nl + 5 <= len && nl < n;
    for (size_t i = 0; want && i < nl; i++)
        want = p[5 + i] > 0x20 && p[5 + i] < 0x7f;
    CHECK(ok == want);
    if (ok)
        CHECK(strlen(out) == nl && memcmp(out, p + 5, nl) == 0);
    else
        for (size_t i = 0; i < n; i++)
            CHECK(out[i] == 'Z'); /* untouched */
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 2 * (16384 + 5))
        return 0; /* the proxy reads at most two full records */
    struct tls_hello h, h2;
    int r = tls_hello_read(&g_ctx, data, size, &h);
    CHECK(r == -1 || r == 0 || r == 1);
    if (size && data[0] != 0x16)
        CHECK(r == -1);
    if (r == 1) {
        CHECK(memchr(h.sni, '\0', sizeof(h.sni)));
        size_t nl = strlen(h.sni);
        for (size_t i = 0; i < nl; i++)
            CHECK(h.sni[i] > 0x20 && h.sni[i] < 0x7f);
        CHECK(!h.bad_sni || h.has_sni);
        CHECK((nl == 0) == (!h.has_sni || h.bad_sni));

        static uint8_t msg[2 * (16384 + 5)];
        size_t ml = walk_records(data, size, msg, sizeof(msg));
        CHECK(ml > 0);
        struct walked w;
        CHECK(walk_hello(msg, ml, &w));
        CHECK(w.ech == h.ech && w.has_sni == h.has_sni);
        if (w.has_sni) {
            char name[256];
            bool ok = tls_sni_parse(w.sni, w.sni_len, name, sizeof(name));
            CHECK(ok == !h.bad_sni);
            if (ok)
                CHECK(strcmp(name, h.sni) == 0);
        }
    } else {
        static const struct tls_hello zero;
        CHECK(memcmp(&h, &zero, sizeof(h)) == 0);
    }

    /* determinism, with a fresh context too (now and then: making one
     * costs a thousand times what reading a hello does) */
    CHECK(same_hello(r, &h, tls_hello_read(&g_ctx, data, size, &h2), &h2));
    if (size % 61 == 0) {
        SSL_CTX *fresh = NULL;
        CHECK(same_hello(r, &h, tls_hello_read(&fresh, data, size, &h2), &h2));
        SSL_CTX_free(fresh);
    }

    /* prefixes give 0 or the full result */
    if (size) {
        size_t cut = ((size_t)data[size - 1] * 257u + data[size / 2]) % size;
        int rp = read_copy(data, cut, &h2);
        CHECK(rp == 0 || same_hello(r, &h, rp, &h2));
        rp = read_copy(data, size - 1, &h2);
        CHECK(rp == 0 || same_hello(r, &h, rp, &h2));
    }
    /* bytes after a complete hello are not looked at */
    if (r == 1) {
        uint8_t *more = malloc(size + 7);
        if (!more)
            abort();
        static const uint8_t alert[7] = { 0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28 };
        memcpy(more, data, size);
        memcpy(more + size, alert, sizeof(alert));
        CHECK(same_hello(r, &h, tls_hello_read(&g_ctx, more, size + 7, &h2), &h2));
        free(more);
    }

    check_sni_parse(data, size);
    return 0;
}
