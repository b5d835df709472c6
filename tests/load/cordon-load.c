/* cordon-load: the client and the upstream servers of the load and fault
 * tests (tests/integration/test_load.py, test_faults.py). Python is too slow
 * to open 1000 tunnels at once or to send 100k requests in CI's time, and a
 * slow test client would measure itself rather than the proxy.
 *
 *   cordon-load serve
 *       upstream servers on the host's 127.0.0.1 (one epoll loop); prints
 *       {"echo": port, ...} on one line, then serves until stdin closes. A
 *       line "stats" on stdin prints the counters as one JSON line.
 *         echo       echoes every byte; at the client's EOF, flushes and
 *                    half-closes (the FIN goes back the way it came)
 *         finfirst   sends "hello\n", shuts its write side at once, then
 *                    reads to EOF: sink_bytes and sink_fnv in the stats say
 *                    what arrived after its own FIN
 *         http       HTTP/1.1 keep-alive origin:
 *                      /echo/TOKEN       200, body "TOKEN\n"
 *                      /size/N           200, N bytes of pattern (pat(k))
 *                      /stall            never answers
 *                      /reset            reset (RST) after the head
 *                      /close            a clean close (FIN) after the head
 *                      /reset-mid        head for 100000 bytes, 1000 sent, RST
 *                      /close-mid        the same with a clean close (FIN)
 *                      /garbage/KIND     an invalid response, then close:
 *                        binary, status, bare-lf, huge-head, dup-length,
 *                        length-and-chunked, bad-chunk, http09
 *         stall      accepts, reads, never writes
 *         reset      resets every connection as soon as it is accepted
 *         blackhole  a listener whose backlog is kept full and which never
 *                    accepts: a connect to it hangs (SYNs are dropped)
 *
 *   cordon-load tunnels -p PROXY_PORT -t PORT -n N -b BYTES [-r ROUNDS]
 *       inside the sandbox: N CONNECT tunnels at once through the HTTP proxy
 *       on 127.0.0.1:PROXY_PORT to the echo server at 127.0.0.1:PORT. Each
 *       round: open all N (print "open N MS"), send BYTES of data unique to
 *       each tunnel and read the echo back, verified byte for byte (print
 *       "verified N MS"), then close them all (print "closed N MS"). After
 *       each line (and after "ready", before the first round) it waits for a
 *       line on stdin, so that the test measures the supervisor there.
 *
 *   cordon-load requests -p PROXY_PORT -t PORT -n N -k PER_CONNECTION [-w]
 *       N plain HTTP requests one after another through the proxy
 *       (absolute-form GET /echo/<i>), PER_CONNECTION on each kept-alive
 *       connection (0: one connection); every status, length and body is
 *       checked. Prints "ok N SECONDS p50_us p99_us max_us". With -w it
 *       prints "ready" and waits for a line on stdin before the first
 *       request, and waits for another after the last one has closed.
 *
 *   cordon-load flood -p PROXY_PORT -n N
 *       opens up to N idle connections to the proxy, as many as this
 *       process's descriptors allow (the soft limit raised to the hard one); prints "held K", waits for a line on
 *       stdin, closes them and prints "released K".
 *
 * Every failure exits 1 with a message on stderr; every wait is bounded.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IO_TIMEOUT_MS 30000

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("cordon-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The pattern of /size/N bodies and of tunnel data: byte k of stream s. */
static inline uint8_t pat(uint64_t s, uint64_t k)
{
    uint64_t x = (k + 1) * 0x9E3779B97F4A7C15ull ^ (s * 0xD1B54A32D192ED03ull);
    x ^= x >> 29;
    return (uint8_t)(x ^ (x >> 17));
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        die("fcntl: %s", strerror(errno));
}

