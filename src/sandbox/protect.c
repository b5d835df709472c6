/* protect.c: see protect.h.
 *
 * Protected names (srt-compat.md 3.14, plus three cordon adds because they
 * run code outside the sandbox: .envrc, which direnv executes on cd, and
 * .claude/settings.json and .claude/settings.local.json, whose hooks Claude
 * Code runs):
 *   files and directories anywhere down to mandatoryDenySearchDepth:
 *     .gitconfig .gitmodules .bashrc .bash_profile .zshrc .zprofile .profile
 *     .ripgreprc .mcp.json .envrc .vscode .idea
 *     .claude/commands .claude/agents .claude/settings.json
 *     .claude/settings.local.json
 *   in a repository (a .git directory with HEAD): .git/hooks, and .git/config
 *     unless allowGitConfig, .git/commondir, and the same in every
 *     submodule's git directory below .git/modules; each linked worktree's
 *     commondir and config.worktree; a .git that is a file (worktree,
 *     submodule) is itself protected.
 * Missing names get placeholders at the top of every write root (where the
 * caller can create them), a missing .git/hooks, .git/config or
 * .git/commondir (holding ".") of an existing repository at any scanned
 * depth, the first missing component of a denyWrite entry inside a write
 * root, and the missing target of a protected symlink when it lies inside a
 * write root; a missing .git gets none, so `git init` works, and at exit
 * cordon reports hooks of repositories that appeared during the run.
 *
 * Placeholders are empty files (mode 0644 less the umask, so that writes
 * reach the read-only mount and fail with EROFS rather than with EACCES from
 * the permission check, which comes first: path_openat -> may_open ->
 * inode_permission before mnt_want_write in do_dentry_open) or empty
 * directories (0555). When a write root is a repository without
 * .git/info/exclude, an empty exclude (and .git/info if needed) is made the
 * same way, so that git inside can be told to ignore the placeholders (an
 * extended copy is bound over it: plan.c build_excludes); it goes with them.
 *
 * Placeholders are shared between concurrent runs: a registry under the
 * user's runtime directory, updated under flock(2), records each
 * placeholder's device, inode, kind and the runs using it ("pid.starttime",
 * checked against /proc, so a crashed run counts as gone). The lock is held
 * from the scan until the registry is written back: a name the scan finds
 * that is another live run's placeholder is shared (this run is added to its
 * users, and binds it read-only like its own), never taken for a file of the
 * user, and never removed while a live run uses it. A placeholder is removed
 * by the last run that uses it, only while it is still the empty object
 * cordon created; a watchdog in its own session does the same for a cordon
 * killed with SIGKILL, and every start sweeps entries whose runs are gone.
 *
 * Symlink races (escape-classes.md 19): the workspace is writable by other
 * sandboxes, so any directory in it can be swapped for a symlink at any
 * time. The scan opens every directory relative to its parent with
 * O_NOFOLLOW and looks at entries with fstatat(AT_SYMLINK_NOFOLLOW);
 * placeholders are created with mkdirat/openat(O_EXCL | O_NOFOLLOW) in a
 * parent opened with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) from the
 * write root's fd and checked against the device and inode the scan saw;
 * removal uses unlinkat in a parent opened with RESOLVE_NO_SYMLINKS after
 * checking the device and inode. A directory that turns into a symlink (or
 * another directory) while cordon starts makes it fail closed, naming it.
 */
#include "protect.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *const prot_files[] = {
    ".gitconfig", ".gitmodules", ".bashrc", ".bash_profile", ".zshrc", ".zprofile",
    ".profile", ".ripgreprc", ".mcp.json", ".envrc",
};
static const char *const prot_dirs[] = { ".vscode", ".idea" };
static const struct {
    const char *name;
    bool dir;
} claude_items[] = {
    { "commands", true }, { "agents", true }, { "settings.json", false },
    { "settings.local.json", false },
};

/* Limits for the scan: a workspace with more than this is a mistake (and a
 * denial of service on every start). */
#define SCAN_MAX_ENTRIES 2000000
#define MAX_PROTECT 20000
#define LINK_HOPS 8

/* Placeholder kinds, as recorded in the registry. */
enum {
    PH_FILE = 'f',    /* a protected file name */
    PH_DIR = 'd',     /* a protected directory name (or the first missing component) */
    PH_EXCLUDE = 'x', /* <root>/.git/info/exclude, so git can ignore the others */
    PH_INFO = 'i',    /* <root>/.git/info, holding it */
    PH_COMMON = 'c',  /* <gitdir>/commondir holding "." (see protect_gitdir) */
};

/* What a commondir placeholder holds: the repository's own directory. */
static const char commondir_self[] = ".\n";

static mode_t ph_mode(char type)
{
    switch (type) {
    case PH_DIR: return 0555;
    case PH_INFO: return 0755;  /* git may write there (info/sparse-checkout) */
    default: return 0644;       /* see the header: EROFS, not EACCES */
    }
}

static bool ph_is_dir(char type)
{
    return type == PH_DIR || type == PH_INFO;
}

static int openat2_flags(int dirfd, const char *path, int flags, unsigned long long resolve)
{
    struct open_how how = {
        .flags = (unsigned long long)(flags | O_CLOEXEC),
        .resolve = resolve,
    };
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
}

#define NO_LINKS (RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)
#define BENEATH_NO_LINKS (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)

/* Length of dir as the prefix of "dir/name" ("/" counts as empty). */
static size_t base_len(const char *dir)
{
    return strcmp(dir, "/") == 0 ? 0 : strlen(dir);
}

