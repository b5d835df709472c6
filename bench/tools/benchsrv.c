/* benchsrv: the loopback HTTP/1.1 server every network comparison talks to.
 *
 *   benchsrv PORTFILE     listen on 127.0.0.1 (ephemeral port, written to PORTFILE)
 *
 *   GET /small         200, a 128-byte body
 *   GET /big/N         200, N bytes of body from memory (for the download)
 *   anything else      404
 *
 * One thread per connection (64 KiB stacks), keep-alive unless the client
 * says "Connection: close" or speaks HTTP/1.0. A connection that sends
 * nothing is simply held open until the peer closes it, which is what the
 * "1000 open tunnels" measurement needs. The body comes from a 1 MiB buffer
 * written with send(2), fast enough (several GiB/s on loopback) not to be the
 * bottleneck of any row.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
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

static int send_all(int fd, const char *p, size_t n)
{
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
    int fd = (int)(long)arg;
    char buf[8192];
    size_t have = 0;
    for (;;) {
        char *end;
        while (!(end = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have == sizeof(buf))
                goto out;
            ssize_t r = recv(fd, buf + have, sizeof(buf) - have, 0);
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
            send_all(fd, hdr, (size_t)hl);
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
            if (send_all(fd, one, (size_t)hl + n) < 0)
                goto out;
        } else {
            if (send_all(fd, hdr, (size_t)hl) < 0)
                goto out;
            while (n) {
                size_t k = n > BUFSZ ? BUFSZ : (size_t)n;
                if (send_all(fd, body, k) < 0)
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
    shutdown(fd, SHUT_WR);
    close(fd);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: benchsrv PORTFILE\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    body = malloc(BUFSZ);
    if (!body)
        return 1;
    memset(body, 'x', BUFSZ);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t al = sizeof(a);
    if (bind(ls, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(ls, 4096) < 0 ||
        getsockname(ls, (struct sockaddr *)&a, &al) < 0) {
        perror("benchsrv: listen");
        return 1;
    }
    FILE *pf = fopen(argv[1], "w");
    if (!pf) {
        perror(argv[1]);
        return 1;
    }
    fprintf(pf, "%u\n", ntohs(a.sin_port));
    fclose(pf);

    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    for (;;) {
        int fd = accept4(ls, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno == EMFILE || errno == ENFILE) {
                usleep(1000);
                continue;
            }
            perror("benchsrv: accept");
            return 1;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        pthread_t t;
        if (pthread_create(&t, &attr, serve, (void *)(long)fd) != 0)
            close(fd);
    }
}
