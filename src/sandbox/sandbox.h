/* sandbox.h: the mount plan and the sandbox process model.
 *
 * Owns: the plan the supervisor computes before clone(2) (so the sandbox's
 * init never allocates), its execution inside the new namespaces, and the
 * supervisor/init protocol.
 *
 * Model (shared/DESIGN.md): the supervisor clones init into new user, mount,
 * pid, net, ipc, uts and cgroup namespaces. Init builds the mount view from
 * file descriptors, stays PID 1, and clones the command into a nested user
 * and mount namespace, which locks every mount of the view (mount_namespaces(7):
 * mounts copied into a less privileged namespace are locked together).
 */
#ifndef CORDON_SANDBOX_H
#define CORDON_SANDBOX_H

#include "cordon.h"
#include "policy/policy.h"
#include "harden/harden.h"
#include "capture.h"

#include <stdbool.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

enum op_kind {
    OP_ROOT_RO,   /* recursive clone of the host's /, read-only */
    OP_ROOT_RW,   /* recursive clone of the host's /, as writable as the host */
    OP_ROOT_MASK, /* "/" itself is read-denied: an empty tmpfs root */
    OP_BIND_RO,   /* recursive clone of a host path, read-only */
    OP_BIND_RW,   /* recursive clone of a host path, writable (a write root) */
    OP_MASK_DIR,  /* read-denied directory: empty read-only tmpfs, mode 000 or 111 */
    OP_MASK_FILE, /* read-denied non-directory: an empty mode-000 file bound over it */
    OP_TMPFS,     /* the private /tmp */
    OP_DEV,       /* a fresh /dev */
    OP_PROC,      /* /proc of the new pid namespace */
    OP_PIN_LINK,  /* a protected symlink, bound over itself so it cannot be replaced */
    OP_WAYPOINT,  /* a name on the way to an allowed path, made in synthetic content:
                   * a symlink (target) or a directory (target NULL); no mount */
};

struct mount_op {
    enum op_kind kind;
    const char *path; /* absolute; the same path in the sandbox and on the host */
    int parent;       /* index of the op whose content holds this mount point */
    bool create;      /* the mount point is created inside the parent's tmpfs */
    bool is_dir;      /* the mounted object is a directory */
    bool pin;         /* only there to make a mount point (workspace protection) */
    bool from_view;   /* cloned from the new view at its own target, not from the host */
    mode_t mode;      /* OP_MASK_DIR and OP_ROOT_MASK: 0 or 0111 */
    dev_t dev;        /* identity of the host object at plan time (binds) */
    ino_t ino;
    const char *target; /* OP_WAYPOINT: the link's text, as on the host, or NULL */
};

struct sandbox_plan {
    struct mount_op *ops;
    size_t nops;
    char **paths;      /* owned strings the ops point into */
    size_t npaths;
    char *cwd;         /* working directory inside (host realpath) */
    char **argv;       /* argv[0] is the command as given; two spare slots for ENOEXEC */
    size_t argc;
    char **envp;
    uid_t uid;
    gid_t gid;
    mode_t umask;      /* the caller's, restored for the command */
    sigset_t sigmask;  /* the caller's, restored for the command */
    bool sigpipe_ignored; /* the caller ignored SIGPIPE (the command inherits that) */
    bool allow_nested_userns;
    int *scratch;      /* nops ints for init (fds), allocated here */

    unsigned disabled;          /* LAYER_* switched off (test builds only) */
    char *exe_path;             /* cordon's binary on the host, or NULL */
    /* TLS interception: the trust bundle the sandbox sees (the CA, the
     * system roots, extraCaCertPaths), written into /dev and bound over the
     * system bundle; NULL without interception. */
    char *trust_bundle;
    size_t trust_len;
    struct seccomp_prog seccomp;
    struct seccomp_opts seccomp_opts; /* how it was built (the listener mirrors it) */
    int landlock_abi;           /* 0: unavailable */
    struct ll_rule *ll;
    size_t nll;
    struct limit limits[LIM_COUNT];

    /* Placeholders are hidden from git inside the sandbox: for each write
     * root that is a repository, a copy of .git/info/exclude extended with
     * the placeholders' names is bound over the original (the host's file is
     * not touched). */
    /* Credentials (tls/creds.h): files the sandbox sees in place of masked
     * ones (or that are hidden), and the variables init wipes from its own
     * copy of the caller's environment. */
    struct fake_bind {
        char *path;
        char *content;  /* NULL when deny */
        size_t len;
        dev_t dev;      /* the real file that was read */
        ino_t ino;
        bool deny;      /* an empty mode-000 file instead */
    } *fakes;
    size_t nfakes;
    char **scrub_env;   /* variable names, NULL-terminated, or NULL */
    char *const *src_envp; /* the caller's environment (borrowed), also wiped */

    struct exclude_bind {
        char *path;     /* <root>/.git/info/exclude */
        char *content;
        size_t len;
        dev_t dev;
        ino_t ino;
    } *excludes;
    size_t nexcludes;

