/* main.c: the cordon command, a thin layer over libcordon.
 *
 * Owns: option parsing, help text, printing errors and debug lines, and the
 * exit status contract: the command's own status; 128+N when it dies of
 * signal N; 126/127 as a shell when it cannot run or is not found; 125 when
 * cordon itself fails, with one line on stderr. The command never runs
 * unconfined because something failed.
 */
#include "cordon.h"
#include "cli.h"
#include "doctor.h"
#include "harden/harden.h"
#include "policy/policy.h"
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char usage_text[] =
    "Usage: cordon [OPTIONS] [--] COMMAND [ARGS...]\n"
    "       cordon [OPTIONS] -c 'SHELL STRING'\n"
    "       cordon doctor [--json]       (can this machine give cordon every layer?)\n"
    "       cordon connect HOST PORT     (the ssh ProxyCommand used inside)\n"
    "       cordon proxy [OPTIONS]       (the egress proxy alone; see cordon proxy --help)\n"
    "\n"
    "Run a command, and everything it starts, inside a sandbox: new user, mount,\n"
    "pid, network, ipc, uts and cgroup namespaces; a read-only view of the host\n"
    "with denied paths hidden and writes only where the settings allow.\n"
    "\n"
    "Options:\n"
    "  -s, --settings FILE    srt-compatible settings file. Default:\n"
    "                         $XDG_CONFIG_HOME/cordon/settings.json, then\n"
    "                         ~/.srt-settings.json, then the embedded default policy\n"
    "  -c STRING              run STRING with bash -c (/bin/sh -c without /bin/bash)\n"
    "      --allow-write PATH add PATH to filesystem.allowWrite\n"
    "      --deny-write PATH  add PATH to filesystem.denyWrite\n"
    "      --allow-read PATH  add PATH to filesystem.allowRead\n"
    "      --deny-read PATH   add PATH to filesystem.denyRead\n"
    "      --allow-domain HOST[:PORT]  add an entry to network.allowedDomains\n"
    "      --deny-domain HOST[:PORT]   add an entry to network.deniedDomains\n"
    "      --audit FILE       append the audit stream (JSON lines) to FILE\n"
    "      --audit-fd N       write the audit stream to file descriptor N\n"
    "      --print-policy     print the effective settings as JSON and exit\n"
    "      --control-fd N     read settings documents from fd N, one per line; their\n"
    "                         network host rules apply to the next connection\n"
    "      --violations-block at exit, print what was denied as srt's\n"
    "                         <sandbox_violations> block (instead of a summary line)\n"
    "  -d, --debug            explain each step (settings, mount plan) on stderr\n"
    "  -V, --version          print the version and exit\n"
    "  -h, --help             print this help and exit\n"
    "\n"
    "Options end at the first word that is not an option, or at --.\n"
    "\n"
    "Exit status: the command's own; 128+N if it died of signal N; 126 if it\n"
    "could not be executed, 127 if it was not found; 125 if cordon itself failed\n"
    "(bad settings, sandbox setup), in which case the command did not run.\n"
    "SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 and SIGWINCH sent to\n"
    "cordon are relayed to the command.\n"
    "\n"
    "Examples:\n"
    "  cordon -- make test                  # build in the working directory only\n"
    "  cordon -c 'npm ci && npm test'       # a shell string\n"
    "  cordon --deny-read ~/work/secrets -- ./agent.sh\n"
    "  cordon --allow-write ~/.cache/pip -- pip install --user -r req.txt\n"
    "  cordon -s ~/.srt-settings.json --print-policy\n"
    "  cordon --allow-domain pypi.org --allow-domain files.pythonhosted.org \\\n"
    "         --audit audit.jsonl -- pip download requests\n"
    "\n"
    "See cordon(1) and the README for the settings format and the default policy.\n";

static bool g_debug;

static void log_cb(void *ud, enum cordon_log_level level, const char *line)
{
    (void)ud;
    if (level == CORDON_LOG_DEBUG && !g_debug)
        return;
    fprintf(stderr, "cordon: %s%s\n", level == CORDON_LOG_DEBUG ? "debug: " : "warning: ",
            line);
}

static int fail(const struct cordon_error *err)
{
    fprintf(stderr, "cordon: %s\n", err->msg);
    return CORDON_EXIT_FAILURE;
}

/* fds 0-2 must exist, or the sandbox's own sockets could land on them. */
static void ensure_stdio(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
            continue;
        int n = open("/dev/null", O_RDWR);
        if (n >= 0 && n != fd) {
            dup2(n, fd);
            close(n);
        }
    }
}

