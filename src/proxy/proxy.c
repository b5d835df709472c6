/* proxy.c: connection state machines of the egress proxy.
 *
 * Owns: accepting sandbox connections, parsing the HTTP or SOCKS5 head,
 * deciding by host and port, resolving only allowed names, refusing
 * addresses an allowed name may not lead to, dialling exactly the address
 * checked, and relaying bytes (splice(2) for large transfers).
 *
 * Invariants:
 *  - the decision is made on the canonical host before any DNS query; a
 *    denied name is never resolved and never dialled (egress-attacks.md T20,
 *    T28);
 *  - after resolving, every address is checked (net_addr_forbidden and the
 *    host's own addresses); the connection goes to one of the checked
 *    addresses, never to a name (T6, T7);
 *  - a plain HTTP request is forwarded with the Host field rewritten from the
 *    absolute URI the decision was made on (T13), in origin form, with
 *    hop-by-hop fields removed; its framing has been checked strictly (T12);
 *  - every decision produces exactly one net.connect record; every completed
 *    plain HTTP exchange a net.request record; every connection that reached
 *    an upstream a net.close record;
 *  - memory per idle tunnel is a few hundred bytes: data moves through one
 *    shared scratch buffer, and only bytes a slow peer has not taken yet are
 *    copied to the heap (or sit in a splice pipe, in the kernel).
 */
#include "proxy.h"
#include "decider.h"
#include "http.h"
#include "pathnorm.h"
#include "socks5.h"
#include "subst.h"
#include "tls/creds.h"
#include "tls/hello.h"
#include "tls/sigv4.h"
#include "tls/tls.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "policy/policy.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define HEAD_TIMEOUT_MS 30000
#define IDLE_TIMEOUT_MS 120000
#define CONNECT_TIMEOUT_MS 30000
#define SCRATCH_SIZE (64 * 1024)
/* A read this large means a bulk transfer: move the rest with splice(2).
 * Below it, recv/send is cheaper (a pipe round trip costs two syscalls). */
#define SPLICE_THRESHOLD (16 * 1024)
#define PIPE_SIZE (1024 * 1024)

enum state {
    ST_HEAD,      /* reading a request head (or the SOCKS greeting/request) */
    ST_RESOLVING,
    ST_CONNECTING,
    ST_HOP,       /* waiting for an upstream proxy's answer to our CONNECT */
    ST_TLS_PEEK,  /* intercepted tunnel: is the first byte a TLS handshake? */
    ST_TLS_ACCEPT,  /* TLS handshake with the sandbox (our leaf certificate) */
    ST_TLS_CONNECT, /* TLS handshake with the upstream (verified) */
    ST_TUNNEL,    /* raw relay both ways */
    ST_FORWARD,   /* plain HTTP: request body up, response down */
    ST_CLOSING,   /* flushing a final answer to the client, then close */
    ST_LINGER,    /* answer sent and write side shut: drain what the client still
                     sends for a while, so the answer is not lost to a reset */
    ST_SNIFF,     /* captured, not intercepted: the client's first bytes must name the
                     destination (or the server speaks first) */
    ST_DECIDING,  /* cordon proxy: the head is read; waiting for the decider's verdict */
};

enum flow_mode {
    FLOW_IDLE,
    FLOW_RAW,      /* until EOF */
    FLOW_LENGTH,   /* remaining bytes */
    FLOW_CHUNKED,
    FLOW_DONE,
};

struct ep {
    int fd;
    SSL *ssl;        /* set once TLS is terminated on this side */
    int tls_want;    /* poll events the last blocked SSL call waits for */
    bool tls_shut;   /* close_notify sent */
    uv_poll_t *poll; /* NULL when not watched; freed by its close callback */
    int want;
    char *in;        /* unconsumed input (heads, leftovers) */
    size_t inlen, incap;
    char *out;       /* bytes waiting to be written */
    size_t outoff, outlen;
    bool eof;        /* read side reached EOF */
    bool shut;       /* write side shut down */
};

struct flow {
    enum flow_mode mode;
    uint64_t remaining;
    struct http_chunked ck;
    int pipe[2];
    size_t inpipe;
    bool splice;
    /* splice(2) into the pipe said EAGAIN while bytes were in it: the pipe's
     * slots may be full (small segments use whole pages) even though inpipe
     * is below PIPE_SIZE. Do not wait for the source until some drained. */
    bool pipe_full;
    uint64_t bytes;        /* body bytes (chunk data only, not its framing) */
    uint64_t limit;        /* request rules: bytes this body may carry (UINT64_MAX: any) */
    /* maxSessionBytes: counters this flow is charged to as bytes pass, and
     * their maxima (so parallel uploads share one budget) */
    uint64_t *sess[8];
    uint64_t sess_max[8];
    size_t nsess;
    /* credentials: the body is decoded, its sentinels replaced, and sent
     * chunked (or with its length when no replacement changes it) */
    struct subst *xf;
    bool xf_chunked, xf_ended;
};

struct proxy;

struct conn {
    struct proxy *px;
    struct conn *prev, *next;
    enum proxy_listener_kind kind;
    enum state st;
    struct ep c, u;
    struct flow up, down;   /* client -> upstream, upstream -> client */
    uv_timer_t timer;
    int handles;            /* open libuv handles; freed at 0 */
    bool closing;
    size_t linger_left;     /* ST_LINGER: bytes still discarded before closing */
    struct resolve_req *rq;

    /* current destination */
    struct net_target target;
    char via[12];
    const char *rule;       /* entry text that allowed it (owned by the rules) */
    struct sockaddr_storage *addrs; /* checked addresses, while connecting */
    size_t naddrs, addr_i;
    char addr_text[120]; /* an IPv6 address, or "unix:" and a socket path */
    bool upstream_ok;       /* u.fd is connected to target */
    char up_addr[120];      /* the address the upstream was dialled at */
    const struct proxy_hop *hop; /* upstream proxy in use, or NULL */
    uint16_t up_port;
    char up_host[256];

    /* socks */
    int socks_phase;        /* 0 greeting, 1 request */

    /* TLS interception */
    bool intercept;         /* this tunnel's TLS is terminated here */
    bool counted;           /* counted in px->tls_tunnels */
    bool tls_mode;          /* HTTP inside terminated TLS */
    const char *tls_fail;   /* why the client handshake was refused (static) */
    char tls_fail_buf[640];
    char sni[256];          /* the server name the client sent, or "" */

    /* cordon proxy: this connection's exchange with the decider (decider.h) */
    struct dv_conn *dv;
    bool kick;              /* OpenSSL holds decrypted bytes poll cannot see */
    struct conn *kick_next;

    /* credentials for the current request (tls/creds.h) */
    struct subst_pair *cred_pairs;   /* sentinel -> real, of the secrets of this host */
    size_t ncred_pairs;
    const struct cred_header **cred_hdrs; /* headers injected toward this host */
    size_t ncred_hdrs;
    struct subst_pair *cred_back;    /* real -> stand-in, for what the response echoes */
    size_t ncred_back;
    struct subst_pair *ws_back;      /* the same with stand-ins of the real length */
    char *ws_text;                   /* their bytes */
    bool cred_host;          /* a credential belongs to this host: client ones are stripped */
    /* SigV4 (credentials.awsPairs): this request is signed again */
    const struct cred_aws *aws;
    struct sigv4_auth aws_auth;
    char aws_payload[72];    /* the payload hash line of the canonical request */
    size_t head_cap;         /* ST_HEAD read limit while a body is gathered (0: a head) */
    bool aws_passthrough;    /* credentials.sigv4 passthrough: Authorization goes as sent */
    bool continued;          /* "100 Continue" sent for the request whose body is read */
    json_t *cred_audit;      /* {"injected": [...], "stripped": [...]} for net.request */

    /* request rules in force for the current request */
    const char *req_rule_text; /* the pattern that allowed it, for the audit record */
    const char *deny_rule;     /* the rule named in a net.request deny record */
    char deny_rule_buf[40];

    /* plain HTTP exchange */
    bool is_connect;
    char *fwd_head;         /* head to send upstream once connected */
    size_t fwd_len;
    bool req_keep_alive, req_head_method, req_upgrade;
    char method[16];
    char *path;             /* as forwarded, for the audit record */
    bool resp_head_done;
    int resp_status;
    bool resp_keep_alive, resp_until_close;
    uint64_t bytes_up_total, bytes_down_total;
};

struct owned_addr {
    int family;
    uint8_t a[16];
};

struct listener {
    struct proxy *px;
    uv_poll_t poll;
    uv_timer_t pause;
    int open_handles;
    int fd;
    enum proxy_listener_kind kind;
    struct listener *next;
};

struct proxy {
    uv_loop_t *loop;
    struct proxy_config cfg;
    uint64_t *session_used; /* request body bytes per request rule, over the run */
    int tls_tunnels;
    uv_idle_t idle;        /* runs conns whose TLS buffers hold readable bytes */
    struct conn *kicks;
    struct conn *conns;
    struct listener *listeners;
    struct owned_addr *own;
    size_t nown;
    SSL_CTX *sniff_ctx;    /* transparent capture: reads ClientHellos, never handshakes */
    struct proxy_stats stats;
    bool freeing;
    int handles;
};

#define LINGER_MS 2000
#define LINGER_BYTES (1u << 20)

static char g_scratch[SCRATCH_SIZE];
static struct http_request g_req;
static struct http_response g_res;

static void conn_update(struct conn *c);
static void conn_close(struct conn *c);
static void on_timeout(uv_timer_t *t);
static void kick(struct conn *c);
static void transparent_reset(struct conn *c);
static void synth_to_name(struct conn *c);
static void start_connect(struct conn *c);
static int cred_claim(const struct proxy_config *cfg, const struct net_target *t);
static void upstream_failed(struct conn *c, const char *why);
static int ws_standins(struct conn *c);

/* ---- small helpers ------------------------------------------------------- */

static void conn_release(struct conn *c);

static void poll_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    free(h);
    conn_release(c);
}

static int ep_watch(struct conn *c, struct ep *e)
{
    e->poll = malloc(sizeof(*e->poll));
    if (!e->poll)
        return -1;
    if (uv_poll_init_socket(c->px->loop, e->poll, e->fd) < 0) {
        free(e->poll);
        e->poll = NULL;
        return -1;
    }
    e->poll->data = c;
    e->want = 0;
    c->handles++;
    return 0;
}

/* Stop watching and close the fd. The order matters: uv_poll_stop removes
 * the fd from epoll while it is still open; then the fd can go. */
static void ep_drop(struct ep *e)
{
    if (e->ssl) {
        SSL_free(e->ssl);
        e->ssl = NULL;
    }
    e->tls_want = 0;
    e->tls_shut = false;
    if (e->poll) {
        uv_poll_stop(e->poll);
        uv_close((uv_handle_t *)e->poll, poll_closed);
        e->poll = NULL;
    }
    if (e->fd >= 0) {
        close(e->fd);
        e->fd = -1;
    }
    e->want = 0;
}

static void ep_reset_buffers(struct ep *e)
{
    free(e->in);
    free(e->out);
    e->in = e->out = NULL;
    e->inlen = e->incap = e->outoff = e->outlen = 0;
    e->eof = e->shut = false;
}

static int ep_push_in(struct ep *e, const char *data, size_t n)
{
    if (e->inlen + n > e->incap) {
        char *nb = realloc(e->in, e->inlen + n);
        if (!nb)
            return -1;
        e->in = nb;
        e->incap = e->inlen + n;
    }
    memcpy(e->in + e->inlen, data, n);
    e->inlen += n;
    return 0;
}

/* Before conn_close in the middle of a response: a reset, not a FIN, so
 * that the upstream stops sending now rather than when the closed socket's
 * shut window finally times out. */
static void upstream_abort(struct conn *c)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    if (c->u.fd >= 0 && !c->u.ssl)
        setsockopt(c->u.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* Reads and writes go through these, so that a TLS side and a plain side
 * look the same to the relay. Both return the byte count, 0 at EOF (reads),
 * or -1 with errno (EAGAIN when the call must be retried after the events in
 * e->tls_want, or after the usual readability or writability). */
static ssize_t ep_recv(struct ep *e, void *buf, size_t n)
{
    if (!e->ssl) {
        ssize_t r;
        do {
            r = recv(e->fd, buf, n, 0);
        } while (r < 0 && errno == EINTR);
        return r;
    }
    e->tls_want = 0;
    ERR_clear_error();
    int r = SSL_read(e->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (r > 0)
        return r;
    switch (SSL_get_error(e->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        e->tls_want = UV_READABLE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        e->tls_want = UV_WRITABLE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || errno == ECONNRESET)
            return 0; /* an unclean close: treated as the end of the stream */
        return -1;
    default:
        errno = EPROTO;
        return -1;
    }
}

static ssize_t ep_send(struct ep *e, const void *buf, size_t n)
{
    if (!e->ssl) {
        ssize_t w;
        do {
            w = send(e->fd, buf, n, MSG_NOSIGNAL);
        } while (w < 0 && errno == EINTR);
        return w;
    }
    e->tls_want = 0;
    ERR_clear_error();
    int w = SSL_write(e->ssl, buf, n > INT32_MAX ? INT32_MAX : (int)n);
    if (w > 0)
        return w;
    switch (SSL_get_error(e->ssl, w)) {
    case SSL_ERROR_WANT_READ:
        e->tls_want = UV_READABLE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        e->tls_want = UV_WRITABLE;
        errno = EAGAIN;
        return -1;
    default:
        if (errno == 0)
            errno = EPIPE;
        return -1;
    }
}

static void ep_shutdown_write(struct ep *e)
{
    if (e->ssl && !e->tls_shut) {
        e->tls_shut = true;
        ERR_clear_error();
        (void)SSL_shutdown(e->ssl);
    }
    shutdown(e->fd, SHUT_WR);
}

static int ep_append_out(struct ep *e, const char *data, size_t n)
{
    if (n == 0)
        return 0;
    if (e->outoff > 0 && e->outoff == e->outlen) {
        e->outoff = e->outlen = 0;
    }
    char *nb = realloc(e->out, e->outlen + n);
    if (!nb)
        return -1;
    e->out = nb;
    memcpy(e->out + e->outlen, data, n);
    e->outlen += n;
    return 0;
}

static bool ep_has_out(const struct ep *e)
{
    return e->outlen > e->outoff;
}

/* Write pending output: 0 all written, 1 would block, -1 error. */
static int ep_flush(struct ep *e)
{
    while (ep_has_out(e)) {
        ssize_t w = ep_send(e, e->out + e->outoff, e->outlen - e->outoff);
        if (w < 0)
            return errno == EAGAIN ? 1 : -1;
        e->outoff += (size_t)w;
    }
    free(e->out);
    e->out = NULL;
    e->outoff = e->outlen = 0;
    return 0;
}

/* Read into e->in (for heads): 1 got data, 0 would block, -1 EOF or error. */
static int ep_read_in(struct ep *e, size_t cap)
{
    if (e->inlen >= cap)
        return 0;
    if (e->incap < cap) {
        size_t nc = e->incap ? e->incap * 2 : 4096;
        if (nc > cap)
            nc = cap;
        if (nc < e->inlen + 1)
            nc = cap;
        char *nb = realloc(e->in, nc);
        if (!nb)
            return -1;
        e->in = nb;
        e->incap = nc;
    }
    if (e->inlen == e->incap) {
        size_t nc = e->incap * 2 > cap ? cap : e->incap * 2;
        char *nb = realloc(e->in, nc);
        if (!nb)
            return -1;
        e->in = nb;
        e->incap = nc;
    }
    ssize_t r = ep_recv(e, e->in + e->inlen, e->incap - e->inlen);
    if (r > 0) {
        e->inlen += (size_t)r;
        return 1;
    }
    if (r == 0) {
        e->eof = true;
        return -1;
    }
    return errno == EAGAIN ? 0 : -1;
}

static void ep_consume_in(struct ep *e, size_t n)
{
    memmove(e->in, e->in + n, e->inlen - n);
    e->inlen -= n;
}

static const char *addr_str(const struct sockaddr_storage *ss, char *buf, size_t n)
{
    if (ss->ss_family == AF_UNIX)
        snprintf(buf, n, "unix:%.100s", ((const struct sockaddr_un *)ss)->sun_path);
    else if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, buf, (socklen_t)n);
    else
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, buf, (socklen_t)n);
    return buf;
}

/* ---- audit --------------------------------------------------------------- */

static void audit_connect(struct conn *c, bool allow, const char *reason)
{
    json_t *f = json_pack("{s:s, s:i, s:s}", "host", c->target.host, "port", c->target.port,
                          "via", c->via);
    if (!f)
        return;
    if (c->addr_text[0])
        json_object_set_new(f, "address", json_string(c->addr_text));
    if (c->rule)
        json_object_set_new(f, "rule", json_string(c->rule));
    if (reason)
        json_object_set_new(f, "reason", json_string(reason));
    if (c->hop)
        json_object_set_new(f, "proxy", json_string(c->hop->unix_socket ? "mitm" : "parent"));
    if (!allow)
        c->px->stats.denied++;
    audit_emit(c->px->cfg.audit, "net.connect", allow, f);
}

static void cred_note(struct conn *c, const char *key, const char *text, size_t len);

/* The secrets a request body carried, for its record. */
static void note_body_secrets(struct conn *c)
{
    const struct subst *x = c->up.xf;
    const struct cred_store *cs = c->px->cfg.creds;
    for (size_t i = 0; cs && x->hits && i < x->n; i++) {
        if (!x->hits[i])
            continue;
        for (size_t k = 0; k < cs->nsecrets; k++)
            if (cs->secrets[k].fake == x->base[i].from)
                cred_note(c, "injected", cs->secrets[k].label, strlen(cs->secrets[k].label));
    }
}

static void audit_request(struct conn *c, int status, bool allow, const char *reason)
{
    json_t *f = json_pack("{s:s, s:s, s:i, s:s, s:i}", "method", c->method, "host", c->target.host,
                          "port", c->target.port, "path", c->path ? c->path : "", "status", status);
    if (!f)
        return;
    /* The rule that decided: the request rule that allowed or refused it;
     * else, for an allowed request, the host entry. A refusal for another
     * reason (malformed, misdirected) names no rule. */
    const char *rule = c->req_rule_text ? c->req_rule_text : allow ? c->rule : c->deny_rule;
    if (rule)
        json_object_set_new(f, "rule", json_string(rule));
    if (reason)
        json_object_set_new(f, "reason", json_string(reason));
    if (allow && c->up.xf)
        note_body_secrets(c);
    if (c->cred_audit)
        json_object_update(f, c->cred_audit);
    audit_emit(c->px->cfg.audit, "net.request", allow, f);
}

static void audit_close(struct conn *c)
{
    json_t *f = json_pack("{s:s, s:i, s:s, s:I, s:I}", "host", c->up_host, "port", c->up_port,
                          "via", c->via, "bytes_up", (json_int_t)c->bytes_up_total,
                          "bytes_down", (json_int_t)c->bytes_down_total);
    if (f && c->up_addr[0])
        json_object_set_new(f, "address", json_string(c->up_addr));
    audit_emit(c->px->cfg.audit, "net.close", true, f);
}

/* ---- answers to the client ---------------------------------------------- */

/* A reason may come from settings (deniedDomainReasons): keep it on one line
 * and printable before it goes into a status line or body. */
static void clean_text(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    for (; src && *src && k + 1 < n; src++)
        dst[k++] = ((unsigned char)*src < 0x20 || *src == 0x7f) ? ' ' : *src;
    dst[k] = '\0';
}

static void http_answer(struct conn *c, int status, const char *phrase, const char *errtag,
                        const char *body_reason)
{
    c->continued = false;
    if (c->kind == PROXY_TRANSPARENT && !c->tls_mode) {
        /* A captured program never asked a proxy: an HTTP answer would
         * read as the server's. It gets a reset. */
        transparent_reset(c);
        return;
    }
    char reason[1100], body[1400], head[2048];
    clean_text(reason, sizeof(reason), body_reason);
    /* cordon proxy: srt's X-Deny-Reason codes, and the reason alone */
    const char *code = c->px->cfg.decider ? decider_deny_code(errtag) : NULL;
    int bl;
    if (code)
        bl = snprintf(body, sizeof(body), "%s\n", reason);
    else if (c->target.host[0])
        bl = snprintf(body, sizeof(body), "cordon: %s:%u: %s\n", c->target.host,
                      (unsigned)c->target.port, reason);
    else
        bl = snprintf(body, sizeof(body), "cordon: %s\n", reason);
    if (bl < 0)
        bl = 0;
    if ((size_t)bl >= sizeof(body))
        bl = (int)sizeof(body) - 1;
    char ph[256];
    clean_text(ph, sizeof(ph), phrase);
    int hl = snprintf(head, sizeof(head),
                      "HTTP/1.1 %d %s\r\n%s: %s\r\nContent-Type: text/plain\r\n"
                      "Content-Length: %d\r\nConnection: close\r\n\r\n",
                      status, ph, code ? "X-Deny-Reason" : "X-Proxy-Error", code ? code : errtag,
                      bl);
    if (hl > 0 && (size_t)hl < sizeof(head))
        ep_append_out(&c->c, head, (size_t)hl);
    if (!c->req_head_method)
        ep_append_out(&c->c, body, (size_t)bl);
    c->st = ST_CLOSING;
}

