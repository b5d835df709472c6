/* seccomp.c: the command's syscall filter, built with libseccomp.
 *
 * Owns: which syscalls the sandboxed command may make. The filter is compiled
 * to BPF with libseccomp at build time, for every combination of options
 * (seccomp_table.h), or in the supervisor when the table does not fit this
 * machine, and installed by the command last, after no_new_privs and
 * Landlock, just before exec.
 *
 * Denied (EPERM unless said otherwise), with the escape class each closes
 * (shared/reference/escape-classes.md):
 *  - io_uring_setup/enter/register: ring operations never pass this filter (#6);
 *  - ptrace, process_vm_readv/writev: attach to a sibling (#7);
 *  - keyctl, add_key, request_key: keyrings are not namespaced (#8);
 *  - bpf, perf_event_open, userfaultfd, syslog: kernel attack surface and
 *    race-widening primitives (#9-#11);
 *  - unshare/clone with namespace flags, setns; clone3 gets ENOSYS because its
 *    flags live in memory the filter cannot read, and libc then falls back to
 *    clone (#12). Lifted by allowNestedUserNamespaces, together with the mount
 *    family below, as srt does; the view stays locked either way;
 *  - mount, umount2, pivot_root, move_mount, open_tree, fsopen, fsconfig,
 *    fsmount, fspick, mount_setattr (#12, #21);
 *  - open_by_handle_at: opens host inodes past the mount view (#22);
 *  - kexec_*, init/finit/delete_module, swapon/off, reboot, acct, quotactl(_fd);
 *  - terminal ioctls that act on the caller's terminal beyond the run, compared
 *    on the low 32 bits because the kernel truncates the command to 32 bits
 *    (#1-#3, CVE-2019-10063): TIOCSTI and TIOCLINUX (inject input); TIOCSETD
 *    (a line discipline such as N_NULL stays after exit: the terminal stops
 *    working) and TIOCEXCL (no one may open the terminal again: sudo's and
 *    ssh's prompts fail with EBUSY), neither of which asks for a privilege;
 *    TIOCVHANGUP and TIOCCONS, which the kernel already refuses without
 *    CAP_SYS_ADMIN of the initial user namespace, so that the attempt is
 *    recorded too. termios changes (TCSETS*, stty) stay allowed: every
 *    full-screen program makes them, and the caller's shell resets them;
 *  - socket() for AF_VSOCK (#17), AF_PACKET (#18), AF_NETLINK other than
 *    NETLINK_ROUTE, IPPROTO_MPTCP (#15: Landlock's TCP hooks miss it), and
 *    AF_UNIX unless allowAllUnixSockets (#14); socketpair(AF_UNIX, SOCK_DGRAM)
 *    likewise, because a datagram end can sendto() any pathname datagram
 *    socket (and SOCK_RAW, which AF_UNIX makes a datagram socket: unix(7));
 *    stream and seqpacket pairs stay allowed (they reach nothing outside,
 *    and libuv and node use them). With allowUnixSockets, AF_UNIX stream and
 *    seqpacket sockets may be created (datagram ones still not) and every
 *    connect() is emulated by the supervisor (sandbox/unixsock.h): neither
 *    kind can address a socket in any other way (unix(7): a stream socket
 *    refuses sendto() with an address, a seqpacket one ignores it);
 *  - personality() flags that weaken ASLR or map page zero (the read-only
 *    query 0xffffffff stays allowed);
 *  - every syscall of a non-native ABI (i386, x32) kills the process (#23).
 * Knowingly allowed: chroot (needs CAP_SYS_CHROOT, which the command lacks),
 * name_to_handle_at (reveals only a handle), the rest of the syscall table:
 * namespaces, capabilities, Landlock and the mount view bound what it can do.
 */
#include "harden.h"
#include "seccomp_table.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/personality.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif
#ifndef IPPROTO_MPTCP
#define IPPROTO_MPTCP 262
#endif
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452 /* Linux 6.6, the same number on every architecture */
#endif

