/* test_dns.c: unit tests for the sandbox's DNS server: the message parser and
 * builder (src/net/dnsmsg.c), the synthetic address map (src/net/synth.c),
 * "could allow" (net_decide_any_port, src/policy/netrule.c) and the answers
 * (dns_respond, src/net/dns.c).
 *
 * Pinned down: every refusal of the strict parser with its exact RCODE (or
 * silence); that every strict prefix of a valid query is refused and a byte
 * more is too; the question echoed byte for byte (0x20 case); EDNS in the
 * answer and BADVERS; names in presentation form; the answer of each kind
 * (synthetic A and AAAA, no data, NOTIMP for ANY, NXDOMAIN with its dns.query
 * fields, localhost, PTR of a synthetic address); that a name allowed only on
 * some port is answered and one denied on every candidate port is not; the
 * map in both directions, its ranges and its recycling. egress-attacks.md
 * T20: a denied name, in any type, gets NXDOMAIN and a record, nothing else.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/dns.h"
#include "net/dnsmsg.h"
#include "net/synth.h"
#include "policy/netrule.h"

/* ---- building queries --------------------------------------------------------- */

struct qopt {
    uint16_t id, flags, qd, an, ns;
    bool edns;
    uint8_t edns_version;
    const uint8_t *opt_data; /* raw OPT RDATA */
    size_t opt_len;
};

/* name: labels separated by '.', written as is (so "A" stays upper case). */
static size_t mkquery(uint8_t *b, const struct qopt *o, const char *name, uint16_t qtype,
                      uint16_t qclass)
{
    size_t n = 0;
    b[n++] = (uint8_t)(o->id >> 8);
    b[n++] = (uint8_t)o->id;
    b[n++] = (uint8_t)(o->flags >> 8);
    b[n++] = (uint8_t)o->flags;
    uint16_t counts[4] = { o->qd, o->an, o->ns, o->edns ? 1 : 0 };
    for (int i = 0; i < 4; i++) {
        b[n++] = (uint8_t)(counts[i] >> 8);
        b[n++] = (uint8_t)counts[i];
    }
    if (strcmp(name, ".") != 0) {
        const char *p = name;
        for (;;) {
            const char *dot = strchr(p, '.');
            size_t l = dot ? (size_t)(dot - p) : strlen(p);
            b[n++] = (uint8_t)l;
            memcpy(b + n, p, l);
            n += l;
            if (!dot)
                break;
            p = dot + 1;
        }
    }
    b[n++] = 0;
    b[n++] = (uint8_t)(qtype >> 8);
    b[n++] = (uint8_t)qtype;
    b[n++] = (uint8_t)(qclass >> 8);
    b[n++] = (uint8_t)qclass;
    if (o->edns) {
        b[n++] = 0;
        b[n++] = 0;
        b[n++] = 41;
        b[n++] = 0x04; /* 1232 */
        b[n++] = 0xd0;
        b[n++] = 0;
        b[n++] = o->edns_version;
        b[n++] = 0;
        b[n++] = 0;
        b[n++] = (uint8_t)(o->opt_len >> 8);
        b[n++] = (uint8_t)o->opt_len;
        if (o->opt_len)
            memcpy(b + n, o->opt_data, o->opt_len);
        n += o->opt_len;
    }
    return n;
}

static const struct qopt Q = { .id = 0x1234, .flags = 0x0100, .qd = 1 };
static const struct qopt QE = { .id = 0x1234, .flags = 0x0120, .qd = 1, .edns = true };

static uint16_t g16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

/* ---- the parser ----------------------------------------------------------------- */