static void socks_answer(struct conn *c, uint8_t rep)
{
    uint8_t r[10];
    size_t n = socks5_reply(r, rep);
    ep_append_out(&c->c, (const char *)r, n);
    if (rep != SOCKS5_OK)
        c->st = ST_CLOSING;
}

static const char *status_phrase(int status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
    }
}

/* A refused destination: 403 naming host and reason, or SOCKS "not allowed". */
static void refuse(struct conn *c, const char *errtag, const char *reason)
{
    audit_connect(c, false, reason);
    if (c->kind == PROXY_SOCKS5) {
        socks_answer(c, SOCKS5_NOT_ALLOWED);
        return;
    }
    /* srt answers a refused CONNECT with the reason as the status phrase. */
    http_answer(c, 403, c->is_connect ? reason : "Forbidden", errtag, reason);
}

/* ---- decision ------------------------------------------------------------ */

static const char *custom_reason(struct conn *c, const struct net_entry *e)
{
    if (!e || !c->px->cfg.deny_reasons)
        return NULL;
    json_t *r = json_object_get(c->px->cfg.deny_reasons, e->text);
    return json_is_string(r) ? json_string_value(r) : NULL;
}

static bool own_address(const struct proxy *px, int family, const uint8_t *a)
{
    for (size_t i = 0; i < px->nown; i++)
        if (px->own[i].family == family && memcmp(px->own[i].a, a, family == 4 ? 4 : 16) == 0)
            return true;
    return false;
}

/* Is this address allowed as the destination of an allowed request? An
 * address allowed by an IP-literal entry (with the port) passes even when it
 * is private or loopback: the user named it (srt's exemption, 3.11). */
static bool in_denied_resolved(const struct proxy *px, const struct net_target *t,
                               const char **why)
{
    for (size_t i = 0; i < px->cfg.ndenied_resolved; i++) {
        if (net_cidr_match(&px->cfg.denied_resolved[i], t->kind == HOST_IPV4 ? 4 : 6, t->addr)) {
            *why = "an address in deniedResolvedAddresses";
            return true;
        }
    }
    /* srt: an IP literal in deniedDomains also feeds the resolved-address
     * deny set. */
    const struct net_rules *r = px->cfg.rules;
    for (size_t i = 0; i < r->ndeny; i++) {
        const struct net_entry *e = &r->deny[i];
        if ((e->kind == HOST_IPV4 || e->kind == HOST_IPV6) && net_entry_match_host(e, t) &&
            (e->port == 0 || e->port == t->port)) {
            *why = "an address on the deny list";
            return true;
        }
    }
    return false;
}

/* The host-level verdict: the settings' rules, or (cordon proxy) the
 * decider's hello lists, where an entry without a port covers every port. */
static struct net_verdict host_verdict(const struct proxy *px, const struct net_target *t)
{
    return px->cfg.decider ? decider_host(px->cfg.decider, t) : net_decide(px->cfg.rules, t);
}

static bool address_ok(struct conn *c, const struct sockaddr_storage *ss, const char **why)
{
    struct net_target t = { .port = c->target.port };
    int family;
    if (ss->ss_family == AF_INET) {
        family = 4;
        t.kind = HOST_IPV4;
        memcpy(t.addr, &((const struct sockaddr_in *)ss)->sin_addr, 4);
    } else {
        family = 6;
        t.kind = HOST_IPV6;
        memcpy(t.addr, &((const struct sockaddr_in6 *)ss)->sin6_addr, 16);
        static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
        if (memcmp(t.addr, mapped, 12) == 0) {
            t.kind = HOST_IPV4;
            memmove(t.addr, t.addr + 12, 4);
            memset(t.addr + 4, 0, 12);
        }
    }
    struct net_verdict v = host_verdict(c->px, &t);
    if (v.allow && v.rule && (v.rule->kind == HOST_IPV4 || v.rule->kind == HOST_IPV6))
        return !in_denied_resolved(c->px, &t, why);
    /* cordon proxy, as srt: an allowed "localhost" resolves to loopback only */
    int lo = c->px->cfg.decider ? decider_loopback_name(&c->target, t.kind == HOST_IPV4 ? 4 : 6,
                                                        t.addr, why)
                                : -1;
    if (lo >= 0)
        return lo == 0 && !in_denied_resolved(c->px, &t, why);
    if (net_addr_forbidden(t.kind == HOST_IPV4 ? 4 : 6, t.addr, c->px->cfg.allow_private, why))
        return false;
    if (own_address(c->px, t.kind == HOST_IPV4 ? 4 : family, t.addr)) {
        *why = "an address of this host";
        return false;
    }
    return !in_denied_resolved(c->px, &t, why);
}

/* Addresses for the destination are known: check each, then dial. Never calls
 * conn_update (it may run inside it). */
static void resolved(struct conn *c, int status, const struct sockaddr_storage *addrs, size_t n,
                     const char *msg)
{
    if (status < 0) {
        char why[300];
        snprintf(why, sizeof(why), "cannot resolve the host: %s", msg ? msg : "error");
        audit_connect(c, true, why);
        if (c->kind == PROXY_SOCKS5)
            socks_answer(c, SOCKS5_HOST_UNREACHABLE);
        else
            http_answer(c, 502, "Bad Gateway", "dns-failure", why);
        return;
    }
    c->naddrs = 0;
    free(c->addrs);
    c->addrs = calloc(n, sizeof(*c->addrs));
    if (!c->addrs) {
        audit_connect(c, true, "out of memory");
        http_answer(c, 502, "Bad Gateway", "internal", "out of memory");
        return;
    }
    const char *why = NULL;
    for (size_t i = 0; i < n; i++) {
        const char *w = NULL;
        /* An upstream proxy is the user's own configuration, not a
         * destination the sandbox chose: it is dialled as configured. */
        if (c->hop || address_ok(c, &addrs[i], &w))
            c->addrs[c->naddrs++] = addrs[i];
        else if (!why)
            why = w;
    }
    if (c->naddrs == 0) {
        char reason[300];
        snprintf(reason, sizeof(reason), "%s resolves to %s", c->target.host,
                 why ? why : "no usable address");
        addr_str(&addrs[0], c->addr_text, sizeof(c->addr_text));
        refuse(c, "blocked-address", reason);
        return;
    }
    c->addr_i = 0;
    start_connect(c);
}

static void on_resolved(void *ud, int status, const struct sockaddr_storage *addrs, size_t n,
                        const char *msg)
{
    struct conn *c = ud;
    c->rq = NULL;
    resolved(c, status, addrs, n, msg);
    conn_update(c);
}

/* ---- TLS interception ---------------------------------------------------- */

static int g_ex_conn = -1; /* SSL ex_data slot: the conn of a handshake */

static bool tls_excluded(const struct proxy_config *cfg, const struct net_target *t)
{
    for (size_t i = 0; i < cfg->ntls_exclude; i++) {
        const struct net_entry *e = &cfg->tls_exclude[i];
        if (net_entry_match_host(e, t) && (e->port == 0 || e->port == t->port))
            return true;
    }
    return false;
}

/* Before our certificate is chosen: refuse ECH (the outer SNI would not be
 * the real destination, T25), refuse an SNI that does not name the CONNECT
 * target (domain fronting, T1), and mint the leaf. */
static int client_hello_cb(SSL *s, int *al, void *arg)
{
    (void)arg;
    struct conn *c = SSL_get_ex_data(s, g_ex_conn);
    if (!c)
        return SSL_CLIENT_HELLO_ERROR;
    const unsigned char *ext;
    size_t extlen;
    if (SSL_client_hello_get0_ext(s, TLS_EXT_ECH, &ext, &extlen)) {
        c->tls_fail = "the ClientHello carries Encrypted Client Hello, which would hide the "
                      "real destination; ECH is refused";
        *al = SSL_AD_ACCESS_DENIED;
        return SSL_CLIENT_HELLO_ERROR;
    }
    char sni[256];
    const char *host = c->target.host;
    bool is_ip = c->target.kind != HOST_NAME;
    if (tls_sni_of(s, sni, sizeof(sni))) {
        snprintf(c->sni, sizeof(c->sni), "%s", sni);
        struct net_target t;
        const char *why = NULL;
        bool same = net_canon_host(sni, &t, &why) == 0 && t.kind == c->target.kind &&
                    strcmp(t.host, c->target.host) == 0;
        if (!same && c->px->cfg.require_host_match) {
            snprintf(c->tls_fail_buf, sizeof(c->tls_fail_buf),
                     "the TLS server name \"%s\" does not name the CONNECT target %s", sni,
                     c->target.host);
            c->tls_fail = c->tls_fail_buf;
            *al = SSL_AD_UNRECOGNIZED_NAME;
            return SSL_CLIENT_HELLO_ERROR;
        }
        if (same) {
            host = c->target.host;
        } else {
            host = sni; /* requireHostMatch false: the name the client asked for */
            is_ip = false;
        }
    }
    X509 *cert;
    EVP_PKEY *key;
    if (tls_ca_leaf(c->px->cfg.tls_ca, host, is_ip, &cert, &key) < 0 ||
        SSL_use_certificate(s, cert) != 1 || SSL_use_PrivateKey(s, key) != 1) {
        c->tls_fail = "cannot make a certificate for this host";
        *al = SSL_AD_INTERNAL_ERROR;
        return SSL_CLIENT_HELLO_ERROR;
    }
    return SSL_CLIENT_HELLO_SUCCESS;
}

static void tls_refuse(struct conn *c, const char *reason)
{
    audit_connect(c, false, reason);
    conn_close(c);
}

/* First byte of an intercepted tunnel: 0x16 starts a TLS handshake record
 * (RFC 8446 5.1). Anything else is refused (T23): cordon inspects this
 * host's traffic, and raw bytes would pass uninspected. Returns true when
 * the state changed. */
static bool tls_peek(struct conn *c)
{
    unsigned char b;
    ssize_t r = c->c.inlen ? 1 : recv(c->c.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return false;
    if (r <= 0) {
        conn_close(c);
        return true;
    }
    if (c->c.inlen || b != 0x16) {
        /* Plain HTTP inside the tunnel (Node's fetch sends http:// URLs
         * through CONNECT): inspected like any request, the target fixed.
         * It must start with a method and a space ("SSH-2.0-..." does not).
         * The bytes are read (they cannot start TLS any more), so a client
         * that pauses mid-method is waited for without spinning. */
        enum { SNIFF = 24 };
        int rr = ep_read_in(&c->c, SNIFF);
        if (rr < 0 && !c->c.eof) {
            conn_close(c);
            return true;
        }
        size_t i = 0;
        while (i < c->c.inlen && c->c.in[i] >= 'A' && c->c.in[i] <= 'Z')
            i++;
        if (i == c->c.inlen && c->c.inlen < SNIFF && !c->c.eof)
            return false; /* a method so far: wait for more */
        /* (cordon proxy, as srt: a tunnel is TLS, or refused) */
        if (i > 0 && i < c->c.inlen && c->c.in[i] == ' ' && !c->px->cfg.decider) {
            c->tls_mode = true;
            c->st = ST_HEAD;
            uv_timer_start(&c->timer, on_timeout, IDLE_TIMEOUT_MS, 0);
            return true;
        }
        tls_refuse(c, "not TLS: this host's traffic is intercepted, and other bytes are refused");
        return true;
    }
    c->c.ssl = SSL_new(c->px->cfg.tls_server);
    if (!c->c.ssl || SSL_set_fd(c->c.ssl, c->c.fd) != 1) {
        tls_refuse(c, "cannot start TLS");
        return true;
    }
    SSL_set_ex_data(c->c.ssl, g_ex_conn, c);
    SSL_set_accept_state(c->c.ssl);
    c->st = ST_TLS_ACCEPT;
    return true;
}

static bool tls_handshake(struct ep *e)
{
    e->tls_want = 0;
    ERR_clear_error();
    int r = SSL_do_handshake(e->ssl);
    if (r == 1)
        return true;
    int err = SSL_get_error(e->ssl, r);
    if (err == SSL_ERROR_WANT_READ)
        e->tls_want = UV_READABLE;
    else if (err == SSL_ERROR_WANT_WRITE)
        e->tls_want = UV_WRITABLE;
    else
        e->tls_want = -1;
    return false;
}

static void start_upstream_tls(struct conn *c)
{
    c->u.ssl = SSL_new(c->px->cfg.tls_client);
    if (!c->u.ssl || SSL_set_fd(c->u.ssl, c->u.fd) != 1) {
        http_answer(c, 502, "Bad Gateway", "tls", "cannot start TLS to the upstream");
        return;
    }
    /* Verify the certificate against the name the decision was made on;
     * send it as SNI (never what the client sent). */
    if (c->target.kind == HOST_NAME) {
        SSL_set_tlsext_host_name(c->u.ssl, c->target.host);
        SSL_set1_host(c->u.ssl, c->target.host);
    } else {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->u.ssl), c->target.host);
    }
    SSL_set_connect_state(c->u.ssl);
    c->st = ST_TLS_CONNECT;
}

/* Returns true when the state changed. */
static bool tls_step(struct conn *c)
{
    if (c->st == ST_TLS_ACCEPT) {
        if (!tls_handshake(&c->c)) {
            if (c->c.tls_want != -1)
                return false;
            char why[500];
            snprintf(why, sizeof(why), "TLS handshake with the client failed%s%s",
                     c->tls_fail ? ": " : "", c->tls_fail ? c->tls_fail : "");
            tls_refuse(c, why);
            return true;
        }
        if (c->px->cfg.decider) {
            /* cordon proxy: requests first; each is decided, then dialled */
            c->tls_mode = true;
            c->st = ST_HEAD;
            uv_timer_start(&c->timer, on_timeout, IDLE_TIMEOUT_MS, 0);
            return true;
        }
        start_upstream_tls(c);
        return true;
    }
    if (!tls_handshake(&c->u)) {
        if (c->u.tls_want != -1)
            return false;
        char why[400];
        long v = SSL_get_verify_result(c->u.ssl);
        snprintf(why, sizeof(why), "TLS handshake with the upstream failed%s%s",
                 v != X509_V_OK ? ": " : "", v != X509_V_OK ? X509_verify_cert_error_string(v) : "");
        c->u.tls_want = 0;
        SSL_free(c->u.ssl);
        c->u.ssl = NULL;
        if (!c->tls_mode) /* no request yet (with a decider, one waits) */
            snprintf(c->method, sizeof(c->method), "-");
        c->tls_mode = true;
        audit_request(c, 502, true, why);
        http_answer(c, 502, "Bad Gateway", "upstream-tls", why);
        return true;
    }
    if (c->px->cfg.decider) {
        /* cordon proxy: the allowed request that was waiting for it */
        uv_timer_stop(&c->timer);
        c->st = ST_FORWARD;
        ep_append_out(&c->u, c->fwd_head, c->fwd_len);
        free(c->fwd_head);
        c->fwd_head = NULL;
        return true;
    }
    c->tls_mode = true;
    c->st = ST_HEAD;
    uv_timer_start(&c->timer, on_timeout, IDLE_TIMEOUT_MS, 0);
    return true;
}

/* A kept-alive upstream may have closed while the client was idle. */
static bool upstream_alive(struct conn *c)
{
    char b;
    ssize_t r = recv(c->u.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return r < 0 && (errno == EAGAIN || errno == EINTR);
}

/* Which upstream proxy, if any, an allowed connection goes through. */
static const struct proxy_hop *choose_hop(struct conn *c)
{
    const struct proxy_config *cfg = &c->px->cfg;
    bool tunnel = c->is_connect || c->kind == PROXY_SOCKS5;
    if (tunnel && cfg->mitm.set) {
        for (size_t i = 0; i < cfg->nmitm_domains; i++) {
            const struct net_entry *e = &cfg->mitm_domains[i];
            if (net_entry_match_host(e, &c->target) && (e->port == 0 || e->port == c->target.port))
                return &cfg->mitm;
        }
    }
    const struct proxy_hop *h = tunnel ? &cfg->parent_https : &cfg->parent_http;
    if (!h->set || (cfg->no_proxy && net_noproxy_match(cfg->no_proxy, &c->target)))
        return NULL;
    return h;
}

/* A plain request through a parent proxy goes in absolute form, with the
 * parent's credentials (RFC 9112 3.2.2). */
static int rewrite_for_parent(struct conn *c)
{
    const char *sp = memchr(c->fwd_head, ' ', c->fwd_len);
    if (!sp)
        return -1;
    size_t mlen = (size_t)(sp - c->fwd_head);
    bool v6 = c->target.kind == HOST_IPV6;
    char prefix[400];
    int pn = snprintf(prefix, sizeof(prefix), "%.*s http://%s%s%s:%u", (int)mlen, c->fwd_head,
                      v6 ? "[" : "", c->target.host, v6 ? "]" : "", (unsigned)c->target.port);
    if (pn < 0 || (size_t)pn >= sizeof(prefix))
        return -1;
    size_t auth_len = c->hop->auth[0] ? strlen(c->hop->auth) + 23 : 0;
    size_t rest = c->fwd_len - mlen; /* " /path HTTP/1.1\r\n...\r\n" */
    char *n = malloc((size_t)pn + rest + auth_len + 1);
    if (!n)
        return -1;
    memcpy(n, prefix, (size_t)pn);
    /* skip the space before the origin-form path: prefix ends with the
     * authority, the path follows directly */
    memcpy(n + pn, sp + 1, rest - 1);
    size_t len = (size_t)pn + rest - 1;
    if (auth_len) {
        /* insert before the final CRLF */
        len -= 2;
        len += (size_t)sprintf(n + len, "Proxy-Authorization: %s\r\n\r\n", c->hop->auth);
    }
    explicit_bzero(c->fwd_head, c->fwd_len);
    free(c->fwd_head);
    c->fwd_head = n;
    c->fwd_len = len;
    return 0;
}

/* Ask an upstream proxy for a tunnel to the target. */
static void hop_connect(struct conn *c)
{
    bool v6 = c->target.kind == HOST_IPV6;
    char req[1200];
    int n = snprintf(req, sizeof(req), "CONNECT %s%s%s:%u HTTP/1.1\r\nHost: %s%s%s:%u\r\n%s%s%s\r\n",
                     v6 ? "[" : "", c->target.host, v6 ? "]" : "", (unsigned)c->target.port,
                     v6 ? "[" : "", c->target.host, v6 ? "]" : "", (unsigned)c->target.port,
                     c->hop->auth[0] ? "Proxy-Authorization: " : "", c->hop->auth,
                     c->hop->auth[0] ? "\r\n" : "");
    if (n > 0 && (size_t)n < sizeof(req))
        ep_append_out(&c->u, req, (size_t)n);
    explicit_bzero(req, sizeof(req));
    c->st = ST_HOP;
}

/* The upstream proxy answered our CONNECT (in u.in). Returns true when the
 * state changed. */
static bool handle_hop_answer(struct conn *c)
{
    const char *why = NULL;
    int r = http_parse_response(c->u.in, c->u.inlen, false, &g_res, &why);
    if (r == 0) {
        if (!c->u.eof && c->u.inlen < HTTP_MAX_HEAD)
            return false;
        why = "the upstream proxy closed the connection";
    }
    if (r > 0 && g_res.status >= 200 && g_res.status < 300) {
        ep_consume_in(&c->u, (size_t)r);
        if (c->kind == PROXY_SOCKS5) {
            socks_answer(c, SOCKS5_OK);
        } else if (c->kind != PROXY_TRANSPARENT) {
            static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
            ep_append_out(&c->c, ok, sizeof(ok) - 1);
        }
        if (c->intercept) {
            c->counted = true;
            c->px->tls_tunnels++;
            c->px->stats.intercepted++;
            c->st = ST_TLS_PEEK;
            uv_timer_start(&c->timer, on_timeout, (uint64_t)c->px->cfg.tls_handshake_timeout_ms, 0);
            return true;
        }
        if (c->kind == PROXY_TRANSPARENT) {
            c->st = ST_SNIFF;
            return true;
        }
        c->st = ST_TUNNEL;
        c->up.mode = c->down.mode = FLOW_RAW;
        return true;
    }
    char reason[300];
    if (r > 0)
        snprintf(reason, sizeof(reason), "the upstream proxy refused: %d", g_res.status);
    else
        snprintf(reason, sizeof(reason), "the upstream proxy answered badly: %s", why);
    if (c->kind == PROXY_SOCKS5)
        socks_answer(c, SOCKS5_GENERAL_FAILURE);
    else
        http_answer(c, 502, "Bad Gateway", "upstream-proxy", reason);
    return true;
}

/* An intercepted tunnel is taken: the 200 (or SOCKS reply), then the
 * client's TLS handshake. */
static void start_intercept(struct conn *c)
{
    if (c->kind == PROXY_SOCKS5) {
        socks_answer(c, SOCKS5_OK);
    } else if (c->kind != PROXY_TRANSPARENT) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        ep_append_out(&c->c, ok, sizeof(ok) - 1);
    }
    c->counted = true;
    c->px->tls_tunnels++;
    c->px->stats.intercepted++;
    c->st = ST_TLS_PEEK;
    uv_timer_start(&c->timer, on_timeout, (uint64_t)c->px->cfg.tls_handshake_timeout_ms, 0);
}