static const int eperm_always[] = {
    SYS_io_uring_setup, SYS_io_uring_enter, SYS_io_uring_register,
    SYS_ptrace, SYS_process_vm_readv, SYS_process_vm_writev,
    SYS_keyctl, SYS_add_key, SYS_request_key,
    SYS_bpf, SYS_perf_event_open, SYS_userfaultfd, SYS_syslog,
    SYS_open_by_handle_at,
    SYS_kexec_load, SYS_kexec_file_load, SYS_init_module, SYS_finit_module,
    SYS_delete_module, SYS_swapon, SYS_swapoff, SYS_reboot, SYS_acct, SYS_quotactl,
#ifdef SYS_quotactl_fd
    SYS_quotactl_fd,
#endif
};

static const int eperm_unless_nested[] = {
    SYS_setns, SYS_mount, SYS_umount2, SYS_pivot_root, SYS_move_mount, SYS_open_tree,
    SYS_fsopen, SYS_fsconfig, SYS_fsmount, SYS_fspick,
#ifdef SYS_mount_setattr
    SYS_mount_setattr,
#endif
};

static const unsigned long ns_flags[] = {
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
    CLONE_NEWCGROUP, CLONE_NEWTIME,
};

static const unsigned long weak_personality[] = {
    ADDR_NO_RANDOMIZE, MMAP_PAGE_ZERO, ADDR_COMPAT_LAYOUT, READ_IMPLIES_EXEC,
    ADDR_LIMIT_32BIT, ADDR_LIMIT_3GB,
};

/* The terminal ioctls refused (see the header). */
static const unsigned long tty_ioctls[] = {
    TIOCSTI, TIOCLINUX, TIOCSETD, TIOCEXCL, TIOCVHANGUP, TIOCCONS,
};

#define LOW32 0xffffffffULL

static int add(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned n,
               const struct scmp_arg_cmp *cmp, struct cordon_error *err)
{
    int r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
    if (r < 0) {
        char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
        r = cordon_err_sys(err, -r, "seccomp rule for %s", name ? name : "syscall");
        free(name);
    }
    return r;
}

static int export_bpf(scmp_filter_ctx ctx, struct seccomp_prog *out, struct cordon_error *err)
{
    _cleanup_close_ int fd = memfd_create("cordon-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return cordon_err_sys(err, errno, "memfd_create");
    int r = seccomp_export_bpf(ctx, fd);
    if (r < 0)
        return cordon_err_sys(err, -r, "exporting the seccomp filter");
    off_t size = lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
        size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
        return cordon_err_set(err, EINVAL, "the seccomp filter has an unexpected size");
    struct sock_filter *insns = malloc((size_t)size);
    if (!insns)
        return cordon_err_set(err, ENOMEM, "out of memory");
    if (pread(fd, insns, (size_t)size, 0) != size) {
        free(insns);
        return cordon_err_sys(err, errno, "reading the seccomp filter");
    }
    out->insns = insns;
    out->len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
    return 0;
}

/* Write-intent filesystem syscalls, observed when opts.observe_writes:
 * srt's monitor list (srt-compat.md 3.7), plus the path forms of truncate,
 * chmod and chown. */
static const int observed_always[] = {
#ifdef SYS_creat
    SYS_creat,
#endif
#ifdef SYS_mkdir
    SYS_mkdir, SYS_rmdir, SYS_unlink, SYS_rename, SYS_link, SYS_symlink, SYS_chmod,
    SYS_chown, SYS_lchown, SYS_mknod,
#endif
    SYS_mkdirat, SYS_unlinkat, SYS_renameat, SYS_renameat2, SYS_linkat, SYS_symlinkat,
    SYS_mknodat, SYS_fchmodat, SYS_fchownat, SYS_truncate, SYS_openat2,
    SYS_fchmodat2,
};

static const unsigned long write_flags[] = { O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_APPEND };

bool harden_seccomp_observed(int nr)
{
    for (size_t i = 0; i < ARRAY_SIZE(observed_always); i++)
        if (observed_always[i] == nr)
            return true;
#ifdef SYS_open
    if (nr == SYS_open)
        return true;
#endif
    return nr == SYS_openat;
}

static bool in_list(const int *v, size_t n, int nr)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == nr)
            return true;
    return false;
}

