/* doctor.c: `cordon doctor`: can this machine give cordon every layer?
 *
 * Owns: one check per kernel feature cordon relies on (or will), each run
 * for real in a throw-away child process rather than inferred from version
 * numbers or sysctls alone, and for each a verdict (OK, degraded, missing),
 * what it means for cordon's protection and the exact fix.
 *
 * Checks: user namespaces (the sysctls that gate them, then the namespaces
 * cordon makes, its id maps, a mount, lo brought up, and the nested user
 * namespace the command runs in), Landlock (ABI, and a ruleset enforced),
 * seccomp filter mode (a filter enforced), seccomp user notification (one
 * notification answered), nftables inside a user and network namespace (a
 * table created over NETLINK_NETFILTER), and the pids cgroup cordon uses
 * for callers whose uid is 0.
 *
 * Invariants:
 *  - the doctor changes nothing on the machine: every probe runs in a forked
 *    child, inside namespaces that die with it; the cgroup probe removes the
 *    group it makes;
 *  - exit 0 only when every check that this version of cordon relies on is
 *    OK (all of them now); a check of a feature not used yet would be
 *    reported but never change the exit status;
 *  - test builds (meson -Dtest_switches=true) honour
 *    CORDON_TEST_DOCTOR_FAULT=userns,landlock,seccomp,notify,nftables,cgroup
 *    (the probe fails as that kernel would) and CORDON_TEST_DOCTOR_SYSCTL=DIR
 *    (sysctls are read from DIR instead of /proc/sys); release builds ignore
 *    both.
 */
#include "doctor.h"
#include "harden/harden.h"
#include "cordon.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/landlock.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SECCOMP_GET_NOTIF_SIZES
#define SECCOMP_GET_NOTIF_SIZES 3
#endif
#ifndef SECCOMP_FILTER_FLAG_NEW_LISTENER
#define SECCOMP_FILTER_FLAG_NEW_LISTENER (1UL << 3)
#endif
#ifndef SECCOMP_RET_USER_NOTIF
#define SECCOMP_RET_USER_NOTIF 0x7fc00000U
#endif

#define MAX_LINES 12
#define LINE_LEN 1024
#define FIX_LEN 1536

enum verdict { V_OK, V_DEGRADED, V_MISSING };

static const char *const verdict_text[] = { "OK", "degraded", "missing" };
static const char *const verdict_json[] = { "ok", "degraded", "missing" };

struct check {
    const char *id;
    const char *name;
    bool used; /* this version of cordon relies on it */
    enum verdict v;
    char details[MAX_LINES][LINE_LEN];
    int nd;
    char meaning[LINE_LEN];
    char fixes[MAX_LINES][FIX_LEN];
    int nf;
};

enum { C_USERNS, C_LANDLOCK, C_SECCOMP, C_NOTIFY, C_NFT, C_CGROUP, C_COUNT };

static struct check checks[C_COUNT] = {
    [C_USERNS] = { .id = "userns", .name = "user namespaces", .used = true },
    [C_LANDLOCK] = { .id = "landlock", .name = "Landlock", .used = true },
    [C_SECCOMP] = { .id = "seccomp", .name = "seccomp filter", .used = true },
    [C_NOTIFY] = { .id = "seccomp_notify", .name = "seccomp user notification", .used = true },
    [C_NFT] = { .id = "nftables", .name = "nftables in a user namespace", .used = true },
    [C_CGROUP] = { .id = "cgroup", .name = "cgroup (pids)", .used = true },
};

__attribute__((format(printf, 2, 3))) static void detail(struct check *c, const char *fmt, ...)
{
    if (c->nd >= MAX_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->details[c->nd++], LINE_LEN, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void fix(struct check *c, const char *fmt, ...)
{
    if (c->nf >= MAX_LINES)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fixes[c->nf++], FIX_LEN, fmt, ap);
    va_end(ap);
}

__attribute__((format(printf, 2, 3))) static void meaning(struct check *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->meaning, LINE_LEN, fmt, ap);
    va_end(ap);
}

/* ---- test-only fault injection -------------------------------------------- */

static bool fault(const char *name)
{
#ifdef CORDON_TEST_SWITCHES
    const char *list = getenv("CORDON_TEST_DOCTOR_FAULT");
    size_t n = strlen(name);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0)
            return true;
        p = end ? end + 1 : p + len;
    }
#else
    (void)name;
#endif
    return false;
}

/* A sysctl as a number; -1 when it does not exist or cannot be read. */
static long read_sysctl(const char *rel)
{
    char path[PATH_MAX];
    const char *base = "/proc/sys";
#ifdef CORDON_TEST_SWITCHES
    if (getenv("CORDON_TEST_DOCTOR_SYSCTL"))
        base = getenv("CORDON_TEST_DOCTOR_SYSCTL");
#endif
    snprintf(path, sizeof(path), "%s/%s", base, rel);
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    long v = -1;
    if (fscanf(f, "%ld", &v) != 1)
        v = -1;
    fclose(f);
    return v;
}

