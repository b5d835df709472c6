/* plan.c: settings -> an ordered list of mounts (struct sandbox_plan).
 *
 * Owns: the semantics of the four filesystem lists (srt-compat.md 1.2, 3.3),
 * computed once, before clone(2), so that the sandbox's init only executes.
 *
 * Rules, for a path X, with "rule at P" meaning a list entry whose resolved
 * path P is X or an ancestor of X:
 *  - visible(X): the longest rule among denyRead (deny) and allowRead,
 *    allowWrite (allow) decides; at equal length allow wins (srt); no rule
 *    means visible;
 *  - writable(X): some allowWrite rule at an ancestor-or-self and no denyWrite
 *    rule at an ancestor-or-self ("denyWrite wins even at an ancestor").
 * The state only changes at rule paths, so one mount per rule path whose state
 * differs from the content it sits in is enough. Paths are resolved with
 * realpath(3) here and re-checked (dev, inode, no symlinks) by init. The
 * symlinks on the way to an allowed path are made again where the content
 * around them is synthetic (add_links), so the path as written still leads
 * to the bound target.
 *
 * The host's /tmp is replaced by a private tmpfs unless /tmp itself is a
 * write root; the working directory and visible rule paths below it are bound
 * through. /dev and /proc are always fresh; rules under them are dropped.
 */
#include "sandbox.h"
#include "tls/creds.h"
#include "protect.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <ctype.h>
#include <errno.h>
#include <sys/syscall.h>
#include <linux/seccomp.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    F_DENY_READ = 1u << 0,
    F_ALLOW_READ = 1u << 1,
    F_ALLOW_WRITE = 1u << 2,
    F_DENY_WRITE = 1u << 3,
    F_KEEP = 1u << 4,  /* bind through into a synthetic parent (cwd under /tmp) */
    F_TMP = 1u << 5,   /* the private /tmp */
    F_DEV = 1u << 6,
    F_PROC = 1u << 7,
    F_PROTECT = 1u << 8, /* workspace protection: read-only like denyWrite */
    F_PIN = 1u << 9,     /* bound over itself so it cannot be renamed away */
    F_LINK = 1u << 10,   /* a protected symlink, pinned as it is */
    F_WAYPOINT = 1u << 11, /* a name on the way to an allowed path (add_links) */
};

struct node {
    char *path;
    unsigned flags;
    bool is_dir;
    dev_t dev;
    ino_t ino;
    char *target; /* F_WAYPOINT: the link's text (NULL: a directory) */
};

struct nodes {
    struct node *v;
    size_t n, cap;
};

/* Hard cap on mounts in one view; each costs a few hundred bytes of kernel
 * memory, and /proc/sys/fs/mount-max is 100000 by default. */
#define PLAN_MAX_OPS 20000