static struct sockaddr_in lo_addr(int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* ---- servers --------------------------------------------------------------- */

enum mode { M_ECHO, M_FINFIRST, M_HTTP, M_STALL, M_RESET, M_BLACKHOLE, M_COUNT };
static const char *const mode_names[M_COUNT] = { "echo", "finfirst", "http", "stall", "reset",
                                                 "blackhole" };

struct sconn {
    int fd;
    enum mode mode;
    char *in;
    size_t inlen, incap;
    char *out;
    size_t outlen, outoff;
    uint64_t gen_left, gen_off; /* /size/N body still to send */
    bool rd_eof;                /* the client's FIN arrived */
    bool close_after;           /* close once out is flushed */
    bool rst_after;             /* reset once out is flushed */
    bool stalled;               /* /stall: read nothing more, answer nothing */
    bool wr_shut;
    uint64_t sink_bytes, sink_fnv;
};

static struct {
    int ep;
    int lfd[M_COUNT];
    int port[M_COUNT];
    uint64_t accepted[M_COUNT], open[M_COUNT], closed[M_COUNT];
    uint64_t requests, echo_bytes, resets;
    uint64_t sink_bytes, sink_fnv, sinks_done;
} S;

static void s_close(struct sconn *c, bool rst)
{
    if (rst) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
        S.resets++;
    }
    epoll_ctl(S.ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    S.open[c->mode]--;
    S.closed[c->mode]++;
    free(c->in);
    free(c->out);
    free(c);
}

static void s_out(struct sconn *c, const void *p, size_t n)
{
    char *nb = realloc(c->out, c->outlen + n);
    if (!nb)
        die("out of memory");
    c->out = nb;
    memcpy(c->out + c->outlen, p, n);
    c->outlen += n;
}

static void s_outf(struct sconn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_outf(struct sconn *c, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n > 0)
        s_out(c, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
}

static void s_want(struct sconn *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };
    epoll_ctl(S.ep, EPOLL_CTL_MOD, c->fd, &e);
}

/* Returns false when the connection was closed. */
static bool s_flush(struct sconn *c)
{
    for (;;) {
        if (c->outoff < c->outlen) {
            ssize_t w = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN)
                    return true;
                s_close(c, false);
                return false;
            }
            c->outoff += (size_t)w;
            continue;
        }
        c->outoff = c->outlen = 0;
        if (c->gen_left == 0)
            break;
        char buf[65536];
        size_t n = c->gen_left < sizeof(buf) ? (size_t)c->gen_left : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)pat(0, c->gen_off + i);
        ssize_t w = send(c->fd, buf, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN)
                return true;
            s_close(c, false);
            return false;
        }
        c->gen_off += (uint64_t)w;
        c->gen_left -= (uint64_t)w;
    }
    if (c->rst_after) {
        s_close(c, true);
        return false;
    }
    if (c->close_after) {
        s_close(c, false);
        return false;
    }
    return true;
}

