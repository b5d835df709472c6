/* unixsock.c: see unixsock.h. */
#include "unixsock.h"

#include "core/cleanup.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/netlink.h>
#include <linux/openat2.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_getfd
#define SYS_pidfd_getfd 438
#endif
#ifndef PIDFD_THREAD
#define PIDFD_THREAD O_EXCL /* Linux 6.9: a pidfd for a thread that is not a leader */
#endif

/* No answer is sent: the caller is gone. */
#define NO_ANSWER 1

struct entry {
    const char *path;  /* as loaded: absolute, lexically normalised */
    char *canon;       /* the same with the symlinks of its existing part resolved */
};

struct pending;

struct unixsock {
    uv_loop_t *loop;
    struct audit *audit;
    struct entry *v;
    size_t n;
    int diag;          /* NETLINK_SOCK_DIAG of the sandbox's network namespace, or -1 */
    uint32_t seq;
    struct pending *pending;
    size_t npending;
    bool freeing;
};

/* A blocking connect that did not complete at once: the caller waits for
 * its answer while the loop watches the socket (TCP handshake) or retries
 * (a full unix backlog). */
struct pending {
    struct pending *next, *prev;
    struct unixsock *u;
    uint64_t id;
    int notify_fd;
    int fd;            /* the caller's socket (our duplicate) */
    int keep;          /* the O_PATH descriptor addr names, or -1 */
    struct sockaddr_storage addr;
    socklen_t len;
    bool tcp;
    bool done;
    uint64_t deadline; /* the caller's own SO_SNDTIMEO, as a loop time; 0: none */
    int handles;
    uv_poll_t poll;
    uv_timer_t timer;
};

bool unixsock_is_connect(int nr)
{
    return nr == SYS_connect;
}

/* ---- paths ---------------------------------------------------------------- */

/* realpath(3) of the longest existing ancestor, with the rest appended. */
static char *canonical(const char *path)
{
    char *r = realpath(path, NULL);
    if (r)
        return r;
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return strdup(path);
    for (char *slash = strrchr(buf, '/'); slash; slash = strrchr(buf, '/')) {
        *slash = '\0';
        char *head = realpath(*buf ? buf : "/", NULL);
        if (!head)
            continue;
        const char *rest = path + (slash - buf) + 1;
        char *out = NULL;
        if (asprintf(&out, "%s%s%s", head, strcmp(head, "/") == 0 ? "" : "/", rest) < 0)
            out = NULL;
        free(head);
        return out;
    }
    return strdup(path);
}

/* Is s dir itself or beneath it? *rest: what follows dir ("" for itself). */
static bool beneath(const char *dir, const char *s, const char **rest)
{
    if (strcmp(dir, "/") == 0) {
        *rest = s + 1;
        return s[0] == '/';
    }
    size_t n = strlen(dir);
    if (strncmp(dir, s, n) != 0 || (s[n] != '\0' && s[n] != '/'))
        return false;
    *rest = s[n] ? s + n + 1 : s + n;
    return true;
}

static int openat2_(int dirfd, const char *path, uint64_t resolve)
{
    struct open_how how = { .flags = O_PATH | O_CLOEXEC, .resolve = resolve };
    int fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
    return fd < 0 ? -errno : fd;
}

/* The path as the kernel would resolve it for the caller: in its root, the
 * final symlink followed (connect(2) follows it). */
static int sandbox_open(int rootfd, const char *full)
{
    const char *rel = full[0] == '/' ? full + 1 : full;
    return openat2_(rootfd, *rel ? rel : ".", RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS);
}

/* A listed socket on the host: the entry's canonical path and the rest
 * beneath it, with no symlink anywhere, so that what the sandbox writes
 * (in a listed directory that is also a write root) cannot lead elsewhere. */
static int host_open(const struct entry *e, const char *rest)
{
    int dfd = openat2_(AT_FDCWD, e->canon, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    if (dfd < 0 || !*rest)
        return dfd;
    int fd = openat2_(dfd, rest, RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS);
    close(dfd);
    return fd;
}

/* Where fd is, as the sandbox's view names it (proc(5): the link of an fd
 * opened under another mount namespace's root reads as that view's path). */
static bool fd_path(int fd, char *out, size_t n)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, out, n - 1);
    if (k <= 0 || out[0] != '/')
        return false;
    out[k] = '\0';
    return true;
}

/* A sockaddr_un that names fd's object through /proc/self/fd: the kernel
 * connects to exactly the inode resolved and judged, never re-walking the
 * caller's path. */
