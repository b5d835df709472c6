/* ports.c: see ports.h. */
#include "ports.h"

#include "sandbox.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Backpressure: a side stops reading while more than HIGH bytes wait to be
 * written to the other, and resumes below LOW. */
#define RELAY_CHUNK 65536
#define RELAY_HIGH (1u << 20)
#define RELAY_LOW (256u << 10)

struct relay;

struct side {
    uv_tcp_t tcp;
    struct relay *r;
    bool open;      /* the handle is initialised (and must be closed) */
    bool reading;
    bool eof;       /* it sent EOF */
    bool shut;      /* our shutdown of it completed (all written, then FIN) */
    size_t queued;  /* bytes written to it, not yet done */
    uv_shutdown_t sreq;
};

struct relay {
    struct ports *p;
    struct relay *next, *prev;
    struct side in;        /* the sandbox's end */
    struct side out;       /* the host's end */
    bool publish;
    int index;             /* in hostPorts or publishPorts */
    uint16_t port;
    bool connected;        /* relaying (net.close is due) */
    bool closing;
    bool queued_init;      /* publish: waiting for init's answer */
    bool tried6;           /* hostPort: ::1 after 127.0.0.1 refused */
    bool redial;           /* hostPort: dial ::1 once the first handle is closed */
    int handles;
    uint64_t up, down;     /* sandbox -> host, host -> sandbox */
    char addr[INET6_ADDRSTRLEN + 8]; /* hostPort: dialled; publish: the host's client */
    uv_connect_t creq;
};

struct listener {
    uv_tcp_t tcp;
    struct ports *p;
    int index;
    bool publish;
};

struct ports {
    uv_loop_t *loop;
    struct audit *audit;
    const cordon_policy *policy;
    int sync_fd;
    cordon_log_fn log;
    void *log_ud;
    struct listener **ls;
    size_t nls;
    struct relay *relays;
    /* publish requests sent to init, oldest first */
    struct relay **fifo;
    size_t fhead, flen, fcap;
    int handles;           /* listener handles still open */
    size_t nrelays;
    bool freeing;
};

static void maybe_free(struct ports *p)
{
    if (!p->freeing || p->handles > 0 || p->nrelays > 0)
        return;
    free(p->ls);
    free(p->fifo);
    free(p);
}

/* ---- audit ------------------------------------------------------------------ */

static void rule_name(const struct relay *r, char *buf, size_t n)
{
    snprintf(buf, n, "network.%s[%d]", r->publish ? "publishPorts" : "hostPorts", r->index);
}

static void audit_open(struct relay *r, const char *reason)
{
    char rule[64];
    rule_name(r, rule, sizeof(rule));
    json_t *f;
    if (r->publish)
        f = json_pack("{s:i, s:s, s:s, s:s}", "port", r->port, "via", "publish", "peer", r->addr,
                      "rule", rule);
    else
        f = json_pack("{s:s, s:i, s:s, s:s, s:s}", "host", "localhost", "port", r->port, "via",
                      "hostPort", "address", r->addr, "rule", rule);
    if (f && reason)
        json_object_set_new(f, "reason", json_string(reason));
    audit_emit(r->p->audit, r->publish ? "net.accept" : "net.connect", true, f);
}

static void audit_close(struct relay *r)
{
    json_t *f = json_pack("{s:s, s:i, s:s, s:I, s:I}", "host", "localhost", "port", r->port,
                          "via", r->publish ? "publish" : "hostPort", "bytes_up",
                          (json_int_t)r->up, "bytes_down", (json_int_t)r->down);
    if (f && !r->publish)
        json_object_set_new(f, "address", json_string(r->addr));
    if (f && r->publish)
        json_object_set_new(f, "peer", json_string(r->addr));
    audit_emit(r->p->audit, "net.close", true, f);
}

/* ---- relay ------------------------------------------------------------------ */

static void relay_free_if_done(struct relay *r)
{
    if (r->handles > 0 || r->queued_init)
        return;
    struct ports *p = r->p;
    if (r->next)
        r->next->prev = r->prev;
    if (r->prev)
        r->prev->next = r->next;
    else
        p->relays = r->next;
    free(r);
    p->nrelays--;
    maybe_free(p);
}

static void dial(struct relay *r);

static void side_closed(uv_handle_t *h)
{
    struct side *s = h->data;
    struct relay *r = s->r;
    r->handles--;
    if (s == &r->out && r->redial && !r->closing) {
        r->redial = false;
        dial(r);
        return;
    }
    relay_free_if_done(r);
}

