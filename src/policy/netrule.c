/* netrule.c: see netrule.h.
 *
 * Every host goes through net_canon_host() exactly once, and both the policy
 * entries and the destinations a client names are compared in that form, so a
 * spelling trick (case, trailing dot, full-width dot, Cyrillic homoglyph,
 * numeric IPv4 shorthand, IPv4-mapped IPv6) cannot make one host look like
 * another (egress-attacks.md T5, T9, T10, T15).
 */
#include "netrule.h"
#include "core/cleanup.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <idn2.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>

static bool valid_name(const char *s, const char **why)
{
    size_t len = strlen(s);
    if (len == 0 || len > 253) {
        *why = "host name length must be 1 to 253";
        return false;
    }
    size_t label = 0;
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63) {
                *why = "host name has an empty or overlong label";
                return false;
            }
            label = 0;
            if (*p == '\0')
                return true;
            continue;
        }
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
            *why = "host name contains a character that is not allowed";
            return false;
        }
        label++;
    }
}

static bool needs_idna(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p >= 0x80)
            return true;
    if (strncmp(s, "xn--", 4) == 0 || strstr(s, ".xn--"))
        return true;
    return false;
}

/* inet_aton(3) accepts every historical IPv4 spelling (a, a.b, a.b.c, hex,
 * octal), which is exactly what clients such as curl and browsers connect to.
 * glibc's inet_aton also stops at whitespace; callers refuse whitespace
 * before this point. */
static bool parse_ipv4_any(const char *s, uint8_t out[4])
{
    struct in_addr a;
    if (!*s || inet_aton(s, &a) == 0)
        return false;
    memcpy(out, &a.s_addr, 4);
    return true;
}

static void set_ipv4(struct net_target *t, const uint8_t a[4])
{
    t->kind = HOST_IPV4;
    memset(t->addr, 0, sizeof(t->addr));
    memcpy(t->addr, a, 4);
    inet_ntop(AF_INET, a, t->host, sizeof(t->host));
}

static int canon_ipv6(const char *s, struct net_target *t, const char **why)
{
    struct in6_addr a;
    if (strchr(s, '%')) {
        *why = "IPv6 zone identifiers are not allowed";
        return -1;
    }
    if (inet_pton(AF_INET6, s, &a) != 1) {
        *why = "invalid IPv6 address";
        return -1;
    }
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    if (memcmp(a.s6_addr, mapped, 12) == 0) {
        set_ipv4(t, a.s6_addr + 12);
        return 0;
    }
    t->kind = HOST_IPV6;
    memcpy(t->addr, a.s6_addr, 16);
    inet_ntop(AF_INET6, &a, t->host, sizeof(t->host));
    return 0;
}