static socklen_t proc_addr(int fd, struct sockaddr_storage *ss)
{
    struct sockaddr_un *sa = (struct sockaddr_un *)ss;
    memset(ss, 0, sizeof(*ss));
    sa->sun_family = AF_UNIX;
    int k = snprintf(sa->sun_path, sizeof(sa->sun_path), "/proc/self/fd/%d", fd);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)k + 1);
}

/* ---- whose socket is it? -------------------------------------------------- */

/* Is st (a socket file) bound by a socket of the sandbox's network
 * namespace? sock_diag(7) lists that namespace's unix sockets with the
 * device and inode of their file (UNIX_DIAG_VFS). The inode comes as 32
 * bits: a file whose inode number needs more is never taken for the
 * sandbox's own (fail closed). */
static bool own_socket(struct unixsock *u, const struct stat *st)
{
    if (u->diag < 0 || st->st_ino > UINT32_MAX)
        return false;
    struct {
        struct nlmsghdr nlh;
        struct unix_diag_req r;
    } req = {
        .nlh = { .nlmsg_len = sizeof(req), .nlmsg_type = SOCK_DIAG_BY_FAMILY,
                 .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = ++u->seq },
        .r = { .sdiag_family = AF_UNIX, .udiag_states = ~0u, .udiag_show = UDIAG_SHOW_VFS },
    };
    if (send(u->diag, &req, sizeof(req), 0) != (ssize_t)sizeof(req))
        return false;
    bool found = false;
    static char buf[32768] __attribute__((aligned(NLMSG_ALIGNTO)));
    for (;;) {
        ssize_t k = recv(u->diag, buf, sizeof(buf), 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return false; /* timed out or failed: not known to be ours */
        size_t left = (size_t)k;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_seq != u->seq)
                continue; /* an earlier dump's leftovers */
            if (h->nlmsg_type == NLMSG_DONE)
                return found;
            if (h->nlmsg_type == NLMSG_ERROR)
                return false;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(struct unix_diag_msg)))
                continue;
            struct unix_diag_msg *m = NLMSG_DATA(h);
            unsigned alen = h->nlmsg_len - NLMSG_LENGTH(sizeof(*m));
            for (struct rtattr *a = (struct rtattr *)(m + 1); RTA_OK(a, alen);
                 a = RTA_NEXT(a, alen)) {
                if (a->rta_type != UNIX_DIAG_VFS || RTA_PAYLOAD(a) < sizeof(struct unix_diag_vfs))
                    continue;
                struct unix_diag_vfs vfs;
                memcpy(&vfs, RTA_DATA(a), sizeof(vfs));
                /* the kernel's dev_t: 12 bits of major above 20 of minor */
                dev_t dev = makedev(vfs.udiag_vfs_dev >> 20, vfs.udiag_vfs_dev & 0xfffff);
                if (vfs.udiag_vfs_ino == st->st_ino && dev == st->st_dev)
                    found = true;
            }
        }
    }
}

/* ---- performing the connect ----------------------------------------------- */

static void answer(struct seccomp_notif_resp *resp, int r)
{
    resp->val = 0;
    resp->error = r < 0 ? r : 0;
    resp->flags = 0;
}

static void send_answer(int notify_fd, uint64_t id, int r)
{
    struct seccomp_notif_resp resp = { .id = id };
    answer(&resp, r);
    (void)ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp); /* ENOENT: the caller is gone */
}

/* connect(2) on the caller's socket, 0 or -errno. A blocking socket gets a
 * one-tick send timeout for the call, which is what bounds connect() for TCP
 * and unix alike (socket(7) SO_SNDTIMEO; tcp: EINPROGRESS after it, unix:
 * EAGAIN with a full backlog), so the supervisor's loop never waits on it. */
static int connect_now(int fd, const struct sockaddr_storage *a, socklen_t len, bool blocking,
                       uint64_t *timeout_ms)
{
    struct timeval old = { 0 }, tick = { .tv_sec = 0, .tv_usec = 1 };
    socklen_t ol = sizeof(old);
    bool swapped = blocking && getsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old, &ol) == 0 &&
                   setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tick, sizeof(tick)) == 0;
    if (blocking && !swapped)
        return -EIO; /* never block the loop */
    int r = connect(fd, (const struct sockaddr *)a, len) < 0 ? -errno : 0;
    if (swapped)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &old, sizeof(old));
    if (timeout_ms)
        *timeout_ms = (uint64_t)old.tv_sec * 1000 + (uint64_t)old.tv_usec / 1000;
    return r;
}

