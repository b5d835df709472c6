/* dns.c: see dns.h.
 *
 * I/O: UDP sockets answer each datagram from the address it was sent to
 * (IPV6_PKTINFO / IP_PKTINFO: the socket is a wildcard one, and a stub that
 * asked 127.0.0.53 ignores an answer from 127.0.0.1); TCP connections
 * (RFC 7766) carry two-byte-length-prefixed queries, answered in order, and
 * are closed after DNS_TCP_IDLE_MS without a query. At most DNS_TCP_MAX
 * connections are open; past that a new one is closed at once.
 */
#include "dns.h"
#include "dnsmsg.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DNS_TCP_MAX 64
#define DNS_TCP_IDLE_MS 10000
#define DNS_ANSWER_MAX 1024

/* ---- answers --------------------------------------------------------------- */

static bool is_localhost(const char *name)
{
    size_t n = strlen(name);
    return strcmp(name, "localhost") == 0 ||
           (n > 10 && strcmp(name + n - 10, ".localhost") == 0);
}

/* A reverse name (RFC 1035 3.5, RFC 3596 2.5) of a synthetic address, as
 * dns_parse_query writes names. Returns the family (4 or 6), or 0. */
static int reverse_addr(const char *name, uint8_t out[16])
{
    size_t n = strlen(name);
    static const char v4[] = ".in-addr.arpa", v6[] = ".ip6.arpa";
    if (n > sizeof(v4) - 1 && strcmp(name + n - (sizeof(v4) - 1), v4) == 0) {
        unsigned a[4];
        char tail[2];
        char canon[32];
        if (sscanf(name, "%3u.%3u.%3u.%3u%1s", &a[3], &a[2], &a[1], &a[0], tail) != 5 ||
            a[0] > 255 || a[1] > 255 || a[2] > 255 || a[3] > 255)
            return 0;
        /* no leading zeros, no signs: exactly the canonical spelling */
        snprintf(canon, sizeof(canon), "%u.%u.%u.%u%s", a[3], a[2], a[1], a[0], v4);
        if (strcmp(canon, name) != 0)
            return 0;
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)a[i];
        return 4;
    }
    if (n == 63 + sizeof(v6) - 1 && strcmp(name + 63, v6) == 0) { /* 32 nibbles, 31 dots */
        memset(out, 0, 16);
        for (int i = 0; i < 32; i++) {
            char c = name[2 * i];
            if (name[2 * i + 1] != '.')
                return 0;
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (v < 0)
                return 0;
            int nib = 31 - i; /* the first label is the lowest nibble */
            out[nib / 2] |= (uint8_t)(nib % 2 ? v : v << 4);
        }
        return 6;
    }
    return 0;
}

static json_t *deny_fields(const struct dns_query *q, const struct net_entry *rule,
                           const char *reason)
{
    char tb[16];
    return json_pack("{s:o, s:s, s:s*, s:s}", "name", audit_str(q->name), "type",
                     dns_type_name(q->qtype, tb, sizeof(tb)), "rule", rule ? rule->text : NULL,
                     "reason", reason);
}

static bool type_declined(uint16_t t)
{
    return t == DNS_TYPE_ANY || t == DNS_TYPE_AXFR || t == DNS_TYPE_IXFR ||
           t == DNS_TYPE_MAILA || t == DNS_TYPE_MAILB;
}

