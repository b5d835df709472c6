/* limits.c: resource limits for the command, and the pids cgroup that
 * enforces the process cap for callers whose uid is 0 on the host.
 *
 * Owns: `limits` (nproc, nofile, fsize, cpu, as) and the test-only layer
 * switch parser.
 * Why a cgroup: RLIMIT_NPROC is counted per user namespace, so it contains a
 * fork bomb of an unprivileged caller, but the kernel does not enforce it when
 * the real uid is the host's root (copy_process(): INIT_USER is exempt). For
 * root, cordon puts the sandbox in a pids cgroup of its own
 * (cordon-<supervisor pid>), removes it at exit, and sweeps groups whose
 * supervisor is gone at the next start.
 */
#include "harden.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const int resources[LIM_COUNT] = {
    [LIM_NPROC] = RLIMIT_NPROC, [LIM_NOFILE] = RLIMIT_NOFILE, [LIM_FSIZE] = RLIMIT_FSIZE,
    [LIM_CPU] = RLIMIT_CPU, [LIM_AS] = RLIMIT_AS,
};

/* Each limit is a ceiling: the inherited limit is lowered to it, never
 * raised (raising a hard limit needs CAP_SYS_RESOURCE on the host, which
 * init lacks), so a value above the inherited hard limit leaves that hard
 * limit, and "unlimited" (RLIM_INFINITY) leaves the inherited limits as
 * they are. Either way the command can use at most what the settings say. */
int harden_rlimits_apply(const struct limit *l)
{
    for (int i = 0; i < LIM_COUNT; i++) {
        if (!l[i].set || l[i].value == RLIM_INFINITY)
            continue;
        struct rlimit cur;
        if (getrlimit(resources[i], &cur) < 0)
            return -1;
        rlim_t v = l[i].value < cur.rlim_max ? l[i].value : cur.rlim_max;
        struct rlimit rl = { .rlim_cur = v, .rlim_max = v };
        if (setrlimit(resources[i], &rl) < 0)
            return -1;
    }
    return 0;
}

/* v1 (a pids hierarchy of its own, as on this project's CI machines) or v2
 * (the unified hierarchy with the pids controller). */
static const char *pids_root(bool *v2)
{
    struct stat st;
    if (stat("/sys/fs/cgroup/pids/cgroup.procs", &st) == 0) {
        *v2 = false;
        return "/sys/fs/cgroup/pids";
    }
    FILE *f = fopen("/sys/fs/cgroup/cgroup.controllers", "re");
    if (f) {
        char buf[512] = "";
        bool has = fgets(buf, sizeof(buf), f) && strstr(buf, "pids");
        fclose(f);
        if (has) {
            *v2 = true;
            return "/sys/fs/cgroup";
        }
    }
    return NULL;
}

static int write_str(const char *dir, const char *file, const char *s)
{
    char p[512];
    snprintf(p, sizeof(p), "%s/%s", dir, file);
    _cleanup_close_ int fd = open(p, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, s, strlen(s));
    return n == (ssize_t)strlen(s) ? 0 : (n < 0 ? -errno : -EIO);
}

/* Init joins the group itself, by writing "0" (the writer) into v1's
 * "tasks": the kernel moves one thread that cannot exit meanwhile without
 * taking the global cgroup_threadgroup_rwsem for writing, whose first
 * writer waits for an RCU grace period. Writing init's pid to cgroup.procs
 * from the supervisor took 10 to 18 ms per run on this project's machines,
 * while the command waited; the self-move of one thread takes 0.05 ms. v2
 * has no per-thread file outside threaded groups: cgroup.procs it is. The
 * file is opened here, by the supervisor, so the permission checks use its
 * credentials and cgroup namespace (the kernel checks the opener's). */
int harden_pids_cgroup_create(rlim_t max, char **path, int *join_fd, struct cordon_error *err)
{
    *join_fd = -1;
    bool v2 = false;
    const char *root = pids_root(&v2);
    if (!root)
        return cordon_err_set(err, ENOENT, "no pids cgroup controller is mounted");
    if (v2) {
        int r = write_str(root, "cgroup.subtree_control", "+pids");
        if (r < 0)
            return cordon_err_sys(err, -r, "%s: cannot enable the pids controller", root);
    }
    char *dir = NULL;
    if (asprintf(&dir, "%s/cordon-%d", root, (int)getpid()) < 0)
        return cordon_err_set(err, ENOMEM, "out of memory");
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        int e = errno;
        free(dir);
        return cordon_err_sys(err, e, "cannot create a pids cgroup");
    }
    char num[32];
    snprintf(num, sizeof(num), "%llu", (unsigned long long)max);
    int r = write_str(dir, "pids.max", num);
    if (r == 0) {
        char f[600];
        snprintf(f, sizeof(f), "%s/%s", dir, v2 ? "cgroup.procs" : "tasks");
        *join_fd = open(f, O_WRONLY | O_CLOEXEC);
        if (*join_fd < 0)
            r = -errno;
    }
    if (r < 0) {
        rmdir(dir);
        free(dir);
        return cordon_err_sys(err, -r, "cannot set up the pids cgroup");
    }
    *path = dir;
    return 0;
}

int harden_pids_cgroup_join(int join_fd)
{
    ssize_t n;
    do {
        n = write(join_fd, "0", 1);
    } while (n < 0 && errno == EINTR);
    if (n == 1)
        return 0;
    if (n >= 0)
        errno = EIO;
    return -1;
}

void harden_pids_cgroup_remove(const char *path)
{
    /* init's exit waits for every process of its pid namespace, but the
     * cgroup may take a moment to see them gone. */
    for (int i = 0; i < 100; i++) {
        if (rmdir(path) == 0 || errno == ENOENT)
            return;
        if (errno != EBUSY)
            return;
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

void harden_pids_cgroup_sweep(void)
{
    bool v2 = false;
    const char *root = pids_root(&v2);
    if (!root)
        return;
    DIR *d = opendir(root);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid;
        char tail;
        if (sscanf(e->d_name, "cordon-%d%c", &pid, &tail) != 1 || pid <= 0)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue; /* its supervisor still runs (or belongs to someone else) */
        char p[512];
        snprintf(p, sizeof(p), "%s/%s", root, e->d_name);
        rmdir(p); /* fails harmlessly while anything still lives in it */
    }
    closedir(d);
}

static const struct {
    const char *name;
    unsigned bit;
} layer_names[] = {
    { "seccomp", LAYER_SECCOMP }, { "landlock", LAYER_LANDLOCK },
    { "userns-limit", LAYER_USERNS_LIMIT }, { "setsid", LAYER_SETSID },
    { "keyring", LAYER_KEYRING }, { "close-fds", LAYER_CLOSE_FDS }, { "env", LAYER_ENV },
    { "limits", LAYER_LIMITS }, { "caps", LAYER_CAPS }, { "nnp", LAYER_NNP },
    { "dumpable", LAYER_DUMPABLE },
};

int harden_layers_parse(const char *list, unsigned *mask, struct cordon_error *err)
{
    *mask = 0;
    if (!list)
        return 0;
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        bool found = false;
        for (size_t i = 0; i < ARRAY_SIZE(layer_names); i++) {
            if (strlen(layer_names[i].name) == len && strncmp(layer_names[i].name, p, len) == 0) {
                *mask |= layer_names[i].bit;
                found = true;
            }
        }
        if (!found)
            return cordon_err_set(err, EINVAL, "unknown layer \"%.*s\"", (int)len, p);
        if (!end)
            break;
        p = end + 1;
    }
    return 0;
}
