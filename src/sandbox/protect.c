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
 *     unless allowGitConfig; a .git that is a file (worktree, submodule) is
 *     itself protected.
 * Missing names get placeholders only at the top of a write root (and a
 * missing .git/hooks of an existing repository at any scanned depth); a
 * missing .git gets none, so `git init` works, and at exit cordon reports
 * hooks of repositories that appeared during the run.
 *
 * Placeholders are shared between concurrent runs: a registry under the
 * user's runtime directory, updated under flock(2), records each
 * placeholder's device, inode and the runs using it. A placeholder is removed
 * by the last run that uses it, only while it is still the empty object cordon
 * created; a watchdog in its own session does the same for a cordon killed
 * with SIGKILL, and every start sweeps entries whose runs are gone.
 */
#include "protect.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
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

struct scan {
    struct protect_set *s;
    const cordon_policy *p;
    cordon_log_fn log;
    void *ud;
    struct cordon_error *err;
    unsigned long entries;
    /* placeholders wanted: path and whether a directory */
    struct want {
        char *path;
        bool dir;
    } *want;
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
    for (char *p = buf + rl + 1; (p = strchr(p, '/')); p++) {
        *p = '\0';
        int r = add_item(s, buf, PROT_PIN);
        *p = '/';
        if (r < 0)
            return r;
    }
    return 0;
}

static const char *root_of(const struct protect_set *s, const char *path)
{
    const char *best = NULL;
    for (size_t i = 0; i < s->nroots; i++)
        if (cordon_path_is_prefix(s->roots[i], path) &&
            (!best || strlen(s->roots[i]) > strlen(best)))
            best = s->roots[i];
    return best;
}

static int want_placeholder(struct scan *sc, const char *path, bool dir)
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
    sc->want[sc->nwant++] = (struct want){ .path = d, .dir = dir };
    return 0;
}

/* Protect path (below root): walk its components without following
 * symlinks. The first missing component gets a placeholder; a symlink on the
 * way (a dotfile managed by stow or home-manager, a linked .claude) is pinned
 * so it cannot be replaced, and what it points to is protected where it lies
 * inside a write root (elsewhere it is read-only already). */
static int protect_path_depth(struct scan *sc, const char *root, const char *path, bool is_dir,
                              int hops)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof(buf), "%s", path);
    size_t rl = strlen(root);
    char *p = buf + rl;
    int r;
    for (;;) {
        char *next = strchr(p + 1, '/');
        if (next)
            *next = '\0';
        bool last = next == NULL;
        struct stat st;
        if (lstat(buf, &st) < 0) {
            if (errno != ENOENT)
                return 0; /* ENOTDIR: a file where a directory is expected */
            if ((r = want_placeholder(sc, buf, last ? is_dir : true)) < 0)
                return r;
            return 0;
        }
        if (S_ISLNK(st.st_mode)) {
            if ((r = add_item(sc->s, buf, PROT_LINK)) < 0 || (r = add_pins(sc->s, root, buf)) < 0)
                return r;
            char real[PATH_MAX];
            if (hops > 0 && realpath(path, real)) {
                const char *troot = root_of(sc->s, real);
                if (troot && strcmp(troot, real) != 0) {
                    slog(sc, "protect %s (reached through the symlink %s)", real, buf);
                    return protect_path_depth(sc, troot, real, is_dir, hops - 1);
                }
            }
            return 0;
        }
        if (last) {
            if ((r = add_item(sc->s, buf, PROT_RO)) < 0)
                return r;
            return add_pins(sc->s, root, buf);
        }
        *next = '/';
        p = next;
    }
}

