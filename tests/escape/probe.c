/* escape-probe: attempts one escape class for real, from inside the sandbox.
 *
 * Usage: escape-probe CLASS [ARGS...]   (escape-probe list: the classes)
 *
 * Prints exactly one line, `RESULT OPEN <what succeeded>` or
 * `RESULT BLOCKED <ERRNO> [<step>] [key=value...]`, and exits 0 once it is
 * printed, so a death (seccomp's SIGSYS, a relayed SIGTERM) is told apart from
 * an answer by the exit status. Usage errors exit 2 and print no RESULT line.
 * Built static (no loader, no LD_* influence, runs from any view) and without
 * liburing: io_uring is driven with raw syscalls and <linux/io_uring.h>.
 * Classes refer to shared/reference/escape-classes.md (#N); nothing here ever
 * writes to what it manages to open: opening for write is the proof.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/bpf.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/mount.h>
#include <linux/netlink.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <linux/vm_sockets.h>
#include <arpa/inet.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef TIOCLINUX
#define TIOCLINUX 0x541C
#endif
#define X32_SYSCALL_BIT 0x40000000L

extern char **environ;

/* ---- output ----------------------------------------------------------------- */

static const char *ename(int e)
{
    const char *n = strerrorname_np(e);
    static char buf[32];
    if (n)
        return n;
    snprintf(buf, sizeof(buf), "E%d", e);
    return buf;
}

/* One line, written with a single write(2) so it is never lost in a buffer
 * when something kills the probe right after. */
__attribute__((format(printf, 1, 2))) static void result(const char *fmt, ...)
{
    char line[1024];
    int n = snprintf(line, sizeof(line), "RESULT ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t w = write(STDOUT_FILENO, line, (size_t)n);
    (void)w;
}

static int open_(const char *what, long r)
{
    if (r < 0) {
        result("BLOCKED %s %s", ename(errno), what);
        return 0;
    }
    result("OPEN %s", what);
    return 0;
}

__attribute__((noreturn)) static void usage(const char *msg)
{
    fprintf(stderr, "escape-probe: %s\n", msg);
    exit(2);
}

static const char *arg(int argc, char **argv, int i, const char *what)
{
    if (i >= argc)
        usage(what);
    return argv[i];
}

/* ---- helpers ---------------------------------------------------------------- */

static pid_t fork_sleeper(void)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (getppid() != parent)
            _exit(0);
        for (;;)
            pause();
    }
    return pid;
}

static void reap(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
        ;
}

static int inet_addr_of(const char *host, const char *port, struct sockaddr_in *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(port));
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        usage("HOST must be an IPv4 address");
    return 0;
}

static socklen_t unix_addr_of(const char *name, bool abstract, struct sockaddr_un *sa)
{
    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    size_t len = strlen(name);
    if (len + 2 > sizeof(sa->sun_path))
        usage("socket name too long");
    if (abstract) {
        memcpy(sa->sun_path + 1, name, len);
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + len);
    }
    memcpy(sa->sun_path, name, len);
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + 1);
}

/* ---- io_uring (#6) ------------------------------------------------------------ */

struct ring {
    int fd;
    unsigned *sq_tail, *sq_mask, *sq_array;
    unsigned *cq_head, *cq_tail, *cq_mask;
    struct io_uring_sqe *sqes;
    struct io_uring_cqe *cqes;
};

static int ring_setup(struct ring *r)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    r->fd = (int)syscall(SYS_io_uring_setup, 4, &p);
    if (r->fd < 0)
        return -1;
    size_t sqsz = p.sq_off.array + p.sq_entries * sizeof(unsigned);
    size_t cqsz = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
    bool single = p.features & IORING_FEAT_SINGLE_MMAP;
    if (single) {
        if (cqsz > sqsz)
            sqsz = cqsz;
        cqsz = sqsz;
    }
    char *sq = mmap(NULL, sqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                    IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED)
        return -1;
    char *cq = sq;
    if (!single) {
        cq = mmap(NULL, cqsz, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd,
                  IORING_OFF_CQ_RING);
        if (cq == MAP_FAILED)
            return -1;
    }
    r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
    if (r->sqes == MAP_FAILED)
        return -1;
    r->sq_tail = (unsigned *)(void *)(sq + p.sq_off.tail);
    r->sq_mask = (unsigned *)(void *)(sq + p.sq_off.ring_mask);
    r->sq_array = (unsigned *)(void *)(sq + p.sq_off.array);
    r->cq_head = (unsigned *)(void *)(cq + p.cq_off.head);
    r->cq_tail = (unsigned *)(void *)(cq + p.cq_off.tail);
    r->cq_mask = (unsigned *)(void *)(cq + p.cq_off.ring_mask);
    r->cqes = (struct io_uring_cqe *)(void *)(cq + p.cq_off.cqes);
    return 0;
}

