/* ports.h: local services on request, over TCP (network.hostPorts and
 * network.publishPorts).
 *
 * Owns: the supervisor's side of both directions, served on its event loop.
 *  - hostPorts: the sandbox's init listens on each listed port of the
 *    sandbox's own loopback (127.0.0.1 and ::1, where `localhost:PORT`
 *    leads) and passes the listener out (MSG_HOSTPORT); for each connection
 *    the supervisor connects to the same port of the host's loopback
 *    (127.0.0.1, then ::1) and relays. Nothing else of the host's loopback is
 *    reachable: the sandbox's loopback is its own, and the proxy still
 *    refuses loopback addresses.
 *  - publishPorts: the supervisor listens on each listed port of the host's
 *    loopback (127.0.0.1, and ::1 where it can) before the command starts;
 *    for each connection it asks init (MSG_PUBLISH) to connect to that port
 *    of the sandbox's loopback, since only a process in the sandbox's
 *    network namespace can (an unprivileged supervisor cannot setns there),
 *    and relays over the socket init passes back (MSG_PUBLISHED). Init
 *    answers in order, so replies are matched to requests first in, first
 *    out.
 * Every connection is an audit record: net.connect (via "hostPort") or
 * net.accept (via "publish"), and net.close with the bytes each way.
 */
#ifndef CORDON_PORTS_H
#define CORDON_PORTS_H

#include "audit/audit.h"
#include "policy/policy.h"

#include <uv.h>

struct ports;

struct ports_config {
    uv_loop_t *loop;
    struct audit *audit;
    const cordon_policy *policy;
    int sync_fd;                 /* to init: MSG_PUBLISH */
    cordon_log_fn log;
    void *log_ud;
};

/* Listen on the host for publishPorts (an error when a port is taken). */
int ports_new(const struct ports_config *cfg, struct ports **out, struct cordon_error *err);
/* MSG_HOSTPORT: init's listener for hostPorts[index] (takes ownership). */
void ports_add_host_listener(struct ports *p, int index, int fd);
/* MSG_PUBLISHED: init's answer to the oldest MSG_PUBLISH (0 and the
 * connected socket, or -errno and -1). Takes ownership of fd. */
void ports_published(struct ports *p, int code, int fd);
/* Close everything; freed once libuv is done. */
void ports_free(struct ports *p);

#endif
