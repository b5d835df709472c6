/* update.c: see update.h. */
#include "update.h"
#include "core/cleanup.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Network keys that take effect on a running command (srt-compat.md 1.5:
 * the host rules, read on the next connection). */
static const char *const live_keys[] = {
    "allowedDomains", "deniedDomains", "deniedDomainReasons", "deniedResolvedAddresses",
    "strictAllowlist", "defaultPorts",
};

/* The policy as JSON without the keys an update may change. */
static char *fixed_part(const cordon_policy *p)
{
    char *s = cordon_policy_to_json(p);
    json_t *j = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    if (!j)
        return NULL;
    json_t *net = json_object_get(j, "network");
    for (size_t i = 0; net && i < ARRAY_SIZE(live_keys); i++)
        json_object_del(net, live_keys[i]);
    char *out = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(j);
    return out;
}

/* The top-level key (or network key) where two fixed parts differ first. */
static void first_difference(const char *a, const char *b, char *out, size_t n)
{
    json_t *x = json_loads(a, 0, NULL), *y = json_loads(b, 0, NULL);
    snprintf(out, n, "a key other than network rules");
    const char *k;
    json_t *v;
    json_object_foreach(x, k, v) {
        json_t *w = json_object_get(y, k);
        if (w && json_equal(v, w))
            continue;
        if (strcmp(k, "network") == 0 && w) {
            const char *nk;
            json_t *nv;
            json_object_foreach(v, nk, nv) {
                json_t *nw = json_object_get(w, nk);
                if (!nw || !json_equal(nv, nw)) {
                    snprintf(out, n, "network.%s", nk);
                    goto done;
                }
            }
        }
        snprintf(out, n, "%s", k);
        goto done;
    }
    json_object_foreach(y, k, v) {
        if (!json_object_get(x, k)) {
            snprintf(out, n, "%s", k);
            break;
        }
    }
done:
    json_decref(x);
    json_decref(y);
}

enum policy_update policy_update_parse(const cordon_policy *live, char *line, const char *name,
                                       const struct cordon_load_opts *opts, cordon_policy **out,
                                       char *why, size_t whyn)
{
    *out = NULL;
    while (*line == ' ' || *line == '\t' || *line == '\r')
        line++;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (!n)
        return POLICY_UPDATE_EMPTY;
    cordon_policy *np = NULL;
    struct cordon_error e = { 0 };
    if (cordon_policy_load_string(line, name, opts, &np, &e) < 0) {
        snprintf(why, whyn, "%s", e.msg);
        return POLICY_UPDATE_INVALID;
    }
    char *a = fixed_part(live), *b = fixed_part(np);
    bool same = a && b && strcmp(a, b) == 0;
    if (!same) {
        snprintf(why, whyn, "out of memory");
        if (a && b)
            first_difference(a, b, why, whyn);
        cordon_policy_free(np);
    } else {
        *out = np;
    }
    free(a);
    free(b);
    return same ? POLICY_UPDATE_OK : POLICY_UPDATE_FIXED;
}