int harden_seccomp_denial(const struct seccomp_opts *o, int nr, const uint64_t a[6])
{
    uint32_t a0 = (uint32_t)a[0], a1 = (uint32_t)a[1], a2 = (uint32_t)a[2];
    if (in_list(eperm_always, ARRAY_SIZE(eperm_always), nr))
        return EPERM;
    if (!o->allow_nested_userns) {
        if (in_list(eperm_unless_nested, ARRAY_SIZE(eperm_unless_nested), nr))
            return EPERM;
        if (nr == SYS_clone3)
            return ENOSYS;
        if (nr == SYS_unshare || nr == SYS_clone)
            for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++)
                if (a[0] & ns_flags[i])
                    return EPERM;
    }
    if (nr == SYS_ioctl)
        for (size_t i = 0; i < ARRAY_SIZE(tty_ioctls); i++)
            if (a1 == (uint32_t)tty_ioctls[i])
                return EPERM;
    /* AF_UNIX types that are datagram sockets (SOCK_RAW becomes one). */
    bool unix_dgram = a0 == AF_UNIX && ((a1 & 0xf) == SOCK_DGRAM || (a1 & 0xf) == SOCK_RAW);
    if (nr == SYS_socket) {
        if (a0 == AF_VSOCK || a0 == AF_PACKET || (a0 == AF_NETLINK && (int64_t)a[2] > 0) ||
            a2 == IPPROTO_MPTCP ||
            (!o->allow_unix_sockets && a0 == AF_UNIX && (!o->emulate_unix_connect || unix_dgram)))
            return EPERM;
    }
    if (nr == SYS_socketpair && !o->allow_unix_sockets && unix_dgram)
        return EPERM;
    if (nr == SYS_personality && a0 != 0xffffffffu)
        for (size_t i = 0; i < ARRAY_SIZE(weak_personality); i++)
            if (a0 & weak_personality[i])
                return EPERM;
    return 0;
}

/* Bits of a key: nested namespaces, all unix sockets, user notification
 * (refusals and observed writes go together), emulated connect (which
 * needs notification and excludes allowAllUnixSockets). */
int seccomp_opts_key(const struct seccomp_opts *o)
{
    if (o->notify_denials != o->observe_writes ||
        (o->emulate_unix_connect && (o->allow_unix_sockets || !o->notify_denials)))
        return -1;
    return (o->allow_nested_userns ? 1 : 0) | (o->allow_unix_sockets ? 2 : 0) |
           (o->notify_denials ? 4 : 0) | (o->emulate_unix_connect ? 8 : 0);
}

bool seccomp_opts_from_key(unsigned key, struct seccomp_opts *o)
{
    *o = (struct seccomp_opts){
        .allow_nested_userns = key & 1, .allow_unix_sockets = key & 2,
        .notify_denials = key & 4, .observe_writes = key & 4, .emulate_unix_connect = key & 8,
    };
    return key < SECCOMP_OPTS_KEYS && seccomp_opts_key(o) == (int)key;
}

static void prog_flags(const struct seccomp_opts *o, struct seccomp_prog *out)
{
    out->notify = o->notify_denials || o->observe_writes ||
                  (o->emulate_unix_connect && !o->allow_unix_sockets);
    out->wait_killable = out->notify && o->emulate_unix_connect && !o->allow_unix_sockets;
}

