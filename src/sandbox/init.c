/* init.c: the sandbox's PID 1 and the command it starts.
 *
 * Owns: init's lifecycle (wait for the id maps, build the view, bring up lo,
 * start the command, forward signals, reap orphans, report the command's
 * status) and the command's last steps before exec.
 * Invariants:
 *  - runs in the cloned child: no allocation; the plan was computed before
 *    clone(2); every failure is reported to the supervisor and ends in
 *    _exit(125) before the command is executed, never after;
 *  - init dies with the supervisor (PR_SET_PDEATHSIG, checked against a race
 *    by waiting for MSG_GO), and the pid namespace dies with init;
 *  - init is not dumpable before the command runs, so the command cannot open
 *    /proc/1/{root,cwd,fd,mem} (ptrace access mode checks, proc(5));
 *  - the command runs in a nested user and mount namespace (the mounts it sees
 *    are locked), in a new session (no controlling terminal to inject
 *    keystrokes into), with no capabilities in any set, no_new_privs, and
 *    only fds 0, 1 and 2, none of them a read-only file it could reopen for
 *    writing through /proc/self/fd (stdio.c).
 */
#include "sandbox.h"
#include "mountview.h"
#include "core/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/keyctl.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Signals init relays to the command. Terminal-generated ones go to the
 * command's process group, as a terminal would deliver them; the others go
 * to the command itself (as docker and tini do). */
static const int fwd_group[] = { SIGINT, SIGQUIT, SIGHUP, SIGWINCH };
static const int fwd_pid[] = { SIGTERM, SIGUSR1, SIGUSR2 };

static struct sync_msg g_msg; /* static: no allocation, no large stack frame */

static void send_msg(int fd, uint32_t type, int32_t code)
{
    g_msg.type = type;
    g_msg.code = code;
    (void)send(fd, &g_msg, sizeof(g_msg), MSG_NOSIGNAL);
}

/* Report a setup failure and end. What the supervisor queued and init has not
 * read (MSG_CONTINUE) is read first: closing a SOCK_SEQPACKET socket with
 * unread data makes the peer's next recvmsg() fail with ECONNRESET ahead of
 * the report (unix(7)). The supervisor reads on past that too (on_sync); this
 * only makes it rare. */
__attribute__((noreturn)) static void report_failure(int sync_fd, int32_t code)
{
    send_msg(sync_fd, MSG_ERROR, code);
    char drain[sizeof(uint32_t)];
    while (recv(sync_fd, drain, sizeof(drain), MSG_DONTWAIT) > 0)
        ;
    _exit(CORDON_EXIT_FAILURE);
}

__attribute__((noreturn, format(printf, 3, 4))) static void init_fail(int sync_fd, int code,
                                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(g_msg.text, sizeof(g_msg.text), fmt, ap);
    va_end(ap);
    if (code && n >= 0 && (size_t)n < sizeof(g_msg.text))
        snprintf(g_msg.text + n, sizeof(g_msg.text) - (size_t)n, ": %s", strerror(code));
    report_failure(sync_fd, code ? code : EINVAL);
}

static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = strlen(s);
    ssize_t w = write(fd, s, n);
    int e = errno;
    close(fd);
    if (w != (ssize_t)n) {
        errno = w < 0 ? e : EIO;
        return -1;
    }
    return 0;
}

static int loopback_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr = { 0 };
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    int r = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (r == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        r = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    int e = errno;
    close(s);
    errno = e;
    return r;
}

/* A listener on the sandbox's loopback: dual-stack [::] (only lo exists in
 * this namespace, so that is 127.0.0.1 and ::1), or 127.0.0.1 when IPv6 is
 * off. Non-blocking: the supervisor serves it from its event loop. */