static void plog(cordon_log_fn log, void *ud, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void plog(cordon_log_fn log, void *ud, const char *fmt, ...)
{
    if (!log)
        return;
    char line[PATH_MAX + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    log(ud, CORDON_LOG_DEBUG, line);
}

/* Nodes are appended; duplicates are merged after sorting (merge_nodes), so
 * adding n nodes costs O(n log n), not O(n^2): a workspace with hundreds of
 * repositories yields thousands of them. */
static int nodes_add(struct nodes *ns, const char *path, unsigned flags, const struct stat *st)
{
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 32;
        struct node *v = realloc(ns->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        ns->v = v;
        ns->cap = cap;
    }
    char *d = strdup(path);
    if (!d)
        return -ENOMEM;
    ns->v[ns->n++] = (struct node){
        .path = d,
        .flags = flags,
        .is_dir = st ? S_ISDIR(st->st_mode) : true,
        .dev = st ? st->st_dev : 0,
        .ino = st ? st->st_ino : 0,
    };
    return 0;
}

static int cmp_nodes(const void *a, const void *b)
{
    /* Plain byte order puts every ancestor before its descendants, because an
     * ancestor is a prefix of them. */
    return strcmp(((const struct node *)a)->path, ((const struct node *)b)->path);
}

/* After sorting: merge entries with the same path (flags are or'ed; the
 * first entry's identity is kept). */
static void merge_nodes(struct nodes *ns)
{
    size_t k = 0;
    for (size_t i = 0; i < ns->n; i++) {
        if (k > 0 && strcmp(ns->v[k - 1].path, ns->v[i].path) == 0) {
            ns->v[k - 1].flags |= ns->v[i].flags;
            if (!ns->v[k - 1].target) {
                ns->v[k - 1].target = ns->v[i].target;
                ns->v[i].target = NULL;
            }
            free(ns->v[i].path);
            free(ns->v[i].target);
            continue;
        }
        ns->v[k++] = ns->v[i];
    }
    ns->n = k;
}

static bool under_fresh_fs(const char *p)
{
    return cordon_path_is_prefix("/proc", p) || cordon_path_is_prefix("/dev", p);
}

static const char *list_name(unsigned flag)
{
    switch (flag) {
    case F_DENY_READ: return "denyRead";
    case F_ALLOW_READ: return "allowRead";
    case F_ALLOW_WRITE: return "allowWrite";
    case F_DENY_WRITE: return "denyWrite";
    default: return "rule";
    }
}

/* The symlinks met on the way to an allowed entry as written (/bin ->
 * usr/bin, /lib64 -> usr/lib64, /home -> var/home, and any met inside a
 * link's own text): each becomes a node at its resolved location with its
 * text, and so does each directory the walk leaves again by "..". The view
 * makes them again where the content around them is synthetic (a denied
 * directory, the root when "/" is denied, the private /tmp), so the name as
 * written keeps working, as in srt; the entry's resolved path is the rule's
 * own node. The walk is the kernel's (".." after a link is taken in the
 * link's target directory, at most 40 links); it stops quietly where the
 * path does not resolve. Only names on the way to what the user allowed,
 * and the link texts, are revealed; nothing of their content. */
static int add_links(struct nodes *ns, const char *path, unsigned flag, const char *as_written,
                     cordon_log_fn log, void *ud)
{
    char cur[PATH_MAX] = ""; /* resolved so far, no symlinks in it; "" is / */
    char rest[PATH_MAX], cand[PATH_MAX], target[PATH_MAX], next[PATH_MAX];
    if (snprintf(rest, sizeof(rest), "%s", path) >= (int)sizeof(rest))
        return 0;
    const char *p = rest;
    int links = 0;
    for (;;) {
        while (*p == '/')
            p++;
        if (!*p)
            return 0;
        const char *end = strchrnul(p, '/');
        size_t len = (size_t)(end - p);
        if (len == 1 && p[0] == '.') {
            p = end;
            continue;
        }
        if (len == 2 && p[0] == '.' && p[1] == '.') {
            struct stat dst;
            if (cur[0] && !under_fresh_fs(cur) && lstat(cur, &dst) == 0 &&
                nodes_add(ns, cur, F_WAYPOINT, &dst) < 0)
                return -ENOMEM;
            char *slash = strrchr(cur, '/');
            if (slash)
                *slash = '\0';
            p = end;
            continue;
        }
        if (snprintf(cand, sizeof(cand), "%s/%.*s", cur, (int)len, p) >= (int)sizeof(cand))
            return 0;
        struct stat st;
        if (lstat(cand, &st) < 0)
            return 0;
        if (!S_ISLNK(st.st_mode)) {
            memcpy(cur, cand, strlen(cand) + 1);
            p = end;
            continue;
        }
        ssize_t n = readlink(cand, target, sizeof(target) - 1);
        if (++links > 40 || n <= 0 || (size_t)n >= sizeof(target) - 1)
            return 0;
        target[n] = '\0';
        if (!under_fresh_fs(cand)) {
            plog(log, ud, "%s %s: passes through the symlink %s -> %s", list_name(flag),
                 as_written, cand, target);
            if (nodes_add(ns, cand, F_WAYPOINT, &st) < 0)
                return -ENOMEM;
            ns->v[ns->n - 1].target = strdup(target);
            if (!ns->v[ns->n - 1].target)
                return -ENOMEM;
        }
        if (snprintf(next, sizeof(next), "%s%s", target, end) >= (int)sizeof(next))
            return 0;
        memcpy(rest, next, strlen(next) + 1);
        p = rest;
        if (target[0] == '/')
            cur[0] = '\0';
    }
}

/* Resolve one list entry and add it as a node. Entries that do not exist are
 * skipped (nothing to hide or expose yet); entries the invoking user cannot
 * inspect are skipped too, because the command runs as that user and cannot
 * reach them either. */
static int add_rule(struct nodes *ns, const struct cordon_pathrule *r, unsigned flag,
                    cordon_log_fn log, void *ud, struct cordon_error *err)
{
    char real[PATH_MAX];
    struct stat st;
    /* Most entries of the default lists do not exist: one stat(2) says so,
     * where realpath(3) would readlink(2) every component first. */
    bool missing = stat(r->path, &st) < 0 && (errno == ENOENT || errno == ENOTDIR);
    if (missing || !realpath(r->path, real)) {
        int e = errno;
        if (e == ENOENT || e == ENOTDIR || e == EACCES || e == ELOOP) {
            plog(log, ud, "%s %s: %s (%s); nothing to do", list_name(flag), r->as_written,
                 r->path, strerror(e));
            return 0;
        }
        return cordon_err_sys(err, e, "%s %s: cannot resolve %s", list_name(flag),
                              r->as_written, r->path);
    }
    if (under_fresh_fs(real)) {
        plog(log, ud, "%s %s: %s is under the sandbox's own /proc or /dev; ignored",
             list_name(flag), r->as_written, real);
        return 0;
    }
    if (stat(real, &st) < 0) {
        plog(log, ud, "%s %s: %s: %s; nothing to do", list_name(flag), r->as_written, real,
             strerror(errno));
        return 0;
    }
    if (strcmp(real, r->path) != 0)
        plog(log, ud, "%s %s: resolves to %s", list_name(flag), r->as_written, real);
    if (nodes_add(ns, real, flag, &st) < 0)
        return cordon_err_set(err, ENOMEM, "out of memory");
    if ((flag & (F_ALLOW_READ | F_ALLOW_WRITE)) &&
        add_links(ns, r->path, flag, r->as_written, log, ud) < 0)
        return cordon_err_set(err, ENOMEM, "out of memory");
    return 0;
}

struct glob_ud {
    struct nodes *ns;
    const struct cordon_pathrule *rule;
    unsigned flag;
    cordon_log_fn log;
    void *ud;
    struct cordon_error *err;
    unsigned long n;
};

static int glob_match(void *p, const char *path)
{
    struct glob_ud *g = p;
    struct cordon_pathrule r = { .path = (char *)path, .as_written = g->rule->as_written };
    g->n++;
    return add_rule(g->ns, &r, g->flag, g->log, g->ud, g->err);
}

static int add_list(struct nodes *ns, const struct cordon_pathlist *l, unsigned flag,
                    cordon_log_fn log, void *ud, struct cordon_error *err)
{
    for (size_t i = 0; i < l->n; i++) {
        int r;
        if (l->v[i].glob) {
            /* Expanded now: files created later are not matched (README,
             * docs/threat-model.md). */
            struct glob_ud g = { .ns = ns, .rule = &l->v[i], .flag = flag, .log = log, .ud = ud,
                                 .err = err };
            r = cordon_glob_expand(l->v[i].path, glob_match, &g, err);
            if (r < 0)
                return cordon_err_prefix(err, "%s", list_name(flag));
            plog(log, ud, "%s %s: the pattern matches %lu path(s)", list_name(flag),
                 l->v[i].as_written, g.n);
            continue;
        }
        r = add_rule(ns, &l->v[i], flag, log, ud, err);
        if (r < 0)
            return r;
    }
    return 0;
}

/* srt's implicit write paths that matter on Linux (srt-compat.md 1.2): npm's
 * log directory and Claude Code's debug directory, when they exist and no
 * denyRead covers them. /tmp and /dev are provided fresh. */
static int add_implicit_writes(struct nodes *ns, const cordon_policy *p, cordon_log_fn log,
                               void *ud, struct cordon_error *err)
{
    static const char *const rel[] = { ".npm/_logs", ".claude/debug" };
    if (!p->home)
        return 0;
    for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/%s", p->home, rel[i]);
        bool covered = false;
        for (size_t j = 0; j < p->fs.deny_read.n; j++)
            covered |= cordon_path_is_prefix(p->fs.deny_read.v[j].path, path);
        if (covered)
            continue;
        struct cordon_pathrule r = { .path = path, .as_written = path };
        char real[PATH_MAX];
        if (!realpath(path, real))
            continue;
        plog(log, ud, "implicit write path %s", path);
        int e = add_rule(ns, &r, F_ALLOW_WRITE, log, ud, err);
        if (e < 0)
            return e;
    }
    return 0;
}

struct state {
    bool vis;  /* the host's content is visible here */
    bool rvis; /* what the read rules alone say (ignoring the private /tmp) */
    bool aw, dw;
};

static bool state_wr(struct state s)
{
    return s.vis && s.aw && !s.dw;
}

static int plan_keep(struct sandbox_plan *plan, char *s)
{
    char **v = realloc(plan->paths, (plan->npaths + 1) * sizeof(*v));
    if (!v)
        return -ENOMEM;
    plan->paths = v;
    plan->paths[plan->npaths++] = s;
    return 0;
}

static int emit(struct sandbox_plan *plan, size_t *cap, struct mount_op op)
{
    if (plan->nops >= PLAN_MAX_OPS)
        return -E2BIG;
    if (plan->nops == *cap) {
        size_t nc = *cap ? *cap * 2 : 32;
        struct mount_op *v = realloc(plan->ops, nc * sizeof(*v));
        if (!v)
            return -ENOMEM;
        plan->ops = v;
        *cap = nc;
    }
    plan->ops[plan->nops++] = op;
    return 0;
}

static bool op_synthetic(const struct mount_op *op)
{
    return op->kind == OP_ROOT_MASK || op->kind == OP_MASK_DIR || op->kind == OP_TMPFS ||
           op->kind == OP_DEV || op->kind == OP_PROC;
}

static const char *op_name(enum op_kind k)
{
    switch (k) {
    case OP_ROOT_RO: return "root, read-only";
    case OP_ROOT_RW: return "root, writable";
    case OP_ROOT_MASK: return "root hidden (empty)";
    case OP_BIND_RO: return "read-only";
    case OP_BIND_RW: return "writable";
    case OP_MASK_DIR: return "hidden directory (empty, mode 000)";
    case OP_MASK_FILE: return "hidden file (mode 000)";
    case OP_TMPFS: return "private tmpfs";
    case OP_DEV: return "fresh /dev";
    case OP_PROC: return "fresh /proc";
    case OP_PIN_LINK: return "protected symlink, pinned";
    case OP_WAYPOINT: return "name on the way, recreated";
    }
    return "?";
}

static int build_ops(struct sandbox_plan *plan, struct nodes *ns, bool disabled,
                     cordon_log_fn log, void *ud, struct cordon_error *err)
{
    size_t cap = 0;
    struct state root = { .vis = true, .rvis = true };
    size_t first = 0;
    if (ns->n > 0 && strcmp(ns->v[0].path, "/") == 0) {
        unsigned f = ns->v[0].flags;
        if (f & (F_ALLOW_READ | F_ALLOW_WRITE))
            root.vis = true;
        else if (f & F_DENY_READ)
            root.vis = false;
        root.rvis = root.vis;
        root.aw = f & F_ALLOW_WRITE;
        root.dw = f & F_DENY_WRITE;
        first = 1;
    }
    struct mount_op rop = { .path = "/", .parent = -1, .is_dir = true };
    if (disabled)
        rop.kind = OP_ROOT_RW;
    else if (!root.vis)
        rop.kind = OP_ROOT_MASK;
    else
        rop.kind = state_wr(root) ? OP_ROOT_RW : OP_ROOT_RO;
    int r = emit(plan, &cap, rop);
    if (r < 0)
        return cordon_err_set(err, -r, "out of memory");

    /* Stacks of ancestors: rule nodes (for inherited state) and emitted ops
     * (for the content a mount point lives in). */
    _cleanup_free_ size_t *nstack = calloc(ns->n + 1, sizeof(size_t));
    _cleanup_free_ struct state *sstack = calloc(ns->n + 1, sizeof(struct state));
    _cleanup_free_ int *ostack = calloc(ns->n + 2, sizeof(int));
    if (!nstack || !sstack || !ostack)
        /* _cleanup_free_ frees them; the analyzer does not model cleanup */
        /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
        return cordon_err_set(err, ENOMEM, "out of memory");
    size_t nsp = 0, osp = 0;
    ostack[osp++] = 0;

    for (size_t i = first; i < ns->n; i++) {
        struct node *n = &ns->v[i];
        while (nsp > 0 && !cordon_path_is_prefix(ns->v[nstack[nsp - 1]].path, n->path))
            nsp--;
        struct state parent = nsp > 0 ? sstack[nsp - 1] : root;
        struct state s = parent;
        if (n->flags & (F_ALLOW_READ | F_ALLOW_WRITE))
            s.vis = s.rvis = true;
        else if (n->flags & F_DENY_READ)
            s.vis = s.rvis = false;
        else if (n->flags & F_KEEP)
            s.vis = s.rvis; /* bound through only if the rules let it be read */
        if (n->flags & F_TMP)
            s.vis = false; /* the host's /tmp content is hidden below it */
        s.aw |= !!(n->flags & F_ALLOW_WRITE);
        s.dw |= !!(n->flags & (F_DENY_WRITE | F_PROTECT));
        nstack[nsp] = i;
        sstack[nsp] = s;
        nsp++;

        while (osp > 1 && !cordon_path_is_prefix(plan->ops[ostack[osp - 1]].path, n->path))
            osp--;
        int pidx = ostack[osp - 1];
        const struct mount_op *pop = &plan->ops[pidx];
        bool synth = op_synthetic(pop);
        struct mount_op op = {
            .path = n->path, .parent = pidx, .create = synth, .is_dir = n->is_dir,
            .dev = n->dev, .ino = n->ino,
        };

        if (n->flags & (F_TMP | F_DEV | F_PROC)) {
            op.kind = (n->flags & F_TMP) ? OP_TMPFS : (n->flags & F_DEV) ? OP_DEV : OP_PROC;
            op.is_dir = true;
        } else if (disabled) {
            continue;
        } else if ((n->flags & F_WAYPOINT) && !(n->flags & ~(F_WAYPOINT | F_LINK)) && synth) {
            /* On the way to an allowed path, in content the host's does not
             * show: the link itself (same text) or the directory. Nothing is
             * mounted on it, and nothing below it hangs on it. */
            op.kind = OP_WAYPOINT;
            op.is_dir = !n->target;
            op.target = n->target;
            if (plan->ops[pidx].kind == OP_MASK_DIR || plan->ops[pidx].kind == OP_ROOT_MASK)
                plan->ops[pidx].mode = 0111; /* traversable, not listable */
            r = emit(plan, &cap, op);
            if (r < 0)
                return cordon_err_set(err, -r == E2BIG ? E2BIG : ENOMEM,
                                      "the policy needs too many mounts");
            continue;
        } else if (n->flags & F_LINK) {
            /* Only where it could be replaced: visible, in writable host
             * content. */
            bool pwr = pop->kind == OP_ROOT_RW || pop->kind == OP_BIND_RW;
            if (synth || !s.vis || !pwr)
                continue;
            op.kind = OP_PIN_LINK;
            op.is_dir = false;
            r = emit(plan, &cap, op);
            if (r < 0)
                return cordon_err_set(err, -r == E2BIG ? E2BIG : ENOMEM,
                                      "the policy needs too many mounts");
            continue; /* a symlink holds no further mounts */
        } else if (n->flags == F_WAYPOINT) {
            continue; /* in the host's content, which shows it as it is */
        } else if (synth) {
            if (!s.vis)
                continue; /* already hidden by the synthetic content */
            op.kind = state_wr(s) ? OP_BIND_RW : OP_BIND_RO;
        } else {
            bool pvis = pop->kind != OP_MASK_DIR && pop->kind != OP_MASK_FILE;
            bool pwr = pop->kind == OP_ROOT_RW || pop->kind == OP_BIND_RW;
            /* A pin keeps the state but makes a mount point, so the
             * directory cannot be renamed or removed (EBUSY); it matters only
             * where the parent is writable. */
            bool pin = (n->flags & F_PIN) && pwr && s.vis;
            if (s.vis == pvis && state_wr(s) == pwr && !pin)
                continue;
            if (!s.vis)
                op.kind = n->is_dir ? OP_MASK_DIR : OP_MASK_FILE;
            else
                op.kind = state_wr(s) ? OP_BIND_RW : OP_BIND_RO;
            op.pin = pin && s.vis == pvis && state_wr(s) == pwr;
            /* Same content as what it sits in, only read-only or pinned:
             * clone it from the view itself (no second look at the host). */
            op.from_view = s.vis && pvis && (op.kind == OP_BIND_RO || op.pin);
        }
        if (op.create && (plan->ops[pidx].kind == OP_MASK_DIR ||
                          plan->ops[pidx].kind == OP_ROOT_MASK))
            plan->ops[pidx].mode = 0111; /* traversable, not listable */
        r = emit(plan, &cap, op);
        if (r == -E2BIG)
            return cordon_err_set(err, E2BIG, "the policy needs more than %d mounts",
                                  PLAN_MAX_OPS);
        if (r < 0)
            return cordon_err_set(err, -r, "out of memory");
        ostack[osp++] = (int)(plan->nops - 1);
        pop = NULL;
    }
    for (size_t i = 0; i < plan->nops; i++) {
        const struct mount_op *op = &plan->ops[i];
        if (op->kind == OP_WAYPOINT)
            plog(log, ud, "mount %s: none; %s%s made again in a tmpfs, on the way to an "
                 "allowed path", op->path, op->target ? "symlink to " : "directory",
                 op->target ? op->target : "");
        else
            plog(log, ud, "mount %s: %s%s", op->path, op_name(op->kind),
                 op->create ? " (mount point created in a tmpfs)" : "");
    }
    return 0;
}

#define PROXY_URL "http://127.0.0.1:3128"
#define SOCKS_URL "socks5h://127.0.0.1:1080"
static const char *const proxy_env[] = {
    "HTTP_PROXY=" PROXY_URL, "HTTPS_PROXY=" PROXY_URL, "http_proxy=" PROXY_URL,
    "https_proxy=" PROXY_URL,
    /* Deliberately the HTTP URL, not socks5h: httpx and gRPC break on it (srt). */
    "ALL_PROXY=" PROXY_URL, "all_proxy=" PROXY_URL, "GRPC_PROXY=" PROXY_URL,
    "grpc_proxy=" PROXY_URL,
    "NO_PROXY=localhost,127.0.0.1,::1", "no_proxy=localhost,127.0.0.1,::1",
    "FTP_PROXY=" SOCKS_URL, "ftp_proxy=" SOCKS_URL, "RSYNC_PROXY=127.0.0.1:1080",
    "DOCKER_HTTP_PROXY=" PROXY_URL, "DOCKER_HTTPS_PROXY=" PROXY_URL,
    "CLOUDSDK_PROXY_TYPE=http", "CLOUDSDK_PROXY_ADDRESS=127.0.0.1", "CLOUDSDK_PROXY_PORT=3128",
    /* Node's fetch honours the variables only with this (Node 22 and later). */
    "NODE_USE_ENV_PROXY=1",
};
static const char java_opts[] =
    "-Dhttp.proxyHost=127.0.0.1 -Dhttp.proxyPort=3128 -Dhttps.proxyHost=127.0.0.1 "
    "-Dhttps.proxyPort=3128 -Dhttp.nonProxyHosts=localhost|127.0.0.1|[::1]";

/* Variables of the caller's that name a proxy (and may hold a parent
 * proxy's password) without being among those cordon sets: gcloud's
 * CLOUDSDK_PROXY_USERNAME and _PASSWORD (and any other CLOUDSDK_PROXY_),
 * npm's proxy settings. Gone, so the sandbox's clients use cordon's. */
static const char *const proxy_prefixes[] = {
    "CLOUDSDK_PROXY_", "npm_config_proxy=", "npm_config_https_proxy=",
    "NPM_CONFIG_PROXY=", "NPM_CONFIG_HTTPS_PROXY=",
};

static bool is_proxy_var(const char *e)
{
    for (size_t i = 0; i < ARRAY_SIZE(proxy_env); i++) {
        const char *eq = strchr(proxy_env[i], '=');
        size_t n = (size_t)(eq - proxy_env[i]) + 1;
        if (strncmp(e, proxy_env[i], n) == 0)
            return true;
    }
    for (size_t i = 0; i < ARRAY_SIZE(proxy_prefixes); i++)
        if (strncmp(e, proxy_prefixes[i], strlen(proxy_prefixes[i])) == 0)
            return true;
    return strncmp(e, "JAVA_TOOL_OPTIONS=", 18) == 0 || strncmp(e, "GIT_SSH_COMMAND=", 16) == 0;
}

/* The JVM's proxy properties: the caller's are dropped from its
 * JAVA_TOOL_OPTIONS (the JVM takes the last of a repeated -D, and a parent
 * proxy's host or password must not reach the sandbox). */
static const char *const java_proxy_props[] = {
    "http.proxyHost",   "http.proxyPort",   "http.proxyUser",   "http.proxyPassword",
    "https.proxyHost",  "https.proxyPort",  "https.proxyUser",  "https.proxyPassword",
    "http.nonProxyHosts", "ftp.proxyHost",  "ftp.proxyPort",    "ftp.nonProxyHosts",
    "socksProxyHost",   "socksProxyPort",   "socksProxyVersion", "java.net.socks.username",
    "java.net.socks.password", "java.net.useSystemProxies",
};

/* The caller's JAVA_TOOL_OPTIONS without its proxy properties: options are
 * split at white space outside quotes (as the JVM reads the variable); an
 * option "-D<property>[=...]", quoted or not, of java_proxy_props is left
 * out. Returns a new string, or NULL without memory. */
static char *java_opts_without_proxy(const char *v)
{
    size_t n = strlen(v);
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        while (i < n && isspace((unsigned char)v[i]))
            i++;
        size_t a = i;
        char q = 0;
        while (i < n && (q || !isspace((unsigned char)v[i]))) {
            if (q && v[i] == q)
                q = 0;
            else if (!q && (v[i] == '"' || v[i] == '\''))
                q = v[i];
            i++;
        }
        if (i == a)
            break;
        size_t o = a;
        while (o < i && (v[o] == '"' || v[o] == '\''))
            o++;
        bool drop = false;
        for (size_t p = 0; !drop && p < ARRAY_SIZE(java_proxy_props); p++) {
            size_t pl = strlen(java_proxy_props[p]);
            drop = i - o >= 2 + pl && strncmp(v + o, "-D", 2) == 0 &&
                   strncmp(v + o + 2, java_proxy_props[p], pl) == 0 &&
                   (o + 2 + pl == i || strchr("=\"'", v[o + 2 + pl]));
        }
        if (drop)
            continue;
        if (k)
            out[k++] = ' ';
        memcpy(out + k, v + a, i - a);
        k += i - a;
    }
    out[k] = '\0';
    return out;
}

