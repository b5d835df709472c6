/* stdio.c: the caller's descriptors 0, 1 and 2 on their way into the sandbox.
 *
 * Owns: refusing standard descriptors that would open the host's tree, and
 * confining the read-only regular files among them to read-only access.
 * Why: opening /proc/self/fd/N (proc(5), "magic links") does not resolve a
 * name in the sandbox's view; it reopens the very file and mount the
 * descriptor holds, i.e. the host's mount, without the view's masks and
 * read-only binds. So a directory on stdin is the whole host tree beneath it
 * (`cat /proc/self/fd/0/.ssh/id_rsa`), and a read-only stdin in a write root
 * can be reopened for writing even where the view protects it
 * (`echo x >> /proc/self/fd/0` with `.git/config` on stdin).
 * Invariants:
 *  - a directory or an O_PATH descriptor on 0, 1 or 2 is refused before
 *    anything starts (stdio_check, supervisor);
 *  - a regular file opened read-only is replaced, in init before the view is
 *    built, by the same file opened through a read-only detached clone of
 *    its mount (stdio_confine): reopening it gives EROFS for writing and
 *    nothing but the same file for reading. The original stays with init,
 *    which hands the replacement's offset back to it when the command ends
 *    (stdio_sync), so `{ cordon -- head -n1; cat; } < file` reads on;
 *  - writable regular files (`> log`, `>> log`), pipes, sockets, terminals
 *    and devices pass unchanged: the caller gave the command that access,
 *    O_APPEND and the shared offset stay as they are;
 *  - a file no name leads to (deleted, memfd: st_nlink 0) passes unchanged;
 *    one whose name cannot be found again is refused (fail closed);
 *  - stdio_confine runs in the cloned child: no allocation.
 */
#include "sandbox.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const stdio_name[3] = { "standard input", "standard output",
                                           "standard error" };

int stdio_check(struct cordon_error *err)
{
    for (int fd = 0; fd < 3; fd++) {
        int fl = fcntl(fd, F_GETFL);
        struct stat st;
        if (fl < 0 || fstat(fd, &st) < 0)
            continue; /* closed: nothing passes */
        const char *what = (fl & O_PATH) ? "an O_PATH descriptor"
                           : S_ISDIR(st.st_mode) ? "a directory"
                                                 : NULL;
        if (what)
            return cordon_err_set(err, EBADF, "%s (fd %d) is %s: the command could open the "
                                  "host's files through it (/proc/self/fd/%d), outside the "
                                  "sandbox's view; refusing to start (redirect it from a file "
                                  "or /dev/null)", stdio_name[fd], fd, what, fd);
    }
    return 0;
}

static int confine_one(int fd, int *keep, char *err, size_t errlen)
{
    int fl = fcntl(fd, F_GETFL);
    struct stat st;
    if (fl < 0 || fstat(fd, &st) < 0)
        return 0;
    if ((fl & O_PATH) || !S_ISREG(st.st_mode) || (fl & O_ACCMODE) != O_RDONLY ||
        st.st_nlink == 0)
        return 0;
    char link[32], path[4096];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof(path) - 1);
    path[n > 0 && (size_t)n < sizeof(path) - 1 ? n : 0] = '\0';
    if (path[0] != '/')
        goto lost;
    int pfd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat ps;
    if (pfd < 0)
        goto lost;
    if (fstat(pfd, &ps) < 0 || ps.st_dev != st.st_dev || ps.st_ino != st.st_ino) {
        close(pfd);
        goto lost;
    }
    /* The clone is of this file alone, detached, read-only: nothing mounts
     * it anywhere and it goes away with the last descriptor. */
    int t = open_tree(pfd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
    close(pfd);
    struct mount_attr a = { .attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID |
                                        MOUNT_ATTR_NODEV };
    if (t < 0 || mount_setattr(t, "", AT_EMPTY_PATH, &a, sizeof(a)) < 0) {
        int e = errno;
        if (t >= 0)
            close(t);
        snprintf(err, errlen, "%s (fd %d, %s): cannot clone its mount read-only: %s",
                 stdio_name[fd], fd, path, strerror(e));
        return -e;
    }
    snprintf(link, sizeof(link), "/proc/self/fd/%d", t);
    int keepfl = O_APPEND | O_NONBLOCK | O_DIRECT | O_NOATIME | O_SYNC | O_DSYNC;
    int nfd = open(link, O_RDONLY | (fl & keepfl) | O_NOCTTY | O_CLOEXEC);
    int e = errno;
    close(t);
    off_t off = lseek(fd, 0, SEEK_CUR);
    if (nfd < 0 || (off > 0 && lseek(nfd, off, SEEK_SET) != off) ||
        (*keep = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0 || dup2(nfd, fd) < 0) {
        e = nfd < 0 ? e : errno;
        if (nfd >= 0)
            close(nfd);
        snprintf(err, errlen, "%s (fd %d, %s): cannot reopen it read-only: %s",
                 stdio_name[fd], fd, path, strerror(e));
        return -e;
    }
    close(nfd);
    return 0;

lost:
    snprintf(err, errlen, "%s (fd %d) is a file cordon cannot find again by its name (%s) "
             "to make it read-only for the command; refusing to start (give it through a "
             "pipe: `cat FILE | cordon ...`)", stdio_name[fd], fd, path[0] ? path : "?");
    return -EBADF;
}

int stdio_confine(int keep[3], char *err, size_t errlen)
{
    for (int fd = 0; fd < 3; fd++)
        keep[fd] = -1;
    for (int fd = 0; fd < 3; fd++) {
        int r = confine_one(fd, &keep[fd], err, errlen);
        if (r < 0)
            return r;
    }
    return 0;
}

void stdio_sync(const int keep[3])
{
    for (int fd = 0; fd < 3; fd++) {
        if (keep[fd] < 0)
            continue;
        off_t off = lseek(fd, 0, SEEK_CUR);
        if (off >= 0)
            (void)lseek(keep[fd], off, SEEK_SET);
    }
}
