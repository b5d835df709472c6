/* reqrule.c: see reqrule.h. */
#include "reqrule.h"

#include "proxy/pathnorm.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static bool tchar(int c)
{
    return isalnum(c) || strchr("!#$%&'*+-.^_`|~", c);
}

static bool has_dot_segment(const char *p)
{
    for (const char *seg = p; (seg = strchr(seg, '/')) != NULL;) {
        seg++;
        size_t l = strcspn(seg, "/");
        if ((l == 1 && seg[0] == '.') || (l == 2 && seg[0] == '.' && seg[1] == '.'))
            return true;
    }
    return false;
}

int req_pattern_parse(const char *s, struct req_pattern *out, const char **why)
{
    memset(out, 0, sizeof(*out));
    const char *sp = strchr(s, ' ');
    if (!sp || strchr(sp + 1, ' ')) {
        *why = "expected \"METHOD /path\" with one space, e.g. \"POST /v1/messages\"";
        return -1;
    }
    size_t ml = (size_t)(sp - s);
    if (ml == 0 || ml >= sizeof(out->method)) {
        *why = "the method is empty or too long";
        return -1;
    }
    for (size_t i = 0; i < ml; i++) {
        if (!tchar((unsigned char)s[i]) || (s[i] == '*' && ml != 1)) {
            *why = "the method must be a token (GET, POST, ...) or \"*\"";
            return -1;
        }
    }
    const char *path = sp + 1;
    if (path[0] != '/') {
        *why = "the path pattern must start with \"/\"";
        return -1;
    }
    for (const char *p = path; *p; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '?' || *p == '#') {
            *why = "the path pattern holds a space, control, non-ASCII, \"?\" or \"#\" byte";
            return -1;
        }
    }
    /* Requests are matched in their canonical spelling (pathnorm.h), so a
     * pattern is stored in it too ("/v1/%7euser" becomes "/v1/~user"), and a
     * pattern no request could match ("/a/../b", "/a//b", "/a%2Fb") is an
     * error rather than a rule that never fires. */
    if (has_dot_segment(path)) {
        *why = "the path pattern holds a \".\" or \"..\" segment";
        return -1;
    }
    size_t np = 0;
    char canon[PATH_MAX_TARGET + 1];
    if (path_normalize(path, strlen(path), PATH_REFUSE, canon, sizeof(canon), &np, why) < 0)
        return -1;
    memcpy(out->method, s, ml);
    out->method[ml] = '\0';
    out->path = strdup(canon);
    out->text = strdup(s);
    if (!out->path || !out->text) {
        req_pattern_free(out);
        *why = "out of memory";
        return -1;
    }
    return 0;
}

void req_pattern_free(struct req_pattern *p)
{
    free(p->path);
    free(p->text);
    p->path = p->text = NULL;
}

void req_rule_free(struct req_rule *r)
{
    for (size_t i = 0; i < r->nallow; i++)
        req_pattern_free(&r->allow[i]);
    for (size_t i = 0; i < r->ndeny; i++)
        req_pattern_free(&r->deny[i]);
    free(r->allow);
    free(r->deny);
    net_entry_free(&r->host);
    memset(r, 0, sizeof(*r));
}

bool req_rule_covers(const struct req_rule *r, const struct net_target *t)
{
    return net_entry_match_host(&r->host, t) && (r->host.port == 0 || r->host.port == t->port);
}

static bool ch_eq(char a, char b, bool fold)
{
    return fold ? tolower((unsigned char)a) == tolower((unsigned char)b) : a == b;
}

/* "*" matches within a segment, "**" across segments. Dynamic programming
 * over pattern tokens and path positions: O(pattern x path), no
 * backtracking blow-up whatever the stars. */