size_t dns_respond(const struct dns_policy *pol, const uint8_t *msg, size_t len, uint8_t *out,
                   size_t cap, json_t **deny)
{
    *deny = NULL;
    struct dns_query q;
    int r = dns_parse_query(msg, len, &q);
    if (r < 0)
        return 0;
    if (r > 0)
        return dns_build_answer(msg, &q, r, NULL, 0, out, cap);

    uint8_t rdata[DNS_MAX_NAME_WIRE];
    struct dns_rr rr = { .ttl = DNS_TTL, .rdata = rdata };

    if (is_localhost(q.name)) {
        /* RFC 6761 6.3: the sandbox's own loopback; nothing leaves. */
        static const uint8_t lo4[4] = { 127, 0, 0, 1 };
        static const uint8_t lo6[16] = { [15] = 1 };
        if (type_declined(q.qtype))
            return dns_build_answer(msg, &q, DNS_RCODE_NOTIMP, NULL, 0, out, cap);
        if (q.qtype != DNS_TYPE_A && q.qtype != DNS_TYPE_AAAA)
            return dns_build_answer(msg, &q, DNS_RCODE_NOERROR, NULL, 0, out, cap);
        rr.type = q.qtype;
        rr.rdlen = q.qtype == DNS_TYPE_A ? 4 : 16;
        memcpy(rdata, q.qtype == DNS_TYPE_A ? lo4 : lo6, rr.rdlen);
        return dns_build_answer(msg, &q, DNS_RCODE_NOERROR, &rr, 1, out, cap);
    }
    if (q.qtype == DNS_TYPE_PTR) {
        uint8_t a[16];
        int fam = reverse_addr(q.name, a);
        const char *name = fam ? synth_name_of(pol->synth, fam, a) : NULL;
        if (name && (fam == 4 || pol->ipv6)) {
            rr.type = DNS_TYPE_PTR;
            rr.rdlen = (uint16_t)dns_name_to_wire(name, rdata, sizeof(rdata));
            if (rr.rdlen)
                return dns_build_answer(msg, &q, DNS_RCODE_NOERROR, &rr, 1, out, cap);
        }
    }

    struct net_target t;
    const char *why = NULL;
    if (!q.host_like) {
        *deny = deny_fields(&q, NULL, "not a host name");
        return dns_build_answer(msg, &q, DNS_RCODE_NXDOMAIN, NULL, 0, out, cap);
    }
    if (net_canon_host(q.name, &t, &why) < 0 || t.kind != HOST_NAME) {
        *deny = deny_fields(&q, NULL, why ? why : "an address, not a host name");
        return dns_build_answer(msg, &q, DNS_RCODE_NXDOMAIN, NULL, 0, out, cap);
    }
    struct net_verdict v = net_decide_any_port(pol->rules, &t);
    if (!v.allow) {
        *deny = deny_fields(&q, v.rule, v.reason);
        return dns_build_answer(msg, &q, DNS_RCODE_NXDOMAIN, NULL, 0, out, cap);
    }
    if (type_declined(q.qtype))
        return dns_build_answer(msg, &q, DNS_RCODE_NOTIMP, NULL, 0, out, cap);
    if (q.qtype != DNS_TYPE_A && (q.qtype != DNS_TYPE_AAAA || !pol->ipv6))
        return dns_build_answer(msg, &q, DNS_RCODE_NOERROR, NULL, 0, out, cap);
    uint32_t idx;
    if (synth_lookup_name(pol->synth, t.host, &idx) < 0)
        return dns_build_answer(msg, &q, DNS_RCODE_SERVFAIL, NULL, 0, out, cap);
    rr.type = q.qtype;
    if (q.qtype == DNS_TYPE_A) {
        rr.rdlen = 4;
        synth_addr4(idx, rdata);
    } else {
        rr.rdlen = 16;
        synth_addr6(idx, rdata);
    }
    return dns_build_answer(msg, &q, DNS_RCODE_NOERROR, &rr, 1, out, cap);
}

/* ---- the server ------------------------------------------------------------ */

struct dns_sock {
    struct dns_server *s;
    uv_poll_t poll;
    int fd;
    bool tcp;
    struct dns_sock *next;
};

struct dns_tcp {
    struct dns_server *s;
    struct dns_tcp *prev, *next;
    uv_poll_t poll;
    uv_timer_t timer;
    int fd;
    int handles;
    bool closing;
    uint8_t in[2 + DNS_MAX_MSG];
    size_t inlen;
    uint8_t *out;
    size_t outoff, outlen;
};

struct dns_server {
    uv_loop_t *loop;
    struct dns_policy pol;
    struct audit *audit;
    struct dns_sock *socks;
    struct dns_tcp *conns;
    unsigned nconns;
    int handles;        /* open libuv handles; the server is freed at 0 when freeing */
    bool freeing;
};

static uint8_t g_in[DNS_MAX_MSG + 1];
static uint8_t g_out[2 + DNS_ANSWER_MAX];

static void released(struct dns_server *s)
{
    if (--s->handles == 0 && s->freeing)
        free(s);
}

static size_t answer(struct dns_server *s, const uint8_t *msg, size_t len, uint8_t *out,
                     size_t cap)
{
    json_t *deny = NULL;
    size_t n = dns_respond(&s->pol, msg, len, out, cap, &deny);
    if (deny)
        audit_emit(s->audit, "dns.query", false, deny);
    return n;
}