int harden_seccomp_build(const struct seccomp_opts *o, struct seccomp_prog *out,
                         struct cordon_error *err)
{
#ifndef CORDON_SECCOMP_GENERATOR
    int key = seccomp_opts_key(o);
    if (key >= 0 && seccomp_table_arch == seccomp_arch_native() &&
        seccomp_table_api == seccomp_api_get()) {
        for (size_t i = 0; i < seccomp_table_n; i++) {
            const struct seccomp_variant *v = &seccomp_table[i];
            if (v->key != (unsigned)key || !v->len)
                continue;
            *out = (struct seccomp_prog){ 0 };
            out->insns = malloc(v->len * sizeof(*v->insns));
            if (!out->insns)
                return cordon_err_set(err, ENOMEM, "out of memory");
            memcpy(out->insns, v->insns, v->len * sizeof(*v->insns));
            out->len = v->len;
            prog_flags(o, out);
            return 0;
        }
    }
#endif
    return harden_seccomp_compile(o, out, err);
}

int harden_seccomp_compile(const struct seccomp_opts *o, struct seccomp_prog *out,
                           struct cordon_error *err)
{
    *out = (struct seccomp_prog){ 0 };
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return cordon_err_set(err, ENOMEM, "seccomp_init");
    const uint32_t eperm = o->notify_denials ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(EPERM);
    const uint32_t enosys = o->notify_denials ? SCMP_ACT_NOTIFY : SCMP_ACT_ERRNO(ENOSYS);
    int r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (r < 0) {
        r = cordon_err_sys(err, -r, "seccomp: bad-arch action");
        goto out;
    }
    /* The x32 ABI shares x86_64's audit arch; libseccomp routes syscall
     * numbers with __X32_SYSCALL_BIT to the bad-arch action when x32 is not in
     * the filter, which it is not. */

    for (size_t i = 0; i < ARRAY_SIZE(eperm_always); i++)
        if ((r = add(ctx, eperm, eperm_always[i], 0, NULL, err)) < 0)
            goto out;

