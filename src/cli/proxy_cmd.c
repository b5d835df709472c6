/* proxy_cmd.c: `cordon proxy`, the egress proxy alone, for hosts that contain
 * their agents by other means (a VM, a container, gVisor) and point them at
 * it.
 *
 * Owns: srt's `srt proxy` command line (--listen, --listen-fd, --decider-fd,
 * --decider-in/--decider-out, --lifeline-fd, --ca-fd,
 * --strip-response-header, --plaintext-header-set; srt-compat.md 2), its
 * exit status (2 argument errors, 1 start-up failure, 0 an orderly stop),
 * and running the proxy of src/proxy/ on its own loop: with a decider
 * (proxy/decider.h) every host is judged by the decider's hello and every
 * request by its verdict; without one, the settings file's network rules
 * decide, as in a sandboxed run.
 *
 * Invariants:
 *  - nothing is served before the decider's hello (its lists are the only
 *    host policy); a decider that never says hello never gets a connection;
 *  - a bad flag, fd or CA is refused before anything is bound or sent;
 *  - the listener is loopback unless --listen-any-interface says otherwise
 *    (it has no authentication of its own);
 *  - when the proxy stops, in-flight answers get a second to flush, then
 *    every connection is closed.
 */
#include "cli.h"
#include "cordon.h"
#include "audit/audit.h"
#include "core/cleanup.h"
#include "core/err.h"
#include "net/resolver.h"
#include "policy/policy.h"
#include "proxy/decider.h"
#include "proxy/proxy.h"
#include "tls/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define EXIT_ARGS 2
#define EXIT_START 1
#define CA_PEM_MAX (1u << 20)
#define STOP_GRACE_MS 1000

static const char proxy_usage[] =
    "Usage: cordon proxy [options]\n"
    "\n"
    "Run only the egress proxy. With a decider, every request is decided by an\n"
    "external decider on inherited file descriptors (srt's decider protocol);\n"
    "without one, the settings file's network rules decide.\n"
    "\n"
    "Options:\n"
    "  --listen-fd <fd>          accept connections on this inherited listening socket\n"
    "  --listen <host:port>      listen on this loopback address instead; a\n"
    "                            non-loopback address needs --listen-any-interface\n"
    "  --listen-any-interface    let --listen bind a non-loopback address: the listener\n"
    "                            is unauthenticated and reachable from other hosts\n"
    "  --decider-fd <fd>         bidirectional decider stream (a socket)\n"
    "  --decider-in <fd>         decider -> proxy stream (with --decider-out)\n"
    "  --decider-out <fd>        proxy -> decider stream (with --decider-in)\n"
    "  --lifeline-fd <fd>        shut down when this stream ends\n"
    "  --ca-fd <fd>              read the TLS-termination CA (key and certificate PEM)\n"
    "                            from this fd; with a decider and without it, every\n"
    "                            CONNECT is refused\n"
    "  --strip-response-header <name...>  response headers never passed back\n"
    "  --plaintext-header-set    let allow verdicts set headers on plain-HTTP requests\n"
    "  -s, --settings <file>     settings whose network rules decide (no decider only;\n"
    "                            default as for a sandboxed run)\n"
    "  --audit <file>            append the audit stream (JSON lines) to FILE\n"
    "  --audit-fd <fd>           write the audit stream to this descriptor\n"
    "  -d, --debug               explain each step on stderr\n"
    "  --version                 print \"cordon-proxy <version>\" and exit\n"
    "  -h, --help                print this help and exit\n"
    "\n"
    "Exit status: 0 after an orderly stop (lifeline closed, decider ended its\n"
    "stream, SIGTERM or SIGINT); 1 when start-up fails or the decider broke the\n"
    "protocol; 2 for an argument error.\n"
    "\n"
    "Examples:\n"
    "  cordon proxy --listen 127.0.0.1:8080 --decider-fd 3 --lifeline-fd 4 --ca-fd 5\n"
    "  cordon proxy --listen 127.0.0.1:3128 -s egress.json --audit egress.jsonl\n";

struct opts {
    int listen_fd;
    const char *listen;
    bool any_interface;
    int decider_fd, decider_in, decider_out, lifeline_fd, ca_fd, audit_fd;
    const char *settings, *audit;
    bool plaintext_header_set;
    bool debug;
    char **strip;        /* as given */
    size_t nstrip;
};

