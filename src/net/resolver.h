/* resolver.h: host-side name resolution with c-ares on the supervisor's libuv
 * loop.
 *
 * Owns: asking DNS (the host's resolvers, or network.dnsServers) and the
 * static network.hosts map. Callers only ever ask for names the policy has
 * already allowed: a denied name is never queried (egress-attacks.md T20,
 * T28).
 */
#ifndef CORDON_RESOLVER_H
#define CORDON_RESOLVER_H

#include "cordon.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#define RESOLVER_MAX_ADDRS 16

struct resolver;
struct resolve_req;

/* status 0: addrs[0..n) are the answers (port filled in); otherwise a
 * negative errno and a static message. */
typedef void (*resolve_cb)(void *ud, int status, const struct sockaddr_storage *addrs, size_t n,
                           const char *msg);

struct resolver_host {
    char name[256];             /* canonical name */
    struct sockaddr_storage addr;
};

/* servers: "ip[:port],..." or NULL for the host's resolv.conf. hosts: static
 * answers consulted before DNS (copied). */
int resolver_new(uv_loop_t *loop, const char *servers, const struct resolver_host *hosts,
                 size_t nhosts, struct resolver **out, struct cordon_error *err);
/* A resolver for the policy's network.dnsServers and network.hosts (entries
 * that are not an address literal are left out, as settings validation
 * already refused them). */
struct cordon_policy;
int resolver_new_for_policy(uv_loop_t *loop, const struct cordon_policy *p,
                            struct resolver **out, struct cordon_error *err);
/* Start a lookup; the callback runs later from the loop, never inside this
 * call. Returns NULL on allocation failure. */
struct resolve_req *resolver_lookup(struct resolver *r, const char *name, uint16_t port,
                                    resolve_cb cb, void *ud);
/* The callback will not be called. */
void resolver_cancel(struct resolve_req *q);
void resolver_free(struct resolver *r);

#endif