static void dial(struct conn *c);

/* The 403's tag for a refused host: srt's names. */
static const char *verdict_tag(const struct net_verdict *v)
{
    return v->rule                                                       ? "blocked-by-denylist"
           : strcmp(v->reason, "port is not allowed for this host") == 0 ? "blocked-port"
                                                                         : "blocked-by-allowlist";
}

/* The destination is known (c->target): decide, then resolve or dial. */
static void decide(struct conn *c)
{
    if (c->is_connect || c->kind == PROXY_SOCKS5)
        synth_to_name(c);
    struct net_verdict v = host_verdict(c->px, &c->target);
    c->rule = v.rule ? v.rule->text : NULL;
    if (!v.allow) {
        const char *custom = custom_reason(c, v.rule);
        refuse(c, verdict_tag(&v), custom ? custom : v.reason);
        return;
    }
    bool tunnel = c->is_connect || c->kind == PROXY_SOCKS5;
    c->intercept = tunnel && c->px->cfg.tls_ca && !tls_excluded(&c->px->cfg, &c->target);
    if (tunnel && !c->intercept) {
        /* No way around a request rule: an opaque tunnel would carry any
         * method and path. */
        for (size_t i = 0; i < c->px->cfg.nrules_req; i++) {
            if (req_rule_covers(&c->px->cfg.rules_req[i], &c->target)) {
                refuse(c, "blocked-by-rule",
                       "request rules cover this host, so its traffic must be intercepted "
                       "(set network.tlsTerminate; the host must not be in excludeDomains)");
                return;
            }
        }
        /* Nor around a credential: the client's own key would pass through
         * unseen (T21). A host in excludeDomains that only the default
         * injectHosts (allowedDomains) names is the user's choice to leave
         * alone. */
        int claim = cred_claim(&c->px->cfg, &c->target);
        if (claim == 2 || (claim == 1 && !tls_excluded(&c->px->cfg, &c->target))) {
            refuse(c, "blocked-by-rule",
                   "credentials are injected toward this host, so its traffic must be "
                   "intercepted (set network.tlsTerminate; the host must not be in "
                   "excludeDomains)");
            return;
        }
    }
    if (c->px->cfg.refuse_opaque && ((tunnel && !c->intercept) || c->kind == PROXY_SOCKS5)) {
        /* srt's refuseOpaqueTunnels: only tunnels whose TLS cordon
         * terminates, and no SOCKS at all. */
        refuse(c, "opaque-tunnel", c->kind == PROXY_SOCKS5
                                       ? "SOCKS tunnels are refused (refuseOpaqueTunnels)"
                                       : "tunnels that are not intercepted are refused "
                                         "(refuseOpaqueTunnels)");
        return;
    }
    if (c->intercept && c->px->tls_tunnels >= c->px->cfg.tls_max_tunnels) {
        audit_connect(c, false, "too many intercepted tunnels (tlsTerminate.maxTunnels)");
        if (c->kind == PROXY_SOCKS5)
            socks_answer(c, SOCKS5_GENERAL_FAILURE);
        else
            http_answer(c, 503, "Service Unavailable", "too-many-tunnels",
                        "too many intercepted tunnels (tlsTerminate.maxTunnels)");
        return;
    }
    if (c->intercept && c->px->cfg.decider) {
        /* cordon proxy: nothing is dialled before a verdict; the upstream
         * is dialled for the first request the decider allows */
        start_intercept(c);
        return;
    }
    dial(c);
}

/* Resolve and connect to c->target, or reuse the upstream of the previous
 * request. */
static void dial(struct conn *c)
{
    /* Reuse the upstream of the previous plain request (or, cordon proxy,
     * of the previous request in an intercepted tunnel) when it goes to the
     * same place (HTTP keep-alive). */
    if (c->upstream_ok && (!c->is_connect || c->tls_mode) && c->up_port == c->target.port &&
        strcmp(c->up_host, c->target.host) == 0 && upstream_alive(c)) {
        snprintf(c->addr_text, sizeof(c->addr_text), "%s", c->up_addr);
        if (!c->tls_mode)
            audit_connect(c, true, NULL);
        c->st = ST_FORWARD;
        ep_append_out(&c->u, c->fwd_head, c->fwd_len);
        free(c->fwd_head);
        c->fwd_head = NULL;
        return;
    }
    if (c->upstream_ok) {
        /* A different destination (or a dead one): drop the old upstream. */
        audit_close(c);
        ep_drop(&c->u);
        ep_reset_buffers(&c->u);
        c->upstream_ok = false;
        c->bytes_up_total = c->bytes_down_total = 0;
    }
    c->hop = choose_hop(c);
    if (c->hop && c->hop->unusable) {
        audit_connect(c, true, c->hop->why);
        if (c->kind == PROXY_SOCKS5)
            socks_answer(c, SOCKS5_GENERAL_FAILURE);
        else
            http_answer(c, 502, "Bad Gateway", "parent-proxy", c->hop->why);
        return;
    }
    if (c->hop && !c->is_connect && c->kind == PROXY_HTTP && rewrite_for_parent(c) < 0) {
        audit_connect(c, true, "out of memory");
        http_answer(c, 502, "Bad Gateway", "internal", "out of memory");
        return;
    }
    if (c->hop && c->hop->unix_socket) {
        struct sockaddr_storage ss = { 0 };
        struct sockaddr_un *su = (struct sockaddr_un *)&ss;
        su->sun_family = AF_UNIX;
        snprintf(su->sun_path, sizeof(su->sun_path), "%s", c->hop->path);
        c->st = ST_RESOLVING;
        resolved(c, 0, &ss, 1, NULL);
        return;
    }
    if (c->hop) {
        struct net_target ht;
        const char *why = NULL;
        if (net_canon_host(c->hop->host, &ht, &why) == 0 && ht.kind != HOST_NAME) {
            struct sockaddr_storage ss = { 0 };
            if (ht.kind == HOST_IPV4) {
                struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
                s4->sin_family = AF_INET;
                memcpy(&s4->sin_addr, ht.addr, 4);
                s4->sin_port = htons(c->hop->port);
            } else {
                struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
                s6->sin6_family = AF_INET6;
                memcpy(&s6->sin6_addr, ht.addr, 16);
                s6->sin6_port = htons(c->hop->port);
            }
            c->st = ST_RESOLVING;
            resolved(c, 0, &ss, 1, NULL);
            return;
        }
        c->st = ST_RESOLVING;
        c->rq = resolver_lookup(c->px->cfg.resolver, c->hop->host, c->hop->port, on_resolved, c);
        if (!c->rq) {
            audit_connect(c, true, "out of memory");
            http_answer(c, 502, "Bad Gateway", "internal", "out of memory");
        }
        return;
    }
    if (c->target.kind != HOST_NAME) {
        /* An address the policy allowed by an IP-literal entry: dial it. */
        struct sockaddr_storage ss = { 0 };
        if (c->target.kind == HOST_IPV4) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
            s4->sin_family = AF_INET;
            memcpy(&s4->sin_addr, c->target.addr, 4);
            s4->sin_port = htons(c->target.port);
        } else {
            struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
            s6->sin6_family = AF_INET6;
            memcpy(&s6->sin6_addr, c->target.addr, 16);
            s6->sin6_port = htons(c->target.port);
        }
        c->st = ST_RESOLVING;
        resolved(c, 0, &ss, 1, NULL);
        return;
    }
    c->st = ST_RESOLVING;
    c->rq = resolver_lookup(c->px->cfg.resolver, c->target.host, c->target.port, on_resolved, c);
    if (!c->rq) {
        audit_connect(c, true, "out of memory");
        http_answer(c, 502, "Bad Gateway", "internal", "out of memory");
    }
}

/* ---- upstream ------------------------------------------------------------ */

static void on_upstream_poll(uv_poll_t *p, int status, int events);
static void on_client_poll(uv_poll_t *p, int status, int events);

static void connect_failed(struct conn *c, const char *why)
{
    ep_drop(&c->u);
    if (++c->addr_i < c->naddrs) {
        start_connect(c);
        return;
    }
    char reason[300];
    snprintf(reason, sizeof(reason), "cannot connect: %s", why);
    audit_connect(c, true, reason);
    if (c->kind == PROXY_SOCKS5)
        socks_answer(c, SOCKS5_HOST_UNREACHABLE);
    else
        http_answer(c, 502, "Bad Gateway", "connect-failed", reason);
}

static void connected(struct conn *c)
{
    c->upstream_ok = true;
    snprintf(c->up_addr, sizeof(c->up_addr), "%s", c->addr_text);
    free(c->addrs);
    c->addrs = NULL;
    c->up_port = c->target.port;
    snprintf(c->up_host, sizeof(c->up_host), "%s", c->target.host);
    if (c->u.fd >= 0 && c->addrs == NULL)
        set_nodelay(c->u.fd);
    uv_timer_stop(&c->timer);
    audit_connect(c, true, NULL);
    if (c->kind == PROXY_EXTERNAL_HTTP || c->kind == PROXY_EXTERNAL_SOCKS) {
        c->st = ST_TUNNEL;
        c->up.mode = c->down.mode = FLOW_RAW;
    } else if (c->hop && (c->is_connect || c->kind == PROXY_SOCKS5)) {
        hop_connect(c);
    } else if (c->intercept && c->px->cfg.decider) {
        start_upstream_tls(c); /* cordon proxy: for the request the decider allowed */
    } else if (c->intercept) {
        start_intercept(c);
    } else if (c->kind == PROXY_SOCKS5) {
        socks_answer(c, SOCKS5_OK);
        c->st = ST_TUNNEL;
        c->up.mode = c->down.mode = FLOW_RAW;
    } else if (c->kind == PROXY_TRANSPARENT) {
        c->st = ST_SNIFF;
    } else if (c->is_connect) {
        static const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        ep_append_out(&c->c, ok, sizeof(ok) - 1);
        c->st = ST_TUNNEL;
        c->up.mode = c->down.mode = FLOW_RAW;
    } else {
        c->st = ST_FORWARD;
        ep_append_out(&c->u, c->fwd_head, c->fwd_len);
        free(c->fwd_head);
        c->fwd_head = NULL;
    }
}

static void start_connect(struct conn *c)
{
    const struct sockaddr_storage *ss = &c->addrs[c->addr_i];
    addr_str(ss, c->addr_text, sizeof(c->addr_text));
    c->st = ST_CONNECTING;
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connect_failed(c, strerror(errno));
        return;
    }
    c->u.fd = fd;
    socklen_t len = ss->ss_family == AF_INET    ? sizeof(struct sockaddr_in)
                    : ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                : sizeof(struct sockaddr_un);
    int r = connect(fd, (const struct sockaddr *)ss, len);
    if (r < 0 && errno != EINPROGRESS) {
        connect_failed(c, strerror(errno));
        return;
    }
    if (ep_watch(c, &c->u) < 0) {
        connect_failed(c, "cannot watch the socket");
        return;
    }
    c->u.want = UV_WRITABLE;
    uv_poll_start(c->u.poll, UV_WRITABLE, on_upstream_poll);
    /* An upstream that drops SYNs must not hold the client for the
     * kernel's two minutes: 504 and a record (on_timeout). */
    uv_timer_start(&c->timer, on_timeout, CONNECT_TIMEOUT_MS, 0);
}

/* ---- relay --------------------------------------------------------------- */

/* Move bytes of one message body or tunnel from src to dst. Returns 1 when
 * progress was made, 0 when blocked, -1 on a fatal error. */
/* Bytes this flow may still carry: its own limit and every session budget
 * it is charged to. */
static uint64_t flow_room(const struct flow *f)
{
    uint64_t room = f->limit == UINT64_MAX ? UINT64_MAX
                                           : (f->bytes >= f->limit ? 0 : f->limit - f->bytes);
    for (size_t i = 0; i < f->nsess; i++) {
        uint64_t used = *f->sess[i];
        uint64_t left = used >= f->sess_max[i] ? 0 : f->sess_max[i] - used;
        if (left < room)
            room = left;
    }
    return room;
}

static bool flow_limited(const struct flow *f)
{
    return f->limit != UINT64_MAX || f->nsess > 0;
}

static void flow_charge(struct flow *f, uint64_t n)
{
    f->bytes += n;
    for (size_t i = 0; i < f->nsess; i++)
        *f->sess[i] += n;
}

/* Output of a body transform: raw, or one chunk per run. */
struct xf_out {
    struct ep *dst;
    bool chunked;
};

static int xf_emit(void *ud, const char *p, size_t n)
{
    struct xf_out *o = ud;
    if (n == 0)
        return 0;
    if (o->chunked) {
        char line[24];
        int l = snprintf(line, sizeof(line), "%zx\r\n", n);
        if (ep_append_out(o->dst, line, (size_t)l) < 0 || ep_append_out(o->dst, p, n) < 0 ||
            ep_append_out(o->dst, "\r\n", 2) < 0)
            return -1;
        return 0;
    }
    return ep_append_out(o->dst, p, n);
}

struct xf_feed {
    struct subst *x;
    struct xf_out *out;
};

static int xf_data(void *ud, const char *p, size_t n)
{
    struct xf_feed *fd = ud;
    return subst_feed(fd->x, p, n, xf_emit, fd->out);
}

/* relay() for a body whose secrets are replaced (credentials): the body is
 * decoded from its framing (Content-Length, chunked, or until close), run
 * through the replacer, and framed again (chunked, or as it came when no
 * replacement changes the length). Trailers of a chunked body are not
 * forwarded. The flow becomes FLOW_DONE only once the whole output,
 * terminator included, is queued. Never spliced; reading stops while output
 * waits, so memory stays bounded. */
static int relay_xf(struct ep *src, struct ep *dst, struct flow *f, uint64_t *total)
{
    int progress = 0;
    struct xf_out out = { dst, f->xf_chunked };
    struct xf_feed feed = { f->xf, &out };
    for (int rounds = 0; rounds < 16; rounds++) {
        if (ep_has_out(dst)) {
            int w = ep_flush(dst);
            if (w < 0)
                return -1;
            if (w > 0)
                return progress;
            progress = 1;
        }
        if (f->mode == FLOW_DONE || f->mode == FLOW_IDLE)
            return progress;
        if (f->xf_ended) {
            /* the input ended: the rest of the output, then done */
            if (subst_end(f->xf, xf_emit, &out) < 0 ||
                (f->xf_chunked && ep_append_out(dst, "0\r\n\r\n", 5) < 0))
                return -1;
            f->mode = FLOW_DONE;
            progress = 1;
            continue;
        }
        if (src->eof) {
            if (f->mode != FLOW_RAW)
                return progress; /* cut short: the caller sees EOF */
            f->xf_ended = true;
            continue;
        }
        if (flow_limited(f) && flow_room(f) == 0 && f->mode != FLOW_CHUNKED)
            return -2;
        const char *data;
        size_t n;
        bool buffered = src->inlen > 0;
        if (buffered) {
            data = src->in;
            n = src->inlen;
        } else {
            ssize_t r = ep_recv(src, g_scratch, SCRATCH_SIZE);
            if (r < 0)
                return errno == EAGAIN ? progress : -1;
            if (r == 0) {
                src->eof = true;
                progress = 1;
                continue;
            }
            data = g_scratch;
            n = (size_t)r;
        }
        size_t used;
        uint64_t payload;
        if (f->mode == FLOW_CHUNKED) {
            bool done = false;
            uint64_t before = f->ck.total;
            long k = http_chunked_decode(&f->ck, data, n, &done, xf_data, &feed);
            if (k < 0)
                return -1;
            used = (size_t)k;
            payload = f->ck.total - before;
            f->xf_ended = done;
        } else {
            used = n;
            if (f->mode == FLOW_LENGTH && n > f->remaining)
                used = (size_t)f->remaining;
            payload = used;
            if (flow_limited(f) && payload > flow_room(f))
                return -2;
            if (subst_feed(f->xf, data, used, xf_emit, &out) < 0)
                return -1;
            if (f->mode == FLOW_LENGTH) {
                f->remaining -= used;
                f->xf_ended = f->remaining == 0;
            }
        }
        if (flow_limited(f) && payload > flow_room(f))
            return -2;
        flow_charge(f, payload);
        *total += used;
        /* cppcheck-suppress knownConditionTrueFalse ; false when ep_recv read fresh bytes */
        if (buffered) {
            ep_consume_in(src, used);
        } else if (used < n && ep_push_in(src, data + used, n - used) < 0) {
            return -1; /* bytes of the next message */
        }
        progress = 1;
    }
    return progress;
}

