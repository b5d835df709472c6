/* cordon.h: public API of libcordon, a sandbox runtime for AI agents on Linux.
 *
 * The library loads an srt-compatible settings file into a policy, and runs a
 * command inside that policy (namespaces, a locked mount view, and the layers
 * later releases add). It never prints and never exits: every fallible call
 * returns a negative errno and fills a struct cordon_error.
 *
 * Threads: cordon_run() forks the sandbox with clone(2); call it from a process
 * that has not started other threads (the CLI does). See docs/threat-model.md
 * for what each layer guarantees.
 */
#ifndef CORDON_H
#define CORDON_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CORDON_VERSION "0.1.0"

/* Exit status cordon uses for its own failures (settings, setup). */
#define CORDON_EXIT_FAILURE 125

struct cordon_error {
    int code;        /* positive errno value */
    char msg[1024];  /* one line, no trailing newline */
};

typedef struct cordon_policy cordon_policy;

/* Where a policy was loaded from. */
enum cordon_policy_source {
    CORDON_SOURCE_EMBEDDED = 0,  /* no settings file: the embedded default */
    CORDON_SOURCE_FILE = 1,
};

/* Paths in settings are expanded against these: `~` is home, relative paths
 * are against cwd. NULL fields mean $HOME (passwd entry when unset) and the
 * current working directory. */
struct cordon_load_opts {
    const char *home;
    const char *cwd;
};

/* Load settings from a JSON file. The error names the file, the JSON pointer
 * of the offending value and the problem. An empty, unreadable or invalid file
 * is an error. */
int cordon_policy_load_file(const char *path, const struct cordon_load_opts *opts,
                            cordon_policy **out, struct cordon_error *err);

/* Load settings from a string; name is used in error messages. */
int cordon_policy_load_string(const char *json, const char *name,
                              const struct cordon_load_opts *opts,
                              cordon_policy **out, struct cordon_error *err);

/* The embedded default policy (README, "Default policy"). */
int cordon_policy_load_default(const struct cordon_load_opts *opts,
                               cordon_policy **out, struct cordon_error *err);

/* Resolve the settings file the CLI would use: explicit path, else
 * $XDG_CONFIG_HOME/cordon/settings.json, else ~/.srt-settings.json, else the
 * embedded default. A file that is found but unusable is an error; only the
 * absence of every default file selects the embedded policy. */
int cordon_policy_load_auto(const char *explicit_path, const struct cordon_load_opts *opts,
                            cordon_policy **out, struct cordon_error *err);

enum cordon_path_list {
    CORDON_DENY_READ,
    CORDON_ALLOW_READ,
    CORDON_ALLOW_WRITE,
    CORDON_DENY_WRITE,
};

/* Add a path to one of the filesystem lists, as the quick flags do. */
int cordon_policy_add_path(cordon_policy *p, enum cordon_path_list list, const char *path,
                           struct cordon_error *err);

/* Add an entry to network.allowedDomains (deny=false) or deniedDomains, as
 * the --allow-domain and --deny-domain flags do. Same grammar as the file. */
int cordon_policy_add_domain(cordon_policy *p, bool deny, const char *entry,
                             struct cordon_error *err);

/* The effective settings as JSON (srt's shape plus cordon's keys), with
 * defaults applied and paths expanded. Caller frees. NULL on ENOMEM. */
char *cordon_policy_to_json(const cordon_policy *p);

/* Where the policy came from; path is NULL for the embedded default. */
enum cordon_policy_source cordon_policy_source(const cordon_policy *p, const char **path);

void cordon_policy_free(cordon_policy *p);

/* Log levels for the optional callback. Debug lines explain each step. */
enum cordon_log_level {
    CORDON_LOG_DEBUG = 0,
    CORDON_LOG_WARN = 1,
};
typedef void (*cordon_log_fn)(void *userdata, enum cordon_log_level level, const char *line);