static int read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* The initial user namespace maps every id onto itself. */
static bool in_initial_userns(void)
{
    char buf[128];
    if (read_line("/proc/self/uid_map", buf, sizeof(buf)) < 0)
        return true;
    unsigned long a, b, n;
    return sscanf(buf, "%lu %lu %lu", &a, &b, &n) == 3 && a == 0 && b == 0 && n == 4294967295UL;
}

/* ---- probes in child processes -------------------------------------------- */

struct probe_res {
    int err;        /* 0: the probe passed */
    char step[128]; /* what failed */
    bool extra;     /* probe_notify: synchronous wake-ups can be asked for */
};

typedef int (*probe_fn)(struct probe_res *r);

static int step_fail(struct probe_res *r, const char *step)
{
    r->err = errno ? errno : EIO;
    snprintf(r->step, sizeof(r->step), "%s", step);
    return -1;
}

static int write_file(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, s, strlen(s));
    int e = errno;
    close(fd);
    if (n != (ssize_t)strlen(s)) {
        errno = n < 0 ? e : EIO;
        return -1;
    }
    return 0;
}

/* Runs fn in a forked child and reports its result. A child that dies
 * without reporting is a failure of the step "run the probe". */
static void run_probe(probe_fn fn, struct probe_res *out)
{
    memset(out, 0, sizeof(*out));
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        step_fail(out, "create a pipe");
        return;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        step_fail(out, "fork a test process");
        close(p[0]);
        close(p[1]);
        return;
    }
    if (pid == 0) {
        close(p[0]);
        struct probe_res r;
        memset(&r, 0, sizeof(r));
        errno = 0;
        fn(&r);
        ssize_t w = write(p[1], &r, sizeof(r));
        _exit(w == (ssize_t)sizeof(r) ? 0 : 1);
    }
    close(p[1]);
    size_t got = 0;
    while (got < sizeof(*out)) {
        ssize_t n = read(p[0], (char *)out + got, sizeof(*out) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(p[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    if (got != sizeof(*out)) {
        memset(out, 0, sizeof(*out));
        out->err = ECHILD;
        if (WIFSIGNALED(ws))
            snprintf(out->step, sizeof(out->step), "run the test process (killed by signal %d)",
                     WTERMSIG(ws));
        else
            snprintf(out->step, sizeof(out->step), "run the test process");
    }
}

static int probe_userns(struct probe_res *r)
{
    char map[64];
    uid_t uid = geteuid();
    gid_t gid = getegid();
    if (fault("userns")) {
        errno = EPERM;
        return step_fail(r, "create user, mount, pid, network, ipc, uts and cgroup namespaces");
    }
    /* The set cordon's supervisor creates with clone(2). */
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC |
                CLONE_NEWUTS | CLONE_NEWCGROUP) < 0)
        return step_fail(r, "create user, mount, pid, network, ipc, uts and cgroup namespaces");
    if (write_file("/proc/self/setgroups", "deny") < 0 && errno != ENOENT)
        return step_fail(r, "write /proc/self/setgroups");
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)uid);
    if (write_file("/proc/self/uid_map", map) < 0)
        return step_fail(r, "write the uid map");
    snprintf(map, sizeof(map), "0 %u 1", (unsigned)gid);
    if (write_file("/proc/self/gid_map", map) < 0)
        return step_fail(r, "write the gid map");
    /* What the sandbox's init does first: this is where a security module
     * that lets the namespace be created but withholds its capabilities
     * (Ubuntu's AppArmor restriction) shows. */
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
        return step_fail(r, "make the mount tree private");
    const char *target = access("/tmp", F_OK) == 0 ? "/tmp" : "/";
    if (mount("cordon-doctor", target, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k") < 0)
        return step_fail(r, "mount a tmpfs");
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return step_fail(r, "open a socket in the new network namespace");
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
        return step_fail(r, "bring up the loopback interface");
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
        return step_fail(r, "bring up the loopback interface");
    close(s);
    /* The command runs in a user namespace nested in the sandbox's. */
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0)
        return step_fail(r, "create a nested user namespace");
    return 0;
}

static int probe_landlock(struct probe_res *r)
{
    struct landlock_ruleset_attr attr = { .handled_access_fs = LANDLOCK_ACCESS_FS_WRITE_FILE };
    int rs = (int)syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
    if (rs < 0)
        return step_fail(r, "create a ruleset");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return step_fail(r, "set no_new_privs");
    if (syscall(SYS_landlock_restrict_self, rs, 0) < 0)
        return step_fail(r, "enforce a ruleset");
    /* No rule grants writing anywhere: opening for writing must fail. */
    int fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (fd >= 0 || errno != EACCES) {
        if (fd >= 0)
            errno = EPERM;
        return step_fail(r, "check that the ruleset is enforced (/dev/null opened for writing)");
    }
    return 0;
}

