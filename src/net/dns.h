/* dns.h: cordon's DNS server for the sandbox, on the supervisor's libuv loop.
 *
 * Owns: answering the sandbox's queries (UDP and TCP on its 127.0.0.1:53,
 * sockets made by the sandbox's init and passed out, like the proxy's
 * listeners) from the policy alone. Nothing is ever forwarded or resolved
 * on the host: the answer for a name the policy could allow is a synthetic
 * address (synth.h) that the transparent capture maps back to the name, so
 * the proxy still decides on the name and resolves it only after allowing
 * it (egress-attacks.md T20, T28).
 *
 * Answers (RFC 1035 4.1.1 codes):
 *  - A, AAAA of a name the policy could allow (net_decide_any_port: allowed
 *    on at least one port): one synthetic address, TTL DNS_TTL; AAAA gets no
 *    data when the sandbox has no IPv6;
 *  - "localhost" and names under it (RFC 6761 6.3): 127.0.0.1 and ::1, the
 *    sandbox's own loopback;
 *  - PTR of a synthetic address cordon gave out: its name;
 *  - any other name, any type: NXDOMAIN, and a dns.query deny record;
 *  - other types of an allowed name: NOERROR with no data (TXT, NULL, MX,
 *    HTTPS... carry nothing in or out); ANY and zone transfers: NOTIMP
 *    (RFC 8482 lets a server decline ANY);
 *  - malformed queries: as dnsmsg.h says.
 */
#ifndef CORDON_DNS_H
#define CORDON_DNS_H

#include "cordon.h"
#include "audit/audit.h"
#include "net/synth.h"
#include "policy/netrule.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define DNS_TTL 60

struct dns_policy {
    const struct net_rules *rules;
    struct synth_map *synth;
    bool ipv6;          /* the sandbox holds the IPv6 range: AAAA answered */
};

/* The answer to one query. Returns its length (0: send nothing). When the
 * name is refused, *deny is set to the fields of a dns.query record (the
 * caller owns it); otherwise left NULL. */
size_t dns_respond(const struct dns_policy *pol, const uint8_t *msg, size_t len, uint8_t *out,
                   size_t cap, json_t **deny);

struct dns_server;

int dns_server_new(uv_loop_t *loop, const struct dns_policy *pol, struct audit *audit,
                   struct dns_server **out, struct cordon_error *err);
/* Serve a UDP socket, or a listening TCP socket (non-blocking,
 * close-on-exec); takes ownership of fd either way. */
int dns_server_add_udp(struct dns_server *s, int fd, struct cordon_error *err);
int dns_server_add_tcp(struct dns_server *s, int fd, struct cordon_error *err);
/* Live update (--control-fd): answer by these rules from now on (they must
 * stay valid until s is freed). */
void dns_server_set_rules(struct dns_server *s, const struct net_rules *rules);
/* Close everything; s is freed once libuv has released its handles (run the
 * loop until it has no more work). */
void dns_server_free(struct dns_server *s);

#endif