int net_canon_host(const char *in, struct net_target *t, const char **why)
{
    memset(t, 0, sizeof(*t));
    size_t len = strlen(in);
    if (len == 0 || len > 255) {
        *why = "host is empty or longer than 255 bytes";
        return -1;
    }
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        /* No zone identifiers ('%'), no userinfo, no URL syntax. */
        if (*p <= 0x20 || *p == 0x7f || strchr("/\\@%?#\"<>{}|^`'", *p)) {
            *why = "host contains a character that is not allowed";
            return -1;
        }
    }
    char buf[256];
    if (in[0] == '[') {
        if (len < 3 || in[len - 1] != ']') {
            *why = "unterminated IPv6 literal";
            return -1;
        }
        memcpy(buf, in + 1, len - 2);
        buf[len - 2] = '\0';
        return canon_ipv6(buf, t, why);
    }
    if (strchr(in, ':'))
        return canon_ipv6(in, t, why);

    for (size_t i = 0; i <= len; i++)
        buf[i] = (char)tolower((unsigned char)in[i]);
    if (len > 1 && buf[len - 1] == '.')
        buf[--len] = '\0';

    uint8_t a4[4];
    if (parse_ipv4_any(buf, a4)) {
        set_ipv4(t, a4);
        return 0;
    }
    const char *name = buf;
    _cleanup_free_ char *ascii = NULL;
    if (needs_idna(buf)) {
        /* UTS #46 processing (non-transitional, as browsers do): maps
         * full-width dots and compatibility characters, then converts to
         * A-labels. A homoglyph stays a different name ("xn--..."). */
        int rc = idn2_to_ascii_8z(buf, &ascii, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL);
        if (rc != IDN2_OK) {
            *why = "invalid internationalised host name";
            return -1;
        }
        for (char *p = ascii; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        size_t al = strlen(ascii);
        if (al > 1 && ascii[al - 1] == '.')
            ascii[al - 1] = '\0';
        name = ascii;
        /* Full-width digits map to ASCII ones: judge the result as an
         * address if it now spells one. */
        if (parse_ipv4_any(name, a4)) {
            set_ipv4(t, a4);
            return 0;
        }
    }
    if (!valid_name(name, why))
        return -1;
    t->kind = HOST_NAME;
    snprintf(t->host, sizeof(t->host), "%s", name);
    return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
    if (!*s || *s == '0' || strlen(s) > 5)
        return -1;
    unsigned v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (unsigned)(*p - '0');
    }
    if (v == 0 || v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

int net_entry_parse(const char *s, bool deny, struct net_entry *e, const char **why)
{
    memset(e, 0, sizeof(*e));
    char host[300];
    size_t len = strlen(s);
    if (len == 0 || len >= sizeof(host)) {
        *why = "empty or overlong entry";
        return -1;
    }
    if (strstr(s, "://") || strchr(s, '/')) {
        *why = "expected a host, not a URL";
        return -1;
    }
    /* Split host and port. */
    const char *port = NULL;
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end) {
            *why = "unterminated IPv6 literal";
            return -1;
        }
        size_t hl = (size_t)(end - s) + 1;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (end[1] == ':')
            port = end + 2;
        else if (end[1] != '\0') {
            *why = "unexpected text after the IPv6 literal";
            return -1;
        }
    } else {
        const char *c = strchr(s, ':');
        if (c && strchr(c + 1, ':')) {
            *why = "an IPv6 address must be written in brackets, e.g. [::1]";
            return -1;
        }
        size_t hl = c ? (size_t)(c - s) : len;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (c)
            port = c + 1;
    }
    if (port && parse_port(port, &e->port) < 0) {
        *why = "port must be 1 to 65535 without leading zeros";
        return -1;
    }

    if (strcmp(host, "*") == 0) {
        if (!deny) {
            *why = "\"*\" is only allowed in deniedDomains";
            return -1;
        }
        e->kind = HOST_ANY;
        snprintf(e->host, sizeof(e->host), "*");
    } else if (strncmp(host, "*.", 2) == 0) {
        struct net_target t;
        if (net_canon_host(host + 2, &t, why) < 0)
            return -1;
        if (t.kind != HOST_NAME) {
            *why = "a wildcard needs a domain name after \"*.\"";
            return -1;
        }
        if (!strchr(t.host, '.')) {
            *why = "a wildcard needs a domain of at least two labels (\"*.com\" is too broad)";
            return -1;
        }
        e->kind = HOST_WILDCARD;
        snprintf(e->host, sizeof(e->host), "%s", t.host);
    } else {
        if (strchr(host, '*')) {
            *why = "\"*\" is only allowed as a whole leading label (\"*.example.com\")";
            return -1;
        }
        struct net_target t;
        if (net_canon_host(host, &t, why) < 0)
            return -1;
        if (t.kind == HOST_NAME && !strchr(t.host, '.') && strcmp(t.host, "localhost") != 0) {
            *why = "a host name needs at least one dot (single-label names are ambiguous)";
            return -1;
        }
        e->kind = t.kind;
        memcpy(e->addr, t.addr, sizeof(e->addr));
        snprintf(e->host, sizeof(e->host), "%s", t.host);
    }
    e->text = strdup(s);
    if (!e->text) {
        *why = "out of memory";
        return -1;
    }
    return 0;
}

