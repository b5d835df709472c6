/* benchcli: the HTTP client of the request-latency, concurrency and
 * open-tunnel measurements. It runs inside the sandbox under test (or on the
 * host for the direct rows), so that only the path through the proxy differs.
 *
 *   benchcli seq  -m MODE -t HOST:PORT [-x PROXY_URL] [-s [-k CAFILE]] [-r ADDR] -n N
 *       N requests one after another, each on a new connection; prints each
 *       request's latency in microseconds, one per line (with -s, two
 *       numbers: the latency and the part of it until the TLS handshake
 *       completed; then "# issuer NAME", the issuer of the certificate the
 *       client was shown, so that the caller can tell an intercepted
 *       connection from a tunnelled one).
 *   benchcli conc -m MODE -t HOST:PORT [-x PROXY_URL] -n N -c C
 *       N requests from C threads, each request on a new connection; prints
 *       "requests seconds req_per_s p50_us p99_us".
 *   benchcli hold -t HOST:PORT -x PROXY_URL -n N
 *       opens N CONNECT tunnels and keeps them; prints "ready N" when every
 *       tunnel answered 200, then waits for stdin to close.
 *
 * MODE: direct (to HOST:PORT), http (absolute-form GET through the proxy),
 * connect (CONNECT through the proxy, then GET inside the tunnel).
 * -s speaks HTTPS to the target (directly or inside the CONNECT tunnel): a
 * full handshake on every connection (no session resumption, as a new
 * process would), the certificate verified for HOST (a name, or an IP
 * address) against CAFILE, or OpenSSL's default store (SSL_CERT_FILE, which
 * a sandbox that intercepts TLS points at its trust bundle). -r ADDR dials
 * ADDR in direct mode while the requests still name HOST (curl's --resolve).
 * PROXY_URL is http://[user:password@]host:port as in HTTP_PROXY; credentials
 * (srt's per-run token) become Proxy-Authorization: Basic. Any failure (a
 * refused connection, a status other than 200, a short body) exits 1 with a
 * message: a benchmark must not quietly count errors as fast requests.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <netdb.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum mode { M_DIRECT, M_HTTP, M_CONNECT };

static enum mode g_mode = M_DIRECT;
static char g_target[300];          /* host:port */
static struct addrinfo *g_target_ai, *g_proxy_ai;
static char g_auth[1600];           /* "Proxy-Authorization: ...\r\n" or "" */
static char g_host[300];            /* HOST of -t, for SNI and verification */
static SSL_CTX *g_tls;              /* -s */
static char g_issuer[512];          /* of the first certificate shown, for seq */
static pthread_mutex_t g_issuer_lock = PTHREAD_MUTEX_INITIALIZER;

/* One connection: plain, or TLS once ssl is set. */
struct conn {
    int fd;
    SSL *ssl;
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("benchcli: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static struct addrinfo *resolve(const char *host, const char *port)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *ai;
    int r = getaddrinfo(host, port, &hints, &ai);
    if (r)
        die("resolve %s:%s: %s", host, port, gai_strerror(r));
    return ai;
}

static void split_hostport(const char *s, char *host, size_t hl, char *port, size_t pl)
{
    const char *colon;
    if (*s == '[') {
        const char *rb = strchr(s, ']');
        if (!rb)
            die("bad address %s", s);
        snprintf(host, hl, "%.*s", (int)(rb - s - 1), s + 1);
        colon = rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = strrchr(s, ':');
        snprintf(host, hl, "%.*s", colon ? (int)(colon - s) : (int)strlen(s), s);
    }
    snprintf(port, pl, "%s", colon ? colon + 1 : "80");
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static void pct_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = 0;
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i;
    for (i = 0; i + 2 < n; i += 3) {
        *out++ = t[in[i] >> 2];
        *out++ = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
        *out++ = t[((in[i + 1] & 15) << 2) | (in[i + 2] >> 6)];
        *out++ = t[in[i + 2] & 63];
    }
    if (i < n) {
        *out++ = t[in[i] >> 2];
        if (i + 1 < n) {
            *out++ = t[((in[i] & 3) << 4) | (in[i + 1] >> 4)];
            *out++ = t[(in[i + 1] & 15) << 2];
        } else {
            *out++ = t[(in[i] & 3) << 4];
            *out++ = '=';
        }
        *out++ = '=';
    }
    *out = 0;
}

static void parse_proxy(const char *url)
{
    if (strncmp(url, "http://", 7) != 0)
        die("proxy URL must start with http://: %s", url);
    char rest[1024];
    snprintf(rest, sizeof(rest), "%s", url + 7);
    char *slash = strchr(rest, '/');
    if (slash)
        *slash = 0;
    char *at = strrchr(rest, '@');
    char *hp = rest;
    if (at) {
        *at = 0;
        hp = at + 1;
        char *user = rest, *pass = strchr(rest, ':');
        if (pass)
            *pass++ = 0;
        pct_decode(user);
        if (pass)
            pct_decode(pass);
        char cred[1100], b64[1500];
        snprintf(cred, sizeof(cred), "%s:%s", user, pass ? pass : "");
        base64((const unsigned char *)cred, strlen(cred), b64);
        snprintf(g_auth, sizeof(g_auth), "Proxy-Authorization: Basic %s\r\n", b64);
    }
    char host[300], port[16];
    split_hostport(hp, host, sizeof(host), port, sizeof(port));
    g_proxy_ai = resolve(host, port);
}

static int dial(struct addrinfo *ai)
{
    for (; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return fd;
        }
        close(fd);
    }
    die("connect: %s", strerror(errno));
}