struct proxy_run {
    uv_loop_t loop;
    struct opts *o;
    bool debug;
    int listen_fd;
    char listen_text[300];
    struct decider *decider;
    struct proxy *proxy;
    struct resolver *resolver;
    struct audit audit;
    struct proxy_config cfg;
    cordon_policy *policy;
    struct net_noproxy no_proxy;
    bool have_no_proxy;
    char **strip_folded;
    size_t nstrip_folded;
    struct tls_ca *ca;
    SSL_CTX *tls_server, *tls_client;
    uv_poll_t lifeline;
    bool lifeline_on;
    uv_signal_t sigterm, sigint;
    uv_timer_t grace, rss;
    bool rss_on;
    uint64_t grace_start;
    bool serving, stopping, finished;
    int status;
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cordon proxy: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (see cordon proxy --help)\n", stderr);
    va_end(ap);
    return EXIT_ARGS;
}

/* An fd number given on the command line: digits only, and open. */
static int parse_fd(const char *flag, const char *v, int *out)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (!*v || *end || errno || n < 0 || n > INT_MAX || v[0] == '+' || v[0] == '-')
        return usage_error("%s %s: not a file descriptor number", flag, v);
    if (fcntl((int)n, F_GETFD) < 0) {
        fprintf(stderr, "cordon proxy: %s %s: not an open file descriptor\n", flag, v);
        return EXIT_ARGS;
    }
    *out = (int)n;
    return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){ .listen_fd = -1, .decider_fd = -1, .decider_in = -1, .decider_out = -1,
                        .lifeline_fd = -1, .ca_fd = -1, .audit_fd = -1 };
    o->strip = calloc((size_t)argc + 1, sizeof(*o->strip));
    if (!o->strip) {
        fprintf(stderr, "cordon proxy: out of memory\n");
        return EXIT_START;
    }
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0 || a[0] != '-' || a[1] == '\0')
            return usage_error("unexpected argument '%s'", a);
        char name[64];
        const char *val = NULL;
        const char *eq = strncmp(a, "--", 2) == 0 ? strchr(a, '=') : NULL;
        if (eq) {
            snprintf(name, sizeof(name), "%.*s", (int)(eq - a), a);
            val = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", a);
        }
        static const char *const flags[] = { "--listen-any-interface", "--plaintext-header-set",
                                             "-d", "--debug", "-h", "--help", NULL };
        bool is_flag = false;
        for (size_t k = 0; flags[k]; k++)
            is_flag |= strcmp(name, flags[k]) == 0;
        if (is_flag) {
            if (val)
                return usage_error("option '%s' takes no value", name);
            if (strcmp(name, "--listen-any-interface") == 0)
                o->any_interface = true;
            else if (strcmp(name, "--plaintext-header-set") == 0)
                o->plaintext_header_set = true;
            else if (strcmp(name, "-d") == 0 || strcmp(name, "--debug") == 0)
                o->debug = true;
            else {
                fputs(proxy_usage, stdout);
                return -1; /* exit 0 */
            }
            continue;
        }
        if (strcmp(name, "--strip-response-header") == 0) {
            /* srt's <name...>: every following word that is not an option */
            size_t before = o->nstrip;
            if (val)
                o->strip[o->nstrip++] = (char *)val;
            while (!val && i + 1 < argc && argv[i + 1][0] != '-')
                o->strip[o->nstrip++] = argv[++i];
            if (o->nstrip == before)
                return usage_error("option '%s <name...>' argument missing", name);
            continue;
        }
        static const char *const valued[] = {
            "--listen-fd", "--listen", "--decider-fd", "--decider-in", "--decider-out",
            "--lifeline-fd", "--ca-fd", "-s", "--settings", "--audit", "--audit-fd", NULL,
        };
        bool known = false;
        for (size_t k = 0; valued[k]; k++)
            known |= strcmp(name, valued[k]) == 0;
        if (!known)
            return usage_error("unknown option '%s'", name);
        if (!val) {
            if (i + 1 >= argc)
                return usage_error("option '%s' argument missing", name);
            val = argv[++i];
        }
        int r = 0;
        if (strcmp(name, "--listen-fd") == 0)
            r = parse_fd(name, val, &o->listen_fd);
        else if (strcmp(name, "--listen") == 0)
            o->listen = val;
        else if (strcmp(name, "--decider-fd") == 0)
            r = parse_fd(name, val, &o->decider_fd);
        else if (strcmp(name, "--decider-in") == 0)
            r = parse_fd(name, val, &o->decider_in);
        else if (strcmp(name, "--decider-out") == 0)
            r = parse_fd(name, val, &o->decider_out);
        else if (strcmp(name, "--lifeline-fd") == 0)
            r = parse_fd(name, val, &o->lifeline_fd);
        else if (strcmp(name, "--ca-fd") == 0)
            r = parse_fd(name, val, &o->ca_fd);
        else if (strcmp(name, "--audit-fd") == 0)
            r = parse_fd(name, val, &o->audit_fd);
        else if (strcmp(name, "--audit") == 0)
            o->audit = val;
        else
            o->settings = val;
        if (r)
            return r;
    }
    if (o->decider_fd >= 0 && (o->decider_in >= 0 || o->decider_out >= 0))
        return usage_error("give --decider-fd, or --decider-in and --decider-out; not both");
    if ((o->decider_in >= 0) != (o->decider_out >= 0))
        return usage_error("--decider-in and --decider-out go together (a pair of pipes)");
    if (o->listen_fd >= 0 && o->listen)
        return usage_error("give --listen-fd or --listen, not both");
    if (o->listen_fd < 0 && !o->listen)
        return usage_error("--listen-fd (or --listen for development) is required");
    if ((o->decider_fd >= 0 || o->decider_in >= 0) && o->settings)
        return usage_error("--settings: with a decider, the decider's hello and verdicts "
                           "decide; no settings file is read");
    if (o->audit && o->audit_fd >= 0)
        return usage_error("give --audit or --audit-fd, not both");
    return 0;
}