void net_entry_free(struct net_entry *e)
{
    free(e->text);
    e->text = NULL;
}

bool net_entry_match_host(const struct net_entry *e, const struct net_target *t)
{
    switch (e->kind) {
    case HOST_ANY:
        return true;
    case HOST_NAME:
        return t->kind == HOST_NAME && strcmp(e->host, t->host) == 0;
    case HOST_WILDCARD: {
        if (t->kind != HOST_NAME)
            return false;
        size_t sl = strlen(e->host), tl = strlen(t->host);
        return tl > sl + 1 && t->host[tl - sl - 1] == '.' && strcmp(t->host + tl - sl, e->host) == 0;
    }
    case HOST_IPV4:
        return t->kind == HOST_IPV4 && memcmp(e->addr, t->addr, 4) == 0;
    case HOST_IPV6:
        return t->kind == HOST_IPV6 && memcmp(e->addr, t->addr, 16) == 0;
    }
    return false;
}

struct net_verdict net_decide(const struct net_rules *r, const struct net_target *t)
{
    for (size_t i = 0; i < r->ndeny; i++) {
        const struct net_entry *e = &r->deny[i];
        if ((e->port == 0 || e->port == t->port) && net_entry_match_host(e, t))
            return (struct net_verdict){ .allow = false, .rule = e,
                                         .reason = "host is on the deny list" };
    }
    for (size_t i = 0; i < r->nallow; i++) {
        const struct net_entry *e = &r->allow[i];
        if (!net_entry_match_host(e, t))
            continue;
        bool port_ok = false;
        if (e->port)
            port_ok = e->port == t->port;
        else
            for (size_t k = 0; k < r->ndefault && !port_ok; k++)
                port_ok = r->default_ports[k] == t->port;
        if (port_ok)
            return (struct net_verdict){ .allow = true, .rule = e, .reason = NULL };
    }
    for (size_t i = 0; i < r->nallow; i++)
        if (net_entry_match_host(&r->allow[i], t))
            return (struct net_verdict){ .allow = false, .rule = NULL,
                                         .reason = "port is not allowed for this host" };
    return (struct net_verdict){ .allow = false, .rule = NULL,
                                 .reason = "host is not on the allow list" };
}

struct net_verdict net_decide_any_port(const struct net_rules *r, const struct net_target *t)
{
    struct net_target probe = *t;
    bool matched = false;
    for (size_t i = 0; i < r->nallow; i++) {
        const struct net_entry *e = &r->allow[i];
        if (!net_entry_match_host(e, t))
            continue;
        matched = true;
        size_t n = e->port ? 1 : r->ndefault;
        for (size_t k = 0; k < n; k++) {
            probe.port = e->port ? e->port : r->default_ports[k];
            struct net_verdict v = net_decide(r, &probe);
            if (v.allow)
                return v;
        }
    }
    for (size_t i = 0; i < r->ndeny; i++) {
        const struct net_entry *e = &r->deny[i];
        if (e->port == 0 && net_entry_match_host(e, t))
            return (struct net_verdict){ .allow = false, .rule = e,
                                         .reason = "host is on the deny list" };
    }
    return (struct net_verdict){ .allow = false, .rule = NULL,
                                 .reason = matched ? "no port is allowed for this host"
                                                   : "host is not on the allow list" };
}

static bool v4_in(const uint8_t *a, uint32_t net, unsigned bits)
{
    uint32_t v = ((uint32_t)a[0] << 24) | ((uint32_t)a[1] << 16) | ((uint32_t)a[2] << 8) | a[3];
    uint32_t mask = bits == 0 ? 0 : 0xffffffffu << (32 - bits);
    return (v & mask) == (net & mask);
}