static void pending_closed(uv_handle_t *h)
{
    struct pending *p = h->data;
    if (--p->handles > 0)
        return;
    struct unixsock *u = p->u;
    free(p);
    if (--u->npending == 0 && u->freeing) {
        for (size_t i = 0; i < u->n; i++)
            free(u->v[i].canon);
        free(u->v);
        free(u);
    }
}

static void finish(struct pending *p, int r)
{
    if (p->done)
        return;
    p->done = true;
    if (r != NO_ANSWER)
        send_answer(p->notify_fd, p->id, r);
    if (p->next)
        p->next->prev = p->prev;
    if (p->prev)
        p->prev->next = p->next;
    else
        p->u->pending = p->next;
    uv_close((uv_handle_t *)&p->timer, pending_closed);
    if (p->tcp)
        uv_close((uv_handle_t *)&p->poll, pending_closed);
    close(p->fd);
    if (p->keep >= 0)
        close(p->keep);
}

static void on_ready(uv_poll_t *h, int status, int events)
{
    struct pending *p = h->data;
    (void)events;
    int e = 0;
    socklen_t el = sizeof(e);
    if (status < 0 || getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
        e = EIO;
    finish(p, -e);
}

static void on_tick(uv_timer_t *t)
{
    struct pending *p = t->data;
    if (ioctl(p->notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &p->id) < 0) {
        finish(p, NO_ANSWER);
        return;
    }
    if (p->deadline && uv_now(p->u->loop) >= p->deadline) {
        /* what the kernel says when the caller's own send timeout ends */
        finish(p, p->tcp ? -EINPROGRESS : -EAGAIN);
        return;
    }
    if (p->tcp)
        return;
    int r = connect_now(p->fd, &p->addr, p->len, true, NULL);
    if (r != -EAGAIN && r != -EINTR)
        finish(p, r);
}

/* Connect fd (the caller's socket) to addr: answered in resp now (0), or
 * later (1). Takes ownership of fd and keep. */
static int begin(struct unixsock *u, int notify_fd, uint64_t id, int fd, int keep,
                 const struct sockaddr_storage *addr, socklen_t len,
                 struct seccomp_notif_resp *resp)
{
    int fl = fcntl(fd, F_GETFL);
    bool blocking = fl >= 0 && !(fl & O_NONBLOCK);
    uint64_t timeout_ms = 0;
    int r = connect_now(fd, addr, len, blocking, &timeout_ms);
    bool wait = blocking && (r == -EINPROGRESS || r == -EALREADY || r == -EAGAIN || r == -EINTR);
    struct pending *p = wait && !u->freeing ? calloc(1, sizeof(*p)) : NULL;
    if (!p) {
        close(fd);
        if (keep >= 0)
            close(keep);
        answer(resp, wait ? -ENOMEM : r);
        return 0;
    }
    *p = (struct pending){ .u = u, .id = id, .notify_fd = notify_fd, .fd = fd, .keep = keep,
                           .addr = *addr, .len = len,
                           .tcp = r == -EINPROGRESS || r == -EALREADY,
                           .deadline = timeout_ms ? uv_now(u->loop) + timeout_ms : 0 };
    uv_timer_init(u->loop, &p->timer);
    p->timer.data = p;
    p->handles = 1;
    if (p->tcp) {
        if (uv_poll_init_socket(u->loop, &p->poll, fd) == 0) {
            p->poll.data = p;
            p->handles++;
            uv_poll_start(&p->poll, UV_WRITABLE, on_ready);
        } else {
            p->tcp = false; /* cannot watch it: retry it like a unix connect */
        }
    }
    /* TCP: check now and then that the caller still waits (and its own
     * timeout); unix: retry. */
    uint64_t every = p->tcp ? (p->deadline ? 50 : 1000) : 10;
    uv_timer_start(&p->timer, on_tick, every, every);
    p->next = u->pending;
    if (p->next)
        p->next->prev = p;
    u->pending = p;
    u->npending++;
    return 1;
}

/* ---- one connect() --------------------------------------------------------- */

/* The caller's socket, duplicated into this process (the same open file
 * description). pid is a thread id. */
static int caller_fd(pid_t tid, int fd)
{
    int pfd = (int)syscall(SYS_pidfd_open, tid, PIDFD_THREAD);
    if (pfd < 0 && errno == EINVAL)
        pfd = (int)syscall(SYS_pidfd_open, tid, 0);
    if (pfd < 0 && errno == EINVAL) {
        /* a thread on a kernel without PIDFD_THREAD: its thread group's */
        char path[64], line[256];
        snprintf(path, sizeof(path), "/proc/%d/status", tid);
        FILE *f = fopen(path, "re");
        pid_t tgid = 0;
        while (f && fgets(line, sizeof(line), f))
            if (sscanf(line, "Tgid: %d", &tgid) == 1)
                break;
        if (f)
            fclose(f);
        pfd = tgid > 0 ? (int)syscall(SYS_pidfd_open, tgid, 0) : -1;
    }
    if (pfd < 0)
        return -errno;
    int r = (int)syscall(SYS_pidfd_getfd, pfd, fd, 0);
    int e = errno;
    close(pfd);
    return r < 0 ? -e : r;
}

static void record(struct unixsock *u, bool allow, const char *path, const char *target,
                   const char *rule, const char *reason, pid_t pid)
{
    json_t *f = json_pack("{s:o}", "path", audit_str(path));
    if (!f)
        return;
    if (target && strcmp(target, path) != 0)
        json_object_set_new(f, "target", audit_str(target));
    if (rule)
        json_object_set_new(f, "rule", json_string(rule));
    if (reason)
        json_object_set_new(f, "reason", json_string(reason));
    json_object_set_new(f, "pid", json_integer(pid));
    /* libc asks nscd for every name lookup: a refusal there is routine */
    bool quiet = !allow && (strcmp(path, "/var/run/nscd/socket") == 0 ||
                            strcmp(path, "/run/nscd/socket") == 0);
    audit_emit_quiet(u->audit, "unix.connect", allow, quiet, f);
}

static int unix_connect(struct unixsock *u, int notify_fd, int rootfd,
                        const struct seccomp_notif *req, int fd,
                        const struct sockaddr_storage *ss, socklen_t len,
                        struct seccomp_notif_resp *resp)
{
    const struct sockaddr_un *sa = (const struct sockaddr_un *)ss;
    const size_t off = offsetof(struct sockaddr_un, sun_path);
    if (len <= off || len > sizeof(*sa) || sa->sun_family != AF_UNIX || sa->sun_path[0] == '\0')
        /* Invalid (the kernel says why), or abstract: looked up in the
         * socket's own network namespace, the sandbox's. */
        return begin(u, notify_fd, req->id, fd, -1, ss, len, resp);

    pid_t pid = (pid_t)req->pid;
    char name[sizeof(sa->sun_path) + 1];
    memcpy(name, sa->sun_path, len - off);
    name[len - off] = '\0';
    char full[PATH_MAX * 2], lex[PATH_MAX * 2], canon[PATH_MAX];
    if (name[0] == '/') {
        snprintf(full, sizeof(full), "%s", name);
    } else {
        char link[64], cwd[PATH_MAX];
        snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
        ssize_t k = readlink(link, cwd, sizeof(cwd) - 1);
        if (k <= 0) {
            close(fd);
            answer(resp, -ENOENT);
            return 0;
        }
        cwd[k] = '\0';
        snprintf(full, sizeof(full), "%s/%s", cwd, name);
    }
    snprintf(lex, sizeof(lex), "%s", full);
    cordon_path_normalize(lex);

    int tfd = rootfd >= 0 ? sandbox_open(rootfd, full) : -EIO;
    struct stat tst;
    bool tsock = tfd >= 0 && fstat(tfd, &tst) == 0 && S_ISSOCK(tst.st_mode);
    if (tsock && own_socket(u, &tst)) {
        struct sockaddr_storage pa;
        socklen_t pl = proc_addr(tfd, &pa);
        return begin(u, notify_fd, req->id, fd, tfd, &pa, pl, resp);
    }
    bool have_canon = tfd >= 0 && fd_path(tfd, canon, sizeof(canon));

    /* Listed: the path as the program named it, or where it leads in the
     * sandbox's view, is an entry or beneath one (each as loaded and as
     * canonicalised). */
    const char *spell[2] = { lex, have_canon ? canon : NULL };
    const struct entry *hit = NULL;
    size_t hit_i = 0;
    const char *rest = NULL;
    for (size_t i = 0; i < u->n && !hit; i++)
        for (int s = 0; s < 2 && !hit; s++)
            for (int x = 0; x < 2 && !hit; x++)
                if (spell[x] && beneath(s ? u->v[i].canon : u->v[i].path, spell[x], &rest)) {
                    hit = &u->v[i];
                    hit_i = i;
                }
    if (hit) {
        if (tfd >= 0)
            close(tfd);
        char rule[64], target[PATH_MAX * 2];
        snprintf(rule, sizeof(rule), "network.allowUnixSockets[%zu]", hit_i);
        snprintf(target, sizeof(target), "%s%s%s", hit->canon,
                 *rest && strcmp(hit->canon, "/") != 0 ? "/" : "", rest);
        int hfd = host_open(hit, rest);
        struct stat hst;
        if (hfd == -ELOOP || hfd == -EXDEV) {
            record(u, false, lex, target, rule, "the listed path leads through a symlink", pid);
            close(fd);
            answer(resp, -EACCES);
            return 0;
        }
        if (hfd < 0 || fstat(hfd, &hst) < 0 || !S_ISSOCK(hst.st_mode)) {
            close(fd);
            if (hfd >= 0)
                close(hfd);
            answer(resp, hfd < 0 ? hfd : -ECONNREFUSED); /* as the kernel would say */
            return 0;
        }
        record(u, true, lex, target, rule, NULL, pid);
        struct sockaddr_storage pa;
        socklen_t pl = proc_addr(hfd, &pa);
        return begin(u, notify_fd, req->id, fd, hfd, &pa, pl, resp);
    }
    close(fd);
    if (tfd < 0) {
        answer(resp, tfd); /* ENOENT and the like: what the kernel would say */
        return 0;
    }
    close(tfd);
    if (!tsock) {
        answer(resp, -ECONNREFUSED);
        return 0;
    }
    record(u, false, lex, have_canon ? canon : NULL, NULL, "not in network.allowUnixSockets",
           pid);
    answer(resp, -EACCES);
    return 0;
}

int unixsock_connect(struct unixsock *u, int notify_fd, int rootfd,
                     const struct seccomp_notif *req, struct seccomp_notif_resp *resp)
{
    pid_t pid = (pid_t)req->pid;
    int sockfd = (int)req->data.args[0];
    int ulen = (int)req->data.args[2];
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    /* move_addr_to_kernel(): a negative or oversized length is EINVAL */
    if (ulen < 0 || ulen > (int)sizeof(ss)) {
        answer(resp, -EINVAL);
        return 0;
    }
    if (ulen > 0) {
        struct iovec l = { &ss, (size_t)ulen };
        struct iovec r = { (void *)(uintptr_t)req->data.args[1], (size_t)ulen };
        if (process_vm_readv(pid, &l, 1, &r, 1, 0) != ulen) {
            answer(resp, -EFAULT);
            return 0;
        }
    }
    int fd = caller_fd(pid, sockfd);
    if (fd < 0) {
        answer(resp, fd == -ESRCH ? -EBADF : fd);
        return 0;
    }
    /* The memory and the descriptor were read while the caller waited:
     * still the same call? (From here on only our copies are used.) */
    if (ioctl(notify_fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) {
        close(fd);
        answer(resp, -EINTR);
        return 0;
    }
    int domain = 0;
    socklen_t dl = sizeof(domain);
    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &dl) < 0) {
        int e = errno;
        close(fd);
        answer(resp, -e);
        return 0;
    }
    if (domain != AF_UNIX)
        return begin(u, notify_fd, req->id, fd, -1, &ss, (socklen_t)ulen, resp);
    return unix_connect(u, notify_fd, rootfd, req, fd, &ss, (socklen_t)ulen, resp);
}

