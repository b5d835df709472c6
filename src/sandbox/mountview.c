/* mountview.c: executes a mount plan inside the new user and mount namespace.
 *
 * Owns: turning struct sandbox_plan into the sandbox's root.
 * Invariants:
 *  - runs in the cloned child: no allocation, errors go into a caller buffer;
 *  - every host object is opened with openat2(RESOLVE_NO_SYMLINKS) and checked
 *    against the device and inode the planner saw, then cloned with
 *    open_tree(OPEN_TREE_CLONE) before anything is mounted, so a path swapped
 *    for a symlink (or another directory) after planning fails closed;
 *  - every mount target is resolved beneath the new root with
 *    RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH, mounted through its fd
 *    (move_mount T_EMPTY_PATH), and verified afterwards by re-resolving the path
 *    and comparing device and inode with what was mounted;
 *  - the view is private: nothing the host mounts later propagates in.
 */
#include "mountview.h"
#include "core/cleanup.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

struct vctx {
    const struct sandbox_plan *plan;
    int *src;   /* per op: host clone (binds) or mount fd (tmpfs) */
    int root;   /* fd of the new root */
    int denyfile;
    int devsrc[8];
    int exesrc;
    int ttysrc; /* the caller's terminal, for /dev/console (-1: none) */
    char *err;
    size_t errlen;
    int code;
};

static const char *const dev_nodes[] = { "null", "zero", "full", "random", "urandom", "tty" };

/* /proc entries that stay read-only even for a command whose uid is 0 on the
 * host: they are owned by the host's root and some (sysrq-trigger, acpi)
 * check no capability on write. The same list as Docker's read-only paths. */
static const char *const proc_ro[] = {
    "sys", "sysrq-trigger", "irq", "bus", "fs", "acpi", "scsi", "asound", "driver", "mtrr",
};
/* /proc files hidden outright (the denied-file placeholder over them):
 * keys and key-users list the caller's keys across every keyring, even ones
 * the sandbox cannot otherwise reach (escape class #8); the others leak
 * kernel addresses and scheduling details. */
static const char *const proc_masked[] = {
    "keys", "key-users", "kcore", "timer_list", "sched_debug", "latency_stats",
};

static int vfail(struct vctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int vfail(struct vctx *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->err, c->errlen, fmt, ap);
    va_end(ap);
    if (code && n >= 0 && (size_t)n < c->errlen)
        snprintf(c->err + n, c->errlen - (size_t)n, ": %s", strerror(code));
    c->code = code ? code : EINVAL;
    return -c->code;
}

static int openat2_path(int dirfd, const char *path, int flags, unsigned long long resolve)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .resolve = resolve,
    };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

#define SAFE_RESOLVE (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
#define BENEATH_RESOLVE (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_BENEATH)

static const char *rel(const char *abs)
{
    while (*abs == '/')
        abs++;
    return *abs ? abs : ".";
}

static int setattr(int fd, unsigned long long set, bool recursive)
{
    struct mount_attr a = { .attr_set = set, .propagation = MS_PRIVATE };
    return mount_setattr(fd, "", AT_EMPTY_PATH | (recursive ? AT_RECURSIVE : 0), &a, sizeof(a));
}

static int new_tmpfs(const char *mode, unsigned attrs)
{
    int fs = fsopen("tmpfs", FSOPEN_CLOEXEC);
    if (fs < 0)
        return -1;
    if (fsconfig(fs, FSCONFIG_SET_STRING, "mode", mode, 0) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int e = errno;
        close(fs);
        errno = e;
        return -1;
    }
    int m = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
    int e = errno;
    close(fs);
    errno = e;
    return m;
}

static int attach(int from, int to_fd)
{
    return move_mount(from, "", to_fd, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH);
}