static int protect_path(struct scan *sc, const char *root, const char *path, bool is_dir)
{
    return protect_path_depth(sc, root, path, is_dir, 8);
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

/* The git files of a repository whose .git is at path (lstat'ed as st). */
static int protect_git(struct scan *sc, const char *root, const char *dir, const char *path,
                       const struct stat *st)
{
    if (!S_ISDIR(st->st_mode))
        return protect_path(sc, root, path, false); /* worktree or submodule */
    _cleanup_close_ int gfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
    if (gfd < 0 || !is_repo(gfd))
        return 0;
    int r = add_strv(&sc->s->repos, &sc->s->nrepos, path);
    if (r < 0)
        return r;
    char p[PATH_MAX + 32];
    snprintf(p, sizeof(p), "%s/.git/hooks", dir);
    if ((r = protect_path(sc, root, p, true)) < 0)
        return r;
    if (!sc->p->fs.allow_git_config) {
        snprintf(p, sizeof(p), "%s/.git/config", dir);
        if ((r = protect_path(sc, root, p, false)) < 0)
            return r;
    }
    return 0;
}

/* One entry of a scanned directory: a protected name, .claude, or .git. */
static int protect_entry(struct scan *sc, const char *root, const char *dir, const char *name,
                         bool top)
{
    char path[PATH_MAX + 32];
    int w = snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= PATH_MAX)
        return 0;
    if (in_list(name, prot_files, ARRAY_SIZE(prot_files)))
        return protect_path(sc, root, path, false);
    if (in_list(name, prot_dirs, ARRAY_SIZE(prot_dirs)))
        return protect_path(sc, root, path, true);
    if (strcmp(name, ".claude") == 0) {
        for (size_t i = 0; i < ARRAY_SIZE(claude_items); i++) {
            snprintf(path, sizeof(path), "%s/.claude/%s", dir, claude_items[i].name);
            struct stat st;
            if (top || lstat(path, &st) == 0) {
                int r = protect_path(sc, root, path, claude_items[i].dir);
                if (r < 0)
                    return r;
            }
        }
        return 0;
    }
    if (strcmp(name, ".git") == 0) {
        struct stat st;
        if (lstat(path, &st) < 0)
            return 0;
        return protect_git(sc, root, dir, path, &st);
    }
    return 0;
}

static int remember_dir(struct protect_set *s, const char *dir, const struct stat *st, int depth)
{
    if (s->ndirs == s->capdirs) {
        size_t cap = s->capdirs ? s->capdirs * 2 : 64;
        struct scanned_dir *v = realloc(s->dirs, cap * sizeof(*v));
        if (!v)
            return -1;
        s->dirs = v;
        s->capdirs = cap;
    }
    char *p = strdup(dir);
    if (!p)
        return -1;
    s->dirs[s->ndirs++] = (struct scanned_dir){ .path = p, .mtime = st->st_mtim, .depth = depth };
    return 0;
}

/* Walk dir down to depth levels below it, reading each directory once
 * (getdents, d_type): protected names are found among the entries, not by
 * probing for each; node_modules and .git are not entered, nor symlinks. At
 * the top of a write root, every protected name is handled whether it exists
 * or not (missing ones get placeholders). */