static int make_listener(int port)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, zero = 0;
    if (fd >= 0) {
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                   .sin6_addr = IN6ADDR_ANY_INIT };
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&a6, sizeof(a6)) < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
            bind(fd, (struct sockaddr *)&a4, sizeof(a4)) < 0) {
            close(fd);
            return -1;
        }
    }
    if (listen(fd, 4096) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Create the proxy listeners and hand them to the supervisor. */
static void pass_listeners(int sync_fd)
{
    int fds[2] = { make_listener(CORDON_HTTP_PROXY_PORT), make_listener(CORDON_SOCKS_PROXY_PORT) };
    if (fds[0] < 0 || fds[1] < 0)
        init_fail(sync_fd, errno, "cannot create the proxy listeners in the sandbox");
    union {
        char buf[CMSG_SPACE(sizeof(fds))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    g_msg.type = MSG_LISTENERS;
    g_msg.code = 0;
    struct iovec iov = { .iov_base = &g_msg, .iov_len = sizeof(g_msg) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(fds));
    memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    if (sendmsg(sync_fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(g_msg))
        init_fail(sync_fd, errno, "cannot pass the proxy listeners to the supervisor");
    close(fds[0]);
    close(fds[1]);
}

/* The DNS server's UDP socket: dual-stack [::] like make_listener (a stub
 * that asks 127.0.0.53 or ::1 reaches it too), or 127.0.0.1. */
static int make_udp(int port)
{
    int fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int zero = 0;
    if (fd >= 0) {
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                   .sin6_addr = IN6ADDR_ANY_INIT };
        if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) < 0 ||
            bind(fd, (struct sockaddr *)&a6, sizeof(a6)) < 0) {
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) < 0) {
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* network.transparent (capture.h): addresses, routes and the nftables table
 * of this network namespace, then the transparent listener and the DNS
 * sockets, passed to the supervisor with MSG_CAPTURE. A failure is reported
 * and the run goes on without capture: the namespace still has no way out
 * but cordon's listeners (fail closed), programs that ignore the proxy
 * variables just get no network, as without capture. */
static void pass_capture(const struct sandbox_plan *plan, int sync_fd)
{
    if (!plan->capture.on)
        return;
    bool ipv6 = false;
    int fds[CAPTURE_NFDS] = { -1, -1, -1, -1 };
    g_msg.text[0] = '\0';
    int r = capture_apply(&plan->capture, &ipv6, g_msg.text, sizeof(g_msg.text));
    if (r == 0) {
        fds[0] = make_listener(CORDON_TRANSPARENT_PORT);
        fds[1] = fds[0] < 0 ? -1 : make_udp(CORDON_DNS_PORT);
        fds[2] = fds[1] < 0 ? -1 : make_listener(CORDON_DNS_PORT);
        fds[3] = fds[2] < 0 ? -1 : socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fds[3] >= 0) {
            struct timeval tv = { .tv_sec = 5 };
            setsockopt(fds[3], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        }
        if (fds[3] < 0) {
            r = errno ? -errno : -EIO;
            snprintf(g_msg.text, sizeof(g_msg.text), "cannot create the DNS and capture "
                                                     "sockets: %s", strerror(-r));
        }
    }
    union {
        char buf[CMSG_SPACE(sizeof(fds))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    g_msg.type = MSG_CAPTURE;
    g_msg.code = r < 0 ? r : (ipv6 ? CAPTURE_F_IPV6 : 0);
    struct iovec iov = { .iov_base = &g_msg, .iov_len = sizeof(g_msg) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (r == 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(fds));
        memcpy(CMSG_DATA(cm), fds, sizeof(fds));
    }
    if (sendmsg(sync_fd, &mh, MSG_NOSIGNAL) != (ssize_t)sizeof(g_msg) && r == 0)
        init_fail(sync_fd, errno, "cannot pass the DNS and capture sockets to the supervisor");
    for (int i = 0; i < CAPTURE_NFDS; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

ssize_t sync_send(int sock, const struct sync_msg *m, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = { .iov_base = (void *)m, .iov_len = sizeof(*m) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    if (fd >= 0) {
        mh.msg_control = u.buf;
        mh.msg_controllen = sizeof(u.buf);
        struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    }
    return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* Pass one fd (or none, fd < 0) with a message of type and code. */
static int send_msg_fd(int sock, uint32_t type, int32_t code, int fd)
{
    g_msg.type = type;
    g_msg.code = code;
    g_msg.text[0] = '\0';
    return sync_send(sock, &g_msg, fd) == (ssize_t)sizeof(g_msg) ? 0 : -1;
}

/* network.hostPorts (ports.h): a listener on each port of the sandbox's
 * loopback, served by the supervisor, which dials the host's. And, for
 * network.allowUnixSockets (unixsock.h), a sock_diag socket of this
 * namespace, where the supervisor sees which unix sockets are the
 * sandbox's own. */
static void pass_local_services(const struct sandbox_plan *plan, int sync_fd)
{
    for (size_t i = 0; i < plan->nhost_ports; i++) {
        int fd = make_listener(plan->host_ports[i]);
        if (fd < 0)
            init_fail(sync_fd, errno, "cannot listen on port %u in the sandbox "
                                      "(network.hostPorts)", plan->host_ports[i]);
        if (send_msg_fd(sync_fd, MSG_HOSTPORT, (int32_t)i, fd) < 0)
            init_fail(sync_fd, errno, "cannot pass a host port listener to the supervisor");
        close(fd);
    }
    if (plan->seccomp_opts.emulate_unix_connect) {
        int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
        if (send_msg_fd(sync_fd, MSG_UNIXDIAG, fd < 0 ? -errno : 0, fd) < 0)
            init_fail(sync_fd, errno, "cannot pass the sock_diag socket to the supervisor");
        if (fd >= 0)
            close(fd);
    }
}

/* MSG_PUBLISH (ports.h): connect to port of the sandbox's loopback,
 * 127.0.0.1 then ::1, and answer with the socket or -errno. A connection
 * on lo completes or is refused at once; a listener whose backlog is full
 * gets a second at most (signals wait for init meanwhile). */
static void publish_connect(int sync_fd, int port)
{
    int r = -ECONNREFUSED, fd = -1;
    for (int v6 = 0; v6 < 2 && r == -ECONNREFUSED; v6++) {
        fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            r = -errno;
            break;
        }
        struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                                   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
        int c = v6 ? connect(fd, (struct sockaddr *)&a6, sizeof(a6))
                   : connect(fd, (struct sockaddr *)&a4, sizeof(a4));
        r = c == 0 ? 0 : -errno;
        if (r == -EINPROGRESS) {
            struct pollfd pf = { .fd = fd, .events = POLLOUT };
            int e = 0;
            socklen_t el = sizeof(e);
            r = poll(&pf, 1, 1000) <= 0 ? -ETIMEDOUT
                : getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0 ? -errno
                                                                       : -e;
        }
        if (r < 0) {
            close(fd);
            fd = -1;
        }
    }
    (void)send_msg_fd(sync_fd, MSG_PUBLISHED, r, r == 0 ? fd : -1);
    if (fd >= 0)
        close(fd);
}

/* ---- the command --------------------------------------------------------- */

static int drop_capabilities(void)
{
    for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
        if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
            return -1;
    /* Root gets no capabilities back on exec, and nothing can undo that. */
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                         SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                         SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
        return -1;
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
        return -1;
    struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
    struct __user_cap_data_struct data[2] = { 0 };
    return (int)syscall(SYS_capset, &hdr, data);
}

static const char *env_get(char *const *envp, const char *name)
{
    size_t n = strlen(name);
    for (; *envp; envp++)
        if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
            return *envp + n + 1;
    return NULL;
}

static void try_exec(const struct sandbox_plan *plan, const char *path)
{
    char **argv = plan->argv + 1;
    execve(path, argv, plan->envp);
    if (errno == ENOEXEC) {
        /* A script without "#!": run it with /bin/sh, as execvp(3) does. */
        plan->argv[1] = (char *)path;
        execve("/bin/sh", plan->argv, plan->envp);
        errno = ENOEXEC;
    }
}

__attribute__((noreturn)) static void exec_command(const struct sandbox_plan *plan)
{
    if (plan->disabled & SANDBOX_SHELL_FALLBACK) {
        /* -c: srt runs the string with bash; /bin/sh where there is none. */
        execve(plan->argv[1], plan->argv + 1, plan->envp);
        plan->argv[1] = (char *)"/bin/sh";
    }
    const char *file = plan->argv[1];
    int saved = ENOENT;
    bool eacces = false;

    if (strchr(file, '/')) {
        try_exec(plan, file);
        saved = errno;
    } else {
        const char *path = env_get(plan->envp, "PATH");
        if (!path)
            path = "/usr/local/bin:/usr/bin:/bin";
        char buf[4096];
        const char *p = path;
        for (;;) {
            const char *end = strchr(p, ':');
            size_t len = end ? (size_t)(end - p) : strlen(p);
            int n = len == 0 ? snprintf(buf, sizeof(buf), "%s", file)
                             : snprintf(buf, sizeof(buf), "%.*s/%s", (int)len, p, file);
            if (n > 0 && (size_t)n < sizeof(buf)) {
                try_exec(plan, buf);
                switch (errno) {
                case EACCES:
                    eacces = true;
                    break;
                case ENOENT:
                case ENOTDIR:
                case ESTALE:
                case ENODEV:
                case ETIMEDOUT:
                    break;
                default:
                    saved = errno;
                    goto out;
                }
            }
            if (!end)
                break;
            p = end + 1;
        }
        if (eacces)
            saved = EACCES;
    }
out:;
    /* As a shell: 127 when not found, 126 when found but not runnable. */
    char msg[512];
    int n;
    if (saved == ENOENT && !strchr(file, '/'))
        n = snprintf(msg, sizeof(msg), "cordon: %s: command not found\n", file);
    else
        n = snprintf(msg, sizeof(msg), "cordon: %s: %s\n", file, strerror(saved));
    if (n > 0)
        (void)!write(STDERR_FILENO, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    _exit(saved == ENOENT ? 127 : 126);
}

/* Report a setup failure of the command child to init over errfd. */
__attribute__((noreturn)) static void child_fail(int errfd, const char *what)
{
    int e = errno;
    char msg[256];
    int n = snprintf(msg, sizeof(msg), "%s: %s", what, strerror(e));
    if (n > 0)
        (void)!write(errfd, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1);
    _exit(CORDON_EXIT_FAILURE);
}

/* Pass one fd over a unix socket (SCM_RIGHTS) with a sync message. */
static int send_fd(int sock, uint32_t type, int fd)
{
    struct sync_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    memset(&u, 0, sizeof(u));
    struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                         .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof(int));
    return sendmsg(sock, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -1;
}

/* Close every fd from 3 up except the ones in keep (ascending, may hold -1). */
static int close_others(const int *keep, size_t n)
{
    unsigned from = 3;
    for (size_t i = 0; i < n; i++) {
        if (keep[i] < (int)from)
            continue;
        if ((unsigned)keep[i] > from && close_range(from, (unsigned)keep[i] - 1, 0) < 0)
            return -1;
        from = (unsigned)keep[i] + 1;
    }
    return close_range(from, ~0U, 0);
}

__attribute__((noreturn)) static void command_main(const struct sandbox_plan *plan, int gofd,
                                                   int errfd, int notifyfd)
{
    char c;
    if (read(gofd, &c, 1) != 1)
        _exit(CORDON_EXIT_FAILURE); /* init gave up */
    close(gofd);
    const unsigned off = plan->disabled;

    if (!(off & LAYER_SETSID) && setsid() < 0)
        child_fail(errfd, "setsid");
    /* Only 0, 1, 2, the error pipe and the notify socket (both
     * close-on-exec) survive. */
    if (!(off & LAYER_CLOSE_FDS)) {
        int keep[2] = { errfd < notifyfd ? errfd : notifyfd, errfd < notifyfd ? notifyfd : errfd };
        if (close_others(keep, 2) < 0)
            child_fail(errfd, "close_range");
    }
    if (harden_rlimits_apply(plan->limits) < 0)
        child_fail(errfd, "setting resource limits");
    if (!(off & LAYER_CAPS) && drop_capabilities() < 0)
        child_fail(errfd, "dropping capabilities");
    if (!(off & LAYER_NNP) && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        child_fail(errfd, "no_new_privs");
    if (!(off & LAYER_LANDLOCK) && plan->landlock_abi > 0 &&
        harden_landlock_apply(plan->landlock_abi, plan->ll, plan->nll) < 0)
        child_fail(errfd, "applying Landlock");
    if (chdir(plan->cwd) < 0)
        child_fail(errfd, "entering the working directory");
    umask(plan->umask);
    if (sigprocmask(SIG_SETMASK, &plan->sigmask, NULL) < 0)
        child_fail(errfd, "restoring the signal mask");
    /* The supervisor ignores SIGPIPE while it serves; the command gets the
     * caller's disposition (ignored stays ignored, as exec keeps it). */
    if (!plan->sigpipe_ignored)
        signal(SIGPIPE, SIG_DFL);
    /* Last: from here on only exec. A failed exec reports 126/127 through
     * write(2) and _exit(2), which the filter allows. */
    if (plan->seccomp.insns) {
        int lfd = harden_seccomp_apply(&plan->seccomp);
        if (lfd < 0)
            child_fail(errfd, "installing the seccomp filter");
        /* The listener goes to the supervisor (through init); the filter
         * lets sendmsg and close through. A notification made before the
         * supervisor holds it simply waits. */
        if (plan->seccomp.notify && lfd > 0) {
            if (send_fd(notifyfd, MSG_NOTIFY, lfd) < 0)
                child_fail(errfd, "passing the seccomp listener");
            close(lfd);
        }
    }
    close(notifyfd);
    exec_command(plan);
}

/* Start the command in a nested user and mount namespace and map the same ids
 * into it. Returns its pid; on failure reports and exits. */
static pid_t spawn_command(const struct sandbox_plan *plan, int sync_fd)
{
    int errp[2], gop[2], ntp[2];
    if (pipe2(errp, O_CLOEXEC) < 0 || pipe2(gop, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ntp) < 0)
        init_fail(sync_fd, errno, "pipe");
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
    if (pid < 0)
        init_fail(sync_fd, errno, "cannot create the command's nested user namespace");
    if (pid == 0) {
        close(errp[0]);
        close(gop[1]);
        close(ntp[0]);
        close(sync_fd);
        command_main(plan, gop[0], errp[1], ntp[1]);
    }
    close(errp[1]);
    close(gop[0]);
    close(ntp[1]);

    char path[64], map[64];
    snprintf(path, sizeof(path), "/proc/%d/setgroups", pid);
    if (write_file(path, "deny") < 0)
        goto mapfail;
    snprintf(path, sizeof(path), "/proc/%d/uid_map", pid);
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)plan->uid, (unsigned)plan->uid);
    if (write_file(path, map) < 0)
        goto mapfail;
    snprintf(path, sizeof(path), "/proc/%d/gid_map", pid);
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)plan->gid, (unsigned)plan->gid);
    if (write_file(path, map) < 0)
        goto mapfail;
    /* Only now: /proc/<pid> of a non-dumpable process's child is owned by
     * root, so the maps above could not be written after this. The command
     * waits for "g", so it never runs while init is still dumpable. */
    if (!(plan->disabled & LAYER_DUMPABLE) && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
        goto mapfail;
    if (write(gop[1], "g", 1) != 1)
        goto mapfail;
    close(gop[1]);

    /* The seccomp listener, if the filter has one, on its way to the
     * supervisor. EOF: none (or the child failed; errp tells). */
    {
        struct sync_msg m;
        union {
            char buf[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = { .iov_base = &m, .iov_len = sizeof(m) };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
                             .msg_controllen = sizeof(u.buf) };
        ssize_t k;
        do {
            k = recvmsg(ntp[0], &mh, MSG_CMSG_CLOEXEC);
        } while (k < 0 && errno == EINTR);
        struct cmsghdr *cm = k == (ssize_t)sizeof(m) ? CMSG_FIRSTHDR(&mh) : NULL;
        if (cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS &&
            cm->cmsg_len == CMSG_LEN(sizeof(int))) {
            int lfd;
            memcpy(&lfd, CMSG_DATA(cm), sizeof(int));
            if (send_fd(sync_fd, MSG_NOTIFY, lfd) < 0) {
                /* Without its listener every refused syscall would fail
                 * with ENOSYS instead of its errno: stop here. */
                kill(pid, SIGKILL);
                init_fail(sync_fd, errno, "cannot pass the seccomp listener to the supervisor");
            }
            close(lfd);
        }
        close(ntp[0]);
    }

    /* EOF means exec succeeded (the pipe is close-on-exec) or the child died
     * before reporting: the latter shows up as its exit status. */
    ssize_t n;
    do {
        n = read(errp[0], g_msg.text, sizeof(g_msg.text) - 1);
    } while (n < 0 && errno == EINTR);
    close(errp[0]);
    if (n > 0) {
        g_msg.text[n] = '\0';
        kill(pid, SIGKILL);
        report_failure(sync_fd, EPERM);
    }
    return pid;

mapfail:;
    int e = errno;
    kill(pid, SIGKILL);
    init_fail(sync_fd, e, "cannot map ids into the command's user namespace");
}

__attribute__((noreturn)) void sandbox_init_main(const struct sandbox_plan *plan, int sync_fd)
{
    /* Die with the supervisor. If it died before this line, MSG_GO never
     * comes and recv() sees EOF. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
        _exit(CORDON_EXIT_FAILURE);
    /* Nothing the caller left open reaches the sandbox. */
    if (sync_fd > 3 && close_range(3, (unsigned)sync_fd - 1, 0) < 0)
        _exit(CORDON_EXIT_FAILURE);
    if (close_range((unsigned)sync_fd + 1, ~0U, 0) < 0)
        _exit(CORDON_EXIT_FAILURE);
    /* This process is a copy of the supervisor: wipe the copy of the
     * caller's environment that holds masked credentials (the secure
     * copies already read as zeros here: MADV_WIPEONFORK). */
    for (char **v = plan->scrub_env; v && *v; v++) {
        size_t l = strlen(*v);
        for (int pass = 0; pass < 2; pass++) {
            char *const *e = pass ? plan->src_envp : environ;
            for (size_t i = 0; e && e[i]; i++)
                if (strncmp(e[i], *v, l) == 0 && e[i][l] == '=')
                    explicit_bzero(e[i] + l + 1, strlen(e[i] + l + 1));
        }
    }

    struct sync_msg go;
    ssize_t n;
    do {
        n = recv(sync_fd, &go, sizeof(go), 0);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(go) || go.type != MSG_GO)
        _exit(CORDON_EXIT_FAILURE);

    /* Before the view hides the host's tree, where their names still lead
     * (stdio.c). */
    static int stdio_keep[3];
    if (stdio_confine(stdio_keep, g_msg.text, sizeof(g_msg.text)) < 0)
        report_failure(sync_fd, EBADF);
    umask(0);
    if (mountview_build(plan, plan->scratch, g_msg.text, sizeof(g_msg.text)) < 0)
        report_failure(sync_fd, EPERM);
    if (chdir(plan->cwd) < 0)
        init_fail(sync_fd, errno, "the working directory %s is not visible in the sandbox "
                                  "(is it under a denyRead path?)", plan->cwd);
    if (loopback_up() < 0)
        init_fail(sync_fd, errno, "cannot bring up the loopback interface");
    pass_listeners(sync_fd);
    pass_capture(plan, sync_fd);
    pass_local_services(plan, sync_fd);
    /* A fresh, empty session keyring: keyrings are not namespaced, and the
     * caller's session keyring (Kerberos tickets, ecryptfs keys) must not be
     * reachable even if keyctl got past seccomp (escape class #8). */
    if (!(plan->disabled & LAYER_KEYRING) &&
        syscall(SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, NULL) < 0)
        init_fail(sync_fd, errno, "cannot join a new session keyring");

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    for (size_t i = 0; i < ARRAY_SIZE(fwd_group); i++)
        sigaddset(&set, fwd_group[i]);
    for (size_t i = 0; i < ARRAY_SIZE(fwd_pid); i++)
        sigaddset(&set, fwd_pid[i]);
    if (sigprocmask(SIG_BLOCK, &set, NULL) < 0)
        init_fail(sync_fd, errno, "sigprocmask");
    int sfd = signalfd(-1, &set, SFD_CLOEXEC);
    if (sfd < 0)
        init_fail(sync_fd, errno, "signalfd");

    /* For a root caller, MSG_CONTINUE carries the file through which init
     * joins the pids cgroup the supervisor made meanwhile; the command
     * starts only after that. */
    struct sync_msg cont = { 0 };
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } cu;
    struct iovec ciov = { .iov_base = &cont, .iov_len = sizeof(cont) };
    struct msghdr cmh = { .msg_iov = &ciov, .msg_iovlen = 1 };
    do {
        cmh.msg_control = cu.buf;
        cmh.msg_controllen = sizeof(cu.buf);
        n = recvmsg(sync_fd, &cmh, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n != (ssize_t)sizeof(cont) || cont.type != MSG_CONTINUE)
        _exit(CORDON_EXIT_FAILURE);
    struct cmsghdr *ccm = CMSG_FIRSTHDR(&cmh);
    if (ccm && ccm->cmsg_level == SOL_SOCKET && ccm->cmsg_type == SCM_RIGHTS &&
        ccm->cmsg_len == CMSG_LEN(sizeof(int))) {
        int join;
        memcpy(&join, CMSG_DATA(ccm), sizeof(int));
        if (harden_pids_cgroup_join(join) < 0)
            init_fail(sync_fd, errno, "cannot join the pids cgroup");
        close(join);
    }

    pid_t cmd = spawn_command(plan, sync_fd);

    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = sfd, .events = POLLIN },
            { .fd = sync_fd, .events = POLLIN },
        };
        if (poll(pfd, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            kill(-1, SIGKILL);
            _exit(CORDON_EXIT_FAILURE);
        }
        if (pfd[1].revents) {
            /* After MSG_CONTINUE the supervisor sends only MSG_PUBLISH;
             * anything else (EOF, an error) means it is gone. Dying takes
             * the whole pid namespace with us. */
            struct sync_msg req;
            ssize_t k = recv(sync_fd, &req, sizeof(req), MSG_DONTWAIT);
            if (k < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (k != (ssize_t)sizeof(req) || req.type != MSG_PUBLISH)
                _exit(CORDON_EXIT_FAILURE);
            publish_connect(sync_fd, req.code);
            continue;
        }
        if (!(pfd[0].revents & POLLIN))
            continue;
        struct signalfd_siginfo si;
        if (read(sfd, &si, sizeof(si)) != (ssize_t)sizeof(si))
            continue;
        if (si.ssi_signo != SIGCHLD) {
            bool group = false;
            for (size_t i = 0; i < ARRAY_SIZE(fwd_group); i++)
                group |= (int)si.ssi_signo == fwd_group[i];
            if (kill(group ? -cmd : cmd, (int)si.ssi_signo) < 0 && group)
                kill(cmd, (int)si.ssi_signo);
            continue;
        }
        for (;;) {
            int st;
            pid_t p = waitpid(-1, &st, WNOHANG);
            if (p <= 0)
                break;
            if (p == cmd) {
                stdio_sync(stdio_keep);
                send_msg(sync_fd, MSG_EXIT, st);
                _exit(0);
            }
        }
    }
}