static bool same_file(int a, int b)
{
    struct stat sa, sb;
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

/* The caller's terminal at /dev/console, as bwrap --dev (and so srt) does:
 * the command's descriptors 0-2 point into the host's devpts, which the
 * sandbox's /dev does not show, so ttyname(3) (`tty`, `GPG_TTY=$(tty)`,
 * os.ttyname) failed with ENODEV; its scan of /dev now finds the terminal
 * there. The first of fd 0, 1, 2 that is a terminal open for reading and
 * writing (as a shell's are) and that its name leads back to (same device,
 * inode and rdev, opened without following symlinks) is bound; none: no
 * /dev/console. It grants nothing new: /dev is writable in the view, so a
 * terminal given only for reading (or only for writing) is not bound, since
 * opening it read-write would be more than the caller gave; one given
 * read-write can be reopened so through /proc/self/fd/N anyway. The command
 * still has no controlling
 * terminal (init's setsid, srt's --new-session): the terminal is normally
 * the caller session's, which the kernel does not hand to another session
 * on open (tty_open_proc_set_tty), so /dev/tty stays ENXIO. */
static void grab_console(struct vctx *c)
{
    c->ttysrc = -1;
    for (int fd = 0; fd < 3; fd++) {
        struct stat st, ps;
        int fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) != O_RDWR || !isatty(fd) || fstat(fd, &st) < 0 ||
            !S_ISCHR(st.st_mode))
            continue;
        char link[32], path[256];
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof(path) - 1);
        if (n <= 0 || (size_t)n >= sizeof(path) - 1)
            continue;
        path[n] = '\0';
        if (path[0] != '/')
            continue;
        _cleanup_close_ int pfd = openat2_path(AT_FDCWD, path, O_PATH | O_NOFOLLOW, SAFE_RESOLVE);
        if (pfd < 0 || fstat(pfd, &ps) < 0 || !S_ISCHR(ps.st_mode) || ps.st_dev != st.st_dev ||
            ps.st_ino != st.st_ino || ps.st_rdev != st.st_rdev)
            continue;
        c->ttysrc = open_tree(pfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (c->ttysrc >= 0)
            return;
    }
}

/* Phase 1, in the host's (private copy of the) tree: clone every host object
 * the view needs before anything shadows it. */
