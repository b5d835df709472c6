/* unixsock.h: unix sockets by path (network.allowUnixSockets).
 *
 * Owns: connect(2) of the sandboxed command, performed by the supervisor
 * when network.allowUnixSockets is set. The seccomp filter sends every
 * connect() to the shared notify listener (observe.h), which hands it here.
 *
 * Why emulation: a pathname unix socket can sit anywhere on the host (/run,
 * $XDG_RUNTIME_DIR, ~/.docker/run, /var/lib/..., the workspace), a read-only
 * mount does not stop connect() (it needs write permission on the socket
 * inode, and read-only mounts only refuse writes to files, directories and
 * links: path_permission(), sb_permission()), and Landlock on current
 * kernels does not govern it. Hiding directories would leave every place
 * nobody listed open. So every connect is judged, by what the kernel would
 * connect to, and performed here on the caller's own socket (pidfd_getfd(2)
 * gives the supervisor the same open file description); the syscall is then
 * answered with the result. It is never answered "continue" after a check
 * (seccomp_unotify(2): the address, and even the descriptor, could change
 * before the kernel reads them again).
 *
 * What a connect() reaches (docs/threat-model.md, "Unix sockets"):
 *  - a socket of the sandbox's own: bound by a process whose socket lives in
 *    the sandbox's network namespace (sock_diag of that namespace, matched
 *    on the socket file's device and inode), wherever the file is (/tmp,
 *    the workspace);
 *  - a socket at a listed path on the host, or beneath a listed directory,
 *    named by the program either as written or through symlinks of the
 *    sandbox's view. The host side is resolved from the canonical path of
 *    the entry, made when the run starts, without following any symlink
 *    (and without leaving the listed directory), so nothing the sandbox
 *    writes can redirect it. A listed path need not be visible inside
 *    (ssh-agent's socket in the host's /tmp, gpg-agent's under ~/.gnupg);
 *  - abstract sockets: those of the sandbox's network namespace only (the
 *    socket's own namespace decides, as in the kernel);
 *  - every other pathname socket is refused with EACCES and a unix.connect
 *    record; a path that does not exist gets the kernel's own error.
 * Other families (TCP, UDP, netlink) are connected as asked, in the
 * sandbox's network namespace, which is where their sockets live.
 *
 * A blocking caller stays blocked while the connect completes: the
 * supervisor connects with a one-tick send timeout, then waits for the TCP
 * handshake (or retries a full unix backlog) on its event loop and answers
 * when it is done.
 */
#ifndef CORDON_UNIXSOCK_H
#define CORDON_UNIXSOCK_H

#include "audit/audit.h"
#include "policy/policy.h"

#include <linux/seccomp.h>
#include <uv.h>

struct unixsock;

struct unixsock_config {
    uv_loop_t *loop;
    struct audit *audit;
    const cordon_policy *policy; /* network.allowUnixSockets */
};

/* Canonicalise the entries (symlinks as they are now). */
int unixsock_new(const struct unixsock_config *cfg, struct unixsock **out,
                 struct cordon_error *err);

/* A NETLINK_SOCK_DIAG socket of the sandbox's network namespace, made by
 * its init (takes ownership). Without it no socket counts as the sandbox's
 * own (fail closed). */
void unixsock_set_diag(struct unixsock *u, int fd);

/* One connect() notification. rootfd is the caller's root (/proc/PID/root).
 * Returns 0 when resp (id already set) holds the answer to send now, 1 when
 * the answer is sent later on notify_fd (a blocking connect in progress). */
int unixsock_connect(struct unixsock *u, int notify_fd, int rootfd,
                     const struct seccomp_notif *req, struct seccomp_notif_resp *resp);

/* Abandon connects in progress and free u once libuv is done with them. */
void unixsock_free(struct unixsock *u);

/* Is nr the syscall unixsock_connect() serves? */
bool unixsock_is_connect(int nr);

#endif
