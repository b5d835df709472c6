/* fuzz_decider.c: libFuzzer target for the decider protocol's frame codec
 * (src/proxy/decider.c): what a decider sends (hello, verdicts), parsed
 * strictly, and the req frame the proxy builds from a request head.
 *
 * The first byte picks the case, the rest is the input:
 *   0  a verdict frame's payload (dv_parse_verdict);
 *   1  a hello frame's payload (dv_parse_hello);
 *   2  an HTTP request head, as plain HTTP, and 3 the same inside a tunnel
 *      (http_parse_request, then dv_req_frame).
 * Invariants, each an abort() when broken:
 *  - a parse returns 0, or -1 with one of srt's reasons;
 *  - a parsed verdict is within the protocol: id 1..2^53-1; allow: header
 *    names lower-case tokens and never a framing or credential header, values
 *    without control characters, at most 190 values and 64 KiB, removals
 *    unique, cred and credential together (1-8192 bytes of printable ASCII);
 *    deny: status 400-599, a reason of 1-1024 bytes without controls;
 *    need_body: max 1..32 MiB;
 *  - a parsed verdict, written again as JSON, parses to the same verdict;
 *  - a parsed hello's entries are its strings, each covering a target named
 *    as itself (on its own port, or any port without one);
 *  - parsing is deterministic, and never reads past the input (an exact-size
 *    copy, so ASan sees it);
 *  - a req frame that is built is valid UTF-8 JSON (jansson reads it back):
 *    one object with t "req", the id given, the request's method and port,
 *    a path that starts with "/", at most 1 MiB; a request refused gets one
 *    of srt's 400 reasons.
 */
#include "fuzz.h"

#include "proxy/decider.h"
#include "proxy/http.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_decider: invariant broken: %s (%s:%d)\n", #cond,    \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static const char *const parse_reasons[] = {
    "frame is not UTF-8", "frame is not valid JSON", "frame is not one JSON object",
    "null in frame", "lone surrogate in frame", "duplicate key in frame", "bad hello",
    "bad verdict frame", NULL,
};

static const char *const req_reasons[] = {
    "request header the decider cannot be asked about", "more than one Host header",
    "request headers too large", "malformed request-target",
    "request the decider cannot be asked about", "request target too large",
    "request too large for the decider", NULL,
};

static bool one_of(const char *s, const char *const *list)
{
    for (size_t i = 0; s && list[i]; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static bool lower_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *s)))
            return false;
    return true;
}

static bool folded_is(const char *s, const char *const *names)
{
    char f[256];
    size_t n = strlen(s);
    if (n >= sizeof(f))
        return false;
    for (size_t i = 0; i <= n; i++)
        f[i] = s[i] == '_' || s[i] == '.' ? '-' : s[i];
    return one_of(f, names);
}

/* No C0 control but tab, no DEL, no C1 (U+0080-U+009F, C2 80..C2 9F). */
static bool no_control(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; u[i]; i++) {
        if ((u[i] < 0x20 && u[i] != 0x09) || u[i] == 0x7f)
            return false;
        if (u[i] == 0xc2 && u[i + 1] >= 0x80 && u[i + 1] <= 0x9f)
            return false;
    }
    return true;
}

static const char *const framing[] = { "host", "content-length", "transfer-encoding",
                                       "connection", "upgrade", "te", "trailer", "keep-alive",
                                       "proxy-connection", NULL };
static const char *const credhdr[] = { "authorization", "proxy-authorization", "cookie",
                                       "x-api-key", NULL };

static void check_verdict(const struct dv_verdict *v)
{
    CHECK(v->id >= 1 && v->id <= DECIDER_MAX_ID);
    switch (v->action) {
    case DV_ALLOW: {
        size_t entries = 0, bytes = 0;
        for (size_t i = 0; i < v->nsets; i++) {
            CHECK(lower_token(v->sets[i].name));
            CHECK(!folded_is(v->sets[i].name, framing) && !folded_is(v->sets[i].name, credhdr));
            entries += v->sets[i].nvalues ? v->sets[i].nvalues : 1;
            bytes += strlen(v->sets[i].name);
            for (size_t k = 0; k < v->sets[i].nvalues; k++) {
                CHECK(no_control(v->sets[i].values[k]));
                bytes += strlen(v->sets[i].values[k]);
            }
        }
        CHECK(entries <= DECIDER_MAX_HEADER_VALUES && bytes <= DECIDER_MAX_HEADER_BYTES);
        CHECK(v->nremoves <= DECIDER_MAX_HEADER_VALUES);
        for (size_t i = 0; i < v->nremoves; i++) {
            CHECK(lower_token(v->removes[i]) && !folded_is(v->removes[i], framing));
            for (size_t k = 0; k < i; k++)
                CHECK(strcmp(v->removes[i], v->removes[k]) != 0);
        }
        CHECK(!v->cred == !v->credential);
        if (v->credential) {
            size_t n = strlen(v->credential);
            CHECK(n >= 1 && n <= DECIDER_MAX_CREDENTIAL && v->cred_len >= 1);
            for (size_t i = 0; i < n; i++)
                CHECK(v->credential[i] >= 0x21 && v->credential[i] <= 0x7e);
        }
        CHECK(!v->reason && !v->status && !v->max);
        break;
    }
    case DV_DENY:
        CHECK(v->status >= 400 && v->status <= 599);
        CHECK(!v->reason || (strlen(v->reason) >= 1 && strlen(v->reason) <= DECIDER_MAX_REASON &&
                             no_control(v->reason)));
        CHECK(!v->nsets && !v->nremoves && !v->cred && !v->max);
        break;
    case DV_NEED_BODY:
        CHECK(v->max >= 1 && v->max <= DECIDER_MAX_BODY);
        CHECK(!v->nsets && !v->nremoves && !v->cred && !v->reason && !v->status);
        break;
    default:
        CHECK(!"action");
    }
}

