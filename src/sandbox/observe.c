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
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h> /* ST_RDONLY */
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

/* What the listener's thread hands to the loop: a record to emit, or a
 * notification only the loop can serve (a connect(), unixsock.h). */
struct handoff {
    struct handoff *next;
    const char *event;          /* a record: "fs.deny", "syscall.deny" */
    bool quiet;
    json_t *fields;
    struct seccomp_notif *req;  /* or a connect() to perform */
};

/* The listener is served by a thread of its own, waiting in poll(2): with
 * SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP the caller's CPU then runs the thread
 * while the caller waits, and the caller again once answered. libuv waits
 * in epoll, which does not pass that wake-up on: a command in its own
 * session (its own scheduler autogroup) and the supervisor then wake each
 * other across CPUs, about 45 us a round trip on the 2-core VM of bench/
 * against 6 us. The thread never touches the loop's state: records and
 * connects go to the loop through a locked list and an async handle. */
struct observer {
    int fd;
    int stopfd;       /* eventfd: the loop asks the thread to end */
    int rootfd;       /* the thread's: the caller's root (see root_fd), or -1 */
    int loop_rootfd;  /* the loop's, for connect() */
    char rootpath[PATH_MAX]; /* the thread's: rootfd's path (root_path), or "" */
    struct mount_ro {
        uint64_t id;
        bool ro;
    } mounts[64];             /* the thread's: see mount_state */
    size_t nmounts;
    struct observe_config cfg;
    struct seccomp_notif *req;        /* the thread's */
    struct seccomp_notif_resp *resp;  /* the thread's */
    struct seccomp_notif_resp *loop_resp;
    struct seccomp_notif_sizes sizes;
    pthread_t thread;
    bool thread_started;
    uv_async_t async;
    pthread_mutex_t mu;
    struct handoff *head, **tail;
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
static int root_fd(int *cache, pid_t pid)
{
    if (*cache >= 0)
        return *cache;
    char root[64];
    snprintf(root, sizeof(root), "/proc/%d/root", pid);
    *cache = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    return *cache;
}

/* The caller's root as a path in its mount namespace (see view_path): "/"
 * for the sandbox's, kept; a task in a namespace of its own may have
 * chrooted (own: asked for each record). */
static bool root_path(struct observer *o, pid_t pid, bool own, char *out, size_t n)
{
    if (!own && o->rootpath[0]) {
        snprintf(out, n, "%s", o->rootpath);
        return true;
    }
    char link[64];
    snprintf(link, sizeof(link), "/proc/%d/root", pid);
    ssize_t k = readlink(link, out, n - 1);
    if (k <= 0 || out[0] != '/')
        return false;
    out[k] = '\0';
    if (!own)
        snprintf(o->rootpath, sizeof(o->rootpath), "%s", out);
    return true;
}

/* ---- the thread and the loop --------------------------------------------- */

/* Queue for the loop (fields stolen; req copied). Dropped only when memory
 * runs out: the answer to the caller never depends on it. */
static void hand_off(struct observer *o, const char *event, bool quiet, json_t *fields,
                     const struct seccomp_notif *req)
{
    struct handoff *h = calloc(1, sizeof(*h));
    if (h && req) {
        h->req = malloc(o->sizes.seccomp_notif);
        if (h->req)
            memcpy(h->req, req, o->sizes.seccomp_notif);
    }
    if (!h || (req && !h->req)) {
        free(h);
        json_decref(fields);
        return;
    }
    h->event = event;
    h->quiet = quiet;
    h->fields = fields;
    pthread_mutex_lock(&o->mu);
    *o->tail = h;
    o->tail = &h->next;
    pthread_mutex_unlock(&o->mu);
    uv_async_send(&o->async);
}

enum lookup { L_ABSENT, L_RW, L_RO, L_UNKNOWN };

/* Where lookups start: the caller's root (RESOLVE_IN_ROOT), or a directory
 * of the caller's that its root does not lead to (RESOLVE_BENEATH: see
 * observe_write). */
struct view {
    int fd;
    uint64_t scope;
};

/* Open path (O_PATH) in the caller's view, its final symlink followed or
 * not, resolved as the kernel resolves it for the caller: below the
 * caller's root (RESOLVE_IN_ROOT: ".." and absolute symlinks stop there),
 * each ".." after the component it follows. Magic links (/proc/self/fd/N)
 * are refused (ELOOP); from a directory the root does not lead to, so is
 * any way out of it (EXDEV). */
static int open_in(const struct view *v, const char *path, bool follow)
{
    struct open_how how = { .flags = O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW),
                            .resolve = v->scope | RESOLVE_NO_MAGICLINKS };
    if (v->scope == RESOLVE_IN_ROOT) {
        while (*path == '/')
            path++;
    } else if (*path == '/') {
        errno = EXDEV;
        return -1;
    }
    /* A scoped lookup through ".." fails with EAGAIN when a rename or a
     * mount anywhere on the machine raced with it (openat2(2)): try again. */
    int fd, tries = 0;
    do
        fd = (int)syscall(SYS_openat2, v->fd, *path ? path : ".", &how, sizeof(how));
    while (fd < 0 && errno == EAGAIN && ++tries < 64);
    return fd;
}

