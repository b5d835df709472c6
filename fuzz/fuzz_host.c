/* fuzz_host.c: libFuzzer target for host canonicalisation and the host-level
 * grammar of the network rules (src/policy/netrule.c): net_canon_host (every
 * CONNECT target, absolute URI, SOCKS domain, SNI and Host the sandbox sends),
 * net_entry_parse (allowedDomains and deniedDomains), net_cidr_parse
 * (deniedResolvedAddresses, NO_PROXY), net_proxy_url_parse, net_noproxy_parse,
 * and the decisions over what they produce.
 *
 * The input, cut at its first NUL, is one string given to every parser.
 * Invariants, each an abort() when broken:
 *  - canon: 0, or -1 with a reason. On success the kind is a name, IPv4 or
 *    IPv6 and host is NUL-terminated and non-empty, with no byte a client could
 *    use to smuggle syntax (controls, space, DEL, non-ASCII, / \ @ % ? # " < >
 *    { } | ^ ` '); an input holding one is refused. A name is lower-case
 *    letters, digits, '-', '_' and dots in labels of 1-63, at most 253 bytes,
 *    no trailing dot, and never spells an address inet_aton(3) accepts (it
 *    would then be judged as that address). IPv4 and IPv6 hosts are the
 *    inet_ntop(3) text of addr; an IPv4-mapped address is IPv4;
 *  - canon is idempotent (the host canonicalises to itself, and an IPv6 host
 *    in brackets too), blind to ASCII case, and to one trailing dot;
 *  - entry: on success text is the input; "*" only as a deny entry; a
 *    wildcard's suffix is a name with a dot that matches strict subdomains and
 *    not itself; a name or address entry matches its own canonical host; a
 *    name has a dot or is localhost; written back canonically ("*.suffix",
 *    "[v6]", ":port") it parses to the same entry; an allow entry that parses
 *    also parses as a deny entry, to the same thing; a deny entry beats an
 *    allow entry for the same host, and the allow entry alone admits its host
 *    on its port (or the default ports), and no other port;
 *  - cidr: a family, a prefix no longer than it, the range contains its own
 *    address, and "address/bits" parses to the same range;
 *  - the address guard: allowing private ranges only narrows what is
 *    forbidden, and an IPv4 address is judged the same bare, IPv4-mapped and
 *    NAT64 (64:ff9b::/96);
 *  - proxy URL: a canonical host, a port, auth empty or "Basic ...";
 *  - NO_PROXY: each name item is a canonical name that matches itself.
 */
#include "fuzz.h"

#include "policy/netrule.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(cond)                                                                   \
    do {                                                                              \
        if (!(cond)) {                                                                \
            fprintf(stderr, "fuzz_host: invariant broken: %s (%s:%d)\n", #cond,       \
                    __FILE__, __LINE__);                                              \
            abort();                                                                  \
        }                                                                             \
    } while (0)

static bool smuggle_byte(unsigned char c)
{
    return c <= 0x20 || c >= 0x7f || strchr("/\\@%?#\"<>{}|^`'", c);
}

static bool same_target(int ra, const struct net_target *a, int rb, const struct net_target *b)
{
    if (ra != rb)
        return false;
    if (ra < 0)
        return true;
    return a->kind == b->kind && strcmp(a->host, b->host) == 0 &&
           memcmp(a->addr, b->addr, sizeof(a->addr)) == 0;
}

