/* settings.c: srt settings JSON (0.0.83) plus cordon's keys -> struct cordon_policy.
 *
 * Owns: loading, strict validation and the effective-policy JSON.
 * Invariants (shared/DESIGN.md "Settings"):
 *  - unknown keys are an error at every level: a typo in a deny rule must not
 *    turn into an open door (srt silently strips them at three levels);
 *  - srt keys that only concern other platforms or srt's own plumbing are
 *    accepted and ignored, with a note shown under --debug;
 *  - srt keys that change Linux policy and are not implemented yet are
 *    refused with an error that names the key, unless their value is the
 *    default (which changes nothing);
 *  - every error names the file, the JSON pointer and the problem, and a
 *    failed load leaves nothing behind.
 */
#include "policy.h"
#include "core/cleanup.h"
#include "core/err.h"

#include <arpa/inet.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <limits.h>
#include <stdarg.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Settings files are small; anything larger is a mistake or an attack. */
#define SETTINGS_MAX_BYTES (16u << 20)

struct ctx {
    const char *name;
    struct cordon_policy *p;
    struct cordon_error *err;
    char ptr[2048];
    struct cred_spec *cred;      /* the credentials entry being read */
    struct inject_header *inj;   /* the injectHeaders entry being read */
};

static int fail(struct ctx *c, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Keys and values come from the file: escape control bytes so that an error
 * stays one line and cannot carry terminal escape sequences. */
static void escape_controls(char *dst, size_t n, const char *src)
{
    size_t k = 0;
    for (; *src && k + 5 < n; src++) {
        unsigned char ch = (unsigned char)*src;
        if (ch < 0x20 || ch == 0x7f)
            k += (size_t)snprintf(dst + k, n - k, "\\x%02x", ch);
        else
            dst[k++] = (char)ch;
    }
    dst[k] = '\0';
}

static int fail(struct ctx *c, int code, const char *fmt, ...)
{
    char msg[768], line[sizeof(((struct cordon_error *)0)->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    char raw[sizeof(line) + sizeof(c->ptr) + sizeof(msg) + 1024];
    if (c->ptr[0])
        snprintf(raw, sizeof(raw), "%.1000s: %s: %s", c->name, c->ptr, msg);
    else
        snprintf(raw, sizeof(raw), "%.1000s: %s", c->name, msg);
    escape_controls(line, sizeof(line), raw);
    return cordon_err_set(c->err, code, "%s", line);
}

/* JSON pointer (RFC 6901): "~" is written "~0" and "/" is written "~1". */
static size_t ptr_push_key(struct ctx *c, const char *key)
{
    size_t old = strlen(c->ptr);
    size_t n = old;
    if (n + 1 < sizeof(c->ptr))
        c->ptr[n++] = '/';
    for (const char *k = key; *k && n + 3 < sizeof(c->ptr); k++) {
        if (*k == '~') {
            c->ptr[n++] = '~';
            c->ptr[n++] = '0';
        } else if (*k == '/') {
            c->ptr[n++] = '~';
            c->ptr[n++] = '1';
        } else {
            c->ptr[n++] = *k;
        }
    }
    c->ptr[n] = '\0';
    return old;
}

static size_t ptr_push_index(struct ctx *c, size_t i)
{
    size_t old = strlen(c->ptr);
    snprintf(c->ptr + old, sizeof(c->ptr) - old, "/%zu", i);
    return old;
}

static void ptr_pop(struct ctx *c, size_t old)
{
    c->ptr[old] = '\0';
}

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE:
    case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "a value";
}

static int want(struct ctx *c, const json_t *v, json_type t, const char *what)
{
    bool ok = json_typeof(v) == t || (t == JSON_TRUE && json_is_boolean(v));
    if (!ok) {
        /* -EINVAL spelled out here and in want_string: the analyzer does not
         * follow a variadic fail() to see that it returns a negative value,
         * and would chase "refused, yet r >= 0" paths at every caller. */
        fail(c, EINVAL, "expected %s, got %s", what, type_name(v));
        return -EINVAL;
    }
    return 0;
}

/* An integral JSON number: an integer, or a real with no fractional part
 * (3.0, 1e1), which srt accepts (JavaScript has one number type). Exact
 * only up to 2^53, like JavaScript's safe integers. */
static bool integral(const json_t *v, json_int_t *out)
{
    if (json_is_integer(v)) {
        *out = json_integer_value(v);
        return true;
    }
    if (!json_is_real(v))
        return false;
    double d = json_real_value(v);
    if (!(d >= -9007199254740992.0 && d <= 9007199254740992.0) || d != (double)(json_int_t)d)
        return false;
    *out = (json_int_t)d;
    return true;
}

/* An integral number from lo to hi; the error says what was expected and,
 * for another type, what was found ("got a string" for "8080"). */
static int want_int(struct ctx *c, const json_t *v, json_int_t lo, json_int_t hi,
                    const char *what, json_int_t *out)
{
    json_int_t n;
    if (!integral(v, &n)) {
        if (json_is_real(v))
            fail(c, EINVAL, "expected %s, got %g", what, json_real_value(v));
        else
            fail(c, EINVAL, "expected %s, got %s", what, type_name(v));
        return -EINVAL;
    }
    if (n < lo || n > hi) {
        fail(c, EINVAL, "expected %s, got %" JSON_INTEGER_FORMAT, what, n);
        return -EINVAL;
    }
    *out = n;
    return 0;
}

/* A string without embedded NUL bytes (JSON allows \u0000). */
static int want_string(struct ctx *c, const json_t *v, const char **out)
{
    *out = NULL;
    int r = want(c, v, JSON_STRING, "a string");
    if (r < 0)
        return r;
    if (strlen(json_string_value(v)) != json_string_length(v)) {
        fail(c, EINVAL, "string contains a NUL byte");
        return -EINVAL;
    }
    *out = json_string_value(v);
    return 0;
}

static int parse_bool(struct ctx *c, json_t *v, bool *out)
{
    int r = want(c, v, JSON_TRUE, "a boolean");
    if (r < 0)
        return r;
    *out = json_is_true(v);
    return 0;
}

static int parse_strings(struct ctx *c, json_t *v, struct cordon_strlist *out)
{
    int r = want(c, v, JSON_ARRAY, "an array of strings");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        if (cordon_strlist_add(out, s) < 0)
            return fail(c, ENOMEM, "out of memory");
        ptr_pop(c, old);
    }
    return 0;
}

/* ---- keys ---------------------------------------------------------------- */

enum key_kind {
    KEY_IMPL,        /* handled by fn */
    KEY_IGNORED,     /* accepted, no effect on Linux; note under --debug */
    KEY_UNSUPPORTED, /* refused unless its value equals dflt */
};

struct key {
    const char *name;
    enum key_kind kind;
    int (*fn)(struct ctx *c, json_t *v);
    const char *why;  /* IGNORED: reason; UNSUPPORTED: what would implement it */
    const char *dflt; /* UNSUPPORTED: JSON text of the value that changes nothing */
};

static int walk_object(struct ctx *c, json_t *obj, const struct key *keys, size_t nkeys)
{
    int r = want(c, obj, JSON_OBJECT, "an object");
    if (r < 0)
        return r;
    const char *k;
    json_t *v;
    json_object_foreach(obj, k, v) {
        const struct key *key = NULL;
        for (size_t i = 0; i < nkeys; i++) {
            if (strcmp(keys[i].name, k) == 0) {
                key = &keys[i];
                break;
            }
        }
        size_t old = ptr_push_key(c, k);
        if (!key)
            return fail(c, EINVAL, "unknown key (cordon refuses unknown keys so that a typo "
                                   "cannot silently weaken the policy)");
        switch (key->kind) {
        case KEY_IMPL:
            r = key->fn(c, v);
            if (r < 0)
                return r;
            break;
        case KEY_IGNORED: {
            char note[2300];
            snprintf(note, sizeof(note), "%s: %s: ignored: %s", c->name, c->ptr, key->why);
            if (cordon_strlist_add(&c->p->notes, note) < 0)
                return fail(c, ENOMEM, "out of memory");
            break;
        }
        case KEY_UNSUPPORTED: {
            json_t *d = key->dflt ? json_loads(key->dflt, JSON_DECODE_ANY, NULL) : NULL;
            bool inert = d && json_equal(d, v);
            json_decref(d);
            if (!inert)
                return fail(c, ENOTSUP, "not supported by this version of cordon (%s); "
                                        "refusing to run without it", key->why);
            break;
        }
        }
        ptr_pop(c, old);
    }
    return 0;
}

/* ---- filesystem ---------------------------------------------------------- */

static int parse_path_entry(struct ctx *c, json_t *e, struct cordon_pathlist *out, bool deny)
{
    const char *s = NULL;
    bool literal = false;
    int r;

    if (json_is_object(e)) {
        const char *k;
        json_t *v;
        json_t *pv = json_object_get(e, "path");
        if (!pv)
            return fail(c, EINVAL, "a path entry object needs \"path\"");
        json_object_foreach(e, k, v) {
            size_t old = ptr_push_key(c, k);
            if (strcmp(k, "path") == 0) {
                r = want_string(c, v, &s);
            } else if (strcmp(k, "literal") == 0) {
                r = parse_bool(c, v, &literal);
            } else {
                r = fail(c, EINVAL, "unknown key in a path entry (expected \"path\" and "
                                    "\"literal\")");
            }
            if (r < 0)
                return r;
            ptr_pop(c, old);
        }
    } else {
        r = want(c, e, JSON_STRING, "a path string or {\"path\": ..., \"literal\": true}");
        if (r < 0)
            return r;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
    }
    if (!s || !*s) /* s is set when r >= 0; the analyzer cannot see it through the loop */
        return fail(c, EINVAL, "empty path");

    _cleanup_free_ char *work = strdup(s);
    if (!work)
        return fail(c, ENOMEM, "out of memory");
    bool glob = false;
    if (!literal) {
        /* srt strips a trailing "/ **" (the whole subtree is the directory
         * itself for every list). */
        size_t n = strlen(work);
        while (n > 1 && work[n - 1] == '/')
            work[--n] = '\0';
        if (n >= 3 && strcmp(work + n - 3, "/**") == 0)
            work[n - 3] = '\0';
        if (!*work)
            work[0] = '/', work[1] = '\0';
        glob = cordon_path_has_glob(work);
        if (glob && deny && s[strlen(s) - 1] == '/')
            /* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): _cleanup_free_ frees work */
            return fail(c, EINVAL, "\"%s\": a deny pattern ending in \"/\" would match "
                                   "nothing (srt refuses it too)", s);
    }
    struct cordon_error perr = { 0 };
    _cleanup_free_ char *abs = cordon_path_expand(work, c->p->home, c->p->cwd, &perr);
    if (!abs)
        return fail(c, perr.code, "%s", perr.msg);
    if (!literal) {
        /* Expanding and normalising can bring a "/ **" to the end ("**" is
         * cwd + "/ **"; "x/ **" + "/." normalises to "x/ **"), and "/ **"
         * twice is the same subtree: strip them all here, or the policy
         * would print (--print-policy) as a pattern that loads back as the
         * directory (found by fuzz_settings). */
        size_t al = strlen(abs);
        bool cut = false;
        while (al >= 3 && strcmp(abs + al - 3, "/**") == 0) {
            al = al > 3 ? al - 3 : 1;
            abs[al] = '\0';
            cut = true;
        }
        if (cut)
            glob = cordon_path_has_glob(abs);
    }
    if (glob && cordon_glob_base_len(abs) == 0)
        return fail(c, EINVAL, "\"%s\": a pattern must start from a literal directory (e.g. "
                               "\"~/work/**/*.pem\", not \"/**/*.pem\")", s);
    if (cordon_pathlist_add(out, abs, s, literal) < 0)
        return fail(c, ENOMEM, "out of memory");
    out->v[out->n - 1].glob = glob;
    return 0;
}

static int parse_path_list(struct ctx *c, json_t *v, struct cordon_pathlist *out, bool deny)
{
    int r = want(c, v, JSON_ARRAY, "an array of paths");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        r = parse_path_entry(c, e, out, deny);
        if (r < 0)
            return r;
        ptr_pop(c, old);
    }
    return 0;
}

