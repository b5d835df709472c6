/* fuzz_dns.c: libFuzzer target for the sandbox's DNS server: the query
 * parser and the answer builder (src/net/dnsmsg.c) and the answers
 * (dns_respond, src/net/dns.c) under a fixed policy.
 *
 * The input is one query message as the sandbox sends it over UDP. Invariants,
 * each an abort() when broken:
 *  - parse: the result is -1, 0, FORMERR, NOTIMP, REFUSED or BADVERS; -1
 *    exactly when the input is shorter than a header or has QR set; id and
 *    flags are the header's otherwise;
 *  - a well-formed query (0): at most DNS_MAX_MSG bytes, QDCOUNT 1, qend
 *    inside the input, a NUL-terminated name of printable ASCII without
 *    spaces; a host-like name is letters, digits, "-", "_" and dots, and
 *    written back to wire form it is the question's name, lower-cased, byte
 *    for byte; every strict prefix (from an exact-size copy, so ASan sees a
 *    read past it) is refused, and so is the input with one byte more;
 *  - determinism: the same bytes give the same result and the same query;
 *  - the answer (built for every result but -1): the same ID, QR and RA set,
 *    RD and the opcode echoed, QDCOUNT 1 exactly when qend is set with the
 *    question's bytes repeated as sent, an OPT record exactly when the query
 *    had one, and the length the counts imply;
 *  - dns_respond with a policy (allowedDomains allowed.test, *.wild.test,
 *    port.test:2222; deniedDomains no.wild.test): silent exactly when the
 *    parser is; otherwise an answer with the query's ID; a dns.query record
 *    only with NXDOMAIN and no answer record, naming the question; an A
 *    answer only for a name the policy could allow, in 198.18.0.0/15, and
 *    the map gives the name back from it.
 */
#include "fuzz.h"

#include "net/dns.h"
#include "net/dnsmsg.h"
#include "net/synth.h"
#include "policy/netrule.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_dns: invariant broken: %s (%s:%d)\n", #cond,        \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static struct net_rules g_rules;
static struct net_entry g_allow[3], g_deny[1];

