/* fuzz_pathnorm.c: libFuzzer target for the request-target normaliser
 * (src/proxy/pathnorm.c).
 *
 * The first byte picks the mode (refuse, normalize, asSpelled); the rest is
 * the target. Invariants, each an abort() when broken:
 *  - the result is -1 with a reason, or the length of a NUL-terminated
 *    output that starts with "/", is no longer than the input, holds only
 *    printable ASCII, and whose path part ends at '?' or the end;
 *  - the query part is the input's query, byte for byte;
 *  - idempotence: normalising the output again (same mode) gives the same
 *    output and path length;
 *  - refuse and normalize: the path part has no "//", no "." or ".."
 *    segment, no escape of an unreserved character, "/", "\" or ".", and
 *    only upper-case hex; a target refuse mode accepts, normalize mode
 *    accepts with the same result;
 *  - asSpelled: the output is the input;
 *  - determinism, and no read past the input (the input is an exact-size
 *    heap copy, so ASan sees overreads).
 */
#include "fuzz.h"

#include "proxy/pathnorm.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_pathnorm: invariant broken: %s (%s:%d)\n", #cond,   \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static char out1[PATH_MAX_TARGET + 1], out2[PATH_MAX_TARGET + 1], out3[PATH_MAX_TARGET + 1];

static bool unreserved(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexv(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static void check_canonical(const char *p, size_t n)
{
    CHECK(n >= 1 && p[0] == '/');
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '/') {
            size_t e = i + 1;
            while (e < n && p[e] != '/')
                e++;
            size_t l = e - i - 1;
            CHECK(!(l == 0 && e < n));                 /* no "//" */
            CHECK(!(l == 1 && p[i + 1] == '.'));       /* no "." segment */
            CHECK(!(l == 2 && p[i + 1] == '.' && p[i + 2] == '.'));
        }
        if (p[i] == '%') {
            CHECK(i + 2 < n);
            int hi = hexv(p[i + 1]), lo = hexv(p[i + 2]);
            CHECK(hi >= 0 && lo >= 0);                 /* upper-case hex */
            int v = hi * 16 + lo;
            CHECK(!unreserved(v) && v != '/' && v != '\\' && v >= 0x20 && v != 0x7f);
        }
        CHECK(p[i] != '\\');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    enum path_mode mode = (enum path_mode)(data[0] % 3);
    size_t len = size - 1;
    char *in = malloc(len ? len : 1);
    if (!in)
        abort();
    memcpy(in, data + 1, len);

    size_t pl = 0;
    const char *why = NULL;
    long r = path_normalize(in, len, mode, out1, sizeof(out1), &pl, &why);
    if (r < 0) {
        CHECK(r == -1 && why && *why);
        size_t pl2 = 0;
        const char *why2 = NULL;
        CHECK(path_normalize(in, len, mode, out2, sizeof(out2), &pl2, &why2) == -1);
        CHECK(why2 == why);
        free(in);
        return 0;
    }
    size_t n = (size_t)r;
    CHECK(n >= 1 && n <= len && strlen(out1) == n && out1[0] == '/');
    CHECK(pl <= n && (out1[pl] == '?' || out1[pl] == '\0'));
    for (size_t i = 0; i < n; i++)
        CHECK(out1[i] > 0x20 && out1[i] < 0x7f);
    /* The query is the input's. */
    const char *qm = memchr(in, '?', len);
    size_t qlen = qm ? len - (size_t)(qm - in) : 0;
    CHECK(n - pl == qlen && memcmp(out1 + pl, in + len - qlen, qlen) == 0);

    size_t pl2 = 0;
    long r2 = path_normalize(out1, n, mode, out2, sizeof(out2), &pl2, &why);
    CHECK(r2 == r && pl2 == pl && memcmp(out1, out2, n + 1) == 0);

    if (mode == PATH_AS_SPELLED) {
        CHECK(n == len && memcmp(out1, in, len) == 0);
    } else {
        check_canonical(out1, pl);
        if (mode == PATH_REFUSE) {
            size_t pl3 = 0;
            long r3 = path_normalize(in, len, PATH_NORMALIZE, out3, sizeof(out3), &pl3, &why);
            CHECK(r3 == r && pl3 == pl && memcmp(out1, out3, n + 1) == 0);
        }
    }
    free(in);
    return 0;
}