static void test_parse_valid(void **state)
{
    (void)state;
    uint8_t b[600];
    struct dns_query q;
    size_t n = mkquery(b, &QE, "WwW.Allowed.TEST", DNS_TYPE_AAAA, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    assert_int_equal(q.id, 0x1234);
    assert_int_equal(q.flags, 0x0120);
    assert_int_equal(q.qtype, DNS_TYPE_AAAA);
    assert_int_equal(q.qclass, DNS_CLASS_IN);
    assert_string_equal(q.name, "www.allowed.test");
    assert_true(q.host_like);
    assert_int_equal(q.qend, 12 + 18 + 4);
    assert_true(q.edns);
    assert_int_equal(q.edns_size, 1232);
    assert_int_equal(q.edns_version, 0);

    /* EDNS options that fill RDATA exactly (a cookie, then an empty one) */
    static const uint8_t opts[] = { 0, 10, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0, 12, 0, 0 };
    struct qopt o = QE;
    o.opt_data = opts;
    o.opt_len = sizeof(opts);
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), 0);

    /* names in presentation form: other bytes escaped, not host-like */
    n = mkquery(b, &Q, "a\\b.c_d-e", DNS_TYPE_TXT, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    assert_string_equal(q.name, "a\\\\b.c_d-e");
    assert_false(q.host_like);
    static const uint8_t odd[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                   4, 'a', '.', 0x00, 0xff, 1, '*', 0, 0, 16, 0, 1 };
    assert_int_equal(dns_parse_query(odd, sizeof(odd), &q), 0);
    assert_string_equal(q.name, "a\\.\\000\\255.*");
    assert_false(q.host_like);
    n = mkquery(b, &Q, ".", DNS_TYPE_NS, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    assert_string_equal(q.name, ".");
    assert_false(q.host_like);
    /* the longest name: 255 bytes on the wire (3 x 63 + 61, four labels) */
    char longest[300];
    snprintf(longest, sizeof(longest), "%.63s.%.63s.%.63s.%.61s",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
             "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
    n = mkquery(b, &Q, longest, DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(n - 12 - 4, 255);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    assert_string_equal(q.name, longest);
}

struct pcase {
    const char *what;
    int want;
};

static void test_parse_refused(void **state)
{
    (void)state;
    uint8_t b[DNS_MAX_MSG + 64];
    struct dns_query q;
    struct qopt o;
    size_t n;

    /* silence: too short for a header, or a response */
    memset(b, 0, sizeof(b));
    assert_int_equal(dns_parse_query(b, 0, &q), -1);
    n = mkquery(b, &Q, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, 11, &q), -1);
    o = Q;
    o.flags = 0x8100;
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), -1);

    /* NOTIMP: another opcode (the header is still read) */
    o = Q;
    o.flags = 0x2800; /* UPDATE */
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_NOTIMP);
    assert_int_equal(q.id, 0x1234);
    assert_int_equal(q.qend, 0);

    /* FORMERR: header bits and counts */
    const uint16_t bad_flags[] = { 0x0300 /* TC */, 0x0140 /* Z */, 0x0101 /* RCODE */ };
    for (size_t i = 0; i < 3; i++) {
        o = Q;
        o.flags = bad_flags[i];
        n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
        assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    }
    const uint16_t counts[][3] = { { 0, 0, 0 }, { 2, 0, 0 }, { 1, 1, 0 }, { 1, 0, 1 } };
    for (size_t i = 0; i < 4; i++) {
        o = Q;
        o.qd = counts[i][0];
        o.an = counts[i][1];
        o.ns = counts[i][2];
        n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
        assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    }
    n = mkquery(b, &Q, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    b[11] = 2; /* ARCOUNT 2 */
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);

    /* FORMERR: the name */
    static const uint8_t ptr[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                   1, 'a', 0xc0, 12, 0, 1, 0, 1 };
    assert_int_equal(dns_parse_query(ptr, sizeof(ptr), &q), DNS_RCODE_FORMERR);
    static const uint8_t ext[] = { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
                                   0x41, 'a', 0, 0, 1, 0, 1 };
    assert_int_equal(dns_parse_query(ext, sizeof(ext), &q), DNS_RCODE_FORMERR);
    char label64[80];
    memset(label64, 'x', 64);
    label64[64] = '\0';
    n = mkquery(b, &Q, label64, DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    char too_long[300]; /* 256 bytes on the wire */
    snprintf(too_long, sizeof(too_long), "%.63s.%.63s.%.63s.%.62s",
             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
             "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
             "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
             "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd");
    n = mkquery(b, &Q, too_long, DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    assert_string_equal(q.name, "");

    /* FORMERR: trailing bytes, and the EDNS record */
    n = mkquery(b, &Q, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    b[n] = 0;
    assert_int_equal(dns_parse_query(b, n + 1, &q), DNS_RCODE_FORMERR);
    static const uint8_t spill[] = { 0, 10, 0, 9, 1, 2, 3, 4, 5, 6, 7, 8 };
    o = QE;
    o.opt_data = spill;
    o.opt_len = sizeof(spill);
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    static const uint8_t half[] = { 0, 10, 0 };
    o.opt_data = half;
    o.opt_len = sizeof(half);
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    n = mkquery(b, &QE, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    b[n - 11] = 1; /* the OPT owner is not the root */
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    n = mkquery(b, &QE, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    b[n - 9] = 16; /* type TXT, not OPT */
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);
    n = mkquery(b, &QE, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    b[n - 6] = 1; /* an extended RCODE in a query */
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_FORMERR);

    /* too large */
    memset(b, 0, sizeof(b));
    n = mkquery(b, &Q, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, DNS_MAX_MSG + 1, &q), DNS_RCODE_FORMERR);

    /* REFUSED: another class; BADVERS: EDNS version 1 */
    n = mkquery(b, &Q, "version.bind", DNS_TYPE_TXT, 3 /* CH */);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_REFUSED);
    assert_true(q.qend > 0);
    o = QE;
    o.edns_version = 1;
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_BADVERS);
}