/* Submit one SQE and wait for its completion: 0 and *res, or -1 with errno
 * from io_uring_enter. */
static int ring_run(struct ring *r, const struct io_uring_sqe *sqe, int *res)
{
    unsigned tail = *r->sq_tail;
    unsigned idx = tail & *r->sq_mask;
    r->sqes[idx] = *sqe;
    r->sq_array[idx] = idx;
    __atomic_store_n(r->sq_tail, tail + 1, __ATOMIC_RELEASE);
    for (;;) {
        long n = syscall(SYS_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        break;
    }
    unsigned head = __atomic_load_n(r->cq_head, __ATOMIC_ACQUIRE);
    while (head == __atomic_load_n(r->cq_tail, __ATOMIC_ACQUIRE)) {
        long n = syscall(SYS_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS, NULL, 0);
        if (n < 0 && errno != EINTR)
            return -1;
    }
    *res = r->cqes[head & *r->cq_mask].res;
    __atomic_store_n(r->cq_head, head + 1, __ATOMIC_RELEASE);
    return 0;
}

static int p_io_uring_connect(int argc, char **argv)
{
    struct sockaddr_in sa;
    inet_addr_of(arg(argc, argv, 2, "io_uring-connect HOST PORT"),
                 arg(argc, argv, 3, "io_uring-connect HOST PORT"), &sa);
    struct ring r;
    if (ring_setup(&r) < 0) {
        result("BLOCKED %s io_uring_setup", ename(errno));
        return 0;
    }
    int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        result("BLOCKED %s socket", ename(errno));
        return 0;
    }
    struct io_uring_sqe sqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = IORING_OP_CONNECT;
    sqe.fd = s;
    sqe.addr = (uintptr_t)&sa;
    sqe.off = sizeof(sa);
    int res = 0;
    if (ring_run(&r, &sqe, &res) < 0) {
        result("BLOCKED %s io_uring_enter", ename(errno));
        return 0;
    }
    if (res < 0)
        result("BLOCKED %s connect", ename(-res));
    else
        result("OPEN connected");
    return 0;
}

static int p_io_uring_openat(int argc, char **argv)
{
    const char *path = arg(argc, argv, 2, "io_uring-openat PATH");
    struct ring r;
    if (ring_setup(&r) < 0) {
        result("BLOCKED %s io_uring_setup", ename(errno));
        return 0;
    }
    struct io_uring_sqe sqe;
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = IORING_OP_OPENAT;
    sqe.fd = AT_FDCWD;
    sqe.addr = (uintptr_t)path;
    sqe.open_flags = O_RDONLY | O_CLOEXEC;
    int fd = 0;
    if (ring_run(&r, &sqe, &fd) < 0) {
        result("BLOCKED %s io_uring_enter", ename(errno));
        return 0;
    }
    if (fd < 0) {
        result("BLOCKED %s openat", ename(-fd));
        return 0;
    }
    char c;
    memset(&sqe, 0, sizeof(sqe));
    sqe.opcode = IORING_OP_READ;
    sqe.fd = fd;
    sqe.addr = (uintptr_t)&c;
    sqe.len = 1;
    int n = 0;
    if (ring_run(&r, &sqe, &n) < 0) {
        result("BLOCKED %s io_uring_enter", ename(errno));
        return 0;
    }
    if (n < 0)
        result("BLOCKED %s read", ename(-n));
    else if (n == 0)
        result("BLOCKED EOF read");
    else
        result("OPEN read");
    return 0;
}

/* ---- terminals (#1-#3) ---------------------------------------------------------- */