static int fs_disabled(struct ctx *c, json_t *v) { return parse_bool(c, v, &c->p->fs.disabled); }
static int fs_deny_read(struct ctx *c, json_t *v) { return parse_path_list(c, v, &c->p->fs.deny_read, true); }
static int fs_allow_read(struct ctx *c, json_t *v) { return parse_path_list(c, v, &c->p->fs.allow_read, false); }
static int fs_allow_write(struct ctx *c, json_t *v) { return parse_path_list(c, v, &c->p->fs.allow_write, false); }
static int fs_deny_write(struct ctx *c, json_t *v) { return parse_path_list(c, v, &c->p->fs.deny_write, true); }
static int fs_allow_git_config(struct ctx *c, json_t *v) { return parse_bool(c, v, &c->p->fs.allow_git_config); }

static const struct key fs_keys[] = {
    { "disabled", KEY_IMPL, fs_disabled, NULL, NULL },
    { "denyRead", KEY_IMPL, fs_deny_read, NULL, NULL },
    { "allowRead", KEY_IMPL, fs_allow_read, NULL, NULL },
    { "allowWrite", KEY_IMPL, fs_allow_write, NULL, NULL },
    { "denyWrite", KEY_IMPL, fs_deny_write, NULL, NULL },
    { "allowGitConfig", KEY_IMPL, fs_allow_git_config, NULL, NULL },
};

static int parse_filesystem(struct ctx *c, json_t *v)
{
    return walk_object(c, v, fs_keys, ARRAY_SIZE(fs_keys));
}

/* ---- network ------------------------------------------------------------- */

static int add_entry(struct ctx *c, const char *text, bool deny)
{
    struct net_rules *r = &c->p->net.rules;
    struct net_entry **v = deny ? &r->deny : &r->allow;
    size_t *n = deny ? &r->ndeny : &r->nallow;
    const char *why = NULL;
    struct net_entry e;
    if (net_entry_parse(text, deny, &e, &why) < 0)
        return fail(c, EINVAL, "\"%s\": %s", text, why);
    struct net_entry *nv = realloc(*v, (*n + 1) * sizeof(**v));
    if (!nv) {
        net_entry_free(&e);
        return fail(c, ENOMEM, "out of memory");
    }
    *v = nv;
    (*v)[(*n)++] = e;
    struct cordon_strlist *texts = deny ? &c->p->net.denied_domains : &c->p->net.allowed_domains;
    if (cordon_strlist_add(texts, text) < 0)
        return fail(c, ENOMEM, "out of memory");
    return 0;
}

static int parse_entries(struct ctx *c, json_t *v, bool deny)
{
    int r = want(c, v, JSON_ARRAY, "an array of hosts");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        r = add_entry(c, s, deny);
        if (r < 0)
            return r;
        ptr_pop(c, old);
    }
    return 0;
}

static int net_allowed(struct ctx *c, json_t *v) { return parse_entries(c, v, false); }
static int net_denied(struct ctx *c, json_t *v) { return parse_entries(c, v, true); }

static int net_default_ports(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of ports");
    if (r < 0)
        return r;
    struct net_rules *rules = &c->p->net.rules;
    if (json_array_size(v) > sizeof(rules->default_ports) / sizeof(rules->default_ports[0]))
        return fail(c, EINVAL, "at most 32 default ports");
    rules->ndefault = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        json_int_t n;
        if (want_int(c, e, 1, 65535, "a port from 1 to 65535", &n) < 0)
            return -EINVAL;
        rules->default_ports[rules->ndefault++] = (uint16_t)n;
        ptr_pop(c, old);
    }
    c->p->net.default_ports_set = true;
    return 0;
}

static int net_allow_private(struct ctx *c, json_t *v)
{
    return parse_bool(c, v, &c->p->net.allow_private);
}

/* network.hosts: {"name": "address"}, used instead of DNS for those names. */
static int net_hosts(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_OBJECT, "an object of name -> address");
    if (r < 0)
        return r;
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        size_t old = ptr_push_key(c, k);
        const char *addr, *why = NULL;
        r = want_string(c, e, &addr);
        if (r < 0)
            return r;
        struct net_target name, a;
        if (net_canon_host(k, &name, &why) < 0 || name.kind != HOST_NAME)
            return fail(c, EINVAL, "\"%s\": expected a host name%s%s", k, why ? ": " : "",
                        why ? why : "");
        if (net_canon_host(addr, &a, &why) < 0 || a.kind == HOST_NAME)
            return fail(c, EINVAL, "\"%s\": expected an IPv4 or IPv6 address", addr);
        if (!c->p->net.hosts)
            c->p->net.hosts = json_object();
        if (!c->p->net.hosts || json_object_set_new(c->p->net.hosts, name.host,
                                                    json_string(a.host)) < 0)
            return fail(c, ENOMEM, "out of memory");
        ptr_pop(c, old);
    }
    return 0;
}

/* network.dnsServers: ["127.0.0.1:5353", "[::1]:53", "10.0.0.1"]. */
static int net_dns_servers(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of resolver addresses");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s, *why = NULL;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        struct net_entry ent;
        if (net_entry_parse(s, false, &ent, &why) < 0 ||
            (ent.kind != HOST_IPV4 && ent.kind != HOST_IPV6)) {
            net_entry_free(&ent);
            return fail(c, EINVAL, "\"%s\": expected an address with an optional port, e.g. "
                                   "\"127.0.0.1:5353\" or \"[::1]:53\"", s);
        }
        net_entry_free(&ent);
        if (cordon_strlist_add(&c->p->net.dns_servers, s) < 0)
            return fail(c, ENOMEM, "out of memory");
        ptr_pop(c, old);
    }
    return 0;
}

static int net_denied_resolved(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of addresses or ranges");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s, *why = NULL;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        struct net_cidr cidr;
        if (net_cidr_parse(s, &cidr, &why) < 0)
            return fail(c, EINVAL, "\"%s\": %s", s, why);
        struct net_cidr *nv = realloc(c->p->net.denied_resolved,
                                      (c->p->net.ndenied_resolved + 1) * sizeof(*nv));
        if (!nv)
            return fail(c, ENOMEM, "out of memory");
        c->p->net.denied_resolved = nv;
        nv[c->p->net.ndenied_resolved++] = cidr;
        ptr_pop(c, old);
    }
    return 0;
}

static int set_string(struct ctx *c, json_t *v, char **out)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    free(*out);
    *out = strdup(s);
    return *out ? 0 : fail(c, ENOMEM, "out of memory");
}

static int proxy_url(struct ctx *c, json_t *v, char **out)
{
    int r = set_string(c, v, out);
    if (r < 0)
        return r;
    struct net_proxy_url u;
    const char *why = NULL;
    if (net_proxy_url_parse(*out, &u, &why) < 0) {
        char shown[200];
        net_proxy_url_redact(*out, shown, sizeof(shown));
        return fail(c, EINVAL, "\"%s\": %s", shown, why);
    }
    explicit_bzero(&u, sizeof(u));
    return 0;
}

static int parent_http(struct ctx *c, json_t *v) { return proxy_url(c, v, &c->p->net.parent_http); }
static int parent_https(struct ctx *c, json_t *v) { return proxy_url(c, v, &c->p->net.parent_https); }
static int parent_no_proxy(struct ctx *c, json_t *v) { return set_string(c, v, &c->p->net.parent_no_proxy); }

static const struct key parent_keys[] = {
    { "http", KEY_IMPL, parent_http, NULL, NULL },
    { "https", KEY_IMPL, parent_https, NULL, NULL },
    { "noProxy", KEY_IMPL, parent_no_proxy, NULL, NULL },
};

static int net_parent(struct ctx *c, json_t *v)
{
    c->p->net.parent_set = true;
    return walk_object(c, v, parent_keys, ARRAY_SIZE(parent_keys));
}

static int mitm_socket(struct ctx *c, json_t *v)
{
    int r = set_string(c, v, &c->p->net.mitm_socket);
    if (r < 0)
        return r;
    if (c->p->net.mitm_socket[0] != '/' || strlen(c->p->net.mitm_socket) >= 108)
        return fail(c, EINVAL, "expected an absolute unix socket path shorter than 108 bytes");
    return 0;
}

static int mitm_domains(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of hosts");
    if (r < 0)
        return r;
    if (json_array_size(v) == 0)
        return fail(c, EINVAL, "at least one domain is needed");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s, *why = NULL;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        struct net_entry ent;
        if (net_entry_parse(s, false, &ent, &why) < 0)
            return fail(c, EINVAL, "\"%s\": %s", s, why);
        struct net_entry *nv = realloc(c->p->net.mitm_domains,
                                       (c->p->net.nmitm_domains + 1) * sizeof(*nv));
        if (!nv) {
            net_entry_free(&ent);
            return fail(c, ENOMEM, "out of memory");
        }
        c->p->net.mitm_domains = nv;
        nv[c->p->net.nmitm_domains++] = ent;
        ptr_pop(c, old);
    }
    return 0;
}

static const struct key mitm_keys[] = {
    { "socketPath", KEY_IMPL, mitm_socket, NULL, NULL },
    { "domains", KEY_IMPL, mitm_domains, NULL, NULL },
};

static int net_mitm(struct ctx *c, json_t *v)
{
    int r = walk_object(c, v, mitm_keys, ARRAY_SIZE(mitm_keys));
    if (r < 0)
        return r;
    if (!c->p->net.mitm_socket || !c->p->net.nmitm_domains)
        return fail(c, EINVAL, "mitmProxy needs socketPath and domains");
    return 0;
}

static int port_value(struct ctx *c, json_t *v, uint16_t *out)
{
    json_int_t n;
    if (want_int(c, v, 1, 65535, "a port from 1 to 65535", &n) < 0)
        return -EINVAL;
    *out = (uint16_t)n;
    return 0;
}

static int net_http_port(struct ctx *c, json_t *v) { return port_value(c, v, &c->p->net.http_proxy_port); }
static int net_socks_port(struct ctx *c, json_t *v) { return port_value(c, v, &c->p->net.socks_proxy_port); }

/* ---- TLS interception ----------------------------------------------------- */

static int abs_path(struct ctx *c, json_t *v, char **out)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    struct cordon_error perr = { 0 };
    char *abs = cordon_path_expand(s, c->p->home, c->p->cwd, &perr);
    if (!abs)
        return fail(c, perr.code, "%s", perr.msg);
    free(*out);
    *out = abs;
    return 0;
}

static int int_range(struct ctx *c, json_t *v, int lo, int hi, int *out)
{
    char what[64];
    snprintf(what, sizeof(what), "an integer from %d to %d", lo, hi);
    json_int_t n;
    if (want_int(c, v, lo, hi, what, &n) < 0)
        return -EINVAL;
    *out = (int)n;
    return 0;
}

static int tls_ca_cert(struct ctx *c, json_t *v) { return abs_path(c, v, &c->p->net.tls_ca_cert); }
static int tls_ca_key(struct ctx *c, json_t *v) { return abs_path(c, v, &c->p->net.tls_ca_key); }

static int tls_exclude(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of hosts");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s, *why = NULL;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        struct net_entry ent;
        if (net_entry_parse(s, false, &ent, &why) < 0)
            return fail(c, EINVAL, "\"%s\": %s", s, why);
        struct net_entry *nv = realloc(c->p->net.tls_exclude,
                                       (c->p->net.ntls_exclude + 1) * sizeof(*nv));
        if (!nv) {
            net_entry_free(&ent);
            return fail(c, ENOMEM, "out of memory");
        }
        c->p->net.tls_exclude = nv;
        nv[c->p->net.ntls_exclude++] = ent;
        ptr_pop(c, old);
    }
    return 0;
}

static int tls_extra_ca(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of PEM files");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        char *abs = NULL;
        r = abs_path(c, e, &abs);
        if (r < 0)
            return r;
        r = cordon_strlist_add(&c->p->net.tls_extra_ca, abs);
        free(abs);
        if (r < 0)
            return fail(c, ENOMEM, "out of memory");
        ptr_pop(c, old);
    }
    return 0;
}