/* Every strict prefix of a valid query is refused (or silently dropped below
 * a header); nothing is read past len. */
static void test_parse_prefixes(void **state)
{
    (void)state;
    uint8_t b[600];
    struct dns_query q;
    size_t n = mkquery(b, &QE, "www.allowed.test", DNS_TYPE_A, DNS_CLASS_IN);
    for (size_t k = 0; k < n; k++) {
        uint8_t *copy = malloc(k ? k : 1);
        memcpy(copy, b, k);
        int r = dns_parse_query(copy, k, &q);
        if (k < 12)
            assert_int_equal(r, -1);
        else
            assert_int_equal(r, DNS_RCODE_FORMERR);
        free(copy);
    }
}

/* ---- the builder ------------------------------------------------------------------ */

static void test_build(void **state)
{
    (void)state;
    uint8_t b[600], out[1024];
    struct dns_query q;
    /* flags: RD and CD set, AD set (dig's default): RD and CD come back */
    struct qopt o = QE;
    o.flags = 0x0130;
    size_t n = mkquery(b, &o, "MiXeD.TeSt", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    static const uint8_t a[4] = { 198, 18, 0, 2 };
    struct dns_rr rr = { .type = DNS_TYPE_A, .ttl = 60, .rdlen = 4, .rdata = a };
    size_t an = dns_build_answer(b, &q, 0, &rr, 1, out, sizeof(out));
    assert_int_equal(an, q.qend + 16 + 11);
    assert_int_equal(g16(out), 0x1234);
    assert_int_equal(g16(out + 2), 0x8000 | 0x0100 | 0x0080 | 0x0010);
    assert_int_equal(g16(out + 4), 1);
    assert_int_equal(g16(out + 6), 1);
    assert_int_equal(g16(out + 8), 0);
    assert_int_equal(g16(out + 10), 1);
    assert_memory_equal(out + 12, b + 12, q.qend - 12); /* the question, case and all */
    const uint8_t *r = out + q.qend;
    assert_int_equal(g16(r), 0xc00c);
    assert_int_equal(g16(r + 2), DNS_TYPE_A);
    assert_int_equal(g16(r + 4), DNS_CLASS_IN);
    assert_int_equal(g16(r + 6), 0);
    assert_int_equal(g16(r + 8), 60);
    assert_int_equal(g16(r + 10), 4);
    assert_memory_equal(r + 12, a, 4);
    const uint8_t *opt = r + 16;
    assert_int_equal(opt[0], 0);
    assert_int_equal(g16(opt + 1), DNS_TYPE_OPT);
    assert_int_equal(g16(opt + 3), DNS_EDNS_PAYLOAD);
    assert_int_equal(opt[5], 0);

    /* too small a buffer: nothing */
    assert_int_equal(dns_build_answer(b, &q, 0, &rr, 1, out, an - 1), 0);

    /* BADVERS: header RCODE 0, extended RCODE 1 in the OPT record */
    o = QE;
    o.edns_version = 2;
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_BADVERS);
    an = dns_build_answer(b, &q, DNS_RCODE_BADVERS, NULL, 0, out, sizeof(out));
    assert_int_equal(an, n);
    assert_int_equal(g16(out + 2) & 0xf, 0);
    assert_int_equal(out[an - 6], 1);
    /* an extended RCODE cannot go without EDNS */
    n = mkquery(b, &Q, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), 0);
    assert_int_equal(dns_build_answer(b, &q, DNS_RCODE_BADVERS, NULL, 0, out, sizeof(out)), 0);

    /* NOTIMP for another opcode: a header only, the opcode echoed */
    o = Q;
    o.flags = 0x1000; /* STATUS */
    n = mkquery(b, &o, "a.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_parse_query(b, n, &q), DNS_RCODE_NOTIMP);
    an = dns_build_answer(b, &q, DNS_RCODE_NOTIMP, NULL, 0, out, sizeof(out));
    assert_int_equal(an, 12);
    assert_int_equal(g16(out + 2), 0x8000 | 0x1000 | 0x0080 | DNS_RCODE_NOTIMP);
    assert_int_equal(g16(out + 4), 0);

    /* names to wire form */
    uint8_t w[300];
    assert_int_equal(dns_name_to_wire("api.allowed.test", w, sizeof(w)), 18);
    assert_memory_equal(w, "\003api\007allowed\004test\000", 18);
    assert_int_equal(dns_name_to_wire("a..b", w, sizeof(w)), 0);
    assert_int_equal(dns_name_to_wire("a b", w, sizeof(w)), 0);
    assert_int_equal(dns_name_to_wire(".", w, sizeof(w)), 0);
    assert_int_equal(dns_name_to_wire("abc", w, 4), 0);
    char tb[16];
    assert_string_equal(dns_type_name(DNS_TYPE_TXT, tb, sizeof(tb)), "TXT");
    assert_string_equal(dns_type_name(65280, tb, sizeof(tb)), "TYPE65280");
}

