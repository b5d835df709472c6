/* api.c: cordon_sandbox_*, sandboxes run by the cordon binary in a process
 * of their own (see include/cordon.h).
 *
 * posix_spawn (vfork and exec) is the one safe way to start a process from
 * a multithreaded host: nothing of the host runs in the child before exec.
 * The policy travels as settings text in a sealed memfd (cordon_policy_to_json
 * reloads to the same policy: tests/unit/test_settings.c checks the round
 * trip), the audit stream and live updates as pipes. The descriptors sit at
 * 3, 4 and 5 in the child; cordon's init closes them before the sandbox
 * starts.
 */
#include "cordon.h"
#include "core/err.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#ifndef CORDON_INSTALLED_BINARY
#define CORDON_INSTALLED_BINARY "/usr/local/bin/cordon"
#endif

struct cordon_sandbox {
    pid_t pid;
    int audit_fd;   /* read end, or -1 */
    int control_fd; /* write end, or -1 */
    bool reaped;
    int status;
};

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int settings_fd(const cordon_policy *p, struct cordon_error *err)
{
    char *json = cordon_policy_to_json(p);
    if (!json)
        return cordon_err_set(err, ENOMEM, "out of memory");
    int fd = memfd_create("cordon-settings", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int r = fd < 0 ? -errno : write_all(fd, json, strlen(json));
    free(json);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        return cordon_err_sys(err, -r, "writing the settings for the sandbox");
    }
    (void)fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL);
    return fd;
}

int cordon_sandbox_spawn(const cordon_policy *p, const struct cordon_spawn_opts *o,
                         cordon_sandbox **out, struct cordon_error *err)
{
    *out = NULL;
    if (!o || o->size < sizeof(struct cordon_spawn_opts) || !o->argv || !o->argv[0])
        return cordon_err_set(err, EINVAL, "cordon_sandbox_spawn: no command, or options of "
                                           "another version (set opts.size)");
    const char *bin = getenv("CORDON_BINARY");
    if (!bin || !*bin)
        bin = CORDON_INSTALLED_BINARY;
    int sfd = settings_fd(p, err);
    if (sfd < 0)
        return sfd;
    int ap[2] = { -1, -1 }, cp[2] = { -1, -1 };
    if ((o->audit && pipe2(ap, O_CLOEXEC) < 0) || (o->live_updates && pipe2(cp, O_CLOEXEC) < 0)) {
        int e = errno;
        close(sfd);
        if (ap[0] >= 0) {
            close(ap[0]);
            close(ap[1]);
        }
        return cordon_err_sys(err, e, "pipe");
    }
    size_t argc = 0;
    while (o->argv[argc])
        argc++;
    char **argv = calloc(argc + 12, sizeof(char *));
    cordon_sandbox *s = calloc(1, sizeof(*s));
    posix_spawn_file_actions_t fa;
    int r = posix_spawn_file_actions_init(&fa);
    if (!argv || !s || r != 0) {
        free(argv);
        free(s);
        close(sfd);
        return cordon_err_set(err, ENOMEM, "out of memory");
    }
    size_t k = 0;
    argv[k++] = (char *)"cordon";
    argv[k++] = (char *)"--settings";
    argv[k++] = (char *)"/proc/self/fd/3";
    if (o->audit) {
        argv[k++] = (char *)"--audit-fd";
        argv[k++] = (char *)"4";
    }
    if (o->live_updates) {
        argv[k++] = (char *)"--control-fd";
        argv[k++] = (char *)"5";
    }
    argv[k++] = (char *)"--";
    for (size_t i = 0; i < argc; i++)
        argv[k++] = o->argv[i];
    argv[k] = NULL;
    /* Sources above 9 first, so that no dup2 below overwrites another
     * source (an fd already at 3, stdout and stderr swapped). */
    int hi[6] = { -1, -1, -1, -1, -1, -1 };
    const int src[6] = { o->stdin_fd, o->stdout_fd, o->stderr_fd, sfd,
                         o->audit ? ap[1] : -1, o->live_updates ? cp[0] : -1 };
    for (int i = 0; i < 6 && r == 0; i++)
        if (src[i] >= 0 && (hi[i] = fcntl(src[i], F_DUPFD_CLOEXEC, 10)) < 0)
            r = errno;
    const int std[3] = { hi[0], hi[1], hi[2] };
    for (int i = 0; i < 3 && r == 0; i++)
        if (std[i] >= 0)
            r = posix_spawn_file_actions_adddup2(&fa, std[i], i);
    if (r == 0)
        r = posix_spawn_file_actions_adddup2(&fa, hi[3], 3);
    if (r == 0 && o->audit)
        r = posix_spawn_file_actions_adddup2(&fa, hi[4], 4);
    if (r == 0 && o->live_updates)
        r = posix_spawn_file_actions_adddup2(&fa, hi[5], 5);
    if (r == 0 && o->cwd)
        r = posix_spawn_file_actions_addchdir_np(&fa, o->cwd);
    pid_t pid = -1;
    if (r == 0)
        r = posix_spawn(&pid, bin, &fa, NULL, argv, o->envp ? o->envp : environ);
    posix_spawn_file_actions_destroy(&fa);
    for (int i = 0; i < 6; i++)
        if (hi[i] >= 0)
            close(hi[i]);
    free(argv);
    close(sfd);
    if (ap[1] >= 0)
        close(ap[1]);
    if (cp[0] >= 0)
        close(cp[0]);
    if (r != 0) {
        if (ap[0] >= 0)
            close(ap[0]);
        if (cp[1] >= 0)
            close(cp[1]);
        free(s);
        return cordon_err_sys(err, r, "starting %s", bin);
    }
    s->pid = pid;
    s->audit_fd = ap[0];
    s->control_fd = cp[1];
    *out = s;
    return 0;
}