/* ---- denials: the exit summary and srt's <sandbox_violations> block ---------- */

struct denials {
    json_t *ignore;          /* ignoreViolations, or NULL */
    char *command;           /* the command text, for ignoreViolations keys */
    char **lines;            /* kept for the block */
    size_t nlines, cap;
    unsigned long count[4];  /* network, write, syscall, other */
    char *example[4];
    unsigned long dropped;   /* lines past the cap (still counted) */
};

static int category_index(const char *cat)
{
    if (strcmp(cat, "network") == 0)
        return 0;
    if (strcmp(cat, "write") == 0)
        return 1;
    if (strcmp(cat, "syscall") == 0)
        return 2;
    return 3;
}

/* srt: a key "*" applies to every command, any other key to commands whose
 * text contains it; a value suppresses the violation lines containing it. */
static bool ignored(const struct denials *d, const char *line)
{
    const char *key;
    json_t *vals;
    if (!d->ignore)
        return false;
    json_object_foreach(d->ignore, key, vals) {
        if (strcmp(key, "*") != 0 && !strstr(d->command, key))
            continue;
        size_t i;
        json_t *v;
        json_array_foreach(vals, i, v) {
            const char *s = json_string_value(v);
            if (s && strstr(line, s))
                return true;
        }
    }
    return false;
}

static void on_denial(void *ud, const char *category, const char *line)
{
    struct denials *d = ud;
    if (ignored(d, line))
        return;
    int c = category_index(category);
    if (d->count[c]++ == 0) {
        /* "deny network-outbound evil.test:443 (...)" -> "evil.test:443 (...)" */
        const char *s = line;
        for (int words = 0; words < 2 && strchr(s, ' '); words++)
            s = strchr(s, ' ') + 1;
        d->example[c] = strdup(s);
    }
    if (d->nlines >= 1000) {
        d->dropped++;
        return;
    }
    if (d->nlines == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 16;
        char **nv = realloc(d->lines, cap * sizeof(*nv));
        if (!nv)
            return;
        d->lines = nv;
        d->cap = cap;
    }
    d->lines[d->nlines] = strdup(line);
    if (d->lines[d->nlines])
        d->nlines++;
}

static void print_denials(const struct denials *d, bool block, bool have_audit)
{
    unsigned long total = d->count[0] + d->count[1] + d->count[2] + d->count[3];
    if (total == 0)
        return;
    if (block) {
        fputs("<sandbox_violations>\n", stderr);
        for (size_t i = 0; i < d->nlines; i++)
            fprintf(stderr, "%s\n", d->lines[i]);
        if (d->dropped)
            fprintf(stderr, "... and %lu more\n", d->dropped);
        fputs("</sandbox_violations>\n", stderr);
        return;
    }
    static const char *const what[4][2] = {
        { "network request", "network requests" },
        { "write", "writes" },
        { "refused syscall", "refused syscalls" },
        { "other denial", "other denials" },
    };
    fputs("cordon: blocked ", stderr);
    int shown = 0, parts = 0;
    for (int c = 0; c < 4; c++)
        parts += d->count[c] > 0;
    for (int c = 0; c < 4; c++) {
        if (!d->count[c])
            continue;
        shown++;
        fprintf(stderr, "%s%lu %s (%s%s)", shown == 1 ? "" : shown == parts ? " and " : ", ",
                d->count[c], what[c][d->count[c] != 1], d->example[c] ? d->example[c] : "?",
                d->count[c] > 1 ? ", ..." : "");
    }
    fprintf(stderr, "; %s\n", have_audit ? "see the audit stream" : "run with --audit FILE for "
                                                                   "every record");
}

enum {
    OPT_ALLOW_WRITE = 256,
    OPT_DENY_WRITE,
    OPT_ALLOW_READ,
    OPT_DENY_READ,
    OPT_PRINT_POLICY,
    OPT_TEST_DISABLE,
    OPT_ALLOW_DOMAIN,
    OPT_DENY_DOMAIN,
    OPT_AUDIT,
    OPT_AUDIT_FD,
    OPT_VIOLATIONS_BLOCK,
    OPT_CONTROL_FD,
};