/* ---- the map --------------------------------------------------------------------- */

static void test_synth_map(void **state)
{
    (void)state;
    struct synth_map *m = synth_map_new();
    assert_non_null(m);
    uint32_t i1, i2, i3;
    assert_int_equal(synth_lookup_name(m, "allowed.test", &i1), 0);
    assert_int_equal(synth_lookup_name(m, "api.allowed.test", &i2), 0);
    assert_int_equal(synth_lookup_name(m, "allowed.test", &i3), 0);
    assert_int_equal(i1, i3);
    assert_int_not_equal(i1, i2);
    uint8_t a4[4], a6[16], want6[16];
    synth_addr4(i1, a4);
    assert_memory_equal(a4, "\xc6\x12\x00\x02", 4); /* 198.18.0.2: the first given out */
    synth_addr6(i2, a6);
    inet_pton(AF_INET6, "fd7a:6b8c:5d2e::c612:3", want6);
    assert_memory_equal(a6, want6, 16);
    assert_string_equal(synth_name_of(m, 4, a4), "allowed.test");
    assert_string_equal(synth_name_of(m, 6, a6), "api.allowed.test");
    assert_true(synth_in_range(4, a4));
    assert_true(synth_in_range(6, a6));

    uint8_t x[16];
    inet_pton(AF_INET, "198.19.255.254", x);
    assert_true(synth_in_range(4, x));
    assert_null(synth_name_of(m, 4, x)); /* in range, not given out */
    inet_pton(AF_INET, SYNTH_V4_LO_TEXT, x);
    assert_null(synth_name_of(m, 4, x));
    inet_pton(AF_INET, "198.20.0.2", x);
    assert_false(synth_in_range(4, x));
    inet_pton(AF_INET, "198.17.255.255", x);
    assert_false(synth_in_range(4, x));
    inet_pton(AF_INET6, "fd7a:6b8c:5d2f::c612:2", x);
    assert_false(synth_in_range(6, x));
    inet_pton(AF_INET6, "::ffff:198.18.0.2", x);
    assert_false(synth_in_range(6, x)); /* callers unmap IPv4-mapped addresses first */
    assert_int_equal(synth_map_size(m), 2);
    synth_map_free(m);
}

