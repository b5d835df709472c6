/* run.c: the supervisor side of one sandboxed run.
 *
 * Owns: cordon_run(): plan, clone(2) of init into the new namespaces, the id
 * maps, the sync protocol, signal relay, and mapping init's report to the
 * command's exit status.
 * Invariants:
 *  - clone happens before any thread exists (the caller's promise) and the
 *    child only executes the precomputed plan;
 *  - a failure anywhere before exec is reported as an error and the command
 *    never runs; a sandbox that ends without a report is an error, never a
 *    success.
 */
#include "sandbox.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static const int relayed[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

static int write_proc(pid_t pid, const char *name, const char *s)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/%s", pid, name);
    _cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t n = strlen(s);
    ssize_t w = write(fd, s, n);
    if (w < 0)
        return -errno;
    return (size_t)w == n ? 0 : -EIO;
}

static int write_maps(pid_t pid, uid_t uid, gid_t gid, struct cordon_error *err)
{
    char map[64];
    int r = write_proc(pid, "setgroups", "deny");
    if (r < 0)
        return cordon_err_sys(err, -r, "cannot write setgroups of the sandbox");
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid, (unsigned)uid);
    r = write_proc(pid, "uid_map", map);
    if (r < 0)
        return cordon_err_sys(err, -r, "cannot write the sandbox's uid map");
    snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid, (unsigned)gid);
    r = write_proc(pid, "gid_map", map);
    if (r < 0)
        return cordon_err_sys(err, -r, "cannot write the sandbox's gid map");
    return 0;
}

static void debug_line(const struct cordon_run_opts *o, const char *line)
{
    if (o->log)
        o->log(o->log_userdata, CORDON_LOG_DEBUG, line);
}

int cordon_run(const cordon_policy *p, const struct cordon_run_opts *opts, int *exit_status,
               struct cordon_error *err)
{
    if (!opts || !opts->argv || !opts->argv[0])
        return cordon_err_set(err, EINVAL, "no command given");

    _cleanup_free_ char *cwd = NULL;
    if (opts->cwd) {
        cwd = strdup(opts->cwd);
    } else {
        cwd = getcwd(NULL, 0);
        if (!cwd)
            return cordon_err_sys(err, errno, "cannot determine the working directory");
    }
    if (!cwd)
        return cordon_err_set(err, ENOMEM, "out of memory");

    struct sandbox_plan plan;
    for (size_t i = 0; i < p->notes.n; i++)
        debug_line(opts, p->notes.v[i]);
    int r = sandbox_plan_build(p, cwd, opts->argv, opts->envp ? opts->envp : environ, opts->log,
                               opts->log_userdata, &plan, err);
    if (r < 0)
        return r;

    mode_t um = umask(0);
    umask(um);
    plan.umask = um;

    sigset_t relay;
    sigemptyset(&relay);
    if (opts->forward_signals)
        for (size_t i = 0; i < ARRAY_SIZE(relayed); i++)
            sigaddset(&relay, relayed[i]);
    /* Block before clone: init inherits the mask (it wants these blocked for
     * its own signalfd) and no signal slips between clone and signalfd. */
    sigset_t oldmask;
    sigprocmask(SIG_BLOCK, &relay, &oldmask);
    plan.sigmask = oldmask;

    int sv[2] = { -1, -1 };
    int sfd = -1;
    pid_t pid = -1;
    bool have_exit = false, have_error = false;
    int exit_ws = 0;
    struct sync_msg msg;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
        r = cordon_err_sys(err, errno, "socketpair");
        goto out;
    }
    if (opts->forward_signals) {
        sfd = signalfd(-1, &relay, SFD_CLOEXEC | SFD_NONBLOCK);
        if (sfd < 0) {
            r = cordon_err_sys(err, errno, "signalfd");
            goto out;
        }
    }

    pid = (pid_t)syscall(SYS_clone, CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
                                        CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP | SIGCHLD,
                         0, 0, 0, 0);
    if (pid < 0) {
        int e = errno;
        r = cordon_err_sys(err, e, "cannot create the sandbox's namespaces (unprivileged user "
                                   "namespaces may be disabled; run `cordon doctor`)");
        goto out;
    }
    if (pid == 0) {
        close(sv[0]);
        sandbox_init_main(&plan, sv[1]);
    }
    close(sv[1]);
    sv[1] = -1;

    r = write_maps(pid, plan.uid, plan.gid, err);
    if (r < 0)
        goto out;
    memset(&msg, 0, sizeof(msg));
    msg.type = MSG_GO;
    if (send(sv[0], &msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg)) {
        r = cordon_err_sys(err, errno, "cannot start the sandbox");
        goto out;
    }

    for (;;) {
        struct pollfd pfd[2] = {
            { .fd = sv[0], .events = POLLIN },
            { .fd = sfd, .events = POLLIN },
        };
        if (poll(pfd, sfd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            r = cordon_err_sys(err, errno, "poll");
            goto out;
        }
        if (sfd >= 0 && (pfd[1].revents & POLLIN)) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                kill(pid, (int)si.ssi_signo);
        }
        if (pfd[0].revents) {
            ssize_t n = recv(sv[0], &msg, sizeof(msg), MSG_DONTWAIT);
            if (n < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (n <= 0)
                break; /* init is gone */
            if ((size_t)n != sizeof(msg))
                continue;
            msg.text[sizeof(msg.text) - 1] = '\0';
            if (msg.type == MSG_ERROR && !have_error) {
                have_error = true;
                r = cordon_err_set(err, msg.code, "sandbox setup failed: %s", msg.text);
            } else if (msg.type == MSG_EXIT) {
                have_exit = true;
                exit_ws = msg.code;
            }
        }
    }

out:;
    int ws = 0;
    if (pid > 0) {
        if (r < 0 && !have_error)
            kill(pid, SIGKILL);
        while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
            ;
    }
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    if (sfd >= 0)
        close(sfd);
    sigprocmask(SIG_SETMASK, &oldmask, NULL);
    sandbox_plan_free(&plan);

    if (r < 0)
        return r;
    if (have_error)
        return -err->code;
    if (!have_exit) {
        if (WIFSIGNALED(ws))
            return cordon_err_set(err, ECHILD, "the sandbox's init was killed by signal %d",
                                  WTERMSIG(ws));
        return cordon_err_set(err, ECHILD, "the sandbox's init ended (status %d) without "
                                           "reporting the command's status",
                              WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    }
    if (WIFEXITED(exit_ws))
        *exit_status = WEXITSTATUS(exit_ws);
    else if (WIFSIGNALED(exit_ws))
        *exit_status = 128 + WTERMSIG(exit_ws);
    else
        *exit_status = CORDON_EXIT_FAILURE;
    return 0;
}