static int p_tiocsti(int argc, char **argv, bool high)
{
    const char *s = argc > 2 ? argv[2] : "#";
    unsigned long cmd = TIOCSTI;
    if (high)
        cmd |= 1UL << 32;
    for (const char *p = s; *p; p++) {
        if (syscall(SYS_ioctl, 0, cmd, p) < 0) {
            result("BLOCKED %s", ename(errno));
            return 0;
        }
    }
    result("OPEN injected");
    return 0;
}

static int p_tioclinux(int argc, char **argv)
{
    int fd = 0;
    if (argc > 2) {
        fd = open(argv[2], O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
            result("BLOCKED %s open", ename(errno));
            return 0;
        }
    }
    /* Subcode 2: set selection (copy); 3 would paste it. */
    char buf[16];
    memset(buf, 0, sizeof(buf));
    buf[0] = 2;
    if (syscall(SYS_ioctl, fd, (unsigned long)TIOCLINUX, buf) < 0)
        result("BLOCKED %s", ename(errno));
    else
        result("OPEN selection");
    return 0;
}

/* The caller's terminal changed beyond the run: a line discipline (N_NULL
 * swallows everything; it stays after exit) or exclusive mode (no one may
 * open the terminal again). Neither asks for a privilege or a controlling
 * terminal. */
static int p_tiocsetd(bool high)
{
    int ld = 27; /* N_NULL */
    unsigned long cmd = TIOCSETD;
    if (high) /* the kernel uses the low 32 bits: so must the filter */
        cmd |= 1UL << 32;
    if (syscall(SYS_ioctl, 0, cmd, &ld) < 0) {
        result("BLOCKED %s", ename(errno));
        return 0;
    }
    ld = -1;
    (void)ioctl(0, TIOCGETD, &ld);
    result("OPEN ldisc=%d", ld);
    return 0;
}

static int p_tiocexcl(bool high)
{
    unsigned long cmd = TIOCEXCL;
    if (high)
        cmd |= 1UL << 32;
    if (syscall(SYS_ioctl, 0, cmd, 0) < 0)
        result("BLOCKED %s", ename(errno));
    else
        result("OPEN exclusive");
    return 0;
}

/* ---- processes (#7, #27) -------------------------------------------------------- */

static int p_ptrace_sibling(void)
{
    pid_t c = fork_sleeper();
    if (c < 0) {
        result("BLOCKED %s fork", ename(errno));
        return 0;
    }
    if (ptrace(PTRACE_ATTACH, c, NULL, NULL) == 0) {
        waitpid(c, NULL, __WALL);
        ptrace(PTRACE_DETACH, c, NULL, NULL);
        reap(c);
        result("OPEN attached");
        return 0;
    }
    int e1 = errno;
    long r = ptrace(PTRACE_SEIZE, c, NULL, NULL);
    int e2 = errno;
    reap(c);
    if (r == 0)
        result("OPEN seized");
    else
        result("BLOCKED %s attach seize=%s", ename(e1), ename(e2));
    return 0;
}

static int p_ptrace_pid(pid_t pid)
{
    if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) == 0) {
        waitpid(pid, NULL, __WALL);
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
        result("OPEN attached");
        return 0;
    }
    int e1 = errno;
    long r = ptrace(PTRACE_SEIZE, pid, NULL, NULL);
    int e2 = errno;
    if (r == 0) {
        ptrace(PTRACE_DETACH, pid, NULL, NULL);
        result("OPEN seized");
    } else {
        result("BLOCKED %s attach seize=%s", ename(e1), ename(e2));
    }
    return 0;
}

static volatile char g_secret[16] = "probe-secret";

static int p_process_vm_read(int argc, char **argv)
{
    pid_t c = 0;
    pid_t target;
    if (argc > 2) {
        target = (pid_t)atoi(argv[2]);
    } else {
        c = fork_sleeper();
        if (c < 0) {
            result("BLOCKED %s fork", ename(errno));
            return 0;
        }
        target = c;
    }
    /* The same address in the forked child (a copy of this image); for another
     * pid the access check comes before any address is looked at. */
    char buf[sizeof(g_secret)];
    struct iovec local = { buf, sizeof(buf) };
    struct iovec remote = { (void *)g_secret, sizeof(g_secret) };
    ssize_t n = process_vm_readv(target, &local, 1, &remote, 1, 0);
    int e = errno;
    reap(c);
    if (n < 0)
        result("BLOCKED %s", ename(e));
    else
        result("OPEN read %zd bytes", n);
    return 0;
}