/* Past SYNTH_COUNT names the oldest index is given to the next name; the
 * old name no longer resolves back, and asking for it again gives it a new
 * index. */
static void test_synth_recycle(void **state)
{
    (void)state;
    struct synth_map *m = synth_map_new();
    char name[64];
    uint32_t idx;
    for (uint32_t i = 0; i < SYNTH_COUNT; i++) {
        snprintf(name, sizeof(name), "n%u.test", i);
        assert_int_equal(synth_lookup_name(m, name, &idx), 0);
        assert_int_equal(idx, i);
    }
    uint8_t last[4];
    synth_addr4(SYNTH_COUNT - 1, last);
    assert_memory_equal(last, "\xc6\x13\xff\xfe", 4); /* 198.19.255.254 */
    assert_int_equal(synth_lookup_name(m, "new.test", &idx), 0);
    assert_int_equal(idx, 0);
    uint8_t a[4];
    synth_addr4(0, a);
    assert_string_equal(synth_name_of(m, 4, a), "new.test");
    assert_int_equal(synth_lookup_name(m, "n0.test", &idx), 0);
    assert_int_equal(idx, 1);
    assert_int_equal(synth_lookup_name(m, "n2.test", &idx), 0);
    assert_int_equal(idx, 2); /* untouched */
    synth_map_free(m);
}

/* ---- could allow ------------------------------------------------------------------ */

struct rules {
    struct net_rules r;
    struct net_entry allow[8], deny[8];
};

static void mkrules(struct rules *rs, const char *const *allow, const char *const *deny)
{
    memset(rs, 0, sizeof(*rs));
    const char *why;
    for (size_t i = 0; allow && allow[i]; i++)
        assert_int_equal(net_entry_parse(allow[i], false, &rs->allow[rs->r.nallow++], &why), 0);
    for (size_t i = 0; deny && deny[i]; i++)
        assert_int_equal(net_entry_parse(deny[i], true, &rs->deny[rs->r.ndeny++], &why), 0);
    rs->r.allow = rs->allow;
    rs->r.deny = rs->deny;
    rs->r.default_ports[0] = 80;
    rs->r.default_ports[1] = 443;
    rs->r.ndefault = 2;
}

static void freerules(struct rules *rs)
{
    for (size_t i = 0; i < rs->r.nallow; i++)
        net_entry_free(&rs->allow[i]);
    for (size_t i = 0; i < rs->r.ndeny; i++)
        net_entry_free(&rs->deny[i]);
}

static struct net_verdict could(const struct rules *rs, const char *host)
{
    struct net_target t;
    const char *why;
    assert_int_equal(net_canon_host(host, &t, &why), 0);
    return net_decide_any_port(&rs->r, &t);
}