    /* network.transparent (capture.h): what init sets up in the sandbox's
     * network namespace, and the /etc/resolv.conf bound over the host's. */
    struct capture_plan capture;

    /* network.hostPorts (ports.h): init listens on these ports of the
     * sandbox's loopback (borrowed from the policy). */
    const uint16_t *host_ports;
    size_t nhost_ports;
};

/* Compute the plan for policy p. log may be NULL. */
struct protect_set;
struct cred_store;
int sandbox_plan_build(const cordon_policy *p, const char *cwd, char *const *argv,
                       char *const *envp, unsigned disabled_layers,
                       const struct protect_set *prot, const char *ca_pem,
                       const struct cred_store *creds, cordon_log_fn log, void *log_ud,
                       struct sandbox_plan *plan, struct cordon_error *err);
void sandbox_plan_free(struct sandbox_plan *plan);

/* stdio.c: refuse a directory or an O_PATH descriptor on 0, 1 or 2
 * (supervisor). */
int stdio_check(struct cordon_error *err);
/* stdio.c, in init before the view: replace each read-only regular file on
 * 0, 1 or 2 by the same file opened through a read-only detached mount;
 * keep[] gets the originals (or -1). 0, or -errno with a message in err. */
int stdio_confine(int keep[3], char *err, size_t errlen);
/* Give the originals the replacements' offsets (the command has ended). */
void stdio_sync(const int keep[3]);

/* Not a layer: set by the CLI's -c, whose argv is {"/bin/bash", "-c", s}.
 * When /bin/bash cannot be executed in the sandbox's view (absent, hidden
 * by denyRead), the command is /bin/sh instead (init.c, exec_command). */
#define SANDBOX_SHELL_FALLBACK (1u << 31)

/* cordon_run() with layers switched off (test builds; see harden.h), and
 * SANDBOX_SHELL_FALLBACK. */
int sandbox_run(const cordon_policy *p, const struct cordon_run_opts *opts, unsigned disabled,
                int *exit_status, struct cordon_error *err);

/* Messages from init to the supervisor over the SOCK_SEQPACKET sync socket. */
enum sync_msg_type {
    MSG_GO = 1,     /* supervisor -> init: the id maps are written */
    MSG_ERROR = 2,  /* init -> supervisor: setup failed; text says why */
    MSG_EXIT = 3,   /* init -> supervisor: the command ended; status is its wait status */
    MSG_LISTENERS = 4, /* init -> supervisor: SCM_RIGHTS carries the HTTP and SOCKS5
                          listeners created in the sandbox's network namespace */
    MSG_CONTINUE = 5,  /* supervisor -> init: start the command (init is in its pids
                          cgroup, if any); sent while init builds the view */
    MSG_NOTIFY = 6,    /* init -> supervisor: SCM_RIGHTS carries the command's seccomp
                          notify listener */
    MSG_CAPTURE = 7,   /* init -> supervisor: SCM_RIGHTS carries the CAPTURE_NFDS
                          sockets of capture.h, code the CAPTURE_F_* flags; or,
                          without fds, code -errno and text why capture is
                          unavailable */
    MSG_HOSTPORT = 8,  /* init -> supervisor: SCM_RIGHTS carries the listener of
                          network.hostPorts[code] on the sandbox's loopback (ports.h) */
    MSG_UNIXDIAG = 9,  /* init -> supervisor: SCM_RIGHTS carries a NETLINK_SOCK_DIAG
                          socket of the sandbox's namespace (unixsock.h); none when
                          it could not be made */
    MSG_PUBLISH = 10,  /* supervisor -> init, after MSG_CONTINUE: connect to port
                          code of the sandbox's loopback (network.publishPorts) */
    MSG_PUBLISHED = 11, /* init -> supervisor: the answer to the oldest MSG_PUBLISH:
                          code 0 and SCM_RIGHTS the connected socket, or -errno */
};

/* cordon's own binary inside the sandbox (read-only bind). */
#define CORDON_EXE_IN_SANDBOX "/dev/cordon"
#define CORDON_TRUST_IN_SANDBOX "/dev/cordon-ca.pem"
#define SYSTEM_TRUST_BUNDLE "/etc/ssl/certs/ca-certificates.crt"

/* Where the proxy listens inside the sandbox (srt's fixed ports). */
#define CORDON_HTTP_PROXY_PORT 3128
#define CORDON_SOCKS_PROXY_PORT 1080

struct sync_msg {
    uint32_t type;
    int32_t code;   /* MSG_ERROR: errno; MSG_EXIT: wait status */
    char text[1024];
};

/* Send m over the sync socket with one descriptor (fd < 0: none), as
 * sendmsg(2) answers. */
ssize_t sync_send(int sock, const struct sync_msg *m, int fd);

/* Runs in the cloned child; never returns. sync_fd is init's end of the
 * sync socket. */
__attribute__((noreturn)) void sandbox_init_main(const struct sandbox_plan *plan, int sync_fd);

#endif
