/* observe.c: see observe.h. */
#include "observe.h"

#include "core/cleanup.h"
#include "protect.h"
#include "unixsock.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

struct observer {
    uv_poll_t poll;
    int fd;
    int rootfd;       /* the caller's root (see root_fd), or -1 */
    struct observe_config cfg;
    struct seccomp_notif *req;
    struct seccomp_notif_resp *resp;
    struct seccomp_notif_sizes sizes;
};

/* ---- reading the caller's path ------------------------------------------- */

/* Copy a NUL-terminated string from the caller (page by page: the string may
 * end just before an unmapped page). Returns its length or -1. */
static long read_string(pid_t pid, uint64_t addr, char *buf, size_t cap)
{
    size_t got = 0;
    while (got + 1 < cap) {
        uint64_t at = addr + got;
        size_t chunk = 4096 - (size_t)(at & 4095);
        if (chunk > cap - 1 - got)
            chunk = cap - 1 - got;
        struct iovec local = { buf + got, chunk };
        struct iovec remote = { (void *)(uintptr_t)at, chunk };
        ssize_t n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
        if (n <= 0)
            return -1;
        char *nul = memchr(buf + got, '\0', (size_t)n);
        if (nul)
            return (long)(nul - buf);
        got += (size_t)n;
    }
    return -1; /* longer than PATH_MAX */
}

/* The directory a relative path is resolved against. */
static int base_dir(pid_t pid, int dirfd, char *out, size_t n)
{
    char link[64];
    if (dirfd == AT_FDCWD)
        snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
    else
        snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, dirfd);
    ssize_t k = readlink(link, out, n - 1);
    if (k <= 0)
        return -1;
    out[k] = '\0';
    return 0;
}

/* ---- is the change refused? ---------------------------------------------- */

/* The sandbox's root, as the caller's mount namespace sees it (every task
 * of the command shares it: they cannot make another). Opened once. */
static int root_fd(struct observer *o, pid_t pid)
{
    if (o->rootfd >= 0)
        return o->rootfd;
    char root[64];
    snprintf(root, sizeof(root), "/proc/%d/root", pid);
    o->rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return o->rootfd;
}

enum lookup { L_ABSENT, L_RW, L_RO, L_UNKNOWN };

/* Look path up in the caller's view (the final symlink followed or not):
 * absent, on a writable mount, on a read-only one, or unknown (a magic
 * link such as /dev/stdout -> /proc/self/fd/1, which means the caller's
 * own fd: not judged here). A directory the caller may not search (a
 * denied one, mode 000) counts as read-only. */
static enum lookup lookup(int rfd, const char *path, bool follow)
{
    struct open_how how = { .flags = O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW),
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    const char *rel = path[0] == '/' ? path + 1 : path;
    if (!*rel)
        rel = ".";
    int fd = (int)syscall(SYS_openat2, rfd, rel, &how, sizeof(how));
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? L_ABSENT
               : errno == EACCES                   ? L_RO
                                                   : L_UNKNOWN;
    struct statvfs sv;
    enum lookup r = fstatvfs(fd, &sv) < 0 ? L_UNKNOWN : (sv.f_flag & ST_RDONLY) ? L_RO : L_RW;
    close(fd);
    return r;
}

static enum lookup lookup_parent(int rfd, const char *path)
{
    char dir[PATH_MAX * 2];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        return L_UNKNOWN;
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return lookup(rfd, dir, true);
}

enum obs_kind {
    K_OPEN,    /* by its flags */
    K_CREATE,  /* a new name: EEXIST when it exists, else its directory decides */
    K_REMOVE,  /* an existing name leaves (or is replaced in) its directory */
    K_CHANGE,  /* an existing object changes (mode, owner, size) */
};

/* Will the operation be refused by the view (a read-only mount, a denied
 * directory)? Operations that fail for other reasons (EEXIST, ENOENT) or
 * that write nothing are not denials. */
/* A symlink's target, made absolute against the link's directory; false
 * when path is not a symlink. */
