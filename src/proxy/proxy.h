/* proxy.h: the egress proxy: HTTP (CONNECT and absolute-form) and SOCKS5
 * listeners served from one libuv loop in the supervisor.
 *
 * The listeners are created by the sandbox's init inside the sandbox's own
 * network namespace and passed here, so only the sandbox can reach them: no
 * proxy password, no socket file, no relay process (shared/DESIGN.md).
 * Nothing here assumes namespaces: `cordon proxy` serves its own listeners
 * with the same code.
 */
#ifndef CORDON_PROXY_H
#define CORDON_PROXY_H

#include "cordon.h"
#include "audit/audit.h"
#include "net/resolver.h"
#include "policy/netrule.h"

#include <jansson.h>
#include <stdbool.h>
#include <uv.h>

enum proxy_listener_kind {
    PROXY_HTTP,
    PROXY_SOCKS5,
};

struct proxy_config {
    const struct net_rules *rules;
    json_t *deny_reasons;      /* deniedDomainReasons: entry text -> reason (borrowed) */
    bool allow_private;        /* network.allowPrivateAddresses */
    struct audit *audit;
    struct resolver *resolver;
};

struct proxy;

int proxy_new(uv_loop_t *loop, const struct proxy_config *cfg, struct proxy **out,
              struct cordon_error *err);
/* Serve a listening socket (non-blocking, close-on-exec); takes ownership. */
int proxy_add_listener(struct proxy *px, int fd, enum proxy_listener_kind kind,
                       struct cordon_error *err);
/* Close listeners and every connection; px is freed once libuv has released
 * its handles (run the loop until it has no more work). */
void proxy_free(struct proxy *px);

/* Counters, for tests and the exit summary. */
struct proxy_stats {
    unsigned long accepted, denied, active;
};
void proxy_stats(const struct proxy *px, struct proxy_stats *out);

#endif