static int p_kill(int argc, char **argv)
{
    pid_t pid = (pid_t)atoi(arg(argc, argv, 2, "kill PID SIG"));
    int sig = atoi(arg(argc, argv, 3, "kill PID SIG"));
    /* Anything aimed back at us (init relays SIGTERM to the command) waits
     * until the line is out, so the outcome does not depend on timing. */
    sigset_t all, old;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &old);
    if (kill(pid, sig) < 0) {
        result("BLOCKED %s", ename(errno));
        return 0;
    }
    result("OPEN sent");
    if (sig == 0)
        return 0;
    sigprocmask(SIG_SETMASK, &old, NULL);
    struct timespec ts = { 2, 0 };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    return 0;
}

/* Fork children that wait, up to N; report; with "hold", wait for a byte or
 * EOF on stdin (the test samples the host meanwhile); then kill and reap every
 * one of them. */
static int p_forkbomb(int argc, char **argv)
{
    long n = atol(arg(argc, argv, 2, "forkbomb N [hold]"));
    bool hold = argc > 3 && strcmp(argv[3], "hold") == 0;
    if (n <= 0 || n > 100000)
        usage("forkbomb: N out of range");
    pid_t *kids = calloc((size_t)n, sizeof(pid_t));
    if (!kids)
        usage("out of memory");
    long k = 0;
    int err = 0;
    for (; k < n; k++) {
        pid_t c = fork_sleeper();
        if (c < 0) {
            err = errno;
            break;
        }
        kids[k] = c;
    }
    if (err)
        result("BLOCKED %s forked=%ld", ename(err), k);
    else
        result("OPEN forked=%ld", k);
    if (hold) {
        char c;
        while (read(STDIN_FILENO, &c, 1) < 0 && errno == EINTR)
            ;
    }
    for (long i = 0; i < k; i++)
        kill(kids[i], SIGKILL);
    for (long i = 0; i < k; i++)
        while (waitpid(kids[i], NULL, 0) < 0 && errno == EINTR)
            ;
    free(kids);
    return 0;
}

/* ---- keyrings (#8) ---------------------------------------------------------------- */

static int p_keyctl_read(int argc, char **argv)
{
    long key = atol(arg(argc, argv, 2, "keyctl-read KEYSERIAL [CALLER_SESSION]"));
    long caller = argc > 3 ? atol(argv[3]) : 0;
    char buf[256];
    long d = syscall(SYS_keyctl, KEYCTL_DESCRIBE, key, buf, sizeof(buf));
    int de = errno;
    long r = syscall(SYS_keyctl, KEYCTL_READ, key, buf, sizeof(buf));
    int re = errno;
    long s = syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0);
    int se = errno;
    char ses[64];
    if (s < 0)
        snprintf(ses, sizeof(ses), "%s", ename(se));
    else
        snprintf(ses, sizeof(ses), "%s", s == caller ? "caller" : "fresh");
    if (r >= 0)
        result("OPEN read describe=%s session=%s", d >= 0 ? "OK" : ename(de), ses);
    else
        result("BLOCKED %s read describe=%s session=%s", ename(re), d >= 0 ? "OK" : ename(de),
               ses);
    return 0;
}

/* Key descriptions are listed in /proc/keys for every key the reader may view,
 * with no syscall to filter. */
static int p_proc_keys(int argc, char **argv)
{
    const char *desc = arg(argc, argv, 2, "proc-keys DESCRIPTION");
    FILE *f = fopen("/proc/keys", "re");
    if (!f) {
        result("BLOCKED %s open", ename(errno));
        return 0;
    }
    char line[512];
    bool found = false;
    while (fgets(line, sizeof(line), f))
        if (strstr(line, desc))
            found = true;
    fclose(f);
    if (found)
        result("OPEN listed");
    else
        result("BLOCKED absent");
    return 0;
}

/* ---- kernel attack surface (#9-#12) ------------------------------------------------ */

static int p_userfaultfd(void)
{
    long fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
    return open_("userfaultfd", fd);
}