static int tls_max_tunnels(struct ctx *c, json_t *v)
{
    return int_range(c, v, 1, 65536, &c->p->net.tls_max_tunnels);
}

static int tls_handshake_timeout(struct ctx *c, json_t *v)
{
    return int_range(c, v, 100, 600000, &c->p->net.tls_handshake_timeout_ms);
}

static const struct key tls_keys[] = {
    { "caCertPath", KEY_IMPL, tls_ca_cert, NULL, NULL },
    { "caKeyPath", KEY_IMPL, tls_ca_key, NULL, NULL },
    { "excludeDomains", KEY_IMPL, tls_exclude, NULL, NULL },
    { "extraCaCertPaths", KEY_IMPL, tls_extra_ca, NULL, NULL },
    { "maxTunnels", KEY_IMPL, tls_max_tunnels, NULL, NULL },
    { "handshakeTimeoutMs", KEY_IMPL, tls_handshake_timeout, NULL, NULL },
};

static int net_tls(struct ctx *c, json_t *v)
{
    int r = walk_object(c, v, tls_keys, ARRAY_SIZE(tls_keys));
    if (r < 0)
        return r;
    if (!c->p->net.tls_ca_cert != !c->p->net.tls_ca_key)
        return fail(c, EINVAL, "caCertPath and caKeyPath go together (or neither, for a "
                               "per-run CA that never leaves cordon's memory)");
    c->p->net.tls = true;
    return 0;
}

static int net_upstream_ca(struct ctx *c, json_t *v)
{
    return abs_path(c, v, &c->p->net.upstream_ca_file);
}

static int net_require_host_match(struct ctx *c, json_t *v)
{
    return parse_bool(c, v, &c->p->net.require_host_match);
}

static int net_refuse_opaque(struct ctx *c, json_t *v)
{
    return parse_bool(c, v, &c->p->net.refuse_opaque_tunnels);
}

/* srt folds "-", "_" and "." together and ignores case. */
static void fold_header(char *s)
{
    for (; *s; s++) {
        *s = (char)tolower((unsigned char)*s);
        if (*s == '_' || *s == '.')
            *s = '-';
    }
}

static int net_strip_response(struct ctx *c, json_t *v)
{
    struct cordon_strlist tmp = { 0 };
    int r = parse_strings(c, v, &tmp);
    for (size_t i = 0; r == 0 && i < tmp.n; i++) {
        fold_header(tmp.v[i]);
        if (cordon_strlist_add(&c->p->net.strip_response_headers, tmp.v[i]) < 0)
            r = fail(c, ENOMEM, "out of memory");
    }
    cordon_strlist_clear(&tmp);
    return r;
}

/* ---- credentials on the wire (network.injectHeaders, stripRequestHeaders) --- */

/* An HTTP field name (RFC 9110 5.1: a token). */
static bool http_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
            return false;
    return true;
}

static int net_strip_request(struct ctx *c, json_t *v)
{
    struct cordon_strlist tmp = { 0 };
    int r = parse_strings(c, v, &tmp);
    for (size_t i = 0; r == 0 && i < tmp.n; i++) {
        size_t old = ptr_push_index(c, i);
        if (!http_token(tmp.v[i]))
            r = fail(c, EINVAL, "\"%s\" is not a header name", tmp.v[i]);
        ptr_pop(c, old);
        fold_header(tmp.v[i]);
        if (r == 0 && cordon_strlist_add(&c->p->net.strip_request_headers, tmp.v[i]) < 0)
            r = fail(c, ENOMEM, "out of memory");
    }
    cordon_strlist_clear(&tmp);
    return r;
}

/* "${env:NAME}" and "${file:PATH}"; "$$" is a literal "$". Only the form is
 * checked here: the values are read when a run starts. */
static int check_template(struct ctx *c, const char *t)
{
    for (const char *p = t; *p; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return fail(c, EINVAL, "a header value may not hold control bytes");
        if (*p != '$')
            continue;
        if (p[1] == '$') {
            p++;
            continue;
        }
        if (p[1] != '{')
            return fail(c, EINVAL, "a \"$\" must start ${env:NAME} or ${file:PATH} (write "
                                   "\"$$\" for a literal \"$\")");
        const char *end = strchr(p, '}');
        if (!end)
            return fail(c, EINVAL, "an unterminated \"${\"");
        if (strncmp(p + 2, "env:", 4) == 0) {
            const char *n = p + 6;
            if (n == end || !(isalpha((unsigned char)*n) || *n == '_'))
                return fail(c, EINVAL, "${env:NAME} needs a variable name");
            for (const char *q = n; q < end; q++)
                if (!isalnum((unsigned char)*q) && *q != '_')
                    return fail(c, EINVAL, "${env:NAME}: \"%.*s\" is not a variable name",
                                (int)(end - n), n);
        } else if (strncmp(p + 2, "file:", 5) == 0) {
            if (end == p + 7)
                return fail(c, EINVAL, "${file:PATH} needs a path");
        } else {
            return fail(c, EINVAL, "unknown substitution \"%.*s\" (expected ${env:NAME} or "
                                   "${file:PATH})", (int)(end - p + 1), p);
        }
        p = end;
    }
    return 0;
}

static int inj_host(struct ctx *c, json_t *v)
{
    const char *s, *why = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    net_entry_free(&c->inj->host);
    if (net_entry_parse(s, false, &c->inj->host, &why) < 0)
        return fail(c, EINVAL, "\"%s\": %s", s, why);
    return 0;
}

static int inj_header(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (!http_token(s))
        return fail(c, EINVAL, "\"%s\" is not a header name", s);
    static const char *const framing[] = { "host", "content-length", "transfer-encoding",
                                           "connection", "upgrade", "te", "trailer",
                                           "keep-alive", "proxy-connection", "expect" };
    for (size_t i = 0; i < ARRAY_SIZE(framing); i++)
        if (strcasecmp(s, framing[i]) == 0)
            return fail(c, EINVAL, "\"%s\" frames or routes the request and cannot be injected",
                        s);
    free(c->inj->header);
    c->inj->header = strdup(s);
    return c->inj->header ? 0 : fail(c, ENOMEM, "out of memory");
}

static int inj_value(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if ((r = check_template(c, s)) < 0)
        return r;
    free(c->inj->value);
    c->inj->value = strdup(s);
    return c->inj->value ? 0 : fail(c, ENOMEM, "out of memory");
}

static const struct key inject_keys[] = {
    { "host", KEY_IMPL, inj_host, NULL, NULL },
    { "header", KEY_IMPL, inj_header, NULL, NULL },
    { "value", KEY_IMPL, inj_value, NULL, NULL },
};

static int net_inject_headers(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of {\"host\", \"header\", \"value\"}");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        struct inject_header *nv = realloc(c->p->net.inject_headers,
                                           (c->p->net.ninject_headers + 1) * sizeof(*nv));
        if (!nv)
            return fail(c, ENOMEM, "out of memory");
        c->p->net.inject_headers = nv;
        c->inj = &nv[c->p->net.ninject_headers++];
        memset(c->inj, 0, sizeof(*c->inj));
        if ((r = walk_object(c, e, inject_keys, ARRAY_SIZE(inject_keys))) < 0)
            return r;
        if (!c->inj->host.text || !c->inj->header || !c->inj->value)
            return fail(c, EINVAL, "an entry needs \"host\", \"header\" and \"value\"");
        ptr_pop(c, old);
    }
    return 0;
}

/* ---- request rules --------------------------------------------------------- */

static int rule_patterns(struct ctx *c, json_t *v, struct req_pattern **out, size_t *n)
{
    int r = want(c, v, JSON_ARRAY, "an array of \"METHOD /path\" patterns");
    if (r < 0)
        return r;
    *out = calloc(json_array_size(v) + 1, sizeof(**out));
    if (!*out)
        return fail(c, ENOMEM, "out of memory");
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s, *why = NULL;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        if (req_pattern_parse(s, &(*out)[*n], &why) < 0)
            return fail(c, EINVAL, "\"%s\": %s", s, why);
        (*n)++;
        ptr_pop(c, old);
    }
    return 0;
}

static int rule_bytes(struct ctx *c, json_t *v, uint64_t *out)
{
    json_int_t n;
    if (want_int(c, v, 1, LLONG_MAX, "a positive number of bytes", &n) < 0)
        return -EINVAL;
    *out = (uint64_t)n;
    return 0;
}

static int parse_rule(struct ctx *c, json_t *v, struct req_rule *rule)
{
    int r = want(c, v, JSON_OBJECT, "a rule object {\"host\", \"allow\", \"deny\", ...}");
    if (r < 0)
        return r;
    if (!json_object_get(v, "host"))
        return fail(c, EINVAL, "a rule needs \"host\"");
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        size_t old = ptr_push_key(c, k);
        if (strcmp(k, "host") == 0) {
            const char *s, *why = NULL;
            if ((r = want_string(c, e, &s)) < 0)
                return r;
            if (net_entry_parse(s, false, &rule->host, &why) < 0)
                return fail(c, EINVAL, "\"%s\": %s", s, why);
        } else if (strcmp(k, "allow") == 0) {
            rule->has_allow = true;
            if ((r = rule_patterns(c, e, &rule->allow, &rule->nallow)) < 0)
                return r;
        } else if (strcmp(k, "deny") == 0) {
            if ((r = rule_patterns(c, e, &rule->deny, &rule->ndeny)) < 0)
                return r;
        } else if (strcmp(k, "maxRequestBytes") == 0) {
            if ((r = rule_bytes(c, e, &rule->max_request_bytes)) < 0)
                return r;
        } else if (strcmp(k, "maxSessionBytes") == 0) {
            if ((r = rule_bytes(c, e, &rule->max_session_bytes)) < 0)
                return r;
        } else {
            return fail(c, EINVAL, "unknown key in a request rule (expected host, allow, deny, "
                                   "maxRequestBytes, maxSessionBytes)");
        }
        ptr_pop(c, old);
    }
    return 0;
}

static int net_request_rules(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of rules");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        struct req_rule *nv = realloc(c->p->net.req_rules,
                                      (c->p->net.nreq_rules + 1) * sizeof(*nv));
        if (!nv)
            return fail(c, ENOMEM, "out of memory");
        c->p->net.req_rules = nv;
        memset(&nv[c->p->net.nreq_rules], 0, sizeof(*nv));
        c->p->net.nreq_rules++;
        r = parse_rule(c, e, &nv[c->p->net.nreq_rules - 1]);
        if (r < 0)
            return r;
        ptr_pop(c, old);
    }
    return 0;
}

static int net_ambiguous(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (strcmp(s, "refuse") == 0)
        c->p->net.path_mode = 0;
    else if (strcmp(s, "normalize") == 0)
        c->p->net.path_mode = 1;
    else if (strcmp(s, "asSpelled") == 0)
        c->p->net.path_mode = 2;
    else
        return fail(c, EINVAL, "expected \"refuse\", \"normalize\" or \"asSpelled\"");
    return 0;
}

static int net_plaintext_set(struct ctx *c, json_t *v)
{
    return parse_bool(c, v, &c->p->net.allow_plaintext_header_set);
}

static int net_denied_reasons(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_OBJECT, "an object of reasons");
    if (r < 0)
        return r;
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        size_t old = ptr_push_key(c, k);
        const char *s;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        ptr_pop(c, old);
    }
    json_decref(c->p->net.denied_domain_reasons);
    c->p->net.denied_domain_reasons = json_incref(v);
    return 0;
}

static int net_strict(struct ctx *c, json_t *v) { return parse_bool(c, v, &c->p->net.strict_allowlist); }
static int net_transparent(struct ctx *c, json_t *v) { return parse_bool(c, v, &c->p->net.transparent); }
static int net_all_unix(struct ctx *c, json_t *v) { return parse_bool(c, v, &c->p->net.allow_all_unix_sockets); }
static int net_local_binding(struct ctx *c, json_t *v) { return parse_bool(c, v, &c->p->net.allow_local_binding); }

/* network.allowUnixSockets (srt's key, macOS-only in srt 0.0.83): socket
 * paths, or directories whose sockets are all allowed (srt's "subpath").
 * `~` and relative paths are expanded as for filesystem paths; symlinks are
 * resolved when a run starts (sandbox/unixsock.c). */