static bool link_target(int rfd, const char *path, char *out, size_t n)
{
    struct open_how how = { .flags = O_PATH | O_CLOEXEC | O_NOFOLLOW,
                            .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS };
    const char *rel = path[0] == '/' ? path + 1 : path;
    int fd = (int)syscall(SYS_openat2, rfd, *rel ? rel : ".", &how, sizeof(how));
    if (fd < 0)
        return false;
    char t[PATH_MAX];
    ssize_t k = readlinkat(fd, "", t, sizeof(t) - 1);
    close(fd);
    if (k <= 0)
        return false;
    t[k] = '\0';
    if (t[0] == '/') {
        snprintf(out, n, "%s", t);
    } else {
        size_t dl = strrchr(path, '/') ? (size_t)(strrchr(path, '/') - path) : 0;
        if (snprintf(out, n, "%.*s/%s", (int)dl, path, t) >= (int)n)
            return false;
    }
    cordon_path_normalize(out);
    return true;
}

static bool is_placeholder(const struct observer *o, const char *path);

/* Under a denyRead entry (and not re-opened by a deeper allowRead)? Such a
 * path is refused with EACCES whatever is asked of it, even though cordon's
 * own lookup (with the supervisor's credentials) may see through the mask. */
static bool read_denied(const struct observer *o, const char *path)
{
    const cordon_policy *p = o->cfg.policy;
    size_t best = 0;
    bool denied = false;
    for (size_t i = 0; p && i < p->fs.deny_read.n; i++) {
        const char *d = p->fs.deny_read.v[i].path;
        if (cordon_path_is_prefix(d, path) && strlen(d) >= best) {
            best = strlen(d);
            denied = true;
        }
    }
    for (size_t i = 0; p && denied && i < p->fs.allow_read.n; i++) {
        const char *a = p->fs.allow_read.v[i].path;
        if (cordon_path_is_prefix(a, path) && strlen(a) > best)
            denied = false;
    }
    return denied;
}

static bool refused(const struct observer *o, int rfd, const char *path, enum obs_kind k,
                    uint64_t flags, bool follow, bool placeholder, char *target, size_t tn)
{
    target[0] = '\0';
    if (read_denied(o, path))
        return k != K_OPEN || (flags & (O_WRONLY | O_RDWR | O_TRUNC | O_APPEND | O_CREAT));
    enum lookup obj = lookup(rfd, path, follow);
    if (obj == L_UNKNOWN)
        return false;
    if (follow && obj == L_ABSENT && link_target(rfd, path, target, tn)) {
        /* A dangling link: the object made is its target. Through /proc it
         * is the caller's own (/dev/stdout -> /proc/self/fd/1): not judged. */
        if (cordon_path_is_prefix("/proc", target))
            return false;
        path = target;
    }
    switch (k) {
    case K_OPEN: {
        bool write = flags & (O_WRONLY | O_RDWR | O_TRUNC | O_APPEND);
        if (obj == L_ABSENT)
            return (flags & O_CREAT) && lookup_parent(rfd, path) == L_RO;
        if ((flags & O_CREAT) && (flags & O_EXCL))
            return false; /* EEXIST */
        return write && obj == L_RO;
    }
    case K_CREATE:
        /* EEXIST is no denial, except on cordon's placeholder for a
         * protected name (".claude" exists only because it is protected) */
        return obj == L_ABSENT ? lookup_parent(rfd, path) == L_RO : placeholder;
    case K_REMOVE:
        return obj != L_ABSENT && (obj == L_RO || lookup_parent(rfd, path) == L_RO);
    case K_CHANGE:
        return obj == L_RO;
    }
    return false;
}

static bool under(const char *dir, const char *path)
{
    return cordon_path_is_prefix(dir, path);
}

static bool is_placeholder(const struct observer *o, const char *path)
{
    const struct protect_set *prot = o->cfg.prot;
    for (size_t i = 0; prot && i < prot->nplaceholders; i++) {
        const char *ph = prot->placeholders[i];
        size_t l = strlen(ph);
        if (l && ph[l - 1] == '/') /* a directory is written with a final "/" */
            l--;
        if (strncmp(ph, path, l) == 0 && path[l] == '\0')
            return true;
    }
    return false;
}