static int p_perf(void)
{
    struct perf_event_attr a;
    memset(&a, 0, sizeof(a));
    a.type = PERF_TYPE_SOFTWARE;
    a.size = sizeof(a);
    a.config = PERF_COUNT_SW_CPU_CLOCK;
    a.disabled = 1;
    a.exclude_kernel = 1;
    a.exclude_hv = 1;
    long fd = syscall(SYS_perf_event_open, &a, 0, -1, -1, PERF_FLAG_FD_CLOEXEC);
    return open_("perf_event_open", fd);
}

static int p_bpf(void)
{
    union bpf_attr a;
    memset(&a, 0, sizeof(a));
    a.map_type = BPF_MAP_TYPE_ARRAY;
    a.key_size = 4;
    a.value_size = 4;
    a.max_entries = 1;
    long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &a, sizeof(a));
    return open_("map_create", fd);
}

static int p_userns(void)
{
    return open_("unshare", unshare(CLONE_NEWUSER));
}

static int child_done(long pid)
{
    if (pid == 0)
        syscall(SYS_exit_group, 0);
    if (pid > 0)
        while (waitpid((pid_t)pid, NULL, 0) < 0 && errno == EINTR)
            ;
    return 0;
}

static int p_clone_newuser(void)
{
    long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    int e = errno;
    child_done(pid);
    errno = e;
    return open_("clone", pid);
}

static int p_clone3(void)
{
    struct clone_args ca;
    memset(&ca, 0, sizeof(ca));
    ca.flags = CLONE_NEWUSER;
    ca.exit_signal = SIGCHLD;
    long pid = syscall(SYS_clone3, &ca, sizeof(ca));
    int e = errno;
    child_done(pid);
    errno = e;
    return open_("clone3", pid);
}

static int p_setns(int argc, char **argv)
{
    const char *path = arg(argc, argv, 2, "setns PATH");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        result("BLOCKED %s open", ename(errno));
        return 0;
    }
    return open_("setns", setns(fd, 0));
}

static int p_mount_cgroup(int argc, char **argv)
{
    const char *dir = arg(argc, argv, 2, "mount-cgroup DIR");
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        result("BLOCKED %s mkdir", ename(errno));
        return 0;
    }
    int m = mount("cgroup", dir, "cgroup", 0, "rdma");
    int me = errno;
    if (m == 0)
        umount2(dir, MNT_DETACH);
    /* The new mount API: a superblock is only made by FSCONFIG_CMD_CREATE. */
    const char *step = "fsopen";
    int fe = 0;
    long fs = syscall(SYS_fsopen, "cgroup", 0);
    if (fs < 0) {
        fe = errno;
    } else {
        step = "fsconfig";
        /* No "rdma" here: that flag is EINVAL when the kernel lacks the
         * controller, before any permission check. */
        if (syscall(SYS_fsconfig, fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
            fe = errno;
        close((int)fs);
    }
    if (m == 0 || fe == 0)
        result("OPEN %s", m == 0 ? "mount" : "fsconfig");
    else
        result("BLOCKED %s mount %s=%s", ename(me), step, ename(fe));
    return 0;
}

static int p_open_by_handle(int argc, char **argv)
{
    const char *path = arg(argc, argv, 2, "open-by-handle PATH");
    union {
        struct file_handle fh;
        char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
    } h;
    memset(&h, 0, sizeof(h));
    h.fh.handle_bytes = MAX_HANDLE_SZ;
    int mount_id;
    if (name_to_handle_at(AT_FDCWD, path, &h.fh, &mount_id, 0) < 0) {
        result("BLOCKED %s name_to_handle_at", ename(errno));
        return 0;
    }
    int mfd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    int fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_CLOEXEC);
    return open_("open_by_handle_at", fd);
}

/* ---- ABIs (#23) --------------------------------------------------------------------- */

static int p_x32(void)
{
    long r = syscall(X32_SYSCALL_BIT | SYS_getpid);
    if (r < 0)
        result("BLOCKED %s", ename(errno));
    else
        result("OPEN getpid");
    return 0;
}

static int p_i386(void)
{
    long ret;
    /* i386 getpid is 20; int $0x80 enters the compat (ia32) syscall table. */
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(20L) : "memory", "r8", "r9", "r10", "r11");
    if (ret < 0 && ret > -4096)
        result("BLOCKED %s", ename((int)-ret));
    else
        result("OPEN getpid");
    return 0;
}