int cordon_sandbox_pid(const cordon_sandbox *s)
{
    return s ? (int)s->pid : -1;
}

int cordon_sandbox_audit_fd(const cordon_sandbox *s)
{
    return s ? s->audit_fd : -1;
}

int cordon_sandbox_update(cordon_sandbox *s, const cordon_policy *p, struct cordon_error *err)
{
    if (!s || s->control_fd < 0)
        return cordon_err_set(err, EINVAL, "this sandbox was spawned without live_updates");
    char *json = cordon_policy_to_json(p);
    if (!json)
        return cordon_err_set(err, ENOMEM, "out of memory");
    /* One document per line: the compact dump holds no raw newline. */
    for (char *q = json; *q; q++)
        if (*q == '\n')
            *q = ' ';
    int r = write_all(s->control_fd, json, strlen(json));
    if (r == 0)
        r = write_all(s->control_fd, "\n", 1);
    free(json);
    if (r < 0)
        return cordon_err_sys(err, -r, "sending the update");
    return 0;
}

int cordon_sandbox_kill(cordon_sandbox *s, int sig)
{
    if (!s || s->reaped)
        return -ESRCH;
    return kill(s->pid, sig) < 0 ? -errno : 0;
}

int cordon_sandbox_wait(cordon_sandbox *s, int *exit_status, struct cordon_error *err)
{
    if (!s)
        return cordon_err_set(err, EINVAL, "no sandbox");
    if (!s->reaped) {
        int ws;
        pid_t w;
        do {
            w = waitpid(s->pid, &ws, 0);
        } while (w < 0 && errno == EINTR);
        if (w < 0)
            return cordon_err_sys(err, errno, "waiting for the sandbox");
        s->reaped = true;
        s->status = ws;
    }
    if (s->control_fd >= 0) {
        close(s->control_fd);
        s->control_fd = -1;
    }
    int ws = s->status;
    if (WIFEXITED(ws) && WEXITSTATUS(ws) == CORDON_EXIT_FAILURE)
        return cordon_err_set(err, ECANCELED, "cordon could not run the command (exit 125; "
                                              "its message is on the sandbox's stderr)");
    *exit_status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
    return 0;
}

void cordon_sandbox_free(cordon_sandbox *s)
{
    if (!s)
        return;
    if (!s->reaped) {
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    if (s->audit_fd >= 0)
        close(s->audit_fd);
    if (s->control_fd >= 0)
        close(s->control_fd);
    free(s);
}