static bool v4_forbidden(const uint8_t *a, bool allow_private, const char **why)
{
    static const struct {
        uint32_t net;
        unsigned bits;
        bool private_ok;
        const char *what;
    } ranges[] = {
        { 0xa9fea9fe, 32, false, "a cloud metadata address" },   /* 169.254.169.254 */
        { 0xa9feaa02, 32, false, "a cloud metadata address" },   /* 169.254.170.2 (ECS) */
        { 0x646464c8, 32, false, "a cloud metadata address" },   /* 100.100.100.200 */
        { 0x00000000, 8, false, "an unspecified address" },      /* 0.0.0.0/8 */
        { 0x7f000000, 8, false, "a loopback address" },
        { 0xa9fe0000, 16, false, "a link-local address" },
        { 0xe0000000, 4, false, "a multicast address" },
        { 0xf0000000, 4, false, "a reserved or broadcast address" },
        { 0x0a000000, 8, true, "a private address (RFC 1918)" },
        { 0xac100000, 12, true, "a private address (RFC 1918)" },
        { 0xc0a80000, 16, true, "a private address (RFC 1918)" },
        { 0x64400000, 10, true, "a shared address (CGNAT, RFC 6598)" },
    };
    for (size_t i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
        if (v4_in(a, ranges[i].net, ranges[i].bits) && !(allow_private && ranges[i].private_ok)) {
            *why = ranges[i].what;
            return true;
        }
    }
    return false;
}

bool net_addr_forbidden(int family, const uint8_t *a, bool allow_private, const char **why)
{
    if (family == 4)
        return v4_forbidden(a, allow_private, why);

    static const uint8_t zero[16] = { 0 };
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    static const uint8_t nat64[12] = { 0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0 };
    static const uint8_t md6[16] = { 0xfd, 0x00, 0x0e, 0xc2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x02, 0x54 };

    if (memcmp(a, zero, 16) == 0) {
        *why = "an unspecified address";
        return true;
    }
    if (memcmp(a, zero, 15) == 0 && a[15] == 1) {
        *why = "a loopback address";
        return true;
    }
    if (memcmp(a, md6, 16) == 0) {
        *why = "a cloud metadata address";
        return true;
    }
    /* Forms that carry an IPv4 address: judge the IPv4 address. */
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 || memcmp(a, zero, 12) == 0)
        return v4_forbidden(a + 12, allow_private, why);
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4 2002:AABB:CCDD::/48 */
        return v4_forbidden(a + 2, allow_private, why);
    if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) { /* Teredo 2001::/32 */
        uint8_t client[4] = { (uint8_t)~a[12], (uint8_t)~a[13], (uint8_t)~a[14], (uint8_t)~a[15] };
        if (v4_forbidden(a + 4, allow_private, why) || v4_forbidden(client, allow_private, why))
            return true;
    }
    if (a[0] == 0x00 && a[1] == 0x64 && a[2] == 0xff && a[3] == 0x9b && a[4] == 0x00 &&
        a[5] == 0x01 && !allow_private) { /* 64:ff9b:1::/48, local-use NAT64 (RFC 8215) */
        *why = "a local-use NAT64 address";
        return true;
    }
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80) {
        *why = "a link-local address";
        return true;
    }
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0) {
        *why = "a site-local address";
        return true;
    }
    if (a[0] == 0xff) {
        *why = "a multicast address";
        return true;
    }
    if ((a[0] & 0xfe) == 0xfc && !allow_private) {
        *why = "a unique local address (ULA)";
        return true;
    }
    return false;
}

/* ---- ranges, upstream proxies, NO_PROXY ---------------------------------- */