static void on_udp(uv_poll_t *p, int status, int events)
{
    struct dns_sock *k = p->data;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage from;
        union {
            char b[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
            struct cmsghdr align;
        } cb;
        struct iovec iov = { .iov_base = g_in, .iov_len = sizeof(g_in) };
        struct msghdr mh = { .msg_name = &from, .msg_namelen = sizeof(from), .msg_iov = &iov,
                             .msg_iovlen = 1, .msg_control = cb.b,
                             .msg_controllen = sizeof(cb.b) };
        ssize_t n = recvmsg(k->fd, &mh, MSG_DONTWAIT);
        if (n < 0)
            return; /* EAGAIN, or an error queued by ICMP: the next read goes on */
        size_t len = (mh.msg_flags & MSG_TRUNC) ? sizeof(g_in) : (size_t)n;
        size_t an = answer(k->s, g_in, len, g_out, DNS_ANSWER_MAX);
        if (an == 0)
            continue;
        /* Answer from the address that was asked. */
        union {
            char b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
            struct cmsghdr align;
        } ob;
        memset(&ob, 0, sizeof(ob));
        struct msghdr om = { .msg_name = &from, .msg_namelen = mh.msg_namelen,
                             .msg_iov = &(struct iovec){ .iov_base = g_out, .iov_len = an },
                             .msg_iovlen = 1 };
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO) {
                struct in6_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                pi.ipi6_ifindex = 0;
                om.msg_control = ob.b;
                om.msg_controllen = CMSG_SPACE(sizeof(pi));
                struct cmsghdr *oc = CMSG_FIRSTHDR(&om);
                oc->cmsg_level = IPPROTO_IPV6;
                oc->cmsg_type = IPV6_PKTINFO;
                oc->cmsg_len = CMSG_LEN(sizeof(pi));
                memcpy(CMSG_DATA(oc), &pi, sizeof(pi));
            } else if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO) {
                struct in_pktinfo pi;
                memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
                pi.ipi_ifindex = 0;
                pi.ipi_spec_dst = pi.ipi_addr;
                om.msg_control = ob.b;
                om.msg_controllen = CMSG_SPACE(sizeof(pi));
                struct cmsghdr *oc = CMSG_FIRSTHDR(&om);
                oc->cmsg_level = IPPROTO_IP;
                oc->cmsg_type = IP_PKTINFO;
                oc->cmsg_len = CMSG_LEN(sizeof(pi));
                memcpy(CMSG_DATA(oc), &pi, sizeof(pi));
            }
        }
        (void)sendmsg(k->fd, &om, MSG_DONTWAIT | MSG_NOSIGNAL);
    }
}

/* ---- TCP ------------------------------------------------------------------- */

static void tcp_handle_closed(uv_handle_t *h)
{
    struct dns_tcp *t = h->data;
    if (--t->handles > 0)
        return;
    struct dns_server *s = t->s;
    free(t);
    released(s);
}

static void tcp_close(struct dns_tcp *t)
{
    if (t->closing)
        return;
    t->closing = true;
    if (t->prev)
        t->prev->next = t->next;
    else
        t->s->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->s->nconns--;
    uv_poll_stop(&t->poll);
    uv_timer_stop(&t->timer);
    close(t->fd);
    free(t->out);
    t->out = NULL;
    uv_close((uv_handle_t *)&t->poll, tcp_handle_closed);
    uv_close((uv_handle_t *)&t->timer, tcp_handle_closed);
}

static void on_tcp_idle(uv_timer_t *h)
{
    tcp_close(h->data);
}

static void on_tcp(uv_poll_t *p, int status, int events);