static int relay(struct ep *src, struct ep *dst, struct flow *f, uint64_t *total)
{
    if (f->xf)
        return relay_xf(src, dst, f, total);
    if (f->mode == FLOW_IDLE)
        return 0;
    int progress = 0;
    if (f->mode == FLOW_DONE) {
        /* The message is complete, but what it left in the pipe or the
         * output buffer still has to reach dst. */
        if (ep_has_out(dst)) {
            int w = ep_flush(dst);
            if (w < 0)
                return -1;
            if (w > 0)
                return 0;
            progress = 1;
        }
        while (f->splice && f->inpipe > 0) {
            ssize_t m = splice(f->pipe[0], NULL, dst->fd, NULL, f->inpipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m < 0) {
                if (errno == EINTR)
                    continue;
                return errno == EAGAIN ? progress : -1;
            }
            f->inpipe -= (size_t)m;
            progress = 1;
        }
        return progress;
    }

    /* Bytes already buffered in src->in (pipelined data, or what followed a
     * head) go first. */
    if (src->inlen > 0 && !f->splice) {
        size_t n = src->inlen;
        if (f->mode == FLOW_LENGTH && n > f->remaining)
            n = (size_t)f->remaining;
        uint64_t payload = n;
        if (f->mode == FLOW_CHUNKED) {
            bool done = false;
            uint64_t before = f->ck.total;
            long k = http_chunked_feed(&f->ck, src->in, n, &done);
            if (k < 0)
                return -1;
            n = (size_t)k;
            payload = f->ck.total - before;
            if (done)
                f->mode = FLOW_DONE;
        }
        if (flow_limited(f) && payload > flow_room(f))
            return -2;
        if (ep_append_out(dst, src->in, n) < 0)
            return -1;
        ep_consume_in(src, n);
        flow_charge(f, payload);
        *total += n;
        if (f->mode == FLOW_LENGTH) {
            f->remaining -= n;
            if (f->remaining == 0)
                f->mode = FLOW_DONE;
        }
        progress = 1;
    }

    for (int rounds = 0; rounds < 16; rounds++) {
        if (ep_has_out(dst)) {
            int w = ep_flush(dst);
            if (w < 0)
                return -1;
            if (w > 0)
                return progress;
            progress = 1;
        }
        if (f->splice && f->inpipe > 0) {
            ssize_t m = splice(f->pipe[0], NULL, dst->fd, NULL, f->inpipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (m < 0) {
                if (errno == EAGAIN)
                    return progress;
                if (errno != EINTR)
                    return -1;
                continue;
            }
            f->inpipe -= (size_t)m;
            f->pipe_full = false;
            progress = 1;
            if (f->inpipe > 0)
                continue;
        }
        if (f->mode == FLOW_DONE || src->eof)
            break;
        size_t want = SCRATCH_SIZE;
        if (f->mode == FLOW_LENGTH && f->remaining < want)
            want = (size_t)f->remaining;
        if (flow_limited(f) && flow_room(f) == 0 && f->mode != FLOW_CHUNKED)
            return -2; /* the body is larger than the rules allow */
        if (f->splice) {
            size_t sw = PIPE_SIZE - f->inpipe;
            if (f->mode == FLOW_LENGTH && f->remaining < sw)
                sw = (size_t)f->remaining;
            if (flow_limited(f) && flow_room(f) < sw)
                sw = (size_t)flow_room(f);
            if (sw == 0)
                return progress;
            ssize_t r = splice(src->fd, NULL, f->pipe[1], NULL, sw,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
            if (r < 0) {
                if (errno == EAGAIN) {
                    if (f->inpipe > 0)
                        f->pipe_full = true;
                    return progress;
                }
                if (errno == EINTR)
                    continue;
                return -1;
            }
            if (r == 0) {
                src->eof = true;
                break;
            }
            f->inpipe += (size_t)r;
            flow_charge(f, (uint64_t)r);
            *total += (size_t)r;
            if (f->mode == FLOW_LENGTH) {
                f->remaining -= (size_t)r;
                if (f->remaining == 0)
                    f->mode = FLOW_DONE;
            }
            progress = 1;
            continue;
        }
        ssize_t r = ep_recv(src, g_scratch, want);
        if (r < 0)
            return errno == EAGAIN ? progress : -1;
        if (r == 0) {
            src->eof = true;
            break;
        }
        size_t n = (size_t)r;
        size_t fwd = n;
        uint64_t payload = n;
        if (f->mode == FLOW_CHUNKED) {
            bool done = false;
            uint64_t before = f->ck.total;
            long k = http_chunked_feed(&f->ck, g_scratch, n, &done);
            if (k < 0)
                return -1;
            fwd = (size_t)k;
            payload = f->ck.total - before;
            if (done)
                f->mode = FLOW_DONE;
            /* Bytes after the end of the message belong to the next one. */
            if (fwd < n && ep_push_in(src, g_scratch + fwd, n - fwd) < 0)
                return -1;
        }
        if (flow_limited(f) && payload > flow_room(f))
            return -2; /* cut: nothing of this chunk goes out */
        flow_charge(f, payload);
        *total += fwd;
        if (f->mode == FLOW_LENGTH) {
            f->remaining -= fwd;
            if (f->remaining == 0)
                f->mode = FLOW_DONE;
        }
        /* Send straight from the scratch buffer; keep only what the peer did
         * not take. */
        size_t off = 0;
        if (!ep_has_out(dst)) {
            while (off < fwd) {
                ssize_t w = ep_send(dst, g_scratch + off, fwd - off);
                if (w < 0) {
                    if (errno == EAGAIN)
                        break;
                    return -1;
                }
                off += (size_t)w;
            }
        }
        if (off < fwd && ep_append_out(dst, g_scratch + off, fwd - off) < 0)
            return -1;
        progress = 1;
        /* splice(2) moves bytes between sockets: never with TLS on a side. */
        if (n >= SPLICE_THRESHOLD && (f->mode == FLOW_RAW || f->mode == FLOW_LENGTH) &&
            !f->splice && !src->ssl && !dst->ssl) {
            if (pipe2(f->pipe, O_CLOEXEC | O_NONBLOCK) == 0) {
                fcntl(f->pipe[1], F_SETPIPE_SZ, PIPE_SIZE);
                f->splice = true;
            }
        }
        if (ep_has_out(dst))
            return progress;
    }
    /* End of a raw stream: pass the half-close on once everything is out. */
    if (src->eof && f->mode == FLOW_RAW && !ep_has_out(dst) && f->inpipe == 0 && !dst->shut) {
        ep_shutdown_write(dst);
        dst->shut = true;
        f->mode = FLOW_DONE;
        progress = 1;
    }
    return progress;
}

static void flow_reset(struct flow *f)
{
    if (f->splice) {
        close(f->pipe[0]);
        close(f->pipe[1]);
    }
    if (f->xf) {
        subst_free(f->xf);
        free(f->xf);
    }
    memset(f, 0, sizeof(*f));
    f->limit = UINT64_MAX;
}

/* ---- heads ----------------------------------------------------------------- */

static bool hop_by_hop(const struct http_header *h, const struct http_header *conn_hdr)
{
    static const char *const names[] = {
        "connection", "proxy-connection", "keep-alive", "proxy-authorization",
        "proxy-authenticate", "te", "trailer", "upgrade", "host",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (h->name_len == strlen(names[i]) && strncasecmp(h->name, names[i], h->name_len) == 0)
            return true;
    if (conn_hdr) {
        char name[128];
        if (h->name_len < sizeof(name)) {
            memcpy(name, h->name, h->name_len);
            name[h->name_len] = '\0';
            if (http_has_token(conn_hdr->value, conn_hdr->value_len, name))
                return true;
        }
    }
    return false;
}

/* ---- credentials (tls/creds.h) --------------------------------------------- */

static void cred_reset(struct conn *c)
{
    free(c->cred_pairs);
    c->cred_pairs = NULL;
    c->ncred_pairs = 0;
    free(c->cred_hdrs);
    c->cred_hdrs = NULL;
    c->ncred_hdrs = 0;
    free(c->cred_back);
    c->cred_back = NULL;
    c->ncred_back = 0;
    free(c->ws_back);
    c->ws_back = NULL;
    free(c->ws_text);
    c->ws_text = NULL;
    c->aws = NULL;
    c->cred_host = false;
    json_decref(c->cred_audit);
    c->cred_audit = NULL;
}

static bool entry_covers_target(const struct net_entry *e, const struct net_target *t)
{
    return net_entry_match_host(e, t) && (e->port == 0 || e->port == t->port);
}

static bool secret_covers(const struct cred_secret *s, const struct net_target *t)
{
    for (size_t i = 0; i < s->nhosts; i++)
        if (entry_covers_target(&s->hosts[i], t))
            return true;
    return false;
}

/* Does a credential belong to this host? 2: named explicitly (injectHosts
 * or injectHeaders), 1: only through the default injectHosts
 * (allowedDomains), 0: no. */
static int cred_claim(const struct proxy_config *cfg, const struct net_target *t)
{
    const struct cred_store *cs = cfg->creds;
    int claim = 0;
    for (size_t i = 0; cs && i < cs->nheaders; i++)
        if (entry_covers_target(cs->headers[i].host, t))
            return 2;
    for (size_t i = 0; cs && i < cs->nsecrets; i++)
        if (secret_covers(&cs->secrets[i], t))
            claim = cs->secrets[i].explicit_hosts ? 2 : (claim ? claim : 1);
    return claim;
}

/* Header names compare case-insensitively with "-", "_" and "." folded
 * together (a server that maps them to CGI variables reads x_api_key as
 * X-API-KEY). */
static bool folded_eq(const char *a, size_t an, const char *b)
{
    size_t bn = strlen(b);
    if (an != bn)
        return false;
    for (size_t i = 0; i < an; i++) {
        char x = (char)tolower((unsigned char)a[i]), y = (char)tolower((unsigned char)b[i]);
        if (x == '_' || x == '.')
            x = '-';
        if (y == '_' || y == '.')
            y = '-';
        if (x != y)
            return false;
    }
    return true;
}

/* Headers that carry a client's own credentials: toward a host a credential
 * belongs to, they pass only when they carry that host's sentinel (T21). */
static const char *const client_cred_headers[] = {
    "authorization", "proxy-authorization", "cookie", "x-api-key",
};

/* Is secret i the secret key or session token of an AWS pair? */
static bool aws_signing_secret(const struct cred_store *cs, size_t i)
{
    for (size_t k = 0; k < cs->naws; k++)
        if ((size_t)cs->aws[k].secret == i ||
            (cs->aws[k].token >= 0 && (size_t)cs->aws[k].token == i))
            return true;
    return false;
}

/* Work out the credentials of a request: which secrets may be substituted
 * and which headers injected. The effective host is the target; inside an
 * intercepted tunnel whose Host names another host (requireHostMatch
 * false), a credential must belong to both (T22). Returns false when the
 * request was answered here. */
static bool cred_prepare_request(struct conn *c, const struct http_request *q)
{
    const struct proxy_config *cfg = &c->px->cfg;
    cred_reset(c);
    const struct cred_store *cs = cfg->creds;
    if (!cs)
        return true;
    struct net_target alt;
    bool has_alt = false;
    if (c->tls_mode && q->host[0]) {
        const char *why = NULL;
        if (net_canon_host(q->host, &alt, &why) == 0) {
            alt.port = q->port_explicit ? q->port : (c->c.ssl ? 443 : 80);
            has_alt = alt.kind != c->target.kind || strcmp(alt.host, c->target.host) != 0 ||
                      alt.port != c->target.port;
        }
    }
    bool plaintext = !c->c.ssl;
    bool subst_ok = !plaintext || cfg->allow_plaintext_inject;
    c->cred_host = cred_claim(cfg, &c->target) > 0;
    if (!c->cred_host)
        return true;
    if (subst_ok && cs->nsecrets) {
        c->cred_pairs = calloc(cs->nsecrets, sizeof(*c->cred_pairs));
        if (!c->cred_pairs)
            return true;
        for (size_t i = 0; i < cs->nsecrets; i++) {
            const struct cred_secret *s = &cs->secrets[i];
            /* An AWS secret key or session token is never put in a request
             * as such: it only signs (and the token has its own header).
             * Substituted into a body it could be stored where someone
             * else reads it (an object in another account's bucket). */
            if (aws_signing_secret(cs, i))
                continue;
            if (secret_covers(s, &c->target) && (!has_alt || secret_covers(s, &alt)))
                c->cred_pairs[c->ncred_pairs++] =
                    (struct subst_pair){ s->fake, s->fake_len, s->real, s->real_len };
        }
    }
    for (size_t i = 0; i < cs->nheaders; i++) {
        const struct cred_header *h = &cs->headers[i];
        if (!entry_covers_target(h->host, &c->target) || (has_alt && !entry_covers_target(h->host, &alt)))
            continue;
        if (plaintext && !cfg->allow_plaintext_header_set) {
            /* srt: an allow that sets headers on cleartext becomes a 403. */
            const char *reason = "headers are injected toward this host only over TLS "
                                 "(network.allowPlaintextHeaderSet)";
            audit_request(c, 403, false, reason);
            http_answer(c, 403, "Forbidden", "blocked-by-rule", reason);
            return false;
        }
        /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
        const struct cred_header **nv = realloc(c->cred_hdrs, (c->ncred_hdrs + 1) * sizeof(*nv));
        if (!nv)
            continue;
        c->cred_hdrs = nv;
        nv[c->ncred_hdrs++] = h;
    }
    /* What goes out may come back (an API that echoes the request): the
     * response has every real value sent here replaced again. */
    size_t nback = c->ncred_pairs;
    for (size_t i = 0; i < c->ncred_hdrs; i++)
        nback += c->cred_hdrs[i]->npieces;
    size_t naws_back = 0;
    for (size_t i = 0; subst_ok && i < cs->nsecrets; i++)
        if (aws_signing_secret(cs, i) && secret_covers(&cs->secrets[i], &c->target))
            naws_back++;
    nback += naws_back;
    if (nback) {
        c->cred_back = calloc(nback, sizeof(*c->cred_back));
        if (!c->cred_back) {
            audit_request(c, 502, false, "out of memory");
            http_answer(c, 502, "Bad Gateway", "internal", "out of memory");
            return false;
        }
        for (size_t i = 0; i < c->ncred_pairs; i++)
            c->cred_back[c->ncred_back++] =
                (struct subst_pair){ c->cred_pairs[i].to, c->cred_pairs[i].to_len,
                                     c->cred_pairs[i].from, c->cred_pairs[i].from_len };
        for (size_t i = 0; i < c->ncred_hdrs; i++)
            for (size_t k = 0; k < c->cred_hdrs[i]->npieces; k++) {
                const struct cred_piece *pc = &c->cred_hdrs[i]->pieces[k];
                c->cred_back[c->ncred_back++] =
                    (struct subst_pair){ pc->real, pc->real_len, pc->fake, pc->fake_len };
            }
        for (size_t i = 0; naws_back && i < cs->nsecrets; i++) {
            const struct cred_secret *s = &cs->secrets[i];
            if (aws_signing_secret(cs, i) && secret_covers(s, &c->target))
                c->cred_back[c->ncred_back++] =
                    (struct subst_pair){ s->real, s->real_len, s->fake, s->fake_len };
        }
    }
    return true;
}

static bool is_client_cred(const struct conn *c, const struct http_header *f, bool *injected)
{
    *injected = false;
    for (size_t i = 0; i < c->ncred_hdrs; i++) {
        if (folded_eq(f->name, f->name_len, c->cred_hdrs[i]->name)) {
            *injected = true;
            return true;
        }
    }
    for (size_t i = 0; i < ARRAY_SIZE(client_cred_headers); i++)
        if (folded_eq(f->name, f->name_len, client_cred_headers[i]))
            return true;
    return false;
}

/* Is [s, s+n) exactly one of this request's sentinels? */
static bool is_sentinel(const struct conn *c, const char *s, size_t n)
{
    for (size_t i = 0; i < c->ncred_pairs; i++)
        if (c->cred_pairs[i].from_len == n && memcmp(c->cred_pairs[i].from, s, n) == 0)
            return true;
    return false;
}

static bool is_tchar(char ch)
{
    return isalnum((unsigned char)ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* Of a client credential header toward a credential host (T21), what may
 * go on: only what carries nothing the sandbox chose beside this host's
 * sentinel, since anything else could be the attacker's own key or session
 * next to the user's (the origin would act on the attacker's account).
 * Authorization and Proxy-Authorization: the value is a sentinel, or a
 * scheme (a token, RFC 9110 11.4) then spaces then a sentinel. Cookie: the
 * pairs (RFC 6265 4.2.1, "; "-separated) whose name is a token and whose
 * value is a sentinel; the other pairs are dropped, and *filtered holds
 * what is left when that is not the whole value. Any other: the value is a
 * sentinel. Returns false to strip the whole header. */
static bool client_cred_keep(const struct conn *c, const struct http_header *f, char **filtered,
                             size_t *flen)
{
    const char *v = f->value;
    size_t n = f->value_len;
    *filtered = NULL;
    if (is_sentinel(c, v, n))
        return true;
    if (folded_eq(f->name, f->name_len, "authorization") ||
        folded_eq(f->name, f->name_len, "proxy-authorization")) {
        size_t k = 0;
        while (k < n && is_tchar(v[k]))
            k++;
        if (k == 0 || k == n || v[k] != ' ')
            return false;
        while (k < n && v[k] == ' ')
            k++;
        return is_sentinel(c, v + k, n - k);
    }
    if (!folded_eq(f->name, f->name_len, "cookie"))
        return false;
    /* The kept pairs, "; "-joined: at most one byte more per ';' seen. */
    char *out = malloc(2 * n + 1);
    if (!out)
        return false;
    size_t ol = 0;
    bool dropped = false;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && v[e] != ';')
            e++;
        size_t a = i, z = e;
        while (a < z && (v[a] == ' ' || v[a] == '\t'))
            a++;
        while (z > a && (v[z - 1] == ' ' || v[z - 1] == '\t'))
            z--;
        size_t eq = a;
        while (eq < z && is_tchar(v[eq]))
            eq++;
        if (eq > a && eq < z && v[eq] == '=' && is_sentinel(c, v + eq + 1, z - eq - 1)) {
            if (ol) {
                out[ol++] = ';';
                out[ol++] = ' ';
            }
            memcpy(out + ol, v + a, z - a);
            ol += z - a;
        } else if (z > a) {
            dropped = true;
        }
        i = e < n ? e + 1 : n;
    }
    if (ol == 0 || !dropped) {
        free(out);
        return ol != 0;
    }
    *filtered = out;
    *flen = ol;
    return true;
}

static bool strip_always(const struct proxy_config *cfg, const struct http_header *f)
{
    for (size_t i = 0; i < cfg->nstrip_request_headers; i++)
        if (folded_eq(f->name, f->name_len, cfg->strip_request_headers[i]))
            return true;
    return false;
}

static void cred_note(struct conn *c, const char *key, const char *text, size_t len)
{
    if (!c->cred_audit)
        c->cred_audit = json_object();
    if (!c->cred_audit)
        return;
    json_t *a = json_object_get(c->cred_audit, key);
    if (!a) {
        a = json_array();
        if (!a || json_object_set_new(c->cred_audit, key, a) < 0)
            return;
    }
    json_t *v = json_stringn(text, len);
    if (!v)
        v = audit_str("?");
    size_t i;
    json_t *e;
    json_array_foreach(a, i, e) {
        if (json_equal(e, v)) {
            json_decref(v);
            return;
        }
    }
    json_array_append_new(a, v);
}

/* Note which secrets' sentinels occur in text (for the audit record). */
static void note_secrets(struct conn *c, const char *text, size_t len)
{
    const struct cred_store *cs = c->px->cfg.creds;
    for (size_t i = 0; i < c->ncred_pairs; i++) {
        if (!memmem(text, len, c->cred_pairs[i].from, c->cred_pairs[i].from_len))
            continue;
        for (size_t k = 0; k < cs->nsecrets; k++)
            if (cs->secrets[k].fake == c->cred_pairs[i].from)
                cred_note(c, "injected", cs->secrets[k].label, strlen(cs->secrets[k].label));
    }
}

/* A growing head buffer. */
struct hbuf {
    char *p;
    size_t n, cap;
    bool oom;
};

static void hb_add(struct hbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (!b->p || b->n + n + 1 > b->cap) { /* !p: said outright for the analyzer */
        size_t cap = (b->n + n + 1) * 2;
        char *np = malloc(cap);
        if (!np) {
            b->oom = true;
            return;
        }
        if (b->p) {
            memcpy(np, b->p, b->n);
            explicit_bzero(b->p, b->n); /* it may hold real credentials */
            free(b->p);
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void hb_str(struct hbuf *b, const char *s)
{
    hb_add(b, s, strlen(s));
}

/* Add text with this request's sentinels replaced by real values. */
static void hb_subst(struct conn *c, struct hbuf *b, const char *s, size_t n)
{
    if (c->ncred_pairs == 0 || !subst_contains(c->cred_pairs, c->ncred_pairs, s, n)) {
        hb_add(b, s, n);
        return;
    }
    note_secrets(c, s, n);
    char *out = NULL;
    size_t ol = 0;
    if (subst_string(c->cred_pairs, c->ncred_pairs, s, n, &out, &ol) < 0) {
        b->oom = true;
        return;
    }
    hb_add(b, out, ol);
    explicit_bzero(out, ol);
    free(out);
}

/* Set up the body transform of a request whose secrets may be substituted.
 * Encoded bodies are left alone (the fake goes out; srt does the same). */
static int cred_body(struct conn *c, const struct http_request *r, bool *chunked_out)
{
    *chunked_out = false;
    if (c->aws) /* signed over the body as sent: it goes as it is */
        return 0;
    if (c->ncred_pairs == 0 || r->framing == HTTP_BODY_NONE ||
        (r->framing == HTTP_BODY_LENGTH && r->content_length == 0))
        return 0;
    const struct http_header *ce = http_find(r->headers, r->nheaders, "content-encoding");
    if (ce && !(ce->value_len == 8 && strncasecmp(ce->value, "identity", 8) == 0))
        return 0;
    bool same = true;
    for (size_t i = 0; i < c->ncred_pairs; i++)
        same &= c->cred_pairs[i].from_len == c->cred_pairs[i].to_len;
    struct subst *x = malloc(sizeof(*x));
    if (!x || subst_init(x, c->cred_pairs, c->ncred_pairs) < 0) {
        free(x);
        return -1;
    }
    c->up.xf = x;
    c->up.xf_chunked = r->framing == HTTP_BODY_CHUNKED || !same;
    *chunked_out = c->up.xf_chunked && r->framing == HTTP_BODY_LENGTH;
    return 0;
}

/* Largest body buffered to hash for a re-signed request (srt: 64 MiB). */
#define SIGV4_BODY_MAX (64u << 20)

struct hash_feed {
    EVP_MD_CTX *md;
};

static int hash_data(void *ud, const char *p, size_t n)
{
    struct hash_feed *h = ud;
    return EVP_DigestUpdate(h->md, p, n) == 1 ? 0 : -1;
}

/* A request passed through unchanged (credentials.sigv4 passthrough): its
 * fake key id must not become the real one either. */
static void aws_keep_fake(struct conn *c, const struct cred_aws *pair)
{
    const struct cred_store *cs = c->px->cfg.creds;
    const struct cred_secret *k = &cs->secrets[pair->akid];
    c->aws_passthrough = true;
    for (size_t i = 0; i < c->ncred_pairs; i++) {
        if (c->cred_pairs[i].from == k->fake) {
            c->cred_pairs[i] = c->cred_pairs[--c->ncred_pairs];
            break;
        }
    }
}

static void aws_refuse(struct conn *c, const char *reason)
{
    cred_note(c, "stripped", "Authorization", 13);
    audit_request(c, 403, false, reason);
    http_answer(c, 403, "Forbidden", "blocked-by-rule", reason);
}

/* Does a masked AWS key of this request's host appear in the text? */
static const struct cred_aws *aws_key_in(const struct conn *c, const char *text, size_t len)
{
    const struct cred_store *cs = c->px->cfg.creds;
    for (size_t i = 0; cs && i < cs->naws; i++) {
        const struct cred_secret *k = &cs->secrets[cs->aws[i].akid];
        for (size_t j = 0; j < c->ncred_pairs; j++)
            if (c->cred_pairs[j].from == k->fake && memmem(text, len, k->fake, k->fake_len))
                return &cs->aws[i];
    }
    return NULL;
}

/* A client that sent "Expect: 100-continue" waits for this before its body,
 * which cordon reads before the head goes on (the decider asked for it, or
 * it is hashed for SigV4): once per request. The upstream may send its own
 * 100 later; clients take any number of them (RFC 9110 15.2). */
static void send_continue(struct conn *c)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (c->continued)
        return;
    ep_append_out(&c->c, cont, sizeof(cont) - 1);
    c->continued = true;
}

/* SigV4 with a masked key (credentials.awsPairs): check that the client's
 * signature verifies with the fake secret it holds, over the request as it
 * sent it, then let build_forward_head sign it again with the real one.
 * Shapes that cannot be re-signed are refused unless credentials.sigv4 lets
 * them pass (the fake signature then reaches AWS, which refuses it). When
 * the payload hash needs the body, the body is gathered first (up to
 * SIGV4_BODY_MAX). Returns 1 to go on, 0 to wait for more of the body, -1
 * when the request was answered. */
static int aws_prepare(struct conn *c, const struct http_request *q, size_t headlen)
{
    c->aws = NULL;
    c->aws_passthrough = false;
    const struct cred_store *cs = c->px->cfg.creds;
    if (!cs || !cs->naws || c->ncred_pairs == 0)
        return 1;
    const struct cred_aws *qk = q->path && sigv4_query_presigned(c->path)
                                    ? aws_key_in(c, c->path, strlen(c->path))
                                    : NULL;
    if (qk) {
        if (cs->sigv4_presigned) {
            aws_keep_fake(c, qk);
            return 1;
        }
        aws_refuse(c, "a presigned URL made with a masked AWS key cannot be signed again "
                      "(credentials.sigv4.presigned)");
        return -1;
    }
    const struct http_header *ah = http_find(q->headers, q->nheaders, "authorization");
    if (!ah)
        return 1;
    struct sigv4_auth a;
    enum sigv4_kind kind = sigv4_parse_auth(ah->value, ah->value_len, &a);
    const struct cred_aws *ek = kind == SIGV4_ECDSA ? aws_key_in(c, ah->value, ah->value_len)
                                                     : NULL;
    if (ek) {
        if (cs->sigv4a) {
            aws_keep_fake(c, ek);
            return 1;
        }
        aws_refuse(c, "a SigV4A (ECDSA) signature made with a masked AWS key cannot be signed "
                      "again (credentials.sigv4.sigv4a)");
        return -1;
    }
    if (kind != SIGV4_HMAC)
        return 1;
    const struct cred_aws *pair = NULL;
    for (size_t i = 0; i < cs->naws && !pair; i++) {
        const struct cred_secret *k = &cs->secrets[cs->aws[i].akid];
        if (strlen(a.akid) == k->fake_len && memcmp(a.akid, k->fake, k->fake_len) == 0 &&
            aws_key_in(c, k->fake, k->fake_len))
            pair = &cs->aws[i];
    }
    if (!pair)
        return 1; /* another key: stripped as a client credential */
    const struct http_header *xh = http_find(q->headers, q->nheaders, "x-amz-content-sha256");
    if (xh) {
        bool hex = xh->value_len == 64;
        for (size_t i = 0; hex && i < 64; i++)
            hex = (xh->value[i] >= '0' && xh->value[i] <= '9') ||
                  (xh->value[i] >= 'a' && xh->value[i] <= 'f');
        if (!hex && !(xh->value_len == 16 && memcmp(xh->value, "UNSIGNED-PAYLOAD", 16) == 0) &&
            !(xh->value_len == 34 &&
              memcmp(xh->value, "STREAMING-UNSIGNED-PAYLOAD-TRAILER", 34) == 0)) {
            if (xh->value_len >= 10 && memcmp(xh->value, "STREAMING-", 10) == 0) {
                if (cs->sigv4_streaming) {
                    aws_keep_fake(c, pair);
                    return 1;
                }
                aws_refuse(c, "a streaming (aws-chunked) upload signed with a masked AWS key "
                              "cannot be signed again (credentials.sigv4.streaming)");
                return -1;
            }
            aws_refuse(c, "an x-amz-content-sha256 value that cannot be signed again");
            return -1;
        }
        snprintf(c->aws_payload, sizeof(c->aws_payload), "%.*s", (int)xh->value_len, xh->value);
    } else if (q->framing == HTTP_BODY_NONE ||
               (q->framing == HTTP_BODY_LENGTH && q->content_length == 0)) {
        sigv4_sha256_hex("", 0, c->aws_payload);
    } else {
        /* The client hashed the body: so must we, before the head goes. */
        if (q->framing == HTTP_BODY_LENGTH && q->content_length > SIGV4_BODY_MAX) {
            aws_refuse(c, "the body of a request signed with a masked AWS key is larger than "
                          "cordon buffers to sign it again (64 MiB)");
            return -1;
        }
        const char *body = c->c.in + headlen;
        size_t avail = c->c.inlen - headlen;
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        if (!md || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
            EVP_MD_CTX_free(md);
            return 1;
        }
        bool done;
        if (q->framing == HTTP_BODY_LENGTH) {
            done = avail >= q->content_length;
            if (done)
                EVP_DigestUpdate(md, body, (size_t)q->content_length);
        } else {
            struct http_chunked ck = { 0 };
            struct hash_feed hf = { md };
            done = false;
            if (http_chunked_decode(&ck, body, avail, &done, hash_data, &hf) < 0) {
                EVP_MD_CTX_free(md);
                aws_refuse(c, "malformed chunked body");
                return -1;
            }
            if (!done && ck.total > SIGV4_BODY_MAX) {
                EVP_MD_CTX_free(md);
                aws_refuse(c, "the body of a request signed with a masked AWS key is larger "
                              "than cordon buffers to sign it again (64 MiB)");
                return -1;
            }
        }
        if (!done) {
            EVP_MD_CTX_free(md);
            if (c->c.eof) {
                aws_refuse(c, "the request body ended early");
                return -1;
            }
            c->head_cap = q->framing == HTTP_BODY_LENGTH
                              ? headlen + (size_t)q->content_length + 1
                              : headlen + SIGV4_BODY_MAX + SIGV4_BODY_MAX / 8;
            if (q->expect_continue)
                send_continue(c);
            uv_timer_start(&c->timer, on_timeout, IDLE_TIMEOUT_MS, 0);
            return 0;
        }
        unsigned char d[32];
        unsigned int dl = 0;
        EVP_DigestFinal_ex(md, d, &dl);
        EVP_MD_CTX_free(md);
        static const char hx[] = "0123456789abcdef";
        for (int i = 0; i < 32; i++) {
            c->aws_payload[2 * i] = hx[d[i] >> 4];
            c->aws_payload[2 * i + 1] = hx[d[i] & 15];
        }
        c->aws_payload[64] = '\0';
    }
    /* The client's signature, with the fake secret, over what it sent. */
    struct sigv4_header *hs = calloc(q->nheaders + 1, sizeof(*hs));
    char *target = q->path ? strndup(q->path, q->path_len) : strdup("/");
    if (!hs || !target) {
        free(hs);
        free(target);
        return 1;
    }
    const char *amz_date = NULL;
    char date[20] = "";
    for (size_t i = 0; i < q->nheaders; i++) {
        const struct http_header *f = &q->headers[i];
        hs[i] = (struct sigv4_header){ f->name, f->name_len, f->value, f->value_len };
        if (f->name_len == 10 && strncasecmp(f->name, "x-amz-date", 10) == 0 &&
            f->value_len < sizeof(date)) {
            memcpy(date, f->value, f->value_len);
            date[f->value_len] = '\0';
            amz_date = date;
        }
    }
    char method[32];
    snprintf(method, sizeof(method), "%.*s", (int)q->method_len, q->method);
    struct sigv4_request sr = { .method = method, .target = target, .headers = hs,
                                .nheaders = q->nheaders, .payload_hash = c->aws_payload,
                                .amz_date = amz_date };
    const struct cred_secret *fake = &cs->secrets[pair->secret];
    bool ok = false;
    for (int u = 0; u < 2 && !ok; u++) {
        char sig[65];
        enum sigv4_uri mode = u == 0 ? SIGV4_URI_AS_SENT : SIGV4_URI_DOUBLE;
        ok = sigv4_sign(&sr, &a, mode, fake->fake, fake->fake_len, sig) == 0 &&
             strcmp(sig, a.signature) == 0;
    }
    free(hs);
    free(target);
    if (!ok) {
        aws_refuse(c, "the request's AWS signature does not verify with the masked key the "
                      "sandbox holds, so it is not signed again");
        return -1;
    }
    c->aws = pair;
    c->aws_auth = a;
    return 1;
}

/* Stand-ins as long as the real values (for streams with their own
 * framing): the fake, cut or padded with 'x'. */
static int ws_standins(struct conn *c)
{
    size_t total = 0;
    for (size_t i = 0; i < c->ncred_back; i++)
        total += c->cred_back[i].from_len;
    c->ws_back = calloc(c->ncred_back, sizeof(*c->ws_back));
    c->ws_text = malloc(total + 1);
    if (!c->ws_back || !c->ws_text)
        return -1;
    size_t off = 0;
    for (size_t i = 0; i < c->ncred_back; i++) {
        const struct subst_pair *p = &c->cred_back[i];
        char *t = c->ws_text + off;
        for (size_t k = 0; k < p->from_len; k++)
            t[k] = k < p->to_len ? p->to[k] : 'x';
        c->ws_back[i] = (struct subst_pair){ p->from, p->from_len, t, p->from_len };
        off += p->from_len;
    }
    return 0;
}

/* Where a header went in the head being built (offsets survive reallocs). */
struct hrec {
    size_t no, nl, vo, vl;
};

/* Sign the forwarded request again with the real key (SigV4): over the
 * target and header values as they go out, the payload hash the client
 * signed, and the scope and signed headers it chose. */
static int aws_sign(struct conn *c, const struct http_request *r, struct hbuf *b, size_t to,
                    size_t tl, const struct hrec *rec, size_t nrec, char *auth, size_t authcap)
{
    const struct cred_store *cs = c->px->cfg.creds;
    const struct cred_secret *akid = &cs->secrets[c->aws->akid];
    const struct cred_secret *sec = &cs->secrets[c->aws->secret];
    struct sigv4_header *hs = calloc(nrec, sizeof(*hs));
    char *target = strndup(b->p + to, tl);
    if (!hs || !target) {
        free(hs);
        free(target);
        return -1;
    }
    const char *amz_date = NULL;
    char date[20] = "";
    for (size_t i = 0; i < nrec; i++) {
        hs[i] = (struct sigv4_header){ b->p + rec[i].no, rec[i].nl, b->p + rec[i].vo, rec[i].vl };
        if (rec[i].nl == 10 && strncasecmp(b->p + rec[i].no, "x-amz-date", 10) == 0 &&
            rec[i].vl < sizeof(date)) {
            memcpy(date, b->p + rec[i].vo, rec[i].vl);
            date[rec[i].vl] = '\0';
            amz_date = date;
        }
    }
    struct sigv4_auth a = c->aws_auth;
    snprintf(a.akid, sizeof(a.akid), "%.*s", (int)akid->real_len, akid->real);
    char method[32];
    snprintf(method, sizeof(method), "%.*s", (int)r->method_len, r->method);
    struct sigv4_request sr = { .method = method, .target = target, .headers = hs,
                                .nheaders = nrec, .payload_hash = c->aws_payload,
                                .amz_date = amz_date };
    bool s3 = strncmp(a.service, "s3", 2) == 0;
    int rc = sigv4_sign(&sr, &a, s3 ? SIGV4_URI_AS_SENT : SIGV4_URI_DOUBLE, sec->real,
                        sec->real_len, a.signature);
    free(hs);
    free(target);
    if (rc == 0)
        sigv4_format_auth(&a, auth, authcap);
    explicit_bzero(&a, sizeof(a));
    return rc;
}

/* Insert "x-amz-security-token" into a sorted SignedHeaders list. */
static void signed_add_token(struct sigv4_auth *a)
{
    char out[sizeof(a->signed_headers)];
    const char *t = "x-amz-security-token";
    size_t n = 0;
    bool done = false;
    const char *p = a->signed_headers;
    while (*p) {
        size_t l = strcspn(p, ";");
        if (l == strlen(t) && strncmp(p, t, l) == 0)
            return; /* already signed */
        p += l;
        if (*p == ';')
            p++;
    }
    p = a->signed_headers;
    while (*p) {
        size_t l = strcspn(p, ";");
        char name[128];
        snprintf(name, sizeof(name), "%.*s", (int)l, p);
        if (!done && strcmp(t, name) < 0) {
            n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", n ? ";" : "", t);
            done = true;
        }
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", n ? ";" : "", name);
        p += l;
        if (*p == ';')
            p++;
        if (n >= sizeof(out))
            return;
    }
    if (!done)
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", n ? ";" : "", t);
    if (n < sizeof(out))
        memcpy(a->signed_headers, out, n + 1);
}

static int build_forward_head(struct conn *c, const struct http_request *r)
{
    const struct proxy_config *cfg = &c->px->cfg;
    bool rechunk = false;
    if (cred_body(c, r, &rechunk) < 0)
        return -1;
    struct hbuf b = { 0 };
    struct hrec rec[HTTP_MAX_HEADERS + 4];
    size_t nrec = 0;
    hb_add(&b, r->method, r->method_len);
    hb_str(&b, " ");
    /* The normalised target (c->path) is what was judged; its sentinels
     * become real values only on the wire. */
    size_t to = b.n;
    hb_subst(c, &b, c->path, strlen(c->path));
    size_t tl = b.n - to;
    hb_str(&b, " HTTP/1.1\r\n");
    /* Host comes from the URI the decision was made on (T13). */
    bool v6 = c->target.kind == HOST_IPV6;
    bool default_port = c->target.port == (c->c.ssl ? 443 : 80);
    char hostv[300];
    snprintf(hostv, sizeof(hostv), "%s%s%s", v6 ? "[" : "", c->target.host, v6 ? "]" : "");
    if (!default_port) {
        size_t hl = strlen(hostv);
        snprintf(hostv + hl, sizeof(hostv) - hl, ":%u", (unsigned)c->target.port);
    }
    rec[nrec].no = b.n;
    rec[nrec].nl = 4;
    hb_str(&b, "Host: ");
    rec[nrec].vo = b.n;
    hb_str(&b, hostv);
    rec[nrec].vl = b.n - rec[nrec].vo;
    nrec++;
    hb_str(&b, "\r\n");
    bool have_token = false;
    const struct http_header *conn_hdr = http_find(r->headers, r->nheaders, "connection");
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct http_header *f = &r->headers[i];
        if (hop_by_hop(f, conn_hdr))
            continue;
        if (decider_drops_header(c->dv, f->name, f->name_len))
            continue; /* cordon proxy: the decider's removeHeaders, setHeaders, cred */
        if (strip_always(cfg, f)) {
            cred_note(c, "stripped", f->name, f->name_len);
            continue;
        }
        if (rechunk && f->name_len == 14 && strncasecmp(f->name, "content-length", 14) == 0)
            continue;
        if (c->ncred_back && f->name_len == 15 && strncasecmp(f->name, "accept-encoding", 15) == 0)
            continue; /* identity below: an encoded response could not be scanned */
        if (c->aws && f->name_len == 13 && strncasecmp(f->name, "authorization", 13) == 0)
            continue; /* signed again below */
        if (c->aws && c->aws->token >= 0 && f->name_len == 20 &&
            strncasecmp(f->name, "x-amz-security-token", 20) == 0) {
            have_token = true;
            continue; /* the real token below */
        }
        bool injected = false;
        bool as_sent = c->aws_passthrough && f->name_len == 13 &&
                       strncasecmp(f->name, "authorization", 13) == 0;
        _cleanup_free_ char *filtered = NULL;
        size_t flen = 0;
        if (c->cred_host && !as_sent && is_client_cred(c, f, &injected) &&
            (injected || !client_cred_keep(c, f, &filtered, &flen))) {
            /* A client's own credential toward a host whose credential
             * cordon holds: never forwarded (a key planted by an attacker
             * is useless). */
            cred_note(c, "stripped", f->name, f->name_len);
            continue;
        }
        if (filtered)
            cred_note(c, "stripped", f->name, f->name_len); /* some cookies */
        if (nrec < ARRAY_SIZE(rec))
            rec[nrec].no = b.n;
        hb_add(&b, f->name, f->name_len);
        hb_str(&b, ": ");
        size_t vo = b.n;
        if (filtered)
            hb_subst(c, &b, filtered, flen);
        else
            hb_subst(c, &b, f->value, f->value_len);
        if (nrec < ARRAY_SIZE(rec)) {
            rec[nrec].nl = f->name_len;
            rec[nrec].vo = vo;
            rec[nrec].vl = b.n - vo;
            nrec++;
        }
        hb_str(&b, "\r\n");
    }
    size_t dvn;
    const char *dvl = decider_set_lines(c->dv, &dvn);
    hb_add(&b, dvl, dvn);
    if (rechunk)
        hb_str(&b, "Transfer-Encoding: chunked\r\n");
    if (c->ncred_back) {
        if (nrec < ARRAY_SIZE(rec)) {
            rec[nrec] = (struct hrec){ b.n, 15, b.n + 17, 8 };
            nrec++;
        }
        hb_str(&b, "Accept-Encoding: identity\r\n");
    }
    for (size_t i = 0; i < c->ncred_hdrs; i++) {
        const struct cred_header *h = c->cred_hdrs[i];
        size_t no = b.n;
        hb_str(&b, h->name);
        hb_str(&b, ": ");
        size_t vo = b.n;
        hb_add(&b, h->value, h->value_len);
        if (nrec < ARRAY_SIZE(rec)) {
            rec[nrec] = (struct hrec){ no, strlen(h->name), vo, h->value_len };
            nrec++;
        }
        hb_str(&b, "\r\n");
        cred_note(c, "injected", h->label, strlen(h->label));
    }
    if (c->aws) {
        const struct cred_store *cs = cfg->creds;
        if (c->aws->token >= 0) {
            const struct cred_secret *tok = &cs->secrets[c->aws->token];
            rec[nrec].no = b.n;
            rec[nrec].nl = 20;
            hb_str(&b, "X-Amz-Security-Token: ");
            rec[nrec].vo = b.n;
            hb_add(&b, tok->real, tok->real_len);
            rec[nrec].vl = tok->real_len;
            nrec++;
            hb_str(&b, "\r\n");
            if (!have_token)
                signed_add_token(&c->aws_auth);
        }
        char auth[1400];
        bool signed_ok = !b.oom && aws_sign(c, r, &b, to, tl, rec, nrec, auth, sizeof(auth)) == 0;
        if (signed_ok) {
            hb_str(&b, "Authorization: ");
            hb_str(&b, auth);
            hb_str(&b, "\r\n");
            long ids[3] = { c->aws->akid, c->aws->secret, c->aws->token };
            for (int k = 0; k < 3; k++) {
                if (ids[k] < 0)
                    continue;
                const struct cred_secret *sc = &cs->secrets[ids[k]];
                cred_note(c, "injected", sc->label, strlen(sc->label));
            }
        }
        explicit_bzero(auth, sizeof(auth));
        if (!signed_ok && !b.oom) {
            if (b.p)
                explicit_bzero(b.p, b.n);
            free(b.p);
            return -2;
        }
    }
    if (r->upgrade && r->upgrade_header) {
        hb_str(&b, "Connection: upgrade\r\nUpgrade: ");
        hb_add(&b, r->upgrade_header->value, r->upgrade_header->value_len);
        hb_str(&b, "\r\n");
    } else {
        hb_str(&b, r->keep_alive ? "Connection: keep-alive\r\n" : "Connection: close\r\n");
    }
    hb_str(&b, "\r\n");
    if (b.oom) {
        if (b.p)
            explicit_bzero(b.p, b.n);
        free(b.p);
        return -1;
    }
    if (c->fwd_head)
        explicit_bzero(c->fwd_head, c->fwd_len);
    free(c->fwd_head);
    c->fwd_head = b.p;
    c->fwd_len = b.n;
    if (decider_request_done(c->dv))
        c->req_rule_text = "decider";
    return 0;
}

/* Refuse the request for request rule `rule` (named by pattern when the
 * rule's entry decided, else "requestRules[N]"): the record says why, the
 * client gets 403 with answer. Returns false (answered here). */
static bool refuse_for_rule(struct conn *c, int rule, const char *pattern, const char *why,
                            const char *answer)
{
    snprintf(c->deny_rule_buf, sizeof(c->deny_rule_buf), "requestRules[%d]", rule);
    c->deny_rule = pattern ? pattern : c->deny_rule_buf;
    audit_request(c, 403, false, why);
    c->deny_rule = NULL;
    http_answer(c, 403, "Forbidden", "blocked-by-rule", answer);
    return false;
}

/* Request rules, for a host they cover: the target is normalised (the
 * spelling both judged and forwarded), then judged, then its body size
 * bounded. Hosts no rule covers are forwarded as sent: strict
 * normalisation would refuse real APIs (GitLab's %2F-encoded project
 * paths). Returns false when the request was answered here. */
static bool judge_request(struct conn *c, const struct http_request *q)
{
    const struct proxy_config *cfg = &c->px->cfg;
    free(c->path);
    c->path = NULL;
    c->req_rule_text = NULL;
    c->deny_rule = NULL;
    bool covered = false;
    int first = -1;
    for (size_t i = 0; i < cfg->nrules_req; i++) {
        if (req_rule_covers(&cfg->rules_req[i], &c->target)) {
            covered = true;
            if (first < 0)
                first = (int)i;
        }
    }
    if (!q->path) {
        c->path = strdup("*");
        if (covered)
            return refuse_for_rule(c, first, NULL, "OPTIONS * on a host with request rules",
                                   "asterisk-form requests are refused on a host with request "
                                   "rules");
        return c->path != NULL;
    }
    if (!covered) {
        c->path = strndup(q->path, q->path_len);
        return c->path != NULL;
    }
    char *norm = malloc(q->path_len + 1);
    size_t plen = 0;
    const char *why = NULL;
    long n = norm ? path_normalize(q->path, q->path_len, (enum path_mode)cfg->path_mode, norm,
                                   q->path_len + 1, &plen, &why)
                  : -1;
    if (n < 0) {
        free(norm);
        c->path = strndup(q->path, q->path_len);
        audit_request(c, 400, false, why ? why : "out of memory");
        http_answer(c, 400, "Bad Request", "ambiguous-target", why ? why : "out of memory");
        return false;
    }
    c->path = norm;
    char pathonly[PATH_MAX_TARGET + 1];
    snprintf(pathonly, sizeof(pathonly), "%.*s", (int)plen, norm);
    struct req_verdict v = req_decide(cfg->rules_req, cfg->nrules_req, &c->target, c->method,
                                      pathonly);
    /* Method overrides (X-HTTP-Method-Override and kin): many frameworks
     * run the request as the method they name, so "GET" with one naming
     * DELETE must pass the rules as DELETE too. The value is judged in
     * upper case (as frameworks apply it); one that is not a short token
     * is refused: it cannot be judged. */
    static const char *const overrides[] = {
        "x-http-method-override", "x-http-method", "x-method-override",
    };
    char ovr[80] = "";
    for (size_t i = 0; v.allow && i < q->nheaders; i++) {
        const struct http_header *h = &q->headers[i];
        bool is_ovr = false;
        for (size_t k = 0; k < ARRAY_SIZE(overrides); k++)
            is_ovr = is_ovr || (h->name_len == strlen(overrides[k]) &&
                                strncasecmp(h->name, overrides[k], h->name_len) == 0);
        if (!is_ovr)
            continue;
        char m[16];
        size_t k = 0;
        while (k < h->value_len && k < sizeof(m) - 1 && is_tchar(h->value[k])) {
            m[k] = (char)toupper((unsigned char)h->value[k]);
            k++;
        }
        m[k] = '\0';
        snprintf(ovr, sizeof(ovr), " (%.*s: %s)", (int)(h->name_len < 40 ? h->name_len : 40),
                 h->name, m);
        if (k == 0 || k != h->value_len)
            return refuse_for_rule(c, first, NULL, "a method override that is not a method",
                                   "a method override that is not a method");
        v = req_decide(cfg->rules_req, cfg->nrules_req, &c->target, m, pathonly);
    }
    if (v.allow)
        ovr[0] = '\0';
    if (!v.allow) {
        char reason[700];
        snprintf(reason, sizeof(reason), "%s (requestRules[%d]%s%s)%s", v.reason, v.rule,
                 v.pattern ? ": deny " : "", v.pattern ? v.pattern : "", ovr);
        return refuse_for_rule(c, v.rule, v.pattern, reason, reason);
    }
    c->req_rule_text = v.pattern;
    /* Byte limits of every covering rule (T27). A session budget is the
     * rule's, shared by every host it covers, and charged as bytes pass, so
     * parallel uploads cannot each spend it whole. */
    uint64_t limit = UINT64_MAX;
    struct flow *f = &c->up;
    f->nsess = 0;
    for (size_t i = 0; i < cfg->nrules_req; i++) {
        const struct req_rule *r = &cfg->rules_req[i];
        if (!req_rule_covers(r, &c->target))
            continue;
        if (r->max_request_bytes && r->max_request_bytes < limit)
            limit = r->max_request_bytes;
        if (r->max_session_bytes && f->nsess < ARRAY_SIZE(f->sess)) {
            f->sess[f->nsess] = &c->px->session_used[i];
            f->sess_max[f->nsess++] = r->max_session_bytes;
        }
    }
    f->limit = limit;
    if (flow_limited(f) && q->framing == HTTP_BODY_LENGTH && q->content_length > flow_room(f)) {
        audit_request(c, 413, false, "the request body is larger than the rules allow "
                                     "(maxRequestBytes or maxSessionBytes)");
        http_answer(c, 413, "Content Too Large", "too-large",
                    "the request body is larger than the rules allow (maxRequestBytes or "
                    "maxSessionBytes)");
        return false;
    }
    return true;
}

static void set_request_flows(struct conn *c, const struct http_request *q)
{
    flow_reset(&c->up);
    flow_reset(&c->down);
    switch (q->framing) {
    case HTTP_BODY_LENGTH:
        c->up.mode = q->content_length ? FLOW_LENGTH : FLOW_DONE;
        c->up.remaining = q->content_length;
        break;
    case HTTP_BODY_CHUNKED:
        c->up.mode = FLOW_CHUNKED;
        break;
    default:
        c->up.mode = FLOW_DONE;
    }
    c->resp_head_done = false;
}

/* cordon proxy: a verdict (or a refusal) came for this connection's request. */
static void dv_wake(void *owner)
{
    struct conn *c = owner;
    if (c->closing || (c->st != ST_DECIDING && c->st != ST_HEAD))
        return;
    c->st = ST_HEAD;
    conn_update(c);
}

/* cordon proxy: the decider's verdict on the request in c->c.in (decider.h).
 * True: allowed, go on (build_forward_head applies its header edits). False:
 * waiting for the verdict, or reading the body it asked for (up to
 * head_cap), or answered here. */
static bool ask_decider(struct conn *c, const struct http_request *q, size_t headlen)
{
    free(c->path);
    c->path = q->path ? strndup(q->path, q->path_len) : strdup("*");
    struct dv_reqinfo ri = { q, c->c.in, &c->target, c->c.ssl != NULL, c->sni };
    struct dv_answer a;
    enum dv_result r = decider_request(c->px->cfg.decider, &c->dv, &ri, headlen,
                                       c->c.inlen - headlen, c->c.eof, dv_wake, c, &a);
    c->head_cap = r == DV_WAIT ? a.cap : 0;
    if (r == DV_GO)
        return true;
    if (r == DV_WAIT) {
        if (a.send_continue && a.cap)
            send_continue(c);
        c->st = a.cap ? ST_HEAD : ST_DECIDING;
        return false;
    }
    c->deny_rule = a.rule;
    audit_request(c, a.status, false, a.reason);
    c->deny_rule = NULL;
    http_answer(c, a.status, decider_status_phrase(a.status), a.code, a.reason);
    return false;
}

/* The head to forward, or the answer that says why there is none. The
 * request is then read no longer: a next one may want its own 100. */
static bool forward_head_or_answer(struct conn *c, const struct http_request *q)
{
    c->continued = false;
    int bh = build_forward_head(c, q);
    if (bh == -2) {
        const char *sw = "a header the client signed cannot be forwarded as signed "
                         "(stripRequestHeaders, or a header cordon sets), so the request "
                         "cannot be signed again";
        audit_request(c, 403, false, sw);
        http_answer(c, 403, "Forbidden", "blocked-by-rule", sw);
        return false;
    }
    if (bh < 0) {
        audit_request(c, 502, false, "out of memory");
        http_answer(c, 502, "Bad Gateway", "internal", "out of memory");
        return false;
    }
    return true;
}

/* A request inside an intercepted tunnel: the destination is fixed (the
 * CONNECT target, already allowed and connected); the request must name it
 * (T2: a Host that differs is 421 Misdirected Request, RFC 9110 15.5.20). */
static void handle_tls_request(struct conn *c, int headlen)
{
    const struct http_request *q = &g_req;
    c->req_head_method = q->method_len == 4 && memcmp(q->method, "HEAD", 4) == 0;
    snprintf(c->method, sizeof(c->method), "%.*s", (int)(q->method_len < 15 ? q->method_len : 15),
             q->method);
    free(c->path);
    c->path = q->path ? strndup(q->path, q->path_len) : strdup("*");
    c->req_rule_text = NULL;
    if (c->px->cfg.decider && !ask_decider(c, q, (size_t)headlen))
        return;
    /* The destination again, for every request: a --control-fd update
     * holds for the next request on a kept-alive tunnel or captured
     * connection too, as for the plain proxy's requests. */
    struct net_verdict hv = host_verdict(c->px, &c->target);
    if (!hv.allow) {
        const char *custom = custom_reason(c, hv.rule);
        c->deny_rule = hv.rule ? hv.rule->text : NULL;
        audit_request(c, 403, false, custom ? custom : hv.reason);
        http_answer(c, 403, "Forbidden", verdict_tag(&hv), custom ? custom : hv.reason);
        return;
    }
    c->rule = hv.rule ? hv.rule->text : NULL;
    if (q->form == HTTP_TARGET_AUTHORITY) {
        audit_request(c, 400, false, "CONNECT inside an intercepted tunnel");
        http_answer(c, 400, "Bad Request", "bad-request",
                    "CONNECT inside an intercepted tunnel is refused");
        return;
    }
    struct net_target h;
    const char *why = NULL;
    uint16_t hport = q->port_explicit ? q->port : (c->c.ssl ? 443 : 80);
    /* A captured HTTP/1.0 request may name no host at all: then nothing
     * contradicts the destination (Host is written from it). */
    bool same = (c->kind == PROXY_TRANSPARENT && !q->host[0]) ||
                (net_canon_host(q->host, &h, &why) == 0 && h.kind == c->target.kind &&
                 strcmp(h.host, c->target.host) == 0 && hport == c->target.port);
    if (!same && c->px->cfg.require_host_match) {
        char reason[800];
        snprintf(reason, sizeof(reason), "the request names %.255s:%u, not the CONNECT target "
                 "%.255s:%u", q->host, (unsigned)hport, c->target.host, (unsigned)c->target.port);
        audit_request(c, 421, false, reason);
        http_answer(c, 421, "Misdirected Request", "host-mismatch", reason);
        return;
    }
    if (q->upgrade && q->upgrade_header &&
        http_has_token(q->upgrade_header->value, q->upgrade_header->value_len, "h2c")) {
        audit_request(c, 400, false, "h2c upgrades are refused");
        http_answer(c, 400, "Bad Request", "bad-request", "h2c upgrades are refused");
        return;
    }
    c->req_keep_alive = q->keep_alive;
    c->req_upgrade = q->upgrade;
    set_request_flows(c, q);
    if (!judge_request(c, q) || !cred_prepare_request(c, q))
        return;
    if (aws_prepare(c, q, (size_t)headlen) <= 0)
        return; /* answered, or the body is still coming */
    c->head_cap = 0;
    if (!forward_head_or_answer(c, q))
        return;
    ep_consume_in(&c->c, (size_t)headlen);
    uv_timer_stop(&c->timer);
    if (c->px->cfg.decider) {
        dial(c); /* cordon proxy: the upstream of this tunnel, now allowed */
        return;
    }
    c->st = ST_FORWARD;
    ep_append_out(&c->u, c->fwd_head, c->fwd_len);
    free(c->fwd_head);
    c->fwd_head = NULL;
}

static void handle_http_head(struct conn *c)
{
    const char *why = NULL;
    int r = http_parse_request(c->c.in, c->c.inlen, &g_req, &why);
    if (r == 0) {
        if (c->c.eof)
            c->st = ST_CLOSING;
        return;
    }
    /* A new request: no rule has decided it yet (on a kept-alive
     * connection the previous request's rule would be named in a record
     * of this one). */
    c->req_rule_text = NULL;
    c->deny_rule = NULL;
    if (r < 0) {
        /* A malformed head is refused before any decision; it is recorded
         * all the same (net.request, method "-"). */
        c->req_head_method = false;
        snprintf(c->method, sizeof(c->method), "-");
        free(c->path);
        c->path = NULL;
        if (!c->tls_mode) {
            memset(&c->target, 0, sizeof(c->target));
            c->rule = NULL;
        }
        /* (cordon proxy, as srt: every malformed head is a 400) */
        int st = c->px->cfg.decider ? 400 : -r;
        audit_request(c, st, false, why);
        http_answer(c, st, status_phrase(st), "bad-request", why);
        return;
    }
    if (c->tls_mode) {
        handle_tls_request(c, r);
        return;
    }
    memset(&c->target, 0, sizeof(c->target));
    c->rule = NULL;
    c->addr_text[0] = '\0';
    const struct http_request *q = &g_req;
    c->req_head_method = q->method_len == 4 && memcmp(q->method, "HEAD", 4) == 0;
    snprintf(c->method, sizeof(c->method), "%.*s", (int)(q->method_len < 15 ? q->method_len : 15),
             q->method);
    if (q->form != HTTP_TARGET_ABSOLUTE && q->form != HTTP_TARGET_AUTHORITY) {
        http_answer(c, 400, "Bad Request", "bad-request",
                    "not a proxy request (use an absolute URI or CONNECT)");
        return;
    }
    const char *cwhy = NULL;
    if (c->px->cfg.decider && !decider_host_ascii(q->host, q->host_is_ipv6)) {
        http_answer(c, 400, "Bad Request", "bad-request", "destination host is not plain ASCII");
        return;
    }
    if (net_canon_host(q->host, &c->target, &cwhy) < 0) {
        http_answer(c, 400, "Bad Request", "bad-request", cwhy);
        return;
    }
    c->target.port = q->port;
    c->is_connect = q->form == HTTP_TARGET_AUTHORITY;
    snprintf(c->via, sizeof(c->via), "%s", c->is_connect ? "connect" : "http");
    if (c->is_connect) {
        ep_consume_in(&c->c, (size_t)r);
        uv_timer_stop(&c->timer);
        decide(c);
        return;
    }
    /* Plain HTTP. Only "http" reaches here: the parser refuses other schemes. */
    if (q->upgrade && q->upgrade_header &&
        http_has_token(q->upgrade_header->value, q->upgrade_header->value_len, "h2c")) {
        http_answer(c, 400, "Bad Request", "bad-request", "h2c upgrades are refused");
        return;
    }
    c->req_keep_alive = q->keep_alive;
    c->req_upgrade = q->upgrade;
    set_request_flows(c, q);
    /* The host first (its refusal is the clearer answer), then the rules. */
    if (host_verdict(c->px, &c->target).allow) {
        if (c->px->cfg.decider && !ask_decider(c, q, (size_t)r))
            return;
        if (!judge_request(c, q) || !cred_prepare_request(c, q))
            return;
        if (aws_prepare(c, q, (size_t)r) <= 0)
            return; /* answered, or the body is still coming */
        c->head_cap = 0;
    } else {
        free(c->path);
        c->path = strndup(q->path, q->path_len);
    }
    if (!forward_head_or_answer(c, q))
        return;
    ep_consume_in(&c->c, (size_t)r);
    uv_timer_stop(&c->timer);
    decide(c);
}

static void handle_socks_head(struct conn *c)
{
    if (c->socks_phase == 0) {
        bool no_auth = false;
        int r = socks5_parse_greeting((const uint8_t *)c->c.in, c->c.inlen, &no_auth);
        if (r == 0)
            return;
        if (r < 0 || !no_auth) {
            static const uint8_t no[2] = { 5, 0xff };
            ep_append_out(&c->c, (const char *)no, 2);
            c->st = ST_CLOSING;
            return;
        }
        ep_consume_in(&c->c, (size_t)r);
        static const uint8_t yes[2] = { 5, 0 };
        ep_append_out(&c->c, (const char *)yes, 2);
        c->socks_phase = 1;
    }
    struct socks5_request sr;
    int r = socks5_parse_request((const uint8_t *)c->c.in, c->c.inlen, &sr);
    if (r == 0)
        return;
    if (r < 0) {
        /* Refused before any decision (malformed, a command other than
         * CONNECT, a name with a control byte or space): still a record. */
        c->px->stats.denied++;
        audit_emit(c->px->cfg.audit, "net.connect", false,
                   json_pack("{s:s, s:s, s:s}", "host", "", "via", "socks", "reason",
                             r == -SOCKS5_CMD_UNSUPPORTED    ? "SOCKS command not supported"
                             : r == -SOCKS5_ATYP_UNSUPPORTED ? "SOCKS address type not supported"
                                                             : "malformed SOCKS request"));
        socks_answer(c, (uint8_t)-r);
        return;
    }
    ep_consume_in(&c->c, (size_t)r);
    snprintf(c->via, sizeof(c->via), "socks");
    const char *why = NULL;
    if (net_canon_host(sr.host, &c->target, &why) < 0) {
        json_t *f = json_pack("{s:o, s:i, s:s, s:s}", "host", audit_str(sr.host), "port",
                              sr.port, "via", "socks", "reason", why);
        c->px->stats.denied++;
        audit_emit(c->px->cfg.audit, "net.connect", false, f);
        socks_answer(c, SOCKS5_NOT_ALLOWED);
        return;
    }
    c->target.port = sr.port;
    uv_timer_stop(&c->timer);
    decide(c);
}

static bool stripped(const struct proxy_config *cfg, const struct http_header *h)
{
    char name[128];
    if (h->name_len >= sizeof(name))
        return false;
    for (size_t i = 0; i < h->name_len; i++) {
        char ch = (char)tolower((unsigned char)h->name[i]);
        name[i] = ch == '_' || ch == '.' ? '-' : ch;
    }
    name[h->name_len] = '\0';
    for (size_t i = 0; i < cfg->nstrip_response_headers; i++)
        if (strcmp(cfg->strip_response_headers[i], name) == 0)
            return true;
    return false;
}

/* The response head as received, less stripResponseHeaders (srt: names
 * compared case-insensitively with "-", "_" and "." folded together), with
 * real credentials it echoes replaced, and re-framed when its body is. */
static void append_response_head(struct conn *c, size_t headlen)
{
    const struct proxy_config *cfg = &c->px->cfg;
    if (c->ncred_back) {
        bool rechunk = c->down.xf && c->down.xf_chunked && g_res.framing == HTTP_BODY_LENGTH;
        struct hbuf b = { 0 };
        const char *eol = memmem(c->u.in, headlen, "\r\n", 2);
        if (!eol)
            return;
        struct subst_pair *saved = c->cred_pairs;
        size_t nsaved = c->ncred_pairs;
        c->cred_pairs = c->cred_back; /* hb_subst replaces what cred_pairs names */
        c->ncred_pairs = c->ncred_back;
        json_t *audit_saved = c->cred_audit;
        c->cred_audit = NULL;
        hb_subst(c, &b, c->u.in, (size_t)(eol - c->u.in) + 2);
        for (size_t i = 0; i < g_res.nheaders; i++) {
            const struct http_header *h = &g_res.headers[i];
            if (stripped(cfg, h))
                continue;
            if (rechunk && h->name_len == 14 && strncasecmp(h->name, "content-length", 14) == 0)
                continue;
            hb_subst(c, &b, h->name, h->name_len);
            hb_str(&b, ": ");
            hb_subst(c, &b, h->value, h->value_len);
            hb_str(&b, "\r\n");
        }
        if (rechunk)
            hb_str(&b, "Transfer-Encoding: chunked\r\n");
        hb_str(&b, "\r\n");
        json_decref(c->cred_audit);
        c->cred_audit = audit_saved;
        c->cred_pairs = saved;
        c->ncred_pairs = nsaved;
        if (!b.oom)
            ep_append_out(&c->c, b.p, b.n);
        free(b.p);
        return;
    }
    if (cfg->nstrip_response_headers == 0) {
        ep_append_out(&c->c, c->u.in, headlen);
        return;
    }
    const char *eol = memmem(c->u.in, headlen, "\r\n", 2);
    if (!eol)
        return;
    ep_append_out(&c->c, c->u.in, (size_t)(eol - c->u.in) + 2);
    for (size_t i = 0; i < g_res.nheaders; i++) {
        const struct http_header *h = &g_res.headers[i];
        if (stripped(cfg, h))
            continue;
        ep_append_out(&c->c, h->name, h->name_len);
        ep_append_out(&c->c, ": ", 2);
        ep_append_out(&c->c, h->value, h->value_len);
        ep_append_out(&c->c, "\r\n", 2);
    }
    ep_append_out(&c->c, "\r\n", 2);
}

/* Response head from upstream, in ST_FORWARD. */
static int handle_response_head(struct conn *c)
{
    const char *why = NULL;
    int r = http_parse_response(c->u.in, c->u.inlen, c->req_head_method, &g_res, &why);
    if (r == 0) {
        if (c->u.eof || c->u.inlen >= HTTP_MAX_HEAD) {
            audit_request(c, 502, true, "upstream closed or sent an oversized head");
            http_answer(c, 502, "Bad Gateway", "bad-response",
                        "the upstream closed without a complete response");
        }
        return 0;
    }
    if (r < 0) {
        audit_request(c, 502, true, why);
        http_answer(c, 502, "Bad Gateway", "bad-response", why);
        return 0;
    }
    if (c->ncred_back && g_res.status >= 200 && g_res.framing != HTTP_BODY_NONE &&
        !(g_res.framing == HTTP_BODY_LENGTH && g_res.content_length == 0)) {
        const struct http_header *ce = http_find(g_res.headers, g_res.nheaders,
                                                 "content-encoding");
        bool identity = !ce || (ce->value_len == 8 && strncasecmp(ce->value, "identity", 8) == 0);
        bool same = true;
        for (size_t i = 0; i < c->ncred_back; i++)
            same &= c->cred_back[i].from_len == c->cred_back[i].to_len;
        struct subst *x = identity ? malloc(sizeof(*x)) : NULL;
        if (x && subst_init(x, c->cred_back, c->ncred_back) == 0) {
            c->down.xf = x;
            c->down.xf_chunked = g_res.framing == HTTP_BODY_CHUNKED ||
                                 (g_res.framing == HTTP_BODY_LENGTH && !same);
        } else {
            free(x);
        }
    }
    append_response_head(c, (size_t)r);
    ep_consume_in(&c->u, (size_t)r);
    c->resp_status = g_res.status;
    if (g_res.status == 101 && c->req_upgrade) {
        audit_request(c, 101, true, NULL);
        c->st = ST_TUNNEL;
        /* The request rules' byte limits go on over the upgraded stream
         * (T17): what the request may still carry, and the session budgets. */
        struct flow keep = c->up;
        flow_reset(&c->up);
        flow_reset(&c->down);
        c->up.mode = c->down.mode = FLOW_RAW;
        c->up.limit = keep.limit == UINT64_MAX ? UINT64_MAX
                      : keep.bytes >= keep.limit ? 0 : keep.limit - keep.bytes;
        c->up.nsess = keep.nsess;
        memcpy(c->up.sess, keep.sess, sizeof(keep.sess));
        memcpy(c->up.sess_max, keep.sess_max, sizeof(keep.sess_max));
        /* An upgraded stream from a credential's host could echo the real
         * value too. Its frames carry their own lengths, so the stand-in
         * must have the real value's length: the fake cut or padded. */
        if (c->ncred_back && ws_standins(c) == 0) {
            struct subst *x = malloc(sizeof(*x));
            if (x && subst_init(x, c->ws_back, c->ncred_back) == 0) {
                c->down.xf = x;
                c->down.xf_chunked = false;
            } else {
                free(x);
            }
        }
        return 1;
    }
    if (g_res.status >= 100 && g_res.status < 200)
        return 1; /* interim: another head follows */
    c->resp_head_done = true;
    c->resp_keep_alive = g_res.keep_alive;
    c->resp_until_close = g_res.framing == HTTP_BODY_UNTIL_CLOSE;
    switch (g_res.framing) {
    case HTTP_BODY_LENGTH:
        c->down.mode = g_res.content_length ? FLOW_LENGTH : FLOW_DONE;
        c->down.remaining = g_res.content_length;
        break;
    case HTTP_BODY_CHUNKED:
        c->down.mode = FLOW_CHUNKED;
        break;
    case HTTP_BODY_UNTIL_CLOSE:
        c->down.mode = FLOW_RAW;
        break;
    default:
        c->down.mode = FLOW_DONE;
    }
    return 1;
}

/* ---- transparent capture ------------------------------------------------- */

/* network.transparent: the sandbox's nftables redirect sends every TCP
 * connection of the sandbox to a non-loopback address here. The destination
 * is what the program dialled (SO_ORIGINAL_DST); a synthetic address from the
 * sandbox's DNS (net/synth.h) stands for its name. From there it is a CONNECT
 * to name:port without the 200 line: the same decision, resolved-address
 * guard, interception, request rules, credentials and records (via
 * "transparent"). Not intercepted, the client's first bytes must still name
 * the destination: the SNI of a TLS ClientHello (and no ECH), or, for plain
 * HTTP, every request's Host (judged as in an intercepted tunnel). A refusal
 * is a reset: the program never asked a proxy, so it gets no HTTP answer. */

#define SNIFF_MAX (2 * (16384 + 5)) /* a ClientHello in up to two full records */
/* netfilter's getorigdst (linux/netfilter_ipv4.h, netfilter_ipv6/ip6_tables.h,
 * whose other contents clash with the libc headers) */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

/* A reset (ECONNRESET for the program), never bytes it could take for the
 * server's. */
static void transparent_reset(struct conn *c)
{
    struct linger lg = { .l_onoff = 1, .l_linger = 0 };
    if (c->c.fd >= 0)
        setsockopt(c->c.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    conn_close(c);
}

static void transparent_refuse(struct conn *c, const char *reason)
{
    audit_connect(c, false, reason);
    transparent_reset(c);
}

/* A destination given as a synthetic address the sandbox's DNS gave out:
 * the name behind it (also for CONNECT and SOCKS, whose clients may have
 * resolved the name in the sandbox first, T19). Another address in the
 * range stays an address (and is refused unless an IP entry allows it). */
static void synth_to_name(struct conn *c)
{
    const struct synth_map *m = c->px->cfg.synth;
    if (!m || (c->target.kind != HOST_IPV4 && c->target.kind != HOST_IPV6))
        return;
    const char *name = synth_name_of(m, c->target.kind == HOST_IPV4 ? 4 : 6, c->target.addr);
    struct net_target t;
    const char *why = NULL;
    if (!name || net_canon_host(name, &t, &why) < 0)
        return;
    t.port = c->target.port;
    c->target = t;
}

/* The accepted connection's destination, then the decision. */
static void transparent_start(struct conn *c)
{
    snprintf(c->via, sizeof(c->via), "transparent");
    c->is_connect = true;
    struct sockaddr_storage peer, od;
    socklen_t pl = sizeof(peer), ol = sizeof(od);
    memset(&peer, 0, sizeof(peer)); /* the analyzer cannot tell getpeername filled it */
    memset(&od, 0, sizeof(od));
    bool v6 = getpeername(c->c.fd, (struct sockaddr *)&peer, &pl) == 0 &&
              peer.ss_family == AF_INET6 &&
              !IN6_IS_ADDR_V4MAPPED(&((struct sockaddr_in6 *)&peer)->sin6_addr);
    /* The conntrack entry of the redirect (netfilter's getorigdst); an IPv4
     * connection to the dual-stack listener answers at SOL_IP. */
    int r = v6 ? getsockopt(c->c.fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &od, &ol)
               : getsockopt(c->c.fd, SOL_IP, SO_ORIGINAL_DST, &od, &ol);
    char text[INET6_ADDRSTRLEN] = "";
    uint16_t port = 0;
    if (r == 0 && od.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&od;
        inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
        port = ntohs(s4->sin_port);
    } else if (r == 0 && od.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&od;
        inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
        port = ntohs(s6->sin6_port);
    }
    const char *why = NULL;
    if (!text[0] || port == 0 || net_canon_host(text, &c->target, &why) < 0) {
        /* Dialled the listener itself: nothing was redirected. */
        memset(&c->target, 0, sizeof(c->target));
        transparent_refuse(c, "not a captured connection (no original destination)");
        return;
    }
    c->target.port = port;
    synth_to_name(c);
    uv_timer_stop(&c->timer);
    decide(c);
}

/* ST_SNIFF: the upstream is connected. Returns true when the state changed. */
static bool transparent_sniff(struct conn *c)
{
    if (c->c.inlen == 0 && !c->c.eof) {
        /* The server speaks first (SSH, SMTP, MySQL): nothing of the
         * client's to check; its bytes then go as in any tunnel (some may
         * have come with an upstream proxy's answer). */
        char b;
        ssize_t u = c->u.inlen ? 1 : recv(c->u.fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (u >= 0 || (errno != EAGAIN && errno != EINTR))
            goto tunnel;
    }
    if (ep_read_in(&c->c, SNIFF_MAX) < 0 && !c->c.eof) {
        conn_close(c);
        return true;
    }
    if (c->c.inlen == 0) {
        if (c->c.eof)
            goto tunnel; /* closed without a byte: pass the EOF on */
        return false;
    }
    if ((unsigned char)c->c.in[0] == 0x16) {
        /* OpenSSL's own parser (what the origin will run), on the bytes so
         * far; they stay buffered for the tunnel (tls/hello.h) */
        struct tls_hello r;
        int k = tls_hello_read(&c->px->sniff_ctx, c->c.in, c->c.inlen, &r);
        if (k == 0 && c->c.inlen < SNIFF_MAX && !c->c.eof) {
            uv_timer_start(&c->timer, on_timeout, HEAD_TIMEOUT_MS, 0);
            return false;
        }
        if (k <= 0) {
            transparent_refuse(c, "the first bytes start a TLS handshake but are not a "
                                  "ClientHello cordon can read");
            return true;
        }
        if (r.ech || r.bad_sni) {
            transparent_refuse(c, r.ech ? "the ClientHello carries Encrypted Client Hello, which "
                                          "would hide the real destination; ECH is refused"
                                        : "the ClientHello's server name is malformed");
            return true;
        }
        if (r.sni[0] && c->px->cfg.require_host_match) {
            struct net_target t;
            const char *why = NULL;
            if (net_canon_host(r.sni, &t, &why) < 0 || t.kind != c->target.kind ||
                strcmp(t.host, c->target.host) != 0) {
                char reason[700];
                snprintf(reason, sizeof(reason), "the TLS server name \"%s\" does not name the "
                         "destination %s", r.sni, c->target.host);
                transparent_refuse(c, reason);
                return true;
            }
        }
        uv_timer_stop(&c->timer);
        goto tunnel;
    }
    /* Plain HTTP is told by its request-line, as leniently as any server
     * reads one, so that no spelling reaches a server unjudged: empty lines
     * first (RFC 9112 2.2 lets a server skip them), a method in any case
     * (a token: servers differ on "get"), a tab after it. A run of letters
     * then a space or tab is HTTP when it is upper case and a space, or
     * when its first line says "HTTP/" (any case) or is too long to see
     * whole; other bytes (memcached's "get key", SSH, a database's binary
     * protocol) pass as an opaque stream. Once HTTP, the parser refuses
     * what is malformed (400) and every request is judged (Host, request
     * rules, records), as inside an intercepted tunnel. */
    const char *in = c->c.in;
    size_t n = c->c.inlen, o = 0;
    while (o < n && (in[o] == '\r' || in[o] == '\n'))
        o++;
    if (o == n && n < SNIFF_MAX && !c->c.eof) {
        uv_timer_start(&c->timer, on_timeout, HEAD_TIMEOUT_MS, 0);
        return false; /* empty lines so far */
    }
    size_t i = o;
    bool upper = true;
    while (i < n && isalpha((unsigned char)in[i])) {
        upper = upper && isupper((unsigned char)in[i]);
        i++;
    }
    if (i == n && n - o < 24 && !c->c.eof) {
        uv_timer_start(&c->timer, on_timeout, HEAD_TIMEOUT_MS, 0);
        return false; /* a method so far */
    }
    bool http = o > 0;
    if (!http && i > o && i < n && (in[i] == ' ' || in[i] == '\t')) {
        http = upper && in[i] == ' ';
        const char *eol = memchr(in + i, '\n', n - i);
        if (!http && !eol && n < SNIFF_MAX && !c->c.eof) {
            uv_timer_start(&c->timer, on_timeout, HEAD_TIMEOUT_MS, 0);
            return false; /* the request-line so far */
        }
        for (const char *p = in + i; !http && p + 5 <= (eol ? eol : in + n); p++)
            http = strncasecmp(p, "HTTP/", 5) == 0;
        http = http || !eol;
    }
    if (http) {
        ep_consume_in(&c->c, o);
        c->tls_mode = true;
        c->st = ST_HEAD;
        uv_timer_start(&c->timer, on_timeout, IDLE_TIMEOUT_MS, 0);
        return true;
    }
    uv_timer_stop(&c->timer);
tunnel:
    c->st = ST_TUNNEL;
    c->up.mode = c->down.mode = FLOW_RAW;
    return true;
}

/* ---- the state machine --------------------------------------------------- */

static void set_poll(struct ep *e, int want, uv_poll_cb cb)
{
    if (!e->poll || want == e->want)
        return;
    e->want = want;
    if (want)
        uv_poll_start(e->poll, want, cb);
    else
        uv_poll_stop(e->poll);
}

static void on_timeout(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->st == ST_LINGER || c->st == ST_CLOSING) {
        conn_close(c);
        return;
    }
    if (c->st == ST_HEAD && c->c.inlen == 0 && !c->upstream_ok && c->kind == PROXY_HTTP) {
        conn_close(c);
        return;
    }
    if (c->st == ST_HEAD) {
        if (c->kind == PROXY_HTTP && c->c.inlen > 0) {
            /* Recorded, as a malformed head is (method "-"). */
            snprintf(c->method, sizeof(c->method), "-");
            c->req_rule_text = NULL;
            c->deny_rule = NULL;
            audit_request(c, 408, false, "the request head was not completed in time");
            http_answer(c, 408, "Request Timeout", "timeout", "the request head was not "
                                                              "completed in time");
        }
        else {
            conn_close(c);
            return;
        }
    } else if (c->st == ST_RESOLVING || c->st == ST_CONNECTING) {
        if (c->rq) {
            resolver_cancel(c->rq);
            c->rq = NULL;
        }
        audit_connect(c, true, "timed out resolving or connecting");
        if (c->kind == PROXY_SOCKS5)
            socks_answer(c, SOCKS5_TTL_EXPIRED);
        else
            http_answer(c, 504, "Gateway Timeout", "timeout", "timed out connecting upstream");
    } else {
        conn_close(c);
        return;
    }
    conn_update(c);
}

static void conn_update(struct conn *c)
{
    if (c->closing)
        return;
    for (int iter = 0; iter < 64; iter++) {
        bool again = false;
        if (c->closing)
            return;
        if ((c->st == ST_HEAD || c->st == ST_RESOLVING || c->st == ST_CONNECTING) &&
            ep_has_out(&c->c) && ep_flush(&c->c) < 0) {
            conn_close(c);
            return;
        }
        switch (c->st) {
        case ST_HEAD: {
            if (c->c.inlen > 0) {
                enum state before = c->st;
                size_t len_before = c->c.inlen;
                if (c->kind == PROXY_HTTP || c->tls_mode)
                    handle_http_head(c); /* also requests inside an intercepted SOCKS tunnel */
                else
                    handle_socks_head(c);
                if (c->st != before || c->c.inlen != len_before)
                    again = true;
            }
            break;
        }
        case ST_TUNNEL: {
            int a = relay(&c->c, &c->u, &c->up, &c->bytes_up_total);
            if (a == -2) {
                audit_request(c, 413, false, "the upgraded connection carried more than the "
                                             "rules allow (maxRequestBytes or maxSessionBytes)");
                conn_close(c);
                return;
            }
            int b = relay(&c->u, &c->c, &c->down, &c->bytes_down_total);
            if (a < 0 || b < 0) {
                conn_close(c);
                return;
            }
            if (c->up.mode == FLOW_DONE && c->down.mode == FLOW_DONE && !ep_has_out(&c->c) &&
                !ep_has_out(&c->u)) {
                conn_close(c);
                return;
            }
            again = a > 0 || b > 0;
            break;
        }
        case ST_FORWARD: {
            int a = relay(&c->c, &c->u, &c->up, &c->bytes_up_total);
            if (a == -2) {
                /* The body outgrew maxRequestBytes or maxSessionBytes: cut it
                 * (the upstream sees a truncated request and is dropped). */
                audit_request(c, 413, false, "the request body grew larger than the rules "
                                             "allow (maxRequestBytes or maxSessionBytes)");
                if (!c->resp_head_done) {
                    if (c->upstream_ok)
                        audit_close(c); /* it did reach the origin */
                    ep_drop(&c->u);
                    c->upstream_ok = false;
                    http_answer(c, 413, "Content Too Large", "too-large",
                                "the request body grew larger than the rules allow");
                    again = true;
                    break;
                }
                conn_close(c);
                return;
            }
            if (a < 0 || (ep_has_out(&c->u) && ep_flush(&c->u) < 0)) {
                if (!c->resp_head_done && !c->c.eof) {
                    upstream_failed(c, "the request could not be sent upstream");
                    again = true;
                    break;
                }
                conn_close(c);
                return;
            }
            /* The client's EOF (a half-close, or a client that gave up)
             * goes upstream as a FIN once the request is out, as in a
             * tunnel: the upstream answers or closes, and an upstream that
             * stalls learns that nobody waits. Not with a pipelined request
             * still to forward on this upstream. */
            if (c->c.eof && c->c.inlen == 0 && !c->u.shut && !ep_has_out(&c->u) &&
                c->up.inpipe == 0) {
                ep_shutdown_write(&c->u);
                c->u.shut = true;
            }
            if (!c->resp_head_done) {
                /* An EOF with nothing read is a response too: 502 */
                if (c->u.inlen > 0 || c->u.eof) {
                    int h = handle_response_head(c);
                    if (c->st != ST_FORWARD) {
                        again = true;
                        break;
                    }
                    if (h > 0)
                        again = true;
                }
                if (ep_has_out(&c->c) && ep_flush(&c->c) < 0) {
                    conn_close(c);
                    return;
                }
                /* The request body may still be flowing up (a relay that
                 * stopped at its round limit, a transform's end to queue). */
                if (a > 0)
                    again = true;
                break;
            }
            int b = relay(&c->u, &c->c, &c->down, &c->bytes_down_total);
            if (b < 0) {
                audit_request(c, c->resp_status, true, "the response was cut short (the upstream "
                                                       "failed or the client went away)");
                upstream_abort(c);
                conn_close(c);
                return;
            }
            if (c->down.mode == FLOW_RAW && c->u.eof && !ep_has_out(&c->c) && c->down.inpipe == 0)
                c->down.mode = FLOW_DONE;
            if ((c->down.mode == FLOW_LENGTH || c->down.mode == FLOW_CHUNKED) && c->u.eof &&
                !ep_has_out(&c->c) && c->down.inpipe == 0) {
                /* RFC 9112 8: the message is incomplete; the client must
                 * see it end rather than wait for bytes that never come. */
                audit_request(c, c->resp_status, true, "the upstream closed before the end of the "
                                                       "response");
                conn_close(c);
                return;
            }
            if (c->down.mode == FLOW_DONE && c->up.mode == FLOW_DONE && !ep_has_out(&c->c) &&
                c->down.inpipe == 0) {
                audit_request(c, c->resp_status, true, NULL);
                bool keep = c->req_keep_alive && c->resp_keep_alive && !c->resp_until_close &&
                            !c->u.eof && !c->u.shut && !(c->c.eof && c->c.inlen == 0);
                if (!keep) {
                    conn_close(c);
                    return;
                }
                flow_reset(&c->up);
                flow_reset(&c->down);
                c->st = ST_HEAD;
                uv_timer_start(&c->timer, on_timeout, IDLE_TIMEOUT_MS, 0);
                again = true;
                break;
            }
            again = a > 0 || b > 0;
            break;
        }
        case ST_TLS_PEEK:
            /* the 200 (or SOCKS reply) goes out first */
            if (ep_has_out(&c->c)) {
                int w = ep_flush(&c->c);
                if (w < 0) {
                    conn_close(c);
                    return;
                }
                if (w > 0)
                    break;
            }
            again = tls_peek(c);
            break;
        case ST_TLS_ACCEPT:
        case ST_TLS_CONNECT:
            again = tls_step(c);
            break;
        case ST_SNIFF:
            again = transparent_sniff(c);
            break;
        case ST_HOP: {
            if (ep_has_out(&c->u) && ep_flush(&c->u) < 0) {
                conn_close(c);
                return;
            }
            if (c->u.inlen > 0 || c->u.eof)
                again = handle_hop_answer(c);
            break;
        }
        case ST_CLOSING: {
            int w = ep_flush(&c->c);
            if (w < 0 || c->c.eof) {
                conn_close(c);
                return;
            }
            if (w == 0) {
                /* RFC 9112 9.6: closing with unread request bytes resets
                 * the connection, and the client may never read the
                 * answer. Half-close, then discard for a bounded time. */
                ep_shutdown_write(&c->c);
                c->st = ST_LINGER;
                c->linger_left = LINGER_BYTES;
                uv_timer_start(&c->timer, on_timeout, LINGER_MS, 0);
                again = true;
            }
            break;
        }
        case ST_LINGER: {
            for (;;) {
                ssize_t r = ep_recv(&c->c, g_scratch, SCRATCH_SIZE);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0 || (size_t)r >= c->linger_left) {
                    conn_close(c);
                    return;
                }
                c->linger_left -= (size_t)r;
            }
            break;
        }
        default:
            break;
        }
        if (!again)
            break;
    }
    if (c->closing)
        return;

    /* Interest in events follows the state. */
    int cw = 0, uw = 0;
    switch (c->st) {
    case ST_HEAD:
        if (!c->c.eof)
            cw |= UV_READABLE;
        if (ep_has_out(&c->c))
            cw |= UV_WRITABLE;
        break;
    case ST_RESOLVING:
    case ST_DECIDING: /* nothing is read until the verdict */
        if (ep_has_out(&c->c))
            cw |= UV_WRITABLE;
        break;
    case ST_CONNECTING:
        uw = UV_WRITABLE;
        if (ep_has_out(&c->c))
            cw |= UV_WRITABLE;
        break;
    case ST_CLOSING:
        cw = UV_WRITABLE;
        break;
    case ST_LINGER:
        cw = UV_READABLE;
        break;
    case ST_HOP:
        uw = (c->u.eof ? 0 : UV_READABLE) | (ep_has_out(&c->u) ? UV_WRITABLE : 0);
        if (ep_has_out(&c->c))
            cw |= UV_WRITABLE;
        break;
    case ST_TLS_PEEK:
        cw = ep_has_out(&c->c) ? UV_WRITABLE : UV_READABLE;
        break;
    case ST_SNIFF:
        cw = c->c.eof ? 0 : UV_READABLE;
        uw = c->c.inlen ? 0 : UV_READABLE; /* a server that speaks first */
        break;
    case ST_TLS_ACCEPT:
        cw = c->c.tls_want > 0 ? c->c.tls_want : UV_READABLE;
        break;
    case ST_TLS_CONNECT:
        uw = c->u.tls_want > 0 ? c->u.tls_want : UV_WRITABLE;
        break;
    case ST_TUNNEL:
    case ST_FORWARD: {
        bool up_active = c->up.mode != FLOW_IDLE && c->up.mode != FLOW_DONE;
        bool down_active = c->st == ST_TUNNEL ? c->down.mode != FLOW_DONE
                                              : (!c->resp_head_done ||
                                                 (c->down.mode != FLOW_IDLE &&
                                                  c->down.mode != FLOW_DONE));
        if (up_active && !c->c.eof && !ep_has_out(&c->u) &&
            (!c->up.splice || (c->up.inpipe < PIPE_SIZE && !c->up.pipe_full)))
            cw |= UV_READABLE;
        /* The request is out: a pipelined one, or the client's EOF, must
         * still be seen (on_client_poll reads it into c->c.in). */
        if (c->st == ST_FORWARD && !up_active && !c->c.eof && c->c.inlen == 0)
            cw |= UV_READABLE;
        if (down_active && !c->u.eof && !ep_has_out(&c->c) &&
            (!c->down.splice || (c->down.inpipe < PIPE_SIZE && !c->down.pipe_full)))
            uw |= UV_READABLE;
        if (ep_has_out(&c->c) || c->down.inpipe > 0)
            cw |= UV_WRITABLE;
        if (ep_has_out(&c->u) || c->up.inpipe > 0)
            uw |= UV_WRITABLE;
        break;
    }
    }
    /* A TLS call that blocked may wait for the other direction (a read that
     * must write, TLS 1.3 key updates). */
    if (c->st != ST_TLS_ACCEPT && c->st != ST_TLS_CONNECT) {
        if (c->c.ssl && c->c.tls_want > 0)
            cw |= c->c.tls_want;
        if (c->u.ssl && c->u.tls_want > 0)
            uw |= c->u.tls_want;
    }
    set_poll(&c->c, cw, on_client_poll);
    set_poll(&c->u, uw, on_upstream_poll);
    /* Bytes OpenSSL has already decrypted make no poll event: run again. */
    if (((cw & UV_READABLE) && c->c.ssl && SSL_pending(c->c.ssl) > 0) ||
        ((uw & UV_READABLE) && c->u.ssl && SSL_pending(c->u.ssl) > 0))
        kick(c);
}

static void on_idle(uv_idle_t *h)
{
    struct proxy *px = h->data;
    struct conn *list = px->kicks;
    px->kicks = NULL;
    uv_idle_stop(&px->idle);
    while (list) {
        struct conn *c = list;
        list = c->kick_next;
        c->kick = false;
        c->kick_next = NULL;
        if (c->closing)
            continue;
        if (c->st == ST_HEAD && c->c.ssl)
            ep_read_in(&c->c, c->head_cap ? c->head_cap : HTTP_MAX_HEAD + 1);
        if (c->st == ST_FORWARD && !c->resp_head_done && c->u.ssl)
            ep_read_in(&c->u, HTTP_MAX_HEAD + 1);
        conn_update(c);
    }
}

static void kick(struct conn *c)
{
    if (c->kick)
        return;
    c->kick = true;
    c->kick_next = c->px->kicks;
    c->px->kicks = c;
    uv_idle_start(&c->px->idle, on_idle);
}

static void on_client_poll(uv_poll_t *p, int status, int events)
{
    struct conn *c = p->data;
    if (status < 0 && status != UV_EBADF) {
        /* An error on the socket: let the read or write report it. */
        events = UV_READABLE | UV_WRITABLE;
    }
    if (c->st == ST_HEAD && (events & UV_READABLE)) {
        int r = ep_read_in(&c->c, c->head_cap ? c->head_cap : HTTP_MAX_HEAD + 1);
        if (r < 0 && c->c.inlen == 0) {
            conn_close(c);
            return;
        }
        if (c->kind == PROXY_HTTP && c->c.inlen > HTTP_MAX_HEAD) {
            /* the parser answers 431 on this length */
        }
    } else if (c->st == ST_FORWARD && (events & UV_READABLE) && c->c.inlen == 0 &&
               (c->up.mode == FLOW_DONE || c->up.mode == FLOW_IDLE) && !c->c.eof) {
        /* Waiting for the answer: keep a pipelined request for ST_HEAD, or
         * see the EOF; an error (a reset) ends the exchange. */
        if (ep_read_in(&c->c, HTTP_MAX_HEAD + 1) < 0 && !c->c.eof) {
            audit_request(c, c->resp_status, true, "the client's connection failed");
            upstream_abort(c);
            conn_close(c);
            return;
        }
    }
    conn_update(c);
}

/* The upstream failed while a request waits for its answer: every
 * forwarded request gets an answer and a record. */
static void upstream_failed(struct conn *c, const char *why)
{
    if (c->upstream_ok)
        audit_close(c);
    ep_drop(&c->u);
    c->upstream_ok = false;
    audit_request(c, 502, true, why);
    http_answer(c, 502, "Bad Gateway", "bad-response", why);
}

static void on_upstream_poll(uv_poll_t *p, int status, int events)
{
    struct conn *c = p->data;
    if (c->st == ST_CONNECTING) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (status < 0 || getsockopt(c->u.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err) {
            connect_failed(c, strerror(err ? err : ECONNREFUSED));
            conn_update(c);
            return;
        }
        if (!(events & UV_WRITABLE))
            return;
        connected(c);
        conn_update(c);
        return;
    }
    if (c->st == ST_TLS_CONNECT) {
        conn_update(c);
        return;
    }
    if (c->st == ST_HOP && (events & UV_READABLE || status < 0)) {
        if (ep_read_in(&c->u, HTTP_MAX_HEAD + 1) < 0 && c->u.inlen == 0 && !c->u.eof) {
            conn_close(c);
            return;
        }
    }
    if (c->st == ST_FORWARD && !c->resp_head_done && (events & UV_READABLE || status < 0)) {
        int r = ep_read_in(&c->u, HTTP_MAX_HEAD + 1);
        if (r < 0 && c->u.inlen == 0 && !c->u.eof) {
            upstream_failed(c, "the upstream connection failed before a response");
            conn_update(c);
            return;
        }
    }
    conn_update(c);
}

/* ---- lifecycle ----------------------------------------------------------- */

static void conn_release(struct conn *c)
{
    if (--c->handles > 0)
        return;
    struct proxy *px = c->px;
    free(c);
    if (--px->handles == 0 && px->freeing)
        free(px);
}

static void timer_closed(uv_handle_t *h)
{
    conn_release(h->data);
}

static void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    if (c->rq) {
        resolver_cancel(c->rq);
        c->rq = NULL;
    }
    if (c->upstream_ok)
        audit_close(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        c->px->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->px->stats.active--;
    if (c->counted)
        c->px->tls_tunnels--;
    if (c->kick) {
        for (struct conn **pp = &c->px->kicks; *pp; pp = &(*pp)->kick_next) {
            if (*pp == c) {
                *pp = c->kick_next;
                break;
            }
        }
        c->kick = false;
    }
    flow_reset(&c->up);
    flow_reset(&c->down);
    ep_drop(&c->c);
    ep_drop(&c->u);
    if (c->u.out)
        explicit_bzero(c->u.out, c->u.outlen); /* may hold real credentials */
    ep_reset_buffers(&c->c);
    ep_reset_buffers(&c->u);
    if (c->fwd_head)
        explicit_bzero(c->fwd_head, c->fwd_len);
    free(c->fwd_head);
    cred_reset(c);
    decider_conn_free(c->dv); /* a verdict still to come is dropped */
    c->dv = NULL;
    free(c->path);
    free(c->addrs);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, timer_closed);
}

static void on_accept(uv_poll_t *p, int status, int events);

/* httpProxyPort / socksProxyPort: the external proxy does the filtering;
 * cordon relays the bytes to it on the host's loopback and records that it
 * did. */
static void start_external(struct conn *c)
{
    bool http = c->kind == PROXY_EXTERNAL_HTTP;
    uint16_t port = http ? c->px->cfg.external_http_port : c->px->cfg.external_socks_port;
    struct sockaddr_storage ss = { 0 };
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    s4->sin_port = htons(port);
    c->target.kind = HOST_IPV4;
    c->target.addr[0] = 127;
    c->target.addr[3] = 1;
    snprintf(c->target.host, sizeof(c->target.host), "127.0.0.1");
    c->target.port = port;
    snprintf(c->via, sizeof(c->via), "%s", http ? "http" : "socks");
    c->rule = http ? "httpProxyPort" : "socksProxyPort";
    c->addrs = calloc(1, sizeof(*c->addrs));
    if (!c->addrs) {
        conn_close(c);
        return;
    }
    c->addrs[0] = ss;
    c->naddrs = 1;
    c->addr_i = 0;
    start_connect(c);
}

static void on_pause_done(uv_timer_t *t)
{
    struct listener *l = t->data;
    uv_poll_start(&l->poll, UV_READABLE, on_accept);
}

static void on_accept(uv_poll_t *p, int status, int events)
{
    struct listener *l = p->data;
    struct proxy *px = l->px;
    (void)events;
    if (status < 0)
        return;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: stop accepting for a moment rather
                 * than spin; queued clients wait in the backlog. */
                uv_poll_stop(&l->poll);
                uv_timer_start(&l->pause, on_pause_done, 100, 0);
            }
            return;
        }
        struct conn *c = calloc(1, sizeof(*c));
        if (!c) {
            close(fd);
            continue;
        }
        c->px = px;
        c->kind = l->kind;
        c->c.fd = fd;
        c->u.fd = -1;
        c->up.limit = c->down.limit = UINT64_MAX;
        if (ep_watch(c, &c->c) < 0) {
            close(fd);
            free(c);
            continue;
        }
        set_nodelay(fd);
        uv_timer_init(px->loop, &c->timer);
        c->timer.data = c;
        c->handles++; /* the timer */
        c->next = px->conns;
        if (px->conns)
            px->conns->prev = c;
        px->conns = c;
        px->stats.accepted++;
        px->stats.active++;
        px->handles++;
        uv_timer_start(&c->timer, on_timeout, HEAD_TIMEOUT_MS, 0);
        if (c->kind == PROXY_EXTERNAL_HTTP || c->kind == PROXY_EXTERNAL_SOCKS) {
            start_external(c);
            conn_update(c);
            continue;
        }
        if (c->kind == PROXY_TRANSPARENT) {
            transparent_start(c);
            conn_update(c);
            continue;
        }
        c->c.want = UV_READABLE;
        uv_poll_start(c->c.poll, UV_READABLE, on_client_poll);
    }
}