/* A filter that makes getppid(2) fail with ESRCH, or hands it to a
 * listener, and allows everything else. */
static void getppid_filter(struct sock_filter *f, uint32_t action)
{
    struct sock_filter prog[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, action),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    memcpy(f, prog, sizeof(prog));
}

static int probe_seccomp(struct probe_res *r)
{
    if (fault("seccomp")) {
        errno = ENOSYS;
        return step_fail(r, "install a filter");
    }
    struct sock_filter f[4];
    getppid_filter(f, SECCOMP_RET_ERRNO | ESRCH);
    struct sock_fprog prog = { .len = 4, .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return step_fail(r, "set no_new_privs");
    /* cordon installs its filter with seccomp(2) too. */
    if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return step_fail(r, "install a filter");
    errno = 0;
    if (syscall(SYS_getppid) != -1 || errno != ESRCH) {
        errno = EPERM;
        return step_fail(r, "check that the filter is enforced (getppid was not refused)");
    }
    return 0;
}

static int probe_notify(struct probe_res *r)
{
    struct seccomp_notif_sizes sizes;
    if (fault("notify")) {
        errno = EINVAL;
        return step_fail(r, "query the notification sizes");
    }
    if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
        return step_fail(r, "query the notification sizes");
    struct sock_filter f[4];
    getppid_filter(f, SECCOMP_RET_USER_NOTIF);
    struct sock_fprog prog = { .len = 4, .filter = f };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return step_fail(r, "set no_new_privs");
    int lfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER,
                           &prog);
    if (lfd < 0)
        return step_fail(r, "install a filter with a listener");
    /* What the supervisor asks for (sandbox/observe.c): Linux 6.6. */
    r->extra = ioctl(lfd, SECCOMP_IOCTL_NOTIF_SET_FLAGS,
                     (unsigned long)SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0;
    /* One round trip: a process under the filter calls getppid(2), this one
     * receives the notification and answers 4242. */
    pid_t pid = fork();
    if (pid < 0)
        return step_fail(r, "fork a process under the filter");
    if (pid == 0)
        _exit(syscall(SYS_getppid) == 4242 ? 0 : 1);
    size_t nsz = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif
                                                                     : sizeof(struct seccomp_notif);
    size_t rsz = sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp)
                     ? sizes.seccomp_notif_resp
                     : sizeof(struct seccomp_notif_resp);
    struct seccomp_notif *req = calloc(1, nsz);
    struct seccomp_notif_resp *resp = calloc(1, rsz);
    int ret = 0;
    struct pollfd pfd = { .fd = lfd, .events = POLLIN };
    if (!req || !resp) {
        errno = ENOMEM;
        ret = step_fail(r, "allocate");
    } else if (poll(&pfd, 1, 5000) != 1) {
        errno = ETIMEDOUT;
        ret = step_fail(r, "receive a notification");
    } else if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0) {
        ret = step_fail(r, "receive a notification");
    } else {
        resp->id = req->id;
        resp->val = 4242;
        if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_SEND, resp) < 0)
            ret = step_fail(r, "answer a notification");
    }
    if (ret < 0)
        kill(pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    free(req);
    free(resp);
    if (ret == 0 && !(WIFEXITED(ws) && WEXITSTATUS(ws) == 0)) {
        errno = EPROTO;
        return step_fail(r, "check the answer the filtered process got");
    }
    return ret;
}

/* One nftables transaction (a table "cordon_doctor" in the inet family)
 * inside a new user and network namespace, as a sandbox would hold it. */
