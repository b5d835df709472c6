/* resolver.c: c-ares driven by libuv (uv_poll per resolver socket, one timer).
 *
 * Invariants: a cancelled request is freed when c-ares finishes with it and
 * its callback never runs; static network.hosts answers are delivered from
 * the loop (a zero-length timer), never synchronously, so callers see one
 * code path.
 */
#include "resolver.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <ares.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct sockw {
    uv_poll_t poll;
    ares_socket_t fd;
    struct resolver *r;
    struct sockw *next;
};

struct resolver {
    uv_loop_t *loop;
    ares_channel ch;
    uv_timer_t timer;
    struct sockw *socks;
    struct resolver_host *hosts;
    size_t nhosts;
    struct resolve_req *pending_static; /* static answers waiting for the loop */
    uv_timer_t static_timer;
    bool closing;
};

struct resolve_req {
    struct resolver *r;
    resolve_cb cb;
    void *ud;
    uint16_t port;
    bool cancelled;
    /* static answer */
    struct sockaddr_storage addr;
    struct resolve_req *next;
    /* c-ares may answer inside ares_getaddrinfo (the hosts file, "localhost"):
     * such an answer is kept here and delivered from the loop, as a static
     * one, so that resolver_lookup never returns a request already freed */
    bool in_lookup, deferred;
    int dstatus;
    const char *dmsg;
    struct sockaddr_storage *daddrs;
    size_t dn;
};

static void arm_timer(struct resolver *r);

static void on_timer(uv_timer_t *t)
{
    struct resolver *r = t->data;
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    arm_timer(r);
}

static void arm_timer(struct resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
    if (!tvp) {
        uv_timer_stop(&r->timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)tvp->tv_usec / 1000 + 1;
    uv_timer_start(&r->timer, on_timer, ms, 0);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    struct sockw *w = p->data;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0 || (events & UV_READABLE))
        rfd = w->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = w->fd;
    struct resolver *r = w->r;
    ares_process_fd(r->ch, rfd, wfd);
    arm_timer(r);
}

static void free_handle(uv_handle_t *h)
{
    free(h->data);
}

static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct resolver *r = data;
    struct sockw **pp = &r->socks, *w = NULL;
    for (; *pp; pp = &(*pp)->next) {
        if ((*pp)->fd == fd) {
            w = *pp;
            break;
        }
    }
    if (!readable && !writable) {
        if (w) {
            *pp = w->next;
            uv_poll_stop(&w->poll);
            uv_close((uv_handle_t *)&w->poll, free_handle);
        }
        return;
    }
    if (!w) {
        w = calloc(1, sizeof(*w));
        if (!w)
            return;
        if (uv_poll_init_socket(r->loop, &w->poll, fd) < 0) {
            free(w);
            return;
        }
        w->fd = fd;
        w->r = r;
        w->poll.data = w;
        w->next = r->socks;
        r->socks = w;
    }
    uv_poll_start(&w->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), on_poll);
}