/* What a lookup found: absent, on a writable mount, on a read-only one, or
 * unknown (a magic link such as /dev/stdout -> /proc/self/fd/1, which means
 * the caller's own fd: not judged here). A directory the caller may not
 * search (a denied one, mode 000) counts as read-only. */
struct found {
    enum lookup st;
    mode_t type;      /* S_IFMT of what was found, 0 when not known */
    uint64_t mnt;     /* its mount's id, 0 when not known */
    bool dangling;    /* followed: a symlink whose target does not exist */
    bool mount_root;  /* the root of its mount (or not known): its directory
                         may lie on another mount */
};

static enum lookup failed(int e)
{
    return e == ENOENT || e == ENOTDIR ? L_ABSENT : e == EACCES ? L_RO : L_UNKNOWN;
}

/* Is fd's mount read-only? The answer per mount id is kept when cache is
 * set: the sandbox's mounts are made before the command starts and it can
 * neither add, remove nor remount one (no CAP_SYS_ADMIN, and the filter
 * refuses the mount family unless allowNestedUserNamespaces, when it is not
 * kept). */
static enum lookup mount_state(struct observer *o, int fd, const struct statx *sx, bool cache)
{
    cache = cache && (sx->stx_mask & STATX_MNT_ID);
    for (size_t i = 0; cache && i < o->nmounts; i++)
        if (o->mounts[i].id == sx->stx_mnt_id)
            return o->mounts[i].ro ? L_RO : L_RW;
    struct statfs sf;
    if (fstatfs(fd, &sf) < 0)
        return L_UNKNOWN;
    bool ro = sf.f_flags & ST_RDONLY;
    if (cache && o->nmounts < sizeof(o->mounts) / sizeof(o->mounts[0]))
        o->mounts[o->nmounts++] = (struct mount_ro){ sx->stx_mnt_id, ro };
    return ro ? L_RO : L_RW;
}

/* Look path up in the caller's view. Followed, it is first looked up
 * without following: for a name that does not exist (a file being made)
 * that one lookup also says it is no dangling symlink. */