static void test_could_allow(void **state)
{
    (void)state;
    static const char *const allow[] = { "allowed.test", "*.wild.test", "port.test:8443",
                                         "half.test", "gone.test:443", "deny.test", NULL };
    static const char *const deny[] = { "half.test:443", "gone.test:443", "deny.test",
                                        "bad.wild.test", NULL };
    struct rules rs;
    mkrules(&rs, allow, deny);
    struct net_verdict v = could(&rs, "allowed.test");
    assert_true(v.allow);
    assert_string_equal(v.rule->text, "allowed.test");
    assert_true(could(&rs, "ALLOWED.test.").allow);
    assert_true(could(&rs, "a.b.wild.test").allow);
    assert_false(could(&rs, "wild.test").allow);
    assert_true(could(&rs, "port.test").allow);   /* only on 8443, but on some port */
    assert_true(could(&rs, "half.test").allow);   /* 443 denied, 80 left */
    v = could(&rs, "gone.test");                   /* its only port denied */
    assert_false(v.allow);
    assert_null(v.rule);
    assert_string_equal(v.reason, "no port is allowed for this host");
    v = could(&rs, "deny.test");                   /* denied on every port */
    assert_false(v.allow);
    assert_string_equal(v.rule->text, "deny.test");
    v = could(&rs, "bad.wild.test");
    assert_false(v.allow);
    assert_string_equal(v.rule->text, "bad.wild.test");
    v = could(&rs, "evil.test");
    assert_false(v.allow);
    assert_string_equal(v.reason, "host is not on the allow list");
    freerules(&rs);

    /* defaultPorts [] : an entry without a port allows nothing */
    static const char *const a2[] = { "allowed.test", NULL };
    mkrules(&rs, a2, NULL);
    rs.r.ndefault = 0;
    assert_false(could(&rs, "allowed.test").allow);
    freerules(&rs);
}

/* ---- answers ---------------------------------------------------------------------- */

struct answered {
    size_t len;
    int rcode;
    uint16_t ancount;
    uint8_t rdata[300];
    uint16_t rdlen, type;
    json_t *deny;
};

static struct answered ask(const struct dns_policy *pol, const char *name, uint16_t type)
{
    uint8_t b[600], out[1024];
    size_t n = mkquery(b, &Q, name, type, DNS_CLASS_IN);
    struct answered a = { 0 };
    a.len = dns_respond(pol, b, n, out, sizeof(out), &a.deny);
    assert_true(a.len >= 12);
    assert_int_equal(g16(out), 0x1234);
    assert_true(out[2] & 0x80);
    a.rcode = out[3] & 0xf;
    a.ancount = g16(out + 6);
    if (a.ancount) {
        assert_int_equal(a.ancount, 1);
        const uint8_t *r = out + n;
        a.type = g16(r + 2);
        a.rdlen = g16(r + 10);
        assert_true(a.rdlen <= sizeof(a.rdata));
        memcpy(a.rdata, r + 12, a.rdlen);
        assert_int_equal(a.len, n + 12 + a.rdlen);
    }
    return a;
}

static void expect_deny(struct answered *a, const char *name, const char *type, const char *rule,
                        const char *reason)
{
    assert_int_equal(a->rcode, DNS_RCODE_NXDOMAIN);
    assert_int_equal(a->ancount, 0);
    assert_non_null(a->deny);
    assert_string_equal(json_string_value(json_object_get(a->deny, "name")), name);
    assert_string_equal(json_string_value(json_object_get(a->deny, "type")), type);
    if (rule)
        assert_string_equal(json_string_value(json_object_get(a->deny, "rule")), rule);
    else
        assert_null(json_object_get(a->deny, "rule"));
    assert_string_equal(json_string_value(json_object_get(a->deny, "reason")), reason);
    json_decref(a->deny);
    a->deny = NULL;
}