static void setup(void)
{
    static bool done;
    if (done)
        return;
    done = true;
    static const char *const allow[] = { "allowed.test", "*.wild.test", "port.test:2222" };
    const char *why;
    for (size_t i = 0; i < 3; i++)
        CHECK(net_entry_parse(allow[i], false, &g_allow[i], &why) == 0);
    CHECK(net_entry_parse("no.wild.test", true, &g_deny[0], &why) == 0);
    g_rules.allow = g_allow;
    g_rules.nallow = 3;
    g_rules.deny = g_deny;
    g_rules.ndeny = 1;
    g_rules.default_ports[0] = 80;
    g_rules.default_ports[1] = 443;
    g_rules.ndefault = 2;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

static uint16_t g16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static int parse_copy(const uint8_t *p, size_t k, struct dns_query *q)
{
    uint8_t *copy = malloc(k ? k : 1);
    if (!copy)
        abort();
    memcpy(copy, p, k);
    int r = dns_parse_query(copy, k, q);
    free(copy);
    return r;
}

static bool same_query(const struct dns_query *a, const struct dns_query *b)
{
    return a->id == b->id && a->flags == b->flags && a->qtype == b->qtype &&
           a->qclass == b->qclass && strcmp(a->name, b->name) == 0 &&
           a->host_like == b->host_like && a->qend == b->qend && a->edns == b->edns &&
           a->edns_size == b->edns_size && a->edns_version == b->edns_version;
}

static void check_answer(const uint8_t *data, const struct dns_query *q, int rcode)
{
    static uint8_t out[2048];
    static const uint8_t a[4] = { 198, 18, 0, 2 };
    struct dns_rr rr = { .type = DNS_TYPE_A, .ttl = 60, .rdlen = 4, .rdata = a };
    size_t nrr = q->qend && rcode == 0 ? 1 : 0;
    size_t n = dns_build_answer(data, q, rcode, &rr, nrr, out, sizeof(out));
    if (rcode > 15 && !q->edns) {
        CHECK(n == 0);
        return;
    }
    size_t want = 12 + (q->qend ? q->qend - 12 : 0) + nrr * 16 + (q->edns ? 11 : 0);
    CHECK(n == want);
    CHECK(g16(out) == q->id);
    uint16_t f = g16(out + 2);
    CHECK((f & 0x8000) && (f & 0x0080));
    CHECK((f & 0x7800) == (q->flags & 0x7800) && (f & 0x0100) == (q->flags & 0x0100));
    CHECK((f & 0xf) == (rcode & 0xf));
    CHECK(g16(out + 4) == (q->qend ? 1 : 0));
    CHECK(g16(out + 6) == nrr && g16(out + 8) == 0 && g16(out + 10) == (q->edns ? 1 : 0));
    if (q->qend)
        CHECK(memcmp(out + 12, data + 12, q->qend - 12) == 0);
    if (q->edns) {
        const uint8_t *opt = out + n - 11;
        CHECK(opt[0] == 0 && g16(opt + 1) == DNS_TYPE_OPT && opt[5] == (rcode >> 4));
    }
    /* a buffer one byte short gets nothing */
    CHECK(dns_build_answer(data, q, rcode, &rr, nrr, out, n - 1) == 0);
}

static void check_respond(const uint8_t *data, size_t size, int r, const struct dns_query *q)
{
    static uint8_t out[2048];
    struct synth_map *m = synth_map_new();
    if (!m)
        abort();
    struct dns_policy pol = { .rules = &g_rules, .synth = m, .ipv6 = (size & 1) != 0 };
    json_t *deny = NULL;
    size_t n = dns_respond(&pol, data, size, out, sizeof(out), &deny);
    if (r < 0) {
        CHECK(n == 0 && !deny);
        synth_map_free(m);
        return;
    }
    CHECK(n >= 12 && n <= sizeof(out) && g16(out) == q->id && (out[2] & 0x80));
    int rc = out[3] & 0xf;
    uint16_t an = g16(out + 6);
    if (deny) {
        CHECK(r == 0 && rc == DNS_RCODE_NXDOMAIN && an == 0);
        const char *name = json_string_value(json_object_get(deny, "name"));
        CHECK(name && strcmp(name, q->name) == 0);
        CHECK(json_is_string(json_object_get(deny, "reason")));
        json_decref(deny);
    }
    if (r > 0)
        CHECK(rc == (r & 0xf) && an == 0);
    if (an) {
        CHECK(an == 1 && q->qend && rc == 0);
        const uint8_t *rr = out + q->qend;
        CHECK(g16(rr) == 0xc00c && g16(rr + 2) == q->qtype);
        if (q->qtype == DNS_TYPE_A && strcmp(q->name, "localhost") != 0 &&
            !strstr(q->name, ".localhost")) {
            CHECK(g16(rr + 10) == 4 && rr[12] == 198 && (rr[13] & 0xfe) == 18);
            struct net_target t;
            const char *why;
            CHECK(net_canon_host(q->name, &t, &why) == 0 && t.kind == HOST_NAME);
            CHECK(net_decide_any_port(&g_rules, &t).allow);
            const char *back = synth_name_of(m, 4, rr + 12);
            CHECK(back && strcmp(back, t.host) == 0);
        }
    }
    synth_map_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    struct dns_query q, q2;
    int r = dns_parse_query(data, size, &q);
    CHECK(r == -1 || r == 0 || r == DNS_RCODE_FORMERR || r == DNS_RCODE_NOTIMP ||
          r == DNS_RCODE_REFUSED || r == DNS_RCODE_BADVERS);
    CHECK((r == -1) == (size < 12 || (data[2] & 0x80)));
    if (r >= 0)
        CHECK(q.id == g16(data) && q.flags == g16(data + 2));
    CHECK(dns_parse_query(data, size, &q2) == r && (r < 0 || same_query(&q, &q2)));
    if (q.qend)
        CHECK(q.qend <= size);

    if (r == 0) {
        CHECK(size <= DNS_MAX_MSG && g16(data + 4) == 1 && q.qend >= 12 + 5);
        size_t nl = strnlen(q.name, sizeof(q.name));
        CHECK(nl > 0 && nl < sizeof(q.name));
        for (size_t i = 0; i < nl; i++)
            CHECK(q.name[i] > 0x20 && q.name[i] < 0x7f && !isupper((unsigned char)q.name[i]));
        if (q.host_like) {
            uint8_t wire[300];
            size_t wl = dns_name_to_wire(q.name, wire, sizeof(wire));
            CHECK(wl == q.qend - 12 - 4);
            for (size_t i = 0; i < wl; i++)
                CHECK(wire[i] == (uint8_t)tolower(data[12 + i]));
        }
        /* strict prefixes are refused; so is a byte more */
        size_t cut = ((size_t)data[size - 1] * 131u + data[0]) % size;
        CHECK(parse_copy(data, size - 1, &q2) != 0);
        CHECK(parse_copy(data, cut, &q2) != 0);
        uint8_t *more = malloc(size + 1);
        if (!more)
            abort();
        memcpy(more, data, size);
        more[size] = data[0];
        CHECK(dns_parse_query(more, size + 1, &q2) == DNS_RCODE_FORMERR);
        free(more);
    }
    if (r >= 0)
        check_answer(data, &q, r);
    check_respond(data, size, r, &q);
    return 0;
}