/* The trust bundle for interception: cordon's CA first, then the system's
 * roots and extraCaCertPaths (CERTIFICATE blocks only; a missing file is
 * skipped, as in srt). */
static int append_certs(FILE *out, const char *path)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -1;
    char line[4096];
    bool in = false;
    while (fgets(line, sizeof(line), f)) {
        if (!in && strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0)
            in = true;
        if (in)
            fputs(line, out);
        if (in && strncmp(line, "-----END CERTIFICATE-----", 25) == 0)
            in = false;
    }
    fclose(f);
    return 0;
}

static int build_trust_bundle(struct sandbox_plan *plan, const cordon_policy *p,
                              const char *ca_pem, cordon_log_fn log, void *ud,
                              struct cordon_error *err)
{
    FILE *m = open_memstream(&plan->trust_bundle, &plan->trust_len);
    if (!m)
        return cordon_err_set(err, ENOMEM, "out of memory");
    fputs(ca_pem, m);
    if (append_certs(m, SYSTEM_TRUST_BUNDLE) < 0)
        plog(log, ud, "%s: no system trust bundle to add", SYSTEM_TRUST_BUNDLE);
    for (size_t i = 0; i < p->net.tls_extra_ca.n; i++)
        if (append_certs(m, p->net.tls_extra_ca.v[i]) < 0)
            plog(log, ud, "tlsTerminate.extraCaCertPaths: %s: missing, skipped",
                 p->net.tls_extra_ca.v[i]);
    if (fclose(m) != 0)
        return cordon_err_set(err, ENOMEM, "out of memory");
    return 0;
}