static int collect_own_addresses(struct proxy *px)
{
    struct ifaddrs *ifa = NULL;
    if (getifaddrs(&ifa) < 0)
        return -errno;
    size_t n = 0;
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next)
        n++;
    px->own = calloc(n + 1, sizeof(*px->own));
    if (!px->own) {
        freeifaddrs(ifa);
        return -ENOMEM;
    }
    for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
        if (!i->ifa_addr)
            continue;
        if (i->ifa_addr->sa_family == AF_INET) {
            px->own[px->nown].family = 4;
            memcpy(px->own[px->nown++].a, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, 4);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            px->own[px->nown].family = 6;
            memcpy(px->own[px->nown++].a, &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr, 16);
        }
    }
    freeifaddrs(ifa);
    return 0;
}

static const char *env_either(const char *lower, const char *upper, const char **name)
{
    const char *v = getenv(lower);
    *name = v ? lower : upper;
    return v ? v : getenv(upper);
}

int proxy_parents_from_policy(struct proxy_config *cfg, const cordon_policy *p,
                              const char **no_proxy, const char **what, const char **why,
                              char warn[2][400])
{
    const bool set = p->net.parent_set;
    const char *vh = NULL, *vhs = NULL, *vnp = NULL;
    const char *ph = set ? p->net.parent_http : env_either("http_proxy", "HTTP_PROXY", &vh);
    const char *phs = set ? p->net.parent_https : env_either("https_proxy", "HTTPS_PROXY", &vhs);
    *no_proxy = set ? p->net.parent_no_proxy : env_either("no_proxy", "NO_PROXY", &vnp);
    const struct {
        const char *url;
        struct proxy_hop *hop;
        const char *what;
        const char *var; /* NULL: from the settings */
    } parents[] = { { ph, &cfg->parent_http, "http", vh },
                    { phs, &cfg->parent_https, "https", vhs } };
    warn[0][0] = warn[1][0] = '\0';
    for (size_t i = 0; i < ARRAY_SIZE(parents); i++) {
        if (!parents[i].url || !*parents[i].url)
            continue;
        struct net_proxy_url u;
        const char *url = parents[i].url;
        char trimmed[1024] = { 0 };
        if (!set && strncasecmp(url, "http://", 7) == 0) {
            /* curl and Go ignore a path after the proxy's host. */
            size_t alen = strcspn(url + 7, "/?#");
            snprintf(trimmed, sizeof(trimmed), "%.*s", (int)(7 + alen), url);
            url = trimmed;
        }
        int r = net_proxy_url_parse(url, &u, why);
        explicit_bzero(trimmed, sizeof(trimmed));
        if (r < 0 && set) {
            *what = parents[i].what;
            return -1;
        }
        if (r < 0) {
            /* The caller's environment asks for a proxy cordon cannot speak
             * to: refuse what would need it rather than going direct
             * around it (README, "Parent proxy"). */
            char shown[200];
            net_proxy_url_redact(parents[i].url, shown, sizeof(shown));
            parents[i].hop->set = true;
            parents[i].hop->unusable = true;
            snprintf(parents[i].hop->why, sizeof(parents[i].hop->why),
                     "the upstream proxy in %s cannot be used: %s", parents[i].var, *why);
            snprintf(warn[i], sizeof(warn[i]),
                     "%s=%s: %s; %s connections that would go through it are refused "
                     "(unset the variable, or set network.parentProxy)",
                     parents[i].var, shown, *why, i == 0 ? "plain HTTP" : "CONNECT and SOCKS");
            continue;
        }
        parents[i].hop->set = true;
        snprintf(parents[i].hop->host, sizeof(parents[i].hop->host), "%s", u.host);
        parents[i].hop->port = u.port;
        snprintf(parents[i].hop->auth, sizeof(parents[i].hop->auth), "%s", u.auth);
        explicit_bzero(&u, sizeof(u));
    }
    return 0;
}

