/* connect.c: `cordon connect HOST PORT`, the ssh ProxyCommand used inside the
 * sandbox (GIT_SSH_COMMAND points to /dev/cordon connect %h %p).
 *
 * Owns: one CONNECT through the sandbox's HTTP proxy, then relaying stdin to
 * the tunnel and the tunnel to stdout until both directions end. It replaces
 * srt's socat: no other binary is needed inside the sandbox.
 */
#include "cli.h"
#include "cordon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
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

int cli_connect_main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: cordon connect HOST PORT\n");
        return 2;
    }
    const char *host = argv[1], *port = argv[2];
    const char *proxy_port = getenv("CORDON_CONNECT_PROXY_PORT");
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = { .sin_family = AF_INET,
                             .sin_port = htons((uint16_t)(proxy_port ? atoi(proxy_port) : 3128)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) < 0) {
        fprintf(stderr, "cordon connect: cannot reach the proxy: %s\n", strerror(errno));
        return 1;
    }
    bool v6 = strchr(host, ':') != NULL;
    char req[1024];
    int n = snprintf(req, sizeof(req), "CONNECT %s%s%s:%s HTTP/1.1\r\nHost: %s%s%s:%s\r\n\r\n",
                     v6 ? "[" : "", host, v6 ? "]" : "", port, v6 ? "[" : "", host, v6 ? "]" : "",
                     port);
    if (n <= 0 || (size_t)n >= sizeof(req) || write_all(s, req, (size_t)n) < 0) {
        fprintf(stderr, "cordon connect: cannot send the request\n");
        return 1;
    }
    /* Read the response head byte by byte, so nothing of the tunnel is read
     * into this buffer. */
    char head[4096];
    size_t hl = 0;
    while (hl < sizeof(head) - 1) {
        ssize_t r = read(s, head + hl, 1);
        if (r <= 0) {
            fprintf(stderr, "cordon connect: the proxy closed the connection\n");
            return 1;
        }
        hl++;
        if (hl >= 4 && memcmp(head + hl - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    head[hl] = '\0';
    if (strncmp(head, "HTTP/1.1 200", 12) != 0 && strncmp(head, "HTTP/1.0 200", 12) != 0) {
        char *eol = strstr(head, "\r\n");
        if (eol)
            *eol = '\0';
        fprintf(stderr, "cordon connect: %s:%s refused: %s\n", host, port, head);
        return 1;
    }

    char buf[65536];
    bool in_open = true, out_open = true;
    while (out_open) {
        struct pollfd p[2] = { { .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
                               { .fd = s, .events = POLLIN } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return 1;
        }
        if (in_open && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            ssize_t r = read(STDIN_FILENO, buf, sizeof(buf));
            if (r <= 0) {
                in_open = false;
                shutdown(s, SHUT_WR);
            } else if (write_all(s, buf, (size_t)r) < 0) {
                return 1;
            }
        }
        if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t r = read(s, buf, sizeof(buf));
            if (r <= 0)
                out_open = false;
            else if (write_all(STDOUT_FILENO, buf, (size_t)r) < 0)
                return 1;
        }
    }
    return 0;
}