static void side_close(struct side *s, bool reset)
{
    if (!s->open)
        return;
    s->open = false;
    if (reset && uv_tcp_close_reset(&s->tcp, side_closed) == 0)
        return;
    if (!uv_is_closing((uv_handle_t *)&s->tcp))
        uv_close((uv_handle_t *)&s->tcp, side_closed);
}

/* Close both ends; reset makes the sandbox's end see ECONNRESET. */
static void relay_close(struct relay *r, bool reset)
{
    if (r->closing)
        return;
    r->closing = true;
    if (r->connected)
        audit_close(r);
    side_close(&r->in, reset);
    side_close(&r->out, reset);
    relay_free_if_done(r);
}

static struct side *other(struct relay *r, const struct side *s)
{
    return s == &r->in ? &r->out : &r->in;
}

struct wreq {
    uv_write_t req;
    struct side *from;
    char *buf;
    size_t len;
};

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)h;
    (void)hint;
    buf->base = malloc(RELAY_CHUNK);
    buf->len = buf->base ? RELAY_CHUNK : 0;
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void side_read(struct side *s)
{
    if (s->open && !s->reading && !s->eof && !s->r->closing &&
        uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) == 0)
        s->reading = true;
}

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct side *from = w->from;
    struct relay *r = from->r;
    struct side *to = other(r, from);
    to->queued -= w->len;
    free(w->buf);
    free(w);
    if (status < 0) {
        relay_close(r, true);
        return;
    }
    if (to->queued < RELAY_LOW)
        side_read(from);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct side *s = req->data;
    struct relay *r = s->r;
    s->shut = true;
    if (status < 0 || (r->in.shut && r->out.shut))
        relay_close(r, false);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct side *from = st->data;
    struct relay *r = from->r;
    struct side *to = other(r, from);
    if (n > 0) {
        struct wreq *w = malloc(sizeof(*w));
        uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
        if (!w || uv_write(&w->req, (uv_stream_t *)&to->tcp, &b, 1, on_written) < 0) {
            free(w);
            free(buf->base);
            relay_close(r, true);
            return;
        }
        w->from = from;
        w->buf = buf->base;
        w->len = (size_t)n;
        to->queued += (size_t)n;
        if (from == &r->in)
            r->up += (uint64_t)n;
        else
            r->down += (uint64_t)n;
        if (to->queued > RELAY_HIGH) {
            uv_read_stop(st);
            from->reading = false;
        }
        return;
    }
    free(buf->base);
    if (n == 0)
        return;
    uv_read_stop(st);
    from->reading = false;
    if (n != UV_EOF) {
        relay_close(r, true);
        return;
    }
    /* Half-close: what was read reaches the other end, then its FIN. */
    from->eof = true;
    to->sreq.data = to;
    if (uv_shutdown(&to->sreq, (uv_stream_t *)&to->tcp, on_shutdown) < 0)
        relay_close(r, false);
}

static void relay_start(struct relay *r)
{
    r->connected = true;
    side_read(&r->in);
    side_read(&r->out);
}

static int side_init(struct relay *r, struct side *s)
{
    if (uv_tcp_init(r->p->loop, &s->tcp) < 0)
        return -1;
    s->r = r;
    s->tcp.data = s;
    s->open = true;
    r->handles++;
    return 0;
}

static struct relay *relay_new(struct ports *p, bool publish, int index, uint16_t port)
{
    struct relay *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->p = p;
    r->publish = publish;
    r->index = index;
    r->port = port;
    r->next = p->relays;
    if (r->next)
        r->next->prev = r;
    p->relays = r;
    p->nrelays++;
    return r;
}

/* ---- hostPorts: the sandbox connects, the supervisor dials the host --------- */

static void on_dialled(uv_connect_t *req, int status)
{
    struct relay *r = req->data;
    if (r->closing)
        return;
    if (status == 0) {
        audit_open(r, NULL);
        relay_start(r);
        return;
    }
    if (status == UV_ECONNREFUSED && !r->tried6) {
        /* nothing on 127.0.0.1: perhaps a server of [::1] only */
        r->tried6 = true;
        r->redial = true; /* once the handle is closed: side_closed() */
        side_close(&r->out, false);
        return;
    }
    char why[200];
    snprintf(why, sizeof(why), "cannot connect: %s", uv_strerror(status));
    audit_open(r, why);
    relay_close(r, true);
}