/* Which rule made path read-only, for the record. */
static const char *rule_for(const struct observer *o, const char *path, char *buf, size_t n)
{
    const struct protect_set *prot = o->cfg.prot;
    for (size_t i = 0; prot && i < prot->n; i++) {
        if (prot->v[i].kind == PROT_RO && under(prot->v[i].path, path)) {
            /* named from its write root: "protected: .git/hooks" */
            const char *item = prot->v[i].path, *best = NULL;
            for (size_t r = 0; r < prot->nroots; r++)
                if (under(prot->roots[r], item) &&
                    (!best || strlen(prot->roots[r]) > strlen(best)))
                    best = prot->roots[r];
            const char *rel = item;
            if (best && strlen(item) > strlen(best))
                rel = item + strlen(best) + (strcmp(best, "/") != 0);
            snprintf(buf, n, "protected: %s", rel);
            return buf;
        }
    }
    const cordon_policy *p = o->cfg.policy;
    for (size_t i = 0; p && i < p->fs.deny_read.n; i++)
        if (under(p->fs.deny_read.v[i].path, path))
            return "denyRead";
    for (size_t i = 0; p && i < p->fs.deny_write.n; i++)
        if (under(p->fs.deny_write.v[i].path, path))
            return "denyWrite";
    return "not in allowWrite";
}

/* ---- one notification ---------------------------------------------------- */

struct pathargs {
    int dirfd;
    uint64_t addr;
    enum obs_kind kind;
    uint64_t flags;  /* K_OPEN: the open flags */
    bool follow;     /* the final symlink is followed */
};

#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* Linux 6.6; not in Debian 12's headers */
#endif

/* The paths a write-intent syscall changes (up to two: rename's source and
 * destination). openat2's flags are read from the caller's memory. */
static int paths_of(pid_t pid, int nr, const uint64_t *a, struct pathargs out[2])
{
    int cwd = AT_FDCWD;
#define P(d, x, k, f, fl) (struct pathargs){ (int)(d), (x), (k), (f), (fl) }
    switch (nr) {
#ifdef SYS_open
    case SYS_open:
        out[0] = P(cwd, a[0], K_OPEN, a[1], !(a[1] & O_NOFOLLOW));
        return 1;
    case SYS_creat:
        out[0] = P(cwd, a[0], K_OPEN, O_CREAT | O_WRONLY | O_TRUNC, true);
        return 1;
    case SYS_mkdir:
    case SYS_mknod:
        out[0] = P(cwd, a[0], K_CREATE, 0, false);
        return 1;
    case SYS_rmdir:
    case SYS_unlink:
        out[0] = P(cwd, a[0], K_REMOVE, 0, false);
        return 1;
    case SYS_chmod:
    case SYS_chown:
        out[0] = P(cwd, a[0], K_CHANGE, 0, true);
        return 1;
    case SYS_lchown:
        out[0] = P(cwd, a[0], K_CHANGE, 0, false);
        return 1;
    case SYS_rename:
        out[0] = P(cwd, a[0], K_REMOVE, 0, false);
        out[1] = P(cwd, a[1], K_CREATE, 0, false);
        return 2;
    case SYS_link:
    case SYS_symlink:
        out[0] = P(cwd, a[1], K_CREATE, 0, false);
        return 1;
#endif
    case SYS_truncate:
        out[0] = P(cwd, a[0], K_CHANGE, 0, true);
        return 1;
    case SYS_openat:
        out[0] = P(a[0], a[1], K_OPEN, a[2], !(a[2] & O_NOFOLLOW));
        return 1;
    case SYS_openat2: {
        struct open_how how = { 0 };
        struct iovec l = { &how, sizeof(how) }, r = { (void *)(uintptr_t)a[2], sizeof(how) };
        if (a[3] < sizeof(how) || process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)sizeof(how))
            return 0;
        out[0] = P(a[0], a[1], K_OPEN, how.flags, !(how.flags & O_NOFOLLOW));
        return 1;
    }
    case SYS_mkdirat:
    case SYS_mknodat:
        out[0] = P(a[0], a[1], K_CREATE, 0, false);
        return 1;
    case SYS_unlinkat:
        out[0] = P(a[0], a[1], K_REMOVE, 0, false);
        return 1;
    case SYS_fchmodat:
        out[0] = P(a[0], a[1], K_CHANGE, 0, true);
        return 1;
    case SYS_fchmodat2:
        out[0] = P(a[0], a[1], K_CHANGE, 0, !(a[3] & AT_SYMLINK_NOFOLLOW));
        return 1;
    case SYS_fchownat:
        out[0] = P(a[0], a[1], K_CHANGE, 0, !(a[4] & AT_SYMLINK_NOFOLLOW));
        return 1;
    case SYS_renameat:
    case SYS_renameat2:
        out[0] = P(a[0], a[1], K_REMOVE, 0, false);
        out[1] = P(a[2], a[3], K_CREATE, 0, false);
        return 2;
    case SYS_linkat:
        out[0] = P(a[2], a[3], K_CREATE, 0, false);
        return 1;
    case SYS_symlinkat:
        out[0] = P(a[1], a[2], K_CREATE, 0, false);
        return 1;
    default:
        return 0;
    }
