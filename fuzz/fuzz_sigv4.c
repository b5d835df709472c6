/* fuzz_sigv4.c: libFuzzer target for the SigV4 parts that read bytes from
 * the sandbox (src/tls/sigv4.c): the Authorization parser, the presigned
 * query test, and canonicalisation of an arbitrary target and headers.
 *
 * Input: an Authorization value, a newline, a request target, a newline,
 * then header lines "name:value". Invariants, each an abort() when broken:
 *  - the parser returns one of the four kinds; on SIGV4_HMAC every field is
 *    NUL-terminated within its buffer, the signature is 64 lower-case hex,
 *    and formatting then parsing again gives the same fields;
 *  - the presigned test: true only when the query names X-Amz-Signature,
 *    X-Amz-Credential, X-Amz-Algorithm or AWSAccessKeyId, and true for any
 *    target with "X-Amz-Signature=" added as one more parameter;
 *  - signing is deterministic (same input, same signature, twice), never
 *    reads past the input (exact-size copies under ASan), and either fails
 *    or yields 64 lower-case hex; both URI modes are exercised.
 */
#include "fuzz.h"

#include "tls/sigv4.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_sigv4: invariant broken: %s (%s:%d)\n", #cond,      \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static bool hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* A presigned query is one that names a signature parameter; adding one to
 * any target makes it presigned (a client cannot hide it behind what comes
 * before). */
static void check_presigned(const char *target)
{
    bool p = sigv4_query_presigned(target);
    const char *q = strchr(target, '?');
    if (p) {
        CHECK(q && (strcasestr(q, "x-amz-signature=") || strcasestr(q, "x-amz-credential=") ||
                    strcasestr(q, "x-amz-algorithm=") || strcasestr(q, "awsaccesskeyid=")));
    }
    size_t n = strlen(target);
    char *more = malloc(n + 32);
    if (!more)
        abort();
    snprintf(more, n + 32, "%s%sX-Amz-Signature=0", target, q ? "&" : "?");
    CHECK(sigv4_query_presigned(more));
    free(more);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *buf = malloc(size + 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    buf[size] = '\0';
    if (strlen(buf) != size) {
        free(buf);
        return 0;
    }
    char *nl = strchr(buf, '\n');
    size_t alen = nl ? (size_t)(nl - buf) : size;
    char *auth = malloc(alen ? alen : 1);
    if (!auth)
        abort();
    memcpy(auth, buf, alen);

    struct sigv4_auth a, b;
    enum sigv4_kind k = sigv4_parse_auth(auth, alen, &a);
    CHECK(k == SIGV4_NONE || k == SIGV4_HMAC || k == SIGV4_ECDSA || k == SIGV4_MALFORMED);
    if (k == SIGV4_HMAC) {
        CHECK(memchr(a.akid, 0, sizeof(a.akid)) && memchr(a.region, 0, sizeof(a.region)) &&
              memchr(a.service, 0, sizeof(a.service)) &&
              memchr(a.signed_headers, 0, sizeof(a.signed_headers)));
        CHECK(strlen(a.date) == 8 && hex64(a.signature));
        char out[1400];
        sigv4_format_auth(&a, out, sizeof(out));
        CHECK(sigv4_parse_auth(out, strlen(out), &b) == SIGV4_HMAC);
        CHECK(memcmp(&a, &b, sizeof(a)) == 0);
    }

    const char *target = "/";
    char *rest = NULL;
    if (nl) {
        target = nl + 1;
        char *nl2 = strchr(nl + 1, '\n');
        if (nl2) {
            *nl2 = '\0';
            rest = nl2 + 1;
        }
    }
    check_presigned(target);

    struct sigv4_header hs[16];
    size_t nh = 0;
    for (char *line = rest; line && *line && nh < 16;) {
        char *end = strchr(line, '\n');
        if (end)
            *end = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            hs[nh++] = (struct sigv4_header){ line, (size_t)(colon - line), colon + 1,
                                              strlen(colon + 1) };
        }
        line = end ? end + 1 : NULL;
    }
    if (k != SIGV4_HMAC) {
        memset(&a, 0, sizeof(a));
        strcpy(a.akid, "AKID");
        strcpy(a.date, "20150830");
        strcpy(a.region, "us-east-1");
        strcpy(a.service, "s3");
        strcpy(a.signed_headers, "host");
    }
    struct sigv4_request r = { .method = "GET", .target = target, .headers = hs, .nheaders = nh,
                               .payload_hash = "UNSIGNED-PAYLOAD",
                               .amz_date = "20150830T123600Z" };
    if (strncmp(a.date, "20150830", 8) != 0)
        memcpy(a.date, "20150830", 9);
    for (int u = 0; u < 2; u++) {
        char s1[65], s2[65];
        int r1 = sigv4_sign(&r, &a, u ? SIGV4_URI_DOUBLE : SIGV4_URI_AS_SENT, "secret", 6, s1);
        int r2 = sigv4_sign(&r, &a, u ? SIGV4_URI_DOUBLE : SIGV4_URI_AS_SENT, "secret", 6, s2);
        CHECK(r1 == r2);
        if (r1 == 0)
            CHECK(hex64(s1) && strcmp(s1, s2) == 0);
    }
    free(auth);
    free(buf);
    return 0;
}
