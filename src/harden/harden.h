/* harden.h: the layers applied to the command after the mount view:
 * seccomp, Landlock, resource limits.
 *
 * Everything that allocates (libseccomp, path lists) runs in the supervisor
 * before clone(2); the command only applies the precomputed results.
 */
#ifndef CORDON_HARDEN_H
#define CORDON_HARDEN_H

#include "cordon.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/resource.h>

/* Layers the test-only switch can turn off, one at a time (meson option
 * test_switches; release builds do not accept the flag). */
enum cordon_layer {
    LAYER_SECCOMP = 1u << 0,
    LAYER_LANDLOCK = 1u << 1,
    LAYER_USERNS_LIMIT = 1u << 2, /* max_user_namespaces=1 in the sandbox */
    LAYER_SETSID = 1u << 3,
    LAYER_KEYRING = 1u << 4,      /* a fresh session keyring */
    LAYER_CLOSE_FDS = 1u << 5,
    LAYER_ENV = 1u << 6,          /* environment filtering (LD_*) */
    LAYER_LIMITS = 1u << 7,
    LAYER_CAPS = 1u << 8,         /* capability drop */
    LAYER_NNP = 1u << 9,          /* no_new_privs */
    LAYER_DUMPABLE = 1u << 10,    /* init non-dumpable */
};

/* Parse "seccomp,landlock" into a mask; NULL name list is 0. */
int harden_layers_parse(const char *list, unsigned *mask, struct cordon_error *err);

/* ---- seccomp -------------------------------------------------------------- */

struct seccomp_prog {
    struct sock_filter *insns;
    unsigned short len;
    bool notify;   /* has notify actions: installed with a new listener */
    /* The listener performs syscalls for the caller (connect): once it has
     * received one, only a fatal signal interrupts the wait for its answer
     * (SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, Linux 5.19), so an emulated
     * connect is never restarted after it happened. Older kernels: without. */
    bool wait_killable;
};

struct seccomp_opts {
    bool allow_nested_userns;
    bool allow_unix_sockets;
    /* Refused syscalls go to the supervisor's notify listener, which records
     * them and answers with the errno (an ERRNO action would hide them). */
    bool notify_denials;
    /* Write-intent filesystem syscalls (opens for writing, creations,
     * removals, renames, links, mode and owner changes) go to the listener
     * too, which only observes them and lets them continue: the mounts and
     * Landlock decide. */
    bool observe_writes;
    /* network.allowUnixSockets (sandbox/unixsock.h): AF_UNIX stream and
     * seqpacket sockets may be created, and every connect() goes to the
     * listener, which performs it for the caller after judging the address
     * (never "continue": the address could change before the kernel reads
     * it again). Needs notify_denials. */
    bool emulate_unix_connect;
};

/* The filter for o: copied from the table compiled at build time
 * (seccomp_table.h) when it holds o for this machine, else built with
 * libseccomp (harden_seccomp_compile). */
int harden_seccomp_build(const struct seccomp_opts *o, struct seccomp_prog *out,
                         struct cordon_error *err);
int harden_seccomp_compile(const struct seccomp_opts *o, struct seccomp_prog *out,
                           struct cordon_error *err);
/* The options as a number below SECCOMP_OPTS_KEYS, or -1 for a combination
 * plan.c never makes (and the table does not hold); and back (false for
 * such a number). */
#define SECCOMP_OPTS_KEYS 16
int seccomp_opts_key(const struct seccomp_opts *o);
bool seccomp_opts_from_key(unsigned key, struct seccomp_opts *o);
void harden_seccomp_free(struct seccomp_prog *p);
/* In the child, after no_new_privs. Returns -1 with errno on failure, else
 * 0, or the notify listener fd when the filter has notify actions. */
int harden_seccomp_apply(const struct seccomp_prog *p);

/* What the listener must answer for a notification of syscall nr with
 * arguments args: an errno to refuse with (the filter's denial), or 0 when
 * the syscall is only observed (answer "continue"). Mirrors the filter. */
int harden_seccomp_denial(const struct seccomp_opts *o, int nr, const uint64_t args[6]);

/* Asked of the listener so that the caller's CPU serves it (observe.c). */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS /* Linux 6.6; not in Debian 12's headers */
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

/* Is nr one of the observed write-intent filesystem syscalls? */
bool harden_seccomp_observed(int nr);

/* ---- Landlock ------------------------------------------------------------- */

enum ll_kind {
    LL_READ,  /* read files and directories, execute */
    LL_WRITE, /* everything, within the subtree */
    LL_PROC,  /* read only: /proc/sys stays unwritable even if its read-only
                 bind were missing (writes to /proc/self/... are refused too) */
    LL_DEV,   /* read, write, device ioctls */
};

struct ll_rule {
    const char *path;
    enum ll_kind kind;
};

/* Best Landlock ABI of this kernel, 0 when unavailable. */
int harden_landlock_abi(void);
/* In the child: restrict to rules (paths resolved in the sandbox's view).
 * Returns -1 with errno on failure; a path that does not exist is skipped. */
int harden_landlock_apply(int abi, const struct ll_rule *rules, size_t n);

/* ---- limits --------------------------------------------------------------- */

enum { LIM_NPROC, LIM_NOFILE, LIM_FSIZE, LIM_CPU, LIM_AS, LIM_COUNT };

struct limit {
    bool set;
    rlim_t value; /* soft and hard */
};

/* Default for nproc: stops a fork bomb, leaves room for a parallel build. */
#define CORDON_DEFAULT_NPROC 4096

int harden_rlimits_apply(const struct limit *l);

/* pids cgroup for callers whose uid is 0 on the host (RLIMIT_NPROC is not
 * enforced for them). Returns 0 and sets *path (caller frees) and *join_fd,
 * the open file through which a task joins the group
 * (harden_pids_cgroup_join), or an error. */
int harden_pids_cgroup_create(rlim_t max, char **path, int *join_fd, struct cordon_error *err);
/* The calling task (single-threaded) joins the group of join_fd. -1 with
 * errno on failure. */
int harden_pids_cgroup_join(int join_fd);
void harden_pids_cgroup_remove(const char *path);
/* Remove groups left by runs that were killed. */
void harden_pids_cgroup_sweep(void);

#endif