#undef P
}

static const char *errno_name(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EACCES: return "EACCES";
    default: return "error";
    }
}

static void observe_write(struct observer *o, const struct seccomp_notif *req)
{
    const struct seccomp_data *d = &req->data;
    uint64_t args[6];
    for (int i = 0; i < 6; i++)
        args[i] = d->args[i];
    struct pathargs pa[2];
    int np = paths_of((pid_t)req->pid, d->nr, args, pa);
    int rfd = np ? root_fd(o, (pid_t)req->pid) : -1;
    char *name = np && rfd >= 0 ? seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, d->nr)
                                : NULL;
    for (int i = 0; i < np && rfd >= 0; i++) {
        char raw[PATH_MAX], base[PATH_MAX], full[PATH_MAX * 2];
        if (read_string((pid_t)req->pid, pa[i].addr, raw, sizeof(raw)) < 0)
            continue;
        /* The memory was read while the caller waited: still the same call? */
        if (ioctl(o->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0)
            break;
        if (raw[0] == '/') {
            snprintf(full, sizeof(full), "%s", raw);
        } else {
            if (base_dir((pid_t)req->pid, pa[i].dirfd, base, sizeof(base)) < 0)
                continue;
            snprintf(full, sizeof(full), "%s/%s", base, raw);
        }
        cordon_path_normalize(full);
        /* a rename onto an existing name replaces it: judged as a removal */
        enum obs_kind k = pa[i].kind;
        if (i == 1 && k == K_CREATE && lookup(rfd, full, false) != L_ABSENT)
            k = K_REMOVE;
        char target[PATH_MAX * 2];
        if (!refused(o, rfd, full, k, pa[i].flags, pa[i].follow, is_placeholder(o, full), target,
                     sizeof(target)))
            continue;
        char rb[PATH_MAX + 32];
        const char *rule = rule_for(o, target[0] ? target : full, rb, sizeof(rb));
        json_t *f = json_pack("{s:s, s:o, s:s, s:i}", "op", name ? name : "write", "path",
                              audit_str(full), "rule", rule, "pid", (int)req->pid);
        if (f && target[0]) /* written through a symlink: where it leads */
            json_object_set_new(f, "target", audit_str(target));
        audit_emit(o->cfg.audit, "fs.deny", false, f);
        break;
    }
    free(name);
}