static void dial(struct relay *r)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    if (!r->tried6) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons(r->port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        snprintf(r->addr, sizeof(r->addr), "127.0.0.1");
    } else {
        struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(r->port),
                                  .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        memcpy(&ss, &a, sizeof(a));
        snprintf(r->addr, sizeof(r->addr), "::1");
    }
    r->creq.data = r;
    if (side_init(r, &r->out) < 0 ||
        uv_tcp_connect(&r->creq, &r->out.tcp, (struct sockaddr *)&ss, on_dialled) < 0) {
        audit_open(r, "cannot connect: out of resources");
        relay_close(r, true);
    }
}

static void on_host_port(uv_stream_t *srv, int status)
{
    struct listener *l = srv->data;
    struct ports *p = l->p;
    if (status < 0 || p->freeing)
        return;
    struct relay *r = relay_new(p, false, l->index, p->policy->net.host_ports[l->index]);
    if (!r)
        return;
    if (side_init(r, &r->in) < 0 || uv_accept(srv, (uv_stream_t *)&r->in.tcp) < 0) {
        relay_close(r, false);
        return;
    }
    dial(r);
}

/* ---- publishPorts: the host connects, init dials inside ----------------------- */

static int fifo_push(struct ports *p, struct relay *r)
{
    if (p->flen == p->fcap) {
        size_t cap = p->fcap ? p->fcap * 2 : 16;
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        struct relay **nv = malloc(cap * sizeof(*nv));
        if (!nv)
            return -1;
        for (size_t i = 0; i < p->flen; i++)
            nv[i] = p->fifo[(p->fhead + i) % p->fcap];
        free(p->fifo);
        p->fifo = nv;
        p->fcap = cap;
        p->fhead = 0;
    }
    p->fifo[(p->fhead + p->flen++) % p->fcap] = r;
    return 0;
}

static void on_publish(uv_stream_t *srv, int status)
{
    struct listener *l = srv->data;
    struct ports *p = l->p;
    if (status < 0 || p->freeing)
        return;
    struct relay *r = relay_new(p, true, l->index, p->policy->net.publish_ports[l->index]);
    if (!r)
        return;
    if (side_init(r, &r->out) < 0 || uv_accept(srv, (uv_stream_t *)&r->out.tcp) < 0) {
        relay_close(r, false);
        return;
    }
    struct sockaddr_storage peer;
    int pl = sizeof(peer);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (uv_tcp_getpeername(&r->out.tcp, (struct sockaddr *)&peer, &pl) == 0) {
        if (peer.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&peer;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&peer;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        }
    }
    snprintf(r->addr, sizeof(r->addr), strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
    struct sync_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MSG_PUBLISH;
    m.code = r->port;
    if (fifo_push(p, r) < 0) {
        relay_close(r, true);
        return;
    }
    r->queued_init = true;
    if (send(p->sync_fd, &m, sizeof(m), MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)sizeof(m)) {
        /* init is gone or stuck: drop the request again */
        p->flen--;
        r->queued_init = false;
        audit_open(r, "cannot connect: the sandbox does not answer");
        relay_close(r, true);
    }
}

void ports_published(struct ports *p, int code, int fd)
{
    if (!p || p->flen == 0) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct relay *r = p->fifo[p->fhead];
    p->fhead = (p->fhead + 1) % p->fcap;
    p->flen--;
    r->queued_init = false;
    if (r->closing || p->freeing) {
        if (fd >= 0)
            close(fd);
        relay_free_if_done(r);
        return;
    }
    if (code < 0 || fd < 0) {
        char why[200];
        if (code == -ECONNREFUSED)
            snprintf(why, sizeof(why), "cannot connect: nothing listens on port %u in the "
                                       "sandbox", r->port);
        else
            snprintf(why, sizeof(why), "cannot connect: %s", strerror(code < 0 ? -code : EIO));
        audit_open(r, why);
        if (fd >= 0)
            close(fd);
        relay_close(r, true);
        return;
    }
    if (side_init(r, &r->in) < 0) {
        close(fd);
        relay_close(r, true);
        return;
    }
    if (uv_tcp_open(&r->in.tcp, fd) < 0) {
        close(fd);
        relay_close(r, true);
        return;
    }
    audit_open(r, NULL);
    relay_start(r);
}

/* ---- listeners ----------------------------------------------------------------- */

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    struct ports *p = l->p;
    free(l);
    p->handles--;
    maybe_free(p);
}