/* The verdict written again as JSON (jansson), for the round trip. */
static char *encode_verdict(const struct dv_verdict *v)
{
    json_t *o = json_pack("{s:s, s:I}", "t", "verdict", "id", (json_int_t)v->id);
    CHECK(o);
    if (v->action == DV_ALLOW) {
        json_object_set_new(o, "action", json_string("allow"));
        if (v->nsets) {
            json_t *sh = json_object();
            for (size_t i = 0; i < v->nsets; i++) {
                json_t *vals = json_array();
                for (size_t k = 0; k < v->sets[i].nvalues; k++)
                    json_array_append_new(vals, json_string(v->sets[i].values[k]));
                json_object_set_new(sh, v->sets[i].name, vals);
            }
            json_object_set_new(o, "setHeaders", sh);
        }
        if (v->nremoves) {
            json_t *rh = json_array();
            for (size_t i = 0; i < v->nremoves; i++)
                json_array_append_new(rh, json_string(v->removes[i]));
            json_object_set_new(o, "removeHeaders", rh);
        }
        if (v->cred) {
            json_object_set_new(o, "cred", json_string(v->cred));
            json_object_set_new(o, "credential", json_string(v->credential));
        }
    } else if (v->action == DV_DENY) {
        json_object_set_new(o, "action", json_string("deny"));
        json_object_set_new(o, "status", json_integer(v->status));
        if (v->reason)
            json_object_set_new(o, "reason", json_string(v->reason));
    } else {
        json_object_set_new(o, "action", json_string("need_body"));
        json_object_set_new(o, "max", json_integer(v->max));
    }
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static bool same_verdict(const struct dv_verdict *a, const struct dv_verdict *b)
{
    if (a->id != b->id || a->action != b->action || a->status != b->status || a->max != b->max ||
        a->nsets != b->nsets || a->nremoves != b->nremoves || !a->cred != !b->cred ||
        !a->reason != !b->reason)
        return false;
    if (a->reason && strcmp(a->reason, b->reason) != 0)
        return false;
    if (a->cred && (a->cred_len != b->cred_len || memcmp(a->cred, b->cred, a->cred_len) != 0 ||
                    strcmp(a->credential, b->credential) != 0))
        return false;
    for (size_t i = 0; i < a->nremoves; i++)
        if (strcmp(a->removes[i], b->removes[i]) != 0)
            return false;
    for (size_t i = 0; i < a->nsets; i++) {
        if (strcmp(a->sets[i].name, b->sets[i].name) != 0 ||
            a->sets[i].nvalues != b->sets[i].nvalues)
            return false;
        for (size_t k = 0; k < a->sets[i].nvalues; k++)
            if (strcmp(a->sets[i].values[k], b->sets[i].values[k]) != 0)
                return false;
    }
    return true;
}

static int parse_copy_verdict(const uint8_t *p, size_t n, struct dv_verdict *v, const char **why)
{
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy);
    memcpy(copy, p, n);
    int r = dv_parse_verdict(copy, n, v, why);
    free(copy);
    return r;
}

static void fuzz_verdict(const uint8_t *p, size_t n)
{
    struct dv_verdict v, v2;
    const char *why = NULL, *why2 = NULL;
    int r = parse_copy_verdict(p, n, &v, &why);
    CHECK(r == 0 || r == -1);
    int r2 = parse_copy_verdict(p, n, &v2, &why2);
    CHECK(r2 == r);
    if (r < 0) {
        CHECK(one_of(why, parse_reasons) && why2 == why);
        CHECK(strcmp(why, "bad hello") != 0);
        return;
    }
    CHECK(same_verdict(&v, &v2));
    dv_verdict_clear(&v2);
    check_verdict(&v);
    /* the values may hold NUL bytes (strings end there in C): the round trip
     * is checked only when none do */
    char *again = encode_verdict(&v);
    if (again && !memchr(p, 0, n) && !strstr((const char *)again, "\\u0000")) {
        struct dv_verdict v3;
        const char *w3 = NULL;
        bool nul_inside = false;
        for (size_t i = 0; i + 6 <= n && !nul_inside; i++)
            nul_inside = memcmp(p + i, "\\u0000", 6) == 0;
        if (!nul_inside) {
            CHECK(dv_parse_verdict((const uint8_t *)again, strlen(again), &v3, &w3) == 0);
            CHECK(same_verdict(&v, &v3));
            dv_verdict_clear(&v3);
        }
    }
    free(again);
    dv_verdict_clear(&v);
}

