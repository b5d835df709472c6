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
#include "net/synth.h"
#include "policy/netrule.h"
#include "policy/reqrule.h"

#include <jansson.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <uv.h>

enum proxy_listener_kind {
    PROXY_HTTP,
    PROXY_SOCKS5,
    PROXY_EXTERNAL_HTTP,  /* relayed as-is to an external proxy (httpProxyPort) */
    PROXY_EXTERNAL_SOCKS, /* relayed as-is to an external proxy (socksProxyPort) */
    PROXY_TRANSPARENT,    /* captured connections (network.transparent): the destination
                             is the one the program dialled (SO_ORIGINAL_DST) */
};

/* An upstream proxy that allowed connections go through: a parent proxy
 * (HTTP, by host and port) or srt's mitmProxy (a unix socket). */
struct proxy_hop {
    bool set;
    /* A parent proxy from the environment that cordon cannot use (https://,
     * socks5://): connections that would go through it are refused with
     * why, never sent direct. */
    bool unusable;
    char why[300];
    bool unix_socket;
    char host[256];        /* parent: canonical host */
    uint16_t port;
    char path[108];        /* mitm: socket path */
    char auth[600];        /* Proxy-Authorization value, or empty */
};

struct proxy_config {
    const struct net_rules *rules;
    json_t *deny_reasons;      /* deniedDomainReasons: entry text -> reason (borrowed) */
    bool allow_private;        /* network.allowPrivateAddresses */
    const struct net_cidr *denied_resolved; /* deniedResolvedAddresses (borrowed) */
    size_t ndenied_resolved;
    struct audit *audit;
    struct resolver *resolver;
    /* parentProxy: http for plain requests, https for CONNECT and SOCKS;
     * hosts matching no_proxy go direct. The resolved-address guard does not
     * apply to what a parent resolves (srt: documented). */
    struct proxy_hop parent_http, parent_https;
    const struct net_noproxy *no_proxy; /* borrowed, may be NULL */
    /* mitmProxy: CONNECTs and SOCKS tunnels to these hosts go to the socket. */
    struct proxy_hop mitm;
    const struct net_entry *mitm_domains;
    size_t nmitm_domains;
    uint16_t external_http_port, external_socks_port; /* host loopback ports */

    /* TLS interception (tlsTerminate); tls_ca NULL: tunnels stay opaque. */
    struct tls_ca *tls_ca;
    SSL_CTX *tls_server, *tls_client;
    const struct net_entry *tls_exclude; /* tunnelled opaquely (borrowed) */
    size_t ntls_exclude;
    int tls_max_tunnels;
    int tls_handshake_timeout_ms;
    bool require_host_match;   /* SNI, CONNECT target and Host must agree (421) */
    bool refuse_opaque;        /* refuseOpaqueTunnels */
    char *const *strip_response_headers; /* folded names (borrowed) */
    size_t nstrip_response_headers;

    /* request rules: judged on plain HTTP and inside intercepted TLS */
    const struct req_rule *rules_req;
    size_t nrules_req;
    int path_mode;             /* enum path_mode */

    /* credentials (tls/creds.h): sentinels become real values, and headers
     * are injected, only toward their own hosts */
    const struct cred_store *creds;
    char *const *strip_request_headers; /* folded names, toward every host */
    size_t nstrip_request_headers;
    bool allow_plaintext_inject;     /* credentials.allowPlaintextInject */
    bool allow_plaintext_header_set; /* network.allowPlaintextHeaderSet */

    /* network.transparent: the names behind the synthetic addresses the
     * sandbox's DNS gave out (borrowed, may be NULL). A captured connection
     * to one is judged as a tunnel to that name; so is a CONNECT or SOCKS
     * request naming one (a client that resolved the name itself, T19). */
    const struct synth_map *synth;

    /* `cordon proxy` with an external decider (proxy/decider.h; borrowed,
     * NULL otherwise): hosts are judged by its hello's lists, every request
     * by its verdict before anything is dialled (an intercepted tunnel's
     * upstream is dialled per request, after the allow), and refusals carry
     * X-Deny-Reason as srt's proxy-only mode words them. */
    struct decider *decider;
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

/* network.parentProxy, or else this process's own proxy variables (as srt):
 * fills cfg's parent hops and sets *no_proxy to the list hosts bypass them
 * by (NULL: none; the caller parses it into storage of its own). -1 with
 * *what ("http", "https") and *why when a URL of the settings does not
 * parse. A variable cordon cannot use (an https:// or socks5:// proxy) is
 * not an error: its hop is marked unusable (connections that need it are
 * refused) and warn[i] (i = 0 http, 1 https) says which variable and why,
 * for the caller to print once; empty when all is well. A path after an
 * http:// variable's host is ignored, as curl and Go do. */
int proxy_parents_from_policy(struct proxy_config *cfg, const cordon_policy *p,
                              const char **no_proxy, const char **what, const char **why,
                              char warn[2][400]);

/* Live update (--control-fd): the host-level rules for the next connection
 * and the next request. The old ones must stay valid until the proxy is
 * freed (records of open connections name their entries). */
void proxy_set_rules(struct proxy *px, const struct net_rules *rules, json_t *deny_reasons,
                     const struct net_cidr *denied_resolved, size_t ndenied_resolved);

/* Counters, for tests and the exit summary. */
struct proxy_stats {
    unsigned long accepted, denied, active, intercepted;
};
void proxy_stats(const struct proxy *px, struct proxy_stats *out);

/* Stop accepting (`cordon proxy` stopping): the listeners close, the
 * connections go on until they end or proxy_free. */
void proxy_close_listeners(struct proxy *px);

#endif