struct path_flag {
    int kind; /* enum cordon_path_list, or OPT_ALLOW_DOMAIN / OPT_DENY_DOMAIN */
    const char *arg;
};

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        { "settings", required_argument, NULL, 's' },
        { "allow-write", required_argument, NULL, OPT_ALLOW_WRITE },
        { "deny-write", required_argument, NULL, OPT_DENY_WRITE },
        { "allow-read", required_argument, NULL, OPT_ALLOW_READ },
        { "deny-read", required_argument, NULL, OPT_DENY_READ },
        { "print-policy", no_argument, NULL, OPT_PRINT_POLICY },
        { "allow-domain", required_argument, NULL, OPT_ALLOW_DOMAIN },
        { "deny-domain", required_argument, NULL, OPT_DENY_DOMAIN },
        { "audit", required_argument, NULL, OPT_AUDIT },
        { "audit-fd", required_argument, NULL, OPT_AUDIT_FD },
        { "violations-block", no_argument, NULL, OPT_VIOLATIONS_BLOCK },
        { "control-fd", required_argument, NULL, OPT_CONTROL_FD },
        { "debug", no_argument, NULL, 'd' },
        { "version", no_argument, NULL, 'V' },
        { "help", no_argument, NULL, 'h' },
#ifdef CORDON_TEST_SWITCHES
        { "test-disable-layer", required_argument, NULL, OPT_TEST_DISABLE },