/* ---- sockets (#13-#18) -------------------------------------------------------------- */

static int p_unix_connect(int argc, char **argv, bool abstract)
{
    const char *name = arg(argc, argv, 2, "abstract-connect NAME | unix-connect PATH");
    struct sockaddr_un sa;
    socklen_t len = unix_addr_of(name, abstract, &sa);
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0) {
        result("BLOCKED %s socket", ename(errno));
        return 0;
    }
    if (connect(s, (struct sockaddr *)&sa, len) < 0) {
        result("BLOCKED %s connect", ename(errno));
        return 0;
    }
    result("OPEN connected");
    return 0;
}

/* socketpair() stays allowed; a datagram socket from it can still address
 * any other socket with sendto(). NAME "@x" is abstract. */
static int p_unix_dgram(int argc, char **argv)
{
    const char *name = arg(argc, argv, 2, "unix-dgram PATH|@NAME");
    bool abstract = name[0] == '@';
    struct sockaddr_un sa;
    socklen_t len = unix_addr_of(abstract ? name + 1 : name, abstract, &sa);
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv) < 0) {
        result("BLOCKED %s socketpair", ename(errno));
        return 0;
    }
    if (sendto(sv[0], "escape", 6, 0, (struct sockaddr *)&sa, len) < 0) {
        result("BLOCKED %s sendto", ename(errno));
        return 0;
    }
    result("OPEN sent");
    return 0;
}

static int p_inet(int argc, char **argv, int type, int proto, const char *name)
{
    struct sockaddr_in sa;
    inet_addr_of(arg(argc, argv, 2, "HOST PORT"), arg(argc, argv, 3, "HOST PORT"), &sa);
    int s = socket(AF_INET, type | SOCK_CLOEXEC, proto);
    if (s < 0) {
        result("BLOCKED %s socket", ename(errno));
        return 0;
    }
    if (type == SOCK_DGRAM) {
        if (sendto(s, "escape", 6, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            result("BLOCKED %s sendto", ename(errno));
            return 0;
        }
        result("OPEN sent");
        return 0;
    }
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        result("BLOCKED %s connect", ename(errno));
        return 0;
    }
    result("OPEN %s", name);
    return 0;
}

/* Creating the socket is the whole probe: nothing is ever connected (on this
 * machine CID 2 is the hypervisor's control plane). */
static int p_vsock(void)
{
    int s = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return open_("socket", s);
}

static int p_raw(void)
{
    int s = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
    return open_("socket", s);
}

static int p_packet(void)
{
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
    return open_("socket", s);
}

static int p_netlink_route(void)
{
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) {
        result("BLOCKED %s socket", ename(errno));
        return 0;
    }
    struct sockaddr_nl nl = { .nl_family = AF_NETLINK };
    return open_("socket", bind(s, (struct sockaddr *)&nl, sizeof(nl)));
}

/* Audit: the socket, then AUDIT_GET; OPEN only when the kernel answers it. */
static int p_netlink_audit(void)
{
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    if (s < 0) {
        result("BLOCKED %s socket", ename(errno));
        return 0;
    }
    struct {
        struct nlmsghdr h;
        char pad[64];
    } req;
    memset(&req, 0, sizeof(req));
    req.h.nlmsg_len = NLMSG_LENGTH(0);
    req.h.nlmsg_type = AUDIT_GET;
    req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    req.h.nlmsg_seq = 1;
    struct sockaddr_nl to = { .nl_family = AF_NETLINK };
    if (sendto(s, &req, req.h.nlmsg_len, 0, (struct sockaddr *)&to, sizeof(to)) < 0) {
        result("BLOCKED %s send", ename(errno));
        return 0;
    }
    struct timeval tv = { 2, 0 };
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char buf[8192];
    ssize_t n = recv(s, buf, sizeof(buf), 0);
    if (n < 0) {
        result("BLOCKED %s recv", ename(errno));
        return 0;
    }
    struct nlmsghdr *h = (struct nlmsghdr *)(void *)buf;
    if (n >= (ssize_t)NLMSG_LENGTH(sizeof(struct nlmsgerr)) && h->nlmsg_type == NLMSG_ERROR) {
        struct nlmsgerr *e = NLMSG_DATA(h);
        if (e->error < 0) {
            result("BLOCKED %s request", ename(-e->error));
            return 0;
        }
    }
    result("OPEN audit_get");
    return 0;
}