bool req_path_match(const char *pat, const char *path, bool fold)
{
    size_t n = strlen(path);
    if (n > 8192)
        return false;
    bool a[8194], b[8194];
    bool *prev = a, *cur = b;
    memset(prev, 0, (n + 1) * sizeof(bool));
    prev[0] = true;
    for (const char *p = pat; *p;) {
        memset(cur, 0, (n + 1) * sizeof(bool));
        if (p[0] == '*' && p[1] == '*') {
            for (size_t j = 0; j <= n; j++)
                cur[j] = prev[j] || (j > 0 && cur[j - 1]);
            p += 2;
        } else if (p[0] == '*') {
            for (size_t j = 0; j <= n; j++)
                cur[j] = prev[j] || (j > 0 && cur[j - 1] && path[j - 1] != '/');
            p++;
        } else {
            for (size_t j = 0; j < n; j++)
                cur[j + 1] = prev[j] && ch_eq(*p, path[j], fold);
            p++;
        }
        bool *t = prev;
        prev = cur;
        cur = t;
    }
    return prev[n];
}

static bool method_match(const char *pat, const char *method, bool fold)
{
    if (strcmp(pat, "*") == 0)
        return true;
    return fold ? strcasecmp(pat, method) == 0 : strcmp(pat, method) == 0;
}

/* The path with ";parameters" removed from every segment. */
static void strip_params(const char *path, char *out, size_t n)
{
    size_t o = 0;
    bool skip = false;
    for (const char *p = path; *p && o + 1 < n; p++) {
        if (*p == '/')
            skip = false;
        else if (*p == ';')
            skip = true;
        if (!skip)
            out[o++] = *p;
    }
    out[o] = '\0';
}

/* The path without one final "/" ("/v1/files/" -> "/v1/files"), which many
 * routers (Express, Rails, Flask with strict_slashes off) treat as the same
 * resource; "/" stays "/". */
static void strip_slash(const char *path, char *out, size_t n)
{
    snprintf(out, n, "%s", path);
    size_t l = strlen(out);
    if (l > 1 && out[l - 1] == '/')
        out[l - 1] = '\0';
}

static bool deny_matches(const struct req_pattern *d, const char *method, const char *path,
                         const char *stripped)
{
    if (!method_match(d->method, method, true))
        return false;
    char a[8200], b[8200];
    strip_slash(path, a, sizeof(a));
    strip_slash(stripped, b, sizeof(b));
    return req_path_match(d->path, path, true) || req_path_match(d->path, stripped, true) ||
           req_path_match(d->path, a, true) || req_path_match(d->path, b, true);
}

struct req_verdict req_decide(const struct req_rule *rules, size_t n, const struct net_target *t,
                              const char *method, const char *path)
{
    char stripped[8200];
    strip_params(path, stripped, sizeof(stripped));
    bool covered = false, allow_list = false;
    for (size_t i = 0; i < n; i++) {
        const struct req_rule *r = &rules[i];
        if (!req_rule_covers(r, t))
            continue;
        covered = true;
        for (size_t k = 0; k < r->ndeny; k++)
            if (deny_matches(&r->deny[k], method, path, stripped))
                return (struct req_verdict){ .allow = false, .rule = (int)i,
                                             .pattern = r->deny[k].text,
                                             .reason = "the request matches a deny rule" };
        allow_list |= r->has_allow;
    }
    if (!covered || !allow_list)
        return (struct req_verdict){ .allow = true, .rule = -1 };
    for (size_t i = 0; i < n; i++) {
        const struct req_rule *r = &rules[i];
        if (!req_rule_covers(r, t))
            continue;
        for (size_t k = 0; k < r->nallow; k++)
            if (method_match(r->allow[k].method, method, false) &&
                req_path_match(r->allow[k].path, path, false))
                return (struct req_verdict){ .allow = true, .rule = (int)i,
                                             .pattern = r->allow[k].text };
    }
    int first = -1;
    for (size_t i = 0; i < n && first < 0; i++)
        if (req_rule_covers(&rules[i], t) && rules[i].has_allow)
            first = (int)i;
    return (struct req_verdict){ .allow = false, .rule = first, .pattern = NULL,
                                 .reason = "the request matches no allow rule for this host" };
}