static int net_unix_sockets(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of socket paths");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        if (!*s)
            return fail(c, EINVAL, "empty path");
        if (cordon_path_has_glob(s))
            return fail(c, EINVAL, "\"%s\": patterns are not supported here; name a socket, or "
                                   "the directory that holds the sockets", s);
        struct cordon_error perr = { 0 };
        _cleanup_free_ char *abs = cordon_path_expand(s, c->p->home, c->p->cwd, &perr);
        if (!abs)
            return fail(c, perr.code, "%s", perr.msg);
        if (cordon_strlist_add(&c->p->net.unix_sockets, abs) < 0)
            return fail(c, ENOMEM, "out of memory");
        ptr_pop(c, old);
    }
    return 0;
}

/* network.hostPorts and network.publishPorts: ports of the sandbox's own
 * loopback (sandbox/ports.h). Checked against each other and against
 * cordon's own listeners in ports_checks(). */
static int port_list(struct ctx *c, json_t *v, uint16_t *out, size_t *n)
{
    int r = want(c, v, JSON_ARRAY, "an array of ports");
    if (r < 0)
        return r;
    if (json_array_size(v) > CORDON_MAX_LOCAL_PORTS)
        return fail(c, EINVAL, "at most %d ports", CORDON_MAX_LOCAL_PORTS);
    *n = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        uint16_t port = 0;
        r = port_value(c, e, &port);
        if (r < 0)
            return r;
        for (size_t k = 0; k < *n; k++)
            if (out[k] == port)
                return fail(c, EINVAL, "port %u is listed twice", port);
        out[(*n)++] = port;
        ptr_pop(c, old);
    }
    return 0;
}

static int net_host_ports(struct ctx *c, json_t *v)
{
    return port_list(c, v, c->p->net.host_ports, &c->p->net.nhost_ports);
}

static int net_publish_ports(struct ctx *c, json_t *v)
{
    return port_list(c, v, c->p->net.publish_ports, &c->p->net.npublish_ports);
}

static const struct key net_keys[] = {
    { "allowedDomains", KEY_IMPL, net_allowed, NULL, NULL },
    { "deniedDomains", KEY_IMPL, net_denied, NULL, NULL },
    { "deniedDomainReasons", KEY_IMPL, net_denied_reasons, NULL, NULL },
    { "strictAllowlist", KEY_IMPL, net_strict, NULL, NULL },
    { "allowAllUnixSockets", KEY_IMPL, net_all_unix, NULL, NULL },
    { "allowLocalBinding", KEY_IMPL, net_local_binding, NULL, NULL },
    { "allowMachLookup", KEY_IGNORED, NULL, "macOS-only srt key", NULL },
    { "allowUnixSockets", KEY_IMPL, net_unix_sockets, NULL, NULL },
    { "deniedResolvedAddresses", KEY_IMPL, net_denied_resolved, NULL, NULL },
    { "httpProxyPort", KEY_IMPL, net_http_port, NULL, NULL },
    { "socksProxyPort", KEY_IMPL, net_socks_port, NULL, NULL },
    { "mitmProxy", KEY_IMPL, net_mitm, NULL, NULL },
    { "parentProxy", KEY_IMPL, net_parent, NULL, NULL },
    { "tlsTerminate", KEY_IMPL, net_tls, NULL, NULL },
    { "allowPlaintextHeaderSet", KEY_IMPL, net_plaintext_set, NULL, NULL },
    { "stripResponseHeaders", KEY_IMPL, net_strip_response, NULL, NULL },
    { "refuseOpaqueTunnels", KEY_IMPL, net_refuse_opaque, NULL, NULL },
    { "requireHostMatch", KEY_IMPL, net_require_host_match, NULL, NULL },
    { "ambiguousRequestTarget", KEY_IMPL, net_ambiguous, NULL, NULL },
    { "defaultPorts", KEY_IMPL, net_default_ports, NULL, NULL },
    { "allowPrivateAddresses", KEY_IMPL, net_allow_private, NULL, NULL },
    { "hosts", KEY_IMPL, net_hosts, NULL, NULL },
    { "dnsServers", KEY_IMPL, net_dns_servers, NULL, NULL },
    { "upstreamCaFile", KEY_IMPL, net_upstream_ca, NULL, NULL },
    { "requestRules", KEY_IMPL, net_request_rules, NULL, NULL },
    { "injectHeaders", KEY_IMPL, net_inject_headers, NULL, NULL },
    { "stripRequestHeaders", KEY_IMPL, net_strip_request, NULL, NULL },
    { "transparent", KEY_IMPL, net_transparent, NULL, NULL },
    { "hostPorts", KEY_IMPL, net_host_ports, NULL, NULL },
    { "publishPorts", KEY_IMPL, net_publish_ports, NULL, NULL },
};

static int parse_network(struct ctx *c, json_t *v)
{
    return walk_object(c, v, net_keys, ARRAY_SIZE(net_keys));
}

/* ---- credentials (srt-compat.md 1.3) ------------------------------------- */

static int cred_name(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return fail(c, EINVAL, "\"%s\" is not a POSIX variable name", s);
    for (const char *q = s; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '_')
            return fail(c, EINVAL, "\"%s\" is not a POSIX variable name", s);
    free(c->cred->name);
    c->cred->name = strdup(s);
    return c->cred->name ? 0 : fail(c, ENOMEM, "out of memory");
}

static int cred_path(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    size_t n = strlen(s);
    if (n && s[n - 1] == '/')
        return fail(c, EINVAL, "\"%s\": a credential file, not a directory (no trailing \"/\")",
                    s);
    return abs_path(c, v, &c->cred->path);
}

static int cred_mode(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (strcmp(s, "deny") == 0)
        c->cred->mask = false;
    else if (strcmp(s, "mask") == 0)
        c->cred->mask = true;
    else
        return fail(c, EINVAL, "expected \"deny\" or \"mask\"");
    return 0;
}

static int cred_extract(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    int ec = 0;
    PCRE2_SIZE off = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)s, PCRE2_ZERO_TERMINATED, 0, &ec, &off, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        return fail(c, EINVAL, "not a valid regular expression at offset %zu: %s", (size_t)off,
                    (const char *)msg);
    }
    uint32_t groups = 0;
    pcre2_pattern_info(re, PCRE2_INFO_CAPTURECOUNT, &groups);
    pcre2_code_free(re);
    if (groups < 1)
        return fail(c, EINVAL, "the expression needs a capture group: group 1 is what is masked");
    free(c->cred->extract);
    c->cred->extract = strdup(s);
    return c->cred->extract ? 0 : fail(c, ENOMEM, "out of memory");
}

static int cred_no_match(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (strcmp(s, "error") == 0)
        c->cred->on_no_match = CRED_NOMATCH_ERROR;
    else if (strcmp(s, "warn") == 0)
        c->cred->on_no_match = CRED_NOMATCH_WARN;
    else if (strcmp(s, "deny") == 0)
        c->cred->on_no_match = CRED_NOMATCH_DENY;
    else
        return fail(c, EINVAL, "expected \"error\", \"warn\" or \"deny\"");
    return 0;
}

static int cred_decode(struct ctx *c, json_t *v)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (strcmp(s, "jwt") != 0)
        return fail(c, EINVAL, "expected \"jwt\"");
    c->cred->jwt = true;
    return 0;
}

static int cred_mask_claims(struct ctx *c, json_t *v)
{
    int r = parse_strings(c, v, &c->cred->mask_claims);
    if (r < 0)
        return r;
    if (c->cred->mask_claims.n == 0)
        return fail(c, EINVAL, "an empty list masks nothing (leave the key out)");
    return 0;
}

static int cred_mask_dups(struct ctx *c, json_t *v)
{
    return parse_bool(c, v, &c->cred->mask_duplicates);
}

static int host_entries(struct ctx *c, json_t *v, struct net_entry **out, size_t *n)
{
    int r = want(c, v, JSON_ARRAY, "an array of hosts");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s, *why = NULL;
        if ((r = want_string(c, e, &s)) < 0)
            return r;
        struct net_entry ent;
        if (net_entry_parse(s, false, &ent, &why) < 0)
            return fail(c, EINVAL, "\"%s\": %s", s, why);
        struct net_entry *nv = realloc(*out, (*n + 1) * sizeof(*nv));
        if (!nv) {
            net_entry_free(&ent);
            return fail(c, ENOMEM, "out of memory");
        }
        *out = nv;
        nv[(*n)++] = ent;
        ptr_pop(c, old);
    }
    return 0;
}

static int cred_inject_hosts(struct ctx *c, json_t *v)
{
    int r = host_entries(c, v, &c->cred->inject_hosts, &c->cred->ninject_hosts);
    if (r < 0)
        return r;
    if (c->cred->ninject_hosts == 0)
        return fail(c, EINVAL, "an empty list would inject nowhere (leave the key out to use "
                               "allowedDomains)");
    c->cred->inject_hosts_set = true;
    return 0;
}

static const struct key cred_env_keys[] = {
    { "name", KEY_IMPL, cred_name, NULL, NULL },
    { "mode", KEY_IMPL, cred_mode, NULL, NULL },
    { "extract", KEY_IMPL, cred_extract, NULL, NULL },
    { "onExtractNoMatch", KEY_IMPL, cred_no_match, NULL, NULL },
    { "decode", KEY_IMPL, cred_decode, NULL, NULL },
    { "maskClaims", KEY_IMPL, cred_mask_claims, NULL, NULL },
    { "injectHosts", KEY_IMPL, cred_inject_hosts, NULL, NULL },
};

static const struct key cred_file_keys[] = {
    { "path", KEY_IMPL, cred_path, NULL, NULL },
    { "mode", KEY_IMPL, cred_mode, NULL, NULL },
    { "extract", KEY_IMPL, cred_extract, NULL, NULL },
    { "onExtractNoMatch", KEY_IMPL, cred_no_match, NULL, NULL },
    { "decode", KEY_IMPL, cred_decode, NULL, NULL },
    { "maskClaims", KEY_IMPL, cred_mask_claims, NULL, NULL },
    { "maskDuplicates", KEY_IMPL, cred_mask_dups, NULL, NULL },
    { "injectHosts", KEY_IMPL, cred_inject_hosts, NULL, NULL },
};

static int cred_list(struct ctx *c, json_t *v, bool files)
{
    int r = want(c, v, JSON_ARRAY, files ? "an array of {\"path\", \"mode\", ...}"
                                         : "an array of {\"name\", \"mode\", ...}");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        struct cred_spec *nv = realloc(c->p->creds.v, (c->p->creds.n + 1) * sizeof(*nv));
        if (!nv)
            return fail(c, ENOMEM, "out of memory");
        c->p->creds.v = nv;
        c->cred = &nv[c->p->creds.n++];
        memset(c->cred, 0, sizeof(*c->cred));
        c->cred->is_file = files;
        if (!json_object_get(e, "mode") && json_is_object(e))
            return fail(c, EINVAL, "an entry needs \"mode\" (\"deny\" or \"mask\")");
        r = files ? walk_object(c, e, cred_file_keys, ARRAY_SIZE(cred_file_keys))
                  : walk_object(c, e, cred_env_keys, ARRAY_SIZE(cred_env_keys));
        if (r < 0)
            return r;
        struct cred_spec *cs = c->cred;
        if (files ? !cs->path : !cs->name)
            return fail(c, EINVAL, "an entry needs \"%s\"", files ? "path" : "name");
        if (cs->mask_claims.n && !cs->jwt)
            return fail(c, EINVAL, "maskClaims needs decode: \"jwt\"");
        if (!cs->mask && (cs->extract || cs->jwt || cs->inject_hosts_set || cs->mask_duplicates))
            return fail(c, EINVAL, "mode \"deny\" takes no extract, decode, maskDuplicates or "
                                   "injectHosts");
        if (asprintf(&cs->label, "credentials.%s[%zu] (%s)", files ? "files" : "envVars", i,
                     files ? cs->path : cs->name) < 0) {
            cs->label = NULL;
            return fail(c, ENOMEM, "out of memory");
        }
        ptr_pop(c, old);
    }
    return 0;
}