struct cordon_run_opts {
    char *const *argv;       /* command and arguments; argv[0] is looked up in PATH */
    char *const *envp;       /* the command's environment before cordon's changes;
                                NULL means the caller's environ */
    const char *cwd;         /* working directory inside; NULL = the caller's */
    bool forward_signals;    /* relay SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
                                SIGUSR2, SIGWINCH and SIGCONT to the command */
    cordon_log_fn log;       /* optional */
    void *log_userdata;
    bool audit_enabled;      /* write the audit stream (JSON lines) to audit_fd */
    int audit_fd;
    /* Optional: called from inside cordon_run for every denial as it
     * happens, with a category ("network", "write", "syscall") and one line
     * in srt's violation format, e.g. "deny network-outbound evil.test:443
     * (host is not on the allow list)" or "deny openat /home/u/.bashrc
     * (protected: .bashrc)". The same denials are in the audit stream.
     * Strings from the sandbox in the line are escaped (README "Denials
     * and live updates"): it never holds a control byte. */
    void (*on_denial)(void *userdata, const char *category, const char *line);
    void *denial_userdata;
    /* srt's live-update protocol: settings documents read from control_fd,
     * one per line; the network host rules of each take effect for the next
     * connection; a line that changes anything else is refused with a
     * notice (log). The fd is read, never closed, and never enters the
     * sandbox. It must be 3 or more and readable (else EINVAL / EBADF, the
     * command never runs). If it reaches EOF before its first line, the
     * command is ended (SIGTERM, SIGKILL after 2 s) and cordon_run fails
     * with -EPIPE: the one failure after which the command did run. */
    bool control_enabled;
    int control_fd;
};

/* Run a command inside the policy and wait for it, in this process. On
 * success returns 0 and sets *exit_status to the command's exit code, or
 * 128+N when it died of signal N, or 126/127 when it could not be executed or
 * found (as a shell does). On failure returns a negative errno: the command
 * never ran. The calling process must have no other threads (cordon clones
 * and forks from it) and is the sandbox's supervisor while this runs;
 * multithreaded hosts use cordon_sandbox_spawn instead. */
int cordon_run(const cordon_policy *p, const struct cordon_run_opts *opts, int *exit_status,
               struct cordon_error *err);

/* ---- sandboxes as separate processes (any host, threads or not) -------------
 *
 * cordon_sandbox_spawn starts the cordon binary (posix_spawn: safe in a
 * multithreaded host) as the supervisor of one sandbox, with the policy as
 * its settings, the given stdio, and pipes for the audit stream and live
 * updates. The binary is $CORDON_BINARY when set, else the one installed
 * with this library. */
typedef struct cordon_sandbox cordon_sandbox;

struct cordon_spawn_opts {
    size_t size;             /* sizeof(struct cordon_spawn_opts): lets fields be added */
    char *const *argv;       /* command and arguments */
    char *const *envp;       /* NULL: the caller's environ */
    const char *cwd;         /* NULL: the caller's */
    int stdin_fd, stdout_fd, stderr_fd; /* -1: the caller's own */
    bool audit;              /* keep the audit stream: cordon_sandbox_audit_fd */
    bool live_updates;       /* allow cordon_sandbox_update */
};

/* Start it. Returns 0 with *out, or a negative errno with err set. */
int cordon_sandbox_spawn(const cordon_policy *p, const struct cordon_spawn_opts *o,
                         cordon_sandbox **out, struct cordon_error *err);

/* The supervisor's pid (signals sent to it reach the command as a terminal's
 * would: SIGINT, SIGTERM, SIGHUP, ... are relayed). */
int cordon_sandbox_pid(const cordon_sandbox *s);

/* The read end of the audit stream (JSON lines, DESIGN "Audit records"), or
 * -1 without opts.audit. Read it while the sandbox runs: a full pipe makes
 * the supervisor wait. EOF when the supervisor has exited. */
int cordon_sandbox_audit_fd(const cordon_sandbox *s);

/* Replace the live network host rules (allowedDomains, deniedDomains,
 * deniedDomainReasons, deniedResolvedAddresses, strictAllowlist,
 * defaultPorts) with p's, for the next connection. p must differ from the
 * running policy in those keys only, or the supervisor refuses the update
 * (an audit record, policy.update deny). */
int cordon_sandbox_update(cordon_sandbox *s, const cordon_policy *p, struct cordon_error *err);

/* Send a signal to the supervisor (see cordon_sandbox_pid). */
int cordon_sandbox_kill(cordon_sandbox *s, int sig);

/* Wait for the end. Returns 0 with the command's status (as cordon_run), or
 * a negative errno: -ECANCELED when cordon itself failed (exit 125; its
 * message went to the sandbox's stderr). */
int cordon_sandbox_wait(cordon_sandbox *s, int *exit_status, struct cordon_error *err);

/* Free it: kills the supervisor first (SIGKILL) if it still runs, which
 * takes the whole sandbox down. */
void cordon_sandbox_free(cordon_sandbox *s);

#ifdef __cplusplus
}
#endif

#endif