static int tcp_flush(struct dns_tcp *t)
{
    while (t->outoff < t->outlen) {
        ssize_t w = send(t->fd, t->out + t->outoff, t->outlen - t->outoff,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN || errno == EINTR ? 1 : -1;
        t->outoff += (size_t)w;
    }
    free(t->out);
    t->out = NULL;
    t->outoff = t->outlen = 0;
    return 0;
}

static int tcp_queue(struct dns_tcp *t, const uint8_t *b, size_t n)
{
    uint8_t *nb = realloc(t->out, t->outlen + n);
    if (!nb)
        return -1;
    t->out = nb;
    memcpy(t->out + t->outlen, b, n);
    t->outlen += n;
    return 0;
}

static void on_tcp(uv_poll_t *p, int status, int events)
{
    struct dns_tcp *t = p->data;
    if (status < 0) {
        tcp_close(t);
        return;
    }
    if ((events & UV_READABLE) && t->outlen - t->outoff < 16 * DNS_ANSWER_MAX) {
        ssize_t n = recv(t->fd, t->in + t->inlen, sizeof(t->in) - t->inlen, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            tcp_close(t);
            return;
        }
        if (n > 0) {
            t->inlen += (size_t)n;
            uv_timer_start(&t->timer, on_tcp_idle, DNS_TCP_IDLE_MS, 0);
        }
        while (t->inlen >= 2) {
            size_t ml = ((size_t)t->in[0] << 8) | t->in[1];
            if (ml == 0 || ml > DNS_MAX_MSG) {
                tcp_close(t);
                return;
            }
            if (t->inlen < 2 + ml)
                break;
            size_t an = answer(t->s, t->in + 2, ml, g_out + 2, DNS_ANSWER_MAX);
            memmove(t->in, t->in + 2 + ml, t->inlen - 2 - ml);
            t->inlen -= 2 + ml;
            if (an == 0)
                continue;
            g_out[0] = (uint8_t)(an >> 8);
            g_out[1] = (uint8_t)an;
            if (tcp_queue(t, g_out, an + 2) < 0) {
                tcp_close(t);
                return;
            }
        }
    }
    if (tcp_flush(t) < 0) {
        tcp_close(t);
        return;
    }
    int want = UV_READABLE;
    if (t->outlen > t->outoff)
        want = t->outlen - t->outoff < 16 * DNS_ANSWER_MAX ? UV_READABLE | UV_WRITABLE
                                                           : UV_WRITABLE;
    uv_poll_start(&t->poll, want, on_tcp);
}

static void on_accept(uv_poll_t *p, int status, int events)
{
    struct dns_sock *k = p->data;
    struct dns_server *s = k->s;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < 16; i++) {
        int fd = accept4(k->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        if (s->nconns >= DNS_TCP_MAX) {
            close(fd);
            continue;
        }
        struct dns_tcp *t = calloc(1, sizeof(*t));
        if (!t || uv_poll_init_socket(s->loop, &t->poll, fd) < 0) {
            free(t);
            close(fd);
            continue;
        }
        t->s = s;
        t->fd = fd;
        uv_timer_init(s->loop, &t->timer);
        t->poll.data = t->timer.data = t;
        t->handles = 2;
        s->handles++;
        s->nconns++;
        t->next = s->conns;
        if (s->conns)
            s->conns->prev = t;
        s->conns = t;
        uv_timer_start(&t->timer, on_tcp_idle, DNS_TCP_IDLE_MS, 0);
        uv_poll_start(&t->poll, UV_READABLE, on_tcp);
    }
}

/* ---- lifecycle --------------------------------------------------------------- */

int dns_server_new(uv_loop_t *loop, const struct dns_policy *pol, struct audit *audit,
                   struct dns_server **out, struct cordon_error *err)
{
    struct dns_server *s = calloc(1, sizeof(*s));
    if (!s)
        return cordon_err_set(err, ENOMEM, "out of memory");
    s->loop = loop;
    s->pol = *pol;
    s->audit = audit;
    s->handles = 1; /* the server itself, released by dns_server_free */
    *out = s;
    return 0;
}

static int add_sock(struct dns_server *s, int fd, bool tcp, struct cordon_error *err)
{
    struct dns_sock *k = calloc(1, sizeof(*k));
    if (!k) {
        close(fd);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    if (uv_poll_init_socket(s->loop, &k->poll, fd) < 0) {
        close(fd);
        free(k);
        return cordon_err_set(err, EINVAL, "cannot watch a DNS socket");
    }
    k->s = s;
    k->fd = fd;
    k->tcp = tcp;
    k->poll.data = k;
    k->next = s->socks;
    s->socks = k;
    s->handles++;
    uv_poll_start(&k->poll, UV_READABLE, tcp ? on_accept : on_udp);
    return 0;
}

int dns_server_add_udp(struct dns_server *s, int fd, struct cordon_error *err)
{
    int one = 1;
    /* A dual-stack socket reports IPv4 destinations as mapped IPv6 ones; an
     * IPv4-only socket has only IP_PKTINFO. */
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
        (void)setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one));
    return add_sock(s, fd, false, err);
}

int dns_server_add_tcp(struct dns_server *s, int fd, struct cordon_error *err)
{
    return add_sock(s, fd, true, err);
}

void dns_server_set_rules(struct dns_server *s, const struct net_rules *rules)
{
    s->pol.rules = rules;
}

static void sock_closed(uv_handle_t *h)
{
    struct dns_sock *k = h->data;
    struct dns_server *s = k->s;
    free(k);
    released(s);
}

void dns_server_free(struct dns_server *s)
{
    if (!s)
        return;
    while (s->conns)
        tcp_close(s->conns);
    for (struct dns_sock *k = s->socks, *next; k; k = next) {
        next = k->next;
        uv_poll_stop(&k->poll);
        close(k->fd);
        uv_close((uv_handle_t *)&k->poll, sock_closed);
    }
    s->socks = NULL;
    s->freeing = true;
    released(s);
}
