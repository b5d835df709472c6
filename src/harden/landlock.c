/* landlock.c: the command's Landlock domain, at the best ABI the kernel has.
 *
 * Owns: the filesystem envelope again, independently of the mount view, and
 * the scoping of abstract unix sockets and signals (ABI 6).
 * Invariants:
 *  - writes of any kind (write, create, remove, rename, link, truncate) are
 *    granted only beneath the write roots, the private /tmp and /dev, and
 *    on the one file behind fds 1 and 2 when the caller opened it for
 *    writing (stdio_rights);
 *  - reads are granted on "/" when the host's root is visible, otherwise only
 *    beneath the visible subtrees;
 *  - Landlock only adds rights over subtrees: it cannot take a denied path
 *    back out of an allowed one. Those denies rest on the mount view alone
 *    (docs/threat-model.md says so);
 *  - TCP rules (ABI 4) are not used: the network boundary is the empty
 *    network namespace and the proxy, and Landlock's TCP hooks miss MPTCP.
 * Runs in the command child: no allocation.
 */
#include "harden.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Newer than Debian 12's kernel headers (6.1). Values from the kernel's
 * include/uapi/linux/landlock.h. */
#ifndef LANDLOCK_ACCESS_FS_TRUNCATE
#define LANDLOCK_ACCESS_FS_TRUNCATE (1ULL << 14)
#endif
#ifndef LANDLOCK_ACCESS_FS_IOCTL_DEV
#define LANDLOCK_ACCESS_FS_IOCTL_DEV (1ULL << 15)
#endif
#define CORDON_LL_SCOPE_ABSTRACT_UNIX_SOCKET (1ULL << 0)
#define CORDON_LL_SCOPE_SIGNAL (1ULL << 1)

struct ll_ruleset_attr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net; /* ABI 4 */
    uint64_t scoped;             /* ABI 6 */
};

#define FS_READ (LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_READ_FILE | \
                 LANDLOCK_ACCESS_FS_READ_DIR)
#define FS_WRITE_V1 (LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_REMOVE_DIR | \
                     LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR | \
                     LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | \
                     LANDLOCK_ACCESS_FS_MAKE_SOCK | LANDLOCK_ACCESS_FS_MAKE_FIFO | \
                     LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM)

int harden_landlock_abi(void)
{
    long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
    return abi < 0 ? 0 : (int)abi;
}

static uint64_t handled_fs(int abi)
{
    uint64_t a = FS_READ | FS_WRITE_V1;
    if (abi >= 2)
        a |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3)
        a |= LANDLOCK_ACCESS_FS_TRUNCATE;
    if (abi >= 5)
        a |= LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return a;
}

static uint64_t rights(enum ll_kind k, uint64_t handled)
{
    switch (k) {
    case LL_READ:
        return FS_READ & handled;
    case LL_PROC:
        return FS_READ & handled;
    case LL_DEV:
    case LL_WRITE:
        return handled;
    }
    return 0;
}

/* What a new open of the file behind fd (0, 1 or 2) may do, beyond the
 * rules: a rule on that one inode, never on its directory.
 *  - a regular file opened read-only: read (`jq . /dev/stdin`; init put it
 *    on a read-only detached mount, src/sandbox/stdio.c, where no rule over
 *    a subtree reaches it);
 * and only when the caller opened it for writing:
 *  - a regular file: write and truncate (`>` opens with O_TRUNC; the command
 *    could already ftruncate fd 1);
 *  - a terminal (a pty or console slave): write and device ioctls (isatty on
 *    the new fd); the command holds the same rights on the inherited fd;
 *  - the null, zero and full devices: write.
 * Knowingly nothing for: directories, pipes and sockets (no path; reopening
 * a pipe needs no write rule), block devices, /dev/tty (5:0, the opener's
 * own terminal), /dev/console (5:1) and /dev/ptmx (5:2, a new open makes a
 * new pty pair), and any other character device, whose new open could mean
 * more than the inherited one. */
static uint64_t stdio_rights(int fd)
{
    struct stat st;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || (fl & O_PATH) || fstat(fd, &st) < 0)
        return 0;
    if ((fl & O_ACCMODE) == O_RDONLY)
        return S_ISREG(st.st_mode) ? LANDLOCK_ACCESS_FS_READ_FILE : 0;
    if (S_ISREG(st.st_mode))
        return LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_TRUNCATE;
    if (!S_ISCHR(st.st_mode))
        return 0;
    unsigned maj = major(st.st_rdev), min = minor(st.st_rdev);
    if (maj == 1 && (min == 3 || min == 5 || min == 7))
        return LANDLOCK_ACCESS_FS_WRITE_FILE;
    if (maj == 5 && min <= 2)
        return 0;
    if (isatty(fd))
        return LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_IOCTL_DEV;
    return 0;
}

int harden_landlock_apply(int abi, const struct ll_rule *rules, size_t n)
{
    if (abi <= 0) {
        errno = EOPNOTSUPP;
        return -1;
    }
    struct ll_ruleset_attr attr = { .handled_access_fs = handled_fs(abi) };
    size_t size = sizeof(uint64_t);
    if (abi >= 6) {
        attr.scoped = CORDON_LL_SCOPE_ABSTRACT_UNIX_SOCKET | CORDON_LL_SCOPE_SIGNAL;
        size = sizeof(attr);
    }
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
    if (rs < 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        int fd = open(rules[i].path, O_PATH | O_CLOEXEC);
        if (fd < 0) {
            if (errno == ENOENT)
                continue;
            int e = errno;
            close(rs);
            errno = e;
            return -1;
        }
        struct landlock_path_beneath_attr pb = {
            .allowed_access = rights(rules[i].kind, attr.handled_access_fs),
            .parent_fd = fd,
        };
        /* Rights that only make sense for directories are refused on files. */
        struct stat st;
        if (fstat(fd, &st) == 0 && !S_ISDIR(st.st_mode))
            pb.allowed_access &= LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE |
                                 LANDLOCK_ACCESS_FS_READ_FILE | LANDLOCK_ACCESS_FS_TRUNCATE |
                                 LANDLOCK_ACCESS_FS_IOCTL_DEV;
        long r = syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
        int e = errno;
        close(fd);
        if (r < 0) {
            close(rs);
            errno = e;
            return -1;
        }
    }
    /* The files the caller gave as stdout and stderr stay writable when
     * reopened (`tee /dev/stderr`, `echo x > /dev/stdout`, as srt's implicit
     * write paths): the caller chose them, and the command can already
     * write, truncate (ftruncate) and ioctl them through fds 1 and 2, so a
     * new open of the same inode grants nothing more; a file given for
     * reading stays readable (stdio_rights). */
    for (int fd = 0; fd <= 2; fd++) {
        uint64_t want = stdio_rights(fd) & attr.handled_access_fs;
        if (!want)
            continue;
        struct landlock_path_beneath_attr pb = { .allowed_access = want, .parent_fd = fd };
        /* Best effort: a file on an internal filesystem is refused (EBADFD)
         * and needs no rule. */
        (void)syscall(SYS_landlock_add_rule, rs, LANDLOCK_RULE_PATH_BENEATH, &pb, 0);
    }
    long r = syscall(SYS_landlock_restrict_self, rs, 0);
    int e = errno;
    close(rs);
    errno = e;
    return r < 0 ? -1 : 0;
}