static int probe_nft(struct probe_res *r)
{
    if (unshare(CLONE_NEWUSER | CLONE_NEWNET) < 0)
        return step_fail(r, "create a user and network namespace");
    if (fault("nftables")) {
        errno = EPROTONOSUPPORT;
        return step_fail(r, "open a NETLINK_NETFILTER socket");
    }
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (s < 0)
        return step_fail(r, "open a NETLINK_NETFILTER socket");
    struct timeval tv = { .tv_sec = 5 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));

    union {
        char b[512];
        struct nlmsghdr align;
    } buf;
    memset(&buf, 0, sizeof(buf));
    size_t off = 0;
    static const char table[] = "cordon_doctor";
    const struct {
        uint16_t type, flags;
        uint8_t family;
        uint16_t res_id;
        bool name;
    } msgs[] = {
        { NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, false },
        { (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE,
          NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK, NFPROTO_INET, 0, true },
        { NFNL_MSG_BATCH_END, NLM_F_REQUEST, AF_UNSPEC, NFNL_SUBSYS_NFTABLES, false },
    };
    for (unsigned i = 0; i < 3; i++) {
        struct nlmsghdr *nh = (struct nlmsghdr *)(buf.b + off);
        nh->nlmsg_type = msgs[i].type;
        nh->nlmsg_flags = msgs[i].flags;
        nh->nlmsg_seq = i + 1;
        struct nfgenmsg *g = NLMSG_DATA(nh);
        g->nfgen_family = msgs[i].family;
        g->version = NFNETLINK_V0;
        g->res_id = htons(msgs[i].res_id);
        size_t len = NLMSG_LENGTH(sizeof(*g));
        if (msgs[i].name) {
            struct nlattr *a = (struct nlattr *)((char *)nh + NLMSG_ALIGN(len));
            a->nla_type = NFTA_TABLE_NAME;
            a->nla_len = (uint16_t)(NLA_HDRLEN + sizeof(table));
            memcpy((char *)a + NLA_HDRLEN, table, sizeof(table));
            len = NLMSG_ALIGN(len) + NLA_ALIGN(a->nla_len);
        }
        nh->nlmsg_len = (uint32_t)len;
        off += NLMSG_ALIGN(len);
    }
    struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
    if (sendto(s, buf.b, off, 0, (struct sockaddr *)&sa, sizeof(sa)) != (ssize_t)off)
        return step_fail(r, "send an nftables transaction");
    for (;;) {
        ssize_t n = recv(s, buf.b, sizeof(buf.b), 0);
        if (n < 0)
            return step_fail(r, "read the answer to the transaction");
        for (struct nlmsghdr *nh = (struct nlmsghdr *)buf.b; NLMSG_OK(nh, (size_t)n);
             nh = NLMSG_NEXT(nh, n)) {
            if (nh->nlmsg_type != NLMSG_ERROR)
                continue;
            struct nlmsgerr *e = NLMSG_DATA(nh);
            if (e->error != 0) {
                errno = -e->error;
                return step_fail(r, "create a table");
            }
            if (nh->nlmsg_seq == 2)
                return 0;
        }
    }
}

/* ---- the checks ------------------------------------------------------------- */

static bool g_root;         /* uid 0 in the initial user namespace */
static bool g_initial_ns;
static char g_exe[PATH_MAX];

/* s as one single-quoted shell word. */
static void shell_quote(const char *s, char *out, size_t n)
{
    size_t o = 0;
    if (n < 3)
        return;
    out[o++] = '\'';
    for (; *s && o + 6 < n; s++) {
        if (*s == '\'') {
            memcpy(out + o, "'\\''", 4);
            o += 4;
        } else {
            out[o++] = *s;
        }
    }
    out[o++] = '\'';
    out[o] = '\0';
}

static void check_userns(struct check *c)
{
    long maxns = read_sysctl("user/max_user_namespaces");
    long clone_ok = read_sysctl("kernel/unprivileged_userns_clone");
    long aa = read_sysctl("kernel/apparmor_restrict_unprivileged_userns");
    if (maxns >= 0)
        detail(c, "user.max_user_namespaces = %ld%s", maxns,
               g_initial_ns ? "" : " (in the user namespace this process runs in)");
    if (clone_ok >= 0)
        detail(c, "kernel.unprivileged_userns_clone = %ld", clone_ok);
    if (aa >= 0)
        detail(c, "kernel.apparmor_restrict_unprivileged_userns = %ld", aa);
    if (!g_initial_ns)
        detail(c, "this process already runs inside a user namespace (a container?)");

    struct probe_res r;
    run_probe(probe_userns, &r);
    if (r.err == 0) {
        c->v = V_OK;
        detail(c, "probe: created user, mount, pid, network, ipc, uts and cgroup namespaces, "
                  "wrote the id maps, mounted a tmpfs, brought up lo and created a nested "
                  "user namespace");
        return;
    }
    c->v = V_MISSING;
    detail(c, "probe: cannot %s: %s", r.step, strerror(r.err));
    meaning(c, "cordon cannot run any command: every run stops with exit status 125 before "
               "the command starts. The sandbox is built from user namespaces; there is no "
               "weaker fallback");
    if (maxns >= 0 && maxns < 2) {
        fix(c, "sudo sysctl -w user.max_user_namespaces=15000");
        fix(c, "echo 'user.max_user_namespaces = 15000' | sudo tee "
               "/etc/sysctl.d/60-cordon-userns.conf   # keep it after a reboot");
        detail(c, "cordon needs at least 2 user namespaces per run (the sandbox's and the "
                  "nested one the command runs in)");
        if (!g_initial_ns)
            fix(c, "inside a container the limit of its user namespace is set by whoever "
                   "started it: raise it there (the same sysctl, run in that namespace)");
        return;
    }
    if (!g_root && clone_ok == 0) {
        fix(c, "sudo sysctl -w kernel.unprivileged_userns_clone=1");
        fix(c, "echo 'kernel.unprivileged_userns_clone = 1' | sudo tee "
               "/etc/sysctl.d/60-cordon-userns.conf   # keep it after a reboot");
        return;
    }
    if (!g_root && aa == 1) {
        detail(c, "AppArmor lets unprivileged programs create user namespaces but takes "
                  "their capabilities away inside, unless a profile grants `userns`");
        char line[PATH_MAX + 64], quoted[2 * PATH_MAX + 256];
        bool plain = strspn(g_exe, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                   "0123456789/._+-") == strlen(g_exe);
        snprintf(line, sizeof(line), "profile cordon %s%s%s flags=(unconfined) {",
                 plain ? "" : "\"", g_exe, plain ? "" : "\"");
        shell_quote(line, quoted, sizeof(quoted));
        fix(c, "printf '%%s\\n' 'abi <abi/4.0>,' 'include <tunables/global>' %s '  userns,' "
               "'  include if exists <local/cordon>' '}' | sudo tee /etc/apparmor.d/cordon   "
               "# a profile that lets this cordon binary alone create user namespaces",
            quoted);
        fix(c, "sudo apparmor_parser -r /etc/apparmor.d/cordon");
        fix(c, "sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0   # instead of "
               "the two lines above: lifts the restriction for every program");
        return;
    }
    if (!g_initial_ns) {
        fix(c, "the container this runs in does not allow nested user namespaces: run cordon "
               "on the host, or start the container with a seccomp profile that allows "
               "unshare(2) and clone(2) with CLONE_NEWUSER (Docker's default profile refuses "
               "them without CAP_SYS_ADMIN) and a user.max_user_namespaces of 2 or more inside");
        return;
    }
    fix(c, "find what refuses \"%s\" (%s): a kernel built without CONFIG_USER_NS, a seccomp "
           "profile of the surrounding container or service manager, or a security module",
        r.step, strerror(r.err));
}