static void on_notify(uv_poll_t *h, int status, int events)
{
    struct observer *o = h->data;
    (void)events;
    if (status < 0) {
        uv_poll_stop(&o->poll);
        return;
    }
    for (int rounds = 0; rounds < 64; rounds++) {
        /* NOTIF_RECV blocks whatever O_NONBLOCK says: only call it when a
         * notification is waiting. POLLHUP alone: every task of the filter
         * has exited. */
        struct pollfd pf = { .fd = o->fd, .events = POLLIN };
        if (poll(&pf, 1, 0) <= 0)
            return;
        if (!(pf.revents & POLLIN)) {
            if (pf.revents & (POLLHUP | POLLERR | POLLNVAL))
                uv_poll_stop(&o->poll);
            return;
        }
        memset(o->req, 0, o->sizes.seccomp_notif);
        if (ioctl(o->fd, SECCOMP_IOCTL_NOTIF_RECV, o->req) < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOENT)
                continue; /* the caller went away meanwhile */
            if (errno != EAGAIN)
                uv_poll_stop(&o->poll); /* the filter is gone: every task exited */
            return;
        }
        const struct seccomp_data *d = &o->req->data;
        uint64_t args[6];
        for (int i = 0; i < 6; i++)
            args[i] = d->args[i];
        memset(o->resp, 0, o->sizes.seccomp_notif_resp);
        o->resp->id = o->req->id;
        if (o->cfg.unix_conn && unixsock_is_connect(d->nr)) {
            /* performed for the caller; answered now, or later when a
             * blocking connect completes */
            if (unixsock_connect(o->cfg.unix_conn, o->fd, root_fd(o, (pid_t)o->req->pid),
                                 o->req, o->resp) > 0)
                continue;
        } else if (o->cfg.seccomp.observe_writes && harden_seccomp_observed(d->nr) &&
            harden_seccomp_denial(&o->cfg.seccomp, d->nr, args) == 0) {
            observe_write(o, o->req);
            o->resp->flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
        } else {
            /* The filter refused it. Should the mirror disagree, refuse
             * anyway: that is what the filter asked for. */
            int e = harden_seccomp_denial(&o->cfg.seccomp, d->nr, args);
            if (e == 0)
                e = EPERM;
            o->resp->error = -e;
            char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, d->nr);
            /* libc tries a unix socket for every name lookup (nscd) and
             * for syslog: recorded, but not news in the exit summary. */
            bool probe = (d->nr == SYS_socket || d->nr == SYS_socketpair) &&
                         (uint32_t)args[0] == AF_UNIX;
            audit_emit_quiet(o->cfg.audit, "syscall.deny", false, probe,
                             json_pack("{s:s, s:i, s:s, s:i}", "syscall", name ? name : "?",
                                       "nr", d->nr, "errno", errno_name(e), "pid",
                                       (int)o->req->pid));
            free(name);
        }
        if (ioctl(o->fd, SECCOMP_IOCTL_NOTIF_SEND, o->resp) < 0 && errno != ENOENT &&
            errno != EINTR) {
            /* nothing to do: the caller is gone */
        }
    }
}

int observer_start(uv_loop_t *loop, int listener, const struct observe_config *cfg,
                   struct observer **out)
{
    *out = NULL;
    struct observer *o = calloc(1, sizeof(*o));
    if (!o) {
        close(listener);
        return -ENOMEM;
    }
    o->fd = listener;
    o->rootfd = -1;
    o->cfg = *cfg;
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &o->sizes) < 0) {
        int e = errno;
        close(listener);
        free(o);
        return -e;
    }
    size_t rq = o->sizes.seccomp_notif > sizeof(struct seccomp_notif) ? o->sizes.seccomp_notif
                                                                       : sizeof(struct seccomp_notif);
    size_t rs = o->sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
                    ? o->sizes.seccomp_notif_resp
                    : sizeof(struct seccomp_notif_resp);
    o->sizes.seccomp_notif = (uint16_t)rq;
    o->sizes.seccomp_notif_resp = (uint16_t)rs;
    o->req = calloc(1, rq);
    o->resp = calloc(1, rs);
    int fl = fcntl(listener, F_GETFL);
    if (!o->req || !o->resp || fl < 0 || fcntl(listener, F_SETFL, fl | O_NONBLOCK) < 0 ||
        uv_poll_init(loop, &o->poll, listener) < 0) {
        free(o->req);
        free(o->resp);
        close(listener);
        free(o);
        return -ENOMEM;
    }
    o->poll.data = o;
    uv_poll_start(&o->poll, UV_READABLE, on_notify);
    *out = o;
    return 0;
}

static void observer_closed(uv_handle_t *h)
{
    struct observer *o = h->data;
    close(o->fd);
    if (o->rootfd >= 0)
        close(o->rootfd);
    free(o->req);
    free(o->resp);
    free(o);
}

void observer_stop(struct observer *o)
{
    if (!o)
        return;
    uv_poll_stop(&o->poll);
    uv_close((uv_handle_t *)&o->poll, observer_closed);
}