static void fuzz_hello(const uint8_t *p, size_t n)
{
    uint8_t *copy = malloc(n ? n : 1);
    CHECK(copy);
    memcpy(copy, p, n);
    struct dv_hello h;
    const char *why = NULL;
    int r = dv_parse_hello(copy, n, &h, &why);
    free(copy);
    if (r < 0) {
        CHECK(one_of(why, parse_reasons) && strcmp(why, "bad verdict frame") != 0);
        return;
    }
    CHECK(r == 0);
    json_t *j = json_loadb((const char *)p, n, JSON_ALLOW_NUL, NULL);
    for (int list = 0; list < 2; list++) {
        struct net_entry *e = list ? h.deny : h.allow;
        size_t ne = list ? h.ndeny : h.nallow;
        json_t *arr = j ? json_object_get(j, list ? "deniedDomains" : "allowedDomains") : NULL;
        if (arr)
            CHECK(json_array_size(arr) == ne);
        for (size_t i = 0; i < ne; i++) {
            CHECK(e[i].text && e[i].host[0]);
            if (arr)
                CHECK(strcmp(json_string_value(json_array_get(arr, i)), e[i].text) == 0);
            struct net_target t = { .kind = e[i].kind, .port = e[i].port ? e[i].port : 443 };
            memcpy(t.addr, e[i].addr, sizeof(t.addr));
            if (e[i].kind == HOST_WILDCARD) {
                t.kind = HOST_NAME;
                snprintf(t.host, sizeof(t.host), "a.%s", e[i].host);
                if (strlen(e[i].host) + 2 >= sizeof(t.host))
                    continue;
            } else {
                snprintf(t.host, sizeof(t.host), "%s", e[i].host);
            }
            CHECK(dv_entry_match(&e[i], &t));
            if (e[i].port) {
                t.port = (uint16_t)(e[i].port == 1 ? 2 : e[i].port - 1);
                CHECK(!dv_entry_match(&e[i], &t));
            }
        }
    }
    json_decref(j);
    dv_hello_clear(&h);
}

static void fuzz_req(const uint8_t *p, size_t n, bool tls)
{
    char *copy = malloc(n ? n : 1);
    CHECK(copy);
    memcpy(copy, p, n);
    static struct http_request q;
    const char *why = NULL;
    int r = http_parse_request(copy, n, &q, &why);
    if (r <= 0 || q.form == HTTP_TARGET_AUTHORITY) {
        free(copy);
        return;
    }
    struct net_target t;
    const char *cwhy = NULL;
    if (!q.host[0] || net_canon_host(q.host, &t, &cwhy) < 0) {
        free(copy);
        return;
    }
    t.port = q.port ? q.port : (tls ? 443 : 80);
    struct dv_reqinfo ri = { &q, copy, &t, tls, tls ? q.host : NULL };
    char *out = NULL;
    size_t outlen = 0;
    const char *fwhy = NULL;
    int fr = dv_req_frame(&ri, 42, &out, &outlen, &fwhy);
    if (fr == 1) {
        CHECK(one_of(fwhy, req_reasons) && !out);
    } else if (fr == 0) {
        CHECK(out && outlen == strlen(out) && outlen <= DECIDER_MAX_FRAME);
        json_error_t je;
        json_t *j = json_loadb(out, outlen, 0, &je);
        CHECK(j && json_is_object(j));
        CHECK(strcmp(json_string_value(json_object_get(j, "t")), "req") == 0);
        CHECK(json_integer_value(json_object_get(j, "id")) == 42);
        CHECK(json_integer_value(json_object_get(j, "port")) == t.port);
        const char *m = json_string_value(json_object_get(j, "method"));
        CHECK(m && strlen(m) == q.method_len && memcmp(m, q.method, q.method_len) == 0);
        const char *path = json_string_value(json_object_get(j, "path"));
        CHECK(path && path[0] == '/');
        CHECK(strcmp(json_string_value(json_object_get(j, "host")), t.host) == 0);
        json_t *hs = json_object_get(j, "headers");
        CHECK(!hs || (json_is_object(hs) && json_object_size(hs) > 0 &&
                      !json_object_get(hs, "host")));
        CHECK(!json_object_get(j, "query") ||
              json_string_length(json_object_get(j, "query")) > 0);
        json_decref(j);
    } else {
        CHECK(fr == -1);
    }
    free(out);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] & 3) {
    case 0:
        fuzz_verdict(data + 1, size - 1);
        break;
    case 1:
        fuzz_hello(data + 1, size - 1);
        break;
    default:
        fuzz_req(data + 1, size - 1, (data[0] & 3) == 3);
    }
    return 0;
}
