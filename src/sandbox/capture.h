/* capture.h: transparent capture inside the sandbox's network namespace.
 *
 * Owns: what the sandbox's init sets up in its own network namespace (where
 * it holds CAP_NET_ADMIN through its user namespace) so that every program,
 * proxy variables or not, goes through cordon's proxy and resolver:
 *  - lo gets 198.18.0.1/15 and fd7a:6b8c:5d2e::1/96 (synth.h): the synthetic
 *    ranges become local (IPv4: a local route for the whole prefix, as lo's
 *    prefixes always are; IPv6: a prefix route on lo), and getaddrinfo's
 *    AI_ADDRCONFIG sees an address of each family;
 *  - each IP literal the policy allows gets a local host route, so a connect
 *    to it is captured and judged like a name;
 *  - every other destination has an "unreachable" default route: a connect
 *    (or a UDP send) fails at once with EHOSTUNREACH, no packet anywhere;
 *  - an nftables table "cordon" (inet): chain "capture" (nat, output,
 *    priority -100) redirects every TCP connection to a non-loopback address
 *    to 127.0.0.1:CORDON_TRANSPARENT_PORT (or [::1]), where the proxy reads
 *    the original destination (SO_ORIGINAL_DST); chain "guard" (filter,
 *    output, priority 0, policy drop) lets through only loopback and TCP:
 *    UDP fails at once (EPERM where a route exists) unless it goes to the
 *    sandbox's own loopback, where its DNS server is, so QUIC falls back to
 *    TCP; every other protocol likewise.
 * The sandbox's loopback (127.0.0.0/8, ::1) is its own and never captured:
 * servers the command starts there keep working, and so do cordon's
 * listeners.
 *
 * Every netlink message is built here before clone(2) (the plan); init only
 * sends the bytes and reads the acknowledgements, with no allocation.
 */
#ifndef CORDON_CAPTURE_H
#define CORDON_CAPTURE_H

#include "cordon.h"
#include "policy/netrule.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CORDON_DNS_PORT 53
/* The transparent listener on the sandbox's loopback (Squid's customary
 * interception port). */
#define CORDON_TRANSPARENT_PORT 3129

/* MSG_CAPTURE carries the transparent listener, the DNS UDP socket, the DNS
 * TCP listener and a NETLINK_ROUTE socket of the sandbox's namespace (for
 * live updates), in that order; its code is then these flags. */
#define CAPTURE_NFDS 4
#define CAPTURE_F_IPV6 1

struct capture_plan {
    bool on;
    uint8_t *rtnl4, *rtnl6, *nft; /* netlink messages, each a run of them */
    size_t rtnl4_len, rtnl6_len, nft_len;
    unsigned rtnl4_acks, rtnl6_acks, nft_acks;
    char *resolv_conf;            /* the sandbox's /etc/resolv.conf */
    size_t resolv_len;
};

int capture_plan_build(struct capture_plan *cp, const struct net_rules *rules,
                       struct cordon_error *err);
void capture_plan_free(struct capture_plan *cp);

/* In init, after lo is up: the IPv4 half and the nftables table must work
 * (else -errno, and err says which step failed); the IPv6 half may be
 * missing (no IPv6 in this kernel): *ipv6 says whether it is there. */
int capture_apply(const struct capture_plan *cp, bool *ipv6, char *err, size_t errlen);

/* In the supervisor, when the rules change while the command runs
 * (--control-fd): add and remove the local routes of allowed addresses so
 * they match the new rules. nl is a NETLINK_ROUTE socket init made in the
 * sandbox's namespace: its opener's capabilities there and the supervisor's
 * own (it owns the sandbox's user namespace) are what rtnetlink checks. */
int capture_update_routes(int nl, const struct net_rules *old, const struct net_rules *rules,
                          struct cordon_error *err);

#endif