int net_cidr_parse(const char *s, struct net_cidr *c, const char **why)
{
    memset(c, 0, sizeof(*c));
    char buf[128];
    const char *slash = strchr(s, '/');
    size_t al = slash ? (size_t)(slash - s) : strlen(s);
    if (al == 0 || al >= sizeof(buf)) {
        *why = "expected an address or a range such as 10.0.0.0/8";
        return -1;
    }
    memcpy(buf, s, al);
    buf[al] = '\0';
    unsigned max;
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = 4;
        max = 32;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = 6;
        max = 128;
    } else {
        *why = "expected an IPv4 or IPv6 address (IPv6 without brackets)";
        return -1;
    }
    c->bits = max;
    if (slash) {
        const char *b = slash + 1;
        if (!*b || strlen(b) > 3 || (b[0] == '0' && b[1])) {
            *why = "bad prefix length";
            return -1;
        }
        unsigned v = 0;
        for (; *b; b++) {
            if (*b < '0' || *b > '9') {
                *why = "bad prefix length";
                return -1;
            }
            v = v * 10 + (unsigned)(*b - '0');
        }
        if (v > max) {
            *why = "prefix length too large";
            return -1;
        }
        c->bits = v;
    }
    return 0;
}

bool net_cidr_match(const struct net_cidr *c, int family, const uint8_t *addr)
{
    uint8_t a4m[16];
    if (c->family == 6 && family == 4) {
        /* An IPv6 range written as ::ffff:a.b.c.d/n covers IPv4 addresses. */
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        memcpy(a4m, mapped, 12);
        memcpy(a4m + 12, addr, 4);
        addr = a4m;
        family = 6;
    }
    if (c->family != family)
        return false;
    unsigned full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(c->addr, addr, full) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (c->addr[full] & mask) == (addr[full] & mask);
}

static void base64(const uint8_t *in, size_t n, char *out, size_t outn)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t k = 0;
    for (size_t i = 0; i < n && k + 5 < outn; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[k++] = tbl[(v >> 18) & 63];
        out[k++] = tbl[(v >> 12) & 63];
        out[k++] = i + 1 < n ? tbl[(v >> 6) & 63] : '=';
        out[k++] = i + 2 < n ? tbl[v & 63] : '=';
    }
    out[k] = '\0';
}

static int pct_decode(const char *s, size_t n, char *out, size_t outn)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k + 1 >= outn)
            return -1;
        if (s[i] == '%' && i + 2 < n + 0 && isxdigit((unsigned char)s[i + 1]) &&
            isxdigit((unsigned char)s[i + 2])) {
            char hex[3] = { s[i + 1], s[i + 2], 0 };
            out[k++] = (char)strtol(hex, NULL, 16);
            i += 2;
        } else {
            out[k++] = s[i];
        }
    }
    out[k] = '\0';
    return (int)k;
}