static int grab_sources(struct vctx *c)
{
    const struct sandbox_plan *plan = c->plan;
    for (size_t i = 0; i < plan->nops; i++) {
        const struct mount_op *op = &plan->ops[i];
        unsigned long long set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        if (op->from_view)
            continue;
        switch (op->kind) {
        case OP_ROOT_RO:
        case OP_BIND_RO:
            set |= MOUNT_ATTR_RDONLY;
            break;
        case OP_ROOT_RW:
        case OP_BIND_RW:
            break;
        case OP_PIN_LINK: {
            _cleanup_close_ int lfd = openat2_path(AT_FDCWD, op->path, O_PATH | O_NOFOLLOW,
                                                   SAFE_RESOLVE);
            struct stat st;
            if (lfd < 0 || fstat(lfd, &st) < 0 || !S_ISLNK(st.st_mode) || st.st_dev != op->dev ||
                st.st_ino != op->ino)
                return vfail(c, lfd < 0 ? errno : 0, "%s: changed while cordon was starting; "
                                                     "refusing to continue", op->path);
            c->src[i] = open_tree(lfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
            if (c->src[i] < 0)
                return vfail(c, errno, "%s: cannot clone the symlink", op->path);
            continue;
        }
        default:
            continue;
        }
        _cleanup_close_ int pfd = openat2_path(AT_FDCWD, op->path, O_PATH | O_NOFOLLOW,
                                               SAFE_RESOLVE);
        if (pfd < 0)
            return vfail(c, errno, "%s: cannot open without following symlinks (did it change "
                                   "while cordon was starting?)", op->path);
        if (op->dev || op->ino) {
            struct stat st;
            if (fstat(pfd, &st) < 0)
                return vfail(c, errno, "%s: stat", op->path);
            if (st.st_dev != op->dev || st.st_ino != op->ino)
                return vfail(c, 0, "%s: changed while cordon was starting; refusing to mount it",
                             op->path);
        }
        int t = open_tree(pfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                       AT_EMPTY_PATH);
        if (t < 0)
            return vfail(c, errno, "%s: cannot clone the mount tree", op->path);
        c->src[i] = t;
        if (setattr(t, set, true) < 0)
            return vfail(c, errno, "%s: cannot set mount attributes", op->path);
    }
    for (size_t k = 0; k < ARRAY_SIZE(dev_nodes); k++) {
        char p[32];
        snprintf(p, sizeof(p), "/dev/%s", dev_nodes[k]);
        c->devsrc[k] = -1;
        _cleanup_close_ int pfd = openat2_path(AT_FDCWD, p, O_PATH | O_NOFOLLOW, SAFE_RESOLVE);
        struct stat st;
        if (pfd < 0 || fstat(pfd, &st) < 0 || !S_ISCHR(st.st_mode))
            continue; /* e.g. no /dev/tty in some containers */
        c->devsrc[k] = open_tree(pfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (c->devsrc[k] < 0)
            return vfail(c, errno, "%s: cannot clone", p);
    }
    grab_console(c);
    c->exesrc = -1;
    if (c->plan->exe_path) {
        _cleanup_close_ int pfd = openat2_path(AT_FDCWD, c->plan->exe_path, O_PATH | O_NOFOLLOW,
                                               SAFE_RESOLVE);
        if (pfd < 0)
            return vfail(c, errno, "%s: cannot open cordon's own binary", c->plan->exe_path);
        c->exesrc = open_tree(pfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (c->exesrc < 0 ||
            setattr(c->exesrc, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false) < 0)
            return vfail(c, errno, "%s: cannot clone cordon's own binary", c->plan->exe_path);
    }
    /* The object bound over read-denied files: empty, mode 000, read-only. */
    _cleanup_close_ int dm = new_tmpfs("0555", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                                   MOUNT_ATTR_NOEXEC);
    if (dm < 0)
        return vfail(c, errno, "cannot create the tmpfs for denied files");
    int f = openat(dm, "denied", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0);
    if (f < 0)
        return vfail(c, errno, "cannot create the denied-file placeholder");
    close(f);
    if (setattr(dm, MOUNT_ATTR_RDONLY, false) < 0)
        return vfail(c, errno, "cannot make the denied-file tmpfs read-only");
    /* Clones are taken from it later; kernels before 6.15 only clone from
     * mounts attached to the caller's namespace. Park it on the old root's
     * /dev (all host objects were cloned above), which is detached with the
     * old root at the end. */
    if (move_mount(dm, "", AT_FDCWD, "/dev", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return vfail(c, errno, "cannot attach the denied-file tmpfs");
    c->denyfile = openat2_path(dm, "denied", O_PATH | O_NOFOLLOW, BENEATH_RESOLVE);
    if (c->denyfile < 0)
        return vfail(c, errno, "cannot open the denied-file placeholder");
    return 0;
}

/* Create the mount point for op inside its parent's tmpfs, returning an O_PATH
 * fd to it. Intermediate directories are traversable only (0111) inside a
 * read-denied directory, 0755 inside the private /tmp. For OP_WAYPOINT the
 * last component is a symlink (it must not exist yet) or a directory like
 * the intermediate ones. */
static int make_mountpoint(struct vctx *c, const struct mount_op *op)
{
    const struct mount_op *parent = &c->plan->ops[op->parent];
    mode_t imode = parent->kind == OP_TMPFS ? 0755 : 0111;
    int dfd = openat2_path(c->root, rel(parent->path), O_PATH | O_DIRECTORY, BENEATH_RESOLVE);
    if (dfd < 0)
        return vfail(c, errno, "%s: cannot open", parent->path);

    const char *p = op->path + strlen(parent->path);
    char comp[256];
    for (;;) {
        while (*p == '/')
            p++;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == 0 || len >= sizeof(comp)) {
            close(dfd);
            return vfail(c, ENAMETOOLONG, "%s: bad mount point", op->path);
        }
        memcpy(comp, p, len);
        comp[len] = '\0';
        bool last = end == NULL;
        int r;
        if (last && op->kind == OP_WAYPOINT && op->target) {
            r = symlinkat(op->target, dfd, comp);
            if (r < 0) {
                int e = errno;
                close(dfd);
                return vfail(c, e, "%s: cannot create the symlink", op->path);
            }
        } else if (!last || op->is_dir) {
            r = mkdirat(dfd, comp, last && op->kind != OP_WAYPOINT ? 0 : imode);
        } else {
            r = openat(dfd, comp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0);
            if (r >= 0)
                close(r);
        }
        if (r < 0 && errno != EEXIST) {
            int e = errno;
            close(dfd);
            return vfail(c, e, "%s: cannot create the mount point", op->path);
        }
        int nd = openat2_path(dfd, comp, O_PATH | O_NOFOLLOW | (last ? 0 : O_DIRECTORY),
                              BENEATH_RESOLVE);
        int e = errno;
        close(dfd);
        if (nd < 0)
            return vfail(c, e, "%s: cannot open the mount point", op->path);
        if (last)
            return nd;
        dfd = nd;
        p = end;
    }
}

static int build_dev(struct vctx *c, int target)
{
    int m = new_tmpfs("0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    if (m < 0)
        return vfail(c, errno, "/dev: cannot create a tmpfs");
    for (size_t k = 0; k < ARRAY_SIZE(dev_nodes); k++) {
        if (c->devsrc[k] < 0)
            continue;
        int f = openat(m, dev_nodes[k], O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0666);
        if (f < 0)
            goto fail;
        close(f);
    }
    if (c->ttysrc >= 0) {
        int f = openat(m, "console", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
        if (f < 0)
            goto fail;
        close(f);
    }
    if (c->exesrc >= 0) {
        int f = openat(m, "cordon", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0555);
        if (f < 0)
            goto fail;
        close(f);
    }
    if (c->plan->trust_bundle) {
        /* TLS interception: the CA certificate and the roots the sandbox
         * trusts (public data; the CA key never leaves the supervisor). */
        int f = openat(m, "cordon-ca.pem", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
        if (f < 0)
            goto fail;
        size_t off = 0;
        while (off < c->plan->trust_len) {
            ssize_t w = write(f, c->plan->trust_bundle + off, c->plan->trust_len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(f);
        if (off != c->plan->trust_len)
            goto fail;
    }
    if (mkdirat(m, "pts", 0755) < 0 || mkdirat(m, "shm", 01777) < 0 ||
        symlinkat("pts/ptmx", m, "ptmx") < 0 || symlinkat("/proc/self/fd", m, "fd") < 0 ||
        symlinkat("/proc/self/fd/0", m, "stdin") < 0 ||
        symlinkat("/proc/self/fd/1", m, "stdout") < 0 ||
        symlinkat("/proc/self/fd/2", m, "stderr") < 0)
        goto fail;
    if (attach(m, target) < 0)
        goto fail;
    for (size_t k = 0; k < ARRAY_SIZE(dev_nodes); k++) {
        if (c->devsrc[k] < 0)
            continue;
        if (move_mount(c->devsrc[k], "", m, dev_nodes[k], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
            int e = errno;
            close(m);
            return vfail(c, e, "/dev/%s: cannot bind the host's device", dev_nodes[k]);
        }
    }
    if (c->ttysrc >= 0 && move_mount(c->ttysrc, "", m, "console", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        int e = errno;
        close(m);
        return vfail(c, e, "/dev/console: cannot bind the caller's terminal");
    }
    if (c->exesrc >= 0 && move_mount(c->exesrc, "", m, "cordon", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        int e = errno;
        close(m);
        return vfail(c, e, "/dev/cordon: cannot bind cordon's own binary");
    }
    int fs = fsopen("devpts", FSOPEN_CLOEXEC);
    if (fs < 0 || fsconfig(fs, FSCONFIG_SET_STRING, "ptmxmode", "0666", 0) < 0 ||
        fsconfig(fs, FSCONFIG_SET_STRING, "mode", "0620", 0) < 0 ||
        fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int e = errno;
        if (fs >= 0)
            close(fs);
        close(m);
        return vfail(c, e, "/dev/pts: cannot create a devpts instance");
    }
    int pts = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC);
    close(fs);
    if (pts < 0 || move_mount(pts, "", m, "pts", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        int e = errno;
        if (pts >= 0)
            close(pts);
        close(m);
        return vfail(c, e, "/dev/pts: cannot mount");
    }
    close(pts);
    int shm = new_tmpfs("1777", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
    if (shm < 0 || move_mount(shm, "", m, "shm", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        int e = errno;
        if (shm >= 0)
            close(shm);
        close(m);
        return vfail(c, e, "/dev/shm: cannot mount");
    }
    close(shm);
    if (setattr(m, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, false) < 0) {
        int e = errno;
        close(m);
        return vfail(c, e, "/dev: cannot make read-only");
    }
    return m;
fail:;
    int e = errno;
    close(m);
    return vfail(c, e, "/dev: cannot populate");
}

static int build_proc(struct vctx *c, int target)
{
    int fs = fsopen("proc", FSOPEN_CLOEXEC);
    if (fs < 0 || fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0) {
        int e = errno;
        if (fs >= 0)
            close(fs);
        return vfail(c, e, "/proc: cannot create a proc instance");
    }
    int pm = fsmount(fs, FSMOUNT_CLOEXEC, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    close(fs);
    if (pm < 0 || attach(pm, target) < 0) {
        int e = errno;
        if (pm >= 0)
            close(pm);
        return vfail(c, e, "/proc: cannot mount");
    }
    if (!c->plan->allow_nested_userns && !(c->plan->disabled & LAYER_USERNS_LIMIT)) {
        /* A second layer against nested user namespaces (seccomp is the
         * first): this namespace may hold one child namespace, the command's.
         * Any namespace the command tries to create is charged here too and
         * fails with ENOSPC (user_namespaces(7), /proc/sys/user). */
        int f = openat(pm, "sys/user/max_user_namespaces", O_WRONLY | O_CLOEXEC);
        if (f < 0 || write(f, "1", 1) != 1) {
            int e = errno;
            if (f >= 0)
                close(f);
            close(pm);
            return vfail(c, e, "/proc/sys/user/max_user_namespaces: cannot limit");
        }
        close(f);
    }
    for (size_t k = 0; k < ARRAY_SIZE(proc_ro); k++) {
        int t = open_tree(pm, proc_ro[k], OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                              AT_SYMLINK_NOFOLLOW);
        if (t < 0) {
            if (errno == ENOENT)
                continue;
            int e = errno;
            close(pm);
            return vfail(c, e, "/proc/%s: cannot clone", proc_ro[k]);
        }
        if (setattr(t, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                           MOUNT_ATTR_NOEXEC, true) < 0 ||
            move_mount(t, "", pm, proc_ro[k], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
            int e = errno;
            close(t);
            close(pm);
            return vfail(c, e, "/proc/%s: cannot make read-only", proc_ro[k]);
        }
        close(t);
    }
    for (size_t k = 0; k < ARRAY_SIZE(proc_masked); k++) {
        struct stat st;
        if (fstatat(pm, proc_masked[k], &st, AT_SYMLINK_NOFOLLOW) < 0 || S_ISDIR(st.st_mode))
            continue;
        int t = open_tree(c->denyfile, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (t < 0 || move_mount(t, "", pm, proc_masked[k], MOVE_MOUNT_F_EMPTY_PATH) < 0) {
            int e = errno;
            if (t >= 0)
                close(t);
            close(pm);
            return vfail(c, e, "/proc/%s: cannot hide", proc_masked[k]);
        }
        close(t);
    }
    return pm;
}

static int do_op(struct vctx *c, size_t i)
{
    const struct mount_op *op = &c->plan->ops[i];
    int target;
    if (op->create) {
        target = make_mountpoint(c, op);
        if (target < 0)
            return target;
    } else {
        target = openat2_path(c->root, rel(op->path), O_PATH | O_NOFOLLOW, BENEATH_RESOLVE);
        if (target < 0)
            return vfail(c, errno, "%s: cannot open the mount target without following symlinks",
                         op->path);
        struct stat st;
        if (fstat(target, &st) < 0) {
            int e = errno;
            close(target);
            return vfail(c, e, "%s: stat", op->path);
        }
        if (S_ISDIR(st.st_mode) != op->is_dir ||
            ((op->dev || op->ino) && (st.st_dev != op->dev || st.st_ino != op->ino))) {
            close(target);
            return vfail(c, 0, "%s: changed while cordon was starting; refusing to mount on it",
                         op->path);
        }
    }

    if (op->kind == OP_WAYPOINT) {
        close(target); /* made in cordon's own tmpfs: nothing is mounted */
        return 0;
    }
    int mounted = -1; /* fd of what was mounted, for the check afterwards */
    int r = 0;
    if (op->from_view) {
        /* The target is what is mounted: a recursive clone of it, made
         * read-only (or left as it is, for a pin). */
        int t = open_tree(target, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE |
                                          AT_EMPTY_PATH);
        if (t < 0 || (op->kind == OP_BIND_RO &&
                      setattr(t, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, true) < 0)) {
            r = vfail(c, errno, "%s: cannot clone", op->path);
            if (t >= 0)
                close(t);
            close(target);
            return r;
        }
        c->src[i] = t;
    }
    switch (op->kind) {
    case OP_PIN_LINK:
    case OP_BIND_RO:
    case OP_BIND_RW:
        if (attach(c->src[i], target) < 0)
            r = vfail(c, errno, "%s: cannot bind", op->path);
        mounted = c->src[i];
        break;
    case OP_MASK_DIR:
    case OP_TMPFS: {
        char mode[8];
        snprintf(mode, sizeof(mode), "%o", op->kind == OP_TMPFS ? 01777u : (unsigned)op->mode);
        int m = new_tmpfs(mode, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                    (op->kind == OP_MASK_DIR ? MOUNT_ATTR_NOEXEC : 0));
        if (m < 0 || attach(m, target) < 0) {
            r = vfail(c, errno, "%s: cannot mount a tmpfs", op->path);
            if (m >= 0)
                close(m);
            break;
        }
        c->src[i] = m;
        mounted = m;
        break;
    }
    case OP_MASK_FILE: {
        int t = open_tree(c->denyfile, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        if (t < 0 || attach(t, target) < 0) {
            r = vfail(c, errno, "%s: cannot hide", op->path);
            if (t >= 0)
                close(t);
            break;
        }
        c->src[i] = t;
        mounted = t;
        break;
    }
    case OP_DEV:
        r = build_dev(c, target);
        if (r >= 0) {
            c->src[i] = r;
            mounted = r;
            r = 0;
        }
        break;
    case OP_PROC:
        r = build_proc(c, target);
        if (r >= 0) {
            c->src[i] = r;
            mounted = r;
            r = 0;
        }
        break;
    default:
        r = vfail(c, EINVAL, "%s: unexpected mount kind", op->path);
    }
    close(target);
    if (r < 0)
        return r;

    /* Verify: the path now resolves, without symlinks, to what we mounted. */
    int v = openat2_path(c->root, rel(op->path), O_PATH | O_NOFOLLOW, BENEATH_RESOLVE);
    if (v < 0)
        return vfail(c, errno, "%s: cannot re-open after mounting", op->path);
    bool ok = same_file(v, mounted);
    close(v);
    if (!ok)
        return vfail(c, 0, "%s: the mount did not land where planned; refusing to continue",
                     op->path);
    return 0;
}

/* Extended copies of .git/info/exclude (see sandbox.h), written into a small
 * read-only tmpfs and bound over the originals. A target that changed since
 * planning is skipped: this only hides placeholders from git. */
static int bind_excludes(struct vctx *c)
{
    if (c->plan->nexcludes == 0)
        return 0;
    int m = new_tmpfs("0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (m < 0)
        return vfail(c, errno, "cannot create the tmpfs for git excludes");
    /* Kernels before 6.15 only clone from attached mounts: park it on the
     * old root's /proc, which is detached with the old root. */
    if (move_mount(m, "", AT_FDCWD, "/proc", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        int e = errno;
        close(m);
        return vfail(c, e, "cannot attach the tmpfs for git excludes");
    }
    int r = 0;
    for (size_t i = 0; i < c->plan->nexcludes && r == 0; i++) {
        const struct exclude_bind *x = &c->plan->excludes[i];
        char name[32];
        snprintf(name, sizeof(name), "exclude-%zu", i);
        int f = openat(m, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
        if (f < 0) {
            r = vfail(c, errno, "cannot write a git exclude file");
            break;
        }
        size_t off = 0;
        while (off < x->len) {
            ssize_t w = write(f, x->content + off, x->len - off);
            if (w <= 0)
                break;
            off += (size_t)w;
        }
        close(f);
        int tgt = openat2_path(c->root, rel(x->path), O_PATH | O_NOFOLLOW, BENEATH_RESOLVE);
        struct stat st;
        if (tgt < 0 || fstat(tgt, &st) < 0 || st.st_dev != x->dev || st.st_ino != x->ino) {
            if (tgt >= 0)
                close(tgt);
            continue;
        }
        int t = open_tree(m, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        if (t < 0 || setattr(t, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                    MOUNT_ATTR_NOEXEC, false) < 0 ||
            attach(t, tgt) < 0)
            r = vfail(c, errno, "%s: cannot bind", x->path);
        if (t >= 0)
            close(t);
        close(tgt);
    }
    close(m);
    return r;
}

/* Credentials (tls/creds.h): a masked file is replaced by its fake, read-only;
 * a hidden one by the empty mode-000 file. A file that is no longer the one
 * whose secrets were read refuses the run (the real content could show). A
 * file the view does not show needs nothing. */
static int bind_fakes(struct vctx *c)
{
    if (c->plan->nfakes == 0)
        return 0;
    int m = new_tmpfs("0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (m < 0)
        return vfail(c, errno, "cannot create the tmpfs for masked credentials");
    if (move_mount(m, "", AT_FDCWD, "/proc", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        int e = errno;
        close(m);
        return vfail(c, e, "cannot attach the tmpfs for masked credentials");
    }
    int r = 0;
    for (size_t i = 0; i < c->plan->nfakes && r == 0; i++) {
        const struct fake_bind *fb = &c->plan->fakes[i];
        int tgt = openat2_path(c->root, rel(fb->path), O_PATH | O_NOFOLLOW, BENEATH_RESOLVE);
        if (tgt < 0)
            continue; /* not visible in the sandbox */
        struct stat st;
        if (fstat(tgt, &st) < 0 || st.st_dev != fb->dev || st.st_ino != fb->ino) {
            close(tgt);
            r = vfail(c, 0, "%s: changed while the sandbox was being made; refusing to run",
                      fb->path);
            break;
        }
        int t;
        if (fb->deny) {
            t = open_tree(c->denyfile, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
        } else {
            char name[32];
            snprintf(name, sizeof(name), "fake-%zu", i);
            int f = openat(m, name, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
            size_t off = 0;
            while (f >= 0 && off < fb->len) {
                ssize_t w = write(f, fb->content + off, fb->len - off);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
            if (f >= 0)
                close(f);
            if (f < 0 || off < fb->len) {
                close(tgt);
                r = vfail(c, errno, "%s: cannot write the masked copy", fb->path);
                break;
            }
            t = open_tree(m, name, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
        }
        if (t < 0 || setattr(t, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                                    MOUNT_ATTR_NOEXEC, false) < 0 ||
            attach(t, tgt) < 0)
            r = vfail(c, errno, "%s: cannot bind the masked copy", fb->path);
        if (t >= 0)
            close(t);
        close(tgt);
    }
    close(m);
    return r;
}

/* Programs that read the system bundle directly trust cordon's CA too: the
 * bundle in /dev is bound over it (a symlinked or missing system bundle is
 * left alone; the CA variables still point to /dev/cordon-ca.pem). */
static int bind_trust_bundle(struct vctx *c)
{
    if (!c->plan->trust_bundle)
        return 0;
    int src = openat2_path(c->root, rel(CORDON_TRUST_IN_SANDBOX), O_PATH | O_NOFOLLOW,
                           BENEATH_RESOLVE);
    if (src < 0)
        return vfail(c, errno, CORDON_TRUST_IN_SANDBOX ": cannot open");
    int tgt = openat2_path(c->root, rel(SYSTEM_TRUST_BUNDLE), O_PATH | O_NOFOLLOW,
                           BENEATH_RESOLVE);
    struct stat st;
    if (tgt < 0 || fstat(tgt, &st) < 0 || !S_ISREG(st.st_mode)) {
        if (tgt >= 0)
            close(tgt);
        close(src);
        return 0;
    }
    int t = open_tree(src, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    int r = 0;
    if (t < 0 || attach(t, tgt) < 0)
        r = vfail(c, errno, SYSTEM_TRUST_BUNDLE ": cannot bind the trust bundle");
    if (t >= 0)
        close(t);
    close(tgt);
    close(src);
    return r;
}

/* network.transparent (capture.h): /etc/resolv.conf names the sandbox's own
 * DNS server. The file is bound over the host's entry, which is often a
 * symlink into /run (systemd-resolved, resolvconf): the bind covers the
 * link itself, so the sandbox reads cordon's file whatever the link points
 * to, and nothing under /run changes. No entry (or a denied /etc): nothing
 * to do, glibc then asks 127.0.0.1 by default. */
static int bind_resolv_conf(struct vctx *c)
{
    const struct capture_plan *cp = &c->plan->capture;
    if (!cp->resolv_conf)
        return 0;
    int tgt = openat2_path(c->root, "etc/resolv.conf", O_PATH | O_NOFOLLOW, BENEATH_RESOLVE);
    struct stat st;
    if (tgt < 0 || fstat(tgt, &st) < 0 || S_ISDIR(st.st_mode)) {
        if (tgt >= 0)
            close(tgt);
        return 0;
    }
    int m = new_tmpfs("0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC);
    if (m < 0 || move_mount(m, "", AT_FDCWD, "/proc", MOVE_MOUNT_F_EMPTY_PATH) < 0) {
        int e = errno;
        if (m >= 0)
            close(m);
        close(tgt);
        return vfail(c, e, "cannot create the tmpfs for /etc/resolv.conf");
    }
    int r = 0;
    int f = openat(m, "resolv.conf", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0444);
    size_t off = 0;
    while (f >= 0 && off < cp->resolv_len) {
        ssize_t w = write(f, cp->resolv_conf + off, cp->resolv_len - off);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (f >= 0)
        close(f);
    int t = -1;
    if (f < 0 || off < cp->resolv_len)
        r = vfail(c, errno, "/etc/resolv.conf: cannot write cordon's copy");
    else if ((t = open_tree(m, "resolv.conf", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)) < 0 ||
             setattr(t, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV |
                            MOUNT_ATTR_NOEXEC, false) < 0 ||
             attach(t, tgt) < 0)
        r = vfail(c, errno, "/etc/resolv.conf: cannot bind cordon's copy");
    if (t >= 0)
        close(t);
    close(m);
    close(tgt);
    return r;
}

int mountview_build(const struct sandbox_plan *plan, int *scratch, char *err, size_t errlen)
{
    struct vctx c = { .plan = plan, .src = scratch, .root = -1, .denyfile = -1, .ttysrc = -1,
                      .err = err, .errlen = errlen };
    for (size_t i = 0; i < plan->nops; i++)
        scratch[i] = -1;

    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return vfail(&c, errno, errno == EPERM
                                    ? "cannot make the mount namespace private (the sandbox's "
                                      "user namespace holds no capabilities: user namespaces "
                                      "may be restricted, e.g. by AppArmor; run `cordon doctor`)"
                                    : "cannot make the mount namespace private");
    int r = grab_sources(&c);
    if (r < 0)
        return r;

    const struct mount_op *root = &plan->ops[0];
    if (root->kind == OP_ROOT_MASK) {
        char mode[8];
        snprintf(mode, sizeof(mode), "%o", (unsigned)root->mode);
        c.src[0] = new_tmpfs(mode, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV);
        if (c.src[0] < 0)
            return vfail(&c, errno, "/: cannot create the empty root");
    }
    /* Stack the new root on top of the old one and enter it. */
    if (move_mount(c.src[0], "", AT_FDCWD, "/", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return vfail(&c, errno, "/: cannot attach the new root");
    c.root = c.src[0];
    if (fchdir(c.root) < 0)
        return vfail(&c, errno, "/: cannot enter the new root");

    for (size_t i = 1; i < plan->nops; i++) {
        r = do_op(&c, i);
        if (r < 0)
            return r;
    }
    r = bind_excludes(&c);
    if (r == 0)
        r = bind_trust_bundle(&c);
    if (r == 0)
        r = bind_fakes(&c);
    if (r == 0)
        r = bind_resolv_conf(&c);
    if (r < 0)
        return r;
    /* Read-denied directories become read-only once their mount points exist. */
    for (size_t i = 0; i < plan->nops; i++) {
        enum op_kind k = plan->ops[i].kind;
        if ((k == OP_MASK_DIR || k == OP_ROOT_MASK) &&
            setattr(c.src[i], MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, false) < 0)
            return vfail(&c, errno, "%s: cannot make read-only", plan->ops[i].path);
    }
    if (syscall(SYS_pivot_root, ".", ".") < 0)
        return vfail(&c, errno, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0)
        return vfail(&c, errno, "cannot detach the host's root");
    if (chdir("/") < 0)
        return vfail(&c, errno, "chdir /");
    for (size_t i = 0; i < plan->nops; i++)
        if (scratch[i] >= 0)
            close(scratch[i]);
    for (size_t k = 0; k < ARRAY_SIZE(dev_nodes); k++)
        if (c.devsrc[k] >= 0)
            close(c.devsrc[k]);
    close(c.denyfile);
    if (c.exesrc >= 0)
        close(c.exesrc);
    if (c.ttysrc >= 0)
        close(c.ttysrc);
    return 0;
}