/* ---- files (#4, #5, #26) ------------------------------------------------------------ */

static int p_write_open(int argc, char **argv)
{
    const char *path = arg(argc, argv, 2, "write-exe PATH");
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd >= 0)
        close(fd); /* never write: the open is the escape */
    return open_("opened", fd);
}

static int p_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        result("BLOCKED %s opendir", ename(errno));
        return 0;
    }
    char out[900] = "";
    size_t len = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        int fd = atoi(e->d_name);
        if (fd <= 2 || fd == dirfd(d))
            continue;
        char p[64], target[256];
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
        ssize_t n = readlink(p, target, sizeof(target) - 1);
        target[n < 0 ? 0 : n] = '\0';
        int w = snprintf(out + len, sizeof(out) - len, "%s%d:%s", len ? "," : "", fd, target);
        if (w > 0 && (size_t)w < sizeof(out) - len)
            len += (size_t)w;
    }
    closedir(d);
    if (len)
        result("OPEN %s", out);
    else
        result("BLOCKED none");
    return 0;
}

static int p_ld_preload(void)
{
    static const char *const names[] = { "LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT" };
    char out[128] = "";
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (getenv(names[i])) {
            if (out[0])
                strcat(out, ",");
            strcat(out, names[i]);
        }
    }
    if (out[0])
        result("OPEN %s", out);
    else
        result("BLOCKED none");
    return 0;
}

static unsigned long long cap_eff(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    unsigned long long v = ~0ULL;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &v) == 1)
            break;
    if (f)
        fclose(f);
    return v;
}

/* Run as a setuid binary: did exec change the effective uid or grant
 * capabilities? */
static int p_setuid(void)
{
    uid_t r, e, s;
    getresuid(&r, &e, &s);
    unsigned long long caps = cap_eff();
    const char *state = (e != r || caps != 0) ? "OPEN" : "BLOCKED";
    result("%s uid=%u,%u,%u capeff=%llx", state, (unsigned)r, (unsigned)e, (unsigned)s, caps);
    return 0;
}

/* ---- miscellaneous --------------------------------------------------------------------- */

static int p_personality(void)
{
    int old = personality(0xffffffff);
    if (personality((unsigned long)(unsigned)old | ADDR_NO_RANDOMIZE) < 0) {
        result("BLOCKED %s", ename(errno));
        return 0;
    }
    int now = personality(0xffffffff);
    if (now & ADDR_NO_RANDOMIZE)
        result("OPEN addr_no_randomize");
    else
        result("BLOCKED unchanged");
    return 0;
}

static int p_chroot(void)
{
    return open_("chroot", chroot("/"));
}

static int p_iopl(void)
{
    return open_("iopl", syscall(SYS_iopl, 3));
}

static int p_whoami(void)
{
    result("OPEN pid=%d uid=%u", (int)getpid(), (unsigned)getuid());
    return 0;
}

static const char *const classes[] = {
    "tiocsti", "tiocsti-high", "tioclinux [PATH]", "tiocsetd", "tiocsetd-high", "tiocexcl", "tiocexcl-high",
    "io_uring-connect HOST PORT",
    "io_uring-openat PATH", "ptrace-sibling", "ptrace-init", "ptrace PID",
    "process-vm-read [PID]", "keyctl-read KEYSERIAL [CALLER_SESSION]", "proc-keys DESC",
    "userfaultfd", "perf", "bpf", "userns", "clone-newuser", "clone3", "setns PATH",
    "abstract-connect NAME", "unix-connect PATH", "unix-dgram PATH|@NAME",
    "tcp HOST PORT", "udp HOST PORT", "mptcp HOST PORT", "vsock", "raw", "packet",
    "netlink-audit", "netlink-route", "mount-cgroup DIR", "open-by-handle PATH", "x32",
    "i386", "write-exe PATH", "fds", "kill PID SIG", "ld-preload", "setuid",
    "forkbomb N [hold]", "personality", "chroot", "iopl", "whoami",
};