#endif
        { NULL, 0, NULL, 0 },
    };
    const char *settings = NULL;
    const char *shell = NULL;
    bool print_policy = false;
    bool violations_block = false;
    int control_fd = -1;
    const char *audit_path = NULL;
    int audit_fd = -1;
    unsigned disabled = 0;
    struct path_flag *flags = calloc((size_t)argc + 1, sizeof(*flags));
    size_t nflags = 0;
    struct cordon_error err = { 0 };

    ensure_stdio();
    /* Subcommands come first; a command with the same name runs as
     * `cordon -- NAME`. */
    if (argc >= 2 && strcmp(argv[1], "connect") == 0) {
        free(flags);
        return cli_connect_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "doctor") == 0) {
        free(flags);
        return cli_doctor_main(argc - 1, argv + 1);
    }
    if (argc >= 2 && strcmp(argv[1], "proxy") == 0) {
        free(flags);
        return cli_proxy_main(argc - 1, argv + 1);
    }
    if (!flags) {
        fprintf(stderr, "cordon: out of memory\n");
        return CORDON_EXIT_FAILURE;
    }
    const char *srt_debug = getenv("SRT_DEBUG");
    if (srt_debug && *srt_debug) /* srt: any non-empty value */
        g_debug = true;

    opterr = 0;
    int c;
    /* "+": stop at the first non-option, so the command's own options are
     * never taken for cordon's. */
    while ((c = getopt_long(argc, argv, "+s:c:dVh", longopts, NULL)) != -1) {
        switch (c) {
        case 's': settings = optarg; break;
        case 'c': shell = optarg; break;
        case 'd': g_debug = true; break;
        case 'V':
            printf("cordon %s\n", CORDON_VERSION);
            free(flags);
            return 0;
        case 'h':
            fputs(usage_text, stdout);
            free(flags);
            return 0;
        case OPT_ALLOW_WRITE: flags[nflags++] = (struct path_flag){ CORDON_ALLOW_WRITE, optarg }; break;
        case OPT_DENY_WRITE: flags[nflags++] = (struct path_flag){ CORDON_DENY_WRITE, optarg }; break;
        case OPT_ALLOW_READ: flags[nflags++] = (struct path_flag){ CORDON_ALLOW_READ, optarg }; break;
        case OPT_DENY_READ: flags[nflags++] = (struct path_flag){ CORDON_DENY_READ, optarg }; break;
        case OPT_CONTROL_FD: {
            char *end = NULL;
            errno = 0;
            long v = strtol(optarg, &end, 10);
            if (errno || !end || *end || v < 0 || v > INT_MAX || fcntl((int)v, F_GETFD) < 0) {
                fprintf(stderr, "cordon: --control-fd %s: not an open file descriptor\n", optarg);
                free(flags);
                return CORDON_EXIT_FAILURE;
            }
            control_fd = (int)v;
            break;
        }
        case OPT_VIOLATIONS_BLOCK: violations_block = true; break;
        case OPT_PRINT_POLICY: print_policy = true; break;
        case OPT_ALLOW_DOMAIN: flags[nflags++] = (struct path_flag){ OPT_ALLOW_DOMAIN, optarg }; break;
        case OPT_DENY_DOMAIN: flags[nflags++] = (struct path_flag){ OPT_DENY_DOMAIN, optarg }; break;
        case OPT_AUDIT: audit_path = optarg; break;
        case OPT_AUDIT_FD: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 1 << 20 || fcntl((int)v, F_GETFD) < 0) {
                fprintf(stderr, "cordon: --audit-fd %s: not an open file descriptor\n", optarg);
                free(flags);
                return CORDON_EXIT_FAILURE;
            }
            audit_fd = (int)v;
            break;
        }
        case OPT_TEST_DISABLE: {
            unsigned m = 0;
            if (harden_layers_parse(optarg, &m, &err) < 0) {
                free(flags);
                return fail(&err);
            }
            disabled |= m;
            break;
        }
        case '?':
        default:
            if (optopt && optopt < 256)
                fprintf(stderr, "cordon: unknown or incomplete option -%c (see cordon --help)\n",
                        optopt);
            else
                fprintf(stderr, "cordon: unknown or incomplete option %s (see cordon --help)\n",
                        argv[optind - 1]);
            free(flags);
            return CORDON_EXIT_FAILURE;
        }
    }

    cordon_policy *policy = NULL;
    if (cordon_policy_load_auto(settings, NULL, &policy, &err) < 0) {
        free(flags);
        return fail(&err);
    }
    for (size_t i = 0; i < nflags; i++) {
        int r = flags[i].kind == OPT_ALLOW_DOMAIN || flags[i].kind == OPT_DENY_DOMAIN
                    ? cordon_policy_add_domain(policy, flags[i].kind == OPT_DENY_DOMAIN,
                                               flags[i].arg, &err)
                    : cordon_policy_add_path(policy, (enum cordon_path_list)flags[i].kind,
                                             flags[i].arg, &err);
        if (r < 0) {
            cordon_policy_free(policy);
            free(flags);
            return fail(&err);
        }
    }
    free(flags);

    if (g_debug) {
        const char *src = NULL;
        cordon_policy_source(policy, &src);
        fprintf(stderr, "cordon: debug: settings: %s\n", src ? src : "embedded default policy");
    }

    if (print_policy) {
        /* What was accepted and ignored (a run logs it when it starts). */
        for (size_t i = 0; g_debug && i < policy->notes.n; i++)
            fprintf(stderr, "cordon: debug: %s\n", policy->notes.v[i]);
        char *json = cordon_policy_to_json(policy);
        cordon_policy_free(policy);
        if (!json) {
            fprintf(stderr, "cordon: out of memory\n");
            return CORDON_EXIT_FAILURE;
        }
        printf("%s\n", json);
        free(json);
        return 0;
    }

    /* srt runs -c with bash; so does cordon when the sandbox has /bin/bash
     * (else /bin/sh: SANDBOX_SHELL_FALLBACK). */
    char *shell_argv[] = { "/bin/bash", "-c", (char *)shell, NULL };
    if (shell)
        disabled |= SANDBOX_SHELL_FALLBACK;
    char **cmd = shell ? shell_argv : argv + optind;
    if (shell && optind < argc) {
        fprintf(stderr, "cordon: -c takes the whole command as one string; unexpected "
                        "argument \"%s\"\n", argv[optind]);
        cordon_policy_free(policy);
        return CORDON_EXIT_FAILURE;
    }
    if (!cmd[0]) {
        fprintf(stderr, "cordon: no command given (see cordon --help)\n");
        cordon_policy_free(policy);
        return CORDON_EXIT_FAILURE;
    }

    if (audit_path) {
        audit_fd = open(audit_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
        if (audit_fd < 0) {
            fprintf(stderr, "cordon: --audit %s: %s\n", audit_path, strerror(errno));
            cordon_policy_free(policy);
            return CORDON_EXIT_FAILURE;
        }
    }
    struct denials den = { .ignore = policy->ignore_violations };
    {
        size_t len = 1;
        for (size_t i = 0; cmd[i]; i++)
            len += strlen(cmd[i]) + 1;
        den.command = calloc(1, len);
        for (size_t i = 0; den.command && cmd[i]; i++) {
            if (i)
                strcat(den.command, " ");
            strcat(den.command, cmd[i]);
        }
        if (!den.command)
            den.ignore = NULL;
    }
    struct cordon_run_opts ro = {
        .argv = cmd,
        .forward_signals = true,
        .log = log_cb,
        .audit_enabled = audit_fd >= 0,
        .audit_fd = audit_fd,
        .on_denial = on_denial,
        .denial_userdata = &den,
        .control_enabled = control_fd >= 0,
        .control_fd = control_fd,
    };
    int status = 0;
    int r = sandbox_run(policy, &ro, disabled, &status, &err);
    print_denials(&den, violations_block, audit_fd >= 0);
    for (size_t i = 0; i < den.nlines; i++)
        free(den.lines[i]);
    free(den.lines);
    free(den.command);
    for (int k = 0; k < 4; k++)
        free(den.example[k]);
    cordon_policy_free(policy);
    if (r < 0)
        return fail(&err);
    return status;
}