struct ll_feature {
    int abi;
    const char *what;
    bool used;
};

static const struct ll_feature ll_features[] = {
    { 1, "file access", true },
    { 2, "refer (rename and link across directories)", true },
    { 3, "truncate", true },
    { 4, "TCP bind and connect", false },
    { 5, "device ioctls", true },
    { 6, "scoping of abstract unix sockets and signals", true },
};

static void check_landlock(struct check *c)
{
    errno = 0;
    long abi = fault("landlock") ? (errno = EOPNOTSUPP, -1)
                                 : syscall(SYS_landlock_create_ruleset, NULL, 0,
                                           LANDLOCK_CREATE_RULESET_VERSION);
    int e = errno;
    char lsm[512] = "";
    bool have_lsm = read_line("/sys/kernel/security/lsm", lsm, sizeof(lsm)) == 0;
    if (abi <= 0) {
        c->v = V_MISSING;
        detail(c, "landlock_create_ruleset(LANDLOCK_CREATE_RULESET_VERSION): %s", strerror(e));
        meaning(c, "cordon still runs, and says so on every run (\"Landlock is not available "
                   "on this kernel; running without it\"): the filesystem boundary rests on "
                   "the mount view alone, with no second envelope around writes");
        if (e == EOPNOTSUPP) {
            detail(c, "the kernel has Landlock but it was not enabled at boot%s%s",
                   have_lsm ? "; active security modules: " : "", have_lsm ? lsm : "");
            fix(c, "add landlock to the lsm= kernel parameter, in front of the modules "
                   "already active: lsm=landlock,%s (on Debian and Ubuntu: "
                   "GRUB_CMDLINE_LINUX in /etc/default/grub, then sudo update-grub and reboot)",
                have_lsm ? lsm : "<the list in /sys/kernel/security/lsm>");
        } else {
            detail(c, "this kernel was built without Landlock (CONFIG_SECURITY_LANDLOCK) or "
                      "is older than Linux 5.13");
            fix(c, "boot a kernel with CONFIG_SECURITY_LANDLOCK=y (Linux 5.13 or later) and "
                   "landlock in its lsm= list");
        }
        return;
    }
    struct probe_res r;
    run_probe(probe_landlock, &r);
    if (r.err) {
        c->v = V_MISSING;
        detail(c, "ABI %ld, but the probe cannot %s: %s", abi, r.step, strerror(r.err));
        meaning(c, "cordon refuses to run (exit 125, \"applying Landlock\"): the kernel "
                   "announces Landlock but will not enforce a ruleset");
        fix(c, "find what refuses landlock_restrict_self(2) here (a seccomp profile of the "
               "surrounding container or service manager?)");
        return;
    }
    c->v = V_OK;
    char have[512] = "", lack[512] = "";
    for (size_t i = 0; i < sizeof(ll_features) / sizeof(ll_features[0]); i++) {
        const struct ll_feature *f = &ll_features[i];
        if (!f->used)
            continue;
        char *dst = f->abi <= abi ? have : lack;
        size_t l = strlen(dst);
        snprintf(dst + l, 512 - l, "%s%s (%d)", l ? ", " : "", f->what, f->abi);
    }
    detail(c, "ABI %ld; a test ruleset was enforced", abi);
    detail(c, "cordon uses: %s", have);
    if (lack[0])
        detail(c, "not on this kernel: %s; the read-only mount view and the private network "
                  "and pid namespaces still cover these",
               lack);
}

