/* paths.c: lexical path handling for settings.
 *
 * Owns: `~` expansion, relative-to-cwd resolution and lexical normalisation.
 * Invariant: output paths are absolute, start with "/", contain no "//", "."
 * or ".." components and no trailing "/" (except "/" itself). Symlinks are
 * not resolved here: the mount planner resolves them at run time, through
 * file descriptors, because the filesystem can change in between.
 */
#include "policy.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cordon_path_normalize(char *path)
{
    /* Rebuild "/comp/comp" in place: the output never overtakes the input,
     * because every output component was preceded by at least one '/' in the
     * input. ".." pops the last component and never goes above "/", as
     * path.resolve does in srt. */
    char *out = path;
    const char *p = path;
    size_t len = 0;

    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *start = p;
        while (*p && *p != '/')
            p++;
        size_t clen = (size_t)(p - start);
        if (clen == 1 && start[0] == '.')
            continue;
        if (clen == 2 && start[0] == '.' && start[1] == '.') {
            while (len > 0 && out[len - 1] != '/')
                len--;
            if (len > 0)
                len--;
            continue;
        }
        out[len++] = '/';
        memmove(out + len, start, clen);
        len += clen;
    }
    if (len == 0)
        out[len++] = '/';
    out[len] = '\0';
}

char *cordon_path_expand(const char *in, const char *home, const char *cwd,
                         struct cordon_error *err)
{
    const char *base = NULL;
    const char *rest = in;

    if (!in || !*in) {
        cordon_err_set(err, EINVAL, "empty path");
        return NULL;
    }
    if (in[0] == '~') {
        if (in[1] != '\0' && in[1] != '/') {
            cordon_err_set(err, EINVAL,
                           "\"%s\": only \"~\" and \"~/\" are expanded (no ~user)", in);
            return NULL;
        }
        if (!home || home[0] != '/') {
            cordon_err_set(err, EINVAL, "\"%s\": the home directory is unknown", in);
            return NULL;
        }
        base = home;
        rest = in + 1;
    } else if (in[0] != '/') {
        if (!cwd || cwd[0] != '/') {
            cordon_err_set(err, EINVAL, "\"%s\": the working directory is unknown", in);
            return NULL;
        }
        base = cwd;
    }

    size_t n = (base ? strlen(base) + 1 : 0) + strlen(rest) + 2;
    char *out = malloc(n);
    if (!out) {
        cordon_err_set(err, ENOMEM, "out of memory");
        return NULL;
    }
    if (base)
        snprintf(out, n, "%s/%s", base, rest);
    else
        snprintf(out, n, "%s", rest);
    cordon_path_normalize(out);
    return out;
}

bool cordon_path_is_prefix(const char *a, const char *b)
{
    size_t n = strlen(a);
    if (n == 1 && a[0] == '/')
        return b[0] == '/';
    return strncmp(a, b, n) == 0 && (b[n] == '\0' || b[n] == '/');
}

int cordon_pathlist_add(struct cordon_pathlist *l, const char *path, const char *as_written,
                        bool literal)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        struct cordon_pathrule *v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *p = strdup(path);
    char *w = strdup(as_written ? as_written : path);
    if (!p || !w) {
        free(p);
        free(w);
        return -ENOMEM;
    }
    l->v[l->n++] = (struct cordon_pathrule){ .path = p, .as_written = w, .literal = literal };
    return 0;
}

void cordon_pathlist_clear(struct cordon_pathlist *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i].path);
        free(l->v[i].as_written);
    }
    free(l->v);
    *l = (struct cordon_pathlist){ 0 };
}

int cordon_strlist_add(struct cordon_strlist *l, const char *s)
{
    if (l->n + 1 >= l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    char *d = strdup(s);
    if (!d)
        return -ENOMEM;
    l->v[l->n++] = d;
    l->v[l->n] = NULL;
    return 0;
}

void cordon_strlist_clear(struct cordon_strlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    *l = (struct cordon_strlist){ 0 };
}
