/* benchsrv: the loopback HTTP/1.1 server every network comparison talks to.
 *
 *   benchsrv PORTFILE [CERT KEY]
 *       listen on 127.0.0.1 (ephemeral port, the first line of PORTFILE);
 *       with CERT and KEY (PEM, OpenSSL), also HTTPS on a second ephemeral
 *       port (the second line), the same answers inside TLS
 *
 *   GET /small         200, a 128-byte body
 *   GET /big/N         200, N bytes of body from memory (for the download)
 *   anything else      404
 *
 * One thread per connection (64 KiB stacks, 256 KiB for TLS), keep-alive
 * unless the client says "Connection: close" or speaks HTTP/1.0. A connection that sends
 * nothing is simply held open until the peer closes it, which is what the
 * "1000 open tunnels" measurement needs. The body comes from a 1 MiB buffer
 * written with send(2), fast enough (several GiB/s on loopback) not to be the
 * bottleneck of any row. Over TLS the same buffer goes through SSL_write
 * (OpenSSL's defaults: TLS 1.3, AES-256-GCM with AES-NI).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUFSZ (1 << 20)
static char *body;
static SSL_CTX *tls_ctx;

struct conn {
    int fd;
    SSL *ssl; /* NULL: plain HTTP */
};

static ssize_t conn_recv(struct conn *c, char *p, size_t n)
{
    if (c->ssl) {
        size_t got;
        if (SSL_read_ex(c->ssl, p, n, &got) == 1)
            return (ssize_t)got;
        return SSL_get_error(c->ssl, 0) == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    return recv(c->fd, p, n, 0);
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    if (c->ssl) {
        size_t w;
        return n == 0 || SSL_write_ex(c->ssl, p, n, &w) == 1 ? 0 : -1;
    }
    int fd = c->fd;
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void *serve(void *arg)
{
    struct conn *c = arg;
    int fd = c->fd;
    char buf[8192];
    size_t have = 0;
    if (c->ssl && SSL_accept(c->ssl) != 1)
        goto out;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof(buf))
                goto out;
            ssize_t r = conn_recv(c, buf + have, sizeof(buf) - have);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                goto out;
            have += (size_t)r;
        }
        size_t headlen = (size_t)(end - buf) + 4;
        char line[256];
        size_t ll = strcspn(buf, "\r");
        if (ll >= sizeof(line))
            goto out;
        memcpy(line, buf, ll);
        line[ll] = 0;
        char method[16], path[200], ver[16];
        if (sscanf(line, "%15s %199s %15s", method, path, ver) != 3)
            goto out;
        int close_after = strcmp(ver, "HTTP/1.0") == 0;
        for (char *p = buf; p < end; p++) {
            if ((p == buf || p[-1] == '\n') && strncasecmp(p, "connection:", 11) == 0) {
                char *v = p + 11;
                while (*v == ' ')
                    v++;
                close_after = strncasecmp(v, "close", 5) == 0;
            }
        }
        unsigned long long n;
        char hdr[256];
        int hl;
        if (strcmp(path, "/small") == 0) {
            n = 128;
        } else if (strncmp(path, "/big/", 5) == 0) {
            n = strtoull(path + 5, NULL, 10);
        } else {
            hl = snprintf(hdr, sizeof(hdr),
                          "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            send_all(c, hdr, (size_t)hl);
            goto out;
        }
        hl = snprintf(hdr, sizeof(hdr),
                      "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                      "Content-Length: %llu\r\n%s\r\n",
                      n, close_after ? "Connection: close\r\n" : "");
        if (n <= 4096) {
            /* Small answers in one segment, as a real server would. */
            char one[4096 + 256];
            memcpy(one, hdr, (size_t)hl);
            memcpy(one + hl, body, n);
            if (send_all(c, one, (size_t)hl + n) < 0)
                goto out;
        } else {
            if (send_all(c, hdr, (size_t)hl) < 0)
                goto out;
            while (n) {
                size_t k = n > BUFSZ ? BUFSZ : (size_t)n;
                if (send_all(c, body, k) < 0)
                    goto out;
                n -= k;
            }
        }
        if (close_after)
            goto out;
        memmove(buf, buf + headlen, have - headlen);
        have -= headlen;
    }
out:
    if (c->ssl) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    shutdown(fd, SHUT_WR);
    close(fd);
    free(c);
    return NULL;
}

static int listen_lo(unsigned *port)
{
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
        perror("benchsrv: listen");
        exit(1);
    }
    *port = ntohs(a.sin_port);
    return ls;
}

int main(int argc, char **argv)
{
    if (argc != 2 && argc != 4) {
        fprintf(stderr, "usage: benchsrv PORTFILE [CERT KEY]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    body = malloc(BUFSZ);
    if (!body)
        return 1;
    memset(body, 'x', BUFSZ);
    if (argc == 4) {
        tls_ctx = SSL_CTX_new(TLS_server_method());
        if (!tls_ctx || SSL_CTX_use_certificate_chain_file(tls_ctx, argv[2]) != 1 ||
            SSL_CTX_use_PrivateKey_file(tls_ctx, argv[3], SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(tls_ctx) != 1) {
            fprintf(stderr, "benchsrv: %s, %s: ", argv[2], argv[3]);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_CTX_set_min_proto_version(tls_ctx, TLS1_2_VERSION);
    }
    unsigned port, tls_port = 0;
    struct pollfd pf[2] = { { .fd = listen_lo(&port), .events = POLLIN },
                            { .fd = tls_ctx ? listen_lo(&tls_port) : -1, .events = POLLIN } };
    FILE *f = fopen(argv[1], "w");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    fprintf(f, "%u\n", port);
    if (tls_ctx)
        fprintf(f, "%u\n", tls_port);
    fclose(f);

    /* 64 KiB stacks for plain HTTP (1000 held connections), 256 KiB for
     * OpenSSL's handshakes. */
    pthread_attr_t attr[2];
    for (int i = 0; i < 2; i++) {
        pthread_attr_init(&attr[i]);
        pthread_attr_setdetachstate(&attr[i], PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr[i], i ? 256 * 1024 : 64 * 1024);
    }
    for (;;) {
        if (poll(pf, tls_ctx ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            perror("benchsrv: poll");
            return 1;
        }
        for (int i = 0; i < 2; i++) {
            if (pf[i].fd < 0 || !(pf[i].revents & POLLIN))
                continue;
            int fd = accept4(pf[i].fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0) {
                if (errno == EINTR || errno == ECONNABORTED || errno == EAGAIN)
                    continue;
                if (errno == EMFILE || errno == ENFILE) {
                    usleep(1000);
                    continue;
                }
                perror("benchsrv: accept");
                return 1;
            }
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            struct conn *c = calloc(1, sizeof(*c));
            if (!c) {
                close(fd);
                continue;
            }
            c->fd = fd;
            if (i == 1) {
                c->ssl = SSL_new(tls_ctx);
                if (!c->ssl || SSL_set_fd(c->ssl, fd) != 1) {
                    SSL_free(c->ssl);
                    free(c);
                    close(fd);
                    continue;
                }
            }
            pthread_t t;
            if (pthread_create(&t, &attr[i], serve, c) != 0) {
                SSL_free(c->ssl);
                free(c);
                close(fd);
            }
        }
    }
}