static int cred_env_vars(struct ctx *c, json_t *v) { return cred_list(c, v, false); }
static int cred_files(struct ctx *c, json_t *v) { return cred_list(c, v, true); }
static int cred_plaintext(struct ctx *c, json_t *v)
{
    return parse_bool(c, v, &c->p->creds.allow_plaintext_inject);
}

static int aws_var(struct ctx *c, json_t *v, char **out)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (!(isalpha((unsigned char)s[0]) || s[0] == '_'))
        return fail(c, EINVAL, "\"%s\" is not a POSIX variable name", s);
    for (const char *q = s; *q; q++)
        if (!isalnum((unsigned char)*q) && *q != '_')
            return fail(c, EINVAL, "\"%s\" is not a POSIX variable name", s);
    free(*out);
    *out = strdup(s);
    return *out ? 0 : fail(c, ENOMEM, "out of memory");
}

static struct aws_pair *cur_aws(struct ctx *c)
{
    return &c->p->creds.aws[c->p->creds.naws - 1];
}

static int aws_akid(struct ctx *c, json_t *v) { return aws_var(c, v, &cur_aws(c)->akid_var); }
static int aws_secret(struct ctx *c, json_t *v) { return aws_var(c, v, &cur_aws(c)->secret_var); }
static int aws_token(struct ctx *c, json_t *v) { return aws_var(c, v, &cur_aws(c)->token_var); }

static const struct key aws_pair_keys[] = {
    { "accessKeyIdVar", KEY_IMPL, aws_akid, NULL, NULL },
    { "secretAccessKeyVar", KEY_IMPL, aws_secret, NULL, NULL },
    { "sessionTokenVar", KEY_IMPL, aws_token, NULL, NULL },
};

static int cred_aws_pairs(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of {\"accessKeyIdVar\", \"secretAccessKeyVar\"}");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        struct aws_pair *nv = realloc(c->p->creds.aws, (c->p->creds.naws + 1) * sizeof(*nv));
        if (!nv)
            return fail(c, ENOMEM, "out of memory");
        c->p->creds.aws = nv;
        memset(&nv[c->p->creds.naws++], 0, sizeof(*nv));
        if ((r = walk_object(c, e, aws_pair_keys, ARRAY_SIZE(aws_pair_keys))) < 0)
            return r;
        if (!cur_aws(c)->akid_var || !cur_aws(c)->secret_var)
            return fail(c, EINVAL, "a pair needs accessKeyIdVar and secretAccessKeyVar");
        ptr_pop(c, old);
    }
    return 0;
}

static int sigv4_mode(struct ctx *c, json_t *v, bool *passthrough)
{
    const char *s = NULL;
    int r = want_string(c, v, &s);
    if (r < 0)
        return r;
    if (strcmp(s, "deny") == 0)
        *passthrough = false;
    else if (strcmp(s, "passthrough") == 0)
        *passthrough = true;
    else
        return fail(c, EINVAL, "expected \"deny\" or \"passthrough\"");
    return 0;
}

static int sigv4_streaming(struct ctx *c, json_t *v) { return sigv4_mode(c, v, &c->p->creds.sigv4_streaming); }
static int sigv4_presigned(struct ctx *c, json_t *v) { return sigv4_mode(c, v, &c->p->creds.sigv4_presigned); }
static int sigv4_a(struct ctx *c, json_t *v) { return sigv4_mode(c, v, &c->p->creds.sigv4a); }

static const struct key sigv4_keys[] = {
    { "streaming", KEY_IMPL, sigv4_streaming, NULL, NULL },
    { "presigned", KEY_IMPL, sigv4_presigned, NULL, NULL },
    { "sigv4a", KEY_IMPL, sigv4_a, NULL, NULL },
};

static int cred_sigv4(struct ctx *c, json_t *v)
{
    return walk_object(c, v, sigv4_keys, ARRAY_SIZE(sigv4_keys));
}

static const struct key cred_keys[] = {
    { "envVars", KEY_IMPL, cred_env_vars, NULL, NULL },
    { "files", KEY_IMPL, cred_files, NULL, NULL },
    { "allowPlaintextInject", KEY_IMPL, cred_plaintext, NULL, NULL },
    { "awsPairs", KEY_IMPL, cred_aws_pairs, NULL, NULL },
    { "sigv4", KEY_IMPL, cred_sigv4, NULL, NULL },
};

static int top_credentials(struct ctx *c, json_t *v)
{
    return walk_object(c, v, cred_keys, ARRAY_SIZE(cred_keys));
}

/* ---- top level ----------------------------------------------------------- */

static int top_nested_userns(struct ctx *c, json_t *v)
{
    return parse_bool(c, v, &c->p->allow_nested_userns);
}

static int top_depth(struct ctx *c, json_t *v)
{
    json_int_t d;
    if (want_int(c, v, 1, 10, "an integer from 1 to 10", &d) < 0)
        return -EINVAL;
    c->p->mandatory_deny_search_depth = (int)d;
    return 0;
}

static int git_safe_dirs(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_ARRAY, "an array of directories");
    if (r < 0)
        return r;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e) {
        size_t old = ptr_push_index(c, i);
        const char *s;
        r = want_string(c, e, &s);
        if (r < 0)
            return r;
        struct cordon_error perr = { 0 };
        _cleanup_free_ char *abs = cordon_path_expand(s, c->p->home, c->p->cwd, &perr);
        if (!abs)
            return fail(c, perr.code, "%s", perr.msg);
        if (cordon_strlist_add(&c->p->git_safe_directories, abs) < 0)
            return fail(c, ENOMEM, "out of memory");
        ptr_pop(c, old);
    }
    return 0;
}

static const struct key git_keys[] = {
    { "safeDirectories", KEY_IMPL, git_safe_dirs, NULL, NULL },
};

static int top_git(struct ctx *c, json_t *v)
{
    return walk_object(c, v, git_keys, ARRAY_SIZE(git_keys));
}

static int top_ignore_violations(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_OBJECT, "an object of command -> [violation substrings]");
    if (r < 0)
        return r;
    const char *k;
    json_t *e;
    json_object_foreach(v, k, e) {
        size_t old = ptr_push_key(c, k);
        struct cordon_strlist tmp = { 0 };
        r = parse_strings(c, e, &tmp);
        cordon_strlist_clear(&tmp);
        if (r < 0)
            return r;
        ptr_pop(c, old);
    }
    json_decref(c->p->ignore_violations);
    c->p->ignore_violations = json_incref(v);
    return 0;
}

/* limits: {"nproc": n, "nofile": n, "fsize": bytes, "cpu": seconds, "as": bytes},
 * each a positive integer or "unlimited". */
static const char *const limit_names[5] = { "nproc", "nofile", "fsize", "cpu", "as" };

static int top_limits(struct ctx *c, json_t *v)
{
    int r = want(c, v, JSON_OBJECT, "an object of limits");
    if (r < 0)
        return r;
    const char *k;
    json_t *e;
    json_int_t lim;
    json_object_foreach(v, k, e) {
        size_t old = ptr_push_key(c, k);
        int idx = -1;
        for (int i = 0; i < 5; i++)
            if (strcmp(k, limit_names[i]) == 0)
                idx = i;
        if (idx < 0)
            return fail(c, EINVAL, "unknown limit (expected nproc, nofile, fsize, cpu or as)");
        if (json_is_string(e) && strcmp(json_string_value(e), "unlimited") == 0) {
            c->p->limits[idx].set = true;
            c->p->limits[idx].value = ~0ULL;
        } else if (integral(e, &lim) && lim > 0) {
            c->p->limits[idx].set = true;
            c->p->limits[idx].value = (unsigned long long)lim;
        } else {
            return fail(c, EINVAL, "expected a positive integer or \"unlimited\"");
        }
        ptr_pop(c, old);
    }
    return 0;
}