/* The variables srt points at its bundle (srt-compat.md 3.5). */
static const char *const ca_vars[] = {
    "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "GIT_SSL_CAINFO", "PIP_CERT", "AWS_CA_BUNDLE", "CARGO_HTTP_CAINFO", "DENO_CERT",
    "CLOUDSDK_CORE_CUSTOM_CA_CERTS_FILE", "NIX_SSL_CERT_FILE",
};

static bool is_ca_var(const char *e)
{
    for (size_t i = 0; i < ARRAY_SIZE(ca_vars); i++) {
        size_t n = strlen(ca_vars[i]);
        if (strncmp(e, ca_vars[i], n) == 0 && e[n] == '=')
            return true;
    }
    return false;
}

/* `environment`: a variable is dropped when its name matches a drop pattern
 * and no keep pattern. */
static bool env_dropped(const cordon_policy *p, const char *entry)
{
    char name[256];
    const char *eq = strchr(entry, '=');
    size_t len = eq ? (size_t)(eq - entry) : strlen(entry);
    if (len >= sizeof(name))
        return false;
    memcpy(name, entry, len);
    name[len] = '\0';
    bool drop = false;
    for (size_t i = 0; i < p->env_drop.n && !drop; i++)
        drop = fnmatch(p->env_drop.v[i], name, 0) == 0;
    for (size_t i = 0; i < p->env_keep.n && drop; i++)
        drop = fnmatch(p->env_keep.v[i], name, 0) != 0;
    return drop;
}