void net_proxy_url_redact(const char *url, char *out, size_t n)
{
    if (n == 0)
        return;
    const char *a = strstr(url, "://");
    a = a ? a + 3 : url;
    size_t alen = strcspn(a, "/?#");
    const char *at = memchr(a, '@', alen);
    char tmp[1024];
    if (at)
        snprintf(tmp, sizeof(tmp), "%.*s<credentials>%s", (int)(a - url), url, at);
    else
        snprintf(tmp, sizeof(tmp), "%s", url);
    size_t k = 0;
    for (const char *s = tmp; *s && k + 1 < n; s++)
        out[k++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[k] = '\0';
}

int net_proxy_url_parse(const char *url, struct net_proxy_url *o, const char **why)
{
    memset(o, 0, sizeof(*o));
    if (strncasecmp(url, "http://", 7) != 0) {
        *why = "an upstream proxy URL must start with http:// (TLS to the proxy itself is "
               "not supported)";
        return -1;
    }
    const char *a = url + 7;
    size_t alen = strcspn(a, "/?#");
    if (a[alen] == '?' || a[alen] == '#' || (a[alen] == '/' && a[alen + 1] != '\0')) {
        *why = "an upstream proxy URL has no path, query or fragment";
        return -1;
    }
    const char *at = memchr(a, '@', alen);
    if (at) {
        /* zeroed: the analyzer cannot tell that strlen(cred) bytes are set */
        char cred[512] = { 0 };
        if (pct_decode(a, (size_t)(at - a), cred, sizeof(cred)) < 0) {
            *why = "credentials too long";
            return -1;
        }
        char enc[sizeof(o->auth) - 8];
        base64((const uint8_t *)cred, strlen(cred), enc, sizeof(enc));
        snprintf(o->auth, sizeof(o->auth), "Basic %s", enc);
        explicit_bzero(cred, sizeof(cred));
        alen -= (size_t)(at - a) + 1;
        a = at + 1;
    }
    char hostport[300];
    if (alen == 0 || alen >= sizeof(hostport)) {
        *why = "missing or overlong proxy host";
        return -1;
    }
    memcpy(hostport, a, alen);
    hostport[alen] = '\0';
    struct net_entry e;
    if (net_entry_parse(hostport, false, &e, why) < 0) {
        /* single-label proxy hosts ("proxy:3128") are common on LANs */
        char *colon = strrchr(hostport, ':');
        if (colon && !strchr(hostport, ']'))
            *colon = '\0';
        struct net_target t;
        if (net_canon_host(hostport, &t, why) < 0)
            return -1;
        snprintf(o->host, sizeof(o->host), "%s", t.host);
        o->port = 80;
        if (colon && parse_port(colon + 1, &o->port) < 0) {
            *why = "bad proxy port";
            return -1;
        }
        return 0;
    }
    if (e.kind == HOST_WILDCARD || e.kind == HOST_ANY) {
        net_entry_free(&e);
        *why = "a proxy host cannot be a wildcard";
        return -1;
    }
    snprintf(o->host, sizeof(o->host), "%s", e.host);
    o->port = e.port ? e.port : 80;
    net_entry_free(&e);
    return 0;
}

int net_noproxy_parse(const char *list, struct net_noproxy *np)
{
    memset(np, 0, sizeof(*np));
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        while (*p == ',' || *p == ' ' || *p == '\t')
            p++;
        size_t n = strcspn(p, ", \t");
        if (n == 0)
            break;
        char item[300];
        if (n < sizeof(item)) {
            memcpy(item, p, n);
            item[n] = '\0';
            if (strcmp(item, "*") == 0) {
                np->all = true;
            } else {
                struct net_noproxy_item it = { 0 };
                const char *why = NULL;
                struct net_target t;
                char *name = item[0] == '.' ? item + 1 : item;
                if (net_cidr_parse(item, &it.cidr, &why) == 0) {
                    it.is_cidr = true;
                } else if (net_canon_host(name, &t, &why) == 0 && t.kind == HOST_NAME) {
                    snprintf(it.name, sizeof(it.name), "%s", t.host);
                } else {
                    p += n;
                    continue; /* an entry we cannot read matches nothing */
                }
                struct net_noproxy_item *nv = realloc(np->v, (np->n + 1) * sizeof(*nv));
                if (!nv)
                    return -1;
                np->v = nv;
                np->v[np->n++] = it;
            }
        }
        p += n;
    }
    return 0;
}

bool net_noproxy_match(const struct net_noproxy *np, const struct net_target *t)
{
    if (np->all)
        return true;
    for (size_t i = 0; i < np->n; i++) {
        const struct net_noproxy_item *it = &np->v[i];
        if (it->is_cidr) {
            if (t->kind == HOST_IPV4 && net_cidr_match(&it->cidr, 4, t->addr))
                return true;
            if (t->kind == HOST_IPV6 && net_cidr_match(&it->cidr, 6, t->addr))
                return true;
        } else if (t->kind == HOST_NAME) {
            size_t nl = strlen(it->name), tl = strlen(t->host);
            if (strcmp(it->name, t->host) == 0 ||
                (tl > nl && t->host[tl - nl - 1] == '.' && strcmp(t->host + tl - nl, it->name) == 0))
                return true;
        }
    }
    return false;
}

void net_noproxy_free(struct net_noproxy *np)
{
    free(np->v);
    memset(np, 0, sizeof(*np));
}