int resolver_new(uv_loop_t *loop, const char *servers, const struct resolver_host *hosts,
                 size_t nhosts, struct resolver **out, struct cordon_error *err)
{
    static bool lib_init;
    if (!lib_init) {
        int rc = ares_library_init(ARES_LIB_INIT_ALL);
        if (rc != ARES_SUCCESS)
            return cordon_err_set(err, EIO, "c-ares: %s", ares_strerror(rc));
        lib_init = true;
    }
    struct resolver *r = calloc(1, sizeof(*r));
    if (!r)
        return cordon_err_set(err, ENOMEM, "out of memory");
    r->loop = loop;
    if (nhosts) {
        r->hosts = calloc(nhosts, sizeof(*hosts));
        if (!r->hosts) {
            free(r);
            return cordon_err_set(err, ENOMEM, "out of memory");
        }
        memcpy(r->hosts, hosts, nhosts * sizeof(*hosts));
        r->nhosts = nhosts;
    }
    struct ares_options o = { 0 };
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = r;
    o.timeout = 3000;
    o.tries = 2;
    int rc = ares_init_options(&r->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        free(r->hosts);
        free(r);
        return cordon_err_set(err, EIO, "c-ares: %s", ares_strerror(rc));
    }
    if (servers && *servers) {
        rc = ares_set_servers_ports_csv(r->ch, servers);
        if (rc != ARES_SUCCESS) {
            ares_destroy(r->ch);
            free(r->hosts);
            free(r);
            return cordon_err_set(err, EINVAL, "network.dnsServers: %s", ares_strerror(rc));
        }
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    uv_timer_init(loop, &r->static_timer);
    r->static_timer.data = r;
    *out = r;
    return 0;
}

static void on_static(uv_timer_t *t);

static void deliver(struct resolve_req *q, int status, const struct sockaddr_storage *a, size_t n,
                    const char *msg)
{
    if (q->in_lookup) {
        /* answered synchronously: later, from the loop (on_static) */
        q->deferred = true;
        q->dstatus = status;
        q->dmsg = msg;
        q->daddrs = n ? calloc(n, sizeof(*a)) : NULL;
        q->dn = q->daddrs ? n : 0;
        if (q->daddrs)
            memcpy(q->daddrs, a, n * sizeof(*a));
        else if (n)
            q->dstatus = -ENOMEM, q->dmsg = "out of memory";
        q->next = q->r->pending_static;
        q->r->pending_static = q;
        uv_timer_start(&q->r->static_timer, on_static, 0, 0);
        return;
    }
    if (!q->cancelled)
        q->cb(q->ud, status, a, n, msg);
    free(q->daddrs);
    free(q);
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    struct resolve_req *q = arg;
    if (status != ARES_SUCCESS || !res) {
        int e = status == ARES_ENOTFOUND || status == ARES_ENODATA ? -ENOENT : -EHOSTUNREACH;
        if (res)
            ares_freeaddrinfo(res);
        deliver(q, e, NULL, 0, status == ARES_EDESTRUCTION ? "resolver shut down"
                                                             : ares_strerror(status));
        return;
    }
    struct sockaddr_storage addrs[RESOLVER_MAX_ADDRS];
    size_t n = 0;
    for (struct ares_addrinfo_node *p = res->nodes; p && n < RESOLVER_MAX_ADDRS; p = p->ai_next) {
        if (p->ai_family != AF_INET && p->ai_family != AF_INET6)
            continue;
        memset(&addrs[n], 0, sizeof(addrs[n]));
        memcpy(&addrs[n], p->ai_addr, p->ai_addrlen);
        if (p->ai_family == AF_INET)
            ((struct sockaddr_in *)&addrs[n])->sin_port = htons(q->port);
        else
            ((struct sockaddr_in6 *)&addrs[n])->sin6_port = htons(q->port);
        n++;
    }
    ares_freeaddrinfo(res);
    if (n == 0)
        deliver(q, -ENOENT, NULL, 0, "no address");
    else
        deliver(q, 0, addrs, n, NULL);
}

static void on_static(uv_timer_t *t)
{
    struct resolver *r = t->data;
    struct resolve_req *q = r->pending_static;
    r->pending_static = NULL;
    while (q) {
        struct resolve_req *next = q->next;
        if (q->deferred)
            deliver(q, q->dstatus, q->daddrs, q->dn, q->dmsg);
        else
            deliver(q, 0, &q->addr, 1, NULL);
        q = next;
    }
}

struct resolve_req *resolver_lookup(struct resolver *r, const char *name, uint16_t port,
                                    resolve_cb cb, void *ud)
{
    struct resolve_req *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->r = r;
    q->cb = cb;
    q->ud = ud;
    q->port = port;
    for (size_t i = 0; i < r->nhosts; i++) {
        if (strcmp(r->hosts[i].name, name) != 0)
            continue;
        q->addr = r->hosts[i].addr;
        if (q->addr.ss_family == AF_INET)
            ((struct sockaddr_in *)&q->addr)->sin_port = htons(port);
        else
            ((struct sockaddr_in6 *)&q->addr)->sin6_port = htons(port);
        q->next = r->pending_static;
        r->pending_static = q;
        uv_timer_start(&r->static_timer, on_static, 0, 0);
        return q;
    }
    struct ares_addrinfo_hints h = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM };
    q->in_lookup = true;
    ares_getaddrinfo(r->ch, name, NULL, &h, on_addrinfo, q);
    q->in_lookup = false;
    arm_timer(r);
    return q;
}

void resolver_cancel(struct resolve_req *q)
{
    if (q)
        q->cancelled = true;
}

static void free_resolver(uv_handle_t *h)
{
    struct resolver *r = h->data;
    free(r->hosts);
    free(r);
}

void resolver_free(struct resolver *r)
{
    if (!r)
        return;
    /* Pending callbacks run with ARES_EDESTRUCTION; their requests are freed
     * there (and must have been cancelled by their owners already). */
    ares_destroy(r->ch);
    on_static(&r->static_timer);
    uv_close((uv_handle_t *)&r->timer, NULL);
    /* Close callbacks run in order: r is freed after both handles are done. */
    uv_close((uv_handle_t *)&r->static_timer, free_resolver);
}

int resolver_new_for_policy(uv_loop_t *loop, const struct cordon_policy *p,
                            struct resolver **out, struct cordon_error *err)
{
    struct resolver_host *hosts = NULL;
    size_t nhosts = 0;
    if (p->net.hosts) {
        hosts = calloc(json_object_size(p->net.hosts) + 1, sizeof(*hosts));
        if (!hosts)
            return cordon_err_set(err, ENOMEM, "out of memory");
        const char *k;
        json_t *v;
        json_object_foreach(p->net.hosts, k, v) {
            struct resolver_host *h = &hosts[nhosts];
            snprintf(h->name, sizeof(h->name), "%s", k);
            const char *a = json_string_value(v);
            struct sockaddr_in *s4 = (struct sockaddr_in *)&h->addr;
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&h->addr;
            if (a && inet_pton(AF_INET, a, &s4->sin_addr) == 1)
                s4->sin_family = AF_INET;
            else if (a && inet_pton(AF_INET6, a, &s6->sin6_addr) == 1)
                s6->sin6_family = AF_INET6;
            else
                continue;
            nhosts++;
        }
    }
    char *servers = NULL;
    if (p->net.dns_servers.n) {
        size_t len = 1;
        for (size_t i = 0; i < p->net.dns_servers.n; i++)
            len += strlen(p->net.dns_servers.v[i]) + 1;
        servers = calloc(1, len);
        if (!servers) {
            free(hosts);
            return cordon_err_set(err, ENOMEM, "out of memory");
        }
        for (size_t i = 0; i < p->net.dns_servers.n; i++) {
            if (i)
                strcat(servers, ",");
            strcat(servers, p->net.dns_servers.v[i]);
        }
    }
    int r = resolver_new(loop, servers, hosts, nhosts, out, err);
    free(servers);
    free(hosts);
    return r;
}