static void check_seccomp(struct check *c)
{
    struct probe_res r;
    run_probe(probe_seccomp, &r);
    if (r.err) {
        c->v = V_MISSING;
        detail(c, "probe: cannot %s: %s", r.step, strerror(r.err));
        meaning(c, "cordon cannot run any command: installing its syscall filter is "
                   "mandatory, so every run stops with exit status 125 (\"installing the "
                   "seccomp filter\")");
        fix(c, "boot a kernel with CONFIG_SECCOMP_FILTER=y; inside a container, make sure "
               "its own seccomp profile allows seccomp(2) and prctl(PR_SET_NO_NEW_PRIVS)");
        return;
    }
    c->v = V_OK;
    detail(c, "probe: a filter was installed with seccomp(2) and refused a syscall");
    uint32_t kill_process = SECCOMP_RET_KILL_PROCESS;
    if (syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &kill_process) < 0)
        detail(c, "SECCOMP_RET_KILL_PROCESS: %s (calls of other ABIs are then killed "
                  "thread by thread)",
               strerror(errno));
}

static void check_notify(struct check *c)
{
    struct probe_res r;
    run_probe(probe_notify, &r);
    if (r.err) {
        c->v = V_DEGRADED;
        detail(c, "probe: cannot %s: %s", r.step, strerror(r.err));
        meaning(c, "cordon runs, and still refuses the same syscalls and writes, but cannot "
                   "record them: no syscall.deny or fs.deny records and none in the exit "
                   "summary (Linux 5.5 or later); a run with network.allowUnixSockets "
                   "is refused, since the supervisor performs those connects (Linux 5.6)");
        fix(c, "boot Linux 5.9 or later with CONFIG_SECCOMP_FILTER=y");
        return;
    }
    c->v = V_OK;
    detail(c, "probe: a filter with a listener was installed and one notification "
              "answered");
    if (r.extra)
        detail(c, "synchronous wake-ups (Linux 6.6): available");
    else
        detail(c, "synchronous wake-ups (Linux 6.6): not available; each observed "
                  "write-intent syscall costs several times more (bench/run --only=writes)");
}

static void check_nft(struct check *c, bool userns_ok)
{
    struct probe_res r;
    if (!userns_ok) {
        c->v = V_MISSING;
        detail(c, "not tested: needs user namespaces");
        meaning(c, "transparent capture (network.transparent) needs it inside the sandbox's "
                   "user namespace");
        fix(c, "fix user namespaces first");
        return;
    }
    run_probe(probe_nft, &r);
    if (r.err) {
        c->v = V_DEGRADED;
        detail(c, "probe: cannot %s: %s", r.step, strerror(r.err));
        meaning(c, "cordon runs, but without transparent capture and the sandbox's DNS "
                   "(network.transparent): programs that ignore the proxy variables get no "
                   "network at all, and every run says so (network.transparent false "
                   "silences it)");
        if (r.err == EPROTONOSUPPORT || r.err == EOPNOTSUPP || r.err == ENOENT)
            fix(c, "boot a kernel with CONFIG_NF_TABLES and CONFIG_NF_TABLES_INET (or load "
                   "them: sudo modprobe nf_tables)");
        else
            fix(c, "find what refuses \"%s\" (%s) inside a user namespace", r.step,
                strerror(r.err));
        return;
    }
    c->v = V_OK;
    detail(c, "probe: created an nftables table inside a new user and network namespace");
}

/* Where cordon's pids cgroups go (limits.c: v1 pids hierarchy, else the
 * unified hierarchy with the pids controller). */
static const char *pids_root(bool *v2, bool *enabled)
{
    struct stat st;
    *enabled = true;
    if (fault("cgroup"))
        return NULL;
    if (stat("/sys/fs/cgroup/pids/cgroup.procs", &st) == 0) {
        *v2 = false;
        return "/sys/fs/cgroup/pids";
    }
    char buf[512] = "";
    if (read_line("/sys/fs/cgroup/cgroup.controllers", buf, sizeof(buf)) == 0 &&
        strstr(buf, "pids")) {
        *v2 = true;
        char sub[512] = "";
        *enabled = read_line("/sys/fs/cgroup/cgroup.subtree_control", sub, sizeof(sub)) == 0 &&
                   strstr(sub, "pids");
        return "/sys/fs/cgroup";
    }
    return NULL;
}