/* Environment of the command: the caller's, plus what the sandbox promises. */
/* Is the variable of env entry e named in list (entries "NAME" or "NAME=...")? */
static bool env_named(char *const *list, size_t n, const char *e)
{
    const char *eq = strchr(e, '=');
    size_t len = eq ? (size_t)(eq - e) : strlen(e);
    for (size_t i = 0; i < n; i++)
        if (strncmp(list[i], e, len) == 0 && (list[i][len] == '\0' || list[i][len] == '='))
            return true;
    return false;
}

/* What credentials change in the plan: fake and hidden files, and the names
 * init wipes from its own copy of the environment. */
static int build_creds(struct sandbox_plan *plan, const struct cred_store *cs,
                       struct cordon_error *err)
{
    if (!cs)
        return 0;
    if (cs->nfiles) {
        plan->fakes = calloc(cs->nfiles, sizeof(*plan->fakes));
        if (!plan->fakes)
            return cordon_err_set(err, ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < cs->nfiles; i++) {
        const struct cred_file *f = &cs->files[i];
        struct fake_bind *fb = &plan->fakes[plan->nfakes++];
        fb->path = strdup(f->path);
        fb->content = f->deny ? NULL : malloc(f->len ? f->len : 1);
        if (!fb->path || (!f->deny && !fb->content))
            return cordon_err_set(err, ENOMEM, "out of memory");
        if (!f->deny)
            memcpy(fb->content, f->content, f->len);
        fb->len = f->len;
        fb->dev = f->dev;
        fb->ino = f->ino;
        fb->deny = f->deny;
    }
    size_t n = cs->nenv_set + cs->nenv_unset;
    if (n == 0)
        return 0;
    plan->scrub_env = calloc(n + 1, sizeof(char *));
    if (!plan->scrub_env)
        return cordon_err_set(err, ENOMEM, "out of memory");
    size_t k = 0;
    for (size_t i = 0; i < cs->nenv_set; i++)
        plan->scrub_env[k++] = strndup(cs->env_set[i], strcspn(cs->env_set[i], "="));
    for (size_t i = 0; i < cs->nenv_unset; i++)
        plan->scrub_env[k++] = strdup(cs->env_unset[i]);
    for (size_t i = 0; i < k; i++)
        if (!plan->scrub_env[i])
            return cordon_err_set(err, ENOMEM, "out of memory");
    return 0;
}

static int build_env(struct sandbox_plan *plan, const cordon_policy *p, char *const *envp,
                     bool private_tmp, const struct cred_store *creds, struct cordon_error *err)
{
    size_t n = 0;
    while (envp && envp[n])
        n++;
    size_t extra = 64 + 4 * p->git_safe_directories.n * 2 + (creds ? creds->nenv_set : 0);
    char **out = calloc(n + extra + 1, sizeof(char *));
    if (!out)
        return cordon_err_set(err, ENOMEM, "out of memory");
    size_t k = 0;
    bool have_git_count = p->git_safe_directories.n > 0;
    for (size_t i = 0; i < n; i++) {
        const char *e = envp[i];
        if (strncmp(e, "SANDBOX_RUNTIME=", 16) == 0)
            continue;
        /* Masked variables get their fake below; denied ones are gone. */
        if (creds && (env_named(creds->env_set, creds->nenv_set, e) ||
                      env_named(creds->env_unset, creds->nenv_unset, e)))
            continue;
        if (!(plan->disabled & LAYER_ENV) && env_dropped(p, e))
            continue;
        if (private_tmp && strncmp(e, "TMPDIR=", 7) == 0)
            continue;
        if (is_proxy_var(e))
            continue;
        if (plan->trust_bundle && is_ca_var(e))
            continue;
        if (have_git_count && (strncmp(e, "GIT_CONFIG_COUNT=", 17) == 0 ||
                               strncmp(e, "GIT_CONFIG_KEY_", 15) == 0 ||
                               strncmp(e, "GIT_CONFIG_VALUE_", 17) == 0))
            continue;
        out[k] = strdup(e);
        if (!out[k++])
            goto nomem;
    }
    out[k] = strdup("SANDBOX_RUNTIME=1");
    if (!out[k++])
        goto nomem;
    for (size_t i = 0; creds && i < creds->nenv_set; i++) {
        out[k] = strdup(creds->env_set[i]);
        if (!out[k++])
            goto nomem;
    }
    for (size_t i = 0; plan->trust_bundle && i < ARRAY_SIZE(ca_vars); i++) {
        if (asprintf(&out[k], "%s=%s", ca_vars[i], CORDON_TRUST_IN_SANDBOX) < 0)
            goto nomem;
        k++;
    }
    /* The proxy, for every client that honours the usual variables
     * (srt-compat.md 3.5, without credentials: the listeners live in the
     * sandbox's own network namespace, so nobody else can reach them). */
    for (size_t i = 0; i < ARRAY_SIZE(proxy_env); i++) {
        out[k] = strdup(proxy_env[i]);
        if (!out[k++])
            goto nomem;
    }
    {
        const char *jto = NULL;
        for (size_t i = 0; i < n; i++)
            if (strncmp(envp[i], "JAVA_TOOL_OPTIONS=", 18) == 0)
                jto = envp[i] + 18;
        /* cordon's properties last: the JVM takes the last of a repeated
         * -D, so nothing of the caller's can override them. */
        char *kept = java_opts_without_proxy(jto ? jto : "");
        if (!kept)
            goto nomem;
        int w = asprintf(&out[k], "JAVA_TOOL_OPTIONS=%s%s%s", kept, *kept ? " " : "", java_opts);
        explicit_bzero(kept, strlen(kept));
        free(kept);
        if (w < 0)
            goto nomem;
        k++;
        if (plan->exe_path &&
            asprintf(&out[k], "GIT_SSH_COMMAND=ssh -o ControlMaster=no -o ControlPath=none "
                              "-o ProxyCommand='%s connect %%h %%p'", CORDON_EXE_IN_SANDBOX) < 0)
            goto nomem;
        if (plan->exe_path)
            k++;
    }
    if (private_tmp) {
        out[k] = strdup("TMPDIR=/tmp");
        if (!out[k++])
            goto nomem;
    }
    if (have_git_count) {
        /* srt's git.safeDirectories: both <dir> and "<dir>/" plus "*", collapsing to
         * "*" past 8 entries (srt-compat.md 1.4). */
        size_t nd = p->git_safe_directories.n;
        size_t cnt = nd > 8 ? 1 : nd * 2;
        if (asprintf(&out[k], "GIT_CONFIG_COUNT=%zu", cnt) < 0)
            goto nomem;
        k++;
        for (size_t i = 0; i < cnt; i++) {
            const char *d = nd > 8 ? "*" : p->git_safe_directories.v[i / 2];
            if (asprintf(&out[k], "GIT_CONFIG_KEY_%zu=safe.directory", i) < 0)
                goto nomem;
            k++;
            int w = nd > 8 || i % 2 == 0 ? asprintf(&out[k], "GIT_CONFIG_VALUE_%zu=%s", i, d)
                                         : asprintf(&out[k], "GIT_CONFIG_VALUE_%zu=%s/*", i, d);
            if (w < 0)
                goto nomem;
            k++;
        }
    }
    out[k] = NULL;
    plan->envp = out;
    return 0;
nomem:
    out[k] = NULL;
    cordon_strv_free(out);
    return cordon_err_set(err, ENOMEM, "out of memory");
}

/* Landlock rules follow the mount plan: read on the visible root (or on each
 * visible subtree when the root is hidden), everything beneath write roots,
 * the private /tmp and /dev, read and write of existing files in /proc. */
static int build_landlock(struct sandbox_plan *plan, struct cordon_error *err)
{
    plan->ll = calloc(plan->nops + 1, sizeof(*plan->ll));
    if (!plan->ll)
        return cordon_err_set(err, ENOMEM, "out of memory");
    bool root_hidden = plan->ops[0].kind == OP_ROOT_MASK;
    for (size_t i = 0; i < plan->nops; i++) {
        const struct mount_op *op = &plan->ops[i];
        struct ll_rule r = { .path = op->path };
        switch (op->kind) {
        case OP_ROOT_RO: r.kind = LL_READ; break;
        case OP_ROOT_RW: r.kind = LL_WRITE; break;
        case OP_BIND_RW:
            if (op->pin)
                continue; /* inside a write root already */
            r.kind = LL_WRITE;
            break;
        case OP_TMPFS: r.kind = LL_WRITE; break;
        case OP_DEV: r.kind = LL_DEV; break;
        case OP_PROC: r.kind = LL_PROC; break;
        case OP_BIND_RO:
            if (!root_hidden)
                continue;
            r.kind = LL_READ;
            break;
        default:
            continue;
        }
        plan->ll[plan->nll++] = r;
    }
    return 0;
}

static int build_hardening(struct sandbox_plan *plan, const cordon_policy *p,
                           cordon_log_fn log, void *ud, struct cordon_error *err)
{
    if (!(plan->disabled & LAYER_SECCOMP)) {
        /* Denials and writes go to the supervisor's listener when the
         * kernel has user notification with "continue" (5.5): that is how
         * they are recorded. */
        uint32_t act = SECCOMP_RET_USER_NOTIF;
        struct seccomp_notif_sizes sz;
        bool notify = syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &act) == 0 &&
                      syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sz) == 0;
        if (!notify && log)
            log(ud, CORDON_LOG_WARN, "seccomp user notification is not available: refused "
                                     "syscalls and writes are not recorded (see cordon doctor)");
        struct seccomp_opts so = {
            .allow_nested_userns = p->allow_nested_userns,
            .allow_unix_sockets = p->net.allow_all_unix_sockets,
            .notify_denials = notify,
            .observe_writes = notify,
            .emulate_unix_connect = p->net.unix_sockets.n > 0 && !p->net.allow_all_unix_sockets,
        };
        /* allowUnixSockets: connect() is performed by the supervisor
         * (unixsock.h), which needs the listener and pidfd_getfd(2) (5.6).
         * Without them the paths could not be judged: refuse to run. */
        if (so.emulate_unix_connect &&
            (!notify || (syscall(SYS_pidfd_getfd, -1, 0, 0) < 0 && errno == ENOSYS)))
            return cordon_err_set(err, ENOSYS, "network.allowUnixSockets needs seccomp user "
                                               "notification and pidfd_getfd (Linux 5.6 or "
                                               "later; see cordon doctor)");
        plan->seccomp_opts = so;
        int r = harden_seccomp_build(&so, &plan->seccomp, err);
        if (r < 0)
            return cordon_err_prefix(err, "seccomp");
    }
    if (!(plan->disabled & LAYER_LANDLOCK)) {
        plan->landlock_abi = harden_landlock_abi();
        if (plan->landlock_abi <= 0 && log)
            log(ud, CORDON_LOG_WARN, "Landlock is not available on this kernel; running "
                                     "without it (see cordon doctor)");
        else
            plog(log, ud, "Landlock ABI %d", plan->landlock_abi);
        int r = build_landlock(plan, err);
        if (r < 0)
            return r;
    }
    if (!(plan->disabled & LAYER_LIMITS)) {
        for (int i = 0; i < LIM_COUNT; i++) {
            plan->limits[i].set = p->limits[i].set;
            plan->limits[i].value = p->limits[i].value == ~0ULL ? RLIM_INFINITY
                                                                : (rlim_t)p->limits[i].value;
        }
    }
    return 0;
}