static void test_respond(void **state)
{
    (void)state;
    static const char *const allow[] = { "allowed.test", "*.wild.test", "port.test:2222", NULL };
    static const char *const deny[] = { "no.wild.test", NULL };
    struct rules rs;
    mkrules(&rs, allow, deny);
    struct synth_map *m = synth_map_new();
    struct dns_policy pol = { .rules = &rs.r, .synth = m, .ipv6 = true };

    struct answered a = ask(&pol, "Allowed.Test", DNS_TYPE_A);
    assert_int_equal(a.rcode, 0);
    assert_null(a.deny);
    assert_int_equal(a.type, DNS_TYPE_A);
    assert_memory_equal(a.rdata, "\xc6\x12\x00\x02", 4);
    a = ask(&pol, "port.test", DNS_TYPE_AAAA);
    uint8_t want6[16];
    inet_pton(AF_INET6, "fd7a:6b8c:5d2e::c612:3", want6);
    assert_int_equal(a.type, DNS_TYPE_AAAA);
    assert_memory_equal(a.rdata, want6, 16);
    a = ask(&pol, "allowed.test", DNS_TYPE_AAAA); /* the same index in both families */
    inet_pton(AF_INET6, "fd7a:6b8c:5d2e::c612:2", want6);
    assert_memory_equal(a.rdata, want6, 16);
    a = ask(&pol, "x.wild.test", DNS_TYPE_A);
    assert_memory_equal(a.rdata, "\xc6\x12\x00\x04", 4);

    /* other types of an allowed name carry nothing; ANY is declined */
    const uint16_t nodata[] = { DNS_TYPE_TXT, DNS_TYPE_NULL, DNS_TYPE_MX, DNS_TYPE_HTTPS,
                                DNS_TYPE_SRV, DNS_TYPE_CNAME, DNS_TYPE_PTR, 999 };
    for (size_t i = 0; i < sizeof(nodata) / sizeof(nodata[0]); i++) {
        a = ask(&pol, "allowed.test", nodata[i]);
        assert_int_equal(a.rcode, DNS_RCODE_NOERROR);
        assert_int_equal(a.ancount, 0);
        assert_null(a.deny);
    }
    a = ask(&pol, "allowed.test", DNS_TYPE_ANY);
    assert_int_equal(a.rcode, DNS_RCODE_NOTIMP);
    a = ask(&pol, "allowed.test", DNS_TYPE_AXFR);
    assert_int_equal(a.rcode, DNS_RCODE_NOTIMP);

    /* denied names: NXDOMAIN in every type, with a record */
    a = ask(&pol, "evil.test", DNS_TYPE_A);
    expect_deny(&a, "evil.test", "A", NULL, "host is not on the allow list");
    a = ask(&pol, "bWFkZSB5b3UgbG9vaw.evil.test", DNS_TYPE_TXT);
    expect_deny(&a, "bwfkzsb5b3ugbg9vaw.evil.test", "TXT", NULL, "host is not on the allow list");
    a = ask(&pol, "secret.evil.test", DNS_TYPE_NULL);
    expect_deny(&a, "secret.evil.test", "NULL", NULL, "host is not on the allow list");
    a = ask(&pol, "evil.test", DNS_TYPE_ANY);
    expect_deny(&a, "evil.test", "ANY", NULL, "host is not on the allow list");
    a = ask(&pol, "no.wild.test", DNS_TYPE_AAAA);
    expect_deny(&a, "no.wild.test", "AAAA", "no.wild.test", "host is on the deny list");
    a = ask(&pol, "a b.test", DNS_TYPE_A);
    expect_deny(&a, "a\\032b.test", "A", NULL, "not a host name");
    a = ask(&pol, "127.1", DNS_TYPE_A);
    expect_deny(&a, "127.1", "A", NULL, "an address, not a host name");
    a = ask(&pol, "xn--zz.test", DNS_TYPE_A); /* not valid punycode */
    assert_int_equal(a.rcode, DNS_RCODE_NXDOMAIN);
    assert_non_null(a.deny);
    json_decref(a.deny);

    /* localhost is the sandbox's own */
    a = ask(&pol, "localhost", DNS_TYPE_A);
    assert_memory_equal(a.rdata, "\x7f\x00\x00\x01", 4);
    a = ask(&pol, "db.localhost", DNS_TYPE_AAAA);
    assert_int_equal(a.rdlen, 16);
    assert_int_equal(a.rdata[15], 1);
    a = ask(&pol, "localhost", DNS_TYPE_TXT);
    assert_int_equal(a.ancount, 0);
    assert_null(a.deny);

    /* PTR of a synthetic address given out: its name; of others: refused */
    a = ask(&pol, "2.0.18.198.in-addr.arpa", DNS_TYPE_PTR);
    assert_int_equal(a.type, DNS_TYPE_PTR);
    assert_memory_equal(a.rdata, "\007allowed\004test\000", 14);
    a = ask(&pol, "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.2.d.5.c.8.b.6.a.7.d.f.ip6.arpa",
            DNS_TYPE_PTR);
    assert_int_equal(a.ancount, 0); /* c612:0003 is not 0.0..0.3 */
    assert_int_equal(a.rcode, DNS_RCODE_NXDOMAIN);
    json_decref(a.deny);
    a = ask(&pol, "3.0.0.0.2.1.6.c.0.0.0.0.0.0.0.0.0.0.0.0.e.2.d.5.c.8.b.6.a.7.d.f.ip6.arpa",
            DNS_TYPE_PTR);
    assert_int_equal(a.type, DNS_TYPE_PTR);
    assert_memory_equal(a.rdata, "\004port\004test\000", 11);
    a = ask(&pol, "02.0.18.198.in-addr.arpa", DNS_TYPE_PTR);
    expect_deny(&a, "02.0.18.198.in-addr.arpa", "PTR", NULL, "host is not on the allow list");
    a = ask(&pol, "9.0.18.198.in-addr.arpa", DNS_TYPE_PTR);
    expect_deny(&a, "9.0.18.198.in-addr.arpa", "PTR", NULL, "host is not on the allow list");
    a = ask(&pol, "1.0.0.127.in-addr.arpa", DNS_TYPE_PTR);
    expect_deny(&a, "1.0.0.127.in-addr.arpa", "PTR", NULL, "host is not on the allow list");

    /* without IPv6 in the sandbox: AAAA has no data */
    pol.ipv6 = false;
    a = ask(&pol, "allowed.test", DNS_TYPE_AAAA);
    assert_int_equal(a.rcode, DNS_RCODE_NOERROR);
    assert_int_equal(a.ancount, 0);

    /* malformed: answered with the parser's code, no record; a response: silence */
    uint8_t b[64], out[1024];
    struct qopt o = Q;
    o.qd = 2;
    size_t n = mkquery(b, &o, "evil.test", DNS_TYPE_A, DNS_CLASS_IN);
    json_t *rec = NULL;
    size_t an = dns_respond(&pol, b, n, out, sizeof(out), &rec);
    assert_int_equal(an, 12); /* no question: which one would it be */
    assert_int_equal(g16(out + 4), 0);
    assert_int_equal(out[3] & 0xf, DNS_RCODE_FORMERR);
    assert_null(rec);
    o = Q;
    o.flags = 0x8180;
    n = mkquery(b, &o, "evil.test", DNS_TYPE_A, DNS_CLASS_IN);
    assert_int_equal(dns_respond(&pol, b, n, out, sizeof(out), &rec), 0);
    assert_null(rec);

    assert_int_equal(synth_map_size(m), 3); /* allowed, port, x.wild: nothing else */
    synth_map_free(m);
    freerules(&rs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_refused),
        cmocka_unit_test(test_parse_prefixes),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_synth_map),
        cmocka_unit_test(test_synth_recycle),
        cmocka_unit_test(test_could_allow),
        cmocka_unit_test(test_respond),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