static int add_listener(struct ports *p, int index, bool publish, int fd, const struct sockaddr *bind_to)
{
    struct listener *l = calloc(1, sizeof(*l));
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    struct listener **nv = l ? realloc(p->ls, (p->nls + 1) * sizeof(*nv)) : NULL;
    if (!nv) {
        free(l);
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    p->ls = nv;
    l->p = p;
    l->index = index;
    l->publish = publish;
    if (uv_tcp_init(p->loop, &l->tcp) < 0) {
        free(l);
        if (fd >= 0)
            close(fd);
        return -ENOMEM;
    }
    l->tcp.data = l;
    p->ls[p->nls++] = l;
    p->handles++;
    int r = 0;
    if (fd >= 0) {
        r = uv_tcp_open(&l->tcp, fd);
        if (r < 0)
            close(fd);
    } else if (bind_to) {
        r = uv_tcp_bind(&l->tcp, bind_to, bind_to->sa_family == AF_INET6 ? UV_TCP_IPV6ONLY : 0);
    } else {
        r = UV_EBADF; /* a host port whose descriptor did not arrive (clang-tidy) */
    }
    if (r == 0)
        r = uv_listen((uv_stream_t *)&l->tcp, 128, publish ? on_publish : on_host_port);
    return r < 0 ? r : 0;
}

int ports_new(const struct ports_config *cfg, struct ports **out, struct cordon_error *err)
{
    *out = NULL;
    struct ports *p = calloc(1, sizeof(*p));
    if (!p)
        return cordon_err_set(err, ENOMEM, "out of memory");
    p->loop = cfg->loop;
    p->audit = cfg->audit;
    p->policy = cfg->policy;
    p->sync_fd = cfg->sync_fd;
    p->log = cfg->log;
    p->log_ud = cfg->log_ud;
    const cordon_policy *pol = cfg->policy;
    for (size_t i = 0; i < pol->net.npublish_ports; i++) {
        uint16_t port = pol->net.publish_ports[i];
        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(port),
                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        int r = add_listener(p, (int)i, true, -1, (struct sockaddr *)&a4);
        if (r < 0) {
            ports_free(p);
            return cordon_err_set(err, -r == EADDRINUSE ? EADDRINUSE : -r,
                                  "network.publishPorts[%zu]: cannot listen on 127.0.0.1:%u on "
                                  "the host: %s", i, port, uv_strerror(r));
        }
        /* [::1] too where the host has it, so `localhost` works either
         * way; a host without IPv6 (or with the port taken there) keeps
         * 127.0.0.1 only. */
        r = add_listener(p, (int)i, true, -1, (struct sockaddr *)&a6);
        if (r < 0 && p->log) {
            char line[300];
            snprintf(line, sizeof(line), "network.publishPorts[%zu]: port %u is published on "
                                         "127.0.0.1 only ([::1]: %s)", i, port, uv_strerror(r));
            p->log(p->log_ud, CORDON_LOG_DEBUG, line);
        }
        if (r < 0) {
            /* that listener is closed again, the IPv4 one stays */
            struct listener *l = p->ls[--p->nls];
            uv_close((uv_handle_t *)&l->tcp, listener_closed);
        }
    }
    *out = p;
    return 0;
}

void ports_add_host_listener(struct ports *p, int index, int fd)
{
    if (!p || p->freeing || index < 0 || (size_t)index >= p->policy->net.nhost_ports) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (add_listener(p, index, false, fd, NULL) < 0 && p->log) {
        char line[200];
        snprintf(line, sizeof(line), "network.hostPorts[%d]: cannot serve port %u",
                 index, p->policy->net.host_ports[index]);
        p->log(p->log_ud, CORDON_LOG_WARN, line);
    }
}

void ports_free(struct ports *p)
{
    if (!p)
        return;
    p->freeing = true;
    for (size_t i = 0; i < p->nls; i++)
        if (!uv_is_closing((uv_handle_t *)&p->ls[i]->tcp))
            uv_close((uv_handle_t *)&p->ls[i]->tcp, listener_closed);
    p->nls = 0;
    /* requests init never answered */
    while (p->flen) {
        struct relay *r = p->fifo[p->fhead];
        p->fhead = (p->fhead + 1) % p->fcap;
        p->flen--;
        r->queued_init = false;
    }
    for (struct relay *r = p->relays, *next; r; r = next) {
        next = r->next;
        bool was_closing = r->closing;
        relay_close(r, false);
        if (was_closing)
            relay_free_if_done(r);
    }
    maybe_free(p);
}
