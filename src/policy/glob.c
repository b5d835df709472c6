/* glob.c: gitignore-style patterns in the four filesystem lists, expanded
 * when cordon starts.
 *
 * Owns: matching `*` (any characters but "/"), `?`, `[...]` (fnmatch(3),
 * leading dots included, as in .gitignore) and `**` (zero or more whole
 * directories) against the filesystem, from the pattern's literal base
 * directory. A pattern must start from a literal directory below "/": one
 * that does not (a first component such as "**" or "*.d") is an error at load
 * time, never a silent skip (srt skips it, and a skipped deny hides nothing).
 *
 * Expansion happens once, at start. Files created later are not matched;
 * docs/threat-model.md says why that is safe for each list. Symbolic links
 * are matched as entries but never descended through by `**` (no loops, no
 * escape from the base directory); bounds on entries visited and matches keep
 * a pattern from turning every start into a full-disk walk.
 */
#include "policy.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define GLOB_MAX_VISITED 1000000
#define GLOB_MAX_MATCHES 10000

bool cordon_path_has_glob(const char *s)
{
    return strpbrk(s, "*?[") != NULL;
}

/* Length of the literal directory prefix of an absolute pattern: everything
 * up to the last "/" before the first component holding a glob character. */
size_t cordon_glob_base_len(const char *pattern)
{
    const char *g = strpbrk(pattern, "*?[");
    if (!g)
        return strlen(pattern);
    while (g > pattern && *g != '/')
        g--;
    return (size_t)(g - pattern);
}

struct gctx {
    int (*cb)(void *ud, const char *path);
    void *ud;
    unsigned long visited, matches;
    struct cordon_error *err;
    const char *pattern;
};

static int match_from(struct gctx *g, char *path, size_t plen, const char *rest);

static int emit(struct gctx *g, const char *path)
{
    if (++g->matches > GLOB_MAX_MATCHES)
        return cordon_err_set(g->err, E2BIG, "\"%s\" matches more than %d paths", g->pattern,
                              GLOB_MAX_MATCHES);
    return g->cb(g->ud, path);
}

static int append(char *path, size_t plen, const char *name, size_t nlen)
{
    if (plen + 1 + nlen + 1 > PATH_MAX)
        return -1;
    if (plen > 1 || path[0] != '/')
        path[plen++] = '/';
    memcpy(path + plen, name, nlen);
    path[plen + nlen] = '\0';
    return (int)(plen + nlen);
}

/* "**": zero directories, then every directory below (not through links). */
static int match_globstar(struct gctx *g, char *path, size_t plen, const char *rest)
{
    int r = match_from(g, path, plen, rest);
    if (r < 0)
        return r;
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (++g->visited > GLOB_MAX_VISITED) {
            closedir(d);
            return cordon_err_set(g->err, E2BIG, "\"%s\" visits more than %d entries",
                                  g->pattern, GLOB_MAX_VISITED);
        }
        const char *n = e->d_name;
        if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
            continue;
        if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN)
            continue;
        int nl = append(path, plen, n, strlen(n));
        if (nl < 0)
            continue;
        struct stat st;
        if (e->d_type == DT_UNKNOWN && (lstat(path, &st) < 0 || !S_ISDIR(st.st_mode))) {
            path[plen] = '\0';
            continue;
        }
        r = match_globstar(g, path, (size_t)nl, rest);
        path[plen] = '\0';
        if (r < 0)
            break;
    }
    closedir(d);
    return r;
}

/* path (of length plen) exists; match the remaining components in rest. */
static int match_from(struct gctx *g, char *path, size_t plen, const char *rest)
{
    while (*rest == '/')
        rest++;
    if (!*rest)
        return emit(g, path);
    const char *end = strchr(rest, '/');
    size_t clen = end ? (size_t)(end - rest) : strlen(rest);
    const char *after = end ? end : rest + clen;
    char comp[NAME_MAX + 1];
    if (clen > NAME_MAX)
        return 0;
    memcpy(comp, rest, clen);
    comp[clen] = '\0';

    if (strcmp(comp, "**") == 0)
        return match_globstar(g, path, plen, after);

    if (!cordon_path_has_glob(comp)) {
        int nl = append(path, plen, comp, clen);
        if (nl < 0)
            return 0;
        struct stat st;
        int r = 0;
        if (lstat(path, &st) == 0)
            r = match_from(g, path, (size_t)nl, after);
        path[plen] = '\0';
        return r;
    }
    DIR *d = opendir(path);
    if (!d)
        return 0;
    struct dirent *e;
    int r = 0;
    while ((e = readdir(d))) {
        if (++g->visited > GLOB_MAX_VISITED) {
            closedir(d);
            return cordon_err_set(g->err, E2BIG, "\"%s\" visits more than %d entries",
                                  g->pattern, GLOB_MAX_VISITED);
        }
        const char *n = e->d_name;
        if (n[0] == '.' && (!n[1] || (n[1] == '.' && !n[2])))
            continue;
        if (fnmatch(comp, n, 0) != 0)
            continue;
        int nl = append(path, plen, n, strlen(n));
        if (nl < 0)
            continue;
        r = match_from(g, path, (size_t)nl, after);
        path[plen] = '\0';
        if (r < 0)
            break;
    }
    closedir(d);
    return r;
}

int cordon_glob_expand(const char *pattern, int (*cb)(void *ud, const char *path), void *ud,
                       struct cordon_error *err)
{
    size_t base = cordon_glob_base_len(pattern);
    if (base == 0)
        return cordon_err_set(err, EINVAL, "\"%s\": a pattern must start from a literal "
                                           "directory", pattern);
    char path[PATH_MAX];
    if (base >= sizeof(path))
        return cordon_err_set(err, ENAMETOOLONG, "\"%s\": too long", pattern);
    memcpy(path, pattern, base);
    path[base] = '\0';
    struct stat st;
    if (stat(path, &st) < 0 || !S_ISDIR(st.st_mode))
        return 0; /* nothing to match yet */
    struct gctx g = { .cb = cb, .ud = ud, .err = err, .pattern = pattern };
    return match_from(&g, path, base, pattern + base);
}