    if (!o->allow_nested_userns) {
        for (size_t i = 0; i < ARRAY_SIZE(eperm_unless_nested); i++)
            if ((r = add(ctx, eperm, eperm_unless_nested[i], 0, NULL, err)) < 0)
                goto out;
        for (size_t i = 0; i < ARRAY_SIZE(ns_flags); i++) {
            struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]);
            if ((r = add(ctx, eperm, SYS_unshare, 1, &c, err)) < 0 ||
                (r = add(ctx, eperm, SYS_clone, 1, &c, err)) < 0)
                goto out;
        }
        if ((r = add(ctx, enosys, SYS_clone3, 0, NULL, err)) < 0)
            goto out;
    }

    for (size_t i = 0; i < ARRAY_SIZE(tty_ioctls); i++) {
        struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, LOW32, tty_ioctls[i]);
        if ((r = add(ctx, eperm, SYS_ioctl, 1, &c, err)) < 0)
            goto out;
    }

    /* socket(): int arguments compared on their low 32 bits, as the kernel
     * reads them. */
    static const int families[] = { AF_VSOCK, AF_PACKET };
    for (size_t i = 0; i < ARRAY_SIZE(families); i++) {
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, (unsigned)families[i]);
        if ((r = add(ctx, eperm, SYS_socket, 1, &c, err)) < 0)
            goto out;
    }
    {
        /* Netlink only with protocol exactly 0 (NETLINK_ROUTE: ip, getaddrinfo). */
        struct scmp_arg_cmp c[2] = {
            SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_NETLINK),
            SCMP_A2(SCMP_CMP_GT, 0),
        };
        if ((r = add(ctx, eperm, SYS_socket, 2, c, err)) < 0)
            goto out;
        struct scmp_arg_cmp m = SCMP_A2(SCMP_CMP_MASKED_EQ, LOW32, IPPROTO_MPTCP);
        if ((r = add(ctx, eperm, SYS_socket, 1, &m, err)) < 0)
            goto out;
    }
    if (!o->allow_unix_sockets) {
        struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_UNIX);
        if (!o->emulate_unix_connect && (r = add(ctx, eperm, SYS_socket, 1, &c, err)) < 0)
            goto out;
        /* A datagram socketpair can still sendto() or connect() any
         * pathname datagram socket it can see (/dev/log, the journal):
         * only stream and seqpacket pairs, which stay connected to each
         * other, are allowed. The type is compared without SOCK_NONBLOCK
         * and SOCK_CLOEXEC (SOCK_TYPE_MASK, 0xf); SOCK_RAW is a datagram
         * socket in AF_UNIX. With emulated connects, socket() is refused
         * the same datagram types. */
        static const int dgram_types[] = { SOCK_DGRAM, SOCK_RAW };
        for (size_t i = 0; i < ARRAY_SIZE(dgram_types); i++) {
            struct scmp_arg_cmp d[2] = {
                SCMP_A0(SCMP_CMP_MASKED_EQ, LOW32, AF_UNIX),
                SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, (unsigned)dgram_types[i]),
            };
            if ((r = add(ctx, eperm, SYS_socketpair, 2, d, err)) < 0 ||
                (o->emulate_unix_connect && (r = add(ctx, eperm, SYS_socket, 2, d, err)) < 0))
                goto out;
        }
        if (o->emulate_unix_connect &&
            (r = add(ctx, SCMP_ACT_NOTIFY, SYS_connect, 0, NULL, err)) < 0)
            goto out;
    }

    /* personality(): refuse any value with a weakening flag, except the
     * read-only query 0xffffffff. libseccomp allows one comparison per
     * argument, so "flag set and value != 0xffffffff" is written as the union,
     * over every other bit b of the low 32, of "flag set and bit b clear". */
    for (size_t i = 0; i < ARRAY_SIZE(weak_personality); i++) {
        unsigned long f = weak_personality[i];
        for (unsigned b = 0; b < 32; b++) {
            unsigned long bit = 1UL << b;
            if (f & bit)
                continue;
            struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_MASKED_EQ, f | bit, f);
            if ((r = add(ctx, eperm, SYS_personality, 1, &c, err)) < 0)
                goto out;
        }
    }

    if (o->observe_writes) {
        for (size_t i = 0; i < ARRAY_SIZE(observed_always); i++)
            if ((r = add(ctx, SCMP_ACT_NOTIFY, observed_always[i], 0, NULL, err)) < 0)
                goto out;
        /* open and openat only with a write-intent flag: reads never trap. */
        for (size_t i = 0; i < ARRAY_SIZE(write_flags); i++) {
            struct scmp_arg_cmp c2 = SCMP_A2(SCMP_CMP_MASKED_EQ, write_flags[i], write_flags[i]);
            if ((r = add(ctx, SCMP_ACT_NOTIFY, SYS_openat, 1, &c2, err)) < 0)
                goto out;
#ifdef SYS_open
            struct scmp_arg_cmp c1 = SCMP_A1(SCMP_CMP_MASKED_EQ, write_flags[i], write_flags[i]);
            if ((r = add(ctx, SCMP_ACT_NOTIFY, SYS_open, 1, &c1, err)) < 0)
                goto out;
#endif
        }
    }
    prog_flags(o, out);
    r = export_bpf(ctx, out, err);
out:
    seccomp_release(ctx);
    return r;
}

void harden_seccomp_free(struct seccomp_prog *p)
{
    free(p->insns);
    *p = (struct seccomp_prog){ 0 };
}

int harden_seccomp_apply(const struct seccomp_prog *p)
{
    struct sock_fprog prog = { .len = p->len, .filter = p->insns };
#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
    if (p->notify && p->wait_killable) {
        int r = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                             SECCOMP_FILTER_FLAG_NEW_LISTENER |
                                 SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
        if (r >= 0 || errno != EINVAL)
            return r;
    }
    return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                        p->notify ? SECCOMP_FILTER_FLAG_NEW_LISTENER : 0, &prog);
}