static void garbage(struct sconn *c, const char *kind)
{
    if (strcmp(kind, "binary") == 0) {
        char b[4096];
        for (size_t i = 0; i < sizeof(b); i++)
            b[i] = (char)pat(7, i);
        b[0] = '\x16'; /* never a valid status line */
        s_out(c, b, sizeof(b));
    } else if (strcmp(kind, "status") == 0) {
        s_outf(c, "HTTP/1.1 2x0 Maybe\r\nContent-Length: 2\r\n\r\nok");
    } else if (strcmp(kind, "bare-lf") == 0) {
        s_outf(c, "HTTP/1.1 200 OK\nContent-Length: 2\n\nok");
    } else if (strcmp(kind, "huge-head") == 0) {
        s_outf(c, "HTTP/1.1 200 OK\r\n");
        for (int i = 0; i < 4000; i++)
            s_outf(c, "X-Filler-%04d: %s\r\n", i, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
        s_outf(c, "Content-Length: 2\r\n\r\nok");
    } else if (strcmp(kind, "dup-length") == 0) {
        s_outf(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nokxyz");
    } else if (strcmp(kind, "length-and-chunked") == 0) {
        s_outf(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "2\r\nok\r\n0\r\n\r\n");
    } else if (strcmp(kind, "bad-chunk") == 0) {
        s_outf(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\nzz\r\n"
                  "garbage\r\n0\r\n\r\n");
    } else if (strcmp(kind, "http09") == 0) {
        s_outf(c, "<html>no status line at all</html>\n");
    } else {
        s_outf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    }
    c->close_after = true;
}

/* One complete request head at c->in[0..hl). Returns false when closed. */
static bool http_request(struct sconn *c, size_t hl)
{
    char line[2048];
    char *eol = memchr(c->in, '\r', hl);
    size_t ll = eol ? (size_t)(eol - c->in) : 0;
    if (ll >= sizeof(line))
        ll = sizeof(line) - 1;
    memcpy(line, c->in, ll);
    line[ll] = '\0';
    bool conn_close = false;
    uint64_t body = 0;
    for (char *p = c->in; p < c->in + hl;) {
        char *nl = memchr(p, '\n', (size_t)(c->in + hl - p));
        if (!nl)
            break;
        if (strncasecmp(p, "connection:", 11) == 0 && memmem(p, (size_t)(nl - p), "close", 5))
            conn_close = true;
        if (strncasecmp(p, "content-length:", 15) == 0)
            body = strtoull(p + 15, NULL, 10);
        p = nl + 1;
    }
    if (body > 0)
        die("request bodies are not served");
    memmove(c->in, c->in + hl, c->inlen - hl);
    c->inlen -= hl;
    S.requests++;
    char method[16], target[1024];
    if (sscanf(line, "%15s %1023s", method, target) != 2) {
        s_outf(c, "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        c->close_after = true;
        return s_flush(c);
    }
    const char *path = target;
    if (strncmp(path, "http://", 7) == 0) {
        path = strchr(path + 7, '/');
        if (!path)
            path = "/";
    }
    const char *ka = conn_close ? "Connection: close\r\n" : "";
    if (strncmp(path, "/echo/", 6) == 0) {
        s_outf(c, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n%s\r\n%s\n", strlen(path + 6) + 1, ka,
               path + 6);
    } else if (strncmp(path, "/size/", 6) == 0) {
        c->gen_left = strtoull(path + 6, NULL, 10);
        c->gen_off = 0;
        s_outf(c, "HTTP/1.1 200 OK\r\nContent-Length: %llu\r\n%s\r\n",
               (unsigned long long)c->gen_left, ka);
    } else if (strcmp(path, "/stall") == 0) {
        c->stalled = true;
        return true;
    } else if (strcmp(path, "/close") == 0) {
        s_close(c, false);
        return false;
    } else if (strcmp(path, "/reset") == 0) {
        s_close(c, true);
        return false;
    } else if (strcmp(path, "/reset-mid") == 0 || strcmp(path, "/close-mid") == 0) {
        s_outf(c, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
        char b[1000];
        memset(b, 'x', sizeof(b));
        s_out(c, b, sizeof(b));
        if (path[1] == 'r')
            c->rst_after = true;
        else
            c->close_after = true;
    } else if (strncmp(path, "/garbage/", 9) == 0) {
        garbage(c, path + 9);
    } else {
        s_outf(c, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n%s\r\n", ka);
    }
    if (conn_close)
        c->close_after = true;
    return s_flush(c);
}

static void s_readable(struct sconn *c)
{
    char buf[65536];
    for (;;) {
        if (c->stalled || (c->mode == M_ECHO && c->outlen > c->outoff))
            break; /* backpressure: read again once the echo is out */
        ssize_t r = recv(c->fd, buf, sizeof(buf), 0);
        if (r < 0) {
            if (errno == EAGAIN)
                break;
            s_close(c, false);
            return;
        }
        if (r == 0) {
            c->rd_eof = true;
            break;
        }
        switch (c->mode) {
        case M_ECHO:
            S.echo_bytes += (uint64_t)r;
            s_out(c, buf, (size_t)r);
            if (!s_flush(c))
                return;
            break;
        case M_FINFIRST:
            for (ssize_t i = 0; i < r; i++)
                c->sink_fnv = (c->sink_fnv ^ (uint8_t)buf[i]) * 0x100000001b3ull;
            c->sink_bytes += (uint64_t)r;
            break;
        case M_HTTP: {
            if (c->inlen + (size_t)r > 1 << 20)
                die("request head too large");
            if (c->inlen + (size_t)r > c->incap) {
                c->incap = (c->inlen + (size_t)r) * 2;
                c->in = realloc(c->in, c->incap);
                if (!c->in)
                    die("out of memory");
            }
            memcpy(c->in + c->inlen, buf, (size_t)r);
            c->inlen += (size_t)r;
            /* one request at a time: the next head waits for this answer */
            while (!c->stalled && c->outlen == c->outoff && c->gen_left == 0 &&
                   !c->close_after && !c->rst_after) {
                char *e = memmem(c->in, c->inlen, "\r\n\r\n", 4);
                if (!e)
                    break;
                if (!http_request(c, (size_t)(e + 4 - c->in)))
                    return;
            }
            break;
        }
        default:
            break; /* stall: read and drop */
        }
    }
    if (c->rd_eof) {
        if (c->mode == M_FINFIRST) {
            S.sink_bytes = c->sink_bytes;
            S.sink_fnv = c->sink_fnv;
            S.sinks_done++;
            s_close(c, false);
            return;
        }
        if (c->mode == M_ECHO) {
            if (c->outlen > c->outoff) {
                s_want(c, EPOLLOUT);
                return;
            }
            shutdown(c->fd, SHUT_WR);
            s_close(c, false);
            return;
        }
        if (c->mode == M_HTTP && (c->outlen > c->outoff || c->gen_left)) {
            c->close_after = true;
            s_want(c, EPOLLOUT);
            return;
        }
        s_close(c, false);
        return;
    }
    bool pending = c->outlen > c->outoff || c->gen_left;
    if (c->stalled) {
        s_want(c, EPOLLIN); /* only to see the client's EOF (drained, dropped) */
        return;
    }
    s_want(c, (pending && c->mode == M_ECHO ? 0 : EPOLLIN) | (pending ? EPOLLOUT : 0));
}

static void s_writable(struct sconn *c)
{
    if (!s_flush(c))
        return;
    if (c->rd_eof && c->mode == M_ECHO) {
        shutdown(c->fd, SHUT_WR);
        s_close(c, false);
        return;
    }
    if (c->rd_eof && c->mode == M_HTTP) {
        s_close(c, false);
        return;
    }
    if (c->mode == M_HTTP && c->outlen == c->outoff && c->gen_left == 0 && c->inlen > 0) {
        /* answered: a pipelined head may be waiting */
        s_readable(c);
        return;
    }
    bool pending = c->outlen > c->outoff || c->gen_left;
    s_want(c, (pending ? EPOLLOUT : 0) | EPOLLIN);
}

static int s_listen(int backlog)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = lo_addr(0);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, backlog) < 0)
        die("bind/listen: %s", strerror(errno));
    return fd;
}

static int s_port(int fd)
{
    struct sockaddr_in a;
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    return ntohs(a.sin_port);
}

static void print_stats(void)
{
    printf("{");
    for (int m = 0; m < M_COUNT; m++)
        printf("\"accepted_%s\": %llu, \"open_%s\": %llu, \"closed_%s\": %llu, ", mode_names[m],
               (unsigned long long)S.accepted[m], mode_names[m], (unsigned long long)S.open[m],
               mode_names[m], (unsigned long long)S.closed[m]);
    printf("\"requests\": %llu, \"echo_bytes\": %llu, \"resets\": %llu, \"sink_bytes\": %llu, "
           "\"sink_fnv\": \"%016llx\", \"sinks_done\": %llu}\n",
           (unsigned long long)S.requests, (unsigned long long)S.echo_bytes,
           (unsigned long long)S.resets, (unsigned long long)S.sink_bytes,
           (unsigned long long)S.sink_fnv, (unsigned long long)S.sinks_done);
    fflush(stdout);
}

static int cmd_serve(void)
{
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    S.ep = epoll_create1(EPOLL_CLOEXEC);
    if (S.ep < 0)
        die("epoll: %s", strerror(errno));
    int hold[4];
    for (int m = 0; m < M_COUNT; m++) {
        S.lfd[m] = s_listen(m == M_BLACKHOLE ? 0 : 4096);
        S.port[m] = s_port(S.lfd[m]);
        if (m == M_BLACKHOLE) {
            /* Fill the accept queue (and the SYN backlog behind it) with
             * connections of our own: later SYNs are dropped, so a
             * connect(2) to this port hangs until the caller gives up. */
            for (int i = 0; i < 4; i++) {
                hold[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                struct sockaddr_in a = lo_addr(S.port[m]);
                connect(hold[i], (struct sockaddr *)&a, sizeof(a));
            }
            continue;
        }
        set_nonblock(S.lfd[m]);
        struct epoll_event e = { .events = EPOLLIN, .data.u64 = (uint64_t)m + 1 };
        epoll_ctl(S.ep, EPOLL_CTL_ADD, S.lfd[m], &e);
    }
    set_nonblock(0);
    struct epoll_event e0 = { .events = EPOLLIN, .data.u64 = 100 };
    epoll_ctl(S.ep, EPOLL_CTL_ADD, 0, &e0);
    printf("{");
    for (int m = 0; m < M_COUNT; m++)
        printf("%s\"%s\": %d", m ? ", " : "", mode_names[m], S.port[m]);
    printf("}\n");
    fflush(stdout);
    char cmdbuf[256];
    size_t cmdlen = 0;
    for (;;) {
        struct epoll_event ev[256];
        int n = epoll_wait(S.ep, ev, 256, -1);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            die("epoll_wait: %s", strerror(errno));
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = ev[i].data.u64;
            if (tag == 100) {
                ssize_t r = read(0, cmdbuf + cmdlen, sizeof(cmdbuf) - 1 - cmdlen);
                if (r == 0)
                    return 0;
                if (r < 0)
                    continue;
                cmdlen += (size_t)r;
                char *nl;
                while ((nl = memchr(cmdbuf, '\n', cmdlen))) {
                    print_stats();
                    cmdlen -= (size_t)(nl + 1 - cmdbuf);
                    memmove(cmdbuf, nl + 1, cmdlen);
                }
                if (cmdlen == sizeof(cmdbuf) - 1)
                    cmdlen = 0;
                continue;
            }
            if (tag >= 1 && tag <= M_COUNT) {
                enum mode m = (enum mode)(tag - 1);
                for (;;) {
                    int fd = accept4(S.lfd[m], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    S.accepted[m]++;
                    S.open[m]++;
                    struct sconn *c = calloc(1, sizeof(*c));
                    if (!c)
                        die("out of memory");
                    c->fd = fd;
                    c->mode = m;
                    c->sink_fnv = 0xcbf29ce484222325ull;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    if (m == M_RESET) {
                        s_close(c, true);
                        continue;
                    }
                    struct epoll_event e = { .events = EPOLLIN, .data.ptr = c };
                    epoll_ctl(S.ep, EPOLL_CTL_ADD, fd, &e);
                    if (m == M_FINFIRST) {
                        s_out(c, "hello\n", 6);
                        if (!s_flush(c))
                            continue;
                        shutdown(fd, SHUT_WR);
                        c->wr_shut = true;
                    }
                }
                continue;
            }
            struct sconn *c = ev[i].data.ptr;
            if (ev[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                if (c->stalled && !(ev[i].events & (EPOLLHUP | EPOLLERR))) {
                    /* drain and drop, to see the client's EOF */
                    char b[4096];
                    ssize_t r = recv(c->fd, b, sizeof(b), 0);
                    if (r == 0 || (r < 0 && errno != EAGAIN))
                        s_close(c, false);
                    continue;
                }
                s_readable(c);
                continue; /* c may be gone */
            }
            if (ev[i].events & EPOLLOUT)
                s_writable(c);
        }
    }
}

/* ---- client helpers -------------------------------------------------------- */

static int connect_lo(int port, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = lo_addr(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static void wait_go(void)
{
    char line[64];
    if (!fgets(line, sizeof(line), stdin))
        die("stdin closed before the go-ahead");
}

/* ---- tunnels --------------------------------------------------------------- */

struct tun {
    int fd;
    int phase;          /* 0 connecting+CONNECT sent, 1 head read, 2 data, 3 done */
    char head[512];
    size_t headlen;
    size_t sent, got;
    bool shut;
};

static int cmd_tunnels(int pport, int port, int n, size_t bytes, int rounds)
{
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    struct tun *t = calloc((size_t)n, sizeof(*t));
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (!t || ep < 0)
        die("setup: %s", strerror(errno));
    char req[256];
    int reqlen = snprintf(req, sizeof(req), "CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                          port, port);
    static char buf[65536];
    printf("ready\n");
    fflush(stdout);
    wait_go();
    for (int round = 0; round < rounds; round++) {
        double t0 = now_ms();
        /* open: every connect at once; the CONNECT goes out when writable */
        for (int i = 0; i < n; i++) {
            memset(&t[i], 0, sizeof(t[i]));
            t[i].fd = connect_lo(pport, true);
            if (t[i].fd < 0)
                die("tunnel %d: connect to the proxy: %s", i, strerror(errno));
            struct epoll_event e = { .events = EPOLLOUT, .data.u32 = (uint32_t)i };
            epoll_ctl(ep, EPOLL_CTL_ADD, t[i].fd, &e);
        }
        int open = 0;
        while (open < n) {
            struct epoll_event ev[512];
            int k = epoll_wait(ep, ev, 512, IO_TIMEOUT_MS);
            if (k <= 0)
                die("round %d: %d of %d tunnels open after %d ms", round, open, n, IO_TIMEOUT_MS);
            for (int j = 0; j < k; j++) {
                struct tun *x = &t[ev[j].data.u32];
                if (x->phase == 2)
                    die("tunnel %u: closed by the proxy while the others opened",
                        ev[j].data.u32);
                if (x->phase == 0 && (ev[j].events & EPOLLOUT)) {
                    int err = 0;
                    socklen_t l = sizeof(err);
                    getsockopt(x->fd, SOL_SOCKET, SO_ERROR, &err, &l);
                    if (err)
                        die("tunnel %u: connect: %s", ev[j].data.u32, strerror(err));
                    if (send(x->fd, req, (size_t)reqlen, MSG_NOSIGNAL) != reqlen)
                        die("tunnel %u: CONNECT not sent", ev[j].data.u32);
                    x->phase = 1;
                    struct epoll_event e = { .events = EPOLLIN, .data.u32 = ev[j].data.u32 };
                    epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &e);
                    continue;
                }
                if (x->phase == 1) {
                    /* read byte-wise up to the end of the head: nothing of
                     * the tunnel's data may be consumed here */
                    for (;;) {
                        ssize_t r = recv(x->fd, x->head + x->headlen, 1, 0);
                        if (r < 0 && errno == EAGAIN)
                            break;
                        if (r <= 0)
                            die("tunnel %u: proxy closed before the 200: %.*s", ev[j].data.u32,
                                (int)x->headlen, x->head);
                        x->headlen++;
                        if (x->headlen >= 4 && memcmp(x->head + x->headlen - 4, "\r\n\r\n", 4) == 0) {
                            if (strncmp(x->head, "HTTP/1.1 200", 12) != 0)
                                die("tunnel %u: %.*s", ev[j].data.u32, (int)x->headlen, x->head);
                            x->phase = 2;
                            open++;
                            struct epoll_event e = { .events = 0, .data.u32 = ev[j].data.u32 };
                            epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &e);
                            break;
                        }
                        if (x->headlen >= sizeof(x->head) - 1)
                            die("tunnel %u: answer too long", ev[j].data.u32);
                    }
                }
            }
        }
        printf("open %d %.0f\n", n, now_ms() - t0);
        fflush(stdout);
        wait_go();
        /* data: every tunnel sends its own stream and reads it back */
        t0 = now_ms();
        for (int i = 0; i < n; i++) {
            struct epoll_event e = { .events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i };
            epoll_ctl(ep, EPOLL_CTL_MOD, t[i].fd, &e);
        }
        int done = 0;
        uint64_t seed = (uint64_t)round * 1000003u;
        while (done < n) {
            struct epoll_event ev[512];
            int k = epoll_wait(ep, ev, 512, IO_TIMEOUT_MS);
            if (k <= 0)
                die("round %d: %d of %d tunnels verified after %d ms", round, done, n,
                    IO_TIMEOUT_MS);
            for (int j = 0; j < k; j++) {
                uint32_t id = ev[j].data.u32;
                struct tun *x = &t[id];
                if (x->phase != 2)
                    continue;
                if ((ev[j].events & EPOLLOUT) && x->sent < bytes) {
                    size_t m = bytes - x->sent < sizeof(buf) ? bytes - x->sent : sizeof(buf);
                    for (size_t q = 0; q < m; q++)
                        buf[q] = (char)pat(seed + id, x->sent + q);
                    ssize_t w = send(x->fd, buf, m, MSG_NOSIGNAL);
                    if (w < 0 && errno != EAGAIN)
                        die("tunnel %u: send: %s", id, strerror(errno));
                    if (w > 0)
                        x->sent += (size_t)w;
                }
                if (x->sent == bytes && !x->shut) {
                    /* half-close: the echo server answers our FIN with its
                     * own once everything is back */
                    shutdown(x->fd, SHUT_WR);
                    x->shut = true;
                    struct epoll_event e = { .events = EPOLLIN, .data.u32 = id };
                    epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &e);
                }
                if (ev[j].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
                    for (;;) {
                        ssize_t r = recv(x->fd, buf, sizeof(buf), 0);
                        if (r < 0 && errno == EAGAIN)
                            break;
                        if (r < 0)
                            die("tunnel %u: recv after %zu of %zu bytes: %s", id, x->got, bytes,
                                strerror(errno));
                        if (r == 0) {
                            if (x->got != bytes)
                                die("tunnel %u: EOF after %zu of %zu bytes", id, x->got, bytes);
                            x->phase = 3;
                            done++;
                            epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                            break;
                        }
                        for (ssize_t q = 0; q < r; q++)
                            if ((uint8_t)buf[q] != pat(seed + id, x->got + (size_t)q))
                                die("tunnel %u: byte %zu differs", id, x->got + (size_t)q);
                        x->got += (size_t)r;
                        if (x->got > bytes)
                            die("tunnel %u: more bytes than sent", id);
                    }
                }
            }
        }
        printf("verified %d %.0f\n", n, now_ms() - t0);
        fflush(stdout);
        wait_go();
        t0 = now_ms();
        for (int i = 0; i < n; i++)
            close(t[i].fd);
        printf("closed %d %.0f\n", n, now_ms() - t0);
        fflush(stdout);
        wait_go();
    }
    free(t);
    close(ep);
    return 0;
}

/* ---- sequential requests ---------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void set_timeouts(int fd)
{
    struct timeval tv = { .tv_sec = IO_TIMEOUT_MS / 1000 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int cmd_requests(int pport, int port, long n, long per, bool sync)
{
    signal(SIGPIPE, SIG_IGN);
    uint32_t *lat = calloc((size_t)n, sizeof(*lat));
    if (!lat)
        die("out of memory");
    int fd = -1;
    static char in[16384];
    size_t inlen = 0;
    if (sync) {
        printf("ready\n");
        fflush(stdout);
        wait_go();
    }
    double start = now_ms();
    for (long i = 0; i < n; i++) {
        double t0 = now_ms();
        if (fd < 0 || (per > 0 && i % per == 0)) {
            if (fd >= 0)
                close(fd);
            fd = connect_lo(pport, false);
            if (fd < 0)
                die("request %ld: connect to the proxy: %s", i, strerror(errno));
            set_timeouts(fd);
            inlen = 0;
        }
        char req[256], tok[32];
        snprintf(tok, sizeof(tok), "r%ld", i);
        int rl = snprintf(req, sizeof(req),
                          "GET http://127.0.0.1:%d/echo/%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n",
                          port, tok, port);
        if (send(fd, req, (size_t)rl, MSG_NOSIGNAL) != rl)
            die("request %ld: send: %s", i, strerror(errno));
        /* status line, headers, then exactly Content-Length bytes */
        char *hend = NULL;
        for (;;) {
            if (inlen >= 4 && (hend = memmem(in, inlen, "\r\n\r\n", 4)))
                break;
            if (inlen == sizeof(in))
                die("request %ld: response head too long", i);
            ssize_t r = recv(fd, in + inlen, sizeof(in) - inlen, 0);
            if (r <= 0)
                die("request %ld: %s before the response head (%zu bytes: %.*s)", i,
                    r == 0 ? "EOF" : strerror(errno), inlen, (int)(inlen < 200 ? inlen : 200), in);
            inlen += (size_t)r;
        }
        size_t hl = (size_t)(hend + 4 - in);
        if (strncmp(in, "HTTP/1.1 200 ", 13) != 0)
            die("request %ld: %.*s", i, (int)(hl < 300 ? hl : 300), in);
        size_t blen = 0;
        bool have_cl = false;
        for (char *p = in; p < in + hl;) {
            char *nl = memchr(p, '\n', (size_t)(in + hl - p));
            if (!nl)
                break;
            if (strncasecmp(p, "content-length:", 15) == 0) {
                blen = strtoul(p + 15, NULL, 10);
                have_cl = true;
            }
            p = nl + 1;
        }
        if (!have_cl)
            die("request %ld: no Content-Length", i);
        size_t want = strlen(tok) + 1;
        if (blen != want)
            die("request %ld: Content-Length %zu, expected %zu", i, blen, want);
        while (inlen < hl + blen) {
            ssize_t r = recv(fd, in + inlen, sizeof(in) - inlen, 0);
            if (r <= 0)
                die("request %ld: %s in the body", i, r == 0 ? "EOF" : strerror(errno));
            inlen += (size_t)r;
        }
        if (memcmp(in + hl, tok, want - 1) != 0 || in[hl + want - 1] != '\n')
            die("request %ld: body %.*s, expected %s", i, (int)blen, in + hl, tok);
        inlen -= hl + blen;
        if (inlen)
            die("request %ld: %zu unexpected bytes after the response", i, inlen);
        double us = (now_ms() - t0) * 1000.0;
        lat[i] = us > 4e9 ? 4000000000u : (uint32_t)us;
    }
    if (fd >= 0)
        close(fd);
    double secs = (now_ms() - start) / 1000.0;
    qsort(lat, (size_t)n, sizeof(*lat), cmp_u32);
    printf("ok %ld %.3f %u %u %u\n", n, secs, lat[n / 2], lat[(size_t)((double)n * 0.99)],
           lat[n - 1]);
    fflush(stdout);
    free(lat);
    if (sync)
        wait_go();
    return 0;
}

/* ---- flood ------------------------------------------------------------------- */

static int cmd_flood(int pport, int n)
{
    raise_nofile();
    int *fds = calloc((size_t)n, sizeof(int));
    if (!fds)
        die("out of memory");
    int k = 0;
    while (k < n) {
        int fd = connect_lo(pport, true);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                break;
            if (errno == EAGAIN) {
                usleep(1000);
                continue;
            }
            die("flood: connect: %s", strerror(errno));
        }
        fds[k++] = fd;
    }
    printf("held %d\n", k);
    fflush(stdout);
    wait_go();
    for (int i = 0; i < k; i++)
        close(fds[i]);
    printf("released %d\n", k);
    fflush(stdout);
    free(fds);
    return 0;
}

/* ---- main ---------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: cordon-load serve|tunnels|requests|flood ...");
    const char *cmd = argv[1];
    int pport = 3128, port = 0, opt;
    long n = 1, per = 0, rounds = 1;
    size_t bytes = 0;
    optind = 2;
    bool sync = false;
    while ((opt = getopt(argc, argv, "p:t:n:b:k:r:w")) != -1) {
        switch (opt) {
        case 'p': pport = atoi(optarg); break;
        case 't': port = atoi(optarg); break;
        case 'n': n = atol(optarg); break;
        case 'b': bytes = strtoul(optarg, NULL, 10); break;
        case 'k': per = atol(optarg); break;
        case 'r': rounds = atol(optarg); break;
        case 'w': sync = true; break;
        default: die("unknown option");
        }
    }
    if (n <= 0 || n > 10000000 || rounds <= 0)
        die("bad -n or -r");
    if (strcmp(cmd, "serve") == 0)
        return cmd_serve();
    if (strcmp(cmd, "tunnels") == 0)
        return cmd_tunnels(pport, port, (int)n, bytes, (int)rounds);
    if (strcmp(cmd, "requests") == 0)
        return cmd_requests(pport, port, n, per, sync);
    if (strcmp(cmd, "flood") == 0)
        return cmd_flood(pport, (int)n);
    die("unknown command %s", cmd);
}
