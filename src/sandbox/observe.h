/* observe.h: the supervisor's seccomp user-notification listener.
 *
 * One listener serves the command's whole filter chain (shared/DESIGN.md):
 *  - a syscall the filter refuses arrives here, is recorded (syscall.deny)
 *    and answered with the errno the filter means (EPERM, or ENOSYS for
 *    clone3): the same result as an ERRNO action, but seen;
 *  - a write-intent filesystem syscall (an open for writing, a creation,
 *    removal, rename, link, mode or owner change) is only observed: the path
 *    is read from the caller's memory, and when the mount it would change is
 *    read-only in the sandbox (outside the write roots, a protected name, a
 *    denied path) an fs.deny record is made. The answer is always "continue":
 *    the mounts and Landlock decide, never this check (its memory could
 *    change before the kernel reads it again: seccomp_unotify(2)).
 *  - connect(), when network.allowUnixSockets is set, is performed here for
 *    the caller and answered with its result (unixsock.h).
 * Commands that never write and never make a refused syscall never reach it.
 * A thread of the supervisor serves it (see observe.c); records and
 * connects reach the loop through an async handle.
 */
#ifndef CORDON_OBSERVE_H
#define CORDON_OBSERVE_H

#include "audit/audit.h"
#include "harden/harden.h"
#include "policy/policy.h"

#include <uv.h>

struct protect_set;
struct observer;

struct observe_config {
    struct seccomp_opts seccomp;      /* how the filter was built */
    struct audit *audit;
    const cordon_policy *policy;      /* for naming the rule behind a denial */
    const struct protect_set *prot;   /* protected names and the write roots */
    struct unixsock *unix_conn;       /* connect() emulation (unixsock.h), or NULL */
};

/* Serve listener (takes ownership) from loop. */
int observer_start(uv_loop_t *loop, int listener, const struct observe_config *cfg,
                   struct observer **out);
/* Stop serving (the thread is joined and every record it made emitted) and
 * close the listener; the handle is freed once libuv is done. */
void observer_stop(struct observer *o);

#endif