int proxy_new(uv_loop_t *loop, const struct proxy_config *cfg, struct proxy **out,
              struct cordon_error *err)
{
    struct proxy *px = calloc(1, sizeof(*px));
    if (!px)
        return cordon_err_set(err, ENOMEM, "out of memory");
    px->loop = loop;
    px->cfg = *cfg;
    if (g_ex_conn < 0)
        g_ex_conn = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (px->cfg.tls_server)
        SSL_CTX_set_client_hello_cb(px->cfg.tls_server, client_hello_cb, NULL);
    int r = collect_own_addresses(px);
    if (r < 0) {
        free(px);
        return cordon_err_sys(err, -r, "listing this host's addresses");
    }
    px->session_used = calloc(cfg->nrules_req + 1, sizeof(uint64_t));
    if (!px->session_used) {
        free(px->own);
        free(px);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    uv_idle_init(loop, &px->idle);
    px->idle.data = px;
    px->handles = 1; /* the idle handle */
    *out = px;
    return 0;
}

int proxy_add_listener(struct proxy *px, int fd, enum proxy_listener_kind kind,
                       struct cordon_error *err)
{
    struct listener *l = calloc(1, sizeof(*l));
    if (!l) {
        close(fd);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    l->px = px;
    l->fd = fd;
    l->kind = kind;
    if (uv_poll_init_socket(px->loop, &l->poll, fd) < 0) {
        close(fd);
        free(l);
        return cordon_err_set(err, EINVAL, "cannot watch a listener");
    }
    uv_timer_init(px->loop, &l->pause);
    l->poll.data = l;
    l->pause.data = l;
    l->next = px->listeners;
    px->listeners = l;
    uv_poll_start(&l->poll, UV_READABLE, on_accept);
    return 0;
}

static void listener_closed(uv_handle_t *h)
{
    struct listener *l = h->data;
    if (--l->open_handles == 0)
        free(l);
}

static void idle_closed(uv_handle_t *h)
{
    struct proxy *px = h->data;
    if (--px->handles == 0 && px->freeing)
        free(px);
}

void proxy_free(struct proxy *px)
{
    if (!px)
        return;
    while (px->conns)
        conn_close(px->conns);
    for (struct listener *l = px->listeners, *next; l; l = next) {
        next = l->next;
        uv_poll_stop(&l->poll);
        close(l->fd);
        l->open_handles = 2;
        uv_close((uv_handle_t *)&l->poll, listener_closed);
        uv_close((uv_handle_t *)&l->pause, listener_closed);
    }
    px->listeners = NULL;
    SSL_CTX_free(px->sniff_ctx);
    px->sniff_ctx = NULL;
    free(px->own);
    free(px->session_used);
    px->session_used = NULL;
    explicit_bzero(&px->cfg.parent_http, sizeof(px->cfg.parent_http));
    explicit_bzero(&px->cfg.parent_https, sizeof(px->cfg.parent_https));
    /* Connections free themselves from their close callbacks and the last
     * one frees px; the caller runs the loop until it has no more work. */
    px->freeing = true;
    uv_close((uv_handle_t *)&px->idle, idle_closed);
}

void proxy_set_rules(struct proxy *px, const struct net_rules *rules, json_t *deny_reasons,
                     const struct net_cidr *denied_resolved, size_t ndenied_resolved)
{
    px->cfg.rules = rules;
    px->cfg.deny_reasons = deny_reasons;
    px->cfg.denied_resolved = denied_resolved;
    px->cfg.ndenied_resolved = ndenied_resolved;
}

void proxy_stats(const struct proxy *px, struct proxy_stats *out)
{
    *out = px->stats;
}

void proxy_close_listeners(struct proxy *px)
{
    for (struct listener *l = px->listeners, *next; l; l = next) {
        next = l->next;
        uv_poll_stop(&l->poll);
        uv_timer_stop(&l->pause);
        close(l->fd);
        l->open_handles = 2;
        uv_close((uv_handle_t *)&l->poll, listener_closed);
        uv_close((uv_handle_t *)&l->pause, listener_closed);
    }
    px->listeners = NULL;
}