int main(int argc, char **argv)
{
    if (argc < 2)
        usage("usage: escape-probe CLASS [ARGS] (escape-probe list)");
    const char *c = argv[1];
    if (!strcmp(c, "list")) {
        for (size_t i = 0; i < sizeof(classes) / sizeof(classes[0]); i++)
            printf("%s\n", classes[i]);
        return 0;
    }
    if (!strcmp(c, "tiocsti")) return p_tiocsti(argc, argv, false);
    if (!strcmp(c, "tiocsti-high")) return p_tiocsti(argc, argv, true);
    if (!strcmp(c, "tioclinux")) return p_tioclinux(argc, argv);
    if (!strcmp(c, "tiocsetd")) return p_tiocsetd(false);
    if (!strcmp(c, "tiocsetd-high")) return p_tiocsetd(true);
    if (!strcmp(c, "tiocexcl")) return p_tiocexcl(false);
    if (!strcmp(c, "tiocexcl-high")) return p_tiocexcl(true);
    if (!strcmp(c, "io_uring-connect")) return p_io_uring_connect(argc, argv);
    if (!strcmp(c, "io_uring-openat")) return p_io_uring_openat(argc, argv);
    if (!strcmp(c, "ptrace-sibling")) return p_ptrace_sibling();
    if (!strcmp(c, "ptrace-init")) return p_ptrace_pid(1);
    if (!strcmp(c, "ptrace")) return p_ptrace_pid((pid_t)atoi(arg(argc, argv, 2, "ptrace PID")));
    if (!strcmp(c, "process-vm-read")) return p_process_vm_read(argc, argv);
    if (!strcmp(c, "keyctl-read")) return p_keyctl_read(argc, argv);
    if (!strcmp(c, "proc-keys")) return p_proc_keys(argc, argv);
    if (!strcmp(c, "userfaultfd")) return p_userfaultfd();
    if (!strcmp(c, "perf")) return p_perf();
    if (!strcmp(c, "bpf")) return p_bpf();
    if (!strcmp(c, "userns")) return p_userns();
    if (!strcmp(c, "clone-newuser")) return p_clone_newuser();
    if (!strcmp(c, "clone3")) return p_clone3();
    if (!strcmp(c, "setns")) return p_setns(argc, argv);
    if (!strcmp(c, "abstract-connect")) return p_unix_connect(argc, argv, true);
    if (!strcmp(c, "unix-connect")) return p_unix_connect(argc, argv, false);
    if (!strcmp(c, "unix-dgram")) return p_unix_dgram(argc, argv);
    if (!strcmp(c, "tcp")) return p_inet(argc, argv, SOCK_STREAM, 0, "connected");
    if (!strcmp(c, "udp")) return p_inet(argc, argv, SOCK_DGRAM, 0, "sent");
    if (!strcmp(c, "mptcp")) return p_inet(argc, argv, SOCK_STREAM, IPPROTO_MPTCP, "connected");
    if (!strcmp(c, "vsock")) return p_vsock();
    if (!strcmp(c, "raw")) return p_raw();
    if (!strcmp(c, "packet")) return p_packet();
    if (!strcmp(c, "netlink-audit")) return p_netlink_audit();
    if (!strcmp(c, "netlink-route")) return p_netlink_route();
    if (!strcmp(c, "mount-cgroup")) return p_mount_cgroup(argc, argv);
    if (!strcmp(c, "open-by-handle")) return p_open_by_handle(argc, argv);
    if (!strcmp(c, "x32")) return p_x32();
    if (!strcmp(c, "i386")) return p_i386();
    if (!strcmp(c, "write-exe")) return p_write_open(argc, argv);
    if (!strcmp(c, "fds")) return p_fds();
    if (!strcmp(c, "kill")) return p_kill(argc, argv);
    if (!strcmp(c, "ld-preload")) return p_ld_preload();
    if (!strcmp(c, "setuid")) return p_setuid();
    if (!strcmp(c, "forkbomb")) return p_forkbomb(argc, argv);
    if (!strcmp(c, "personality")) return p_personality();
    if (!strcmp(c, "chroot")) return p_chroot();
    if (!strcmp(c, "iopl")) return p_iopl();
    if (!strcmp(c, "whoami")) return p_whoami();
    usage("unknown class (escape-probe list)");
}
