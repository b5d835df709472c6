/* protect.h: workspace protection: srt's mandatory write denies, the pins
 * that keep protected paths from being renamed away, and placeholders for
 * protected names that do not exist yet.
 *
 * Threat: a command writing in the workspace plants code that runs later,
 * outside the sandbox (shell rc files, git hooks and config, editor and agent
 * settings, direnv). Every protected path that exists is bound read-only over
 * itself; every directory between it and its write root is bound over itself
 * (a "pin"), so neither it nor an ancestor can be renamed or removed (EBUSY);
 * a protected name that does not exist gets a placeholder, created on the
 * host with O_EXCL, bound read-only, and removed when the last run that uses
 * it ends, or by a watchdog when cordon is killed.
 *
 * Invariants:
 *  - the scan, and every creation and removal of a placeholder, goes through
 *    file descriptors: directories are opened relative to their parent with
 *    O_NOFOLLOW, placeholders are created with mkdirat/openat in a parent
 *    opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) from the
 *    write root and checked against the device and inode the scan saw, and
 *    removed with unlinkat in a parent opened without following symlinks.
 *    Nothing is ever created or removed through a symlink, nor outside a
 *    write root; a directory swapped while cordon starts makes it fail closed;
 *  - the registry lock is held from the scan to the last placeholder
 *    created, so a placeholder of another live run is always recognised as
 *    one (never taken for the user's file) and this run is recorded as one of
 *    its users before that run can remove it;
 *  - protection is never silently missing: a placeholder that cannot be
 *    created leaves its parent pinned (read-only when the command could make
 *    it writable again), or cordon refuses to start.
 */
#ifndef CORDON_PROTECT_H
#define CORDON_PROTECT_H

#include "cordon.h"
#include "policy/policy.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <time.h>

enum protect_kind {
    PROT_RO,      /* bind read-only over itself */
    PROT_PIN,     /* bind over itself, keeping its writability: not renamable */
    PROT_LINK,    /* a symlink: bound over itself, so it cannot be replaced */
};

struct protect_item {
    char *path;
    enum protect_kind kind;
};

struct protect_set {
    struct protect_item *v;
    size_t n, cap;
    char runid[64];
    bool have_placeholders;   /* this run created or shares placeholders */
    char **repos;             /* .git directories that existed at start */
    size_t nrepos;
    char **roots;             /* write roots scanned (allowWrite globs expanded) */
    size_t nroots;
    struct protect_root {     /* per root: its identity when cordon started */
        dev_t dev;
        ino_t ino;
    } *root_ids;
    char **must_not_appear;   /* <gitdir>/commondir and config.worktree of nested
                                 repositories, absent at start: reported at exit
                                 if they appear */
    size_t nmust_not_appear;
    char **placeholders;      /* placeholders this run uses (a file, or a directory/) */
    size_t nplaceholders;
    struct scanned_dir {      /* directories the scan read, with their mtime: at */
        char *path;           /* exit only the ones that changed are read again */
        struct timespec mtime;
        int depth;            /* levels left below it */
    } *dirs;
    size_t ndirs, capdirs;
};

/* Find what must be protected under the write roots of p (and cwd when it
 * is writable) and create the placeholders missing names need. */
int protect_prepare(const cordon_policy *p, const char *cwd, struct protect_set *out,
                    cordon_log_fn log, void *ud, struct cordon_error *err);

/* Start the watchdog that removes this run's placeholders if cordon dies
 * without doing it (its own session; it waits for EOF on a pipe). Returns the
 * pipe's write end, to be held by the supervisor, or -1 when there is nothing
 * to watch. */
int protect_watchdog(struct protect_set *s, struct cordon_error *err);

/* Release this run's placeholders (removing those no other run uses). */
void protect_release(struct protect_set *s);

/* At exit: repositories that appeared during the run (a .git directory or
 * file, or a bare repository) with what will run outside the sandbox when
 * the user works in them: report(path, NULL) for each hook other than git's
 * samples, report(config path, key) for each configuration key whose value
 * git runs ("core.fsmonitor", "alias.NAME"...); and report(path,
 * PROTECT_APPEARED) for a commondir or config.worktree that appeared in a
 * nested repository. Nothing it reads can make it block: files are opened
 * without following a final symlink, non-blocking, regular files only, and
 * read up to a bound. */
#define PROTECT_APPEARED "appeared"
typedef void (*protect_report_fn)(void *ud, const char *path, const char *key);
void protect_check_new_hooks(const struct protect_set *s, int depth, protect_report_fn report,
                             void *ud);

void protect_free(struct protect_set *s);

/* Remove placeholders of runs that are gone (called at start). */
void protect_sweep(void);

#endif