static int join_path(char *out, size_t n, const char *dir, const char *name)
{
    int w = snprintf(out, n, "%.*s/%s", (int)base_len(dir), dir, name);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

/* ---- the placeholder registry ----------------------------------------------- */

struct entry {
    dev_t dev;
    ino_t ino;
    char type;
    bool seen;     /* the scan found it: this run relies on it */
    bool dropped;  /* superseded: not written back */
    char *owners;  /* run ids, comma-separated; "" once nobody uses it */
    char *path;
};

struct registry {
    int lockfd;
    char dir[PATH_MAX];
    struct entry *v;
    size_t n, cap;
    size_t nsorted;  /* v[0..nsorted) is sorted by path */
    bool dirty;      /* to be written back */
    struct alive {   /* liveness of run ids, looked up once per open */
        char id[64];
        bool alive;
    } *alive;
    size_t nalive;
};

/* Where the registry lives: $XDG_RUNTIME_DIR/cordon, else
 * $XDG_CACHE_HOME/cordon or ~/.cache/cordon (a directory of the user's
 * own: a shared /tmp name could be taken first by another user), and only
 * for a user without a usable home, /tmp/cordon-UID. */
static bool own_dir(const char *p)
{
    struct stat st;
    return p && p[0] == '/' && stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
           st.st_uid == geteuid();
}

/* With create false (releasing, sweeping) nothing is made: a registry that
 * is not there holds nothing, and a run that ends after its home was
 * removed must not bring the directories back. */
static int state_dir(char *out, size_t n, bool create)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    const char *c = getenv("XDG_CACHE_HOME");
    const char *h = getenv("HOME");
    struct stat st;
    char cache[PATH_MAX];
    cache[0] = '\0';
    if (own_dir(x)) {
        snprintf(out, n, "%s/cordon", x);
    } else {
        if (own_dir(c))
            snprintf(cache, sizeof(cache), "%s", c);
        else if (own_dir(h)) {
            snprintf(cache, sizeof(cache), "%s/.cache", h);
            if (create && mkdir(cache, 0700) < 0 && errno != EEXIST)
                cache[0] = '\0';
            else if (!own_dir(cache))
                cache[0] = '\0';
        }
        if (cache[0])
            snprintf(out, n, "%s/cordon", cache);
        else
            snprintf(out, n, "/tmp/cordon-%u", (unsigned)geteuid());
    }
    if (create && mkdir(out, 0700) < 0 && errno != EEXIST)
        return -errno;
    /* Refuse a directory someone else made for us (or a symlink). */
    if (lstat(out, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
        return -EPERM;
    return 0;
}

static unsigned long long start_time(pid_t pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof(p), "/proc/%d/stat", (int)pid);
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (k <= 0)
        return 0;
    buf[k] = '\0';
    char *rp = strrchr(buf, ')');
    if (!rp)
        return 0;
    /* fields after the command: state is field 3; starttime is field 22 */
    unsigned long long v = 0;
    char *save = NULL, *tok = strtok_r(rp + 2, " ", &save);
    for (int f = 3; tok && f < 22; f++)
        tok = strtok_r(NULL, " ", &save);
    if (tok)
        v = strtoull(tok, NULL, 10);
    return v;
}

static bool run_alive(struct registry *g, const char *runid)
{
    for (size_t i = 0; i < g->nalive; i++)
        if (strcmp(g->alive[i].id, runid) == 0)
            return g->alive[i].alive;
    int pid;
    unsigned long long st;
    bool alive = sscanf(runid, "%d.%llu", &pid, &st) == 2 && pid > 0 && start_time(pid) == st;
    struct alive *v = realloc(g->alive, (g->nalive + 1) * sizeof(*v));
    if (v && strlen(runid) < sizeof(v->id)) {
        g->alive = v;
        snprintf(v[g->nalive].id, sizeof(v->id), "%s", runid);
        v[g->nalive++].alive = alive;
    } else if (v) {
        g->alive = v;
    }
    return alive;
}

static int cmp_entries(const void *a, const void *b)
{
    return strcmp(((const struct entry *)a)->path, ((const struct entry *)b)->path);
}

/* Paths are written with "\\" and "\n" escaped, one entry a line:
 * "dev ino type owners path". */
static void write_escaped(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\')
            fputs("\\\\", f);
        else if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static void unescape(char *s)
{
    char *o = s;
    for (; *s; s++) {
        if (*s == '\\' && (s[1] == '\\' || s[1] == 'n')) {
            *o++ = s[1] == 'n' ? '\n' : '\\';
            s++;
        } else {
            *o++ = *s;
        }
    }
    *o = '\0';
}

static int reg_push(struct registry *g, struct entry e)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        struct entry *v = realloc(g->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = e;
    g->dirty = true;
    return 0;
}

static bool parse_line(char *line, struct entry *e)
{
    char *end;
    errno = 0;
    unsigned long long dev = strtoull(line, &end, 10);
    if (end == line || *end != ' ')
        return false;
    line = end + 1;
    unsigned long long ino = strtoull(line, &end, 10);
    if (end == line || *end != ' ' || errno)
        return false;
    line = end + 1;
    if (!line[0] || line[1] != ' ')
        return false;
    char type = line[0];
    line += 2;
    char *sp = strchr(line, ' ');
    if (!sp || sp == line || sp[1] != '/')
        return false;
    *sp = '\0';
    unescape(sp + 1);
    *e = (struct entry){ .dev = (dev_t)dev, .ino = (ino_t)ino, .type = type };
    e->owners = strdup(line);
    e->path = strdup(sp + 1);
    if (!e->owners || !e->path) {
        free(e->owners);
        free(e->path);
        return false;
    }
    return true;
}

static int reg_open(struct registry *g, bool create)
{
    memset(g, 0, sizeof(*g));
    g->lockfd = -1;
    int r = state_dir(g->dir, sizeof(g->dir), create);
    if (r < 0)
        return r;
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/lock", g->dir);
    g->lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (g->lockfd < 0)
        return -errno;
    while (flock(g->lockfd, LOCK_EX) < 0)
        if (errno != EINTR)
            return -errno;
    snprintf(p, sizeof(p), "%s/placeholders", g->dir);
    FILE *f = fopen(p, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    r = 0;
    while ((len = getline(&line, &cap, f)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[len - 1] = '\0';
        struct entry e;
        if (!parse_line(line, &e))
            continue;
        if (reg_push(g, e) < 0) {
            free(e.owners);
            free(e.path);
            r = -ENOMEM;
            break;
        }
    }
    free(line);
    fclose(f);
    if (g->n > 1)
        qsort(g->v, g->n, sizeof(*g->v), cmp_entries);
    g->nsorted = g->n;
    g->dirty = false;
    return r;
}

static void reg_close(struct registry *g, bool write)
{
    /* Only when something changed: the watchdog's release after the
     * supervisor's own is a no-op, and leaves nothing behind. */
    if (write && g->dirty && g->lockfd >= 0) {
        char p[PATH_MAX + 32], t[PATH_MAX + 32];
        snprintf(p, sizeof(p), "%s/placeholders", g->dir);
        snprintf(t, sizeof(t), "%s/placeholders.tmp", g->dir);
        FILE *f = fopen(t, "we");
        if (f) {
            for (size_t i = 0; i < g->n; i++) {
                const struct entry *e = &g->v[i];
                if (e->dropped || !e->owners || !e->owners[0])
                    continue;
                fprintf(f, "%llu %llu %c %s ", (unsigned long long)e->dev,
                        (unsigned long long)e->ino, e->type, e->owners);
                write_escaped(f, e->path);
                fputc('\n', f);
            }
            /* No fsync: after a crash a stale or missing entry only means a
             * placeholder is left for the user to see (never a wrong removal:
             * removal checks the device, inode and emptiness). A write
             * that failed earlier (ENOSPC while a full buffer went out) is
             * in ferror, not in fflush's result: then, or when the rename
             * fails, the old registry stays whole and the partial copy goes. */
            if (fflush(f) != 0 || ferror(f) || rename(t, p) < 0)
                unlink(t);
            fclose(f);
        }
    }
    for (size_t i = 0; i < g->n; i++) {
        free(g->v[i].owners);
        free(g->v[i].path);
    }
    free(g->v);
    free(g->alive);
    g->v = NULL;
    g->alive = NULL;
    g->n = g->cap = g->nsorted = g->nalive = 0;
    if (g->lockfd >= 0)
        close(g->lockfd); /* releases the lock */
    g->lockfd = -1;
}

static struct entry *reg_find(struct registry *g, const char *path)
{
    if (!g)
        return NULL;
    size_t lo = 0, hi = g->nsorted;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->v[mid].path, path);
        if (c == 0) {
            if (!g->v[mid].dropped)
                return &g->v[mid];
            break;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (size_t i = g->nsorted; i < g->n; i++)
        if (!g->v[i].dropped && strcmp(g->v[i].path, path) == 0)
            return &g->v[i];
    return NULL;
}

/* The registry's entry for path when it is the object st (a live placeholder:
 * entries of runs that are gone were swept when the registry was opened). */
static struct entry *reg_match(struct registry *g, const char *path, const struct stat *st)
{
    struct entry *e = reg_find(g, path);
    if (e && e->owners && e->owners[0] && e->dev == st->st_dev && e->ino == st->st_ino)
        return e;
    return NULL;
}

/* Remove a placeholder, only while it is still the empty object we made, in
 * the directory its path names reached without following any symlink. */
static void remove_placeholder(const struct entry *e)
{
    const char *slash = strrchr(e->path, '/');
    if (e->path[0] != '/' || !slash || !slash[1])
        return;
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%.*s", slash == e->path ? 1 : (int)(slash - e->path), e->path);
    _cleanup_close_ int pfd = openat2_flags(AT_FDCWD, dir, O_PATH | O_DIRECTORY, NO_LINKS);
    struct stat st;
    if (pfd < 0 || fstatat(pfd, slash + 1, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
        st.st_dev != e->dev || st.st_ino != e->ino)
        return;
    if (ph_is_dir(e->type)) {
        if (S_ISDIR(st.st_mode))
            unlinkat(pfd, slash + 1, AT_REMOVEDIR); /* fails, harmlessly, when not empty */
    } else if (e->type == PH_COMMON) {
        char buf[sizeof(commondir_self)] = { 0 };
        _cleanup_close_ int fd = openat(pfd, slash + 1, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && S_ISREG(st.st_mode) && st.st_size == (off_t)strlen(commondir_self) &&
            read(fd, buf, sizeof(buf)) == (ssize_t)strlen(commondir_self) &&
            memcmp(buf, commondir_self, strlen(commondir_self)) == 0)
            unlinkat(pfd, slash + 1, 0);
    } else if (S_ISREG(st.st_mode) && st.st_size == 0) {
        unlinkat(pfd, slash + 1, 0);
    }
}

static bool has_owner(const char *owners, const char *id)
{
    size_t n = strlen(id);
    for (const char *p = owners; p && *p;) {
        const char *c = strchr(p, ',');
        size_t l = c ? (size_t)(c - p) : strlen(p);
        if (l == n && strncmp(p, id, n) == 0)
            return true;
        p = c ? c + 1 : p + l;
    }
    return false;
}

static int add_owner(struct entry *e, const char *id)
{
    if (has_owner(e->owners, id))
        return 0;
    size_t ol = e->owners ? strlen(e->owners) : 0;
    char *o = realloc(e->owners, ol + strlen(id) + 2);
    if (!o)
        return -ENOMEM;
    if (ol)
        o[ol++] = ',';
    strcpy(o + ol, id);
    e->owners = o;
    return 0;
}

/* Drop owner (NULL: none) from the entry's users, and the users that are
 * gone; the last one leaving removes the placeholder. */
static void drop_owner(struct registry *g, struct entry *e, const char *owner)
{
    if (e->dropped || !e->owners || !e->owners[0])
        return;
    char *out = e->owners; /* filtered in place: never longer */
    size_t k = 0, len = strlen(e->owners);
    for (char *p = e->owners; *p;) {
        char *c = strchr(p, ',');
        if (c)
            *c = '\0';
        size_t l = strlen(p);
        char *next = c ? c + 1 : p + l;
        if (!((owner && strcmp(p, owner) == 0) || !run_alive(g, p))) {
            if (k)
                out[k++] = ',';
            memmove(out + k, p, l);
            k += l;
        }
        p = next;
    }
    /* Shorter means changed. (Not out[k] != '\0': the loop above has
     * turned every comma into a '\0', so a run that left while others
     * stay was never written back, and when all ended at once nobody
     * removed the placeholders.) */
    if (k != len)
        g->dirty = true;
    out[k] = '\0';
    if (!out[0])
        remove_placeholder(e);
}

static void reg_sweep(struct registry *g, const char *owner)
{
    /* Backwards through the sorted entries: what lies inside a placeholder
     * directory (.git/info/exclude in .git/info) goes before it. */
    for (size_t i = g->n; i-- > 0;)
        drop_owner(g, &g->v[i], owner);
}

void protect_sweep(void)
{
    struct registry g;
    if (reg_open(&g, false) == 0)
        reg_sweep(&g, NULL);
    reg_close(&g, true);
}

/* ---- the scan ----------------------------------------------------------------- */

struct want {
    char *path;
    char type;
    size_t root;
    dev_t pdev;    /* the parent directory the scan saw */
    ino_t pino;
};

struct scan {
    struct protect_set *s;
    const cordon_policy *p;
    cordon_log_fn log;
    void *ud;
    struct cordon_error *err;
    bool failed;        /* err holds the reason */
    unsigned long entries;
    struct registry *g; /* NULL: no registry (then no placeholder can be made) */
    int reg_errno;
    int *rootfd;        /* per root: O_PATH, opened without following symlinks */
    struct want *want;
    size_t nwant, capwant;
};

static void slog(struct scan *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void slog(struct scan *sc, const char *fmt, ...)
{
    if (!sc->log)
        return;
    char line[PATH_MAX + 200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sc->log(sc->ud, CORDON_LOG_DEBUG, line);
}

static int scan_fail(struct scan *sc, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int scan_fail(struct scan *sc, int code, const char *fmt, ...)
{
    char line[sizeof(sc->err->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sc->failed = true;
    return cordon_err_set(sc->err, code, "%s", line);
}

/* A directory on the way was swapped (for a symlink, or for another
 * directory) while cordon was starting: fail closed, naming it. */
static int changed(struct scan *sc, const char *path)
{
    return scan_fail(sc, ESTALE, "%s changed while cordon was starting (replaced by a symlink "
                                 "or another object?); refusing to continue", path);
}

/* Items are appended and deduplicated once at the end (dedupe_items): the
 * same pin is added once per protected path below it. */
static int add_item(struct protect_set *s, const char *path, enum protect_kind kind)
{
    if (s->n >= MAX_PROTECT * 4)
        return -E2BIG;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 64;
        struct protect_item *v = realloc(s->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    char *d = strdup(path);
    if (!d)
        return -ENOMEM;
    s->v[s->n++] = (struct protect_item){ .path = d, .kind = kind };
    return 0;
}

static int add_strv(char ***v, size_t *n, const char *s)
{
    char **nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv)
        return -ENOMEM;
    *v = nv;
    nv[*n] = strdup(s);
    if (!nv[*n])
        return -ENOMEM;
    (*n)++;
    return 0;
}

/* Pins for every directory strictly between root and path. */
static int add_pins(struct protect_set *s, const char *root, const char *path)
{
    size_t rl = strlen(root);
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    if (strlen(buf) <= rl + 1)
        return 0;
    for (char *p = buf + rl + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        int r = add_item(s, buf, PROT_PIN);
        *p = '/';
        if (r < 0)
            return r;
    }
    return 0;
}

static int add_protected(struct protect_set *s, const char *root, const char *path,
                         enum protect_kind kind)
{
    int r = add_item(s, path, kind);
    return r < 0 ? r : add_pins(s, root, path);
}

/* The write root (index) holding path, the longest one; -1 when none. */
static ssize_t root_index(const struct protect_set *s, const char *path)
{
    ssize_t best = -1;
    for (size_t i = 0; i < s->nroots; i++)
        if (cordon_path_is_prefix(s->roots[i], path) &&
            (best < 0 || strlen(s->roots[i]) > strlen(s->roots[best])))
            best = (ssize_t)i;
    return best;
}

static int want_placeholder(struct scan *sc, size_t root, const char *path, char type,
                            const struct stat *parent)
{
    for (size_t i = 0; i < sc->nwant; i++)
        if (strcmp(sc->want[i].path, path) == 0)
            return 0;
    if (sc->nwant == sc->capwant) {
        size_t cap = sc->capwant ? sc->capwant * 2 : 32;
        struct want *v = realloc(sc->want, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        sc->want = v;
        sc->capwant = cap;
    }
    char *d = strdup(path);
    if (!d)
        return -ENOMEM;
    sc->want[sc->nwant++] = (struct want){ .path = d, .type = type, .root = root,
                                           .pdev = parent->st_dev, .pino = parent->st_ino };
    return 0;
}

/* Collapse "//", "/./" and a trailing "/" of an absolute path, in place
 * (".." is kept: it is resolved by realpath or names nothing). */
static void normalise(char *p)
{
    char *o = p;
    const char *s = p;
    while (*s) {
        while (*s == '/')
            s++;
        if (!*s)
            break;
        const char *e = strchr(s, '/');
        size_t l = e ? (size_t)(e - s) : strlen(s);
        if (!(l == 1 && s[0] == '.')) {
            *o++ = '/';
            memmove(o, s, l);
            o += l;
        }
        s += l;
    }
    if (o == p)
        *o++ = '/';
    *o = '\0';
}

/* Where full leads, symlinks resolved, tolerating a missing tail: the real
 * path of its longest existing prefix followed by the rest. False when it
 * cannot lead anywhere (a loop, a file in the way, no permission). */
static bool resolve_missing(const char *full, char *out, size_t n)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof(tmp), "%s", full) >= (int)sizeof(tmp))
        return false;
    size_t cut = strlen(tmp);
    for (;;) {
        char real[PATH_MAX];
        if (realpath(tmp, real)) {
            const char *rest = full + cut;
            int w = snprintf(out, n, "%s%s", strcmp(real, "/") == 0 && *rest ? "" : real, rest);
            return w > 0 && (size_t)w < n;
        }
        if (errno != ENOENT)
            return false;
        char *sl = strrchr(tmp, '/');
        if (!sl || sl == tmp)
            return false;
        *sl = '\0';
        cut = (size_t)(sl - tmp);
    }
}

static int protect_path_at(struct scan *sc, size_t r, int basefd, const char *path,
                           size_t baselen, char leaf, int hops);

/* linkpath (an entry of dirfd, already lstat'ed as a symlink) is on the way
 * to a protected path; rest is what follows it. The link is pinned, so it
 * cannot be replaced; what it leads to is protected where it lies inside a
 * write root (elsewhere it is read-only already), including a target that
 * does not exist yet: that gets a placeholder, or `echo x > .zshrc` would
 * create it through the link. */
static int protect_link(struct scan *sc, size_t r, int dirfd, const char *linkpath,
                        const char *rest, char leaf, int hops)
{
    int ret = add_protected(sc->s, sc->s->roots[r], linkpath, PROT_LINK);
    if (ret < 0 || hops <= 0)
        return ret;
    const char *name = strrchr(linkpath, '/') + 1;
    char t[PATH_MAX];
    ssize_t n = readlinkat(dirfd, name, t, sizeof(t) - 1);
    if (n <= 0)
        return 0;
    t[n] = '\0';
    char full[PATH_MAX];
    int w = t[0] == '/' ? snprintf(full, sizeof(full), "%s%s", t, rest)
                        : snprintf(full, sizeof(full), "%.*s/%s%s",
                                   (int)(name - 1 - linkpath), linkpath, t, rest);
    if (w < 0 || (size_t)w >= sizeof(full))
        return 0;
    normalise(full);
    char real[PATH_MAX];
    if (!resolve_missing(full, real, sizeof(real)))
        return 0; /* a loop, or a file in the way: nothing can be created */
    ssize_t tr = root_index(sc->s, real);
    if (tr < 0 || strcmp(sc->s->roots[tr], real) == 0 || sc->rootfd[tr] < 0)
        return 0;
    slog(sc, "protect %s (reached through the symlink %s)", real, linkpath);
    return protect_path_at(sc, (size_t)tr, sc->rootfd[tr], real, base_len(sc->s->roots[tr]),
                           leaf, hops - 1);
}

/* Protect path, below root r: walk its components from basefd, an fd of the
 * directory path[0..baselen) reached without following symlinks, one
 * component at a time (openat O_NOFOLLOW, fstatat AT_SYMLINK_NOFOLLOW). The
 * first missing component gets a placeholder (of kind leaf when it is the last
 * one, a directory otherwise); a symlink on the way (a
 * dotfile managed by stow or home-manager, a linked .claude) is pinned
 * (protect_link); a placeholder of a live run (registered) is shared. */
static int protect_path_at(struct scan *sc, size_t r, int basefd, const char *path,
                           size_t baselen, char leaf, int hops)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len >= sizeof(buf) || baselen >= len || path[baselen] != '/')
        return 0;
    memcpy(buf, path, len + 1);
    int cur = basefd, owned = -1, ret = 0;
    char *p = buf + baselen;
    for (;;) {
        char *comp = p + 1;
        char *next = strchr(comp, '/');
        if (next)
            *next = '\0';
        bool last = next == NULL;
        struct stat st;
        struct entry *reg;
        int nfd = -1, rc;
        if (last) {
            rc = fstatat(cur, comp, &st, AT_SYMLINK_NOFOLLOW);
        } else {
            nfd = openat(cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            rc = nfd < 0 ? -1 : fstat(nfd, &st);
        }
        if (rc < 0) {
            struct stat pst;
            if (errno == ENOENT && fstat(cur, &pst) == 0)
                ret = want_placeholder(sc, r, buf, last ? leaf : PH_DIR, &pst);
            /* else ENOTDIR: a file where a directory is expected */
        } else if ((reg = reg_match(sc->g, buf, &st))) {
            /* A placeholder of a live run, this one's from now on too
             * (join_registered binds it); nothing to create below it. */
            reg->seen = true;
        } else if (S_ISLNK(st.st_mode)) {
            ret = protect_link(sc, r, cur, buf, last ? "" : path + (next - buf), leaf, hops);
        } else if (last) {
            ret = add_protected(sc->s, sc->s->roots[r], buf, PROT_RO);
        } else if (S_ISDIR(st.st_mode)) {
            *next = '/';
            if (owned >= 0)
                close(owned);
            owned = cur = nfd;
            p = next;
            continue;
        }
        if (nfd >= 0)
            close(nfd);
        break;
    }
    if (owned >= 0)
        close(owned);
    return ret;
}

static bool is_repo(int dirfd)
{
    struct stat st;
    return fstatat(dirfd, "HEAD", &st, 0) == 0;
}

static bool in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* Entries of a directory read with getdents64(2) from an fd we opened (no
 * DIR: fdopendir would add an fstat and two fcntl calls per directory). */
struct dirents {
    int fd;
    size_t pos, len;
    char buf[16384] __attribute__((aligned(8)));
};

struct dent64 { /* struct linux_dirent64 */
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

static const struct dent64 *next_dirent(struct dirents *d)
{
    if (d->pos >= d->len) {
        long n = syscall(SYS_getdents64, d->fd, d->buf, sizeof(d->buf));
        if (n <= 0)
            return NULL; /* end, or unreadable: the command cannot read it either */
        d->len = (size_t)n;
        d->pos = 0;
    }
    const struct dent64 *e = (const struct dent64 *)(d->buf + d->pos);
    d->pos += e->d_reclen;
    return e;
}

/* How deep submodules' git directories are searched below .git/modules (a
 * submodule named "lib/foo" lives in modules/lib/foo; a nested one in
 * modules/a/modules/b). */
#define MODULES_DEPTH 8

static int protect_gitdir(struct scan *sc, size_t r, int gfd, const char *gitdir, int depth,
                          bool top);

/* Below .git/modules (dfd, open for reading, owned): every repository is a
 * submodule's git directory, protected like .git (git reads its config and
 * runs its hooks when the user works in the submodule); other directories
 * are the components of a submodule's name. */
static int protect_modules(struct scan *sc, size_t r, int dfd, const char *dir, int depth,
                           bool top)
{
    struct dirents *d = malloc(sizeof(*d));
    if (!d) {
        close(dfd);
        return -ENOMEM;
    }
    *d = (struct dirents){ .fd = dfd };
    int ret = 0;
    const struct dent64 *e;
    char path[PATH_MAX];
    while (ret == 0 && (e = next_dirent(d))) {
        const char *n = e->d_name;
        if (++sc->entries > SCAN_MAX_ENTRIES) {
            ret = -E2BIG;
            break;
        }
        if ((n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0'))) ||
            (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) ||
            join_path(path, sizeof(path), dir, n) < 0)
            continue;
        int cfd = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            if (e->d_type == DT_DIR && (errno == ELOOP || errno == ENOTDIR))
                ret = changed(sc, path);
            continue;
        }
        if (is_repo(cfd)) {
            ret = protect_gitdir(sc, r, cfd, path, depth - 1, top);
            close(cfd);
        } else if (depth > 0) {
            ret = protect_modules(sc, r, cfd, path, depth - 1, top);
        } else {
            close(cfd);
        }
    }
    close(dfd);
    free(d);
    return ret;
}

/* name in dir (dfd), protected when it exists. */
static int protect_existing(struct scan *sc, size_t r, int dfd, const char *dir, const char *name)
{
    char p[PATH_MAX];
    struct stat st;
    if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || join_path(p, sizeof(p), dir, name) < 0)
        return 0;
    return protect_path_at(sc, r, dfd, p, strlen(dir), PH_FILE, LINK_HOPS);
}

/* Each linked worktree's administrative directory below .git/worktrees
 * (wfd, open for reading, owned): its commondir and config.worktree, where
 * they exist. */
static int protect_worktrees(struct scan *sc, size_t r, int wfd, const char *wdir)
{
    struct dirents *d = malloc(sizeof(*d));
    if (!d) {
        close(wfd);
        return -ENOMEM;
    }
    *d = (struct dirents){ .fd = wfd };
    int ret = 0;
    const struct dent64 *e;
    char p[PATH_MAX];
    while (ret == 0 && (e = next_dirent(d))) {
        if (e->d_name[0] == '.' || join_path(p, sizeof(p), wdir, e->d_name) < 0)
            continue;
        int afd = openat(wfd, e->d_name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (afd < 0)
            continue;
        ret = protect_existing(sc, r, afd, p, "commondir");
        if (ret == 0)
            ret = protect_existing(sc, r, afd, p, "config.worktree");
        close(afd);
    }
    close(wfd);
    free(d);
    return ret;
}

/* A repository's git directory (gfd; a .git, or a submodule's below
 * .git/modules): what git reads code from when the user works there later.
 *   hooks, and config unless allowGitConfig;
 *   commondir, which moves config and hooks to the directory it names, and
 *     config.worktree (more config, with extensions.worktreeConfig): in a
 *     repository at the top of a write root (top) a missing one gets a
 *     placeholder (commondir holding ".", the repository itself, as without
 *     one, since git refuses an empty commondir; config.worktree empty), so
 *     none can be planted; in a nested one, where a placeholder per
 *     repository would cost ~0.4 ms each (300 repositories: +130 ms), its
 *     absence is noted and one that appears is reported at exit
 *     (protect_check_new_hooks);
 *   each linked worktree's commondir and config.worktree, where they exist;
 *   the submodules' git directories below modules/. */
static int protect_gitdir(struct scan *sc, size_t r, int gfd, const char *gitdir, int depth,
                          bool top)
{
    char p[PATH_MAX];
    size_t gl = strlen(gitdir);
    int ret = 0;
    if (join_path(p, sizeof(p), gitdir, "hooks") == 0 &&
        (ret = protect_path_at(sc, r, gfd, p, gl, PH_DIR, LINK_HOPS)) < 0)
        return ret;
    if (!sc->p->fs.allow_git_config && join_path(p, sizeof(p), gitdir, "config") == 0 &&
        (ret = protect_path_at(sc, r, gfd, p, gl, PH_FILE, LINK_HOPS)) < 0)
        return ret;
    /* commondir and config.worktree (read when extensions.worktreeConfig is
     * set, which a planted commondir's config could do too) */
    static const struct {
        const char *name;
        char type;
    } moving[] = { { "commondir", PH_COMMON }, { "config.worktree", PH_FILE } };
    for (size_t i = 0; i < ARRAY_SIZE(moving) && ret == 0; i++) {
        struct stat st;
        if (join_path(p, sizeof(p), gitdir, moving[i].name) < 0)
            return 0;
        if (top || fstatat(gfd, moving[i].name, &st, AT_SYMLINK_NOFOLLOW) == 0)
            ret = protect_path_at(sc, r, gfd, p, gl, moving[i].type, LINK_HOPS);
        else if (errno == ENOENT)
            ret = add_strv(&sc->s->must_not_appear, &sc->s->nmust_not_appear, p);
    }
    if (ret < 0)
        return ret;
    int wfd = openat(gfd, "worktrees", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (wfd >= 0 && join_path(p, sizeof(p), gitdir, "worktrees") == 0)
        ret = protect_worktrees(sc, r, wfd, p);
    else if (wfd >= 0)
        close(wfd);
    int mfd = depth > 0 ? openat(gfd, "modules", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        : -1;
    if (ret == 0 && mfd >= 0 && join_path(p, sizeof(p), gitdir, "modules") == 0)
        return protect_modules(sc, r, mfd, p, depth, top);
    if (mfd >= 0)
        close(mfd);
    return ret;
}

/* The git files of the repository in dir (dfd), whose .git was fstatat'ed as st. */
static int protect_git(struct scan *sc, size_t r, int dfd, const char *dir, const struct stat *st,
                       bool top)
{
    char path[PATH_MAX];
    if (join_path(path, sizeof(path), dir, ".git") < 0)
        return 0;
    if (!S_ISDIR(st->st_mode)) { /* worktree or submodule (or a symlink) */
        int ret = add_strv(&sc->s->repos, &sc->s->nrepos, path); /* not new at exit */
        return ret < 0 ? ret : protect_path_at(sc, r, dfd, path, base_len(dir), PH_FILE,
                                               LINK_HOPS);
    }
    _cleanup_close_ int gfd = openat(dfd, ".git", O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat gst;
    if (gfd < 0 || fstat(gfd, &gst) < 0)
        return errno == ELOOP || errno == ENOTDIR ? changed(sc, path) : 0;
    if (gst.st_dev != st->st_dev || gst.st_ino != st->st_ino)
        return changed(sc, path);
    if (!is_repo(gfd))
        return 0;
    int ret = add_strv(&sc->s->repos, &sc->s->nrepos, path);
    return ret < 0 ? ret : protect_gitdir(sc, r, gfd, path, MODULES_DEPTH, top);
}

/* One entry of a scanned directory dir (dfd): a protected name, .claude, or
 * .git. At the top of a write root (top) names are handled whether they
 * exist or not. */
static int protect_entry(struct scan *sc, size_t r, int dfd, const char *dir, const char *name,
                         bool top)
{
    char path[PATH_MAX];
    if (join_path(path, sizeof(path), dir, name) < 0)
        return 0;
    size_t bl = base_len(dir);
    if (in_list(name, prot_files, ARRAY_SIZE(prot_files)))
        return protect_path_at(sc, r, dfd, path, bl, PH_FILE, LINK_HOPS);
    if (in_list(name, prot_dirs, ARRAY_SIZE(prot_dirs)))
        return protect_path_at(sc, r, dfd, path, bl, PH_DIR, LINK_HOPS);
    struct stat st;
    if (strcmp(name, ".claude") == 0) {
        for (size_t i = 0; i < ARRAY_SIZE(claude_items); i++) {
            char rel[64], ipath[PATH_MAX];
            snprintf(rel, sizeof(rel), ".claude/%s", claude_items[i].name);
            if (join_path(ipath, sizeof(ipath), dir, rel) < 0)
                return 0;
            if (top || fstatat(dfd, rel, &st, AT_SYMLINK_NOFOLLOW) == 0) {
                int ret = protect_path_at(sc, r, dfd, ipath, bl,
                                          claude_items[i].dir ? PH_DIR : PH_FILE, LINK_HOPS);
                if (ret < 0)
                    return ret;
            }
        }
        return 0;
    }
    if (strcmp(name, ".git") == 0) {
        if (fstatat(dfd, ".git", &st, AT_SYMLINK_NOFOLLOW) < 0)
            return 0;
        return protect_git(sc, r, dfd, dir, &st, top);
    }
    return 0;
}

static int remember_dir(struct protect_set *s, const char *dir, const struct stat *st, int depth)
{
    if (s->ndirs == s->capdirs) {
        size_t cap = s->capdirs ? s->capdirs * 2 : 64;
        struct scanned_dir *v = realloc(s->dirs, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        s->dirs = v;
        s->capdirs = cap;
    }
    char *p = strdup(dir);
    if (!p)
        return -ENOMEM;
    s->dirs[s->ndirs++] = (struct scanned_dir){ .path = p, .mtime = st->st_mtim, .depth = depth };
    return 0;
}

/* Every protected name at the top of write root r, existing or not. */
static int top_names(struct scan *sc, size_t r)
{
    const char *root = sc->s->roots[r];
    int fd = sc->rootfd[r], ret = 0;
    for (size_t i = 0; i < ARRAY_SIZE(prot_files) && ret == 0; i++)
        ret = protect_entry(sc, r, fd, root, prot_files[i], true);
    for (size_t i = 0; i < ARRAY_SIZE(prot_dirs) && ret == 0; i++)
        ret = protect_entry(sc, r, fd, root, prot_dirs[i], true);
    if (ret == 0)
        ret = protect_entry(sc, r, fd, root, ".claude", true);
    if (ret == 0)
        ret = protect_entry(sc, r, fd, root, ".git", true);
    return ret;
}

/* Walk dir (dfd, open for reading, owned) down to depth levels below it,
 * reading each directory once (getdents, d_type): protected names are found
 * among the entries, not by probing for each; node_modules and .git are not
 * entered, nor symlinks: each subdirectory is opened relative to its parent
 * with O_NOFOLLOW, and one that turned into a symlink since it was listed
 * makes cordon fail closed. At the top of a write root (top)
 * the names were handled by top_names already. */
static int walk(struct scan *sc, size_t r, int dfd, const char *dir, int depth, bool top)
{
    struct dirents *d = malloc(sizeof(*d));
    struct stat dst;
    if (!d) {
        close(dfd);
        return -ENOMEM;
    }
    *d = (struct dirents){ .fd = dfd };
    int ret = 0;
    if (fstat(dfd, &dst) == 0 && remember_dir(sc->s, dir, &dst, depth) < 0)
        ret = -ENOMEM;
    const struct dent64 *e;
    char path[PATH_MAX];
    while (ret == 0 && (e = next_dirent(d))) {
        if (++sc->entries > SCAN_MAX_ENTRIES) {
            ret = -E2BIG;
            break;
        }
        const char *n = e->d_name;
        if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
            continue;
        if (!top && n[0] == '.') {
            ret = protect_entry(sc, r, dfd, dir, n, false);
            if (ret < 0)
                break;
        }
        if (depth <= 0 || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN))
            continue;
        if (strcmp(n, "node_modules") == 0 || strcmp(n, ".git") == 0)
            continue;
        if (join_path(path, sizeof(path), dir, n) < 0)
            continue;
        int cfd = openat(dfd, n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            if (e->d_type == DT_DIR && (errno == ELOOP || errno == ENOTDIR)) {
                ret = changed(sc, path);
                break;
            }
            continue; /* gone, not a directory, or unreadable */
        }
        ret = walk(sc, r, cfd, path, depth - 1, false);
    }
    close(dfd);
    free(d);
    return ret;
}

/* ---- placeholders ----------------------------------------------------------- */

/* The parent directory of path (below root r), opened from the root's fd
 * without following symlinks and without leaving the root; *name points to
 * the last component. -1 with errno on failure. */
static int open_parent(struct scan *sc, size_t r, const char *path, const char **name,
                       char *parent, size_t n)
{
    const char *root = sc->s->roots[r];
    const char *rel = path + base_len(root);
    while (*rel == '/')
        rel++;
    const char *sl = strrchr(rel, '/');
    *name = sl ? sl + 1 : rel;
    snprintf(parent, n, "%.*s", (int)(*name - path - 1 > 0 ? *name - path - 1 : 1), path);
    if (!sl)
        return fcntl(sc->rootfd[r], F_DUPFD_CLOEXEC, 3);
    char prel[PATH_MAX];
    snprintf(prel, sizeof(prel), "%.*s", (int)(sl - rel), rel);
    return openat2_flags(sc->rootfd[r], prel, O_PATH | O_DIRECTORY, BENEATH_NO_LINKS);
}

static int note_placeholder(struct scan *sc, size_t r, const char *path, char type)
{
    struct protect_set *s = sc->s;
    s->have_placeholders = true;
    int ret = 0;
    if (type == PH_FILE || type == PH_DIR) {
        char pat[PATH_MAX + 2];
        snprintf(pat, sizeof(pat), "%s%s", path, type == PH_DIR ? "/" : "");
        ret = add_strv(&s->placeholders, &s->nplaceholders, pat);
    }
    if (ret == 0 && type != PH_INFO)
        ret = add_protected(s, s->roots[r], path, PROT_RO);
    return ret;
}

/* A placeholder that cannot be made (errno e): the command cannot create the
 * name there either, but it could rename the directory away and make a new
 * one, or, when it owns the directory, chmod it writable. So the directory
 * is pinned, and made read-only when the caller owns it. At the top of a
 * write root the caller owns but cannot write, that is impossible (the root
 * stays writable): refuse to start. */
static int cannot_create(struct scan *sc, const struct want *w, const struct stat *pst,
                         const char *parent, int e)
{
    const char *root = sc->s->roots[w->root];
    bool at_root = strcmp(parent, root) == 0;
    if (e == EACCES && pst->st_uid == geteuid()) {
        if (at_root)
            return scan_fail(sc, EACCES, "cannot create a placeholder for %s: %s is not "
                                         "writable (the command could make it writable and "
                                         "create the name); make it writable, or leave it out "
                                         "of allowWrite", w->path, root);
        slog(sc, "%s: cannot create a placeholder (%s): %s is read-only in the sandbox", w->path,
             strerror(e), parent);
        return add_protected(sc->s, root, parent, PROT_RO);
    }
    slog(sc, "%s: cannot create a placeholder (%s); nor can the command: %s is pinned", w->path,
         strerror(e), parent);
    return add_pins(sc->s, root, w->path);
}

/* Create the placeholder w in the directory the scan saw, register it as
 * this run's, and protect it. out (optional) receives what was created. */
static int create_one(struct scan *sc, const struct want *w, struct stat *out)
{
    bool helper = w->type == PH_EXCLUDE || w->type == PH_INFO; /* only for git's eyes */
    const char *name;
    char parent[PATH_MAX];
    _cleanup_close_ int pfd = open_parent(sc, w->root, w->path, &name, parent, sizeof(parent));
    struct stat pst;
    if (pfd < 0 || fstat(pfd, &pst) < 0 || pst.st_dev != w->pdev || pst.st_ino != w->pino)
        return helper ? 0 : changed(sc, parent);
    if (strchr(name, '/') || !name[0])
        return 0;
    if (!sc->g)
        return helper ? 0 : scan_fail(sc, sc->reg_errno, "the placeholder registry: %s",
                                      strerror(sc->reg_errno));
    _cleanup_close_ int fd = -1;
    if (ph_is_dir(w->type)) {
        if (mkdirat(pfd, name, ph_mode(w->type)) == 0) {
            fd = openat(pfd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0) {
                unlinkat(pfd, name, AT_REMOVEDIR); /* only ever an empty directory */
                return helper ? 0 : changed(sc, w->path);
            }
        }
    } else {
        fd = openat(pfd, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC,
                    ph_mode(w->type));
        size_t cl = strlen(commondir_self);
        if (fd >= 0 && w->type == PH_COMMON && write(fd, commondir_self, cl) != (ssize_t)cl) {
            int e = errno;
            unlinkat(pfd, name, 0); /* ours: made with O_EXCL a moment ago */
            return scan_fail(sc, e ? e : EIO, "cannot write the placeholder %s: %s", w->path,
                             strerror(e ? e : EIO));
        }
    }
    if (fd < 0) {
        int e = errno;
        if (helper)
            return 0;
        if (e == EEXIST)
            return changed(sc, w->path); /* it appeared since the scan */
        if (e == EACCES || e == EPERM || e == EROFS)
            return cannot_create(sc, w, &pst, parent, e);
        return scan_fail(sc, e, "cannot create a placeholder at %s: %s", w->path, strerror(e));
    }
    struct stat st;
    if (fstat(fd, &st) < 0)
        return helper ? 0 : changed(sc, w->path);
    struct entry *old = reg_find(sc->g, w->path);
    if (old) {
        old->dropped = true; /* a stale entry: its object is gone */
        sc->g->dirty = true;
    }
    struct entry e = { .dev = st.st_dev, .ino = st.st_ino, .type = w->type,
                       .owners = strdup(sc->s->runid), .path = strdup(w->path) };
    if (!e.owners || !e.path || reg_push(sc->g, e) < 0) {
        free(e.owners);
        free(e.path);
        unlinkat(pfd, name, ph_is_dir(w->type) ? AT_REMOVEDIR : 0);
        return -ENOMEM;
    }
    slog(sc, "placeholder %s (%s), removed when the run ends", w->path,
         ph_is_dir(w->type) ? "directory" : "file");
    if (out)
        *out = st;
    return note_placeholder(sc, w->root, w->path, w->type);
}

/* Every live placeholder inside this run's write roots is this run's too: it
 * is added to the entry's users (so the run that made it will not remove it
 * while this one runs) and bound read-only like this run's own. */
static int join_registered(struct scan *sc)
{
    struct registry *g = sc->g;
    for (size_t i = 0; g && i < g->n; i++) {
        struct entry *e = &g->v[i];
        if (e->dropped || !e->owners || !e->owners[0])
            continue;
        ssize_t r = root_index(sc->s, e->path);
        if (r < 0 || sc->rootfd[r] < 0 || strcmp(sc->s->roots[r], e->path) == 0)
            continue;
        const char *name;
        char parent[PATH_MAX];
        _cleanup_close_ int pfd = open_parent(sc, (size_t)r, e->path, &name, parent,
                                              sizeof(parent));
        struct stat st;
        if (pfd < 0 || fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            st.st_dev != e->dev || st.st_ino != e->ino) {
            if (e->seen)
                return changed(sc, e->path);
            continue; /* not what its runs made any more: theirs to clean up */
        }
        sc->g->dirty = true;
        int ret = add_owner(e, sc->s->runid);
        if (ret == 0)
            ret = note_placeholder(sc, (size_t)r, e->path, e->type);
        if (ret < 0)
            return ret;
        slog(sc, "placeholder %s (shared with another run)", e->path);
    }
    return 0;
}

static bool has_repo(const struct protect_set *s, const char *gitdir)
{
    for (size_t i = 0; i < s->nrepos; i++)
        if (strcmp(s->repos[i], gitdir) == 0)
            return true;
    return false;
}

/* A write root that is a repository without .git/info/exclude: git inside
 * must still be able to ignore the placeholders (build_excludes binds an
 * extended copy over the exclude file), so an empty one is made as a
 * placeholder too, with .git/info if that is missing; both go with the run.
 * Best effort: git showing placeholders is not a hole. */
static int ensure_excludes(struct scan *sc)
{
    struct protect_set *s = sc->s;
    for (size_t r = 0; r < s->nroots; r++) {
        const char *root = s->roots[r];
        char git[PATH_MAX], info[PATH_MAX], excl[PATH_MAX];
        if (sc->rootfd[r] < 0 || join_path(git, sizeof(git), root, ".git") < 0 ||
            join_path(info, sizeof(info), git, "info") < 0 ||
            join_path(excl, sizeof(excl), info, "exclude") < 0 || !has_repo(s, git))
            continue;
        bool any = false;
        for (size_t i = 0; i < s->nplaceholders && !any; i++)
            any = cordon_path_is_prefix(root, s->placeholders[i]) &&
                  !cordon_path_is_prefix(git, s->placeholders[i]);
        if (!any)
            continue;
        _cleanup_close_ int gfd = openat2_flags(sc->rootfd[r], ".git", O_PATH | O_DIRECTORY,
                                                BENEATH_NO_LINKS);
        struct stat gst, ist, xst;
        if (gfd < 0 || fstat(gfd, &gst) < 0)
            continue;
        _cleanup_close_ int ifd = openat(gfd, "info", O_PATH | O_DIRECTORY | O_NOFOLLOW |
                                                          O_CLOEXEC);
        if (ifd >= 0) {
            if (fstat(ifd, &ist) < 0 || fstatat(ifd, "exclude", &xst, AT_SYMLINK_NOFOLLOW) == 0 ||
                errno != ENOENT)
                continue;
        } else {
            if (errno != ENOENT)
                continue;
            struct want wi = { .path = info, .type = PH_INFO, .root = r, .pdev = gst.st_dev,
                               .pino = gst.st_ino };
            memset(&ist, 0, sizeof(ist));
            int ret = create_one(sc, &wi, &ist);
            if (ret < 0)
                return ret;
            if (ist.st_ino == 0)
                continue;
        }
        struct want wx = { .path = excl, .type = PH_EXCLUDE, .root = r, .pdev = ist.st_dev,
                           .pino = ist.st_ino };
        int ret = create_one(sc, &wx, NULL);
        if (ret < 0)
            return ret;
    }
    return 0;
}

void protect_release(struct protect_set *s)
{
    if (!s->have_placeholders)
        return;
    struct registry g;
    if (reg_open(&g, false) == 0)
        reg_sweep(&g, s->runid);
    reg_close(&g, true);
    s->have_placeholders = false;
}

int protect_watchdog(struct protect_set *s, struct cordon_error *err)
{
    if (!s->have_placeholders)
        return -1;
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0)
        return cordon_err_sys(err, errno, "pipe");
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(p[0]);
        close(p[1]);
        return cordon_err_sys(err, e, "cannot start the placeholder watchdog");
    }
    if (pid == 0) {
        /* Its own session: a SIGKILL of cordon's process group spares it. */
        setsid();
        close(p[1]);
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (null >= 0) {
            dup2(null, 0);
            dup2(null, 1);
            dup2(null, 2);
        }
        close_range(3, (unsigned)p[0] - 1, 0);
        close_range((unsigned)p[0] + 1, ~0U, 0);
        sigset_t all;
        sigfillset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL); /* only SIGKILL ends it early */
        char c;
        while (read(p[0], &c, 1) > 0 || errno == EINTR)
            ;
        protect_release(s);
        _exit(0);
    }
    close(p[0]);
    return p[1];
}

static int cmp_items(const void *a, const void *b)
{
    const struct protect_item *x = a, *y = b;
    int c = strcmp(x->path, y->path);
    if (c)
        return c;
    return (x->kind == PROT_PIN) - (y->kind == PROT_PIN); /* RO and LINK before PIN */
}

static int dedupe_items(struct protect_set *s)
{
    if (s->n == 0)
        return 0;
    qsort(s->v, s->n, sizeof(*s->v), cmp_items);
    size_t k = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (k > 0 && strcmp(s->v[k - 1].path, s->v[i].path) == 0) {
            free(s->v[i].path);
            continue;
        }
        s->v[k++] = s->v[i];
    }
    s->n = k;
    return s->n > MAX_PROTECT ? -E2BIG : 0;
}

/* ---- write roots ---------------------------------------------------------------- */

struct roots_ctx {
    struct protect_set *s;
    char **denied;      /* denyWrite paths, resolved (globs expanded) */
    size_t ndenied;
    bool collect_denied;
    struct cordon_error *err;
};

static int root_candidate(struct roots_ctx *c, const char *path)
{
    char real[PATH_MAX];
    if (c->collect_denied) {
        const char *d = realpath(path, real) ? real : path;
        return add_strv(&c->denied, &c->ndenied, d) < 0
                   ? cordon_err_set(c->err, ENOMEM, "out of memory") : 0;
    }
    struct protect_set *s = c->s;
    struct stat st;
    if (!realpath(path, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0;
    for (size_t k = 0; k < c->ndenied; k++)
        if (cordon_path_is_prefix(c->denied[k], real))
            return 0; /* not writable: nothing to protect */
    if (cordon_path_is_prefix("/proc", real) || cordon_path_is_prefix("/dev", real) ||
        cordon_path_is_prefix("/sys", real))
        return 0;
    for (size_t k = 0; k < s->nroots; k++)
        if (strcmp(s->roots[k], real) == 0)
            return 0;
    struct protect_root *ids = realloc(s->root_ids, (s->nroots + 1) * sizeof(*ids));
    if (!ids)
        return cordon_err_set(c->err, ENOMEM, "out of memory");
    s->root_ids = ids;
    ids[s->nroots] = (struct protect_root){ .dev = st.st_dev, .ino = st.st_ino };
    if (add_strv(&s->roots, &s->nroots, real) < 0)
        return cordon_err_set(c->err, ENOMEM, "out of memory");
    return 0;
}

static int root_glob_match(void *ud, const char *path)
{
    return root_candidate(ud, path);
}

/* Each path of the list (a glob: each path it matches now, as the plan
 * expands it) through root_candidate. */
static int each_path(struct roots_ctx *c, const struct cordon_pathlist *l, const char *what)
{
    for (size_t i = 0; i < l->n; i++) {
        int r = l->v[i].glob ? cordon_glob_expand(l->v[i].path, root_glob_match, c, c->err)
                             : root_candidate(c, l->v[i].path);
        if (r < 0)
            return l->v[i].glob ? cordon_err_prefix(c->err, "%s", what) : r;
    }
    return 0;
}

/* Write roots: existing allowWrite paths (patterns expanded) without a
 * denyWrite at or above them. */
static int find_roots(const cordon_policy *p, struct protect_set *s, struct cordon_error *err)
{
    struct roots_ctx c = { .s = s, .err = err, .collect_denied = true };
    int r = each_path(&c, &p->fs.deny_write, "denyWrite");
    c.collect_denied = false;
    if (r == 0)
        r = each_path(&c, &p->fs.allow_write, "allowWrite");
    for (size_t i = 0; i < c.ndenied; i++)
        free(c.denied[i]);
    free(c.denied);
    return r;
}

/* ---- entry points ----------------------------------------------------------- */

/* A denyWrite entry that does not exist yet inside a write root must not be
 * created by the command either (srt-compat.md 3.3): its first missing
 * component gets a placeholder, as a protected name's does; its leaf is a
 * file (srt binds /dev/null there). Patterns match what exists when the run
 * starts: a later file is the command's own output. */
static int deny_write_missing(struct scan *sc)
{
    const struct cordon_pathlist *l = &sc->p->fs.deny_write;
    for (size_t i = 0; i < l->n; i++) {
        struct stat st;
        char real[PATH_MAX];
        if (l->v[i].glob || lstat(l->v[i].path, &st) == 0 || errno != ENOENT ||
            !resolve_missing(l->v[i].path, real, sizeof(real)))
            continue;
        ssize_t r = root_index(sc->s, real);
        if (r < 0 || sc->rootfd[r] < 0 || strcmp(sc->s->roots[r], real) == 0)
            continue;
        slog(sc, "denyWrite %s: does not exist yet; it cannot be created either",
             l->v[i].as_written);
        int ret = protect_path_at(sc, (size_t)r, sc->rootfd[r], real,
                                  base_len(sc->s->roots[r]), PH_FILE, LINK_HOPS);
        if (ret < 0)
            return ret;
    }
    return 0;
}

int protect_prepare(const cordon_policy *p, const char *cwd, struct protect_set *s,
                    cordon_log_fn log, void *ud, struct cordon_error *err)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->runid, sizeof(s->runid), "%d.%llu", (int)getpid(), start_time(getpid()));
    if (p->fs.disabled)
        return 0; /* srt drops the mandatory denies too */
    (void)cwd; /* the working directory is covered when it lies in a write root */
    int r = find_roots(p, s, err);
    if (r < 0 || s->nroots == 0) {
        if (r < 0)
            protect_free(s);
        return r;
    }

    /* The registry stays locked from here to the end of the scan and the
     * placeholders' creation (see the header). */
    struct registry g;
    struct scan sc = { .s = s, .p = p, .log = log, .ud = ud, .err = err };
    int gr = reg_open(&g, true);
    if (gr == 0) {
        reg_sweep(&g, NULL);
        sc.g = &g;
    } else {
        sc.reg_errno = -gr;
    }
    sc.rootfd = calloc(s->nroots, sizeof(int));
    if (!sc.rootfd)
        r = -ENOMEM;
    for (size_t i = 0; r == 0 && i < s->nroots; i++) {
        struct stat st;
        int fd = openat2_flags(AT_FDCWD, s->roots[i], O_PATH | O_DIRECTORY, NO_LINKS);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != s->root_ids[i].dev ||
            st.st_ino != s->root_ids[i].ino) {
            if (fd >= 0)
                close(fd);
            for (size_t k = i; k < s->nroots; k++)
                sc.rootfd[k] = -1;
            r = changed(&sc, s->roots[i]);
            break;
        }
        sc.rootfd[i] = fd;
    }
    for (size_t i = 0; r == 0 && i < s->nroots; i++) {
        /* a write root that is a bare repository: not new at exit */
        if (is_repo(sc.rootfd[i]))
            r = add_strv(&s->repos, &s->nrepos, s->roots[i]);
        if (r == 0)
            r = top_names(&sc, i);
        int wfd = r == 0 ? openat(sc.rootfd[i], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
        if (wfd >= 0)
            r = walk(&sc, i, wfd, s->roots[i], p->mandatory_deny_search_depth, true);
        if (r == -E2BIG && !sc.failed)
            r = scan_fail(&sc, E2BIG, "%s: too many entries to scan for protected names (more "
                                      "than %d, or more than %d protected paths)",
                          s->roots[i], SCAN_MAX_ENTRIES, MAX_PROTECT);
    }
    if (r == 0)
        r = deny_write_missing(&sc);
    if (r == 0)
        r = join_registered(&sc);
    for (size_t i = 0; r == 0 && i < sc.nwant; i++)
        r = create_one(&sc, &sc.want[i], NULL);
    if (r == 0)
        r = ensure_excludes(&sc);
    if (r == 0 && dedupe_items(s) < 0)
        r = scan_fail(&sc, E2BIG, "more than %d protected paths", MAX_PROTECT);
    if (r < 0 && !sc.failed)
        r = cordon_err_set(err, -r, "workspace protection: %s", strerror(-r));
    reg_close(&g, sc.g != NULL);
    for (size_t i = 0; sc.rootfd && i < s->nroots; i++)
        if (sc.rootfd[i] >= 0)
            close(sc.rootfd[i]);
    free(sc.rootfd);
    for (size_t i = 0; i < sc.nwant; i++)
        free(sc.want[i].path);
    free(sc.want);
    if (r < 0) {
        protect_release(s);
        protect_free(s);
    }
    return r;
}

static bool hook_is_sample(const char *name)
{
    size_t n = strlen(name);
    return n > 7 && strcmp(name + n - 7, ".sample") == 0;
}

/* What the exit scan reads was made by the command: never follow a final
 * symlink, never block (a FIFO), only regular files, at most n - 1 bytes.
 * Returns the length read (NUL-terminated), or -1. */
static ssize_t read_small(const char *path, char *buf, size_t n)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
        return -1;
    size_t got = 0;
    while (got + 1 < n) {
        ssize_t k = read(fd, buf + got, n - 1 - got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    buf[got] = '\0';
    return (ssize_t)got;
}

/* Hooks: every entry of gitdir/hooks other than git's samples; a hooks that
 * is a symlink is reported itself (git runs what it leads to), unread. */
static void check_repo_hooks(const char *gitdir, protect_report_fn report, void *ud)
{
    char hooks[PATH_MAX + 16];
    struct stat st;
    snprintf(hooks, sizeof(hooks), "%s/hooks", gitdir);
    if (lstat(hooks, &st) == 0 && S_ISLNK(st.st_mode)) {
        report(ud, hooks, NULL);
        return;
    }
    int fd = open(hooks, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || hook_is_sample(e->d_name))
            continue;
        char path[PATH_MAX];
        int w = snprintf(path, sizeof(path), "%s/%s", hooks, e->d_name);
        if (w > 0 && (size_t)w < sizeof(path))
            report(ud, path, NULL);
    }
    closedir(d);
}

/* Config keys whose value git runs as a command, or that bring in other
 * configuration or another hooks directory ("*" is any one component). An
 * alias runs a command only when its value starts with "!". */
static const char *const exec_keys[] = {
    "core.hookspath", "core.fsmonitor", "core.sshcommand", "core.gitproxy", "core.pager",
    "core.editor", "core.askpass", "sequence.editor", "pager.*", "alias.*",
    "credential.helper", "credential.*.helper", "gpg.program", "gpg.*.program",
    "diff.external", "diff.*.textconv", "diff.*.command", "difftool.*.cmd",
    "merge.*.driver", "mergetool.*.cmd", "filter.*.clean", "filter.*.smudge",
    "filter.*.process", "include.path", "includeif.*.path", "uploadpack.packobjectshook",
    "web.browser", "browser.*.cmd", "browser.*.path", "man.*.cmd", "man.*.path",
};

/* key ("section.name" or "section.*.name", lower case) against the list. */
static bool exec_key(const char *key, const char *value)
{
    for (size_t i = 0; i < ARRAY_SIZE(exec_keys); i++) {
        const char *k = key, *e = exec_keys[i];
        while (*k && *e) {
            size_t kl = strcspn(k, "."), el = strcspn(e, ".");
            if (!(el == 1 && *e == '*') && (kl != el || strncmp(k, e, kl) != 0))
                break;
            k += kl + (k[kl] == '.');
            e += el + (e[el] == '.');
        }
        if (!*k && !*e)
            return strncmp(key, "alias.", 6) != 0 || value[0] == '!';
    }
    return false;
}

/* The keys of a git config file that make git run something: reported as
 * "section.name" (a subsection as "*"). A reader of git's syntax, lenient
 * the way git is: a UTF-8 byte order mark, "[section]", "[section "sub"]"
 * or the old "[section.sub]", a key on the same line after "]", "name =
 * value" or a bare "name"; comments start with # or ;. At most 1 MiB is
 * read: git's own configs are a few hundred bytes. */
#define CONFIG_MAX (1 << 20)
static void check_config_file(const char *path, protect_report_fn report, void *ud)
{
    char *buf = malloc(CONFIG_MAX + 1);
    if (!buf)
        return;
    ssize_t len = read_small(path, buf, CONFIG_MAX + 1);
    char section[128] = "";
    bool sub = false;
    char *l = buf, *end = buf + (len > 0 ? len : 0);
    if (end - l >= 3 && memcmp(l, "\xef\xbb\xbf", 3) == 0)
        l += 3;
    while (len > 0 && l < end) {
        char *nl = memchr(l, '\n', (size_t)(end - l));
        char *next = nl ? nl + 1 : end;
        if (nl)
            *nl = '\0';
        while (*l == ' ' || *l == '\t')
            l++;
        if (*l == '[') {
            size_t n = 0;
            sub = false;
            for (l++; *l && *l != ']' && *l != ' ' && *l != '\t' && *l != '"'; l++) {
                if (*l == '.') {
                    sub = true; /* [section.sub] */
                    break;
                }
                if (n + 1 < sizeof(section))
                    section[n++] = (char)tolower((unsigned char)*l);
            }
            section[n] = '\0';
            if (*l == ' ' || *l == '\t' || *l == '"')
                sub = true;
            char *close = strchr(l, ']');
            /* a "]" inside the quoted subsection name is escaped; good enough:
             * what follows the header on its line is read as a key */
            l = close ? close + 1 : l + strlen(l);
            while (*l == ' ' || *l == '\t')
                l++;
        }
        if (section[0] && isalpha((unsigned char)*l)) {
            char name[128];
            size_t n = 0;
            for (; isalnum((unsigned char)*l) || *l == '-'; l++)
                if (n + 1 < sizeof(name))
                    name[n++] = (char)tolower((unsigned char)*l);
            name[n] = '\0';
            while (*l == ' ' || *l == '\t')
                l++;
            const char *value = "";
            if (*l == '=') {
                l++;
                while (*l == ' ' || *l == '\t' || *l == '"')
                    l++;
                value = l;
            }
            char key[300];
            snprintf(key, sizeof(key), "%s.%s%s", section, sub ? "*." : "", name);
            if (exec_key(key, value))
                report(ud, path, key);
        }
        l = next;
    }
    free(buf);
}

struct newrepos {
    const struct protect_set *s;
    protect_report_fn report;
    void *ud;
    char **seen; /* git directories checked (real paths): each once */
    size_t nseen;
};

/* The first line of a small file the command made ("gitdir: X" of a .git
 * file, a commondir), resolved against base when relative. */
static bool read_pointer(const char *file, const char *prefix, const char *base, char *out,
                         size_t n)
{
    char line[PATH_MAX + 16];
    if (read_small(file, line, sizeof(line)) <= 0)
        return false;
    line[strcspn(line, "\r\n")] = '\0';
    size_t pl = strlen(prefix);
    if (strncmp(line, prefix, pl) != 0 || !line[pl])
        return false;
    const char *t = line + pl;
    int w = t[0] == '/' ? snprintf(out, n, "%s", t) : snprintf(out, n, "%s/%s", base, t);
    return w > 0 && (size_t)w < n;
}

/* A repository's git directory: its hooks, config and config.worktree, and
 * through a commondir those of the directory it names. Each once. */
static void check_repo(struct newrepos *c, const char *gitdir)
{
    char real[PATH_MAX];
    struct stat st;
    if (!realpath(gitdir, real) || stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
        return;
    for (size_t i = 0; i < c->nseen; i++)
        if (strcmp(c->seen[i], real) == 0)
            return;
    (void)add_strv(&c->seen, &c->nseen, real); /* out of memory: maybe twice */
    check_repo_hooks(real, c->report, c->ud);
    char p[PATH_MAX + 32], common[PATH_MAX * 2];
    snprintf(p, sizeof(p), "%s/config", real);
    check_config_file(p, c->report, c->ud);
    snprintf(p, sizeof(p), "%s/config.worktree", real);
    check_config_file(p, c->report, c->ud);
    snprintf(p, sizeof(p), "%s/commondir", real);
    if (read_pointer(p, "", real, common, sizeof(common)))
        check_repo(c, common);
}

static void check_gitfile(struct newrepos *c, const char *dir, const char *gitfile)
{
    char gitdir[PATH_MAX * 2];
    if (read_pointer(gitfile, "gitdir: ", dir, gitdir, sizeof(gitdir)))
        check_repo(c, gitdir);
}

/* A bare repository (HEAD and objects/ in the directory itself, as git
 * recognises one) that was not one when the run started. */
static void check_bare(struct newrepos *c, const char *dir)
{
    char p[PATH_MAX + 16];
    struct stat st;
    snprintf(p, sizeof(p), "%s/objects", dir);
    if (lstat(p, &st) < 0 || !S_ISDIR(st.st_mode))
        return;
    snprintf(p, sizeof(p), "%s/HEAD", dir);
    if (lstat(p, &st) < 0 || has_repo(c->s, dir))
        return;
    check_repo(c, dir);
}

static bool known_dir(const struct protect_set *s, const char *path)
{
    for (size_t i = 0; i < s->ndirs; i++)
        if (strcmp(s->dirs[i].path, path) == 0)
            return true;
    return false;
}

/* Read dir for repositories that did not exist at start (a .git directory,
 * file or symlink; with self, dir itself made a bare repository: a directory
 * new since the start, or a write root, which the scan noted when it was
 * one); descend into subdirectories the start scan did not see (known ones
 * are checked from the list, only if they changed). Symlinks to
 * directories are not entered. */
static void find_new_repos(struct newrepos *c, const char *dir, int depth, bool known, bool self)
{
    const struct protect_set *s = c->s;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    if (self)
        check_bare(c, dir);
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if ((n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]))) || strcmp(n, "node_modules") == 0)
            continue;
        char path[PATH_MAX];
        int w = snprintf(path, sizeof(path), "%s/%s", dir, n);
        if (w <= 0 || (size_t)w >= sizeof(path))
            continue;
        if (strcmp(n, ".git") == 0) {
            if (has_repo(s, path))
                continue;
            if (e->d_type == DT_REG)
                check_gitfile(c, dir, path);
            else
                check_repo(c, path); /* a directory, or a symlink to one */
            continue;
        }
        if (e->d_type != DT_DIR)
            continue;
        if (depth > 0 && !(known && known_dir(s, path)))
            find_new_repos(c, path, depth - 1, false, true);
    }
    closedir(d);
}

void protect_check_new_hooks(const struct protect_set *s, int depth, protect_report_fn report,
                             void *ud)
{
    (void)depth;
    struct newrepos c = { .s = s, .report = report, .ud = ud };
    /* A directory whose mtime did not change gained no entry: only the
     * changed ones are read again. */
    for (size_t i = 0; i < s->ndirs; i++) {
        struct stat st;
        if (stat(s->dirs[i].path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (st.st_mtim.tv_sec == s->dirs[i].mtime.tv_sec &&
            st.st_mtim.tv_nsec == s->dirs[i].mtime.tv_nsec)
            continue;
        bool root = false;
        for (size_t k = 0; k < s->nroots && !root; k++)
            root = strcmp(s->roots[k], s->dirs[i].path) == 0;
        find_new_repos(&c, s->dirs[i].path, s->dirs[i].depth, true, root);
    }
    /* A commondir or config.worktree planted in a nested repository (none
     * was there at start). */
    for (size_t i = 0; i < s->nmust_not_appear; i++) {
        struct stat st;
        if (lstat(s->must_not_appear[i], &st) == 0)
            report(ud, s->must_not_appear[i], PROTECT_APPEARED);
    }
    for (size_t i = 0; i < c.nseen; i++)
        free(c.seen[i]);
    free(c.seen);
}

void protect_free(struct protect_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].path);
    free(s->v);
    for (size_t i = 0; i < s->nrepos; i++)
        free(s->repos[i]);
    free(s->repos);
    for (size_t i = 0; i < s->nmust_not_appear; i++)
        free(s->must_not_appear[i]);
    free(s->must_not_appear);
    s->must_not_appear = NULL;
    s->nmust_not_appear = 0;
    for (size_t i = 0; i < s->nroots; i++)
        free(s->roots[i]);
    free(s->roots);
    free(s->root_ids);
    s->root_ids = NULL;
    for (size_t i = 0; i < s->nplaceholders; i++)
        free(s->placeholders[i]);
    free(s->placeholders);
    s->placeholders = NULL;
    s->nplaceholders = 0;
    for (size_t i = 0; i < s->ndirs; i++)
        free(s->dirs[i].path);
    free(s->dirs);
    s->dirs = NULL;
    s->ndirs = s->capdirs = 0;
    s->v = NULL;
    s->n = s->cap = 0;
    s->repos = s->roots = NULL;
    s->nrepos = s->nroots = 0;
}