static int walk(struct scan *sc, const char *root, const char *dir, int depth)
{
    bool top = strcmp(root, dir) == 0;
    if (top) {
        /* Placeholders only in a write root the caller owns: a shared sticky
         * directory (/tmp, /var/tmp) is nobody's home or project, and
         * another user's run could not coordinate with this one's. */
        struct stat rst;
        if (stat(root, &rst) < 0 || rst.st_uid != geteuid() || (rst.st_mode & S_ISVTX))
            top = false;
    }
    int r = 0;
    if (top) {
        for (size_t i = 0; i < ARRAY_SIZE(prot_files) && r == 0; i++)
            r = protect_entry(sc, root, dir, prot_files[i], true);
        for (size_t i = 0; i < ARRAY_SIZE(prot_dirs) && r == 0; i++)
            r = protect_entry(sc, root, dir, prot_dirs[i], true);
        if (r == 0)
            r = protect_entry(sc, root, dir, ".claude", true);
        if (r == 0)
            r = protect_entry(sc, root, dir, ".git", true);
        if (r < 0)
            return r;
    }
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* unreadable: the command cannot read it either */
    struct stat dst;
    if (fstat(dirfd(d), &dst) == 0 && remember_dir(sc->s, dir, &dst, depth) < 0) {
        closedir(d);
        return -ENOMEM;
    }
    struct dirent *e;
    char path[PATH_MAX];
    while ((e = readdir(d))) {
        if (++sc->entries > SCAN_MAX_ENTRIES) {
            closedir(d);
            return -E2BIG;
        }
        const char *n = e->d_name;
        if (n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')))
            continue;
        if (!top && n[0] == '.') {
            r = protect_entry(sc, root, dir, n, false);
            if (r < 0)
                break;
        }
        if (depth <= 0 || (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN))
            continue;
        if (strcmp(n, "node_modules") == 0 || strcmp(n, ".git") == 0)
            continue;
        int w = snprintf(path, sizeof(path), "%s/%s", dir, n);
        if (w < 0 || (size_t)w >= sizeof(path))
            continue;
        if (e->d_type == DT_UNKNOWN) {
            struct stat st;
            if (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))
                continue;
        }
        r = walk(sc, root, path, depth - 1);
        if (r < 0)
            break;
    }
    closedir(d);
    return r;
}

/* ---- the placeholder registry --------------------------------------------- */