static void check_name(const char *h)
{
    size_t n = strlen(h), label = 0;
    CHECK(n >= 1 && n <= 253 && h[n - 1] != '.');
    for (size_t i = 0; i <= n; i++) {
        if (h[i] == '.' || h[i] == '\0') {
            CHECK(label >= 1 && label <= 63);
            label = 0;
            continue;
        }
        char c = h[i];
        CHECK((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_');
        label++;
    }
    struct in_addr a;
    CHECK(inet_aton(h, &a) == 0);
}

static void check_address_guard(const struct net_target *t)
{
    const char *why = NULL;
    if (t->kind == HOST_IPV4) {
        uint8_t m[16] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        uint8_t n64[16] = { 0x00, 0x64, 0xff, 0x9b };
        memcpy(m + 12, t->addr, 4);
        memcpy(n64 + 12, t->addr, 4);
        for (int priv = 0; priv < 2; priv++) {
            bool f = net_addr_forbidden(4, t->addr, priv, &why);
            CHECK(net_addr_forbidden(6, m, priv, &why) == f);
            CHECK(net_addr_forbidden(6, n64, priv, &why) == f);
        }
        if (net_addr_forbidden(4, t->addr, true, &why))
            CHECK(net_addr_forbidden(4, t->addr, false, &why));
    } else if (t->kind == HOST_IPV6) {
        if (net_addr_forbidden(6, t->addr, true, &why))
            CHECK(net_addr_forbidden(6, t->addr, false, &why));
    }
}

/* Returns the result of net_canon_host on s. */
static int check_canon(const char *s, struct net_target *t)
{
    const char *why = NULL;
    int r = net_canon_host(s, t, &why);
    size_t len = strlen(s);
    if (r < 0) {
        CHECK(r == -1 && why && *why);
    } else {
        CHECK(r == 0);
        for (const char *p = s; *p; p++)
            CHECK(!smuggle_byte((unsigned char)*p) || (unsigned char)*p >= 0x80);
        CHECK(memchr(t->host, '\0', sizeof(t->host)) && t->host[0]);
        for (const char *p = t->host; *p; p++)
            CHECK(!smuggle_byte((unsigned char)*p));
        char text[INET6_ADDRSTRLEN];
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        switch (t->kind) {
        case HOST_NAME:
            check_name(t->host);
            break;
        case HOST_IPV4:
            CHECK(inet_ntop(AF_INET, t->addr, text, sizeof(text)) &&
                  strcmp(text, t->host) == 0);
            for (size_t i = 4; i < 16; i++)
                CHECK(t->addr[i] == 0);
            break;
        case HOST_IPV6:
            CHECK(inet_ntop(AF_INET6, t->addr, text, sizeof(text)) &&
                  strcmp(text, t->host) == 0);
            CHECK(memcmp(t->addr, mapped, 12) != 0);
            break;
        default:
            CHECK(!"kind");
        }
        /* idempotent */
        struct net_target u;
        CHECK(same_target(0, t, net_canon_host(t->host, &u, &why), &u));
        if (t->kind == HOST_IPV6) {
            char br[300];
            snprintf(br, sizeof(br), "[%s]", t->host);
            CHECK(same_target(0, t, net_canon_host(br, &u, &why), &u));
        }
        check_address_guard(t);
    }
    /* an input holding a byte that could smuggle syntax is refused (bytes
     * >= 0x80 are IDN, mapped or refused by libidn2) */
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x80 && smuggle_byte((unsigned char)*p))
            CHECK(r < 0);

    /* deterministic, blind to ASCII case and to one trailing dot */
    char *v = malloc(len + 2);
    if (!v)
        abort();
    struct net_target u;
    memcpy(v, s, len + 1);
    CHECK(same_target(r, t, net_canon_host(v, &u, &why), &u));
    for (size_t i = 0; i < len; i++)
        if (v[i] >= 'a' && v[i] <= 'z')
            v[i] = (char)(v[i] - 'a' + 'A');
    CHECK(same_target(r, t, net_canon_host(v, &u, &why), &u));
    if (len >= 1 && len < 255 && s[len - 1] != '.' && s[0] != '[' && !strchr(s, ':')) {
        memcpy(v, s, len);
        v[len] = '.';
        v[len + 1] = '\0';
        CHECK(same_target(r, t, net_canon_host(v, &u, &why), &u));
    }
    free(v);
    return r;
}

static bool same_entry(const struct net_entry *a, const struct net_entry *b)
{
    return a->kind == b->kind && strcmp(a->host, b->host) == 0 && a->port == b->port &&
           (a->kind == HOST_NAME || a->kind == HOST_WILDCARD || a->kind == HOST_ANY ||
            memcmp(a->addr, b->addr, sizeof(a->addr)) == 0);
}

static void check_decisions(struct net_entry *allow)
{
    struct net_target t;
    const char *why = NULL;
    if (allow->kind == HOST_WILDCARD) {
        char sub[300];
        snprintf(sub, sizeof(sub), "x.%s", allow->host);
        if (net_canon_host(sub, &t, &why) < 0)
            return; /* too long with the label */
    } else {
        CHECK(net_canon_host(allow->host, &t, &why) == 0);
    }
    struct net_rules r = { .allow = allow, .nallow = 1, .default_ports = { 80, 443 },
                           .ndefault = 2 };
    uint16_t port = allow->port ? allow->port : 443;
    t.port = port;
    struct net_verdict v = net_decide(&r, &t);
    CHECK(v.allow && v.rule == allow);
    CHECK(net_decide_any_port(&r, &t).allow);
    t.port = allow->port ? (uint16_t)(allow->port == 1 ? 2 : allow->port - 1) : 8443;
    CHECK(!net_decide(&r, &t).allow);
    t.port = port;
    r.deny = allow;
    r.ndeny = 1;
    v = net_decide(&r, &t);
    CHECK(!v.allow && v.rule == allow);
    CHECK(!net_decide_any_port(&r, &t).allow);
}

static void check_entry(const char *s, bool deny)
{
    struct net_entry e, f;
    const char *why = NULL;
    int r = net_entry_parse(s, deny, &e, &why);
    if (r < 0) {
        CHECK(r == -1 && why && *why && !e.text);
        return;
    }
    CHECK(e.text && strcmp(e.text, s) == 0);
    CHECK(memchr(e.host, '\0', sizeof(e.host)));
    struct net_target t;
    char canon[320];
    switch (e.kind) {
    case HOST_ANY:
        CHECK(deny && strcmp(e.host, "*") == 0);
        snprintf(canon, sizeof(canon), "*");
        break;
    case HOST_WILDCARD: {
        CHECK(net_canon_host(e.host, &t, &why) == 0 && t.kind == HOST_NAME &&
              strcmp(t.host, e.host) == 0 && strchr(e.host, '.'));
        CHECK(!net_entry_match_host(&e, &t));
        char sub[300];
        snprintf(sub, sizeof(sub), "a-b.%s", e.host);
        if (net_canon_host(sub, &t, &why) == 0)
            CHECK(net_entry_match_host(&e, &t));
        snprintf(sub, sizeof(sub), "a-b%s", e.host);
        if (net_canon_host(sub, &t, &why) == 0)
            CHECK(!net_entry_match_host(&e, &t));
        snprintf(canon, sizeof(canon), "*.%s", e.host);
        break;
    }
    case HOST_NAME:
    case HOST_IPV4:
    case HOST_IPV6:
        CHECK(net_canon_host(e.host, &t, &why) == 0 && t.kind == e.kind &&
              strcmp(t.host, e.host) == 0);
        CHECK(net_entry_match_host(&e, &t));
        if (e.kind == HOST_NAME)
            CHECK(strchr(e.host, '.') || strcmp(e.host, "localhost") == 0);
        snprintf(canon, sizeof(canon), e.kind == HOST_IPV6 ? "[%s]" : "%s", e.host);
        break;
    default:
        CHECK(!"entry kind");
    }
    if (e.port) {
        size_t l = strlen(canon);
        snprintf(canon + l, sizeof(canon) - l, ":%u", e.port);
    }
    CHECK(net_entry_parse(canon, deny, &f, &why) == 0);
    CHECK(same_entry(&e, &f));
    net_entry_free(&f);
    if (!deny) {
        CHECK(net_entry_parse(s, true, &f, &why) == 0 && same_entry(&e, &f));
        net_entry_free(&f);
        check_decisions(&e);
    }
    net_entry_free(&e);
}

static void check_cidr(const char *s)
{
    struct net_cidr c, d;
    const char *why = NULL;
    if (net_cidr_parse(s, &c, &why) < 0) {
        CHECK(why && *why);
        return;
    }
    CHECK((c.family == 4 && c.bits <= 32) || (c.family == 6 && c.bits <= 128));
    CHECK(net_cidr_match(&c, c.family, c.addr));
    char text[INET6_ADDRSTRLEN], again[64];
    CHECK(inet_ntop(c.family == 4 ? AF_INET : AF_INET6, c.addr, text, sizeof(text)));
    snprintf(again, sizeof(again), "%s/%u", text, c.bits);
    CHECK(net_cidr_parse(again, &d, &why) == 0);
    CHECK(d.family == c.family && d.bits == c.bits &&
          memcmp(d.addr, c.addr, sizeof(c.addr)) == 0);
}

static void check_proxy_url(const char *s)
{
    struct net_proxy_url u;
    const char *why = NULL;
    if (net_proxy_url_parse(s, &u, &why) < 0) {
        CHECK(why && *why);
        return;
    }
    CHECK(u.port != 0);
    struct net_target t;
    CHECK(net_canon_host(u.host, &t, &why) == 0 && strcmp(t.host, u.host) == 0);
    CHECK(memchr(u.auth, '\0', sizeof(u.auth)));
    CHECK(u.auth[0] == '\0' || strncmp(u.auth, "Basic ", 6) == 0);
}

static void check_noproxy(const char *s)
{
    struct net_noproxy np;
    if (net_noproxy_parse(s, &np) < 0)
        return; /* out of memory */
    for (size_t i = 0; i < np.n; i++) {
        if (np.v[i].is_cidr)
            continue;
        struct net_target t;
        const char *why = NULL;
        CHECK(net_canon_host(np.v[i].name, &t, &why) == 0 && t.kind == HOST_NAME &&
              strcmp(t.host, np.v[i].name) == 0);
        CHECK(net_noproxy_match(&np, &t));
    }
    net_noproxy_free(&np);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0;
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';

    struct net_target t;
    check_canon(s, &t);
    check_entry(s, false);
    check_entry(s, true);
    check_cidr(s);
    check_proxy_url(s);
    check_noproxy(s);
    free(s);
    return 0;
}