/* cgroup v2 mount point and this process's group, for the report. */
static void describe_v2(struct check *c)
{
    FILE *f = fopen("/proc/self/mountinfo", "re");
    char mnt[PATH_MAX] = "";
    char line[4096];
    while (f && fgets(line, sizeof(line), f)) {
        char *sep = strstr(line, " - ");
        char mp[PATH_MAX];
        if (sep && strncmp(sep, " - cgroup2 ", 11) == 0 &&
            sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1) {
            snprintf(mnt, sizeof(mnt), "%s", mp);
            break;
        }
    }
    if (f)
        fclose(f);
    if (!mnt[0]) {
        detail(c, "no cgroup v2 hierarchy is mounted");
        return;
    }
    char own[PATH_MAX] = "";
    f = fopen("/proc/self/cgroup", "re");
    while (f && fgets(line, sizeof(line), f)) {
        if (strncmp(line, "0::", 3) == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(own, sizeof(own), "%s", line + 3);
        }
    }
    if (f)
        fclose(f);
    char dir[PATH_MAX * 2], ctl[PATH_MAX * 2 + 32], cont[512] = "";
    snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(own, "/") == 0 ? "" : own);
    snprintf(ctl, sizeof(ctl), "%s/cgroup.controllers", dir);
    read_line(ctl, cont, sizeof(cont));
    detail(c, "cgroup v2 at %s; this process's group %s is %s, controllers: %s", mnt,
           own[0] ? own : "?",
           access(dir, W_OK) != 0 ? "not writable (not delegated to this user)"
           : getuid() == 0        ? "writable"
                                  : "writable (delegated to this user)",
           cont[0] ? cont : "none");
}

static void check_cgroup(struct check *c)
{
    bool v2 = false, enabled = true;
    const char *root = pids_root(&v2, &enabled);
    describe_v2(c);
    if (getuid() != 0) {
        c->v = V_OK;
        detail(c, "not needed: for a caller whose uid is not 0 the kernel enforces the "
                  "process limit (limits.nproc, default %d) as RLIMIT_NPROC",
               4096);
        return;
    }
    meaning(c, "cordon runs, with a warning on every run, but for a caller whose uid is 0 the "
               "process limit (limits.nproc, default 4096) is not enforced: the kernel does "
               "not apply RLIMIT_NPROC to root, so a fork bomb inside the sandbox can exhaust "
               "the host's process table");
    if (!root) {
        c->v = V_DEGRADED;
        detail(c, "no pids controller: neither /sys/fs/cgroup/pids (v1) nor pids in "
                  "/sys/fs/cgroup/cgroup.controllers (v2)");
        fix(c, "run cordon as an ordinary user (RLIMIT_NPROC applies), or mount the pids "
               "controller: cgroup v2 at /sys/fs/cgroup with pids in cgroup.controllers "
               "(systemd.unified_cgroup_hierarchy=1), or "
               "sudo mount -t cgroup -o pids cgroup /sys/fs/cgroup/pids");
        return;
    }
    if (v2 && !enabled) {
        if (access("/sys/fs/cgroup/cgroup.subtree_control", W_OK) == 0) {
            c->v = V_OK;
            detail(c, "pids controller at %s (v2), not yet enabled for child groups: cordon "
                      "enables it (+pids in cgroup.subtree_control) on its first run as root",
                   root);
            return;
        }
        c->v = V_DEGRADED;
        detail(c, "pids is not enabled in %s/cgroup.subtree_control and that file is not "
                  "writable",
               root);
        fix(c, "echo +pids | sudo tee %s/cgroup.subtree_control", root);
        return;
    }
    char dir[PATH_MAX], file[PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/cordon-doctor-%d", root, (int)getpid());
    if (mkdir(dir, 0755) < 0) {
        int e = errno;
        c->v = V_DEGRADED;
        detail(c, "cannot create a group in %s (%s): %s", root, v2 ? "v2" : "v1", strerror(e));
        fix(c, "make %s writable for root (a read-only cgroup mount in a container?), or run "
               "cordon as an ordinary user",
            root);
        return;
    }
    snprintf(file, sizeof(file), "%s/pids.max", dir);
    int w = write_file(file, "4096");
    int e = errno;
    rmdir(dir);
    if (w < 0) {
        c->v = V_DEGRADED;
        detail(c, "cannot set pids.max in a new group under %s: %s", root, strerror(e));
        fix(c, "enable the pids controller for %s", root);
        return;
    }
    c->v = V_OK;
    detail(c, "pids controller at %s (%s): a group was created, limited and removed", root,
           v2 ? "v2" : "v1");
}

/* ---- output ------------------------------------------------------------------ */

static void print_text(const struct utsname *u, int failed)
{
    printf("cordon doctor: cordon %s, Linux %s %s, uid %d%s\n\n", CORDON_VERSION, u->release,
           u->machine, (int)getuid(), g_initial_ns ? "" : " inside a user namespace");
    for (int i = 0; i < C_COUNT; i++) {
        const struct check *c = &checks[i];
        printf("%s: %s%s\n", c->name, verdict_text[c->v],
               c->used ? "" : " (not used by cordon " CORDON_VERSION " yet)");
        for (int j = 0; j < c->nd; j++)
            printf("    %s\n", c->details[j]);
        if (c->v != V_OK) {
            if (c->meaning[0])
                printf("    meaning: %s\n", c->meaning);
            for (int j = 0; j < c->nf; j++) {
                printf("    fix: ");
                for (const char *p = c->fixes[j]; *p; p++) {
                    putchar(*p);
                    if (*p == '\n')
                        fputs("         ", stdout);
                }
                putchar('\n');
            }
        }
    }
    putchar('\n');
    if (!failed) {
        printf("result: OK: every layer cordon %s relies on works here (exit 0)\n",
               CORDON_VERSION);
        return;
    }
    printf("result: not OK:");
    const char *sep = " ";
    for (int i = 0; i < C_COUNT; i++) {
        if (checks[i].used && checks[i].v != V_OK) {
            printf("%s%s %s", sep, checks[i].name, verdict_text[checks[i].v]);
            sep = ", ";
        }
    }
    printf(" (exit 1)\n");
}

static int print_json(const struct utsname *u, int failed)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < C_COUNT; i++) {
        const struct check *c = &checks[i];
        json_t *d = json_array(), *fx = json_array();
        for (int j = 0; d && j < c->nd; j++)
            json_array_append_new(d, json_string(c->details[j]));
        for (int j = 0; fx && j < c->nf; j++)
            json_array_append_new(fx, json_string(c->fixes[j]));
        json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:b, s:o, s:s?, s:o}", "id", c->id,
                                             "name", c->name, "verdict", verdict_json[c->v],
                                             "used", c->used, "details", d, "meaning",
                                             c->v != V_OK && c->meaning[0] ? c->meaning : NULL,
                                             "fix", fx));
    }
    json_t *top = json_pack("{s:s, s:s, s:s, s:i, s:b, s:b, s:o}", "cordon", CORDON_VERSION,
                            "kernel", u->release, "machine", u->machine, "uid", (int)getuid(),
                            "initial_user_namespace", g_initial_ns, "ok", !failed, "checks", arr);
    char *s = top ? json_dumps(top, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(top);
    if (!s) {
        fprintf(stderr, "cordon doctor: out of memory\n");
        return CORDON_EXIT_FAILURE;
    }
    printf("%s\n", s);
    free(s);
    return failed ? 1 : 0;
}