/* ---- the listener ----------------------------------------------------------- */

/* srt's isLoopbackHost: localhost, 127.0.0.0/8, ::1 */
static bool loopback_host(const char *h)
{
    if (strcasecmp(h, "localhost") == 0)
        return true;
    struct in_addr a4;
    if (inet_pton(AF_INET, h, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    struct in6_addr a6;
    return inet_pton(AF_INET6, h, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* --listen HOST:PORT (srt: the last colon splits; brackets around IPv6;
 * an empty host is every interface). Returns 0, EXIT_ARGS or EXIT_START. */
static int open_listener(struct proxy_run *run, const char *spec)
{
    const char *colon = strrchr(spec, ':');
    const char *port_text = colon ? colon + 1 : "";
    size_t hl = colon ? (size_t)(colon - spec) : 0;
    bool digits = *port_text != '\0';
    for (const char *p = port_text; *p; p++)
        digits &= *p >= '0' && *p <= '9';
    long port = digits && strlen(port_text) <= 5 ? strtol(port_text, NULL, 10) : -1;
    if (!colon || port < 0 || port > 65535) {
        fprintf(stderr, "cordon proxy: --listen needs <host:port> with a port from 0 to 65535 "
                        "(got \"%s\")\n", spec);
        return EXIT_ARGS;
    }
    char host[256];
    if (hl >= sizeof(host)) {
        fprintf(stderr, "cordon proxy: --listen %s: host too long\n", spec);
        return EXIT_ARGS;
    }
    memcpy(host, spec, hl);
    host[hl] = '\0';
    if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    if (!loopback_host(host)) {
        if (!run->o->any_interface) {
            fprintf(stderr, "cordon proxy: --listen \"%s\" is not a loopback address (127.0.0.0/8, "
                            "[::1] or localhost); pass --listen-any-interface to bind it "
                            "anyway\n", spec);
            return EXIT_ARGS;
        }
        fprintf(stderr, "cordon proxy: warning: --listen-any-interface: the listener on %s is "
                        "reachable from other hosts and is unauthenticated\n", spec);
    }
    struct sockaddr_storage ss = { 0 };
    socklen_t sl;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (host[0] == '\0') {
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else if (strcasecmp(host, "localhost") == 0 || inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        if (strcasecmp(host, "localhost") == 0)
            s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else {
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
        int g = getaddrinfo(host, NULL, &hints, &res);
        if (g != 0 || !res) {
            fprintf(stderr, "cordon proxy: --listen %s: %s\n", spec, gai_strerror(g));
            return EXIT_START;
        }
        memcpy(&ss, res->ai_addr, res->ai_addrlen);
        sl = res->ai_addrlen;
        freeaddrinfo(res);
        if (ss.ss_family == AF_INET)
            s4->sin_port = htons((uint16_t)port);
        else
            s6->sin6_port = htons((uint16_t)port);
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 511) < 0) {
        fprintf(stderr, "cordon proxy: listen %s: %s\n", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return EXIT_START;
    }
    struct sockaddr_storage got;
    socklen_t gl = sizeof(got);
    memset(&got, 0, sizeof(got)); /* the analyzer cannot tell getsockname fills it */
    char addr[INET6_ADDRSTRLEN] = "?";
    unsigned gport = 0;
    if (getsockname(fd, (struct sockaddr *)&got, &gl) == 0) {
        if (got.ss_family == AF_INET) {
            inet_ntop(AF_INET, &((struct sockaddr_in *)&got)->sin_addr, addr, sizeof(addr));
            gport = ntohs(((struct sockaddr_in *)&got)->sin_port);
        } else {
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&got)->sin6_addr, addr, sizeof(addr));
            gport = ntohs(((struct sockaddr_in6 *)&got)->sin6_port);
        }
    }
    snprintf(run->listen_text, sizeof(run->listen_text), "%s:%u", addr, gport);
    run->listen_fd = fd;
    return 0;
}

/* --listen-fd: an inherited socket that is already listening. */
static int take_listener(struct proxy_run *run, int fd)
{
    int acc = 0;
    socklen_t al = sizeof(acc);
    int type = 0;
    socklen_t tl = sizeof(type);
    if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc ||
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
        fprintf(stderr, "cordon proxy: --listen-fd %d: not a listening stream socket\n", fd);
        return EXIT_START;
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0) {
        fprintf(stderr, "cordon proxy: --listen-fd %d: %s\n", fd, strerror(errno));
        return EXIT_START;
    }
    snprintf(run->listen_text, sizeof(run->listen_text), "fd %d", fd);
    run->listen_fd = fd;
    return 0;
}

/* ---- the CA ------------------------------------------------------------------- */

/* Read the whole PEM from the fd (a pipe the host closes after writing). */
static char *read_all(int fd, size_t *len)
{
    size_t cap = 8192, n = 0;
    char *b = malloc(cap + 1);
    while (b) {
        if (n == cap) {
            if (cap >= CA_PEM_MAX) {
                explicit_bzero(b, n);
                free(b);
                errno = EFBIG;
                return NULL;
            }
            char *nb = malloc(cap * 2 + 1);
            if (nb)
                memcpy(nb, b, n);
            explicit_bzero(b, n);
            free(b);
            b = nb;
            cap *= 2;
            if (!b)
                break;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            explicit_bzero(b, n);
            free(b);
            errno = e;
            return NULL;
        }
        if (r == 0) {
            b[n] = '\0';
            *len = n;
            return b;
        }
        n += (size_t)r;
    }
    errno = ENOMEM;
    return NULL;
}

/* --ca-fd: the key and certificate, checked here (so that a bad one is named
 * as the flag's), then handed to tls_ca_new through a memory file. */
static int load_ca_fd(struct proxy_run *run, int fd)
{
    size_t n = 0;
    char *pem = read_all(fd, &n);
    close(fd);
    if (!pem) {
        fprintf(stderr, "cordon proxy: --ca-fd %d: %s\n", fd, strerror(errno));
        return EXIT_ARGS;
    }
    tls_secure_heap_init();
    BIO *bio = BIO_new_mem_buf(pem, (int)n);
    X509 *cert = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    bio = BIO_new_mem_buf(pem, (int)n);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    const char *why = NULL;
    if (!cert || !key)
        why = "the CA PEM needs a private key and a certificate";
    else if (X509_check_private_key(cert, key) != 1)
        why = "the private key does not match the certificate";
    else if (X509_check_ca(cert) == 0)
        why = "the certificate is not a CA certificate";
    else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
        why = "the certificate is not valid yet";
    else if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
        why = "the certificate has expired";
    X509_free(cert);
    EVP_PKEY_free(key);
    if (why) {
        explicit_bzero(pem, n);
        free(pem);
        fprintf(stderr, "cordon proxy: --ca-fd %d: %s\n", fd, why);
        return EXIT_ARGS;
    }
    int mfd = memfd_create("cordon-proxy-ca", MFD_CLOEXEC);
    bool ok = mfd >= 0;
    for (size_t off = 0; ok && off < n;) {
        ssize_t w = write(mfd, pem + off, n - off);
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    explicit_bzero(pem, n);
    free(pem);
    struct cordon_error err = { 0 };
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", mfd);
    int r = ok ? tls_ca_new(path, path, &run->ca, &err) : -errno;
    if (mfd >= 0) {
        if (ftruncate(mfd, 0) < 0) { /* nothing of the key stays in the file */
        }
        close(mfd);
    }
    if (r < 0) {
        fprintf(stderr, "cordon proxy: --ca-fd %d: %s\n", fd, ok ? err.msg : strerror(-r));
        return EXIT_START;
    }
    return 0;
}

/* ---- the loop ------------------------------------------------------------------ */

static void stop(struct proxy_run *run, const char *why, int status);

static void handle_closed_noop(uv_handle_t *h)
{
    (void)h;
}

static void finish(struct proxy_run *run)
{
    if (run->finished)
        return;
    run->finished = true;
    if (run->rss_on) {
        uv_timer_stop(&run->rss);
        uv_close((uv_handle_t *)&run->rss, handle_closed_noop);
        run->rss_on = false;
    }
    uv_timer_stop(&run->grace);
    uv_close((uv_handle_t *)&run->grace, handle_closed_noop);
    if (run->proxy) {
        proxy_free(run->proxy);
        run->proxy = NULL;
    }
    if (run->decider) {
        decider_free(run->decider);
        run->decider = NULL;
    }
    if (run->resolver) {
        resolver_free(run->resolver);
        run->resolver = NULL;
    }
    if (run->lifeline_on) {
        uv_poll_stop(&run->lifeline);
        uv_close((uv_handle_t *)&run->lifeline, handle_closed_noop);
        run->lifeline_on = false;
    }
    if (run->listen_fd >= 0) {
        close(run->listen_fd);
        run->listen_fd = -1;
    }
    uv_signal_stop(&run->sigterm);
    uv_signal_stop(&run->sigint);
    uv_close((uv_handle_t *)&run->sigterm, handle_closed_noop);
    uv_close((uv_handle_t *)&run->sigint, handle_closed_noop);
}

/* In-flight answers (the refusals a dead decider left) flush for up to a
 * second; then everything closes. */
static void on_grace(uv_timer_t *t)
{
    struct proxy_run *run = t->data;
    struct proxy_stats st = { 0 };
    if (run->proxy)
        proxy_stats(run->proxy, &st);
    if (st.active == 0 || uv_now(&run->loop) - run->grace_start >= STOP_GRACE_MS)
        finish(run);
}

static void stop(struct proxy_run *run, const char *why, int status)
{
    if (run->stopping)
        return;
    run->stopping = true;
    run->status = status;
    fprintf(stderr, "cordon proxy: stopped (%s)\n", why);
    if (run->proxy)
        proxy_close_listeners(run->proxy);
    else if (run->listen_fd >= 0) {
        close(run->listen_fd);
        run->listen_fd = -1;
    }
    if (run->decider)
        decider_stop(run->decider);
    run->grace_start = uv_now(&run->loop);
    uv_timer_start(&run->grace, on_grace, 0, 25);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct proxy_run *run = s->data;
    stop(run, signum == SIGTERM ? "SIGTERM" : "SIGINT", 0);
}

static void on_lifeline(uv_poll_t *p, int status, int events)
{
    struct proxy_run *run = p->data;
    (void)events;
    char buf[4096];
    for (;;) {
        ssize_t r = read(run->o->lifeline_fd, buf, sizeof(buf));
        if (r > 0)
            continue; /* what the host writes is ignored */
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && status >= 0)
            return;
        uv_poll_stop(p);
        stop(run, r == 0 ? "lifeline closed" : "lifeline error", 0);
        return;
    }
}

static void on_rss(uv_timer_t *t)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (f && fscanf(f, "%ld %ld", &pages, &rss) == 2)
        fprintf(stderr, "cordon-proxy rss %ld\n", rss * sysconf(_SC_PAGESIZE));
    if (f)
        fclose(f);
    (void)t;
}

static int start_serving(struct proxy_run *run, struct cordon_error *err)
{
    int r = proxy_new(&run->loop, &run->cfg, &run->proxy, err);
    if (r == 0) {
        r = proxy_add_listener(run->proxy, run->listen_fd, PROXY_HTTP, err);
        run->listen_fd = -1; /* taken, even on failure */
    }
    if (r < 0)
        return r;
    run->serving = true;
    fprintf(stderr, "cordon proxy: serving %s\n", run->listen_text);
    return 0;
}

/* The start failed after the loop began: nothing more is served. */
static void fail_start(struct proxy_run *run)
{
    run->stopping = true;
    run->status = EXIT_START;
    if (run->decider)
        decider_stop(run->decider);
    run->grace_start = uv_now(&run->loop);
    uv_timer_start(&run->grace, on_grace, 0, 25);
}

static void on_hello(void *ud)
{
    struct proxy_run *run = ud;
    if (run->stopping)
        return;
    const struct net_rules *rules = decider_rules(run->decider);
    run->cfg.rules = rules;
    if (run->debug)
        fprintf(stderr, "cordon proxy: debug: decider hello: %zu allowed, %zu denied entries\n",
                rules->nallow, rules->ndeny);
    struct cordon_error err = { 0 };
    if (start_serving(run, &err) < 0) {
        fprintf(stderr, "cordon proxy: %s\n", err.msg);
        fail_start(run);
    }
}

static void on_dead(void *ud, const char *why, bool violation)
{
    struct proxy_run *run = ud;
    if (!run->serving && !run->stopping) {
        /* before the hello: nothing was served, the start failed */
        fprintf(stderr, "cordon proxy: decider unavailable: %s\n", why);
        fail_start(run);
        return;
    }
    char msg[300];
    snprintf(msg, sizeof(msg), "decider: %s", why);
    stop(run, msg, violation ? EXIT_START : 0);
}

/* ---- settings (no decider) ------------------------------------------------------ */

static int fold_strip(struct proxy_run *run, char *const *names, size_t n)
{
    char **nv = realloc(run->strip_folded, (run->nstrip_folded + n + 1) * sizeof(*nv));
    if (!nv)
        return -1;
    run->strip_folded = nv;
    for (size_t i = 0; i < n; i++) {
        char *f = strdup(names[i]);
        if (!f)
            return -1;
        for (char *p = f; *p; p++) {
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p - 'A' + 'a');
            if (*p == '_' || *p == '.')
                *p = '-';
        }
        nv[run->nstrip_folded++] = f;
    }
    return 0;
}

/* The proxy as a sandboxed run configures it (src/sandbox/run.c), from the
 * settings; keys that only make sense with a sandbox are refused by name. */
static int settings_config(struct proxy_run *run)
{
    struct cordon_error err = { 0 };
    cordon_policy *p = NULL;
    if (cordon_policy_load_auto(run->o->settings, NULL, &p, &err) < 0) {
        fprintf(stderr, "cordon proxy: %s\n", err.msg);
        return EXIT_ARGS;
    }
    run->policy = p;
    const char *src = NULL;
    cordon_policy_source(p, &src);
    if (run->debug)
        fprintf(stderr, "cordon proxy: debug: settings: %s\n", src ? src : "embedded default policy");
    const char *unsupported = p->creds.n || p->creds.naws ? "credentials"
                              : p->net.ninject_headers     ? "network.injectHeaders"
                              : p->net.http_proxy_port     ? "network.httpProxyPort"
                              : p->net.socks_proxy_port    ? "network.socksProxyPort"
                                                           : NULL;
    if (unsupported) {
        fprintf(stderr, "cordon proxy: %s: %s is not supported by cordon proxy (there is no "
                        "sandbox to hold its placeholders); remove it or run the command "
                        "under cordon\n", src ? src : "settings", unsupported);
        return EXIT_ARGS;
    }
    if (p->net.tls && !p->net.tls_ca_cert && run->o->ca_fd < 0) {
        fprintf(stderr, "cordon proxy: %s: network.tlsTerminate needs caCertPath and caKeyPath "
                        "(or --ca-fd): no client could trust a CA made for this run\n",
                src ? src : "settings");
        return EXIT_ARGS;
    }
    int r = resolver_new_for_policy(&run->loop, p, &run->resolver, &err);
    if (r < 0) {
        fprintf(stderr, "cordon proxy: %s\n", err.msg);
        return EXIT_START;
    }
    struct proxy_config *cfg = &run->cfg;
    cfg->rules = &p->net.rules;
    cfg->deny_reasons = p->net.denied_domain_reasons;
    cfg->allow_private = p->net.allow_private;
    cfg->denied_resolved = p->net.denied_resolved;
    cfg->ndenied_resolved = p->net.ndenied_resolved;
    cfg->mitm_domains = p->net.mitm_domains;
    cfg->nmitm_domains = p->net.nmitm_domains;
    if (p->net.mitm_socket) {
        cfg->mitm.set = true;
        cfg->mitm.unix_socket = true;
        snprintf(cfg->mitm.path, sizeof(cfg->mitm.path), "%s", p->net.mitm_socket);
    }
    const char *np = NULL, *what = NULL, *why = NULL;
    char warn[2][400];
    if (proxy_parents_from_policy(cfg, p, &np, &what, &why, warn) < 0) {
        fprintf(stderr, "cordon proxy: upstream %s proxy: %s\n", what, why);
        return EXIT_ARGS;
    }
    for (int i = 0; i < 2; i++)
        if (warn[i][0])
            fprintf(stderr, "cordon proxy: warning: %s\n", warn[i]);
    if (np && net_noproxy_parse(np, &run->no_proxy) == 0) {
        run->have_no_proxy = true;
        cfg->no_proxy = &run->no_proxy;
    }
    cfg->tls_exclude = p->net.tls_exclude;
    cfg->ntls_exclude = p->net.ntls_exclude;
    cfg->tls_max_tunnels = p->net.tls_max_tunnels;
    cfg->tls_handshake_timeout_ms = p->net.tls_handshake_timeout_ms;
    cfg->require_host_match = p->net.require_host_match;
    cfg->refuse_opaque = p->net.refuse_opaque_tunnels;
    cfg->rules_req = p->net.req_rules;
    cfg->nrules_req = p->net.nreq_rules;
    cfg->path_mode = p->net.path_mode;
    cfg->allow_plaintext_header_set = p->net.allow_plaintext_header_set || run->o->plaintext_header_set;
    cfg->strip_request_headers = p->net.strip_request_headers.v;
    cfg->nstrip_request_headers = p->net.strip_request_headers.n;
    if (fold_strip(run, p->net.strip_response_headers.v, p->net.strip_response_headers.n) < 0)
        return EXIT_START;
    if (p->net.tls && run->o->ca_fd < 0) {
        r = tls_ca_new(p->net.tls_ca_cert, p->net.tls_ca_key, &run->ca, &err);
        if (r < 0) {
            fprintf(stderr, "cordon proxy: tlsTerminate: %s\n", err.msg);
            return EXIT_ARGS;
        }
    }
    return 0;
}

/* ---- main ------------------------------------------------------------------------ */

int cli_proxy_main(int argc, char **argv)
{
    /* srt: --version anywhere prints one line and nothing else happens */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("cordon-proxy %s\n", CORDON_VERSION);
            return 0;
        }
    }
    struct opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc) {
        free(o.strip);
        return rc < 0 ? 0 : rc;
    }
    const char *srt_debug = getenv("SRT_DEBUG");
    if (o.debug || (srt_debug && *srt_debug)) /* srt: any non-empty value */
        o.debug = true;
    struct proxy_run *run = calloc(1, sizeof(*run));
    if (!run) {
        free(o.strip);
        fprintf(stderr, "cordon proxy: out of memory\n");
        return EXIT_START;
    }
    run->o = &o;
    run->debug = o.debug;
    run->listen_fd = -1;
    run->audit.fd = -1;
    bool have_decider = o.decider_fd >= 0 || o.decider_in >= 0;
    struct cordon_error err = { 0 };

    /* A client that closes before its answer must not kill the proxy (a
     * write to it raises SIGPIPE). */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&run->loop);
    uv_timer_init(&run->loop, &run->grace);
    run->grace.data = run;
    uv_signal_init(&run->loop, &run->sigterm);
    uv_signal_init(&run->loop, &run->sigint);
    run->sigterm.data = run->sigint.data = run;

    /* Everything that can be refused, before anything is bound or sent. */
    if (o.ca_fd >= 0 && (rc = load_ca_fd(run, o.ca_fd)) != 0)
        goto out;
    if (!have_decider && (rc = settings_config(run)) != 0)
        goto out;
    if (fold_strip(run, o.strip, o.nstrip) < 0) {
        rc = EXIT_START;
        goto out;
    }
    if (o.audit) {
        run->audit.fd = open(o.audit, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
        if (run->audit.fd < 0) {
            fprintf(stderr, "cordon proxy: --audit %s: %s\n", o.audit, strerror(errno));
            rc = EXIT_ARGS;
            goto out;
        }
        run->audit.owns_fd = true;
    } else if (o.audit_fd >= 0) {
        run->audit.fd = o.audit_fd;
        fcntl(o.audit_fd, F_SETFD, FD_CLOEXEC);
    }
    if (o.lifeline_fd >= 0) {
        int fl = fcntl(o.lifeline_fd, F_GETFL);
        if (fl < 0 || fcntl(o.lifeline_fd, F_SETFL, fl | O_NONBLOCK) < 0 ||
            fcntl(o.lifeline_fd, F_SETFD, FD_CLOEXEC) < 0 ||
            uv_poll_init(&run->loop, &run->lifeline, o.lifeline_fd) < 0) {
            fprintf(stderr, "cordon proxy: --lifeline-fd %d: a pipe or a socket is needed\n",
                    o.lifeline_fd);
            rc = EXIT_ARGS;
            goto out;
        }
        run->lifeline.data = run;
        run->lifeline_on = true;
    }
    if (run->ca) {
        run->tls_server = tls_server_ctx_new(&err);
        run->tls_client = run->tls_server ? tls_client_ctx_new(
                                                run->policy ? run->policy->net.upstream_ca_file
                                                            : NULL, &err)
                                          : NULL;
        if (!run->tls_client) {
            fprintf(stderr, "cordon proxy: %s\n", err.msg);
            rc = EXIT_START;
            goto out;
        }
        run->cfg.tls_ca = run->ca;
        run->cfg.tls_server = run->tls_server;
        run->cfg.tls_client = run->tls_client;
    }
    rc = o.listen_fd >= 0 ? take_listener(run, o.listen_fd) : open_listener(run, o.listen);
    if (rc)
        goto out;

    run->cfg.audit = &run->audit;
    run->cfg.strip_response_headers = run->strip_folded;
    run->cfg.nstrip_response_headers = run->nstrip_folded;
    if (have_decider) {
        /* srt's proxy-only mode: interception when a CA is given, and no
         * tunnel it cannot inspect; the Host header, the server name and the
         * CONNECT target must agree; private ranges are refused. */
        if (resolver_new(&run->loop, NULL, NULL, 0, &run->resolver, &err) < 0) {
            fprintf(stderr, "cordon proxy: %s\n", err.msg);
            rc = EXIT_START;
            goto out;
        }
        run->cfg.tls_max_tunnels = 256;
        run->cfg.tls_handshake_timeout_ms = 10000;
        run->cfg.require_host_match = true;
        run->cfg.refuse_opaque = true;
        run->cfg.allow_private = false;
        run->cfg.allow_plaintext_header_set = o.plaintext_header_set;
        struct decider_opts dopts = {
            .loop = &run->loop,
            .in_fd = o.decider_fd >= 0 ? o.decider_fd : o.decider_in,
            .out_fd = o.decider_fd >= 0 ? o.decider_fd : o.decider_out,
            .plaintext_header_set = o.plaintext_header_set,
            .on_hello = on_hello,
            .on_dead = on_dead,
            .ud = run,
        };
        if (decider_new(&dopts, &run->decider, &err) < 0) {
            fprintf(stderr, "cordon proxy: %s\n", err.msg);
            rc = EXIT_ARGS;
            goto out;
        }
        run->cfg.decider = run->decider;
        run->cfg.resolver = run->resolver; /* proxy_new copies cfg at the hello */
    } else {
        run->cfg.resolver = run->resolver;
        if (start_serving(run, &err) < 0) {
            fprintf(stderr, "cordon proxy: %s\n", err.msg);
            rc = EXIT_START;
            goto out;
        }
    }
    if (run->lifeline_on)
        uv_poll_start(&run->lifeline, UV_READABLE | UV_DISCONNECT, on_lifeline);
    uv_signal_start(&run->sigterm, on_signal, SIGTERM);
    uv_signal_start(&run->sigint, on_signal, SIGINT);
    const char *rss = getenv("SRT_PROXY_REPORT_RSS_MS");
    long every = rss ? strtol(rss, NULL, 10) : 0;
    if (every > 0) {
        uv_timer_init(&run->loop, &run->rss);
        uv_timer_start(&run->rss, on_rss, (uint64_t)every, (uint64_t)every);
        uv_unref((uv_handle_t *)&run->rss);
        run->rss_on = true;
    }
    uv_run(&run->loop, UV_RUN_DEFAULT);
    rc = run->status;

out:
    /* After a stop, finish() ran from the loop; after a failed start, it
     * runs here. Either way the loop then runs until every handle closed. */
    finish(run);
    uv_run(&run->loop, UV_RUN_DEFAULT);
    uv_loop_close(&run->loop);
    if (run->listen_fd >= 0)
        close(run->listen_fd);
    if (run->audit.owns_fd && run->audit.fd >= 0)
        close(run->audit.fd);
    SSL_CTX_free(run->tls_server);
    SSL_CTX_free(run->tls_client);
    tls_ca_free(run->ca);
    if (run->have_no_proxy)
        net_noproxy_free(&run->no_proxy);
    for (size_t i = 0; i < run->nstrip_folded; i++)
        free(run->strip_folded[i]);
    free(run->strip_folded);
    explicit_bzero(&run->cfg, sizeof(run->cfg));
    if (run->policy)
        cordon_policy_free(run->policy);
    free(run);
    free(o.strip);
    return rc;
}