/* git must not show placeholders as untracked files inside the sandbox
 * (srt's "ghost files" in `git status`). */
static int build_excludes(struct sandbox_plan *plan, const struct protect_set *prot,
                          struct cordon_error *err)
{
    if (!prot || !prot->have_placeholders)
        return 0;
    for (size_t r = 0; r < prot->nroots; r++) {
        const char *root = prot->roots[r];
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/.git/info/exclude", root) >= (int)sizeof(path))
            continue;
        struct stat st;
        if (lstat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > 1 << 20)
            continue;
        FILE *f = fopen(path, "re");
        if (!f)
            continue;
        char *buf = NULL;
        size_t len = 0;
        FILE *mem = open_memstream(&buf, &len);
        if (!mem) {
            fclose(f);
            return cordon_err_set(err, ENOMEM, "out of memory");
        }
        char chunk[4096];
        size_t k;
        while ((k = fread(chunk, 1, sizeof(chunk), f)) > 0)
            fwrite(chunk, 1, k, mem);
        fclose(f);
        fprintf(mem, "\n# cordon: placeholders that protect these names while it runs\n");
        size_t rl = strlen(root);
        bool any = false;
        for (size_t i = 0; i < prot->nplaceholders; i++) {
            const char *ph = prot->placeholders[i];
            if (!cordon_path_is_prefix(root, ph) || strlen(ph) <= rl)
                continue;
            fprintf(mem, "%s\n", ph + rl);
            any = true;
        }
        fclose(mem);
        if (!any) {
            free(buf);
            continue;
        }
        struct exclude_bind *v = realloc(plan->excludes, (plan->nexcludes + 1) * sizeof(*v));
        if (!v) {
            free(buf);
            return cordon_err_set(err, ENOMEM, "out of memory");
        }
        plan->excludes = v;
        v[plan->nexcludes++] = (struct exclude_bind){
            .path = strdup(path), .content = buf, .len = len, .dev = st.st_dev, .ino = st.st_ino,
        };
        if (!v[plan->nexcludes - 1].path)
            return cordon_err_set(err, ENOMEM, "out of memory");
    }
    return 0;
}