/* ---- lifetime --------------------------------------------------------------- */

int unixsock_new(const struct unixsock_config *cfg, struct unixsock **out,
                 struct cordon_error *err)
{
    *out = NULL;
    const struct cordon_strlist *l = &cfg->policy->net.unix_sockets;
    struct unixsock *u = calloc(1, sizeof(*u));
    if (!u || !(u->v = calloc(l->n + 1, sizeof(*u->v)))) {
        free(u);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    u->loop = cfg->loop;
    u->audit = cfg->audit;
    u->diag = -1;
    for (size_t i = 0; i < l->n; i++) {
        u->v[i].path = l->v[i];
        u->v[i].canon = canonical(l->v[i]);
        u->n++;
        if (!u->v[i].canon) {
            unixsock_free(u);
            return cordon_err_set(err, ENOMEM, "out of memory");
        }
    }
    *out = u;
    return 0;
}

void unixsock_set_diag(struct unixsock *u, int fd)
{
    if (!u || u->diag >= 0 || u->freeing) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct timeval tv = { .tv_sec = 2 };
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    u->diag = fd;
}

void unixsock_free(struct unixsock *u)
{
    if (!u)
        return;
    u->freeing = true;
    if (u->diag >= 0) {
        close(u->diag);
        u->diag = -1;
    }
    while (u->pending)
        finish(u->pending, NO_ANSWER);
    if (u->npending == 0) {
        for (size_t i = 0; i < u->n; i++)
            free(u->v[i].canon);
        free(u->v);
        free(u);
    }
}