static const char doctor_usage[] =
    "Usage: cordon doctor [--json]\n"
    "\n"
    "Check that this machine gives cordon every layer: user namespaces, Landlock,\n"
    "seccomp, seccomp user notification, nftables in a user namespace and the pids\n"
    "cgroup. Each check runs for real in a throw-away process and prints OK,\n"
    "degraded or missing, what that means for cordon's protection, and the fix.\n"
    "Nothing on the machine is changed.\n"
    "\n"
    "  --json      one JSON object instead of text\n"
    "  -h, --help  print this help and exit\n"
    "\n"
    "Exit status: 0 when every check this version of cordon relies on is OK, 1\n"
    "otherwise, 125 for a usage error. Checks of features cordon does not use yet\n"
    "are shown but do not change the exit status.\n";

int cli_doctor_main(int argc, char **argv)
{
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            json = true;
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            fputs(doctor_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "cordon doctor: unknown argument \"%s\" (see cordon doctor --help)\n",
                    argv[i]);
            return CORDON_EXIT_FAILURE;
        }
    }
    struct utsname u;
    if (uname(&u) < 0)
        memset(&u, 0, sizeof(u));
    g_initial_ns = in_initial_userns();
    g_root = getuid() == 0 && g_initial_ns;
    ssize_t n = readlink("/proc/self/exe", g_exe, sizeof(g_exe) - 1);
    if (n <= 0)
        snprintf(g_exe, sizeof(g_exe), "/usr/local/bin/cordon");
    else
        g_exe[n] = '\0';

    check_userns(&checks[C_USERNS]);
    check_landlock(&checks[C_LANDLOCK]);
    check_seccomp(&checks[C_SECCOMP]);
    check_notify(&checks[C_NOTIFY]);
    check_nft(&checks[C_NFT], checks[C_USERNS].v == V_OK);
    check_cgroup(&checks[C_CGROUP]);

    int failed = 0;
    for (int i = 0; i < C_COUNT; i++)
        if (checks[i].used && checks[i].v != V_OK)
            failed++;
    if (json)
        return print_json(&u, failed);
    print_text(&u, failed);
    return failed ? 1 : 0;
}