static struct found look(struct observer *o, const struct view *v, const char *path, bool follow,
                         bool cache)
{
    struct found f = { .st = L_UNKNOWN, .mount_root = true };
    int fd = open_in(v, path, false);
    if (fd < 0) {
        f.st = failed(errno);
        return f;
    }
    struct statx sx;
    const unsigned mask = STATX_TYPE | STATX_MNT_ID;
    if (statx(fd, "", AT_EMPTY_PATH, mask, &sx) < 0) {
        close(fd);
        return f;
    }
    if (follow && S_ISLNK(sx.stx_mode)) {
        close(fd);
        fd = open_in(v, path, true);
        if (fd < 0) {
            f.st = failed(errno);
            f.dangling = f.st == L_ABSENT;
            return f;
        }
        if (statx(fd, "", AT_EMPTY_PATH, mask, &sx) < 0) {
            close(fd);
            return f;
        }
    }
    f.type = sx.stx_mode & S_IFMT;
    f.mnt = (sx.stx_mask & STATX_MNT_ID) ? sx.stx_mnt_id : 0;
    f.mount_root = !(sx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) ||
                   (sx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
    f.st = mount_state(o, fd, &sx, cache);
    close(fd);
    return f;
}

/* The directory that holds path's last component, and that component, as
 * the kernel splits it (trailing slashes belong to the last component):
 * "a/b/" is "a" and "b", "b" is "." and "b", "/b" is "/" and "b", "/" is
 * "/" and "". */
static void split_last(const char *path, char *dir, size_t dn, char *last, size_t ln)
{
    snprintf(dir, dn, "%s", path);
    size_t l = strlen(dir);
    while (l > 1 && dir[l - 1] == '/')
        dir[--l] = '\0';
    char *slash = strrchr(dir, '/');
    snprintf(last, ln, "%s", slash ? (strcmp(dir, "/") == 0 ? "" : slash + 1) : dir);
    if (!slash)
        snprintf(dir, dn, ".");
    else if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
}

static struct found look_parent(struct observer *o, const struct view *v, const char *path,
                                bool cache)
{
    char dir[PATH_MAX * 2], last[PATH_MAX];
    split_last(path, dir, sizeof(dir), last, sizeof(last));
    return look(o, v, dir, true, cache);
}

static enum lookup lookup_parent(struct observer *o, const struct view *v, const char *path,
                                 bool cache)
{
    return look_parent(o, v, path, cache).st;
}

enum obs_kind {
    K_OPEN,    /* by its flags */
    K_CREATE,  /* a new name: EEXIST when it exists, else its directory decides */
    K_REMOVE,  /* an existing name leaves (or is replaced in) its directory */
    K_REPLACE, /* a rename's new name: K_REMOVE when it exists, else K_CREATE */
    K_CHANGE,  /* an existing object changes (mode, owner) */
    K_TRUNCATE, /* an existing regular file's size changes */
};

/* What a dangling symlink at path leads to, as a path to resolve in the
 * caller's root (a relative target joined to the link's directory, not
 * normalised: its ".." follows what the directory resolves to), through
 * a chain of them as the kernel follows it for O_CREAT (at most 40). False
 * when path is not a symlink. */
static bool dangling_target(const struct view *v, const char *path, char *out, size_t n)
{
    char cur[PATH_MAX * 2];
    snprintf(cur, sizeof(cur), "%s", path);
    bool any = false;
    for (int hops = 0; hops < 40; hops++) {
        int fd = open_in(v, cur, false);
        if (fd < 0)
            break;
        char t[PATH_MAX];
        ssize_t k = readlinkat(fd, "", t, sizeof(t) - 1);
        close(fd);
        if (k <= 0)
            break;
        t[k] = '\0';
        char dir[PATH_MAX * 2], last[PATH_MAX];
        split_last(cur, dir, sizeof(dir), last, sizeof(last));
        if (t[0] == '/')
            snprintf(out, n, "%s", t);
        else if (snprintf(out, n, "%s/%s", dir, t) >= (int)n)
            return false;
        snprintf(cur, sizeof(cur), "%s", out);
        any = true;
    }
    return any;
}

/* Where fd is, as the caller sees it: the path /proc/self/fd shows the
 * supervisor (from the root of the caller's mount namespace, which the
 * supervisor does not share) less the caller's root, root (its path in that
 * namespace, "/" unless the caller is chrooted). False when that root does
 * not lead there, or the object was removed. */
static bool view_path(const char *root, int fd, char *out, size_t n)
{
    char link[32], buf[PATH_MAX];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t k = readlink(link, buf, sizeof(buf) - 1);
    if (k <= 0 || buf[0] != '/')
        return false;
    buf[k] = '\0';
    if (k > 10 && strcmp(buf + k - 10, " (deleted)") == 0)
        return false;
    size_t rl = strcmp(root, "/") == 0 ? 0 : strlen(root);
    if (rl && !cordon_path_is_prefix(root, buf))
        return false;
    return snprintf(out, n, "%s", buf[rl] ? buf + rl : "/") < (int)n;
}

/* Where path led in the caller's view (absolute, normalised): the object
 * it names, else (a name that does not exist) the directory that would
 * hold it and the name; a dangling symlink followed leads to what it
 * would create. False when unknown. */
static bool where_it_led(const char *root, const struct view *v, const char *path, bool follow, char *out,
                         size_t n)
{
    int fd = open_in(v, path, follow);
    if (fd >= 0) {
        bool ok = view_path(root, fd, out, n);
        close(fd);
        return ok;
    }
    if (errno != ENOENT)
        return false;
    char lt[PATH_MAX * 2], dir[PATH_MAX * 2], last[PATH_MAX], d[PATH_MAX];
    if (follow && dangling_target(v, path, lt, sizeof(lt)))
        path = lt;
    split_last(path, dir, sizeof(dir), last, sizeof(last));
    fd = open_in(v, dir, true);
    if (fd < 0)
        return false;
    bool ok = view_path(root, fd, d, sizeof(d));
    close(fd);
    if (!ok || snprintf(out, n, "%s/%s", d, last) >= (int)n)
        return false;
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

/* Will the operation be refused by the view (a read-only mount, a denied
 * directory)? Operations that fail for other reasons (EEXIST, ENOENT) or
 * that write nothing are not denials. path is the normalised path (for the
 * policy's lists), walk the one the caller gave, made absolute, which the
 * lookups resolve as the kernel does. */
/* A new or removed name must be an ordinary one: "/", "." and ".." are
 * EEXIST, EINVAL, ENOTEMPTY, EBUSY or EISDIR before the mount is asked
 * (filename_create, do_rmdir, do_unlinkat, do_renameat2 in fs/namei.c). */
static bool ordinary_name(const char *path)
{
    char dir[PATH_MAX * 2], last[PATH_MAX];
    split_last(path, dir, sizeof(dir), last, sizeof(last));
    return *last && strcmp(last, ".") != 0 && strcmp(last, "..") != 0;
}

static bool refused(struct observer *o, const struct view *v, bool cache, const char *path,
                    const char *walk, enum obs_kind k, uint64_t flags, bool follow,
                    bool placeholder)
{
    if (k != K_OPEN && k != K_CHANGE && k != K_TRUNCATE && !ordinary_name(walk))
        return false;
    if (read_denied(o, path))
        return k != K_OPEN || (flags & (O_WRONLY | O_RDWR | O_TRUNC | O_APPEND | O_CREAT));
    struct found obj = look(o, v, walk, follow, cache);
    if (obj.st == L_UNKNOWN)
        return false;
    char lt[PATH_MAX * 2];
    if (obj.dangling && dangling_target(v, walk, lt, sizeof(lt))) {
        /* A dangling link: the object made is its target. Through /proc it
         * is the caller's own (/dev/stdout -> /proc/self/fd/1): not judged. */
        char norm[PATH_MAX * 2];
        snprintf(norm, sizeof(norm), "%s", lt);
        cordon_path_normalize(norm);
        if (cordon_path_is_prefix("/proc", norm))
            return false;
        walk = lt;
    }
    if (k == K_REPLACE)
        k = obj.st == L_ABSENT ? K_CREATE : K_REMOVE;
    switch (k) {
    case K_OPEN: {
        bool write = flags & (O_WRONLY | O_RDWR | O_TRUNC | O_APPEND);
        if (obj.st == L_ABSENT)
            return (flags & O_CREAT) && lookup_parent(o, v, walk, cache) == L_RO;
        if ((flags & O_CREAT) && (flags & O_EXCL))
            return false; /* EEXIST */
        /* What open(2) does with what it found (do_open, may_open): a
         * symlink not followed is ELOOP; a directory EISDIR, unless
         * O_TMPFILE makes a file in it; a FIFO or a socket is opened for
         * writing on a read-only mount too (only regular files, directories
         * and symlinks are EROFS there). */
        if (S_ISLNK(obj.type))
            return false;
        if (S_ISDIR(obj.type))
            return (flags & __O_TMPFILE) && obj.st == L_RO;
        if (S_ISFIFO(obj.type) || S_ISSOCK(obj.type))
            return false;
        return write && obj.st == L_RO;
    }
    case K_CREATE:
        /* EEXIST is no denial, except on cordon's placeholder for a
         * protected name (".claude" exists only because it is protected) */
        return obj.st == L_ABSENT ? lookup_parent(o, v, walk, cache) == L_RO : placeholder;
    case K_REMOVE:
        /* its directory is on its mount, unless it is a mount's root */
        return obj.st != L_ABSENT &&
               (obj.st == L_RO || (obj.mount_root && lookup_parent(o, v, walk, cache) == L_RO));
    case K_CHANGE:
        return obj.st == L_RO;
    case K_TRUNCATE:
        /* a directory is EISDIR, anything else but a file EINVAL */
        return obj.st == L_RO && (!obj.type || S_ISREG(obj.type));
    case K_REPLACE:
        break;
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
    const cordon_policy *p = o->cfg.policy;
    /* a denyWrite entry, also where it did not exist: the placeholder at its
     * first missing component */
    for (size_t i = 0; p && i < p->fs.deny_write.n; i++)
        if (under(p->fs.deny_write.v[i].path, path) ||
            (under(path, p->fs.deny_write.v[i].path) && is_placeholder(o, path)))
            return "denyWrite";
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
    for (size_t i = 0; p && i < p->fs.deny_read.n; i++)
        if (under(p->fs.deny_read.v[i].path, path))
            return "denyRead";
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

/* The kernel's O_LARGEFILE (include/uapi/asm-generic/fcntl.h): glibc
 * defines it as 0 on 64-bit ABIs, where open(2) sets it by itself. */
#define KERNEL_O_LARGEFILE 0100000
/* The open flags the kernel knows (VALID_OPEN_FLAGS, include/linux/fcntl.h) */
#define VALID_OPEN_FLAGS                                                                         \
    ((uint64_t)(O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_APPEND | O_NONBLOCK |      \
                O_DSYNC | O_SYNC | O_ASYNC | O_DIRECT | KERNEL_O_LARGEFILE | O_DIRECTORY |      \
                O_NOFOLLOW | O_NOATIME | O_CLOEXEC | O_PATH | O_TMPFILE))
/* The first struct open_how, and the smallest size openat2(2) takes */
#define OPEN_HOW_SIZE_VER0 24
#define VALID_RESOLVE_FLAGS                                                                      \
    ((uint64_t)(RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | \
                RESOLVE_IN_ROOT | RESOLVE_CACHED))

/* Would an open with these flags reach the file, to write it? Not with
 * O_PATH (open(2) and openat(2) drop every other flag, openat2(2) refuses
 * them), nor when build_open_flags() in fs/open.c refuses the flags before
 * any lookup: O_CREAT with O_DIRECTORY (EINVAL since Linux 6.4), O_TMPFILE
 * with O_CREAT or without write access. */
static bool open_attempted(uint64_t flags)
{
    if (flags & O_PATH)
        return false;
    if ((flags & (O_CREAT | O_DIRECTORY)) == (O_CREAT | O_DIRECTORY))
        return false;
    if ((flags & __O_TMPFILE) &&
        ((flags & (O_TMPFILE | O_CREAT)) != O_TMPFILE || !(flags & (O_WRONLY | O_RDWR))))
        return false;
    return true;
}

/* Read the caller's struct open_how the way openat2(2) does
 * (copy_struct_from_user, build_open_flags): a size below the first
 * version is EINVAL, above a page E2BIG, and bytes beyond the struct this
 * build knows must be zero (else E2BIG); unknown flags or resolve bits, a
 * mode without O_CREAT or O_TMPFILE, and RESOLVE_BENEATH with
 * RESOLVE_IN_ROOT are EINVAL, RESOLVE_CACHED with a creation or O_TRUNC
 * EAGAIN. Such a call never looks at its path: false, no denial. */
static bool read_open_how(pid_t pid, uint64_t addr, uint64_t usize, struct open_how *how)
{
    if (usize < OPEN_HOW_SIZE_VER0 || usize > (uint64_t)sysconf(_SC_PAGESIZE))
        return false;
    *how = (struct open_how){ 0 };
    size_t n = usize < sizeof(*how) ? (size_t)usize : sizeof(*how);
    struct iovec l = { how, n }, r = { (void *)(uintptr_t)addr, n };
    if (process_vm_readv(pid, &l, 1, &r, 1, 0) != (ssize_t)n)
        return false; /* EFAULT (or the caller is gone) */
    for (uint64_t at = n; at < usize;) {
        unsigned char rest[256];
        size_t k = usize - at < sizeof(rest) ? (size_t)(usize - at) : sizeof(rest);
        struct iovec lr = { rest, k }, rr = { (void *)(uintptr_t)(addr + at), k };
        if (process_vm_readv(pid, &lr, 1, &rr, 1, 0) != (ssize_t)k)
            return false;
        for (size_t i = 0; i < k; i++)
            if (rest[i])
                return false;
        at += k;
    }
    uint64_t f = how->flags & ~(uint64_t)O_CLOEXEC;
    if ((f & ~VALID_OPEN_FLAGS) || (how->resolve & ~VALID_RESOLVE_FLAGS))
        return false;
    if ((how->resolve & RESOLVE_BENEATH) && (how->resolve & RESOLVE_IN_ROOT))
        return false;
    if ((f & (O_CREAT | __O_TMPFILE)) ? (how->mode & ~(uint64_t)07777) != 0 : how->mode != 0)
        return false;
    if ((f & O_PATH) && (f & ~(uint64_t)(O_PATH | O_DIRECTORY | O_NOFOLLOW)))
        return false;
    if ((how->resolve & RESOLVE_CACHED) && (f & (O_TRUNC | O_CREAT | __O_TMPFILE)))
        return false;
    return true;
}

/* The paths a write-intent syscall changes (up to two: rename's source and
 * destination). openat2's flags are read from the caller's memory. */
static int paths_of(pid_t pid, int nr, const uint64_t *a, struct pathargs out[2])
{
    int cwd = AT_FDCWD;
#define P(d, x, k, f, fl) (struct pathargs){ (int)(d), (x), (k), (f), (fl) }
    switch (nr) {
#ifdef SYS_open
    case SYS_open:
        if (!open_attempted(a[1]))
            return 0;
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
        out[1] = P(cwd, a[1], K_REPLACE, 0, false);
        return 2;
    case SYS_link:
    case SYS_symlink:
        out[0] = P(cwd, a[1], K_CREATE, 0, false);
        return 1;
#endif
    case SYS_truncate:
        out[0] = P(cwd, a[0], K_TRUNCATE, 0, true);
        return 1;
    case SYS_openat:
        if (!open_attempted(a[2]))
            return 0;
        out[0] = P(a[0], a[1], K_OPEN, a[2], !(a[2] & O_NOFOLLOW));
        return 1;
    case SYS_openat2: {
        struct open_how how;
        if (!read_open_how(pid, a[2], a[3], &how) || !open_attempted(how.flags))
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
        out[1] = P(a[2], a[3], K_REPLACE, 0, false);
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

/* Does the caller's root lead to its directory dirfd (AT_FDCWD: its working
 * directory), which /proc names base? Not for a detached mount tree
 * (open_tree(2) with OPEN_TREE_CLONE, fsmount(2)), which /proc names from
 * the tree's own top ("/" for the clone of .../outside), nor for a
 * directory outside the caller's chroot(2). Both need namespaces of the
 * command's own (allowNestedUserNamespaces), so only then is it asked: the
 * directory itself is opened (*copy) and compared with what base names in
 * the caller's root, and base is made relative to that root. */
static bool reachable(struct observer *o, pid_t pid, int dirfd, int rfd, char *base, int *copy)
{
    char link[64];
    if (dirfd == AT_FDCWD)
        snprintf(link, sizeof(link), "/proc/%d/cwd", pid);
    else
        snprintf(link, sizeof(link), "/proc/%d/fd/%d", pid, dirfd);
    *copy = open(link, O_PATH | O_CLOEXEC);
    struct statx a;
    if (*copy < 0 || statx(*copy, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &a) < 0)
        return false;
    const struct view v = { rfd, RESOLVE_IN_ROOT };
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) { /* chrooted: base from the caller's root */
            char root[PATH_MAX];
            size_t rl;
            if (!root_path(o, pid, true, root, sizeof(root)) || strcmp(root, "/") == 0 ||
                !cordon_path_is_prefix(root, base))
                return false;
            rl = strlen(root);
            memmove(base, base[rl] ? base + rl : "/", strlen(base[rl] ? base + rl : "/") + 1);
        }
        int fd = open_in(&v, base, true);
        struct statx b;
        bool same = fd >= 0 && statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_MNT_ID, &b) == 0 &&
                    a.stx_ino == b.stx_ino && a.stx_dev_major == b.stx_dev_major &&
                    a.stx_dev_minor == b.stx_dev_minor &&
                    (!(a.stx_mask & b.stx_mask & STATX_MNT_ID) || a.stx_mnt_id == b.stx_mnt_id);
        if (fd >= 0)
            close(fd);
        if (same)
            return true;
    }
    return false;
}

static void observe_write(struct observer *o, const struct seccomp_notif *req)
{
    const struct seccomp_data *d = &req->data;
    uint64_t args[6];
    for (int i = 0; i < 6; i++)
        args[i] = d->args[i];
    struct pathargs pa[2];
    int np = paths_of((pid_t)req->pid, d->nr, args, pa);
    /* Every task shares the sandbox's root, opened once; with nested user
     * namespaces allowed a task may chroot(2) in one of its own, so its
     * paths are resolved in its own root. */
    int own = -1;
    bool own_ns = o->cfg.seccomp.allow_nested_userns;
    int rfd = !np     ? -1
              : own_ns ? root_fd(&own, (pid_t)req->pid)
                       : root_fd(&o->rootfd, (pid_t)req->pid);
    char base[PATH_MAX];
    int base_of = -1; /* whose directory base is (a rename names one twice) */
    char raws[2][PATH_MAX];
    bool got[2] = { false, false };
    for (int i = 0; i < np && rfd >= 0; i++)
        got[i] = read_string((pid_t)req->pid, pa[i].addr, raws[i], sizeof(raws[i])) >= 0;
    /* The memory was read while the caller waited: still the same call? */
    if (rfd >= 0 && (got[0] || got[1]) && ioctl(o->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0)
        np = 0;
    /* Each path: where its lookups start, the path they resolve (walk) and
     * the one recorded (full). */
    struct named {
        bool ok, unreachable;
        struct view v;
        int copy;
        char walk[PATH_MAX * 2], full[PATH_MAX * 2];
    } nm[2];
    for (int i = 0; i < 2; i++) { /* the scalars: the paths are written before use */
        nm[i].ok = nm[i].unreachable = false;
        nm[i].v = (struct view){ rfd, RESOLVE_IN_ROOT };
        nm[i].copy = -1;
        nm[i].walk[0] = nm[i].full[0] = '\0';
    }
    for (int i = 0; i < np && rfd >= 0; i++) {
        struct named *n = &nm[i];
        const char *raw = raws[i];
        if (!got[i])
            continue;
        if (raw[0] == '/') {
            snprintf(n->walk, sizeof(n->walk), "%s", raw);
            snprintf(n->full, sizeof(n->full), "%s", raw);
            cordon_path_normalize(n->full);
            n->ok = true;
            continue;
        }
        if (own_ns || base_of < 0 || pa[base_of].dirfd != pa[i].dirfd) {
            if (base_dir((pid_t)req->pid, pa[i].dirfd, base, sizeof(base)) < 0)
                continue;
            base_of = i;
        }
        if (own >= 0 && !reachable(o, (pid_t)req->pid, pa[i].dirfd, rfd, base, &n->copy)) {
            /* Judged below that directory, and named as getcwd(3) names a
             * directory the root does not lead to. */
            if (n->copy < 0)
                continue;
            n->v = (struct view){ n->copy, RESOLVE_BENEATH };
            n->unreachable = true;
            snprintf(n->walk, sizeof(n->walk), "%s", raw);
        } else if (snprintf(n->walk, sizeof(n->walk), "%s/%s", base, raw) >=
                   (int)sizeof(n->walk)) {
            continue;
        }
        char p[PATH_MAX * 2];
        if (snprintf(p, sizeof(p), "%s/%s", base, raw) >= (int)sizeof(p))
            continue;
        cordon_path_normalize(p);
        n->ok = snprintf(n->full, sizeof(n->full), "%s%s", n->unreachable ? "(unreachable)" : "",
                         p) < (int)sizeof(n->full);
    }
    /* A rename fails as a whole when either name is not an ordinary one
     * (EBUSY, EEXIST), before the mount is asked. */
    bool renaming = np == 2 && pa[1].kind == K_REPLACE;
    if (renaming && ((nm[0].ok && !ordinary_name(nm[0].walk)) ||
                   (nm[1].ok && !ordinary_name(nm[1].walk))))
        np = 0;
    for (int i = 0; i < np && rfd >= 0; i++) {
        if (!nm[i].ok)
            continue;
        const struct view v = nm[i].v;
        const bool unreachable = nm[i].unreachable;
        const char *walk = nm[i].walk, *full = nm[i].full;
        enum obs_kind k = pa[i].kind;
        if (!refused(o, &v, !own_ns, full, walk, k, pa[i].flags, pa[i].follow,
                     is_placeholder(o, full)))
            continue;
        /* A rename between two mounts is EXDEV before either is asked
         * (do_renameat2): no denial. */
        if (renaming && nm[0].ok && nm[1].ok) {
            struct found a = look_parent(o, &nm[0].v, nm[0].walk, !own_ns),
                         b = look_parent(o, &nm[1].v, nm[1].walk, !own_ns);
            if (a.mnt && b.mnt && a.mnt != b.mnt)
                break;
        }
        /* Where a symlink in the path (its last component, followed, or a
         * directory above) led: recorded as target, and judged there. */
        char root[PATH_MAX], led[PATH_MAX * 2], target[PATH_MAX * 2];
        bool follow = pa[i].follow && (k == K_OPEN || k == K_CHANGE || k == K_TRUNCATE);
        if (unreachable)
            snprintf(root, sizeof(root), "/");
        if ((!unreachable && !root_path(o, (pid_t)req->pid, own >= 0, root, sizeof(root))) ||
            !where_it_led(root, &v, walk, follow, led, sizeof(led)) ||
            snprintf(target, sizeof(target), "%s%s", unreachable ? "(unreachable)" : "", led) >=
                (int)sizeof(target) ||
            strcmp(target, full) == 0)
            target[0] = '\0';
        char rb[PATH_MAX + 32];
        /* a tree no path names: no rule of the policy can be named either */
        const char *rule = unreachable ? "read-only mount"
                                       : rule_for(o, target[0] ? target : full, rb, sizeof(rb));
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, d->nr);
        json_t *f = json_pack("{s:s, s:o, s:s, s:i}", "op", name ? name : "write", "path",
                              audit_str(full), "rule", rule, "pid", (int)req->pid);
        if (f && target[0])
            json_object_set_new(f, "target", audit_str(target));
        free(name);
        hand_off(o, "fs.deny", false, f, NULL);
        break;
    }
    for (int i = 0; i < np && rfd >= 0; i++)
        if (nm[i].copy >= 0)
            close(nm[i].copy);
    if (own >= 0)
        close(own);
}

/* One notification, on the thread: answered here, except a connect(). */
static void serve_one(struct observer *o)
{
    const struct seccomp_data *d = &o->req->data;
    uint64_t args[6];
    for (int i = 0; i < 6; i++)
        args[i] = d->args[i];
    if (o->cfg.unix_conn && unixsock_is_connect(d->nr)) {
        hand_off(o, NULL, false, NULL, o->req); /* the loop performs it */
        return;
    }
    memset(o->resp, 0, o->sizes.seccomp_notif_resp);
    o->resp->id = o->req->id;
    if (o->cfg.seccomp.observe_writes && harden_seccomp_observed(d->nr) &&
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
        hand_off(o, "syscall.deny", probe,
                 json_pack("{s:s, s:i, s:s, s:i}", "syscall", name ? name : "?", "nr", d->nr,
                           "errno", errno_name(e), "pid", (int)o->req->pid),
                 NULL);
        free(name);
    }
    /* ENOENT: the caller is gone */
    (void)ioctl(o->fd, SECCOMP_IOCTL_NOTIF_SEND, o->resp);
}

static void *serve(void *arg)
{
    struct observer *o = arg;
    for (;;) {
        struct pollfd pf[2] = { { .fd = o->fd, .events = POLLIN },
                                { .fd = o->stopfd, .events = POLLIN } };
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (pf[1].revents)
            break;
        if (!(pf[0].revents & POLLIN)) {
            if (pf[0].revents & (POLLHUP | POLLERR | POLLNVAL))
                break; /* every task of the filter has exited */
            continue;
        }
        /* NOTIF_RECV blocks whatever O_NONBLOCK says; POLLIN said one waits
         * and no one else receives. */
        memset(o->req, 0, o->sizes.seccomp_notif);
        if (ioctl(o->fd, SECCOMP_IOCTL_NOTIF_RECV, o->req) < 0) {
            if (errno == EINTR || errno == ENOENT) /* ENOENT: the caller went away */
                continue;
            break; /* the filter is gone */
        }
        serve_one(o);
    }
    return NULL;
}

/* On the loop: emit what the thread recorded, perform the connects. */
static void drain(struct observer *o, bool serve_connects)
{
    pthread_mutex_lock(&o->mu);
    struct handoff *h = o->head;
    o->head = NULL;
    o->tail = &o->head;
    pthread_mutex_unlock(&o->mu);
    while (h) {
        struct handoff *next = h->next;
        if (h->event) {
            audit_emit_quiet(o->cfg.audit, h->event, false, h->quiet, h->fields);
        } else if (serve_connects) {
            struct seccomp_notif_resp *resp = o->loop_resp;
            memset(resp, 0, o->sizes.seccomp_notif_resp);
            resp->id = h->req->id;
            /* performed for the caller; answered now, or later when a
             * blocking connect completes */
            if (unixsock_connect(o->cfg.unix_conn, o->fd,
                                 root_fd(&o->loop_rootfd, (pid_t)h->req->pid), h->req, resp) <= 0)
                (void)ioctl(o->fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
        }
        free(h->req);
        free(h);
        h = next;
    }
}

static void on_async(uv_async_t *a)
{
    drain(a->data, true);
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
    o->rootfd = o->loop_rootfd = -1;
    o->cfg = *cfg;
    o->tail = &o->head;
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
    o->loop_resp = calloc(1, rs);
    o->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    bool mu = false;
    if (!o->req || !o->resp || !o->loop_resp || o->stopfd < 0 ||
        !(mu = (pthread_mutex_init(&o->mu, NULL) == 0)) ||
        uv_async_init(loop, &o->async, on_async) < 0) {
        if (mu)
            pthread_mutex_destroy(&o->mu);
        if (o->stopfd >= 0)
            close(o->stopfd);
        free(o->req);
        free(o->resp);
        free(o->loop_resp);
        close(listener);
        free(o);
        return -ENOMEM;
    }
    o->async.data = o;
    /* Linux 6.6+ (see struct observer); older kernels refuse the flag and
     * keep the ordinary wake-ups. */
    (void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                (unsigned long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP);
    /* The thread takes no signals: the loop's signalfd does. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&o->thread, NULL, serve, o);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        *out = o;
        observer_stop(o); /* frees o, once libuv is done with the handle */
        *out = NULL;
        return -e;
    }
    o->thread_started = true;
    *out = o;
    return 0;
}

static void observer_closed(uv_handle_t *h)
{
    struct observer *o = h->data;
    close(o->fd);
    close(o->stopfd);
    if (o->rootfd >= 0)
        close(o->rootfd);
    if (o->loop_rootfd >= 0)
        close(o->loop_rootfd);
    pthread_mutex_destroy(&o->mu);
    free(o->req);
    free(o->resp);
    free(o->loop_resp);
    free(o);
}

void observer_stop(struct observer *o)
{
    if (!o)
        return;
    if (o->thread_started) {
        uint64_t one = 1;
        (void)!write(o->stopfd, &one, sizeof(one));
        pthread_join(o->thread, NULL);
        o->thread_started = false;
    }
    /* Every record the thread made, before the exit summary counts them;
     * a connect still queued has no caller left to answer. */
    drain(o, false);
    uv_close((uv_handle_t *)&o->async, observer_closed);
}