static int env_patterns(struct ctx *c, json_t *v, struct cordon_strlist *out)
{
    struct cordon_strlist tmp = { 0 };
    int r = parse_strings(c, v, &tmp);
    for (size_t i = 0; r == 0 && i < tmp.n; i++) {
        const char *s = tmp.v[i];
        bool ok = *s != '\0';
        for (const char *q = s; *q; q++)
            ok &= (*q == '_' || *q == '*' || *q == '?' || (*q >= 'A' && *q <= 'Z') ||
                   (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9'));
        if (!ok) {
            size_t old = ptr_push_index(c, i);
            r = fail(c, EINVAL, "\"%s\": expected a variable name, * and ? allowed", s);
            ptr_pop(c, old);
            break;
        }
        bool dup = false;
        for (size_t j = 0; j < out->n; j++)
            dup |= strcmp(out->v[j], s) == 0;
        if (!dup && cordon_strlist_add(out, s) < 0)
            r = fail(c, ENOMEM, "out of memory");
    }
    cordon_strlist_clear(&tmp);
    return r;
}

static int env_drop(struct ctx *c, json_t *v) { return env_patterns(c, v, &c->p->env_drop); }
static int env_keep(struct ctx *c, json_t *v) { return env_patterns(c, v, &c->p->env_keep); }

static const struct key env_keys[] = {
    { "drop", KEY_IMPL, env_drop, NULL, NULL },
    { "keep", KEY_IMPL, env_keep, NULL, NULL },
};

static int top_environment(struct ctx *c, json_t *v)
{
    return walk_object(c, v, env_keys, ARRAY_SIZE(env_keys));
}

static const struct key top_keys[] = {
    { "network", KEY_IMPL, parse_network, NULL, NULL },
    { "filesystem", KEY_IMPL, parse_filesystem, NULL, NULL },
    { "allowNestedUserNamespaces", KEY_IMPL, top_nested_userns, NULL, NULL },
    { "mandatoryDenySearchDepth", KEY_IMPL, top_depth, NULL, NULL },
    { "git", KEY_IMPL, top_git, NULL, NULL },
    { "ignoreViolations", KEY_IMPL, top_ignore_violations, NULL, NULL },
    { "credentials", KEY_IMPL, top_credentials, NULL, NULL },
    { "enableWeakerNestedSandbox", KEY_UNSUPPORTED, NULL,
      "cordon does not weaken /proc or user-namespace isolation", "false" },
    { "limits", KEY_IMPL, top_limits, NULL, NULL },
    { "environment", KEY_IMPL, top_environment, NULL, NULL },
    { "enableWeakerNetworkIsolation", KEY_IGNORED, NULL, "macOS-only srt key", NULL },
    { "allowAppleEvents", KEY_IGNORED, NULL, "macOS-only srt key", NULL },
    { "allowPty", KEY_IGNORED, NULL, "macOS-only srt key", NULL },
    { "windows", KEY_IGNORED, NULL, "Windows-only srt key", NULL },
    { "ripgrep", KEY_IGNORED, NULL, "srt plumbing; cordon does not use ripgrep", NULL },
    { "seccomp", KEY_IGNORED, NULL, "srt plumbing; cordon builds its own seccomp filter", NULL },
    { "bwrapPath", KEY_IGNORED, NULL, "srt plumbing; cordon does not use bubblewrap", NULL },
    { "socatPath", KEY_IGNORED, NULL, "srt plumbing; cordon does not use socat", NULL },
    { "javaAgentJarPath", KEY_IGNORED, NULL, "srt plumbing; cordon sets JVM proxy properties", NULL },
};

/* ---- entry points -------------------------------------------------------- */

static int policy_new(const struct cordon_load_opts *opts, struct cordon_policy **out,
                      struct cordon_error *err)
{
    struct cordon_policy *p = calloc(1, sizeof(*p));
    if (!p)
        return cordon_err_set(err, ENOMEM, "out of memory");
    p->mandatory_deny_search_depth = 3;
    p->net.require_host_match = true;
    p->net.transparent = true;
    p->net.tls_max_tunnels = 256;
    p->net.tls_handshake_timeout_ms = 10000;
    p->net.rules.default_ports[0] = 80;
    p->net.rules.default_ports[1] = 443;
    p->net.rules.ndefault = 2;
    p->limits[0].set = true; /* nproc: stops a fork bomb (harden/limits.c) */
    p->limits[0].value = 4096;
    /* The dynamic loader's variables (LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT...)
     * never cross into the sandbox unless kept (escape class #26). */
    if (cordon_strlist_add(&p->env_drop, "LD_*") < 0)
        goto nomem;

    /* `~` is $HOME; the passwd entry only when HOME is unset. A HOME that is
     * set but not absolute leaves `~` unknown (an error when used). */
    const char *home = opts && opts->home ? opts->home : getenv("HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : NULL;
    }
    if (home && home[0] == '/') {
        p->home = strdup(home);
        if (!p->home)
            goto nomem;
        cordon_path_normalize(p->home);
    }
    if (opts && opts->cwd) {
        if (opts->cwd[0] != '/') {
            cordon_policy_free(p);
            return cordon_err_set(err, EINVAL, "the working directory must be an absolute path");
        }
        p->cwd = strdup(opts->cwd);
    } else {
        p->cwd = getcwd(NULL, 0);
        if (!p->cwd) {
            int e = errno;
            cordon_policy_free(p);
            return cordon_err_sys(err, e, "cannot determine the working directory");
        }
    }
    if (!p->cwd)
        goto nomem;
    cordon_path_normalize(p->cwd);
    *out = p;
    return 0;
nomem:
    cordon_policy_free(p);
    return cordon_err_set(err, ENOMEM, "out of memory");
}

/* Does entry a (an allowedDomains or excludeDomains entry) cover every host
 * and port entry b covers? b without a port covers the host on any port. */
static bool entry_covers(const struct net_entry *a, const struct net_entry *b,
                         const struct net_rules *rules)
{
    bool host = false;
    switch (a->kind) {
    case HOST_NAME:
    case HOST_IPV4:
    case HOST_IPV6:
        host = b->kind == a->kind && strcmp(a->host, b->host) == 0;
        break;
    case HOST_WILDCARD: {
        size_t al = strlen(a->host), bl = strlen(b->host);
        bool sub = bl > al && b->host[bl - al - 1] == '.' && strcmp(b->host + bl - al, a->host) == 0;
        host = (b->kind == HOST_NAME && sub) ||
               (b->kind == HOST_WILDCARD && (sub || strcmp(a->host, b->host) == 0));
        break;
    }
    case HOST_ANY:
        host = b->kind != HOST_ANY;
        break;
    }
    if (!host || b->port == 0 || !rules)
        return host;
    if (a->port)
        return a->port == b->port;
    for (size_t i = 0; i < rules->ndefault; i++)
        if (rules->default_ports[i] == b->port)
            return true;
    return false;
}

static bool covered_by_any(const struct net_entry *b, const struct net_entry *list, size_t n,
                           const struct net_rules *rules)
{
    for (size_t i = 0; i < n; i++)
        if (entry_covers(&list[i], b, rules))
            return true;
    return false;
}

static const struct cred_spec *env_spec(const struct cordon_policy *p, const char *name)
{
    for (size_t i = 0; i < p->creds.n; i++)
        if (!p->creds.v[i].is_file && strcmp(p->creds.v[i].name, name) == 0)
            return &p->creds.v[i];
    return NULL;
}

static int cred_checks(struct ctx *c)
{
    struct cordon_policy *p = c->p;
    bool any_mask = false;
    for (size_t i = 0; i < p->creds.n; i++) {
        struct cred_spec *cs = &p->creds.v[i];
        snprintf(c->ptr, sizeof(c->ptr), "/credentials/%s/%zu", cs->is_file ? "files" : "envVars",
                 i);
        if (!cs->mask) {
            bool have = false;
            for (size_t k = 0; cs->is_file && k < p->fs.deny_read.n; k++)
                have |= strcmp(p->fs.deny_read.v[k].path, cs->path) == 0;
            if (cs->is_file && !have &&
                cordon_pathlist_add(&p->fs.deny_read, cs->path, cs->path, true) < 0)
                return fail(c, ENOMEM, "out of memory");
            continue;
        }
        any_mask = true;
        if (!cs->inject_hosts_set) {
            /* srt: allowedDomains with ports stripped. */
            for (size_t k = 0; k < p->net.rules.nallow; k++) {
                struct net_entry e = p->net.rules.allow[k];
                e.port = 0;
                e.text = strdup(e.text);
                struct net_entry *nv = realloc(cs->inject_hosts,
                                               (cs->ninject_hosts + 1) * sizeof(*nv));
                if (!e.text || !nv) {
                    free(e.text);
                    if (nv)
                        cs->inject_hosts = nv;
                    return fail(c, ENOMEM, "out of memory");
                }
                cs->inject_hosts = nv;
                nv[cs->ninject_hosts++] = e;
            }
            continue;
        }
        for (size_t k = 0; k < cs->ninject_hosts; k++) {
            const struct net_entry *e = &cs->inject_hosts[k];
            snprintf(c->ptr, sizeof(c->ptr), "/credentials/%s/%zu/injectHosts/%zu",
                     cs->is_file ? "files" : "envVars", i, k);
            if (!covered_by_any(e, p->net.rules.allow, p->net.rules.nallow, NULL))
                return fail(c, EINVAL, "\"%s\" is not covered by network.allowedDomains", e->text);
            if (p->net.tls && covered_by_any(e, p->net.tls_exclude, p->net.ntls_exclude, NULL))
                return fail(c, EINVAL, "\"%s\" is in tlsTerminate.excludeDomains, so nothing "
                                       "could be injected there", e->text);
        }
    }
    /* awsPairs: every variable whole-value masked, each in one slot; the
     * standard trio pairs itself. */
    for (size_t i = 0; i < p->creds.naws; i++) {
        const struct aws_pair *ap = &p->creds.aws[i];
        const char *vars[3] = { ap->akid_var, ap->secret_var, ap->token_var };
        static const char *const keys[3] = { "accessKeyIdVar", "secretAccessKeyVar",
                                             "sessionTokenVar" };
        for (int k = 0; k < 3; k++) {
            if (!vars[k])
                continue;
            snprintf(c->ptr, sizeof(c->ptr), "/credentials/awsPairs/%zu/%s", i, keys[k]);
            const struct cred_spec *cs = env_spec(p, vars[k]);
            if (!cs || !cs->mask || cs->extract || cs->jwt)
                return fail(c, EINVAL, "%s must be an envVars entry with mode \"mask\" and no "
                                       "extract or decode", vars[k]);
            for (size_t j = 0; j <= i; j++)
                for (int m = 0; m < 3; m++) {
                    const struct aws_pair *o = &p->creds.aws[j];
                    const char *ov = m == 0 ? o->akid_var : m == 1 ? o->secret_var : o->token_var;
                    if ((j < i || m < k) && ov && strcmp(ov, vars[k]) == 0)
                        return fail(c, EINVAL, "%s is used in two slots", vars[k]);
                }
        }
    }
    {
        const struct cred_spec *a = env_spec(p, "AWS_ACCESS_KEY_ID");
        const struct cred_spec *s = env_spec(p, "AWS_SECRET_ACCESS_KEY");
        const struct cred_spec *t = env_spec(p, "AWS_SESSION_TOKEN");
        bool whole_a = a && a->mask && !a->extract && !a->jwt;
        bool whole_s = s && s->mask && !s->extract && !s->jwt;
        bool whole_t = t && t->mask && !t->extract && !t->jwt;
        bool used = false;
        for (size_t i = 0; i < p->creds.naws; i++) {
            const struct aws_pair *ap = &p->creds.aws[i];
            /* never NULL (only token_var may be); tested for the analyzer,
             * which saw the loop above test all three */
            used |= (ap->akid_var && strcmp(ap->akid_var, "AWS_ACCESS_KEY_ID") == 0) ||
                    (ap->secret_var && strcmp(ap->secret_var, "AWS_SECRET_ACCESS_KEY") == 0);
        }
        if (whole_a && whole_s && !used) {
            struct aws_pair *nv = realloc(p->creds.aws, (p->creds.naws + 1) * sizeof(*nv));
            if (!nv)
                return fail(c, ENOMEM, "out of memory");
            p->creds.aws = nv;
            struct aws_pair *ap = &nv[p->creds.naws++];
            memset(ap, 0, sizeof(*ap));
            ap->automatic = true;
            ap->akid_var = strdup("AWS_ACCESS_KEY_ID");
            ap->secret_var = strdup("AWS_SECRET_ACCESS_KEY");
            ap->token_var = whole_t ? strdup("AWS_SESSION_TOKEN") : NULL;
            if (!ap->akid_var || !ap->secret_var || (whole_t && !ap->token_var))
                return fail(c, ENOMEM, "out of memory");
        }
    }
    c->ptr[0] = '\0';
    if (any_mask && !p->net.tls && !p->creds.allow_plaintext_inject)
        return fail(c, EINVAL, "/credentials: masking needs network.tlsTerminate, or "
                               "credentials.allowPlaintextInject for plain HTTP only (as in srt)");
    for (size_t i = 0; i < p->net.ninject_headers; i++) {
        const struct inject_header *ih = &p->net.inject_headers[i];
        snprintf(c->ptr, sizeof(c->ptr), "/network/injectHeaders/%zu/host", i);
        if (!p->net.tls && !p->net.allow_plaintext_header_set)
            return fail(c, EINVAL, "injecting headers needs network.tlsTerminate, or "
                                   "network.allowPlaintextHeaderSet for plain HTTP only");
        if (p->net.tls && covered_by_any(&ih->host, p->net.tls_exclude, p->net.ntls_exclude, NULL))
            return fail(c, EINVAL, "\"%s\" is in tlsTerminate.excludeDomains, so nothing could "
                                   "be injected there", ih->host.text);
    }
    c->ptr[0] = '\0';
    if ((any_mask || p->net.ninject_headers) && (p->net.http_proxy_port || p->net.socks_proxy_port))
        return fail(c, EINVAL, "/network: credentials cannot be injected when httpProxyPort or "
                               "socksProxyPort hands the traffic to an external proxy");
    return 0;
}

/* hostPorts and publishPorts name ports of the sandbox's own loopback: not
 * one of cordon's listeners there (sandbox.h, capture.h), and not both. */
static int ports_checks(struct ctx *c)
{
    const struct cordon_policy *p = c->p;
    static const struct {
        uint16_t port;
        const char *what;
    } taken[] = {
        { 3128, "cordon's HTTP proxy" },
        { 1080, "cordon's SOCKS5 proxy" },
        { 3129, "cordon's transparent listener" },
        { 53, "cordon's DNS server" },
    };
    for (int list = 0; list < 2; list++) {
        const uint16_t *v = list ? p->net.publish_ports : p->net.host_ports;
        size_t n = list ? p->net.npublish_ports : p->net.nhost_ports;
        const char *key = list ? "publishPorts" : "hostPorts";
        for (size_t i = 0; i < n; i++) {
            snprintf(c->ptr, sizeof(c->ptr), "/network/%s/%zu", key, i);
            for (size_t k = 0; k < ARRAY_SIZE(taken); k++)
                if (v[i] == taken[k].port && (v[i] != 53 || p->net.transparent))
                    return fail(c, EINVAL, "port %u is taken inside the sandbox by %s", v[i],
                                taken[k].what);
            for (size_t k = 0; list && k < p->net.nhost_ports; k++)
                if (v[i] == p->net.host_ports[k])
                    return fail(c, EINVAL, "port %u is also in network.hostPorts (/network/"
                                           "hostPorts/%zu): a port of the sandbox's loopback "
                                           "cannot lead to the host and be published too",
                                v[i], k);
        }
    }
    c->ptr[0] = '\0';
    return 0;
}

/* Rules that span keys (srt-compat.md 1.1, 1.3). */
static int cross_checks(struct ctx *c)
{
    struct cordon_policy *p = c->p;
    c->ptr[0] = '\0';
    if (p->net.tls && p->net.mitm_socket)
        return fail(c, EINVAL, "/network: mitmProxy and tlsTerminate cannot be used together "
                               "(as in srt)");
    int cr = cred_checks(c);
    if (cr < 0)
        return cr;
    if ((cr = ports_checks(c)) < 0)
        return cr;
    if (p->net.nreq_rules && (p->net.http_proxy_port || p->net.socks_proxy_port))
        return fail(c, EINVAL, "/network: requestRules cannot be enforced when httpProxyPort or "
                               "socksProxyPort hands the filtering to an external proxy");
    if (p->net.tls_ca_key) {
        /* A user's CA key must never be readable inside the sandbox. */
        bool have = false;
        for (size_t i = 0; i < p->fs.deny_read.n; i++)
            have |= strcmp(p->fs.deny_read.v[i].path, p->net.tls_ca_key) == 0;
        if (!have && cordon_pathlist_add(&p->fs.deny_read, p->net.tls_ca_key,
                                         p->net.tls_ca_key, true) < 0)
            return fail(c, ENOMEM, "out of memory");
    }
    return 0;
}

static int load_json(json_t *root, const char *name, const struct cordon_load_opts *opts,
                     enum cordon_policy_source source, cordon_policy **out,
                     struct cordon_error *err)
{
    struct cordon_policy *p = NULL;
    int r = policy_new(opts, &p, err);
    if (r < 0 || !p)
        return r < 0 ? r : -ENOMEM;
    p->source = source;
    if (source == CORDON_SOURCE_FILE) {
        p->source_path = strdup(name);
        if (!p->source_path) {
            cordon_policy_free(p);
            return cordon_err_set(err, ENOMEM, "out of memory");
        }
    }
    struct ctx c = { .name = name, .p = p, .err = err };
    if (!json_is_object(root)) {
        r = fail(&c, EINVAL, "the settings must be a JSON object, got %s", type_name(root));
    } else {
        r = walk_object(&c, root, top_keys, ARRAY_SIZE(top_keys));
        if (r == 0)
            r = cross_checks(&c);
    }
    if (r < 0) {
        cordon_policy_free(p);
        return r;
    }
    *out = p;
    return 0;
}

static int parse_text(const char *buf, size_t len, const char *name,
                      const struct cordon_load_opts *opts, enum cordon_policy_source source,
                      cordon_policy **out, struct cordon_error *err)
{
    size_t i = 0;
    while (i < len && (buf[i] == ' ' || buf[i] == '\t' || buf[i] == '\n' || buf[i] == '\r'))
        i++;
    if (i == len)
        return cordon_err_set(err, EINVAL, "%s: the file is empty (refusing to run with the "
                                           "embedded defaults instead)", name);
    json_error_t jerr;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return cordon_err_set(err, EINVAL, "%s:%d:%d: invalid JSON: %s", name, jerr.line,
                              jerr.column, jerr.text);
    int r = load_json(root, name, opts, source, out, err);
    json_decref(root);
    return r;
}

int cordon_policy_load_string(const char *json, const char *name,
                              const struct cordon_load_opts *opts, cordon_policy **out,
                              struct cordon_error *err)
{
    return parse_text(json, strlen(json), name ? name : "<settings>", opts,
                      CORDON_SOURCE_FILE, out, err);
}

int cordon_policy_load_default(const struct cordon_load_opts *opts, cordon_policy **out,
                               struct cordon_error *err)
{
    return parse_text(cordon_default_settings, strlen(cordon_default_settings),
                      "<embedded default>", opts, CORDON_SOURCE_EMBEDDED, out, err);
}

/* Read a whole settings file, once, into memory (so a file changing while it
 * is read cannot give us a mix of two versions beyond what read(2) gives). */
static int read_file(const char *path, char **buf, size_t *len, struct cordon_error *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return cordon_err_sys(err, errno, "%s: cannot open settings", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return cordon_err_sys(err, errno, "%s: cannot stat settings", path);
    if (S_ISDIR(st.st_mode))
        return cordon_err_set(err, EISDIR, "%s: is a directory, not a settings file", path);
    size_t cap = 4096, n = 0;
    _cleanup_free_ char *b = malloc(cap);
    if (!b)
        return cordon_err_set(err, ENOMEM, "out of memory");
    for (;;) {
        if (n == cap) {
            if (cap > SETTINGS_MAX_BYTES)
                return cordon_err_set(err, EFBIG, "%s: larger than %u bytes", path,
                                      SETTINGS_MAX_BYTES);
            /* One byte past the cap tells "exactly the cap" from "larger". */
            cap = cap * 2 > SETTINGS_MAX_BYTES ? SETTINGS_MAX_BYTES + 1 : cap * 2;
            char *nb = realloc(b, cap);
            if (!nb)
                return cordon_err_set(err, ENOMEM, "out of memory");
            b = nb;
        }
        ssize_t k = read(fd, b + n, cap - n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return cordon_err_sys(err, errno, "%s: cannot read settings", path);
        }
        if (k == 0)
            break;
        n += (size_t)k;
    }
    *buf = TAKE_PTR(b);
    *len = n;
    return 0;
}

int cordon_policy_load_file(const char *path, const struct cordon_load_opts *opts,
                            cordon_policy **out, struct cordon_error *err)
{
    _cleanup_free_ char *buf = NULL;
    size_t len = 0;
    int r = read_file(path, &buf, &len, err);
    if (r < 0)
        return r;
    return parse_text(buf, len, path, opts, CORDON_SOURCE_FILE, out, err);
}

int cordon_policy_load_auto(const char *explicit_path, const struct cordon_load_opts *opts,
                            cordon_policy **out, struct cordon_error *err)
{
    if (explicit_path)
        return cordon_policy_load_file(explicit_path, opts, out, err);

    const char *home = opts && opts->home ? opts->home : getenv("HOME");
    if (!home) {
        struct passwd *pw = getpwuid(getuid());
        home = pw && pw->pw_dir ? pw->pw_dir : NULL;
    }
    char cand[2][PATH_MAX];
    int ncand = 0, w = 0;
    const char *xdg = getenv("XDG_CONFIG_HOME");
    if (xdg && xdg[0] == '/')
        w = snprintf(cand[ncand++], PATH_MAX, "%s/cordon/settings.json", xdg);
    else if (home && home[0] == '/')
        w = snprintf(cand[ncand++], PATH_MAX, "%s/.config/cordon/settings.json", home);
    if (w < 0 || w >= PATH_MAX)
        return cordon_err_set(err, ENAMETOOLONG, "the settings path under $XDG_CONFIG_HOME or "
                                                 "$HOME is too long");
    if (home && home[0] == '/') {
        w = snprintf(cand[ncand++], PATH_MAX, "%s/.srt-settings.json", home);
        if (w < 0 || w >= PATH_MAX)
            return cordon_err_set(err, ENAMETOOLONG, "the settings path under $HOME is too long");
    }

    for (int i = 0; i < ncand; i++) {
        /* Only absence selects the next candidate: a file that exists but
         * cannot be read is an error, never a silent fallback. */
        struct stat st;
        if (lstat(cand[i], &st) < 0) {
            if (errno == ENOENT || errno == ENOTDIR)
                continue;
            return cordon_err_sys(err, errno, "%s: cannot stat settings", cand[i]);
        }
        return cordon_policy_load_file(cand[i], opts, out, err);
    }
    return cordon_policy_load_default(opts, out, err);
}

int cordon_policy_add_path(cordon_policy *p, enum cordon_path_list list, const char *path,
                           struct cordon_error *err)
{
    struct cordon_pathlist *l;
    const char *flag;
    switch (list) {
    case CORDON_DENY_READ: l = &p->fs.deny_read; flag = "--deny-read"; break;
    case CORDON_ALLOW_READ: l = &p->fs.allow_read; flag = "--allow-read"; break;
    case CORDON_ALLOW_WRITE: l = &p->fs.allow_write; flag = "--allow-write"; break;
    case CORDON_DENY_WRITE: l = &p->fs.deny_write; flag = "--deny-write"; break;
    default: return cordon_err_set(err, EINVAL, "unknown path list");
    }
    json_t *e = json_string(path);
    if (!e)
        return cordon_err_set(err, EINVAL, "%s: not a valid UTF-8 path", flag);
    struct ctx c = { .name = flag, .p = p, .err = err };
    int r = parse_path_entry(&c, e, l, list == CORDON_DENY_READ || list == CORDON_DENY_WRITE);
    json_decref(e);
    return r;
}

int cordon_policy_add_domain(cordon_policy *p, bool deny, const char *entry,
                             struct cordon_error *err)
{
    struct ctx c = { .name = deny ? "--deny-domain" : "--allow-domain", .p = p, .err = err };
    return add_entry(&c, entry, deny);
}

enum cordon_policy_source cordon_policy_source(const cordon_policy *p, const char **path)
{
    if (path)
        *path = p->source_path;
    return p->source;
}

void cordon_policy_free(cordon_policy *p)
{
    if (!p)
        return;
    cordon_pathlist_clear(&p->fs.deny_read);
    cordon_pathlist_clear(&p->fs.allow_read);
    cordon_pathlist_clear(&p->fs.allow_write);
    cordon_pathlist_clear(&p->fs.deny_write);
    cordon_strlist_clear(&p->net.allowed_domains);
    cordon_strlist_clear(&p->net.denied_domains);
    cordon_strlist_clear(&p->net.unix_sockets);
    for (size_t i = 0; i < p->net.rules.nallow; i++)
        net_entry_free(&p->net.rules.allow[i]);
    for (size_t i = 0; i < p->net.rules.ndeny; i++)
        net_entry_free(&p->net.rules.deny[i]);
    free(p->net.rules.allow);
    free(p->net.rules.deny);
    json_decref(p->net.hosts);
    cordon_strlist_clear(&p->net.dns_servers);
    free(p->net.denied_resolved);
    if (p->net.parent_http)
        explicit_bzero(p->net.parent_http, strlen(p->net.parent_http));
    if (p->net.parent_https)
        explicit_bzero(p->net.parent_https, strlen(p->net.parent_https));
    free(p->net.parent_http);
    free(p->net.parent_https);
    free(p->net.parent_no_proxy);
    free(p->net.mitm_socket);
    for (size_t i = 0; i < p->net.nmitm_domains; i++)
        net_entry_free(&p->net.mitm_domains[i]);
    free(p->net.mitm_domains);
    free(p->net.tls_ca_cert);
    free(p->net.tls_ca_key);
    for (size_t i = 0; i < p->net.ntls_exclude; i++)
        net_entry_free(&p->net.tls_exclude[i]);
    free(p->net.tls_exclude);
    cordon_strlist_clear(&p->net.tls_extra_ca);
    free(p->net.upstream_ca_file);
    cordon_strlist_clear(&p->net.strip_response_headers);
    cordon_strlist_clear(&p->net.strip_request_headers);
    for (size_t i = 0; i < p->net.ninject_headers; i++) {
        net_entry_free(&p->net.inject_headers[i].host);
        free(p->net.inject_headers[i].header);
        free(p->net.inject_headers[i].value);
    }
    free(p->net.inject_headers);
    for (size_t i = 0; i < p->creds.n; i++) {
        struct cred_spec *cs = &p->creds.v[i];
        free(cs->name);
        free(cs->path);
        free(cs->label);
        free(cs->extract);
        cordon_strlist_clear(&cs->mask_claims);
        for (size_t k = 0; k < cs->ninject_hosts; k++)
            net_entry_free(&cs->inject_hosts[k]);
        free(cs->inject_hosts);
    }
    free(p->creds.v);
    for (size_t i = 0; i < p->creds.naws; i++) {
        free(p->creds.aws[i].akid_var);
        free(p->creds.aws[i].secret_var);
        free(p->creds.aws[i].token_var);
    }
    free(p->creds.aws);
    for (size_t i = 0; i < p->net.nreq_rules; i++)
        req_rule_free(&p->net.req_rules[i]);
    free(p->net.req_rules);
    json_decref(p->net.denied_domain_reasons);
    cordon_strlist_clear(&p->git_safe_directories);
    json_decref(p->ignore_violations);
    cordon_strlist_clear(&p->notes);
    cordon_strlist_clear(&p->env_drop);
    cordon_strlist_clear(&p->env_keep);
    free(p->source_path);
    free(p->home);
    free(p->cwd);
    free(p);
}

/* ---- effective policy as JSON -------------------------------------------- */

static json_t *paths_json(const struct cordon_pathlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        json_t *e = l->v[i].literal
                        ? json_pack("{s:s, s:b}", "path", l->v[i].path, "literal", 1)
                        : json_string(l->v[i].path);
        if (!e || json_array_append_new(a, e) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

static json_t *strings_json(const struct cordon_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++) {
        if (json_array_append_new(a, json_string(l->v[i])) < 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

char *cordon_policy_to_json(const cordon_policy *p)
{
    json_t *net = json_pack("{s:o, s:o, s:b, s:b, s:b}",
                            "allowedDomains", strings_json(&p->net.allowed_domains),
                            "deniedDomains", strings_json(&p->net.denied_domains),
                            "strictAllowlist", p->net.strict_allowlist,
                            "allowAllUnixSockets", p->net.allow_all_unix_sockets,
                            "allowLocalBinding", p->net.allow_local_binding);
    if (net && p->net.denied_domain_reasons)
        json_object_set(net, "deniedDomainReasons", p->net.denied_domain_reasons);
    if (net) {
        json_t *ports = json_array();
        for (size_t i = 0; ports && i < p->net.rules.ndefault; i++)
            json_array_append_new(ports, json_integer(p->net.rules.default_ports[i]));
        json_object_set_new(net, "defaultPorts", ports);
        json_object_set_new(net, "allowPrivateAddresses", json_boolean(p->net.allow_private));
        json_object_set_new(net, "hosts", p->net.hosts ? json_incref(p->net.hosts) : json_object());
        json_object_set_new(net, "dnsServers", strings_json(&p->net.dns_servers));
        json_t *dra = json_array();
        for (size_t i = 0; dra && i < p->net.ndenied_resolved; i++) {
            char a[INET6_ADDRSTRLEN + 8];
            const struct net_cidr *cd = &p->net.denied_resolved[i];
            inet_ntop(cd->family == 4 ? AF_INET : AF_INET6, cd->addr, a, sizeof(a));
            size_t al = strlen(a);
            snprintf(a + al, sizeof(a) - al, "/%u", cd->bits);
            json_array_append_new(dra, json_string(a));
        }
        json_object_set_new(net, "deniedResolvedAddresses", dra);
        if (p->net.parent_set) {
            /* Credentials in a proxy URL are secrets: never printed. */
            json_t *pp = json_object();
            if (p->net.parent_http)
                json_object_set_new(pp, "http", json_string(strchr(p->net.parent_http, '@')
                                                                 ? "<set, with credentials>"
                                                                 : p->net.parent_http));
            if (p->net.parent_https)
                json_object_set_new(pp, "https", json_string(strchr(p->net.parent_https, '@')
                                                                  ? "<set, with credentials>"
                                                                  : p->net.parent_https));
            if (p->net.parent_no_proxy)
                json_object_set_new(pp, "noProxy", json_string(p->net.parent_no_proxy));
            json_object_set_new(net, "parentProxy", pp);
        }
        if (p->net.mitm_socket) {
            json_t *md = json_array();
            for (size_t i = 0; md && i < p->net.nmitm_domains; i++)
                json_array_append_new(md, json_string(p->net.mitm_domains[i].text));
            json_object_set_new(net, "mitmProxy",
                                json_pack("{s:s, s:o}", "socketPath", p->net.mitm_socket,
                                          "domains", md));
        }
        json_object_set_new(net, "requireHostMatch", json_boolean(p->net.require_host_match));
        json_object_set_new(net, "transparent", json_boolean(p->net.transparent));
        static const char *const modes[] = { "refuse", "normalize", "asSpelled" };
        json_object_set_new(net, "ambiguousRequestTarget",
                            json_string(modes[p->net.path_mode % 3]));
        json_object_set_new(net, "allowPlaintextHeaderSet",
                            json_boolean(p->net.allow_plaintext_header_set));
        json_t *rules = json_array();
        for (size_t i = 0; rules && i < p->net.nreq_rules; i++) {
            const struct req_rule *rr = &p->net.req_rules[i];
            json_t *o = json_pack("{s:s}", "host", rr->host.text);
            if (!o)
                continue;
            if (rr->has_allow) {
                json_t *a = json_array();
                for (size_t k = 0; a && k < rr->nallow; k++)
                    json_array_append_new(a, json_string(rr->allow[k].text));
                json_object_set_new(o, "allow", a);
            }
            if (rr->ndeny) {
                json_t *d = json_array();
                for (size_t k = 0; d && k < rr->ndeny; k++)
                    json_array_append_new(d, json_string(rr->deny[k].text));
                json_object_set_new(o, "deny", d);
            }
            if (rr->max_request_bytes)
                json_object_set_new(o, "maxRequestBytes",
                                    json_integer((json_int_t)rr->max_request_bytes));
            if (rr->max_session_bytes)
                json_object_set_new(o, "maxSessionBytes",
                                    json_integer((json_int_t)rr->max_session_bytes));
            json_array_append_new(rules, o);
        }
        json_object_set_new(net, "requestRules", rules);
        json_object_set_new(net, "refuseOpaqueTunnels",
                            json_boolean(p->net.refuse_opaque_tunnels));
        json_object_set_new(net, "stripResponseHeaders",
                            strings_json(&p->net.strip_response_headers));
        json_object_set_new(net, "stripRequestHeaders",
                            strings_json(&p->net.strip_request_headers));
        json_t *ih = json_array();
        for (size_t i = 0; ih && i < p->net.ninject_headers; i++)
            /* A value may hold a literal secret: never printed. */
            json_array_append_new(ih, json_pack("{s:s, s:s, s:s}", "host",
                                                p->net.inject_headers[i].host.text, "header",
                                                p->net.inject_headers[i].header, "value",
                                                "<hidden>"));
        json_object_set_new(net, "injectHeaders", ih);
        if (p->net.upstream_ca_file)
            json_object_set_new(net, "upstreamCaFile", json_string(p->net.upstream_ca_file));
        if (p->net.tls) {
            json_t *ex = json_array();
            for (size_t i = 0; ex && i < p->net.ntls_exclude; i++)
                json_array_append_new(ex, json_string(p->net.tls_exclude[i].text));
            json_t *t = json_pack("{s:o, s:o, s:i, s:i}", "excludeDomains", ex,
                                  "extraCaCertPaths", strings_json(&p->net.tls_extra_ca),
                                  "maxTunnels", p->net.tls_max_tunnels, "handshakeTimeoutMs",
                                  p->net.tls_handshake_timeout_ms);
            if (t && p->net.tls_ca_cert) {
                json_object_set_new(t, "caCertPath", json_string(p->net.tls_ca_cert));
                json_object_set_new(t, "caKeyPath", json_string(p->net.tls_ca_key));
            }
            json_object_set_new(net, "tlsTerminate", t);
        }
        /* Printed only when set, like httpProxyPort: the printed default
         * policy stays what it was before these keys existed. */
        if (p->net.unix_sockets.n)
            json_object_set_new(net, "allowUnixSockets", strings_json(&p->net.unix_sockets));
        for (int list = 0; list < 2; list++) {
            size_t n = list ? p->net.npublish_ports : p->net.nhost_ports;
            json_t *a = n ? json_array() : NULL;
            for (size_t i = 0; a && i < n; i++)
                json_array_append_new(a, json_integer(list ? p->net.publish_ports[i]
                                                           : p->net.host_ports[i]));
            if (a)
                json_object_set_new(net, list ? "publishPorts" : "hostPorts", a);
        }
        if (p->net.http_proxy_port)
            json_object_set_new(net, "httpProxyPort", json_integer(p->net.http_proxy_port));
        if (p->net.socks_proxy_port)
            json_object_set_new(net, "socksProxyPort", json_integer(p->net.socks_proxy_port));
    }
    json_t *fs = json_pack("{s:b, s:o, s:o, s:o, s:o, s:b}",
                           "disabled", p->fs.disabled,
                           "denyRead", paths_json(&p->fs.deny_read),
                           "allowRead", paths_json(&p->fs.allow_read),
                           "allowWrite", paths_json(&p->fs.allow_write),
                           "denyWrite", paths_json(&p->fs.deny_write),
                           "allowGitConfig", p->fs.allow_git_config);
    json_t *git = json_pack("{s:o}", "safeDirectories", strings_json(&p->git_safe_directories));
    json_t *root = json_pack("{s:o*, s:o*, s:b, s:i, s:o*}",
                             "network", net, "filesystem", fs,
                             "allowNestedUserNamespaces", p->allow_nested_userns,
                             "mandatoryDenySearchDepth", p->mandatory_deny_search_depth,
                             "git", git);
    if (!root || !net || !fs || !git) {
        json_decref(root);
        return NULL;
    }
    if (p->ignore_violations)
        json_object_set(root, "ignoreViolations", p->ignore_violations);
    if (p->creds.n || p->creds.allow_plaintext_inject || p->creds.naws ||
        p->creds.sigv4_streaming || p->creds.sigv4_presigned || p->creds.sigv4a) {
        json_t *ev = json_array(), *fv = json_array();
        static const char *const nm[] = { "error", "warn", "deny" };
        for (size_t i = 0; ev && fv && i < p->creds.n; i++) {
            const struct cred_spec *cs = &p->creds.v[i];
            json_t *o = json_pack("{s:s}", "mode", cs->mask ? "mask" : "deny");
            if (!o)
                continue;
            json_object_set_new(o, cs->is_file ? "path" : "name",
                                json_string(cs->is_file ? cs->path : cs->name));
            if (cs->mask) {
                if (cs->extract)
                    json_object_set_new(o, "extract", json_string(cs->extract));
                json_object_set_new(o, "onExtractNoMatch", json_string(nm[cs->on_no_match]));
                if (cs->jwt)
                    json_object_set_new(o, "decode", json_string("jwt"));
                if (cs->mask_claims.n)
                    json_object_set_new(o, "maskClaims", strings_json(&cs->mask_claims));
                if (cs->mask_duplicates)
                    json_object_set_new(o, "maskDuplicates", json_true());
                if (cs->inject_hosts_set) { /* else allowedDomains, as loaded */
                    json_t *h = json_array();
                    for (size_t k = 0; h && k < cs->ninject_hosts; k++)
                        json_array_append_new(h, json_string(cs->inject_hosts[k].text));
                    json_object_set_new(o, "injectHosts", h);
                }
            }
            json_array_append_new(cs->is_file ? fv : ev, o);
        }
        json_t *cr = json_pack("{s:o*, s:o*, s:b}", "envVars", ev, "files", fv,
                               "allowPlaintextInject", p->creds.allow_plaintext_inject);
        json_t *aw = json_array();
        for (size_t i = 0; cr && aw && i < p->creds.naws; i++) {
            const struct aws_pair *ap = &p->creds.aws[i];
            if (ap->automatic)
                continue; /* paired again when loaded */
            json_t *o = json_pack("{s:s, s:s}", "accessKeyIdVar", ap->akid_var,
                                  "secretAccessKeyVar", ap->secret_var);
            if (o && ap->token_var)
                json_object_set_new(o, "sessionTokenVar", json_string(ap->token_var));
            json_array_append_new(aw, o);
        }
        static const char *const pm[] = { "deny", "passthrough" };
        if (cr) {
            json_object_set_new(cr, "awsPairs", aw);
            json_object_set_new(cr, "sigv4", json_pack("{s:s, s:s, s:s}", "streaming",
                                                       pm[p->creds.sigv4_streaming],
                                                       "presigned", pm[p->creds.sigv4_presigned],
                                                       "sigv4a", pm[p->creds.sigv4a]));
        } else {
            json_decref(aw);
        }
        json_object_set_new(root, "credentials", cr);
    }
    json_t *lim = json_object();
    for (int i = 0; lim && i < 5; i++) {
        if (!p->limits[i].set)
            continue;
        json_t *val = p->limits[i].value == ~0ULL
                          ? json_string("unlimited")
                          : json_integer((json_int_t)p->limits[i].value);
        json_object_set_new(lim, limit_names[i], val);
    }
    json_t *env = json_pack("{s:o, s:o}", "drop", strings_json(&p->env_drop),
                            "keep", strings_json(&p->env_keep));
    if (!lim || !env) {
        json_decref(lim);
        json_decref(env);
        json_decref(root);
        return NULL;
    }
    json_object_set_new(root, "limits", lim);
    json_object_set_new(root, "environment", env);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return s;
}