static int state_dir(char *out, size_t n)
{
    const char *x = getenv("XDG_RUNTIME_DIR");
    struct stat st;
    if (x && x[0] == '/' && stat(x, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid())
        snprintf(out, n, "%s/cordon", x);
    else
        snprintf(out, n, "/tmp/cordon-%u", (unsigned)geteuid());
    if (mkdir(out, 0700) < 0 && errno != EEXIST)
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

static bool run_alive(const char *runid)
{
    int pid;
    unsigned long long st;
    if (sscanf(runid, "%d.%llu", &pid, &st) != 2 || pid <= 0)
        return false;
    return start_time(pid) == st;
}

struct entry {
    dev_t dev;
    ino_t ino;
    char type;
    char owners[1024];
    char path[PATH_MAX];
};

struct registry {
    int lockfd;
    char dir[PATH_MAX];
    struct entry *v;
    size_t n, cap;
};

static int reg_open(struct registry *g)
{
    memset(g, 0, sizeof(*g));
    g->lockfd = -1;
    int r = state_dir(g->dir, sizeof(g->dir));
    if (r < 0)
        return r;
    char p[PATH_MAX + 16];
    snprintf(p, sizeof(p), "%s/lock", g->dir);
    g->lockfd = open(p, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (g->lockfd < 0 || flock(g->lockfd, LOCK_EX) < 0)
        return -errno;
    snprintf(p, sizeof(p), "%s/placeholders", g->dir);
    FILE *f = fopen(p, "re");
    if (!f)
        return errno == ENOENT ? 0 : -errno;
    char line[PATH_MAX + 1200];
    while (fgets(line, sizeof(line), f)) {
        struct entry e = { 0 };
        unsigned long long dev, ino;
        int off = 0;
        line[strcspn(line, "\n")] = '\0';
        if (sscanf(line, "%llu %llu %c %1023s %n", &dev, &ino, &e.type, e.owners, &off) < 4 ||
            off <= 0)
            continue;
        e.dev = (dev_t)dev;
        e.ino = (ino_t)ino;
        snprintf(e.path, sizeof(e.path), "%s", line + off);
        if (g->n == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 16;
            struct entry *v = realloc(g->v, cap * sizeof(*v));
            if (!v)
                break;
            g->v = v;
            g->cap = cap;
        }
        g->v[g->n++] = e;
    }
    fclose(f);
    return 0;
}

static void reg_close(struct registry *g, bool write)
{
    if (write && g->lockfd >= 0) {
        char p[PATH_MAX + 32], t[PATH_MAX + 32];
        snprintf(p, sizeof(p), "%s/placeholders", g->dir);
        snprintf(t, sizeof(t), "%s/placeholders.tmp", g->dir);
        FILE *f = fopen(t, "we");
        if (f) {
            for (size_t i = 0; i < g->n; i++)
                if (g->v[i].owners[0])
                    fprintf(f, "%llu %llu %c %s %s\n", (unsigned long long)g->v[i].dev,
                            (unsigned long long)g->v[i].ino, g->v[i].type, g->v[i].owners,
                            g->v[i].path);
            /* No fsync: after a crash a stale or missing entry only means a
             * placeholder is left for the user to see (never a wrong removal:
             * removal checks the device, inode and emptiness). */
            if (fflush(f) == 0)
                rename(t, p);
            fclose(f);
        }
    }
    free(g->v);
    if (g->lockfd >= 0)
        close(g->lockfd); /* releases the lock */
    g->lockfd = -1;
}

/* Remove a placeholder, only while it is still the empty object we made. */
static void remove_placeholder(const struct entry *e)
{
    struct stat st;
    if (lstat(e->path, &st) < 0 || st.st_dev != e->dev || st.st_ino != e->ino)
        return;
    if (e->type == 'd')
        rmdir(e->path); /* fails, harmlessly, when something was put in it */
    else if (S_ISREG(st.st_mode) && st.st_size == 0)
        unlink(e->path);
}

/* Drop owner from the entry's list; also drop owners that are gone. */
static void drop_owner(struct entry *e, const char *owner)
{
    char out[sizeof(e->owners)] = "";
    char *save = NULL;
    char buf[sizeof(e->owners)];
    snprintf(buf, sizeof(buf), "%s", e->owners);
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if ((owner && strcmp(t, owner) == 0) || !run_alive(t))
            continue;
        if (out[0])
            strncat(out, ",", sizeof(out) - strlen(out) - 1);
        strncat(out, t, sizeof(out) - strlen(out) - 1);
    }
    snprintf(e->owners, sizeof(e->owners), "%s", out);
    if (!e->owners[0])
        remove_placeholder(e);
}

static void reg_sweep(struct registry *g, const char *owner)
{
    for (size_t i = 0; i < g->n; i++)
        drop_owner(&g->v[i], owner);
}

void protect_sweep(void)
{
    struct registry g;
    if (reg_open(&g) == 0)
        reg_sweep(&g, NULL);
    reg_close(&g, true);
}

static int create_placeholders(struct scan *sc)
{
    if (sc->nwant == 0)
        return 0;
    struct registry g;
    int r = reg_open(&g);
    if (r < 0) {
        reg_close(&g, false);
        return cordon_err_sys(sc->err, -r, "the placeholder registry");
    }
    reg_sweep(&g, NULL);
    for (size_t i = 0; i < sc->nwant; i++) {
        const struct want *w = &sc->want[i];
        if (strchr(w->path, '\n'))
            continue;
        struct stat st;
        struct entry *found = NULL;
        for (size_t k = 0; k < g.n; k++)
            if (strcmp(g.v[k].path, w->path) == 0)
                found = &g.v[k];
        if (lstat(w->path, &st) == 0) {
            /* Another run's placeholder: share it. A user's file: protect it. */
            if (found && found->dev == st.st_dev && found->ino == st.st_ino) {
                strncat(found->owners, ",", sizeof(found->owners) - strlen(found->owners) - 1);
                strncat(found->owners, sc->s->runid,
                        sizeof(found->owners) - strlen(found->owners) - 1);
            }
        } else {
            int cr;
            if (w->dir) {
                cr = mkdir(w->path, 0555);
            } else {
                cr = open(w->path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC | O_NOFOLLOW, 0444);
                if (cr >= 0)
                    close(cr);
            }
            if (cr < 0) {
                /* e.g. a read-only directory: the command cannot create the
                 * name there either. */
                if (errno == EROFS || errno == EACCES || errno == EPERM)
                    continue;
                int e = errno;
                reg_close(&g, true);
                return cordon_err_sys(sc->err, e, "cannot create a placeholder at %s", w->path);
            }
            if (lstat(w->path, &st) < 0)
                continue;
            if (found)
                memset(found, 0, sizeof(*found));
            if (g.n == g.cap) {
                size_t cap = g.cap ? g.cap * 2 : 16;
                struct entry *v = realloc(g.v, cap * sizeof(*v));
                if (!v) {
                    remove_placeholder(&(struct entry){ .dev = st.st_dev, .ino = st.st_ino,
                                                        .type = w->dir ? 'd' : 'f' });
                    reg_close(&g, true);
                    return cordon_err_set(sc->err, ENOMEM, "out of memory");
                }
                g.v = v;
                g.cap = cap;
            }
            struct entry *e = &g.v[g.n++];
            memset(e, 0, sizeof(*e));
            e->dev = st.st_dev;
            e->ino = st.st_ino;
            e->type = w->dir ? 'd' : 'f';
            snprintf(e->owners, sizeof(e->owners), "%s", sc->s->runid);
            snprintf(e->path, sizeof(e->path), "%s", w->path);
            slog(sc, "placeholder %s (%s), removed when the run ends", w->path,
                 w->dir ? "directory" : "file");
        }
        sc->s->have_placeholders = true;
        char pat[PATH_MAX + 2];
        snprintf(pat, sizeof(pat), "%s%s", w->path, w->dir ? "/" : "");
        if (add_strv(&sc->s->placeholders, &sc->s->nplaceholders, pat) < 0) {
            reg_close(&g, true);
            return cordon_err_set(sc->err, ENOMEM, "out of memory");
        }
        const char *root = root_of(sc->s, w->path);
        if ((r = add_item(sc->s, w->path, PROT_RO)) < 0 ||
            (root && (r = add_pins(sc->s, root, w->path)) < 0)) {
            reg_close(&g, true);
            return cordon_err_set(sc->err, -r, "too many protected paths");
        }
    }
    reg_close(&g, true);
    return 0;
}

void protect_release(struct protect_set *s)
{
    if (!s->have_placeholders)
        return;
    struct registry g;
    if (reg_open(&g) == 0)
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

/* ---- entry points ----------------------------------------------------------- */

int protect_prepare(const cordon_policy *p, const char *cwd, struct protect_set *s,
                    cordon_log_fn log, void *ud, struct cordon_error *err)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->runid, sizeof(s->runid), "%d.%llu", (int)getpid(), start_time(getpid()));
    if (p->fs.disabled)
        return 0; /* srt drops the mandatory denies too */
    struct scan sc = { .s = s, .p = p, .log = log, .ud = ud, .err = err };

    /* Write roots: existing allowWrite paths without a denyWrite at or above
     * them. */
    for (size_t i = 0; i < p->fs.allow_write.n; i++) {
        char real[PATH_MAX];
        if (!realpath(p->fs.allow_write.v[i].path, real))
            continue;
        struct stat st;
        if (stat(real, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        bool denied = false;
        for (size_t k = 0; k < p->fs.deny_write.n; k++) {
            char dreal[PATH_MAX];
            const char *d = realpath(p->fs.deny_write.v[k].path, dreal) ? dreal
                                                                          : p->fs.deny_write.v[k].path;
            denied |= cordon_path_is_prefix(d, real);
        }
        if (denied || cordon_path_is_prefix("/proc", real) || cordon_path_is_prefix("/dev", real) ||
            cordon_path_is_prefix("/sys", real))
            continue;
        bool dup = false;
        for (size_t k = 0; k < s->nroots; k++)
            dup |= strcmp(s->roots[k], real) == 0;
        if (!dup && add_strv(&s->roots, &s->nroots, real) < 0)
            return cordon_err_set(err, ENOMEM, "out of memory");
    }
    (void)cwd; /* the working directory is covered when it lies in a write root */

    int r = 0;
    for (size_t i = 0; i < s->nroots && r == 0; i++) {
        r = walk(&sc, s->roots[i], s->roots[i], p->mandatory_deny_search_depth);
        if (r == -E2BIG)
            r = cordon_err_set(err, E2BIG, "%s: too many entries to scan for protected names "
                                           "(more than %d, or more than %d protected paths)",
                               s->roots[i], SCAN_MAX_ENTRIES, MAX_PROTECT);
        else if (r < 0)
            r = cordon_err_set(err, -r, "scanning %s for protected names", s->roots[i]);
    }
    if (r == 0)
        r = create_placeholders(&sc);
    if (r == 0 && dedupe_items(s) < 0)
        r = cordon_err_set(err, E2BIG, "more than %d protected paths", MAX_PROTECT);
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

static void check_repo_hooks(const char *gitdir, void (*report)(void *, const char *), void *ud)
{
    char hooks[PATH_MAX + 16];
    snprintf(hooks, sizeof(hooks), "%s/hooks", gitdir);
    DIR *d = opendir(hooks);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || hook_is_sample(e->d_name))
            continue;
        char path[PATH_MAX];
        int w = snprintf(path, sizeof(path), "%s/%s", hooks, e->d_name);
        if (w > 0 && (size_t)w < sizeof(path))
            report(ud, path);
    }
    closedir(d);
}

static bool known_dir(const struct protect_set *s, const char *path)
{
    for (size_t i = 0; i < s->ndirs; i++)
        if (strcmp(s->dirs[i].path, path) == 0)
            return true;
    return false;
}

/* Read dir for .git entries that did not exist at start; descend into
 * subdirectories the start scan did not see (known ones are checked from
 * the list, only if they changed). */
static void find_new_repos(const struct protect_set *s, const char *dir, int depth, bool known,
                           void (*report)(void *, const char *), void *ud)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        const char *n = e->d_name;
        if (e->d_type != DT_DIR || (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2]))) ||
            strcmp(n, "node_modules") == 0)
            continue;
        char path[PATH_MAX];
        int w = snprintf(path, sizeof(path), "%s/%s", dir, n);
        if (w <= 0 || (size_t)w >= sizeof(path))
            continue;
        if (strcmp(n, ".git") == 0) {
            bool seen = false;
            for (size_t i = 0; i < s->nrepos && !seen; i++)
                seen = strcmp(s->repos[i], path) == 0;
            if (!seen)
                check_repo_hooks(path, report, ud);
            continue;
        }
        if (depth > 0 && !(known && known_dir(s, path)))
            find_new_repos(s, path, depth - 1, false, report, ud);
    }
    closedir(d);
}

void protect_check_new_hooks(const struct protect_set *s, int depth,
                             void (*report)(void *ud, const char *path), void *ud)
{
    (void)depth;
    /* A directory whose mtime did not change gained no entry: only the
     * changed ones are read again. */
    for (size_t i = 0; i < s->ndirs; i++) {
        struct stat st;
        if (stat(s->dirs[i].path, &st) < 0 || !S_ISDIR(st.st_mode))
            continue;
        if (st.st_mtim.tv_sec == s->dirs[i].mtime.tv_sec &&
            st.st_mtim.tv_nsec == s->dirs[i].mtime.tv_nsec)
            continue;
        find_new_repos(s, s->dirs[i].path, s->dirs[i].depth, true, report, ud);
    }
}

void protect_free(struct protect_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->v[i].path);
    free(s->v);
    for (size_t i = 0; i < s->nrepos; i++)
        free(s->repos[i]);
    free(s->repos);
    for (size_t i = 0; i < s->nroots; i++)
        free(s->roots[i]);
    free(s->roots);
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