static void tls_die(const char *what)
{
    char e[256];
    ERR_error_string_n(ERR_get_error(), e, sizeof(e));
    die("%s: %s", what, e);
}

static void send_all(struct conn *c, const char *p, size_t n)
{
    if (c->ssl) {
        size_t w;
        if (SSL_write_ex(c->ssl, p, n, &w) != 1)
            tls_die("SSL_write");
        return;
    }
    int fd = c->fd;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            die("send: %s", strerror(errno));
        }
        p += w;
        n -= (size_t)w;
    }
}

/* Read one response head (and, when body is true, its Content-Length body);
 * returns the status. */
static ssize_t conn_recv(struct conn *c, char *p, size_t n)
{
    if (c->ssl) {
        size_t got;
        if (SSL_read_ex(c->ssl, p, n, &got) == 1)
            return (ssize_t)got;
        int e = SSL_get_error(c->ssl, 0);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0;
        if (e == SSL_ERROR_SSL)
            tls_die("SSL_read");
        errno = EIO;
        return -1;
    }
    return recv(c->fd, p, n, 0);
}

static int read_response(struct conn *c, bool body)
{
    char buf[16384];
    size_t have = 0;
    char *end;
    while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
        if (have == sizeof(buf))
            die("response head too large");
        ssize_t r = conn_recv(c, buf + have, sizeof(buf) - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("connection closed before a response head (%s)", r < 0 ? strerror(errno) : "EOF");
        have += (size_t)r;
    }
    int status = 0;
    if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        die("malformed status line");
    if (!body || status != 200)
        return status;
    size_t headlen = (size_t)(end - buf) + 4;
    long long cl = -1;
    for (char *p = buf; p < end; p++)
        if ((p == buf || p[-1] == '\n') && strncasecmp(p, "content-length:", 15) == 0)
            cl = strtoll(p + 15, NULL, 10);
    if (cl < 0)
        die("response without Content-Length");
    long long left = cl - (long long)(have - headlen);
    while (left > 0) {
        ssize_t r = conn_recv(c, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            die("short body");
        left -= r;
    }
    return status;
}

/* Open a CONNECT tunnel to the target; returns the fd. */
static int tunnel(void)
{
    struct conn c = { .fd = dial(g_proxy_ai) };
    char req[2048];
    int n = snprintf(req, sizeof(req), "CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n", g_target,
                     g_target, g_auth);
    send_all(&c, req, (size_t)n);
    int st = read_response(&c, false);
    if (st != 200)
        die("CONNECT %s answered %d", g_target, st);
    return c.fd;
}

/* TLS client handshake on fd, for g_host. */
static SSL *tls_connect(int fd)
{
    SSL *ssl = SSL_new(g_tls);
    if (!ssl || SSL_set_fd(ssl, fd) != 1)
        tls_die("SSL_new");
    unsigned char ip[16];
    if (inet_pton(AF_INET, g_host, ip) == 1 || inet_pton(AF_INET6, g_host, ip) == 1) {
        /* No SNI for an address (RFC 6066 3); verify the iPAddress SAN. */
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), g_host) != 1)
            tls_die("X509_VERIFY_PARAM_set1_ip_asc");
    } else if (SSL_set_tlsext_host_name(ssl, g_host) != 1 || SSL_set1_host(ssl, g_host) != 1) {
        tls_die("SSL_set1_host");
    }
    if (SSL_connect(ssl) != 1) {
        long v = SSL_get_verify_result(ssl);
        if (v != X509_V_OK)
            die("TLS handshake with %s: %s", g_host, X509_verify_cert_error_string(v));
        tls_die("TLS handshake");
    }
    pthread_mutex_lock(&g_issuer_lock);
    if (!g_issuer[0]) {
        X509 *cert = SSL_get0_peer_certificate(ssl);
        if (cert)
            X509_NAME_oneline(X509_get_issuer_name(cert), g_issuer, sizeof(g_issuer));
    }
    pthread_mutex_unlock(&g_issuer_lock);
    return ssl;
}

static _Thread_local double g_setup_us; /* seq with -s: the last request's time until the handshake */

