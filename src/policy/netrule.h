/* netrule.h: network rules by host and port (srt's allowedDomains and
 * deniedDomains), and the canonical form of a destination host.
 *
 * Owns: the entry grammar of srt 0.0.83 (srt-compat.md 1.1), host
 * canonicalisation (egress-attacks.md T5, T9, T10, T15) and the host-level
 * decision. Hosts are canonicalised once, before any matching and before any
 * DNS query: lower case, one trailing dot removed, IDN converted to A-labels
 * (UTS #46, libidn2), and every IPv4 spelling inet_aton(3) accepts (127.1,
 * 0x7f.1, 0177.0.0.1, 2130706433) turned into the address it names, so it is
 * judged as that address. IPv4-mapped IPv6 addresses are judged as IPv4.
 */
#ifndef CORDON_NETRULE_H
#define CORDON_NETRULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum host_kind {
    HOST_NAME,      /* a DNS name (canonical A-label form) */
    HOST_IPV4,
    HOST_IPV6,
    HOST_WILDCARD,  /* entries only: "*.suffix", strict subdomains */
    HOST_ANY,       /* entries only (deniedDomains): "*" */
};

struct net_target {
    enum host_kind kind;  /* NAME, IPV4 or IPV6 */
    char host[256];       /* canonical text: name, dotted quad, or IPv6 without brackets */
    uint8_t addr[16];     /* IPV4: first 4 bytes */
    uint16_t port;
};

struct net_entry {
    char *text;           /* as written, for audit records and reasons */
    enum host_kind kind;
    char host[256];       /* NAME: canonical; WILDCARD: the suffix without "*." */
    uint8_t addr[16];
    uint16_t port;        /* 0: no port given */
};

/* Canonicalise a destination host as a client sent it (CONNECT target,
 * absolute URI, SOCKS domain or address). Returns 0 or -1 with *why. */
int net_canon_host(const char *in, struct net_target *out, const char **why);

/* Parse one allowedDomains (deny=false) or deniedDomains (deny=true) entry.
 * Returns 0 or -1 with *why; e->text is allocated (free with net_entry_free). */
int net_entry_parse(const char *s, bool deny, struct net_entry *e, const char **why);
void net_entry_free(struct net_entry *e);

/* Does entry e cover host t (ignoring ports)? */
bool net_entry_match_host(const struct net_entry *e, const struct net_target *t);

struct net_rules {
    struct net_entry *allow;
    size_t nallow;
    struct net_entry *deny;
    size_t ndeny;
    uint16_t default_ports[32];
    size_t ndefault;
};

struct net_verdict {
    bool allow;
    const struct net_entry *rule; /* the entry that decided, or NULL */
    const char *reason;           /* static text for a deny without a custom reason */
};

/* srt's order: deniedDomains first, then allowedDomains, else deny. A deny
 * entry without a port covers every port; an allow entry without a port
 * covers the default ports (network.defaultPorts, 80 and 443). */
struct net_verdict net_decide(const struct net_rules *r, const struct net_target *t);

/* Could host t (its port ignored) be allowed on some port? The rules are per
 * port, so this tries every port an allow entry matching t covers (its own
 * port, or network.defaultPorts) with net_decide: true when one of them is
 * allowed (the verdict of that port, rule the allow entry). Otherwise the
 * verdict names the deny entry that covers every port, or says why none of
 * the candidate ports is allowed. The in-sandbox DNS server answers only
 * names this allows. */
struct net_verdict net_decide_any_port(const struct net_rules *r, const struct net_target *t);

/* Is this address (network byte order, 4 or 16 bytes) one a name may not
 * resolve to? Loopback, unspecified, link-local, multicast, broadcast, the
 * cloud-metadata addresses, and (unless allow_private) RFC 1918, CGNAT and
 * ULA; checked through IPv4-mapped, NAT64 (64:ff9b::/96) and 6to4 forms.
 * *why names the class. */
bool net_addr_forbidden(int family, const uint8_t *addr, bool allow_private, const char **why);

/* An address range: "10.0.0.0/8", "fd00::/8", or one address. IPv6 is
 * written without brackets (srt's deniedResolvedAddresses). */
struct net_cidr {
    int family; /* 4 or 6 */
    uint8_t addr[16];
    unsigned bits;
};
int net_cidr_parse(const char *s, struct net_cidr *out, const char **why);
bool net_cidr_match(const struct net_cidr *c, int family, const uint8_t *addr);

/* An upstream proxy URL: http://[user:password@]host[:port][/] (parentProxy,
 * or the supervisor's own HTTP_PROXY). auth is the Proxy-Authorization value
 * ("Basic ...") or empty. */
struct net_proxy_url {
    char host[256];
    uint16_t port;
    char auth[600];
};
int net_proxy_url_parse(const char *url, struct net_proxy_url *out, const char **why);
/* url as it may be shown in a message: credentials ("user:password@")
 * replaced by "<credentials>@", control bytes by '?', cut to n - 1 bytes. */
void net_proxy_url_redact(const char *url, char *out, size_t n);

/* A NO_PROXY list: "*", names (a leading "." or not: the name and its
 * subdomains), addresses and ranges, separated by commas or spaces. */
struct net_noproxy_item {
    bool is_cidr;
    char name[256];
    struct net_cidr cidr;
};
struct net_noproxy {
    bool all;
    struct net_noproxy_item *v;
    size_t n;
};
int net_noproxy_parse(const char *list, struct net_noproxy *out);
bool net_noproxy_match(const struct net_noproxy *np, const struct net_target *t);
void net_noproxy_free(struct net_noproxy *np);

#endif