static bool is_real_dir(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int sandbox_plan_build(const cordon_policy *p, const char *cwd, char *const *argv,
                       char *const *envp, unsigned layers_off, const struct protect_set *prot,
                       const char *ca_pem, const struct cred_store *creds, cordon_log_fn log,
                       void *ud, struct sandbox_plan *plan, struct cordon_error *err)
{
    *plan = (struct sandbox_plan){ 0 };
    struct nodes ns = { 0 };
    int r;

    plan->disabled = layers_off;

    plan->uid = geteuid();
    plan->gid = getegid();
    plan->allow_nested_userns = p->allow_nested_userns;

    char realcwd[PATH_MAX];
    if (!realpath(cwd, realcwd))
        return cordon_err_sys(err, errno, "working directory %s", cwd);
    plan->cwd = strdup(realcwd);
    if (!plan->cwd)
        return cordon_err_set(err, ENOMEM, "out of memory");

    bool disabled = p->fs.disabled;
    if (!disabled) {
        if ((r = add_list(&ns, &p->fs.deny_read, F_DENY_READ, log, ud, err)) < 0 ||
            (r = add_list(&ns, &p->fs.allow_read, F_ALLOW_READ, log, ud, err)) < 0 ||
            (r = add_list(&ns, &p->fs.allow_write, F_ALLOW_WRITE, log, ud, err)) < 0 ||
            (r = add_list(&ns, &p->fs.deny_write, F_DENY_WRITE, log, ud, err)) < 0 ||
            (r = add_implicit_writes(&ns, p, log, ud, err)) < 0)
            goto fail;
        for (size_t i = 0; prot && i < prot->n; i++) {
            const struct protect_item *it = &prot->v[i];
            struct stat st;
            if (lstat(it->path, &st) < 0 || under_fresh_fs(it->path))
                continue;
            unsigned f = it->kind == PROT_RO ? F_PROTECT : it->kind == PROT_PIN ? F_PIN : F_LINK;
            if (it->kind == PROT_RO)
                plog(log, ud, "protect %s", it->path);
            if (nodes_add(&ns, it->path, f, &st) < 0)
                goto nomem;
        }
    } else {
        plog(log, ud, "filesystem.disabled: the host's / is writable; no filesystem rules");
    }

    /* Private /tmp, unless /tmp is a write root (an allowWrite at or above it
     * and no denyWrite at or above it) or is not a plain directory. */
    bool private_tmp = false;
    if (!disabled && is_real_dir("/tmp")) {
        bool aw = false, dw = false;
        for (size_t i = 0; i < ns.n; i++) {
            if (!cordon_path_is_prefix(ns.v[i].path, "/tmp"))
                continue;
            aw |= !!(ns.v[i].flags & F_ALLOW_WRITE);
            dw |= !!(ns.v[i].flags & F_DENY_WRITE);
        }
        private_tmp = !(aw && !dw);
        if (private_tmp) {
            if (nodes_add(&ns, "/tmp", F_TMP, NULL) < 0)
                goto nomem;
            if (cordon_path_is_prefix("/tmp", realcwd) && strcmp(realcwd, "/tmp") != 0) {
                struct stat st;
                if (stat(realcwd, &st) == 0 && nodes_add(&ns, realcwd, F_KEEP, &st) < 0)
                    goto nomem;
            }
        } else {
            plog(log, ud, "/tmp is a write root: the host's /tmp is used");
        }
    }
    if (!is_real_dir("/dev") || !is_real_dir("/proc")) {
        r = cordon_err_set(err, ENOTDIR, "/dev and /proc must be directories on the host");
        goto fail;
    }
    if (nodes_add(&ns, "/dev", F_DEV, NULL) < 0 || nodes_add(&ns, "/proc", F_PROC, NULL) < 0)
        goto nomem;

    if (ns.n > 0) {
        qsort(ns.v, ns.n, sizeof(*ns.v), cmp_nodes);
        merge_nodes(&ns);
    }
    r = build_ops(plan, &ns, disabled, log, ud, err);
    /* The ops point into node paths: hand them to the plan. */
    for (size_t i = 0; i < ns.n; i++) {
        bool kept = !ns.v[i].target || plan_keep(plan, ns.v[i].target) == 0;
        if (kept)
            ns.v[i].target = NULL; /* the plan's now */
        if (!kept || plan_keep(plan, ns.v[i].path) < 0) {
            for (size_t j = i; j < ns.n; j++) {
                free(ns.v[j].path);
                free(ns.v[j].target);
            }
            free(ns.v);
            ns.v = NULL;
            sandbox_plan_free(plan);
            return cordon_err_set(err, ENOMEM, "out of memory");
        }
    }
    free(ns.v);
    ns = (struct nodes){ 0 };
    if (r < 0) {
        sandbox_plan_free(plan);
        return r;
    }

    size_t argc = 0;
    while (argv[argc])
        argc++;
    if (argc == 0) {
        sandbox_plan_free(plan);
        return cordon_err_set(err, EINVAL, "no command given");
    }
    /* Two spare slots: a script without #! runs as "/bin/sh path args" (ENOEXEC,
     * as execvp does). */
    plan->argv = calloc(argc + 3, sizeof(char *));
    if (!plan->argv)
        goto nomem_plan;
    plan->argc = argc;
    for (size_t i = 0; i < argc; i++) {
        plan->argv[i + 1] = strdup(argv[i]);
        if (!plan->argv[i + 1])
            goto nomem_plan;
    }
    /* argv[0] is reserved for the ENOEXEC fallback; the command starts at 1. */
    plan->argv[0] = strdup("/bin/sh");
    if (!plan->argv[0])
        goto nomem_plan;

    /* cordon's own binary, bound read-only at /dev/cordon for helpers such as
     * the ssh ProxyCommand ("cordon connect"). */
    {
        char exe[PATH_MAX];
        if (realpath("/proc/self/exe", exe)) {
            plan->exe_path = strdup(exe);
            if (!plan->exe_path)
                goto nomem_plan;
        }
    }
    if (ca_pem) {
        r = build_trust_bundle(plan, p, ca_pem, log, ud, err);
        if (r < 0) {
            sandbox_plan_free(plan);
            return r;
        }
    }
    plan->scratch = calloc(plan->nops, sizeof(int));
    if (!plan->scratch)
        goto nomem_plan;
    plan->src_envp = envp;
    r = build_env(plan, p, envp, private_tmp, creds, err);
    if (r == 0)
        r = build_creds(plan, creds, err);
    if (r < 0) {
        sandbox_plan_free(plan);
        return r;
    }
    r = build_hardening(plan, p, log, ud, err);
    if (r == 0)
        r = build_excludes(plan, prot, err);
    if (r == 0 && p->net.transparent)
        r = capture_plan_build(&plan->capture, &p->net.rules, err);
    plan->host_ports = p->net.host_ports;
    plan->nhost_ports = p->net.nhost_ports;
    if (r < 0) {
        sandbox_plan_free(plan);
        return r;
    }
    return 0;

nomem:
    r = cordon_err_set(err, ENOMEM, "out of memory");
fail:
    for (size_t i = 0; i < ns.n; i++) {
        free(ns.v[i].path);
        free(ns.v[i].target);
    }
    free(ns.v);
    sandbox_plan_free(plan);
    return r;
nomem_plan:
    sandbox_plan_free(plan);
    return cordon_err_set(err, ENOMEM, "out of memory");
}

void sandbox_plan_free(struct sandbox_plan *plan)
{
    free(plan->ops);
    free(plan->scratch);
    free(plan->ll);
    free(plan->exe_path);
    free(plan->trust_bundle);
    for (size_t i = 0; i < plan->nexcludes; i++) {
        free(plan->excludes[i].path);
        free(plan->excludes[i].content);
    }
    free(plan->excludes);
    for (size_t i = 0; i < plan->nfakes; i++) {
        free(plan->fakes[i].path);
        free(plan->fakes[i].content);
    }
    free(plan->fakes);
    cordon_strv_free(plan->scrub_env);
    harden_seccomp_free(&plan->seccomp);
    for (size_t i = 0; i < plan->npaths; i++)
        free(plan->paths[i]);
    free(plan->paths);
    free(plan->cwd);
    if (plan->argv) {
        for (size_t i = 0; i < plan->argc + 2; i++)
            free(plan->argv[i]);
        free(plan->argv);
    }
    cordon_strv_free(plan->envp);
    capture_plan_free(&plan->capture);
    *plan = (struct sandbox_plan){ 0 };
}