static double one_request(void)
{
    double t0 = now_us();
    int fd;
    char req[2048];
    int n;
    switch (g_mode) {
    case M_HTTP:
        fd = dial(g_proxy_ai);
        n = snprintf(req, sizeof(req),
                     "GET http://%s/small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n",
                     g_target, g_target, g_auth);
        break;
    case M_CONNECT:
        fd = tunnel();
        n = snprintf(req, sizeof(req), "GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     g_target);
        break;
    default:
        fd = dial(g_target_ai);
        n = snprintf(req, sizeof(req), "GET /small HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n",
                     g_target);
        break;
    }
    struct conn c = { .fd = fd };
    if (g_tls) {
        c.ssl = tls_connect(fd);
        g_setup_us = now_us() - t0;
    }
    send_all(&c, req, (size_t)n);
    int st = read_response(&c, true);
    if (st != 200)
        die("GET /small answered %d", st);
    if (c.ssl) {
        SSL_shutdown(c.ssl); /* close_notify, as curl sends */
        SSL_free(c.ssl);
    }
    close(fd);
    return now_us() - t0;
}

static atomic_long g_next;
static long g_total;
static double *g_lat;

static void *worker(void *arg)
{
    (void)arg;
    for (;;) {
        long i = atomic_fetch_add(&g_next, 1);
        if (i >= g_total)
            return NULL;
        g_lat[i] = one_request();
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: benchcli seq|conc|hold [-m MODE] -t HOST:PORT [-x PROXY] [-s [-k CAFILE]] "
            "[-r ADDR] -n N [-c C]");
    const char *what = argv[1];
    const char *proxy = NULL, *cafile = NULL, *addr = NULL;
    bool tls = false;
    long n = 100, c = 1;
    int opt;
    optind = 2;
    while ((opt = getopt(argc, argv, "m:t:x:n:c:sk:r:")) != -1) {
        switch (opt) {
        case 'm':
            g_mode = strcmp(optarg, "http") == 0 ? M_HTTP
                   : strcmp(optarg, "connect") == 0 ? M_CONNECT
                   : strcmp(optarg, "direct") == 0 ? M_DIRECT
                   : (die("unknown mode %s", optarg), M_DIRECT);
            break;
        case 't': snprintf(g_target, sizeof(g_target), "%s", optarg); break;
        case 'x': proxy = optarg; break;
        case 'n': n = atol(optarg); break;
        case 'c': c = atol(optarg); break;
        case 's': tls = true; break;
        case 'k': cafile = optarg; break;
        case 'r': addr = optarg; break;
        default: die("bad option");
        }
    }
    if (!*g_target || n < 1 || c < 1)
        die("need -t HOST:PORT and -n N");
    char host[300], port[16];
    split_hostport(g_target, host, sizeof(host), port, sizeof(port));
    snprintf(g_host, sizeof(g_host), "%s", host);
    g_target_ai = resolve(addr ? addr : host, port);
    if (tls) {
        if (g_mode == M_HTTP)
            die("-s needs -m direct or -m connect");
        g_tls = SSL_CTX_new(TLS_client_method());
        if (!g_tls)
            tls_die("SSL_CTX_new");
        SSL_CTX_set_verify(g_tls, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(g_tls, SSL_SESS_CACHE_OFF);
        if ((cafile ? SSL_CTX_load_verify_locations(g_tls, cafile, NULL)
                    : SSL_CTX_set_default_verify_paths(g_tls)) != 1)
            tls_die(cafile ? cafile : "the default CA store");
    }
    if (proxy && *proxy)
        parse_proxy(proxy);
    if ((g_mode != M_DIRECT || strcmp(what, "hold") == 0) && !g_proxy_ai)
        die("this mode needs -x PROXY_URL");

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    if (strcmp(what, "seq") == 0) {
        for (long i = 0; i < n; i++) {
            double us = one_request();
            if (g_tls)
                printf("%.1f %.1f\n", us, g_setup_us);
            else
                printf("%.1f\n", us);
        }
        if (g_tls)
            printf("# issuer %s\n", g_issuer);
        return 0;
    }
    if (strcmp(what, "conc") == 0) {
        g_total = n;
        g_lat = calloc((size_t)n, sizeof(double));
        pthread_t *t = calloc((size_t)c, sizeof(pthread_t));
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        double t0 = now_us();
        for (long i = 0; i < c; i++)
            if (pthread_create(&t[i], &attr, worker, NULL) != 0)
                die("pthread_create: %s", strerror(errno));
        for (long i = 0; i < c; i++)
            pthread_join(t[i], NULL);
        double secs = (now_us() - t0) / 1e6;
        qsort(g_lat, (size_t)n, sizeof(double), cmp_d);
        printf("%ld %.6f %.1f %.1f %.1f\n", n, secs, (double)n / secs, g_lat[n / 2],
               g_lat[(size_t)((double)n * 0.99)]);
        return 0;
    }
    if (strcmp(what, "hold") == 0) {
        int *fds = calloc((size_t)n, sizeof(int));
        for (long i = 0; i < n; i++)
            fds[i] = tunnel();
        printf("ready %ld\n", n);
        fflush(stdout);
        char b[256];
        while (read(0, b, sizeof(b)) > 0)
            ;
        for (long i = 0; i < n; i++)
            close(fds[i]);
        return 0;
    }
    die("unknown command %s", what);
}
